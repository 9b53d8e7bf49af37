//! The runner: executes approved requests, one step at a time, each step
//! journaled before it starts and after it ends, under a lease so that no
//! two replicas run the same request at once.
//!
//! A replica claims work with a compare-and-set on the request's lease and
//! renews the lease between steps; a replica that dies leaves its lease to
//! expire, and another takes the run over where the journal says it
//! stopped. The same loop expires requests that waited too long for
//! approval.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tokio::sync::Semaphore;
use tracing::Instrument;

use crate::audit::{AuditEntry, SYSTEM};
use crate::policy::{RequestKind, StepKind};
use crate::store::StoreError;

use super::model::{now_millis, ContainmentRequest, StepRecord, StepStatus};
use super::state::{RequestState, Transition};
use super::steps::{changes_identity, step_label, StepContext, StepResult};
use super::Engine;

/// How long an activity id is remembered to ignore Teams' resends of it.
/// Teams resends within seconds; a day leaves a wide margin.
pub const SEEN_ACTIVITY_RETENTION_MS: i64 = 24 * 60 * 60 * 1000;

/// How often a replica forgets activity ids older than the retention.
const FORGET_EVERY_MS: i64 = 60 * 60 * 1000;

pub struct Runner {
    engine: Arc<Engine>,
    owner: String,
    permits: Arc<Semaphore>,
    /// When this replica last forgot old activity ids (unix ms; 0: never).
    forgotten_at: AtomicI64,
}

impl Runner {
    pub fn new(engine: Arc<Engine>) -> Self {
        let owner = format!(
            "{}-{}",
            std::env::var("HOSTNAME").unwrap_or_else(|_| "cordon".into()),
            &uuid::Uuid::new_v4().to_string()[..8]
        );
        let permits = Arc::new(Semaphore::new(engine.config.runner.concurrency));
        Self {
            engine,
            owner,
            permits,
            forgotten_at: AtomicI64::new(0),
        }
    }

    /// Runs until the task is dropped.
    pub async fn run(self) {
        let poll = self.engine.config.runner.poll_interval;
        loop {
            if let Err(e) = self.tick().await {
                tracing::error!(error = %e, "runner could not look for work");
            }
            let wake = self.engine.wake.clone();
            tokio::select! {
                _ = wake.notified() => {}
                _ = tokio::time::sleep(poll) => {}
            }
        }
    }

    /// One pass: expire stale approvals, forget old activity ids (hourly),
    /// claim and start runnable requests.
    pub async fn tick(&self) -> Result<(), StoreError> {
        let now = now_millis();
        for id in self.engine.store.expired_requests(now).await? {
            self.engine.expire(&id).await;
        }
        if now - self.forgotten_at.load(Ordering::Relaxed) >= FORGET_EVERY_MS {
            let before = now - SEEN_ACTIVITY_RETENTION_MS;
            self.engine.store.forget_activities(before).await?;
            self.forgotten_at.store(now, Ordering::Relaxed);
        }
        let free = self.permits.available_permits() as i64;
        if free == 0 {
            return Ok(());
        }
        let lease = self.lease_ms();
        for claim in self
            .engine
            .store
            .claim_runs(&self.owner, lease, free)
            .await?
        {
            let Ok(permit) = self.permits.clone().acquire_owned().await else {
                break;
            };
            let engine = self.engine.clone();
            let owner = self.owner.clone();
            tokio::spawn(async move {
                let span = tracing::info_span!(
                    "run",
                    request_id = %claim,
                    incident = tracing::field::Empty,
                    target = tracing::field::Empty,
                );
                engine
                    .run_claimed(&claim, &owner, lease)
                    .instrument(span)
                    .await;
                // A slot is free: look for approved work now rather than
                // at the next poll.
                drop(permit);
                engine.wake.notify_one();
            });
        }
        Ok(())
    }

    fn lease_ms(&self) -> i64 {
        self.engine.config.runner.lease.as_millis() as i64
    }
}

/// How a run ended.
enum RunEnd {
    Finished,
    /// The lease went to another replica; stop without touching anything.
    LeaseLost,
}

impl Engine {
    /// Runs a claimed request to its end, or until its lease is lost.
    pub async fn run_claimed(&self, id: &str, owner: &str, lease_ms: i64) {
        let result = self.run_inner(id, owner, lease_ms).await;
        match result {
            Ok(RunEnd::Finished) | Ok(RunEnd::LeaseLost) => {}
            Err(e) => tracing::error!(request_id = id, error = %e, "run interrupted"),
        }
        if let Err(e) = self.store.release_lease(id, owner).await {
            tracing::warn!(request_id = id, error = %e, "lease not released");
        }
    }

    async fn run_inner(&self, id: &str, owner: &str, lease_ms: i64) -> Result<RunEnd, StoreError> {
        let request = self.store.require(id).await?;
        tracing::Span::current()
            .record("incident", request.incident_number.as_str())
            .record("target", request.target_upn.as_str());
        match request.state {
            RequestState::Approved => {
                let entry = AuditEntry::new(
                    id.to_string(),
                    SYSTEM,
                    "run_started",
                    json!({ "replica": owner }),
                );
                self.store
                    .transition(id, RequestState::Approved, Transition::Start, None, &entry)
                    .await?;
                tracing::info!(request_id = id, "run started");
            }
            RequestState::Executing => self.announce_resume(&request, owner).await?,
            _ => return Ok(RunEnd::Finished),
        }
        self.publish(id, None).await;

        let request = self.store.require(id).await?;
        let mut failed_identity_step = false;
        loop {
            let journal = self.store.steps(id).await?;
            let Some(step) = next_step(&journal) else {
                break;
            };
            if failed_identity_step && changes_identity(step.name) {
                self.skip_step(id, step).await?;
                continue;
            }
            let max_attempts = self.config.runner.max_step_attempts;
            if step.attempts >= max_attempts {
                let record = StepResult::failure(format!(
                    "given up: the step was started {} times without finishing \
                     (runner.max_step_attempts); a retry reads the account back \
                     before writing again",
                    step.attempts
                ))
                .into_record(step.seq, step.name, step.attempts);
                failed_identity_step |= changes_identity(step.name);
                self.journal_step(&request, &record).await?;
                continue;
            }
            let Some(attempt) = self.store.step_started(id, step.seq, owner).await? else {
                tracing::warn!(request_id = id, "lease lost; another replica runs this");
                return Ok(RunEnd::LeaseLost);
            };
            let mut started = step.clone();
            started.status = StepStatus::Running;
            started.started_at = started.started_at.or(Some(now_millis()));
            let journal = self.store.steps(id).await?;
            let cx = StepContext {
                request: &request,
                step: &started,
                attempt,
                journal: &journal,
            };
            let work = self.execute_within_budget(&cx, owner, lease_ms);
            let result = crate::metrics::time_step(step.name, attempt, work).await;
            let record = result.into_record(step.seq, step.name, attempt);
            if record.status == StepStatus::Failed && changes_identity(step.name) {
                failed_identity_step = true;
            }
            self.journal_step(&request, &record).await?;
            if !self.store.renew_lease(id, owner, lease_ms).await? {
                return Ok(RunEnd::LeaseLost);
            }
        }
        self.finish(&request).await?;
        Ok(RunEnd::Finished)
    }

    /// Runs one step under its time budget (`runner.step_timeout`), renewing
    /// the lease while it runs so that no other replica takes over a step
    /// that is still in flight.
    ///
    /// A step cut off by its budget is journaled as failed with its outcome
    /// unknown; the identity steps read the account back on their next
    /// attempt, so a retry does not repeat a write that took effect.
    async fn execute_within_budget(
        &self,
        cx: &StepContext<'_>,
        owner: &str,
        lease_ms: i64,
    ) -> StepResult {
        let budget = self.config.runner.step_timeout;
        let work = tokio::time::timeout(budget, self.execute_step(cx));
        tokio::pin!(work);
        let beat = Duration::from_millis((lease_ms / 3).max(50) as u64);
        let mut heartbeat = tokio::time::interval(beat);
        heartbeat.tick().await;
        loop {
            tokio::select! {
                done = &mut work => {
                    return done.unwrap_or_else(|_| StepResult::failure(format!(
                        "did not finish within {} (runner.step_timeout); its \
                         outcome is unknown, and a retry reads the account back \
                         before writing again",
                        humantime::format_duration(budget)
                    )));
                }
                _ = heartbeat.tick() => {
                    match self.store.renew_lease(&cx.request.id, owner, lease_ms).await {
                        Ok(true) => {}
                        Ok(false) => tracing::error!(
                            request_id = %cx.request.id,
                            "lease lost while a step was in flight"
                        ),
                        Err(e) => tracing::warn!(
                            request_id = %cx.request.id,
                            error = %e,
                            "lease not renewed"
                        ),
                    }
                }
            }
        }
    }

    async fn announce_resume(
        &self,
        request: &ContainmentRequest,
        owner: &str,
    ) -> Result<(), StoreError> {
        let journal = self.store.steps(&request.id).await?;
        let interrupted = journal
            .iter()
            .any(|s| s.status == StepStatus::Running || s.status == StepStatus::Done);
        let events = self.store.audit_events(Some(&request.id)).await?;
        let retried = events.last().is_some_and(|e| e.event == "retry_requested");
        if !interrupted || retried {
            return Ok(());
        }
        let entry = AuditEntry::new(
            request.id.clone(),
            SYSTEM,
            "run_resumed",
            json!({ "replica": owner }),
        );
        self.store.record_event(&entry).await?;
        tracing::info!(request_id = %request.id, "run resumed");
        self.publish(
            &request.id,
            Some(
                "The run was interrupted and has **resumed** where its journal \
                 stopped; steps already done are not repeated."
                    .into(),
            ),
        )
        .await;
        Ok(())
    }

    async fn skip_step(&self, id: &str, step: &StepRecord) -> Result<(), StoreError> {
        let mut record = step.clone();
        record.status = StepStatus::Skipped;
        record.detail = Some("skipped because an earlier step failed".into());
        let entry = AuditEntry::new(
            id.to_string(),
            SYSTEM,
            "step_skipped",
            json!({ "step": step.name.as_str() }),
        );
        self.store.step_finished(id, &record, &entry).await
    }

    /// Journals the end of a step, updates the card and threads the news.
    async fn journal_step(
        &self,
        request: &ContainmentRequest,
        record: &StepRecord,
    ) -> Result<(), StoreError> {
        let event = match record.status {
            StepStatus::Done => "step_done",
            _ => "step_failed",
        };
        let entry = AuditEntry::new(
            request.id.clone(),
            SYSTEM,
            event,
            json!({
                "step": record.name.as_str(),
                "attempt": record.attempts,
                "http_status": record.http_status,
                "outside_ids": record.outside_ids,
                "error": record.error,
                "detail": record.detail,
            }),
        );
        self.store
            .step_finished(&request.id, record, &entry)
            .await?;
        if record.status == StepStatus::Done {
            tracing::info!(request_id = %request.id, step = record.name.as_str(), "step done");
        } else {
            tracing::error!(
                request_id = %request.id,
                step = record.name.as_str(),
                error = record.error.as_deref().unwrap_or(""),
                "step failed"
            );
        }
        let reply = step_reply(record);
        self.publish(&request.id, reply).await;
        Ok(())
    }

    /// Moves the request to its final state and tells everyone.
    async fn finish(&self, request: &ContainmentRequest) -> Result<(), StoreError> {
        let journal = self.store.steps(&request.id).await?;
        let (transition, outcome) = outcome_of(request, &journal);
        let entry = AuditEntry::new(
            request.id.clone(),
            SYSTEM,
            "run_finished",
            json!({
                "transition": transition,
                "outcome": outcome,
                "graph_request_ids": journal
                    .iter()
                    .filter_map(|s| s.outside_ids.get("request_id").cloned())
                    .collect::<Vec<_>>(),
            }),
        );
        let state = self
            .store
            .transition(
                &request.id,
                RequestState::Executing,
                transition,
                Some(&outcome),
                &entry,
            )
            .await?;
        tracing::info!(request_id = %request.id, state = %state, "run finished");
        crate::metrics::run_finished(&self.store, request, state).await;
        self.publish(
            &request.id,
            Some(format!("**{}**: {outcome}", state.label())),
        )
        .await;
        self.tell_requester(
            request,
            format!("{} is {}: {outcome}", request.id, state.label()),
        )
        .await;
        Ok(())
    }

    /// Ends a request that waited too long for approval.
    pub async fn expire(&self, id: &str) {
        let entry = AuditEntry::new(
            id.to_string(),
            SYSTEM,
            "approval_expired",
            json!({ "timeout": humantime::format_duration(self.config.policy.approval_timeout).to_string() }),
        );
        let outcome = "No decision was made before the approval timeout; nothing was changed.";
        match self
            .store
            .transition(
                id,
                RequestState::AwaitingApproval,
                Transition::Expire,
                Some(outcome),
                &entry,
            )
            .await
        {
            Ok(_) => {}
            Err(StoreError::Conflict { .. }) => return,
            Err(e) => {
                tracing::error!(request_id = id, error = %e, "cannot expire request");
                return;
            }
        }
        tracing::info!(request_id = id, "approval expired");
        let _ = self.store.skip_pending_steps(id).await;
        self.publish(id, Some(format!("**Expired**: {outcome}")))
            .await;
        if let Ok(request) = self.store.require(id).await {
            let note = format!(
                "[Cordon {id}] The containment request for {} expired without \
                 approval after {}; no action was taken in Entra ID.",
                request.target_upn,
                humantime::format_duration(self.config.policy.approval_timeout)
            );
            if let Err(e) = self
                .servicenow
                .add_work_note(&request.incident_sys_id, &note)
                .await
            {
                tracing::warn!(request_id = id, error = %e, "expiry note not written");
            }
            self.tell_requester(&request, format!("{id} expired: {outcome}"))
                .await;
        }
    }
}

/// The first step still to do, in runbook order.
fn next_step(journal: &[StepRecord]) -> Option<&StepRecord> {
    journal
        .iter()
        .find(|s| matches!(s.status, StepStatus::Pending | StepStatus::Running))
}

fn step_reply(record: &StepRecord) -> Option<String> {
    if record.name == StepKind::TeamsNotice || record.name == StepKind::NotifyOwner {
        return None;
    }
    let evidence = record
        .outside_ids
        .get("request_id")
        .and_then(|v| v.as_str())
        .map(|id| format!(" (Graph request-id `{id}`)"))
        .unwrap_or_default();
    Some(match record.status {
        StepStatus::Done => format!(
            "✅ {}: {}{evidence}",
            step_label(record.name),
            record.detail.as_deref().unwrap_or("done")
        ),
        _ => format!(
            "❌ {} failed: {}{evidence}",
            step_label(record.name),
            record.error.as_deref().unwrap_or("no detail")
        ),
    })
}

/// The final transition and a sentence for people, from the journal.
fn outcome_of(request: &ContainmentRequest, journal: &[StepRecord]) -> (Transition, String) {
    let identity_done = journal.iter().any(|s| {
        changes_identity(s.name) && s.name != StepKind::Verify && s.status == StepStatus::Done
    });
    let identity_failed: Vec<&StepRecord> = journal
        .iter()
        .filter(|s| changes_identity(s.name) && s.status == StepStatus::Failed)
        .collect();
    let reporting_failed: Vec<&str> = journal
        .iter()
        .filter(|s| !changes_identity(s.name) && s.status == StepStatus::Failed)
        .map(|s| step_label(s.name))
        .collect();
    let reporting_note = if reporting_failed.is_empty() {
        String::new()
    } else {
        format!(" Not completed: {}.", reporting_failed.join("; "))
    };
    if identity_failed.is_empty() {
        let text = match request.kind {
            RequestKind::Containment => format!(
                "{} ({}) is contained: every step of the {} runbook succeeded.",
                request.target_name, request.target_upn, request.runbook
            ),
            RequestKind::Release => format!(
                "{} ({}) can sign in again.",
                request.target_name, request.target_upn
            ),
        };
        return (Transition::Succeed, text + &reporting_note);
    }
    let failures: Vec<String> = identity_failed
        .iter()
        .map(|s| {
            format!(
                "{}: {}",
                step_label(s.name),
                s.error.as_deref().unwrap_or("failed")
            )
        })
        .collect();
    if identity_done && request.kind == RequestKind::Containment {
        (
            Transition::SucceedPartially,
            format!(
                "partially contained; sessions may still be active. {}.{}",
                failures.join("; "),
                reporting_note
            ),
        )
    } else {
        (
            Transition::Fail,
            format!(
                "nothing took effect. {}.{}",
                failures.join("; "),
                reporting_note
            ),
        )
    }
}
