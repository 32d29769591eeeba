//! Row types: crate-private, converted to and from domain types by hand, never serialized.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Nullable, Text, Timestamp};
use gatehouse_domain::{
    Delivery, DeliveryStatus, DueDelivery, Email, Error, EventFilter, Invitation, NewUser,
    PasswordHash, SessionState, StoredSession, User, UserId, Webhook, WebhookSecret,
};

use crate::schema::{invitations, sessions, users, webhook_deliveries, webhooks};
use crate::stored_time::StoredTime;

#[derive(Debug, Queryable, Selectable)]
#[diesel(table_name = users)]
pub(crate) struct UserRow {
    id: i64,
    email: String,
    password_hash: String,
    is_admin: bool,
    status: String,
    created_at: StoredTime,
    approved_at: Option<StoredTime>,
    approved_by: Option<i64>,
    token_version: i64,
    reason: Option<String>,
    email_verified: bool,
    mfa_enabled: bool,
    rejected_at: Option<StoredTime>,
    rejected_by: Option<i64>,
    decision_note: Option<String>,
}

impl UserRow {
    /// The row's id as stored, whether or not the row converts into a [`User`].
    pub(crate) fn id(&self) -> i64 {
        self.id
    }
}

/// The type of [`USER_COLUMNS`].
pub(crate) type UserColumns = (
    users::id,
    users::email,
    users::password_hash,
    users::is_admin,
    users::status,
    users::created_at,
    users::approved_at,
    users::approved_by,
    users::token_version,
    users::reason,
    users::email_verified,
    users::mfa_enabled,
    users::rejected_at,
    users::rejected_by,
    users::decision_note,
);

/// [`UserRow`]'s columns, for `RETURNING` (which the multi-backend connection takes as a
/// tuple of columns, not as `UserRow::as_returning()`).
pub(crate) const USER_COLUMNS: UserColumns = (
    users::id,
    users::email,
    users::password_hash,
    users::is_admin,
    users::status,
    users::created_at,
    users::approved_at,
    users::approved_by,
    users::token_version,
    users::reason,
    users::email_verified,
    users::mfa_enabled,
    users::rejected_at,
    users::rejected_by,
    users::decision_note,
);

impl TryFrom<UserRow> for User {
    type Error = Error;

    fn try_from(row: UserRow) -> Result<Self, Error> {
        Ok(User {
            id: UserId::new(row.id).map_err(|e| Error::internal("stored user id", e))?,
            // As stored: rows from before NFKC and the script rule must still load.
            email: Email::from_stored(row.email).map_err(|e| Error::internal("stored email", e))?,
            password_hash: PasswordHash::new(row.password_hash),
            is_admin: row.is_admin,
            status: row
                .status
                .parse()
                .map_err(|e| Error::internal("stored status", e))?,
            created_at: row.created_at.0.and_utc(),
            approved_at: row.approved_at.map(|at| at.0.and_utc()),
            approved_by: row
                .approved_by
                .map(UserId::new)
                .transpose()
                .map_err(|e| Error::internal("stored approver id", e))?,
            token_version: row.token_version,
            reason: row.reason,
            email_verified: row.email_verified,
            mfa_enabled: row.mfa_enabled,
            rejected_at: row.rejected_at.map(|at| at.0.and_utc()),
            rejected_by: row
                .rejected_by
                .map(UserId::new)
                .transpose()
                .map_err(|e| Error::internal("stored rejecter id", e))?,
            decision_note: row.decision_note,
        })
    }
}

#[derive(Debug, Insertable)]
#[diesel(table_name = users)]
pub(crate) struct NewUserRow<'a> {
    email: &'a str,
    password_hash: &'a str,
    is_admin: bool,
    status: &'a str,
    created_at: NaiveDateTime,
    approved_at: Option<NaiveDateTime>,
    approved_by: Option<i64>,
    token_version: i64,
    email_skeleton: String,
    reason: Option<&'a str>,
    email_verified: bool,
}

impl<'a> From<&'a NewUser> for NewUserRow<'a> {
    fn from(user: &'a NewUser) -> Self {
        Self {
            email: user.email.as_str(),
            email_skeleton: user.email.skeleton(),
            password_hash: user.password_hash.as_str(),
            is_admin: user.is_admin,
            status: user.status.as_str(),
            created_at: user.created_at.naive_utc(),
            approved_at: user.approved_at.map(|at| at.naive_utc()),
            approved_by: user.approved_by.map(UserId::get),
            token_version: 0,
            reason: user.reason.as_deref(),
            email_verified: user.email_verified,
        }
    }
}

/// Every column an update may write; `None` writes NULL. The skeleton is written with the
/// email it belongs to, always.
#[derive(Debug, AsChangeset)]
#[diesel(table_name = users, treat_none_as_null = true)]
pub(crate) struct UserChangeset<'a> {
    email: &'a str,
    email_skeleton: String,
    password_hash: &'a str,
    is_admin: bool,
    status: &'a str,
    approved_at: Option<NaiveDateTime>,
    approved_by: Option<i64>,
    token_version: i64,
    reason: Option<&'a str>,
    email_verified: bool,
    mfa_enabled: bool,
    rejected_at: Option<NaiveDateTime>,
    rejected_by: Option<i64>,
    decision_note: Option<&'a str>,
}

impl<'a> From<&'a User> for UserChangeset<'a> {
    fn from(user: &'a User) -> Self {
        Self {
            email: user.email.as_str(),
            email_skeleton: user.email.skeleton(),
            password_hash: user.password_hash.as_str(),
            is_admin: user.is_admin,
            status: user.status.as_str(),
            approved_at: user.approved_at.map(|at| at.naive_utc()),
            approved_by: user.approved_by.map(UserId::get),
            token_version: user.token_version,
            reason: user.reason.as_deref(),
            email_verified: user.email_verified,
            mfa_enabled: user.mfa_enabled,
            rejected_at: user.rejected_at.map(|at| at.naive_utc()),
            rejected_by: user.rejected_by.map(UserId::get),
            decision_note: user.decision_note.as_deref(),
        }
    }
}

#[derive(Debug, Queryable)]
pub(crate) struct CounterRow {
    pub count: i64,
    pub since: NaiveDateTime,
    pub locked_until: Option<NaiveDateTime>,
}

impl From<CounterRow> for gatehouse_domain::Counter {
    fn from(row: CounterRow) -> Self {
        Self {
            count: row.count,
            since: row.since.and_utc(),
            locked_until: row.locked_until.map(|at| at.and_utc()),
        }
    }
}

#[derive(Debug, Queryable)]
pub(crate) struct AuditRow {
    id: i64,
    at: StoredTime,
    action: String,
    actor_id: Option<i64>,
    target_id: Option<i64>,
    address: Option<String>,
    detail: Option<String>,
}

impl TryFrom<AuditRow> for gatehouse_domain::AuditEntry {
    type Error = Error;

    fn try_from(row: AuditRow) -> Result<Self, Error> {
        let id = |raw: Option<i64>| {
            raw.map(UserId::new)
                .transpose()
                .map_err(|e| Error::internal("stored audit user id", e))
        };
        Ok(Self {
            id: row.id,
            entry: gatehouse_domain::NewAuditEntry {
                at: row.at.0.and_utc(),
                action: row
                    .action
                    .parse()
                    .map_err(|e| Error::internal("stored audit action", e))?,
                actor_id: id(row.actor_id)?,
                target_id: id(row.target_id)?,
                address: row.address,
                detail: row.detail,
            },
        })
    }
}

/// An invitation as stored (its code hash left out: it is only ever looked up by).
#[derive(Debug, Queryable)]
pub(crate) struct InvitationRow {
    id: i64,
    email: Option<String>,
    is_admin: bool,
    note: Option<String>,
    created_at: StoredTime,
    created_by: Option<i64>,
    expires_at: StoredTime,
    max_uses: i64,
    uses: i64,
    revoked_at: Option<StoredTime>,
}

/// [`InvitationRow`]'s columns, for `SELECT` and `RETURNING`.
pub(crate) const INVITATION_COLUMNS: (
    invitations::id,
    invitations::email,
    invitations::is_admin,
    invitations::note,
    invitations::created_at,
    invitations::created_by,
    invitations::expires_at,
    invitations::max_uses,
    invitations::uses,
    invitations::revoked_at,
) = (
    invitations::id,
    invitations::email,
    invitations::is_admin,
    invitations::note,
    invitations::created_at,
    invitations::created_by,
    invitations::expires_at,
    invitations::max_uses,
    invitations::uses,
    invitations::revoked_at,
);

impl TryFrom<InvitationRow> for Invitation {
    type Error = Error;

    fn try_from(row: InvitationRow) -> Result<Self, Error> {
        let count =
            |n: i64, what: &'static str| u32::try_from(n).map_err(|e| Error::internal(what, e));
        Ok(Invitation {
            id: row.id,
            email: row
                .email
                .map(Email::from_stored)
                .transpose()
                .map_err(|e| Error::internal("stored invitation email", e))?,
            is_admin: row.is_admin,
            note: row.note,
            created_at: row.created_at.0.and_utc(),
            created_by: row
                .created_by
                .map(UserId::new)
                .transpose()
                .map_err(|e| Error::internal("stored inviter id", e))?,
            expires_at: row.expires_at.0.and_utc(),
            max_uses: count(row.max_uses, "stored invitation limit")?,
            uses: count(row.uses, "stored invitation uses")?,
            revoked_at: row.revoked_at.map(|at| at.0.and_utc()),
        })
    }
}

/// A session as stored.
#[derive(Debug, Queryable)]
pub(crate) struct SessionRow {
    id: i64,
    user_id: i64,
    created_at: StoredTime,
    last_used_at: StoredTime,
    idle_expires_at: StoredTime,
    expires_at: StoredTime,
    revoked_at: Option<StoredTime>,
    address: Option<String>,
    user_agent: Option<String>,
}

/// [`SessionRow`]'s columns, for `SELECT` and `RETURNING`.
pub(crate) const SESSION_COLUMNS: (
    sessions::id,
    sessions::user_id,
    sessions::created_at,
    sessions::last_used_at,
    sessions::idle_expires_at,
    sessions::expires_at,
    sessions::revoked_at,
    sessions::address,
    sessions::user_agent,
) = (
    sessions::id,
    sessions::user_id,
    sessions::created_at,
    sessions::last_used_at,
    sessions::idle_expires_at,
    sessions::expires_at,
    sessions::revoked_at,
    sessions::address,
    sessions::user_agent,
);

impl TryFrom<SessionRow> for StoredSession {
    type Error = Error;

    fn try_from(row: SessionRow) -> Result<Self, Error> {
        Ok(StoredSession {
            id: row.id,
            user_id: UserId::new(row.user_id).map_err(|e| Error::internal("stored session", e))?,
            created_at: row.created_at.0.and_utc(),
            last_used_at: row.last_used_at.0.and_utc(),
            idle_expires_at: row.idle_expires_at.0.and_utc(),
            expires_at: row.expires_at.0.and_utc(),
            revoked_at: row.revoked_at.map(|at| at.0.and_utc()),
            address: row.address,
            user_agent: row.user_agent,
        })
    }
}

/// What the session lookup reads of a session, left-joined to its user: every column is
/// NULL when the user has no session with that id.
pub(crate) type SessionStateRow = (Option<StoredTime>, Option<StoredTime>, Option<StoredTime>);

/// The session of a lookup row, if the user had one with the id asked for.
pub(crate) fn session_state(row: SessionStateRow) -> Option<SessionState> {
    let (revoked_at, idle_expires_at, expires_at) = row;
    Some(SessionState {
        revoked: revoked_at.is_some(),
        idle_expires_at: idle_expires_at?.0.and_utc(),
        expires_at: expires_at?.0.and_utc(),
    })
}

/// A webhook endpoint as stored (`updated_at` left out: the domain has no use for it).
#[derive(Debug, Queryable)]
pub(crate) struct WebhookRow {
    id: i64,
    url: String,
    events: String,
    description: Option<String>,
    secret: String,
    active: bool,
    created_at: StoredTime,
}

/// [`WebhookRow`]'s columns, for `SELECT` and `RETURNING`.
pub(crate) const WEBHOOK_COLUMNS: (
    webhooks::id,
    webhooks::url,
    webhooks::events,
    webhooks::description,
    webhooks::secret,
    webhooks::active,
    webhooks::created_at,
) = (
    webhooks::id,
    webhooks::url,
    webhooks::events,
    webhooks::description,
    webhooks::secret,
    webhooks::active,
    webhooks::created_at,
);

impl From<WebhookRow> for Webhook {
    fn from(row: WebhookRow) -> Self {
        Webhook {
            id: row.id,
            url: row.url,
            events: EventFilter::from_stored(&row.events),
            description: row.description,
            active: row.active,
            created_at: row.created_at.0.and_utc(),
            secret: WebhookSecret::from_stored(row.secret),
        }
    }
}

/// A delivery as the log shows it.
#[derive(Debug, Queryable)]
pub(crate) struct DeliveryRow {
    id: i64,
    webhook_id: i64,
    event_id: String,
    event_type: String,
    status: String,
    attempts: i64,
    last_attempt_at: Option<StoredTime>,
    last_status_code: Option<i64>,
    last_error: Option<String>,
    next_attempt_at: Option<StoredTime>,
    created_at: StoredTime,
}

/// [`DeliveryRow`]'s columns.
pub(crate) const DELIVERY_COLUMNS: (
    webhook_deliveries::id,
    webhook_deliveries::webhook_id,
    webhook_deliveries::event_id,
    webhook_deliveries::event_type,
    webhook_deliveries::status,
    webhook_deliveries::attempts,
    webhook_deliveries::last_attempt_at,
    webhook_deliveries::last_status_code,
    webhook_deliveries::last_error,
    webhook_deliveries::next_attempt_at,
    webhook_deliveries::created_at,
) = (
    webhook_deliveries::id,
    webhook_deliveries::webhook_id,
    webhook_deliveries::event_id,
    webhook_deliveries::event_type,
    webhook_deliveries::status,
    webhook_deliveries::attempts,
    webhook_deliveries::last_attempt_at,
    webhook_deliveries::last_status_code,
    webhook_deliveries::last_error,
    webhook_deliveries::next_attempt_at,
    webhook_deliveries::created_at,
);

/// A stored attempt count as the domain's.
fn attempts(n: i64) -> Result<u32, Error> {
    u32::try_from(n).map_err(|e| Error::internal("stored delivery attempts", e))
}

impl TryFrom<DeliveryRow> for Delivery {
    type Error = Error;

    fn try_from(row: DeliveryRow) -> Result<Self, Error> {
        Ok(Delivery {
            id: row.id,
            webhook_id: row.webhook_id,
            event_id: row.event_id,
            event_type: row.event_type,
            status: DeliveryStatus::parse(&row.status).ok_or_else(|| {
                Error::internal("stored delivery status", format!("{:?}", row.status))
            })?,
            attempts: attempts(row.attempts)?,
            last_attempt_at: row.last_attempt_at.map(|at| at.0.and_utc()),
            last_status_code: row
                .last_status_code
                .map(u16::try_from)
                .transpose()
                .map_err(|e| Error::internal("stored delivery status code", e))?,
            last_error: row.last_error,
            next_attempt_at: row.next_attempt_at.map(|at| at.0.and_utc()),
            created_at: row.created_at.0.and_utc(),
        })
    }
}

/// A claimed delivery with what its attempt needs: its endpoint's address and secret, its
/// payload.
#[derive(Debug, Queryable)]
pub(crate) struct DueRow {
    id: i64,
    webhook_id: i64,
    url: String,
    secret: String,
    event_id: String,
    payload: String,
    attempts: i64,
}

/// [`DueRow`]'s columns (deliveries joined to their endpoints).
pub(crate) const DUE_COLUMNS: (
    webhook_deliveries::id,
    webhook_deliveries::webhook_id,
    webhooks::url,
    webhooks::secret,
    webhook_deliveries::event_id,
    webhook_deliveries::payload,
    webhook_deliveries::attempts,
) = (
    webhook_deliveries::id,
    webhook_deliveries::webhook_id,
    webhooks::url,
    webhooks::secret,
    webhook_deliveries::event_id,
    webhook_deliveries::payload,
    webhook_deliveries::attempts,
);

/// A due delivery as PostgreSQL's one-statement claim and the sole dispatcher's read
/// (`outbox::claim_deliveries`, `outbox::due_deliveries`) return it: with its endpoint's
/// address and secret, and when it was due (their order).
#[derive(Debug, QueryableByName)]
pub(crate) struct ClaimedRow {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = BigInt)]
    webhook_id: i64,
    #[diesel(sql_type = Text)]
    url: String,
    #[diesel(sql_type = Text)]
    secret: String,
    #[diesel(sql_type = Text)]
    event_id: String,
    #[diesel(sql_type = Text)]
    payload: String,
    #[diesel(sql_type = BigInt)]
    attempts: i64,
    #[diesel(sql_type = Nullable<Timestamp>)]
    next_attempt_at: Option<StoredTime>,
}

impl ClaimedRow {
    /// Oldest due first, then by id.
    pub(crate) fn order(&self) -> (Option<NaiveDateTime>, i64) {
        (self.next_attempt_at.map(|at| at.0), self.id)
    }
}

impl TryFrom<ClaimedRow> for DueDelivery {
    type Error = Error;

    fn try_from(row: ClaimedRow) -> Result<Self, Error> {
        DueDelivery::try_from(DueRow {
            id: row.id,
            webhook_id: row.webhook_id,
            url: row.url,
            secret: row.secret,
            event_id: row.event_id,
            payload: row.payload,
            attempts: row.attempts,
        })
    }
}

impl TryFrom<DueRow> for DueDelivery {
    type Error = Error;

    fn try_from(row: DueRow) -> Result<Self, Error> {
        Ok(DueDelivery {
            id: row.id,
            webhook_id: row.webhook_id,
            url: row.url,
            secret: WebhookSecret::from_stored(row.secret),
            event_id: row.event_id,
            payload: row.payload,
            attempts: attempts(row.attempts)?,
        })
    }
}
