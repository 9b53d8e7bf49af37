//! What the policy answers: a plan to follow or a refusal to explain.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::steps::StepKind;
use super::values::Classification;

/// The outcome of [`evaluate`](super::evaluate).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "decision", rename_all = "snake_case")]
pub enum Decision {
    Proceed(Plan),
    Refuse(Refusal),
}

/// How an accepted request is to be carried out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    pub classification: Classification,
    /// Distinct human approvals needed: 1, or 2 for privileged targets.
    /// When `auto_approved_by` is set, that rule stands in for them.
    pub required_approvals: u32,
    /// `standard`, `privileged`, `service_account` or `release`.
    pub runbook: String,
    pub steps: Vec<StepKind>,
    /// The rule that classified the target, e.g. `privileged.group_member`.
    pub rule: String,
    /// Name of the auto-approve rule, when it fired.
    pub auto_approved_by: Option<String>,
    /// Sentences to show alongside the approval card.
    pub notices: Vec<String>,
    /// The runbook ends sessions without blocking sign-in.
    pub revoke_only: bool,
}

/// Why a request is refused, in words for the person who made it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refusal {
    /// Stable id such as `target.break_glass`, for audit and metrics.
    pub rule: String,
    /// One sentence naming what is wrong.
    pub reason: String,
    /// What to do instead, when there is something.
    pub hint: Option<String>,
}

impl Decision {
    /// The rule that decided, whichever way.
    pub fn rule(&self) -> &str {
        match self {
            Decision::Proceed(plan) => &plan.rule,
            Decision::Refuse(refusal) => &refusal.rule,
        }
    }

    pub fn plan(&self) -> Option<&Plan> {
        match self {
            Decision::Proceed(plan) => Some(plan),
            Decision::Refuse(_) => None,
        }
    }

    pub fn refusal(&self) -> Option<&Refusal> {
        match self {
            Decision::Proceed(_) => None,
            Decision::Refuse(refusal) => Some(refusal),
        }
    }
}

impl Refusal {
    pub fn new(rule: &str, reason: impl Into<String>) -> Refusal {
        Refusal {
            rule: rule.to_owned(),
            reason: reason.into(),
            hint: None,
        }
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Refusal {
        self.hint = Some(hint.into());
        self
    }
}

impl fmt::Display for Refusal {
    /// `reason; hint` on one line, as error messages read.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.reason)?;
        match &self.hint {
            Some(hint) => write!(f, "; {hint}"),
            None => Ok(()),
        }
    }
}

impl std::error::Error for Refusal {}
