//! The operator commands, run as the `cordon` binary against a simulated
//! tenant: `config check`, `policy explain` and `manifest pack`.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Output;

use cordon::sandbox::tenant::ids;
use cordon::sandbox::SimulatedTenant;

/// A simulated tenant and a configuration file that points at it.
struct Setup {
    tenant: SimulatedTenant,
    dir: tempfile::TempDir,
    config: PathBuf,
}

async fn setup() -> Setup {
    let tenant = SimulatedTenant::start("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = format!("sqlite://{}", dir.path().join("cordon.db").display());
    let bind = "127.0.0.1:0".parse().unwrap();
    let toml = cordon::demo::sandbox_config_toml(&tenant, bind, &store);
    let config = dir.path().join("cordon.toml");
    std::fs::write(&config, toml).unwrap();
    Setup {
        tenant,
        dir,
        config,
    }
}

/// Runs `cordon ARGS --config FILE` with extra environment variables.
async fn cordon(config: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_cordon"));
    command.args(args).arg("--config").arg(config);
    command.env("RUST_LOG", "warn").env("NO_COLOR", "1");
    for (name, value) in env {
        command.env(name, value);
    }
    command.output().await.expect("cordon runs")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn all_output(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Graph writes the simulated tenant received, as "METHOD path".
fn graph_writes(tenant: &SimulatedTenant) -> Vec<String> {
    tenant
        .graph()
        .calls()
        .iter()
        .filter(|c| c.method != "GET" && !c.path.ends_with("checkMemberGroups"))
        .map(|c| format!("{} {}", c.method, c.path))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_check_passes_when_every_credential_and_permission_works() {
    let setup = setup().await;

    let output = cordon(&setup.config, &["config", "check"], &[]).await;

    let report = stdout(&output);
    assert!(output.status.success(), "{}", all_output(&output));
    for line in [
        "ok   store:",
        "ok   bot credentials: Bot Connector token issued",
        "ok   graph credentials: token issued",
        "ok   graph permission User.EnableDisableAccount.All: granted",
        "ok   graph permission User.RevokeSessions.All: granted",
        "ok   servicenow credentials: table API answered",
    ] {
        assert!(report.contains(line), "{line:?} not in\n{report}");
    }
    assert!(!report.contains("FAIL"), "{report}");
    assert!(graph_writes(&setup.tenant).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_check_names_the_step_that_lacks_a_graph_permission() {
    let setup = setup().await;
    setup
        .tenant
        .login()
        .withdraw_graph_role("User.RevokeSessions.All");

    let output = cordon(&setup.config, &["config", "check"], &[]).await;

    let report = stdout(&output);
    assert!(!output.status.success(), "{report}");
    let line = report
        .lines()
        .find(|l| l.contains("User.RevokeSessions.All"))
        .unwrap_or_else(|| panic!("no line for the permission in\n{report}"));
    assert!(line.starts_with("FAIL"), "{line}");
    assert!(line.contains("revoke"), "the step is not named: {line}");
    assert!(line.contains("403"), "{line}");
    let block = report
        .lines()
        .find(|l| l.contains("User.EnableDisableAccount.All"))
        .unwrap();
    assert!(block.starts_with("ok"), "{block}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_check_reports_each_refused_credential_without_showing_it() {
    let setup = setup().await;
    let wrong_graph = "graph-secret-that-is-wrong";
    let wrong_servicenow = "servicenow-password-that-is-wrong";

    let output = cordon(
        &setup.config,
        &["config", "check"],
        &[
            ("CORDON_GRAPH__CLIENT_SECRET", wrong_graph),
            ("CORDON_SERVICENOW__PASSWORD", wrong_servicenow),
        ],
    )
    .await;

    let report = stdout(&output);
    assert!(!output.status.success(), "{report}");
    assert!(report.contains("ok   bot credentials"), "{report}");
    assert!(report.contains("FAIL graph credentials"), "{report}");
    assert!(report.contains("FAIL servicenow credentials"), "{report}");
    let everything = all_output(&output);
    for secret in [wrong_graph, wrong_servicenow, ids::BOT_APP_PASSWORD] {
        assert!(
            !everything.contains(secret),
            "{secret} shown in\n{everything}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_configuration_with_an_unknown_key_is_refused_with_its_name() {
    let setup = setup().await;
    let mut text = std::fs::read_to_string(&setup.config).unwrap();
    text = text.replace("[policy]", "[policy]\napprover_groups = [\"typo\"]");
    std::fs::write(&setup.config, text).unwrap();

    let output = cordon(&setup.config, &["config", "check"], &[]).await;

    assert!(!output.status.success());
    let everything = all_output(&output);
    assert!(everything.contains("approver_groups"), "{everything}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_explain_names_the_rule_and_changes_nothing() {
    let setup = setup().await;
    let explain = |upn: &'static str| {
        let config = setup.config.clone();
        async move {
            let output = cordon(&config, &["policy", "explain", "--upn", upn], &[]).await;
            assert!(output.status.success(), "{}", all_output(&output));
            stdout(&output)
        }
    };

    let standard = explain(ids::ALICE_UPN).await;
    let privileged = explain(ids::ADELE_UPN).await;
    let break_glass = explain(ids::BREAK_GLASS_UPN).await;
    let outsider = explain("mallory@fabrikam.com").await;

    assert!(standard.contains("Decision: would proceed"), "{standard}");
    assert!(standard.contains("Rule: standard.default"), "{standard}");
    assert!(standard.contains("Approvals needed: 1"), "{standard}");
    assert!(
        privileged.contains("Classification: privileged"),
        "{privileged}"
    );
    assert!(privileged.contains("Approvals needed: 2"), "{privileged}");
    assert!(break_glass.contains("Decision: refused"), "{break_glass}");
    assert!(break_glass.contains("break-glass"), "{break_glass}");
    assert!(outsider.contains("Decision: refused"), "{outsider}");
    assert!(outsider.contains("fabrikam.com"), "{outsider}");
    assert!(graph_writes(&setup.tenant).is_empty());
    assert!(setup.tenant.connector().messages().is_empty());
    assert!(setup
        .tenant
        .servicenow()
        .work_notes(ids::INC_ALICE)
        .is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manifest_pack_writes_the_app_package_with_the_configured_bot_id() {
    let setup = setup().await;
    let zip_path = setup.dir.path().join("cordon.zip");
    let out = zip_path.to_str().unwrap();

    let output = cordon(&setup.config, &["manifest", "pack", "--out", out], &[]).await;

    assert!(output.status.success(), "{}", all_output(&output));
    let file = std::fs::File::open(&zip_path).unwrap();
    let mut zip = zip::ZipArchive::new(file).unwrap();
    let mut names: Vec<String> = zip.file_names().map(String::from).collect();
    names.sort();
    assert_eq!(names, ["color.png", "manifest.json", "outline.png"]);
    let mut manifest = String::new();
    zip.by_name("manifest.json")
        .unwrap()
        .read_to_string(&mut manifest)
        .unwrap();
    let manifest: serde_json::Value = serde_json::from_str(&manifest).unwrap();
    assert_eq!(manifest["bots"][0]["botId"], ids::BOT_APP_ID);
    assert!(!manifest.to_string().contains("${"), "{manifest}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sandbox_takes_configuration_overrides_from_the_environment() {
    use tokio::io::{AsyncBufReadExt, BufReader};

    let mut sandbox = tokio::process::Command::new(env!("CARGO_BIN_EXE_cordon"))
        .args(["sandbox", "--bind", "127.0.0.1:0"])
        .env("CORDON_API__RATE_LIMIT_BURST", "1")
        .env("CORDON_API__RATE_LIMIT_PER_MINUTE", "1")
        .env("RUST_LOG", "warn")
        .env("NO_COLOR", "1")
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("cordon sandbox starts");
    let mut lines = BufReader::new(sandbox.stdout.take().unwrap()).lines();
    let mut api = None;
    while let Ok(Some(line)) = lines.next_line().await {
        if let Some(rest) = line.trim().strip_prefix("automation API") {
            api = rest.split_whitespace().next().map(String::from);
            break;
        }
    }
    let api = api.expect("the banner names the automation API");
    let propose = |number: &str| {
        reqwest::Client::new()
            .post(&api)
            .bearer_auth(cordon::demo::API_TOKEN)
            .json(&serde_json::json!({
                "number": number,
                "affected_user": ids::ALICE_UPN,
                "requested_by": ids::SAM_UPN,
                "justification": "token theft",
            }))
            .send()
    };

    let first = propose(ids::INC_ALICE).await.unwrap();
    let second = propose(ids::INC_ALICE_INQUIRY).await.unwrap();

    assert_eq!(first.status(), 202);
    assert_eq!(second.status(), 429, "the burst of 1 from the environment");
}
