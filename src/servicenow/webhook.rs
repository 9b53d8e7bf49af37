//! Verification of the signed webhook ServiceNow sends to
//! `POST /api/servicenow/webhook`.
//!
//! The sender puts the unix time in `X-Cordon-Timestamp` and, in
//! `X-Cordon-Signature`, the standard base64 of an HMAC-SHA256 over
//! `"{timestamp}.{raw body}"` keyed with the UTF-8 bytes of
//! `servicenow.webhook_secret`. A request is accepted once: it must be
//! fresh (within five minutes of now, either way), carry a MAC that
//! matches in constant time, and not repeat a signature already accepted.
//! Errors name what is wrong, never the expected MAC.

use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use moka::future::Cache;
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;

/// The timestamp header's name.
pub const TIMESTAMP_HEADER: &str = "X-Cordon-Timestamp";
/// The signature header's name.
pub const SIGNATURE_HEADER: &str = "X-Cordon-Signature";

/// How far a timestamp may be from now, in either direction, in seconds.
const MAX_SKEW_SECONDS: i64 = 5 * 60;

/// How long an accepted signature is remembered. Longer than the whole
/// window a timestamp is accepted in (twice the skew), so a replay is
/// either remembered or already stale.
const REPLAY_MEMORY: Duration = Duration::from_secs(10 * 60);

/// Signatures remembered at most; far above any real incident rate.
const REPLAY_CAPACITY: u64 = 100_000;

type HmacSha256 = Hmac<Sha256>;

/// Why a webhook request was refused; all of them become 401.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    #[error("the X-Cordon-Timestamp header is missing")]
    MissingTimestamp,
    #[error("the X-Cordon-Signature header is missing")]
    MissingSignature,
    #[error("the X-Cordon-Timestamp header is not unix seconds")]
    MalformedTimestamp,
    #[error("the X-Cordon-Timestamp is more than five minutes from now")]
    Stale,
    #[error("the X-Cordon-Signature does not match the body and timestamp")]
    BadSignature,
    #[error("this signed request was already accepted once")]
    Replayed,
}

/// The signature a sender puts in `X-Cordon-Signature`.
pub fn sign(secret: &SecretString, timestamp: i64, body: &[u8]) -> String {
    STANDARD.encode(mac_of(secret, timestamp, body).finalize().into_bytes())
}

fn mac_of(secret: &SecretString, timestamp: i64, body: &[u8]) -> HmacSha256 {
    let key = secret.expose_secret().as_bytes();
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC accepts keys of any length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// The signatures accepted in the last ten minutes. Cheap to clone; clones
/// share the memory. It lives in one process: replicas behind a load
/// balancer each keep their own, so a replay sent to another replica
/// within the window is caught only by the idempotency of the request
/// itself (the same user and incident start nothing new).
#[derive(Clone)]
pub struct ReplayGuard {
    seen: Cache<[u8; 32], ()>,
}

impl ReplayGuard {
    pub fn new() -> Self {
        let seen = Cache::builder()
            .max_capacity(REPLAY_CAPACITY)
            .time_to_live(REPLAY_MEMORY)
            .build();
        Self { seen }
    }

    /// Records `mac`; `false` when it was already there.
    async fn first_sighting(&self, mac: [u8; 32]) -> bool {
        self.seen.entry(mac).or_insert(()).await.is_fresh()
    }
}

impl Default for ReplayGuard {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for ReplayGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplayGuard")
            .field("remembered", &self.seen.entry_count())
            .finish()
    }
}

/// Accepts a webhook request, or says why not. `now_unix` is the
/// receiver's clock in unix seconds. A signature is remembered only once
/// it has verified, so garbage cannot fill the replay memory.
pub async fn verify(
    secret: &SecretString,
    timestamp: Option<&str>,
    signature: Option<&str>,
    body: &[u8],
    now_unix: i64,
    replay: &ReplayGuard,
) -> Result<(), WebhookError> {
    let timestamp = timestamp.ok_or(WebhookError::MissingTimestamp)?;
    let signature = signature.ok_or(WebhookError::MissingSignature)?;
    let timestamp = parse_timestamp(timestamp)?;
    if now_unix.abs_diff(timestamp) > MAX_SKEW_SECONDS.unsigned_abs() {
        return Err(WebhookError::Stale);
    }
    let presented = STANDARD
        .decode(signature.trim())
        .map_err(|_| WebhookError::BadSignature)?;
    let mac = mac_of(secret, timestamp, body);
    mac.verify_slice(&presented)
        .map_err(|_| WebhookError::BadSignature)?;

    // Verified, so exactly 32 bytes; the key is the MAC, not its text,
    // so a re-encoding of the same signature is still a replay.
    let mut key = [0u8; 32];
    key.copy_from_slice(&presented);
    if !replay.first_sighting(key).await {
        return Err(WebhookError::Replayed);
    }
    Ok(())
}

/// Unix seconds, digits only (an optional leading `-` aside), so that
/// `+1`, ` 1` or `1.0` do not sign differently from what was verified.
fn parse_timestamp(text: &str) -> Result<i64, WebhookError> {
    let digits = text.strip_prefix('-').unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(WebhookError::MalformedTimestamp);
    }
    text.parse().map_err(|_| WebhookError::MalformedTimestamp)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_750_000_000;
    const BODY: &[u8] = br#"{"number":"INC0012345","affected_user":"a@b.c"}"#;

    fn secret(text: &str) -> SecretString {
        SecretString::from(text.to_string())
    }

    async fn check(
        timestamp: Option<&str>,
        signature: Option<&str>,
        body: &[u8],
        guard: &ReplayGuard,
    ) -> Result<(), WebhookError> {
        verify(&secret("shared"), timestamp, signature, body, NOW, guard).await
    }

    #[tokio::test]
    async fn correctly_signed_fresh_request_is_accepted() {
        let signature = sign(&secret("shared"), NOW - 30, BODY);
        let ts = (NOW - 30).to_string();
        let guard = ReplayGuard::new();
        assert_eq!(
            check(Some(&ts), Some(&signature), BODY, &guard).await,
            Ok(())
        );
    }

    #[test]
    fn signature_is_base64_hmac_of_timestamp_dot_body() {
        // Independent computation of HMAC-SHA256("key", "1.x").
        let signature = sign(&secret("key"), 1, b"x");
        let mut mac = HmacSha256::new_from_slice(b"key").unwrap();
        mac.update(b"1.x");
        let expected = STANDARD.encode(mac.finalize().into_bytes());
        assert_eq!(signature, expected);
        assert_eq!(signature.len(), 44);
    }

    #[tokio::test]
    async fn signature_made_with_another_secret_is_refused() {
        let signature = sign(&secret("other"), NOW, BODY);
        let ts = NOW.to_string();
        let guard = ReplayGuard::new();
        let result = check(Some(&ts), Some(&signature), BODY, &guard);
        assert_eq!(result.await, Err(WebhookError::BadSignature));
    }

    #[tokio::test]
    async fn tampered_body_is_refused() {
        let signature = sign(&secret("shared"), NOW, BODY);
        let ts = NOW.to_string();
        let tampered = br#"{"number":"INC0012345","affected_user":"ceo@b.c"}"#;
        let guard = ReplayGuard::new();
        let result = check(Some(&ts), Some(&signature), tampered, &guard);
        assert_eq!(result.await, Err(WebhookError::BadSignature));
    }

    #[tokio::test]
    async fn timestamps_older_or_newer_than_five_minutes_are_stale() {
        for ts in [NOW - 301, NOW + 301] {
            let signature = sign(&secret("shared"), ts, BODY);
            let text = ts.to_string();
            let guard = ReplayGuard::new();
            let result = check(Some(&text), Some(&signature), BODY, &guard);
            assert_eq!(result.await, Err(WebhookError::Stale), "{ts}");
        }
        for ts in [NOW - 300, NOW + 300] {
            let signature = sign(&secret("shared"), ts, BODY);
            let text = ts.to_string();
            let guard = ReplayGuard::new();
            let result = check(Some(&text), Some(&signature), BODY, &guard);
            assert_eq!(result.await, Ok(()), "{ts}");
        }
    }

    #[tokio::test]
    async fn second_delivery_of_an_accepted_request_is_a_replay() {
        let signature = sign(&secret("shared"), NOW, BODY);
        let ts = NOW.to_string();
        let guard = ReplayGuard::new();
        assert_eq!(
            check(Some(&ts), Some(&signature), BODY, &guard).await,
            Ok(())
        );
        let again = check(Some(&ts), Some(&signature), BODY, &guard).await;
        assert_eq!(again, Err(WebhookError::Replayed));
    }

    #[tokio::test]
    async fn refused_signature_is_not_remembered() {
        let guard = ReplayGuard::new();
        let ts = NOW.to_string();
        let signature = sign(&secret("shared"), NOW, BODY);
        let tampered = b"{}";
        let first = check(Some(&ts), Some(&signature), tampered, &guard).await;
        assert_eq!(first, Err(WebhookError::BadSignature));
        assert_eq!(
            check(Some(&ts), Some(&signature), BODY, &guard).await,
            Ok(())
        );
    }

    #[tokio::test]
    async fn missing_headers_are_named() {
        let guard = ReplayGuard::new();
        let ts = NOW.to_string();
        let missing_ts = check(None, Some("c2ln"), BODY, &guard).await;
        assert_eq!(missing_ts, Err(WebhookError::MissingTimestamp));
        let missing_sig = check(Some(&ts), None, BODY, &guard).await;
        assert_eq!(missing_sig, Err(WebhookError::MissingSignature));
    }

    #[tokio::test]
    async fn non_numeric_timestamps_are_malformed() {
        let guard = ReplayGuard::new();
        for ts in ["", "abc", "1.5", "+1750000000", " 1750000000", "17e8"] {
            let signature = sign(&secret("shared"), NOW, BODY);
            let result = check(Some(ts), Some(&signature), BODY, &guard).await;
            assert_eq!(result, Err(WebhookError::MalformedTimestamp), "{ts:?}");
        }
    }

    #[tokio::test]
    async fn signature_that_is_not_base64_is_refused_without_panic() {
        let ts = NOW.to_string();
        let guard = ReplayGuard::new();
        for signature in ["", "!!!", "c2ln"] {
            let result = check(Some(&ts), Some(signature), BODY, &guard).await;
            assert_eq!(result, Err(WebhookError::BadSignature), "{signature}");
        }
    }

    #[test]
    fn error_text_does_not_reveal_the_expected_mac() {
        let expected = sign(&secret("shared"), NOW, BODY);
        let text = WebhookError::BadSignature.to_string();
        assert!(!text.contains(&expected));
        assert!(text.contains("X-Cordon-Signature"));
    }
}
