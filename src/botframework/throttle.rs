//! The per-thread rate limits Teams puts on a bot, kept on our side so that
//! a burst of containment steps waits instead of being throttled.
//!
//! Teams counts sends per thread. A channel post and the replies under it
//! are counted both against the channel conversation (the id without its
//! `;messageid=` part) and against the thread itself, so both are tracked.
//! A caller over a limit sleeps until the oldest send in the way leaves its
//! window; nothing spins. Limits are per process: two replicas of the bot
//! each keep their own count, and the server's 429 remains the last word.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

/// Beyond this many tracked conversations, the idle ones are forgotten.
const PRUNE_ABOVE: usize = 1024;

/// At most `max` sends in any span of `per`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub max: usize,
    pub per: Duration,
}

/// The windows every thread must keep within.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThreadLimits {
    windows: Vec<Window>,
}

impl ThreadLimits {
    /// The limits Teams documents for sends by one bot in one thread.
    pub fn teams() -> Self {
        Self::new(vec![
            Window {
                max: 7,
                per: Duration::from_secs(1),
            },
            Window {
                max: 8,
                per: Duration::from_secs(2),
            },
            Window {
                max: 60,
                per: Duration::from_secs(30),
            },
            Window {
                max: 1800,
                per: Duration::from_secs(3600),
            },
        ])
    }

    pub fn new(windows: Vec<Window>) -> Self {
        Self { windows }
    }

    fn longest(&self) -> Duration {
        self.windows.iter().map(|w| w.per).max().unwrap_or_default()
    }

    /// When one more send fits in every window, given past sends in order.
    fn ready_at(&self, sent: &VecDeque<Instant>, now: Instant) -> Instant {
        self.windows
            .iter()
            .filter_map(|window| {
                let recent: Vec<_> = sent.iter().filter(|at| **at + window.per > now).collect();
                let excess = (recent.len() + 1).checked_sub(window.max)?;
                let blocking = recent.get(excess.checked_sub(1)?)?;
                Some(**blocking + window.per)
            })
            .fold(now, Instant::max)
    }
}

impl Default for ThreadLimits {
    fn default() -> Self {
        Self::teams()
    }
}

/// Counts sends per conversation and makes callers wait their turn.
#[derive(Clone)]
pub struct ThreadThrottle {
    limits: Arc<ThreadLimits>,
    // A std mutex: it is never held across an await.
    sent: Arc<Mutex<HashMap<String, VecDeque<Instant>>>>,
}

impl ThreadThrottle {
    pub fn new(limits: ThreadLimits) -> Self {
        Self {
            limits: Arc::new(limits),
            sent: Arc::default(),
        }
    }

    /// Waits until one more send to `conversation_id` keeps within every
    /// limit, then counts it.
    pub async fn acquire(&self, conversation_id: &str) {
        let keys = throttle_keys(conversation_id);
        loop {
            match self.try_acquire(&keys) {
                Ok(()) => return,
                Err(ready_at) => tokio::time::sleep_until(ready_at).await,
            }
        }
    }

    /// Counts a send now, or says when it would fit.
    fn try_acquire(&self, keys: &[&str]) -> Result<(), Instant> {
        let now = Instant::now();
        let mut sent = self.sent.lock().unwrap_or_else(|e| e.into_inner());
        let empty = VecDeque::new();
        let ready_at = keys
            .iter()
            .map(|key| {
                let history = sent.get(*key).unwrap_or(&empty);
                self.limits.ready_at(history, now)
            })
            .fold(now, Instant::max);
        if ready_at > now {
            return Err(ready_at);
        }
        let longest = self.limits.longest();
        if sent.len() > PRUNE_ABOVE {
            sent.retain(|_, history| history.back().is_some_and(|at| *at + longest > now));
        }
        for key in keys {
            let history = sent.entry(key.to_string()).or_default();
            while history.front().is_some_and(|at| *at + longest <= now) {
                history.pop_front();
            }
            history.push_back(now);
        }
        Ok(())
    }
}

/// The conversations a send counts against: the channel conversation and,
/// for a thread, the thread as well.
fn throttle_keys(conversation_id: &str) -> Vec<&str> {
    match conversation_id.split_once(";messageid=") {
        Some((channel, _)) => vec![channel, conversation_id],
        None => vec![conversation_id],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const THREAD: &str = "19:abc@thread.tacv2;messageid=1";

    async fn sends_done_within(throttle: &ThreadThrottle, id: &str, n: usize) -> Duration {
        let start = Instant::now();
        for _ in 0..n {
            throttle.acquire(id).await;
        }
        start.elapsed()
    }

    #[tokio::test(start_paused = true)]
    async fn seven_sends_pass_at_once_and_the_eighth_waits_a_second() {
        let throttle = ThreadThrottle::new(ThreadLimits::teams());
        assert_eq!(
            sends_done_within(&throttle, THREAD, 7).await,
            Duration::ZERO
        );
        let eighth = sends_done_within(&throttle, THREAD, 1).await;
        assert_eq!(eighth, Duration::from_secs(1));
    }

    #[tokio::test(start_paused = true)]
    async fn sixty_one_sends_take_at_least_thirty_seconds() {
        let throttle = ThreadThrottle::new(ThreadLimits::teams());
        let elapsed = sends_done_within(&throttle, THREAD, 61).await;
        assert!(elapsed >= Duration::from_secs(30), "{elapsed:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn threads_of_one_channel_share_the_channel_limit() {
        let throttle = ThreadThrottle::new(ThreadLimits::teams());
        for root in 0..7 {
            let id = format!("19:abc@thread.tacv2;messageid={root}");
            assert_eq!(sends_done_within(&throttle, &id, 1).await, Duration::ZERO);
        }
        let other = "19:abc@thread.tacv2;messageid=99";
        assert_eq!(
            sends_done_within(&throttle, other, 1).await,
            Duration::from_secs(1)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn other_conversations_are_not_held_back() {
        let throttle = ThreadThrottle::new(ThreadLimits::teams());
        sends_done_within(&throttle, THREAD, 7).await;
        let elsewhere = "19:other@thread.tacv2";
        assert_eq!(
            sends_done_within(&throttle, elsewhere, 7).await,
            Duration::ZERO
        );
    }
}
