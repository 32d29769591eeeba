use std::fmt;
use std::str::FromStr;

/// Where the database is, chosen by the URL's scheme.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DatabaseUrl {
    /// `sqlite://PATH`: a file, relative (`sqlite://gatehouse.db`) or absolute
    /// (`sqlite:///var/lib/gatehouse/gatehouse.db`), created when missing.
    Sqlite {
        /// The file's path.
        path: String,
    },
    /// `postgres://…` or `postgresql://…`.
    Postgres {
        /// The whole URL, credentials included.
        url: String,
    },
}

/// Why a string is not a database URL Gatehouse can use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidDatabaseUrl(&'static str);

impl FromStr for DatabaseUrl {
    type Err = InvalidDatabaseUrl;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        if let Some(path) = raw.strip_prefix("sqlite://") {
            if path.is_empty() {
                return Err(InvalidDatabaseUrl(
                    "sqlite:// needs a file path, as in sqlite://gatehouse.db",
                ));
            }
            if path == ":memory:" || path.starts_with("file:") || path.contains('?') {
                return Err(InvalidDatabaseUrl(
                    "sqlite:// takes a plain file path (no :memory:, file: URIs or ? options)",
                ));
            }
            return Ok(Self::Sqlite {
                path: path.to_owned(),
            });
        }
        if raw.starts_with("postgres://") || raw.starts_with("postgresql://") {
            return Ok(Self::Postgres {
                url: raw.to_owned(),
            });
        }
        Err(InvalidDatabaseUrl(
            "must start with sqlite:// (a file) or postgres:// (a server)",
        ))
    }
}

/// Shows the URL with any password replaced by `***`, for logs.
impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Sqlite { path } => write!(f, "sqlite://{path}"),
            Self::Postgres { url } => f.write_str(&mask_password(url)),
        }
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DatabaseUrl({self})")
    }
}

/// `scheme://user:secret@host/db` → `scheme://user:***@host/db`; the secrets libpq also
/// takes as parameters (`?password=…`, `&sslpassword=…`, the client key's) are masked too.
fn mask_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let tail = mask_query(tail);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split_once(':').map_or(userinfo, |(user, _)| user);
            let masked = if userinfo.contains(':') {
                format!("{user}:***")
            } else {
                user.to_owned()
            };
            format!("{scheme}://{masked}@{host}{tail}")
        }
        None => format!("{scheme}://{authority}{tail}"),
    }
}

/// `/db?sslmode=require&password=x` → `/db?sslmode=require&password=***`.
fn mask_query(tail: &str) -> String {
    let Some((path, query)) = tail.split_once('?') else {
        return tail.to_owned();
    };
    let parameters: Vec<String> = query
        .split('&')
        .map(|parameter| match parameter.split_once('=') {
            Some((key, _)) if SECRET_PARAMETERS.contains(&key) => format!("{key}=***"),
            _ => parameter.to_owned(),
        })
        .collect();
    format!("{path}?{}", parameters.join("&"))
}

/// libpq's connection parameters that hold a secret.
const SECRET_PARAMETERS: [&str; 2] = ["password", "sslpassword"];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schemes() {
        assert_eq!(
            "sqlite://gatehouse.db".parse(),
            Ok(DatabaseUrl::Sqlite {
                path: "gatehouse.db".into()
            })
        );
        assert_eq!(
            "sqlite:///var/lib/g.db".parse(),
            Ok(DatabaseUrl::Sqlite {
                path: "/var/lib/g.db".into()
            })
        );
        assert!(matches!(
            "postgres://u@h/db".parse(),
            Ok(DatabaseUrl::Postgres { .. })
        ));
        for bad in [
            "",
            "gatehouse.db",
            "sqlite://",
            "sqlite://:memory:",
            "mysql://x",
            "sqlite:x.db",
        ] {
            assert!(bad.parse::<DatabaseUrl>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn display_masks_the_password() {
        let url: DatabaseUrl = "postgres://app:s3cret@db:5432/gh?sslmode=require"
            .parse()
            .unwrap();
        assert_eq!(
            url.to_string(),
            "postgres://app:***@db:5432/gh?sslmode=require"
        );
        assert!(!format!("{url:?}").contains("s3cret"));
        let plain: DatabaseUrl = "postgres://app@db/gh".parse().unwrap();
        assert_eq!(plain.to_string(), "postgres://app@db/gh");
    }

    #[test]
    fn display_masks_passwords_given_as_parameters() {
        let url: DatabaseUrl = "postgres://db/gh?user=app&password=s3cret&sslmode=verify-full\
             &sslrootcert=/etc/ca.pem&sslpassword=k3y"
            .parse()
            .unwrap();
        assert_eq!(
            url.to_string(),
            "postgres://db/gh?user=app&password=***&sslmode=verify-full\
             &sslrootcert=/etc/ca.pem&sslpassword=***"
        );
        let both: DatabaseUrl = "postgresql://app:one@db?password=two".parse().unwrap();
        assert_eq!(both.to_string(), "postgresql://app:***@db?password=***");
        assert!(!format!("{both:?}").contains("one"));
    }
}
