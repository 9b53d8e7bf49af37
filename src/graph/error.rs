//! The one error type of the Graph client, and the reading of Graph's error
//! JSON into it.
//!
//! Every variant carries the `client-request-id` Cordon sent, and the
//! `request-id` Graph gave back when it answered, so that a failed step in
//! the audit trail can be traced on Microsoft's side.

use serde::Deserialize;

use crate::oauth::OAuthError;

/// Why a Graph call failed.
#[derive(Debug, thiserror::Error)]
pub enum GraphError {
    /// Graph answered with an error status. 404 on a user read becomes
    /// `None` instead; everything else reaches the caller as this.
    #[error(
        "Graph answered {status} {code}: {message} \
         (request-id {}, client-request-id {client_request_id})",
        request_id.as_deref().unwrap_or("none")
    )]
    Api {
        status: u16,
        code: String,
        message: String,
        request_id: Option<String>,
        client_request_id: String,
        date: Option<String>,
    },
    /// Graph could not be reached, reset the connection or did not answer
    /// within the timeout, after every attempt the retry policy allowed.
    #[error("Graph unreachable; {source} (client-request-id {client_request_id})")]
    Transport {
        client_request_id: String,
        #[source]
        source: reqwest::Error,
    },
    /// No token could be had from the token endpoint.
    #[error("Graph token unavailable; {source}")]
    Token {
        #[source]
        source: OAuthError,
    },
    /// Graph answered success with a body Cordon cannot read.
    #[error(
        "Graph answered {status} with an unreadable body; {reason} \
         (request-id {}, client-request-id {client_request_id})",
        request_id.as_deref().unwrap_or("none")
    )]
    Decode {
        status: u16,
        reason: String,
        request_id: Option<String>,
        client_request_id: String,
    },
    /// An authentication method of a type that has no delete endpoint
    /// (the password, or a type this client does not know).
    #[error("authentication method type {odata_type} cannot be deleted")]
    UnsupportedMethod { odata_type: String },
    /// The configured base URL cannot address Graph; nothing was sent.
    #[error("{reason}")]
    Config { reason: String },
    /// The access token does not say which permissions it carries, so
    /// `config check` cannot tell what a step would lack.
    #[error("granted permissions unknown; {reason}")]
    RolesUnreadable { reason: String },
}

impl GraphError {
    /// The HTTP status Graph answered with, if it answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Api { status, .. } | Self::Decode { status, .. } => Some(*status),
            Self::Token { source } => source.status(),
            Self::Transport { .. }
            | Self::UnsupportedMethod { .. }
            | Self::Config { .. }
            | Self::RolesUnreadable { .. } => None,
        }
    }

    /// Graph's error code, such as `Authorization_RequestDenied`.
    pub fn code(&self) -> Option<&str> {
        match self {
            Self::Api { code, .. } => Some(code),
            _ => None,
        }
    }

    /// The `request-id` Graph gave back, if it answered.
    pub fn request_id(&self) -> Option<&str> {
        match self {
            Self::Api { request_id, .. } | Self::Decode { request_id, .. } => request_id.as_deref(),
            _ => None,
        }
    }

    /// The `client-request-id` Cordon sent with the failed call.
    pub fn client_request_id(&self) -> Option<&str> {
        match self {
            Self::Api {
                client_request_id, ..
            }
            | Self::Transport {
                client_request_id, ..
            }
            | Self::Decode {
                client_request_id, ..
            } => Some(client_request_id),
            Self::Token { .. }
            | Self::UnsupportedMethod { .. }
            | Self::Config { .. }
            | Self::RolesUnreadable { .. } => None,
        }
    }

    /// Whether Graph may have applied the request although no success
    /// came back: a gateway timeout (504), a timeout of our own, or a
    /// connection lost after the request went out. A refused connection
    /// or a 429/503 answer means Graph did nothing.
    pub fn may_have_taken_effect(&self) -> bool {
        match self {
            Self::Api { status, .. } => *status == 504,
            Self::Transport { source, .. } => !source.is_connect(),
            _ => false,
        }
    }

    /// Whether the same call may succeed later: throttling, an unavailable
    /// gateway, a lost connection or an unreachable token endpoint.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Api { status, .. } => is_retried_status(*status),
            Self::Transport { .. } => true,
            Self::Token { source } => source.is_transient(),
            Self::Decode { .. }
            | Self::UnsupportedMethod { .. }
            | Self::Config { .. }
            | Self::RolesUnreadable { .. } => false,
        }
    }
}

/// The statuses the client retries by itself: throttling and the two
/// gateway answers Graph documents as safe to repeat. Other 5xx answers are
/// not repeated because a write may already have taken effect.
pub(crate) fn is_retried_status(status: u16) -> bool {
    matches!(status, 429 | 503 | 504)
}

/// What Graph's error JSON says, with the ids it carries.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct ErrorBody {
    pub code: Option<String>,
    pub message: Option<String>,
    pub request_id: Option<String>,
    pub date: Option<String>,
}

#[derive(Deserialize)]
struct Envelope {
    error: Detail,
}

#[derive(Deserialize)]
struct Detail {
    code: Option<String>,
    message: Option<String>,
    #[serde(rename = "innerError", alias = "innererror")]
    inner: Option<Inner>,
}

#[derive(Deserialize)]
struct Inner {
    #[serde(rename = "request-id")]
    request_id: Option<String>,
    date: Option<String>,
}

/// Reads `{"error":{"code","message","innerError":{"request-id","date"}}}`.
/// `None` when the body is not that shape, e.g. an HTML page from a proxy.
pub(crate) fn parse_error_body(body: &[u8]) -> Option<ErrorBody> {
    let envelope: Envelope = serde_json::from_slice(body).ok()?;
    let detail = envelope.error;
    let inner = detail.inner;
    Some(ErrorBody {
        code: detail.code,
        message: detail.message,
        request_id: inner.as_ref().and_then(|i| i.request_id.clone()),
        date: inner.and_then(|i| i.date),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn graph_error_json_gives_code_message_and_inner_ids() {
        let body = br#"{"error":{"code":"Request_ResourceNotFound",
            "message":"Resource 'x' does not exist.",
            "innerError":{"date":"2025-01-02T03:04:05",
            "request-id":"r-1","client-request-id":"c-1"}}}"#;
        let parsed = parse_error_body(body).unwrap();
        assert_eq!(parsed.code.as_deref(), Some("Request_ResourceNotFound"));
        assert_eq!(
            parsed.message.as_deref(),
            Some("Resource 'x' does not exist.")
        );
        assert_eq!(parsed.request_id.as_deref(), Some("r-1"));
        assert_eq!(parsed.date.as_deref(), Some("2025-01-02T03:04:05"));
    }

    #[test]
    fn graph_error_json_without_inner_error_still_parses() {
        let body = br#"{"error":{"code":"TooManyRequests","message":"slow"}}"#;
        let parsed = parse_error_body(body).unwrap();
        assert_eq!(parsed.code.as_deref(), Some("TooManyRequests"));
        assert_eq!(parsed.request_id, None);
    }

    #[test]
    fn body_that_is_not_graph_error_json_is_not_parsed() {
        assert_eq!(parse_error_body(b"<html>Bad gateway</html>"), None);
        assert_eq!(parse_error_body(br#"{"value":[]}"#), None);
        assert_eq!(parse_error_body(b""), None);
    }

    #[test]
    fn api_error_display_names_status_code_message_and_ids() {
        let error = GraphError::Api {
            status: 403,
            code: "Authorization_RequestDenied".into(),
            message: "Insufficient privileges".into(),
            request_id: Some("r-9".into()),
            client_request_id: "c-9".into(),
            date: None,
        };
        let text = error.to_string();
        for part in ["403", "Authorization_RequestDenied", "Insufficient", "r-9"] {
            assert!(text.contains(part), "{text}");
        }
        assert_eq!(error.status(), Some(403));
        assert_eq!(error.code(), Some("Authorization_RequestDenied"));
        assert_eq!(error.request_id(), Some("r-9"));
        assert!(!error.is_transient());
    }

    #[test]
    fn throttling_and_gateway_errors_are_transient_others_not() {
        for (status, transient) in [
            (429, true),
            (503, true),
            (504, true),
            (500, false),
            (400, false),
            (404, false),
        ] {
            let error = GraphError::Api {
                status,
                code: String::new(),
                message: String::new(),
                request_id: None,
                client_request_id: String::new(),
                date: None,
            };
            assert_eq!(error.is_transient(), transient, "{status}");
        }
    }
}
