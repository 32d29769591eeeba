//! SQLite: this process's writers, one at a time, and group commit.
//!
//! Every write of this process takes its turn at [`Writers`] before `BEGIN IMMEDIATE`, so
//! writers queue in order instead of polling SQLite's busy handler (which sleeps up to
//! 100 ms between tries: with eight writers at once, registrations' p99 went from 51 ms to
//! 808 ms). Other processes on the file still meet at SQLite's own lock.
//!
//! A commit is one `fsync` of the write-ahead log, and each turn handed to a sleeping
//! thread is a wake-up: under load those two, not the statements, were what a write cost
//! (issue 17, docs/performance.md). So writes queued behind one another share
//! transactions (issue 17 did this for row-guarded writes, `UserStore::write_rows`; issue
//! 18 for every write, as SQLite runs each alone between the others in either mode):
//!
//! - A write finding a group open (a transaction begun by an earlier one and not yet
//!   committed) runs in it, inside a `SAVEPOINT` of its own; finding none, it begins one.
//! - When it is done and another writer is waiting for the turn, it leaves the transaction
//!   open, hands the turn on, and waits for the group's commit; the last of a run (nobody
//!   waiting, or [`MAX_GROUP`] members) commits for all and wakes them. One `fsync` for many.
//! - A piece whose work fails is rolled back to its savepoint: its changes are gone, the
//!   others' stay, exactly as if it had run alone. A piece that breaks the transaction
//!   itself (the savepoint cannot be released or rolled back) ends the group: every member
//!   is told the write failed.
//! - The readiness probe commits an open group before its own transaction (it proves that
//!   a commit goes through now).
//! - Nobody's answer comes before its commit: a member returns only once the group's
//!   commit is known, and reports its failure if the commit fails.
//!
//! Run one after another in one transaction, the pieces see each other's changes as
//! serialized transactions would (16 refreshes racing with one token: the first spends it,
//! the next find it spent; a demotion after another sees one admin fewer), so the rules
//! hold as before. A panic in a piece (a bug) fails the other members of its group: they
//! are told their write failed, never that it committed.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use gatehouse_domain::ports::Work;
use gatehouse_domain::Error;
use parking_lot::{Condvar, Mutex, MutexGuard};

use crate::errors::from_diesel;
use crate::repo::SqlUserRepo;
use crate::tx::{self, Mode};
use crate::Lease;

/// At most this many writes commit together, so that the first of a long run
/// does not wait for the whole run.
pub(crate) const MAX_GROUP: usize = 32;

/// How long a member waits for its group's commit before it takes the turn to commit it
/// itself: only when the writer the turn went to gave up waiting for it (a timeout).
const COMMIT_WAIT: Duration = Duration::from_millis(50);

/// The turn of this process's SQLite writers, with the group of writes that may be open.
#[derive(Default)]
pub(crate) struct Writers {
    slot: Mutex<Slot>,
    /// Writers waiting for the turn: the holder leaves a group open only when one is.
    queued: AtomicUsize,
    /// Groups committed, and the writes in them (see [`GroupCommits`]).
    commits: Arc<GroupCommits>,
}

/// How many writes were committed, in how many commits, since the start.
#[derive(Debug, Default)]
pub struct GroupCommits {
    commits: AtomicU64,
    writes: AtomicU64,
}

impl GroupCommits {
    /// (commits, writes in them).
    #[must_use]
    pub fn counts(&self) -> (u64, u64) {
        (
            self.commits.load(Ordering::Relaxed),
            self.writes.load(Ordering::Relaxed),
        )
    }
}

/// What the turn guards: the group open, if any.
#[derive(Default)]
pub(crate) struct Slot {
    open: Option<OpenGroup>,
}

impl Slot {
    /// Commits the open group, if any (its members learn the outcome).
    pub(crate) fn close(&mut self) {
        if let Some(group) = self.open.take() {
            let _ = group.close();
        }
    }
}

/// A transaction begun for queued writes and not yet committed.
struct OpenGroup {
    conn: Lease,
    counts: Arc<GroupCommits>,
    batch: Arc<Batch>,
    /// Pieces whose changes are in the transaction.
    members: usize,
}

/// A group's outcome, which its members wait for.
#[derive(Default)]
struct Batch {
    outcome: Mutex<Option<Result<(), String>>>,
    done: Condvar,
}

impl Batch {
    fn publish(&self, outcome: Result<(), String>) {
        let mut slot = self.outcome.lock();
        if slot.is_none() {
            *slot = Some(outcome);
        }
        self.done.notify_all();
    }
}

/// How one piece of work went in a group's transaction.
enum Piece {
    /// Its changes are in the transaction.
    Joined,
    /// Its work failed; its changes were rolled back to its savepoint.
    Refused(Error),
    /// The transaction itself failed; the group cannot go on.
    Broken(Error),
}

impl OpenGroup {
    fn begin(mut conn: Lease, counts: Arc<GroupCommits>) -> Result<Self, Error> {
        match tx::begin(&mut conn, Mode::WriteRows) {
            Ok(()) => Ok(Self {
                conn,
                counts,
                batch: Arc::default(),
                members: 0,
            }),
            Err(e) => conn.finish(Err(from_diesel(e))),
        }
    }

    /// Runs `work` in a savepoint of the group's transaction.
    fn piece(&mut self, work: &mut Work<'_>) -> Piece {
        if let Err(e) = tx::savepoint(&mut self.conn) {
            return Piece::Broken(from_diesel(e));
        }
        match work(&mut SqlUserRepo {
            conn: &mut self.conn,
        }) {
            Ok(()) => match tx::release(&mut self.conn) {
                Ok(()) => {
                    self.members += 1;
                    Piece::Joined
                }
                Err(e) => Piece::Broken(e),
            },
            Err(error) => match tx::rollback_to_savepoint(&mut self.conn) {
                Ok(()) => Piece::Refused(error),
                Err(rollback) => {
                    tracing::warn!(error = %rollback, "rollback to a savepoint failed");
                    Piece::Broken(error)
                }
            },
        }
    }

    /// Commits (or, with no members, rolls back) and tells the members the outcome.
    fn close(mut self) -> Result<(), Error> {
        let outcome = if self.members == 0 {
            tx::rollback(&mut self.conn).map_err(from_diesel)
        } else {
            tx::commit(&mut self.conn)
        };
        let outcome = self.conn.finish(outcome);
        if outcome.is_ok() && self.members > 0 {
            self.counts.commits.fetch_add(1, Ordering::Relaxed);
            self.counts
                .writes
                .fetch_add(self.members as u64, Ordering::Relaxed);
        }
        self.batch.publish(match &outcome {
            Ok(()) => Ok(()),
            Err(error) => Err(error.to_string()),
        });
        outcome
    }

    /// Gives the group up after `error` broke its transaction.
    fn abort(mut self, error: &Error) {
        if let Err(rollback) = tx::rollback(&mut self.conn) {
            tracing::warn!(error = %rollback, "rollback failed");
        }
        let _ = self
            .conn
            .finish::<()>(Err(Error::unavailable(error.to_string())));
        self.batch.publish(Err(error.to_string()));
    }
}

impl Drop for OpenGroup {
    /// A group dropped unclosed (a panic in a piece's work): its members must not wait for
    /// a commit that will not come. The connection, still in a transaction, is discarded
    /// by the pool.
    fn drop(&mut self) {
        self.batch
            .publish(Err("the write's transaction was abandoned".to_owned()));
    }
}

impl Writers {
    /// The counts of group commits so far.
    pub(crate) fn commits(&self) -> &Arc<GroupCommits> {
        &self.commits
    }

    /// Waits at most `timeout` for the turn; longer is "unavailable", as SQLite's busy
    /// timeout was.
    pub(crate) fn turn(&self, timeout: Duration) -> Result<MutexGuard<'_, Slot>, Error> {
        self.queued.fetch_add(1, Ordering::SeqCst);
        let turn = self.slot.try_lock_for(timeout);
        self.queued.fetch_sub(1, Ordering::SeqCst);
        turn.ok_or_else(|| Error::unavailable("another write held the database past the timeout"))
    }

    /// Runs `work` as a write with the turn `slot`, in the open group or a new
    /// one (see the module's docs); `connection` lends a connection for a new group.
    pub(crate) fn write(
        &self,
        mut slot: MutexGuard<'_, Slot>,
        timeout: Duration,
        connection: impl FnOnce() -> Result<Lease, Error>,
        work: &mut Work<'_>,
    ) -> Result<(), Error> {
        let mut group = match slot.open.take() {
            Some(group) if group.members < MAX_GROUP => group,
            full => {
                if let Some(group) = full {
                    let _ = group.close();
                }
                OpenGroup::begin(connection()?, Arc::clone(&self.commits))?
            }
        };
        let piece = group.piece(work);
        if let Piece::Broken(error) = piece {
            group.abort(&error);
            MutexGuard::unlock_fair(slot);
            return Err(error);
        }
        let batch = Arc::clone(&group.batch);
        if self.queued.load(Ordering::SeqCst) > 0 && group.members < MAX_GROUP {
            // The next writer in line carries the group on (or commits it).
            slot.open = Some(group);
            MutexGuard::unlock_fair(slot);
            return match piece {
                Piece::Refused(error) | Piece::Broken(error) => Err(error),
                Piece::Joined => self.await_commit(&batch, timeout),
            };
        }
        let committed = group.close();
        // Straight to the next writer in line, not to whoever grabs the lock first.
        MutexGuard::unlock_fair(slot);
        match piece {
            Piece::Refused(error) | Piece::Broken(error) => Err(error),
            Piece::Joined => committed,
        }
    }

    /// Waits for the commit of a group this write's changes are in.
    fn await_commit(&self, batch: &Batch, timeout: Duration) -> Result<(), Error> {
        let deadline = Instant::now() + timeout;
        let mut outcome = batch.outcome.lock();
        loop {
            if let Some(known) = outcome.as_ref() {
                return known.clone().map_err(|message| {
                    Error::unavailable(format!("the write's commit failed: {message}"))
                });
            }
            if batch.done.wait_for(&mut outcome, COMMIT_WAIT).timed_out() {
                // The writer the turn went to gave up before taking it: commit the group
                // (or whatever group is open, which must be committed before ours could
                // be anyway) ourselves.
                MutexGuard::unlocked(&mut outcome, || {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if let Ok(mut slot) = self.turn(left) {
                        slot.close();
                        MutexGuard::unlock_fair(slot);
                    }
                });
                if outcome.is_none() && Instant::now() >= deadline {
                    return Err(Error::unavailable(
                        "the write's commit did not finish within the timeout; whether it \
                         committed is unknown",
                    ));
                }
            }
        }
    }
}
