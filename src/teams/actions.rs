//! What Cordon does with an authenticated activity: remember where Teams
//! spoke from, run typed commands, and handle card clicks.
//!
//! Commands are answered in the conversation they came from, after the
//! HTTP answer (lookups in Graph and ServiceNow take longer than Teams
//! waits). Card clicks are answered in the invoke's HTTP answer, at once;
//! the thread and the card for everyone follow.

use std::sync::Arc;

use serde_json::{json, Value};

use crate::botframework::activity::ADAPTIVE_CARD;
use crate::botframework::Activity;
use crate::containment::approvals::{ClickAnswer, Clicker};
use crate::containment::intake::{IntakeOutcome, Proposal};
use crate::containment::model::{looks_like_request_id, Decision, Origin, Requester};
use crate::containment::Engine;
use crate::policy::{RequestKind, Source};

use super::cards;
use super::channel::{channel_key, tenant_key};
use super::commands::Command;
use super::view::{one_line, status_filter};

/// What the HTTP layer sends back for an activity.
#[derive(Debug)]
pub enum Reply {
    /// 200 with an empty body.
    Accepted,
    /// 200 with this invoke answer.
    Invoke(Value),
}

/// Handles one activity that has passed authentication.
pub async fn handle(engine: &Arc<Engine>, activity: Activity) -> Reply {
    remember_service_url(engine, &activity).await;
    match activity.kind.as_str() {
        "message" if activity.value.is_none() => {
            let engine = engine.clone();
            tokio::spawn(async move { answer_command(&engine, &activity).await });
            Reply::Accepted
        }
        "invoke" if activity.name.as_deref() == Some("adaptiveCard/action") => {
            Reply::Invoke(card_action(engine, &activity).await)
        }
        "invoke" => Reply::Invoke(Activity::error_invoke_response(
            501,
            "NotImplemented",
            "Cordon handles only adaptiveCard/action invokes.",
        )),
        _ => Reply::Accepted,
    }
}

/// Teams' serviceUrl differs by region; the one it last used for a channel
/// or the tenant is the one to answer on.
async fn remember_service_url(engine: &Engine, activity: &Activity) {
    let Some(url) = activity.service_url.as_deref() else {
        return;
    };
    let mut keys = Vec::new();
    if let Some(tenant) = activity.tenant_id() {
        keys.push(tenant_key(tenant));
    }
    if let Some(channel) = activity.teams_channel_id() {
        keys.push(channel_key(channel));
    }
    let team = activity
        .channel_data
        .as_ref()
        .and_then(|d| d.pointer("/team/id"))
        .and_then(Value::as_str);
    if let Some(team) = team {
        keys.push(channel_key(team));
    }
    for key in keys {
        engine.teams.remember_service_url(&key, url).await;
    }
}

async fn answer_command(engine: &Arc<Engine>, activity: &Activity) {
    let reply = match Command::parse(&activity.text_without_mentions()) {
        Ok(command) => run_command(engine, activity, command).await,
        Err(error) => Activity::message(error.to_string()),
    };
    let Some(origin) = origin_of(activity) else {
        return;
    };
    if let Err(e) = engine.teams.answer(&origin, &reply).await {
        tracing::warn!(error = %e, "command answer not delivered");
    }
}

fn origin_of(activity: &Activity) -> Option<Origin> {
    Some(Origin {
        service_url: activity.service_url.clone()?,
        conversation_id: activity.conversation.as_ref()?.id.clone(),
    })
}

async fn run_command(engine: &Arc<Engine>, activity: &Activity, command: Command) -> Activity {
    match command {
        Command::Help => Activity::card(cards::help()),
        Command::Contain {
            upn,
            incident,
            justification,
        } => {
            let asked = Asked::new(RequestKind::Containment, upn, incident, justification);
            propose(engine, activity, asked).await
        }
        Command::Revoke {
            upn,
            incident,
            justification,
        } => {
            let asked = Asked::new(RequestKind::Containment, upn, incident, justification);
            propose(engine, activity, asked.revoke_only()).await
        }
        Command::Release {
            upn,
            incident,
            reason,
        } => {
            let asked = Asked::new(RequestKind::Release, upn, incident, reason);
            propose(engine, activity, asked).await
        }
        Command::Status { query } => status(engine, &query).await,
        Command::Policy { upn } => explain(engine, &upn).await,
    }
}

/// What a `contain`, `revoke` or `release` command asks for.
struct Asked {
    kind: RequestKind,
    upn: String,
    incident: String,
    justification: String,
    revoke_only: bool,
}

impl Asked {
    fn new(kind: RequestKind, upn: String, incident: String, justification: String) -> Self {
        Self {
            kind,
            upn,
            incident,
            justification,
            revoke_only: false,
        }
    }

    fn revoke_only(self) -> Self {
        Self {
            revoke_only: true,
            ..self
        }
    }
}

async fn propose(engine: &Arc<Engine>, activity: &Activity, asked: Asked) -> Activity {
    let Some(requester_id) = activity.from_object_id() else {
        return Activity::message(
            "Cordon could not tell who you are (no Entra object id on the message); \
             requests are only taken from signed-in Teams users.",
        );
    };
    if !activity.is_from_tenant(&engine.config.bot.tenant_id) {
        return Activity::message("Requests are only taken from this organisation's tenant.");
    }
    let proposal = Proposal {
        kind: asked.kind,
        upn: asked.upn,
        incident: asked.incident,
        justification: asked.justification,
        revoke_only: asked.revoke_only,
        source: Source::Teams,
        risk: None,
        requester: Requester {
            id: requester_id.to_string(),
            name: activity
                .from
                .as_ref()
                .and_then(|f| f.name.clone())
                .unwrap_or_else(|| requester_id.to_string()),
        },
        origin: origin_of(activity),
    };
    match engine.propose(proposal).await {
        Ok(IntakeOutcome::Created(request)) => match engine.view(&request).await {
            Ok(view) => Activity::card(cards::request_received(&view)),
            Err(e) => Activity::message(format!("{} was recorded, but: {e}", request.id)),
        },
        Ok(IntakeOutcome::Existing(request)) => Activity::message(format!(
            "A request for this user and incident already exists: {}",
            one_line(&request)
        )),
        Ok(IntakeOutcome::Refused(refusal)) => Activity::card(cards::refusal(
            "Request refused",
            &refusal.reason,
            refusal.hint.as_deref(),
        )),
        Err(e) => {
            tracing::error!(error = %e, "request could not be checked");
            Activity::message(format!(
                "The request could not be checked: {e}. Nothing was stored."
            ))
        }
    }
}

async fn status(engine: &Engine, query: &str) -> Activity {
    if looks_like_request_id(query) {
        return match engine.store.load(&query.to_ascii_uppercase()).await {
            Ok(Some(request)) => match engine.view(&request).await {
                Ok(view) => Activity::card(cards::progress(&view)),
                Err(e) => Activity::message(format!("Could not read {}: {e}", request.id)),
            },
            Ok(None) => Activity::message(format!("No request has the id {query}.")),
            Err(e) => Activity::message(format!("Could not read requests: {e}")),
        };
    }
    match engine.store.list(&status_filter(query)).await {
        Ok(found) if found.is_empty() => Activity::message(format!("No request matches {query}.")),
        Ok(found) => Activity::message(
            found
                .iter()
                .map(|r| format!("- {}", one_line(r)))
                .collect::<Vec<_>>()
                .join("\n"),
        ),
        Err(e) => Activity::message(format!("Could not read requests: {e}")),
    }
}

async fn explain(engine: &Engine, upn: &str) -> Activity {
    match crate::containment::explain::explain_upn(engine, upn, Source::Teams, None).await {
        Ok(text) => Activity::message(text),
        Err(e) => Activity::message(format!("Could not explain the policy for {upn}: {e}")),
    }
}

/// Handles `Action.Execute`: approve, reject, retry and refresh.
async fn card_action(engine: &Arc<Engine>, activity: &Activity) -> Value {
    let action = activity
        .value
        .as_ref()
        .and_then(|v| v.get("action"))
        .cloned()
        .unwrap_or(Value::Null);
    if action.get("type").and_then(Value::as_str) != Some("Action.Execute") {
        return Activity::error_invoke_response(
            400,
            "NotSupported",
            "Only Action.Execute is supported.",
        );
    }
    let verb = action.get("verb").and_then(Value::as_str).unwrap_or("");
    let data = action.get("data").cloned().unwrap_or(Value::Null);
    let Some(request_id) = data.get("request_id").and_then(Value::as_str) else {
        return Activity::error_invoke_response(
            400,
            "BadRequest",
            "The card carries no request id.",
        );
    };
    let clicker = Clicker {
        object_id: activity.from_object_id().map(str::to_string),
        tenant_id: activity.tenant_id().map(str::to_string),
        name: activity
            .from
            .as_ref()
            .and_then(|f| f.name.clone())
            .unwrap_or_else(|| "unknown user".into()),
    };
    let reason = data
        .get("reason")
        .and_then(Value::as_str)
        .map(str::to_string);
    let answer = match verb {
        "approve" => {
            engine
                .decide(request_id, Decision::Approve, &clicker, None)
                .await
        }
        "reject" => {
            engine
                .decide(request_id, Decision::Reject, &clicker, reason)
                .await
        }
        "retry" => engine.retry(request_id, &clicker).await,
        "refresh" => return viewer_card(engine, activity, request_id, &clicker).await,
        other => {
            return Activity::error_invoke_response(
                400,
                "BadRequest",
                &format!("Unknown action `{other}`; expected approve, reject, retry or refresh."),
            )
        }
    };
    if matches!(&answer, Ok(ClickAnswer { refusal: None, .. })) {
        remember_approver(engine, activity).await;
    }
    match answer {
        Ok(ClickAnswer {
            refusal: Some(why), ..
        }) => json!({
            "statusCode": 200,
            "type": "application/vnd.microsoft.activity.message",
            "value": why,
        }),
        Ok(ClickAnswer {
            card: Some(card), ..
        }) => json!({ "statusCode": 200, "type": ADAPTIVE_CARD, "value": card }),
        Ok(_) => Activity::error_invoke_response(500, "InternalError", "No card to show."),
        Err(e) => {
            tracing::error!(request_id, error = %e, "card action failed");
            Activity::error_invoke_response(
                500,
                "InternalError",
                "Cordon could not record this decision; nothing was changed. Try again.",
            )
        }
    }
}

/// The card as `clicker` should see it: answers `refresh`, whether Teams
/// sent it by itself (`value.trigger: "automatic"`) or someone clicked
/// "Approve or reject…".
///
/// While a decision is awaited, an approver who may decide gets Approve
/// and Reject; anyone else gets the card without them and a line saying
/// why. Once decided, everyone gets the same card.
async fn viewer_card(
    engine: &Engine,
    activity: &Activity,
    request_id: &str,
    clicker: &Clicker,
) -> Value {
    let request = match engine.store.load(request_id).await {
        Ok(Some(request)) => request,
        Ok(None) => return Activity::error_invoke_response(404, "NotFound", "No such request."),
        Err(e) => return unavailable(request_id, &e.to_string()),
    };
    let mut view = match engine.view(&request).await {
        Ok(view) => view,
        Err(e) => return unavailable(request_id, &e.to_string()),
    };
    if view.can_review {
        match engine.approver_refusal(&request, clicker).await {
            Ok(None) => {
                remember_approver(engine, activity).await;
                view.can_act = true;
                view.viewer_note = Some("You may decide: this view is yours alone.".into());
            }
            Ok(Some((_rule, reason))) => {
                view.viewer_note = Some(format!("You cannot decide on this request: {reason}."));
            }
            Err(e) => return unavailable(request_id, &e.to_string()),
        }
        view.can_review = false;
    }
    Activity::card_invoke_response(crate::containment::card_for(&request, &view))
}

fn unavailable(request_id: &str, error: &str) -> Value {
    tracing::error!(request_id, error, "card view failed");
    Activity::error_invoke_response(500, "InternalError", "Card not available; try again.")
}

/// Keeps the MRI of an approver who just acted, for `refresh.userIds`.
async fn remember_approver(engine: &Engine, activity: &Activity) {
    let mri = activity.from.as_ref().map(|f| f.id.as_str());
    if let (Some(object_id), Some(mri)) = (activity.from_object_id(), mri) {
        if !mri.is_empty() {
            engine.teams.remember_approver(object_id, mri).await;
        }
    }
}
