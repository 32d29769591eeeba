//! `GATEHOUSE_AUDIT_RETENTION` through the real binary, on both backends: the maintenance
//! thread prunes entries older than the retention (with a short retention, it prunes
//! often enough to keep it).

use crate::server::Server;
use gatehouse_storage::testing::{EmptyDatabase, TestBackend};

const PASSWORD: &str = "correct horse battery";

fn actions(server: &Server, token: &str) -> Vec<String> {
    let reply = server.get("/api/auth/audit", Some(token));
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply
        .body
        .as_array()
        .expect("a list")
        .iter()
        .map(|e| e["action"].as_str().expect("an action").to_owned())
        .collect()
}

fn audit_entries_older_than_the_retention_are_pruned(backend: TestBackend) {
    let db = EmptyDatabase::new(backend);
    let server = Server::start(&db, &[("GATEHOUSE_AUDIT_RETENTION", "3s")]);
    assert_eq!(server.register("admin@example.com", PASSWORD).status, 201);
    let token = server.token("admin@example.com", PASSWORD);
    let before = actions(&server, &token);
    assert!(
        before.contains(&"user_registered".to_owned()),
        "{backend:?}: {before:?}"
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        std::thread::sleep(std::time::Duration::from_millis(500));
        let now = actions(&server, &token);
        if !now.contains(&"user_registered".to_owned()) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{backend:?}: still there after 20 s: {now:?}"
        );
    }
}

#[test]
fn a_retention_of_zero_keeps_everything_and_a_bad_one_stops_start_up() {
    let (code, _, stderr) = crate::server::run(
        &["check-config"],
        &[("GATEHOUSE_AUDIT_RETENTION", "forever")],
    );
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("GATEHOUSE_AUDIT_RETENTION"), "{stderr}");
    let (code, stdout, stderr) =
        crate::server::run(&["check-config"], &[("GATEHOUSE_AUDIT_RETENTION", "0")]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("audit_retention"), "{stdout}");
}

gatehouse_storage::backend_tests!(audit_entries_older_than_the_retention_are_pruned,);
