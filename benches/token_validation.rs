//! The cost of checking one inbound Bot Framework token once the signing
//! keys are cached: header parse, key lookup by `kid`, RS256 signature,
//! issuer, audience, lifetime, serviceUrl and endorsement checks.
//!
//! A local OpenID metadata server publishes the test key; the first call
//! (outside the measurement) warms the key cache, so no request leaves
//! the process while criterion measures.
//!
//! Run with `cargo bench --bench token_validation`.

use std::time::{SystemTime, UNIX_EPOCH};

use axum::routing::get;
use axum::{Json, Router};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use cordon::botframework::auth::BOT_FRAMEWORK_ISSUER;
use cordon::botframework::{Activity, AuthSettings, BotAuthenticator};
use criterion::{criterion_group, criterion_main, Criterion};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rsa::pkcs8::DecodePrivateKey;
use rsa::traits::PublicKeyParts;
use serde_json::{json, Value};

const APP_ID: &str = "5f0c6f43-2c5e-4a0b-9d55-0c1c0e2a7b11";
const TENANT: &str = "6a1d2f4e-8b0c-4f7e-9a3b-1c2d3e4f5a6b";
const SERVICE_URL: &str = "https://smba.trafficmanager.net/emea/";
const BOT_KEY: &str = include_str!("../tests/fixtures/bot_signing_a.pem");

/// The public half of the test key as a JWK endorsed for Teams.
fn published_key() -> Value {
    let key = rsa::RsaPrivateKey::from_pkcs8_pem(BOT_KEY).expect("test key");
    json!({
        "kty": "RSA", "use": "sig", "kid": "bench-key",
        "n": URL_SAFE_NO_PAD.encode(key.n().to_bytes_be()),
        "e": URL_SAFE_NO_PAD.encode(key.e().to_bytes_be()),
        "endorsements": ["msteams"],
    })
}

/// Serves the metadata document and the key set on loopback.
async fn start_issuer() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let jwks_uri = format!("{base}/keys");
    let keys = json!({ "keys": [published_key()] });
    let app = Router::new()
        .route(
            "/metadata",
            get(move || {
                let jwks_uri = jwks_uri.clone();
                async move { Json(json!({ "issuer": BOT_FRAMEWORK_ISSUER, "jwks_uri": jwks_uri })) }
            }),
        )
        .route("/keys", get(move || async move { Json(keys.clone()) }));
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    base
}

fn token() -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = json!({
        "iss": BOT_FRAMEWORK_ISSUER, "aud": APP_ID, "serviceurl": SERVICE_URL,
        "nbf": now - 60, "exp": now + 3600,
    });
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some("bench-key".into());
    let key = EncodingKey::from_rsa_pem(BOT_KEY.as_bytes()).unwrap();
    jsonwebtoken::encode(&header, &claims, &key).unwrap()
}

fn activity() -> Activity {
    serde_json::from_value(json!({
        "type": "message", "id": "1", "serviceUrl": SERVICE_URL, "channelId": "msteams",
        "conversation": { "id": "19:abc@thread.tacv2;messageid=1" },
        "channelData": { "tenant": { "id": TENANT } },
    }))
    .unwrap()
}

fn warm_key_validation(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let base = runtime.block_on(start_issuer());
    let auth = BotAuthenticator::new(
        AuthSettings {
            app_id: APP_ID.into(),
            tenant_id: TENANT.into(),
            openid_metadata_url: format!("{base}/metadata"),
            tenant_openid_metadata_url: format!("{base}/metadata"),
            entra_caller_app_ids: Vec::new(),
            allow_anonymous: false,
        },
        reqwest::Client::new(),
    );
    let header = format!("Bearer {}", token());
    let activity = activity();
    runtime
        .block_on(auth.authenticate(Some(&header), &activity))
        .expect("the bench token is valid");
    c.bench_function("validate a Bot Framework token, keys cached", |b| {
        b.to_async(&runtime)
            .iter(|| async { auth.authenticate(Some(&header), &activity).await.unwrap() })
    });
}

criterion_group!(benches, warm_key_validation);
criterion_main!(benches);
