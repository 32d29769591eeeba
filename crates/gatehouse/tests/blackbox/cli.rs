//! The command line: bad settings, bad usage, and `migrate`.

use crate::server::{binary, exists, TempDb};

fn run(args: &[&str], env: &[(&str, &str)]) -> (i32, String) {
    let output = binary()
        .args(args)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn a_bad_setting_stops_start_up_with_one_line_and_exit_code_2() {
    let db = TempDb::new();
    let url = db.url();
    let cases: [(&str, &str); 6] = [
        ("GATEHOUSE_BCRYPT_COST", "99"),
        ("GATEHOUSE_BCRYPT_COST", "twelve"),
        ("GATEHOUSE_TOKEN_TTL", "forever"),
        ("GATEHOUSE_DATABASE_URL", "mysql://localhost/x"),
        ("GATEHOUSE_BIND", "not an address"),
        ("GATEHOUSE_JWT_SECRET", "too-short-secret"),
    ];
    for (variable, value) in cases {
        let (code, stderr) = run(
            &["serve"],
            &[("GATEHOUSE_DATABASE_URL", &url), (variable, value)],
        );
        assert_eq!(code, 2, "{variable}={value}: {stderr}");
        let lines: Vec<&str> = stderr.lines().collect();
        assert_eq!(lines.len(), 1, "{variable}={value}: {stderr}");
        assert!(lines[0].contains(variable), "{stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
        if variable == "GATEHOUSE_JWT_SECRET" {
            assert!(
                !stderr.contains(value),
                "the secret must not be echoed: {stderr}"
            );
        }
    }
    assert!(!exists(&db.path()), "nothing was created");
}

#[test]
fn bad_usage_exits_2() {
    assert_eq!(run(&["frobnicate"], &[]).0, 2);
    assert_eq!(run(&[], &[]).0, 2);
    assert_eq!(run(&["--help"], &[]).0, 0);
}

#[test]
fn migrate_creates_the_database_and_exits() {
    let db = TempDb::new();
    let (code, stderr) = run(&["migrate"], &[("GATEHOUSE_DATABASE_URL", &db.url())]);
    assert_eq!(code, 0, "{stderr}");
    assert!(exists(&db.path()));
    let (code, _) = run(&["migrate"], &[("GATEHOUSE_DATABASE_URL", &db.url())]);
    assert_eq!(code, 0, "migrating twice is fine");
}

#[test]
fn an_unopenable_database_fails_with_a_clear_message() {
    let (code, stderr) = run(
        &["serve"],
        &[
            (
                "GATEHOUSE_DATABASE_URL",
                "sqlite:///nonexistent-dir/sub/g.db",
            ),
            ("GATEHOUSE_BIND", "127.0.0.1:0"),
        ],
    );
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("nonexistent-dir"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}
