//! A bounded lane for bcrypt: at most `threads` hashes at once, at most `max_waiting`
//! requests queued behind them, the rest answered 503 at once. Logins then never take
//! every core, and a flood of them cannot pile up without bound.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use actix_web::web;
use tokio::sync::Semaphore;

use crate::error::ApiError;
use crate::observe::Metrics;

/// The bcrypt lane shared by every worker.
#[derive(Debug)]
pub struct HashingPool {
    permits: Arc<Semaphore>,
    waiting: AtomicUsize,
    max_waiting: usize,
    metrics: Option<Arc<Metrics>>,
}

/// Holds a place in the queue; gives it back when dropped (also when the client leaves).
struct QueueSlot<'a>(&'a AtomicUsize);

impl Drop for QueueSlot<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl HashingPool {
    /// A lane of `threads` concurrent hashes and `max_waiting` queued requests.
    #[must_use]
    pub fn new(threads: usize, max_waiting: usize) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(threads.max(1))),
            waiting: AtomicUsize::new(0),
            max_waiting,
            metrics: None,
        }
    }

    /// Records each request's wait for a thread in these metrics.
    #[must_use]
    pub(crate) fn with_metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.metrics = Some(metrics);
        self
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

    /// The cores this process may use.
    #[must_use]
    pub fn cores() -> usize {
        std::thread::available_parallelism().map_or(1, usize::from)
    }

    /// Requests waiting for a hashing thread right now.
    #[must_use]
    pub fn queued(&self) -> usize {
        self.waiting.load(Ordering::Acquire)
    }

    /// Runs `work` (which hashes or verifies) on a blocking thread once a permit is free.
    ///
    /// # Errors
    /// 503 `overloaded` when the queue is full; 500 if the blocking thread died.
    pub async fn run<T, F>(&self, work: F) -> Result<T, ApiError>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let queued_at = std::time::Instant::now();
        let permit = {
            if self.waiting.fetch_add(1, Ordering::AcqRel) >= self.max_waiting {
                self.waiting.fetch_sub(1, Ordering::AcqRel);
                return Err(ApiError::overloaded());
            }
            let _slot = QueueSlot(&self.waiting);
            self.permits
                .clone()
                .acquire_owned()
                .await
                .map_err(|e| ApiError::internal(&e))?
        };
        if let Some(metrics) = &self.metrics {
            metrics.hashing_waited(queued_at.elapsed().as_secs_f64());
        }
        let span = tracing::Span::current();
        web::block(move || {
            let _permit = permit;
            span.in_scope(work)
        })
        .await
        .map_err(|e| ApiError::internal(&e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[actix_web::test]
    async fn refuses_beyond_the_queue_bound() {
        let pool = Arc::new(HashingPool::new(1, 1));
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let busy = {
            let pool = pool.clone();
            actix_web::rt::spawn(async move { pool.run(move || rx.recv().ok()).await })
        };
        // Let the first job take the only permit.
        while pool.permits.available_permits() > 0 {
            actix_web::rt::task::yield_now().await;
        }
        let queued = {
            let pool = pool.clone();
            actix_web::rt::spawn(async move { pool.run(|| 1).await })
        };
        while pool.queued() == 0 {
            actix_web::rt::task::yield_now().await;
        }
        let refused = pool.run(|| 2).await;
        assert_eq!(refused.err().map(|e| e.code()), Some("overloaded"));
        tx.send(()).unwrap();
        assert!(busy.await.unwrap().is_ok());
        assert_eq!(queued.await.unwrap().ok(), Some(1));
        assert_eq!(pool.queued(), 0);
    }
}
