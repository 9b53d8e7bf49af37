//! The one error type of the ServiceNow client, and the reading of the
//! Table API's error JSON into it.

use serde::Deserialize;

use crate::oauth::OAuthError;

/// Why a ServiceNow call failed.
#[derive(Debug, thiserror::Error)]
pub enum ServiceNowError {
    /// ServiceNow answered with an error status.
    #[error("ServiceNow answered {status}: {message}{}", detail_suffix(detail))]
    Api {
        status: u16,
        message: String,
        detail: Option<String>,
    },
    /// ServiceNow could not be reached, reset the connection or did not
    /// answer within the timeout, after every attempt allowed.
    #[error("ServiceNow unreachable; {0}")]
    Transport(#[source] reqwest::Error),
    /// No OAuth token could be had from `oauth_token.do`.
    #[error("ServiceNow token unavailable; {0}")]
    Token(#[source] OAuthError),
    /// ServiceNow answered success with a body Cordon cannot read, such as
    /// the HTML page of a hibernating instance.
    #[error("ServiceNow answered {status} with an unreadable body; {reason}")]
    Decode { status: u16, reason: String },
    /// The incident number is not letters then digits; nothing was sent.
    #[error("{number:?} is not an incident number; expected e.g. INC0012345")]
    InvalidNumber { number: String },
    /// The sys_id is not letters and digits; nothing was sent.
    #[error("{sys_id:?} is not a sys_id; expected 32 hex digits")]
    InvalidSysId { sys_id: String },
    /// The configured instance URL cannot address ServiceNow.
    #[error("{reason}")]
    Config { reason: String },
}

fn detail_suffix(detail: &Option<String>) -> String {
    match detail {
        Some(detail) => format!(" ({detail})"),
        None => String::new(),
    }
}

impl ServiceNowError {
    /// The HTTP status ServiceNow answered with, if it answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Api { status, .. } | Self::Decode { status, .. } => Some(*status),
            Self::Token(source) => source.status(),
            _ => None,
        }
    }

    /// Whether ServiceNow may have applied the request although no success
    /// came back: a gateway timeout (504), our own timeout, or a
    /// connection lost after the request went out.
    pub fn may_have_taken_effect(&self) -> bool {
        match self {
            Self::Api { status, .. } => *status == 504,
            Self::Transport(source) => !source.is_connect(),
            _ => false,
        }
    }

    /// Whether the same call may succeed later.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Api { status, .. } => is_retried_status(*status),
            Self::Transport(_) => true,
            Self::Token(source) => source.is_transient(),
            _ => false,
        }
    }
}

/// Throttling and the gateway answers. Other 5xx answers are not repeated
/// because a work note may already have been appended.
pub(crate) fn is_retried_status(status: u16) -> bool {
    matches!(status, 429 | 503 | 504)
}

#[derive(Deserialize)]
struct Envelope {
    error: Detail,
}

#[derive(Deserialize)]
struct Detail {
    message: Option<String>,
    detail: Option<String>,
}

/// Reads `{"error":{"message","detail"},"status":"failure"}`; a body of
/// another shape gives a message naming the status and the body's size.
pub(crate) fn api_error(status: u16, body: &[u8]) -> ServiceNowError {
    let parsed: Option<Envelope> = serde_json::from_slice(body).ok();
    let (message, detail) = match parsed {
        Some(envelope) => (envelope.error.message, envelope.error.detail),
        None => (None, None),
    };
    let message = message.unwrap_or_else(|| {
        format!(
            "the error body is not ServiceNow error JSON ({} bytes)",
            body.len()
        )
    });
    let detail = detail.filter(|d| !d.is_empty());
    ServiceNowError::Api {
        status,
        message,
        detail,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_api_error_json_gives_message_and_detail() {
        let body = br#"{"error":{"message":"No Record found",
            "detail":"Record doesn't exist or ACL restricts the record retrieval"},
            "status":"failure"}"#;
        let error = api_error(404, body);
        let text = error.to_string();
        assert!(
            text.contains("404: No Record found (Record doesn't"),
            "{text}"
        );
        assert_eq!(error.status(), Some(404));
        assert!(!error.is_transient());
    }

    #[test]
    fn html_error_page_still_gives_a_clear_error() {
        let error = api_error(503, b"<html>Instance hibernating</html>");
        let text = error.to_string();
        assert!(text.contains("503") && text.contains("not ServiceNow error JSON"));
        assert!(error.is_transient());
    }
}
