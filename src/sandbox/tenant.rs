//! The seed of the simulated Contoso tenant: its ids, its sandbox-only
//! credentials, its people, groups, roles and ServiceNow incidents.
//!
//! Every id is fixed so that a configuration, a test or a demo script can
//! name them. The credentials here open nothing but the simulators.

use chrono::{DateTime, TimeZone, Utc};
use serde_json::{json, Value};

use super::graph::{AuthMethod, AuthMethodKind, RoleAssignment, SimGroup, SimUser};

/// Fixed ids and sandbox credentials of the simulated tenant.
pub mod ids {
    pub const TENANT_ID: &str = "c0d0a000-0000-4000-8000-000000000001";
    pub const TENANT_DOMAIN: &str = "contoso.com";

    pub const BOT_APP_ID: &str = "c0d0a000-0000-4000-8000-00000000b07a";
    pub const BOT_APP_PASSWORD: &str = "sandbox-bot-secret";
    pub const GRAPH_CLIENT_ID: &str = "c0d0a000-0000-4000-8000-00000000c11e";
    pub const GRAPH_CLIENT_SECRET: &str = "sandbox-graph-secret";
    pub const SERVICENOW_USER: &str = "cordon.integration";
    pub const SERVICENOW_PASSWORD: &str = "sandbox-servicenow-password";
    pub const SERVICENOW_CLIENT_ID: &str = "sandbox-sn-client";
    pub const SERVICENOW_CLIENT_SECRET: &str = "sandbox-sn-secret";

    pub const BOTFRAMEWORK_SCOPE: &str = "https://api.botframework.com/.default";
    pub const GRAPH_SCOPE: &str = "https://graph.microsoft.com/.default";

    /// The Teams team and the channel where approval cards are posted.
    pub const SOC_TEAM_ID: &str = "19:c0d0a000soc0team@thread.tacv2";
    pub const APPROVALS_CHANNEL_ID: &str = "19:c0d0a000approvals@thread.tacv2";

    pub const APPROVERS_GROUP: &str = "c0d0a000-0000-4000-8000-000000000a01";
    pub const PRIVILEGED_GROUP: &str = "c0d0a000-0000-4000-8000-000000000a02";
    pub const SERVICE_ACCOUNTS_GROUP: &str = "c0d0a000-0000-4000-8000-000000000a03";
    /// "Tier-0 admins", a member of [`PRIVILEGED_GROUP`].
    pub const TIER0_ADMINS_GROUP: &str = "c0d0a000-0000-4000-8000-000000000a04";

    pub const GLOBAL_ADMIN_ROLE: &str = "62e90394-69f5-4237-9190-012177145e10";

    pub const ALICE: &str = "c0d0a000-0000-4000-8000-000000000101";
    pub const ADELE: &str = "c0d0a000-0000-4000-8000-000000000102";
    pub const SVC_BACKUP: &str = "c0d0a000-0000-4000-8000-000000000103";
    pub const BREAK_GLASS: &str = "c0d0a000-0000-4000-8000-000000000104";
    pub const DAVE: &str = "c0d0a000-0000-4000-8000-000000000105";
    pub const GINA: &str = "c0d0a000-0000-4000-8000-000000000106";
    pub const OSCAR: &str = "c0d0a000-0000-4000-8000-000000000201";
    pub const PRIYA: &str = "c0d0a000-0000-4000-8000-000000000202";
    pub const SAM: &str = "c0d0a000-0000-4000-8000-000000000301";

    pub const ALICE_UPN: &str = "alice@contoso.com";
    pub const ADELE_UPN: &str = "adele.admin@contoso.com";
    pub const SVC_BACKUP_UPN: &str = "svc-backup@contoso.com";
    pub const BREAK_GLASS_UPN: &str = "breakglass@contoso.com";
    pub const DAVE_UPN: &str = "dave.disabled@contoso.com";
    pub const GINA_UPN: &str = "gina_fabrikam.com#EXT#@contoso.com";
    pub const OSCAR_UPN: &str = "oscar.oncall@contoso.com";
    pub const PRIYA_UPN: &str = "priya.oncall@contoso.com";
    pub const SAM_UPN: &str = "sam.analyst@contoso.com";

    /// Alice's authentication methods.
    pub const ALICE_AUTHENTICATOR: &str = "c0d0a000-0000-4000-8000-0000000a0101";
    pub const ALICE_PHONE: &str = "3179e48a-750b-4051-897c-87b9720928f7";
    pub const ALICE_PASSWORD: &str = "28c10230-6103-485e-b985-444c60001490";

    pub const INC_ALICE: &str = "INC0010001";
    pub const INC_ADELE: &str = "INC0010002";
    pub const INC_SVC_BACKUP: &str = "INC0010003";
    pub const INC_DAVE: &str = "INC0010004";
    pub const INC_BREAK_GLASS: &str = "INC0010005";
    pub const INC_GINA: &str = "INC0010006";
    /// About Alice too, but an inquiry, not a security incident.
    pub const INC_ALICE_INQUIRY: &str = "INC0010007";
    pub const INC_OSCAR: &str = "INC0010008";

    pub const INC_ALICE_SYS_ID: &str = "c0d0a000000040008000000000100001";
    pub const INC_ADELE_SYS_ID: &str = "c0d0a000000040008000000000100002";
    pub const INC_SVC_BACKUP_SYS_ID: &str = "c0d0a000000040008000000000100003";
    pub const INC_DAVE_SYS_ID: &str = "c0d0a000000040008000000000100004";
    pub const INC_BREAK_GLASS_SYS_ID: &str = "c0d0a000000040008000000000100005";
    pub const INC_GINA_SYS_ID: &str = "c0d0a000000040008000000000100006";
    pub const INC_ALICE_INQUIRY_SYS_ID: &str = "c0d0a000000040008000000000100007";
    pub const INC_OSCAR_SYS_ID: &str = "c0d0a000000040008000000000100008";
}

use ids::*;

/// When every seeded session started and every seeded record was made.
pub fn seed_time() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 1, 15, 8, 0, 0).unwrap()
}

/// The directory's people.
pub fn users() -> Vec<SimUser> {
    vec![
        SimUser::member(ALICE, ALICE_UPN, "Alice Bennett")
            .works_in("Finance", "Accounts Payable Lead")
            .with_methods(alice_methods()),
        SimUser::member(ADELE, ADELE_UPN, "Adele Vance").works_in("IT", "Identity Administrator"),
        SimUser::member(SVC_BACKUP, SVC_BACKUP_UPN, "Backup Service")
            .works_in("IT", "Service account"),
        SimUser::member(BREAK_GLASS, BREAK_GLASS_UPN, "Emergency Access")
            .works_in("IT", "Emergency access account"),
        SimUser::member(DAVE, DAVE_UPN, "Dave Ortiz")
            .works_in("Sales", "Account Executive")
            .disabled(),
        SimUser::guest(GINA, GINA_UPN, "Gina (Fabrikam)", "gina@fabrikam.com"),
        SimUser::member(OSCAR, OSCAR_UPN, "Oscar Ruiz").works_in("Security", "On-call Responder"),
        SimUser::member(PRIYA, PRIYA_UPN, "Priya Shah").works_in("Security", "On-call Responder"),
        SimUser::member(SAM, SAM_UPN, "Sam Lee").works_in("Security", "SOC Analyst"),
    ]
}

fn alice_methods() -> Vec<AuthMethod> {
    vec![
        AuthMethod::new(ALICE_PASSWORD, AuthMethodKind::Password),
        AuthMethod::new(ALICE_AUTHENTICATOR, AuthMethodKind::MicrosoftAuthenticator)
            .default_method()
            .with("displayName", json!("Alice's iPhone"))
            .with("deviceTag", json!("SoftwareTokenActivated"))
            .with("phoneAppVersion", json!("6.2401.0119")),
        AuthMethod::new(ALICE_PHONE, AuthMethodKind::Phone)
            .with("phoneNumber", json!("+1 4255550101"))
            .with("phoneType", json!("mobile"))
            .with("smsSignInState", json!("notAllowedByPolicy")),
    ]
}

/// The groups; membership of [`ids::PRIVILEGED_GROUP`] is nested.
pub fn groups() -> Vec<SimGroup> {
    vec![
        SimGroup::new(APPROVERS_GROUP, "Containment approvers", &[OSCAR, PRIYA]),
        SimGroup::new(
            PRIVILEGED_GROUP,
            "Privileged accounts",
            &[TIER0_ADMINS_GROUP],
        ),
        SimGroup::new(SERVICE_ACCOUNTS_GROUP, "Service accounts", &[SVC_BACKUP]),
        SimGroup::new(TIER0_ADMINS_GROUP, "Tier-0 admins", &[ADELE]),
    ]
}

/// Directory role assignments: Adele is a Global Administrator.
pub fn role_assignments() -> Vec<RoleAssignment> {
    vec![RoleAssignment::new(ADELE, GLOBAL_ADMIN_ROLE)]
}

/// The ServiceNow incidents, one per kind of target.
pub fn incidents() -> Vec<Value> {
    let security = |number, sys_id, upn, what: &str| {
        incident(number, sys_id, upn, "security", "account_compromise", what)
    };
    vec![
        security(
            INC_ALICE,
            INC_ALICE_SYS_ID,
            ALICE_UPN,
            "token theft suspected",
        ),
        security(
            INC_ADELE,
            INC_ADELE_SYS_ID,
            ADELE_UPN,
            "admin sign-in from a new country",
        ),
        security(
            INC_SVC_BACKUP,
            INC_SVC_BACKUP_SYS_ID,
            SVC_BACKUP_UPN,
            "service account used interactively",
        ),
        security(
            INC_DAVE,
            INC_DAVE_SYS_ID,
            DAVE_UPN,
            "sign-in attempts on a disabled account",
        ),
        security(
            INC_BREAK_GLASS,
            INC_BREAK_GLASS_SYS_ID,
            BREAK_GLASS_UPN,
            "break-glass account sign-in",
        ),
        security(
            INC_GINA,
            INC_GINA_SYS_ID,
            GINA_UPN,
            "guest account password spray",
        ),
        incident(
            INC_ALICE_INQUIRY,
            INC_ALICE_INQUIRY_SYS_ID,
            ALICE_UPN,
            "inquiry",
            "",
            "cannot find the expense report form",
        ),
        security(
            INC_OSCAR,
            INC_OSCAR_SYS_ID,
            OSCAR_UPN,
            "impossible travel on an approver",
        ),
    ]
}

fn incident(
    number: &str,
    sys_id: &str,
    affected: &str,
    category: &str,
    subcategory: &str,
    what: &str,
) -> Value {
    let opened = seed_time().format("%Y-%m-%d %H:%M:%S").to_string();
    json!({
        "sys_id": sys_id,
        "number": number,
        "state": "1",
        "impact": "2",
        "urgency": "2",
        "priority": "3",
        "category": category,
        "subcategory": subcategory,
        "short_description": format!("{affected}: {what}"),
        "description": format!(
            "Reported by the SOC: {what}. Contain {affected} until investigated."
        ),
        "caller_id": SAM_UPN,
        "u_affected_user": affected,
        "assignment_group": "Security Operations",
        "hold_reason": "",
        "close_code": "",
        "close_notes": "",
        "opened_at": opened,
        "sys_created_on": opened,
        "sys_updated_on": opened,
        "sys_updated_by": "system",
        "sys_mod_count": "0",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn incident_sys_ids_are_32_lowercase_hex_digits() {
        for record in incidents() {
            let sys_id = record["sys_id"].as_str().unwrap();
            assert_eq!(sys_id.len(), 32, "{sys_id}");
            assert!(sys_id.chars().all(|c| matches!(c, '0'..='9' | 'a'..='f')));
        }
    }

    #[test]
    fn every_group_member_exists() {
        let users = users();
        let groups = groups();
        for group in &groups {
            for member in &group.members {
                let known =
                    users.iter().any(|u| &u.id == member) || groups.iter().any(|g| &g.id == member);
                assert!(known, "{member} in {}", group.display_name);
            }
        }
    }
}
