//! Gatehouse's domain: who may register, log in and administer, and the rules that keep
//! at least one active admin in place.
//!
//! This crate knows nothing of HTTP, SQL or async runtimes. It holds
//! - the value types, which parse rather than validate ([`Email`], [`Password`], [`UserId`],
//!   [`UserStatus`], [`TokenTtl`], [`BcryptCost`], [`JwtSecret`]);
//! - the [`User`] entity and the pure rules over it ([`rules`]);
//! - the repository ports ([`UserRepo`], [`UserStore`]) that storage adapters implement;
//! - the use cases ([`UserService`]), each run as one unit of work so that a rule's check
//!   and the write it guards share a transaction;
//! - password hashing and tokens behind small traits ([`PasswordHasher`], [`TokenService`]),
//!   with bcrypt and HS256 JWT implementations beside them, so another service can verify
//!   Gatehouse's tokens with nothing but this crate.
//!
//! With the `testing` feature it also ships an in-memory store and the port's contract suite.

mod approval;
mod audit;
mod claims;
mod device;
mod eddsa;
mod email;
mod error;
mod hashing;
mod invitation;
mod jwks;
mod lookup;
mod mail;
mod mfa;
mod passkey;
mod password;
pub mod ports;
mod random;
mod recovery;
pub mod rules;
pub mod sealed;
mod service;
mod session;
pub mod templates;
mod throttle;
mod token;
pub mod totp;
mod user;
mod webhook;

#[cfg(feature = "testing")]
pub mod testing;

pub use approval::{
    ensure_may_self_register, BulkIds, Decision, FreeText, InvalidBulkIds, InvalidDecision,
    InvalidFreeText, InvalidRegistrationMode, RegistrationClosed, RegistrationMode,
};
pub use audit::{AuditAction, AuditEntry, AuditQuery, InvalidAuditAction, NewAuditEntry};
pub use claims::{InvalidTokenTtl, TokenClaims, TokenTtl};
pub use device::DeviceToken;
pub use eddsa::{Ed25519Tokens, JwksVerifier, SigningKey};
pub use email::{Email, InvalidEmail};
pub use error::{BoxError, Error, LastAdminChange};
pub use hashing::{BcryptCost, BcryptHasher, InvalidBcryptCost, PasswordHasher};
pub use invitation::{
    invitation_link, parse_expires_in, InvalidExpiresIn, InvalidInvitation,
    InvalidInvitationRequest, InvalidInvitationStatus, Invitation, InvitationCode, InvitationQuery,
    InvitationRequest, InvitationStatus, NewInvitation, ValidInvitationRequest,
};
pub use jwks::{Jwk, Jwks};
pub use mail::{DueMail, MailKind, MailPolicy, NewMail, DIGEST_SETTING};
pub use mfa::{
    Challenge, ChallengePurpose, MfaKeys, MfaToken, NewChallenge, RecoveryCode, StoredTotp,
    MAX_MFA_WRONG_CODES, MFA_TOKEN_TTL, RECOVERY_CODE_COUNT,
};
pub use passkey::{
    user_handle, InvalidPasskeyName, NewPasskey, PasskeyAssertion, PasskeyCeremonies,
    PasskeyLoginStart, PasskeyName, PasskeyRegistrationStart, RegisteredPasskey, StoredPasskey,
};
pub use password::{InvalidPassword, Password};
pub use ports::{
    Listing, Page, SessionAnswer, SessionLookup, SessionReply, SessionSource, UserQuery, UserRepo,
    UserStore, UserStoreExt,
};
pub use recovery::{
    CodePurpose, NewCode, OneTimeCode, MAX_CODES_PER_HOUR, MAX_WRONG_TRIES, VERIFICATION_TTL,
};
pub use service::{
    Actor, LoginAttempt, LoginStep, LoginSuccess, MfaChallenge, MfaPolicy, NewUserRequest, Origin,
    PasskeyLogin, PasskeyRegistration, PasswordChange, RecoveryPolicy, Session, TotpEnrolment,
    UserKey, UserService, WebhookRequest, DEVICE_MEMORY, THROTTLED_AUDIT_WINDOW,
};
pub use session::{
    clean_user_agent, seconds_until, FoundRefreshToken, NewSession, RefreshToken, SessionPolicy,
    SessionQuery, SessionState, SessionTokens, StoredSession,
};
pub use throttle::{address_key, Counter, CounterScope, ThrottlePolicy, Throttled};
pub use token::{AccessToken, Hs256Tokens, InvalidJwtSecret, JwtSecret, TokenService};
pub use user::{
    InvalidUserId, InvalidUserStatus, NewUser, PasswordHash, User, UserChanges, UserId, UserStatus,
};
pub use webhook::{
    is_public, resolve_public, user_json, Attempt, AttemptNext, Claiming, Delivery, DeliveryStatus,
    DueDeliveries, DueDelivery, EventFilter, EventType, Host, NewEvent, NewWebhook, PageQuery,
    RetryPolicy, Webhook, WebhookChanges, WebhookSecret, WebhookUrl,
};

/// The current time, truncated to microseconds: the precision both storage backends keep, so
/// a value read back equals the value written.
#[must_use]
pub fn now() -> chrono::DateTime<chrono::Utc> {
    use chrono::SubsecRound;
    chrono::Utc::now().trunc_subsecs(6)
}
