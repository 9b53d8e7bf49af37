//! The audit trail an auditor relies on: after a real containment through
//! the sandbox, every event names its actor, request and inputs, the chain
//! verifies, `cordon audit verify` exits non-zero naming the first bad
//! event for each kind of tampering, and `cordon audit export` writes JSON
//! lines and ECS documents.
//!
//! The containment runs once; each test works on its own copy of the
//! SQLite file it left. The tampering tests on PostgreSQL build their chain
//! through the store and read their server from `CORDON_TEST_POSTGRES_URL`.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use cordon::audit::{self, AuditEntry, AuditEvent, ChainError};
use cordon::demo::{sandbox_config_toml, Sandbox};
use cordon::sandbox::tenant::ids;
use cordon::store::Store;
use serde_json::{json, Value};
use tokio::sync::OnceCell;

/// What the one real containment left behind.
struct RecordedRun {
    /// A consistent copy of the store, never opened again, to copy from.
    snapshot: PathBuf,
    /// The sandbox configuration, with `@STORE@` in place of its store URL.
    config_template: String,
    request_id: String,
    _dir: tempfile::TempDir,
}

static RUN: OnceCell<RecordedRun> = OnceCell::const_new();

/// Contains Alice through Teams (Sam asks, Oscar approves) once per test
/// binary, and snapshots the store.
async fn recorded_run() -> &'static RecordedRun {
    RUN.get_or_init(|| async {
        let sandbox = Sandbox::start("127.0.0.1:0".parse().unwrap(), None)
            .await
            .expect("sandbox starts");
        let sam = sandbox.user(ids::SAM, "Sam Lee");
        let text = format!("contain {} {} token theft", ids::ALICE_UPN, ids::INC_ALICE);
        assert_eq!(sam.say_in_channel(&text).await.unwrap().status, 200);
        let id = sandbox
            .wait_for_request(ids::ALICE_UPN, ids::INC_ALICE)
            .await
            .unwrap();
        let card = sandbox.wait_for_card(&id).await.unwrap();
        let oscar = sandbox.user(ids::OSCAR, "Oscar Ruiz");
        oscar.click("approve", &id, &card, None).await.unwrap();
        sandbox.wait_for_state(&id, &["contained"]).await.unwrap();

        let dir = tempfile::tempdir().unwrap();
        let snapshot = dir.path().join("snapshot.db");
        let into = format!("VACUUM INTO '{}'", snapshot.display());
        sqlx::query(&into)
            .execute(sandbox.engine.store.pool())
            .await
            .unwrap();
        let bind = "127.0.0.1:0".parse().unwrap();
        let config_template = sandbox_config_toml(&sandbox.tenant, bind, "@STORE@");
        sandbox.stop();
        RecordedRun {
            snapshot,
            config_template,
            request_id: id,
            _dir: dir,
        }
    })
    .await
}

/// A private copy of the recorded store, its config file and the store.
struct Copy {
    store: Store,
    config: PathBuf,
    _dir: tempfile::TempDir,
}

async fn copy_of_run() -> (Copy, &'static RecordedRun) {
    let run = recorded_run().await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("cordon.db");
    std::fs::copy(&run.snapshot, &db).unwrap();
    let url = format!("sqlite://{}", db.display());
    let config = dir.path().join("cordon.toml");
    std::fs::write(&config, run.config_template.replace("@STORE@", &url)).unwrap();
    let store = Store::connect(&url).await.unwrap();
    let copy = Copy {
        store,
        config,
        _dir: dir,
    };
    (copy, run)
}

async fn events_and_verdict(store: &Store) -> (Vec<AuditEvent>, Result<usize, ChainError>) {
    let events = store.audit_events(None).await.unwrap();
    let (seq, hash) = store.audit_head().await.unwrap();
    let verdict = audit::verify(&events, (seq, &hash));
    (events, verdict)
}

/// Runs the real binary: exit success and standard output.
fn cordon(args: &[&str], config: &Path) -> (bool, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_cordon"))
        .args(args)
        .arg("--config")
        .arg(config)
        .env_remove("CORDON_CONFIG")
        .output()
        .expect("the cordon binary runs");
    let stdout = String::from_utf8(output.stdout).unwrap();
    (output.status.success(), stdout)
}

fn seq_of(events: &[AuditEvent], event: &str) -> i64 {
    events
        .iter()
        .find(|e| e.event == event)
        .unwrap_or_else(|| panic!("no {event} event in {events:#?}"))
        .seq
}

fn step_events<'a>(events: &'a [AuditEvent], step: &str) -> Vec<&'a AuditEvent> {
    events
        .iter()
        .filter(|e| e.event == "step_done" && e.details["step"] == step)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_chain_of_a_real_containment_verifies_in_the_library_and_the_cli() {
    let (copy, _) = copy_of_run().await;
    let (events, verdict) = events_and_verdict(&copy.store).await;
    assert_eq!(verdict, Ok(events.len()));
    assert!(events.len() >= 6, "{events:#?}");

    let (ok, out) = cordon(&["audit", "verify"], &copy.config);
    assert!(ok, "{out}");
    assert_eq!(
        out.trim(),
        format!("audit chain intact: {} events", events.len())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_names_its_actor_request_time_and_inputs() {
    let (copy, run) = copy_of_run().await;
    let events = copy
        .store
        .audit_events(Some(&run.request_id))
        .await
        .unwrap();
    for event in &events {
        assert_eq!(event.request_id.as_deref(), Some(run.request_id.as_str()));
        assert!(!event.actor.is_empty());
        assert!(event.at > 1_700_000_000_000, "{event:?}");
    }

    // The request: who asked, about whom, and the rule that decided.
    let received = &events[0];
    assert_eq!(received.event, "request_received");
    assert_eq!(received.actor, ids::SAM);
    assert_eq!(received.details["target_id"], ids::ALICE);
    assert_eq!(received.details["incident"], ids::INC_ALICE);
    assert!(received.details["rule"]
        .as_str()
        .is_some_and(|r| !r.is_empty()));

    // The approval: the approver's object id, and the rule again.
    let approval = events
        .iter()
        .find(|e| e.event == "approval_recorded")
        .expect("an approval event");
    assert_eq!(approval.actor, ids::OSCAR);
    assert_eq!(approval.details["approver_name"], "Oscar Ruiz");
    assert_eq!(approval.details["rule"], received.details["rule"]);

    // Graph steps: the request-id Graph answered with.
    for step in ["block_sign_in", "revoke_sessions"] {
        let done = step_events(&events, step);
        assert_eq!(done.len(), 1, "{step}: {events:#?}");
        assert_eq!(done[0].actor, audit::SYSTEM);
        let graph_id = done[0].details["outside_ids"]["request_id"].as_str();
        assert!(
            graph_id.is_some_and(|id| !id.is_empty()),
            "{step}: {:?}",
            done[0]
        );
    }
    let finished = events.last().unwrap();
    assert_eq!(finished.event, "run_finished");
    assert_eq!(finished.details["transition"], "succeed");
    assert!(!finished.details["graph_request_ids"]
        .as_array()
        .unwrap()
        .is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_database_refuses_to_change_or_delete_an_audit_event() {
    let (copy, _) = copy_of_run().await;
    refuses_changes(&copy.store).await;
    if let Some(store) = support::postgres_store().await {
        store.record_event(&entry(1)).await.unwrap();
        refuses_changes(&store).await;
    }
}

async fn refuses_changes(store: &Store) {
    let update = sqlx::query("UPDATE audit_events SET actor = 'mallory' WHERE seq = 1")
        .execute(store.pool())
        .await;
    let error = update.expect_err("an update is refused").to_string();
    assert!(error.contains("append-only"), "{error}");
    let delete = sqlx::query("DELETE FROM audit_events WHERE seq = 1")
        .execute(store.pool())
        .await;
    assert!(delete.is_err(), "a delete is refused");
    let (_, verdict) = events_and_verdict(store).await;
    assert!(verdict.is_ok(), "{verdict:?}");
}

// Tampering, as someone with owner rights on the database (who can drop
// the triggers) would do it. The store reads events in `seq` order.

async fn edit(store: &Store, seq: i64) {
    let forged = json!({ "approver_name": "Mallory" }).to_string();
    sqlx::query("UPDATE audit_events SET details = $1 WHERE seq = $2")
        .bind(forged)
        .bind(seq)
        .execute(store.pool())
        .await
        .unwrap();
}

async fn delete(store: &Store, seq: i64) {
    sqlx::query("DELETE FROM audit_events WHERE seq = $1")
        .bind(seq)
        .execute(store.pool())
        .await
        .unwrap();
}

/// Moves every event from `seq` on one place up and puts a forged event,
/// correctly hashed and linked to its predecessor, at `seq`.
async fn insert(store: &Store, seq: i64) {
    let events = store.audit_events(None).await.unwrap();
    let before = &events[(seq - 2) as usize];
    for shift in ["seq + 1000000", "seq - 999999"] {
        let sql = format!("UPDATE audit_events SET seq = {shift} WHERE seq >= $1");
        sqlx::query(&sql)
            .bind(seq)
            .execute(store.pool())
            .await
            .unwrap();
    }
    let details = json!({ "approver_name": "Mallory", "reason": "forged" }).to_string();
    let at = before.at + 1;
    let (actor, event) = ("mallory", "approval_recorded");
    let request = before.request_id.as_deref();
    let hash = audit::event_hash(seq, at, request, actor, event, &details, &before.hash);
    sqlx::query(
        "INSERT INTO audit_events \
         (seq, at, request_id, actor, event, details, prev_hash, hash) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(seq)
    .bind(at)
    .bind(before.request_id.clone())
    .bind(actor)
    .bind(event)
    .bind(details)
    .bind(&before.hash)
    .bind(hash)
    .execute(store.pool())
    .await
    .unwrap();
}

/// Swaps the places of events `seq` and `seq + 1`.
async fn swap(store: &Store, seq: i64) {
    for (from, to) in [(seq, -1), (seq + 1, seq), (-1, seq + 1)] {
        sqlx::query("UPDATE audit_events SET seq = $1 WHERE seq = $2")
            .bind(to)
            .bind(from)
            .execute(store.pool())
            .await
            .unwrap();
    }
}

#[derive(Debug, Clone, Copy)]
enum Tampering {
    Edit,
    Delete,
    Insert,
    Swap,
}

async fn tamper(store: &Store, how: Tampering, seq: i64) {
    support::allow_audit_tampering(store).await;
    match how {
        Tampering::Edit => edit(store, seq).await,
        Tampering::Delete => delete(store, seq).await,
        Tampering::Insert => insert(store, seq).await,
        Tampering::Swap => swap(store, seq).await,
    }
}

/// Tampers with a copy of the real run and checks that the library and
/// the CLI both name `expected`.
async fn tampered_run_reports(
    how: Tampering,
    pick: impl FnOnce(&[AuditEvent]) -> i64,
    expected: impl FnOnce(i64) -> ChainError,
) {
    let (copy, _) = copy_of_run().await;
    let events = copy.store.audit_events(None).await.unwrap();
    let seq = pick(&events);
    tamper(&copy.store, how, seq).await;

    let expected = expected(seq);
    let (_, verdict) = events_and_verdict(&copy.store).await;
    assert_eq!(verdict, Err(expected.clone()));
    let (ok, out) = cordon(&["audit", "verify"], &copy.config);
    assert!(!ok, "verify exits non-zero on tampering: {out}");
    assert_eq!(out.trim(), format!("audit chain broken: {expected}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edited_approval_is_named_by_verify() {
    tampered_run_reports(
        Tampering::Edit,
        |events| seq_of(events, "approval_recorded"),
        |seq| ChainError::Altered { seq },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_step_event_is_named_by_verify() {
    tampered_run_reports(
        Tampering::Delete,
        |events| step_events(events, "revoke_sessions")[0].seq,
        |seq| ChainError::Deleted {
            after: seq - 1,
            next: seq + 1,
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_approval_inserted_into_the_chain_is_named_by_verify() {
    tampered_run_reports(
        Tampering::Insert,
        |events| seq_of(events, "approval_recorded"),
        |seq| ChainError::Inserted { seq },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reordered_step_events_are_named_by_verify() {
    tampered_run_reports(
        Tampering::Swap,
        |events| step_events(events, "block_sign_in")[0].seq,
        |seq| ChainError::Reordered { seq },
    )
    .await;
}

fn entry(n: i64) -> AuditEntry {
    AuditEntry::new(
        format!("CR-PG-{n}"),
        ids::OSCAR,
        "approval_recorded",
        json!({ "approver_name": "Oscar Ruiz", "n": n }),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kind_of_tampering_is_named_on_postgres_too() {
    let cases = [
        (Tampering::Edit, ChainError::Altered { seq: 3 }),
        (Tampering::Delete, ChainError::Deleted { after: 2, next: 4 }),
        (Tampering::Insert, ChainError::Inserted { seq: 3 }),
        (Tampering::Swap, ChainError::Reordered { seq: 3 }),
    ];
    for (how, expected) in cases {
        let Some(store) = support::postgres_store().await else {
            return;
        };
        for n in 1..=5 {
            store.record_event(&entry(n)).await.unwrap();
        }
        assert_eq!(events_and_verdict(&store).await.1, Ok(5));
        tamper(&store, how, 3).await;
        assert_eq!(events_and_verdict(&store).await.1, Err(expected), "{how:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_writes_every_event_as_a_json_line_as_stored() {
    let (copy, _) = copy_of_run().await;
    let stored = copy.store.audit_events(None).await.unwrap();
    let (ok, out) = cordon(&["audit", "export"], &copy.config);
    assert!(ok, "{out}");
    let lines: Vec<Value> = out
        .lines()
        .map(|line| serde_json::from_str(line).expect("each line is JSON"))
        .collect();
    assert_eq!(lines.len(), stored.len());
    for (line, event) in lines.iter().zip(&stored) {
        let fields: Vec<&str> = line
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        let mut expected = vec![
            "actor",
            "at",
            "details",
            "event",
            "hash",
            "prev_hash",
            "request_id",
            "seq",
        ];
        expected.sort();
        assert_eq!(fields, expected);
        let parsed: AuditEvent = serde_json::from_value(line.clone()).unwrap();
        assert_eq!(&parsed, event);
    }
    // The export alone is enough to check the chain again.
    let exported: Vec<AuditEvent> = lines
        .into_iter()
        .map(|l| serde_json::from_value(l).unwrap())
        .collect();
    let last = exported.last().unwrap();
    assert_eq!(
        audit::verify(&exported, (last.seq, &last.hash)),
        Ok(stored.len())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ecs_export_maps_events_to_elastic_common_schema_fields() {
    let (copy, run) = copy_of_run().await;
    let stored = copy.store.audit_events(None).await.unwrap();
    let (ok, out) = cordon(&["audit", "export", "--format", "ecs"], &copy.config);
    assert!(ok, "{out}");
    let docs: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(docs.len(), stored.len());
    for (doc, event) in docs.iter().zip(&stored) {
        let timestamp = doc["@timestamp"].as_str().unwrap();
        let parsed = chrono::DateTime::parse_from_rfc3339(timestamp).unwrap();
        assert_eq!(parsed.timestamp_millis(), event.at);
        assert_eq!(doc["ecs"]["version"], "8.11.0");
        assert_eq!(doc["event"]["action"], event.event.as_str());
        assert_eq!(doc["event"]["category"], json!(["iam"]));
        assert_eq!(doc["event"]["sequence"], event.seq);
        assert_eq!(doc["user"]["id"], event.actor.as_str());
        assert_eq!(doc["labels"]["request_id"], run.request_id.as_str());
        assert_eq!(doc["cordon"]["hash"], event.hash.as_str());
        assert_eq!(doc["cordon"]["prev_hash"], event.prev_hash.as_str());
        assert_eq!(doc["cordon"]["details"], event.details);
        assert_eq!(doc["related"]["hash"], json!([event.hash, event.prev_hash]));
        let outcome = doc["event"]["outcome"].as_str().unwrap();
        assert!(["success", "failure", "unknown"].contains(&outcome));
    }
    let by_action = |action: &str| {
        docs.iter()
            .find(|d| d["event"]["action"] == action)
            .unwrap_or_else(|| panic!("no {action}"))
    };

    let received = by_action("request_received");
    assert_eq!(received["event"]["type"], json!(["creation", "user"]));
    assert_eq!(received["user"]["target"]["id"], ids::ALICE);
    assert_eq!(received["user"]["target"]["email"], ids::ALICE_UPN);
    assert_eq!(received["labels"]["incident"], ids::INC_ALICE);
    assert_eq!(received["related"]["user"], json!([ids::SAM, ids::ALICE]));
    assert!(received["cordon"]["rule"].is_string());

    let approval = by_action("approval_recorded");
    assert_eq!(approval["user"]["id"], ids::OSCAR);
    assert_eq!(approval["user"]["name"], "Oscar Ruiz");
    assert_eq!(approval["event"]["type"], json!(["allowed", "user"]));
    assert_eq!(approval["related"]["user"], json!([ids::OSCAR]));

    let block = docs
        .iter()
        .find(|d| d["cordon"]["details"]["step"] == "block_sign_in")
        .unwrap();
    assert_eq!(block["event"]["outcome"], "success");
    let graph_id = &block["cordon"]["details"]["outside_ids"]["request_id"];
    assert_eq!(block["cordon"]["graph_request_ids"], json!([graph_id]));
    assert!(block["http"]["response"]["status_code"].is_i64());

    let finished = by_action("run_finished");
    assert_eq!(finished["event"]["type"], json!(["end"]));
    assert_eq!(finished["event"]["outcome"], "success");
}
