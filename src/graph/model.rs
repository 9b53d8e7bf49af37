//! What the Graph client hands back: directory users, authentication
//! methods and the receipt of every write.
//!
//! Field names follow Graph's JSON on the wire (camelCase), so the same
//! types read Graph answers and are stored in the audit trail unchanged.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The `$select` list for user reads; it matches [`DirectoryUser`].
pub(crate) const USER_FIELDS: &str = "id,userPrincipalName,displayName,\
department,jobTitle,mail,accountEnabled,userType,\
signInSessionsValidFromDateTime";

/// An Entra ID user as Cordon needs to see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DirectoryUser {
    /// The directory object id (a GUID).
    pub id: String,
    pub user_principal_name: String,
    pub display_name: Option<String>,
    pub department: Option<String>,
    pub job_title: Option<String>,
    pub mail: Option<String>,
    pub account_enabled: bool,
    /// `Member` or `Guest`.
    pub user_type: Option<String>,
    /// Moved forward by a session revocation; tokens issued before it are
    /// refused by services that honour it.
    #[serde(rename = "signInSessionsValidFromDateTime")]
    pub sign_in_sessions_valid_from: Option<DateTime<Utc>>,
}

/// Proof that Graph accepted a write: what to put in the audit trail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GraphReceipt {
    /// The success status Graph answered with (204 for a PATCH).
    pub status: u16,
    /// Graph's `request-id` response header.
    pub request_id: Option<String>,
    /// The `client-request-id` Cordon sent, the same on every attempt.
    pub client_request_id: String,
    /// Graph's `Date` response header.
    pub date: Option<String>,
    /// HTTP attempts made, the successful one included.
    pub attempts: u32,
    /// Time spent waiting between attempts, in milliseconds: what
    /// `Retry-After` asked for, or the backoff.
    #[serde(default)]
    pub waited_ms: u64,
}

/// One registered authentication method of a user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthMethod {
    pub id: String,
    /// Such as `#microsoft.graph.phoneAuthenticationMethod`.
    #[serde(rename = "@odata.type")]
    pub odata_type: String,
    /// Set for authenticator apps, FIDO2 keys and Windows Hello.
    #[serde(default)]
    pub display_name: Option<String>,
    /// Set for phone methods.
    #[serde(default)]
    pub phone_number: Option<String>,
    /// Set for email methods.
    #[serde(default)]
    pub email_address: Option<String>,
}

impl AuthMethod {
    /// The path segment under `/users/{id}/authentication/` that deletes
    /// this method, or `None` for the password and unknown types.
    pub fn delete_segment(&self) -> Option<&'static str> {
        let kind = self.odata_type.trim_start_matches("#microsoft.graph.");
        let segment = match kind {
            "microsoftAuthenticatorAuthenticationMethod" => "microsoftAuthenticatorMethods",
            "phoneAuthenticationMethod" => "phoneMethods",
            "fido2AuthenticationMethod" => "fido2Methods",
            "softwareOathAuthenticationMethod" => "softwareOathMethods",
            "emailAuthenticationMethod" => "emailMethods",
            "temporaryAccessPassAuthenticationMethod" => "temporaryAccessPassMethods",
            "windowsHelloForBusinessAuthenticationMethod" => "windowsHelloForBusinessMethods",
            "platformCredentialAuthenticationMethod" => "platformCredentialMethods",
            _ => return None,
        };
        Some(segment)
    }
}

/// The order in which a reset removes a user's methods: the password and
/// unknown types are left alone, and the types Entra most often holds as
/// the default sign-in method (authenticator app, then phone) go last,
/// since Graph refuses to delete the default method while others remain.
/// v1.0 does not say which method is the default, so the reset step also
/// retries, after the others are gone, any delete Graph refused with 400.
pub fn removal_order(methods: &[AuthMethod]) -> Vec<AuthMethod> {
    let rank = |method: &AuthMethod| match method.delete_segment() {
        Some("microsoftAuthenticatorMethods") => 2,
        Some("phoneMethods") => 1,
        _ => 0,
    };
    let mut removable: Vec<AuthMethod> = methods
        .iter()
        .filter(|method| method.delete_segment().is_some())
        .cloned()
        .collect();
    removable.sort_by_key(rank);
    removable
}

/// A Graph collection page: `{"value":[...], "@odata.nextLink": ...}`.
#[derive(Debug, Deserialize)]
pub(crate) struct Page<T> {
    pub value: Vec<T>,
    #[serde(rename = "@odata.nextLink")]
    pub next_link: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn graph_user_json_reads_into_a_directory_user() {
        let body = r#"{"id":"11111111-2222-3333-4444-555555555555",
            "userPrincipalName":"gina_fabrikam.com#EXT#@contoso.com",
            "displayName":"Gina","department":null,"jobTitle":null,
            "mail":"gina@fabrikam.com","accountEnabled":true,
            "userType":"Guest",
            "signInSessionsValidFromDateTime":"2025-03-01T10:00:00Z"}"#;
        let user: DirectoryUser = serde_json::from_str(body).unwrap();
        assert_eq!(user.user_type.as_deref(), Some("Guest"));
        assert!(user.account_enabled);
        let since = user.sign_in_sessions_valid_from.unwrap();
        assert_eq!(since.to_rfc3339(), "2025-03-01T10:00:00+00:00");
    }

    #[test]
    fn receipt_round_trips_through_json() {
        let receipt = GraphReceipt {
            status: 204,
            request_id: Some("r".into()),
            client_request_id: "c".into(),
            date: Some("Tue, 01 Jul 2025 10:00:00 GMT".into()),
            attempts: 2,
            waited_ms: 1000,
        };
        let json = serde_json::to_string(&receipt).unwrap();
        assert_eq!(
            serde_json::from_str::<GraphReceipt>(&json).unwrap(),
            receipt
        );
    }

    #[test]
    fn method_types_map_to_their_delete_segments() {
        let method = |kind: &str| AuthMethod {
            id: "m".into(),
            odata_type: format!("#microsoft.graph.{kind}"),
            display_name: None,
            phone_number: None,
            email_address: None,
        };
        let phone = method("phoneAuthenticationMethod");
        assert_eq!(phone.delete_segment(), Some("phoneMethods"));
        let app = method("microsoftAuthenticatorAuthenticationMethod");
        assert_eq!(app.delete_segment(), Some("microsoftAuthenticatorMethods"));
        let password = method("passwordAuthenticationMethod");
        assert_eq!(password.delete_segment(), None);
    }

    #[test]
    fn phone_method_keeps_its_number() {
        let body = r##"{"@odata.type":"#microsoft.graph.phoneAuthenticationMethod",
            "id":"3179e48a","phoneNumber":"+1 2065555555","phoneType":"mobile"}"##;
        let method: AuthMethod = serde_json::from_str(body).unwrap();
        assert_eq!(method.phone_number.as_deref(), Some("+1 2065555555"));
        assert_eq!(method.delete_segment(), Some("phoneMethods"));
    }
}
