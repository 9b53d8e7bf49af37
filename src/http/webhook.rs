//! `POST /api/servicenow/webhook`: a ServiceNow business rule asks for a
//! containment. The HMAC over the timestamp and the raw body is checked
//! before the body is even parsed; ServiceNow may deliver the same event
//! several times, and intake maps every delivery to the same request.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::post;
use axum::Router;

use crate::policy::Source;
use crate::servicenow::webhook;

use super::error::ApiError;
use super::proposal;
use super::AppState;

pub const TIMESTAMP_HEADER: &str = "x-cordon-timestamp";
pub const SIGNATURE_HEADER: &str = "x-cordon-signature";

pub fn router() -> Router<AppState> {
    Router::new().route("/api/servicenow/webhook", post(receive))
}

/// Propose a containment from a ServiceNow business rule.
///
/// The signature is checked over the raw body before anything else; a
/// stale timestamp (more than five minutes off) or a wrong signature is
/// answered 401. Then the body is handled as a proposal to the API.
#[utoipa::path(
    post,
    path = "/api/servicenow/webhook",
    tag = "servicenow",
    params(
        ("X-Cordon-Timestamp" = i64, Header, description = "Unix seconds when signed"),
        ("X-Cordon-Signature" = String, Header,
            description = "Base64 HMAC-SHA256 of `{timestamp}.{raw body}` keyed with \
                servicenow.webhook_secret"),
    ),
    request_body(content = super::proposal::ProposalBody, content_type = "application/json"),
    responses(
        (status = 202, description = "A new request was recorded",
            body = super::schema::ProposalAnswer),
        (status = 200, description = "The request for this user and incident already exists",
            body = super::schema::ProposalAnswer),
        (status = 400, description = "The body is malformed", body = super::error::ErrorBody),
        (status = 401, description = "Missing, stale or wrong signature",
            body = super::error::ErrorBody),
        (status = 413, description = "The body is too large", body = super::error::ErrorBody),
        (status = 422, description = "Policy refused", body = super::error::ErrorBody),
        (status = 502, description = "Entra ID or ServiceNow did not answer",
            body = super::error::ErrorBody),
    ),
)]
pub(crate) async fn receive(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = proposal::body_bytes(body, &state)?;
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let verified = webhook::verify(
        &state.engine.config.servicenow.webhook_secret,
        header(TIMESTAMP_HEADER),
        header(SIGNATURE_HEADER),
        &body,
        chrono::Utc::now().timestamp(),
        &state.replay,
    )
    .await;
    if let Err(e) = verified {
        tracing::warn!(reason = %e, "webhook refused");
        return Err(ApiError::Unauthorized(format!("webhook refused: {e}")));
    }
    let valid = proposal::parse(&body)?;
    proposal::submit(&state, valid, Source::ServiceNow, "ServiceNow").await
}
