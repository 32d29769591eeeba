//! Count-then-change rules under real concurrency: many threads, one database.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests panic to fail

use std::sync::Arc;
use std::thread;

use gatehouse_domain::testing::{CurrentUserBlocking as _, PlainHasher};
use gatehouse_domain::{
    Actor, Email, Error, Hs256Tokens, JwtSecret, Origin, Password, TokenTtl, User, UserChanges,
    UserQuery, UserService, UserStatus,
};
use gatehouse_storage::testing::{race, TestBackend, TestDatabase};

fn service(db: &TestDatabase) -> UserService {
    let secret = JwtSecret::new(vec![b's'; 32]).expect("secret");
    let tokens = Arc::new(Hs256Tokens::new(&secret, TokenTtl::DEFAULT).expect("tokens"));
    UserService::new(Arc::new((**db).clone()), Arc::new(PlainHasher), tokens)
}

fn all_users(users: &UserService) -> Vec<User> {
    users
        .list_users(Actor::Operator, &UserQuery::default())
        .expect("list")
        .items
}

fn sixteen_concurrent_registrations_on_an_empty_database_make_one_admin(backend: TestBackend) {
    let db = TestDatabase::new(backend);
    let users = service(&db);
    let results = race(16, {
        let users = users.clone();
        move |i| {
            let email = Email::parse(&format!("user{i}@example.com")).expect("email");
            users.register(
                email,
                &Password::parse("tr0mbone-kettle").expect("pw"),
                &Origin::default(),
            )
        }
    });
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    let everyone = all_users(&users);
    assert_eq!(everyone.len(), 16);
    let admins: Vec<_> = everyone.iter().filter(|u| u.is_admin).collect();
    assert_eq!(admins.len(), 1, "{admins:?}");
    assert_eq!(admins[0].status, UserStatus::Approved);
    assert_eq!(
        everyone
            .iter()
            .filter(|u| u.status == UserStatus::Pending)
            .count(),
        15
    );
}

fn eight_concurrent_registrations_of_one_email_make_one_row(backend: TestBackend) {
    let db = TestDatabase::new(backend);
    let users = service(&db);
    let results = race(8, {
        let users = users.clone();
        move |_| {
            let email = Email::parse("same@example.com").expect("email");
            users.register(
                email,
                &Password::parse("tr0mbone-kettle").expect("pw"),
                &Origin::default(),
            )
        }
    });
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1);
    let taken = results
        .iter()
        .filter(|r| matches!(r, Err(Error::EmailTaken)))
        .count();
    assert_eq!(taken, 7, "{results:?}");
    assert_eq!(all_users(&users).len(), 1);
}

fn two_admins_demoting_each_other_at_once_leave_one(backend: TestBackend) {
    let db = TestDatabase::new(backend);
    let users = service(&db);
    let password = Password::parse("tr0mbone-kettle").expect("pw");
    for round in 0..20 {
        let a = users
            .register(
                Email::parse(&format!("a{round}@example.com")).expect("e"),
                &password,
                &Origin::default(),
            )
            .expect("a");
        let b = users
            .register(
                Email::parse(&format!("b{round}@example.com")).expect("e"),
                &password,
                &Origin::default(),
            )
            .expect("b");
        // Start each round with exactly two active admins: a and b.
        for user in all_users(&users) {
            let admin = user.id == a.id || user.id == b.id;
            let changes = UserChanges {
                is_admin: Some(admin),
                status: Some(UserStatus::Approved),
                ..UserChanges::default()
            };
            let _ = users.update_user(Actor::Operator, user.id, &changes, &Origin::default());
        }
        let pair = [(a.id, b.id), (b.id, a.id)];
        let results = race(2, {
            let users = users.clone();
            move |i| {
                let (actor, target) = pair[i];
                let changes = if round % 2 == 0 {
                    UserChanges {
                        is_admin: Some(false),
                        ..UserChanges::default()
                    }
                } else {
                    UserChanges {
                        status: Some(UserStatus::Disabled),
                        ..UserChanges::default()
                    }
                };
                users.update_user(Actor::User(actor), target, &changes, &Origin::default())
            }
        });
        let active = all_users(&users)
            .iter()
            .filter(|u| u.is_active_admin())
            .count();
        assert_eq!(active, 1, "round {round}: {results:?}");
        assert_eq!(
            results.iter().filter(|r| r.is_ok()).count(),
            1,
            "round {round}: {results:?}"
        );
    }
}

/// Hardening round 2, finding 1: a holder of a stolen token who loops password changes
/// must not outlast an admin's reset. The attacker keeps changing the password (each
/// success hands them a fresh token, which they use next) while the admin resets it once;
/// after the reset, the admin's password is the password and the attacker's tokens are
/// dead, however the two interleaved.
fn a_reset_wins_over_password_changes_looping_with_a_stolen_token(backend: TestBackend) {
    let db = TestDatabase::new(backend);
    let users = service(&db);
    let origin = Origin::default();
    let register = |who: &str| {
        users
            .register(
                Email::parse(who).unwrap(),
                &Password::parse("original-password").unwrap(),
                &origin,
            )
            .unwrap()
    };
    let admin = register("admin@example.com");
    let bob = register("bob@example.com");
    users
        .update_user(
            Actor::User(admin.id),
            bob.id,
            &UserChanges {
                status: Some(UserStatus::Approved),
                ..UserChanges::default()
            },
            &origin,
        )
        .unwrap();
    for round in 0..3 {
        let mut token = users
            .login("bob@example.com", "original-password", &origin)
            .or_else(|_| users.login("bob@example.com", "admin-chose-this", &origin))
            .unwrap()
            .access
            .token;
        let mut current = users
            .current_user_blocking(&token)
            .map(|_| {
                if round == 0 {
                    "original-password"
                } else {
                    "admin-chose-this"
                }
            })
            .unwrap()
            .to_owned();
        let reset_done = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let attacker = {
            let (users, reset_done) = (users.clone(), reset_done.clone());
            thread::spawn(move || {
                let mut n = 0;
                // Until well after the reset: every change that starts after it must fail.
                let mut after = 0;
                while after < 5 && n < 2_000 {
                    n += 1;
                    // A real change costs two bcrypt runs (the fake hasher none): without a
                    // pause, PostgreSQL's serializable retries could starve either side.
                    thread::sleep(std::time::Duration::from_millis(2));
                    let was_reset = reset_done.load(std::sync::atomic::Ordering::SeqCst);
                    let Ok(session) = users.current_user_blocking(&token) else {
                        break;
                    };
                    let next = format!("attacker-{n}-pw");
                    match users.change_password(
                        &session,
                        &current,
                        &Password::parse(next.clone()).unwrap(),
                        &Origin::default(),
                    ) {
                        Ok(fresh) => {
                            assert!(!was_reset, "a change that began after the reset won");
                            token = fresh.access.token;
                            current = next;
                        }
                        // A lost serialization race (503 over HTTP) changed nothing.
                        Err(
                            Error::Unauthenticated | Error::WrongCurrentPassword | Error::Conflict,
                        ) => {}
                        Err(e) => panic!("{e:?}"),
                    }
                    if was_reset {
                        after += 1;
                    }
                }
                token
            })
        };
        thread::sleep(std::time::Duration::from_millis(30));
        // The admin retries a lost serialization race, as a client retries its 503.
        let mut tries = 0;
        loop {
            tries += 1;
            match users.reset_password(
                Actor::User(admin.id),
                bob.id,
                &Password::parse("admin-chose-this").unwrap(),
                &origin,
            ) {
                Ok(_) => break,
                Err(Error::Conflict) if tries < 5 => {}
                Err(e) => panic!("{backend:?}: the reset failed: {e:?}"),
            }
        }
        reset_done.store(true, std::sync::atomic::Ordering::SeqCst);
        let attackers_last = attacker.join().expect("attacker");
        assert!(
            matches!(
                users.current_user_blocking(&attackers_last),
                Err(Error::Unauthenticated)
            ),
            "{backend:?} round {round}: the attacker's newest token still works"
        );
        assert!(
            users
                .login("bob@example.com", "admin-chose-this", &origin)
                .is_ok(),
            "{backend:?} round {round}: the admin's password was overwritten"
        );
    }
}

fn concurrent_look_alike_registrations_make_one_account(backend: TestBackend) {
    let db = TestDatabase::new(backend);
    let users = service(&db);
    users
        .register(
            Email::parse("admin@example.com").expect("email"),
            &Password::parse("tr0mbone-kettle").expect("pw"),
            &Origin::default(),
        )
        .expect("the admin");
    // One skeleton, eight spellings: 1 for l, and fullwidth letters (NFKC).
    let results = race(8, {
        let users = users.clone();
        move |i| {
            let local = if i % 2 == 0 { "paypal" } else { "paypa1" };
            let local = if i >= 4 { "ｐａｙｐａｌ" } else { local };
            let domain = if i % 4 < 2 {
                "example.com"
            } else {
                "examp1e.com"
            };
            users.register(
                Email::parse(&format!("{local}@{domain}")).expect("email"),
                &Password::parse("tr0mbone-kettle").expect("pw"),
                &Origin::default(),
            )
        }
    });
    let made: Vec<_> = results.iter().filter(|r| r.is_ok()).collect();
    assert_eq!(made.len(), 1, "{results:?}");
    assert!(
        results
            .iter()
            .filter(|r| r.is_err())
            .all(|r| matches!(r, Err(Error::EmailTaken))),
        "{results:?}"
    );
    assert_eq!(all_users(&users).len(), 2);
}

/// 100 pending users and the admin.
fn hundred_pending(users: &UserService) -> Vec<i64> {
    let password = Password::parse("tr0mbone-kettle").expect("pw");
    let origin = Origin::default();
    users
        .register(
            Email::parse("admin@example.com").expect("email"),
            &password,
            &origin,
        )
        .expect("admin");
    (0..100)
        .map(|i| {
            users
                .register(
                    Email::parse(&format!("p{i}@example.com")).expect("email"),
                    &password,
                    &origin,
                )
                .expect("register")
                .id
                .get()
        })
        .collect()
}

fn statuses(users: &UserService) -> Vec<(i64, UserStatus)> {
    all_users(users)
        .into_iter()
        .map(|u| (u.id.get(), u.status))
        .collect()
}

/// A bulk decision of 100 is all or nothing: an unknown id or a user who is not pending
/// (anywhere in the list, the last one here) changes none of the others; without one,
/// every user is decided, each with an audit entry.
fn a_bulk_decision_of_a_hundred_is_all_or_nothing(backend: TestBackend) {
    use gatehouse_domain::{AuditAction, AuditQuery, BulkIds, Decision};
    let db = TestDatabase::new(backend);
    let users = service(&db);
    let ids = hundred_pending(&users);
    let before = statuses(&users);
    let origin = Origin::default();

    let mut with_unknown = ids[..99].to_vec();
    with_unknown.push(999_999);
    let refused = users.decide(
        Actor::Operator,
        &BulkIds::new(with_unknown).expect("ids"),
        Decision::Approve,
        None,
        &origin,
    );
    assert!(
        matches!(&refused, Err(Error::UsersNotFound(missing)) if missing.len() == 1),
        "{refused:?}"
    );
    assert_eq!(statuses(&users), before, "nothing changed");

    let mut changes = UserChanges {
        status: Some(UserStatus::Approved),
        ..UserChanges::default()
    };
    let last = gatehouse_domain::UserId::new(ids[99]).expect("id");
    users
        .update_user(Actor::Operator, last, &changes, &origin)
        .expect("approve one");
    let before = statuses(&users);
    let refused = users.decide(
        Actor::Operator,
        &BulkIds::new(ids.clone()).expect("ids"),
        Decision::Reject,
        None,
        &origin,
    );
    assert!(
        matches!(&refused, Err(Error::NotPending(them)) if *them == [last]),
        "{refused:?}"
    );
    assert_eq!(statuses(&users), before, "nothing changed");

    changes.status = Some(UserStatus::Pending);
    users
        .update_user(Actor::Operator, last, &changes, &origin)
        .expect("back to pending");
    let decided = users
        .decide(
            Actor::Operator,
            &BulkIds::new(ids.clone()).expect("ids"),
            Decision::Reject,
            None,
            &origin,
        )
        .expect("decide");
    assert_eq!(decided.iter().map(|u| u.id.get()).collect::<Vec<_>>(), ids);
    assert!(decided.iter().all(|u| u.status == UserStatus::Rejected));
    assert_eq!(
        users.pending_count(Actor::Operator).expect("count"),
        0,
        "none left waiting"
    );
    let rejections = users
        .list_audit(
            Actor::Operator,
            &AuditQuery {
                action: Some(AuditAction::UserRejected),
                ..AuditQuery::default()
            },
        )
        .expect("audit");
    assert_eq!(rejections.total, 100);
}

/// Eight admins deciding the same ten pending users at once: one decision goes through,
/// the others find them decided already (`NotPending`) and change nothing.
fn concurrent_bulk_decisions_on_the_same_users_decide_them_once(backend: TestBackend) {
    use gatehouse_domain::{BulkIds, Decision};
    let db = TestDatabase::new(backend);
    let users = service(&db);
    let ids = hundred_pending(&users)[..10].to_vec();
    let results = race(8, {
        let users = users.clone();
        move |i| {
            let decision = if i % 2 == 0 {
                Decision::Approve
            } else {
                Decision::Reject
            };
            users
                .decide(
                    Actor::Operator,
                    &BulkIds::new(ids.clone()).expect("ids"),
                    decision,
                    None,
                    &Origin::default(),
                )
                .map(|decided| decided[0].status)
        }
    });
    let won: Vec<_> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
    assert_eq!(won.len(), 1, "{results:?}");
    assert!(
        results
            .iter()
            .filter(|r| r.is_err())
            .all(|r| matches!(r, Err(Error::NotPending(them)) if them.len() == 10)),
        "{results:?}"
    );
    let decided: Vec<_> = all_users(&users)
        .into_iter()
        .filter(|u| u.status == *won[0])
        .collect();
    assert!(decided.len() >= 10, "all ten went one way");
}

/// Sixteen threads refresh with one token through the use case: exactly one gets the next
/// pair; the others find the token spent (a replay), so the session ends and every pair,
/// the winner's included, stops working; one `refresh_token_reused` entry is written.
/// Then, with a fresh session, refreshes in turn from many threads (one at a time) each
/// succeed.
fn sixteen_concurrent_refreshes_with_one_token_give_one_pair(backend: TestBackend) {
    let db = TestDatabase::new(backend);
    let users = service(&db);
    let password = Password::parse("original-password").unwrap();
    users
        .register(
            Email::parse("admin@example.com").unwrap(),
            &password,
            &Origin::default(),
        )
        .unwrap();
    let login = || {
        users
            .login("admin@example.com", "original-password", &Origin::default())
            .unwrap()
    };
    let tokens = login();
    let presented = tokens.refresh_token.expose().to_owned();
    let outcomes = {
        let users = users.clone();
        race(16, move |_| users.refresh(&presented, &Origin::default()))
    };
    let winners: Vec<_> = outcomes.iter().filter_map(|o| o.as_ref().ok()).collect();
    assert_eq!(winners.len(), 1, "{backend:?}: {outcomes:?}");
    for lost in outcomes.iter().filter(|o| o.is_err()) {
        assert!(
            matches!(lost, Err(Error::InvalidGrant)),
            "{backend:?}: {lost:?}"
        );
    }
    assert!(
        users
            .current_user_blocking(&winners[0].access.token)
            .is_err(),
        "{backend:?}: the replays ended the session"
    );
    let reused = users
        .list_audit(
            Actor::Operator,
            &gatehouse_domain::AuditQuery {
                action: Some(gatehouse_domain::AuditAction::RefreshTokenReused),
                ..gatehouse_domain::AuditQuery::default()
            },
        )
        .unwrap();
    assert_eq!(reused.total, 1, "{backend:?}: one session ended once");
    // Refreshes in turn, each from its own thread: all succeed.
    let mut tokens = login();
    for _ in 0..10 {
        let (users, presented) = (users.clone(), tokens.refresh_token.expose().to_owned());
        tokens = thread::spawn(move || users.refresh(&presented, &Origin::default()))
            .join()
            .unwrap()
            .unwrap();
    }
    assert!(users.current_user_blocking(&tokens.access.token).is_ok());
}

gatehouse_storage::backend_tests!(
    sixteen_concurrent_refreshes_with_one_token_give_one_pair,
    a_bulk_decision_of_a_hundred_is_all_or_nothing,
    concurrent_bulk_decisions_on_the_same_users_decide_them_once,
    sixteen_concurrent_registrations_on_an_empty_database_make_one_admin,
    eight_concurrent_registrations_of_one_email_make_one_row,
    two_admins_demoting_each_other_at_once_leave_one,
    a_reset_wins_over_password_changes_looping_with_a_stolen_token,
    concurrent_look_alike_registrations_make_one_account,
);
