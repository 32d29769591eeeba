//! PostgreSQL faults with a synchronous standby (issue 15, "Database faults and failover"):
//! Gatehouse on a libpq multi-host URL (`target_session_attrs=read-write`), clients
//! registering and reading `/me` all along, a prober asking `/readyz`, and one fault staged
//! on real clusters: the primary crashing, the primary freezing (`SIGSTOP`), the standby
//! gone. Afterwards every registration Gatehouse acknowledged (201) must exist on the
//! surviving primary, no request may have waited past the time limit plus the pool's wait,
//! `/readyz` must have told the truth, and after a promotion writes must come back on their
//! own within the connect timeout plus a few seconds.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

use std::net::TcpListener;

use gatehouse_storage::testing::replicated::{Node, ReplicatedPostgres};
use gatehouse_storage::testing::{needs_postgres, with_first_host, EmptyDatabase, TestBackend};

use crate::server::{run, Server};

/// The settings of the drills: a 1 s time limit per database call, a 2 s pool wait and
/// connect timeout.
const DRILL_ENV: [(&str, &str); 3] = [
    ("GATEHOUSE_DATABASE_CONNECT_TIMEOUT", "2s"),
    ("GATEHOUSE_DATABASE_STATEMENT_TIMEOUT", "1s"),
    ("GATEHOUSE_REGISTER_LIMIT_PER_HOUR", "0"),
];

/// No request may take longer: the limit (1 s) and the pool's wait (2 s) for the
/// database, the wait for a database slot (2 s) in front of them, and a second for a
/// machine shared with the other tests. A registration's hash is not database time, but
/// at the tests' bcrypt cost it is a few milliseconds.
const LONGEST: Duration = Duration::from_secs(6);

/// `/readyz` must say 503 once a fault is this old (its bound, 1 s, and a retry's).
const READYZ_NOTICES: Duration = Duration::from_secs(3);

/// One answer a client saw: when its request started, how long it took, its status (0:
/// no answer).
#[derive(Debug, Clone, Copy)]
struct Seen {
    at: Instant,
    took: Duration,
    status: u16,
}

/// What the clients saw.
#[derive(Default)]
struct Outcomes {
    /// Registrations: the email and what came back.
    registrations: Vec<(String, Seen)>,
    /// `GET /api/auth/me` with the admin's token.
    me: Vec<Seen>,
    /// `GET /readyz`.
    readyz: Vec<Seen>,
    /// Requests without an answer, described.
    failures: Vec<String>,
}

impl Outcomes {
    fn acknowledged(&self) -> impl Iterator<Item = &String> {
        self.registrations
            .iter()
            .filter(|(_, seen)| seen.status == 201)
            .map(|(email, _)| email)
    }

    /// When the first registration that started after `at` was acknowledged.
    fn first_201_started_after(&self, at: Instant) -> Option<Instant> {
        self.registrations
            .iter()
            .filter(|(_, seen)| seen.status == 201 && seen.at > at)
            .map(|(_, seen)| seen.at + seen.took)
            .min()
    }

    fn all(&self) -> impl Iterator<Item = &Seen> {
        self.registrations
            .iter()
            .map(|(_, seen)| seen)
            .chain(&self.me)
            .chain(&self.readyz)
    }

    fn summary(&self) -> String {
        let count = |seen: &mut dyn Iterator<Item = &Seen>| {
            let mut by_status = std::collections::BTreeMap::<u16, usize>::new();
            for s in seen {
                *by_status.entry(s.status).or_default() += 1;
            }
            format!("{by_status:?}")
        };
        format!(
            "registrations {}, /me {}, /readyz {}, the longest request {:?}",
            count(&mut self.registrations.iter().map(|(_, s)| s)),
            count(&mut self.me.iter()),
            count(&mut self.readyz.iter()),
            self.all().map(|s| s.took).max().unwrap_or_default()
        )
    }
}

/// Runs three registering clients, one reading `/me` and one asking `/readyz` every 100 ms
/// against `server`, calls `stage` meanwhile (which stages the fault and returns once the
/// drill may end), then stops them.
fn drill(server: &Server, admin_token: &str, stage: impl FnOnce(&Mutex<Outcomes>)) -> Outcomes {
    let outcomes = Mutex::new(Outcomes::default());
    let stop = AtomicBool::new(false);
    let timed = |call: &dyn Fn() -> Result<u16, String>| {
        let at = Instant::now();
        let status = call();
        (at, at.elapsed(), status)
    };
    thread::scope(|scope| {
        for client in 0..3 {
            let (outcomes, stop) = (&outcomes, &stop);
            scope.spawn(move || {
                let mut n = 0;
                while !stop.load(Ordering::SeqCst) {
                    n += 1;
                    let email = format!("c{client}-{n}@example.com");
                    let (at, took, status) = timed(&|| {
                        server
                            .try_register(&email, "tr0mbone-kettle")
                            .map(|reply| reply.status)
                    });
                    let status = record(outcomes, &email, took, status);
                    outcomes
                        .lock()
                        .unwrap()
                        .registrations
                        .push((email, Seen { at, took, status }));
                    if status != 201 {
                        // The service says it is away: as a client would, wait a little.
                        thread::sleep(Duration::from_millis(50));
                    }
                }
            });
        }
        {
            let (outcomes, stop) = (&outcomes, &stop);
            scope.spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    let (at, took, status) = timed(&|| {
                        server
                            .try_get("/api/auth/me", Some(admin_token))
                            .map(|reply| reply.status)
                    });
                    let status = record(outcomes, "/me", took, status);
                    outcomes.lock().unwrap().me.push(Seen { at, took, status });
                    thread::sleep(Duration::from_millis(20));
                }
            });
        }
        {
            let (outcomes, stop) = (&outcomes, &stop);
            scope.spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    let (at, took, status) =
                        timed(&|| server.try_get("/readyz", None).map(|reply| reply.status));
                    let status = record(outcomes, "/readyz", took, status);
                    outcomes
                        .lock()
                        .unwrap()
                        .readyz
                        .push(Seen { at, took, status });
                    thread::sleep(Duration::from_millis(100));
                }
            });
        }
        thread::sleep(Duration::from_millis(1500));
        stage(&outcomes);
        stop.store(true, Ordering::SeqCst);
    });
    outcomes.into_inner().unwrap()
}

/// The status, or 0 after recording a request that got no answer.
fn record(
    outcomes: &Mutex<Outcomes>,
    what: &str,
    took: Duration,
    status: Result<u16, String>,
) -> u16 {
    status.unwrap_or_else(|e| {
        outcomes
            .lock()
            .unwrap()
            .failures
            .push(format!("{what}: {e} after {took:?}"));
        0
    })
}

/// The checks every drill shares: every request answered, only 201 or 503 to
/// registrations, 200 or 503 to `/me` and `/readyz`, none longer than [`LONGEST`], and
/// every acknowledged registration on `survivor`.
fn check_common(
    outcomes: &Outcomes,
    cluster: &ReplicatedPostgres,
    survivor: Node,
    server: &Server,
) {
    eprintln!("{}", outcomes.summary());
    assert!(
        outcomes.failures.is_empty(),
        "requests without an answer: {:?}\n{}",
        outcomes.failures,
        server.log()
    );
    for (email, seen) in &outcomes.registrations {
        assert!(
            matches!(seen.status, 201 | 503),
            "registering {email}: {seen:?}\n{}",
            server.log()
        );
    }
    for seen in outcomes.me.iter().chain(&outcomes.readyz) {
        assert!(
            matches!(seen.status, 200 | 503),
            "{seen:?}\n{}",
            server.log()
        );
    }
    let longest = outcomes.all().map(|s| s.took).max().unwrap_or_default();
    assert!(
        longest < LONGEST,
        "a request took {longest:?} ({})\n{}",
        outcomes.summary(),
        server.log()
    );
    let on_survivor: std::collections::HashSet<String> =
        cluster.emails_on(survivor).into_iter().collect();
    let lost: Vec<&String> = outcomes
        .acknowledged()
        .filter(|email| !on_survivor.contains(*email))
        .collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged registrations are missing on the surviving primary: {lost:?}",
        lost.len()
    );
    assert!(
        outcomes.acknowledged().count() > 10,
        "too few registrations to show anything: {}",
        outcomes.summary()
    );
}

/// `/readyz` told the truth: 503 to every probe that started once the fault was
/// [`READYZ_NOTICES`] old and was answered before `until` (a probe that waited for a
/// connection across the promotion may rightly say 200 once it is done).
fn check_readyz_said_503(outcomes: &Outcomes, fault_at: Instant, until: Instant) {
    let wrong: Vec<&Seen> = outcomes
        .readyz
        .iter()
        .filter(|seen| {
            seen.at > fault_at + READYZ_NOTICES && seen.at + seen.took < until && seen.status != 503
        })
        .collect();
    assert!(
        wrong.is_empty(),
        "/readyz said ready during the fault: {wrong:?}"
    );
}

/// Waits (at most 20 s after `promoted`) for a registration that started after the
/// promotion to be acknowledged, then a second more.
fn wait_for_writes_after(outcomes: &Mutex<Outcomes>, promoted: Instant) {
    let deadline = promoted + Duration::from_secs(20);
    while outcomes
        .lock()
        .unwrap()
        .first_201_started_after(promoted)
        .is_none()
        && Instant::now() < deadline
    {
        thread::sleep(Duration::from_millis(100));
    }
    thread::sleep(Duration::from_secs(1));
}

/// Writes came back within the connect timeout (2 s) plus a few seconds of `promoted`,
/// and `/readyz` said 200 again after them.
fn check_back_after_promotion(outcomes: &Outcomes, promoted: Instant, what: &str, server: &Server) {
    let back = outcomes
        .first_201_started_after(promoted)
        .map(|at| at.duration_since(promoted))
        .unwrap_or_else(|| {
            panic!(
                "{what}: no registration succeeded within 20 s of the promotion\n{}",
                server.log()
            )
        });
    eprintln!("{what}: writes back {back:?} after the promotion");
    assert!(
        back < Duration::from_secs(7),
        "{what}: writes came back {back:?} after the promotion"
    );
    assert!(
        outcomes
            .readyz
            .iter()
            .any(|seen| seen.at > promoted && seen.status == 200)
            || readyz_becomes(server, 200, Duration::from_secs(5)).is_some(),
        "{what}: /readyz never said 200 after the promotion"
    );
}

fn drill_server(cluster: &ReplicatedPostgres) -> (Server, String) {
    let server = Server::start_at(&cluster.url(), &DRILL_ENV);
    assert_eq!(
        server
            .register("admin@example.com", "tr0mbone-kettle")
            .status,
        201,
        "{}",
        server.log()
    );
    let token = server.token("admin@example.com", "tr0mbone-kettle");
    (server, token)
}

#[needs_postgres]
#[test]
fn a_crashed_primary_loses_no_acknowledged_registration_and_service_resumes_after_promotion() {
    let Some(mut cluster) = ReplicatedPostgres::start() else {
        return;
    };
    let (server, token) = drill_server(&cluster);
    let mut times = None;
    let outcomes = drill(&server, &token, |outcomes| {
        cluster.crash(Node::First);
        let crashed = Instant::now();
        thread::sleep(Duration::from_secs(1));
        cluster.promote(Node::Second);
        let promoted = Instant::now();
        times = Some((crashed, promoted));
        wait_for_writes_after(outcomes, promoted);
    });
    let (_, promoted) = times.unwrap();
    assert!(cluster.is_primary(Node::Second), "{}", cluster.logs());
    check_common(&outcomes, &cluster, Node::Second, &server);
    check_back_after_promotion(&outcomes, promoted, "crash", &server);
}

/// The primary freezes (`SIGSTOP`: its sockets stay open, nothing answers) and stays frozen
/// while the standby is promoted: every call on it must end at its time limit, and the
/// service must move to the new primary on its own.
#[needs_postgres]
#[test]
fn a_frozen_primary_costs_no_request_more_than_its_limit_and_service_resumes_after_promotion() {
    let Some(mut cluster) = ReplicatedPostgres::start() else {
        return;
    };
    let (server, token) = drill_server(&cluster);
    let mut times = None;
    let outcomes = drill(&server, &token, |outcomes| {
        cluster.freeze(Node::First);
        let frozen = Instant::now();
        thread::sleep(Duration::from_secs(4));
        // `pg_ctl promote -w` returns once the promotion is done: a probe that started
        // while it ran may rightly say 200.
        let promoting = Instant::now();
        cluster.promote(Node::Second);
        let promoted = Instant::now();
        times = Some((frozen, promoting, promoted));
        wait_for_writes_after(outcomes, promoted);
    });
    let (frozen, promoting, promoted) = times.unwrap();
    check_common(&outcomes, &cluster, Node::Second, &server);
    check_readyz_said_503(&outcomes, frozen, promoting);
    check_back_after_promotion(&outcomes, promoted, "freeze", &server);
}

/// The synchronous standby goes away and nothing is promoted: every COMMIT would wait for
/// it forever. Each must end at the time limit as a 503 (never a 201 for a write the
/// standby does not have), `/readyz` must say 503, and reads go on.
#[needs_postgres]
#[test]
fn without_its_synchronous_standby_no_write_is_acknowledged_and_none_hangs() {
    let Some(mut cluster) = ReplicatedPostgres::start() else {
        return;
    };
    let (server, token) = drill_server(&cluster);
    let mut cut_at = None;
    let outcomes = drill(&server, &token, |_| {
        cluster.crash(Node::Second);
        cut_at = Some(Instant::now());
        thread::sleep(Duration::from_secs(5));
    });
    let cut_at = cut_at.unwrap();
    check_common(&outcomes, &cluster, Node::First, &server);
    check_readyz_said_503(&outcomes, cut_at, Instant::now());
    let acknowledged_after: Vec<&(String, Seen)> = outcomes
        .registrations
        .iter()
        .filter(|(_, seen)| seen.status == 201 && seen.at > cut_at + Duration::from_millis(200))
        .collect();
    assert!(
        acknowledged_after.is_empty(),
        "registrations acknowledged without the standby: {acknowledged_after:?}"
    );
    assert!(
        outcomes
            .me
            .iter()
            .any(|seen| seen.at > cut_at && seen.status == 200),
        "/me (a read) stopped with the standby: {}",
        outcomes.summary()
    );
}

/// The "dead first host that does not refuse": a listener that never accepts takes
/// the connection and never answers, and libpq waits out its connect timeout on it before
/// the next host. `serve` and the CLI must start all the same, through the second host.
#[needs_postgres]
#[test]
fn serve_and_the_cli_start_when_the_first_host_never_answers() {
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let first = format!("127.0.0.1:{}", silent.local_addr().unwrap().port());
    let db = EmptyDatabase::new(TestBackend::Postgres);
    let url = with_first_host(&db.url_string(), &first);
    let env = [("GATEHOUSE_DATABASE_CONNECT_TIMEOUT", "4s")];

    let server = Server::start_at(&url, &env);
    assert_eq!(
        server
            .register("admin@example.com", "tr0mbone-kettle")
            .status,
        201,
        "{}",
        server.log()
    );
    assert_eq!(server.get("/readyz", None).status, 200);
    drop(server);

    let (code, stdout, stderr) = run(
        &["users", "list", "--json"],
        &[env[0], ("GATEHOUSE_DATABASE_URL", url.as_str())],
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("admin@example.com"), "{stdout}");
    drop(silent);
}

/// `serve` on `url` (its pool's wait and time limit, and so `/readyz`'s bound, 2 s), with an admin
/// registered and `/readyz` saying 200.
fn ready_server_on(url: &str) -> Server {
    let server = Server::start_at(
        url,
        &[
            ("GATEHOUSE_DATABASE_CONNECT_TIMEOUT", "2s"),
            ("GATEHOUSE_DATABASE_STATEMENT_TIMEOUT", "2s"),
        ],
    );
    assert_eq!(
        server
            .register("admin@example.com", "tr0mbone-kettle")
            .status,
        201
    );
    assert_eq!(server.get("/readyz", None).status, 200);
    server
}

/// Polls `/readyz` until it answers `status` (at most `within`); the time it took.
fn readyz_becomes(server: &Server, status: u16, within: Duration) -> Option<Duration> {
    let started = Instant::now();
    while started.elapsed() < within {
        if server.get("/readyz", None).status == status {
            return Some(started.elapsed());
        }
        thread::sleep(Duration::from_millis(100));
    }
    None
}

/// A standby answers reads and refuses writes: reached after the primary crashed (a URL
/// without `target_session_attrs`), `/readyz` must say 503 and a registration 503 (not a
/// 500 for PostgreSQL's "read-only transaction"); once it is promoted, both work again.
#[needs_postgres]
#[test]
fn readyz_is_503_on_a_standby_and_200_once_it_is_promoted() {
    let Some(mut cluster) = ReplicatedPostgres::start() else {
        return;
    };
    let server = ready_server_on(&cluster.url_to_any_server());

    cluster.crash(Node::First);
    let deadline = Instant::now() + Duration::from_secs(15);
    while !server.log().contains("is a standby (in recovery)") {
        assert!(
            Instant::now() < deadline,
            "/readyz never reached the standby:\n{}",
            server.log()
        );
        assert_eq!(server.get("/readyz", None).status, 503);
        thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(server.get("/readyz", None).status, 503);
    let refused = server.register("someone@example.com", "tr0mbone-kettle");
    assert_eq!(refused.status, 503, "{refused:?}\n{}", server.log());
    assert_eq!(refused.body["code"], "database_unavailable");

    cluster.promote(Node::Second);
    assert!(
        readyz_becomes(&server, 200, Duration::from_secs(15)).is_some(),
        "not ready within 15 s of the promotion:\n{}",
        server.log()
    );
    assert_eq!(
        server
            .register("someone@example.com", "tr0mbone-kettle")
            .status,
        201
    );
}

/// The "synchronous standby gone": every COMMIT waits for a standby that is not
/// there. `/readyz` used to say 200 (its SELECT 1 commits nothing); its probe now commits a
/// small write, which the time limit (2 s here) cuts short: 503, within the limit.
#[needs_postgres]
#[test]
fn readyz_is_503_when_the_synchronous_standby_is_gone() {
    let Some(mut cluster) = ReplicatedPostgres::start() else {
        return;
    };
    let server = ready_server_on(&cluster.url());

    cluster.crash(Node::Second);
    for _ in 0..2 {
        let started = Instant::now();
        let ready = server.get("/readyz", None);
        // A guard against hanging, not a performance figure: the limit is 2 s.
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "/readyz took {:?}",
            started.elapsed()
        );
        assert_eq!(ready.status, 503, "{ready:?}\n{}", server.log());
        assert_eq!(ready.body["code"], "database_unavailable");
    }
    let log = server.log_once_it_has("GATEHOUSE_DATABASE_STATEMENT_TIMEOUT");
    assert!(
        log.contains("GATEHOUSE_DATABASE_STATEMENT_TIMEOUT"),
        "{log}"
    );
}
