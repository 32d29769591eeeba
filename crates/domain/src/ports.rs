//! The repository ports: what the use cases need from a store, and the contract every
//! implementation must keep (checked by `testing::contract` under the `testing` feature).

use chrono::{DateTime, Utc};

pub use crate::lookup::{answered, session_reply, SessionAnswer, SessionLookup, SessionReply};

use crate::{
    Attempt, AuditAction, AuditEntry, AuditQuery, Counter, CounterScope, Delivery, DueDelivery,
    DueMail, Email, Error, FoundRefreshToken, Invitation, InvitationQuery, NewAuditEntry, NewEvent,
    NewInvitation, NewMail, NewSession, NewUser, NewWebhook, PageQuery, SessionQuery, SessionState,
    StoredSession, User, UserId, UserStatus, Webhook,
};

/// Which users to list, and which page of them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserQuery {
    /// Only users with this status.
    pub status: Option<UserStatus>,
    /// Only admins (`Some(true)`) or only non-admins (`Some(false)`).
    pub is_admin: Option<bool>,
    /// Only users whose email contains this text (compared lower-cased, taken literally:
    /// `%` and `_` are not wildcards).
    pub email_contains: Option<String>,
    /// At most this many users; all when `None`.
    pub limit: Option<u64>,
    /// Skip this many users first.
    pub offset: u64,
}

/// One page of a listing, with the number of matches across all pages: a listing collected
/// whole (see [`Listing`]), for small listings and tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    /// The items of this page.
    pub items: Vec<T>,
    /// How many items match the filters in all.
    pub total: u64,
}

impl<T> Default for Page<T> {
    fn default() -> Self {
        Self {
            items: Vec::new(),
            total: 0,
        }
    }
}

/// Where a listing goes as it is read, so that a long one never sits in memory whole: first
/// how many items match the filters in all (before paging), then the page's items in order,
/// newest first.
///
/// A store MUST call [`total`](Self::total) exactly once, before any item (also when no
/// item follows), and then [`item`](Self::item) once per item of the page. An error from
/// either stops the listing: the store reads no further and returns that error.
pub trait Listing<T> {
    /// How many items match the filters in all.
    ///
    /// # Errors
    /// Whatever stops the listing (the reader went away, say).
    fn total(&mut self, total: u64) -> Result<(), Error>;

    /// The next item of the page.
    ///
    /// # Errors
    /// Whatever stops the listing.
    fn item(&mut self, item: T) -> Result<(), Error>;
}

/// Collects the listing whole.
impl<T> Listing<T> for Page<T> {
    fn total(&mut self, total: u64) -> Result<(), Error> {
        self.total = total;
        Ok(())
    }

    fn item(&mut self, item: T) -> Result<(), Error> {
        self.items.push(item);
        Ok(())
    }
}

/// Gatehouse's tables as seen from inside one transaction: users, sessions,
/// throttling counters and the audit log.
///
/// Implementations MUST:
/// - assign positive ids that are never reused, even after a delete;
/// - refuse an insert or update that would give two users one email with
///   [`Error::EmailTaken`] (emails are already normalised by [`Email`]), but allow two
///   look-alike emails (the use cases refuse new ones; old ones may exist);
/// - keep each user's email skeleton ([`Email::skeleton`]) findable through
///   [`find_by_email_skeleton`](UserRepo::find_by_email_skeleton) after every insert and
///   update;
/// - list newest first (descending id);
/// - clear `approved_by` of users whose approver is deleted, and keep audit entries about
///   deleted users;
/// - report an unreachable or overloaded database as [`Error::Unavailable`] and a lost
///   serialization race as [`Error::Conflict`].
pub trait UserRepo {
    /// How many users exist.
    ///
    /// # Errors
    /// Store failures.
    fn count_users(&mut self) -> Result<u64, Error>;

    /// Whether any user exists. Stores SHOULD answer it by reading one row through an
    /// index, not by counting: under PostgreSQL's SERIALIZABLE a full count conflicts with
    /// every concurrent registration.
    ///
    /// # Errors
    /// Store failures.
    fn any_user_exists(&mut self) -> Result<bool, Error> {
        self.count_users().map(|n| n > 0)
    }

    /// How many users are admins and approved.
    ///
    /// # Errors
    /// Store failures.
    fn count_active_admins(&mut self) -> Result<u64, Error>;

    /// How many users have `status`.
    ///
    /// # Errors
    /// Store failures.
    fn count_with_status(&mut self, status: UserStatus) -> Result<u64, Error>;

    /// How many pending users have not verified their email (the recovery issue: with
    /// verification required they do not count as waiting).
    ///
    /// # Errors
    /// Store failures.
    fn count_pending_unverified(&mut self) -> Result<u64, Error>;

    /// Inserts `user` and returns it with its new id and a token version of 0.
    ///
    /// # Errors
    /// [`Error::EmailTaken`] when the email is in use; store failures.
    fn insert(&mut self, user: NewUser) -> Result<User, Error>;

    /// The user with `id`, if any.
    ///
    /// # Errors
    /// Store failures.
    fn find_by_id(&mut self, id: UserId) -> Result<Option<User>, Error>;

    /// The user with exactly this (normalised) email, if any.
    ///
    /// # Errors
    /// Store failures.
    fn find_by_email(&mut self, email: &Email) -> Result<Option<User>, Error>;

    /// A user other than `except` whose email looks like `email`: the same confusable
    /// skeleton ([`Email::skeleton`]), the same email included. The lowest id when several
    /// match (accounts from before the rule may share a skeleton). Stores SHOULD answer
    /// through an index of the skeletons they store beside the emails; a row stored without
    /// one (written by an older version) MAY go unmatched.
    ///
    /// # Errors
    /// Store failures.
    fn find_by_email_skeleton(
        &mut self,
        email: &Email,
        except: Option<UserId>,
    ) -> Result<Option<User>, Error>;

    /// The users matching `query`, newest first, handed to `into` as they are read (see
    /// [`Listing`]): how many match in all, then each user of the page. Stores MUST keep
    /// what they hold at once bounded (a chunk of rows, not the whole result): a listing
    /// without a limit may be every user. Without an email search, the page and its total
    /// SHOULD come from one statement (one snapshot): the service then lists without a
    /// transaction, and a store that needs one to stream (a cursor) opens its own.
    ///
    /// # Errors
    /// Store failures; an error of `into`, as it was returned.
    fn each_user(&mut self, query: &UserQuery, into: &mut dyn Listing<User>) -> Result<(), Error>;

    /// [`each_user`](Self::each_user) collected into a page.
    ///
    /// # Errors
    /// As [`each_user`](Self::each_user).
    fn list(&mut self, query: &UserQuery) -> Result<Page<User>, Error> {
        let mut page = Page::default();
        self.each_user(query, &mut page)?;
        Ok(page)
    }

    /// Writes every field of `user` but its id and creation time, and returns it as stored.
    ///
    /// # Errors
    /// [`Error::UserNotFound`] when no user has its id; [`Error::EmailTaken`] when its
    /// email belongs to another user; store failures.
    fn update(&mut self, user: &User) -> Result<User, Error>;

    /// Deletes the user with `id`; `false` when there was none.
    ///
    /// # Errors
    /// Store failures.
    fn delete(&mut self, id: UserId) -> Result<bool, Error>;

    /// The user with `id` and the state of their session `session_id` (`None` when that
    /// user has no session with that id: a session of another user does not count), in one
    /// go: what every authenticated request needs. Stores SHOULD answer it with a single
    /// statement, and a store that answers lookups in batches MUST give the same answers.
    ///
    /// # Errors
    /// Store failures.
    fn find_session_user(
        &mut self,
        id: UserId,
        session_id: i64,
    ) -> Result<Option<(User, Option<SessionState>)>, Error>;

    /// Stores a new session with its first refresh token (named by its SHA-256); returns
    /// it with its id (ids are never reused).
    ///
    /// # Errors
    /// Store failures.
    fn insert_session(
        &mut self,
        session: &NewSession,
        refresh_hash: &str,
    ) -> Result<StoredSession, Error>;

    /// The session `id`, ended or not, if it is still stored.
    ///
    /// # Errors
    /// Store failures.
    fn find_session(&mut self, id: i64) -> Result<Option<StoredSession>, Error>;

    /// The session a refresh token (named by its SHA-256) was issued for, when the token
    /// was spent (`None`: it is the session's current one), and the session's user. Stores
    /// SHOULD answer it with one statement: it is on every refresh's path.
    ///
    /// # Errors
    /// Store failures.
    fn find_refresh_token(&mut self, token_hash: &str) -> Result<Option<FoundRefreshToken>, Error>;

    /// Marks the refresh token `token_hash` spent at `now` if it is not yet (one
    /// conditional statement): `false` when it was spent already or is unknown. Of
    /// concurrent refreshes with one token, exactly one gets `true`.
    ///
    /// # Errors
    /// Store failures.
    fn spend_refresh_token(&mut self, token_hash: &str, now: DateTime<Utc>) -> Result<bool, Error>;

    /// Forgets the unspent refresh token(s) of session `session_id` (its spent ones stay,
    /// for reuse detection): a token superseded without being used, as by a password
    /// change, then opens nothing, as an unknown one.
    ///
    /// # Errors
    /// Store failures.
    fn discard_session_refresh_tokens(&mut self, session_id: i64) -> Result<(), Error>;

    /// If session `session_id` has not ended: marks it used at `now`, idling out at
    /// `idle_expires_at`, and stores its new (unspent) refresh token; `false` (nothing
    /// stored) when it has ended. The check and the update are one conditional statement.
    ///
    /// # Errors
    /// Store failures.
    fn renew_session(
        &mut self,
        session_id: i64,
        refresh_hash: &str,
        now: DateTime<Utc>,
        idle_expires_at: DateTime<Utc>,
    ) -> Result<bool, Error>;

    /// Ends session `id` at `at` if it is not ended yet and, with `user`, only if it is
    /// theirs; whether it was ended now.
    ///
    /// # Errors
    /// Store failures.
    fn revoke_session(
        &mut self,
        id: i64,
        user: Option<UserId>,
        at: DateTime<Utc>,
    ) -> Result<bool, Error>;

    /// Ends every session of `user` not ended yet, but `except`, at `at`; how many.
    ///
    /// # Errors
    /// Store failures.
    fn revoke_sessions(
        &mut self,
        user: UserId,
        except: Option<i64>,
        at: DateTime<Utc>,
    ) -> Result<u64, Error>;

    /// The sessions of `user` that are live at `now` (not ended, not expired), newest
    /// first, and how many there are in all.
    ///
    /// # Errors
    /// Store failures.
    fn list_sessions(
        &mut self,
        user: UserId,
        now: DateTime<Utc>,
        query: &SessionQuery,
    ) -> Result<Page<StoredSession>, Error>;

    /// Deletes sessions (with their refresh tokens) ended, idled out or past their end
    /// for good before `now`; returns how many went.
    ///
    /// # Errors
    /// Store failures.
    fn prune_sessions(&mut self, now: DateTime<Utc>) -> Result<u64, Error>;

    /// The user a device token (named by its SHA-256) was issued to, if any.
    ///
    /// # Errors
    /// Store failures.
    fn device_owner(&mut self, token_hash: &str) -> Result<Option<UserId>, Error>;

    /// Records a device token of `user` (named by its SHA-256), or marks an existing one
    /// used at `now`.
    ///
    /// # Errors
    /// Store failures.
    fn save_device(
        &mut self,
        token_hash: &str,
        user: UserId,
        now: DateTime<Utc>,
    ) -> Result<(), Error>;

    /// The newest audit entry with this action, target and address (`None` matching only
    /// `None`) made at or after `since`: its id and detail. For coalescing repeated
    /// entries.
    ///
    /// # Errors
    /// Store failures.
    fn latest_audit(
        &mut self,
        action: AuditAction,
        target: Option<UserId>,
        address: Option<&str>,
        since: DateTime<Utc>,
    ) -> Result<Option<(i64, Option<String>)>, Error>;

    /// Replaces the detail of the audit entry `id` (no error when there is none).
    ///
    /// # Errors
    /// Store failures.
    fn set_audit_detail(&mut self, id: i64, detail: &str) -> Result<(), Error>;

    /// Deletes the oldest audit entries made before `before`, at most `at_most` of them;
    /// returns how many went (fewer than `at_most`: none is left).
    ///
    /// # Errors
    /// Store failures.
    fn prune_audit(&mut self, before: DateTime<Utc>, at_most: u64) -> Result<u64, Error>;

    /// Deletes device tokens not used since `unused_since`; returns how many went.
    ///
    /// # Errors
    /// Store failures.
    fn prune_devices(&mut self, unused_since: DateTime<Utc>) -> Result<u64, Error>;

    /// Stores a new invitation; returns it with its id (no uses, not revoked).
    ///
    /// # Errors
    /// Store failures; [`Error::Conflict`] for a code hash stored already.
    fn insert_invitation(&mut self, new: &NewInvitation) -> Result<Invitation, Error>;

    /// The invitation `id`, if any.
    ///
    /// # Errors
    /// Store failures.
    fn find_invitation(&mut self, id: i64) -> Result<Option<Invitation>, Error>;

    /// The invitation whose code has the hash `code_hash` ([`crate::InvitationCode::hash`]).
    ///
    /// # Errors
    /// Store failures.
    fn find_invitation_by_code(&mut self, code_hash: &str) -> Result<Option<Invitation>, Error>;

    /// The invitations matching `query`, their status taken at `now`, newest first, and
    /// how many match in all.
    ///
    /// # Errors
    /// Store failures.
    fn list_invitations(
        &mut self,
        query: &InvitationQuery,
        now: DateTime<Utc>,
    ) -> Result<Page<Invitation>, Error>;

    /// Counts one use of the invitation whose code has this hash, if it is active at `now`
    /// (not revoked, a use left, not expired: [`Invitation::status`]), in one statement;
    /// the invitation after the use, `None` when there is no such active invitation. For a
    /// registration: the use commits or rolls back with it, so N concurrent registrations
    /// on a one-use code give exactly one account, and a refusal found after the use (an
    /// invitation for another email) rolls the use back with the registration.
    ///
    /// # Errors
    /// Store failures.
    fn spend_invitation(
        &mut self,
        code_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<Invitation>, Error>;

    /// Marks invitation `id` revoked at `at` (once: a second revocation keeps the first
    /// time); the invitation after it, `None` when there is none.
    ///
    /// # Errors
    /// Store failures.
    fn revoke_invitation(
        &mut self,
        id: i64,
        at: DateTime<Utc>,
    ) -> Result<Option<Invitation>, Error>;

    /// The throttling counter of `key` in `scope`, if any.
    ///
    /// # Errors
    /// Store failures.
    fn counter(&mut self, scope: CounterScope, key: &str) -> Result<Option<Counter>, Error>;

    /// Stores (inserts or replaces) a throttling counter.
    ///
    /// # Errors
    /// Store failures.
    fn save_counter(
        &mut self,
        scope: CounterScope,
        key: &str,
        counter: &Counter,
    ) -> Result<(), Error>;

    /// Forgets a throttling counter (no error when there is none).
    ///
    /// # Errors
    /// Store failures.
    fn delete_counter(&mut self, scope: CounterScope, key: &str) -> Result<(), Error>;

    /// Appends an entry to the audit log.
    ///
    /// # Errors
    /// Store failures.
    fn append_audit(&mut self, entry: &NewAuditEntry) -> Result<(), Error>;

    /// Audit entries matching `query`, newest first (descending id), handed to `into` as
    /// they are read, with the same promises as [`each_user`](Self::each_user).
    ///
    /// # Errors
    /// Store failures; an error of `into`, as it was returned.
    fn each_audit_entry(
        &mut self,
        query: &AuditQuery,
        into: &mut dyn Listing<AuditEntry>,
    ) -> Result<(), Error>;

    /// [`each_audit_entry`](Self::each_audit_entry) collected into a page.
    ///
    /// # Errors
    /// As [`each_audit_entry`](Self::each_audit_entry).
    fn list_audit(&mut self, query: &AuditQuery) -> Result<Page<AuditEntry>, Error> {
        let mut page = Page::default();
        self.each_audit_entry(query, &mut page)?;
        Ok(page)
    }

    /// Stores a webhook endpoint (active); returns it with its id.
    ///
    /// # Errors
    /// Store failures.
    fn insert_webhook(&mut self, new: &NewWebhook) -> Result<Webhook, Error>;

    /// The endpoint `id`, if any.
    ///
    /// # Errors
    /// Store failures.
    fn find_webhook(&mut self, id: i64) -> Result<Option<Webhook>, Error>;

    /// Endpoints, oldest first (ascending id), one page, with the total.
    ///
    /// # Errors
    /// Store failures.
    fn list_webhooks(&mut self, query: &PageQuery) -> Result<Page<Webhook>, Error>;

    /// Writes every field of `webhook` but `id` and `created_at` over the stored endpoint
    /// (`url`, `events`, `description`, `active`, `secret`); returns whether it exists.
    ///
    /// # Errors
    /// Store failures.
    fn save_webhook(&mut self, webhook: &Webhook) -> Result<bool, Error>;

    /// Deletes endpoint `id` and its deliveries; returns whether it existed.
    ///
    /// # Errors
    /// Store failures.
    fn delete_webhook(&mut self, id: i64) -> Result<bool, Error>;

    /// Writes one `pending` delivery of `event` (its id, type and payload), due at
    /// `event.at`, per endpoint it goes to: every active endpoint whose subscription
    /// matches its type, or only `event.only_webhook` when set; an event that goes nowhere
    /// leaves nothing. Called inside the change's own transaction, so a rolled-back change
    /// leaves no event (the transactional outbox). Returns how many deliveries were
    /// written.
    ///
    /// # Errors
    /// Store failures.
    fn append_event(&mut self, event: &NewEvent) -> Result<u64, Error>;

    /// The deliveries of endpoint `webhook`, newest first (descending id), one page, with
    /// the total.
    ///
    /// # Errors
    /// Store failures.
    fn list_deliveries(&mut self, webhook: i64, query: &PageQuery)
        -> Result<Page<Delivery>, Error>;

    /// Claims up to `limit` pending deliveries due at `now` (oldest due first) of active
    /// endpoints, whose earlier claim (if any) ran out, until `lease_until`: nobody else
    /// claims them before then, so each attempt is made by one dispatcher (PostgreSQL:
    /// `FOR UPDATE SKIP LOCKED`, instances never wait for each other). Deliveries of an
    /// endpoint no longer active are marked `failed` instead.
    ///
    /// # Errors
    /// Store failures.
    fn claim_deliveries(
        &mut self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u64,
    ) -> Result<Vec<DueDelivery>, Error>;

    /// Records attempt `attempt` of delivery `id` (one more attempt, its time, status and
    /// error, and what follows), releasing the claim; [`crate::AttemptNext::Gone`] also disables
    /// the endpoint. Returns whether the delivery still exists.
    ///
    /// # Errors
    /// Store failures.
    fn record_attempt(&mut self, id: i64, attempt: &Attempt) -> Result<bool, Error>;

    /// Records each of `done` as [`record_attempt`](Self::record_attempt) does (a store
    /// may do it in one statement); returns how many deliveries still existed.
    ///
    /// # Errors
    /// Store failures.
    fn record_attempts(&mut self, done: &[(i64, Attempt)]) -> Result<u64, Error> {
        let mut recorded = 0;
        for (id, attempt) in done {
            recorded += u64::from(self.record_attempt(*id, attempt)?);
        }
        Ok(recorded)
    }

    /// For a dispatcher that is its store's only one (SQLite, holding the outbox's lock):
    /// up to `limit` pending deliveries due at `now` of active endpoints, oldest due first,
    /// leaving out those in `skip` (the ones it is sending), and whether any endpoint is
    /// turned off. A read: no lease is written, since nobody else claims (a row still
    /// leased by an earlier dispatcher waits for its lease to run out).
    ///
    /// # Errors
    /// Store failures.
    fn due_deliveries(
        &mut self,
        now: DateTime<Utc>,
        limit: u64,
        skip: &[i64],
    ) -> Result<crate::DueDeliveries, Error>;

    /// Marks `failed` the pending deliveries of endpoints turned off (as
    /// [`claim_deliveries`](Self::claim_deliveries) does first); returns how many.
    ///
    /// # Errors
    /// Store failures.
    fn fail_inactive_deliveries(&mut self) -> Result<u64, Error>;

    /// How many deliveries are pending, and when the oldest due one became due (for the
    /// metrics).
    ///
    /// # Errors
    /// Store failures.
    fn outbox_backlog(&mut self, now: DateTime<Utc>)
        -> Result<(u64, Option<DateTime<Utc>>), Error>;

    /// Queues `mail` (pending, due at `mail.at`), inside the change's own transaction.
    ///
    /// # Errors
    /// Store failures.
    fn append_mail(&mut self, mail: &NewMail) -> Result<(), Error>;

    /// Claims up to `limit` pending mails due at `now` (oldest first) whose earlier claim
    /// (if any) ran out, until `lease_until`, as
    /// [`claim_deliveries`](Self::claim_deliveries) does for webhooks.
    ///
    /// # Errors
    /// Store failures.
    fn claim_mails(
        &mut self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u64,
    ) -> Result<Vec<DueMail>, Error>;

    /// Records attempt `attempt` of mail `id` as [`record_attempt`](Self::record_attempt)
    /// does (`status_code` is the SMTP reply's code; `Gone` is treated as `Failed`);
    /// once sent or failed, the mail's body is cleared (it may hold an invitation's code,
    /// which is stored nowhere else). Returns whether the mail exists.
    ///
    /// # Errors
    /// Store failures.
    fn record_mail_attempt(&mut self, id: i64, attempt: &Attempt) -> Result<bool, Error>;

    /// How many mails are pending.
    ///
    /// # Errors
    /// Store failures.
    fn mail_backlog(&mut self) -> Result<u64, Error>;

    /// The value of setting `name` (the `settings` table), if any.
    ///
    /// # Errors
    /// Store failures.
    fn setting(&mut self, name: &str) -> Result<Option<String>, Error>;

    /// Stores `value` as setting `name`, replacing any.
    ///
    /// # Errors
    /// Store failures.
    fn put_setting(&mut self, name: &str, value: &str) -> Result<(), Error>;

    /// Stores a one-time code (see [`crate::OneTimeCode`]).
    ///
    /// # Errors
    /// Store failures.
    fn insert_code(&mut self, code: &crate::NewCode) -> Result<(), Error>;

    /// How many codes of `purpose` user `user` was sent since `since` (spent, dead or not).
    ///
    /// # Errors
    /// Store failures.
    fn count_codes_since(
        &mut self,
        user: UserId,
        purpose: crate::CodePurpose,
        since: DateTime<Utc>,
    ) -> Result<u64, Error>;

    /// Spends the live code of `purpose` of `user` stored as `code_hash` (unspent, fewer
    /// than [`crate::MAX_WRONG_TRIES`] wrong tries, not expired at `now`), and with it
    /// every other live code of that purpose of the user, in one conditional update: of
    /// racing tries with the right code, exactly one sees `true`. A code that does not
    /// match counts one wrong try on every live code of the purpose of the user, and
    /// `false` is returned.
    ///
    /// # Errors
    /// Store failures.
    fn spend_code(
        &mut self,
        user: UserId,
        purpose: crate::CodePurpose,
        code_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, Error>;

    /// `user`'s TOTP factor, pending or confirmed.
    ///
    /// # Errors
    /// Store failures.
    fn totp(&mut self, user: UserId) -> Result<Option<crate::StoredTotp>, Error>;

    /// Stores `totp` as its user's factor, replacing any they had.
    ///
    /// # Errors
    /// Store failures.
    fn put_totp(&mut self, totp: &crate::StoredTotp) -> Result<(), Error>;

    /// Confirms `user`'s pending factor at `at` with its first code, of `step`, in one
    /// conditional update: `false` when there is no pending factor (none, or confirmed
    /// meanwhile by a racing request).
    ///
    /// # Errors
    /// Store failures.
    fn confirm_totp(&mut self, user: UserId, step: i64, at: DateTime<Utc>) -> Result<bool, Error>;

    /// Records that a code of `step` was accepted for `user`'s confirmed factor, in one
    /// conditional update that only a step after the last one accepted passes: of racing
    /// requests with one code, exactly one sees `true`.
    ///
    /// # Errors
    /// Store failures.
    fn use_totp_step(&mut self, user: UserId, step: i64) -> Result<bool, Error>;

    /// Deletes `user`'s TOTP factor and recovery codes; `false` when they had no factor.
    ///
    /// # Errors
    /// Store failures.
    fn delete_totp(&mut self, user: UserId) -> Result<bool, Error>;

    /// Replaces `user`'s recovery codes with `hashes` ([`crate::MfaKeys::recovery_code_hash`]).
    ///
    /// # Errors
    /// Store failures.
    fn replace_recovery_codes(
        &mut self,
        user: UserId,
        hashes: &[String],
        at: DateTime<Utc>,
    ) -> Result<(), Error>;

    /// Spends `user`'s unspent recovery code stored as `hash`, in one conditional update:
    /// of racing tries, exactly one sees `true`.
    ///
    /// # Errors
    /// Store failures.
    fn spend_recovery_code(
        &mut self,
        user: UserId,
        hash: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, Error>;

    /// How many of `user`'s recovery codes are unspent.
    ///
    /// # Errors
    /// Store failures.
    fn count_recovery_codes(&mut self, user: UserId) -> Result<u64, Error>;

    /// Stores a challenge (see [`crate::NewChallenge`]).
    ///
    /// # Errors
    /// Store failures.
    fn insert_challenge(&mut self, challenge: &crate::NewChallenge) -> Result<(), Error>;

    /// The live challenge of `purpose` named by `token_hash`: not expired at `now`, fewer
    /// than [`crate::MAX_MFA_WRONG_CODES`] wrong tries, not spent.
    ///
    /// # Errors
    /// Store failures.
    fn find_challenge(
        &mut self,
        token_hash: &str,
        purpose: crate::ChallengePurpose,
        now: DateTime<Utc>,
    ) -> Result<Option<crate::Challenge>, Error>;

    /// Counts one wrong try on challenge `id`.
    ///
    /// # Errors
    /// Store failures.
    fn challenge_wrong_try(&mut self, id: i64) -> Result<(), Error>;

    /// Spends challenge `id` if it is still live at `now`, in one conditional delete: of
    /// racing requests, exactly one sees `true`.
    ///
    /// # Errors
    /// Store failures.
    fn spend_challenge(&mut self, id: i64, now: DateTime<Utc>) -> Result<bool, Error>;

    /// The newest live challenge of `purpose` of `user` (not expired at `now`, fewer than
    /// [`crate::MAX_MFA_WRONG_CODES`] wrong tries, not spent): a passkey registration
    /// finished without its challenge id.
    ///
    /// # Errors
    /// Store failures.
    fn find_user_challenge(
        &mut self,
        user: UserId,
        purpose: crate::ChallengePurpose,
        now: DateTime<Utc>,
    ) -> Result<Option<crate::Challenge>, Error>;

    /// Deletes every challenge of `purpose` of `user` (live or not); returns how many went.
    /// A new passkey registration replaces the one under way this way.
    ///
    /// # Errors
    /// Store failures.
    fn delete_user_challenges(
        &mut self,
        user: UserId,
        purpose: crate::ChallengePurpose,
    ) -> Result<u64, Error>;

    /// Stores a passkey and returns it as stored (with its fresh id, never used before).
    /// A credential id is unique across users: a second one is refused
    /// ([`Error::Conflict`] from a store that retries it; check first).
    ///
    /// # Errors
    /// Store failures.
    fn insert_passkey(
        &mut self,
        passkey: &crate::NewPasskey,
    ) -> Result<crate::StoredPasskey, Error>;

    /// `user`'s passkeys, newest first (by registration, then id).
    ///
    /// # Errors
    /// Store failures.
    fn list_passkeys(&mut self, user: UserId) -> Result<Vec<crate::StoredPasskey>, Error>;

    /// The passkey with `credential_id` (base 64, URL-safe), whoever's it is.
    ///
    /// # Errors
    /// Store failures.
    fn find_passkey_by_credential(
        &mut self,
        credential_id: &str,
    ) -> Result<Option<crate::StoredPasskey>, Error>;

    /// Records that passkey `id` signed someone in at `at`, with its record now `data`;
    /// returns whether it exists.
    ///
    /// # Errors
    /// Store failures.
    fn record_passkey_use(&mut self, id: i64, data: &str, at: DateTime<Utc>)
        -> Result<bool, Error>;

    /// Deletes `user`'s passkey `id`; `false` when they have none with that id (another
    /// user's is not theirs).
    ///
    /// # Errors
    /// Store failures.
    fn delete_passkey(&mut self, user: UserId, id: i64) -> Result<bool, Error>;

    /// How many passkeys `user` has.
    ///
    /// # Errors
    /// Store failures.
    fn count_passkeys(&mut self, user: UserId) -> Result<u64, Error>;

    /// How many passkeys the store holds, of all users (start-up refuses to serve them
    /// without a relying party).
    ///
    /// # Errors
    /// Store failures.
    fn count_all_passkeys(&mut self) -> Result<u64, Error>;

    /// Deletes every second factor of `user` (TOTP, recovery codes, passkeys) and their
    /// challenges under way.
    ///
    /// # Errors
    /// Store failures.
    fn delete_mfa(&mut self, user: UserId) -> Result<(), Error>;

    /// Deletes the settled deliveries (delivered or failed) written before `before`;
    /// pending ones stay, however old. Returns how many went.
    ///
    /// # Errors
    /// Store failures.
    fn prune_deliveries(&mut self, before: DateTime<Utc>) -> Result<u64, Error>;

    /// Deletes counters neither locked at `now` nor touched since `idle_before`; returns
    /// how many rows went.
    ///
    /// # Errors
    /// Store failures.
    fn prune(&mut self, now: DateTime<Utc>, idle_before: DateTime<Utc>) -> Result<u64, Error>;
}

/// A work closure run against the repository inside one transaction.
pub type Work<'a> = dyn FnMut(&mut dyn UserRepo) -> Result<(), Error> + 'a;

/// Where every authenticated request finds its session's user: the one read on the hot
/// path, given its own port so that each store answers it the fastest way it has without
/// the domain knowing how (the domain knows no async runtime: the answer is a plain
/// [`std::future::Future`]).
///
/// Implementations MUST:
/// - give the answers [`UserRepo::find_session_user`] gives;
/// - start the read after the call, so that the answer is never older than the request
///   (nothing is cached: a user disabled before the call is seen disabled);
/// - never block the calling thread on a network round trip or on a wait for a
///   connection (the caller is an async worker): a store that has to wait answers later,
///   through the future, from a thread of its own (see [`session_reply`]);
/// - bound what waits: beyond its bound a store answers [`Error::Overloaded`] at once.
pub trait SessionSource: Send + Sync {
    /// The user with `id` and the state of their session `session_id`, as
    /// [`UserRepo::find_session_user`] answers.
    fn find_session_user(&self, id: UserId, session_id: i64) -> SessionLookup;
}

/// A store that runs units of work in transactions, and finds sessions' users
/// ([`SessionSource`]).
///
/// `write` MUST serialize against every other `write` whose outcome could change its
/// checks (SQLite: `BEGIN IMMEDIATE`; PostgreSQL: SERIALIZABLE with retries), so that a
/// count-then-change rule read and enforced inside it holds under any concurrency, across
/// processes sharing the database. A closure that returns an error rolls everything back.
/// A store MAY run the closure more than once (retrying a lost serialization race); only
/// the last run's effects and result count.
pub trait UserStore: SessionSource + Send + Sync {
    /// Runs `work` in a transaction that only reads.
    ///
    /// # Errors
    /// The closure's error, or store failures.
    fn read(&self, work: &mut Work<'_>) -> Result<(), Error>;

    /// Runs `work` in a serialized read-write transaction and commits when it succeeds.
    ///
    /// # Errors
    /// The closure's error (after rolling back), or store failures.
    fn write(&self, work: &mut Work<'_>) -> Result<(), Error>;

    /// Runs `work` in a read-write transaction whose checks are all guarded by the rows
    /// they write: each check is a conditional update of the row it checks (`UPDATE …
    /// WHERE spent_at IS NULL`, whose row count says whether it held) or reads a row the
    /// transaction then updates conditionally, and none reads an aggregate (a count) that
    /// another transaction could change. Such work needs no serializable isolation, and
    /// MAY run at a weaker one (PostgreSQL: READ COMMITTED, where concurrent writers of one
    /// row wait for each other instead of failing and retrying). Defaults to
    /// [`write`](Self::write). For the refresh of a session: many concurrent refreshes of
    /// different sessions would otherwise conflict on shared index pages.
    ///
    /// # Errors
    /// The closure's error (after rolling back), or store failures.
    fn write_rows(&self, work: &mut Work<'_>) -> Result<(), Error> {
        self.write(work)
    }

    /// Runs `work`, which reads with a single statement, without an explicit transaction
    /// (saving the round trips of `BEGIN` and `COMMIT` on the hottest path). Defaults to
    /// [`read`](Self::read).
    ///
    /// # Errors
    /// The closure's error, or store failures.
    fn read_single(&self, work: &mut Work<'_>) -> Result<(), Error> {
        self.read(work)
    }

    /// Checks that the store can take a write now (for readiness probes): a small write
    /// that must commit, on a server that is not a read-only standby.
    ///
    /// # Errors
    /// [`Error::Unavailable`] when it cannot.
    fn ping(&self) -> Result<(), Error>;
}

/// Typed helpers over the object-safe [`UserStore`] methods.
pub trait UserStoreExt: UserStore {
    /// Runs `f` in a read transaction and returns its result.
    ///
    /// # Errors
    /// As [`UserStore::read`].
    fn read_with<T>(
        &self,
        mut f: impl FnMut(&mut dyn UserRepo) -> Result<T, Error>,
    ) -> Result<T, Error> {
        let mut out = None;
        self.read(&mut |repo| {
            out = Some(f(repo)?);
            Ok(())
        })?;
        out.ok_or_else(|| Error::internal("read transaction", "the store did not run the work"))
    }

    /// Runs `f` (a single-statement read) without an explicit transaction.
    ///
    /// # Errors
    /// As [`UserStore::read_single`].
    fn read_single_with<T>(
        &self,
        mut f: impl FnMut(&mut dyn UserRepo) -> Result<T, Error>,
    ) -> Result<T, Error> {
        let mut out = None;
        self.read_single(&mut |repo| {
            out = Some(f(repo)?);
            Ok(())
        })?;
        out.ok_or_else(|| Error::internal("read", "the store did not run the work"))
    }

    /// Runs `f` in a row-guarded write transaction ([`UserStore::write_rows`]) and returns
    /// its result.
    ///
    /// # Errors
    /// As [`UserStore::write_rows`].
    fn write_rows_with<T>(
        &self,
        mut f: impl FnMut(&mut dyn UserRepo) -> Result<T, Error>,
    ) -> Result<T, Error> {
        let mut out = None;
        self.write_rows(&mut |repo| {
            out = Some(f(repo)?);
            Ok(())
        })?;
        out.ok_or_else(|| Error::internal("write transaction", "the store did not run the work"))
    }

    /// Runs `f` in a write transaction and returns its result.
    ///
    /// # Errors
    /// As [`UserStore::write`].
    fn write_with<T>(
        &self,
        mut f: impl FnMut(&mut dyn UserRepo) -> Result<T, Error>,
    ) -> Result<T, Error> {
        let mut out = None;
        self.write(&mut |repo| {
            out = Some(f(repo)?);
            Ok(())
        })?;
        out.ok_or_else(|| Error::internal("write transaction", "the store did not run the work"))
    }
}

impl<S: UserStore + ?Sized> UserStoreExt for S {}
