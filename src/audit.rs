//! The audit trail: append-only events, each chained to the one before it
//! by a SHA-256 hash, written in the same transaction as the change they
//! record (the store does the writing; this module owns the format).
//!
//! [`verify`] walks a chain and names the first event that was altered,
//! deleted, inserted or moved; [`to_jsonl`] and [`to_ecs`] export it.
//! Nothing here decides anything about a containment; it only records and
//! checks what others decided.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// The hash the first event points back to.
pub const GENESIS_HASH: &str =
    "0000000000000000000000000000000000000000000000000000000000000000";

/// The actor of events that no person caused.
pub const SYSTEM: &str = "system";

/// An event about to be appended.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEntry {
    pub request_id: Option<String>,
    /// An Entra object id, a configured system name, or [`SYSTEM`].
    pub actor: String,
    pub event: String,
    /// The inputs that mattered: policy rule, approver, Graph request ids.
    pub details: Value,
}

impl AuditEntry {
    pub fn new(
        request_id: impl Into<Option<String>>,
        actor: impl Into<String>,
        event: impl Into<String>,
        details: Value,
    ) -> Self {
        Self {
            request_id: request_id.into(),
            actor: actor.into(),
            event: event.into(),
            details,
        }
    }
}

/// An event as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEvent {
    pub seq: i64,
    /// Unix milliseconds.
    pub at: i64,
    pub request_id: Option<String>,
    pub actor: String,
    pub event: String,
    pub details: Value,
    pub prev_hash: String,
    pub hash: String,
}

/// The hash of an event: SHA-256 over its fields and the previous hash,
/// each length-prefixed so that no two different events share an input.
pub fn event_hash(
    seq: i64,
    at: i64,
    request_id: Option<&str>,
    actor: &str,
    event: &str,
    details: &str,
    prev_hash: &str,
) -> String {
    let mut hasher = Sha256::new();
    let seq = seq.to_string();
    let at = at.to_string();
    let fields = [
        seq.as_str(),
        at.as_str(),
        request_id.unwrap_or(""),
        actor,
        event,
        details,
        prev_hash,
    ];
    for field in fields {
        hasher.update((field.len() as u64).to_be_bytes());
        hasher.update(field.as_bytes());
    }
    hex(&hasher.finalize())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl AuditEvent {
    /// The canonical text of `details` that the hash covers.
    pub fn details_text(&self) -> String {
        serde_json::to_string(&self.details).unwrap_or_default()
    }

    pub fn computed_hash(&self) -> String {
        event_hash(
            self.seq,
            self.at,
            self.request_id.as_deref(),
            &self.actor,
            &self.event,
            &self.details_text(),
            &self.prev_hash,
        )
    }
}

/// What is wrong with a chain, naming the first bad event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainError {
    #[error("event {seq} was altered: its hash does not match its content")]
    Altered { seq: i64 },
    #[error(
        "event {seq} does not follow event {previous}: an event was deleted, \
         inserted or moved before it"
    )]
    Broken { seq: i64, previous: i64 },
    #[error("the chain ends at event {last} but its head says {head}: events were removed from the end")]
    Truncated { last: i64, head: i64 },
}

/// Checks a whole chain, in stored order, against the head the store keeps.
/// Returns the number of events checked.
pub fn verify(events: &[AuditEvent], head: (i64, &str)) -> Result<usize, ChainError> {
    let mut previous_seq = 0;
    let mut previous_hash = GENESIS_HASH.to_string();
    for event in events {
        if event.seq != previous_seq + 1 || event.prev_hash != previous_hash {
            return Err(ChainError::Broken {
                seq: event.seq,
                previous: previous_seq,
            });
        }
        if event.computed_hash() != event.hash {
            return Err(ChainError::Altered { seq: event.seq });
        }
        previous_seq = event.seq;
        previous_hash = event.hash.clone();
    }
    if head.0 != previous_seq || head.1 != previous_hash {
        return Err(ChainError::Truncated {
            last: previous_seq,
            head: head.0,
        });
    }
    Ok(events.len())
}

/// One JSON object per line, fields as stored.
pub fn to_jsonl(event: &AuditEvent) -> String {
    serde_json::to_string(event).unwrap_or_default()
}

/// The event in Elastic Common Schema form, for shipping to a SIEM.
pub fn to_ecs(event: &AuditEvent) -> String {
    let timestamp = chrono::DateTime::from_timestamp_millis(event.at)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default();
    let outcome = if event.event.contains("fail") || event.event.contains("refus") {
        "failure"
    } else {
        "success"
    };
    let document = json!({
        "@timestamp": timestamp,
        "ecs": { "version": "8.11.0" },
        "event": {
            "kind": "event",
            "category": ["iam"],
            "type": ["change"],
            "action": event.event,
            "outcome": outcome,
            "sequence": event.seq,
            "hash": event.hash,
            "provider": "cordon",
        },
        "user": { "id": event.actor },
        "labels": { "request_id": event.request_id },
        "cordon": {
            "details": event.details,
            "prev_hash": event.prev_hash,
        },
    });
    document.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(n: i64) -> Vec<AuditEvent> {
        let mut events = Vec::new();
        let mut prev = GENESIS_HASH.to_string();
        for seq in 1..=n {
            let mut event = AuditEvent {
                seq,
                at: 1_700_000_000_000 + seq,
                request_id: Some("CR-TEST".into()),
                actor: "system".into(),
                event: format!("event_{seq}"),
                details: json!({ "n": seq }),
                prev_hash: prev.clone(),
                hash: String::new(),
            };
            event.hash = event.computed_hash();
            prev = event.hash.clone();
            events.push(event);
        }
        events
    }

    fn head(events: &[AuditEvent]) -> (i64, String) {
        let last = events.last().unwrap();
        (last.seq, last.hash.clone())
    }

    #[test]
    fn an_untouched_chain_verifies() {
        let events = chain(5);
        let (seq, hash) = head(&events);
        assert_eq!(verify(&events, (seq, &hash)), Ok(5));
    }

    #[test]
    fn an_edited_event_is_named() {
        let mut events = chain(5);
        let (seq, hash) = head(&events);
        events[2].details = json!({ "n": 99 });
        assert_eq!(verify(&events, (seq, &hash)), Err(ChainError::Altered { seq: 3 }));
    }

    #[test]
    fn a_deleted_event_breaks_the_next_link() {
        let mut events = chain(5);
        let (seq, hash) = head(&events);
        events.remove(1);
        assert_eq!(
            verify(&events, (seq, &hash)),
            Err(ChainError::Broken { seq: 3, previous: 1 })
        );
    }

    #[test]
    fn reordered_events_are_found() {
        let mut events = chain(5);
        let (seq, hash) = head(&events);
        events.swap(1, 2);
        assert!(matches!(
            verify(&events, (seq, &hash)),
            Err(ChainError::Broken { seq: 3, .. })
        ));
    }

    #[test]
    fn a_removed_tail_is_found_through_the_head() {
        let mut events = chain(5);
        let (seq, hash) = head(&events);
        events.pop();
        assert_eq!(
            verify(&events, (seq, &hash)),
            Err(ChainError::Truncated { last: 4, head: 5 })
        );
    }

    #[test]
    fn ecs_export_carries_the_action_and_timestamp() {
        let events = chain(1);
        let ecs: Value = serde_json::from_str(&to_ecs(&events[0])).unwrap();
        assert_eq!(ecs["event"]["action"], "event_1");
        assert!(ecs["@timestamp"].as_str().unwrap().ends_with('Z'));
        assert_eq!(ecs["labels"]["request_id"], "CR-TEST");
    }
}
