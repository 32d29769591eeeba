//! A real HTTP server receiving webhook deliveries: it records every request (method,
//! path, headers, body) and answers with the status its script says, one thread per
//! connection, HTTP/1.1, `Connection: close` (or, when told, keep-alive with a short body).

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::Value;

/// One request as it arrived.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: String,
    pub path: String,
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
}

impl Received {
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map_or("", String::as_str)
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }

    /// Whether `webhook-signature` is the HMAC-SHA256 of `secret` (`whsec_…`) over
    /// `{webhook-id}.{webhook-timestamp}.{body}`, computed here independently.
    pub fn signed_with(&self, secret: &str) -> bool {
        use hmac::{KeyInit, Mac};
        let key = base64::engine::general_purpose::STANDARD
            .decode(secret.strip_prefix("whsec_").expect("whsec_ prefix"))
            .expect("base64 secret");
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&key).unwrap();
        mac.update(
            format!(
                "{}.{}.",
                self.header("webhook-id"),
                self.header("webhook-timestamp")
            )
            .as_bytes(),
        );
        mac.update(&self.body);
        let expected = format!(
            "v1,{}",
            base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
        );
        self.header("webhook-signature")
            .split(' ')
            .any(|candidate| candidate == expected)
    }
}

/// The receiver; stops listening when dropped.
pub struct Receiver {
    pub port: u16,
    received: Arc<Mutex<Vec<Received>>>,
    status: Arc<AtomicU16>,
    /// While set, connections are accepted and read but never answered.
    hold: Arc<AtomicBool>,
    /// How long each answer waits, in milliseconds.
    delay_ms: Arc<AtomicU64>,
    /// While set, answers carry a short body and keep the connection.
    keep_alive: Arc<AtomicBool>,
    /// Connections accepted so far.
    connections: Arc<AtomicUsize>,
    /// Requests being answered now, and the most at once so far.
    open: Arc<(AtomicUsize, AtomicUsize)>,
    stop: Arc<AtomicBool>,
}

impl Receiver {
    /// Listens on a free port of 127.0.0.1, answering 200.
    pub fn start() -> Self {
        Self::start_on(0)
    }

    /// Listens on `port` (0: a free one).
    pub fn start_on(port: u16) -> Self {
        let listener = TcpListener::bind(("127.0.0.1", port)).expect("bind the receiver");
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let receiver = Self {
            port,
            received: Arc::default(),
            status: Arc::new(AtomicU16::new(200)),
            hold: Arc::default(),
            delay_ms: Arc::default(),
            keep_alive: Arc::default(),
            connections: Arc::default(),
            open: Arc::default(),
            stop: Arc::default(),
        };
        let (received, status, hold, stop) = (
            Arc::clone(&receiver.received),
            Arc::clone(&receiver.status),
            Arc::clone(&receiver.hold),
            Arc::clone(&receiver.stop),
        );
        let (delay_ms, keep_alive, connections, open) = (
            Arc::clone(&receiver.delay_ms),
            Arc::clone(&receiver.keep_alive),
            Arc::clone(&receiver.connections),
            Arc::clone(&receiver.open),
        );
        thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        connections.fetch_add(1, Ordering::SeqCst);
                        let script = Script {
                            status: Arc::clone(&status),
                            hold: Arc::clone(&hold),
                            delay_ms: Arc::clone(&delay_ms),
                            keep_alive: Arc::clone(&keep_alive),
                            open: Arc::clone(&open),
                            stop: Arc::clone(&stop),
                        };
                        let received = Arc::clone(&received);
                        thread::spawn(move || serve(stream, &received, &script));
                    }
                    Err(_) => thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        receiver
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Answers `status` from now on.
    pub fn answer(&self, status: u16) {
        self.status.store(status, Ordering::SeqCst);
    }

    /// Accepts but never answers (until [`Self::release`]).
    pub fn hold(&self) {
        self.hold.store(true, Ordering::SeqCst);
    }

    pub fn release(&self) {
        self.hold.store(false, Ordering::SeqCst);
    }

    /// Answers each request `delay` after it arrived, from now on.
    pub fn delay(&self, delay: Duration) {
        let ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
        self.delay_ms.store(ms, Ordering::SeqCst);
    }

    /// Answers with a short JSON body and keeps the connection, from now on.
    pub fn keep_alive(&self) {
        self.keep_alive.store(true, Ordering::SeqCst);
    }

    /// The connections accepted so far.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    /// The most requests that were being answered at once so far.
    pub fn most_at_once(&self) -> usize {
        self.open.1.load(Ordering::SeqCst)
    }

    pub fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    /// Waits (at most `limit`) until `n` requests came; returns them all.
    pub fn wait_for(&self, n: usize, limit: Duration) -> Vec<Received> {
        let deadline = Instant::now() + limit;
        loop {
            let got = self.received();
            if got.len() >= n || Instant::now() > deadline {
                return got;
            }
            thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// How a connection is answered (the receiver's settings, shared).
struct Script {
    status: Arc<AtomicU16>,
    hold: Arc<AtomicBool>,
    delay_ms: Arc<AtomicU64>,
    keep_alive: Arc<AtomicBool>,
    open: Arc<(AtomicUsize, AtomicUsize)>,
    stop: Arc<AtomicBool>,
}

fn serve(stream: TcpStream, received: &Mutex<Vec<Received>>, script: &Script) {
    stream.set_nonblocking(false).ok();
    stream.set_read_timeout(Some(Duration::from_secs(30))).ok();
    let mut reader = BufReader::new(&stream);
    while serve_one(&mut reader, &stream, received, script) {}
}

/// Reads and answers one request; whether the connection carries another.
fn serve_one(
    reader: &mut BufReader<&TcpStream>,
    stream: &TcpStream,
    received: &Mutex<Vec<Received>>,
    script: &Script,
) -> bool {
    let Script {
        status,
        hold,
        delay_ms,
        keep_alive,
        open,
        stop,
    } = script;
    let mut line = String::new();
    if reader.read_line(&mut line).unwrap_or(0) == 0 {
        return false;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or_default().to_owned();
    let path = parts.next().unwrap_or_default().to_owned();
    let mut headers = HashMap::new();
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).unwrap_or(0) == 0 {
            return false;
        }
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_owned());
        }
    }
    let length: usize = headers
        .get("content-length")
        .and_then(|l| l.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; length];
    if reader.read_exact(&mut body).is_err() {
        return false;
    }
    if hold.load(Ordering::SeqCst) {
        // Never answer: wait until released or stopped, then drop the connection.
        while hold.load(Ordering::SeqCst) && !stop.load(Ordering::SeqCst) {
            thread::sleep(Duration::from_millis(20));
        }
        return false;
    }
    received.lock().unwrap().push(Received {
        method,
        path,
        headers,
        body,
    });
    let now_open = open.0.fetch_add(1, Ordering::SeqCst) + 1;
    open.1.fetch_max(now_open, Ordering::SeqCst);
    thread::sleep(Duration::from_millis(delay_ms.load(Ordering::SeqCst)));
    open.0.fetch_sub(1, Ordering::SeqCst);
    let status = status.load(Ordering::SeqCst);
    let mut stream = stream;
    if keep_alive.load(Ordering::SeqCst) {
        // As many frameworks answer: a short JSON body, the connection kept.
        let answer = r#"{"received":true}"#;
        let _ = write!(
            stream,
            "HTTP/1.1 {status} Status\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\n\r\n{answer}",
            answer.len()
        );
        true
    } else {
        let _ = write!(
            stream,
            "HTTP/1.1 {status} Status\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        );
        false
    }
}
