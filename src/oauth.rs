//! OAuth 2.0 client-credentials tokens for the outbound clients (Graph and
//! ServiceNow), fetched on demand and cached until shortly before they
//! expire.
//!
//! One refresh runs at a time: callers that arrive while a token is being
//! fetched wait for that fetch and share its result instead of starting
//! their own. A token the server refused can be dropped with
//! [`TokenSource::invalidate`], which only drops it if nothing newer has
//! replaced it meanwhile.
//!
//! This module never logs a token, a client secret or a token endpoint's
//! body, and never retries by itself: the caller's retry loop decides.

use std::sync::Arc;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use tokio::sync::Mutex;
use tokio::time::Instant;

/// A token is renewed this long before the expiry the server announced.
const RENEW_BEFORE_EXPIRY: Duration = Duration::from_secs(5 * 60);

/// Assumed lifetime when a token endpoint omits `expires_in`.
const DEFAULT_LIFETIME: Duration = Duration::from_secs(30 * 60);

/// Where and as whom to ask for a token.
#[derive(Debug, Clone)]
pub struct ClientCredentials {
    pub token_url: String,
    pub client_id: String,
    pub client_secret: SecretString,
    /// `scope` form field; Entra ID needs one, ServiceNow does not.
    pub scope: Option<String>,
}

/// A bearer token. `Debug` does not print it.
#[derive(Debug, Clone)]
pub struct AccessToken(SecretString);

impl AccessToken {
    /// The raw token, for an `Authorization: Bearer` header only.
    pub fn secret(&self) -> &str {
        self.0.expose_secret()
    }
}

/// Why no token could be had.
#[derive(Debug, thiserror::Error)]
pub enum OAuthError {
    /// The token endpoint answered with an error; becomes a token error for
    /// the caller, usually a configuration problem unless it is transient.
    #[error("token endpoint answered {status} {error}; {description}")]
    Rejected {
        status: u16,
        error: String,
        description: String,
    },
    /// The token endpoint could not be reached or did not answer in time.
    #[error("token endpoint unreachable; {0}")]
    Transport(#[source] reqwest::Error),
    /// The token endpoint answered success with a body that holds no token.
    #[error("token endpoint answered {status} without a usable token; {reason}")]
    Decode { status: u16, reason: String },
}

impl OAuthError {
    /// Whether asking again later may succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Rejected { status, .. } => {
                matches!(status, 429 | 500 | 502 | 503 | 504)
            }
            Self::Transport(_) => true,
            Self::Decode { .. } => false,
        }
    }

    /// The HTTP status the token endpoint answered with, if it answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Rejected { status, .. } | Self::Decode { status, .. } => Some(*status),
            Self::Transport(_) => None,
        }
    }
}

/// A cached source of client-credentials tokens. Cheap to clone; clones
/// share the cache.
#[derive(Clone)]
pub struct TokenSource {
    inner: Arc<Inner>,
}

struct Inner {
    credentials: ClientCredentials,
    http: reqwest::Client,
    timeout: Duration,
    cached: Mutex<Option<CachedToken>>,
}

struct CachedToken {
    token: AccessToken,
    renew_at: Instant,
}

impl std::fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSource")
            .field("token_url", &self.inner.credentials.token_url)
            .field("client_id", &self.inner.credentials.client_id)
            .finish_non_exhaustive()
    }
}

impl TokenSource {
    pub fn new(credentials: ClientCredentials, http: reqwest::Client, timeout: Duration) -> Self {
        let inner = Inner {
            credentials,
            http,
            timeout,
            cached: Mutex::new(None),
        };
        Self {
            inner: Arc::new(inner),
        }
    }

    /// A token valid for a while yet, from the cache or freshly fetched.
    pub async fn token(&self) -> Result<AccessToken, OAuthError> {
        // The lock is held across the fetch on purpose: concurrent callers
        // queue behind the one refresh and then find its token cached.
        let mut cached = self.inner.cached.lock().await;
        if let Some(entry) = cached.as_ref() {
            if Instant::now() < entry.renew_at {
                return Ok(entry.token.clone());
            }
        }
        let fresh = self.fetch().await?;
        let token = fresh.token.clone();
        *cached = Some(fresh);
        Ok(token)
    }

    /// Forgets `stale` after a server refused it, so the next call fetches
    /// a new token. A token fetched since by someone else is kept.
    pub async fn invalidate(&self, stale: &AccessToken) {
        let mut cached = self.inner.cached.lock().await;
        let same = cached
            .as_ref()
            .is_some_and(|entry| entry.token.secret() == stale.secret());
        if same {
            *cached = None;
        }
    }

    async fn fetch(&self) -> Result<CachedToken, OAuthError> {
        let credentials = &self.inner.credentials;
        let mut form = vec![
            ("grant_type", "client_credentials"),
            ("client_id", credentials.client_id.as_str()),
            ("client_secret", credentials.client_secret.expose_secret()),
        ];
        if let Some(scope) = &credentials.scope {
            form.push(("scope", scope.as_str()));
        }
        let response = self
            .inner
            .http
            .post(&credentials.token_url)
            .timeout(self.inner.timeout)
            .form(&form)
            .send()
            .await
            .map_err(OAuthError::Transport)?;
        let status = response.status().as_u16();
        let body = response.bytes().await.map_err(OAuthError::Transport)?;
        if !(200..300).contains(&status) {
            return Err(rejection(status, &body));
        }
        parse_token(status, &body)
    }
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: Option<String>,
    expires_in: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct TokenRefusal {
    error: Option<String>,
    error_description: Option<String>,
}

fn parse_token(status: u16, body: &[u8]) -> Result<CachedToken, OAuthError> {
    let answer: TokenAnswer = serde_json::from_slice(body).map_err(|e| OAuthError::Decode {
        status,
        reason: format!("body is not token JSON ({e})"),
    })?;
    let token = answer
        .access_token
        .filter(|t| !t.is_empty())
        .ok_or_else(|| OAuthError::Decode {
            status,
            reason: "access_token is missing".into(),
        })?;
    let lifetime = answer
        .expires_in
        .as_ref()
        .and_then(seconds_of)
        .unwrap_or(DEFAULT_LIFETIME);
    Ok(CachedToken {
        token: AccessToken(SecretString::from(token)),
        renew_at: Instant::now() + lifetime - renewal_margin(lifetime),
    })
}

/// Five minutes before expiry, or half-way for tokens shorter than ten
/// minutes, so that a short-lived token is still reused a little.
fn renewal_margin(lifetime: Duration) -> Duration {
    RENEW_BEFORE_EXPIRY.min(lifetime / 2)
}

/// `expires_in` is a number in the v2 endpoint and ServiceNow, but a
/// string in some older endpoints.
fn seconds_of(value: &serde_json::Value) -> Option<Duration> {
    let seconds = match value {
        serde_json::Value::Number(n) => n.as_u64()?,
        serde_json::Value::String(s) => s.trim().parse().ok()?,
        _ => return None,
    };
    Some(Duration::from_secs(seconds))
}

fn rejection(status: u16, body: &[u8]) -> OAuthError {
    let refusal: Option<TokenRefusal> = serde_json::from_slice(body).ok();
    let error = refusal.as_ref().and_then(|r| r.error.clone());
    let description = refusal.and_then(|r| r.error_description);
    OAuthError::Rejected {
        status,
        error: error.unwrap_or_else(|| "unknown_error".into()),
        description: description
            .map(|d| first_line(&d))
            .unwrap_or_else(|| "no error description".into()),
    }
}

/// Entra ID descriptions carry trace and correlation ids on later lines;
/// the first line is the message.
fn first_line(text: &str) -> String {
    text.lines().next().unwrap_or_default().trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_answer_with_string_expiry_is_accepted() {
        let body = br#"{"access_token":"abc","expires_in":"3599"}"#;
        let cached = parse_token(200, body).unwrap();
        assert_eq!(cached.token.secret(), "abc");
        assert!(cached.renew_at > Instant::now() + Duration::from_secs(3000));
    }

    #[test]
    fn short_lived_token_is_renewed_half_way() {
        let margin = renewal_margin(Duration::from_secs(120));
        assert_eq!(margin, Duration::from_secs(60));
        let margin = renewal_margin(Duration::from_secs(3600));
        assert_eq!(margin, RENEW_BEFORE_EXPIRY);
    }

    #[test]
    fn token_answer_without_token_is_a_decode_error() {
        let error = parse_token(200, br#"{"expires_in":10}"#).err().unwrap();
        assert!(matches!(error, OAuthError::Decode { status: 200, .. }));
        let error = parse_token(200, b"<html>").err().unwrap();
        assert!(error.to_string().contains("not token JSON"));
    }

    #[test]
    fn refusal_keeps_error_code_and_first_line_of_description() {
        let body = br#"{"error":"invalid_client",
            "error_description":"AADSTS7000215: Invalid secret.\r\nTrace ID: x"}"#;
        let error = rejection(401, body);
        let text = error.to_string();
        assert!(text.contains("401 invalid_client"), "{text}");
        assert!(text.contains("AADSTS7000215") && !text.contains("Trace"));
        assert!(!error.is_transient());
        assert!(rejection(503, b"busy").is_transient());
    }

    #[test]
    fn debug_of_a_token_does_not_show_it() {
        let token = AccessToken(SecretString::from("very-secret".to_string()));
        assert!(!format!("{token:?}").contains("very-secret"));
    }
}
