//! `gatehouse webhooks …`: list, add, remove and test webhook endpoints from the command
//! line, through the same use cases as the API, as [`Actor::Operator`] (audited as `cli`).
//!
//! Results go to standard output as lines or a table, or with `--json` as the API's shapes
//! (`Webhook`; an addition adds `secret`). The command line writes events and deliveries
//! to the database; a running `gatehouse serve` makes the deliveries (within a second).

use std::io::Write;

use anyhow::Context;
use clap::Subcommand;
use gatehouse_domain::{Actor, EventFilter, PageQuery, Webhook, WebhookRequest, WebhookUrl};
use gatehouse_http::{WebhookPublic, WebhookWithSecret};

use crate::config::Config;
use crate::{cli, startup};

/// `gatehouse webhooks …`.
#[derive(Debug, Subcommand)]
pub enum WebhooksCommand {
    /// List the endpoints, oldest first.
    List {
        /// Print a JSON array of endpoints instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Add an endpoint and print its signing secret (shown only now).
    Add {
        /// Where deliveries go: http or https, no credentials, a public address unless
        /// GATEHOUSE_WEBHOOK_ALLOW_PRIVATE=true.
        #[arg(value_name = "URL")]
        url: String,
        /// The events it is sent, comma-separated (user.registered,user.approved), or *
        /// for all.
        #[arg(long, value_name = "EVENTS", default_value = "*")]
        events: String,
        /// A note for the admins.
        #[arg(long, value_name = "TEXT")]
        description: Option<String>,
        /// Print the endpoint and its secret as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Remove an endpoint and its deliveries log.
    Remove {
        /// The endpoint's id.
        #[arg(value_name = "ID")]
        id: i64,
    },
    /// Queue a webhook.test event for one endpoint (a running server sends it).
    Test {
        /// The endpoint's id.
        #[arg(value_name = "ID")]
        id: i64,
    },
}

/// Runs a webhooks command against the configured database.
///
/// # Errors
/// Refusals (a bad URL or event list, an unknown id) and database failures.
pub fn webhooks(config: &Config, command: WebhooksCommand) -> anyhow::Result<()> {
    let db = startup::open_database(config)?;
    let (service, _) = startup::user_service(config, &db)?;
    let out = &mut std::io::stdout().lock();
    match command {
        WebhooksCommand::List { json } => {
            let page = service.list_webhooks(Actor::Operator, &PageQuery::default())?;
            if json {
                let shown: Vec<WebhookPublic> = page.items.iter().map(WebhookPublic::new).collect();
                serde_json::to_writer(&mut *out, &shown).context("writing JSON")?;
                writeln!(out).context("writing to standard output")
            } else {
                print_table(out, &page.items)
            }
        }
        WebhooksCommand::Add {
            url,
            events,
            description,
            json,
        } => {
            let url = WebhookUrl::parse_and_resolve(&url, config.webhook_allow_private)
                .map_err(anyhow::Error::msg)?;
            let names: Vec<String> = events
                .split(',')
                .map(|name| name.trim().to_owned())
                .filter(|name| !name.is_empty())
                .collect();
            let events = EventFilter::parse(&names).map_err(anyhow::Error::msg)?;
            let description = description
                .map(|d| d.trim().to_owned())
                .filter(|d| !d.is_empty());
            let webhook = service.create_webhook(
                Actor::Operator,
                &WebhookRequest {
                    url,
                    events,
                    description,
                },
                &cli::origin(),
            )?;
            if json {
                serde_json::to_writer(&mut *out, &WebhookWithSecret::new(&webhook))
                    .context("writing JSON")?;
                writeln!(out)
            } else {
                writeln!(out, "added {}", describe(&webhook))
                    .and_then(|()| writeln!(out, "secret: {}", webhook.secret.expose()))
                    .and_then(|()| writeln!(out, "(the secret is shown only now)"))
            }
            .context("writing to standard output")
        }
        WebhooksCommand::Remove { id } => {
            service.delete_webhook(Actor::Operator, id, &cli::origin())?;
            writeln!(out, "removed webhook {id}").context("writing to standard output")
        }
        WebhooksCommand::Test { id } => {
            let event = service.test_webhook(Actor::Operator, id)?;
            writeln!(
                out,
                "queued webhook.test event {event} for webhook {id}; a running server sends it \
                 (see its deliveries log)"
            )
            .context("writing to standard output")
        }
    }
}

/// `webhook 3 https://hooks.example.com/x (user.approved, user.rejected; active)`.
fn describe(webhook: &Webhook) -> String {
    format!(
        "webhook {} {} ({}; {})",
        webhook.id,
        webhook.url,
        webhook.events.names().join(", "),
        if webhook.active { "active" } else { "inactive" }
    )
}

fn print_table(out: &mut impl Write, webhooks: &[Webhook]) -> anyhow::Result<()> {
    let rows: Vec<[String; 5]> = webhooks
        .iter()
        .map(|w| {
            [
                w.id.to_string(),
                if w.active { "yes" } else { "no" }.to_owned(),
                w.url.clone(),
                w.events.names().join(","),
                w.description
                    .as_deref()
                    .map(|d| d.replace('\n', " "))
                    .unwrap_or_default(),
            ]
        })
        .collect();
    let header = ["ID", "ACTIVE", "URL", "EVENTS", "DESCRIPTION"];
    cli::aligned(out, header, &rows)?;
    writeln!(out, "{} webhook(s)", rows.len()).context("writing to standard output")
}
