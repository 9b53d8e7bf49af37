//! What each runbook step does against the outside world, and how it
//! reports back.
//!
//! A step that writes to Graph first reads the user back when it is not its
//! first attempt: if the write already took effect (the process died after
//! Graph answered and before the journal was written), the write is not
//! repeated. Every Graph answer's `request-id` is kept as evidence.

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use crate::botframework::Activity;
use crate::graph::{GraphError, GraphReceipt};
use crate::policy::{RequestKind, StepKind};
use crate::servicenow::{IncidentState, IncidentUpdate};

use super::model::{now_millis, ContainmentRequest, StepRecord, StepStatus};
use super::Engine;

/// How a step reads to a person.
pub fn step_label(step: StepKind) -> &'static str {
    match step {
        StepKind::ServicenowStart => "ServiceNow: note the approval, set In Progress",
        StepKind::BlockSignIn => "Entra ID: block sign-in",
        StepKind::RevokeSessions => "Entra ID: revoke sessions",
        StepKind::ResetAuthMethods => "Entra ID: remove authentication methods",
        StepKind::RequirePasswordChange => "Entra ID: require a password change",
        StepKind::Verify => "Entra ID: verify by reading the account back",
        StepKind::TeamsNotice => "Teams: notice in the thread",
        StepKind::NotifyOwner => "Teams: notify the account's owner",
        StepKind::ServicenowSummary => "ServiceNow: summary note with evidence",
        StepKind::EnableSignIn => "Entra ID: re-enable sign-in",
    }
}

/// Whether a step changes the identity itself. When such a step fails, the
/// identity steps after it are skipped, and the reporting steps still run.
pub fn changes_identity(step: StepKind) -> bool {
    matches!(
        step,
        StepKind::BlockSignIn
            | StepKind::RevokeSessions
            | StepKind::ResetAuthMethods
            | StepKind::RequirePasswordChange
            | StepKind::Verify
            | StepKind::EnableSignIn
    )
}

/// The result of one step, to be journaled.
pub struct StepResult {
    pub status: StepStatus,
    pub http_status: Option<i64>,
    pub outside_ids: Value,
    pub error: Option<String>,
    pub detail: Option<String>,
}

impl StepResult {
    fn done(detail: impl Into<String>) -> Self {
        Self {
            status: StepStatus::Done,
            http_status: None,
            outside_ids: Value::Null,
            error: None,
            detail: Some(detail.into()),
        }
    }

    fn from_receipt(receipt: &GraphReceipt, detail: &str) -> Self {
        Self {
            status: StepStatus::Done,
            http_status: Some(receipt.status as i64),
            outside_ids: json!({
                "request_id": receipt.request_id,
                "client_request_id": receipt.client_request_id,
                "date": receipt.date,
                "attempts": receipt.attempts,
                "waited_ms": receipt.waited_ms,
            }),
            error: None,
            detail: Some(detail.to_string()),
        }
    }

    fn graph_failure(error: &GraphError) -> Self {
        Self {
            status: StepStatus::Failed,
            http_status: error.status().map(|s| s as i64),
            outside_ids: json!({
                "request_id": error.request_id(),
                "client_request_id": error.client_request_id(),
                "code": error.code(),
            }),
            error: Some(error.to_string()),
            detail: None,
        }
    }

    pub(crate) fn failure(error: impl ToString) -> Self {
        Self {
            status: StepStatus::Failed,
            http_status: None,
            outside_ids: Value::Null,
            error: Some(error.to_string()),
            detail: None,
        }
    }

    pub fn into_record(self, seq: i64, name: StepKind, attempts: i64) -> StepRecord {
        StepRecord {
            seq,
            name,
            status: self.status,
            attempts,
            started_at: None,
            finished_at: Some(now_millis()),
            http_status: self.http_status,
            outside_ids: self.outside_ids,
            error: self.error,
            detail: self.detail,
        }
    }
}

/// Everything a step may look at besides the request.
pub struct StepContext<'a> {
    pub request: &'a ContainmentRequest,
    pub step: &'a StepRecord,
    pub attempt: i64,
    /// Every step of the run as journaled so far.
    pub journal: &'a [StepRecord],
}

impl Engine {
    pub(crate) async fn execute_step(&self, cx: &StepContext<'_>) -> StepResult {
        match cx.step.name {
            StepKind::ServicenowStart => self.servicenow_start(cx).await,
            StepKind::BlockSignIn => self.set_sign_in(cx, false).await,
            StepKind::EnableSignIn => self.set_sign_in(cx, true).await,
            StepKind::RevokeSessions => self.revoke_sessions(cx).await,
            StepKind::ResetAuthMethods => self.reset_auth_methods(cx).await,
            StepKind::RequirePasswordChange => self.require_password_change(cx).await,
            StepKind::Verify => self.verify(cx).await,
            StepKind::TeamsNotice => self.teams_notice(cx).await,
            StepKind::NotifyOwner => self.notify_owner(cx).await,
            StepKind::ServicenowSummary => self.servicenow_summary(cx).await,
        }
    }

    async fn servicenow_start(&self, cx: &StepContext<'_>) -> StepResult {
        let request = cx.request;
        let verb = match request.kind {
            RequestKind::Containment => "Containment",
            RequestKind::Release => "Release",
        };
        let approvers = match self.store.approvals(&request.id).await {
            Ok(approvals) => approvals
                .iter()
                .map(|a| a.approver_name.clone())
                .collect::<Vec<_>>()
                .join(", "),
            Err(e) => return StepResult::failure(e),
        };
        let approvers = match &request.auto_approved_by {
            Some(rule) => format!("policy rule {rule}"),
            None => approvers,
        };
        let original = match (&request.kind, &request.related_request_id) {
            (RequestKind::Release, Some(original)) => {
                format!(" It undoes containment {original}.")
            }
            (RequestKind::Release, None) => {
                " No containment by Cordon is on record for this incident.".into()
            }
            (RequestKind::Containment, _) => String::new(),
        };
        let note = format!(
            "[Cordon {id}] {verb} of {upn} approved by {approvers}.{original} \
             Requested by {requester} ({source}). Runbook {runbook}: {steps}. \
             Correlation id: {id}.",
            id = request.id,
            upn = request.target_upn,
            requester = request.requester.name,
            source = crate::store::enum_name(&request.source),
            runbook = request.runbook,
            steps = request
                .steps
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        );
        let update = IncidentUpdate {
            state: Some(IncidentState::InProgress),
            work_notes: Some(note),
        };
        match self
            .servicenow
            .update_incident(&request.incident_sys_id, &update)
            .await
        {
            Ok(()) => StepResult::done(format!(
                "{} set to In Progress with a work note",
                request.incident_number
            )),
            Err(e) => StepResult::failure(e),
        }
    }

    async fn set_sign_in(&self, cx: &StepContext<'_>, enabled: bool) -> StepResult {
        let user_id = &cx.request.target_id;
        if cx.attempt > 1 {
            match self.graph.get_user(user_id).await {
                Ok(Some(user)) if user.account_enabled == enabled => {
                    return StepResult::done(
                        "already in effect on read-back; the write was not repeated",
                    )
                }
                Ok(_) => {}
                Err(e) => return StepResult::graph_failure(&e),
            }
        }
        let detail = if enabled {
            "sign-in re-enabled (accountEnabled = true)"
        } else {
            "sign-in blocked (accountEnabled = false)"
        };
        match self.graph.set_account_enabled(user_id, enabled).await {
            Ok(receipt) => StepResult::from_receipt(&receipt, detail),
            Err(e) => StepResult::graph_failure(&e),
        }
    }

    async fn revoke_sessions(&self, cx: &StepContext<'_>) -> StepResult {
        let user_id = &cx.request.target_id;
        if cx.attempt > 1 {
            let since = cx.step.started_at.unwrap_or(i64::MAX);
            match self.graph.get_user(user_id).await {
                Ok(Some(user))
                    if sessions_revoked_since(user.sign_in_sessions_valid_from, since) =>
                {
                    return StepResult::done("sessions already revoked on read-back; not repeated")
                }
                Ok(_) => {}
                Err(e) => return StepResult::graph_failure(&e),
            }
        }
        match self.graph.revoke_sign_in_sessions(user_id).await {
            Ok(receipt) => {
                StepResult::from_receipt(&receipt, "refresh tokens and session cookies revoked")
            }
            Err(e) if e.may_have_taken_effect() => self.revoke_after_lost_answer(cx, &e).await,
            Err(e) => StepResult::graph_failure(&e),
        }
    }

    /// The revoke's answer was lost (timeout, reset, 504): reads the user
    /// back and revokes again only if the first one did not take effect,
    /// so that sessions are revoked once.
    async fn revoke_after_lost_answer(
        &self,
        cx: &StepContext<'_>,
        lost: &GraphError,
    ) -> StepResult {
        let user_id = &cx.request.target_id;
        let since = cx.step.started_at.unwrap_or(i64::MAX);
        match self.graph.get_user(user_id).await {
            Ok(Some(user)) if sessions_revoked_since(user.sign_in_sessions_valid_from, since) => {
                return StepResult {
                    outside_ids: json!({ "client_request_id": lost.client_request_id() }),
                    ..StepResult::done(
                        "sessions revoked; the answer was lost and the read-back \
                         confirmed it, so the revoke was not repeated",
                    )
                };
            }
            Ok(_) => {}
            Err(e) => return StepResult::graph_failure(&e),
        }
        match self.graph.revoke_sign_in_sessions(user_id).await {
            Ok(receipt) => StepResult::from_receipt(
                &receipt,
                "refresh tokens and session cookies revoked (second try; the \
                 first had not taken effect)",
            ),
            Err(e) => StepResult::graph_failure(&e),
        }
    }

    async fn reset_auth_methods(&self, cx: &StepContext<'_>) -> StepResult {
        let user_id = &cx.request.target_id;
        let methods = match self.graph.list_auth_methods(user_id).await {
            Ok(methods) => methods,
            Err(e) => return StepResult::graph_failure(&e),
        };
        let mut receipts = Vec::new();
        let removable = crate::graph::removal_order(&methods);

        // Graph refuses (400) to delete the default method while others
        // remain; such a method is tried again once the rest are gone.
        let mut deferred = Vec::new();
        // A 404 means the method is gone, which is what the step wants:
        // a retried delete whose first answer was lost ends that way.
        for method in &removable {
            match self.graph.delete_auth_method(user_id, method).await {
                Ok(receipt) => receipts.push(receipt.request_id),
                Err(e) if e.status() == Some(404) => {}
                Err(e) if e.status() == Some(400) => deferred.push(method),
                Err(e) => return StepResult::graph_failure(&e),
            }
        }
        for method in deferred {
            match self.graph.delete_auth_method(user_id, method).await {
                Ok(receipt) => receipts.push(receipt.request_id),
                Err(e) if e.status() == Some(404) => {}
                Err(e) => return StepResult::graph_failure(&e),
            }
        }
        StepResult {
            outside_ids: json!({ "request_ids": receipts }),
            ..StepResult::done(format!(
                "{} authentication methods removed",
                removable.len()
            ))
        }
    }

    async fn require_password_change(&self, cx: &StepContext<'_>) -> StepResult {
        match self
            .graph
            .require_password_change(&cx.request.target_id)
            .await
        {
            Ok(receipt) => {
                StepResult::from_receipt(&receipt, "password change required at next sign-in")
            }
            Err(e) => StepResult::graph_failure(&e),
        }
    }

    async fn verify(&self, cx: &StepContext<'_>) -> StepResult {
        let user = match self.graph.get_user(&cx.request.target_id).await {
            Ok(Some(user)) => user,
            Ok(None) => return StepResult::failure("the account no longer exists in Entra ID"),
            Err(e) => return StepResult::graph_failure(&e),
        };
        let mut problems = Vec::new();
        if cx.request.steps.contains(&StepKind::BlockSignIn) && user.account_enabled {
            problems.push("accountEnabled is still true".to_string());
        }
        let revoke = cx
            .journal
            .iter()
            .find(|s| s.name == StepKind::RevokeSessions);
        if let Some(revoke) = revoke {
            let since = revoke.started_at.unwrap_or(i64::MAX);
            if !sessions_revoked_since(user.sign_in_sessions_valid_from, since) {
                problems
                    .push("signInSessionsValidFromDateTime is earlier than the revoke".to_string());
            }
        }
        if problems.is_empty() {
            StepResult::done(format!(
                "read back: accountEnabled = {}, sessions valid from {}",
                user.account_enabled,
                user.sign_in_sessions_valid_from
                    .map(|t| t.to_rfc3339())
                    .unwrap_or_else(|| "(not set)".into())
            ))
        } else {
            StepResult::failure(format!("verification failed: {}", problems.join("; ")))
        }
    }

    async fn teams_notice(&self, cx: &StepContext<'_>) -> StepResult {
        let Some(thread) = &cx.request.thread else {
            return StepResult::done("no approvals thread to post in");
        };
        let text = notice_text(cx.request, cx.journal);
        // Queued behind the thread's earlier replies, not awaited: the run
        // does not wait for Teams' rate limits (see teams::channel).
        self.teams.post(thread, None, Some(Activity::message(text)));
        StepResult::done("notice queued for the approvals thread")
    }

    async fn notify_owner(&self, cx: &StepContext<'_>) -> StepResult {
        let Some(thread) = &cx.request.thread else {
            return StepResult::done("no approvals thread to post in");
        };
        let text = format!(
            "**Service account owner, please act:** the sessions of {} ({}) \
             were revoked under {}. Sign-in was left enabled so that \
             automations keep working; rotate its credentials and confirm \
             in the incident.",
            cx.request.target_name, cx.request.target_upn, cx.request.incident_number
        );
        self.teams.post(thread, None, Some(Activity::message(text)));
        StepResult::done("owner notice queued for the approvals thread")
    }

    async fn servicenow_summary(&self, cx: &StepContext<'_>) -> StepResult {
        let note = summary_note(cx.request, cx.journal);
        match self
            .servicenow
            .add_work_note(&cx.request.incident_sys_id, &note)
            .await
        {
            Ok(()) => StepResult::done("summary work note added"),
            Err(e) => StepResult::failure(e),
        }
    }
}

/// Whether Graph's `signInSessionsValidFromDateTime` is at or after the
/// moment a revoke started. Graph keeps whole seconds, so the comparison
/// allows the sub-second part that the journal has and Graph drops.
pub fn sessions_revoked_since(valid_from: Option<DateTime<Utc>>, since_millis: i64) -> bool {
    match valid_from {
        Some(valid_from) => valid_from.timestamp_millis() >= since_millis - 1_000,
        None => false,
    }
}

fn notice_text(request: &ContainmentRequest, journal: &[StepRecord]) -> String {
    let done: Vec<&str> = journal
        .iter()
        .filter(|s| s.status == StepStatus::Done && changes_identity(s.name))
        .map(|s| step_label(s.name))
        .collect();
    let failed: Vec<String> = journal
        .iter()
        .filter(|s| s.status == StepStatus::Failed)
        .map(|s| {
            format!(
                "{} ({})",
                step_label(s.name),
                s.error.as_deref().unwrap_or("no detail")
            )
        })
        .collect();
    let mut text = format!(
        "**Notice for {} ({}), {}:** ",
        request.target_name, request.target_upn, request.incident_number
    );
    if done.is_empty() {
        text.push_str("no change to the account took effect. ");
    } else {
        text.push_str(&format!("done: {}. ", done.join("; ")));
    }
    if !failed.is_empty() {
        text.push_str(&format!(
            "**Failed:** {}. Sessions may still be active. An approver can run \
             the remaining steps again with **Retry remaining steps** on the \
             card of {} (`status {}` shows it). ",
            failed.join("; "),
            request.id,
            request.id
        ));
    }
    if request.kind == RequestKind::Containment {
        text.push_str(
            "Access tokens already issued can stay valid for up to an hour \
             where Continuous Access Evaluation does not apply.",
        );
    }
    text
}

/// ", Graph request-id X" for a step with one Graph call, ", Graph
/// request-ids X, Y" for one with several (removing methods), or nothing.
fn graph_request_ids(outside_ids: &Value) -> String {
    if let Some(id) = outside_ids.get("request_id").and_then(Value::as_str) {
        return format!(", Graph request-id {id}");
    }
    let ids: Vec<&str> = outside_ids
        .get("request_ids")
        .and_then(Value::as_array)
        .map(|ids| ids.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    match ids.as_slice() {
        [] => String::new(),
        ids => format!(", Graph request-ids {}", ids.join(", ")),
    }
}

/// The ServiceNow summary: each action with its time, outcome and Graph
/// request id, the token lifetime caveat and the next steps.
pub fn summary_note(request: &ContainmentRequest, journal: &[StepRecord]) -> String {
    let mut note = format!(
        "[Cordon {}] Summary of the {} of {} ({}).\n",
        request.id,
        match request.kind {
            RequestKind::Containment => "containment",
            RequestKind::Release => "release",
        },
        request.target_name,
        request.target_upn
    );
    if let (RequestKind::Release, Some(original)) = (&request.kind, &request.related_request_id) {
        note.push_str(&format!("Original containment: {original}.\n"));
    }
    for step in journal
        .iter()
        .filter(|s| s.name != StepKind::ServicenowSummary)
    {
        let at = step
            .finished_at
            .map(super::super::teams::view::format_time)
            .unwrap_or_else(|| "-".into());
        let request_id = graph_request_ids(&step.outside_ids);
        let outcome = step
            .error
            .clone()
            .or_else(|| step.detail.clone())
            .unwrap_or_default();
        note.push_str(&format!(
            "- {} at {}: {} {}{}\n",
            step_label(step.name),
            at,
            step.status.as_str(),
            outcome,
            request_id
        ));
    }
    let failed = journal.iter().any(|s| s.status == StepStatus::Failed);
    if failed && request.kind == RequestKind::Containment {
        note.push_str(
            "WARNING: containment is partial or failed; sessions may still be \
             active. The incident stays open.\n",
        );
    }
    if request.kind == RequestKind::Containment {
        note.push_str(
            "Access tokens already issued can remain valid for up to one hour \
             where Continuous Access Evaluation does not apply.\n\
             Next steps:\n\
             - Check the user's devices (Intune/Defender) for compromise\n\
             - Review mailbox rules and forwarding for attacker persistence\n\
             - Review sign-in logs for the period before containment\n",
        );
    }
    note
}
