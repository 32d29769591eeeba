//! Randomness for the tokens and keys Gatehouse makes.

use crate::Error;

/// `bytes` random bytes as lower-case hexadecimal.
pub(crate) fn random_hex(bytes: usize) -> Result<String, Error> {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).map_err(|e| Error::internal("system randomness", e))?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}
