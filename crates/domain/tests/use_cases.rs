//! The use cases over the in-memory store, with a fast fake hasher and real HS256 tokens.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests panic to fail

use std::sync::Arc;

use gatehouse_domain::testing::{InMemoryStore, PlainHasher};
use gatehouse_domain::{
    Actor, Email, Error, Hs256Tokens, JwtSecret, LastAdminChange, Password, TokenService, TokenTtl,
    User, UserChanges, UserId, UserQuery, UserService, UserStatus,
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
            .register(email(who), &password("password123"))
            .unwrap()
    }

    fn change(&self, actor: &User, target: &User, changes: UserChanges) -> Result<User, Error> {
        self.users
            .update_user(Actor::User(actor.id), target.id, &changes)
    }

    fn approve(&self, actor: &User, target: &User) -> User {
        self.change(actor, target, status(UserStatus::Approved))
            .unwrap()
    }

    fn token(&self, who: &str) -> String {
        self.users.login(who, "password123").unwrap().token
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
    let again = w
        .users
        .register(email("  ADA@example.com "), &password("other-password"));
    assert!(matches!(again, Err(Error::EmailTaken)));
}

#[test]
fn login_checks_password_before_status() {
    let w = world();
    let admin = w.register("admin@example.com");
    let bob = w.register("bob@example.com");
    assert!(matches!(
        w.users.login("bob@example.com", "wrong-password"),
        Err(Error::InvalidCredentials)
    ));
    assert!(matches!(
        w.users.login("bob@example.com", "password123"),
        Err(Error::AccountPending)
    ));
    w.approve(&admin, &bob);
    assert!(w.users.login("BOB@example.com ", "password123").is_ok());
    w.change(&admin, &bob, status(UserStatus::Disabled))
        .unwrap();
    assert!(matches!(
        w.users.login("bob@example.com", "wrong-password"),
        Err(Error::InvalidCredentials)
    ));
    assert!(matches!(
        w.users.login("bob@example.com", "password123"),
        Err(Error::AccountDisabled)
    ));
    for (who, pw) in [
        ("nobody@example.com", "password123"),
        ("not an email", "password123"),
        ("", ""),
    ] {
        assert!(
            matches!(w.users.login(who, pw), Err(Error::InvalidCredentials)),
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
    assert_eq!(w.users.current_user(&token).unwrap().id, bob.id);

    // Disabled: the token stops working at once, and works again when re-enabled.
    w.change(&admin, &bob, status(UserStatus::Disabled))
        .unwrap();
    assert!(matches!(
        w.users.current_user(&token),
        Err(Error::Unauthenticated)
    ));
    w.approve(&admin, &bob);
    assert!(w.users.current_user(&token).is_ok());

    // A password reset revokes every earlier token for good.
    w.users
        .reset_password(Actor::User(admin.id), bob.id, &password("brand-new-pass"))
        .unwrap();
    assert!(matches!(
        w.users.current_user(&token),
        Err(Error::Unauthenticated)
    ));
    assert!(matches!(
        w.users.login("bob@example.com", "password123"),
        Err(Error::InvalidCredentials)
    ));
    let fresh = w.users.login("bob@example.com", "brand-new-pass").unwrap();
    assert!(w.users.current_user(&fresh.token).is_ok());

    // Deleted: gone.
    w.users.delete_user(Actor::User(admin.id), bob.id).unwrap();
    assert!(matches!(
        w.users.current_user(&fresh.token),
        Err(Error::Unauthenticated)
    ));
    assert!(matches!(
        w.users.current_user("garbage"),
        Err(Error::Unauthenticated)
    ));
    // A token for an id that never existed.
    let ghost = User {
        id: UserId::new(999).unwrap(),
        ..admin.clone()
    };
    let ghost_token = w.tokens.issue(&ghost).unwrap().token;
    assert!(matches!(
        w.users.current_user(&ghost_token),
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
        w.users.delete_user(Actor::User(bob.id), carol.id),
        Err(Error::AdminRequired)
    ));
    assert!(matches!(
        w.users
            .reset_password(Actor::User(bob.id), carol.id, &password("whatever123")),
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
        last_admin(w.users.delete_user(Actor::User(admin.id), admin.id)),
        LastAdminChange::Delete
    );
    // The operator is bound by the rule too.
    assert_eq!(
        last_admin(
            w.users
                .update_user(Actor::Operator, admin.id, &admin_flag(false))
        ),
        LastAdminChange::Demote
    );
    assert_eq!(
        last_admin(w.users.delete_user(Actor::Operator, admin.id)),
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
    let unchanged = w.users.current_user(&w.token("bob@example.com")).unwrap();
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
        .delete_user(Actor::User(admin.id), admin.id)
        .unwrap();
    let bob_now = w.users.current_user(&w.token("bob@example.com")).unwrap();
    assert_eq!(bob_now.approved_by, None, "the approver is gone");
    assert!(matches!(
        w.users.delete_user(Actor::User(admin.id), bob.id),
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
fn unknown_targets_are_not_found() {
    let w = world();
    let admin = w.register("admin@example.com");
    let ghost = UserId::new(4242).unwrap();
    let actor = Actor::User(admin.id);
    assert!(matches!(
        w.users.update_user(actor, ghost, &UserChanges::default()),
        Err(Error::UserNotFound)
    ));
    assert!(matches!(
        w.users.delete_user(actor, ghost),
        Err(Error::UserNotFound)
    ));
    assert!(matches!(
        w.users
            .reset_password(actor, ghost, &password("password123")),
        Err(Error::UserNotFound)
    ));
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
