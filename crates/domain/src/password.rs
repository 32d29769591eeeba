use std::fmt;

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
}

impl Password {
    /// The fewest bytes a password may have.
    pub const MIN_BYTES: usize = 8;
    /// The most bytes a password may have: all bcrypt reads.
    pub const MAX_BYTES: usize = 72;

    /// Checks the length of `raw`.
    ///
    /// # Errors
    /// [`InvalidPassword`] when it is shorter than 8 or longer than 72 bytes.
    pub fn parse(raw: impl Into<String>) -> Result<Self, InvalidPassword> {
        let raw = raw.into();
        if raw.len() < Self::MIN_BYTES {
            Err(InvalidPassword::TooShort)
        } else if raw.len() > Self::MAX_BYTES {
            Err(InvalidPassword::TooLong)
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
    fn bounds_are_in_bytes() {
        assert_eq!(Password::parse("1234567"), Err(InvalidPassword::TooShort));
        assert!(Password::parse("12345678").is_ok());
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
    fn debug_hides_the_password() {
        let password = Password::parse("correct horse battery").unwrap();
        assert_eq!(format!("{password:?}"), "Password(***)");
    }

    proptest! {
        #[test]
        fn accepts_exactly_8_to_72_bytes(raw in "\\PC{0,90}") {
            let ok = (8..=72).contains(&raw.len());
            prop_assert_eq!(Password::parse(raw).is_ok(), ok);
        }
    }
}
