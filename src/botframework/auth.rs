//! Whether an inbound activity may be believed: the check of the token the
//! Bot Connector sends with every activity.
//!
//! Two issuers are believed. The Bot Framework issuer signs with the keys
//! published behind `openid_metadata_url`, and its tokens name the
//! `serviceUrl` they were issued for. Entra ID signs for single-tenant bots,
//! and only the configured tenant's Entra issuers are accepted, with keys
//! from that tenant's metadata. The issuer is read before the signature is
//! checked, only to pick the keys; nothing else in the token is trusted
//! until the signature holds.
//!
//! An Entra token names no `serviceUrl` and any app of the tenant may be
//! able to get one addressed to the bot, so the Entra path also requires
//! the calling app (`appid` or `azp`) to be one the operator listed in
//! `bot.entra_caller_app_ids`; with none listed, such tokens are refused.
//!
//! Each refusal names the check that failed, and says whether it is a 401
//! (the caller is not who it says) or a 403 (it is, but not for this bot).
//! The token itself is never logged, nor kept.

use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, Validation};
use serde::de::DeserializeOwned;
use serde::Deserialize;

use super::activity::{same_tenant, Activity};
use super::keys::{KeyError, KeyStore, SigningKey};

/// The issuer of the tokens the Bot Connector signs with its own keys.
pub const BOT_FRAMEWORK_ISSUER: &str = "https://api.botframework.com";

/// A token longer than this is refused before anything in it is read.
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// The clock difference tolerated on `exp` and `nbf`, as in the SDKs.
const CLOCK_SKEW_SECONDS: u64 = 5 * 60;

/// The only signing algorithms accepted; the key sets publish RSA keys.
const ALLOWED_ALGORITHMS: [&str; 3] = ["RS256", "RS384", "RS512"];

/// What the token check needs from the configuration.
#[derive(Debug, Clone)]
pub struct AuthSettings {
    /// The bot's app id, the only audience accepted.
    pub app_id: String,
    /// The tenant the bot serves; activities from any other are refused.
    pub tenant_id: String,
    /// The Bot Framework OpenID metadata (issuer `api.botframework.com`).
    pub openid_metadata_url: String,
    /// The Entra v2 OpenID metadata of `tenant_id`.
    pub tenant_openid_metadata_url: String,
    /// The apps whose Entra tokens are believed: the Bot Connector's, as
    /// seen in the `appid` or `azp` claim. Empty: no Entra token is.
    pub entra_caller_app_ids: Vec<String>,
    /// Whether a request without a token is let through. The caller must
    /// only set this when the server listens on loopback alone.
    pub allow_anonymous: bool,
}

/// Who sent an activity, once its token has been checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// A token from a believed issuer. `app_id` is the calling app's id
    /// from the `appid` or `azp` claim, empty when the token names none.
    BotConnector { issuer: String, app_id: String },
    /// No token, let through because anonymous mode is on.
    Anonymous,
}

/// The check an inbound token failed; each variant names its HTTP status.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// 401: no Authorization header and anonymous mode is off.
    #[error("no token and anonymous requests are not allowed")]
    AnonymousRefused,
    /// 401: the header is not `Bearer <token>`.
    #[error("the Authorization header is not a bearer token")]
    MalformedHeader,
    /// 401: the token is longer than [`MAX_TOKEN_BYTES`].
    #[error("the token is {bytes} bytes long; the limit is {MAX_TOKEN_BYTES}")]
    TokenTooLarge { bytes: usize },
    /// 401: the token is not a readable JWT.
    #[error("the token is not a well-formed JWT")]
    MalformedToken,
    /// 401: the issuer is not one this bot believes.
    #[error("the token's issuer is not believed")]
    UnknownIssuer,
    /// 401: the signing algorithm is not RS256, RS384 or RS512.
    #[error("the token's signing algorithm is refused")]
    AlgorithmRefused,
    /// 401: the token names no signing key.
    #[error("the token names no signing key")]
    MissingKeyId,
    /// 401: the issuer's keys could not be fetched.
    #[error("the issuer's signing keys are unavailable")]
    KeysUnavailable,
    /// 401: the issuer publishes no key with the token's key id.
    #[error("the issuer has no key with the token's key id")]
    UnknownKey,
    /// 401: the signature does not verify.
    #[error("the token's signature does not verify")]
    BadSignature,
    /// 401: the audience is not this bot's app id.
    #[error("the token is not addressed to this bot")]
    WrongAudience,
    /// 401: the token has expired, beyond the tolerated clock skew.
    #[error("the token has expired")]
    Expired,
    /// 401: the token is not valid yet, beyond the tolerated clock skew.
    #[error("the token is not valid yet")]
    NotYetValid,
    /// 401: the token has no `exp` claim.
    #[error("the token has no expiry")]
    MissingExpiry,
    /// 401: the verified claims cannot be read.
    #[error("the token's claims are invalid")]
    InvalidClaims,
    /// 401: a Bot Framework token without the `serviceurl` claim.
    #[error("the token names no service URL")]
    MissingServiceUrl,
    /// 401: the token was issued for another service URL.
    #[error("the token's service URL differs from the activity's")]
    ServiceUrlMismatch,
    /// 401: an Entra token whose `tid` is not the configured tenant.
    #[error("the token was issued for another tenant")]
    WrongTokenTenant,
    /// 403: an Entra token of the tenant, from an app not listed in
    /// `bot.entra_caller_app_ids`.
    #[error("the token's calling app {0:?} is not listed in bot.entra_caller_app_ids")]
    UnlistedCaller(String),
    /// 403: the signing key is not endorsed for the activity's channel.
    #[error("the signing key is not endorsed for the activity's channel")]
    MissingEndorsement,
    /// 403: the activity comes from a tenant this bot does not serve.
    #[error("the activity comes from a tenant this bot does not serve")]
    ForeignTenant,
}

impl AuthError {
    /// The HTTP status the refusal becomes.
    pub fn status(&self) -> u16 {
        match self {
            Self::MissingEndorsement | Self::ForeignTenant | Self::UnlistedCaller(_) => 403,
            _ => 401,
        }
    }

    /// A short, stable name of the failed check, for logs and metrics.
    pub fn check(&self) -> &'static str {
        match self {
            Self::AnonymousRefused => "anonymous",
            Self::MalformedHeader => "header",
            Self::TokenTooLarge { .. } => "size",
            Self::MalformedToken => "format",
            Self::UnknownIssuer => "issuer",
            Self::AlgorithmRefused => "algorithm",
            Self::MissingKeyId | Self::UnknownKey => "key_id",
            Self::KeysUnavailable => "keys",
            Self::BadSignature => "signature",
            Self::WrongAudience => "audience",
            Self::Expired | Self::MissingExpiry => "expiry",
            Self::NotYetValid => "not_before",
            Self::InvalidClaims => "claims",
            Self::MissingServiceUrl | Self::ServiceUrlMismatch => "service_url",
            Self::WrongTokenTenant => "token_tenant",
            Self::UnlistedCaller(_) => "entra_caller",
            Self::MissingEndorsement => "endorsement",
            Self::ForeignTenant => "tenant",
        }
    }
}

impl From<KeyError> for AuthError {
    fn from(error: KeyError) -> Self {
        match error {
            KeyError::Unavailable => Self::KeysUnavailable,
            KeyError::UnknownKey => Self::UnknownKey,
        }
    }
}

/// Which family of issuer signed a token, and so where its keys live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    BotFramework,
    Entra,
}

/// Checks inbound tokens; cheap to clone, and clones share the key cache.
#[derive(Clone)]
pub struct BotAuthenticator {
    settings: Arc<AuthSettings>,
    entra_issuers: Arc<[String; 2]>,
    keys: KeyStore,
}

impl BotAuthenticator {
    pub fn new(settings: AuthSettings, http: reqwest::Client) -> Self {
        let tenant = &settings.tenant_id;
        let entra_issuers = [
            format!("https://sts.windows.net/{tenant}/"),
            format!("https://login.microsoftonline.com/{tenant}/v2.0"),
        ];
        Self {
            settings: Arc::new(settings),
            entra_issuers: Arc::new(entra_issuers),
            keys: KeyStore::new(http),
        }
    }

    /// Decides whether `activity`, sent with the Authorization header
    /// `authorization`, comes from the Bot Connector for this bot.
    pub async fn authenticate(
        &self,
        authorization: Option<&str>,
        activity: &Activity,
    ) -> Result<Caller, AuthError> {
        let outcome = match authorization {
            None => self.anonymous(activity),
            Some(header) => self.bearer(header, activity).await,
        };
        if let Err(error) = &outcome {
            tracing::warn!(
                check = error.check(),
                status = error.status(),
                "inbound activity refused: {error}"
            );
        }
        outcome
    }

    fn anonymous(&self, activity: &Activity) -> Result<Caller, AuthError> {
        if !self.settings.allow_anonymous {
            return Err(AuthError::AnonymousRefused);
        }
        self.check_activity_tenant(activity)?;
        Ok(Caller::Anonymous)
    }

    async fn bearer(&self, header: &str, activity: &Activity) -> Result<Caller, AuthError> {
        let token = bearer_token(header)?;
        let unverified = UnverifiedToken::read(token)?;
        let route = self.route(&unverified.issuer)?;
        let algorithm = allowed_algorithm(&unverified.algorithm)?;
        let kid = unverified.kid.as_deref().ok_or(AuthError::MissingKeyId)?;

        let key = self.keys.key(self.metadata_url(route), kid).await?;
        let claims = self.verify(token, &key, algorithm, &unverified.issuer)?;

        match route {
            Route::BotFramework => check_service_url(&claims, activity)?,
            Route::Entra => {
                self.check_token_tenant(&claims)?;
                self.check_entra_caller(&claims)?;
                if claims.serviceurl.is_some() {
                    check_service_url(&claims, activity)?;
                }
            }
        }
        check_endorsement(&key, activity)?;
        self.check_activity_tenant(activity)?;
        Ok(Caller::BotConnector {
            app_id: claims.caller_app_id(),
            issuer: claims.iss,
        })
    }

    /// Routes a token to its keys by issuer, refusing unknown issuers.
    fn route(&self, issuer: &str) -> Result<Route, AuthError> {
        if issuer == BOT_FRAMEWORK_ISSUER {
            return Ok(Route::BotFramework);
        }
        let serves_tenant = !self.settings.tenant_id.is_empty();
        if serves_tenant && self.entra_issuers.iter().any(|known| known == issuer) {
            return Ok(Route::Entra);
        }
        Err(AuthError::UnknownIssuer)
    }

    fn metadata_url(&self, route: Route) -> &str {
        match route {
            Route::BotFramework => &self.settings.openid_metadata_url,
            Route::Entra => &self.settings.tenant_openid_metadata_url,
        }
    }

    fn verify(
        &self,
        token: &str,
        key: &SigningKey,
        algorithm: Algorithm,
        issuer: &str,
    ) -> Result<VerifiedClaims, AuthError> {
        let mut validation = Validation::new(algorithm);
        validation.leeway = CLOCK_SKEW_SECONDS;
        validation.validate_nbf = true;
        validation.set_required_spec_claims(&["exp", "aud", "iss"]);
        validation.set_audience(&[&self.settings.app_id]);
        validation.set_issuer(&[issuer]);
        jsonwebtoken::decode::<VerifiedClaims>(token, &key.key, &validation)
            .map(|data| data.claims)
            .map_err(|error| verification_error(error.kind()))
    }

    fn check_token_tenant(&self, claims: &VerifiedClaims) -> Result<(), AuthError> {
        match &claims.tid {
            Some(tid) if same_tenant(tid, &self.settings.tenant_id) => Ok(()),
            _ => Err(AuthError::WrongTokenTenant),
        }
    }

    fn check_entra_caller(&self, claims: &VerifiedClaims) -> Result<(), AuthError> {
        let caller = claims.caller_app_id();
        let listed = self.settings.entra_caller_app_ids.iter();
        if !caller.is_empty()
            && listed
                .into_iter()
                .any(|id| id.eq_ignore_ascii_case(&caller))
        {
            Ok(())
        } else {
            Err(AuthError::UnlistedCaller(caller))
        }
    }

    fn check_activity_tenant(&self, activity: &Activity) -> Result<(), AuthError> {
        if activity.is_from_tenant(&self.settings.tenant_id) {
            Ok(())
        } else {
            Err(AuthError::ForeignTenant)
        }
    }
}

/// The token of a `Bearer <token>` header: the scheme exactly, two parts.
fn bearer_token(header: &str) -> Result<&str, AuthError> {
    let mut parts = header.split(' ');
    let (Some("Bearer"), Some(token), None) = (parts.next(), parts.next(), parts.next()) else {
        return Err(AuthError::MalformedHeader);
    };
    if token.is_empty() {
        return Err(AuthError::MalformedHeader);
    }
    if token.len() > MAX_TOKEN_BYTES {
        return Err(AuthError::TokenTooLarge { bytes: token.len() });
    }
    Ok(token)
}

fn allowed_algorithm(name: &str) -> Result<Algorithm, AuthError> {
    if !ALLOWED_ALGORITHMS.contains(&name) {
        return Err(AuthError::AlgorithmRefused);
    }
    name.parse().map_err(|_| AuthError::AlgorithmRefused)
}

/// What is read from a token before its signature is checked: only what is
/// needed to find the key. None of it is believed yet.
struct UnverifiedToken {
    algorithm: String,
    kid: Option<String>,
    issuer: String,
}

#[derive(Deserialize)]
struct RawHeader {
    alg: String,
    kid: Option<String>,
}

#[derive(Deserialize)]
struct RawIssuer {
    iss: String,
}

impl UnverifiedToken {
    fn read(token: &str) -> Result<Self, AuthError> {
        let mut parts = token.split('.');
        let (Some(header), Some(payload), Some(_signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(AuthError::MalformedToken);
        };
        let header: RawHeader = decode_part(header)?;
        let payload: RawIssuer = decode_part(payload)?;
        Ok(Self {
            algorithm: header.alg,
            kid: header.kid,
            issuer: payload.iss,
        })
    }
}

fn decode_part<T: DeserializeOwned>(part: &str) -> Result<T, AuthError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| AuthError::MalformedToken)?;
    serde_json::from_slice(&bytes).map_err(|_| AuthError::MalformedToken)
}

/// The claims read once the signature, lifetime and audience hold.
#[derive(Deserialize)]
struct VerifiedClaims {
    iss: String,
    serviceurl: Option<String>,
    tid: Option<String>,
    appid: Option<String>,
    azp: Option<String>,
}

impl VerifiedClaims {
    fn caller_app_id(&self) -> String {
        self.appid
            .clone()
            .or_else(|| self.azp.clone())
            .unwrap_or_default()
    }
}

fn verification_error(kind: &ErrorKind) -> AuthError {
    match kind {
        ErrorKind::InvalidSignature => AuthError::BadSignature,
        ErrorKind::InvalidAlgorithm => AuthError::AlgorithmRefused,
        ErrorKind::ExpiredSignature => AuthError::Expired,
        ErrorKind::ImmatureSignature => AuthError::NotYetValid,
        ErrorKind::InvalidAudience => AuthError::WrongAudience,
        ErrorKind::InvalidIssuer => AuthError::UnknownIssuer,
        ErrorKind::MissingRequiredClaim(claim) => match claim.as_str() {
            "exp" => AuthError::MissingExpiry,
            "aud" => AuthError::WrongAudience,
            "iss" => AuthError::UnknownIssuer,
            _ => AuthError::InvalidClaims,
        },
        ErrorKind::Json(_) => AuthError::InvalidClaims,
        _ => AuthError::MalformedToken,
    }
}

/// A Bot Framework token is bound to the service URL it was issued for.
/// The comparison ignores case and one trailing `/`, as the .NET SDK does.
fn check_service_url(claims: &VerifiedClaims, activity: &Activity) -> Result<(), AuthError> {
    let claimed = claims
        .serviceurl
        .as_deref()
        .filter(|url| !url.is_empty())
        .ok_or(AuthError::MissingServiceUrl)?;
    let actual = activity.service_url.as_deref().unwrap_or_default();
    let trim = |url: &str| url.strip_suffix('/').unwrap_or(url).to_owned();
    if trim(claimed).eq_ignore_ascii_case(&trim(actual)) {
        Ok(())
    } else {
        Err(AuthError::ServiceUrlMismatch)
    }
}

/// A key that lists endorsements may only sign for the channels it lists.
fn check_endorsement(key: &SigningKey, activity: &Activity) -> Result<(), AuthError> {
    if key.endorsements.is_empty() {
        return Ok(());
    }
    let channel = activity.channel_id.as_deref().unwrap_or_default();
    if key.endorsements.iter().any(|endorsed| endorsed == channel) {
        Ok(())
    } else {
        Err(AuthError::MissingEndorsement)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_exact_bearer_scheme_with_one_token_is_read() {
        assert_eq!(bearer_token("Bearer abc").unwrap(), "abc");
        for header in ["bearer abc", "Basic abc", "abc", "Bearer a b", "Bearer "] {
            assert!(
                matches!(bearer_token(header), Err(AuthError::MalformedHeader)),
                "{header}"
            );
        }
    }

    #[test]
    fn an_oversized_token_is_refused_before_parsing() {
        let header = format!("Bearer {}", "a".repeat(MAX_TOKEN_BYTES + 1));
        let error = bearer_token(&header).unwrap_err();
        assert!(matches!(error, AuthError::TokenTooLarge { .. }));
        assert_eq!(error.status(), 401);
    }

    #[test]
    fn only_rsa_algorithms_are_allowed() {
        assert_eq!(allowed_algorithm("RS384").unwrap(), Algorithm::RS384);
        for name in ["none", "HS256", "ES256", "PS256", "rs256"] {
            assert!(allowed_algorithm(name).is_err(), "{name}");
        }
    }

    #[test]
    fn a_service_url_matches_regardless_of_case_and_trailing_slash() {
        let claims = VerifiedClaims {
            iss: BOT_FRAMEWORK_ISSUER.into(),
            serviceurl: Some("https://SMBA.example/teams/".into()),
            tid: None,
            appid: None,
            azp: None,
        };
        let activity = Activity {
            service_url: Some("https://smba.example/teams".into()),
            ..Activity::default()
        };
        assert!(check_service_url(&claims, &activity).is_ok());
    }
}
