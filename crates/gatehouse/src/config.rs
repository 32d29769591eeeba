//! The service's configuration: one struct, [`Config`], whose fields are the settings.
//!
//! A setting's key is its field's serde name (`bind`, `bcrypt_cost`, …); its environment
//! variable is the key in upper case after `GATEHOUSE_` (`RUST_LOG` for `rust_log`). figment
//! layers three sources, each later one winning per key: the defaults ([`DEFAULTS`]), the
//! TOML file `GATEHOUSE_CONFIG` names, and the environment. Every value reaches serde as the
//! string the environment variable would hold (a TOML integer as its digits, a list as
//! comma-separated items), so both layers go through the same parsers: the domain's
//! newtypes (`#[serde(try_from = "String")]`) and the `deserialize_with` functions below.
//!
//! serde stops at a struct's first bad field, so each setting set outside the defaults is
//! also tried alone over the defaults: every problem is reported, one line each, naming the
//! variable and where its value came from (figment's metadata). Secrets are kept as
//! [`SecretString`] and never appear in an error, a `Debug` or [`Config::describe`].

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::value::{Dict, Map, Value};
use figment::{Figment, Metadata, Profile, Provider, Source};
use gatehouse_domain::{BcryptCost, JwtSecret, RegistrationMode, ThrottlePolicy, TokenTtl};
use gatehouse_http::{MetricsToken, TrustedProxies};
use gatehouse_storage::DatabaseUrl;
use secrecy::{ExposeSecret, SecretString};
use serde::de::{Deserializer, Error as _};
use serde::Deserialize;

/// The variable naming the configuration file.
pub const CONFIG_VARIABLE: &str = "GATEHOUSE_CONFIG";

/// Every setting: adding one is adding a field here, with its doc comment, and its default
/// to [`DEFAULTS`] (a field without a default is an `Option`). The field's order is the order
/// of `check-config`'s lines and of the errors.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `GATEHOUSE_BIND`: the address to listen on, HOST:PORT (port 0 picks a free one).
    #[serde(deserialize_with = "bind")]
    pub bind: String,
    /// `GATEHOUSE_DATABASE_URL`: `sqlite://PATH` or `postgres://USER:PASSWORD@HOST/DB`. Its
    /// `Display` and `Debug` mask the password, in the userinfo and in a `password=` parameter.
    #[serde(deserialize_with = "parsed")]
    pub database_url: DatabaseUrl,
    /// `GATEHOUSE_JWT_SECRET`: at least 32 bytes; generated once and stored in the database
    /// when unset.
    #[serde(default, deserialize_with = "jwt_secret")]
    pub jwt_secret: Option<SecretString>,
    /// `GATEHOUSE_TOKEN_TTL`: how long an access token is valid (a session lives on through
    /// its refresh tokens).
    #[serde(deserialize_with = "parsed")]
    pub token_ttl: TokenTtl,
    /// `GATEHOUSE_SESSION_IDLE_TTL`: how long a session lives after its last refresh.
    #[serde(deserialize_with = "parsed")]
    pub session_idle_ttl: TokenTtl,
    /// `GATEHOUSE_SESSION_MAX_AGE`: how long a session lives at most after its login.
    #[serde(deserialize_with = "parsed")]
    pub session_max_age: TokenTtl,
    /// `GATEHOUSE_BCRYPT_COST`.
    pub bcrypt_cost: BcryptCost,
    /// `GATEHOUSE_DATABASE_POOL_SIZE`: connections per instance.
    #[serde(
        rename = "database_pool_size",
        deserialize_with = "integer::<_, _, 1, 1000>"
    )]
    pub pool_size: u32,
    /// `GATEHOUSE_DATABASE_CONNECT_TIMEOUT`: how long opening a connection, or waiting
    /// for a free one, may take before a request is answered 503.
    #[serde(rename = "database_connect_timeout", deserialize_with = "timeout")]
    pub connect_timeout: Duration,
    /// `GATEHOUSE_DATABASE_STATEMENT_TIMEOUT`: how long one database call (a statement, a
    /// COMMIT, the pool's check, a batch of session lookups) may wait for PostgreSQL's
    /// answer before its connection is dropped and the request answered 503.
    #[serde(rename = "database_statement_timeout", deserialize_with = "timeout")]
    pub statement_timeout: Duration,
    /// `GATEHOUSE_BODY_TIMEOUT`: how long a request body may take to arrive after the
    /// request's head before the request is answered 408 and the connection closed; and how
    /// long a streamed listing waits for a client that stopped reading before it is cut
    /// short and its database connection released.
    #[serde(deserialize_with = "timeout")]
    pub body_timeout: Duration,
    /// `GATEHOUSE_MAX_CONNECTIONS`: open connections per instance; more wait to be accepted.
    #[serde(deserialize_with = "integer::<_, _, 1, 1_000_000>")]
    pub max_connections: u32,
    /// `GATEHOUSE_METRICS_TOKEN`: the bearer token `/metrics` requires; open when unset.
    #[serde(default, deserialize_with = "metrics_token")]
    pub metrics_token: Option<SecretString>,
    /// `GATEHOUSE_JWT_ALGORITHM`.
    pub jwt_algorithm: JwtAlgorithm,
    /// `GATEHOUSE_LOGIN_MAX_FAILURES`: failed logins per account before a backoff.
    #[serde(deserialize_with = "integer::<_, _, 1, 1000>")]
    pub login_max_failures: u32,
    /// `GATEHOUSE_LOGIN_MAX_FAILURES_PER_ADDRESS`: failed logins per client address per
    /// 15 minutes.
    #[serde(deserialize_with = "integer::<_, _, 1, 1_000_000>")]
    pub login_max_failures_per_address: u32,
    /// `GATEHOUSE_REGISTER_LIMIT_PER_HOUR`: registrations per client address; 0 is no limit.
    #[serde(deserialize_with = "integer::<_, _, 0, 1_000_000>")]
    pub register_limit_per_hour: u32,
    /// `GATEHOUSE_HASHING_THREADS`: bcrypt hashes at once, the share of the cores logins
    /// and registrations may take; `None` for one per core.
    #[serde(default, deserialize_with = "some_integer::<_, _, 1, 256>")]
    pub hashing_threads: Option<u32>,
    /// `GATEHOUSE_HASHING_NICE`: how far below the request threads the bcrypt threads run
    /// (0 = the same priority, 19 = the lowest).
    #[serde(deserialize_with = "integer::<_, _, 0, 19>")]
    pub hashing_nice: u8,
    /// `GATEHOUSE_TRUSTED_PROXIES`: IPs or CIDR ranges whose `X-Forwarded-For` is believed.
    #[serde(deserialize_with = "trusted_proxies")]
    pub trusted_proxies: TrustedProxies,
    /// `GATEHOUSE_CORS_ORIGINS`: the origins allowed cross-origin requests; CORS is off
    /// when empty.
    #[serde(deserialize_with = "origins")]
    pub cors_origins: Vec<String>,
    /// `RUST_LOG`: the log filter.
    #[serde(rename = "rust_log", deserialize_with = "log_filter")]
    pub log_filter: String,
    /// `GATEHOUSE_LOG_FORMAT`.
    pub log_format: LogFormat,
    /// `GATEHOUSE_ACCESS_LOG`: one line per request at `info`, or none.
    pub access_log: AccessLog,
    /// `GATEHOUSE_AUDIT_RETENTION`: how long audit entries are kept; `None` keeps them all.
    #[serde(deserialize_with = "retention")]
    pub audit_retention: Option<Duration>,
    /// `GATEHOUSE_REGISTRATION`: who may register on their own: `open` (anyone, then waits
    /// for approval), `invite_only` (with an invitation) or `closed` (nobody). The very
    /// first user always may.
    #[serde(deserialize_with = "parsed")]
    pub registration: RegistrationMode,
    /// `GATEHOUSE_PUBLIC_URL`: the console's address as people reach it
    /// (`https://auth.example.com`), for the links Gatehouse hands out (invitations).
    #[serde(default, deserialize_with = "public_url")]
    pub public_url: Option<String>,
    /// `GATEHOUSE_WEBHOOK_TIMEOUT`: how long a webhook receiver has to answer a delivery.
    #[serde(deserialize_with = "short_duration")]
    pub webhook_timeout: Duration,
    /// `GATEHOUSE_WEBHOOK_RETRY_DELAYS`: the waits between attempts at a delivery (with
    /// jitter); when they run out the delivery is `failed`.
    #[serde(deserialize_with = "delays")]
    pub webhook_retry_delays: Vec<Duration>,
    /// `GATEHOUSE_WEBHOOK_ALLOW_PRIVATE`: whether webhooks may go to loopback, private and
    /// link-local addresses (a receiver on the same machine or LAN).
    #[serde(deserialize_with = "boolean")]
    pub webhook_allow_private: bool,
    /// `GATEHOUSE_SMTP_URL`: the mailer, `smtp://[user:pass@]host[:port]` (no TLS: a
    /// local relay), `smtp://…?tls=required` (STARTTLS) or `smtps://…` (TLS from the
    /// start); no mail is sent when unset.
    #[serde(default, deserialize_with = "smtp_url")]
    pub smtp_url: Option<SecretString>,
    /// `GATEHOUSE_MAIL_FROM`: the sender of every mail (`Gatehouse <auth@example.com>`);
    /// required with `GATEHOUSE_SMTP_URL`.
    #[serde(default, deserialize_with = "mail_from")]
    pub mail_from: Option<String>,
    /// `GATEHOUSE_SMTP_CA_FILE`: a PEM file of CA certificates the mailer trusts for the
    /// SMTP server's certificate (STARTTLS or `smtps://`) besides the Mozilla roots, for a
    /// mail server with a private CA; read and checked at start-up. Only with
    /// `GATEHOUSE_SMTP_URL`.
    #[serde(default, deserialize_with = "smtp_ca_file")]
    pub smtp_ca_file: Option<crate::mailer::CaCertificates>,
    /// `GATEHOUSE_ADMIN_DIGEST_INTERVAL`: at most one "users wait for approval" mail per
    /// admin per this long.
    #[serde(deserialize_with = "digest_interval")]
    pub admin_digest_interval: Duration,
    /// `GATEHOUSE_RESET_CODE_TTL`: how long a password reset code sent by mail lives.
    #[serde(deserialize_with = "reset_code_ttl")]
    pub reset_code_ttl: Duration,
    /// `GATEHOUSE_REQUIRE_VERIFIED_EMAIL`: an unverified user's login is refused
    /// (`email_unverified`); needs a mailer.
    #[serde(deserialize_with = "boolean")]
    pub require_verified_email: bool,
    /// `GATEHOUSE_AUTO_APPROVE_DOMAINS`: email domains whose self-registered users are
    /// approved once they verify their email; needs a mailer.
    #[serde(deserialize_with = "domains")]
    pub auto_approve_domains: Vec<String>,
    /// `GATEHOUSE_REQUIRE_MFA_FOR_ADMINS`: an admin without a second factor gets 403
    /// `mfa_enrollment_required` on the admin routes (the `/me` routes stay open).
    #[serde(deserialize_with = "boolean")]
    pub require_mfa_for_admins: bool,
    /// `GATEHOUSE_WEBAUTHN_RP_ID`: the passkeys' relying party id, a domain name that is
    /// `GATEHOUSE_PUBLIC_URL`'s host or a parent domain of it (by default that host). The
    /// origin is `GATEHOUSE_PUBLIC_URL`'s; without a public URL on a domain name there are
    /// no passkeys.
    #[serde(default, deserialize_with = "rp_id")]
    pub webauthn_rp_id: Option<String>,
    /// `GATEHOUSE_CONFIG`: the file read under the environment, if any.
    #[serde(skip)]
    pub file: Option<PathBuf>,
    /// Every setting as it is in effect and where it came from, secrets masked.
    #[serde(skip)]
    pub effective: Vec<Effective>,
}

/// The defaults, as a `gatehouse.toml` would write them. A setting absent here has none:
/// its field is an `Option`, and [`unset_meaning`] tells `check-config` what unset means.
pub const DEFAULTS: &str = r#"
bind = "127.0.0.1:8080"
database_url = "sqlite://gatehouse.db"
token_ttl = "15m"
session_idle_ttl = "30d"
session_max_age = "90d"
bcrypt_cost = 12
database_pool_size = 8
database_connect_timeout = "5s"
database_statement_timeout = "5s"
body_timeout = "10s"
max_connections = 10000
jwt_algorithm = "HS256"
login_max_failures = 5
login_max_failures_per_address = 100
register_limit_per_hour = 100
hashing_nice = 3
trusted_proxies = []
cors_origins = []
rust_log = "info"
log_format = "text"
access_log = "on"
audit_retention = "365d"
registration = "open"
webhook_timeout = "10s"
webhook_retry_delays = ["5s", "30s", "2m", "10m", "30m", "2h", "6h"]
webhook_allow_private = false
admin_digest_interval = "1m"
reset_code_ttl = "15m"
require_verified_email = false
auto_approve_domains = []
require_mfa_for_admins = false
"#;

/// The settings that may be a TOML array in the file (or a comma-separated string).
const LIST_KEYS: &[&str] = &[
    "trusted_proxies",
    "cors_origins",
    "webhook_retry_delays",
    "auto_approve_domains",
];

/// What an unset setting without default means, for `check-config`.
fn unset_meaning(key: &str) -> &'static str {
    match key {
        "jwt_secret" => "(generated)",
        "hashing_threads" => "(one per core)",
        "metrics_token" => "(none: /metrics is open)",
        "public_url" => "(none: invitations come without a link, and no passkeys)",
        "smtp_url" => "(none: no mail is sent)",
        "mail_from" => "(none)",
        "smtp_ca_file" => "(none: the Mozilla roots only)",
        "webauthn_rp_id" => "(the host of GATEHOUSE_PUBLIC_URL; no passkeys without one)",
        _ => "(unset)",
    }
}

/// How `check-config` shows a setting's value: secrets as `(set)`, the database URL with
/// its password masked, the rest as given.
fn shown(key: &str, given: &str, config: &Config) -> String {
    match key {
        "jwt_secret" | "metrics_token" => "(set)".to_owned(),
        "smtp_url" => config.smtp_url.as_ref().map_or_else(
            || "(none)".to_owned(),
            |url| shown_smtp_url(url.expose_secret()),
        ),
        "database_url" => config.database_url.to_string(),
        _ => given.trim().to_owned(),
    }
}

impl Config {
    /// The throttling policy of `login_max_failures`, `login_max_failures_per_address` and
    /// `register_limit_per_hour`.
    #[must_use]
    pub fn throttle(&self) -> ThrottlePolicy {
        ThrottlePolicy {
            max_failures: self.login_max_failures,
            max_failures_per_address: self.login_max_failures_per_address,
            register_limit_per_hour: self.register_limit_per_hour,
        }
    }
}

/// How tokens are signed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub enum JwtAlgorithm {
    /// A shared secret (`GATEHOUSE_JWT_SECRET`, or generated and stored).
    Hs256,
    /// Ed25519 key pairs, generated and stored, published at `/.well-known/jwks.json`.
    EdDsa,
}

impl TryFrom<String> for JwtAlgorithm {
    type Error = &'static str;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        match value.trim() {
            "HS256" => Ok(Self::Hs256),
            "EdDSA" => Ok(Self::EdDsa),
            _ => Err("must be HS256 or EdDSA"),
        }
    }
}

/// How log lines are written (`GATEHOUSE_LOG_FORMAT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}

impl TryFrom<String> for LogFormat {
    type Error = &'static str;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        match value.trim().to_ascii_lowercase().as_str() {
            "text" => Ok(Self::Text),
            "json" => Ok(Self::Json),
            _ => Err("must be text or json"),
        }
    }
}

/// Whether each request gets an access line (`GATEHOUSE_ACCESS_LOG`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub enum AccessLog {
    /// One line per request at `info`: method, path, route, status, time, request id.
    On,
    /// None (other log lines still carry the request id).
    Off,
}

impl TryFrom<String> for AccessLog {
    type Error = &'static str;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        match value.trim().to_ascii_lowercase().as_str() {
            "on" => Ok(Self::On),
            "off" => Ok(Self::Off),
            _ => Err("must be on or off"),
        }
    }
}

/// Where a setting's value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// Not set anywhere: the built-in default.
    Default,
    /// The environment variable.
    Environment,
    /// The configuration file at this path, under the variable's lower-case key.
    File(PathBuf),
}

impl Origin {
    /// The name of figment's metadata for the environment's layer.
    const ENVIRONMENT: &'static str = "environment";

    /// The origin figment's metadata for a value names.
    fn of(metadata: Option<&Metadata>) -> Self {
        match metadata {
            Some(Metadata {
                source: Some(Source::File(path)),
                ..
            }) => Self::File(path.clone()),
            Some(metadata) if metadata.name == Self::ENVIRONMENT => Self::Environment,
            _ => Self::Default,
        }
    }

    fn metadata(&self) -> Metadata {
        match self {
            Self::Default => Metadata::named("default"),
            Self::Environment => Metadata::named(Self::ENVIRONMENT),
            Self::File(path) => Metadata::from("file", path.as_path()),
        }
    }
}

/// One setting as it is in effect (for `gatehouse check-config`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Effective {
    /// The environment variable.
    pub variable: String,
    /// The value for display: secrets are shown as `(set)`, passwords as `***`.
    pub shown: String,
    /// Where it came from.
    pub origin: Origin,
}

/// One bad setting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The environment variable (`GATEHOUSE_CONFIG` for a problem with the file itself).
    pub variable: String,
    /// Where the bad value came from.
    pub origin: Origin,
    /// What is wrong with it; never the value of a secret.
    pub problem: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.origin {
            Origin::File(path) => write!(
                f,
                "invalid {} (from {}: {}): {}",
                self.variable,
                path.display(),
                file_key(&self.variable),
                self.problem
            ),
            Origin::Environment | Origin::Default => {
                write!(f, "invalid {}: {}", self.variable, self.problem)
            }
        }
    }
}

impl ConfigError {
    fn in_environment(variable: &str, problem: impl Into<String>) -> Self {
        Self {
            variable: variable.to_owned(),
            origin: Origin::Environment,
            problem: problem.into(),
        }
    }
}

/// The key of a variable in the file: its name without `GATEHOUSE_`, in lower case
/// (`GATEHOUSE_BCRYPT_COST` is `bcrypt_cost`, `RUST_LOG` is `rust_log`).
#[must_use]
pub fn file_key(variable: &str) -> String {
    variable
        .strip_prefix("GATEHOUSE_")
        .unwrap_or(variable)
        .to_ascii_lowercase()
}

/// The environment variable of a key: `GATEHOUSE_` and the key in upper case, but
/// `RUST_LOG` for `rust_log`.
#[must_use]
pub fn variable(key: &str) -> String {
    match key {
        "rust_log" => "RUST_LOG".to_owned(),
        _ => format!("GATEHOUSE_{}", key.to_ascii_uppercase()),
    }
}

/// The settings' keys in their declaration order: serde's derive lists them in the error
/// for a key that is none of them (`deny_unknown_fields`).
#[must_use]
pub fn keys() -> &'static [&'static str] {
    let probe = Dict::from([(String::new(), Value::from(0))]);
    match Config::deserialize(&Value::from(probe)) {
        Err(figment::Error {
            kind: figment::error::Kind::UnknownField(_, fields),
            ..
        }) => fields,
        _ => &[],
    }
}

/// Reads one environment variable: `Ok(None)` when unset, an error when not UTF-8.
pub type EnvLookup<'a> = &'a dyn Fn(&str) -> Result<Option<String>, ConfigError>;

/// A parsed configuration file: its path and its top-level values.
#[derive(Clone)]
pub struct ConfigFile {
    path: PathBuf,
    values: BTreeMap<String, toml::Value>,
}

/// Shows the path and the keys only: the values may hold secrets.
impl fmt::Debug for ConfigFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConfigFile")
            .field("path", &self.path)
            .field("keys", &self.values.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl ConfigFile {
    /// Reads and parses the file at `path`. Read here rather than by figment's `Toml`
    /// provider, which passes over a missing file and quotes the bad line (a secret, maybe)
    /// in its errors.
    ///
    /// # Errors
    /// When the file cannot be read or is not TOML; the error names the path.
    pub fn read(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigError::in_environment(
                CONFIG_VARIABLE,
                format!("cannot read {}: {e}", path.display()),
            )
        })?;
        Self::parse(path, &text)
    }

    /// Parses `text` as the file at `path`.
    ///
    /// # Errors
    /// When `text` is not TOML; the error names the path, line and column.
    pub fn parse(path: impl Into<PathBuf>, text: &str) -> Result<Self, ConfigError> {
        let path = path.into();
        match text.parse::<toml::Table>() {
            Ok(table) => Ok(Self {
                path,
                values: table.into_iter().collect(),
            }),
            Err(e) => Err(ConfigError::in_environment(
                CONFIG_VARIABLE,
                format!(
                    "{} is not valid TOML: {}",
                    path.display(),
                    toml_problem(&e, text)
                ),
            )),
        }
    }
}

/// A TOML error on one line, "line L, column C: message", without the source excerpt
/// (which could hold a secret).
fn toml_problem(error: &toml::de::Error, text: &str) -> String {
    let message = error
        .message()
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .collect::<Vec<_>>()
        .join("; ");
    match error.span() {
        Some(span) => {
            let before = text.get(..span.start).unwrap_or(text);
            let line = before.matches('\n').count() + 1;
            let column = before
                .rsplit_once('\n')
                .map_or(before, |(_, last)| last)
                .chars()
                .count()
                + 1;
            format!("line {line}, column {column}: {message}")
        }
        None => message,
    }
}

/// A TOML value for figment, its scalars as the environment variable's string would be (a
/// float keeps its point, so `bcrypt_cost = 12.0` is refused like `"12.0"`).
fn figment_value(value: &toml::Value) -> Value {
    match value {
        toml::Value::String(s) => Value::from(s.clone()),
        toml::Value::Integer(n) => Value::from(n.to_string()),
        toml::Value::Float(x) => Value::from(format!("{x:?}")),
        toml::Value::Boolean(b) => Value::from(b.to_string()),
        toml::Value::Datetime(d) => Value::from(d.to_string()),
        toml::Value::Array(items) => {
            Value::from(items.iter().map(figment_value).collect::<Vec<_>>())
        }
        toml::Value::Table(table) => Value::from(
            table
                .iter()
                .map(|(key, value)| (key.clone(), figment_value(value)))
                .collect::<Dict>(),
        ),
    }
}

/// One layer of settings, as figment takes it: values by key, and where they came from.
struct Layer {
    origin: Origin,
    values: Dict,
}

impl Layer {
    /// The environment's layer: the settings' variables only, verbatim (figment's `Env`
    /// would read `"…"` and `[…]` as TOML-like values, match names in any case and pass over
    /// a value that is not UTF-8), and the variables that could not be read.
    fn environment<'k>(
        env: EnvLookup<'_>,
        keys: &[&'k str],
    ) -> (Self, BTreeMap<&'k str, ConfigError>) {
        let mut values = Dict::new();
        let mut unreadable = BTreeMap::new();
        for key in keys {
            match env(&variable(key)) {
                Ok(Some(value)) => {
                    values.insert((*key).to_owned(), Value::from(value));
                }
                Ok(None) => {}
                Err(e) => {
                    unreadable.insert(*key, e);
                }
            }
        }
        let origin = Origin::Environment;
        (Self { origin, values }, unreadable)
    }

    /// A file's layer (or the defaults').
    fn file(file: &ConfigFile, origin: Origin) -> Self {
        let values = file
            .values
            .iter()
            .map(|(key, value)| (key.clone(), figment_value(value)))
            .collect();
        Self { origin, values }
    }
}

impl Provider for Layer {
    fn metadata(&self) -> Metadata {
        self.origin.metadata()
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        Ok(Profile::Default.collect(self.values.clone()))
    }
}

/// A setting's value as the string its environment variable would hold: a list (for the
/// list settings) joined with commas.
fn as_text(key: &str, value: &Value) -> Result<String, String> {
    let list = LIST_KEYS.contains(&key);
    match value {
        Value::String(_, s) => Ok(s.clone()),
        Value::Array(_, items) if list => items
            .iter()
            .map(|item| match item {
                Value::String(_, s) => Ok(s.as_str()),
                _ => Err("must be a list of strings, not of lists or tables".to_owned()),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(|items| items.join(", ")),
        Value::Array(..) => Err("must be a single value, not a list".to_owned()),
        _ => Err("must be a value, not a table".to_owned()),
    }
}

/// Reads the process environment.
fn environment(variable: &str) -> Result<Option<String>, ConfigError> {
    match std::env::var(variable) {
        Ok(value) => Ok(Some(value)),
        Err(std::env::VarError::NotPresent) => Ok(None),
        Err(std::env::VarError::NotUnicode(_)) => {
            Err(ConfigError::in_environment(variable, "is not valid UTF-8"))
        }
    }
}

/// `Config` from settings given as strings.
fn deserialize(values: &Dict) -> Result<Config, String> {
    Config::deserialize(&Value::from(values.clone())).map_err(|e| e.kind.to_string())
}

impl Config {
    /// Reads the process environment, and the file `GATEHOUSE_CONFIG` names under it.
    ///
    /// # Errors
    /// Every invalid setting, and every problem with the file.
    pub fn from_env() -> Result<Self, Vec<ConfigError>> {
        Self::from_sources(&environment)
    }

    /// Reads settings through `env` (the environment, or a map in tests), and the file
    /// its `GATEHOUSE_CONFIG` names: no file when unset.
    ///
    /// # Errors
    /// Every invalid setting, and every problem with the file.
    pub fn from_sources(env: EnvLookup<'_>) -> Result<Self, Vec<ConfigError>> {
        let mut errors = Vec::new();
        let file = match env(CONFIG_VARIABLE) {
            Ok(None) => None,
            Ok(Some(path)) if path.trim().is_empty() => {
                errors.push(ConfigError::in_environment(
                    CONFIG_VARIABLE,
                    "is empty: set it to the path of a TOML file, or unset it to read none",
                ));
                None
            }
            Ok(Some(path)) => match ConfigFile::read(Path::new(&path)) {
                Ok(file) => Some(file),
                Err(e) => {
                    errors.push(e);
                    None
                }
            },
            Err(e) => {
                errors.push(e);
                None
            }
        };
        // The rest is still checked without the file, so every problem shows at once.
        match Self::from_layers(env, file.as_ref()) {
            Ok(config) if errors.is_empty() => Ok(config),
            Ok(_) => Err(errors),
            Err(more) => {
                errors.extend(more);
                Err(errors)
            }
        }
    }

    /// Reads settings through `env`, falling back to `file` for the ones `env` leaves
    /// unset, then to the defaults. `env`'s `GATEHOUSE_CONFIG` is not looked at.
    ///
    /// # Errors
    /// Every invalid setting, and every key of the file that is not a setting.
    pub fn from_layers(
        env: EnvLookup<'_>,
        file: Option<&ConfigFile>,
    ) -> Result<Self, Vec<ConfigError>> {
        let keys = keys();
        let defaults = ConfigFile::parse("(defaults)", DEFAULTS).map_err(|e| vec![e])?;
        let defaults = Layer::file(&defaults, Origin::Default);
        let (environment, mut unreadable) = Layer::environment(env, keys);
        // The defaults as text: each setting set elsewhere is tried alone over them.
        let base: Dict = defaults
            .values
            .iter()
            .filter_map(|(key, value)| Some((key.clone(), Value::from(as_text(key, value).ok()?))))
            .collect();
        let mut figment = Figment::from(defaults);
        if let Some(file) = file {
            figment = figment.merge(Layer::file(file, Origin::File(file.path.clone())));
        }
        let figment = figment.merge(environment);
        let mut settings = base.clone();
        let mut errors = Vec::new();
        for key in keys {
            if let Some(error) = unreadable.remove(key) {
                errors.push(error);
                continue;
            }
            let Ok(value) = figment.find_value(key) else {
                continue; // unset, without default
            };
            let origin = Origin::of(figment.find_metadata(key));
            let checked = as_text(key, &value).and_then(|text| {
                let mut alone = base.clone();
                alone.insert((*key).to_owned(), Value::from(text.clone()));
                deserialize(&alone).map(|_| text)
            });
            match checked {
                Ok(text) => {
                    settings.insert((*key).to_owned(), Value::from(text));
                }
                Err(problem) => errors.push(ConfigError {
                    variable: variable(key),
                    origin,
                    problem,
                }),
            }
        }
        if let Some(file) = file {
            errors.extend(unknown_keys(file, keys));
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        let mut config = deserialize(&settings)
            .map_err(|problem| vec![ConfigError::in_environment(CONFIG_VARIABLE, problem)])?;
        if config.smtp_url.is_some() && config.mail_from.is_none() {
            return Err(vec![ConfigError::in_environment(
                "GATEHOUSE_MAIL_FROM",
                "must be set when GATEHOUSE_SMTP_URL is: the sender of every mail, such as \
                 Gatehouse <auth@example.com>",
            )]);
        }
        for (wanted, variable) in [
            (
                config.require_verified_email,
                "GATEHOUSE_REQUIRE_VERIFIED_EMAIL",
            ),
            (
                !config.auto_approve_domains.is_empty(),
                "GATEHOUSE_AUTO_APPROVE_DOMAINS",
            ),
        ] {
            if wanted && config.smtp_url.is_none() {
                return Err(vec![ConfigError::in_environment(
                    variable,
                    "needs a mailer: verification codes go by mail, so set GATEHOUSE_SMTP_URL \
                     and GATEHOUSE_MAIL_FROM too, or unset it",
                )]);
            }
        }
        // Passkeys are on when the relying party can be formed; settings that ask for one
        // that cannot be are refused rather than silently turned off.
        if let Err(problem) = gatehouse_http::webauthn::RelyingParty::from_settings(
            config.public_url.as_deref(),
            config.webauthn_rp_id.as_deref(),
        ) {
            return Err(vec![ConfigError::in_environment(
                "GATEHOUSE_WEBAUTHN_RP_ID",
                problem,
            )]);
        }
        if config.smtp_ca_file.is_some() && config.smtp_url.is_none() {
            return Err(vec![ConfigError::in_environment(
                "GATEHOUSE_SMTP_CA_FILE",
                "is set without GATEHOUSE_SMTP_URL: it names the CAs the mailer trusts, so set \
                 the SMTP URL too, or unset it",
            )]);
        }
        config.file = file.map(|f| f.path.clone());
        config.effective = keys
            .iter()
            .map(|key| {
                let (shown, origin) = match settings.get(*key) {
                    Some(Value::String(_, given)) => (
                        shown(key, given, &config),
                        Origin::of(figment.find_metadata(key)),
                    ),
                    _ => (unset_meaning(key).to_owned(), Origin::Default),
                };
                Effective {
                    variable: variable(key),
                    shown,
                    origin,
                }
            })
            .collect();
        Ok(config)
    }

    /// The effective configuration as TOML a `gatehouse.toml` could hold, each line
    /// commented with where the value came from; secrets masked.
    #[must_use]
    pub fn describe(&self) -> String {
        let lines: Vec<(String, String)> = self
            .effective
            .iter()
            .map(|setting| {
                let origin = match &setting.origin {
                    Origin::Default => "default".to_owned(),
                    Origin::Environment => format!("environment ({})", setting.variable),
                    Origin::File(path) => format!("file {}", path.display()),
                };
                (
                    format!(
                        "{} = {}",
                        file_key(&setting.variable),
                        toml_string(&setting.shown)
                    ),
                    origin,
                )
            })
            .collect();
        let width = lines.iter().map(|(line, _)| line.len()).max().unwrap_or(0);
        let mut out = match &self.file {
            Some(path) => format!("# configuration file: {}\n", path.display()),
            None => format!("# no configuration file ({CONFIG_VARIABLE} is unset)\n"),
        };
        for (line, origin) in lines {
            out.push_str(&format!("{line:width$}  # {origin}\n"));
        }
        out
    }
}

/// A TOML basic string.
fn toml_string(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Each key of `file` that is not a setting: a typo must not pass silently.
fn unknown_keys(file: &ConfigFile, keys: &[&str]) -> Vec<ConfigError> {
    let known: HashSet<String> = keys.iter().map(|key| (*key).to_owned()).collect();
    file.values
        .keys()
        .filter(|key| !known.contains(*key))
        .map(|key| {
            let hint = match suggestion(key, &known) {
                Some(known) => format!(" (did you mean {known:?}?)"),
                None if file_key(key) == file_key(CONFIG_VARIABLE) => {
                    format!(" ({CONFIG_VARIABLE} is read from the environment only)")
                }
                None => " (the keys are the GATEHOUSE_* variables' names without the prefix, in lower case)"
                    .to_owned(),
            };
            ConfigError::in_environment(
                CONFIG_VARIABLE,
                format!("{}: unknown key {key:?}{hint}", file.path.display()),
            )
        })
        .collect()
}

/// The known key `key` was probably meant to be: the same once upper case, a
/// `GATEHOUSE_` prefix and dashes are forgiven, or at most two letters off.
fn suggestion<'k>(key: &str, known: &'k HashSet<String>) -> Option<&'k str> {
    let normalised = file_key(&key.to_ascii_uppercase()).replace('-', "_");
    let mut candidates: Vec<&String> = known.iter().collect();
    candidates.sort();
    candidates
        .iter()
        .find(|k| ***k == normalised)
        .or_else(|| {
            candidates
                .iter()
                .find(|k| edit_distance(k, &normalised) <= 2)
        })
        .map(|k| k.as_str())
}

/// Levenshtein distance, for the short keys of the file.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != *cb);
            current.push(substitution.min(previous[j + 1] + 1).min(current[j] + 1));
        }
        previous = current;
    }
    previous[b.len()]
}

// The `deserialize_with` parsers of the settings that are not a newtype of their own. Each
// takes the string the environment variable would hold.

/// A string through `parse`, whose error is the problem to report.
fn text_with<'de, D: Deserializer<'de>, T>(
    deserializer: D,
    parse: impl FnOnce(&str) -> Result<T, String>,
) -> Result<T, D::Error> {
    let text = String::deserialize(deserializer)?;
    parse(&text).map_err(D::Error::custom)
}

/// Through the type's `FromStr` (for the newtypes of the domain and storage crates).
fn parsed<'de, D: Deserializer<'de>, T>(deserializer: D) -> Result<T, D::Error>
where
    T: std::str::FromStr,
    T::Err: fmt::Display,
{
    text_with(deserializer, |text| {
        text.parse().map_err(|e: T::Err| e.to_string())
    })
}

/// An integer from `MIN` to `MAX`.
fn integer<'de, D: Deserializer<'de>, T: TryFrom<u32>, const MIN: u32, const MAX: u32>(
    deserializer: D,
) -> Result<T, D::Error> {
    text_with(deserializer, |text| {
        text.trim()
            .parse::<u32>()
            .ok()
            .filter(|n| (MIN..=MAX).contains(n))
            .and_then(|n| T::try_from(n).ok())
            .ok_or_else(|| format!("must be an integer from {MIN} to {MAX}"))
    })
}

/// As [`integer`], for a setting without default.
fn some_integer<'de, D: Deserializer<'de>, T: TryFrom<u32>, const MIN: u32, const MAX: u32>(
    deserializer: D,
) -> Result<Option<T>, D::Error> {
    integer::<D, T, MIN, MAX>(deserializer).map(Some)
}

/// A secret, checked by `check` (whose message never holds it) and kept as a [`SecretString`].
fn secret_with<'de, D: Deserializer<'de>, T, E: fmt::Display>(
    deserializer: D,
    check: impl FnOnce(&str) -> Result<T, E>,
) -> Result<Option<SecretString>, D::Error> {
    let text = SecretString::from(String::deserialize(deserializer)?);
    check(text.expose_secret()).map_err(D::Error::custom)?;
    Ok(Some(text))
}

/// At least 32 bytes.
fn jwt_secret<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<SecretString>, D::Error> {
    secret_with(deserializer, |text| JwtSecret::new(text.as_bytes()))
}

/// `smtp://` or `smtps://` with a host; `tls` (with `smtp`) is `required` or
/// `opportunistic`. The message never repeats the URL (it may hold a password).
fn smtp_url<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<SecretString>, D::Error> {
    secret_with(deserializer, |text| {
        let url = url::Url::parse(text.trim()).map_err(|e| {
            format!("is not a URL such as smtp://user:pass@mail.example.com:587?tls=required ({e})")
        })?;
        let tls = url
            .query_pairs()
            .find(|(key, _)| key == "tls")
            .map(|(_, value)| value.into_owned());
        match (url.scheme(), tls.as_deref()) {
            ("smtp", None | Some("required" | "opportunistic")) | ("smtps", None) => {}
            ("smtp" | "smtps", Some(_)) => return Err(
                "tls must be required or opportunistic (smtp://…?tls=required), or use smtps://"
                    .to_owned(),
            ),
            _ => return Err("must start with smtp:// or smtps://".to_owned()),
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err("must name the SMTP server's host".to_owned());
        }
        Ok(())
    })
}

/// The SMTP URL as `check-config` shows it: its password masked.
fn shown_smtp_url(text: &str) -> String {
    match url::Url::parse(text.trim()) {
        Ok(mut url) => {
            if url.password().is_some() {
                let _ = url.set_password(Some("***"));
            }
            url.to_string()
        }
        Err(_) => "(set)".to_owned(),
    }
}

/// A mailbox: `auth@example.com` or `Gatehouse <auth@example.com>`.
fn mail_from<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    text_with(deserializer, |value| {
        value
            .trim()
            .parse::<lettre::message::Mailbox>()
            .map(|_| Some(value.trim().to_owned()))
            .map_err(|e| {
                format!("is not a mail address such as Gatehouse <auth@example.com> ({e})")
            })
    })
}

/// A readable PEM file holding at least one CA certificate, read now.
fn smtp_ca_file<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<crate::mailer::CaCertificates>, D::Error> {
    text_with(deserializer, |value| {
        crate::mailer::CaCertificates::read(Path::new(value.trim())).map(Some)
    })
}

/// From 1 s to 7 days.
fn digest_interval<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    text_with(deserializer, |value| {
        duration_text(value)
            .filter(|d| (Duration::from_secs(1)..=Duration::from_secs(7 * 86_400)).contains(d))
            .ok_or_else(|| "must be a duration from 1s to 7d, such as 1m, 15m or 1h".to_owned())
    })
}

/// From 1 minute to 24 hours.
fn reset_code_ttl<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    text_with(deserializer, |value| {
        duration_text(value)
            .filter(|d| (Duration::from_secs(60)..=Duration::from_secs(86_400)).contains(d))
            .ok_or_else(|| "must be a duration from 1m to 24h, such as 15m or 1h".to_owned())
    })
}

/// Comma-separated domain names (`example.com,example.org`), lower-cased; empty for none.
fn domains<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    text_with(deserializer, |value| {
        value
            .split(',')
            .map(str::trim)
            .filter(|domain| !domain.is_empty())
            .map(|domain| {
                let domain = domain.trim_start_matches('@').to_ascii_lowercase();
                let plausible = domain.contains('.')
                    && !domain.starts_with('.')
                    && !domain.ends_with('.')
                    && domain
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-');
                if plausible {
                    Ok(domain)
                } else {
                    Err(format!(
                        "{domain:?} is not a domain name: give domains such as example.com, \
                         separated by commas"
                    ))
                }
            })
            .collect()
    })
}

/// At least 16 visible ASCII characters.
fn metrics_token<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<SecretString>, D::Error> {
    secret_with(deserializer, MetricsToken::new)
}

/// `host:port` with a numeric port; the host is resolved when binding.
fn bind<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    text_with(deserializer, |value| {
        if value.parse::<std::net::SocketAddr>().is_ok() {
            return Ok(value.to_owned());
        }
        let plausible = value.rsplit_once(':').is_some_and(|(host, port)| {
            !host.is_empty() && !host.contains(' ') && port.parse::<u16>().is_ok()
        });
        if plausible {
            Ok(value.to_owned())
        } else {
            Err(format!(
                "must be HOST:PORT, such as 127.0.0.1:8080 (got {value:?})"
            ))
        }
    })
}

/// A comma-separated list of addresses and CIDR ranges.
fn trusted_proxies<'de, D: Deserializer<'de>>(deserializer: D) -> Result<TrustedProxies, D::Error> {
    text_with(deserializer, TrustedProxies::parse)
}

/// A comma-separated list of origins, each `scheme://host[:port]` with no path.
fn origins<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    text_with(deserializer, |value| {
        value
            .split(',')
            .map(str::trim)
            .filter(|origin| !origin.is_empty())
            .map(|origin| {
                let rest = origin
                    .strip_prefix("https://")
                    .or_else(|| origin.strip_prefix("http://"));
                match rest {
                    Some(host)
                        if !host.is_empty()
                            && !host.contains('/')
                            && !host.contains(char::is_whitespace) =>
                    {
                        Ok(origin.to_owned())
                    }
                    _ => Err(format!(
                        "{origin:?} is not an origin such as https://app.example.com"
                    )),
                }
            })
            .collect()
    })
}

/// A relying party id as given (checked against the public URL once both are read);
/// empty is unset.
fn rp_id<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    text_with(deserializer, |value| {
        let value = value.trim();
        Ok((!value.is_empty()).then(|| value.to_ascii_lowercase()))
    })
}

/// An `http` or `https` URL without credentials, query or fragment (a path is fine: a
/// console behind a proxy's prefix); kept without its trailing slash.
fn public_url<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    text_with(deserializer, |value| {
        let value = value.trim();
        if value.is_empty() {
            return Ok(None);
        }
        let problem = || {
            format!(
                "{value:?} is not an http(s) URL such as https://auth.example.com (no \
                 credentials, query or fragment)"
            )
        };
        let rest = value
            .strip_prefix("https://")
            .or_else(|| value.strip_prefix("http://"))
            .ok_or_else(problem)?;
        let host = rest.split('/').next().unwrap_or_default();
        if host.is_empty()
            || host.contains('@')
            || value.contains(['?', '#'])
            || value.contains(|c: char| c.is_whitespace() || c.is_control())
        {
            return Err(problem());
        }
        Ok(Some(value.trim_end_matches('/').to_owned()))
    })
}

/// A `tracing` filter directive, as `RUST_LOG`.
fn log_filter<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    text_with(deserializer, |value| {
        tracing_subscriber::EnvFilter::try_new(value)
            .map(|_| value.to_owned())
            .map_err(|e| format!("is not a valid log filter ({e})"))
    })
}

/// Whole seconds (`5`, `5s`) or minutes (`1m`), from 1 second to 5 minutes.
fn timeout<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    text_with(deserializer, |value| {
        let value = value.trim();
        let (digits, scale) = match value.strip_suffix('s') {
            Some(digits) => (digits, 1),
            None => match value.strip_suffix('m') {
                Some(digits) => (digits, 60),
                None => (value, 1),
            },
        };
        digits
            .parse::<u64>()
            .ok()
            .and_then(|n| n.checked_mul(scale))
            .filter(|secs| (1..=300).contains(secs))
            .map(Duration::from_secs)
            .ok_or_else(|| "must be a duration from 1s to 5m, such as 5, 5s or 1m".to_owned())
    })
}

/// A duration written with a unit (`ms`, `s`, `m`, `h` or `d`; a bare number is seconds).
fn duration_text(value: &str) -> Option<Duration> {
    let value = value.trim();
    let (digits, millis) = if let Some(d) = value.strip_suffix("ms") {
        (d, 1)
    } else if let Some(d) = value.strip_suffix('s') {
        (d, 1000)
    } else if let Some(d) = value.strip_suffix('m') {
        (d, 60_000)
    } else if let Some(d) = value.strip_suffix('h') {
        (d, 3_600_000)
    } else if let Some(d) = value.strip_suffix('d') {
        (d, 86_400_000)
    } else {
        (value, 1000)
    };
    digits
        .trim()
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(millis))
        .map(Duration::from_millis)
}

/// A duration from 100 ms to 5 minutes (`500ms`, `10s`, `1m`).
fn short_duration<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    text_with(deserializer, |value| {
        duration_text(value)
            .filter(|d| (Duration::from_millis(100)..=Duration::from_secs(300)).contains(d))
            .ok_or_else(|| {
                "must be a duration from 100ms to 5m, such as 500ms, 10s or 1m".to_owned()
            })
    })
}

/// A comma-separated list of durations, each at most 7 days (`5s,30s,2m`); empty for none.
fn delays<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<Duration>, D::Error> {
    text_with(deserializer, |value| {
        value
            .split(',')
            .map(str::trim)
            .filter(|item| !item.is_empty())
            .map(|item| {
                duration_text(item)
                    .filter(|d| *d <= Duration::from_secs(7 * 86_400))
                    .ok_or_else(|| {
                        format!("{item:?} is not a delay such as 500ms, 5s, 2m, 2h (at most 7d)")
                    })
            })
            .collect()
    })
}

/// `true` or `false` (also `1`/`0`, `yes`/`no`, `on`/`off`).
fn boolean<'de, D: Deserializer<'de>>(deserializer: D) -> Result<bool, D::Error> {
    text_with(deserializer, |value| {
        match value.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => Ok(true),
            "false" | "0" | "no" | "off" => Ok(false),
            _ => Err("must be true or false".to_owned()),
        }
    })
}

/// `0` (keep everything), or a number of seconds, or a number with `s`, `m`, `h` or `d`,
/// up to 100 years.
fn retention<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Duration>, D::Error> {
    text_with(deserializer, |value| {
        let value = value.trim();
        let problem =
            || "must be 0 (keep everything) or a duration such as 365d, 90d or 12h".to_owned();
        let (digits, scale) = match value.char_indices().last() {
            Some((at, 's')) => (&value[..at], 1),
            Some((at, 'm')) => (&value[..at], 60),
            Some((at, 'h')) => (&value[..at], 3600),
            Some((at, 'd')) => (&value[..at], 86_400),
            _ => (value, 1),
        };
        let n = digits.parse::<u64>().map_err(|_| problem())?;
        if n == 0 {
            return Ok(None);
        }
        n.checked_mul(scale)
            .filter(|secs| *secs <= 100 * 366 * 86_400)
            .map(|secs| Some(Duration::from_secs(secs)))
            .ok_or_else(problem)
    })
}
#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    const FILE: &str = "/etc/gatehouse.toml";
    const SECRET: &str = "0123456789abcdef0123456789abcdef-very-secret";

    fn env_of(vars: &[(&'static str, &str)]) -> HashMap<&'static str, String> {
        vars.iter().map(|(k, v)| (*k, (*v).to_owned())).collect()
    }

    fn config(vars: &[(&'static str, &str)]) -> Result<Config, Vec<ConfigError>> {
        let map = env_of(vars);
        Config::from_layers(&|variable| Ok(map.get(variable).cloned()), None)
    }

    /// The environment `vars` over a file at [`FILE`] holding `toml`.
    fn layered(vars: &[(&'static str, &str)], toml: &str) -> Result<Config, Vec<ConfigError>> {
        let map = env_of(vars);
        let file = ConfigFile::parse(FILE, toml).unwrap();
        Config::from_layers(&|variable| Ok(map.get(variable).cloned()), Some(&file))
    }

    fn lines(errors: &[ConfigError]) -> Vec<String> {
        errors.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn defaults() {
        let config = config(&[]).unwrap();
        assert_eq!(config.bind, "127.0.0.1:8080");
        assert_eq!(config.database_url.to_string(), "sqlite://gatehouse.db");
        assert_eq!(config.token_ttl, TokenTtl::DEFAULT);
        assert_eq!(config.session_idle_ttl, TokenTtl::DEFAULT_SESSION_IDLE);
        assert_eq!(config.session_max_age, TokenTtl::DEFAULT_SESSION_MAX_AGE);
        assert_eq!(config.bcrypt_cost, BcryptCost::DEFAULT);
        assert!(config.jwt_secret.is_none());
        assert_eq!(config.log_filter, "info");
        assert_eq!(config.log_format, LogFormat::Text);
        assert_eq!(config.pool_size, 8);
        assert_eq!(config.jwt_algorithm, JwtAlgorithm::Hs256);
        assert_eq!(config.throttle(), ThrottlePolicy::default());
        assert!(config.cors_origins.is_empty());
        assert_eq!(config.connect_timeout, Duration::from_secs(5));
        assert_eq!(
            config.audit_retention,
            Some(Duration::from_secs(365 * 86_400))
        );
        assert_eq!(config.file, None);
        assert!(config
            .effective
            .iter()
            .all(|setting| setting.origin == Origin::Default));
    }

    #[test]
    fn security_settings() {
        let parsed = config(&[
            ("GATEHOUSE_JWT_ALGORITHM", "EdDSA"),
            ("GATEHOUSE_LOGIN_MAX_FAILURES", "3"),
            ("GATEHOUSE_REGISTER_LIMIT_PER_HOUR", "0"),
            ("GATEHOUSE_TRUSTED_PROXIES", "10.0.0.0/8, 127.0.0.1"),
            (
                "GATEHOUSE_CORS_ORIGINS",
                "https://app.example.com, http://localhost:3000",
            ),
        ])
        .unwrap();
        assert_eq!(parsed.jwt_algorithm, JwtAlgorithm::EdDsa);
        assert_eq!(parsed.throttle().max_failures, 3);
        assert_eq!(parsed.throttle().register_limit_per_hour, 0);
        assert_eq!(parsed.cors_origins.len(), 2);
        for (variable, bad) in [
            ("GATEHOUSE_JWT_ALGORITHM", "none"),
            ("GATEHOUSE_JWT_ALGORITHM", "RS256"),
            ("GATEHOUSE_LOGIN_MAX_FAILURES", "0"),
            ("GATEHOUSE_LOGIN_MAX_FAILURES_PER_ADDRESS", "-1"),
            ("GATEHOUSE_REGISTER_LIMIT_PER_HOUR", "lots"),
            ("GATEHOUSE_TRUSTED_PROXIES", "proxy.internal"),
            ("GATEHOUSE_CORS_ORIGINS", "*"),
            ("GATEHOUSE_CORS_ORIGINS", "https://app.example.com/path"),
        ] {
            let errors = config(&[(variable, bad)]).unwrap_err();
            assert_eq!(errors.len(), 1, "{variable}={bad}");
            assert_eq!(errors[0].variable, variable);
        }
    }

    #[test]
    fn pool_settings() {
        let parsed = config(&[
            ("GATEHOUSE_DATABASE_POOL_SIZE", "20"),
            ("GATEHOUSE_DATABASE_CONNECT_TIMEOUT", "2s"),
            ("GATEHOUSE_DATABASE_STATEMENT_TIMEOUT", "1m"),
        ])
        .unwrap();
        assert_eq!(parsed.pool_size, 20);
        assert_eq!(parsed.statement_timeout, Duration::from_secs(60));
        assert_eq!(
            config(&[]).unwrap().statement_timeout,
            Duration::from_secs(5)
        );
        assert_eq!(
            config(&[("GATEHOUSE_HASHING_THREADS", "1")])
                .unwrap()
                .hashing_threads,
            Some(1)
        );
        assert_eq!(config(&[]).unwrap().hashing_threads, None);
        assert_eq!(
            config(&[]).unwrap().hashing_nice,
            gatehouse_http::DEFAULT_HASHING_NICE
        );
        assert_eq!(
            config(&[("GATEHOUSE_HASHING_NICE", "0")])
                .unwrap()
                .hashing_nice,
            0
        );
        for bad in ["20", "-1", "low"] {
            assert!(config(&[("GATEHOUSE_HASHING_NICE", bad)]).is_err(), "{bad}");
        }
        assert!(config(&[("GATEHOUSE_HASHING_THREADS", "0")]).is_err());
        assert_eq!(parsed.connect_timeout, Duration::from_secs(2));
        for (variable, bad) in [
            ("GATEHOUSE_DATABASE_POOL_SIZE", "0"),
            ("GATEHOUSE_DATABASE_POOL_SIZE", "many"),
            ("GATEHOUSE_DATABASE_CONNECT_TIMEOUT", "0"),
            ("GATEHOUSE_DATABASE_CONNECT_TIMEOUT", "10m"),
            ("GATEHOUSE_DATABASE_CONNECT_TIMEOUT", "fast"),
            ("GATEHOUSE_DATABASE_STATEMENT_TIMEOUT", "0"),
            ("GATEHOUSE_DATABASE_STATEMENT_TIMEOUT", "slow"),
        ] {
            let errors = config(&[(variable, bad)]).unwrap_err();
            assert_eq!(errors.len(), 1);
            assert_eq!(errors[0].variable, variable);
        }
    }

    #[test]
    fn connection_settings() {
        let defaults = config(&[]).unwrap();
        assert_eq!(defaults.body_timeout, Duration::from_secs(10));
        assert_eq!(defaults.max_connections, 10_000);
        let parsed = config(&[
            ("GATEHOUSE_BODY_TIMEOUT", "1s"),
            ("GATEHOUSE_MAX_CONNECTIONS", "64"),
        ])
        .unwrap();
        assert_eq!(parsed.body_timeout, Duration::from_secs(1));
        assert_eq!(parsed.max_connections, 64);
        assert_eq!(
            config(&[("GATEHOUSE_BODY_TIMEOUT", "2m")])
                .unwrap()
                .body_timeout,
            Duration::from_secs(120)
        );
        for (variable, bad) in [
            ("GATEHOUSE_BODY_TIMEOUT", "0"),
            ("GATEHOUSE_BODY_TIMEOUT", "6m"),
            ("GATEHOUSE_BODY_TIMEOUT", "slow"),
            ("GATEHOUSE_MAX_CONNECTIONS", "0"),
            ("GATEHOUSE_MAX_CONNECTIONS", "1000001"),
            ("GATEHOUSE_MAX_CONNECTIONS", "lots"),
        ] {
            let errors = config(&[(variable, bad)]).unwrap_err();
            assert_eq!(errors.len(), 1, "{variable}={bad}");
            assert_eq!(errors[0].variable, variable);
        }
        let file = layered(&[], "body_timeout = \"30s\"\nmax_connections = 500\n").unwrap();
        assert_eq!(file.body_timeout, Duration::from_secs(30));
        assert_eq!(file.max_connections, 500);
    }

    #[test]
    fn the_metrics_token_is_a_secret() {
        const TOKEN: &str = "metrics-token-6b1d0c8e";
        let open = config(&[]).unwrap();
        assert!(open.metrics_token.is_none());
        assert!(open
            .describe()
            .contains("metrics_token = \"(none: /metrics is open)\""));
        let parsed = layered(&[], &format!("metrics_token = \"{TOKEN}\"\n")).unwrap();
        assert!(parsed.metrics_token.is_some());
        let described = parsed.describe();
        assert!(
            described.contains("metrics_token = \"(set)\""),
            "{described}"
        );
        for shown in [described, format!("{parsed:?}")] {
            assert!(!shown.contains(TOKEN), "{shown}");
        }
        for bad in ["", "short-token", "with spaces in the token"] {
            let errors = config(&[("GATEHOUSE_METRICS_TOKEN", bad)]).unwrap_err();
            assert_eq!(errors.len(), 1, "{bad:?}");
            assert_eq!(errors[0].variable, "GATEHOUSE_METRICS_TOKEN");
            assert!(bad.is_empty() || !errors[0].to_string().contains(bad));
        }
    }

    #[test]
    fn a_password_parameter_of_the_database_url_is_masked_too() {
        let url = "postgres://u:secret1@h/db?password=secret2&sslmode=disable";
        let parsed = config(&[("GATEHOUSE_DATABASE_URL", url)]).unwrap();
        let described = parsed.describe();
        assert!(
            described
                .contains("database_url = \"postgres://u:***@h/db?password=***&sslmode=disable\""),
            "{described}"
        );
        for shown in [described, format!("{parsed:?}")] {
            assert!(
                !shown.contains("secret1") && !shown.contains("secret2"),
                "{shown}"
            );
        }
    }

    #[test]
    fn access_log() {
        assert_eq!(config(&[]).unwrap().access_log, AccessLog::On);
        for (given, expected) in [
            ("off", AccessLog::Off),
            (" OFF ", AccessLog::Off),
            ("on", AccessLog::On),
        ] {
            let parsed = config(&[("GATEHOUSE_ACCESS_LOG", given)]).unwrap();
            assert_eq!(parsed.access_log, expected, "{given:?}");
        }
        for bad in ["", "no", "false", "0"] {
            let errors = config(&[("GATEHOUSE_ACCESS_LOG", bad)]).unwrap_err();
            assert_eq!(errors.len(), 1, "{bad:?}");
            assert_eq!(errors[0].variable, "GATEHOUSE_ACCESS_LOG");
            assert!(errors[0].to_string().contains("on or off"), "{}", errors[0]);
        }
    }

    #[test]
    fn log_format() {
        assert_eq!(
            config(&[("GATEHOUSE_LOG_FORMAT", "json")])
                .unwrap()
                .log_format,
            LogFormat::Json
        );
        assert_eq!(
            config(&[("GATEHOUSE_LOG_FORMAT", "TEXT")])
                .unwrap()
                .log_format,
            LogFormat::Text
        );
        let errors = config(&[("GATEHOUSE_LOG_FORMAT", "yaml")]).unwrap_err();
        assert_eq!(
            lines(&errors),
            ["invalid GATEHOUSE_LOG_FORMAT: must be text or json"]
        );
    }

    #[test]
    fn audit_retention() {
        let retention = |value: &str| config(&[("GATEHOUSE_AUDIT_RETENTION", value)]);
        assert_eq!(retention("0").unwrap().audit_retention, None);
        assert_eq!(
            retention("90d").unwrap().audit_retention,
            Some(Duration::from_secs(90 * 86_400))
        );
        assert_eq!(
            retention("12h").unwrap().audit_retention,
            Some(Duration::from_secs(12 * 3600))
        );
        assert_eq!(
            retention("3600").unwrap().audit_retention,
            Some(Duration::from_secs(3600))
        );
        for bad in ["", "forever", "-1d", "1w", "99999999999999d"] {
            let errors = retention(bad).unwrap_err();
            assert_eq!(errors[0].variable, "GATEHOUSE_AUDIT_RETENTION", "{bad:?}");
        }
    }

    #[test]
    fn every_bad_setting_is_named() {
        let errors = config(&[
            ("GATEHOUSE_BIND", "nonsense"),
            ("GATEHOUSE_DATABASE_URL", "mysql://x"),
            ("GATEHOUSE_JWT_SECRET", "short"),
            ("GATEHOUSE_TOKEN_TTL", "forever"),
            ("GATEHOUSE_BCRYPT_COST", "99"),
        ])
        .unwrap_err();
        let named: Vec<&str> = errors.iter().map(|e| e.variable.as_str()).collect();
        assert_eq!(
            named,
            [
                "GATEHOUSE_BIND",
                "GATEHOUSE_DATABASE_URL",
                "GATEHOUSE_JWT_SECRET",
                "GATEHOUSE_TOKEN_TTL",
                "GATEHOUSE_BCRYPT_COST",
            ]
        );
        let secret_error = errors
            .iter()
            .find(|e| e.variable == "GATEHOUSE_JWT_SECRET")
            .unwrap();
        assert!(
            !secret_error.to_string().contains("short"),
            "the secret is never echoed"
        );
    }

    #[test]
    fn accepts_good_values() {
        let config = config(&[
            ("GATEHOUSE_BIND", "localhost:0"),
            (
                "GATEHOUSE_DATABASE_URL",
                "postgres://app:pw@db.internal:5432/gatehouse",
            ),
            ("GATEHOUSE_JWT_SECRET", "0123456789abcdef0123456789abcdef"),
            ("GATEHOUSE_TOKEN_TTL", "15m"),
            ("GATEHOUSE_BCRYPT_COST", "4"),
        ])
        .unwrap();
        assert_eq!(config.token_ttl.as_secs(), 900);
        assert_eq!(config.bcrypt_cost.get(), 4);
        assert!(config.jwt_secret.is_some());
    }

    #[test]
    fn the_file_sets_what_a_careful_user_would_write() {
        let parsed = layered(
            &[],
            r#"
            # Integers as integers or strings, lists as arrays or comma-separated strings.
            bind = "0.0.0.0:8080"
            database_url = "sqlite:///var/lib/gatehouse/gatehouse.db"
            bcrypt_cost = 10
            database_pool_size = "20"
            token_ttl = "1h"
            trusted_proxies = ["10.0.0.0/8", "127.0.0.1"]
            cors_origins = "https://a.example.com, https://b.example.com"
            log_format = "json"
            rust_log = "gatehouse=debug,info"
            "#,
        )
        .unwrap();
        assert_eq!(parsed.bind, "0.0.0.0:8080");
        assert_eq!(
            parsed.database_url.to_string(),
            "sqlite:///var/lib/gatehouse/gatehouse.db"
        );
        assert_eq!(parsed.bcrypt_cost.get(), 10);
        assert_eq!(parsed.pool_size, 20);
        assert_eq!(parsed.token_ttl.as_secs(), 3600);
        assert_eq!(
            parsed.trusted_proxies,
            TrustedProxies::parse("10.0.0.0/8, 127.0.0.1").unwrap()
        );
        assert_eq!(parsed.cors_origins.len(), 2);
        assert_eq!(parsed.log_format, LogFormat::Json);
        assert_eq!(parsed.log_filter, "gatehouse=debug,info");
        assert_eq!(parsed.file.as_deref(), Some(Path::new(FILE)));
        let origin_of = |variable| {
            parsed
                .effective
                .iter()
                .find(|e| e.variable == variable)
                .map(|e| e.origin.clone())
        };
        assert_eq!(origin_of("GATEHOUSE_BIND"), Some(Origin::File(FILE.into())));
        assert_eq!(origin_of("GATEHOUSE_JWT_ALGORITHM"), Some(Origin::Default));
    }

    #[test]
    fn the_environment_overrides_the_file() {
        let parsed = layered(
            &[
                ("GATEHOUSE_BCRYPT_COST", "4"),
                ("GATEHOUSE_TRUSTED_PROXIES", ""),
            ],
            "bcrypt_cost = 10\nbind = \"0.0.0.0:9000\"\ntrusted_proxies = [\"10.0.0.1\"]\n",
        )
        .unwrap();
        assert_eq!(parsed.bcrypt_cost.get(), 4);
        assert_eq!(parsed.bind, "0.0.0.0:9000", "the file still fills the rest");
        assert_eq!(parsed.trusted_proxies, TrustedProxies::default());
        let cost = parsed
            .effective
            .iter()
            .find(|e| e.variable == "GATEHOUSE_BCRYPT_COST")
            .unwrap();
        assert_eq!(cost.origin, Origin::Environment);
    }

    #[test]
    fn an_unknown_key_is_named_with_the_file() {
        let errors = layered(
            &[],
            "bindd = \"0.0.0.0:80\"\nGATEHOUSE_BCRYPT_COST = 4\nconfig = \"x.toml\"\nfrobnicate = 1\n",
        )
        .unwrap_err();
        assert_eq!(
            lines(&errors),
            [
                "invalid GATEHOUSE_CONFIG: /etc/gatehouse.toml: unknown key \"GATEHOUSE_BCRYPT_COST\" (did you mean \"bcrypt_cost\"?)",
                "invalid GATEHOUSE_CONFIG: /etc/gatehouse.toml: unknown key \"bindd\" (did you mean \"bind\"?)",
                "invalid GATEHOUSE_CONFIG: /etc/gatehouse.toml: unknown key \"config\" (GATEHOUSE_CONFIG is read from the environment only)",
                "invalid GATEHOUSE_CONFIG: /etc/gatehouse.toml: unknown key \"frobnicate\" (the keys are the GATEHOUSE_* variables' names without the prefix, in lower case)",
            ]
        );
        let tables = layered(&[], "[database]\nurl = \"sqlite://x.db\"\n").unwrap_err();
        assert_eq!(tables.len(), 1);
        assert!(tables[0].to_string().contains("unknown key \"database\""));
    }

    #[test]
    fn bad_toml_names_the_path_and_the_line() {
        let error = ConfigFile::parse(
            FILE,
            "bind = \"0.0.0.0:80\"\njwt_secret = s3cr3t-unquoted\n",
        )
        .unwrap_err();
        let line = error.to_string();
        assert!(
            line.starts_with(
                "invalid GATEHOUSE_CONFIG: /etc/gatehouse.toml is not valid TOML: line 2, column 14: "
            ),
            "{line}"
        );
        assert!(!line.contains('\n'), "one line: {line}");
        assert!(!line.contains("s3cr3t"), "no excerpt of the file: {line}");
    }

    #[test]
    fn a_value_from_the_file_names_the_file_and_key() {
        let errors = layered(
            &[],
            "bcrypt_cost = 99\nbind = [\"0.0.0.0:80\"]\ndatabase_pool_size = 8.0\ntrusted_proxies = [[\"10.0.0.1\"]]\ntoken_ttl = { days = 7 }\n",
        )
        .unwrap_err();
        assert_eq!(
            lines(&errors),
            [
                "invalid GATEHOUSE_BIND (from /etc/gatehouse.toml: bind): must be a single value, not a list",
                "invalid GATEHOUSE_TOKEN_TTL (from /etc/gatehouse.toml: token_ttl): must be a value, not a table",
                "invalid GATEHOUSE_BCRYPT_COST (from /etc/gatehouse.toml: bcrypt_cost): must be an integer from 4 to 31",
                "invalid GATEHOUSE_DATABASE_POOL_SIZE (from /etc/gatehouse.toml: database_pool_size): must be an integer from 1 to 1000",
                "invalid GATEHOUSE_TRUSTED_PROXIES (from /etc/gatehouse.toml: trusted_proxies): must be a list of strings, not of lists or tables",
            ]
        );
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gatehouse.toml");
        std::fs::write(&path, "bcrypt_cost = 3\ntypo = 1\n").unwrap();
        let path = path.to_str().unwrap().to_owned();
        let env = env_of(&[
            ("GATEHOUSE_CONFIG", &path),
            ("GATEHOUSE_TOKEN_TTL", "forever"),
            ("GATEHOUSE_LOG_FORMAT", "xml"),
        ]);
        let errors = Config::from_sources(&|variable| Ok(env.get(variable).cloned())).unwrap_err();
        let named: Vec<&str> = errors.iter().map(|e| e.variable.as_str()).collect();
        assert_eq!(
            named,
            [
                "GATEHOUSE_TOKEN_TTL",
                "GATEHOUSE_BCRYPT_COST",
                "GATEHOUSE_LOG_FORMAT",
                "GATEHOUSE_CONFIG",
            ]
        );
        assert_eq!(errors[1].origin, Origin::File(path.clone().into()));
        assert_eq!(errors[0].origin, Origin::Environment);
    }

    #[test]
    fn a_missing_file_is_named_and_the_rest_still_checked() {
        let env = env_of(&[
            ("GATEHOUSE_CONFIG", "/nonexistent/gatehouse.toml"),
            ("GATEHOUSE_BCRYPT_COST", "1"),
        ]);
        let errors = Config::from_sources(&|variable| Ok(env.get(variable).cloned())).unwrap_err();
        let lines = lines(&errors);
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert!(
            lines[0]
                .starts_with("invalid GATEHOUSE_CONFIG: cannot read /nonexistent/gatehouse.toml: "),
            "{lines:?}"
        );
        assert!(lines[1].starts_with("invalid GATEHOUSE_BCRYPT_COST: "));
        let empty = env_of(&[("GATEHOUSE_CONFIG", "")]);
        let errors =
            Config::from_sources(&|variable| Ok(empty.get(variable).cloned())).unwrap_err();
        assert_eq!(errors[0].variable, CONFIG_VARIABLE);
    }

    #[test]
    fn no_file_unless_named() {
        let parsed = Config::from_sources(&|_| Ok(None)).unwrap();
        assert_eq!(parsed.file, None);
        assert!(parsed.describe().starts_with("# no configuration file"));
    }

    #[test]
    fn the_smtp_ca_file_must_be_a_readable_pem_of_certificates() {
        // (A good file, and one set without GATEHOUSE_SMTP_URL: tests/blackbox/mail.rs.)
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, text: &str| {
            let path = dir.path().join(name);
            std::fs::write(&path, text).unwrap();
            path.display().to_string()
        };
        let missing = dir.path().join("missing.pem").display().to_string();
        let no_certificate = write(
            "key.pem",
            "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIA==\n-----END PRIVATE KEY-----\n",
        );
        let not_a_certificate = write(
            "bad.pem",
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        );
        for (path, problem) in [
            (&missing, "cannot read"),
            (&no_certificate, "holds no certificate"),
            (&not_a_certificate, "is not a usable CA certificate"),
        ] {
            let errors = config(&[
                ("GATEHOUSE_SMTP_URL", "smtp://mail.example.com?tls=required"),
                ("GATEHOUSE_MAIL_FROM", "auth@example.com"),
                ("GATEHOUSE_SMTP_CA_FILE", path),
            ])
            .unwrap_err();
            let lines = lines(&errors);
            assert_eq!(lines.len(), 1, "{lines:?}");
            assert!(
                lines[0].starts_with(&format!("invalid GATEHOUSE_SMTP_CA_FILE: {path}"))
                    && lines[0].contains(problem)
                    && !lines[0].contains('\n'),
                "{lines:?}"
            );
        }
    }

    #[test]
    fn secrets_are_masked() {
        let url = "postgres://app:db-password@db.internal:5432/gatehouse";
        let toml = format!("jwt_secret = \"{SECRET}\"\ndatabase_url = \"{url}\"\n");
        let parsed = layered(&[], &toml).unwrap();
        let described = parsed.describe();
        assert!(described.contains("jwt_secret = \"(set)\""), "{described}");
        assert!(
            described.contains("database_url = \"postgres://app:***@db.internal:5432/gatehouse\""),
            "{described}"
        );
        for shown in [
            described,
            format!("{parsed:?}"),
            format!("{:?}", ConfigFile::parse(FILE, &toml).unwrap()),
        ] {
            assert!(!shown.contains(SECRET), "{shown}");
            assert!(!shown.contains("db-password"), "{shown}");
        }
        assert!(config(&[])
            .unwrap()
            .describe()
            .contains("jwt_secret = \"(generated)\""));
        // A bad secret in the file is named, never shown.
        let errors = layered(&[], "jwt_secret = \"short-secret\"\n").unwrap_err();
        assert_eq!(errors.len(), 1);
        assert!(!errors[0].to_string().contains("short-secret"));
    }

    #[test]
    fn describe_lists_every_setting_with_its_origin() {
        let parsed = layered(
            &[("GATEHOUSE_BCRYPT_COST", "4")],
            "bind = \"0.0.0.0:8080\"\n",
        )
        .unwrap();
        let described = parsed.describe();
        let lines: Vec<&str> = described.lines().collect();
        assert_eq!(lines[0], "# configuration file: /etc/gatehouse.toml");
        assert_eq!(lines.len(), 1 + parsed.effective.len());
        let line = |key: &str| {
            lines
                .iter()
                .find(|line| line.starts_with(&format!("{key} = ")))
                .map(|line| line.split_whitespace().collect::<Vec<_>>().join(" "))
                .unwrap()
        };
        assert_eq!(
            line("bind"),
            "bind = \"0.0.0.0:8080\" # file /etc/gatehouse.toml"
        );
        assert_eq!(
            line("bcrypt_cost"),
            "bcrypt_cost = \"4\" # environment (GATEHOUSE_BCRYPT_COST)"
        );
        assert_eq!(line("rust_log"), "rust_log = \"info\" # default");
        assert_eq!(
            line("hashing_threads"),
            "hashing_threads = \"(one per core)\" # default"
        );
        // What it prints is a file Gatehouse reads back, but for the placeholders.
        let echoed: String = described
            .lines()
            .filter(|line| !line.contains("\"("))
            .map(|line| format!("{line}\n"))
            .collect();
        assert!(layered(&[], &echoed).is_ok(), "{echoed}");
    }

    #[test]
    fn suggestions() {
        let known: HashSet<String> = ["bind", "bcrypt_cost", "database_url"]
            .into_iter()
            .map(str::to_owned)
            .collect();
        assert_eq!(suggestion("BIND", &known), Some("bind"));
        assert_eq!(suggestion("database-url", &known), Some("database_url"));
        assert_eq!(suggestion("bcrypt_cots", &known), Some("bcrypt_cost"));
        assert_eq!(suggestion("listen", &known), None);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }

    #[test]
    fn the_keys_are_the_fields_in_their_order() {
        let keys = keys();
        assert_eq!(keys.len(), 39, "{keys:?}");
        assert_eq!(keys.first(), Some(&"bind"));
        assert_eq!(keys.last(), Some(&"webauthn_rp_id"));
        assert!(keys.contains(&"rust_log") && keys.contains(&"database_pool_size"));
        assert_eq!(variable("rust_log"), "RUST_LOG");
        assert_eq!(variable("bcrypt_cost"), "GATEHOUSE_BCRYPT_COST");
        let defaults = ConfigFile::parse("(defaults)", DEFAULTS).unwrap();
        for key in defaults.values.keys() {
            assert!(
                keys.contains(&key.as_str()),
                "default for no setting: {key}"
            );
        }
        for key in LIST_KEYS {
            assert!(keys.contains(key), "{key}");
        }
    }

    #[test]
    fn the_operations_guide_lists_every_key() {
        let guide = include_str!("../../../docs/operations.md");
        for key in keys() {
            assert!(
                guide.contains(&format!("\n{key} = ")) || guide.contains(&format!("# {key} = ")),
                "docs/operations.md does not list {key}"
            );
        }
    }

    #[test]
    fn the_environment_is_read_verbatim() {
        // No TOML-like reading of a variable: quotes are part of a secret, brackets of a list.
        let quoted = format!("\"{SECRET}\"");
        let secret = config(&[("GATEHOUSE_JWT_SECRET", &quoted)])
            .unwrap()
            .jwt_secret
            .unwrap();
        assert_eq!(secret.expose_secret(), quoted);
        let errors =
            config(&[("GATEHOUSE_CORS_ORIGINS", "[\"https://a.example.com\"]")]).unwrap_err();
        assert_eq!(errors[0].variable, "GATEHOUSE_CORS_ORIGINS");
        // Only the settings' own variables, in upper case, are read.
        let map = env_of(&[
            ("gatehouse_bcrypt_cost", "1"),
            ("GATEHOUSE_TEST_POSTGRES_URL", "postgres://x"),
        ]);
        assert!(Config::from_layers(&|variable| Ok(map.get(variable).cloned()), None).is_ok());
        // A variable that is not UTF-8 is named in its place.
        let errors = Config::from_layers(
            &|variable| match variable {
                "GATEHOUSE_TOKEN_TTL" => {
                    Err(ConfigError::in_environment(variable, "is not valid UTF-8"))
                }
                "GATEHOUSE_BCRYPT_COST" => Ok(Some("1".to_owned())),
                _ => Ok(None),
            },
            None,
        )
        .unwrap_err();
        assert_eq!(
            lines(&errors),
            [
                "invalid GATEHOUSE_TOKEN_TTL: is not valid UTF-8",
                "invalid GATEHOUSE_BCRYPT_COST: must be an integer from 4 to 31",
            ]
        );
    }

    #[test]
    fn the_environment_overrides_a_bad_value_in_the_file() {
        let parsed = layered(
            &[("GATEHOUSE_BIND", "127.0.0.1:9000")],
            "bind = [\"0.0.0.0:80\"]\n",
        )
        .unwrap();
        assert_eq!(parsed.bind, "127.0.0.1:9000");
    }
}
