//! What a request is: its target, incident, requester, the plan policy
//! chose, where its thread lives, and its approvals and steps.
//!
//! These are plain values; loading and saving them is the store's job.

use serde::{Deserialize, Serialize};

use crate::policy::{Classification, RequestKind, Risk, Source, StepKind};

use super::state::RequestState;

/// Who asked: an Entra object id and a name for people to read, or, for
/// automation, the configured name of the system.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Requester {
    pub id: String,
    pub name: String,
}

/// Where an answer to the requester goes: the Teams conversation the
/// command came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Origin {
    pub service_url: String,
    pub conversation_id: String,
}

/// The approvals-channel thread of a request and its card.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ThreadLocation {
    pub service_url: String,
    /// `<channel id>;messageid=<root id>`: replies posted here thread.
    pub conversation_id: String,
    /// The card at the root of the thread, updated in place.
    pub card_activity_id: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContainmentRequest {
    pub id: String,
    pub kind: RequestKind,
    pub target_upn: String,
    pub target_id: String,
    pub target_name: String,
    pub target_department: Option<String>,
    pub incident_number: String,
    pub incident_sys_id: String,
    pub justification: String,
    pub requester: Requester,
    pub source: Source,
    pub risk: Option<Risk>,
    pub classification: Classification,
    pub rule: String,
    pub runbook: String,
    pub steps: Vec<StepKind>,
    pub required_approvals: u32,
    pub auto_approved_by: Option<String>,
    pub state: RequestState,
    pub outcome: Option<String>,
    pub origin: Option<Origin>,
    pub thread: Option<ThreadLocation>,
    pub related_request_id: Option<String>,
    /// Unix milliseconds.
    pub created_at: i64,
    pub updated_at: i64,
    pub expires_at: i64,
    /// How many times a runner has started on this request: more than one
    /// means it was resumed or retried.
    pub run_count: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    Approve,
    Reject,
}

impl Decision {
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Approve => "approve",
            Decision::Reject => "reject",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Approval {
    pub approver_id: String,
    pub approver_name: String,
    pub decision: Decision,
    pub reason: Option<String>,
    pub at: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    Pending,
    Running,
    Done,
    Failed,
    Skipped,
}

impl StepStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            StepStatus::Pending => "pending",
            StepStatus::Running => "running",
            StepStatus::Done => "done",
            StepStatus::Failed => "failed",
            StepStatus::Skipped => "skipped",
        }
    }

    pub fn parse(text: &str) -> Option<StepStatus> {
        [
            StepStatus::Pending,
            StepStatus::Running,
            StepStatus::Done,
            StepStatus::Failed,
            StepStatus::Skipped,
        ]
        .into_iter()
        .find(|status| status.as_str() == text)
    }
}

/// One runbook step as journaled: before it starts (`running`, with the
/// attempt) and after it ends (the outcome and the outside system's ids).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepRecord {
    pub seq: i64,
    pub name: StepKind,
    pub status: StepStatus,
    pub attempts: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    pub http_status: Option<i64>,
    /// Ids the outside system gave back, such as Graph's `request-id`.
    pub outside_ids: serde_json::Value,
    pub error: Option<String>,
    pub detail: Option<String>,
}

/// Unix milliseconds now.
pub fn now_millis() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// A short id that people can type: `CR-` and eight characters that are
/// hard to confuse with each other.
pub fn new_request_id() -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"23456789ABCDEFGHJKLMNPQRSTUVWXYZ";
    let mut rng = rand::thread_rng();
    let tail: String = (0..8)
        .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
        .collect();
    format!("CR-{tail}")
}

/// Whether `text` has the shape of a request id.
pub fn looks_like_request_id(text: &str) -> bool {
    let upper = text.to_ascii_uppercase();
    upper.len() == 11 && upper.starts_with("CR-")
}
