//! The operator's view of a running Cordon: `/metrics` parsed from the
//! Prometheus text after real runs, the detail of one request at
//! `GET /api/v1/containments/{id}`, `/healthz` and `/readyz` while the
//! store answers and after it stops answering, and the log of a real
//! `cordon serve` process in JSON at debug level, searched for every
//! secret and token the run used.
//!
//! Metrics live in one registry per process, so the tests that count them
//! start their own `cordon serve` child: the counts they read are those of
//! their own runs and nothing else, and can be compared exactly.

use std::path::Path;
use std::time::Duration;

use base64::Engine as _;
use cordon::containment::state::RequestState;
use cordon::demo::{Sandbox, API_TOKEN, WEBHOOK_SECRET};
use cordon::sandbox::tenant::ids;
use cordon::sandbox::{Fault, FaultKind, SimulatedTenant};
use serde_json::{json, Value};

#[path = "support/prometheus.rs"]
mod prometheus;
#[path = "support/server.rs"]
mod server;
#[macro_use]
mod support;

use prometheus::Scrape;
use server::ServerProcess;

// ---- scraping ----------------------------------------------------------------

async fn scrape(base_url: &str) -> Scrape {
    let answer = reqwest::get(format!("{base_url}/metrics")).await.unwrap();
    assert_eq!(answer.status(), 200);
    let content_type = answer.headers()["content-type"].to_str().unwrap();
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    Scrape::parse(&answer.text().await.unwrap())
}

// ---- a real server and its runs --------------------------------------------

async fn tenant() -> SimulatedTenant {
    SimulatedTenant::start("127.0.0.1:0".parse().unwrap())
        .await
        .expect("simulated tenant starts")
}

fn sqlite_url(dir: &Path) -> String {
    format!("sqlite://{}", dir.join("cordon.db").display())
}

/// Every approver in `who` approves request `id` on its card.
async fn approve(server: &ServerProcess, id: &str, who: &[(&str, &str)]) -> String {
    let card = server.wait_for_card(id).await;
    for (object_id, name) in who {
        let answer = server
            .user(object_id, name)
            .click("approve", id, &card, None)
            .await
            .unwrap();
        assert_eq!(answer.status, 200, "{}", answer.body);
    }
    card
}

const OSCAR: (&str, &str) = (ids::OSCAR, "Oscar Ruiz");
const PRIYA: (&str, &str) = (ids::PRIYA, "Priya Shah");

/// The steps of a request as the API shows them.
fn steps_of(view: &Value) -> Vec<Value> {
    view["steps"].as_array().cloned().unwrap_or_default()
}

/// Scrapes until `ready` holds, for counts recorded just after the state
/// change a test waited for; panics after about 10 s.
async fn scrape_when(base_url: &str, what: &str, ready: impl Fn(&Scrape) -> bool) -> Scrape {
    for _ in 0..400 {
        let scrape = scrape(base_url).await;
        if ready(&scrape) {
            return scrape;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the metrics never showed {what}");
}

const FINISHED: &str = "cordon_runs_finished_total";
const TO_CONTAINED: &str = "cordon_approval_to_contained_seconds_count";
const DURATIONS: &str = "cordon_step_duration_seconds_count";
const STEP_RETRIES: &str = "cordon_step_retries_total";

/// Alice's containment, with Graph throttling the block once for a
/// second; returns the request id once contained.
async fn throttled_run(tenant: &SimulatedTenant, server: &ServerProcess) -> String {
    let alice_user = format!("/users/{}", ids::ALICE);
    let throttled = Fault::new(FaultKind::throttled(1)).on("PATCH", &alice_user);
    tenant.graph().inject(throttled);
    let alice = server.propose(ids::ALICE_UPN, ids::INC_ALICE).await;
    approve(server, &alice, &[OSCAR]).await;
    server.wait_for_state(&alice, "contained").await;
    alice
}

/// Adele's containment (privileged, two approvers) with the revoke
/// refused once: partial, then contained after an approver's retry.
async fn partial_then_retried_run(tenant: &SimulatedTenant, server: &ServerProcess) -> String {
    let revoke = format!("/users/{}/revokeSignInSessions", ids::ADELE);
    let refused = Fault::new(FaultKind::status(403)).on("POST", &revoke);
    tenant.graph().inject(refused);
    let adele = server.propose(ids::ADELE_UPN, ids::INC_ADELE).await;
    let card = approve(server, &adele, &[OSCAR, PRIYA]).await;
    server.wait_for_state(&adele, "partially_contained").await;

    let partial = [("state", "partially_contained")];
    let seen = scrape_when(&server.base_url, "the partial end", |s| {
        s.count(TO_CONTAINED, &partial) > 0.0
    })
    .await;
    assert_eq!(seen.value(FINISHED, &partial), Some(1.0));
    assert_eq!(seen.value("cordon_requests", &partial), Some(1.0));

    let oscar = server.user(OSCAR.0, OSCAR.1);
    let retried = oscar.click("retry", &adele, &card, None).await.unwrap();
    assert_eq!(retried.status, 200, "{}", retried.body);
    server.wait_for_state(&adele, "contained").await;
    adele
}

/// Each step's latency samples and retries match the attempts that the
/// journals of `views` count for it.
fn assert_steps_match_journals(scrape: &Scrape, views: &[Value]) {
    let steps: Vec<Value> = views.iter().flat_map(steps_of).collect();
    let mut names: Vec<&str> = steps.iter().map(|s| s["name"].as_str().unwrap()).collect();
    names.sort();
    names.dedup();
    for name in names {
        let attempts = steps
            .iter()
            .filter(|s| s["name"] == name)
            .map(|s| s["attempts"].as_i64().unwrap());
        let started: i64 = attempts.clone().sum();
        let repeated: i64 = attempts.map(|a| (a - 1).max(0)).sum();
        let step = [("step", name)];
        assert_eq!(scrape.total(DURATIONS, &step), started as f64, "{name}");
        assert_eq!(scrape.count(STEP_RETRIES, &step), repeated as f64, "{name}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_exactly_the_runs_steps_retries_and_throttling_that_happened() {
    let dir = tempfile::tempdir().unwrap();
    let tenant = tenant().await;
    let store = sqlite_url(dir.path());
    let server = ServerProcess::start(&tenant, &store, dir.path(), "metrics").await;

    // A fresh process has counted nothing.
    let before = scrape(&server.base_url).await;
    assert_eq!(before.value("cordon_graph_throttled_total", &[]), Some(0.0));
    assert_eq!(before.value("cordon_approvals_pending", &[]), Some(0.0));
    for state in RequestState::ALL {
        let labels = [("state", state.as_str())];
        assert_eq!(before.value("cordon_requests", &labels), Some(0.0));
    }
    assert!(before.series(DURATIONS).is_empty());

    // Two runs, and a service account's request left for an approver.
    let alice = throttled_run(&tenant, &server).await;
    let adele = partial_then_retried_run(&tenant, &server).await;
    let waiting = server
        .propose(ids::SVC_BACKUP_UPN, ids::INC_SVC_BACKUP)
        .await;
    server.wait_for_card(&waiting).await;
    let after = scrape_when(&server.base_url, "three run ends", |s| {
        s.total(TO_CONTAINED, &[]) >= 3.0
    })
    .await;
    after.check_histograms();

    // Requests by state, and what is pending.
    for state in RequestState::ALL {
        let expected = match state {
            RequestState::Contained => 2.0,
            RequestState::AwaitingApproval => 1.0,
            _ => 0.0,
        };
        let labels = [("state", state.as_str())];
        let found = after.value("cordon_requests", &labels);
        assert_eq!(found, Some(expected), "{state:?}");
    }
    assert_eq!(after.value("cordon_approvals_pending", &[]), Some(1.0));

    // Runs by how they ended (Adele's twice), and approval to the end.
    for (state, ends) in [("contained", 2.0), ("partially_contained", 1.0)] {
        let labels = [("state", state)];
        assert_eq!(after.value(FINISHED, &labels), Some(ends), "{state}");
        assert_eq!(after.value(TO_CONTAINED, &labels), Some(ends), "{state}");
    }
    assert_eq!(after.total(FINISHED, &[]), 3.0);

    // One 429 seen, and one Graph retry because of it.
    assert_eq!(after.value("cordon_graph_throttled_total", &[]), Some(1.0));
    let graph_retries = "cordon_graph_retries_total";
    assert_eq!(after.value(graph_retries, &[("reason", "429")]), Some(1.0));
    assert_eq!(after.total(graph_retries, &[]), 1.0);

    // Step latency and step retries: the refused revoke and its retry,
    // and the throttled block that took Graph's Retry-After to finish.
    let views = [server.request(&alice).await, server.request(&adele).await];
    assert_steps_match_journals(&after, &views);
    let revoke = |status| [("step", "revoke_sessions"), ("status", status)];
    assert_eq!(after.value(DURATIONS, &revoke("failed")), Some(1.0));
    assert_eq!(after.value(DURATIONS, &revoke("done")), Some(2.0));
    let revoke_retries = [("step", "revoke_sessions")];
    assert_eq!(after.value(STEP_RETRIES, &revoke_retries), Some(1.0));
    let block = [("step", "block_sign_in"), ("status", "done")];
    assert_eq!(after.value(DURATIONS, &block), Some(2.0));
    assert_eq!(after.count(STEP_RETRIES, &[("step", "block_sign_in")]), 0.0);
    let block_seconds = after.value("cordon_step_duration_seconds_sum", &block);
    let block_seconds = block_seconds.unwrap();
    assert!(block_seconds >= 1.0, "Retry-After waited: {block_seconds}");
}

// ---- the detail of one request ---------------------------------------------

async fn sandbox(store: Option<String>) -> Sandbox {
    Sandbox::start("127.0.0.1:0".parse().unwrap(), store)
        .await
        .expect("sandbox starts")
}

async fn get_detail(sandbox: &Sandbox, id: &str, token: Option<&str>) -> reqwest::Response {
    let mut request =
        reqwest::Client::new().get(format!("{}/api/v1/containments/{id}", sandbox.base_url));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.unwrap()
}

/// Alice's containment asked for in Teams and approved by Oscar, with
/// the block throttled once; returns the request id and its card.
async fn contained_from_teams(sandbox: &Sandbox) -> (String, String) {
    let alice_user = format!("/users/{}", ids::ALICE);
    let throttled = Fault::new(FaultKind::status(429)).on("PATCH", &alice_user);
    sandbox.tenant.graph().inject(throttled);
    let sam = sandbox.user(ids::SAM, "Sam Lee");
    let text = "contain alice@contoso.com INC0010001 token theft suspected";
    assert_eq!(sam.say_in_channel(text).await.unwrap().status, 200);
    let id = sandbox
        .wait_for_request(ids::ALICE_UPN, ids::INC_ALICE)
        .await
        .unwrap();
    let card = sandbox.wait_for_card(&id).await.unwrap();
    let oscar = sandbox.user(OSCAR.0, OSCAR.1);
    oscar.click("approve", &id, &card, None).await.unwrap();
    sandbox.wait_for_state(&id, &["contained"]).await.unwrap();
    (id, card)
}

/// Every step done in runbook order, and each Graph write with the ids
/// of the one call that took effect, as the simulated Graph saw it.
fn assert_steps_carry_graph_ids(view: &Value, sandbox: &Sandbox) {
    let steps = steps_of(view);
    let names: Vec<&Value> = steps.iter().map(|s| &s["name"]).collect();
    let runbook: Vec<&Value> = view["request"]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .collect();
    assert_eq!(names, runbook);
    assert!(steps.iter().all(|s| s["status"] == "done"), "{steps:?}");

    let calls = sandbox.tenant.graph().calls();
    let alice_user = format!("/users/{}", ids::ALICE);
    for (name, method, path_end, status) in [
        ("block_sign_in", "PATCH", alice_user.as_str(), 204),
        ("revoke_sessions", "POST", "revokeSignInSessions", 200),
    ] {
        let effective: Vec<_> = calls
            .iter()
            .filter(|c| c.method == method && c.path.ends_with(path_end))
            .filter(|c| c.status.is_some_and(|s| s < 300))
            .collect();
        assert_eq!(effective.len(), 1, "{name}: {effective:?}");
        let step = steps.iter().find(|s| s["name"] == name).unwrap();
        assert_eq!(step["http_status"], status, "{name}");
        let ids = &step["outside_ids"];
        let call = effective[0];
        assert_eq!(ids["request_id"], call.request_id.as_str(), "{name}");
        let client_id = ids["client_request_id"].as_str();
        assert_eq!(client_id, call.client_request_id.as_deref(), "{name}");
    }
    let block = steps.iter().find(|s| s["name"] == "block_sign_in").unwrap();
    assert_eq!(block["outside_ids"]["attempts"], 2, "the 429 was retried");
}

/// The audit events of the view are the request's stored events, with
/// the approval, every step and the run's summary of Graph's ids.
async fn assert_audit_is_the_stored_trail(view: &Value, sandbox: &Sandbox) {
    let id = view["request"]["id"].as_str().unwrap();
    let audit = view["audit"].as_array().unwrap();
    let stored = sandbox.engine.store.audit_events(Some(id)).await.unwrap();
    assert_eq!(audit.len(), stored.len());
    for (shown, kept) in audit.iter().zip(&stored) {
        assert_eq!(shown["seq"], kept.seq);
        assert_eq!(shown["hash"], kept.hash.as_str());
        assert_eq!(shown["prev_hash"], kept.prev_hash.as_str());
        assert_eq!(shown["event"], kept.event.as_str());
        assert_eq!(shown["request_id"], id);
    }

    let events: Vec<&str> = audit.iter().map(|e| e["event"].as_str().unwrap()).collect();
    let approval = audit.iter().find(|e| e["event"] == "approval_recorded");
    let approval = approval.unwrap_or_else(|| panic!("no approval in {events:?}"));
    assert_eq!(approval["actor"], ids::OSCAR);
    let done: Vec<&Value> = audit
        .iter()
        .filter(|e| e["event"] == "step_done")
        .map(|e| &e["details"]["step"])
        .collect();
    let steps = steps_of(view);
    let names: Vec<&Value> = steps.iter().map(|s| &s["name"]).collect();
    assert_eq!(done, names, "{events:?}");

    let finished = audit.last().unwrap();
    assert_eq!(finished["event"], "run_finished", "{events:?}");
    let summarised = finished["details"]["graph_request_ids"].as_array().unwrap();
    let graph_steps = steps
        .iter()
        .filter_map(|s| s["outside_ids"].get("request_id"));
    for request_id in graph_steps {
        assert!(
            summarised.contains(request_id),
            "{request_id} not in {summarised:?}"
        );
    }
}

async fn the_detail_shows_state_steps_with_graph_ids_approvals_and_audit(store: Option<String>) {
    let sandbox = sandbox(store).await;
    let (id, card) = contained_from_teams(&sandbox).await;

    let answer = get_detail(&sandbox, &id, Some(API_TOKEN)).await;
    assert_eq!(answer.status(), 200);
    let view: Value = answer.json().await.unwrap();

    let request = &view["request"];
    assert_eq!(request["id"], id.as_str());
    assert_eq!(request["state"], "contained");
    assert_eq!(request["target_upn"], ids::ALICE_UPN);
    assert_eq!(request["target_id"], ids::ALICE);
    assert_eq!(request["incident_number"], ids::INC_ALICE);
    assert_eq!(request["requester"]["id"], ids::SAM);
    assert_eq!(request["source"], "teams");
    assert_eq!(request["thread"]["card_activity_id"], card.as_str());
    assert_eq!(request["run_count"], 1);
    assert!(!request["outcome"].as_str().unwrap().is_empty());

    let approvals = view["approvals"].as_array().unwrap();
    assert_eq!(approvals.len(), 1, "{approvals:?}");
    assert_eq!(approvals[0]["approver_id"], ids::OSCAR);
    assert_eq!(approvals[0]["approver_name"], "Oscar Ruiz");
    assert_eq!(approvals[0]["decision"], "approve");

    assert_steps_carry_graph_ids(&view, &sandbox);
    assert_audit_is_the_stored_trail(&view, &sandbox).await;

    // No token, or an unknown id, gets a stable JSON error.
    let anonymous = get_detail(&sandbox, &id, None).await;
    assert_eq!(anonymous.status(), 401);
    let body: Value = anonymous.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unauthorized", "{body}");
    let unknown = get_detail(&sandbox, "CR-NOTHERE", Some(API_TOKEN)).await;
    assert_eq!(unknown.status(), 404);
    let body: Value = unknown.json().await.unwrap();
    assert_eq!(body["error"]["code"], "not_found", "{body}");
}

// ---- health and readiness --------------------------------------------------

async fn status_of(base_url: &str, path: &str) -> (u16, String) {
    let answer = reqwest::get(format!("{base_url}{path}")).await.unwrap();
    (answer.status().as_u16(), answer.text().await.unwrap())
}

/// Polls `path` until its status is (`true`) or is not (`false`) 2xx;
/// panics after about 10 s of polling.
async fn until_success(base_url: &str, path: &str, success: bool) -> (u16, String) {
    let mut last = (0, String::new());
    for _ in 0..400 {
        last = status_of(base_url, path).await;
        if (200..300).contains(&last.0) == success {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("{path} kept answering {last:?}");
}

async fn assert_up(base_url: &str) {
    assert_eq!(status_of(base_url, "/healthz").await, (200, "ok".into()));
    assert_eq!(status_of(base_url, "/readyz").await, (200, "ready".into()));
    assert_eq!(status_of(base_url, "/metrics").await.0, 200);
}

/// With the store gone: not ready and no metrics, but the process lives.
async fn assert_store_down(base_url: &str) {
    let (status, body) = until_success(base_url, "/readyz", false).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body, "store unavailable");
    assert_eq!(status_of(base_url, "/metrics").await.0, 503);
    assert_eq!(status_of(base_url, "/healthz").await, (200, "ok".into()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_fails_once_the_sqlite_pool_is_closed_while_healthz_still_answers() {
    let sandbox = sandbox(None).await;
    assert_up(&sandbox.base_url).await;

    sandbox.engine.store.pool().close().await;

    assert_store_down(&sandbox.base_url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_fails_while_every_store_connection_is_taken_and_recovers_after() {
    let sandbox = sandbox(None).await;
    assert_up(&sandbox.base_url).await;

    // Every connection of the pool held, as long transactions would.
    let pool = sandbox.engine.store.pool();
    let mut held = Vec::new();
    for _ in 0..pool.options().get_max_connections() {
        held.push(pool.acquire().await.unwrap());
    }
    // A probe that gives up after ten seconds, as orchestrators' do, gets
    // its answer: the pool's own wait for a connection is thirty.
    let probe = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let answer = probe
        .get(format!("{}/readyz", sandbox.base_url))
        .send()
        .await
        .expect("/readyz answers while the store does not");
    assert_eq!(answer.status(), 503);
    assert_eq!(answer.text().await.unwrap(), "store unavailable");
    assert_eq!(
        status_of(&sandbox.base_url, "/healthz").await,
        (200, "ok".into())
    );

    drop(held);
    let ready = until_success(&sandbox.base_url, "/readyz", true).await;
    assert_eq!(ready, (200, "ready".into()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_fails_once_the_postgres_database_is_dropped_while_healthz_still_answers() {
    let Some(url) = support::postgres_database().await else {
        return;
    };
    let sandbox = sandbox(Some(url.clone())).await;
    assert_up(&sandbox.base_url).await;

    use sqlx::Connection;
    let base = std::env::var(support::POSTGRES_ENV).unwrap();
    let mut admin = sqlx::PgConnection::connect(&base).await.unwrap();
    let (_, name) = url.rsplit_once('/').unwrap();
    let drop = format!("DROP DATABASE {name} WITH (FORCE)");
    sqlx::query(&drop).execute(&mut admin).await.unwrap();

    assert_store_down(&sandbox.base_url).await;
}

// ---- logs ------------------------------------------------------------------

/// Every line of a JSON log, each parsed; panics on a line that is not a
/// JSON object with a timestamp, a level and fields.
fn json_lines(log: &str) -> Vec<Value> {
    log.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let value: Value =
                serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
            for key in ["timestamp", "level", "fields"] {
                assert!(value.get(key).is_some(), "no {key}: {line}");
            }
            value
        })
        .collect()
}

/// Whether `line` was logged inside a span called `name` whose fields
/// include every one of `fields`.
fn in_span(line: &Value, name: &str, fields: &[(&str, &str)]) -> bool {
    let spans = line["spans"].as_array().into_iter().flatten();
    spans
        .chain(line.get("span"))
        .any(|span| span["name"] == name && fields.iter().all(|(k, v)| span[*k] == *v))
}

/// Waits until the log at `path` has a line for which `check` holds.
async fn until_logged(path: &Path, what: &str, check: impl Fn(&Value) -> bool) {
    for _ in 0..400 {
        let log = std::fs::read_to_string(path).unwrap_or_default();
        let found = log
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .any(|line| check(&line));
        if found {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let log = std::fs::read_to_string(path).unwrap_or_default();
    let tail: Vec<&str> = log.lines().rev().take(5).collect();
    panic!("the log never showed {what}; it ends with {tail:#?}");
}

/// Sends a ServiceNow webhook for the backup service account, signed with
/// the configured secret.
async fn send_signed_webhook(base_url: &str) -> u16 {
    let body = json!({
        "number": ids::INC_SVC_BACKUP,
        "sys_id": ids::INC_SVC_BACKUP_SYS_ID,
        "affected_user": ids::SVC_BACKUP_UPN,
        "requested_by": ids::SAM_UPN,
        "justification": "credential found in a public repository",
    })
    .to_string();
    let timestamp = chrono::Utc::now().timestamp();
    let secret = secrecy::SecretString::from(WEBHOOK_SECRET.to_string());
    let signature = cordon::servicenow::webhook::sign(&secret, timestamp, body.as_bytes());
    reqwest::Client::new()
        .post(format!("{base_url}/api/servicenow/webhook"))
        .header("content-type", "application/json")
        .header("x-cordon-timestamp", timestamp.to_string())
        .header("x-cordon-signature", signature)
        .body(body)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// Waits until a message in the approvals thread starts with `start`.
async fn until_thread_says(tenant: &SimulatedTenant, start: &str) {
    for _ in 0..400 {
        let messages = tenant.connector().messages();
        let texts = messages
            .iter()
            .map(|m| cordon::sandbox::render_text(&m.activity));
        if texts.into_iter().any(|t| t.starts_with(start)) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the thread never said {start}");
}

/// What must never reach a log line: each configured secret, the
/// ServiceNow credentials as a basic `Authorization` header carries them,
/// and every token the simulated login issued, whole and its signature.
fn secrets_of_the_run(tenant: &SimulatedTenant) -> Vec<(&'static str, String)> {
    let basic = format!("{}:{}", ids::SERVICENOW_USER, ids::SERVICENOW_PASSWORD);
    let basic = base64::engine::general_purpose::STANDARD.encode(basic);
    let mut secrets = vec![
        ("bot.app_password", ids::BOT_APP_PASSWORD.to_string()),
        ("graph.client_secret", ids::GRAPH_CLIENT_SECRET.to_string()),
        ("servicenow.password", ids::SERVICENOW_PASSWORD.to_string()),
        ("servicenow basic credentials", basic),
        ("servicenow.webhook_secret", WEBHOOK_SECRET.to_string()),
        ("api.tokens", API_TOKEN.to_string()),
    ];
    for token in tenant.login().issued_tokens() {
        let signature = token.rsplit('.').next().unwrap().to_string();
        secrets.push(("an access token", token));
        secrets.push(("an access token's signature", signature));
    }
    secrets
}

/// The run's span, the proposal's and a detail read's carry the request
/// id, incident and target.
fn assert_spans_name_the_request(lines: &[Value], id: &str) {
    let fields = [
        ("request_id", id),
        ("incident", ids::INC_ALICE),
        ("target", ids::ALICE_UPN),
    ];
    let run: Vec<&Value> = lines
        .iter()
        .filter(|l| in_span(l, "run", &fields))
        .collect();
    for message in ["run started", "step done", "run finished"] {
        let found = run.iter().any(|l| l["fields"]["message"] == message);
        assert!(found, "no '{message}' in the run span with {fields:?}");
    }
    let detail = format!("/api/v1/containments/{id}");
    let requests = [("POST", "/api/v1/containments"), ("GET", detail.as_str())];
    for (method, path) in requests {
        let mut http = fields.to_vec();
        http.extend([("method", method), ("path", path)]);
        let found = lines.iter().any(|l| in_span(l, "http", &http));
        assert!(found, "no line in the HTTP span with {http:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_json_debug_log_of_a_whole_containment_names_the_run_but_no_secret_or_token() {
    let dir = tempfile::tempdir().unwrap();
    let tenant = tenant().await;
    let env = [
        ("CORDON_LOG__FORMAT", "json"),
        ("RUST_LOG", "debug,sqlx=warn,hyper=info,h2=info"),
    ];
    let store = sqlite_url(dir.path());
    let server = ServerProcess::start_with_env(&tenant, &store, dir.path(), "logs", &env).await;
    let log_path = dir.path().join("logs.log");

    // A containment through the API and a Teams approval, a signed
    // webhook, and every token expired half-way so that the Graph and
    // Bot Connector clients fetch new ones.
    let id = server.propose(ids::ALICE_UPN, ids::INC_ALICE).await;
    let card = server.wait_for_card(&id).await;
    assert_eq!(send_signed_webhook(&server.base_url).await, 202);
    tenant.login().expire_all();
    let oscar = server.user(OSCAR.0, OSCAR.1);
    oscar.click("approve", &id, &card, None).await.unwrap();
    server.wait_for_state(&id, "contained").await;
    let login = tenant.login();
    assert!(login.issued_count(ids::GRAPH_SCOPE) >= 2, "Graph renewed");
    let connector_tokens = login.issued_count(ids::BOTFRAMEWORK_SCOPE);
    assert!(connector_tokens >= 2, "Bot Connector token renewed");

    // Once the run has told the thread, one last request closes the log.
    until_logged(&log_path, "the end of the run", |line| {
        in_span(line, "run", &[("request_id", &id)]) && line["fields"]["message"] == "run finished"
    })
    .await;
    until_thread_says(&tenant, "**Contained**").await;
    assert_eq!(status_of(&server.base_url, "/readyz").await.0, 200);
    until_logged(&log_path, "the /readyz answer", |line| {
        in_span(line, "http", &[("path", "/readyz")])
            && line["fields"]["message"] == "finished processing request"
    })
    .await;

    // Every line is JSON, the level was verbose, the spans name the run.
    let log = std::fs::read_to_string(&log_path).unwrap();
    let lines = json_lines(&log);
    let debug = lines.iter().filter(|l| l["level"] == "DEBUG").count();
    assert!(debug > 0, "no debug lines");
    assert_spans_name_the_request(&lines, &id);

    let secrets = secrets_of_the_run(&tenant);
    for (number, line) in log.lines().enumerate() {
        for (what, secret) in &secrets {
            let leaked = line.contains(secret.as_str());
            assert!(!leaked, "{what} on log line {}: {line}", number + 1);
        }
    }
    eprintln!(
        "searched {} JSON log lines ({debug} at debug) for {} secrets and tokens",
        lines.len(),
        secrets.len()
    );
}

on_both_backends!(the_detail_shows_state_steps_with_graph_ids_approvals_and_audit);
