use std::collections::HashSet;
use std::fmt;
use std::sync::OnceLock;

/// A password as a user chose it: 8 to 72 bytes of UTF-8.
///
/// bcrypt reads at most 72 bytes, so a longer password is refused rather than silently
/// truncated. It has no `Display`, and its `Debug` prints `Password(***)`, so it cannot end
/// up in a log line by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

/// Why a string is not an acceptable password.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidPassword {
    /// Fewer than [`Password::MIN_BYTES`] bytes.
    #[error("Password must be at least 8 bytes long")]
    TooShort,
    /// More than [`Password::MAX_BYTES`] bytes.
    #[error("Password must be at most 72 bytes long (bcrypt reads no more)")]
    TooLong,
    /// Holds a control character (NUL, a newline, …): nobody types one, and a NUL ends a
    /// C string early in some bcrypt implementations.
    #[error("Password must not contain control characters")]
    ControlCharacter,
    /// Nothing but whitespace.
    #[error("Password must not be only spaces: choose one with something in it")]
    OnlyWhitespace,
    /// On the list of commonly used passwords, which attackers try first.
    #[error("Password is too common: it is on a list of frequently used passwords that attackers try first; choose another")]
    Common,
}

/// The common passwords refused at registration and reset (see `data/README.md`).
fn common_passwords() -> &'static HashSet<&'static str> {
    static LIST: OnceLock<HashSet<&'static str>> = OnceLock::new();
    LIST.get_or_init(|| {
        include_str!("../data/common-passwords.txt")
            .lines()
            .collect()
    })
}

impl InvalidPassword {
    /// Whether the password was refused for being easy to guess (the API's
    /// `weak_password`) rather than for its shape.
    #[must_use]
    pub fn is_weak(&self) -> bool {
        matches!(self, Self::Common | Self::OnlyWhitespace)
    }
}

impl Password {
    /// The fewest bytes a password may have.
    pub const MIN_BYTES: usize = 8;
    /// The most bytes a password may have: all bcrypt reads.
    pub const MAX_BYTES: usize = 72;

    /// Checks a new password: 8 to 72 bytes, no control characters, not only whitespace,
    /// and not on the list of common passwords (compared trimmed and lower-cased, so
    /// `" Password "` is as common as `password`). No composition rules (NIST SP 800-63B).
    ///
    /// # Errors
    /// [`InvalidPassword`] saying why.
    pub fn parse(raw: impl Into<String>) -> Result<Self, InvalidPassword> {
        let raw = raw.into();
        if raw.len() < Self::MIN_BYTES {
            Err(InvalidPassword::TooShort)
        } else if raw.len() > Self::MAX_BYTES {
            Err(InvalidPassword::TooLong)
        } else if raw.chars().any(char::is_control) {
            Err(InvalidPassword::ControlCharacter)
        } else if raw.trim().is_empty() {
            Err(InvalidPassword::OnlyWhitespace)
        } else if common_passwords().contains(raw.trim().to_lowercase().as_str()) {
            Err(InvalidPassword::Common)
        } else {
            Ok(Self(raw))
        }
    }

    /// The password itself, for the hasher.
    #[must_use]
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(***)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn common_passwords_are_refused_whatever_their_case() {
        for common in [
            "password",
            "12345678",
            "password123",
            "Password1",
            "QWERTYUIOP",
            "iloveyou",
        ] {
            let expected = if common.len() < 8 {
                InvalidPassword::TooShort
            } else {
                InvalidPassword::Common
            };
            assert_eq!(Password::parse(common), Err(expected), "{common}");
        }
        assert!(common_passwords().len() >= 10_000);
        for fine in [
            "correct horse battery staple",
            "analytical engine",
            "tr0mbone-kettle",
        ] {
            assert!(Password::parse(fine).is_ok(), "{fine}");
        }
    }

    #[test]
    fn bounds_are_in_bytes() {
        assert_eq!(Password::parse("1234567"), Err(InvalidPassword::TooShort));
        assert!(Password::parse("87654329").is_ok());
        assert!(Password::parse("x".repeat(72)).is_ok());
        assert_eq!(
            Password::parse("x".repeat(73)),
            Err(InvalidPassword::TooLong)
        );
        // Four characters, but sixteen bytes.
        assert!(Password::parse("😀😀😀😀").is_ok());
        // 24 characters, 72 bytes: fine; one more three-byte character is not.
        assert!(Password::parse("€".repeat(24)).is_ok());
        assert_eq!(
            Password::parse("€".repeat(25)),
            Err(InvalidPassword::TooLong)
        );
    }

    #[test]
    fn control_characters_blanks_and_padded_common_passwords_are_refused() {
        for control in [
            "\0\0\0\0\0\0\0\0",
            "good password\0",
            "line\nbreak!",
            "tab\there1",
        ] {
            assert_eq!(
                Password::parse(control),
                Err(InvalidPassword::ControlCharacter),
                "{control:?}"
            );
        }
        for blank in [
            "        ",
            "\u{3000}\u{3000}\u{3000}",
            "\u{a0}".repeat(8).as_str(),
        ] {
            let refused = Password::parse(blank).unwrap_err();
            assert_eq!(refused, InvalidPassword::OnlyWhitespace, "{blank:?}");
            assert!(refused.is_weak());
        }
        for padded in [" password ", "  Password1", "QWERTYUIOP\u{3000}"] {
            let refused = Password::parse(padded).unwrap_err();
            assert_eq!(refused, InvalidPassword::Common, "{padded:?}");
            assert!(refused.is_weak());
        }
        assert!(!InvalidPassword::ControlCharacter.is_weak());
        // Spaces inside a good password are fine.
        assert!(Password::parse("  correct horse battery  ").is_ok());
    }

    #[test]
    fn debug_hides_the_password() {
        let password = Password::parse("correct horse battery").unwrap();
        assert_eq!(format!("{password:?}"), "Password(***)");
    }

    proptest! {
        #[test]
        fn accepts_exactly_8_to_72_uncommon_bytes(raw in "\\PC{0,90}") {
            let ok = (8..=72).contains(&raw.len())
                && !raw.trim().is_empty()
                && !common_passwords().contains(raw.trim().to_lowercase().as_str());
            prop_assert_eq!(Password::parse(raw).is_ok(), ok);
        }
    }
}
