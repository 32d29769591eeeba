//! Passkeys (the MFA issue, "Multi-factor sign-in" in API.md): registering one from `/me`,
//! listing and deleting them, and signing in with one, with no password and no second step.
//!
//! The WebAuthn ceremonies run behind [`PasskeyCeremonies`]; each ceremony's state is kept
//! in a challenge between its start and its finish, and a finish spends the challenge
//! first, in its transaction, with one conditional delete: of racing finishes with one
//! challenge, one goes on.
//!
//! - A registration is kept per user (a new start replaces the one under way); its finish
//!   names it by its challenge id, or finds the user's one under way.
//! - A login names no account: the authenticator says whose passkey it is (its user
//!   handle), checked against the passkey's user. Once the account is known, the attempt
//!   is counted like a login of it (429 beyond the limits) and forgiven when it succeeds.

use std::sync::Arc;

use serde_json::Value;

use super::{audit, audit_throttled, still_current, throttled, Origin, Session, UserService};
use crate::{
    rules, user_handle, AuditAction, ChallengePurpose, CounterScope, DeviceToken, Error,
    LoginSuccess, MfaToken, NewChallenge, NewPasskey, PasskeyCeremonies, PasskeyName, RefreshToken,
    StoredPasskey, UserId, UserRepo, UserStoreExt, MFA_TOKEN_TTL,
};

const NO_RELYING_PARTY: &str = "Passkeys need the service's public address: set \
    GATEHOUSE_PUBLIC_URL (and GATEHOUSE_WEBAUTHN_RP_ID for a parent domain)";

/// A passkey registration begun: the creation options and the challenge id that names it.
#[derive(Debug, Clone)]
pub struct PasskeyRegistration {
    /// Names the registration at its finish (optional there: a user has one under way).
    pub challenge_id: String,
    /// The options for `navigator.credentials.create` (`{"publicKey": {...}}`).
    pub options: Value,
}

/// A passkey login begun.
#[derive(Debug, Clone)]
pub struct PasskeyLogin {
    /// Names the login at its finish.
    pub challenge_id: String,
    /// The options for `navigator.credentials.get` (the `publicKey` object).
    pub public_key: Value,
}

/// Why a passkey login failed, for its audit entry.
enum LoginFailure {
    /// Nobody identified: nothing to count or audit on an account.
    Anonymous,
    /// The passkey of this user did not verify.
    Refused(UserId),
}

impl UserService {
    /// The same, with passkeys run by `ceremonies` (without: the passkey routes answer
    /// [`Error::NotEnabled`]).
    #[must_use]
    pub fn with_passkeys(mut self, ceremonies: Arc<dyn PasskeyCeremonies>) -> Self {
        self.passkeys = Some(ceremonies);
        self
    }

    /// Whether passkeys are set up.
    #[must_use]
    pub fn passkeys_enabled(&self) -> bool {
        self.passkeys.is_some()
    }

    /// How many registered passkeys this service could not serve: all of them when it has
    /// no relying party (start-up refuses that: their users would be locked out of them
    /// without being told why), none otherwise.
    ///
    /// # Errors
    /// Store failures.
    pub fn passkeys_without_relying_party(&self) -> Result<u64, Error> {
        if self.passkeys_enabled() {
            return Ok(0);
        }
        self.store.read_with(|repo| repo.count_all_passkeys())
    }

    fn ceremonies(&self) -> Result<&dyn PasskeyCeremonies, Error> {
        self.passkeys
            .as_deref()
            .ok_or(Error::NotEnabled(NO_RELYING_PARTY))
    }

    /// `POST /me/passkeys/register/start`: the creation options of a new passkey of the
    /// signed-in user (discoverable, user verification required, their passkeys
    /// excluded); the state is kept, replacing a registration under way.
    ///
    /// # Errors
    /// [`Error::NotEnabled`], [`Error::Unauthenticated`]; store failures.
    pub fn begin_passkey_registration(
        &self,
        session: &Session,
    ) -> Result<PasskeyRegistration, Error> {
        let ceremonies = self.ceremonies()?;
        let (user, exclude) = self.store.read_with(|repo| {
            let user = still_current(repo, session)?;
            let exclude: Vec<String> = repo
                .list_passkeys(user.id)?
                .into_iter()
                .map(|passkey| passkey.credential_id)
                .collect();
            Ok((user, exclude))
        })?;
        let start =
            ceremonies.start_registration(user_handle(user.id), user.email.as_str(), &exclude)?;
        let token = MfaToken::generate()?;
        let now = crate::now();
        let challenge = NewChallenge {
            token_hash: token.hash(),
            purpose: ChallengePurpose::PasskeyRegistration,
            user_id: Some(user.id),
            state: Some(start.state),
            created_at: now,
            expires_at: now + MFA_TOKEN_TTL,
        };
        self.store.write_with(|repo| {
            repo.delete_user_challenges(user.id, ChallengePurpose::PasskeyRegistration)?;
            repo.insert_challenge(&challenge)
        })?;
        Ok(PasskeyRegistration {
            challenge_id: token.expose().to_owned(),
            options: start.options,
        })
    }

    /// `POST /me/passkeys/register/finish`: verifies `credential` against the
    /// registration under way (named by `challenge_id`, or the user's one), stores the
    /// passkey as `name`, turns `mfa_enabled` on and audits `passkey_added`. The
    /// registration is spent whatever the outcome.
    ///
    /// # Errors
    /// [`Error::InvalidCredential`] (no registration under way, a credential that does not
    /// verify, or one registered already), [`Error::NotEnabled`],
    /// [`Error::Unauthenticated`]; store failures.
    pub fn finish_passkey_registration(
        &self,
        session: &Session,
        name: &PasskeyName,
        credential: &Value,
        challenge_id: Option<&str>,
        origin: &Origin,
    ) -> Result<StoredPasskey, Error> {
        let ceremonies = self.ceremonies()?;
        let now = crate::now();
        self.store.write_with(|repo| {
            let mut user = still_current(repo, session)?;
            let purpose = ChallengePurpose::PasskeyRegistration;
            let challenge = match challenge_id {
                Some(id) => repo
                    .find_challenge(&MfaToken::presented(id).hash(), purpose, now)?
                    .filter(|c| c.user_id == Some(user.id)),
                None => repo.find_user_challenge(user.id, purpose, now)?,
            };
            let Some(challenge) = challenge else {
                return Ok(Err(Error::InvalidCredential));
            };
            if !repo.spend_challenge(challenge.id, now)? {
                return Ok(Err(Error::InvalidCredential));
            }
            let state = challenge.state.unwrap_or_default();
            let registered = match ceremonies.finish_registration(credential, &state) {
                Ok(registered) => registered,
                Err(Error::InvalidCredential) => return Ok(Err(Error::InvalidCredential)),
                Err(other) => return Err(other),
            };
            // The library leaves it to us: a credential id names one passkey.
            if repo
                .find_passkey_by_credential(&registered.credential_id)?
                .is_some()
            {
                return Ok(Err(Error::InvalidCredential));
            }
            let passkey = repo.insert_passkey(&NewPasskey {
                user_id: user.id,
                credential_id: registered.credential_id,
                name: name.as_str().to_owned(),
                data: registered.data,
                created_at: now,
            })?;
            if !user.mfa_enabled {
                user.mfa_enabled = true;
                repo.update(&user)?;
            }
            repo.append_audit(&audit(
                AuditAction::PasskeyAdded,
                Some(user.id),
                Some(user.id),
                origin,
                Some(format!("passkey {}: {}", passkey.id, passkey.name)),
            ))?;
            Ok(Ok(passkey))
        })?
    }

    /// `GET /me/passkeys`: the signed-in user's passkeys, newest first.
    ///
    /// # Errors
    /// [`Error::NotEnabled`], [`Error::Unauthenticated`]; store failures.
    pub fn list_passkeys(&self, session: &Session) -> Result<Vec<StoredPasskey>, Error> {
        self.ceremonies()?;
        self.store.read_with(|repo| {
            let user = still_current(repo, session)?;
            repo.list_passkeys(user.id)
        })
    }

    /// `DELETE /me/passkeys/{id}`: deletes one of the signed-in user's passkeys (audit
    /// `passkey_removed`); `mfa_enabled` turns off when they have neither TOTP nor another
    /// passkey left.
    ///
    /// # Errors
    /// [`Error::PasskeyNotFound`] (none of theirs has this id), [`Error::NotEnabled`],
    /// [`Error::Unauthenticated`]; store failures.
    pub fn delete_passkey(&self, session: &Session, id: i64, origin: &Origin) -> Result<(), Error> {
        self.ceremonies()?;
        self.store.write_with(|repo| {
            let mut user = still_current(repo, session)?;
            if !repo.delete_passkey(user.id, id)? {
                return Err(Error::PasskeyNotFound);
            }
            let enabled = has_second_factor(repo, user.id)?;
            if user.mfa_enabled != enabled {
                user.mfa_enabled = enabled;
                repo.update(&user)?;
            }
            repo.append_audit(&audit(
                AuditAction::PasskeyRemoved,
                Some(user.id),
                Some(user.id),
                origin,
                Some(format!("passkey {id}")),
            ))
        })
    }

    /// `POST /login/passkey/start`: the request options of a passkey login (no account
    /// named) and the challenge id that names it.
    ///
    /// # Errors
    /// [`Error::NotEnabled`]; store failures.
    pub fn begin_passkey_login(&self) -> Result<PasskeyLogin, Error> {
        let start = self.ceremonies()?.start_login()?;
        let token = MfaToken::generate()?;
        let now = crate::now();
        let challenge = NewChallenge {
            token_hash: token.hash(),
            purpose: ChallengePurpose::PasskeyLogin,
            user_id: None,
            state: Some(start.state),
            created_at: now,
            expires_at: now + MFA_TOKEN_TTL,
        };
        self.store
            .write_with(|repo| repo.insert_challenge(&challenge))?;
        Ok(PasskeyLogin {
            challenge_id: token.expose().to_owned(),
            public_key: start.public_key,
        })
    }

    /// `POST /login/passkey/finish`: signs in with a passkey (no password, no second
    /// step). The challenge is spent first; once the passkey's account is known the
    /// attempt counts like a login of it (429 beyond the limits); a passkey that verifies
    /// forgives it, updates the passkey's record and `last_used_at` and starts a session
    /// (audit `login_succeeded`, detail `passkey`), for an account that may sign in.
    ///
    /// # Errors
    /// [`Error::PasskeyLoginFailed`] (an unknown, spent or expired challenge, an unknown
    /// credential, a user handle that is not its user's, a bad signature),
    /// [`Error::Throttled`], [`Error::AccountPending`], [`Error::AccountDisabled`],
    /// [`Error::AccountRejected`], [`Error::NotEnabled`]; store failures.
    pub fn finish_passkey_login(
        &self,
        challenge_id: &str,
        credential: &Value,
        origin: &Origin,
    ) -> Result<LoginSuccess, Error> {
        let ceremonies = self.ceremonies()?;
        let token = MfaToken::presented(challenge_id);
        let device = DeviceToken::generate()?;
        let refresh = RefreshToken::generate()?;
        let now = crate::now();
        let (user, session) = self.store.write_with(|repo| {
            let Some(challenge) =
                repo.find_challenge(&token.hash(), ChallengePurpose::PasskeyLogin, now)?
            else {
                return login_failed(repo, LoginFailure::Anonymous, origin);
            };
            if !repo.spend_challenge(challenge.id, now)? {
                return login_failed(repo, LoginFailure::Anonymous, origin);
            }
            let Ok(assertion) = ceremonies.identify(credential) else {
                return login_failed(repo, LoginFailure::Anonymous, origin);
            };
            let Some(passkey) = repo.find_passkey_by_credential(&assertion.credential_id)? else {
                return login_failed(repo, LoginFailure::Anonymous, origin);
            };
            let Some(user) = repo.find_by_id(passkey.user_id)? else {
                return login_failed(repo, LoginFailure::Anonymous, origin);
            };
            let key = user.email.as_str().to_owned();
            let guess = match self.check_guess(repo, CounterScope::LoginAccount, &key, origin)? {
                Ok(guess) => guess,
                Err(refused) => {
                    audit_throttled(repo, Some(user.id), origin)?;
                    return Ok(Err(throttled(refused)));
                }
            };
            // The library leaves it to us: the handle must be the passkey's user's.
            if assertion.user_handle != user_handle(user.id) {
                Self::count_guess(repo, &guess)?;
                return login_failed(repo, LoginFailure::Refused(user.id), origin);
            }
            let state = challenge.state.clone().unwrap_or_default();
            let updated = match ceremonies.finish_login(credential, &state, &passkey.data) {
                Ok(updated) => updated,
                Err(Error::InvalidCredential) => {
                    Self::count_guess(repo, &guess)?;
                    return login_failed(repo, LoginFailure::Refused(user.id), origin);
                }
                Err(other) => return Err(other),
            };
            // The passkey was right: this was no guess, whatever the account's state; its
            // earlier failures are forgiven (the address's stay).
            repo.delete_counter(CounterScope::LoginAccount, &key)?;
            // As a password login: an unverified email is refused when verification is
            // required (the account may have registered its passkey before it was).
            let unverified = self.recovery.require_verified_email
                && !user.email_verified
                && matches!(
                    user.status,
                    crate::UserStatus::Pending | crate::UserStatus::Approved
                );
            let allowed = rules::ensure_can_log_in(&user).and_then(|()| {
                if unverified {
                    Err(Error::EmailUnverified)
                } else {
                    Ok(())
                }
            });
            if let Err(refusal) = allowed {
                repo.append_audit(&audit(
                    AuditAction::LoginFailed,
                    None,
                    Some(user.id),
                    origin,
                    Some(format!("passkey: {}", refusal_detail(&refusal))),
                ))?;
                return Ok(Err(refusal));
            }
            let data = updated.as_deref().unwrap_or(&passkey.data);
            repo.record_passkey_use(passkey.id, data, now)?;
            let session =
                self.start_signed_in(repo, &user, origin, (&device, &refresh), "passkey")?;
            Ok(Ok((user, session)))
        })??;
        self.signed_in(&user, &session, refresh, device)
    }
}

/// A passkey login refused: audited `login_failed` (detail `passkey`) when its account is
/// known.
fn login_failed<T>(
    repo: &mut dyn UserRepo,
    failure: LoginFailure,
    origin: &Origin,
) -> Result<Result<T, Error>, Error> {
    if let LoginFailure::Refused(user) = failure {
        repo.append_audit(&audit(
            AuditAction::LoginFailed,
            None,
            Some(user),
            origin,
            Some("passkey".into()),
        ))?;
    }
    Ok(Err(Error::PasskeyLoginFailed))
}

/// The audit detail of a login refused for its account's state.
fn refusal_detail(refusal: &Error) -> &'static str {
    match refusal {
        Error::AccountPending => "account pending",
        Error::AccountDisabled => "account disabled",
        Error::AccountRejected { .. } => "account rejected",
        Error::EmailUnverified => "email unverified",
        _ => "refused",
    }
}

/// Whether `user` has a passkey.
pub(super) fn has_passkey(repo: &mut dyn UserRepo, user: UserId) -> Result<bool, Error> {
    Ok(repo.count_passkeys(user)? > 0)
}

/// Whether `user` has a second factor: TOTP on, or a passkey.
fn has_second_factor(repo: &mut dyn UserRepo, user: UserId) -> Result<bool, Error> {
    Ok(repo.totp(user)?.is_some_and(|t| t.confirmed_at.is_some()) || has_passkey(repo, user)?)
}
