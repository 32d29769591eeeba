//! Operational hardening: private database files and backups, slow request bodies and the
//! connection bound, and no database password in any output.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

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
