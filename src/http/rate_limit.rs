//! Per-token rate limiting of proposals: a token bucket for each API token
//! name, so that a runaway SIEM rule cannot flood the approvers.
//!
//! A bucket holds at most `burst` proposals and refills at
//! `per_minute / 60` a second. Time is read from tokio's clock, so tests
//! move it with the paused clock instead of sleeping. Buckets live in
//! memory: each replica limits on its own, and a restart refills them.
//! This module only counts; it never stores a request or looks at one.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// The buckets of every token, by token name.
#[derive(Debug)]
pub struct RateLimiter {
    per_second: f64,
    burst: f64,
    buckets: Mutex<HashMap<String, Bucket>>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl RateLimiter {
    /// `per_minute` and `burst` must be at least 1 (configuration
    /// validation sees to it); a zero is treated as 1.
    pub fn new(per_minute: u32, burst: u32) -> RateLimiter {
        RateLimiter {
            per_second: f64::from(per_minute.max(1)) / 60.0,
            burst: f64::from(burst.max(1)),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one proposal from `name`'s bucket, or says how long until
    /// one is there again.
    pub fn take(&self, name: &str) -> Result<(), Duration> {
        let now = Instant::now();
        // A std mutex, not a tokio one: the critical section is a few
        // arithmetic operations and never awaits.
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        let bucket = buckets.entry(name.to_string()).or_insert(Bucket {
            tokens: self.burst,
            at: now,
        });
        let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * self.per_second).min(self.burst);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            return Ok(());
        }
        let missing = 1.0 - bucket.tokens;
        Err(Duration::from_secs_f64(missing / self.per_second))
    }
}

/// The whole seconds a client should wait, never less than one.
pub fn retry_after_seconds(wait: Duration) -> u64 {
    let whole = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    whole.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_burst_is_allowed_and_then_the_rate_applies() {
        let limiter = RateLimiter::new(60, 3);
        for _ in 0..3 {
            assert!(limiter.take("siem").is_ok());
        }
        let wait = limiter.take("siem").unwrap_err();
        assert_eq!(retry_after_seconds(wait), 1);

        tokio::time::advance(Duration::from_millis(1_000)).await;
        assert!(limiter.take("siem").is_ok());
        assert!(limiter.take("siem").is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn each_token_has_its_own_bucket() {
        let limiter = RateLimiter::new(1, 1);
        assert!(limiter.take("sentinel").is_ok());
        assert!(limiter.take("sentinel").is_err());
        assert!(limiter.take("splunk").is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn the_wait_is_how_long_the_bucket_needs_to_refill_one() {
        let limiter = RateLimiter::new(2, 1);
        limiter.take("siem").unwrap();
        let wait = limiter.take("siem").unwrap_err();
        assert_eq!(retry_after_seconds(wait), 30);

        tokio::time::advance(Duration::from_secs(29)).await;
        assert_eq!(retry_after_seconds(limiter.take("siem").unwrap_err()), 1);
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(limiter.take("siem").is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_bucket_refills_only_up_to_the_burst() {
        let limiter = RateLimiter::new(60, 2);
        limiter.take("siem").unwrap();
        tokio::time::advance(Duration::from_secs(3_600)).await;
        assert!(limiter.take("siem").is_ok());
        assert!(limiter.take("siem").is_ok());
        assert!(limiter.take("siem").is_err());
    }
}
