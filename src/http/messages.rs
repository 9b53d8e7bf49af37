//! `POST /api/messages`: activities from the Bot Connector (or, in the
//! sandbox on loopback, from Agents Playground without a token).
//!
//! Order of checks: parse, authenticate (nothing is processed for a
//! refused token), tenant, then de-duplication by activity id, because
//! Teams resends an activity it got no answer for.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};

use crate::botframework::Activity;
use crate::teams::actions::{self, Reply};

use super::error::ApiError;
use super::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/api/messages", post(receive).head(probe).get(probe))
}

/// Agents Playground probes the endpoint before it loads a page.
async fn probe() -> StatusCode {
    StatusCode::OK
}

async fn receive(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = super::proposal::body_bytes(body, &state)?;
    let activity: Activity = serde_json::from_slice(&body)
        .map_err(|e| ApiError::BadRequest(format!("the body is not a valid activity: {e}")))?;
    let authorization = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    // The authenticator logs which check failed, and refuses activities of
    // any tenant but the configured one (403).
    if let Err(e) = state.auth.authenticate(authorization, &activity).await {
        return Err(match e.status() {
            403 => {
                ApiError::Forbidden("the token or the tenant is not allowed for this bot".into())
            }
            _ => ApiError::Unauthorized("a valid Bot Framework token is required".into()),
        });
    }
    if !first_sighting(&state, &activity).await? {
        tracing::info!("activity already processed; resend ignored");
        return Ok(StatusCode::OK.into_response());
    }
    Ok(match actions::handle(&state.engine, activity).await {
        Reply::Accepted => StatusCode::OK.into_response(),
        Reply::Invoke(body) => (StatusCode::OK, Json(body)).into_response(),
    })
}

async fn first_sighting(state: &AppState, activity: &Activity) -> Result<bool, ApiError> {
    let (Some(id), Some(conversation)) = (&activity.id, &activity.conversation) else {
        return Ok(true);
    };
    let key = format!("{}|{id}", conversation.id);
    Ok(state.engine.store.first_sighting(&key).await?)
}
