//! Starting, stopping and talking to a real `gatehouse serve` process.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use gatehouse_storage::testing::EmptyDatabase;
use serde_json::{json, Value};

/// The binary under test.
pub fn binary() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_gatehouse"));
    // Only what we set: a GATEHOUSE_* variable of the developer's shell must not leak in.
    command.env_clear();
    if let Some(path) = std::env::var_os("PATH") {
        command.env("PATH", path);
    }
    command
}

/// A temporary directory for one SQLite file (for the command-line tests).
pub struct TempDb {
    dir: tempfile::TempDir,
}

impl TempDb {
    pub fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    pub fn path(&self) -> PathBuf {
        self.dir.path().join("gatehouse.db")
    }

    pub fn url(&self) -> String {
        format!("sqlite://{}", self.path().display())
    }
}

/// A running server; killed when dropped.
pub struct Server {
    child: Child,
    pub base: String,
    log: Arc<Mutex<String>>,
    agent: ureq::Agent,
}

/// A response, read whole.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Value,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

impl Server {
    /// Starts `gatehouse serve` on a free port of 127.0.0.1 with the database at `db`,
    /// bcrypt at cost 4, and `env` on top; waits until it listens.
    pub fn start(db: &EmptyDatabase, env: &[(&str, &str)]) -> Self {
        Self::start_at(&db.url_string(), env)
    }

    /// As [`start`](Self::start), for a database URL.
    pub fn start_at(database_url: &str, env: &[(&str, &str)]) -> Self {
        Self::wait_until_listening(Self::spawn(database_url, env))
    }

    /// Starts the process without waiting for it (to start several at once).
    pub fn spawn(
        database_url: &str,
        env: &[(&str, &str)],
    ) -> (Child, Arc<Mutex<String>>, mpsc::Receiver<String>) {
        let mut command = binary();
        command
            .env("GATEHOUSE_BIND", "127.0.0.1:0")
            .env("GATEHOUSE_DATABASE_URL", database_url)
            .env("GATEHOUSE_BCRYPT_COST", "4")
            .env("RUST_LOG", "info")
            .envs(env.iter().copied());
        Self::spawn_command(command)
    }

    /// `gatehouse serve` with only `env` (and what the test process has): for settings
    /// that come from elsewhere, a configuration file say.
    pub fn start_with_only(env: &[(&str, &str)]) -> Self {
        let mut command = binary();
        command.envs(env.iter().copied());
        Self::wait_until_listening(Self::spawn_command(command))
    }

    /// Runs `command serve`, collecting its log and sending the address it listens on
    /// (read from a text or a JSON log line).
    fn spawn_command(mut command: Command) -> (Child, Arc<Mutex<String>>, mpsc::Receiver<String>) {
        command
            .arg("serve")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = command.spawn().expect("start gatehouse");
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = mpsc::channel();
        {
            let log = log.clone();
            thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    if let Some(at) = line.find("listening on http://") {
                        let addr: String = line[at + "listening on http://".len()..]
                            .chars()
                            .take_while(|c| c.is_ascii_alphanumeric() || ".:[]-".contains(*c))
                            .collect();
                        let _ = tx.send(addr);
                    }
                    let mut log = log.lock().unwrap();
                    log.push_str(&line);
                    log.push('\n');
                }
            });
        }
        (child, log, rx)
    }

    /// Waits for a spawned process to listen.
    pub fn wait_until_listening(
        spawned: (Child, Arc<Mutex<String>>, mpsc::Receiver<String>),
    ) -> Self {
        let (mut child, log, rx) = spawned;
        let addr = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(addr) => addr,
            Err(_) => {
                let _ = child.kill();
                panic!("gatehouse did not start:\n{}", log.lock().unwrap());
            }
        };
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(30)))
            .build()
            .into();
        Self {
            child,
            base: format!("http://{addr}"),
            log,
            agent,
        }
    }

    /// Everything the server logged so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// The log once it mentions `needle` (lines reach us through a pipe and a reader
    /// thread, a moment after the response); the log as it is after 10 s otherwise.
    pub fn log_once_it_has(&self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let log = self.log();
            if log.contains(needle) || Instant::now() > deadline {
                return log;
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM, then waits for the exit.
    pub fn stop(mut self) -> ExitStatus {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(sent.success());
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "gatehouse did not stop on SIGTERM"
            );
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGTERM, waits for the exit, and gives everything the server logged until then
    /// (its last line is `stopped`).
    pub fn stop_and_read_log(self) -> String {
        let log = Arc::clone(&self.log);
        assert!(self.stop().success());
        // The reader thread takes the last lines off the closed pipe a moment later.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let text = log.lock().unwrap().clone();
            if text.contains("stopped") || Instant::now() > deadline {
                return text;
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL: no chance to flush or clean up.
    pub fn kill9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    fn finish(&self, response: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> Reply {
        let mut response = response.expect("request");
        let status = response.status().as_u16();
        let headers: Vec<(String, String)> = response
            .headers()
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_str().unwrap_or_default().to_owned()))
            .collect();
        let text = response.body_mut().read_to_string().unwrap();
        let json = headers_say_json(&headers);
        let body = if text.is_empty() {
            Value::Null
        } else if json {
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"))
        } else {
            // /metrics, /docs: the text as it came.
            Value::String(text)
        };
        Reply {
            status,
            headers,
            body,
        }
    }

    /// `GET path`, its status, headers and body as text, exactly as they came.
    pub fn get_text(
        &self,
        path: &str,
        token: Option<&str>,
    ) -> (u16, Vec<(String, String)>, String) {
        let mut request = self.agent.get(format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.header("Authorization", format!("Bearer {token}"));
        }
        let mut response = request.call().expect("request");
        let headers = response
            .headers()
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_str().unwrap_or_default().to_owned()))
            .collect();
        let text = response.body_mut().read_to_string().unwrap();
        (response.status().as_u16(), headers, text)
    }

    pub fn get(&self, path: &str, token: Option<&str>) -> Reply {
        let mut request = self.agent.get(format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.header("Authorization", format!("Bearer {token}"));
        }
        self.finish(request.call())
    }

    pub fn send_json(&self, method: &str, path: &str, token: Option<&str>, body: &Value) -> Reply {
        let url = format!("{}{path}", self.base);
        let bearer = token.map(|t| format!("Bearer {t}"));
        let response = match method {
            "POST" => {
                let mut r = self.agent.post(url);
                if let Some(b) = &bearer {
                    r = r.header("Authorization", b);
                }
                r.send_json(body)
            }
            "PUT" => {
                let mut r = self.agent.put(url);
                if let Some(b) = &bearer {
                    r = r.header("Authorization", b);
                }
                r.send_json(body)
            }
            "DELETE" => {
                let mut r = self.agent.delete(url);
                if let Some(b) = &bearer {
                    r = r.header("Authorization", b);
                }
                // A body only when one is given (`DELETE /me/mfa/totp` takes one).
                if body.is_null() {
                    r.call()
                } else {
                    r.force_send_body().send_json(body)
                }
            }
            other => panic!("unsupported method {other}"),
        };
        self.finish(response)
    }

    /// Any request: `headers` as given, `body` as JSON when present (an empty body otherwise).
    pub fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&Value>,
    ) -> Reply {
        let mut request = ureq::http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = match body {
            Some(json) => self.agent.run(
                request
                    .header("Content-Type", "application/json")
                    .body(json.to_string())
                    .unwrap(),
            ),
            None => self.agent.run(request.body(()).unwrap()),
        };
        self.finish(response)
    }

    /// A registration that may fail at the transport (no answer within 30 s): the error
    /// as text, for tests that stage faults and must not panic on a client thread.
    pub fn try_register(&self, email: &str, password: &str) -> Result<Reply, String> {
        let response = self
            .agent
            .post(format!("{}/api/auth/register", self.base))
            .send_json(json!({"email": email, "password": password}))
            .map_err(|e| e.to_string())?;
        Ok(self.finish(Ok(response)))
    }

    /// `GET path` that may fail at the transport (no answer within 30 s), as
    /// [`Self::try_register`].
    pub fn try_get(&self, path: &str, token: Option<&str>) -> Result<Reply, String> {
        let mut request = self.agent.get(format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.header("Authorization", format!("Bearer {token}"));
        }
        let response = request.call().map_err(|e| e.to_string())?;
        Ok(self.finish(Ok(response)))
    }

    pub fn register(&self, email: &str, password: &str) -> Reply {
        self.send_json(
            "POST",
            "/api/auth/register",
            None,
            &json!({"email": email, "password": password}),
        )
    }

    /// Logs in with the OAuth2 form, as the README does.
    pub fn login(&self, email: &str, password: &str) -> Reply {
        let response = self
            .agent
            .post(format!("{}/api/auth/login", self.base))
            .send_form([("username", email), ("password", password)]);
        self.finish(response)
    }

    /// `POST path` with a form body, no token.
    pub fn post_form(&self, path: &str, form: &[(&str, &str)]) -> Reply {
        let response = self
            .agent
            .post(format!("{}{path}", self.base))
            .send_form(form.iter().copied());
        self.finish(response)
    }

    pub fn token(&self, email: &str, password: &str) -> String {
        let reply = self.login(email, password);
        assert_eq!(reply.status, 200, "{reply:?}");
        reply.body["access_token"].as_str().unwrap().to_owned()
    }
}

/// Whether a response says its body is JSON (or says nothing, as JSON is the default).
fn headers_say_json(headers: &[(String, String)]) -> bool {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-type"))
        .is_none_or(|(_, v)| v.starts_with("application/json"))
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether a file exists (for the migrate command).
/// Runs the binary to completion: exit code, stdout, stderr.
pub fn run(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let output = binary()
        .args(args)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

pub fn exists(path: &Path) -> bool {
    path.exists()
}
