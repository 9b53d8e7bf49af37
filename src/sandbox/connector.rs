//! The simulated Bot Connector (Teams flavour), for the calls a bot makes.
//!
//! Served under `/connector/v3`: start a channel thread, post to a
//! conversation, reply to an activity, update and delete an activity. Every
//! call needs a Bot Framework token from the login simulator.
//!
//! Threading follows Teams: a conversation id of the form
//! `<channel>;messageid=<root>` addresses the thread started by `<root>`,
//! while a bare channel id starts a new thread, even for a reply (a
//! `replyToId` alone does not thread). Conversation ids are taken decoded,
//! whether the client percent-encoded them or not.
//!
//! Any conversation id is accepted, since the conversations a bot answers in
//! come from activities the simulator never saw; only activity updates
//! check that the activity exists.

use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::middleware::{from_fn_with_state, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::login::{Audience, LoginSim, TokenCheck};
use super::tenant::ids;
use super::transcript;
use super::wiretap::{observe, Dialect, Fault, RecordedCall, SimError, Wiretap};

/// Teams refuses messages larger than about this many bytes.
const MESSAGE_SIZE_LIMIT: usize = 100 * 1024;
const THREAD_MARKER: &str = ";messageid=";

/// One message the bot posted, with every version of it.
#[derive(Debug, Clone, PartialEq)]
pub struct PostedMessage {
    /// The conversation id the message was posted to, decoded.
    pub conversation_id: String,
    /// The conversation without its `;messageid=` thread part.
    pub channel_id: String,
    /// The activity id of the thread's first message (its own for a root).
    pub thread_root: String,
    pub activity_id: String,
    /// The activity replied to, for posts to `.../activities/{id}`.
    pub reply_to: Option<String>,
    /// The latest version of the activity, with its `id` filled in.
    pub activity: Value,
    /// Every version, oldest first; the last equals `activity`.
    pub versions: Vec<Value>,
    pub posted_at: DateTime<Utc>,
    pub updated_at: Option<DateTime<Utc>>,
    pub deleted: bool,
}

impl PostedMessage {
    /// Whether this message started its thread.
    pub fn is_root(&self) -> bool {
        self.thread_root == self.activity_id
    }

    /// The message text, if it has one.
    pub fn text(&self) -> Option<&str> {
        self.activity.get("text").and_then(Value::as_str)
    }

    /// The first Adaptive Card attached to the message.
    pub fn card(&self) -> Option<&Value> {
        transcript::adaptive_cards(&self.activity).next()
    }
}

#[derive(Debug, Default)]
struct Board {
    messages: Vec<PostedMessage>,
    last_id: u64,
}

impl Board {
    /// A new activity id: epoch milliseconds, strictly increasing, so the
    /// ids look like Teams' 13-digit message ids.
    fn next_id(&mut self) -> String {
        let now = Utc::now().timestamp_millis().max(0) as u64;
        self.last_id = now.max(self.last_id + 1);
        self.last_id.to_string()
    }

    fn record(
        &mut self,
        id: &str,
        conversation: &str,
        thread_root: &str,
        reply_to: Option<String>,
        activity: Value,
    ) {
        let activity = with_id(activity, id);
        self.messages.push(PostedMessage {
            conversation_id: conversation.to_string(),
            channel_id: channel_of(conversation).to_string(),
            thread_root: thread_root.to_string(),
            activity_id: id.to_string(),
            reply_to,
            versions: vec![activity.clone()],
            activity,
            posted_at: Utc::now(),
            updated_at: None,
            deleted: false,
        });
    }

    fn find_mut(&mut self, conversation: &str, activity_id: &str) -> Option<&mut PostedMessage> {
        let channel = channel_of(conversation);
        self.messages
            .iter_mut()
            .find(|m| m.channel_id == channel && m.activity_id == activity_id && !m.deleted)
    }
}

/// The simulated Bot Connector; cheap to clone.
#[derive(Debug, Clone)]
pub struct ConnectorSim {
    inner: Arc<ConnectorState>,
}

#[derive(Debug)]
struct ConnectorState {
    board: Mutex<Board>,
    login: LoginSim,
    tap: Arc<Wiretap>,
}

impl ConnectorSim {
    pub(crate) fn new(login: LoginSim) -> Self {
        ConnectorSim {
            inner: Arc::new(ConnectorState {
                board: Mutex::default(),
                login,
                tap: Wiretap::new(Dialect::Connector),
            }),
        }
    }

    fn board(&self) -> std::sync::MutexGuard<'_, Board> {
        self.inner.board.lock().expect("message board")
    }

    /// Every message posted, in posting order.
    pub fn messages(&self) -> Vec<PostedMessage> {
        self.board().messages.clone()
    }

    /// One message by activity id.
    pub fn message(&self, activity_id: &str) -> Option<PostedMessage> {
        let board = self.board();
        board
            .messages
            .iter()
            .find(|m| m.activity_id == activity_id)
            .cloned()
    }

    /// A thread: its root first, then its replies in posting order.
    pub fn thread(&self, root_activity_id: &str) -> Vec<PostedMessage> {
        let board = self.board();
        let mut thread: Vec<PostedMessage> = board
            .messages
            .iter()
            .filter(|m| m.thread_root == root_activity_id)
            .cloned()
            .collect();
        thread.sort_by_key(|m| !m.is_root());
        thread
    }

    /// The messages of a conversation: a whole channel for a channel id,
    /// one thread for a `<channel>;messageid=<root>` id.
    pub fn conversation(&self, conversation_id: &str) -> Vec<PostedMessage> {
        let board = self.board();
        let channel = channel_of(conversation_id);
        let root = thread_of(conversation_id);
        board
            .messages
            .iter()
            .filter(|m| m.channel_id == channel)
            .filter(|m| root.map_or(true, |r| m.thread_root == r))
            .cloned()
            .collect()
    }

    /// Every conversation and thread, rendered for a human to read.
    pub fn transcript(&self) -> String {
        transcript::render(&self.messages())
    }

    pub fn calls(&self) -> Vec<RecordedCall> {
        self.inner.tap.calls()
    }

    pub fn clear_calls(&self) {
        self.inner.tap.clear_calls();
    }

    pub fn inject(&self, fault: Fault) {
        self.inner.tap.inject(fault);
    }

    pub fn clear_faults(&self) {
        self.inner.tap.clear_faults();
    }

    pub fn pending_faults(&self) -> u32 {
        self.inner.tap.pending_faults()
    }

    pub(crate) fn router(&self) -> Router {
        let activity = "/v3/conversations/{conversation}/activities/{activity_id}";
        Router::new()
            .route("/v3/conversations", post(create_conversation))
            .route(
                "/v3/conversations/{conversation}/activities",
                post(send_to_conversation),
            )
            .route(
                activity,
                post(reply_to_activity)
                    .put(update_activity)
                    .delete(delete_activity),
            )
            .layer(from_fn_with_state(self.clone(), require_token))
            .layer(from_fn_with_state(self.inner.tap.clone(), observe))
            .with_state(self.clone())
    }

    /// Records a new message and returns its activity id.
    fn post(&self, conversation: &str, reply_to: Option<String>, activity: Value) -> String {
        let mut board = self.board();
        let id = board.next_id();
        let root = thread_of(conversation).unwrap_or(&id).to_string();
        board.record(&id, conversation, &root, reply_to, activity);
        id
    }

    /// Posts the first message of a new channel thread; returns the
    /// thread's conversation id and the message's activity id.
    fn start_thread(&self, channel: &str, activity: Value) -> (String, String) {
        let mut board = self.board();
        let id = board.next_id();
        let conversation = format!("{channel}{THREAD_MARKER}{id}");
        board.record(&id, &conversation, &id, None, activity);
        (conversation, id)
    }
}

fn channel_of(conversation: &str) -> &str {
    conversation
        .split_once(THREAD_MARKER)
        .map_or(conversation, |(channel, _)| channel)
}

fn thread_of(conversation: &str) -> Option<&str> {
    conversation.split_once(THREAD_MARKER).map(|(_, root)| root)
}

fn with_id(mut activity: Value, id: &str) -> Value {
    if let Some(object) = activity.as_object_mut() {
        object.insert("id".into(), json!(id));
    }
    activity
}

fn bad_argument(message: &str) -> SimError {
    SimError::new(400, "BadArgument", message)
}

/// The activity in a request body, checked the way the connector does.
fn parse_activity(body: &Bytes) -> Result<Value, SimError> {
    if body.len() > MESSAGE_SIZE_LIMIT {
        return Err(SimError::new(
            413,
            "MessageSizeTooBig",
            "Message size too big",
        ));
    }
    let activity: Value = serde_json::from_slice(body)
        .map_err(|_| bad_argument("The request body is not valid JSON."))?;
    valid_activity(activity)
}

fn valid_activity(activity: Value) -> Result<Value, SimError> {
    let has_type = activity
        .get("type")
        .and_then(Value::as_str)
        .is_some_and(|t| !t.is_empty());
    if !has_type {
        return Err(bad_argument("Activity type is required."));
    }
    Ok(activity)
}

async fn require_token(State(sim): State<ConnectorSim>, request: Request, next: Next) -> Response {
    let check = sim
        .inner
        .login
        .check(request.headers(), Audience::BotFramework);
    if check == TokenCheck::Valid {
        return next.run(request).await;
    }
    let body = json!({ "message": "Authorization has been denied for this request." });
    (StatusCode::UNAUTHORIZED, Json(body)).into_response()
}

async fn create_conversation(
    State(sim): State<ConnectorSim>,
    body: Bytes,
) -> Result<Response, SimError> {
    let params: Value = serde_json::from_slice(&body)
        .map_err(|_| bad_argument("The request body is not valid JSON."))?;
    check_tenant(&params)?;
    let activity = params
        .get("activity")
        .cloned()
        .map(valid_activity)
        .transpose()?;
    let channel = params
        .pointer("/channelData/channel/id")
        .and_then(Value::as_str);

    let answer = match (channel, activity) {
        (Some(channel), Some(activity)) => {
            let (conversation, root) = sim.start_thread(channel, activity);
            json!({ "id": conversation, "activityId": root })
        }
        (Some(_), None) => {
            return Err(bad_argument(
                "An activity is required to start a channel thread.",
            ))
        }
        (None, activity) => {
            let conversation = format!("a:1{}", uuid::Uuid::new_v4().simple());
            let root = activity.map(|a| sim.post(&conversation, None, a));
            json!({ "id": conversation, "activityId": root })
        }
    };
    Ok((StatusCode::CREATED, Json(answer)).into_response())
}

fn check_tenant(params: &Value) -> Result<(), SimError> {
    let tenants = [
        params.get("tenantId"),
        params.pointer("/channelData/tenant/id"),
    ];
    let foreign = tenants
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .any(|t| !t.eq_ignore_ascii_case(ids::TENANT_ID));
    if foreign {
        return Err(SimError::new(
            403,
            "BotNotInConversationRoster",
            "The bot is not part of the conversation roster.",
        ));
    }
    Ok(())
}

async fn send_to_conversation(
    State(sim): State<ConnectorSim>,
    Path(conversation): Path<String>,
    body: Bytes,
) -> Result<Response, SimError> {
    let activity = parse_activity(&body)?;
    let id = sim.post(&conversation, None, activity);
    Ok((StatusCode::CREATED, Json(json!({ "id": id }))).into_response())
}

async fn reply_to_activity(
    State(sim): State<ConnectorSim>,
    Path((conversation, activity_id)): Path<(String, String)>,
    body: Bytes,
) -> Result<Response, SimError> {
    let activity = parse_activity(&body)?;
    let id = sim.post(&conversation, Some(activity_id), activity);
    Ok((StatusCode::CREATED, Json(json!({ "id": id }))).into_response())
}

async fn update_activity(
    State(sim): State<ConnectorSim>,
    Path((conversation, activity_id)): Path<(String, String)>,
    body: Bytes,
) -> Result<Response, SimError> {
    let activity = with_id(parse_activity(&body)?, &activity_id);
    let mut board = sim.board();
    let message = board
        .find_mut(&conversation, &activity_id)
        .ok_or_else(activity_not_found)?;
    message.versions.push(activity.clone());
    message.activity = activity;
    message.updated_at = Some(Utc::now());
    Ok(Json(json!({ "id": activity_id })).into_response())
}

async fn delete_activity(
    State(sim): State<ConnectorSim>,
    Path((conversation, activity_id)): Path<(String, String)>,
) -> Result<Response, SimError> {
    let mut board = sim.board();
    let message = board
        .find_mut(&conversation, &activity_id)
        .ok_or_else(activity_not_found)?;
    message.deleted = true;
    message.updated_at = Some(Utc::now());
    Ok(StatusCode::OK.into_response())
}

fn activity_not_found() -> SimError {
    SimError::new(
        404,
        "NotFound",
        "The activity was not found in this conversation.",
    )
}
