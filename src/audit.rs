//! The audit trail: append-only events, each chained to the one before it
//! by a SHA-256 hash, written in the same transaction as the change they
//! record (the store does the writing; this module owns the format).
//!
//! [`verify`] walks a chain and names the first event that was altered,
//! deleted, inserted or moved; [`to_jsonl`] and [`to_ecs`] export it.
//! Nothing here decides anything about a containment; it only records and
//! checks what others decided.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// The hash the first event points back to.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

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

/// What is wrong with a chain, naming the first bad event. The store keeps
/// events in `seq` order, so a reordering or an insertion in the middle
/// shows as events whose back-links point elsewhere than to the event
/// before them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainError {
    #[error("event {seq} was altered: its content no longer matches its hash")]
    Altered { seq: i64 },
    #[error(
        "the chain is cut between event {after} and event {next}: event {next} \
         points back to an event that is no longer there (deleted, or replaced \
         by a re-hashed copy)"
    )]
    Deleted { after: i64, next: i64 },
    #[error(
        "event {seq} was inserted: the event after it points back past it, to \
         the event before it"
    )]
    Inserted { seq: i64 },
    #[error("event {seq} is out of order: it points back to an event stored after it")]
    Reordered { seq: i64 },
    #[error(
        "event {seq} should be event {expected}: it links and hashes, but was \
         numbered by someone who could forge its hash"
    )]
    Renumbered { seq: i64, expected: i64 },
    #[error(
        "the chain ends at event {last} but its head says {head}: events were \
         removed from the end"
    )]
    Truncated { last: i64, head: i64 },
}

/// Checks a whole chain, in stored order, against the head the store keeps.
/// Returns the number of events checked.
///
/// The chain proves that nothing was changed by someone who cannot also
/// rewrite every later event and the head row: an attacker with write
/// access to the database who re-hashes the whole tail is not detected
/// here. Keeping a copy of the head elsewhere (an export shipped to a SIEM
/// carries every hash) closes that gap.
pub fn verify(events: &[AuditEvent], head: (i64, &str)) -> Result<usize, ChainError> {
    let position: HashMap<&str, usize> = events
        .iter()
        .enumerate()
        .map(|(i, event)| (event.hash.as_str(), i))
        .collect();
    let mut previous_seq = 0;
    let mut previous_hash = GENESIS_HASH;
    for (i, event) in events.iter().enumerate() {
        let linked = event.prev_hash == previous_hash;
        let intact = event.computed_hash() == event.hash;
        if linked && intact {
            if event.seq != previous_seq + 1 {
                return Err(ChainError::Renumbered {
                    seq: event.seq,
                    expected: previous_seq + 1,
                });
            }
        } else {
            return Err(first_fault(
                events,
                i,
                previous_seq,
                previous_hash,
                &position,
            ));
        }
        previous_seq = event.seq;
        previous_hash = &event.hash;
    }
    check_head(events, head, &position)?;
    Ok(events.len())
}

/// Names what went wrong at position `i`, the first event that does not
/// link to `previous_hash` or does not match its own hash.
fn first_fault(
    events: &[AuditEvent],
    i: usize,
    previous_seq: i64,
    previous_hash: &str,
    position: &HashMap<&str, usize>,
) -> ChainError {
    let event = &events[i];
    let linked = event.prev_hash == previous_hash;
    let points_to = position.get(event.prev_hash.as_str()).copied();

    // It points at an event stored after it: the two were swapped or moved.
    if !linked && points_to.is_some_and(|k| k > i) {
        return ChainError::Reordered { seq: event.seq };
    }
    // A later event links to our predecessor: everything between is foreign.
    if events[i + 1..].iter().any(|e| e.prev_hash == previous_hash) {
        return ChainError::Inserted { seq: event.seq };
    }
    if linked {
        return ChainError::Altered { seq: event.seq };
    }
    // It skips back over events that themselves chain well: forgeries.
    if let Some(k) = points_to.filter(|&k| k + 1 < i) {
        return ChainError::Inserted {
            seq: events[k + 1].seq,
        };
    }
    ChainError::Deleted {
        after: previous_seq,
        next: event.seq,
    }
}

/// The last event must be the one the head row names.
fn check_head(
    events: &[AuditEvent],
    head: (i64, &str),
    position: &HashMap<&str, usize>,
) -> Result<(), ChainError> {
    let (last_seq, last_hash) = events
        .last()
        .map(|e| (e.seq, e.hash.as_str()))
        .unwrap_or((0, GENESIS_HASH));
    if head.0 == last_seq && head.1 == last_hash {
        return Ok(());
    }
    let appended_after = match position.get(head.1) {
        Some(&k) if k + 1 < events.len() => Some(events[k + 1].seq),
        None if head.1 == GENESIS_HASH && head.0 == 0 => events.first().map(|e| e.seq),
        _ => None,
    };
    match appended_after {
        Some(seq) => Err(ChainError::Inserted { seq }),
        None => Err(ChainError::Truncated {
            last: last_seq,
            head: head.0,
        }),
    }
}

/// One JSON object per line, fields as stored.
pub fn to_jsonl(event: &AuditEvent) -> String {
    serde_json::to_string(event).unwrap_or_default()
}

/// The event in Elastic Common Schema (8.x) form, for shipping to a SIEM.
///
/// Standard fields: `@timestamp`, `event.*` (`action` is the event name,
/// `sequence` its place in the chain, `category` is always `iam`, `type`
/// and `outcome` follow from the event), `user.id` (the actor's object id
/// or `system`), `user.name` where the event names the person,
/// `user.target.*` for the account being contained, `related.user` (every
/// object id the event names) and `related.hash` (this and the previous
/// hash). `labels.request_id` and `labels.incident` are keywords to filter
/// on. Everything Cordon-specific sits under `cordon.*`: `request_id`,
/// `seq`, `hash`, `prev_hash`, `rule`, `graph_request_ids` and the full
/// `details`, so the export loses nothing and a chain can be re-verified
/// from it.
pub fn to_ecs(event: &AuditEvent) -> String {
    ecs_document(event).to_string()
}

fn ecs_document(event: &AuditEvent) -> Value {
    let timestamp = chrono::DateTime::from_timestamp_millis(event.at)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default();
    let details = &event.details;
    let text = |key: &str| details.get(key).and_then(Value::as_str);
    let (types, outcome) = ecs_type_and_outcome(event);
    let mut document = json!({
        "@timestamp": timestamp,
        "ecs": { "version": "8.11.0" },
        "message": ecs_message(event),
        "event": {
            "kind": "event",
            "category": ["iam"],
            "type": types,
            "action": event.event,
            "outcome": outcome,
            "sequence": event.seq,
            "provider": "cordon",
            "dataset": "cordon.audit",
        },
        "user": { "id": event.actor },
        "related": {
            "user": related_users(event),
            "hash": [event.hash, event.prev_hash],
        },
        "labels": {},
        "cordon": {
            "request_id": event.request_id,
            "seq": event.seq,
            "hash": event.hash,
            "prev_hash": event.prev_hash,
            "details": details,
        },
    });
    let person = [
        "approver_name",
        "clicker_name",
        "operator_name",
        "requester_name",
    ]
    .into_iter()
    .find_map(|key| text(key));
    if let Some(name) = person {
        document["user"]["name"] = json!(name);
    }
    if let (Some(upn), Some(id)) = (text("target"), text("target_id")) {
        document["user"]["target"] = json!({ "id": id, "email": upn, "name": upn });
    }
    if let Some(reason) = text("reason").or_else(|| text("error")) {
        document["event"]["reason"] = json!(reason);
    }
    if let Some(status) = details.get("http_status").and_then(Value::as_i64) {
        document["http"] = json!({ "response": { "status_code": status } });
    }
    if let Some(id) = &event.request_id {
        document["labels"]["request_id"] = json!(id);
    }
    if let Some(incident) = text("incident") {
        document["labels"]["incident"] = json!(incident);
    }
    if let Some(rule) = text("rule") {
        document["cordon"]["rule"] = json!(rule);
    }
    let graph_ids = graph_request_ids(details);
    if !graph_ids.is_empty() {
        document["cordon"]["graph_request_ids"] = json!(graph_ids);
    }
    document
}

/// ECS `event.type` and `event.outcome` for a Cordon event name.
fn ecs_type_and_outcome(event: &AuditEvent) -> (Vec<&'static str>, &'static str) {
    match event.event.as_str() {
        "request_received" => (vec!["creation", "user"], "success"),
        "approval_recorded" | "auto_approved" => (vec!["allowed", "user"], "success"),
        "rejection_recorded" => (vec!["denied", "user"], "success"),
        "approval_refused" => (vec!["denied"], "failure"),
        "approval_expired" => (vec!["end"], "failure"),
        "run_started" | "run_resumed" => (vec!["start"], "success"),
        "step_done" => (vec!["change", "user"], "success"),
        "step_failed" => (vec!["change", "user", "error"], "failure"),
        "step_skipped" => (vec!["info"], "unknown"),
        "retry_requested" => (vec!["change"], "success"),
        "run_finished" => {
            let succeeded =
                event.details.get("transition").and_then(Value::as_str) == Some("succeed");
            (vec!["end"], if succeeded { "success" } else { "failure" })
        }
        _ => (vec!["info"], "unknown"),
    }
}

fn ecs_message(event: &AuditEvent) -> String {
    match &event.request_id {
        Some(id) => format!("{} on {id} by {}", event.event, event.actor),
        None => format!("{} by {}", event.event, event.actor),
    }
}

/// Every object id the event names: its actor (unless the system) and the
/// target account.
fn related_users(event: &AuditEvent) -> Vec<String> {
    let mut users = Vec::new();
    if event.actor != SYSTEM {
        users.push(event.actor.clone());
    }
    if let Some(target) = event.details.get("target_id").and_then(Value::as_str) {
        if !users.iter().any(|u| u == target) {
            users.push(target.to_string());
        }
    }
    users
}

/// The Graph `request-id`s an event carries, as step and run events store
/// them (`outside_ids.request_id`, `outside_ids.request_ids`,
/// `graph_request_ids`).
fn graph_request_ids(details: &Value) -> Vec<String> {
    let mut ids = Vec::new();
    let mut take = |value: &Value| match value {
        Value::String(id) => ids.push(id.clone()),
        Value::Array(items) => {
            ids.extend(items.iter().filter_map(Value::as_str).map(str::to_string))
        }
        _ => {}
    };
    let outside = &details["outside_ids"];
    take(&outside["request_id"]);
    take(&outside["request_ids"]);
    take(&details["graph_request_ids"]);
    ids
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(seq: i64, prev: &str, details: Value) -> AuditEvent {
        let mut event = AuditEvent {
            seq,
            at: 1_700_000_000_000 + seq,
            request_id: Some("CR-TEST".into()),
            actor: "system".into(),
            event: format!("event_{seq}"),
            details,
            prev_hash: prev.to_string(),
            hash: String::new(),
        };
        event.hash = event.computed_hash();
        event
    }

    fn chain(n: i64) -> Vec<AuditEvent> {
        let mut events: Vec<AuditEvent> = Vec::new();
        for seq in 1..=n {
            let prev = events.last().map_or(GENESIS_HASH, |e| e.hash.as_str());
            let next = event(seq, prev, json!({ "n": seq }));
            events.push(next);
        }
        events
    }

    fn head(events: &[AuditEvent]) -> (i64, String) {
        let last = events.last().unwrap();
        (last.seq, last.hash.clone())
    }

    /// Gives the events the numbers 1.. in their current order, as an
    /// attacker must to keep `seq` gap-free.
    fn renumber(events: &mut [AuditEvent]) {
        for (i, event) in events.iter_mut().enumerate() {
            event.seq = i as i64 + 1;
        }
    }

    fn check(events: &[AuditEvent], head: &(i64, String)) -> Result<usize, ChainError> {
        verify(events, (head.0, &head.1))
    }

    #[test]
    fn an_untouched_chain_verifies() {
        let events = chain(5);
        assert_eq!(check(&events, &head(&events)), Ok(5));
    }

    #[test]
    fn an_empty_chain_with_a_fresh_head_verifies() {
        assert_eq!(verify(&[], (0, GENESIS_HASH)), Ok(0));
    }

    #[test]
    fn an_edited_event_is_named() {
        let mut events = chain(5);
        let tip = head(&events);
        events[2].details = json!({ "n": 99 });
        assert_eq!(check(&events, &tip), Err(ChainError::Altered { seq: 3 }));
    }

    #[test]
    fn an_edited_last_event_is_named() {
        let mut events = chain(5);
        let tip = head(&events);
        events[4].actor = "mallory".into();
        assert_eq!(check(&events, &tip), Err(ChainError::Altered { seq: 5 }));
    }

    #[test]
    fn a_deleted_event_cuts_the_chain_where_it_was() {
        let mut events = chain(5);
        let tip = head(&events);
        events.remove(1);
        assert_eq!(
            check(&events, &tip),
            Err(ChainError::Deleted { after: 1, next: 3 })
        );
    }

    #[test]
    fn a_deleted_first_event_is_found() {
        let mut events = chain(3);
        let tip = head(&events);
        events.remove(0);
        assert_eq!(
            check(&events, &tip),
            Err(ChainError::Deleted { after: 0, next: 2 })
        );
    }

    #[test]
    fn a_deleted_event_is_found_after_renumbering() {
        let mut events = chain(5);
        let tip = head(&events);
        events.remove(2);
        renumber(&mut events);
        assert_eq!(
            check(&events, &tip),
            Err(ChainError::Deleted { after: 2, next: 3 })
        );
    }

    #[test]
    fn swapped_events_are_named_where_the_order_breaks() {
        let mut events = chain(5);
        let tip = head(&events);
        events.swap(1, 2);
        renumber(&mut events);
        assert_eq!(check(&events, &tip), Err(ChainError::Reordered { seq: 2 }));
    }

    #[test]
    fn a_forged_event_inserted_with_a_valid_hash_is_named() {
        let mut events = chain(5);
        let tip = head(&events);
        let forged = event(3, &events[1].hash, json!({ "forged": true }));
        events.insert(2, forged);
        renumber(&mut events);
        assert_eq!(check(&events, &tip), Err(ChainError::Inserted { seq: 3 }));
    }

    #[test]
    fn a_sloppily_forged_event_is_named_as_inserted() {
        let mut events = chain(5);
        let tip = head(&events);
        let mut forged = event(3, &events[1].hash, json!({}));
        forged.hash = "f".repeat(64);
        events.insert(2, forged);
        renumber(&mut events);
        assert_eq!(check(&events, &tip), Err(ChainError::Inserted { seq: 3 }));
    }

    #[test]
    fn an_event_appended_behind_the_heads_back_is_named() {
        let mut events = chain(3);
        let tip = head(&events);
        let forged = event(4, &events[2].hash, json!({}));
        events.push(forged);
        assert_eq!(check(&events, &tip), Err(ChainError::Inserted { seq: 4 }));
    }

    #[test]
    fn a_removed_tail_is_found_through_the_head() {
        let mut events = chain(5);
        let tip = head(&events);
        events.pop();
        assert_eq!(
            check(&events, &tip),
            Err(ChainError::Truncated { last: 4, head: 5 })
        );
    }

    #[test]
    fn ecs_export_carries_the_action_timestamp_and_chain() {
        let events = chain(1);
        let ecs: Value = serde_json::from_str(&to_ecs(&events[0])).unwrap();
        assert_eq!(ecs["event"]["action"], "event_1");
        assert_eq!(ecs["@timestamp"], "2023-11-14T22:13:20.001Z");
        assert_eq!(ecs["labels"]["request_id"], "CR-TEST");
        assert_eq!(ecs["cordon"]["hash"], events[0].hash);
        assert_eq!(ecs["related"]["hash"][1], GENESIS_HASH);
        assert_eq!(ecs["user"]["id"], "system");
        assert_eq!(ecs["related"]["user"], json!([]));
    }

    #[test]
    fn ecs_export_names_the_graph_request_ids_of_a_step() {
        let mut step = event(
            1,
            GENESIS_HASH,
            json!({ "step": "block_sign_in", "http_status": 204,
                    "outside_ids": { "request_id": "g-1" } }),
        );
        step.event = "step_done".into();
        let ecs = ecs_document(&step);
        assert_eq!(ecs["cordon"]["graph_request_ids"], json!(["g-1"]));
        assert_eq!(ecs["http"]["response"]["status_code"], 204);
        assert_eq!(ecs["event"]["outcome"], "success");
        assert_eq!(ecs["event"]["type"], json!(["change", "user"]));
    }
}
