//! Session lookups in batches: the read every authenticated request needs (`/me` and every
//! admin route), taken off the request threads and answered for many requests at once.
//!
//! A request's lookup goes into a queue; a thread with a connection of its own takes
//! everything queued and answers it: on PostgreSQL with one prepared statement for the
//! whole batch, on SQLite with the prepared single-row statement per lookup inside one read
//! transaction (one round of file locks). It hands each request its own answer. While it
//! works, the next lookups queue up for the next batch. Under load one round trip then
//! serves dozens of requests and no request thread blocks on the database. Measured (wrk,
//! 2 cores, `/me`): PostgreSQL 13.8k → 63.8k a second at 64 connections, 16.2k → 40.1k at
//! 16, 5.7k → 7.0k at 1; SQLite (against reading on the request's own thread) 46–48k →
//! 63–67k at 64, 40.7k → 47.3k at 16 (p99 3.2 → 1.4 ms), 9.7k → 8.2k at 1.
//!
//! On SQLite a lookup that comes alone is read on the caller's thread instead
//! ([`SessionBatcher::inline_turn`]): an embedded read, no round trip, and at one connection
//! the hand-offs cost more than the read. Against always queueing, measured interleaved on
//! one machine: 8.7k → 9.4k a second at 1 connection, 48.0k → 49.1k at 16, 52.0k → 55.8k at
//! 64. PostgreSQL always queues: an async worker never waits on the network.
//!
//! Nothing is cached: every lookup is answered by a statement that starts after the lookup
//! was queued, so a user disabled, demoted or deleted before a request was made is seen as
//! such by that request.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TryRecvError, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use std::collections::HashMap;

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::PgConnection;
use gatehouse_domain::ports::session_reply;
use gatehouse_domain::{
    Error, SessionLookup, SessionReply, SessionState, User, UserId, UserRepo as _,
};

use crate::conn::AnyConnection;
use crate::errors::from_diesel;
use crate::manager::{Managed, Manager};
use crate::repo::SqlUserRepo;
use crate::rows::{session_state, SessionStateRow, UserRow};
use crate::schema::{sessions, users};
use crate::tx::{self, Mode};

/// The most lookups one batch answers (one statement on PostgreSQL, one read transaction
/// on SQLite).
const MAX_BATCH: usize = 256;

/// Threads taking batches from the queue, each with its own connection. One: two threads
/// sharing the queue measured slower at every concurrency (every lookup woke both: at one
/// connection 4.3k/s against 7.0k/s, at 64 49.7k/s against 63.8k/s).
const WORKERS: usize = 1;

/// After lookups overlapped, this many more queue before one may be read inline again:
/// under steady concurrency lookups overlap again well within it, and batches stay whole.
const STAY_BATCHED: u32 = 64;

/// A PostgreSQL batch's statement gives up after this long (a lookup is a primary-key
/// read: taking this long means something is wrong, and every queued request waits on it).
const STATEMENT_TIMEOUT: &str = "SET statement_timeout = '5s'";

struct Lookup {
    id: UserId,
    user_id: i64,
    session_id: i64,
    reply: SessionReply,
}

/// The queue of lookups and the thread that answers them. The thread ends when the last
/// clone of the `Database` holding this is dropped. The queue is bounded: while the
/// database stalls, lookups beyond the bound are refused at once (503 `overloaded`)
/// rather than piling up with their requests.
pub(crate) struct SessionBatcher {
    queue: SyncSender<Lookup>,
    /// Lookups queued or being answered by the thread.
    waiting: Arc<AtomicUsize>,
    /// Whether a lookup is being read on a request's thread (see
    /// [`inline_turn`](Self::inline_turn)).
    reading_inline: AtomicBool,
    /// How many more lookups queue without trying to read inline, since lookups last
    /// overlapped.
    stay_batched: AtomicU32,
}

impl std::fmt::Debug for SessionBatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionBatcher").finish_non_exhaustive()
    }
}

impl SessionBatcher {
    /// Starts the thread; it connects (with `manager`, as the pool would) on its first
    /// batch and again after losing its connection.
    ///
    /// While a connection attempt (the pool's or the batcher's) failed within
    /// `fail_fast_for`, a batch without a connection is answered "unavailable" at once
    /// instead of waiting for another attempt, as the pool answers.
    pub(crate) fn start(
        manager: Manager,
        fail_fast_for: Duration,
        max_queued: usize,
    ) -> std::io::Result<Self> {
        let (queue, lookups) = mpsc::sync_channel(max_queued.max(1));
        let lookups = Arc::new(Mutex::new(lookups));
        let manager = Arc::new(manager);
        let waiting = Arc::new(AtomicUsize::new(0));
        for i in 0..WORKERS {
            let (lookups, manager, waiting) = (lookups.clone(), manager.clone(), waiting.clone());
            thread::Builder::new()
                .name(format!("gatehouse-sessions-{i}"))
                .spawn(move || serve(&lookups, &manager, fail_fast_for, &waiting))?;
        }
        Ok(Self {
            queue,
            waiting,
            reading_inline: AtomicBool::new(false),
            stay_batched: AtomicU32::new(0),
        })
    }

    /// Queues a lookup, answered on the batcher's thread; answered at once with
    /// [`Error::Overloaded`] when the queue is full.
    pub(crate) fn submit(&self, id: UserId, session_id: i64) -> SessionLookup {
        let (reply, answer) = session_reply();
        let lookup = Lookup {
            id,
            user_id: id.get(),
            session_id,
            reply,
        };
        self.waiting.fetch_add(1, Ordering::AcqRel);
        let refused = match self.queue.try_send(lookup) {
            Ok(()) => None,
            Err(TrySendError::Full(lookup)) => Some((lookup, Error::Overloaded)),
            Err(TrySendError::Disconnected(lookup)) => Some((
                lookup,
                Error::unavailable("the session lookup thread stopped"),
            )),
        };
        if let Some((lookup, error)) = refused {
            self.waiting.fetch_sub(1, Ordering::AcqRel);
            lookup.reply.send(Err(error));
        }
        answer
    }

    /// A turn to read a lookup on the calling thread instead of queueing it: given only
    /// while lookups come one at a time, that is while nothing is queued or being answered,
    /// no other lookup is being read inline, and none of the last [`STAY_BATCHED`] lookups
    /// overlapped another. Alone, a lookup read inline saves the two thread hand-offs of the
    /// queue; as soon as lookups overlap they queue, and stay queued while they keep
    /// overlapping, because batches are faster then (reading inline whenever the queue
    /// happened to be empty measured 5 % slower than always queueing at 16 connections).
    pub(crate) fn inline_turn(&self) -> Option<InlineTurn<'_>> {
        let overlapping = self.waiting.load(Ordering::Acquire) != 0
            || self
                .reading_inline
                .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
                .is_err();
        if overlapping {
            self.stay_batched.store(STAY_BATCHED, Ordering::Relaxed);
            return None;
        }
        // Lookups overlapped a moment ago: keep batching a while, as they are likely to
        // again (a race between two callers here costs at worst one lookup's path).
        let left = self.stay_batched.load(Ordering::Relaxed);
        if left > 0 {
            self.stay_batched.store(left - 1, Ordering::Relaxed);
            self.reading_inline.store(false, Ordering::Release);
            return None;
        }
        Some(InlineTurn(&self.reading_inline))
    }
}

/// While held, other lookups queue (see [`SessionBatcher::inline_turn`]).
pub(crate) struct InlineTurn<'a>(&'a AtomicBool);

impl Drop for InlineTurn<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

/// A worker's life: take what is queued, answer it, repeat until the queue is gone.
fn serve(
    lookups: &Mutex<Receiver<Lookup>>,
    manager: &Manager,
    fail_fast_for: Duration,
    waiting: &AtomicUsize,
) {
    let mut conn: Option<Managed> = None;
    while let Some(batch) = next_batch(lookups) {
        // Opened before the database last became unavailable to a connection (a failover,
        // see `Managed::settle`), or cut short by its time limit: reconnect.
        if conn.as_ref().is_some_and(Managed::is_stale) {
            conn = None;
        }
        let outcome = if conn.is_none() && manager.failures().failed_within(fail_fast_for) {
            Err(Error::unavailable(
                "the database was unreachable a moment ago",
            ))
        } else {
            let outcome = answer(&mut conn, manager, &batch);
            match &mut conn {
                Some(managed) => managed.finish(outcome),
                None => outcome,
            }
        };
        // Counted as answered before the answers go out: a request woken by its answer may
        // send its next lookup before this thread gets any further, and must find it idle.
        waiting.fetch_sub(batch.len(), Ordering::AcqRel);
        match outcome {
            Ok(answers) => {
                for (lookup, answer) in batch.into_iter().zip(answers) {
                    lookup.reply.send(answer);
                }
            }
            Err(e) => {
                let unavailable = matches!(e, Error::Unavailable(_));
                if unavailable {
                    // Reconnect for the next batch: the server may be back by then.
                    conn = None;
                }
                let message = e.to_string();
                tracing::debug!(error = %message, lookups = batch.len(), "session lookups failed");
                for lookup in batch {
                    lookup.reply.send(Err(if unavailable {
                        Error::unavailable(message.clone())
                    } else {
                        Error::internal("looking up sessions", message.clone())
                    }));
                }
            }
        }
    }
}

/// Waits for one lookup, then takes whatever else is queued (up to [`MAX_BATCH`]).
/// `None` once every sender is gone.
fn next_batch(lookups: &Mutex<Receiver<Lookup>>) -> Option<Vec<Lookup>> {
    let lookups = lookups.lock().ok()?;
    let first = lookups.recv().ok()?;
    let mut batch = vec![first];
    while batch.len() < MAX_BATCH {
        match lookups.try_recv() {
            Ok(lookup) => batch.push(lookup),
            Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
        }
    }
    Some(batch)
}

type Answer = Result<Option<(User, Option<SessionState>)>, Error>;

/// An answer per lookup, in order: on PostgreSQL one statement for a batch of two or
/// more, else the repository's single-row lookup for each.
fn answer(
    conn: &mut Option<Managed>,
    manager: &Manager,
    batch: &[Lookup],
) -> Result<Vec<Answer>, Error> {
    let conn = match conn {
        Some(managed) => &mut managed.conn,
        None => {
            let mut opened = manager
                .open()
                .map_err(|e| Error::unavailable(e.to_string()))?;
            if let AnyConnection::Postgres(pg) = &mut opened.conn {
                pg.batch_execute(STATEMENT_TIMEOUT).map_err(from_diesel)?;
            }
            &mut conn.insert(opened).conn
        }
    };
    match (&mut *conn, batch) {
        (AnyConnection::Postgres(pg), [_, _, ..]) => answer_postgres(pg, batch),
        _ => answer_each(conn, batch),
    }
}

/// Every lookup with the repository's single-row statement (kept prepared); several in one
/// read transaction (on SQLite, one round of file locks for the whole batch).
fn answer_each(conn: &mut AnyConnection, batch: &[Lookup]) -> Result<Vec<Answer>, Error> {
    // A lost connection fails the whole batch (so that `serve` reconnects); any other
    // failure is the one lookup's.
    let lookups = |conn: &mut AnyConnection| -> Result<Vec<Answer>, Error> {
        let mut repo = SqlUserRepo { conn };
        batch
            .iter()
            .map(
                |lookup| match repo.find_session_user(lookup.id, lookup.session_id) {
                    Err(e @ Error::Unavailable(_)) => Err(e),
                    answer => Ok(answer),
                },
            )
            .collect()
    };
    if batch.len() == 1 {
        return lookups(conn);
    }
    tx::run(conn, Mode::Read, lookups)
}

/// One statement for the whole batch (`users.id = ANY($1)`, with the batch's sessions of
/// those users joined: a statement diesel keeps prepared, whatever the batch's size).
fn answer_postgres(pg: &mut PgConnection, batch: &[Lookup]) -> Result<Vec<Answer>, Error> {
    let ids: Vec<i64> = batch.iter().map(|l| l.user_id).collect();
    let session_ids: Vec<i64> = batch.iter().map(|l| l.session_id).collect();
    // A user's row once, or once per session of theirs among the batch's.
    let rows = users::table
        .left_join(
            sessions::table.on(sessions::id
                .eq_any(&session_ids)
                .and(sessions::user_id.eq(users::id))),
        )
        .filter(users::id.eq_any(&ids))
        .select((
            UserRow::as_select(),
            sessions::id.nullable(),
            (
                sessions::revoked_at.nullable(),
                sessions::idle_expires_at.nullable(),
                sessions::expires_at.nullable(),
            ),
        ))
        .load::<(UserRow, Option<i64>, SessionStateRow)>(pg)
        .map_err(from_diesel)?;
    let mut found: HashMap<i64, Result<User, String>> = HashMap::new();
    let mut states: HashMap<(i64, i64), SessionState> = HashMap::new();
    for (row, session_id, state) in rows {
        // Keyed by the row's own id, converted or not: a row that is no user fails every
        // lookup of its id below (an internal error), never answers "no such user".
        let id = row.id();
        let user = User::try_from(row).map_err(|e| e.to_string());
        if let Err(problem) = &user {
            tracing::error!(%problem, "a users row that is no user");
        }
        if let (Some(session_id), Some(state)) = (session_id, session_state(state)) {
            states.insert((id, session_id), state);
        }
        found.entry(id).or_insert(user);
    }
    Ok(batch
        .iter()
        .map(|lookup| match found.get(&lookup.user_id) {
            Some(Ok(user)) => Ok(Some((
                user.clone(),
                states.get(&(lookup.user_id, lookup.session_id)).copied(),
            ))),
            Some(Err(problem)) => Err(Error::internal("looking up sessions", problem.clone())),
            None => Ok(None),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)] // tests panic to fail

    use super::*;

    /// A batcher with nobody serving its queue: lookups stay queued.
    fn unserved() -> (SessionBatcher, Receiver<Lookup>) {
        let (queue, lookups) = mpsc::sync_channel(8);
        let batcher = SessionBatcher {
            queue,
            waiting: Arc::new(AtomicUsize::new(0)),
            reading_inline: AtomicBool::new(false),
            stay_batched: AtomicU32::new(0),
        };
        (batcher, lookups)
    }

    #[test]
    fn lookups_one_at_a_time_are_read_inline() {
        let (batcher, _lookups) = unserved();
        for _ in 0..(STAY_BATCHED * 2) {
            assert!(batcher.inline_turn().is_some());
        }
    }

    #[test]
    fn overlapping_lookups_queue_and_stay_queued_for_a_while() {
        let (batcher, _lookups) = unserved();
        let first = batcher.inline_turn().expect("alone");
        assert!(batcher.inline_turn().is_none(), "another is read inline");
        drop(first);
        for i in 0..STAY_BATCHED {
            assert!(
                batcher.inline_turn().is_none(),
                "lookup {i} after the overlap"
            );
        }
        assert!(batcher.inline_turn().is_some(), "quiet again");
    }

    #[test]
    fn a_queued_lookup_keeps_the_next_ones_queued() {
        let (batcher, lookups) = unserved();
        let id = UserId::new(1).unwrap();
        let _waits = batcher.submit(id, 1);
        for _ in 0..(STAY_BATCHED * 2) {
            assert!(batcher.inline_turn().is_none());
        }
        // Answered (as `serve` counts it): after the stay, lone lookups are read inline.
        let taken = lookups.try_recv().unwrap();
        batcher.waiting.fetch_sub(1, Ordering::AcqRel);
        taken.reply.send(Ok(None));
        for _ in 0..STAY_BATCHED {
            assert!(batcher.inline_turn().is_none());
        }
        assert!(batcher.inline_turn().is_some());
    }
}
