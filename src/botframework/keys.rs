//! The signing keys of the token issuers Cordon believes, fetched from their
//! OpenID metadata and kept in memory.
//!
//! One key set is kept per metadata address. A set is refreshed when it is a
//! day old, or sooner when a token names a key the set lacks, but never more
//! than once per `min_refresh_interval`, so that a stream of forged key ids
//! cannot turn the bot into a proxy hammering the issuer. A refresh that
//! fails keeps the keys already known. Refreshes of one set are serialised,
//! so a burst of requests on a cold or stale set causes a single fetch.
//!
//! This module never decides whether a token is valid; it only hands out
//! the key a token names.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::DecodingKey;
use moka::future::Cache;
use moka::ops::compute::Op;
use serde::Deserialize;
use tokio::time::Instant;

/// The longest a key set is served without trying to refresh it.
pub const MAX_KEY_AGE: Duration = Duration::from_secs(24 * 60 * 60);

/// The shortest time between two refreshes caused by unknown key ids.
pub const MIN_REFRESH_INTERVAL: Duration = Duration::from_secs(5 * 60);

/// The shortest time between two attempts while no key set could be
/// fetched at all, or while a day-old set cannot be refreshed.
const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(30);

/// A public key an issuer signs with, and the channels it is endorsed for.
pub struct SigningKey {
    pub kid: String,
    pub key: DecodingKey,
    /// The channels (such as `msteams`) the key may sign for. Empty when the
    /// key set does not say.
    pub endorsements: Vec<String>,
}

/// Why no key could be handed out.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("no signing keys could be fetched from the issuer's metadata")]
    Unavailable,
    #[error("the issuer has no key with the token's key id")]
    UnknownKey,
}

#[derive(Clone)]
struct KeySet {
    keys: Arc<HashMap<String, Arc<SigningKey>>>,
    /// When these keys were fetched; `None` when no fetch ever succeeded.
    fetched_at: Option<Instant>,
    /// When a fetch was last tried, successful or not.
    attempted_at: Instant,
}

impl KeySet {
    fn never_fetched(attempted_at: Instant) -> Self {
        Self {
            keys: Arc::default(),
            fetched_at: None,
            attempted_at,
        }
    }

    fn age(&self, now: Instant) -> Option<Duration> {
        self.fetched_at.map(|at| now.duration_since(at))
    }

    fn is_fresh(&self, now: Instant) -> bool {
        self.age(now).is_some_and(|age| age < MAX_KEY_AGE)
    }

    /// Whether a refresh may be tried now by a request naming `kid`.
    fn wants_refresh(&self, kid: &str, now: Instant, min: Duration) -> bool {
        let since_attempt = now.duration_since(self.attempted_at);
        if !self.is_fresh(now) {
            return since_attempt >= RETRY_AFTER_FAILURE.min(min);
        }
        !self.keys.contains_key(kid) && since_attempt >= min
    }
}

/// The key sets of every issuer, keyed by metadata address.
#[derive(Clone)]
pub struct KeyStore {
    http: reqwest::Client,
    sets: Cache<String, KeySet>,
    min_refresh_interval: Duration,
}

impl KeyStore {
    pub fn new(http: reqwest::Client) -> Self {
        Self {
            http,
            sets: Cache::builder().max_capacity(16).build(),
            min_refresh_interval: MIN_REFRESH_INTERVAL,
        }
    }

    /// The same store with another rate limit on unknown-key refreshes.
    pub fn with_min_refresh_interval(mut self, interval: Duration) -> Self {
        self.min_refresh_interval = interval;
        self
    }

    /// The key `kid` of the issuer described at `metadata_url`.
    pub async fn key(&self, metadata_url: &str, kid: &str) -> Result<Arc<SigningKey>, KeyError> {
        let now = Instant::now();
        let set = match self.sets.get(metadata_url).await {
            Some(set) if !set.wants_refresh(kid, now, self.min_refresh_interval) => set,
            _ => self.refresh(metadata_url, kid).await,
        };
        if set.fetched_at.is_none() {
            return Err(KeyError::Unavailable);
        }
        set.keys.get(kid).cloned().ok_or(KeyError::UnknownKey)
    }

    /// Refreshes the set unless another caller did so while this one was
    /// queued; returns the set as it stands afterwards.
    async fn refresh(&self, metadata_url: &str, kid: &str) -> KeySet {
        let min = self.min_refresh_interval;
        let result = self
            .sets
            .entry_by_ref(metadata_url)
            .and_compute_with(|entry| async move {
                let now = Instant::now();
                let current = entry.map(|entry| entry.into_value());
                match current {
                    Some(set) if !set.wants_refresh(kid, now, min) => Op::Nop,
                    current => Op::Put(self.fetch_or_keep(metadata_url, current).await),
                }
            })
            .await;
        // The closure always leaves an entry behind, so the fallback below
        // only guards against a cache that dropped it in between.
        result
            .into_entry()
            .map(|entry| entry.into_value())
            .unwrap_or_else(|| KeySet::never_fetched(Instant::now()))
    }

    async fn fetch_or_keep(&self, metadata_url: &str, current: Option<KeySet>) -> KeySet {
        let attempted_at = Instant::now();
        match fetch_keys(&self.http, metadata_url).await {
            Ok(keys) => KeySet {
                keys: Arc::new(keys),
                fetched_at: Some(attempted_at),
                attempted_at,
            },
            Err(error) => {
                tracing::warn!(metadata_url, %error, "signing key refresh failed");
                let mut kept = current.unwrap_or_else(|| KeySet::never_fetched(attempted_at));
                kept.attempted_at = attempted_at;
                kept
            }
        }
    }
}

#[derive(Debug, thiserror::Error)]
enum FetchError {
    #[error("request failed: {0}")]
    Http(#[from] reqwest::Error),
    #[error("the key set holds no usable RSA key")]
    NoKeys,
}

#[derive(Deserialize)]
struct OpenIdMetadata {
    jwks_uri: String,
}

#[derive(Deserialize)]
struct JsonWebKeySet {
    keys: Vec<JsonWebKey>,
}

#[derive(Deserialize)]
struct JsonWebKey {
    kty: String,
    #[serde(rename = "use")]
    usage: Option<String>,
    kid: Option<String>,
    n: Option<String>,
    e: Option<String>,
    #[serde(default)]
    endorsements: Vec<String>,
}

impl JsonWebKey {
    /// The key as a verifier, when it is an RSA signing key.
    fn into_signing_key(self) -> Option<SigningKey> {
        let is_signing = self.usage.as_deref().map_or(true, |u| u == "sig");
        if self.kty != "RSA" || !is_signing {
            return None;
        }
        let key = DecodingKey::from_rsa_components(&self.n?, &self.e?).ok()?;
        Some(SigningKey {
            kid: self.kid?,
            key,
            endorsements: self.endorsements,
        })
    }
}

async fn fetch_keys(
    http: &reqwest::Client,
    metadata_url: &str,
) -> Result<HashMap<String, Arc<SigningKey>>, FetchError> {
    let metadata: OpenIdMetadata = get_json(http, metadata_url).await?;
    let set: JsonWebKeySet = get_json(http, &metadata.jwks_uri).await?;
    let keys: HashMap<_, _> = set
        .keys
        .into_iter()
        .filter_map(JsonWebKey::into_signing_key)
        .map(|key| (key.kid.clone(), Arc::new(key)))
        .collect();
    if keys.is_empty() {
        return Err(FetchError::NoKeys);
    }
    Ok(keys)
}

async fn get_json<T: serde::de::DeserializeOwned>(
    http: &reqwest::Client,
    url: &str,
) -> Result<T, reqwest::Error> {
    http.get(url)
        .timeout(Duration::from_secs(10))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(kids: &[&str], fetched: Option<Instant>, attempted: Instant) -> KeySet {
        let keys = kids
            .iter()
            .map(|kid| {
                let key = SigningKey {
                    kid: kid.to_string(),
                    key: DecodingKey::from_secret(b"unused"),
                    endorsements: vec![],
                };
                (kid.to_string(), Arc::new(key))
            })
            .collect();
        KeySet {
            keys: Arc::new(keys),
            fetched_at: fetched,
            attempted_at: attempted,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_known_key_in_a_fresh_set_needs_no_refresh() {
        let now = Instant::now();
        let keys = set(&["a"], Some(now), now);
        assert!(!keys.wants_refresh("a", now, MIN_REFRESH_INTERVAL));
    }

    #[tokio::test(start_paused = true)]
    async fn an_unknown_key_refreshes_only_after_the_minimum_interval() {
        let start = Instant::now();
        let keys = set(&["a"], Some(start), start);
        let soon = start + Duration::from_secs(60);
        let later = start + MIN_REFRESH_INTERVAL;
        assert!(!keys.wants_refresh("b", soon, MIN_REFRESH_INTERVAL));
        assert!(keys.wants_refresh("b", later, MIN_REFRESH_INTERVAL));
    }

    #[tokio::test(start_paused = true)]
    async fn a_day_old_set_is_refreshed_even_for_a_known_key() {
        let start = Instant::now();
        let keys = set(&["a"], Some(start), start);
        let next_day = start + MAX_KEY_AGE;
        assert!(keys.wants_refresh("a", next_day, MIN_REFRESH_INTERVAL));
    }

    #[tokio::test(start_paused = true)]
    async fn a_set_never_fetched_is_retried_after_a_short_pause() {
        let start = Instant::now();
        let keys = set(&[], None, start);
        assert!(!keys.wants_refresh("a", start, MIN_REFRESH_INTERVAL));
        let later = start + RETRY_AFTER_FAILURE;
        assert!(keys.wants_refresh("a", later, MIN_REFRESH_INTERVAL));
    }
}
