//! A webhook receiver inside the benchmark's process, for the outbox scenarios: a plain
//! HTTP/1.1 server on 127.0.0.1 (a thread per connection, keep-alive, any request answered
//! `200` with an empty body) that notes when each request arrived, by its `webhook-id`
//! header; and [`post_load`], which POSTs at it from this process to measure its own rate.
//!
//! It is deliberately small: the requests it takes are Gatehouse's deliveries (a JSON body
//! with a `Content-Length`; chunked bodies are read too) and [`post_load`]'s.

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::io::{self, BufReader, Write as _};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};
use serde::Serialize;

/// The answer to every request.
const OK: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n";
/// The answer to a request that asked to close the connection.
const OK_CLOSE: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n";
/// The longest request head (request line and headers) it reads.
const MAX_HEAD: usize = 64 * 1024;

/// The running receiver; stopped when dropped.
#[derive(Debug)]
pub struct Receiver {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
}

#[derive(Debug, Default)]
struct Shared {
    tally: Mutex<Tally>,
    arrived: Condvar,
    stopping: AtomicBool,
    /// A handle on each open connection (to shut it down when stopping), by number.
    connections: Mutex<HashMap<u64, TcpStream>>,
    next_connection: AtomicU64,
}

/// What arrived since the receiver started or was last [cleared](Receiver::clear).
#[derive(Debug, Default, Clone)]
pub struct Tally {
    /// When each `webhook-id` first arrived.
    pub arrivals: HashMap<String, Instant>,
    /// Requests whose `webhook-id` had arrived before.
    pub repeats: u64,
    /// Requests without a `webhook-id`.
    pub without_id: u64,
    /// Requests in all.
    pub requests: u64,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A connection thread that panicked holding it left nothing half-written worth
    // refusing: the tally is a map and counters.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Receiver {
    /// Listens on a free port of 127.0.0.1.
    ///
    /// # Errors
    /// When no port can be bound or the thread cannot be started.
    pub fn start() -> Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").context("binding the receiver")?;
        let addr = listener.local_addr().context("the receiver's address")?;
        let shared = Arc::new(Shared::default());
        let accept = thread::Builder::new()
            .name("receiver-accept".into())
            .spawn({
                let shared = Arc::clone(&shared);
                move || accept(&listener, &shared)
            })
            .context("starting the receiver")?;
        Ok(Self {
            addr,
            shared,
            accept: Some(accept),
        })
    }

    /// `http://127.0.0.1:PORT` followed by `path`.
    #[must_use]
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Its address.
    #[must_use]
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Forgets every arrival.
    pub fn clear(&self) {
        *lock(&self.shared.tally) = Tally::default();
    }

    /// A copy of what arrived.
    #[must_use]
    pub fn tally(&self) -> Tally {
        lock(&self.shared.tally).clone()
    }

    /// How many distinct `webhook-id`s arrived.
    #[must_use]
    pub fn distinct(&self) -> usize {
        lock(&self.shared.tally).arrivals.len()
    }

    /// Waits until `id` arrives (at most `timeout`); when it arrived.
    #[must_use]
    pub fn wait_for(&self, id: &str, timeout: Duration) -> Option<Instant> {
        let deadline = Instant::now() + timeout;
        let mut tally = lock(&self.shared.tally);
        loop {
            if let Some(at) = tally.arrivals.get(id) {
                return Some(*at);
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            tally = self
                .shared
                .arrived
                .wait_timeout(tally, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    /// Waits until `n` distinct `webhook-id`s have arrived (at most `timeout`, and no longer
    /// than `stall` without a new one); how many had.
    #[must_use]
    pub fn wait_for_count(&self, n: usize, timeout: Duration, stall: Duration) -> usize {
        let deadline = Instant::now() + timeout;
        let mut tally = lock(&self.shared.tally);
        let (mut seen, mut since) = (tally.arrivals.len(), Instant::now());
        loop {
            let count = tally.arrivals.len();
            if count >= n {
                return count;
            }
            if count != seen {
                (seen, since) = (count, Instant::now());
            }
            let now = Instant::now();
            if now >= deadline || now.duration_since(since) >= stall {
                return count;
            }
            let left = deadline.duration_since(now).min(Duration::from_millis(500));
            tally = self
                .shared
                .arrived
                .wait_timeout(tally, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    /// Stops listening and closes every connection.
    pub fn stop(mut self) {
        self.shut_down();
    }

    fn shut_down(&mut self) {
        self.shared.stopping.store(true, Ordering::SeqCst);
        // Wakes the accepting thread, which then sees `stopping`.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(accept) = self.accept.take() {
            let _ = accept.join();
        }
        for (_, stream) in lock(&self.shared.connections).drain() {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        if self.accept.is_some() {
            self.shut_down();
        }
    }
}

fn accept(listener: &TcpListener, shared: &Arc<Shared>) {
    for stream in listener.incoming() {
        if shared.stopping.load(Ordering::SeqCst) {
            return;
        }
        let Ok(stream) = stream else {
            continue;
        };
        let number = shared.next_connection.fetch_add(1, Ordering::Relaxed);
        if let Ok(handle) = stream.try_clone() {
            lock(&shared.connections).insert(number, handle);
        }
        let mine = Arc::clone(shared);
        let spawned = thread::Builder::new()
            .name("receiver-conn".into())
            .spawn(move || {
                // A connection's error (a peer gone mid-request) ends that connection only.
                let _ = serve(stream, &mine);
                lock(&mine.connections).remove(&number);
            });
        if spawned.is_err() {
            lock(&shared.connections).remove(&number);
        }
    }
}

/// One request's head, as far as the receiver cares.
#[derive(Debug, Default)]
struct Head {
    webhook_id: Option<String>,
    content_length: usize,
    chunked: bool,
    close: bool,
}

/// Answers the requests of one connection until it closes.
fn serve(stream: TcpStream, shared: &Shared) -> io::Result<()> {
    stream.set_nodelay(true)?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut writer = stream;
    let mut line = Vec::with_capacity(256);
    loop {
        let Some(head) = read_head(&mut reader, &mut line)? else {
            return Ok(());
        };
        if head.chunked {
            skip_chunked(&mut reader, &mut line)?;
        } else {
            skip_exactly(&mut reader, head.content_length as u64)?;
        }
        let at = Instant::now();
        {
            let mut tally = lock(&shared.tally);
            tally.requests += 1;
            match head.webhook_id {
                Some(id) => match tally.arrivals.entry(id) {
                    Entry::Occupied(_) => tally.repeats += 1,
                    Entry::Vacant(vacant) => {
                        vacant.insert(at);
                    }
                },
                None => tally.without_id += 1,
            }
        }
        shared.arrived.notify_all();
        writer.write_all(if head.close { OK_CLOSE } else { OK })?;
        if head.close {
            return Ok(());
        }
    }
}

/// Reads a request line and headers; `None` at a clean end of the connection.
fn read_head(reader: &mut impl io::BufRead, line: &mut Vec<u8>) -> io::Result<Option<Head>> {
    line.clear();
    if reader.read_until(b'\n', line)? == 0 {
        return Ok(None);
    }
    let request_line = String::from_utf8_lossy(trim_eol(line)).into_owned();
    let mut head = Head {
        // HTTP/1.0 closes after each request unless asked otherwise.
        close: request_line.ends_with("HTTP/1.0"),
        ..Head::default()
    };
    let mut size = line.len();
    loop {
        line.clear();
        if reader.read_until(b'\n', line)? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        size += line.len();
        if size > MAX_HEAD {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "head too long"));
        }
        let header = trim_eol(line);
        if header.is_empty() {
            return Ok(Some(head));
        }
        let Some(colon) = header.iter().position(|&b| b == b':') else {
            continue;
        };
        let name = String::from_utf8_lossy(&header[..colon]).to_ascii_lowercase();
        let value = String::from_utf8_lossy(&header[colon + 1..])
            .trim()
            .to_owned();
        match name.as_str() {
            "webhook-id" => head.webhook_id = Some(value),
            "content-length" => {
                head.content_length = value.parse().map_err(|_| {
                    io::Error::new(io::ErrorKind::InvalidData, "bad content-length")
                })?;
            }
            "transfer-encoding" => head.chunked = value.to_ascii_lowercase().contains("chunked"),
            "connection" => {
                let value = value.to_ascii_lowercase();
                if value.contains("close") {
                    head.close = true;
                } else if value.contains("keep-alive") {
                    head.close = false;
                }
            }
            _ => {}
        }
    }
}

fn trim_eol(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

fn skip_exactly<R: io::Read + ?Sized>(reader: &mut R, n: u64) -> io::Result<()> {
    let copied = io::copy(&mut io::Read::take(reader, n), &mut io::sink())?;
    if copied < n {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    Ok(())
}

/// Reads a chunked body to its end (trailers included).
fn skip_chunked(reader: &mut impl io::BufRead, line: &mut Vec<u8>) -> io::Result<()> {
    loop {
        line.clear();
        if reader.read_until(b'\n', line)? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        let size_text = String::from_utf8_lossy(trim_eol(line));
        let size_text = size_text.split(';').next().unwrap_or("").trim().to_owned();
        let size = u64::from_str_radix(&size_text, 16)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "bad chunk size"))?;
        if size == 0 {
            // Trailers, up to an empty line.
            loop {
                line.clear();
                if reader.read_until(b'\n', line)? == 0 || trim_eol(line).is_empty() {
                    return Ok(());
                }
            }
        }
        skip_exactly(reader, size + 2)?;
    }
}

/// What [`post_load`] measured.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LoadReport {
    /// Requests answered `200` (the timed ones).
    pub requests: u64,
    /// Connections, each used for one request after another (keep-alive).
    pub connections: u32,
    /// The body's size, bytes.
    pub body_bytes: usize,
    /// From the first request to the last answer, seconds.
    pub seconds: f64,
    /// Requests per second.
    pub rps: f64,
    /// Distinct `webhook-id`s the receiver noted (a check: as many as `requests`).
    pub arrived: u64,
    /// Requests whose `webhook-id` the receiver had seen before (0 unless something is
    /// wrong).
    pub repeats: u64,
}

/// POSTs `total` requests like a webhook delivery (the dispatcher's headers, each with its
/// own `webhook-id`, `body` as the body) to `receiver` from `connections` threads, each
/// over one keep-alive connection, one request after another; after `warm_up` such
/// requests that are not timed. The receiver is cleared before the timed requests.
///
/// # Errors
/// When a connection fails or an answer is not `200`.
pub fn post_load(
    receiver: &Receiver,
    connections: u32,
    total: u64,
    warm_up: u64,
    body: &str,
) -> Result<LoadReport> {
    if warm_up > 0 {
        run_load(receiver.addr(), connections, warm_up, body, "warm")?;
    }
    receiver.clear();
    let seconds = run_load(receiver.addr(), connections, total, body, "load")?;
    let tally = receiver.tally();
    Ok(LoadReport {
        requests: total,
        connections,
        body_bytes: body.len(),
        seconds,
        rps: total as f64 / seconds,
        arrived: tally.arrivals.len() as u64,
        repeats: tally.repeats,
    })
}

/// The requests of [`post_load`], split among the connections; seconds from the start
/// (all connections open) to the last answer.
fn run_load(addr: SocketAddr, connections: u32, total: u64, body: &str, tag: &str) -> Result<f64> {
    let connections = u64::from(connections.max(1));
    let barrier = Barrier::new(connections as usize + 1);
    let started = thread::scope(|scope| -> Result<Instant> {
        let workers: Vec<_> = (0..connections)
            .map(|c| {
                let barrier = &barrier;
                scope.spawn(move || -> Result<()> {
                    let connected = TcpStream::connect(addr)
                        .and_then(|s| s.set_nodelay(true).map(|()| s))
                        .context("connecting to the receiver");
                    // Everyone meets at the barrier, connected or not, so nobody waits
                    // forever.
                    barrier.wait();
                    let stream = connected?;
                    let mut reader = BufReader::new(stream.try_clone().context("the socket")?);
                    let mut writer = stream;
                    let mut line = Vec::with_capacity(256);
                    let mut n = c;
                    while n < total {
                        let request = delivery_request(addr, &format!("{tag}{n:028}"), body);
                        writer
                            .write_all(request.as_bytes())
                            .context("sending to the receiver")?;
                        expect_ok(&mut reader, &mut line)?;
                        n += connections;
                    }
                    Ok(())
                })
            })
            .collect();
        barrier.wait();
        let started = Instant::now();
        for worker in workers {
            worker
                .join()
                .map_err(|_| anyhow::anyhow!("a load thread panicked"))??;
        }
        Ok(started)
    })?;
    Ok(started.elapsed().as_secs_f64())
}

/// A request as Gatehouse's dispatcher sends one (reqwest's headers and the Standard
/// Webhooks ones, with values of the same lengths).
fn delivery_request(addr: SocketAddr, id: &str, body: &str) -> String {
    let timestamp = chrono::Utc::now().timestamp();
    format!(
        "POST /load HTTP/1.1\r\ncontent-type: application/json\r\nwebhook-id: msg_{id}\r\n\
         webhook-timestamp: {timestamp}\r\n\
         webhook-signature: v1,{signature}\r\n\
         user-agent: Gatehouse-Webhooks/0.1.0\r\naccept: */*\r\nhost: {addr}\r\n\
         content-length: {}\r\n\r\n{body}",
        body.len(),
        signature = "A".repeat(43) + "=",
    )
}

/// Reads one answer, which must be `200` with an empty body (as the receiver answers).
fn expect_ok(reader: &mut impl io::BufRead, line: &mut Vec<u8>) -> Result<()> {
    line.clear();
    if reader.read_until(b'\n', line)? == 0 {
        bail!("the receiver closed the connection");
    }
    let status = String::from_utf8_lossy(trim_eol(line)).into_owned();
    if !status.starts_with("HTTP/1.1 200") {
        bail!("the receiver answered {status:?}");
    }
    let mut length = 0u64;
    loop {
        line.clear();
        if reader.read_until(b'\n', line)? == 0 {
            bail!("the receiver closed the connection mid-answer");
        }
        let header = String::from_utf8_lossy(trim_eol(line)).to_ascii_lowercase();
        if header.is_empty() {
            break;
        }
        if let Some(value) = header.strip_prefix("content-length:") {
            length = value
                .trim()
                .parse()
                .context("the answer's content-length")?;
        }
    }
    skip_exactly(reader, length).context("the answer's body")?;
    Ok(())
}

/// The `p`-th percentile (0 < p ≤ 1) of `sorted` (ascending; nearest rank).
#[must_use]
pub fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (p * sorted.len() as f64).ceil() as usize;
    sorted.get(rank.clamp(1, sorted.len()) - 1).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn post(addr: SocketAddr, raw: &str) {
        let mut stream = TcpStream::connect(addr).unwrap();
        stream.write_all(raw.as_bytes()).unwrap();
        let mut reader = BufReader::new(stream);
        let mut line = Vec::new();
        expect_ok(&mut reader, &mut line).unwrap();
    }

    #[test]
    fn notes_each_webhook_id_once_over_keep_alive() {
        let receiver = Receiver::start().unwrap();
        let mut stream = TcpStream::connect(receiver.addr()).unwrap();
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut line = Vec::new();
        for id in ["msg_a", "msg_b", "msg_a"] {
            let request = delivery_request(receiver.addr(), id, "{\"x\":1}");
            stream.write_all(request.as_bytes()).unwrap();
            expect_ok(&mut reader, &mut line).unwrap();
        }
        // Chunked, and asking to close.
        post(
            receiver.addr(),
            "POST /h HTTP/1.1\r\nwebhook-id: msg_c\r\nTransfer-Encoding: chunked\r\n\
             Connection: close\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
        );
        assert!(receiver
            .wait_for("msg_msg_a", Duration::from_secs(5))
            .is_some());
        assert!(receiver.wait_for("msg_c", Duration::from_secs(5)).is_some());
        assert!(receiver
            .wait_for("msg_none", Duration::from_millis(50))
            .is_none());
        let tally = receiver.tally();
        assert_eq!(tally.arrivals.len(), 3);
        assert_eq!((tally.repeats, tally.requests), (1, 4));
        receiver.clear();
        assert_eq!(receiver.distinct(), 0);
        receiver.stop();
    }

    #[test]
    fn measures_its_own_rate() {
        let receiver = Receiver::start().unwrap();
        let report = post_load(&receiver, 4, 400, 40, &"x".repeat(500)).unwrap();
        assert_eq!(
            (report.requests, report.arrived, report.repeats),
            (400, 400, 0)
        );
        assert!(report.rps > 0.0);
        assert_eq!(
            receiver.wait_for_count(400, Duration::from_secs(1), Duration::from_secs(1)),
            400
        );
    }

    #[test]
    fn percentiles_by_nearest_rank() {
        let sorted: Vec<f64> = (1..=300).map(f64::from).collect();
        assert_eq!(percentile(&sorted, 0.5), Some(150.0));
        assert_eq!(percentile(&sorted, 0.99), Some(297.0));
        assert_eq!(percentile(&[], 0.5), None);
        assert_eq!(percentile(&[4.0], 0.99), Some(4.0));
    }
}
