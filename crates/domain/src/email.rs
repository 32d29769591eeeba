use std::fmt;

use unicode_normalization::UnicodeNormalization;
use unicode_security::MixedScript;

/// A plausible email address, trimmed, NFKC-normalised and lower-cased: the form in which
/// addresses are stored and compared.
///
/// Plausible means `local@domain.tld`: a local part of at most 64 characters drawn from
/// letters, digits and `.!#$%&'*+/=?^_`{|}~-` (no leading, trailing or doubled dot); a domain
/// of at least two dot-separated labels of letters, digits and inner hyphens, the last one
/// alphabetic and at least two letters long; 254 bytes at most in all. Letters may be any
/// Unicode letters, but the local part and each domain label keep to one script (UTS #39's
/// single-script test: digits and punctuation count for every script, and Han with
/// Hiragana and Katakana is Japanese); whitespace, control and invisible characters never
/// pass.
///
/// NFKC comes first, so compatibility forms are the letters they stand for: fullwidth
/// `ａｄｍｉｎ`, mathematical bold `𝐚𝐝𝐦𝐢𝐧` and `admin` are one address. Look-alikes
/// that NFKC keeps apart (a Cyrillic `о` for a Latin `o`) share a [`skeleton`](Self::skeleton).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Email(String);

/// Why a string is not a plausible email address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidEmail(&'static str);

impl InvalidEmail {
    /// Whether the address was refused for mixing scripts (a look-alike), rather than for
    /// its form.
    #[must_use]
    pub fn mixes_scripts(&self) -> bool {
        *self == MIXED_LOCAL || *self == MIXED_DOMAIN
    }
}

const MAX_EMAIL_BYTES: usize = 254;
const MAX_LOCAL_CHARS: usize = 64;
const MAX_LABEL_CHARS: usize = 63;

const MIXED_LOCAL: InvalidEmail =
    InvalidEmail("Email mixes scripts (such as Latin and Cyrillic) before the @");
const MIXED_DOMAIN: InvalidEmail =
    InvalidEmail("Email has a domain label that mixes scripts (such as Latin and Cyrillic)");

/// `raw` NFKC-normalised and lower-cased (and normalised again, should lower-casing have
/// undone NFKC), so that normalising twice changes nothing. ASCII needs neither NFKC nor
/// Unicode case rules: it takes the fast path (every login parses an email).
fn normalize(raw: &str) -> String {
    if raw.is_ascii() {
        return raw.to_ascii_lowercase();
    }
    let lowered = raw.nfkc().collect::<String>().to_lowercase();
    if unicode_normalization::is_nfkc_quick(lowered.chars())
        == unicode_normalization::IsNormalized::Yes
    {
        lowered
    } else {
        lowered.nfkc().collect()
    }
}

impl Email {
    /// Trims, NFKC-normalises, lower-cases and checks `raw`.
    ///
    /// # Errors
    /// [`InvalidEmail`] with a sentence saying what is wrong.
    pub fn parse(raw: &str) -> Result<Self, InvalidEmail> {
        let email = normalize(raw.trim());
        check_form(&email)?;
        if !email.is_ascii() {
            check_scripts(&email)?;
        }
        Ok(Self(email))
    }

    /// An address as a store holds it, taken as it is: checked for its form only, neither
    /// normalised nor checked for mixed scripts, so that rows written under older rules
    /// (before NFKC, or two look-alikes kept apart) still load, and write back unchanged.
    /// For stores only; everything a client sends goes through [`parse`](Self::parse).
    ///
    /// # Errors
    /// [`InvalidEmail`] when the stored text is not a plausible address at all.
    pub fn from_stored(stored: impl Into<String>) -> Result<Self, InvalidEmail> {
        let stored = stored.into();
        check_form(&stored)?;
        Ok(Self(stored))
    }

    /// This address in today's normal form (NFKC, lower case), checked for its form but not
    /// for mixed scripts: what a store puts in place of an address written before the form
    /// changed. For anything [`parse`](Self::parse) made, the address itself.
    ///
    /// # Errors
    /// [`InvalidEmail`] when the normal form is not a plausible address.
    pub fn normalized(&self) -> Result<Self, InvalidEmail> {
        let email = normalize(&self.0);
        check_form(&email)?;
        Ok(Self(email))
    }

    /// The address's confusable skeleton (Unicode UTS #39): two addresses that look alike
    /// have equal skeletons (`paypa1@example.com` and `paypal@example.com`,
    /// `user@соса.com` in Cyrillic and `user@coca.com`). Computed over the normal form, so
    /// an address stored before NFKC has its normalised twin's skeleton. Not for display:
    /// a key to compare, stored beside the address.
    #[must_use]
    pub fn skeleton(&self) -> String {
        let normal = normalize(&self.0);
        unicode_security::skeleton(&normal).collect()
    }

    /// The address as stored.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The length, local part and domain of a normalised address.
fn check_form(email: &str) -> Result<(), InvalidEmail> {
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
    check_domain(domain)
}

/// The local part, and each domain label, in one script (UTS #39 single-script: characters
/// of the Common and Inherited scripts, such as digits, `-`, `.` and `+`, fit any script).
fn check_scripts(email: &str) -> Result<(), InvalidEmail> {
    let Some((local, domain)) = email.split_once('@') else {
        return Err(InvalidEmail("Email must contain an @"));
    };
    if !local.is_single_script() {
        return Err(MIXED_LOCAL);
    }
    if domain.split('.').all(MixedScript::is_single_script) {
        Ok(())
    } else {
        Err(MIXED_DOMAIN)
    }
}

fn check_local_part(local: &str) -> Result<(), InvalidEmail> {
    const INVALID: InvalidEmail = InvalidEmail("Email has an invalid part before the @");
    if local.is_empty() || local.starts_with('.') || local.ends_with('.') || local.contains("..") {
        return Err(INVALID);
    }
    // Counted as it is checked: one pass, no allocation (every listed user goes through
    // here on its way out of the store).
    let mut chars = 0;
    for c in local.chars() {
        chars += 1;
        if chars > MAX_LOCAL_CHARS || !(c.is_alphanumeric() || is_local_symbol(c)) {
            return Err(INVALID);
        }
    }
    Ok(())
}

/// The symbols RFC 5322's `atext` allows besides letters and digits (and `.`, between them).
fn is_local_symbol(c: char) -> bool {
    matches!(
        c,
        '.' | '!'
            | '#'
            | '$'
            | '%'
            | '&'
            | '\''
            | '*'
            | '+'
            | '/'
            | '='
            | '?'
            | '^'
            | '_'
            | '`'
            | '{'
            | '|'
            | '}'
            | '~'
            | '-'
    )
}

fn check_domain(domain: &str) -> Result<(), InvalidEmail> {
    const INVALID: InvalidEmail = InvalidEmail("Email has an invalid domain");
    if !domain.contains('.') {
        return Err(InvalidEmail("Email domain must contain a dot"));
    }
    let mut tld = "";
    for label in domain.split('.') {
        let plausible = !label.is_empty()
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label.chars().count() <= MAX_LABEL_CHARS
            && label.chars().all(|c| c.is_alphanumeric() || c == '-');
        if !plausible {
            return Err(INVALID);
        }
        tld = label;
    }
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

    #[test]
    fn nfkc_comes_before_lower_casing() {
        for (raw, normal) in [
            // Fullwidth letters and the fullwidth @.
            ("ａｄｍｉｎ@example.com", "admin@example.com"),
            ("ＡＤＭＩＮ＠ＥＸＡＭＰＬＥ．ＣＯＭ", "admin@example.com"),
            // Mathematical bold letters.
            ("𝐚𝐝𝐦𝐢𝐧@example.com", "admin@example.com"),
            ("𝐀𝐃𝐌𝐈𝐍@𝐞𝐱𝐚𝐦𝐩𝐥𝐞.com", "admin@example.com"),
            // A ligature, and a composed and a decomposed é.
            ("ﬁnance@example.com", "finance@example.com"),
            ("jos\u{e9}@example.com", "jos\u{e9}@example.com"),
            ("jose\u{301}@example.com", "jos\u{e9}@example.com"),
        ] {
            assert_eq!(
                Email::parse(raw).map(|e| e.0),
                Ok(normal.to_owned()),
                "{raw}"
            );
        }
    }

    #[test]
    fn refuses_mixed_scripts_in_a_label_or_the_local_part() {
        for bad in [
            // A Cyrillic а in a Latin domain label.
            "admin@ex\u{430}mple.com",
            // And in the local part.
            "\u{430}dmin@example.com",
            // Latin with Greek (ο) before the @.
            "b\u{3bf}b@example.com",
            // Latin with Cyrillic in the top-level domain.
            "admin@example.c\u{43e}m",
            // Latin with Han.
            "taro\u{7530}\u{4e2d}@example.jp",
        ] {
            let refused = Email::parse(bad);
            assert!(
                refused.as_ref().is_err_and(InvalidEmail::mixes_scripts),
                "{bad:?}: {refused:?}"
            );
        }
        assert!(!Email::parse("plain").unwrap_err().mixes_scripts());
    }

    #[test]
    fn accepts_one_script_per_label() {
        for ok in [
            // All Cyrillic, with digits, dots, + and - (Common: they fit any script).
            "\u{43f}\u{440}\u{438}\u{432}\u{435}\u{442}.\u{43c}\u{438}\u{440}+1@\u{43f}\u{440}\u{438}\u{43c}\u{435}\u{440}-2.\u{440}\u{444}",
            // A Cyrillic label beside Latin ones: each label has its own script.
            "user@\u{441}\u{43e}\u{441}\u{430}.com",
            // All Greek.
            "\u{3b1}\u{3bb}\u{3c6}\u{3b1}@\u{3c0}\u{3b1}\u{3c1}\u{3ac}\u{3b4}\u{3b5}\u{3b9}\u{3b3}\u{3bc}\u{3b1}.\u{3b5}\u{3bb}",
            // Japanese: Han with Hiragana and Katakana is one writing system.
            "\u{7530}\u{4e2d}\u{305f}\u{308d}\u{3046}@example.jp",
            // Latin with accents.
            "jos\u{e9}@ex\u{e4}mple.de",
        ] {
            assert!(Email::parse(ok).is_ok(), "{ok} should be accepted");
        }
    }

    #[test]
    fn look_alikes_share_a_skeleton() {
        let skeleton = |raw: &str| Email::parse(raw).unwrap().skeleton();
        let paypal = skeleton("paypal@example.com");
        assert_eq!(skeleton("paypa1@example.com"), paypal);
        // Lower-casing comes first: a capital I is an i, which looks like no l.
        assert_eq!(
            skeleton("PaypaI@example.com"),
            skeleton("paypai@example.com")
        );
        assert_ne!(skeleton("PaypaI@example.com"), paypal);
        assert_eq!(
            skeleton("rnicrosoft@example.com"),
            skeleton("microsoft@example.com")
        );
        // A whole-script Cyrillic label ("соса") passes the script check, but not this.
        assert_eq!(
            skeleton("user@\u{441}\u{43e}\u{441}\u{430}.com"),
            skeleton("user@coca.com")
        );
        assert_ne!(
            skeleton("paypal@example.com"),
            skeleton("paypal@example.org")
        );
        assert_ne!(skeleton("ann@example.com"), skeleton("bob@example.com"));
    }

    #[test]
    fn stored_addresses_load_as_they_are() {
        // Written before NFKC, or a look-alike from before the script check.
        for stored in ["ａｄｍｉｎ@example.com", "admin@ex\u{430}mple.com"] {
            let email = Email::from_stored(stored).unwrap();
            assert_eq!(email.as_str(), stored);
            assert_eq!(
                email.skeleton(),
                Email::parse("admin@example.com").unwrap().skeleton()
            );
        }
        assert_eq!(
            Email::from_stored("ａｄｍｉｎ@example.com")
                .unwrap()
                .normalized(),
            Email::parse("admin@example.com")
        );
        assert!(Email::from_stored("not an email").is_err());
    }

    proptest! {
        #[test]
        fn parsing_never_panics_and_is_idempotent(raw in "\\PC{0,80}") {
            if let Ok(email) = Email::parse(&raw) {
                let again = Email::parse(email.as_str()).unwrap();
                prop_assert_eq!(again, email.clone());
                prop_assert!(email.as_str().len() <= MAX_EMAIL_BYTES);
                prop_assert_eq!(email.as_str().matches('@').count(), 1);
                prop_assert_eq!(email.normalized().unwrap(), email.clone());
                prop_assert_eq!(Email::from_stored(email.as_str()).unwrap(), email);
            }
        }

        #[test]
        fn unicode_addresses_normalise_once(
            raw in "[a-zA-Z\u{430}-\u{44f}\u{3b1}-\u{3c9}\u{ff21}-\u{ff3a}\u{ff41}-\u{ff5a}\u{1d400}-\u{1d433}\u{e0}-\u{ff}\u{130}\u{3d0}-\u{3f5}0-9]{1,12}@[a-z\u{430}-\u{44f}\u{ff41}-\u{ff5a}]{1,8}\\.[a-z\u{ff41}-\u{ff5a}]{2,4}"
        ) {
            if let Ok(email) = Email::parse(&raw) {
                prop_assert_eq!(Email::parse(email.as_str()).unwrap(), email.clone());
                prop_assert_eq!(email.normalized().unwrap(), email.clone());
                // Stored as typed (before NFKC), it has its normal form's skeleton.
                if let Ok(stored) = Email::from_stored(&raw) {
                    prop_assert_eq!(stored.skeleton(), email.skeleton());
                }
            }
        }
    }
}
