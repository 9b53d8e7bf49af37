//! Containment: the request model and its state machine, intake (validate,
//! de-duplicate, ask for approval), approver decisions, and the runner that
//! executes runbooks exactly once.
//!
//! [`Engine`] is the one place that ties the store, policy and the outside
//! clients together. Teams, the ServiceNow webhook and the API all come in
//! through it, so every source gets the same validation, policy and
//! approvals. It never touches Entra ID before policy said yes and the
//! approvals are in: only the runner calls Graph's write endpoints, and it
//! only runs requests whose state is `approved` or later.

pub mod approvals;
pub mod explain;
pub mod intake;
pub mod model;
pub mod runner;
pub mod state;
pub mod steps;

use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Mutex, Notify};

use crate::botframework::Activity;
use crate::config::Config;
use crate::graph::GraphClient;
use crate::servicenow::ServiceNowClient;
use crate::store::{Store, StoreError};
use crate::teams::cards::{self, RequestView};
use crate::teams::channel::TeamsChannel;
use crate::teams::view::{request_view, ViewContext};

use model::ContainmentRequest;

/// The shared core of a running Cordon.
pub struct Engine {
    pub config: Arc<Config>,
    pub store: Store,
    pub graph: GraphClient,
    pub servicenow: ServiceNowClient,
    pub teams: TeamsChannel,
    /// Wakes this replica's runner when a request becomes runnable.
    pub wake: Arc<Notify>,
    approver_cache: moka::future::Cache<String, bool>,
    /// Turns to publish, one per request id (striped): see
    /// [`Engine::publish`].
    publishing: Vec<Mutex<()>>,
}

/// How many locks the requests' publishing turns are spread over.
const PUBLISH_STRIPES: usize = 64;

impl Engine {
    pub fn new(
        config: Arc<Config>,
        store: Store,
        graph: GraphClient,
        servicenow: ServiceNowClient,
        teams: TeamsChannel,
    ) -> Self {
        Self {
            config,
            store,
            graph,
            servicenow,
            teams,
            wake: Arc::new(Notify::new()),
            approver_cache: moka::future::Cache::builder()
                .max_capacity(10_000)
                .time_to_live(Duration::from_secs(60))
                .build(),
            publishing: (0..PUBLISH_STRIPES).map(|_| Mutex::new(())).collect(),
        }
    }

    /// A link to the incident in ServiceNow.
    pub fn incident_url(&self, request: &ContainmentRequest) -> String {
        self.config
            .servicenow
            .incident_link
            .replace(
                "{instance_url}",
                self.config.servicenow.instance_url.trim_end_matches('/'),
            )
            .replace("{sys_id}", &request.incident_sys_id)
            .replace("{number}", &request.incident_number)
    }

    /// The card view of a request as stored now.
    pub async fn view(&self, request: &ContainmentRequest) -> Result<RequestView, StoreError> {
        let approvals = self.store.approvals(&request.id).await?;
        let steps = self.store.steps(&request.id).await?;
        let approver_mris: Vec<String> = self
            .teams
            .seen_approvers()
            .await
            .into_iter()
            .map(|seen| seen.mri)
            .collect();
        let context = ViewContext {
            approver_ids: &approver_mris,
            incident_url: Some(self.incident_url(request)),
        };
        Ok(request_view(request, &approvals, &steps, &context))
    }

    /// The card that shows a request in its current state.
    pub async fn card(
        &self,
        request: &ContainmentRequest,
    ) -> Result<serde_json::Value, StoreError> {
        let view = self.view(request).await?;
        Ok(card_for(request, &view))
    }

    /// Replaces the thread's card for everyone and posts `reply` under it,
    /// through the thread's outbox: this returns without waiting for Teams
    /// (card updates are coalesced, replies kept in order). Chat failures
    /// are logged, never raised: the run goes on.
    ///
    /// Publishers of one request take turns, from reading the request to
    /// queueing its card: the outbox keeps only the card queued last, so a
    /// card read earlier but queued later (the approval's, rendered while
    /// the runner raced ahead) would otherwise stay on the thread as the
    /// final one, showing "Approved, starting" on a finished run.
    ///
    /// Turns are taken within one process. With several replicas, the one
    /// that took the approval click and the one running the steps publish
    /// through outboxes of their own, so a card the first rendered can
    /// still reach Teams after the second's last one; the thread's replies
    /// and the store stay right, but the card can then show an earlier
    /// state until the request changes again.
    pub async fn publish(&self, request_id: &str, reply: Option<String>) {
        let _turn = self.publish_turn(request_id).lock().await;
        let request = match self.store.require(request_id).await {
            Ok(request) => request,
            Err(e) => {
                tracing::error!(request_id, error = %e, "cannot load request to publish");
                return;
            }
        };
        let Some(thread) = &request.thread else {
            return;
        };
        let card = match self.card(&request).await {
            Ok(card) => Some(card),
            Err(e) => {
                tracing::error!(request_id, error = %e, "cannot render card");
                None
            }
        };
        self.teams.post(thread, card, reply.map(Activity::message));
    }

    fn publish_turn(&self, request_id: &str) -> &Mutex<()> {
        let mut hasher = DefaultHasher::new();
        request_id.hash(&mut hasher);
        &self.publishing[hasher.finish() as usize % self.publishing.len()]
    }

    /// Tells the requester, where they asked from Teams.
    pub async fn tell_requester(&self, request: &ContainmentRequest, text: String) {
        if let Some(origin) = &request.origin {
            if let Err(e) = self.teams.answer(origin, &Activity::message(text)).await {
                tracing::warn!(request_id = %request.id, error = %e, "answer failed");
            }
        }
    }

    /// Whether `object_id` is in an approver group, asked of Graph and
    /// remembered for a minute.
    pub async fn is_approver(&self, object_id: &str) -> Result<bool, crate::graph::GraphError> {
        if let Some(known) = self.approver_cache.get(object_id).await {
            return Ok(known);
        }
        let groups = &self.config.policy.approver_group_ids;
        let member = !self
            .graph
            .check_member_groups(object_id, groups)
            .await?
            .is_empty();
        self.approver_cache
            .insert(object_id.to_string(), member)
            .await;
        Ok(member)
    }
}

/// The card that fits the request's state: the approval card while it
/// waits, progress while it runs, the result once it has ended.
pub fn card_for(request: &ContainmentRequest, view: &RequestView) -> serde_json::Value {
    use state::RequestState::*;
    match request.state {
        AwaitingApproval => cards::approval(view),
        Approved | Executing => cards::progress(view),
        _ => cards::result(view),
    }
}
