//! Settings: a TOML file, then environment variables, validated at start.
//!
//! Every key of the file can be overridden by `CORDON_<SECTION>__<KEY>`
//! (upper case), and the Bot Framework's own names `MicrosoftAppId`,
//! `MicrosoftAppPassword` and `MicrosoftAppTenantId` are accepted for the bot
//! keys. Unknown keys are an error, not ignored, so that a misspelt setting
//! cannot silently leave a default in force. Secrets are held in
//! `SecretString` and never appear in `Debug` output or errors.
//!
//! This module never talks to the outside: it turns text into a checked
//! `Config` or into an error that names the key at fault.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use secrecy::SecretString;
use serde::Deserialize;

use crate::policy::PolicySettings;

/// The environment variable that names the configuration file.
pub const CONFIG_ENV: &str = "CORDON_CONFIG";

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub server: ServerConfig,
    #[serde(default)]
    pub store: StoreConfig,
    pub bot: BotConfig,
    pub teams: TeamsConfig,
    pub graph: GraphConfig,
    pub servicenow: ServiceNowConfig,
    #[serde(default)]
    pub api: ApiConfig,
    pub policy: PolicySettings,
    #[serde(default)]
    pub runner: RunnerConfig,
    #[serde(default)]
    pub log: LogConfig,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    #[serde(default = "default_bind")]
    pub bind: SocketAddr,
    /// The address users reach Cordon at, used in links.
    #[serde(default)]
    pub public_url: Option<String>,
    /// Largest request body accepted on any route, in bytes.
    #[serde(default = "default_body_limit")]
    pub max_body_bytes: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            bind: default_bind(),
            public_url: None,
            max_body_bytes: default_body_limit(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    #[serde(default = "default_store_url")]
    pub url: String,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            url: default_store_url(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BotConfig {
    pub app_id: String,
    pub app_password: SecretString,
    pub tenant_id: String,
    #[serde(default = "default_openid_metadata_url")]
    pub openid_metadata_url: String,
    /// The Entra metadata of the configured tenant, for single-tenant bot
    /// tokens. Defaults to the public cloud's address for `tenant_id`.
    #[serde(default)]
    pub tenant_openid_metadata_url: Option<String>,
    /// The app ids whose tokens from the tenant's Entra issuers are
    /// believed; empty: only Bot Framework issuer tokens are.
    #[serde(default)]
    pub entra_caller_app_ids: Vec<String>,
    /// Defaults to the public cloud's token endpoint for `tenant_id`.
    #[serde(default)]
    pub token_url: Option<String>,
    #[serde(default)]
    pub allow_anonymous: bool,
}

impl BotConfig {
    pub fn token_url(&self) -> String {
        self.token_url
            .clone()
            .unwrap_or_else(|| entra_token_url(&self.tenant_id))
    }

    pub fn tenant_openid_metadata_url(&self) -> String {
        self.tenant_openid_metadata_url.clone().unwrap_or_else(|| {
            format!(
                "https://login.microsoftonline.com/{}/v2.0/\
                 .well-known/openid-configuration",
                self.tenant_id
            )
        })
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TeamsConfig {
    /// Used until Cordon has seen the tenant's own serviceUrl on an
    /// inbound activity; Teams' regional address wins once it is known.
    #[serde(default = "default_service_url")]
    pub approvals_service_url: String,
    pub approvals_channel_id: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GraphConfig {
    #[serde(default = "default_graph_url")]
    pub base_url: String,
    /// Defaults to the public cloud's token endpoint for `bot.tenant_id`.
    #[serde(default)]
    pub token_url: Option<String>,
    pub client_id: String,
    pub client_secret: SecretString,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceNowConfig {
    pub instance_url: String,
    /// Basic authentication: `username` and `password`.
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<SecretString>,
    /// OAuth client credentials at `{instance_url}/oauth_token.do`, used
    /// instead of basic authentication when both are set.
    #[serde(default)]
    pub client_id: Option<String>,
    #[serde(default)]
    pub client_secret: Option<SecretString>,
    pub webhook_secret: SecretString,
    /// Link to an incident, with `{sys_id}` and `{number}` filled in.
    #[serde(default = "default_incident_link")]
    pub incident_link: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiConfig {
    #[serde(default)]
    pub tokens: Vec<ApiToken>,
    /// Proposals (`POST /api/v1/containments`) each token may make per
    /// minute, on average; the excess is answered 429.
    #[serde(default = "default_rate_limit_per_minute")]
    pub rate_limit_per_minute: u32,
    /// Proposals a token may make at once, above the average, before the
    /// per-minute rate applies.
    #[serde(default = "default_rate_limit_burst")]
    pub rate_limit_burst: u32,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            tokens: Vec::new(),
            rate_limit_per_minute: default_rate_limit_per_minute(),
            rate_limit_burst: default_rate_limit_burst(),
        }
    }
}

impl ApiConfig {
    /// Token names identify the requesting system and key its rate limit,
    /// so each must be unique; an empty token would match nothing.
    fn validate(&self) -> Result<(), String> {
        use secrecy::ExposeSecret;
        if self.rate_limit_per_minute == 0 || self.rate_limit_burst == 0 {
            return Err(
                "api.rate_limit_per_minute and api.rate_limit_burst must be \
                 at least 1"
                    .into(),
            );
        }
        let mut names = std::collections::HashSet::new();
        for (index, token) in self.tokens.iter().enumerate() {
            let name = token.name(index);
            if name.trim().is_empty() {
                return Err(format!("api.tokens[{index}]: the name is empty"));
            }
            if token.secret().expose_secret().trim().is_empty() {
                return Err(format!("api.tokens[{index}] ({name}): the token is empty"));
            }
            if !names.insert(name.clone()) {
                return Err(format!("api.tokens: the name '{name}' is used twice"));
            }
        }
        Ok(())
    }
}

fn default_rate_limit_per_minute() -> u32 {
    60
}

fn default_rate_limit_burst() -> u32 {
    20
}

/// A bearer token for `/api/v1`, written either as a bare string or as
/// `{ name = "sentinel", token = "..." }`; the name is what the thread and
/// the audit trail record as the requesting system.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum ApiToken {
    Bare(SecretString),
    Named { name: String, token: SecretString },
}

impl ApiToken {
    pub fn name(&self, index: usize) -> String {
        match self {
            ApiToken::Bare(_) => format!("api-token-{}", index + 1),
            ApiToken::Named { name, .. } => name.clone(),
        }
    }

    pub fn secret(&self) -> &SecretString {
        match self {
            ApiToken::Bare(token) | ApiToken::Named { token, .. } => token,
        }
    }
}

/// How containment runs are executed (an extension of the documented
/// configuration).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunnerConfig {
    /// How long a replica holds a run before another may take it over.
    #[serde(default = "default_lease", with = "humantime_serde_compat")]
    pub lease: Duration,
    /// How often idle replicas look for work they were not told about.
    #[serde(default = "default_poll", with = "humantime_serde_compat")]
    pub poll_interval: Duration,
    /// Runs executed at once by one replica.
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    /// The longest one runbook step may take, every retry of its outside
    /// calls included; a step still busy then is journaled as failed.
    #[serde(default = "default_step_timeout", with = "humantime_serde_compat")]
    pub step_timeout: Duration,
    /// How many times a step may be started (first run, resumes after a
    /// crash and takeovers included) before it is failed without another
    /// try, so that a step that crashes its replica cannot loop forever.
    #[serde(default = "default_max_step_attempts")]
    pub max_step_attempts: i64,
}

impl Default for RunnerConfig {
    fn default() -> Self {
        Self {
            lease: default_lease(),
            poll_interval: default_poll(),
            concurrency: default_concurrency(),
            step_timeout: default_step_timeout(),
            max_step_attempts: default_max_step_attempts(),
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// `text` (the default) or `json`.
    #[serde(default)]
    pub format: LogFormat,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read configuration file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("configuration is not valid TOML: {0}")]
    Syntax(String),
    #[error("configuration is invalid: {0}")]
    Invalid(String),
    #[error("environment variable {name} is not valid: {reason}")]
    Environment { name: String, reason: String },
}

impl Config {
    /// Reads `path`, applies the environment and validates the result.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_toml_and_env(&text, std::env::vars())
    }

    /// Parses `text` and layers the given environment on top of it.
    pub fn from_toml_and_env(
        text: &str,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let mut table: toml::Table =
            toml::from_str(text).map_err(|e| ConfigError::Syntax(e.to_string()))?;
        apply_environment(&mut table, env)?;
        let config: Config = toml::Value::Table(table)
            .try_into()
            .map_err(|e: toml::de::Error| ConfigError::Invalid(e.to_string()))?;
        config.validate()?;
        Ok(config)
    }

    /// Checks what serde cannot: relations between keys.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |m: &str| Err(ConfigError::Invalid(m.to_string()));
        if self.bot.allow_anonymous && !self.server.bind.ip().is_loopback() {
            return invalid(
                "bot.allow_anonymous is set but server.bind is not a loopback \
                 address; anonymous activities are only for local testing",
            );
        }
        for (key, value) in [
            ("bot.app_id", &self.bot.app_id),
            ("bot.tenant_id", &self.bot.tenant_id),
            (
                "teams.approvals_channel_id",
                &self.teams.approvals_channel_id,
            ),
            ("graph.client_id", &self.graph.client_id),
            ("servicenow.instance_url", &self.servicenow.instance_url),
        ] {
            if value.trim().is_empty() {
                return invalid(&format!("{key} is empty"));
            }
        }
        let sn = &self.servicenow;
        let basic = sn.username.is_some() && sn.password.is_some();
        let oauth = sn.client_id.is_some() && sn.client_secret.is_some();
        if !basic && !oauth {
            return invalid(
                "servicenow needs username and password, or client_id and \
                 client_secret",
            );
        }
        if self.runner.concurrency == 0 {
            return invalid("runner.concurrency must be at least 1");
        }
        if self.runner.lease < Duration::from_millis(100) {
            return invalid("runner.lease must be at least 100ms");
        }
        if self.runner.step_timeout.is_zero() {
            return invalid("runner.step_timeout must be longer than zero");
        }
        if self.runner.max_step_attempts < 1 {
            return invalid("runner.max_step_attempts must be at least 1");
        }
        self.api.validate().map_err(ConfigError::Invalid)?;
        self.policy
            .validate()
            .map_err(|e| ConfigError::Invalid(format!("policy: {e}")))
    }

    pub fn graph_token_url(&self) -> String {
        self.graph
            .token_url
            .clone()
            .unwrap_or_else(|| entra_token_url(&self.bot.tenant_id))
    }

    /// The base of links to Cordon itself, without a trailing slash.
    pub fn public_url(&self) -> String {
        match &self.server.public_url {
            Some(url) => url.trim_end_matches('/').to_string(),
            None => format!("http://{}", self.server.bind),
        }
    }
}

/// Applies `CORDON_<SECTION>__<KEY>` and the Bot Framework names. A value
/// is read as TOML when it parses as such (numbers, booleans, lists) and
/// as a plain string otherwise.
fn apply_environment(
    table: &mut toml::Table,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<(), ConfigError> {
    for (name, value) in env {
        let Some((section, key)) = environment_key(&name) else {
            continue;
        };
        let entry = table
            .entry(section.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        let Some(section_table) = entry.as_table_mut() else {
            return Err(ConfigError::Environment {
                name,
                reason: format!("[{section}] is not a table"),
            });
        };
        section_table.insert(key, environment_value(&value));
    }
    Ok(())
}

fn environment_key(name: &str) -> Option<(String, String)> {
    match name {
        "MicrosoftAppId" => return Some(("bot".into(), "app_id".into())),
        "MicrosoftAppPassword" => return Some(("bot".into(), "app_password".into())),
        "MicrosoftAppTenantId" => return Some(("bot".into(), "tenant_id".into())),
        _ => {}
    }
    let rest = name.strip_prefix("CORDON_")?;
    let (section, key) = rest.split_once("__")?;
    if section.is_empty() || key.is_empty() {
        return None;
    }
    Some((section.to_lowercase(), key.to_lowercase()))
}

fn environment_value(value: &str) -> toml::Value {
    let probe = format!("v = {value}");
    match toml::from_str::<toml::Table>(&probe) {
        Ok(mut parsed) => parsed.remove("v").unwrap_or_else(|| value.into()),
        Err(_) => toml::Value::String(value.to_string()),
    }
}

fn entra_token_url(tenant: &str) -> String {
    format!("https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token")
}

fn default_bind() -> SocketAddr {
    SocketAddr::from(([0, 0, 0, 0], 3978))
}

fn default_body_limit() -> usize {
    256 * 1024
}

fn default_store_url() -> String {
    "sqlite://cordon.db".into()
}

fn default_openid_metadata_url() -> String {
    "https://login.botframework.com/v1/.well-known/openidconfiguration".into()
}

fn default_service_url() -> String {
    "https://smba.trafficmanager.net/teams/".into()
}

fn default_graph_url() -> String {
    "https://graph.microsoft.com/v1.0".into()
}

fn default_incident_link() -> String {
    "{instance_url}/nav_to.do?uri=incident.do?sys_id={sys_id}".into()
}

fn default_lease() -> Duration {
    Duration::from_secs(60)
}

fn default_poll() -> Duration {
    Duration::from_secs(2)
}

fn default_concurrency() -> usize {
    16
}

fn default_step_timeout() -> Duration {
    Duration::from_secs(5 * 60)
}

fn default_max_step_attempts() -> i64 {
    5
}

/// Durations written the human way ("30s", "5m") in the file.
mod humantime_serde_compat {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_duration(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
        [bot]
        app_id = "app"
        app_password = "bot-secret"
        tenant_id = "tenant"
        [teams]
        approvals_channel_id = "19:abc@thread.tacv2"
        [graph]
        client_id = "graph"
        client_secret = "graph-secret"
        [servicenow]
        instance_url = "https://example.service-now.com"
        username = "u"
        password = "sn-secret"
        webhook_secret = "hook-secret"
        [policy]
        allowed_domains = ["contoso.com"]
        approver_group_ids = ["g1"]
    "#;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn the_documented_example_configuration_is_valid() {
        let text = include_str!("../docs/cordon.example.toml");
        let config = Config::from_toml_and_env(text, env(&[])).unwrap();
        assert!(config.store.url.starts_with("postgres://"));
        assert_eq!(config.api.tokens.len(), 1);
        assert_eq!(config.policy.privileged_role_ids.len(), 2);
        assert!(
            config.policy.auto_approve.is_none(),
            "the example keeps it off"
        );
        assert_eq!(config.policy.runbooks, crate::policy::Runbooks::default());
    }

    #[test]
    fn a_minimal_file_gets_the_documented_defaults() {
        let config = Config::from_toml_and_env(MINIMAL, env(&[])).unwrap();
        assert_eq!(config.server.bind.to_string(), "0.0.0.0:3978");
        assert_eq!(config.store.url, "sqlite://cordon.db");
        assert!(!config.bot.allow_anonymous);
        assert!(config.bot.token_url().contains("/tenant/oauth2/v2.0/token"));
    }

    #[test]
    fn environment_overrides_the_file_and_bot_framework_names_work() {
        let config = Config::from_toml_and_env(
            MINIMAL,
            env(&[
                ("CORDON_STORE__URL", "postgres://db/cordon"),
                ("CORDON_POLICY__ALLOWED_DOMAINS", r#"["fabrikam.com"]"#),
                ("MicrosoftAppId", "from-env"),
            ]),
        )
        .unwrap();
        assert_eq!(config.store.url, "postgres://db/cordon");
        assert_eq!(config.policy.allowed_domains, vec!["fabrikam.com"]);
        assert_eq!(config.bot.app_id, "from-env");
    }

    #[test]
    fn unknown_keys_are_refused_with_their_name() {
        let text = format!("{MINIMAL}\n[store]\nurll = \"x\"\n");
        let error = Config::from_toml_and_env(&text, env(&[])).unwrap_err();
        assert!(error.to_string().contains("urll"), "{error}");
        let error =
            Config::from_toml_and_env(MINIMAL, env(&[("CORDON_BOT__APP_IDD", "x")])).unwrap_err();
        assert!(error.to_string().contains("app_idd"), "{error}");
    }

    #[test]
    fn anonymous_activities_on_a_public_bind_stop_the_start() {
        let error =
            Config::from_toml_and_env(MINIMAL, env(&[("CORDON_BOT__ALLOW_ANONYMOUS", "true")]))
                .unwrap_err();
        assert!(error.to_string().contains("allow_anonymous"), "{error}");
        let ok = Config::from_toml_and_env(
            MINIMAL,
            env(&[
                ("CORDON_BOT__ALLOW_ANONYMOUS", "true"),
                ("CORDON_SERVER__BIND", "127.0.0.1:3978"),
            ]),
        );
        assert!(ok.is_ok());
    }

    #[test]
    fn secrets_do_not_appear_in_debug_output() {
        let config = Config::from_toml_and_env(MINIMAL, env(&[])).unwrap();
        let debug = format!("{config:?}");
        for secret in ["bot-secret", "graph-secret", "sn-secret", "hook-secret"] {
            assert!(!debug.contains(secret), "{secret} leaked");
        }
    }
}
