//! SQLite's email search index (`users_email_search`, FTS5 over `users`' content) stays in
//! step with the users through inserts, email changes and deletes. The listing re-checks
//! every candidate, so a stale entry would not show in results; FTS5's own integrity check
//! against the content table does.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests panic to fail

use diesel::connection::SimpleConnection;
use diesel::{Connection, SqliteConnection};
use gatehouse_domain::testing::new_user;
use gatehouse_domain::{Email, UserQuery, UserStoreExt as _};
use gatehouse_storage::testing::TestDatabase;
use gatehouse_storage::DatabaseUrl;

fn integrity_check(db: &TestDatabase) -> diesel::QueryResult<()> {
    let DatabaseUrl::Sqlite { path } = db.url() else {
        panic!("an SQLite database");
    };
    let mut conn = SqliteConnection::establish(path).expect("open the file");
    // rank 1: compare the index with the content table too.
    conn.batch_execute(
        "INSERT INTO users_email_search (users_email_search, rank) VALUES ('integrity-check', 1)",
    )
}

#[test]
fn the_index_follows_inserts_changes_and_deletes() {
    let db = TestDatabase::sqlite();
    let users: Vec<_> = ["ann@one.example", "bob@one.example", "cat@two.example"]
        .into_iter()
        .map(|email| {
            db.write_with(|repo| repo.insert(new_user(email)))
                .expect("insert")
        })
        .collect();
    let mut moved = users[0].clone();
    moved.email = Email::parse("ann@three.example").expect("email");
    db.write_with(|repo| repo.update(&moved)).expect("update");
    let mut promoted = users[2].clone();
    promoted.is_admin = true;
    db.write_with(|repo| repo.update(&promoted))
        .expect("update");
    db.write_with(|repo| repo.delete(users[1].id))
        .expect("delete");
    integrity_check(&db).expect("the index matches the users");

    let found = db
        .read_with(|repo| {
            repo.list(&UserQuery {
                email_contains: Some(".example".into()),
                ..UserQuery::default()
            })
        })
        .expect("list");
    assert_eq!(found.total, 2);
}

#[test]
fn the_integrity_check_sees_a_stale_index() {
    let db = TestDatabase::sqlite();
    let user = db
        .write_with(|repo| repo.insert(new_user("ann@one.example")))
        .expect("insert");
    let DatabaseUrl::Sqlite { path } = db.url() else {
        panic!("an SQLite database");
    };
    let mut conn = SqliteConnection::establish(path).expect("open the file");
    conn.batch_execute(&format!(
        "DROP TRIGGER users_email_search_update; \
         UPDATE users SET email = 'ann@two.example' WHERE id = {}",
        user.id.get()
    ))
    .expect("an update behind the index's back");
    assert!(integrity_check(&db).is_err());
}
