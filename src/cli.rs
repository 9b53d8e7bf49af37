//! The work behind the operator commands (`audit`, `policy explain`,
//! `config check`), kept out of `main.rs` so that it can be tested.

use std::collections::BTreeSet;
use std::fmt;
use std::io::Write;
use std::sync::Arc;

use crate::audit::{self, ChainError};
use crate::botframework::token::{TokenCredentials, TokenSource};
use crate::config::Config;
use crate::graph::permissions::needed_permissions;
use crate::graph::GraphClient;
use crate::policy::{Risk, Runbooks, Source, StepKind};
use crate::startup::Application;
use crate::store::Store;

/// Walks the audit chain of the configured store.
pub async fn verify_audit(config: &Config) -> anyhow::Result<Result<usize, ChainError>> {
    let store = Store::connect(&config.store.url).await?;
    let events = store.audit_events(None).await?;
    let (seq, hash) = store.audit_head().await?;
    Ok(audit::verify(&events, (seq, &hash)))
}

/// Writes every audit event, one per line, as stored or in ECS form.
pub async fn export_audit(config: &Config, ecs: bool, out: &mut impl Write) -> anyhow::Result<()> {
    let store = Store::connect(&config.store.url).await?;
    for event in store.audit_events(None).await? {
        let line = if ecs {
            audit::to_ecs(&event)
        } else {
            audit::to_jsonl(&event)
        };
        writeln!(out, "{line}")?;
    }
    Ok(())
}

/// Explains the policy for a user, reading Graph but changing nothing.
pub async fn explain(
    mut config: Config,
    upn: &str,
    source: Source,
    risk: Option<Risk>,
) -> anyhow::Result<String> {
    config.server.bind = "127.0.0.1:0".parse()?;
    let app = Application::build(config).await?;
    let engine = app.engine();
    let text = crate::containment::explain::explain_upn(&engine, upn, source, risk).await?;
    Ok(text)
}

/// One line of `config check`.
pub struct Check {
    pub name: String,
    pub passed: bool,
    pub detail: String,
}

/// What `config check` found.
pub struct CheckReport {
    pub checks: Vec<Check>,
}

impl CheckReport {
    pub fn all_passed(&self) -> bool {
        self.checks.iter().all(|c| c.passed)
    }
}

impl fmt::Display for CheckReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "configuration is valid")?;
        for check in &self.checks {
            let mark = if check.passed { "ok  " } else { "FAIL" };
            writeln!(f, "{mark} {}: {}", check.name, check.detail)?;
        }
        Ok(())
    }
}

/// Checks the store and each credential against the configured endpoints,
/// then which Graph permission a configured step or check would lack
/// (read from the `roles` claim of the Graph token). Nothing is written
/// anywhere: the one outside write-free read per service is all it does.
pub async fn check_config(mut config: Config) -> CheckReport {
    config.server.bind = "127.0.0.1:0".parse().expect("loopback");
    config.bot.allow_anonymous = false;
    let mut checks = Vec::new();
    let steps = configured_steps(&config);
    let reads_roles = !config.policy.privileged_role_ids.is_empty();
    let bot = bot_token_source(&config);
    let app = match Application::build(config).await {
        Ok(app) => app,
        Err(e) => {
            checks.push(Check::new("store", Err(format!("{e:#}"))));
            return CheckReport { checks };
        }
    };
    let engine: Arc<_> = app.engine();
    checks.push(Check::new(
        "store",
        Ok("reachable, schema up to date".into()),
    ));

    let token = bot.token().await;
    let bot_result = token.map(|_| "Bot Connector token issued".to_string());
    checks.push(Check::new(
        "bot credentials",
        bot_result.map_err(|e| e.to_string()),
    ));

    let graph = engine.graph.check_token().await;
    let graph_ok = graph.is_ok();
    let graph = graph.map(|_| "token issued".to_string());
    checks.push(Check::new(
        "graph credentials",
        graph.map_err(|e| e.to_string()),
    ));
    if graph_ok {
        checks.extend(permission_checks(&engine.graph, &steps, reads_roles).await);
    }

    let servicenow = engine.servicenow.check_credentials().await;
    let servicenow = servicenow.map(|_| "table API answered".to_string());
    checks.push(Check::new(
        "servicenow credentials",
        servicenow.map_err(|e| e.to_string()),
    ));
    CheckReport { checks }
}

impl Check {
    fn new(name: &str, result: Result<String, String>) -> Check {
        let passed = result.is_ok();
        let detail = result.unwrap_or_else(|e| e);
        Check {
            name: name.to_string(),
            passed,
            detail,
        }
    }
}

/// Every step of every configured runbook.
fn configured_steps(config: &Config) -> BTreeSet<StepKind> {
    let runbooks = &config.policy.runbooks;
    Runbooks::NAMES
        .into_iter()
        .filter_map(|name| runbooks.steps(name).ok())
        .flatten()
        .collect()
}

fn bot_token_source(config: &Config) -> TokenSource {
    let credentials = TokenCredentials {
        token_url: config.bot.token_url(),
        app_id: config.bot.app_id.clone(),
        app_password: config.bot.app_password.clone(),
    };
    TokenSource::new(credentials, reqwest::Client::new())
}

/// One line per Graph permission needed, saying whether the token holds
/// it and which steps need it.
async fn permission_checks(
    graph: &GraphClient,
    steps: &BTreeSet<StepKind>,
    reads_roles: bool,
) -> Vec<Check> {
    let roles = match graph.granted_roles().await {
        Ok(roles) => roles,
        Err(e) => return vec![Check::new("graph permissions", Err(e.to_string()))],
    };
    needed_permissions(steps, reads_roles)
        .into_iter()
        .map(|need| {
            let name = format!("graph permission {}", need.permission);
            let uses = need.needed_for.join(", ");
            let result = if need.is_met_by(&roles) {
                Ok(format!("granted; used by {uses}"))
            } else {
                Err(format!(
                    "not granted; {uses} would fail with 403. Grant the \
                     application permission {} and give admin consent",
                    need.permission
                ))
            };
            Check::new(&name, result)
        })
        .collect()
}
