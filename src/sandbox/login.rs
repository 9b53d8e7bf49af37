//! The simulated Entra ID token endpoint (client credentials only).
//!
//! `POST /login/{tenant}/oauth2/v2.0/token` issues opaque bearer tokens
//! bound to one audience: the Bot Connector or Microsoft Graph, each for its
//! own application's credentials. The other simulators ask this one whether
//! a token is good for them, so a Graph token is refused by the connector and
//! the other way round. Tokens can be expired or forgotten at will, to drive
//! a client through its refresh-on-401 path.
//!
//! Tokens have the shape of Entra's app-only access tokens: a JWT whose
//! payload carries `aud`, `iss`, `tid`, `appid`, the lifetime and, for
//! Graph, a `roles` claim listing the application permissions granted to
//! the Graph app ([`GRANTED_GRAPH_ROLES`] unless a test changes them with
//! [`LoginSim::set_graph_roles`]). The signature part is random: nothing
//! verifies it, and the simulators look tokens up in their own table.
//! `cordon config check` reads the `roles` claim, and the Graph simulator
//! refuses (403) a call whose permission the token lacks.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap};
use axum::middleware::from_fn_with_state;
use axum::routing::post;
use axum::{Json, Router};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Duration, Utc};
use rand::distributions::Alphanumeric;
use rand::Rng;
use serde_json::{json, Value};

use super::tenant::ids;
use super::wiretap::{observe, Dialect, Fault, RecordedCall, SimError, Wiretap};

/// How long issued tokens live, in seconds, as Entra answers.
const LIFETIME_SECS: i64 = 3599;

/// The application permissions the sandbox's Graph app holds by default:
/// every one a Cordon runbook step or policy check can use.
pub const GRANTED_GRAPH_ROLES: &[&str] = &[
    "User.Read.All",
    "GroupMember.Read.All",
    "User.EnableDisableAccount.All",
    "User.RevokeSessions.All",
    "User-PasswordProfile.ReadWrite.All",
    "UserAuthenticationMethod.ReadWrite.All",
    "RoleManagement.Read.Directory",
];

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
    /// The `roles` claim: application permissions granted when issued.
    roles: Vec<String>,
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
    /// Every token ever issued, revoked ones included.
    every_token: Mutex<Vec<String>>,
    graph_roles: Mutex<Vec<String>>,
    tap: Arc<Wiretap>,
}

impl LoginSim {
    pub(crate) fn new() -> Self {
        LoginSim {
            inner: Arc::new(LoginState {
                tokens: Mutex::default(),
                issued: Mutex::default(),
                every_token: Mutex::default(),
                graph_roles: Mutex::new(
                    GRANTED_GRAPH_ROLES.iter().map(|r| r.to_string()).collect(),
                ),
                tap: Wiretap::new(Dialect::Login),
            }),
        }
    }

    /// How many tokens were issued for `scope` since the start.
    pub fn issued_count(&self, scope: &str) -> usize {
        let issued = self.inner.issued.lock().expect("issue counts");
        issued.get(scope).copied().unwrap_or(0)
    }

    /// Every token issued since the start, revoked and expired ones too,
    /// for tests that check no token ever reaches a log line.
    pub fn issued_tokens(&self) -> Vec<String> {
        self.inner
            .every_token
            .lock()
            .expect("issued tokens")
            .clone()
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

    /// Sets the application permissions that Graph tokens issued from now
    /// on carry in their `roles` claim (and that the Graph simulator then
    /// honours); tokens already issued keep theirs.
    pub fn set_graph_roles(&self, roles: &[&str]) {
        let roles = roles.iter().map(|r| r.to_string()).collect();
        *self.inner.graph_roles.lock().expect("graph roles") = roles;
    }

    /// Withdraws one application permission from the Graph app, as an
    /// administrator removing its consent would, and forgets the tokens
    /// issued so far so that the next call gets a token without it.
    pub fn withdraw_graph_role(&self, role: &str) {
        self.inner
            .graph_roles
            .lock()
            .expect("graph roles")
            .retain(|r| !r.eq_ignore_ascii_case(role));
        self.revoke_all();
    }

    /// Issues a token directly, without the HTTP round trip, for tests
    /// that exercise another simulator.
    pub fn mint(&self, audience: Audience) -> String {
        let roles = match audience {
            Audience::Graph => self.inner.graph_roles.lock().expect("graph roles").clone(),
            Audience::BotFramework => Vec::new(),
        };
        let expires_at = Utc::now() + Duration::seconds(LIFETIME_SECS);
        let token = jwt_shaped(audience, &roles, expires_at);
        let issued = IssuedToken {
            audience,
            expires_at,
            roles,
        };
        self.inner
            .tokens
            .lock()
            .expect("token table")
            .insert(token.clone(), issued);
        self.inner
            .every_token
            .lock()
            .expect("issued tokens")
            .push(token.clone());
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

    /// The `roles` of the valid token in `headers` for `audience`, or
    /// `None` when the token is not valid for it.
    pub fn roles(&self, headers: &HeaderMap, audience: Audience) -> Option<Vec<String>> {
        let token = bearer(headers)?;
        let tokens = self.inner.tokens.lock().expect("token table");
        let issued = tokens.get(token)?;
        let live = issued.audience == audience && issued.expires_at > Utc::now();
        live.then(|| issued.roles.clone())
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

/// A token in the form of an Entra app-only access token; the signature
/// is random bytes, since only this simulator's table decides validity.
fn jwt_shaped(audience: Audience, roles: &[String], expires_at: DateTime<Utc>) -> String {
    let (aud, appid) = match audience {
        Audience::BotFramework => ("https://api.botframework.com", ids::BOT_APP_ID),
        Audience::Graph => ("https://graph.microsoft.com", ids::GRAPH_CLIENT_ID),
    };
    let now = Utc::now().timestamp();
    let mut claims = json!({
        "aud": aud,
        "iss": format!("https://sts.windows.net/{}/", ids::TENANT_ID),
        "tid": ids::TENANT_ID,
        "appid": appid,
        "idtyp": "app",
        "iat": now,
        "nbf": now,
        "exp": expires_at.timestamp(),
        "jti": uuid::Uuid::new_v4().to_string(),
    });
    if audience == Audience::Graph {
        claims["roles"] = json!(roles);
    }
    let header = json!({ "typ": "JWT", "alg": "RS256", "kid": "sandbox" });
    let signature: String = rand::thread_rng()
        .sample_iter(&Alphanumeric)
        .take(43)
        .map(char::from)
        .collect();
    let part = |value: &Value| URL_SAFE_NO_PAD.encode(value.to_string());
    format!("{}.{}.{signature}", part(&header), part(&claims))
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
    let form: HashMap<String, String> = url::form_urlencoded::parse(&body).into_owned().collect();
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
