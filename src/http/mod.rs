//! The HTTP surface: Teams activities, the ServiceNow webhook, the
//! automation API, health and metrics. Each area has its own router,
//! merged in [`router`].
//!
//! Handlers translate between HTTP and the engine and nothing else: they
//! never decide policy, and their error answers are stable JSON that names
//! what is wrong without echoing secrets or internal detail.

pub mod api;
pub mod error;
pub mod health;
pub mod messages;
pub mod openapi;
pub mod proposal;
pub mod rate_limit;
pub mod schema;
pub mod webhook;

use std::sync::Arc;

use axum::Router;

use crate::botframework::auth::BotAuthenticator;
use crate::containment::Engine;
use crate::servicenow::webhook::ReplayGuard;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub engine: Arc<Engine>,
    pub auth: BotAuthenticator,
    pub replay: Arc<ReplayGuard>,
}

/// Every route, before state and layers: the one route table that both
/// serves and is checked against the OpenAPI document.
pub fn routes(api_settings: &crate::config::ApiConfig) -> Router<AppState> {
    Router::new()
        .merge(messages::router())
        .merge(webhook::router())
        .merge(api::router(api_settings))
        .merge(openapi::router())
        .merge(health::router())
}

pub fn router(state: AppState, max_body_bytes: usize) -> Router {
    routes(&state.engine.config.api)
        .layer(axum::extract::DefaultBodyLimit::max(max_body_bytes))
        .layer(
            tower_http::trace::TraceLayer::new_for_http().make_span_with(
                |request: &axum::http::Request<axum::body::Body>| {
                    // The containment fields are filled in by the engine once
                    // it knows which request the call is about.
                    tracing::info_span!(
                        "http",
                        method = %request.method(),
                        path = %request.uri().path(),
                        http_id = %uuid::Uuid::new_v4(),
                        request_id = tracing::field::Empty,
                        incident = tracing::field::Empty,
                        target = tracing::field::Empty,
                    )
                },
            ),
        )
        .with_state(state)
}
