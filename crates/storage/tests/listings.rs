//! Listings stream (`UserRepo::each_user`, `each_audit_entry`): a listing longer than a
//! chunk (PostgreSQL's cursor fetches 1 000 rows at a time) hands over its total first, then
//! every row in order, filtered and paged exactly as a short one, on both backends; and the
//! rows come the way the repository promises (SQLite: one statement stepped through;
//! PostgreSQL: a cursor over that one statement, or the statement alone for a short page).

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests panic to fail

use gatehouse_domain::{
    AuditAction, AuditEntry, AuditQuery, Error, Listing, NewAuditEntry, User, UserId, UserQuery,
    UserStatus, UserStore, UserStoreExt as _,
};
use gatehouse_storage::testing::{TestBackend, TestDatabase};

/// More than two of PostgreSQL's fetches.
const ROWS: usize = 2500;

/// What a listing handed over, checking the order of the calls as they come.
struct Collected<T> {
    total: Option<u64>,
    items: Vec<T>,
    /// Refuse the item after this many (the reader went away).
    stop_after: Option<usize>,
}

impl<T> Collected<T> {
    fn new() -> Self {
        Self {
            total: None,
            items: Vec::new(),
            stop_after: None,
        }
    }
}

impl<T> Listing<T> for Collected<T> {
    fn total(&mut self, total: u64) -> Result<(), Error> {
        assert!(self.total.is_none(), "the total came twice");
        assert!(self.items.is_empty(), "the total came after an item");
        self.total = Some(total);
        Ok(())
    }

    fn item(&mut self, item: T) -> Result<(), Error> {
        assert!(self.total.is_some(), "an item came before the total");
        if self.stop_after == Some(self.items.len()) {
            return Err(Error::Overloaded);
        }
        self.items.push(item);
        Ok(())
    }
}

/// A listing of users as the service runs one without a search: outside a transaction.
fn users(db: &TestDatabase, query: &UserQuery) -> (u64, Vec<User>) {
    let mut collected = Collected::new();
    db.read_single(&mut |repo| repo.each_user(query, &mut collected))
        .expect("each_user");
    (collected.total.expect("a total"), collected.items)
}

fn ids(users: &[User]) -> Vec<i64> {
    users.iter().map(|u| u.id.get()).collect()
}

fn statements(db: &TestDatabase, query: &UserQuery) -> Vec<String> {
    db.statements_of(|repo| {
        let mut collected = Collected::<User>::new();
        repo.each_user(query, &mut collected)
    })
}

fn count_starting(statements: &[String], prefix: &str) -> usize {
    statements.iter().filter(|s| s.starts_with(prefix)).count()
}

fn long_user_listings_stream_every_row_in_order(backend: TestBackend) {
    let db = TestDatabase::new(backend);
    // user1..user2500: every tenth pending, every tenth but one disabled, the rest
    // approved; every seventh made an admin afterwards (the tallies follow).
    db.seed_users_for_plans(ROWS as u32);
    db.execute_sql("UPDATE users SET is_admin = TRUE WHERE id % 7 = 0");

    let (total, all) = users(&db, &UserQuery::default());
    assert_eq!(total, ROWS as u64);
    assert_eq!(all.len(), ROWS, "{backend:?}: every row");
    assert!(
        all.windows(2).all(|w| w[0].id > w[1].id),
        "{backend:?}: newest first"
    );
    assert_eq!(all[0].email.as_str(), format!("user{ROWS}@example.com"));

    // Every filter gives exactly the matching rows of the whole listing, with their count.
    let mut queries = Vec::new();
    for status in [None].into_iter().chain(UserStatus::ALL.map(Some)) {
        for is_admin in [None, Some(true), Some(false)] {
            queries.push(UserQuery {
                status,
                is_admin,
                ..UserQuery::default()
            });
        }
    }
    // user1, user10…19, user100…199, user1000…1999: 1 111 matches, a search longer than a
    // fetch (read in the service's transaction, as it is with a search).
    queries.push(UserQuery {
        email_contains: Some("USER1".into()),
        ..UserQuery::default()
    });
    for query in &queries {
        let expected: Vec<i64> = all
            .iter()
            .filter(|u| query.status.is_none_or(|s| u.status == s))
            .filter(|u| query.is_admin.is_none_or(|a| u.is_admin == a))
            .filter(|u| {
                query
                    .email_contains
                    .as_deref()
                    .is_none_or(|q| u.email.as_str().contains(&q.to_lowercase()))
            })
            .map(|u| u.id.get())
            .collect();
        let mut collected = Collected::new();
        db.read(&mut |repo| repo.each_user(query, &mut collected))
            .expect("each_user");
        assert_eq!(
            collected.total,
            Some(expected.len() as u64),
            "{backend:?}: total of {query:?}"
        );
        assert_eq!(ids(&collected.items), expected, "{backend:?}: {query:?}");
    }

    // Pages, short and longer than a fetch, are slices of the whole listing; pages one
    // after another put it back together.
    let page = |limit: Option<u64>, offset: u64| {
        users(
            &db,
            &UserQuery {
                limit,
                offset,
                ..UserQuery::default()
            },
        )
    };
    let all_ids = ids(&all);
    assert_eq!(
        page(Some(1200), 300),
        (ROWS as u64, all[300..1500].to_vec())
    );
    assert_eq!(page(Some(50), 2480).1, all[2480..].to_vec());
    assert_eq!(page(None, 1100).1.len(), ROWS - 1100);
    assert_eq!(page(None, ROWS as u64), (ROWS as u64, Vec::new()));
    assert_eq!(page(Some(0), 0), (ROWS as u64, Vec::new()));
    let mut pieced = Vec::new();
    for offset in (0..ROWS as u64).step_by(700) {
        pieced.extend(ids(&page(Some(700), offset).1));
    }
    assert_eq!(pieced, all_ids, "{backend:?}: pages in turn");

    // How the rows are read.
    let unpaged = statements(&db, &UserQuery::default());
    let short_page = statements(
        &db,
        &UserQuery {
            limit: Some(50),
            ..UserQuery::default()
        },
    );
    match backend {
        TestBackend::Sqlite => {
            assert_eq!(
                unpaged.len(),
                1,
                "one statement, stepped through: {unpaged:?}"
            );
            assert_eq!(short_page.len(), 1, "{short_page:?}");
        }
        TestBackend::Postgres => {
            assert_eq!(
                count_starting(
                    &unpaged,
                    "DECLARE gatehouse_listing NO SCROLL CURSOR FOR SELECT"
                ),
                1,
                "the one statement as a cursor: {unpaged:?}"
            );
            // 1 000, 1 000, 500: the last short fetch ends it.
            assert_eq!(
                count_starting(&unpaged, "FETCH FORWARD 1000 FROM gatehouse_listing"),
                3,
                "{unpaged:?}"
            );
            assert_eq!(
                short_page.len(),
                1,
                "a page of 50 is read straight: {short_page:?}"
            );
        }
    }

    // A reader that stops half-way: the error comes back, nothing more is read, and the
    // store goes on (on PostgreSQL the cursor's transaction was rolled back).
    for _ in 0..3 {
        let mut stopped = Collected::<User>::new();
        stopped.stop_after = Some(1500);
        let outcome =
            db.read_single(&mut |repo| repo.each_user(&UserQuery::default(), &mut stopped));
        assert!(matches!(outcome, Err(Error::Overloaded)), "{outcome:?}");
        assert_eq!(stopped.items.len(), 1500);
    }
    assert_eq!(users(&db, &UserQuery::default()).1.len(), ROWS);
}

fn long_audit_listings_stream_every_entry_in_order(backend: TestBackend) {
    let db = TestDatabase::new(backend);
    let actions = [
        AuditAction::LoginFailed,
        AuditAction::LoginSucceeded,
        AuditAction::UserRegistered,
    ];
    let at = gatehouse_domain::now();
    db.write_with(|repo| {
        for i in 0..ROWS {
            repo.append_audit(&NewAuditEntry {
                at,
                action: actions[i % 3],
                actor_id: None,
                target_id: Some(UserId::new(i as i64 % 5 + 1).unwrap()),
                address: Some("192.0.2.7".into()),
                detail: Some(format!("entry {i}")),
            })?;
        }
        Ok(())
    })
    .expect("seeding the audit log");

    let audit = |query: &AuditQuery| {
        let mut collected = Collected::<AuditEntry>::new();
        db.read(&mut |repo| repo.each_audit_entry(query, &mut collected))
            .expect("each_audit_entry");
        (collected.total.expect("a total"), collected.items)
    };
    let (total, all) = audit(&AuditQuery::default());
    assert_eq!(total, ROWS as u64);
    assert_eq!(all.len(), ROWS, "{backend:?}: every entry");
    assert!(all.windows(2).all(|w| w[0].id > w[1].id), "newest first");
    assert_eq!(all[0].entry.detail.as_deref(), Some("entry 2499"));
    assert_eq!(all[ROWS - 1].entry.detail.as_deref(), Some("entry 0"));

    let failed = audit(&AuditQuery {
        action: Some(AuditAction::LoginFailed),
        ..AuditQuery::default()
    });
    let expected: Vec<&AuditEntry> = all
        .iter()
        .filter(|e| e.entry.action == AuditAction::LoginFailed)
        .collect();
    assert_eq!(failed.0, expected.len() as u64);
    assert_eq!(failed.1.iter().collect::<Vec<_>>(), expected);

    let page = audit(&AuditQuery {
        limit: Some(1100),
        offset: 1000,
        ..AuditQuery::default()
    });
    assert_eq!(page, (ROWS as u64, all[1000..2100].to_vec()));
}

gatehouse_storage::backend_tests!(
    long_user_listings_stream_every_row_in_order,
    long_audit_listings_stream_every_entry_in_order,
);
