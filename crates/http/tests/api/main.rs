//! The HTTP API in-process over the domain's in-memory store: the shared suite
//! (`gatehouse_http::testing`, which the binary's crate runs over SQLite and PostgreSQL in
//! `crates/gatehouse/tests/api.rs`), and the checks that do not depend on the store: the
//! console and OpenAPI documents, and a store that never answers.

// Tests panic on purpose: a failed expectation is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use gatehouse_domain::testing::InMemoryStore;

mod console;
mod openapi;
mod unavailable;

gatehouse_http::api_suite_tests!(new_store());

/// A fresh, empty in-memory store.
fn new_store() -> Arc<dyn gatehouse_domain::UserStore> {
    Arc::new(InMemoryStore::new())
}

/// Every `pub async fn` of the suite's modules is in the list the tests are made from (a
/// check left out would silently run nowhere).
#[test]
fn every_check_is_in_the_list() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/src/testing/suite");
    let mut missing = Vec::new();
    let mut found = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let module = path.file_stem().unwrap().to_str().unwrap().to_owned();
        if module == "mod" {
            continue;
        }
        for line in std::fs::read_to_string(&path).unwrap().lines() {
            if let Some(rest) = line.strip_prefix("pub async fn ") {
                let name = &rest[..rest.find('(').unwrap()];
                found += 1;
                let check = format!("{module}::{name}");
                if !gatehouse_http::testing::suite::CHECKS.contains(&check.as_str()) {
                    missing.push(check);
                }
            }
        }
    }
    assert!(
        missing.is_empty(),
        "not in __api_suite!'s list: {missing:?}"
    );
    assert_eq!(found, gatehouse_http::testing::suite::CHECKS.len());
}
