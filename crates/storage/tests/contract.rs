//! The domain's repository contract, on SQLite and on PostgreSQL.

mod sqlite {
    gatehouse_domain::user_store_contract_tests!(gatehouse_storage::testing::TestDatabase::sqlite());
}

mod postgres {
    gatehouse_domain::user_store_contract_tests!(
        optional: gatehouse_storage::testing::TestDatabase::postgres()
    );
}
