//! A database outage: while PostgreSQL is unreachable, requests get a quick 503 JSON error
//! and `/readyz` says 503; once it is back, the same process serves again. The outage is
//! staged by a TCP proxy between Gatehouse and PostgreSQL that this test controls.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use gatehouse_storage::testing::{needs_postgres, EmptyDatabase, TestBackend};

use crate::server::Server;

/// Forwards connections to `upstream` until told to cut them.
struct Proxy {
    port: u16,
    down: Arc<AtomicBool>,
    open: Arc<Mutex<Vec<TcpStream>>>,
}

impl Proxy {
    fn start(upstream: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let down = Arc::new(AtomicBool::new(false));
        let open = Arc::new(Mutex::new(Vec::new()));
        {
            let (down, open) = (down.clone(), open.clone());
            thread::spawn(move || {
                for client in listener.incoming() {
                    let Ok(client) = client else { continue };
                    if down.load(Ordering::SeqCst) {
                        // The database is "away": hang up at once.
                        let _ = client.shutdown(Shutdown::Both);
                        continue;
                    }
                    let Ok(server) = TcpStream::connect(&upstream) else {
                        continue;
                    };
                    let mut sockets = open.lock().unwrap();
                    sockets.push(client.try_clone().unwrap());
                    sockets.push(server.try_clone().unwrap());
                    pipe(client.try_clone().unwrap(), server.try_clone().unwrap());
                    pipe(server, client);
                }
            });
        }
        Self { port, down, open }
    }

    /// Stage an outage: every open connection is cut and new ones are refused.
    fn cut(&self) {
        self.down.store(true, Ordering::SeqCst);
        for socket in self.open.lock().unwrap().drain(..) {
            let _ = socket.shutdown(Shutdown::Both);
        }
    }

    fn restore(&self) {
        self.down.store(false, Ordering::SeqCst);
    }
}

fn pipe(mut from: TcpStream, mut to: TcpStream) {
    thread::spawn(move || {
        let mut buf = [0u8; 16 * 1024];
        loop {
            match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if to.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            }
        }
        let _ = to.shutdown(Shutdown::Both);
    });
}

/// `postgres://user@host:port/db?x` → (`host:port`, a function putting another address in).
fn split_authority(url: &str) -> (String, String, String) {
    let (scheme, rest) = url.split_once("://").unwrap();
    let (userinfo, rest) = match rest.split_once('@') {
        Some((userinfo, rest)) => (format!("{userinfo}@"), rest),
        None => (String::new(), rest),
    };
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (host, tail) = rest.split_at(end);
    let host = if host.contains(':') {
        host.to_owned()
    } else {
        format!("{host}:5432")
    };
    (format!("{scheme}://{userinfo}"), host, tail.to_owned())
}

#[needs_postgres]
#[test]
fn requests_get_503_while_the_database_is_away_and_succeed_after() {
    let db = EmptyDatabase::new(TestBackend::Postgres);
    let (prefix, upstream, tail) = split_authority(&db.url_string());
    let proxy = Proxy::start(upstream);
    let through_proxy = format!("{prefix}127.0.0.1:{}{tail}", proxy.port);
    let server = Server::start_at(
        &through_proxy,
        &[("GATEHOUSE_DATABASE_CONNECT_TIMEOUT", "2s")],
    );

    assert_eq!(
        server
            .register("admin@example.com", "tr0mbone-kettle")
            .status,
        201
    );
    let token = server.token("admin@example.com", "tr0mbone-kettle");
    assert_eq!(server.get("/api/auth/me", Some(&token)).status, 200);

    proxy.cut();
    for _ in 0..3 {
        let started = Instant::now();
        let me = server.get("/api/auth/me", Some(&token));
        assert_eq!(me.status, 503, "{me:?}");
        assert_eq!(me.body["code"], "database_unavailable");
        assert!(me.header("retry-after").is_some());
        // Not a timing assertion on performance: a guard against hanging requests.
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "hung for {:?}",
            started.elapsed()
        );
        let ready = server.get("/readyz", None);
        assert_eq!(ready.status, 503, "{ready:?}");
        assert_eq!(server.get("/healthz", None).status, 200);
        let register = server.register("someone@example.com", "tr0mbone-kettle");
        assert_eq!(register.status, 503, "{register:?}");
    }

    proxy.restore();
    let deadline = Instant::now() + Duration::from_secs(30);
    while server.get("/readyz", None).status != 200 {
        assert!(
            Instant::now() < deadline,
            "did not recover:\n{}",
            server.log()
        );
        thread::sleep(Duration::from_millis(200));
    }
    let me = server.get("/api/auth/me", Some(&token));
    assert_eq!(me.status, 200, "{me:?}");
    assert_eq!(
        server
            .register("after@example.com", "tr0mbone-kettle")
            .status,
        201
    );
    assert!(!server.log().contains("panicked"));
}
