//! Approver decisions: who clicked, whether they may, and what it changes.
//!
//! The clicker is identified by the activity's `from.aadObjectId` in the
//! configured tenant, never by display name. Every refusal is answered to
//! the clicker with its reason and recorded in the audit trail; a double
//! click, a stale card or a click after the request ended changes nothing.

use std::sync::Arc;

use serde_json::json;

use crate::audit::AuditEntry;
use crate::botframework::activity::same_tenant;
use crate::policy::{self, ApproverFacts};
use crate::store::{DecisionRecorded, StoreError};

use super::model::{now_millis, Approval, ContainmentRequest, Decision};
use super::state::{RequestState, Transition};
use super::Engine;

/// Who clicked, as the (authenticated) activity says.
#[derive(Debug, Clone)]
pub struct Clicker {
    pub object_id: Option<String>,
    pub tenant_id: Option<String>,
    pub name: String,
}

/// The answer to a click: the card to show and, when the click did not
/// count, why.
#[derive(Debug)]
pub struct ClickAnswer {
    pub card: Option<serde_json::Value>,
    pub refusal: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum DecisionError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("could not check approver group membership: {0}")]
    Graph(#[from] crate::graph::GraphError),
}

impl Engine {
    /// Handles an Approve or Reject click on request `id`.
    pub async fn decide(
        self: &Arc<Self>,
        id: &str,
        decision: Decision,
        clicker: &Clicker,
        reason: Option<String>,
    ) -> Result<ClickAnswer, DecisionError> {
        let Some(request) = self.store.load(id).await? else {
            return Ok(refused(None, format!("Request {id} does not exist.")));
        };
        tracing::Span::current()
            .record("request_id", request.id.as_str())
            .record("incident", request.incident_number.as_str())
            .record("target", request.target_upn.as_str());
        if request.state != RequestState::AwaitingApproval {
            let card = self.card(&request).await?;
            let why = format!(
                "Request {} is already {}; this click changed nothing.",
                request.id,
                request.state.label().to_lowercase()
            );
            self.audit_refusal(&request, clicker, "request.not_awaiting", &why)
                .await?;
            return Ok(refused(Some(card), why));
        }
        if let Some(why) = self.approver_refusal(&request, clicker).await? {
            self.audit_refusal(&request, clicker, &why.0, &why.1)
                .await?;
            return Ok(refused(Some(self.card(&request).await?), why.1));
        }

        let approver_id = clicker.object_id.clone().unwrap_or_default();
        let approval = Approval {
            approver_id: approver_id.clone(),
            approver_name: clicker.name.clone(),
            decision,
            reason: reason.filter(|r| !r.trim().is_empty()),
            at: now_millis(),
        };
        let entry = AuditEntry::new(
            request.id.clone(),
            approver_id,
            match decision {
                Decision::Approve => "approval_recorded",
                Decision::Reject => "rejection_recorded",
            },
            json!({ "approver_name": clicker.name, "reason": approval.reason,
                    "tenant_id": clicker.tenant_id, "rule": request.rule,
                    "required_approvals": request.required_approvals }),
        );
        let recorded = self
            .store
            .record_decision(&request.id, &approval, &entry)
            .await?;
        let current = self.store.require(&request.id).await?;
        let card = self.card(&current).await?;
        match recorded {
            DecisionRecorded::Recorded { state, approvals } => {
                let engine = Arc::clone(self);
                tokio::spawn(async move {
                    engine
                        .after_decision(&current, &approval, state, approvals)
                        .await;
                });
                Ok(ClickAnswer {
                    card: Some(card),
                    refusal: None,
                })
            }
            DecisionRecorded::AlreadyDecided => Ok(refused(
                Some(card),
                "You have already decided on this request.".into(),
            )),
            DecisionRecorded::NotAwaiting(state) => Ok(refused(
                Some(card),
                format!("Request {} is already {}.", request.id, state.label()),
            )),
        }
    }

    /// The rule and reason that refuse this clicker, if any.
    pub(crate) async fn approver_refusal(
        &self,
        request: &ContainmentRequest,
        clicker: &Clicker,
    ) -> Result<Option<(String, String)>, DecisionError> {
        let in_group = match &clicker.object_id {
            Some(id) => self.is_approver(id).await?,
            None => false,
        };
        let prior: Vec<String> = self
            .store
            .approvals(&request.id)
            .await?
            .into_iter()
            .map(|a| a.approver_id)
            .collect();
        let facts = ApproverFacts {
            object_id: clicker.object_id.as_deref(),
            tenant_id: clicker.tenant_id.as_deref(),
            in_approver_group: in_group,
            requester_id: &request.requester.id,
            prior_approver_ids: &prior,
        };
        Ok(
            policy::authorize_approver(&self.config.policy, &self.config.bot.tenant_id, &facts)
                .err()
                .map(|refusal| (refusal.rule, refusal.reason)),
        )
    }

    async fn audit_refusal(
        &self,
        request: &ContainmentRequest,
        clicker: &Clicker,
        rule: &str,
        reason: &str,
    ) -> Result<(), StoreError> {
        tracing::info!(request_id = %request.id, rule, "approval refused");
        let entry = AuditEntry::new(
            request.id.clone(),
            clicker
                .object_id
                .clone()
                .unwrap_or_else(|| "unknown".into()),
            "approval_refused",
            json!({ "rule": rule, "reason": reason, "clicker_name": clicker.name,
                    "tenant_id": clicker.tenant_id }),
        );
        self.store.record_event(&entry).await
    }

    /// Thread, requester and runner are told, after the click was answered.
    async fn after_decision(
        &self,
        request: &ContainmentRequest,
        approval: &Approval,
        state: RequestState,
        approvals: u32,
    ) {
        let text = match (approval.decision, state) {
            (Decision::Reject, _) => format!(
                "**Rejected** by {}{}. Nothing was changed in Entra ID.",
                approval.approver_name,
                approval
                    .reason
                    .as_deref()
                    .map(|r| format!(": {r}"))
                    .unwrap_or_default()
            ),
            (Decision::Approve, RequestState::Approved) => format!(
                "**Approved** by {} ({} of {}). The runbook starts now.",
                approval.approver_name, approvals, request.required_approvals
            ),
            _ => format!(
                "Approval {} of {} recorded from {}; waiting for a second, \
                 different approver.",
                approvals, request.required_approvals, approval.approver_name
            ),
        };
        if state == RequestState::Approved {
            self.wake.notify_one();
        }
        self.publish(&request.id, Some(text.clone())).await;
        if state != RequestState::AwaitingApproval {
            self.tell_requester(request, format!("{}: {text}", request.id))
                .await;
        }
    }

    /// An operator asks to run the remaining steps of a failed or partial
    /// request again.
    pub async fn retry(
        self: &Arc<Self>,
        id: &str,
        clicker: &Clicker,
    ) -> Result<ClickAnswer, DecisionError> {
        let Some(request) = self.store.load(id).await? else {
            return Ok(refused(None, format!("Request {id} does not exist.")));
        };
        let allowed = match &clicker.object_id {
            Some(object_id) => {
                let tenant = clicker.tenant_id.as_deref().unwrap_or_default();
                same_tenant(tenant, &self.config.bot.tenant_id)
                    && self.is_approver(object_id).await?
            }
            None => false,
        };
        if !allowed {
            let why = "Only an approver of this tenant may retry a containment.";
            self.audit_refusal(&request, clicker, "retry.not_approver", why)
                .await?;
            return Ok(refused(Some(self.card(&request).await?), why.into()));
        }
        let entry = AuditEntry::new(
            request.id.clone(),
            clicker.object_id.clone().unwrap_or_default(),
            "retry_requested",
            json!({ "operator_name": clicker.name, "from_state": request.state.as_str() }),
        );
        match self
            .store
            .transition(&request.id, request.state, Transition::Retry, None, &entry)
            .await
        {
            Ok(_) => {}
            Err(StoreError::Illegal(_)) | Err(StoreError::Conflict { .. }) => {
                let why = format!(
                    "Request {} is {}; only failed or partially contained \
                     requests can be retried.",
                    request.id,
                    request.state.label().to_lowercase()
                );
                return Ok(refused(Some(self.card(&request).await?), why));
            }
            Err(e) => return Err(e.into()),
        }
        self.wake.notify_one();
        let engine = Arc::clone(self);
        let (id, text) = (
            request.id.clone(),
            format!("{} asked to retry the remaining steps.", clicker.name),
        );
        tokio::spawn(async move { engine.publish(&id, Some(text)).await });
        let current = self.store.require(&request.id).await?;
        Ok(ClickAnswer {
            card: Some(self.card(&current).await?),
            refusal: None,
        })
    }
}

fn refused(card: Option<serde_json::Value>, why: String) -> ClickAnswer {
    ClickAnswer {
        card,
        refusal: Some(why),
    }
}
