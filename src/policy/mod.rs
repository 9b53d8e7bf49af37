//! Validation, classification and approver authorization for containment
//! requests.
//!
//! Everything here is a pure function of its arguments: no network, no
//! database, no clock, no logging. Callers gather the facts (from Graph,
//! ServiceNow and the Teams activity) and pass them in; the policy answers
//! with a [`Decision`] that names the rule that decided, so the outcome can
//! be explained to people and recorded in the audit trail.
//!
//! - [`check_request_shape`]: the request text alone, before any lookup.
//! - [`evaluate`]: the whole decision once target and incident are known.
//! - [`authorize_approver`]: whether a click on Approve counts.
//! - [`explain`]: the same decision, written for a person.

mod approver;
mod decision;
mod explain;
mod facts;
mod plan;
mod rules;
mod settings;
mod shape;
mod steps;
mod upn;
mod values;

pub use approver::authorize_approver;
pub use decision::{Decision, Plan, Refusal};
pub use explain::{explain, Explanation};
pub use facts::{ApproverFacts, IncidentFacts, RequestFacts, TargetFacts};
pub use plan::AutoApproval;
pub use settings::{AutoApproveRule, PolicyConfigError, PolicySettings, Runbooks};
pub use shape::{check_request_shape, check_upn};
pub use steps::{StepKind, UnknownStep, STEP_CATALOGUE};
pub use upn::{Upn, UpnError};
pub use values::{Classification, RequestKind, Risk, Source, UnknownValue};

/// Decides a request: shape, target, incident, then classification.
///
/// `target` is `None` when the directory has no such user, `incident` is
/// `None` when ServiceNow has no such incident; both are refusals.
pub fn evaluate(
    settings: &PolicySettings,
    request: &RequestFacts,
    target: Option<&TargetFacts>,
    incident: Option<&IncidentFacts>,
) -> Decision {
    let check = IncidentCheck::Required(incident);
    decide(settings, request, target, check, false)
}

/// Like [`evaluate`], for a containment that only ends sessions.
///
/// An account whose sign-in is already blocked is accepted, and
/// `block_sign_in` is left out of the runbook. For a release request this
/// is the same as [`evaluate`].
pub fn evaluate_revoke_only(
    settings: &PolicySettings,
    request: &RequestFacts,
    target: Option<&TargetFacts>,
    incident: Option<&IncidentFacts>,
) -> Decision {
    let check = IncidentCheck::Required(incident);
    decide(settings, request, target, check, true)
}

/// Whether the incident rules apply.
#[derive(Clone, Copy)]
enum IncidentCheck<'a> {
    Required(Option<&'a IncidentFacts>),
    Skipped,
}

fn decide(
    settings: &PolicySettings,
    request: &RequestFacts,
    target: Option<&TargetFacts>,
    incident: IncidentCheck<'_>,
    revoke_only: bool,
) -> Decision {
    match plan_for(settings, request, target, incident, revoke_only) {
        Ok(plan) => Decision::Proceed(plan),
        Err(refusal) => Decision::Refuse(refusal),
    }
}

fn plan_for(
    settings: &PolicySettings,
    request: &RequestFacts,
    target: Option<&TargetFacts>,
    incident: IncidentCheck<'_>,
    revoke_only: bool,
) -> Result<Plan, Refusal> {
    let upn = match incident {
        IncidentCheck::Required(_) => check_request_shape(settings, request)?,
        IncidentCheck::Skipped => shape::check_upn(settings, &request.upn)?,
    };

    let target = rules::check_target(settings, request, &upn, target, revoke_only)?;
    if let IncidentCheck::Required(incident) = incident {
        rules::check_incident(settings, request, &upn, incident)?;
    }

    let classified = plan::classify(settings, &upn, target);
    plan::build_plan(settings, request, classified, revoke_only)
}
