//! Sessions and refresh tokens, over the in-memory store: rotation, reuse detection, the
//! sessions' ends (logout, the user's own, an admin's, the rules'), expiry and pruning.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests panic to fail

use std::sync::Arc;

use chrono::Duration;
use gatehouse_domain::testing::{CurrentUserBlocking as _, InMemoryStore, PlainHasher};
use gatehouse_domain::{
    Actor, AuditAction, AuditQuery, Email, Error, Hs256Tokens, JwtSecret, Origin, Password,
    SessionPolicy, SessionQuery, SessionTokens, TokenTtl, User, UserChanges, UserService,
    UserStatus, UserStoreExt as _,
};

const PASSWORD: &str = "tr0mbone-kettle";

struct World {
    users: UserService,
    store: Arc<InMemoryStore>,
}

fn world_with(policy: SessionPolicy) -> World {
    let secret = JwtSecret::new(vec![b's'; 32]).unwrap();
    let tokens = Arc::new(Hs256Tokens::new(&secret, TokenTtl::DEFAULT).unwrap());
    let store = Arc::new(InMemoryStore::new());
    let users =
        UserService::new(store.clone(), Arc::new(PlainHasher), tokens).with_session_policy(policy);
    World { users, store }
}

fn world() -> World {
    world_with(SessionPolicy::default())
}

fn origin() -> Origin {
    Origin::address("192.0.2.1").with_user_agent(Some("Tester/2.0\n"))
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

    fn change(&self, admin: &User, user: &User, status: UserStatus) {
        let changes = UserChanges {
            status: Some(status),
            ..UserChanges::default()
        };
        self.users
            .update_user(Actor::User(admin.id), user.id, &changes, &origin())
            .unwrap();
    }

    fn login(&self, who: &str) -> SessionTokens {
        self.users.login(who, PASSWORD, &origin()).unwrap()
    }

    fn works(&self, tokens: &SessionTokens) -> bool {
        self.users
            .current_user_blocking(&tokens.access.token)
            .is_ok()
    }

    fn refresh(&self, tokens: &SessionTokens) -> Result<SessionTokens, Error> {
        self.users.refresh(tokens.refresh_token.expose(), &origin())
    }

    fn actions(&self) -> Vec<AuditAction> {
        self.store
            .read_with(|repo| repo.list_audit(&AuditQuery::default()))
            .unwrap()
            .items
            .into_iter()
            .map(|e| e.entry.action)
            .collect()
    }
}

#[test]
fn a_login_starts_a_session_that_its_tokens_name() {
    let w = world();
    let admin = w.register("admin@example.com");
    let tokens = w.login("admin@example.com");
    let session = w.users.current_user_blocking(&tokens.access.token).unwrap();
    assert_eq!(session.claims.session_id, tokens.session_id);
    assert_eq!(tokens.refresh_expires_in, 30 * 86_400);
    let listed = w
        .users
        .my_sessions(&session, &SessionQuery::default())
        .unwrap();
    assert_eq!(listed.total, 1);
    let stored = &listed.items[0];
    assert_eq!(stored.user_id, admin.id);
    assert_eq!(stored.address.as_deref(), Some("192.0.2.1"));
    assert_eq!(stored.user_agent.as_deref(), Some("Tester/2.0"), "cleaned");
    assert_eq!(stored.expires_at - stored.created_at, Duration::days(90));
}

#[test]
fn refresh_rotates_and_a_replay_ends_the_whole_session() {
    let w = world();
    w.register("admin@example.com");
    let first = w.login("admin@example.com");
    let second = w.refresh(&first).unwrap();
    assert_eq!(second.session_id, first.session_id);
    assert_ne!(second.refresh_token, first.refresh_token);
    assert!(w.works(&second) && w.works(&first));
    let third = w.refresh(&second).unwrap();
    assert!(matches!(w.refresh(&first), Err(Error::InvalidGrant)));
    assert!(!w.works(&third), "the replay ended the session");
    assert!(matches!(w.refresh(&third), Err(Error::InvalidGrant)));
    assert_eq!(
        w.actions()
            .iter()
            .filter(|a| **a == AuditAction::RefreshTokenReused)
            .count(),
        1
    );
    // A replay of an ended session's token is refused and not audited again.
    assert!(matches!(w.refresh(&second), Err(Error::InvalidGrant)));
    assert_eq!(
        w.actions()
            .iter()
            .filter(|a| **a == AuditAction::RefreshTokenReused)
            .count(),
        1
    );
    for junk in ["", "nope", &"x".repeat(300), "a b"] {
        assert!(matches!(
            w.users.refresh(junk, &origin()),
            Err(Error::InvalidGrant)
        ));
    }
}

#[test]
fn a_refresh_for_a_user_out_of_service_is_refused() {
    let w = world();
    let admin = w.register("admin@example.com");
    let ann = w.register("ann@example.com");
    w.change(&admin, &ann, UserStatus::Approved);
    for status in [
        UserStatus::Disabled,
        UserStatus::Pending,
        UserStatus::Rejected,
    ] {
        let tokens = w.login("ann@example.com");
        w.change(&admin, &ann, status);
        assert!(!w.works(&tokens), "{status:?}");
        assert!(matches!(w.refresh(&tokens), Err(Error::InvalidGrant)));
        w.change(&admin, &ann, UserStatus::Approved);
        assert!(
            !w.works(&tokens),
            "{status:?}: approving again brings nothing back"
        );
        assert!(matches!(w.refresh(&tokens), Err(Error::InvalidGrant)));
    }
    let tokens = w.login("ann@example.com");
    w.users
        .reset_password(
            Actor::Operator,
            ann.id,
            &Password::parse("another passphrase").unwrap(),
            &origin(),
        )
        .unwrap();
    assert!(matches!(w.refresh(&tokens), Err(Error::InvalidGrant)));
}

#[test]
fn logout_and_the_users_own_ends() {
    let w = world();
    w.register("admin@example.com");
    let a = w.login("admin@example.com");
    let b = w.login("admin@example.com");
    let c = w.login("admin@example.com");
    let session_a = w.users.current_user_blocking(&a.access.token).unwrap();
    w.users
        .end_my_session(&session_a, b.session_id, &origin())
        .unwrap();
    assert!(!w.works(&b) && w.works(&a) && w.works(&c));
    assert!(matches!(
        w.users.end_my_session(&session_a, b.session_id, &origin()),
        Err(Error::SessionNotFound)
    ));
    assert_eq!(
        w.users.end_other_sessions(&session_a, &origin()).unwrap(),
        1
    );
    assert!(!w.works(&c) && w.works(&a));
    w.users.logout(&session_a, &origin()).unwrap();
    assert!(!w.works(&a));
    assert!(matches!(w.refresh(&a), Err(Error::InvalidGrant)));
    let actions = w.actions();
    for expected in [
        AuditAction::SessionRevoked,
        AuditAction::SessionsRevoked,
        AuditAction::Logout,
    ] {
        assert!(actions.contains(&expected), "{expected:?} in {actions:?}");
    }
}

#[test]
fn nobody_ends_another_users_session_as_their_own() {
    let w = world();
    let admin = w.register("admin@example.com");
    let ann = w.register("ann@example.com");
    w.change(&admin, &ann, UserStatus::Approved);
    let admins = w.login("admin@example.com");
    let anns = w.login("ann@example.com");
    let session = w.users.current_user_blocking(&anns.access.token).unwrap();
    assert!(matches!(
        w.users
            .end_my_session(&session, admins.session_id, &origin()),
        Err(Error::SessionNotFound)
    ));
    assert!(w.works(&admins));
    // An admin signs Ann out everywhere; a non-admin cannot.
    assert!(matches!(
        w.users
            .end_user_sessions(Actor::User(ann.id), admin.id, &origin()),
        Err(Error::AdminRequired)
    ));
    assert_eq!(
        w.users
            .end_user_sessions(Actor::User(admin.id), ann.id, &origin())
            .unwrap(),
        1
    );
    assert!(!w.works(&anns) && w.works(&admins));
    assert!(matches!(
        w.users.user_sessions(
            Actor::User(admin.id),
            gatehouse_domain::UserId::new(999).unwrap(),
            &SessionQuery::default()
        ),
        Err(Error::UserNotFound)
    ));
}

#[test]
fn a_password_change_keeps_only_the_current_session() {
    let w = world();
    w.register("admin@example.com");
    let here = w.login("admin@example.com");
    let there = w.login("admin@example.com");
    let session = w.users.current_user_blocking(&here.access.token).unwrap();
    let fresh = w
        .users
        .change_password(
            &session,
            PASSWORD,
            &Password::parse("a newer passphrase").unwrap(),
            &origin(),
        )
        .unwrap();
    assert_eq!(fresh.session_id, here.session_id);
    assert!(w.works(&fresh));
    assert!(!w.works(&here), "older access tokens end");
    assert!(!w.works(&there));
    assert!(matches!(w.refresh(&there), Err(Error::InvalidGrant)));
    // The superseded refresh token of this session opens nothing and ends nothing.
    assert!(matches!(w.refresh(&here), Err(Error::InvalidGrant)));
    assert!(w.works(&fresh));
    let next = w.refresh(&fresh).unwrap();
    assert!(w.works(&next));
    assert!(!w.actions().contains(&AuditAction::RefreshTokenReused));
}

#[test]
fn sessions_idle_out_and_never_outlive_their_max_age_and_are_pruned() {
    let secs = |s| TokenTtl::from_secs(s).unwrap();
    let w = world_with(SessionPolicy {
        idle: secs(1),
        max_age: secs(3600),
    });
    w.register("admin@example.com");
    let tokens = w.login("admin@example.com");
    assert_eq!(tokens.refresh_expires_in, 1);
    std::thread::sleep(std::time::Duration::from_millis(1100));
    assert!(!w.works(&tokens), "idled out");
    assert!(matches!(w.refresh(&tokens), Err(Error::InvalidGrant)));
    assert_eq!(w.users.prune(gatehouse_domain::now()).unwrap(), 1);

    let w = world_with(SessionPolicy {
        idle: secs(3600),
        max_age: secs(1),
    });
    w.register("admin@example.com");
    let tokens = w.login("admin@example.com");
    assert_eq!(tokens.refresh_expires_in, 1, "capped by the max age");
    std::thread::sleep(std::time::Duration::from_millis(1100));
    assert!(!w.works(&tokens));
    assert!(matches!(w.refresh(&tokens), Err(Error::InvalidGrant)));
}

#[test]
fn deleting_a_user_ends_their_sessions() {
    let w = world();
    let admin = w.register("admin@example.com");
    let ann = w.register("ann@example.com");
    w.change(&admin, &ann, UserStatus::Approved);
    let tokens = w.login("ann@example.com");
    w.users
        .delete_user(Actor::User(admin.id), ann.id, &origin())
        .unwrap();
    assert!(!w.works(&tokens));
    assert!(matches!(w.refresh(&tokens), Err(Error::InvalidGrant)));
}
