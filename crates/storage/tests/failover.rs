//! PostgreSQL on a libpq multi-host URL whose first host is unusable (issue 15, "Database
//! faults and failover"): Gatehouse must open the database on the next host within the
//! pool's wait, at start-up and for every new connection after it.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests panic to fail

use std::net::TcpListener;
use std::time::{Duration, Instant};

use gatehouse_domain::{Email, NewUser, PasswordHash, UserStatus, UserStoreExt as _};
use gatehouse_storage::testing::{needs_postgres, with_first_host, TestDatabase};
use gatehouse_storage::{Database, DatabaseUrl, PoolOptions};

/// A first host that takes the connection and never answers (the kernel completes the
/// handshake for a listener that never accepts): what a frozen or black-holed primary
/// looks like to libpq, which waits out its `connect_timeout` on it before the next host.
#[test]
#[needs_postgres]
fn a_silent_first_host_does_not_stop_start_up() {
    let silent = TcpListener::bind("127.0.0.1:0").expect("a listener");
    let first = format!(
        "127.0.0.1:{}",
        silent.local_addr().expect("its address").port()
    );
    let db = TestDatabase::postgres();
    let DatabaseUrl::Postgres { url } = db.url() else {
        panic!("a PostgreSQL test database");
    };
    let url: DatabaseUrl = with_first_host(url, &first)
        .parse()
        .expect("a multi-host URL");
    let options = PoolOptions {
        max_size: 4,
        timeout: Duration::from_secs(6),
        connect_timeout: Duration::from_secs(6),
        ..PoolOptions::default()
    };
    let started = Instant::now();
    let store = Database::open(&url, options).expect("opened through the second host");
    // Each host gets half the connect timeout: the silent one costs 3 s, not all 6.
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "opening took {:?}, the whole connect timeout",
        started.elapsed()
    );
    let user = store
        .write_with(|repo| {
            repo.insert(NewUser {
                email: Email::parse("ann@example.com").unwrap(),
                password_hash: PasswordHash::new("hash".into()),
                is_admin: false,
                status: UserStatus::Pending,
                created_at: gatehouse_domain::now(),
                approved_at: None,
                approved_by: None,
            })
        })
        .expect("a write through the second host");
    assert_eq!(
        store
            .read_with(|repo| repo.find_by_id(user.id))
            .expect("a read")
            .map(|u| u.email),
        Some(user.email)
    );
    drop(silent);
}
