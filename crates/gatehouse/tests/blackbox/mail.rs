//! Mail from outside (API.md, "Notifications: webhooks and mail"): the real binary sending
//! over real SMTP to a sink the test starts, on both backends.

use std::time::Duration;

use gatehouse_storage::testing::{EmptyDatabase, TestBackend};
use serde_json::{json, Value};

use crate::cli::{gatehouse_with, Outcome};
use crate::server::Server;
use crate::smtp_sink::{Account, Login, Security, SmtpSink};

const PASSWORD: &str = "tr0mbone-kettle";
const ADMIN: &str = "admin@example.com";
const WAIT: Duration = Duration::from_secs(20);

fn env(sink: &SmtpSink, digest: &str) -> Vec<(&'static str, String)> {
    vec![
        ("GATEHOUSE_SMTP_URL", sink.url()),
        (
            "GATEHOUSE_MAIL_FROM",
            "Gatehouse <auth@example.com>".to_owned(),
        ),
        (
            "GATEHOUSE_PUBLIC_URL",
            "https://auth.example.com".to_owned(),
        ),
        ("GATEHOUSE_ADMIN_DIGEST_INTERVAL", digest.to_owned()),
        ("GATEHOUSE_WEBHOOK_RETRY_DELAYS", "200ms,300ms".to_owned()),
        ("GATEHOUSE_WEBHOOK_TIMEOUT", "2s".to_owned()),
    ]
}

fn start(db: &EmptyDatabase, env: &[(&'static str, String)]) -> Server {
    let pairs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    Server::start(db, &pairs)
}

fn decide(server: &Server, token: &str, id: &Value, body: &Value) {
    let reply = server.send_json("PUT", &format!("/api/auth/users/{id}"), Some(token), body);
    assert_eq!(reply.status, 200, "{reply:?}");
}

/// Applicants hear the decision, with the note; admins get one digest per interval
/// listing who is new; an email-bound invitation is mailed with its code and link.
fn applicants_admins_and_invitees_are_mailed(backend: TestBackend) {
    let db = EmptyDatabase::new(backend);
    let sink = SmtpSink::start();
    let server = start(&db, &env(&sink, "1h"));
    assert_eq!(server.register(ADMIN, PASSWORD).status, 201);
    let token = server.token(ADMIN, PASSWORD);
    let ann = server.register("ann@example.com", PASSWORD).body["id"].clone();
    // The first registration waiting: one digest to the one admin.
    let got = sink.wait_for_others(1, WAIT);
    assert_eq!(got.len(), 1, "{got:#?}\n{}", server.log());
    let digest = &got[0];
    assert_eq!(digest.to, [ADMIN]);
    assert_eq!(digest.from, "auth@example.com");
    assert_eq!(
        digest.header("subject"),
        "ann@example.com is waiting for approval"
    );
    assert!(
        digest.body().contains("ann@example.com"),
        "{}",
        digest.body()
    );
    assert!(digest.body().contains("https://auth.example.com/#/pending"));
    assert!(
        digest
            .header("content-type")
            .starts_with("text/plain; charset=utf-8"),
        "{digest:#?}"
    );
    // Another registration within the interval: no second digest yet.
    let bob = server.register("bob@example.com", PASSWORD).body["id"].clone();
    decide(
        &server,
        &token,
        &ann,
        &json!({"status": "approved", "note": "Welcome aboard"}),
    );
    decide(
        &server,
        &token,
        &bob,
        &json!({"status": "rejected", "note": "Not this time"}),
    );
    let got = sink.wait_for_others(3, WAIT);
    assert_eq!(got.len(), 3, "{got:#?}");
    let to = |who: &str| got.iter().find(|m| m.to == [who]).unwrap().clone();
    let approved = to("ann@example.com");
    assert_eq!(approved.header("subject"), "Your registration was approved");
    assert!(
        approved.body().contains("Welcome aboard"),
        "{}",
        approved.body()
    );
    assert!(approved.body().contains("https://auth.example.com/"));
    let rejected = to("bob@example.com");
    assert_eq!(
        rejected.header("subject"),
        "Your registration was not approved"
    );
    assert!(rejected.body().contains("Not this time"));
    // A note changed on the same decision: no second mail.
    decide(
        &server,
        &token,
        &bob,
        &json!({"status": "rejected", "note": "Still no"}),
    );
    let invited = server.send_json(
        "POST",
        "/api/auth/invitations",
        Some(&token),
        &json!({"email": "cat@example.com", "note": "Join the team"}),
    );
    assert_eq!(invited.status, 201, "{invited:?}");
    let code = invited.body["code"].as_str().unwrap().to_owned();
    let got = sink.wait_for_others(4, WAIT);
    assert_eq!(got.len(), 4, "{got:#?}");
    let invitation = got.iter().find(|m| m.to == ["cat@example.com"]).unwrap();
    assert_eq!(invitation.header("subject"), "You are invited to register");
    assert!(invitation.body().contains(&code), "{}", invitation.body());
    assert!(invitation.body().contains(&format!(
        "https://auth.example.com/#/register?invitation={code}"
    )));
    assert!(invitation.body().contains("Join the team"));
    std::thread::sleep(Duration::from_millis(500));
    let others = sink.wait_for_others(usize::MAX, Duration::ZERO);
    assert_eq!(others.len(), 4, "nothing more: {others:#?}");
    assert!(!server.log().contains(&code), "the code is not logged");
    // What admins see of the set-up.
    let settings = server.get("/api/auth/settings/mail", Some(&token));
    assert_eq!(settings.status, 200, "{settings:?}");
    assert_eq!(settings.body["configured"], true);
    assert_eq!(settings.body["host"], "127.0.0.1");
    assert_eq!(settings.body["port"], sink.port);
    assert_eq!(settings.body["security"], "none");
    assert_eq!(settings.body["from"], "Gatehouse <auth@example.com>");
    assert_eq!(settings.body["admin_digest_interval_seconds"], 3600);
    let applicant = server.token("ann@example.com", PASSWORD);
    assert_eq!(
        server
            .get("/api/auth/settings/mail", Some(&applicant))
            .status,
        403
    );
}

/// With a short interval, each admin gets at most one digest per interval, and every
/// newcomer is named in one.
fn digests_come_at_most_once_per_interval(backend: TestBackend) {
    let db = EmptyDatabase::new(backend);
    let sink = SmtpSink::start();
    let server = start(&db, &env(&sink, "2s"));
    assert_eq!(server.register(ADMIN, PASSWORD).status, 201);
    let token = server.token(ADMIN, PASSWORD);
    let second = server.register("second@example.com", PASSWORD).body["id"].clone();
    decide(
        &server,
        &token,
        &second,
        &json!({"status": "approved", "is_admin": true}),
    );
    // The first digest named `second`; wait past its interval before the newcomers.
    std::thread::sleep(Duration::from_millis(2200));
    let before = sink.mails().len();
    for name in ["dan", "eve", "fay"] {
        assert_eq!(
            server
                .register(&format!("{name}@example.com"), PASSWORD)
                .status,
            201
        );
    }
    std::thread::sleep(Duration::from_secs(5));
    let digests: Vec<_> = sink.mails()[before..]
        .iter()
        .filter(|m| m.header("subject").contains("waiting for approval"))
        .cloned()
        .collect();
    for admin in [ADMIN, "second@example.com"] {
        let theirs: Vec<_> = digests.iter().filter(|m| m.to == [admin]).collect();
        assert!((1..=3).contains(&theirs.len()), "{admin}: {theirs:#?}");
        let named: String = theirs.iter().map(|m| m.body()).collect();
        for name in ["dan", "eve", "fay"] {
            assert_eq!(
                named
                    .matches(&format!("{name}@example.com (registered"))
                    .count(),
                1,
                "{admin} hears of {name} once: {named}"
            );
        }
    }
}

/// Mail waits out an SMTP outage: the first attempts fail, the mail goes once the server
/// is back. `gatehouse mail test` reports the server's answer, and a refusal.
fn mail_survives_an_outage_and_the_test_command_reports(backend: TestBackend) {
    let db = EmptyDatabase::new(backend);
    let port = SmtpSink::start().port;
    std::thread::sleep(Duration::from_millis(50));
    let down = vec![
        ("GATEHOUSE_SMTP_URL", format!("smtp://127.0.0.1:{port}")),
        ("GATEHOUSE_MAIL_FROM", "auth@example.com".to_owned()),
        (
            "GATEHOUSE_WEBHOOK_RETRY_DELAYS",
            "1s,1s,1s,1s,1s".to_owned(),
        ),
        ("GATEHOUSE_WEBHOOK_TIMEOUT", "2s".to_owned()),
    ];
    let server = start(&db, &down);
    assert_eq!(server.register(ADMIN, PASSWORD).status, 201);
    assert_eq!(server.register("ann@example.com", PASSWORD).status, 201);
    std::thread::sleep(Duration::from_millis(1500));
    let sink = SmtpSink::start_on(port);
    let got = sink.wait_for_others(1, WAIT);
    assert_eq!(got.len(), 1, "{}", server.log());
    assert_eq!(got[0].to, [ADMIN]);

    let pairs: Vec<(&str, &str)> = down.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let sent = gatehouse_with(
        &db.url_string(),
        &["mail", "test", "ops@example.com"],
        &pairs,
        "",
    );
    assert_eq!(sent.code, 0, "{sent:?}");
    assert!(sent.stdout.contains("the server answered 250"), "{sent:?}");
    let got = sink.wait_for_others(2, WAIT);
    assert_eq!(got[1].to, ["ops@example.com"]);
    assert_eq!(got[1].header("subject"), "Gatehouse mail test");
    let refused = gatehouse_with(
        &db.url_string(),
        &["mail", "test", "nobody@example.com"],
        &pairs,
        "",
    );
    assert_eq!(refused.code, 1, "{refused:?}");
    assert!(refused.stderr.contains("550"), "{refused:?}");
    let settings = server.get(
        "/api/auth/settings/mail",
        Some(&server.token(ADMIN, PASSWORD)),
    );
    assert_eq!(settings.body["authenticated"], false, "{settings:?}");
    drop(server);
    let with_password = Server::start(
        &db,
        &[
            (
                "GATEHOUSE_SMTP_URL",
                "smtp://mailer:s3cret-pw@mail.example.com?tls=required",
            ),
            ("GATEHOUSE_MAIL_FROM", "auth@example.com"),
        ],
    );
    let settings = with_password.get(
        "/api/auth/settings/mail",
        Some(&with_password.token(ADMIN, PASSWORD)),
    );
    assert_eq!(settings.body["security"], "starttls", "{settings:?}");
    assert_eq!(settings.body["port"], 587);
    assert_eq!(settings.body["authenticated"], true);
    assert!(!settings.body.to_string().contains("s3cret-pw"));
    assert!(!settings.body.to_string().contains("mailer"));
    assert!(!with_password.log().contains("s3cret-pw"));
    let none = gatehouse_with(
        &db.url_string(),
        &["mail", "test", "ops@example.com"],
        &[],
        "",
    );
    assert_eq!(none.code, 1, "{none:?}");
    assert!(none.stderr.contains("no mailer is configured"), "{none:?}");
}

/// A mailer needs a sender, and its URL's password never shows.
#[test]
fn the_smtp_url_needs_a_sender_and_keeps_its_password() {
    let (code, _, stderr) = crate::server::run(
        &["check-config"],
        &[(
            "GATEHOUSE_SMTP_URL",
            "smtp://user:s3cret-pw@mail.example.com:587?tls=required",
        )],
    );
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("GATEHOUSE_MAIL_FROM"), "{stderr}");
    assert!(!stderr.contains("s3cret-pw"), "{stderr}");
    let (code, stdout, stderr) = crate::server::run(
        &["check-config"],
        &[
            (
                "GATEHOUSE_SMTP_URL",
                "smtp://user:s3cret-pw@mail.example.com:587?tls=required",
            ),
            ("GATEHOUSE_MAIL_FROM", "auth@example.com"),
        ],
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(!stdout.contains("s3cret-pw"), "{stdout}");
    assert!(
        stdout.contains("smtp://user:***@mail.example.com:587"),
        "{stdout}"
    );
    let (code, _, stderr) = crate::server::run(
        &["check-config"],
        &[
            ("GATEHOUSE_SMTP_URL", "http://mail.example.com/"),
            ("GATEHOUSE_MAIL_FROM", "a@b.c"),
        ],
    );
    assert_eq!(code, 2);
    assert!(
        stderr.contains("must start with smtp:// or smtps://"),
        "{stderr}"
    );
}

/// The SMTP account of the TLS tests: URL-unsafe characters in both, so the URL must
/// percent-encode them and the mailer decode them.
const SMTP_USER: &str = "mailer@example.com";
const SMTP_PASSWORD: &str = "s3cret/p@ss w0rd:kettle";

/// The password as it stands in the URL, which no output may show either.
const SMTP_PASSWORD_ENCODED: &str = "s3cret%2Fp%40ss%20w0rd%3Akettle";

/// The mailer's settings for `sink` with the test account, trusting `ca` if given.
fn secure_env(sink: &SmtpSink, ca: Option<&std::path::Path>) -> Vec<(&'static str, String)> {
    let mut env = vec![
        (
            "GATEHOUSE_SMTP_URL",
            sink.secure_url(SMTP_USER, SMTP_PASSWORD),
        ),
        (
            "GATEHOUSE_MAIL_FROM",
            "Gatehouse <auth@example.com>".to_owned(),
        ),
        ("GATEHOUSE_WEBHOOK_TIMEOUT", "5s".to_owned()),
    ];
    if let Some(ca) = ca {
        env.push(("GATEHOUSE_SMTP_CA_FILE", ca.display().to_string()));
    }
    env
}

/// `gatehouse mail test ops@example.com` with `env`, on a fresh SQLite database.
fn mail_test(env: &[(&'static str, String)]) -> Outcome {
    let db = EmptyDatabase::new(TestBackend::Sqlite);
    let pairs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    gatehouse_with(
        &db.url_string(),
        &["mail", "test", "ops@example.com"],
        &pairs,
        "",
    )
}

fn assert_no_password(text: &str) {
    assert!(!text.contains(SMTP_PASSWORD), "the password shows: {text}");
    assert!(
        !text.contains(SMTP_PASSWORD_ENCODED),
        "the password shows: {text}"
    );
}

/// `mail test` over STARTTLS (`?tls=required`) to a server whose certificate a private CA
/// signed: trusted through GATEHOUSE_SMTP_CA_FILE, logged in with the URL's credentials
/// (AUTH PLAIN, offered only once the connection is encrypted), the mail sent over TLS.
#[test]
fn mail_test_over_starttls_with_a_private_ca_and_the_urls_credentials() {
    let sink = SmtpSink::start_secure(Security::StartTls, Account::new(SMTP_USER, SMTP_PASSWORD));
    let sent = mail_test(&secure_env(&sink, Some(sink.ca_file())));
    assert_eq!(sent.code, 0, "{sent:?}\n{}", sink.events());
    assert!(
        sent.stdout
            .contains("through 127.0.0.1: the server answered 250"),
        "{sent:?}"
    );
    let got = sink.wait_for(1, WAIT);
    assert_eq!(got.len(), 1, "{}", sink.events());
    assert_eq!(got[0].to, ["ops@example.com"]);
    assert_eq!(got[0].from, "auth@example.com");
    assert_eq!(got[0].header("subject"), "Gatehouse mail test");
    assert!(got[0].tls, "the mail came in the clear");
    assert_eq!(
        got[0].login,
        Some(Login {
            mechanism: "PLAIN".to_owned(),
            user: SMTP_USER.to_owned(),
            password: SMTP_PASSWORD.to_owned(),
        })
    );
    assert_no_password(&format!("{}{}", sent.stdout, sent.stderr));
}

/// The same over implicit TLS (`smtps://`), with AUTH LOGIN (the only one offered) and a
/// CA file holding two CAs, the server's second.
#[test]
fn mail_test_over_smtps_with_a_ca_bundle_and_auth_login() {
    let sink = SmtpSink::start_secure(
        Security::Implicit,
        Account::new(SMTP_USER, SMTP_PASSWORD).with_mechanisms(&["LOGIN"]),
    );
    let env = secure_env(&sink, Some(sink.ca_bundle()));
    assert!(env[0].1.starts_with("smtps://"), "{env:?}");
    let sent = mail_test(&env);
    assert_eq!(sent.code, 0, "{sent:?}\n{}", sink.events());
    assert!(sent.stdout.contains("the server answered 250"), "{sent:?}");
    let got = sink.wait_for(1, WAIT);
    assert_eq!(got.len(), 1, "{}", sink.events());
    assert_eq!(got[0].to, ["ops@example.com"]);
    assert!(got[0].tls);
    assert_eq!(
        got[0].login,
        Some(Login {
            mechanism: "LOGIN".to_owned(),
            user: SMTP_USER.to_owned(),
            password: SMTP_PASSWORD.to_owned(),
        })
    );
    assert_no_password(&format!("{}{}", sent.stdout, sent.stderr));
}

/// A running server's mail goes over STARTTLS with AUTH to the server the private CA
/// vouches for: the first one it sends on two registrations (the admin digest: "ann is
/// waiting for approval"), whatever it is, through the outbox's dispatcher.
#[test]
fn a_running_server_mails_over_starttls_with_auth() {
    let db = EmptyDatabase::new(TestBackend::Sqlite);
    let sink = SmtpSink::start_secure(Security::StartTls, Account::new(SMTP_USER, SMTP_PASSWORD));
    let server = start(&db, &secure_env(&sink, Some(sink.ca_file())));
    assert_eq!(server.register(ADMIN, PASSWORD).status, 201);
    assert_eq!(server.register("ann@example.com", PASSWORD).status, 201);
    let got = sink.wait_for(1, WAIT);
    assert!(!got.is_empty(), "{}\n{}", sink.events(), server.log());
    let mail = &got[0];
    assert_eq!(mail.from, "auth@example.com", "{mail:#?}");
    assert!(
        mail.to == [ADMIN] || mail.to == ["ann@example.com"],
        "{mail:#?}"
    );
    assert_ne!(mail.header("subject"), "Gatehouse mail test");
    assert!(mail.tls, "{mail:#?}");
    assert_eq!(
        mail.login
            .as_ref()
            .map(|l| (l.user.as_str(), l.password.as_str())),
        Some((SMTP_USER, SMTP_PASSWORD))
    );
    assert_no_password(&server.log());
}

/// Without the CA file the server's certificate is not trusted (the Mozilla roots only):
/// `mail test` fails, says so, and neither the password nor the mail went out.
#[test]
fn an_untrusted_certificate_fails_the_mail_test_without_showing_the_password() {
    for security in [Security::StartTls, Security::Implicit] {
        let sink = SmtpSink::start_secure(security, Account::new(SMTP_USER, SMTP_PASSWORD));
        let failed = mail_test(&secure_env(&sink, None));
        assert_ne!(failed.code, 0, "{security:?}: {failed:?}");
        assert!(
            failed.stderr.contains("not sent through 127.0.0.1")
                && failed.stderr.contains("certificate"),
            "{security:?}: {failed:?}"
        );
        assert!(
            failed.stderr.contains("GATEHOUSE_SMTP_CA_FILE"),
            "{security:?}: the hint: {failed:?}"
        );
        assert_no_password(&format!("{}{}", failed.stdout, failed.stderr));
        std::thread::sleep(Duration::from_millis(200));
        assert!(sink.mails().is_empty(), "{security:?}");
        let events = sink.events();
        assert!(
            events.contains("TLS handshake failed"),
            "{security:?}: {events}"
        );
        assert!(!events.contains("AUTH"), "{security:?}: {events}");
    }
}

/// Start-up refuses a CA file it cannot read, one without a certificate, and one set
/// without GATEHOUSE_SMTP_URL, in one line naming the variable; a good one is shown.
#[test]
fn start_up_refuses_a_bad_or_stray_smtp_ca_file() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing-ca.pem");
    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "# no certificate here\n").unwrap();
    let mailer = [
        (
            "GATEHOUSE_SMTP_URL",
            "smtp://mailer:s3cret-pw@mail.example.com?tls=required",
        ),
        ("GATEHOUSE_MAIL_FROM", "auth@example.com"),
    ];
    let db = format!("sqlite://{}", dir.path().join("gatehouse.db").display());
    for (file, problem) in [(&missing, "cannot read"), (&empty, "holds no certificate")] {
        let file = file.display().to_string();
        let mut env = mailer.to_vec();
        env.extend([
            ("GATEHOUSE_SMTP_CA_FILE", file.as_str()),
            ("GATEHOUSE_DATABASE_URL", db.as_str()),
        ]);
        let (code, stdout, stderr) = crate::server::run(&["serve"], &env);
        assert_eq!(code, 2, "{stdout}{stderr}");
        let lines: Vec<&str> = stderr.lines().collect();
        assert_eq!(lines.len(), 1, "{stderr}");
        assert!(
            lines[0].starts_with(&format!(
                "gatehouse: invalid GATEHOUSE_SMTP_CA_FILE: {file}"
            )) && lines[0].contains(problem),
            "{stderr}"
        );
        assert!(!stderr.contains("s3cret-pw") && !stderr.contains("panicked"));
    }
    // A good file, but no mailer to use it.
    let sink = SmtpSink::start_secure(Security::StartTls, Account::new("u", "p"));
    let ca = sink.ca_file().display().to_string();
    let (code, _, stderr) = crate::server::run(
        &["serve"],
        &[
            ("GATEHOUSE_SMTP_CA_FILE", ca.as_str()),
            ("GATEHOUSE_DATABASE_URL", db.as_str()),
        ],
    );
    assert_eq!(code, 2, "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with(
            "gatehouse: invalid GATEHOUSE_SMTP_CA_FILE: is set without GATEHOUSE_SMTP_URL"
        ),
        "{stderr}"
    );
    // With one, check-config shows it.
    let mut env = mailer.to_vec();
    env.push(("GATEHOUSE_SMTP_CA_FILE", ca.as_str()));
    let (code, stdout, stderr) = crate::server::run(&["check-config"], &env);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains(&format!("smtp_ca_file = \"{ca}\"")),
        "{stdout}"
    );
    let (_, stdout, _) = crate::server::run(&["check-config"], &mailer);
    assert!(
        stdout.contains("smtp_ca_file = \"(none: the Mozilla roots only)\""),
        "{stdout}"
    );
}

gatehouse_storage::backend_tests!(
    applicants_admins_and_invitees_are_mailed,
    digests_come_at_most_once_per_interval,
    mail_survives_an_outage_and_the_test_command_reports,
);
