//! `POST /api/messages` over real HTTP, with anonymous activities off: the
//! running server against the simulated tenant, its tokens checked against
//! a local OpenID metadata and key server that stands in for both the Bot
//! Framework and the tenant's Entra issuer.
//!
//! Each rule of the token check is shown with an activity it refuses and
//! one it processes. A refused activity must leave nothing behind: no
//! request, no audit event, no remembered serviceUrl, no outbound call,
//! and not even its id, so that Teams' valid resend of it is processed.

use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{Method, Uri};
use axum::routing::get;
use axum::{Json, Router};
use cordon::botframework::auth::BOT_FRAMEWORK_ISSUER;
use cordon::demo::{Sandbox, API_TOKEN, APPROVALS_CHANNEL, SOC_CHANNEL, WEBHOOK_SECRET};
use cordon::sandbox::tenant::ids;
use cordon::sandbox::{PostedMessage, SimulatedTenant};
use cordon::teams::channel::{channel_key, tenant_key};
use serde_json::{json, Value};
use tokens::*;

#[path = "support/tokens.rs"]
mod tokens;

/// Every secret of the sandbox's configuration; no answer may carry one.
const SECRETS: [&str; 6] = [
    ids::BOT_APP_PASSWORD,
    ids::GRAPH_CLIENT_SECRET,
    ids::SERVICENOW_PASSWORD,
    ids::SERVICENOW_CLIENT_SECRET,
    API_TOKEN,
    WEBHOOK_SECRET,
];

// --- The issuers ----------------------------------------------------------

/// The keys the local issuers publish, and how often the Bot Framework's
/// metadata was read.
struct Issuers {
    base: String,
    bot_keys: Mutex<Vec<Value>>,
    tenant_keys: Vec<Value>,
    bot_fetches: AtomicUsize,
}

impl Issuers {
    /// Serves the Bot Framework's keys `bot-a` (endorsed for msteams) and
    /// `bot-webchat` (endorsed for webchat only), and the tenant's key
    /// `tenant-1`.
    async fn start() -> Arc<Issuers> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let issuers = Arc::new(Issuers {
            base: format!("http://{}", listener.local_addr().unwrap()),
            bot_keys: Mutex::new(vec![
                jwk(BOT_KEY_A, "bot-a", &["msteams"]),
                jwk(BOT_KEY_A, "bot-webchat", &["webchat"]),
            ]),
            tenant_keys: vec![jwk(TENANT_KEY, "tenant-1", &[])],
            bot_fetches: AtomicUsize::new(0),
        });
        let app = Router::new()
            .route("/bf/metadata", get(bot_metadata))
            .route("/bf/keys", get(bot_keys))
            .route("/tenant/metadata", get(tenant_metadata))
            .route("/tenant/keys", get(tenant_keys))
            .with_state(issuers.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        issuers
    }

    fn publish_bot_key(&self, jwk: Value) {
        self.bot_keys.lock().unwrap().push(jwk);
    }

    fn bot_fetches(&self) -> usize {
        self.bot_fetches.load(Ordering::SeqCst)
    }
}

async fn bot_metadata(State(issuers): State<Arc<Issuers>>) -> Json<Value> {
    issuers.bot_fetches.fetch_add(1, Ordering::SeqCst);
    let jwks_uri = format!("{}/bf/keys", issuers.base);
    Json(json!({ "issuer": BOT_FRAMEWORK_ISSUER, "jwks_uri": jwks_uri }))
}

async fn bot_keys(State(issuers): State<Arc<Issuers>>) -> Json<Value> {
    let keys = issuers.bot_keys.lock().unwrap().clone();
    Json(json!({ "keys": keys }))
}

async fn tenant_metadata(State(issuers): State<Arc<Issuers>>) -> Json<Value> {
    let jwks_uri = format!("{}/tenant/keys", issuers.base);
    Json(json!({ "jwks_uri": jwks_uri }))
}

async fn tenant_keys(State(issuers): State<Arc<Issuers>>) -> Json<Value> {
    Json(json!({ "keys": issuers.tenant_keys }))
}

// --- Tokens ---------------------------------------------------------------

fn bot_claims(service_url: &str) -> Value {
    json!({
        "iss": BOT_FRAMEWORK_ISSUER,
        "aud": ids::BOT_APP_ID,
        "exp": now() + 3600,
        "nbf": now() - 60,
        "serviceurl": service_url,
    })
}

fn entra_claims(issuer: &str, tid: &str) -> Value {
    json!({
        "iss": issuer,
        "aud": ids::BOT_APP_ID,
        "exp": now() + 3600,
        "nbf": now() - 60,
        "tid": tid,
        "appid": CONNECTOR_APP_ID,
    })
}

/// A Bot Framework token for `service_url`, as the Bot Connector signs it.
fn bot_token(service_url: &str) -> String {
    sign(BOT_KEY_A, "bot-a", &bot_claims(service_url))
}

// --- Activities -------------------------------------------------------------

fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// A new thread in the SOC channel, as Teams names it.
fn new_soc_thread() -> String {
    let root = uuid::Uuid::new_v4().as_u128() % 10_000_000_000_000;
    format!("{SOC_CHANNEL};messageid={root}")
}

fn teams_user(object_id: &str, name: &str) -> Value {
    json!({ "id": format!("29:{object_id}"), "name": name, "aadObjectId": object_id })
}

fn bot_account() -> Value {
    json!({ "id": format!("28:{}", ids::BOT_APP_ID), "name": "Cordon" })
}

/// Sam Lee typing `contain ...` after an @mention of the bot.
fn contain_message(id: &str, thread: &str, service_url: &str, upn: &str, incident: &str) -> Value {
    json!({
        "type": "message",
        "id": id,
        "timestamp": chrono::Utc::now().to_rfc3339(),
        "serviceUrl": service_url,
        "channelId": "msteams",
        "from": teams_user(ids::SAM, "Sam Lee"),
        "conversation": {
            "id": thread,
            "conversationType": "channel",
            "isGroup": true,
            "tenantId": ids::TENANT_ID,
        },
        "recipient": bot_account(),
        "text": format!("<at>Cordon</at> contain {upn} {incident} token theft suspected"),
        "entities": [{
            "type": "mention",
            "text": "<at>Cordon</at>",
            "mentioned": bot_account(),
        }],
        "channelData": {
            "tenant": { "id": ids::TENANT_ID },
            "team": { "id": SOC_CHANNEL },
            "channel": { "id": SOC_CHANNEL },
        },
    })
}

/// Oscar Ruiz clicking Approve on a request's card.
fn approve_click(id: &str, service_url: &str, request_id: &str, card: &str) -> Value {
    json!({
        "type": "invoke",
        "name": "adaptiveCard/action",
        "id": id,
        "timestamp": chrono::Utc::now().to_rfc3339(),
        "serviceUrl": service_url,
        "channelId": "msteams",
        "from": teams_user(ids::OSCAR, "Oscar Ruiz"),
        "conversation": {
            "id": format!("{APPROVALS_CHANNEL};messageid={card}"),
            "conversationType": "channel",
            "tenantId": ids::TENANT_ID,
        },
        "recipient": bot_account(),
        "replyToId": card,
        "value": {
            "action": {
                "type": "Action.Execute",
                "verb": "approve",
                "data": { "request_id": request_id },
            },
            "trigger": "manual",
        },
        "channelData": {
            "tenant": { "id": ids::TENANT_ID },
            "channel": { "id": APPROVALS_CHANNEL },
            "source": { "name": "message" },
        },
    })
}

/// The app being added to the SOC team, as Teams announces it.
fn installation_update(id: &str, service_url: &str) -> Value {
    json!({
        "type": "installationUpdate",
        "action": "add",
        "id": id,
        "timestamp": chrono::Utc::now().to_rfc3339(),
        "serviceUrl": service_url,
        "channelId": "msteams",
        "from": teams_user(ids::SAM, "Sam Lee"),
        "conversation": {
            "id": ids::SOC_TEAM_ID,
            "conversationType": "channel",
            "isGroup": true,
            "tenantId": ids::TENANT_ID,
        },
        "recipient": bot_account(),
        "channelData": {
            "tenant": { "id": ids::TENANT_ID },
            "team": { "id": ids::SOC_TEAM_ID, "name": "SOC" },
            "settings": { "selectedChannel": { "id": ids::SOC_TEAM_ID } },
        },
    })
}

/// The approvals channel being renamed, as Teams announces it.
fn channel_renamed(id: &str, service_url: &str) -> Value {
    json!({
        "type": "conversationUpdate",
        "id": id,
        "timestamp": chrono::Utc::now().to_rfc3339(),
        "serviceUrl": service_url,
        "channelId": "msteams",
        "from": teams_user(ids::SAM, "Sam Lee"),
        "conversation": {
            "id": APPROVALS_CHANNEL,
            "conversationType": "channel",
            "isGroup": true,
            "tenantId": ids::TENANT_ID,
        },
        "recipient": bot_account(),
        "channelData": {
            "eventType": "channelRenamed",
            "tenant": { "id": ids::TENANT_ID },
            "team": { "id": ids::SOC_TEAM_ID },
            "channel": { "id": APPROVALS_CHANNEL, "name": "Approvals (EMEA)" },
        },
    })
}

/// The same activity, said to come from another tenant.
fn from_other_tenant(mut activity: Value) -> Value {
    activity["channelData"]["tenant"]["id"] = json!(OTHER_TENANT);
    activity["conversation"]["tenantId"] = json!(OTHER_TENANT);
    activity
}

// --- The bot under test -------------------------------------------------------

/// The real server on port 0 against the simulated tenant, anonymous
/// activities off, trusting the local issuers.
struct Bot {
    sandbox: Sandbox,
    issuers: Arc<Issuers>,
    http: reqwest::Client,
}

/// What the bot answered to one activity.
struct Answer {
    status: u16,
    text: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or(Value::Null)
    }
}

impl Bot {
    async fn start() -> Bot {
        let issuers = Issuers::start().await;
        let bot_metadata = format!("{}/bf/metadata", issuers.base);
        let tenant_metadata = format!("{}/tenant/metadata", issuers.base);
        let bind: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let sandbox = Sandbox::start_with(bind, None, |config| {
            config.bot.allow_anonymous = false;
            config.bot.openid_metadata_url = bot_metadata;
            config.bot.tenant_openid_metadata_url = Some(tenant_metadata);
            config.bot.entra_caller_app_ids = vec![CONNECTOR_APP_ID.into()];
        })
        .await
        .expect("the sandbox starts");
        Bot {
            sandbox,
            issuers,
            http: reqwest::Client::new(),
        }
    }

    /// The serviceUrl of the simulated Bot Connector.
    fn service_url(&self) -> String {
        self.sandbox.tenant.connector_service_url()
    }

    async fn post(&self, activity: &Value, authorization: Option<&str>) -> Answer {
        let mut request = self.http.post(self.sandbox.messages_url()).json(activity);
        if let Some(authorization) = authorization {
            request = request.header("authorization", authorization);
        }
        let response = request.send().await.expect("the bot answers");
        Answer {
            status: response.status().as_u16(),
            text: response.text().await.unwrap(),
        }
    }

    /// Posts `activity` with a valid Bot Framework token for its serviceUrl.
    async fn post_signed(&self, activity: &Value) -> Answer {
        let service_url = activity["serviceUrl"].as_str().unwrap();
        self.post(activity, Some(&bearer(&bot_token(service_url))))
            .await
    }

    /// What the bot posted into one SOC thread.
    fn answers_in(&self, thread: &str) -> Vec<PostedMessage> {
        self.sandbox.tenant.connector().conversation(thread)
    }

    /// Proposes a containment through the automation API, not Teams.
    async fn propose_through_api(&self, upn: &str, incident: &str) -> String {
        let body = json!({
            "number": incident,
            "affected_user": upn,
            "requested_by": ids::SAM_UPN,
            "justification": "token theft suspected",
        });
        let answer: Value = self
            .http
            .post(format!("{}/api/v1/containments", self.sandbox.base_url))
            .bearer_auth(API_TOKEN)
            .json(&body)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        answer["request_id"]
            .as_str()
            .expect("a request id")
            .to_owned()
    }
}

/// Polls `probe` until it finds something, for at most ten seconds.
async fn eventually<T>(what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
    for _ in 0..400 {
        if let Some(found) = probe() {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("{what} never happened");
}

/// Whether a posted message is about request `id`.
fn mentions(message: &PostedMessage, id: &str) -> bool {
    message.activity.to_string().contains(id)
}

// --- Refusals -----------------------------------------------------------------

/// An activity the bot must refuse, and the status it must refuse it with.
struct Refusal {
    rule: &'static str,
    status: u16,
    authorization: Option<String>,
    activity: Value,
}

/// One refusal per rule, all of the same `contain` activity (same id, same
/// thread), which differs only where the rule needs it to.
fn refusals(activity: &Value, service_url: &str) -> Vec<Refusal> {
    let valid = bot_claims(service_url);
    let changed = |name: &str, value: Option<Value>| {
        let mut claims = valid.clone();
        let fields = claims.as_object_mut().unwrap();
        match value {
            Some(value) => fields.insert(name.to_owned(), value),
            None => fields.remove(name),
        };
        sign(BOT_KEY_A, "bot-a", &claims)
    };
    let tenant_signed = |issuer: &str, tid: &str| {
        let mut claims = entra_claims(issuer, ids::TENANT_ID);
        claims["tid"] = json!(tid);
        sign(TENANT_KEY, "tenant-1", &claims)
    };
    let other_v2 = format!("https://login.microsoftonline.com/{OTHER_TENANT}/v2.0");
    let amer = json!("https://smba.trafficmanager.net/amer/");

    let tokens = [
        (
            "wrong issuer",
            changed("iss", Some(json!("https://evil.example"))),
        ),
        (
            "issuer of another tenant",
            tenant_signed(&other_v2, OTHER_TENANT),
        ),
        (
            "tid of another tenant",
            tenant_signed(&sts_issuer(ids::TENANT_ID), OTHER_TENANT),
        ),
        (
            "wrong audience",
            changed("aud", Some(json!(ids::GRAPH_CLIENT_ID))),
        ),
        ("no audience", changed("aud", None)),
        ("expired", changed("exp", Some(json!(now() - 6 * 60)))),
        ("not yet valid", changed("nbf", Some(json!(now() + 6 * 60)))),
        ("alg none", unsigned_token("none", &valid)),
        (
            "HS256 keyed with the public key",
            hmac_token_keyed_with_the_public_key(&valid),
        ),
        ("unknown kid", sign(BOT_KEY_B, "never-published", &valid)),
        (
            "another key under a known kid",
            sign(BOT_KEY_B, "bot-a", &valid),
        ),
        ("serviceUrl mismatch", changed("serviceurl", Some(amer))),
        ("no serviceurl claim", changed("serviceurl", None)),
        ("not a JWT", "not-a-jwt-7f1c2e".to_owned()),
        (
            "oversized",
            format!("{}.{}.x", "a".repeat(10_000), "b".repeat(10_000)),
        ),
    ];
    let token = sign(BOT_KEY_A, "bot-a", &valid);
    let malformed_headers = [
        ("Basic scheme", format!("Basic {token}")),
        ("lower-case scheme", format!("bearer {token}")),
        ("no scheme", token.clone()),
        ("three parts", format!("Bearer {token} {token}")),
    ];

    let unauthorized = |(rule, authorization)| Refusal {
        rule,
        status: 401,
        authorization: Some(authorization),
        activity: activity.clone(),
    };
    let mut refusals: Vec<Refusal> = tokens
        .into_iter()
        .map(|(rule, token)| (rule, bearer(&token)))
        .chain(malformed_headers)
        .map(unauthorized)
        .collect();
    refusals.push(Refusal {
        authorization: None,
        ..unauthorized(("no token while anonymous activities are off", token.clone()))
    });
    refusals.push(Refusal {
        rule: "key not endorsed for msteams",
        status: 403,
        authorization: Some(bearer(&sign(BOT_KEY_A, "bot-webchat", &valid))),
        activity: activity.clone(),
    });
    let mut other_app = entra_claims(&sts_issuer(ids::TENANT_ID), ids::TENANT_ID);
    other_app["appid"] = json!(ids::GRAPH_CLIENT_ID);
    refusals.push(Refusal {
        rule: "entra token of the tenant from an unlisted app",
        status: 403,
        authorization: Some(bearer(&sign(TENANT_KEY, "tenant-1", &other_app))),
        activity: activity.clone(),
    });
    refusals.push(Refusal {
        rule: "activity from another tenant",
        status: 403,
        authorization: Some(bearer(&token)),
        activity: from_other_tenant(activity.clone()),
    });
    refusals
}

/// The refusal is the stable JSON error, and repeats neither the token
/// (nor its signature) nor any secret of the configuration.
#[track_caller]
fn assert_says_nothing_secret(rule: &str, answer: &Answer, authorization: Option<&str>) {
    let token = authorization.map_or("", |h| h.rsplit(' ').next().unwrap_or(h));
    let signature = token.rsplit('.').next().unwrap_or_default();
    let needles = [token, signature].into_iter().filter(|n| n.len() > 8);
    for needle in needles.chain(SECRETS) {
        let leaked = answer.text.contains(needle);
        assert!(!leaked, "{rule}: the answer repeats a token or a secret");
    }
    let code = if answer.status == 403 {
        "forbidden"
    } else {
        "unauthorized"
    };
    assert_eq!(
        answer.json()["error"]["code"],
        code,
        "{rule}: {}",
        answer.text
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_refused_token_leaves_nothing_behind_and_its_valid_resend_is_processed() {
    let bot = Bot::start().await;
    let sandbox = &bot.sandbox;
    let thread = new_soc_thread();
    let activity = contain_message(
        &new_id(),
        &thread,
        &bot.service_url(),
        ids::ALICE_UPN,
        ids::INC_ALICE,
    );

    for refusal in refusals(&activity, &bot.service_url()) {
        let authorization = refusal.authorization.as_deref();
        let answer = bot.post(&refusal.activity, authorization).await;
        assert_eq!(answer.status, refusal.status, "{}", refusal.rule);
        assert_says_nothing_secret(refusal.rule, &answer, authorization);
    }

    // Nothing was processed: no request, no audit event, no serviceUrl.
    let store = &sandbox.engine.store;
    assert!(store.audit_events(None).await.unwrap().is_empty());
    let found = sandbox.find(ids::ALICE_UPN, ids::INC_ALICE).await.unwrap();
    assert!(found.is_empty(), "{found:?}");
    for key in [tenant_key(ids::TENANT_ID), channel_key(SOC_CHANNEL)] {
        assert_eq!(store.service_url(&key).await.unwrap(), None, "{key}");
    }

    // Nothing was sent: no token asked for, no post, no lookup.
    let tenant = &sandbox.tenant;
    assert!(tenant.connector().messages().is_empty());
    assert!(tenant.connector().calls().is_empty());
    assert!(tenant.login().calls().is_empty());
    assert!(tenant.graph().calls().is_empty());
    assert!(tenant.servicenow().calls().is_empty());

    // The id was not kept either: the valid resend is processed.
    let answer = bot.post_signed(&activity).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    let id = sandbox
        .wait_for_request(ids::ALICE_UPN, ids::INC_ALICE)
        .await
        .unwrap();
    sandbox.wait_for_card(&id).await.unwrap();
    let answered = eventually("the answer in the thread", || {
        let answers = bot.answers_in(&thread);
        (!answers.is_empty()).then_some(answers)
    })
    .await;
    assert!(mentions(&answered[0], &id), "{:?}", answered[0].activity);
}

// --- Accepted tokens ----------------------------------------------------------

/// Sends `contain` for `upn` and `incident` with `authorization`, and
/// returns the request it created once its answer and card are posted.
async fn contained_with(bot: &Bot, authorization: &str, upn: &str, incident: &str) -> String {
    let thread = new_soc_thread();
    let activity = contain_message(&new_id(), &thread, &bot.service_url(), upn, incident);
    let answer = bot.post(&activity, Some(authorization)).await;
    assert_eq!(answer.status, 200, "{}", answer.text);

    let id = bot.sandbox.wait_for_request(upn, incident).await.unwrap();
    bot.sandbox.wait_for_card(&id).await.unwrap();
    eventually("the answer in the thread", || {
        bot.answers_in(&thread)
            .iter()
            .find(|m| mentions(m, &id))
            .cloned()
    })
    .await;
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bot_framework_token_is_processed_and_answered() {
    let bot = Bot::start().await;
    let authorization = bearer(&bot_token(&bot.service_url()));
    let id = contained_with(&bot, &authorization, ids::ALICE_UPN, ids::INC_ALICE).await;

    let request = bot.sandbox.request(&id).await.unwrap();
    assert_eq!(request["request"]["state"], "awaiting_approval");
    let connector = bot.sandbox.tenant.connector();
    let cards = connector.conversation(APPROVALS_CHANNEL);
    assert_eq!(
        cards.len(),
        1,
        "one approval card, in the approvals channel"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entra_token_of_the_tenant_is_processed_in_both_issuer_forms() {
    let bot = Bot::start().await;
    let v2 = format!("https://login.microsoftonline.com/{}/v2.0", ids::TENANT_ID);
    let cases = [
        (sts_issuer(ids::TENANT_ID), ids::ALICE_UPN, ids::INC_ALICE),
        (v2, ids::ADELE_UPN, ids::INC_ADELE),
    ];
    for (issuer, upn, incident) in cases {
        let claims = entra_claims(&issuer, ids::TENANT_ID);
        let authorization = bearer(&sign(TENANT_KEY, "tenant-1", &claims));
        contained_with(&bot, &authorization, upn, incident).await;
    }
    assert_eq!(bot.issuers.bot_fetches(), 0, "the tenant's keys were used");
}

/// Moves tokio's clock forward, for the server too; token lifetimes are
/// wall-clock times and do not move.
async fn skip_ahead(duration: Duration) {
    tokio::time::pause();
    tokio::time::advance(duration).await;
    tokio::time::resume();
}

// Current-thread, so that the server's clock is the one skipped ahead.
#[tokio::test]
async fn a_key_published_under_a_new_kid_is_picked_up() {
    let bot = Bot::start().await;
    let authorization = bearer(&bot_token(&bot.service_url()));
    contained_with(&bot, &authorization, ids::ALICE_UPN, ids::INC_ALICE).await;
    assert_eq!(bot.issuers.bot_fetches(), 1);

    // The issuer rotates to a new key. Within five minutes of the last
    // fetch, an unknown kid does not make the bot fetch the keys again.
    bot.issuers
        .publish_bot_key(jwk(BOT_KEY_B, "bot-b", &["msteams"]));
    let thread = new_soc_thread();
    let id = new_id();
    let service_url = bot.service_url();
    let activity = contain_message(&id, &thread, &service_url, ids::ADELE_UPN, ids::INC_ADELE);
    let rotated = bearer(&sign(BOT_KEY_B, "bot-b", &bot_claims(&service_url)));
    let answer = bot.post(&activity, Some(&rotated)).await;
    assert_eq!(answer.status, 401);
    assert_eq!(bot.issuers.bot_fetches(), 1);

    // Later, the new kid is fetched once and the same activity goes in.
    skip_ahead(Duration::from_secs(5 * 60)).await;
    let answer = bot.post(&activity, Some(&rotated)).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(bot.issuers.bot_fetches(), 2);
    bot.sandbox
        .wait_for_request(ids::ADELE_UPN, ids::INC_ADELE)
        .await
        .unwrap();
}

// --- Resends --------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_sent_three_times_is_processed_once() {
    let bot = Bot::start().await;
    let sandbox = &bot.sandbox;
    let thread = new_soc_thread();
    let service_url = bot.service_url();
    let activity = contain_message(
        &new_id(),
        &thread,
        &service_url,
        ids::ALICE_UPN,
        ids::INC_ALICE,
    );

    // Teams resends while the first is still in flight, and once later.
    let (first, second) = tokio::join!(bot.post_signed(&activity), bot.post_signed(&activity));
    assert_eq!((first.status, second.status), (200, 200));
    let alice = sandbox
        .wait_for_request(ids::ALICE_UPN, ids::INC_ALICE)
        .await
        .unwrap();
    sandbox.wait_for_card(&alice).await.unwrap();
    assert_eq!(bot.post_signed(&activity).await.status, 200);

    // Another request in the same thread, sent after the resends, goes
    // through the same steps; once it is answered, so would they be.
    let other = contain_message(
        &new_id(),
        &thread,
        &service_url,
        ids::ADELE_UPN,
        ids::INC_ADELE,
    );
    assert_eq!(bot.post_signed(&other).await.status, 200);
    let adele = sandbox
        .wait_for_request(ids::ADELE_UPN, ids::INC_ADELE)
        .await
        .unwrap();
    eventually("the second request's answer", || {
        bot.answers_in(&thread)
            .iter()
            .find(|m| mentions(m, &adele))
            .cloned()
    })
    .await;

    let answers = bot.answers_in(&thread);
    assert_eq!(answers.len(), 2, "{answers:#?}");
    assert_eq!(answers.iter().filter(|m| mentions(m, &alice)).count(), 1);
    let found = sandbox.find(ids::ALICE_UPN, ids::INC_ALICE).await.unwrap();
    assert_eq!(found.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_card_click_sent_twice_is_processed_once() {
    let bot = Bot::start().await;
    let sandbox = &bot.sandbox;
    let authorization = bearer(&bot_token(&bot.service_url()));
    let id = contained_with(&bot, &authorization, ids::ALICE_UPN, ids::INC_ALICE).await;
    let card = sandbox.wait_for_card(&id).await.unwrap();

    let click = approve_click(&new_id(), &bot.service_url(), &id, &card);
    let first = bot.post(&click, Some(&authorization)).await;
    assert_eq!(first.status, 200);
    let answer = first.json();
    assert_eq!(
        answer["type"], "application/vnd.microsoft.card.adaptive",
        "{answer}"
    );
    let resent = bot.post(&click, Some(&authorization)).await;
    assert_eq!((resent.status, resent.text.as_str()), (200, ""));

    sandbox.wait_for_state(&id, &["contained"]).await.unwrap();
    let events = sandbox.engine.store.audit_events(Some(&id)).await.unwrap();
    let approvals = events.iter().filter(|e| e.event == "approval_recorded");
    assert_eq!(approvals.count(), 1);
    let blocks = sandbox
        .tenant
        .graph()
        .calls()
        .into_iter()
        .filter(|c| c.method == "PATCH" && c.path.contains(ids::ALICE))
        .count();
    assert_eq!(blocks, 1);
}

// --- Where outbound posts go ------------------------------------------------------

/// A Bot Connector of another Teams region, reached under a path prefix
/// per region; it records what it is sent and answers as Teams does.
struct RegionalConnector {
    base: String,
    calls: Mutex<Vec<(Method, String, Value)>>,
    next_id: AtomicUsize,
}

impl RegionalConnector {
    async fn start() -> Arc<RegionalConnector> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let connector = Arc::new(RegionalConnector {
            base: format!("http://{}", listener.local_addr().unwrap()),
            calls: Mutex::default(),
            next_id: AtomicUsize::new(1_700_000_000_000),
        });
        let app = Router::new()
            .fallback(regional_call)
            .with_state(connector.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        connector
    }

    fn service_url(&self, region: &str) -> String {
        format!("{}/{region}/", self.base)
    }

    /// The threads started in `channel` through `region`.
    fn threads_started(&self, region: &str, channel: &str) -> usize {
        let path = format!("/{region}/v3/conversations");
        let calls = self.calls.lock().unwrap();
        calls
            .iter()
            .filter(|(method, p, _)| method == Method::POST && *p == path)
            .filter(|(_, _, body)| body["channelData"]["channel"]["id"] == channel)
            .count()
    }
}

async fn regional_call(
    State(connector): State<Arc<RegionalConnector>>,
    method: Method,
    uri: Uri,
    Json(body): Json<Value>,
) -> Json<Value> {
    let id = connector.next_id.fetch_add(1, Ordering::SeqCst).to_string();
    let path = uri.path().to_owned();
    let answer = if method == Method::POST && path.ends_with("/v3/conversations") {
        let channel = body["channelData"]["channel"]["id"].as_str().unwrap_or("");
        json!({ "id": format!("{channel};messageid={id}"), "activityId": id })
    } else {
        json!({ "id": id })
    };
    connector.calls.lock().unwrap().push((method, path, body));
    Json(answer)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_installation_from_another_service_url_moves_later_approval_cards_there() {
    let bot = Bot::start().await;
    let region = RegionalConnector::start().await;
    let amer = region.service_url("amer");

    let answer = bot
        .post_signed(&installation_update(&new_id(), &amer))
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    let id = bot
        .propose_through_api(ids::ALICE_UPN, ids::INC_ALICE)
        .await;

    bot.sandbox.wait_for_card(&id).await.unwrap();
    assert_eq!(region.threads_started("amer", APPROVALS_CHANNEL), 1);
    let simulated = bot.sandbox.tenant.connector().messages();
    assert!(simulated.is_empty(), "{simulated:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conversation_update_from_another_service_url_moves_later_approval_cards_there() {
    let bot = Bot::start().await;
    let region = RegionalConnector::start().await;

    // Until then, cards go where the analysts' messages come from.
    let authorization = bearer(&bot_token(&bot.service_url()));
    contained_with(&bot, &authorization, ids::ALICE_UPN, ids::INC_ALICE).await;
    let cards = bot
        .sandbox
        .tenant
        .connector()
        .conversation(APPROVALS_CHANNEL);
    assert_eq!(cards.len(), 1);

    let emea = region.service_url("emea");
    let answer = bot.post_signed(&channel_renamed(&new_id(), &emea)).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    let id = bot
        .propose_through_api(ids::ADELE_UPN, ids::INC_ADELE)
        .await;

    bot.sandbox.wait_for_card(&id).await.unwrap();
    assert_eq!(region.threads_started("emea", APPROVALS_CHANNEL), 1);
    let cards = bot
        .sandbox
        .tenant
        .connector()
        .conversation(APPROVALS_CHANNEL);
    assert_eq!(cards.len(), 1, "no new card at the old serviceUrl");
}

// --- Anonymous mode ---------------------------------------------------------------

/// Runs the binary and waits, for at most a minute, for it to exit; a
/// server that starts instead is killed and fails the test.
async fn cordon_exits(args: &[&str], env: &[(&str, &str)]) -> (bool, String) {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_cordon"));
    command
        .args(args)
        .env("RUST_LOG", "warn")
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    for (name, value) in env {
        command.env(name, value);
    }
    let child = command.spawn().expect("cordon runs");
    let output = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("cordon {args:?} started instead of refusing"))
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anonymous_activities_on_a_public_bind_stop_the_server_before_it_starts() {
    let tenant = SimulatedTenant::start("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = format!("sqlite://{}", dir.path().join("cordon.db").display());
    let public: SocketAddr = "0.0.0.0:0".parse().unwrap();
    let anonymous = cordon::demo::sandbox_config_toml(&tenant, public, &store);
    assert!(anonymous.contains("allow_anonymous = true"));
    let signed_only = anonymous.replace("allow_anonymous = true", "allow_anonymous = false");
    let anonymous_file = dir.path().join("anonymous.toml");
    let signed_only_file = dir.path().join("signed-only.toml");
    std::fs::write(&anonymous_file, &anonymous).unwrap();
    std::fs::write(&signed_only_file, &signed_only).unwrap();

    let from_file = ["serve", "--config", anonymous_file.to_str().unwrap()];
    let from_env = ["serve", "--config", signed_only_file.to_str().unwrap()];
    let runs = [
        (&from_file[..], vec![]),
        (&from_env[..], vec![("CORDON_BOT__ALLOW_ANONYMOUS", "true")]),
        (&["sandbox", "--bind", "0.0.0.0:0"][..], vec![]),
    ];
    for (args, env) in runs {
        let (succeeded, output) = cordon_exits(args, &env).await;
        assert!(!succeeded, "{args:?} {env:?}: {output}");
        assert!(output.contains("bot.allow_anonymous"), "{args:?}: {output}");
    }
    assert!(tenant.connector().calls().is_empty());
}
