//! Builds a running Cordon from a `Config`: the store, the outside clients,
//! the engine, the runner and the HTTP server. [`Application::build`] binds
//! the listener and reports the port, so tests can start the real app on
//! port 0; [`Application::run_until_stopped`] serves until the process ends.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use secrecy::SecretString;
use tokio::net::TcpListener;

use crate::botframework::auth::{AuthSettings, BotAuthenticator};
use crate::botframework::connector::{ConnectorClient, ConnectorSettings};
use crate::botframework::throttle::ThreadLimits;
use crate::config::Config;
use crate::containment::runner::Runner;
use crate::containment::Engine;
use crate::graph::{GraphClient, GraphSettings};
use crate::http::{self, AppState};
use crate::retry::RetryPolicy;
use crate::servicenow::webhook::ReplayGuard;
use crate::servicenow::{ServiceNowAuth, ServiceNowClient, ServiceNowSettings};
use crate::store::Store;
use crate::teams::channel::TeamsChannel;

/// Timing knobs that tests and the sandbox turn down.
#[derive(Debug, Clone)]
pub struct Timing {
    pub retry: RetryPolicy,
    pub timeout: Duration,
    /// The per-thread send limits kept towards Teams; benchmarks of the
    /// engine lift them to measure the engine rather than Teams' quotas.
    pub thread_limits: ThreadLimits,
}

impl Default for Timing {
    fn default() -> Self {
        Self {
            retry: RetryPolicy::default(),
            timeout: Duration::from_secs(30),
            thread_limits: ThreadLimits::teams(),
        }
    }
}

pub struct Application {
    listener: TcpListener,
    port: u16,
    engine: Arc<Engine>,
    state: AppState,
}

impl Application {
    pub async fn build(config: Config) -> anyhow::Result<Application> {
        Self::build_with(config, Timing::default()).await
    }

    /// Builds with the given timing knobs. The configuration is checked
    /// again here, so that one built in code cannot skip the rules
    /// [`Config::load`] applies (anonymous activities on a public address,
    /// say).
    pub async fn build_with(config: Config, timing: Timing) -> anyhow::Result<Application> {
        config.validate().context("checking the configuration")?;
        let config = Arc::new(config);
        let store = Store::connect(&config.store.url)
            .await
            .context("opening the store")?;
        let http = outbound_client(timing.timeout)?;
        let engine = Arc::new(engine(&config, store, http.clone(), timing));
        let auth = BotAuthenticator::new(
            AuthSettings {
                app_id: config.bot.app_id.clone(),
                tenant_id: config.bot.tenant_id.clone(),
                openid_metadata_url: config.bot.openid_metadata_url.clone(),
                tenant_openid_metadata_url: config.bot.tenant_openid_metadata_url(),
                entra_caller_app_ids: config.bot.entra_caller_app_ids.clone(),
                allow_anonymous: config.bot.allow_anonymous,
            },
            http,
        );
        let state = AppState {
            engine: engine.clone(),
            auth,
            replay: Arc::new(ReplayGuard::new()),
        };
        let listener = TcpListener::bind(config.server.bind)
            .await
            .with_context(|| format!("binding {}", config.server.bind))?;
        let port = listener.local_addr()?.port();
        Ok(Application {
            listener,
            port,
            engine,
            state,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("bound listener")
    }

    pub fn engine(&self) -> Arc<Engine> {
        self.engine.clone()
    }

    /// Serves HTTP and runs the runner until the process ends.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let runner = Runner::new(self.engine.clone());
        let runner = tokio::spawn(runner.run());
        let limit = self.engine.config.server.max_body_bytes;
        let app = http::router(self.state, limit);
        let served = axum::serve(self.listener, app).await;
        runner.abort();
        served.context("serving HTTP")
    }
}

fn outbound_client(timeout: Duration) -> anyhow::Result<reqwest::Client> {
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(Duration::from_secs(10))
        .user_agent(concat!("cordon/", env!("CARGO_PKG_VERSION")))
        .build()
        .context("building the HTTP client")
}

fn engine(config: &Arc<Config>, store: Store, http: reqwest::Client, timing: Timing) -> Engine {
    let graph = GraphClient::new(
        GraphSettings {
            base_url: config.graph.base_url.clone(),
            token_url: config.graph_token_url(),
            client_id: config.graph.client_id.clone(),
            client_secret: config.graph.client_secret.clone(),
            retry: timing.retry,
            timeout: timing.timeout,
        },
        http.clone(),
    );
    let servicenow = ServiceNowClient::new(
        ServiceNowSettings {
            instance_url: config.servicenow.instance_url.clone(),
            auth: servicenow_auth(config),
            retry: timing.retry,
            timeout: timing.timeout,
        },
        http.clone(),
    );
    let connector = ConnectorClient::new(
        ConnectorSettings {
            token_url: config.bot.token_url(),
            app_id: config.bot.app_id.clone(),
            app_password: config.bot.app_password.clone(),
            retry: timing.retry,
            timeout: timing.timeout,
        },
        http,
    )
    .with_thread_limits(timing.thread_limits);
    let teams = TeamsChannel::new(
        connector,
        store.clone(),
        config.bot.tenant_id.clone(),
        config.teams.approvals_channel_id.clone(),
        config.teams.approvals_service_url.clone(),
    );
    Engine::new(config.clone(), store, graph, servicenow, teams)
}

/// OAuth when its credentials are configured, basic authentication
/// otherwise (config validation guarantees one of them is complete).
fn servicenow_auth(config: &Config) -> ServiceNowAuth {
    let sn = &config.servicenow;
    match (&sn.client_id, &sn.client_secret) {
        (Some(client_id), Some(client_secret)) => ServiceNowAuth::OAuth {
            client_id: client_id.clone(),
            client_secret: client_secret.clone(),
        },
        _ => ServiceNowAuth::Basic {
            username: sn.username.clone().unwrap_or_default(),
            password: sn
                .password
                .clone()
                .unwrap_or_else(|| SecretString::from(String::new())),
        },
    }
}
