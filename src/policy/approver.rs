//! Who may approve a request.
//!
//! The approver is identified by `from.aadObjectId` and the tenant in
//! `channelData.tenant.id`, never by display name.

use super::decision::Refusal;
use super::facts::ApproverFacts;
use super::rules::contains_id;
use super::settings::PolicySettings;

/// Accepts the approver or says why not.
///
/// Refused: no object id, another tenant, the requester themselves, no
/// approver group configured or the approver not in one, and an approver
/// who already approved this request (dual control needs two people).
pub fn authorize_approver(
    settings: &PolicySettings,
    configured_tenant: &str,
    facts: &ApproverFacts,
) -> Result<(), Refusal> {
    let approver = approver_id(facts)?;
    check_tenant(configured_tenant, facts.tenant_id)?;
    if approver.eq_ignore_ascii_case(facts.requester_id.trim()) {
        let reason = "you made this request and cannot approve it yourself";
        return Err(Refusal::new("approver.self_approval", reason)
            .with_hint("ask another on-call approver"));
    }
    check_group(settings, facts.in_approver_group)?;
    if contains_id(facts.prior_approver_ids, approver) {
        let reason = "you have already approved this request";
        return Err(Refusal::new("approver.already_approved", reason)
            .with_hint("a second approval must come from someone else"));
    }
    Ok(())
}

fn approver_id<'a>(facts: &ApproverFacts<'a>) -> Result<&'a str, Refusal> {
    match facts.object_id.map(str::trim) {
        Some(id) if !id.is_empty() => Ok(id),
        _ => {
            let reason = "the approval carries no Entra ID object id, so the \
                          approver cannot be identified";
            Err(Refusal::new("approver.unidentified", reason).with_hint(
                "approve from Microsoft Teams signed in with a \
                            work account",
            ))
        }
    }
}

fn check_tenant(configured: &str, given: Option<&str>) -> Result<(), Refusal> {
    let given = given.map(str::trim).unwrap_or_default();
    let configured = configured.trim();
    if !configured.is_empty() && given.eq_ignore_ascii_case(configured) {
        return Ok(());
    }
    let reason = "the approval comes from another tenant";
    Err(Refusal::new("approver.other_tenant", reason))
}

fn check_group(settings: &PolicySettings, in_approver_group: bool) -> Result<(), Refusal> {
    if settings.approver_group_ids.is_empty() {
        let reason = "no approver group is configured, so nobody may approve";
        return Err(Refusal::new("approver.no_group_configured", reason));
    }
    if in_approver_group {
        return Ok(());
    }
    let reason = "you are not in an approver group for containment requests";
    Err(Refusal::new("approver.not_in_group", reason)
        .with_hint("ask a member of the security approvers to approve"))
}
