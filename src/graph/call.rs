//! One logical Graph call: token, `client-request-id`, retries and the
//! reading of whatever came back into an answer or a [`GraphError`].
//!
//! A call keeps one `client-request-id` across all of its attempts, so
//! Microsoft support sees the retries as one operation. Throttling (429)
//! and the gateway answers 503 and 504 are retried with the shared
//! [`RetryPolicy`](crate::retry::RetryPolicy), honouring `Retry-After`; so
//! are lost connections and timeouts. A 401 drops the cached token and is
//! retried once with a new one. Nothing else is repeated.
//!
//! A request marked not repeat-safe (a session revocation: each one moves
//! the user's sessions-valid-from time) is not sent again after an answer
//! that may hide a write that took effect (a 504, a timeout or a
//! connection lost after sending); the error goes back to the caller,
//! which reads the user to find out. Throttling, 503 and connection
//! failures before sending are still retried, since Graph did nothing.

use reqwest::header::{HeaderMap, DATE};
use reqwest::Method;
use std::time::Duration;
use tracing::{debug, warn};
use url::Url;
use uuid::Uuid;

use super::error::{parse_error_body, GraphError};
use super::{GraphClient, GraphReceipt};
use crate::oauth::AccessToken;
use crate::retry::retry_after;

/// What to send.
pub(super) struct GraphRequest {
    pub method: Method,
    pub url: Url,
    pub json: Option<serde_json::Value>,
    /// Whether sending it twice has the effect of sending it once.
    pub repeat_safe: bool,
}

/// A successful answer and its receipt.
pub(super) struct GraphAnswer {
    pub body: Vec<u8>,
    pub receipt: GraphReceipt,
}

/// One HTTP answer, successful or not.
struct Reply {
    status: u16,
    headers: HeaderMap,
    body: Vec<u8>,
}

/// Where one logical call stands between attempts.
struct Progress {
    client_request_id: String,
    attempts: u32,
    waited: Duration,
    token_renewed: bool,
}

impl GraphClient {
    /// Sends `request` until it succeeds, fails for good, or the retry
    /// budget is spent.
    pub(super) async fn call(&self, request: GraphRequest) -> Result<GraphAnswer, GraphError> {
        let mut progress = Progress {
            client_request_id: Uuid::new_v4().to_string(),
            attempts: 0,
            waited: Duration::ZERO,
            token_renewed: false,
        };
        loop {
            progress.attempts += 1;
            let (failure, asked_wait) = match self.attempt(&request, &progress).await {
                Ok((reply, _)) if is_success(reply.status) => {
                    return Ok(answer(reply, &progress));
                }
                Ok((reply, token)) if reply.status == 401 && !progress.token_renewed => {
                    progress.token_renewed = true;
                    self.inner.tokens.invalidate(&token).await;
                    debug!("Graph refused the token; fetching a new one");
                    continue;
                }
                Ok((reply, _)) => {
                    crate::metrics::graph_answer(reply.status);
                    let wait = retry_after(&reply.headers);
                    (api_error(reply, &progress), wait)
                }
                Err(error) => (error, None),
            };
            if !failure.is_transient() {
                return Err(failure);
            }
            if !request.repeat_safe && failure.may_have_taken_effect() {
                return Err(failure);
            }
            self.pause(&mut progress, failure, asked_wait).await?;
        }
    }

    /// Waits before the next attempt, or gives `failure` back when the
    /// retry budget is spent.
    async fn pause(
        &self,
        progress: &mut Progress,
        failure: GraphError,
        asked_wait: Option<Duration>,
    ) -> Result<(), GraphError> {
        let policy = &self.inner.settings.retry;
        let delay = policy.next_delay(progress.attempts, asked_wait, progress.waited);
        let Some(delay) = delay else {
            return Err(failure);
        };
        crate::metrics::graph_retry(failure.status());
        warn!(
            status = failure.status(),
            attempt = progress.attempts,
            request_id = failure.request_id(),
            client_request_id = %progress.client_request_id,
            delay_ms = delay.as_millis() as u64,
            error = %failure,
            "Graph call failed; retrying"
        );
        tokio::time::sleep(delay).await;
        progress.waited += delay;
        Ok(())
    }

    async fn attempt(
        &self,
        request: &GraphRequest,
        progress: &Progress,
    ) -> Result<(Reply, AccessToken), GraphError> {
        let token = self.inner.tokens.token().await;
        let token = token.map_err(|source| GraphError::Token { source })?;
        let mut builder = self
            .inner
            .http
            .request(request.method.clone(), request.url.clone())
            .timeout(self.inner.settings.timeout)
            .bearer_auth(token.secret())
            .header("client-request-id", &progress.client_request_id)
            .header("return-client-request-id", "true")
            .header(reqwest::header::ACCEPT, "application/json");
        builder = match &request.json {
            Some(json) => builder.json(json),
            None => builder.body(Vec::new()),
        };
        let transport = |source| GraphError::Transport {
            client_request_id: progress.client_request_id.clone(),
            source,
        };
        let response = builder.send().await.map_err(transport)?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.bytes().await.map_err(transport)?.to_vec();
        Ok((
            Reply {
                status,
                headers,
                body,
            },
            token,
        ))
    }
}

fn is_success(status: u16) -> bool {
    (200..300).contains(&status)
}

fn header(headers: &HeaderMap, name: impl reqwest::header::AsHeaderName) -> Option<String> {
    let value = headers.get(name)?.to_str().ok()?;
    Some(value.to_string())
}

fn answer(reply: Reply, progress: &Progress) -> GraphAnswer {
    let receipt = GraphReceipt {
        status: reply.status,
        request_id: header(&reply.headers, "request-id"),
        client_request_id: progress.client_request_id.clone(),
        date: header(&reply.headers, DATE),
        attempts: progress.attempts,
        waited_ms: progress.waited.as_millis() as u64,
    };
    GraphAnswer {
        body: reply.body,
        receipt,
    }
}

/// Reads an error answer; a body that is not Graph's error JSON still gives
/// a clear error naming the status.
fn api_error(reply: Reply, progress: &Progress) -> GraphError {
    let parsed = parse_error_body(&reply.body).unwrap_or_default();
    let message = parsed.message.unwrap_or_else(|| {
        format!(
            "the error body is not Graph error JSON ({} bytes)",
            reply.body.len()
        )
    });
    GraphError::Api {
        status: reply.status,
        code: parsed.code.unwrap_or_else(|| "unknown".into()),
        message,
        request_id: header(&reply.headers, "request-id").or(parsed.request_id),
        client_request_id: progress.client_request_id.clone(),
        date: header(&reply.headers, DATE).or(parsed.date),
    }
}

/// Reads a success body as JSON of type `T`.
pub(super) fn decode<T: serde::de::DeserializeOwned>(
    answer: &GraphAnswer,
) -> Result<T, GraphError> {
    serde_json::from_slice(&answer.body).map_err(|e| GraphError::Decode {
        status: answer.receipt.status,
        reason: format!("expected JSON of the documented shape ({e})"),
        request_id: answer.receipt.request_id.clone(),
        client_request_id: answer.receipt.client_request_id.clone(),
    })
}
