//! The configuration file (`GATEHOUSE_CONFIG`), `gatehouse check-config`, and JSON logs,
//! through the real binary.

use std::path::PathBuf;

use serde_json::Value;

use crate::server::{exists, run, Server, TempDb};

const JWT_SECRET: &str = "file-secret-0123456789abcdef0123456789";
const DB_PASSWORD: &str = "db-password-in-file";

/// A `gatehouse.toml` in a temporary directory.
struct ConfigFile {
    dir: tempfile::TempDir,
}

impl ConfigFile {
    fn new(toml: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("gatehouse.toml"), toml).unwrap();
        Self { dir }
    }

    fn path(&self) -> PathBuf {
        self.dir.path().join("gatehouse.toml")
    }

    fn path_str(&self) -> String {
        self.path().to_str().unwrap().to_owned()
    }
}

/// The line of `described` for `key`, its spaces collapsed.
fn line_of(described: &str, key: &str) -> String {
    described
        .lines()
        .find(|line| line.starts_with(&format!("{key} = ")))
        .map(|line| line.split_whitespace().collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|| panic!("no {key} in:\n{described}"))
}

#[test]
fn check_config_prints_the_effective_configuration_with_secrets_masked() {
    let file = ConfigFile::new(&format!(
        r#"
        bind = "0.0.0.0:9999"
        database_url = "postgres://app:{DB_PASSWORD}@db.internal:5432/gatehouse"
        jwt_secret = "{JWT_SECRET}"
        bcrypt_cost = 10
        trusted_proxies = ["10.0.0.0/8", "127.0.0.1"]
        log_format = "json"
        "#
    ));
    let (code, stdout, stderr) = run(
        &["check-config"],
        &[
            ("GATEHOUSE_CONFIG", &file.path_str()),
            ("GATEHOUSE_BCRYPT_COST", "4"),
        ],
    );
    assert_eq!(code, 0, "{stderr}");
    let from_file = format!("# file {}", file.path().display());
    assert_eq!(
        stdout.lines().next(),
        Some(format!("# configuration file: {}", file.path().display()).as_str())
    );
    assert_eq!(
        line_of(&stdout, "bind"),
        format!("bind = \"0.0.0.0:9999\" {from_file}")
    );
    assert_eq!(
        line_of(&stdout, "database_url"),
        format!("database_url = \"postgres://app:***@db.internal:5432/gatehouse\" {from_file}")
    );
    assert_eq!(
        line_of(&stdout, "jwt_secret"),
        format!("jwt_secret = \"(set)\" {from_file}")
    );
    assert_eq!(
        line_of(&stdout, "bcrypt_cost"),
        "bcrypt_cost = \"4\" # environment (GATEHOUSE_BCRYPT_COST)"
    );
    assert_eq!(
        line_of(&stdout, "trusted_proxies"),
        format!("trusted_proxies = \"10.0.0.0/8, 127.0.0.1\" {from_file}")
    );
    assert_eq!(
        line_of(&stdout, "token_ttl"),
        "token_ttl = \"15m\" # default"
    );
    assert_eq!(
        line_of(&stdout, "log_format"),
        format!("log_format = \"json\" {from_file}")
    );
    for output in [&stdout, &stderr] {
        assert!(!output.contains(JWT_SECRET), "{output}");
        assert!(!output.contains(DB_PASSWORD), "{output}");
    }
}

#[test]
fn check_config_without_a_file_shows_the_defaults_and_needs_no_database() {
    let db = TempDb::new();
    let (code, stdout, stderr) = run(&["check-config"], &[("GATEHOUSE_DATABASE_URL", &db.url())]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.starts_with("# no configuration file"), "{stdout}");
    assert_eq!(
        line_of(&stdout, "jwt_secret"),
        "jwt_secret = \"(generated)\" # default"
    );
    assert_eq!(
        line_of(&stdout, "database_url"),
        format!(
            "database_url = \"{}\" # environment (GATEHOUSE_DATABASE_URL)",
            db.url()
        )
    );
    assert!(!exists(&db.path()), "check-config creates no database");
}

#[test]
fn check_config_reports_every_problem_at_once_with_exit_code_2() {
    let file = ConfigFile::new(&format!(
        "bcrypt_cost = 99\nbindd = \"0.0.0.0:80\"\njwt_secret = \"short-{DB_PASSWORD}\"\n"
    ));
    let path = file.path().display().to_string();
    let (code, stdout, stderr) = run(
        &["check-config"],
        &[
            ("GATEHOUSE_CONFIG", &file.path_str()),
            ("GATEHOUSE_TOKEN_TTL", "forever"),
            ("GATEHOUSE_LOG_FORMAT", "yaml"),
        ],
    );
    assert_eq!(code, 2, "{stderr}");
    assert_eq!(
        stdout, "",
        "nothing on stdout when the configuration is bad"
    );
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 5, "{stderr}");
    assert!(
        lines[0].contains(&format!("GATEHOUSE_JWT_SECRET (from {path}: jwt_secret)")),
        "{stderr}"
    );
    assert!(lines[1].contains("GATEHOUSE_TOKEN_TTL"), "{stderr}");
    assert!(
        lines[2].contains(&format!("GATEHOUSE_BCRYPT_COST (from {path}: bcrypt_cost)")),
        "{stderr}"
    );
    assert!(lines[3].contains("GATEHOUSE_LOG_FORMAT"), "{stderr}");
    assert!(
        lines[4].contains(&format!("{path}: unknown key \"bindd\"")),
        "{stderr}"
    );
    assert!(
        !stderr.contains(DB_PASSWORD),
        "the secret is never echoed: {stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn a_missing_or_broken_file_stops_every_command_naming_the_path() {
    let db = TempDb::new();
    let broken = ConfigFile::new("bind = \"127.0.0.1:0\"\ndatabase_url = sqlite://x.db\n");
    let missing = "/nonexistent/dir/gatehouse.toml".to_owned();
    for (config, expected) in [
        (
            missing.clone(),
            format!("invalid GATEHOUSE_CONFIG: cannot read {missing}: "),
        ),
        (
            broken.path_str(),
            format!(
                "invalid GATEHOUSE_CONFIG: {} is not valid TOML: line 2, column 16: ",
                broken.path().display()
            ),
        ),
    ] {
        for command in ["serve", "check-config", "migrate"] {
            let (code, _, stderr) = run(
                &[command],
                &[
                    ("GATEHOUSE_CONFIG", &config),
                    ("GATEHOUSE_DATABASE_URL", &db.url()),
                ],
            );
            assert_eq!(code, 2, "{command}: {stderr}");
            assert_eq!(stderr.lines().count(), 1, "{command}: {stderr}");
            assert!(
                stderr.starts_with(&format!("gatehouse: {expected}")),
                "{command}: {stderr}"
            );
        }
    }
    assert!(!exists(&db.path()), "nothing was created");
}

#[test]
fn a_server_starts_from_the_file_alone() {
    let db = TempDb::new();
    let file = ConfigFile::new(&format!(
        "bind = \"127.0.0.1:0\"\ndatabase_url = \"{}\"\nbcrypt_cost = 4\nrust_log = \"info\"\n",
        db.url()
    ));
    let server = Server::start_with_only(&[("GATEHOUSE_CONFIG", &file.path_str())]);
    assert_eq!(server.get("/healthz", None).status, 200);
    assert!(
        exists(&db.path()),
        "the database named in the file was created"
    );
    assert!(file.path().is_file());
}

/// A field of a JSON log line: the event's own, else its request span's.
fn field<'a>(line: &'a Value, name: &str) -> Option<&'a Value> {
    line.get(name)
        .or_else(|| line.get("span").and_then(|span| span.get(name)))
}

#[test]
fn json_logs_are_one_object_per_line_with_the_request_fields() {
    let db = TempDb::new();
    let file = ConfigFile::new("log_format = \"json\"\nbcrypt_cost = 4\n");
    let server = Server::start_with_only(&[
        ("GATEHOUSE_CONFIG", &file.path_str()),
        ("GATEHOUSE_BIND", "127.0.0.1:0"),
        ("GATEHOUSE_DATABASE_URL", &db.url()),
        ("RUST_LOG", "info"),
    ]);
    let request_id = "json-log-test-0001";
    let reply = server.request("GET", "/healthz", &[("X-Request-Id", request_id)], None);
    assert_eq!(reply.status, 200);
    let log = server.log_once_it_has(request_id);
    let lines: Vec<&str> = log.lines().collect();
    assert!(lines.len() >= 2, "{lines:?}");
    let parsed: Vec<Value> = lines
        .iter()
        .map(|line| {
            serde_json::from_str::<Value>(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"))
        })
        .collect();
    for line in &parsed {
        for key in ["timestamp", "level", "target", "message"] {
            assert!(line.get(key).is_some(), "no {key} in {line}");
        }
    }
    assert!(
        parsed.iter().any(|line| line["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("listening on http://"))),
        "{lines:?}"
    );
    let request = parsed
        .iter()
        .find(|line| {
            line["message"] == "request"
                && field(line, "request_id") == Some(&Value::from(request_id))
        })
        .unwrap_or_else(|| panic!("no request line with its id: {lines:?}"));
    assert_eq!(
        field(request, "method"),
        Some(&Value::from("GET")),
        "{request}"
    );
    assert_eq!(
        field(request, "path"),
        Some(&Value::from("/healthz")),
        "{request}"
    );
    assert_eq!(
        field(request, "status"),
        Some(&Value::from(200)),
        "{request}"
    );
    assert!(
        field(request, "elapsed_ms").is_some_and(Value::is_number),
        "{request}"
    );
    assert_eq!(request["level"], "INFO");
}
