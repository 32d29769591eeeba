//! Webhooks from outside (API.md, "Notifications: webhooks and mail"): the real binary
//! delivering to a real HTTP receiver started by the test, on both backends.

use std::time::Duration;

use gatehouse_storage::testing::{needs_postgres, EmptyDatabase, TestBackend};
use gatehouse_storage::DatabaseUrl;
use serde_json::{json, Value};

use crate::cli::gatehouse_with;
use crate::receiver::Receiver;
use crate::server::Server;

const PASSWORD: &str = "tr0mbone-kettle";
const ADMIN: &str = "admin@example.com";
const WAIT: Duration = Duration::from_secs(20);

/// Receivers run on 127.0.0.1: the tests allow private addresses, and retry quickly.
const ENV: &[(&str, &str)] = &[
    ("GATEHOUSE_WEBHOOK_ALLOW_PRIVATE", "true"),
    ("GATEHOUSE_WEBHOOK_RETRY_DELAYS", "200ms,300ms"),
    ("GATEHOUSE_WEBHOOK_TIMEOUT", "1s"),
];

fn admin(server: &Server) -> String {
    assert_eq!(server.register(ADMIN, PASSWORD).status, 201);
    server.token(ADMIN, PASSWORD)
}

/// Adds an endpoint; returns its id and secret.
fn add_webhook(server: &Server, token: &str, url: &str, events: Value) -> (i64, String) {
    let reply = server.send_json(
        "POST",
        "/api/auth/webhooks",
        Some(token),
        &json!({"url": url, "events": events}),
    );
    assert_eq!(reply.status, 201, "{reply:?}");
    (
        reply.body["id"].as_i64().unwrap(),
        reply.body["secret"].as_str().unwrap().to_owned(),
    )
}

fn deliveries(server: &Server, token: &str, webhook: i64) -> Vec<Value> {
    let reply = server.get(
        &format!("/api/auth/webhooks/{webhook}/deliveries"),
        Some(token),
    );
    assert_eq!(reply.status, 200, "{reply:?}");
    reply.body.as_array().unwrap().clone()
}

/// Raises a `webhook.test` event for `webhook` (`POST /webhooks/{id}/test`: 202).
fn send_test(server: &Server, token: &str, webhook: i64) {
    let reply = server.send_json(
        "POST",
        &format!("/api/auth/webhooks/{webhook}/test"),
        Some(token),
        &json!({}),
    );
    assert_eq!(reply.status, 202, "{reply:?}");
}

/// Every delivery of `log` was delivered, by its first attempt.
fn assert_delivered_at_first_attempt(log: &[Value]) {
    assert!(
        log.iter()
            .all(|d| d["status"] == "delivered" && d["attempts"] == 1),
        "{log:#?}"
    );
}

/// Waits until every delivery of `webhook` is settled (not pending); returns them.
fn settled(server: &Server, token: &str, webhook: i64, n: usize) -> Vec<Value> {
    settled_within(server, token, webhook, n, WAIT)
}

/// [`settled`], waiting at most `limit`.
fn settled_within(
    server: &Server,
    token: &str,
    webhook: i64,
    n: usize,
    limit: Duration,
) -> Vec<Value> {
    let deadline = std::time::Instant::now() + limit;
    loop {
        let items = deliveries(server, token, webhook);
        if items.len() >= n && items.iter().all(|d| d["status"] != "pending") {
            return items;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not settled: {items:#?}\n{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A change's event arrives signed as the Standard Webhooks specification says, with the
/// user as the API shows them, and the deliveries log says delivered.
fn events_arrive_signed_with_the_user(backend: TestBackend) {
    let db = EmptyDatabase::new(backend);
    let receiver = Receiver::start();
    let server = Server::start(&db, ENV);
    let token = admin(&server);
    let (everything, secret) = add_webhook(&server, &token, &receiver.url("/all"), json!(["*"]));
    let (_only_deletions, _) = add_webhook(
        &server,
        &token,
        &receiver.url("/deleted"),
        json!(["user.deleted"]),
    );
    let applicant = server.register("ann@example.com", PASSWORD);
    assert_eq!(applicant.status, 201);
    let ann = applicant.body["id"].as_i64().unwrap();
    let approved = server.send_json(
        "PUT",
        &format!("/api/auth/users/{ann}"),
        Some(&token),
        &json!({"status": "approved"}),
    );
    assert_eq!(approved.status, 200, "{approved:?}");
    let got = receiver.wait_for(2, WAIT);
    assert_eq!(got.len(), 2, "{got:#?}\n{}", server.log());
    let mut got = got;
    got.sort_by_key(|r| r.json()["type"].as_str().unwrap().to_owned());
    let (approval, registration) = (&got[0], &got[1]);
    for request in &got {
        assert_eq!(request.method, "POST");
        assert_eq!(
            request.path, "/all",
            "only the endpoint subscribed to everything"
        );
        assert_eq!(request.header("content-type"), "application/json");
        assert!(request.signed_with(&secret), "{request:#?}");
        let body = request.json();
        assert_eq!(body["id"], request.header("webhook-id"));
        assert!(request.header("webhook-id").starts_with("msg_"));
        let sent_at: i64 = request.header("webhook-timestamp").parse().unwrap();
        assert!((sent_at - chrono::Utc::now().timestamp()).abs() < 60);
        assert_eq!(body["data"]["user"]["id"], ann);
        assert_eq!(body["data"]["user"]["email"], "ann@example.com");
        assert!(body["data"]["user"].get("password_hash").is_none());
        assert!(body["timestamp"].as_str().unwrap().ends_with('Z'));
    }
    assert_eq!(registration.json()["type"], "user.registered");
    assert_eq!(registration.json()["data"]["user"]["status"], "pending");
    assert_eq!(registration.json()["data"]["actor_id"], Value::Null);
    assert_eq!(approval.json()["type"], "user.approved");
    assert_eq!(approval.json()["data"]["user"]["status"], "approved");
    assert_eq!(approval.json()["data"]["actor_id"], 1);
    let log = settled(&server, &token, everything, 2);
    for delivery in &log {
        assert_eq!(delivery["status"], "delivered", "{delivery}");
        assert_eq!(delivery["attempts"], 1);
        assert_eq!(delivery["last_status_code"], 200);
        assert_eq!(delivery["next_attempt_at"], Value::Null);
    }
    // A deletion reaches both endpoints, with the user as they were.
    let deleted = server.send_json(
        "DELETE",
        &format!("/api/auth/users/{ann}"),
        Some(&token),
        &Value::Null,
    );
    assert_eq!(deleted.status, 204);
    let got = receiver.wait_for(4, WAIT);
    let deletions: Vec<_> = got
        .iter()
        .filter(|r| r.json()["type"] == "user.deleted")
        .collect();
    assert_eq!(deletions.len(), 2, "{got:#?}");
    assert_eq!(
        deletions[0].json()["data"]["user"]["email"],
        "ann@example.com"
    );
}

/// A receiver failing gets the configured retries, then the delivery is `failed`; a 410
/// disables the endpoint; the test event goes to one endpoint even when others listen.
fn failures_are_retried_then_failed_and_410_disables(backend: TestBackend) {
    let db = EmptyDatabase::new(backend);
    let failing = Receiver::start();
    failing.answer(500);
    let gone = Receiver::start();
    gone.answer(410);
    let server = Server::start(&db, ENV);
    let token = admin(&server);
    let (failing_id, _) = add_webhook(&server, &token, &failing.url("/"), json!(["*"]));
    let (gone_id, _) = add_webhook(&server, &token, &gone.url("/"), json!(["*"]));
    send_test(&server, &token, failing_id);
    let log = settled(&server, &token, failing_id, 1);
    assert_eq!(log.len(), 1, "{log:#?}");
    assert_eq!(log[0]["event_type"], "webhook.test");
    assert_eq!(log[0]["status"], "failed", "{log:#?}");
    assert_eq!(
        log[0]["attempts"], 3,
        "one attempt and two retries: {log:#?}"
    );
    assert_eq!(log[0]["last_status_code"], 500);
    assert!(log[0]["last_error"].as_str().unwrap().contains("500"));
    let attempts = failing.received();
    assert_eq!(attempts.len(), 3);
    assert!(
        attempts
            .iter()
            .all(|a| a.header("webhook-id") == attempts[0].header("webhook-id")),
        "every retry carries the same webhook-id"
    );
    assert!(
        gone.received().is_empty(),
        "the test event went to one endpoint"
    );

    assert_eq!(server.register("bob@example.com", PASSWORD).status, 201);
    let log = settled(&server, &token, gone_id, 1);
    assert_eq!(log[0]["status"], "failed", "{log:#?}");
    assert_eq!(log[0]["attempts"], 1);
    assert_eq!(log[0]["last_status_code"], 410);
    let endpoint = server.get(&format!("/api/auth/webhooks/{gone_id}"), Some(&token));
    assert_eq!(endpoint.body["active"], false, "{endpoint:?}");
    // Disabled: the next event does not go there.
    assert_eq!(server.register("cat@example.com", PASSWORD).status, 201);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(gone.received().len(), 1);
}

/// An attempt in flight when the process is killed is not lost: it is made again after a
/// restart (PostgreSQL: once its claim runs out, twice the timeout and 5 s after it was
/// claimed; SQLite: at once, the kill having released the outbox's lock).
fn an_attempt_cut_short_by_a_kill_is_made_again(backend: TestBackend) {
    let db = EmptyDatabase::new(backend);
    let receiver = Receiver::start();
    receiver.hold();
    let server = Server::start(&db, ENV);
    let token = admin(&server);
    let (webhook, secret) = add_webhook(&server, &token, &receiver.url("/"), json!(["*"]));
    assert_eq!(server.register("ann@example.com", PASSWORD).status, 201);
    // The attempt is in flight (the receiver holds it, well within the 1 s timeout): kill.
    std::thread::sleep(Duration::from_millis(300));
    server.kill9();
    receiver.release();
    let server = Server::start(&db, ENV);
    let token = server.token(ADMIN, PASSWORD);
    let log = deliveries(&server, &token, webhook);
    assert_eq!(log.len(), 1);
    // Still pending (PostgreSQL, until the claim runs out), or already sent again (SQLite).
    assert!(
        log[0]["status"] == "pending" && log[0]["attempts"] == 0
            || log[0]["status"] == "delivered" && log[0]["attempts"] == 1,
        "the cut attempt was never recorded: {log:#?}"
    );
    let got = receiver.wait_for(1, WAIT);
    assert_eq!(got.len(), 1, "{got:#?}\n{}", server.log());
    assert!(got[0].signed_with(&secret));
    assert_eq!(got[0].json()["type"], "user.registered");
    assert_eq!(got[0].json()["data"]["user"]["email"], "ann@example.com");
    let log = settled(&server, &token, webhook, 1);
    assert_eq!(log[0]["status"], "delivered", "{log:#?}");
    assert_eq!(log[0]["attempts"], 1, "{log:#?}");
}

/// A receiver slower than the dispatcher's turns: the dispatcher takes more deliveries
/// than it sends at once, sends 16 at a time, and takes again those that waited for a
/// slot longer than the timeout (never attempted, so never recorded), so that the lease
/// still covers every attempt. Each event arrives once, after one attempt. (On
/// PostgreSQL the ones taken again wait for their lease, 11 s here.)
fn a_slow_receiver_gets_sixteen_at_once_and_every_event_once(backend: TestBackend) {
    const EVENTS: usize = 48;
    let db = EmptyDatabase::new(backend);
    let receiver = Receiver::start();
    // Within the timeout for each request (0.8 s to spare), but the third round of 16
    // starts two answers (4.4 s) after the first: later than a timeout (3 s) after it was
    // taken, as long as the 48 events are raised within 1.35 s (28 ms each).
    receiver.delay(Duration::from_millis(2_200));
    let env = [
        ENV,
        &[
            ("GATEHOUSE_WEBHOOK_TIMEOUT", "3s"),
            ("RUST_LOG", "info,gatehouse::dispatcher=debug"),
        ],
    ]
    .concat();
    let server = Server::start(&db, &env);
    let token = admin(&server);
    let (webhook, _) = add_webhook(&server, &token, &receiver.url("/"), json!(["*"]));
    for _ in 0..EVENTS {
        send_test(&server, &token, webhook);
    }
    // Three rounds, and on PostgreSQL the lease of those taken again (11 s): twice that.
    let log = settled_within(&server, &token, webhook, EVENTS, Duration::from_secs(40));
    assert_delivered_at_first_attempt(&log);
    let got = receiver.received();
    let mut ids: Vec<_> = got.iter().map(|r| r.header("webhook-id")).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!((got.len(), ids.len()), (EVENTS, EVENTS), "each event once");
    let most = receiver.most_at_once();
    assert!((2..=16).contains(&most), "{most} requests at once");
    assert!(
        server.log().contains("not started in time"),
        "the third round waited too long and was taken again: {}",
        server.log()
    );
}

/// A receiver that answers with a short body and keeps its connection gets every delivery
/// on one: the dispatcher reads the body to its end, so the connection goes back to the
/// pool. (Left unread, it was closed at times here: 2 connections for the 5, each new one
/// a TCP and, for https, a TLS handshake.)
fn a_receiver_keeping_its_connection_gets_every_delivery_on_it(backend: TestBackend) {
    let db = EmptyDatabase::new(backend);
    let receiver = Receiver::start();
    receiver.keep_alive();
    let server = Server::start(&db, ENV);
    let token = admin(&server);
    let (webhook, _) = add_webhook(&server, &token, &receiver.url("/"), json!(["*"]));
    let mut log = Vec::new();
    for n in 1..=5 {
        send_test(&server, &token, webhook);
        // Recorded: the attempt, its answer's body included, is over.
        log = settled(&server, &token, webhook, n);
    }
    assert_eq!(receiver.received().len(), 5);
    assert_delivered_at_first_attempt(&log);
    assert_eq!(receiver.connections(), 1, "one connection for the five");
}

/// SIGTERM while an attempt is in flight: the server waits for it (at most the timeout),
/// records it, and stops; the next process makes the retry.
fn sigterm_records_the_attempt_in_flight(backend: TestBackend) {
    let db = EmptyDatabase::new(backend);
    let receiver = Receiver::start();
    receiver.hold();
    let server = Server::start(&db, ENV);
    let token = admin(&server);
    let (webhook, _) = add_webhook(&server, &token, &receiver.url("/"), json!(["*"]));
    assert_eq!(server.register("ann@example.com", PASSWORD).status, 201);
    std::thread::sleep(Duration::from_millis(300));
    let log = server.stop_and_read_log();
    assert!(log.contains("stopped"), "{log}");
    assert!(!log.contains("ERROR"), "{log}");
    receiver.release();
    let server = Server::start(&db, ENV);
    let token = server.token(ADMIN, PASSWORD);
    let got = receiver.wait_for(1, WAIT);
    assert_eq!(got.len(), 1, "{}", server.log());
    let log = settled(&server, &token, webhook, 1);
    assert_eq!(log[0]["status"], "delivered", "{log:#?}");
    assert_eq!(
        log[0]["attempts"], 2,
        "the cut attempt was recorded: {log:#?}"
    );
}

/// A committed event whose first attempt failed survives a kill -9 and a restart: its
/// retry is made by the next process.
fn a_retry_survives_a_kill_and_a_restart(backend: TestBackend) {
    let db = EmptyDatabase::new(backend);
    // A port nobody listens on yet: the first attempt finds it closed.
    let port = {
        let probe = Receiver::start();
        probe.port
    };
    std::thread::sleep(Duration::from_millis(100));
    let env = [
        ("GATEHOUSE_WEBHOOK_ALLOW_PRIVATE", "true"),
        ("GATEHOUSE_WEBHOOK_RETRY_DELAYS", "2s"),
        ("GATEHOUSE_WEBHOOK_TIMEOUT", "1s"),
    ];
    let server = Server::start(&db, &env);
    let token = admin(&server);
    let url = format!("http://127.0.0.1:{port}/");
    let (webhook, _) = add_webhook(&server, &token, &url, json!(["*"]));
    assert_eq!(server.register("ann@example.com", PASSWORD).status, 201);
    let deadline = std::time::Instant::now() + WAIT;
    while deliveries(&server, &token, webhook)[0]["attempts"] != 1 {
        assert!(std::time::Instant::now() < deadline, "no first attempt");
        std::thread::sleep(Duration::from_millis(20));
    }
    server.kill9();
    let receiver = Receiver::start_on(port);
    let server = Server::start(&db, &env);
    let got = receiver.wait_for(1, WAIT);
    assert_eq!(got.len(), 1, "{}", server.log());
    assert_eq!(got[0].json()["data"]["user"]["email"], "ann@example.com");
    let log = settled(&server, &token, webhook, 1);
    assert_eq!(log[0]["status"], "delivered");
    assert_eq!(log[0]["attempts"], 2);
    assert!(log[0]["last_error"].is_null(), "{log:#?}");
}

/// An endpoint added while private addresses were allowed is refused at delivery once
/// they are not: the address is checked again at each attempt.
fn the_address_is_checked_again_at_delivery(backend: TestBackend) {
    let db = EmptyDatabase::new(backend);
    let receiver = Receiver::start();
    let server = Server::start(&db, ENV);
    let token = admin(&server);
    let (webhook, _) = add_webhook(&server, &token, &receiver.url("/"), json!(["*"]));
    drop(server);
    let server = Server::start(
        &db,
        &[
            ("GATEHOUSE_WEBHOOK_RETRY_DELAYS", ""),
            ("GATEHOUSE_WEBHOOK_TIMEOUT", "1s"),
        ],
    );
    let refused = server.send_json(
        "POST",
        "/api/auth/webhooks",
        Some(&token),
        &json!({"url": receiver.url("/"), "events": ["*"]}),
    );
    assert_eq!(refused.status, 422, "{refused:?}");
    assert_eq!(refused.body["code"], "invalid_url");
    assert_eq!(server.register("ann@example.com", PASSWORD).status, 201);
    let log = settled(&server, &token, webhook, 1);
    assert_eq!(log[0]["status"], "failed", "{log:#?}");
    assert!(
        log[0]["last_error"]
            .as_str()
            .unwrap()
            .contains("non-public"),
        "{log:#?}"
    );
    assert!(receiver.received().is_empty());
}

/// Two instances on one PostgreSQL share the outbox: 200 events, each delivered once.
#[needs_postgres]
#[test]
fn two_instances_deliver_each_event_once() {
    let db = EmptyDatabase::new(TestBackend::Postgres);
    let receiver = Receiver::start();
    let servers: Vec<_> = (0..2).map(|_| Server::start(&db, ENV)).collect();
    let token = admin(&servers[0]);
    let (webhook, _) = add_webhook(&servers[0], &token, &receiver.url("/"), json!(["*"]));
    for i in 0..200 {
        send_test(&servers[i % 2], &token, webhook);
    }
    let got = receiver.wait_for(200, Duration::from_secs(60));
    std::thread::sleep(Duration::from_millis(500));
    let got_after = receiver.received();
    assert_eq!(got.len(), 200);
    assert_eq!(got_after.len(), 200, "no event twice");
    let mut ids: Vec<_> = got_after
        .iter()
        .map(|r| r.header("webhook-id").to_owned())
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 200);
}

/// Two processes serving one SQLite file: the first holds the outbox's lock and sends
/// every event, the other's too (at its poll), each once; killed, it hands over to the
/// other at once, which sends what was left and what comes next.
#[test]
fn two_processes_on_one_sqlite_file_send_each_event_once_and_hand_over() {
    let db = EmptyDatabase::new(TestBackend::Sqlite);
    let receiver = Receiver::start();
    let first = Server::start(&db, ENV);
    let token = admin(&first);
    // The second starts once the first sends: the lock is the first's.
    let (webhook, _) = add_webhook(&first, &token, &receiver.url("/"), json!(["*"]));
    assert_eq!(first.register("ann@example.com", PASSWORD).status, 201);
    assert_eq!(receiver.wait_for(1, WAIT).len(), 1, "{}", first.log());
    let second = Server::start(&db, ENV);
    let log = second.log_once_it_has("another process sends");
    assert!(log.contains("another process sends"), "{log}");
    let DatabaseUrl::Sqlite { path } = db.url() else {
        unreachable!("an SQLite database")
    };
    assert!(
        std::path::Path::new(&format!("{path}-outbox.lock")).exists(),
        "the lock file is beside the database"
    );
    let test_event = |server: &Server| {
        send_test(server, &token, webhook);
    };
    for i in 0..100 {
        test_event(if i % 2 == 0 { &first } else { &second });
    }
    let got = receiver.wait_for(101, Duration::from_secs(60));
    assert_eq!(got.len(), 101, "{}\n{}", first.log(), second.log());
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(receiver.received().len(), 101, "no event twice");

    // Killed with an attempt in flight: the other takes over and makes it again.
    receiver.hold();
    test_event(&first);
    std::thread::sleep(Duration::from_millis(300));
    first.kill9();
    receiver.release();
    let log = second.log_once_it_has("now sends");
    assert!(log.contains("now sends"), "{log}");
    test_event(&second);
    let got = receiver.wait_for(103, WAIT);
    assert!(got.len() >= 103, "{}", second.log());
    let log = settled(&second, &token, webhook, 103);
    assert_eq!(log.len(), 103);
    assert!(log.iter().all(|d| d["status"] == "delivered"), "{log:#?}");
}

/// The command line adds, lists, tests and removes endpoints; a running server delivers
/// what it queued; refusals are plain sentences.
fn the_command_line_manages_webhooks(backend: TestBackend) {
    let db = EmptyDatabase::new(backend);
    let receiver = Receiver::start();
    let server = Server::start(&db, ENV);
    let token = admin(&server);
    let run = |args: &[&str]| gatehouse_with(&db.url_string(), args, ENV, "");
    let added = run(&[
        "webhooks",
        "add",
        &receiver.url("/cli"),
        "--events",
        "user.approved, user.rejected",
        "--description",
        "from the shell",
        "--json",
    ])
    .json();
    let id = added["id"].as_i64().unwrap();
    assert_eq!(added["events"], json!(["user.approved", "user.rejected"]));
    assert_eq!(added["description"], "from the shell");
    let secret = added["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"));
    let listed = run(&["webhooks", "list", "--json"]).json();
    assert_eq!(listed[0]["id"], id);
    assert!(listed[0].get("secret").is_none(), "{listed}");
    let table = run(&["webhooks", "list"]);
    assert!(table.stdout.contains("from the shell"), "{table:?}");
    assert!(!table.stdout.contains(&secret));
    let tested = run(&["webhooks", "test", &id.to_string()]);
    assert_eq!(tested.code, 0, "{tested:?}");
    let got = receiver.wait_for(1, WAIT);
    assert_eq!(got.len(), 1, "{}", server.log());
    assert_eq!(got[0].json()["type"], "webhook.test");
    assert!(got[0].signed_with(&secret));
    run(&["webhooks", "add", "ftp://example.com/", "--events", "*"])
        .refused("url must be http or https");
    gatehouse_with(
        &db.url_string(),
        &["webhooks", "add", &receiver.url("/"), "--events", "*"],
        &[],
        "",
    )
    .refused(
        "url points to 127.0.0.1, a loopback, private, link-local or otherwise non-public address",
    );
    run(&[
        "webhooks",
        "add",
        "https://example.com/",
        "--events",
        "user.nope",
    ])
    .refused("unknown event type: \"user.nope\"");
    let removed = run(&["webhooks", "remove", &id.to_string()]);
    assert_eq!(removed.code, 0, "{removed:?}");
    run(&["webhooks", "remove", &id.to_string()]).refused("Webhook not found");
    let audit = server.get("/api/auth/audit?action=webhook_created", Some(&token));
    assert_eq!(audit.status, 200, "{audit:?}");
}

gatehouse_storage::backend_tests!(
    the_command_line_manages_webhooks,
    events_arrive_signed_with_the_user,
    failures_are_retried_then_failed_and_410_disables,
    an_attempt_cut_short_by_a_kill_is_made_again,
    a_slow_receiver_gets_sixteen_at_once_and_every_event_once,
    a_receiver_keeping_its_connection_gets_every_delivery_on_it,
    a_retry_survives_a_kill_and_a_restart,
    sigterm_records_the_attempt_in_flight,
    the_address_is_checked_again_at_delivery,
);

/// Each thread of process `pid`: its name (as the kernel keeps it, 15 bytes at most), nice
/// value and scheduling policy (0 normal, 3 batch), from /proc.
#[cfg(target_os = "linux")]
fn threads_of(pid: u32) -> Vec<(String, i32, u32)> {
    let mut threads = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let Ok(stat) = std::fs::read_to_string(task.unwrap().path().join("stat")) else {
            continue; // the thread ended meanwhile
        };
        let (head, rest) = stat.rsplit_once(')').unwrap();
        let name = head.split_once('(').unwrap().1.to_owned();
        // After the name: the state is field 3, nice field 19, the policy field 41.
        let fields: Vec<&str> = rest.split_whitespace().collect();
        threads.push((
            name,
            fields[16].parse().unwrap(),
            fields[38].parse().unwrap(),
        ));
    }
    threads
}

/// Sending webhooks is background work: the dispatcher's thread runs below the request
/// threads, as the bcrypt lane does; its writes (which hold SQLite's one writer while they
/// run) run on a thread of their own at the request threads' priority.
#[cfg(target_os = "linux")]
#[test]
fn the_outbox_sends_below_the_request_threads_and_writes_at_their_priority() {
    let db = EmptyDatabase::new(TestBackend::Sqlite);
    let server = Server::start(&db, ENV);
    let deadline = std::time::Instant::now() + WAIT;
    let threads = loop {
        let threads = threads_of(server.pid());
        // Each thread names and lowers itself as it starts: wait for both kinds.
        let lowered = threads
            .iter()
            .any(|(name, _, policy)| name == "gatehouse-outbo" && *policy == 3);
        let serving = threads.iter().any(|(name, _, _)| name == "actix-rt|system");
        if (lowered && serving) || std::time::Instant::now() > deadline {
            break threads;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let named = |wanted: &str| {
        threads
            .iter()
            .filter(|(name, _, _)| name == wanted)
            .map(|(_, nice, policy)| (*nice, *policy))
            .collect::<Vec<_>>()
    };
    // The request threads keep the priority the server was started with (the tests'
    // own, 0 unless they run under `nice`); the writes keep it too.
    let workers = named("actix-rt|system");
    let Some(&(base, _)) = workers.first() else {
        panic!("no request thread: {threads:?}");
    };
    assert!(workers.iter().all(|w| *w == (base, 0)), "{threads:?}");
    assert_eq!(named("outbox-writes"), [(base, 0)], "{threads:?}");
    // Sending: `SENDING_NICE` (10) steps below them (19 at most), batch.
    assert_eq!(
        named("gatehouse-outbo"),
        [((base + 10).min(19), 3)],
        "{threads:?}"
    );
    server.stop();
}
