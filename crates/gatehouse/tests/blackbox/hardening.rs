//! Operational hardening: private database files and backups, slow request bodies and the
//! connection bound, and no database password in any output.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::server::{run, Server, TempDb};

const PASSWORD: &str = "tr0mbone-kettle";

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

fn beside(db: &Path, suffix: &str) -> std::path::PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push(suffix);
    name.into()
}

#[test]
fn the_database_its_wal_and_backups_are_readable_by_the_owner_only() {
    let db = TempDb::new();
    let server = Server::start_at(&db.url(), &[]);
    // The first registration stores the generated JWT secret (in the WAL first).
    assert_eq!(server.register("admin@example.com", PASSWORD).status, 201);
    let path = db.path();
    assert_eq!(mode(&path), 0o600, "the database");
    for suffix in ["-wal", "-shm"] {
        let file = beside(&path, suffix);
        if file.exists() {
            assert_eq!(mode(&file), 0o600, "{suffix}");
        }
    }
    assert!(
        beside(&path, "-wal").exists(),
        "a live database in WAL mode has a -wal"
    );

    let backups = tempfile::tempdir().unwrap();
    let copy = backups.path().join("copy.db");
    let (code, _, stderr) = run(
        &["backup", copy.to_str().unwrap()],
        &[("GATEHOUSE_DATABASE_URL", &db.url())],
    );
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(mode(&copy), 0o600, "the backup");
    let left: Vec<_> = std::fs::read_dir(backups.path())
        .unwrap()
        .map(|entry| entry.unwrap().file_name())
        .collect();
    assert_eq!(left, ["copy.db"], "no partial file is left beside the copy");
    server.stop();
}

#[test]
fn an_existing_database_keeps_its_mode() {
    let db = TempDb::new();
    let url = db.url();
    let (code, _, stderr) = run(&["migrate"], &[("GATEHOUSE_DATABASE_URL", &url)]);
    assert_eq!(code, 0, "{stderr}");
    // An operator gave the service's group read access: Gatehouse neither widens nor
    // narrows it.
    std::fs::set_permissions(db.path(), std::fs::Permissions::from_mode(0o640)).unwrap();
    let server = Server::start_at(&url, &[]);
    assert_eq!(server.register("admin@example.com", PASSWORD).status, 201);
    server.stop();
    assert_eq!(mode(&db.path()), 0o640);
}

/// Sends `head` on a new connection, then `body` in `pieces` pieces `pause` apart, and
/// reads until the server closes the connection (or 15 s pass): what came back, and when
/// the last byte arrived relative to the end of the head.
fn exchange(
    server: &Server,
    head: &str,
    body: &[u8],
    pieces: usize,
    pause: Duration,
) -> (String, Duration) {
    let addr = server.base.trim_start_matches("http://");
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    stream.write_all(head.as_bytes()).unwrap();
    let sent_head = Instant::now();
    let writer = {
        let mut stream = stream.try_clone().unwrap();
        let body = body.to_vec();
        thread::spawn(move || {
            for chunk in body.chunks(body.len().div_ceil(pieces.max(1)).max(1)) {
                thread::sleep(pause);
                // The server may have answered and closed already.
                if stream.write_all(chunk).is_err() {
                    return;
                }
            }
        })
    };
    let mut received = Vec::new();
    let mut buffer = [0u8; 4096];
    let mut last = sent_head.elapsed();
    loop {
        match stream.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => {
                received.extend_from_slice(&buffer[..n]);
                last = sent_head.elapsed();
            }
            // A signal for the test process (another test's child exiting, say).
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            // The server closed with body bytes of ours unread: a reset, after its answer.
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset && !received.is_empty() => {
                break
            }
            Err(e) => panic!(
                "no end of the connection after {:?} ({e}); got {:?}",
                sent_head.elapsed(),
                String::from_utf8_lossy(&received)
            ),
        }
    }
    let _ = writer.join();
    (String::from_utf8_lossy(&received).into_owned(), last)
}

fn register_head(length: usize) -> String {
    format!(
        "POST /api/auth/register HTTP/1.1\r\nHost: gatehouse\r\nContent-Type: application/json\r\nContent-Length: {length}\r\nConnection: close\r\n\r\n"
    )
}

fn status_and_json(response: &str) -> (u16, Vec<String>, Value) {
    let (head, body) = response
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("not an HTTP response: {response:?}"));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|line| line.split(' ').nth(1))
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no status line: {response:?}"));
    let headers = lines.map(str::to_ascii_lowercase).collect();
    let json = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {response:?}"));
    (status, headers, json)
}

#[test]
fn a_body_that_does_not_arrive_in_time_gets_408_and_the_connection_is_closed() {
    let db = TempDb::new();
    let server = Server::start_at(&db.url(), &[("GATEHOUSE_BODY_TIMEOUT", "1s")]);

    // A Content-Length of 100, 10 bytes of it, then nothing.
    let head = register_head(100);
    let (response, at) = exchange(&server, &head, b"{\"email\":", 1, Duration::ZERO);
    let (status, headers, body) = status_and_json(&response);
    assert_eq!(status, 408, "{response}");
    assert_eq!(body["code"], "request_timeout", "{response}");
    assert!(
        headers.iter().any(|h| h == "connection: close"),
        "{response}"
    );
    assert!(
        headers.iter().any(|h| h.starts_with("x-request-id: ")),
        "{response}"
    );
    assert!(
        at >= Duration::from_millis(900) && at < Duration::from_secs(5),
        "answered after {at:?}"
    );

    // A body that trickles in for longer than the deadline is cut off too.
    let trickle = vec![b' '; 100];
    let (response, at) = exchange(&server, &head, &trickle, 25, Duration::from_millis(200));
    assert_eq!(status_and_json(&response).0, 408, "{response}");
    assert!(at < Duration::from_secs(4), "answered after {at:?}");

    // Chunked: one chunk, then nothing. The connection is closed, not drained.
    let chunked = "POST /api/auth/register HTTP/1.1\r\nHost: gatehouse\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n";
    let (response, at) = exchange(&server, chunked, b"5\r\n{\"ema\r\n", 1, Duration::ZERO);
    assert_eq!(status_and_json(&response).0, 408, "{response}");
    assert!(at < Duration::from_secs(5), "answered after {at:?}");
    // A handler that answers without reading the body (no token: 401) closes the
    // connection too, chunked or not, instead of waiting for the rest.
    for head in [
        chunked.replace("/register", "/logout"),
        register_head(100).replace("/register", "/logout"),
    ] {
        let (response, _) = exchange(&server, &head, b"5\r\n{\"ema\r\n", 1, Duration::ZERO);
        assert_eq!(status_and_json(&response).0, 401, "{response}");
    }

    // A slow body that is complete within the deadline is served.
    let body = serde_json::json!({"email": "slow@example.com", "password": PASSWORD}).to_string();
    let head = register_head(body.len());
    let (response, _) = exchange(
        &server,
        &head,
        body.as_bytes(),
        3,
        Duration::from_millis(150),
    );
    let (status, _, user) = status_and_json(&response);
    assert_eq!(status, 201, "{response}");
    assert_eq!(user["email"], "slow@example.com");

    // The server is fine afterwards.
    assert_eq!(server.get("/healthz", None).status, 200);
}

/// Connects, sends one keep-alive `GET /healthz` and returns the connection, with the
/// response read if it came within `wait`.
fn healthz(server: &Server, wait: Duration) -> (TcpStream, Option<String>) {
    let addr = server.base.trim_start_matches("http://");
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: gatehouse\r\n\r\n")
        .unwrap();
    let answer = read_response(&mut stream, wait);
    (stream, answer)
}

fn read_response(stream: &mut TcpStream, wait: Duration) -> Option<String> {
    stream.set_read_timeout(Some(wait)).unwrap();
    let mut buffer = [0u8; 4096];
    loop {
        match stream.read(&mut buffer) {
            Ok(n) if n > 0 => return Some(String::from_utf8_lossy(&buffer[..n]).into_owned()),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            _ => return None,
        }
    }
}

#[test]
fn connections_beyond_the_bound_wait_until_one_closes() {
    let db = TempDb::new();
    let server = Server::start_at(&db.url(), &[("GATEHOUSE_MAX_CONNECTIONS", "2")]);
    let (first, answer) = healthz(&server, Duration::from_secs(10));
    assert!(answer.unwrap().starts_with("HTTP/1.1 200"));
    let (_second, answer) = healthz(&server, Duration::from_secs(10));
    assert!(answer.unwrap().starts_with("HTTP/1.1 200"));
    // Both connections are open (kept alive): a third is not served...
    let (mut third, answer) = healthz(&server, Duration::from_millis(1500));
    assert_eq!(answer, None, "a third connection was served");
    // ... until one of them closes.
    drop(first);
    let answer = read_response(&mut third, Duration::from_secs(10));
    assert!(
        answer
            .as_deref()
            .is_some_and(|a| a.starts_with("HTTP/1.1 200")),
        "{answer:?}"
    );
}

#[test]
fn database_passwords_never_reach_the_output() {
    let url = "postgres://u:secret1@127.0.0.1:1/db?password=secret2&sslmode=disable";
    let (code, stdout, stderr) = run(&["check-config"], &[("GATEHOUSE_DATABASE_URL", url)]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("postgres://u:***@127.0.0.1:1/db?password=***&sslmode=disable"),
        "{stdout}"
    );
    // Nothing listens on port 1: start-up fails, naming the database but not the secrets.
    // A malformed percent-encoding makes libpq quote the password in its message.
    for url in [
        url,
        "postgres://u:secret1%zz@127.0.0.1:1/db?sslmode=disable",
        "postgres://u@127.0.0.1:1/db?password=secret2%&sslmode=disable",
    ] {
        for command in [&["migrate"][..], &["serve"], &["users", "list"]] {
            let (code, stdout, stderr) = run(
                command,
                &[
                    ("GATEHOUSE_DATABASE_URL", url),
                    ("GATEHOUSE_BIND", "127.0.0.1:0"),
                    ("GATEHOUSE_DATABASE_CONNECT_TIMEOUT", "1s"),
                    ("RUST_LOG", "debug"),
                ],
            );
            let output = format!("{stdout}{stderr}");
            assert_eq!(code, 1, "{command:?} {url}: {output}");
            assert!(output.contains("127.0.0.1"), "{command:?} {url}: {output}");
            assert!(
                !output.contains("secret1") && !output.contains("secret2"),
                "{command:?} {url}: {output}"
            );
        }
    }
}

/// Runs `gatehouse ARGS` in a pseudo-terminal (util-linux `script`), answering each prompt
/// that contains the matching needle; everything the terminal showed, and the exit code.
/// `None` when `script` is not installed.
fn on_a_terminal(url: &str, args: &str, answers: &[(&str, &str)]) -> Option<(i32, String)> {
    use std::process::{Command, Stdio};
    use std::sync::{Arc, Mutex};

    if Command::new("script").arg("--version").output().is_err() {
        return None;
    }
    let command = format!("{} {args}", env!("CARGO_BIN_EXE_gatehouse"));
    let mut child = Command::new("script")
        .args(["--quiet", "--return", "--command", &command, "/dev/null"])
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("SHELL", "/bin/sh")
        .env("TERM", "dumb")
        .env("GATEHOUSE_DATABASE_URL", url)
        .env("GATEHOUSE_BCRYPT_COST", "4")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let shown = Arc::new(Mutex::new(String::new()));
    let reader = {
        let shown = shown.clone();
        let mut stdout = child.stdout.take().unwrap();
        thread::spawn(move || {
            let mut buffer = [0u8; 1024];
            loop {
                match stdout.read(&mut buffer) {
                    Ok(0) => break,
                    Ok(n) => shown
                        .lock()
                        .unwrap()
                        .push_str(&String::from_utf8_lossy(&buffer[..n])),
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(_) => break,
                }
            }
        })
    };
    let mut stdin = child.stdin.take().unwrap();
    let mut seen = 0;
    for (prompt, answer) in answers {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let text = shown.lock().unwrap().clone();
            if let Some(at) = text[seen..].find(prompt) {
                seen += at + prompt.len();
                break;
            }
            assert!(Instant::now() < deadline, "no prompt {prompt:?}: {text}");
            thread::sleep(Duration::from_millis(20));
        }
        // The prompt is written just before echo is turned off: give it a moment.
        thread::sleep(Duration::from_millis(500));
        stdin.write_all(format!("{answer}\n").as_bytes()).unwrap();
    }
    let status = child.wait().unwrap();
    drop(stdin);
    reader.join().unwrap();
    let shown = shown.lock().unwrap().clone();
    Some((status.code().unwrap_or(-1), shown))
}

#[test]
fn users_create_on_a_terminal_asks_twice_without_echo() {
    let db = TempDb::new();
    let url = db.url();
    let Some((code, shown)) = on_a_terminal(
        &url,
        "users create carol@example.com",
        &[("(not shown): ", PASSWORD), ("again: ", PASSWORD)],
    ) else {
        eprintln!("skipped: script(1) is not installed");
        return;
    };
    assert_eq!(code, 0, "{shown}");
    assert!(
        shown.contains("created user 1 carol@example.com"),
        "{shown}"
    );
    assert!(
        !shown.contains(PASSWORD),
        "the password was echoed: {shown}"
    );

    // Two different answers change nothing.
    let (code, shown) = on_a_terminal(
        &url,
        "users set-password carol@example.com",
        &[
            ("(not shown): ", "s4xophone-teapot"),
            ("again: ", "s4xophone-teapo"),
        ],
    )
    .unwrap();
    assert_eq!(code, 1, "{shown}");
    assert!(shown.contains("the two passwords differ"), "{shown}");
    assert!(!shown.contains("s4xophone"), "{shown}");
    let server = Server::start_at(&url, &[]);
    assert_eq!(server.login("carol@example.com", PASSWORD).status, 200);
}

#[test]
fn without_a_terminal_or_password_stdin_the_commands_refuse_as_before() {
    let db = TempDb::new();
    for args in [
        &["users", "create", "carol@example.com"][..],
        &["users", "set-password", "carol@example.com"],
    ] {
        // `run` gives the command no terminal (standard input is not one).
        let (code, stdout, stderr) = run(args, &[("GATEHOUSE_DATABASE_URL", &db.url())]);
        assert_eq!(code, 2, "{args:?}: {stderr}");
        assert!(stderr.contains("--password-stdin"), "{stderr}");
        assert_eq!(stdout, "");
    }
    assert!(!db.path().exists(), "nothing was touched");
}

#[test]
fn a_metrics_token_closes_metrics_to_everyone_else() {
    const TOKEN: &str = "scrape-token-0a9f3c71e5";
    let db = TempDb::new();
    let server = Server::start_at(&db.url(), &[("GATEHOUSE_METRICS_TOKEN", TOKEN)]);
    let refused = server.get("/metrics", None);
    assert_eq!(refused.status, 401, "{refused:?}");
    assert_eq!(refused.header("www-authenticate"), Some("Bearer"));
    assert_eq!(refused.body["code"], "not_authenticated");
    assert_eq!(
        server.get("/metrics", Some("not-the-token-at-all")).status,
        401
    );
    let scraped = server.get("/metrics", Some(TOKEN));
    assert_eq!(scraped.status, 200, "{scraped:?}");
    assert!(scraped
        .body
        .as_str()
        .unwrap()
        .contains("gatehouse_http_requests_total"));
    assert!(!server.log().contains(TOKEN), "the token is never logged");

    let (code, stdout, _) = run(&["check-config"], &[("GATEHOUSE_METRICS_TOKEN", TOKEN)]);
    assert_eq!(code, 0);
    assert!(stdout.contains("metrics_token = \"(set)\""), "{stdout}");
    assert!(!stdout.contains(TOKEN), "{stdout}");
}
