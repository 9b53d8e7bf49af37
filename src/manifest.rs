//! The Teams app package: `manifest/manifest.json` with the bot's id filled
//! in, zipped with its two icons, as Teams admin centre and "Upload a
//! custom app" take it.
//!
//! The manifest template and icons are embedded in the binary, so
//! `cordon manifest pack` works from any directory. This module only
//! builds the package; it never uploads it.

use std::io::Write;
use std::path::Path;

use anyhow::{bail, Context};
use serde_json::Value;

const TEMPLATE: &str = include_str!("../manifest/manifest.json");
const COLOR_ICON: &[u8] = include_bytes!("../manifest/color.png");
const OUTLINE_ICON: &[u8] = include_bytes!("../manifest/outline.png");

/// Writes the package to `out`.
///
/// `bot_id` is the bot's Microsoft App ID; `app_id` is the Teams app's own
/// id and defaults to the bot id, which is what a single-bot app usually
/// uses.
pub fn pack(bot_id: &str, app_id: Option<&str>, out: &Path) -> anyhow::Result<()> {
    let manifest = render(bot_id, app_id)?;
    let file = std::fs::File::create(out).with_context(|| format!("creating {}", out.display()))?;
    let mut zip = zip::ZipWriter::new(file);
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);

    let entries: [(&str, &[u8]); 3] = [
        ("manifest.json", manifest.as_bytes()),
        ("color.png", COLOR_ICON),
        ("outline.png", OUTLINE_ICON),
    ];
    for (name, bytes) in entries {
        zip.start_file(name, options)
            .with_context(|| format!("adding {name} to the package"))?;
        zip.write_all(bytes)
            .with_context(|| format!("writing {name} into the package"))?;
    }
    zip.finish().context("finishing the package")?;
    Ok(())
}

/// The manifest JSON with the ids and the crate version filled in, checked
/// against the rules Teams applies on upload.
pub fn render(bot_id: &str, app_id: Option<&str>) -> anyhow::Result<String> {
    let bot_id = guid(bot_id).context("bot.app_id is not a usable bot id")?;
    let app_id = match app_id {
        Some(id) => guid(id).context("the Teams app id")?,
        None => bot_id.clone(),
    };
    let text = TEMPLATE
        .replace("${bot_id}", &bot_id)
        .replace("${app_id}", &app_id)
        .replace("${version}", env!("CARGO_PKG_VERSION"));
    let manifest: Value =
        serde_json::from_str(&text).context("the manifest template is not JSON")?;
    check(&manifest)?;
    serde_json::to_string_pretty(&manifest).context("writing the manifest")
}

/// A GUID in its canonical lower-case form, or an error naming the value.
fn guid(text: &str) -> anyhow::Result<String> {
    match uuid::Uuid::parse_str(text.trim()) {
        Ok(id) => Ok(id.hyphenated().to_string()),
        Err(_) => bail!("{text:?} is not a GUID; Teams needs the Entra app id"),
    }
}

/// The limits the Teams manifest schema sets on the fields Cordon fills.
fn check(manifest: &Value) -> anyhow::Result<()> {
    let text = |pointer: &str| manifest.pointer(pointer).and_then(Value::as_str);
    let within = |pointer: &str, max: usize| -> anyhow::Result<()> {
        match text(pointer) {
            Some(value) if !value.is_empty() && value.chars().count() <= max => Ok(()),
            Some(_) => bail!("manifest {pointer} is empty or over {max} characters"),
            None => bail!("manifest {pointer} is missing"),
        }
    };
    within("/manifestVersion", 8)?;
    within("/version", 64)?;
    within("/developer/name", 32)?;
    within("/name/short", 30)?;
    within("/name/full", 100)?;
    within("/description/short", 80)?;
    within("/description/full", 4000)?;

    let bots = manifest["bots"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    if bots.len() != 1 {
        bail!("manifest must declare exactly one bot");
    }
    let lists = bots[0]["commandLists"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    if lists.len() > 3 {
        bail!("manifest has more than 3 command lists");
    }
    for list in lists {
        let commands = list["commands"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        if commands.len() > 10 {
            bail!("a command list has more than 10 commands");
        }
        for command in commands {
            let title = command["title"].as_str().unwrap_or("");
            let description = command["description"].as_str().unwrap_or("");
            if title.is_empty() || title.len() > 32 || description.len() > 128 {
                bail!("command {title:?}: title 1-32, description up to 128 characters");
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOT: &str = "6F3B1C2A-1111-4222-8333-944445555666";

    #[test]
    fn render_fills_the_bot_id_in_lower_case() {
        let manifest: Value = serde_json::from_str(&render(BOT, None).unwrap()).unwrap();
        let id = BOT.to_lowercase();
        assert_eq!(manifest["id"], id.as_str());
        assert_eq!(manifest["bots"][0]["botId"], id.as_str());
        assert_eq!(manifest["version"], env!("CARGO_PKG_VERSION"));
        let scopes = manifest["bots"][0]["scopes"].as_array().unwrap();
        for scope in ["team", "personal", "groupChat"] {
            assert!(scopes.iter().any(|s| s == scope), "{scope}");
        }
    }

    #[test]
    fn a_bot_id_that_is_not_a_guid_is_refused() {
        let error = render("my-bot", None).unwrap_err();
        assert!(format!("{error:#}").contains("not a GUID"), "{error:#}");
    }

    #[test]
    fn the_icons_have_the_sizes_teams_requires() {
        let size = |png: &[u8]| {
            let word = |at: usize| u32::from_be_bytes(png[at..at + 4].try_into().unwrap());
            (word(16), word(20))
        };
        assert_eq!(&COLOR_ICON[1..4], b"PNG");
        assert_eq!(size(COLOR_ICON), (192, 192));
        assert_eq!(size(OUTLINE_ICON), (32, 32));
    }

    #[test]
    fn pack_writes_a_zip_with_the_manifest_and_icons_at_its_root() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("cordon.zip");
        pack(BOT, None, &out).unwrap();

        let mut zip = zip::ZipArchive::new(std::fs::File::open(&out).unwrap()).unwrap();
        let mut names: Vec<String> = zip.file_names().map(str::to_string).collect();
        names.sort();
        assert_eq!(names, ["color.png", "manifest.json", "outline.png"]);
        let manifest: Value =
            serde_json::from_reader(zip.by_name("manifest.json").unwrap()).unwrap();
        assert_eq!(manifest["bots"][0]["botId"], BOT.to_lowercase().as_str());
    }
}
