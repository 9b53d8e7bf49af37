//! The simulated Entra ID token endpoint (client credentials only).
//!
//! `POST /login/{tenant}/oauth2/v2.0/token` issues opaque bearer tokens
//! bound to one audience: the Bot Connector or Microsoft Graph, each for its
//! own application's credentials. The other simulators ask this one whether
//! a token is good for them, so a Graph token is refused by the connector and
//! the other way round. Tokens can be expired or forgotten at will, to drive
//! a client through its refresh-on-401 path.
//!
//! Real tokens are signed JWTs; these are random strings, which is enough
//! for Cordon since it never looks inside the tokens it is given.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap};
use axum::middleware::from_fn_with_state;
use axum::routing::post;
use axum::{Json, Router};
use chrono::{DateTime, Duration, Utc};
use rand::distributions::Alphanumeric;
use rand::Rng;
use serde_json::{json, Value};

use super::tenant::ids;
use super::wiretap::{observe, Dialect, Fault, RecordedCall, SimError, Wiretap};

/// How long issued tokens live, in seconds, as Entra answers.
const LIFETIME_SECS: i64 = 3599;

/// Which service a token was issued for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audience {
    BotFramework,
    Graph,
}

impl Audience {
    /// The audience a `.default` scope asks for, if it is one we serve.
    pub fn for_scope(scope: &str) -> Option<Self> {
        match scope {
            ids::BOTFRAMEWORK_SCOPE => Some(Audience::BotFramework),
            ids::GRAPH_SCOPE => Some(Audience::Graph),
            _ => None,
        }
    }

    fn scope(self) -> &'static str {
        match self {
            Audience::BotFramework => ids::BOTFRAMEWORK_SCOPE,
            Audience::Graph => ids::GRAPH_SCOPE,
        }
    }

    /// The one application allowed tokens for this audience.
    fn credentials(self) -> (&'static str, &'static str) {
        match self {
            Audience::BotFramework => (ids::BOT_APP_ID, ids::BOT_APP_PASSWORD),
            Audience::Graph => (ids::GRAPH_CLIENT_ID, ids::GRAPH_CLIENT_SECRET),
        }
    }
}

/// What a presented bearer token is worth to one audience.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenCheck {
    Valid,
    /// No `Authorization: Bearer` header at all.
    Missing,
    /// Issued here for this audience, but past its lifetime.
    Expired,
    /// Unknown here, revoked, or issued for another audience.
    Invalid,
}

#[derive(Debug, Clone)]
struct IssuedToken {
    audience: Audience,
    expires_at: DateTime<Utc>,
}

/// The simulated token endpoint; cheap to clone.
#[derive(Debug, Clone)]
pub struct LoginSim {
    inner: Arc<LoginState>,
}

#[derive(Debug)]
struct LoginState {
    tokens: Mutex<HashMap<String, IssuedToken>>,
    issued: Mutex<HashMap<&'static str, usize>>,
    tap: Arc<Wiretap>,
}

impl LoginSim {
    pub(crate) fn new() -> Self {
        LoginSim {
            inner: Arc::new(LoginState {
                tokens: Mutex::default(),
                issued: Mutex::default(),
                tap: Wiretap::new(Dialect::Login),
            }),
        }
    }

    /// How many tokens were issued for `scope` since the start.
    pub fn issued_count(&self, scope: &str) -> usize {
        let issued = self.inner.issued.lock().expect("issue counts");
        issued.get(scope).copied().unwrap_or(0)
    }

    /// Makes every token issued so far expired, as if an hour had passed.
    pub fn expire_all(&self) {
        let past = Utc::now() - Duration::seconds(1);
        let mut tokens = self.inner.tokens.lock().expect("token table");
        tokens.values_mut().for_each(|t| t.expires_at = past);
    }

    /// Forgets every token issued so far, as a revocation would.
    pub fn revoke_all(&self) {
        self.inner.tokens.lock().expect("token table").clear();
    }

    /// Issues a token directly, without the HTTP round trip, for tests
    /// that exercise another simulator.
    pub fn mint(&self, audience: Audience) -> String {
        let token: String = rand::thread_rng()
            .sample_iter(&Alphanumeric)
            .take(48)
            .map(char::from)
            .collect();
        let token = format!("sbx.{token}");
        let issued = IssuedToken {
            audience,
            expires_at: Utc::now() + Duration::seconds(LIFETIME_SECS),
        };
        self.inner
            .tokens
            .lock()
            .expect("token table")
            .insert(token.clone(), issued);
        *self
            .inner
            .issued
            .lock()
            .expect("issue counts")
            .entry(audience.scope())
            .or_default() += 1;
        token
    }

    /// Checks the bearer token in `headers` for `audience`.
    pub fn check(&self, headers: &HeaderMap, audience: Audience) -> TokenCheck {
        let Some(token) = bearer(headers) else {
            return TokenCheck::Missing;
        };
        let tokens = self.inner.tokens.lock().expect("token table");
        match tokens.get(token) {
            Some(t) if t.audience != audience => TokenCheck::Invalid,
            Some(t) if t.expires_at <= Utc::now() => TokenCheck::Expired,
            Some(_) => TokenCheck::Valid,
            None => TokenCheck::Invalid,
        }
    }

    pub fn calls(&self) -> Vec<RecordedCall> {
        self.inner.tap.calls()
    }

    pub fn inject(&self, fault: Fault) {
        self.inner.tap.inject(fault);
    }

    pub fn clear_faults(&self) {
        self.inner.tap.clear_faults();
    }

    pub(crate) fn router(&self) -> Router {
        Router::new()
            .route("/{tenant}/oauth2/v2.0/token", post(issue))
            .layer(from_fn_with_state(self.inner.tap.clone(), observe))
            .with_state(self.clone())
    }
}

/// The token in an `Authorization: Bearer` header.
pub(crate) fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

async fn issue(
    State(sim): State<LoginSim>,
    Path(tenant): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, SimError> {
    check_tenant(&tenant)?;
    let form: HashMap<String, String> = url::form_urlencoded::parse(&body)
        .into_owned()
        .collect();
    let field = |name: &str| form.get(name).map(String::as_str).unwrap_or("");

    if field("grant_type") != "client_credentials" {
        return Err(SimError::new(
            400,
            "unsupported_grant_type",
            "AADSTS70003: The app requested an unsupported grant type; \
             only client_credentials is served by this sandbox.",
        ));
    }
    let audience = Audience::for_scope(field("scope")).ok_or_else(|| {
        SimError::new(
            400,
            "invalid_scope",
            format!(
                "AADSTS70011: The provided value for the input parameter \
                 'scope' is not valid. The scope {} is not valid.",
                field("scope")
            ),
        )
    })?;
    check_client(audience, field("client_id"), field("client_secret"))?;

    let token = sim.mint(audience);
    Ok(Json(json!({
        "token_type": "Bearer",
        "expires_in": LIFETIME_SECS,
        "ext_expires_in": LIFETIME_SECS,
        "access_token": token,
    })))
}

fn check_tenant(tenant: &str) -> Result<(), SimError> {
    let ours = tenant.eq_ignore_ascii_case(ids::TENANT_ID)
        || tenant.eq_ignore_ascii_case(ids::TENANT_DOMAIN);
    if ours {
        return Ok(());
    }
    Err(SimError::new(
        400,
        "invalid_request",
        format!(
            "AADSTS90002: Tenant '{tenant}' not found. Check to make sure \
             you have the correct tenant ID and are signing into the \
             correct cloud."
        ),
    ))
}

fn check_client(audience: Audience, client_id: &str, secret: &str) -> Result<(), SimError> {
    let known = [Audience::BotFramework, Audience::Graph]
        .into_iter()
        .any(|a| a.credentials().0.eq_ignore_ascii_case(client_id));
    if !known {
        return Err(SimError::new(
            400,
            "unauthorized_client",
            format!(
                "AADSTS700016: Application with identifier '{client_id}' \
                 was not found in the directory 'Contoso'."
            ),
        ));
    }
    let (expected_id, expected_secret) = audience.credentials();
    if !expected_id.eq_ignore_ascii_case(client_id) {
        return Err(SimError::new(
            400,
            "invalid_scope",
            format!(
                "AADSTS70011: The provided value for the input parameter \
                 'scope' is not valid for application '{client_id}' in \
                 this sandbox."
            ),
        ));
    }
    if secret != expected_secret {
        return Err(SimError::new(
            401,
            "invalid_client",
            format!(
                "AADSTS7000215: Invalid client secret provided. Ensure the \
                 secret being sent in the request is the client secret \
                 value, not the client secret ID, for a secret added to \
                 app '{client_id}'."
            ),
        ));
    }
    Ok(())
}
