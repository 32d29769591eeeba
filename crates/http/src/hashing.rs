//! A bounded lane for bcrypt: `threads` dedicated threads hash, at most `max_waiting`
//! requests queue behind them, the rest are answered 503 at once. Logins then never take
//! more than their share of the cores, and a flood of them cannot pile up without bound.
//!
//! The hashing threads run at a lower scheduling priority (Linux: `SCHED_BATCH` and a
//! higher nice value) than the threads that serve requests. Alone, bcrypt still gets every
//! core it is given; in a login flood, a `/me` that wakes up preempts a hash instead of
//! waiting out its time slice, so cheap requests keep flowing while logins take the rest.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use crate::error::ApiError;
use crate::observe::Metrics;

/// How much lower than the request threads the hashing threads run by default: at nice 3
/// a hash has about half a request thread's weight when both want a core (the
/// measurements behind the choice are in docs/performance.md).
pub const DEFAULT_HASHING_NICE: u8 = 3;

type Job = Box<dyn FnOnce() + Send + 'static>;

/// The bcrypt lane shared by every worker.
#[derive(Debug)]
pub struct HashingPool {
    jobs: Mutex<mpsc::Sender<Job>>,
    waiting: Arc<AtomicUsize>,
    max_waiting: usize,
    /// How long a queued job may wait for a thread before its request is answered 503
    /// `overloaded` (milliseconds).
    max_wait_ms: AtomicU64,
    threads: usize,
    metrics: Option<Arc<Metrics>>,
}

/// How long a queued job waits for a hashing thread unless set otherwise.
const DEFAULT_MAX_WAIT: Duration = Duration::from_secs(5);

/// Holds a place in the queue until the job starts (or is dropped unstarted).
#[derive(Debug)]
struct QueueSlot(Arc<AtomicUsize>);

impl Drop for QueueSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl HashingPool {
    /// A lane of `threads` hashing threads and `max_waiting` queued requests, at the
    /// default priority.
    #[must_use]
    pub fn new(threads: usize, max_waiting: usize) -> Self {
        Self::spawn(threads, max_waiting, DEFAULT_HASHING_NICE)
    }

    /// `threads` hashing threads at nice `nice` (0 to 19: 0 is the request threads' own
    /// priority), 32 waiting per core.
    #[must_use]
    pub fn with_threads_and_nice(threads: usize, nice: u8) -> Self {
        Self::spawn(threads, 32 * Self::cores(), nice)
    }

    fn spawn(threads: usize, max_waiting: usize, nice: u8) -> Self {
        let threads = threads.max(1);
        let (tx, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..threads {
            let rx = rx.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("gatehouse-bcrypt-{i}"))
                .spawn(move || {
                    lower_this_threads_priority(nice);
                    loop {
                        // The lock is held only while waiting for the next job.
                        let job = match rx.lock() {
                            Ok(rx) => rx.recv(),
                            Err(_) => return,
                        };
                        match job {
                            Ok(job) => job(),
                            Err(_) => return, // the pool is gone
                        }
                    }
                });
            if let Err(e) = spawned {
                tracing::error!(error = %e, "cannot start a bcrypt thread");
            }
        }
        Self {
            jobs: Mutex::new(tx),
            waiting: Arc::new(AtomicUsize::new(0)),
            max_waiting,
            max_wait_ms: AtomicU64::new(millis(DEFAULT_MAX_WAIT)),
            threads,
            metrics: None,
        }
    }

    /// Sized to the machine: one hash per core, 32 waiting per core.
    #[must_use]
    pub fn for_this_machine() -> Self {
        Self::with_threads(Self::cores())
    }

    /// `threads` hashes at once (the share of the cores bcrypt may take), 32 waiting per
    /// core.
    #[must_use]
    pub fn with_threads(threads: usize) -> Self {
        Self::new(threads, 32 * Self::cores())
    }

    /// Records each request's wait for a thread in these metrics.
    #[must_use]
    pub(crate) fn with_metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// The cores this process may use.
    #[must_use]
    pub fn cores() -> usize {
        std::thread::available_parallelism().map_or(1, usize::from)
    }

    /// How long a queued job may wait for a thread (5 s unless set) before its request is
    /// answered 503 `overloaded` and the job dropped unstarted. A job that started runs to
    /// its end (a hash is bounded work).
    pub fn set_max_wait(&self, wait: Duration) {
        self.max_wait_ms.store(millis(wait), Ordering::Release);
    }

    /// How many hashing threads the lane has.
    #[must_use]
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// Requests waiting for a hashing thread right now.
    #[must_use]
    pub fn queued(&self) -> usize {
        self.waiting.load(Ordering::Acquire)
    }

    /// Runs `work` (which hashes or verifies) on a hashing thread, in the caller's log
    /// span. A request whose client left before its turn is dropped unstarted.
    ///
    /// # Errors
    /// 503 `overloaded` when the queue is full; 500 if the lane is gone.
    pub async fn run<T, F>(&self, work: F) -> Result<T, ApiError>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        self.reserve()?.run(work).await
    }

    /// Whether the queue has room right now (without taking a place): a request that
    /// must do something else before it hashes (count a login attempt) asks first, so
    /// that in a flood it is refused (503 `overloaded`) before it changes anything.
    #[must_use]
    pub fn has_room(&self) -> bool {
        self.waiting.load(Ordering::Acquire) < self.max_waiting
    }

    /// Takes a place in the queue now, for work to hand over later.
    ///
    /// # Errors
    /// 503 `overloaded` when the queue is full.
    pub fn reserve(&self) -> Result<HashingTicket<'_>, ApiError> {
        if self.waiting.fetch_add(1, Ordering::AcqRel) >= self.max_waiting {
            self.waiting.fetch_sub(1, Ordering::AcqRel);
            return Err(ApiError::overloaded());
        }
        Ok(HashingTicket {
            pool: self,
            slot: QueueSlot(self.waiting.clone()),
        })
    }
}

/// A place in the hashing queue (see [`HashingPool::reserve`]); dropping it unused gives
/// the place back.
#[derive(Debug)]
pub struct HashingTicket<'a> {
    pool: &'a HashingPool,
    slot: QueueSlot,
}

impl HashingTicket<'_> {
    /// Runs `work` on a hashing thread in this ticket's place, as [`HashingPool::run`].
    ///
    /// # Errors
    /// 500 if the lane is gone.
    pub async fn run<T, F>(self, work: F) -> Result<T, ApiError>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let Self { pool, slot } = self;
        let (tx, rx) = oneshot::channel();
        let span = tracing::Span::current();
        let metrics = pool.metrics.clone();
        let queued_at = Instant::now();
        let started = Arc::new(AtomicBool::new(false));
        let has_started = started.clone();
        let job: Job = Box::new(move || {
            drop(slot);
            if tx.is_closed() {
                return; // nobody waits for the answer any more
            }
            has_started.store(true, Ordering::Release);
            if let Some(metrics) = metrics {
                metrics.hashing_waited(queued_at.elapsed().as_secs_f64());
            }
            let _ = tx.send(span.in_scope(work));
        });
        pool.jobs
            .lock()
            .map_err(|_| ApiError::internal(&LaneGone))?
            .send(job)
            .map_err(|_| ApiError::internal(&LaneGone))?;
        let max_wait = Duration::from_millis(pool.max_wait_ms.load(Ordering::Acquire));
        let mut rx = rx;
        match tokio::time::timeout(max_wait, &mut rx).await {
            Ok(answer) => answer.map_err(|_| ApiError::internal(&LaneGone)),
            // Still in line: give up the place (the job, once a thread takes it, finds
            // nobody waiting and is dropped unstarted).
            Err(_) if !started.load(Ordering::Acquire) => Err(ApiError::overloaded()),
            Err(_) => rx.await.map_err(|_| ApiError::internal(&LaneGone)),
        }
    }
}

fn millis(wait: Duration) -> u64 {
    u64::try_from(wait.as_millis()).unwrap_or(u64::MAX)
}

#[derive(Debug, thiserror::Error)]
#[error("the bcrypt threads are gone")]
struct LaneGone;

/// Lowers the calling thread `nice` steps below the request threads (Linux: `SCHED_BATCH`,
/// and a nice value `nice` above the thread's own, 19 at most); failing that, it stays as
/// it was, which is only less fair. Threads it starts afterwards inherit the lower
/// priority. Background work (the bcrypt lane, the outbox's sending) runs so. The step is
/// relative: a server started under `nice -n 12` by root would otherwise have set these
/// threads to nice 3 and 10, above its request threads.
pub fn lower_this_threads_priority(nice: u8) {
    if nice == 0 {
        return;
    }
    #[cfg(target_os = "linux")]
    {
        use thread_priority::{
            set_thread_priority_and_policy, thread_native_id, NormalThreadSchedulePolicy,
            ThreadPriority, ThreadPriorityValue, ThreadSchedulePolicy,
        };
        let target = (this_threads_nice().unwrap_or(0) + i32::from(nice)).min(19);
        // thread-priority maps 0..=99 onto nice 19..=-20; find the value for `target`.
        let value = (0..=99u8)
            .rev()
            .find(|&p| niceness_of(p) >= target)
            .and_then(|p| ThreadPriorityValue::try_from(p).ok());
        let Some(value) = value else { return };
        let outcome = set_thread_priority_and_policy(
            thread_native_id(),
            ThreadPriority::Crossplatform(value),
            ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Batch),
        );
        if let Err(e) = outcome {
            tracing::debug!(error = ?e, "bcrypt threads keep the default priority");
        }
    }
}

/// The calling thread's nice value, from `/proc/thread-self/stat` (field 19).
#[cfg(target_os = "linux")]
pub(crate) fn this_threads_nice() -> Option<i32> {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").ok()?;
    // The name (field 2) may hold spaces and parentheses: count from its closing one.
    let (_, rest) = stat.rsplit_once(')')?;
    rest.split_whitespace().nth(16)?.parse().ok()
}

/// The nice value thread-priority gives a cross-platform priority `p` on Linux.
#[cfg(target_os = "linux")]
fn niceness_of(p: u8) -> i32 {
    let ratio = 1f32 - f32::from(p) / 99f32;
    // As the crate computes it: 39 steps from -20.
    #[allow(clippy::cast_possible_truncation)]
    let steps = (39f32 * ratio) as i32;
    steps - 20
}

#[cfg(test)]
mod tests {
    use super::*;

    type Busy = actix_web::rt::task::JoinHandle<Result<Option<()>, ApiError>>;

    /// Occupies the pool's only thread until the returned sender sends; returns once the
    /// job runs (its queue slot given back as it starts).
    async fn occupy(pool: &Arc<HashingPool>) -> (std::sync::mpsc::Sender<()>, Busy) {
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let (started_tx, started) = std::sync::mpsc::channel::<()>();
        let busy = {
            let pool = pool.clone();
            actix_web::rt::spawn(async move {
                pool.run(move || {
                    started_tx.send(()).ok();
                    rx.recv().ok()
                })
                .await
            })
        };
        while started.try_recv().is_err() {
            actix_web::rt::task::yield_now().await;
        }
        (tx, busy)
    }

    #[actix_web::test]
    async fn refuses_beyond_the_queue_bound() {
        let pool = Arc::new(HashingPool::new(1, 2));
        let (tx, busy) = occupy(&pool).await;
        assert_eq!(pool.queued(), 0);
        let queued = {
            let pool = pool.clone();
            actix_web::rt::spawn(async move { pool.run(|| 1).await })
        };
        let also_queued = {
            let pool = pool.clone();
            actix_web::rt::spawn(async move { pool.run(|| 3).await })
        };
        while pool.queued() < 2 {
            actix_web::rt::task::yield_now().await;
        }
        let refused = pool.run(|| 2).await;
        assert_eq!(refused.err().map(|e| e.code()), Some("overloaded"));
        tx.send(()).unwrap();
        assert!(busy.await.unwrap().is_ok());
        assert_eq!(queued.await.unwrap().ok(), Some(1));
        let also = also_queued.await.unwrap().map_err(|e| e.code());
        assert_eq!(also, Ok(3));
        assert_eq!(pool.queued(), 0);
    }

    #[actix_web::test]
    async fn a_job_that_waits_too_long_for_a_thread_is_refused() {
        let pool = Arc::new(HashingPool::new(1, 8));
        pool.set_max_wait(Duration::from_millis(200));
        let (tx, busy) = occupy(&pool).await;
        let ran = Arc::new(AtomicBool::new(false));
        let flag = ran.clone();
        let waited = Instant::now();
        let refused = pool.run(move || flag.store(true, Ordering::Release)).await;
        assert_eq!(refused.err().map(|e| e.code()), Some("overloaded"));
        assert!(waited.elapsed() >= Duration::from_millis(200));
        // The thread comes free: the refused job is dropped unstarted, and the one that
        // held the thread (started before the limit) got its answer.
        tx.send(()).unwrap();
        assert!(busy.await.unwrap().is_ok());
        assert_eq!(pool.run(|| 5).await.ok(), Some(5));
        assert!(!ran.load(Ordering::Acquire));
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn hashing_threads_run_below_the_request_threads() {
        assert_eq!(niceness_of(99), -20);
        assert_eq!(niceness_of(0), 19);
        let pool = HashingPool::with_threads_and_nice(1, 7);
        let seen = actix_web::rt::System::new().block_on(pool.run(this_threads_nice));
        // Seven steps below this thread's own (0 unless the tests run under `nice`).
        let own = this_threads_nice().unwrap();
        assert_eq!(seen.unwrap(), Some((own + 7).min(19)));
    }
}
