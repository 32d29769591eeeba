use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard};

use chrono::{DateTime, Utc};

use crate::ports::answered;
use crate::{
    Attempt, AttemptNext, AuditAction, AuditEntry, AuditQuery, Counter, CounterScope, Delivery,
    DeliveryStatus, DueDelivery, DueMail, Email, Error, FoundRefreshToken, Invitation,
    InvitationQuery, InvitationStatus, Listing, NewAuditEntry, NewEvent, NewInvitation, NewMail,
    NewSession, NewUser, NewWebhook, Page, PageQuery, SessionLookup, SessionQuery, SessionSource,
    SessionState, StoredSession, User, UserId, UserQuery, UserRepo, UserStatus, UserStore,
    UserStoreExt as _, Webhook,
};

/// A store in a mutex: every unit of work runs on a copy of the state under the lock and
/// replaces the state only when it succeeds, so it is serializable and rolls back like a
/// database transaction. Passes the contract suite; meant for tests.
#[derive(Debug, Default)]
pub struct InMemoryStore {
    state: Mutex<State>,
}

#[derive(Debug, Clone, Default)]
struct State {
    users: BTreeMap<i64, User>,
    last_id: i64,
    /// Sessions by id.
    sessions: BTreeMap<i64, StoredSession>,
    last_session_id: i64,
    /// Refresh tokens by hash: their session, and when they were spent.
    refresh_tokens: HashMap<String, (i64, Option<DateTime<Utc>>)>,
    counters: HashMap<(CounterScope, String), Counter>,
    audit: Vec<AuditEntry>,
    last_audit_id: i64,
    /// Device tokens by hash: whose, and when last used.
    devices: HashMap<String, (UserId, DateTime<Utc>)>,
    /// Invitations by id, with their code hashes.
    invitations: BTreeMap<i64, (String, Invitation)>,
    last_invitation_id: i64,
    /// Webhook endpoints by id.
    webhooks: BTreeMap<i64, Webhook>,
    last_webhook_id: i64,
    /// Each delivery's payload, by the delivery's id.
    payloads: HashMap<i64, String>,
    /// Deliveries by id, each with the end of its claim (if any).
    deliveries: BTreeMap<i64, (Delivery, Option<DateTime<Utc>>)>,
    last_delivery_id: i64,
    /// Queued mails by id.
    mails: BTreeMap<i64, StoredMail>,
    last_mail_id: i64,
    /// The `settings` table.
    settings: HashMap<String, String>,
    /// One-time codes, each with its wrong tries and when it was spent.
    codes: Vec<(crate::NewCode, i64, Option<DateTime<Utc>>)>,
    /// TOTP factors by user id.
    totp: BTreeMap<i64, crate::StoredTotp>,
    /// Recovery codes: whose, the hash, and when spent.
    recovery_codes: Vec<(UserId, String, Option<DateTime<Utc>>)>,
    /// Challenges by id, with their token hashes.
    challenges: BTreeMap<i64, (String, crate::Challenge)>,
    last_challenge_id: i64,
    /// Passkeys by id.
    passkeys: BTreeMap<i64, crate::StoredPasskey>,
    last_passkey_id: i64,
}

/// A queued mail with its state, as the `mails` table keeps it.
#[derive(Debug, Clone)]
struct StoredMail {
    /// The mail, with the attempts made so far.
    mail: DueMail,
    status: MailStatus,
    /// When the next attempt is due (`None` once sent or failed).
    next_attempt_at: Option<DateTime<Utc>>,
    /// The end of a dispatcher's claim, if any.
    claimed_until: Option<DateTime<Utc>>,
    /// The last attempt (its time, reply code and error), if one was made.
    last_attempt: Option<Attempt>,
    /// When it was sent.
    sent_at: Option<DateTime<Utc>>,
}

/// A mail's `status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MailStatus {
    Pending,
    Sent,
    Failed,
}

/// Why a delivery failed without an attempt (as the SQL stores write it).
const DISABLED: &str = "the endpoint was disabled";

impl InMemoryStore {
    /// An empty store.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> Result<MutexGuard<'_, State>, Error> {
        self.state
            .lock()
            .map_err(|_| Error::internal("in-memory store", "a unit of work panicked"))
    }
}

/// Memory answers right away, on the calling thread.
impl SessionSource for InMemoryStore {
    fn find_session_user(&self, id: UserId, session_id: i64) -> SessionLookup {
        answered(self.read_with(|repo| repo.find_session_user(id, session_id)))
    }
}

impl UserStore for InMemoryStore {
    fn read(&self, work: &mut crate::ports::Work<'_>) -> Result<(), Error> {
        let mut copy = self.lock()?.clone();
        work(&mut copy)
    }

    fn write(&self, work: &mut crate::ports::Work<'_>) -> Result<(), Error> {
        let mut guard = self.lock()?;
        let mut copy = guard.clone();
        work(&mut copy)?;
        *guard = copy;
        Ok(())
    }

    fn ping(&self) -> Result<(), Error> {
        self.lock().map(drop)
    }
}

impl State {
    fn email_taken(&self, email: &Email, except: Option<UserId>) -> bool {
        self.users
            .values()
            .any(|u| &u.email == email && Some(u.id) != except)
    }

    /// Up to `limit` pending deliveries of active endpoints due at `now`, unleased, oldest
    /// due first, but those in `skip`.
    fn due(&self, now: DateTime<Utc>, limit: u64, skip: &[i64]) -> Vec<DueDelivery> {
        let active = |id: i64| self.webhooks.get(&id).is_some_and(|w| w.active);
        let mut due: Vec<(DateTime<Utc>, i64)> = self
            .deliveries
            .values()
            .filter(|(d, claimed_until)| {
                d.status == DeliveryStatus::Pending
                    && claimed_until.is_none_or(|until| until < now)
                    && active(d.webhook_id)
                    && !skip.contains(&d.id)
            })
            .filter_map(|(d, _)| {
                d.next_attempt_at
                    .filter(|at| *at <= now)
                    .map(|at| (at, d.id))
            })
            .collect();
        due.sort_unstable();
        due.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
        due.into_iter()
            .filter_map(|(_, id)| {
                let (delivery, _) = self.deliveries.get(&id)?;
                let webhook = self.webhooks.get(&delivery.webhook_id)?;
                let payload = self.payloads.get(&id)?;
                Some(DueDelivery {
                    id,
                    webhook_id: webhook.id,
                    url: webhook.url.clone(),
                    secret: webhook.secret.clone(),
                    event_id: delivery.event_id.clone(),
                    payload: payload.clone(),
                    attempts: delivery.attempts,
                })
            })
            .collect()
    }
}

impl UserRepo for State {
    fn count_users(&mut self) -> Result<u64, Error> {
        Ok(self.users.len() as u64)
    }

    fn count_active_admins(&mut self) -> Result<u64, Error> {
        Ok(self.users.values().filter(|u| u.is_active_admin()).count() as u64)
    }

    fn count_with_status(&mut self, status: UserStatus) -> Result<u64, Error> {
        Ok(self.users.values().filter(|u| u.status == status).count() as u64)
    }

    fn count_pending_unverified(&mut self) -> Result<u64, Error> {
        Ok(self
            .users
            .values()
            .filter(|u| u.status == UserStatus::Pending && !u.email_verified)
            .count() as u64)
    }

    fn insert(&mut self, new: NewUser) -> Result<User, Error> {
        if self.email_taken(&new.email, None) {
            return Err(Error::EmailTaken);
        }
        let id = self.last_id + 1;
        let user = User {
            id: UserId::new(id).map_err(|e| Error::internal("in-memory id", e))?,
            email: new.email,
            password_hash: new.password_hash,
            is_admin: new.is_admin,
            status: new.status,
            created_at: new.created_at,
            approved_at: new.approved_at,
            approved_by: new.approved_by,
            token_version: 0,
            reason: new.reason,
            email_verified: new.email_verified,
            mfa_enabled: false,
            rejected_at: None,
            rejected_by: None,
            decision_note: None,
        };
        self.last_id = id;
        self.users.insert(id, user.clone());
        Ok(user)
    }

    fn find_by_id(&mut self, id: UserId) -> Result<Option<User>, Error> {
        Ok(self.users.get(&id.get()).cloned())
    }

    fn find_by_email(&mut self, email: &Email) -> Result<Option<User>, Error> {
        Ok(self.users.values().find(|u| &u.email == email).cloned())
    }

    fn find_by_email_skeleton(
        &mut self,
        email: &Email,
        except: Option<UserId>,
    ) -> Result<Option<User>, Error> {
        let skeleton = email.skeleton();
        Ok(self
            .users
            .values()
            .find(|u| Some(u.id) != except && u.email.skeleton() == skeleton)
            .cloned())
    }

    fn each_user(&mut self, query: &UserQuery, into: &mut dyn Listing<User>) -> Result<(), Error> {
        let needle = query.email_contains.as_deref().map(str::to_lowercase);
        let matching = || {
            self.users
                .values()
                .rev()
                .filter(|u| query.status.is_none_or(|s| u.status == s))
                .filter(|u| query.is_admin.is_none_or(|a| u.is_admin == a))
                .filter(|u| {
                    needle
                        .as_deref()
                        .is_none_or(|n| u.email.as_str().contains(n))
                })
        };
        hand_over(matching, query.limit, query.offset, into)
    }

    fn update(&mut self, user: &User) -> Result<User, Error> {
        if !self.users.contains_key(&user.id.get()) {
            return Err(Error::UserNotFound);
        }
        if self.email_taken(&user.email, Some(user.id)) {
            return Err(Error::EmailTaken);
        }
        let stored = self
            .users
            .get_mut(&user.id.get())
            .ok_or(Error::UserNotFound)?;
        let created_at = stored.created_at;
        *stored = User {
            created_at,
            ..user.clone()
        };
        Ok(stored.clone())
    }

    fn delete(&mut self, id: UserId) -> Result<bool, Error> {
        let existed = self.users.remove(&id.get()).is_some();
        self.devices.retain(|_, (owner, _)| *owner != id);
        self.codes.retain(|(code, _, _)| code.user_id != id);
        self.delete_mfa(id)?;
        self.sessions.retain(|_, session| session.user_id != id);
        let sessions = &self.sessions;
        self.refresh_tokens
            .retain(|_, (session, _)| sessions.contains_key(session));
        for (_, invitation) in self.invitations.values_mut() {
            if invitation.created_by == Some(id) {
                invitation.created_by = None;
            }
        }
        for user in self.users.values_mut() {
            if user.approved_by == Some(id) {
                user.approved_by = None;
            }
            if user.rejected_by == Some(id) {
                user.rejected_by = None;
            }
        }
        Ok(existed)
    }

    fn find_session_user(
        &mut self,
        id: UserId,
        session_id: i64,
    ) -> Result<Option<(User, Option<SessionState>)>, Error> {
        let Some(user) = self.users.get(&id.get()) else {
            return Ok(None);
        };
        let state = self
            .sessions
            .get(&session_id)
            .filter(|s| s.user_id == id)
            .map(|s| SessionState {
                revoked: s.revoked_at.is_some(),
                idle_expires_at: s.idle_expires_at,
                expires_at: s.expires_at,
            });
        Ok(Some((user.clone(), state)))
    }

    fn insert_session(
        &mut self,
        session: &NewSession,
        refresh_hash: &str,
    ) -> Result<StoredSession, Error> {
        if !self.users.contains_key(&session.user_id.get()) {
            return Err(Error::UserNotFound);
        }
        if self.refresh_tokens.contains_key(refresh_hash) {
            return Err(Error::Conflict);
        }
        self.last_session_id += 1;
        let stored = StoredSession {
            id: self.last_session_id,
            user_id: session.user_id,
            created_at: session.created_at,
            last_used_at: session.created_at,
            idle_expires_at: session.idle_expires_at,
            expires_at: session.expires_at,
            revoked_at: None,
            address: session.address.clone(),
            user_agent: session.user_agent.clone(),
        };
        self.sessions.insert(stored.id, stored.clone());
        self.refresh_tokens
            .insert(refresh_hash.to_owned(), (stored.id, None));
        Ok(stored)
    }

    fn find_session(&mut self, id: i64) -> Result<Option<StoredSession>, Error> {
        Ok(self.sessions.get(&id).cloned())
    }

    fn find_refresh_token(&mut self, token_hash: &str) -> Result<Option<FoundRefreshToken>, Error> {
        Ok(self
            .refresh_tokens
            .get(token_hash)
            .and_then(|(session, spent)| {
                let session = self.sessions.get(session)?;
                let user = self.users.get(&session.user_id.get())?;
                Some((session.clone(), *spent, user.clone()))
            }))
    }

    fn spend_refresh_token(&mut self, token_hash: &str, now: DateTime<Utc>) -> Result<bool, Error> {
        match self.refresh_tokens.get_mut(token_hash) {
            Some((_, spent @ None)) => {
                *spent = Some(now);
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    fn discard_session_refresh_tokens(&mut self, session_id: i64) -> Result<(), Error> {
        self.refresh_tokens
            .retain(|_, (session, spent)| *session != session_id || spent.is_some());
        Ok(())
    }

    fn renew_session(
        &mut self,
        session_id: i64,
        refresh_hash: &str,
        now: DateTime<Utc>,
        idle_expires_at: DateTime<Utc>,
    ) -> Result<bool, Error> {
        if self.refresh_tokens.contains_key(refresh_hash) {
            return Err(Error::Conflict);
        }
        let Some(session) = self
            .sessions
            .get_mut(&session_id)
            .filter(|s| s.revoked_at.is_none())
        else {
            return Ok(false);
        };
        session.last_used_at = now;
        session.idle_expires_at = idle_expires_at;
        self.refresh_tokens
            .insert(refresh_hash.to_owned(), (session_id, None));
        Ok(true)
    }

    fn revoke_session(
        &mut self,
        id: i64,
        user: Option<UserId>,
        at: DateTime<Utc>,
    ) -> Result<bool, Error> {
        match self.sessions.get_mut(&id) {
            Some(session)
                if session.revoked_at.is_none() && user.is_none_or(|u| u == session.user_id) =>
            {
                session.revoked_at = Some(at);
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    fn revoke_sessions(
        &mut self,
        user: UserId,
        except: Option<i64>,
        at: DateTime<Utc>,
    ) -> Result<u64, Error> {
        let mut ended = 0;
        for session in self.sessions.values_mut() {
            if session.user_id == user && session.revoked_at.is_none() && Some(session.id) != except
            {
                session.revoked_at = Some(at);
                ended += 1;
            }
        }
        Ok(ended)
    }

    fn list_sessions(
        &mut self,
        user: UserId,
        now: DateTime<Utc>,
        query: &SessionQuery,
    ) -> Result<Page<StoredSession>, Error> {
        let mut page = Page::default();
        hand_over(
            || {
                self.sessions
                    .values()
                    .rev()
                    .filter(move |s| s.user_id == user && s.is_live(now))
            },
            query.limit,
            query.offset,
            &mut page,
        )?;
        Ok(page)
    }

    fn prune_sessions(&mut self, now: DateTime<Utc>) -> Result<u64, Error> {
        let before = self.sessions.len();
        self.sessions.retain(|_, s| s.is_live(now));
        let sessions = &self.sessions;
        self.refresh_tokens
            .retain(|_, (session, _)| sessions.contains_key(session));
        Ok((before - self.sessions.len()) as u64)
    }

    fn device_owner(&mut self, token_hash: &str) -> Result<Option<UserId>, Error> {
        Ok(self.devices.get(token_hash).map(|(user, _)| *user))
    }

    fn save_device(
        &mut self,
        token_hash: &str,
        user: UserId,
        now: DateTime<Utc>,
    ) -> Result<(), Error> {
        if !self.users.contains_key(&user.get()) {
            return Err(Error::UserNotFound);
        }
        self.devices
            .entry(token_hash.to_owned())
            .and_modify(|(_, used)| *used = now)
            .or_insert((user, now));
        Ok(())
    }

    fn latest_audit(
        &mut self,
        action: AuditAction,
        target: Option<UserId>,
        address: Option<&str>,
        since: DateTime<Utc>,
    ) -> Result<Option<(i64, Option<String>)>, Error> {
        Ok(self
            .audit
            .iter()
            .rev()
            .find(|e| {
                e.entry.action == action
                    && e.entry.target_id == target
                    && e.entry.address.as_deref() == address
                    && e.entry.at >= since
            })
            .map(|e| (e.id, e.entry.detail.clone())))
    }

    fn set_audit_detail(&mut self, id: i64, detail: &str) -> Result<(), Error> {
        if let Some(entry) = self.audit.iter_mut().find(|e| e.id == id) {
            entry.entry.detail = Some(detail.to_owned());
        }
        Ok(())
    }

    fn prune_audit(&mut self, before: DateTime<Utc>, at_most: u64) -> Result<u64, Error> {
        let mut doomed: Vec<i64> = self
            .audit
            .iter()
            .filter(|e| e.entry.at < before)
            .map(|e| e.id)
            .collect();
        doomed.sort_unstable();
        doomed.truncate(usize::try_from(at_most).unwrap_or(usize::MAX));
        self.audit.retain(|e| doomed.binary_search(&e.id).is_err());
        Ok(doomed.len() as u64)
    }

    fn insert_invitation(&mut self, new: &NewInvitation) -> Result<Invitation, Error> {
        if self
            .invitations
            .values()
            .any(|(hash, _)| *hash == new.code_hash)
        {
            return Err(Error::Conflict);
        }
        self.last_invitation_id += 1;
        let invitation = Invitation {
            id: self.last_invitation_id,
            email: new.email.clone(),
            is_admin: new.is_admin,
            note: new.note.clone(),
            created_at: new.created_at,
            created_by: new.created_by,
            expires_at: new.expires_at,
            max_uses: new.max_uses,
            uses: 0,
            revoked_at: None,
        };
        self.invitations
            .insert(invitation.id, (new.code_hash.clone(), invitation.clone()));
        Ok(invitation)
    }

    fn find_invitation(&mut self, id: i64) -> Result<Option<Invitation>, Error> {
        Ok(self.invitations.get(&id).map(|(_, i)| i.clone()))
    }

    fn find_invitation_by_code(&mut self, code_hash: &str) -> Result<Option<Invitation>, Error> {
        Ok(self
            .invitations
            .values()
            .find(|(hash, _)| hash == code_hash)
            .map(|(_, i)| i.clone()))
    }

    fn list_invitations(
        &mut self,
        query: &InvitationQuery,
        now: DateTime<Utc>,
    ) -> Result<Page<Invitation>, Error> {
        let matching: Vec<Invitation> = self
            .invitations
            .values()
            .rev()
            .map(|(_, invitation)| invitation)
            .filter(|invitation| query.status.is_none_or(|s| invitation.status(now) == s))
            .cloned()
            .collect();
        let skip = usize::try_from(query.offset).unwrap_or(usize::MAX);
        let take = query
            .limit
            .map_or(usize::MAX, |l| usize::try_from(l).unwrap_or(usize::MAX));
        Ok(Page {
            total: matching.len() as u64,
            items: matching.into_iter().skip(skip).take(take).collect(),
        })
    }

    fn spend_invitation(
        &mut self,
        code_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<Invitation>, Error> {
        Ok(self
            .invitations
            .values_mut()
            .find(|(hash, i)| hash == code_hash && i.status(now) == InvitationStatus::Active)
            .map(|(_, invitation)| {
                invitation.uses += 1;
                invitation.clone()
            }))
    }

    fn revoke_invitation(
        &mut self,
        id: i64,
        at: DateTime<Utc>,
    ) -> Result<Option<Invitation>, Error> {
        Ok(self.invitations.get_mut(&id).map(|(_, invitation)| {
            invitation.revoked_at.get_or_insert(at);
            invitation.clone()
        }))
    }

    fn prune_devices(&mut self, unused_since: DateTime<Utc>) -> Result<u64, Error> {
        let count = self.devices.len();
        self.devices.retain(|_, (_, used)| *used >= unused_since);
        Ok((count - self.devices.len()) as u64)
    }

    fn counter(&mut self, scope: CounterScope, key: &str) -> Result<Option<Counter>, Error> {
        Ok(self.counters.get(&(scope, key.to_owned())).copied())
    }

    fn save_counter(
        &mut self,
        scope: CounterScope,
        key: &str,
        counter: &Counter,
    ) -> Result<(), Error> {
        self.counters.insert((scope, key.to_owned()), *counter);
        Ok(())
    }

    fn delete_counter(&mut self, scope: CounterScope, key: &str) -> Result<(), Error> {
        self.counters.remove(&(scope, key.to_owned()));
        Ok(())
    }

    fn append_audit(&mut self, entry: &NewAuditEntry) -> Result<(), Error> {
        self.last_audit_id += 1;
        let id = self.last_audit_id;
        self.audit.push(AuditEntry {
            id,
            entry: entry.clone(),
        });
        Ok(())
    }

    fn each_audit_entry(
        &mut self,
        query: &AuditQuery,
        into: &mut dyn Listing<AuditEntry>,
    ) -> Result<(), Error> {
        let matching = || {
            self.audit
                .iter()
                .rev()
                .filter(|e| query.action.is_none_or(|a| e.entry.action == a))
                .filter(|e| query.actor_id.is_none_or(|a| e.entry.actor_id == Some(a)))
                .filter(|e| query.target_id.is_none_or(|t| e.entry.target_id == Some(t)))
        };
        hand_over(matching, query.limit, query.offset, into)
    }

    fn insert_webhook(&mut self, new: &NewWebhook) -> Result<Webhook, Error> {
        self.last_webhook_id += 1;
        let webhook = Webhook {
            id: self.last_webhook_id,
            url: new.url.as_str().to_owned(),
            events: new.events.clone(),
            description: new.description.clone(),
            active: true,
            created_at: new.created_at,
            secret: new.secret.clone(),
        };
        self.webhooks.insert(webhook.id, webhook.clone());
        Ok(webhook)
    }

    fn find_webhook(&mut self, id: i64) -> Result<Option<Webhook>, Error> {
        Ok(self.webhooks.get(&id).cloned())
    }

    fn list_webhooks(&mut self, query: &PageQuery) -> Result<Page<Webhook>, Error> {
        let mut page = Page::default();
        hand_over(
            || self.webhooks.values(),
            query.limit,
            query.offset,
            &mut page,
        )?;
        Ok(page)
    }

    fn save_webhook(&mut self, webhook: &Webhook) -> Result<bool, Error> {
        let Some(stored) = self.webhooks.get_mut(&webhook.id) else {
            return Ok(false);
        };
        *stored = Webhook {
            id: stored.id,
            created_at: stored.created_at,
            ..webhook.clone()
        };
        Ok(true)
    }

    fn delete_webhook(&mut self, id: i64) -> Result<bool, Error> {
        let existed = self.webhooks.remove(&id).is_some();
        let payloads = &mut self.payloads;
        self.deliveries.retain(|delivery, (d, _)| {
            let keep = d.webhook_id != id;
            if !keep {
                payloads.remove(delivery);
            }
            keep
        });
        Ok(existed)
    }

    fn append_event(&mut self, event: &NewEvent) -> Result<u64, Error> {
        let targets: Vec<i64> = match event.only_webhook {
            Some(id) => self
                .webhooks
                .contains_key(&id)
                .then_some(id)
                .into_iter()
                .collect(),
            None => self
                .webhooks
                .values()
                .filter(|w| w.active && w.events.matches(event.event_type))
                .map(|w| w.id)
                .collect(),
        };
        for webhook_id in &targets {
            self.last_delivery_id += 1;
            let delivery = Delivery {
                id: self.last_delivery_id,
                webhook_id: *webhook_id,
                event_id: event.id.clone(),
                event_type: event.event_type.as_str().to_owned(),
                status: DeliveryStatus::Pending,
                attempts: 0,
                last_attempt_at: None,
                last_status_code: None,
                last_error: None,
                next_attempt_at: Some(event.at),
                created_at: event.at,
            };
            self.payloads.insert(delivery.id, event.payload.clone());
            self.deliveries.insert(delivery.id, (delivery, None));
        }
        Ok(targets.len() as u64)
    }

    fn list_deliveries(
        &mut self,
        webhook: i64,
        query: &PageQuery,
    ) -> Result<Page<Delivery>, Error> {
        let mut page = Page::default();
        hand_over(
            || {
                self.deliveries
                    .values()
                    .rev()
                    .map(|(d, _)| d)
                    .filter(move |d| d.webhook_id == webhook)
            },
            query.limit,
            query.offset,
            &mut page,
        )?;
        Ok(page)
    }

    fn claim_deliveries(
        &mut self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u64,
    ) -> Result<Vec<DueDelivery>, Error> {
        self.fail_inactive_deliveries()?;
        let claimed = self.due(now, limit, &[]);
        for delivery in &claimed {
            if let Some((_, claimed_until)) = self.deliveries.get_mut(&delivery.id) {
                *claimed_until = Some(lease_until);
            }
        }
        Ok(claimed)
    }

    fn due_deliveries(
        &mut self,
        now: DateTime<Utc>,
        limit: u64,
        skip: &[i64],
    ) -> Result<crate::DueDeliveries, Error> {
        Ok(crate::DueDeliveries {
            due: self.due(now, limit, skip),
            inactive_endpoints: self.webhooks.values().any(|w| !w.active),
        })
    }

    fn fail_inactive_deliveries(&mut self) -> Result<u64, Error> {
        let webhooks = &self.webhooks;
        let active = |id: i64| webhooks.get(&id).is_some_and(|w| w.active);
        let mut failed = 0;
        for (delivery, claimed_until) in self.deliveries.values_mut() {
            if delivery.status == DeliveryStatus::Pending && !active(delivery.webhook_id) {
                delivery.status = DeliveryStatus::Failed;
                delivery.next_attempt_at = None;
                delivery.last_error = Some(DISABLED.to_owned());
                *claimed_until = None;
                failed += 1;
            }
        }
        Ok(failed)
    }

    fn record_attempt(&mut self, id: i64, attempt: &Attempt) -> Result<bool, Error> {
        let Some((delivery, claimed_until)) = self.deliveries.get_mut(&id) else {
            return Ok(false);
        };
        delivery.attempts += 1;
        delivery.last_attempt_at = Some(attempt.at);
        delivery.last_status_code = attempt.status_code;
        delivery.last_error = attempt.error.clone();
        *claimed_until = None;
        (delivery.status, delivery.next_attempt_at) = match attempt.next {
            AttemptNext::Delivered => (DeliveryStatus::Delivered, None),
            AttemptNext::RetryAt(at) => (DeliveryStatus::Pending, Some(at)),
            AttemptNext::Failed | AttemptNext::Gone => (DeliveryStatus::Failed, None),
        };
        if attempt.next == AttemptNext::Gone {
            if let Some(webhook) = self.webhooks.get_mut(&delivery.webhook_id) {
                webhook.active = false;
            }
        }
        Ok(true)
    }

    fn outbox_backlog(
        &mut self,
        now: DateTime<Utc>,
    ) -> Result<(u64, Option<DateTime<Utc>>), Error> {
        let pending = || {
            self.deliveries
                .values()
                .map(|(d, _)| d)
                .filter(|d| d.status == DeliveryStatus::Pending)
        };
        let oldest_due = pending()
            .filter_map(|d| d.next_attempt_at)
            .filter(|at| *at <= now)
            .min();
        Ok((pending().count() as u64, oldest_due))
    }

    fn prune_deliveries(&mut self, before: DateTime<Utc>) -> Result<u64, Error> {
        let doomed: Vec<i64> = self
            .deliveries
            .values()
            .map(|(d, _)| d)
            .filter(|d| d.status != DeliveryStatus::Pending && d.created_at < before)
            .map(|d| d.id)
            .collect();
        for id in &doomed {
            self.deliveries.remove(id);
            self.payloads.remove(id);
        }
        Ok(doomed.len() as u64)
    }

    fn append_mail(&mut self, mail: &NewMail) -> Result<(), Error> {
        self.last_mail_id += 1;
        let id = self.last_mail_id;
        self.mails.insert(
            id,
            StoredMail {
                mail: DueMail {
                    id,
                    kind: mail.kind,
                    to: mail.to.clone(),
                    subject: mail.subject.clone(),
                    body: mail.body.clone(),
                    attempts: 0,
                },
                status: MailStatus::Pending,
                next_attempt_at: Some(mail.at),
                claimed_until: None,
                last_attempt: None,
                sent_at: None,
            },
        );
        Ok(())
    }

    fn claim_mails(
        &mut self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u64,
    ) -> Result<Vec<DueMail>, Error> {
        let mut due: Vec<(DateTime<Utc>, i64)> = self
            .mails
            .values()
            .filter(|m| {
                m.status == MailStatus::Pending && m.claimed_until.is_none_or(|until| until < now)
            })
            .filter_map(|m| {
                m.next_attempt_at
                    .filter(|at| *at <= now)
                    .map(|at| (at, m.mail.id))
            })
            .collect();
        due.sort_unstable();
        due.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
        let mut claimed = Vec::with_capacity(due.len());
        for (_, id) in due {
            if let Some(stored) = self.mails.get_mut(&id) {
                stored.claimed_until = Some(lease_until);
                claimed.push(stored.mail.clone());
            }
        }
        Ok(claimed)
    }

    fn record_mail_attempt(&mut self, id: i64, attempt: &Attempt) -> Result<bool, Error> {
        let Some(stored) = self.mails.get_mut(&id) else {
            return Ok(false);
        };
        stored.mail.attempts += 1;
        stored.last_attempt = Some(attempt.clone());
        stored.claimed_until = None;
        (stored.status, stored.next_attempt_at, stored.sent_at) = match attempt.next {
            AttemptNext::Delivered => (MailStatus::Sent, None, Some(attempt.at)),
            AttemptNext::RetryAt(at) => (MailStatus::Pending, Some(at), None),
            AttemptNext::Failed | AttemptNext::Gone => (MailStatus::Failed, None, None),
        };
        if stored.status != MailStatus::Pending {
            stored.mail.body.clear();
        }
        Ok(true)
    }

    fn mail_backlog(&mut self) -> Result<u64, Error> {
        Ok(self
            .mails
            .values()
            .filter(|m| m.status == MailStatus::Pending)
            .count() as u64)
    }

    fn setting(&mut self, name: &str) -> Result<Option<String>, Error> {
        Ok(self.settings.get(name).cloned())
    }

    fn put_setting(&mut self, name: &str, value: &str) -> Result<(), Error> {
        self.settings.insert(name.to_owned(), value.to_owned());
        Ok(())
    }

    fn insert_code(&mut self, code: &crate::NewCode) -> Result<(), Error> {
        self.codes.push((code.clone(), 0, None));
        Ok(())
    }

    fn count_codes_since(
        &mut self,
        user: UserId,
        purpose: crate::CodePurpose,
        since: DateTime<Utc>,
    ) -> Result<u64, Error> {
        Ok(self
            .codes
            .iter()
            .filter(|(c, _, _)| c.user_id == user && c.purpose == purpose && c.created_at >= since)
            .count() as u64)
    }

    fn spend_code(
        &mut self,
        user: UserId,
        purpose: crate::CodePurpose,
        code_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, Error> {
        let live = |(c, tries, spent): &(crate::NewCode, i64, Option<DateTime<Utc>>)| {
            c.user_id == user
                && c.purpose == purpose
                && spent.is_none()
                && *tries < crate::MAX_WRONG_TRIES
                && c.expires_at > now
        };
        let matched = self
            .codes
            .iter()
            .any(|entry| live(entry) && entry.0.code_hash == code_hash);
        for entry in &mut self.codes {
            if live(entry) {
                if matched {
                    entry.2 = Some(now);
                } else {
                    entry.1 += 1;
                }
            }
        }
        Ok(matched)
    }

    fn totp(&mut self, user: UserId) -> Result<Option<crate::StoredTotp>, Error> {
        Ok(self.totp.get(&user.get()).cloned())
    }

    fn put_totp(&mut self, totp: &crate::StoredTotp) -> Result<(), Error> {
        self.totp.insert(totp.user_id.get(), totp.clone());
        Ok(())
    }

    fn confirm_totp(&mut self, user: UserId, step: i64, at: DateTime<Utc>) -> Result<bool, Error> {
        match self.totp.get_mut(&user.get()) {
            Some(totp) if totp.confirmed_at.is_none() => {
                totp.confirmed_at = Some(at);
                totp.last_step = Some(step);
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    fn use_totp_step(&mut self, user: UserId, step: i64) -> Result<bool, Error> {
        match self.totp.get_mut(&user.get()) {
            Some(totp)
                if totp.confirmed_at.is_some() && totp.last_step.is_none_or(|last| last < step) =>
            {
                totp.last_step = Some(step);
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    fn delete_totp(&mut self, user: UserId) -> Result<bool, Error> {
        self.recovery_codes.retain(|(owner, _, _)| *owner != user);
        Ok(self.totp.remove(&user.get()).is_some())
    }

    fn replace_recovery_codes(
        &mut self,
        user: UserId,
        hashes: &[String],
        _at: DateTime<Utc>,
    ) -> Result<(), Error> {
        self.recovery_codes.retain(|(owner, _, _)| *owner != user);
        self.recovery_codes
            .extend(hashes.iter().map(|hash| (user, hash.clone(), None)));
        Ok(())
    }

    fn spend_recovery_code(
        &mut self,
        user: UserId,
        hash: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, Error> {
        for (owner, stored, spent) in &mut self.recovery_codes {
            if *owner == user && stored == hash && spent.is_none() {
                *spent = Some(now);
                return Ok(true);
            }
        }
        Ok(false)
    }

    fn count_recovery_codes(&mut self, user: UserId) -> Result<u64, Error> {
        Ok(self
            .recovery_codes
            .iter()
            .filter(|(owner, _, spent)| *owner == user && spent.is_none())
            .count() as u64)
    }

    fn insert_challenge(&mut self, challenge: &crate::NewChallenge) -> Result<(), Error> {
        if self
            .challenges
            .values()
            .any(|(hash, _)| *hash == challenge.token_hash)
        {
            return Err(Error::Conflict);
        }
        self.last_challenge_id += 1;
        let id = self.last_challenge_id;
        self.challenges.insert(
            id,
            (
                challenge.token_hash.clone(),
                crate::Challenge {
                    id,
                    purpose: challenge.purpose,
                    user_id: challenge.user_id,
                    state: challenge.state.clone(),
                    wrong_tries: 0,
                    expires_at: challenge.expires_at,
                },
            ),
        );
        Ok(())
    }

    fn find_challenge(
        &mut self,
        token_hash: &str,
        purpose: crate::ChallengePurpose,
        now: DateTime<Utc>,
    ) -> Result<Option<crate::Challenge>, Error> {
        Ok(self
            .challenges
            .values()
            .find(|(hash, c)| {
                hash == token_hash
                    && c.purpose == purpose
                    && c.expires_at > now
                    && c.wrong_tries < crate::MAX_MFA_WRONG_CODES
            })
            .map(|(_, c)| c.clone()))
    }

    fn challenge_wrong_try(&mut self, id: i64) -> Result<(), Error> {
        if let Some((_, challenge)) = self.challenges.get_mut(&id) {
            challenge.wrong_tries += 1;
        }
        Ok(())
    }

    fn spend_challenge(&mut self, id: i64, now: DateTime<Utc>) -> Result<bool, Error> {
        let live = self
            .challenges
            .get(&id)
            .is_some_and(|(_, c)| c.expires_at > now && c.wrong_tries < crate::MAX_MFA_WRONG_CODES);
        if live {
            self.challenges.remove(&id);
        }
        Ok(live)
    }

    fn find_user_challenge(
        &mut self,
        user: UserId,
        purpose: crate::ChallengePurpose,
        now: DateTime<Utc>,
    ) -> Result<Option<crate::Challenge>, Error> {
        Ok(self
            .challenges
            .values()
            .rev()
            .find(|(_, c)| {
                c.user_id == Some(user)
                    && c.purpose == purpose
                    && c.expires_at > now
                    && c.wrong_tries < crate::MAX_MFA_WRONG_CODES
            })
            .map(|(_, c)| c.clone()))
    }

    fn delete_user_challenges(
        &mut self,
        user: UserId,
        purpose: crate::ChallengePurpose,
    ) -> Result<u64, Error> {
        let before = self.challenges.len();
        self.challenges
            .retain(|_, (_, c)| !(c.user_id == Some(user) && c.purpose == purpose));
        Ok((before - self.challenges.len()) as u64)
    }

    fn insert_passkey(
        &mut self,
        passkey: &crate::NewPasskey,
    ) -> Result<crate::StoredPasskey, Error> {
        if self
            .passkeys
            .values()
            .any(|p| p.credential_id == passkey.credential_id)
        {
            return Err(Error::Conflict);
        }
        if !self.users.contains_key(&passkey.user_id.get()) {
            return Err(Error::internal("insert_passkey", "no such user"));
        }
        self.last_passkey_id += 1;
        let stored = crate::StoredPasskey {
            id: self.last_passkey_id,
            user_id: passkey.user_id,
            credential_id: passkey.credential_id.clone(),
            name: passkey.name.clone(),
            data: passkey.data.clone(),
            created_at: passkey.created_at,
            last_used_at: None,
        };
        self.passkeys.insert(stored.id, stored.clone());
        Ok(stored)
    }

    fn list_passkeys(&mut self, user: UserId) -> Result<Vec<crate::StoredPasskey>, Error> {
        let mut passkeys: Vec<crate::StoredPasskey> = self
            .passkeys
            .values()
            .filter(|p| p.user_id == user)
            .cloned()
            .collect();
        passkeys.sort_by_key(|p| std::cmp::Reverse((p.created_at, p.id)));
        Ok(passkeys)
    }

    fn find_passkey_by_credential(
        &mut self,
        credential_id: &str,
    ) -> Result<Option<crate::StoredPasskey>, Error> {
        Ok(self
            .passkeys
            .values()
            .find(|p| p.credential_id == credential_id)
            .cloned())
    }

    fn record_passkey_use(
        &mut self,
        id: i64,
        data: &str,
        at: DateTime<Utc>,
    ) -> Result<bool, Error> {
        Ok(match self.passkeys.get_mut(&id) {
            Some(passkey) => {
                passkey.data = data.to_owned();
                passkey.last_used_at = Some(at);
                true
            }
            None => false,
        })
    }

    fn delete_passkey(&mut self, user: UserId, id: i64) -> Result<bool, Error> {
        let owned = self.passkeys.get(&id).is_some_and(|p| p.user_id == user);
        if owned {
            self.passkeys.remove(&id);
        }
        Ok(owned)
    }

    fn count_passkeys(&mut self, user: UserId) -> Result<u64, Error> {
        Ok(self.passkeys.values().filter(|p| p.user_id == user).count() as u64)
    }

    fn count_all_passkeys(&mut self) -> Result<u64, Error> {
        Ok(self.passkeys.len() as u64)
    }

    fn delete_mfa(&mut self, user: UserId) -> Result<(), Error> {
        self.delete_totp(user)?;
        self.passkeys.retain(|_, p| p.user_id != user);
        self.challenges
            .retain(|_, (_, challenge)| challenge.user_id != Some(user));
        Ok(())
    }

    fn prune(&mut self, now: DateTime<Utc>, idle_before: DateTime<Utc>) -> Result<u64, Error> {
        let before = self.counters.len();
        self.counters
            .retain(|_, c| c.since >= idle_before || c.locked_until.is_some_and(|l| l > now));
        Ok((before - self.counters.len()) as u64)
    }
}

/// Hands `into` how many items `matching` (newest first already) yields, then one page of
/// them, item by item as a store reading rows would.
fn hand_over<'a, T: Clone + 'a, I: Iterator<Item = &'a T>>(
    matching: impl Fn() -> I,
    limit: Option<u64>,
    offset: u64,
    into: &mut dyn Listing<T>,
) -> Result<(), Error> {
    into.total(matching().count() as u64)?;
    let offset = usize::try_from(offset).unwrap_or(usize::MAX);
    let limit = limit.map_or(usize::MAX, |l| usize::try_from(l).unwrap_or(usize::MAX));
    for item in matching().skip(offset).take(limit) {
        into.item(item.clone())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    crate::user_store_contract_tests!(Box::new(super::InMemoryStore::new()));
}
