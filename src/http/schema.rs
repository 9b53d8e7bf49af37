//! The wire types of the automation API: what `/api/v1/containments`
//! answers, built from the stored request, with the OpenAPI schema of
//! each derived from the type itself.
//!
//! The answers are these types and nothing else, so the document served
//! at `/api/v1/openapi.json` describes exactly what goes out. The store's
//! own types stay free to change; a change reaches clients only through
//! the mapping here. The vocabularies (state, source, risk, ...) get their
//! schemas from their `ALL` lists and their serde names, so a new value
//! appears in the document the moment it exists.

use std::borrow::Cow;

use serde::Serialize;
use serde_json::Value;
use utoipa::openapi::schema::{ObjectBuilder, Schema, SchemaType, Type};
use utoipa::openapi::RefOr;
use utoipa::{PartialSchema, ToSchema};

use crate::audit::AuditEvent;
use crate::containment::model::{
    Approval, ContainmentRequest, Decision, Origin, Requester, StepRecord, StepStatus,
    ThreadLocation,
};
use crate::containment::state::RequestState;
use crate::policy::{Classification, RequestKind, Risk, Source, StepKind};

/// What a proposal is answered with: 202 for a new request, 200 for the
/// one that already exists for the same user and incident.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProposalAnswer {
    /// The request id, e.g. `CR-7K2M9QXA`.
    pub request_id: String,
    #[schema(inline = false)]
    pub state: RequestState,
}

/// One request, as listed.
#[derive(Debug, Serialize, ToSchema)]
pub struct ContainmentView {
    pub id: String,
    pub kind: RequestKind,
    pub target_upn: String,
    /// The Entra object id of the target.
    pub target_id: String,
    pub target_name: String,
    pub target_department: Option<String>,
    pub incident_number: String,
    pub incident_sys_id: String,
    pub justification: String,
    pub requester: RequesterView,
    /// `siem` when the body said so, otherwise the route it came by.
    pub source: Source,
    pub risk: Option<Risk>,
    pub classification: Classification,
    /// The policy rule that classified the target.
    pub rule: String,
    pub runbook: String,
    /// The runbook's steps, in order.
    pub steps: Vec<StepKind>,
    pub required_approvals: u32,
    /// The policy rule that approved without a human, if one did.
    pub auto_approved_by: Option<String>,
    pub state: RequestState,
    pub outcome: Option<String>,
    pub origin: Option<OriginView>,
    pub thread: Option<ThreadView>,
    /// The containment a release undoes.
    pub related_request_id: Option<String>,
    /// Unix milliseconds.
    pub created_at: i64,
    /// Unix milliseconds.
    pub updated_at: i64,
    /// Unix milliseconds; an unapproved request expires then.
    pub expires_at: i64,
    /// How many times a runner has started on this request.
    pub run_count: i64,
}

/// Who asked: an Entra object id and a readable name; for the API, the
/// name ends with `via <token name>`.
#[derive(Debug, Serialize, ToSchema)]
pub struct RequesterView {
    pub id: String,
    pub name: String,
}

/// The Teams conversation a command came from.
#[derive(Debug, Serialize, ToSchema)]
pub struct OriginView {
    pub service_url: String,
    pub conversation_id: String,
}

/// The approvals-channel thread of a request and its card.
#[derive(Debug, Serialize, ToSchema)]
pub struct ThreadView {
    pub service_url: String,
    pub conversation_id: String,
    pub card_activity_id: String,
}

/// One approver's decision.
#[derive(Debug, Serialize, ToSchema)]
pub struct ApprovalView {
    pub approver_id: String,
    pub approver_name: String,
    pub decision: Decision,
    pub reason: Option<String>,
    /// Unix milliseconds.
    pub at: i64,
}

/// One runbook step and its outcome.
#[derive(Debug, Serialize, ToSchema)]
pub struct StepView {
    pub seq: i64,
    pub name: StepKind,
    pub status: StepStatus,
    pub attempts: i64,
    /// Unix milliseconds.
    pub started_at: Option<i64>,
    /// Unix milliseconds.
    pub finished_at: Option<i64>,
    /// The HTTP status of the last outside call.
    pub http_status: Option<i64>,
    /// Ids the outside system gave back, such as Graph's `request-id`;
    /// empty for a step that called none.
    #[schema(value_type = Object)]
    pub outside_ids: Value,
    pub error: Option<String>,
    pub detail: Option<String>,
}

/// One event of the hash-chained audit trail.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditView {
    pub seq: i64,
    /// Unix milliseconds.
    pub at: i64,
    pub request_id: Option<String>,
    pub actor: String,
    pub event: String,
    #[schema(value_type = Object)]
    pub details: Value,
    pub prev_hash: String,
    pub hash: String,
}

/// A request with its approvals, steps and audit trail.
#[derive(Debug, Serialize, ToSchema)]
pub struct ContainmentDetail {
    pub request: ContainmentView,
    pub approvals: Vec<ApprovalView>,
    pub steps: Vec<StepView>,
    pub audit: Vec<AuditView>,
}

/// One page of requests, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct ContainmentPage {
    pub items: Vec<ContainmentView>,
    /// Pass as `offset` for the next page; null on the last page.
    pub next_offset: Option<i64>,
}

impl From<ContainmentRequest> for ContainmentView {
    fn from(r: ContainmentRequest) -> Self {
        ContainmentView {
            id: r.id,
            kind: r.kind,
            target_upn: r.target_upn,
            target_id: r.target_id,
            target_name: r.target_name,
            target_department: r.target_department,
            incident_number: r.incident_number,
            incident_sys_id: r.incident_sys_id,
            justification: r.justification,
            requester: r.requester.into(),
            source: r.source,
            risk: r.risk,
            classification: r.classification,
            rule: r.rule,
            runbook: r.runbook,
            steps: r.steps,
            required_approvals: r.required_approvals,
            auto_approved_by: r.auto_approved_by,
            state: r.state,
            outcome: r.outcome,
            origin: r.origin.map(Into::into),
            thread: r.thread.map(Into::into),
            related_request_id: r.related_request_id,
            created_at: r.created_at,
            updated_at: r.updated_at,
            expires_at: r.expires_at,
            run_count: r.run_count,
        }
    }
}

impl From<Requester> for RequesterView {
    fn from(r: Requester) -> Self {
        RequesterView {
            id: r.id,
            name: r.name,
        }
    }
}

impl From<Origin> for OriginView {
    fn from(o: Origin) -> Self {
        OriginView {
            service_url: o.service_url,
            conversation_id: o.conversation_id,
        }
    }
}

impl From<ThreadLocation> for ThreadView {
    fn from(t: ThreadLocation) -> Self {
        ThreadView {
            service_url: t.service_url,
            conversation_id: t.conversation_id,
            card_activity_id: t.card_activity_id,
        }
    }
}

impl From<Approval> for ApprovalView {
    fn from(a: Approval) -> Self {
        ApprovalView {
            approver_id: a.approver_id,
            approver_name: a.approver_name,
            decision: a.decision,
            reason: a.reason,
            at: a.at,
        }
    }
}

impl From<StepRecord> for StepView {
    fn from(s: StepRecord) -> Self {
        StepView {
            seq: s.seq,
            name: s.name,
            status: s.status,
            attempts: s.attempts,
            started_at: s.started_at,
            finished_at: s.finished_at,
            http_status: s.http_status,
            outside_ids: object_or_empty(s.outside_ids),
            error: s.error,
            detail: s.detail,
        }
    }
}

impl From<AuditEvent> for AuditView {
    fn from(e: AuditEvent) -> Self {
        AuditView {
            seq: e.seq,
            at: e.at,
            request_id: e.request_id,
            actor: e.actor,
            event: e.event,
            details: object_or_empty(e.details),
            prev_hash: e.prev_hash,
            hash: e.hash,
        }
    }
}

/// The store keeps "no ids" and "no details" as null; the answers say
/// `{}`, as their schema promises an object.
fn object_or_empty(value: Value) -> Value {
    match value {
        Value::Null => Value::Object(Default::default()),
        value => value,
    }
}

/// A string schema whose values are the serde names of `values`.
fn vocabulary<T: Serialize>(description: &str, values: &[T]) -> RefOr<Schema> {
    let names: Vec<String> = values.iter().map(crate::store::enum_name).collect();
    ObjectBuilder::new()
        .schema_type(SchemaType::Type(Type::String))
        .description(Some(description))
        .enum_values(Some(names))
        .into()
}

macro_rules! vocabulary_schema {
    ($type:ty, $name:literal, $description:literal, $values:expr) => {
        impl PartialSchema for $type {
            fn schema() -> RefOr<Schema> {
                vocabulary::<$type>($description, &$values)
            }
        }

        impl ToSchema for $type {
            fn name() -> Cow<'static, str> {
                Cow::Borrowed($name)
            }
        }
    };
}

vocabulary_schema!(
    RequestState,
    "RequestState",
    "Where a request is in its life.",
    RequestState::ALL
);
vocabulary_schema!(Source, "Source", "Where a request came from.", *Source::ALL);
vocabulary_schema!(Risk, "Risk", "The risk the requester attached.", *Risk::ALL);
vocabulary_schema!(
    Classification,
    "Classification",
    "What kind of account the target is.",
    *Classification::ALL
);
vocabulary_schema!(
    RequestKind,
    "RequestKind",
    "Whether the request contains or releases.",
    *RequestKind::ALL
);
vocabulary_schema!(
    StepKind,
    "StepKind",
    "A runbook step.",
    crate::policy::STEP_CATALOGUE
        .iter()
        .filter_map(|name| StepKind::parse(name).ok())
        .collect::<Vec<_>>()
);
vocabulary_schema!(
    StepStatus,
    "StepStatus",
    "How far a step got.",
    STEP_STATUSES
);
vocabulary_schema!(Decision, "Decision", "An approver's decision.", DECISIONS);

// These two types keep no list of their values. The matches below have no
// wildcard, so a new value fails to compile until it is listed here too.
const STEP_STATUSES: [StepStatus; 5] = {
    use StepStatus::*;
    match Pending {
        Pending | Running | Done | Failed | Skipped => {}
    }
    [Pending, Running, Done, Failed, Skipped]
};
const DECISIONS: [Decision; 2] = {
    match Decision::Approve {
        Decision::Approve | Decision::Reject => {}
    }
    [Decision::Approve, Decision::Reject]
};
