//! Filling a database with users straight through the storage crate: one write transaction
//! per batch, one precomputed bcrypt hash shared by every seeded user (they never log in),
//! so 100 000 users take seconds, not the hours bcrypt at cost 12 would.

use anyhow::{Context as _, Result};
use gatehouse_domain::totp::TotpSecret;
use gatehouse_domain::{
    ChallengePurpose, DeliveryStatus, Email, EventFilter, EventType, MfaKeys, MfaToken,
    NewChallenge, NewEvent, NewUser, NewWebhook, PageQuery, PasswordHash, StoredTotp, User,
    UserQuery, UserStatus, UserStore, UserStoreExt as _, WebhookSecret, WebhookUrl,
};

/// Users inserted per transaction.
pub const BATCH: u64 = 1000;

/// The benchmark's admin, who logs in (with a real hash at the server's cost).
pub const ADMIN_EMAIL: &str = "bench-admin@example.com";
/// Its password.
pub const ADMIN_PASSWORD: &str = "bench admin password";

/// Accounts the login scenarios rotate over. Gatehouse counts every login attempt against
/// its account before checking the password (and forgives it on success), so more than
/// `GATEHOUSE_LOGIN_MAX_FAILURES` (5) logins of one account in flight at once are throttled:
/// 16 connections logging in as one user would measure the throttle, not logins. With 64
/// accounts taken in turn, an account is never in flight twice.
pub const LOGIN_ACCOUNTS: u64 = 64;
/// Their emails, as a Lua `string.format` pattern taking the account's number.
pub const LOGIN_EMAIL_PATTERN: &str = "login%03d@login.bench.example.com";

/// Accounts the refresh scenario's sessions belong to (each logged in several times: a
/// session per login). Their hashes are at the registration scenario's cost, so the logins
/// that start the sessions take milliseconds, not the seconds cost 12 would.
pub const REFRESH_ACCOUNTS: u64 = 16;

/// The email of refresh account `n`.
#[must_use]
pub fn refresh_email(n: u64) -> String {
    format!("refresh{n:02}@refresh.bench.example.com")
}

/// The email of login account `n` (as [`LOGIN_EMAIL_PATTERN`] makes it).
#[must_use]
pub fn login_email(n: u64) -> String {
    format!("login{n:03}@login.bench.example.com")
}

/// The email of the `n`-th seeded user.
#[must_use]
pub fn seeded_email(n: u64) -> String {
    format!("user{n:07}@seed.bench.example.com")
}

/// A bcrypt hash at `cost` of `password`.
///
/// # Errors
/// When bcrypt fails.
pub fn hash(password: &str, cost: u32) -> Result<PasswordHash> {
    let hash = bcrypt::hash(password, cost).context("bcrypt hash")?;
    Ok(PasswordHash::new(hash))
}

/// One hash for every seeded user: they never log in, so its cost does not matter.
///
/// # Errors
/// When bcrypt fails.
pub fn shared_seed_hash() -> Result<PasswordHash> {
    hash("seeded users never log in", 4)
}

/// How many users the store holds.
///
/// # Errors
/// Store failures.
pub fn count_users(store: &dyn UserStore) -> Result<u64> {
    store
        .read_with(|repo| repo.count_users())
        .context("counting users")
}

/// Inserts the approved admin who logs in during the benchmark (the store must be empty,
/// so that it gets id 1 as the first registered user would).
///
/// # Errors
/// Store failures.
pub fn insert_admin(store: &dyn UserStore, password_hash: &PasswordHash) -> Result<User> {
    let email = Email::parse(ADMIN_EMAIL).context("the admin's email")?;
    let now = gatehouse_domain::now();
    store
        .write_with(|repo| {
            repo.insert(NewUser {
                email: email.clone(),
                password_hash: password_hash.clone(),
                is_admin: true,
                status: UserStatus::Approved,
                created_at: now,
                approved_at: Some(now),
                approved_by: None,
                reason: None,
                email_verified: false,
            })
        })
        .context("inserting the benchmark's admin")
}

/// Inserts the [`LOGIN_ACCOUNTS`] approved users the login scenarios log in as, all with
/// `password_hash` (the admin's real hash: a bcrypt hash carries its own salt, so one hash
/// of [`ADMIN_PASSWORD`] serves every account).
///
/// # Errors
/// Store failures.
pub fn insert_login_users(store: &dyn UserStore, password_hash: &PasswordHash) -> Result<()> {
    let emails = (0..LOGIN_ACCOUNTS).map(login_email).collect::<Vec<_>>();
    insert_approved(store, &emails, password_hash).context("inserting the login accounts")
}

/// Inserts the [`REFRESH_ACCOUNTS`] approved users the refresh scenario logs in as
/// ([`refresh_email`], password [`ADMIN_PASSWORD`] hashed into `password_hash`).
///
/// # Errors
/// Store failures.
pub fn insert_refresh_users(store: &dyn UserStore, password_hash: &PasswordHash) -> Result<()> {
    let emails = (0..REFRESH_ACCOUNTS).map(refresh_email).collect::<Vec<_>>();
    insert_approved(store, &emails, password_hash).context("inserting the refresh accounts")
}

/// An approved, non-admin user, approved at `now`.
fn approved(
    email: &Email,
    password_hash: &PasswordHash,
    now: chrono::DateTime<chrono::Utc>,
) -> NewUser {
    NewUser {
        email: email.clone(),
        password_hash: password_hash.clone(),
        is_admin: false,
        status: UserStatus::Approved,
        created_at: now,
        approved_at: Some(now),
        approved_by: None,
        reason: None,
        email_verified: false,
    }
}

/// Inserts approved, non-admin users with these emails, in one transaction.
fn insert_approved(
    store: &dyn UserStore,
    emails: &[String],
    password_hash: &PasswordHash,
) -> Result<()> {
    let emails = emails
        .iter()
        .map(|e| Email::parse(e).with_context(|| format!("email {e}")))
        .collect::<Result<Vec<_>>>()?;
    store
        .write_with(|repo| {
            let now = gatehouse_domain::now();
            for email in &emails {
                repo.insert(approved(email, password_hash, now))?;
            }
            Ok(())
        })
        .context("inserting users")
}

/// Adds approved, non-admin users until the store holds `total` users, [`BATCH`] per
/// transaction; returns how many it added.
///
/// # Errors
/// Store failures.
pub fn seed_to(store: &dyn UserStore, total: u64, password_hash: &PasswordHash) -> Result<u64> {
    let start = count_users(store)?;
    let mut next = start;
    while next < total {
        let end = (next + BATCH).min(total);
        let batch = (next..end)
            .map(|n| Email::parse(&seeded_email(n)).with_context(|| format!("seeded email {n}")))
            .collect::<Result<Vec<_>>>()?;
        store
            .write_with(|repo| {
                let now = gatehouse_domain::now();
                for email in &batch {
                    repo.insert(approved(email, password_hash, now))?;
                }
                Ok(())
            })
            .with_context(|| format!("seeding users {next}..{end}"))?;
        next = end;
    }
    // The maintenance pass a server runs at start and every 10 minutes: among other
    // things it folds the per-user tally rows the inserts left into a few sums.
    let now = gatehouse_domain::now();
    store
        .write_with(|repo| repo.prune(now, now - chrono::Duration::days(1)))
        .context("the maintenance pass after seeding")?;
    Ok(next - start)
}

/// The ids of up to `limit` users, newest first (for picking lookup targets).
///
/// # Errors
/// Store failures.
pub fn some_ids(store: &dyn UserStore, limit: u64) -> Result<Vec<gatehouse_domain::UserId>> {
    let page = store
        .read_with(|repo| {
            repo.list(&UserQuery {
                limit: Some(limit),
                ..UserQuery::default()
            })
        })
        .context("listing users")?;
    Ok(page.items.into_iter().map(|user| user.id).collect())
}

/// Inserts `n` one-use invitations (valid for a day, made by nobody: as from the command
/// line) and returns their codes, for registrations with an invitation each: the way
/// invitations are mostly used, one per person.
///
/// # Errors
/// Store failures.
pub fn one_use_invitations(store: &dyn UserStore, n: usize) -> Result<Vec<String>> {
    let mut codes = Vec::with_capacity(n);
    let now = gatehouse_domain::now();
    for start in (0..n).step_by(BATCH as usize) {
        let batch = (start..n.min(start + BATCH as usize))
            .map(|_| gatehouse_domain::InvitationCode::generate())
            .collect::<Result<Vec<_>, _>>()
            .context("making invitation codes")?;
        store
            .write_with(|repo| {
                for code in &batch {
                    repo.insert_invitation(&gatehouse_domain::NewInvitation {
                        code_hash: code.hash(),
                        email: None,
                        is_admin: false,
                        note: None,
                        created_at: now,
                        created_by: None,
                        expires_at: now + chrono::Duration::days(1),
                        max_uses: 1,
                    })?;
                }
                Ok(())
            })
            .context("inserting invitations")?;
        codes.extend(batch.iter().map(|c| c.expose().to_owned()));
    }
    Ok(codes)
}

/// Accounts the passkey logins rotate over (as the password logins do, so that no
/// account is in flight twice at 16 connections).
pub const PASSKEY_ACCOUNTS: u64 = 64;

/// The email of passkey account `n`.
#[must_use]
pub fn passkey_email(n: u64) -> String {
    format!("passkey{n:03}@passkey.bench.example.com")
}

/// Inserts the [`PASSKEY_ACCOUNTS`] approved users who register a passkey each over HTTP
/// ([`passkey_email`], password [`ADMIN_PASSWORD`] hashed into `password_hash`).
///
/// # Errors
/// Store failures.
pub fn insert_passkey_users(store: &dyn UserStore, password_hash: &PasswordHash) -> Result<()> {
    let emails = (0..PASSKEY_ACCOUNTS).map(passkey_email).collect::<Vec<_>>();
    insert_approved(store, &emails, password_hash).context("inserting the passkey accounts")
}

/// A login waiting for its second step, as seeded: the `mfa_token` its password login
/// would have answered, and its account's TOTP secret (to compute the code when it is
/// sent).
#[derive(Debug)]
pub struct WaitingLogin {
    /// The `mfa_token`.
    pub token: MfaToken,
    /// The account's TOTP secret.
    pub secret: TotpSecret,
}

/// Inserts `n` approved users (emails `mfa-PREFIX-N@mfa.bench.example.com`), each with a
/// confirmed TOTP factor sealed under `keys` (the server's, derived from its JWT secret)
/// and one login waiting for its second step (an `mfa_token` alive for
/// [`MFA_TOKEN_TTL`](gatehouse_domain::MFA_TOKEN_TTL)), [`BATCH`] per transaction: what a
/// password login of each would have left, without the bcrypt of `n` logins. Each account
/// takes one second step: a TOTP step is accepted once per account.
///
/// # Errors
/// Store failures.
pub fn waiting_logins(
    store: &dyn UserStore,
    keys: &MfaKeys,
    prefix: &str,
    n: u64,
    password_hash: &PasswordHash,
) -> Result<Vec<WaitingLogin>> {
    let mut logins = Vec::with_capacity(n as usize);
    for start in (0..n).step_by(BATCH as usize) {
        let emails = (start..n.min(start + BATCH))
            .map(|i| {
                let email = format!("mfa-{prefix}-{i:06}@mfa.bench.example.com");
                Email::parse(&email).with_context(|| format!("email {email}"))
            })
            .collect::<Result<Vec<_>>>()?;
        let batch = store
            .write_with(|repo| {
                let now = gatehouse_domain::now();
                let mut batch = Vec::with_capacity(emails.len());
                for email in &emails {
                    let user = repo.insert(approved(email, password_hash, now))?;
                    let secret = TotpSecret::generate()?;
                    repo.put_totp(&StoredTotp {
                        user_id: user.id,
                        secret: keys.seal_totp(user.id, &secret)?,
                        confirmed_at: Some(now),
                        last_step: None,
                        created_at: now,
                    })?;
                    let token = MfaToken::generate()?;
                    repo.insert_challenge(&NewChallenge {
                        token_hash: token.hash(),
                        purpose: ChallengePurpose::LoginMfa,
                        user_id: Some(user.id),
                        state: None,
                        created_at: now,
                        expires_at: now + gatehouse_domain::MFA_TOKEN_TTL,
                    })?;
                    batch.push(WaitingLogin { token, secret });
                }
                Ok(batch)
            })
            .context("inserting accounts with TOTP and their waiting logins")?;
        logins.extend(batch);
    }
    Ok(logins)
}

/// The email of user `n` of the admin-change scenario's run `run`.
#[must_use]
pub fn change_email(run: u32, n: u64) -> String {
    format!("change{run}-{n:04}@changes.bench.example.com")
}

/// Inserts `n` approved, non-admin users for run `run` of the admin-change scenario (each
/// run toggles users of its own, all approved when it starts: see change.lua), in one
/// transaction; returns their ids.
///
/// # Errors
/// Store failures.
pub fn insert_change_users(
    store: &dyn UserStore,
    run: u32,
    n: u64,
    password_hash: &PasswordHash,
) -> Result<Vec<i64>> {
    let emails = (0..n)
        .map(|i| Email::parse(&change_email(run, i)).with_context(|| format!("change user {i}")))
        .collect::<Result<Vec<_>>>()?;
    store
        .write_with(|repo| {
            let now = gatehouse_domain::now();
            let mut ids = Vec::with_capacity(emails.len());
            for email in &emails {
                let user = repo.insert(approved(email, password_hash, now))?;
                ids.push(user.id.get());
            }
            Ok(ids)
        })
        .context("inserting the admin-change scenario's users")
}

/// A backlog of the outbox, written as Gatehouse writes events (see [`outbox_backlog`]).
#[derive(Debug, Clone)]
pub struct Backlog {
    /// The endpoint every event goes to.
    pub webhook: i64,
    /// The events' ids (each delivery's `webhook-id`).
    pub event_ids: Vec<String>,
    /// One event's JSON body, as the endpoint is sent it.
    pub payload: String,
}

/// Adds a webhook endpoint at `url` (active, subscribed to every event; a private address
/// allowed) and `n` `webhook.test` events about the benchmark's admin, [`BATCH`] per
/// transaction, each with its delivery to that endpoint (and to any other active endpoint
/// subscribed: there should be none), as `UserRepo::append_event` writes them.
///
/// # Errors
/// When `url` is not one an endpoint may have; store failures.
pub fn outbox_backlog(store: &dyn UserStore, url: &str, n: u64) -> Result<Backlog> {
    let url = WebhookUrl::parse(url, true)
        .map_err(|e| anyhow::anyhow!("the receiver's URL {url}: {e}"))?;
    let secret = WebhookSecret::generate().context("a webhook secret")?;
    let admin_email = Email::parse(ADMIN_EMAIL).context("the admin's email")?;
    let (webhook, admin) = store
        .write_with(|repo| {
            let admin = repo.find_by_email(&admin_email)?;
            let webhook = repo.insert_webhook(&NewWebhook {
                url: url.clone(),
                events: EventFilter::All,
                description: Some("gatehouse-bench: the backlog".into()),
                secret: secret.clone(),
                created_at: gatehouse_domain::now(),
            })?;
            Ok((webhook, admin))
        })
        .context("adding the backlog's endpoint")?;
    let admin = admin.context("the benchmark's admin is not in the database")?;
    let mut event_ids = Vec::with_capacity(n as usize);
    let mut payload = String::new();
    let mut start = 0;
    while start < n {
        let end = (start + BATCH).min(n);
        let now = gatehouse_domain::now();
        let events = (start..end)
            .map(|_| NewEvent::about(EventType::WebhookTest, &admin, None, now))
            .collect::<Result<Vec<_>, _>>()
            .context("making events")?;
        let deliveries = store
            .write_with(|repo| {
                let mut deliveries = 0;
                for event in &events {
                    deliveries += repo.append_event(event)?;
                }
                Ok(deliveries)
            })
            .with_context(|| format!("writing events {start}..{end}"))?;
        if deliveries != end - start {
            anyhow::bail!(
                "{} events made {deliveries} deliveries, not one each: another endpoint is active",
                end - start
            );
        }
        if payload.is_empty() {
            payload = events
                .first()
                .map(|e| e.payload.clone())
                .unwrap_or_default();
        }
        event_ids.extend(events.into_iter().map(|e| e.id));
        start = end;
    }
    Ok(Backlog {
        webhook: webhook.id,
        event_ids,
        payload,
    })
}

/// An endpoint's deliveries by status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct DeliveryCounts {
    /// Every delivery in its log.
    pub total: u64,
    /// Delivered (a 2xx came).
    pub delivered: u64,
    /// Not yet.
    pub pending: u64,
    /// Given up.
    pub failed: u64,
}

/// How the deliveries of endpoint `webhook` stand (its whole log, read through storage).
///
/// # Errors
/// Store failures.
pub fn delivery_counts(store: &dyn UserStore, webhook: i64) -> Result<DeliveryCounts> {
    let page = store
        .read_with(|repo| repo.list_deliveries(webhook, &PageQuery::default()))
        .context("listing deliveries")?;
    let mut counts = DeliveryCounts {
        total: page.total,
        ..DeliveryCounts::default()
    };
    for delivery in &page.items {
        match delivery.status {
            DeliveryStatus::Delivered => counts.delivered += 1,
            DeliveryStatus::Pending => counts.pending += 1,
            DeliveryStatus::Failed => counts.failed += 1,
        }
    }
    Ok(counts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::BenchDatabase;

    #[test]
    fn seeds_an_sqlite_database_in_batches() {
        let db = BenchDatabase::sqlite().unwrap();
        let store = db.open().unwrap();
        let admin = insert_admin(&store, &shared_seed_hash().unwrap()).unwrap();
        assert_eq!(admin.id.get(), 1);
        let hash = shared_seed_hash().unwrap();
        insert_login_users(&store, &hash).unwrap();
        assert_eq!(count_users(&store).unwrap(), 1 + LOGIN_ACCOUNTS);
        insert_refresh_users(&store, &hash).unwrap();
        assert_eq!(
            count_users(&store).unwrap(),
            1 + LOGIN_ACCOUNTS + REFRESH_ACCOUNTS
        );
        assert_eq!(
            seed_to(&store, 2_345, &hash).unwrap(),
            2_344 - LOGIN_ACCOUNTS - REFRESH_ACCOUNTS
        );
        assert_eq!(count_users(&store).unwrap(), 2_345);
        assert_eq!(seed_to(&store, 2_345, &hash).unwrap(), 0);
        assert_eq!(some_ids(&store, 3).unwrap().len(), 3);
    }

    #[test]
    fn writes_change_users_and_a_backlog() {
        let db = BenchDatabase::sqlite().unwrap();
        let store = db.open().unwrap();
        let hash = shared_seed_hash().unwrap();
        insert_admin(&store, &hash).unwrap();
        let ids = insert_change_users(&store, 2, 5, &hash).unwrap();
        assert_eq!(ids.len(), 5);
        assert_eq!(count_users(&store).unwrap(), 6);
        let backlog = outbox_backlog(&store, "http://127.0.0.1:9/hook", 1_500).unwrap();
        assert_eq!(backlog.event_ids.len(), 1_500);
        assert!(backlog.payload.contains("webhook.test"));
        let counts = delivery_counts(&store, backlog.webhook).unwrap();
        assert_eq!(
            (
                counts.total,
                counts.pending,
                counts.delivered,
                counts.failed
            ),
            (1_500, 1_500, 0, 0)
        );
    }

    #[test]
    fn seeded_emails_are_valid_and_distinct() {
        let a = Email::parse(&seeded_email(0)).unwrap();
        let b = Email::parse(&seeded_email(99_999)).unwrap();
        assert_ne!(a, b);
        Email::parse(&refresh_email(REFRESH_ACCOUNTS - 1)).unwrap();
        let login = Email::parse(&login_email(LOGIN_ACCOUNTS - 1)).unwrap();
        assert_eq!(
            login.as_str(),
            LOGIN_EMAIL_PATTERN.replace("%03d", &format!("{:03}", LOGIN_ACCOUNTS - 1))
        );
    }
}
