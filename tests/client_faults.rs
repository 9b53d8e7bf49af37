//! The Graph and ServiceNow clients against the simulated tenant with
//! injected faults: which answers are retried and how long the client
//! waits, what error reaches the caller, the Teams thread and the ticket,
//! and that no side effect happens twice.
//!
//! The first half drives the clients directly over real HTTP; the second
//! runs whole containments through the sandbox (Teams in, Graph and
//! ServiceNow out) with a fault on one step.

use std::time::Duration;

use cordon::demo::Sandbox;
use cordon::graph::{GraphClient, GraphError, GraphSettings};
use cordon::retry::RetryPolicy;
use cordon::sandbox::tenant::ids;
use cordon::sandbox::{Fault, FaultKind, RecordedCall, SimulatedTenant};
use cordon::servicenow::{ServiceNowAuth, ServiceNowClient, ServiceNowSettings};
use secrecy::SecretString;
use serde_json::Value;

async fn tenant() -> SimulatedTenant {
    SimulatedTenant::start("127.0.0.1:0".parse().unwrap())
        .await
        .expect("simulated tenant starts")
}

/// A retry policy whose waits are short but whose cap lets a one-second
/// `Retry-After` through unchanged.
fn policy() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 4,
        base_delay: Duration::from_millis(5),
        max_delay: Duration::from_secs(2),
        max_total: Duration::from_secs(5),
    }
}

fn graph(tenant: &SimulatedTenant, timeout: Duration) -> GraphClient {
    let settings = GraphSettings {
        base_url: tenant.graph_base_url(),
        token_url: tenant.token_url(),
        client_id: ids::GRAPH_CLIENT_ID.into(),
        client_secret: SecretString::from(ids::GRAPH_CLIENT_SECRET.to_string()),
        retry: policy(),
        timeout,
    };
    GraphClient::new(settings, reqwest::Client::new())
}

fn servicenow(tenant: &SimulatedTenant, timeout: Duration) -> ServiceNowClient {
    let settings = ServiceNowSettings {
        instance_url: tenant.servicenow_url(),
        auth: ServiceNowAuth::Basic {
            username: ids::SERVICENOW_USER.into(),
            password: SecretString::from(ids::SERVICENOW_PASSWORD.to_string()),
        },
        retry: policy(),
        timeout,
    };
    ServiceNowClient::new(settings, reqwest::Client::new())
}

/// Graph calls whose path ends with `suffix` and that used `method`.
fn graph_calls(tenant: &SimulatedTenant, method: &str, suffix: &str) -> Vec<RecordedCall> {
    tenant
        .graph()
        .calls()
        .into_iter()
        .filter(|c| c.method == method && c.path.ends_with(suffix))
        .collect()
}

fn alice_path() -> String {
    format!("users/{}", ids::ALICE)
}

#[tokio::test]
async fn throttling_with_retry_after_waits_exactly_what_graph_asked() {
    let tenant = tenant().await;
    let graph = graph(&tenant, Duration::from_secs(5));
    let fault = Fault::new(FaultKind::throttled(1)).on("PATCH", &alice_path());
    tenant.graph().inject(fault);

    let receipt = graph.set_account_enabled(ids::ALICE, false).await.unwrap();

    assert_eq!(receipt.attempts, 2);
    assert_eq!(receipt.waited_ms, 1000, "Retry-After: 1 is honoured");
    let patches = graph_calls(&tenant, "PATCH", &alice_path());
    assert_eq!(patches.len(), 2);
    assert_eq!(patches[0].status, Some(429));
    assert_eq!(patches[1].status, Some(204));
    let ids: Vec<_> = patches
        .iter()
        .map(|c| c.client_request_id.clone())
        .collect();
    assert_eq!(ids[0], ids[1], "one client-request-id across the retries");
    assert_eq!(ids[0].as_deref(), Some(receipt.client_request_id.as_str()));
    assert_eq!(
        receipt.request_id.as_deref(),
        Some(patches[1].request_id.as_str())
    );
    assert!(receipt.date.is_some(), "Graph's Date header is kept");
    assert!(!tenant.graph().user(ids::ALICE).unwrap().account_enabled);
}

#[tokio::test]
async fn throttling_without_retry_after_backs_off_exponentially_with_jitter() {
    let tenant = tenant().await;
    let graph = graph(&tenant, Duration::from_secs(5));
    let fault = Fault::new(FaultKind::status(429))
        .on("POST", "revokeSignInSessions")
        .times(3);
    tenant.graph().inject(fault);

    let receipt = graph.revoke_sign_in_sessions(ids::ALICE).await.unwrap();

    // Waits of 5, 10 and 20 ms at most, each at least half its ceiling.
    assert_eq!(receipt.attempts, 4);
    assert!(
        (17..=35).contains(&receipt.waited_ms),
        "{}",
        receipt.waited_ms
    );
    let posts = graph_calls(&tenant, "POST", "revokeSignInSessions");
    let statuses: Vec<_> = posts.iter().map(|c| c.status).collect();
    assert_eq!(statuses, [Some(429), Some(429), Some(429), Some(200)]);
}

#[tokio::test]
async fn unavailable_graph_is_retried_until_the_budget_is_spent_then_reported() {
    let tenant = tenant().await;
    let graph = graph(&tenant, Duration::from_secs(5));
    let fault = Fault::new(FaultKind::status(503))
        .on("PATCH", &alice_path())
        .times(10);
    tenant.graph().inject(fault);

    let error = graph
        .set_account_enabled(ids::ALICE, false)
        .await
        .unwrap_err();

    assert_eq!(error.status(), Some(503));
    let patches = graph_calls(&tenant, "PATCH", &alice_path());
    assert_eq!(patches.len(), 4, "max_attempts of the policy");
    let last = &patches[3];
    assert_eq!(error.request_id(), Some(last.request_id.as_str()));
    let text = error.to_string();
    assert!(
        text.contains("503") && text.contains(&last.request_id),
        "{text}"
    );
    assert!(tenant.graph().user(ids::ALICE).unwrap().account_enabled);
}

#[tokio::test]
async fn a_refusal_is_not_retried_and_keeps_graphs_code_and_message() {
    let tenant = tenant().await;
    tenant
        .login()
        .withdraw_graph_role("User.EnableDisableAccount.All");
    let graph = graph(&tenant, Duration::from_secs(5));

    let error = graph
        .set_account_enabled(ids::ALICE, false)
        .await
        .unwrap_err();

    assert_eq!(error.status(), Some(403));
    assert_eq!(error.code(), Some("Authorization_RequestDenied"));
    assert!(
        error.to_string().contains("Insufficient privileges"),
        "{error}"
    );
    assert!(!error.is_transient());
    assert_eq!(graph_calls(&tenant, "PATCH", &alice_path()).len(), 1);
}

#[tokio::test]
async fn a_timed_out_call_is_retried_and_takes_effect_once() {
    let tenant = tenant().await;
    let graph = graph(&tenant, Duration::from_millis(300));
    let fault = Fault::new(FaultKind::Delay(Duration::from_secs(2))).on("PATCH", &alice_path());
    tenant.graph().inject(fault);

    let receipt = graph.set_account_enabled(ids::ALICE, false).await.unwrap();

    assert_eq!(receipt.attempts, 2);
    assert!(!tenant.graph().user(ids::ALICE).unwrap().account_enabled);
}

#[tokio::test]
async fn a_reset_connection_is_retried_for_a_read() {
    let tenant = tenant().await;
    let graph = graph(&tenant, Duration::from_secs(5));
    let fault = Fault::new(FaultKind::Reset).on("GET", &alice_path());
    tenant.graph().inject(fault);

    let user = graph.get_user(ids::ALICE).await.unwrap().unwrap();

    assert_eq!(user.id, ids::ALICE);
    let gets = graph_calls(&tenant, "GET", &alice_path());
    assert_eq!(gets.len(), 2);
    assert_eq!(gets[0].status, None, "the first connection was reset");
}

#[tokio::test]
async fn a_revocation_whose_answer_was_lost_is_not_sent_again_by_the_client() {
    let tenant = tenant().await;
    let graph = graph(&tenant, Duration::from_secs(5));
    let fault =
        Fault::new(FaultKind::AfterEffect { status: 504 }).on("POST", "revokeSignInSessions");
    tenant.graph().inject(fault);

    let error = graph.revoke_sign_in_sessions(ids::ALICE).await.unwrap_err();

    assert!(error.may_have_taken_effect(), "{error}");
    assert_eq!(
        graph_calls(&tenant, "POST", "revokeSignInSessions").len(),
        1
    );
}

#[tokio::test]
async fn malformed_json_is_a_clear_error_with_the_request_id() {
    let tenant = tenant().await;
    let graph = graph(&tenant, Duration::from_secs(5));
    tenant
        .graph()
        .inject(Fault::new(FaultKind::MalformedJson).on("GET", &alice_path()));

    let error = graph.get_user(ids::ALICE).await.unwrap_err();

    assert!(
        matches!(error, GraphError::Decode { status: 200, .. }),
        "{error}"
    );
    let call = &graph_calls(&tenant, "GET", &alice_path())[0];
    assert_eq!(error.request_id(), Some(call.request_id.as_str()));
    assert!(error.to_string().contains("unreadable body"), "{error}");
}

#[tokio::test]
async fn an_expired_token_is_renewed_once_and_the_call_repeated() {
    let tenant = tenant().await;
    let graph = graph(&tenant, Duration::from_secs(5));
    graph.get_user(ids::ALICE).await.unwrap();
    let issued = tenant.login().issued_count(ids::GRAPH_SCOPE);
    tenant.login().expire_all();

    let receipt = graph.set_account_enabled(ids::ALICE, false).await.unwrap();

    assert_eq!(tenant.login().issued_count(ids::GRAPH_SCOPE), issued + 1);
    assert_eq!(receipt.attempts, 2);
    let patches = graph_calls(&tenant, "PATCH", &alice_path());
    let statuses: Vec<_> = patches.iter().map(|c| c.status).collect();
    assert_eq!(statuses, [Some(401), Some(204)]);
}

#[tokio::test]
async fn a_token_endpoint_that_is_down_is_retried() {
    let tenant = tenant().await;
    let graph = graph(&tenant, Duration::from_secs(5));
    tenant.login().inject(Fault::new(FaultKind::status(503)));

    graph.get_user(ids::ALICE).await.unwrap();

    let statuses: Vec<_> = tenant.login().calls().iter().map(|c| c.status).collect();
    assert_eq!(statuses, [Some(503), Some(200)]);
}

fn alice_incident(tenant: &SimulatedTenant) -> String {
    let incident = tenant.servicenow().incident(ids::INC_ALICE).unwrap();
    incident["sys_id"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn a_work_note_whose_answer_was_lost_is_found_in_the_journal_not_appended_twice() {
    let tenant = tenant().await;
    let snow = servicenow(&tenant, Duration::from_secs(5));
    let sys_id = alice_incident(&tenant);
    let fault = Fault::new(FaultKind::AfterEffect { status: 504 }).on("PATCH", &sys_id);
    tenant.servicenow().inject(fault);

    snow.add_work_note(&sys_id, "[Cordon r-1] sign-in blocked")
        .await
        .unwrap();

    let notes = tenant.servicenow().work_notes(ids::INC_ALICE);
    assert_eq!(notes, ["[Cordon r-1] sign-in blocked"]);
    let journal_read = tenant
        .servicenow()
        .calls()
        .into_iter()
        .any(|c| c.path.ends_with("sys_journal_field"));
    assert!(journal_read, "the journal was read before deciding");
}

#[tokio::test]
async fn a_work_note_that_timed_out_without_effect_is_sent_again_once() {
    let tenant = tenant().await;
    let snow = servicenow(&tenant, Duration::from_millis(300));
    let sys_id = alice_incident(&tenant);
    let fault = Fault::new(FaultKind::Delay(Duration::from_secs(2))).on("PATCH", &sys_id);
    tenant.servicenow().inject(fault);

    snow.add_work_note(&sys_id, "[Cordon r-2] summary")
        .await
        .unwrap();

    assert_eq!(
        tenant.servicenow().work_notes(ids::INC_ALICE),
        ["[Cordon r-2] summary"]
    );
}

#[tokio::test]
async fn servicenow_throttling_is_retried_and_errors_keep_servicenows_message() {
    let tenant = tenant().await;
    let snow = servicenow(&tenant, Duration::from_secs(5));
    let sys_id = alice_incident(&tenant);
    tenant
        .servicenow()
        .inject(Fault::new(FaultKind::status(429)).on("PATCH", &sys_id));
    snow.add_work_note(&sys_id, "first").await.unwrap();
    assert_eq!(tenant.servicenow().work_notes(ids::INC_ALICE), ["first"]);

    let missing = "0123456789abcdef0123456789abcdef";
    let error = snow.add_work_note(missing, "second").await.unwrap_err();
    assert_eq!(error.status(), Some(404));
    assert!(error.to_string().contains("No Record found"), "{error}");
}

#[tokio::test]
async fn servicenow_oauth_token_is_renewed_after_a_401() {
    let tenant = tenant().await;
    let settings = ServiceNowSettings {
        instance_url: tenant.servicenow_url(),
        auth: ServiceNowAuth::OAuth {
            client_id: ids::SERVICENOW_CLIENT_ID.into(),
            client_secret: SecretString::from(ids::SERVICENOW_CLIENT_SECRET.to_string()),
        },
        retry: policy(),
        timeout: Duration::from_secs(5),
    };
    let snow = ServiceNowClient::new(settings, reqwest::Client::new());
    snow.find_incident(ids::INC_ALICE).await.unwrap().unwrap();
    tenant.servicenow().expire_tokens();

    let incident = snow.find_incident(ids::INC_ALICE).await.unwrap().unwrap();

    assert_eq!(incident.number, ids::INC_ALICE);
    let tokens = tenant
        .servicenow()
        .calls()
        .into_iter()
        .filter(|c| c.path.ends_with("oauth_token.do"))
        .count();
    assert_eq!(tokens, 2);
}

// ---- whole containments through the sandbox -------------------------------

async fn sandbox() -> Sandbox {
    Sandbox::start("127.0.0.1:0".parse().unwrap(), None)
        .await
        .expect("sandbox starts")
}

/// Asks for Alice's containment in Teams and returns the request id and
/// its card, without approving it.
async fn alice_requested(sandbox: &Sandbox) -> (String, String) {
    let sam = sandbox.user(ids::SAM, "Sam Lee");
    let text = "contain alice@contoso.com INC0010001 token theft";
    assert_eq!(sam.say_in_channel(text).await.unwrap().status, 200);
    let id = sandbox
        .wait_for_request("alice@contoso.com", ids::INC_ALICE)
        .await
        .unwrap();
    let card = sandbox.wait_for_card(&id).await.unwrap();
    (id, card)
}

/// Approves and waits for the run to end.
async fn approved(sandbox: &Sandbox, id: &str, card: &str) -> Value {
    let oscar = sandbox.user(ids::OSCAR, "Oscar Ruiz");
    assert_eq!(
        oscar.click("approve", id, card, None).await.unwrap().status,
        200
    );
    let ends = ["contained", "partially_contained", "failed"];
    sandbox.wait_for_state(id, &ends).await.unwrap()
}

fn thread_texts(sandbox: &Sandbox) -> Vec<String> {
    let messages = sandbox.tenant.connector().messages();
    messages
        .iter()
        .filter_map(|m| m.text().map(str::to_string))
        .collect()
}

/// The first thread message that contains every one of `parts`, waiting
/// for it: replies reach Teams from a background outbox, within Teams'
/// rate limits, possibly after the run has ended.
async fn thread_reply(sandbox: &Sandbox, parts: &[&str]) -> String {
    for _ in 0..600 {
        let texts = thread_texts(sandbox);
        let found = texts.iter().find(|t| parts.iter().all(|p| t.contains(p)));
        if let Some(text) = found {
            return text.clone();
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("no reply with {parts:?} in {:?}", thread_texts(sandbox))
}

fn summary_note(sandbox: &Sandbox) -> String {
    let notes = sandbox.tenant.servicenow().work_notes(ids::INC_ALICE);
    let summary = notes
        .iter()
        .find(|n| n.contains("Summary of the containment"));
    summary
        .cloned()
        .unwrap_or_else(|| panic!("no summary note in {notes:?}"))
}

fn sandbox_graph_calls(sandbox: &Sandbox, method: &str, suffix: &str) -> Vec<RecordedCall> {
    graph_calls(&sandbox.tenant, method, suffix)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttled_block_is_retried_and_the_ticket_shows_its_request_id() {
    let sandbox = sandbox().await;
    let (id, card) = alice_requested(&sandbox).await;
    let fault = Fault::new(FaultKind::status(429))
        .on("PATCH", &alice_path())
        .times(2);
    sandbox.tenant.graph().inject(fault);

    let done = approved(&sandbox, &id, &card).await;

    assert_eq!(done["request"]["state"], "contained", "{done}");
    let patches = sandbox_graph_calls(&sandbox, "PATCH", &alice_path());
    assert_eq!(patches.len(), 3);
    let applied = &patches[2];
    assert_eq!(applied.status, Some(204));
    let summary = summary_note(&sandbox);
    assert!(summary.contains(&applied.request_id), "{summary}");
    for part in [
        "up to one hour",
        "Continuous Access Evaluation",
        "devices",
        "mailbox rules",
        "sign-in logs",
    ] {
        assert!(summary.contains(part), "{part} missing from {summary}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reset_during_the_revoke_leads_to_one_revocation_confirmed_by_read_back() {
    let sandbox = sandbox().await;
    let (id, card) = alice_requested(&sandbox).await;
    let fault = Fault::new(FaultKind::Reset).on("POST", "revokeSignInSessions");
    sandbox.tenant.graph().inject(fault);

    let done = approved(&sandbox, &id, &card).await;

    assert_eq!(done["request"]["state"], "contained", "{done}");
    let posts = sandbox_graph_calls(&sandbox, "POST", "revokeSignInSessions");
    let statuses: Vec<_> = posts.iter().map(|c| c.status).collect();
    assert_eq!(statuses, [None, Some(200)], "one reset, one revocation");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoke_applied_behind_a_504_is_not_repeated() {
    let sandbox = sandbox().await;
    let (id, card) = alice_requested(&sandbox).await;
    let fault =
        Fault::new(FaultKind::AfterEffect { status: 504 }).on("POST", "revokeSignInSessions");
    sandbox.tenant.graph().inject(fault);

    let done = approved(&sandbox, &id, &card).await;

    assert_eq!(done["request"]["state"], "contained", "{done}");
    assert_eq!(
        sandbox_graph_calls(&sandbox, "POST", "revokeSignInSessions").len(),
        1
    );
    thread_reply(&sandbox, &["revoke sessions", "read-back confirmed"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_permission_is_a_partial_containment_with_graphs_error_in_thread_and_ticket() {
    let sandbox = sandbox().await;
    let (id, card) = alice_requested(&sandbox).await;
    sandbox
        .tenant
        .login()
        .withdraw_graph_role("User.RevokeSessions.All");

    let done = approved(&sandbox, &id, &card).await;

    assert_eq!(done["request"]["state"], "partially_contained", "{done}");
    let refused = &sandbox_graph_calls(&sandbox, "POST", "revokeSignInSessions")[0];
    assert_eq!(refused.status, Some(403));
    let failure = thread_reply(&sandbox, &["revoke sessions failed"]).await;
    assert!(
        failure.contains("403 Authorization_RequestDenied"),
        "{failure}"
    );
    assert!(failure.contains(&refused.request_id), "{failure}");
    let summary = summary_note(&sandbox);
    assert!(summary.contains("Authorization_RequestDenied"), "{summary}");
    assert!(summary.contains(&refused.request_id), "{summary}");
    assert!(
        summary.contains("sessions may still be active"),
        "{summary}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_verification_answer_makes_the_containment_partial() {
    let sandbox = sandbox().await;
    let (id, card) = alice_requested(&sandbox).await;
    // The only user read after approval is the verification's.
    let fault = Fault::new(FaultKind::MalformedJson).on("GET", &alice_path());
    sandbox.tenant.graph().inject(fault);

    let done = approved(&sandbox, &id, &card).await;

    assert_eq!(done["request"]["state"], "partially_contained", "{done}");
    let alice = sandbox.tenant.graph().user(ids::ALICE).unwrap();
    assert!(!alice.account_enabled, "the block itself took effect");
    let summary = summary_note(&sandbox);
    assert!(summary.contains("unreadable body"), "{summary}");
    thread_reply(&sandbox, &["verify", "failed", "unreadable body"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_tokens_are_renewed_mid_run_without_a_second_write() {
    let sandbox = sandbox().await;
    let (id, card) = alice_requested(&sandbox).await;
    sandbox.tenant.login().expire_all();

    let done = approved(&sandbox, &id, &card).await;

    assert_eq!(done["request"]["state"], "contained", "{done}");
    let applied: Vec<_> = sandbox_graph_calls(&sandbox, "PATCH", &alice_path())
        .into_iter()
        .filter(|c| c.status == Some(204))
        .collect();
    assert_eq!(applied.len(), 1);
    assert_eq!(
        sandbox_graph_calls(&sandbox, "POST", "revokeSignInSessions").len(),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_start_note_applied_behind_a_504_reads_once_in_the_ticket() {
    let sandbox = sandbox().await;
    let (id, card) = alice_requested(&sandbox).await;
    let sys_id = alice_incident(&sandbox.tenant);
    // The first PATCH of the run is the start note with the state change.
    let fault = Fault::new(FaultKind::AfterEffect { status: 504 }).on("PATCH", &sys_id);
    sandbox.tenant.servicenow().inject(fault);

    let done = approved(&sandbox, &id, &card).await;
    assert_eq!(done["request"]["state"], "contained", "{done}");
    let notes = sandbox.tenant.servicenow().work_notes(ids::INC_ALICE);
    let starts = notes.iter().filter(|n| n.contains("approved by")).count();
    assert_eq!(starts, 1, "{notes:?}");
    let summaries = notes
        .iter()
        .filter(|n| n.contains("Summary of the containment"))
        .count();
    assert_eq!(summaries, 1, "{notes:?}");
    let incident = sandbox
        .tenant
        .servicenow()
        .incident(ids::INC_ALICE)
        .unwrap();
    assert_eq!(incident["state"], "2", "In Progress");
}
