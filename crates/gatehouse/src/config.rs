//! The service's configuration, parsed into types before anything starts: the environment
//! (`GATEHOUSE_*`, `RUST_LOG`) over an optional TOML file named by `GATEHOUSE_CONFIG`, whose
//! keys are the variables' names without the `GATEHOUSE_` prefix, in lower case. Both
//! layers go through the same per-variable parsers below, so there is one set of rules;
//! every problem is reported, one line each, naming the variable and where its value came
//! from. Secrets never appear in an error, a `Debug` or [`Config::describe`].

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use gatehouse_domain::{BcryptCost, JwtSecret, ThrottlePolicy, TokenTtl};
use gatehouse_http::{MetricsToken, TrustedProxies};
use gatehouse_storage::DatabaseUrl;

/// The variable naming the configuration file.
pub const CONFIG_VARIABLE: &str = "GATEHOUSE_CONFIG";

/// The variables whose value is a comma-separated list, and so may be a TOML array in the file.
const LIST_VARIABLES: &[&str] = &["GATEHOUSE_TRUSTED_PROXIES", "GATEHOUSE_CORS_ORIGINS"];

/// How tokens are signed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JwtAlgorithm {
    /// A shared secret (`GATEHOUSE_JWT_SECRET`, or generated and stored).
    Hs256,
    /// Ed25519 key pairs, generated and stored, published at `/.well-known/jwks.json`.
    EdDsa,
}

/// How log lines are written (`GATEHOUSE_LOG_FORMAT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}

/// Everything `gatehouse serve` needs to know, already validated.
#[derive(Debug, Clone)]
pub struct Config {
    /// `GATEHOUSE_BIND`: the address to listen on (port 0 picks a free one).
    pub bind: String,
    /// `GATEHOUSE_DATABASE_URL`.
    pub database_url: DatabaseUrl,
    /// `GATEHOUSE_JWT_SECRET`; generated once and stored in the database when unset.
    pub jwt_secret: Option<JwtSecret>,
    /// `GATEHOUSE_TOKEN_TTL`.
    pub token_ttl: TokenTtl,
    /// `GATEHOUSE_BCRYPT_COST`.
    pub bcrypt_cost: BcryptCost,
    /// `GATEHOUSE_DATABASE_POOL_SIZE`: connections per instance.
    pub pool_size: u32,
    /// `GATEHOUSE_DATABASE_CONNECT_TIMEOUT`: how long opening a connection, or waiting
    /// for a free one, may take before a request is answered 503.
    pub connect_timeout: Duration,
    /// `GATEHOUSE_BODY_TIMEOUT`: how long a request body may take to arrive after the
    /// request's head before the request is answered 408 and the connection closed.
    pub body_timeout: Duration,
    /// `GATEHOUSE_MAX_CONNECTIONS`: open connections per instance; more wait to be accepted.
    pub max_connections: u32,
    /// `GATEHOUSE_METRICS_TOKEN`: the bearer token `/metrics` requires; open when unset.
    pub metrics_token: Option<MetricsToken>,
    /// `GATEHOUSE_HASHING_THREADS`: bcrypt hashes at once, the share of the cores logins
    /// and registrations may take; `None` for one per core.
    pub hashing_threads: Option<u32>,
    /// `GATEHOUSE_HASHING_NICE`: how far below the request threads the bcrypt threads run
    /// (0 = the same priority, 19 = the lowest).
    pub hashing_nice: u8,
    /// `GATEHOUSE_JWT_ALGORITHM`.
    pub jwt_algorithm: JwtAlgorithm,
    /// `GATEHOUSE_LOGIN_MAX_FAILURES`, `GATEHOUSE_LOGIN_MAX_FAILURES_PER_ADDRESS`,
    /// `GATEHOUSE_REGISTER_LIMIT_PER_HOUR`.
    pub throttle: ThrottlePolicy,
    /// `GATEHOUSE_TRUSTED_PROXIES`.
    pub trusted_proxies: TrustedProxies,
    /// `GATEHOUSE_CORS_ORIGINS`.
    pub cors_origins: Vec<String>,
    /// `RUST_LOG`.
    pub log_filter: String,
    /// `GATEHOUSE_LOG_FORMAT`.
    pub log_format: LogFormat,
    /// `GATEHOUSE_AUDIT_RETENTION`: how long audit entries are kept; `None` keeps them all.
    pub audit_retention: Option<Duration>,
    /// `GATEHOUSE_CONFIG`: the file read under the environment, if any.
    pub file: Option<PathBuf>,
    /// Every setting as it is in effect and where it came from, secrets masked.
    pub effective: Vec<Effective>,
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

/// One setting as it is in effect (for `gatehouse check-config`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Effective {
    /// The environment variable.
    pub variable: &'static str,
    /// The value for display: secrets are shown as `(set)`, passwords as `***`.
    pub shown: String,
    /// Where it came from.
    pub origin: Origin,
}

/// One bad setting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The environment variable (`GATEHOUSE_CONFIG` for a problem with the file itself).
    pub variable: &'static str,
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
                file_key(self.variable),
                self.problem
            ),
            Origin::Environment | Origin::Default => {
                write!(f, "invalid {}: {}", self.variable, self.problem)
            }
        }
    }
}

impl ConfigError {
    fn in_environment(variable: &'static str, problem: impl Into<String>) -> Self {
        Self {
            variable,
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

/// Reads one environment variable: `Ok(None)` when unset, an error when not UTF-8.
pub type EnvLookup<'a> = &'a dyn Fn(&'static str) -> Result<Option<String>, ConfigError>;

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
    /// Reads and parses the file at `path`.
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

    /// The value of `variable` in the file, as the string the environment variable would
    /// hold: integers as digits, a list (for the list variables) joined with commas.
    fn setting(&self, variable: &'static str) -> Result<Option<Setting>, ConfigError> {
        let Some(value) = self.values.get(&file_key(variable)) else {
            return Ok(None);
        };
        let origin = Origin::File(self.path.clone());
        match render(value, LIST_VARIABLES.contains(&variable)) {
            Ok(value) => Ok(Some(Setting { value, origin })),
            Err(problem) => Err(ConfigError {
                variable,
                origin,
                problem,
            }),
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

/// A TOML value as an environment variable's string. Scalars as written (a float keeps its
/// point, so `bcrypt_cost = 12.0` is refused like `"12.0"`); arrays only where a list is
/// meant.
fn render(value: &toml::Value, list: bool) -> Result<String, String> {
    match value {
        toml::Value::String(s) => Ok(s.clone()),
        toml::Value::Integer(n) => Ok(n.to_string()),
        toml::Value::Float(x) => Ok(format!("{x:?}")),
        toml::Value::Boolean(b) => Ok(b.to_string()),
        toml::Value::Datetime(d) => Ok(d.to_string()),
        toml::Value::Array(items) if list => items
            .iter()
            .map(|item| match item {
                toml::Value::Array(_) | toml::Value::Table(_) => {
                    Err("must be a list of strings, not of lists or tables".to_owned())
                }
                scalar => render(scalar, false),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(|items| items.join(", ")),
        toml::Value::Array(_) => Err("must be a single value, not a list".to_owned()),
        toml::Value::Table(_) => Err("must be a value, not a table".to_owned()),
    }
}

/// A value and where it came from.
struct Setting {
    value: String,
    origin: Origin,
}

/// Reads the process environment.
fn environment(variable: &'static str) -> Result<Option<String>, ConfigError> {
    match std::env::var(variable) {
        Ok(value) => Ok(Some(value)),
        Err(std::env::VarError::NotPresent) => Ok(None),
        Err(std::env::VarError::NotUnicode(_)) => {
            Err(ConfigError::in_environment(variable, "is not valid UTF-8"))
        }
    }
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
        let mut reader = Reader {
            env,
            file,
            errors: Vec::new(),
            effective: Vec::new(),
        };
        let config = reader.read_all();
        if let Some(file) = file {
            reader.unknown_keys(file);
        }
        match config {
            Some(config) if reader.errors.is_empty() => Ok(Self {
                file: file.map(|f| f.path.clone()),
                effective: reader.effective,
                ..config
            }),
            _ => Err(reader.errors),
        }
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
                        file_key(setting.variable),
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

/// Reads the settings one by one, collecting every problem and the effective values.
struct Reader<'a> {
    env: EnvLookup<'a>,
    file: Option<&'a ConfigFile>,
    errors: Vec<ConfigError>,
    effective: Vec<Effective>,
}

impl Reader<'_> {
    /// Every setting, or `None` when one is invalid (and so in `errors`).
    fn read_all(&mut self) -> Option<Config> {
        let bind = self.read("GATEHOUSE_BIND", Some("127.0.0.1:8080"), check_bind);
        let database_url = self.read_shown(
            "GATEHOUSE_DATABASE_URL",
            Some("sqlite://gatehouse.db"),
            |v| v.parse::<DatabaseUrl>().map_err(|e| e.to_string()),
            // Its Display masks the password.
            |_, url| url.to_string(),
        );
        let jwt_secret = self.read_shown(
            "GATEHOUSE_JWT_SECRET",
            None,
            |v| JwtSecret::new(v.as_bytes()).map_err(|e| e.to_string()),
            |_, _| "(set)".to_owned(),
        );
        let token_ttl = self.read("GATEHOUSE_TOKEN_TTL", Some("7d"), |v| {
            v.parse::<TokenTtl>().map_err(|e| e.to_string())
        });
        let bcrypt_cost = self.read("GATEHOUSE_BCRYPT_COST", Some("12"), |v| {
            v.trim()
                .parse::<u32>()
                .ok()
                .and_then(|n| BcryptCost::new(n).ok())
                .ok_or_else(|| "must be an integer from 4 to 31".to_owned())
        });
        let pool_size = self.read("GATEHOUSE_DATABASE_POOL_SIZE", Some("8"), |v| {
            integer(v, 1, 1000)
        });
        let connect_timeout = self.read(
            "GATEHOUSE_DATABASE_CONNECT_TIMEOUT",
            Some("5s"),
            parse_timeout,
        );
        let body_timeout = self.read("GATEHOUSE_BODY_TIMEOUT", Some("10s"), parse_timeout);
        let max_connections = self.read("GATEHOUSE_MAX_CONNECTIONS", Some("10000"), |v| {
            integer(v, 1, 1_000_000)
        });
        let metrics_token = self.read_shown(
            "GATEHOUSE_METRICS_TOKEN",
            None,
            MetricsToken::new,
            |_, _| "(set)".to_owned(),
        );
        let jwt_algorithm = self.read("GATEHOUSE_JWT_ALGORITHM", Some("HS256"), |v| {
            match v.trim() {
                "HS256" => Ok(JwtAlgorithm::Hs256),
                "EdDSA" => Ok(JwtAlgorithm::EdDsa),
                _ => Err("must be HS256 or EdDSA".to_owned()),
            }
        });
        let max_failures = self.read("GATEHOUSE_LOGIN_MAX_FAILURES", Some("5"), |v| {
            integer(v, 1, 1000)
        });
        let max_failures_per_address = self.read(
            "GATEHOUSE_LOGIN_MAX_FAILURES_PER_ADDRESS",
            Some("100"),
            |v| integer(v, 1, 1_000_000),
        );
        let register_limit = self.read("GATEHOUSE_REGISTER_LIMIT_PER_HOUR", Some("100"), |v| {
            integer(v, 0, 1_000_000)
        });
        let hashing_threads = self.read("GATEHOUSE_HASHING_THREADS", None, |v| integer(v, 1, 256));
        let default_nice = gatehouse_http::DEFAULT_HASHING_NICE.to_string();
        let hashing_nice = self.read("GATEHOUSE_HASHING_NICE", Some(default_nice.as_str()), |v| {
            integer(v, 0, 19).map(|n| u8::try_from(n).unwrap_or(19))
        });
        let trusted_proxies =
            self.read("GATEHOUSE_TRUSTED_PROXIES", Some(""), TrustedProxies::parse);
        let cors_origins = self.read("GATEHOUSE_CORS_ORIGINS", Some(""), parse_origins);
        let log_filter = self.read("RUST_LOG", Some("info"), |v| {
            tracing_subscriber::EnvFilter::try_new(v)
                .map(|_| v.to_owned())
                .map_err(|e| format!("is not a valid log filter ({e})"))
        });
        let log_format = self.read("GATEHOUSE_LOG_FORMAT", Some("text"), |v| {
            match v.trim().to_ascii_lowercase().as_str() {
                "text" => Ok(LogFormat::Text),
                "json" => Ok(LogFormat::Json),
                _ => Err("must be text or json".to_owned()),
            }
        });
        let audit_retention = self.read("GATEHOUSE_AUDIT_RETENTION", Some("365d"), parse_retention);
        // Each `?` is a setting that was invalid (and is in `errors`); `Some(None)` is one
        // without default left unset.
        Some(Config {
            bind: bind??,
            database_url: database_url??,
            jwt_secret: jwt_secret?,
            token_ttl: token_ttl??,
            bcrypt_cost: bcrypt_cost??,
            pool_size: pool_size??,
            connect_timeout: connect_timeout??,
            body_timeout: body_timeout??,
            max_connections: max_connections??,
            metrics_token: metrics_token?,
            hashing_threads: hashing_threads?,
            hashing_nice: hashing_nice??,
            jwt_algorithm: jwt_algorithm??,
            throttle: ThrottlePolicy {
                max_failures: max_failures??,
                max_failures_per_address: max_failures_per_address??,
                register_limit_per_hour: register_limit??,
            },
            trusted_proxies: trusted_proxies??,
            cors_origins: cors_origins??,
            log_filter: log_filter??,
            log_format: log_format??,
            audit_retention: audit_retention??,
            file: None,
            effective: Vec::new(),
        })
    }

    /// A setting from the environment, else the file, else `default`.
    fn lookup(
        &self,
        variable: &'static str,
        default: Option<&str>,
    ) -> Result<Option<Setting>, ConfigError> {
        if let Some(value) = (self.env)(variable)? {
            return Ok(Some(Setting {
                value,
                origin: Origin::Environment,
            }));
        }
        if let Some(setting) = self
            .file
            .map(|f| f.setting(variable))
            .transpose()?
            .flatten()
        {
            return Ok(Some(setting));
        }
        Ok(default.map(|value| Setting {
            value: value.to_owned(),
            origin: Origin::Default,
        }))
    }

    /// Reads and parses one setting, shown as given. `Some(None)` is a setting without
    /// default left unset; `None` means it was invalid (and is in `errors`).
    fn read<T>(
        &mut self,
        variable: &'static str,
        default: Option<&str>,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Option<Option<T>> {
        self.read_shown(variable, default, parse, |given, _| given.trim().to_owned())
    }

    /// As [`read`](Self::read), shown by `show` (given the value and its parse).
    fn read_shown<T>(
        &mut self,
        variable: &'static str,
        default: Option<&str>,
        parse: impl FnOnce(&str) -> Result<T, String>,
        show: impl FnOnce(&str, &T) -> String,
    ) -> Option<Option<T>> {
        let setting = match self.lookup(variable, default) {
            Ok(Some(setting)) => setting,
            Ok(None) => {
                self.effective.push(Effective {
                    variable,
                    shown: unset_meaning(variable).to_owned(),
                    origin: Origin::Default,
                });
                return Some(None);
            }
            Err(e) => {
                self.errors.push(e);
                return None;
            }
        };
        match parse(&setting.value) {
            Ok(parsed) => {
                self.effective.push(Effective {
                    variable,
                    shown: show(&setting.value, &parsed),
                    origin: setting.origin,
                });
                Some(Some(parsed))
            }
            Err(problem) => {
                self.errors.push(ConfigError {
                    variable,
                    origin: setting.origin,
                    problem,
                });
                None
            }
        }
    }

    /// Reports each key of `file` that no setting read: a typo must not pass silently.
    fn unknown_keys(&mut self, file: &ConfigFile) {
        let known: HashSet<String> = self
            .effective
            .iter()
            .map(|e| e.variable)
            .chain(self.errors.iter().map(|e| e.variable))
            .map(file_key)
            .collect();
        for key in file.values.keys().filter(|key| !known.contains(*key)) {
            let hint = match suggestion(key, &known) {
                Some(known) => format!(" (did you mean {known:?}?)"),
                None if file_key(key) == file_key(CONFIG_VARIABLE) => {
                    format!(" ({CONFIG_VARIABLE} is read from the environment only)")
                }
                None => " (the keys are the GATEHOUSE_* variables' names without the prefix, in lower case)"
                    .to_owned(),
            };
            self.errors.push(ConfigError::in_environment(
                CONFIG_VARIABLE,
                format!("{}: unknown key {key:?}{hint}", file.path.display()),
            ));
        }
    }
}

/// What an unset setting without default means.
fn unset_meaning(variable: &str) -> &'static str {
    match variable {
        "GATEHOUSE_JWT_SECRET" => "(generated)",
        "GATEHOUSE_HASHING_THREADS" => "(one per core)",
        "GATEHOUSE_METRICS_TOKEN" => "(none: /metrics is open)",
        _ => "(unset)",
    }
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

/// An integer from `min` to `max`.
fn integer(value: &str, min: u32, max: u32) -> Result<u32, String> {
    value
        .trim()
        .parse::<u32>()
        .ok()
        .filter(|n| (min..=max).contains(n))
        .ok_or_else(|| format!("must be an integer from {min} to {max}"))
}

/// A comma-separated list of origins, each `scheme://host[:port]` with no path.
fn parse_origins(value: &str) -> Result<Vec<String>, String> {
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
}

/// Whole seconds (`5`, `5s`) or minutes (`1m`), from 1 second to 5 minutes.
fn parse_timeout(value: &str) -> Result<Duration, String> {
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
}

/// `0` (keep everything), or a number of seconds, or a number with `s`, `m`, `h` or `d`,
/// up to 100 years.
fn parse_retention(value: &str) -> Result<Option<Duration>, String> {
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
}

/// `host:port` with a numeric port; the host is resolved when binding.
fn check_bind(value: &str) -> Result<String, String> {
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
        assert_eq!(config.bcrypt_cost, BcryptCost::DEFAULT);
        assert!(config.jwt_secret.is_none());
        assert_eq!(config.log_filter, "info");
        assert_eq!(config.log_format, LogFormat::Text);
        assert_eq!(config.pool_size, 8);
        assert_eq!(config.jwt_algorithm, JwtAlgorithm::Hs256);
        assert_eq!(config.throttle, ThrottlePolicy::default());
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
        assert_eq!(parsed.throttle.max_failures, 3);
        assert_eq!(parsed.throttle.register_limit_per_hour, 0);
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
        ])
        .unwrap();
        assert_eq!(parsed.pool_size, 20);
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
        let named: Vec<&str> = errors.iter().map(|e| e.variable).collect();
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
        let named: Vec<&str> = errors.iter().map(|e| e.variable).collect();
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
}
