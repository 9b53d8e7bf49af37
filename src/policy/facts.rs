//! The facts callers gather (from Graph, ServiceNow and the Teams activity)
//! and hand to the policy. The policy never fetches anything itself.

use serde::{Deserialize, Serialize};

use super::values::{RequestKind, Risk, Source};

/// The target account as Microsoft Graph describes it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct TargetFacts {
    pub object_id: String,
    pub upn: String,
    pub display_name: Option<String>,
    pub account_enabled: bool,
    /// `"Member"` or `"Guest"`.
    pub user_type: Option<String>,
    /// Configured group ids the user belongs to, transitively.
    pub member_of: Vec<String>,
    /// Directory role template ids the user holds.
    pub role_ids: Vec<String>,
}

/// The ServiceNow incident named in the request.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct IncidentFacts {
    pub number: String,
    pub category: Option<String>,
    pub subcategory: Option<String>,
    /// The incident state as ServiceNow reports it (`"2"`, `"6"`, ...).
    pub state: String,
    pub requester: Option<String>,
    /// The UPN of the affected user.
    pub affected_user: Option<String>,
    pub justification: Option<String>,
}

/// The request as it was made, before any lookup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestFacts {
    pub kind: RequestKind,
    /// The UPN exactly as typed.
    pub upn: String,
    pub incident_number: String,
    pub source: Source,
    pub risk: Option<Risk>,
    /// Object id of whoever asked (or the integration's identity).
    pub requester_id: String,
}

/// Who clicked Approve, as read from the Teams invoke activity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApproverFacts<'a> {
    /// `from.aadObjectId`.
    pub object_id: Option<&'a str>,
    /// `channelData.tenant.id`.
    pub tenant_id: Option<&'a str>,
    /// Whether the approver is in one of `approver_group_ids`.
    pub in_approver_group: bool,
    /// Object id of whoever made the request.
    pub requester_id: &'a str,
    /// Object ids that already approved this request.
    pub prior_approver_ids: &'a [String],
}
