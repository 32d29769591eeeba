//! Notifications (the notifications issue): the events a change raises, webhook endpoints,
//! where deliveries may go, how they are signed and when a failed one is tried again.
//!
//! An event is written with the change that raised it, in the change's own transaction
//! (the transactional outbox): [`NewEvent`] through `UserRepo::append_event`, which also
//! writes one delivery per active endpoint subscribed to it. A dispatcher (the `gatehouse`
//! binary) claims due deliveries, sends them and records each attempt.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use base64::Engine as _;
use chrono::{DateTime, SecondsFormat, Utc};
use hmac::{KeyInit, Mac};
use serde_json::json;

use crate::{AuditAction, Error, User, UserId};

/// What happened, as a webhook's `type` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventType {
    /// Someone registered (self-registration, with or without an invitation).
    UserRegistered,
    /// An admin (or the operator) created a user.
    UserCreated,
    /// A user was approved.
    UserApproved,
    /// A registration was turned down.
    UserRejected,
    /// A user was disabled (or set back to pending).
    UserDisabled,
    /// A disabled or rejected user was approved again.
    UserEnabled,
    /// A user became an admin.
    UserPromoted,
    /// A user stopped being an admin.
    UserDemoted,
    /// A user was deleted (`data.user` as it was just before).
    UserDeleted,
    /// An admin (or the operator) reset a user's password.
    UserPasswordReset,
    /// Someone registered with an invitation.
    InvitationUsed,
    /// An admin asked for a test delivery to one endpoint.
    WebhookTest,
}

impl EventType {
    /// Every event type, in the contract's order.
    pub const ALL: [Self; 12] = [
        Self::UserRegistered,
        Self::UserCreated,
        Self::UserApproved,
        Self::UserRejected,
        Self::UserDisabled,
        Self::UserEnabled,
        Self::UserPromoted,
        Self::UserDemoted,
        Self::UserDeleted,
        Self::UserPasswordReset,
        Self::InvitationUsed,
        Self::WebhookTest,
    ];

    /// The name in events and subscriptions (`user.approved`).
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::UserRegistered => "user.registered",
            Self::UserCreated => "user.created",
            Self::UserApproved => "user.approved",
            Self::UserRejected => "user.rejected",
            Self::UserDisabled => "user.disabled",
            Self::UserEnabled => "user.enabled",
            Self::UserPromoted => "user.promoted",
            Self::UserDemoted => "user.demoted",
            Self::UserDeleted => "user.deleted",
            Self::UserPasswordReset => "user.password_reset",
            Self::InvitationUsed => "invitation.used",
            Self::WebhookTest => "webhook.test",
        }
    }

    /// The type named `name`, if any.
    #[must_use]
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == name)
    }

    /// The event an audited change raises, if any: every change of a user that others may
    /// want to hear about is audited already, so the audit action decides.
    #[must_use]
    pub fn for_audit(action: AuditAction) -> Option<Self> {
        Some(match action {
            AuditAction::UserRegistered => Self::UserRegistered,
            AuditAction::UserCreated => Self::UserCreated,
            AuditAction::UserApproved | AuditAction::UserAutoApproved => Self::UserApproved,
            AuditAction::UserRejected => Self::UserRejected,
            AuditAction::UserDisabled => Self::UserDisabled,
            AuditAction::UserEnabled => Self::UserEnabled,
            AuditAction::UserPromoted => Self::UserPromoted,
            AuditAction::UserDemoted => Self::UserDemoted,
            AuditAction::UserDeleted => Self::UserDeleted,
            AuditAction::PasswordReset => Self::UserPasswordReset,
            AuditAction::InvitationUsed => Self::InvitationUsed,
            _ => return None,
        })
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which events an endpoint is sent: all (`["*"]`, including types added later) or the
/// ones named.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventFilter {
    /// Every event.
    All,
    /// These events, without duplicates, in the order first given.
    Only(Vec<EventType>),
}

impl EventFilter {
    /// Parses a subscription: `["*"]`, or one or more known event names.
    ///
    /// # Errors
    /// A message for the client: empty, an unknown name, or `*` beside names.
    pub fn parse(names: &[String]) -> Result<Self, String> {
        if names.is_empty() {
            return Err("events must name at least one event type, or be [\"*\"]".into());
        }
        if names.iter().any(|n| n == "*") {
            return if names.len() == 1 {
                Ok(Self::All)
            } else {
                Err("\"*\" stands alone: it already means every event".into())
            };
        }
        let mut types = Vec::with_capacity(names.len());
        for name in names {
            let Some(t) = EventType::parse(name) else {
                return Err(format!("unknown event type: {name:?}"));
            };
            if !types.contains(&t) {
                types.push(t);
            }
        }
        Ok(Self::Only(types))
    }

    /// Whether `event` is sent.
    #[must_use]
    pub fn matches(&self, event: EventType) -> bool {
        match self {
            Self::All => true,
            Self::Only(types) => types.contains(&event),
        }
    }

    /// The names, as the API shows them (`["*"]` for all).
    #[must_use]
    pub fn names(&self) -> Vec<&'static str> {
        match self {
            Self::All => vec!["*"],
            Self::Only(types) => types.iter().map(|t| t.as_str()).collect(),
        }
    }

    /// As stored: `*`, or the names between commas (`,user.approved,user.rejected,`) so that
    /// a store can match one with `LIKE '%,name,%'`.
    #[must_use]
    pub fn to_stored(&self) -> String {
        match self {
            Self::All => "*".to_owned(),
            Self::Only(types) => {
                let mut out = String::from(",");
                for t in types {
                    out.push_str(t.as_str());
                    out.push(',');
                }
                out
            }
        }
    }

    /// Reads [`Self::to_stored`]'s text back; unknown names (from a newer version) are
    /// skipped.
    #[must_use]
    pub fn from_stored(text: &str) -> Self {
        if text == "*" {
            return Self::All;
        }
        Self::Only(
            text.split(',')
                .filter_map(EventType::parse)
                .collect::<Vec<_>>(),
        )
    }
}

/// An endpoint's signing secret: `whsec_` and the base64 of 32 random bytes (the Standard
/// Webhooks format). Its `Debug` does not show it.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookSecret(String);

/// The prefix of every secret.
const SECRET_PREFIX: &str = "whsec_";

impl WebhookSecret {
    /// A new random secret.
    ///
    /// # Errors
    /// [`Error::Internal`] when the system's random source fails.
    pub fn generate() -> Result<Self, Error> {
        let mut key = [0u8; 32];
        getrandom::fill(&mut key).map_err(|e| Error::internal("webhook secret", e))?;
        Ok(Self(format!(
            "{SECRET_PREFIX}{}",
            base64::engine::general_purpose::STANDARD.encode(key)
        )))
    }

    /// A secret as stored.
    #[must_use]
    pub fn from_stored(text: String) -> Self {
        Self(text)
    }

    /// The text (`whsec_…`): for the response that shows it once, and for storage.
    #[must_use]
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The HMAC key: the base64-decoded part after `whsec_`.
    fn key(&self) -> Vec<u8> {
        let encoded = self.0.strip_prefix(SECRET_PREFIX).unwrap_or(&self.0);
        base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .unwrap_or_else(|_| encoded.as_bytes().to_vec())
    }

    /// The `webhook-signature` header's value for a delivery of `body` as message `id` at
    /// `timestamp` (Unix seconds): `v1,` and the base64 of HMAC-SHA256 over
    /// `{id}.{timestamp}.{body}`.
    #[must_use]
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        // HMAC takes a key of any length: `new_from_slice` cannot fail for it.
        let mut mac = match hmac::Hmac::<sha2::Sha256>::new_from_slice(&self.key()) {
            Ok(mac) => mac,
            Err(_) => return String::new(),
        };
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        format!(
            "v1,{}",
            base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
        )
    }
}

impl fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WebhookSecret(***)")
    }
}

/// A webhook endpoint's address: `http` or `https`, a host, no credentials, at most 2 048
/// bytes; normalised as a browser would (so `http://2130706433/` is seen as
/// `http://127.0.0.1/`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookUrl {
    text: String,
    host: Host,
    port: u16,
}

/// Where a URL points before any name is resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    /// A literal address.
    Ip(IpAddr),
    /// A name to resolve (lower case, without a trailing dot).
    Name(String),
}

impl WebhookUrl {
    /// Parses and checks `raw`; with `allow_private` false, a literal address outside the
    /// public ranges, and `localhost` and its subdomains, are refused.
    ///
    /// # Errors
    /// A message for the client (`invalid_url`).
    pub fn parse(raw: &str, allow_private: bool) -> Result<Self, String> {
        let raw = raw.trim();
        if raw.len() > 2048 {
            return Err("url is longer than 2048 bytes".into());
        }
        let url = url::Url::parse(raw).map_err(|e| format!("url is not a valid URL: {e}"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err("url must be http or https".into());
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err("url must not carry credentials".into());
        }
        let host = match url.host() {
            Some(url::Host::Ipv4(ip)) => Host::Ip(IpAddr::V4(ip)),
            Some(url::Host::Ipv6(ip)) => Host::Ip(IpAddr::V6(ip)),
            Some(url::Host::Domain(name)) => {
                Host::Name(name.trim_end_matches('.').to_ascii_lowercase())
            }
            None => return Err("url must name a host".into()),
        };
        let port = url
            .port_or_known_default()
            .ok_or("url must name a port or use http or https")?;
        let parsed = Self {
            text: url.to_string(),
            host,
            port,
        };
        if !allow_private {
            match &parsed.host {
                Host::Ip(ip) if !is_public(*ip) => {
                    return Err(format!(
                        "url points to {ip}, a loopback, private, link-local or otherwise \
                         non-public address"
                    ));
                }
                Host::Name(name) if name == "localhost" || name.ends_with(".localhost") => {
                    return Err("url points to localhost".into());
                }
                _ => {}
            }
        }
        Ok(parsed)
    }

    /// The normalised text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The host.
    #[must_use]
    pub fn host(&self) -> &Host {
        &self.host
    }

    /// The port (the scheme's default when none is written).
    #[must_use]
    pub fn port(&self) -> u16 {
        self.port
    }
}

/// The addresses `host` resolves to (the system's resolver), refused when any of them is
/// not public and `allow_private` is false: a name with one public and one private record
/// could be made to reach the private one.
///
/// # Errors
/// A message for the client or the deliveries log: the name does not resolve, or it
/// resolves to a non-public address.
pub fn resolve_public(
    host: &str,
    port: u16,
    allow_private: bool,
) -> Result<Vec<std::net::SocketAddr>, String> {
    use std::net::ToSocketAddrs as _;
    let addresses: Vec<_> = (host, port)
        .to_socket_addrs()
        .map_err(|e| format!("{host} does not resolve: {e}"))?
        .collect();
    if addresses.is_empty() {
        return Err(format!("{host} does not resolve to any address"));
    }
    if !allow_private {
        if let Some(private) = addresses.iter().find(|a| !is_public(a.ip())) {
            return Err(format!(
                "{host} resolves to {}, a loopback, private, link-local or otherwise \
                 non-public address",
                private.ip()
            ));
        }
    }
    Ok(addresses)
}

impl WebhookUrl {
    /// [`WebhookUrl::parse`], and with `allow_private` false, a name that resolves must
    /// resolve only to public addresses (the check at creation; the dispatcher checks
    /// again at each delivery, where a name that does not resolve fails the attempt). A
    /// name that does not resolve now is accepted: it may be the receiver's, not yet in
    /// DNS, and it can reach nothing until it resolves, to a public address.
    ///
    /// # Errors
    /// As [`WebhookUrl::parse`]; a name resolving to a non-public address.
    pub fn parse_and_resolve(raw: &str, allow_private: bool) -> Result<Self, String> {
        use std::net::ToSocketAddrs as _;
        let url = Self::parse(raw, allow_private)?;
        if let (Host::Name(name), false) = (url.host(), allow_private) {
            let resolved = (name.as_str(), url.port()).to_socket_addrs();
            if let Some(private) = resolved.into_iter().flatten().find(|a| !is_public(a.ip())) {
                return Err(format!(
                    "{name} resolves to {}, a loopback, private, link-local or otherwise \
                     non-public address",
                    private.ip()
                ));
            }
        }
        Ok(url)
    }
}

impl fmt::Display for WebhookUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Whether a delivery may go to `ip`: not loopback, private, link-local, shared (CGNAT),
/// unspecified, broadcast, multicast, documentation, benchmarking or reserved, in either
/// family, IPv4 embedded in IPv6 (mapped, compatible, NAT64, 6to4) judged as IPv4.
#[must_use]
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(a == 0 // "this network"
        || a == 10
        || a == 127
        || (a == 100 && (64..128).contains(&b)) // shared address space (CGNAT)
        || (a == 169 && b == 254)
        || (a == 172 && (16..32).contains(&b))
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 192 && b == 0 && c == 2) // TEST-NET-1
        || (a == 192 && b == 88 && c == 99) // 6to4 relay anycast
        || (a == 192 && b == 168)
        || (a == 198 && (18..20).contains(&b)) // benchmarking
        || (a == 198 && b == 51 && c == 100) // TEST-NET-2
        || (a == 203 && b == 0 && c == 113) // TEST-NET-3
        || a >= 224) // multicast, reserved, broadcast
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return is_public_v4(v4);
    }
    let s = ip.segments();
    // IPv4-compatible (deprecated, ::a.b.c.d) and the unspecified and loopback addresses.
    if s[..6] == [0; 6] {
        return false;
    }
    // NAT64 (64:ff9b::/96 and the local-use 64:ff9b:1::/48): the IPv4 address inside.
    if s[0] == 0x64 && s[1] == 0xff9b {
        if s[2..6] == [0; 4] {
            return is_public_v4(Ipv4Addr::new(
                (s[6] >> 8) as u8,
                s[6] as u8,
                (s[7] >> 8) as u8,
                s[7] as u8,
            ));
        }
        return false;
    }
    // 6to4 (2002::/16): the IPv4 address in the next 32 bits.
    if s[0] == 0x2002 {
        return is_public_v4(Ipv4Addr::new(
            (s[1] >> 8) as u8,
            s[1] as u8,
            (s[2] >> 8) as u8,
            s[2] as u8,
        ));
    }
    !((s[0] & 0xfe00) == 0xfc00 // unique local
        || (s[0] & 0xffc0) == 0xfe80 // link-local
        || (s[0] & 0xffc0) == 0xfec0 // site-local (deprecated)
        || (s[0] & 0xff00) == 0xff00 // multicast
        || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
        || (s[0] == 0x2001 && s[1] < 0x0200) // IETF protocol assignments, Teredo, ORCHID
        || s[0] == 0x0100 && s[1..4] == [0; 3]) // discard-only
}

/// A webhook endpoint as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Webhook {
    /// Assigned by the store.
    pub id: i64,
    /// Where deliveries go.
    pub url: String,
    /// Which events it is sent.
    pub events: EventFilter,
    /// The admin's note.
    pub description: Option<String>,
    /// Whether deliveries are made (a 410 answer, or an admin, turns it off).
    pub active: bool,
    /// When it was added.
    pub created_at: DateTime<Utc>,
    /// The signing secret.
    pub secret: WebhookSecret,
}

/// A webhook endpoint to add.
#[derive(Debug, Clone)]
pub struct NewWebhook {
    /// Where deliveries go (checked).
    pub url: WebhookUrl,
    /// Which events it is sent.
    pub events: EventFilter,
    /// The admin's note.
    pub description: Option<String>,
    /// The signing secret.
    pub secret: WebhookSecret,
    /// Now.
    pub created_at: DateTime<Utc>,
}

/// A change to an endpoint: `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct WebhookChanges {
    /// A new address (checked).
    pub url: Option<WebhookUrl>,
    /// A new subscription.
    pub events: Option<EventFilter>,
    /// Turn deliveries on or off.
    pub active: Option<bool>,
    /// A new note (`Some(None)` clears it).
    pub description: Option<Option<String>>,
}

/// Which page of a listing (webhooks, deliveries).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PageQuery {
    /// At most this many; all when `None`.
    pub limit: Option<u64>,
    /// Skip this many first.
    pub offset: u64,
}

/// An event to write with the change that raised it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEvent {
    /// `msg_` and 32 hex digits: the `webhook-id` of every delivery of it.
    pub id: String,
    /// What happened.
    pub event_type: EventType,
    /// When.
    pub at: DateTime<Utc>,
    /// The JSON body every endpoint is sent.
    pub payload: String,
    /// Only to this endpoint, active or not (a test event); `None`: to every active
    /// endpoint subscribed to the type.
    pub only_webhook: Option<i64>,
}

impl NewEvent {
    /// The event `event_type` about `user` (as it is now, or as it was before a deletion),
    /// done by `actor` (`None`: the user themself, or the operator).
    ///
    /// # Errors
    /// [`Error::Internal`] when the random source fails.
    pub fn about(
        event_type: EventType,
        user: &User,
        actor: Option<UserId>,
        at: DateTime<Utc>,
    ) -> Result<Self, Error> {
        let id = format!("msg_{}", crate::random::random_hex(16)?);
        let payload = json!({
            "id": id,
            "type": event_type.as_str(),
            "timestamp": at.to_rfc3339_opts(SecondsFormat::Secs, true),
            "data": {
                "user": user_json(user),
                "actor_id": actor.map(UserId::get),
            },
        })
        .to_string();
        Ok(Self {
            id,
            event_type,
            at,
            payload,
            only_webhook: None,
        })
    }
}

/// `user` as the API shows it (`UserPublic`: everything but the password hash and the
/// token version; the HTTP crate holds the two equal in a test).
#[must_use]
pub fn user_json(user: &User) -> serde_json::Value {
    let time = |at: DateTime<Utc>| at.to_rfc3339_opts(SecondsFormat::Secs, true);
    json!({
        "id": user.id.get(),
        "email": user.email.as_str(),
        "is_admin": user.is_admin,
        "status": user.status.as_str(),
        "created_at": time(user.created_at),
        "approved_at": user.approved_at.map(time),
        "approved_by": user.approved_by.map(UserId::get),
        "reason": user.reason,
        "email_verified": user.email_verified,
        "mfa_enabled": user.mfa_enabled,
        "rejected_at": user.rejected_at.map(time),
        "rejected_by": user.rejected_by.map(UserId::get),
        "decision_note": user.decision_note,
    })
}

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryStatus {
    /// Not delivered yet; tried again at `next_attempt_at`.
    Pending,
    /// A 2xx answer came.
    Delivered,
    /// Every attempt failed, or the endpoint answered 410 or was removed from service.
    Failed,
}

impl DeliveryStatus {
    /// The name in the API and in storage.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Delivered => "delivered",
            Self::Failed => "failed",
        }
    }

    /// The status named `name`, if any.
    #[must_use]
    pub fn parse(name: &str) -> Option<Self> {
        [Self::Pending, Self::Delivered, Self::Failed]
            .into_iter()
            .find(|s| s.as_str() == name)
    }
}

/// One event's delivery to one endpoint, as the deliveries log shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// Assigned by the store.
    pub id: i64,
    /// The endpoint.
    pub webhook_id: i64,
    /// The event's id (`webhook-id`).
    pub event_id: String,
    /// The event's type.
    pub event_type: String,
    /// Where it stands.
    pub status: DeliveryStatus,
    /// Attempts made so far.
    pub attempts: u32,
    /// When the last attempt was made.
    pub last_attempt_at: Option<DateTime<Utc>>,
    /// The last attempt's HTTP status, if an answer came.
    pub last_status_code: Option<u16>,
    /// Why the last attempt failed, if it did.
    pub last_error: Option<String>,
    /// When the next attempt is due (`None` once delivered or failed).
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// When the event was written.
    pub created_at: DateTime<Utc>,
}

/// A delivery claimed by a dispatcher: everything an attempt needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueDelivery {
    /// The delivery.
    pub id: i64,
    /// The endpoint.
    pub webhook_id: i64,
    /// Its address as stored (checked again before sending).
    pub url: String,
    /// Its signing secret.
    pub secret: WebhookSecret,
    /// The event's id.
    pub event_id: String,
    /// The event's JSON.
    pub payload: String,
    /// Attempts made before this one.
    pub attempts: u32,
}

/// How a dispatcher takes the deliveries it sends
/// ([`UserService::dispatch_turn`](crate::UserService::dispatch_turn)).
#[derive(Debug, Clone, Copy)]
pub enum Claiming<'a> {
    /// Each delivery taken gets a lease in the store, so that dispatchers sharing it
    /// (PostgreSQL instances) never make one attempt twice at once.
    Leased,
    /// The dispatcher is its store's only one (SQLite, holding the outbox's lock): due
    /// deliveries are read, without a lease, leaving out `in_flight` (taken earlier and not
    /// yet recorded), so that a turn writes only what it records.
    Sole {
        /// The deliveries it is sending, or sent and has not recorded yet.
        in_flight: &'a [i64],
    },
}

/// What a sole dispatcher reads at a turn ([`crate::UserRepo::due_deliveries`]).
#[derive(Debug, Clone, Default)]
pub struct DueDeliveries {
    /// Due deliveries of active endpoints, oldest due first.
    pub due: Vec<DueDelivery>,
    /// Whether any endpoint is turned off: its pending deliveries are then failed, in a
    /// write ([`crate::UserRepo::fail_inactive_deliveries`]).
    pub inactive_endpoints: bool,
}

/// What became of one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    /// When it was made.
    pub at: DateTime<Utc>,
    /// The HTTP status, if an answer came.
    pub status_code: Option<u16>,
    /// Why it failed (`None` when delivered).
    pub error: Option<String>,
    /// What follows.
    pub next: AttemptNext,
}

/// What follows an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptNext {
    /// A 2xx came: done.
    Delivered,
    /// Try again at this time.
    RetryAt(DateTime<Utc>),
    /// No more attempts: `failed`.
    Failed,
    /// The endpoint answered 410 Gone: this delivery fails and the endpoint is disabled.
    Gone,
}

/// The waits between attempts (`GATEHOUSE_WEBHOOK_RETRY_DELAYS`): after the first failed
/// attempt the first delay, and so on; when they run out the delivery fails.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    delays: Vec<Duration>,
}

impl RetryPolicy {
    /// The default: 5 s, 30 s, 2 m, 10 m, 30 m, 2 h, 6 h (eight attempts over about nine
    /// hours).
    #[must_use]
    pub fn standard() -> Self {
        Self::new(
            [5, 30, 120, 600, 1800, 7200, 21_600]
                .into_iter()
                .map(Duration::from_secs)
                .collect(),
        )
    }

    /// These delays (an empty list: a single attempt).
    #[must_use]
    pub fn new(delays: Vec<Duration>) -> Self {
        Self { delays }
    }

    /// The delays.
    #[must_use]
    pub fn delays(&self) -> &[Duration] {
        &self.delays
    }

    /// What follows a failed attempt, the `attempts`-th (counting from 1), made at `at`:
    /// the next delay scaled by `jitter` (a factor, 0.8-1.2 from the dispatcher), or
    /// [`AttemptNext::Failed`] when none is left.
    #[must_use]
    pub fn after_failure(&self, attempts: u32, at: DateTime<Utc>, jitter: f64) -> AttemptNext {
        let index = attempts.saturating_sub(1) as usize;
        match self.delays.get(index) {
            Some(delay) => {
                let scaled = delay.mul_f64(jitter.clamp(0.5, 1.5));
                let scaled = chrono::Duration::from_std(scaled)
                    .unwrap_or_else(|_| chrono::Duration::days(1));
                AttemptNext::RetryAt(at + scaled)
            }
            None => AttemptNext::Failed,
        }
    }
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self::standard()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_follow_the_standard_webhooks_example() {
        // The example of the Standard Webhooks specification's reference libraries.
        let secret = WebhookSecret::from_stored("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".into());
        let body = br#"{"test": 2432232314}"#;
        assert_eq!(
            secret.sign("msg_p5jXN8AQM9LWM0D4loKWxJek", 1_614_265_330, body),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn secrets_are_whsec_and_32_bytes_and_hidden_from_debug() {
        let secret = WebhookSecret::generate().unwrap();
        let text = secret.expose();
        assert!(text.starts_with("whsec_"), "{text}");
        assert_eq!(secret.key().len(), 32);
        assert_ne!(secret, WebhookSecret::generate().unwrap());
        assert!(!format!("{secret:?}").contains(&text[6..]));
    }

    #[test]
    fn private_addresses_are_refused_in_every_spelling() {
        for raw in [
            "http://127.0.0.1/hook",
            "http://127.1/hook",
            "http://2130706433/hook",
            "http://0x7f000001/hook",
            "http://localhost:8080/hook",
            "http://api.localhost/hook",
            "http://10.1.2.3/",
            "http://172.16.0.1/",
            "http://192.168.1.1/",
            "http://169.254.169.254/latest/meta-data",
            "http://100.64.0.1/",
            "http://0.0.0.0/",
            "http://[::1]/",
            "http://[::]/",
            "http://[::ffff:127.0.0.1]/",
            "http://[::ffff:10.0.0.1]/",
            "http://[fe80::1]/",
            "http://[fc00::1]/",
            "http://[fd12:3456::1]/",
            "http://[64:ff9b::7f00:1]/",
            "http://[2002:7f00:1::]/",
            "http://[ff02::1]/",
            "http://224.0.0.1/",
            "http://255.255.255.255/",
        ] {
            assert!(WebhookUrl::parse(raw, false).is_err(), "{raw}");
            assert!(
                WebhookUrl::parse(raw, true).is_ok(),
                "{raw} with private allowed"
            );
        }
        for raw in [
            "https://example.com/hook",
            "http://93.184.216.34:8080/x",
            "http://[2606:4700::1111]/",
            "http://[64:ff9b::5db8:d822]/",
        ] {
            assert!(WebhookUrl::parse(raw, false).is_ok(), "{raw}");
        }
    }

    #[test]
    fn a_name_that_does_not_resolve_yet_is_accepted_at_creation() {
        // `.invalid` never resolves (RFC 6761); the dispatcher checks again at delivery.
        assert!(WebhookUrl::parse_and_resolve("https://hooks.nothing.invalid/x", false).is_ok());
        assert!(WebhookUrl::parse_and_resolve("http://localhost/x", false).is_err());
        assert!(WebhookUrl::parse_and_resolve("http://127.0.0.1/x", false).is_err());
    }

    #[test]
    fn urls_must_be_http_with_a_host_and_no_credentials() {
        for raw in [
            "ftp://example.com/",
            "file:///etc/passwd",
            "https://user:pw@example.com/",
            "https://user@example.com/",
            "not a url",
            "",
            "javascript:alert(1)",
        ] {
            assert!(WebhookUrl::parse(raw, true).is_err(), "{raw}");
        }
        let url = WebhookUrl::parse("HTTPS://Example.COM./a?b=1", false).unwrap();
        assert_eq!(url.host(), &Host::Name("example.com".into()));
        assert_eq!(url.port(), 443);
    }

    #[test]
    fn filters_parse_store_and_match() {
        assert_eq!(EventFilter::parse(&["*".into()]), Ok(EventFilter::All));
        assert!(EventFilter::parse(&[]).is_err());
        assert!(EventFilter::parse(&["*".into(), "user.approved".into()]).is_err());
        assert!(EventFilter::parse(&["user.nope".into()]).is_err());
        let only = EventFilter::parse(&[
            "user.approved".into(),
            "user.rejected".into(),
            "user.approved".into(),
        ])
        .unwrap();
        assert_eq!(only.names(), ["user.approved", "user.rejected"]);
        assert_eq!(only.to_stored(), ",user.approved,user.rejected,");
        assert_eq!(EventFilter::from_stored(&only.to_stored()), only);
        assert!(only.matches(EventType::UserApproved));
        assert!(!only.matches(EventType::UserDeleted));
        assert!(EventFilter::All.matches(EventType::WebhookTest));
        for t in EventType::ALL {
            assert_eq!(EventType::parse(t.as_str()), Some(t));
        }
    }

    #[test]
    fn retries_follow_the_delays_then_fail() {
        let policy = RetryPolicy::standard();
        let at = DateTime::<Utc>::from_timestamp(1_000_000, 0).unwrap();
        assert_eq!(
            policy.after_failure(1, at, 1.0),
            AttemptNext::RetryAt(at + chrono::Duration::seconds(5))
        );
        assert_eq!(
            policy.after_failure(7, at, 1.0),
            AttemptNext::RetryAt(at + chrono::Duration::hours(6))
        );
        assert_eq!(policy.after_failure(8, at, 1.0), AttemptNext::Failed);
        let AttemptNext::RetryAt(jittered) = policy.after_failure(2, at, 1.2) else {
            panic!("a retry");
        };
        assert_eq!(jittered, at + chrono::Duration::seconds(36));
    }
}
