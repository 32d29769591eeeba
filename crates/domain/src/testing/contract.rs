//! The repository contract: checks every [`UserStore`] must pass. Storage adapters run them
//! with [`user_store_contract_tests!`](crate::user_store_contract_tests), one `#[test]` each.
//!
//! Each check takes a fresh, empty store and panics with a message on a violation.

use chrono::{DateTime, Duration, Utc};

use crate::{
    Attempt, AttemptNext, AuditAction, AuditEntry, AuditQuery, Counter, CounterScope, Delivery,
    DeliveryStatus, DueDelivery, DueMail, Email, Error, EventFilter, EventType, InvitationCode,
    InvitationQuery, InvitationStatus, Listing, MailKind, NewAuditEntry, NewEvent, NewInvitation,
    NewMail, NewSession, NewUser, NewWebhook, PageQuery, PasswordHash, SessionQuery, SessionState,
    StoredSession, User, UserId, UserQuery, UserStatus, UserStore, UserStoreExt, Webhook,
    WebhookSecret, WebhookUrl,
};

/// Expands to one `#[test]` per contract check, each on a store built by `$make`: an
/// expression evaluated once per test that gives something dereferencing to a store (a
/// `Box`, or a fixture that cleans up after itself).
///
/// Attributes written after `$make` go on every test, above its `#[test]`: for a backend
/// that may be absent, one that reports the tests ignored rather than passed (storage's
/// `#[needs_postgres]`):
///
/// ```text
/// user_store_contract_tests!(TestDatabase::postgres(), #[needs_postgres]);
/// ```
#[macro_export]
macro_rules! user_store_contract_tests {
    (@checks $attrs:tt $make:expr) => {
        $crate::user_store_contract_tests!(@tests $attrs ($make);
            insert_assigns_fresh_positive_ids,
            insert_round_trips_every_field,
            duplicate_email_is_email_taken,
            ids_are_never_reused,
            counts,
            list_is_newest_first_and_filters,
            list_filters_by_role,
            list_pages_and_totals,
            list_substring_is_literal,
            list_substring_follows_changes,
            listings_hand_over_the_total_first_then_each_item,
            listings_stop_at_their_readers_first_error,
            listings_outside_a_transaction_stream_too,
            update_writes_every_field,
            update_refuses_taken_email,
            look_alike_emails_are_found_by_skeleton,
            skeletons_follow_email_changes,
            update_of_missing_user_is_not_found,
            delete_reports_whether_it_deleted,
            deleting_an_approver_clears_approved_by,
            failed_write_rolls_back,
            ping_answers,
            sessions_round_trip_and_end_once,
            session_user_comes_with_its_session,
            session_lookups_see_writes_made_before_them,
            refresh_tokens_are_spent_once,
            a_refresh_token_is_spent_once_among_sixteen_racers,
            racing_writes_keep_each_their_own_outcome,
            sessions_list_live_ones_newest_first_and_end_together,
            counters_round_trip,
            audit_entries_list_newest_first_with_filters,
            audit_survives_deleting_its_users,
            prune_forgets_only_what_is_stale,
            sessions_count_only_for_their_own_user,
            deleting_a_user_deletes_their_sessions,
            device_tokens_belong_to_one_user,
            latest_audit_matches_action_target_address_and_time,
            prune_audit_and_devices_by_age,
            invitations_round_trip_and_are_revoked_once,
            invitation_uses_stop_at_the_limit,
            a_one_use_invitation_admits_one_of_sixteen_racing_registrations,
            invitations_list_newest_first_by_status_at_a_moment,
            webhooks_round_trip,
            events_go_to_active_subscribed_endpoints,
            a_rolled_back_change_leaves_no_event,
            claims_take_due_deliveries_once_per_lease,
            eight_dispatchers_claim_each_delivery_once,
            attempts_are_recorded_and_release_the_claim,
            attempts_recorded_together_as_one_by_one,
            a_sole_dispatcher_reads_due_deliveries_without_a_lease,
            deliveries_go_with_their_endpoint_and_old_settled_ones_are_pruned,
            mails_round_trip_through_a_claim,
            a_rolled_back_change_leaves_no_mail,
            mail_claims_take_due_mails_once_per_lease,
            eight_dispatchers_claim_each_mail_once,
            mail_attempts_are_recorded_and_release_the_claim,
            settings_are_read_written_and_replaced,
            a_code_is_spent_once_with_its_siblings,
            a_code_is_spent_once_among_sixteen_racers,
            wrong_tries_kill_a_code_and_expiry_too,
            codes_are_counted_per_user_purpose_and_hour,
            totp_factors_round_trip_and_confirm_once,
            a_totp_step_is_used_once_among_sixteen_racers,
            recovery_codes_are_spent_once_and_replaced_together,
            challenges_die_spent_wrong_or_expired,
            mfa_goes_with_its_user_and_its_reset,
            passkeys_round_trip_newest_first_and_are_deleted_by_their_owner,
            passkey_registrations_are_found_per_user_and_replaced,
            passkeys_go_with_their_user_and_the_reset,
        );
    };
    (@tests $attrs:tt $make:tt; $($check:ident),+ $(,)?) => {
        $(
            $crate::user_store_contract_tests!(@test $attrs $make $check);
        )+
    };
    (@test [$(#[$attr:meta])*] $make:tt $check:ident) => {
        $(#[$attr])*
        #[test]
        fn $check() {
            let store = $make;
            $crate::testing::contract::$check(&*store);
        }
    };
    ($make:expr $(, #[$attr:meta])* $(,)?) => {
        $crate::user_store_contract_tests!(@checks [$(#[$attr])*] $make);
    };
}

/// A pending, non-admin user with `email` and a placeholder hash, created now (for tests
/// that need a row and nothing particular about it).
pub fn new_user(email: &str) -> NewUser {
    NewUser {
        email: Email::parse(email).expect("test email"),
        password_hash: PasswordHash::new(format!("hash-of-{email}")),
        is_admin: false,
        status: UserStatus::Pending,
        created_at: crate::now(),
        approved_at: None,
        approved_by: None,
        reason: None,
        email_verified: false,
    }
}

fn insert(store: &dyn UserStore, user: NewUser) -> User {
    store
        .write_with(|repo| repo.insert(user.clone()))
        .expect("insert")
}

fn get(store: &dyn UserStore, id: UserId) -> Option<User> {
    store
        .read_with(|repo| repo.find_by_id(id))
        .expect("find_by_id")
}

fn emails(users: &[User]) -> Vec<&str> {
    users.iter().map(|u| u.email.as_str()).collect()
}

/// Inserts get positive, distinct, increasing ids and a token version of 0.
pub fn insert_assigns_fresh_positive_ids(store: &dyn UserStore) {
    let a = insert(store, new_user("a@example.com"));
    let b = insert(store, new_user("b@example.com"));
    assert!(a.id.get() > 0);
    assert!(b.id > a.id, "ids increase: {:?} then {:?}", a.id, b.id);
    assert_eq!(a.token_version, 0);
}

/// Every field written at insert comes back from `find_by_id` and `find_by_email`.
pub fn insert_round_trips_every_field(store: &dyn UserStore) {
    let admin = insert(store, new_user("admin@example.com"));
    let now = crate::now();
    let mut user = new_user("ada@example.com");
    user.is_admin = true;
    user.status = UserStatus::Approved;
    user.created_at = now - Duration::microseconds(1_234_567);
    user.approved_at = Some(now);
    user.approved_by = Some(admin.id);
    user.reason = Some("I run the \"lab\" wiki,\nand ünïcode ✓".to_owned());
    user.email_verified = true;
    let inserted = insert(store, user.clone());
    let expected = User {
        id: inserted.id,
        email: user.email.clone(),
        password_hash: user.password_hash.clone(),
        is_admin: true,
        status: UserStatus::Approved,
        created_at: user.created_at,
        approved_at: user.approved_at,
        approved_by: user.approved_by,
        token_version: 0,
        reason: user.reason.clone(),
        email_verified: true,
        mfa_enabled: false,
        rejected_at: None,
        rejected_by: None,
        decision_note: None,
    };
    assert_eq!(inserted, expected);
    assert_eq!(get(store, inserted.id), Some(expected.clone()));
    let by_email = store
        .read_with(|repo| repo.find_by_email(&user.email))
        .expect("find_by_email");
    assert_eq!(by_email, Some(expected));
    let missing = Email::parse("nobody@example.com").expect("email");
    assert_eq!(
        store
            .read_with(|repo| repo.find_by_email(&missing))
            .expect("find"),
        None
    );
    assert_eq!(get(store, UserId::new(i64::MAX).expect("id")), None);
}

/// A second insert of one email is `EmailTaken` and leaves one row.
pub fn duplicate_email_is_email_taken(store: &dyn UserStore) {
    insert(store, new_user("dup@example.com"));
    let again = store.write_with(|repo| repo.insert(new_user("dup@example.com")));
    assert!(matches!(again, Err(Error::EmailTaken)), "{again:?}");
    assert_eq!(
        store.read_with(|repo| repo.count_users()).expect("count"),
        1
    );
}

/// A deleted user's id is never handed out again (tokens name users by id).
pub fn ids_are_never_reused(store: &dyn UserStore) {
    insert(store, new_user("a@example.com"));
    let b = insert(store, new_user("b@example.com"));
    assert!(store.write_with(|repo| repo.delete(b.id)).expect("delete"));
    let c = insert(store, new_user("c@example.com"));
    assert!(c.id > b.id, "{:?} reused after deleting {:?}", c.id, b.id);
}

/// `count_users`, `any_user_exists`, `count_active_admins` and `count_with_status` count
/// what they say.
pub fn counts(store: &dyn UserStore) {
    assert!(!store
        .read_with(|repo| repo.any_user_exists())
        .expect("exists"));
    let cases = [
        ("a@example.com", true, UserStatus::Approved),
        ("b@example.com", true, UserStatus::Disabled),
        ("c@example.com", true, UserStatus::Pending),
        ("d@example.com", false, UserStatus::Approved),
        ("e@example.com", false, UserStatus::Pending),
        ("f@example.com", true, UserStatus::Approved),
    ];
    for (email, is_admin, status) in cases {
        let mut user = new_user(email);
        user.is_admin = is_admin;
        user.status = status;
        insert(store, user);
    }
    store
        .read_with(|repo| {
            assert_eq!(repo.count_users()?, 6);
            assert!(repo.any_user_exists()?);
            assert_eq!(repo.count_active_admins()?, 2);
            assert_eq!(repo.count_with_status(UserStatus::Pending)?, 2);
            assert_eq!(repo.count_with_status(UserStatus::Approved)?, 3);
            assert_eq!(repo.count_with_status(UserStatus::Disabled)?, 1);
            Ok(())
        })
        .expect("counts");
}

/// Listing is newest first and filters by status and email substring.
pub fn list_is_newest_first_and_filters(store: &dyn UserStore) {
    for (email, status) in [
        ("ann@alpha.com", UserStatus::Approved),
        ("bob@beta.com", UserStatus::Pending),
        ("cat@alpha.com", UserStatus::Pending),
        ("dan@gamma.com", UserStatus::Disabled),
    ] {
        let mut user = new_user(email);
        user.status = status;
        insert(store, user);
    }
    let list = |query: UserQuery| store.read_with(|repo| repo.list(&query)).expect("list");
    let all = list(UserQuery::default());
    assert_eq!(
        emails(&all.items),
        [
            "dan@gamma.com",
            "cat@alpha.com",
            "bob@beta.com",
            "ann@alpha.com"
        ]
    );
    assert_eq!(all.total, 4);
    let pending = list(UserQuery {
        status: Some(UserStatus::Pending),
        ..UserQuery::default()
    });
    assert_eq!(emails(&pending.items), ["cat@alpha.com", "bob@beta.com"]);
    let alpha = list(UserQuery {
        email_contains: Some("ALPHA".into()),
        ..UserQuery::default()
    });
    assert_eq!(emails(&alpha.items), ["cat@alpha.com", "ann@alpha.com"]);
    let both = list(UserQuery {
        status: Some(UserStatus::Approved),
        email_contains: Some("alpha".into()),
        ..UserQuery::default()
    });
    assert_eq!(emails(&both.items), ["ann@alpha.com"]);
    assert_eq!(both.total, 1);
}

/// Listing filters by role, alone and with the other filters (the console counts the
/// active admins as `status = approved, is_admin = true`).
pub fn list_filters_by_role(store: &dyn UserStore) {
    for (email, status, is_admin) in [
        ("ann@alpha.com", UserStatus::Approved, true),
        ("bob@beta.com", UserStatus::Approved, false),
        ("cat@alpha.com", UserStatus::Disabled, true),
        ("dan@gamma.com", UserStatus::Pending, false),
    ] {
        let mut user = new_user(email);
        user.status = status;
        user.is_admin = is_admin;
        insert(store, user);
    }
    let list = |query: UserQuery| store.read_with(|repo| repo.list(&query)).expect("list");
    let admins = list(UserQuery {
        is_admin: Some(true),
        ..UserQuery::default()
    });
    assert_eq!(emails(&admins.items), ["cat@alpha.com", "ann@alpha.com"]);
    let others = list(UserQuery {
        is_admin: Some(false),
        ..UserQuery::default()
    });
    assert_eq!(emails(&others.items), ["dan@gamma.com", "bob@beta.com"]);
    let active_admins = list(UserQuery {
        status: Some(UserStatus::Approved),
        is_admin: Some(true),
        limit: Some(0),
        ..UserQuery::default()
    });
    assert!(active_admins.items.is_empty());
    assert_eq!(active_admins.total, 1);
    let alpha_admins = list(UserQuery {
        is_admin: Some(true),
        email_contains: Some("alp".into()),
        ..UserQuery::default()
    });
    assert_eq!(alpha_admins.total, 2);
}

/// `limit` and `offset` page through the newest-first order; `total` ignores them.
pub fn list_pages_and_totals(store: &dyn UserStore) {
    for i in 0..5 {
        insert(store, new_user(&format!("u{i}@example.com")));
    }
    let page = |limit: Option<u64>, offset: u64| {
        store
            .read_with(|repo| {
                repo.list(&UserQuery {
                    limit,
                    offset,
                    ..UserQuery::default()
                })
            })
            .expect("list")
    };
    let first = page(Some(2), 0);
    assert_eq!(emails(&first.items), ["u4@example.com", "u3@example.com"]);
    assert_eq!(first.total, 5);
    assert_eq!(emails(&page(Some(2), 4).items), ["u0@example.com"]);
    assert!(page(Some(2), 10).items.is_empty());
    assert_eq!(page(Some(2), 10).total, 5);
    assert!(page(Some(0), 0).items.is_empty());
    assert_eq!(page(None, 3).items.len(), 2);
}

/// What a listing handed its reader, call by call.
#[derive(Debug, Default)]
struct Recorded {
    calls: Vec<String>,
    /// Fail the call after this many items with [`Error::Overloaded`] (a variant no store
    /// reports from a read, so it can only have come from here).
    fail_after: Option<usize>,
    items: usize,
}

impl Recorded {
    fn failing_after(items: usize) -> Self {
        Self {
            fail_after: Some(items),
            ..Self::default()
        }
    }

    fn note(&mut self, call: String) -> Result<(), Error> {
        self.calls.push(call);
        Ok(())
    }
}

impl Listing<User> for Recorded {
    fn total(&mut self, total: u64) -> Result<(), Error> {
        self.note(format!("total {total}"))
    }

    fn item(&mut self, user: User) -> Result<(), Error> {
        if self.fail_after == Some(self.items) {
            return Err(Error::Overloaded);
        }
        self.items += 1;
        self.note(user.email.as_str().to_owned())
    }
}

impl Listing<AuditEntry> for Recorded {
    fn total(&mut self, total: u64) -> Result<(), Error> {
        self.note(format!("total {total}"))
    }

    fn item(&mut self, entry: AuditEntry) -> Result<(), Error> {
        if self.fail_after == Some(self.items) {
            return Err(Error::Overloaded);
        }
        self.items += 1;
        self.note(entry.entry.action.as_str().to_owned())
    }
}

fn recorded_users(store: &dyn UserStore, query: &UserQuery) -> Vec<String> {
    let mut recorded = Recorded::default();
    store
        .read(&mut |repo| repo.each_user(query, &mut recorded))
        .expect("each_user");
    recorded.calls
}

/// A listing hands its reader the total first, exactly once (also when no item follows:
/// past the end, `limit=0`, nothing matching, with and without a search), then each item
/// of the page in order; the audit log's listing the same.
pub fn listings_hand_over_the_total_first_then_each_item(store: &dyn UserStore) {
    for i in 0..4 {
        let mut user = new_user(&format!("u{i}@example.com"));
        if i % 2 == 1 {
            user.status = UserStatus::Approved;
        }
        insert(store, user);
    }
    let query = |limit: Option<u64>, offset: u64| UserQuery {
        limit,
        offset,
        ..UserQuery::default()
    };
    let calls = |query: UserQuery| recorded_users(store, &query);
    assert_eq!(
        calls(query(None, 0)),
        [
            "total 4",
            "u3@example.com",
            "u2@example.com",
            "u1@example.com",
            "u0@example.com"
        ]
    );
    assert_eq!(
        calls(query(Some(2), 1)),
        ["total 4", "u2@example.com", "u1@example.com"]
    );
    assert_eq!(calls(query(None, 4)), ["total 4"]);
    assert_eq!(calls(query(Some(0), 0)), ["total 4"]);
    let approved = UserQuery {
        status: Some(UserStatus::Approved),
        ..query(None, 1)
    };
    assert_eq!(calls(approved), ["total 2", "u1@example.com"]);
    let searched = UserQuery {
        email_contains: Some("U2@".into()),
        ..query(None, 0)
    };
    assert_eq!(calls(searched), ["total 1", "u2@example.com"]);
    let nobody = UserQuery {
        email_contains: Some("nobody".into()),
        ..query(None, 0)
    };
    assert_eq!(calls(nobody), ["total 0"]);
    let none_disabled = UserQuery {
        status: Some(UserStatus::Disabled),
        ..query(None, 0)
    };
    assert_eq!(calls(none_disabled), ["total 0"]);

    for action in [AuditAction::UserRegistered, AuditAction::UserApproved] {
        let e = entry(action, None, None);
        store
            .write_with(|repo| repo.append_audit(&e))
            .expect("append");
    }
    let audit = |query: AuditQuery| {
        let mut recorded = Recorded::default();
        store
            .read(&mut |repo| repo.each_audit_entry(&query, &mut recorded))
            .expect("each_audit_entry");
        recorded.calls
    };
    assert_eq!(
        audit(AuditQuery::default()),
        ["total 2", "user_approved", "user_registered"]
    );
    assert_eq!(
        audit(AuditQuery {
            offset: 5,
            ..AuditQuery::default()
        }),
        ["total 2"]
    );
}

/// An error of the reader stops the listing at once and comes back as it was.
pub fn listings_stop_at_their_readers_first_error(store: &dyn UserStore) {
    for i in 0..5 {
        insert(store, new_user(&format!("u{i}@example.com")));
        let e = entry(AuditAction::LoginFailed, None, None);
        store
            .write_with(|repo| repo.append_audit(&e))
            .expect("append");
    }
    for query in [
        UserQuery::default(),
        UserQuery {
            email_contains: Some("example".into()),
            ..UserQuery::default()
        },
    ] {
        let mut recorded = Recorded::failing_after(2);
        let outcome = store.read(&mut |repo| repo.each_user(&query, &mut recorded));
        assert!(
            matches!(outcome, Err(Error::Overloaded)),
            "{query:?}: the reader's error comes back: {outcome:?}"
        );
        assert_eq!(
            recorded.calls,
            ["total 5", "u4@example.com", "u3@example.com"],
            "{query:?}"
        );
    }
    let mut recorded = Recorded::failing_after(1);
    let outcome =
        store.read(&mut |repo| repo.each_audit_entry(&AuditQuery::default(), &mut recorded));
    assert!(matches!(outcome, Err(Error::Overloaded)), "{outcome:?}");
    assert_eq!(recorded.calls, ["total 5", "login_failed"]);
    // The store is fine afterwards: the next listing reads everything.
    assert_eq!(recorded_users(store, &UserQuery::default()).len(), 6);
}

/// Listings run outside a transaction too ([`UserStore::read_single`], as the service
/// lists without a search), a stopped one included, and the store goes on afterwards.
pub fn listings_outside_a_transaction_stream_too(store: &dyn UserStore) {
    for i in 0..3 {
        insert(store, new_user(&format!("u{i}@example.com")));
    }
    let mut recorded = Recorded::default();
    store
        .read_single(&mut |repo| repo.each_user(&UserQuery::default(), &mut recorded))
        .expect("each_user");
    assert_eq!(
        recorded.calls,
        [
            "total 3",
            "u2@example.com",
            "u1@example.com",
            "u0@example.com"
        ]
    );
    let mut stopped = Recorded::failing_after(1);
    let outcome =
        store.read_single(&mut |repo| repo.each_user(&UserQuery::default(), &mut stopped));
    assert!(matches!(outcome, Err(Error::Overloaded)), "{outcome:?}");
    insert(store, new_user("after@example.com"));
    assert_eq!(recorded_users(store, &UserQuery::default()).len(), 5);
}

/// `%` and `_` in the substring match themselves only.
pub fn list_substring_is_literal(store: &dyn UserStore) {
    insert(store, new_user("a_b@example.com"));
    insert(store, new_user("axb@example.com"));
    insert(store, new_user("a%b@example.com"));
    let find = |needle: &str| {
        let query = UserQuery {
            email_contains: Some(needle.into()),
            ..UserQuery::default()
        };
        store.read_with(|repo| repo.list(&query)).expect("list")
    };
    assert_eq!(emails(&find("a_b").items), ["a_b@example.com"]);
    assert_eq!(emails(&find("a%b").items), ["a%b@example.com"]);
    assert_eq!(find("%").total, 1);
    assert_eq!(find("zzz").total, 0);
    // No email holds a NUL; a store that cannot compare one (PostgreSQL) still answers.
    assert_eq!(find("a\0b").total, 0);
}

/// The substring search follows email changes and deletes (a store keeping a search index
/// must keep it in step with the users).
pub fn list_substring_follows_changes(store: &dyn UserStore) {
    let find = |needle: &str| {
        let query = UserQuery {
            email_contains: Some(needle.into()),
            ..UserQuery::default()
        };
        store.read_with(|repo| repo.list(&query)).expect("list")
    };
    let ann = insert(store, new_user("ann@oldhost.com"));
    let bob = insert(store, new_user("bob@oldhost.com"));
    assert_eq!(
        emails(&find("oldhost").items),
        ["bob@oldhost.com", "ann@oldhost.com"]
    );
    let mut moved = ann.clone();
    moved.email = Email::parse("ann@newhost.org").expect("email");
    store
        .write_with(|repo| repo.update(&moved))
        .expect("update");
    let old = find("oldhost");
    assert_eq!(emails(&old.items), ["bob@oldhost.com"]);
    assert_eq!(old.total, 1);
    assert_eq!(emails(&find("newhost").items), ["ann@newhost.org"]);
    assert_eq!(find("ann@old").total, 0);
    // An update that keeps the email keeps the user findable.
    let mut promoted = moved.clone();
    promoted.is_admin = true;
    store
        .write_with(|repo| repo.update(&promoted))
        .expect("update");
    assert_eq!(emails(&find("ann@newhost").items), ["ann@newhost.org"]);
    assert!(store
        .write_with(|repo| repo.delete(bob.id))
        .expect("delete"));
    let gone = find("oldhost");
    assert!(gone.items.is_empty(), "{:?}", emails(&gone.items));
    assert_eq!(gone.total, 0);
    // The freed email, taken again, is found once, as the new user.
    let again = insert(store, new_user("bob@oldhost.com"));
    let found = find("bob@old");
    assert_eq!(
        found.items.iter().map(|u| u.id).collect::<Vec<_>>(),
        [again.id]
    );
    assert_eq!(found.total, 1);
    // And the first address, given back to its owner.
    store.write_with(|repo| repo.update(&ann)).expect("update");
    assert_eq!(
        emails(&find("oldhost").items),
        ["bob@oldhost.com", "ann@oldhost.com"]
    );
    assert_eq!(find("newhost").total, 0);
}

/// `update` writes every mutable field and returns the stored user.
pub fn update_writes_every_field(store: &dyn UserStore) {
    let admin = insert(store, new_user("admin@example.com"));
    let before = insert(store, new_user("old@example.com"));
    let mut after = before.clone();
    after.email = Email::parse("new@example.com").expect("email");
    after.password_hash = PasswordHash::new("new-hash".into());
    after.is_admin = true;
    after.status = UserStatus::Approved;
    after.approved_at = Some(crate::now());
    after.approved_by = Some(admin.id);
    after.token_version = 5;
    after.reason = Some("a reason".into());
    after.email_verified = true;
    after.mfa_enabled = true;
    let stored = store
        .write_with(|repo| repo.update(&after))
        .expect("update");
    assert_eq!(stored, after);
    assert_eq!(get(store, before.id), Some(after.clone()));
    // A rejection's fields, and back to none.
    let mut rejected = after.clone();
    rejected.status = UserStatus::Rejected;
    rejected.rejected_at = Some(crate::now());
    rejected.rejected_by = Some(admin.id);
    rejected.decision_note = Some("Not now.\nTry again in May.".into());
    let stored = store
        .write_with(|repo| repo.update(&rejected))
        .expect("update");
    assert_eq!(stored, rejected);
    assert_eq!(get(store, before.id), Some(rejected.clone()));
    assert_eq!(
        store
            .read_with(|repo| repo.count_with_status(UserStatus::Rejected))
            .expect("count"),
        1
    );
    let stored = store
        .write_with(|repo| repo.update(&after))
        .expect("update");
    assert_eq!(stored, after);
}

/// Taking another user's email is `EmailTaken`; keeping one's own is fine.
pub fn update_refuses_taken_email(store: &dyn UserStore) {
    let a = insert(store, new_user("a@example.com"));
    let b = insert(store, new_user("b@example.com"));
    let mut changed = b.clone();
    changed.email = a.email.clone();
    let result = store.write_with(|repo| repo.update(&changed));
    assert!(matches!(result, Err(Error::EmailTaken)), "{result:?}");
    assert_eq!(get(store, b.id), Some(b.clone()));
    let mut same = b.clone();
    same.is_admin = true;
    assert!(store.write_with(|repo| repo.update(&same)).is_ok());
}

/// Look-alike emails (the same confusable skeleton) are found, the user itself left out
/// when asked; the store refuses exact duplicates only, so look-alikes from before the
/// rule can be stored, and the lowest id is found first.
pub fn look_alike_emails_are_found_by_skeleton(store: &dyn UserStore) {
    let admin = insert(store, new_user("admin@example.com"));
    insert(store, new_user("bob@example.com"));
    let find = |raw: &str, except: Option<UserId>| {
        let email = Email::parse(raw).expect("email");
        store
            .read_with(|repo| repo.find_by_email_skeleton(&email, except))
            .expect("find_by_email_skeleton")
            .map(|u| u.id)
    };
    assert_eq!(find("admin@example.com", None), Some(admin.id));
    assert_eq!(find("adrnin@example.com", None), Some(admin.id));
    assert_eq!(find("admin@examp1e.com", None), Some(admin.id));
    assert_eq!(find("admin@example.com", Some(admin.id)), None);
    assert_eq!(find("carol@example.com", None), None);
    assert_eq!(find("admin@example.org", None), None);
    // Whole-script Cyrillic "соса" against Latin "coca".
    let coca = insert(store, new_user("user@coca.com"));
    assert_eq!(
        find("user@\u{441}\u{43e}\u{441}\u{430}.com", None),
        Some(coca.id)
    );
    let twin = insert(store, new_user("adrnin@example.com"));
    assert_eq!(find("admin@example.com", None), Some(admin.id));
    assert_eq!(find("admin@example.com", Some(admin.id)), Some(twin.id));
    assert_eq!(find("adrnin@example.com", Some(twin.id)), Some(admin.id));
}

/// The skeleton found is the current email's: it follows email changes and deletes, and
/// an update that keeps the email keeps it.
pub fn skeletons_follow_email_changes(store: &dyn UserStore) {
    let bob = insert(store, new_user("bob@example.com"));
    let find = |raw: &str| {
        let email = Email::parse(raw).expect("email");
        store
            .read_with(|repo| repo.find_by_email_skeleton(&email, None))
            .expect("find_by_email_skeleton")
            .map(|u| u.id)
    };
    let mut moved = bob.clone();
    moved.email = Email::parse("paypal@example.com").expect("email");
    store
        .write_with(|repo| repo.update(&moved))
        .expect("update");
    assert_eq!(find("paypa1@example.com"), Some(bob.id));
    assert_eq!(find("bob@example.com"), None);
    let mut promoted = moved.clone();
    promoted.is_admin = true;
    store
        .write_with(|repo| repo.update(&promoted))
        .expect("update");
    assert_eq!(find("paypa1@example.com"), Some(bob.id));
    assert!(store
        .write_with(|repo| repo.delete(bob.id))
        .expect("delete"));
    assert_eq!(find("paypal@example.com"), None);
}

/// Updating a user that does not exist is `UserNotFound`.
pub fn update_of_missing_user_is_not_found(store: &dyn UserStore) {
    let mut ghost = insert(store, new_user("ghost@example.com"));
    ghost.id = UserId::new(ghost.id.get() + 1000).expect("id");
    let result = store.write_with(|repo| repo.update(&ghost));
    assert!(matches!(result, Err(Error::UserNotFound)), "{result:?}");
}

/// `delete` is `true` once, then `false`.
pub fn delete_reports_whether_it_deleted(store: &dyn UserStore) {
    let user = insert(store, new_user("gone@example.com"));
    assert!(store
        .write_with(|repo| repo.delete(user.id))
        .expect("delete"));
    assert!(!store
        .write_with(|repo| repo.delete(user.id))
        .expect("delete"));
    assert_eq!(get(store, user.id), None);
    // The email is free again.
    insert(store, new_user("gone@example.com"));
}

/// Deleting an admin who approved others leaves those users, with `approved_by` cleared.
pub fn deleting_an_approver_clears_approved_by(store: &dyn UserStore) {
    let admin = insert(store, new_user("admin@example.com"));
    let mut approved = new_user("ok@example.com");
    approved.status = UserStatus::Approved;
    approved.approved_at = Some(crate::now());
    approved.approved_by = Some(admin.id);
    let approved = insert(store, approved);
    assert!(store
        .write_with(|repo| repo.delete(admin.id))
        .expect("delete"));
    let after = get(store, approved.id).expect("still there");
    assert_eq!(after.approved_by, None);
    assert_eq!(after.approved_at, approved.approved_at);

    // Likewise whoever rejected someone.
    let other = insert(store, new_user("other-admin@example.com"));
    let mut turned_down = new_user("no@example.com");
    turned_down.status = UserStatus::Rejected;
    let mut turned_down = insert(store, turned_down);
    turned_down.rejected_at = Some(crate::now());
    turned_down.rejected_by = Some(other.id);
    store
        .write_with(|repo| repo.update(&turned_down))
        .expect("update");
    assert!(store
        .write_with(|repo| repo.delete(other.id))
        .expect("delete"));
    let after = get(store, turned_down.id).expect("still there");
    assert_eq!(after.rejected_by, None);
    assert_eq!(after.rejected_at, turned_down.rejected_at);
}

/// A unit of work that fails leaves no trace.
pub fn failed_write_rolls_back(store: &dyn UserStore) {
    let kept = insert(store, new_user("kept@example.com"));
    let result: Result<(), Error> = store.write_with(|repo| {
        repo.insert(new_user("ghost@example.com"))?;
        let mut changed = kept.clone();
        changed.is_admin = true;
        repo.update(&changed)?;
        Err(Error::UserNotFound)
    });
    assert!(matches!(result, Err(Error::UserNotFound)));
    let ghost = Email::parse("ghost@example.com").expect("email");
    assert_eq!(
        store
            .read_with(|repo| repo.find_by_email(&ghost))
            .expect("find"),
        None
    );
    assert_eq!(get(store, kept.id), Some(kept));
}

/// `ping` answers on a healthy store.
pub fn ping_answers(store: &dyn UserStore) {
    store.ping().expect("ping");
}

fn new_session(user: UserId, now: DateTime<Utc>) -> NewSession {
    NewSession {
        user_id: user,
        created_at: now,
        idle_expires_at: now + Duration::hours(1),
        expires_at: now + Duration::hours(2),
        address: Some("192.0.2.7".into()),
        user_agent: Some("Tester/1.0 (contract)".into()),
    }
}

fn start_session(store: &dyn UserStore, user: UserId, refresh_hash: &str) -> StoredSession {
    let now = crate::now();
    store
        .write_with(|repo| repo.insert_session(&new_session(user, now), refresh_hash))
        .expect("insert session")
}

fn live(session: &StoredSession) -> Option<SessionState> {
    Some(SessionState {
        revoked: session.revoked_at.is_some(),
        idle_expires_at: session.idle_expires_at,
        expires_at: session.expires_at,
    })
}

/// A session is stored with every field, found by id and by its refresh token, gets a
/// fresh id each time, and is ended once (a second end reports nothing ended).
pub fn sessions_round_trip_and_end_once(store: &dyn UserStore) {
    let ann = insert(store, new_user("ann@example.com"));
    let now = crate::now();
    let first = store
        .write_with(|repo| repo.insert_session(&new_session(ann.id, now), "hash-1"))
        .expect("insert");
    assert!(first.id > 0);
    assert_eq!(first.user_id, ann.id);
    assert_eq!(first.created_at, now);
    assert_eq!(first.last_used_at, now);
    assert_eq!(first.idle_expires_at, now + Duration::hours(1));
    assert_eq!(first.expires_at, now + Duration::hours(2));
    assert_eq!(first.revoked_at, None);
    assert_eq!(first.address.as_deref(), Some("192.0.2.7"));
    assert_eq!(first.user_agent.as_deref(), Some("Tester/1.0 (contract)"));
    let second = start_session(store, ann.id, "hash-2");
    assert!(second.id > first.id, "ids grow");
    store
        .read_with(|repo| {
            assert_eq!(repo.find_session(first.id)?, Some(first.clone()));
            assert_eq!(
                repo.find_refresh_token("hash-1")?,
                Some((first.clone(), None, ann.clone()))
            );
            assert_eq!(repo.find_refresh_token("hash-9")?, None);
            assert_eq!(repo.find_session(second.id + 100)?, None);
            Ok(())
        })
        .expect("find");
    let bob = insert(store, new_user("bob@example.com"));
    let at = now + Duration::seconds(5);
    assert!(!store
        .write_with(|repo| repo.revoke_session(first.id, Some(bob.id), at))
        .expect("not bob's"));
    assert!(store
        .write_with(|repo| repo.revoke_session(first.id, Some(ann.id), at))
        .expect("ann's"));
    assert!(!store
        .write_with(|repo| repo.revoke_session(first.id, None, at + Duration::seconds(1)))
        .expect("ended already"));
    let ended = store
        .read_with(|repo| repo.find_session(first.id))
        .expect("find")
        .expect("kept");
    assert_eq!(ended.revoked_at, Some(at), "the first end is kept");
}

/// `find_session_user` finds the user with the state of the session named, only when the
/// session is theirs.
pub fn session_user_comes_with_its_session(store: &dyn UserStore) {
    let user = insert(store, new_user("s@example.com"));
    let session = start_session(store, user.id, "h");
    let find = |id: UserId, sid: i64| both_session_answers(store, id, sid);
    assert_eq!(
        find(user.id, session.id),
        Some((user.clone(), live(&session)))
    );
    assert_eq!(find(user.id, session.id + 100), Some((user.clone(), None)));
    assert_eq!(
        find(UserId::new(user.id.get() + 100).expect("id"), session.id),
        None
    );
    let at = crate::now();
    store
        .write_with(|repo| repo.revoke_session(session.id, None, at))
        .expect("end");
    let (_, state) = find(user.id, session.id).expect("found");
    assert!(state.expect("still stored").revoked);
}

/// The session's user as the repository finds it, checked against what the store's
/// [`SessionSource`] answers: the two must agree.
fn both_session_answers(
    store: &dyn UserStore,
    id: UserId,
    session_id: i64,
) -> Option<(User, Option<SessionState>)> {
    let by_repo = store
        .read_single_with(|repo| repo.find_session_user(id, session_id))
        .expect("find through the repository");
    let by_port = crate::testing::block_on(store.find_session_user(id, session_id))
        .expect("find through the session port");
    assert_eq!(
        by_port, by_repo,
        "the session port and the repository disagree"
    );
    by_repo
}

/// A session lookup reads after it is made: every write committed before it, a change of
/// status, of role or of token version, a session's end and a delete, is in its answer.
pub fn session_lookups_see_writes_made_before_them(store: &dyn UserStore) {
    let mut user = insert(store, new_user("fresh@example.com"));
    let session = start_session(store, user.id, "t");
    for round in 0..3 {
        let found = both_session_answers(store, user.id, session.id).expect("found");
        assert_eq!(found, (user.clone(), live(&session)), "round {round}");
        user.status = [
            UserStatus::Disabled,
            UserStatus::Approved,
            UserStatus::Pending,
        ][round];
        user.is_admin = round % 2 == 0;
        user.token_version += 1;
        user = store.write_with(|repo| repo.update(&user)).expect("update");
    }
    assert_eq!(
        both_session_answers(store, user.id, session.id),
        Some((user.clone(), live(&session)))
    );
    store
        .write_with(|repo| repo.revoke_session(session.id, None, crate::now()))
        .expect("end");
    let (_, state) = both_session_answers(store, user.id, session.id).expect("found");
    assert!(state.expect("stored").revoked);
    store
        .write_with(|repo| repo.delete(user.id))
        .expect("delete");
    assert_eq!(both_session_answers(store, user.id, session.id), None);
}

/// A refresh token is spent once; renewing stores the next one and marks the session
/// used; spent tokens stay findable as spent (for reuse detection).
pub fn refresh_tokens_are_spent_once(store: &dyn UserStore) {
    let user = insert(store, new_user("r@example.com"));
    let session = start_session(store, user.id, "first");
    let now = crate::now() + Duration::seconds(10);
    assert!(store
        .write_with(|repo| repo.spend_refresh_token("first", now))
        .expect("spend"));
    assert!(!store
        .write_with(|repo| repo.spend_refresh_token("first", now))
        .expect("spent already"));
    assert!(!store
        .write_with(|repo| repo.spend_refresh_token("unknown", now))
        .expect("unknown"));
    let idle = now + Duration::minutes(30);
    assert!(store
        .write_with(|repo| repo.renew_session(session.id, "second", now, idle))
        .expect("renew"));
    let (renewed, spent, owner) = store
        .read_with(|repo| repo.find_refresh_token("first"))
        .expect("find")
        .expect("kept");
    assert_eq!(spent, Some(now));
    assert_eq!(owner, user);
    assert_eq!(renewed.last_used_at, now);
    assert_eq!(renewed.idle_expires_at, idle);
    assert_eq!(
        store
            .read_with(|repo| repo.find_refresh_token("second"))
            .expect("find"),
        Some((renewed.clone(), None, user.clone()))
    );
    // A password change discards the session's unspent token; the spent ones stay.
    store
        .write_with(|repo| repo.discard_session_refresh_tokens(session.id))
        .expect("discard");
    store
        .read_with(|repo| {
            assert_eq!(repo.find_refresh_token("second")?, None, "discarded");
            assert!(repo.find_refresh_token("first")?.is_some(), "spent, kept");
            Ok(())
        })
        .expect("after the discard");
    assert!(!store
        .write_with(|repo| repo.spend_refresh_token("second", now))
        .expect("nothing to spend"));
    // An ended session is not renewed, and gets no new token.
    store
        .write_with(|repo| repo.revoke_session(session.id, None, now))
        .expect("end");
    assert!(!store
        .write_with(|repo| repo.renew_session(session.id, "third", now, idle))
        .expect("renew an ended session"));
    assert_eq!(
        store
            .read_with(|repo| repo.find_refresh_token("third"))
            .expect("find"),
        None
    );
}

/// Sixteen threads spending one refresh token at once: exactly one succeeds (each in its
/// own write transaction; a store may retry a lost race, and the retry must see the token
/// spent).
pub fn a_refresh_token_is_spent_once_among_sixteen_racers(store: &dyn UserStore) {
    let user = insert(store, new_user("race@example.com"));
    start_session(store, user.id, "contested");
    let barrier = std::sync::Barrier::new(16);
    let wins = std::thread::scope(|scope| {
        // Half as a serialized write that looks first, half as the row-guarded write a
        // refresh runs in (PostgreSQL: READ COMMITTED), which spends straight away.
        let racers: Vec<_> = (0..16)
            .map(|i| {
                let barrier = &barrier;
                scope.spawn(move || {
                    barrier.wait();
                    if i % 2 == 0 {
                        store.write_rows_with(|repo| {
                            repo.spend_refresh_token("contested", crate::now())
                        })
                    } else {
                        store.write_with(|repo| match repo.find_refresh_token("contested")? {
                            Some((_, None, _)) => {
                                repo.spend_refresh_token("contested", crate::now())
                            }
                            _ => Ok(false),
                        })
                    }
                })
            })
            .collect();
        racers
            .into_iter()
            .map(|racer| racer.join().expect("racer"))
            .filter(|won| matches!(won, Ok(true)))
            .count()
    });
    assert_eq!(wins, 1);
}

/// Row-guarded and plain writes racing on many threads (a store may run row-guarded ones
/// together, SQLite's group commit): each keeps exactly its own outcome. A write whose work
/// fails leaves nothing and reports its own error; the others' changes all stay, and each
/// is visible once its write has returned. The readiness probe runs among them.
pub fn racing_writes_keep_each_their_own_outcome(store: &dyn UserStore) {
    let user = insert(store, new_user("busy@example.com")).id;
    let barrier = std::sync::Barrier::new(12);
    std::thread::scope(|scope| {
        for racer in 0..12 {
            let barrier = &barrier;
            scope.spawn(move || {
                barrier.wait();
                for round in 0..8 {
                    let hash = format!("racer-{racer}-round-{round}");
                    let now = crate::now();
                    let outcome = match racer % 3 {
                        0 => store.write_rows_with(|repo| {
                            repo.insert_session(&new_session(user, now), &hash)
                        }),
                        1 => store.write_rows_with(|repo| {
                            repo.insert_session(&new_session(user, now), &hash)?;
                            Err::<StoredSession, _>(Error::SessionNotFound)
                        }),
                        _ => {
                            store.ping().expect("ping among writers");
                            store.write_with(|repo| {
                                repo.insert_session(&new_session(user, now), &hash)
                            })
                        }
                    };
                    let found = store
                        .read_with(|repo| repo.find_refresh_token(&hash))
                        .expect("look up");
                    if racer % 3 == 1 {
                        assert!(
                            matches!(outcome, Err(Error::SessionNotFound)),
                            "{hash}: {outcome:?}"
                        );
                        assert!(found.is_none(), "{hash}: a failed write left its row");
                    } else {
                        let stored = outcome.unwrap_or_else(|e| panic!("{hash}: {e}"));
                        let (session, _, _) =
                            found.unwrap_or_else(|| panic!("{hash}: not visible once written"));
                        assert_eq!(session.id, stored.id, "{hash}");
                    }
                }
            });
        }
    });
    let live = store
        .read_with(|repo| repo.list_sessions(user, crate::now(), &SessionQuery::default()))
        .expect("list");
    assert_eq!(live.total, 64, "8 racers x 8 rounds kept their sessions");
}

/// `list_sessions` lists a user's live sessions only, newest first and paged with their
/// total; `revoke_sessions` ends all of them but the one spared, once.
pub fn sessions_list_live_ones_newest_first_and_end_together(store: &dyn UserStore) {
    let ann = insert(store, new_user("ann@example.com"));
    let bob = insert(store, new_user("bob@example.com"));
    let a1 = start_session(store, ann.id, "a1");
    let a2 = start_session(store, ann.id, "a2");
    let a3 = start_session(store, ann.id, "a3");
    let b1 = start_session(store, bob.id, "b1");
    let now = crate::now();
    // One idled out already, one ended.
    let idle = store
        .write_with(|repo| {
            let mut old = new_session(ann.id, now - Duration::hours(3));
            old.idle_expires_at = now - Duration::seconds(1);
            repo.insert_session(&old, "a-idle")
        })
        .expect("insert idle");
    store
        .write_with(|repo| repo.revoke_session(a2.id, None, now))
        .expect("end a2");
    let list = |user: UserId, query: SessionQuery| {
        store
            .read_with(|repo| repo.list_sessions(user, now, &query))
            .expect("list")
    };
    let all = list(ann.id, SessionQuery::default());
    assert_eq!(all.total, 2);
    assert_eq!(
        all.items.iter().map(|s| s.id).collect::<Vec<_>>(),
        vec![a3.id, a1.id]
    );
    let page = list(
        ann.id,
        SessionQuery {
            limit: Some(1),
            offset: 1,
        },
    );
    assert_eq!((page.total, page.items.len()), (2, 1));
    assert_eq!(page.items[0].id, a1.id);
    assert_eq!(
        store
            .write_with(|repo| repo.revoke_sessions(ann.id, Some(a3.id), now))
            .expect("end others"),
        2,
        "a1 and the idled-out one (not ended yet), not a3"
    );
    assert_eq!(
        list(ann.id, SessionQuery::default())
            .items
            .iter()
            .map(|s| s.id)
            .collect::<Vec<_>>(),
        vec![a3.id]
    );
    assert_eq!(
        store
            .write_with(|repo| repo.revoke_sessions(ann.id, None, now))
            .expect("end all"),
        1
    );
    assert_eq!(list(ann.id, SessionQuery::default()).total, 0);
    assert_eq!(list(bob.id, SessionQuery::default()).items[0].id, b1.id);
    // Pruning forgets the ended and expired ones (and their tokens), nothing live.
    let pruned = store
        .write_with(|repo| repo.prune_sessions(now))
        .expect("prune");
    assert_eq!(pruned, 4, "a1, a2, a3 and the idle one");
    store
        .read_with(|repo| {
            assert_eq!(repo.find_session(idle.id)?, None);
            assert_eq!(repo.find_refresh_token("a1")?, None);
            assert!(repo.find_session(b1.id)?.is_some());
            Ok(())
        })
        .expect("after prune");
}

/// Counters are stored per scope and key, replaced, and deleted.
pub fn counters_round_trip(store: &dyn UserStore) {
    let now = crate::now();
    let first = Counter {
        count: 1,
        since: now,
        locked_until: None,
    };
    let second = Counter {
        count: 5,
        since: now,
        locked_until: Some(now + Duration::seconds(1)),
    };
    let scope = CounterScope::LoginAccount;
    store
        .write_with(|repo| repo.save_counter(scope, "a@example.com", &first))
        .expect("save");
    store
        .write_with(|repo| repo.save_counter(CounterScope::LoginAddress, "a@example.com", &second))
        .expect("save");
    assert_eq!(
        store
            .read_with(|repo| repo.counter(scope, "a@example.com"))
            .expect("get"),
        Some(first)
    );
    store
        .write_with(|repo| repo.save_counter(scope, "a@example.com", &second))
        .expect("replace");
    assert_eq!(
        store
            .read_with(|repo| repo.counter(scope, "a@example.com"))
            .expect("get"),
        Some(second)
    );
    store
        .write_with(|repo| repo.delete_counter(scope, "a@example.com"))
        .expect("delete");
    store
        .write_with(|repo| repo.delete_counter(scope, "nobody"))
        .expect("delete nothing");
    assert_eq!(
        store
            .read_with(|repo| repo.counter(scope, "a@example.com"))
            .expect("get"),
        None
    );
    assert_eq!(
        store
            .read_with(|repo| repo.counter(CounterScope::LoginAddress, "a@example.com"))
            .expect("get"),
        Some(second),
        "scopes are separate"
    );
}

fn entry(action: AuditAction, actor: Option<UserId>, target: Option<UserId>) -> NewAuditEntry {
    NewAuditEntry {
        at: crate::now(),
        action,
        actor_id: actor,
        target_id: target,
        address: Some("192.0.2.7".into()),
        detail: Some("note".into()),
    }
}

/// Audit entries come back newest first, filtered by action, actor and target, paged.
pub fn audit_entries_list_newest_first_with_filters(store: &dyn UserStore) {
    let admin = insert(store, new_user("admin@example.com")).id;
    let user = insert(store, new_user("user@example.com")).id;
    let written = [
        entry(AuditAction::UserRegistered, Some(user), Some(user)),
        entry(AuditAction::UserApproved, Some(admin), Some(user)),
        entry(AuditAction::LoginFailed, None, None),
        entry(AuditAction::UserPromoted, Some(admin), Some(user)),
    ];
    for e in &written {
        store
            .write_with(|repo| repo.append_audit(e))
            .expect("append");
    }
    let list = |query: AuditQuery| {
        store
            .read_with(|repo| repo.list_audit(&query))
            .expect("list")
    };
    let all = list(AuditQuery::default());
    assert_eq!(all.total, 4);
    let actions: Vec<_> = all.items.iter().map(|e| e.entry.action).collect();
    assert_eq!(
        actions,
        [
            AuditAction::UserPromoted,
            AuditAction::LoginFailed,
            AuditAction::UserApproved,
            AuditAction::UserRegistered
        ]
    );
    assert!(all.items.windows(2).all(|w| w[0].id > w[1].id));
    assert_eq!(all.items[3].entry, written[0]);
    assert_eq!(
        list(AuditQuery {
            actor_id: Some(admin),
            ..AuditQuery::default()
        })
        .total,
        2
    );
    assert_eq!(
        list(AuditQuery {
            target_id: Some(user),
            ..AuditQuery::default()
        })
        .total,
        3
    );
    let approved = list(AuditQuery {
        action: Some(AuditAction::UserApproved),
        ..AuditQuery::default()
    });
    assert_eq!(approved.items.len(), 1);
    let page = list(AuditQuery {
        limit: Some(2),
        offset: 1,
        ..AuditQuery::default()
    });
    assert_eq!(page.items.len(), 2);
    assert_eq!(page.total, 4);
    assert_eq!(page.items[0].entry.action, AuditAction::LoginFailed);
}

/// Deleting a user keeps the audit entries that name them.
pub fn audit_survives_deleting_its_users(store: &dyn UserStore) {
    let user = insert(store, new_user("gone@example.com")).id;
    let e = entry(AuditAction::UserDeleted, None, Some(user));
    store
        .write_with(|repo| repo.append_audit(&e))
        .expect("append");
    assert!(store.write_with(|repo| repo.delete(user)).expect("delete"));
    let all = store
        .read_with(|repo| repo.list_audit(&AuditQuery::default()))
        .expect("list");
    assert_eq!(all.items[0].entry.target_id, Some(user));
}

/// Pruning drops idle, unlocked counters, and nothing else.
pub fn prune_forgets_only_what_is_stale(store: &dyn UserStore) {
    let now = crate::now();
    let idle_before = now - Duration::days(1);
    store
        .write_with(|repo| {
            let stale = Counter {
                count: 3,
                since: now - Duration::days(2),
                locked_until: None,
            };
            let fresh = Counter {
                count: 3,
                since: now,
                locked_until: None,
            };
            let locked = Counter {
                count: 9,
                since: now - Duration::days(2),
                locked_until: Some(now + Duration::minutes(5)),
            };
            repo.save_counter(CounterScope::LoginAccount, "stale", &stale)?;
            repo.save_counter(CounterScope::LoginAccount, "fresh", &fresh)?;
            repo.save_counter(CounterScope::LoginAccount, "locked", &locked)
        })
        .expect("seed");
    let pruned = store
        .write_with(|repo| repo.prune(now, idle_before))
        .expect("prune");
    assert_eq!(pruned, 1);
    store
        .read_with(|repo| {
            assert!(repo.counter(CounterScope::LoginAccount, "stale")?.is_none());
            assert!(repo.counter(CounterScope::LoginAccount, "fresh")?.is_some());
            assert!(repo
                .counter(CounterScope::LoginAccount, "locked")?
                .is_some());
            Ok(())
        })
        .expect("after prune");
}

/// A session counts for its own user only: another user's lookup with its id finds no
/// session, and another user cannot end it.
pub fn sessions_count_only_for_their_own_user(store: &dyn UserStore) {
    let ann = insert(store, new_user("ann@example.com"));
    let bob = insert(store, new_user("bob@example.com"));
    let anns = start_session(store, ann.id, "anns");
    let find = |id: UserId| both_session_answers(store, id, anns.id);
    assert_eq!(find(ann.id), Some((ann.clone(), live(&anns))));
    assert_eq!(find(bob.id), Some((bob.clone(), None)));
    assert_eq!(
        store
            .write_with(|repo| repo.revoke_sessions(bob.id, None, crate::now()))
            .expect("end bob's"),
        0
    );
    assert_eq!(find(ann.id), Some((ann.clone(), live(&anns))));
}

/// Deleting a user deletes their sessions and refresh tokens.
pub fn deleting_a_user_deletes_their_sessions(store: &dyn UserStore) {
    let ann = insert(store, new_user("ann@example.com"));
    let session = start_session(store, ann.id, "gone-with-ann");
    assert!(store
        .write_with(|repo| repo.delete(ann.id))
        .expect("delete"));
    store
        .read_with(|repo| {
            assert_eq!(repo.find_session(session.id)?, None);
            assert_eq!(repo.find_refresh_token("gone-with-ann")?, None);
            Ok(())
        })
        .expect("after delete");
}

/// A device token (by hash) names the one user it was saved for; saving it again only
/// marks it used; deleting the user forgets it.
pub fn device_tokens_belong_to_one_user(store: &dyn UserStore) {
    let ann = insert(store, new_user("ann@example.com"));
    let bob = insert(store, new_user("bob@example.com"));
    let now = crate::now();
    store
        .write_with(|repo| repo.save_device("hash-a", ann.id, now))
        .expect("save");
    store
        .write_with(|repo| repo.save_device("hash-a", ann.id, now + Duration::seconds(5)))
        .expect("save again");
    store
        .write_with(|repo| repo.save_device("hash-b", bob.id, now))
        .expect("save");
    store
        .read_with(|repo| {
            assert_eq!(repo.device_owner("hash-a")?, Some(ann.id));
            assert_eq!(repo.device_owner("hash-b")?, Some(bob.id));
            assert_eq!(repo.device_owner("hash-c")?, None);
            Ok(())
        })
        .expect("owners");
    assert!(store
        .write_with(|repo| repo.delete(ann.id))
        .expect("delete"));
    assert_eq!(
        store
            .read_with(|repo| repo.device_owner("hash-a"))
            .expect("owner"),
        None
    );
}

/// `latest_audit` finds the newest entry with that action, target and address since a
/// moment (`None` matching `None`), and `set_audit_detail` replaces its detail.
pub fn latest_audit_matches_action_target_address_and_time(store: &dyn UserStore) {
    let user = insert(store, new_user("t@example.com")).id;
    let now = crate::now();
    let at = |secs: i64, target: Option<UserId>, address: Option<&str>| NewAuditEntry {
        at: now + Duration::seconds(secs),
        action: AuditAction::LoginThrottled,
        actor_id: None,
        target_id: target,
        address: address.map(str::to_owned),
        detail: Some(format!("{secs}")),
    };
    for e in [
        at(-120, Some(user), Some("192.0.2.1")),
        at(-10, Some(user), Some("192.0.2.1")),
        at(-5, Some(user), Some("192.0.2.2")),
        at(-4, None, Some("192.0.2.1")),
        at(-3, Some(user), None),
    ] {
        store
            .write_with(|repo| repo.append_audit(&e))
            .expect("append");
    }
    let since = now - Duration::minutes(1);
    let latest = |target, address: Option<&'static str>, action| {
        store
            .read_with(|repo| repo.latest_audit(action, target, address, since))
            .expect("latest")
    };
    let found =
        latest(Some(user), Some("192.0.2.1"), AuditAction::LoginThrottled).expect("an entry");
    assert_eq!(found.1.as_deref(), Some("-10"));
    assert_eq!(
        latest(None, Some("192.0.2.1"), AuditAction::LoginThrottled).map(|f| f.1),
        Some(Some("-4".to_owned()))
    );
    assert_eq!(
        latest(Some(user), None, AuditAction::LoginThrottled).map(|f| f.1),
        Some(Some("-3".to_owned()))
    );
    assert_eq!(
        latest(Some(user), Some("192.0.2.1"), AuditAction::LoginFailed),
        None
    );
    assert_eq!(
        latest(Some(user), Some("192.0.2.9"), AuditAction::LoginThrottled),
        None
    );
    store
        .write_with(|repo| repo.set_audit_detail(found.0, "{\"count\":2}"))
        .expect("set detail");
    assert_eq!(
        latest(Some(user), Some("192.0.2.1"), AuditAction::LoginThrottled),
        Some((found.0, Some("{\"count\":2}".to_owned())))
    );
}

/// Audit entries and device tokens older than the given moment go; newer ones stay.
pub fn prune_audit_and_devices_by_age(store: &dyn UserStore) {
    let user = insert(store, new_user("old@example.com")).id;
    let now = crate::now();
    let mut old = entry(AuditAction::UserRegistered, None, Some(user));
    old.at = now - Duration::days(400);
    let mut older = entry(AuditAction::UserDisabled, None, Some(user));
    older.at = now - Duration::days(500);
    let new = entry(AuditAction::UserApproved, None, Some(user));
    store
        .write_with(|repo| {
            repo.append_audit(&old)?;
            repo.append_audit(&older)?;
            repo.append_audit(&new)?;
            repo.save_device("stale", user, now - Duration::days(200))?;
            repo.save_device("fresh", user, now)
        })
        .expect("seed");
    // In batches: the first takes one of the two old entries (the first appended), the
    // second the other and finds no more.
    let (first, second, devices) = store
        .write_with(|repo| {
            Ok((
                repo.prune_audit(now - Duration::days(365), 1)?,
                repo.prune_audit(now - Duration::days(365), 10)?,
                repo.prune_devices(now - Duration::days(180))?,
            ))
        })
        .expect("prune");
    assert_eq!((first, second, devices), (1, 1, 1));
    store
        .read_with(|repo| {
            let left = repo.list_audit(&AuditQuery::default())?;
            assert_eq!(left.total, 1);
            assert_eq!(left.items[0].entry.action, AuditAction::UserApproved);
            assert_eq!(repo.device_owner("stale")?, None);
            assert_eq!(repo.device_owner("fresh")?, Some(user));
            Ok(())
        })
        .expect("after prune");
}

fn new_invitation(code: &InvitationCode, email: Option<&str>, max_uses: u32) -> NewInvitation {
    let now = crate::now();
    NewInvitation {
        code_hash: code.hash(),
        email: email.map(|e| Email::parse(e).expect("test email")),
        is_admin: false,
        note: None,
        created_at: now,
        created_by: None,
        expires_at: now + Duration::days(7),
        max_uses,
    }
}

/// An invitation reads back as stored, by id and by its code's hash; a second one with the
/// same hash is a conflict; revoking keeps the first time; deleting its creator keeps it.
pub fn invitations_round_trip_and_are_revoked_once(store: &dyn UserStore) {
    let admin = insert(store, new_user("admin@example.com"));
    let code = InvitationCode::generate().expect("a code");
    let mut new = new_invitation(&code, Some("ann@example.com"), 1);
    new.is_admin = true;
    new.note = Some("for the\nbook club".into());
    new.created_by = Some(admin.id);
    let stored = store
        .write_with(|repo| repo.insert_invitation(&new))
        .expect("insert");
    assert!(stored.id > 0);
    assert_eq!(stored.email, new.email);
    assert!(stored.is_admin);
    assert_eq!(stored.note, new.note);
    assert_eq!(stored.created_at, new.created_at);
    assert_eq!(stored.created_by, Some(admin.id));
    assert_eq!(stored.expires_at, new.expires_at);
    assert_eq!((stored.max_uses, stored.uses), (1, 0));
    assert_eq!(stored.revoked_at, None);
    assert_eq!(stored.status(new.created_at), InvitationStatus::Active);

    let (by_id, by_code, unknown) = store
        .read_with(|repo| {
            Ok((
                repo.find_invitation(stored.id)?,
                repo.find_invitation_by_code(&code.hash())?,
                repo.find_invitation_by_code(&InvitationCode::generate()?.hash())?,
            ))
        })
        .expect("find");
    assert_eq!(by_id.as_ref(), Some(&stored));
    assert_eq!(by_code.as_ref(), Some(&stored));
    assert_eq!(unknown, None);

    let again = store.write_with(|repo| repo.insert_invitation(&new));
    assert!(matches!(again, Err(Error::Conflict)), "{again:?}");

    let first = crate::now();
    let revoked = store
        .write_with(|repo| repo.revoke_invitation(stored.id, first))
        .expect("revoke")
        .expect("there");
    assert_eq!(revoked.revoked_at, Some(first));
    assert_eq!(revoked.status(first), InvitationStatus::Revoked);
    let later = first + Duration::seconds(5);
    let twice = store
        .write_with(|repo| repo.revoke_invitation(stored.id, later))
        .expect("revoke again")
        .expect("still there");
    assert_eq!(twice.revoked_at, Some(first));
    let missing = store
        .write_with(|repo| repo.revoke_invitation(stored.id + 1000, later))
        .expect("revoke nothing");
    assert_eq!(missing, None);

    store
        .write_with(|repo| repo.delete(admin.id).map(drop))
        .expect("delete the inviter");
    let kept = store
        .read_with(|repo| repo.find_invitation(stored.id))
        .expect("find")
        .expect("kept");
    assert_eq!(kept.created_by, None);
    assert_eq!(kept.revoked_at, Some(first));
}

/// Uses are counted up to the limit and no further, and only while the invitation is
/// active: not once revoked or expired, never for an unknown code.
pub fn invitation_uses_stop_at_the_limit(store: &dyn UserStore) {
    let code = InvitationCode::generate().expect("a code");
    let stored = store
        .write_with(|repo| repo.insert_invitation(&new_invitation(&code, None, 2)))
        .expect("insert");
    let now = crate::now();
    let spent: Vec<Option<u32>> = (0..3)
        .map(|_| {
            store
                .write_with(|repo| repo.spend_invitation(&code.hash(), now))
                .expect("spend")
                .map(|i| i.uses)
        })
        .collect();
    assert_eq!(spent, [Some(1), Some(2), None]);
    let used = store
        .read_with(|repo| repo.find_invitation(stored.id))
        .expect("find")
        .expect("there");
    assert_eq!(used.uses, 2);
    assert_eq!(used.status(crate::now()), InvitationStatus::Used);
    let unknown = InvitationCode::generate().expect("a code");
    assert_eq!(
        store
            .write_with(|repo| repo.spend_invitation(&unknown.hash(), now))
            .expect("spend nothing"),
        None
    );

    // Past its expiry (at the moment given) and once revoked: nothing is counted.
    let other = InvitationCode::generate().expect("a code");
    let second = store
        .write_with(|repo| repo.insert_invitation(&new_invitation(&other, None, 5)))
        .expect("insert");
    let later = second.expires_at + Duration::seconds(1);
    assert_eq!(
        store
            .write_with(|repo| repo.spend_invitation(&other.hash(), later))
            .expect("spend"),
        None
    );
    store
        .write_with(|repo| repo.revoke_invitation(second.id, now))
        .expect("revoke");
    assert_eq!(
        store
            .write_with(|repo| repo.spend_invitation(&other.hash(), now))
            .expect("spend"),
        None
    );
    let untouched = store
        .read_with(|repo| repo.find_invitation(second.id))
        .expect("find")
        .expect("there");
    assert_eq!(untouched.uses, 0);

    // A use counted in a unit of work that then fails is no use.
    let third = InvitationCode::generate().expect("a code");
    let kept = store
        .write_with(|repo| repo.insert_invitation(&new_invitation(&third, None, 1)))
        .expect("insert");
    let failed: Result<(), Error> = store.write_with(|repo| {
        repo.spend_invitation(&third.hash(), now)?;
        Err(Error::EmailTaken)
    });
    assert!(matches!(failed, Err(Error::EmailTaken)));
    let kept = store
        .read_with(|repo| repo.find_invitation(kept.id))
        .expect("find")
        .expect("there");
    assert_eq!(kept.uses, 0);
}

/// Sixteen registrations racing on one one-use code, each spending it in its own write
/// transaction, as registration does: exactly one gets an account.
pub fn a_one_use_invitation_admits_one_of_sixteen_racing_registrations(store: &dyn UserStore) {
    let code = InvitationCode::generate().expect("a code");
    store
        .write_with(|repo| repo.insert_invitation(&new_invitation(&code, None, 1)))
        .expect("insert");
    let registered: Vec<bool> = std::thread::scope(|scope| {
        let racers: Vec<_> = (0..16)
            .map(|i| {
                let code = &code;
                scope.spawn(move || {
                    let user = new_user(&format!("racer{i}@example.com"));
                    store
                        .write_with(|repo| {
                            if repo.spend_invitation(&code.hash(), crate::now())?.is_none() {
                                return Ok(false);
                            }
                            repo.insert(user.clone())?;
                            Ok(true)
                        })
                        .expect("a registration that ends")
                })
            })
            .collect();
        racers
            .into_iter()
            .map(|racer| racer.join().expect("no panic"))
            .collect()
    });
    assert_eq!(
        registered.iter().filter(|&&r| r).count(),
        1,
        "{registered:?}"
    );
    let accounts = store.read_with(|repo| repo.count_users()).expect("count");
    assert_eq!(accounts, 1);
}

/// Invitations list newest first with their total; the status filter takes each
/// invitation's status at the moment given (revoked before used before expired).
pub fn invitations_list_newest_first_by_status_at_a_moment(store: &dyn UserStore) {
    let now = crate::now();
    let mut ids = Vec::new();
    // Oldest first: active, used, expired, revoked, and one both used and revoked.
    for (max_uses, used, expired, revoked) in [
        (2, 0, false, false),
        (1, 1, false, false),
        (1, 0, true, false),
        (1, 0, false, true),
        (1, 1, false, true),
    ] {
        let code = InvitationCode::generate().expect("a code");
        let mut new = new_invitation(&code, None, max_uses);
        if expired {
            new.created_at = now - Duration::days(8);
            new.expires_at = now - Duration::days(1);
        }
        let id = store
            .write_with(|repo| {
                let id = repo.insert_invitation(&new)?.id;
                for _ in 0..used {
                    repo.spend_invitation(&code.hash(), now)?;
                }
                if revoked {
                    repo.revoke_invitation(id, now)?;
                }
                Ok(id)
            })
            .expect("seed");
        ids.push(id);
    }
    let list = |status: Option<InvitationStatus>, limit: Option<u64>, offset: u64| {
        let query = InvitationQuery {
            status,
            limit,
            offset,
        };
        let page = store
            .read_with(|repo| repo.list_invitations(&query, now))
            .expect("list");
        (
            page.total,
            page.items.iter().map(|i| i.id).collect::<Vec<_>>(),
        )
    };
    let newest_first: Vec<i64> = ids.iter().rev().copied().collect();
    assert_eq!(list(None, None, 0), (5, newest_first.clone()));
    assert_eq!(list(None, Some(2), 1), (5, newest_first[1..3].to_vec()));
    assert_eq!(list(None, Some(0), 0), (5, vec![]));
    assert_eq!(
        list(Some(InvitationStatus::Active), None, 0),
        (1, vec![ids[0]])
    );
    assert_eq!(
        list(Some(InvitationStatus::Used), None, 0),
        (1, vec![ids[1]])
    );
    assert_eq!(
        list(Some(InvitationStatus::Expired), None, 0),
        (1, vec![ids[2]])
    );
    assert_eq!(
        list(Some(InvitationStatus::Revoked), None, 0),
        (2, vec![ids[4], ids[3]])
    );
    // A week later the active one has expired too.
    let later = InvitationQuery {
        status: Some(InvitationStatus::Expired),
        ..InvitationQuery::default()
    };
    let expired_later = store
        .read_with(|repo| repo.list_invitations(&later, now + Duration::days(8)))
        .expect("list");
    assert_eq!(expired_later.total, 2);
}

fn new_webhook(url: &str, events: EventFilter) -> NewWebhook {
    NewWebhook {
        url: WebhookUrl::parse(url, false).expect("test url"),
        events,
        description: Some("the \"ops\" channel, ünïcode ✓".to_owned()),
        secret: WebhookSecret::generate().expect("a secret"),
        created_at: crate::now() - Duration::microseconds(1_234_567),
    }
}

fn add_webhook(store: &dyn UserStore, url: &str, events: EventFilter) -> Webhook {
    let new = new_webhook(url, events);
    store
        .write_with(|repo| repo.insert_webhook(&new))
        .expect("insert webhook")
}

fn new_event(event_type: EventType, at: DateTime<Utc>) -> NewEvent {
    let id = format!("msg_{}", crate::random::random_hex(16).expect("random"));
    NewEvent {
        payload: format!(r#"{{"id":"{id}","type":"{event_type}","data":{{"n":"ü"}}}}"#),
        id,
        event_type,
        at,
        only_webhook: None,
    }
}

fn append(store: &dyn UserStore, event: &NewEvent) -> u64 {
    store
        .write_with(|repo| repo.append_event(event))
        .expect("append event")
}

fn deliveries(store: &dyn UserStore, webhook: i64) -> Vec<Delivery> {
    store
        .read_with(|repo| repo.list_deliveries(webhook, &PageQuery::default()))
        .expect("list deliveries")
        .items
}

fn claim(
    store: &dyn UserStore,
    now: DateTime<Utc>,
    lease_until: DateTime<Utc>,
    limit: u64,
) -> Vec<DueDelivery> {
    store
        .write_rows_with(|repo| repo.claim_deliveries(now, lease_until, limit))
        .expect("claim")
}

fn ids_of(claimed: &[DueDelivery]) -> Vec<i64> {
    claimed.iter().map(|d| d.id).collect()
}

fn record(store: &dyn UserStore, id: i64, attempt: &Attempt) -> bool {
    store
        .write_rows_with(|repo| repo.record_attempt(id, attempt))
        .expect("record attempt")
}

/// Webhook endpoints are stored with every field (the subscription and the secret too),
/// listed oldest first with their total, changed, and deleted once; ids are not reused.
pub fn webhooks_round_trip(store: &dyn UserStore) {
    let all = new_webhook("https://hooks.example.com/all?x=1", EventFilter::All);
    let a = store
        .write_with(|repo| repo.insert_webhook(&all))
        .expect("insert");
    assert!(a.id > 0);
    assert_eq!(
        a,
        Webhook {
            id: a.id,
            url: "https://hooks.example.com/all?x=1".to_owned(),
            events: EventFilter::All,
            description: all.description.clone(),
            active: true,
            created_at: all.created_at,
            secret: all.secret.clone(),
        }
    );
    let mut some = new_webhook(
        "http://93.184.216.34:8080/hook",
        EventFilter::Only(vec![EventType::UserRejected, EventType::UserApproved]),
    );
    some.description = None;
    let b = store
        .write_with(|repo| repo.insert_webhook(&some))
        .expect("insert");
    assert!(b.id > a.id);
    assert_eq!(b.events, some.events);
    assert_eq!(b.description, None);
    let find = |id| store.read_with(|repo| repo.find_webhook(id)).expect("find");
    assert_eq!(find(a.id), Some(a.clone()));
    assert_eq!(find(b.id), Some(b.clone()));
    assert_eq!(find(i64::MAX), None);

    let list = |limit, offset| {
        let page = store
            .read_with(|repo| repo.list_webhooks(&PageQuery { limit, offset }))
            .expect("list");
        (page.total, page.items)
    };
    assert_eq!(list(None, 0), (2, vec![a.clone(), b.clone()]));
    assert_eq!(list(Some(1), 1), (2, vec![b.clone()]));
    assert_eq!(list(Some(1), 0), (2, vec![a.clone()]));
    assert_eq!(list(Some(0), 0), (2, vec![]));
    assert_eq!(list(None, 5), (2, vec![]));

    // Every field but the id and the creation time is written.
    let changed = Webhook {
        id: b.id,
        url: "https://other.example.org/h".to_owned(),
        events: EventFilter::Only(vec![EventType::UserDeleted]),
        description: Some("changed".to_owned()),
        active: false,
        created_at: b.created_at + Duration::days(1),
        secret: WebhookSecret::generate().expect("a secret"),
    };
    assert!(store
        .write_with(|repo| repo.save_webhook(&changed))
        .expect("save"));
    assert_eq!(
        find(b.id),
        Some(Webhook {
            created_at: b.created_at,
            ..changed.clone()
        })
    );
    let missing = Webhook {
        id: i64::MAX,
        ..changed
    };
    assert!(!store
        .write_with(|repo| repo.save_webhook(&missing))
        .expect("save missing"));

    assert!(store
        .write_with(|repo| repo.delete_webhook(a.id))
        .expect("delete"));
    assert!(!store
        .write_with(|repo| repo.delete_webhook(a.id))
        .expect("delete again"));
    assert_eq!(find(a.id), None);
    assert_eq!(list(None, 0).0, 1);
    // Ids are never handed out twice.
    let c = add_webhook(store, "https://c.example.com/", EventFilter::All);
    assert!(c.id > b.id, "{} reused", c.id);
}

/// An event goes to every active endpoint subscribed to its type (all events, or its type
/// among others), to no other; a test event to the one endpoint named, even a disabled
/// one. Each delivery is listed pending, due at the event's time, with its event's type;
/// an endpoint's deliveries list newest first with their total.
pub fn events_go_to_active_subscribed_endpoints(store: &dyn UserStore) {
    let all = add_webhook(store, "https://all.example.com/", EventFilter::All);
    let approved = add_webhook(
        store,
        "https://approved.example.com/",
        EventFilter::Only(vec![EventType::UserDeleted, EventType::UserApproved]),
    );
    let rejected = add_webhook(
        store,
        "https://rejected.example.com/",
        EventFilter::Only(vec![EventType::UserRejected]),
    );
    let mut off = add_webhook(store, "https://off.example.com/", EventFilter::All);
    off.active = false;
    assert!(store
        .write_with(|repo| repo.save_webhook(&off))
        .expect("save"));

    let at = crate::now() - Duration::seconds(3);
    let event = new_event(EventType::UserApproved, at);
    assert_eq!(append(store, &event), 2);
    let expected = |webhook: &Webhook, delivery: &Delivery| Delivery {
        id: delivery.id,
        webhook_id: webhook.id,
        event_id: event.id.clone(),
        event_type: "user.approved".to_owned(),
        status: DeliveryStatus::Pending,
        attempts: 0,
        last_attempt_at: None,
        last_status_code: None,
        last_error: None,
        next_attempt_at: Some(at),
        created_at: at,
    };
    let to_all = deliveries(store, all.id);
    assert_eq!(to_all.len(), 1);
    assert_eq!(to_all[0], expected(&all, &to_all[0]));
    let to_approved = deliveries(store, approved.id);
    assert_eq!(to_approved.len(), 1);
    assert_eq!(to_approved[0], expected(&approved, &to_approved[0]));
    assert_ne!(to_all[0].id, to_approved[0].id);
    assert_eq!(deliveries(store, rejected.id), vec![]);
    assert_eq!(deliveries(store, off.id), vec![]);

    // A type no `Only` endpoint names goes to the `*` one alone.
    assert_eq!(
        append(store, &new_event(EventType::UserPasswordReset, at)),
        1
    );
    // A test event goes to the endpoint named only, disabled or not.
    let mut test = new_event(EventType::WebhookTest, at);
    test.only_webhook = Some(off.id);
    assert_eq!(append(store, &test), 1);
    let to_off = deliveries(store, off.id);
    assert_eq!(to_off.len(), 1);
    assert_eq!(
        (to_off[0].event_id.as_str(), to_off[0].event_type.as_str()),
        (test.id.as_str(), "webhook.test")
    );
    test = new_event(EventType::WebhookTest, at);
    test.only_webhook = Some(i64::MAX);
    assert_eq!(append(store, &test), 0);

    // Newest first, paged, with the total.
    let page = |limit, offset| {
        let page = store
            .read_with(|repo| repo.list_deliveries(all.id, &PageQuery { limit, offset }))
            .expect("list");
        (
            page.total,
            page.items
                .iter()
                .map(|d| d.event_type.clone())
                .collect::<Vec<_>>(),
        )
    };
    assert_eq!(
        page(None, 0),
        (
            2,
            vec!["user.password_reset".to_owned(), "user.approved".to_owned()]
        )
    );
    assert_eq!(page(Some(1), 1), (2, vec!["user.approved".to_owned()]));
    assert_eq!(page(Some(0), 0), (2, vec![]));
}

/// The outbox is written in the change's transaction: a unit of work that appends an
/// event and then fails leaves neither the event nor its deliveries.
pub fn a_rolled_back_change_leaves_no_event(store: &dyn UserStore) {
    let all = add_webhook(store, "https://all.example.com/", EventFilter::All);
    let event = new_event(EventType::UserCreated, crate::now());
    let failed: Result<(), Error> = store.write_with(|repo| {
        assert_eq!(repo.append_event(&event)?, 1);
        Err(Error::UserNotFound)
    });
    assert!(matches!(failed, Err(Error::UserNotFound)), "{failed:?}");
    assert_eq!(deliveries(store, all.id), vec![]);
    let backlog = store
        .read_with(|repo| repo.outbox_backlog(crate::now()))
        .expect("backlog");
    assert_eq!(backlog, (0, None));
    // Written again, outside the failed unit of work, it makes one delivery: nothing of
    // the first stayed behind.
    assert_eq!(append(store, &event), 1);
    assert_eq!(deliveries(store, all.id).len(), 1);
}

/// A claim takes pending deliveries due at its time, oldest due first, at most the limit,
/// and none claimed by an earlier claim whose lease has not run out; once it has, they are
/// claimed again. Deliveries of a disabled endpoint fail instead of being claimed.
pub fn claims_take_due_deliveries_once_per_lease(store: &dyn UserStore) {
    let hook = add_webhook(store, "https://all.example.com/", EventFilter::All);
    let t0 = crate::now();
    let first = new_event(EventType::UserApproved, t0 - Duration::seconds(10));
    let second = new_event(EventType::UserRejected, t0 - Duration::seconds(5));
    let later = new_event(EventType::UserDeleted, t0 + Duration::seconds(60));
    // Written newest first: the claim orders by due time, not by id.
    for event in [&later, &second, &first] {
        assert_eq!(append(store, event), 1);
    }
    let id_of = |event: &NewEvent| {
        deliveries(store, hook.id)
            .into_iter()
            .find(|d| d.event_id == event.id)
            .expect("a delivery")
            .id
    };
    let (d_first, d_second, d_later) = (id_of(&first), id_of(&second), id_of(&later));

    let lease = t0 + Duration::seconds(30);
    let claimed = claim(store, t0, lease, 1);
    assert_eq!(
        claimed,
        vec![DueDelivery {
            id: d_first,
            webhook_id: hook.id,
            url: hook.url.clone(),
            secret: hook.secret.clone(),
            event_id: first.id.clone(),
            payload: first.payload.clone(),
            attempts: 0,
        }]
    );
    assert_eq!(ids_of(&claim(store, t0, lease, 10)), [d_second]);
    assert_eq!(ids_of(&claim(store, t0, lease, 10)), Vec::<i64>::new());
    assert_eq!(claim(store, t0, lease, 0), vec![]);
    // The claim changes nothing the log shows.
    assert!(deliveries(store, hook.id)
        .iter()
        .all(|d| d.status == DeliveryStatus::Pending && d.attempts == 0));

    // After the lease, both again (oldest due first); the later one is not due yet.
    let after = t0 + Duration::seconds(31);
    let lease = t0 + Duration::seconds(90);
    assert_eq!(ids_of(&claim(store, after, lease, 10)), [d_first, d_second]);
    // Due at exactly its time.
    assert_eq!(
        ids_of(&claim(store, t0 + Duration::seconds(60), lease, 10)),
        [d_later]
    );
    assert_eq!(
        ids_of(&claim(store, t0 + Duration::seconds(61), lease, 10)),
        Vec::<i64>::new()
    );

    // An endpoint turned off: its pending deliveries fail at the next claim.
    let mut off = add_webhook(store, "https://off.example.com/", EventFilter::All);
    let event = new_event(EventType::UserCreated, t0);
    assert_eq!(append(store, &event), 2);
    off.active = false;
    assert!(store
        .write_with(|repo| repo.save_webhook(&off))
        .expect("save"));
    let d_new = id_of(&event);
    let claimed = claim(store, t0 + Duration::seconds(200), lease, 10);
    assert_eq!(ids_of(&claimed), [d_first, d_second, d_new, d_later]);
    assert!(claimed.iter().all(|d| d.webhook_id == hook.id));
    let failed = deliveries(store, off.id);
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].status, DeliveryStatus::Failed);
    assert_eq!(failed[0].next_attempt_at, None);
    assert_eq!(failed[0].attempts, 0);
    assert_eq!(
        failed[0].last_error.as_deref(),
        Some("the endpoint was disabled")
    );
    // Turned on again, the endpoint gets new events, not the failed one.
    off.active = true;
    assert!(store
        .write_with(|repo| repo.save_webhook(&off))
        .expect("save"));
    assert_eq!(
        claim(store, t0 + Duration::seconds(300), lease, 10)
            .iter()
            .filter(|d| d.webhook_id == off.id)
            .count(),
        0
    );
}

/// Eight dispatchers claiming at once, each in its own row-guarded write, five at a time
/// until nothing is left: each of 100 due deliveries is claimed exactly once.
pub fn eight_dispatchers_claim_each_delivery_once(store: &dyn UserStore) {
    let hook = add_webhook(store, "https://all.example.com/", EventFilter::All);
    let t0 = crate::now();
    store
        .write_with(|repo| {
            for i in 0..100 {
                repo.append_event(&new_event(
                    EventType::UserCreated,
                    t0 - Duration::milliseconds(i % 7),
                ))?;
            }
            Ok(())
        })
        .expect("append");
    let lease = t0 + Duration::hours(1);
    let barrier = std::sync::Barrier::new(8);
    let mut claimed: Vec<i64> = std::thread::scope(|scope| {
        let dispatchers: Vec<_> = (0..8)
            .map(|_| {
                let barrier = &barrier;
                scope.spawn(move || {
                    barrier.wait();
                    let mut mine = Vec::new();
                    loop {
                        let batch = store
                            .write_rows_with(|repo| repo.claim_deliveries(t0, lease, 5))
                            .expect("claim");
                        assert!(batch.len() <= 5, "{} claimed at once", batch.len());
                        if batch.is_empty() {
                            return mine;
                        }
                        mine.extend(batch.iter().map(|d| d.id));
                    }
                })
            })
            .collect();
        dispatchers
            .into_iter()
            .flat_map(|d| d.join().expect("dispatcher"))
            .collect()
    });
    claimed.sort_unstable();
    let mut all: Vec<i64> = deliveries(store, hook.id).iter().map(|d| d.id).collect();
    all.sort_unstable();
    assert_eq!(all.len(), 100);
    assert_eq!(claimed, all, "every delivery claimed exactly once");
    assert_eq!(claim(store, t0, lease, 100), vec![]);
}

/// Each attempt counts, with its time, status and error, and releases the claim: a 2xx
/// delivers, a retry stays pending until its time (a time past is due at once), a final
/// failure fails, and 410 Gone fails and disables the endpoint.
pub fn attempts_are_recorded_and_release_the_claim(store: &dyn UserStore) {
    let hook = add_webhook(store, "https://all.example.com/", EventFilter::All);
    let gone = add_webhook(
        store,
        "https://gone.example.com/",
        EventFilter::Only(vec![EventType::UserDisabled]),
    );
    let t0 = crate::now();
    for event_type in [
        EventType::UserApproved,
        EventType::UserRejected,
        EventType::UserDeleted,
        EventType::UserDisabled,
    ] {
        append(store, &new_event(event_type, t0 - Duration::seconds(1)));
    }
    let lease = t0 + Duration::seconds(60);
    let claimed = claim(store, t0, lease, 10);
    assert_eq!(claimed.len(), 5);
    let by_type = |webhook: i64, name: &str| {
        deliveries(store, webhook)
            .into_iter()
            .find(|d| d.event_type == name)
            .expect("a delivery")
    };
    let delivered = by_type(hook.id, "user.approved").id;
    let retried = by_type(hook.id, "user.rejected").id;
    let failed = by_type(hook.id, "user.deleted").id;
    let to_gone = by_type(gone.id, "user.disabled").id;
    let at = t0 + Duration::microseconds(1_500_001);

    assert!(record(
        store,
        delivered,
        &Attempt {
            at,
            status_code: Some(204),
            error: None,
            next: AttemptNext::Delivered,
        }
    ));
    let d = by_type(hook.id, "user.approved");
    assert_eq!(
        (d.status, d.attempts, d.last_attempt_at, d.last_status_code),
        (DeliveryStatus::Delivered, 1, Some(at), Some(204))
    );
    assert_eq!((d.last_error, d.next_attempt_at), (None, None));

    // A retry due already (its time past) is claimable at once: the claim was released.
    assert!(record(
        store,
        retried,
        &Attempt {
            at,
            status_code: Some(503),
            error: Some("HTTP 503".to_owned()),
            next: AttemptNext::RetryAt(t0),
        }
    ));
    let d = by_type(hook.id, "user.rejected");
    assert_eq!(
        (d.status, d.attempts, d.last_status_code, d.next_attempt_at),
        (DeliveryStatus::Pending, 1, Some(503), Some(t0))
    );
    assert_eq!(d.last_error.as_deref(), Some("HTTP 503"));
    let again = claim(store, t0, lease, 10);
    assert_eq!(ids_of(&again), [retried]);
    assert_eq!(again[0].attempts, 1);
    assert!(record(
        store,
        retried,
        &Attempt {
            at,
            status_code: None,
            error: Some("timed out".to_owned()),
            next: AttemptNext::RetryAt(t0 + Duration::seconds(30)),
        }
    ));
    let d = by_type(hook.id, "user.rejected");
    assert_eq!(
        (d.status, d.attempts, d.last_status_code, d.next_attempt_at),
        (
            DeliveryStatus::Pending,
            2,
            None,
            Some(t0 + Duration::seconds(30))
        )
    );
    assert_eq!(d.last_error.as_deref(), Some("timed out"));

    assert!(record(
        store,
        failed,
        &Attempt {
            at,
            status_code: None,
            error: Some("connection refused".to_owned()),
            next: AttemptNext::Failed,
        }
    ));
    let d = by_type(hook.id, "user.deleted");
    assert_eq!(
        (
            d.status,
            d.attempts,
            d.next_attempt_at,
            d.last_error.as_deref()
        ),
        (DeliveryStatus::Failed, 1, None, Some("connection refused"))
    );

    assert!(record(
        store,
        to_gone,
        &Attempt {
            at,
            status_code: Some(410),
            error: Some("HTTP 410".to_owned()),
            next: AttemptNext::Gone,
        }
    ));
    let d = by_type(gone.id, "user.disabled");
    assert_eq!(
        (d.status, d.attempts, d.next_attempt_at, d.last_status_code),
        (DeliveryStatus::Failed, 1, None, Some(410))
    );
    let gone_now = store
        .read_with(|repo| repo.find_webhook(gone.id))
        .expect("find")
        .expect("still there");
    assert!(!gone_now.active, "410 Gone disables the endpoint");
    assert!(
        store
            .read_with(|repo| repo.find_webhook(hook.id))
            .expect("find")
            .expect("there")
            .active
    );

    assert!(!record(
        store,
        i64::MAX,
        &Attempt {
            at,
            status_code: Some(200),
            error: None,
            next: AttemptNext::Delivered,
        }
    ));
    // Only the retry is left to claim, once due.
    assert_eq!(
        ids_of(&claim(store, t0 + Duration::seconds(29), lease, 10)),
        Vec::<i64>::new()
    );
    assert_eq!(
        ids_of(&claim(
            store,
            t0 + Duration::seconds(30),
            t0 + Duration::seconds(90),
            10
        )),
        [retried]
    );
}

/// Attempts recorded together (`record_attempts`, one statement in the SQL stores) leave
/// each delivery as recording it alone would: its count, time (to the microsecond),
/// status code, error (quotes, non-ASCII) and what follows, the claim released; 410 Gone
/// disables its endpoint; a delivery that is gone is not counted.
pub fn attempts_recorded_together_as_one_by_one(store: &dyn UserStore) {
    let hook = add_webhook(store, "https://all.example.com/", EventFilter::All);
    let gone = add_webhook(
        store,
        "https://gone.example.com/",
        EventFilter::Only(vec![EventType::UserDisabled]),
    );
    let t0 = crate::now();
    for event_type in [
        EventType::UserApproved,
        EventType::UserRejected,
        EventType::UserDeleted,
        EventType::UserEnabled,
        EventType::UserDisabled,
    ] {
        append(store, &new_event(event_type, t0 - Duration::seconds(1)));
    }
    let lease = t0 + Duration::seconds(60);
    assert_eq!(claim(store, t0, lease, 10).len(), 6);
    let by_type = |webhook: i64, name: &str| {
        deliveries(store, webhook)
            .into_iter()
            .find(|d| d.event_type == name)
            .expect("a delivery")
    };
    let at = |micros: i64| t0 + Duration::microseconds(1_500_001 + micros);
    let error = "the receiver said \"no\" — ü\\n";
    let done = vec![
        (
            by_type(hook.id, "user.approved").id,
            Attempt {
                at: at(0),
                status_code: Some(204),
                error: None,
                next: AttemptNext::Delivered,
            },
        ),
        (
            by_type(hook.id, "user.rejected").id,
            Attempt {
                at: at(1),
                status_code: Some(503),
                error: Some(error.to_owned()),
                next: AttemptNext::RetryAt(t0),
            },
        ),
        (
            by_type(hook.id, "user.deleted").id,
            Attempt {
                at: at(2),
                status_code: None,
                error: Some("timed out".to_owned()),
                next: AttemptNext::RetryAt(t0 + Duration::microseconds(30_000_007)),
            },
        ),
        (
            by_type(hook.id, "user.enabled").id,
            Attempt {
                at: at(3),
                status_code: None,
                error: Some("connection refused".to_owned()),
                next: AttemptNext::Failed,
            },
        ),
        (
            by_type(gone.id, "user.disabled").id,
            Attempt {
                at: at(4),
                status_code: Some(410),
                error: Some("HTTP 410".to_owned()),
                next: AttemptNext::Gone,
            },
        ),
        (
            i64::MAX,
            Attempt {
                at: at(5),
                status_code: Some(200),
                error: None,
                next: AttemptNext::Delivered,
            },
        ),
    ];
    let recorded = store
        .write_rows_with(|repo| repo.record_attempts(&done))
        .expect("record attempts");
    assert_eq!(recorded, 5, "the missing delivery is not counted");
    assert_eq!(
        store
            .write_rows_with(|repo| repo.record_attempts(&[]))
            .expect("record nothing"),
        0
    );

    let d = by_type(hook.id, "user.approved");
    assert_eq!(
        (d.status, d.attempts, d.last_attempt_at, d.last_status_code),
        (DeliveryStatus::Delivered, 1, Some(at(0)), Some(204))
    );
    assert_eq!((d.last_error, d.next_attempt_at), (None, None));
    let d = by_type(hook.id, "user.rejected");
    assert_eq!(
        (d.status, d.attempts, d.last_attempt_at, d.last_status_code),
        (DeliveryStatus::Pending, 1, Some(at(1)), Some(503))
    );
    assert_eq!(
        (d.last_error.as_deref(), d.next_attempt_at),
        (Some(error), Some(t0))
    );
    let d = by_type(hook.id, "user.deleted");
    assert_eq!(
        (d.status, d.attempts, d.last_status_code, d.next_attempt_at),
        (
            DeliveryStatus::Pending,
            1,
            None,
            Some(t0 + Duration::microseconds(30_000_007))
        )
    );
    let d = by_type(hook.id, "user.enabled");
    assert_eq!(
        (d.status, d.next_attempt_at, d.last_error.as_deref()),
        (DeliveryStatus::Failed, None, Some("connection refused"))
    );
    let d = by_type(gone.id, "user.disabled");
    assert_eq!(
        (d.status, d.attempts, d.last_status_code),
        (DeliveryStatus::Failed, 1, Some(410))
    );
    let find = |id: i64| {
        store
            .read_with(|repo| repo.find_webhook(id))
            .expect("find")
            .expect("still there")
    };
    assert!(!find(gone.id).active, "410 Gone disables the endpoint");
    assert!(find(hook.id).active);

    // The claims are released: the retry due already is claimable at once, and the later
    // one at its time (compared as the store keeps times).
    assert_eq!(
        ids_of(&claim(store, t0, lease, 10)),
        [by_type(hook.id, "user.rejected").id]
    );
    assert_eq!(
        ids_of(&claim(
            store,
            t0 + Duration::microseconds(30_000_006),
            lease,
            10
        )),
        Vec::<i64>::new()
    );
    assert_eq!(
        ids_of(&claim(
            store,
            t0 + Duration::microseconds(30_000_007),
            lease,
            10
        )),
        [by_type(hook.id, "user.deleted").id]
    );
}

/// A sole dispatcher's read (`due_deliveries`): due deliveries of active endpoints, oldest
/// due first, without those it skips and those still leased, and no lease written; it
/// tells whether an endpoint is off, whose pending deliveries `fail_inactive_deliveries`
/// then fails.
pub fn a_sole_dispatcher_reads_due_deliveries_without_a_lease(store: &dyn UserStore) {
    let hook = add_webhook(store, "https://all.example.com/", EventFilter::All);
    let t0 = crate::now();
    let first = new_event(EventType::UserApproved, t0 - Duration::seconds(10));
    let second = new_event(EventType::UserRejected, t0 - Duration::seconds(5));
    let third = new_event(EventType::UserDeleted, t0 - Duration::seconds(1));
    let later = new_event(EventType::UserEnabled, t0 + Duration::seconds(60));
    for event in [&later, &third, &second, &first] {
        assert_eq!(append(store, event), 1);
    }
    let id_of = |event: &NewEvent| {
        deliveries(store, hook.id)
            .into_iter()
            .find(|d| d.event_id == event.id)
            .expect("a delivery")
            .id
    };
    let (d1, d2, d3, d_later) = (id_of(&first), id_of(&second), id_of(&third), id_of(&later));
    let due = |now: DateTime<Utc>, limit: u64, skip: &[i64]| {
        store
            .read_with(|repo| repo.due_deliveries(now, limit, skip))
            .expect("due deliveries")
    };

    let read = due(t0, 10, &[]);
    assert_eq!(ids_of(&read.due), [d1, d2, d3]);
    assert!(!read.inactive_endpoints);
    assert_eq!(
        read.due[0],
        DueDelivery {
            id: d1,
            webhook_id: hook.id,
            url: hook.url.clone(),
            secret: hook.secret.clone(),
            event_id: first.id.clone(),
            payload: first.payload.clone(),
            attempts: 0,
        }
    );
    // Read again, the same: nothing was leased.
    assert_eq!(ids_of(&due(t0, 10, &[]).due), [d1, d2, d3]);
    assert_eq!(ids_of(&due(t0, 2, &[]).due), [d1, d2]);
    // Skipped ones are left out, and the limit is filled from the rest.
    assert_eq!(ids_of(&due(t0, 2, &[d1]).due), [d2, d3]);
    assert_eq!(ids_of(&due(t0, 10, &[d2, i64::MAX]).due), [d1, d3]);
    assert_eq!(ids_of(&due(t0, 10, &[d1, d2, d3]).due), Vec::<i64>::new());
    assert!(due(t0, 0, &[]).due.is_empty());
    assert_eq!(
        ids_of(&due(t0 + Duration::seconds(60), 10, &[d1]).due),
        [d2, d3, d_later]
    );

    // A lease written by a claim is respected until it runs out.
    let lease = t0 + Duration::seconds(30);
    assert_eq!(ids_of(&claim(store, t0, lease, 1)), [d1]);
    assert_eq!(ids_of(&due(t0, 10, &[]).due), [d2, d3]);
    assert_eq!(
        ids_of(&due(t0 + Duration::seconds(31), 10, &[]).due),
        [d1, d2, d3]
    );

    // An endpoint turned off: its deliveries are not due, the read says so, and failing
    // them is a write of their own.
    let mut off = add_webhook(store, "https://off.example.com/", EventFilter::All);
    let event = new_event(EventType::UserCreated, t0 - Duration::seconds(20));
    assert_eq!(append(store, &event), 2);
    off.active = false;
    assert!(store
        .write_with(|repo| repo.save_webhook(&off))
        .expect("save"));
    let read = due(t0 + Duration::seconds(31), 10, &[]);
    assert!(read.inactive_endpoints);
    assert!(read.due.iter().all(|d| d.webhook_id == hook.id));
    assert_eq!(read.due.len(), 4);
    assert_eq!(
        store
            .write_rows_with(|repo| repo.fail_inactive_deliveries())
            .expect("fail"),
        1
    );
    assert_eq!(
        store
            .write_rows_with(|repo| repo.fail_inactive_deliveries())
            .expect("fail again"),
        0
    );
    let failed = deliveries(store, off.id);
    assert_eq!(
        (failed[0].status, failed[0].last_error.as_deref()),
        (DeliveryStatus::Failed, Some("the endpoint was disabled"))
    );
    assert_eq!(deliveries(store, hook.id).len(), 5);
    assert!(deliveries(store, hook.id)
        .iter()
        .all(|d| d.status == DeliveryStatus::Pending));
    off.active = true;
    assert!(store
        .write_with(|repo| repo.save_webhook(&off))
        .expect("save"));
    assert!(!due(t0, 10, &[]).inactive_endpoints);
}

/// Deleting an endpoint deletes its deliveries; the backlog counts pending deliveries and
/// dates the oldest due; pruning deletes settled deliveries older than the cut-off, and
/// keeps pending ones however old.
pub fn deliveries_go_with_their_endpoint_and_old_settled_ones_are_pruned(store: &dyn UserStore) {
    let kept = add_webhook(store, "https://kept.example.com/", EventFilter::All);
    let removed = add_webhook(store, "https://removed.example.com/", EventFilter::All);
    let t0 = crate::now();
    let backlog = |now| {
        store
            .read_with(|repo| repo.outbox_backlog(now))
            .expect("backlog")
    };
    assert_eq!(backlog(t0), (0, None));
    let oldest = new_event(EventType::UserApproved, t0 - Duration::hours(2));
    let old = new_event(EventType::UserRejected, t0 - Duration::hours(1));
    let future = new_event(EventType::UserDeleted, t0 + Duration::hours(1));
    let mut orphan = new_event(EventType::WebhookTest, t0 - Duration::hours(3));
    orphan.only_webhook = Some(i64::MAX);
    for (event, n) in [(&oldest, 2), (&old, 2), (&future, 2), (&orphan, 0)] {
        assert_eq!(append(store, event), n);
    }
    assert_eq!(backlog(t0), (6, Some(oldest.at)));
    assert_eq!(backlog(t0 - Duration::hours(3)), (6, None));

    assert!(store
        .write_with(|repo| repo.delete_webhook(removed.id))
        .expect("delete"));
    assert_eq!(deliveries(store, removed.id), vec![]);
    assert_eq!(backlog(t0), (3, Some(oldest.at)), "its deliveries are gone");

    let of = |event: &NewEvent| {
        deliveries(store, kept.id)
            .into_iter()
            .find(|d| d.event_id == event.id)
            .expect("a delivery")
            .id
    };
    claim(store, t0, t0 + Duration::minutes(1), 10);
    assert!(record(
        store,
        of(&oldest),
        &Attempt {
            at: t0,
            status_code: Some(200),
            error: None,
            next: AttemptNext::Delivered,
        }
    ));
    assert_eq!(backlog(t0), (2, Some(old.at)));

    // The oldest event's delivery is settled; the orphan, going nowhere, was never written; the old
    // one is pending and the future one is younger than the cut-off.
    assert_eq!(
        store
            .write_with(|repo| repo.prune_deliveries(t0))
            .expect("prune"),
        1
    );
    let left: Vec<String> = deliveries(store, kept.id)
        .into_iter()
        .map(|d| d.event_id)
        .collect();
    assert_eq!(left, [future.id.clone(), old.id.clone()]);
    // A settled delivery younger than the cut-off stays too.
    assert!(record(
        store,
        of(&future),
        &Attempt {
            at: t0,
            status_code: Some(200),
            error: None,
            next: AttemptNext::Delivered,
        }
    ));
    assert_eq!(
        store
            .write_with(|repo| repo.prune_deliveries(t0))
            .expect("prune"),
        0
    );
    assert_eq!(deliveries(store, kept.id).len(), 2);
    assert_eq!(
        store
            .write_with(|repo| repo.prune_deliveries(t0 + Duration::hours(2)))
            .expect("prune"),
        1,
        "later, the settled one goes and the pending one stays"
    );
    let left: Vec<String> = deliveries(store, kept.id)
        .into_iter()
        .map(|d| d.event_id)
        .collect();
    assert_eq!(left, [old.id.as_str()]);
}

fn new_mail(kind: MailKind, subject: &str, at: DateTime<Utc>) -> NewMail {
    NewMail {
        kind,
        to: "Ünïcode.Admin+tag@example.com".to_owned(),
        subject: subject.to_owned(),
        body: format!("Hello,\r\n\r\n{subject}: ✓ \"quoted\" 'single' %_\\\nBye.\n"),
        at,
    }
}

fn queue(store: &dyn UserStore, mail: &NewMail) {
    store
        .write_with(|repo| repo.append_mail(mail))
        .expect("append mail");
}

fn claim_mails(
    store: &dyn UserStore,
    now: DateTime<Utc>,
    lease_until: DateTime<Utc>,
    limit: u64,
) -> Vec<DueMail> {
    store
        .write_rows_with(|repo| repo.claim_mails(now, lease_until, limit))
        .expect("claim mails")
}

fn subjects(claimed: &[DueMail]) -> Vec<&str> {
    claimed.iter().map(|m| m.subject.as_str()).collect()
}

fn record_mail(store: &dyn UserStore, id: i64, attempt: &Attempt) -> bool {
    store
        .write_rows_with(|repo| repo.record_mail_attempt(id, attempt))
        .expect("record mail attempt")
}

fn mail_backlog(store: &dyn UserStore) -> u64 {
    store
        .read_with(|repo| repo.mail_backlog())
        .expect("mail backlog")
}

/// A queued mail comes back from a claim with every field as written (its kind parsed
/// back, every kind), no attempt made, fresh positive ids; the backlog counts it.
pub fn mails_round_trip_through_a_claim(store: &dyn UserStore) {
    assert_eq!(mail_backlog(store), 0);
    let t0 = crate::now();
    let kinds = [
        MailKind::AdminDigest,
        MailKind::Decision,
        MailKind::Invitation,
        MailKind::Test,
    ];
    // Queued newest first: the claim orders by due time.
    let queued: Vec<NewMail> = kinds
        .iter()
        .enumerate()
        .map(|(i, kind)| {
            let age = Duration::microseconds(1_000_001 * (i64::try_from(i).expect("small") + 1));
            new_mail(*kind, &format!("{} ✉ {i}", kind.as_str()), t0 - age)
        })
        .collect();
    for mail in &queued {
        queue(store, mail);
    }
    assert_eq!(mail_backlog(store), 4);
    let claimed = claim_mails(store, t0, t0 + Duration::seconds(30), 10);
    assert_eq!(claimed.len(), 4, "{claimed:?}");
    let mut ids: Vec<i64> = claimed.iter().map(|m| m.id).collect();
    assert!(ids.iter().all(|id| *id > 0), "{ids:?}");
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 4, "one id each");
    for (got, sent) in claimed.iter().zip(queued.iter().rev()) {
        assert_eq!(
            got,
            &DueMail {
                id: got.id,
                kind: sent.kind,
                to: sent.to.clone(),
                subject: sent.subject.clone(),
                body: sent.body.clone(),
                attempts: 0,
            }
        );
    }
    // A claim is no attempt: still pending.
    assert_eq!(mail_backlog(store), 4);
}

/// The outbox is written in the change's transaction: a unit of work that queues a mail
/// and then fails leaves no mail.
pub fn a_rolled_back_change_leaves_no_mail(store: &dyn UserStore) {
    let t0 = crate::now();
    let mail = new_mail(MailKind::Decision, "rolled back", t0);
    let failed: Result<(), Error> = store.write_with(|repo| {
        repo.append_mail(&mail)?;
        assert_eq!(repo.mail_backlog()?, 1, "seen inside its transaction");
        Err(Error::UserNotFound)
    });
    assert!(matches!(failed, Err(Error::UserNotFound)), "{failed:?}");
    assert_eq!(mail_backlog(store), 0);
    assert_eq!(
        claim_mails(store, t0, t0 + Duration::seconds(30), 10),
        vec![]
    );
    // Committed, the same mail is there.
    queue(store, &mail);
    assert_eq!(
        subjects(&claim_mails(store, t0, t0 + Duration::seconds(30), 10)),
        ["rolled back"]
    );
}

/// A claim takes pending mails due at its time, oldest due first, at most the limit, and
/// none claimed by an earlier claim whose lease has not run out; once it has, they are
/// claimed again. A mail is due at exactly its time.
pub fn mail_claims_take_due_mails_once_per_lease(store: &dyn UserStore) {
    let t0 = crate::now();
    let first = new_mail(MailKind::Decision, "first", t0 - Duration::seconds(10));
    let second = new_mail(MailKind::Invitation, "second", t0 - Duration::seconds(5));
    let later = new_mail(MailKind::AdminDigest, "later", t0 + Duration::seconds(60));
    // Written newest first: the claim orders by due time, not by id.
    for mail in [&later, &second, &first] {
        queue(store, mail);
    }
    let lease = t0 + Duration::seconds(30);
    assert_eq!(claim_mails(store, t0, lease, 0), vec![]);
    assert_eq!(subjects(&claim_mails(store, t0, lease, 1)), ["first"]);
    assert_eq!(subjects(&claim_mails(store, t0, lease, 10)), ["second"]);
    assert_eq!(claim_mails(store, t0, lease, 10), vec![]);
    // At the lease's very end it still holds; after it, both again (oldest due first),
    // the later one not due yet.
    assert_eq!(claim_mails(store, lease, lease, 10), vec![]);
    let after = t0 + Duration::seconds(31);
    let lease = t0 + Duration::seconds(90);
    assert_eq!(
        subjects(&claim_mails(store, after, lease, 10)),
        ["first", "second"]
    );
    // Due at exactly its time.
    assert_eq!(
        subjects(&claim_mails(store, t0 + Duration::seconds(60), lease, 10)),
        ["later"]
    );
    assert_eq!(
        claim_mails(store, t0 + Duration::seconds(61), lease, 10),
        vec![]
    );
    // All three once every lease ran out, oldest due first, at most the limit.
    let end = t0 + Duration::seconds(91);
    assert_eq!(
        subjects(&claim_mails(store, end, end, 2)),
        ["first", "second"]
    );
    assert_eq!(subjects(&claim_mails(store, end, end, 2)), ["later"]);
    assert_eq!(mail_backlog(store), 3, "claims change no status");
}

/// Eight dispatchers claiming at once, each in its own row-guarded write, five at a time
/// until nothing is left: each of 60 due mails is claimed exactly once.
pub fn eight_dispatchers_claim_each_mail_once(store: &dyn UserStore) {
    let t0 = crate::now();
    store
        .write_with(|repo| {
            for i in 0..60 {
                repo.append_mail(&new_mail(
                    MailKind::Decision,
                    &format!("mail {i}"),
                    t0 - Duration::milliseconds(i % 7),
                ))?;
            }
            Ok(())
        })
        .expect("append");
    let lease = t0 + Duration::hours(1);
    let barrier = std::sync::Barrier::new(8);
    let mut claimed: Vec<i64> = std::thread::scope(|scope| {
        let dispatchers: Vec<_> = (0..8)
            .map(|_| {
                let barrier = &barrier;
                scope.spawn(move || {
                    barrier.wait();
                    let mut mine = Vec::new();
                    loop {
                        let batch = store
                            .write_rows_with(|repo| repo.claim_mails(t0, lease, 5))
                            .expect("claim");
                        assert!(batch.len() <= 5, "{} claimed at once", batch.len());
                        if batch.is_empty() {
                            return mine;
                        }
                        mine.extend(batch.iter().map(|m| m.id));
                    }
                })
            })
            .collect();
        dispatchers
            .into_iter()
            .flat_map(|d| d.join().expect("dispatcher"))
            .collect()
    });
    claimed.sort_unstable();
    assert_eq!(claim_mails(store, t0, lease, 100), vec![]);
    // Once the lease is over, every mail is claimed again: the same 60.
    let after = lease + Duration::seconds(1);
    let mut all: Vec<i64> = claim_mails(store, after, after, 100)
        .iter()
        .map(|m| m.id)
        .collect();
    all.sort_unstable();
    assert_eq!(all.len(), 60);
    assert_eq!(claimed, all, "every mail claimed exactly once");
}

/// Each attempt counts and releases the claim: a sent mail is never claimed again, a
/// retry stays pending until its time (a time past is due at once) with its attempts
/// counted, a final failure (or `Gone`, a failure too) is never claimed again. The
/// backlog counts the pending ones; an attempt at a missing mail reports it missing.
pub fn mail_attempts_are_recorded_and_release_the_claim(store: &dyn UserStore) {
    let t0 = crate::now();
    for subject in ["sent", "retried", "failed", "gone"] {
        queue(
            store,
            &new_mail(MailKind::Decision, subject, t0 - Duration::seconds(1)),
        );
    }
    let lease = t0 + Duration::seconds(60);
    let claimed = claim_mails(store, t0, lease, 10);
    assert_eq!(subjects(&claimed), ["sent", "retried", "failed", "gone"]);
    let id = |subject: &str| {
        claimed
            .iter()
            .find(|m| m.subject == subject)
            .expect("claimed")
            .id
    };
    let at = t0 + Duration::microseconds(1_500_001);
    let attempt = |status_code, error: Option<&str>, next| Attempt {
        at,
        status_code,
        error: error.map(str::to_owned),
        next,
    };
    assert_eq!(mail_backlog(store), 4);

    assert!(record_mail(
        store,
        id("sent"),
        &attempt(Some(250), None, AttemptNext::Delivered)
    ));
    assert_eq!(mail_backlog(store), 3);

    // A retry due already (its time past) is claimable at once: the claim was released.
    assert!(record_mail(
        store,
        id("retried"),
        &attempt(
            Some(451),
            Some("451 4.7.1 try again later"),
            AttemptNext::RetryAt(t0)
        )
    ));
    assert_eq!(mail_backlog(store), 3, "a retry is still pending");
    let again = claim_mails(store, t0, lease, 10);
    assert_eq!(subjects(&again), ["retried"]);
    assert_eq!(again[0].attempts, 1);
    assert!(record_mail(
        store,
        id("retried"),
        &attempt(
            None,
            Some("connection timed out"),
            AttemptNext::RetryAt(t0 + Duration::seconds(30))
        )
    ));

    assert!(record_mail(
        store,
        id("failed"),
        &attempt(
            Some(550),
            Some("550 5.1.1 no such user"),
            AttemptNext::Failed
        )
    ));
    assert_eq!(mail_backlog(store), 2);
    assert!(record_mail(
        store,
        id("gone"),
        &attempt(Some(554), Some("554 rejected"), AttemptNext::Gone)
    ));
    assert_eq!(mail_backlog(store), 1, "only the retry is pending");

    assert!(!record_mail(
        store,
        i64::MAX,
        &attempt(Some(250), None, AttemptNext::Delivered)
    ));
    // Only the retry is left to claim, once due, its two attempts counted; the others
    // are not claimed again even long after every lease.
    assert_eq!(
        claim_mails(store, t0 + Duration::seconds(29), lease, 10),
        vec![]
    );
    let last = claim_mails(
        store,
        t0 + Duration::seconds(30),
        t0 + Duration::seconds(90),
        10,
    );
    assert_eq!(subjects(&last), ["retried"]);
    assert_eq!(last[0].attempts, 2);
    let much_later = t0 + Duration::days(1);
    assert_eq!(
        subjects(&claim_mails(store, much_later, much_later, 10)),
        ["retried"]
    );
    // Sent in the end: nothing pending, nothing to claim.
    assert!(record_mail(
        store,
        id("retried"),
        &attempt(Some(250), None, AttemptNext::Delivered)
    ));
    assert_eq!(mail_backlog(store), 0);
    assert_eq!(
        claim_mails(store, much_later + Duration::days(1), much_later, 10),
        vec![]
    );
}

/// A setting reads `None` until stored, then its value; storing again replaces it; names
/// are kept apart; a rolled-back write stores nothing.
pub fn settings_are_read_written_and_replaced(store: &dyn UserStore) {
    let get = |name: &str| store.read_with(|repo| repo.setting(name)).expect("setting");
    let put = |name: &str, value: &str| {
        store
            .write_with(|repo| repo.put_setting(name, value))
            .expect("put setting");
    };
    let name = crate::DIGEST_SETTING;
    assert_eq!(get(name), None);
    put(name, "2026-12-08T10:00:00Z");
    assert_eq!(get(name).as_deref(), Some("2026-12-08T10:00:00Z"));
    put(name, "2026-12-08T11:00:00Z ✓ 'quoted'");
    assert_eq!(
        get(name).as_deref(),
        Some("2026-12-08T11:00:00Z ✓ 'quoted'")
    );
    assert_eq!(get("contract_other_setting"), None);
    put("contract_other_setting", "");
    assert_eq!(get("contract_other_setting").as_deref(), Some(""));
    assert_eq!(
        get(name).as_deref(),
        Some("2026-12-08T11:00:00Z ✓ 'quoted'")
    );
    // Read and written in one unit of work.
    let seen = store
        .write_with(|repo| {
            repo.put_setting(name, "inside")?;
            repo.setting(name)
        })
        .expect("put and read");
    assert_eq!(seen.as_deref(), Some("inside"));
    let failed: Result<(), Error> = store.write_with(|repo| {
        repo.put_setting(name, "rolled back")?;
        repo.put_setting("contract_rolled_back", "x")?;
        Err(Error::Conflict)
    });
    assert!(matches!(failed, Err(Error::Conflict)), "{failed:?}");
    assert_eq!(get(name).as_deref(), Some("inside"));
    assert_eq!(get("contract_rolled_back"), None);
}

fn code(
    user: UserId,
    purpose: crate::CodePurpose,
    text: &str,
    at: DateTime<Utc>,
) -> crate::NewCode {
    let code = crate::OneTimeCode::presented(text).expect("a code");
    crate::NewCode {
        user_id: user,
        purpose,
        code_hash: code.hash(user, purpose),
        created_at: at,
        expires_at: at + Duration::minutes(15),
    }
}

fn spend_code(
    store: &dyn UserStore,
    user: UserId,
    purpose: crate::CodePurpose,
    text: &str,
    at: DateTime<Utc>,
) -> bool {
    let hash = crate::OneTimeCode::presented(text)
        .expect("a code")
        .hash(user, purpose);
    store
        .write_with(|repo| repo.spend_code(user, purpose, &hash, at))
        .expect("spend")
}

/// A code is spent once; its user's other live codes of that purpose die with it; the
/// other purpose's and other users' codes do not.
pub fn a_code_is_spent_once_with_its_siblings(store: &dyn UserStore) {
    use crate::CodePurpose::{EmailVerification, PasswordReset};
    let ann = insert(store, new_user("ann@example.com")).id;
    let bob = insert(store, new_user("bob@example.com")).id;
    let t0 = crate::now();
    for new in [
        code(ann, PasswordReset, "AAAA2222", t0),
        code(ann, PasswordReset, "BBBB3333", t0),
        code(ann, EmailVerification, "CCCC4444", t0),
        code(bob, PasswordReset, "AAAA2222", t0),
    ] {
        store
            .write_with(|repo| repo.insert_code(&new))
            .expect("insert");
    }
    assert!(
        !spend_code(store, ann, PasswordReset, "CCCC4444", t0),
        "another purpose's code"
    );
    assert!(spend_code(store, ann, PasswordReset, "AAAA2222", t0));
    assert!(
        !spend_code(store, ann, PasswordReset, "AAAA2222", t0),
        "spent"
    );
    assert!(
        !spend_code(store, ann, PasswordReset, "BBBB3333", t0),
        "died with its sibling"
    );
    assert!(spend_code(store, ann, EmailVerification, "CCCC4444", t0));
    assert!(
        spend_code(store, bob, PasswordReset, "AAAA2222", t0),
        "bob's own"
    );
}

/// Sixteen tries of the right code at once: one succeeds.
pub fn a_code_is_spent_once_among_sixteen_racers(store: &dyn UserStore) {
    use crate::CodePurpose::PasswordReset;
    let ann = insert(store, new_user("ann@example.com")).id;
    let t0 = crate::now();
    let new = code(ann, PasswordReset, "RACE2345", t0);
    store
        .write_with(|repo| repo.insert_code(&new))
        .expect("insert");
    let barrier = std::sync::Barrier::new(16);
    let wins = std::thread::scope(|scope| {
        let racers: Vec<_> = (0..16)
            .map(|_| {
                let barrier = &barrier;
                scope.spawn(move || {
                    barrier.wait();
                    spend_code(store, ann, PasswordReset, "RACE2345", t0)
                })
            })
            .collect();
        racers
            .into_iter()
            .map(|racer| racer.join().expect("racer"))
            .filter(|won| *won)
            .count()
    });
    assert_eq!(wins, 1);
}

/// Five wrong tries kill a code (the right one after them fails); so does its expiry.
pub fn wrong_tries_kill_a_code_and_expiry_too(store: &dyn UserStore) {
    use crate::CodePurpose::{EmailVerification, PasswordReset};
    let ann = insert(store, new_user("ann@example.com")).id;
    let t0 = crate::now();
    let new = code(ann, PasswordReset, "GOOD2345", t0);
    store
        .write_with(|repo| repo.insert_code(&new))
        .expect("insert");
    for _ in 0..4 {
        assert!(!spend_code(store, ann, PasswordReset, "BAAD2345", t0));
    }
    // Four wrong tries: still alive.
    let survivor = code(ann, EmailVerification, "KEEP2345", t0);
    store
        .write_with(|repo| repo.insert_code(&survivor))
        .expect("insert");
    assert!(
        !spend_code(store, ann, PasswordReset, "BAAD2345", t0),
        "the fifth wrong try"
    );
    assert!(
        !spend_code(store, ann, PasswordReset, "GOOD2345", t0),
        "dead after five"
    );
    // Expiry: alive a second before, dead at it.
    let late = t0 + Duration::minutes(15);
    assert!(
        !spend_code(store, ann, EmailVerification, "KEEP2345", late),
        "expired"
    );
    let fresh = code(ann, EmailVerification, "NEWW2345", t0);
    store
        .write_with(|repo| repo.insert_code(&fresh))
        .expect("insert");
    assert!(spend_code(
        store,
        ann,
        EmailVerification,
        "NEWW2345",
        late - Duration::seconds(1)
    ));
}

/// The hourly cap counts a user's codes of one purpose made since a moment.
pub fn codes_are_counted_per_user_purpose_and_hour(store: &dyn UserStore) {
    use crate::CodePurpose::{EmailVerification, PasswordReset};
    let ann = insert(store, new_user("ann@example.com")).id;
    let bob = insert(store, new_user("bob@example.com")).id;
    let t0 = crate::now();
    for (user, purpose, at) in [
        (ann, PasswordReset, t0 - Duration::minutes(90)),
        (ann, PasswordReset, t0 - Duration::minutes(30)),
        (ann, PasswordReset, t0),
        (ann, EmailVerification, t0),
        (bob, PasswordReset, t0),
    ] {
        let new = code(user, purpose, "ABCD2345", at);
        store
            .write_with(|repo| repo.insert_code(&new))
            .expect("insert");
    }
    let since = t0 - Duration::hours(1);
    let count = |user, purpose| {
        store
            .read_with(|repo| repo.count_codes_since(user, purpose, since))
            .expect("count")
    };
    assert_eq!(count(ann, PasswordReset), 2);
    assert_eq!(count(ann, EmailVerification), 1);
    assert_eq!(count(bob, PasswordReset), 1);
    assert_eq!(count(bob, EmailVerification), 0);
}

fn totp_row(user: UserId, at: DateTime<Utc>) -> crate::StoredTotp {
    crate::StoredTotp {
        user_id: user,
        secret: "c2VhbGVk".to_owned(),
        confirmed_at: None,
        last_step: None,
        created_at: at,
    }
}

/// A TOTP factor reads back as stored; a new one replaces it; it is confirmed once; the
/// step moves only forward, and only once confirmed.
pub fn totp_factors_round_trip_and_confirm_once(store: &dyn UserStore) {
    let ann = insert(store, new_user("ann@example.com")).id;
    let t0 = crate::now();
    assert_eq!(store.read_with(|repo| repo.totp(ann)).expect("read"), None);
    let pending = totp_row(ann, t0);
    store
        .write_with(|repo| repo.put_totp(&pending))
        .expect("put");
    assert_eq!(
        store.read_with(|repo| repo.totp(ann)).expect("read"),
        Some(pending.clone())
    );
    assert!(
        !store
            .write_with(|repo| repo.use_totp_step(ann, 10))
            .expect("use"),
        "a pending factor takes no code"
    );
    let replaced = crate::StoredTotp {
        secret: "b3RoZXI=".to_owned(),
        ..pending
    };
    store
        .write_with(|repo| repo.put_totp(&replaced))
        .expect("put");
    assert!(store
        .write_with(|repo| repo.confirm_totp(ann, 10, t0))
        .expect("confirm"));
    assert!(
        !store
            .write_with(|repo| repo.confirm_totp(ann, 11, t0))
            .expect("confirm"),
        "confirmed once"
    );
    let confirmed = store
        .read_with(|repo| repo.totp(ann))
        .expect("read")
        .expect("a factor");
    assert_eq!(confirmed.secret, "b3RoZXI=");
    assert_eq!(confirmed.confirmed_at, Some(t0));
    assert_eq!(confirmed.last_step, Some(10));
    let used = |step| {
        store
            .write_with(|repo| repo.use_totp_step(ann, step))
            .expect("use")
    };
    assert!(!used(10), "the confirming code's step");
    assert!(!used(9), "an earlier step");
    assert!(used(11));
    assert!(!used(11), "a step is used once");
    assert!(store
        .write_with(|repo| repo.delete_totp(ann))
        .expect("delete"));
    assert!(!store
        .write_with(|repo| repo.delete_totp(ann))
        .expect("delete"));
}

/// Sixteen logins presenting one code at once: one gets in.
pub fn a_totp_step_is_used_once_among_sixteen_racers(store: &dyn UserStore) {
    let ann = insert(store, new_user("ann@example.com")).id;
    let t0 = crate::now();
    store
        .write_with(|repo| {
            repo.put_totp(&totp_row(ann, t0))?;
            repo.confirm_totp(ann, 1, t0).map(drop)
        })
        .expect("enrol");
    let barrier = std::sync::Barrier::new(16);
    let wins = std::thread::scope(|scope| {
        let racers: Vec<_> = (0..16)
            .map(|_| {
                let barrier = &barrier;
                scope.spawn(move || {
                    barrier.wait();
                    store
                        .write_with(|repo| repo.use_totp_step(ann, 2))
                        .expect("use")
                })
            })
            .collect();
        racers
            .into_iter()
            .map(|racer| racer.join().expect("racer"))
            .filter(|won| *won)
            .count()
    });
    assert_eq!(wins, 1);
}

/// A recovery code is spent once, by its own user; a new set replaces the old (spent or
/// not); the count is of unspent ones; sixteen racers spend one code once.
pub fn recovery_codes_are_spent_once_and_replaced_together(store: &dyn UserStore) {
    let ann = insert(store, new_user("ann@example.com")).id;
    let bob = insert(store, new_user("bob@example.com")).id;
    let t0 = crate::now();
    let hashes: Vec<String> = (0..10).map(|i| format!("hash-{i}")).collect();
    store
        .write_with(|repo| {
            repo.replace_recovery_codes(ann, &hashes, t0)?;
            repo.replace_recovery_codes(bob, &hashes[..2], t0)
        })
        .expect("store");
    let spend = |user, hash: &str| {
        store
            .write_with(|repo| repo.spend_recovery_code(user, hash, t0))
            .expect("spend")
    };
    let count = |user| {
        store
            .read_with(|repo| repo.count_recovery_codes(user))
            .expect("count")
    };
    assert_eq!((count(ann), count(bob)), (10, 2));
    assert!(spend(ann, "hash-3"));
    assert!(!spend(ann, "hash-3"), "spent");
    assert!(!spend(ann, "hash-x"), "unknown");
    assert!(!spend(bob, "hash-5"), "not bob's");
    assert!(spend(bob, "hash-1"), "bob's own");
    assert_eq!((count(ann), count(bob)), (9, 1));
    let barrier = std::sync::Barrier::new(16);
    let wins = std::thread::scope(|scope| {
        let racers: Vec<_> = (0..16)
            .map(|_| {
                let barrier = &barrier;
                scope.spawn(move || {
                    barrier.wait();
                    spend(ann, "hash-7")
                })
            })
            .collect();
        racers
            .into_iter()
            .map(|racer| racer.join().expect("racer"))
            .filter(|won| *won)
            .count()
    });
    assert_eq!(wins, 1);
    let renewed: Vec<String> = (0..10).map(|i| format!("new-{i}")).collect();
    store
        .write_with(|repo| repo.replace_recovery_codes(ann, &renewed, t0))
        .expect("replace");
    assert_eq!(count(ann), 10);
    assert!(!spend(ann, "hash-0"), "the old set is dead");
    assert!(spend(ann, "new-0"));
}

fn challenge(token: &str, user: Option<UserId>, at: DateTime<Utc>) -> crate::NewChallenge {
    crate::NewChallenge {
        token_hash: token.to_owned(),
        purpose: crate::ChallengePurpose::LoginMfa,
        user_id: user,
        state: Some("{\"state\":\"ünïcode ✓\"}".to_owned()),
        created_at: at,
        expires_at: at + crate::MFA_TOKEN_TTL,
    }
}

/// A challenge is found by its token and purpose while live, and dies spent, after five
/// wrong tries, or at its expiry.
pub fn challenges_die_spent_wrong_or_expired(store: &dyn UserStore) {
    use crate::ChallengePurpose::{LoginMfa, PasskeyLogin};
    let ann = insert(store, new_user("ann@example.com")).id;
    let t0 = crate::now();
    for (token, user) in [("one", Some(ann)), ("two", Some(ann)), ("three", None)] {
        let new = challenge(token, user, t0);
        store
            .write_with(|repo| repo.insert_challenge(&new))
            .expect("insert");
    }
    let find = |token: &str, purpose, at| {
        store
            .read_with(|repo| repo.find_challenge(token, purpose, at))
            .expect("find")
    };
    let one = find("one", LoginMfa, t0).expect("live");
    assert_eq!(one.user_id, Some(ann));
    assert_eq!(one.purpose, LoginMfa);
    assert_eq!(one.wrong_tries, 0);
    assert_eq!(one.expires_at, t0 + crate::MFA_TOKEN_TTL);
    assert_eq!(one.state.as_deref(), Some("{\"state\":\"ünïcode ✓\"}"));
    assert_eq!(find("one", PasskeyLogin, t0), None, "another purpose");
    assert_eq!(find("four", LoginMfa, t0), None, "unknown");
    assert_eq!(find("three", LoginMfa, t0).expect("live").user_id, None);
    // Spent once.
    let spend = |id, at| {
        store
            .write_with(|repo| repo.spend_challenge(id, at))
            .expect("spend")
    };
    assert!(spend(one.id, t0));
    assert!(!spend(one.id, t0), "spent");
    assert_eq!(find("one", LoginMfa, t0), None);
    // Five wrong tries.
    let two = find("two", LoginMfa, t0).expect("live");
    for _ in 0..4 {
        store
            .write_with(|repo| repo.challenge_wrong_try(two.id))
            .expect("wrong");
    }
    assert_eq!(
        find("two", LoginMfa, t0)
            .expect("alive after four")
            .wrong_tries,
        4
    );
    store
        .write_with(|repo| repo.challenge_wrong_try(two.id))
        .expect("wrong");
    assert_eq!(find("two", LoginMfa, t0), None, "dead after five");
    assert!(!spend(two.id, t0), "a dead one is not spent");
    // Expiry.
    let three = find("three", LoginMfa, t0).expect("live");
    let end = t0 + crate::MFA_TOKEN_TTL;
    assert!(find("three", LoginMfa, end - Duration::seconds(1)).is_some());
    assert_eq!(find("three", LoginMfa, end), None);
    assert!(!spend(three.id, end));
    // A token names one challenge.
    let again = challenge("three", None, t0);
    assert!(store
        .write_with(|repo| repo.insert_challenge(&again))
        .is_err());
}

/// Deleting a user deletes their factors and challenges; a reset deletes them too and
/// leaves other users' alone.
pub fn mfa_goes_with_its_user_and_its_reset(store: &dyn UserStore) {
    let ann = insert(store, new_user("ann@example.com")).id;
    let bob = insert(store, new_user("bob@example.com")).id;
    let t0 = crate::now();
    for (user, token) in [(ann, "ann"), (bob, "bob")] {
        let new = challenge(token, Some(user), t0);
        store
            .write_with(|repo| {
                repo.put_totp(&totp_row(user, t0))?;
                repo.replace_recovery_codes(user, &["h".to_owned()], t0)?;
                repo.insert_challenge(&new)
            })
            .expect("enrol");
    }
    store
        .write_with(|repo| repo.delete_mfa(ann))
        .expect("reset");
    let ann_left = store
        .read_with(|repo| {
            Ok((
                repo.totp(ann)?,
                repo.count_recovery_codes(ann)?,
                repo.find_challenge("ann", crate::ChallengePurpose::LoginMfa, t0)?,
            ))
        })
        .expect("read");
    assert_eq!(ann_left, (None, 0, None));
    assert!(store.write_with(|repo| repo.delete(bob)).expect("delete"));
    let bob_left = store
        .read_with(|repo| {
            Ok((
                repo.totp(bob)?,
                repo.count_recovery_codes(bob)?,
                repo.find_challenge("bob", crate::ChallengePurpose::LoginMfa, t0)?,
            ))
        })
        .expect("read");
    assert_eq!(bob_left, (None, 0, None));
}

fn new_passkey(user: UserId, credential: &str, at: DateTime<Utc>) -> crate::NewPasskey {
    crate::NewPasskey {
        user_id: user,
        credential_id: credential.to_owned(),
        name: format!("Key ✓ {credential}"),
        data: format!("{{\"cred\":\"{credential}\",\"counter\":0}}"),
        created_at: at,
    }
}

/// A passkey reads back as stored, with a fresh id and no use yet; a user's are listed
/// newest first, found by credential id whoever's they are, and deleted only by their
/// owner; a credential id names one passkey; a use records the new record and its time.
pub fn passkeys_round_trip_newest_first_and_are_deleted_by_their_owner(store: &dyn UserStore) {
    let ann = insert(store, new_user("ann@example.com")).id;
    let bob = insert(store, new_user("bob@example.com")).id;
    let t0 = crate::now();
    let add = |new: crate::NewPasskey| {
        store
            .write_with(|repo| repo.insert_passkey(&new))
            .expect("insert")
    };
    let first = add(new_passkey(ann, "cred-a1", t0 - Duration::minutes(2)));
    let second = add(new_passkey(ann, "cred-a2", t0 - Duration::minutes(1)));
    let bobs = add(new_passkey(bob, "cred-b1", t0));
    assert!(first.id > 0 && second.id != first.id && bobs.id != second.id);
    assert_eq!(first.user_id, ann);
    assert_eq!(first.credential_id, "cred-a1");
    assert_eq!(first.name, "Key ✓ cred-a1");
    assert_eq!(first.data, "{\"cred\":\"cred-a1\",\"counter\":0}");
    assert_eq!(first.created_at, t0 - Duration::minutes(2));
    assert_eq!(first.last_used_at, None);
    let list = |user| {
        store
            .read_with(|repo| repo.list_passkeys(user))
            .expect("list")
    };
    assert_eq!(list(ann), vec![second.clone(), first.clone()]);
    assert_eq!(list(bob), vec![bobs.clone()]);
    let find = |credential: &str| {
        store
            .read_with(|repo| repo.find_passkey_by_credential(credential))
            .expect("find")
    };
    assert_eq!(find("cred-b1"), Some(bobs.clone()));
    assert_eq!(find("cred-zz"), None);
    // A credential id names one passkey, whoever registers it again.
    let again = new_passkey(bob, "cred-a1", t0);
    assert!(store
        .write_with(|repo| repo.insert_passkey(&again))
        .is_err());
    assert_eq!(list(bob).len(), 1);
    // A use.
    let used_at = t0 + Duration::seconds(5);
    assert!(store
        .write_with(|repo| repo.record_passkey_use(first.id, "{\"counter\":7}", used_at))
        .expect("use"));
    let used = find("cred-a1").expect("still there");
    assert_eq!(used.data, "{\"counter\":7}");
    assert_eq!(used.last_used_at, Some(used_at));
    assert!(!store
        .write_with(|repo| repo.record_passkey_use(i64::MAX, "{}", used_at))
        .expect("use"));
    // Deleted by its owner only.
    let count = |user| {
        store
            .read_with(|repo| repo.count_passkeys(user))
            .expect("count")
    };
    assert_eq!((count(ann), count(bob)), (2, 1));
    let delete = |user, id| {
        store
            .write_with(|repo| repo.delete_passkey(user, id))
            .expect("delete")
    };
    assert!(!delete(ann, bobs.id), "not ann's");
    assert!(delete(bob, bobs.id));
    assert!(!delete(bob, bobs.id), "gone");
    assert!(delete(ann, first.id));
    assert_eq!((count(ann), count(bob)), (1, 0));
    assert_eq!(list(ann), vec![second]);
    // Its id is never used again.
    let next = add(new_passkey(ann, "cred-a3", t0));
    assert!(next.id > bobs.id);
}

fn registration(token: &str, user: UserId, at: DateTime<Utc>) -> crate::NewChallenge {
    crate::NewChallenge {
        purpose: crate::ChallengePurpose::PasskeyRegistration,
        ..challenge(token, Some(user), at)
    }
}

/// A user's passkey registration under way is found without its token (the newest live
/// one of the purpose), and deleted with the others of the user and purpose only.
pub fn passkey_registrations_are_found_per_user_and_replaced(store: &dyn UserStore) {
    use crate::ChallengePurpose::{LoginMfa, PasskeyRegistration};
    let ann = insert(store, new_user("ann@example.com")).id;
    let bob = insert(store, new_user("bob@example.com")).id;
    let t0 = crate::now();
    for new in [
        registration("ann-old", ann, t0 - Duration::seconds(10)),
        registration("ann-new", ann, t0),
        challenge("ann-mfa", Some(ann), t0),
        registration("bob", bob, t0),
    ] {
        store
            .write_with(|repo| repo.insert_challenge(&new))
            .expect("insert");
    }
    let pending = |user, purpose, at| {
        store
            .read_with(|repo| repo.find_user_challenge(user, purpose, at))
            .expect("find")
    };
    let newest = pending(ann, PasskeyRegistration, t0).expect("live");
    let by_token = store
        .read_with(|repo| repo.find_challenge("ann-new", PasskeyRegistration, t0))
        .expect("find")
        .expect("live");
    assert_eq!(newest, by_token);
    assert_eq!(newest.user_id, Some(ann));
    assert_eq!(newest.purpose, PasskeyRegistration);
    assert_eq!(newest.state.as_deref(), Some("{\"state\":\"ünïcode ✓\"}"));
    // Dead ones are not under way.
    let end = t0 + crate::MFA_TOKEN_TTL;
    assert_eq!(pending(ann, PasskeyRegistration, end), None);
    assert!(store
        .write_with(|repo| repo.spend_challenge(newest.id, t0))
        .expect("spend"));
    let older = pending(ann, PasskeyRegistration, t0).expect("the older one");
    assert_ne!(older.id, newest.id);
    // Replaced: ann's registrations go, her login's challenge and bob's stay.
    assert_eq!(
        store
            .write_with(|repo| repo.delete_user_challenges(ann, PasskeyRegistration))
            .expect("delete"),
        1
    );
    assert_eq!(pending(ann, PasskeyRegistration, t0), None);
    assert!(pending(ann, LoginMfa, t0).is_some());
    assert!(pending(bob, PasskeyRegistration, t0).is_some());
}

/// Deleting a user deletes their passkeys; the MFA reset does too, and leaves other
/// users' alone.
pub fn passkeys_go_with_their_user_and_the_reset(store: &dyn UserStore) {
    let ann = insert(store, new_user("ann@example.com")).id;
    let bob = insert(store, new_user("bob@example.com")).id;
    let carl = insert(store, new_user("carl@example.com")).id;
    let t0 = crate::now();
    for (user, credential) in [(ann, "ann"), (bob, "bob"), (carl, "carl")] {
        let new = new_passkey(user, credential, t0);
        store
            .write_with(|repo| repo.insert_passkey(&new).map(drop))
            .expect("insert");
    }
    store
        .write_with(|repo| repo.delete_mfa(ann))
        .expect("reset");
    assert!(store.write_with(|repo| repo.delete(bob)).expect("delete"));
    let left = store
        .read_with(|repo| {
            Ok((
                repo.count_passkeys(ann)?,
                repo.find_passkey_by_credential("ann")?,
                repo.find_passkey_by_credential("bob")?,
                repo.count_passkeys(carl)?,
            ))
        })
        .expect("read");
    assert_eq!(left, (0, None, None, 1));
}
