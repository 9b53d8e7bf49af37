//! The operator's endpoints: `/healthz` (the process answers), `/readyz`
//! (the store answers too, within two seconds) and `/metrics`
//! (Prometheus text format, see [`crate::metrics`]). None of them needs a
//! credential, so none of them says more than counts and states.

use std::time::Duration;

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

/// How long `/readyz` waits for the store. Without a bound, a store host
/// that drops packets or a pool whose connections are all taken would
/// hold the probe for the pool's own acquire timeout (30 s) instead of
/// answering that the replica cannot serve now.
const READY_WITHIN: Duration = Duration::from_secs(2);

async fn ready(State(state): State<AppState>) -> (StatusCode, &'static str) {
    let unavailable = (StatusCode::SERVICE_UNAVAILABLE, "store unavailable");
    match tokio::time::timeout(READY_WITHIN, state.engine.store.ping()).await {
        Ok(Ok(())) => (StatusCode::OK, "ready"),
        Ok(Err(e)) => {
            tracing::error!(error = %e, "store not ready");
            unavailable
        }
        Err(_) => {
            let within = humantime::format_duration(READY_WITHIN);
            tracing::error!(%within, "store not ready: no answer in time");
            unavailable
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
