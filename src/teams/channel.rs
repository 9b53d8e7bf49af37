//! Where Cordon speaks in Teams: the approvals channel (one thread per
//! request, its card updated in place) and the conversation a request came
//! from.
//!
//! The serviceUrl of the approvals channel is the one Teams last used for
//! that channel or tenant, as remembered from inbound activities; the
//! configured address is the fallback until Teams has spoken. Failures to
//! post are returned to the caller, who decides whether they matter: a
//! containment never waits on a chat message.

use crate::botframework::connector::{ConnectorClient, ConnectorError, ThreadRef};
use crate::botframework::Activity;
use crate::containment::model::{Origin, ThreadLocation};
use crate::store::Store;

#[derive(Clone)]
pub struct TeamsChannel {
    connector: ConnectorClient,
    store: Store,
    tenant_id: String,
    approvals_channel_id: String,
    fallback_service_url: String,
}

/// Keys under which serviceUrls are remembered.
pub fn channel_key(channel_id: &str) -> String {
    format!("channel:{channel_id}")
}

pub fn tenant_key(tenant_id: &str) -> String {
    format!("tenant:{tenant_id}")
}

impl TeamsChannel {
    pub fn new(
        connector: ConnectorClient,
        store: Store,
        tenant_id: String,
        approvals_channel_id: String,
        fallback_service_url: String,
    ) -> Self {
        Self {
            connector,
            store,
            tenant_id,
            approvals_channel_id,
            fallback_service_url,
        }
    }

    /// The serviceUrl to reach the approvals channel with.
    pub async fn approvals_service_url(&self) -> String {
        for key in [
            channel_key(&self.approvals_channel_id),
            tenant_key(&self.tenant_id),
        ] {
            if let Ok(Some(url)) = self.store.service_url(&key).await {
                return url;
            }
        }
        self.fallback_service_url.clone()
    }

    /// Posts `card` as the root of a new thread in the approvals channel.
    pub async fn start_thread(
        &self,
        card: serde_json::Value,
    ) -> Result<ThreadLocation, ConnectorError> {
        let service_url = self.approvals_service_url().await;
        let thread = self
            .connector
            .create_channel_thread(
                &service_url,
                &self.approvals_channel_id,
                &self.tenant_id,
                &Activity::card(card),
            )
            .await?;
        Ok(ThreadLocation {
            service_url,
            conversation_id: thread.conversation_id,
            card_activity_id: thread.root_activity_id,
        })
    }

    /// Posts a reply under the request's card.
    pub async fn reply(
        &self,
        thread: &ThreadLocation,
        activity: &Activity,
    ) -> Result<(), ConnectorError> {
        let reference = ThreadRef {
            conversation_id: thread.conversation_id.clone(),
            root_activity_id: thread.card_activity_id.clone(),
        };
        self.connector
            .reply_in_thread(&thread.service_url, &reference, activity)
            .await
            .map(|_| ())
    }

    /// Replaces the card at the root of the thread, for everyone.
    pub async fn update_card(
        &self,
        thread: &ThreadLocation,
        card: serde_json::Value,
    ) -> Result<(), ConnectorError> {
        let mut activity = Activity::card(card);
        activity.id = Some(thread.card_activity_id.clone());
        self.connector
            .update_activity(
                &thread.service_url,
                &thread.conversation_id,
                &thread.card_activity_id,
                &activity,
            )
            .await
    }

    /// Answers in the conversation a request came from.
    pub async fn answer(
        &self,
        origin: &Origin,
        activity: &Activity,
    ) -> Result<(), ConnectorError> {
        self.connector
            .send_to_conversation(&origin.service_url, &origin.conversation_id, activity)
            .await
            .map(|_| ())
    }
}
