//! `/api/v1/containments`: SIEMs, scripts and AI agents propose
//! containments here and read their state. Everything proposed goes
//! through the same validation, policy and approvals as a Teams command;
//! nothing sent here acts on an identity directly.
//!
//! Checks come in a fixed order, each answered before the next is looked
//! at: the bearer token (401), the token's rate limit (429), the content
//! type (415), the body's size (413) and shape (400), then policy (422).
//! None of these refusals stores anything.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use secrecy::ExposeSecret;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use utoipa::IntoParams;

use crate::config::ApiConfig;
use crate::containment::state::RequestState;
use crate::policy::Source;
use crate::store::ListFilter;

use super::error::{ApiError, ErrorBody};
use super::proposal::{self, ProposalBody};
use super::rate_limit::{retry_after_seconds, RateLimiter};
use super::schema::{ContainmentDetail, ContainmentPage, ContainmentView, ProposalAnswer};
use super::AppState;

/// The largest page a list answers with.
pub const MAX_PAGE: i64 = 200;
/// The page size when none is asked for.
pub const DEFAULT_PAGE: i64 = 50;

pub fn router(settings: &ApiConfig) -> Router<AppState> {
    let limiter = RateLimiter::new(settings.rate_limit_per_minute, settings.rate_limit_burst);
    Router::new()
        .route("/api/v1/containments", post(create).get(list))
        .route("/api/v1/containments/{id}", get(show))
        .layer(Extension(Arc::new(limiter)))
}

/// The configured name of the token presented.
///
/// The presented token is compared with every configured token, each
/// time, through their SHA-256 digests and in constant time, so that
/// neither the answer's timing nor an early exit tells a caller how much
/// of a token, or of its length, it guessed right. The scheme is
/// case-insensitive, as RFC 9110 has it.
fn caller(state: &AppState, headers: &HeaderMap) -> Result<String, ApiError> {
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(bearer_token)
        .ok_or_else(|| ApiError::Unauthorized("a bearer token is required".into()))?;
    let presented = Sha256::digest(presented.as_bytes());
    let mut found = None;
    for (index, token) in state.engine.config.api.tokens.iter().enumerate() {
        let expected = token.secret().expose_secret();
        let matches = Sha256::digest(expected.as_bytes()).ct_eq(&presented);
        if bool::from(matches) && !expected.is_empty() {
            found = Some(token.name(index));
        }
    }
    found.ok_or_else(|| ApiError::Unauthorized("the bearer token is not valid".into()))
}

/// The token of an `Authorization: Bearer <token>` value.
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// Propose a containment.
///
/// The request goes through the same validation, policy and approvals as
/// a Teams command. One request exists per (user, incident): proposing it
/// again answers 200 with the first request's id and state.
#[utoipa::path(
    post,
    path = "/api/v1/containments",
    operation_id = "propose_containment",
    tag = "containments",
    request_body(content = ProposalBody, content_type = "application/json"),
    responses(
        (status = 202, description = "A new request was recorded and awaits approval",
            body = ProposalAnswer, links(("show" = (operation_id = "show_containment",
                parameters(("id" = "$response.body#/request_id")))))),
        (status = 200, description = "The request for this user and incident already exists",
            body = ProposalAnswer, links(("show" = (operation_id = "show_containment",
                parameters(("id" = "$response.body#/request_id")))))),
        (status = 400, description = "The body is malformed; the message names the field",
            body = ErrorBody),
        (status = 401, description = "No valid bearer token", body = ErrorBody),
        (status = 413, description = "The body is larger than server.max_body_bytes",
            body = ErrorBody),
        (status = 415, description = "The content type is not application/json",
            body = ErrorBody),
        (status = 422, description = "Policy refused; the code names the rule",
            body = ErrorBody),
        (status = 429, description = "This token's rate limit is spent",
            body = ErrorBody, headers(("Retry-After" = u64,
                description = "Seconds until the next proposal is accepted"))),
        (status = 500, description = "The store failed; the detail is logged, not answered",
            body = ErrorBody),
        (status = 502, description = "Entra ID or ServiceNow did not answer; nothing was stored",
            body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn create(
    State(state): State<AppState>,
    Extension(limiter): Extension<Arc<RateLimiter>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let name = caller(&state, &headers)?;
    if let Err(wait) = limiter.take(&name) {
        tracing::warn!(token = %name, "proposal rate limit reached");
        return Err(ApiError::TooManyRequests(retry_after_seconds(wait)));
    }
    let json_content = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
    if !json_content {
        return Err(ApiError::UnsupportedMediaType);
    }
    let body = proposal::body_bytes(body, &state)?;
    let valid = proposal::parse(&body)?;
    proposal::submit(&state, valid, Source::Api, &name).await
}

/// Read one request.
///
/// Its state, target, incident, approvals, steps with their outcomes and
/// the ids Graph gave back, and its audit trail.
#[utoipa::path(
    get,
    path = "/api/v1/containments/{id}",
    operation_id = "show_containment",
    tag = "containments",
    params(("id" = String, Path, description = "The request id, e.g. `CR-7K2M9QXA`")),
    responses(
        (status = 200, description = "The request", body = ContainmentDetail),
        (status = 400, description = "The id is not valid text", body = ErrorBody),
        (status = 401, description = "No valid bearer token", body = ErrorBody),
        (status = 404, description = "No request has this id", body = ErrorBody),
        (status = 500, description = "The store failed; the detail is logged, not answered",
            body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn show(
    State(state): State<AppState>,
    headers: HeaderMap,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<ContainmentDetail>, ApiError> {
    caller(&state, &headers)?;
    let Path(id) = id.map_err(|_| ApiError::BadRequest("the id is not valid".into()))?;
    let not_found = || ApiError::NotFound("no containment has this id".into());
    if id.len() > 64 {
        return Err(not_found());
    }
    let store = &state.engine.store;
    let request = store
        .load(&id.to_ascii_uppercase())
        .await?
        .ok_or_else(not_found)?;
    tracing::Span::current()
        .record("request_id", request.id.as_str())
        .record("incident", request.incident_number.as_str())
        .record("target", request.target_upn.as_str());
    let approvals = store.approvals(&request.id).await?;
    let steps = store.steps(&request.id).await?;
    let audit = store.audit_events(Some(&request.id)).await?;
    Ok(Json(ContainmentDetail {
        request: request.into(),
        approvals: approvals.into_iter().map(Into::into).collect(),
        steps: steps.into_iter().map(Into::into).collect(),
        audit: audit.into_iter().map(Into::into).collect(),
    }))
}

/// Which requests to list, and which page.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only requests in this state.
    #[param(value_type = Option<RequestState>)]
    state: Option<String>,
    /// Only requests for this incident number (any case).
    incident: Option<String>,
    /// Only requests whose target is this UPN (any case).
    upn: Option<String>,
    /// How many requests a page holds, 1 to 200; 50 when absent.
    #[param(minimum = 1, maximum = 200)]
    limit: Option<i64>,
    /// How many requests to skip: the `next_offset` of the page before.
    #[param(minimum = 0)]
    offset: Option<i64>,
}

/// List requests, newest first.
///
/// Pages are cut by `limit` and `offset`; each page gives the `offset` of
/// the next one as `next_offset`, null on the last page. Requests made
/// while a client pages through move older ones back, so a request may
/// show up on two pages; none is skipped.
#[utoipa::path(
    get,
    path = "/api/v1/containments",
    operation_id = "list_containments",
    tag = "containments",
    params(ListQuery),
    responses(
        (status = 200, description = "One page of requests", body = ContainmentPage),
        (status = 400, description = "A parameter is malformed; the message names it",
            body = ErrorBody),
        (status = 401, description = "No valid bearer token", body = ErrorBody),
        (status = 500, description = "The store failed; the detail is logged, not answered",
            body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<ContainmentPage>, ApiError> {
    caller(&state, &headers)?;
    let Query(query) = query
        .map_err(|e| ApiError::BadRequest(format!("the query is not valid: {}", e.body_text())))?;
    let mut filter = list_filter(query)?;
    // One more than asked tells whether another page follows.
    filter.limit += 1;
    let mut found = state.engine.store.list(&filter).await?;
    let limit = filter.limit - 1;
    // An offset near i64::MAX has no page after it.
    let next_offset = (found.len() as i64 > limit)
        .then(|| filter.offset.checked_add(limit))
        .flatten();
    found.truncate(limit as usize);
    Ok(Json(ContainmentPage {
        items: found.into_iter().map(ContainmentView::from).collect(),
        next_offset,
    }))
}

fn list_filter(query: ListQuery) -> Result<ListFilter, ApiError> {
    let state = match query.state.as_deref() {
        None => None,
        Some(text) => Some(RequestState::parse(text).ok_or_else(|| {
            ApiError::BadRequest("parameter `state` has an unknown value".into())
        })?),
    };
    let limit = query.limit.unwrap_or(DEFAULT_PAGE);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ApiError::BadRequest(format!(
            "parameter `limit` must be 1 to {MAX_PAGE}"
        )));
    }
    let offset = query.offset.unwrap_or(0);
    if offset < 0 {
        return Err(ApiError::BadRequest(
            "parameter `offset` must not be negative".into(),
        ));
    }
    Ok(ListFilter {
        state,
        incident: query.incident,
        upn: query.upn,
        limit,
        offset,
    })
}
