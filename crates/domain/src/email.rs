use std::fmt;

/// A plausible email address, trimmed and lower-cased: the form in which addresses are
/// stored and compared.
///
/// Plausible means `local@domain.tld`: a local part of at most 64 characters drawn from
/// letters, digits and `.!#$%&'*+/=?^_`{|}~-` (no leading, trailing or doubled dot); a domain
/// of at least two dot-separated labels of letters, digits and inner hyphens, the last one
/// alphabetic and at least two letters long; 254 bytes at most in all. Letters may be any
/// Unicode letters; whitespace, control and invisible characters never pass.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Email(String);

/// Why a string is not a plausible email address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidEmail(&'static str);

const MAX_EMAIL_BYTES: usize = 254;
const MAX_LOCAL_CHARS: usize = 64;
const MAX_LABEL_CHARS: usize = 63;

impl Email {
    /// Trims, lower-cases and checks `raw`.
    ///
    /// # Errors
    /// [`InvalidEmail`] with a sentence saying what is wrong.
    pub fn parse(raw: &str) -> Result<Self, InvalidEmail> {
        let email = raw.trim().to_lowercase();
        if email.is_empty() {
            return Err(InvalidEmail("Email must not be empty"));
        }
        if email.len() > MAX_EMAIL_BYTES {
            return Err(InvalidEmail("Email must be at most 254 bytes long"));
        }
        let Some((local, domain)) = email.split_once('@') else {
            return Err(InvalidEmail("Email must contain an @"));
        };
        check_local_part(local)?;
        check_domain(domain)?;
        Ok(Self(email))
    }

    /// The address as stored.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn check_local_part(local: &str) -> Result<(), InvalidEmail> {
    const INVALID: InvalidEmail = InvalidEmail("Email has an invalid part before the @");
    if local.is_empty() || local.chars().count() > MAX_LOCAL_CHARS {
        return Err(INVALID);
    }
    if local.starts_with('.') || local.ends_with('.') || local.contains("..") {
        return Err(INVALID);
    }
    let allowed = |c: char| c.is_alphanumeric() || ".!#$%&'*+/=?^_`{|}~-".contains(c);
    if local.chars().all(allowed) {
        Ok(())
    } else {
        Err(INVALID)
    }
}

fn check_domain(domain: &str) -> Result<(), InvalidEmail> {
    const INVALID: InvalidEmail = InvalidEmail("Email has an invalid domain");
    let labels: Vec<&str> = domain.split('.').collect();
    if labels.len() < 2 {
        return Err(InvalidEmail("Email domain must contain a dot"));
    }
    for label in &labels {
        let plausible = !label.is_empty()
            && label.chars().count() <= MAX_LABEL_CHARS
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label.chars().all(|c| c.is_alphanumeric() || c == '-');
        if !plausible {
            return Err(INVALID);
        }
    }
    let tld = labels.last().copied().unwrap_or_default();
    if tld.chars().count() < 2 || !tld.chars().all(char::is_alphabetic) {
        return Err(INVALID);
    }
    Ok(())
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Email({})", self.0)
    }
}

impl AsRef<str> for Email {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn trims_and_lower_cases() {
        let email = Email::parse("  Ada.Lovelace@Example.COM \n").unwrap();
        assert_eq!(email.as_str(), "ada.lovelace@example.com");
    }

    #[test]
    fn accepts_plausible_addresses() {
        for ok in [
            "a@b.co",
            "first.last+tag@sub.example.org",
            "o'neil@example.ie",
            "user_1@xn--bcher-kva.example",
            "josé@exämple.de",
            "a-b@my-host.example.com",
        ] {
            assert!(Email::parse(ok).is_ok(), "{ok} should be accepted");
        }
    }

    #[test]
    fn refuses_implausible_addresses() {
        for bad in [
            "",
            "   ",
            "plainaddress",
            "@example.com",
            "user@",
            "user@localhost",
            "user@example.c",
            "user@example.123",
            "user@@example.com",
            "us er@example.com",
            ".user@example.com",
            "user.@example.com",
            "us..er@example.com",
            "user@-example.com",
            "user@example-.com",
            "user@exa_mple.com",
            "user@example..com",
            "user\u{200b}@example.com",
            "user\u{0000}@example.com",
            "\"quoted\"@example.com",
            "user@example.com\u{202e}",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn refuses_overlong_addresses() {
        let local = "a".repeat(65);
        assert!(Email::parse(&format!("{local}@example.com")).is_err());
        let domain = format!("{}.com", ["abcdefghij"; 25].join("."));
        assert!(Email::parse(&format!("a@{domain}")).is_err());
    }

    proptest! {
        #[test]
        fn parsing_never_panics_and_is_idempotent(raw in "\\PC{0,80}") {
            if let Ok(email) = Email::parse(&raw) {
                let again = Email::parse(email.as_str()).unwrap();
                prop_assert_eq!(again, email.clone());
                prop_assert!(email.as_str().len() <= MAX_EMAIL_BYTES);
                prop_assert_eq!(email.as_str().matches('@').count(), 1);
            }
        }
    }
}
