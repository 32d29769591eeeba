//! Webhook endpoints and their deliveries log (API.md, "Notifications: webhooks and
//! mail"): the admin's operations on the endpoints events are sent to. Their request and
//! response shapes live here beside them. The deliveries themselves are made by the
//! binary's dispatcher, not by a request.

use actix_web::{web, HttpRequest, HttpResponse};
use gatehouse_domain::{
    Actor, Delivery, EventFilter, Host, PageQuery, UserId, Webhook, WebhookChanges, WebhookRequest,
    WebhookUrl,
};
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::error::ApiError;
use crate::extract::{AdminUser, StrictJson, StrictQuery};
use crate::handlers::{number, origin, Problems};
use crate::rfc3339::Rfc3339;
use crate::schemas::{
    AdminErrors, BodyErrors, Count, DeliveryStatusName, FreeTextInput, InvalidWebhookUrl,
    Timestamp, UserIdSchema, ValidationFailed, WebhookEventName, WebhookEvents, WebhookIdErrors,
    WebhookSecretText, WebhookUrlInput,
};
use crate::AppState;

type Result<T> = std::result::Result<T, ApiError>;

/// `POST /webhooks`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateWebhookRequest {
    /// Where deliveries go.
    #[schema(value_type = WebhookUrlInput)]
    pub url: String,
    /// The event types it is sent, or `["*"]` for every one.
    #[schema(value_type = WebhookEvents)]
    pub events: Vec<String>,
    /// A note for the admins (whose receiver it is, what for).
    #[serde(default)]
    #[schema(value_type = Option<FreeTextInput>)]
    pub description: Option<String>,
}

/// `PUT /webhooks/{id}`: every field optional; an absent one (or `null`, but for
/// `description`) is left as it is.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct UpdateWebhookRequest {
    /// A new address, checked as at creation. Absent or `null`: unchanged.
    #[serde(default)]
    #[schema(value_type = Option<WebhookUrlInput>)]
    pub url: Option<String>,
    /// A new subscription. Absent or `null`: unchanged.
    #[serde(default)]
    #[schema(value_type = Option<WebhookEvents>)]
    pub events: Option<Vec<String>>,
    /// Turns deliveries on or off. Absent or `null`: unchanged.
    #[serde(default)]
    pub active: Option<bool>,
    /// A new note. Absent: unchanged; `null` (or blank): cleared.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<FreeTextInput>)]
    pub description: Option<Option<String>>,
}

/// A field that may be absent (`None`, with `#[serde(default)]`) or present and `null`
/// (`Some(None)`).
fn present<'de, D, T>(deserializer: D) -> std::result::Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(deserializer).map(Some)
}

/// A webhook endpoint as admins see it (never its secret).
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Webhook)]
pub struct WebhookPublic {
    #[schema(minimum = 1)]
    id: i64,
    /// Where deliveries go (normalised: `HTTP://Example.COM` reads `http://example.com/`).
    url: String,
    /// The event types it is sent; `["*"]`: every one, including types added later.
    #[schema(value_type = Vec<WebhookEventName>)]
    events: Vec<&'static str>,
    /// The admins' note, or `null`.
    #[schema(value_type = Option<String>)]
    description: Option<String>,
    /// Whether deliveries are made: an admin turns it off, and so does a `410 Gone` from
    /// the receiver.
    active: bool,
    #[schema(value_type = Timestamp)]
    created_at: Rfc3339,
}

impl WebhookPublic {
    /// `webhook` as the API shows it.
    #[must_use]
    pub fn new(webhook: &Webhook) -> Self {
        Self {
            id: webhook.id,
            url: webhook.url.clone(),
            events: webhook.events.names(),
            description: webhook.description.clone(),
            active: webhook.active,
            created_at: Rfc3339::new(webhook.created_at),
        }
    }
}

/// An endpoint with its signing secret: the answer to a creation and to a rotation, the
/// only two that show the secret.
#[derive(Serialize, ToSchema)]
pub struct WebhookWithSecret {
    #[serde(flatten)]
    webhook: WebhookPublic,
    /// The signing secret: shown only in this response. `whsec_` and the base64 of 32
    /// random bytes; the HMAC key is the base64-decoded part after `whsec_`.
    #[schema(value_type = WebhookSecretText)]
    secret: String,
}

impl std::fmt::Debug for WebhookWithSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookWithSecret")
            .field("webhook", &self.webhook)
            .field("secret", &"***")
            .finish()
    }
}

impl WebhookWithSecret {
    /// `webhook` with its secret.
    #[must_use]
    pub fn new(webhook: &Webhook) -> Self {
        Self {
            webhook: WebhookPublic::new(webhook),
            secret: webhook.secret.expose().to_owned(),
        }
    }
}

/// The answer to `POST /webhooks/{id}/test`.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = WebhookTestQueued)]
pub(crate) struct TestQueued {
    /// The queued event's id: its deliveries' `webhook-id` header and `event_id` in the
    /// deliveries log.
    #[schema(example = "msg_0123456789abcdef0123456789abcdef")]
    event_id: String,
}

/// One event's delivery to an endpoint, as the deliveries log shows it.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = WebhookDelivery)]
pub struct DeliveryPublic {
    #[schema(minimum = 1)]
    id: i64,
    /// The event's id: the `webhook-id` header of every attempt.
    event_id: String,
    /// The event's type (`user.approved`, `webhook.test`, …).
    event_type: String,
    /// `pending` (not delivered yet: tried again at `next_attempt_at`), `delivered` (a
    /// 2xx answer came) or `failed` (every attempt failed, or the endpoint answered 410 or
    /// was turned off).
    #[schema(value_type = DeliveryStatusName)]
    status: &'static str,
    /// Attempts made so far.
    #[schema(minimum = 0)]
    attempts: u32,
    /// When the last attempt was made; `null` before the first.
    #[schema(value_type = Option<Timestamp>)]
    last_attempt_at: Option<Rfc3339>,
    /// The last attempt's HTTP status; `null` before the first or when no answer came.
    #[schema(value_type = Option<u16>)]
    last_status_code: Option<u16>,
    /// Why the last attempt failed; `null` when it did not or before the first.
    #[schema(value_type = Option<String>)]
    last_error: Option<String>,
    /// When the next attempt is due; `null` once delivered or failed.
    #[schema(value_type = Option<Timestamp>)]
    next_attempt_at: Option<Rfc3339>,
    /// When the event was written.
    #[schema(value_type = Timestamp)]
    created_at: Rfc3339,
}

impl DeliveryPublic {
    /// `delivery` as the API shows it.
    #[must_use]
    pub fn new(delivery: &Delivery) -> Self {
        Self {
            id: delivery.id,
            event_id: delivery.event_id.clone(),
            event_type: delivery.event_type.clone(),
            status: delivery.status.as_str(),
            attempts: delivery.attempts,
            last_attempt_at: delivery.last_attempt_at.map(Rfc3339::new),
            last_status_code: delivery.last_status_code,
            last_error: delivery.last_error.clone(),
            next_attempt_at: delivery.next_attempt_at.map(Rfc3339::new),
            created_at: Rfc3339::new(delivery.created_at),
        }
    }
}

/// Query parameters of the webhook listings, as text.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct ListWebhooksParams {
    /// At most this many (0: an empty page); without it, every one.
    #[param(value_type = Option<Count>)]
    pub limit: Option<String>,
    /// Skip this many first (default 0).
    #[param(value_type = Option<Count>)]
    pub offset: Option<String>,
}

fn page_query(params: ListWebhooksParams) -> Result<PageQuery> {
    let mut problems = Problems::default();
    let limit = number(&mut problems, "limit", params.limit);
    let offset = number(&mut problems, "offset", params.offset);
    problems.finish()?;
    Ok(PageQuery {
        limit,
        offset: offset.unwrap_or(0),
    })
}

fn webhook_id(raw: &str) -> Result<i64> {
    raw.parse::<UserId>()
        .map(UserId::get)
        .map_err(|_| ApiError::invalid("id", "Webhook id must be a positive 64-bit integer"))
}

/// A subscription, or its problem reported on `events`.
fn events(problems: &mut Problems, names: &[String]) -> Option<EventFilter> {
    problems.check("events", EventFilter::parse(names))
}

/// `raw` as a webhook address: 422 `invalid_url` saying why not. Unless private addresses
/// are allowed, a host name that resolves must resolve only to public addresses (one that
/// does not resolve yet is accepted; every delivery checks again): the lookup runs on the
/// blocking pool (without a database slot), never on the async worker.
async fn checked_url(state: &AppState, raw: String) -> Result<WebhookUrl> {
    let allow_private = state.allow_private_webhooks;
    let invalid = |message: String| ApiError::from(gatehouse_domain::Error::InvalidUrl(message));
    // Everything but the lookup is quick: a literal address or a refused form needs none.
    let url = WebhookUrl::parse(&raw, allow_private).map_err(invalid)?;
    if allow_private || !matches!(url.host(), Host::Name(_)) {
        return Ok(url);
    }
    let span = tracing::Span::current();
    web::block(move || span.in_scope(|| WebhookUrl::parse_and_resolve(&raw, false)))
        .await
        .map_err(|e| ApiError::internal(&e))?
        .map_err(invalid)
}

fn listed<T: Serialize>(items: Vec<T>, total: u64) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header(("X-Total-Count", total))
        .json(items)
}

#[utoipa::path(
    post,
    path = "/api/auth/webhooks",
    tag = "webhooks",
    summary = "Add a webhook endpoint",
    description = "The endpoint starts active, with a new signing secret shown only in \
        this response. `url` must be `http` or `https` without credentials; an address in \
        a loopback, private, link-local or otherwise non-public range (a host name is \
        resolved, and every address it resolves to must be public) is 422 `invalid_url` \
        unless the server runs with `GATEHOUSE_WEBHOOK_ALLOW_PRIVATE=true`. `events` is \
        `[\"*\"]` or one or more event types (422 `validation_error` on `events` \
        otherwise). Audited as `webhook_created`.",
    security(("bearer" = [])),
    request_body(content = CreateWebhookRequest, content_type = "application/json"),
    responses(
        (status = 201, description = "The endpoint and its secret", body = WebhookWithSecret,
            links(
                ("GetWebhook" = (operation_id = "get_webhook",
                    parameters(("id" = "$response.body#/id")))),
                ("UpdateWebhook" = (operation_id = "update_webhook",
                    parameters(("id" = "$response.body#/id")))),
                ("DeleteWebhook" = (operation_id = "delete_webhook",
                    parameters(("id" = "$response.body#/id")))),
                ("TestWebhook" = (operation_id = "test_webhook",
                    parameters(("id" = "$response.body#/id")))),
                ("WebhookDeliveries" = (operation_id = "webhook_deliveries",
                    parameters(("id" = "$response.body#/id")))),
            )),
        AdminErrors,
        BodyErrors,
        (status = 422, response = InvalidWebhookUrl),
    )
)]
pub(crate) async fn create_webhook(
    AdminUser(admin): AdminUser,
    state: web::Data<AppState>,
    req: HttpRequest,
    body: StrictJson<CreateWebhookRequest>,
) -> Result<HttpResponse> {
    let request = body.into_inner()?;
    let mut problems = Problems::default();
    let events = events(&mut problems, &request.events);
    let description = problems.free_text("description", request.description.as_deref());
    problems.finish()?;
    let Some(events) = events else {
        return Err(ApiError::invalid("events", "events are required"));
    };
    let url = checked_url(&state, request.url).await?;
    let asked = WebhookRequest {
        url,
        events,
        description: description.map(|d| d.as_str().to_owned()),
    };
    let (users, origin) = (state.users.clone(), origin(&state, &req));
    let webhook = state
        .blocking(move || users.create_webhook(Actor::User(admin.id), &asked, &origin))
        .await?;
    Ok(HttpResponse::Created().json(WebhookWithSecret::new(&webhook)))
}

#[utoipa::path(
    get,
    path = "/api/auth/webhooks",
    tag = "webhooks",
    summary = "List webhook endpoints, oldest first",
    description = "Never their secrets. Any other query parameter, or one given twice, is \
        422.",
    security(("bearer" = [])),
    params(ListWebhooksParams),
    responses(
        (status = 200, description = "A page of endpoints", body = Vec<WebhookPublic>,
            headers(("X-Total-Count" = u64,
                description = "How many endpoints there are, before paging"))),
        (status = 422, response = ValidationFailed),
        AdminErrors,
    )
)]
pub(crate) async fn list_webhooks(
    AdminUser(admin): AdminUser,
    state: web::Data<AppState>,
    query: StrictQuery<ListWebhooksParams>,
) -> Result<HttpResponse> {
    let query = page_query(query.into_inner()?)?;
    let users = state.users.clone();
    let page = state
        .blocking(move || users.list_webhooks(Actor::User(admin.id), &query))
        .await?;
    let body: Vec<WebhookPublic> = page.items.iter().map(WebhookPublic::new).collect();
    Ok(listed(body, page.total))
}

#[utoipa::path(
    get,
    path = "/api/auth/webhooks/{id}",
    tag = "webhooks",
    summary = "One webhook endpoint",
    description = "Never its secret.",
    security(("bearer" = [])),
    params(
        ("id" = UserIdSchema, Path, description = "The endpoint's id"),
    ),
    responses(
        (status = 200, description = "The endpoint", body = WebhookPublic),
        AdminErrors,
        WebhookIdErrors,
    )
)]
pub(crate) async fn get_webhook(
    AdminUser(admin): AdminUser,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse> {
    let id = webhook_id(&id)?;
    let users = state.users.clone();
    let webhook = state
        .blocking(move || users.webhook(Actor::User(admin.id), id))
        .await?;
    Ok(HttpResponse::Ok().json(WebhookPublic::new(&webhook)))
}

#[utoipa::path(
    put,
    path = "/api/auth/webhooks/{id}",
    tag = "webhooks",
    summary = "Change a webhook endpoint",
    description = "Changes the fields given: `url` (checked as at creation: 422 \
        `invalid_url`), `events`, `active`, `description` (`null` clears it). A change is \
        audited as `webhook_updated`; a request that changes nothing changes nothing and \
        writes no entry. An endpoint turned off is sent nothing: no new deliveries are \
        written for it, and those still pending are marked `failed`.",
    security(("bearer" = [])),
    params(
        ("id" = UserIdSchema, Path, description = "The endpoint's id"),
    ),
    request_body(content = UpdateWebhookRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "The endpoint as changed", body = WebhookPublic),
        AdminErrors,
        BodyErrors,
        WebhookIdErrors,
        (status = 422, response = InvalidWebhookUrl),
    )
)]
pub(crate) async fn update_webhook(
    AdminUser(admin): AdminUser,
    state: web::Data<AppState>,
    req: HttpRequest,
    id: web::Path<String>,
    body: StrictJson<UpdateWebhookRequest>,
) -> Result<HttpResponse> {
    let id = webhook_id(&id)?;
    let request = body.into_inner()?;
    let mut problems = Problems::default();
    let events = request
        .events
        .as_deref()
        .map(|names| events(&mut problems, names));
    let description = request
        .description
        .map(|d| problems.free_text("description", d.as_deref()));
    problems.finish()?;
    let url = match request.url {
        None => None,
        Some(raw) => Some(checked_url(&state, raw).await?),
    };
    let changes = WebhookChanges {
        url,
        events: events.flatten(),
        active: request.active,
        description: description.map(|d| d.map(|d| d.as_str().to_owned())),
    };
    let (users, origin) = (state.users.clone(), origin(&state, &req));
    let webhook = state
        .blocking(move || users.update_webhook(Actor::User(admin.id), id, &changes, &origin))
        .await?;
    Ok(HttpResponse::Ok().json(WebhookPublic::new(&webhook)))
}

#[utoipa::path(
    delete,
    path = "/api/auth/webhooks/{id}",
    tag = "webhooks",
    summary = "Remove a webhook endpoint",
    description = "With its deliveries log: deliveries not yet made are never made. \
        Audited as `webhook_deleted`.",
    security(("bearer" = [])),
    params(
        ("id" = UserIdSchema, Path, description = "The endpoint's id"),
    ),
    responses(
        (status = 204, description = "Removed; no body"),
        AdminErrors,
        WebhookIdErrors,
    )
)]
pub(crate) async fn delete_webhook(
    AdminUser(admin): AdminUser,
    state: web::Data<AppState>,
    req: HttpRequest,
    id: web::Path<String>,
) -> Result<HttpResponse> {
    let id = webhook_id(&id)?;
    let (users, origin) = (state.users.clone(), origin(&state, &req));
    state
        .blocking(move || users.delete_webhook(Actor::User(admin.id), id, &origin))
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

#[utoipa::path(
    post,
    path = "/api/auth/webhooks/{id}/rotate-secret",
    tag = "webhooks",
    summary = "Give a webhook endpoint a new signing secret",
    description = "The old secret stops at once: deliveries not yet made, retries \
        included, are signed with the new one, shown only in this response. Audited as \
        `webhook_secret_rotated`.",
    security(("bearer" = [])),
    params(
        ("id" = UserIdSchema, Path, description = "The endpoint's id"),
    ),
    responses(
        (status = 200, description = "The endpoint and its new secret",
            body = WebhookWithSecret),
        AdminErrors,
        WebhookIdErrors,
    )
)]
pub(crate) async fn rotate_webhook_secret(
    AdminUser(admin): AdminUser,
    state: web::Data<AppState>,
    req: HttpRequest,
    id: web::Path<String>,
) -> Result<HttpResponse> {
    let id = webhook_id(&id)?;
    let (users, origin) = (state.users.clone(), origin(&state, &req));
    let webhook = state
        .blocking(move || users.rotate_webhook_secret(Actor::User(admin.id), id, &origin))
        .await?;
    Ok(HttpResponse::Ok().json(WebhookWithSecret::new(&webhook)))
}

#[utoipa::path(
    post,
    path = "/api/auth/webhooks/{id}/test",
    tag = "webhooks",
    summary = "Queue a test event for a webhook endpoint",
    description = "Queues a `webhook.test` event about the calling admin for this \
        endpoint alone, whatever its subscription; it is delivered, signed and retried \
        like any other event and shows in the endpoint's deliveries log. An endpoint turned \
        off gets the entry too, which is marked `failed` instead of being sent.",
    security(("bearer" = [])),
    params(
        ("id" = UserIdSchema, Path, description = "The endpoint's id"),
    ),
    responses(
        (status = 202, description = "Queued", body = TestQueued),
        AdminErrors,
        WebhookIdErrors,
    )
)]
pub(crate) async fn test_webhook(
    AdminUser(admin): AdminUser,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse> {
    let id = webhook_id(&id)?;
    let users = state.users.clone();
    let event_id = state
        .blocking(move || users.test_webhook(Actor::User(admin.id), id))
        .await?;
    Ok(HttpResponse::Accepted().json(TestQueued { event_id }))
}

#[utoipa::path(
    get,
    path = "/api/auth/webhooks/{id}/deliveries",
    tag = "webhooks",
    summary = "A webhook endpoint's deliveries log, newest first",
    description = "One entry per event sent (or to be sent) to the endpoint, with where it \
        stands. Any other query parameter, or one given twice, is 422.",
    security(("bearer" = [])),
    params(
        ("id" = UserIdSchema, Path, description = "The endpoint's id"),
        ListWebhooksParams,
    ),
    responses(
        (status = 200, description = "A page of deliveries", body = Vec<DeliveryPublic>,
            headers(("X-Total-Count" = u64,
                description = "How many deliveries the endpoint has, before paging"))),
        AdminErrors,
        WebhookIdErrors,
    )
)]
pub(crate) async fn webhook_deliveries(
    AdminUser(admin): AdminUser,
    state: web::Data<AppState>,
    id: web::Path<String>,
    query: StrictQuery<ListWebhooksParams>,
) -> Result<HttpResponse> {
    let id = webhook_id(&id)?;
    let query = page_query(query.into_inner()?)?;
    let users = state.users.clone();
    let page = state
        .blocking(move || users.webhook_deliveries(Actor::User(admin.id), id, &query))
        .await?;
    let body: Vec<DeliveryPublic> = page.items.iter().map(DeliveryPublic::new).collect();
    Ok(listed(body, page.total))
}

/// How mail is configured, as admins may see it: never the credentials.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MailSettings {
    /// Whether a mailer is configured (`GATEHOUSE_SMTP_URL`); without one nothing is
    /// mailed.
    pub configured: bool,
    /// The SMTP server's host.
    pub host: Option<String>,
    /// Its port.
    pub port: Option<u16>,
    /// `none` (plain SMTP), `starttls` (`?tls=required`), `opportunistic`
    /// (`?tls=opportunistic`) or `tls` (`smtps://`).
    pub security: Option<String>,
    /// Whether the URL carries a user name and password (never shown).
    pub authenticated: bool,
    /// The sender (`GATEHOUSE_MAIL_FROM`).
    pub from: Option<String>,
    /// The console's address in mail links (`GATEHOUSE_PUBLIC_URL`).
    pub public_url: Option<String>,
    /// At most one admin digest per admin per this many seconds.
    pub admin_digest_interval_seconds: u64,
}

impl MailSettings {
    /// What `smtp_url` (the URL as configured, which may hold a password), `from`, the
    /// public URL and the digest interval say, without the credentials.
    #[must_use]
    pub fn describe(
        smtp_url: Option<&str>,
        from: Option<&str>,
        public_url: Option<&str>,
        digest_interval: std::time::Duration,
    ) -> Self {
        let parsed = smtp_url.and_then(|raw| url::Url::parse(raw.trim()).ok());
        let security = parsed.as_ref().map(|url| {
            let tls = url
                .query_pairs()
                .find(|(key, _)| key == "tls")
                .map(|(_, value)| value.into_owned());
            match (url.scheme(), tls.as_deref()) {
                ("smtps", _) => "tls",
                (_, Some("required")) => "starttls",
                (_, Some("opportunistic")) => "opportunistic",
                _ => "none",
            }
            .to_owned()
        });
        let port = parsed.as_ref().map(|url| {
            url.port().unwrap_or(match security.as_deref() {
                Some("tls") => 465,
                Some("starttls" | "opportunistic") => 587,
                _ => 25,
            })
        });
        Self {
            configured: parsed.is_some(),
            host: parsed
                .as_ref()
                .and_then(|url| url.host_str().map(str::to_owned)),
            port,
            security,
            authenticated: parsed
                .as_ref()
                .is_some_and(|url| !url.username().is_empty() || url.password().is_some()),
            from: from.map(str::to_owned),
            public_url: public_url.map(str::to_owned),
            admin_digest_interval_seconds: digest_interval.as_secs(),
        }
    }
}

#[utoipa::path(
    get,
    path = "/api/auth/settings/mail",
    tag = "webhooks",
    summary = "How mail is configured",
    description = "The SMTP server, its security and the sender, as set by \
        GATEHOUSE_SMTP_URL and GATEHOUSE_MAIL_FROM; never the user name or password. \
        `configured: false` when no mail is sent.",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The mail settings", body = MailSettings),
        AdminErrors,
    )
)]
pub(crate) async fn mail_settings(
    AdminUser(_admin): AdminUser,
    state: web::Data<AppState>,
) -> Result<HttpResponse> {
    Ok(HttpResponse::Ok().json(state.mail_settings()))
}
