//! `gatehouse invitations …`: create, list and revoke invitations from the command line,
//! through the same use cases as the API, as [`Actor::Operator`] (the audit log says
//! `cli`; an invitation made here has no `created_by`, so its invitees have no
//! `approved_by`).
//!
//! Results go to standard output as lines or a table, or with `--json` as the API's
//! shapes (`Invitation`; a creation adds `code`, and `url` when `GATEHOUSE_PUBLIC_URL` is
//! set). Refusals go to standard error and exit with 1.

use std::io::Write;

use anyhow::Context;
use clap::Subcommand;
use gatehouse_domain::{
    parse_expires_in, Actor, Email, FreeText, Invitation, InvitationQuery, InvitationRequest,
    InvitationStatus,
};
use gatehouse_http::{CreatedInvitation, InvitationPublic, Rfc3339};

use crate::cli::{parse_email, parse_note};
use crate::config::Config;
use crate::{cli, startup};

/// `gatehouse invitations …`.
#[derive(Debug, Subcommand)]
pub enum InvitationsCommand {
    /// Create an invitation and print its code (shown only now) and, with
    /// GATEHOUSE_PUBLIC_URL set, its link.
    Create {
        /// The one email address that may use it (it is then used once).
        #[arg(long, value_name = "EMAIL", value_parser = parse_email)]
        email: Option<Email>,
        /// Whoever registers with it becomes an admin.
        #[arg(long)]
        admin: bool,
        /// How long it admits registrations: 1m to 90d.
        #[arg(long, value_name = "DURATION", default_value = "7d", value_parser = parse_duration)]
        expires_in: chrono::Duration,
        /// How many registrations it admits: 1 to 1000 (1 with --email).
        #[arg(long, value_name = "N", default_value_t = 1)]
        max_uses: u32,
        /// A note for the admins (at most 500 characters).
        #[arg(long, value_name = "TEXT", value_parser = parse_note)]
        note: Option<FreeText>,
        /// Print the invitation, its code and link as JSON.
        #[arg(long)]
        json: bool,
    },
    /// List invitations, newest first, with their status now.
    List {
        /// Only those with this status: active, used, expired or revoked.
        #[arg(long, value_name = "STATUS", value_parser = parse_status)]
        status: Option<InvitationStatus>,
        /// Print a JSON array of invitations instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Revoke an invitation: it admits nobody from now on (it stays listed).
    Revoke {
        /// The invitation's id.
        #[arg(value_name = "ID")]
        id: u64,
        /// Print the revoked invitation as JSON.
        #[arg(long)]
        json: bool,
    },
}

fn parse_duration(raw: &str) -> Result<chrono::Duration, String> {
    let duration = parse_expires_in(raw).map_err(|e| e.to_string())?;
    if (InvitationRequest::MIN_EXPIRES_IN..=InvitationRequest::MAX_EXPIRES_IN).contains(&duration) {
        Ok(duration)
    } else {
        Err("must be from 1m to 90d".to_owned())
    }
}

fn parse_status(raw: &str) -> Result<InvitationStatus, String> {
    raw.parse()
        .map_err(|e: gatehouse_domain::InvalidInvitationStatus| e.to_string())
}

/// Runs an invitations command against the configured database.
///
/// # Errors
/// Refusals (an invalid request, an unknown id) and database failures.
pub fn invitations(config: &Config, command: InvitationsCommand) -> anyhow::Result<()> {
    let db = startup::open_database(config)?;
    let (service, _) = startup::user_service(config, &db)?;
    let out = &mut std::io::stdout().lock();
    let now = gatehouse_domain::now;
    match command {
        InvitationsCommand::Create {
            email,
            admin,
            expires_in,
            max_uses,
            note,
            json,
        } => {
            let request = InvitationRequest {
                email,
                is_admin: admin,
                expires_in,
                max_uses,
                note: note.map(|n| n.as_str().to_owned()),
            }
            .validate()
            .map_err(|problems| {
                anyhow::anyhow!(
                    "{}",
                    problems
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join("; ")
                )
            })?;
            let (invitation, code) =
                service.create_invitation(Actor::Operator, &request, &cli::origin())?;
            let created =
                CreatedInvitation::new(&invitation, &code, config.public_url.as_deref(), now());
            if json {
                serde_json::to_writer(&mut *out, &created).context("writing JSON")?;
                writeln!(out).context("writing to standard output")?;
            } else {
                writeln!(out, "created {}", describe(&invitation))
                    .and_then(|()| writeln!(out, "code: {}", code.expose()))
                    .and_then(|()| match created.url() {
                        Some(url) => writeln!(out, "link: {url}"),
                        None => Ok(()),
                    })
                    .and_then(|()| writeln!(out, "(the code is shown only now)"))
                    .context("writing to standard output")?;
            }
            Ok(())
        }
        InvitationsCommand::List { status, json } => {
            let query = InvitationQuery {
                status,
                ..InvitationQuery::default()
            };
            let page = service.list_invitations(Actor::Operator, &query)?;
            let at = now();
            if json {
                let shown: Vec<InvitationPublic> = page
                    .items
                    .iter()
                    .map(|i| InvitationPublic::new(i, at))
                    .collect();
                serde_json::to_writer(&mut *out, &shown).context("writing JSON")?;
                writeln!(out).context("writing to standard output")
            } else {
                print_table(out, &page.items, at)
            }
        }
        InvitationsCommand::Revoke { id, json } => {
            let id = i64::try_from(id).map_err(|_| gatehouse_domain::Error::InvitationNotFound)?;
            let invitation = service.revoke_invitation(Actor::Operator, id, &cli::origin())?;
            if json {
                serde_json::to_writer(&mut *out, &InvitationPublic::new(&invitation, now()))
                    .context("writing JSON")?;
                writeln!(out)
            } else {
                writeln!(out, "revoked {}", describe(&invitation))
            }
            .context("writing to standard output")
        }
    }
}

/// `invitation 3 for ann@example.com (admin, 0 of 1 used, expires 2026-12-13T10:00:00Z)`.
fn describe(invitation: &Invitation) -> String {
    format!(
        "invitation {}{} ({}{} of {} used, expires {})",
        invitation.id,
        invitation
            .email
            .as_ref()
            .map(|e| format!(" for {}", e.as_str()))
            .unwrap_or_default(),
        if invitation.is_admin { "admin, " } else { "" },
        invitation.uses,
        invitation.max_uses,
        Rfc3339::new(invitation.expires_at),
    )
}

fn print_table(
    out: &mut impl Write,
    invitations: &[Invitation],
    now: chrono::DateTime<chrono::Utc>,
) -> anyhow::Result<()> {
    let rows: Vec<[String; 7]> = invitations
        .iter()
        .map(|i| {
            [
                i.id.to_string(),
                i.status(now).as_str().to_owned(),
                i.email
                    .as_ref()
                    .map_or_else(|| "(anyone)".to_owned(), |e| e.as_str().to_owned()),
                if i.is_admin { "yes" } else { "no" }.to_owned(),
                format!("{}/{}", i.uses, i.max_uses),
                Rfc3339::new(i.expires_at).to_string(),
                i.note
                    .as_deref()
                    .map(|n| n.replace('\n', " "))
                    .unwrap_or_default(),
            ]
        })
        .collect();
    let header = ["ID", "STATUS", "EMAIL", "ADMIN", "USES", "EXPIRES", "NOTE"];
    cli::aligned(out, header, &rows)?;
    writeln!(out, "{} invitation(s)", rows.len()).context("writing to standard output")
}
