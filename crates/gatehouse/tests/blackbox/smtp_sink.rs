//! A real SMTP server for the tests: it speaks enough of RFC 5321 for a client (greeting,
//! EHLO/HELO, MAIL, RCPT, DATA, RSET, NOOP, QUIT) and keeps every message it accepts.
//!
//! [`SmtpSink::start`] is plain SMTP without authentication. [`SmtpSink::start_secure`]
//! adds TLS, as STARTTLS (RFC 3207: `STARTTLS` in the EHLO reply, the connection upgraded
//! in place) or implicit TLS (`smtps`: TLS from the first byte), with a CA and a
//! certificate for `localhost`/127.0.0.1 made for the sink (OpenSSL); and, once the
//! connection is encrypted, `AUTH PLAIN` and `AUTH LOGIN` (RFC 4954, 4616) for one
//! account, which a client must pass before MAIL. Each mail records whether it came over
//! TLS and the user and password the client logged in with.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use openssl::asn1::Asn1Time;
use openssl::bn::{BigNum, MsbOption};
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::ssl::{SslAcceptor, SslMethod, SslStream};
use openssl::x509::extension::{
    AuthorityKeyIdentifier, BasicConstraints, ExtendedKeyUsage, KeyUsage, SubjectAlternativeName,
    SubjectKeyIdentifier,
};
use openssl::x509::{X509Name, X509};

/// One accepted message.
#[derive(Debug, Clone)]
pub struct Mail {
    pub from: String,
    pub to: Vec<String>,
    /// The message as sent after DATA (headers and body), dot-unstuffed.
    pub data: String,
    /// Whether it came over TLS (after STARTTLS, or on an implicit-TLS connection).
    pub tls: bool,
    /// How the client logged in before sending it, if it did.
    pub login: Option<Login>,
}

/// A successful `AUTH`: the mechanism, and the user and password the client sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Login {
    /// `PLAIN` or `LOGIN`.
    pub mechanism: String,
    pub user: String,
    pub password: String,
}

impl Mail {
    /// The value of header `name` (first occurrence, unfolded).
    pub fn header(&self, name: &str) -> String {
        let prefix = format!("{}:", name.to_ascii_lowercase());
        for line in self.data.split("\r\n") {
            if line.is_empty() {
                break;
            }
            if line.to_ascii_lowercase().starts_with(&prefix) {
                return line[prefix.len()..].trim().to_owned();
            }
        }
        String::new()
    }

    /// The body after the headers, decoded from its transfer encoding (quoted-printable,
    /// base64 or none).
    pub fn body(&self) -> String {
        let raw = self
            .data
            .split_once("\r\n\r\n")
            .map(|(_, body)| body.to_owned())
            .unwrap_or_default();
        let bytes = match self
            .header("content-transfer-encoding")
            .to_ascii_lowercase()
            .as_str()
        {
            "quoted-printable" => quoted_printable(&raw.replace("=\r\n", "")),
            "base64" => base64::engine::general_purpose::STANDARD
                .decode(raw.split_whitespace().collect::<String>())
                .expect("base64 body"),
            _ => raw.into_bytes(),
        };
        String::from_utf8(bytes)
            .expect("a UTF-8 body")
            .replace("\r\n", "\n")
    }
}

/// How a secure sink speaks TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    /// Plain SMTP that offers `STARTTLS` (`smtp://…?tls=required`).
    StartTls,
    /// TLS from the first byte (`smtps://`).
    Implicit,
}

/// The one account a secure sink accepts, and the `AUTH` mechanisms it advertises.
#[derive(Debug, Clone)]
pub struct Account {
    pub user: String,
    pub password: String,
    pub mechanisms: Vec<&'static str>,
}

impl Account {
    /// `user` with `password`, by `AUTH PLAIN` or `AUTH LOGIN`.
    pub fn new(user: &str, password: &str) -> Self {
        Self {
            user: user.to_owned(),
            password: password.to_owned(),
            mechanisms: vec!["PLAIN", "LOGIN"],
        }
    }

    /// The same, advertising (and taking) only `mechanisms`.
    pub fn with_mechanisms(mut self, mechanisms: &[&'static str]) -> Self {
        self.mechanisms = mechanisms.to_vec();
        self
    }
}

/// A secure sink's set-up: its TLS mode, server certificate and account.
struct Secure {
    security: Security,
    acceptor: SslAcceptor,
    account: Account,
}

/// What the sessions share with the test.
#[derive(Default)]
struct Shared {
    mails: Mutex<Vec<Mail>>,
    /// One line per event worth knowing when a test fails (TLS handshakes, AUTH).
    events: Mutex<Vec<String>>,
}

impl Shared {
    fn event(&self, text: String) {
        self.events.lock().unwrap().push(text);
    }
}

/// A secure sink's PEM files, in a temporary directory.
struct CaFiles {
    ca: PathBuf,
    bundle: PathBuf,
    _dir: tempfile::TempDir,
}

/// The sink; stops accepting when dropped.
pub struct SmtpSink {
    pub port: u16,
    shared: Arc<Shared>,
    stop: Arc<AtomicBool>,
    /// A secure sink's mode and CA files (`None` for a plain sink).
    secure: Option<(Security, CaFiles)>,
}

impl SmtpSink {
    /// Plain SMTP, no authentication.
    pub fn start() -> Self {
        Self::start_on(0)
    }

    /// Plain SMTP on `port` (0 picks a free one).
    pub fn start_on(port: u16) -> Self {
        Self::listen(port, None, None)
    }

    /// STARTTLS or implicit TLS, with a certificate for `localhost` and 127.0.0.1 signed by
    /// a CA of its own ([`ca_file`](Self::ca_file)); MAIL only after `AUTH` as `account`.
    pub fn start_secure(security: Security, account: Account) -> Self {
        let (ca_key, ca) = certificate_authority("Gatehouse test SMTP CA");
        let (key, certificate) = server_certificate(&ca_key, &ca);
        let (_, other_ca) = certificate_authority("Gatehouse unrelated test CA");
        let dir = tempfile::tempdir().unwrap();
        let ca_pem = String::from_utf8(ca.to_pem().unwrap()).unwrap();
        let other_pem = String::from_utf8(other_ca.to_pem().unwrap()).unwrap();
        let ca_path = dir.path().join("smtp-ca.pem");
        std::fs::write(&ca_path, &ca_pem).unwrap();
        // As a distribution's bundle: comments, another CA first, the one that matters last.
        let bundle = dir.path().join("ca-bundle.pem");
        std::fs::write(
            &bundle,
            format!("# unrelated\n{other_pem}\n# Gatehouse test SMTP CA\n{ca_pem}"),
        )
        .unwrap();
        let mut acceptor = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls_server()).unwrap();
        acceptor.set_private_key(&key).unwrap();
        acceptor.set_certificate(&certificate).unwrap();
        acceptor.check_private_key().unwrap();
        let secure = Secure {
            security,
            acceptor: acceptor.build(),
            account,
        };
        let files = CaFiles {
            ca: ca_path,
            bundle,
            _dir: dir,
        };
        Self::listen(0, Some(secure), Some((security, files)))
    }

    fn listen(port: u16, secure: Option<Secure>, files: Option<(Security, CaFiles)>) -> Self {
        let listener = TcpListener::bind(("127.0.0.1", port)).expect("bind the SMTP sink");
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let shared = Arc::new(Shared::default());
        let stop = Arc::new(AtomicBool::new(false));
        let secure = secure.map(Arc::new);
        {
            let (shared, stop) = (Arc::clone(&shared), Arc::clone(&stop));
            thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    match listener.accept() {
                        Ok((stream, _)) => {
                            let shared = Arc::clone(&shared);
                            let secure = secure.clone();
                            thread::spawn(move || {
                                if let Err(e) = session(stream, secure.as_deref(), &shared) {
                                    shared.event(format!("session ended: {e}"));
                                }
                            });
                        }
                        Err(_) => thread::sleep(Duration::from_millis(5)),
                    }
                }
            });
        }
        Self {
            port,
            shared,
            stop,
            secure: files,
        }
    }

    /// `smtp://127.0.0.1:PORT`, as a plain sink is reached.
    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// A secure sink's URL with `user` and `password` in it (percent-encoded):
    /// `smtp://USER:PASS@127.0.0.1:PORT?tls=required`, or `smtps://USER:PASS@…` for
    /// implicit TLS.
    pub fn secure_url(&self, user: &str, password: &str) -> String {
        let (security, _) = self.secure.as_ref().expect("a secure sink");
        let mut url = match security {
            Security::StartTls => format!("smtp://127.0.0.1:{}?tls=required", self.port),
            Security::Implicit => format!("smtps://127.0.0.1:{}", self.port),
        }
        .parse::<url::Url>()
        .unwrap();
        url.set_username(user).unwrap();
        url.set_password(Some(password)).unwrap();
        url.to_string()
    }

    /// The CA (PEM) that signed the sink's certificate.
    pub fn ca_file(&self) -> &Path {
        &self.secure.as_ref().expect("a secure sink").1.ca
    }

    /// A PEM bundle of two CAs, the sink's last, with comments around them.
    pub fn ca_bundle(&self) -> &Path {
        &self.secure.as_ref().expect("a secure sink").1.bundle
    }

    pub fn mails(&self) -> Vec<Mail> {
        self.shared.mails.lock().unwrap().clone()
    }

    /// What happened in the sessions (TLS handshakes, logins), one line each.
    pub fn events(&self) -> String {
        self.shared.events.lock().unwrap().join("\n")
    }

    /// Waits (at most `limit`) until `n` mails came; returns them all.
    /// As [`wait_for`](Self::wait_for), leaving aside the verification codes every
    /// self-registration is sent (the recovery issue): for tests about other mails.
    pub fn wait_for_others(&self, n: usize, limit: Duration) -> Vec<Mail> {
        let deadline = Instant::now() + limit;
        loop {
            let got: Vec<Mail> = self
                .mails()
                .into_iter()
                .filter(|mail| mail.header("subject") != "Verify your email address")
                .collect();
            if got.len() >= n || Instant::now() > deadline {
                return got;
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn wait_for(&self, n: usize, limit: Duration) -> Vec<Mail> {
        let deadline = Instant::now() + limit;
        loop {
            let got = self.mails();
            if got.len() >= n || Instant::now() > deadline {
                return got;
            }
            thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// A connection, before or after TLS.
enum Stream {
    Plain(TcpStream),
    Tls(Box<SslStream<TcpStream>>),
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Self::Plain(s) => s.read(buf),
            Self::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Self::Plain(s) => s.write(buf),
            Self::Tls(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Self::Plain(s) => s.flush(),
            Self::Tls(s) => s.flush(),
        }
    }
}

/// The server's side of a TLS handshake on `tcp`.
fn handshake(secure: &Secure, tcp: TcpStream, shared: &Shared) -> std::io::Result<Stream> {
    match secure.acceptor.accept(tcp) {
        Ok(tls) => {
            shared.event(format!("TLS handshake done ({})", tls.ssl().version_str()));
            Ok(Stream::Tls(Box::new(tls)))
        }
        Err(e) => {
            let text = format!("TLS handshake failed: {e}");
            shared.event(text.clone());
            Err(std::io::Error::other(text))
        }
    }
}

fn reply(conn: &mut BufReader<Stream>, text: &str) -> std::io::Result<()> {
    let out = conn.get_mut();
    out.write_all(text.as_bytes())?;
    out.write_all(b"\r\n")?;
    out.flush()
}

/// One command line without its CRLF; `None` at the end of the connection.
fn read_line(conn: &mut BufReader<Stream>) -> std::io::Result<Option<String>> {
    let mut line = String::new();
    if conn.read_line(&mut line)? == 0 {
        return Ok(None);
    }
    Ok(Some(line.trim_end_matches(['\r', '\n']).to_owned()))
}

fn session(tcp: TcpStream, secure: Option<&Secure>, shared: &Shared) -> std::io::Result<()> {
    tcp.set_nonblocking(false)?;
    tcp.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut tls = false;
    let stream = match secure {
        Some(s) if s.security == Security::Implicit => {
            tls = true;
            handshake(s, tcp, shared)?
        }
        _ => Stream::Plain(tcp),
    };
    let mut conn = BufReader::new(stream);
    reply(&mut conn, "220 sink.test ESMTP ready")?;
    let (mut from, mut to) = (String::new(), Vec::new());
    let mut login: Option<Login> = None;
    loop {
        let Some(command) = read_line(&mut conn)? else {
            return Ok(());
        };
        let upper = command.to_ascii_uppercase();
        if upper.starts_with("EHLO") {
            let mut lines = vec!["sink.test".to_owned(), "8BITMIME".to_owned()];
            match secure {
                Some(s) if s.security == Security::StartTls && !tls => {
                    lines.push("STARTTLS".to_owned());
                }
                Some(s) if tls => lines.push(format!("AUTH {}", s.account.mechanisms.join(" "))),
                _ => {}
            }
            lines.push("SMTPUTF8".to_owned());
            let last = lines.len() - 1;
            let text: Vec<String> = lines
                .iter()
                .enumerate()
                .map(|(i, line)| format!("250{}{line}", if i == last { ' ' } else { '-' }))
                .collect();
            reply(&mut conn, &text.join("\r\n"))?;
        } else if upper.starts_with("HELO") {
            reply(&mut conn, "250 sink.test")?;
        } else if upper == "STARTTLS" {
            let Some(s) = secure.filter(|s| s.security == Security::StartTls && !tls) else {
                reply(&mut conn, "503 5.5.1 TLS not available")?;
                continue;
            };
            reply(&mut conn, "220 2.0.0 ready to start TLS")?;
            // Nothing may come between STARTTLS and the handshake (RFC 3207, 4.2).
            if !conn.buffer().is_empty() {
                return Err(std::io::Error::other("data pipelined after STARTTLS"));
            }
            let Stream::Plain(tcp) = conn.into_inner() else {
                unreachable!("STARTTLS on a TLS connection");
            };
            conn = BufReader::new(handshake(s, tcp, shared)?);
            tls = true;
            // The client starts over: EHLO, and no state from before (RFC 3207, 4.2).
            (from, to, login) = (String::new(), Vec::new(), None);
        } else if upper.starts_with("AUTH") {
            let Some(s) = secure.filter(|_| tls) else {
                reply(&mut conn, "503 5.5.1 AUTH not available")?;
                continue;
            };
            if login.is_some() {
                reply(&mut conn, "503 5.5.1 already authenticated")?;
                continue;
            }
            match authenticate(&mut conn, &command, s, shared)? {
                Some(done) => {
                    login = Some(done);
                    reply(&mut conn, "235 2.7.0 Authentication successful")?;
                }
                None => reply(&mut conn, "535 5.7.8 Authentication credentials invalid")?,
            }
        } else if upper.starts_with("MAIL FROM:") {
            if secure.is_some() && login.is_none() {
                reply(&mut conn, "530 5.7.0 Authentication required")?;
                continue;
            }
            from = address(&command["MAIL FROM:".len()..]);
            to.clear();
            reply(&mut conn, "250 OK")?;
        } else if upper.starts_with("RCPT TO:") {
            let rcpt = address(&command["RCPT TO:".len()..]);
            if rcpt.starts_with("nobody@") {
                reply(&mut conn, "550 5.1.1 no such mailbox")?;
            } else {
                to.push(rcpt);
                reply(&mut conn, "250 OK")?;
            }
        } else if upper == "DATA" {
            reply(&mut conn, "354 end with <CRLF>.<CRLF>")?;
            let mut data = String::new();
            loop {
                let mut line = String::new();
                if conn.read_line(&mut line)? == 0 {
                    return Ok(());
                }
                if line == ".\r\n" {
                    break;
                }
                data.push_str(line.strip_prefix('.').unwrap_or(&line));
            }
            let queued = {
                let mut mails = shared.mails.lock().unwrap();
                mails.push(Mail {
                    from: from.clone(),
                    to: to.clone(),
                    data,
                    tls,
                    login: login.clone(),
                });
                mails.len()
            };
            reply(&mut conn, &format!("250 2.0.0 queued as {queued}"))?;
        } else if upper == "QUIT" {
            reply(&mut conn, "221 bye")?;
            return Ok(());
        } else if upper == "RSET" || upper == "NOOP" {
            reply(&mut conn, "250 OK")?;
        } else {
            reply(&mut conn, "502 command not implemented")?;
        }
    }
}

/// `AUTH PLAIN [initial]` or `AUTH LOGIN [initial]` (`command`), with its challenges: the
/// login when it is the account's, `None` when not (the session goes on).
fn authenticate(
    conn: &mut BufReader<Stream>,
    command: &str,
    secure: &Secure,
    shared: &Shared,
) -> std::io::Result<Option<Login>> {
    let mut words = command.split_whitespace().skip(1);
    let mechanism = words.next().unwrap_or_default().to_ascii_uppercase();
    let initial = words.next().map(str::to_owned);
    if !secure.account.mechanisms.contains(&mechanism.as_str()) {
        shared.event(format!("AUTH {mechanism}: not offered"));
        return Ok(None);
    }
    // A client's answer to a challenge (`=` is an empty initial response, RFC 4954).
    let answer = |conn: &mut BufReader<Stream>,
                  given: Option<String>,
                  challenge: &str|
     -> std::io::Result<Option<String>> {
        let text = match given {
            Some(text) => text,
            None => {
                let encoded = base64::engine::general_purpose::STANDARD.encode(challenge);
                reply(conn, &format!("334 {encoded}"))?;
                read_line(conn)?.unwrap_or_default()
            }
        };
        if text == "*" {
            return Ok(None);
        }
        if text == "=" {
            return Ok(Some(String::new()));
        }
        Ok(base64::engine::general_purpose::STANDARD
            .decode(text.trim())
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok()))
    };
    let credentials = match mechanism.as_str() {
        "PLAIN" => answer(conn, initial, "")?.and_then(|text| {
            // authzid NUL authcid NUL passwd
            let mut parts = text.splitn(3, '\0');
            let (_authzid, user, password) = (parts.next()?, parts.next()?, parts.next()?);
            Some((user.to_owned(), password.to_owned()))
        }),
        "LOGIN" => match answer(conn, initial, "Username:")? {
            Some(user) => answer(conn, None, "Password:")?.map(|password| (user, password)),
            None => None,
        },
        _ => None,
    };
    let Some((user, password)) = credentials else {
        shared.event(format!("AUTH {mechanism}: cancelled or malformed"));
        return Ok(None);
    };
    let good = user == secure.account.user && password == secure.account.password;
    shared.event(format!(
        "AUTH {mechanism} as {user:?}: {}",
        if good { "accepted" } else { "refused" }
    ));
    Ok(good.then_some(Login {
        mechanism,
        user,
        password,
    }))
}

/// `=XX` escapes decoded (soft line breaks already removed).
fn quoted_printable(text: &str) -> Vec<u8> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'=' && i + 2 < bytes.len() {
            if let Ok(byte) = u8::from_str_radix(&text[i + 1..i + 3], 16) {
                out.push(byte);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    out
}

/// `<a@b>` and parameters → `a@b`.
fn address(argument: &str) -> String {
    let argument = argument.trim();
    match (argument.find('<'), argument.find('>')) {
        (Some(open), Some(close)) if open < close => argument[open + 1..close].to_owned(),
        _ => argument
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_owned(),
    }
}

// The sink's certificates, as crates/storage/src/testing/tls.rs makes PostgreSQL's.

fn new_key() -> PKey<Private> {
    let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap();
    PKey::from_ec_key(EcKey::generate(&group).unwrap()).unwrap()
}

fn serial() -> openssl::asn1::Asn1Integer {
    let mut serial = BigNum::new().unwrap();
    serial.rand(64, MsbOption::MAYBE_ZERO, false).unwrap();
    serial.to_asn1_integer().unwrap()
}

fn name(common_name: &str) -> X509Name {
    let mut name = X509Name::builder().unwrap();
    name.append_entry_by_nid(Nid::COMMONNAME, common_name)
        .unwrap();
    name.build()
}

/// From an hour ago (clocks differ a little) to a day from now.
fn validity(cert: &mut openssl::x509::X509Builder) {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let hour_ago = Asn1Time::from_unix(i64::try_from(now).unwrap() - 3600).unwrap();
    cert.set_not_before(&hour_ago).unwrap();
    cert.set_not_after(&Asn1Time::days_from_now(1).unwrap())
        .unwrap();
}

/// A self-signed CA named `common_name`.
fn certificate_authority(common_name: &str) -> (PKey<Private>, X509) {
    let key = new_key();
    let subject = name(common_name);
    let mut cert = X509::builder().unwrap();
    cert.set_version(2).unwrap();
    cert.set_serial_number(&serial()).unwrap();
    cert.set_subject_name(&subject).unwrap();
    cert.set_issuer_name(&subject).unwrap();
    cert.set_pubkey(&key).unwrap();
    validity(&mut cert);
    cert.append_extension(BasicConstraints::new().critical().ca().build().unwrap())
        .unwrap();
    cert.append_extension(
        KeyUsage::new()
            .critical()
            .key_cert_sign()
            .crl_sign()
            .build()
            .unwrap(),
    )
    .unwrap();
    let ski = SubjectKeyIdentifier::new()
        .build(&cert.x509v3_context(None, None))
        .unwrap();
    cert.append_extension(ski).unwrap();
    cert.sign(&key, MessageDigest::sha256()).unwrap();
    (key, cert.build())
}

/// The sink's certificate for `localhost` and 127.0.0.1, signed by the CA.
fn server_certificate(ca_key: &PKey<Private>, ca: &X509) -> (PKey<Private>, X509) {
    let key = new_key();
    let mut cert = X509::builder().unwrap();
    cert.set_version(2).unwrap();
    cert.set_serial_number(&serial()).unwrap();
    cert.set_subject_name(&name("localhost")).unwrap();
    cert.set_issuer_name(ca.subject_name()).unwrap();
    cert.set_pubkey(&key).unwrap();
    validity(&mut cert);
    cert.append_extension(BasicConstraints::new().build().unwrap())
        .unwrap();
    cert.append_extension(
        KeyUsage::new()
            .critical()
            .digital_signature()
            .key_agreement()
            .build()
            .unwrap(),
    )
    .unwrap();
    cert.append_extension(ExtendedKeyUsage::new().server_auth().build().unwrap())
        .unwrap();
    let san = SubjectAlternativeName::new()
        .dns("localhost")
        .ip("127.0.0.1")
        .build(&cert.x509v3_context(Some(ca), None))
        .unwrap();
    cert.append_extension(san).unwrap();
    let aki = AuthorityKeyIdentifier::new()
        .keyid(true)
        .build(&cert.x509v3_context(Some(ca), None))
        .unwrap();
    cert.append_extension(aki).unwrap();
    cert.sign(ca_key, MessageDigest::sha256()).unwrap();
    (key, cert.build())
}
