//! The administration command line: `gatehouse users …` and `gatehouse backup PATH`
//! (`gatehouse invitations …` is in [`crate::invitations`]).
//!
//! Each command opens (and migrates) the database of the configuration `serve` uses,
//! whether the service runs or not, and goes through the domain's use cases as
//! [`Actor::Operator`], so every rule holds here as over HTTP (the last active admin cannot
//! be demoted, disabled or deleted from here either) and the audit log says `cli`.
//!
//! Results go to standard output, as one line or a table, or as JSON with `--json` (the
//! HTTP API's `UserPublic` shape); refusals go to standard error and exit with 1 (see
//! `main`). Passwords are never taken as arguments: they are typed at a prompt that does not
//! echo them (when standard input is a terminal), or read from standard input with
//! `--password-stdin`.

use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;

use anyhow::Context;
use chrono::{DateTime, Utc};
use clap::{Args, Subcommand};
use gatehouse_domain::{
    Actor, Email, FreeText, Listing, NewUserRequest, Origin, Password, User, UserChanges, UserKey,
    UserQuery, UserService, UserStatus,
};
use gatehouse_http::{Rfc3339, UserPublic};
use gatehouse_storage::{BackupError, DatabaseUrl};

use crate::config::Config;
use crate::startup;

/// `gatehouse users …`.
#[derive(Debug, Subcommand)]
pub enum UsersCommand {
    /// List the users, newest first.
    List {
        /// Only users with this status: pending, approved, disabled or rejected.
        #[arg(long, value_name = "STATUS")]
        status: Option<UserStatus>,
        /// Print a JSON array of users instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Create a user (approved unless --pending); the password is asked for (twice, not
    /// shown), or read from standard input with --password-stdin.
    ///
    /// Into an empty database the first user is an approved admin whatever was asked.
    Create {
        /// The new user's email address.
        #[arg(value_name = "EMAIL", value_parser = parse_email)]
        email: Email,
        #[command(flatten)]
        password: PasswordStdin,
        /// Make the user an admin.
        #[arg(long)]
        admin: bool,
        /// Leave the user pending approval instead of approved.
        #[arg(long)]
        pending: bool,
        /// Print the created user as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Set a user's password (asked for, or read with --password-stdin); ends their
    /// sessions.
    ///
    /// Also clears their failed logins: this is how a forgotten admin password is
    /// recovered.
    SetPassword {
        #[command(flatten)]
        target: Target,
        #[command(flatten)]
        password: PasswordStdin,
    },
    /// Approve a user (status approved; already approved is fine).
    Approve(Target),
    /// Reject a user's registration: they cannot log in, and are told so with the note.
    Reject {
        #[command(flatten)]
        target: Target,
        /// A note for them (at most 500 characters), shown when they try to log in.
        #[arg(long, value_name = "TEXT", value_parser = parse_note)]
        note: Option<FreeText>,
    },
    /// Disable a user: they can no longer log in, and their tokens stop working.
    Disable(Target),
    /// Enable a user (status approved, as approve; already approved is fine).
    Enable(Target),
    /// Make a user an admin.
    Promote(Target),
    /// Take a user's admin rights away.
    Demote(Target),
    /// Delete a user (--json prints the user as they were).
    Delete(Target),
    /// Sign a user out everywhere: every session of theirs ends, and their refresh and
    /// access tokens stop working at once. They may log in again (disable them to keep
    /// them out).
    SignOut(Target),
    /// Mark a user's email verified, as the code mailed to them would (a pending user of
    /// a domain in GATEHOUSE_AUTO_APPROVE_DOMAINS is approved too).
    VerifyEmail(Target),
    /// Remove a user's second factors (TOTP, recovery codes, passkeys) and sign them out
    /// everywhere: the lockout recovery. They sign in with their password and enrol again.
    ResetMfa(Target),
}

/// The user a command acts on, and how to report it.
#[derive(Debug, Args)]
pub struct Target {
    /// The user: an id (digits) or an email address.
    #[arg(value_name = "EMAIL_OR_ID")]
    user: UserKey,
    /// Print the affected user as JSON.
    #[arg(long)]
    json: bool,
}

/// How the password comes: never as an argument (it would show in `ps` and in shell
/// histories), but typed at a prompt without echo, or with `--password-stdin` from the first
/// line of standard input (required when standard input is not a terminal).
#[derive(Debug, Args)]
pub struct PasswordStdin {
    /// Read the password from the first line of standard input (for scripts; without it the
    /// password is asked for on the terminal, not shown as typed).
    #[arg(long = "password-stdin")]
    password_stdin: bool,
}

impl UsersCommand {
    /// Whether the command takes a password and has nowhere to ask for it: no
    /// `--password-stdin`, and standard input is not a terminal (a usage error, as before
    /// there was a prompt).
    #[must_use]
    pub fn lacks_a_password_source(&self) -> bool {
        match self {
            Self::Create { password, .. } | Self::SetPassword { password, .. } => {
                !password.password_stdin && !std::io::stdin().is_terminal()
            }
            _ => false,
        }
    }
}

pub(crate) fn parse_email(raw: &str) -> Result<Email, String> {
    Email::parse(raw).map_err(|e| e.to_string())
}

/// A note given on the command line: a [`FreeText`] that is not empty.
pub(crate) fn parse_note(raw: &str) -> Result<FreeText, String> {
    FreeText::parse(raw)
        .map_err(|e| e.to_string())?
        .ok_or_else(|| "must not be empty".to_owned())
}

/// The command line names itself in the audit log.
pub(crate) fn origin() -> Origin {
    Origin {
        address: None,
        note: Some("cli".into()),
        user_agent: None,
    }
}

/// Runs a `users` command against the configured database.
///
/// # Errors
/// A refusal of the domain (its message is the rule's), a weak or missing password, an
/// unreachable database, or a failure to write the output.
pub fn users(config: &Config, command: UsersCommand) -> anyhow::Result<()> {
    // The password first: a weak one is refused before the database is touched.
    let password = match &command {
        UsersCommand::Create {
            password, email, ..
        } => Some(new_password(password, email.as_str())?),
        UsersCommand::SetPassword {
            password, target, ..
        } => {
            let whom = match &target.user {
                UserKey::Id(id) => format!("user {id}"),
                UserKey::Email(email) => email.as_str().to_owned(),
            };
            Some(new_password(password, &whom)?)
        }
        _ => None,
    };
    let db = startup::open_database(config)?;
    let (service, _) = startup::user_service(config, &db)?;
    let out = &mut std::io::stdout().lock();
    match command {
        UsersCommand::List { status, json } => {
            let query = UserQuery {
                status,
                ..UserQuery::default()
            };
            if json {
                print_json_array(out, &service, &query)
            } else {
                // A table needs every row for its column widths.
                let users = service.list_users(Actor::Operator, &query)?.items;
                print_table(out, &users)
            }
        }
        UsersCommand::Create {
            email,
            admin,
            pending,
            json,
            ..
        } => {
            let status = if pending {
                UserStatus::Pending
            } else {
                UserStatus::Approved
            };
            let request = NewUserRequest {
                email,
                password: password.context("no password was read")?,
                is_admin: admin,
                status,
            };
            let user = service.create_user(Actor::Operator, request, &origin())?;
            if (user.is_admin, user.status) != (admin, status) {
                eprintln!(
                    "gatehouse: the database had no users: the first user is always an approved admin"
                );
            }
            report(out, json, &user, &format!("created {}", describe(&user)))
        }
        UsersCommand::SetPassword { target, .. } => {
            let password = password.context("no password was read")?;
            let user = service.find_user(Actor::Operator, &target.user)?;
            let user = service.reset_password(Actor::Operator, user.id, &password, &origin())?;
            let line = format!(
                "password set for {}; every session and token of theirs has ended",
                describe(&user)
            );
            report(out, target.json, &user, &line)
        }
        UsersCommand::Approve(target) => change(
            &service,
            out,
            &target,
            Change::Status(UserStatus::Approved, "approved", None),
        ),
        UsersCommand::Reject { target, note } => change(
            &service,
            out,
            &target,
            Change::Status(
                UserStatus::Rejected,
                "rejected",
                note.map(|n| n.as_str().to_owned()),
            ),
        ),
        UsersCommand::Enable(target) => change(
            &service,
            out,
            &target,
            Change::Status(UserStatus::Approved, "enabled", None),
        ),
        UsersCommand::Disable(target) => change(
            &service,
            out,
            &target,
            Change::Status(UserStatus::Disabled, "disabled", None),
        ),
        UsersCommand::Promote(target) => change(&service, out, &target, Change::Admin(true)),
        UsersCommand::Demote(target) => change(&service, out, &target, Change::Admin(false)),
        UsersCommand::SignOut(target) => {
            let user = service.find_user(Actor::Operator, &target.user)?;
            let ended = service.end_user_sessions(Actor::Operator, user.id, &origin())?;
            let line = format!(
                "signed out {} everywhere: {ended} session{} ended",
                describe(&user),
                if ended == 1 { "" } else { "s" }
            );
            report(out, target.json, &user, &line)
        }
        UsersCommand::VerifyEmail(target) => {
            let before = service.find_user(Actor::Operator, &target.user)?;
            let user = service.mark_email_verified(before.id)?;
            let line = if before.email_verified {
                format!("{} was verified already", describe(&user))
            } else if user.status != before.status {
                format!(
                    "verified the email of {} and approved them (auto-approved domain)",
                    describe(&user)
                )
            } else {
                format!("verified the email of {}", describe(&user))
            };
            report(out, target.json, &user, &line)
        }
        UsersCommand::ResetMfa(target) => {
            let before = service.find_user(Actor::Operator, &target.user)?;
            let user = service.reset_mfa(Actor::Operator, before.id, &origin())?;
            let line = if before.mfa_enabled {
                format!("reset the second factors of {}", describe(&user))
            } else {
                format!(
                    "{} had no second factor on; any pending enrolment is gone",
                    describe(&user)
                )
            };
            report(out, target.json, &user, &line)
        }
        UsersCommand::Delete(target) => {
            let user = service.find_user(Actor::Operator, &target.user)?;
            service.delete_user(Actor::Operator, user.id, &origin())?;
            report(
                out,
                target.json,
                &user,
                &format!("deleted {}", describe(&user)),
            )
        }
    }
}

/// An edit of one field, with the verb that reports it (and a decision's note).
enum Change {
    Status(UserStatus, &'static str, Option<String>),
    Admin(bool),
}

fn change(
    service: &UserService,
    out: &mut impl Write,
    target: &Target,
    change: Change,
) -> anyhow::Result<()> {
    let before = service.find_user(Actor::Operator, &target.user)?;
    let (changes, verb) = match change {
        Change::Status(status, verb, note) => (
            UserChanges {
                status: Some(status),
                note,
                ..UserChanges::default()
            },
            verb,
        ),
        Change::Admin(is_admin) => (
            UserChanges {
                is_admin: Some(is_admin),
                ..UserChanges::default()
            },
            if is_admin { "promoted" } else { "demoted" },
        ),
    };
    let after = service.update_user(Actor::Operator, before.id, &changes, &origin())?;
    let line = if after == before {
        format!("nothing to change: {}", describe(&after))
    } else {
        format!("{verb} {}", describe(&after))
    };
    report(out, target.json, &after, &line)
}

/// Writes a consistent copy of the SQLite database to `path`, while the service may run.
///
/// # Errors
/// On PostgreSQL (use `pg_dump`), when `path` exists, or when the copy cannot be written.
pub fn backup(config: &Config, path: &Path) -> anyhow::Result<()> {
    // Refused before anything is opened: opening migrates, and would create a missing
    // SQLite file (a mistyped URL would then back up a new, empty database).
    match &config.database_url {
        DatabaseUrl::Sqlite { path: file } if !Path::new(file).exists() => {
            anyhow::bail!("there is no database at {}", config.database_url)
        }
        DatabaseUrl::Sqlite { .. } if path.exists() => {
            return Err(BackupError::Exists(path.to_owned()).into())
        }
        DatabaseUrl::Sqlite { .. } => {}
        _ => return Err(BackupError::NotSqlite.into()),
    }
    let db = startup::open_database(config)?;
    db.backup_to(path)?;
    let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or_default();
    let out = &mut std::io::stdout().lock();
    writeln!(
        out,
        "backed up {} to {} ({size} bytes); to restore, stop the service and serve this file",
        db.url(),
        path.display()
    )
    .context("writing to standard output")
}

/// The new password for `whom`: from standard input with `--password-stdin`, else asked
/// for on the terminal without echo.
fn new_password(source: &PasswordStdin, whom: &str) -> anyhow::Result<Password> {
    if source.password_stdin || !std::io::stdin().is_terminal() {
        return read_password(&mut std::io::stdin().lock());
    }
    prompt_password(whom, &mut |prompt| {
        rpassword::prompt_password(prompt).context("reading the password from the terminal")
    })
}

/// Asks `ask` (a prompt that does not echo) for the password, refuses a weak one at once,
/// then asks for it again: a typo nobody saw must not become the password.
fn prompt_password(
    whom: &str,
    ask: &mut dyn FnMut(&str) -> anyhow::Result<String>,
) -> anyhow::Result<Password> {
    let first = ask(&format!("New password for {whom} (not shown): "))?;
    let password = Password::parse(&first)?;
    let again = ask("The same password again: ")?;
    if again != first {
        anyhow::bail!("the two passwords differ; nothing was changed");
    }
    Ok(password)
}

/// Reads one line: the password, without its line ending, checked against the policy.
fn read_password(input: &mut impl BufRead) -> anyhow::Result<Password> {
    if std::io::stdin().is_terminal() {
        eprintln!(
            "gatehouse: type the password and press Enter (it is shown as typed; without \
             --password-stdin it is asked for unseen)"
        );
    }
    let mut line = String::new();
    let read = input
        .read_line(&mut line)
        .context("reading the password from standard input")?;
    if read == 0 {
        anyhow::bail!("no password on standard input (--password-stdin reads one line)");
    }
    let password = line
        .strip_suffix('\n')
        .map(|rest| rest.strip_suffix('\r').unwrap_or(rest))
        .unwrap_or(&line);
    Ok(Password::parse(password)?)
}

fn timestamp(at: DateTime<Utc>) -> String {
    Rfc3339::new(at).to_string()
}

/// `user 3 bob@example.com (approved, admin)`.
fn describe(user: &User) -> String {
    format!(
        "user {} {} ({}{})",
        user.id,
        user.email.as_str(),
        user.status,
        if user.is_admin { ", admin" } else { "" }
    )
}

fn report(out: &mut impl Write, json: bool, user: &User, line: &str) -> anyhow::Result<()> {
    if json {
        serde_json::to_writer(&mut *out, &UserPublic::from(user)).context("writing JSON")?;
        writeln!(out).context("writing to standard output")
    } else {
        writeln!(out, "{line}").context("writing to standard output")
    }
}

/// Prints the users `query` lists as one JSON array (the HTTP API's `UserPublic`s, byte for
/// byte as `GET /users` writes them) and a line end, each user as the store reads it: a
/// list of any length is never held whole. A failure half-way (the database, a closed
/// pipe) leaves the array unfinished on standard output and exits 1.
fn print_json_array(
    out: &mut impl Write,
    service: &UserService,
    query: &UserQuery,
) -> anyhow::Result<()> {
    let mut array = JsonArray {
        out: std::io::BufWriter::with_capacity(64 * 1024, out),
        items: 0,
        failed: None,
    };
    let listed = service.each_user(Actor::Operator, query, &mut array);
    if let Some(error) = array.failed.take() {
        return Err(anyhow::Error::new(error).context("writing to standard output"));
    }
    listed?;
    array
        .out
        .write_all(b"]\n")
        .context("writing to standard output")?;
    array.out.flush().context("writing to standard output")
}

/// Writes a listing to `out` as a JSON array, without its closing `]`.
struct JsonArray<W: Write> {
    out: W,
    items: u64,
    /// Why writing failed (the listing stops at once).
    failed: Option<std::io::Error>,
}

impl<W: Write> JsonArray<W> {
    fn written(&mut self, outcome: std::io::Result<()>) -> Result<(), gatehouse_domain::Error> {
        outcome.map_err(|e| {
            self.failed = Some(e);
            gatehouse_domain::Error::internal("printing a listing", "standard output failed")
        })
    }
}

impl<W: Write> Listing<User> for JsonArray<W> {
    fn total(&mut self, _total: u64) -> Result<(), gatehouse_domain::Error> {
        let outcome = self.out.write_all(b"[");
        self.written(outcome)
    }

    fn item(&mut self, user: User) -> Result<(), gatehouse_domain::Error> {
        let mut outcome = Ok(());
        if self.items > 0 {
            outcome = self.out.write_all(b",");
        }
        self.items += 1;
        if outcome.is_ok() {
            outcome = serde_json::to_writer(&mut self.out, &UserPublic::from(&user))
                .map_err(std::io::Error::from);
        }
        self.written(outcome)
    }
}

/// An aligned table, one user a row.
fn print_table(out: &mut impl Write, users: &[User]) -> anyhow::Result<()> {
    let rows: Vec<[String; 9]> = users
        .iter()
        .map(|user| {
            [
                user.id.to_string(),
                user.email.as_str().to_owned(),
                if user.is_admin { "yes" } else { "no" }.to_owned(),
                user.status.to_string(),
                if user.email_verified { "yes" } else { "no" }.to_owned(),
                if user.mfa_enabled { "yes" } else { "no" }.to_owned(),
                timestamp(user.created_at),
                user.approved_at.map_or_else(|| "-".to_owned(), timestamp),
                user.approved_by
                    .map_or_else(|| "-".to_owned(), |id| id.to_string()),
            ]
        })
        .collect();
    let header = [
        "ID",
        "EMAIL",
        "ADMIN",
        "STATUS",
        "VERIFIED",
        "MFA",
        "CREATED",
        "APPROVED",
        "APPROVED BY",
    ];
    aligned(out, header, &rows)?;
    if rows.is_empty() {
        writeln!(out, "(no users)").context("writing to standard output")?;
    }
    Ok(())
}

/// Writes `header` and `rows` as columns padded to their widest cell, two spaces apart.
pub(crate) fn aligned<const N: usize>(
    out: &mut impl Write,
    header: [&str; N],
    rows: &[[String; N]],
) -> anyhow::Result<()> {
    let mut widths = header.map(|cell| cell.chars().count());
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let header = header.map(str::to_owned);
    for row in std::iter::once(&header).chain(rows) {
        let cells: Vec<String> = row
            .iter()
            .zip(widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        writeln!(out, "{}", cells.join("  ").trim_end()).context("writing to standard output")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(input: &str) -> Result<String, String> {
        read_password(&mut input.as_bytes())
            .map(|p| p.expose().to_owned())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn the_password_is_one_line_without_its_ending() {
        assert_eq!(read("tr0mbone-kettle\n"), Ok("tr0mbone-kettle".into()));
        assert_eq!(read("tr0mbone-kettle\r\n"), Ok("tr0mbone-kettle".into()));
        assert_eq!(read("tr0mbone-kettle"), Ok("tr0mbone-kettle".into()));
        assert_eq!(
            read("tr0mbone-kettle\nsecond line\n"),
            Ok("tr0mbone-kettle".into())
        );
        // Only the line ending goes: spaces are part of the password.
        assert_eq!(read(" tr0mbone-kettle \n"), Ok(" tr0mbone-kettle ".into()));
        assert!(read("").unwrap_err().contains("no password"));
        assert!(read("short\n").unwrap_err().contains("at least 8"));
        assert!(read("password123\n").unwrap_err().contains("too common"));
    }

    /// The prompt, fed answers in order; what it asked is collected.
    fn prompted(answers: &[&str]) -> (Result<String, String>, Vec<String>) {
        let mut answers = answers.iter();
        let mut asked = Vec::new();
        let outcome = prompt_password("bob@example.com", &mut |prompt| {
            asked.push(prompt.to_owned());
            answers
                .next()
                .map(|a| (*a).to_owned())
                .ok_or_else(|| anyhow::anyhow!("no more input"))
        });
        (
            outcome
                .map(|p| p.expose().to_owned())
                .map_err(|e| e.to_string()),
            asked,
        )
    }

    #[test]
    fn the_prompt_asks_twice_and_takes_the_password_only_if_both_agree() {
        let (outcome, asked) = prompted(&["tr0mbone-kettle", "tr0mbone-kettle"]);
        assert_eq!(outcome, Ok("tr0mbone-kettle".into()));
        assert_eq!(
            asked,
            [
                "New password for bob@example.com (not shown): ",
                "The same password again: "
            ]
        );
        let (outcome, _) = prompted(&["tr0mbone-kettle", "tr0mbone-kettel"]);
        assert!(outcome.unwrap_err().contains("differ"));
        // A weak password is refused before it is asked for again.
        let (outcome, asked) = prompted(&["password123", "password123"]);
        assert!(outcome.unwrap_err().contains("too common"));
        assert_eq!(asked.len(), 1);
        let (outcome, _) = prompted(&[]);
        assert!(outcome.unwrap_err().contains("no more input"));
    }
}
