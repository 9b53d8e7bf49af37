//! The access token the bot presents to the Bot Connector, obtained by the
//! client-credentials grant and kept until shortly before it expires.
//!
//! One token is shared by every outbound call. Renewal happens under a lock,
//! so concurrent callers that find the token stale wait for one renewal
//! instead of each asking for their own. The token and the app password
//! never appear in logs, errors or `Debug` output.

use std::sync::Arc;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use tokio::sync::Mutex;
use tokio::time::Instant;

/// The scope that grants access to the Bot Connector.
pub const BOT_CONNECTOR_SCOPE: &str = "https://api.botframework.com/.default";

/// A token is renewed this long before the expiry it was issued with.
pub const RENEW_BEFORE_EXPIRY: Duration = Duration::from_secs(5 * 60);

/// Why no token could be had.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("the token endpoint could not be reached: {0}")]
    Transport(#[source] reqwest::Error),
    /// The endpoint answered with an error; `code` is its OAuth error code.
    #[error("the token endpoint refused the request ({status}, {code})")]
    Refused { status: u16, code: String },
    #[error("the token endpoint's answer could not be read: {0}")]
    Decode(#[source] reqwest::Error),
}

/// Where and as whom tokens are requested.
#[derive(Debug, Clone)]
pub struct TokenCredentials {
    pub token_url: String,
    pub app_id: String,
    pub app_password: SecretString,
}

struct CachedToken {
    value: SecretString,
    renew_at: Instant,
}

/// Hands out a valid Bot Connector token; clones share one cache.
#[derive(Clone)]
pub struct TokenSource {
    credentials: Arc<TokenCredentials>,
    http: reqwest::Client,
    cached: Arc<Mutex<Option<CachedToken>>>,
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: SecretString,
    expires_in: u64,
}

#[derive(Deserialize)]
struct TokenRefusal {
    error: Option<String>,
}

impl TokenSource {
    pub fn new(credentials: TokenCredentials, http: reqwest::Client) -> Self {
        Self {
            credentials: Arc::new(credentials),
            http,
            cached: Arc::default(),
        }
    }

    /// A token valid for at least a few more minutes.
    pub async fn token(&self) -> Result<SecretString, TokenError> {
        let mut cached = self.cached.lock().await;
        if let Some(token) = cached.as_ref() {
            if Instant::now() < token.renew_at {
                return Ok(token.value.clone());
            }
        }
        let fresh = self.request().await?;
        let value = fresh.value.clone();
        *cached = Some(fresh);
        Ok(value)
    }

    /// Forgets the cached token, so that the next call asks for a new one.
    pub async fn forget(&self) {
        *self.cached.lock().await = None;
    }

    async fn request(&self) -> Result<CachedToken, TokenError> {
        let credentials = &self.credentials;
        let form = [
            ("grant_type", "client_credentials"),
            ("client_id", credentials.app_id.as_str()),
            ("client_secret", credentials.app_password.expose_secret()),
            ("scope", BOT_CONNECTOR_SCOPE),
        ];
        let requested_at = Instant::now();
        let response = self
            .http
            .post(&credentials.token_url)
            .form(&form)
            .timeout(Duration::from_secs(30))
            .send()
            .await
            .map_err(TokenError::Transport)?;
        let status = response.status();
        if !status.is_success() {
            return Err(refusal(status.as_u16(), response).await);
        }
        let answer: TokenAnswer = response.json().await.map_err(TokenError::Decode)?;
        let lifetime = Duration::from_secs(answer.expires_in);
        Ok(CachedToken {
            value: answer.access_token,
            renew_at: requested_at + lifetime.saturating_sub(RENEW_BEFORE_EXPIRY),
        })
    }
}

async fn refusal(status: u16, response: reqwest::Response) -> TokenError {
    let code = response
        .json::<TokenRefusal>()
        .await
        .ok()
        .and_then(|refusal| refusal.error)
        .unwrap_or_else(|| "unknown".into());
    tracing::warn!(status, code, "bot connector token refused");
    TokenError::Refused { status, code }
}
