//! The command line: bad settings, bad usage, `migrate`, the administration commands
//! (`users …`, `backup`) against the database a running server uses.

use std::io::Write;
use std::process::Stdio;

use gatehouse_storage::testing::{needs_postgres, EmptyDatabase, TestBackend};
use serde_json::{json, Value};

use crate::server::{binary, exists, Server, TempDb};

/// Exit code and stderr of a run of the binary.
fn run(args: &[&str], env: &[(&str, &str)]) -> (i32, String) {
    let (code, _stdout, stderr) = crate::server::run(args, env);
    (code, stderr)
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

const PASSWORD: &str = "tr0mbone-kettle";
const ADMIN: &str = "admin@example.com";

/// What a finished command left behind.
#[derive(Debug)]
pub(crate) struct Outcome {
    pub(crate) code: i32,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

impl Outcome {
    /// Asserts success and parses standard output as JSON (nothing else may be on it).
    pub(crate) fn json(&self) -> Value {
        assert_eq!(self.code, 0, "{self:?}");
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {self:?}"))
    }

    /// Asserts a refusal: exit 1, `gatehouse: <message>` on stderr, nothing on stdout.
    pub(crate) fn refused(&self, message: &str) {
        assert_eq!(self.code, 1, "{self:?}");
        assert_eq!(
            self.stderr.trim_end(),
            format!("gatehouse: {message}"),
            "{self:?}"
        );
        assert_eq!(self.stdout, "", "{self:?}");
    }
}

/// `gatehouse ARGS` on the database at `url` (bcrypt at cost 4, info logs), with `stdin`.
pub(crate) fn gatehouse_with(
    url: &str,
    args: &[&str],
    env: &[(&str, &str)],
    stdin: &str,
) -> Outcome {
    let mut child = binary()
        .args(args)
        .env("GATEHOUSE_DATABASE_URL", url)
        .env("GATEHOUSE_BCRYPT_COST", "4")
        .env("RUST_LOG", "info")
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The command may exit before reading (a usage error): a broken pipe is fine.
    let _ = child.stdin.take().unwrap().write_all(stdin.as_bytes());
    let output = child.wait_with_output().unwrap();
    Outcome {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

pub(crate) fn gatehouse(db: &EmptyDatabase, args: &[&str]) -> Outcome {
    gatehouse_with(&db.url_string(), args, &[], "")
}

/// `users create EMAIL --password-stdin --json …`, which must succeed.
fn create(db: &EmptyDatabase, email: &str, flags: &[&str]) -> Value {
    let mut args = vec!["users", "create", email, "--password-stdin", "--json"];
    args.extend_from_slice(flags);
    gatehouse_with(&db.url_string(), &args, &[], &format!("{PASSWORD}\n")).json()
}

/// Every user, as the CLI lists them.
fn list(db: &EmptyDatabase) -> Value {
    gatehouse(db, &["users", "list", "--json"]).json()
}

fn find<'a>(users: &'a Value, email: &str) -> &'a Value {
    users
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["email"] == email)
        .unwrap_or_else(|| panic!("{email} not in {users}"))
}

fn users_commands_act_through_the_rules_and_the_api_sees_them(backend: TestBackend) {
    let db = EmptyDatabase::new(backend);
    let server = Server::start(&db, &[]);

    // Into an empty database, asking for a pending non-admin still makes the first admin.
    let created = gatehouse_with(
        &db.url_string(),
        &[
            "users",
            "create",
            ADMIN,
            "--password-stdin",
            "--pending",
            "--json",
        ],
        &[],
        &format!("{PASSWORD}\n"),
    );
    let admin = created.json();
    assert_eq!(
        (admin["is_admin"].clone(), admin["status"].clone()),
        (json!(true), json!("approved"))
    );
    assert!(created.stderr.contains("first user"), "{created:?}");
    let token = server.token(ADMIN, PASSWORD);
    // The very shape of the API's UserPublic: the same fields, in the same order.
    let me = server.get("/api/auth/me", Some(&token));
    assert_eq!(me.body, admin);
    let fields = [
        "id",
        "email",
        "is_admin",
        "status",
        "created_at",
        "approved_at",
        "approved_by",
        "reason",
        "email_verified",
        "mfa_enabled",
        "rejected_at",
        "rejected_by",
        "decision_note",
    ];
    assert_eq!(admin.as_object().unwrap().len(), fields.len());
    let at: Vec<usize> = fields
        .iter()
        .map(|f| created.stdout.find(&format!("\"{f}\":")).unwrap())
        .collect();
    assert!(at.windows(2).all(|w| w[0] < w[1]), "{created:?}");

    // Approve a self-registered user, by email.
    let bob = server.register("bob@example.com", PASSWORD).body;
    assert_eq!(server.login("bob@example.com", PASSWORD).status, 403);
    let pending = gatehouse(&db, &["users", "list", "--status", "pending", "--json"]).json();
    assert_eq!(pending, json!([bob]));
    let approved = gatehouse(&db, &["users", "approve", "bob@example.com"]);
    assert_eq!(approved.code, 0, "{approved:?}");
    assert!(
        approved.stdout.starts_with("approved user "),
        "{approved:?}"
    );
    assert_eq!(approved.stdout.lines().count(), 1, "{approved:?}");
    assert_eq!(server.login("bob@example.com", PASSWORD).status, 200);
    // Approved by the operator: no admin's id, but a time.
    let bob_now = find(&list(&db), "bob@example.com").clone();
    assert_eq!(bob_now["status"], "approved");
    assert_eq!(bob_now["approved_by"], Value::Null);
    assert!(bob_now["approved_at"].is_string());
    // Approving again, or enabling an approved user, changes nothing and is fine.
    let again = gatehouse(&db, &["users", "approve", "bob@example.com", "--json"]).json();
    assert_eq!(again, bob_now);
    let again = gatehouse(&db, &["users", "enable", "bob@example.com"]);
    assert!(again.stdout.starts_with("nothing to change"), "{again:?}");

    // Promote and demote by id; the API sees each change.
    let bob_id = bob["id"].to_string();
    let promoted = gatehouse(&db, &["users", "promote", &bob_id, "--json"]).json();
    assert_eq!(promoted["is_admin"], true);
    let bob_token = server.token("bob@example.com", PASSWORD);
    assert_eq!(server.get("/api/auth/users", Some(&bob_token)).status, 200);
    let demoted = gatehouse(&db, &["users", "demote", &bob_id]);
    assert!(demoted.stdout.starts_with("demoted user "), "{demoted:?}");
    assert_eq!(server.get("/api/auth/users", Some(&bob_token)).status, 403);

    // Disable shuts the user out at once; enable lets them back in.
    let disabled = gatehouse(&db, &["users", "disable", "bob@example.com", "--json"]).json();
    assert_eq!(disabled["status"], "disabled");
    assert_eq!(server.get("/api/auth/me", Some(&bob_token)).status, 401);
    assert_eq!(
        server.login("bob@example.com", PASSWORD).body["detail"],
        "Account disabled"
    );
    gatehouse(&db, &["users", "enable", &bob_id, "--json"]).json();
    assert_eq!(server.login("bob@example.com", PASSWORD).status, 200);

    // Created users: approved by default (logging in at once), or pending, or admins.
    let carol = create(&db, "Carol@Example.com", &[]);
    assert_eq!(
        (
            carol["email"].clone(),
            carol["is_admin"].clone(),
            carol["status"].clone()
        ),
        (json!("carol@example.com"), json!(false), json!("approved"))
    );
    assert_eq!(server.login("carol@example.com", PASSWORD).status, 200);
    let dave = create(&db, "dave@example.com", &["--pending", "--admin"]);
    assert_eq!(
        (dave["is_admin"].clone(), dave["status"].clone()),
        (json!(true), json!("pending"))
    );
    assert_eq!(server.login("dave@example.com", PASSWORD).status, 403);
    let erin = gatehouse_with(
        &db.url_string(),
        &[
            "users",
            "create",
            "erin@example.com",
            "--password-stdin",
            "--admin",
        ],
        &[],
        &format!("{PASSWORD}\n"),
    );
    assert_eq!(erin.code, 0, "{erin:?}");
    assert!(erin.stdout.starts_with("created user "), "{erin:?}");
    assert!(
        erin.stdout.contains("erin@example.com (approved, admin)"),
        "{erin:?}"
    );

    // The CLI's list is the API's list, newest first; the table shows every user.
    let listed = list(&db);
    assert_eq!(listed, server.get("/api/auth/users", Some(&token)).body);
    let table = gatehouse(&db, &["users", "list"]);
    assert_eq!(table.code, 0, "{table:?}");
    let lines: Vec<&str> = table.stdout.lines().collect();
    assert_eq!(lines.len(), 6, "{table:?}");
    assert!(lines[0].starts_with("ID  EMAIL"), "{table:?}");
    assert!(
        lines[1].contains("erin@example.com") && lines[5].contains(ADMIN),
        "{table:?}"
    );
    let column = lines[0].find("STATUS").unwrap();
    assert!(
        lines[1..]
            .iter()
            .all(|l| l[column..].starts_with("approved") || l[column..].starts_with("pending")),
        "aligned: {table:?}"
    );

    // Delete prints the user as they were; the API no longer knows them.
    let deleted = gatehouse(&db, &["users", "delete", "carol@example.com", "--json"]).json();
    assert_eq!(&deleted, find(&listed, "carol@example.com"));
    let users = server.get("/api/auth/users", Some(&token)).body;
    assert!(users
        .as_array()
        .unwrap()
        .iter()
        .all(|u| u["email"] != "carol@example.com"));
    gatehouse(&db, &["users", "delete", "carol@example.com"]).refused("User not found");

    // Debug logs never reach standard output: it stays JSON.
    let noisy = gatehouse_with(
        &db.url_string(),
        &["users", "list", "--json"],
        &[("RUST_LOG", "debug")],
        "",
    );
    assert_eq!(noisy.json(), list(&db));

    // The audit log names the command line, with no acting user.
    let audit = server.get("/api/auth/audit?limit=100", Some(&token));
    assert_eq!(audit.status, 200, "{audit:?}");
    let by_cli: Vec<(String, String)> = audit
        .body
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["detail"].as_str().is_some_and(|d| d.starts_with("cli")))
        .map(|e| {
            assert_eq!(e["actor_id"], Value::Null, "{e}");
            (
                e["action"].as_str().unwrap().to_owned(),
                e["detail"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    for expected in [
        ("user_created", "cli: approved, admin"),
        ("user_approved", "cli: pending -> approved"),
        ("user_promoted", "cli"),
        ("user_demoted", "cli"),
        ("user_disabled", "cli: approved -> disabled"),
        ("user_enabled", "cli: disabled -> approved"),
        ("user_created", "cli: pending, admin"),
        ("user_deleted", "cli: carol@example.com"),
    ] {
        assert!(
            by_cli
                .iter()
                .any(|(a, d)| (a.as_str(), d.as_str()) == expected),
            "{expected:?} not in {by_cli:?}"
        );
    }
}

fn the_cli_cannot_remove_the_last_admin_either_and_refusals_exit_1(backend: TestBackend) {
    let db = EmptyDatabase::new(backend);
    create(&db, ADMIN, &[]);
    create(&db, "bob@example.com", &[]);
    let before = list(&db);
    gatehouse(&db, &["users", "demote", ADMIN]).refused("Cannot remove last admin");
    gatehouse(&db, &["users", "disable", ADMIN, "--json"])
        .refused("Cannot disable last active admin");
    gatehouse(&db, &["users", "delete", "1"]).refused("Cannot delete last admin");
    // Other refusals: unknown users, a taken email, a weak or missing password.
    gatehouse(&db, &["users", "promote", "nobody@example.com"]).refused("User not found");
    gatehouse(&db, &["users", "approve", "999"]).refused("User not found");
    let url = db.url_string();
    let taken = gatehouse_with(
        &url,
        &["users", "create", "BOB@example.com", "--password-stdin"],
        &[],
        &format!("{PASSWORD}\n"),
    );
    taken.refused("Email already registered");
    for (stdin, message) in [
        ("password123\n", "too common"),
        ("short\n", "at least 8 bytes"),
        ("", "no password on standard input"),
    ] {
        for args in [
            &["users", "create", "carol@example.com", "--password-stdin"][..],
            &["users", "set-password", ADMIN, "--password-stdin"][..],
        ] {
            let outcome = gatehouse_with(&url, args, &[], stdin);
            assert_eq!(outcome.code, 1, "{outcome:?}");
            assert!(outcome.stderr.starts_with("gatehouse: "), "{outcome:?}");
            assert!(outcome.stderr.contains(message), "{outcome:?}");
            assert_eq!(outcome.stdout, "");
        }
    }
    // Nothing changed, not even the admin's password.
    assert_eq!(list(&db), before);
    let server = Server::start(&db, &[]);
    assert_eq!(server.login(ADMIN, PASSWORD).status, 200);
    // With another active admin, the same commands go through.
    gatehouse(&db, &["users", "promote", "bob@example.com", "--json"]).json();
    let demoted = gatehouse(&db, &["users", "demote", ADMIN, "--json"]).json();
    assert_eq!(demoted["is_admin"], false);
}

fn a_forgotten_password_and_a_lost_admin_are_recovered_from_the_cli(backend: TestBackend) {
    let db = EmptyDatabase::new(backend);
    let server = Server::start(&db, &[]);
    let forgotten = "long forgotten phrase";
    assert_eq!(server.register(ADMIN, forgotten).status, 201);
    let old_token = server.token(ADMIN, forgotten);

    // A forgotten admin password: set a new one (CRLF line ending and all).
    let url = db.url_string();
    let set = gatehouse_with(
        &url,
        &["users", "set-password", ADMIN, "--password-stdin"],
        &[],
        &format!("{PASSWORD}\r\n"),
    );
    assert_eq!(set.code, 0, "{set:?}");
    assert!(
        set.stdout
            .starts_with("password set for user 1 admin@example.com"),
        "{set:?}"
    );
    assert!(
        !set.stdout.contains(PASSWORD) && !set.stderr.contains(PASSWORD),
        "{set:?}"
    );
    assert!(
        !set.stdout.contains("$2") && !set.stderr.contains("$2"),
        "no hash: {set:?}"
    );
    assert_eq!(server.login(ADMIN, forgotten).status, 401);
    assert_eq!(
        server.get("/api/auth/me", Some(&old_token)).status,
        401,
        "tokens are revoked"
    );
    let token = server.token(ADMIN, PASSWORD);
    let audit = server
        .get("/api/auth/audit?action=password_reset", Some(&token))
        .body;
    assert_eq!(audit[0]["detail"], "cli", "{audit}");
    assert_eq!(audit[0]["actor_id"], Value::Null, "{audit}");

    // A lost admin: another admin demotes them over the API, the CLI promotes them back
    // (by id, with --json), and their token grants admin rights again at once.
    let bob = create(&db, "bob@example.com", &["--admin"]);
    let bob_token = server.token("bob@example.com", PASSWORD);
    let demote = server.send_json(
        "PUT",
        "/api/auth/users/1",
        Some(&bob_token),
        &json!({"is_admin": false}),
    );
    assert_eq!(demote.status, 200, "{demote:?}");
    assert_eq!(server.get("/api/auth/users", Some(&token)).status, 403);
    let restored = gatehouse(&db, &["users", "promote", "1", "--json"]).json();
    assert_eq!(
        (restored["id"].clone(), restored["is_admin"].clone()),
        (json!(1), json!(true))
    );
    assert_eq!(server.get("/api/auth/users", Some(&token)).status, 200);

    // Disabled over the API instead: `users enable` lets them back in.
    let disable = server.send_json(
        "PUT",
        "/api/auth/users/1",
        Some(&bob_token),
        &json!({"status": "disabled"}),
    );
    assert_eq!(disable.status, 200, "{disable:?}");
    assert_eq!(server.login(ADMIN, PASSWORD).status, 403);
    gatehouse(&db, &["users", "enable", ADMIN, "--json"]).json();
    let token = server.token(ADMIN, PASSWORD);
    // And the recovered admin can now remove the other one.
    let bob_id = bob["id"].as_i64().unwrap();
    let removed = server.send_json(
        "DELETE",
        &format!("/api/auth/users/{bob_id}"),
        Some(&token),
        &Value::Null,
    );
    assert_eq!(removed.status, 204, "{removed:?}");
}

#[test]
fn bad_usage_of_the_admin_commands_exits_2_and_touches_nothing() {
    let db = TempDb::new();
    let url = db.url();
    for args in [
        &["users"][..],
        &["users", "frobnicate"],
        &["users", "create", "carol@example.com"],
        &["users", "create", "--password-stdin"],
        &["users", "create", "not an email", "--password-stdin"],
        &[
            "users",
            "create",
            "carol@example.com",
            "--password-stdin",
            "--password",
            "x",
        ],
        &["users", "set-password", "1"],
        &[
            "users",
            "set-password",
            "carol@example.com",
            "tr0mbone-kettle",
        ],
        &["users", "list", "--status", "nope"],
        &["users", "list", "--status"],
        &["users", "approve"],
        &["users", "approve", "not-an-email"],
        &["users", "delete", "0"],
        &["users", "disable", "1", "2"],
        &["backup"],
    ] {
        let outcome = gatehouse_with(&url, args, &[], &format!("{PASSWORD}\n"));
        assert_eq!(outcome.code, 2, "{args:?}: {outcome:?}");
        assert_eq!(outcome.stdout, "", "{args:?}");
        assert!(
            !outcome.stderr.contains("panicked"),
            "{args:?}: {outcome:?}"
        );
    }
    assert!(!exists(&db.path()), "nothing was created");
    let help = gatehouse_with(&url, &["users", "--help"], &[], "");
    assert_eq!(help.code, 0);
    for command in [
        "list",
        "create",
        "set-password",
        "approve",
        "disable",
        "enable",
        "promote",
        "demote",
        "delete",
    ] {
        assert!(help.stdout.contains(command), "{command}: {help:?}");
    }
}

#[test]
fn an_unreachable_database_fails_the_admin_commands_with_exit_1() {
    for (url, needle) in [
        ("sqlite:///nonexistent-dir/sub/g.db", "nonexistent-dir"),
        (
            "postgres://gatehouse:hunter2secret@127.0.0.1:1/gatehouse",
            "127.0.0.1",
        ),
    ] {
        let outcome = gatehouse_with(url, &["users", "list", "--json"], &[], "");
        assert_eq!(outcome.code, 1, "{outcome:?}");
        assert!(outcome.stderr.starts_with("gatehouse: "), "{outcome:?}");
        assert!(outcome.stderr.contains(needle), "{outcome:?}");
        assert!(!outcome.stderr.contains("hunter2secret"), "{outcome:?}");
        assert_eq!(outcome.stdout, "");
    }
}

#[test]
fn backup_copies_a_live_sqlite_database_and_the_copy_serves() {
    let db = EmptyDatabase::new(TestBackend::Sqlite);
    let server = Server::start(&db, &[]);
    assert_eq!(server.register(ADMIN, PASSWORD).status, 201);
    for i in 0..3 {
        assert_eq!(
            server
                .register(&format!("u{i}@example.com"), PASSWORD)
                .status,
            201
        );
    }
    let token = server.token(ADMIN, PASSWORD);
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("copy.db");
    let copy_arg = copy.to_str().unwrap();

    // Registrations keep coming while the copy is taken.
    let writer = {
        let base = server.base.clone();
        std::thread::spawn(move || {
            let agent: ureq::Agent = ureq::Agent::config_builder()
                .http_status_as_error(false)
                .build()
                .into();
            for i in 0..20 {
                let response = agent
                    .post(format!("{base}/api/auth/register"))
                    .send_json(json!({"email": format!("w{i}@example.com"), "password": PASSWORD}))
                    .unwrap();
                assert_eq!(response.status().as_u16(), 201);
            }
        })
    };
    let outcome = gatehouse(&db, &["backup", copy_arg]);
    writer.join().unwrap();
    assert_eq!(outcome.code, 0, "{outcome:?}");
    assert!(outcome.stdout.contains(copy_arg), "{outcome:?}");
    assert!(exists(&copy));

    // Never over an existing file.
    let again = gatehouse(&db, &["backup", copy_arg]);
    assert_eq!(again.code, 1, "{again:?}");
    assert!(again.stderr.contains("already exists"), "{again:?}");
    let empty = dir.path().join("empty.db");
    std::fs::write(&empty, b"").unwrap();
    assert_eq!(gatehouse(&db, &["backup", empty.to_str().unwrap()]).code, 1);
    assert_eq!(std::fs::read(&empty).unwrap(), b"");
    let nowhere = dir.path().join("missing-dir").join("copy.db");
    let failed = gatehouse(&db, &["backup", nowhere.to_str().unwrap()]);
    assert_eq!(failed.code, 1, "{failed:?}");
    assert!(failed.stderr.starts_with("gatehouse: "), "{failed:?}");

    // A mistyped database path is not created (and backed up empty).
    let none = dir.path().join("none.db");
    let other = dir.path().join("other.db");
    let missing = gatehouse_with(
        &format!("sqlite://{}", none.display()),
        &["backup", other.to_str().unwrap()],
        &[],
        "",
    );
    assert_eq!(missing.code, 1, "{missing:?}");
    assert!(missing.stderr.contains("no database"), "{missing:?}");
    assert!(!exists(&none) && !exists(&other));

    // Restore: a server on the copy has the users of the moment of the copy, and the
    // generated JWT secret too (tokens issued before still work).
    let copy_url = format!("sqlite://{copy_arg}");
    let restored = Server::start_at(&copy_url, &[]);
    assert_eq!(restored.get("/api/auth/me", Some(&token)).status, 200);
    let users = restored.get("/api/auth/users", Some(&token));
    assert_eq!(users.status, 200);
    let emails: Vec<&str> = users
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["email"].as_str().unwrap())
        .collect();
    for email in [ADMIN, "u0@example.com", "u1@example.com", "u2@example.com"] {
        assert!(emails.contains(&email), "{email} not in {emails:?}");
    }
    // Whatever registrations made it in made it in whole: the copy is a snapshot.
    let copied_writes = emails.iter().filter(|e| e.starts_with('w')).count();
    for i in 0..copied_writes {
        assert!(
            emails.contains(&format!("w{i}@example.com").as_str()),
            "{emails:?}"
        );
    }
    assert_eq!(
        restored.login("u1@example.com", PASSWORD).status,
        403,
        "still pending"
    );
    // The CLI reads the copy like the original.
    let listed = gatehouse_with(&copy_url, &["users", "list", "--json"], &[], "").json();
    assert_eq!(listed, users.body);
}

/// `users list --json` of more users than one chunk of the API's streamed listing (and
/// than a PostgreSQL fetch): the API's own bytes, each user printed as it is read.
fn a_long_json_list_is_the_apis_listing_byte_for_byte(backend: TestBackend) {
    let db = EmptyDatabase::new(backend);
    create(&db, ADMIN, &[]);
    // user1…user2500 after the admin: every tenth pending, every tenth but one disabled.
    db.open().seed_users_for_plans(2500);
    let server = Server::start(&db, &[]);
    let token = server.token(ADMIN, PASSWORD);

    let listed = gatehouse(&db, &["users", "list", "--json"]);
    let users = listed.json();
    let users = users.as_array().unwrap();
    assert_eq!(users.len(), 2501);
    let ids: Vec<i64> = users.iter().map(|u| u["id"].as_i64().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] > w[1]), "newest first");
    assert_eq!(users[0]["email"], "user2500@example.com");
    assert_eq!(users[2500]["email"], ADMIN);
    let (status, headers, api) = server.get_text("/api/auth/users", Some(&token));
    assert_eq!(status, 200);
    assert_eq!(
        listed.stdout,
        format!("{api}\n"),
        "the API's bytes and a line end"
    );
    // Over a real connection the API streams a listing this long.
    assert!(
        headers
            .iter()
            .any(|(n, v)| n.eq_ignore_ascii_case("transfer-encoding") && v == "chunked"),
        "{headers:?}"
    );
    assert!(headers
        .iter()
        .any(|(n, v)| n.eq_ignore_ascii_case("x-total-count") && v == "2501"));

    let pending = gatehouse(&db, &["users", "list", "--status", "pending", "--json"]);
    let (_, _, api_pending) = server.get_text("/api/auth/users?status=pending", Some(&token));
    assert_eq!(pending.stdout, format!("{api_pending}\n"));
    let pending = pending.json();
    assert_eq!(pending.as_array().unwrap().len(), 250);
    assert!(pending
        .as_array()
        .unwrap()
        .iter()
        .all(|u| u["status"] == "pending"));
}

#[needs_postgres]
#[test]
fn backup_refuses_postgresql_and_points_to_pg_dump() {
    let db = EmptyDatabase::new(TestBackend::Postgres);
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("copy.db");
    let outcome = gatehouse(&db, &["backup", copy.to_str().unwrap()]);
    assert_eq!(outcome.code, 1, "{outcome:?}");
    assert!(outcome.stderr.contains("pg_dump"), "{outcome:?}");
    assert_eq!(outcome.stdout, "");
    assert!(!exists(&copy));
}

gatehouse_storage::backend_tests!(
    users_commands_act_through_the_rules_and_the_api_sees_them,
    the_cli_cannot_remove_the_last_admin_either_and_refusals_exit_1,
    a_forgotten_password_and_a_lost_admin_are_recovered_from_the_cli,
    a_long_json_list_is_the_apis_listing_byte_for_byte,
);
