//! The ServiceNow client (Table API on the incident table) and the
//! verification of the webhook ServiceNow sends to Cordon.
//!
//! The client finds an incident by its number, moves its state and
//! appends work notes. It authenticates with basic auth or an OAuth
//! client-credentials token from `{instance}/oauth_token.do`. Throttling
//! (429), 503, 504, lost connections and timeouts are retried with the
//! shared retry policy. A work note is a journal append, so it is not
//! simply sent again when its answer was lost (a 504, a timeout or a
//! connection lost after sending): the client first looks for the note in
//! the incident's `sys_journal_field` entries and only appends it again
//! when it is not there. Only when that read fails too (for want of read
//! access to `sys_journal_field`, say) can a note end up twice in the
//! ticket. Credentials and bodies are never logged.

mod error;
mod model;
pub mod webhook;

use std::sync::Arc;
use std::time::Duration;

use reqwest::Method;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use tracing::{debug, warn};
use url::Url;

use crate::oauth::{AccessToken, ClientCredentials, TokenSource};
use crate::retry::{retry_after, RetryPolicy};
use error::api_error;

pub use error::ServiceNowError;
pub use model::{is_incident_number, Incident, IncidentState, IncidentUpdate};

/// How Cordon authenticates to the instance.
#[derive(Debug, Clone)]
pub enum ServiceNowAuth {
    Basic {
        username: String,
        password: SecretString,
    },
    /// Client credentials at `{instance}/oauth_token.do`; the instance
    /// must allow that grant and map the OAuth entity to a user.
    OAuth {
        client_id: String,
        client_secret: SecretString,
    },
}

/// Where the instance is and how to talk to it.
#[derive(Debug, Clone)]
pub struct ServiceNowSettings {
    /// Such as `https://contoso.service-now.com`.
    pub instance_url: String,
    pub auth: ServiceNowAuth,
    pub retry: RetryPolicy,
    /// For one HTTP attempt, connection and body included.
    pub timeout: Duration,
}

/// A ServiceNow client. Cheap to clone; clones share the token cache.
#[derive(Clone)]
pub struct ServiceNowClient {
    inner: Arc<Inner>,
}

struct Inner {
    settings: ServiceNowSettings,
    http: reqwest::Client,
    tokens: Option<TokenSource>,
}

impl std::fmt::Debug for ServiceNowClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceNowClient")
            .field("instance_url", &self.inner.settings.instance_url)
            .finish_non_exhaustive()
    }
}

/// What to send.
struct Request {
    method: Method,
    url: Url,
    json: Option<serde_json::Value>,
    /// For a work note: the incident and the note, looked for in the
    /// journal before the request is repeated after a lost answer.
    appends_note: Option<(String, String)>,
}

/// How many of an incident's newest work notes are searched for a note
/// whose answer was lost.
const RECENT_NOTES: &str = "20";

#[derive(Deserialize)]
struct JournalList {
    result: Vec<JournalValue>,
}

#[derive(Deserialize)]
struct JournalValue {
    #[serde(default)]
    value: String,
}

/// A successful answer.
struct Answer {
    status: u16,
    body: Vec<u8>,
}

/// One HTTP answer, successful or not, and the token it was sent with.
struct Reply {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: Vec<u8>,
    token: Option<AccessToken>,
}

#[derive(Deserialize)]
struct ResultList {
    result: Vec<Incident>,
}

impl ServiceNowClient {
    pub fn new(settings: ServiceNowSettings, http: reqwest::Client) -> Self {
        let tokens = match &settings.auth {
            ServiceNowAuth::Basic { .. } => None,
            ServiceNowAuth::OAuth {
                client_id,
                client_secret,
            } => Some(token_source(&settings, client_id, client_secret, &http)),
        };
        let inner = Inner {
            settings,
            http,
            tokens,
        };
        Self {
            inner: Arc::new(inner),
        }
    }

    /// The incident with this number, or `None` when there is none. The
    /// number must be letters then digits, so it cannot carry query
    /// syntax such as `^` or `=`.
    pub async fn find_incident(&self, number: &str) -> Result<Option<Incident>, ServiceNowError> {
        if !is_incident_number(number) {
            return Err(ServiceNowError::InvalidNumber {
                number: number.to_string(),
            });
        }
        let mut url = self.endpoint(&["api", "now", "table", "incident"])?;
        url.query_pairs_mut()
            .append_pair("sysparm_query", &format!("number={number}"))
            .append_pair("sysparm_limit", "1")
            .append_pair("sysparm_exclude_reference_link", "true");
        let answer = self.call(Request::new(Method::GET, url, None)).await?;
        let list: ResultList = decode(&answer)?;
        Ok(list.result.into_iter().next())
    }

    /// Writes the given fields on the incident; an empty update sends
    /// nothing.
    pub async fn update_incident(
        &self,
        sys_id: &str,
        update: &IncidentUpdate,
    ) -> Result<(), ServiceNowError> {
        if !model::is_sys_id(sys_id) {
            return Err(ServiceNowError::InvalidSysId {
                sys_id: sys_id.to_string(),
            });
        }
        if update.is_empty() {
            return Ok(());
        }
        let path = ["api", "now", "table", "incident", sys_id];
        let url = self.endpoint(&path)?;
        let body = serde_json::to_value(update).map_err(|e| ServiceNowError::Decode {
            status: 0,
            reason: format!("update could not be encoded ({e})"),
        })?;
        let mut request = Request::new(Method::PATCH, url, Some(body));
        request.appends_note = update
            .work_notes
            .clone()
            .map(|note| (sys_id.to_string(), note));
        self.call(request).await.map(drop)
    }

    /// Appends `note` to the incident's work notes.
    pub async fn add_work_note(&self, sys_id: &str, note: &str) -> Result<(), ServiceNowError> {
        let update = IncidentUpdate {
            state: None,
            work_notes: Some(note.to_string()),
        };
        self.update_incident(sys_id, &update).await
    }

    /// Proves the credentials and read access with a one-row read of the
    /// incident table, for `config check`.
    pub async fn check_credentials(&self) -> Result<(), ServiceNowError> {
        let mut url = self.endpoint(&["api", "now", "table", "incident"])?;
        url.query_pairs_mut()
            .append_pair("sysparm_limit", "1")
            .append_pair("sysparm_fields", "sys_id");
        let answer = self.call(Request::new(Method::GET, url, None)).await?;
        decode::<serde_json::Value>(&answer).map(drop)
    }

    fn endpoint(&self, segments: &[&str]) -> Result<Url, ServiceNowError> {
        instance_endpoint(&self.inner.settings.instance_url, segments)
    }

    /// Sends `request` until it succeeds, fails for good, or the retry
    /// budget is spent. A 401 with OAuth drops the token and is retried
    /// once with a new one.
    async fn call(&self, request: Request) -> Result<Answer, ServiceNowError> {
        let policy = &self.inner.settings.retry;
        let (mut attempts, mut waited, mut renewed) = (0, Duration::ZERO, false);
        loop {
            attempts += 1;
            let (failure, asked_wait) = match self.attempt(&request).await {
                Ok(reply) if (200..300).contains(&reply.status) => {
                    let (status, body) = (reply.status, reply.body);
                    return Ok(Answer { status, body });
                }
                Ok(Reply {
                    status: 401,
                    token: Some(token),
                    ..
                }) if !renewed => {
                    renewed = true;
                    self.invalidate(&token).await;
                    continue;
                }
                Ok(reply) => {
                    let wait = retry_after(&reply.headers);
                    (api_error(reply.status, &reply.body), wait)
                }
                Err(error) => (error, None),
            };
            if !failure.is_transient() {
                return Err(failure);
            }
            if failure.may_have_taken_effect() && self.note_landed(&request).await {
                debug!("the answer was lost but the work note is in the journal");
                return Ok(Answer {
                    status: 200,
                    body: Vec::new(),
                });
            }
            let Some(delay) = policy.next_delay(attempts, asked_wait, waited) else {
                return Err(failure);
            };
            warn!(
                status = failure.status(),
                attempt = attempts,
                delay_ms = delay.as_millis() as u64,
                error = %failure,
                "ServiceNow call failed; retrying"
            );
            tokio::time::sleep(delay).await;
            waited += delay;
        }
    }

    async fn attempt(&self, request: &Request) -> Result<Reply, ServiceNowError> {
        let mut builder = self
            .inner
            .http
            .request(request.method.clone(), request.url.clone())
            .timeout(self.inner.settings.timeout)
            .header(reqwest::header::ACCEPT, "application/json");
        if let Some(json) = &request.json {
            builder = builder.json(json);
        }
        let token = match (&self.inner.settings.auth, &self.inner.tokens) {
            (ServiceNowAuth::Basic { username, password }, _) => {
                let password = Some(password.expose_secret());
                builder = builder.basic_auth(username, password);
                None
            }
            (ServiceNowAuth::OAuth { .. }, Some(tokens)) => {
                let token = tokens.token().await.map_err(ServiceNowError::Token)?;
                builder = builder.bearer_auth(token.secret());
                Some(token)
            }
            (ServiceNowAuth::OAuth { .. }, None) => None,
        };
        let response = builder.send().await.map_err(ServiceNowError::Transport)?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.bytes().await.map_err(ServiceNowError::Transport)?;
        let body = body.to_vec();
        Ok(Reply {
            status,
            headers,
            body,
            token,
        })
    }

    /// Whether the work note `request` appends is already among the
    /// incident's newest work notes. `false` when the request appends no
    /// note or the journal cannot be read.
    async fn note_landed(&self, request: &Request) -> bool {
        let Some((sys_id, note)) = &request.appends_note else {
            return false;
        };
        match self.recent_work_notes(sys_id).await {
            Ok(notes) => notes.iter().any(|n| n.trim() == note.trim()),
            Err(error) => {
                warn!(%error, "cannot read the journal; the note is sent again");
                false
            }
        }
    }

    /// The incident's newest work notes, newest first, from
    /// `sys_journal_field`. Read once, without retries.
    async fn recent_work_notes(&self, sys_id: &str) -> Result<Vec<String>, ServiceNowError> {
        let mut url = self.endpoint(&["api", "now", "table", "sys_journal_field"])?;
        let query = format!("element_id={sys_id}^element=work_notes^ORDERBYDESCsys_created_on");
        url.query_pairs_mut()
            .append_pair("sysparm_query", &query)
            .append_pair("sysparm_fields", "value")
            .append_pair("sysparm_limit", RECENT_NOTES);
        let reply = self.attempt(&Request::new(Method::GET, url, None)).await?;
        if !(200..300).contains(&reply.status) {
            return Err(api_error(reply.status, &reply.body));
        }
        let answer = Answer {
            status: reply.status,
            body: reply.body,
        };
        let list: JournalList = decode(&answer)?;
        Ok(list.result.into_iter().map(|entry| entry.value).collect())
    }

    async fn invalidate(&self, token: &AccessToken) {
        if let Some(tokens) = &self.inner.tokens {
            debug!("ServiceNow refused the token; fetching a new one");
            tokens.invalidate(token).await;
        }
    }
}

impl Request {
    fn new(method: Method, url: Url, json: Option<serde_json::Value>) -> Self {
        Self {
            method,
            url,
            json,
            appends_note: None,
        }
    }
}

fn token_source(
    settings: &ServiceNowSettings,
    client_id: &str,
    client_secret: &SecretString,
    http: &reqwest::Client,
) -> TokenSource {
    let token_url = instance_endpoint(&settings.instance_url, &["oauth_token.do"])
        .map(String::from)
        .unwrap_or_else(|_| settings.instance_url.clone());
    let credentials = ClientCredentials {
        token_url,
        client_id: client_id.to_string(),
        client_secret: client_secret.clone(),
        scope: None,
    };
    TokenSource::new(credentials, http.clone(), settings.timeout)
}

/// `instance_url` with `segments` appended, each percent-encoded.
fn instance_endpoint(instance_url: &str, segments: &[&str]) -> Result<Url, ServiceNowError> {
    let bad = |reason: String| ServiceNowError::Config {
        reason: format!("servicenow.instance_url {instance_url:?} is not usable; {reason}"),
    };
    let mut url = Url::parse(instance_url).map_err(|e| bad(e.to_string()))?;
    url.path_segments_mut()
        .map_err(|()| bad("it cannot have a path".into()))?
        .pop_if_empty()
        .extend(segments);
    Ok(url)
}

fn decode<T: serde::de::DeserializeOwned>(answer: &Answer) -> Result<T, ServiceNowError> {
    serde_json::from_slice(&answer.body).map_err(|e| ServiceNowError::Decode {
        status: answer.status,
        reason: format!("expected Table API JSON ({e})"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(instance_url: &str) -> ServiceNowClient {
        let settings = ServiceNowSettings {
            instance_url: instance_url.into(),
            auth: ServiceNowAuth::Basic {
                username: "cordon".into(),
                password: SecretString::from("pa55".to_string()),
            },
            retry: RetryPolicy::fast(),
            timeout: Duration::from_secs(1),
        };
        ServiceNowClient::new(settings, reqwest::Client::new())
    }

    #[tokio::test]
    async fn number_with_query_syntax_is_refused_before_any_call() {
        // Port 9 on loopback is closed: a call would be a transport error.
        let snow = client("http://127.0.0.1:9");
        let error = snow.find_incident("INC1^ORnumber=INC2").await.unwrap_err();
        assert!(matches!(error, ServiceNowError::InvalidNumber { .. }));
        let error = snow
            .add_work_note("../sys_user/x", "note")
            .await
            .unwrap_err();
        assert!(matches!(error, ServiceNowError::InvalidSysId { .. }));
    }

    #[test]
    fn oauth_token_endpoint_is_under_the_instance() {
        let url = instance_endpoint("https://x.example/", &["oauth_token.do"]);
        assert_eq!(url.unwrap().as_str(), "https://x.example/oauth_token.do");
    }

    #[test]
    fn debug_of_settings_and_client_hides_the_password() {
        let snow = client("https://x.example");
        assert!(!format!("{snow:?}").contains("pa55"));
        assert!(!format!("{:?}", snow.inner.settings).contains("pa55"));
    }
}
