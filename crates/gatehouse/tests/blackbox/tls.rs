//! TLS to PostgreSQL with the real binary: against a server that accepts TLS connections
//! only, `sslmode=verify-full` with the server's CA serves, and the wrong CA stops start-up
//! with one clear line (no panic, no password).

use std::io::Read;
use std::process::Stdio;
use std::time::{Duration, Instant};

use gatehouse_storage::testing::needs_postgres;
use gatehouse_storage::testing::tls::TlsPostgres;

use crate::server::{binary, Server};

const PASSWORD: &str = "tr0mbone-kettle";

#[needs_postgres]
#[test]
fn serve_over_verify_full_and_refuse_a_server_certificate_from_the_wrong_ca() {
    let Some(cluster) = TlsPostgres::start() else {
        return;
    };
    the_wrong_ca_stops_start_up_with_one_line(&cluster);

    let url = cluster.url("verify-full", Some(cluster.ca()));
    let server = Server::start_at(&url, &[]);
    let reply = server.register("tls-admin@example.com", PASSWORD);
    assert_eq!(reply.status, 201, "{reply:?}\n{}", server.log());
    assert!(server.token("tls-admin@example.com", PASSWORD).len() > 20);
    assert!(!server.log().contains(cluster.password()));
    drop(server);

    system_roots_are_the_ones_ssl_cert_file_names(&cluster);
}

/// `sslrootcert=system` is OpenSSL's default store, which `SSL_CERT_FILE` replaces (as
/// docs/operations.md tells operators to do, the compiled-in store being `/usr/local/ssl`).
fn system_roots_are_the_ones_ssl_cert_file_names(cluster: &TlsPostgres) {
    let url = cluster.url("verify-full", None) + "&sslrootcert=system";
    let ca = cluster.ca().display().to_string();
    let (code, _, stderr) = crate::server::run(
        &["migrate"],
        &[("GATEHOUSE_DATABASE_URL", &url), ("SSL_CERT_FILE", &ca)],
    );
    assert_eq!(code, 0, "{stderr}");
}

fn the_wrong_ca_stops_start_up_with_one_line(cluster: &TlsPostgres) {
    let url = cluster.url("verify-full", Some(cluster.wrong_ca()));
    let mut child = binary()
        .arg("serve")
        .env("GATEHOUSE_DATABASE_URL", &url)
        .env("GATEHOUSE_BIND", "127.0.0.1:0")
        // A panic would print its backtrace: there must be none to print.
        .env("RUST_BACKTRACE", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("gatehouse serve kept running with a server certificate from the wrong CA");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let (mut stdout, mut stderr) = (String::new(), String::new());
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();

    assert_eq!(status.code(), Some(1), "{status:?}: {stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one line: {stderr}");
    let line = lines[0];
    assert!(line.starts_with("gatehouse: opening postgres://"), "{line}");
    assert!(
        line.contains(&format!("127.0.0.1:{}/postgres", cluster.port())),
        "names the database: {line}"
    );
    assert!(line.contains("certificate verify failed"), "{line}");
    assert!(!stderr.contains(cluster.password()), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(!stderr.contains("backtrace"), "{stderr}");
    assert_eq!(stdout, "");
}
