//! Time-based one-time passwords (the MFA issue, "Multi-factor sign-in" in API.md): RFC
//! 6238 with HMAC-SHA-1, 6 digits, 30-second steps, one step of skew either way, and a
//! code accepted at most once (the caller keeps the last step accepted).
//!
//! This module holds what a TOTP factor *is*: the secret, its `otpauth://` URI for
//! authenticator apps, and the check of a code at a moment. Where the secret is kept (and
//! how it is encrypted at rest) is the store's and the service's business.

use std::fmt;

use chrono::{DateTime, Utc};
use hmac::{KeyInit, Mac};

use crate::Error;

/// Seconds per step.
pub const STEP_SECONDS: i64 = 30;

/// Digits of a code.
pub const DIGITS: u32 = 6;

/// Steps either side of the current one that are accepted (clock skew).
pub const SKEW_STEPS: i64 = 1;

/// Bytes of a new secret: 160 bits, as RFC 4226 recommends for HMAC-SHA-1.
const SECRET_BYTES: usize = 20;

/// RFC 4648 base 32, the alphabet authenticator apps expect.
const BASE32: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// A TOTP secret. Its `Debug` hides it.
#[derive(Clone, PartialEq, Eq)]
pub struct TotpSecret(Vec<u8>);

impl TotpSecret {
    /// A new random secret (160 bits).
    ///
    /// # Errors
    /// [`Error::Internal`] when the system has no randomness to give.
    pub fn generate() -> Result<Self, Error> {
        let mut bytes = vec![0u8; SECRET_BYTES];
        getrandom::fill(&mut bytes).map_err(|e| Error::internal("system randomness", e))?;
        Ok(Self(bytes))
    }

    /// A secret from its bytes (as stored, once decrypted).
    #[must_use]
    pub fn from_bytes(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }

    /// The secret's bytes, for storing (encrypted).
    #[must_use]
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    /// The secret in RFC 4648 base 32 without padding, as authenticator apps take it typed.
    #[must_use]
    pub fn base32(&self) -> String {
        let mut out = String::with_capacity(self.0.len().div_ceil(5) * 8);
        let (mut buffer, mut bits) = (0u32, 0u32);
        for &byte in &self.0 {
            buffer = (buffer << 8) | u32::from(byte);
            bits += 8;
            while bits >= 5 {
                bits -= 5;
                out.push(char::from(BASE32[((buffer >> bits) & 31) as usize]));
            }
        }
        if bits > 0 {
            out.push(char::from(BASE32[((buffer << (5 - bits)) & 31) as usize]));
        }
        out
    }

    /// The secret of `text` in RFC 4648 base 32 (case, spaces and padding forgiven), as an
    /// authenticator app reads it; `None` for anything else.
    #[must_use]
    pub fn from_base32(text: &str) -> Option<Self> {
        let mut bytes = Vec::with_capacity(text.len() * 5 / 8);
        let (mut buffer, mut bits) = (0u32, 0u32);
        for c in text.chars().filter(|c| !c.is_whitespace() && *c != '=') {
            let upper = c.to_ascii_uppercase();
            let value = BASE32.iter().position(|&b| char::from(b) == upper)?;
            buffer = (buffer << 5) | u32::try_from(value).ok()?;
            bits += 5;
            if bits >= 8 {
                bits -= 8;
                bytes.push(u8::try_from((buffer >> bits) & 0xff).ok()?);
            }
        }
        (!bytes.is_empty()).then_some(Self(bytes))
    }

    /// The `otpauth://totp/…` URI an authenticator app reads from a QR code: the issuer
    /// and account label percent-encoded, the parameters spelled out.
    #[must_use]
    pub fn otpauth_uri(&self, issuer: &str, account: &str) -> String {
        format!(
            "otpauth://totp/{}:{}?secret={}&issuer={}&algorithm=SHA1&digits={DIGITS}&period={STEP_SECONDS}",
            encode(issuer),
            encode(account),
            self.base32(),
            encode(issuer),
        )
    }

    /// The code of `step` with `digits` digits (RFC 4226's dynamic truncation).
    #[must_use]
    pub fn code_at_step(&self, step: i64, digits: u32) -> String {
        let Ok(mut mac) = hmac::Hmac::<sha1::Sha1>::new_from_slice(&self.0) else {
            // HMAC takes a key of any length; this cannot happen.
            return String::new();
        };
        mac.update(&step.to_be_bytes());
        let digest = mac.finalize().into_bytes();
        let offset = usize::from(digest[digest.len() - 1] & 0x0f);
        let binary = (u32::from(digest[offset] & 0x7f) << 24)
            | (u32::from(digest[offset + 1]) << 16)
            | (u32::from(digest[offset + 2]) << 8)
            | u32::from(digest[offset + 3]);
        let modulus = 10u32.pow(digits);
        format!("{:0width$}", binary % modulus, width = digits as usize)
    }

    /// Checks `code` (6 digits; spaces ignored) at `now`, accepting the current step and
    /// [`SKEW_STEPS`] either side, but no step at or before `last_used` (a code is
    /// accepted once). Returns the step it matched, for the caller to keep as the last
    /// one used.
    #[must_use]
    pub fn verify(&self, code: &str, now: DateTime<Utc>, last_used: Option<i64>) -> Option<i64> {
        let code: String = code.chars().filter(|c| !c.is_whitespace()).collect();
        if code.len() != DIGITS as usize || !code.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let current = step_of(now);
        let mut matched = None;
        // Every candidate is computed and compared alike, so the time taken says nothing.
        for step in (current - SKEW_STEPS)..=(current + SKEW_STEPS) {
            let fresh = last_used.is_none_or(|last| step > last);
            if constant_time_eq(self.code_at_step(step, DIGITS).as_bytes(), code.as_bytes())
                && fresh
                && matched.is_none()
            {
                matched = Some(step);
            }
        }
        matched
    }
}

impl fmt::Debug for TotpSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TotpSecret(***)")
    }
}

/// The step `at` falls in.
#[must_use]
pub fn step_of(at: DateTime<Utc>) -> i64 {
    at.timestamp().div_euclid(STEP_SECONDS)
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Percent-encodes everything but unreserved characters (RFC 3986).
fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    /// RFC 6238, appendix B: the SHA-1 seed and its 8-digit codes.
    #[test]
    fn rfc_6238_test_vectors() {
        let secret = TotpSecret::from_bytes(b"12345678901234567890".to_vec());
        for (time, code) in [
            (59, "94287082"),
            (1_111_111_109, "07081804"),
            (1_111_111_111, "14050471"),
            (1_234_567_890, "89005924"),
            (2_000_000_000, "69279037"),
            (20_000_000_000, "65353130"),
        ] {
            let at = Utc.timestamp_opt(time, 0).unwrap();
            assert_eq!(secret.code_at_step(step_of(at), 8), code, "at {time}");
            // Six digits: the last six of the same number.
            assert_eq!(
                secret.code_at_step(step_of(at), DIGITS),
                code[2..],
                "at {time}"
            );
        }
    }

    #[test]
    fn a_code_is_accepted_within_one_step_either_way_and_once() {
        let secret = TotpSecret::from_bytes(b"12345678901234567890".to_vec());
        let at = Utc.timestamp_opt(1_111_111_111, 0).unwrap();
        let step = step_of(at);
        let code = secret.code_at_step(step, DIGITS);
        assert_eq!(secret.verify(&code, at, None), Some(step));
        assert_eq!(
            secret.verify(&format!("{} {}", &code[..3], &code[3..]), at, None),
            Some(step),
            "spaces are ignored"
        );
        assert_eq!(secret.verify(&code, at, Some(step)), None, "replayed");
        let late = at + chrono::Duration::seconds(STEP_SECONDS);
        assert_eq!(
            secret.verify(&code, late, None),
            Some(step),
            "one step late"
        );
        let too_late = at + chrono::Duration::seconds(2 * STEP_SECONDS);
        assert_eq!(secret.verify(&code, too_late, None), None, "two steps late");
        let early = secret.code_at_step(step + 1, DIGITS);
        assert_eq!(
            secret.verify(&early, at, None),
            Some(step + 1),
            "one step early"
        );
        assert_eq!(secret.verify("12345", at, None), None);
        assert_eq!(secret.verify("abcdef", at, None), None);
    }

    #[test]
    fn base32_reads_back() {
        for _ in 0..50 {
            let secret = TotpSecret::generate().unwrap();
            let read = TotpSecret::from_base32(&secret.base32().to_lowercase()).unwrap();
            assert_eq!(read.expose(), secret.expose());
        }
        assert_eq!(
            TotpSecret::from_base32("JBSWY3DPEHPK3PXP")
                .unwrap()
                .expose(),
            b"Hello!\xde\xad\xbe\xef"
        );
        assert!(TotpSecret::from_base32("not base 32!").is_none());
        assert!(TotpSecret::from_base32("").is_none());
    }

    #[test]
    fn secrets_read_as_base32_and_an_otpauth_uri() {
        let secret = TotpSecret::from_bytes(b"12345678901234567890".to_vec());
        assert_eq!(secret.base32(), "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ");
        assert_eq!(
            secret.otpauth_uri("Gatehouse", "ann@example.com"),
            "otpauth://totp/Gatehouse:ann%40example.com?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ\
             &issuer=Gatehouse&algorithm=SHA1&digits=6&period=30"
        );
        let fresh = TotpSecret::generate().unwrap();
        assert_eq!(fresh.expose().len(), 20);
        assert_eq!(fresh.base32().len(), 32);
        assert_ne!(fresh, TotpSecret::generate().unwrap());
        assert_eq!(format!("{fresh:?}"), "TotpSecret(***)");
    }
}
