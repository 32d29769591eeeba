//! A server process under load: Gatehouse (`gatehouse serve`) or the ceiling, started on a
//! free port of 127.0.0.1 with only the environment we give it, its output in a log file,
//! and its peak resident set size read from `/proc/<pid>/status` before it stops.

use std::fs::File;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
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
}

/// A response, read whole.
#[derive(Debug)]
pub struct Reply {
    /// The status code.
    pub status: u16,
    /// The body as text.
    pub body: String,
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

    /// The peak resident set size so far (`VmHWM`), in KiB.
    ///
    /// # Errors
    /// When `/proc/<pid>/status` cannot be read.
    pub fn peak_rss_kib(&self) -> Result<u64> {
        peak_rss_kib(self.pid())
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

    /// SIGTERM, then waits (SIGKILL after a while); returns the peak RSS in KiB read just
    /// before.
    ///
    /// # Errors
    /// When the peak RSS cannot be read or the process cannot be signalled.
    pub fn stop(mut self) -> Result<u64> {
        let peak = self.peak_rss_kib();
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
    let body = response
        .body_mut()
        .read_to_string()
        .context("reading the response body")?;
    Ok(Reply { status, body })
}

/// A port of 127.0.0.1 that was free a moment ago.
///
/// # Errors
/// When no port can be bound.
pub fn free_port() -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(listener.local_addr().context("the free port")?.port())
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
}
