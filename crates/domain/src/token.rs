//! Access tokens: the port the use cases issue and verify them through ([`TokenService`]),
//! and its HS256 implementation with a shared secret.

use std::fmt;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};

use crate::claims::{Claims, TokenClaims, TokenTtl};
use crate::jwks::Jwks;
use crate::random::random_hex;
use crate::{Error, User};

/// A shared secret for HS256 tokens: at least 32 bytes. Its `Debug` is redacted.
#[derive(Clone, PartialEq, Eq)]
pub struct JwtSecret(Vec<u8>);

/// Why bytes are not a usable JWT secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("must be at least 32 bytes long")]
pub struct InvalidJwtSecret;

impl JwtSecret {
    /// The fewest bytes a secret may have (HS256's output size).
    pub const MIN_BYTES: usize = 32;

    /// Checks the length.
    ///
    /// # Errors
    /// [`InvalidJwtSecret`] when shorter than 32 bytes.
    pub fn new(secret: impl Into<Vec<u8>>) -> Result<Self, InvalidJwtSecret> {
        let secret = secret.into();
        if secret.len() >= Self::MIN_BYTES {
            Ok(Self(secret))
        } else {
            Err(InvalidJwtSecret)
        }
    }

    /// A fresh random secret of 64 hexadecimal characters (32 random bytes), printable so
    /// that it can be stored as text.
    ///
    /// # Errors
    /// [`Error::Internal`] when the system has no randomness to give.
    pub fn generate() -> Result<Self, Error> {
        Ok(Self(random_hex(32)?.into_bytes()))
    }

    /// The secret's bytes.
    #[must_use]
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for JwtSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("JwtSecret(***)")
    }
}

/// A freshly issued access token.
#[derive(Clone, PartialEq, Eq)]
pub struct AccessToken {
    /// The encoded token.
    pub token: String,
    /// Its lifetime in seconds.
    pub expires_in: u64,
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessToken")
            .field("token", &"***")
            .field("expires_in", &self.expires_in)
            .finish()
    }
}

/// Issues and verifies access tokens.
pub trait TokenService: Send + Sync {
    /// A new access token for `user` in the session `session_id` (its `sid`).
    ///
    /// # Errors
    /// [`Error::Internal`] when signing fails.
    fn issue(&self, user: &User, session_id: i64) -> Result<AccessToken, Error>;

    /// Checks the signature, algorithm, expiry and shape of `token`.
    ///
    /// # Errors
    /// [`Error::Unauthenticated`] for any token that is not one of ours and current.
    fn verify(&self, token: &str) -> Result<TokenClaims, Error>;

    /// The public keys other services verify tokens with (none for a shared secret).
    fn jwks(&self) -> Jwks;
}

/// HS256 JSON Web Tokens with `sub`, `iat`, `exp`, `jti`, `ver` and `sid`.
///
/// Verification pins the algorithm to HS256, requires `exp`, `iat` and `sub`, allows no
/// clock leeway and refuses any claim of the wrong type or any unknown claim.
pub struct Hs256Tokens {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    ttl: TokenTtl,
}

impl Hs256Tokens {
    /// Tokens signed with `secret` that live for `ttl`.
    ///
    /// # Errors
    /// [`Error::Internal`] when the key cannot be built.
    pub fn new(secret: &JwtSecret, ttl: TokenTtl) -> Result<Self, Error> {
        let encoding = EncodingKey::from_secret(secret.expose())
            .map_err(|e| Error::internal("JWT encoding key", e))?;
        let decoding = DecodingKey::from_secret(secret.expose())
            .map_err(|e| Error::internal("JWT decoding key", e))?;
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        validation.validate_exp = true;
        validation.set_required_spec_claims(&["exp", "iat", "sub"]);
        Ok(Self {
            encoding,
            decoding,
            validation,
            ttl,
        })
    }
}

impl fmt::Debug for Hs256Tokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hs256Tokens")
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl TokenService for Hs256Tokens {
    fn issue(&self, user: &User, session_id: i64) -> Result<AccessToken, Error> {
        let claims = Claims::for_user(user, session_id, self.ttl)?;
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|e| Error::internal("JWT signing", e))?;
        Ok(AccessToken {
            token,
            expires_in: self.ttl.as_secs(),
        })
    }

    fn verify(&self, token: &str) -> Result<TokenClaims, Error> {
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map_err(|_| Error::Unauthenticated)?
            .claims
            .into_token_claims()
    }

    fn jwks(&self) -> Jwks {
        Jwks::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Email, PasswordHash, UserId, UserStatus};
    use chrono::Utc;
    use proptest::prelude::*;

    fn secret() -> JwtSecret {
        JwtSecret::new(*b"0123456789abcdef0123456789abcdef").unwrap()
    }

    fn user() -> User {
        User {
            id: UserId::new(42).unwrap(),
            email: Email::parse("ada@example.com").unwrap(),
            password_hash: PasswordHash::new("h".into()),
            is_admin: false,
            status: UserStatus::Approved,
            created_at: crate::now(),
            approved_at: None,
            approved_by: None,
            token_version: 3,
            reason: None,
            email_verified: false,
            mfa_enabled: false,
            rejected_at: None,
            rejected_by: None,
            decision_note: None,
        }
    }

    fn sign(claims: &serde_json::Value, alg: Algorithm, key: &[u8]) -> String {
        jsonwebtoken::encode(
            &Header::new(alg),
            claims,
            &EncodingKey::from_secret(key).unwrap(),
        )
        .unwrap()
    }

    #[test]
    fn secrets_need_32_bytes_and_hide_in_debug() {
        assert!(JwtSecret::new(vec![b'x'; 31]).is_err());
        let generated = JwtSecret::generate().unwrap();
        assert_eq!(generated.expose().len(), 64);
        assert_ne!(generated, JwtSecret::generate().unwrap());
        assert_eq!(format!("{generated:?}"), "JwtSecret(***)");
    }

    #[test]
    fn round_trip() {
        let tokens = Hs256Tokens::new(&secret(), TokenTtl::DEFAULT).unwrap();
        let issued = tokens.issue(&user(), 1).unwrap();
        assert_eq!(issued.expires_in, 15 * 60);
        let claims = tokens.verify(&issued.token).unwrap();
        assert_eq!(claims.user_id.get(), 42);
        assert_eq!(claims.token_version, 3);
        assert_eq!(
            (claims.expires_at - claims.issued_at).num_seconds(),
            15 * 60
        );
        assert_eq!(claims.session_id, 1);
        assert_eq!(claims.id.len(), 32);
        let again = tokens.issue(&user(), 1).unwrap();
        assert_ne!(tokens.verify(&again.token).unwrap().id, claims.id);
    }

    /// `iat` in the future beyond the allowed skew (see `claims.rs`), on a token signed with
    /// the right key.
    #[test]
    fn a_token_issued_in_the_future_is_refused() {
        let tokens = Hs256Tokens::new(&secret(), TokenTtl::DEFAULT).unwrap();
        let now = Utc::now().timestamp();
        let future = serde_json::json!({"sub": "42", "iat": now + 3600, "exp": now + 7200, "jti": "j", "ver": 0, "sid": 1});
        assert!(tokens
            .verify(&sign(&future, Algorithm::HS256, secret().expose()))
            .is_err());
    }

    #[test]
    fn refuses_forged_expired_and_malformed_tokens() {
        let tokens = Hs256Tokens::new(&secret(), TokenTtl::DEFAULT).unwrap();
        let now = Utc::now().timestamp();
        let good = serde_json::json!({"sub": "42", "iat": now, "exp": now + 60, "jti": "j", "ver": 0, "sid": 1});
        assert!(tokens
            .verify(&sign(&good, Algorithm::HS256, secret().expose()))
            .is_ok());

        let mut cases: Vec<(&str, String)> = vec![
            ("wrong key", sign(&good, Algorithm::HS256, &[b'k'; 32])),
            ("HS512", sign(&good, Algorithm::HS512, secret().expose())),
            ("garbage", "not.a.token".into()),
            ("empty", String::new()),
        ];
        let variants = [
            (
                "expired",
                serde_json::json!({"sub": "42", "iat": now - 120, "exp": now - 1, "jti": "j", "ver": 0, "sid": 1}),
            ),
            (
                "no exp",
                serde_json::json!({"sub": "42", "iat": now, "jti": "j", "ver": 0, "sid": 1}),
            ),
            (
                "exp never",
                serde_json::json!({"sub": "42", "iat": now, "exp": "never", "jti": "j", "ver": 0, "sid": 1}),
            ),
            (
                "no iat",
                serde_json::json!({"sub": "42", "exp": now + 60, "jti": "j", "ver": 0, "sid": 1}),
            ),
            (
                "sub not an id",
                serde_json::json!({"sub": "0", "iat": now, "exp": now + 60, "jti": "j", "ver": 0, "sid": 1}),
            ),
            (
                "sub a number",
                serde_json::json!({"sub": 42, "iat": now, "exp": now + 60, "jti": "j", "ver": 0, "sid": 1}),
            ),
            (
                "no ver",
                serde_json::json!({"sub": "42", "iat": now, "exp": now + 60, "jti": "j", "sid": 1}),
            ),
            (
                "no sid (a token from before sessions)",
                serde_json::json!({"sub": "42", "iat": now, "exp": now + 60, "jti": "j", "ver": 0}),
            ),
        ];
        for (name, claims) in variants {
            cases.push((name, sign(&claims, Algorithm::HS256, secret().expose())));
        }
        // alg "none": header {"alg":"none"} and an empty signature.
        let b64 = |s: &str| {
            use base64_like::encode;
            encode(s.as_bytes())
        };
        let none = format!(
            "{}.{}.",
            b64(r#"{"alg":"none","typ":"JWT"}"#),
            b64(&good.to_string())
        );
        cases.push(("alg none", none));
        // A valid token with its payload swapped for another user's.
        let valid = sign(&good, Algorithm::HS256, secret().expose());
        let parts: Vec<&str> = valid.split('.').collect();
        let other = serde_json::json!({"sub": "1", "iat": now, "exp": now + 60, "jti": "j", "ver": 0, "sid": 1});
        cases.push((
            "tampered",
            format!("{}.{}.{}", parts[0], b64(&other.to_string()), parts[2]),
        ));

        for (name, token) in cases {
            assert!(
                matches!(tokens.verify(&token), Err(Error::Unauthenticated)),
                "{name}"
            );
        }
    }

    /// Base64url without padding, enough to forge headers in tests.
    mod base64_like {
        const ALPHABET: &[u8; 64] =
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

        pub fn encode(input: &[u8]) -> String {
            let mut out = String::new();
            for chunk in input.chunks(3) {
                let b = [
                    chunk[0],
                    *chunk.get(1).unwrap_or(&0),
                    *chunk.get(2).unwrap_or(&0),
                ];
                let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
                for i in 0..=chunk.len() {
                    out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
                }
            }
            out
        }
    }

    proptest! {
        #[test]
        fn verify_never_panics(token in "\\PC{0,200}") {
            let tokens = Hs256Tokens::new(&secret(), TokenTtl::DEFAULT).unwrap();
            prop_assert!(tokens.verify(&token).is_err());
        }
    }
}
