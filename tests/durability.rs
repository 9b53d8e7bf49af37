//! The durability guarantees of a containment run, each shown on SQLite and
//! on PostgreSQL: journaling, one request per (user, incident), late and
//! double clicks, approval expiry, bounded failure handling with partial
//! containment and retry, release, and a real `cordon serve` process killed
//! with SIGKILL and restarted on the same store at three points of a run:
//! before its first step took effect, between an outside write and its
//! journal entry, and between the block and the revoke.
//!
//! PostgreSQL tests read their server from `CORDON_TEST_POSTGRES_URL` and
//! create a database of their own; without it they print that they were
//! skipped. Leases, poll intervals and timeouts are turned down so that each
//! test takes a few seconds.

use std::time::Duration;

use cordon::config::Config;
use cordon::containment::model::StepStatus;
use cordon::demo::{Sandbox, API_TOKEN};
use cordon::policy::StepKind;
use cordon::sandbox::tenant::ids;
use cordon::sandbox::{Fault, FaultKind, SimulatedTenant};
use serde_json::{json, Value};

#[path = "support/server.rs"]
mod server;
#[macro_use]
mod support;

use server::ServerProcess;
use support::{eventually, graph_writes};

/// Short leases and polls, so that takeovers and expiry happen in tests.
fn quick(config: &mut Config) {
    config.runner.lease = Duration::from_secs(1);
    config.runner.poll_interval = Duration::from_millis(100);
}

async fn sandbox(store: Option<String>, adjust: impl FnOnce(&mut Config)) -> Sandbox {
    Sandbox::start_with("127.0.0.1:0".parse().unwrap(), store, |config| {
        quick(config);
        adjust(config);
    })
    .await
    .expect("sandbox starts")
}

/// Texts posted in the thread of the approval card `card`.
fn thread_texts(tenant: &SimulatedTenant, card: &str) -> Vec<String> {
    tenant
        .connector()
        .messages()
        .iter()
        .filter(|m| m.thread_root == card && !m.is_root())
        .map(|m| cordon::sandbox::render_text(&m.activity))
        .collect()
}

/// Asks for a containment from Teams and returns its id and card id.
async fn contain(sandbox: &Sandbox, upn: &str, incident: &str) -> (String, String) {
    let sam = sandbox.user(ids::SAM, "Sam Lee");
    sam.say_in_channel(&format!("contain {upn} {incident} token theft"))
        .await
        .unwrap();
    let id = sandbox.wait_for_request(upn, incident).await.unwrap();
    let card = sandbox.wait_for_card(&id).await.unwrap();
    (id, card)
}

/// The answer Sam got in the SOC channel after he had had `before`.
async fn answer_to_sam(sandbox: &Sandbox, before: usize) -> String {
    let mut found = None;
    eventually("the bot answers in the SOC channel", || {
        let answers: Vec<_> = sandbox
            .tenant
            .connector()
            .messages()
            .into_iter()
            .filter(|m| m.channel_id == cordon::demo::SOC_CHANNEL)
            .collect();
        found = answers
            .get(before)
            .map(|m| cordon::sandbox::render_text(&m.activity));
        found.is_some()
    })
    .await;
    found.unwrap()
}

fn soc_messages(sandbox: &Sandbox) -> usize {
    sandbox
        .tenant
        .connector()
        .messages()
        .iter()
        .filter(|m| m.channel_id == cordon::demo::SOC_CHANNEL)
        .count()
}

async fn every_step_is_journaled_and_every_transition_audited(store: Option<String>) {
    let sandbox = sandbox(store, |_| {}).await;
    let (id, card) = contain(&sandbox, ids::ALICE_UPN, ids::INC_ALICE).await;
    let oscar = sandbox.user(ids::OSCAR, "Oscar Ruiz");
    oscar.click("approve", &id, &card, None).await.unwrap();
    sandbox.wait_for_state(&id, &["contained"]).await.unwrap();

    // Each step: done, first attempt, started before it finished.
    let steps = sandbox.engine.store.steps(&id).await.unwrap();
    assert_eq!(steps.len(), 6, "{steps:?}");
    for step in &steps {
        assert_eq!(step.status, StepStatus::Done, "{step:?}");
        assert_eq!(step.attempts, 1, "{step:?}");
        let (started, finished) = (step.started_at.unwrap(), step.finished_at.unwrap());
        assert!(started <= finished, "{step:?}");
    }

    // The Graph writes carry the status and the request-id Graph gave.
    let calls = sandbox.tenant.graph().calls();
    for kind in [StepKind::BlockSignIn, StepKind::RevokeSessions] {
        let step = steps.iter().find(|s| s.name == kind).unwrap();
        let request_id = step.outside_ids["request_id"].as_str().unwrap();
        let call = calls.iter().find(|c| c.request_id == request_id).unwrap();
        assert_eq!(step.http_status, call.status.map(i64::from), "{step:?}");
        assert_ne!(call.method, "GET");
        assert!(step.outside_ids["client_request_id"].is_string());
    }

    // One audit event per transition, in order, on an intact chain.
    let events: Vec<String> = sandbox
        .engine
        .store
        .audit_events(Some(&id))
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.event)
        .collect();
    let position = |name: &str| events.iter().position(|e| e == name);
    let order = [
        "request_received",
        "approval_recorded",
        "run_started",
        "run_finished",
    ];
    let positions: Vec<_> = order.iter().map(|e| position(e)).collect();
    assert!(positions.iter().all(Option::is_some), "{events:?}");
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "{events:?}");
    let done = events.iter().filter(|e| *e == "step_done").count();
    assert_eq!(done, 6, "{events:?}");
    let all = sandbox.engine.store.audit_events(None).await.unwrap();
    let (seq, hash) = sandbox.engine.store.audit_head().await.unwrap();
    assert!(cordon::audit::verify(&all, (seq, &hash)).is_ok());
}

async fn teams_webhook_and_api_share_one_request_per_user_and_incident(store: Option<String>) {
    let sandbox = sandbox(store, |_| {}).await;
    let body = json!({
        "number": ids::INC_ALICE, "affected_user": ids::ALICE_UPN,
        "requested_by": ids::SAM_UPN, "justification": "EDR alert",
    })
    .to_string();

    // ServiceNow delivers the same webhook three times.
    let sent_at = chrono::Utc::now().timestamp();
    let first = cordon::demo::send_webhook_at(&sandbox, &body, sent_at);
    assert_eq!(first.await.unwrap(), 202);
    let id = sandbox
        .wait_for_request(ids::ALICE_UPN, ids::INC_ALICE)
        .await
        .unwrap();
    // Each redelivery is signed anew, with a timestamp of its own.
    for later in 1..=2 {
        let redelivered = sent_at + later;
        let status = cordon::demo::send_webhook_at(&sandbox, &body, redelivered);
        assert_eq!(status.await.unwrap(), 200);
    }

    // The API asks again and is told the existing request and its state.
    let answer = reqwest::Client::new()
        .post(format!("{}/api/v1/containments", sandbox.base_url))
        .bearer_auth(API_TOKEN)
        .header("content-type", "application/json")
        .body(body.replace("EDR alert", "SIEM rule 42"))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    let answer: Value = answer.json().await.unwrap();
    assert_eq!(answer["request_id"], id.as_str());
    assert_eq!(answer["state"], "awaiting_approval");

    // So does a Teams command, in words.
    let before = soc_messages(&sandbox);
    let sam = sandbox.user(ids::SAM, "Sam Lee");
    let text = format!("contain {} {} again", ids::ALICE_UPN, ids::INC_ALICE);
    sam.say_in_channel(&text).await.unwrap();
    let said = answer_to_sam(&sandbox, before).await;
    assert!(
        said.contains("already exists") && said.contains(&id),
        "{said}"
    );
    assert!(said.to_lowercase().contains("awaiting approval"), "{said}");

    let found = sandbox.find(ids::ALICE_UPN, ids::INC_ALICE).await.unwrap();
    assert_eq!(found.len(), 1);
    let cards = sandbox
        .tenant
        .connector()
        .messages()
        .iter()
        .filter(|m| m.is_root() && m.channel_id == cordon::demo::APPROVALS_CHANNEL)
        .count();
    assert_eq!(cards, 1, "one approval card for five asks");
}

async fn double_stale_and_late_clicks_change_nothing_and_say_why(store: Option<String>) {
    let sandbox = sandbox(store, |_| {}).await;
    let (id, card) = contain(&sandbox, ids::ADELE_UPN, ids::INC_ADELE).await;
    let oscar = sandbox.user(ids::OSCAR, "Oscar Ruiz");
    let priya = sandbox.user(ids::PRIYA, "Priya Shah");
    let message = "application/vnd.microsoft.activity.message";

    oscar.click("approve", &id, &card, None).await.unwrap();
    let double = oscar.click("approve", &id, &card, None).await.unwrap();
    assert_eq!(double.body["type"], message);
    let why = double.body["value"].as_str().unwrap();
    assert!(why.contains("already approved"), "{why}");
    let approvals = sandbox.engine.store.approvals(&id).await.unwrap();
    assert_eq!(approvals.len(), 1, "the double click recorded nothing");

    priya.click("approve", &id, &card, None).await.unwrap();
    sandbox.wait_for_state(&id, &["contained"]).await.unwrap();
    let writes = graph_writes(&sandbox.tenant, ids::ADELE);

    // A reject on the stale approval card, and an approve after the end.
    for (who, verb) in [(&priya, "reject"), (&oscar, "approve")] {
        let late = who.click(verb, &id, &card, Some("too late")).await.unwrap();
        assert_eq!(late.body["type"], message);
        let why = late.body["value"].as_str().unwrap();
        assert!(
            why.contains("already contained") && why.contains("changed nothing"),
            "{why}"
        );
    }
    let request = sandbox.engine.store.require(&id).await.unwrap();
    assert_eq!(request.state.as_str(), "contained");
    assert_eq!(sandbox.engine.store.approvals(&id).await.unwrap().len(), 2);
    assert_eq!(graph_writes(&sandbox.tenant, ids::ADELE), writes);
    let refusals = sandbox
        .engine
        .store
        .audit_events(Some(&id))
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.event == "approval_refused")
        .count();
    assert_eq!(
        refusals, 3,
        "the double click and both late ones are audited"
    );
}

async fn an_unanswered_request_expires_everywhere_and_never_runs(store: Option<String>) {
    let sandbox = sandbox(store, |config| {
        config.policy.approval_timeout = Duration::from_millis(800);
    })
    .await;
    let (id, card) = contain(&sandbox, ids::ALICE_UPN, ids::INC_ALICE).await;
    sandbox.wait_for_state(&id, &["expired"]).await.unwrap();

    // The thread, the card and the ticket say so.
    eventually("the thread says the request expired", || {
        thread_texts(&sandbox.tenant, &card)
            .iter()
            .any(|t| t.contains("Expired"))
    })
    .await;
    let root = sandbox.tenant.connector().message(&card).unwrap();
    let shown = cordon::sandbox::render_text(&root.activity);
    assert!(shown.contains("Expired"), "{shown}");
    let notes = sandbox.tenant.servicenow().work_notes(ids::INC_ALICE);
    assert!(
        notes
            .iter()
            .any(|n| n.contains("expired without approval") && n.contains(&id)),
        "{notes:?}"
    );

    // An approval that arrives afterwards is refused and runs nothing.
    let oscar = sandbox.user(ids::OSCAR, "Oscar Ruiz");
    let late = oscar.click("approve", &id, &card, None).await.unwrap();
    let why = late.body["value"].as_str().unwrap();
    assert!(why.contains("already expired"), "{why}");
    let steps = sandbox.engine.store.steps(&id).await.unwrap();
    assert!(
        steps.iter().all(|s| s.status == StepStatus::Skipped),
        "{steps:?}"
    );
    assert!(graph_writes(&sandbox.tenant, ids::ALICE).is_empty());
    assert_eq!(
        sandbox.engine.store.require(&id).await.unwrap().run_count,
        0
    );
}

async fn block_done_and_revoke_failed_is_partial_until_an_approver_retries(store: Option<String>) {
    let sandbox = sandbox(store, |_| {}).await;
    let revoke = format!("/users/{}/revokeSignInSessions", ids::ALICE);
    sandbox
        .tenant
        .graph()
        .inject(Fault::new(FaultKind::status(403)).on("POST", &revoke));
    let (id, card) = contain(&sandbox, ids::ALICE_UPN, ids::INC_ALICE).await;
    let oscar = sandbox.user(ids::OSCAR, "Oscar Ruiz");
    oscar.click("approve", &id, &card, None).await.unwrap();
    let partial = sandbox
        .wait_for_state(&id, &["partially_contained"])
        .await
        .unwrap();
    let outcome = partial["request"]["outcome"].as_str().unwrap();
    assert!(
        outcome.contains("sessions may still be active"),
        "{outcome}"
    );

    // The thread has the exact failure: status, code and Graph request-id.
    let failed_call = sandbox
        .tenant
        .graph()
        .calls()
        .into_iter()
        .find(|c| c.path.ends_with("revokeSignInSessions") && c.status == Some(403))
        .unwrap();
    eventually("the thread has the exact failure", || {
        thread_texts(&sandbox.tenant, &card).iter().any(|t| {
            t.contains("403")
                && t.contains("Authorization_RequestDenied")
                && t.contains(&failed_call.request_id)
        })
    })
    .await;

    // The incident stays open, with a note that sessions may be active.
    let incident = sandbox
        .tenant
        .servicenow()
        .incident(ids::INC_ALICE)
        .unwrap();
    assert_eq!(incident["state"], "2", "in progress, not resolved");
    let notes = sandbox.tenant.servicenow().work_notes(ids::INC_ALICE);
    assert!(
        notes
            .iter()
            .any(|n| n.contains("sessions may still be active")),
        "{notes:?}"
    );

    // Someone who is not an approver cannot retry; an approver can.
    let sam = sandbox.user(ids::SAM, "Sam Lee");
    let refused = sam.click("retry", &id, &card, None).await.unwrap();
    assert!(refused.body["value"]
        .as_str()
        .unwrap()
        .contains("Only an approver"));
    let answer = oscar.click("retry", &id, &card, None).await.unwrap();
    assert_eq!(
        answer.body["type"],
        "application/vnd.microsoft.card.adaptive"
    );
    sandbox.wait_for_state(&id, &["contained"]).await.unwrap();

    let writes = graph_writes(&sandbox.tenant, ids::ALICE);
    let patches = writes.iter().filter(|w| w.starts_with("PATCH")).count();
    let revokes = writes
        .iter()
        .filter(|w| w.ends_with("revokeSignInSessions"))
        .count();
    assert_eq!((patches, revokes), (1, 2), "block not repeated: {writes:?}");
    let steps = sandbox.engine.store.steps(&id).await.unwrap();
    assert!(
        steps.iter().all(|s| s.status == StepStatus::Done),
        "{steps:?}"
    );
    eventually("the thread says who retried and how it ended", || {
        let texts = thread_texts(&sandbox.tenant, &card);
        texts.iter().any(|t| t.contains("asked to retry"))
            && texts.iter().any(|t| t.starts_with("**Contained**"))
    })
    .await;
    let texts = thread_texts(&sandbox.tenant, &card);
    assert!(
        !texts.iter().any(|t| t.contains("resumed")),
        "a retry is no resume"
    );
    let notes = sandbox.tenant.servicenow().work_notes(ids::INC_ALICE);
    let summaries = notes
        .iter()
        .filter(|n| n.contains("Summary of the containment"));
    assert_eq!(
        summaries.count(),
        2,
        "the retry reports to the ticket again"
    );
}

async fn a_step_stops_after_its_bounded_attempts_and_the_request_fails(store: Option<String>) {
    let sandbox = sandbox(store, |_| {}).await;
    let user = format!("/users/{}", ids::ALICE);
    let unavailable = FaultKind::Status {
        status: 503,
        retry_after: Some(0),
        code: "ServiceUnavailable".into(),
    };
    sandbox
        .tenant
        .graph()
        .inject(Fault::new(unavailable).on("PATCH", &user).times(50));
    let (id, card) = contain(&sandbox, ids::ALICE_UPN, ids::INC_ALICE).await;
    let oscar = sandbox.user(ids::OSCAR, "Oscar Ruiz");
    oscar.click("approve", &id, &card, None).await.unwrap();
    let failed = sandbox.wait_for_state(&id, &["failed"]).await.unwrap();
    let outcome = failed["request"]["outcome"].as_str().unwrap();
    assert!(outcome.contains("nothing took effect"), "{outcome}");

    // The sandbox's retry policy allows four attempts in all.
    let writes = graph_writes(&sandbox.tenant, ids::ALICE);
    assert_eq!(writes.len(), 4, "{writes:?}");
    assert!(
        writes.iter().all(|w| w.starts_with("PATCH")),
        "revoke never ran"
    );
    let steps = sandbox.engine.store.steps(&id).await.unwrap();
    let block = steps
        .iter()
        .find(|s| s.name == StepKind::BlockSignIn)
        .unwrap();
    assert_eq!(block.status, StepStatus::Failed);
    assert_eq!(block.http_status, Some(503));
    let revoke = steps
        .iter()
        .find(|s| s.name == StepKind::RevokeSessions)
        .unwrap();
    assert_eq!(revoke.status, StepStatus::Skipped);
}

async fn a_step_over_its_time_budget_is_failed_instead_of_awaited(store: Option<String>) {
    let sandbox = sandbox(store, |config| {
        config.runner.step_timeout = Duration::from_millis(300);
    })
    .await;
    let user = format!("/users/{}", ids::ALICE);
    let slow = FaultKind::Slow(Duration::from_secs(4));
    sandbox
        .tenant
        .graph()
        .inject(Fault::new(slow).on("PATCH", &user));
    let (id, card) = contain(&sandbox, ids::ALICE_UPN, ids::INC_ALICE).await;
    let oscar = sandbox.user(ids::OSCAR, "Oscar Ruiz");
    oscar.click("approve", &id, &card, None).await.unwrap();
    sandbox.wait_for_state(&id, &["failed"]).await.unwrap();
    let steps = sandbox.engine.store.steps(&id).await.unwrap();
    let block = steps
        .iter()
        .find(|s| s.name == StepKind::BlockSignIn)
        .unwrap();
    let error = block.error.as_deref().unwrap();
    assert!(error.contains("runner.step_timeout"), "{error}");
}

async fn a_release_is_approved_like_a_containment_and_links_to_it(store: Option<String>) {
    let sandbox = sandbox(store, |_| {}).await;
    let (contained, card) = contain(&sandbox, ids::ALICE_UPN, ids::INC_ALICE).await;
    let oscar = sandbox.user(ids::OSCAR, "Oscar Ruiz");
    oscar
        .click("approve", &contained, &card, None)
        .await
        .unwrap();
    sandbox
        .wait_for_state(&contained, &["contained"])
        .await
        .unwrap();

    // The release waits for a human, though it was asked for plainly.
    let sam = sandbox.user(ids::SAM, "Sam Lee");
    let text = format!(
        "release {} {} false positive",
        ids::ALICE_UPN,
        ids::INC_ALICE
    );
    sam.say_in_channel(&text).await.unwrap();
    let kind = cordon::policy::RequestKind::Release;
    let mut found = None;
    for _ in 0..400 {
        let store = &sandbox.engine.store;
        found = store
            .find_by_key(kind, ids::ALICE_UPN, ids::INC_ALICE)
            .await
            .unwrap();
        if found.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let release = found.expect("a release request");
    assert_eq!(release.state.as_str(), "awaiting_approval");
    assert_eq!(
        release.related_request_id.as_deref(),
        Some(contained.as_str())
    );
    assert!(
        !sandbox
            .tenant
            .graph()
            .user(ids::ALICE)
            .unwrap()
            .account_enabled
    );
    let release_card = sandbox.wait_for_card(&release.id).await.unwrap();
    eventually("the release thread names the containment", || {
        thread_texts(&sandbox.tenant, &release_card)
            .iter()
            .any(|t| t.contains(&contained))
    })
    .await;

    // Once approved, sign-in is back and the ticket says what was undone.
    oscar
        .click("approve", &release.id, &release_card, None)
        .await
        .unwrap();
    sandbox
        .wait_for_state(&release.id, &["released"])
        .await
        .unwrap();
    assert!(
        sandbox
            .tenant
            .graph()
            .user(ids::ALICE)
            .unwrap()
            .account_enabled
    );
    let notes = sandbox.tenant.servicenow().work_notes(ids::INC_ALICE);
    let linked = notes
        .iter()
        .filter(|n| n.contains(&release.id) && n.contains(&contained))
        .count();
    assert!(linked >= 2, "start and summary notes link it: {notes:?}");
}

/// A directory for server logs, the store (a SQLite file in that directory
/// unless `store` names one) and a simulated tenant, for tests that run
/// `cordon serve` processes.
async fn for_server_processes(
    store: Option<String>,
) -> (tempfile::TempDir, String, SimulatedTenant) {
    let dir = tempfile::tempdir().unwrap();
    let store =
        store.unwrap_or_else(|| format!("sqlite://{}", dir.path().join("cordon.db").display()));
    let tenant = SimulatedTenant::start("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    (dir, store, tenant)
}

/// A real `cordon serve` is killed while Graph holds the answer to the
/// block sign-in write (the write has landed, the journal does not know),
/// then started again on the same store.
async fn a_server_killed_mid_run_resumes_without_repeating_graph_writes(store: Option<String>) {
    let (dir, store, tenant) = for_server_processes(store).await;
    let user = format!("/users/{}", ids::ALICE);
    let late = FaultKind::AnswerLate(Duration::from_secs(30));
    tenant.graph().inject(Fault::new(late).on("PATCH", &user));

    let mut first = ServerProcess::start(&tenant, &store, dir.path(), "replica-a").await;
    let id = first.propose(ids::ALICE_UPN, ids::INC_ALICE).await;
    let card = first.wait_for_card(&id).await;
    first
        .user(ids::OSCAR, "Oscar Ruiz")
        .click("approve", &id, &card, None)
        .await
        .unwrap();
    eventually("the block sign-in write lands", || {
        !tenant.graph().user(ids::ALICE).unwrap().account_enabled
    })
    .await;
    let journal = first.store().await.steps(&id).await.unwrap();
    let block = journal
        .iter()
        .find(|s| s.name == StepKind::BlockSignIn)
        .unwrap();
    assert_eq!(
        block.status,
        StepStatus::Running,
        "killed before the journal knew"
    );
    first.kill();

    let mut second = ServerProcess::start(&tenant, &store, dir.path(), "replica-b").await;
    second.wait_for_state(&id, "contained").await;

    let writes = graph_writes(&tenant, ids::ALICE);
    let patches = writes.iter().filter(|w| w.starts_with("PATCH")).count();
    let revokes = writes
        .iter()
        .filter(|w| w.ends_with("revokeSignInSessions"))
        .count();
    assert_eq!((patches, revokes), (1, 1), "{writes:?}");
    let journal = second.store().await.steps(&id).await.unwrap();
    let block = journal
        .iter()
        .find(|s| s.name == StepKind::BlockSignIn)
        .unwrap();
    assert_eq!(block.attempts, 2);
    assert!(
        block.detail.as_deref().unwrap().contains("not repeated"),
        "{block:?}"
    );

    // No ServiceNow note is lost; the thread says the run resumed.
    let notes = tenant.servicenow().work_notes(ids::INC_ALICE);
    let start = notes.iter().filter(|n| n.contains("approved by")).count();
    let summary = notes
        .iter()
        .filter(|n| n.contains("Summary of the containment"));
    assert_eq!((start, summary.count()), (1, 1), "{notes:?}");
    let texts = thread_texts(&tenant, &card);
    assert!(texts.iter().any(|t| t.contains("resumed")), "{texts:?}");
    let events = second.store().await.audit_events(None).await.unwrap();
    let (seq, hash) = second.store().await.audit_head().await.unwrap();
    assert!(cordon::audit::verify(&events, (seq, &hash)).is_ok());
    second.kill();
}

/// Starts replica A on `store`, has Oscar approve a containment of Alice,
/// waits until the journal of the run shows `step` running with every
/// earlier step done and `held` says the step's outside call has reached
/// the simulator, and kills A with SIGKILL there. Then starts replica B on
/// the same store and waits until the request is contained.
async fn killed_while_running(
    tenant: &SimulatedTenant,
    store: &str,
    dir: &std::path::Path,
    step: StepKind,
    held: impl Fn() -> bool,
) -> (String, String, ServerProcess) {
    let mut first = ServerProcess::start(tenant, store, dir, "replica-a").await;
    let id = first.propose(ids::ALICE_UPN, ids::INC_ALICE).await;
    let card = first.wait_for_card(&id).await;
    first
        .user(ids::OSCAR, "Oscar Ruiz")
        .click("approve", &id, &card, None)
        .await
        .unwrap();
    let journal_store = first.store().await;
    let mut reached = false;
    for _ in 0..400 {
        let journal = journal_store.steps(&id).await.unwrap();
        let at = journal.iter().position(|s| s.name == step);
        if let Some(at) = at {
            let earlier_done = journal[..at].iter().all(|s| s.status == StepStatus::Done);
            if journal[at].status == StepStatus::Running && earlier_done && held() {
                reached = true;
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(reached, "the run never held at {step:?}");
    first.kill();

    let second = ServerProcess::start(tenant, store, dir, "replica-b").await;
    second.wait_for_state(&id, "contained").await;
    (id, card, second)
}

/// Graph's successful block and revoke calls about Alice.
fn applied_block_and_revoke(tenant: &SimulatedTenant) -> (usize, usize) {
    let user = format!("/users/{}", ids::ALICE);
    let applied = |method: &str, suffix: &str| {
        tenant
            .graph()
            .calls()
            .iter()
            .filter(|c| c.method == method && c.path.ends_with(suffix))
            .filter(|c| c.status.is_some_and(|s| s < 300))
            .count()
    };
    (
        applied("PATCH", &user),
        applied("POST", &format!("{user}/revokeSignInSessions")),
    )
}

async fn a_server_killed_before_its_first_step_took_effect_notes_the_ticket_once(
    store: Option<String>,
) {
    let (dir, store, tenant) = for_server_processes(store).await;
    let incident = format!("/incident/{}", ids::INC_ALICE_SYS_ID);
    let held = FaultKind::Delay(Duration::from_secs(30));
    tenant
        .servicenow()
        .inject(Fault::new(held).on("PATCH", &incident));

    let (id, card, mut second) = killed_while_running(
        &tenant,
        &store,
        dir.path(),
        StepKind::ServicenowStart,
        || tenant.servicenow().pending_faults() == 0,
    )
    .await;

    assert_eq!(applied_block_and_revoke(&tenant), (1, 1));
    let notes = tenant.servicenow().work_notes(ids::INC_ALICE);
    let start = notes.iter().filter(|n| n.contains("approved by")).count();
    assert_eq!(start, 1, "{notes:?}");
    let texts = thread_texts(&tenant, &card);
    assert!(texts.iter().any(|t| t.contains("resumed")), "{texts:?}");
    let journal = second.store().await.steps(&id).await.unwrap();
    assert!(
        journal.iter().all(|s| s.status == StepStatus::Done),
        "{journal:?}"
    );
    second.kill();
}

async fn a_server_killed_between_block_and_revoke_revokes_exactly_once(store: Option<String>) {
    let (dir, store, tenant) = for_server_processes(store).await;
    let held = FaultKind::Delay(Duration::from_secs(30));
    let revoke = Fault::new(held).on("POST", "revokeSignInSessions");
    tenant.graph().inject(revoke);

    let (id, _card, mut second) = killed_while_running(
        &tenant,
        &store,
        dir.path(),
        StepKind::RevokeSessions,
        || tenant.graph().pending_faults() == 0,
    )
    .await;

    assert_eq!(applied_block_and_revoke(&tenant), (1, 1));
    let alice = tenant.graph().user(ids::ALICE).unwrap();
    assert!(!alice.account_enabled);
    let journal = second.store().await.steps(&id).await.unwrap();
    let block = journal
        .iter()
        .find(|s| s.name == StepKind::BlockSignIn)
        .unwrap();
    assert_eq!(block.attempts, 1, "a finished step is not run again");
    let events = second.store().await.audit_events(None).await.unwrap();
    let (seq, hash) = second.store().await.audit_head().await.unwrap();
    assert!(cordon::audit::verify(&events, (seq, &hash)).is_ok());
    second.kill();
}

on_both_backends!(
    every_step_is_journaled_and_every_transition_audited,
    teams_webhook_and_api_share_one_request_per_user_and_incident,
    double_stale_and_late_clicks_change_nothing_and_say_why,
    an_unanswered_request_expires_everywhere_and_never_runs,
    block_done_and_revoke_failed_is_partial_until_an_approver_retries,
    a_step_stops_after_its_bounded_attempts_and_the_request_fails,
    a_step_over_its_time_budget_is_failed_instead_of_awaited,
    a_release_is_approved_like_a_containment_and_links_to_it,
    a_server_killed_mid_run_resumes_without_repeating_graph_writes,
    a_server_killed_before_its_first_step_took_effect_notes_the_ticket_once,
    a_server_killed_between_block_and_revoke_revokes_exactly_once,
);
