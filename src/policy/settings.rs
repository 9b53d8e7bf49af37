//! The `[policy]` table of the configuration and its validation.
//!
//! Deserialising only checks the shape; [`PolicySettings::validate`] checks
//! that the values make sense together (known runbook steps, no duplicate
//! ids, a safe auto-approve rule) and must pass before the bot starts.

use std::collections::HashSet;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use thiserror::Error;

use super::steps::StepKind;
use super::values::{Risk, Source};

/// Operator-controlled policy, read from `[policy]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicySettings {
    /// Domains whose users may be contained, e.g. `contoso.com`.
    #[serde(default)]
    pub allowed_domains: Vec<String>,
    /// Entra group ids whose members may approve.
    #[serde(default)]
    pub approver_group_ids: Vec<String>,
    /// Groups whose members are privileged (two approvals).
    #[serde(default)]
    pub privileged_group_ids: Vec<String>,
    /// Directory role template ids that make a holder privileged.
    #[serde(default)]
    pub privileged_role_ids: Vec<String>,
    /// Groups whose members are service accounts.
    #[serde(default)]
    pub service_account_group_ids: Vec<String>,
    /// Globs such as `svc-*@contoso.com` naming service accounts.
    #[serde(default)]
    pub service_account_upn_patterns: Vec<String>,
    /// Emergency accounts the bot must never touch.
    #[serde(default)]
    pub break_glass_object_ids: Vec<String>,
    /// Whether guest accounts may be contained.
    #[serde(default)]
    pub allow_guests: bool,
    /// Allowed incident `category/subcategory` pairs or bare categories.
    #[serde(default = "default_incident_categories")]
    pub incident_categories: Vec<String>,
    /// How long an approval card stays open, e.g. `"30m"`.
    #[serde(default = "default_approval_timeout", with = "humantime_text")]
    pub approval_timeout: Duration,
    /// Approval without a human for narrow, high-confidence cases.
    #[serde(default)]
    pub auto_approve: Option<AutoApproveRule>,
    /// Step lists per classification and for release.
    #[serde(default)]
    pub runbooks: Runbooks,
}

/// Lets a request proceed without a human approver.
///
/// It only ever fires for standard accounts, for a source in `sources`
/// (which validation restricts to `siem`) and for a risk of at least
/// `min_risk`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AutoApproveRule {
    /// Recorded as the approver, e.g. `"siem-high-risk"`.
    pub name: String,
    #[serde(default = "default_auto_sources")]
    pub sources: Vec<Source>,
    #[serde(default = "default_min_risk")]
    pub min_risk: Risk,
}

/// The step names of each runbook, as written in the configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Runbooks {
    pub standard: Vec<String>,
    pub privileged: Vec<String>,
    pub service_account: Vec<String>,
    pub release: Vec<String>,
}

/// What is wrong with a `[policy]` table; each is a start-up error.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PolicyConfigError {
    #[error("policy.allowed_domains is empty; name at least one domain")]
    NoAllowedDomains,
    #[error("policy.allowed_domains: '{0}' is not a valid domain name")]
    InvalidDomain(String),
    #[error("policy.approver_group_ids is empty; nobody could approve")]
    NoApproverGroups,
    #[error("policy.{list}: empty id")]
    EmptyId { list: &'static str },
    #[error("policy.{list}: '{id}' appears more than once")]
    DuplicateId { list: &'static str, id: String },
    #[error("policy.service_account_upn_patterns: '{0}' is not a usable glob")]
    InvalidPattern(String),
    #[error("policy.incident_categories is empty; every incident is refused")]
    NoIncidentCategories,
    #[error("policy.approval_timeout must be longer than zero")]
    ZeroApprovalTimeout,
    #[error("policy.runbooks.{runbook} is empty")]
    EmptyRunbook { runbook: &'static str },
    #[error("policy.runbooks.{runbook}: unknown step '{step}'")]
    UnknownStep { runbook: &'static str, step: String },
    #[error("policy.runbooks.{runbook}: step '{step}' is listed twice")]
    DuplicateStep { runbook: &'static str, step: String },
    #[error(
        "policy.runbooks.{runbook}: '{step}' belongs only in the release \
         runbook"
    )]
    ReleaseStepInContainment { runbook: &'static str, step: String },
    #[error(
        "policy.runbooks.release: '{step}' restricts the account; a release \
         must not"
    )]
    ContainmentStepInRelease { step: String },
    #[error("policy.runbooks.release must contain 'enable_sign_in'")]
    ReleaseWithoutEnable,
    #[error("policy.auto_approve.name is empty")]
    AutoApproveUnnamed,
    #[error("policy.auto_approve.sources is empty")]
    AutoApproveNoSources,
    #[error(
        "policy.auto_approve.sources: '{0}' is not allowed; only 'siem' may \
         auto-approve"
    )]
    AutoApproveSource(Source),
}

impl Default for PolicySettings {
    fn default() -> Self {
        PolicySettings {
            allowed_domains: Vec::new(),
            approver_group_ids: Vec::new(),
            privileged_group_ids: Vec::new(),
            privileged_role_ids: Vec::new(),
            service_account_group_ids: Vec::new(),
            service_account_upn_patterns: Vec::new(),
            break_glass_object_ids: Vec::new(),
            allow_guests: false,
            incident_categories: default_incident_categories(),
            approval_timeout: default_approval_timeout(),
            auto_approve: None,
            runbooks: Runbooks::default(),
        }
    }
}

impl Default for Runbooks {
    fn default() -> Self {
        let names = |steps: &[&str]| -> Vec<String> {
            steps.iter().map(|step| (*step).to_owned()).collect()
        };
        let standard = names(&[
            "servicenow_start",
            "block_sign_in",
            "revoke_sessions",
            "verify",
            "teams_notice",
            "servicenow_summary",
        ]);
        Runbooks {
            privileged: standard.clone(),
            standard,
            service_account: names(&[
                "servicenow_start",
                "revoke_sessions",
                "notify_owner",
                "teams_notice",
                "servicenow_summary",
            ]),
            release: names(&[
                "servicenow_start",
                "enable_sign_in",
                "teams_notice",
                "servicenow_summary",
            ]),
        }
    }
}

impl Runbooks {
    /// Names of the runbooks, in the order they are validated.
    pub const NAMES: [&'static str; 4] = ["standard", "privileged", "service_account", "release"];

    /// The configured step names of the runbook called `name`.
    pub fn named(&self, name: &str) -> Option<&[String]> {
        match name {
            "standard" => Some(&self.standard),
            "privileged" => Some(&self.privileged),
            "service_account" => Some(&self.service_account),
            "release" => Some(&self.release),
            _ => None,
        }
    }

    /// The runbook's steps, or the first invalid one.
    pub fn steps(&self, name: &'static str) -> Result<Vec<StepKind>, PolicyConfigError> {
        let names = self.named(name).unwrap_or_default();
        if names.is_empty() {
            return Err(PolicyConfigError::EmptyRunbook { runbook: name });
        }
        let mut steps = Vec::with_capacity(names.len());
        for step in names {
            let kind = StepKind::parse(step).map_err(|_| PolicyConfigError::UnknownStep {
                runbook: name,
                step: step.clone(),
            })?;
            if steps.contains(&kind) {
                let step = step.clone();
                return Err(PolicyConfigError::DuplicateStep {
                    runbook: name,
                    step,
                });
            }
            steps.push(kind);
        }
        check_step_placement(name, &steps)?;
        Ok(steps)
    }
}

fn check_step_placement(
    runbook: &'static str,
    steps: &[StepKind],
) -> Result<(), PolicyConfigError> {
    let step = |kind: &StepKind| kind.as_str().to_owned();
    if runbook == "release" {
        if let Some(bad) = steps.iter().find(|s| s.is_containment_only()) {
            let step = step(bad);
            return Err(PolicyConfigError::ContainmentStepInRelease { step });
        }
        if !steps.contains(&StepKind::EnableSignIn) {
            return Err(PolicyConfigError::ReleaseWithoutEnable);
        }
    } else if let Some(bad) = steps.iter().find(|s| s.is_release_only()) {
        let step = step(bad);
        return Err(PolicyConfigError::ReleaseStepInContainment { runbook, step });
    }
    Ok(())
}

impl PolicySettings {
    /// Checks the settings as a whole; the first problem found is returned.
    pub fn validate(&self) -> Result<(), PolicyConfigError> {
        self.validate_domains()?;
        self.validate_id_lists()?;
        self.validate_patterns()?;
        if self.incident_categories.is_empty() {
            return Err(PolicyConfigError::NoIncidentCategories);
        }
        if self.approval_timeout.is_zero() {
            return Err(PolicyConfigError::ZeroApprovalTimeout);
        }
        for runbook in Runbooks::NAMES {
            self.runbooks.steps(runbook)?;
        }
        match &self.auto_approve {
            Some(rule) => rule.validate(),
            None => Ok(()),
        }
    }

    /// The allowed domains in IDNA ASCII form; invalid entries are skipped
    /// (validation reports them).
    pub fn allowed_ascii_domains(&self) -> Vec<String> {
        self.allowed_domains
            .iter()
            .filter_map(|domain| idna::domain_to_ascii(domain.trim()).ok())
            .collect()
    }

    fn validate_domains(&self) -> Result<(), PolicyConfigError> {
        if self.allowed_domains.is_empty() {
            return Err(PolicyConfigError::NoAllowedDomains);
        }
        let mut seen = HashSet::new();
        for domain in &self.allowed_domains {
            let invalid = || PolicyConfigError::InvalidDomain(domain.clone());
            let ascii = idna::domain_to_ascii(domain.trim()).map_err(|_| invalid())?;
            let probe = format!("x@{ascii}");
            if super::Upn::parse(&probe).is_err() {
                return Err(invalid());
            }
            if !seen.insert(ascii.clone()) {
                let list = "allowed_domains";
                return Err(PolicyConfigError::DuplicateId { list, id: ascii });
            }
        }
        Ok(())
    }

    fn validate_id_lists(&self) -> Result<(), PolicyConfigError> {
        if self.approver_group_ids.is_empty() {
            return Err(PolicyConfigError::NoApproverGroups);
        }
        let lists: [(&'static str, &[String]); 5] = [
            ("approver_group_ids", &self.approver_group_ids),
            ("privileged_group_ids", &self.privileged_group_ids),
            ("privileged_role_ids", &self.privileged_role_ids),
            ("service_account_group_ids", &self.service_account_group_ids),
            ("break_glass_object_ids", &self.break_glass_object_ids),
        ];
        for (list, ids) in lists {
            check_unique_ids(list, ids)?;
        }
        Ok(())
    }

    fn validate_patterns(&self) -> Result<(), PolicyConfigError> {
        for pattern in &self.service_account_upn_patterns {
            let usable = !pattern.trim().is_empty() && pattern.trim().chars().any(|c| c != '*');
            if !usable {
                let pattern = pattern.clone();
                return Err(PolicyConfigError::InvalidPattern(pattern));
            }
        }
        Ok(())
    }
}

impl AutoApproveRule {
    fn validate(&self) -> Result<(), PolicyConfigError> {
        if self.name.trim().is_empty() {
            return Err(PolicyConfigError::AutoApproveUnnamed);
        }
        if self.sources.is_empty() {
            return Err(PolicyConfigError::AutoApproveNoSources);
        }
        match self.sources.iter().find(|s| **s != Source::Siem) {
            Some(source) => Err(PolicyConfigError::AutoApproveSource(*source)),
            None => Ok(()),
        }
    }
}

fn check_unique_ids(list: &'static str, ids: &[String]) -> Result<(), PolicyConfigError> {
    let mut seen = HashSet::new();
    for id in ids {
        let key = id.trim().to_ascii_lowercase();
        if key.is_empty() {
            return Err(PolicyConfigError::EmptyId { list });
        }
        if !seen.insert(key) {
            let id = id.clone();
            return Err(PolicyConfigError::DuplicateId { list, id });
        }
    }
    Ok(())
}

fn default_incident_categories() -> Vec<String> {
    vec!["security/account_compromise".to_owned()]
}

fn default_approval_timeout() -> Duration {
    Duration::from_secs(30 * 60)
}

fn default_auto_sources() -> Vec<Source> {
    vec![Source::Siem]
}

fn default_min_risk() -> Risk {
    Risk::High
}

/// Durations written the way people write them: `"30m"`, `"1h 30m"`.
mod humantime_text {
    use super::*;

    pub fn serialize<S: Serializer>(value: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        let text = humantime::format_duration(*value).to_string();
        serializer.serialize_str(&text)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(deserializer)?;
        humantime::parse_duration(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_fill_everything_but_domains_and_approvers() {
        let settings: PolicySettings = toml::from_str(
            "allowed_domains = [\"contoso.com\"]\n\
             approver_group_ids = [\"g1\"]\n",
        )
        .unwrap();
        assert_eq!(settings.approval_timeout, Duration::from_secs(1800));
        assert_eq!(settings.runbooks, Runbooks::default());
        assert!(settings.auto_approve.is_none());
        settings.validate().unwrap();
    }

    #[test]
    fn unknown_keys_are_refused() {
        let parsed: Result<PolicySettings, _> = toml::from_str(
            "allowed_domains = [\"contoso.com\"]\n\
             approver_group_ids = [\"g1\"]\nallow_guest = true\n",
        );
        assert!(parsed.is_err());
    }

    #[test]
    fn auto_approve_defaults_to_siem_and_high() {
        let rule: AutoApproveRule = toml::from_str("name = \"r\"").unwrap();
        assert_eq!(rule.sources, vec![Source::Siem]);
        assert_eq!(rule.min_risk, Risk::High);
    }
}
