use crate::{Error, Password, PasswordHash, PasswordHasher};

/// A "hasher" that stores passwords reversed with a marker: instant, deterministic, and
/// obviously not for production. For use-case tests that would otherwise spend their time
/// in bcrypt.
#[derive(Debug, Clone, Copy, Default)]
pub struct PlainHasher;

impl PasswordHasher for PlainHasher {
    fn hash(&self, password: &Password) -> Result<PasswordHash, Error> {
        Ok(PasswordHash::new(format!(
            "plain:{}",
            password.expose().chars().rev().collect::<String>()
        )))
    }

    fn verify(&self, candidate: &str, hash: &PasswordHash) -> Result<bool, Error> {
        let stored = hash
            .as_str()
            .strip_prefix("plain:")
            .ok_or_else(|| Error::internal("plain hash", "not a plain hash"))?;
        Ok(candidate.len() <= Password::MAX_BYTES && stored.chars().rev().eq(candidate.chars()))
    }

    fn verify_dummy(&self, _candidate: &str) {}
}
