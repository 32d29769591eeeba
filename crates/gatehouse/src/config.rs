//! The service's configuration, read from the environment once and parsed into types
//! before anything starts. Every problem is reported, one line each, naming the variable.

use std::fmt;
use std::time::Duration;

use gatehouse_domain::{BcryptCost, JwtSecret, ThrottlePolicy, TokenTtl};
use gatehouse_http::TrustedProxies;
use gatehouse_storage::DatabaseUrl;

/// How tokens are signed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JwtAlgorithm {
    /// A shared secret (`GATEHOUSE_JWT_SECRET`, or generated and stored).
    Hs256,
    /// Ed25519 key pairs, generated and stored, published at `/.well-known/jwks.json`.
    EdDsa,
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
    /// `GATEHOUSE_HASHING_THREADS`: bcrypt hashes at once, the share of the cores logins
    /// and registrations may take; `None` for one per core.
    pub hashing_threads: Option<u32>,
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
}

/// One bad setting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The environment variable.
    pub variable: &'static str,
    /// What is wrong with it.
    pub problem: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid {}: {}", self.variable, self.problem)
    }
}

/// Reads one variable: `Ok(None)` when unset, an error when not UTF-8.
type Lookup<'a> = &'a dyn Fn(&'static str) -> Result<Option<String>, ConfigError>;

impl Config {
    /// Reads the process environment.
    ///
    /// # Errors
    /// Every invalid setting.
    pub fn from_env() -> Result<Self, Vec<ConfigError>> {
        Self::from_lookup(&|variable| match std::env::var(variable) {
            Ok(value) => Ok(Some(value)),
            Err(std::env::VarError::NotPresent) => Ok(None),
            Err(std::env::VarError::NotUnicode(_)) => Err(ConfigError {
                variable,
                problem: "is not valid UTF-8".into(),
            }),
        })
    }

    /// Reads settings through `lookup` (the environment, or a map in tests).
    ///
    /// # Errors
    /// Every invalid setting.
    pub fn from_lookup(lookup: Lookup<'_>) -> Result<Self, Vec<ConfigError>> {
        let mut errors = Vec::new();
        let bind = read(
            lookup,
            &mut errors,
            "GATEHOUSE_BIND",
            Some("127.0.0.1:8080"),
            check_bind,
        );
        let database_url = read(
            lookup,
            &mut errors,
            "GATEHOUSE_DATABASE_URL",
            Some("sqlite://gatehouse.db"),
            |v| v.parse::<DatabaseUrl>().map_err(|e| e.to_string()),
        );
        let jwt_secret = read(lookup, &mut errors, "GATEHOUSE_JWT_SECRET", None, |v| {
            JwtSecret::new(v.as_bytes()).map_err(|e| e.to_string())
        });
        let token_ttl = read(
            lookup,
            &mut errors,
            "GATEHOUSE_TOKEN_TTL",
            Some("7d"),
            |v| v.parse::<TokenTtl>().map_err(|e| e.to_string()),
        );
        let bcrypt_cost = read(
            lookup,
            &mut errors,
            "GATEHOUSE_BCRYPT_COST",
            Some("12"),
            |v| {
                v.trim()
                    .parse::<u32>()
                    .ok()
                    .and_then(|n| BcryptCost::new(n).ok())
                    .ok_or_else(|| "must be an integer from 4 to 31".to_owned())
            },
        );
        let pool_size = read(
            lookup,
            &mut errors,
            "GATEHOUSE_DATABASE_POOL_SIZE",
            Some("8"),
            |v| {
                v.trim()
                    .parse::<u32>()
                    .ok()
                    .filter(|n| (1..=1000).contains(n))
                    .ok_or_else(|| "must be an integer from 1 to 1000".to_owned())
            },
        );
        let connect_timeout = read(
            lookup,
            &mut errors,
            "GATEHOUSE_DATABASE_CONNECT_TIMEOUT",
            Some("5s"),
            parse_timeout,
        );
        let jwt_algorithm = read(
            lookup,
            &mut errors,
            "GATEHOUSE_JWT_ALGORITHM",
            Some("HS256"),
            |v| match v.trim() {
                "HS256" => Ok(JwtAlgorithm::Hs256),
                "EdDSA" => Ok(JwtAlgorithm::EdDsa),
                _ => Err("must be HS256 or EdDSA".to_owned()),
            },
        );
        let max_failures = read(
            lookup,
            &mut errors,
            "GATEHOUSE_LOGIN_MAX_FAILURES",
            Some("5"),
            |v| integer(v, 1, 1000),
        );
        let max_failures_per_address = read(
            lookup,
            &mut errors,
            "GATEHOUSE_LOGIN_MAX_FAILURES_PER_ADDRESS",
            Some("100"),
            |v| integer(v, 1, 1_000_000),
        );
        let register_limit = read(
            lookup,
            &mut errors,
            "GATEHOUSE_REGISTER_LIMIT_PER_HOUR",
            Some("100"),
            |v| integer(v, 0, 1_000_000),
        );
        let hashing_threads = read(
            lookup,
            &mut errors,
            "GATEHOUSE_HASHING_THREADS",
            None,
            |v| integer(v, 1, 256),
        );
        let trusted_proxies = read(
            lookup,
            &mut errors,
            "GATEHOUSE_TRUSTED_PROXIES",
            Some(""),
            TrustedProxies::parse,
        );
        let cors_origins = read(
            lookup,
            &mut errors,
            "GATEHOUSE_CORS_ORIGINS",
            Some(""),
            parse_origins,
        );
        let log_filter = read(lookup, &mut errors, "RUST_LOG", Some("info"), |v| {
            tracing_subscriber::EnvFilter::try_new(v)
                .map(|_| v.to_owned())
                .map_err(|e| format!("is not a valid log filter ({e})"))
        });
        match (
            bind,
            database_url,
            jwt_secret,
            token_ttl,
            bcrypt_cost,
            (pool_size, connect_timeout),
            (
                jwt_algorithm,
                max_failures,
                max_failures_per_address,
                register_limit,
            ),
            (trusted_proxies, cors_origins, hashing_threads),
            log_filter,
        ) {
            (
                Some(Some(bind)),
                Some(Some(database_url)),
                Some(jwt_secret),
                Some(Some(token_ttl)),
                Some(Some(bcrypt_cost)),
                (Some(Some(pool_size)), Some(Some(connect_timeout))),
                (
                    Some(Some(jwt_algorithm)),
                    Some(Some(max_failures)),
                    Some(Some(max_failures_per_address)),
                    Some(Some(register_limit_per_hour)),
                ),
                (Some(Some(trusted_proxies)), Some(Some(cors_origins)), Some(hashing_threads)),
                Some(Some(log_filter)),
            ) if errors.is_empty() => Ok(Self {
                bind,
                database_url,
                jwt_secret,
                token_ttl,
                bcrypt_cost,
                pool_size,
                connect_timeout,
                jwt_algorithm,
                throttle: ThrottlePolicy {
                    max_failures,
                    max_failures_per_address,
                    register_limit_per_hour,
                },
                trusted_proxies,
                cors_origins,
                hashing_threads,
                log_filter,
            }),
            _ => Err(errors),
        }
    }
}

/// Reads and parses one variable, falling back to `default` when unset. `Some(None)` is a
/// variable without default left unset; `None` means it was invalid (and is in `errors`).
fn read<T>(
    lookup: Lookup<'_>,
    errors: &mut Vec<ConfigError>,
    variable: &'static str,
    default: Option<&str>,
    parse: impl FnOnce(&str) -> Result<T, String>,
) -> Option<Option<T>> {
    let value = match lookup(variable) {
        Ok(value) => value.or_else(|| default.map(str::to_owned)),
        Err(e) => {
            errors.push(e);
            return None;
        }
    };
    let Some(value) = value else {
        return Some(None);
    };
    match parse(&value) {
        Ok(parsed) => Some(Some(parsed)),
        Err(problem) => {
            errors.push(ConfigError { variable, problem });
            None
        }
    }
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

    fn config(vars: &[(&'static str, &str)]) -> Result<Config, Vec<ConfigError>> {
        let map: HashMap<&'static str, String> =
            vars.iter().map(|(k, v)| (*k, (*v).to_owned())).collect();
        Config::from_lookup(&|variable| Ok(map.get(variable).cloned()))
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
        assert_eq!(config.pool_size, 8);
        assert_eq!(config.jwt_algorithm, JwtAlgorithm::Hs256);
        assert_eq!(config.throttle, ThrottlePolicy::default());
        assert!(config.cors_origins.is_empty());
        assert_eq!(config.connect_timeout, Duration::from_secs(5));
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
}
