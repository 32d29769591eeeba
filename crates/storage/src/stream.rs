//! Reading a listing's rows as they come, holding at most a chunk of them in memory, on
//! both backends and from one statement.
//!
//! - **SQLite** steps through the statement (`load_iter`): one row at a time.
//! - **PostgreSQL**: diesel's default loading mode has libpq buffer a statement's whole
//!   result before the first row is seen (100 000 users: tens of megabytes).
//!   `PgRowByRowLoadingMode` would stream it, but it cannot be had through
//!   [`AnyConnection`]: the `MultiConnection` derive implements `LoadConnection` for the
//!   default mode only, and the adapter it runs a multi-backend query through on the inner
//!   `PgConnection` is private to the generated code, so a row-by-row statement would have
//!   to be written a second time, typed for `Pg` alone. Instead the very same statement is
//!   declared as a cursor (`DECLARE … NO SCROLL CURSOR FOR <statement>`, its parameters
//!   bound as usual) and read [`FETCH_ROWS`] rows at a time: still one statement and one
//!   snapshot, at most [`FETCH_ROWS`] rows held, inside a `REPEATABLE READ, READ ONLY`
//!   transaction (a cursor lives in one): the caller's when it has one, else one of its own.
//!   A page known to hold at most [`FETCH_ROWS`] rows is read straight, in one round trip
//!   instead of the cursor's four (`BEGIN`, `DECLARE`, `FETCH`, `COMMIT`).

use std::marker::PhantomData;

use diesel::connection::{DefaultLoadingMode, TransactionManager};
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::query_dsl::LoadQuery;
use diesel::{QueryResult, RunQueryDsl};
use gatehouse_domain::Error;

use crate::conn::AnyConnection;
use crate::errors::from_diesel;
use crate::tx::{self, Mode};
use crate::Backend;

/// How many rows a PostgreSQL cursor fetches at a time, and the largest page read without
/// one.
pub(crate) const FETCH_ROWS: u64 = 1000;

/// The cursor's name: one listing at a time per connection, closed when it is done.
const CURSOR: &str = "gatehouse_listing";

/// Runs `statement` and hands each row to `each` as it is read; `at_most` is the page's
/// limit, when it has one. An error of `each` stops the reading and is returned as it is.
pub(crate) fn each_row<Q, R>(
    conn: &mut AnyConnection,
    statement: Q,
    at_most: Option<u64>,
    each: &mut dyn FnMut(R) -> Result<(), Error>,
) -> Result<(), Error>
where
    Q: Query + QueryFragment<Backend> + QueryId + LoadQuery<'static, AnyConnection, R> + 'static,
    Fetch<Q::SqlType>: LoadQuery<'static, AnyConnection, R>,
    R: 'static,
{
    let bounded = at_most.is_some_and(|n| n <= FETCH_ROWS);
    if matches!(conn, AnyConnection::Sqlite(_)) || bounded {
        for row in statement
            .load_iter::<R, DefaultLoadingMode>(conn)
            .map_err(from_diesel)?
        {
            each(row.map_err(from_diesel)?)?;
        }
        return Ok(());
    }
    let in_transaction = AnyConnection::transaction_manager_status_mut(conn)
        .transaction_depth()
        .map_err(from_diesel)?
        .is_some();
    if in_transaction {
        through_cursor(conn, statement, each)?;
        // The caller's transaction goes on: free the name for its next listing.
        diesel::sql_query(format!("CLOSE {CURSOR}"))
            .execute(conn)
            .map(drop)
            .map_err(from_diesel)
    } else {
        // A read-only REPEATABLE READ transaction never loses a serialization race, so
        // `tx::run` runs this once; were it ever run again, the statement is gone and the
        // listing fails rather than hand its reader the rows twice.
        let mut statement = Some(statement);
        tx::run(conn, Mode::Read, |conn| {
            let statement = statement.take().ok_or_else(|| {
                Error::internal("streaming a listing", "the read was run a second time")
            })?;
            through_cursor(conn, statement, &mut *each)
        })
    }
}

/// Declares `statement` as the cursor and fetches it to the end, inside a transaction.
fn through_cursor<Q, R>(
    conn: &mut AnyConnection,
    statement: Q,
    each: &mut dyn FnMut(R) -> Result<(), Error>,
) -> Result<(), Error>
where
    Q: Query + QueryFragment<Backend> + QueryId + 'static,
    Fetch<Q::SqlType>: LoadQuery<'static, AnyConnection, R>,
    R: 'static,
{
    DeclareCursor(statement)
        .execute(conn)
        .map_err(from_diesel)?;
    loop {
        let mut fetched = 0;
        for row in Fetch::<Q::SqlType>(PhantomData)
            .load_iter::<R, DefaultLoadingMode>(conn)
            .map_err(from_diesel)?
        {
            each(row.map_err(from_diesel)?)?;
            fetched += 1;
        }
        if fetched < FETCH_ROWS {
            return Ok(());
        }
    }
}

/// `DECLARE gatehouse_listing NO SCROLL CURSOR FOR <statement>`, the statement's
/// parameters bound as they would be for the statement itself.
struct DeclareCursor<Q>(Q);

impl<Q: QueryFragment<Backend>> QueryFragment<Backend> for DeclareCursor<Q> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Backend>) -> QueryResult<()> {
        out.unsafe_to_cache_prepared();
        out.push_sql("DECLARE ");
        out.push_sql(CURSOR);
        out.push_sql(" NO SCROLL CURSOR FOR ");
        self.0.walk_ast(out.reborrow())
    }
}

impl<Q> QueryId for DeclareCursor<Q> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<Q> RunQueryDsl<AnyConnection> for DeclareCursor<Q> {}

/// `FETCH FORWARD 1000 FROM gatehouse_listing`, whose rows are those of the declared
/// statement, of SQL type `ST`.
pub(crate) struct Fetch<ST>(PhantomData<ST>);

impl<ST> Query for Fetch<ST> {
    type SqlType = ST;
}

impl<ST> QueryFragment<Backend> for Fetch<ST> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Backend>) -> QueryResult<()> {
        out.unsafe_to_cache_prepared();
        out.push_sql("FETCH FORWARD ");
        out.push_sql(&FETCH_ROWS.to_string());
        out.push_sql(" FROM ");
        out.push_sql(CURSOR);
        Ok(())
    }
}

impl<ST> QueryId for Fetch<ST> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<ST> RunQueryDsl<AnyConnection> for Fetch<ST> {}
