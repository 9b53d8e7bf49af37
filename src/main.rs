//! The `cordon` command line: parses arguments and calls into the library.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};

use cordon::config::{Config, LogFormat, CONFIG_ENV};
use cordon::policy::{Risk, Source};

#[derive(Parser)]
#[command(
    name = "cordon",
    version,
    about = "Governed containment of compromised Entra ID accounts"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the production server.
    Serve {
        #[arg(long, env = CONFIG_ENV)]
        config: PathBuf,
    },
    /// Run the server against a simulated tenant, on SQLite.
    Sandbox {
        #[arg(long, default_value = "127.0.0.1:3978")]
        bind: SocketAddr,
        /// Store URL; a fresh temporary SQLite file when not given.
        #[arg(long)]
        store: Option<String>,
    },
    /// Drive whole scenarios through the sandbox and check their outcome.
    Demo,
    /// Check or export the audit trail.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Explain policy decisions.
    Policy {
        #[command(subcommand)]
        command: PolicyCommand,
    },
    /// Build the Teams app package.
    Manifest {
        #[command(subcommand)]
        command: ManifestCommand,
    },
    /// Check the configuration.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Walk the hash chain; non-zero exit on the first bad event.
    Verify {
        #[arg(long, env = CONFIG_ENV)]
        config: PathBuf,
    },
    /// Write every audit event to standard output.
    Export {
        #[arg(long, env = CONFIG_ENV)]
        config: PathBuf,
        #[arg(long, value_enum, default_value = "jsonl")]
        format: ExportFormat,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum ExportFormat {
    Jsonl,
    Ecs,
}

#[derive(Subcommand)]
enum PolicyCommand {
    /// What would happen to a request for this user, and which rule decides.
    Explain {
        #[arg(long, env = CONFIG_ENV)]
        config: PathBuf,
        #[arg(long)]
        upn: String,
        #[arg(long, value_enum, default_value = "teams")]
        source: SourceArg,
        #[arg(long, value_enum)]
        risk: Option<RiskArg>,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum SourceArg {
    Teams,
    Servicenow,
    Api,
    Siem,
}

#[derive(Clone, Copy, ValueEnum)]
enum RiskArg {
    Low,
    Medium,
    High,
}

#[derive(Subcommand)]
enum ManifestCommand {
    /// Write the Teams app package with the configured bot id.
    Pack {
        #[arg(long, env = CONFIG_ENV)]
        config: PathBuf,
        #[arg(long)]
        out: PathBuf,
    },
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Validate the file and, where reachable, the credentials.
    Check {
        #[arg(long, env = CONFIG_ENV)]
        config: PathBuf,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli.command).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Serve { config } => {
            let config = load(&config)?;
            init_logging(config.log.format);
            let app = cordon::startup::Application::build(config).await?;
            tracing::info!(port = app.port(), "cordon serving");
            app.run_until_stopped().await?;
        }
        Command::Sandbox { bind, store } => {
            init_logging(LogFormat::Text);
            let sandbox = cordon::demo::Sandbox::start_with_environment(bind, store).await?;
            println!("{}", cordon::demo::sandbox_banner(&sandbox));
            tokio::signal::ctrl_c().await?;
        }
        Command::Demo => {
            cordon::demo::run_demo().await?;
        }
        Command::Audit { command } => return audit(command).await,
        Command::Policy {
            command:
                PolicyCommand::Explain {
                    config,
                    upn,
                    source,
                    risk,
                },
        } => {
            let config = load(&config)?;
            let text =
                cordon::cli::explain(config, &upn, source.into(), risk.map(Into::into)).await?;
            println!("{text}");
        }
        Command::Manifest {
            command: ManifestCommand::Pack { config, out },
        } => {
            let config = load(&config)?;
            cordon::manifest::pack(&config.bot.app_id, None, &out)?;
            println!("wrote {}", out.display());
        }
        Command::Config {
            command: ConfigCommand::Check { config },
        } => {
            let config = load(&config)?;
            let report = cordon::cli::check_config(config).await;
            println!("{report}");
            if !report.all_passed() {
                return Ok(ExitCode::FAILURE);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn audit(command: AuditCommand) -> anyhow::Result<ExitCode> {
    match command {
        AuditCommand::Verify { config } => {
            let config = load(&config)?;
            match cordon::cli::verify_audit(&config).await? {
                Ok(count) => {
                    println!("audit chain intact: {count} events");
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => {
                    println!("audit chain broken: {e}");
                    Ok(ExitCode::FAILURE)
                }
            }
        }
        AuditCommand::Export { config, format } => {
            let config = load(&config)?;
            let ecs = matches!(format, ExportFormat::Ecs);
            cordon::cli::export_audit(&config, ecs, &mut std::io::stdout()).await?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn load(path: &Path) -> anyhow::Result<Config> {
    Config::load(path).with_context(|| format!("loading {}", path.display()))
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| "info,sqlx=warn,tower_http=info".into());
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

impl From<SourceArg> for Source {
    fn from(arg: SourceArg) -> Source {
        match arg {
            SourceArg::Teams => Source::Teams,
            SourceArg::Servicenow => Source::ServiceNow,
            SourceArg::Api => Source::Api,
            SourceArg::Siem => Source::Siem,
        }
    }
}

impl From<RiskArg> for Risk {
    fn from(arg: RiskArg) -> Risk {
        match arg {
            RiskArg::Low => Risk::Low,
            RiskArg::Medium => Risk::Medium,
            RiskArg::High => Risk::High,
        }
    }
}
