//! EdDSA (Ed25519) tokens: signing keys that rotate, the JWKS document that publishes their
//! public halves, and a verifier another service can build from that document alone.

use std::collections::HashMap;
use std::fmt;
use std::sync::RwLock;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};

use crate::claims::{Claims, TokenClaims, TokenTtl};
use crate::jwks::{Jwk, Jwks};
use crate::random::random_hex;
use crate::token::{AccessToken, TokenService};
use crate::{Error, User};

/// An Ed25519 signing key as stored: its id, its 32-byte secret seed, and from when it
/// signs. Its `Debug` hides the seed.
#[derive(Clone, PartialEq, Eq)]
pub struct SigningKey {
    /// The key id (`kid`), unique.
    pub kid: String,
    /// The secret seed.
    pub seed: [u8; 32],
    /// When it was made.
    pub created_at: DateTime<Utc>,
    /// From when it signs new tokens (published in the JWKS from creation on, so every
    /// instance knows it before any token signed with it arrives).
    pub activates_at: DateTime<Utc>,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("created_at", &self.created_at)
            .field("activates_at", &self.activates_at)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// A fresh random key that signs from `activates_at`.
    ///
    /// # Errors
    /// [`Error::Internal`] without system randomness.
    pub fn generate(now: DateTime<Utc>, activates_at: DateTime<Utc>) -> Result<Self, Error> {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(|e| Error::internal("system randomness", e))?;
        Ok(Self {
            kid: random_hex(8)?,
            seed,
            created_at: now,
            activates_at,
        })
    }

    /// The public key's 32 bytes.
    #[must_use]
    pub fn public_key(&self) -> [u8; 32] {
        ed25519_dalek::SigningKey::from_bytes(&self.seed)
            .verifying_key()
            .to_bytes()
    }

    /// The public half as a JWK.
    #[must_use]
    pub fn jwk(&self) -> Jwk {
        Jwk {
            kty: "OKP".into(),
            crv: "Ed25519".into(),
            x: URL_SAFE_NO_PAD.encode(self.public_key()),
            kid: self.kid.clone(),
            alg: "EdDSA".into(),
            key_use: "sig".into(),
        }
    }

    /// The PKCS#8 document jsonwebtoken signs with (RFC 8410: a fixed prefix, then the seed).
    fn pkcs8_der(&self) -> Vec<u8> {
        const PREFIX: [u8; 16] = [
            0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22,
            0x04, 0x20,
        ];
        let mut der = PREFIX.to_vec();
        der.extend_from_slice(&self.seed);
        der
    }
}

/// Verifies EdDSA tokens against a set of public keys, chosen by the token's `kid`.
///
/// Pins the algorithm to EdDSA, requires `exp`, `iat` and `sub` with no clock leeway, and
/// refuses unknown or wrongly-typed claims. It checks signatures and times only: it cannot
/// know about revocations (logout, an ended session, password changes, a disabled user),
/// which only Gatehouse's database holds, so it accepts such a token until its `exp`: at
/// most one access-token lifetime (`GATEHOUSE_TOKEN_TTL`, 15 minutes by default). The
/// claims it returns name the token's session ([`TokenClaims::session_id`], the `sid`
/// claim).
pub struct JwksVerifier {
    keys: HashMap<String, DecodingKey>,
    validation: Validation,
}

impl fmt::Debug for JwksVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut kids: Vec<&String> = self.keys.keys().collect();
        kids.sort();
        f.debug_struct("JwksVerifier").field("kids", &kids).finish()
    }
}

impl JwksVerifier {
    /// A verifier for the keys of `jwks`.
    ///
    /// # Errors
    /// [`Error::Internal`] for a key that is not an Ed25519 JWK.
    pub fn new(jwks: &Jwks) -> Result<Self, Error> {
        let mut keys = HashMap::new();
        for jwk in &jwks.keys {
            if jwk.kty != "OKP" || jwk.crv != "Ed25519" {
                return Err(Error::internal(
                    "JWKS",
                    format!("key {} is not an Ed25519 key", jwk.kid),
                ));
            }
            let key = DecodingKey::from_ed_components(&jwk.x)
                .map_err(|e| Error::internal("JWKS public key", e))?;
            keys.insert(jwk.kid.clone(), key);
        }
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.leeway = 0;
        validation.validate_exp = true;
        validation.set_required_spec_claims(&["exp", "iat", "sub"]);
        Ok(Self { keys, validation })
    }

    /// A verifier for a JWKS document as served at `/.well-known/jwks.json`.
    ///
    /// # Errors
    /// [`Error::Internal`] when the document is not a JWKS of Ed25519 keys.
    pub fn from_json(document: &str) -> Result<Self, Error> {
        let jwks: Jwks =
            serde_json::from_str(document).map_err(|e| Error::internal("JWKS document", e))?;
        Self::new(&jwks)
    }

    /// Checks `token`'s signature (by its `kid`), algorithm, times and claims.
    ///
    /// # Errors
    /// [`Error::Unauthenticated`] for anything else than a current token signed by one of
    /// the keys.
    pub fn verify(&self, token: &str) -> Result<TokenClaims, Error> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| Error::Unauthenticated)?;
        let key = header
            .kid
            .as_deref()
            .and_then(|kid| self.keys.get(kid))
            .ok_or(Error::Unauthenticated)?;
        let data = jsonwebtoken::decode::<Claims>(token, key, &self.validation)
            .map_err(|_| Error::Unauthenticated)?;
        data.claims.into_token_claims()
    }
}

/// The keys in use at one moment: the one that signs, and every one that verifies.
struct KeyRing {
    signing: Option<(String, EncodingKey)>,
    verifier: JwksVerifier,
    jwks: Jwks,
}

/// Ed25519 tokens signed with the current key of a rotating set.
///
/// Of the stored keys, the newest one whose `activates_at` has passed signs. Every key that
/// may still have live tokens verifies and is published: the signing key, keys that will
/// activate later, and older keys until their successor has been active longer than the
/// token lifetime (by then every token they signed has expired).
pub struct Ed25519Tokens {
    ring: RwLock<KeyRing>,
    ttl: TokenTtl,
}

impl fmt::Debug for Ed25519Tokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ed25519Tokens")
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl Ed25519Tokens {
    /// Tokens from the stored `keys`, as of `now`.
    ///
    /// # Errors
    /// [`Error::Internal`] when `keys` is empty or a key cannot be used.
    pub fn new(keys: &[SigningKey], ttl: TokenTtl, now: DateTime<Utc>) -> Result<Self, Error> {
        Ok(Self {
            ring: RwLock::new(Self::ring(keys, ttl, now)?),
            ttl,
        })
    }

    /// Replaces the key set (after a rotation, or to retire old keys as time passes).
    ///
    /// # Errors
    /// As [`new`](Self::new).
    pub fn replace_keys(&self, keys: &[SigningKey], now: DateTime<Utc>) -> Result<(), Error> {
        let ring = Self::ring(keys, self.ttl, now)?;
        let mut guard = self
            .ring
            .write()
            .map_err(|_| Error::internal("key ring", "poisoned lock"))?;
        *guard = ring;
        Ok(())
    }

    fn ring(keys: &[SigningKey], ttl: TokenTtl, now: DateTime<Utc>) -> Result<KeyRing, Error> {
        if keys.is_empty() {
            return Err(Error::internal("key ring", "no signing key"));
        }
        let mut sorted: Vec<&SigningKey> = keys.iter().collect();
        sorted.sort_by_key(|k| (k.activates_at, k.created_at));
        let current = sorted
            .iter()
            .rposition(|k| k.activates_at <= now)
            .unwrap_or(0);
        let lifetime =
            chrono::Duration::seconds(i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX / 1000));
        let live: Vec<&SigningKey> = sorted
            .iter()
            .enumerate()
            .filter(|(i, _)| {
                // Older keys stay while tokens they signed may still be valid.
                *i >= current || sorted[i + 1].activates_at + lifetime > now
            })
            .map(|(_, k)| *k)
            .collect();
        let key = sorted[current];
        let signing = Some((key.kid.clone(), EncodingKey::from_ed_der(&key.pkcs8_der())));
        let jwks = Jwks {
            keys: live.iter().map(|k| k.jwk()).collect(),
        };
        Ok(KeyRing {
            signing,
            verifier: JwksVerifier::new(&jwks)?,
            jwks,
        })
    }
}

impl TokenService for Ed25519Tokens {
    fn issue(&self, user: &User, session_id: i64) -> Result<AccessToken, Error> {
        let ring = self
            .ring
            .read()
            .map_err(|_| Error::internal("key ring", "poisoned lock"))?;
        let (kid, key) = ring
            .signing
            .as_ref()
            .ok_or_else(|| Error::internal("key ring", "no signing key"))?;
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(kid.clone());
        let claims = Claims::for_user(user, session_id, self.ttl)?;
        let token = jsonwebtoken::encode(&header, &claims, key)
            .map_err(|e| Error::internal("JWT signing", e))?;
        Ok(AccessToken {
            token,
            expires_in: self.ttl.as_secs(),
        })
    }

    fn verify(&self, token: &str) -> Result<TokenClaims, Error> {
        self.ring
            .read()
            .map_err(|_| Error::internal("key ring", "poisoned lock"))?
            .verifier
            .verify(token)
    }

    fn jwks(&self) -> Jwks {
        self.ring
            .read()
            .map(|ring| ring.jwks.clone())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Email, Hs256Tokens, JwtSecret, PasswordHash, UserId, UserStatus};

    fn user() -> User {
        User {
            id: UserId::new(7).unwrap(),
            email: Email::parse("ed@example.com").unwrap(),
            password_hash: PasswordHash::new("h".into()),
            is_admin: false,
            status: UserStatus::Approved,
            created_at: crate::now(),
            approved_at: None,
            approved_by: None,
            token_version: 2,
            reason: None,
            email_verified: false,
            mfa_enabled: false,
            rejected_at: None,
            rejected_by: None,
            decision_note: None,
        }
    }

    fn key(activates_in_secs: i64) -> SigningKey {
        let now = Utc::now();
        SigningKey::generate(now, now + chrono::Duration::seconds(activates_in_secs)).unwrap()
    }

    #[test]
    fn sign_and_verify_round_trip_with_kid() {
        let k = key(-1);
        let tokens =
            Ed25519Tokens::new(std::slice::from_ref(&k), TokenTtl::DEFAULT, Utc::now()).unwrap();
        let issued = tokens.issue(&user(), 1).unwrap();
        let header = jsonwebtoken::decode_header(&issued.token).unwrap();
        assert_eq!(header.alg, Algorithm::EdDSA);
        assert_eq!(header.kid.as_deref(), Some(k.kid.as_str()));
        let claims = tokens.verify(&issued.token).unwrap();
        assert_eq!((claims.user_id.get(), claims.token_version), (7, 2));
    }

    #[test]
    fn another_service_verifies_with_the_jwks_document_alone() {
        let tokens = Ed25519Tokens::new(&[key(-1)], TokenTtl::DEFAULT, Utc::now()).unwrap();
        let document = serde_json::to_string(&tokens.jwks()).unwrap();
        let value: serde_json::Value = serde_json::from_str(&document).unwrap();
        let jwk = &value["keys"][0];
        assert_eq!(
            (
                jwk["kty"].as_str(),
                jwk["crv"].as_str(),
                jwk["alg"].as_str(),
                jwk["use"].as_str()
            ),
            (Some("OKP"), Some("Ed25519"), Some("EdDSA"), Some("sig"))
        );
        let verifier = JwksVerifier::from_json(&document).unwrap();
        let token = tokens.issue(&user(), 1).unwrap().token;
        assert_eq!(verifier.verify(&token).unwrap().user_id.get(), 7);
        // A token of another key set is refused.
        let stranger = Ed25519Tokens::new(&[key(-1)], TokenTtl::DEFAULT, Utc::now()).unwrap();
        assert!(verifier
            .verify(&stranger.issue(&user(), 1).unwrap().token)
            .is_err());
    }

    #[test]
    fn algorithms_do_not_cross() {
        let ed = Ed25519Tokens::new(&[key(-1)], TokenTtl::DEFAULT, Utc::now()).unwrap();
        let hs =
            Hs256Tokens::new(&JwtSecret::new(vec![b'k'; 32]).unwrap(), TokenTtl::DEFAULT).unwrap();
        assert!(matches!(
            ed.verify(&hs.issue(&user(), 1).unwrap().token),
            Err(Error::Unauthenticated)
        ));
        assert!(matches!(
            hs.verify(&ed.issue(&user(), 1).unwrap().token),
            Err(Error::Unauthenticated)
        ));
        assert!(hs.jwks().keys.is_empty());
    }

    #[test]
    fn rotation_keeps_old_keys_until_their_tokens_expire() {
        let ttl = TokenTtl::from_secs(3600).unwrap();
        let t0 = Utc::now();
        let old = SigningKey::generate(
            t0 - chrono::Duration::hours(10),
            t0 - chrono::Duration::hours(10),
        )
        .unwrap();
        let new = SigningKey::generate(t0, t0 + chrono::Duration::seconds(60)).unwrap();
        let keys = [old.clone(), new.clone()];
        // Before the new key activates: the old one signs, both are published.
        let tokens = Ed25519Tokens::new(&keys, ttl, t0).unwrap();
        let old_token = tokens.issue(&user(), 1).unwrap().token;
        assert_eq!(
            jsonwebtoken::decode_header(&old_token).unwrap().kid,
            Some(old.kid.clone())
        );
        assert_eq!(tokens.jwks().keys.len(), 2);
        // After: the new one signs, the old one still verifies.
        tokens
            .replace_keys(&keys, t0 + chrono::Duration::seconds(61))
            .unwrap();
        let new_token = tokens.issue(&user(), 1).unwrap().token;
        assert_eq!(
            jsonwebtoken::decode_header(&new_token).unwrap().kid,
            Some(new.kid.clone())
        );
        assert!(tokens.verify(&old_token).is_ok());
        // A lifetime after the switch, the old key is gone.
        tokens
            .replace_keys(&keys, t0 + chrono::Duration::seconds(60 + 3601))
            .unwrap();
        assert_eq!(tokens.jwks().keys.len(), 1);
        assert!(tokens.verify(&old_token).is_err());
    }

    #[test]
    fn the_seed_never_shows_in_debug() {
        let k = key(0);
        let printed = format!("{k:?}");
        assert!(!printed.contains(&format!("{:?}", k.seed)));
        assert!(printed.contains(&k.kid));
    }
}
