//! `gatehouse-bench`: Gatehouse's load benchmark (`just bench`; method and results in
//! `docs/performance.md`).
//!
//! It builds nothing: `just bench` builds `target/release/gatehouse` and the ceiling
//! (`target/ceiling/release/ceiling`) first. Then, in one run:
//! 1. times one bcrypt hash at cost 12 in this process (median of 5): the login bound is
//!    cores ÷ that time; checks, when `access-log-off` is among `--variants`, that the
//!    binary honours `GATEHOUSE_ACCESS_LOG=off` (one from before the setting ignores it);
//! 2. runs the ceiling (no database) through the same scenarios, holding as many users as
//!    Gatehouse lists (registered over HTTP at cost 4: it keeps them in memory);
//! 3. for each backend (SQLite; PostgreSQL when a server is configured) creates a fresh
//!    database, seeds it through the storage crate with the server stopped, starts
//!    `gatehouse serve` at its defaults (`RUST_LOG` unset: info, an access line per request,
//!    into a log file) on a free port and drives it with `wrk`: `/healthz` and `/me` with
//!    100 users at 64 connections, each between two measurements of the ceiling's and beside
//!    the reference variants (`RUST_LOG=warn`, `GATEHOUSE_ACCESS_LOG=off`) on servers of
//!    their own; `/me` at 16 connections and at 1, logins at cost 12 alone and under a `/me`
//!    load, `/me` at 1 000, 10 000 and 100 000 users, `GET /users?limit=50` at 100 000
//!    users, `GET /users` unpaged at 2 000 and 100 000 users, registrations at cost 4 (also
//!    with a one-use invitation each), and refreshes (`POST /api/auth/token`, every refresh
//!    token sent once) on a server at its defaults; on SQLite, before the refreshes, times
//!    single-row commits with fsync one after another in the database's directory (the
//!    machine's bound for a durable write, which the refreshes are compared with); and the
//!    webhook outbox (`--only outbox`, see [`Bench::outbox`]): with a receiver in this
//!    process, the latency from a commit to its delivery, the rate at which a backlog of
//!    events drains beside the receiver's own rate, and registrations and admin changes
//!    without and with an endpoint subscribed to every event; and multi-factor sign-in
//!    (`--only mfa`, see [`Bench::mfa`]): the TOTP second step and a passkey login's start
//!    and finish, beside password logins on the same server;
//! 4. reads each scenario's peak RSS (the high-water mark reset through
//!    `/proc/<pid>/clear_refs` before it, `VmHWM` after it) and each server process's;
//! 5. prints one line per scenario as it goes, then the table and each target's ratio, and
//!    writes `target/bench/results.json`, `target/bench/results.md` and the chart.
//!
//! Exit status: 0 when every scenario ran clean (targets may still be missed: the table
//! says so), 2 when a scenario had non-2xx responses or socket errors, 1 when the harness
//! itself failed (a variant the binary does not honour included).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};
use clap::Parser;
use gatehouse_bench::chart::{self, Series};
use gatehouse_bench::cpu::CpuSample;
use gatehouse_bench::db::{self, Backend, BenchDatabase};
use gatehouse_bench::probe::{self, DurableProbe};
use gatehouse_bench::receiver::{self, LoadReport, Receiver};
use gatehouse_bench::seed::{self, DeliveryCounts, ADMIN_EMAIL, ADMIN_PASSWORD};
use gatehouse_bench::server::{self, Server};
use gatehouse_bench::wrk::{self, format_ms, format_rate, Wrk, WrkReport};
use gatehouse_http::testing::SoftAuthenticator;
use serde::Serialize;

/// Connections for the throughput scenarios (`/healthz`, `/me` against the ceiling).
const WIDE_CONNECTIONS: u32 = 64;
/// wrk threads for them (wrk on one thread tops out below the ceiling's rate).
const WIDE_THREADS: u32 = 2;
/// Connections for logins, the flood and its `/me` side, listing and registering.
const NARROW_CONNECTIONS: u32 = 16;
/// bcrypt cost of the login scenarios.
const LOGIN_COST: u32 = 12;
/// bcrypt cost of the registration scenario (and of the hashes of the accounts whose logins
/// start the refresh scenario's sessions).
const REGISTER_COST: u32 = 4;
/// wrk threads of the refresh scenario (as of the other write scenarios: one).
const REFRESH_THREADS: u32 = 1;
/// Sessions (refresh tokens) per connection in each wrk run of the refresh scenario: a
/// thread's queue of tokens holds several per connection, so it never runs dry however the
/// responses come back (see refresh.lua).
const REFRESH_SESSIONS_PER_CONNECTION: u32 = 4;
/// How long the durable-write probe commits.
const PROBE_DURATION: Duration = Duration::from_millis(2500);
/// Test events timed one at a time for the outbox's commit-to-delivery latency (100 with
/// `--quick`), after [`OUTBOX_WARM_TESTS`] untimed ones.
const OUTBOX_TESTS: u32 = 300;
/// Untimed test events first (the dispatcher's first connection to the receiver).
const OUTBOX_WARM_TESTS: u32 = 10;
/// Events in the outbox's backlog (2 000 with `--quick`); as many requests measure the
/// receiver alone.
const OUTBOX_BACKLOG: u64 = 10_000;
/// A pause after each test delivery arrived: the dispatcher records the attempt (one
/// write) and is idle again before the next test.
const OUTBOX_PAUSE: Duration = Duration::from_millis(20);
/// How long one test delivery may take to arrive.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the backlog may take to drain, and at most how long without a delivery.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(900);
const DRAIN_STALL: Duration = Duration::from_secs(60);
/// Runs of the receiver alone (the median is kept).
const RECEIVER_RUNS: usize = 3;
/// Users each wrk run of the admin changes toggles (a run of its own each: see change.lua).
const CHANGE_USERS: u64 = 256;

/// Hashes timed for the login bound.
const BOUND_SAMPLES: usize = 5;
/// Users on a page of the paged listing scenario.
const PAGE: u64 = 50;
/// wrk's timeout for the unpaged listings: at 100 000 users one response is megabytes and
/// sixteen of them share 2 cores.
const LIST_TIMEOUT: Duration = Duration::from_secs(60);
/// Requests made to count a server's log lines per request.
const ACCESS_PROBES: u64 = 40;

/// How a Gatehouse server is configured for a measurement: its defaults, or a reference
/// variant of them. Only the logging differs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
enum Variant {
    /// Every setting at its default (`RUST_LOG` unset: info, with an access line per
    /// request).
    Default,
    /// `RUST_LOG=warn`: what the harness used to run, no access lines.
    Warn,
    /// `GATEHOUSE_ACCESS_LOG=off`: the defaults without the per-request access line
    /// (binaries from before the setting ignore it; the harness checks).
    AccessLogOff,
}

impl Variant {
    const ALL: [Self; 3] = [Self::Default, Self::Warn, Self::AccessLogOff];

    fn key(self) -> &'static str {
        match self {
            Self::Default => "default",
            Self::Warn => "warn",
            Self::AccessLogOff => "access-log-off",
        }
    }

    /// The setting it changes, as the table shows it.
    fn label(self) -> &'static str {
        match self {
            Self::Default => "defaults",
            Self::Warn => "RUST_LOG=warn",
            Self::AccessLogOff => "GATEHOUSE_ACCESS_LOG=off",
        }
    }

    /// The environment it adds to the defaults.
    fn env(self) -> Vec<(&'static str, String)> {
        match self {
            Self::Default => Vec::new(),
            Self::Warn => vec![("RUST_LOG", "warn".to_owned())],
            Self::AccessLogOff => vec![("GATEHOUSE_ACCESS_LOG", "off".to_owned())],
        }
    }

    fn parse(name: &str) -> Result<Self> {
        let name = name.trim().to_ascii_lowercase();
        Self::ALL
            .into_iter()
            .find(|v| v.key() == name)
            .with_context(|| format!("unknown variant {name:?} (default, warn or access-log-off)"))
    }
}

/// A group of scenarios, for `--only`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
enum Scenario {
    /// `/healthz` and `/me` at 64 connections (beside the ceiling and the variants), and
    /// the `/me` curve over the numbers of users.
    Wide,
    /// `/me` at 16 connections and at 1, logins at cost 12, the flood.
    Narrow,
    /// `GET /users?limit=50` and the unpaged listings.
    List,
    /// Registrations at cost 4.
    Register,
    /// Registrations with a one-use invitation each.
    Invited,
    /// Refreshes (`POST /api/auth/token`), and on SQLite the durable-write probe.
    Refresh,
    /// The webhook outbox: commit to delivery, a backlog's drain beside the receiver's own
    /// rate, registrations and admin changes without and with an endpoint.
    Outbox,
    /// Multi-factor sign-in beside password logins: the TOTP second step, a passkey
    /// login's start and its finish.
    Mfa,
}

impl Scenario {
    const ALL: [Self; 8] = [
        Self::Wide,
        Self::Narrow,
        Self::List,
        Self::Register,
        Self::Invited,
        Self::Refresh,
        Self::Outbox,
        Self::Mfa,
    ];

    fn key(self) -> &'static str {
        match self {
            Self::Wide => "wide",
            Self::Narrow => "narrow",
            Self::List => "list",
            Self::Register => "register",
            Self::Invited => "invited",
            Self::Refresh => "refresh",
            Self::Outbox => "outbox",
            Self::Mfa => "mfa",
        }
    }

    fn parse(name: &str) -> Result<Self> {
        let name = name.trim().to_ascii_lowercase();
        Self::ALL
            .into_iter()
            .find(|s| s.key() == name)
            .with_context(|| {
                format!(
                    "unknown scenario {name:?} ({})",
                    Self::ALL.map(Self::key).join(", ")
                )
            })
    }
}

/// Gatehouse's load benchmark: Gatehouse on SQLite and PostgreSQL beside the no-database
/// ceiling, driven by wrk. Build first: `cargo build --release -p gatehouse` and the ceiling
/// (`just bench` does both).
#[derive(Debug, Parser)]
#[command(name = "gatehouse-bench")]
struct Args {
    /// Short runs to check the harness (3 s per scenario, 1 s warm-up; the chart goes to
    /// target/bench/). Also GATEHOUSE_BENCH_QUICK=1.
    #[arg(long)]
    quick: bool,
    /// Seconds per measured scenario [default: 10; 3 with --quick]. Also
    /// GATEHOUSE_BENCH_DURATION.
    #[arg(long)]
    duration: Option<u64>,
    /// Seconds of warm-up load before each scenario [default: 2; 1 with --quick]. Also
    /// GATEHOUSE_BENCH_WARMUP.
    #[arg(long)]
    warmup: Option<u64>,
    /// Backends to run Gatehouse on; PostgreSQL needs GATEHOUSE_BENCH_POSTGRES_URL or
    /// GATEHOUSE_TEST_POSTGRES_URL (a server where it may CREATE DATABASE).
    #[arg(long, value_delimiter = ',', default_values = ["sqlite", "postgres"])]
    backends: Vec<String>,
    /// Numbers of users for the /me curve, ascending; the first is the "100 users" of the
    /// other scenarios and the last the "100 000".
    #[arg(long, value_delimiter = ',', default_values_t = [100_u64, 1_000, 10_000, 100_000])]
    users: Vec<u64>,
    /// Numbers of users for the unpaged listing (`GET /api/auth/users`, no query), ascending;
    /// the ceiling holds as many.
    #[arg(long, value_delimiter = ',', default_values_t = [2_000_u64, 100_000])]
    list_users: Vec<u64>,
    /// Gatehouse configurations measured for /healthz and /me at 64 connections: default
    /// (always), warn (RUST_LOG=warn) and access-log-off (GATEHOUSE_ACCESS_LOG=off, which
    /// binaries from before that setting ignore: give them default,warn).
    #[arg(long, value_delimiter = ',', default_values = ["default", "warn", "access-log-off"])]
    variants: Vec<String>,
    /// results.json of an earlier run (e.g. the tree before, with this harness): SQLite's
    /// /me at one connection, as a ratio to the ceiling's, is checked against that run's.
    #[arg(long)]
    baseline: Option<PathBuf>,
    /// Leave the ceiling out.
    #[arg(long)]
    no_ceiling: bool,
    /// Run only these groups of scenarios [default: all]: wide (/healthz and /me at 64
    /// connections, the variants, the /me curve), narrow (/me at 16 connections and at 1,
    /// logins, the flood), list (the listings), register (at cost 4), invited
    /// (registrations with an invitation), refresh (POST /token; on SQLite with the
    /// durable-write probe), outbox (webhook deliveries to a receiver in this process:
    /// commit to delivery, a backlog's drain, registrations and admin changes without and
    /// with an endpoint), mfa (password logins beside the TOTP second step and passkey
    /// logins). The databases are seeded as for a whole run.
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// The workspace root [default: the one this binary was built in].
    #[arg(long)]
    root: Option<PathBuf>,
    /// The Gatehouse binary [default: ROOT/target/release/gatehouse].
    #[arg(long)]
    gatehouse_bin: Option<PathBuf>,
    /// The ceiling binary [default: ROOT/target/ceiling/release/ceiling].
    #[arg(long)]
    ceiling_bin: Option<PathBuf>,
    /// Where to write the chart [default: ROOT/docs/perf-me-vs-users.svg, or
    /// ROOT/target/bench/perf-me-vs-users.svg with --quick].
    #[arg(long)]
    chart: Option<PathBuf>,
    /// Where to write results.json, results.md, the Lua scripts and the server logs
    /// [default: ROOT/target/bench].
    #[arg(long)]
    out: Option<PathBuf>,
}

/// The resolved settings of a run.
#[derive(Debug, Serialize)]
struct Settings {
    quick: bool,
    duration_s: u64,
    warmup_s: u64,
    users: Vec<u64>,
    list_users: Vec<u64>,
    variants: Vec<Variant>,
    backends: Vec<String>,
    ceiling: bool,
    /// The groups of scenarios run (all unless `--only`).
    scenarios: Vec<Scenario>,
    /// How each scenario's peak RSS is taken: `clear_refs` (the high-water mark reset
    /// before it) or `fresh server` (the kernel refused the reset: the listings run on a
    /// server started for them, other scenarios get no peak of their own).
    peak_rss_per_scenario: &'static str,
    baseline: Option<PathBuf>,
    wide_connections: u32,
    wide_wrk_threads: u32,
    narrow_connections: u32,
    login_cost: u32,
    register_cost: u32,
    /// Sessions per connection in each wrk run of the refresh scenario.
    refresh_sessions_per_connection: u32,
    /// Test events timed for the outbox's commit-to-delivery latency.
    outbox_tests: u32,
    /// Events in the outbox's backlog (and requests measuring the receiver alone).
    outbox_backlog: u64,
    /// Users each wrk run of the admin changes toggles.
    change_users: u64,
    #[serde(skip)]
    gatehouse_bin: PathBuf,
    #[serde(skip)]
    ceiling_bin: PathBuf,
    #[serde(skip)]
    out: PathBuf,
    #[serde(skip)]
    chart: PathBuf,
}

fn env_flag(name: &str) -> bool {
    std::env::var(name).is_ok_and(|v| !v.is_empty() && v != "0" && v != "false")
}

fn env_secs(name: &str) -> Result<Option<u64>> {
    match std::env::var(name) {
        Ok(v) if !v.is_empty() => {
            Ok(Some(v.parse().with_context(|| {
                format!("{name} must be a number of seconds, not {v:?}")
            })?))
        }
        _ => Ok(None),
    }
}

impl Settings {
    fn resolve(args: Args) -> Result<(Self, Vec<Backend>)> {
        let quick = args.quick || env_flag("GATEHOUSE_BENCH_QUICK");
        let duration = match args.duration {
            Some(d) => d,
            None => env_secs("GATEHOUSE_BENCH_DURATION")?.unwrap_or(if quick { 3 } else { 10 }),
        };
        let warmup = match args.warmup {
            Some(w) => w,
            None => env_secs("GATEHOUSE_BENCH_WARMUP")?.unwrap_or(if quick { 1 } else { 2 }),
        };
        if duration == 0 {
            bail!("the duration must be at least one second");
        }
        let mut users = args.users;
        if users.is_empty() || users.contains(&0) || !users.is_sorted() {
            bail!("--users must be ascending positive numbers, e.g. 100,1000,10000,100000");
        }
        users.dedup();
        // The admin and the login accounts are in every database.
        if users[0] <= seed::LOGIN_ACCOUNTS {
            bail!(
                "--users must start above {}: the admin and the login accounts come first",
                seed::LOGIN_ACCOUNTS
            );
        }
        let mut list_users = args.list_users;
        if list_users.contains(&0) || !list_users.is_sorted() {
            bail!("--list-users must be ascending positive numbers, e.g. 2000,100000");
        }
        list_users.dedup();
        if list_users.first().is_some_and(|&n| n < users[0]) {
            bail!(
                "--list-users must start at or above the first of --users ({}): databases \
                 only grow during a run",
                users[0]
            );
        }
        let mut variants = vec![Variant::Default];
        for name in &args.variants {
            let variant = Variant::parse(name)?;
            if !variants.contains(&variant) {
                variants.push(variant);
            }
        }
        variants.sort();
        let mut scenarios = Vec::new();
        for name in &args.only {
            let scenario = Scenario::parse(name)?;
            if !scenarios.contains(&scenario) {
                scenarios.push(scenario);
            }
        }
        if scenarios.is_empty() {
            scenarios = Scenario::ALL.to_vec();
        }
        scenarios.sort();
        let mut backends = Vec::new();
        for name in &args.backends {
            let backend = match name.trim().to_ascii_lowercase().as_str() {
                "sqlite" => Backend::Sqlite,
                "postgres" | "postgresql" | "pg" => Backend::Postgres,
                other => bail!("unknown backend {other:?} (sqlite or postgres)"),
            };
            if !backends.contains(&backend) {
                backends.push(backend);
            }
        }
        if backends.contains(&Backend::Postgres) && db::postgres_server().is_none() {
            eprintln!(
                "\n*** SKIPPED: PostgreSQL ({} and {} are not set) ***\n",
                db::BENCH_POSTGRES_URL_VAR,
                db::TEST_POSTGRES_URL_VAR
            );
            backends.retain(|b| *b != Backend::Postgres);
        }
        let root = match args.root {
            Some(root) => root,
            None => Path::new(env!("CARGO_MANIFEST_DIR"))
                .ancestors()
                .nth(2)
                .map_or_else(|| PathBuf::from("."), Path::to_path_buf),
        };
        let out = args.out.unwrap_or_else(|| root.join("target/bench"));
        let chart = args.chart.unwrap_or_else(|| {
            if quick {
                out.join("perf-me-vs-users.svg")
            } else {
                root.join("docs/perf-me-vs-users.svg")
            }
        });
        let settings = Self {
            quick,
            duration_s: duration,
            warmup_s: warmup,
            users,
            list_users,
            variants,
            backends: backends.iter().map(|b| b.key().to_owned()).collect(),
            ceiling: !args.no_ceiling,
            scenarios,
            peak_rss_per_scenario: if server::can_reset_peaks() {
                "clear_refs"
            } else {
                "fresh server"
            },
            baseline: args.baseline,
            wide_connections: WIDE_CONNECTIONS,
            wide_wrk_threads: WIDE_THREADS,
            narrow_connections: NARROW_CONNECTIONS,
            login_cost: LOGIN_COST,
            register_cost: REGISTER_COST,
            refresh_sessions_per_connection: REFRESH_SESSIONS_PER_CONNECTION,
            outbox_tests: if quick { 100 } else { OUTBOX_TESTS },
            outbox_backlog: if quick { 2_000 } else { OUTBOX_BACKLOG },
            change_users: CHANGE_USERS,
            gatehouse_bin: args
                .gatehouse_bin
                .unwrap_or_else(|| root.join("target/release/gatehouse")),
            ceiling_bin: args
                .ceiling_bin
                .unwrap_or_else(|| root.join("target/ceiling/release/ceiling")),
            out,
            chart,
        };
        Ok((settings, backends))
    }

    fn duration(&self) -> Duration {
        Duration::from_secs(self.duration_s)
    }

    fn warmup(&self) -> Duration {
        Duration::from_secs(self.warmup_s)
    }

    fn smallest(&self) -> u64 {
        self.users.first().copied().unwrap_or(100)
    }

    fn largest(&self) -> u64 {
        self.users.last().copied().unwrap_or(100_000)
    }

    /// Every number of users a database passes through, ascending.
    fn sizes(&self) -> Vec<u64> {
        let mut sizes: Vec<u64> = self.users.iter().chain(&self.list_users).copied().collect();
        sizes.sort_unstable();
        sizes.dedup();
        sizes
    }

    /// Whether `scenario` is among those to run.
    fn runs(&self, scenario: Scenario) -> bool {
        self.scenarios.contains(&scenario)
    }

    fn clear_refs(&self) -> bool {
        self.peak_rss_per_scenario == "clear_refs"
    }

    fn variants_beside(&self) -> impl Iterator<Item = Variant> + '_ {
        self.variants
            .iter()
            .copied()
            .filter(|v| *v != Variant::Default)
    }
}

/// The machine and what else ran on it.
#[derive(Debug, Serialize)]
struct Machine {
    cpu: String,
    cores: usize,
    memory: String,
    kernel: String,
    wrk: String,
    load_average_start: String,
    load_average_end: String,
    busiest_other_processes: Vec<String>,
}

impl Machine {
    fn probe() -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .map(|l| l.trim_start_matches([' ', '\t', ':']).trim().to_owned())
            .unwrap_or_else(|| "unknown".into());
        let memory = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|m| {
                m.lines()
                    .find_map(|l| l.strip_prefix("MemTotal:"))
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            })
            .map_or_else(
                || "unknown".into(),
                |kib| format!("{:.1} GiB", kib / 1024.0 / 1024.0),
            );
        let wrk = std::process::Command::new("wrk")
            .arg("--version")
            .output()
            .ok()
            .and_then(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .lines()
                    .next()
                    .map(|l| l.split(" Copyright").next().unwrap_or(l).trim().to_owned())
            })
            .unwrap_or_else(|| "unknown".into());
        Self {
            cpu,
            cores: cores(),
            memory,
            kernel: read_trimmed("/proc/sys/kernel/osrelease"),
            wrk,
            load_average_start: load_average(),
            load_average_end: String::new(),
            busiest_other_processes: busiest_processes(),
        }
    }
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

fn read_trimmed(path: &str) -> String {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| "unknown".into())
}

fn load_average() -> String {
    read_trimmed("/proc/loadavg")
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

/// The processes using the most CPU right now (from `ps`), this one excepted.
fn busiest_processes() -> Vec<String> {
    let Ok(output) = std::process::Command::new("ps")
        .args(["-eo", "pcpu,rss,comm", "--sort=-pcpu", "--no-headers"])
        .output()
    else {
        return Vec::new();
    };
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(str::trim)
        .filter(|l| !l.ends_with("gatehouse-bench") && !l.ends_with(" ps"))
        .take(5)
        .map(|l| {
            let mut words = l.split_whitespace();
            let cpu = words.next().unwrap_or("?");
            let rss_kib: f64 = words.next().and_then(|r| r.parse().ok()).unwrap_or(0.0);
            let name = words.collect::<Vec<_>>().join(" ");
            format!("{name} ({cpu}% CPU, {:.0} MiB)", rss_kib / 1024.0)
        })
        .collect()
}

/// The login bound: what `cores` threads doing nothing but bcrypt could reach.
#[derive(Debug, Serialize)]
struct BcryptBound {
    cost: u32,
    samples_ms: Vec<f64>,
    median_ms: f64,
    cores: usize,
    logins_per_s: f64,
    /// Cores' worth of CPU other processes took while it was timed.
    other_cpu_cores: f64,
}

fn bcrypt_bound() -> Result<BcryptBound> {
    let before = CpuSample::take(None)?;
    let mut samples_ms = Vec::with_capacity(BOUND_SAMPLES);
    for _ in 0..BOUND_SAMPLES {
        let started = Instant::now();
        let hash = bcrypt::hash("correct horse battery staple", LOGIN_COST).context("bcrypt")?;
        std::hint::black_box(hash);
        samples_ms.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    let mut sorted = samples_ms.clone();
    sorted.sort_by(f64::total_cmp);
    let median_ms = sorted[sorted.len() / 2];
    let cores = cores();
    Ok(BcryptBound {
        cost: LOGIN_COST,
        samples_ms,
        median_ms,
        cores,
        logins_per_s: cores as f64 / (median_ms / 1000.0),
        other_cpu_cores: before.others_since(&CpuSample::take(None)?),
    })
}

/// A reference variant's figures (Gatehouse only), measured beside the defaults'.
#[derive(Debug, Default, Serialize)]
struct VariantResults {
    /// `GET /healthz`, wide.
    healthz: Option<WrkReport>,
    /// `GET /api/auth/me` with the fewest users, wide.
    me: Option<WrkReport>,
    /// Log lines per request the server wrote right after it started (about 1 with an
    /// access line per request, 0 without).
    log_lines_per_request: Option<f64>,
}

/// What one server (Gatehouse on a backend, or the ceiling) measured.
#[derive(Debug, Default, Serialize)]
struct ServerResults {
    /// `GET /healthz`, wide (Gatehouse: at its defaults).
    healthz: Option<WrkReport>,
    /// The ceiling's `GET /healthz`, wide, measured right before and right after this
    /// server's (Gatehouse only).
    ceiling_healthz: Vec<WrkReport>,
    /// `GET /api/auth/me`, wide, by number of users.
    me: BTreeMap<u64, WrkReport>,
    /// The ceiling's `GET /api/auth/me`, wide, measured right before and right after this
    /// server's (Gatehouse only).
    ceiling_me: Vec<WrkReport>,
    /// The reference variants (`warn`, `access-log-off`) measured beside the defaults, by
    /// key (Gatehouse only).
    variants: BTreeMap<String, VariantResults>,
    /// Log lines per request of the server at its defaults, right after it started.
    log_lines_per_request: Option<f64>,
    /// `GET /api/auth/me` alone, narrow: the flood's baseline.
    me_narrow: Option<WrkReport>,
    /// `GET /api/auth/me` over one connection: one request at a time (the latency of
    /// the hot path, with nothing to batch).
    me_single: Option<WrkReport>,
    /// Logins at cost 12 alone.
    login: Option<WrkReport>,
    /// The flood: `/me` and logins at once.
    flood_me: Option<WrkReport>,
    flood_login: Option<WrkReport>,
    /// `GET /api/auth/users?limit=50` with the most users.
    list: Option<WrkReport>,
    /// Users in the database during `list`.
    list_users: Option<u64>,
    /// `GET /api/auth/users` with no query (every user), by number of users; each with
    /// its peak RSS.
    list_all: BTreeMap<u64, WrkReport>,
    /// The size of that response's body, in bytes, by number of users.
    list_all_bytes: BTreeMap<u64, u64>,
    /// Registrations at cost 4.
    register: Option<WrkReport>,
    /// Registrations at cost 4 with an invitation each (Gatehouse only; the same server,
    /// right after `register`).
    register_invited: Option<WrkReport>,
    /// Users in the database when the registrations started.
    register_users: Option<u64>,
    /// Refreshes (`POST /api/auth/token`, the refresh grant), every refresh token sent once
    /// and each session's next one taken from the answer, on a server at Gatehouse's
    /// defaults (Gatehouse only; see refresh.lua).
    refresh: Option<WrkReport>,
    /// Sessions the refresh measurement started with (its warm-up had as many others).
    refresh_sessions: Option<u64>,
    /// Sessions that reuse detection ended during the refresh scenario (audited as
    /// `refresh_token_reused`): 0 unless a refresh token was sent twice.
    refresh_reused: Option<u64>,
    /// The machine's bound for a durable write: single-row commits with fsync, one after
    /// another, on the SQLite database's disk (SQLite only, with the refresh scenario).
    durable_probe: Option<DurableProbe>,
    /// The webhook outbox's scenarios (Gatehouse only).
    outbox: Option<OutboxResults>,
    /// Multi-factor sign-in's scenarios (Gatehouse only; see [`Bench::mfa`]).
    mfa: Option<MfaResults>,
    /// Peak RSS (VmHWM) of each server process, KiB, by what it ran.
    rss_kib: Vec<(String, u64)>,
    /// Seconds spent seeding up to each number of users.
    seed_s: BTreeMap<u64, f64>,
    /// Server log lines at WARN or ERROR.
    log_problems: Vec<String>,
    /// Scenarios during which a build (rustc, cargo, cc, ld) was running.
    interference: Vec<String>,
}

impl ServerResults {
    fn peak_rss_kib(&self) -> Option<u64> {
        self.rss_kib.iter().map(|(_, kib)| *kib).max()
    }

    fn reports(&self) -> impl Iterator<Item = &WrkReport> {
        [
            &self.healthz,
            &self.me_narrow,
            &self.me_single,
            &self.login,
            &self.flood_me,
            &self.flood_login,
            &self.list,
            &self.register,
            &self.register_invited,
            &self.refresh,
        ]
        .into_iter()
        .flatten()
        .chain(self.outbox.iter().flat_map(OutboxResults::reports))
        .chain(self.mfa.iter().flat_map(MfaResults::reports))
        .chain(self.me.values())
        .chain(&self.ceiling_me)
        .chain(&self.ceiling_healthz)
        .chain(self.list_all.values())
        .chain(
            self.variants
                .values()
                .flat_map(|v| [&v.healthz, &v.me].into_iter().flatten()),
        )
    }

    /// The mean rate of `ceiling_me`, if measured.
    fn ceiling_me_rps(&self) -> Option<f64> {
        mean_rps(&self.ceiling_me)
    }

    /// The mean rate of `ceiling_healthz`, if measured.
    fn ceiling_healthz_rps(&self) -> Option<f64> {
        mean_rps(&self.ceiling_healthz)
    }

    fn variant(&self, variant: Variant) -> Option<&VariantResults> {
        self.variants.get(variant.key())
    }
}

fn mean_rps(reports: &[WrkReport]) -> Option<f64> {
    (!reports.is_empty()).then(|| reports.iter().map(|r| r.rps).sum::<f64>() / reports.len() as f64)
}

/// What multi-factor sign-in's scenarios measured on one backend (see [`Bench::mfa`]).
#[derive(Debug, Default, Serialize)]
struct MfaResults {
    /// Password logins at cost 12 (the login accounts, no second factor), on the same
    /// server just before.
    login: Option<WrkReport>,
    /// `POST /login/mfa` with a TOTP code, each `mfa_token` (and account) once.
    second_step: Option<WrkReport>,
    /// Accounts with TOTP seeded for the second step (warm-up and measurement).
    second_step_accounts: Option<u64>,
    /// `POST /login/passkey/start`.
    passkey_start: Option<WrkReport>,
    /// `POST /login/passkey/finish`, each challenge once, over [`seed::PASSKEY_ACCOUNTS`]
    /// accounts with a passkey each.
    passkey_finish: Option<WrkReport>,
    /// Challenges started and signed for the finishes (warm-up and measurement).
    passkey_assertions: Option<u64>,
}

impl MfaResults {
    fn reports(&self) -> impl Iterator<Item = &WrkReport> {
        [
            &self.login,
            &self.second_step,
            &self.passkey_start,
            &self.passkey_finish,
        ]
        .into_iter()
        .flatten()
    }
}

/// What the outbox's scenarios measured on one backend (see [`Bench::outbox`]).
#[derive(Debug, Default, Serialize)]
struct OutboxResults {
    /// Commit to delivery, one test event at a time.
    latency: Option<OutboxLatency>,
    /// The drain of a backlog seeded with the server stopped.
    drain: Option<OutboxDrain>,
    /// The receiver alone: this process POSTing at it over 16 keep-alive connections (the
    /// median run).
    receiver: Option<LoadReport>,
    /// The rates of every run of the receiver alone, ascending.
    receiver_runs_rps: Vec<f64>,
    /// Registrations at cost 4 with no active webhook endpoint, the first run (see
    /// [`Bench::outbox_writes`] for the order).
    register_without: Option<WrkReport>,
    /// The last run, the endpoint turned off.
    register_without_last: Option<WrkReport>,
    /// Registrations with one active endpoint subscribed to every event, the first run.
    register_with: Option<WrkReport>,
    /// The second run with the endpoint.
    register_with_second: Option<WrkReport>,
    /// Admin changes (`PUT /users/{id}`, a status toggled) with no active endpoint, the
    /// first run.
    changes_without: Option<WrkReport>,
    /// The last run, the endpoint turned off.
    changes_without_last: Option<WrkReport>,
    /// Admin changes with the endpoint, the first run.
    changes_with: Option<WrkReport>,
    /// The second run with the endpoint.
    changes_with_second: Option<WrkReport>,
    /// Deliveries still pending right after each measurement with the endpoint (how far
    /// the dispatcher was behind when the load stopped), by measurement.
    pending_after: BTreeMap<String, u64>,
    /// The endpoint's deliveries once the runs with it were over and the dispatcher done.
    with_endpoint: Option<DeliveryCounts>,
    /// Distinct `webhook-id`s that arrived at the receiver meanwhile.
    with_endpoint_arrived: Option<u64>,
    /// Deliveries that arrived twice meanwhile.
    with_endpoint_repeats: Option<u64>,
    /// What went wrong (a delivery missing, or arriving twice): the run is not clean.
    problems: Vec<String>,
}

impl OutboxResults {
    fn reports(&self) -> impl Iterator<Item = &WrkReport> {
        [
            &self.register_without,
            &self.register_with,
            &self.register_with_second,
            &self.register_without_last,
            &self.changes_without,
            &self.changes_with,
            &self.changes_with_second,
            &self.changes_without_last,
        ]
        .into_iter()
        .flatten()
    }

    /// With ÷ without an endpoint: the two runs with against the two without, each side's
    /// requests per second summed.
    fn ratio(with: [Option<&WrkReport>; 2], without: [Option<&WrkReport>; 2]) -> Option<f64> {
        let sum =
            |runs: [Option<&WrkReport>; 2]| -> Option<f64> { Some(runs[0]?.rps + runs[1]?.rps) };
        Some(sum(with)? / sum(without)?)
    }
}

/// Commit to delivery at an idle receiver: test events one after another, each waited for.
#[derive(Debug, Serialize)]
struct OutboxLatency {
    /// Timed test events.
    tests: u32,
    /// Untimed ones before them.
    warm_up_tests: u32,
    /// The 202 read → the delivery's arrival at the receiver, milliseconds: the commit
    /// happened before the 202 was sent, so this under-counts slightly (negative when the
    /// delivery arrived before the 202 was read).
    commit_p50_ms: f64,
    commit_p99_ms: f64,
    commit_max_ms: f64,
    /// The request sent → the delivery's arrival: an upper bound.
    sent_p50_ms: f64,
    sent_p99_ms: f64,
    sent_max_ms: f64,
    /// The `POST /webhooks/{id}/test` round trip itself.
    answer_p50_ms: f64,
    answer_p99_ms: f64,
    /// Deliveries that arrived before their 202 was read.
    before_answer: u32,
}

/// The drain of a backlog: events written through storage with the server stopped, then
/// the server started.
#[derive(Debug, Serialize)]
struct OutboxDrain {
    /// Events (one delivery each).
    events: u64,
    /// Seconds spent writing them through storage.
    seed_s: f64,
    /// From the server's start (its process spawned) to its first answer to `/healthz`.
    startup_s: f64,
    /// From the start to the first delivery's arrival.
    first_s: f64,
    /// From the start to the last delivery's arrival.
    seconds: f64,
    /// Events per second over `seconds`.
    events_per_s: f64,
    /// Events per second from the first arrival to the last.
    steady_per_s: f64,
    /// Backlog events that arrived, that arrived more than once, that never arrived.
    arrived: u64,
    repeats: u64,
    missing: u64,
    /// The endpoint's deliveries log afterwards, read through storage.
    deliveries: DeliveryCounts,
    /// `X-Total-Count` of `GET /webhooks/{id}/deliveries?limit=1`.
    total_count_header: Option<u64>,
    /// Cores' worth of CPU the server, and processes other than the benchmark's, used from
    /// its first answer to the last arrival.
    server_cpu_cores: f64,
    other_cpu_cores: f64,
}

/// Everything a run measured, as written to results.json.
#[derive(Debug, Serialize)]
struct Results {
    started_at: String,
    total_s: f64,
    settings: Settings,
    machine: Machine,
    bcrypt_bound: BcryptBound,
    servers: BTreeMap<String, ServerResults>,
    /// The earlier run `--baseline` named, if any.
    baseline: Option<Baseline>,
    checks: Vec<Check>,
}

/// The figures of an earlier run (`--baseline`) that this one is checked against.
#[derive(Debug, Serialize)]
struct Baseline {
    path: PathBuf,
    started_at: String,
    /// SQLite's `/me` at one connection, requests/s.
    sqlite_me_single_rps: f64,
    /// The ceiling's `/me` at one connection in that run, requests/s.
    ceiling_me_single_rps: f64,
}

impl Baseline {
    /// Reads the figures it needs from an earlier run's results.json (this harness's, or
    /// the one before it: the fields are the same).
    fn read(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading the baseline {}", path.display()))?;
        let json: serde_json::Value = serde_json::from_str(&text)
            .with_context(|| format!("the baseline {} is not JSON", path.display()))?;
        let rps = |server: &str| {
            json.pointer(&format!("/servers/{server}/me_single/rps"))
                .and_then(serde_json::Value::as_f64)
                .with_context(|| {
                    format!(
                        "the baseline {} has no {server} /me at one connection",
                        path.display()
                    )
                })
        };
        Ok(Self {
            path: path.to_owned(),
            started_at: json
                .get("started_at")
                .and_then(serde_json::Value::as_str)
                .unwrap_or("?")
                .to_owned(),
            sqlite_me_single_rps: rps("sqlite")?,
            ceiling_me_single_rps: rps("ceiling")?,
        })
    }
}

/// One target, checked (or a figure shown beside the targets without one).
#[derive(Debug, Serialize)]
struct Check {
    target: String,
    server: String,
    /// The ratio or the value (milliseconds, MiB).
    measured: Option<f64>,
    /// `None`: a figure shown for context, with no target.
    threshold: Option<f64>,
    /// `>=` or `<`.
    op: &'static str,
    unit: &'static str,
    /// `None` when a figure it needs is missing; `Some(false)` too when a run failed.
    met: Option<bool>,
    /// Shown for comparison only (the ceiling's figures): not a target.
    reference: bool,
    note: String,
}

impl Check {
    fn new(
        target: &str,
        server: &str,
        op: &'static str,
        threshold: f64,
        unit: &'static str,
        measured: Option<f64>,
        runs: &[Option<&WrkReport>],
    ) -> Self {
        let failed = runs.iter().flatten().any(|r| r.failed());
        let met = measured.map(|m| {
            !failed
                && match op {
                    ">=" => m >= threshold,
                    _ => m < threshold,
                }
        });
        Self {
            target: target.to_owned(),
            server: server.to_owned(),
            measured,
            threshold: Some(threshold),
            op,
            unit,
            met,
            reference: false,
            note: if failed {
                "a run it depends on had non-2xx responses or socket errors".into()
            } else {
                String::new()
            },
        }
    }

    /// A figure shown among the targets for context, with none of its own.
    fn info(
        target: &str,
        server: &str,
        unit: &'static str,
        measured: Option<f64>,
        runs: &[Option<&WrkReport>],
    ) -> Self {
        let mut check = Self::new(target, server, "", 0.0, unit, measured, runs);
        check.threshold = None;
        check.met = None;
        check
    }

    /// Counts towards "N of M targets met".
    fn is_target(&self) -> bool {
        !self.reference && self.threshold.is_some()
    }

    fn verdict(&self) -> &'static str {
        if self.threshold.is_none() {
            return "(no target)";
        }
        if self.reference {
            return "(reference)";
        }
        match self.met {
            Some(true) => "met",
            Some(false) => "MISSED",
            None => "not measured",
        }
    }

    fn measured_text(&self) -> String {
        match (self.measured, self.unit) {
            (None, _) => "–".into(),
            (Some(v), "×") => format!("{v:.3}×"),
            (Some(v), "ms") => format_ms(v),
            (Some(v), unit) => format!("{v:.1} {unit}"),
        }
    }

    fn threshold_text(&self) -> String {
        match (self.threshold, self.unit) {
            (None, _) => "none".into(),
            (Some(t), "×") => format!("{} {t:.2}×", self.op),
            (Some(t), unit) => format!("{} {t} {unit}", self.op),
        }
    }
}

/// A run in progress.
#[derive(Debug)]
struct Bench {
    settings: Settings,
    jwt_secret: String,
    login_script: PathBuf,
    register_script: PathBuf,
    register_invited_script: PathBuf,
    /// While the invited registrations run: the warm-up's and the measurement's codes.
    invited_codes: Option<(PathBuf, PathBuf)>,
    refresh_script: PathBuf,
    /// While the refreshes run: the measurement's refresh tokens (the files' common
    /// prefix, see [`Bench::token_files`]).
    refresh_tokens: Option<PathBuf>,
    change_script: PathBuf,
    /// While the admin changes run: the measurement's user ids (the warm-up has others).
    change_ids: Option<PathBuf>,
    once_script: PathBuf,
    /// While a once.lua scenario runs: the measurement's bodies (the files' common prefix;
    /// the warm-up has others).
    once_bodies: Option<PathBuf>,
    post_script: PathBuf,
    logs: PathBuf,
    run_id: String,
    runs: u32,
}

/// `/healthz` or `/me`, the two endpoints measured wide beside the ceiling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wide {
    Healthz,
    Me,
}

impl Bench {
    fn new(settings: Settings) -> Result<Self> {
        let lua = settings.out.join("lua");
        let logs = settings.out.join("logs");
        if logs.is_dir() {
            // Logs of an earlier run would be mistaken for this one's.
            std::fs::remove_dir_all(&logs)
                .with_context(|| format!("clearing {}", logs.display()))?;
        }
        for dir in [&lua, &logs] {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let login_script = lua.join("login.lua");
        let register_script = lua.join("register.lua");
        let register_invited_script = lua.join("register_invited.lua");
        let refresh_script = lua.join("refresh.lua");
        std::fs::write(&login_script, include_str!("../lua/login.lua"))
            .context("writing login.lua")?;
        std::fs::write(&register_script, include_str!("../lua/register.lua"))
            .context("writing register.lua")?;
        std::fs::write(
            &register_invited_script,
            include_str!("../lua/register_invited.lua"),
        )
        .context("writing register_invited.lua")?;
        std::fs::write(&refresh_script, include_str!("../lua/refresh.lua"))
            .context("writing refresh.lua")?;
        let change_script = lua.join("change.lua");
        std::fs::write(&change_script, include_str!("../lua/change.lua"))
            .context("writing change.lua")?;
        let once_script = lua.join("once.lua");
        std::fs::write(&once_script, include_str!("../lua/once.lua"))
            .context("writing once.lua")?;
        let post_script = lua.join("post.lua");
        std::fs::write(&post_script, include_str!("../lua/post.lua"))
            .context("writing post.lua")?;
        Ok(Self {
            settings,
            jwt_secret: random_hex(32)?,
            login_script,
            register_script,
            register_invited_script,
            invited_codes: None,
            refresh_script,
            refresh_tokens: None,
            change_script,
            change_ids: None,
            once_script,
            once_bodies: None,
            post_script,
            logs,
            run_id: random_hex(3)?,
            runs: 0,
        })
    }

    /// A unique prefix for one registration run's emails.
    fn next_prefix(&mut self) -> String {
        self.runs += 1;
        format!("r{}x{}", self.run_id, self.runs)
    }

    fn wrk_me(&self, server: &Server, token: &str, threads: u32, connections: u32) -> Wrk {
        Wrk::new(
            server.url("/api/auth/me"),
            threads,
            connections,
            self.settings.duration(),
        )
        .header("Authorization", &format!("Bearer {token}"))
    }

    /// `/healthz` or `/me` with 64 connections.
    fn wrk_wide(&self, server: &Server, token: &str, endpoint: Wide) -> Wrk {
        match endpoint {
            Wide::Healthz => Wrk::new(
                server.url("/healthz"),
                WIDE_THREADS,
                WIDE_CONNECTIONS,
                self.settings.duration(),
            ),
            Wide::Me => self.wrk_me(server, token, WIDE_THREADS, WIDE_CONNECTIONS),
        }
    }

    /// Logins taking `accounts` (a number, and a `string.format` email pattern) in turn.
    fn wrk_login(&self, server: &Server, accounts: (u64, &str)) -> Wrk {
        Wrk::new(
            server.url("/api/auth/login"),
            1,
            NARROW_CONNECTIONS,
            self.settings.duration(),
        )
        // At 16 connections a login waits for ~16 hashes on 2 cores: seconds, not a timeout.
        .timeout(Duration::from_secs(60))
        .script(
            self.login_script.clone(),
            vec![
                accounts.0.to_string(),
                accounts.1.to_owned(),
                ADMIN_PASSWORD.to_owned(),
            ],
        )
    }

    fn wrk_list(&self, server: &Server, token: &str) -> Wrk {
        Wrk::new(
            server.url(&format!("/api/auth/users?limit={PAGE}")),
            1,
            NARROW_CONNECTIONS,
            self.settings.duration(),
        )
        .header("Authorization", &format!("Bearer {token}"))
    }

    fn wrk_register(&mut self, server: &Server) -> Wrk {
        let prefix = self.next_prefix();
        Wrk::new(
            server.url("/api/auth/register"),
            1,
            NARROW_CONNECTIONS,
            self.settings.duration(),
        )
        .timeout(Duration::from_secs(30))
        .script(self.register_script.clone(), vec![prefix])
    }

    /// Writes the warm-up's and the measurement's codes to a file each.
    fn code_files(&self, warm: &[String], measured: &[String]) -> Result<(PathBuf, PathBuf)> {
        let dir = self.register_invited_script.with_file_name("");
        let (first, second) = (dir.join("codes-warm-up.txt"), dir.join("codes.txt"));
        std::fs::write(&first, warm.join("\n")).context("writing the warm-up's codes")?;
        std::fs::write(&second, measured.join("\n")).context("writing the codes")?;
        Ok((first, second))
    }

    /// Registrations with one-use invitations, the codes read from `codes` (one per line,
    /// see register_invited.lua).
    fn wrk_register_invited(&mut self, server: &Server, codes: &Path) -> Wrk {
        let args = vec![self.next_prefix(), codes.display().to_string()];
        Wrk::new(
            server.url("/api/auth/register"),
            1,
            NARROW_CONNECTIONS,
            self.settings.duration(),
        )
        .timeout(Duration::from_secs(30))
        .script(self.register_invited_script.clone(), args)
    }

    /// Writes `tokens` to one file per wrk thread of the refresh scenario, PREFIX-T.txt for
    /// thread T (the tokens dealt out in turn), where PREFIX is the lua directory's `name`;
    /// returns PREFIX (refresh.lua's argument).
    fn token_files(&self, name: &str, tokens: &[String]) -> Result<PathBuf> {
        let prefix = self.refresh_script.with_file_name(name);
        for thread in 0..REFRESH_THREADS as usize {
            let mine: Vec<&str> = tokens
                .iter()
                .skip(thread)
                .step_by(REFRESH_THREADS as usize)
                .map(String::as_str)
                .collect();
            let path = PathBuf::from(format!("{}-{thread}.txt", prefix.display()));
            std::fs::write(&path, mine.join("\n"))
                .with_context(|| format!("writing {}", path.display()))?;
        }
        Ok(prefix)
    }

    /// Refreshes, each sending one refresh token of those in the files PREFIX-T.txt (see
    /// refresh.lua), with as many connections as the other write scenarios.
    fn wrk_refresh(&self, server: &Server, tokens: &Path) -> Wrk {
        Wrk::new(
            server.url("/api/auth/token"),
            REFRESH_THREADS,
            NARROW_CONNECTIONS,
            self.settings.duration(),
        )
        .timeout(Duration::from_secs(30))
        .script(
            self.refresh_script.clone(),
            vec![tokens.display().to_string()],
        )
    }

    /// Admin changes: `PUT /api/auth/users/{id}` as the admin whose token this is, each
    /// toggling the status of one of the users in `ids` (see change.lua), with as many
    /// connections as the other write scenarios and one wrk thread (the script needs it).
    fn wrk_changes(&self, server: &Server, token: &str, ids: &Path) -> Wrk {
        Wrk::new(
            server.url("/api/auth/users"),
            1,
            NARROW_CONNECTIONS,
            self.settings.duration(),
        )
        .header("Authorization", &format!("Bearer {token}"))
        .timeout(Duration::from_secs(30))
        .script(self.change_script.clone(), vec![ids.display().to_string()])
    }

    /// POSTs of JSON bodies the server accepts once, each sent once (see once.lua), from the
    /// files PREFIX-T.txt, with as many connections as the other write scenarios.
    fn wrk_once(&self, server: &Server, path: &str, bodies: &Path) -> Wrk {
        Wrk::new(
            server.url(path),
            REFRESH_THREADS,
            NARROW_CONNECTIONS,
            self.settings.duration(),
        )
        .timeout(Duration::from_secs(30))
        .script(self.once_script.clone(), vec![bodies.display().to_string()])
    }

    /// Waits for `server` to go idle, resets its peak RSS, warms up, waits again, measures,
    /// reads the scenario's peak RSS, prints the line.
    fn measure(
        &mut self,
        server: &Server,
        who: &str,
        label: &str,
        wrk: Wrk,
        results: &mut ServerResults,
    ) -> Result<WrkReport> {
        let mut wrk = wrk;
        server.wait_idle()?;
        // From here to the end of the measurement: the scenario's peak, warm-up included.
        let own_peak = server.reset_peak()?;
        if self.settings.warmup_s > 0 {
            warm_up(&wrk.with_duration(self.settings.warmup()))?;
            server.wait_idle()?;
        }
        if let Some((script, args)) = &mut wrk.script {
            // A registration run needs emails (and codes) the warm-up did not use.
            if *script == self.register_script {
                *args = vec![self.next_prefix()];
            } else if *script == self.register_invited_script {
                let codes = self
                    .invited_codes
                    .as_ref()
                    .map(|(_, m)| m.display().to_string());
                *args = vec![self.next_prefix(), codes.unwrap_or_default()];
            } else if *script == self.refresh_script {
                // Spent tokens must never be sent again: the measurement has its own.
                let tokens = self
                    .refresh_tokens
                    .as_ref()
                    .map(|p| p.display().to_string());
                *args = vec![tokens.unwrap_or_default()];
            } else if *script == self.once_script {
                // Bodies the server accepts once: the measurement has its own.
                let bodies = self.once_bodies.as_ref().map(|p| p.display().to_string());
                *args = vec![bodies.unwrap_or_default()];
            } else if *script == self.change_script {
                // Users whose status the warm-up left unknown are not changed again.
                if let Some(ids) = &self.change_ids {
                    *args = vec![ids.display().to_string()];
                }
            }
        }
        let before = (builds_running(), CpuSample::take(Some(server.pid()))?);
        let mut report = wrk.run().with_context(|| format!("{who}: {label}"))?;
        let after = CpuSample::take(Some(server.pid()))?;
        let others = before.1.others_since(&after);
        report.other_cpu_cores = Some(others);
        report.server_cpu_cores = Some(before.1.server_since(&after));
        report.peak_rss_kib = own_peak.then(|| server.peak_rss_kib()).transpose()?;
        let note = interference(label, before.0, others, results);
        println!("  {who:<10} {label:<48} {}{note}", report.summary());
        Ok(report)
    }

    /// Runs two loads at once (after warming both up together).
    fn measure_pair(
        &mut self,
        server: &Server,
        who: &str,
        (label_a, wrk_a): (&str, Wrk),
        (label_b, wrk_b): (&str, Wrk),
        results: &mut ServerResults,
    ) -> Result<(WrkReport, WrkReport)> {
        server.wait_idle()?;
        let own_peak = server.reset_peak()?;
        if self.settings.warmup_s > 0 {
            let warm_a = wrk_a.with_duration(self.settings.warmup()).spawn()?;
            let warm_b = wrk_b.with_duration(self.settings.warmup()).spawn()?;
            let a = wrk::wait(warm_a, wrk_a.connections);
            let b = wrk::wait(warm_b, wrk_b.connections);
            a.and(b).context("warming up")?;
            server.wait_idle()?;
        }
        let before = (builds_running(), CpuSample::take(Some(server.pid()))?);
        let child_a = wrk_a.spawn()?;
        let child_b = wrk_b.spawn()?;
        let a = wrk::wait(child_a, wrk_a.connections).with_context(|| format!("{who}: {label_a}"));
        let b = wrk::wait(child_b, wrk_b.connections).with_context(|| format!("{who}: {label_b}"));
        let (mut a, mut b) = (a?, b?);
        let after = CpuSample::take(Some(server.pid()))?;
        let others = before.1.others_since(&after);
        let server_cpu = before.1.server_since(&after);
        let peak = own_peak.then(|| server.peak_rss_kib()).transpose()?;
        for report in [&mut a, &mut b] {
            report.other_cpu_cores = Some(others);
            report.server_cpu_cores = Some(server_cpu);
            report.peak_rss_kib = peak;
        }
        let note = interference(&format!("{label_a} + {label_b}"), before.0, others, results);
        println!("  {who:<10} {label_a:<48} {}{note}", a.summary());
        println!("  {who:<10} {label_b:<48} {}{note}", b.summary());
        Ok((a, b))
    }

    /// `gatehouse serve` on `db` with bcrypt at `cost`, the run's JWT secret, every other
    /// setting at its default (`RUST_LOG` unset: info, an access line per request, into the
    /// log file) but for `variant`'s and `extra`.
    fn start_gatehouse(
        &self,
        backend: Backend,
        db: &BenchDatabase,
        cost: u32,
        phase: &str,
        variant: Variant,
        extra: &[(&str, String)],
    ) -> Result<Server> {
        let name = match variant {
            Variant::Default => format!("gatehouse-{}-{phase}", backend.key()),
            other => format!("gatehouse-{}-{phase}-{}", backend.key(), other.key()),
        };
        let mut env = vec![
            ("GATEHOUSE_DATABASE_URL", db.url().to_owned()),
            ("GATEHOUSE_BCRYPT_COST", cost.to_string()),
            ("GATEHOUSE_JWT_SECRET", self.jwt_secret.clone()),
        ];
        env.extend(variant.env());
        env.extend(extra.iter().cloned());
        Server::start(
            &name,
            &self.settings.gatehouse_bin,
            &["serve"],
            &env,
            &self.logs.join(format!("{name}.log")),
        )
        .with_context(|| format!("starting Gatehouse with {}", variant.label()))
    }

    /// Before anything is measured: when `access-log-off` is asked for, checks on a
    /// throw-away SQLite database that this binary honours `GATEHOUSE_ACCESS_LOG=off` (a
    /// binary from before the setting ignores it and would be measured with its access log
    /// on).
    fn check_variants(&self) -> Result<()> {
        if !self.settings.variants.contains(&Variant::AccessLogOff)
            || !self.settings.runs(Scenario::Wide)
        {
            return Ok(());
        }
        let db = BenchDatabase::sqlite()?;
        let server = self.start_gatehouse(
            Backend::Sqlite,
            &db,
            REGISTER_COST,
            "check",
            Variant::AccessLogOff,
            &[],
        )?;
        let lines = log_lines_per_request(&server)?;
        server.stop()?;
        check_variant(Variant::AccessLogOff, lines)?;
        println!(
            "{} takes: {lines:.2} log lines per request with it (a check on a throw-away database)",
            Variant::AccessLogOff.label()
        );
        Ok(())
    }

    /// A ceiling to measure /healthz and /me on beside a Gatehouse backend, and its token.
    fn reference_ceiling(&self) -> Result<(Server, String)> {
        let ceiling = self.start_ceiling(REGISTER_COST, "reference")?;
        ceiling.register(ADMIN_EMAIL, ADMIN_PASSWORD)?;
        let token = ceiling.login(ADMIN_EMAIL, ADMIN_PASSWORD)?;
        ceiling.expect_ok("/api/auth/me", &token)?;
        Ok((ceiling, token))
    }

    fn start_ceiling(&self, cost: u32, phase: &str) -> Result<Server> {
        let name = format!("ceiling-{phase}");
        Server::start(
            &name,
            &self.settings.ceiling_bin,
            &[],
            &[
                ("GATEHOUSE_BCRYPT_COST", cost.to_string()),
                ("GATEHOUSE_JWT_SECRET", self.jwt_secret.clone()),
            ],
            &self.logs.join(format!("{name}.log")),
        )
    }

    /// Stops `server`, keeping its peak RSS and any WARN/ERROR lines of its log (which is
    /// compacted when large: see [`server::summarise_log`]).
    fn stop(server: Server, phase: &str, results: &mut ServerResults) -> Result<()> {
        /// WARN/ERROR lines kept per log.
        const MAX_PROBLEMS: usize = 20;
        let log_path = server.log_path().to_owned();
        let kib = server.stop()?;
        results.rss_kib.push((phase.to_owned(), kib));
        let summary = server::summarise_log(&log_path)?;
        let shown = log_path.display();
        let count = summary.problems.len();
        for line in summary.problems.into_iter().take(MAX_PROBLEMS) {
            results.log_problems.push(format!("{shown}: {line}"));
        }
        if count > MAX_PROBLEMS {
            results.log_problems.push(format!(
                "{shown}: … and {} more WARN/ERROR lines",
                count - MAX_PROBLEMS
            ));
        }
        Ok(())
    }

    fn seed(
        db: &BenchDatabase,
        total: u64,
        results: &mut ServerResults,
        label: &str,
    ) -> Result<()> {
        let started = Instant::now();
        let store = db.open()?;
        let added = seed::seed_to(&store, total, &seed::shared_seed_hash()?)?;
        drop(store);
        db.settle()?;
        let seconds = started.elapsed().as_secs_f64();
        results.seed_s.insert(total, seconds);
        println!(
            "  {label:<10} seeded {added} users through storage ({total} in all) in {seconds:.1} s"
        );
        Ok(())
    }

    /// One measurement of the ceiling's `endpoint` next to Gatehouse's, kept for the mean
    /// that Gatehouse's is compared with.
    fn measure_ceiling_beside(
        &mut self,
        ceiling: &Server,
        token: &str,
        who: &str,
        endpoint: Wide,
        results: &mut ServerResults,
    ) -> Result<()> {
        let wide = WIDE_CONNECTIONS;
        let label = match endpoint {
            Wide::Healthz => format!("ceiling GET /healthz, c={wide} (next to it)"),
            Wide::Me => format!("ceiling GET /me, c={wide} (next to it)"),
        };
        let wrk = self.wrk_wide(ceiling, token, endpoint);
        let report = self.measure(ceiling, who, &label, wrk, results)?;
        match endpoint {
            Wide::Healthz => results.ceiling_healthz.push(report),
            Wide::Me => results.ceiling_me.push(report),
        }
        Ok(())
    }

    /// `/healthz` and `/me` with 64 connections at Gatehouse's defaults, each between two
    /// measurements of the ceiling's (this machine's speed drifts over minutes: the mean of
    /// the two is what the defaults are compared with), and the reference variants just
    /// outside that pair, each on its own server started beside the default one on the
    /// same database: `warn` before the pair, `access-log-off` after it.
    fn beside_ceiling(
        &mut self,
        backend: Backend,
        db: &BenchDatabase,
        server: &Server,
        token: &str,
        size: u64,
        results: &mut ServerResults,
    ) -> Result<()> {
        let who = backend.label();
        let mut variants = Vec::new();
        let beside: Vec<Variant> = self.settings.variants_beside().collect();
        for variant in beside {
            let started =
                self.start_gatehouse(backend, db, LOGIN_COST, &format!("{size}"), variant, &[])?;
            started.expect_ok("/api/auth/me", token)?;
            let lines = log_lines_per_request(&started)?;
            check_variant(variant, lines)?;
            results.variants.insert(
                variant.key().to_owned(),
                VariantResults {
                    log_lines_per_request: Some(lines),
                    ..VariantResults::default()
                },
            );
            variants.push((variant, started));
        }
        let (before, after) = variants.split_at(variants.len().div_ceil(2));
        let reference = if self.settings.ceiling {
            Some(self.reference_ceiling()?)
        } else {
            None
        };
        let wide = WIDE_CONNECTIONS;
        for endpoint in [Wide::Healthz, Wide::Me] {
            let what = match endpoint {
                Wide::Healthz => "GET /healthz".to_owned(),
                Wide::Me => format!("GET /me, {} users", group(size)),
            };
            for (variant, variant_server) in before {
                self.measure_variant(
                    who,
                    variant_server,
                    token,
                    *variant,
                    endpoint,
                    &what,
                    results,
                )?;
            }
            if let Some((ceiling, ceiling_token)) = &reference {
                self.measure_ceiling_beside(ceiling, ceiling_token, who, endpoint, results)?;
            }
            let wrk = self.wrk_wide(server, token, endpoint);
            let report = self.measure(server, who, &format!("{what}, c={wide}"), wrk, results)?;
            match endpoint {
                Wide::Healthz => results.healthz = Some(report),
                Wide::Me => {
                    results.me.insert(size, report);
                }
            }
            if let Some((ceiling, ceiling_token)) = &reference {
                self.measure_ceiling_beside(ceiling, ceiling_token, who, endpoint, results)?;
            }
            for (variant, variant_server) in after {
                self.measure_variant(
                    who,
                    variant_server,
                    token,
                    *variant,
                    endpoint,
                    &what,
                    results,
                )?;
            }
        }
        if let Some((ceiling, _)) = reference {
            ceiling.stop()?;
        }
        for (variant, variant_server) in variants {
            Self::stop(
                variant_server,
                &format!(
                    "cost {LOGIN_COST}, {size} users, {}: healthz, /me",
                    variant.label()
                ),
                results,
            )?;
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn measure_variant(
        &mut self,
        who: &str,
        server: &Server,
        token: &str,
        variant: Variant,
        endpoint: Wide,
        what: &str,
        results: &mut ServerResults,
    ) -> Result<()> {
        let wrk = self.wrk_wide(server, token, endpoint);
        let label = format!("{what}, c={WIDE_CONNECTIONS}, {}", variant.label());
        let report = self.measure(server, who, &label, wrk, results)?;
        let entry = results
            .variants
            .entry(variant.key().to_owned())
            .or_default();
        match endpoint {
            Wide::Healthz => entry.healthz = Some(report),
            Wide::Me => entry.me = Some(report),
        }
        Ok(())
    }

    /// The scenarios every server runs at cost 12 after /healthz and /me: /me with 16
    /// connections and with one, logins alone, the flood.
    fn narrow_scenarios(
        &mut self,
        who: &str,
        server: &Server,
        token: &str,
        accounts: (u64, &str),
        results: &mut ServerResults,
    ) -> Result<()> {
        let narrow = NARROW_CONNECTIONS;
        let wrk = self.wrk_me(server, token, 1, narrow);
        results.me_narrow = Some(self.measure(
            server,
            who,
            &format!("GET /me alone, c={narrow}"),
            wrk,
            results,
        )?);
        let wrk = self.wrk_me(server, token, 1, 1);
        results.me_single =
            Some(self.measure(server, who, "GET /me one at a time, c=1", wrk, results)?);
        let wrk = self.wrk_login(server, accounts);
        results.login = Some(self.measure(
            server,
            who,
            &format!("login at cost {LOGIN_COST} alone, c={narrow}"),
            wrk,
            results,
        )?);
        let (me_wrk, login_wrk) = (
            self.wrk_me(server, token, 1, narrow),
            self.wrk_login(server, accounts),
        );
        let (flood_me, flood_login) = self.measure_pair(
            server,
            who,
            (&format!("flood: GET /me, c={narrow}"), me_wrk),
            (
                &format!("flood: login at cost {LOGIN_COST}, c={narrow}"),
                login_wrk,
            ),
            results,
        )?;
        results.flood_me = Some(flood_me);
        results.flood_login = Some(flood_login);
        Ok(())
    }

    /// `GET /api/auth/users` with no query, as the admin: every one of the `users` users,
    /// with 16 connections; the scenario's peak RSS comes with it.
    fn list_all(
        &mut self,
        who: &str,
        server: &Server,
        token: &str,
        users: u64,
        results: &mut ServerResults,
    ) -> Result<()> {
        let (listed, bytes) = get_json_array(server, "/api/auth/users", token)
            .with_context(|| format!("{who}: listing every user"))?;
        if listed != users {
            bail!("{who}: GET /api/auth/users listed {listed} users, not {users}");
        }
        results.list_all_bytes.insert(users, bytes);
        let wrk = Wrk::new(
            server.url("/api/auth/users"),
            1,
            NARROW_CONNECTIONS,
            self.settings.duration(),
        )
        .header("Authorization", &format!("Bearer {token}"))
        .timeout(LIST_TIMEOUT);
        let label = format!(
            "GET /users (all {}, {}), c={NARROW_CONNECTIONS}",
            group(users),
            format_bytes(bytes)
        );
        let report = self.measure(server, who, &label, wrk, results)?;
        results.list_all.insert(users, report);
        Ok(())
    }

    fn run_gatehouse(&mut self, backend: Backend) -> Result<ServerResults> {
        let label = backend.label();
        let mut results = ServerResults::default();
        let db = BenchDatabase::new(backend)?;
        println!("\n== Gatehouse on {label} ({})", db.masked());
        {
            let store = db.open()?;
            let real_hash = seed::hash(ADMIN_PASSWORD, LOGIN_COST)?;
            seed::insert_admin(&store, &real_hash)?;
            seed::insert_login_users(&store, &real_hash)?;
        }
        let (smallest, largest) = (self.settings.smallest(), self.settings.largest());
        let (wide, narrow, list) = (
            self.settings.runs(Scenario::Wide),
            self.settings.runs(Scenario::Narrow),
            self.settings.runs(Scenario::List),
        );
        let mut admin_token: Option<String> = None;
        // One database, grown from size to size; a server started on it at each size that
        // has a scenario to run (the fixed JWT secret keeps the admin's token good across
        // them).
        for size in self.settings.sizes() {
            Self::seed(&db, size, &mut results, label)?;
            let me_curve = wide && self.settings.users.contains(&size);
            let listing = list && (size == largest || self.settings.list_users.contains(&size));
            if !(me_curve || listing || (narrow && size == smallest)) {
                continue;
            }
            let mut server = self.start_gatehouse(
                backend,
                &db,
                LOGIN_COST,
                &format!("{size}"),
                Variant::Default,
                &[],
            )?;
            let token = match &admin_token {
                Some(token) => token.clone(),
                None => admin_token
                    .insert(server.login(ADMIN_EMAIL, ADMIN_PASSWORD)?)
                    .clone(),
            };
            server.expect_ok("/api/auth/me", &token)?;
            let mut ran: Vec<&str> = Vec::new();
            if size == smallest {
                if wide {
                    let lines = log_lines_per_request(&server)?;
                    check_variant(Variant::Default, lines)?;
                    results.log_lines_per_request = Some(lines);
                    self.beside_ceiling(backend, &db, &server, &token, size, &mut results)?;
                    ran.push("healthz, /me");
                }
                if narrow {
                    self.narrow_scenarios(
                        label,
                        &server,
                        &token,
                        (seed::LOGIN_ACCOUNTS, seed::LOGIN_EMAIL_PATTERN),
                        &mut results,
                    )?;
                    ran.push("logins, flood");
                }
            } else if me_curve {
                let wrk = self.wrk_me(&server, &token, WIDE_THREADS, WIDE_CONNECTIONS);
                let me = self.measure(
                    &server,
                    label,
                    &format!("GET /me, {} users, c={WIDE_CONNECTIONS}", group(size)),
                    wrk,
                    &mut results,
                )?;
                results.me.insert(size, me);
                ran.push("/me");
            }
            if list && size == largest {
                server.expect_ok(&format!("/api/auth/users?limit={PAGE}"), &token)?;
                let wrk = self.wrk_list(&server, &token);
                results.list =
                    Some(self.measure(&server, label, &list_label(size), wrk, &mut results)?);
                results.list_users = Some(size);
                ran.push("GET /users?limit=50");
            }
            if list && self.settings.list_users.contains(&size) {
                if !ran.is_empty() && !self.settings.clear_refs() {
                    // The kernel does not let us reset the peak RSS: a server of its own.
                    Self::stop(
                        server,
                        &format!("cost {LOGIN_COST}, {size} users: {}", ran.join(", ")),
                        &mut results,
                    )?;
                    ran.clear();
                    server = self.start_gatehouse(
                        backend,
                        &db,
                        LOGIN_COST,
                        &format!("{size}-list"),
                        Variant::Default,
                        &[],
                    )?;
                }
                self.list_all(label, &server, &token, size, &mut results)?;
                ran.push("GET /users (all)");
            }
            Self::stop(
                server,
                &format!("cost {LOGIN_COST}, {size} users: {}", ran.join(", ")),
                &mut results,
            )?;
        }
        let most = self.settings.sizes().last().copied().unwrap_or(largest);
        if self.settings.runs(Scenario::Register) || self.settings.runs(Scenario::Invited) {
            self.registrations(backend, &db, most, &mut results)?;
        }
        if self.settings.runs(Scenario::Refresh) {
            if let Some(dir) = db.sqlite_dir() {
                results.durable_probe = Some(durable_write_probe(label, dir)?);
            }
            self.refreshes(backend, &db, &mut results)?;
        }
        if self.settings.runs(Scenario::Outbox) {
            self.outbox(backend, &db, &mut results)?;
        }
        // Last: it adds tens of thousands of accounts with TOTP.
        if self.settings.runs(Scenario::Mfa) {
            self.mfa(backend, &db, &mut results)?;
        }
        drop(db);
        Ok(results)
    }

    /// Registrations at cost 4 on a database of `most` users, then the same with a one-use
    /// invitation each (as `--only` asks), on one server.
    fn registrations(
        &mut self,
        backend: Backend,
        db: &BenchDatabase,
        most: u64,
        results: &mut ServerResults,
    ) -> Result<()> {
        let label = backend.label();
        // One address registers thousands of users here: the per-address hourly limit
        // (100 by default) would turn the run into a measurement of 429s.
        let server = self.start_gatehouse(
            backend,
            db,
            REGISTER_COST,
            "register",
            Variant::Default,
            &[("GATEHOUSE_REGISTER_LIMIT_PER_HOUR", "0".to_owned())],
        )?;
        let mut ran = Vec::new();
        if self.settings.runs(Scenario::Register) {
            let wrk = self.wrk_register(&server);
            results.register = Some(self.measure(
                &server,
                label,
                &format!(
                    "register at cost {REGISTER_COST}, {} users, c={NARROW_CONNECTIONS}",
                    group(most)
                ),
                wrk,
                results,
            )?);
            results.register_users = Some(most);
            ran.push("registrations");
        }
        if self.settings.runs(Scenario::Invited) {
            self.invited_registrations(label, db, &server, most, results)?;
            ran.push("invited registrations");
        }
        Self::stop(
            server,
            &format!("cost {REGISTER_COST}, {most}+ users: {}", ran.join(", ")),
            results,
        )
    }

    /// The registrations, each with its own one-use invitation (as invitations are mostly
    /// used: one per person). The warm-up and the measurement take codes from two files, so
    /// the measurement never meets a spent one. (A binary from before invitations answers
    /// 422 to them all: the scenario is left out.)
    fn invited_registrations(
        &mut self,
        label: &str,
        db: &BenchDatabase,
        server: &Server,
        most: u64,
        results: &mut ServerResults,
    ) -> Result<()> {
        let store = db.open()?;
        let per_second = 3000.0;
        let warm = seed::one_use_invitations(
            &store,
            (self.settings.warmup().as_secs_f64() * per_second) as usize + 1,
        )?;
        let measured = seed::one_use_invitations(
            &store,
            (self.settings.duration().as_secs_f64() * per_second) as usize + 1,
        )?;
        drop(store);
        let files = self.code_files(&warm, &measured)?;
        let probe = server.post_json(
            "/api/auth/register",
            &serde_json::json!({"email": "probe@invited.bench.example.com",
                                "password": "bench register password",
                                "invitation": warm.last()}),
        )?;
        if probe.status == 201 {
            let wrk = self.wrk_register_invited(server, &files.0);
            self.invited_codes = Some(files);
            results.register_invited = Some(self.measure(
                server,
                label,
                &format!(
                    "register invited, cost {REGISTER_COST}, {}+ users, c={NARROW_CONNECTIONS}",
                    group(most)
                ),
                wrk,
                results,
            )?);
            self.invited_codes = None;
        } else {
            println!(
                "  {label:<10} register invited: left out (a registration with a code answered {})",
                probe.status
            );
        }
        Ok(())
    }

    /// Refreshes on a server at Gatehouse's defaults (`GATEHOUSE_BCRYPT_COST` at its default
    /// of 12, nothing else set but the database and the JWT secret). Their sessions are
    /// started first by logins (of [`seed::REFRESH_ACCOUNTS`] accounts whose hashes are at
    /// cost 4, so that they take milliseconds): as many sessions as
    /// [`REFRESH_SESSIONS_PER_CONNECTION`] per connection for the warm-up and as many others
    /// for the measurement, every refresh token in exactly one file (see refresh.lua: each
    /// is sent once, and the next of its session comes from the answer). Afterwards the
    /// audit log is asked how many sessions reuse detection ended (none, unless a token was
    /// sent twice). A binary from before sessions (no refresh token in a login's answer)
    /// leaves the scenario out.
    fn refreshes(
        &mut self,
        backend: Backend,
        db: &BenchDatabase,
        results: &mut ServerResults,
    ) -> Result<()> {
        let label = backend.label();
        {
            let store = db.open()?;
            seed::insert_refresh_users(&store, &seed::hash(ADMIN_PASSWORD, REGISTER_COST)?)?;
        }
        let server =
            self.start_gatehouse(backend, db, LOGIN_COST, "refresh", Variant::Default, &[])?;
        let per_run = (NARROW_CONNECTIONS * REFRESH_SESSIONS_PER_CONNECTION) as usize;
        let started = Instant::now();
        let mut tokens = Vec::with_capacity(2 * per_run);
        for n in 0..2 * per_run {
            let email = seed::refresh_email(n as u64 % seed::REFRESH_ACCOUNTS);
            match login_refresh_token(&server, &email)? {
                Some(token) => tokens.push(token),
                None => {
                    println!(
                        "  {label:<10} refresh: left out (a login's answer has no refresh_token)"
                    );
                    return Self::stop(server, "cost 12 (defaults): logins", results);
                }
            }
        }
        println!(
            "  {label:<10} started {} sessions by logins (hashes at cost {REGISTER_COST}) in {:.1} s",
            tokens.len(),
            started.elapsed().as_secs_f64()
        );
        // Statistics that know of the sessions, as autovacuum would have them on a service
        // that has been running (the seeding's were taken before there were any).
        db.settle()?;
        let measured = tokens.split_off(per_run);
        let warm = self.token_files("refresh-warm-up", &tokens)?;
        let measured = self.token_files("refresh-tokens", &measured)?;
        let wrk = self.wrk_refresh(&server, &warm);
        self.refresh_tokens = Some(measured);
        let report = self.measure(
            &server,
            label,
            &format!("refresh (POST /token), {per_run} sessions, c={NARROW_CONNECTIONS}"),
            wrk,
            results,
        );
        self.refresh_tokens = None;
        results.refresh = Some(report?);
        results.refresh_sessions = Some(per_run as u64);
        let admin = server.login(ADMIN_EMAIL, ADMIN_PASSWORD)?;
        let reused = reuse_detections(&server, &admin)?;
        results.refresh_reused = Some(reused);
        if reused > 0 {
            let problem = format!(
                "refresh: reuse detection ended {reused} sessions (a refresh token was sent twice)"
            );
            println!("  {label:<10} WARNING: {problem}");
            results.log_problems.push(problem);
        }
        Self::stop(server, "cost 12 (defaults): refreshes", results)
    }

    /// Multi-factor sign-in beside password logins, on one server at Gatehouse's defaults
    /// but for `GATEHOUSE_PUBLIC_URL` (passkeys need a relying party; the requests still go
    /// to 127.0.0.1, and this process's authenticator signs for the public URL's origin):
    /// 1. password logins at cost 12 (login.lua over the login accounts, which have no
    ///    second factor), the comparison;
    /// 2. the TOTP second step (`POST /login/mfa`): accounts seeded through storage, each
    ///    with a confirmed TOTP factor sealed under the server's key (derived from the JWT
    ///    secret this harness gives it) and a login waiting for its second step (the
    ///    `mfa_token` a password login would have answered), one per request: a TOTP step
    ///    is accepted once per account and a token once. The codes are computed just
    ///    before the warm-up (valid for at least 50 s, the window being a step either side)
    ///    and sent once each (once.lua);
    /// 3. a passkey login's start (`POST /login/passkey/start`: one challenge written);
    /// 4. its finish (`POST /login/passkey/finish`): [`seed::PASSKEY_ACCOUNTS`] accounts
    ///    register a passkey each over HTTP with a software authenticator in this process
    ///    (ES256, a synced passkey's counter of 0, so that assertions made ahead may arrive
    ///    in any order); then as many challenges as the finishes need are started over HTTP
    ///    and signed here, the accounts taken in turn, and each sent once (once.lua).
    ///
    /// A binary from before MFA (404 to `/login/mfa`) leaves the group out; one from before
    /// passkeys leaves out 3 and 4.
    fn mfa(
        &mut self,
        backend: Backend,
        db: &BenchDatabase,
        results: &mut ServerResults,
    ) -> Result<()> {
        // A generous guess of the rates, for how many one-use bodies to prepare: a queue
        // that runs dry shows up as non-2xx answers (and script notes), never silently.
        let (step_rate, finish_rate) = match backend {
            Backend::Sqlite => (4000.0, 3000.0),
            // Seeding PostgreSQL is slower (a round trip per statement): ~4 ms an account.
            Backend::Postgres => (2500.0, 2500.0),
        };
        let label = backend.label();
        let narrow = NARROW_CONNECTIONS;
        let (warm_s, run_s) = (
            self.settings.warmup().as_secs_f64(),
            self.settings.duration().as_secs_f64(),
        );
        let keys = gatehouse_domain::MfaKeys::derive(self.jwt_secret.as_bytes())
            .context("deriving the server's MFA keys")?;
        let (warm_logins, measured_logins) = {
            let store = db.open()?;
            let started = Instant::now();
            let cheap = seed::hash(ADMIN_PASSWORD, REGISTER_COST)?;
            seed::insert_passkey_users(&store, &cheap)?;
            let shared = seed::shared_seed_hash()?;
            let warm = seed::waiting_logins(
                &store,
                &keys,
                &format!("{}w", self.run_id),
                (warm_s * step_rate) as u64 + 100,
                &shared,
            )?;
            let measured = seed::waiting_logins(
                &store,
                &keys,
                &format!("{}m", self.run_id),
                (run_s * step_rate) as u64 + 100,
                &shared,
            )?;
            println!(
                "  {label:<10} seeded {} accounts with TOTP, each with a login waiting for its second step, in {:.1} s",
                warm.len() + measured.len(),
                started.elapsed().as_secs_f64()
            );
            (warm, measured)
        };
        db.settle()?;
        let server = self.start_gatehouse(
            backend,
            db,
            LOGIN_COST,
            "mfa",
            Variant::Default,
            &[("GATEHOUSE_PUBLIC_URL", MFA_PUBLIC_URL.to_owned())],
        )?;
        let mut mfa = MfaResults::default();

        // 2 first checked: a binary from before MFA has no second step.
        let (probe, warm_logins) = warm_logins
            .split_first()
            .context("no waiting logins were seeded")?;
        let reply = server.post_json("/api/auth/login/mfa", &second_step_body(probe)?)?;
        if reply.status == 404 {
            println!("  {label:<10} mfa: left out (POST /login/mfa answered 404)");
            return Self::stop(server, "cost 12 (defaults): MFA", results);
        }
        if reply.status != 200 {
            bail!(
                "the second step of a seeded login answered {}: {}",
                reply.status,
                reply.body.chars().take(500).collect::<String>()
            );
        }

        // 1. Password logins, the comparison.
        let wrk = self.wrk_login(&server, (seed::LOGIN_ACCOUNTS, seed::LOGIN_EMAIL_PATTERN));
        mfa.login = Some(self.measure(
            &server,
            label,
            &format!("login at cost {LOGIN_COST} (password only), c={narrow}"),
            wrk,
            results,
        )?);

        // 2. The second step. Codes now, for the step 20 s ahead: accepted from now until
        // at least 50 s from now.
        let warm = warm_logins
            .iter()
            .map(second_step_body)
            .map(|body| body.map(|b| b.to_string()))
            .collect::<Result<Vec<_>>>()?;
        let measured = measured_logins
            .iter()
            .map(second_step_body)
            .map(|body| body.map(|b| b.to_string()))
            .collect::<Result<Vec<_>>>()?;
        mfa.second_step_accounts = Some((warm.len() + measured.len()) as u64 + 1);
        let warm = self.token_files("mfa-warm-up", &warm)?;
        let measured = self.token_files("mfa-steps", &measured)?;
        let wrk = self.wrk_once(&server, "/api/auth/login/mfa", &warm);
        self.once_bodies = Some(measured);
        let report = self.measure(
            &server,
            label,
            &format!("TOTP second step (POST /login/mfa), c={narrow}"),
            wrk,
            results,
        );
        self.once_bodies = None;
        mfa.second_step = Some(report?);

        // 3 and 4. Passkeys.
        let mut authenticators = Vec::with_capacity(seed::PASSKEY_ACCOUNTS as usize);
        for n in 0..seed::PASSKEY_ACCOUNTS {
            match register_passkey(&server, &seed::passkey_email(n))? {
                Some(authenticator) => authenticators.push(authenticator),
                None => {
                    println!("  {label:<10} passkeys: left out (registering one answered 404)");
                    results.mfa = Some(mfa);
                    return Self::stop(server, "cost 12 (defaults): MFA", results);
                }
            }
        }
        let wrk = Wrk::new(
            server.url("/api/auth/login/passkey/start"),
            1,
            narrow,
            self.settings.duration(),
        )
        .script(self.post_script.clone(), Vec::new());
        mfa.passkey_start = Some(self.measure(
            &server,
            label,
            &format!("passkey login: start, c={narrow}"),
            wrk,
            results,
        )?);
        let started = Instant::now();
        let warm = passkey_assertions(
            &server,
            &mut authenticators,
            (warm_s * finish_rate) as usize + 100,
        )?;
        let measured = passkey_assertions(
            &server,
            &mut authenticators,
            (run_s * finish_rate) as usize + 100,
        )?;
        mfa.passkey_assertions = Some((warm.len() + measured.len()) as u64);
        println!(
            "  {label:<10} started and signed {} passkey logins in {:.1} s",
            warm.len() + measured.len(),
            started.elapsed().as_secs_f64()
        );
        let warm = self.token_files("passkey-warm-up", &warm)?;
        let measured = self.token_files("passkey-logins", &measured)?;
        let wrk = self.wrk_once(&server, "/api/auth/login/passkey/finish", &warm);
        self.once_bodies = Some(measured);
        let report = self.measure(
            &server,
            label,
            &format!("passkey login: finish, c={narrow}"),
            wrk,
            results,
        );
        self.once_bodies = None;
        mfa.passkey_finish = Some(report?);
        results.mfa = Some(mfa);
        Self::stop(server, "cost 12 (defaults): MFA", results)
    }

    /// The webhook outbox, on servers at Gatehouse's defaults but for
    /// `GATEHOUSE_WEBHOOK_ALLOW_PRIVATE=true` (the receiver is on 127.0.0.1), with a
    /// receiver in this process ([`Receiver`]: HTTP/1.1, keep-alive, `200` with an empty
    /// body, each request's arrival noted by its `webhook-id`):
    /// 1. commit to delivery: one endpoint subscribed to every event, then
    ///    [`OUTBOX_TESTS`] `POST /webhooks/{id}/test` one after another, each delivery
    ///    waited for (and a short pause) before the next, so that the dispatcher and the
    ///    receiver are idle each time (see [`Bench::delivery_latency`]);
    /// 2. a backlog's drain: with the server stopped, [`OUTBOX_BACKLOG`] events written
    ///    through storage with one delivery each to a new endpoint (the first removed), then
    ///    the server started and timed from its start until every delivery arrived; the
    ///    deliveries log is checked (every one `delivered`, `X-Total-Count` as many) and no
    ///    `webhook-id` may arrive twice;
    /// 3. the receiver alone: this process POSTing as many requests like the deliveries
    ///    (the same body) over 16 keep-alive connections, with no server running;
    /// 4. registrations at cost 4 (as the register scenario: `GATEHOUSE_BCRYPT_COST=4`,
    ///    `GATEHOUSE_REGISTER_LIMIT_PER_HOUR=0`) and admin changes (change.lua), each
    ///    without an endpoint and then with one subscribed to every event (so that every
    ///    change writes an event and a delivery, and the dispatcher sends it), in the order
    ///    registrations, changes, changes, registrations; afterwards every delivery must
    ///    have arrived, once.
    ///
    /// A binary from before webhooks (404 to `POST /webhooks`) leaves the group out.
    fn outbox(
        &mut self,
        backend: Backend,
        db: &BenchDatabase,
        results: &mut ServerResults,
    ) -> Result<()> {
        let label = backend.label();
        let receiver = Receiver::start()?;
        let sink = receiver.url("/webhook");
        let private = ("GATEHOUSE_WEBHOOK_ALLOW_PRIVATE", "true".to_owned());
        let mut outbox = OutboxResults::default();
        println!(
            "  {label:<10} outbox: receiver at {sink}; Gatehouse with {}={}",
            private.0, private.1
        );
        // The admin changes' users: a set per wrk run, all approved when it starts.
        let change_files = {
            let store = db.open()?;
            let hash = seed::shared_seed_hash()?;
            let mut files = Vec::new();
            for (run, name) in [
                "changes-without-warm-up",
                "changes-without",
                "changes-with-warm-up",
                "changes-with",
                "changes-with-2-warm-up",
                "changes-with-2",
                "changes-without-2-warm-up",
                "changes-without-2",
            ]
            .into_iter()
            .enumerate()
            {
                let ids = seed::insert_change_users(
                    &store,
                    run as u32,
                    self.settings.change_users,
                    &hash,
                )?;
                let path = self.change_script.with_file_name(format!("{name}.txt"));
                let text: Vec<String> = ids.iter().map(i64::to_string).collect();
                std::fs::write(&path, text.join("\n"))
                    .with_context(|| format!("writing {}", path.display()))?;
                files.push(path);
            }
            files
        };
        db.settle()?;

        // 1. Commit to delivery.
        let server = self.start_gatehouse(
            backend,
            db,
            LOGIN_COST,
            "outbox",
            Variant::Default,
            std::slice::from_ref(&private),
        )?;
        let token = server.login(ADMIN_EMAIL, ADMIN_PASSWORD)?;
        let Some(hook) = create_webhook(&server, &token, &sink)? else {
            println!("  {label:<10} outbox: left out (POST /api/auth/webhooks answered 404)");
            receiver.stop();
            return Self::stop(server, "cost 12 (defaults): outbox left out", results);
        };
        server.wait_idle()?;
        outbox.latency = Some(self.delivery_latency(label, &server, &token, hook, &receiver)?);
        // Its deliveries go with it: the backlog's endpoint is then the only one.
        delete_webhook(&server, &token, hook)?;
        Self::stop(
            server,
            "cost 12 (defaults), outbox: commit to delivery",
            results,
        )?;

        // 2. The backlog's drain.
        let (drain, payload) =
            self.drain(backend, db, &receiver, &private, &mut outbox, results)?;
        outbox.drain = Some(drain);

        // 3. The receiver alone: a run takes a fraction of a second, so the median of
        // [`RECEIVER_RUNS`].
        let n = self.settings.outbox_backlog;
        let mut runs = Vec::new();
        for _ in 0..RECEIVER_RUNS {
            let load = receiver::post_load(&receiver, NARROW_CONNECTIONS, n, n / 10, &payload)
                .context("the receiver alone")?;
            if load.arrived != load.requests || load.repeats > 0 {
                outbox.problems.push(format!(
                    "the receiver alone: {} of {} requests noted, {} twice",
                    load.arrived, load.requests, load.repeats
                ));
            }
            runs.push(load);
        }
        runs.sort_by(|a, b| a.rps.total_cmp(&b.rps));
        outbox.receiver_runs_rps = runs.iter().map(|r| r.rps).collect();
        let rates: Vec<String> = runs.iter().map(|r| format_rate(r.rps)).collect();
        let load = runs.swap_remove(runs.len() / 2);
        println!(
            "  {label:<10} {:<48} {}/s (median of {}; {} requests of {} bytes each, c={}, \
             keep-alive; runs: {}/s)",
            "outbox: the receiver alone",
            format_rate(load.rps),
            RECEIVER_RUNS,
            load.requests,
            load.body_bytes,
            load.connections,
            rates.join(", ")
        );
        outbox.receiver = Some(load);

        // 4. Registrations and admin changes, without and with an endpoint.
        self.outbox_writes(
            backend,
            db,
            &receiver,
            &private,
            &change_files,
            &mut outbox,
            results,
        )?;
        receiver.stop();
        for problem in &outbox.problems {
            println!("  {label:<10} outbox: PROBLEM: {problem}");
        }
        results.outbox = Some(outbox);
        Ok(())
    }

    /// Test events one after another on `server` for endpoint `hook`, which delivers to
    /// `receiver`: for each, the time from the 202 being read (the event was committed
    /// before it was sent) and from the request being sent, to the delivery's arrival.
    fn delivery_latency(
        &self,
        label: &str,
        server: &Server,
        token: &str,
        hook: i64,
        receiver: &Receiver,
    ) -> Result<OutboxLatency> {
        let path = format!("/api/auth/webhooks/{hook}/test");
        let tests = self.settings.outbox_tests;
        let (mut commit, mut sent, mut answer) = (Vec::new(), Vec::new(), Vec::new());
        let mut before_answer = 0;
        for i in 0..OUTBOX_WARM_TESTS + tests {
            let sent_at = Instant::now();
            let reply = server.post_empty_as(&path, token)?;
            let answered = Instant::now();
            if reply.status != 202 {
                bail!(
                    "POST {path} answered {}: {}",
                    reply.status,
                    reply.body.chars().take(500).collect::<String>()
                );
            }
            let body: serde_json::Value =
                serde_json::from_str(&reply.body).context("the test event's answer")?;
            let event_id = body
                .get("event_id")
                .and_then(serde_json::Value::as_str)
                .context("no event_id in the test event's answer")?;
            let arrived = receiver
                .wait_for(event_id, DELIVERY_TIMEOUT)
                .with_context(|| {
                    format!("test event {event_id} did not arrive within {DELIVERY_TIMEOUT:?}")
                })?;
            std::thread::sleep(OUTBOX_PAUSE);
            if i < OUTBOX_WARM_TESTS {
                continue;
            }
            let since_answer = match arrived.checked_duration_since(answered) {
                Some(after) => after.as_secs_f64() * 1000.0,
                None => {
                    before_answer += 1;
                    -(answered.duration_since(arrived).as_secs_f64() * 1000.0)
                }
            };
            commit.push(since_answer);
            sent.push(arrived.saturating_duration_since(sent_at).as_secs_f64() * 1000.0);
            answer.push(answered.duration_since(sent_at).as_secs_f64() * 1000.0);
        }
        for samples in [&mut commit, &mut sent, &mut answer] {
            samples.sort_by(f64::total_cmp);
        }
        let at = |samples: &[f64], p: f64| receiver::percentile(samples, p).unwrap_or(f64::NAN);
        let latency = OutboxLatency {
            tests,
            warm_up_tests: OUTBOX_WARM_TESTS,
            commit_p50_ms: at(&commit, 0.5),
            commit_p99_ms: at(&commit, 0.99),
            commit_max_ms: at(&commit, 1.0),
            sent_p50_ms: at(&sent, 0.5),
            sent_p99_ms: at(&sent, 0.99),
            sent_max_ms: at(&sent, 1.0),
            answer_p50_ms: at(&answer, 0.5),
            answer_p99_ms: at(&answer, 0.99),
            before_answer,
        };
        println!(
            "  {label:<10} {:<48} p50 {}, p99 {}, max {} (from the send: p50 {}, p99 {}; \
             the 202 itself p50 {}; {tests} tests, {before_answer} arrived before their 202)",
            "outbox: commit → delivery, idle",
            format_ms(latency.commit_p50_ms),
            format_ms(latency.commit_p99_ms),
            format_ms(latency.commit_max_ms),
            format_ms(latency.sent_p50_ms),
            format_ms(latency.sent_p99_ms),
            format_ms(latency.answer_p50_ms),
        );
        Ok(latency)
    }

    /// The backlog's drain (step 2 of [`Bench::outbox`]); also returns one event's body,
    /// for the receiver's own measurement.
    fn drain(
        &mut self,
        backend: Backend,
        db: &BenchDatabase,
        receiver: &Receiver,
        private: &(&'static str, String),
        outbox: &mut OutboxResults,
        results: &mut ServerResults,
    ) -> Result<(OutboxDrain, String)> {
        let label = backend.label();
        let n = self.settings.outbox_backlog;
        receiver.clear();
        let seeding = Instant::now();
        let backlog = {
            let store = db.open()?;
            seed::outbox_backlog(&store, &receiver.url("/webhook"), n)?
        };
        db.settle()?;
        let seed_s = seeding.elapsed().as_secs_f64();
        println!(
            "  {label:<10} wrote {n} events, a delivery each, through storage in {seed_s:.1} s"
        );
        let builds = builds_running();
        let started = Instant::now();
        let server = self.start_gatehouse(
            backend,
            db,
            LOGIN_COST,
            "outbox-drain",
            Variant::Default,
            std::slice::from_ref(private),
        )?;
        let startup_s = started.elapsed().as_secs_f64();
        let cpu_before = CpuSample::take(Some(server.pid()))?;
        let count = receiver.wait_for_count(n as usize, DRAIN_TIMEOUT, DRAIN_STALL);
        let cpu_after = CpuSample::take(Some(server.pid()))?;
        let others = cpu_before.others_since(&cpu_after);
        let tally = receiver.tally();
        let mut arrivals: Vec<Instant> = Vec::with_capacity(n as usize);
        let mut missing = 0;
        for id in &backlog.event_ids {
            match tally.arrivals.get(id) {
                Some(at) => arrivals.push(*at),
                None => missing += 1,
            }
        }
        let strangers = count.saturating_sub(arrivals.len());
        let first = arrivals.iter().min().copied();
        let last = arrivals.iter().max().copied();
        let since_start = |at: Option<Instant>| {
            at.map_or(f64::NAN, |at| {
                at.saturating_duration_since(started).as_secs_f64()
            })
        };
        let (first_s, seconds) = (since_start(first), since_start(last));
        let steady = match (first, last) {
            (Some(first), Some(last)) if last > first => {
                (arrivals.len() as f64 - 1.0) / last.duration_since(first).as_secs_f64()
            }
            _ => f64::NAN,
        };
        // The attempts are recorded after the answers: wait for the log to say so.
        let deliveries = wait_recorded(db, backlog.webhook, Duration::from_secs(60))?;
        let token = server.login(ADMIN_EMAIL, ADMIN_PASSWORD)?;
        let reply = server.get(
            &format!("/api/auth/webhooks/{}/deliveries?limit=1", backlog.webhook),
            Some(&token),
        )?;
        if reply.status != 200 {
            bail!("GET the backlog's deliveries answered {}", reply.status);
        }
        // The next servers' "without an endpoint" runs need none.
        delete_webhook(&server, &token, backlog.webhook)?;
        let drain = OutboxDrain {
            events: n,
            seed_s,
            startup_s,
            first_s,
            seconds,
            events_per_s: arrivals.len() as f64 / seconds,
            steady_per_s: steady,
            arrived: arrivals.len() as u64,
            repeats: tally.repeats,
            missing,
            deliveries,
            total_count_header: reply.total_count,
            server_cpu_cores: cpu_before.server_since(&cpu_after),
            other_cpu_cores: others,
        };
        let mut note = interference("outbox: drain", builds, others, results);
        if missing > 0 || tally.repeats > 0 || strangers > 0 {
            outbox.problems.push(format!(
                "drain: {missing} of {n} events never arrived, {} arrived twice, {strangers} \
                 deliveries of other events",
                tally.repeats
            ));
        }
        if deliveries.delivered != n || deliveries.total != n || reply.total_count != Some(n) {
            outbox.problems.push(format!(
                "drain: the deliveries log says {} delivered, {} pending, {} failed of {} \
                 (X-Total-Count {:?}), not {n} delivered",
                deliveries.delivered,
                deliveries.pending,
                deliveries.failed,
                deliveries.total,
                reply.total_count
            ));
        }
        if !outbox.problems.is_empty() {
            note.push_str("  [PROBLEM: see below]");
        }
        println!(
            "  {label:<10} {:<48} {}/s ({} events in {:.2} s from the server's start, which \
             answered /healthz after {:.2} s; first arrival at {:.2} s, {}/s from first to \
             last; log: {} delivered, X-Total-Count {}; {} twice; server CPU {:.2} cores){note}",
            format!("outbox: drain of {} queued events", group(n)),
            format_rate(drain.events_per_s),
            drain.arrived,
            drain.seconds,
            drain.startup_s,
            drain.first_s,
            format_rate(drain.steady_per_s),
            deliveries.delivered,
            reply
                .total_count
                .map_or_else(|| "missing".to_owned(), |t| t.to_string()),
            drain.repeats,
            drain.server_cpu_cores,
        );
        Self::stop(
            server,
            &format!("cost 12 (defaults), outbox: drain of {n}"),
            results,
        )?;
        Ok((drain, backlog.payload))
    }

    /// Step 4 of [`Bench::outbox`]: registrations and admin changes without and with an
    /// endpoint, on one server, each scenario twice on each side in the order without,
    /// with, with, without: `R- C- | C+ R+ R+ C+ | C- R-` (R registrations, C admin
    /// changes; the endpoint is added before the first run with it and turned off, its
    /// deliveries all recorded, before the last two). The database grows over the runs
    /// (each registration adds a user, each change an audit entry), and a run measured on a
    /// bigger one is slower: with one run each, the later side paid for that too. An A-A
    /// check (an endpoint subscribed to no event these raise) measured registrations 0.92×
    /// and 1.02×, admin changes 1.14× and 0.99×, on the old order: one run each side cannot
    /// tell a 10 % cost. In this order a steady drift weighs on both sides alike.
    #[allow(clippy::too_many_arguments)]
    fn outbox_writes(
        &mut self,
        backend: Backend,
        db: &BenchDatabase,
        receiver: &Receiver,
        private: &(&'static str, String),
        change_files: &[PathBuf],
        outbox: &mut OutboxResults,
        results: &mut ServerResults,
    ) -> Result<()> {
        let label = backend.label();
        let narrow = NARROW_CONNECTIONS;
        let [without_warm, without, with_warm, with, with2_warm, with2, without2_warm, without2] =
            change_files
        else {
            bail!("eight files of users for the admin changes");
        };
        // As the register scenario: one address registers thousands of users.
        let server = self.start_gatehouse(
            backend,
            db,
            REGISTER_COST,
            "outbox-writes",
            Variant::Default,
            &[
                ("GATEHOUSE_REGISTER_LIMIT_PER_HOUR", "0".to_owned()),
                private.clone(),
            ],
        )?;
        let token = server.login(ADMIN_EMAIL, ADMIN_PASSWORD)?;
        let (endpoints, _) = get_json_array(&server, "/api/auth/webhooks", &token)?;
        if endpoints != 0 {
            bail!("{endpoints} webhook endpoints before the runs without one");
        }
        let store = db.open()?;
        let register = format!("outbox: register, cost {REGISTER_COST}");
        let changes = "outbox: admin changes";

        let wrk = self.wrk_register(&server);
        outbox.register_without = Some(self.measure(
            &server,
            label,
            &format!("{register}, no endpoint, c={narrow}"),
            wrk,
            results,
        )?);
        outbox.changes_without = Some(self.measure_changes(
            &server,
            label,
            &token,
            [without_warm, without],
            &format!("{changes}, no endpoint, c={narrow}"),
            results,
        )?);

        let hook = create_webhook(&server, &token, &receiver.url("/webhook"))?
            .context("POST /api/auth/webhooks answered 404 the second time")?;
        receiver.clear();
        outbox.changes_with = Some(self.measure_changes(
            &server,
            label,
            &token,
            [with_warm, with],
            &format!("{changes}, with an endpoint, c={narrow}"),
            results,
        )?);
        let pending = seed::delivery_counts(&store, hook)?.pending;
        outbox
            .pending_after
            .insert("admin changes".to_owned(), pending);
        let wrk = self.wrk_register(&server);
        outbox.register_with = Some(self.measure(
            &server,
            label,
            &format!("{register}, with an endpoint, c={narrow}"),
            wrk,
            results,
        )?);
        let pending = seed::delivery_counts(&store, hook)?.pending;
        outbox.pending_after.insert("register".to_owned(), pending);
        let wrk = self.wrk_register(&server);
        outbox.register_with_second = Some(self.measure(
            &server,
            label,
            &format!("{register}, with an endpoint, c={narrow}, 2nd"),
            wrk,
            results,
        )?);
        let pending = seed::delivery_counts(&store, hook)?.pending;
        outbox
            .pending_after
            .insert("register, 2nd".to_owned(), pending);
        outbox.changes_with_second = Some(self.measure_changes(
            &server,
            label,
            &token,
            [with2_warm, with2],
            &format!("{changes}, with an endpoint, c={narrow}, 2nd"),
            results,
        )?);
        let pending = seed::delivery_counts(&store, hook)?.pending;
        outbox
            .pending_after
            .insert("admin changes, 2nd".to_owned(), pending);

        // Every change with the endpoint wrote a delivery: each must arrive, once. Then the
        // endpoint is turned off (nothing is pending: turning it off fails nothing).
        let counts = wait_recorded(db, hook, Duration::from_secs(120))?;
        let arrived = receiver.wait_for_count(
            counts.delivered as usize,
            Duration::from_secs(10),
            Duration::from_secs(10),
        ) as u64;
        let tally = receiver.tally();
        println!(
            "  {label:<10} outbox: with the endpoint, {} deliveries written, {} delivered, {} \
             arrived ({} twice); pending right after the runs: {}",
            counts.total,
            counts.delivered,
            arrived,
            tally.repeats,
            outbox
                .pending_after
                .iter()
                .map(|(k, v)| format!("{v} after the {k}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        if counts.delivered != counts.total || arrived != counts.total || tally.repeats > 0 {
            outbox.problems.push(format!(
                "with an endpoint: {} deliveries written, {} delivered, {} failed, {} \
                 pending, {arrived} arrived, {} twice",
                counts.total, counts.delivered, counts.failed, counts.pending, tally.repeats
            ));
        }
        outbox.with_endpoint = Some(counts);
        outbox.with_endpoint_arrived = Some(arrived);
        outbox.with_endpoint_repeats = Some(tally.repeats);
        set_webhook_active(&server, &token, hook, &receiver.url("/webhook"), false)?;

        outbox.changes_without_last = Some(self.measure_changes(
            &server,
            label,
            &token,
            [without2_warm, without2],
            &format!("{changes}, endpoint off, c={narrow}"),
            results,
        )?);
        let wrk = self.wrk_register(&server);
        outbox.register_without_last = Some(self.measure(
            &server,
            label,
            &format!("{register}, endpoint off, c={narrow}"),
            wrk,
            results,
        )?);
        let after = seed::delivery_counts(&store, hook)?;
        if after.total != counts.total {
            outbox.problems.push(format!(
                "with the endpoint off: {} deliveries written (none expected)",
                after.total - counts.total
            ));
        }
        drop(store);
        Self::stop(
            server,
            &format!("cost {REGISTER_COST}, outbox: registrations, admin changes"),
            results,
        )
    }

    /// One run of admin changes: warmed up on the users of `files[0]`, measured on those of
    /// `files[1]`.
    fn measure_changes(
        &mut self,
        server: &Server,
        who: &str,
        token: &str,
        files: [&PathBuf; 2],
        label: &str,
        results: &mut ServerResults,
    ) -> Result<WrkReport> {
        let wrk = self.wrk_changes(server, token, files[0]);
        self.change_ids = Some(files[1].clone());
        let report = self.measure(server, who, label, wrk, results);
        self.change_ids = None;
        report
    }

    /// The ceiling at cost 4 holding `users` users: the admin (the first, so an admin)
    /// and `seed::seeded_email(1..users)`, registered over HTTP.
    fn ceiling_with_users(
        &self,
        phase: &str,
        users: u64,
        results: &mut ServerResults,
    ) -> Result<(Server, String)> {
        let server = self.start_ceiling(REGISTER_COST, phase)?;
        server.register(ADMIN_EMAIL, ADMIN_PASSWORD)?;
        seed_ceiling(&server, 1, users, results)?;
        let token = server.login(ADMIN_EMAIL, ADMIN_PASSWORD)?;
        Ok((server, token))
    }

    /// The ceiling's scenarios; `/healthz` and `/me` at 64 connections only when `wide`
    /// (without Gatehouse: with it, they are measured beside each backend instead).
    fn run_ceiling(&mut self, wide: bool) -> Result<ServerResults> {
        let label = "ceiling";
        let mut results = ServerResults::default();
        println!("\n== The ceiling (no database)");
        let wide = wide && self.settings.runs(Scenario::Wide);
        let narrow = self.settings.runs(Scenario::Narrow);
        if wide || narrow {
            let server = self.start_ceiling(LOGIN_COST, "cost12")?;
            server.register(ADMIN_EMAIL, ADMIN_PASSWORD)?;
            let token = server.login(ADMIN_EMAIL, ADMIN_PASSWORD)?;
            server.expect_ok("/api/auth/me", &token)?;
            let mut ran = Vec::new();
            if wide {
                let wrk = self.wrk_wide(&server, &token, Wide::Healthz);
                results.healthz = Some(self.measure(
                    &server,
                    label,
                    &format!("GET /healthz, c={WIDE_CONNECTIONS}"),
                    wrk,
                    &mut results,
                )?);
                let wrk = self.wrk_wide(&server, &token, Wide::Me);
                let me = self.measure(
                    &server,
                    label,
                    &format!("GET /me (no database), c={WIDE_CONNECTIONS}"),
                    wrk,
                    &mut results,
                )?;
                results.me.insert(0, me);
                ran.push("healthz, /me");
            }
            if narrow {
                // The ceiling has no throttle: one account, the same script.
                self.narrow_scenarios(label, &server, &token, (1, ADMIN_EMAIL), &mut results)?;
                ran.push("logins, flood");
            }
            Self::stop(
                server,
                &format!("cost {LOGIN_COST}: {}", ran.join(", ")),
                &mut results,
            )?;
        }

        // Cost 4: a page's worth of users in memory (its /users ignores limit and returns
        // them all), then as many users as Gatehouse lists unpaged, then registrations.
        let list = self.settings.runs(Scenario::List);
        let register = self.settings.runs(Scenario::Register);
        if !(list || register) {
            return Ok(results);
        }
        let (mut server, mut token) = self.ceiling_with_users("cost4", PAGE, &mut results)?;
        let mut held = PAGE;
        let mut ran = Vec::new();
        if list {
            server.expect_ok("/api/auth/users", &token)?;
            let wrk = self.wrk_list(&server, &token);
            results.list = Some(self.measure(
                &server,
                label,
                &format!("GET /users (all {PAGE} users), c={NARROW_CONNECTIONS}"),
                wrk,
                &mut results,
            )?);
            results.list_users = Some(PAGE);
            ran.push("GET /users (50)".to_owned());
            for size in self.settings.list_users.clone() {
                if self.settings.clear_refs() {
                    seed_ceiling(&server, held, size, &mut results)?;
                } else {
                    // The peak RSS cannot be reset: a fresh ceiling, filled again.
                    Self::stop(
                        server,
                        &format!("cost {REGISTER_COST}: {}", ran.join(", ")),
                        &mut results,
                    )?;
                    ran.clear();
                    (server, token) =
                        self.ceiling_with_users(&format!("cost4-{size}"), size, &mut results)?;
                }
                held = size;
                self.list_all(label, &server, &token, size, &mut results)?;
                ran.push(format!("GET /users (all {size})"));
            }
        }
        if register {
            let wrk = self.wrk_register(&server);
            results.register = Some(self.measure(
                &server,
                label,
                &format!(
                    "register at cost {REGISTER_COST}, {} users, c={NARROW_CONNECTIONS}",
                    group(held)
                ),
                wrk,
                &mut results,
            )?);
            results.register_users = Some(held);
            ran.push("registrations".to_owned());
        }
        Self::stop(
            server,
            &format!("cost {REGISTER_COST}: {}", ran.join(", ")),
            &mut results,
        )?;
        Ok(results)
    }
}

/// Registers `seed::seeded_email(n)` for `n` in `from..to` on the ceiling, over HTTP from 8
/// threads (each registration is a bcrypt hash at the ceiling's cost, 4 here: the ceiling
/// keeps its users in memory and has no other way in).
fn seed_ceiling(server: &Server, from: u64, to: u64, results: &mut ServerResults) -> Result<()> {
    const THREADS: u64 = 8;
    if from >= to {
        return Ok(());
    }
    let started = Instant::now();
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..THREADS)
            .map(|t| {
                scope.spawn(move || -> Result<()> {
                    let mut n = from + t;
                    while n < to {
                        server.register(&seed::seeded_email(n), ADMIN_PASSWORD)?;
                        n += THREADS;
                    }
                    Ok(())
                })
            })
            .collect();
        workers.into_iter().try_for_each(|worker| {
            worker
                .join()
                .map_err(|_| anyhow::anyhow!("a seeding thread panicked"))?
        })
    })
    .context("registering the ceiling's users")?;
    let seconds = started.elapsed().as_secs_f64();
    results.seed_s.insert(to, seconds);
    println!(
        "  {:<10} registered {} users over HTTP at cost {REGISTER_COST} ({to} in all) in {seconds:.1} s",
        "ceiling",
        to - from
    );
    Ok(())
}

/// The public URL of the MFA scenarios' server: passkeys need one that names a domain.
const MFA_PUBLIC_URL: &str = "https://gatehouse.bench.example.com";

/// The body of a seeded login's second step, with the code of the step 20 s from now.
fn second_step_body(login: &seed::WaitingLogin) -> Result<serde_json::Value> {
    let ahead = gatehouse_domain::now() + chrono::Duration::seconds(20);
    let code = login.secret.code_at_step(
        gatehouse_domain::totp::step_of(ahead),
        gatehouse_domain::totp::DIGITS,
    );
    Ok(serde_json::json!({"mfa_token": login.token.expose(), "code": code}))
}

/// Logs in as `email` (password [`ADMIN_PASSWORD`]) and registers a passkey made by a new
/// software authenticator (a synced passkey: its counter stays 0), which it returns; `None`
/// when the server has no passkeys (404).
fn register_passkey(server: &Server, email: &str) -> Result<Option<SoftAuthenticator>> {
    let token = server.login(email, ADMIN_PASSWORD)?;
    let start = server.post_empty_as("/api/auth/me/passkeys/register/start", &token)?;
    if start.status == 404 {
        return Ok(None);
    }
    let options = json_answer(&start, 200, "a passkey registration's start")?;
    let mut authenticator = SoftAuthenticator::new();
    authenticator.synced = true;
    let credential = authenticator
        .create(MFA_PUBLIC_URL, &options.to_string())
        .map_err(|e| anyhow::anyhow!("the authenticator refused to create: {e}"))?;
    let credential: serde_json::Value =
        serde_json::from_str(&credential).context("the authenticator's credential")?;
    let finish = server.post_json_as(
        "/api/auth/me/passkeys/register/finish",
        &token,
        &serde_json::json!({
            "name": "gatehouse-bench",
            "credential": credential,
            "challenge_id": options.get("challenge_id"),
        }),
    )?;
    json_answer(&finish, 201, "a passkey registration's finish")?;
    Ok(Some(authenticator))
}

/// Starts `n` passkey logins over HTTP and signs each with the authenticators in turn;
/// the finishes' bodies.
fn passkey_assertions(
    server: &Server,
    authenticators: &mut [SoftAuthenticator],
    n: usize,
) -> Result<Vec<String>> {
    let count = authenticators.len();
    let mut bodies = Vec::with_capacity(n);
    for i in 0..n {
        let start = server.post_empty("/api/auth/login/passkey/start")?;
        let options = json_answer(&start, 200, "a passkey login's start")?;
        let authenticator = authenticators
            .get_mut(i % count)
            .context("no authenticators")?;
        let assertion = authenticator
            .get(MFA_PUBLIC_URL, &options.to_string())
            .map_err(|e| anyhow::anyhow!("the authenticator refused to sign: {e}"))?;
        let assertion: serde_json::Value =
            serde_json::from_str(&assertion).context("the authenticator's assertion")?;
        bodies.push(
            serde_json::json!({
                "challenge_id": options.get("challenge_id"),
                "credential": assertion,
            })
            .to_string(),
        );
    }
    Ok(bodies)
}

/// `reply`'s JSON body when its status is `status`.
fn json_answer(reply: &server::Reply, status: u16, what: &str) -> Result<serde_json::Value> {
    if reply.status != status {
        bail!(
            "{what} answered {}: {}",
            reply.status,
            reply.body.chars().take(500).collect::<String>()
        );
    }
    serde_json::from_str(&reply.body).with_context(|| format!("{what}: not JSON"))
}

/// Logs in as `email` (a refresh account, password [`ADMIN_PASSWORD`]) and returns the
/// refresh token of the session it started, or `None` when the answer has none (a binary
/// from before sessions).
fn login_refresh_token(server: &Server, email: &str) -> Result<Option<String>> {
    let reply = server.post_form(
        "/api/auth/login",
        &[("username", email), ("password", ADMIN_PASSWORD)],
    )?;
    if reply.status != 200 {
        bail!(
            "logging in as {email} answered {}: {}",
            reply.status,
            reply.body.chars().take(500).collect::<String>()
        );
    }
    let body: serde_json::Value =
        serde_json::from_str(&reply.body).context("the login's answer is not JSON")?;
    Ok(body
        .get("refresh_token")
        .and_then(serde_json::Value::as_str)
        .map(str::to_owned))
}

/// Adds a webhook endpoint at `url` subscribed to every event, as the admin whose token
/// this is; its id, or `None` when the server has no webhooks (404: a binary from before
/// them).
fn create_webhook(server: &Server, token: &str, url: &str) -> Result<Option<i64>> {
    let reply = server.post_json_as(
        "/api/auth/webhooks",
        token,
        &serde_json::json!({"url": url, "events": ["*"],
                            "description": "gatehouse-bench: the receiver"}),
    )?;
    match reply.status {
        201 => {
            let body: serde_json::Value =
                serde_json::from_str(&reply.body).context("the new endpoint")?;
            body.get("id")
                .and_then(serde_json::Value::as_i64)
                .map(Some)
                .context("no id in the new endpoint")
        }
        404 => Ok(None),
        status => bail!(
            "POST /api/auth/webhooks answered {status}: {}",
            reply.body.chars().take(500).collect::<String>()
        ),
    }
}

/// Turns webhook endpoint `id` (at `url`, subscribed to every event) on or off.
fn set_webhook_active(
    server: &Server,
    token: &str,
    id: i64,
    url: &str,
    active: bool,
) -> Result<()> {
    let reply = server.put_json_as(
        &format!("/api/auth/webhooks/{id}"),
        token,
        &serde_json::json!({"url": url, "events": ["*"], "active": active,
                            "description": "gatehouse-bench: the receiver"}),
    )?;
    if reply.status != 200 {
        bail!(
            "PUT /api/auth/webhooks/{id} answered {}: {}",
            reply.status,
            reply.body.chars().take(500).collect::<String>()
        );
    }
    Ok(())
}

/// Removes webhook endpoint `id` (and its deliveries).
fn delete_webhook(server: &Server, token: &str, id: i64) -> Result<()> {
    let reply = server.delete_as(&format!("/api/auth/webhooks/{id}"), token)?;
    if !(200..300).contains(&reply.status) {
        bail!(
            "DELETE /api/auth/webhooks/{id} answered {}: {}",
            reply.status,
            reply.body.chars().take(500).collect::<String>()
        );
    }
    Ok(())
}

/// Waits (at most `timeout`) until no delivery of endpoint `webhook` is pending, read
/// through storage; how its deliveries then stand.
fn wait_recorded(db: &BenchDatabase, webhook: i64, timeout: Duration) -> Result<DeliveryCounts> {
    let store = db.open()?;
    let deadline = Instant::now() + timeout;
    loop {
        let counts = seed::delivery_counts(&store, webhook)?;
        if counts.pending == 0 || Instant::now() > deadline {
            return Ok(counts);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// How many sessions reuse detection ended (audit entries `refresh_token_reused`), as the
/// admin whose token `admin` is sees them.
fn reuse_detections(server: &Server, admin: &str) -> Result<u64> {
    get_json_array(server, "/api/auth/audit?action=refresh_token_reused", admin).map(|(n, _)| n)
}

/// `GET path` with `token`, which must answer 200 with a JSON array: how many items it
/// lists, and the body's size in bytes.
fn get_json_array(server: &Server, path: &str, token: &str) -> Result<(u64, u64)> {
    let reply = server.get(path, Some(token))?;
    if reply.status != 200 {
        bail!(
            "GET {path} answered {}: {}",
            reply.status,
            reply.body.chars().take(500).collect::<String>()
        );
    }
    let items = serde_json::from_str::<Vec<serde::de::IgnoredAny>>(&reply.body)
        .with_context(|| format!("GET {path} is not a JSON array"))?;
    Ok((items.len() as u64, reply.body.len() as u64))
}

/// The durable-write probe (see [`probe`]) in `dir`, the SQLite database's directory, with
/// no server running; prints its line.
fn durable_write_probe(label: &str, dir: &Path) -> Result<DurableProbe> {
    let before = (builds_running(), CpuSample::take(None)?);
    let mut probe =
        probe::durable_commits(dir, PROBE_DURATION).context("the durable-write probe")?;
    let others = before.1.others_since(&CpuSample::take(None)?);
    probe.other_cpu_cores = Some(others);
    let mut note = String::new();
    if others > DISTURBED_CORES || !before.0.is_empty() {
        let _ = write!(note, "  [WARNING: other processes took {others:.2} cores]");
    }
    println!(
        "  {label:<10} {:<48} {}/s, p50 {}, p99 {} ({} commits in {:.1} s, {}){note}",
        "durable single-row commits (probe)",
        format_rate(probe.commits_per_s),
        format_ms(probe.p50_ms),
        format_ms(probe.p99_ms),
        probe.commits,
        probe.seconds,
        probe.filesystem
    );
    Ok(probe)
}

/// Log lines `server` writes per request: it is asked for `/healthz` [`ACCESS_PROBES`]
/// times and its log is counted (about 1 with an access line per request).
fn log_lines_per_request(server: &Server) -> Result<f64> {
    server.wait_idle()?;
    let offset = server.log_len();
    for _ in 0..ACCESS_PROBES {
        let reply = server.get("/healthz", None)?;
        if reply.status != 200 {
            bail!("GET /healthz answered {}", reply.status);
        }
    }
    // Lines are written before the response goes out; a moment for a buffered writer.
    std::thread::sleep(Duration::from_millis(200));
    Ok(server.log_lines_since(offset)? as f64 / ACCESS_PROBES as f64)
}

/// Refuses a variant that did not take: `GATEHOUSE_ACCESS_LOG=off` on a binary that still
/// writes a line per request (one from before the setting ignores the variable). Says so
/// when the defaults write no access line.
fn check_variant(variant: Variant, lines_per_request: f64) -> Result<()> {
    match variant {
        Variant::AccessLogOff if lines_per_request >= 0.5 => bail!(
            "GATEHOUSE_ACCESS_LOG=off did not take: with it the server still wrote {lines_per_request:.2} \
             log lines per request, as with its access log on (a gatehouse binary from before \
             that setting ignores the variable). Measure this binary with --variants default,warn."
        ),
        Variant::Default if lines_per_request < 0.5 => {
            println!(
                "  note: at its defaults this server wrote {lines_per_request:.2} log lines per request \
                 (no access line?)"
            );
            Ok(())
        }
        _ => Ok(()),
    }
}

/// 1234567 → "1.2 MiB".
fn format_bytes(bytes: u64) -> String {
    let bytes = bytes as f64;
    if bytes >= 1024.0 * 1024.0 {
        format!("{:.1} MiB", bytes / 1024.0 / 1024.0)
    } else if bytes >= 1024.0 {
        format!("{:.0} KiB", bytes / 1024.0)
    } else {
        format!("{bytes:.0} B")
    }
}

/// Compilers and linkers running now, by name (another build skews every figure on 2
/// cores).
fn builds_running() -> BTreeMap<String, usize> {
    const BUILDERS: [&str; 7] = [
        "rustc",
        "cargo",
        "cc1",
        "cc1plus",
        "ld",
        "clippy-driver",
        "rustdoc",
    ];
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for entry in entries.flatten() {
            let name = entry.file_name();
            if !name.to_string_lossy().bytes().all(|b| b.is_ascii_digit()) {
                continue;
            }
            let Ok(comm) = std::fs::read_to_string(entry.path().join("comm")) else {
                continue;
            };
            let comm = comm.trim();
            if BUILDERS.contains(&comm) {
                *counts.entry(comm.to_owned()).or_default() += 1;
            }
        }
    }
    counts
}

fn describe_builds(builds: &BTreeMap<String, usize>) -> String {
    builds
        .iter()
        .map(|(name, n)| format!("{name}×{n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Other processes' CPU above this (in cores) marks a measurement as disturbed.
const DISTURBED_CORES: f64 = 0.1;

/// Records a measurement that other processes disturbed (they took more than
/// [`DISTURBED_CORES`], or a build ran before or after it); returns a note for its line.
fn interference(
    label: &str,
    before: BTreeMap<String, usize>,
    others: f64,
    results: &mut ServerResults,
) -> String {
    let mut builds = before;
    for (name, n) in builds_running() {
        let count = builds.entry(name).or_default();
        *count = (*count).max(n);
    }
    if builds.is_empty() && others <= DISTURBED_CORES {
        return String::new();
    }
    let mut what = format!("other processes took {others:.2} cores");
    if !builds.is_empty() {
        let _ = write!(what, "; builds running: {}", describe_builds(&builds));
    }
    results.interference.push(format!("{label}: {what}"));
    format!("  [WARNING: {what}]")
}

fn warm_up(wrk: &Wrk) -> Result<()> {
    wrk.run().context("warming up").map(drop)
}

fn list_label(users: u64) -> String {
    format!(
        "GET /users?limit={PAGE}, {} users, c={NARROW_CONNECTIONS}",
        group(users)
    )
}

/// 100000 → "100 000".
fn group(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(' ');
        }
        out.push(c);
    }
    out
}

fn random_hex(bytes: usize) -> Result<String> {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).context("system randomness")?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

const MIB: f64 = 1024.0;

/// The servers in table order.
const SERVERS: [&str; 3] = ["sqlite", "postgres", "ceiling"];

fn checks(results: &Results) -> Vec<Check> {
    let bound = results.bcrypt_bound.logins_per_s;
    let ceiling = results.servers.get("ceiling");
    let ceiling_me = ceiling.and_then(|c| c.me.get(&0));
    let small = results.settings.users.first().copied().unwrap_or(100);
    let large = results.settings.users.last().copied().unwrap_or(100_000);
    let servers: Vec<(&str, &ServerResults)> = SERVERS
        .iter()
        .filter_map(|k| results.servers.get(*k).map(|s| (*k, s)))
        .collect();
    let gatehouse = || servers.iter().filter(|(k, _)| *k != "ceiling");
    let wide = WIDE_CONNECTIONS;
    let narrow = NARROW_CONNECTIONS;
    let mut checks = Vec::new();

    for (key, server) in gatehouse() {
        let healthz = server.healthz.as_ref();
        // The ceiling measured next to it when there is one, else the ceiling's own run.
        let (ceiling_rps, mut runs) = match server.ceiling_healthz_rps() {
            Some(rps) => (Some(rps), server.ceiling_healthz.iter().map(Some).collect()),
            None => {
                let own = ceiling.and_then(|c| c.healthz.as_ref());
                (own.map(|c| c.rps), vec![own])
            }
        };
        runs.push(healthz);
        checks.push(Check::new(
            &format!("/healthz ÷ ceiling /healthz (c={wide})"),
            key,
            ">=",
            0.8,
            "×",
            healthz.zip(ceiling_rps).map(|(h, c)| h.rps / c),
            &runs,
        ));
    }
    for (key, server) in gatehouse() {
        let threshold = if *key == "sqlite" { 0.75 } else { 0.6 };
        let me = server.me.get(&small);
        let (ceiling_rps, mut runs) = match server.ceiling_me_rps() {
            Some(rps) => (Some(rps), server.ceiling_me.iter().map(Some).collect()),
            None => (ceiling_me.map(|c| c.rps), vec![ceiling_me]),
        };
        runs.push(me);
        checks.push(Check::new(
            &format!("/me, {} users ÷ ceiling /me (c={wide})", group(small)),
            key,
            ">=",
            threshold,
            "×",
            me.zip(ceiling_rps).map(|(m, c)| m.rps / c),
            &runs,
        ));
    }
    // One connection: SQLite reads a lone lookup inline (issue 13); the defaults must not
    // make it slower. Within one run there is no inline-read switch to compare with, so the
    // ratio to the ceiling's /me at one connection is checked against an earlier run's.
    let ceiling_single = ceiling.and_then(|c| c.me_single.as_ref());
    for (key, server) in gatehouse() {
        let single = server.me_single.as_ref();
        let ratio = single.zip(ceiling_single).map(|(s, c)| s.rps / c.rps);
        checks.push(Check::info(
            "/me c=1 ÷ ceiling /me c=1",
            key,
            "×",
            ratio,
            &[single, ceiling_single],
        ));
        if *key != "sqlite" {
            continue;
        }
        let against = results
            .baseline
            .as_ref()
            .map(|b| b.sqlite_me_single_rps / b.ceiling_me_single_rps);
        let mut check = Check::new(
            "/me c=1 ÷ ceiling c=1, ÷ the same in --baseline",
            key,
            ">=",
            1.0,
            "×",
            ratio.zip(against).map(|(now, then)| now / then),
            &[single, ceiling_single],
        );
        match &results.baseline {
            None => check.note = "give --baseline RESULTS.json of the tree before".into(),
            Some(b) if check.note.is_empty() => {
                check.note = format!(
                    "baseline {}: {:.3}×",
                    b.started_at,
                    b.sqlite_me_single_rps / b.ceiling_me_single_rps
                );
            }
            Some(_) => {}
        }
        checks.push(check);
    }
    // The access log: the defaults against the same with GATEHOUSE_ACCESS_LOG=off (at most
    // 10 % slower), and RUST_LOG=warn (what the harness used to run) for reference.
    for (key, server) in gatehouse() {
        for (variant, threshold) in [(Variant::AccessLogOff, Some(0.9)), (Variant::Warn, None)] {
            let Some(other) = server.variant(variant) else {
                continue;
            };
            for (what, default, theirs) in [
                ("/healthz", server.healthz.as_ref(), other.healthz.as_ref()),
                ("/me", server.me.get(&small), other.me.as_ref()),
            ] {
                let target = format!("{what} defaults ÷ {} (c={wide})", variant.label());
                let ratio = default.zip(theirs).map(|(d, t)| d.rps / t.rps);
                checks.push(match threshold {
                    Some(threshold) => Check::new(
                        &target,
                        key,
                        ">=",
                        threshold,
                        "×",
                        ratio,
                        &[default, theirs],
                    ),
                    None => Check::info(&target, key, "×", ratio, &[default, theirs]),
                });
            }
        }
    }
    for (key, server) in gatehouse() {
        let (me_small, me_large) = (server.me.get(&small), server.me.get(&large));
        checks.push(Check::new(
            &format!("/me, {} users ÷ /me, {} users", group(large), group(small)),
            key,
            ">=",
            0.9,
            "×",
            me_small.zip(me_large).map(|(s, l)| l.rps / s.rps),
            &[me_small, me_large],
        ));
    }
    for (key, server) in &servers {
        let login = server.login.as_ref();
        checks.push(Check::new(
            &format!("logins/s at cost {LOGIN_COST} alone ÷ bcrypt bound"),
            key,
            ">=",
            0.9,
            "×",
            login.map(|l| l.rps / bound),
            &[login],
        ));
    }
    for (key, server) in &servers {
        let (flood_me, me_alone) = (server.flood_me.as_ref(), server.me_narrow.as_ref());
        checks.push(Check::new(
            &format!("flood: /me ÷ /me alone (c={narrow} each)"),
            key,
            ">=",
            0.5,
            "×",
            flood_me.zip(me_alone).map(|(f, a)| f.rps / a.rps),
            &[flood_me, me_alone],
        ));
    }
    for (key, server) in &servers {
        let flood_me = server.flood_me.as_ref();
        checks.push(Check::new(
            "flood: /me p99",
            key,
            "<",
            20.0,
            "ms",
            flood_me.map(|f| f.p99_ms),
            &[flood_me],
        ));
    }
    for (key, server) in &servers {
        let flood_login = server.flood_login.as_ref();
        checks.push(Check::new(
            "flood: logins/s ÷ bcrypt bound",
            key,
            ">=",
            0.35,
            "×",
            flood_login.map(|f| f.rps / bound),
            &[flood_login],
        ));
    }
    for (key, server) in &servers {
        let list = server.list.as_ref();
        checks.push(Check::new(
            &format!(
                "GET /users?limit={PAGE} p99, {} users",
                group(server.list_users.unwrap_or(large))
            ),
            key,
            "<",
            10.0,
            "ms",
            list.map(|l| l.p99_ms),
            &[list],
        ));
    }
    // The unpaged listing: up to 2 000 users it has targets of its own (throughput beside
    // the ceiling holding as many users, p99, peak RSS); above, a peak RSS target and the
    // rest for context.
    for &users in &results.settings.list_users {
        let small_list = users <= 2_000;
        let ceiling_list = ceiling.and_then(|c| c.list_all.get(&users));
        let name = format!("GET /users (all {})", group(users));
        for (key, server) in gatehouse() {
            let list = server.list_all.get(&users);
            let ratio = list.zip(ceiling_list).map(|(l, c)| l.rps / c.rps);
            let target = format!("{name} ÷ ceiling (c={narrow})");
            checks.push(if small_list {
                Check::new(&target, key, ">=", 0.3, "×", ratio, &[list, ceiling_list])
            } else {
                Check::info(&target, key, "×", ratio, &[list, ceiling_list])
            });
        }
        for (key, server) in &servers {
            let list = server.list_all.get(&users);
            let target = format!("{name} p99");
            let p99 = list.map(|l| l.p99_ms);
            checks.push(if small_list {
                Check::new(&target, key, "<", 10.0, "ms", p99, &[list])
            } else {
                Check::info(&target, key, "ms", p99, &[list])
            });
        }
        for (key, server) in &servers {
            let peak = server.list_all.get(&users).and_then(|l| l.peak_rss_kib);
            checks.push(Check::new(
                &format!("{name}: peak RSS"),
                key,
                "<",
                if small_list { 25.0 } else { 40.0 },
                "MiB",
                peak.map(|k| k as f64 / MIB),
                &[],
            ));
        }
    }
    // Refreshes: one write transaction each. Beside registrations at cost 4 (a write
    // each too, plus a hash), and on SQLite beside the machine's bound for a durable write
    // (one commit after another, each waiting for its fsync, as SQLite's writes do).
    for (key, server) in gatehouse() {
        let (refresh, register) = (server.refresh.as_ref(), server.register.as_ref());
        checks.push(Check::info(
            &format!("refresh ÷ register at cost {REGISTER_COST} (c={narrow} each)"),
            key,
            "×",
            refresh.zip(register).map(|(f, r)| f.rps / r.rps),
            &[refresh, register],
        ));
    }
    for (key, server) in gatehouse() {
        if *key != "sqlite" {
            continue;
        }
        let refresh = server.refresh.as_ref();
        let mut check = Check::new(
            "refresh ÷ durable-write bound (probe)",
            key,
            ">=",
            0.5,
            "×",
            refresh
                .zip(server.durable_probe.as_ref())
                .map(|(f, p)| f.rps / p.commits_per_s),
            &[refresh],
        );
        if let (Some(probe), true) = (&server.durable_probe, check.note.is_empty()) {
            check.note = format!(
                "bound {}/s ({})",
                format_rate(probe.commits_per_s),
                probe.filesystem
            );
        }
        checks.push(check);
    }
    // The outbox: writes with an endpoint subscribed to every event (each writes an event
    // and a delivery, which the dispatcher sends) against the same without one, two runs
    // each side (without, with, with, without).
    for (key, server) in gatehouse() {
        let outbox = server.outbox.as_ref();
        let runs = |pick: fn(&OutboxResults) -> [&Option<WrkReport>; 4]| {
            outbox.map_or([None; 4], |o| pick(o).map(Option::as_ref))
        };
        for (what, [without, with, with_second, without_last]) in [
            (
                "register",
                runs(|o| {
                    [
                        &o.register_without,
                        &o.register_with,
                        &o.register_with_second,
                        &o.register_without_last,
                    ]
                }),
            ),
            (
                "admin changes",
                runs(|o| {
                    [
                        &o.changes_without,
                        &o.changes_with,
                        &o.changes_with_second,
                        &o.changes_without_last,
                    ]
                }),
            ),
        ] {
            checks.push(Check::new(
                &format!("outbox: {what}, with ÷ without endpoint (2 runs each)"),
                key,
                ">=",
                0.9,
                "×",
                OutboxResults::ratio([with, with_second], [without, without_last]),
                &[without, with, with_second, without_last],
            ));
        }
    }
    for (key, server) in gatehouse() {
        let outbox = server.outbox.as_ref();
        let drain = outbox.and_then(|o| o.drain.as_ref());
        let alone = outbox.and_then(|o| o.receiver.as_ref());
        let mut check = Check::info(
            "outbox: drain ÷ the receiver alone",
            key,
            "×",
            drain.zip(alone).map(|(d, r)| d.events_per_s / r.rps),
            &[],
        );
        if let (Some(d), Some(r)) = (drain, alone) {
            check.note = format!(
                "{}/s against {}/s",
                format_rate(d.events_per_s),
                format_rate(r.rps)
            );
        }
        checks.push(check);
        let latency = outbox.and_then(|o| o.latency.as_ref());
        checks.push(Check::info(
            "outbox: commit → delivery p99, idle",
            key,
            "ms",
            latency.map(|l| l.commit_p99_ms),
            &[],
        ));
    }
    // Multi-factor sign-in: the second step costs no bcrypt, a passkey login one signature
    // verification; both beside the password login they replace or follow.
    for (key, server) in gatehouse() {
        let mfa = server.mfa.as_ref();
        let login = mfa.and_then(|m| m.login.as_ref());
        for (target, other) in [
            (
                "MFA: TOTP second step ÷ password login at cost 12",
                mfa.and_then(|m| m.second_step.as_ref()),
            ),
            (
                "MFA: passkey finish ÷ password login at cost 12",
                mfa.and_then(|m| m.passkey_finish.as_ref()),
            ),
        ] {
            checks.push(Check::info(
                target,
                key,
                "×",
                other.zip(login).map(|(o, l)| o.rps / l.rps),
                &[other, login],
            ));
        }
    }
    for (key, server) in &servers {
        checks.push(Check::new(
            "peak RSS (whole run)",
            key,
            "<",
            40.0,
            "MiB",
            server.peak_rss_kib().map(|k| k as f64 / MIB),
            &[],
        ));
    }
    // The ceiling is the yardstick, not the subject: its figures are shown for reference.
    for check in &mut checks {
        if check.server == "ceiling" {
            check.reference = true;
        }
    }
    checks
}

fn server_label(key: &str) -> &str {
    match key {
        "sqlite" => "SQLite",
        "postgres" => "PostgreSQL",
        "ceiling" => "ceiling",
        other => other,
    }
}

fn cell(report: Option<&WrkReport>) -> String {
    match report {
        None => "–".into(),
        Some(r) => {
            let mut text = format!("{}/s, p99 {}", format_rate(r.rps), format_ms(r.p99_ms));
            if r.requests == 0 {
                text = "FAILED (no request completed)".into();
            } else if r.failed() {
                let _ = write!(
                    text,
                    " FAILED ({} non-2xx, {} socket errors)",
                    r.non_2xx, r.socket_errors
                );
            }
            text
        }
    }
}

/// The durable-write probe's cell: its rate, its p99 and the file system.
fn probe_cell(probe: Option<&DurableProbe>) -> String {
    probe.map_or_else(
        || "–".into(),
        |p| {
            format!(
                "{}/s, p99 {} ({})",
                format_rate(p.commits_per_s),
                format_ms(p.p99_ms),
                p.filesystem
            )
        },
    )
}

/// The outbox's commit-to-delivery cell.
fn latency_cell(latency: Option<&OutboxLatency>) -> String {
    latency.map_or_else(
        || "–".into(),
        |l| {
            format!(
                "p50 {}, p99 {} (from the send: p50 {}, p99 {})",
                format_ms(l.commit_p50_ms),
                format_ms(l.commit_p99_ms),
                format_ms(l.sent_p50_ms),
                format_ms(l.sent_p99_ms)
            )
        },
    )
}

/// The backlog's drain cell: its rate, and what the deliveries log and the receiver said.
fn drain_cell(drain: Option<&OutboxDrain>) -> String {
    drain.map_or_else(
        || "–".into(),
        |d| {
            let mut text = format!(
                "{}/s ({:.2} s; {} delivered, {} twice)",
                format_rate(d.events_per_s),
                d.seconds,
                group(d.deliveries.delivered),
                d.repeats
            );
            if d.missing > 0 || d.deliveries.delivered != d.events {
                let _ = write!(text, " FAILED ({} never arrived)", d.missing);
            }
            text
        },
    )
}

/// The ceiling's measurements beside every backend (`pick` chooses which), in order.
fn beside_ceiling(
    results: &Results,
    pick: impl Fn(&ServerResults) -> &Vec<WrkReport>,
) -> Vec<WrkReport> {
    results
        .servers
        .iter()
        .filter(|(k, _)| *k != "ceiling")
        .flat_map(|(_, s)| pick(s).iter().cloned())
        .collect()
}

/// A listing's cell: its figures and its peak RSS.
fn cell_with_rss(report: Option<&WrkReport>) -> String {
    let mut text = cell(report);
    if let Some(kib) = report.and_then(|r| r.peak_rss_kib) {
        let _ = write!(text, ", peak RSS {:.1} MiB", kib as f64 / MIB);
    }
    text
}

/// The table's rows: a scenario and each server's figures.
fn table_rows(results: &Results) -> (Vec<String>, Vec<(String, Vec<String>)>) {
    let keys: Vec<&String> = ["sqlite", "postgres", "ceiling"]
        .iter()
        .filter_map(|k| results.servers.get_key_value(*k).map(|(k, _)| k))
        .collect();
    let header = keys.iter().map(|k| server_label(k).to_owned()).collect();
    let row = |name: String, f: &dyn Fn(&str, &ServerResults) -> String| {
        (
            name,
            keys.iter()
                .map(|k| f(k, &results.servers[*k]))
                .collect::<Vec<_>>(),
        )
    };
    let beside = |reports: &[WrkReport]| match mean_rps(reports) {
        Some(rps) => {
            let each: Vec<String> = reports.iter().map(|r| format_rate(r.rps)).collect();
            format!("{}/s (mean of {})", format_rate(rps), each.join(" and "))
        }
        None => "–".into(),
    };
    let variants: Vec<Variant> = results.settings.variants_beside().collect();
    let wide = WIDE_CONNECTIONS;
    let narrow = NARROW_CONNECTIONS;
    let small = results.settings.smallest();
    // The ceiling's own /healthz and /me at 64 connections are those measured beside the
    // backends (it runs them alone only without Gatehouse).
    let ceiling_wide = |own: Option<&WrkReport>, beside_all: &[WrkReport]| match own {
        Some(report) => cell(Some(report)),
        None => match mean_rps(beside_all) {
            Some(rps) => format!(
                "{}/s (mean of the {} beside)",
                format_rate(rps),
                beside_all.len()
            ),
            None => "–".into(),
        },
    };
    let all_healthz = beside_ceiling(results, |s| &s.ceiling_healthz);
    let all_me = beside_ceiling(results, |s| &s.ceiling_me);
    let mut rows = vec![row(format!("1. GET /healthz (c={wide})"), &|k, s| {
        if k == "ceiling" {
            ceiling_wide(s.healthz.as_ref(), &all_healthz)
        } else {
            cell(s.healthz.as_ref())
        }
    })];
    rows.push(row(
        format!("   ceiling GET /healthz beside it (c={wide})"),
        &|_, s| beside(&s.ceiling_healthz),
    ));
    for &variant in &variants {
        rows.push(row(
            format!("   GET /healthz, {} (c={wide})", variant.label()),
            &|_, s| cell(s.variant(variant).and_then(|v| v.healthz.as_ref())),
        ));
    }
    for &n in &results.settings.users {
        rows.push(row(
            format!("2. GET /me, {} users (c={wide})", group(n)),
            &|k, s| {
                if k == "ceiling" {
                    ceiling_wide(s.me.get(&0), &all_me)
                } else {
                    cell(s.me.get(&n))
                }
            },
        ));
    }
    rows.push(row(
        format!("   ceiling GET /me beside it (c={wide})"),
        &|_, s| beside(&s.ceiling_me),
    ));
    for &variant in &variants {
        rows.push(row(
            format!(
                "   GET /me, {} users, {} (c={wide})",
                group(small),
                variant.label()
            ),
            &|_, s| cell(s.variant(variant).and_then(|v| v.me.as_ref())),
        ));
    }
    rows.push(row(format!("   GET /me alone (c={narrow})"), &|_, s| {
        cell(s.me_narrow.as_ref())
    }));
    rows.push(row("   GET /me one at a time (c=1)".into(), &|_, s| {
        cell(s.me_single.as_ref())
    }));
    rows.push(row(
        format!(
            "3. login, cost {LOGIN_COST} (c={narrow}); bound {:.2}/s",
            results.bcrypt_bound.logins_per_s
        ),
        &|_, s| cell(s.login.as_ref()),
    ));
    rows.push(row(format!("4. flood: GET /me (c={narrow})"), &|_, s| {
        cell(s.flood_me.as_ref())
    }));
    rows.push(row(
        format!("   flood: login, cost {LOGIN_COST} (c={narrow})"),
        &|_, s| cell(s.flood_login.as_ref()),
    ));
    rows.push(row(
        format!(
            "5. GET /users?limit={PAGE}, {} users (c={narrow})",
            group(results.settings.largest())
        ),
        &|_, s| cell(s.list.as_ref()),
    ));
    for &n in &results.settings.list_users {
        rows.push(row(
            format!("   GET /users (all), {} users (c={narrow})", group(n)),
            &|_, s| cell_with_rss(s.list_all.get(&n)),
        ));
    }
    rows.push(row(
        format!("   register, cost {REGISTER_COST} (c={narrow})"),
        &|_, s| cell(s.register.as_ref()),
    ));
    rows.push(row(
        format!("   register with an invitation, cost {REGISTER_COST} (c={narrow})"),
        &|_, s| cell(s.register_invited.as_ref()),
    ));
    rows.push(row(
        format!("   refresh (POST /token) (c={narrow})"),
        &|_, s| cell(s.refresh.as_ref()),
    ));
    rows.push(row(
        "   durable single-row commits (probe, 1 thread)".into(),
        &|_, s| probe_cell(s.durable_probe.as_ref()),
    ));
    rows.push(row("6. peak RSS (whole run)".into(), &|_, s| {
        s.peak_rss_kib()
            .map_or_else(|| "–".into(), |k| format!("{:.1} MiB", k as f64 / MIB))
    }));
    fn outbox(s: &ServerResults) -> Option<&OutboxResults> {
        s.outbox.as_ref()
    }
    rows.push(row(
        format!(
            "7. outbox: commit → delivery, idle ({} tests one at a time)",
            results.settings.outbox_tests
        ),
        &|_, s| latency_cell(outbox(s).and_then(|o| o.latency.as_ref())),
    ));
    rows.push(row(
        format!(
            "   outbox: drain of {} queued events (from the server's start)",
            group(results.settings.outbox_backlog)
        ),
        &|_, s| drain_cell(outbox(s).and_then(|o| o.drain.as_ref())),
    ));
    rows.push(row(
        format!("   outbox: the receiver alone (c={narrow}, keep-alive)"),
        &|_, s| {
            outbox(s)
                .and_then(|o| o.receiver.as_ref())
                .map_or_else(|| "–".into(), |r| format!("{}/s", format_rate(r.rps)))
        },
    ));
    // In the order they ran (see `Bench::outbox_writes`).
    rows.push(row(
        format!("   outbox: register, cost {REGISTER_COST}, no endpoint (c={narrow})"),
        &|_, s| cell(outbox(s).and_then(|o| o.register_without.as_ref())),
    ));
    rows.push(row(
        format!("   outbox: admin changes (PUT status), no endpoint (c={narrow})"),
        &|_, s| cell(outbox(s).and_then(|o| o.changes_without.as_ref())),
    ));
    rows.push(row(
        format!("   outbox: admin changes (PUT status), with an endpoint (c={narrow})"),
        &|_, s| cell(outbox(s).and_then(|o| o.changes_with.as_ref())),
    ));
    rows.push(row(
        format!("   outbox: register, cost {REGISTER_COST}, with an endpoint (c={narrow})"),
        &|_, s| cell(outbox(s).and_then(|o| o.register_with.as_ref())),
    ));
    rows.push(row(
        format!("   outbox: register, cost {REGISTER_COST}, with an endpoint, 2nd (c={narrow})"),
        &|_, s| cell(outbox(s).and_then(|o| o.register_with_second.as_ref())),
    ));
    rows.push(row(
        format!("   outbox: admin changes (PUT status), with an endpoint, 2nd (c={narrow})"),
        &|_, s| cell(outbox(s).and_then(|o| o.changes_with_second.as_ref())),
    ));
    rows.push(row(
        format!("   outbox: admin changes (PUT status), endpoint off (c={narrow})"),
        &|_, s| cell(outbox(s).and_then(|o| o.changes_without_last.as_ref())),
    ));
    rows.push(row(
        format!("   outbox: register, cost {REGISTER_COST}, endpoint off (c={narrow})"),
        &|_, s| cell(outbox(s).and_then(|o| o.register_without_last.as_ref())),
    ));
    fn mfa(s: &ServerResults) -> Option<&MfaResults> {
        s.mfa.as_ref()
    }
    rows.push(row(
        format!("8. MFA: login at cost {LOGIN_COST}, password only (c={narrow})"),
        &|_, s| cell(mfa(s).and_then(|m| m.login.as_ref())),
    ));
    rows.push(row(
        format!("   MFA: TOTP second step (POST /login/mfa) (c={narrow})"),
        &|_, s| cell(mfa(s).and_then(|m| m.second_step.as_ref())),
    ));
    rows.push(row(
        format!("   MFA: passkey login, start (c={narrow})"),
        &|_, s| cell(mfa(s).and_then(|m| m.passkey_start.as_ref())),
    ));
    rows.push(row(
        format!("   MFA: passkey login, finish (c={narrow})"),
        &|_, s| cell(mfa(s).and_then(|m| m.passkey_finish.as_ref())),
    ));
    (header, rows)
}

fn text_report(results: &Results) -> String {
    let (header, rows) = table_rows(results);
    let first = rows
        .iter()
        .map(|(n, _)| n.chars().count())
        .max()
        .unwrap_or(0);
    let widths: Vec<usize> = (0..header.len())
        .map(|i| {
            rows.iter()
                .map(|(_, cells)| cells[i].chars().count())
                .chain([header[i].chars().count()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    let _ = write!(out, "{:<first$}", "scenario");
    for (h, w) in header.iter().zip(&widths) {
        let _ = write!(out, " | {h:<w$}");
    }
    out.push('\n');
    for (name, cells) in &rows {
        let _ = write!(out, "{name:<first$}");
        for (c, w) in cells.iter().zip(&widths) {
            let _ = write!(out, " | {c:<w$}");
        }
        out.push('\n');
    }
    out.push_str("\nTargets (ratios within this run):\n");
    for check in &results.checks {
        let _ = writeln!(
            out,
            "  {:<54} {:<11} {:>10}  (target {:<9}) {}{}",
            check.target,
            server_label(&check.server),
            check.measured_text(),
            check.threshold_text(),
            check.verdict(),
            if check.note.is_empty() {
                String::new()
            } else {
                format!(" — {}", check.note)
            },
        );
    }
    out
}

fn markdown_report(results: &Results) -> String {
    let (header, rows) = table_rows(results);
    let mut out = String::new();
    let _ = writeln!(out, "| scenario | {} |", header.join(" | "));
    let _ = writeln!(out, "|---|{}", "---|".repeat(header.len()));
    for (name, cells) in &rows {
        let _ = writeln!(
            out,
            "| {} | {} |",
            name.trim_start_matches(|c: char| c.is_ascii_digit() || c == '.' || c == ' '),
            cells.join(" | ")
        );
    }
    let _ = writeln!(
        out,
        "\n| target | server | measured | target | verdict |\n|---|---|---|---|---|"
    );
    for check in &results.checks {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {}{} |",
            check.target,
            server_label(&check.server),
            check.measured_text(),
            check.threshold_text(),
            check.verdict(),
            if check.note.is_empty() {
                String::new()
            } else {
                format!(" ({})", check.note)
            },
        );
    }
    out
}

/// Writes the chart of `/me` against the number of users; `false` when there is no `/me`
/// figure to chart (`--only` without `wide`): then nothing is written.
fn write_chart(results: &Results, path: &Path) -> Result<bool> {
    let series: Vec<Series> = ["sqlite", "postgres"]
        .iter()
        .filter_map(|k| results.servers.get(*k).map(|s| (k, s)))
        .map(|(k, s)| Series {
            name: format!("Gatehouse on {}", server_label(k)),
            points: s.me.iter().map(|(&users, r)| (users, r.rps)).collect(),
        })
        .filter(|s| !s.points.is_empty())
        .collect();
    if series.is_empty() {
        return Ok(false);
    }
    let ceiling = results
        .servers
        .get("ceiling")
        .and_then(|c| c.me.get(&0))
        .map(|r| r.rps)
        .or_else(|| mean_rps(&beside_ceiling(results, |s| &s.ceiling_me)));
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let title = format!(
        "GET /api/auth/me, {WIDE_CONNECTIONS} connections, {} cores ({})",
        results.machine.cores,
        results.started_at.get(..10).unwrap_or_default()
    );
    chart::me_vs_users(path, &title, &series, ceiling).map(|()| true)
}

fn run(args: Args) -> Result<bool> {
    let started = Instant::now();
    let started_at = chrono::Utc::now().format("%Y-%m-%d %H:%M UTC").to_string();
    let (settings, backends) = Settings::resolve(args)?;
    for (what, path) in [
        ("Gatehouse", &settings.gatehouse_bin),
        ("the ceiling", &settings.ceiling_bin),
    ] {
        if (what == "Gatehouse" || settings.ceiling) && !path.is_file() {
            bail!(
                "{what} is not built at {} (run `just bench`, which builds it first)",
                path.display()
            );
        }
    }
    let machine = Machine::probe();
    println!(
        "gatehouse-bench: {} s per scenario after {} s of warm-up; {} cores ({}), load average {}",
        settings.duration_s,
        settings.warmup_s,
        machine.cores,
        machine.cpu,
        machine.load_average_start
    );
    println!(
        "busiest processes now: {}",
        machine.busiest_other_processes.join("; ")
    );
    let builds = builds_running();
    if !builds.is_empty() {
        println!(
            "WARNING: a build is running ({}): on {} cores every figure will be low",
            describe_builds(&builds),
            machine.cores
        );
    }
    let bound = bcrypt_bound()?;
    println!(
        "bcrypt cost {}: {:.1} ms per hash (median of {BOUND_SAMPLES}) → bound {:.2} logins/s on {} cores \
         (other processes took {:.2} cores meanwhile)",
        bound.cost, bound.median_ms, bound.logins_per_s, bound.cores, bound.other_cpu_cores
    );
    let baseline = settings
        .baseline
        .as_deref()
        .map(Baseline::read)
        .transpose()?;
    println!(
        "Gatehouse at its defaults (RUST_LOG unset), beside: {}; peak RSS per scenario by {}",
        settings
            .variants_beside()
            .map(Variant::label)
            .collect::<Vec<_>>()
            .join(", "),
        settings.peak_rss_per_scenario
    );
    if !settings.clear_refs() {
        println!(
            "NOTE: the kernel refused a reset of the peak RSS (/proc/<pid>/clear_refs): the \
             listings run on servers started for them, other scenarios get no peak of their own"
        );
    }
    let with_ceiling = settings.ceiling;
    let mut bench = Bench::new(settings)?;
    bench.check_variants()?;
    let mut servers = BTreeMap::new();
    if with_ceiling {
        servers.insert(
            "ceiling".to_owned(),
            bench.run_ceiling(backends.is_empty())?,
        );
    }
    for backend in backends {
        servers.insert(backend.key().to_owned(), bench.run_gatehouse(backend)?);
    }
    let Bench { settings, .. } = bench;
    let mut machine = machine;
    machine.load_average_end = load_average();
    let mut results = Results {
        started_at,
        total_s: 0.0,
        settings,
        machine,
        bcrypt_bound: bound,
        servers,
        baseline,
        checks: Vec::new(),
    };
    results.checks = checks(&results);
    results.total_s = started.elapsed().as_secs_f64();

    let out = results.settings.out.clone();
    let json = out.join("results.json");
    std::fs::write(
        &json,
        serde_json::to_string_pretty(&results).context("results as JSON")?,
    )
    .with_context(|| format!("writing {}", json.display()))?;
    let markdown = out.join("results.md");
    std::fs::write(&markdown, markdown_report(&results))
        .with_context(|| format!("writing {}", markdown.display()))?;
    let chart_path = results.settings.chart.clone();
    let charted = write_chart(&results, &chart_path)?;

    println!("\n{}", text_report(&results));
    for (key, server) in &results.servers {
        for (phase, kib) in &server.rss_kib {
            println!(
                "  peak RSS {:<11} {:>6.1} MiB  ({phase})",
                server_label(key),
                *kib as f64 / MIB
            );
        }
        for problem in &server.log_problems {
            println!("  log {}: {problem}", server_label(key));
        }
        for busy in &server.interference {
            println!("  WARNING {}: disturbed: {busy}", server_label(key));
        }
    }
    let clean = results.servers.values().all(|s| {
        s.reports().all(|r| !r.failed()) && s.outbox.as_ref().is_none_or(|o| o.problems.is_empty())
    });
    let (met, all) = results
        .checks
        .iter()
        .filter(|c| c.is_target())
        .fold((0, 0), |(met, all), c| {
            (met + usize::from(c.met == Some(true)), all + 1)
        });
    let most_others = results
        .servers
        .values()
        .flat_map(|s| s.reports())
        .filter_map(|r| r.other_cpu_cores)
        .fold(results.bcrypt_bound.other_cpu_cores, f64::max);
    println!(
        "\n{met} of {all} targets met; other processes took at most {most_others:.2} cores \
         during a measurement; {:.0} s in all.",
        results.total_s
    );
    if charted {
        println!(
            "Wrote {}, {} and {}.",
            json.display(),
            markdown.display(),
            chart_path.display()
        );
    } else {
        println!(
            "Wrote {} and {} (no /me figures: no chart).",
            json.display(),
            markdown.display()
        );
    }
    for (key, server) in &results.servers {
        for problem in server.outbox.iter().flat_map(|o| &o.problems) {
            println!("  outbox {}: FAILED: {problem}", server_label(key));
        }
    }
    if !clean {
        println!(
            "Some scenarios FAILED (non-2xx responses, socket errors, or webhook deliveries \
             missing or repeated): see above."
        );
    }
    Ok(clean)
}

fn main() -> ExitCode {
    match run(Args::parse()) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(2),
        Err(e) => {
            eprintln!("gatehouse-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(args: &[&str]) -> Result<Settings> {
        let mut all = vec!["gatehouse-bench", "--backends", "sqlite"];
        all.extend_from_slice(args);
        Settings::resolve(Args::try_parse_from(all)?).map(|(settings, _)| settings)
    }

    #[test]
    fn variants_default_to_all_and_always_include_the_defaults() {
        let all = settings(&[]).unwrap();
        assert_eq!(all.variants, Variant::ALL);
        assert_eq!(
            all.variants_beside().collect::<Vec<_>>(),
            [Variant::Warn, Variant::AccessLogOff]
        );
        let old_binary = settings(&["--variants", "default,warn"]).unwrap();
        assert_eq!(old_binary.variants, [Variant::Default, Variant::Warn]);
        let implied = settings(&["--variants", "access-log-off"]).unwrap();
        assert_eq!(implied.variants, [Variant::Default, Variant::AccessLogOff]);
        assert!(settings(&["--variants", "default,quiet"]).is_err());
        assert_eq!(Variant::Warn.env(), [("RUST_LOG", "warn".to_owned())]);
        assert_eq!(
            Variant::AccessLogOff.env(),
            [("GATEHOUSE_ACCESS_LOG", "off".to_owned())]
        );
        assert!(Variant::Default.env().is_empty());
    }

    #[test]
    fn only_picks_groups_of_scenarios() {
        let all = settings(&[]).unwrap();
        assert_eq!(all.scenarios, Scenario::ALL);
        let some = settings(&["--only", "refresh,register,refresh"]).unwrap();
        assert_eq!(some.scenarios, [Scenario::Register, Scenario::Refresh]);
        assert!(some.runs(Scenario::Refresh));
        assert!(!some.runs(Scenario::Wide));
        assert!(settings(&["--only", "refresh,logins"]).is_err());
        let outbox = settings(&["--only", "outbox", "--quick"]).unwrap();
        assert_eq!(outbox.scenarios, [Scenario::Outbox]);
        assert_eq!((outbox.outbox_tests, outbox.outbox_backlog), (100, 2_000));
        let full = settings(&["--only", "outbox"]).unwrap();
        assert_eq!((full.outbox_tests, full.outbox_backlog), (300, 10_000));
    }

    #[test]
    fn sizes_merge_the_me_curve_and_the_listings() {
        let run = settings(&[]).unwrap();
        assert_eq!(run.sizes(), [100, 1_000, 2_000, 10_000, 100_000]);
        let quick = settings(&["--users", "100", "--list-users", "2000"]).unwrap();
        assert_eq!(quick.sizes(), [100, 2_000]);
        assert!(settings(&["--users", "1000", "--list-users", "500"]).is_err());
        assert!(settings(&["--list-users", "100000,2000"]).is_err());
        assert!(settings(&["--users", "10"]).is_err());
    }

    #[test]
    fn reads_a_baseline() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("results.json");
        std::fs::write(
            &path,
            r#"{"started_at": "2026-12-05 17:52 UTC", "servers": {
                "sqlite": {"me_single": {"rps": 9000.0}},
                "ceiling": {"me_single": {"rps": 30000.0}}}}"#,
        )
        .unwrap();
        let baseline = Baseline::read(&path).unwrap();
        assert_eq!(baseline.started_at, "2026-12-05 17:52 UTC");
        assert!((baseline.sqlite_me_single_rps - 9000.0).abs() < 1e-9);
        assert!((baseline.ceiling_me_single_rps - 30000.0).abs() < 1e-9);
        std::fs::write(&path, r#"{"servers": {"sqlite": {}}}"#).unwrap();
        assert!(Baseline::read(&path).is_err());
    }

    #[test]
    fn figures_without_a_target_are_not_counted() {
        let info = Check::info("x", "sqlite", "×", Some(0.5), &[]);
        assert!(!info.is_target());
        assert_eq!(info.verdict(), "(no target)");
        assert_eq!(info.threshold_text(), "none");
        let target = Check::new("x", "sqlite", ">=", 0.9, "×", Some(0.95), &[]);
        assert!(target.is_target());
        assert_eq!(target.verdict(), "met");
        assert_eq!(target.threshold_text(), ">= 0.90×");
        let missing = Check::new("x", "sqlite", "<", 25.0, "MiB", None, &[]);
        assert_eq!(missing.verdict(), "not measured");
    }

    #[test]
    fn formats_sizes() {
        assert_eq!(format_bytes(512), "512 B");
        assert_eq!(format_bytes(370_000), "361 KiB");
        assert_eq!(format_bytes(18_660_000), "17.8 MiB");
        assert_eq!(group(100_000), "100 000");
    }
}
