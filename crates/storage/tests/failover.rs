//! PostgreSQL faults (issue 15, "Database faults and failover"), on a real primary with a
//! synchronous standby where they need one: a first host that never answers must not stop
//! start-up; a frozen primary and a COMMIT waiting for a standby that is gone must cost a
//! call no more than its time limit, and never be reported as success; after promotion,
//! writes come back on their own.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests panic to fail

use std::net::TcpListener;
use std::time::{Duration, Instant};

use diesel::{Connection, PgConnection, QueryableByName, RunQueryDsl};
use gatehouse_domain::testing::block_on;
use gatehouse_domain::testing::new_user;
use gatehouse_domain::{
    Email, Error, NewUser, PasswordHash, SessionSource as _, User, UserStatus, UserStore,
    UserStoreExt as _,
};
use gatehouse_storage::testing::replicated::{Node, ReplicatedPostgres};
use gatehouse_storage::testing::{needs_postgres, with_first_host, TestDatabase};
use gatehouse_storage::{Database, DatabaseUrl, PoolOptions};

/// The statement time limit of the fault tests below, and the pool's wait.
const LIMIT: Duration = Duration::from_secs(1);
const POOL_WAIT: Duration = Duration::from_secs(2);

/// A guard against hanging, not a performance figure: a call may take its limit, the pool's
/// wait, and the watchdog's tick; one second more for a busy machine.
const BOUND: Duration = Duration::from_secs(4);

fn fault_options(limit: Duration) -> PoolOptions {
    PoolOptions {
        max_size: 4,
        timeout: POOL_WAIT,
        connect_timeout: POOL_WAIT,
        statement_timeout: limit,
        ..PoolOptions::default()
    }
}

fn register(store: &Database, email: &str) -> Result<User, Error> {
    store.write_with(|repo| repo.insert(new_user(email)))
}

/// Runs `call`, which must fail with "unavailable" within [`BOUND`]; its message.
fn unavailable_within_bound<T: std::fmt::Debug>(
    what: &str,
    call: impl FnOnce() -> Result<T, Error>,
) -> String {
    let started = Instant::now();
    let outcome = call();
    let took = started.elapsed();
    assert!(took < BOUND, "{what} took {took:?}");
    match outcome {
        Err(Error::Unavailable(message)) => message.to_string(),
        other => panic!("{what}: expected unavailable, got {other:?}"),
    }
}

/// A primary that stops answering (every process `SIGSTOP`ped: its sockets stay open) must
/// cost a write, a read and a session lookup no more than the time limit (plus the pool's
/// wait), each reported unavailable; once the standby is promoted, writes succeed again
/// through the multi-host URL without a restart, though the old primary stays frozen.
#[test]
#[needs_postgres]
fn a_frozen_primary_costs_a_call_its_time_limit_and_promotion_brings_writes_back() {
    let Some(mut cluster) = ReplicatedPostgres::start() else {
        return;
    };
    let url: DatabaseUrl = cluster.url().parse().unwrap();
    let store = Database::open(&url, fault_options(LIMIT)).unwrap();
    let ann = register(&store, "ann@example.com").unwrap();

    cluster.freeze(Node::First);
    let message = unavailable_within_bound("a write", || register(&store, "bob@example.com"));
    eprintln!("a write on the frozen primary: {message}");
    unavailable_within_bound("a read", || store.read_with(|repo| repo.find_by_id(ann.id)));
    unavailable_within_bound("a session lookup", || {
        block_on(store.find_session_user(ann.id, 1_000_000))
    });
    unavailable_within_bound("the readiness probe", || store.ping());

    cluster.promote(Node::Second);
    let promoted = Instant::now();
    let back = loop {
        let started = Instant::now();
        let outcome = register(&store, "cat@example.com");
        assert!(
            started.elapsed() < BOUND,
            "a write after the promotion took {:?}",
            started.elapsed()
        );
        match outcome {
            Ok(_) => break promoted.elapsed(),
            Err(Error::Unavailable(_)) => {}
            Err(other) => panic!("after the promotion: {other:?}"),
        }
        assert!(
            promoted.elapsed() < Duration::from_secs(20),
            "no write succeeded within 20 s of the promotion:\n{}",
            cluster.logs()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    eprintln!("writes back {back:?} after the promotion (the old primary still frozen)");
    // The contract: within the connect timeout plus a few seconds.
    assert!(back < POOL_WAIT + Duration::from_secs(5), "{back:?}");
    let emails = cluster.emails_on(Node::Second);
    assert!(emails.contains(&"ann@example.com".to_owned()), "{emails:?}");
    assert!(emails.contains(&"cat@example.com".to_owned()), "{emails:?}");
    store.ping().expect("ready on the new primary");
}

/// With the synchronous standby gone every COMMIT waits for it forever, and PostgreSQL's
/// own `statement_timeout` does not cover that wait: the client-side limit must end the
/// call, report it unavailable (its outcome is unknown: the primary has the row), and
/// never as success.
#[test]
#[needs_postgres]
fn a_commit_waiting_for_a_gone_standby_ends_at_its_limit_as_unavailable() {
    let Some(mut cluster) = ReplicatedPostgres::start() else {
        return;
    };
    let url: DatabaseUrl = cluster.url().parse().unwrap();
    let store = Database::open(&url, fault_options(LIMIT)).unwrap();
    register(&store, "ann@example.com").unwrap();

    cluster.crash(Node::Second);
    let message = unavailable_within_bound("a write", || register(&store, "bob@example.com"));
    eprintln!("a write without its standby: {message}");
    unavailable_within_bound("the readiness probe", || store.ping());
    // Reads need no standby.
    let found = store
        .read_with(|repo| repo.find_by_email(&Email::parse("ann@example.com").unwrap()))
        .expect("a read");
    assert!(found.is_some());
}

/// A COMMIT waiting for the synchronous standby, cancelled (`pg_cancel_backend`, as an
/// operator or a pooler would): PostgreSQL answers "COMMIT" with only a warning that the
/// transaction committed locally and may not be replicated. That must be an unknown
/// outcome (unavailable, 503), never success.
#[test]
#[needs_postgres]
fn a_cancelled_wait_for_the_standby_is_an_unknown_outcome_not_success() {
    #[derive(QueryableByName)]
    struct Waiting {
        #[diesel(sql_type = diesel::sql_types::Integer)]
        pid: i32,
    }
    let Some(mut cluster) = ReplicatedPostgres::start() else {
        return;
    };
    let url: DatabaseUrl = cluster.url().parse().unwrap();
    // A limit long enough for the cancel to come first.
    let store = Database::open(&url, fault_options(Duration::from_secs(60))).unwrap();
    register(&store, "ann@example.com").unwrap();
    cluster.crash(Node::Second);

    let outcome = std::thread::scope(|scope| {
        let write = scope.spawn(|| register(&store, "bob@example.com"));
        let mut admin = PgConnection::establish(&cluster.node_url(Node::First)).unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        let pid = loop {
            let waiting = diesel::sql_query(
                "SELECT pid FROM pg_stat_activity WHERE wait_event = 'SyncRep' LIMIT 1",
            )
            .load::<Waiting>(&mut admin)
            .unwrap();
            if let Some(waiting) = waiting.first() {
                break waiting.pid;
            }
            assert!(Instant::now() < deadline, "no COMMIT waits for the standby");
            std::thread::sleep(Duration::from_millis(20));
        };
        diesel::sql_query(format!("SELECT pg_cancel_backend({pid})"))
            .execute(&mut admin)
            .unwrap();
        write.join().unwrap()
    });
    match outcome {
        Err(Error::Unavailable(message)) => {
            let message = message.to_string();
            assert!(message.contains("outcome is unknown"), "{message}");
            assert!(message.contains("synchronous replication"), "{message}");
        }
        other => panic!("a cancelled replication wait reported as {other:?}"),
    }
    // It did commit on the primary: that is why the outcome is "unknown", not "failed".
    let emails = cluster.emails_on(Node::First);
    assert!(emails.contains(&"bob@example.com".to_owned()), "{emails:?}");
}

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
                reason: None,
                email_verified: false,
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
