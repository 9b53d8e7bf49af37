//! The JSON body shared by the ServiceNow webhook and the automation API,
//! its validation, and its submission to the engine.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::containment::intake::{IntakeError, IntakeOutcome, Proposal};
use crate::containment::model::Requester;
use crate::policy::{RequestKind, Risk, Source};

use super::error::ApiError;
use super::AppState;

/// The body, as sent. Every field is optional here so that a missing one
/// is answered by name rather than by a serde message.
#[derive(Debug, Default, Deserialize)]
pub struct ProposalBody {
    pub number: Option<String>,
    pub affected_user: Option<String>,
    pub requested_by: Option<String>,
    pub justification: Option<String>,
    pub sys_id: Option<String>,
    pub category: Option<String>,
    pub source: Option<String>,
    pub risk: Option<String>,
    pub security_action: Option<String>,
}

/// A body that passed validation.
#[derive(Debug)]
pub struct ValidProposal {
    pub number: String,
    pub affected_user: String,
    pub requested_by: String,
    pub justification: String,
    pub source: Option<Source>,
    pub risk: Option<Risk>,
}

const MAX_FIELD: usize = 2_000;

/// Reads the body, answering 413 in JSON when it is over the limit.
pub fn body_bytes(body: Result<Bytes, BytesRejection>, state: &AppState) -> Result<Bytes, ApiError> {
    body.map_err(|rejection| match rejection.status() {
        StatusCode::PAYLOAD_TOO_LARGE => {
            ApiError::TooLarge(state.engine.config.server.max_body_bytes)
        }
        _ => ApiError::BadRequest(format!("the body could not be read: {rejection}")),
    })
}

/// Parses and validates; the error names the field at fault.
pub fn parse(body: &[u8]) -> Result<ValidProposal, ApiError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::BadRequest(format!("the body is not valid JSON: {e}")))?;
    if !value.is_object() {
        return Err(ApiError::BadRequest("the body must be a JSON object".into()));
    }
    let body: ProposalBody = serde_json::from_value(value).map_err(|e| {
        ApiError::BadRequest(format!("a field has the wrong type: {e}"))
    })?;
    let required = |name: &str, value: Option<String>| {
        let value = value.unwrap_or_default();
        let value = value.trim();
        if value.is_empty() {
            return Err(ApiError::BadRequest(format!("field `{name}` is required")));
        }
        if value.len() > MAX_FIELD {
            return Err(ApiError::BadRequest(format!(
                "field `{name}` is longer than {MAX_FIELD} characters"
            )));
        }
        Ok(value.to_string())
    };
    // Only `siem` changes anything (the auto-approve rule looks at it);
    // any other label, such as `manual`, leaves the route's own source.
    let source = body
        .source
        .as_deref()
        .filter(|text| text.trim().eq_ignore_ascii_case("siem"))
        .map(|_| Source::Siem);
    let risk = match body.risk.as_deref() {
        None | Some("") => None,
        Some(text) => Some(parse_enum::<Risk>("risk", text)?),
    };
    if let Some(action) = body.security_action.as_deref() {
        if !action.is_empty() && action != "revoke_sessions" {
            return Err(ApiError::BadRequest(
                "field `security_action` must be `revoke_sessions` when present".into(),
            ));
        }
    }
    Ok(ValidProposal {
        number: required("number", body.number)?,
        affected_user: required("affected_user", body.affected_user)?,
        requested_by: required("requested_by", body.requested_by)?,
        justification: required("justification", body.justification)?,
        source,
        risk,
    })
}

fn parse_enum<T: serde::de::DeserializeOwned>(field: &str, text: &str) -> Result<T, ApiError> {
    serde_json::from_value(Value::String(text.to_lowercase())).map_err(|_| {
        ApiError::BadRequest(format!("field `{field}` has an unknown value `{text}`"))
    })
}

/// Resolves the requester, submits, and answers 202, 200 or 422.
pub async fn submit(
    state: &AppState,
    proposal: ValidProposal,
    default_source: Source,
    via: &str,
) -> Result<Response, ApiError> {
    let engine = &state.engine;
    let requester = match engine.graph.get_user(&proposal.requested_by).await {
        Ok(Some(user)) => Requester {
            id: user.id,
            name: format!(
                "{} via {via}",
                user.display_name.unwrap_or(user.user_principal_name)
            ),
        },
        Ok(None) => {
            return Err(ApiError::Refused {
                rule: "requester.unknown".into(),
                reason: format!(
                    "requested_by {} does not exist in Entra ID",
                    proposal.requested_by
                ),
            })
        }
        Err(e) => return Err(ApiError::Upstream(format!("Entra ID lookup failed: {e}"))),
    };
    let submitted = Proposal {
        kind: RequestKind::Containment,
        upn: proposal.affected_user,
        incident: proposal.number,
        justification: proposal.justification,
        source: proposal.source.unwrap_or(default_source),
        risk: proposal.risk,
        requester,
        origin: None,
    };
    match engine.propose(submitted).await {
        Ok(IntakeOutcome::Created(request)) => Ok((
            StatusCode::ACCEPTED,
            Json(json!({ "request_id": request.id, "state": request.state.as_str() })),
        )
            .into_response()),
        Ok(IntakeOutcome::Existing(request)) => Ok((
            StatusCode::OK,
            Json(json!({ "request_id": request.id, "state": request.state.as_str() })),
        )
            .into_response()),
        Ok(IntakeOutcome::Refused(refusal)) => Err(ApiError::Refused {
            rule: refusal.rule,
            reason: refusal.reason,
        }),
        Err(IntakeError::Store(e)) => Err(e.into()),
        Err(e) => Err(ApiError::Upstream(e.to_string())),
    }
}
