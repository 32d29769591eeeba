//! Mail from outside (API.md, "Notifications: webhooks and mail"): the real binary sending
//! over real SMTP to a sink the test starts, on both backends.

use std::time::Duration;

use gatehouse_storage::testing::{EmptyDatabase, TestBackend};
use serde_json::{json, Value};

use crate::cli::gatehouse_with;
use crate::server::Server;
use crate::smtp_sink::SmtpSink;

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
    let got = sink.wait_for(1, WAIT);
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
    let got = sink.wait_for(3, WAIT);
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
    let got = sink.wait_for(4, WAIT);
    assert_eq!(got.len(), 4, "{got:#?}");
    let invitation = got.iter().find(|m| m.to == ["cat@example.com"]).unwrap();
    assert_eq!(invitation.header("subject"), "You are invited to register");
    assert!(invitation.body().contains(&code), "{}", invitation.body());
    assert!(invitation.body().contains(&format!(
        "https://auth.example.com/#/register?invitation={code}"
    )));
    assert!(invitation.body().contains("Join the team"));
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(sink.mails().len(), 4, "nothing more: {:#?}", sink.mails());
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
    let got = sink.wait_for(1, WAIT);
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
    let got = sink.wait_for(2, WAIT);
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

gatehouse_storage::backend_tests!(
    applicants_admins_and_invitees_are_mailed,
    digests_come_at_most_once_per_interval,
    mail_survives_an_outage_and_the_test_command_reports,
);
