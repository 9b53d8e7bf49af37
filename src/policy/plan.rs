//! Classification of the target and the plan that follows from it:
//! runbook, number of approvals, notices and the auto-approve verdict.

use std::fmt;

use super::decision::{Plan, Refusal};
use super::facts::{RequestFacts, TargetFacts};
use super::rules::contains_id;
use super::settings::PolicySettings;
use super::steps::StepKind;
use super::upn::Upn;
use super::values::{Classification, RequestKind, Risk, Source};

/// A classification and the rule that produced it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Classified {
    pub classification: Classification,
    pub rule: &'static str,
}

/// Why the auto-approve rule did or did not fire for a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AutoApproval {
    /// No rule is configured.
    Off,
    /// Releases always need a human.
    NotForRelease,
    /// Only standard accounts are ever auto-approved.
    NotForClassification(Classification),
    /// The request came from a source the rule does not trust.
    SourceNotAllowed(Source),
    /// The request's risk is missing or below the rule's minimum.
    RiskTooLow { required: Risk, given: Option<Risk> },
    /// The rule fired; its name is recorded as the approver.
    Approved { rule: String },
}

impl AutoApproval {
    /// The rule name, when the request is auto-approved.
    pub fn approved_by(&self) -> Option<&str> {
        match self {
            AutoApproval::Approved { rule } => Some(rule),
            _ => None,
        }
    }
}

impl fmt::Display for AutoApproval {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AutoApproval::Off => f.write_str("off (no rule configured)"),
            AutoApproval::NotForRelease => f.write_str("not applied; releases always need a human"),
            AutoApproval::NotForClassification(kind) => {
                write!(f, "not applied; {kind} targets always need a human")
            }
            AutoApproval::SourceNotAllowed(source) => {
                write!(f, "not applied; source '{source}' is not trusted")
            }
            AutoApproval::RiskTooLow { required, given } => {
                let given = given.map_or("none", Risk::as_str);
                write!(f, "not applied; risk {given} is below {required}")
            }
            AutoApproval::Approved { rule } => {
                write!(f, "approved by rule '{rule}'")
            }
        }
    }
}

/// Privileged first (group, then role), then service account (group, then
/// UPN pattern), else standard.
pub(crate) fn classify(settings: &PolicySettings, upn: &Upn, target: &TargetFacts) -> Classified {
    let in_any =
        |ids: &[String], configured: &[String]| ids.iter().any(|id| contains_id(configured, id));
    let (classification, rule) = if in_any(&target.member_of, &settings.privileged_group_ids) {
        (Classification::Privileged, "privileged.group_member")
    } else if in_any(&target.role_ids, &settings.privileged_role_ids) {
        (Classification::Privileged, "privileged.role_holder")
    } else if in_any(&target.member_of, &settings.service_account_group_ids) {
        (
            Classification::ServiceAccount,
            "service_account.group_member",
        )
    } else if matches_any_pattern(settings, upn) {
        (
            Classification::ServiceAccount,
            "service_account.upn_pattern",
        )
    } else {
        (Classification::Standard, "standard.default")
    };
    Classified {
        classification,
        rule,
    }
}

fn matches_any_pattern(settings: &PolicySettings, upn: &Upn) -> bool {
    settings.service_account_upn_patterns.iter().any(|pattern| {
        let pattern = pattern.trim().to_lowercase();
        glob_matches(pattern.as_bytes(), upn.as_str().as_bytes())
    })
}

/// `*` matches any run of characters, `?` exactly one; nothing else is
/// special.
fn glob_matches(pattern: &[u8], text: &[u8]) -> bool {
    match pattern.split_first() {
        None => text.is_empty(),
        Some((b'*', rest)) => (0..=text.len()).any(|skip| glob_matches(rest, &text[skip..])),
        Some((head, rest)) => match text.split_first() {
            Some((first, tail)) if *head == b'?' || head == first => glob_matches(rest, tail),
            _ => false,
        },
    }
}

/// Whether the configured auto-approve rule fires for this request.
pub(crate) fn auto_approval(
    settings: &PolicySettings,
    request: &RequestFacts,
    classification: Classification,
) -> AutoApproval {
    let Some(rule) = &settings.auto_approve else {
        return AutoApproval::Off;
    };
    if request.kind == RequestKind::Release {
        return AutoApproval::NotForRelease;
    }
    if classification != Classification::Standard {
        return AutoApproval::NotForClassification(classification);
    }
    // Teams requests come from people who can ask for approval; only a
    // machine source is ever trusted, whatever the rule lists.
    let trusted = request.source == Source::Siem && rule.sources.contains(&request.source);
    if !trusted {
        return AutoApproval::SourceNotAllowed(request.source);
    }
    match request.risk {
        Some(risk) if risk >= rule.min_risk => AutoApproval::Approved {
            rule: rule.name.clone(),
        },
        given => AutoApproval::RiskTooLow {
            required: rule.min_risk,
            given,
        },
    }
}

/// Builds the plan for a classified target.
pub(crate) fn build_plan(
    settings: &PolicySettings,
    request: &RequestFacts,
    classified: Classified,
    revoke_only: bool,
) -> Result<Plan, Refusal> {
    let runbook = runbook_name(request.kind, classified.classification);
    let mut steps = settings.runbooks.steps(runbook).map_err(|err| {
        Refusal::new("policy.invalid_runbook", err.to_string())
            .with_hint("fix the [policy.runbooks] table and restart")
    })?;
    let containment = request.kind == RequestKind::Containment;
    if revoke_only && containment {
        steps.retain(|step| *step != StepKind::BlockSignIn);
    }

    let auto = auto_approval(settings, request, classified.classification);
    Ok(Plan {
        classification: classified.classification,
        required_approvals: required_approvals(classified.classification),
        runbook: runbook.to_owned(),
        notices: notices(classified.classification, &steps, containment),
        revoke_only: containment && !steps.contains(&StepKind::BlockSignIn),
        steps,
        rule: classified.rule.to_owned(),
        auto_approved_by: auto.approved_by().map(str::to_owned),
    })
}

fn runbook_name(kind: RequestKind, classification: Classification) -> &'static str {
    match (kind, classification) {
        (RequestKind::Release, _) => "release",
        (_, Classification::Standard) => "standard",
        (_, Classification::Privileged) => "privileged",
        (_, Classification::ServiceAccount) => "service_account",
    }
}

fn required_approvals(classification: Classification) -> u32 {
    match classification {
        Classification::Privileged => 2,
        Classification::Standard | Classification::ServiceAccount => 1,
    }
}

fn notices(classification: Classification, steps: &[StepKind], containment: bool) -> Vec<String> {
    let mut notices = Vec::new();
    if classification == Classification::Privileged {
        notices.push("On-call: privileged target; two distinct approvers are needed.".to_owned());
    }
    if containment && !steps.contains(&StepKind::BlockSignIn) {
        notices.push("Sign-in stays enabled; only sessions are revoked.".to_owned());
    }
    if steps.contains(&StepKind::NotifyOwner) {
        notices.push("The account's owner is notified.".to_owned());
    }
    notices
}

#[cfg(test)]
mod tests {
    use super::glob_matches;

    #[test]
    fn glob_stars_and_question_marks_match() {
        let hit = |p: &str, t: &str| glob_matches(p.as_bytes(), t.as_bytes());
        assert!(hit("svc-*@contoso.com", "svc-backup@contoso.com"));
        assert!(hit("svc-??@contoso.com", "svc-ab@contoso.com"));
        assert!(!hit("svc-*@contoso.com", "svc-backup@fabrikam.com"));
        assert!(!hit("svc-*@contoso.com", "alice@contoso.com"));
    }
}
