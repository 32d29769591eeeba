//! Logs: tracing to stderr, filtered by `RUST_LOG`, one span per request with its id; as
//! text lines, or one JSON object per line (`GATEHOUSE_LOG_FORMAT=json`) for log shippers.
//! Nothing here ever records a password, hash or token: request spans carry the method,
//! route, peer and status only, never headers or bodies.
//!
//! Lines leave the thread that logs them at once. The subscriber formats each line in its
//! per-thread buffer; [`LineWriter`] copies it onto the end of one shared byte queue (no
//! allocation, a lock held for a copy) and wakes the writer thread only when the queue was
//! empty. The writer thread swaps the queue for its spare buffer, writes it to stderr in
//! one call, and then lets a millisecond of lines gather before the next write: a busy
//! service makes about a thousand writes a second whatever its request rate, and a quiet
//! one's line is out within microseconds. A request thread never waits for the terminal,
//! a pipe or journald: when the queue holds [`QUEUE_BYTES`] (stderr blocked, or lines
//! coming faster than it takes them), a line is dropped and counted
//! (`gatehouse_log_lines_dropped_total` in `/metrics`).

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, PoisonError};
use std::thread;
use std::time::Duration;

use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// The most bytes of lines waiting for the writer thread: about 8 000 access lines, a
/// tenth of a second of the busiest access log measured on one machine.
const QUEUE_BYTES: usize = 2 * 1024 * 1024;

/// How long the writer thread lets lines gather after a write.
const GATHER: Duration = Duration::from_millis(1);

/// A spare buffer above this size is given back after a burst, so that memory returns to
/// its quiet size.
const KEPT_CAPACITY: usize = 256 * 1024;

/// How long a stop waits for the queued lines to be written (stderr may be blocked).
const STOP_WAIT: Duration = Duration::from_secs(2);

/// The dropped-line count of the installed subscriber, for `/metrics`.
static DROPPED: OnceLock<Arc<Queue>> = OnceLock::new();

/// The lines waiting for the writer thread.
#[derive(Debug, Default)]
struct Queue {
    pending: Mutex<Pending>,
    wake: Condvar,
    dropped: AtomicU64,
}

#[derive(Debug, Default)]
struct Pending {
    bytes: Vec<u8>,
    stopping: bool,
}

impl Queue {
    fn lock(&self) -> MutexGuard<'_, Pending> {
        // A panic while holding the lock leaves only bytes behind: still fine to write.
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues one formatted line, or drops it when the queue is full.
    fn push(&self, line: &[u8]) {
        let mut pending = self.lock();
        if pending.stopping || pending.bytes.len() + line.len() > QUEUE_BYTES {
            drop(pending);
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let was_empty = pending.bytes.is_empty();
        pending.bytes.extend_from_slice(line);
        drop(pending);
        if was_empty {
            self.wake.notify_one();
        }
    }

    /// The writer thread: writes what is queued until told to stop, then what is left.
    fn drain(&self, mut out: impl Write) {
        let mut spare = Vec::new();
        loop {
            let stopping = {
                let mut pending = self.lock();
                while pending.bytes.is_empty() && !pending.stopping {
                    pending = self
                        .wake
                        .wait(pending)
                        .unwrap_or_else(PoisonError::into_inner);
                }
                std::mem::swap(&mut pending.bytes, &mut spare);
                pending.stopping
            };
            // Nowhere to report a failed write to: the line is lost either way.
            let _ = out.write_all(&spare).and_then(|()| out.flush());
            spare.clear();
            if spare.capacity() > KEPT_CAPACITY {
                spare.shrink_to(KEPT_CAPACITY / 4);
            }
            if stopping {
                return;
            }
            thread::sleep(GATHER);
        }
    }
}

/// The subscriber's writer: each event's line goes onto the queue whole (the subscriber
/// writes a line with one `write_all`).
#[derive(Debug, Clone)]
struct LineWriter(Arc<Queue>);

impl Write for LineWriter {
    fn write(&mut self, line: &[u8]) -> std::io::Result<usize> {
        self.0.push(line);
        Ok(line.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for LineWriter {
    type Writer = Self;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// Keeps the writer thread going; dropping it writes out what is queued (waiting at most
/// [`STOP_WAIT`]), so hold it until the process's last line.
#[must_use = "dropping it stops the log writer"]
pub struct Logging {
    writer: Option<(Arc<Queue>, std::sync::mpsc::Receiver<()>)>,
}

impl Drop for Logging {
    fn drop(&mut self) {
        if let Some((queue, done)) = self.writer.take() {
            queue.lock().stopping = true;
            queue.wake.notify_one();
            let _ = done.recv_timeout(STOP_WAIT);
        }
    }
}

/// Installs the global subscriber (and routes `log` records, such as actix's, into it).
pub fn init(filter: &str, format: LogFormat) -> Logging {
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let ansi = std::io::stderr().is_terminal();
    let queue = Arc::new(Queue::default());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(LineWriter(queue.clone()));
    // A second call (in tests) keeps the first subscriber, which is what we want.
    let installed = match format {
        LogFormat::Text => builder.with_ansi(ansi).try_init(),
        // The event's fields at the top level beside `timestamp`, `level` and `target`;
        // the request's span (method, route, request id, …) under `span`.
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
    };
    if installed.is_err() {
        return Logging { writer: None };
    }
    let (finished, done) = std::sync::mpsc::channel();
    let draining = queue.clone();
    let spawned = thread::Builder::new()
        .name("gatehouse-log".to_owned())
        .spawn(move || {
            draining.drain(std::io::stderr());
            let _ = finished.send(());
        });
    if let Err(e) = spawned {
        // Start-up, before any request: say so plainly and go on without lines.
        eprintln!("gatehouse: cannot start the log writer thread ({e}); logging nothing");
        queue.lock().stopping = true;
        return Logging { writer: None };
    }
    let _ = DROPPED.set(queue.clone());
    Logging {
        writer: Some((queue, done)),
    }
}

/// Log lines dropped so far because the writer could not keep up.
pub fn dropped_lines() -> u64 {
    DROPPED
        .get()
        .map_or(0, |queue| queue.dropped.load(Ordering::Relaxed))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An output that takes nothing until released: a blocked stderr.
    #[derive(Clone, Default)]
    struct Gate {
        open: Arc<(Mutex<bool>, Condvar)>,
        written: Arc<Mutex<Vec<u8>>>,
    }

    impl Gate {
        fn open(&self) {
            *self.open.0.lock().unwrap() = true;
            self.open.1.notify_all();
        }
    }

    impl Write for Gate {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            let (lock, cvar) = &*self.open;
            let _open = cvar
                .wait_while(lock.lock().unwrap(), |open| !*open)
                .unwrap();
            self.written.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn start(queue: &Arc<Queue>, out: Gate) -> thread::JoinHandle<()> {
        let queue = queue.clone();
        thread::spawn(move || queue.drain(out))
    }

    #[test]
    fn lines_come_out_whole_and_in_order_and_a_stop_writes_the_rest() {
        let queue = Arc::new(Queue::default());
        let out = Gate::default();
        out.open();
        let writer = start(&queue, out.clone());
        let mut line = LineWriter(queue.clone());
        let expected: String = (0..1000).map(|n| format!("line {n}\n")).collect();
        for n in 0..1000 {
            line.write_all(format!("line {n}\n").as_bytes()).unwrap();
        }
        queue.lock().stopping = true;
        queue.wake.notify_one();
        writer.join().unwrap();
        assert_eq!(
            String::from_utf8(out.written.lock().unwrap().clone()).unwrap(),
            expected
        );
        assert_eq!(queue.dropped.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn a_blocked_output_drops_and_counts_lines_instead_of_blocking() {
        let queue = Arc::new(Queue::default());
        let out = Gate::default();
        let writer = start(&queue, out.clone());
        let mut line = [b'x'; 1024];
        line[1023] = b'\n';
        let lines = 4 * QUEUE_BYTES / 1024;
        let mut sink = LineWriter(queue.clone());
        for _ in 0..lines {
            // Never blocks, though nothing is taken.
            sink.write_all(&line).unwrap();
        }
        // At most what the writer took before it blocked and a full queue were kept.
        let dropped = queue.dropped.load(Ordering::Relaxed);
        let kept = 2 * QUEUE_BYTES / 1024;
        assert!(
            dropped >= (lines - kept) as u64 && dropped < lines as u64,
            "{dropped} of {lines} lines dropped"
        );
        out.open();
        queue.lock().stopping = true;
        queue.wake.notify_one();
        writer.join().unwrap();
        let written = out.written.lock().unwrap().len();
        // What the writer took before it blocked, and a full queue.
        assert!(written > 0 && written <= 2 * QUEUE_BYTES, "{written}");
        // Writes after the stop are dropped too, never stuck.
        sink.write_all(b"late\n").unwrap();
        assert!(queue.dropped.load(Ordering::Relaxed) > dropped);
    }
}
