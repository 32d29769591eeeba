//! Several `gatehouse serve` processes on one PostgreSQL database: the rules must hold in
//! the database, whichever instance a request reaches. Reported ignored without
//! `GATEHOUSE_TEST_POSTGRES_URL` (see `gatehouse_storage::testing::needs_postgres`).

use std::sync::Arc;

use gatehouse_storage::testing::{needs_postgres, race, EmptyDatabase, TestBackend};
use serde_json::json;

use crate::server::Server;

/// `n` instances started at the same moment on one empty PostgreSQL database.
fn cluster(n: usize) -> (EmptyDatabase, Vec<Arc<Server>>) {
    let db = EmptyDatabase::new(TestBackend::Postgres);
    let spawned: Vec<_> = (0..n)
        .map(|_| Server::spawn(&db.url_string(), &[]))
        .collect();
    let servers = spawned
        .into_iter()
        .map(|s| Arc::new(Server::wait_until_listening(s)))
        .collect();
    (db, servers)
}

#[needs_postgres]
#[test]
fn instances_starting_together_migrate_once_and_share_one_secret() {
    let (_db, servers) = cluster(3);
    assert_eq!(
        servers[0]
            .register("admin@example.com", "tr0mbone-kettle")
            .status,
        201
    );
    let token = servers[1].token("admin@example.com", "tr0mbone-kettle");
    for server in &servers {
        let me = server.get("/api/auth/me", Some(&token));
        assert_eq!(
            me.status, 200,
            "a token from one instance works on all: {me:?}"
        );
        assert_eq!(server.get("/readyz", None).status, 200);
    }
    for server in &servers {
        let log = server.log();
        assert!(!log.contains("ERROR"), "start-up errors:\n{log}");
    }
}

#[needs_postgres]
#[test]
fn twenty_registrations_across_two_instances_make_one_admin() {
    let (_db, servers) = cluster(2);
    let replies = race(20, {
        let servers = servers.clone();
        move |i| servers[i % 2].register(&format!("racer{i}@example.com"), "tr0mbone-kettle")
    });
    assert!(replies.iter().all(|r| r.status == 201), "{replies:?}");
    let admins = replies
        .iter()
        .filter(|r| r.body["is_admin"] == true)
        .count();
    assert_eq!(admins, 1, "{replies:?}");
    let pending = replies
        .iter()
        .filter(|r| r.body["status"] == "pending")
        .count();
    assert_eq!(pending, 19);
}

#[needs_postgres]
#[test]
fn eight_registrations_of_one_email_across_two_instances_make_one_row() {
    let (_db, servers) = cluster(2);
    servers[0].register("admin@example.com", "tr0mbone-kettle");
    let mut statuses = race(8, {
        let servers = servers.clone();
        move |i| {
            servers[i % 2]
                .register("same@example.com", "tr0mbone-kettle")
                .status
        }
    });
    statuses.sort_unstable();
    assert_eq!(statuses, [201, 409, 409, 409, 409, 409, 409, 409]);
    let token = servers[1].token("admin@example.com", "tr0mbone-kettle");
    let users = servers[1].get("/api/auth/users?q=same@", Some(&token));
    assert_eq!(users.header("x-total-count"), Some("1"));
}

/// A token of whichever of `emails` is an active admin now, with the approved users it sees.
fn admin_view(server: &Server, emails: &[&str]) -> Option<(String, Vec<serde_json::Value>)> {
    emails.iter().find_map(|email| {
        let login = server.login(email, "tr0mbone-kettle");
        let token = login.body["access_token"].as_str()?.to_owned();
        let users = server.get("/api/auth/users?status=approved", Some(&token));
        (users.status == 200).then(|| (token, users.body.as_array().cloned().unwrap_or_default()))
    })
}

#[needs_postgres]
#[test]
fn two_admins_demoting_each_other_through_different_instances_leave_one() {
    let (_db, servers) = cluster(2);
    let emails = ["a@example.com", "b@example.com"];
    let ids: Vec<i64> = emails
        .iter()
        .map(|email| {
            servers[0].register(email, "tr0mbone-kettle").body["id"]
                .as_i64()
                .unwrap()
        })
        .collect();
    for round in 0..20 {
        // Start every round with both a and b approved admins, restored by the survivor.
        let (token, _) = admin_view(&servers[0], &emails).expect("an active admin");
        for id in &ids {
            let restored = servers[0].send_json(
                "PUT",
                &format!("/api/auth/users/{id}"),
                Some(&token),
                &json!({"status": "approved", "is_admin": true}),
            );
            assert_eq!(restored.status, 200, "round {round}: {restored:?}");
        }
        let tokens: Vec<String> = emails
            .iter()
            .map(|e| servers[0].token(e, "tr0mbone-kettle"))
            .collect();
        let change = if round % 2 == 0 {
            json!({"is_admin": false})
        } else {
            json!({"status": "disabled"})
        };
        // a, through instance 0, acts on b while b, through instance 1, acts on a.
        let replies = race(2, {
            let (servers, ids) = (servers.clone(), ids.clone());
            move |i| {
                let target = ids[1 - i];
                servers[i].send_json(
                    "PUT",
                    &format!("/api/auth/users/{target}"),
                    Some(&tokens[i]),
                    &change,
                )
            }
        });
        let (_, approved) = admin_view(&servers[1], &emails).expect("an active admin survives");
        let active_admins = approved.iter().filter(|u| u["is_admin"] == true).count();
        assert_eq!(active_admins, 1, "round {round}: {replies:?}");
        let won = replies.iter().filter(|r| r.status == 200).count();
        assert_eq!(won, 1, "round {round}: {replies:?}");
        // The loser was refused by the rule, or (its own rights gone first) as a non-admin.
        let lost = replies.iter().find(|r| r.status != 200).unwrap();
        assert!(
            matches!(lost.status, 400 | 401 | 403),
            "round {round}: {lost:?}"
        );
    }
}
