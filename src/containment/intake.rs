//! Intake: a proposal from Teams, the ServiceNow webhook or the API becomes
//! at most one request per (kind, target, incident).
//!
//! The order matters: the request's shape is checked before anything is
//! looked up; an existing request is answered before Graph or ServiceNow
//! are asked anything; policy decides on the facts gathered; only then is
//! a row written and the approval card posted. A refusal writes nothing.

use serde_json::json;

use crate::audit::AuditEntry;
use crate::graph::GraphError;
use crate::policy::{
    self, Decision as PolicyDecision, IncidentFacts, Refusal, RequestFacts, RequestKind, Risk,
    Source, TargetFacts,
};
use crate::servicenow::ServiceNowError;
use crate::store::{Inserted, StoreError};

use super::model::{new_request_id, now_millis, ContainmentRequest, Origin, Requester};
use super::state::RequestState;
use super::Engine;

/// What someone asks for.
#[derive(Debug, Clone)]
pub struct Proposal {
    pub kind: RequestKind,
    pub upn: String,
    pub incident: String,
    pub justification: String,
    pub source: Source,
    pub risk: Option<Risk>,
    pub requester: Requester,
    pub origin: Option<Origin>,
    /// End the account's sessions without blocking sign-in: asked for with
    /// the Teams `revoke` command or `security_action = revoke_sessions`,
    /// and the only containment an already blocked account can get.
    pub revoke_only: bool,
}

#[derive(Debug)]
pub enum IntakeOutcome {
    Created(Box<ContainmentRequest>),
    Existing(Box<ContainmentRequest>),
    Refused(Refusal),
}

/// Failures that are not the proposer's fault: an outside system or the
/// database did not answer. Nothing was stored.
#[derive(Debug, thiserror::Error)]
pub enum IntakeError {
    #[error("could not look the user up in Entra ID: {0}")]
    Graph(#[from] GraphError),
    #[error("could not look the incident up in ServiceNow: {0}")]
    ServiceNow(#[from] ServiceNowError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Engine {
    /// Validates, de-duplicates and records a proposal, then asks for
    /// approval in the approvals channel.
    pub async fn propose(&self, proposal: Proposal) -> Result<IntakeOutcome, IntakeError> {
        let settings = &self.config.policy;
        let facts = RequestFacts {
            kind: proposal.kind,
            upn: proposal.upn.clone(),
            incident_number: proposal.incident.clone(),
            source: proposal.source,
            risk: proposal.risk,
            requester_id: proposal.requester.id.clone(),
        };
        let upn = match policy::check_request_shape(settings, &facts) {
            Ok(upn) => upn,
            Err(refusal) => return Ok(IntakeOutcome::Refused(refusal)),
        };
        let incident_number = proposal.incident.trim().to_ascii_uppercase();
        let existing = self
            .store
            .find_by_key(proposal.kind, upn.as_str(), &incident_number)
            .await?;
        if let Some(existing) = existing {
            return Ok(IntakeOutcome::Existing(Box::new(existing)));
        }

        let target = self.target_facts(upn.as_str()).await?;
        let incident = self.servicenow.find_incident(&incident_number).await?;
        let incident_facts = incident.as_ref().map(|i| IncidentFacts {
            number: i.number.clone(),
            category: i.category.clone(),
            subcategory: i.subcategory.clone(),
            state: i.state.clone(),
            requester: i.caller_id.clone(),
            affected_user: i.affected_user.clone(),
            justification: i
                .description
                .clone()
                .or_else(|| i.short_description.clone()),
        });
        let evaluate = if proposal.revoke_only {
            policy::evaluate_revoke_only
        } else {
            policy::evaluate
        };
        let plan = match evaluate(
            settings,
            &facts,
            target.as_ref().map(|(facts, _)| facts),
            incident_facts.as_ref(),
        ) {
            PolicyDecision::Proceed(plan) => plan,
            PolicyDecision::Refuse(refusal) => return Ok(IntakeOutcome::Refused(refusal)),
        };
        let (target, department) = target.expect("policy proceeds only with a target");
        let incident = incident.expect("policy proceeds only with an incident");

        let related = match proposal.kind {
            RequestKind::Release => self
                .store
                .find_by_key(RequestKind::Containment, upn.as_str(), &incident_number)
                .await?
                .map(|r| r.id),
            RequestKind::Containment => None,
        };
        let now = now_millis();
        let timeout = settings.approval_timeout.as_millis() as i64;
        let request = ContainmentRequest {
            id: new_request_id(),
            kind: proposal.kind,
            target_upn: upn.as_str().to_string(),
            target_id: target.object_id.clone(),
            target_name: target
                .display_name
                .clone()
                .unwrap_or_else(|| upn.as_str().to_string()),
            target_department: department,
            incident_number: incident.number.clone(),
            incident_sys_id: incident.sys_id.clone(),
            justification: proposal.justification.trim().to_string(),
            requester: proposal.requester.clone(),
            source: proposal.source,
            risk: proposal.risk,
            classification: plan.classification,
            rule: plan.rule.clone(),
            runbook: plan.runbook.clone(),
            steps: plan.steps.clone(),
            required_approvals: plan.required_approvals,
            auto_approved_by: plan.auto_approved_by.clone(),
            state: RequestState::AwaitingApproval,
            outcome: None,
            origin: proposal.origin.clone(),
            thread: None,
            related_request_id: related,
            created_at: now,
            updated_at: now,
            expires_at: now + timeout,
            run_count: 0,
        };
        let entry = AuditEntry::new(
            request.id.clone(),
            request.requester.id.clone(),
            "request_received",
            json!({
                "kind": crate::store::enum_name(&request.kind),
                "target": request.target_upn,
                "target_id": request.target_id,
                "incident": request.incident_number,
                "source": crate::store::enum_name(&request.source),
                "risk": request.risk.as_ref().map(crate::store::enum_name),
                "classification": crate::store::enum_name(&request.classification),
                "rule": request.rule,
                "runbook": request.runbook,
                "required_approvals": request.required_approvals,
                "requester_name": request.requester.name,
                "justification": request.justification,
            }),
        );
        let created = match self.store.insert_request(&request, &entry).await? {
            Inserted::Existing(existing) => return Ok(IntakeOutcome::Existing(existing)),
            Inserted::New(created) => created,
        };
        tracing::Span::current()
            .record("request_id", created.id.as_str())
            .record("incident", created.incident_number.as_str())
            .record("target", created.target_upn.as_str());
        tracing::info!(
            request_id = %created.id,
            incident = %created.incident_number,
            target = %created.target_upn,
            rule = %created.rule,
            "request received"
        );
        let mut notices = plan.notices.clone();
        if created.kind == RequestKind::Release {
            notices.push(match &created.related_request_id {
                Some(original) => format!(
                    "This release undoes containment **{original}**; it needs an \
                     approval like a containment and never runs by itself."
                ),
                None => "No containment by Cordon is on record for this user and \
                         incident; this release needs an approval and never runs \
                         by itself."
                    .to_string(),
            });
        }
        self.ask_for_approval(&created, &notices).await;
        if let Some(rule) = &created.auto_approved_by {
            self.auto_approve(&created, rule).await?;
        }
        let current = self.store.require(&created.id).await?;
        Ok(IntakeOutcome::Created(Box::new(current)))
    }

    /// Facts about the target from Graph: the user, the configured groups
    /// it is a transitive member of, its directory roles when policy names
    /// any, and its department for the card.
    pub(crate) async fn target_facts(
        &self,
        upn: &str,
    ) -> Result<Option<(TargetFacts, Option<String>)>, GraphError> {
        let Some(user) = self.graph.get_user(upn).await? else {
            return Ok(None);
        };
        let settings = &self.config.policy;
        let groups: Vec<String> = settings
            .privileged_group_ids
            .iter()
            .chain(&settings.service_account_group_ids)
            .cloned()
            .collect();
        let member_of = if groups.is_empty() {
            Vec::new()
        } else {
            self.graph.check_member_groups(&user.id, &groups).await?
        };
        let role_ids = if settings.privileged_role_ids.is_empty() {
            Vec::new()
        } else {
            self.graph.directory_role_ids(&user.id).await?
        };
        let facts = TargetFacts {
            object_id: user.id.clone(),
            upn: user.user_principal_name.clone(),
            display_name: user.display_name.clone(),
            account_enabled: user.account_enabled,
            user_type: user.user_type.clone(),
            member_of,
            role_ids,
        };
        Ok(Some((facts, user.department.clone())))
    }

    /// Posts the approval card as a new thread and remembers where it is.
    async fn ask_for_approval(&self, request: &ContainmentRequest, notices: &[String]) {
        let card = match self.card(request).await {
            Ok(card) => card,
            Err(e) => {
                tracing::error!(request_id = %request.id, error = %e, "cannot render card");
                return;
            }
        };
        let thread = match self.teams.start_thread(card).await {
            Ok(thread) => thread,
            Err(e) => {
                tracing::error!(
                    request_id = %request.id,
                    error = %e,
                    "approval card could not be posted"
                );
                return;
            }
        };
        let entry = AuditEntry::new(
            request.id.clone(),
            crate::audit::SYSTEM,
            "approval_requested",
            json!({
                "conversation_id": thread.conversation_id,
                "card_activity_id": thread.card_activity_id,
                "required_approvals": request.required_approvals,
            }),
        );
        if let Err(e) = self.store.set_thread(&request.id, &thread, &entry).await {
            tracing::error!(request_id = %request.id, error = %e, "cannot save thread");
            return;
        }
        for notice in notices {
            let reply = crate::botframework::Activity::message(notice.clone());
            if let Err(e) = self.teams.reply(&thread, &reply).await {
                tracing::warn!(request_id = %request.id, error = %e, "notice failed");
            }
        }
    }

    /// Approves on behalf of a policy rule and says so in the thread.
    async fn auto_approve(
        &self,
        request: &ContainmentRequest,
        rule: &str,
    ) -> Result<(), StoreError> {
        let entry = AuditEntry::new(
            request.id.clone(),
            crate::audit::SYSTEM,
            "auto_approved",
            json!({ "rule": rule, "source": crate::store::enum_name(&request.source),
                    "risk": request.risk.as_ref().map(crate::store::enum_name) }),
        );
        self.store
            .transition(
                &request.id,
                RequestState::AwaitingApproval,
                super::state::Transition::Approve,
                None,
                &entry,
            )
            .await?;
        self.wake.notify_one();
        self.publish(
            &request.id,
            Some(format!(
                "Approved automatically by policy rule **{rule}** \
                 (source {}, risk {}); no human click was required.",
                crate::store::enum_name(&request.source),
                request
                    .risk
                    .as_ref()
                    .map(crate::store::enum_name)
                    .unwrap_or_else(|| "unknown".into())
            )),
        )
        .await;
        Ok(())
    }
}
