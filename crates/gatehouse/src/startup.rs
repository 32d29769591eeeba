//! Building and running the service from a [`Config`].

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::Instant;

use actix_web::dev::{Server, Service};
use actix_web::{App, HttpServer};
use anyhow::Context;
use gatehouse_domain::{BcryptHasher, Hs256Tokens, JwtSecret, UserService};
use gatehouse_http::{AppState, HashingPool};
use gatehouse_storage::{Database, PoolOptions};
use tracing_actix_web::TracingLogger;

use crate::config::Config;

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
    };
    Database::open(&config.database_url, options)
        .with_context(|| format!("opening {}", config.database_url))
}

/// The configured JWT secret, or the one stored in the database, generated and stored
/// now if this is the first start. Every instance sharing the database agrees on it.
fn jwt_secret(config: &Config, db: &Database) -> anyhow::Result<JwtSecret> {
    if let Some(secret) = &config.jwt_secret {
        return Ok(secret.clone());
    }
    let candidate = JwtSecret::generate()?;
    let candidate = std::str::from_utf8(candidate.expose()).context("generated secret")?;
    let stored = db
        .setting_or_insert(JWT_SECRET_SETTING, candidate)
        .context("storing the generated JWT secret")?;
    JwtSecret::new(stored.into_bytes())
        .context("the JWT secret stored in the database is too short")
}

/// A bound, not yet running, service.
pub struct Application {
    server: Server,
    addr: SocketAddr,
}

impl Application {
    /// Opens the database, wires the use cases and binds the listener (port 0 picks a
    /// free port; [`addr`](Self::addr) tells which).
    ///
    /// # Errors
    /// When the database cannot be opened or the address cannot be bound.
    pub fn build(config: &Config) -> anyhow::Result<Self> {
        let db = open_database(config)?;
        let secret = jwt_secret(config, &db)?;
        let tokens = Hs256Tokens::new(&secret, config.token_ttl)?;
        let hasher = BcryptHasher::new(config.bcrypt_cost)?;
        let users = UserService::new(Arc::new(db), Arc::new(hasher), Arc::new(tokens));
        let state = AppState::new(users, HashingPool::for_this_machine());

        let listener = TcpListener::bind(&config.bind)
            .with_context(|| format!("cannot listen on {}", config.bind))?;
        let addr = listener.local_addr()?;
        let server = HttpServer::new(move || {
            App::new()
                .wrap_fn(|req, srv| {
                    let started = Instant::now();
                    let method = req.method().clone();
                    let path = req.path().to_owned();
                    let response = srv.call(req);
                    async move {
                        let response = response.await?;
                        tracing::info!(
                            %method,
                            %path,
                            status = response.status().as_u16(),
                            elapsed_ms = started.elapsed().as_secs_f64() * 1000.0,
                            "request"
                        );
                        Ok(response)
                    }
                })
                .wrap(TracingLogger::default())
                .configure(gatehouse_http::configure(state.clone()))
        })
        .shutdown_timeout(10)
        .listen(listener)?
        .run();
        Ok(Self { server, addr })
    }

    /// Serves until SIGTERM or SIGINT, then finishes in-flight requests (10 s at most).
    ///
    /// # Errors
    /// When the server fails.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        tracing::info!("listening on http://{}", self.addr);
        self.server.await.context("serving HTTP")?;
        tracing::info!("stopped");
        Ok(())
    }
}
