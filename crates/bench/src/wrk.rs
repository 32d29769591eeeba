//! Running `wrk` and reading its report.
//!
//! `wrk` is the load generator (Debian's package `wrk`); the harness always runs it with
//! `--latency`, so the report has the percentiles we need, and reads the requests it made,
//! the rate, the 50th and 99th percentile latencies, the non-2xx responses and the socket
//! errors. A run with any non-2xx response or socket error counts as failed.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context as _, Result};
use serde::Serialize;

/// What one `wrk` run measured.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WrkReport {
    /// Connections held open.
    pub connections: u32,
    /// Requests completed.
    pub requests: u64,
    /// How long it ran, in seconds.
    pub seconds: f64,
    /// Requests per second, as wrk reports it (all responses).
    pub rps: f64,
    /// Median latency, milliseconds.
    pub p50_ms: f64,
    /// 99th percentile latency, milliseconds.
    pub p99_ms: f64,
    /// Responses whose status was not 2xx or 3xx.
    pub non_2xx: u64,
    /// Connect, read, write errors and timeouts.
    pub socket_errors: u64,
    /// Cores' worth of CPU that processes other than the benchmark's took meanwhile, when
    /// measured (see [`crate::cpu`]).
    pub other_cpu_cores: Option<f64>,
    /// Cores' worth of CPU the server under test used meanwhile, when measured.
    pub server_cpu_cores: Option<f64>,
    /// The server's peak resident set size during this scenario (warm-up included), KiB,
    /// when measured (see `Server::reset_peak`).
    pub peak_rss_kib: Option<u64>,
    /// What the Lua script printed in `done()` on lines starting `script:` (without that
    /// prefix), e.g. refresh.lua's count of refresh tokens sent and renewed.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub script_notes: Vec<String>,
}

impl WrkReport {
    /// Whether every request got a 2xx/3xx answer in time.
    #[must_use]
    pub fn failed(&self) -> bool {
        self.non_2xx > 0 || self.socket_errors > 0 || self.requests == 0
    }

    /// Requests per second that succeeded.
    #[must_use]
    pub fn ok_rps(&self) -> f64 {
        if self.seconds > 0.0 {
            self.requests.saturating_sub(self.non_2xx) as f64 / self.seconds
        } else {
            0.0
        }
    }

    /// One line of figures.
    #[must_use]
    pub fn summary(&self) -> String {
        let mut line = format!(
            "{} req/s, p50 {}, p99 {} ({} requests in {:.1} s, c={})",
            format_rate(self.rps),
            format_ms(self.p50_ms),
            format_ms(self.p99_ms),
            self.requests,
            self.seconds,
            self.connections,
        );
        if let Some(cores) = self.server_cpu_cores {
            line.push_str(&format!(", server CPU {cores:.2} cores"));
        }
        if let Some(kib) = self.peak_rss_kib {
            line.push_str(&format!(", peak RSS {:.1} MiB", kib as f64 / 1024.0));
        }
        if self.non_2xx > 0 {
            line.push_str(&format!(", FAILED: {} non-2xx", self.non_2xx));
        }
        if self.socket_errors > 0 {
            line.push_str(&format!(", FAILED: {} socket errors", self.socket_errors));
        }
        if self.requests == 0 {
            line.push_str(", FAILED: no request completed");
        }
        for note in &self.script_notes {
            line.push_str(&format!("; {note}"));
        }
        line
    }
}

/// A rate with a sensible number of digits.
#[must_use]
pub fn format_rate(rate: f64) -> String {
    if rate >= 100.0 {
        format!("{rate:.0}")
    } else if rate >= 10.0 {
        format!("{rate:.1}")
    } else {
        format!("{rate:.2}")
    }
}

/// Milliseconds with a sensible number of digits.
#[must_use]
pub fn format_ms(ms: f64) -> String {
    if ms >= 100.0 {
        format!("{ms:.0} ms")
    } else if ms >= 10.0 {
        format!("{ms:.1} ms")
    } else {
        format!("{ms:.2} ms")
    }
}

/// One `wrk` invocation.
#[derive(Debug, Clone)]
pub struct Wrk {
    /// The URL to load.
    pub url: String,
    /// wrk threads.
    pub threads: u32,
    /// Connections held open.
    pub connections: u32,
    /// How long to run.
    pub duration: Duration,
    /// How long a request may take before wrk counts a timeout.
    pub timeout: Duration,
    /// Extra request headers.
    pub headers: Vec<(String, String)>,
    /// A Lua script, and the arguments after `--`.
    pub script: Option<(PathBuf, Vec<String>)>,
}

impl Wrk {
    /// A GET of `url` with `connections` connections on `threads` threads for `duration`.
    #[must_use]
    pub fn new(url: impl Into<String>, threads: u32, connections: u32, duration: Duration) -> Self {
        Self {
            url: url.into(),
            threads: threads.clamp(1, connections.max(1)),
            connections,
            duration,
            timeout: Duration::from_secs(10),
            headers: Vec::new(),
            script: None,
        }
    }

    /// Adds a request header.
    #[must_use]
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Runs `script` with `args`.
    #[must_use]
    pub fn script(mut self, script: PathBuf, args: Vec<String>) -> Self {
        self.script = Some((script, args));
        self
    }

    /// Sets wrk's request timeout.
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The same run with another duration (for warm-ups).
    #[must_use]
    pub fn with_duration(&self, duration: Duration) -> Self {
        Self {
            duration,
            ..self.clone()
        }
    }

    /// The command line.
    #[must_use]
    pub fn command(&self) -> Command {
        let mut command = Command::new("wrk");
        command
            .arg(format!("-t{}", self.threads))
            .arg(format!("-c{}", self.connections))
            .arg(format!("-d{}s", self.duration.as_secs().max(1)))
            .arg(format!("--timeout={}s", self.timeout.as_secs().max(1)))
            .arg("--latency");
        for (name, value) in &self.headers {
            command.arg("-H").arg(format!("{name}: {value}"));
        }
        if let Some((script, _)) = &self.script {
            command.arg("-s").arg(script);
        }
        command.arg(&self.url);
        if let Some((_, args)) = &self.script {
            command.arg("--").args(args);
        }
        command
    }

    /// Starts wrk (to run several at once); finish with [`wait`].
    ///
    /// # Errors
    /// When wrk cannot be started.
    pub fn spawn(&self) -> Result<Child> {
        self.command()
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("starting wrk (is it installed? `apt-get install wrk`)")
    }

    /// Runs wrk to the end and reads its report.
    ///
    /// # Errors
    /// When wrk fails or its report cannot be read.
    pub fn run(&self) -> Result<WrkReport> {
        wait(self.spawn()?, self.connections)
    }
}

/// Waits for a wrk started by [`Wrk::spawn`] and reads its report.
///
/// # Errors
/// When wrk failed or its report cannot be read.
pub fn wait(child: Child, connections: u32) -> Result<WrkReport> {
    let output = child.wait_with_output().context("waiting for wrk")?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        bail!(
            "wrk failed ({}): {}{}",
            output.status,
            stdout,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    parse(&stdout, connections).with_context(|| format!("reading wrk's report:\n{stdout}"))
}

/// Reads wrk's `--latency` report.
///
/// # Errors
/// When a figure the harness needs is missing.
pub fn parse(report: &str, connections: u32) -> Result<WrkReport> {
    let mut requests = None;
    let mut seconds = None;
    let mut rps = None;
    let mut p50 = None;
    let mut p99 = None;
    let mut non_2xx = 0;
    let mut socket_errors = 0;
    let mut script_notes = Vec::new();
    for line in report.lines().map(str::trim) {
        if let Some(note) = line.strip_prefix("script:") {
            script_notes.push(note.trim().to_owned());
            continue;
        }
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["50%", value] => p50 = Some(duration_ms(value)?),
            ["99%", value] => p99 = Some(duration_ms(value)?),
            [count, "requests", "in", elapsed, ..] => {
                requests = Some(count.parse::<u64>().context("request count")?);
                seconds = Some(duration_ms(elapsed.trim_end_matches(','))? / 1000.0);
            }
            ["Requests/sec:", value] => rps = Some(value.parse::<f64>().context("Requests/sec")?),
            ["Non-2xx", "or", "3xx", "responses:", value] => {
                non_2xx = value.parse::<u64>().context("Non-2xx count")?;
            }
            ["Socket", "errors:", ..] => {
                // "Socket errors: connect 0, read 0, write 0, timeout 0"
                socket_errors = words[2..]
                    .iter()
                    .filter_map(|w| w.trim_end_matches(',').parse::<u64>().ok())
                    .sum();
            }
            _ => {}
        }
    }
    Ok(WrkReport {
        connections,
        requests: requests.context("no 'N requests in T' line")?,
        seconds: seconds.context("no duration")?,
        rps: rps.context("no 'Requests/sec' line")?,
        p50_ms: p50.context("no 50% latency (was --latency given?)")?,
        p99_ms: p99.context("no 99% latency (was --latency given?)")?,
        non_2xx,
        socket_errors,
        other_cpu_cores: None,
        server_cpu_cores: None,
        peak_rss_kib: None,
        script_notes,
    })
}

/// wrk's durations (`812.00us`, `1.23ms`, `2.00s`, `1.50m`, `1.00h`) in milliseconds.
fn duration_ms(value: &str) -> Result<f64> {
    let split = value
        .find(|c: char| c.is_ascii_alphabetic())
        .with_context(|| format!("no unit in {value:?}"))?;
    let (number, unit) = value.split_at(split);
    let number: f64 = number
        .parse()
        .with_context(|| format!("not a number: {value:?}"))?;
    let scale = match unit {
        "us" => 0.001,
        "ms" => 1.0,
        "s" => 1000.0,
        "m" => 60_000.0,
        "h" => 3_600_000.0,
        _ => bail!("unknown unit in {value:?}"),
    };
    Ok(number * scale)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLEAN: &str = "\
Running 10s test @ http://127.0.0.1:8080/api/auth/me
  2 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   812.45us  402.11us  12.03ms   80.00%
    Req/Sec    40.12k     2.01k   45.00k    70.00%
  Latency Distribution
     50%  750.00us
     75%    1.01ms
     90%    1.30ms
     99%    2.51ms
  801234 requests in 10.00s, 180.12MB read
Requests/sec:  80123.40
Transfer/sec:     18.01MB
";

    const FAILING: &str = "\
Running 1m test @ http://127.0.0.1:8080/api/auth/login
  1 threads and 16 connections
  Latency Distribution
     50%    1.90s
     75%    2.00s
     90%    2.10s
     99%    2.50s
  480 requests in 1.00m, 100.00KB read
  Socket errors: connect 0, read 1, write 0, timeout 3
  Non-2xx or 3xx responses: 12
Requests/sec:      8.00
Transfer/sec:      1.67KB
script: thread 0: 64 sessions, 480 tokens taken
";

    #[test]
    fn reads_a_clean_report() {
        let report = parse(CLEAN, 64).unwrap();
        assert_eq!(report.requests, 801_234);
        assert!((report.seconds - 10.0).abs() < 1e-9);
        assert!((report.rps - 80_123.4).abs() < 1e-9);
        assert!((report.p50_ms - 0.75).abs() < 1e-9);
        assert!((report.p99_ms - 2.51).abs() < 1e-9);
        assert_eq!((report.non_2xx, report.socket_errors), (0, 0));
        assert!(!report.failed());
        assert!(report.summary().contains("80123 req/s"));
    }

    #[test]
    fn counts_non_2xx_and_socket_errors_as_failure() {
        let report = parse(FAILING, 16).unwrap();
        assert_eq!(report.requests, 480);
        assert!((report.seconds - 60.0).abs() < 1e-9);
        assert!((report.p99_ms - 2500.0).abs() < 1e-9);
        assert_eq!(report.non_2xx, 12);
        assert_eq!(report.socket_errors, 4);
        assert!(report.failed());
        assert!((report.ok_rps() - 468.0 / 60.0).abs() < 1e-9);
        assert!(report.summary().contains("FAILED: 12 non-2xx"));
        assert_eq!(
            report.script_notes,
            ["thread 0: 64 sessions, 480 tokens taken"]
        );
        assert!(parse(CLEAN, 64).unwrap().script_notes.is_empty());
    }

    #[test]
    fn refuses_a_report_without_latencies() {
        let without = CLEAN.replace("99%", "98%");
        assert!(parse(&without, 64).is_err());
        assert!(duration_ms("12").is_err());
        assert!(duration_ms("1.0x").is_err());
    }

    #[test]
    fn builds_the_command_line() {
        let wrk = Wrk::new("http://h/x", 2, 64, Duration::from_secs(10))
            .header("Authorization", "Bearer t")
            .script("/s.lua".into(), vec!["a".into()]);
        let command = wrk.command();
        let args: Vec<_> = command
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            args,
            [
                "-t2",
                "-c64",
                "-d10s",
                "--timeout=10s",
                "--latency",
                "-H",
                "Authorization: Bearer t",
                "-s",
                "/s.lua",
                "http://h/x",
                "--",
                "a"
            ]
        );
    }
}
