//! Retry timing shared by every outbound client: exponential backoff with
//! full jitter, bounded in attempts and in total time, and `Retry-After`
//! honoured when the server sends one.
//!
//! This module only computes delays and classifies answers; it never sleeps
//! or sends anything itself, so callers stay in charge of their own loops and
//! of what they journal between attempts.

use std::time::Duration;

use rand::Rng;

/// How hard a client tries before it gives up on one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first one included.
    pub max_attempts: u32,
    /// The ceiling of the first backoff; it doubles on each attempt.
    pub base_delay: Duration,
    /// No single wait is longer than this, whatever the server asks.
    pub max_delay: Duration,
    /// Once this much time has been spent waiting, no further attempt is made.
    pub max_total: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 5,
            base_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(30),
            max_total: Duration::from_secs(120),
        }
    }
}

impl RetryPolicy {
    /// A policy for tests and the sandbox: same shape, tiny delays.
    pub fn fast() -> Self {
        Self {
            max_attempts: 4,
            base_delay: Duration::from_millis(5),
            max_delay: Duration::from_millis(50),
            max_total: Duration::from_secs(2),
        }
    }

    /// The wait before attempt `attempt + 1`, after `attempt` attempts have
    /// failed (so `attempt` starts at 1), or `None` when the budget is spent.
    ///
    /// `waited` is the time already spent waiting for this call. A server's
    /// `Retry-After` wins over the computed backoff, but is still capped by
    /// `max_delay` so that a hostile or confused server cannot park a run.
    pub fn next_delay(
        &self,
        attempt: u32,
        retry_after: Option<Duration>,
        waited: Duration,
    ) -> Option<Duration> {
        if attempt >= self.max_attempts {
            return None;
        }
        let delay = match retry_after {
            Some(asked) => asked.min(self.max_delay),
            None => self.jittered_backoff(attempt),
        };
        if waited + delay > self.max_total {
            return None;
        }
        Some(delay)
    }

    fn jittered_backoff(&self, attempt: u32) -> Duration {
        let exponent = attempt.saturating_sub(1).min(20);
        let ceiling = self
            .base_delay
            .saturating_mul(1u32 << exponent)
            .min(self.max_delay);
        let millis = ceiling.as_millis().max(1) as u64;
        Duration::from_millis(rand::thread_rng().gen_range(millis / 2..=millis))
    }
}

/// Reads a `Retry-After` header given in seconds. The HTTP-date form is not
/// used by Graph, ServiceNow or the Bot Connector, so it is treated as absent
/// and the caller falls back to its own backoff.
pub fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let value = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    let seconds: f64 = value.trim().parse().ok()?;
    (seconds.is_finite() && seconds >= 0.0).then(|| Duration::from_secs_f64(seconds))
}

/// Whether an HTTP status is worth another attempt: throttling and the
/// transient gateway errors. Everything else is an answer, not an accident.
pub fn is_transient_status(status: u16) -> bool {
    matches!(status, 408 | 412 | 429 | 500 | 502 | 503 | 504)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_wins_over_backoff_but_is_capped() {
        let policy = RetryPolicy::default();
        let asked = Some(Duration::from_secs(3));
        assert_eq!(policy.next_delay(1, asked, Duration::ZERO), asked);
        let huge = Some(Duration::from_secs(3600));
        assert_eq!(
            policy.next_delay(1, huge, Duration::ZERO),
            Some(policy.max_delay)
        );
    }

    #[test]
    fn backoff_grows_and_stays_within_its_ceiling() {
        let policy = RetryPolicy::default();
        for attempt in 1..5 {
            let delay = policy.next_delay(attempt, None, Duration::ZERO).unwrap();
            let ceiling = policy.base_delay * (1 << (attempt - 1));
            assert!(delay <= ceiling && delay >= ceiling / 2, "{delay:?}");
        }
    }

    #[test]
    fn budget_ends_after_max_attempts_or_max_total() {
        let policy = RetryPolicy::default();
        assert_eq!(policy.next_delay(5, None, Duration::ZERO), None);
        let nearly_all = policy.max_total - Duration::from_millis(1);
        assert_eq!(
            policy.next_delay(1, Some(Duration::from_secs(1)), nearly_all),
            None
        );
    }

    #[test]
    fn only_transient_statuses_are_retried() {
        for status in [429, 412, 502, 503, 504] {
            assert!(is_transient_status(status));
        }
        for status in [400, 401, 403, 404, 409, 413] {
            assert!(!is_transient_status(status));
        }
    }
}
