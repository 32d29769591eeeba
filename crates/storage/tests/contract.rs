//! The domain's repository contract, on SQLite.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests panic to fail

mod common;

mod sqlite {
    gatehouse_domain::user_store_contract_tests!(super::common::TestDb::sqlite());
}
