//! Statements kept prepared that diesel would prepare anew at every run.
//!
//! diesel keeps a statement prepared (per connection) only when it can tell that the
//! statement's text comes from a bounded set: it refuses every `UPDATE` (a changeset that
//! skips `None` fields has a text per combination of them), every raw `sql_query` and every
//! SQL literal. Those are parsed and planned again at each run: on SQLite some 20 µs for
//! an update of a user's row and ~100 µs for the outbox's record statement, inside the one
//! writer's turn that every write waits for; on PostgreSQL a parse and a plan per run.
//!
//! [`KeepPrepared::keep_prepared`] marks a statement whose text is fixed by the code (a
//! raw statement written as a constant, an update whose changeset writes every column,
//! `treat_none_as_null`) as safe to keep. The cache is keyed by the statement's text and
//! its bind types (diesel's key for statements without a static id), so a statement whose
//! text did vary would still be run right; only the cache would grow with each text. Never
//! wrap a statement whose text grows with its input (`IN` over a list of binds).
//!
//! Run a kept statement with `load` or `get_result`, never `execute`: `execute` hands the
//! statement on by reference, and diesel's impl for a reference asks the statement's parts
//! (the `UPDATE` among them) instead of this mark. So an update kept prepared returns a
//! column (`RETURNING`) and counts the rows it returned. The storage test
//! `prepared_statements` checks each kept statement on both backends.

use diesel::backend::Backend;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::{QueryResult, RunQueryDsl};

/// A statement kept prepared: see the module's docs.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Prepared<Q>(Q);

/// Wraps a statement in [`Prepared`].
pub(crate) trait KeepPrepared: Sized {
    /// This statement, kept prepared on its connection after its first run. Only for a
    /// statement whose text is fixed by the code (see the module's docs).
    fn keep_prepared(self) -> Prepared<Self> {
        Prepared(self)
    }
}

impl<Q> KeepPrepared for Q {}

impl<Q> QueryId for Prepared<Q> {
    type QueryId = ();

    // Keyed by its text and bind types, never by its type: the text is what was prepared.
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<Q, DB> QueryFragment<DB> for Prepared<Q>
where
    DB: Backend,
    Q: QueryFragment<DB>,
{
    fn walk_ast<'b>(&'b self, pass: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        self.0.walk_ast(pass)
    }

    fn is_safe_to_cache_prepared(&self, _backend: &DB) -> QueryResult<bool> {
        Ok(true)
    }
}

impl<Q: Query> Query for Prepared<Q> {
    type SqlType = Q::SqlType;
}

impl<Q, Conn> RunQueryDsl<Conn> for Prepared<Q> {}
