//! Tokens as the Bot Connector and Entra ID sign them, and forged ones,
//! made with the fixture keys in `tests/fixtures`, for the token-check
//! tests.
#![allow(dead_code)]

use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rsa::pkcs8::DecodePrivateKey;
use rsa::traits::PublicKeyParts;
use serde_json::{json, Value};

pub const BOT_KEY_A: &str = include_str!("../fixtures/bot_signing_a.pem");
pub const BOT_KEY_B: &str = include_str!("../fixtures/bot_signing_b.pem");
pub const BOT_PUBLIC_A: &str = include_str!("../fixtures/bot_signing_a.pub.pem");
pub const TENANT_KEY: &str = include_str!("../fixtures/tenant_signing.pem");

/// A tenant no test configures.
pub const OTHER_TENANT: &str = "0b9e8d7c-6f5a-4e3d-2c1b-0a9f8e7d6c5b";

/// The calling app the Entra tokens name, listed as the Bot Connector's
/// in `bot.entra_caller_app_ids`.
pub const CONNECTOR_APP_ID: &str = "d6d49420-f39b-4df7-a1dc-d59a935871db";

pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// The v1 Entra issuer of `tenant`.
pub fn sts_issuer(tenant: &str) -> String {
    format!("https://sts.windows.net/{tenant}/")
}

/// The public half of a fixture key as a JWK.
pub fn jwk(private_pem: &str, kid: &str, endorsements: &[&str]) -> Value {
    let key = rsa::RsaPrivateKey::from_pkcs8_pem(private_pem).unwrap();
    let n = URL_SAFE_NO_PAD.encode(key.n().to_bytes_be());
    let e = URL_SAFE_NO_PAD.encode(key.e().to_bytes_be());
    let mut jwk = json!({ "kty": "RSA", "use": "sig", "kid": kid, "n": n, "e": e });
    if !endorsements.is_empty() {
        jwk["endorsements"] = json!(endorsements);
    }
    jwk
}

/// `claims` signed with RS256 by the key in `pem`, under `kid`.
pub fn sign(pem: &str, kid: &str, claims: &Value) -> String {
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(kid.into());
    let key = EncodingKey::from_rsa_pem(pem.as_bytes()).unwrap();
    jsonwebtoken::encode(&header, claims, &key).unwrap()
}

pub fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// A token whose header names `alg` and that carries no signature.
pub fn unsigned_token(alg: &str, claims: &Value) -> String {
    let header = json!({ "alg": alg, "kid": "bot-a", "typ": "JWT" });
    let part = |value: &Value| URL_SAFE_NO_PAD.encode(value.to_string());
    format!("{}.{}.", part(&header), part(claims))
}

/// The classic forgery: HS256 keyed with the published RSA public key.
pub fn hmac_token_keyed_with_the_public_key(claims: &Value) -> String {
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some("bot-a".into());
    let key = EncodingKey::from_secret(BOT_PUBLIC_A.as_bytes());
    jsonwebtoken::encode(&header, claims, &key).unwrap()
}
