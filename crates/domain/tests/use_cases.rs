//! The use cases over the in-memory store, with a fast fake hasher and real HS256 tokens.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests panic to fail

use std::sync::Arc;

use gatehouse_domain::testing::{CurrentUserBlocking as _, InMemoryStore, PlainHasher};
use gatehouse_domain::{
    Actor, AuditQuery, Email, Error, Hs256Tokens, JwtSecret, LastAdminChange, NewUserRequest,
    Origin, Password, TokenService, TokenTtl, User, UserChanges, UserId, UserKey, UserQuery,
    UserService, UserStatus,
};

struct World {
    users: UserService,
    tokens: Arc<Hs256Tokens>,
}

fn world() -> World {
    let secret = JwtSecret::new(vec![b's'; 32]).unwrap();
    let tokens = Arc::new(Hs256Tokens::new(&secret, TokenTtl::DEFAULT).unwrap());
    let users = UserService::new(
        Arc::new(InMemoryStore::new()),
        Arc::new(PlainHasher),
        tokens.clone(),
    );
    World { users, tokens }
}

fn email(raw: &str) -> Email {
    Email::parse(raw).unwrap()
}

fn password(raw: &str) -> Password {
    Password::parse(raw).unwrap()
}

impl World {
    fn register(&self, who: &str) -> User {
        self.users
            .register(email(who), &password("tr0mbone-kettle"), &Origin::default())
            .unwrap()
    }

    fn change(&self, actor: &User, target: &User, changes: UserChanges) -> Result<User, Error> {
        self.users.update_user(
            Actor::User(actor.id),
            target.id,
            &changes,
            &Origin::default(),
        )
    }

    fn approve(&self, actor: &User, target: &User) -> User {
        self.change(actor, target, status(UserStatus::Approved))
            .unwrap()
    }

    fn token(&self, who: &str) -> String {
        self.users
            .login(who, "tr0mbone-kettle", &Origin::default())
            .unwrap()
            .access
            .token
    }
}

fn status(status: UserStatus) -> UserChanges {
    UserChanges {
        status: Some(status),
        ..UserChanges::default()
    }
}

fn admin_flag(is_admin: bool) -> UserChanges {
    UserChanges {
        is_admin: Some(is_admin),
        ..UserChanges::default()
    }
}

fn last_admin(result: Result<impl std::fmt::Debug, Error>) -> LastAdminChange {
    match result {
        Err(Error::LastAdmin(change)) => change,
        other => panic!("expected a last-admin refusal, got {other:?}"),
    }
}

#[test]
fn first_user_is_an_approved_admin_and_the_rest_wait() {
    let w = world();
    let admin = w.register("admin@example.com");
    assert!(admin.is_admin);
    assert_eq!(admin.status, UserStatus::Approved);
    assert_eq!(admin.approved_at, Some(admin.created_at));
    assert_eq!(admin.approved_by, None);
    let bob = w.register("bob@example.com");
    assert!(!bob.is_admin);
    assert_eq!(bob.status, UserStatus::Pending);
    assert_eq!(bob.approved_at, None);
}

#[test]
fn registering_a_taken_email_is_refused() {
    let w = world();
    w.register("ada@example.com");
    let again = w.users.register(
        email("  ADA@example.com "),
        &password("other-password"),
        &Origin::default(),
    );
    assert!(matches!(again, Err(Error::EmailTaken)));
}

#[test]
fn login_checks_password_before_status() {
    let w = world();
    let admin = w.register("admin@example.com");
    let bob = w.register("bob@example.com");
    assert!(matches!(
        w.users
            .login("bob@example.com", "wrong-password", &Origin::default()),
        Err(Error::InvalidCredentials)
    ));
    assert!(matches!(
        w.users
            .login("bob@example.com", "tr0mbone-kettle", &Origin::default()),
        Err(Error::AccountPending)
    ));
    w.approve(&admin, &bob);
    assert!(w
        .users
        .login("BOB@example.com ", "tr0mbone-kettle", &Origin::default())
        .is_ok());
    w.change(&admin, &bob, status(UserStatus::Disabled))
        .unwrap();
    assert!(matches!(
        w.users
            .login("bob@example.com", "wrong-password", &Origin::default()),
        Err(Error::InvalidCredentials)
    ));
    assert!(matches!(
        w.users
            .login("bob@example.com", "tr0mbone-kettle", &Origin::default()),
        Err(Error::AccountDisabled)
    ));
    for (who, pw) in [
        ("nobody@example.com", "tr0mbone-kettle"),
        ("not an email", "tr0mbone-kettle"),
        ("", ""),
    ] {
        assert!(
            matches!(
                w.users.login(who, pw, &Origin::default()),
                Err(Error::InvalidCredentials)
            ),
            "{who}"
        );
    }
}

#[test]
fn tokens_identify_their_user_until_something_changes() {
    let w = world();
    let admin = w.register("admin@example.com");
    let bob = w.register("bob@example.com");
    w.approve(&admin, &bob);
    let token = w.token("bob@example.com");
    assert_eq!(
        w.users.current_user_blocking(&token).unwrap().user.id,
        bob.id
    );

    // Disabled: the token stops working at once, and stays dead when re-enabled; so does
    // one from before a return to pending (hardening round 2).
    w.change(&admin, &bob, status(UserStatus::Disabled))
        .unwrap();
    assert!(matches!(
        w.users.current_user_blocking(&token),
        Err(Error::Unauthenticated)
    ));
    w.approve(&admin, &bob);
    assert!(matches!(
        w.users.current_user_blocking(&token),
        Err(Error::Unauthenticated)
    ));
    let token = w.token("bob@example.com");
    w.change(&admin, &bob, status(UserStatus::Pending)).unwrap();
    w.approve(&admin, &bob);
    assert!(matches!(
        w.users.current_user_blocking(&token),
        Err(Error::Unauthenticated)
    ));
    let token = w.token("bob@example.com");
    assert!(w.users.current_user_blocking(&token).is_ok());

    // A password reset revokes every earlier token for good.
    w.users
        .reset_password(
            Actor::User(admin.id),
            bob.id,
            &password("brand-new-pass"),
            &Origin::default(),
        )
        .unwrap();
    assert!(matches!(
        w.users.current_user_blocking(&token),
        Err(Error::Unauthenticated)
    ));
    assert!(matches!(
        w.users
            .login("bob@example.com", "tr0mbone-kettle", &Origin::default()),
        Err(Error::InvalidCredentials)
    ));
    let fresh = w
        .users
        .login("bob@example.com", "brand-new-pass", &Origin::default())
        .unwrap();
    assert!(w.users.current_user_blocking(&fresh.access.token).is_ok());

    // Deleted: gone.
    w.users
        .delete_user(Actor::User(admin.id), bob.id, &Origin::default())
        .unwrap();
    assert!(matches!(
        w.users.current_user_blocking(&fresh.access.token),
        Err(Error::Unauthenticated)
    ));
    assert!(matches!(
        w.users.current_user_blocking("garbage"),
        Err(Error::Unauthenticated)
    ));
    // A token for an id that never existed.
    let ghost = User {
        id: UserId::new(999).unwrap(),
        ..admin.clone()
    };
    let ghost_token = w.tokens.issue(&ghost, 1).unwrap().token;
    assert!(matches!(
        w.users.current_user_blocking(&ghost_token),
        Err(Error::Unauthenticated)
    ));
}

#[test]
fn approval_records_when_and_by_whom_once() {
    let w = world();
    let admin = w.register("admin@example.com");
    let bob = w.register("bob@example.com");
    let approved = w.approve(&admin, &bob);
    assert_eq!(approved.approved_by, Some(admin.id));
    let at = approved.approved_at.unwrap();
    w.change(&admin, &bob, status(UserStatus::Disabled))
        .unwrap();
    let again = w.approve(&admin, &bob);
    assert_eq!(again.approved_at, Some(at));
}

#[test]
fn only_active_admins_administer() {
    let w = world();
    let admin = w.register("admin@example.com");
    let bob = w.register("bob@example.com");
    let carol = w.register("carol@example.com");
    assert!(matches!(
        w.change(&bob, &carol, status(UserStatus::Approved)),
        Err(Error::Unauthenticated)
    ));
    w.approve(&admin, &bob);
    let bob_changes = w.change(&bob, &carol, status(UserStatus::Approved));
    assert!(matches!(bob_changes, Err(Error::AdminRequired)));
    assert!(matches!(
        w.users
            .list_users(Actor::User(bob.id), &UserQuery::default()),
        Err(Error::AdminRequired)
    ));
    assert!(matches!(
        w.users.pending_count(Actor::User(bob.id)),
        Err(Error::AdminRequired)
    ));
    assert!(matches!(
        w.users
            .delete_user(Actor::User(bob.id), carol.id, &Origin::default()),
        Err(Error::AdminRequired)
    ));
    assert!(matches!(
        w.users.reset_password(
            Actor::User(bob.id),
            carol.id,
            &password("whatever123"),
            &Origin::default()
        ),
        Err(Error::AdminRequired)
    ));
    assert_eq!(w.users.pending_count(Actor::User(admin.id)).unwrap(), 1);
    assert_eq!(w.users.pending_count(Actor::Operator).unwrap(), 1);
}

#[test]
fn the_last_active_admin_is_protected_on_every_path() {
    let w = world();
    let admin = w.register("admin@example.com");
    assert_eq!(
        last_admin(w.change(&admin, &admin, admin_flag(false))),
        LastAdminChange::Demote
    );
    assert_eq!(
        last_admin(w.change(&admin, &admin, status(UserStatus::Disabled))),
        LastAdminChange::Deactivate
    );
    assert_eq!(
        last_admin(w.change(&admin, &admin, status(UserStatus::Pending))),
        LastAdminChange::Deactivate
    );
    assert_eq!(
        last_admin(
            w.users
                .delete_user(Actor::User(admin.id), admin.id, &Origin::default())
        ),
        LastAdminChange::Delete
    );
    // The operator is bound by the rule too.
    assert_eq!(
        last_admin(w.users.update_user(
            Actor::Operator,
            admin.id,
            &admin_flag(false),
            &Origin::default()
        )),
        LastAdminChange::Demote
    );
    assert_eq!(
        last_admin(
            w.users
                .delete_user(Actor::Operator, admin.id, &Origin::default())
        ),
        LastAdminChange::Delete
    );

    // A second admin who is still pending does not count.
    let bob = w.register("bob@example.com");
    w.change(&admin, &bob, admin_flag(true)).unwrap();
    assert_eq!(
        last_admin(w.change(&admin, &admin, admin_flag(false))),
        LastAdminChange::Demote
    );
    // Once approved, either may step down, but not both.
    w.approve(&admin, &bob);
    w.change(&admin, &admin, admin_flag(false)).unwrap();
    assert_eq!(
        last_admin(w.change(&bob, &bob, status(UserStatus::Disabled))),
        LastAdminChange::Deactivate
    );
    let unchanged = w
        .users
        .current_user_blocking(&w.token("bob@example.com"))
        .unwrap()
        .user;
    assert!(unchanged.is_active_admin());
}

#[test]
fn admins_may_change_themselves_while_another_admin_remains() {
    let w = world();
    let admin = w.register("admin@example.com");
    let bob = w.register("bob@example.com");
    w.approve(&admin, &bob);
    w.change(&admin, &bob, admin_flag(true)).unwrap();
    w.users
        .delete_user(Actor::User(admin.id), admin.id, &Origin::default())
        .unwrap();
    let bob_now = w
        .users
        .current_user_blocking(&w.token("bob@example.com"))
        .unwrap()
        .user;
    assert_eq!(bob_now.approved_by, None, "the approver is gone");
    assert!(matches!(
        w.users
            .delete_user(Actor::User(admin.id), bob.id, &Origin::default()),
        Err(Error::Unauthenticated)
    ));
}

#[test]
fn updates_change_email_and_refuse_taken_ones() {
    let w = world();
    let admin = w.register("admin@example.com");
    let bob = w.register("bob@example.com");
    let changes = UserChanges {
        email: Some(email("Robert@Example.com")),
        ..UserChanges::default()
    };
    assert_eq!(
        w.change(&admin, &bob, changes).unwrap().email.as_str(),
        "robert@example.com"
    );
    let taken = UserChanges {
        email: Some(email("admin@example.com")),
        ..UserChanges::default()
    };
    assert!(matches!(
        w.change(&admin, &bob, taken),
        Err(Error::EmailTaken)
    ));
    let same = UserChanges {
        email: Some(email("robert@example.com")),
        ..UserChanges::default()
    };
    assert!(w.change(&admin, &bob, same).is_ok());
    assert!(w.change(&admin, &bob, UserChanges::default()).is_ok());
}

#[test]
fn look_alike_emails_are_taken_on_every_path() {
    let w = world();
    let admin = w.register("admin@example.com");
    let register = |raw: &str| {
        w.users
            .register(email(raw), &password("tr0mbone-kettle"), &Origin::default())
    };
    // Fullwidth letters are the same address after NFKC; ASCII look-alikes (rn for m, 1
    // for l) and a whole-script Cyrillic label share a skeleton with the address taken.
    for look_alike in [
        "\u{ff41}\u{ff44}\u{ff4d}\u{ff49}\u{ff4e}@example.com",
        "adrnin@example.com",
        "admin@examp1e.com",
    ] {
        assert!(
            matches!(register(look_alike), Err(Error::EmailTaken)),
            "{look_alike}"
        );
    }
    let coca = w.register("user@coca.com");
    assert!(matches!(
        register("user@\u{441}\u{43e}\u{441}\u{430}.com"),
        Err(Error::EmailTaken)
    ));
    // An admin's or the operator's creation is refused alike.
    assert!(matches!(
        w.users.create_user(
            Actor::Operator,
            new_user("user@coca.corn", false, UserStatus::Approved),
            &Origin::default(),
        ),
        Err(Error::EmailTaken)
    ));
    // An email change may not take another's look-alike, but may move to one's own.
    let to = |raw: &str| UserChanges {
        email: Some(email(raw)),
        ..UserChanges::default()
    };
    assert!(matches!(
        w.change(&admin, &coca, to("adrnin@example.com")),
        Err(Error::EmailTaken)
    ));
    let moved = w.change(&admin, &coca, to("user@coca.corn")).unwrap();
    assert_eq!(moved.email.as_str(), "user@coca.corn");
    // Nothing was created on the way.
    let all = w
        .users
        .list_users(Actor::Operator, &UserQuery::default())
        .unwrap();
    assert_eq!(all.total, 2);
}

#[test]
fn a_fullwidth_login_name_finds_the_normalised_account() {
    let w = world();
    w.register("admin@example.com");
    let fullwidth = "\u{ff41}\u{ff44}\u{ff4d}\u{ff49}\u{ff4e}\u{ff20}example.com";
    let token = w.token(fullwidth);
    let session = w.users.current_user_blocking(&token).unwrap();
    assert_eq!(session.user.email.as_str(), "admin@example.com");
    // A mixed-script name is no account's: a wrong login like any other.
    assert!(matches!(
        w.users.login(
            "admin@ex\u{430}mple.com",
            "tr0mbone-kettle",
            &Origin::default()
        ),
        Err(Error::InvalidCredentials)
    ));
}

#[test]
fn unknown_targets_are_not_found() {
    let w = world();
    let admin = w.register("admin@example.com");
    let ghost = UserId::new(4242).unwrap();
    let actor = Actor::User(admin.id);
    assert!(matches!(
        w.users
            .update_user(actor, ghost, &UserChanges::default(), &Origin::default()),
        Err(Error::UserNotFound)
    ));
    assert!(matches!(
        w.users.delete_user(actor, ghost, &Origin::default()),
        Err(Error::UserNotFound)
    ));
    assert!(matches!(
        w.users.reset_password(
            actor,
            ghost,
            &password("tr0mbone-kettle"),
            &Origin::default()
        ),
        Err(Error::UserNotFound)
    ));
}

fn new_user(who: &str, is_admin: bool, status: UserStatus) -> NewUserRequest {
    NewUserRequest {
        email: email(who),
        password: password("tr0mbone-kettle"),
        is_admin,
        status,
    }
}

#[test]
fn admins_and_the_operator_create_users_as_asked() {
    let w = world();
    let admin = w.register("admin@example.com");
    let cli = Origin {
        address: None,
        note: Some("cli".into()),
        user_agent: None,
    };
    let made = w
        .users
        .create_user(
            Actor::User(admin.id),
            new_user("bob@example.com", false, UserStatus::Approved),
            &Origin::default(),
        )
        .unwrap();
    assert_eq!((made.is_admin, made.status), (false, UserStatus::Approved));
    assert_eq!(made.approved_by, Some(admin.id));
    assert!(made.approved_at.is_some());
    // Created users log in at once.
    w.token("bob@example.com");

    let pending = w
        .users
        .create_user(
            Actor::Operator,
            new_user("carol@example.com", true, UserStatus::Pending),
            &cli,
        )
        .unwrap();
    assert_eq!(
        (pending.is_admin, pending.status),
        (true, UserStatus::Pending)
    );
    assert_eq!((pending.approved_at, pending.approved_by), (None, None));

    // A non-admin may not; a taken email is refused; nothing changes either way.
    assert!(matches!(
        w.users.create_user(
            Actor::User(made.id),
            new_user("dave@example.com", false, UserStatus::Approved),
            &Origin::default(),
        ),
        Err(Error::AdminRequired)
    ));
    assert!(matches!(
        w.users.create_user(
            Actor::Operator,
            new_user("BOB@example.com", false, UserStatus::Approved),
            &cli,
        ),
        Err(Error::EmailTaken)
    ));
    let all = w
        .users
        .list_users(Actor::Operator, &UserQuery::default())
        .unwrap();
    assert_eq!(all.total, 3);

    // The audit log names the creator: the admin, or the command line.
    let audit = w
        .users
        .list_audit(Actor::Operator, &AuditQuery::default())
        .unwrap();
    let created: Vec<_> = audit
        .items
        .iter()
        .filter(|e| e.entry.action.as_str() == "user_created")
        .map(|e| (e.entry.actor_id, e.entry.target_id, e.entry.detail.clone()))
        .collect();
    assert_eq!(
        created,
        vec![
            (None, Some(pending.id), Some("cli: pending, admin".into())),
            (Some(admin.id), Some(made.id), Some("approved".into())),
        ]
    );
}

#[test]
fn the_first_user_created_is_an_approved_admin_whatever_was_asked() {
    let w = world();
    let first = w
        .users
        .create_user(
            Actor::Operator,
            new_user("first@example.com", false, UserStatus::Pending),
            &Origin::default(),
        )
        .unwrap();
    assert_eq!((first.is_admin, first.status), (true, UserStatus::Approved));
    // And registration afterwards is no longer the first.
    let next = w.register("next@example.com");
    assert_eq!((next.is_admin, next.status), (false, UserStatus::Pending));
}

#[test]
fn users_are_found_by_id_or_email() {
    let w = world();
    let admin = w.register("admin@example.com");
    let bob = w.register("bob@example.com");
    let by_id: UserKey = bob.id.get().to_string().parse().unwrap();
    let by_email: UserKey = " Bob@Example.com".trim().parse().unwrap();
    assert_eq!(w.users.find_user(Actor::Operator, &by_id).unwrap(), bob);
    assert_eq!(
        w.users.find_user(Actor::User(admin.id), &by_email).unwrap(),
        bob
    );
    assert!(matches!(
        w.users.find_user(Actor::Operator, &"999".parse().unwrap()),
        Err(Error::UserNotFound)
    ));
    assert!(matches!(
        w.users.find_user(Actor::User(bob.id), &by_id),
        Err(Error::Unauthenticated | Error::AdminRequired)
    ));
    for bad in ["", "0", "not an email", "-3"] {
        assert!(bad.parse::<UserKey>().is_err(), "{bad:?}");
    }
}

#[test]
fn listing_filters_and_pages() {
    let w = world();
    let admin = w.register("admin@example.com");
    for name in ["ann", "ben", "cy"] {
        w.register(&format!("{name}@example.com"));
    }
    let all = w
        .users
        .list_users(Actor::User(admin.id), &UserQuery::default())
        .unwrap();
    assert_eq!(all.total, 4);
    assert_eq!(all.items.first().unwrap().email.as_str(), "cy@example.com");
    let query = UserQuery {
        status: Some(UserStatus::Pending),
        limit: Some(1),
        offset: 1,
        ..UserQuery::default()
    };
    let page = w.users.list_users(Actor::User(admin.id), &query).unwrap();
    assert_eq!(page.total, 3);
    assert_eq!(page.items.len(), 1);
    assert_eq!(page.items[0].email.as_str(), "ben@example.com");
}

mod security {
    use super::*;
    use gatehouse_domain::{AuditAction, AuditQuery, ThrottlePolicy};

    fn origin() -> Origin {
        Origin::address("198.51.100.7")
    }

    #[test]
    fn logout_revokes_only_the_presented_token() {
        let w = world();
        w.register("admin@example.com");
        let first = w.token("admin@example.com");
        let second = w.token("admin@example.com");
        let session = w.users.current_user_blocking(&first).unwrap();
        w.users.logout(&session, &origin()).unwrap();
        assert!(matches!(
            w.users.current_user_blocking(&first),
            Err(Error::Unauthenticated)
        ));
        assert!(w.users.current_user_blocking(&second).is_ok());
    }

    #[test]
    fn changing_ones_password_revokes_older_tokens_and_returns_a_fresh_one() {
        let w = world();
        w.register("admin@example.com");
        let old = w.token("admin@example.com");
        let session = w.users.current_user_blocking(&old).unwrap();
        let wrong = w.users.change_password(
            &session,
            "not it at all",
            &password("new-passphrase-1"),
            &origin(),
        );
        assert!(matches!(wrong, Err(Error::WrongCurrentPassword)));
        assert!(
            w.users.current_user_blocking(&old).is_ok(),
            "a refused change changes nothing"
        );
        let fresh = w
            .users
            .change_password(
                &session,
                "tr0mbone-kettle",
                &password("new-passphrase-1"),
                &origin(),
            )
            .unwrap();
        assert!(matches!(
            w.users.current_user_blocking(&old),
            Err(Error::Unauthenticated)
        ));
        assert!(w.users.current_user_blocking(&fresh.access.token).is_ok());
        assert!(w
            .users
            .login("admin@example.com", "new-passphrase-1", &origin())
            .is_ok());
    }

    #[test]
    fn five_failures_lock_the_account_and_a_success_resets_it() {
        let w = world();
        w.register("admin@example.com");
        for _ in 0..5 {
            let r = w
                .users
                .login("admin@example.com", "wrong guess!", &origin());
            assert!(matches!(r, Err(Error::InvalidCredentials)), "{r:?}");
        }
        let locked = w
            .users
            .login("admin@example.com", "tr0mbone-kettle", &origin());
        assert!(
            matches!(locked, Err(Error::Throttled { retry_after: 1 })),
            "{locked:?}"
        );
        // Unknown accounts are throttled the same way: nothing to learn from a 429.
        for _ in 0..5 {
            let _ = w
                .users
                .login("ghost@example.com", "wrong guess!", &origin());
        }
        assert!(matches!(
            w.users
                .login("ghost@example.com", "wrong guess!", &origin()),
            Err(Error::Throttled { .. })
        ));
        std::thread::sleep(std::time::Duration::from_millis(1100));
        assert!(w
            .users
            .login("admin@example.com", "tr0mbone-kettle", &origin())
            .is_ok());
        for _ in 0..4 {
            let _ = w
                .users
                .login("admin@example.com", "wrong guess!", &origin());
        }
        assert!(
            w.users
                .login("admin@example.com", "tr0mbone-kettle", &origin())
                .is_ok(),
            "the success cleared the earlier failures"
        );
    }

    #[test]
    fn an_address_has_a_budget_across_accounts() {
        let secret = JwtSecret::new(vec![b's'; 32]).unwrap();
        let tokens = Arc::new(Hs256Tokens::new(&secret, TokenTtl::DEFAULT).unwrap());
        let users = UserService::new(
            Arc::new(gatehouse_domain::testing::InMemoryStore::new()),
            Arc::new(PlainHasher),
            tokens,
        )
        .with_throttle(ThrottlePolicy {
            max_failures_per_address: 3,
            ..ThrottlePolicy::default()
        });
        for i in 0..3 {
            let r = users.login(&format!("u{i}@example.com"), "wrong guess!", &origin());
            assert!(matches!(r, Err(Error::InvalidCredentials)));
        }
        let r = users.login("u9@example.com", "wrong guess!", &origin());
        assert!(matches!(r, Err(Error::Throttled { .. })), "{r:?}");
        let elsewhere = users.login(
            "u9@example.com",
            "wrong guess!",
            &Origin::address("203.0.113.1"),
        );
        assert!(matches!(elsewhere, Err(Error::InvalidCredentials)));
    }

    #[test]
    fn registrations_are_limited_per_address() {
        let secret = JwtSecret::new(vec![b's'; 32]).unwrap();
        let tokens = Arc::new(Hs256Tokens::new(&secret, TokenTtl::DEFAULT).unwrap());
        let users = UserService::new(
            Arc::new(gatehouse_domain::testing::InMemoryStore::new()),
            Arc::new(PlainHasher),
            tokens,
        )
        .with_throttle(ThrottlePolicy {
            register_limit_per_hour: 2,
            ..ThrottlePolicy::default()
        });
        for i in 0..2 {
            users
                .register(
                    email(&format!("r{i}@example.com")),
                    &password("tr0mbone-kettle"),
                    &origin(),
                )
                .unwrap();
        }
        let third = users.register(
            email("r2@example.com"),
            &password("tr0mbone-kettle"),
            &origin(),
        );
        assert!(matches!(third, Err(Error::Throttled { retry_after }) if retry_after > 3500));
        assert!(users
            .register(
                email("r3@example.com"),
                &password("tr0mbone-kettle"),
                &Origin::default()
            )
            .is_ok());
    }

    #[test]
    fn a_scripted_session_leaves_its_audit_trail() {
        let w = world();
        let o = origin();
        let admin = w
            .users
            .register(email("admin@example.com"), &password("tr0mbone-kettle"), &o)
            .unwrap();
        let bob = w
            .users
            .register(email("bob@example.com"), &password("tr0mbone-kettle"), &o)
            .unwrap();
        let _ = w.users.login("bob@example.com", "wrong guess!", &o);
        let act = Actor::User(admin.id);
        w.users
            .update_user(act, bob.id, &status(UserStatus::Approved), &o)
            .unwrap();
        w.users
            .update_user(act, bob.id, &admin_flag(true), &o)
            .unwrap();
        w.users
            .update_user(act, bob.id, &admin_flag(false), &o)
            .unwrap();
        w.users
            .update_user(act, bob.id, &status(UserStatus::Disabled), &o)
            .unwrap();
        w.users
            .update_user(act, bob.id, &status(UserStatus::Approved), &o)
            .unwrap();
        let new_email = UserChanges {
            email: Some(email("robert@example.com")),
            ..UserChanges::default()
        };
        w.users.update_user(act, bob.id, &new_email, &o).unwrap();
        w.users
            .reset_password(act, bob.id, &password("fresh-passphrase"), &o)
            .unwrap();
        let token = w
            .users
            .login("robert@example.com", "fresh-passphrase", &o)
            .unwrap()
            .access
            .token;
        let session = w.users.current_user_blocking(&token).unwrap();
        w.users.logout(&session, &o).unwrap();
        w.users.delete_user(act, bob.id, &o).unwrap();

        let trail = w.users.list_audit(act, &AuditQuery::default()).unwrap();
        let actions: Vec<AuditAction> = trail.items.iter().rev().map(|e| e.entry.action).collect();
        use AuditAction::*;
        assert_eq!(
            actions,
            [
                UserRegistered,
                UserRegistered,
                LoginFailed,
                UserApproved,
                UserPromoted,
                UserDemoted,
                UserDisabled,
                UserEnabled,
                UserEmailChanged,
                PasswordReset,
                LoginSucceeded,
                Logout,
                UserDeleted
            ]
        );
        assert!(trail
            .items
            .iter()
            .all(|e| e.entry.address.as_deref() == Some("198.51.100.7")));
        let approved = trail
            .items
            .iter()
            .find(|e| e.entry.action == UserApproved)
            .unwrap();
        assert_eq!(
            (approved.entry.actor_id, approved.entry.target_id),
            (Some(admin.id), Some(bob.id))
        );
        let by_target = w
            .users
            .list_audit(
                act,
                &AuditQuery {
                    target_id: Some(bob.id),
                    ..AuditQuery::default()
                },
            )
            .unwrap();
        assert_eq!(by_target.total, 12);
        assert!(matches!(
            w.users
                .list_audit(Actor::User(bob.id), &AuditQuery::default()),
            Err(Error::Unauthenticated)
        ));
    }

    #[test]
    fn a_password_reset_unlocks_a_locked_account() {
        let w = world();
        let admin = w.register("admin@example.com");
        let bob = w.register("bob@example.com");
        w.approve(&admin, &bob);
        for _ in 0..6 {
            let _ = w.users.login("bob@example.com", "wrong guess!", &origin());
        }
        assert!(matches!(
            w.users
                .login("bob@example.com", "tr0mbone-kettle", &origin()),
            Err(Error::Throttled { .. })
        ));
        w.users
            .reset_password(
                Actor::User(admin.id),
                bob.id,
                &password("fresh-passphrase"),
                &origin(),
            )
            .unwrap();
        assert!(w
            .users
            .login("bob@example.com", "fresh-passphrase", &origin())
            .is_ok());
    }
}

/// A store that answers session lookups later, from a thread of its own (as the SQL
/// stores' batching thread does).
#[derive(Debug)]
struct Deferring(Arc<InMemoryStore>);

impl gatehouse_domain::SessionSource for Deferring {
    fn find_session_user(&self, id: UserId, session_id: i64) -> gatehouse_domain::SessionLookup {
        let (reply, lookup) = gatehouse_domain::ports::session_reply();
        let store = self.0.clone();
        std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(5));
            reply.send(gatehouse_domain::UserStoreExt::read_with(&*store, |repo| {
                repo.find_session_user(id, session_id)
            }));
        });
        lookup
    }
}

impl gatehouse_domain::UserStore for Deferring {
    fn read(&self, work: &mut gatehouse_domain::ports::Work<'_>) -> Result<(), Error> {
        self.0.read(work)
    }

    fn write(&self, work: &mut gatehouse_domain::ports::Work<'_>) -> Result<(), Error> {
        self.0.write(work)
    }

    fn ping(&self) -> Result<(), Error> {
        self.0.ping()
    }
}

#[test]
fn lookups_answered_later_apply_the_same_checks() {
    let secret = JwtSecret::new(vec![b's'; 32]).unwrap();
    let tokens = Arc::new(Hs256Tokens::new(&secret, TokenTtl::DEFAULT).unwrap());
    let w = World {
        users: UserService::new(
            Arc::new(Deferring(Arc::new(InMemoryStore::new()))),
            Arc::new(PlainHasher),
            tokens.clone(),
        ),
        tokens,
    };
    let later = |token: &str| w.users.current_user_blocking(token);
    let admin = w.register("admin@example.com");
    let bob = w.register("bob@example.com");
    w.approve(&admin, &bob);
    let token = w.token("bob@example.com");
    assert_eq!(later(&token).unwrap().user.id, bob.id);
    w.change(&admin, &bob, status(UserStatus::Disabled))
        .unwrap();
    assert!(matches!(later(&token), Err(Error::Unauthenticated)));
    w.approve(&admin, &bob);
    assert!(
        matches!(later(&token), Err(Error::Unauthenticated)),
        "issued before the user was taken out of service"
    );
    let token = w.token("bob@example.com");
    w.users
        .logout(&later(&token).unwrap(), &Origin::default())
        .unwrap();
    assert!(
        matches!(later(&token), Err(Error::Unauthenticated)),
        "revoked"
    );
    assert!(matches!(later("garbage"), Err(Error::Unauthenticated)));
}

fn invitation_request(email_for: Option<&str>) -> gatehouse_domain::ValidInvitationRequest {
    gatehouse_domain::InvitationRequest {
        email: email_for.map(email),
        is_admin: false,
        expires_in: gatehouse_domain::InvitationRequest::DEFAULT_EXPIRES_IN,
        max_uses: 1,
        note: Some("welcome".into()),
    }
    .validate()
    .unwrap()
}

#[test]
fn admins_and_the_operator_create_invitations_and_revoke_them_once() {
    use gatehouse_domain::{AuditAction, InvitationCode, InvitationStatus};

    let w = world();
    let admin = w.register("admin@example.com");
    let (invitation, code) = w
        .users
        .create_invitation(
            Actor::User(admin.id),
            &invitation_request(Some("ann@example.com")),
            &Origin::default(),
        )
        .unwrap();
    assert_eq!(invitation.created_by, Some(admin.id));
    assert_eq!(invitation.email, Some(email("ann@example.com")));
    assert_eq!(invitation.note.as_deref(), Some("welcome"));
    assert_eq!(
        invitation.expires_at - invitation.created_at,
        chrono::Duration::days(7)
    );
    assert_eq!(
        invitation.status(invitation.created_at),
        InvitationStatus::Active
    );
    assert_eq!(code.expose().len(), InvitationCode::LEN);

    // A user who is no admin may not; the operator may, as no one.
    w.users
        .register(
            email("bob@example.com"),
            &password("tr0mbone-kettle"),
            &Origin::default(),
        )
        .unwrap();
    let bob = w
        .users
        .find_user(Actor::Operator, &UserKey::Email(email("bob@example.com")))
        .unwrap();
    let bob = w.approve(&admin, &bob);
    let refused = w.users.create_invitation(
        Actor::User(bob.id),
        &invitation_request(None),
        &Origin::default(),
    );
    assert!(matches!(refused, Err(Error::AdminRequired)), "{refused:?}");
    let (by_operator, other_code) = w
        .users
        .create_invitation(
            Actor::Operator,
            &invitation_request(None),
            &Origin::default(),
        )
        .unwrap();
    assert_eq!(by_operator.created_by, None);
    assert_ne!(code, other_code);

    let revoked = w
        .users
        .revoke_invitation(Actor::User(admin.id), invitation.id, &Origin::default())
        .unwrap();
    assert!(revoked.revoked_at.is_some());
    let again = w
        .users
        .revoke_invitation(Actor::User(admin.id), invitation.id, &Origin::default())
        .unwrap();
    assert_eq!(again.revoked_at, revoked.revoked_at);
    assert!(matches!(
        w.users.revoke_invitation(
            Actor::User(admin.id),
            invitation.id + 100,
            &Origin::default()
        ),
        Err(Error::InvitationNotFound)
    ));
    assert!(matches!(
        w.users
            .revoke_invitation(Actor::User(bob.id), by_operator.id, &Origin::default()),
        Err(Error::AdminRequired)
    ));

    let audit = w
        .users
        .list_audit(Actor::Operator, &AuditQuery::default())
        .unwrap();
    let details: Vec<(AuditAction, Option<String>)> = audit
        .items
        .iter()
        .filter(|e| {
            matches!(
                e.entry.action,
                AuditAction::InvitationCreated | AuditAction::InvitationRevoked
            )
        })
        .map(|e| (e.entry.action, e.entry.detail.clone()))
        .collect();
    assert_eq!(
        details,
        [
            (
                AuditAction::InvitationRevoked,
                Some(format!("invitation {} for ann@example.com", invitation.id))
            ),
            (
                AuditAction::InvitationCreated,
                Some(format!("invitation {}", by_operator.id))
            ),
            (
                AuditAction::InvitationCreated,
                Some(format!("invitation {} for ann@example.com", invitation.id))
            ),
        ]
    );
}

fn world_in(mode: gatehouse_domain::RegistrationMode) -> World {
    let w = world();
    World {
        users: w.users.with_registration_mode(mode),
        tokens: w.tokens,
    }
}

impl World {
    fn invite(&self, admin: &User, for_email: Option<&str>, is_admin: bool) -> String {
        let mut request = invitation_request(for_email).get().clone();
        request.is_admin = is_admin;
        let (_, code) = self
            .users
            .create_invitation(
                Actor::User(admin.id),
                &request.validate().unwrap(),
                &Origin::default(),
            )
            .unwrap();
        code.expose().to_owned()
    }

    fn register_invited(&self, who: &str, code: Option<&str>) -> Result<User, Error> {
        let code = code.map(|c| gatehouse_domain::InvitationCode::presented(c).unwrap());
        self.users.finish_register_invited(
            email(who),
            &self
                .users
                .hash_password(&password("tr0mbone-kettle"))
                .unwrap(),
            code.as_ref(),
            None,
            &Origin::default(),
        )
    }
}

#[test]
fn an_invitation_lets_its_invitee_in_approved_once() {
    use gatehouse_domain::AuditAction;

    let w = world();
    let admin = w.register("admin@example.com");
    let code = w.invite(&admin, None, false);
    let ann = w.register_invited("ann@example.com", Some(&code)).unwrap();
    assert_eq!(ann.status, UserStatus::Approved);
    assert!(!ann.is_admin);
    assert_eq!(ann.approved_by, Some(admin.id));
    assert!(ann.approved_at.is_some());
    // One use: the next registrant gets what any bad code gets, and waits no longer.
    assert!(matches!(
        w.register_invited("bob@example.com", Some(&code)),
        Err(Error::InvalidInvitation)
    ));
    let audit = w
        .users
        .list_audit(Actor::Operator, &AuditQuery::default())
        .unwrap();
    let used: Vec<_> = audit
        .items
        .iter()
        .filter(|e| e.entry.action == AuditAction::InvitationUsed)
        .collect();
    assert_eq!(used.len(), 1);
    assert_eq!(used[0].entry.target_id, Some(ann.id));

    let as_admin = w.invite(&admin, None, true);
    let carol = w
        .register_invited("carol@example.com", Some(&as_admin))
        .unwrap();
    assert!(carol.is_admin);
    assert_eq!(carol.status, UserStatus::Approved);
}

#[test]
fn a_bad_invitation_changes_nothing_and_says_only_that_it_is_invalid() {
    let w = world();
    let admin = w.register("admin@example.com");
    let for_ann = w.invite(&admin, Some("ann@example.com"), false);
    assert!(matches!(
        w.register_invited("bob@example.com", Some(&for_ann)),
        Err(Error::InvalidInvitation)
    ));
    // An unknown code (well formed), and a revoked one.
    let unknown = gatehouse_domain::InvitationCode::generate().unwrap();
    assert!(matches!(
        w.register_invited("bob@example.com", Some(unknown.expose())),
        Err(Error::InvalidInvitation)
    ));
    let revoked_code = w.invite(&admin, None, false);
    let active = gatehouse_domain::InvitationQuery {
        status: Some(gatehouse_domain::InvitationStatus::Active),
        ..Default::default()
    };
    let listed = w
        .users
        .list_invitations(Actor::User(admin.id), &active)
        .unwrap()
        .items
        .into_iter()
        .find(|i| i.email.is_none())
        .unwrap();
    assert!(matches!(
        w.users
            .find_invitation(Actor::User(admin.id), listed.id + 100),
        Err(Error::InvitationNotFound)
    ));
    w.users
        .revoke_invitation(Actor::User(admin.id), listed.id, &Origin::default())
        .unwrap();
    assert!(matches!(
        w.register_invited("bob@example.com", Some(&revoked_code)),
        Err(Error::InvalidInvitation)
    ));
    // A taken email with a good code: the use is not spent.
    assert!(matches!(
        w.register_invited("admin@example.com", Some(&for_ann)),
        Err(Error::InvalidInvitation)
    ));
    let free = w.invite(&admin, None, false);
    assert!(matches!(
        w.register_invited("admin@example.com", Some(&free)),
        Err(Error::EmailTaken)
    ));
    assert!(w.register_invited("dan@example.com", Some(&free)).is_ok());
    assert!(w
        .register_invited("ann@example.com", Some(&for_ann))
        .is_ok());
}

#[test]
fn registration_modes_decide_who_registers_alone() {
    use gatehouse_domain::RegistrationMode;

    for mode in [RegistrationMode::InviteOnly, RegistrationMode::Closed] {
        let w = world_in(mode);
        // The very first user always may: someone must become the admin.
        let admin = w.register_invited("admin@example.com", None).unwrap();
        assert!(admin.is_admin, "{mode:?}");
        assert!(matches!(
            w.register_invited("bob@example.com", None),
            Err(Error::RegistrationClosed)
        ));
        let code = w.invite(&admin, None, false);
        let invited = w.register_invited("carol@example.com", Some(&code));
        match mode {
            RegistrationMode::InviteOnly => {
                assert_eq!(invited.unwrap().status, UserStatus::Approved);
            }
            _ => assert!(matches!(invited, Err(Error::RegistrationClosed))),
        }
    }
    let open = world();
    open.register("admin@example.com");
    let bob = open.register_invited("bob@example.com", None).unwrap();
    assert_eq!(bob.status, UserStatus::Pending);
}
