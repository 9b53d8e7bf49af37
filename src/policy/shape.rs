//! Checks made on the request text alone, before anything is looked up.

use super::decision::Refusal;
use super::facts::RequestFacts;
use super::settings::PolicySettings;
use super::upn::{Upn, UpnError};

/// Checks the UPN syntax, its domain and the incident number's shape.
///
/// Runs before any call to Graph or ServiceNow, so a typo or a look-alike
/// domain never costs a lookup.
pub fn check_request_shape(
    settings: &PolicySettings,
    facts: &RequestFacts,
) -> Result<Upn, Refusal> {
    let upn = check_upn(settings, &facts.upn)?;
    check_incident_number(&facts.incident_number)?;
    Ok(upn)
}

/// Parses `raw` and checks its domain is one the operator allows.
pub fn check_upn(settings: &PolicySettings, raw: &str) -> Result<Upn, Refusal> {
    let upn = Upn::parse(raw).map_err(|err| upn_refusal(raw, err))?;
    let allowed = settings.allowed_ascii_domains();
    if allowed.iter().any(|domain| domain == upn.domain()) {
        return Ok(upn);
    }

    let domains = settings.allowed_domains.join(", ");
    if upn.is_internationalized() {
        let reason = format!(
            "the domain of '{}' is written with non-ASCII or punycode \
             characters and is not an allowed domain; it looks like a \
             look-alike",
            raw.trim()
        );
        let hint = format!("type the address by hand; allowed: {domains}");
        return Err(Refusal::new("upn.lookalike_domain", reason).with_hint(hint));
    }
    let reason = format!("'{}' is not in an allowed domain", upn.domain());
    let hint = format!("allowed domains: {domains}");
    Err(Refusal::new("upn.domain_not_allowed", reason).with_hint(hint))
}

fn upn_refusal(raw: &str, err: UpnError) -> Refusal {
    if let UpnError::MixedScript(_) = err {
        let reason = format!("'{}' is refused: {err}", raw.trim());
        let hint = "type the address by hand rather than pasting it";
        return Refusal::new("upn.lookalike_domain", reason).with_hint(hint);
    }
    let reason = format!("'{}' is not a user principal name: {err}", raw);
    Refusal::new("upn.syntax", reason).with_hint("write it as user@domain, e.g. alice@contoso.com")
}

/// Accepts three or four letters followed by at least seven digits, as in
/// `INC0012345`.
fn check_incident_number(number: &str) -> Result<(), Refusal> {
    if is_incident_number(number.trim()) {
        return Ok(());
    }
    let reason = format!("'{number}' is not an incident number");
    Err(Refusal::new("incident.number_syntax", reason)
        .with_hint("use the ServiceNow number, e.g. INC0012345"))
}

pub(crate) fn is_incident_number(number: &str) -> bool {
    let letters = number
        .chars()
        .take_while(|c| c.is_ascii_alphabetic())
        .count();
    let digits = &number[letters..];
    (3..=4).contains(&letters) && digits.len() >= 7 && digits.chars().all(|c| c.is_ascii_digit())
}
