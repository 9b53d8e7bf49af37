//! The automation API over real HTTP: `cordon` on port 0 against the
//! simulated tenant, called as a SIEM, a script or an agent would call it.
//!
//! Every answer of `POST /api/v1/containments` is shown, and for each
//! refusal that nothing was stored: the list endpoint and the audit trail
//! stay empty, no approval card reaches the channel and Graph sees no
//! write. Then reading and listing requests, the auto-approve rule by
//! source and target, the token's name as the requesting system, the
//! per-token rate limit and the OpenAPI document.

use std::collections::BTreeSet;

use cordon::config::{ApiToken, Config};
use cordon::demo::{send_webhook, Sandbox, API_TOKEN};
use cordon::policy::{AutoApproveRule, Risk, Source};
use cordon::sandbox::tenant::ids;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER};
use reqwest::RequestBuilder;
use serde_json::{json, Value};

/// The auto-approve rule of the tests that turn it on.
const RULE: &str = "siem-high-risk";

/// A sandbox whose proposals are not rate limited in practice, so that a
/// test can send many; the rate limit test sets its own.
async fn sandbox() -> Sandbox {
    sandbox_with(|_| {}).await
}

async fn sandbox_with(adjust: impl FnOnce(&mut Config)) -> Sandbox {
    Sandbox::start_with("127.0.0.1:0".parse().unwrap(), None, |config| {
        config.api.rate_limit_per_minute = 10_000;
        config.api.rate_limit_burst = 10_000;
        adjust(config);
    })
    .await
    .expect("sandbox starts")
}

fn auto_approve(config: &mut Config) {
    config.policy.auto_approve = Some(AutoApproveRule {
        name: RULE.into(),
        sources: vec![Source::Siem],
        min_risk: Risk::High,
    });
}

/// One answer of the server.
#[derive(Debug)]
struct Answer {
    status: u16,
    body: Value,
    retry_after: Option<String>,
}

impl Answer {
    fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or_default()
    }

    fn message(&self) -> &str {
        self.body["error"]["message"].as_str().unwrap_or_default()
    }

    fn request_id(&self) -> String {
        let id = self.body["request_id"].as_str();
        id.unwrap_or_else(|| panic!("no request id in {self:?}"))
            .to_string()
    }
}

/// A client of the automation API of one sandbox.
struct Api {
    http: reqwest::Client,
    base: String,
}

impl Api {
    fn of(sandbox: &Sandbox) -> Api {
        Api {
            http: reqwest::Client::new(),
            base: sandbox.base_url.clone(),
        }
    }

    fn post(&self) -> RequestBuilder {
        self.http.post(format!("{}/api/v1/containments", self.base))
    }

    fn get(&self, path_and_query: &str) -> RequestBuilder {
        self.http.get(format!("{}{path_and_query}", self.base))
    }

    /// Proposes `body` with the sandbox's token.
    async fn propose(&self, body: &Value) -> Answer {
        self.propose_as(API_TOKEN, body).await
    }

    async fn propose_as(&self, token: &str, body: &Value) -> Answer {
        send(self.post().bearer_auth(token).json(body)).await
    }

    /// Reads with the sandbox's token.
    async fn read(&self, path_and_query: &str) -> Answer {
        send(self.get(path_and_query).bearer_auth(API_TOKEN)).await
    }
}

async fn send(request: RequestBuilder) -> Answer {
    let response = request.send().await.expect("the server answers");
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get(RETRY_AFTER)
        .map(|v| v.to_str().unwrap().to_string());
    let text = response.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Answer {
        status,
        body,
        retry_after,
    }
}

/// A valid proposal for `upn` and `incident`, as a SIEM would send it.
fn proposal(upn: &str, incident: &str) -> Value {
    json!({
        "number": incident,
        "affected_user": upn,
        "requested_by": ids::SAM_UPN,
        "justification": "impossible travel and a new inbox rule",
    })
}

/// Opens another security incident about `upn` in the simulated
/// ServiceNow, so that one user can be the target of several requests.
fn open_incident(sandbox: &Sandbox, number: &str, upn: &str) {
    sandbox.tenant.servicenow().add_incident(json!({
        "number": number,
        "category": "security",
        "subcategory": "account_compromise",
        "short_description": format!("{upn}: token theft"),
        "description": "Reported by the SOC.",
        "caller_id": ids::SAM_UPN,
        "u_affected_user": upn,
    }));
}

/// Graph writes of the whole run: anything but reads and group checks.
fn graph_writes(sandbox: &Sandbox) -> Vec<String> {
    sandbox
        .tenant
        .graph()
        .calls()
        .iter()
        .filter(|c| c.method != "GET" && !c.path.ends_with("checkMemberGroups"))
        .map(|c| format!("{} {}", c.method, c.path))
        .collect()
}

/// The ids of every request the list endpoint knows.
async fn listed_ids(api: &Api) -> Vec<String> {
    let page = api.read("/api/v1/containments?limit=200").await;
    assert_eq!(page.status, 200, "{page:?}");
    page.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item["id"].as_str().unwrap().to_string())
        .collect()
}

/// Nothing was stored and nothing reached Teams or Entra ID.
async fn assert_nothing_stored(sandbox: &Sandbox, api: &Api, what: &str) {
    assert!(
        listed_ids(api).await.is_empty(),
        "{what}: a request was listed"
    );
    let audit = sandbox.engine.store.audit_events(None).await.unwrap();
    assert!(audit.is_empty(), "{what}: audited {audit:?}");
    let posted = sandbox.tenant.connector().messages();
    assert!(posted.is_empty(), "{what}: posted {posted:?}");
    assert!(
        graph_writes(sandbox).is_empty(),
        "{what}: Graph was written to"
    );
}

/// Everything the approvals-channel thread of a request shows.
fn thread_text(sandbox: &Sandbox, card: &str) -> String {
    let thread = sandbox.tenant.connector().thread(card);
    let texts: Vec<String> = thread
        .iter()
        .map(|m| cordon::sandbox::render_text(&m.activity))
        .collect();
    texts.join("\n")
}

/// The audit events of one request, as the API shows them.
fn events(detail: &Value) -> Vec<&Value> {
    detail["audit"].as_array().unwrap().iter().collect()
}

fn event<'a>(detail: &'a Value, name: &str) -> &'a Value {
    events(detail)
        .into_iter()
        .find(|e| e["event"] == name)
        .unwrap_or_else(|| panic!("no {name} event in {}", detail["audit"]))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_proposal_is_answered_202_with_its_id_and_awaits_a_human() {
    let sandbox = sandbox().await;
    let api = Api::of(&sandbox);

    let answer = send(
        api.post()
            .bearer_auth(API_TOKEN)
            .header(CONTENT_TYPE, "application/json; charset=utf-8")
            .body(proposal(ids::ALICE_UPN, ids::INC_ALICE).to_string()),
    )
    .await;

    assert_eq!(answer.status, 202, "{answer:?}");
    assert_eq!(answer.body["state"], "awaiting_approval");
    let id = answer.request_id();
    assert_eq!(listed_ids(&api).await, [id.as_str()]);
    let detail = sandbox.request(&id).await.unwrap();
    assert_eq!(detail["request"]["target_upn"], ids::ALICE_UPN);
    assert_eq!(detail["request"]["target_id"], ids::ALICE);
    assert_eq!(detail["request"]["incident_number"], ids::INC_ALICE);
    let card = sandbox.wait_for_card(&id).await.unwrap();
    assert!(sandbox.tenant.connector().message(&card).is_some());
    assert!(
        graph_writes(&sandbox).is_empty(),
        "nothing acts before approval"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_user_and_incident_again_is_answered_200_with_the_first_id_and_state() {
    let sandbox = sandbox().await;
    let api = Api::of(&sandbox);
    let first = api.propose(&proposal(ids::ALICE_UPN, ids::INC_ALICE)).await;
    assert_eq!(first.status, 202, "{first:?}");
    let id = first.request_id();
    let card = sandbox.wait_for_card(&id).await.unwrap();

    // Another spelling, another justification, another route.
    let mut again = proposal("Alice@Contoso.com", "inc0010001");
    again["justification"] = json!("a second alert for the same incident");
    let second = api.propose(&again).await;
    let webhook = proposal(ids::ALICE_UPN, ids::INC_ALICE).to_string();
    let from_servicenow = send_webhook(&sandbox, &webhook).await.unwrap();

    assert_eq!(second.status, 200, "{second:?}");
    assert_eq!(second.request_id(), id);
    assert_eq!(second.body["state"], "awaiting_approval");
    assert_eq!(from_servicenow, 200);
    assert_eq!(listed_ids(&api).await, [id.as_str()]);
    let roots = sandbox.tenant.connector().messages();
    let cards: Vec<_> = roots.iter().filter(|m| m.is_root()).collect();
    assert_eq!(cards.len(), 1, "one approval card: {cards:?}");
    let detail = sandbox.request(&id).await.unwrap();
    let received = events(&detail)
        .into_iter()
        .filter(|e| e["event"] == "request_received")
        .count();
    assert_eq!(received, 1);

    // Once contained, the same proposal names the state it is in now.
    let oscar = sandbox.user(ids::OSCAR, "Oscar Ruiz");
    oscar.click("approve", &id, &card, None).await.unwrap();
    sandbox.wait_for_state(&id, &["contained"]).await.unwrap();
    let late = api.propose(&proposal(ids::ALICE_UPN, ids::INC_ALICE)).await;
    assert_eq!(late.status, 200, "{late:?}");
    assert_eq!(late.request_id(), id);
    assert_eq!(late.body["state"], "contained");
    assert_eq!(graph_writes(&sandbox).len(), 2, "contained once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_malformed_body_is_answered_400_naming_the_field_and_stores_nothing() {
    let sandbox = sandbox().await;
    let api = Api::of(&sandbox);
    let valid = proposal(ids::ALICE_UPN, ids::INC_ALICE);
    let with = |field: &str, value: Value| {
        let mut body = valid.clone();
        body[field] = value;
        body.to_string()
    };
    let without_number = {
        let mut body = valid.clone();
        body.as_object_mut().unwrap().remove("number");
        body.to_string()
    };
    let cases = [
        (without_number, "`number`"),
        (with("affected_user", json!("   ")), "`affected_user`"),
        (with("number", json!(10001)), "`number`"),
        (with("requested_by", json!("..")), "`requested_by`"),
        (with("requested_by", json!("sam")), "`requested_by`"),
        (
            with("justification", json!("x".repeat(2_001))),
            "`justification`",
        ),
        (with("risk", json!("extreme")), "`risk`"),
        (with("risk", json!("HIGH")), "`risk`"),
        (
            with("security_action", json!("delete_user")),
            "`security_action`",
        ),
        (with("source", json!(["siem"])), "`source`"),
        ("{\"number\": \"INC0010001\",".to_string(), "not valid JSON"),
        ("[]".to_string(), "JSON object"),
    ];

    for (body, named) in cases {
        let answer = send(
            api.post()
                .bearer_auth(API_TOKEN)
                .header(CONTENT_TYPE, "application/json")
                .body(body.clone()),
        )
        .await;
        assert_eq!(answer.status, 400, "{body}: {answer:?}");
        assert_eq!(answer.code(), "bad_request", "{body}");
        assert!(answer.message().contains(named), "{body}: {answer:?}");
    }

    assert_nothing_stored(&sandbox, &api, "after 400s").await;
    let calls = sandbox.tenant.graph().calls();
    let users: Vec<_> = calls.iter().filter(|c| c.path.contains("/users")).collect();
    assert!(users.is_empty(), "nobody was looked up: {users:?}");
    // The checks above could see a stored request: a valid body is.
    assert_eq!(api.propose(&valid).await.status, 202);
    assert_eq!(listed_ids(&api).await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_without_a_valid_bearer_token_is_answered_401_and_stores_nothing() {
    let sandbox = sandbox().await;
    let api = Api::of(&sandbox);
    let body = proposal(ids::ALICE_UPN, ids::INC_ALICE);
    let near_misses = [
        "Bearer not-the-token".to_string(),
        format!("Bearer {}", &API_TOKEN[..API_TOKEN.len() - 1]),
        format!("Bearer {API_TOKEN}x"),
        format!("Basic {API_TOKEN}"),
        API_TOKEN.to_string(),
        "Bearer ".to_string(),
    ];

    let missing = send(api.post().json(&body)).await;
    let mut refused = vec![missing];
    for value in &near_misses {
        refused.push(send(api.post().header(AUTHORIZATION, value).json(&body)).await);
    }
    refused.push(send(api.get("/api/v1/containments")).await);
    refused.push(send(api.get("/api/v1/containments/CR-7K2M9QXA")).await);

    for answer in &refused {
        assert_eq!(answer.status, 401, "{answer:?}");
        assert_eq!(answer.code(), "unauthorized");
        assert!(!answer.message().contains(API_TOKEN), "{answer:?}");
    }
    assert_nothing_stored(&sandbox, &api, "after 401s").await;

    // The scheme is case-insensitive; the token itself is not.
    let lower = format!("bearer {API_TOKEN}");
    let accepted = send(api.post().header(AUTHORIZATION, lower).json(&body)).await;
    assert_eq!(accepted.status, 202, "{accepted:?}");
    let upper = format!("Bearer {}", API_TOKEN.to_uppercase());
    let other = proposal(ids::ADELE_UPN, ids::INC_ADELE);
    let refused = send(api.post().header(AUTHORIZATION, upper).json(&other)).await;
    assert_eq!(refused.status, 401);
    assert_eq!(listed_ids(&api).await, [accepted.request_id()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_over_the_size_limit_is_answered_413_and_stores_nothing() {
    let sandbox = sandbox_with(|config| config.server.max_body_bytes = 4_096).await;
    let api = Api::of(&sandbox);
    let mut body = proposal(ids::ALICE_UPN, ids::INC_ALICE);
    body["detection"] = json!("x".repeat(8_000));

    let answer = api.propose(&body).await;

    assert_eq!(answer.status, 413, "{answer:?}");
    assert_eq!(answer.code(), "too_large");
    assert!(answer.message().contains("4096"), "{answer:?}");
    assert_nothing_stored(&sandbox, &api, "after 413").await;
    body["detection"] = json!("x".repeat(1_000));
    assert_eq!(api.propose(&body).await.status, 202, "under the limit");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_is_not_declared_json_is_answered_415_and_stores_nothing() {
    let sandbox = sandbox().await;
    let api = Api::of(&sandbox);
    let body = proposal(ids::ALICE_UPN, ids::INC_ALICE).to_string();
    let types = [
        None,
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        Some("application/jsonp"),
    ];

    for content_type in types {
        let mut request = api.post().bearer_auth(API_TOKEN).body(body.clone());
        if let Some(content_type) = content_type {
            request = request.header(CONTENT_TYPE, content_type);
        }
        let answer = send(request).await;
        assert_eq!(answer.status, 415, "{content_type:?}: {answer:?}");
        assert_eq!(answer.code(), "unsupported_media_type");
    }

    assert_nothing_stored(&sandbox, &api, "after 415s").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_refusal_is_answered_422_with_the_rule_and_reason_and_stores_nothing() {
    let sandbox = sandbox().await;
    let api = Api::of(&sandbox);
    let mut unknown_requester = proposal(ids::ALICE_UPN, ids::INC_ALICE);
    unknown_requester["requested_by"] = json!("nobody@contoso.com");
    let cases = [
        (
            proposal("ghost@contoso.com", ids::INC_ALICE),
            "target.unknown",
            "ghost@contoso.com",
        ),
        (
            proposal(ids::BREAK_GLASS_UPN, ids::INC_BREAK_GLASS),
            "target.break_glass",
            "break-glass",
        ),
        (
            proposal("alice@fabrikam.com", ids::INC_ALICE),
            "upn.domain_not_allowed",
            "fabrikam.com",
        ),
        (
            proposal(ids::ALICE_UPN, ids::INC_ALICE_INQUIRY),
            "incident.category_not_allowed",
            "inquiry",
        ),
        (unknown_requester, "requester.unknown", "nobody@contoso.com"),
    ];

    for (body, rule, reason) in cases {
        let answer = api.propose(&body).await;
        assert_eq!(answer.status, 422, "{body}: {answer:?}");
        assert_eq!(answer.code(), rule, "{body}: {answer:?}");
        assert!(answer.message().contains(reason), "{answer:?}");
    }

    assert_nothing_stored(&sandbox, &api, "after 422s").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entra_outage_is_answered_502_and_stores_nothing() {
    let sandbox = sandbox().await;
    let api = Api::of(&sandbox);
    let outage = cordon::sandbox::Fault::new(cordon::sandbox::FaultKind::status(503))
        .on("GET", "/users/")
        .times(1_000);
    sandbox.tenant.graph().inject(outage);

    let answer = api.propose(&proposal(ids::ALICE_UPN, ids::INC_ALICE)).await;

    assert_eq!(answer.status, 502, "{answer:?}");
    assert_eq!(answer.code(), "upstream_unavailable");
    assert_nothing_stored(&sandbox, &api, "after 502").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reading_a_request_shows_its_approvals_and_steps_with_graph_request_ids() {
    let sandbox = sandbox().await;
    let api = Api::of(&sandbox);
    let id = api
        .propose(&proposal(ids::ALICE_UPN, ids::INC_ALICE))
        .await
        .request_id();
    let card = sandbox.wait_for_card(&id).await.unwrap();
    let oscar = sandbox.user(ids::OSCAR, "Oscar Ruiz");
    oscar.click("approve", &id, &card, None).await.unwrap();
    sandbox.wait_for_state(&id, &["contained"]).await.unwrap();

    let answer = api.read(&format!("/api/v1/containments/{id}")).await;

    assert_eq!(answer.status, 200, "{answer:?}");
    let detail = &answer.body;
    assert_eq!(detail["request"]["state"], "contained");
    assert_eq!(detail["request"]["target_upn"], ids::ALICE_UPN);
    assert_eq!(detail["request"]["incident_number"], ids::INC_ALICE);
    let approvals = detail["approvals"].as_array().unwrap();
    assert_eq!(approvals.len(), 1, "{approvals:?}");
    assert_eq!(approvals[0]["approver_id"], ids::OSCAR);
    assert_eq!(approvals[0]["decision"], "approve");
    let steps = detail["steps"].as_array().unwrap();
    assert!(steps.iter().all(|s| s["status"] == "done"), "{steps:?}");
    let issued: BTreeSet<String> = sandbox
        .tenant
        .graph()
        .calls()
        .iter()
        .map(|c| c.request_id.clone())
        .collect();
    for name in ["block_sign_in", "revoke_sessions"] {
        let step = steps.iter().find(|s| s["name"] == name).unwrap();
        let graph_id = step["outside_ids"]["request_id"].as_str().unwrap();
        assert!(
            issued.contains(graph_id),
            "{name}: {graph_id} not from Graph"
        );
    }
    let lower = api
        .read(&format!("/api/v1/containments/{}", id.to_lowercase()))
        .await;
    assert_eq!(lower.body["request"]["id"], id.as_str(), "ids in any case");
}

/// Found by the schema-driven fuzz run: a step that called no outside
/// system was answered with `"outside_ids": null` where the document
/// promises an object.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_that_called_no_outside_system_shows_empty_outside_ids() {
    let sandbox = sandbox_with(auto_approve).await;
    let api = Api::of(&sandbox);
    let mut body = proposal(ids::ALICE_UPN, ids::INC_ALICE);
    body["source"] = json!("siem");
    body["risk"] = json!("high");
    let id = api.propose(&body).await.request_id();
    sandbox.wait_for_state(&id, &["contained"]).await.unwrap();

    let answer = api.read(&format!("/api/v1/containments/{id}")).await;

    let steps = answer.body["steps"].as_array().unwrap();
    let empty: Vec<&Value> = steps
        .iter()
        .filter(|s| s["outside_ids"] == json!({}))
        .collect();
    assert!(!empty.is_empty(), "a step without outside ids: {steps:?}");
    for step in steps {
        assert!(step["outside_ids"].is_object(), "{step}");
    }
    for event in events(&answer.body) {
        assert!(event["details"].is_object(), "{event}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_id_is_answered_404() {
    let sandbox = sandbox().await;
    let api = Api::of(&sandbox);

    for id in ["CR-7K2M9QXA", "nothing-here", &"X".repeat(300)] {
        let answer = api.read(&format!("/api/v1/containments/{id}")).await;
        assert_eq!(answer.status, 404, "{id}: {answer:?}");
        assert_eq!(answer.code(), "not_found");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_list_filters_by_state_incident_and_upn() {
    let sandbox = sandbox().await;
    let api = Api::of(&sandbox);
    let alice = api.propose(&proposal(ids::ALICE_UPN, ids::INC_ALICE)).await;
    let adele = api.propose(&proposal(ids::ADELE_UPN, ids::INC_ADELE)).await;
    let (alice, adele) = (alice.request_id(), adele.request_id());
    let card = sandbox.wait_for_card(&alice).await.unwrap();
    let priya = sandbox.user(ids::PRIYA, "Priya Shah");
    priya
        .click("reject", &alice, &card, Some("known travel"))
        .await
        .unwrap();
    sandbox.wait_for_state(&alice, &["rejected"]).await.unwrap();

    let ids_of = |answer: Answer| -> Vec<String> {
        assert_eq!(answer.status, 200, "{answer:?}");
        let items = answer.body["items"].as_array().unwrap().clone();
        items
            .iter()
            .map(|i| i["id"].as_str().unwrap().to_string())
            .collect()
    };
    let list = |query: &'static str| api.read(query);

    assert_eq!(
        ids_of(list("/api/v1/containments?state=rejected").await),
        [alice.as_str()]
    );
    assert_eq!(
        ids_of(list("/api/v1/containments?state=awaiting_approval").await),
        [adele.as_str()]
    );
    assert_eq!(
        ids_of(list("/api/v1/containments?incident=inc0010002").await),
        [adele.as_str()]
    );
    assert_eq!(
        ids_of(list("/api/v1/containments?upn=Alice%40Contoso.com").await),
        [alice.as_str()]
    );
    let both = "/api/v1/containments?state=rejected&incident=INC0010002";
    assert!(ids_of(list(both).await).is_empty());
    let all: BTreeSet<String> = ids_of(list("/api/v1/containments").await)
        .into_iter()
        .collect();
    assert_eq!(all, BTreeSet::from([alice, adele]));

    let unknown = list("/api/v1/containments?state=pending").await;
    assert_eq!(unknown.status, 400);
    assert!(unknown.message().contains("`state`"), "{unknown:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_list_pages_through_every_request_once_newest_first() {
    let sandbox = sandbox().await;
    let api = Api::of(&sandbox);
    let mut proposed = BTreeSet::new();
    for n in 1..=5 {
        let incident = format!("INC00200{n:02}");
        open_incident(&sandbox, &incident, ids::ALICE_UPN);
        let answer = api.propose(&proposal(ids::ALICE_UPN, &incident)).await;
        assert_eq!(answer.status, 202, "{answer:?}");
        proposed.insert(answer.request_id());
    }

    let mut seen = Vec::new();
    let mut created = Vec::new();
    let mut offsets = Vec::new();
    let mut offset = 0;
    loop {
        let path = format!("/api/v1/containments?limit=2&offset={offset}");
        let page = api.read(&path).await;
        assert_eq!(page.status, 200, "{page:?}");
        for item in page.body["items"].as_array().unwrap() {
            seen.push(item["id"].as_str().unwrap().to_string());
            created.push(item["created_at"].as_i64().unwrap());
        }
        match page.body["next_offset"].as_i64() {
            Some(next) => {
                offsets.push(next);
                offset = next;
            }
            None => break,
        }
    }

    assert_eq!(offsets, [2, 4], "two full pages, then the last one");
    assert_eq!(seen.len(), 5, "{seen:?}");
    assert_eq!(seen.iter().cloned().collect::<BTreeSet<_>>(), proposed);
    assert!(
        created.windows(2).all(|w| w[0] >= w[1]),
        "newest first: {created:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn page_parameters_out_of_range_are_answered_400_naming_them() {
    let sandbox = sandbox().await;
    let api = Api::of(&sandbox);
    let cases = [
        ("limit=0", "`limit`"),
        ("limit=201", "`limit`"),
        ("offset=-1", "`offset`"),
        ("limit=ten", "limit"),
    ];

    for (query, named) in cases {
        let answer = api.read(&format!("/api/v1/containments?{query}")).await;
        assert_eq!(answer.status, 400, "{query}: {answer:?}");
        assert!(answer.message().contains(named), "{query}: {answer:?}");
    }
}

/// Found by the schema-driven fuzz run: the next page's offset was added
/// without an overflow check, and the handler panicked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offset_at_the_end_of_the_integer_range_is_an_empty_last_page() {
    let sandbox = sandbox().await;
    let api = Api::of(&sandbox);
    let answer = api.propose(&proposal(ids::ALICE_UPN, ids::INC_ALICE)).await;
    assert_eq!(answer.status, 202);

    let path = format!("/api/v1/containments?limit=1&offset={}", i64::MAX);
    let page = api.read(&path).await;

    assert_eq!(page.status, 200, "{page:?}");
    assert!(page.body["items"].as_array().unwrap().is_empty());
    assert!(page.body["next_offset"].is_null());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn source_and_risk_are_recorded_on_the_request_and_in_the_audit_trail() {
    let sandbox = sandbox().await;
    let api = Api::of(&sandbox);
    let mut siem = proposal(ids::ALICE_UPN, ids::INC_ALICE);
    siem["source"] = json!("siem");
    siem["risk"] = json!("medium");
    let mut manual = proposal(ids::ADELE_UPN, ids::INC_ADELE);
    manual["source"] = json!("manual");
    manual["risk"] = json!("low");

    let siem = api.propose(&siem).await.request_id();
    let manual = api.propose(&manual).await.request_id();

    let siem = sandbox.request(&siem).await.unwrap();
    assert_eq!(siem["request"]["source"], "siem");
    assert_eq!(siem["request"]["risk"], "medium");
    let received = event(&siem, "request_received");
    assert_eq!(received["details"]["source"], "siem");
    assert_eq!(received["details"]["risk"], "medium");
    let manual = sandbox.request(&manual).await.unwrap();
    assert_eq!(
        manual["request"]["source"], "api",
        "other labels keep the route"
    );
    assert_eq!(manual["request"]["risk"], "low");
    assert_eq!(
        event(&manual, "request_received")["details"]["source"],
        "api"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_rule_on_a_siem_proposal_for_a_standard_user_is_contained_without_a_click() {
    let sandbox = sandbox_with(auto_approve).await;
    let api = Api::of(&sandbox);
    let mut body = proposal(ids::ALICE_UPN, ids::INC_ALICE);
    body["source"] = json!("siem");
    body["risk"] = json!("high");

    let answer = api.propose(&body).await;

    assert_eq!(answer.status, 202, "{answer:?}");
    let id = answer.request_id();
    let done = sandbox.wait_for_state(&id, &["contained"]).await.unwrap();
    assert_eq!(done["request"]["auto_approved_by"], RULE);
    assert!(done["approvals"].as_array().unwrap().is_empty(), "no human");
    assert_eq!(event(&done, "auto_approved")["details"]["rule"], RULE);
    assert_eq!(
        graph_writes(&sandbox).len(),
        2,
        "{:?}",
        graph_writes(&sandbox)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_rule_on_the_servicenow_webhook_saying_siem_is_contained_without_a_click() {
    let sandbox = sandbox_with(auto_approve).await;
    let mut body = proposal(ids::ALICE_UPN, ids::INC_ALICE);
    body["source"] = json!("siem");
    body["risk"] = json!("high");

    let status = send_webhook(&sandbox, &body.to_string()).await.unwrap();

    assert_eq!(status, 202);
    let id = sandbox
        .wait_for_request(ids::ALICE_UPN, ids::INC_ALICE)
        .await
        .unwrap();
    let done = sandbox.wait_for_state(&id, &["contained"]).await.unwrap();
    assert_eq!(done["request"]["source"], "siem");
    assert_eq!(done["request"]["auto_approved_by"], RULE);
    assert!(done["approvals"].as_array().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_rule_on_every_other_source_still_waits_for_a_human() {
    let sandbox = sandbox_with(auto_approve).await;
    let api = Api::of(&sandbox);
    for n in 1..=5 {
        open_incident(&sandbox, &format!("INC00300{n:02}"), ids::ALICE_UPN);
    }
    let high = |incident: &str, source: Option<&str>| {
        let mut body = proposal(ids::ALICE_UPN, incident);
        body["risk"] = json!("high");
        if let Some(source) = source {
            body["source"] = json!(source);
        }
        body
    };

    let unlabelled = api.propose(&high("INC0030001", None)).await;
    let manual = api.propose(&high("INC0030002", Some("manual"))).await;
    let mut low = high("INC0030003", Some("siem"));
    low["risk"] = json!("medium");
    let low = api.propose(&low).await;
    let webhook = high("INC0030004", None).to_string();
    assert_eq!(send_webhook(&sandbox, &webhook).await.unwrap(), 202);
    let sam = sandbox.user(ids::SAM, "Sam Lee");
    sam.say_in_channel("contain alice@contoso.com INC0030005 token theft")
        .await
        .unwrap();

    let mut waiting = vec![
        unlabelled.request_id(),
        manual.request_id(),
        low.request_id(),
    ];
    for incident in ["INC0030004", "INC0030005"] {
        let id = sandbox.wait_for_request(ids::ALICE_UPN, incident).await;
        waiting.push(id.unwrap());
    }
    let mut sources = Vec::new();
    for id in &waiting {
        sandbox.wait_for_card(id).await.unwrap();
        let detail = sandbox.request(id).await.unwrap();
        assert_eq!(detail["request"]["state"], "awaiting_approval", "{id}");
        assert!(detail["request"]["auto_approved_by"].is_null(), "{id}");
        sources.push(detail["request"]["source"].as_str().unwrap().to_string());
    }
    assert_eq!(sources, ["api", "api", "siem", "servicenow", "teams"]);
    assert!(
        graph_writes(&sandbox).is_empty(),
        "{:?}",
        graph_writes(&sandbox)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_rule_on_a_privileged_target_from_a_siem_still_needs_two_humans() {
    let sandbox = sandbox_with(auto_approve).await;
    let api = Api::of(&sandbox);
    let mut body = proposal(ids::ADELE_UPN, ids::INC_ADELE);
    body["source"] = json!("siem");
    body["risk"] = json!("high");

    let id = api.propose(&body).await.request_id();

    sandbox.wait_for_card(&id).await.unwrap();
    let detail = sandbox.request(&id).await.unwrap();
    assert_eq!(detail["request"]["classification"], "privileged");
    assert_eq!(detail["request"]["state"], "awaiting_approval");
    assert_eq!(detail["request"]["required_approvals"], 2);
    assert!(detail["request"]["auto_approved_by"].is_null());
    assert!(graph_writes(&sandbox).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_rule_off_a_siem_proposal_waits_for_a_human() {
    let sandbox = sandbox().await;
    let api = Api::of(&sandbox);
    let mut body = proposal(ids::ALICE_UPN, ids::INC_ALICE);
    body["source"] = json!("siem");
    body["risk"] = json!("high");

    let id = api.propose(&body).await.request_id();

    sandbox.wait_for_card(&id).await.unwrap();
    let detail = sandbox.request(&id).await.unwrap();
    assert_eq!(detail["request"]["source"], "siem");
    assert_eq!(detail["request"]["state"], "awaiting_approval");
    assert!(detail["request"]["auto_approved_by"].is_null());
    assert!(graph_writes(&sandbox).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_name_is_the_requesting_system_in_the_thread_and_the_audit_trail() {
    const SENTINEL: &str = "sentinel-token-value";
    let sandbox = sandbox_with(|config| {
        config.api.tokens.push(ApiToken::Named {
            name: "sentinel-prod".into(),
            token: SENTINEL.to_string().into(),
        });
    })
    .await;
    let api = Api::of(&sandbox);

    let answer = api
        .propose_as(SENTINEL, &proposal(ids::ALICE_UPN, ids::INC_ALICE))
        .await;

    assert_eq!(answer.status, 202, "{answer:?}");
    let id = answer.request_id();
    let card = sandbox.wait_for_card(&id).await.unwrap();
    let detail = sandbox.request(&id).await.unwrap();
    assert_eq!(detail["request"]["requester"]["id"], ids::SAM);
    assert_eq!(
        detail["request"]["requester"]["name"],
        "Sam Lee via sentinel-prod"
    );
    let received = event(&detail, "request_received");
    assert_eq!(received["actor"], ids::SAM);
    assert_eq!(
        received["details"]["requester_name"],
        "Sam Lee via sentinel-prod"
    );
    let thread = thread_text(&sandbox, &card);
    assert!(thread.contains("Sam Lee via sentinel-prod"), "{thread}");
    assert!(!thread.contains("sandbox-siem"), "{thread}");
    // The token's value is never written where people or auditors read.
    let audit = serde_json::to_string(&detail["audit"]).unwrap();
    let transcript = sandbox.tenant.connector().transcript();
    assert!(!audit.contains(SENTINEL) && !transcript.contains(SENTINEL));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proposals_over_a_tokens_rate_limit_are_answered_429_with_retry_after_and_not_stored() {
    const OTHER: &str = "splunk-token-value";
    let sandbox = sandbox_with(|config| {
        config.api.rate_limit_per_minute = 1;
        config.api.rate_limit_burst = 2;
        config.api.tokens.push(ApiToken::Named {
            name: "splunk".into(),
            token: OTHER.to_string().into(),
        });
    })
    .await;
    let api = Api::of(&sandbox);
    for n in 1..=4 {
        open_incident(&sandbox, &format!("INC00400{n:02}"), ids::ALICE_UPN);
    }
    let first = api.propose(&proposal(ids::ALICE_UPN, "INC0040001")).await;
    let second = api.propose(&proposal(ids::ALICE_UPN, "INC0040002")).await;
    assert_eq!((first.status, second.status), (202, 202));
    let graph_calls = sandbox.tenant.graph().calls().len();

    let limited = api.propose(&proposal(ids::ALICE_UPN, "INC0040003")).await;

    assert_eq!(limited.status, 429, "{limited:?}");
    assert_eq!(limited.code(), "too_many_requests");
    let wait: u64 = limited.retry_after.as_deref().unwrap().parse().unwrap();
    assert!((1..=60).contains(&wait), "Retry-After {wait}");
    assert!(limited.message().contains(&wait.to_string()), "{limited:?}");
    assert!(sandbox
        .find(ids::ALICE_UPN, "INC0040003")
        .await
        .unwrap()
        .is_empty());
    let transcript = sandbox.tenant.connector().transcript();
    assert!(!transcript.contains("INC0040003"), "no card: {transcript}");
    assert_eq!(
        sandbox.tenant.graph().calls().len(),
        graph_calls,
        "no lookup"
    );
    assert_eq!(listed_ids(&api).await.len(), 2, "reads are not limited");
    let other = api
        .propose_as(OTHER, &proposal(ids::ALICE_UPN, "INC0040004"))
        .await;
    assert_eq!(
        other.status, 202,
        "each token has its own bucket: {other:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_is_served_without_a_token_and_every_operation_in_it_is_served() {
    let sandbox = sandbox().await;
    let http = reqwest::Client::new();

    let answer = send(http.get(format!("{}/api/v1/openapi.json", sandbox.base_url))).await;

    assert_eq!(answer.status, 200, "{answer:?}");
    let document = &answer.body;
    assert!(document["openapi"].as_str().unwrap().starts_with("3.1"));
    let mut operations = BTreeSet::new();
    for (path, item) in document["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            operations.insert(format!("{} {path}", method.to_uppercase()));
        }
    }
    for expected in [
        "POST /api/v1/containments",
        "GET /api/v1/containments",
        "GET /api/v1/containments/{id}",
        "GET /api/v1/openapi.json",
        "POST /api/servicenow/webhook",
        "POST /api/messages",
        "GET /healthz",
    ] {
        assert!(
            operations.contains(expected),
            "{expected} in {operations:?}"
        );
    }
    // Every documented operation reaches a handler: the router answers
    // neither its 404 for an unknown path nor 405 for an unknown method.
    for operation in &operations {
        let (method, path) = operation.split_once(' ').unwrap();
        let url = format!("{}{}", sandbox.base_url, path.replace("{id}", "CR-NONE"));
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let response = http.request(method, &url).send().await.unwrap();
        // The router's own 404 and 405 have no body; every handler's
        // answer that is not a success has a JSON error.
        let routed =
            response.headers().get(CONTENT_TYPE).is_some() || response.status().is_success();
        assert!(
            routed,
            "{operation} answered {} by the router",
            response.status()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_documented_answers_of_a_proposal_are_the_ones_it_gives() {
    let sandbox = sandbox().await;
    let url = format!("{}/api/v1/openapi.json", sandbox.base_url);
    let document: Value = reqwest::get(url).await.unwrap().json().await.unwrap();
    let post = &document["paths"]["/api/v1/containments"]["post"];

    let documented: BTreeSet<&str> = post["responses"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    for status in ["200", "202", "400", "401", "413", "415", "422", "429"] {
        assert!(documented.contains(status), "{status} in {documented:?}");
    }
    let retry = &post["responses"]["429"]["headers"]["Retry-After"];
    assert!(retry.is_object(), "429 documents Retry-After");
    let body = &document["components"]["schemas"]["ProposalBody"];
    let required: BTreeSet<&str> = body["required"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    let wanted = ["affected_user", "justification", "number", "requested_by"];
    assert_eq!(required, BTreeSet::from(wanted));
    // The answer to a proposal links to reading the request it names,
    // by an operationId the document defines.
    let link = &post["responses"]["202"]["links"]["show"];
    let target = link["operationId"]
        .as_str()
        .expect("a camel-case operationId");
    let show = &document["paths"]["/api/v1/containments/{id}"]["get"];
    assert_eq!(show["operationId"], target);
    assert_eq!(link["parameters"]["id"], "$response.body#/request_id");
    // The example is a proposal the sandbox accepts.
    let example = body["example"].clone();
    let answer = Api::of(&sandbox).propose(&example).await;
    assert_eq!(answer.status, 202, "{answer:?}");
}
