//! `gatehouse`: the service's binary.

mod cli;
mod config;
mod dispatcher;
mod invitations;
mod mailer;
mod startup;
mod telemetry;
mod webhooks;

use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

use crate::config::Config;
use crate::startup::Application;

/// Gatehouse: user registration with admin approval, and the tokens that prove it.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Migrate the database, then serve the HTTP API (configured by GATEHOUSE_* variables).
    Serve,
    /// Create or migrate the database, then exit.
    Migrate,
    /// Add a new Ed25519 signing key (GATEHOUSE_JWT_ALGORITHM=EdDSA): published at once,
    /// signing after two minutes, old keys kept until their tokens expire.
    RotateKey,
    /// Check the configuration (GATEHOUSE_CONFIG file and GATEHOUSE_* variables) as `serve`
    /// would load it, and print the effective settings, secrets masked; the database is
    /// not contacted.
    CheckConfig,
    /// Administer users through the same rules as the API (see `gatehouse users --help`).
    Users {
        #[command(subcommand)]
        command: cli::UsersCommand,
    },
    /// Create, list and revoke invitations (see `gatehouse invitations --help`).
    Invitations {
        #[command(subcommand)]
        command: invitations::InvitationsCommand,
    },
    /// List, add, remove and test webhook endpoints (see `gatehouse webhooks --help`).
    Webhooks {
        #[command(subcommand)]
        command: webhooks::WebhooksCommand,
    },
    /// Check the mailer (GATEHOUSE_SMTP_URL): `gatehouse mail test ADDRESS`.
    Mail {
        #[command(subcommand)]
        command: MailCommand,
    },
    /// Write a consistent copy of the SQLite database to PATH, while the service may run.
    Backup {
        /// Where to write the copy; must not exist yet.
        path: std::path::PathBuf,
    },
}

/// `gatehouse mail …`.
#[derive(Debug, clap::Subcommand)]
enum MailCommand {
    /// Send one test mail to ADDRESS now (not through the queue) and print the SMTP
    /// server's answer.
    Test {
        /// Where to send it.
        #[arg(value_name = "ADDRESS")]
        address: String,
    },
}

/// Sends a test mail and reports the server's answer.
fn mail_test(config: &config::Config, address: &str) -> anyhow::Result<()> {
    let Some(mailer) = startup::mailer(config)? else {
        anyhow::bail!("no mailer is configured: set GATEHOUSE_SMTP_URL and GATEHOUSE_MAIL_FROM");
    };
    let text = gatehouse_domain::templates::test(mailer.host());
    match mailer.send(address, &text.subject, &text.body) {
        Ok(code) => {
            println!(
                "sent to {address} through {}: the server answered {code}",
                mailer.host()
            );
            Ok(())
        }
        Err((code, error)) => Err(anyhow::anyhow!(
            "not sent through {}{}: {error}",
            mailer.host(),
            code.map(|c| format!(" (the server answered {c})"))
                .unwrap_or_default()
        )),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::Users { command } = &cli.command {
        if command.lacks_a_password_source() {
            Cli::command()
                .error(
                    clap::error::ErrorKind::MissingRequiredArgument,
                    "standard input is not a terminal to ask for the password on: \
                     pass --password-stdin and write the password to standard input",
                )
                .exit();
        }
    }
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(errors) => {
            for error in errors {
                eprintln!("gatehouse: {error}");
            }
            return ExitCode::from(2);
        }
    };
    let logging = telemetry::init(&config.log_filter, config.log_format);
    let outcome = match cli.command {
        Command::Serve => serve(&config),
        Command::Migrate => startup::open_database(&config).map(|db| {
            tracing::info!(database = %db.url(), "database is migrated");
        }),
        Command::RotateKey => startup::rotate_signing_key(&config, chrono::Duration::minutes(2))
            .map(|kid| {
                println!("new signing key {kid}: published now, signing from two minutes on");
            }),
        Command::CheckConfig => {
            print!("{}", config.describe());
            Ok(())
        }
        Command::Users { command } => cli::users(&config, command),
        Command::Invitations { command } => invitations::invitations(&config, command),
        Command::Webhooks { command } => webhooks::webhooks(&config, command),
        Command::Mail {
            command: MailCommand::Test { address },
        } => mail_test(&config, &address),
        Command::Backup { path } => cli::backup(&config, &path),
    };
    // Every queued log line out before the last words below.
    drop(logging);
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // On stderr directly, not through the log filter: it must be seen.
            eprintln!("gatehouse: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn serve(config: &Config) -> anyhow::Result<()> {
    actix_web::rt::System::new().block_on(async {
        let app = Application::build(config)?;
        app.run_until_stopped().await
    })
}
