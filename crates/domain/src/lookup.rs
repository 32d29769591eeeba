//! The answer of a [`SessionSource`](crate::ports::SessionSource) as a plain std future,
//! and a one-shot reply for stores that answer from a thread of their own: the domain
//! stays free of any async runtime, and any executor can await it.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};

use crate::{Error, SessionState, User};

/// A session's user and the state of the session (`None` when the user has no session with
/// that id); `None` when no user has the id.
pub type SessionAnswer = Result<Option<(User, Option<SessionState>)>, Error>;

/// A session lookup under way.
pub type SessionLookup = Pin<Box<dyn Future<Output = SessionAnswer> + Send + 'static>>;

/// A lookup answered already (a store that read on the calling thread).
#[must_use]
pub fn answered(answer: SessionAnswer) -> SessionLookup {
    Box::pin(std::future::ready(answer))
}

/// A reply to send from wherever the answer is found, and the lookup that awaits it.
#[must_use]
pub fn session_reply() -> (SessionReply, SessionLookup) {
    let slot = Arc::new(Mutex::new(Slot::default()));
    (
        SessionReply {
            slot: Some(slot.clone()),
        },
        Box::pin(Awaiting { slot }),
    )
}

#[derive(Debug, Default)]
struct Slot {
    answer: Option<SessionAnswer>,
    /// The reply was dropped without an answer.
    abandoned: bool,
    waker: Option<Waker>,
}

fn lock(slot: &Mutex<Slot>) -> MutexGuard<'_, Slot> {
    // Nothing runs under the lock that could panic halfway through an update.
    slot.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The sending half of [`session_reply`]. Dropping it unanswered answers the lookup with an
/// internal error, so nobody waits forever.
#[derive(Debug)]
pub struct SessionReply {
    slot: Option<Arc<Mutex<Slot>>>,
}

impl SessionReply {
    /// Answers the lookup (and wakes whoever awaits it). An answer nobody awaits any more
    /// (the request went) is dropped.
    pub fn send(mut self, answer: SessionAnswer) {
        if let Some(slot) = self.slot.take() {
            finish(&slot, |s| s.answer = Some(answer));
        }
    }
}

impl Drop for SessionReply {
    fn drop(&mut self) {
        if let Some(slot) = self.slot.take() {
            finish(&slot, |s| s.abandoned = true);
        }
    }
}

fn finish(slot: &Mutex<Slot>, update: impl FnOnce(&mut Slot)) {
    let waker = {
        let mut slot = lock(slot);
        update(&mut slot);
        slot.waker.take()
    };
    if let Some(waker) = waker {
        waker.wake();
    }
}

struct Awaiting {
    slot: Arc<Mutex<Slot>>,
}

impl Future for Awaiting {
    type Output = SessionAnswer;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<SessionAnswer> {
        let mut slot = lock(&self.slot);
        if let Some(answer) = slot.answer.take() {
            return Poll::Ready(answer);
        }
        if slot.abandoned {
            return Poll::Ready(Err(Error::internal(
                "session lookup",
                "the store dropped the lookup unanswered",
            )));
        }
        match &mut slot.waker {
            Some(waker) => waker.clone_from(cx.waker()),
            None => slot.waker = Some(cx.waker().clone()),
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::testing::block_on;

    #[test]
    fn an_answer_sent_from_another_thread_wakes_the_lookup() {
        let (reply, lookup) = session_reply();
        let sender = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(20));
            reply.send(Ok(None));
        });
        assert!(matches!(block_on(lookup), Ok(None)));
        sender.join().unwrap();
    }

    #[test]
    fn an_answer_sent_before_the_first_poll_is_kept() {
        let (reply, lookup) = session_reply();
        reply.send(Err(Error::Overloaded));
        assert!(matches!(block_on(lookup), Err(Error::Overloaded)));
    }

    #[test]
    fn a_reply_dropped_unanswered_fails_the_lookup_instead_of_hanging() {
        let (reply, lookup) = session_reply();
        std::thread::spawn(move || drop(reply)).join().unwrap();
        assert!(matches!(block_on(lookup), Err(Error::Internal { .. })));
    }

    #[test]
    fn an_answer_nobody_awaits_is_dropped_quietly() {
        let (reply, lookup) = session_reply();
        drop(lookup);
        reply.send(Ok(None));
    }
}
