//! The domain's repository contract, on SQLite.

mod common;

mod sqlite {
    gatehouse_domain::user_store_contract_tests!(super::common::TestDb::sqlite());
}
