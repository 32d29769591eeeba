//! A client-side time limit on every PostgreSQL call (`GATEHOUSE_DATABASE_STATEMENT_TIMEOUT`).
//!
//! libpq waits for a server's answer as long as the socket stays open, and a server that
//! is frozen (stopped, swapped out, its host hung) or waiting for a synchronous standby
//! that is gone keeps it open: its kernel still acknowledges every packet, so neither
//! TCP keepalives nor `tcp_user_timeout` end the wait, and a server-side
//! `statement_timeout` cannot help a server that does not run (nor a COMMIT: PostgreSQL
//! turns it off before the commit's wait for the standby).
//!
//! So every PostgreSQL connection's socket is registered here when it is opened (the
//! patched `pq-sys` tells which socket libpq opened, see `vendor/README.md`), and diesel's
//! instrumentation arms the connection's deadline when a statement starts and disarms it
//! when the statement's answer is in. One thread, shared by the process, looks at the armed
//! deadlines a few times a second; a call past its deadline has its socket shut down
//! (`shutdown(2)`): the thread blocked on it returns at once with "connection lost", the
//! request is answered 503 `database_unavailable`, and the pool discards the connection.
//! Nothing is sent to the server: a cancel request would end a COMMIT's wait for the
//! standby and make PostgreSQL report success for a write that may not be replicated.
//!
//! A socket is only ever shut down while its connection is open: the connection's
//! [`Watch`] is dropped before the connection (which closes the descriptor), and dropping
//! it takes the same lock the watchdog shuts sockets down under. A descriptor number
//! reused by another socket after the close is never touched.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};

use diesel::connection::{Instrumentation, InstrumentationEvent};
use diesel::{Connection, PgConnection};

/// How often the watchdog looks at the deadlines: a call is cut at most this long after
/// its limit.
const TICK: Duration = Duration::from_millis(100);

/// One connection's registration: its socket while the connection is open, and the
/// deadline of the call under way.
#[derive(Debug)]
struct Slot {
    /// The connection's socket; `None` once the connection is closing or its socket was
    /// shut down.
    socket: Mutex<Option<i32>>,
    /// When the call under way must have its answer, in milliseconds after the watchdog's
    /// epoch; 0 while no call is under way.
    deadline: AtomicU64,
    /// The connection's limit per call, in milliseconds.
    limit: u64,
    /// Whether the watchdog shut the socket down.
    expired: AtomicBool,
}

impl Slot {
    fn arm(&self) {
        let deadline = watchdog().now().saturating_add(self.limit).max(1);
        self.deadline.store(deadline, Ordering::Release);
    }

    fn disarm(&self) {
        self.deadline.store(0, Ordering::Release);
    }
}

/// Keeps a connection registered with the watchdog; dropping it (before the connection,
/// see the module's text) ends the registration.
#[derive(Debug)]
pub(crate) struct Watch(Arc<Slot>);

impl Watch {
    /// Whether the watchdog cut a call on this connection short (its socket is shut down).
    pub(crate) fn expired(&self) -> bool {
        self.0.expired.load(Ordering::Acquire)
    }

    /// The limit of each call on the connection.
    pub(crate) fn limit(&self) -> Duration {
        Duration::from_millis(self.0.limit)
    }

    /// Ends any deadline left armed (a statement that failed before it was sent emits no
    /// "finished" event); called when a unit of work on the connection is over.
    pub(crate) fn disarm(&self) {
        self.0.disarm();
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        if let Ok(mut socket) = self.0.socket.lock() {
            *socket = None;
        }
    }
}

/// Diesel's instrumentation on a watched connection: arms the deadline when a statement
/// starts, disarms it when its answer is in (or failed).
struct Arm(Arc<Slot>);

impl Instrumentation for Arm {
    fn on_connection_event(&mut self, event: InstrumentationEvent<'_>) {
        match event {
            InstrumentationEvent::StartQuery { .. } => self.0.arm(),
            InstrumentationEvent::FinishQuery { .. } => self.0.disarm(),
            _ => {}
        }
    }
}

/// Registers a PostgreSQL connection whose socket is `socket`: from now on each of its
/// calls ends within `limit` (plus up to [`TICK`]). Keep the returned [`Watch`] beside the
/// connection, declared before it, so that it is dropped first.
pub(crate) fn watch(conn: &mut PgConnection, socket: i32, limit: Duration) -> Watch {
    let slot = Arc::new(Slot {
        socket: Mutex::new(Some(socket)),
        deadline: AtomicU64::new(0),
        limit: u64::try_from(limit.as_millis()).unwrap_or(u64::MAX).max(1),
        expired: AtomicBool::new(false),
    });
    conn.set_instrumentation(Arm(slot.clone()));
    watchdog().register(&slot);
    Watch(slot)
}

/// The process's watchdog: the registered connections, and the thread that cuts calls
/// past their deadline.
struct Watchdog {
    epoch: Instant,
    slots: Mutex<Vec<Weak<Slot>>>,
}

fn watchdog() -> &'static Watchdog {
    static WATCHDOG: OnceLock<&'static Watchdog> = OnceLock::new();
    WATCHDOG.get_or_init(|| {
        let watchdog: &'static Watchdog = Box::leak(Box::new(Watchdog {
            epoch: Instant::now(),
            slots: Mutex::new(Vec::new()),
        }));
        let started = std::thread::Builder::new()
            .name("gatehouse-db-deadlines".into())
            .spawn(move || loop {
                std::thread::sleep(TICK);
                watchdog.cut_expired();
            });
        if let Err(error) = started {
            // Without the thread calls have no client-side limit; everything else works.
            tracing::error!(%error, "cannot start the database time-limit thread");
        }
        watchdog
    })
}

impl Watchdog {
    fn now(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn register(&self, slot: &Arc<Slot>) {
        if let Ok(mut slots) = self.slots.lock() {
            slots.retain(|slot| slot.strong_count() > 0);
            slots.push(Arc::downgrade(slot));
        }
    }

    /// Shuts down the socket of every call past its deadline.
    fn cut_expired(&self) {
        let now = self.now();
        let expired: Vec<Arc<Slot>> = match self.slots.lock() {
            Ok(mut slots) => {
                slots.retain(|slot| slot.strong_count() > 0);
                slots
                    .iter()
                    .filter_map(Weak::upgrade)
                    .filter(|slot| {
                        let deadline = slot.deadline.load(Ordering::Acquire);
                        deadline != 0 && deadline <= now
                    })
                    .collect()
            }
            Err(_) => return,
        };
        for slot in expired {
            let Ok(mut socket) = slot.socket.lock() else {
                continue;
            };
            // Still armed (the answer may have come in meanwhile) and still open.
            let deadline = slot.deadline.load(Ordering::Acquire);
            if deadline == 0 || deadline > now {
                continue;
            }
            if let Some(fd) = socket.take() {
                slot.expired.store(true, Ordering::Release);
                let outcome = pq_sys::hooks::shutdown_socket(fd);
                tracing::warn!(
                    limit_ms = slot.limit,
                    shutdown = ?outcome.err(),
                    "a database call outlived GATEHOUSE_DATABASE_STATEMENT_TIMEOUT; its connection was dropped (not cancelled)"
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deadline_is_armed_and_disarmed() {
        let slot = Slot {
            socket: Mutex::new(None),
            deadline: AtomicU64::new(0),
            limit: 5_000,
            expired: AtomicBool::new(false),
        };
        slot.arm();
        let armed = slot.deadline.load(Ordering::Acquire);
        assert!(armed >= 5_000, "{armed}");
        slot.disarm();
        assert_eq!(slot.deadline.load(Ordering::Acquire), 0);
    }
}
