//! The fixed catalogue of runbook steps.
//!
//! Runbooks in the configuration name steps by these words; the runner
//! knows how to perform each of them and nothing else.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Every step name a runbook may use.
pub const STEP_CATALOGUE: &[&str] = &[
    "servicenow_start",
    "block_sign_in",
    "revoke_sessions",
    "reset_auth_methods",
    "require_password_change",
    "verify",
    "teams_notice",
    "notify_owner",
    "servicenow_summary",
    "enable_sign_in",
];

/// One step of a runbook.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepKind {
    /// Work note on the incident and move it to In Progress.
    ServicenowStart,
    /// Set `accountEnabled = false`.
    BlockSignIn,
    /// Invalidate refresh tokens and session cookies.
    RevokeSessions,
    /// Remove the registered authentication methods.
    ResetAuthMethods,
    /// Force a password change at next sign-in.
    RequirePasswordChange,
    /// Read the account back and check the containment took.
    Verify,
    /// Post the outcome in the Teams thread.
    TeamsNotice,
    /// Tell the account's owner (for service accounts).
    NotifyOwner,
    /// Work note summarising every step on the incident.
    ServicenowSummary,
    /// Set `accountEnabled = true`; release runbooks only.
    EnableSignIn,
}

/// A step name outside [`STEP_CATALOGUE`].
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("'{0}' is not a runbook step; known steps: {known}",
    known = STEP_CATALOGUE.join(", "))]
pub struct UnknownStep(pub String);

impl StepKind {
    const ALL: [StepKind; 10] = [
        StepKind::ServicenowStart,
        StepKind::BlockSignIn,
        StepKind::RevokeSessions,
        StepKind::ResetAuthMethods,
        StepKind::RequirePasswordChange,
        StepKind::Verify,
        StepKind::TeamsNotice,
        StepKind::NotifyOwner,
        StepKind::ServicenowSummary,
        StepKind::EnableSignIn,
    ];

    /// The name used in configuration, in the journal and in the thread.
    pub fn as_str(self) -> &'static str {
        STEP_CATALOGUE[self as usize]
    }

    /// Looks a step up by its catalogue name (exact, lowercase).
    pub fn parse(name: &str) -> Result<StepKind, UnknownStep> {
        StepKind::ALL
            .into_iter()
            .find(|step| step.as_str() == name)
            .ok_or_else(|| UnknownStep(name.to_owned()))
    }

    /// Steps that undo a containment and so belong only in the release
    /// runbook.
    pub fn is_release_only(self) -> bool {
        self == StepKind::EnableSignIn
    }

    /// Steps that restrict the account and so must never run in a release.
    pub fn is_containment_only(self) -> bool {
        matches!(
            self,
            StepKind::BlockSignIn
                | StepKind::RevokeSessions
                | StepKind::ResetAuthMethods
                | StepKind::RequirePasswordChange
        )
    }
}

impl fmt::Display for StepKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for StepKind {
    type Err = UnknownStep;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        StepKind::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_catalogue_name_parses_back_to_itself() {
        for name in STEP_CATALOGUE {
            assert_eq!(StepKind::parse(name).unwrap().as_str(), *name);
        }
        assert_eq!(StepKind::ALL.len(), STEP_CATALOGUE.len());
    }

    #[test]
    fn serde_names_match_the_catalogue() {
        for step in StepKind::ALL {
            let json = serde_json::to_string(&step).unwrap();
            assert_eq!(json, format!("\"{}\"", step.as_str()));
        }
    }

    #[test]
    fn unknown_names_are_refused() {
        assert!(StepKind::parse("delete_user").is_err());
    }
}
