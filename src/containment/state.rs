//! The life of a request as a state machine that cannot express an illegal
//! move: every change goes through [`RequestState::apply`], which either
//! returns the next state or refuses with [`IllegalTransition`].
//!
//! ```text
//! awaiting_approval --approve--> approved --start--> executing
//!        |  \--reject--> rejected                     |  |  \--fail--> failed
//!        \----expire---> expired          succeed <---/  \--partial--> partially_contained
//!                          contained | released           (failed and partial: --retry--> executing)
//! ```

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::policy::RequestKind;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RequestState {
    AwaitingApproval,
    Approved,
    Executing,
    Contained,
    PartiallyContained,
    Failed,
    Rejected,
    Expired,
    Released,
}

/// What can happen to a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Transition {
    /// The last approval needed has been given (or a policy rule gave it).
    Approve,
    Reject,
    Expire,
    /// A runner starts executing the runbook.
    Start,
    /// Every step succeeded.
    Succeed,
    /// Some containment took effect and some did not.
    SucceedPartially,
    /// Nothing took effect.
    Fail,
    /// An operator asked to run the remaining steps again.
    Retry,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a {kind:?} request cannot go from {from} by {transition:?}")]
pub struct IllegalTransition {
    pub kind: RequestKind,
    pub from: RequestState,
    pub transition: Transition,
}

impl RequestState {
    pub const ALL: [RequestState; 9] = [
        Self::AwaitingApproval,
        Self::Approved,
        Self::Executing,
        Self::Contained,
        Self::PartiallyContained,
        Self::Failed,
        Self::Rejected,
        Self::Expired,
        Self::Released,
    ];

    /// The next state, or a refusal naming the illegal move.
    pub fn apply(
        self,
        kind: RequestKind,
        transition: Transition,
    ) -> Result<RequestState, IllegalTransition> {
        use RequestState::*;
        use Transition::*;
        let next = match (self, transition) {
            (AwaitingApproval, Approve) => Some(Approved),
            (AwaitingApproval, Reject) => Some(Rejected),
            (AwaitingApproval, Expire) => Some(Expired),
            (Approved, Start) => Some(Executing),
            (Executing, Succeed) => Some(match kind {
                RequestKind::Containment => Contained,
                RequestKind::Release => Released,
            }),
            (Executing, SucceedPartially) if kind == RequestKind::Containment => {
                Some(PartiallyContained)
            }
            (Executing, Fail) => Some(Failed),
            (PartiallyContained | Failed, Retry) => Some(Executing),
            _ => None,
        };
        next.ok_or(IllegalTransition {
            kind,
            from: self,
            transition,
        })
    }

    /// Whether nothing more will happen without a person asking for it.
    pub fn is_final(self) -> bool {
        !matches!(
            self,
            Self::AwaitingApproval | Self::Approved | Self::Executing
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::AwaitingApproval => "awaiting_approval",
            Self::Approved => "approved",
            Self::Executing => "executing",
            Self::Contained => "contained",
            Self::PartiallyContained => "partially_contained",
            Self::Failed => "failed",
            Self::Rejected => "rejected",
            Self::Expired => "expired",
            Self::Released => "released",
        }
    }

    pub fn parse(text: &str) -> Option<RequestState> {
        Self::ALL.into_iter().find(|state| state.as_str() == text)
    }

    /// How the state reads to a person.
    pub fn label(self) -> &'static str {
        match self {
            Self::AwaitingApproval => "Awaiting approval",
            Self::Approved => "Approved, starting",
            Self::Executing => "Running",
            Self::Contained => "Contained",
            Self::PartiallyContained => "Partially contained",
            Self::Failed => "Failed",
            Self::Rejected => "Rejected",
            Self::Expired => "Expired",
            Self::Released => "Released",
        }
    }
}

impl fmt::Display for RequestState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use RequestState::*;
    use Transition::*;

    const TRANSITIONS: [Transition; 8] = [
        Approve,
        Reject,
        Expire,
        Start,
        Succeed,
        SucceedPartially,
        Fail,
        Retry,
    ];

    fn legal(kind: RequestKind) -> Vec<(RequestState, Transition, RequestState)> {
        let success = match kind {
            RequestKind::Containment => Contained,
            RequestKind::Release => Released,
        };
        let mut moves = vec![
            (AwaitingApproval, Approve, Approved),
            (AwaitingApproval, Reject, Rejected),
            (AwaitingApproval, Expire, Expired),
            (Approved, Start, Executing),
            (Executing, Succeed, success),
            (Executing, Fail, Failed),
            (PartiallyContained, Retry, Executing),
            (Failed, Retry, Executing),
        ];
        if kind == RequestKind::Containment {
            moves.push((Executing, SucceedPartially, PartiallyContained));
        }
        moves
    }

    #[test]
    fn every_legal_move_lands_where_the_diagram_says() {
        for kind in [RequestKind::Containment, RequestKind::Release] {
            for (from, transition, to) in legal(kind) {
                assert_eq!(from.apply(kind, transition), Ok(to));
            }
        }
    }

    #[test]
    fn every_other_move_is_refused_with_an_error() {
        for kind in [RequestKind::Containment, RequestKind::Release] {
            let allowed = legal(kind);
            for from in RequestState::ALL {
                for transition in TRANSITIONS {
                    if allowed
                        .iter()
                        .any(|(f, t, _)| *f == from && *t == transition)
                    {
                        continue;
                    }
                    let refused = from.apply(kind, transition).unwrap_err();
                    assert_eq!(refused.from, from);
                    assert_eq!(refused.transition, transition);
                }
            }
        }
    }

    #[test]
    fn a_release_is_never_partially_contained() {
        let refused = Executing.apply(RequestKind::Release, SucceedPartially);
        assert!(refused.is_err());
    }

    #[test]
    fn state_names_round_trip() {
        for state in RequestState::ALL {
            assert_eq!(RequestState::parse(state.as_str()), Some(state));
        }
    }
}
