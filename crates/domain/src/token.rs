use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::eddsa::Jwks;
use crate::{Error, User, UserId};

/// How long an access token stays valid: 1 second to 366 days.
///
/// Parsed from a number of seconds (`3600`) or a number with one unit: `s`, `m`, `h`, `d`
/// (`90s`, `15m`, `12h`, `7d`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenTtl(u64);

/// Why a string is not a token lifetime.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("must be a duration from 1s to 366d, such as 3600, 90s, 15m, 12h or 7d")]
pub struct InvalidTokenTtl;

impl TokenTtl {
    /// Seven days.
    pub const DEFAULT: Self = Self(7 * 24 * 3600);
    const MAX_SECONDS: u64 = 366 * 24 * 3600;

    /// A lifetime in seconds.
    ///
    /// # Errors
    /// [`InvalidTokenTtl`] outside 1 second to 366 days.
    pub fn from_secs(seconds: u64) -> Result<Self, InvalidTokenTtl> {
        if (1..=Self::MAX_SECONDS).contains(&seconds) {
            Ok(Self(seconds))
        } else {
            Err(InvalidTokenTtl)
        }
    }

    /// The lifetime in seconds.
    #[must_use]
    pub fn as_secs(self) -> u64 {
        self.0
    }
}

impl FromStr for TokenTtl {
    type Err = InvalidTokenTtl;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        let raw = raw.trim();
        let (digits, unit) = match raw.char_indices().last() {
            Some((at, c)) if c.is_ascii_alphabetic() => (&raw[..at], &raw[at..]),
            _ => (raw, "s"),
        };
        let scale = match unit {
            "s" => 1,
            "m" => 60,
            "h" => 3600,
            "d" => 24 * 3600,
            _ => return Err(InvalidTokenTtl),
        };
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(InvalidTokenTtl);
        }
        let count: u64 = digits.parse().map_err(|_| InvalidTokenTtl)?;
        Self::from_secs(count.checked_mul(scale).ok_or(InvalidTokenTtl)?)
    }
}

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

/// `bytes` random bytes as lower-case hexadecimal.
pub(crate) fn random_hex(bytes: usize) -> Result<String, Error> {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).map_err(|e| Error::internal("system randomness", e))?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
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

/// What a verified token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenClaims {
    /// Whose token it is (`sub`).
    pub user_id: UserId,
    /// The user's token version when it was issued (`ver`).
    pub token_version: i64,
    /// When it was issued (`iat`).
    pub issued_at: DateTime<Utc>,
    /// When it expires (`exp`).
    pub expires_at: DateTime<Utc>,
    /// Its unique id (`jti`).
    pub id: String,
}

/// Issues and verifies access tokens.
pub trait TokenService: Send + Sync {
    /// A new token for `user`.
    ///
    /// # Errors
    /// [`Error::Internal`] when signing fails.
    fn issue(&self, user: &User) -> Result<AccessToken, Error>;

    /// Checks the signature, algorithm, expiry and shape of `token`.
    ///
    /// # Errors
    /// [`Error::Unauthenticated`] for any token that is not one of ours and current.
    fn verify(&self, token: &str) -> Result<TokenClaims, Error>;

    /// The public keys other services verify tokens with (none for a shared secret).
    fn jwks(&self) -> Jwks;
}

/// How far in the future a token's `iat` may lie (another instance's clock may run ahead).
pub const MAX_CLOCK_SKEW_SECS: i64 = 60;

/// The JWT claims Gatehouse signs.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Claims {
    sub: String,
    iat: i64,
    exp: i64,
    jti: String,
    ver: i64,
}

impl Claims {
    /// Fresh claims for `user`, valid for `ttl` from now, with a random `jti`.
    pub(crate) fn for_user(user: &User, ttl: TokenTtl) -> Result<Self, Error> {
        let issued_at = Utc::now().timestamp();
        let ttl = i64::try_from(ttl.as_secs()).map_err(|e| Error::internal("token lifetime", e))?;
        Ok(Self {
            sub: user.id.to_string(),
            iat: issued_at,
            exp: issued_at + ttl,
            jti: random_hex(16)?,
            ver: user.token_version,
        })
    }

    /// What verified claims say, in domain types. The signature library lets a token
    /// through while `exp` equals the current second and ignores `iat`; here a token is
    /// expired from its `exp` second on, and one issued more than
    /// [`MAX_CLOCK_SKEW_SECS`] in the future is refused.
    pub(crate) fn into_token_claims(self) -> Result<TokenClaims, Error> {
        self.into_token_claims_at(Utc::now().timestamp())
    }

    fn into_token_claims_at(self, now: i64) -> Result<TokenClaims, Error> {
        if self.exp <= now || self.iat > now.saturating_add(MAX_CLOCK_SKEW_SECS) {
            return Err(Error::Unauthenticated);
        }
        Ok(TokenClaims {
            user_id: self.sub.parse().map_err(|_| Error::Unauthenticated)?,
            token_version: self.ver,
            issued_at: DateTime::from_timestamp(self.iat, 0).ok_or(Error::Unauthenticated)?,
            expires_at: DateTime::from_timestamp(self.exp, 0).ok_or(Error::Unauthenticated)?,
            id: self.jti,
        })
    }
}

/// HS256 JSON Web Tokens with `sub`, `iat`, `exp`, `jti` and `ver`.
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
    fn issue(&self, user: &User) -> Result<AccessToken, Error> {
        let issued_at = Utc::now().timestamp();
        let ttl =
            i64::try_from(self.ttl.as_secs()).map_err(|e| Error::internal("token lifetime", e))?;
        let claims = Claims {
            sub: user.id.to_string(),
            iat: issued_at,
            exp: issued_at + ttl,
            jti: random_hex(16)?,
            ver: user.token_version,
        };
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
    use crate::{Email, PasswordHash, UserStatus};
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
    fn ttl_parsing() {
        assert_eq!("7d".parse(), Ok(TokenTtl::DEFAULT));
        assert_eq!("3600".parse::<TokenTtl>().map(TokenTtl::as_secs), Ok(3600));
        assert_eq!("15m".parse::<TokenTtl>().map(TokenTtl::as_secs), Ok(900));
        assert_eq!("12h".parse::<TokenTtl>().map(TokenTtl::as_secs), Ok(43200));
        assert_eq!("90s".parse::<TokenTtl>().map(TokenTtl::as_secs), Ok(90));
        for bad in [
            "",
            "0",
            "0s",
            "-5",
            "7w",
            "d",
            "1.5h",
            "367d",
            "99999999999999999999d",
            "7 d",
        ] {
            assert_eq!(bad.parse::<TokenTtl>(), Err(InvalidTokenTtl), "{bad:?}");
        }
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
        let issued = tokens.issue(&user()).unwrap();
        assert_eq!(issued.expires_in, 7 * 24 * 3600);
        let claims = tokens.verify(&issued.token).unwrap();
        assert_eq!(claims.user_id.get(), 42);
        assert_eq!(claims.token_version, 3);
        assert_eq!(
            (claims.expires_at - claims.issued_at).num_seconds(),
            7 * 24 * 3600
        );
        assert_eq!(claims.id.len(), 32);
        let again = tokens.issue(&user()).unwrap();
        assert_ne!(tokens.verify(&again.token).unwrap().id, claims.id);
    }

    #[test]
    fn exp_is_exclusive_and_iat_may_not_lie_in_the_future() {
        let claims = |iat: i64, exp: i64| Claims {
            sub: "42".into(),
            iat,
            exp,
            jti: "j".into(),
            ver: 0,
        };
        let now = 1_800_000_000;
        assert!(claims(now - 10, now).into_token_claims_at(now).is_err());
        assert!(claims(now - 10, now + 1).into_token_claims_at(now).is_ok());
        assert!(claims(now + 60, now + 120)
            .into_token_claims_at(now)
            .is_ok());
        assert!(claims(now + 61, now + 120)
            .into_token_claims_at(now)
            .is_err());

        // The same through the signature check, on a token signed with the right key.
        let tokens = Hs256Tokens::new(&secret(), TokenTtl::DEFAULT).unwrap();
        let now = Utc::now().timestamp();
        let future = serde_json::json!({"sub": "42", "iat": now + 3600, "exp": now + 7200, "jti": "j", "ver": 0});
        assert!(tokens
            .verify(&sign(&future, Algorithm::HS256, secret().expose()))
            .is_err());
    }

    #[test]
    fn refuses_forged_expired_and_malformed_tokens() {
        let tokens = Hs256Tokens::new(&secret(), TokenTtl::DEFAULT).unwrap();
        let now = Utc::now().timestamp();
        let good =
            serde_json::json!({"sub": "42", "iat": now, "exp": now + 60, "jti": "j", "ver": 0});
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
                serde_json::json!({"sub": "42", "iat": now - 120, "exp": now - 1, "jti": "j", "ver": 0}),
            ),
            (
                "no exp",
                serde_json::json!({"sub": "42", "iat": now, "jti": "j", "ver": 0}),
            ),
            (
                "exp never",
                serde_json::json!({"sub": "42", "iat": now, "exp": "never", "jti": "j", "ver": 0}),
            ),
            (
                "no iat",
                serde_json::json!({"sub": "42", "exp": now + 60, "jti": "j", "ver": 0}),
            ),
            (
                "sub not an id",
                serde_json::json!({"sub": "0", "iat": now, "exp": now + 60, "jti": "j", "ver": 0}),
            ),
            (
                "sub a number",
                serde_json::json!({"sub": 42, "iat": now, "exp": now + 60, "jti": "j", "ver": 0}),
            ),
            (
                "no ver",
                serde_json::json!({"sub": "42", "iat": now, "exp": now + 60, "jti": "j"}),
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
        let other =
            serde_json::json!({"sub": "1", "iat": now, "exp": now + 60, "jti": "j", "ver": 0});
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
        fn ttl_parsing_never_panics_and_stays_in_range(raw in "\\PC{0,12}") {
            if let Ok(ttl) = raw.parse::<TokenTtl>() {
                prop_assert!((1..=366 * 24 * 3600).contains(&ttl.as_secs()));
            }
        }

        #[test]
        fn verify_never_panics(token in "\\PC{0,200}") {
            let tokens = Hs256Tokens::new(&secret(), TokenTtl::DEFAULT).unwrap();
            prop_assert!(tokens.verify(&token).is_err());
        }
    }
}
