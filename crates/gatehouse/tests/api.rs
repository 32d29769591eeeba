//! The HTTP API suite (`gatehouse_http::testing`) in-process over real databases, a fresh
//! one per store the suite asks for, dropped with it: SQLite always, PostgreSQL when
//! configured (`#[needs_postgres]`: reported ignored without `GATEHOUSE_TEST_POSTGRES_URL`,
//! failing with `GATEHOUSE_REQUIRE_POSTGRES=1`; never run on anything else).

mod sqlite {
    use std::sync::Arc;

    use gatehouse_storage::testing::TestDatabase;

    gatehouse_http::api_suite_tests!(Arc::new(TestDatabase::sqlite()));
}

mod postgres {
    use std::sync::Arc;

    use gatehouse_storage::testing::{needs_postgres, TestDatabase};

    gatehouse_http::api_suite_tests!(Arc::new(TestDatabase::postgres()), #[needs_postgres]);
}
