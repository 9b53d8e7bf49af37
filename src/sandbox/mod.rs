//! The simulated Microsoft tenant: Entra ID token endpoint, Microsoft
//! Graph, ServiceNow and the Teams Bot Connector, served over real HTTP on
//! one loopback listener.
//!
//! `cordon sandbox`, `cordon demo` and the integration tests point Cordon's
//! production clients at it through configuration alone. Each simulator
//! speaks its service's wire format (paths, JSON shapes, status codes,
//! headers) for the calls Cordon makes, records every call, and lets a test
//! inject faults: error statuses, broken JSON, slow answers and reset
//! connections.
//!
//! Layout: `tenant` holds the seed (ids, people, incidents, sandbox
//! credentials), one file per simulator, `wiretap` the recording and fault
//! injection they share, `connection` the listener that can reset a
//! connection on demand and `transcript` the text rendering of the Teams
//! channel.
//!
//! The sandbox must never be reachable from outside the machine: its
//! credentials are public constants.

mod connection;
pub mod connector;
pub mod graph;
pub mod login;
pub mod servicenow;
pub mod tenant;
pub mod transcript;
mod wiretap;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use connection::{ConnectionHandle, ResettableListener};

pub use connector::{ConnectorSim, PostedMessage};
pub use graph::{AuthMethod, AuthMethodKind, GraphSim, RoleAssignment, SimGroup, SimUser};
pub use login::{Audience, LoginSim, TokenCheck};
pub use servicenow::{JournalEntry, ServiceNowSim};
pub use tenant::ids;
pub use transcript::render_text;
pub use wiretap::{Fault, FaultKind, RecordedCall};

/// How long `shutdown` lets open calls finish before cutting them.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// A running simulated tenant; clones share the same simulators.
#[derive(Debug, Clone)]
pub struct SimulatedTenant {
    inner: Arc<TenantInner>,
}

#[derive(Debug)]
struct TenantInner {
    addr: SocketAddr,
    login: LoginSim,
    graph: GraphSim,
    servicenow: ServiceNowSim,
    connector: ConnectorSim,
    stop: Mutex<Option<oneshot::Sender<()>>>,
    server: Mutex<Option<JoinHandle<()>>>,
}

impl SimulatedTenant {
    /// Binds `addr` (use `127.0.0.1:0` in tests), serves all simulators on
    /// that one listener in the background and returns at once.
    pub async fn start(addr: SocketAddr) -> anyhow::Result<SimulatedTenant> {
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding the simulated tenant to {addr}"))?;
        let addr = listener.local_addr().context("reading the bound address")?;

        let login = LoginSim::new();
        let graph = GraphSim::new(login.clone());
        let servicenow = ServiceNowSim::new();
        let connector = ConnectorSim::new(login.clone());
        let app = Router::new()
            .nest("/login", login.router())
            .nest("/graph/v1.0", graph.router())
            .nest("/servicenow", servicenow.router())
            .nest("/connector", connector.router())
            .into_make_service_with_connect_info::<ConnectionHandle>();

        let (stop, stopped) = oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            let serving = axum::serve(ResettableListener::new(listener), app)
                .with_graceful_shutdown(async move {
                    let _ = stopped.await;
                });
            if let Err(error) = serving.await {
                tracing::error!(%error, "the simulated tenant stopped serving");
            }
        });
        tracing::info!(%addr, "simulated tenant listening");

        Ok(SimulatedTenant {
            inner: Arc::new(TenantInner {
                addr,
                login,
                graph,
                servicenow,
                connector,
                stop: Mutex::new(Some(stop)),
                server: Mutex::new(Some(server)),
            }),
        })
    }

    /// The address the simulators listen on.
    pub fn addr(&self) -> SocketAddr {
        self.inner.addr
    }

    /// `http://127.0.0.1:PORT`
    pub fn base_url(&self) -> String {
        format!("http://{}", self.inner.addr)
    }

    /// The Entra token endpoint of the simulated tenant.
    pub fn token_url(&self) -> String {
        format!(
            "{}/login/{}/oauth2/v2.0/token",
            self.base_url(),
            ids::TENANT_ID
        )
    }

    /// Graph's versioned root, as `graph.base_url` wants it.
    pub fn graph_base_url(&self) -> String {
        format!("{}/graph/v1.0", self.base_url())
    }

    /// The ServiceNow instance URL.
    pub fn servicenow_url(&self) -> String {
        format!("{}/servicenow", self.base_url())
    }

    /// The Bot Connector `serviceUrl`, with its trailing slash as Teams
    /// sends it.
    pub fn connector_service_url(&self) -> String {
        format!("{}/connector/", self.base_url())
    }

    pub fn login(&self) -> &LoginSim {
        &self.inner.login
    }

    pub fn graph(&self) -> &GraphSim {
        &self.inner.graph
    }

    pub fn servicenow(&self) -> &ServiceNowSim {
        &self.inner.servicenow
    }

    pub fn connector(&self) -> &ConnectorSim {
        &self.inner.connector
    }

    /// Stops accepting calls, lets open ones finish for a moment, then
    /// stops the server. Dropping the tenant instead leaves the server
    /// running until the runtime ends.
    pub async fn shutdown(self) {
        if let Some(stop) = self.inner.stop.lock().expect("stop signal").take() {
            let _ = stop.send(());
        }
        let server = self.inner.server.lock().expect("server task").take();
        let Some(mut server) = server else { return };
        if tokio::time::timeout(SHUTDOWN_GRACE, &mut server)
            .await
            .is_err()
        {
            server.abort();
        }
    }
}
