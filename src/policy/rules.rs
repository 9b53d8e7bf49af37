//! The rules a request must pass, in the order they are applied.
//!
//! Each rule either lets the request through or answers with a
//! [`Refusal`] carrying its stable id. The order matters only for which
//! refusal is shown first; every rule is always required.

use super::decision::Refusal;
use super::facts::{IncidentFacts, RequestFacts, TargetFacts};
use super::settings::PolicySettings;
use super::shape::is_incident_number;
use super::upn::Upn;
use super::values::RequestKind;

/// ServiceNow incident states after which nothing may be done on it.
const FINISHED_STATES: [(&str, &str); 4] = [
    ("6", "resolved"),
    ("7", "closed"),
    ("8", "canceled"),
    ("8", "cancelled"),
];

/// Checks the target account: it exists, is not protected and is in a
/// state the request can change.
///
/// With `revoke_only`, a containment of an account whose sign-in is already
/// blocked is accepted: only its sessions are left to end.
pub(crate) fn check_target<'a>(
    settings: &PolicySettings,
    request: &RequestFacts,
    upn: &Upn,
    target: Option<&'a TargetFacts>,
    revoke_only: bool,
) -> Result<&'a TargetFacts, Refusal> {
    let Some(target) = target else {
        let reason = format!("no user '{upn}' was found in the directory");
        return Err(Refusal::new("target.unknown", reason)
            .with_hint("check the spelling of the user principal name"));
    };
    check_break_glass(settings, target)?;
    check_same_account(upn, target)?;
    check_guest(settings, upn, target)?;
    let kind = request.kind;
    if !(revoke_only && kind == RequestKind::Containment) {
        check_account_state(kind, upn, target)?;
    }
    Ok(target)
}

fn check_break_glass(settings: &PolicySettings, target: &TargetFacts) -> Result<(), Refusal> {
    if !contains_id(&settings.break_glass_object_ids, &target.object_id) {
        return Ok(());
    }
    let reason = format!(
        "'{}' is a break-glass account; the bot never acts on it",
        target.upn
    );
    let hint = "follow the break-glass procedure by hand: rotate its \
                credentials, review its sign-ins and escalate to the \
                identity owners";
    Err(Refusal::new("target.break_glass", reason).with_hint(hint))
}

fn check_same_account(upn: &Upn, target: &TargetFacts) -> Result<(), Refusal> {
    let found = Upn::parse(&target.upn).ok();
    if found.as_ref() == Some(upn) {
        return Ok(());
    }
    let reason = format!(
        "the directory returned '{}' for '{upn}'; refusing to act on a \
         different account",
        target.upn
    );
    Err(Refusal::new("target.upn_mismatch", reason))
}

fn check_guest(settings: &PolicySettings, upn: &Upn, target: &TargetFacts) -> Result<(), Refusal> {
    let guest = upn.is_guest_form()
        || target
            .user_type
            .as_deref()
            .is_some_and(|kind| kind.eq_ignore_ascii_case("guest"));
    if !guest || settings.allow_guests {
        return Ok(());
    }
    let reason = format!(
        "'{upn}' is a guest account and guests are not \
                          contained by this policy"
    );
    let hint = "ask the guest's home tenant to contain the account, or \
                remove the guest from this tenant by hand";
    Err(Refusal::new("target.guest", reason).with_hint(hint))
}

fn check_account_state(kind: RequestKind, upn: &Upn, target: &TargetFacts) -> Result<(), Refusal> {
    match (kind, target.account_enabled) {
        (RequestKind::Containment, false) => {
            let reason = format!("sign-in for '{upn}' is already blocked");
            let hint = "if sessions may still be live, ask for a \
                        revoke-only containment, which ends them without \
                        touching sign-in: `revoke <upn> <incident> \
                        <justification>` in Teams, or `security_action = \
                        revoke_sessions` from ServiceNow or the API";
            Err(Refusal::new("target.already_disabled", reason).with_hint(hint))
        }
        (RequestKind::Release, true) => {
            let reason = format!("sign-in for '{upn}' is enabled; there is nothing to release");
            Err(Refusal::new("target.not_disabled", reason))
        }
        _ => Ok(()),
    }
}

/// Checks the incident is open, of an allowed category, fully filled in
/// and about this very user.
pub(crate) fn check_incident(
    settings: &PolicySettings,
    request: &RequestFacts,
    upn: &Upn,
    incident: Option<&IncidentFacts>,
) -> Result<(), Refusal> {
    let Some(incident) = incident else {
        let reason = format!(
            "incident '{}' was not found in ServiceNow",
            request.incident_number
        );
        return Err(Refusal::new("incident.missing", reason)
            .with_hint("open an incident first and name it in the request"));
    };
    check_incident_number_matches(request, incident)?;
    check_incident_open(incident)?;
    check_category(settings, incident)?;
    check_required_fields(incident)?;
    check_affected_user(upn, incident)
}

fn check_incident_number_matches(
    request: &RequestFacts,
    incident: &IncidentFacts,
) -> Result<(), Refusal> {
    let asked = request.incident_number.trim();
    let found = incident.number.trim();
    if is_incident_number(found) && asked.eq_ignore_ascii_case(found) {
        return Ok(());
    }
    let reason = format!("ServiceNow returned incident '{found}' when asked for '{asked}'");
    Err(Refusal::new("incident.number_mismatch", reason))
}

fn check_incident_open(incident: &IncidentFacts) -> Result<(), Refusal> {
    let state = incident.state.trim();
    let finished = FINISHED_STATES
        .iter()
        .find(|(code, word)| state == *code || state.eq_ignore_ascii_case(word));
    let Some((_, word)) = finished else {
        return Ok(());
    };
    let reason = format!("incident {} is {word}", incident.number);
    Err(Refusal::new("incident.closed", reason)
        .with_hint("reopen it or open a new incident for this compromise"))
}

fn check_category(settings: &PolicySettings, incident: &IncidentFacts) -> Result<(), Refusal> {
    let category = clean(incident.category.as_deref());
    let subcategory = clean(incident.subcategory.as_deref());
    let allowed = settings
        .incident_categories
        .iter()
        .any(|entry| category_matches(entry, category, subcategory));
    if allowed {
        return Ok(());
    }

    let shown = match (category, subcategory) {
        (None, _) => "no category".to_owned(),
        (Some(cat), None) => format!("category '{cat}'"),
        (Some(cat), Some(sub)) => format!("category '{cat}/{sub}'"),
    };
    let reason = format!(
        "incident {} has {shown}, which is not a containment category",
        incident.number
    );
    let hint = format!(
        "set the category to one of: {}",
        settings.incident_categories.join(", ")
    );
    Err(Refusal::new("incident.category_not_allowed", reason).with_hint(hint))
}

/// `entry` is `category` (any subcategory) or `category/subcategory`.
fn category_matches(entry: &str, category: Option<&str>, subcategory: Option<&str>) -> bool {
    let Some(category) = category else {
        return false;
    };
    let (want_cat, want_sub) = match entry.split_once('/') {
        Some((cat, sub)) => (cat.trim(), Some(sub.trim())),
        None => (entry.trim(), None),
    };
    let sub_ok = match (want_sub, subcategory) {
        (None, _) => true,
        (Some(want), Some(have)) => want.eq_ignore_ascii_case(have),
        (Some(_), None) => false,
    };
    want_cat.eq_ignore_ascii_case(category) && sub_ok
}

fn check_required_fields(incident: &IncidentFacts) -> Result<(), Refusal> {
    let fields = [
        ("requester", &incident.requester),
        ("affected user", &incident.affected_user),
        ("justification", &incident.justification),
    ];
    let missing = fields
        .iter()
        .find(|(_, value)| clean(value.as_deref()).is_none());
    let Some((field, _)) = missing else {
        return Ok(());
    };
    let reason = format!("incident {} has no {field}", incident.number);
    let hint = format!("fill in the {field} on the incident and ask again");
    Err(Refusal::new("incident.missing_field", reason).with_hint(hint))
}

fn check_affected_user(upn: &Upn, incident: &IncidentFacts) -> Result<(), Refusal> {
    let affected = incident.affected_user.as_deref().unwrap_or_default();
    if Upn::parse(affected).ok().as_ref() == Some(upn) {
        return Ok(());
    }
    let reason = format!(
        "incident {} is about '{}', not '{upn}'",
        incident.number,
        affected.trim()
    );
    let hint = "name the incident opened for this user";
    Err(Refusal::new("incident.affected_user_mismatch", reason).with_hint(hint))
}

/// Case-insensitive membership, as Entra ids are GUIDs in either case.
pub(crate) fn contains_id(list: &[String], id: &str) -> bool {
    let id = id.trim();
    !id.is_empty() && list.iter().any(|item| item.trim().eq_ignore_ascii_case(id))
}

fn clean(value: Option<&str>) -> Option<&str> {
    value.map(str::trim).filter(|text| !text.is_empty())
}
