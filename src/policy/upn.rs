//! The user principal name as a checked value.
//!
//! A [`Upn`] can only be built by [`Upn::parse`], which trims, applies
//! Unicode NFKC, lowercases and checks the syntax, so two spellings of the
//! same account compare equal. The domain is kept in its IDNA ASCII form;
//! whether that domain is one the operator allows is decided by the policy,
//! which also refuses internationalized look-alikes.

use std::fmt;

use thiserror::Error;
use unicode_normalization::UnicodeNormalization;

/// Longest local part accepted (the part before `@`).
const MAX_LOCAL_LEN: usize = 64;
/// Longest domain accepted, in its ASCII form.
const MAX_DOMAIN_LEN: usize = 255;
/// The suffix Entra ID gives the local part of a guest account.
const GUEST_SUFFIX: &str = "#ext#";

/// Why a string is not a user principal name.
///
/// Each variant becomes a refusal under the rule `upn.syntax`.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum UpnError {
    #[error("the user principal name is empty")]
    Empty,
    #[error("'{0}' has no '@'; expected user@domain")]
    MissingAt(String),
    #[error("'{0}' has more than one '@'")]
    SeveralAts(String),
    #[error("the part before '@' is empty")]
    EmptyLocalPart,
    #[error("the part before '@' is longer than {MAX_LOCAL_LEN} characters")]
    LocalPartTooLong,
    #[error("the part before '@' contains '{0}', which is not allowed")]
    InvalidLocalChar(char),
    #[error("'#' is only allowed in the guest form 'name#EXT#@domain'")]
    MisplacedHash,
    #[error("the part before '@' starts, ends or repeats a '.'")]
    MisplacedDot,
    #[error("the domain '{0}' is not a valid domain name")]
    InvalidDomain(String),
    #[error("the domain is longer than {MAX_DOMAIN_LEN} characters")]
    DomainTooLong,
    #[error("the domain label '{0}' mixes scripts; this is a look-alike")]
    MixedScript(String),
}

/// A normalised user principal name such as `alice@contoso.com`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Upn {
    text: String,
    at: usize,
    internationalized: bool,
}

impl Upn {
    /// Normalises and checks `raw`.
    pub fn parse(raw: &str) -> Result<Upn, UpnError> {
        let normalised: String = raw.trim().nfkc().collect::<String>();
        let normalised = normalised.to_lowercase();
        if normalised.is_empty() {
            return Err(UpnError::Empty);
        }

        let (local, domain) = split_at_sign(&normalised)?;
        check_local_part(local)?;
        let (ascii_domain, internationalized) = check_domain(domain)?;

        let text = format!("{local}@{ascii_domain}");
        Ok(Upn {
            at: local.len(),
            text,
            internationalized,
        })
    }

    /// The normalised text, `local@domain`, with the domain in ASCII.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The part before `@`.
    pub fn local_part(&self) -> &str {
        &self.text[..self.at]
    }

    /// The domain in its IDNA ASCII form (punycode for non-ASCII names).
    pub fn domain(&self) -> &str {
        &self.text[self.at + 1..]
    }

    /// Whether the domain was written with non-ASCII characters or in
    /// punycode; such a domain is a look-alike unless explicitly allowed.
    pub fn is_internationalized(&self) -> bool {
        self.internationalized
    }

    /// Whether the local part has the guest form `name#ext#`.
    pub fn is_guest_form(&self) -> bool {
        self.local_part().ends_with(GUEST_SUFFIX)
    }
}

impl fmt::Display for Upn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl std::str::FromStr for Upn {
    type Err = UpnError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Upn::parse(s)
    }
}

fn split_at_sign(text: &str) -> Result<(&str, &str), UpnError> {
    let mut parts = text.split('@');
    let local = parts.next().unwrap_or_default();
    let Some(domain) = parts.next() else {
        return Err(UpnError::MissingAt(text.to_owned()));
    };
    if parts.next().is_some() {
        return Err(UpnError::SeveralAts(text.to_owned()));
    }
    Ok((local, domain))
}

fn check_local_part(local: &str) -> Result<(), UpnError> {
    if local.is_empty() {
        return Err(UpnError::EmptyLocalPart);
    }
    if local.chars().count() > MAX_LOCAL_LEN {
        return Err(UpnError::LocalPartTooLong);
    }

    // The guest form keeps the home address, `_`-joined, before `#ext#`.
    let name = local.strip_suffix(GUEST_SUFFIX).unwrap_or(local);
    if name.is_empty() {
        return Err(UpnError::EmptyLocalPart);
    }
    if name.contains('#') {
        return Err(UpnError::MisplacedHash);
    }
    if let Some(bad) = name.chars().find(|c| !is_local_char(*c)) {
        return Err(UpnError::InvalidLocalChar(bad));
    }
    if name.starts_with('.') || name.ends_with('.') || name.contains("..") {
        return Err(UpnError::MisplacedDot);
    }
    Ok(())
}

fn is_local_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '+' | '\'')
}

/// Maps the domain to ASCII and reports whether it was internationalized.
fn check_domain(domain: &str) -> Result<(String, bool), UpnError> {
    let invalid = || UpnError::InvalidDomain(domain.to_owned());
    let ascii = idna::domain_to_ascii(domain).map_err(|_| invalid())?;
    if ascii.len() > MAX_DOMAIN_LEN {
        return Err(UpnError::DomainTooLong);
    }
    if !is_hostname(&ascii) {
        return Err(invalid());
    }

    let internationalized = !domain.is_ascii() || has_punycode_label(&ascii);
    if internationalized {
        check_single_script(&ascii)?;
    }
    Ok((ascii, internationalized))
}

fn is_hostname(ascii: &str) -> bool {
    let labels: Vec<&str> = ascii.split('.').collect();
    labels.len() >= 2 && labels.iter().all(|label| is_label(label))
}

fn is_label(label: &str) -> bool {
    let chars_ok = label
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    chars_ok && (1..=63).contains(&label.len()) && !label.starts_with('-') && !label.ends_with('-')
}

fn has_punycode_label(ascii: &str) -> bool {
    ascii.split('.').any(|label| label.starts_with("xn--"))
}

/// Refuses any label whose Unicode form mixes letters of several scripts.
fn check_single_script(ascii: &str) -> Result<(), UpnError> {
    let (unicode, result) = idna::domain_to_unicode(ascii);
    if result.is_err() {
        return Err(UpnError::InvalidDomain(ascii.to_owned()));
    }
    match unicode.split('.').find(|label| is_mixed_script(label)) {
        Some(label) => Err(UpnError::MixedScript(label.to_owned())),
        None => Ok(()),
    }
}

/// The writing systems told apart when looking for look-alikes.
///
/// This is a coarse map by Unicode block, not the full Unicode script
/// property: it separates the scripts most used for look-alikes (Latin,
/// Greek, Cyrillic, Armenian) and puts every other letter in one bucket
/// per 128-code-point block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Script {
    Latin,
    Greek,
    Cyrillic,
    Armenian,
    Other(u32),
}

fn script_of(c: char) -> Option<Script> {
    if c.is_ascii_digit() || c == '-' || !c.is_alphabetic() {
        return None;
    }
    let script = match u32::from(c) {
        0x0041..=0x024F | 0x1E00..=0x1EFF | 0x2C60..=0x2C7F => Script::Latin,
        0xA720..=0xA7FF | 0xAB30..=0xAB6F => Script::Latin,
        0x0370..=0x03FF | 0x1F00..=0x1FFF => Script::Greek,
        0x0400..=0x052F | 0x1C80..=0x1C8F => Script::Cyrillic,
        0x2DE0..=0x2DFF | 0xA640..=0xA69F => Script::Cyrillic,
        0x0530..=0x058F | 0xFB13..=0xFB17 => Script::Armenian,
        other => Script::Other(other / 0x80),
    };
    Some(script)
}

fn is_mixed_script(label: &str) -> bool {
    let mut scripts = label.chars().filter_map(script_of);
    match scripts.next() {
        Some(first) => scripts.any(|script| script != first),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uppercase_and_spaces_are_normalised() {
        let upn = Upn::parse("  Alice.Smith@Contoso.COM ").unwrap();
        assert_eq!(upn.as_str(), "alice.smith@contoso.com");
        assert_eq!(upn.domain(), "contoso.com");
        assert!(!upn.is_internationalized());
    }

    #[test]
    fn guest_form_is_accepted_only_with_the_ext_suffix() {
        let guest = Upn::parse("bob_fabrikam.com#EXT#@contoso.com").unwrap();
        assert!(guest.is_guest_form());
        assert_eq!(Upn::parse("bo#b@contoso.com"), Err(UpnError::MisplacedHash));
    }

    #[test]
    fn cyrillic_letter_in_a_latin_label_is_mixed_script() {
        let err = Upn::parse("alice@c\u{043e}ntoso.com").unwrap_err();
        assert!(matches!(err, UpnError::MixedScript(_)), "{err:?}");
    }

    #[test]
    fn punycode_domain_is_marked_internationalized() {
        let upn = Upn::parse("alice@xn--mnchen-3ya.de").unwrap();
        assert!(upn.is_internationalized());
    }

    #[test]
    fn bad_shapes_are_refused() {
        for raw in ["", "alice", "a@b@c.com", "@contoso.com", "a@localhost"] {
            assert!(Upn::parse(raw).is_err(), "{raw}");
        }
        for raw in [".a@contoso.com", "a..b@contoso.com", "a b@contoso.com"] {
            assert!(Upn::parse(raw).is_err(), "{raw}");
        }
    }
}
