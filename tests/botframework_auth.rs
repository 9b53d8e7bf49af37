//! Conformance of the inbound token check: every rule with a token it
//! accepts and one it refuses, against a local OpenID metadata and key
//! server standing in for both the Bot Framework and the tenant's issuer.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use cordon::botframework::auth::BOT_FRAMEWORK_ISSUER;
use cordon::botframework::{Activity, AuthError, AuthSettings, BotAuthenticator, Caller};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use tokens::*;

#[path = "support/tokens.rs"]
mod tokens;

const APP_ID: &str = "5f0c6f43-2c5e-4a0b-9d55-0c1c0e2a7b11";
const TENANT: &str = "6a1d2f4e-8b0c-4f7e-9a3b-1c2d3e4f5a6b";
const SERVICE_URL: &str = "https://smba.trafficmanager.net/emea/";

/// The keys the fake issuers publish, and what they were asked.
#[derive(Default)]
struct Issuers {
    base: Mutex<String>,
    bot_keys: Mutex<Vec<Value>>,
    tenant_keys: Mutex<Vec<Value>>,
    failing: AtomicBool,
    bot_fetches: AtomicUsize,
    tenant_fetches: AtomicUsize,
}

impl Issuers {
    fn bot_fetches(&self) -> usize {
        self.bot_fetches.load(Ordering::SeqCst)
    }

    fn publish_bot_key(&self, jwk: Value) {
        self.bot_keys.lock().unwrap().push(jwk);
    }

    fn fail(&self, failing: bool) {
        self.failing.store(failing, Ordering::SeqCst);
    }
}

type Answer = Result<Json<Value>, StatusCode>;

fn answer(issuers: &Issuers, body: Value) -> Answer {
    if issuers.failing.load(Ordering::SeqCst) {
        return Err(StatusCode::INTERNAL_SERVER_ERROR);
    }
    Ok(Json(body))
}

async fn bot_metadata(State(issuers): State<Arc<Issuers>>) -> Answer {
    issuers.bot_fetches.fetch_add(1, Ordering::SeqCst);
    let base = issuers.base.lock().unwrap().clone();
    let jwks_uri = format!("{base}/bf/keys");
    answer(
        &issuers,
        json!({ "issuer": BOT_FRAMEWORK_ISSUER, "jwks_uri": jwks_uri }),
    )
}

async fn bot_keys(State(issuers): State<Arc<Issuers>>) -> Answer {
    let keys = issuers.bot_keys.lock().unwrap().clone();
    answer(&issuers, json!({ "keys": keys }))
}

async fn tenant_metadata(State(issuers): State<Arc<Issuers>>) -> Answer {
    issuers.tenant_fetches.fetch_add(1, Ordering::SeqCst);
    let base = issuers.base.lock().unwrap().clone();
    let jwks_uri = format!("{base}/tenant/keys");
    answer(&issuers, json!({ "jwks_uri": jwks_uri }))
}

async fn tenant_keys(State(issuers): State<Arc<Issuers>>) -> Answer {
    let keys = issuers.tenant_keys.lock().unwrap().clone();
    answer(&issuers, json!({ "keys": keys }))
}

struct Fixture {
    issuers: Arc<Issuers>,
    base: String,
}

impl Fixture {
    /// Starts the issuers with bot key `bot-a` (endorsed for msteams),
    /// `bot-webchat` (endorsed for webchat only), `bot-plain` (no
    /// endorsements) and the tenant key `tenant-1`.
    async fn start() -> Self {
        let issuers = Arc::new(Issuers::default());
        issuers.publish_bot_key(jwk(BOT_KEY_A, "bot-a", &["msteams"]));
        issuers.publish_bot_key(jwk(BOT_KEY_A, "bot-webchat", &["webchat"]));
        issuers.publish_bot_key(jwk(BOT_KEY_A, "bot-plain", &[]));
        issuers.publish_bot_key(json!({ "kty": "EC", "kid": "ec-1", "crv": "P-256" }));
        *issuers.tenant_keys.lock().unwrap() = vec![jwk(TENANT_KEY, "tenant-1", &[])];

        let app = Router::new()
            .route("/bf/metadata", get(bot_metadata))
            .route("/bf/keys", get(bot_keys))
            .route("/tenant/metadata", get(tenant_metadata))
            .route("/tenant/keys", get(tenant_keys))
            .with_state(issuers.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        *issuers.base.lock().unwrap() = base.clone();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { issuers, base }
    }

    fn settings(&self) -> AuthSettings {
        AuthSettings {
            app_id: APP_ID.into(),
            tenant_id: TENANT.into(),
            openid_metadata_url: format!("{}/bf/metadata", self.base),
            tenant_openid_metadata_url: format!("{}/tenant/metadata", self.base),
            entra_caller_app_ids: vec![CONNECTOR_APP_ID.into()],
            allow_anonymous: false,
        }
    }

    fn authenticator(&self) -> BotAuthenticator {
        BotAuthenticator::new(self.settings(), reqwest::Client::new())
    }
}

fn bot_claims() -> Value {
    json!({
        "iss": BOT_FRAMEWORK_ISSUER,
        "aud": APP_ID,
        "exp": now() + 3600,
        "nbf": now() - 60,
        "serviceurl": SERVICE_URL,
    })
}

fn entra_claims(issuer: &str) -> Value {
    json!({
        "iss": issuer,
        "aud": APP_ID,
        "exp": now() + 3600,
        "nbf": now() - 60,
        "tid": TENANT,
        "appid": CONNECTOR_APP_ID,
    })
}

fn bot_token(claims: &Value) -> String {
    sign(BOT_KEY_A, "bot-a", claims)
}

fn activity() -> Activity {
    serde_json::from_value(json!({
        "type": "message",
        "id": "1",
        "serviceUrl": SERVICE_URL,
        "channelId": "msteams",
        "conversation": { "id": "19:abc@thread.tacv2;messageid=1" },
        "channelData": { "tenant": { "id": TENANT } },
    }))
    .unwrap()
}

async fn check(auth: &BotAuthenticator, token: &str) -> Result<Caller, AuthError> {
    auth.authenticate(Some(&bearer(token)), &activity()).await
}

#[track_caller]
fn assert_refused(outcome: Result<Caller, AuthError>, status: u16, check: &str) {
    match outcome {
        Ok(caller) => panic!("accepted as {caller:?}; expected {check} to fail"),
        Err(error) => {
            assert_eq!((error.status(), error.check()), (status, check), "{error}");
        }
    }
}

/// Moves tokio's clock forward; wall-clock token lifetimes are unaffected.
async fn skip_ahead(duration: Duration) {
    tokio::time::pause();
    tokio::time::advance(duration).await;
    tokio::time::resume();
}

// --- Issuers -------------------------------------------------------------

#[tokio::test]
async fn a_bot_framework_token_is_accepted() {
    let fixture = Fixture::start().await;
    let caller = check(&fixture.authenticator(), &bot_token(&bot_claims())).await;
    let Caller::BotConnector { issuer, .. } = caller.unwrap() else {
        panic!("not a connector caller");
    };
    assert_eq!(issuer, BOT_FRAMEWORK_ISSUER);
}

#[tokio::test]
async fn entra_tokens_of_the_configured_tenant_are_accepted_in_both_forms() {
    let fixture = Fixture::start().await;
    let auth = fixture.authenticator();
    let v2 = format!("https://login.microsoftonline.com/{TENANT}/v2.0");
    for issuer in [sts_issuer(TENANT), v2] {
        let token = sign(TENANT_KEY, "tenant-1", &entra_claims(&issuer));
        let caller = check(&auth, &token).await.unwrap();
        let expected = Caller::BotConnector {
            issuer,
            app_id: CONNECTOR_APP_ID.into(),
        };
        assert_eq!(caller, expected);
    }
    assert_eq!(fixture.issuers.bot_fetches(), 0);
}

#[tokio::test]
async fn an_entra_token_from_an_app_not_listed_as_the_connector_is_forbidden() {
    let fixture = Fixture::start().await;
    let auth = fixture.authenticator();
    let mut claims = entra_claims(&sts_issuer(TENANT));
    claims["appid"] = json!("0b2c7a11-0000-4000-8000-00000000beef");
    let token = sign(TENANT_KEY, "tenant-1", &claims);
    assert_refused(check(&auth, &token).await, 403, "entra_caller");

    // A v2 token names its caller in `azp`.
    let v2 = format!("https://login.microsoftonline.com/{TENANT}/v2.0");
    let mut claims = entra_claims(&v2);
    claims.as_object_mut().unwrap().remove("appid");
    claims["azp"] = json!(CONNECTOR_APP_ID);
    let token = sign(TENANT_KEY, "tenant-1", &claims);
    assert!(check(&auth, &token).await.is_ok());
    claims["azp"] = json!("0b2c7a11-0000-4000-8000-00000000beef");
    let token = sign(TENANT_KEY, "tenant-1", &claims);
    assert_refused(check(&auth, &token).await, 403, "entra_caller");
}

#[tokio::test]
async fn with_no_listed_caller_every_entra_token_is_forbidden() {
    let fixture = Fixture::start().await;
    let settings = AuthSettings {
        entra_caller_app_ids: Vec::new(),
        ..fixture.settings()
    };
    let auth = BotAuthenticator::new(settings, reqwest::Client::new());
    let token = sign(TENANT_KEY, "tenant-1", &entra_claims(&sts_issuer(TENANT)));
    assert_refused(check(&auth, &token).await, 403, "entra_caller");
}

#[tokio::test]
async fn an_entra_token_naming_another_service_url_is_refused() {
    let fixture = Fixture::start().await;
    let mut claims = entra_claims(&sts_issuer(TENANT));
    claims["serviceurl"] = json!("https://smba.trafficmanager.net/amer/");
    let token = sign(TENANT_KEY, "tenant-1", &claims);
    assert_refused(
        check(&fixture.authenticator(), &token).await,
        401,
        "service_url",
    );
}

#[tokio::test]
async fn a_token_from_an_unknown_issuer_is_refused_before_any_key_fetch() {
    let fixture = Fixture::start().await;
    let mut claims = bot_claims();
    claims["iss"] = json!("https://evil.example");
    assert_refused(
        check(&fixture.authenticator(), &bot_token(&claims)).await,
        401,
        "issuer",
    );
    assert_eq!(fixture.issuers.bot_fetches(), 0);
}

#[tokio::test]
async fn an_entra_token_of_another_tenant_is_refused() {
    let fixture = Fixture::start().await;
    let mut claims = entra_claims(&sts_issuer(OTHER_TENANT));
    claims["tid"] = json!(OTHER_TENANT);
    let token = sign(TENANT_KEY, "tenant-1", &claims);
    assert_refused(check(&fixture.authenticator(), &token).await, 401, "issuer");
}

#[tokio::test]
async fn an_entra_token_whose_tid_is_another_tenant_is_refused() {
    let fixture = Fixture::start().await;
    let mut claims = entra_claims(&sts_issuer(TENANT));
    claims["tid"] = json!(OTHER_TENANT);
    let token = sign(TENANT_KEY, "tenant-1", &claims);
    let outcome = check(&fixture.authenticator(), &token).await;
    assert_refused(outcome, 401, "token_tenant");
}

#[tokio::test]
async fn an_entra_token_signed_with_a_bot_framework_key_is_refused() {
    let fixture = Fixture::start().await;
    let token = sign(BOT_KEY_A, "bot-a", &entra_claims(&sts_issuer(TENANT)));
    assert_refused(check(&fixture.authenticator(), &token).await, 401, "key_id");
}

// --- Audience and lifetime ----------------------------------------------

#[tokio::test]
async fn a_token_for_another_audience_or_none_is_refused() {
    let fixture = Fixture::start().await;
    let auth = fixture.authenticator();
    let mut claims = bot_claims();
    claims["aud"] = json!("https://api.botframework.com");
    assert_refused(check(&auth, &bot_token(&claims)).await, 401, "audience");
    claims.as_object_mut().unwrap().remove("aud");
    assert_refused(check(&auth, &bot_token(&claims)).await, 401, "audience");
}

#[tokio::test]
async fn an_audience_list_holding_the_app_id_is_accepted() {
    let fixture = Fixture::start().await;
    let mut claims = bot_claims();
    claims["aud"] = json!(["someone-else", APP_ID]);
    assert!(check(&fixture.authenticator(), &bot_token(&claims))
        .await
        .is_ok());
}

#[tokio::test]
async fn a_token_expired_beyond_the_skew_is_refused() {
    let fixture = Fixture::start().await;
    let mut claims = bot_claims();
    claims["exp"] = json!(now() - 6 * 60);
    assert_refused(
        check(&fixture.authenticator(), &bot_token(&claims)).await,
        401,
        "expiry",
    );
}

#[tokio::test]
async fn a_token_expired_within_the_skew_is_accepted() {
    let fixture = Fixture::start().await;
    let mut claims = bot_claims();
    claims["exp"] = json!(now() - 4 * 60);
    assert!(check(&fixture.authenticator(), &bot_token(&claims))
        .await
        .is_ok());
}

#[tokio::test]
async fn a_token_not_yet_valid_beyond_the_skew_is_refused() {
    let fixture = Fixture::start().await;
    let mut claims = bot_claims();
    claims["nbf"] = json!(now() + 6 * 60);
    let outcome = check(&fixture.authenticator(), &bot_token(&claims)).await;
    assert_refused(outcome, 401, "not_before");
}

#[tokio::test]
async fn a_token_valid_within_the_skew_is_accepted() {
    let fixture = Fixture::start().await;
    let mut claims = bot_claims();
    claims["nbf"] = json!(now() + 4 * 60);
    assert!(check(&fixture.authenticator(), &bot_token(&claims))
        .await
        .is_ok());
}

#[tokio::test]
async fn a_token_without_expiry_is_refused() {
    let fixture = Fixture::start().await;
    let mut claims = bot_claims();
    claims.as_object_mut().unwrap().remove("exp");
    assert_refused(
        check(&fixture.authenticator(), &bot_token(&claims)).await,
        401,
        "expiry",
    );
}

// --- Algorithms and signatures ------------------------------------------

#[tokio::test]
async fn an_unsigned_token_is_refused() {
    let fixture = Fixture::start().await;
    let token = unsigned_token("none", &bot_claims());
    assert_refused(
        check(&fixture.authenticator(), &token).await,
        401,
        "algorithm",
    );
    assert_eq!(fixture.issuers.bot_fetches(), 0);
}

#[tokio::test]
async fn an_hmac_token_keyed_with_the_public_key_is_refused() {
    let fixture = Fixture::start().await;
    let token = hmac_token_keyed_with_the_public_key(&bot_claims());
    assert_refused(
        check(&fixture.authenticator(), &token).await,
        401,
        "algorithm",
    );
}

#[tokio::test]
async fn elliptic_and_pss_algorithms_are_refused() {
    let fixture = Fixture::start().await;
    let auth = fixture.authenticator();
    for alg in ["ES256", "PS256"] {
        let token = format!("{}sig", unsigned_token(alg, &bot_claims()));
        assert_refused(check(&auth, &token).await, 401, "algorithm");
    }
}

#[tokio::test]
async fn rs512_tokens_are_accepted() {
    let fixture = Fixture::start().await;
    let mut header = Header::new(Algorithm::RS512);
    header.kid = Some("bot-a".into());
    let key = EncodingKey::from_rsa_pem(BOT_KEY_A.as_bytes()).unwrap();
    let token = jsonwebtoken::encode(&header, &bot_claims(), &key).unwrap();
    assert!(check(&fixture.authenticator(), &token).await.is_ok());
}

#[tokio::test]
async fn a_token_signed_by_another_key_under_a_known_kid_is_refused() {
    let fixture = Fixture::start().await;
    let token = sign(BOT_KEY_B, "bot-a", &bot_claims());
    assert_refused(
        check(&fixture.authenticator(), &token).await,
        401,
        "signature",
    );
}

#[tokio::test]
async fn a_token_naming_no_key_or_a_non_rsa_key_is_refused() {
    let fixture = Fixture::start().await;
    let auth = fixture.authenticator();
    let key = EncodingKey::from_rsa_pem(BOT_KEY_A.as_bytes()).unwrap();
    let no_kid = jsonwebtoken::encode(&Header::new(Algorithm::RS256), &bot_claims(), &key);
    assert_refused(check(&auth, &no_kid.unwrap()).await, 401, "key_id");
    let ec = sign(BOT_KEY_A, "ec-1", &bot_claims());
    assert_refused(check(&auth, &ec).await, 401, "key_id");
}

#[tokio::test]
async fn a_token_with_a_tampered_payload_is_refused() {
    let fixture = Fixture::start().await;
    let token = bot_token(&bot_claims());
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    let mut claims = bot_claims();
    claims["serviceurl"] = json!("https://attacker.example/");
    parts[1] = URL_SAFE_NO_PAD.encode(claims.to_string());
    let tampered = parts.join(".");
    let mut activity = activity();
    activity.service_url = Some("https://attacker.example/".into());
    let outcome = fixture
        .authenticator()
        .authenticate(Some(&bearer(&tampered)), &activity)
        .await;
    assert_refused(outcome, 401, "signature");
}

// --- Key cache ------------------------------------------------------------

#[tokio::test]
async fn an_unknown_kid_is_refused() {
    let fixture = Fixture::start().await;
    let token = sign(BOT_KEY_B, "never-published", &bot_claims());
    assert_refused(check(&fixture.authenticator(), &token).await, 401, "key_id");
}

#[tokio::test]
async fn a_rotated_key_is_accepted_after_a_rate_limited_refresh() {
    let fixture = Fixture::start().await;
    let auth = fixture.authenticator();
    assert!(check(&auth, &bot_token(&bot_claims())).await.is_ok());
    assert_eq!(fixture.issuers.bot_fetches(), 1);

    // The issuer starts signing with a new key; too soon to refresh.
    fixture
        .issuers
        .publish_bot_key(jwk(BOT_KEY_B, "bot-b", &["msteams"]));
    let rotated = sign(BOT_KEY_B, "bot-b", &bot_claims());
    assert_refused(check(&auth, &rotated).await, 401, "key_id");
    assert_eq!(fixture.issuers.bot_fetches(), 1);

    // Five minutes on, the unknown kid causes one refresh.
    skip_ahead(Duration::from_secs(5 * 60)).await;
    assert!(check(&auth, &rotated).await.is_ok());
    assert_eq!(fixture.issuers.bot_fetches(), 2);

    // Another unknown kid right after does not cause another one.
    let unknown = sign(BOT_KEY_B, "bot-c", &bot_claims());
    assert_refused(check(&auth, &unknown).await, 401, "key_id");
    assert_eq!(fixture.issuers.bot_fetches(), 2);
}

#[tokio::test]
async fn keys_are_refreshed_once_a_day() {
    let fixture = Fixture::start().await;
    let auth = fixture.authenticator();
    let token = bot_token(&bot_claims());
    assert!(check(&auth, &token).await.is_ok());
    assert!(check(&auth, &token).await.is_ok());
    assert_eq!(fixture.issuers.bot_fetches(), 1);

    skip_ahead(Duration::from_secs(24 * 60 * 60)).await;
    assert!(check(&auth, &token).await.is_ok());
    assert_eq!(fixture.issuers.bot_fetches(), 2);
}

#[tokio::test]
async fn stale_keys_are_kept_when_the_metadata_server_fails() {
    let fixture = Fixture::start().await;
    let auth = fixture.authenticator();
    let token = bot_token(&bot_claims());
    assert!(check(&auth, &token).await.is_ok());

    fixture.issuers.fail(true);
    skip_ahead(Duration::from_secs(24 * 60 * 60)).await;
    assert!(check(&auth, &token).await.is_ok());
    assert_eq!(fixture.issuers.bot_fetches(), 2, "a refresh was tried");
}

#[tokio::test]
async fn no_keys_at_all_refuses_and_retries_only_after_a_pause() {
    let fixture = Fixture::start().await;
    fixture.issuers.fail(true);
    let auth = fixture.authenticator();
    let token = bot_token(&bot_claims());
    assert_refused(check(&auth, &token).await, 401, "keys");
    assert_refused(check(&auth, &token).await, 401, "keys");
    assert_eq!(fixture.issuers.bot_fetches(), 1);

    fixture.issuers.fail(false);
    skip_ahead(Duration::from_secs(30)).await;
    assert!(check(&auth, &token).await.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_validations_cause_one_metadata_fetch() {
    let fixture = Fixture::start().await;
    let auth = fixture.authenticator();
    let token = bot_token(&bot_claims());
    let mut checks = tokio::task::JoinSet::new();
    for _ in 0..32 {
        let (auth, token) = (auth.clone(), token.clone());
        checks.spawn(async move { check(&auth, &token).await.is_ok() });
    }
    while let Some(accepted) = checks.join_next().await {
        assert!(accepted.unwrap());
    }
    assert_eq!(fixture.issuers.bot_fetches(), 1);
}

// --- Service URL ----------------------------------------------------------

#[tokio::test]
async fn a_service_url_other_than_the_activitys_is_refused() {
    let fixture = Fixture::start().await;
    let mut claims = bot_claims();
    claims["serviceurl"] = json!("https://smba.trafficmanager.net/amer/");
    let outcome = check(&fixture.authenticator(), &bot_token(&claims)).await;
    assert_refused(outcome, 401, "service_url");
}

#[tokio::test]
async fn a_bot_framework_token_without_service_url_is_refused() {
    let fixture = Fixture::start().await;
    let mut claims = bot_claims();
    claims.as_object_mut().unwrap().remove("serviceurl");
    let outcome = check(&fixture.authenticator(), &bot_token(&claims)).await;
    assert_refused(outcome, 401, "service_url");
}

#[tokio::test]
async fn a_service_url_differing_in_case_and_final_slash_is_accepted() {
    let fixture = Fixture::start().await;
    let mut claims = bot_claims();
    claims["serviceurl"] = json!("https://SMBA.trafficmanager.net/emea");
    assert!(check(&fixture.authenticator(), &bot_token(&claims))
        .await
        .is_ok());
}

// --- Endorsements and tenant ---------------------------------------------

#[tokio::test]
async fn a_key_not_endorsed_for_the_channel_is_forbidden() {
    let fixture = Fixture::start().await;
    let token = sign(BOT_KEY_A, "bot-webchat", &bot_claims());
    let outcome = check(&fixture.authenticator(), &token).await;
    assert_refused(outcome, 403, "endorsement");
}

#[tokio::test]
async fn a_key_endorsed_for_the_channel_or_without_endorsements_is_accepted() {
    let fixture = Fixture::start().await;
    let auth = fixture.authenticator();
    for kid in ["bot-a", "bot-plain"] {
        let token = sign(BOT_KEY_A, kid, &bot_claims());
        assert!(check(&auth, &token).await.is_ok(), "{kid}");
    }
}

#[tokio::test]
async fn an_activity_from_another_tenant_is_forbidden() {
    let fixture = Fixture::start().await;
    let auth = fixture.authenticator();
    let header = bearer(&bot_token(&bot_claims()));
    let mut foreign = activity();
    foreign.channel_data = Some(json!({ "tenant": { "id": OTHER_TENANT } }));
    assert_refused(
        auth.authenticate(Some(&header), &foreign).await,
        403,
        "tenant",
    );
    foreign.channel_data = None;
    assert_refused(
        auth.authenticate(Some(&header), &foreign).await,
        403,
        "tenant",
    );
}

// --- Header ---------------------------------------------------------------

#[tokio::test]
async fn malformed_authorization_headers_are_refused() {
    let fixture = Fixture::start().await;
    let auth = fixture.authenticator();
    let token = bot_token(&bot_claims());
    let headers = [
        format!("Basic {token}"),
        token.clone(),
        format!("Bearer {token} extra"),
        format!("bearer {token}"),
        "Bearer".to_owned(),
    ];
    for header in headers {
        let outcome = auth.authenticate(Some(&header), &activity()).await;
        assert_refused(outcome, 401, "header");
    }
}

#[tokio::test]
async fn a_token_that_is_not_a_jwt_is_refused() {
    let fixture = Fixture::start().await;
    let auth = fixture.authenticator();
    for token in ["abc", "a.b", "a.b.c.d", "e30.e30.x"] {
        assert_refused(check(&auth, token).await, 401, "format");
    }
}

#[tokio::test]
async fn an_oversized_token_is_refused_unread() {
    let fixture = Fixture::start().await;
    let token = format!("{}.{}.x", "a".repeat(10_000), "b".repeat(10_000));
    assert_refused(check(&fixture.authenticator(), &token).await, 401, "size");
}

// --- Anonymous ------------------------------------------------------------

#[tokio::test]
async fn a_request_without_token_is_refused_by_default() {
    let fixture = Fixture::start().await;
    let outcome = fixture
        .authenticator()
        .authenticate(None, &activity())
        .await;
    assert_refused(outcome, 401, "anonymous");
}

#[tokio::test]
async fn a_request_without_token_is_let_through_when_anonymous_is_allowed() {
    let fixture = Fixture::start().await;
    let settings = AuthSettings {
        allow_anonymous: true,
        ..fixture.settings()
    };
    let auth = BotAuthenticator::new(settings, reqwest::Client::new());
    assert_eq!(
        auth.authenticate(None, &activity()).await.unwrap(),
        Caller::Anonymous
    );

    // Anonymous mode still serves only the configured tenant, and a token
    // that is sent is still checked.
    let mut foreign = activity();
    foreign.channel_data = Some(json!({ "tenant": { "id": OTHER_TENANT } }));
    assert_refused(auth.authenticate(None, &foreign).await, 403, "tenant");
    let mut claims = bot_claims();
    claims["aud"] = json!("someone-else");
    assert_refused(check(&auth, &bot_token(&claims)).await, 401, "audience");
}
