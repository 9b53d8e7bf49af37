//! `policy <upn>` and `cordon policy explain`: what would happen to a
//! request for a user, and which rule would decide it, with no side effect
//! beyond reading Graph.

use crate::graph::GraphError;
use crate::policy::{self, RequestFacts, RequestKind, Risk, Source};

use super::Engine;

pub async fn explain_upn(
    engine: &Engine,
    upn: &str,
    source: Source,
    risk: Option<Risk>,
) -> Result<String, GraphError> {
    let facts = RequestFacts {
        kind: RequestKind::Containment,
        upn: upn.to_string(),
        incident_number: String::new(),
        source,
        risk,
        requester_id: String::new(),
    };
    // No incident is named here, so only the UPN's shape is checked before
    // the directory is asked.
    let target = match policy::check_upn(&engine.config.policy, &facts.upn) {
        Ok(parsed) => engine.target_facts(parsed.as_str()).await?,
        Err(_) => None,
    };
    let explanation = policy::explain(
        &engine.config.policy,
        &facts,
        target.as_ref().map(|(facts, _)| facts),
        None,
    );
    Ok(explanation.to_string())
}
