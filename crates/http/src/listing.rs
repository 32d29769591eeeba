//! Listings (`GET /users`, `GET /audit`) streamed: rows go from the database to the client
//! as they are read, a chunk at a time, and never sit in memory whole (no list of users,
//! no list of DTOs, no whole body).
//!
//! The handler takes a database slot and starts the producer on the blocking pool. The
//! producer runs the use case with a [`JsonArray`] as its [`Listing`]: each item is written
//! as JSON straight into a chunk buffer, and each time the buffer reaches [`CHUNK_BYTES`] the
//! chunk goes to the response through a channel holding at most [`QUEUED_CHUNKS`]. The
//! response's head waits for the total (`X-Total-Count`), which the store hands over before
//! the first row, and goes out with the first chunk:
//! - a listing that fits in one chunk (every page of the console, `limit=50`) is answered
//!   whole, with a `Content-Length`, as before;
//! - a longer one is streamed (chunked transfer encoding).
//!
//! What can go wrong:
//! - an error before the head (the actor's check, the database) is the usual JSON error;
//! - an error after it cannot change the status any more: the response is cut short (the
//!   connection closes before the body's end, which a client sees as a truncated body) and
//!   the error is logged;
//! - a client that stops reading: the producer waits for room in the channel at most the
//!   request-body deadline (`GATEHOUSE_BODY_TIMEOUT`, 10 s by default: how long a slow
//!   client may hold the server up either way), then gives up, logs a warning and lets its
//!   database connection, transaction and slot go; a client that goes away: at once.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use actix_web::http::header::ContentType;
use actix_web::web::Bytes;
use actix_web::HttpResponse;
use futures_core::Stream;
use gatehouse_domain::{Error, Listing};
use tokio::sync::oneshot;

use crate::error::{chain, ApiError};
use crate::AppState;

/// A chunk is sent once its buffer holds this much: small enough to keep a listing's
/// memory flat, large enough that the per-chunk work (a lock, a wake-up, a write) is
/// spread over a few hundred rows.
pub(crate) const CHUNK_BYTES: usize = 32 * 1024;

/// Chunks waiting for the client at most; the producer waits for room beyond them.
const QUEUED_CHUNKS: usize = 4;

/// A chunk buffer's room: a chunk plus the row that crosses the line.
const BUFFER_BYTES: usize = CHUNK_BYTES + CHUNK_BYTES / 8;

/// Why the producer stopped before the end.
#[derive(Debug, Clone, Copy, thiserror::Error)]
enum Stop {
    #[error("the client went away")]
    Gone,
    #[error("the client read nothing for {0:?}")]
    Stalled(Duration),
}

/// The body was cut short after its head had gone out.
#[derive(Debug, thiserror::Error)]
#[error("the listing stopped before its end")]
struct CutShort;

/// The producer ended without a head (it panicked).
#[derive(Debug, thiserror::Error)]
#[error("the listing's producer ended without answering")]
struct NoHead;

/// What the handler needs to answer: the total, and the first chunk (the whole body when
/// `whole`).
#[derive(Debug)]
struct Head {
    total: u64,
    first: Bytes,
    whole: bool,
}

/// How the body ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    Complete,
    CutShort,
}

/// The chunks between the producer (a blocking thread) and the response body (polled by
/// an async worker): a bounded queue under a lock, a condition variable the producer
/// waits on for room (with a deadline), and the waker of the body waiting for a chunk.
#[derive(Debug, Default)]
struct Channel {
    queue: Mutex<Queue>,
    room: Condvar,
}

#[derive(Debug, Default)]
struct Queue {
    chunks: VecDeque<Bytes>,
    end: Option<End>,
    reader_gone: bool,
    waker: Option<Waker>,
}

impl Channel {
    /// The queue; a panic while it was held (none is possible) leaves it consistent.
    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The producer's end of the channel. Dropped without [`finish`](Self::finish) (an error,
/// a panic), it cuts the body short.
#[derive(Debug)]
struct ChunkSender {
    channel: Arc<Channel>,
    stall_limit: Duration,
}

impl ChunkSender {
    /// Queues `chunk`, waiting at most the stall limit for room.
    fn send(&self, chunk: Bytes) -> Result<(), Stop> {
        let deadline = Instant::now() + self.stall_limit;
        let mut queue = self.channel.lock();
        loop {
            if queue.reader_gone {
                return Err(Stop::Gone);
            }
            if queue.chunks.len() < QUEUED_CHUNKS {
                queue.chunks.push_back(chunk);
                let waker = queue.waker.take();
                drop(queue);
                if let Some(waker) = waker {
                    waker.wake();
                }
                return Ok(());
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(Stop::Stalled(self.stall_limit));
            }
            queue = self
                .channel
                .room
                .wait_timeout(queue, deadline - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    /// Ends the body: complete, or cut short. The first end set stands.
    fn end(&self, end: End) {
        let mut queue = self.channel.lock();
        queue.end.get_or_insert(end);
        let waker = queue.waker.take();
        drop(queue);
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    fn finish(self) {
        self.end(End::Complete);
    }
}

impl Drop for ChunkSender {
    fn drop(&mut self) {
        self.end(End::CutShort);
    }
}

/// The response's end of the channel: the body, as a stream of chunks. An error item
/// (after a cut) makes actix close the connection before the body's end.
#[derive(Debug)]
struct ChunkBody {
    first: Option<Bytes>,
    channel: Arc<Channel>,
    done: bool,
}

impl Stream for ChunkBody {
    type Item = Result<Bytes, CutShort>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if let Some(first) = this.first.take() {
            return Poll::Ready(Some(Ok(first)));
        }
        if this.done {
            return Poll::Ready(None);
        }
        let mut queue = this.channel.lock();
        if let Some(chunk) = queue.chunks.pop_front() {
            drop(queue);
            this.channel.room.notify_one();
            return Poll::Ready(Some(Ok(chunk)));
        }
        match queue.end {
            Some(end) => {
                this.done = true;
                Poll::Ready(match end {
                    End::Complete => None,
                    End::CutShort => Some(Err(CutShort)),
                })
            }
            None => {
                match &mut queue.waker {
                    Some(waker) if waker.will_wake(cx.waker()) => {}
                    slot => *slot = Some(cx.waker().clone()),
                }
                Poll::Pending
            }
        }
    }
}

impl Drop for ChunkBody {
    fn drop(&mut self) {
        self.channel.lock().reader_gone = true;
        self.channel.room.notify_all();
    }
}

/// A listing written as a JSON array into chunks: `[`, the items separated by `,`, `]`.
struct JsonArray<T> {
    /// Appends one item's JSON.
    write: fn(&mut Vec<u8>, T) -> serde_json::Result<()>,
    buffer: Vec<u8>,
    total: Option<u64>,
    items: u64,
    /// Until the first chunk goes: where the head goes.
    head: Option<oneshot::Sender<Result<Head, Error>>>,
    chunks: ChunkSender,
    /// Why the producer gave up, when it did.
    stopped: Option<Stop>,
}

impl<T> JsonArray<T> {
    /// Sends the buffer: with the head if it is the first chunk.
    fn flush(&mut self, whole: bool) -> Result<(), Stop> {
        let chunk = Bytes::from(std::mem::replace(
            &mut self.buffer,
            if whole {
                Vec::new()
            } else {
                Vec::with_capacity(BUFFER_BYTES)
            },
        ));
        match (self.head.take(), self.total) {
            (Some(head), Some(total)) => head
                .send(Ok(Head {
                    total,
                    first: chunk,
                    whole,
                }))
                .map_err(|_| Stop::Gone),
            _ => self.chunks.send(chunk),
        }
    }

    /// After the use case returned: completes the body, or reports why it cannot.
    fn finish(mut self, outcome: Result<(), Error>) {
        let error = match (outcome, self.stopped, self.total) {
            (_, Some(stop), _) => {
                tracing::warn!(
                    reason = %stop,
                    items_sent = self.items,
                    "listing abandoned: its database connection is released"
                );
                return;
            }
            (Ok(()), None, Some(_)) => {
                self.buffer.push(b']');
                let whole = self.head.is_some();
                match self.flush(whole) {
                    Ok(()) => self.chunks.finish(),
                    Err(stop) => {
                        tracing::warn!(reason = %stop, items_sent = self.items, "listing abandoned at its end");
                    }
                }
                return;
            }
            (Ok(()), None, None) => {
                Error::internal("streaming a listing", "the store handed over no total")
            }
            (Err(error), None, _) => error,
        };
        match self.head.take() {
            Some(head) => {
                // The handler answers with the usual error (and logs it); gone, nobody asks.
                let _ = head.send(Err(error));
            }
            None if matches!(error, Error::Unavailable(_) | Error::Conflict) => {
                tracing::warn!(
                    error = %chain(&error),
                    items_sent = self.items,
                    "database unavailable in the middle of a listing: the response is cut short"
                );
            }
            None => {
                tracing::error!(
                    error = %chain(&error),
                    items_sent = self.items,
                    "a listing failed after its first bytes: the response is cut short"
                );
            }
        }
        // Dropping `self.chunks` now cuts the body short.
    }

    fn stop(&mut self, stop: Stop) -> Error {
        self.stopped = Some(stop);
        Error::internal("streaming a listing", stop)
    }
}

impl<T> Listing<T> for JsonArray<T> {
    fn total(&mut self, total: u64) -> Result<(), Error> {
        if self.total.is_some() {
            return Err(Error::internal(
                "streaming a listing",
                "the store handed over the total twice",
            ));
        }
        self.total = Some(total);
        self.buffer.push(b'[');
        Ok(())
    }

    fn item(&mut self, item: T) -> Result<(), Error> {
        if self.total.is_none() {
            return Err(Error::internal(
                "streaming a listing",
                "the store handed over an item before the total",
            ));
        }
        if self.items > 0 {
            self.buffer.push(b',');
        }
        (self.write)(&mut self.buffer, item)
            .map_err(|e| Error::internal("writing a listing as JSON", e))?;
        self.items += 1;
        if self.buffer.len() >= CHUNK_BYTES {
            self.flush(false).map_err(|stop| self.stop(stop))?;
        }
        Ok(())
    }
}

impl AppState {
    /// Answers with the JSON array of what `produce` hands its [`Listing`] (each item
    /// written by `write`) and its total in `X-Total-Count`, streamed as the module says.
    /// `produce` runs on the blocking pool once a database slot is free, and holds the slot
    /// until it returns.
    pub(crate) async fn stream_listing<T: 'static>(
        &self,
        write: fn(&mut Vec<u8>, T) -> serde_json::Result<()>,
        produce: impl FnOnce(&mut dyn Listing<T>) -> Result<(), Error> + Send + 'static,
    ) -> Result<HttpResponse, ApiError> {
        let slot = self.database_slot().await?;
        let channel = Arc::new(Channel::default());
        let mut body = ChunkBody {
            first: None,
            channel: channel.clone(),
            done: false,
        };
        let chunks = ChunkSender {
            channel,
            stall_limit: self.body_timeout,
        };
        let (head, answer) = oneshot::channel();
        let span = tracing::Span::current();
        // Not awaited: the producer goes on after the head, while the body streams.
        drop(actix_web::rt::task::spawn_blocking(move || {
            let _slot = slot;
            span.in_scope(|| {
                let mut array = JsonArray {
                    write,
                    buffer: Vec::with_capacity(BUFFER_BYTES),
                    total: None,
                    items: 0,
                    head: Some(head),
                    chunks,
                    stopped: None,
                };
                let outcome = produce(&mut array);
                array.finish(outcome);
            });
        }));
        let head = answer.await.map_err(|_| ApiError::internal(&NoHead))??;
        let mut response = HttpResponse::Ok();
        response
            .insert_header(("X-Total-Count", head.total))
            .content_type(ContentType::json());
        Ok(if head.whole {
            response.body(head.first)
        } else {
            body.first = Some(head.first);
            response.streaming(body)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn channel(stall_limit: Duration) -> (ChunkSender, ChunkBody) {
        let channel = Arc::new(Channel::default());
        (
            ChunkSender {
                channel: channel.clone(),
                stall_limit,
            },
            ChunkBody {
                first: None,
                channel,
                done: false,
            },
        )
    }

    fn poll(body: &mut ChunkBody) -> Poll<Option<Result<Bytes, CutShort>>> {
        let waker = std::task::Waker::noop();
        Pin::new(body).poll_next(&mut Context::from_waker(waker))
    }

    #[test]
    fn chunks_arrive_in_order_then_the_end() {
        let (sender, mut body) = channel(Duration::from_secs(5));
        assert!(poll(&mut body).is_pending());
        sender.send(Bytes::from_static(b"[1,")).expect("room");
        sender.send(Bytes::from_static(b"2]")).expect("room");
        sender.finish();
        let mut read = Vec::new();
        while let Poll::Ready(Some(chunk)) = poll(&mut body) {
            read.extend_from_slice(&chunk.expect("a chunk"));
        }
        assert_eq!(read, b"[1,2]");
        assert!(matches!(poll(&mut body), Poll::Ready(None)));
    }

    #[test]
    fn a_dropped_sender_cuts_the_body_short() {
        let (sender, mut body) = channel(Duration::from_secs(5));
        sender.send(Bytes::from_static(b"[1")).expect("room");
        drop(sender);
        assert!(matches!(poll(&mut body), Poll::Ready(Some(Ok(_)))));
        assert!(matches!(poll(&mut body), Poll::Ready(Some(Err(CutShort)))));
        assert!(matches!(poll(&mut body), Poll::Ready(None)));
    }

    #[test]
    fn a_reader_that_stops_stalls_the_sender_only_until_the_limit() {
        let limit = Duration::from_millis(200);
        let (sender, _body) = channel(limit);
        for _ in 0..QUEUED_CHUNKS {
            sender.send(Bytes::from_static(b"x")).expect("room");
        }
        let started = Instant::now();
        let outcome = sender.send(Bytes::from_static(b"x"));
        assert!(matches!(outcome, Err(Stop::Stalled(_))), "{outcome:?}");
        assert!(started.elapsed() >= limit);
    }

    #[test]
    fn a_reader_that_goes_away_releases_a_waiting_sender_at_once() {
        let (sender, body) = channel(Duration::from_secs(60));
        for _ in 0..QUEUED_CHUNKS {
            sender.send(Bytes::from_static(b"x")).expect("room");
        }
        let started = Instant::now();
        let waiting = std::thread::spawn(move || sender.send(Bytes::from_static(b"x")));
        std::thread::sleep(Duration::from_millis(50));
        drop(body);
        let outcome = waiting.join().expect("the sender's thread");
        assert!(matches!(outcome, Err(Stop::Gone)), "{outcome:?}");
        assert!(started.elapsed() < Duration::from_secs(10));
    }

    #[test]
    fn reading_makes_room_for_a_waiting_sender() {
        let (sender, mut body) = channel(Duration::from_secs(60));
        for _ in 0..QUEUED_CHUNKS {
            sender.send(Bytes::from_static(b"x")).expect("room");
        }
        let waiting = std::thread::spawn(move || {
            let sent = sender.send(Bytes::from_static(b"y"));
            sender.finish();
            sent
        });
        std::thread::sleep(Duration::from_millis(50));
        let mut read = Vec::new();
        loop {
            match poll(&mut body) {
                Poll::Ready(Some(chunk)) => read.extend_from_slice(&chunk.expect("a chunk")),
                Poll::Ready(None) => break,
                Poll::Pending => std::thread::sleep(Duration::from_millis(5)),
            }
        }
        assert!(waiting.join().expect("the sender's thread").is_ok());
        assert_eq!(read, b"xxxxy");
    }
}
