//! `/api/v1/containments`: SIEMs, scripts and AI agents propose
//! containments here and read their state. Everything proposed goes
//! through the same validation, policy and approvals as a Teams command;
//! nothing sent here acts on an identity directly.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Json, Router};
use secrecy::ExposeSecret;
use serde::Deserialize;
use serde_json::{json, Value};
use subtle::ConstantTimeEq;

use crate::containment::state::RequestState;
use crate::policy::Source;
use crate::store::ListFilter;

use super::error::ApiError;
use super::proposal;
use super::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/containments", post(create).get(list))
        .route("/api/v1/containments/{id}", get(show))
}

/// The configured name of the token presented, compared in constant time
/// against every configured token.
fn caller(state: &AppState, headers: &HeaderMap) -> Result<String, ApiError> {
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(|| ApiError::Unauthorized("a bearer token is required".into()))?;
    let mut found = None;
    for (index, token) in state.engine.config.api.tokens.iter().enumerate() {
        let expected = token.secret().expose_secret().as_bytes();
        if bool::from(expected.ct_eq(presented.as_bytes())) && !expected.is_empty() {
            found = Some(token.name(index));
        }
    }
    found.ok_or_else(|| ApiError::Unauthorized("the bearer token is not valid".into()))
}

async fn create(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let name = caller(&state, &headers)?;
    let json_content = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().to_ascii_lowercase().starts_with("application/json"));
    if !json_content {
        return Err(ApiError::UnsupportedMediaType);
    }
    let body = proposal::body_bytes(body, &state)?;
    let valid = proposal::parse(&body)?;
    proposal::submit(&state, valid, Source::Api, &name).await
}

async fn show(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    caller(&state, &headers)?;
    let store = &state.engine.store;
    let request = store
        .load(&id.to_ascii_uppercase())
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no containment has the id {id}")))?;
    let approvals = store.approvals(&request.id).await?;
    let steps = store.steps(&request.id).await?;
    let audit = store.audit_events(Some(&request.id)).await?;
    Ok(Json(json!({
        "request": request,
        "approvals": approvals,
        "steps": steps,
        "audit": audit,
    })))
}

#[derive(Debug, Deserialize)]
struct ListQuery {
    state: Option<String>,
    incident: Option<String>,
    upn: Option<String>,
    limit: Option<i64>,
    offset: Option<i64>,
}

async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    caller(&state, &headers)?;
    let filter_state = match query.state.as_deref() {
        None | Some("") => None,
        Some(text) => Some(RequestState::parse(text).ok_or_else(|| {
            ApiError::BadRequest(format!("parameter `state` has an unknown value `{text}`"))
        })?),
    };
    let limit = query.limit.unwrap_or(50);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::BadRequest("parameter `limit` must be 1 to 500".into()));
    }
    let offset = query.offset.unwrap_or(0);
    if offset < 0 {
        return Err(ApiError::BadRequest("parameter `offset` must not be negative".into()));
    }
    let filter = ListFilter {
        state: filter_state,
        incident: query.incident.filter(|s| !s.is_empty()),
        upn: query.upn.filter(|s| !s.is_empty()),
        limit,
        offset,
    };
    let found = state.engine.store.list(&filter).await?;
    let next = (found.len() as i64 == limit).then_some(offset + limit);
    Ok(Json(json!({ "items": found, "next_offset": next })))
}
