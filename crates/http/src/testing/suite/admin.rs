//! The admin routes: listing, counting, editing, deleting users and resetting passwords,
//! with the rules that guard them.

use actix_web::test::TestRequest;
use serde_json::{json, Value};

use crate::testing::{
    assert_error, assert_security_headers, assert_user_public, assert_utc_time, bearer, spawn_app,
    NewStore, Session, TestApp, ADMIN_EMAIL, PASSWORD,
};

const ADMIN_REQUIRED: &str = "Admin access required";
const NOT_VALIDATED: &str = "Could not validate credentials";

/// One request to each admin route, aimed at user `target`, each valid in itself.
fn admin_requests(target: i64) -> Vec<(String, TestRequest)> {
    vec![
        (
            "GET /users".into(),
            TestRequest::get().uri("/api/auth/users"),
        ),
        (
            "GET /users?status=pending".into(),
            TestRequest::get().uri("/api/auth/users?status=pending&limit=1"),
        ),
        (
            "GET /users/pending/count".into(),
            TestRequest::get().uri("/api/auth/users/pending/count"),
        ),
        (
            "POST /users".into(),
            TestRequest::post()
                .uri("/api/auth/users")
                .set_json(json!({"email": "made@example.com", "password": "tr0mbone-kettle"})),
        ),
        (
            format!("PUT /users/{target}"),
            TestRequest::put()
                .uri(&format!("/api/auth/users/{target}"))
                .set_json(json!({"is_admin": true, "status": "approved"})),
        ),
        (
            format!("DELETE /users/{target}"),
            TestRequest::delete().uri(&format!("/api/auth/users/{target}")),
        ),
        (
            format!("POST /users/{target}/reset-password"),
            TestRequest::post()
                .uri(&format!("/api/auth/users/{target}/reset-password"))
                .set_json(json!({"password": "a brand new password"})),
        ),
    ]
}

/// Registers users `u1@example.com`… after the admin, approving those at the given indexes.
async fn populate(app: &TestApp, admin: &Session, count: usize, approve: &[usize]) -> Vec<i64> {
    let mut ids = Vec::new();
    for i in 1..=count {
        let id = app.register_ok(&format!("u{i}@example.com")).await;
        if approve.contains(&i) {
            app.update_ok(admin, id, &json!({"status": "approved"}))
                .await;
        }
        ids.push(id);
    }
    ids
}

fn ids(users: &Value) -> Vec<i64> {
    users
        .as_array()
        .expect("a JSON array")
        .iter()
        .map(|u| u["id"].as_i64().expect("an id"))
        .collect()
}

// ---- GET /users and /users/pending/count -------------------------------------------------

pub async fn list_users_returns_everyone_newest_first_with_the_total(new_store: &NewStore) {
    let app = spawn_app(new_store()).await;
    let admin = app.admin().await;
    let created = populate(&app, &admin, 3, &[2]).await;

    let res = app.get("/api/auth/users", Some(&admin.token)).await;

    assert_eq!(res.status.as_u16(), 200, "{}", res.text());
    assert_security_headers(&res, "list");
    assert_eq!(res.header("x-total-count"), Some("4"));
    let users = res.json();
    for user in users.as_array().unwrap() {
        assert_user_public(user);
    }
    let mut newest_first = created.clone();
    newest_first.reverse();
    newest_first.push(admin.id);
    assert_eq!(ids(&users), newest_first);
    assert_eq!(users[0]["email"], "u3@example.com");
    assert_eq!(users[1]["status"], "approved", "u2 was approved");
    assert_eq!(users[2]["status"], "pending");
    assert_eq!(users[3]["email"], ADMIN_EMAIL);
}

pub async fn list_users_pages_and_filters(new_store: &NewStore) {
    let app = spawn_app(new_store()).await;
    let admin = app.admin().await;
    // u1..u5; u2 and u4 approved, the rest pending.
    let u = populate(&app, &admin, 5, &[2, 4]).await;
    app.register_ok("zed@other.org").await;
    let get = |query: &'static str| {
        let app = &app;
        let token = admin.token.clone();
        async move {
            let res = app
                .get(&format!("/api/auth/users{query}"), Some(&token))
                .await;
            assert_eq!(res.status.as_u16(), 200, "{query}: {}", res.text());
            let total: u64 = res
                .header("x-total-count")
                .unwrap_or_else(|| panic!("{query}: X-Total-Count"))
                .parse()
                .expect("a number");
            (ids(&res.json()), total)
        }
    };
    let zed = u[4] + 1;

    assert_eq!(get("?limit=2").await, (vec![zed, u[4]], 7));
    assert_eq!(get("?limit=2&offset=2").await, (vec![u[3], u[2]], 7));
    assert_eq!(get("?offset=5").await, (vec![u[0], admin.id], 7));
    assert_eq!(get("?offset=7").await, (vec![], 7));
    assert_eq!(get("?offset=100").await, (vec![], 7));
    assert_eq!(get("?limit=0").await, (vec![], 7));
    assert_eq!(get("?limit=100").await.0.len(), 7);
    assert_eq!(
        get("?status=pending").await,
        (vec![zed, u[4], u[2], u[0]], 4)
    );
    assert_eq!(
        get("?status=approved").await,
        (vec![u[3], u[1], admin.id], 3)
    );
    assert_eq!(get("?status=disabled").await, (vec![], 0));
    assert_eq!(get("?q=other.org").await, (vec![zed], 1));
    assert_eq!(get("?q=u").await.1, 5, "u1..u5 but not zed or admin");
    assert_eq!(get("?q=example.com").await.1, 6);
    assert_eq!(get("?q=nomatch").await, (vec![], 0));
    assert_eq!(get("?q=").await.1, 7, "an empty q filters nothing");
    assert_eq!(
        get("?status=pending&q=example&limit=1&offset=1").await,
        (vec![u[2]], 3),
        "filters combine; the total counts every match, not the page"
    );
    assert_eq!(get("?q=u3%40example.com").await, (vec![u[2]], 1));
    assert_eq!(get("?is_admin=true").await, (vec![admin.id], 1));
    assert_eq!(get("?is_admin=false").await.1, 6);
    app.update_ok(&admin, u[3], &json!({"is_admin": true}))
        .await;
    assert_eq!(
        get("?status=approved&is_admin=true&limit=0").await,
        (vec![], 2),
        "how the console counts the active admins"
    );
    assert_eq!(get("?is_admin=false&q=u").await.1, 4);
}

async fn pending_count(app: &TestApp, admin: &Session) -> Value {
    let res = app
        .get("/api/auth/users/pending/count", Some(&admin.token))
        .await;
    assert_eq!(res.status.as_u16(), 200, "{}", res.text());
    assert_security_headers(&res, "pending count");
    res.json()
}

pub async fn pending_count_counts_users_waiting_for_approval(new_store: &NewStore) {
    let app = spawn_app(new_store()).await;
    let admin = app.admin().await;
    assert_eq!(pending_count(&app, &admin).await, json!({"count": 0}));

    let ids = populate(&app, &admin, 3, &[]).await;
    assert_eq!(pending_count(&app, &admin).await, json!({"count": 3}));

    app.update_ok(&admin, ids[0], &json!({"status": "approved"}))
        .await;
    app.update_ok(&admin, ids[1], &json!({"status": "disabled"}))
        .await;
    assert_eq!(pending_count(&app, &admin).await, json!({"count": 1}));
}

// ---- POST /users ----------------------------------------------------------------------------

pub async fn an_admin_creates_users_approved_by_default(new_store: &NewStore) {
    let app = spawn_app(new_store()).await;
    let admin = app.admin().await;

    let res = app
        .post_json(
            "/api/auth/users",
            Some(&admin.token),
            &json!({"email": " Bob@Example.com ", "password": PASSWORD}),
        )
        .await;
    assert_eq!(res.status.as_u16(), 201, "{}", res.text());
    assert_security_headers(&res, "create");
    let bob = res.json();
    assert_user_public(&bob);
    assert_eq!(bob["email"], "bob@example.com");
    assert_eq!(bob["status"], "approved");
    assert_eq!(bob["is_admin"], false);
    assert_eq!(bob["approved_by"], admin.id);
    assert_eq!(bob["approved_at"], bob["created_at"]);
    assert!(!app.token("bob@example.com", PASSWORD).await.is_empty());

    // Asked for: a pending admin (null fields mean the defaults).
    let carol = app
        .post_json(
            "/api/auth/users",
            Some(&admin.token),
            &json!({"email": "carol@example.com", "password": PASSWORD,
                    "is_admin": true, "status": "pending"}),
        )
        .await;
    assert_eq!(carol.status.as_u16(), 201, "{}", carol.text());
    let carol = carol.json();
    assert_eq!(
        (carol["is_admin"].clone(), carol["status"].clone()),
        (json!(true), json!("pending"))
    );
    assert_eq!(carol["approved_at"], Value::Null);
    let dave = app
        .post_json(
            "/api/auth/users",
            Some(&admin.token),
            &json!({"email": "dave@example.com", "password": PASSWORD,
                    "is_admin": null, "status": null}),
        )
        .await;
    assert_eq!(dave.json()["status"], "approved", "{}", dave.text());
    assert_eq!(app.users(&admin).await.len(), 4);

    let audit = app
        .get("/api/auth/audit?action=user_created", Some(&admin.token))
        .await;
    assert_eq!(audit.header("X-Total-Count"), Some("3"));
    assert_eq!(audit.json()[0]["actor_id"], admin.id);
    assert_eq!(audit.json()[0]["target_id"], dave.json()["id"]);
}

pub async fn creating_a_user_refuses_bad_input_and_taken_emails_and_changes_nothing(
    new_store: &NewStore,
) {
    let app = spawn_app(new_store()).await;
    let admin = app.admin().await;
    app.register_ok("bob@example.com").await;
    let cases = [
        (
            json!({"email": "BOB@example.com", "password": PASSWORD}),
            409,
            "email_taken",
        ),
        (
            json!({"email": "new@example.com", "password": "short"}),
            422,
            "validation_error",
        ),
        (
            json!({"email": "new@example.com", "password": "password123"}),
            422,
            "weak_password",
        ),
        (
            json!({"email": "not-an-email", "password": PASSWORD}),
            422,
            "validation_error",
        ),
        (
            json!({"email": "new@example.com", "password": PASSWORD, "status": "active"}),
            422,
            "validation_error",
        ),
        (
            json!({"email": "new@example.com", "password": PASSWORD, "is_admin": "yes"}),
            422,
            "validation_error",
        ),
        (
            json!({"email": "new@example.com", "password": PASSWORD, "role": "admin"}),
            422,
            "validation_error",
        ),
        (json!({"email": "new@example.com"}), 422, "validation_error"),
    ];
    for (body, status, code) in cases {
        let res = app
            .post_json("/api/auth/users", Some(&admin.token), &body)
            .await;
        crate::testing::assert_problem(&res, status, code, &body.to_string());
    }
    assert_eq!(app.users(&admin).await.len(), 2);
    let created = app
        .get("/api/auth/audit?action=user_created", Some(&admin.token))
        .await;
    assert_eq!(created.header("X-Total-Count"), Some("0"));
}

// ---- PUT /users/{id} ---------------------------------------------------------------------

pub async fn approving_records_when_and_by_which_admin_once(new_store: &NewStore) {
    let app = spawn_app(new_store()).await;
    let admin = app.admin().await;
    let bob = app.register_ok("bob@example.com").await;
    let registered = app.user(&admin, bob).await;

    let res = app
        .put_json(
            &format!("/api/auth/users/{bob}"),
            Some(&admin.token),
            &json!({"status": "approved"}),
        )
        .await;

    assert_eq!(res.status.as_u16(), 200, "{}", res.text());
    assert_security_headers(&res, "approve");
    let approved = res.json();
    assert_user_public(&approved);
    assert_eq!(approved["status"], "approved");
    assert_eq!(approved["approved_by"], admin.id);
    assert!(assert_utc_time(&approved["approved_at"]) >= assert_utc_time(&approved["created_at"]));
    assert_eq!(approved["created_at"], registered["created_at"]);
    assert_eq!(approved["is_admin"], false);
    assert_eq!(app.user(&admin, bob).await, approved, "stored as answered");
    assert!(!app.token("bob@example.com", PASSWORD).await.is_empty());

    // Disabled and approved again, by another admin: the first approval stays on record.
    let carol = app.second_admin(&admin, "carol@example.com").await;
    app.update_ok(&admin, bob, &json!({"status": "disabled"}))
        .await;
    let again = app
        .update_ok(&carol, bob, &json!({"status": "approved"}))
        .await;
    assert_eq!(again["approved_at"], approved["approved_at"]);
    assert_eq!(again["approved_by"], admin.id);
}

pub async fn an_admin_changes_email_admin_flag_and_status(new_store: &NewStore) {
    let app = spawn_app(new_store()).await;
    let admin = app.admin().await;
    let bob = app.approved_user(&admin, "bob@example.com").await;

    let changed = app
        .update_ok(
            &admin,
            bob.id,
            &json!({"email": "  Robert@Example.com ", "is_admin": true}),
        )
        .await;

    assert_user_public(&changed);
    assert_eq!(changed["id"], bob.id);
    assert_eq!(changed["email"], "robert@example.com");
    assert_eq!(changed["is_admin"], true);
    assert_eq!(changed["status"], "approved");
    // The old address no longer logs in; the new one does, and brings admin rights.
    let old = app.login_form("bob@example.com", PASSWORD).await;
    assert_error(
        &old,
        401,
        "invalid_credentials",
        "Incorrect email or password",
        "old email",
    );
    let token = app.token("robert@example.com", PASSWORD).await;
    assert_eq!(app.get("/api/auth/users", Some(&token)).await.status, 200);
    // bob's existing token follows the change at once as well.
    assert_eq!(
        app.get("/api/auth/users", Some(&bob.token)).await.status,
        200
    );
    // The freed address can be registered again.
    app.register_ok("bob@example.com").await;

    let disabled = app
        .update_ok(&admin, bob.id, &json!({"status": "disabled"}))
        .await;
    assert_eq!(disabled["status"], "disabled");
    let pending = app
        .update_ok(&admin, bob.id, &json!({"status": "pending"}))
        .await;
    assert_eq!(pending["status"], "pending");
}

pub async fn an_update_without_changes_returns_the_user_unchanged(new_store: &NewStore) {
    let app = spawn_app(new_store()).await;
    let admin = app.admin().await;
    let bob = app.register_ok("bob@example.com").await;
    let before = app.user(&admin, bob).await;

    for body in [
        json!({}),
        json!({"email": null, "is_admin": null, "status": null}),
        json!({"email": "BOB@example.com"}),
        json!({"is_admin": false, "status": "pending"}),
    ] {
        let after = app.update_ok(&admin, bob, &body).await;
        assert_eq!(after, before, "{body}");
    }
    assert_eq!(app.user(&admin, bob).await, before);
}

pub async fn changing_an_email_to_a_taken_one_is_a_conflict(new_store: &NewStore) {
    let app = spawn_app(new_store()).await;
    let admin = app.admin().await;
    let bob = app.register_ok("bob@example.com").await;
    app.register_ok("carol@example.com").await;
    let before = app.users(&admin).await;

    for taken in [
        "carol@example.com",
        "CAROL@Example.com",
        " carol@example.com ",
        ADMIN_EMAIL,
    ] {
        let res = app
            .put_json(
                &format!("/api/auth/users/{bob}"),
                Some(&admin.token),
                &json!({"email": taken, "status": "approved"}),
            )
            .await;
        assert_error(&res, 409, "email_taken", "Email already registered", taken);
    }
    assert_eq!(
        app.users(&admin).await,
        before,
        "nothing changed, not even the status"
    );
}

// ---- DELETE /users/{id} ------------------------------------------------------------------

pub async fn deleting_a_user_answers_204_and_removes_them(new_store: &NewStore) {
    let app = spawn_app(new_store()).await;
    let admin = app.admin().await;
    let bob = app.register_ok("bob@example.com").await;
    let carol = app.register_ok("carol@example.com").await;

    let res = app
        .delete(&format!("/api/auth/users/{bob}"), Some(&admin.token))
        .await;

    assert_eq!(res.status.as_u16(), 204, "{}", res.text());
    assert!(res.body.is_empty(), "a 204 has no body");
    assert_security_headers(&res, "delete");
    assert_eq!(ids(&json!(app.users(&admin).await)), vec![carol, admin.id]);
    let count = app
        .get("/api/auth/users/pending/count", Some(&admin.token))
        .await;
    assert_eq!(count.json(), json!({"count": 1}));
    let login = app.login_form("bob@example.com", PASSWORD).await;
    assert_error(
        &login,
        401,
        "invalid_credentials",
        "Incorrect email or password",
        "gone",
    );

    let again = app
        .delete(&format!("/api/auth/users/{bob}"), Some(&admin.token))
        .await;
    assert_error(
        &again,
        404,
        "user_not_found",
        "User not found",
        "deleted twice",
    );

    // Ids are never reused.
    let next = app.register_ok("bob@example.com").await;
    assert!(next > carol);
}

pub async fn deleting_the_approving_admin_clears_approved_by(new_store: &NewStore) {
    let app = spawn_app(new_store()).await;
    let admin = app.admin().await;
    let carol = app.second_admin(&admin, "carol@example.com").await;
    let bob = app.approved_user(&admin, "bob@example.com").await;

    let res = app
        .delete(&format!("/api/auth/users/{}", admin.id), Some(&carol.token))
        .await;

    assert_eq!(res.status.as_u16(), 204, "{}", res.text());
    let bob_now = app.user(&carol, bob.id).await;
    assert_eq!(bob_now["approved_by"], Value::Null);
    assert_eq!(bob_now["status"], "approved");
    assert_utc_time(&bob_now["approved_at"]);
}

// ---- POST /users/{id}/reset-password ------------------------------------------------------

pub async fn a_password_reset_revokes_old_tokens_and_the_old_password(new_store: &NewStore) {
    let app = spawn_app(new_store()).await;
    let admin = app.admin().await;
    let bob = app.approved_user(&admin, "bob@example.com").await;
    let second_token = app.token("bob@example.com", PASSWORD).await;
    let before = app.user(&admin, bob.id).await;

    let res = app
        .post_json(
            &format!("/api/auth/users/{}/reset-password", bob.id),
            Some(&admin.token),
            &json!({"password": "a brand new password"}),
        )
        .await;

    assert_eq!(res.status.as_u16(), 200, "{}", res.text());
    assert_security_headers(&res, "reset");
    assert_eq!(
        res.json(),
        json!({"message": "Password reset successfully"})
    );
    for token in [&bob.token, &second_token] {
        let me = app.get("/api/auth/me", Some(token)).await;
        assert_error(
            &me,
            401,
            "not_authenticated",
            NOT_VALIDATED,
            "a token from before",
        );
    }
    let old = app.login_form("bob@example.com", PASSWORD).await;
    assert_error(
        &old,
        401,
        "invalid_credentials",
        "Incorrect email or password",
        "old password",
    );
    let token = app.token("bob@example.com", "a brand new password").await;
    let me = app.get("/api/auth/me", Some(&token)).await;
    assert_eq!(me.status.as_u16(), 200, "{}", me.text());
    assert_eq!(
        app.user(&admin, bob.id).await,
        before,
        "nothing else changed"
    );
    // The admin's own token is untouched.
    assert_eq!(
        app.get("/api/auth/me", Some(&admin.token)).await.status,
        200
    );
}

pub async fn a_pending_users_password_can_be_reset_and_they_stay_pending(new_store: &NewStore) {
    let app = spawn_app(new_store()).await;
    let admin = app.admin().await;
    let bob = app.register_ok("bob@example.com").await;

    let res = app
        .post_json(
            &format!("/api/auth/users/{bob}/reset-password"),
            Some(&admin.token),
            &json!({"password": "a brand new password"}),
        )
        .await;

    assert_eq!(res.status.as_u16(), 200, "{}", res.text());
    let login = app
        .login_form("bob@example.com", "a brand new password")
        .await;
    assert_error(
        &login,
        403,
        "account_pending",
        "Account pending approval",
        "still pending",
    );
}

pub async fn an_admin_resetting_their_own_password_revokes_their_own_tokens(new_store: &NewStore) {
    let app = spawn_app(new_store()).await;
    let admin = app.admin().await;

    let res = app
        .post_json(
            &format!("/api/auth/users/{}/reset-password", admin.id),
            Some(&admin.token),
            &json!({"password": "a brand new password"}),
        )
        .await;

    assert_eq!(res.status.as_u16(), 200, "{}", res.text());
    let me = app.get("/api/auth/me", Some(&admin.token)).await;
    assert_error(
        &me,
        401,
        "not_authenticated",
        NOT_VALIDATED,
        "own old token",
    );
    app.token(ADMIN_EMAIL, "a brand new password").await;
}

// ---- refusals -----------------------------------------------------------------------------

pub async fn unknown_user_ids_are_not_found(new_store: &NewStore) {
    let app = spawn_app(new_store()).await;
    let admin = app.admin().await;
    let before = app.users(&admin).await;

    for id in [2_i64, 999, i64::MAX] {
        let put = app
            .put_json(
                &format!("/api/auth/users/{id}"),
                Some(&admin.token),
                &json!({"status": "approved"}),
            )
            .await;
        assert_error(
            &put,
            404,
            "user_not_found",
            "User not found",
            &format!("PUT {id}"),
        );
        let delete = app
            .delete(&format!("/api/auth/users/{id}"), Some(&admin.token))
            .await;
        assert_error(
            &delete,
            404,
            "user_not_found",
            "User not found",
            &format!("DELETE {id}"),
        );
        let reset = app
            .post_json(
                &format!("/api/auth/users/{id}/reset-password"),
                Some(&admin.token),
                &json!({"password": "a brand new password"}),
            )
            .await;
        assert_error(
            &reset,
            404,
            "user_not_found",
            "User not found",
            &format!("reset {id}"),
        );
    }
    assert_eq!(app.users(&admin).await, before);
}

pub async fn a_non_admin_is_refused_on_every_admin_route(new_store: &NewStore) {
    let app = spawn_app(new_store()).await;
    let admin = app.admin().await;
    let bob = app.approved_user(&admin, "bob@example.com").await;
    let carol = app.register_ok("carol@example.com").await;
    let before = app.users(&admin).await;

    for target in [carol, bob.id, admin.id] {
        for (what, req) in admin_requests(target) {
            let res = app.send(bearer(req, &bob.token)).await;
            assert_error(&res, 403, "admin_required", ADMIN_REQUIRED, &what);
        }
    }
    assert_eq!(app.users(&admin).await, before, "nothing changed");
    assert_eq!(app.get("/api/auth/me", Some(&bob.token)).await.status, 200);
}

pub async fn every_admin_route_needs_a_valid_token(new_store: &NewStore) {
    let app = spawn_app(new_store()).await;
    let admin = app.admin().await;
    let carol = app.register_ok("carol@example.com").await;
    let before = app.users(&admin).await;

    for (what, req) in admin_requests(carol) {
        let res = app.send(req).await;
        assert_error(
            &res,
            401,
            "not_authenticated",
            NOT_VALIDATED,
            &format!("{what}, no token"),
        );
    }
    for (what, req) in admin_requests(carol) {
        let res = app.send(bearer(req, "garbage")).await;
        assert_error(
            &res,
            401,
            "not_authenticated",
            NOT_VALIDATED,
            &format!("{what}, garbage"),
        );
    }
    assert_eq!(app.users(&admin).await, before, "nothing changed");
}

pub async fn the_last_admin_cannot_remove_disable_or_delete_themselves(new_store: &NewStore) {
    let app = spawn_app(new_store()).await;
    let admin = app.admin().await;
    app.approved_user(&admin, "bob@example.com").await;
    let before = app.users(&admin).await;
    let path = format!("/api/auth/users/{}", admin.id);

    let cases = [
        (json!({"is_admin": false}), "Cannot remove last admin"),
        (
            json!({"status": "disabled"}),
            "Cannot disable last active admin",
        ),
        (
            json!({"status": "pending"}),
            "Cannot disable last active admin",
        ),
        (
            json!({"is_admin": false, "status": "disabled"}),
            "Cannot remove last admin",
        ),
        (
            json!({"email": "new@example.com", "is_admin": false}),
            "Cannot remove last admin",
        ),
    ];
    for (body, message) in cases {
        let res = app.put_json(&path, Some(&admin.token), &body).await;
        assert_error(&res, 400, "last_admin", message, &body.to_string());
    }
    let res = app.delete(&path, Some(&admin.token)).await;
    assert_error(
        &res,
        400,
        "last_admin",
        "Cannot delete last admin",
        "DELETE self",
    );

    assert_eq!(app.users(&admin).await, before, "nothing changed");
    assert_eq!(
        app.get("/api/auth/me", Some(&admin.token)).await.status,
        200
    );
}

pub async fn the_last_admin_rule_holds_whoever_acts_and_only_for_the_last_one(
    new_store: &NewStore,
) {
    let app = spawn_app(new_store()).await;
    let admin = app.admin().await;
    let carol = app.second_admin(&admin, "carol@example.com").await;
    let dave = app.second_admin(&admin, "dave@example.com").await;

    // Three active admins: demoting one and disabling another is fine.
    let demoted = app
        .update_ok(&admin, carol.id, &json!({"is_admin": false}))
        .await;
    assert_eq!(demoted["is_admin"], false);
    let disabled = app
        .update_ok(&dave, admin.id, &json!({"status": "disabled"}))
        .await;
    assert_eq!(disabled["status"], "disabled");

    // Now dave is the only active admin; a disabled admin does not count.
    let path = format!("/api/auth/users/{}", dave.id);
    let res = app
        .put_json(&path, Some(&dave.token), &json!({"is_admin": false}))
        .await;
    assert_error(
        &res,
        400,
        "last_admin",
        "Cannot remove last admin",
        "demote",
    );
    let res = app
        .put_json(&path, Some(&dave.token), &json!({"status": "pending"}))
        .await;
    assert_error(
        &res,
        400,
        "last_admin",
        "Cannot disable last active admin",
        "pending",
    );
    let res = app.delete(&path, Some(&dave.token)).await;
    assert_error(
        &res,
        400,
        "last_admin",
        "Cannot delete last admin",
        "delete",
    );

    // Changes that take no active admin away are fine: deleting the disabled admin.
    let res = app
        .delete(&format!("/api/auth/users/{}", admin.id), Some(&dave.token))
        .await;
    assert_eq!(res.status.as_u16(), 204, "{}", res.text());
    assert_eq!(
        app.get("/api/auth/users", Some(&dave.token)).await.status,
        200
    );
}

pub async fn a_demoted_admin_loses_admin_routes_on_the_next_request(new_store: &NewStore) {
    let app = spawn_app(new_store()).await;
    let admin = app.admin().await;
    let carol = app.second_admin(&admin, "carol@example.com").await;
    let bob = app.register_ok("bob@example.com").await;
    for (what, req) in admin_requests(bob).into_iter().take(3) {
        let res = app.send(bearer(req, &carol.token)).await;
        assert_eq!(res.status.as_u16(), 200, "{what} before: {}", res.text());
    }

    app.update_ok(&admin, carol.id, &json!({"is_admin": false}))
        .await;

    let before = app.users(&admin).await;
    for (what, req) in admin_requests(bob) {
        let res = app.send(bearer(req, &carol.token)).await;
        assert_error(
            &res,
            403,
            "admin_required",
            ADMIN_REQUIRED,
            &format!("{what} after"),
        );
    }
    assert_eq!(app.users(&admin).await, before, "nothing changed");
    // Still an approved user, so /me keeps working.
    let me = app.get("/api/auth/me", Some(&carol.token)).await;
    assert_eq!(me.status.as_u16(), 200, "{}", me.text());
    assert_eq!(me.json()["is_admin"], false);
}

pub async fn a_disabled_admins_token_is_refused_on_admin_routes(new_store: &NewStore) {
    let app = spawn_app(new_store()).await;
    let admin = app.admin().await;
    let carol = app.second_admin(&admin, "carol@example.com").await;
    let bob = app.register_ok("bob@example.com").await;

    app.update_ok(&admin, carol.id, &json!({"status": "disabled"}))
        .await;

    let before = app.users(&admin).await;
    for (what, req) in admin_requests(bob) {
        let res = app.send(bearer(req, &carol.token)).await;
        assert_error(&res, 401, "not_authenticated", NOT_VALIDATED, &what);
    }
    assert_eq!(app.users(&admin).await, before, "nothing changed");
}

pub async fn a_promoted_user_gains_admin_routes_on_the_next_request(new_store: &NewStore) {
    let app = spawn_app(new_store()).await;
    let admin = app.admin().await;
    let bob = app.approved_user(&admin, "bob@example.com").await;
    let res = app.get("/api/auth/users", Some(&bob.token)).await;
    assert_error(&res, 403, "admin_required", ADMIN_REQUIRED, "before");

    app.update_ok(&admin, bob.id, &json!({"is_admin": true}))
        .await;

    let res = app.get("/api/auth/users", Some(&bob.token)).await;
    assert_eq!(res.status.as_u16(), 200, "{}", res.text());
}
