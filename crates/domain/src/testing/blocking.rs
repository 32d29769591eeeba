//! Awaiting the domain's futures from plain (non-async) tests.

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, Thread};

use crate::{Error, Session, UserService};

struct Unpark(Thread);

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

/// Runs `future` to completion on the calling thread, parking it while the future waits
/// (for a store's own thread to answer, say). For tests: never call it on an async worker.
pub fn block_on<F: Future>(future: F) -> F::Output {
    let waker = Waker::from(Arc::new(Unpark(thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut future = pin!(future);
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return output;
        }
        thread::park();
    }
}

/// [`UserService::current_user`] for tests that run no executor.
pub trait CurrentUserBlocking {
    /// Awaits [`UserService::current_user`] with [`block_on`].
    ///
    /// # Errors
    /// As `current_user`.
    fn current_user_blocking(&self, token: &str) -> Result<Session, Error>;
}

impl CurrentUserBlocking for UserService {
    fn current_user_blocking(&self, token: &str) -> Result<Session, Error> {
        block_on(self.current_user(token))
    }
}
