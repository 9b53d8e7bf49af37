//! The operator's endpoints: `/healthz` (the process answers), `/readyz`
//! (the store answers too) and `/metrics` (Prometheus text format, see
//! [`crate::metrics`]). None of them needs a credential, so none of them
//! says more than counts and states.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use super::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(ready))
        .route("/metrics", get(metrics))
}

async fn ready(State(state): State<AppState>) -> (StatusCode, &'static str) {
    match state.engine.store.ping().await {
        Ok(()) => (StatusCode::OK, "ready"),
        Err(e) => {
            tracing::error!(error = %e, "store not ready");
            (StatusCode::SERVICE_UNAVAILABLE, "store unavailable")
        }
    }
}

/// The metrics; a store that does not answer makes the scrape fail, so
/// that Prometheus records the target as down rather than stale gauges.
async fn metrics(State(state): State<AppState>) -> Response {
    match crate::metrics::render(&state.engine.store).await {
        Ok(text) => ([(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)], text).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "metrics: store not readable");
            (StatusCode::SERVICE_UNAVAILABLE, "store unavailable").into_response()
        }
    }
}
