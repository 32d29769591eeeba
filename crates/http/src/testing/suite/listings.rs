//! Long listings, streamed (`GET /users` and `GET /audit` without `limit`): every row, in
//! order, with the total, as the pages give them one after another; and a client that stops
//! reading does not keep the database.

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::test::TestRequest;
use gatehouse_domain::{
    AuditAction, Email, NewAuditEntry, NewUser, PasswordHash, UserId, UserStatus, UserStore,
    UserStoreExt as _,
};
use serde_json::Value;

use crate::listing::CHUNK_BYTES;
use crate::testing::{
    assert_security_headers, assert_user_public, assert_utc_time, bearer, spawn_app,
    spawn_app_with, AppOptions, NewStore, Resp, Session, TestApp,
};

/// Which listed items a filter keeps.
type Keep = dyn Fn(&Value) -> bool;

/// Users seeded past the admin: several chunks of JSON, and more than one PostgreSQL
/// fetch (1 000 rows).
const USERS: usize = 1200;

/// Seeds `n` users straight into the store, in one write: `user-00001@example.com`…, a
/// third each pending, approved (by `approver`) and disabled, every tenth an admin.
fn seed_users(store: &dyn UserStore, n: usize, approver: i64) {
    let approver = UserId::new(approver).expect("an id");
    store
        .write_with(|repo| {
            for i in 1..=n {
                let status = [
                    UserStatus::Pending,
                    UserStatus::Approved,
                    UserStatus::Disabled,
                ][i % 3];
                let now = gatehouse_domain::now();
                repo.insert(NewUser {
                    email: Email::parse(&format!("user-{i:05}@example.com")).expect("an email"),
                    password_hash: PasswordHash::new("not a hash".into()),
                    is_admin: i % 10 == 0,
                    status,
                    created_at: now,
                    approved_at: (status == UserStatus::Approved).then_some(now),
                    approved_by: (status == UserStatus::Approved).then_some(approver),
                    reason: None,
                    email_verified: false,
                })?;
            }
            Ok(())
        })
        .expect("seeding users");
}

async fn get_ok(app: &TestApp, admin: &Session, path: &str) -> (Resp, u64, Vec<Value>) {
    let res = app.get(path, Some(&admin.token)).await;
    assert_eq!(res.status.as_u16(), 200, "{path}: {}", res.text());
    assert_security_headers(&res, path);
    assert!(
        res.header("content-type")
            .is_some_and(|t| t.starts_with("application/json")),
        "{path}: content type"
    );
    let total = res
        .header("x-total-count")
        .unwrap_or_else(|| panic!("{path}: X-Total-Count"))
        .parse()
        .expect("a number");
    let items = res.json().as_array().expect("a JSON array").clone();
    (res, total, items)
}

fn ids(items: &[Value]) -> Vec<i64> {
    items
        .iter()
        .map(|u| u["id"].as_i64().expect("an id"))
        .collect()
}

/// `[` + the pages' items, bytes as sent + `]`: what one listing of them all must be.
fn joined(pages: &[Resp]) -> Vec<u8> {
    let mut joined = b"[".to_vec();
    for page in pages {
        let inner = &page.body[1..page.body.len() - 1];
        if inner.is_empty() {
            continue;
        }
        if joined.len() > 1 {
            joined.push(b',');
        }
        joined.extend_from_slice(inner);
    }
    joined.push(b']');
    joined
}

pub async fn an_unpaged_user_listing_longer_than_a_chunk_is_every_user_in_pages_order(
    new_store: &NewStore,
) {
    let store = new_store();
    let app = spawn_app(store.clone()).await;
    let admin = app.admin().await;
    seed_users(&*store, USERS, admin.id);
    let everyone = USERS as u64 + 1;

    let (res, total, users) = get_ok(&app, &admin, "/api/auth/users").await;
    assert_eq!(total, everyone);
    assert_eq!(users.len() as u64, everyone, "every user");
    assert!(
        res.body.len() > 4 * CHUNK_BYTES,
        "several chunks: {} bytes",
        res.body.len()
    );
    assert!(ids(&users).windows(2).all(|w| w[0] > w[1]), "newest first");
    assert_eq!(users[0]["email"], format!("user-{USERS:05}@example.com"));
    assert_eq!(users[users.len() - 1]["id"], admin.id);
    for user in &users {
        assert_user_public(user);
    }
    let approved = users
        .iter()
        .find(|u| u["status"] == "approved" && u["id"] != admin.id)
        .expect("an approved user");
    assert_eq!(approved["approved_by"], admin.id);
    assert_eq!(
        assert_utc_time(&approved["approved_at"]),
        assert_utc_time(&approved["created_at"])
    );
    // The bytes as the API writes every user (field order, times to the second).
    let text = res.text();
    assert!(text.starts_with("[{\"id\":"), "{}", &text[..80]);
    assert!(
        text.contains(&format!(
            "\"email\":\"user-{USERS:05}@example.com\",\"is_admin\":{},\"status\":\"{}\",\"created_at\":\"",
            USERS.is_multiple_of(10),
            users[0]["status"].as_str().expect("a status")
        )),
        "{}",
        &text[..200]
    );

    // Pages one after another are the listing, byte for byte.
    let mut pages = Vec::new();
    for offset in (0..everyone).step_by(250) {
        let (page, page_total, items) = get_ok(
            &app,
            &admin,
            &format!("/api/auth/users?limit=250&offset={offset}"),
        )
        .await;
        assert_eq!(page_total, everyone, "offset {offset}");
        assert_eq!(items.len() as u64, (everyone - offset).min(250));
        pages.push(page);
    }
    assert_eq!(
        String::from_utf8_lossy(&joined(&pages)),
        text,
        "the pages put together"
    );
    let (_, _, long_page) = get_ok(&app, &admin, "/api/auth/users?limit=1100&offset=50").await;
    assert_eq!(long_page, users[50..1150].to_vec());

    // Filters over the long listing.
    let filters: [(&str, &Keep); 4] = [
        ("?status=pending", &|u: &Value| u["status"] == "pending"),
        ("?is_admin=true", &|u: &Value| u["is_admin"] == true),
        ("?status=approved&is_admin=false", &|u: &Value| {
            u["status"] == "approved" && u["is_admin"] == false
        }),
        ("?q=user-01", &|u: &Value| {
            u["email"].as_str().is_some_and(|e| e.contains("user-01"))
        }),
    ];
    for (query, keep) in filters {
        let expected: Vec<Value> = users.iter().filter(|u| keep(u)).cloned().collect();
        let (_, total, listed) = get_ok(&app, &admin, &format!("/api/auth/users{query}")).await;
        assert_eq!(total, expected.len() as u64, "{query}");
        assert_eq!(listed, expected, "{query}");
    }
}

pub async fn an_unpaged_audit_log_longer_than_a_chunk_is_every_entry_in_pages_order(
    new_store: &NewStore,
) {
    let store = new_store();
    let app = spawn_app(store.clone()).await;
    let admin = app.admin().await;
    let target = UserId::new(admin.id).expect("an id");
    store
        .write_with(|repo| {
            for i in 0..USERS {
                repo.append_audit(&NewAuditEntry {
                    at: gatehouse_domain::now(),
                    action: if i % 4 == 0 {
                        AuditAction::LoginSucceeded
                    } else {
                        AuditAction::LoginFailed
                    },
                    actor_id: None,
                    target_id: Some(target),
                    address: Some("198.51.100.7".into()),
                    detail: Some(format!("wrong password \"{i}\"\n")),
                })?;
            }
            Ok(())
        })
        .expect("seeding the audit log");

    let (res, total, entries) = get_ok(&app, &admin, "/api/auth/audit").await;
    assert!(
        total > USERS as u64,
        "the seeded entries and the admin's own"
    );
    assert_eq!(entries.len() as u64, total, "every entry");
    assert!(res.body.len() > 4 * CHUNK_BYTES, "several chunks");
    assert!(
        ids(&entries).windows(2).all(|w| w[0] > w[1]),
        "newest first"
    );
    assert_eq!(
        entries[0]["detail"],
        format!("wrong password \"{}\"\n", USERS - 1),
        "escaped as JSON"
    );
    assert_utc_time(&entries[0]["at"]);

    let mut pages = Vec::new();
    for offset in (0..total).step_by(300) {
        let (page, page_total, _) = get_ok(
            &app,
            &admin,
            &format!("/api/auth/audit?limit=300&offset={offset}"),
        )
        .await;
        assert_eq!(page_total, total);
        pages.push(page);
    }
    assert_eq!(String::from_utf8_lossy(&joined(&pages)), res.text());

    let (_, failed_total, failed) =
        get_ok(&app, &admin, "/api/auth/audit?action=login_failed").await;
    let expected: Vec<Value> = entries
        .iter()
        .filter(|e| e["action"] == "login_failed")
        .cloned()
        .collect();
    assert_eq!(failed_total, expected.len() as u64);
    assert_eq!(failed, expected);
}

pub async fn a_client_that_stops_reading_a_listing_lets_go_of_the_database(new_store: &NewStore) {
    let stall = Duration::from_millis(300);
    let store: Arc<dyn UserStore> = new_store();
    let app = spawn_app_with(AppOptions {
        body_timeout: stall,
        database_slots: Some(1),
        ..AppOptions::new(store.clone())
    })
    .await;
    let admin = app.admin().await;
    // Far more than the chunks the server keeps queued for a client.
    seed_users(&*store, 2000, admin.id);

    let stalled = app
        .start(bearer(
            TestRequest::get().uri("/api/auth/users"),
            &admin.token,
        ))
        .await;
    assert_eq!(stalled.status.as_u16(), 200);
    assert_eq!(
        stalled
            .headers
            .get("x-total-count")
            .and_then(|v| v.to_str().ok()),
        Some("2001")
    );

    // The one database slot is the stalled listing's until it gives up; then the next
    // request gets it.
    let started = Instant::now();
    let next = actix_web::rt::time::timeout(
        Duration::from_secs(30),
        app.get("/api/auth/users/pending/count", Some(&admin.token)),
    )
    .await
    .expect("the stalled listing let go of its database slot");
    assert_eq!(next.status.as_u16(), 200, "{}", next.text());
    assert!(
        started.elapsed() >= stall / 2,
        "it waited for the stalled listing ({:?})",
        started.elapsed()
    );
    // And its database connection: the store answers a listing as usual.
    let (_, total, users) = get_ok(&app, &admin, "/api/auth/users").await;
    assert_eq!((total, users.len()), (2001, 2001));

    // The stalled response was cut short: its body ends in an error, not in `]`.
    let body = actix_web::body::to_bytes(stalled.body).await;
    assert!(
        body.is_err(),
        "the abandoned body must not end as if complete"
    );
}
