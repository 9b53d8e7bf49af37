//! The whole loop over real HTTP: Teams activities in, the simulated
//! tenant's Graph, ServiceNow and Bot Connector out.

use std::time::Duration;

use cordon::demo::{send_webhook, Sandbox};
use cordon::sandbox::tenant::ids;
use serde_json::{json, Value};
use support::graph_writes;

mod support;

async fn sandbox() -> Sandbox {
    Sandbox::start("127.0.0.1:0".parse().unwrap(), None)
        .await
        .expect("sandbox starts")
}

async fn requested(
    sandbox: &Sandbox,
    who: (&str, &str),
    text: &str,
    upn: &str,
    inc: &str,
) -> (String, String) {
    let user = sandbox.user(who.0, who.1);
    let answer = user.say_in_channel(text).await.unwrap();
    assert_eq!(answer.status, 200);
    let id = sandbox.wait_for_request(upn, inc).await.unwrap();
    let card = sandbox.wait_for_card(&id).await.unwrap();
    (id, card)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standard_user_is_contained_after_one_approval_with_block_before_revoke() {
    let sandbox = sandbox().await;
    let (id, card) = requested(
        &sandbox,
        (ids::SAM, "Sam Lee"),
        "contain alice@contoso.com INC0010001 token theft",
        "alice@contoso.com",
        "INC0010001",
    )
    .await;
    assert!(
        graph_writes(&sandbox.tenant, ids::ALICE).is_empty(),
        "no write before approval"
    );

    let oscar = sandbox.user(ids::OSCAR, "Oscar Ruiz");
    let answer = oscar.click("approve", &id, &card, None).await.unwrap();
    assert_eq!(answer.status, 200);
    assert_eq!(answer.body["statusCode"], 200);
    assert_eq!(
        answer.body["type"],
        "application/vnd.microsoft.card.adaptive"
    );

    let done = sandbox.wait_for_state(&id, &["contained"]).await.unwrap();
    let writes = graph_writes(&sandbox.tenant, ids::ALICE);
    assert_eq!(writes.len(), 2, "{writes:?}");
    assert!(writes[0].starts_with("PATCH"), "{writes:?}");
    assert!(writes[1].ends_with("revokeSignInSessions"), "{writes:?}");
    let alice = sandbox.tenant.graph().user(ids::ALICE).unwrap();
    assert!(!alice.account_enabled);

    let steps = done["steps"].as_array().unwrap();
    assert!(steps.iter().all(|s| s["status"] == "done"), "{steps:?}");
    let notes = sandbox.tenant.servicenow().work_notes("INC0010001");
    assert!(notes.len() >= 2, "{notes:?}");
    assert!(notes
        .iter()
        .any(|n| n.contains(&id) && n.contains("request-id")));
    let incident = sandbox.tenant.servicenow().incident("INC0010001").unwrap();
    assert_eq!(incident["state"], "2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_requester_cannot_approve_their_own_request() {
    let sandbox = sandbox().await;
    let (id, card) = requested(
        &sandbox,
        (ids::OSCAR, "Oscar Ruiz"),
        "contain alice@contoso.com INC0010001 suspicious inbox rules",
        "alice@contoso.com",
        "INC0010001",
    )
    .await;
    let oscar = sandbox.user(ids::OSCAR, "Oscar Ruiz");
    let answer = oscar.click("approve", &id, &card, None).await.unwrap();
    assert_eq!(
        answer.body["type"],
        "application/vnd.microsoft.activity.message"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let request = sandbox.request(&id).await.unwrap();
    assert_eq!(request["request"]["state"], "awaiting_approval");
    assert!(request["approvals"].as_array().unwrap().is_empty());
    let refused = request["audit"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["event"] == "approval_refused");
    assert!(refused, "the refusal is audited");
    assert!(graph_writes(&sandbox.tenant, ids::ALICE).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn someone_outside_the_approver_group_cannot_approve() {
    let sandbox = sandbox().await;
    let (id, card) = requested(
        &sandbox,
        (ids::OSCAR, "Oscar Ruiz"),
        "contain alice@contoso.com INC0010001 risky sign-in",
        "alice@contoso.com",
        "INC0010001",
    )
    .await;
    let sam = sandbox.user(ids::SAM, "Sam Lee");
    let answer = sam.click("approve", &id, &card, None).await.unwrap();
    assert_eq!(
        answer.body["type"],
        "application/vnd.microsoft.activity.message"
    );
    let request = sandbox.request(&id).await.unwrap();
    assert_eq!(request["request"]["state"], "awaiting_approval");
    assert!(graph_writes(&sandbox.tenant, ids::ALICE).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_privileged_target_needs_two_distinct_approvers() {
    let sandbox = sandbox().await;
    let (id, card) = requested(
        &sandbox,
        (ids::SAM, "Sam Lee"),
        "contain adele.admin@contoso.com INC0010002 admin token replay",
        "adele.admin@contoso.com",
        "INC0010002",
    )
    .await;
    let oscar = sandbox.user(ids::OSCAR, "Oscar Ruiz");
    let priya = sandbox.user(ids::PRIYA, "Priya Shah");
    oscar.click("approve", &id, &card, None).await.unwrap();
    let twice = oscar.click("approve", &id, &card, None).await.unwrap();
    assert_eq!(
        twice.body["type"],
        "application/vnd.microsoft.activity.message"
    );
    let request = sandbox.request(&id).await.unwrap();
    assert_eq!(request["request"]["state"], "awaiting_approval");
    assert_eq!(request["request"]["required_approvals"], 2);
    assert!(graph_writes(&sandbox.tenant, ids::ADELE).is_empty());

    priya.click("approve", &id, &card, None).await.unwrap();
    sandbox.wait_for_state(&id, &["contained"]).await.unwrap();
    assert_eq!(graph_writes(&sandbox.tenant, ids::ADELE).len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_request_changes_nothing_in_entra() {
    let sandbox = sandbox().await;
    let (id, card) = requested(
        &sandbox,
        (ids::SAM, "Sam Lee"),
        "contain alice@contoso.com INC0010001 maybe phished",
        "alice@contoso.com",
        "INC0010001",
    )
    .await;
    let priya = sandbox.user(ids::PRIYA, "Priya Shah");
    priya
        .click("reject", &id, &card, Some("user confirmed the travel"))
        .await
        .unwrap();
    let request = sandbox.wait_for_state(&id, &["rejected"]).await.unwrap();
    assert!(request["request"]["outcome"]
        .as_str()
        .unwrap()
        .contains("user confirmed the travel"));
    let late = sandbox.user(ids::OSCAR, "Oscar Ruiz");
    let answer = late.click("approve", &id, &card, None).await.unwrap();
    assert_eq!(
        answer.body["type"],
        "application/vnd.microsoft.activity.message"
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(graph_writes(&sandbox.tenant, ids::ALICE).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_requests_are_answered_and_store_nothing() {
    let sandbox = sandbox().await;
    let cases = [
        (
            "contain nobody@contoso.com INC0010001 typo",
            "nobody@contoso.com",
            "INC0010001",
        ),
        (
            "contain alice@fabrikam.com INC0010001 wrong domain",
            "alice@fabrikam.com",
            "INC0010001",
        ),
        (
            "contain not-an-upn INC0010001 what",
            "not-an-upn",
            "INC0010001",
        ),
        (
            "contain alice@contoso.com INC0099999 no such incident",
            "alice@contoso.com",
            "INC0099999",
        ),
        (
            "contain breakglass@contoso.com INC0010005 glass",
            "breakglass@contoso.com",
            "INC0010005",
        ),
        (
            "contain dave.disabled@contoso.com INC0010004 old",
            "dave.disabled@contoso.com",
            "INC0010004",
        ),
    ];
    for (text, upn, incident) in cases {
        let answer = sam_says(&sandbox, text).await;
        assert!(!answer.is_empty(), "{text} got an answer");
        assert!(
            sandbox.find(upn, incident).await.unwrap().is_empty(),
            "{text} stored nothing"
        );
    }
    assert!(sandbox
        .engine
        .store
        .audit_events(None)
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mistyped_command_is_answered_with_what_to_type() {
    let sandbox = sandbox().await;
    let answer = sam_says(&sandbox, "contian alice@contoso.com INC0010001 x").await;
    assert!(answer.contains("contain"), "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resent_activity_is_processed_once() {
    let sandbox = sandbox().await;
    let activity = json!({
        "type": "message", "id": "resent-1", "serviceUrl": sandbox.tenant.connector_service_url(),
        "channelId": "msteams",
        "from": { "id": "29:sam", "name": "Sam Lee", "aadObjectId": ids::SAM },
        "conversation": { "id": "a:personal-sam", "conversationType": "personal", "tenantId": ids::TENANT_ID },
        "text": "contain alice@contoso.com INC0010001 resent",
        "channelData": { "tenant": { "id": ids::TENANT_ID } },
    });
    let http = reqwest::Client::new();
    for _ in 0..3 {
        let status = http
            .post(sandbox.messages_url())
            .json(&activity)
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, 200);
    }
    let id = sandbox
        .wait_for_request("alice@contoso.com", "INC0010001")
        .await
        .unwrap();
    sandbox.wait_for_card(&id).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let answers = sandbox
        .tenant
        .connector()
        .messages()
        .iter()
        .filter(|m| m.conversation_id == "a:personal-sam")
        .count();
    assert_eq!(answers, 1, "one answer for three deliveries");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_activities_get_a_clear_4xx_and_store_nothing() {
    let sandbox = sandbox().await;
    let http = reqwest::Client::new();
    let malformed = http
        .post(sandbox.messages_url())
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(malformed.status(), 400);
    let body: Value = malformed.json().await.unwrap();
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("activity"));

    let oversized = http
        .post(sandbox.messages_url())
        .header("content-type", "application/json")
        .body(format!(
            "{{\"type\":\"message\",\"text\":\"{}\"}}",
            "x".repeat(400_000)
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(oversized.status(), 413);

    let other_tenant = json!({
        "type": "message", "id": "x1", "serviceUrl": sandbox.tenant.connector_service_url(),
        "channelId": "msteams",
        "from": { "id": "29:eve", "aadObjectId": ids::SAM },
        "conversation": { "id": "a:eve" },
        "text": "contain alice@contoso.com INC0010001 from elsewhere",
        "channelData": { "tenant": { "id": "11111111-2222-3333-4444-555555555555" } },
    });
    let status = http
        .post(sandbox.messages_url())
        .json(&other_tenant)
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 403);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(sandbox
        .find("alice@contoso.com", "INC0010001")
        .await
        .unwrap()
        .is_empty());
    assert!(sandbox.tenant.connector().messages().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_servicenow_webhook_starts_the_same_flow_once() {
    let sandbox = sandbox().await;
    let body = json!({
        "number": "INC0010001", "affected_user": "alice@contoso.com",
        "requested_by": "sam.analyst@contoso.com", "justification": "EDR alert",
    })
    .to_string();
    let sent_at = chrono::Utc::now().timestamp();
    let first = cordon::demo::send_webhook_at(&sandbox, &body, sent_at).await;
    assert_eq!(first.unwrap(), 202);
    let id = sandbox
        .wait_for_request("alice@contoso.com", "INC0010001")
        .await
        .unwrap();
    // A redelivery is signed anew, with another timestamp.
    let redelivered = sent_at + 1;
    assert_eq!(
        cordon::demo::send_webhook_at(&sandbox, &body, redelivered)
            .await
            .unwrap(),
        200
    );
    assert_eq!(
        sandbox
            .find("alice@contoso.com", "INC0010001")
            .await
            .unwrap()
            .len(),
        1
    );
    let card = sandbox.wait_for_card(&id).await.unwrap();
    sandbox
        .user(ids::OSCAR, "Oscar Ruiz")
        .click("approve", &id, &card, None)
        .await
        .unwrap();
    sandbox.wait_for_state(&id, &["contained"]).await.unwrap();
    assert_eq!(graph_writes(&sandbox.tenant, ids::ALICE).len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_webhooks_are_refused_and_store_nothing() {
    let sandbox = sandbox().await;
    let url = format!("{}/api/servicenow/webhook", sandbox.base_url);
    let body = json!({
        "number": "INC0010001", "affected_user": "alice@contoso.com",
        "requested_by": "sam.analyst@contoso.com", "justification": "x",
    })
    .to_string();
    let http = reqwest::Client::new();
    let unsigned = http.post(&url).body(body.clone()).send().await.unwrap();
    assert_eq!(unsigned.status(), 401);
    let forged = http
        .post(&url)
        .header(
            "x-cordon-timestamp",
            chrono::Utc::now().timestamp().to_string(),
        )
        .header("x-cordon-signature", "bm90IGEgcmVhbCBzaWduYXR1cmU=")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 401);
    assert_eq!(send_webhook(&sandbox, "{broken").await.unwrap(), 400);
    let missing = json!({ "number": "INC0010001", "requested_by": "sam.analyst@contoso.com",
                          "justification": "x" })
    .to_string();
    assert_eq!(send_webhook(&sandbox, &missing).await.unwrap(), 400);
    let unknown = json!({ "number": "INC0010001", "affected_user": "ghost@contoso.com",
                          "requested_by": "sam.analyst@contoso.com", "justification": "x" })
    .to_string();
    assert_eq!(send_webhook(&sandbox, &unknown).await.unwrap(), 422);
    assert!(sandbox
        .find("alice@contoso.com", "INC0010001")
        .await
        .unwrap()
        .is_empty());
    assert!(sandbox
        .engine
        .store
        .audit_events(None)
        .await
        .unwrap()
        .is_empty());
}

/// What the bot answers to Sam Lee typing `text` in the SOC channel.
async fn sam_says(sandbox: &Sandbox, text: &str) -> String {
    let sam = sandbox.user(ids::SAM, "Sam Lee");
    let before = sandbox.tenant.connector().messages().len();
    sam.say_in_channel(text).await.unwrap();
    next_answer(sandbox, before).await
}

async fn next_answer(sandbox: &Sandbox, before: usize) -> String {
    for _ in 0..200 {
        let messages = sandbox.tenant.connector().messages();
        if messages.len() > before {
            return cordon::sandbox::render_text(&messages[before].activity);
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the bot never answered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_waiting_for_a_free_slot_starts_when_one_frees_not_at_the_next_poll() {
    let sandbox = Sandbox::start_with("127.0.0.1:0".parse().unwrap(), None, |config| {
        config.runner.concurrency = 1;
        config.runner.poll_interval = Duration::from_secs(3600);
    })
    .await
    .unwrap();
    let sam = (ids::SAM, "Sam Lee");
    let (alice, alice_card) = requested(
        &sandbox,
        sam,
        "contain alice@contoso.com INC0010001 token theft",
        "alice@contoso.com",
        "INC0010001",
    )
    .await;
    let (svc, svc_card) = requested(
        &sandbox,
        sam,
        "contain svc-backup@contoso.com INC0010003 used interactively",
        "svc-backup@contoso.com",
        "INC0010003",
    )
    .await;

    let oscar = sandbox.user(ids::OSCAR, "Oscar Ruiz");
    oscar
        .click("approve", &alice, &alice_card, None)
        .await
        .unwrap();
    oscar.click("approve", &svc, &svc_card, None).await.unwrap();

    sandbox
        .wait_for_state(&alice, &["contained"])
        .await
        .unwrap();
    sandbox.wait_for_state(&svc, &["contained"]).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_policy_command_explains_without_an_incident_and_changes_nothing() {
    let sandbox = sandbox().await;

    let answer = sam_says(&sandbox, "policy adele.admin@contoso.com").await;

    assert!(answer.contains("would proceed"), "{answer}");
    assert!(answer.contains("privileged"), "{answer}");
    assert!(answer.contains("Approvals needed: 2"), "{answer}");
    assert!(graph_writes(&sandbox.tenant, ids::ADELE).is_empty());
    assert!(sandbox
        .engine
        .store
        .audit_events(None)
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn activity_ids_are_forgotten_a_day_after_they_were_seen() {
    let sandbox = sandbox().await;
    let store = &sandbox.engine.store;
    let now = chrono::Utc::now().timestamp_millis();
    let hour = 60 * 60 * 1000;
    for (id, at) in [("19:a|old", now - 25 * hour), ("19:a|recent", now - hour)] {
        sqlx::query("INSERT INTO seen_activities (activity_id, at) VALUES ($1, $2)")
            .bind(id)
            .bind(at)
            .execute(store.pool())
            .await
            .unwrap();
    }

    cordon::containment::runner::Runner::new(sandbox.engine.clone())
        .tick()
        .await
        .unwrap();

    assert!(store.first_sighting("19:a|old").await.unwrap(), "forgotten");
    assert!(!store.first_sighting("19:a|recent").await.unwrap(), "kept");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_id_written_in_upper_case_is_the_same_tenant() {
    let sandbox = sandbox().await;
    let activity = json!({
        "type": "message",
        "id": "upper-case-tenant-1",
        "serviceUrl": sandbox.tenant.connector_service_url(),
        "channelId": "msteams",
        "from": { "id": format!("29:{}", ids::SAM), "aadObjectId": ids::SAM, "name": "Sam Lee" },
        "conversation": { "id": "a:personal-sam", "conversationType": "personal" },
        "recipient": { "id": format!("28:{}", ids::BOT_APP_ID) },
        "text": "contain alice@contoso.com INC0010001 token theft",
        "channelData": { "tenant": { "id": ids::TENANT_ID.to_uppercase() } },
    });

    let answer = reqwest::Client::new()
        .post(sandbox.messages_url())
        .json(&activity)
        .send()
        .await
        .unwrap();

    assert_eq!(answer.status(), 200);
    let id = sandbox
        .wait_for_request("alice@contoso.com", "INC0010001")
        .await;
    assert!(id.is_ok(), "the request was not taken");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_configuration_built_in_code_cannot_open_anonymous_access_to_the_network() {
    let tenant = cordon::sandbox::SimulatedTenant::start("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = format!("sqlite://{}", dir.path().join("cordon.db").display());
    let bind = "0.0.0.0:0".parse().unwrap();
    let mut config =
        cordon::demo::sandbox_config(&tenant, "127.0.0.1:0".parse().unwrap(), &store).unwrap();
    config.server.bind = bind;
    assert!(config.bot.allow_anonymous);

    let built = cordon::startup::Application::build(config).await;

    let error = format!("{:#}", built.err().expect("refused"));
    assert!(error.contains("bot.allow_anonymous"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_url_is_written_when_it_changes_not_for_every_activity() {
    let sandbox = sandbox().await;
    let key = format!("tenant:{}", ids::TENANT_ID);
    let written = || async {
        let row: (String, i64) =
            sqlx::query_as("SELECT service_url, at FROM conversations WHERE key = $1")
                .bind(&key)
                .fetch_one(sandbox.engine.store.pool())
                .await
                .unwrap();
        row
    };
    let update = |n: u32, service_url: &str| {
        json!({
            "type": "conversationUpdate",
            "id": format!("update-{n}"),
            "serviceUrl": service_url,
            "channelId": "msteams",
            "from": { "id": "29:someone" },
            "recipient": { "id": format!("28:{}", ids::BOT_APP_ID) },
            "conversation": { "id": "19:general@thread.tacv2" },
            "channelData": { "tenant": { "id": ids::TENANT_ID } },
        })
    };
    let http = reqwest::Client::new();
    let send = |activity: Value| {
        let request = http.post(sandbox.messages_url()).json(&activity);
        async move { assert_eq!(request.send().await.unwrap().status(), 200) }
    };
    let usual = sandbox.tenant.connector_service_url();

    send(update(1, &usual)).await;
    let first = written().await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    send(update(2, &usual)).await;
    let again = written().await;
    send(update(3, "https://smba.trafficmanager.net/emea/")).await;
    let moved = written().await;

    assert_eq!(first.0, usual);
    assert_eq!(again, first, "the same URL was written again");
    assert_eq!(moved.0, "https://smba.trafficmanager.net/emea/");
    assert!(moved.1 > first.1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_finds_a_request_by_id_upn_or_incident() {
    let sandbox = sandbox().await;
    let sam = (ids::SAM, "Sam Lee");
    let (id, card) = requested(
        &sandbox,
        sam,
        "contain alice@contoso.com INC0010001 token theft",
        "alice@contoso.com",
        "INC0010001",
    )
    .await;
    let oscar = sandbox.user(ids::OSCAR, "Oscar Ruiz");
    oscar.click("approve", &id, &card, None).await.unwrap();
    sandbox.wait_for_state(&id, &["contained"]).await.unwrap();
    // Every thread message of the run is out before the answers are read.
    sandbox.engine.teams.settled().await;
    let by_id = sam_says(&sandbox, &format!("status {}", id.to_lowercase())).await;
    let by_upn = sam_says(&sandbox, "status ALICE@contoso.com").await;
    let by_incident = sam_says(&sandbox, "status inc0010001").await;
    let unknown = sam_says(&sandbox, "status INC0099999").await;

    assert!(
        by_id.contains(&id) && by_id.contains("Contained"),
        "{by_id}"
    );
    for answer in [&by_upn, &by_incident] {
        assert!(answer.contains(&id), "{answer}");
        assert!(answer.contains("Contained"), "{answer}");
    }
    assert!(
        unknown.contains("No request matches INC0099999"),
        "{unknown}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_or_replayed_webhook_signature_is_refused() {
    let sandbox = sandbox().await;
    let body = json!({
        "number": "INC0010001", "affected_user": "alice@contoso.com",
        "requested_by": "sam.analyst@contoso.com", "justification": "token theft",
    })
    .to_string();
    let six_minutes_ago = chrono::Utc::now().timestamp() - 6 * 60;
    let stale = cordon::demo::send_webhook_at(&sandbox, &body, six_minutes_ago).await;
    assert_eq!(stale.unwrap(), 401);
    assert!(sandbox
        .engine
        .store
        .audit_events(None)
        .await
        .unwrap()
        .is_empty());

    // The same signed request twice: the second is a replay.
    let now = chrono::Utc::now().timestamp();
    let secret = secrecy::SecretString::from(cordon::demo::WEBHOOK_SECRET.to_string());
    let signature = cordon::servicenow::webhook::sign(&secret, now, body.as_bytes());
    let send = || {
        reqwest::Client::new()
            .post(format!("{}/api/servicenow/webhook", sandbox.base_url))
            .header("content-type", "application/json")
            .header("x-cordon-timestamp", now.to_string())
            .header("x-cordon-signature", signature.clone())
            .body(body.clone())
            .send()
    };
    assert_eq!(send().await.unwrap().status(), 202);
    assert_eq!(send().await.unwrap().status(), 401);
    let requests = sandbox
        .find("alice@contoso.com", "INC0010001")
        .await
        .unwrap();
    assert_eq!(requests.len(), 1);
}
