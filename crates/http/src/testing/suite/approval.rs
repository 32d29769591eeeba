//! The approval queue (API.md, "Approval queue and invitations"): reasons, rejections with
//! notes, bulk decisions, registration modes and invitations, route by route and error row
//! by error row.

use serde_json::{json, Value};

use crate::testing::{
    assert_error, assert_problem, assert_user_public, assert_utc_time, spawn_app, spawn_app_with,
    AppOptions, NewStore, Session, TestApp, PASSWORD,
};
use gatehouse_domain::RegistrationMode;

/// Registers `email` with `extra` fields beside email and password.
async fn register_with(app: &TestApp, email: &str, extra: Value) -> crate::testing::Resp {
    let mut body = json!({"email": email, "password": PASSWORD});
    if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
        body.extend(extra.clone());
    }
    app.post_json("/api/auth/register", None, &body).await
}

/// Creates an invitation as `admin`; returns the response's JSON (with `code`).
async fn invite(app: &TestApp, admin: &Session, body: Value) -> Value {
    let res = app
        .post_json("/api/auth/invitations", Some(&admin.token), &body)
        .await;
    assert_eq!(res.status.as_u16(), 201, "invite {body}: {}", res.text());
    res.json()
}

fn assert_invitation(invitation: &Value) {
    let object = invitation.as_object().expect("an invitation is an object");
    for key in [
        "id",
        "email",
        "is_admin",
        "note",
        "created_at",
        "created_by",
        "expires_at",
        "max_uses",
        "uses",
        "revoked_at",
        "status",
    ] {
        assert!(object.contains_key(key), "{key} in {invitation}");
    }
    assert_utc_time(&invitation["created_at"]);
    assert_utc_time(&invitation["expires_at"]);
    assert!(
        ["active", "used", "expired", "revoked"].contains(&invitation["status"].as_str().unwrap()),
        "status of {invitation}"
    );
}

async fn pending_count(app: &TestApp, admin: &Session) -> i64 {
    let res = app
        .get("/api/auth/users/pending/count", Some(&admin.token))
        .await;
    res.json()["count"].as_i64().expect("a count")
}

async fn audit_actions(app: &TestApp, admin: &Session) -> Vec<String> {
    let res = app.get("/api/auth/audit", Some(&admin.token)).await;
    res.json()
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| e["action"].as_str().unwrap_or_default().to_owned())
        .collect()
}

// ---- Reasons ------------------------------------------------------------------------------

pub async fn an_applicant_says_why_and_admins_see_it(new_store: &NewStore) {
    let app = spawn_app(new_store()).await;
    let admin = app.admin().await;
    let res = register_with(
        &app,
        "ann@example.com",
        json!({"reason": "  I run the lab's wiki.\r\nPlease let me in.  "}),
    )
    .await;
    assert_eq!(res.status.as_u16(), 201, "{}", res.text());
    let user = res.json();
    assert_user_public(&user);
    assert_eq!(user["reason"], "I run the lab's wiki.\nPlease let me in.");
    assert_eq!(user["status"], "pending");
    assert_eq!(user["email_verified"], false);
    assert_eq!(user["mfa_enabled"], false);
    let listed = app.user(&admin, user["id"].as_i64().unwrap()).await;
    assert_eq!(listed["reason"], user["reason"]);

    // No reason, null and blank alike: null.
    for (email, extra) in [
        ("b1@example.com", json!({})),
        ("b2@example.com", json!({"reason": null})),
        ("b3@example.com", json!({"reason": "   "})),
    ] {
        let res = register_with(&app, email, extra).await;
        assert_eq!(res.status.as_u16(), 201, "{email}: {}", res.text());
        assert_eq!(res.json()["reason"], Value::Null, "{email}");
    }
}

pub async fn a_reason_too_long_or_with_control_characters_is_refused(new_store: &NewStore) {
    let app = spawn_app(new_store()).await;
    let admin = app.admin().await;
    let exactly = "é".repeat(500);
    let res = register_with(&app, "max@example.com", json!({"reason": exactly})).await;
    assert_eq!(res.status.as_u16(), 201, "500 characters: {}", res.text());
    for (i, bad) in [
        json!("x".repeat(501)),
        json!("tab\there"),
        json!("ends with a tab\t"),
        json!("\u{b}"),
        json!(format!("{} ", "x".repeat(500))),
        json!("invoice\u{202e}fdp.exe"),
        json!("bell\u{7}"),
        json!("nul\u{0}"),
        json!("c1\u{85}inside"),
        json!(5),
    ]
    .into_iter()
    .enumerate()
    {
        let res = register_with(&app, &format!("bad{i}@example.com"), json!({"reason": bad})).await;
        let body = assert_problem(&res, 422, "validation_error", &format!("reason {bad}"));
        assert!(
            body.to_string().contains("reason"),
            "names the field: {body}"
        );
    }
    assert_eq!(app.users(&admin).await.len(), 2, "nothing was registered");
}

// ---- Rejection ------------------------------------------------------------------------------

pub async fn a_rejected_user_is_told_with_the_note_and_leaves_the_queue(new_store: &NewStore) {
    let app = spawn_app(new_store()).await;
    let admin = app.admin().await;
    let id = app.register_ok("ann@example.com").await;
    assert_eq!(pending_count(&app, &admin).await, 1);

    let note = "Not this time.\nAsk again in May.";
    let user = app
        .update_ok(&admin, id, &json!({"status": "rejected", "note": note}))
        .await;
    assert_user_public(&user);
    assert_eq!(user["status"], "rejected");
    assert_eq!(user["rejected_by"], admin.id);
    assert_utc_time(&user["rejected_at"]);
    assert_eq!(user["decision_note"], note);
    assert_eq!(
        pending_count(&app, &admin).await,
        0,
        "not counted as pending"
    );

    // The right password: 403 with the note; a wrong one: the usual 401.
    let res = app.login_json("ann@example.com", PASSWORD).await;
    let body = assert_problem(&res, 403, "account_rejected", "rejected login");
    assert_eq!(body["detail"], "Registration rejected");
    assert_eq!(body["note"], note);
    let res = app.login_form("ann@example.com", PASSWORD).await;
    assert_eq!(
        assert_problem(&res, 403, "account_rejected", "form")["note"],
        note
    );
    let res = app.login_json("ann@example.com", "wrong password!").await;
    assert_problem(&res, 401, "invalid_credentials", "wrong password");

    // Listed by status; may be set back to pending, or approved later.
    let res = app
        .get("/api/auth/users?status=rejected", Some(&admin.token))
        .await;
    assert_eq!(res.header("x-total-count"), Some("1"));
    let back = app
        .update_ok(&admin, id, &json!({"status": "pending"}))
        .await;
    assert_eq!(
        (
            &back["status"],
            &back["rejected_at"],
            &back["rejected_by"],
            &back["decision_note"]
        ),
        (&json!("pending"), &Value::Null, &Value::Null, &Value::Null)
    );
    assert_eq!(pending_count(&app, &admin).await, 1);
    app.update_ok(&admin, id, &json!({"status": "rejected"}))
        .await;
    let res = app.login_json("ann@example.com", PASSWORD).await;
    let body = assert_problem(&res, 403, "account_rejected", "without a note");
    assert_eq!(
        body["note"],
        Value::Null,
        "the note is null when none was left"
    );
    let approved = app
        .update_ok(
            &admin,
            id,
            &json!({"status": "approved", "note": "Welcome!"}),
        )
        .await;
    assert_eq!(approved["decision_note"], "Welcome!");
    assert_eq!(approved["rejected_at"], Value::Null);
    assert_eq!(approved["approved_by"], admin.id);
    assert_eq!(
        app.login_json("ann@example.com", PASSWORD)
            .await
            .status
            .as_u16(),
        200
    );

    let actions = audit_actions(&app, &admin).await;
    assert!(actions.iter().any(|a| a == "user_rejected"), "{actions:?}");
}

pub async fn rejecting_an_approved_user_ends_their_tokens(new_store: &NewStore) {
    let app = spawn_app(new_store()).await;
    let admin = app.admin().await;
    let ann = app.approved_user(&admin, "ann@example.com").await;
    assert_eq!(
        app.get("/api/auth/me", Some(&ann.token))
            .await
            .status
            .as_u16(),
        200
    );
    app.update_ok(&admin, ann.id, &json!({"status": "rejected"}))
        .await;
    let res = app.get("/api/auth/me", Some(&ann.token)).await;
    assert_problem(
        &res,
        401,
        "not_authenticated",
        "a rejected user's old token",
    );
    // The last active admin cannot reject themselves.
    let res = app
        .put_json(
            &format!("/api/auth/users/{}", admin.id),
            Some(&admin.token),
            &json!({"status": "rejected"}),
        )
        .await;
    assert_problem(&res, 400, "last_admin", "rejecting the last admin");
}

pub async fn a_note_goes_only_beside_a_decision(new_store: &NewStore) {
    let app = spawn_app(new_store()).await;
    let admin = app.admin().await;
    let id = app.register_ok("ann@example.com").await;
    let path = format!("/api/auth/users/{id}");
    for body in [
        json!({"note": "hello"}),
        json!({"status": "disabled", "note": "hello"}),
        json!({"status": "pending", "note": "hello"}),
        json!({"status": "rejected", "note": "x".repeat(501)}),
        json!({"status": "rejected", "note": "tab\tinside"}),
        json!({"status": "rejected", "note": 7}),
        json!({"status": "refused"}),
    ] {
        let res = app.put_json(&path, Some(&admin.token), &body).await;
        assert_problem(&res, 422, "validation_error", &body.to_string());
    }
    let user = app.user(&admin, id).await;
    assert_eq!(user["status"], "pending", "nothing changed");
    assert_eq!(user["decision_note"], Value::Null);
}

// ---- Bulk decisions -------------------------------------------------------------------------

pub async fn bulk_decisions_decide_all_in_the_order_given(new_store: &NewStore) {
    let app = spawn_app(new_store()).await;
    let admin = app.admin().await;
    let mut ids = Vec::new();
    for i in 1..=5 {
        ids.push(app.register_ok(&format!("u{i}@example.com")).await);
    }
    let res = app
        .post_json(
            "/api/auth/users/decisions",
            Some(&admin.token),
            &json!({"ids": [ids[2], ids[0]], "decision": "approve"}),
        )
        .await;
    assert_eq!(res.status.as_u16(), 200, "{}", res.text());
    let decided = res.json();
    let decided = decided.as_array().expect("an array");
    assert_eq!(decided.len(), 2);
    assert_eq!(decided[0]["id"], ids[2], "in the order given");
    assert_eq!(decided[1]["id"], ids[0]);
    for user in decided {
        assert_user_public(user);
        assert_eq!(user["status"], "approved");
        assert_eq!(user["approved_by"], admin.id);
    }

    let res = app
        .post_json(
            "/api/auth/users/decisions",
            Some(&admin.token),
            &json!({"ids": [ids[1], ids[3]], "decision": "reject", "note": "Sorry."}),
        )
        .await;
    assert_eq!(res.status.as_u16(), 200, "{}", res.text());
    for user in res.json().as_array().unwrap() {
        assert_eq!(user["status"], "rejected");
        assert_eq!(user["decision_note"], "Sorry.");
        assert_eq!(user["rejected_by"], admin.id);
    }
    assert_eq!(pending_count(&app, &admin).await, 1);
    let res = app.login_json("u2@example.com", PASSWORD).await;
    assert_eq!(
        assert_problem(&res, 403, "account_rejected", "u2")["note"],
        "Sorry."
    );
    let actions = audit_actions(&app, &admin).await;
    assert_eq!(actions.iter().filter(|a| *a == "user_approved").count(), 2);
    assert_eq!(actions.iter().filter(|a| *a == "user_rejected").count(), 2);
}

pub async fn a_bulk_decision_with_a_bad_id_changes_nothing(new_store: &NewStore) {
    let app = spawn_app(new_store()).await;
    let admin = app.admin().await;
    let pending = app.register_ok("p@example.com").await;
    let other = app.register_ok("q@example.com").await;
    let approved = app.approved_user(&admin, "ok@example.com").await;
    let decide = |body: Value| {
        let app = &app;
        let token = admin.token.clone();
        async move {
            app.post_json("/api/auth/users/decisions", Some(&token), &body)
                .await
        }
    };

    let res =
        decide(json!({"ids": [pending, 999_999, other, 888_888], "decision": "approve"})).await;
    let body = assert_problem(&res, 404, "user_not_found", "unknown ids");
    assert_eq!(body["ids"], json!([999_999, 888_888]));

    let res = decide(json!({"ids": [pending, approved.id, admin.id], "decision": "reject"})).await;
    let body = assert_problem(&res, 409, "not_pending", "not pending");
    assert_eq!(body["ids"], json!([approved.id, admin.id]));

    for (body, context) in [
        (json!({"ids": [], "decision": "approve"}), "no ids"),
        (
            json!({"ids": (1..=101).collect::<Vec<i64>>(), "decision": "approve"}),
            "101 ids",
        ),
        (
            json!({"ids": [pending, pending], "decision": "approve"}),
            "an id twice",
        ),
        (json!({"ids": [0], "decision": "approve"}), "id 0"),
        (json!({"ids": [-3], "decision": "approve"}), "a negative id"),
        (json!({"ids": ["1"], "decision": "approve"}), "a string id"),
        (
            json!({"ids": [pending], "decision": "maybe"}),
            "an unknown decision",
        ),
        (json!({"ids": [pending]}), "no decision"),
        (json!({"decision": "approve"}), "no ids field"),
        (
            json!({"ids": [pending], "decision": "reject", "note": "x".repeat(501)}),
            "a long note",
        ),
        (
            json!({"ids": [pending], "decision": "approve", "extra": 1}),
            "an unknown field",
        ),
    ] {
        let res = decide(body).await;
        assert_problem(&res, 422, "validation_error", context);
    }
    let users = app.users(&admin).await;
    assert_eq!(
        users.iter().filter(|u| u["status"] == "pending").count(),
        2,
        "nothing changed: {users:?}"
    );

    // Only admins decide.
    let res = app
        .post_json(
            "/api/auth/users/decisions",
            Some(&approved.token),
            &json!({"ids": [pending], "decision": "approve"}),
        )
        .await;
    assert_problem(&res, 403, "admin_required", "a non-admin");
    let res = app
        .post_json(
            "/api/auth/users/decisions",
            None,
            &json!({"ids": [pending], "decision": "approve"}),
        )
        .await;
    assert_problem(&res, 401, "not_authenticated", "anonymous");
}

// ---- Invitations ------------------------------------------------------------------------------

pub async fn an_invitation_is_created_listed_read_and_revoked(new_store: &NewStore) {
    let app = spawn_app(new_store()).await;
    let admin = app.admin().await;
    let created = invite(&app, &admin, json!({})).await;
    assert_invitation(&created);
    let code = created["code"].as_str().expect("a code");
    assert!(code.len() >= 26, "at least 128 bits in base32: {code}");
    assert!(
        created.get("url").is_none(),
        "no url without GATEHOUSE_PUBLIC_URL"
    );
    assert_eq!(created["status"], "active");
    assert_eq!(created["max_uses"], 1);
    assert_eq!(created["uses"], 0);
    assert_eq!(created["is_admin"], false);
    assert_eq!(created["email"], Value::Null);
    assert_eq!(created["created_by"], admin.id);
    let made = assert_utc_time(&created["created_at"]);
    let expires = assert_utc_time(&created["expires_at"]);
    assert_eq!((expires - made).num_days(), 7, "seven days by default");

    let second = invite(
        &app,
        &admin,
        json!({"email": "Ann@Example.com", "is_admin": true, "expires_in": "90m",
               "max_uses": 1, "note": "for the new sysadmin"}),
    )
    .await;
    assert_eq!(second["email"], "ann@example.com");
    assert_eq!(second["is_admin"], true);
    assert_eq!(second["note"], "for the new sysadmin");
    let made = assert_utc_time(&second["created_at"]);
    let expires = assert_utc_time(&second["expires_at"]);
    assert_eq!((expires - made).num_minutes(), 90);
    let third = invite(&app, &admin, json!({"max_uses": 1000, "expires_in": "90d"})).await;
    assert_eq!(third["max_uses"], 1000);

    let res = app.get("/api/auth/invitations", Some(&admin.token)).await;
    assert_eq!(res.status.as_u16(), 200, "{}", res.text());
    assert_eq!(res.header("x-total-count"), Some("3"));
    let listed = res.json();
    let listed = listed.as_array().unwrap();
    assert_eq!(listed[0]["id"], third["id"], "newest first");
    for invitation in listed {
        assert_invitation(invitation);
        assert!(invitation.get("code").is_none(), "the code is never listed");
    }
    let res = app
        .get("/api/auth/invitations?limit=1&offset=1", Some(&admin.token))
        .await;
    assert_eq!(res.header("x-total-count"), Some("3"));
    assert_eq!(res.json()[0]["id"], second["id"]);

    let path = format!("/api/auth/invitations/{}", created["id"]);
    let res = app.get(&path, Some(&admin.token)).await;
    assert_eq!(res.status.as_u16(), 200);
    assert_eq!(res.json()["id"], created["id"]);
    assert!(res.json().get("code").is_none());

    let res = app.delete(&path, Some(&admin.token)).await;
    assert_eq!(res.status.as_u16(), 204, "{}", res.text());
    assert!(res.body.is_empty());
    let res = app.get(&path, Some(&admin.token)).await;
    assert_eq!(res.json()["status"], "revoked");
    assert_utc_time(&res.json()["revoked_at"]);
    assert_eq!(
        app.delete(&path, Some(&admin.token)).await.status.as_u16(),
        204
    );
    let res = app
        .get("/api/auth/invitations?status=revoked", Some(&admin.token))
        .await;
    assert_eq!(res.header("x-total-count"), Some("1"));
    let res = app
        .get("/api/auth/invitations?status=active", Some(&admin.token))
        .await;
    assert_eq!(res.header("x-total-count"), Some("2"));

    let actions = audit_actions(&app, &admin).await;
    assert_eq!(
        actions
            .iter()
            .filter(|a| *a == "invitation_created")
            .count(),
        3
    );
    assert_eq!(
        actions
            .iter()
            .filter(|a| *a == "invitation_revoked")
            .count(),
        1,
        "once"
    );
    let res = app
        .get(
            "/api/auth/audit?action=invitation_created",
            Some(&admin.token),
        )
        .await;
    assert!(
        !res.text().contains(code),
        "the code never reaches the audit log"
    );
}

pub async fn invitation_requests_are_checked_field_by_field(new_store: &NewStore) {
    let app = spawn_app(new_store()).await;
    let admin = app.admin().await;
    for (body, field) in [
        (json!({"expires_in": "30s"}), "expires_in"),
        (json!({"expires_in": "91d"}), "expires_in"),
        (json!({"expires_in": "seven days"}), "expires_in"),
        (json!({"expires_in": "-1d"}), "expires_in"),
        (json!({"max_uses": 0}), "max_uses"),
        (json!({"max_uses": 1001}), "max_uses"),
        (json!({"max_uses": -1}), "max_uses"),
        (
            json!({"email": "ann@example.com", "max_uses": 2}),
            "max_uses",
        ),
        (json!({"email": "not an email"}), "email"),
        (json!({"note": "x".repeat(501)}), "note"),
        (json!({"note": "bell\u{7}"}), "note"),
        (json!({"is_admin": "yes"}), "is_admin"),
        (json!({"code": "ABC"}), "code"),
    ] {
        let res = app
            .post_json("/api/auth/invitations", Some(&admin.token), &body)
            .await;
        let problem = assert_problem(&res, 422, "validation_error", &body.to_string());
        assert!(
            problem.to_string().contains(field),
            "{field} named in {problem}"
        );
    }
    let res = app.get("/api/auth/invitations", Some(&admin.token)).await;
    assert_eq!(
        res.header("x-total-count"),
        Some("0"),
        "nothing was created"
    );

    for (path, status, code) in [
        ("/api/auth/invitations/999999", 404, "invitation_not_found"),
        ("/api/auth/invitations/abc", 422, "validation_error"),
        ("/api/auth/invitations/0", 422, "validation_error"),
        ("/api/auth/invitations?status=lost", 422, "validation_error"),
        ("/api/auth/invitations?limit=-1", 422, "validation_error"),
        ("/api/auth/invitations?colour=red", 422, "validation_error"),
    ] {
        let res = app.get(path, Some(&admin.token)).await;
        assert_problem(&res, status, code, path);
    }
    let res = app
        .delete("/api/auth/invitations/999999", Some(&admin.token))
        .await;
    assert_error(
        &res,
        404,
        "invitation_not_found",
        "Invitation not found",
        "revoke unknown",
    );

    // Admins only.
    let user = app.approved_user(&admin, "ann@example.com").await;
    for res in [
        app.get("/api/auth/invitations", Some(&user.token)).await,
        app.post_json("/api/auth/invitations", Some(&user.token), &json!({}))
            .await,
        app.get("/api/auth/invitations/1", Some(&user.token)).await,
        app.delete("/api/auth/invitations/1", Some(&user.token))
            .await,
    ] {
        assert_problem(&res, 403, "admin_required", "a non-admin");
    }
    let res = app
        .post_json("/api/auth/invitations", None, &json!({}))
        .await;
    assert_problem(&res, 401, "not_authenticated", "anonymous");
}

pub async fn an_invitation_lets_its_invitee_in_approved_once(new_store: &NewStore) {
    let app = spawn_app(new_store()).await;
    let admin = app.admin().await;
    let created = invite(&app, &admin, json!({})).await;
    let code = created["code"].as_str().unwrap();

    // Typed by a person: lower case, with hyphens and spaces.
    let typed = code
        .to_lowercase()
        .chars()
        .collect::<Vec<_>>()
        .chunks(4)
        .map(|c| c.iter().collect::<String>())
        .collect::<Vec<_>>()
        .join("-");
    let res = register_with(
        &app,
        "ann@example.com",
        json!({"invitation": format!(" {typed} ")}),
    )
    .await;
    assert_eq!(res.status.as_u16(), 201, "{}", res.text());
    let ann = res.json();
    assert_user_public(&ann);
    assert_eq!(ann["status"], "approved");
    assert_eq!(ann["is_admin"], false);
    assert_eq!(ann["approved_by"], admin.id, "approved by the inviter");
    assert_eq!(
        ann["email_verified"], false,
        "the invitation named no email"
    );
    assert_eq!(
        app.login_json("ann@example.com", PASSWORD)
            .await
            .status
            .as_u16(),
        200
    );
    assert_eq!(pending_count(&app, &admin).await, 0);

    // Used up: the same 422 as any invalid code, and nothing registered.
    let res = register_with(&app, "bob@example.com", json!({"invitation": code})).await;
    assert_error(
        &res,
        422,
        "invalid_invitation",
        "Invalid invitation",
        "used up",
    );
    let res = app
        .get(
            &format!("/api/auth/invitations/{}", created["id"]),
            Some(&admin.token),
        )
        .await;
    assert_eq!(
        (&res.json()["uses"], &res.json()["status"]),
        (&json!(1), &json!("used"))
    );

    for (email, code, context) in [
        (
            "c1@example.com",
            "0000000000000000000000000000000",
            "unknown",
        ),
        ("c2@example.com", "not a code at all", "malformed"),
        ("c3@example.com", "", "empty"),
    ] {
        let res = register_with(&app, email, json!({"invitation": code})).await;
        assert_error(
            &res,
            422,
            "invalid_invitation",
            "Invalid invitation",
            context,
        );
    }
    let users = app.users(&admin).await;
    assert_eq!(users.len(), 2, "only the admin and Ann: {users:?}");
    let actions = audit_actions(&app, &admin).await;
    assert_eq!(
        actions.iter().filter(|a| *a == "invitation_used").count(),
        1
    );
}

pub async fn an_email_bound_admin_invitation_admits_only_that_email(new_store: &NewStore) {
    let app = spawn_app(new_store()).await;
    let admin = app.admin().await;
    let created = invite(
        &app,
        &admin,
        json!({"email": "sam@example.com", "is_admin": true}),
    )
    .await;
    let code = created["code"].as_str().unwrap();
    let res = register_with(&app, "other@example.com", json!({"invitation": code})).await;
    assert_error(
        &res,
        422,
        "invalid_invitation",
        "Invalid invitation",
        "another email",
    );
    let res = register_with(
        &app,
        "SAM@example.com",
        json!({"invitation": code, "reason": "hi"}),
    )
    .await;
    assert_eq!(res.status.as_u16(), 201, "{}", res.text());
    let sam = res.json();
    assert_eq!(sam["is_admin"], true);
    assert_eq!(sam["status"], "approved");
    assert_eq!(
        sam["email_verified"], true,
        "the invitation named the email"
    );
    assert_eq!(sam["reason"], "hi");
    let token = app.token("sam@example.com", PASSWORD).await;
    let res = app.get("/api/auth/users", Some(&token)).await;
    assert_eq!(res.status.as_u16(), 200, "an admin at once");

    // Revoked and expired invitations admit nobody either.
    let revoked = invite(&app, &admin, json!({"max_uses": 5})).await;
    app.delete(
        &format!("/api/auth/invitations/{}", revoked["id"]),
        Some(&admin.token),
    )
    .await;
    let res = register_with(
        &app,
        "late@example.com",
        json!({"invitation": revoked["code"]}),
    )
    .await;
    assert_error(
        &res,
        422,
        "invalid_invitation",
        "Invalid invitation",
        "revoked",
    );
}

pub async fn an_invitation_links_to_the_console_when_the_public_url_is_known(new_store: &NewStore) {
    let app = spawn_app_with(AppOptions {
        public_url: Some("https://auth.example.com/gate/".into()),
        ..AppOptions::new(new_store())
    })
    .await;
    let admin = app.admin().await;
    let created = invite(&app, &admin, json!({})).await;
    let code = created["code"].as_str().unwrap();
    assert_eq!(
        created["url"],
        format!("https://auth.example.com/gate/#/register?invitation={code}")
    );
}

// ---- Registration modes ---------------------------------------------------------------------

async fn app_in(mode: RegistrationMode, new_store: &NewStore) -> TestApp {
    spawn_app_with(AppOptions {
        registration: mode,
        ..AppOptions::new(new_store())
    })
    .await
}

pub async fn invite_only_registration_needs_an_invitation(new_store: &NewStore) {
    let app = app_in(RegistrationMode::InviteOnly, new_store).await;
    let admin = app.admin().await; // the first user always may
    let res = register_with(&app, "ann@example.com", json!({"reason": "please"})).await;
    assert_error(
        &res,
        403,
        "registration_closed",
        "Registration is closed",
        "no invitation",
    );
    let created = invite(&app, &admin, json!({})).await;
    let res = register_with(
        &app,
        "ann@example.com",
        json!({"invitation": created["code"]}),
    )
    .await;
    assert_eq!(res.status.as_u16(), 201, "{}", res.text());
    assert_eq!(res.json()["status"], "approved");
    // Admins still create users.
    let res = app
        .post_json(
            "/api/auth/users",
            Some(&admin.token),
            &json!({"email": "made@example.com", "password": PASSWORD}),
        )
        .await;
    assert_eq!(res.status.as_u16(), 201);
    assert_eq!(
        res.json()["email_verified"],
        true,
        "an admin's user starts verified"
    );
    assert_eq!(app.users(&admin).await.len(), 3);
}

pub async fn closed_registration_refuses_everyone_but_the_first_user(new_store: &NewStore) {
    let app = app_in(RegistrationMode::Closed, new_store).await;
    let admin = app.admin().await;
    let created = invite(&app, &admin, json!({})).await;
    for extra in [
        json!({}),
        json!({"invitation": created["code"]}),
        json!({"invitation": "not a code"}),
    ] {
        let res = register_with(&app, "ann@example.com", extra.clone()).await;
        assert_error(
            &res,
            403,
            "registration_closed",
            "Registration is closed",
            &extra.to_string(),
        );
    }
    assert_eq!(app.users(&admin).await.len(), 1);
    let res = app
        .get(
            &format!("/api/auth/invitations/{}", created["id"]),
            Some(&admin.token),
        )
        .await;
    assert_eq!(
        res.json()["uses"],
        0,
        "a refused registration spends no use"
    );
}
