//! Webhook endpoints (API.md, "Notifications: webhooks and mail"): the admin's routes, the
//! checks on `url` and `events`, the secret shown only at creation and rotation, the
//! deliveries log, and the events a change of a user writes into it. Nothing is delivered
//! here (the dispatcher runs in the binary): deliveries stay `pending`.

use serde_json::{json, Value};

use crate::testing::{
    assert_problem, assert_utc_time, spawn_app, spawn_app_with, AppOptions, NewStore, Resp,
    Session, TestApp,
};

const WEBHOOKS: &str = "/api/auth/webhooks";

/// A public address given literally, so that no test depends on DNS. Nothing is ever
/// sent to it (the test app runs no dispatcher).
const PUBLIC_URL: &str = "https://93.184.215.14/gatehouse";

/// The keys of a webhook endpoint as listed and read (no `secret`).
const WEBHOOK_KEYS: [&str; 6] = ["active", "created_at", "description", "events", "id", "url"];

/// The keys of a deliveries log entry.
const DELIVERY_KEYS: [&str; 10] = [
    "attempts",
    "created_at",
    "event_id",
    "event_type",
    "id",
    "last_attempt_at",
    "last_error",
    "last_status_code",
    "next_attempt_at",
    "status",
];

fn keys(value: &Value) -> Vec<String> {
    let mut keys: Vec<String> = value
        .as_object()
        .unwrap_or_else(|| panic!("{value} is not an object"))
        .keys()
        .cloned()
        .collect();
    keys.sort();
    keys
}

/// Checks an endpoint as listed or read: exactly its keys, with their types.
fn assert_webhook(webhook: &Value) {
    assert_eq!(keys(webhook), WEBHOOK_KEYS, "keys of {webhook}");
    assert!(webhook["id"].as_i64().is_some_and(|id| id > 0), "{webhook}");
    assert!(webhook["url"].is_string(), "{webhook}");
    assert!(
        webhook["events"]
            .as_array()
            .is_some_and(|e| !e.is_empty() && e.iter().all(Value::is_string)),
        "{webhook}"
    );
    assert!(
        webhook["description"].is_null() || webhook["description"].is_string(),
        "{webhook}"
    );
    assert!(webhook["active"].is_boolean(), "{webhook}");
    assert_utc_time(&webhook["created_at"]);
}

/// Checks a secret's form: `whsec_` and the base64 of 32 bytes (44 characters, padded).
fn assert_secret(secret: &Value) -> String {
    let secret = secret
        .as_str()
        .unwrap_or_else(|| panic!("secret {secret} is not a string"));
    let encoded = secret
        .strip_prefix("whsec_")
        .unwrap_or_else(|| panic!("{secret} does not start with whsec_"));
    assert_eq!(encoded.len(), 44, "{secret}");
    assert!(
        encoded.ends_with('=') && !encoded.ends_with("=="),
        "{secret}"
    );
    assert!(
        encoded[..43]
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/'),
        "{secret}"
    );
    secret.to_owned()
}

/// Creates an endpoint as `admin`; returns the answer (with `secret`).
async fn create(app: &TestApp, admin: &Session, body: Value) -> Value {
    let res = app.post_json(WEBHOOKS, Some(&admin.token), &body).await;
    assert_eq!(res.status.as_u16(), 201, "create {body}: {}", res.text());
    let created = res.json();
    let mut public = created.clone();
    assert_secret(&public["secret"]);
    if let Some(object) = public.as_object_mut() {
        object.remove("secret");
    }
    assert_webhook(&public);
    created
}

fn path(id: &Value) -> String {
    format!("{WEBHOOKS}/{id}")
}

/// Every endpoint, as the admin's `GET /webhooks` lists them.
async fn list(app: &TestApp, admin: &Session) -> Vec<Value> {
    let res = app.get(WEBHOOKS, Some(&admin.token)).await;
    assert_eq!(res.status.as_u16(), 200, "list: {}", res.text());
    let items = res.json().as_array().expect("a JSON array").clone();
    assert_eq!(
        res.header("x-total-count"),
        Some(items.len().to_string().as_str()),
        "an unpaged listing's total"
    );
    items.iter().for_each(assert_webhook);
    items
}

/// The deliveries log of endpoint `id`, and its `X-Total-Count`.
async fn deliveries(app: &TestApp, admin: &Session, id: &Value) -> Vec<Value> {
    let res = app
        .get(&format!("{}/deliveries", path(id)), Some(&admin.token))
        .await;
    assert_eq!(
        res.status.as_u16(),
        200,
        "deliveries of {id}: {}",
        res.text()
    );
    let items = res.json().as_array().expect("a JSON array").clone();
    assert_eq!(
        res.header("x-total-count"),
        Some(items.len().to_string().as_str())
    );
    for delivery in &items {
        assert_eq!(keys(delivery), DELIVERY_KEYS, "keys of {delivery}");
        assert_utc_time(&delivery["created_at"]);
    }
    items
}

/// Checks a 422 `validation_error` naming `field` (and only it).
fn assert_field_error(res: &Resp, field: &str, context: &str) {
    let body = assert_problem(res, 422, "validation_error", context);
    let fields: Vec<&str> = body["errors"]
        .as_array()
        .unwrap_or_else(|| panic!("{context}: errors in {body}"))
        .iter()
        .filter_map(|e| e["field"].as_str())
        .collect();
    assert_eq!(fields, [field], "{context}: {body}");
}

async fn audit_entries(app: &TestApp, admin: &Session, action: &str) -> Vec<Value> {
    let res = app
        .get(
            &format!("/api/auth/audit?action={action}"),
            Some(&admin.token),
        )
        .await;
    assert_eq!(res.status.as_u16(), 200, "audit: {}", res.text());
    res.json().as_array().expect("a JSON array").clone()
}

// ---- POST /webhooks ----------------------------------------------------------------------

pub async fn an_admin_adds_a_webhook_and_sees_its_secret_only_then(new_store: &NewStore) {
    let app = spawn_app(new_store()).await;
    let admin = app.admin().await;

    let created = create(
        &app,
        &admin,
        json!({"url": PUBLIC_URL, "events": ["user.approved", "user.rejected"],
               "description": "  the CRM  "}),
    )
    .await;
    assert_eq!(created["url"], PUBLIC_URL);
    assert_eq!(created["events"], json!(["user.approved", "user.rejected"]));
    assert_eq!(
        created["description"], "the CRM",
        "trimmed as any free text"
    );
    assert_eq!(created["active"], true);
    let secret = assert_secret(&created["secret"]);

    // Read and listed, never with the secret.
    let read = app.get(&path(&created["id"]), Some(&admin.token)).await;
    assert_eq!(read.status.as_u16(), 200, "{}", read.text());
    assert_webhook(&read.json());
    assert!(!read.text().contains(&secret));
    let listed = list(&app, &admin).await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["id"], created["id"]);
    let changed = app
        .put_json(
            &path(&created["id"]),
            Some(&admin.token),
            &json!({"active": false}),
        )
        .await;
    assert_eq!(changed.status.as_u16(), 200, "{}", changed.text());
    assert_webhook(&changed.json());
    assert!(!changed.text().contains(&secret));

    // Every event, without a description; each endpoint has a secret of its own.
    let all = create(&app, &admin, json!({"url": PUBLIC_URL, "events": ["*"]})).await;
    assert_eq!(all["events"], json!(["*"]));
    assert!(all["description"].is_null());
    assert_ne!(all["secret"], created["secret"]);
    assert_ne!(all["id"], created["id"]);

    // The address is stored normalised; a repeated event type is taken once.
    let normalised = create(
        &app,
        &admin,
        json!({"url": "HTTPS://93.184.215.14:443", "events": ["user.deleted", "user.deleted"]}),
    )
    .await;
    assert_eq!(normalised["url"], "https://93.184.215.14/");
    assert_eq!(normalised["events"], json!(["user.deleted"]));

    // The secret is in no audit entry.
    for action in ["webhook_created", "webhook_updated"] {
        let entries = audit_entries(&app, &admin, action).await;
        assert!(!entries.is_empty(), "{action} is audited");
        assert!(!Value::Array(entries).to_string().contains("whsec_"));
    }
}

// ---- GET, PUT, DELETE /webhooks/{id}, GET /webhooks ----------------------------------------

pub async fn webhooks_are_listed_read_changed_and_deleted(new_store: &NewStore) {
    let app = spawn_app(new_store()).await;
    let admin = app.admin().await;
    let first = create(&app, &admin, json!({"url": PUBLIC_URL, "events": ["*"]})).await;
    let second = create(
        &app,
        &admin,
        json!({"url": "http://93.184.215.14:8080/two", "events": ["user.created"],
               "description": "two"}),
    )
    .await;
    let third = create(&app, &admin, json!({"url": PUBLIC_URL, "events": ["*"]})).await;

    // Oldest first, paged like the other admin listings.
    let ids: Vec<Value> = list(&app, &admin)
        .await
        .iter()
        .map(|w| w["id"].clone())
        .collect();
    assert_eq!(
        ids,
        [
            first["id"].clone(),
            second["id"].clone(),
            third["id"].clone()
        ]
    );
    let page = app
        .get(&format!("{WEBHOOKS}?limit=1&offset=1"), Some(&admin.token))
        .await;
    assert_eq!(page.status.as_u16(), 200, "{}", page.text());
    assert_eq!(page.header("x-total-count"), Some("3"));
    let items = page.json();
    assert_eq!(items.as_array().map(Vec::len), Some(1));
    assert_eq!(items[0]["id"], second["id"]);
    let empty = app
        .get(&format!("{WEBHOOKS}?limit=0"), Some(&admin.token))
        .await;
    assert_eq!(empty.json(), json!([]));
    assert_eq!(empty.header("x-total-count"), Some("3"));
    for (query, field) in [
        ("limit=-1", "limit"),
        ("offset=x", "offset"),
        ("status=active", "status"),
    ] {
        let res = app
            .get(&format!("{WEBHOOKS}?{query}"), Some(&admin.token))
            .await;
        assert_field_error(&res, field, query);
    }

    // Read one.
    let read = app.get(&path(&second["id"]), Some(&admin.token)).await;
    assert_eq!(read.status.as_u16(), 200, "{}", read.text());
    let mut expected = second.clone();
    if let Some(object) = expected.as_object_mut() {
        object.remove("secret");
    }
    assert_eq!(read.json(), expected);

    // Change every field, then a few; an absent field is left as it is.
    let changed = app
        .put_json(
            &path(&second["id"]),
            Some(&admin.token),
            &json!({"url": "https://93.184.215.14/changed", "events": ["user.approved"],
                    "active": false, "description": "changed"}),
        )
        .await;
    assert_eq!(changed.status.as_u16(), 200, "{}", changed.text());
    let changed = changed.json();
    assert_eq!(changed["url"], "https://93.184.215.14/changed");
    assert_eq!(changed["events"], json!(["user.approved"]));
    assert_eq!(changed["active"], false);
    assert_eq!(changed["description"], "changed");
    assert_eq!(changed["created_at"], second["created_at"]);
    let cleared = app
        .put_json(
            &path(&second["id"]),
            Some(&admin.token),
            &json!({"description": null, "active": true}),
        )
        .await;
    assert_eq!(cleared.status.as_u16(), 200, "{}", cleared.text());
    let cleared = cleared.json();
    assert!(cleared["description"].is_null(), "null clears: {cleared}");
    assert_eq!(cleared["active"], true);
    assert_eq!(cleared["url"], "https://93.184.215.14/changed");
    assert_eq!(cleared["events"], json!(["user.approved"]));
    let unchanged = app
        .put_json(&path(&second["id"]), Some(&admin.token), &json!({}))
        .await;
    assert_eq!(unchanged.status.as_u16(), 200, "{}", unchanged.text());
    assert_eq!(unchanged.json(), cleared);
    assert_eq!(
        app.get(&path(&second["id"]), Some(&admin.token))
            .await
            .json(),
        cleared,
        "the change is stored"
    );

    // Delete: gone from the listing, then unknown.
    let deleted = app.delete(&path(&second["id"]), Some(&admin.token)).await;
    assert_eq!(deleted.status.as_u16(), 204, "{}", deleted.text());
    assert!(deleted.body.is_empty());
    let ids: Vec<Value> = list(&app, &admin)
        .await
        .iter()
        .map(|w| w["id"].clone())
        .collect();
    assert_eq!(ids, [first["id"].clone(), third["id"].clone()]);
    let again = app.delete(&path(&second["id"]), Some(&admin.token)).await;
    assert_problem(&again, 404, "webhook_not_found", "deleted twice");
    let read = app.get(&path(&second["id"]), Some(&admin.token)).await;
    assert_problem(&read, 404, "webhook_not_found", "read after delete");
}

// ---- The checks on `events`, `description` and the body -----------------------------------

pub async fn webhook_events_and_fields_are_checked(new_store: &NewStore) {
    let app = spawn_app(new_store()).await;
    let admin = app.admin().await;
    for (body, field) in [
        (json!({"url": PUBLIC_URL, "events": []}), "events"),
        (
            json!({"url": PUBLIC_URL, "events": ["user.nope"]}),
            "events",
        ),
        (
            json!({"url": PUBLIC_URL, "events": ["User.Approved"]}),
            "events",
        ),
        (
            json!({"url": PUBLIC_URL, "events": ["*", "user.approved"]}),
            "events",
        ),
        (json!({"url": PUBLIC_URL, "events": ["*", "*"]}), "events"),
        (json!({"url": PUBLIC_URL, "events": "*"}), "events"),
        (json!({"url": PUBLIC_URL, "events": [1]}), "events[0]"),
        (json!({"url": PUBLIC_URL, "events": null}), "events"),
        (json!({"url": PUBLIC_URL}), "events"),
        (json!({"events": ["*"]}), "url"),
        (json!({"url": 7, "events": ["*"]}), "url"),
        (
            json!({"url": PUBLIC_URL, "events": ["*"], "secret": "whsec_x"}),
            "secret",
        ),
        (
            json!({"url": PUBLIC_URL, "events": ["*"], "description": "a\tb"}),
            "description",
        ),
        (
            json!({"url": PUBLIC_URL, "events": ["*"], "description": "x".repeat(501)}),
            "description",
        ),
    ] {
        let res = app.post_json(WEBHOOKS, Some(&admin.token), &body).await;
        assert_field_error(&res, field, &format!("POST {body}"));
    }
    // Several bad fields are reported together.
    let res = app
        .post_json(
            WEBHOOKS,
            Some(&admin.token),
            &json!({"url": PUBLIC_URL, "events": [], "description": "a\u{0}b"}),
        )
        .await;
    let body = assert_problem(&res, 422, "validation_error", "two bad fields");
    assert_eq!(body["errors"].as_array().map(Vec::len), Some(2), "{body}");
    assert!(list(&app, &admin).await.is_empty(), "nothing was stored");

    let created = create(&app, &admin, json!({"url": PUBLIC_URL, "events": ["*"]})).await;
    for (body, field) in [
        (json!({"events": []}), "events"),
        (json!({"events": ["user.nope"]}), "events"),
        (json!({"events": ["*", "user.deleted"]}), "events"),
        (json!({"active": "yes"}), "active"),
        (json!({"description": "x".repeat(501)}), "description"),
        (json!({"secret": "whsec_x"}), "secret"),
    ] {
        let res = app
            .put_json(&path(&created["id"]), Some(&admin.token), &body)
            .await;
        assert_field_error(&res, field, &format!("PUT {body}"));
    }
    let read = app.get(&path(&created["id"]), Some(&admin.token)).await;
    assert_eq!(read.json()["events"], json!(["*"]), "unchanged");
    assert_eq!(read.json()["active"], true, "unchanged");
}

// ---- Where deliveries may go -----------------------------------------------------------------

/// Addresses refused whatever the server allows: not http(s), credentials, no host, not
/// a URL.
const NEVER: [&str; 7] = [
    "ftp://93.184.215.14/x",
    "file:///etc/passwd",
    "https://user:secret@93.184.215.14/x",
    "https://user@93.184.215.14/x",
    "http://",
    "not a url",
    "",
];

/// Addresses refused unless private ones are allowed.
const PRIVATE: [&str; 10] = [
    "http://127.0.0.1/x",
    "http://localhost/x",
    "http://hooks.localhost/x",
    "http://[::1]/",
    "http://10.0.0.1/",
    "http://192.168.1.10:8080/hook",
    "http://172.16.0.1/",
    "http://169.254.169.254/",
    "http://2130706433/",
    "http://[::ffff:127.0.0.1]/",
];

pub async fn webhook_urls_must_be_public_http_without_credentials(new_store: &NewStore) {
    let app = spawn_app(new_store()).await;
    let admin = app.admin().await;
    for url in NEVER.iter().chain(PRIVATE.iter()) {
        let res = app
            .post_json(
                WEBHOOKS,
                Some(&admin.token),
                &json!({"url": url, "events": ["*"]}),
            )
            .await;
        assert_problem(&res, 422, "invalid_url", &format!("POST {url}"));
    }
    let long = format!("https://93.184.215.14/{}", "a".repeat(2048));
    let res = app
        .post_json(
            WEBHOOKS,
            Some(&admin.token),
            &json!({"url": long, "events": ["*"]}),
        )
        .await;
    assert_problem(&res, 422, "invalid_url", "a URL over 2048 bytes");
    // The detail says why.
    let res = app
        .post_json(
            WEBHOOKS,
            Some(&admin.token),
            &json!({"url": "http://10.0.0.1/", "events": ["*"]}),
        )
        .await;
    let body = assert_problem(&res, 422, "invalid_url", "private");
    let detail = body["detail"].as_str().unwrap_or_default();
    assert!(
        detail.contains("10.0.0.1") && detail.contains("private"),
        "{detail}"
    );
    assert!(list(&app, &admin).await.is_empty(), "nothing was stored");
    assert!(audit_entries(&app, &admin, "webhook_created")
        .await
        .is_empty());

    // A change to such an address is refused too, and changes nothing.
    let created = create(&app, &admin, json!({"url": PUBLIC_URL, "events": ["*"]})).await;
    for url in [
        "http://127.0.0.1/x",
        "ftp://93.184.215.14/",
        "https://a:b@93.184.215.14/",
    ] {
        let res = app
            .put_json(
                &path(&created["id"]),
                Some(&admin.token),
                &json!({"url": url, "active": false}),
            )
            .await;
        assert_problem(&res, 422, "invalid_url", &format!("PUT {url}"));
    }
    let read = app.get(&path(&created["id"]), Some(&admin.token)).await;
    assert_eq!(read.json()["url"], PUBLIC_URL);
    assert_eq!(read.json()["active"], true);
    assert!(audit_entries(&app, &admin, "webhook_updated")
        .await
        .is_empty());
}

pub async fn private_webhook_urls_are_allowed_when_the_server_says_so(new_store: &NewStore) {
    let mut options = AppOptions::new(new_store());
    options.webhook_allow_private = true;
    let app = spawn_app_with(options).await;
    let admin = app.admin().await;
    for url in PRIVATE {
        create(&app, &admin, json!({"url": url, "events": ["*"]})).await;
    }
    // Still http(s), with a host and without credentials.
    for url in NEVER {
        let res = app
            .post_json(
                WEBHOOKS,
                Some(&admin.token),
                &json!({"url": url, "events": ["*"]}),
            )
            .await;
        assert_problem(&res, 422, "invalid_url", &format!("POST {url}"));
    }
    assert_eq!(list(&app, &admin).await.len(), PRIVATE.len());
}

// ---- POST /webhooks/{id}/rotate-secret ---------------------------------------------------

pub async fn rotating_a_webhook_secret_gives_a_new_one(new_store: &NewStore) {
    let app = spawn_app(new_store()).await;
    let admin = app.admin().await;
    let created = create(&app, &admin, json!({"url": PUBLIC_URL, "events": ["*"]})).await;
    let res = app
        .post_json(
            &format!("{}/rotate-secret", path(&created["id"])),
            Some(&admin.token),
            &json!({}),
        )
        .await;
    assert_eq!(res.status.as_u16(), 200, "{}", res.text());
    let rotated = res.json();
    let secret = assert_secret(&rotated["secret"]);
    assert_ne!(rotated["secret"], created["secret"]);
    for key in WEBHOOK_KEYS {
        assert_eq!(rotated[key], created[key], "{key} is unchanged");
    }
    // Without a body too.
    let res = app
        .send(crate::testing::bearer(
            actix_web::test::TestRequest::post()
                .uri(&format!("{}/rotate-secret", path(&created["id"]))),
            &admin.token,
        ))
        .await;
    assert_eq!(res.status.as_u16(), 200, "{}", res.text());
    let again = assert_secret(&res.json()["secret"]);
    assert_ne!(again, secret);

    let entries = audit_entries(&app, &admin, "webhook_secret_rotated").await;
    assert_eq!(entries.len(), 2, "{entries:?}");
    assert_eq!(entries[0]["actor_id"], admin.id);
    assert!(!Value::Array(entries).to_string().contains("whsec_"));
}

// ---- POST /webhooks/{id}/test and the deliveries log ---------------------------------------

pub async fn a_test_event_is_queued_for_that_endpoint_alone(new_store: &NewStore) {
    let app = spawn_app(new_store()).await;
    let admin = app.admin().await;
    let tested = create(
        &app,
        &admin,
        json!({"url": PUBLIC_URL, "events": ["user.deleted"]}),
    )
    .await;
    let other = create(&app, &admin, json!({"url": PUBLIC_URL, "events": ["*"]})).await;
    assert!(deliveries(&app, &admin, &tested["id"]).await.is_empty());

    let res = app
        .send(crate::testing::bearer(
            actix_web::test::TestRequest::post().uri(&format!("{}/test", path(&tested["id"]))),
            &admin.token,
        ))
        .await;
    assert_eq!(res.status.as_u16(), 202, "{}", res.text());
    let body = res.json();
    assert_eq!(keys(&body), ["event_id"]);
    let event_id = body["event_id"]
        .as_str()
        .expect("event_id is text")
        .to_owned();
    assert!(!event_id.is_empty());

    let log = deliveries(&app, &admin, &tested["id"]).await;
    assert_eq!(log.len(), 1, "{log:?}");
    let delivery = &log[0];
    assert_eq!(delivery["event_id"], event_id.as_str());
    assert_eq!(delivery["event_type"], "webhook.test");
    assert_eq!(delivery["status"], "pending");
    assert_eq!(delivery["attempts"], 0);
    assert!(delivery["id"].as_i64().is_some_and(|id| id > 0));
    assert!(delivery["last_attempt_at"].is_null());
    assert!(delivery["last_status_code"].is_null());
    assert!(delivery["last_error"].is_null());
    assert_utc_time(&delivery["next_attempt_at"]);
    assert!(
        deliveries(&app, &admin, &other["id"]).await.is_empty(),
        "a test event goes to its endpoint alone"
    );

    // An endpoint turned off can be tested too.
    let off = app
        .put_json(
            &path(&other["id"]),
            Some(&admin.token),
            &json!({"active": false}),
        )
        .await;
    assert_eq!(off.status.as_u16(), 200);
    let res = app
        .post_json(
            &format!("{}/test", path(&other["id"])),
            Some(&admin.token),
            &json!({}),
        )
        .await;
    assert_eq!(res.status.as_u16(), 202, "{}", res.text());
    let log = deliveries(&app, &admin, &other["id"]).await;
    assert_eq!(log.len(), 1);
    assert_eq!(log[0]["event_type"], "webhook.test");
    assert_ne!(log[0]["event_id"], event_id.as_str(), "one event per test");
}

pub async fn user_changes_are_written_for_subscribed_active_endpoints_only(new_store: &NewStore) {
    let app = spawn_app(new_store()).await;
    let admin = app.admin().await;
    let approvals = create(
        &app,
        &admin,
        json!({"url": PUBLIC_URL, "events": ["user.approved"]}),
    )
    .await;
    let deletions = create(
        &app,
        &admin,
        json!({"url": PUBLIC_URL, "events": ["user.deleted"]}),
    )
    .await;
    let everything = create(&app, &admin, json!({"url": PUBLIC_URL, "events": ["*"]})).await;
    let off = create(&app, &admin, json!({"url": PUBLIC_URL, "events": ["*"]})).await;
    let res = app
        .put_json(
            &path(&off["id"]),
            Some(&admin.token),
            &json!({"active": false}),
        )
        .await;
    assert_eq!(res.status.as_u16(), 200);

    let pending = app.register_ok("pat@example.com").await;
    app.update_ok(&admin, pending, &json!({"status": "approved"}))
        .await;

    let log = deliveries(&app, &admin, &approvals["id"]).await;
    assert_eq!(log.len(), 1, "{log:?}");
    assert_eq!(log[0]["event_type"], "user.approved");
    assert_eq!(log[0]["status"], "pending");
    assert_eq!(log[0]["attempts"], 0);
    assert!(
        deliveries(&app, &admin, &deletions["id"]).await.is_empty(),
        "not subscribed to user.approved"
    );
    assert!(
        deliveries(&app, &admin, &off["id"]).await.is_empty(),
        "an endpoint turned off is sent nothing"
    );

    // `*`: the registration and the approval, newest first, paged.
    let log = deliveries(&app, &admin, &everything["id"]).await;
    let types: Vec<&str> = log
        .iter()
        .filter_map(|d| d["event_type"].as_str())
        .collect();
    assert_eq!(types, ["user.approved", "user.registered"]);
    assert_ne!(log[0]["event_id"], log[1]["event_id"]);
    let page = app
        .get(
            &format!("{}/deliveries?limit=1&offset=1", path(&everything["id"])),
            Some(&admin.token),
        )
        .await;
    assert_eq!(page.status.as_u16(), 200, "{}", page.text());
    assert_eq!(page.header("x-total-count"), Some("2"));
    assert_eq!(page.json()[0]["event_type"], "user.registered");
    let res = app
        .get(
            &format!("{}/deliveries?limit=x", path(&everything["id"])),
            Some(&admin.token),
        )
        .await;
    assert_field_error(&res, "limit", "a bad limit");
    let res = app
        .get(
            &format!("{}/deliveries?status=pending", path(&everything["id"])),
            Some(&admin.token),
        )
        .await;
    assert_field_error(&res, "status", "an unknown parameter");

    // The same event id for every endpoint it went to.
    let approval_everything = &log[0]["event_id"];
    let approval_only = &deliveries(&app, &admin, &approvals["id"]).await[0]["event_id"];
    assert_eq!(approval_everything, approval_only);

    // Deleting an endpoint takes its deliveries log with it.
    let res = app
        .delete(&path(&everything["id"]), Some(&admin.token))
        .await;
    assert_eq!(res.status.as_u16(), 204);
    let res = app
        .get(
            &format!("{}/deliveries", path(&everything["id"])),
            Some(&admin.token),
        )
        .await;
    assert_problem(
        &res,
        404,
        "webhook_not_found",
        "deliveries of a deleted endpoint",
    );
}

// ---- Who may call them ------------------------------------------------------------------------

/// Every webhook route, as (method, path) with `{id}` the endpoint's id.
fn routes(id: &Value) -> Vec<(&'static str, String)> {
    vec![
        ("POST", WEBHOOKS.to_owned()),
        ("GET", WEBHOOKS.to_owned()),
        ("GET", path(id)),
        ("PUT", path(id)),
        ("DELETE", path(id)),
        ("POST", format!("{}/rotate-secret", path(id))),
        ("POST", format!("{}/test", path(id))),
        ("GET", format!("{}/deliveries", path(id))),
    ]
}

async fn call(app: &TestApp, method: &str, uri: &str, token: Option<&str>) -> Resp {
    let body = json!({"url": PUBLIC_URL, "events": ["*"]});
    match method {
        "GET" => app.get(uri, token).await,
        "POST" => app.post_json(uri, token, &body).await,
        "PUT" => app.put_json(uri, token, &json!({"active": false})).await,
        "DELETE" => app.delete(uri, token).await,
        other => panic!("no {other} route"),
    }
}

pub async fn webhook_routes_are_for_admins_only(new_store: &NewStore) {
    let app = spawn_app(new_store()).await;
    let admin = app.admin().await;
    let user = app.approved_user(&admin, "user@example.com").await;
    let created = create(&app, &admin, json!({"url": PUBLIC_URL, "events": ["*"]})).await;
    for (method, uri) in routes(&created["id"]) {
        let res = call(&app, method, &uri, Some(&user.token)).await;
        assert_problem(
            &res,
            403,
            "admin_required",
            &format!("{method} {uri} as a user"),
        );
        let res = call(&app, method, &uri, None).await;
        assert_problem(
            &res,
            401,
            "not_authenticated",
            &format!("{method} {uri} without a token"),
        );
        let res = call(&app, method, &uri, Some("not.a.token")).await;
        assert_problem(
            &res,
            401,
            "not_authenticated",
            &format!("{method} {uri} with a bad token"),
        );
    }
    // Nothing changed.
    let listed = list(&app, &admin).await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["active"], true);
    assert!(deliveries(&app, &admin, &created["id"]).await.is_empty());
}

pub async fn unknown_and_malformed_webhook_ids(new_store: &NewStore) {
    let app = spawn_app(new_store()).await;
    let admin = app.admin().await;
    let created = create(&app, &admin, json!({"url": PUBLIC_URL, "events": ["*"]})).await;
    let unknown = json!(created["id"].as_i64().unwrap_or(1) + 1000);
    for (method, uri) in routes(&unknown).into_iter().skip(2) {
        let res = call(&app, method, &uri, Some(&admin.token)).await;
        assert_problem(&res, 404, "webhook_not_found", &format!("{method} {uri}"));
    }
    for bad in ["abc", "0", "-1", "+1", "99999999999999999999"] {
        for (method, uri) in routes(&json!(bad)).into_iter().skip(2) {
            let uri = uri.replace('"', "");
            let res = call(&app, method, &uri, Some(&admin.token)).await;
            assert_field_error(&res, "id", &format!("{method} {uri}"));
        }
    }
    assert_eq!(list(&app, &admin).await.len(), 1, "nothing changed");
}

// ---- The audit log -----------------------------------------------------------------------------

pub async fn webhook_changes_are_audited(new_store: &NewStore) {
    let app = spawn_app(new_store()).await;
    let admin = app.admin().await;
    let created = create(&app, &admin, json!({"url": PUBLIC_URL, "events": ["*"]})).await;
    let id = &created["id"];
    let res = app
        .put_json(
            &path(id),
            Some(&admin.token),
            &json!({"events": ["user.created"]}),
        )
        .await;
    assert_eq!(res.status.as_u16(), 200);
    // A change that changes nothing is not audited.
    let res = app
        .put_json(
            &path(id),
            Some(&admin.token),
            &json!({"events": ["user.created"]}),
        )
        .await;
    assert_eq!(res.status.as_u16(), 200);
    let res = app
        .post_json(
            &format!("{}/rotate-secret", path(id)),
            Some(&admin.token),
            &json!({}),
        )
        .await;
    assert_eq!(res.status.as_u16(), 200);
    let res = app.delete(&path(id), Some(&admin.token)).await;
    assert_eq!(res.status.as_u16(), 204);

    for action in [
        "webhook_created",
        "webhook_updated",
        "webhook_secret_rotated",
        "webhook_deleted",
    ] {
        let entries = audit_entries(&app, &admin, action).await;
        assert_eq!(entries.len(), 1, "{action}: {entries:?}");
        assert_eq!(entries[0]["actor_id"], admin.id, "{action}");
        let detail = entries[0]["detail"].as_str().unwrap_or_default();
        assert!(detail.contains(&id.to_string()), "{action}: {detail}");
        assert!(!detail.contains("whsec_"), "{action}: {detail}");
    }
    let res = app.get("/api/auth/audit", Some(&admin.token)).await;
    let actions: Vec<String> = res
        .json()
        .as_array()
        .expect("a JSON array")
        .iter()
        .take(4)
        .filter_map(|e| e["action"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(
        actions,
        [
            "webhook_deleted",
            "webhook_secret_rotated",
            "webhook_updated",
            "webhook_created"
        ]
    );
}
