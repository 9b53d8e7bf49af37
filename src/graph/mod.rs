//! The Microsoft Graph client: reads directory users and their privileges,
//! and performs the containment writes (block sign-in, revoke sessions,
//! force a password change, remove authentication methods).
//!
//! It only speaks to the base URL and token URL it is given, so national
//! clouds and the sandbox work by configuration. It decides nothing: policy
//! and approvals are checked before any write here is called. Every call
//! sends a fresh `client-request-id`; every write returns a
//! [`GraphReceipt`] for the audit trail. Tokens and secrets are never
//! logged.

mod call;
mod error;
mod model;
pub mod permissions;

use std::sync::Arc;
use std::time::Duration;

use reqwest::Method;
use secrecy::SecretString;
use serde::Deserialize;
use serde_json::json;
use url::Url;

use crate::oauth::{ClientCredentials, TokenSource};
use crate::retry::RetryPolicy;
use call::{decode, GraphRequest};

pub use error::GraphError;
pub use model::{removal_order, AuthMethod, DirectoryUser, GraphReceipt};

/// The scope of an app-only Graph token.
const GRAPH_SCOPE: &str = "https://graph.microsoft.com/.default";

/// `checkMemberGroups` accepts at most this many group ids per call.
const MEMBER_GROUPS_CHUNK: usize = 20;

/// Collection pages followed before giving up on a listing.
const MAX_PAGES: usize = 50;

/// Where Graph is and how to authenticate to it.
#[derive(Debug, Clone)]
pub struct GraphSettings {
    /// Such as `https://graph.microsoft.com/v1.0`.
    pub base_url: String,
    pub token_url: String,
    pub client_id: String,
    pub client_secret: SecretString,
    pub retry: RetryPolicy,
    /// For one HTTP attempt, connection and body included.
    pub timeout: Duration,
}

/// A Graph client with its own token cache. Cheap to clone; clones share
/// the cache.
#[derive(Clone)]
pub struct GraphClient {
    inner: Arc<Inner>,
}

struct Inner {
    settings: GraphSettings,
    http: reqwest::Client,
    tokens: TokenSource,
}

impl std::fmt::Debug for GraphClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GraphClient")
            .field("base_url", &self.inner.settings.base_url)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct ValueList {
    value: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RoleAssignment {
    role_definition_id: String,
}

impl GraphClient {
    pub fn new(settings: GraphSettings, http: reqwest::Client) -> Self {
        let credentials = ClientCredentials {
            token_url: settings.token_url.clone(),
            client_id: settings.client_id.clone(),
            client_secret: settings.client_secret.clone(),
            scope: Some(GRAPH_SCOPE.to_string()),
        };
        let tokens = TokenSource::new(credentials, http.clone(), settings.timeout);
        let inner = Inner {
            settings,
            http,
            tokens,
        };
        Self {
            inner: Arc::new(inner),
        }
    }

    /// Reads a user by UPN or object id; `None` when Graph has no such
    /// user.
    pub async fn get_user(&self, upn_or_id: &str) -> Result<Option<DirectoryUser>, GraphError> {
        let mut url = self.endpoint(&["users", upn_or_id])?;
        url.set_query(Some(&format!("$select={}", model::USER_FIELDS)));
        match self.call(GraphRequest::get(url)).await {
            Ok(answer) => decode(&answer).map(Some),
            Err(error) if error.status() == Some(404) => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// Which of `group_ids` the user belongs to, directly or through other
    /// groups. Asked 20 ids at a time, as Graph requires.
    pub async fn check_member_groups(
        &self,
        user_id: &str,
        group_ids: &[String],
    ) -> Result<Vec<String>, GraphError> {
        let url = self.endpoint(&["users", user_id, "checkMemberGroups"])?;
        let mut members = Vec::new();
        for chunk in group_ids.chunks(MEMBER_GROUPS_CHUNK) {
            let body = json!({ "groupIds": chunk });
            let request = GraphRequest::post(url.clone(), Some(body));
            let answer = self.call(request).await?;
            members.extend(decode::<ValueList>(&answer)?.value);
        }
        Ok(members)
    }

    /// The role definition ids directly assigned to the user. Roles held
    /// through group membership are not included: v1.0 has no transitive
    /// listing, so privileged groups must also be named in the policy.
    pub async fn directory_role_ids(&self, user_id: &str) -> Result<Vec<String>, GraphError> {
        let mut url = self.endpoint(&["roleManagement", "directory", "roleAssignments"])?;
        let filter = format!("principalId eq '{}'", user_id.replace('\'', "''"));
        url.set_query(Some(&format!("$filter={}", encode_query(&filter))));
        let assignments: Vec<RoleAssignment> = self.list(url).await?;
        let mut ids: Vec<String> = assignments
            .into_iter()
            .map(|a| a.role_definition_id)
            .collect();
        ids.sort();
        ids.dedup();
        Ok(ids)
    }

    /// Blocks (`false`) or restores (`true`) sign-in for the user.
    pub async fn set_account_enabled(
        &self,
        user_id: &str,
        enabled: bool,
    ) -> Result<GraphReceipt, GraphError> {
        let url = self.endpoint(&["users", user_id])?;
        let body = json!({ "accountEnabled": enabled });
        let answer = self.call(GraphRequest::patch(url, body)).await?;
        Ok(answer.receipt)
    }

    /// Invalidates the user's refresh tokens and session cookies. Access
    /// tokens already issued stay valid until they expire, except at
    /// services that evaluate access continuously. After an answer that
    /// may hide a revocation that took effect (see
    /// [`GraphError::may_have_taken_effect`]) it is not sent again: the
    /// caller reads the user back to find out.
    pub async fn revoke_sign_in_sessions(&self, user_id: &str) -> Result<GraphReceipt, GraphError> {
        let url = self.endpoint(&["users", user_id, "revokeSignInSessions"])?;
        let request = GraphRequest {
            repeat_safe: false,
            ..GraphRequest::post(url, None)
        };
        let answer = self.call(request).await?;
        if refused_revocation(&answer.body) {
            return Err(GraphError::Api {
                status: answer.receipt.status,
                code: "revocationNotConfirmed".into(),
                message: "Graph answered value false".into(),
                request_id: answer.receipt.request_id,
                client_request_id: answer.receipt.client_request_id,
                date: answer.receipt.date,
            });
        }
        Ok(answer.receipt)
    }

    /// Makes the user choose a new password at the next sign-in.
    pub async fn require_password_change(&self, user_id: &str) -> Result<GraphReceipt, GraphError> {
        let url = self.endpoint(&["users", user_id])?;
        let body = json!({
            "passwordProfile": { "forceChangePasswordNextSignIn": true }
        });
        let answer = self.call(GraphRequest::patch(url, body)).await?;
        Ok(answer.receipt)
    }

    /// The user's registered authentication methods, password included.
    pub async fn list_auth_methods(&self, user_id: &str) -> Result<Vec<AuthMethod>, GraphError> {
        let path = ["users", user_id, "authentication", "methods"];
        self.list(self.endpoint(&path)?).await
    }

    /// Removes one authentication method. The password has no delete
    /// endpoint and is refused here without calling Graph.
    pub async fn delete_auth_method(
        &self,
        user_id: &str,
        method: &AuthMethod,
    ) -> Result<GraphReceipt, GraphError> {
        let segment = method
            .delete_segment()
            .ok_or_else(|| GraphError::UnsupportedMethod {
                odata_type: method.odata_type.clone(),
            })?;
        let path = ["users", user_id, "authentication", segment, &method.id];
        let url = self.endpoint(&path)?;
        let request = GraphRequest {
            method: Method::DELETE,
            url,
            json: None,
            repeat_safe: true,
        };
        Ok(self.call(request).await?.receipt)
    }

    /// Proves the credentials by obtaining a token, for `config check`.
    pub async fn check_token(&self) -> Result<(), GraphError> {
        self.endpoint(&[])?;
        let token = self.inner.tokens.token().await;
        token
            .map(drop)
            .map_err(|source| GraphError::Token { source })
    }

    /// The application permissions granted to the app, as the `roles`
    /// claim of its current access token lists them, for `config check`.
    pub async fn granted_roles(&self) -> Result<Vec<String>, GraphError> {
        let token = self.inner.tokens.token().await;
        let token = token.map_err(|source| GraphError::Token { source })?;
        permissions::token_roles(token.secret())
            .map_err(|reason| GraphError::RolesUnreadable { reason })
    }

    /// `base_url` with `segments` appended, each percent-encoded, so that
    /// `#`, `/` or `?` in a UPN stay inside their segment.
    fn endpoint(&self, segments: &[&str]) -> Result<Url, GraphError> {
        let base = &self.inner.settings.base_url;
        let mut url = Url::parse(base).map_err(|e| bad_base_url(base, e))?;
        url.path_segments_mut()
            .map_err(|()| bad_base_url(base, "it cannot have a path"))?
            .pop_if_empty()
            .extend(segments);
        Ok(url)
    }

    /// Every item of a collection, following `@odata.nextLink` on the same
    /// host only, so the token is never sent elsewhere.
    async fn list<T>(&self, first: Url) -> Result<Vec<T>, GraphError>
    where
        T: serde::de::DeserializeOwned,
    {
        let mut items = Vec::new();
        let mut next = Some(first);
        for _ in 0..MAX_PAGES {
            let Some(url) = next.take() else { break };
            let answer = self.call(GraphRequest::get(url.clone())).await?;
            let page: model::Page<T> = decode(&answer)?;
            items.extend(page.value);
            next = page
                .next_link
                .map(|link| same_origin_link(&url, &link, &answer))
                .transpose()?;
        }
        Ok(items)
    }
}

impl GraphRequest {
    fn get(url: Url) -> Self {
        Self {
            method: Method::GET,
            url,
            json: None,
            repeat_safe: true,
        }
    }

    fn post(url: Url, json: Option<serde_json::Value>) -> Self {
        Self {
            method: Method::POST,
            url,
            json,
            repeat_safe: true,
        }
    }

    /// A PATCH sets absolute values, so a repeat changes nothing more.
    fn patch(url: Url, json: serde_json::Value) -> Self {
        Self {
            method: Method::PATCH,
            url,
            json: Some(json),
            repeat_safe: true,
        }
    }
}

fn bad_base_url(base: &str, reason: impl std::fmt::Display) -> GraphError {
    GraphError::Config {
        reason: format!("graph.base_url {base:?} is not usable; {reason}"),
    }
}

fn same_origin_link(
    current: &Url,
    link: &str,
    answer: &call::GraphAnswer,
) -> Result<Url, GraphError> {
    let next = Url::parse(link)
        .ok()
        .filter(|n| n.origin() == current.origin());
    next.ok_or_else(|| GraphError::Decode {
        status: answer.receipt.status,
        reason: "@odata.nextLink points away from the Graph host".into(),
        request_id: answer.receipt.request_id.clone(),
        client_request_id: answer.receipt.client_request_id.clone(),
    })
}

/// Graph documents `{"value": true}`; an explicit `false` means the
/// sessions were not revoked. An empty or other body is taken as success,
/// since the status is documented to vary.
fn refused_revocation(body: &[u8]) -> bool {
    let value: Option<serde_json::Value> = serde_json::from_slice(body).ok();
    value.and_then(|v| v.get("value").cloned()) == Some(json!(false))
}

/// Percent-encodes a query value, leaving only unreserved characters, so
/// that `&`, `=`, `+` or `#` in it cannot change the query's shape.
fn encode_query(value: &str) -> String {
    let mut encoded = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            encoded.push(byte as char);
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(base_url: &str) -> GraphClient {
        let settings = GraphSettings {
            base_url: base_url.into(),
            token_url: "http://127.0.0.1:9/token".into(),
            client_id: "app".into(),
            client_secret: SecretString::from("s3cret".to_string()),
            retry: RetryPolicy::fast(),
            timeout: Duration::from_secs(1),
        };
        GraphClient::new(settings, reqwest::Client::new())
    }

    #[test]
    fn guest_upn_stays_one_path_segment() {
        let graph = client("https://graph.example/v1.0");
        let url = graph
            .endpoint(&["users", "gina_fabrikam.com#EXT#@contoso.com"])
            .unwrap();
        assert_eq!(
            url.as_str(),
            "https://graph.example/v1.0/users/gina_fabrikam.com%23EXT%23@contoso.com"
        );
        let url = graph.endpoint(&["users", "a/b?c"]).unwrap();
        assert_eq!(url.path(), "/v1.0/users/a%2Fb%3Fc");
    }

    #[test]
    fn trailing_slash_in_base_url_is_tolerated() {
        let graph = client("https://graph.example/v1.0/");
        let url = graph.endpoint(&["users", "x"]).unwrap();
        assert_eq!(url.as_str(), "https://graph.example/v1.0/users/x");
    }

    #[test]
    fn unusable_base_url_is_a_config_error() {
        let error = client("not a url").endpoint(&["users"]).unwrap_err();
        assert!(matches!(error, GraphError::Config { .. }), "{error}");
    }

    #[test]
    fn filter_value_cannot_add_query_parameters() {
        let encoded = encode_query("principalId eq 'a&$top=1#'");
        assert!(!encoded.contains('&') && !encoded.contains('#'));
        assert!(encoded.starts_with("principalId%20eq%20%27a%26"));
    }

    #[test]
    fn explicit_false_from_revocation_is_a_refusal() {
        assert!(refused_revocation(br#"{"value":false}"#));
        assert!(!refused_revocation(br#"{"value":true}"#));
        assert!(!refused_revocation(b""));
    }

    #[test]
    fn debug_of_settings_and_client_hides_the_secret() {
        let graph = client("https://graph.example/v1.0");
        assert!(!format!("{graph:?}").contains("s3cret"));
        assert!(!format!("{:?}", graph.inner.settings).contains("s3cret"));
    }
}
