//! A readable account of what the policy would do with a request, for
//! `cordon policy explain` and the Teams `policy <upn>` command.

use std::fmt;

use super::decision::Decision;
use super::facts::{IncidentFacts, RequestFacts, TargetFacts};
use super::plan::{auto_approval, AutoApproval};
use super::settings::PolicySettings;
use super::values::{RequestKind, Risk, Source};
use super::{decide, IncidentCheck};

/// What would happen to a request, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Explanation {
    pub kind: RequestKind,
    pub upn: String,
    pub source: Source,
    pub risk: Option<Risk>,
    /// Whether incident rules were applied; they are skipped when no
    /// incident is given, as in `policy <upn>`.
    pub incident_checked: bool,
    pub decision: Decision,
    /// Present when the request would proceed.
    pub auto_approval: Option<AutoApproval>,
}

/// Explains the request; with no incident, the incident rules are skipped
/// and the explanation says so, so a UPN alone can be looked at.
pub fn explain(
    settings: &PolicySettings,
    request: &RequestFacts,
    target: Option<&TargetFacts>,
    incident: Option<&IncidentFacts>,
) -> Explanation {
    let check = match incident {
        Some(incident) => IncidentCheck::Required(Some(incident)),
        None => IncidentCheck::Skipped,
    };
    let decision = decide(settings, request, target, check, false);
    let auto_approval = decision
        .plan()
        .map(|plan| auto_approval(settings, request, plan.classification));
    Explanation {
        kind: request.kind,
        upn: request.upn.trim().to_owned(),
        source: request.source,
        risk: request.risk,
        incident_checked: incident.is_some(),
        decision,
        auto_approval,
    }
}

impl fmt::Display for Explanation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let risk = self.risk.map_or("none", Risk::as_str);
        writeln!(
            f,
            "Request: {} {} (source {}, risk {risk})",
            self.kind, self.upn, self.source
        )?;
        match &self.decision {
            Decision::Proceed(_) => self.fmt_plan(f),
            Decision::Refuse(refusal) => {
                writeln!(f, "Decision: refused")?;
                writeln!(f, "Rule: {}", refusal.rule)?;
                write!(f, "Reason: {}", refusal.reason)?;
                match &refusal.hint {
                    Some(hint) => write!(f, "\nHint: {hint}"),
                    None => Ok(()),
                }
            }
        }
    }
}

impl Explanation {
    fn fmt_plan(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Decision::Proceed(plan) = &self.decision else {
            return Ok(());
        };
        if self.incident_checked {
            writeln!(f, "Decision: proceed")?;
        } else {
            writeln!(
                f,
                "Decision: would proceed (incident not checked; a real \
                 request must name an open incident about this user)"
            )?;
        }
        writeln!(f, "Rule: {}", plan.rule)?;
        writeln!(f, "Classification: {}", plan.classification)?;
        writeln!(f, "Approvals needed: {}", plan.required_approvals)?;
        let steps: Vec<&str> = plan.steps.iter().map(|s| s.as_str()).collect();
        writeln!(f, "Runbook: {} ({})", plan.runbook, steps.join(" -> "))?;
        if let Some(auto) = &self.auto_approval {
            write!(f, "Auto-approve: {auto}")?;
        }
        for notice in &plan.notices {
            write!(f, "\nNotice: {notice}")?;
        }
        Ok(())
    }
}
