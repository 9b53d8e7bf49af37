//! The work behind the operator commands (`audit`, `policy explain`,
//! `config check`), kept out of `main.rs` so that it can be tested.

use std::fmt;
use std::io::Write;
use std::sync::Arc;

use crate::audit::{self, ChainError};
use crate::config::Config;
use crate::policy::{Risk, Source};
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

/// Checks the store and each credential against the configured endpoints.
pub async fn check_config(mut config: Config) -> CheckReport {
    config.server.bind = "127.0.0.1:0".parse().expect("loopback");
    config.bot.allow_anonymous = false;
    let mut checks = Vec::new();
    let app = match Application::build(config).await {
        Ok(app) => app,
        Err(e) => {
            checks.push(Check {
                name: "store".into(),
                passed: false,
                detail: format!("{e:#}"),
            });
            return CheckReport { checks };
        }
    };
    let engine: Arc<_> = app.engine();
    checks.push(Check {
        name: "store".into(),
        passed: true,
        detail: "reachable, schema up to date".into(),
    });
    let graph = engine.graph.check_token().await;
    checks.push(Check {
        name: "graph credentials".into(),
        passed: graph.is_ok(),
        detail: graph.map(|_| "token issued".into()).unwrap_or_else(|e| e.to_string()),
    });
    let servicenow = engine.servicenow.check_credentials().await;
    checks.push(Check {
        name: "servicenow credentials".into(),
        passed: servicenow.is_ok(),
        detail: servicenow
            .map(|_| "table API answered".into())
            .unwrap_or_else(|e| e.to_string()),
    });
    CheckReport { checks }
}
