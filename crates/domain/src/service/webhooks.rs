//! The webhook use cases (the notifications issue): endpoints for admins, and the
//! dispatcher's claims and attempts.

use chrono::{DateTime, Utc};

use super::{audit, authorize, Actor, Origin, UserService};
use crate::{
    Attempt, AuditAction, Claiming, Delivery, DueDelivery, Error, EventFilter, EventType, NewEvent,
    NewWebhook, Page, PageQuery, UserQuery, UserStatus, UserStoreExt, Webhook, WebhookChanges,
    WebhookSecret, WebhookUrl,
};

/// What `POST /webhooks` asks for, checked.
#[derive(Debug, Clone)]
pub struct WebhookRequest {
    /// Where deliveries go.
    pub url: WebhookUrl,
    /// Which events.
    pub events: EventFilter,
    /// A note.
    pub description: Option<String>,
}

impl UserService {
    /// Adds a webhook endpoint, active, with a new secret (shown once: the caller returns
    /// it to the admin), and audits `webhook_created`.
    ///
    /// # Errors
    /// The actor's refusals; store failures.
    pub fn create_webhook(
        &self,
        actor: Actor,
        request: &WebhookRequest,
        origin: &Origin,
    ) -> Result<Webhook, Error> {
        let secret = WebhookSecret::generate()?;
        self.store.write_with(|repo| {
            let admin = authorize(repo, actor)?;
            let webhook = repo.insert_webhook(&NewWebhook {
                url: request.url.clone(),
                events: request.events.clone(),
                description: request.description.clone(),
                secret: secret.clone(),
                created_at: crate::now(),
            })?;
            repo.append_audit(&audit(
                AuditAction::WebhookCreated,
                admin,
                None,
                origin,
                Some(format!("webhook {}: {}", webhook.id, webhook.url)),
            ))?;
            Ok(webhook)
        })
    }

    /// Endpoints, oldest first.
    ///
    /// # Errors
    /// The actor's refusals; store failures.
    pub fn list_webhooks(&self, actor: Actor, query: &PageQuery) -> Result<Page<Webhook>, Error> {
        self.store.read_with(|repo| {
            authorize(repo, actor)?;
            repo.list_webhooks(query)
        })
    }

    /// Endpoint `id`.
    ///
    /// # Errors
    /// [`Error::WebhookNotFound`]; the actor's refusals; store failures.
    pub fn webhook(&self, actor: Actor, id: i64) -> Result<Webhook, Error> {
        self.store.read_with(|repo| {
            authorize(repo, actor)?;
            repo.find_webhook(id)?.ok_or(Error::WebhookNotFound)
        })
    }

    /// Changes endpoint `id` and audits `webhook_updated` (when anything changed).
    ///
    /// # Errors
    /// [`Error::WebhookNotFound`]; the actor's refusals; store failures.
    pub fn update_webhook(
        &self,
        actor: Actor,
        id: i64,
        changes: &WebhookChanges,
        origin: &Origin,
    ) -> Result<Webhook, Error> {
        self.store.write_with(|repo| {
            let admin = authorize(repo, actor)?;
            let before = repo.find_webhook(id)?.ok_or(Error::WebhookNotFound)?;
            let mut after = before.clone();
            if let Some(url) = &changes.url {
                after.url = url.as_str().to_owned();
            }
            if let Some(events) = &changes.events {
                after.events = events.clone();
            }
            if let Some(active) = changes.active {
                after.active = active;
            }
            if let Some(description) = &changes.description {
                after.description.clone_from(description);
            }
            if after == before {
                return Ok(before);
            }
            if !repo.save_webhook(&after)? {
                return Err(Error::WebhookNotFound);
            }
            repo.append_audit(&audit(
                AuditAction::WebhookUpdated,
                admin,
                None,
                origin,
                Some(format!(
                    "webhook {id}: {}",
                    describe_change(&before, &after).join(", ")
                )),
            ))?;
            Ok(after)
        })
    }

    /// Removes endpoint `id` with its deliveries, and audits `webhook_deleted`.
    ///
    /// # Errors
    /// [`Error::WebhookNotFound`]; the actor's refusals; store failures.
    pub fn delete_webhook(&self, actor: Actor, id: i64, origin: &Origin) -> Result<(), Error> {
        self.store.write_with(|repo| {
            let admin = authorize(repo, actor)?;
            let webhook = repo.find_webhook(id)?.ok_or(Error::WebhookNotFound)?;
            if !repo.delete_webhook(id)? {
                return Err(Error::WebhookNotFound);
            }
            repo.append_audit(&audit(
                AuditAction::WebhookDeleted,
                admin,
                None,
                origin,
                Some(format!("webhook {id}: {}", webhook.url)),
            ))
        })
    }

    /// Gives endpoint `id` a new secret (returned once) and audits
    /// `webhook_secret_rotated`. Deliveries not yet made are signed with the new one.
    ///
    /// # Errors
    /// [`Error::WebhookNotFound`]; the actor's refusals; store failures.
    pub fn rotate_webhook_secret(
        &self,
        actor: Actor,
        id: i64,
        origin: &Origin,
    ) -> Result<Webhook, Error> {
        let secret = WebhookSecret::generate()?;
        self.store.write_with(|repo| {
            let admin = authorize(repo, actor)?;
            let mut webhook = repo.find_webhook(id)?.ok_or(Error::WebhookNotFound)?;
            webhook.secret = secret.clone();
            if !repo.save_webhook(&webhook)? {
                return Err(Error::WebhookNotFound);
            }
            repo.append_audit(&audit(
                AuditAction::WebhookSecretRotated,
                admin,
                None,
                origin,
                Some(format!("webhook {id}")),
            ))?;
            Ok(webhook)
        })
    }

    /// Queues a `webhook.test` event for endpoint `id` alone (active or not), about the
    /// acting admin (the operator, who has no account: about the newest active admin).
    /// Returns the event's id.
    ///
    /// # Errors
    /// [`Error::WebhookNotFound`]; the actor's refusals; store failures.
    pub fn test_webhook(&self, actor: Actor, id: i64) -> Result<String, Error> {
        self.write_raising(|repo| {
            let admin = authorize(repo, actor)?;
            repo.find_webhook(id)?.ok_or(Error::WebhookNotFound)?;
            let subject = match admin {
                Some(admin) => repo.find_by_id(admin)?,
                None => repo
                    .list(&UserQuery {
                        status: Some(UserStatus::Approved),
                        is_admin: Some(true),
                        limit: Some(1),
                        ..UserQuery::default()
                    })?
                    .items
                    .pop(),
            };
            let subject = subject.ok_or(Error::UserNotFound)?;
            let mut event = NewEvent::about(EventType::WebhookTest, &subject, admin, crate::now())?;
            event.only_webhook = Some(id);
            if repo.append_event(&event)? > 0 {
                super::RAISED.with(|raised| raised.set(true));
            }
            Ok(event.id)
        })
    }

    /// The deliveries log of endpoint `id`, newest first.
    ///
    /// # Errors
    /// [`Error::WebhookNotFound`]; the actor's refusals; store failures.
    pub fn webhook_deliveries(
        &self,
        actor: Actor,
        id: i64,
        query: &PageQuery,
    ) -> Result<Page<Delivery>, Error> {
        self.store.read_with(|repo| {
            authorize(repo, actor)?;
            repo.find_webhook(id)?.ok_or(Error::WebhookNotFound)?;
            repo.list_deliveries(id, query)
        })
    }

    /// The dispatcher's claim: up to `limit` due deliveries, reserved until `lease_until`
    /// (see `UserRepo::claim_deliveries`). A row-guarded write: the claim is a conditional
    /// update of the rows it takes.
    ///
    /// # Errors
    /// Store failures.
    pub fn claim_deliveries(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u64,
    ) -> Result<Vec<DueDelivery>, Error> {
        self.store
            .write_rows_with(|repo| repo.claim_deliveries(now, lease_until, limit))
    }

    /// The dispatcher's turn: records its finished attempts, then takes up to `limit` due
    /// deliveries and, with `mails` true, claims due mails for what is left of `limit`,
    /// each mail until `now` plus its lease. How deliveries are taken is `claiming`'s:
    ///
    /// - [`Claiming::Leased`]: all in one row-guarded write, each delivery claimed until
    ///   `now` plus `delivery_lease`.
    /// - [`Claiming::Sole`]: the due deliveries are read (no lease), then one row-guarded
    ///   write records the attempts, fails the pending deliveries of endpoints turned off
    ///   and claims the mails, when there is any of that to do.
    ///
    /// # Errors
    /// Store failures (then nothing is recorded, and nothing taken).
    #[allow(clippy::too_many_arguments)]
    pub fn dispatch_turn(
        &self,
        done_deliveries: &[(i64, Attempt)],
        done_mails: &[(i64, Attempt)],
        now: DateTime<Utc>,
        delivery_lease: chrono::Duration,
        mail_lease: chrono::Duration,
        limit: u64,
        mails: bool,
        claiming: Claiming<'_>,
    ) -> Result<(Vec<DueDelivery>, Vec<crate::DueMail>), Error> {
        let record = |repo: &mut dyn crate::UserRepo| -> Result<(), Error> {
            repo.record_attempts(done_deliveries)?;
            for (id, attempt) in done_mails {
                repo.record_mail_attempt(*id, attempt)?;
            }
            Ok(())
        };
        let in_flight = match claiming {
            Claiming::Leased => {
                return self.store.write_rows_with(|repo| {
                    record(repo)?;
                    let deliveries = if limit > 0 {
                        repo.claim_deliveries(now, now + delivery_lease, limit)?
                    } else {
                        Vec::new()
                    };
                    let left = limit.saturating_sub(deliveries.len() as u64);
                    let due_mails = if mails && left > 0 {
                        repo.claim_mails(now, now + mail_lease, left)?
                    } else {
                        Vec::new()
                    };
                    Ok((deliveries, due_mails))
                })
            }
            Claiming::Sole { in_flight } => in_flight,
        };
        let read = if limit > 0 {
            self.store
                .read_with(|repo| repo.due_deliveries(now, limit, in_flight))?
        } else {
            crate::DueDeliveries::default()
        };
        let left = limit.saturating_sub(read.due.len() as u64);
        let claim_mails = mails && left > 0;
        if done_deliveries.is_empty()
            && done_mails.is_empty()
            && !claim_mails
            && !read.inactive_endpoints
        {
            return Ok((read.due, Vec::new()));
        }
        let due_mails = self.store.write_rows_with(|repo| {
            record(repo)?;
            if read.inactive_endpoints {
                repo.fail_inactive_deliveries()?;
            }
            if claim_mails {
                repo.claim_mails(now, now + mail_lease, left)
            } else {
                Ok(Vec::new())
            }
        })?;
        Ok((read.due, due_mails))
    }

    /// How many deliveries are pending, and since when the oldest due one has waited.
    ///
    /// # Errors
    /// Store failures.
    pub fn outbox_backlog(&self) -> Result<(u64, Option<DateTime<Utc>>), Error> {
        self.store
            .read_with(|repo| repo.outbox_backlog(crate::now()))
    }
}

/// What changed between two states of an endpoint, for the audit log (never the secret).
fn describe_change(before: &Webhook, after: &Webhook) -> Vec<String> {
    let mut changed = Vec::new();
    if before.url != after.url {
        changed.push(format!("url {}", after.url));
    }
    if before.events != after.events {
        changed.push(format!("events {}", after.events.names().join(" ")));
    }
    if before.active != after.active {
        changed.push(
            if after.active {
                "activated"
            } else {
                "deactivated"
            }
            .to_owned(),
        );
    }
    if before.description != after.description {
        changed.push("description".to_owned());
    }
    changed
}
