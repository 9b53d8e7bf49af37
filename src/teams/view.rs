//! Turns a stored request, its approvals and its steps into the view the
//! card templates render. Times are shown in UTC, to the minute.

use crate::containment::model::{Approval, ContainmentRequest, Decision, StepRecord, StepStatus};
use crate::containment::state::RequestState;
use crate::containment::steps::step_label;
use crate::policy::{Classification, RequestKind};
use crate::store::ListFilter;

use super::cards::{ApprovalView, DecisionView, RequestKindView, RequestView, StepView};

/// What the view needs beyond the request itself.
pub struct ViewContext<'a> {
    pub approver_ids: &'a [String],
    pub incident_url: Option<String>,
}

pub fn request_view(
    request: &ContainmentRequest,
    approvals: &[Approval],
    steps: &[StepRecord],
    context: &ViewContext<'_>,
) -> RequestView {
    let awaiting = request.state == RequestState::AwaitingApproval;
    RequestView {
        request_id: request.id.clone(),
        kind: match request.kind {
            RequestKind::Containment => RequestKindView::Containment,
            RequestKind::Release => RequestKindView::Release,
        },
        state: request.state.as_str().to_string(),
        state_label: request.state.label().to_string(),
        target_name: request.target_name.clone(),
        target_upn: request.target_upn.clone(),
        target_department: request.target_department.clone(),
        classification: classification_str(request.classification).to_string(),
        incident_number: request.incident_number.clone(),
        incident_url: context.incident_url.clone(),
        requester: request.requester.name.clone(),
        source: crate::store::enum_name(&request.source),
        justification: request.justification.clone(),
        rule: match &request.auto_approved_by {
            Some(rule) => format!("{} (auto-approved by {rule})", request.rule),
            None => request.rule.clone(),
        },
        required_approvals: request.required_approvals,
        approvals: approvals.iter().map(approval_view).collect(),
        steps: steps.iter().map(step_view).collect(),
        approver_ids: context.approver_ids.to_vec(),
        outcome: request.outcome.clone(),
        can_act: false,
        can_review: awaiting,
        viewer_note: None,
        can_retry: matches!(
            request.state,
            RequestState::PartiallyContained | RequestState::Failed
        ),
    }
}

fn classification_str(classification: Classification) -> &'static str {
    match classification {
        Classification::Standard => "standard",
        Classification::Privileged => "privileged",
        Classification::ServiceAccount => "service_account",
    }
}

fn approval_view(approval: &Approval) -> ApprovalView {
    ApprovalView {
        approver_name: approval.approver_name.clone(),
        decision: match approval.decision {
            Decision::Approve => DecisionView::Approved,
            Decision::Reject => DecisionView::Rejected,
        },
        at: format_time(approval.at),
        reason: approval.reason.clone(),
    }
}

fn step_view(step: &StepRecord) -> StepView {
    let at = match step.status {
        StepStatus::Done | StepStatus::Failed => step.finished_at.map(format_time),
        StepStatus::Running => step.started_at.map(format_time),
        _ => None,
    };
    StepView {
        label: step_label(step.name).to_string(),
        status: status_view(step.status),
        at,
        detail: step.error.clone().or_else(|| step.detail.clone()),
    }
}

fn status_view(status: StepStatus) -> super::cards::StepStatus {
    use super::cards::StepStatus as View;
    match status {
        StepStatus::Pending => View::Pending,
        StepStatus::Running => View::Running,
        StepStatus::Done => View::Done,
        StepStatus::Failed => View::Failed,
        StepStatus::Skipped => View::Skipped,
    }
}

/// `2026-12-03 20:15 UTC`.
pub fn format_time(millis: i64) -> String {
    chrono::DateTime::from_timestamp_millis(millis)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_default()
}

/// A one-line summary used in `status` answers and thread replies.
pub fn one_line(request: &ContainmentRequest) -> String {
    format!(
        "{} · {} · {} ({}) · {} · {}",
        request.id,
        match request.kind {
            RequestKind::Containment => "containment",
            RequestKind::Release => "release",
        },
        request.target_name,
        request.target_upn,
        request.incident_number,
        request.state.label()
    )
}

/// Filters for `status <request-id | upn | incident>`.
pub fn status_filter(query: &str) -> ListFilter {
    let mut filter = ListFilter {
        limit: 10,
        ..ListFilter::default()
    };
    if query.contains('@') {
        filter.upn = Some(query.to_lowercase());
    } else {
        filter.incident = Some(query.to_ascii_uppercase());
    }
    filter
}
