use std::fmt;

use crate::{Error, Password, PasswordHash};

/// Hashes and verifies passwords. Implementations are CPU-heavy by design: callers run
/// them off any async executor.
pub trait PasswordHasher: Send + Sync {
    /// Hashes a new password.
    ///
    /// # Errors
    /// [`Error::Internal`] when the hasher fails.
    fn hash(&self, password: &Password) -> Result<PasswordHash, Error>;

    /// Whether `candidate` is the password behind `hash`.
    ///
    /// # Errors
    /// [`Error::Internal`] when the stored hash is malformed.
    fn verify(&self, candidate: &str, hash: &PasswordHash) -> Result<bool, Error>;

    /// Spends the time of one [`verify`](Self::verify) without a real hash, so that an
    /// unknown email costs what a wrong password costs.
    fn verify_dummy(&self, candidate: &str);
}

/// A bcrypt work factor: 4 to 31. Deserialized from its digits (a configuration's string).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(try_from = "String")]
pub struct BcryptCost(u32);

/// Why a number is not a bcrypt cost.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("must be an integer from 4 to 31")]
pub struct InvalidBcryptCost;

impl BcryptCost {
    /// The default: about a quarter of a second per hash on a current server core.
    pub const DEFAULT: Self = Self(12);

    /// Checks the range.
    ///
    /// # Errors
    /// [`InvalidBcryptCost`] outside 4..=31.
    pub fn new(cost: u32) -> Result<Self, InvalidBcryptCost> {
        if (4..=31).contains(&cost) {
            Ok(Self(cost))
        } else {
            Err(InvalidBcryptCost)
        }
    }

    /// The number itself.
    #[must_use]
    pub fn get(self) -> u32 {
        self.0
    }
}

impl TryFrom<String> for BcryptCost {
    type Error = InvalidBcryptCost;

    /// The digits of a cost, spaces around them allowed.
    fn try_from(digits: String) -> Result<Self, Self::Error> {
        let cost = digits.trim().parse().map_err(|_| InvalidBcryptCost)?;
        Self::new(cost)
    }
}

/// bcrypt at a fixed cost, with a precomputed hash for dummy verifications.
pub struct BcryptHasher {
    cost: BcryptCost,
    dummy: PasswordHash,
}

impl BcryptHasher {
    /// Creates a hasher; computes one hash up front (the dummy), so this takes as long as
    /// one hash at `cost`.
    ///
    /// # Errors
    /// [`Error::Internal`] when bcrypt fails.
    pub fn new(cost: BcryptCost) -> Result<Self, Error> {
        let mut random = [0u8; 18];
        getrandom::fill(&mut random).map_err(|e| Error::internal("random dummy password", e))?;
        let dummy = bcrypt::hash(random, cost.get())
            .map_err(|e| Error::internal("bcrypt dummy hash", e))?;
        Ok(Self {
            cost,
            dummy: PasswordHash::new(dummy),
        })
    }
}

impl fmt::Debug for BcryptHasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BcryptHasher")
            .field("cost", &self.cost)
            .finish_non_exhaustive()
    }
}

impl PasswordHasher for BcryptHasher {
    fn hash(&self, password: &Password) -> Result<PasswordHash, Error> {
        bcrypt::hash(password.expose(), self.cost.get())
            .map(PasswordHash::new)
            .map_err(|e| Error::internal("bcrypt hash", e))
    }

    fn verify(&self, candidate: &str, hash: &PasswordHash) -> Result<bool, Error> {
        // bcrypt would read only the first 72 bytes; a longer candidate can never be a
        // password we accepted, so it must not match on its prefix.
        if candidate.len() > Password::MAX_BYTES {
            self.verify_dummy(candidate);
            return Ok(false);
        }
        bcrypt::verify(candidate, hash.as_str()).map_err(|e| Error::internal("bcrypt verify", e))
    }

    fn verify_dummy(&self, candidate: &str) {
        let truncated = candidate
            .as_bytes()
            .get(..Password::MAX_BYTES)
            .unwrap_or(candidate.as_bytes());
        // The outcome is meaningless by construction; only the time spent matters.
        let _ = bcrypt::verify(truncated, self.dummy.as_str());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cost_range() {
        assert!(BcryptCost::new(3).is_err());
        assert!(BcryptCost::new(4).is_ok());
        assert!(BcryptCost::new(31).is_ok());
        assert!(BcryptCost::new(32).is_err());
    }

    #[test]
    fn hashes_verify_and_long_candidates_never_match_on_a_prefix() {
        let hasher = BcryptHasher::new(BcryptCost::new(4).unwrap()).unwrap();
        let password = Password::parse("x".repeat(72)).unwrap();
        let hash = hasher.hash(&password).unwrap();
        assert!(hash.as_str().starts_with("$2"));
        assert!(hasher.verify(password.expose(), &hash).unwrap());
        assert!(!hasher.verify("wrong password", &hash).unwrap());
        assert!(!hasher.verify(&"x".repeat(73), &hash).unwrap());
        assert!(hasher
            .verify("x", &PasswordHash::new("not a hash".into()))
            .is_err());
    }
}
