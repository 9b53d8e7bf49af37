//! Which Graph application permissions the configured runbooks and policy
//! checks need, and which ones the app's token says it holds.
//!
//! Entra puts the application permissions granted to an app in the
//! `roles` claim of its app-only access tokens. Cordon reads that claim
//! only to report, in `cordon config check`, a permission that a
//! configured step would lack; it never decides anything from it, and it
//! does not verify the token's signature (Graph does that).

use std::collections::BTreeSet;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::Deserialize;

use crate::policy::StepKind;

/// One application permission, what it is needed for, and the broader
/// permissions that would also cover it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PermissionNeed {
    /// The least-privileged permission, such as `User.RevokeSessions.All`.
    pub permission: &'static str,
    /// Broader permissions that include it.
    pub covered_by: &'static [&'static str],
    /// What needs it, for people: the steps or checks.
    pub needed_for: Vec<String>,
}

impl PermissionNeed {
    /// Whether `roles` holds this permission or one that covers it.
    pub fn is_met_by(&self, roles: &[String]) -> bool {
        let held = |name: &str| roles.iter().any(|r| r.eq_ignore_ascii_case(name));
        held(self.permission) || self.covered_by.iter().any(|name| held(name))
    }
}

/// The least-privileged permission a step needs, if it calls Graph.
fn step_permission(step: StepKind) -> Option<(&'static str, &'static [&'static str])> {
    let needs: (&str, &[&str]) = match step {
        StepKind::BlockSignIn | StepKind::EnableSignIn => {
            ("User.EnableDisableAccount.All", &["User.ReadWrite.All"])
        }
        StepKind::RevokeSessions => (
            "User.RevokeSessions.All",
            &["User.ReadWrite.All", "Directory.ReadWrite.All"],
        ),
        StepKind::ResetAuthMethods => ("UserAuthenticationMethod.ReadWrite.All", &[]),
        StepKind::RequirePasswordChange => (
            "User-PasswordProfile.ReadWrite.All",
            &["User.ReadWrite.All"],
        ),
        StepKind::Verify => ("User.Read.All", USER_READ_COVER),
        _ => return None,
    };
    Some(needs)
}

const USER_READ_COVER: &[&str] = &["User.ReadWrite.All", "Directory.Read.All"];

/// Every permission Cordon needs for `steps` (the union of the configured
/// runbooks) and, when `reads_roles`, for `policy.privileged_role_ids`.
/// Reading users and checking group membership are always needed.
pub fn needed_permissions(steps: &BTreeSet<StepKind>, reads_roles: bool) -> Vec<PermissionNeed> {
    let mut needs = vec![
        PermissionNeed {
            permission: "User.Read.All",
            covered_by: USER_READ_COVER,
            needed_for: vec!["reading the target before any request".into()],
        },
        PermissionNeed {
            permission: "GroupMember.Read.All",
            covered_by: &["Group.Read.All", "Directory.Read.All"],
            needed_for: vec!["approver, privileged and service-account group checks".into()],
        },
    ];
    if reads_roles {
        needs.push(PermissionNeed {
            permission: "RoleManagement.Read.Directory",
            covered_by: &["RoleManagement.Read.All", "Directory.Read.All"],
            needed_for: vec!["policy.privileged_role_ids".into()],
        });
    }
    for &step in steps {
        let Some((permission, covered_by)) = step_permission(step) else {
            continue;
        };
        let reason = format!("step {step}");
        match needs.iter_mut().find(|n| n.permission == permission) {
            Some(need) => need.needed_for.push(reason),
            None => needs.push(PermissionNeed {
                permission,
                covered_by,
                needed_for: vec![reason],
            }),
        }
    }
    needs
}

#[derive(Deserialize)]
struct RoleClaims {
    #[serde(default)]
    roles: Vec<String>,
}

/// The `roles` claim of a JWT access token, read without verifying it;
/// `Err` says why the token could not be read.
pub fn token_roles(token: &str) -> Result<Vec<String>, String> {
    let mut parts = token.split('.');
    let (Some(_), Some(payload), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err("the access token is not a JWT".into());
    };
    let bytes = URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .map_err(|_| "the access token's payload is not base64url".to_string())?;
    let claims: RoleClaims = serde_json::from_slice(&bytes)
        .map_err(|e| format!("the access token's payload is not JSON claims ({e})"))?;
    Ok(claims.roles)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwt(payload: &str) -> String {
        format!("e30.{}.sig", URL_SAFE_NO_PAD.encode(payload))
    }

    #[test]
    fn roles_claim_is_read_from_the_token_payload() {
        let token = jwt(r#"{"aud":"x","roles":["User.Read.All","User.RevokeSessions.All"]}"#);
        assert_eq!(
            token_roles(&token).unwrap(),
            ["User.Read.All", "User.RevokeSessions.All"]
        );
        assert_eq!(
            token_roles(&jwt(r#"{"aud":"x"}"#)).unwrap(),
            Vec::<String>::new()
        );
    }

    #[test]
    fn opaque_token_is_reported_not_guessed() {
        assert!(token_roles("opaque-token")
            .unwrap_err()
            .contains("not a JWT"));
        assert!(token_roles("a.%%%.c").unwrap_err().contains("base64url"));
    }

    #[test]
    fn reset_auth_methods_needs_its_permission_only_when_configured() {
        let standard: BTreeSet<_> = [
            StepKind::BlockSignIn,
            StepKind::RevokeSessions,
            StepKind::Verify,
        ]
        .into();
        let names: Vec<_> = needed_permissions(&standard, false)
            .iter()
            .map(|n| n.permission)
            .collect();
        assert_eq!(
            names,
            [
                "User.Read.All",
                "GroupMember.Read.All",
                "User.EnableDisableAccount.All",
                "User.RevokeSessions.All"
            ]
        );
        let mut with_reset = standard.clone();
        with_reset.insert(StepKind::ResetAuthMethods);
        let needs = needed_permissions(&with_reset, true);
        assert!(needs
            .iter()
            .any(|n| n.permission == "UserAuthenticationMethod.ReadWrite.All"));
        assert!(needs
            .iter()
            .any(|n| n.permission == "RoleManagement.Read.Directory"));
    }

    #[test]
    fn a_broader_permission_meets_a_need() {
        let needs = needed_permissions(&[StepKind::RevokeSessions].into(), false);
        let revoke = needs
            .iter()
            .find(|n| n.permission == "User.RevokeSessions.All")
            .unwrap();
        assert!(revoke.is_met_by(&["user.readwrite.all".to_string()]));
        assert!(!revoke.is_met_by(&["User.Read.All".to_string()]));
    }
}
