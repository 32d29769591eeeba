//! A server process under load: Gatehouse (`gatehouse serve`) or the ceiling, started on a
//! free port of 127.0.0.1 with only the environment we give it, its output in a log file,
//! and its peak resident set size read from `/proc/<pid>/status`: per scenario (the
//! high-water mark is reset through `/proc/<pid>/clear_refs` before one) and over its life.

use std::fs::File;
use std::io::{BufRead as _, BufReader, BufWriter, Read as _, Seek as _, SeekFrom, Write as _};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};

/// How long a server may take to answer `/healthz` after it starts.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long it may take to stop after SIGTERM before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(20);

/// A running server; killed when dropped.
#[derive(Debug)]
pub struct Server {
    child: Child,
    base: String,
    name: String,
    log: PathBuf,
    agent: ureq::Agent,
    /// The highest `VmHWM` read before a reset of it (KiB): the life's peak is this or the
    /// current `VmHWM`, whichever is higher.
    peak_before_resets: AtomicU64,
    /// No scenario has run on it yet: its `VmHWM` is the peak of the first scenario even
    /// when the high-water mark cannot be reset.
    fresh: AtomicBool,
}

/// A response, read whole.
#[derive(Debug)]
pub struct Reply {
    /// The status code.
    pub status: u16,
    /// The body as text.
    pub body: String,
    /// Its `X-Total-Count` header (a listing's total), when it has a number there.
    pub total_count: Option<u64>,
}

impl Server {
    /// Starts `program args` with `env` (and `PATH`, nothing else), listening on a free port
    /// given as `GATEHOUSE_BIND`; its stdout and stderr go to `log`. Waits until
    /// `GET /healthz` answers 200.
    ///
    /// # Errors
    /// When it cannot be started or does not become healthy.
    pub fn start(
        name: &str,
        program: &Path,
        args: &[&str],
        env: &[(&str, String)],
        log: &Path,
    ) -> Result<Self> {
        let port = free_port()?;
        let out = File::create(log).with_context(|| format!("creating {}", log.display()))?;
        let err = out.try_clone().context("duplicating the log file")?;
        let mut command = Command::new(program);
        command.args(args).env_clear();
        if let Some(path) = std::env::var_os("PATH") {
            command.env("PATH", path);
        }
        command
            .env("GATEHOUSE_BIND", format!("127.0.0.1:{port}"))
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err));
        let child = command
            .spawn()
            .with_context(|| format!("starting {}", program.display()))?;
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(30)))
            .build()
            .into();
        let mut server = Self {
            child,
            base: format!("http://127.0.0.1:{port}"),
            name: name.to_owned(),
            log: log.to_owned(),
            agent,
            peak_before_resets: AtomicU64::new(0),
            fresh: AtomicBool::new(true),
        };
        server.wait_healthy()?;
        Ok(server)
    }

    fn wait_healthy(&mut self) -> Result<()> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait().context("checking the server")? {
                bail!(
                    "{} exited ({status}) before it was healthy; its log:\n{}",
                    self.name,
                    self.log_text()
                );
            }
            if matches!(self.get("/healthz", None), Ok(reply) if reply.status == 200) {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "{} did not answer /healthz within {START_TIMEOUT:?}; its log:\n{}",
                    self.name,
                    self.log_text()
                );
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// `http://127.0.0.1:PORT` followed by `path`.
    #[must_use]
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Its process id.
    #[must_use]
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What it has logged so far.
    #[must_use]
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Where its log is.
    #[must_use]
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// Waits until the process has used less than 5% of a core over 200 ms (at most a
    /// minute): requests a finished load left behind — a login's bcrypt, above all — must
    /// not eat into the next measurement. Returns how long it waited.
    ///
    /// # Errors
    /// When `/proc/<pid>/stat` cannot be read.
    pub fn wait_idle(&self) -> Result<Duration> {
        const WINDOW: Duration = Duration::from_millis(200);
        let started = Instant::now();
        let ticks = || {
            crate::cpu::process_ticks(self.pid())
                .with_context(|| format!("reading /proc/{}/stat", self.pid()))
        };
        let mut before = ticks()?;
        loop {
            thread::sleep(WINDOW);
            let now = ticks()?;
            // Clock ticks are 10 ms: at most one tick in 200 ms is idle.
            if now.saturating_sub(before) <= 1 || started.elapsed() > Duration::from_secs(60) {
                return Ok(started.elapsed());
            }
            before = now;
        }
    }

    /// The peak resident set size since it started or since the last
    /// [`reset_peak`](Self::reset_peak) (`VmHWM`), in KiB.
    ///
    /// # Errors
    /// When `/proc/<pid>/status` cannot be read.
    pub fn peak_rss_kib(&self) -> Result<u64> {
        peak_rss_kib(self.pid())
    }

    /// The peak resident set size over its whole life so far, resets included, in KiB.
    ///
    /// # Errors
    /// When `/proc/<pid>/status` cannot be read.
    pub fn life_peak_rss_kib(&self) -> Result<u64> {
        Ok(self
            .peak_rss_kib()?
            .max(self.peak_before_resets.load(Ordering::Relaxed)))
    }

    /// Starts a scenario's peak: keeps the peak so far for
    /// [`life_peak_rss_kib`](Self::life_peak_rss_kib), then resets the high-water mark to
    /// the current RSS by writing `5` to `/proc/<pid>/clear_refs`. Returns whether the
    /// `VmHWM` read after the scenario will be its peak: true when the reset worked, or when
    /// nothing ran on this server before (its life so far is start-up and a login);
    /// false when the kernel refused the reset on a server that already ran something.
    ///
    /// # Errors
    /// When `/proc/<pid>/status` cannot be read.
    pub fn reset_peak(&self) -> Result<bool> {
        let fresh = self.fresh.swap(false, Ordering::Relaxed);
        let so_far = self.peak_rss_kib()?;
        self.peak_before_resets.fetch_max(so_far, Ordering::Relaxed);
        Ok(reset_peak(self.pid()).is_ok() || fresh)
    }

    /// The size of its log so far, in bytes.
    #[must_use]
    pub fn log_len(&self) -> u64 {
        std::fs::metadata(&self.log).map_or(0, |m| m.len())
    }

    /// Lines written to its log after byte `offset`.
    ///
    /// # Errors
    /// When the log cannot be read.
    pub fn log_lines_since(&self, offset: u64) -> Result<u64> {
        let mut file =
            File::open(&self.log).with_context(|| format!("opening {}", self.log.display()))?;
        file.seek(SeekFrom::Start(offset))
            .context("seeking in the log")?;
        let mut buf = [0u8; 64 * 1024];
        let mut lines = 0;
        loop {
            let n = file.read(&mut buf).context("reading the log")?;
            if n == 0 {
                return Ok(lines);
            }
            lines += buf[..n].iter().filter(|b| **b == b'\n').count() as u64;
        }
    }

    /// `GET path`, with a bearer token when given.
    ///
    /// # Errors
    /// Transport failures.
    pub fn get(&self, path: &str, token: Option<&str>) -> Result<Reply> {
        let mut request = self.agent.get(self.url(path));
        if let Some(token) = token {
            request = request.header("Authorization", format!("Bearer {token}"));
        }
        read(request.call())
    }

    /// `POST path` with a JSON body.
    ///
    /// # Errors
    /// Transport failures.
    pub fn post_json(&self, path: &str, body: &serde_json::Value) -> Result<Reply> {
        read(self.agent.post(self.url(path)).send_json(body))
    }

    /// `POST path` with a JSON body and a bearer token.
    ///
    /// # Errors
    /// Transport failures.
    pub fn post_json_as(&self, path: &str, token: &str, body: &serde_json::Value) -> Result<Reply> {
        read(
            self.agent
                .post(self.url(path))
                .header("Authorization", format!("Bearer {token}"))
                .send_json(body),
        )
    }

    /// `PUT path` with a JSON body and a bearer token.
    ///
    /// # Errors
    /// Transport failures.
    pub fn put_json_as(&self, path: &str, token: &str, body: &serde_json::Value) -> Result<Reply> {
        read(
            self.agent
                .put(self.url(path))
                .header("Authorization", format!("Bearer {token}"))
                .send_json(body),
        )
    }

    /// `POST path` with no body and no token.
    ///
    /// # Errors
    /// Transport failures.
    pub fn post_empty(&self, path: &str) -> Result<Reply> {
        read(self.agent.post(self.url(path)).send_empty())
    }

    /// `POST path` with no body and a bearer token.
    ///
    /// # Errors
    /// Transport failures.
    pub fn post_empty_as(&self, path: &str, token: &str) -> Result<Reply> {
        read(
            self.agent
                .post(self.url(path))
                .header("Authorization", format!("Bearer {token}"))
                .send_empty(),
        )
    }

    /// `DELETE path` with a bearer token.
    ///
    /// # Errors
    /// Transport failures.
    pub fn delete_as(&self, path: &str, token: &str) -> Result<Reply> {
        read(
            self.agent
                .delete(self.url(path))
                .header("Authorization", format!("Bearer {token}"))
                .call(),
        )
    }

    /// Creates an invitation of `max_uses` uses as the admin whose token this is, and
    /// returns its code.
    ///
    /// # Errors
    /// When the creation does not answer 201 with a code.
    pub fn invitation(&self, token: &str, max_uses: u32) -> Result<String> {
        let reply = self.post_json_as(
            "/api/auth/invitations",
            token,
            &serde_json::json!({"max_uses": max_uses, "expires_in": "1d"}),
        )?;
        if reply.status != 201 {
            bail!(
                "{}: creating an invitation answered {}: {}",
                self.name,
                reply.status,
                reply.body
            );
        }
        let body: serde_json::Value =
            serde_json::from_str(&reply.body).context("the invitation")?;
        body.get("code")
            .and_then(serde_json::Value::as_str)
            .map(str::to_owned)
            .context("no code in the invitation")
    }

    /// `POST path` with a form body.
    ///
    /// # Errors
    /// Transport failures.
    pub fn post_form(&self, path: &str, fields: &[(&str, &str)]) -> Result<Reply> {
        read(
            self.agent
                .post(self.url(path))
                .send_form(fields.iter().copied()),
        )
    }

    /// Logs in with the OAuth2 password form and returns the access token.
    ///
    /// # Errors
    /// When the login does not answer 200 with a token.
    pub fn login(&self, email: &str, password: &str) -> Result<String> {
        let reply = self.post_form(
            "/api/auth/login",
            &[("username", email), ("password", password)],
        )?;
        if reply.status != 200 {
            bail!(
                "{}: login answered {}: {}",
                self.name,
                reply.status,
                reply.body
            );
        }
        let body: serde_json::Value =
            serde_json::from_str(&reply.body).context("the login response")?;
        body.get("access_token")
            .and_then(serde_json::Value::as_str)
            .map(str::to_owned)
            .context("no access_token in the login response")
    }

    /// Registers `email` and expects 201.
    ///
    /// # Errors
    /// When registration does not answer 201.
    pub fn register(&self, email: &str, password: &str) -> Result<()> {
        let reply = self.post_json(
            "/api/auth/register",
            &serde_json::json!({"email": email, "password": password}),
        )?;
        if reply.status != 201 {
            bail!(
                "{}: registering {email} answered {}: {}",
                self.name,
                reply.status,
                reply.body
            );
        }
        Ok(())
    }

    /// Checks that `path` answers 200 with `token`.
    ///
    /// # Errors
    /// When it answers anything else.
    pub fn expect_ok(&self, path: &str, token: &str) -> Result<()> {
        let reply = self.get(path, Some(token))?;
        if reply.status != 200 {
            bail!(
                "{}: GET {path} answered {}: {}",
                self.name,
                reply.status,
                reply.body
            );
        }
        Ok(())
    }

    /// SIGTERM, then waits (SIGKILL after a while); returns the peak RSS of its whole life
    /// in KiB, read just before.
    ///
    /// # Errors
    /// When the peak RSS cannot be read or the process cannot be signalled.
    pub fn stop(mut self) -> Result<u64> {
        let peak = self.life_peak_rss_kib();
        let pid = self.pid().to_string();
        let signalled = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .context("running kill -TERM")?;
        if signalled.success() {
            let deadline = Instant::now() + STOP_TIMEOUT;
            while Instant::now() < deadline {
                if self
                    .child
                    .try_wait()
                    .context("waiting for the server")?
                    .is_some()
                {
                    return peak;
                }
                thread::sleep(Duration::from_millis(50));
            }
            eprintln!(
                "gatehouse-bench: {} did not stop within {STOP_TIMEOUT:?} of SIGTERM; killing it",
                self.name
            );
        }
        self.child.kill().context("killing the server")?;
        self.child.wait().context("waiting for the server")?;
        peak
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn read(response: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> Result<Reply> {
    let mut response = response.context("HTTP request")?;
    let status = response.status().as_u16();
    let total_count = response
        .headers()
        .get("x-total-count")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok());
    // An unpaged listing of 100 000 users is megabytes: above ureq's 10 MB default.
    let body = response
        .body_mut()
        .with_config()
        .limit(1 << 30)
        .read_to_string()
        .context("reading the response body")?;
    Ok(Reply {
        status,
        body,
        total_count,
    })
}

/// A port of 127.0.0.1 that was free a moment ago.
///
/// # Errors
/// When no port can be bound.
pub fn free_port() -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(listener.local_addr().context("the free port")?.port())
}

/// Resets the peak RSS (`VmHWM`) of process `pid` to its current RSS (Linux 4.0 and
/// later; the caller must be allowed to ptrace it, as for its own children).
///
/// # Errors
/// When the kernel refuses or the process is gone.
pub fn reset_peak(pid: u32) -> std::io::Result<()> {
    std::fs::write(format!("/proc/{pid}/clear_refs"), b"5")
}

/// Whether this process may reset its children's peak RSS: it tries on itself (its own
/// peak is not measured).
#[must_use]
pub fn can_reset_peaks() -> bool {
    reset_peak(std::process::id()).is_ok()
}

/// What a server's log held, read once it stopped.
#[derive(Debug, Default)]
pub struct LogSummary {
    /// Lines at WARN or ERROR, verbatim.
    pub problems: Vec<String>,
    /// Lines in all.
    pub lines: u64,
    /// Access-log lines (an INFO line with `status=`) dropped from the file.
    pub dropped: u64,
}

/// Access-log lines kept when a log is compacted.
const KEPT_ACCESS_LINES: u64 = 200;
/// Logs larger than this are compacted.
const COMPACT_ABOVE: u64 = 8 * 1024 * 1024;

/// Reads a stopped server's log line by line for its WARN and ERROR lines; a log above 8 MiB
/// (at the defaults Gatehouse writes an access line per request: hundreds of megabytes in a
/// run) is rewritten without its access-log lines after the first 200, and a last line
/// saying how many were dropped. Everything else is kept.
///
/// # Errors
/// When the log cannot be read or rewritten.
pub fn summarise_log(path: &Path) -> Result<LogSummary> {
    let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let compact = file.metadata().is_ok_and(|m| m.len() > COMPACT_ABOVE);
    let tmp = path.with_extension("log.compacting");
    let mut out = if compact {
        Some(BufWriter::new(
            File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?,
        ))
    } else {
        None
    };
    let mut summary = LogSummary::default();
    let mut access = 0u64;
    let mut reader = BufReader::new(file);
    let mut line = Vec::new();
    loop {
        line.clear();
        if reader
            .read_until(b'\n', &mut line)
            .context("reading the log")?
            == 0
        {
            break;
        }
        summary.lines += 1;
        let text = String::from_utf8_lossy(&line);
        if text.contains(" WARN ") || text.contains(" ERROR ") {
            summary.problems.push(text.trim_end().to_owned());
        }
        let keep = if text.contains(" INFO ") && text.contains("status=") {
            access += 1;
            access <= KEPT_ACCESS_LINES
        } else {
            true
        };
        if let Some(out) = &mut out {
            if keep {
                out.write_all(&line).context("writing the compacted log")?;
            } else {
                summary.dropped += 1;
            }
        }
    }
    if let Some(mut out) = out {
        writeln!(
            out,
            "gatehouse-bench: {} access-log lines after the first {KEPT_ACCESS_LINES} were dropped \
             from this file once the server stopped ({} lines in all)",
            summary.dropped, summary.lines
        )
        .context("writing the compacted log")?;
        out.flush().context("writing the compacted log")?;
        drop(out);
        std::fs::rename(&tmp, path).with_context(|| format!("replacing {}", path.display()))?;
    }
    Ok(summary)
}

/// `VmHWM` of process `pid`, in KiB.
///
/// # Errors
/// When its status cannot be read or has no `VmHWM` line.
pub fn peak_rss_kib(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    vm_hwm_kib(&status).with_context(|| format!("no VmHWM in /proc/{pid}/status"))
}

fn vm_hwm_kib(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_vm_hwm() {
        let status = "Name:\tx\nVmPeak:\t  10000 kB\nVmHWM:\t   23456 kB\nVmRSS:\t 1 kB\n";
        assert_eq!(vm_hwm_kib(status), Some(23_456));
        assert_eq!(vm_hwm_kib("Name: x\n"), None);
        assert!(peak_rss_kib(std::process::id()).unwrap() > 0);
    }

    #[test]
    fn summarises_and_compacts_a_log() {
        let dir = tempfile::tempdir().unwrap();
        let small = dir.path().join("small.log");
        std::fs::write(
            &small,
            "2026-12-05T21:00:00Z  INFO gatehouse: listening\n\
             2026-12-05T21:00:01Z  WARN gatehouse: slow\n\
             2026-12-05T21:00:02Z  INFO request{}: request route=/x status=200 elapsed_ms=0.1\n",
        )
        .unwrap();
        let summary = summarise_log(&small).unwrap();
        assert_eq!((summary.lines, summary.dropped), (3, 0));
        assert_eq!(summary.problems.len(), 1);
        assert!(summary.problems[0].ends_with("WARN gatehouse: slow"));

        let big = dir.path().join("big.log");
        let access = "2026-12-05T21:00:02Z  INFO request{request_id=x}: gatehouse_http::observe: \
                      request route=/api/auth/me status=200 elapsed_ms=0.1\n";
        let mut text = String::from("2026-12-05T21:00:00Z  INFO gatehouse: listening\n");
        let repeats = COMPACT_ABOVE as usize / access.len() + 10;
        for _ in 0..repeats {
            text.push_str(access);
        }
        text.push_str("2026-12-05T21:00:09Z ERROR gatehouse: gone\n");
        std::fs::write(&big, &text).unwrap();
        let summary = summarise_log(&big).unwrap();
        assert_eq!(summary.lines, repeats as u64 + 2);
        assert_eq!(summary.dropped, repeats as u64 - KEPT_ACCESS_LINES);
        assert_eq!(summary.problems.len(), 1);
        let after = std::fs::read_to_string(&big).unwrap();
        assert_eq!(after.lines().count() as u64, KEPT_ACCESS_LINES + 3);
        assert!(after.contains("ERROR gatehouse: gone"));
        assert!(after
            .lines()
            .last()
            .unwrap()
            .starts_with("gatehouse-bench: "));
    }

    #[test]
    fn resets_a_childs_peak() {
        if !can_reset_peaks() {
            return; // not permitted here: the harness falls back to fresh servers
        }
        let mut child = Command::new("sleep").arg("5").spawn().unwrap();
        thread::sleep(Duration::from_millis(50));
        assert!(reset_peak(child.id()).is_ok());
        assert!(peak_rss_kib(child.id()).unwrap() > 0);
        child.kill().unwrap();
        child.wait().unwrap();
    }
}
