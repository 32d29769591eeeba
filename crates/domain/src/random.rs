//! Randomness for the tokens and keys Gatehouse makes.

use crate::Error;

/// The SHA-256 of `text` as lower-case hexadecimal: how a high-entropy secret (a device
/// token, an invitation code) is stored, so that a copy of the database holds none.
pub(crate) fn sha256_hex(text: &str) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// `bytes` random bytes as lower-case hexadecimal.
pub(crate) fn random_hex(bytes: usize) -> Result<String, Error> {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).map_err(|e| Error::internal("system randomness", e))?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}
