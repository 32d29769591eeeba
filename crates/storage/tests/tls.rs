//! TLS to PostgreSQL: libpq is built with OpenSSL, so `sslmode=verify-full` reaches a server
//! that accepts TLS connections only, and a certificate from the wrong CA is a clear error.
//! The cluster is started by the test itself (see `gatehouse_storage::testing::tls`).

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests panic to fail

use gatehouse_domain::{Email, NewUser, PasswordHash, UserStatus, UserStoreExt};
use gatehouse_storage::testing::needs_postgres;
use gatehouse_storage::testing::tls::TlsPostgres;
use gatehouse_storage::{Database, DatabaseUrl, OpenError, PoolOptions};

fn open(url: &str) -> Result<Database, OpenError> {
    let url: DatabaseUrl = url.parse().expect("a postgres URL");
    Database::open(&url, PoolOptions::default())
}

/// One cluster (initdb takes a few seconds), every case against it.
#[needs_postgres]
#[test]
fn a_tls_only_server_is_reached_with_verify_full_and_refuses_the_wrong_ca() {
    let Some(cluster) = TlsPostgres::start() else {
        return;
    };
    verify_full_with_the_right_ca_migrates_and_stores_users(&cluster);
    the_wrong_ca_is_a_clear_error_naming_the_database(&cluster);
    require_encrypts_without_checking_the_certificate(&cluster);
    the_server_refuses_connections_without_tls(&cluster);
}

fn verify_full_with_the_right_ca_migrates_and_stores_users(cluster: &TlsPostgres) {
    let url = cluster.url("verify-full", Some(cluster.ca()));
    let db = open(&url).unwrap_or_else(|e| panic!("{e}\nserver log:\n{}", cluster.log()));
    let user = NewUser {
        email: Email::parse("tls@example.com").expect("email"),
        password_hash: PasswordHash::new("hash".into()),
        is_admin: true,
        status: UserStatus::Approved,
        created_at: gatehouse_domain::now(),
        approved_at: None,
        approved_by: None,
        reason: None,
        email_verified: false,
    };
    let stored = db
        .write_with(|repo| repo.insert(user.clone()))
        .expect("insert");
    // Through a second opener, as another instance would (migrations already done).
    let found = open(&url)
        .expect("reopen")
        .read_with(|repo| repo.find_by_email(&stored.email))
        .expect("find");
    assert_eq!(found, Some(stored));
}

fn the_wrong_ca_is_a_clear_error_naming_the_database(cluster: &TlsPostgres) {
    let error = open(&cluster.url("verify-full", Some(cluster.wrong_ca())))
        .expect_err("a server certificate from another CA must be refused");
    let message = error.to_string();
    assert!(matches!(error, OpenError::Connect(_)), "{error:?}");
    assert!(
        message.starts_with("cannot open the database: postgres://gatehouse:***@127.0.0.1:"),
        "{message}"
    );
    assert!(
        message.contains(&format!("127.0.0.1:{}/postgres", cluster.port())),
        "{message}"
    );
    assert!(message.contains("certificate verify failed"), "{message}");
    assert!(!message.contains(cluster.password()), "{message}");
    assert!(!message.contains('\n'), "one line: {message:?}");
}

/// `require` encrypts but trusts any certificate (libpq's rule when no root certificate is
/// given); the data still only travels over TLS.
fn require_encrypts_without_checking_the_certificate(cluster: &TlsPostgres) {
    let db = open(&cluster.url("require", None)).expect("sslmode=require");
    assert!(db.read_with(|repo| repo.count_users()).expect("count") >= 1);
}

/// The cluster really is TLS-only: without TLS there is no pg_hba.conf entry.
fn the_server_refuses_connections_without_tls(cluster: &TlsPostgres) {
    let error = open(&cluster.url("disable", None)).expect_err("no plain connections");
    let message = error.to_string();
    assert!(message.contains("no encryption"), "{message}");
    assert!(!message.contains(cluster.password()), "{message}");
}

/// Plain PostgreSQL URLs keep working now that libpq speaks TLS: the default
/// (`sslmode=prefer`) tries TLS and falls back when the server offers none.
#[needs_postgres]
#[test]
fn the_default_sslmode_falls_back_to_plain_when_the_server_offers_no_tls() {
    let Some(cluster) = TlsPostgres::start_without_tls() else {
        return;
    };
    let plain = cluster.url("prefer", None).replace("?sslmode=prefer", "");
    let db = open(&plain).unwrap_or_else(|e| panic!("{e}\nserver log:\n{}", cluster.log()));
    assert_eq!(db.read_with(|repo| repo.count_users()).expect("count"), 0);
    let error = open(&cluster.url("require", None)).expect_err("no TLS to be had");
    let message = error.to_string();
    assert!(message.contains("server does not support SSL"), "{message}");
    assert!(!message.contains(cluster.password()), "{message}");
}
