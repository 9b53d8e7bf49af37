//! The client of the Bot Connector REST API: start a thread in a Teams
//! channel, post into a conversation or a thread, update a posted activity.
//!
//! Every call carries a token from [`TokenSource`], waits its turn under the
//! per-thread limits of [`ThreadThrottle`], and is retried on throttling and
//! transient gateway errors with the shared [`RetryPolicy`]. Answers that
//! will not change on a retry (400, 401, 403, 404, 413) are returned at
//! once. An activity too large for Teams is refused before it is sent.
//!
//! Only connection failures are retried among transport errors: a request
//! that timed out may have been delivered, and posting it again would show
//! the message twice in the channel.

use std::time::Duration;

use reqwest::header::CONTENT_TYPE;
use reqwest::{Method, Response, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::activity::Activity;
use super::throttle::{ThreadLimits, ThreadThrottle};
use super::token::{TokenCredentials, TokenError, TokenSource};
use crate::retry::{is_transient_status, retry_after, RetryPolicy};

/// The largest activity sent, in bytes of JSON. Teams refuses messages of
/// about 100 KB and advises staying under 80 KB.
pub const MAX_ACTIVITY_BYTES: usize = 80_000;

/// The header in which the Bot Connector names the failed operation.
const CORRELATION_HEADER: &str = "x-correlating-operationid";

/// How the client reaches the Bot Connector and how hard it tries.
#[derive(Debug, Clone)]
pub struct ConnectorSettings {
    pub token_url: String,
    pub app_id: String,
    pub app_password: SecretString,
    pub retry: RetryPolicy,
    /// The limit on each single request, retries excluded.
    pub timeout: Duration,
}

/// A thread in a Teams channel: its conversation id
/// (`<channel>;messageid=<root>`) and the id of the post that started it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ThreadRef {
    pub conversation_id: String,
    pub root_activity_id: String,
}

impl ThreadRef {
    /// The thread under the post `root_activity_id` of `channel_id`.
    pub fn new(channel_id: &str, root_activity_id: &str) -> Self {
        Self {
            conversation_id: format!("{channel_id};messageid={root_activity_id}"),
            root_activity_id: root_activity_id.to_owned(),
        }
    }

    /// Reads a threaded conversation id, as inbound channel messages
    /// carry; `None` when the id names no thread.
    pub fn from_conversation_id(conversation_id: &str) -> Option<Self> {
        let (channel, root) = conversation_id.split_once(";messageid=")?;
        (!channel.is_empty() && !root.is_empty()).then(|| Self::new(channel, root))
    }

    /// The channel the thread belongs to.
    pub fn channel_id(&self) -> &str {
        self.conversation_id
            .split_once(";messageid=")
            .map_or(&self.conversation_id, |(channel, _)| channel)
    }

    /// The id to post replies to: a `replyToId` alone does not thread a
    /// message in Teams, the conversation id must name the root post.
    fn reply_conversation_id(&self) -> String {
        format!("{};messageid={}", self.channel_id(), self.root_activity_id)
    }
}

/// Why a call to the Bot Connector failed.
#[derive(Debug, thiserror::Error)]
pub enum ConnectorError {
    /// The Bot Connector answered with an error status.
    #[error("the Bot Connector answered {status} ({})", code.as_deref().unwrap_or("no code"))]
    Api {
        status: u16,
        code: Option<String>,
        message: Option<String>,
        /// The `X-Correlating-OperationId` header, for Microsoft support.
        correlation_id: Option<String>,
    },
    /// The activity is too large for Teams; it was not sent.
    #[error("the activity is {bytes} bytes of JSON; the limit is {MAX_ACTIVITY_BYTES}")]
    TooLarge { bytes: usize },
    #[error("the Bot Connector could not be reached: {0}")]
    Transport(#[source] reqwest::Error),
    #[error("no Bot Connector token: {0}")]
    Token(#[from] TokenError),
    #[error("the Bot Connector's answer could not be read: {0}")]
    Decode(String),
}

impl ConnectorError {
    /// Whether the same call may succeed later, once retries are spent.
    /// The HTTP status the Bot Connector answered, if it answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Api { status, .. } => Some(*status),
            _ => None,
        }
    }

    pub fn is_transient(&self) -> bool {
        match self {
            Self::Api { status, .. } => is_transient_status(*status),
            Self::Transport(_) => true,
            Self::Token(TokenError::Transport(_)) => true,
            _ => false,
        }
    }
}

#[derive(Deserialize)]
struct ErrorAnswer {
    error: Option<ErrorDetail>,
}

#[derive(Deserialize)]
struct ErrorDetail {
    code: Option<String>,
    message: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CreatedConversation {
    id: Option<String>,
    activity_id: Option<String>,
}

/// Talks to the Bot Connector; clones share the token and the throttle.
#[derive(Clone)]
pub struct ConnectorClient {
    http: reqwest::Client,
    tokens: TokenSource,
    throttle: ThreadThrottle,
    retry: RetryPolicy,
    timeout: Duration,
}

impl ConnectorClient {
    pub fn new(settings: ConnectorSettings, http: reqwest::Client) -> Self {
        let credentials = TokenCredentials {
            token_url: settings.token_url,
            app_id: settings.app_id,
            app_password: settings.app_password,
        };
        Self {
            tokens: TokenSource::new(credentials, http.clone()),
            http,
            throttle: ThreadThrottle::new(ThreadLimits::teams()),
            retry: settings.retry,
            timeout: settings.timeout,
        }
    }

    /// The same client keeping to other per-thread limits.
    pub fn with_thread_limits(mut self, limits: ThreadLimits) -> Self {
        self.throttle = ThreadThrottle::new(limits);
        self
    }

    /// Starts a new thread in a Teams channel with `activity` as its post.
    pub async fn create_channel_thread(
        &self,
        service_url: &str,
        channel_id: &str,
        tenant_id: &str,
        activity: &Activity,
    ) -> Result<ThreadRef, ConnectorError> {
        let parameters = json!({
            "isGroup": true,
            "channelData": {
                "channel": { "id": channel_id },
                "tenant": { "id": tenant_id },
            },
            "activity": activity,
            "tenantId": tenant_id,
        });
        let url = conversations_url(service_url);
        let answer = self
            .call(Method::POST, &url, channel_id, &parameters)
            .await?;
        thread_from_answer(channel_id, answer)
    }

    /// Posts `activity` into a conversation; returns the new activity's id
    /// when the Bot Connector gives one.
    pub async fn send_to_conversation(
        &self,
        service_url: &str,
        conversation_id: &str,
        activity: &Activity,
    ) -> Result<Option<String>, ConnectorError> {
        let url = activities_url(service_url, conversation_id);
        let answer = self
            .call(Method::POST, &url, conversation_id, activity)
            .await?;
        Ok(activity_id(answer))
    }

    /// Posts `activity` as a reply inside `thread`.
    pub async fn reply_in_thread(
        &self,
        service_url: &str,
        thread: &ThreadRef,
        activity: &Activity,
    ) -> Result<Option<String>, ConnectorError> {
        let conversation_id = thread.reply_conversation_id();
        self.send_to_conversation(service_url, &conversation_id, activity)
            .await
    }

    /// Replaces the posted activity `activity_id` with `activity`.
    pub async fn update_activity(
        &self,
        service_url: &str,
        conversation_id: &str,
        activity_id: &str,
        activity: &Activity,
    ) -> Result<(), ConnectorError> {
        let url = format!(
            "{}/{}",
            activities_url(service_url, conversation_id),
            encode_segment(activity_id)
        );
        self.call(Method::PUT, &url, conversation_id, activity)
            .await?;
        Ok(())
    }

    /// Sends one request, retrying what may succeed later, and returns the
    /// JSON answer, if the answer has a body.
    async fn call(
        &self,
        method: Method,
        url: &str,
        conversation_id: &str,
        body: &impl Serialize,
    ) -> Result<Option<Value>, ConnectorError> {
        let body =
            serde_json::to_vec(body).map_err(|error| ConnectorError::Decode(error.to_string()))?;
        if body.len() > MAX_ACTIVITY_BYTES {
            return Err(ConnectorError::TooLarge { bytes: body.len() });
        }
        let mut waited = Duration::ZERO;
        let mut attempt = 1;
        let mut renewed = false;
        loop {
            self.throttle.acquire(conversation_id).await;
            let (error, asked) = match self.attempt(method.clone(), url, &body).await {
                Ok(Attempt::Answered(answer)) => return Ok(answer),
                Ok(Attempt::Failed { error, retry_after }) => (error, retry_after),
                // A cached token the connector no longer takes (expired
                // early, or revoked) is renewed once and the call repeated;
                // a second 401 is final.
                Err(error) if error.status() == Some(401) && !renewed => {
                    tracing::warn!("bot connector refused the token; renewing it once");
                    renewed = true;
                    continue;
                }
                Err(error) => return Err(error),
            };
            let Some(delay) = self.retry.next_delay(attempt, asked, waited) else {
                return Err(error);
            };
            tracing::warn!(attempt, ?delay, %error, "bot connector call will be retried");
            tokio::time::sleep(delay).await;
            waited += delay;
            attempt += 1;
        }
    }

    /// One request: its answer, a failure worth retrying, or an error.
    async fn attempt(
        &self,
        method: Method,
        url: &str,
        body: &[u8],
    ) -> Result<Attempt, ConnectorError> {
        let token = self.tokens.token().await?;
        let sent = self
            .http
            .request(method, url)
            .bearer_auth(token.expose_secret())
            .header(CONTENT_TYPE, "application/json")
            .body(body.to_vec())
            .timeout(self.timeout)
            .send()
            .await;
        let response = match sent {
            Ok(response) => response,
            Err(error) if error.is_connect() => {
                let error = ConnectorError::Transport(error);
                return Ok(Attempt::Failed {
                    error,
                    retry_after: None,
                });
            }
            Err(error) => return Err(ConnectorError::Transport(error)),
        };
        if response.status().is_success() {
            return read_answer(response).await.map(Attempt::Answered);
        }
        if response.status() == StatusCode::UNAUTHORIZED {
            // The token may have expired early or been revoked: forget it,
            // so that the next request asks for a new one.
            self.tokens.forget().await;
        }
        let asked = retry_after(response.headers());
        let error = api_error(response).await;
        if !error.is_transient() {
            return Err(error);
        }
        Ok(Attempt::Failed {
            error,
            retry_after: asked,
        })
    }
}

/// How one request ended, when it did not end the call.
enum Attempt {
    Answered(Option<Value>),
    Failed {
        error: ConnectorError,
        retry_after: Option<Duration>,
    },
}

/// The JSON body of a successful answer; `None` when it has none.
async fn read_answer(response: Response) -> Result<Option<Value>, ConnectorError> {
    let bytes = response.bytes().await.map_err(ConnectorError::Transport)?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|error| ConnectorError::Decode(error.to_string()))
}

/// The error an error answer stands for, with what the body says of it.
async fn api_error(response: Response) -> ConnectorError {
    let status = response.status().as_u16();
    let correlation_id = response
        .headers()
        .get(CORRELATION_HEADER)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    let detail = response
        .json::<ErrorAnswer>()
        .await
        .ok()
        .and_then(|answer| answer.error);
    let (code, message) = detail.map_or((None, None), |d| (d.code, d.message));
    ConnectorError::Api {
        status,
        code,
        message,
        correlation_id,
    }
}

fn activity_id(answer: Option<Value>) -> Option<String> {
    answer?.get("id")?.as_str().map(str::to_owned)
}

/// The thread a create-conversation answer describes. The answer's id
/// normally names the thread already; the root id is read from it when the
/// answer lacks `activityId`.
fn thread_from_answer(
    channel_id: &str,
    answer: Option<Value>,
) -> Result<ThreadRef, ConnectorError> {
    let missing = || ConnectorError::Decode("the new thread has no id".into());
    let created: CreatedConversation = answer
        .map(serde_json::from_value)
        .transpose()
        .map_err(|error| ConnectorError::Decode(error.to_string()))?
        .ok_or_else(missing)?;
    let from_id = created
        .id
        .as_deref()
        .and_then(ThreadRef::from_conversation_id);
    match (created.activity_id, from_id) {
        (Some(root), Some(thread)) => Ok(ThreadRef {
            root_activity_id: root,
            ..thread
        }),
        (Some(root), None) => Ok(ThreadRef::new(channel_id, &root)),
        (None, Some(thread)) => Ok(thread),
        (None, None) => Err(missing()),
    }
}

fn conversations_url(service_url: &str) -> String {
    format!("{}/v3/conversations", service_url.trim_end_matches('/'))
}

fn activities_url(service_url: &str, conversation_id: &str) -> String {
    format!(
        "{}/{}/activities",
        conversations_url(service_url),
        encode_segment(conversation_id)
    )
}

/// Percent-encodes everything but the unreserved characters, so that the
/// `:`, `@`, `;` and `=` of Teams conversation ids stay inside one segment.
fn encode_segment(segment: &str) -> String {
    let mut encoded = String::with_capacity(segment.len() * 3);
    for byte in segment.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                encoded.push(byte as char)
            }
            _ => encoded.push_str(&format!("%{byte:02X}")),
        }
    }
    encoded
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversation_ids_are_encoded_into_one_path_segment() {
        let url = activities_url(
            "https://smba.example/teams/",
            "19:abc@thread.tacv2;messageid=17",
        );
        assert_eq!(
            url,
            "https://smba.example/teams/v3/conversations/\
             19%3Aabc%40thread.tacv2%3Bmessageid%3D17/activities"
        );
    }

    #[test]
    fn a_service_url_without_trailing_slash_gives_the_same_path() {
        assert_eq!(
            conversations_url("https://smba.example/teams"),
            conversations_url("https://smba.example/teams/")
        );
    }

    #[test]
    fn a_thread_is_read_from_a_threaded_conversation_id() {
        let thread = ThreadRef::from_conversation_id("19:c@thread.skype;messageid=42");
        let thread = thread.unwrap();
        assert_eq!(thread.root_activity_id, "42");
        assert_eq!(thread.channel_id(), "19:c@thread.skype");
        assert!(ThreadRef::from_conversation_id("19:c@thread.skype").is_none());
    }

    #[test]
    fn a_thread_answer_without_activity_id_takes_the_root_from_the_id() {
        let answer = json!({ "id": "19:c@thread.tacv2;messageid=9" });
        let thread = thread_from_answer("19:c@thread.tacv2", Some(answer)).unwrap();
        assert_eq!(thread, ThreadRef::new("19:c@thread.tacv2", "9"));
    }
}
