//! Recovery and verified emails from outside (API.md, "Account recovery and email
//! verification"): the real binary mailing codes over real SMTP to a sink the test starts,
//! on both backends.

use std::time::{Duration, Instant};

use gatehouse_storage::testing::{EmptyDatabase, TestBackend};
use serde_json::json;

use crate::server::Server;
use crate::smtp_sink::{Mail, SmtpSink};

const PASSWORD: &str = "tr0mbone-kettle";
const NEW_PASSWORD: &str = "saxophone-teapot";
const ADMIN: &str = "admin@example.com";
const WAIT: Duration = Duration::from_secs(20);

fn start(db: &EmptyDatabase, sink: &SmtpSink, extra: &[(&'static str, &str)]) -> Server {
    let url = sink.url();
    let mut env = vec![
        ("GATEHOUSE_SMTP_URL", url.as_str()),
        ("GATEHOUSE_MAIL_FROM", "Gatehouse <auth@example.com>"),
        ("GATEHOUSE_WEBHOOK_RETRY_DELAYS", "200ms,300ms"),
        ("GATEHOUSE_ADMIN_DIGEST_INTERVAL", "1h"),
    ];
    env.extend_from_slice(extra);
    Server::start(db, &env)
}

/// The code in the newest mail to `to` with `subject`, waiting for it.
fn code_for(sink: &SmtpSink, to: &str, subject: &str) -> String {
    let deadline = Instant::now() + WAIT;
    loop {
        let found: Vec<Mail> = sink
            .mails()
            .into_iter()
            .filter(|m| m.to == [to] && m.header("subject") == subject)
            .collect();
        if let Some(mail) = found.last() {
            let body = mail.body();
            let at = body.find("Your code: ").expect("a code in the mail") + "Your code: ".len();
            return body[at..at + 9].to_owned();
        }
        assert!(Instant::now() < deadline, "no {subject:?} mail to {to}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn count(sink: &SmtpSink, to: &str, subject: &str) -> usize {
    sink.mails()
        .iter()
        .filter(|m| m.to == [to] && m.header("subject") == subject)
        .count()
}

fn approve(server: &Server, token: &str, id: &serde_json::Value) {
    let reply = server.send_json(
        "PUT",
        &format!("/api/auth/users/{id}"),
        Some(token),
        &json!({"status": "approved"}),
    );
    assert_eq!(reply.status, 200, "{reply:?}");
}

/// Forgot, the mailed code, reset: the new password works, the old one and the old
/// sessions do not; a wrong code, an unknown email and a spent code get one answer.
fn a_forgotten_password_is_reset_with_the_mailed_code(backend: TestBackend) {
    let db = EmptyDatabase::new(backend);
    let sink = SmtpSink::start();
    let server = start(&db, &sink, &[]);
    assert_eq!(server.register(ADMIN, PASSWORD).status, 201);
    let admin = server.token(ADMIN, PASSWORD);
    let ann = server.register("ann@example.com", PASSWORD).body["id"].clone();
    approve(&server, &admin, &ann);
    let old = server.login("ann@example.com", PASSWORD);
    assert_eq!(old.status, 200, "{old:?}");

    for email in ["ann@example.com", "nobody@example.com"] {
        let reply = server.send_json(
            "POST",
            "/api/auth/password/forgot",
            None,
            &json!({ "email": email }),
        );
        assert_eq!(reply.status, 202, "{reply:?}");
        assert_eq!(
            reply.body,
            json!({"message": "If that address is registered, a code is on its way"})
        );
    }
    let code = code_for(&sink, "ann@example.com", "Your password reset code");
    assert_eq!(code.len(), 9, "ABCD-EFGH: {code}");
    assert_eq!(
        count(&sink, "nobody@example.com", "Your password reset code"),
        0
    );

    let reset = |email: &str, code: &str| {
        server.send_json(
            "POST",
            "/api/auth/password/reset",
            None,
            &json!({"email": email, "code": code, "new_password": NEW_PASSWORD}),
        )
    };
    let wrong = reset("ann@example.com", "ZZZZ-ZZZZ");
    let unknown = reset("nobody@example.com", &code);
    for reply in [&wrong, &unknown] {
        assert_eq!(reply.status, 400, "{reply:?}");
        assert_eq!(reply.body["code"], "invalid_code", "{reply:?}");
    }
    assert_eq!(wrong.body["detail"], unknown.body["detail"]);
    let done = reset("ann@example.com", &code.to_lowercase());
    assert_eq!(done.status, 204, "{done:?}");
    assert_eq!(reset("ann@example.com", &code).status, 400, "spent");

    assert_eq!(server.login("ann@example.com", PASSWORD).status, 401);
    assert_eq!(server.login("ann@example.com", NEW_PASSWORD).status, 200);
    let old_refresh = old.body["refresh_token"].as_str().expect("a refresh token");
    let refreshed = server.post_form(
        "/api/auth/token",
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", old_refresh),
        ],
    );
    assert_eq!(
        refreshed.status, 400,
        "the old session ended: {refreshed:?}"
    );
    assert_eq!(refreshed.body["code"], "invalid_grant");
    let audit = server.get("/api/auth/audit?action=password_recovered", Some(&admin));
    assert_eq!(audit.status, 200, "{audit:?}");
    assert_eq!(audit.body.as_array().map(Vec::len), Some(1), "{audit:?}");
    assert!(!server.log().contains(&code), "the code is never logged");
}

/// Every self-registration is mailed a verification code; the code verifies; with an
/// auto-approved domain and verification required, the flow ends approved and signed in.
fn registration_is_verified_by_the_mailed_code(backend: TestBackend) {
    let db = EmptyDatabase::new(backend);
    let sink = SmtpSink::start();
    let server = start(
        &db,
        &sink,
        &[
            ("GATEHOUSE_REQUIRE_VERIFIED_EMAIL", "true"),
            ("GATEHOUSE_AUTO_APPROVE_DOMAINS", "example.org"),
        ],
    );
    assert_eq!(server.register(ADMIN, PASSWORD).status, 201);
    let denied = server.login(ADMIN, PASSWORD);
    assert_eq!(denied.status, 403, "{denied:?}");
    assert_eq!(denied.body["code"], "email_unverified");
    assert_eq!(server.login(ADMIN, "wrong-password-1").status, 401);
    let verify = |email: &str, code: &str| {
        server.send_json(
            "POST",
            "/api/auth/email/verify",
            None,
            &json!({"email": email, "code": code}),
        )
    };
    let admin_code = code_for(&sink, ADMIN, "Verify your email address");
    assert_eq!(verify(ADMIN, &admin_code).status, 204);
    let admin = server.token(ADMIN, PASSWORD);
    let me = server.get("/api/auth/me", Some(&admin));
    assert_eq!(me.body["email_verified"], true, "{me:?}");

    assert_eq!(server.register("ann@example.org", PASSWORD).status, 201);
    let first = code_for(&sink, "ann@example.org", "Verify your email address");
    let resend = server.send_json(
        "POST",
        "/api/auth/email/verify/resend",
        None,
        &json!({"email": "ann@example.org"}),
    );
    assert_eq!(resend.status, 202, "{resend:?}");
    let deadline = Instant::now() + WAIT;
    while count(&sink, "ann@example.org", "Verify your email address") < 2 {
        assert!(Instant::now() < deadline, "no second code");
        std::thread::sleep(Duration::from_millis(20));
    }
    let wrong = verify("ann@example.org", "ZZZZ-ZZZZ");
    assert_eq!(wrong.status, 400, "{wrong:?}");
    assert_eq!(wrong.body["code"], "invalid_code");
    assert_eq!(verify("ann@example.org", &first).status, 204);
    // Approved on verifying: signed in at once, approved by nobody.
    let ann = server.token("ann@example.org", PASSWORD);
    let me = server.get("/api/auth/me", Some(&ann));
    assert_eq!(me.body["status"], "approved", "{me:?}");
    assert_eq!(me.body["email_verified"], true);
    assert_eq!(me.body["approved_by"], serde_json::Value::Null);
    let audit = server.get("/api/auth/audit?action=user_auto_approved", Some(&admin));
    assert_eq!(audit.body.as_array().map(Vec::len), Some(1), "{audit:?}");
}

/// `POST /password/forgot` for a registered and for an unknown email: 40 tries each,
/// interleaved, medians reported (not asserted: the machine is shared and noisy).
fn forgot_answers_alike_for_known_and_unknown_emails(backend: TestBackend) {
    let db = EmptyDatabase::new(backend);
    let sink = SmtpSink::start();
    let server = start(&db, &sink, &[("GATEHOUSE_REGISTER_LIMIT_PER_HOUR", "0")]);
    assert_eq!(server.register(ADMIN, PASSWORD).status, 201);
    let time = |email: &str| {
        let started = Instant::now();
        let reply = server.send_json(
            "POST",
            "/api/auth/password/forgot",
            None,
            &json!({ "email": email }),
        );
        assert_eq!(reply.status, 202, "{reply:?}");
        started.elapsed()
    };
    let (mut known, mut unknown) = (Vec::new(), Vec::new());
    for i in 0..40 {
        known.push(time(ADMIN));
        unknown.push(time(&format!("nobody{i}@example.com")));
    }
    known.sort();
    unknown.sort();
    eprintln!(
        "forgot, {backend:?}: median {:?} for a registered email, {:?} for an unknown one \
         (40 each; 3 codes an hour are sent, then none)",
        known[20], unknown[20]
    );
    assert_eq!(
        count(&sink, "nobody0@example.com", "Your password reset code"),
        0
    );
}

/// Without a mailer every recovery route is 404 `not_enabled`; with verification asked
/// for, start-up refuses.
fn without_a_mailer_recovery_is_not_enabled(backend: TestBackend) {
    let db = EmptyDatabase::new(backend);
    let server = Server::start(&db, &[]);
    for (path, body) in [
        ("/api/auth/password/forgot", json!({"email": ADMIN})),
        (
            "/api/auth/password/reset",
            json!({"email": ADMIN, "code": "ABCD-2345", "new_password": NEW_PASSWORD}),
        ),
        (
            "/api/auth/email/verify",
            json!({"email": ADMIN, "code": "ABCD-2345"}),
        ),
        ("/api/auth/email/verify/resend", json!({"email": ADMIN})),
    ] {
        let reply = server.send_json("POST", path, None, &body);
        assert_eq!(reply.status, 404, "{path}: {reply:?}");
        assert_eq!(reply.body["code"], "not_enabled", "{path}");
    }
    drop(server);
    for variable in [
        "GATEHOUSE_REQUIRE_VERIFIED_EMAIL",
        "GATEHOUSE_AUTO_APPROVE_DOMAINS",
    ] {
        let value = if variable.ends_with("EMAIL") {
            "true"
        } else {
            "example.com"
        };
        let (code, _, stderr) = crate::server::run(
            &["check-config"],
            &[
                ("GATEHOUSE_DATABASE_URL", &db.url_string()),
                (variable, value),
            ],
        );
        assert_eq!(code, 2, "{stderr}");
        assert!(
            stderr.contains(&format!("invalid {variable}: needs a mailer")),
            "{stderr}"
        );
    }
}

/// The operator verifies an email from the command line; a resend for a malformed or an
/// unknown address is answered 202 like any other and sends nothing.
fn the_operator_verifies_and_resend_answers_alike(backend: TestBackend) {
    let db = EmptyDatabase::new(backend);
    let sink = SmtpSink::start();
    let server = start(&db, &sink, &[]);
    assert_eq!(server.register(ADMIN, PASSWORD).status, 201);
    let bob = server.register("bob@example.com", PASSWORD);
    assert_eq!(bob.body["email_verified"], false, "{bob:?}");
    let verified = crate::cli::gatehouse_with(
        &db.url_string(),
        &["users", "verify-email", "bob@example.com"],
        &[],
        "",
    );
    assert_eq!(verified.code, 0, "{verified:?}");
    assert!(
        verified.stdout.contains("verified the email of"),
        "{verified:?}"
    );
    let admin = server.token(ADMIN, PASSWORD);
    let listed = server.get("/api/auth/users?q=bob", Some(&admin));
    assert_eq!(listed.body[0]["email_verified"], true, "{listed:?}");
    // Bob's code from his registration; none after it.
    code_for(&sink, "bob@example.com", "Verify your email address");
    for email in ["not an address", "nobody@example.com", "bob@example.com"] {
        let reply = server.send_json(
            "POST",
            "/api/auth/email/verify/resend",
            None,
            &json!({ "email": email }),
        );
        assert_eq!(reply.status, 202, "{email}: {reply:?}");
    }
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        count(&sink, "bob@example.com", "Verify your email address"),
        1
    );
    assert_eq!(
        count(&sink, "nobody@example.com", "Verify your email address"),
        0
    );
}

gatehouse_storage::backend_tests!(
    the_operator_verifies_and_resend_answers_alike,
    a_forgotten_password_is_reset_with_the_mailed_code,
    registration_is_verified_by_the_mailed_code,
    forgot_answers_alike_for_known_and_unknown_emails,
    without_a_mailer_recovery_is_not_enabled,
);
