//! Micro-benchmarks of the pieces on Gatehouse's hot path: signing and verifying a token
//! (HS256, the default, and EdDSA), parsing an email, and the repository's get-by-id on
//! SQLite and (when `GATEHOUSE_BENCH_POSTGRES_URL` or `GATEHOUSE_TEST_POSTGRES_URL` is set)
//! PostgreSQL.
//!
//! `cargo bench -p gatehouse-bench` (add `-- token` or `-- get_by_id` to pick some; the
//! `get_by_id` group also times the session lookup of every `/me`).

// A benchmark's set-up may panic: a failed set-up is a failed benchmark.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use gatehouse_bench::db::{self, Backend, BenchDatabase};
use gatehouse_bench::seed;
use gatehouse_domain::{
    Ed25519Tokens, Email, Hs256Tokens, JwtSecret, PasswordHash, SigningKey, TokenService, TokenTtl,
    User, UserId, UserStatus, UserStoreExt as _,
};

/// Users in the database the lookups run against.
const USERS: u64 = 10_000;

fn user() -> User {
    User {
        id: UserId::new(4242).unwrap(),
        email: Email::parse("ada.lovelace@example.com").unwrap(),
        password_hash: PasswordHash::new("unused".into()),
        is_admin: false,
        status: UserStatus::Approved,
        created_at: gatehouse_domain::now(),
        approved_at: None,
        approved_by: None,
        token_version: 0,
        reason: None,
        email_verified: false,
        mfa_enabled: false,
        rejected_at: None,
        rejected_by: None,
        decision_note: None,
    }
}

fn tokens(c: &mut Criterion) {
    let now = gatehouse_domain::now();
    let hs256 = Hs256Tokens::new(&JwtSecret::generate().unwrap(), TokenTtl::DEFAULT).unwrap();
    let key = SigningKey::generate(now, now).unwrap();
    let eddsa = Ed25519Tokens::new(&[key], TokenTtl::DEFAULT, now).unwrap();
    let services: [(&str, &dyn TokenService); 2] = [("HS256", &hs256), ("EdDSA", &eddsa)];
    let user = user();
    let mut group = c.benchmark_group("token");
    for (name, tokens) in services {
        let token = tokens.issue(&user, 1).unwrap().token;
        group.bench_function(BenchmarkId::new("sign", name), |b| {
            b.iter(|| tokens.issue(black_box(&user), 1).unwrap());
        });
        group.bench_function(BenchmarkId::new("verify", name), |b| {
            b.iter(|| tokens.verify(black_box(&token)).unwrap());
        });
        group.bench_function(BenchmarkId::new("sign+verify", name), |b| {
            b.iter(|| {
                let issued = tokens.issue(black_box(&user), 1).unwrap();
                tokens.verify(&issued.token).unwrap()
            });
        });
    }
    group.finish();
}

fn email(c: &mut Criterion) {
    let mut group = c.benchmark_group("email_parse");
    for (name, raw) in [
        ("typical", "  Ada.Lovelace@Example.COM "),
        ("unicode", "jörg.müller@bücher.example"),
        ("invalid", "ada.lovelace@example"),
    ] {
        group.bench_with_input(BenchmarkId::from_parameter(name), raw, |b, raw| {
            b.iter(|| Email::parse(black_box(raw)));
        });
    }
    group.finish();
}

fn get_by_id(c: &mut Criterion) {
    let mut backends = vec![Backend::Sqlite];
    if db::postgres_server().is_some() {
        backends.push(Backend::Postgres);
    } else {
        eprintln!(
            "get_by_id: PostgreSQL skipped ({} and {} are not set)",
            db::BENCH_POSTGRES_URL_VAR,
            db::TEST_POSTGRES_URL_VAR
        );
    }
    let mut group = c.benchmark_group("get_by_id");
    for backend in backends {
        let database = BenchDatabase::new(backend).unwrap();
        let store = database.open().unwrap();
        let hash = seed::shared_seed_hash().unwrap();
        seed::insert_admin(&store, &hash).unwrap();
        seed::seed_to(&store, USERS, &hash).unwrap();
        // Spread the lookups over the table rather than hitting one row.
        let ids: Vec<UserId> = (1..=USERS)
            .step_by(97)
            .map(|id| UserId::new(i64::try_from(id).unwrap()).unwrap())
            .collect();
        let mut next = 0;
        group.bench_function(
            BenchmarkId::new(backend.label(), format!("{USERS} users")),
            |b| {
                b.iter(|| {
                    next = (next + 1) % ids.len();
                    let id = ids[next];
                    store
                        .read_with(|repo| repo.find_by_id(id))
                        .unwrap()
                        .expect("a seeded user")
                });
            },
        );
        // What every `/me` runs: the user and the token's session, one statement
        // outside a transaction.
        group.bench_function(
            BenchmarkId::new(
                format!("{} session lookup", backend.label()),
                format!("{USERS} users"),
            ),
            |b| {
                b.iter(|| {
                    next = (next + 1) % ids.len();
                    let id = ids[next];
                    store
                        .read_single_with(|repo| repo.find_session_user(id, 1))
                        .unwrap()
                        .expect("a seeded user")
                });
            },
        );
        drop(store);
        drop(database);
    }
    group.finish();
}

criterion_group!(benches, tokens, email, get_by_id);
criterion_main!(benches);
