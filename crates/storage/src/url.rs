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

impl DatabaseUrl {
    /// `message` with every password of this URL (as written and percent-decoded) replaced
    /// by `***`: for errors from the database client, which may quote a part of the URL
    /// (libpq quotes a malformed percent-encoded value whole, for one).
    #[must_use]
    pub fn redact(&self, message: &str) -> String {
        match self {
            Self::Sqlite { .. } => message.to_owned(),
            Self::Postgres { url } => redact_secrets(url, message),
        }
    }
}

/// The password in `scheme://user:secret@host/db` and the value of every `password=` (or
/// `sslpassword=`) parameter replaced by `***`, the rest as written.
fn mask_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (rest, _) = mask_parameters(rest);
    match userinfo_ends(&rest).into_iter().max() {
        Some(at) => {
            let (userinfo, host_and_more) = rest.split_at(at);
            let user = userinfo.split_once(':').map_or(userinfo, |(user, _)| user);
            let masked = if userinfo.contains(':') { ":***" } else { "" };
            format!("{scheme}://{user}{masked}{host_and_more}")
        }
        None => format!("{scheme}://{rest}"),
    }
}

/// Where the userinfo (`user:password`) of `rest` (a URL after `scheme://`) may end: libpq
/// takes the first `@` before the path; a password should percent-encode `@`, `/` and
/// `?`, but when it does not, the last `@` before the path or before the query ends it.
/// Every candidate is used for redaction, the last for display, so that more is masked
/// rather than less.
fn userinfo_ends(rest: &str) -> Vec<usize> {
    let before = |stop: char| rest.find(stop).map_or(rest, |end| &rest[..end]);
    [
        before('/').find('@'),
        before('/').rfind('@'),
        before('?').rfind('@'),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// `rest` with the value of every `password`-like parameter (after a `?` or `&`) replaced
/// by `***`, and the values it replaced.
fn mask_parameters(rest: &str) -> (String, Vec<String>) {
    let mut out = String::with_capacity(rest.len());
    let mut values = Vec::new();
    let mut start = 0;
    // Each piece runs from a `?` or `&` (or the start) to the next one.
    let mut boundaries: Vec<usize> = rest.match_indices(['?', '&']).map(|(i, _)| i).collect();
    boundaries.push(rest.len());
    for end in boundaries {
        let piece = &rest[start..end];
        let (delimiter, pair) = match piece.chars().next() {
            Some(c @ ('?' | '&')) => piece.split_at(c.len_utf8()),
            _ => ("", piece),
        };
        out.push_str(delimiter);
        match pair.split_once('=') {
            Some((key, value)) if !delimiter.is_empty() && is_password_key(key) => {
                out.push_str(key);
                out.push_str("=***");
                values.push(value.to_owned());
            }
            _ => out.push_str(pair),
        }
        start = end;
    }
    (out, values)
}

/// `password` and `sslpassword` (the keys libpq takes a secret under), in any case and
/// percent-encoding.
fn is_password_key(key: &str) -> bool {
    percent_decode(key)
        .to_ascii_lowercase()
        .ends_with("password")
}

/// The secrets of a PostgreSQL URL, under every reading of it: the userinfo's password and
/// the values of the password parameters, each as written and percent-decoded.
fn secrets(url: &str) -> Vec<String> {
    let Some((_, rest)) = url.split_once("://") else {
        return Vec::new();
    };
    let (_, mut found) = mask_parameters(rest);
    for at in userinfo_ends(rest) {
        if let Some((_, password)) = rest[..at].split_once(':') {
            found.push(password.to_owned());
        }
    }
    let decoded: Vec<String> = found.iter().map(|s| percent_decode(s)).collect();
    found.extend(decoded);
    found.retain(|s| !s.is_empty() && s != "***");
    // The longest first, so that a secret containing another is replaced whole.
    found.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
    found.dedup();
    found
}

fn redact_secrets(url: &str, message: &str) -> String {
    let mut out = message.to_owned();
    for secret in secrets(url) {
        out = out.replace(&secret, "***");
    }
    out
}

/// `%XX` sequences decoded (invalid ones kept as written), lossily as UTF-8.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|pair| std::str::from_utf8(pair).ok())
            .and_then(|pair| u8::from_str_radix(pair, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

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
    fn display_masks_password_parameters_too() {
        for (raw, shown) in [
            (
                "postgres://u:secret1@h/db?password=secret2&sslmode=disable",
                "postgres://u:***@h/db?password=***&sslmode=disable",
            ),
            (
                "postgres://h/db?sslmode=disable&PassWord=secret2",
                "postgres://h/db?sslmode=disable&PassWord=***",
            ),
            (
                "postgres://h/db?%70assword=secret2&sslpassword=secret3",
                "postgres://h/db?%70assword=***&sslpassword=***",
            ),
            // Unencoded `/`, `?` or `@` in a password: still masked.
            ("postgres://u:sec/ret@h/db", "postgres://u:***@h/db"),
            ("postgres://u:sec?ret@h/db", "postgres://u:***@h/db"),
            ("postgres://u:sec@ret@h/db", "postgres://u:***@h/db"),
            // An `@` in a parameter is not userinfo.
            (
                "postgres://h/db?application_name=a@b",
                "postgres://h/db?application_name=a@b",
            ),
            ("postgresql://u@h", "postgresql://u@h"),
            (
                "postgres://h?password=secret2&application_name=a@b",
                "postgres://h?password=***&application_name=a@b",
            ),
            ("postgres://u:pw@h?x=a@b", "postgres://u:***@b"),
        ] {
            let url: DatabaseUrl = raw.parse().unwrap();
            assert_eq!(url.to_string(), shown, "{raw}");
            assert_eq!(format!("{url:?}"), format!("DatabaseUrl({shown})"));
        }
    }

    #[test]
    fn redact_removes_every_form_of_the_passwords() {
        let url: DatabaseUrl = "postgres://u:p%40ss-one@h/db?password=two%2Btwo&sslmode=x"
            .parse()
            .unwrap();
        let message =
            "bad token \"p%40ss-one\", then p@ss-one, two%2Btwo and two+two; u and h stay";
        assert_eq!(
            url.redact(message),
            "bad token \"***\", then ***, *** and ***; u and h stay"
        );
        let sqlite: DatabaseUrl = "sqlite://x.db".parse().unwrap();
        assert_eq!(sqlite.redact("x.db: p@ss"), "x.db: p@ss");
        assert_eq!(percent_decode("a%2Fb%zz%4"), "a/b%zz%4");
    }
}
