//! Where Cordon speaks in Teams: the approvals channel (one thread per
//! request, its card updated in place) and the conversation a request came
//! from.
//!
//! The serviceUrl of the approvals channel is the one Teams last used for
//! that channel or tenant, as remembered from inbound activities; the
//! configured address is the fallback until Teams has spoken. Failures to
//! post are returned to the caller, who decides whether they matter: a
//! containment never waits on a chat message.
//!
//! It also remembers the MRIs (`29:...`, Teams' per-bot user ids) of
//! approvers it has seen, because `refresh.userIds` on the approval card
//! takes MRIs, not Entra object ids. They are kept beside the serviceUrls,
//! as one list under [`APPROVER_MRIS_KEY`]; two approvers seen for the
//! first time at the same instant may leave one of them out until their
//! next click, which only means that approver refreshes the card by hand.
//!
//! What a run tells its thread goes through a per-thread outbox
//! ([`TeamsChannel::post`]): the caller returns at once, and one delivery
//! task per thread sends in the background within Teams' rate limits.
//! Card updates are coalesced (only the latest version of the card is
//! sent; an older one would be overwritten anyway), while every reply is
//! kept and sent in the order it was queued. A runbook step therefore
//! takes as long as its outside calls, not as long as Teams lets the bot
//! talk. The outbox lives in memory: what is still queued when the
//! process dies is not sent (the card shows the state on the next update).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

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
    outbox: Outbox,
    written: WrittenUrls,
}

/// The serviceUrls this process last wrote, by key, and when: every
/// activity names one, and writing the same again for each would make the
/// store the bottleneck of `/api/messages`. An entry is written again when
/// the URL changes or after [`REWRITE_AFTER`], so that replicas converge
/// on the URL Teams uses now.
#[derive(Clone, Default)]
struct WrittenUrls(Arc<Mutex<HashMap<String, (String, Instant)>>>);

/// How long a written serviceUrl is trusted to still be in the store.
const REWRITE_AFTER: Duration = Duration::from_secs(10 * 60);

/// Beyond this many keys the memory is cleared rather than grown.
const MAX_WRITTEN_KEYS: usize = 10_000;

impl WrittenUrls {
    fn is_fresh(&self, key: &str, url: &str) -> bool {
        let written = self.0.lock().expect("written urls");
        written
            .get(key)
            .is_some_and(|(known, at)| known == url && at.elapsed() < REWRITE_AFTER)
    }

    fn record(&self, key: &str, url: &str) {
        let mut written = self.0.lock().expect("written urls");
        if written.len() >= MAX_WRITTEN_KEYS {
            written.clear();
        }
        written.insert(key.to_string(), (url.to_string(), Instant::now()));
    }
}

/// What waits to be sent to one thread.
struct Pending {
    thread: ThreadLocation,
    /// The newest card; a newer one replaces it before it is sent.
    card: Option<serde_json::Value>,
    /// Every reply, oldest first.
    replies: VecDeque<Activity>,
}

/// The threads with something to send; a thread is in the map exactly
/// while its delivery task runs.
#[derive(Clone, Default)]
struct Outbox {
    // A std mutex: it is never held across an await.
    threads: Arc<Mutex<HashMap<String, Pending>>>,
    drained: Arc<Notify>,
}

/// One send taken from a thread's queue.
enum Delivery {
    Card(ThreadLocation, serde_json::Value),
    Reply(ThreadLocation, Activity),
}

impl Outbox {
    /// Queues a card and/or a reply; true when the thread needs a new
    /// delivery task.
    fn queue(
        &self,
        thread: &ThreadLocation,
        card: Option<serde_json::Value>,
        reply: Option<Activity>,
    ) -> bool {
        let mut threads = self.threads.lock().unwrap_or_else(|e| e.into_inner());
        let mut started = false;
        let pending = threads
            .entry(thread.conversation_id.clone())
            .or_insert_with(|| {
                started = true;
                Pending {
                    thread: thread.clone(),
                    card: None,
                    replies: VecDeque::new(),
                }
            });
        if card.is_some() {
            pending.card = card;
        }
        pending.replies.extend(reply);
        started
    }

    /// The next send for `key`: the latest card first (readers see the
    /// current state soonest), then the replies in order. `None` ends the
    /// delivery task and removes the thread.
    fn next(&self, key: &str) -> Option<Delivery> {
        let mut threads = self.threads.lock().unwrap_or_else(|e| e.into_inner());
        let pending = threads.get_mut(key)?;
        if let Some(card) = pending.card.take() {
            return Some(Delivery::Card(pending.thread.clone(), card));
        }
        if let Some(reply) = pending.replies.pop_front() {
            return Some(Delivery::Reply(pending.thread.clone(), reply));
        }
        threads.remove(key);
        if threads.is_empty() {
            self.drained.notify_waiters();
        }
        None
    }

    fn is_empty(&self) -> bool {
        self.threads
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_empty()
    }
}

/// Keys under which serviceUrls are remembered.
pub fn channel_key(channel_id: &str) -> String {
    format!("channel:{channel_id}")
}

pub fn tenant_key(tenant_id: &str) -> String {
    format!("tenant:{tenant_id}")
}

/// Where the MRIs of seen approvers are kept.
pub const APPROVER_MRIS_KEY: &str = "approvers:mri";

/// An approver as Teams addresses them.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SeenApprover {
    pub object_id: String,
    pub mri: String,
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
            outbox: Outbox::default(),
            written: WrittenUrls::default(),
        }
    }

    /// Remembers that Teams reaches `key` (a channel, team or tenant)
    /// through `url`, unless this process wrote just that lately.
    pub async fn remember_service_url(&self, key: &str, url: &str) {
        if self.written.is_fresh(key, url) {
            return;
        }
        match self.store.remember_service_url(key, url).await {
            Ok(()) => self.written.record(key, url),
            Err(e) => tracing::warn!(error = %e, "serviceUrl not remembered"),
        }
    }

    /// Queues an update of the thread's card and/or a reply under it, and
    /// returns without waiting for Teams. Failures are logged by the
    /// delivery task; they never reach the caller.
    pub fn post(
        &self,
        thread: &ThreadLocation,
        card: Option<serde_json::Value>,
        reply: Option<Activity>,
    ) {
        if card.is_none() && reply.is_none() {
            return;
        }
        if self.outbox.queue(thread, card, reply) {
            let channel = self.clone();
            let key = thread.conversation_id.clone();
            tokio::spawn(async move { channel.deliver(&key).await });
        }
    }

    /// Sends what is queued for one thread until its queue is empty.
    async fn deliver(&self, key: &str) {
        while let Some(delivery) = self.outbox.next(key) {
            let (what, result) = match delivery {
                Delivery::Card(thread, card) => {
                    ("card update", self.update_card(&thread, card).await)
                }
                Delivery::Reply(thread, reply) => {
                    ("thread reply", self.reply(&thread, &reply).await)
                }
            };
            if let Err(e) = result {
                tracing::warn!(conversation_id = key, error = %e, "{what} failed");
            }
        }
    }

    /// Waits until everything queued with [`TeamsChannel::post`] has been
    /// sent (or has failed); the demo calls it before it prints the
    /// channels.
    pub async fn settled(&self) {
        loop {
            let drained = self.outbox.drained.notified();
            tokio::pin!(drained);
            drained.as_mut().enable();
            if self.outbox.is_empty() {
                return;
            }
            drained.await;
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

    /// The approvers seen so far, newest last, at most
    /// [`super::cards::MAX_REFRESH_USERS`].
    pub async fn seen_approvers(&self) -> Vec<SeenApprover> {
        match self.store.service_url(APPROVER_MRIS_KEY).await {
            Ok(Some(text)) => serde_json::from_str(&text).unwrap_or_default(),
            Ok(None) => Vec::new(),
            Err(e) => {
                tracing::warn!(error = %e, "approver MRIs not read");
                Vec::new()
            }
        }
    }

    /// Remembers that the approver `object_id` is `mri` in Teams.
    pub async fn remember_approver(&self, object_id: &str, mri: &str) {
        let mut seen = self.seen_approvers().await;
        let entry = SeenApprover {
            object_id: object_id.to_string(),
            mri: mri.to_string(),
        };
        if seen.contains(&entry) {
            return;
        }
        seen.retain(|s| s.object_id != entry.object_id && s.mri != entry.mri);
        seen.push(entry);
        let excess = seen.len().saturating_sub(super::cards::MAX_REFRESH_USERS);
        seen.drain(..excess);
        let text = serde_json::to_string(&seen).expect("plain data");
        if let Err(e) = self
            .store
            .remember_service_url(APPROVER_MRIS_KEY, &text)
            .await
        {
            tracing::warn!(error = %e, "approver MRI not remembered");
        }
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
    pub async fn answer(&self, origin: &Origin, activity: &Activity) -> Result<(), ConnectorError> {
        self.connector
            .send_to_conversation(&origin.service_url, &origin.conversation_id, activity)
            .await
            .map(|_| ())
    }
}
