//! The approval queue from outside (API.md, "Approval queue and invitations"): invitation
//! races on one instance and across two on one PostgreSQL, the registration modes and the
//! public URL as the environment sets them, and the command line's `users reject` and
//! `invitations …` with their exit codes.

use std::sync::Arc;

use gatehouse_storage::testing::{needs_postgres, race, EmptyDatabase, TestBackend};
use serde_json::{json, Value};

use crate::cli::{gatehouse, gatehouse_with};
use crate::server::{run, Server};

const PASSWORD: &str = "tr0mbone-kettle";
const ADMIN: &str = "admin@example.com";

/// Registers the admin on `server` and returns their token.
fn admin(server: &Server) -> String {
    assert_eq!(server.register(ADMIN, PASSWORD).status, 201);
    server.token(ADMIN, PASSWORD)
}

fn invitation(server: &Server, token: &str, body: &Value) -> Value {
    let reply = server.send_json("POST", "/api/auth/invitations", Some(token), body);
    assert_eq!(reply.status, 201, "{reply:?}");
    reply.body
}

fn register_with(server: &Server, email: &str, extra: &Value) -> crate::server::Reply {
    let mut body = json!({"email": email, "password": PASSWORD});
    if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
        body.extend(extra.clone());
    }
    server.send_json("POST", "/api/auth/register", None, &body)
}

/// `racers` registrations with `code` spread over `servers`: the statuses, sorted.
fn race_for(servers: &[Arc<Server>], code: &str, racers: usize, tag: &str) -> Vec<u16> {
    let servers = servers.to_vec();
    let code = code.to_owned();
    let tag = tag.to_owned();
    let replies = race(racers, move |i| {
        register_with(
            &servers[i % servers.len()],
            &format!("{tag}{i}@example.com"),
            &json!({"invitation": code}),
        )
    });
    for reply in &replies {
        assert!(
            reply.status == 201
                || (reply.status == 422 && reply.body["code"] == "invalid_invitation"),
            "{reply:?}"
        );
    }
    let mut statuses: Vec<u16> = replies.iter().map(|r| r.status).collect();
    statuses.sort_unstable();
    statuses
}

fn admitted(statuses: &[u16]) -> usize {
    statuses.iter().filter(|s| **s == 201).count()
}

/// Racing registrations on one code admit exactly its uses: one of 16 on a one-use code,
/// three of 12 on a three-use one; the invitation then reads `used`.
fn check_invitation_races(servers: &[Arc<Server>]) {
    let token = admin(&servers[0]);
    let once = invitation(&servers[0], &token, &json!({}));
    let statuses = race_for(servers, once["code"].as_str().unwrap(), 16, "once");
    assert_eq!(admitted(&statuses), 1, "{statuses:?}");
    let thrice = invitation(&servers[1 % servers.len()], &token, &json!({"max_uses": 3}));
    let statuses = race_for(servers, thrice["code"].as_str().unwrap(), 12, "thrice");
    assert_eq!(admitted(&statuses), 3, "{statuses:?}");
    for (made, uses) in [(&once, 1), (&thrice, 3)] {
        let read = servers[0].get(
            &format!("/api/auth/invitations/{}", made["id"]),
            Some(&token),
        );
        assert_eq!(
            (read.body["uses"].clone(), read.body["status"].clone()),
            (json!(uses), json!("used"))
        );
    }
    let users = servers[0].get("/api/auth/users?status=approved", Some(&token));
    assert_eq!(
        users.header("x-total-count"),
        Some("5"),
        "the admin and four invitees"
    );
    let pending = servers[0].get("/api/auth/users/pending/count", Some(&token));
    assert_eq!(pending.body["count"], 0, "nobody slipped into the queue");
}

fn invitation_races_on_one_instance_admit_exactly_the_uses(backend: TestBackend) {
    let db = EmptyDatabase::new(backend);
    let server = Arc::new(Server::start(&db, &[]));
    check_invitation_races(&[server]);
}

#[needs_postgres]
#[test]
fn invitation_races_across_two_instances_admit_exactly_the_uses() {
    let db = EmptyDatabase::new(TestBackend::Postgres);
    let spawned: Vec<_> = (0..2)
        .map(|_| Server::spawn(&db.url_string(), &[]))
        .collect();
    let servers: Vec<Arc<Server>> = spawned
        .into_iter()
        .map(|s| Arc::new(Server::wait_until_listening(s)))
        .collect();
    check_invitation_races(&servers);
}

/// Each registration mode, set in the environment; the first user always gets in.
fn registration_modes_hold_as_configured(backend: TestBackend) {
    let db = EmptyDatabase::new(backend);
    {
        let server = Server::start(&db, &[("GATEHOUSE_REGISTRATION", "invite_only")]);
        let token = admin(&server);
        let refused = register_with(&server, "ann@example.com", &json!({"reason": "hi"}));
        assert_eq!(
            (refused.status, refused.body["code"].clone()),
            (403, json!("registration_closed"))
        );
        let made = invitation(&server, &token, &json!({}));
        let invited = register_with(
            &server,
            "ann@example.com",
            &json!({"invitation": made["code"]}),
        );
        assert_eq!(invited.status, 201, "{invited:?}");
        assert_eq!(invited.body["status"], "approved");
    }
    // The same database, now closed: invitations admit nobody either; open again: the
    // queue as before.
    let server = Server::start(&db, &[("GATEHOUSE_REGISTRATION", "closed")]);
    let token = server.token(ADMIN, PASSWORD);
    let made = invitation(&server, &token, &json!({}));
    for extra in [json!({}), json!({"invitation": made["code"]})] {
        let refused = register_with(&server, "bob@example.com", &extra);
        assert_eq!(
            (refused.status, refused.body["code"].clone()),
            (403, json!("registration_closed")),
            "{extra}"
        );
    }
    drop(server);
    let server = Server::start(&db, &[]);
    let queued = register_with(
        &server,
        "bob@example.com",
        &json!({"reason": "Let me in\nplease"}),
    );
    assert_eq!(
        (queued.status, queued.body["status"].clone()),
        (201, json!("pending"))
    );
    assert_eq!(queued.body["reason"], "Let me in\nplease");
}

#[test]
fn a_fresh_closed_instance_still_takes_its_first_user() {
    let db = EmptyDatabase::new(TestBackend::Sqlite);
    let server = Server::start(&db, &[("GATEHOUSE_REGISTRATION", "closed")]);
    let first = server.register(ADMIN, PASSWORD);
    assert_eq!(
        (first.status, first.body["is_admin"].clone()),
        (201, json!(true))
    );
    let second = server.register("ann@example.com", PASSWORD);
    assert_eq!(second.status, 403);
}

#[test]
fn bad_registration_settings_stop_start_up_with_exit_code_2() {
    let db = EmptyDatabase::new(TestBackend::Sqlite);
    for (variable, value) in [
        ("GATEHOUSE_REGISTRATION", "sometimes"),
        ("GATEHOUSE_PUBLIC_URL", "ftp://auth.example.com"),
        ("GATEHOUSE_PUBLIC_URL", "https://user:pw@auth.example.com"),
        ("GATEHOUSE_PUBLIC_URL", "https://auth.example.com/?x=1"),
    ] {
        let (code, _, stderr) = run(
            &["serve"],
            &[
                ("GATEHOUSE_DATABASE_URL", &db.url_string()),
                (variable, value),
            ],
        );
        assert_eq!(code, 2, "{variable}={value}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.contains(variable), "{stderr}");
    }
}

#[test]
fn an_invitation_carries_its_link_when_the_public_url_is_set() {
    let db = EmptyDatabase::new(TestBackend::Sqlite);
    let server = Server::start(
        &db,
        &[("GATEHOUSE_PUBLIC_URL", "https://auth.example.com/")],
    );
    let token = admin(&server);
    let made = invitation(&server, &token, &json!({"email": "sam@example.com"}));
    let code = made["code"].as_str().unwrap();
    assert_eq!(
        made["url"],
        format!("https://auth.example.com/#/register?invitation={code}")
    );
    let log = server.log();
    assert!(
        !log.contains(code),
        "the code never reaches the log:\n{log}"
    );
}

/// `users reject`, `invitations create|list|revoke` through the rules, as the API sees
/// them; refusals exit 1 with one line, usage errors 2.
fn the_command_line_rejects_and_invites(backend: TestBackend) {
    let db = EmptyDatabase::new(backend);
    let server = Server::start(&db, &[]);
    let token = admin(&server);
    assert_eq!(server.register("ann@example.com", PASSWORD).status, 201);

    let rejected = gatehouse(
        &db,
        &[
            "users",
            "reject",
            "ann@example.com",
            "--note",
            "Not this time.",
            "--json",
        ],
    )
    .json();
    assert_eq!(rejected["status"], "rejected");
    assert_eq!(rejected["decision_note"], "Not this time.");
    assert_eq!(
        rejected["rejected_by"],
        Value::Null,
        "the operator is nobody's id"
    );
    let login = server.login("ann@example.com", PASSWORD);
    assert_eq!(
        (
            login.status,
            login.body["code"].clone(),
            login.body["note"].clone()
        ),
        (403, json!("account_rejected"), json!("Not this time."))
    );
    let line = gatehouse(&db, &["users", "reject", "ann@example.com"]);
    assert_eq!(line.code, 0, "{line:?}");
    assert!(line.stdout.contains("rejected"), "{line:?}");
    gatehouse(&db, &["users", "reject", "nobody@example.com"]).refused("User not found");
    gatehouse(&db, &["users", "reject", ADMIN]).refused("Cannot disable last active admin");

    let made = gatehouse(
        &db,
        &[
            "invitations",
            "create",
            "--email",
            "sam@example.com",
            "--admin",
            "--expires-in",
            "2h",
            "--json",
        ],
    )
    .json();
    assert_eq!(
        (
            made["email"].clone(),
            made["is_admin"].clone(),
            made["created_by"].clone()
        ),
        (json!("sam@example.com"), json!(true), Value::Null)
    );
    let code = made["code"].as_str().unwrap();
    let sam = register_with(&server, "sam@example.com", &json!({"invitation": code}));
    assert_eq!(
        (
            sam.status,
            sam.body["is_admin"].clone(),
            sam.body["email_verified"].clone()
        ),
        (201, json!(true), json!(true))
    );

    let text = gatehouse(
        &db,
        &["invitations", "create", "--max-uses", "5", "--note", "team"],
    );
    assert_eq!(text.code, 0, "{text:?}");
    assert!(text.stdout.contains("code: "), "{text:?}");
    assert!(text.stdout.contains("shown only now"), "{text:?}");

    let listed = gatehouse(&db, &["invitations", "list", "--json"]).json();
    let listed = listed.as_array().unwrap();
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0]["status"], "active");
    assert_eq!(listed[1]["status"], "used");
    assert!(listed.iter().all(|i| i.get("code").is_none()));
    let table = gatehouse(&db, &["invitations", "list", "--status", "used"]);
    assert!(table.stdout.contains("sam@example.com"), "{table:?}");
    assert!(!table.stdout.contains("team"), "{table:?}");

    let id = listed[0]["id"].to_string();
    let revoked = gatehouse(&db, &["invitations", "revoke", &id, "--json"]).json();
    assert_eq!(revoked["status"], "revoked");
    let api = server.get(&format!("/api/auth/invitations/{id}"), Some(&token));
    assert_eq!(api.body["status"], "revoked");
    gatehouse(&db, &["invitations", "revoke", "999999"]).refused("Invitation not found");
    gatehouse(
        &db,
        &[
            "invitations",
            "create",
            "--email",
            "x@example.com",
            "--max-uses",
            "2",
        ],
    )
    .refused("an invitation for one email is used once: max_uses must be 1");

    // Usage errors: clap's exit code 2, nothing done.
    for args in [
        &["invitations", "create", "--expires-in", "100d"][..],
        &["invitations", "create", "--max-uses", "many"],
        &["invitations", "list", "--status", "lost"],
        &["invitations", "revoke", "abc"],
        &["users", "reject"],
        &["users", "reject", "ann@example.com", "--note", "tab\there"],
    ] {
        let outcome = gatehouse_with(&db.url_string(), args, &[], "");
        assert_eq!(outcome.code, 2, "{args:?}: {outcome:?}");
    }
    let all = server.get("/api/auth/invitations", Some(&token));
    assert_eq!(
        all.header("x-total-count"),
        Some("2"),
        "nothing more was created"
    );
}

gatehouse_storage::backend_tests!(
    invitation_races_on_one_instance_admit_exactly_the_uses,
    registration_modes_hold_as_configured,
    the_command_line_rejects_and_invites,
);
