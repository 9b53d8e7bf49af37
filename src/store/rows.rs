//! Mapping between rows and values, and the statements that run inside a
//! transaction the caller owns.

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use sqlx::any::AnyRow;
use sqlx::{Any, AnyPool, Row, Transaction};

use super::{json_column, StoreError};
use crate::audit::AuditEvent;
use crate::containment::model::{
    now_millis, Approval, ContainmentRequest, Decision, Requester, StepRecord, StepStatus,
};
use crate::containment::state::RequestState;
use crate::policy::{RequestKind, StepKind};

pub const COLUMNS: &str = "id, kind, target_upn, target_id, target_name, \
    target_department, incident_number, incident_sys_id, justification, \
    requester_id, requester_name, source, risk, classification, rule, runbook, \
    steps, required_approvals, auto_approved_by, state, outcome, origin, \
    thread, related_request_id, created_at, updated_at, expires_at, run_count";

/// What `GET /api/v1/containments` and `status` filter on.
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    pub state: Option<RequestState>,
    pub incident: Option<String>,
    pub upn: Option<String>,
    pub limit: i64,
    pub offset: i64,
}

/// The wire name of a serde enum (`"containment"`, `"siem"`, ...).
pub fn enum_name<T: Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(Value::String(text)) => text,
        _ => String::new(),
    }
}

fn enum_parse<T: DeserializeOwned>(column: &str, text: &str) -> Result<T, StoreError> {
    serde_json::from_value(Value::String(text.to_string()))
        .map_err(|_| StoreError::Corrupt(format!("{column} = {text}")))
}

pub fn kind_str(kind: RequestKind) -> String {
    enum_name(&kind)
}

pub async fn insert_request(
    tx: &mut Transaction<'static, Any>,
    r: &ContainmentRequest,
) -> Result<(), sqlx::Error> {
    let steps: Vec<&str> = r.steps.iter().map(|s| s.as_str()).collect();
    sqlx::query(&format!(
        "INSERT INTO requests ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, \
         $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, \
         $22, $23, $24, $25, $26, $27, $28)"
    ))
    .bind(&r.id)
    .bind(enum_name(&r.kind))
    .bind(&r.target_upn)
    .bind(&r.target_id)
    .bind(&r.target_name)
    .bind(r.target_department.clone())
    .bind(&r.incident_number)
    .bind(&r.incident_sys_id)
    .bind(&r.justification)
    .bind(&r.requester.id)
    .bind(&r.requester.name)
    .bind(enum_name(&r.source))
    .bind(r.risk.as_ref().map(enum_name))
    .bind(enum_name(&r.classification))
    .bind(&r.rule)
    .bind(&r.runbook)
    .bind(serde_json::to_string(&steps).unwrap_or_default())
    .bind(r.required_approvals as i64)
    .bind(r.auto_approved_by.clone())
    .bind(r.state.as_str())
    .bind(r.outcome.clone())
    .bind(
        r.origin
            .as_ref()
            .and_then(|o| serde_json::to_string(o).ok()),
    )
    .bind(
        r.thread
            .as_ref()
            .and_then(|t| serde_json::to_string(t).ok()),
    )
    .bind(r.related_request_id.clone())
    .bind(r.created_at)
    .bind(r.updated_at)
    .bind(r.expires_at)
    .bind(r.run_count)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

pub async fn insert_steps(
    tx: &mut Transaction<'static, Any>,
    r: &ContainmentRequest,
) -> Result<(), StoreError> {
    for (index, step) in r.steps.iter().enumerate() {
        sqlx::query(
            "INSERT INTO steps (request_id, seq, name, status, attempts) \
             VALUES ($1, $2, $3, 'pending', 0)",
        )
        .bind(&r.id)
        .bind(index as i64 + 1)
        .bind(step.as_str())
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

pub fn request_from_row(row: &AnyRow) -> Result<ContainmentRequest, StoreError> {
    let text = |name: &str| row.try_get::<String, _>(name);
    let optional = |name: &str| row.try_get::<Option<String>, _>(name);
    let steps_json = text("steps")?;
    let names: Vec<String> = serde_json::from_str(&steps_json)
        .map_err(|_| StoreError::Corrupt(format!("steps = {steps_json}")))?;
    let steps = names
        .iter()
        .map(|name| StepKind::parse(name).map_err(|_| StoreError::Corrupt(format!("step {name}"))))
        .collect::<Result<Vec<_>, _>>()?;
    let state = text("state")?;
    Ok(ContainmentRequest {
        id: text("id")?,
        kind: enum_parse("kind", &text("kind")?)?,
        target_upn: text("target_upn")?,
        target_id: text("target_id")?,
        target_name: text("target_name")?,
        target_department: optional("target_department")?,
        incident_number: text("incident_number")?,
        incident_sys_id: text("incident_sys_id")?,
        justification: text("justification")?,
        requester: Requester {
            id: text("requester_id")?,
            name: text("requester_name")?,
        },
        source: enum_parse("source", &text("source")?)?,
        risk: optional("risk")?
            .map(|r| enum_parse("risk", &r))
            .transpose()?,
        classification: enum_parse("classification", &text("classification")?)?,
        rule: text("rule")?,
        runbook: text("runbook")?,
        steps,
        required_approvals: row.try_get::<i64, _>("required_approvals")? as u32,
        auto_approved_by: optional("auto_approved_by")?,
        state: RequestState::parse(&state)
            .ok_or_else(|| StoreError::Corrupt(format!("state = {state}")))?,
        outcome: optional("outcome")?,
        origin: optional("origin")?.and_then(|t| serde_json::from_str(&t).ok()),
        thread: optional("thread")?.and_then(|t| serde_json::from_str(&t).ok()),
        related_request_id: optional("related_request_id")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        expires_at: row.try_get("expires_at")?,
        run_count: row.try_get("run_count")?,
    })
}

pub async fn list(pool: &AnyPool, f: &ListFilter) -> Result<Vec<ContainmentRequest>, StoreError> {
    let mut clauses = Vec::new();
    let mut values: Vec<String> = Vec::new();
    if let Some(state) = f.state {
        values.push(state.as_str().to_string());
        clauses.push(format!("state = ${}", values.len()));
    }
    if let Some(incident) = &f.incident {
        values.push(incident.to_ascii_uppercase());
        clauses.push(format!("incident_number = ${}", values.len()));
    }
    if let Some(upn) = &f.upn {
        values.push(upn.to_lowercase());
        clauses.push(format!("target_upn = ${}", values.len()));
    }
    let filter = if clauses.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", clauses.join(" AND "))
    };
    let sql = format!(
        "SELECT {COLUMNS} FROM requests {filter} ORDER BY created_at DESC, id \
         LIMIT ${} OFFSET ${}",
        values.len() + 1,
        values.len() + 2
    );
    let mut query = sqlx::query(&sql);
    for value in &values {
        query = query.bind(value.clone());
    }
    let limit = if f.limit <= 0 { 50 } else { f.limit.min(500) };
    let rows = query
        .bind(limit)
        .bind(f.offset.max(0))
        .fetch_all(pool)
        .await?;
    rows.iter().map(request_from_row).collect()
}

pub async fn approvals(pool: &AnyPool, id: &str) -> Result<Vec<Approval>, StoreError> {
    let rows = sqlx::query(
        "SELECT approver_id, approver_name, decision, reason, at FROM approvals \
         WHERE request_id = $1 ORDER BY at, approver_id",
    )
    .bind(id)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|row| {
            let decision: String = row.try_get("decision")?;
            Ok(Approval {
                approver_id: row.try_get("approver_id")?,
                approver_name: row.try_get("approver_name")?,
                decision: enum_parse::<Decision>("decision", &decision)?,
                reason: row.try_get("reason")?,
                at: row.try_get("at")?,
            })
        })
        .collect()
}

pub async fn steps(pool: &AnyPool, id: &str) -> Result<Vec<StepRecord>, StoreError> {
    let rows = sqlx::query(
        "SELECT seq, name, status, attempts, started_at, finished_at, \
         http_status, outside_ids, error, detail FROM steps \
         WHERE request_id = $1 ORDER BY seq",
    )
    .bind(id)
    .fetch_all(pool)
    .await?;
    rows.iter().map(step_from_row).collect()
}

fn step_from_row(row: &AnyRow) -> Result<StepRecord, StoreError> {
    let name: String = row.try_get("name")?;
    let status: String = row.try_get("status")?;
    Ok(StepRecord {
        seq: row.try_get("seq")?,
        name: StepKind::parse(&name).map_err(|_| StoreError::Corrupt(format!("step {name}")))?,
        status: StepStatus::from_column(&status)?,
        attempts: row.try_get("attempts")?,
        started_at: row.try_get("started_at")?,
        finished_at: row.try_get("finished_at")?,
        http_status: row.try_get("http_status")?,
        outside_ids: json_column(row.try_get("outside_ids")?),
        error: row.try_get("error")?,
        detail: row.try_get("detail")?,
    })
}

/// Kind, state and approvals needed, read inside the caller's transaction.
pub async fn state_of(
    tx: &mut Transaction<'static, Any>,
    id: &str,
) -> Result<(RequestKind, RequestState, u32), StoreError> {
    let row = sqlx::query("SELECT kind, state, required_approvals FROM requests WHERE id = $1")
        .bind(id)
        .fetch_optional(&mut **tx)
        .await?
        .ok_or_else(|| StoreError::NotFound(id.to_string()))?;
    let kind: String = row.try_get("kind")?;
    let state: String = row.try_get("state")?;
    let required: i64 = row.try_get("required_approvals")?;
    Ok((
        enum_parse("kind", &kind)?,
        RequestState::parse(&state).ok_or_else(|| StoreError::Corrupt(state))?,
        required as u32,
    ))
}

pub async fn insert_approval(
    tx: &mut Transaction<'static, Any>,
    id: &str,
    approval: &Approval,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO approvals (request_id, approver_id, approver_name, decision, reason, at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(id)
    .bind(&approval.approver_id)
    .bind(&approval.approver_name)
    .bind(approval.decision.as_str())
    .bind(approval.reason.clone())
    .bind(approval.at)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

pub async fn count_approvals(
    tx: &mut Transaction<'static, Any>,
    id: &str,
) -> Result<u32, StoreError> {
    let count: i64 = sqlx::query(
        "SELECT COUNT(*) AS n FROM approvals WHERE request_id = $1 AND decision = 'approve'",
    )
    .bind(id)
    .fetch_one(&mut **tx)
    .await?
    .try_get("n")?;
    Ok(count as u32)
}

pub async fn set_state(
    tx: &mut Transaction<'static, Any>,
    id: &str,
    from: RequestState,
    to: RequestState,
    outcome: Option<&str>,
) -> Result<(), StoreError> {
    let done = sqlx::query(
        "UPDATE requests SET state = $1, outcome = COALESCE($2, outcome), \
         updated_at = $3 WHERE id = $4 AND state = $5",
    )
    .bind(to.as_str())
    .bind(outcome.map(str::to_string))
    .bind(now_millis())
    .bind(id)
    .bind(from.as_str())
    .execute(&mut **tx)
    .await?;
    if done.rows_affected() != 1 {
        return Err(StoreError::Conflict {
            id: id.to_string(),
            expected: from,
            current: to,
        });
    }
    Ok(())
}

pub async fn count_run(tx: &mut Transaction<'static, Any>, id: &str) -> Result<(), StoreError> {
    sqlx::query("UPDATE requests SET run_count = run_count + 1 WHERE id = $1")
        .bind(id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

pub async fn reset_unfinished_steps(
    tx: &mut Transaction<'static, Any>,
    id: &str,
) -> Result<(), StoreError> {
    // The reporting steps run again too, so that the thread and the ticket
    // get the outcome of the retry, not only that of the first run.
    sqlx::query(
        "UPDATE steps SET status = 'pending', error = NULL \
         WHERE request_id = $1 AND (status IN ('failed', 'skipped', 'running') \
         OR name IN ('teams_notice', 'notify_owner', 'servicenow_summary'))",
    )
    .bind(id)
    .execute(&mut **tx)
    .await?;
    sqlx::query("UPDATE requests SET run_count = run_count + 1, outcome = NULL WHERE id = $1")
        .bind(id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

pub async fn update_step(
    tx: &mut Transaction<'static, Any>,
    id: &str,
    step: &StepRecord,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE steps SET status = $1, finished_at = $2, http_status = $3, \
         outside_ids = $4, error = $5, detail = $6 WHERE request_id = $7 AND seq = $8",
    )
    .bind(step.status.as_str())
    .bind(step.finished_at)
    .bind(step.http_status)
    .bind((!step.outside_ids.is_null()).then(|| step.outside_ids.to_string()))
    .bind(step.error.clone())
    .bind(step.detail.clone())
    .bind(id)
    .bind(step.seq)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

pub async fn audit_events(
    pool: &AnyPool,
    request_id: Option<&str>,
) -> Result<Vec<AuditEvent>, StoreError> {
    let base = "SELECT seq, at, request_id, actor, event, details, prev_hash, hash \
                FROM audit_events";
    let rows = match request_id {
        Some(id) => {
            sqlx::query(&format!("{base} WHERE request_id = $1 ORDER BY seq"))
                .bind(id)
                .fetch_all(pool)
                .await?
        }
        None => {
            sqlx::query(&format!("{base} ORDER BY seq"))
                .fetch_all(pool)
                .await?
        }
    };
    rows.iter()
        .map(|row| {
            let details: String = row.try_get("details")?;
            Ok(AuditEvent {
                seq: row.try_get("seq")?,
                at: row.try_get("at")?,
                request_id: row.try_get("request_id")?,
                actor: row.try_get("actor")?,
                event: row.try_get("event")?,
                details: serde_json::from_str(&details).unwrap_or(Value::String(details)),
                prev_hash: row.try_get("prev_hash")?,
                hash: row.try_get("hash")?,
            })
        })
        .collect()
}
