//! The outbox over the in-memory store: which change raises which event and queues which
//! mail, that a refused change raises nothing, the wake-up after a commit, and the admin
//! digest's interval.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests panic to fail

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use chrono::Duration;
use gatehouse_domain::testing::{InMemoryStore, PlainHasher};
use gatehouse_domain::{
    Actor, Attempt, AttemptNext, Claiming, DeliveryStatus, DueDelivery, DueMail, Email, Error,
    EventFilter, Hs256Tokens, InvitationRequest, JwtSecret, MailKind, MailPolicy, Origin,
    PageQuery, Password, TokenTtl, User, UserChanges, UserService, UserStatus, WebhookChanges,
    WebhookRequest, WebhookUrl,
};
use serde_json::Value;

const PASSWORD: &str = "tr0mbone-kettle";

struct World {
    users: UserService,
    wakes: Arc<AtomicUsize>,
    admin: User,
}

fn world(mail: Option<MailPolicy>) -> World {
    let secret = JwtSecret::new(vec![b's'; 32]).unwrap();
    let tokens = Arc::new(Hs256Tokens::new(&secret, TokenTtl::DEFAULT).unwrap());
    let wakes = Arc::new(AtomicUsize::new(0));
    let users = UserService::new(
        Arc::new(InMemoryStore::new()),
        Arc::new(PlainHasher),
        tokens,
    )
    .with_outbox_wake({
        let wakes = Arc::clone(&wakes);
        Arc::new(move || {
            wakes.fetch_add(1, Ordering::SeqCst);
        })
    });
    let users = match mail {
        Some(policy) => users.with_mail(policy),
        None => users,
    };
    let admin = register(&users, "admin@example.com");
    World {
        users,
        wakes,
        admin,
    }
}

fn policy(interval: Duration) -> MailPolicy {
    MailPolicy {
        public_url: Some("https://auth.example.com".into()),
        digest_interval: interval,
    }
}

fn register(users: &UserService, who: &str) -> User {
    users
        .register(
            Email::parse(who).unwrap(),
            &Password::parse(PASSWORD).unwrap(),
            &Origin::default(),
        )
        .unwrap()
}

impl World {
    fn subscribe(&self, events: &[&str]) -> i64 {
        let names: Vec<String> = events.iter().map(|e| (*e).to_owned()).collect();
        self.users
            .create_webhook(
                Actor::User(self.admin.id),
                &WebhookRequest {
                    url: WebhookUrl::parse("https://hooks.example.com/x", false).unwrap(),
                    events: EventFilter::parse(&names).unwrap(),
                    description: None,
                },
                &Origin::default(),
            )
            .unwrap()
            .id
    }

    fn change(&self, user: &User, changes: UserChanges) -> Result<User, Error> {
        self.users.update_user(
            Actor::User(self.admin.id),
            user.id,
            &changes,
            &Origin::default(),
        )
    }

    fn due(&self) -> Vec<DueDelivery> {
        let now = gatehouse_domain::now();
        self.users
            .claim_deliveries(now, now + Duration::minutes(1), 1000)
            .unwrap()
    }

    fn mails(&self) -> Vec<DueMail> {
        self.mails_at(gatehouse_domain::now())
    }

    /// The mails due at `now`, verification codes aside (`tests/recovery.rs` has them).
    fn mails_at(&self, now: chrono::DateTime<chrono::Utc>) -> Vec<DueMail> {
        self.users
            .claim_mails(now, now + Duration::minutes(1), 1000)
            .unwrap()
            .into_iter()
            .filter(|mail| mail.kind != MailKind::EmailVerification)
            .collect()
    }
}

fn body(delivery: &DueDelivery) -> Value {
    serde_json::from_str(&delivery.payload).unwrap()
}

fn status(status: UserStatus, note: Option<&str>) -> UserChanges {
    UserChanges {
        status: Some(status),
        note: note.map(str::to_owned),
        ..UserChanges::default()
    }
}

#[test]
fn each_change_raises_its_event_with_the_user_and_the_actor() {
    let w = world(None);
    let all = w.subscribe(&["*"]);
    let ann = register(&w.users, "ann@example.com");
    let ann = w.change(&ann, status(UserStatus::Approved, None)).unwrap();
    w.change(
        &ann,
        UserChanges {
            is_admin: Some(true),
            ..UserChanges::default()
        },
    )
    .unwrap();
    w.users
        .reset_password(
            Actor::User(w.admin.id),
            ann.id,
            &Password::parse("another-long-one").unwrap(),
            &Origin::default(),
        )
        .unwrap();
    w.users
        .delete_user(Actor::User(w.admin.id), ann.id, &Origin::default())
        .unwrap();
    let due = w.due();
    let types: Vec<String> = due
        .iter()
        .map(|d| body(d)["type"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        types,
        [
            "user.registered",
            "user.approved",
            "user.promoted",
            "user.password_reset",
            "user.deleted"
        ]
    );
    assert!(due.iter().all(|d| d.webhook_id == all));
    let registered = body(&due[0]);
    assert_eq!(registered["data"]["user"]["email"], "ann@example.com");
    assert_eq!(registered["data"]["user"]["status"], "pending");
    assert_eq!(registered["data"]["actor_id"], Value::Null);
    assert_eq!(body(&due[1])["data"]["actor_id"], w.admin.id.get());
    let deleted = body(&due[4]);
    assert_eq!(
        deleted["data"]["user"]["is_admin"], true,
        "as before the deletion"
    );
    assert!(deleted["data"]["user"].get("password_hash").is_none());
    assert_eq!(deleted["id"], due[4].event_id);
}

#[test]
fn a_refused_change_raises_nothing_and_wakes_nobody() {
    let w = world(None);
    w.subscribe(&["*"]);
    let before = w.wakes.load(Ordering::SeqCst);
    // The last active admin cannot be disabled.
    let refused = w.change(&w.admin, status(UserStatus::Disabled, None));
    assert!(matches!(refused, Err(Error::LastAdmin(_))), "{refused:?}");
    assert!(w.due().is_empty());
    assert_eq!(w.wakes.load(Ordering::SeqCst), before);
    register(&w.users, "ann@example.com");
    assert_eq!(
        w.wakes.load(Ordering::SeqCst),
        before + 1,
        "woken after the commit"
    );
}

#[test]
fn only_subscribed_endpoints_get_an_event_and_a_new_note_alone_raises_none() {
    let w = world(None);
    let deletions = w.subscribe(&["user.deleted"]);
    let rejections = w.subscribe(&["user.rejected"]);
    let ann = register(&w.users, "ann@example.com");
    let ann = w
        .change(&ann, status(UserStatus::Rejected, Some("not yet")))
        .unwrap();
    w.change(&ann, status(UserStatus::Rejected, Some("still not")))
        .unwrap();
    let due = w.due();
    assert_eq!(due.len(), 1, "{due:#?}");
    assert_eq!(due[0].webhook_id, rejections);
    assert_eq!(body(&due[0])["data"]["user"]["decision_note"], "not yet");
    assert!(due.iter().all(|d| d.webhook_id != deletions));
}

#[test]
fn without_a_mailer_nothing_is_mailed() {
    let w = world(None);
    let ann = register(&w.users, "ann@example.com");
    w.change(&ann, status(UserStatus::Approved, Some("hi")))
        .unwrap();
    assert_eq!(
        w.users.queue_admin_digest(gatehouse_domain::now()).unwrap(),
        0
    );
    assert!(w.mails().is_empty());
}

#[test]
fn applicants_hear_decisions_and_nobody_else_hears_of_other_changes() {
    let w = world(Some(policy(Duration::minutes(1))));
    let ann = register(&w.users, "ann@example.com");
    let bob = register(&w.users, "bob@example.com");
    let ann = w
        .change(&ann, status(UserStatus::Approved, Some("Welcome")))
        .unwrap();
    w.change(&bob, status(UserStatus::Rejected, Some("No room")))
        .unwrap();
    // Disabled then enabled again: not a decision about a registration.
    let ann = w.change(&ann, status(UserStatus::Disabled, None)).unwrap();
    w.change(&ann, status(UserStatus::Approved, None)).unwrap();
    let mails = w.mails();
    assert_eq!(mails.len(), 2, "{mails:#?}");
    assert!(mails.iter().all(|m| m.kind == MailKind::Decision));
    assert_eq!(mails[0].to, "ann@example.com");
    assert_eq!(mails[0].subject, "Your registration was approved");
    assert!(mails[0].body.contains("Welcome"));
    assert!(mails[0].body.contains("https://auth.example.com/"));
    assert_eq!(mails[1].to, "bob@example.com");
    assert_eq!(mails[1].subject, "Your registration was not approved");
    assert!(mails[1].body.contains("No room"));
}

#[test]
fn an_invitation_for_an_email_is_mailed_with_its_code_and_link() {
    let w = world(Some(policy(Duration::minutes(1))));
    let request = InvitationRequest {
        email: Some(Email::parse("cat@example.com").unwrap()),
        is_admin: false,
        expires_in: Duration::days(7),
        max_uses: 1,
        note: Some("Join us".into()),
    }
    .validate()
    .unwrap();
    let (_, code) = w
        .users
        .create_invitation(Actor::User(w.admin.id), &request, &Origin::default())
        .unwrap();
    let mails = w.mails();
    assert_eq!(mails.len(), 1);
    assert_eq!(mails[0].kind, MailKind::Invitation);
    assert_eq!(mails[0].to, "cat@example.com");
    assert!(mails[0].body.contains(code.expose()));
    assert!(mails[0].body.contains(&format!(
        "https://auth.example.com/#/register?invitation={}",
        code.expose()
    )));
    assert!(mails[0].body.contains("Join us"));
}

#[test]
fn the_digest_goes_to_every_active_admin_at_most_once_per_interval() {
    let w = world(Some(policy(Duration::minutes(10))));
    let second = register(&w.users, "second@example.com");
    let second = w
        .change(
            &second,
            UserChanges {
                status: Some(UserStatus::Approved),
                is_admin: Some(true),
                ..UserChanges::default()
            },
        )
        .unwrap();
    // `second` waited before being approved: nobody waits now.
    assert_eq!(
        w.users.queue_admin_digest(gatehouse_domain::now()).unwrap(),
        0
    );
    register(&w.users, "ann@example.com");
    let t0 = gatehouse_domain::now();
    assert_eq!(w.users.queue_admin_digest(t0).unwrap(), 2, "one per admin");
    register(&w.users, "bob@example.com");
    assert_eq!(
        w.users
            .queue_admin_digest(t0 + Duration::minutes(5))
            .unwrap(),
        0,
        "within the interval"
    );
    assert_eq!(
        w.users
            .queue_admin_digest(t0 + Duration::minutes(11))
            .unwrap(),
        2
    );
    let mails: Vec<DueMail> = w
        .mails_at(t0 + Duration::minutes(12))
        .into_iter()
        .filter(|m| m.kind == MailKind::AdminDigest)
        .collect();
    assert_eq!(mails.len(), 4, "{mails:#?}");
    let to: Vec<&str> = mails.iter().map(|m| m.to.as_str()).collect();
    assert_eq!(to.iter().filter(|t| **t == "admin@example.com").count(), 2);
    assert_eq!(
        to.iter().filter(|t| **t == second.email.as_str()).count(),
        2
    );
    assert_eq!(mails[0].subject, "ann@example.com is waiting for approval");
    assert!(!mails[0].body.contains("bob@example.com"));
    assert_eq!(mails[2].subject, "bob@example.com is waiting for approval");
    assert!(!mails[2].body.contains("ann@example.com (registered"));
    assert!(mails[2].body.contains("2 in all wait for approval"));
}

#[test]
fn a_registration_committed_after_a_digest_but_stamped_before_it_is_named_once() {
    let w = world(Some(policy(Duration::minutes(10))));
    register(&w.users, "ann@example.com");
    // The digest runs 30 s after ann registered…
    let t0 = gatehouse_domain::now() + Duration::seconds(30);
    assert_eq!(w.users.queue_admin_digest(t0).unwrap(), 1);
    // …and only then does a registration stamped before it commit.
    register(&w.users, "late@example.com");
    assert_eq!(
        w.users
            .queue_admin_digest(t0 + Duration::minutes(11))
            .unwrap(),
        1,
        "the late one is new to the next digest"
    );
    assert_eq!(
        w.users
            .queue_admin_digest(t0 + Duration::minutes(22))
            .unwrap(),
        0,
        "nobody new since"
    );
    let digests: Vec<DueMail> = w
        .mails_at(t0 + Duration::minutes(23))
        .into_iter()
        .filter(|m| m.kind == MailKind::AdminDigest)
        .collect();
    assert_eq!(digests.len(), 2, "{digests:#?}");
    assert_eq!(
        digests[0].subject,
        "ann@example.com is waiting for approval"
    );
    assert_eq!(
        digests[1].subject,
        "late@example.com is waiting for approval"
    );
    assert!(digests[1].body.contains("2 in all wait for approval"));
}

/// A sole dispatcher's turns (SQLite's, holding the outbox's lock): due deliveries are
/// read oldest first, leaving out those in flight, with no lease written (a leased claim
/// still finds them); finished attempts are recorded; the pending deliveries of an
/// endpoint turned off fail at a turn that has nothing else to write.
#[test]
fn a_sole_dispatchers_turns_read_record_and_fail_what_an_endpoint_turned_off_had() {
    let w = world(None);
    let hook = w.subscribe(&["user.registered"]);
    for who in ["ann@example.com", "bob@example.com", "cat@example.com"] {
        register(&w.users, who);
    }
    let lease = Duration::minutes(1);
    let turn = |done: &[(i64, Attempt)], limit: u64, in_flight: &[i64]| {
        w.users
            .dispatch_turn(
                done,
                &[],
                gatehouse_domain::now(),
                lease,
                lease,
                limit,
                false,
                Claiming::Sole { in_flight },
            )
            .unwrap()
            .0
    };
    let ids = |due: &[DueDelivery]| due.iter().map(|d| d.id).collect::<Vec<_>>();
    let first = turn(&[], 2, &[]);
    assert_eq!(first.len(), 2);
    assert_eq!(
        body(&first[0])["data"]["user"]["email"],
        "ann@example.com",
        "oldest first"
    );
    let taken = ids(&first);
    let rest = turn(&[], 16, &taken);
    assert_eq!(rest.len(), 1);
    assert_eq!(body(&rest[0])["data"]["user"]["email"], "cat@example.com");
    let delivered = |id: i64| {
        (
            id,
            Attempt {
                at: gatehouse_domain::now(),
                status_code: Some(200),
                error: None,
                next: AttemptNext::Delivered,
            },
        )
    };
    let all: Vec<i64> = taken.iter().copied().chain(ids(&rest)).collect();
    assert!(turn(&[delivered(taken[0]), delivered(taken[1])], 16, &all).is_empty());
    let log = |w: &World| {
        w.users
            .webhook_deliveries(Actor::User(w.admin.id), hook, &PageQuery::default())
            .unwrap()
            .items
    };
    let statuses: Vec<_> = log(&w).iter().map(|d| d.status).collect();
    assert_eq!(
        statuses,
        [
            DeliveryStatus::Pending,
            DeliveryStatus::Delivered,
            DeliveryStatus::Delivered
        ]
    );
    // Reading wrote no lease: a leased claim takes the one left.
    assert_eq!(ids(&w.due()), ids(&rest));

    w.users
        .update_webhook(
            Actor::User(w.admin.id),
            hook,
            &WebhookChanges {
                active: Some(false),
                ..WebhookChanges::default()
            },
            &Origin::default(),
        )
        .unwrap();
    assert!(turn(&[], 16, &[]).is_empty());
    let left = &log(&w)[0];
    assert_eq!(left.status, DeliveryStatus::Failed);
    assert_eq!(
        left.last_error.as_deref(),
        Some("the endpoint was disabled")
    );
}
