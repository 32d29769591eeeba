//! Hardening round 2, over the in-memory store: a password change against a concurrent
//! reset, tokens ended by leaving service, device tokens, coalesced throttling entries,
//! audit retention, and per-address limits for IPv6.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests panic to fail

use std::sync::Arc;

use gatehouse_domain::testing::{CurrentUserBlocking as _, InMemoryStore, PlainHasher};
use gatehouse_domain::{
    Actor, AuditAction, AuditQuery, Email, Error, Hs256Tokens, JwtSecret, Origin, Password,
    ThrottlePolicy, TokenTtl, User, UserChanges, UserService, UserStatus, UserStore,
    UserStoreExt as _,
};

const PASSWORD: &str = "tr0mbone-kettle";

struct World {
    users: UserService,
    store: Arc<InMemoryStore>,
}

fn world() -> World {
    let secret = JwtSecret::new(vec![b's'; 32]).unwrap();
    let tokens = Arc::new(Hs256Tokens::new(&secret, TokenTtl::DEFAULT).unwrap());
    let store = Arc::new(InMemoryStore::new());
    let users = UserService::new(store.clone(), Arc::new(PlainHasher), tokens)
        .with_throttle(ThrottlePolicy::default());
    World { users, store }
}

fn from(address: &str) -> Origin {
    Origin::address(address)
}

impl World {
    fn register(&self, who: &str) -> User {
        self.users
            .register(
                Email::parse(who).unwrap(),
                &Password::parse(PASSWORD).unwrap(),
                &Origin::default(),
            )
            .unwrap()
    }

    fn approved(&self, admin: &User, who: &str) -> User {
        let user = self.register(who);
        self.set_status(admin, &user, UserStatus::Approved)
    }

    fn set_status(&self, admin: &User, user: &User, status: UserStatus) -> User {
        let changes = UserChanges {
            status: Some(status),
            ..UserChanges::default()
        };
        self.users
            .update_user(Actor::User(admin.id), user.id, &changes, &Origin::default())
            .unwrap()
    }

    fn audit(&self, action: AuditAction) -> Vec<gatehouse_domain::AuditEntry> {
        self.users
            .list_audit(
                Actor::Operator,
                &AuditQuery {
                    action: Some(action),
                    ..AuditQuery::default()
                },
            )
            .unwrap()
            .items
    }
}

#[test]
fn an_admin_reset_wins_over_a_password_change_in_progress() {
    let w = world();
    let admin = w.register("admin@example.com");
    let bob = w.approved(&admin, "bob@example.com");
    let token = w
        .users
        .login("bob@example.com", PASSWORD, &Origin::default())
        .unwrap();
    let session = w.users.current_user_blocking(&token.access.token).unwrap();

    // The attacker's change has checked the old password ...
    let change = w
        .users
        .begin_password_change(&session, &Origin::default())
        .unwrap();
    let new = Password::parse("attacker-keeps-it").unwrap();
    let hash = w
        .users
        .check_password_change(&change, PASSWORD, &new)
        .unwrap();
    assert!(hash.is_some());
    // ... when the admin resets the password ...
    w.users
        .reset_password(
            Actor::User(admin.id),
            bob.id,
            &Password::parse("admin-chose-this").unwrap(),
            &Origin::default(),
        )
        .unwrap();
    // ... so the change is refused and the admin's password stands.
    assert!(matches!(
        w.users.finish_password_change(change, hash.as_ref()),
        Err(Error::Unauthenticated)
    ));
    assert!(w
        .users
        .login("bob@example.com", "admin-chose-this", &Origin::default())
        .is_ok());
    assert!(matches!(
        w.users
            .login("bob@example.com", "attacker-keeps-it", &Origin::default()),
        Err(Error::InvalidCredentials)
    ));
    // A change that starts after the reset with the old token is refused at once.
    assert!(matches!(
        w.users
            .change_password(&session, PASSWORD, &new, &Origin::default()),
        Err(Error::Unauthenticated)
    ));
}

#[test]
fn a_password_change_needs_an_approved_user_and_a_live_token() {
    let w = world();
    let admin = w.register("admin@example.com");
    let bob = w.approved(&admin, "bob@example.com");
    let new = Password::parse("a-new-password").unwrap();

    let token = w
        .users
        .login("bob@example.com", PASSWORD, &Origin::default())
        .unwrap();
    let session = w.users.current_user_blocking(&token.access.token).unwrap();
    let change = w
        .users
        .begin_password_change(&session, &Origin::default())
        .unwrap();
    let hash = w
        .users
        .check_password_change(&change, PASSWORD, &new)
        .unwrap();
    w.set_status(&admin, &bob, UserStatus::Disabled);
    assert!(matches!(
        w.users.finish_password_change(change, hash.as_ref()),
        Err(Error::Unauthenticated)
    ));
    w.set_status(&admin, &bob, UserStatus::Approved);

    let token = w
        .users
        .login("bob@example.com", PASSWORD, &Origin::default())
        .unwrap();
    let session = w.users.current_user_blocking(&token.access.token).unwrap();
    w.users.logout(&session, &Origin::default()).unwrap();
    assert!(matches!(
        w.users
            .change_password(&session, PASSWORD, &new, &Origin::default()),
        Err(Error::Unauthenticated)
    ));
    // Nothing changed: the old password still logs in.
    assert!(w
        .users
        .login("bob@example.com", PASSWORD, &Origin::default())
        .is_ok());
}

#[test]
fn a_known_device_is_not_locked_out_by_failures_from_elsewhere() {
    let w = world();
    let admin = w.register("admin@example.com");
    let owner = w
        .users
        .login_on_device("admin@example.com", PASSWORD, None, &from("192.0.2.1"))
        .unwrap();
    let device = owner.device_token.expose().to_owned();
    assert_eq!(device.len(), 64);

    // An attacker holds the account locked with wrong guesses from elsewhere.
    for _ in 0..5 {
        let r = w
            .users
            .login("admin@example.com", "wrong-guess", &from("198.51.100.7"));
        assert!(matches!(r, Err(Error::InvalidCredentials)), "{r:?}");
    }
    assert!(matches!(
        w.users
            .login("admin@example.com", PASSWORD, &from("198.51.100.7")),
        Err(Error::Throttled { .. })
    ));
    // Without its device token even the owner is refused ...
    assert!(matches!(
        w.users
            .login("admin@example.com", PASSWORD, &from("192.0.2.1")),
        Err(Error::Throttled { .. })
    ));
    // ... with it, the owner gets in, and keeps the same device token.
    let again = w
        .users
        .login_on_device(
            "admin@example.com",
            PASSWORD,
            Some(&device),
            &from("192.0.2.1"),
        )
        .unwrap();
    assert_eq!(again.device_token.expose(), device);
    assert_eq!(
        w.users
            .current_user_blocking(&again.tokens.access.token)
            .unwrap()
            .user
            .id,
        admin.id
    );

    // A device's own failures lock that device (and only it).
    for _ in 0..5 {
        let r = w.users.login_on_device(
            "admin@example.com",
            "wrong-guess",
            Some(&device),
            &from("192.0.2.1"),
        );
        assert!(matches!(r, Err(Error::InvalidCredentials)), "{r:?}");
    }
    assert!(matches!(
        w.users.login_on_device(
            "admin@example.com",
            PASSWORD,
            Some(&device),
            &from("192.0.2.1")
        ),
        Err(Error::Throttled { .. })
    ));
}

#[test]
fn a_device_token_counts_only_for_its_own_account() {
    let w = world();
    let admin = w.register("admin@example.com");
    let _bob = w.approved(&admin, "bob@example.com");
    let bobs = w
        .users
        .login_on_device("bob@example.com", PASSWORD, None, &Origin::default())
        .unwrap()
        .device_token;
    for _ in 0..5 {
        let _ = w
            .users
            .login("admin@example.com", "wrong-guess", &Origin::default());
    }
    // Bob's device token is no key to the admin's account: still locked.
    for presented in [Some(bobs.expose()), Some("made-up"), Some(""), None] {
        assert!(
            matches!(
                w.users.login_on_device(
                    "admin@example.com",
                    PASSWORD,
                    presented,
                    &Origin::default()
                ),
                Err(Error::Throttled { .. })
            ),
            "{presented:?}"
        );
    }
    // A failed login hands out no device token; a new one comes with each new device.
    let other = w
        .users
        .login_on_device("bob@example.com", PASSWORD, None, &Origin::default())
        .unwrap()
        .device_token;
    assert_ne!(other, bobs);
}

#[test]
fn refusals_before_the_password_check_are_not_failures() {
    let w = world();
    let _admin = w.register("admin@example.com");
    for _ in 0..4 {
        let _ = w
            .users
            .login("admin@example.com", "wrong-guess", &from("192.0.2.9"));
    }
    // A throttled attempt from a spent address counts nothing on the account.
    let policy = ThrottlePolicy {
        max_failures_per_address: 1,
        ..ThrottlePolicy::default()
    };
    let strict = w.users.clone().with_throttle(policy);
    let _ = strict.login("someone@example.com", "wrong-guess", &from("203.0.113.5"));
    for _ in 0..20 {
        assert!(matches!(
            strict.login("admin@example.com", "wrong-guess", &from("203.0.113.5")),
            Err(Error::Throttled { .. })
        ));
    }
    // Four failures so far: the right password still gets in.
    assert!(w
        .users
        .login("admin@example.com", PASSWORD, &from("192.0.2.9"))
        .is_ok());
}

#[test]
fn repeated_throttled_logins_make_one_audit_entry_with_a_count() {
    let w = world();
    let admin = w.register("admin@example.com");
    for _ in 0..5 {
        let _ = w
            .users
            .login("admin@example.com", "wrong-guess", &from("192.0.2.1"));
    }
    for _ in 0..40 {
        let _ = w
            .users
            .login("admin@example.com", "wrong-guess", &from("192.0.2.1"));
    }
    let throttled = w.audit(AuditAction::LoginThrottled);
    assert_eq!(throttled.len(), 1, "{throttled:?}");
    assert_eq!(throttled[0].entry.target_id, Some(admin.id));
    let detail: serde_json::Value =
        serde_json::from_str(throttled[0].entry.detail.as_deref().unwrap()).unwrap();
    assert_eq!(detail["count"], 40);
    // Another address, or an unknown account, is an entry of its own.
    let _ = w
        .users
        .login("admin@example.com", "wrong-guess", &from("192.0.2.2"));
    let _ = w
        .users
        .login("admin@example.com", "wrong-guess", &from("192.0.2.2"));
    assert_eq!(w.audit(AuditAction::LoginThrottled).len(), 2);
}

#[test]
fn audit_entries_older_than_the_retention_are_pruned() {
    let w = world();
    w.register("admin@example.com");
    let later = gatehouse_domain::now() + chrono::Duration::days(400);
    // Without a retention nothing goes.
    w.users.prune(later).unwrap();
    assert_eq!(w.audit(AuditAction::UserRegistered).len(), 1);
    let kept = w
        .users
        .clone()
        .with_audit_retention(Some(chrono::Duration::days(365)));
    kept.prune(gatehouse_domain::now()).unwrap();
    assert_eq!(w.audit(AuditAction::UserRegistered).len(), 1);
    kept.prune(later).unwrap();
    assert!(w.audit(AuditAction::UserRegistered).is_empty());
}

#[test]
fn device_tokens_unused_for_long_are_forgotten() {
    let w = world();
    w.register("admin@example.com");
    let device = w
        .users
        .login_on_device("admin@example.com", PASSWORD, None, &Origin::default())
        .unwrap()
        .device_token;
    let hash = device.hash();
    let owner = |store: &dyn UserStore| store.read_with(|repo| repo.device_owner(&hash)).unwrap();
    assert!(owner(&*w.store).is_some());
    w.users
        .prune(
            gatehouse_domain::now() + gatehouse_domain::DEVICE_MEMORY - chrono::Duration::days(1),
        )
        .unwrap();
    assert!(owner(&*w.store).is_some());
    w.users
        .prune(
            gatehouse_domain::now() + gatehouse_domain::DEVICE_MEMORY + chrono::Duration::days(1),
        )
        .unwrap();
    assert!(owner(&*w.store).is_none());
}

#[test]
fn ipv6_addresses_share_their_64_and_mapped_ipv4_is_ipv4() {
    let w = world();
    w.register("admin@example.com");
    let strict = w.users.clone().with_throttle(ThrottlePolicy {
        max_failures_per_address: 3,
        ..ThrottlePolicy::default()
    });
    for (i, address) in ["2001:db8:1:2::1", "2001:db8:1:2::2", "2001:db8:1:2:ffff::9"]
        .iter()
        .enumerate()
    {
        let r = strict.login(
            &format!("nobody{i}@example.com"),
            "wrong-guess",
            &from(address),
        );
        assert!(matches!(r, Err(Error::InvalidCredentials)), "{r:?}");
    }
    assert!(matches!(
        strict.login(
            "nobody9@example.com",
            "wrong-guess",
            &from("2001:db8:1:2:abcd::1")
        ),
        Err(Error::Throttled { .. })
    ));
    // The next /64 has its own budget.
    assert!(matches!(
        strict.login(
            "nobody9@example.com",
            "wrong-guess",
            &from("2001:db8:1:3::1")
        ),
        Err(Error::InvalidCredentials)
    ));
    for (i, address) in ["192.0.2.44", "::ffff:192.0.2.44", "192.0.2.44"]
        .iter()
        .enumerate()
    {
        let _ = strict.login(
            &format!("v4-{i}@example.com"),
            "wrong-guess",
            &from(address),
        );
    }
    assert!(matches!(
        strict.login(
            "v4-9@example.com",
            "wrong-guess",
            &from("::ffff:192.0.2.44")
        ),
        Err(Error::Throttled { .. })
    ));
}

#[test]
fn a_counted_attempt_dropped_before_its_check_is_given_back() {
    let w = world();
    w.register("admin@example.com");
    let origin = from("192.0.2.3");
    for _ in 0..4 {
        let _ = w.users.login("admin@example.com", "wrong-guess", &origin);
    }
    // The fifth is counted (it locks the account) but the hashing queue turns it away.
    let fifth = w
        .users
        .begin_login("admin@example.com", None, &origin)
        .unwrap();
    w.users.cancel_login(&fifth).unwrap();
    // Not locked: the right password gets in.
    assert!(w
        .users
        .login("admin@example.com", PASSWORD, &origin)
        .is_ok());

    // A password change given back the same way.
    let token = w
        .users
        .login("admin@example.com", PASSWORD, &origin)
        .unwrap();
    let session = w.users.current_user_blocking(&token.access.token).unwrap();
    for _ in 0..5 {
        let change = w.users.begin_password_change(&session, &origin).unwrap();
        w.users.cancel_password_change(&change).unwrap();
    }
    assert!(w
        .users
        .login("admin@example.com", PASSWORD, &origin)
        .is_ok());
}
