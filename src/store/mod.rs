//! Durable state on SQLite or PostgreSQL through sqlx: requests, approvals,
//! runbook steps, the audit chain, processed activity ids and the Teams
//! service URLs Cordon has seen.
//!
//! Every change of a request's state is one transaction that also appends
//! its audit event; the event is appended first, which takes the chain's
//! head row lock and so serialises writers on both databases. State changes
//! are compare-and-set on the previous state, so two replicas (or a double
//! click) cannot both win. Queries are written once, with `$n` parameters,
//! which both databases accept.
//!
//! The store never calls anything outside the database.

mod rows;

use std::str::FromStr;

use serde_json::Value;
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{Any, AnyPool, Executor, Row, Transaction};

use crate::audit::{self, AuditEntry, AuditEvent};
use crate::containment::model::{
    now_millis, Approval, ContainmentRequest, Decision, StepRecord, StepStatus, ThreadLocation,
};
use crate::containment::state::{IllegalTransition, RequestState, Transition};
use crate::policy::RequestKind;

pub use rows::{enum_name, ListFilter};

/// Errors of the store. `Conflict` and `Illegal` are answers, not faults:
/// the request moved on before this change could apply.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("database migration failed: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    #[error("unsupported store url; use sqlite://PATH or postgres://...")]
    UnsupportedUrl,
    #[error("request {0} not found")]
    NotFound(String),
    #[error("request {id} is {current}, not {expected}")]
    Conflict {
        id: String,
        expected: RequestState,
        current: RequestState,
    },
    #[error(transparent)]
    Illegal(#[from] IllegalTransition),
    #[error("stored row is corrupt: {0}")]
    Corrupt(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
}

/// The result of inserting a request that may already exist.
#[derive(Debug)]
pub enum Inserted {
    New(Box<ContainmentRequest>),
    Existing(Box<ContainmentRequest>),
}

/// The result of recording an approval or rejection.
#[derive(Debug, Clone, PartialEq)]
pub enum DecisionRecorded {
    /// Recorded; the request is in this state now.
    Recorded { state: RequestState, approvals: u32 },
    /// This person already decided on this request.
    AlreadyDecided,
    /// The request is no longer waiting for approval.
    NotAwaiting(RequestState),
}

impl Store {
    /// Opens the database at `url` and brings its schema up to date.
    pub async fn connect(url: &str) -> Result<Store, StoreError> {
        sqlx::any::install_default_drivers();
        let (backend, url) = normalise_url(url)?;
        let options = AnyConnectOptions::from_str(&url)?;
        let max = match backend {
            Backend::Sqlite => 4,
            Backend::Postgres => 16,
        };
        let pool = AnyPoolOptions::new()
            .max_connections(max)
            .after_connect(move |conn, _meta| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        conn.execute("PRAGMA busy_timeout = 15000").await?;
                        conn.execute("PRAGMA journal_mode = WAL").await?;
                        conn.execute("PRAGMA synchronous = NORMAL").await?;
                        conn.execute("PRAGMA foreign_keys = ON").await?;
                    }
                    Ok(())
                })
            })
            .connect_with(options)
            .await?;
        match backend {
            Backend::Sqlite => sqlx::migrate!("migrations/sqlite").run(&pool).await?,
            Backend::Postgres => sqlx::migrate!("migrations/postgres").run(&pool).await?,
        }
        Ok(Store { pool, backend })
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// A cheap round trip, for readiness checks.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// How many requests are in each state, for the metrics endpoint.
    pub async fn count_by_state(&self) -> Result<Vec<(RequestState, i64)>, StoreError> {
        let rows = sqlx::query("SELECT state, COUNT(*) AS n FROM requests GROUP BY state")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| {
                let text: String = row.try_get("state")?;
                let state = RequestState::parse(&text)
                    .ok_or_else(|| StoreError::Corrupt(format!("state = {text}")))?;
                Ok((state, row.try_get("n")?))
            })
            .collect()
    }

    /// Begins a transaction whose first act is appending `entry` to the
    /// audit chain. Taking the chain's head first means the transaction
    /// holds the write lock from the start (SQLite) or the head row lock
    /// (PostgreSQL), so chained appends never fork.
    async fn begin_audited(
        &self,
        entry: &AuditEntry,
    ) -> Result<Transaction<'static, Any>, StoreError> {
        let mut tx = self.pool.begin().await?;
        append_event(&mut tx, entry).await?;
        Ok(tx)
    }

    /// Appends an event that changes no request.
    pub async fn record_event(&self, entry: &AuditEntry) -> Result<(), StoreError> {
        self.begin_audited(entry).await?.commit().await?;
        Ok(())
    }

    /// Inserts a new request with its pending steps, or returns the one that
    /// already exists for the same kind, target and incident.
    pub async fn insert_request(
        &self,
        request: &ContainmentRequest,
        entry: &AuditEntry,
    ) -> Result<Inserted, StoreError> {
        let mut tx = self.begin_audited(entry).await?;
        match rows::insert_request(&mut tx, request).await {
            Ok(()) => {
                rows::insert_steps(&mut tx, request).await?;
                tx.commit().await?;
                Ok(Inserted::New(Box::new(request.clone())))
            }
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                tx.rollback().await?;
                let existing = self
                    .find_by_key(request.kind, &request.target_upn, &request.incident_number)
                    .await?
                    .ok_or_else(|| StoreError::NotFound(request.id.clone()))?;
                Ok(Inserted::Existing(Box::new(existing)))
            }
            Err(e) => Err(e.into()),
        }
    }

    pub async fn load(&self, id: &str) -> Result<Option<ContainmentRequest>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {} FROM requests WHERE id = $1",
            rows::COLUMNS
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| rows::request_from_row(&r)).transpose()
    }

    pub async fn require(&self, id: &str) -> Result<ContainmentRequest, StoreError> {
        self.load(id)
            .await?
            .ok_or_else(|| StoreError::NotFound(id.to_string()))
    }

    pub async fn find_by_key(
        &self,
        kind: RequestKind,
        upn: &str,
        incident: &str,
    ) -> Result<Option<ContainmentRequest>, StoreError> {
        let sql = format!(
            "SELECT {} FROM requests WHERE kind = $1 AND target_upn = $2 \
             AND incident_number = $3",
            rows::COLUMNS
        );
        let row = sqlx::query(&sql)
            .bind(rows::kind_str(kind))
            .bind(upn)
            .bind(incident)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| rows::request_from_row(&r)).transpose()
    }

    /// Requests matching `filter`, newest first.
    pub async fn list(&self, filter: &ListFilter) -> Result<Vec<ContainmentRequest>, StoreError> {
        rows::list(&self.pool, filter).await
    }

    pub async fn approvals(&self, id: &str) -> Result<Vec<Approval>, StoreError> {
        rows::approvals(&self.pool, id).await
    }

    pub async fn steps(&self, id: &str) -> Result<Vec<StepRecord>, StoreError> {
        rows::steps(&self.pool, id).await
    }

    /// Records an approval or rejection and, when it completes the quorum
    /// or rejects, moves the request on, all in one transaction.
    pub async fn record_decision(
        &self,
        id: &str,
        approval: &Approval,
        entry: &AuditEntry,
    ) -> Result<DecisionRecorded, StoreError> {
        let mut tx = self.begin_audited(entry).await?;
        let (kind, state, required) = rows::state_of(&mut tx, id).await?;
        if state != RequestState::AwaitingApproval {
            tx.rollback().await?;
            return Ok(DecisionRecorded::NotAwaiting(state));
        }
        if let Err(e) = rows::insert_approval(&mut tx, id, approval).await {
            tx.rollback().await?;
            return match e {
                sqlx::Error::Database(d) if d.is_unique_violation() => {
                    Ok(DecisionRecorded::AlreadyDecided)
                }
                other => Err(other.into()),
            };
        }
        let approvals = rows::count_approvals(&mut tx, id).await?;
        let transition = match approval.decision {
            Decision::Reject => Some(Transition::Reject),
            Decision::Approve if approvals >= required => Some(Transition::Approve),
            Decision::Approve => None,
        };
        let mut next = state;
        if let Some(transition) = transition {
            next = state.apply(kind, transition)?;
            let outcome = (approval.decision == Decision::Reject).then(|| {
                format!(
                    "Rejected by {}{}",
                    approval.approver_name,
                    approval
                        .reason
                        .as_deref()
                        .map(|r| format!(": {r}"))
                        .unwrap_or_default()
                )
            });
            rows::set_state(&mut tx, id, state, next, outcome.as_deref()).await?;
        }
        tx.commit().await?;
        Ok(DecisionRecorded::Recorded {
            state: next,
            approvals,
        })
    }

    /// Moves a request from `from` by `transition`, with its audit event.
    /// `Start` also counts the run, and `Retry` puts failed and skipped
    /// steps back to pending.
    pub async fn transition(
        &self,
        id: &str,
        from: RequestState,
        transition: Transition,
        outcome: Option<&str>,
        entry: &AuditEntry,
    ) -> Result<RequestState, StoreError> {
        let mut tx = self.begin_audited(entry).await?;
        let (kind, current, _) = rows::state_of(&mut tx, id).await?;
        if current != from {
            tx.rollback().await?;
            return Err(StoreError::Conflict {
                id: id.to_string(),
                expected: from,
                current,
            });
        }
        let next = from.apply(kind, transition)?;
        rows::set_state(&mut tx, id, from, next, outcome).await?;
        match transition {
            Transition::Start => rows::count_run(&mut tx, id).await?,
            Transition::Retry => rows::reset_unfinished_steps(&mut tx, id).await?,
            _ => {}
        }
        tx.commit().await?;
        Ok(next)
    }

    /// Records the approvals thread of a request.
    pub async fn set_thread(
        &self,
        id: &str,
        thread: &ThreadLocation,
        entry: &AuditEntry,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_audited(entry).await?;
        sqlx::query("UPDATE requests SET thread = $1, updated_at = $2 WHERE id = $3")
            .bind(serde_json::to_string(thread).unwrap_or_default())
            .bind(now_millis())
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Takes up to `limit` runnable requests (approved, or executing with
    /// an expired lease) for `owner`. Each claim is a compare-and-set on the
    /// lease, so two replicas never hold the same request.
    pub async fn claim_runs(
        &self,
        owner: &str,
        lease_ms: i64,
        limit: i64,
    ) -> Result<Vec<String>, StoreError> {
        let now = now_millis();
        let candidates: Vec<String> = sqlx::query(
            "SELECT id FROM requests WHERE state IN ('approved', 'executing') \
             AND (lease_until IS NULL OR lease_until < $1) \
             ORDER BY updated_at LIMIT $2",
        )
        .bind(now)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|row| row.try_get::<String, _>("id"))
        .collect::<Result<_, _>>()?;
        let mut claimed = Vec::new();
        for id in candidates {
            let done = sqlx::query(
                "UPDATE requests SET lease_owner = $1, lease_until = $2 \
                 WHERE id = $3 AND state IN ('approved', 'executing') \
                 AND (lease_until IS NULL OR lease_until < $4)",
            )
            .bind(owner)
            .bind(now + lease_ms)
            .bind(&id)
            .bind(now)
            .execute(&self.pool)
            .await?;
            if done.rows_affected() == 1 {
                claimed.push(id);
            }
        }
        Ok(claimed)
    }

    /// Extends `owner`'s lease; false when it was lost to another replica.
    pub async fn renew_lease(
        &self,
        id: &str,
        owner: &str,
        lease_ms: i64,
    ) -> Result<bool, StoreError> {
        let now = now_millis();
        let done = sqlx::query(
            "UPDATE requests SET lease_until = $1 \
             WHERE id = $2 AND lease_owner = $3 AND lease_until >= $4",
        )
        .bind(now + lease_ms)
        .bind(id)
        .bind(owner)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn release_lease(&self, id: &str, owner: &str) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE requests SET lease_owner = NULL, lease_until = NULL \
             WHERE id = $1 AND lease_owner = $2",
        )
        .bind(id)
        .bind(owner)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Journals that a step starts, under `owner`'s lease. Returns the
    /// attempt number, or `None` when the lease is no longer `owner`'s and
    /// the step must not run.
    pub async fn step_started(
        &self,
        id: &str,
        seq: i64,
        owner: &str,
    ) -> Result<Option<i64>, StoreError> {
        let now = now_millis();
        let done = sqlx::query(
            "UPDATE steps SET status = 'running', attempts = attempts + 1, \
             started_at = COALESCE(started_at, $1), error = NULL \
             WHERE request_id = $2 AND seq = $3 AND EXISTS (SELECT 1 FROM requests \
             WHERE id = $2 AND lease_owner = $4 AND lease_until >= $1)",
        )
        .bind(now)
        .bind(id)
        .bind(seq)
        .bind(owner)
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 0 {
            return Ok(None);
        }
        let attempts: i64 =
            sqlx::query("SELECT attempts FROM steps WHERE request_id = $1 AND seq = $2")
                .bind(id)
                .bind(seq)
                .fetch_one(&self.pool)
                .await?
                .try_get("attempts")?;
        Ok(Some(attempts))
    }

    /// Journals how a step ended, with its audit event.
    pub async fn step_finished(
        &self,
        id: &str,
        step: &StepRecord,
        entry: &AuditEntry,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_audited(entry).await?;
        rows::update_step(&mut tx, id, step).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Marks every pending step as skipped (nothing more will run).
    pub async fn skip_pending_steps(&self, id: &str) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE steps SET status = 'skipped' \
             WHERE request_id = $1 AND status IN ('pending', 'running')",
        )
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Requests still awaiting approval whose time ran out.
    pub async fn expired_requests(&self, now: i64) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query(
            "SELECT id FROM requests WHERE state = 'awaiting_approval' \
             AND expires_at < $1 ORDER BY expires_at LIMIT 100",
        )
        .bind(now)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| row.try_get::<String, _>("id").map_err(Into::into))
            .collect()
    }

    /// True the first time an activity id is seen: Teams resends an
    /// activity it got no answer for, and a resend must change nothing.
    pub async fn first_sighting(&self, activity_id: &str) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "INSERT INTO seen_activities (activity_id, at) VALUES ($1, $2) \
             ON CONFLICT (activity_id) DO NOTHING",
        )
        .bind(activity_id)
        .bind(now_millis())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Forgets activity ids older than `before` (unix milliseconds).
    pub async fn forget_activities(&self, before: i64) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM seen_activities WHERE at < $1")
            .bind(before)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Remembers the serviceUrl Teams uses for a channel or tenant.
    pub async fn remember_service_url(&self, key: &str, url: &str) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO conversations (key, service_url, at) VALUES ($1, $2, $3) \
             ON CONFLICT (key) DO UPDATE SET service_url = $2, at = $3",
        )
        .bind(key)
        .bind(url)
        .bind(now_millis())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn service_url(&self, key: &str) -> Result<Option<String>, StoreError> {
        let row = sqlx::query("SELECT service_url FROM conversations WHERE key = $1")
            .bind(key)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| r.try_get("service_url")).transpose()?)
    }

    /// Audit events in chain order, of one request or of all.
    pub async fn audit_events(
        &self,
        request_id: Option<&str>,
    ) -> Result<Vec<AuditEvent>, StoreError> {
        rows::audit_events(&self.pool, request_id).await
    }

    /// The chain's head: the last sequence number and hash.
    pub async fn audit_head(&self) -> Result<(i64, String), StoreError> {
        let row = sqlx::query("SELECT seq, hash FROM audit_head WHERE id = 1")
            .fetch_one(&self.pool)
            .await?;
        Ok((row.try_get("seq")?, row.try_get("hash")?))
    }

    /// Direct access for tests that tamper with the chain on purpose.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }
}

async fn append_event(
    tx: &mut Transaction<'static, Any>,
    entry: &AuditEntry,
) -> Result<(), StoreError> {
    let head = sqlx::query("UPDATE audit_head SET seq = seq + 1 WHERE id = 1 RETURNING seq, hash")
        .fetch_one(&mut **tx)
        .await?;
    let seq: i64 = head.try_get("seq")?;
    let prev_hash: String = head.try_get("hash")?;
    let at = now_millis();
    let details = serde_json::to_string(&entry.details).unwrap_or_else(|_| "null".into());
    let hash = audit::event_hash(
        seq,
        at,
        entry.request_id.as_deref(),
        &entry.actor,
        &entry.event,
        &details,
        &prev_hash,
    );
    sqlx::query(
        "INSERT INTO audit_events \
         (seq, at, request_id, actor, event, details, prev_hash, hash) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(seq)
    .bind(at)
    .bind(entry.request_id.clone())
    .bind(&entry.actor)
    .bind(&entry.event)
    .bind(&details)
    .bind(&prev_hash)
    .bind(&hash)
    .execute(&mut **tx)
    .await?;
    sqlx::query("UPDATE audit_head SET hash = $1 WHERE id = 1")
        .bind(&hash)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

fn normalise_url(url: &str) -> Result<(Backend, String), StoreError> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok((Backend::Postgres, url.to_string()));
    }
    if !url.starts_with("sqlite:") {
        return Err(StoreError::UnsupportedUrl);
    }
    if url.contains("mode=") || url.contains(":memory:") {
        return Ok((Backend::Sqlite, url.to_string()));
    }
    let separator = if url.contains('?') { '&' } else { '?' };
    Ok((Backend::Sqlite, format!("{url}{separator}mode=rwc")))
}

/// Reads a JSON column that may be NULL.
fn json_column(text: Option<String>) -> Value {
    text.and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or(Value::Null)
}

impl StepStatus {
    fn from_column(text: &str) -> Result<StepStatus, StoreError> {
        StepStatus::parse(text).ok_or_else(|| StoreError::Corrupt(format!("step status {text}")))
    }
}
