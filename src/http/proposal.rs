//! The JSON body shared by the ServiceNow webhook and the automation API,
//! its validation, and its submission to the engine.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::Value;
use utoipa::ToSchema;

use crate::containment::intake::{IntakeError, IntakeOutcome, Proposal};
use crate::containment::model::{ContainmentRequest, Requester};
use crate::policy::{RequestKind, Risk, Source, Upn};

use super::error::ApiError;
use super::schema::ProposalAnswer;
use super::AppState;

/// A proposal to contain an account, from a SIEM, a script, an agent or
/// a ServiceNow business rule.
// Every field is optional in Rust so that a missing one is answered by
// name rather than by a serde message; the schema marks the required ones.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[schema(example = json!({
    "number": "INC0010001",
    "affected_user": "alice@contoso.com",
    "requested_by": "sam.analyst@contoso.com",
    "justification": "impossible travel and a new inbox rule",
    "source": "siem",
    "risk": "high"
}))]
pub struct ProposalBody {
    /// The ServiceNow incident, e.g. `INC0012345`.
    #[schema(value_type = String, required = true, min_length = 1,
             max_length = 2000, pattern = r"\S")]
    pub number: Option<String>,
    /// The UPN of the account to contain.
    #[schema(value_type = String, required = true, min_length = 1,
             max_length = 2000, pattern = r"\S")]
    pub affected_user: Option<String>,
    /// The UPN (or the Entra object id) of the person on whose behalf the
    /// system asks; must exist in Entra ID.
    #[schema(value_type = String, required = true, min_length = 1,
             max_length = 2000, pattern = r"\S")]
    pub requested_by: Option<String>,
    /// Why, in a sentence; shown to the approvers.
    #[schema(value_type = String, required = true, min_length = 1,
             max_length = 2000, pattern = r"\S")]
    pub justification: Option<String>,
    /// The incident's ServiceNow sys_id; Cordon looks the incident up by
    /// number and does not rely on it.
    #[schema(max_length = 2000)]
    pub sys_id: Option<String>,
    /// The incident category as the sender sees it; policy checks the
    /// category recorded in ServiceNow, not this one.
    #[schema(max_length = 2000)]
    pub category: Option<String>,
    /// Who decided to ask: `siem` marks a detection rule, and only such
    /// requests can be approved by the auto-approve rule; any other label
    /// (`manual`, ...) leaves the route's own source.
    #[schema(max_length = 2000)]
    pub source: Option<String>,
    #[schema(value_type = Option<Risk>)]
    pub risk: Option<String>,
    /// `revoke_sessions` when present.
    #[schema(value_type = Option<SecurityAction>)]
    pub security_action: Option<String>,
}

/// The only security action a proposal may name.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SecurityAction {
    RevokeSessions,
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
    /// `security_action = revoke_sessions`: end sessions, keep sign-in.
    pub revoke_only: bool,
}

/// The longest text accepted in any field, in characters.
const MAX_FIELD: usize = 2_000;

/// Reads the body, answering 413 in JSON when it is over the limit.
pub fn body_bytes(
    body: Result<Bytes, BytesRejection>,
    state: &AppState,
) -> Result<Bytes, ApiError> {
    body.map_err(|rejection| match rejection.status() {
        StatusCode::PAYLOAD_TOO_LARGE => {
            ApiError::TooLarge(state.engine.config.server.max_body_bytes)
        }
        _ => ApiError::BadRequest("the body could not be read".into()),
    })
}

/// Parses and validates; the error names the field at fault.
pub fn parse(body: &[u8]) -> Result<ValidProposal, ApiError> {
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        ApiError::BadRequest(format!(
            "the body is not valid JSON; error at line {} column {}",
            e.line(),
            e.column()
        ))
    })?;
    if !value.is_object() {
        return Err(ApiError::BadRequest(
            "the body must be a JSON object".into(),
        ));
    }
    let body: ProposalBody = serde_path_to_error::deserialize(value)
        .map_err(|e| ApiError::BadRequest(format!("field `{}` must be a string", e.path())))?;
    for (name, value) in [
        ("sys_id", &body.sys_id),
        ("category", &body.category),
        ("source", &body.source),
    ] {
        check_length(name, value.as_deref().unwrap_or_default())?;
    }
    // Only `siem` changes anything (the auto-approve rule looks at it);
    // any other label, such as `manual`, leaves the route's own source.
    let source = body
        .source
        .as_deref()
        .filter(|text| text.trim().eq_ignore_ascii_case("siem"))
        .map(|_| Source::Siem);
    let risk = match body.risk.as_deref() {
        None => None,
        Some(text) => Some(exact::<Risk>("risk", text, Risk::ALL)?),
    };
    if let Some(action) = body.security_action.as_deref() {
        if action != "revoke_sessions" {
            return Err(ApiError::BadRequest(
                "field `security_action` must be `revoke_sessions` when present".into(),
            ));
        }
    }
    Ok(ValidProposal {
        number: required("number", body.number)?,
        affected_user: required("affected_user", body.affected_user)?,
        requested_by: requester(required("requested_by", body.requested_by)?)?,
        justification: required("justification", body.justification)?,
        source,
        risk,
        revoke_only: body.security_action.is_some(),
    })
}

/// A required text: present, not only blanks, not too long; trimmed.
fn required(name: &str, value: Option<String>) -> Result<String, ApiError> {
    let value = value.unwrap_or_default();
    check_length(name, &value)?;
    let trimmed = value.trim();
    if trimmed.is_empty() {
        return Err(ApiError::BadRequest(format!("field `{name}` is required")));
    }
    Ok(trimmed.to_string())
}

/// The requester as Graph is asked for it: a UPN, normalised, or an Entra
/// object id. Anything else is refused here, because Graph would read it
/// as part of a path (`..` lists every user) rather than as one user.
fn requester(text: String) -> Result<String, ApiError> {
    // Only the hyphenated form, the one Graph takes in a path.
    if text.len() == 36 && uuid::Uuid::try_parse(&text).is_ok() {
        return Ok(text);
    }
    match Upn::parse(&text) {
        Ok(upn) => Ok(upn.as_str().to_string()),
        Err(e) => Err(ApiError::BadRequest(format!(
            "field `requested_by` must be a user principal name such as \
             sam@contoso.com, or an Entra object id; {e}"
        ))),
    }
}

fn check_length(name: &str, value: &str) -> Result<(), ApiError> {
    if value.chars().count() > MAX_FIELD {
        return Err(ApiError::BadRequest(format!(
            "field `{name}` is longer than {MAX_FIELD} characters"
        )));
    }
    Ok(())
}

/// One of a vocabulary's words, exactly as the schema lists it.
fn exact<T: Copy + std::fmt::Display>(
    field: &str,
    text: &str,
    values: &[T],
) -> Result<T, ApiError> {
    values
        .iter()
        .copied()
        .find(|value| value.to_string() == text)
        .ok_or_else(|| {
            let expected: Vec<String> = values.iter().map(|v| format!("`{v}`")).collect();
            ApiError::BadRequest(format!(
                "field `{field}` has an unknown value; expected one of {}",
                expected.join(", ")
            ))
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
        Err(e) => {
            tracing::warn!(error = %e, "requester lookup failed");
            return Err(ApiError::Upstream("Entra ID did not answer".into()));
        }
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
        revoke_only: proposal.revoke_only,
    };
    match engine.propose(submitted).await {
        Ok(IntakeOutcome::Created(request)) => Ok(answer(StatusCode::ACCEPTED, &request)),
        Ok(IntakeOutcome::Existing(request)) => Ok(answer(StatusCode::OK, &request)),
        Ok(IntakeOutcome::Refused(refusal)) => Err(ApiError::Refused {
            rule: refusal.rule,
            reason: match refusal.hint {
                Some(hint) => format!("{}; {hint}", refusal.reason),
                None => refusal.reason,
            },
        }),
        Err(IntakeError::Store(e)) => Err(e.into()),
        Err(e) => {
            tracing::warn!(error = %e, "intake could not reach an outside system");
            Err(ApiError::Upstream(
                "Entra ID or ServiceNow did not answer; nothing was stored".into(),
            ))
        }
    }
}

fn answer(status: StatusCode, request: &ContainmentRequest) -> Response {
    let body = ProposalAnswer {
        request_id: request.id.clone(),
        state: request.state,
    };
    (status, Json(body)).into_response()
}
