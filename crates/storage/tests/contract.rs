//! The domain's repository contract, on SQLite and on PostgreSQL (reported ignored without
//! `GATEHOUSE_TEST_POSTGRES_URL`; see `gatehouse_storage::testing::needs_postgres`).

mod sqlite {
    gatehouse_domain::user_store_contract_tests!(gatehouse_storage::testing::TestDatabase::sqlite());
}

mod postgres {
    gatehouse_domain::user_store_contract_tests!(
        gatehouse_storage::testing::TestDatabase::postgres(),
        #[gatehouse_storage::testing::needs_postgres]
    );
}
