//! The HTTP API in-process: the app is built with `gatehouse_http::configure`, exactly as
//! the binary builds it, over the domain's in-memory store and fast fake hasher, and called
//! through `actix_web::test` without a socket.
//!
//! The binary's crate runs these same modules over real SQLite and PostgreSQL databases
//! (`crates/gatehouse/tests/api_sqlite.rs` and `api_postgres.rs`), swapping only `backend`.

// Tests panic on purpose: a failed expectation is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod admin;
mod auth;
mod bad_input;
mod console;
mod emails;
mod hardening;
mod helpers;
mod observe;
mod openapi;
mod security;
mod service;

/// Where each test's users live.
mod backend {
    use std::sync::Arc;

    use gatehouse_domain::testing::InMemoryStore;
    use gatehouse_domain::UserStore;

    /// A fresh, empty store.
    pub fn new_store() -> Arc<dyn UserStore> {
        Arc::new(InMemoryStore::new())
    }
}
