//! Building and running the service from a [`Config`].

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;

use actix_web::dev::Server;
use actix_web::{App, HttpServer};
use anyhow::Context;
use gatehouse_domain::{
    BcryptHasher, Ed25519Tokens, Hs256Tokens, JwtSecret, MailPolicy, MfaKeys, MfaPolicy,
    RecoveryPolicy, RetryPolicy, TokenService, UserService,
};
use gatehouse_http::{AppState, HashingPool, MailSettings, MetricsToken};
use gatehouse_storage::{Database, PoolOptions};
use secrecy::ExposeSecret;

use crate::config::{AccessLog, Config, JwtAlgorithm};
use crate::dispatcher::{DispatchOptions, Dispatcher};
use crate::mailer::Mailer;

/// How often every instance reloads the signing keys (to pick up a rotation).
const KEY_RELOAD_EVERY: std::time::Duration = std::time::Duration::from_secs(30);
/// How often expired revocations and idle throttling counters are pruned.
const PRUNE_EVERY: std::time::Duration = std::time::Duration::from_secs(600);

/// How often to prune: every [`PRUNE_EVERY`], or often enough that no audit entry outlives
/// a short retention by more than half of it (at most once a second).
fn prune_interval(audit_retention: Option<std::time::Duration>) -> std::time::Duration {
    audit_retention.map_or(PRUNE_EVERY, |retention| {
        (retention / 2).clamp(std::time::Duration::from_secs(1), PRUNE_EVERY)
    })
}

/// The name under which a generated JWT secret is stored.
const JWT_SECRET_SETTING: &str = "jwt_secret";

/// Opens (and migrates) the database named by the configuration.
///
/// # Errors
/// When the database cannot be opened or migrated.
pub fn open_database(config: &Config) -> anyhow::Result<Database> {
    let options = PoolOptions {
        max_size: config.pool_size,
        timeout: config.connect_timeout,
        connect_timeout: config.connect_timeout,
        statement_timeout: config.statement_timeout,
        ..PoolOptions::default()
    };
    Database::open(&config.database_url, options)
        .with_context(|| format!("opening {}", config.database_url))
}

/// The configured JWT secret, or the one stored in the database, generated and stored
/// now if this is the first start. Every instance sharing the database agrees on it.
fn jwt_secret(config: &Config, db: &Database) -> anyhow::Result<JwtSecret> {
    if let Some(secret) = &config.jwt_secret {
        return JwtSecret::new(secret.expose_secret().as_bytes())
            .context("GATEHOUSE_JWT_SECRET was checked when read");
    }
    let candidate = JwtSecret::generate()?;
    let candidate = std::str::from_utf8(candidate.expose()).context("generated secret")?;
    let stored = db
        .setting_or_insert(JWT_SECRET_SETTING, candidate)
        .context("storing the generated JWT secret")?;
    JwtSecret::new(stored.into_bytes())
        .context("the JWT secret stored in the database is too short")
}

/// A background thread that keeps the key ring current (EdDSA) and prunes stale rows.
/// Failures are logged and retried at the next tick; the thread never stops the service.
fn spawn_maintenance(
    db: Database,
    users: UserService,
    eddsa: Option<Arc<Ed25519Tokens>>,
    prune_every: std::time::Duration,
) {
    let tick = KEY_RELOAD_EVERY.min(prune_every);
    let spawned = std::thread::Builder::new()
        .name("gatehouse-maintenance".into())
        .spawn(move || {
            let mut since_prune = prune_every;
            let mut since_reload = KEY_RELOAD_EVERY;
            loop {
                if since_prune >= prune_every {
                    since_prune = std::time::Duration::ZERO;
                    match users.prune(gatehouse_domain::now()) {
                        Ok(pruned) => {
                            tracing::debug!(pruned, "pruned ended and expired sessions, counters, device tokens and old audit entries")
                        }
                        Err(e) => tracing::warn!(error = %e, "pruning failed"),
                    }
                }
                if since_reload >= KEY_RELOAD_EVERY {
                    since_reload = std::time::Duration::ZERO;
                    if let Some(tokens) = &eddsa {
                        let reloaded = db
                            .signing_keys()
                            .and_then(|keys| tokens.replace_keys(&keys, gatehouse_domain::now()));
                        if let Err(e) = reloaded {
                            tracing::warn!(error = %e, "reloading the signing keys failed");
                        }
                    }
                }
                std::thread::sleep(tick);
                since_prune += tick;
                since_reload += tick;
            }
        });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "cannot start the maintenance thread");
    }
}

/// Adds a new Ed25519 signing key that starts signing after `delay` (every instance
/// reloads keys every 30 s, so all of them know it by then); older keys keep verifying
/// until their tokens expire. Returns the new key's id.
///
/// # Errors
/// When the database cannot be opened or written.
pub fn rotate_signing_key(config: &Config, delay: chrono::Duration) -> anyhow::Result<String> {
    let db = open_database(config)?;
    db.signing_keys_or_generate()
        .context("loading the signing keys")?;
    let now = gatehouse_domain::now();
    let key = gatehouse_domain::SigningKey::generate(now, now + delay)?;
    db.add_signing_key(&key)
        .context("storing the new signing key")?;
    Ok(key.kid)
}

/// The use cases over `db`, wired as `serve` wires them (the command line uses them too),
/// and the EdDSA key ring when that algorithm is configured (the service reloads it).
///
/// # Errors
/// When the JWT secret or the signing keys cannot be loaded or stored.
pub fn user_service(
    config: &Config,
    db: &Database,
) -> anyhow::Result<(UserService, Option<Arc<Ed25519Tokens>>)> {
    let (tokens, eddsa): (Arc<dyn TokenService>, _) = match config.jwt_algorithm {
        JwtAlgorithm::Hs256 => {
            let secret = jwt_secret(config, db)?;
            (Arc::new(Hs256Tokens::new(&secret, config.token_ttl)?), None)
        }
        JwtAlgorithm::EdDsa => {
            let keys = db
                .signing_keys_or_generate()
                .context("loading the signing keys")?;
            let tokens = Arc::new(Ed25519Tokens::new(
                &keys,
                config.token_ttl,
                gatehouse_domain::now(),
            )?);
            (tokens.clone() as Arc<dyn TokenService>, Some(tokens))
        }
    };
    // The second factor's keys come from the JWT secret (configured, or generated and
    // stored at the first start), whatever signs the tokens.
    let mfa_keys = MfaKeys::derive(jwt_secret(config, db)?.expose())?;
    let hasher = BcryptHasher::new(config.bcrypt_cost)?;
    let users = UserService::new(Arc::new(db.clone()), Arc::new(hasher), tokens)
        .with_throttle(config.throttle())
        .with_registration_mode(config.registration)
        .with_session_policy(gatehouse_domain::SessionPolicy {
            idle: config.session_idle_ttl,
            max_age: config.session_max_age,
        })
        .with_mfa(MfaPolicy {
            keys: mfa_keys,
            issuer: config
                .public_url
                .as_ref()
                .and_then(|url| url::Url::parse(url).ok())
                .and_then(|url| url.host_str().map(str::to_owned))
                .unwrap_or_else(|| "Gatehouse".to_owned()),
            require_for_admins: config.require_mfa_for_admins,
        })
        .with_audit_retention(
            config
                .audit_retention
                .and_then(|retention| chrono::Duration::from_std(retention).ok()),
        );
    // Passkeys when the relying party can be formed (the configuration refused settings
    // that ask for one that cannot be).
    let users = match gatehouse_http::webauthn::RelyingParty::from_settings(
        config.public_url.as_deref(),
        config.webauthn_rp_id.as_deref(),
    )
    .map_err(|problem| anyhow::anyhow!("GATEHOUSE_WEBAUTHN_RP_ID {problem}"))?
    {
        Some(party) => {
            tracing::debug!(
                rp_id = party.id(),
                origin = party.origin(),
                "passkeys are on"
            );
            users.with_passkeys(Arc::new(party))
        }
        None => users,
    };
    // Mails are queued (by the command line too) only with a mailer; `serve` sends them.
    let users = if config.smtp_url.is_some() {
        users
            .with_mail(MailPolicy {
                public_url: config.public_url.clone(),
                digest_interval: chrono::Duration::from_std(config.admin_digest_interval)
                    .unwrap_or_else(|_| chrono::Duration::minutes(1)),
            })
            .with_recovery(RecoveryPolicy {
                reset_code_ttl: chrono::Duration::from_std(config.reset_code_ttl)
                    .unwrap_or(RecoveryPolicy::DEFAULT_RESET_CODE_TTL),
                require_verified_email: config.require_verified_email,
                auto_approve_domains: config.auto_approve_domains.clone(),
            })
    } else {
        users
    };
    Ok((users, eddsa))
}

/// The configured mailer, if any.
///
/// # Errors
/// A URL or sender the mailer cannot use.
pub fn mailer(config: &Config) -> anyhow::Result<Option<Mailer>> {
    match (&config.smtp_url, &config.mail_from) {
        (Some(url), Some(from)) => Ok(Some(Mailer::new(
            url,
            from,
            config.webhook_timeout,
            config.smtp_ca_file.as_ref(),
        )?)),
        _ => Ok(None),
    }
}

/// The HTTP workers (one per core, as actix-web's default, but never more than
/// `max_connections`) and the connections each may hold: actix-web bounds connections per
/// worker, so the instance's bound is split between them (rounded down, so the sum never
/// exceeds it).
fn connection_limits(max_connections: u32) -> (usize, usize) {
    let max = usize::try_from(max_connections)
        .unwrap_or(usize::MAX)
        .max(1);
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    let workers = cores.min(max);
    (workers, max / workers)
}

/// A bound, not yet running, service.
pub struct Application {
    server: Server,
    addr: SocketAddr,
    dispatcher: Option<Dispatcher>,
}

impl Application {
    /// Opens the database, wires the use cases and binds the listener (port 0 picks a
    /// free port; [`addr`](Self::addr) tells which).
    ///
    /// # Errors
    /// When the database cannot be opened or the address cannot be bound.
    pub fn build(config: &Config) -> anyhow::Result<Self> {
        let db = open_database(config)?;
        let (users, eddsa) = user_service(config, &db)?;
        let stranded = users
            .passkeys_without_relying_party()
            .context("counting the registered passkeys")?;
        if stranded > 0 {
            anyhow::bail!(
                "{stranded} passkey(s) are registered, but passkeys are off: set \
                 GATEHOUSE_PUBLIC_URL to the address people open the console at (a domain \
                 name, not an IP address), or GATEHOUSE_WEBAUTHN_RP_ID with it, so that \
                 their users can sign in with them; or remove them with \
                 `gatehouse users reset-mfa EMAIL` for each user"
            );
        }
        let wake = Dispatcher::wake_signal();
        let users = users.with_outbox_wake({
            let wake = Arc::clone(&wake);
            Arc::new(move || wake.notify_one())
        });
        let users_for_dispatch = users.clone();
        let outbox_lock = db.outbox_lock_path();

        spawn_maintenance(
            db,
            users.clone(),
            eddsa,
            prune_interval(config.audit_retention),
        );
        let threads = config
            .hashing_threads
            .map_or_else(HashingPool::cores, |n| n as usize);
        let hashing = HashingPool::with_threads_and_nice(threads, config.hashing_nice);
        let state = AppState::new(users, hashing)
            .with_trusted_proxies(config.trusted_proxies.clone())
            .with_cors_origins(config.cors_origins.clone())
            .with_public_url(config.public_url.clone())
            .with_webhook_allow_private(config.webhook_allow_private)
            .with_mail_settings(MailSettings::describe(
                config.smtp_url.as_ref().map(|url| url.expose_secret()),
                config.mail_from.as_deref(),
                config.public_url.as_deref(),
                config.admin_digest_interval,
            ))
            .with_database_slots(config.pool_size as usize)
            .with_readiness_bound(config.statement_timeout)
            .with_queue_wait(config.connect_timeout)
            .with_metrics_token(
                config
                    .metrics_token
                    .as_ref()
                    .map(|token| MetricsToken::new(token.expose_secret()))
                    .transpose()
                    .map_err(anyhow::Error::msg)?,
            )
            .with_body_timeout(config.body_timeout)
            .with_access_log(config.access_log == AccessLog::On)
            .with_dropped_log_lines(crate::telemetry::dropped_lines);
        let dispatcher = Dispatcher::start(
            users_for_dispatch,
            wake,
            DispatchOptions {
                timeout: config.webhook_timeout,
                retry: RetryPolicy::new(config.webhook_retry_delays.clone()),
                allow_private: config.webhook_allow_private,
                poll: crate::dispatcher::POLL,
                counter: Some(state.delivery_counter()),
                mailer: mailer(config)?,
                sole_lock: outbox_lock,
            },
        )
        .context("starting the outbox's dispatcher")?;

        let listener = TcpListener::bind(&config.bind)
            .with_context(|| format!("cannot listen on {}", config.bind))?;
        let addr = listener.local_addr()?;
        let (workers, per_worker) = connection_limits(config.max_connections);
        let server =
            HttpServer::new(move || App::new().configure(gatehouse_http::configure(state.clone())))
                .workers(workers)
                .max_connections(per_worker)
                // A streamed listing writes its body a chunk at a time, the last one small:
                // with Nagle's algorithm on, that last write waited for the client's delayed
                // ACK of the one before (40 ms on Linux), so every unpaged listing of 2 000
                // users took 44 ms at one connection (2.5 ms of it work). Whole responses
                // are written at once and lose nothing by it.
                .tcp_nodelay(true)
                .shutdown_timeout(10)
                .listen(listener)?
                .run();
        Ok(Self {
            server,
            addr,
            dispatcher: Some(dispatcher),
        })
    }

    /// Serves until SIGTERM or SIGINT, then finishes in-flight requests (10 s at most).
    ///
    /// # Errors
    /// When the server fails.
    pub async fn run_until_stopped(mut self) -> anyhow::Result<()> {
        tracing::info!("listening on http://{}", self.addr);
        let served = self.server.await.context("serving HTTP");
        // Then the webhook attempts in flight finish and are recorded.
        if let Some(dispatcher) = self.dispatcher.take() {
            actix_web::rt::task::spawn_blocking(move || dispatcher.stop())
                .await
                .context("stopping the outbox's dispatcher")?;
        }
        served?;
        tracing::info!("stopped");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_connection_bound_is_split_between_the_workers_without_exceeding_it() {
        for max in [1, 2, 3, 7, 100, 10_000, 1_000_000] {
            let (workers, per_worker) = connection_limits(max);
            assert!(workers >= 1 && per_worker >= 1, "{max}");
            assert!(workers * per_worker <= max as usize, "{max}");
            assert!(workers <= max as usize);
        }
    }
}
