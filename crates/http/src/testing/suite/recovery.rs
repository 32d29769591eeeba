//! Recovery and email verification (API.md, "Account recovery and email verification"):
//! the public routes, with codes read from the mails the store queued (nothing sends them
//! here), and without a mailer.

use std::sync::Arc;

use gatehouse_domain::{DueMail, MailKind, RecoveryPolicy, UserStore, UserStoreExt};
use serde_json::json;

use crate::testing::{assert_problem, spawn_app, spawn_app_with, AppOptions, NewStore, TestApp};

const FORGOT: &str = "/api/auth/password/forgot";
const RESET: &str = "/api/auth/password/reset";
const VERIFY: &str = "/api/auth/email/verify";
const RESEND: &str = "/api/auth/email/verify/resend";
const ON_ITS_WAY: &str = "If that address is registered, a code is on its way";

async fn with_mailer(new_store: &NewStore) -> (TestApp, Arc<dyn UserStore>) {
    let store = new_store();
    let app = spawn_app_with(AppOptions {
        mail: Some(RecoveryPolicy::default()),
        ..AppOptions::new(Arc::clone(&store))
    })
    .await;
    (app, store)
}

/// The queued mails of `kind` (claimed: each is returned once).
fn mails(store: &Arc<dyn UserStore>, kind: MailKind) -> Vec<DueMail> {
    let now = gatehouse_domain::now();
    store
        .write_rows_with(|repo| repo.claim_mails(now, now + chrono::Duration::seconds(5), 1000))
        .expect("claim mails")
        .into_iter()
        .filter(|mail| mail.kind == kind)
        .collect()
}

fn code_in(mail: &DueMail) -> String {
    let at = mail.body.find("Your code: ").expect("a code") + "Your code: ".len();
    mail.body[at..at + 9].to_owned()
}

pub async fn recovery_routes_answer_not_enabled_without_a_mailer(new_store: &NewStore) {
    let app = spawn_app(new_store()).await;
    app.admin().await;
    for (path, body) in [
        (FORGOT, json!({"email": "admin@example.com"})),
        (
            RESET,
            json!({"email": "admin@example.com", "code": "ABCD-2345", "new_password": "saxophone-teapot"}),
        ),
        (
            VERIFY,
            json!({"email": "admin@example.com", "code": "ABCD-2345"}),
        ),
        (RESEND, json!({"email": "admin@example.com"})),
    ] {
        let res = app.post_json(path, None, &body).await;
        assert_problem(&res, 404, "not_enabled", path);
    }
}

pub async fn a_mailed_code_resets_the_password_once(new_store: &NewStore) {
    let (app, store) = with_mailer(new_store).await;
    let admin = app.admin().await;
    let ann = app.approved_user(&admin, "ann@example.com").await;

    for email in ["ann@example.com", "nobody@example.com"] {
        let res = app
            .post_json(FORGOT, None, &json!({ "email": email }))
            .await;
        assert_eq!(res.status.as_u16(), 202, "{email}: {}", res.text());
        assert_eq!(res.json(), json!({ "message": ON_ITS_WAY }));
    }
    let malformed = app.post_json(FORGOT, None, &json!({"email": "nope"})).await;
    assert_eq!(malformed.status.as_u16(), 422, "{}", malformed.text());
    let sent = mails(&store, MailKind::PasswordReset);
    assert_eq!(sent.len(), 1, "none for nobody: {sent:#?}");
    assert_eq!(sent[0].to, ann.email);
    let code = code_in(&sent[0]);

    let reset = |code: &str, password: &str| json!({"email": "ann@example.com", "code": code, "new_password": password});
    let weak = app.post_json(RESET, None, &reset(&code, "short")).await;
    assert_eq!(weak.status.as_u16(), 422, "{}", weak.text());
    let wrong = app
        .post_json(RESET, None, &reset("ZZZZ-ZZZZ", "saxophone-teapot"))
        .await;
    let wrong = assert_problem(&wrong, 400, "invalid_code", "a wrong code");
    let unknown = app
        .post_json(
            RESET,
            None,
            &json!({"email": "nobody@example.com", "code": code, "new_password": "saxophone-teapot"}),
        )
        .await;
    let unknown = assert_problem(&unknown, 400, "invalid_code", "an unknown email");
    assert_eq!(wrong["detail"], unknown["detail"], "one message for all");
    let done = app
        .post_json(RESET, None, &reset(&code, "saxophone-teapot"))
        .await;
    assert_eq!(done.status.as_u16(), 204, "{}", done.text());
    let again = app
        .post_json(RESET, None, &reset(&code, "saxophone-teapot"))
        .await;
    assert_problem(&again, 400, "invalid_code", "a spent code");

    // The old token stops working; the new password signs in.
    let me = app.get("/api/auth/me", Some(&ann.token)).await;
    assert_eq!(me.status.as_u16(), 401, "{}", me.text());
    let login = app.login_json("ann@example.com", "saxophone-teapot").await;
    assert_eq!(login.status.as_u16(), 200, "{}", login.text());
}

pub async fn a_mailed_code_verifies_the_email(new_store: &NewStore) {
    let (app, store) = with_mailer(new_store).await;
    app.admin().await;
    let registered = app.register("sam@example.com", "tr0mbone-kettle").await;
    assert_eq!(registered.json()["email_verified"], false);
    let sent: Vec<DueMail> = mails(&store, MailKind::EmailVerification)
        .into_iter()
        .filter(|mail| mail.to == "sam@example.com")
        .collect();
    assert_eq!(sent.len(), 1);
    let wrong = app
        .post_json(
            VERIFY,
            None,
            &json!({"email": "sam@example.com", "code": "ZZZZ-ZZZZ"}),
        )
        .await;
    assert_problem(&wrong, 400, "invalid_code", "a wrong code");
    let verified = app
        .post_json(
            VERIFY,
            None,
            &json!({"email": "sam@example.com", "code": code_in(&sent[0])}),
        )
        .await;
    assert_eq!(verified.status.as_u16(), 204, "{}", verified.text());
    // Verified: a resend sends nothing, and any email is answered alike.
    for email in ["sam@example.com", "nobody@example.com", "not an email"] {
        let res = app
            .post_json(RESEND, None, &json!({ "email": email }))
            .await;
        assert_eq!(res.status.as_u16(), 202, "{email}: {}", res.text());
    }
    assert!(mails(&store, MailKind::EmailVerification).is_empty());
    let admin = app
        .token("admin@example.com", crate::testing::PASSWORD)
        .await;
    let listed = app.get("/api/auth/users?q=sam", Some(&admin)).await;
    assert_eq!(
        listed.json()[0]["email_verified"],
        true,
        "{}",
        listed.text()
    );
}
