//! `gatehouse-bench`: Gatehouse's load benchmark (`just bench`; method and results in
//! `docs/performance.md`).
//!
//! It builds nothing: `just bench` builds `target/release/gatehouse` and the ceiling
//! (`target/ceiling/release/ceiling`) first. Then, in one run:
//! 1. times one bcrypt hash at cost 12 in this process (median of 5): the login bound is
//!    cores ÷ that time;
//! 2. runs the ceiling (no database) through the same scenarios;
//! 3. for each backend (SQLite; PostgreSQL when a server is configured) creates a fresh
//!    database, seeds it through the storage crate with the server stopped, starts
//!    `gatehouse serve` on a free port and drives it with `wrk`: `/healthz`, `/me` with 100
//!    users, logins at cost 12 alone and under a `/me` load, `/me` at 1 000, 10 000 and
//!    100 000 users, `GET /users?limit=50` at 100 000 users, and registrations at cost 4;
//!    the peak RSS of every server process is read from `/proc/<pid>/status`;
//! 4. prints one line per scenario as it goes, then the table and each target's ratio, and
//!    writes `target/bench/results.json`, `target/bench/results.md` and the chart.
//!
//! Exit status: 0 when every scenario ran clean (targets may still be missed: the table
//! says so), 2 when a scenario had non-2xx responses or socket errors, 1 when the harness
//! itself failed.

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
use gatehouse_bench::seed::{self, ADMIN_EMAIL, ADMIN_PASSWORD};
use gatehouse_bench::server::Server;
use gatehouse_bench::wrk::{self, format_ms, format_rate, Wrk, WrkReport};
use serde::Serialize;

/// Connections for the throughput scenarios (`/healthz`, `/me` against the ceiling).
const WIDE_CONNECTIONS: u32 = 64;
/// wrk threads for them (wrk on one thread tops out below the ceiling's rate).
const WIDE_THREADS: u32 = 2;
/// Connections for logins, the flood and its `/me` side, listing and registering.
const NARROW_CONNECTIONS: u32 = 16;
/// bcrypt cost of the login scenarios.
const LOGIN_COST: u32 = 12;
/// bcrypt cost of the registration scenario.
const REGISTER_COST: u32 = 4;
/// Hashes timed for the login bound.
const BOUND_SAMPLES: usize = 5;
/// Users on a page of the listing scenario.
const PAGE: u64 = 50;

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
    /// Leave the ceiling out.
    #[arg(long)]
    no_ceiling: bool,
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
    backends: Vec<String>,
    ceiling: bool,
    wide_connections: u32,
    wide_wrk_threads: u32,
    narrow_connections: u32,
    login_cost: u32,
    register_cost: u32,
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
            backends: backends.iter().map(|b| b.key().to_owned()).collect(),
            ceiling: !args.no_ceiling,
            wide_connections: WIDE_CONNECTIONS,
            wide_wrk_threads: WIDE_THREADS,
            narrow_connections: NARROW_CONNECTIONS,
            login_cost: LOGIN_COST,
            register_cost: REGISTER_COST,
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

/// What one server (Gatehouse on a backend, or the ceiling) measured.
#[derive(Debug, Default, Serialize)]
struct ServerResults {
    /// `GET /healthz`, wide.
    healthz: Option<WrkReport>,
    /// `GET /api/auth/me`, wide, by number of users.
    me: BTreeMap<u64, WrkReport>,
    /// The ceiling's `GET /api/auth/me`, wide, measured right before and right after this
    /// server's (Gatehouse only).
    ceiling_me: Vec<WrkReport>,
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
    /// Registrations at cost 4.
    register: Option<WrkReport>,
    /// Users in the database when the registrations started.
    register_users: Option<u64>,
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
        ]
        .into_iter()
        .flatten()
        .chain(self.me.values())
        .chain(&self.ceiling_me)
    }

    /// The mean rate of `ceiling_me`, if measured.
    fn ceiling_me_rps(&self) -> Option<f64> {
        (!self.ceiling_me.is_empty()).then(|| {
            self.ceiling_me.iter().map(|r| r.rps).sum::<f64>() / self.ceiling_me.len() as f64
        })
    }
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
    checks: Vec<Check>,
}

/// One target, checked.
#[derive(Debug, Serialize)]
struct Check {
    target: String,
    server: String,
    /// The ratio or the value (milliseconds, MiB).
    measured: Option<f64>,
    threshold: f64,
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
            threshold,
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

    fn verdict(&self) -> &'static str {
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
        match self.unit {
            "×" => format!("{} {:.2}×", self.op, self.threshold),
            unit => format!("{} {} {unit}", self.op, self.threshold),
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
    logs: PathBuf,
    run_id: String,
    runs: u32,
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
        std::fs::write(&login_script, include_str!("../lua/login.lua"))
            .context("writing login.lua")?;
        std::fs::write(&register_script, include_str!("../lua/register.lua"))
            .context("writing register.lua")?;
        Ok(Self {
            settings,
            jwt_secret: random_hex(32)?,
            login_script,
            register_script,
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

    /// Waits for `server` to go idle, warms up, waits again, measures, prints the line.
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
        if self.settings.warmup_s > 0 {
            warm_up(&wrk.with_duration(self.settings.warmup()))?;
            server.wait_idle()?;
        }
        if let Some((script, args)) = &mut wrk.script {
            // A registration run needs emails the warm-up did not use.
            if *script == self.register_script {
                *args = vec![self.next_prefix()];
            }
        }
        let before = (builds_running(), CpuSample::take(Some(server.pid()))?);
        let mut report = wrk.run().with_context(|| format!("{who}: {label}"))?;
        let after = CpuSample::take(Some(server.pid()))?;
        let others = before.1.others_since(&after);
        report.other_cpu_cores = Some(others);
        report.server_cpu_cores = Some(before.1.server_since(&after));
        let note = interference(label, before.0, others, results);
        println!("  {who:<10} {label:<44} {}{note}", report.summary());
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
        for report in [&mut a, &mut b] {
            report.other_cpu_cores = Some(others);
            report.server_cpu_cores = Some(server_cpu);
        }
        let note = interference(&format!("{label_a} + {label_b}"), before.0, others, results);
        println!("  {who:<10} {label_a:<44} {}{note}", a.summary());
        println!("  {who:<10} {label_b:<44} {}{note}", b.summary());
        Ok((a, b))
    }

    /// `gatehouse serve` on `db` with bcrypt at `cost`, the run's JWT secret, warnings only
    /// in the log, the defaults for everything else, and `extra` on top.
    fn start_gatehouse(
        &self,
        backend: Backend,
        db: &BenchDatabase,
        cost: u32,
        phase: &str,
        extra: &[(&str, String)],
    ) -> Result<Server> {
        let name = format!("gatehouse-{}-{phase}", backend.key());
        let mut env = vec![
            ("GATEHOUSE_DATABASE_URL", db.url().to_owned()),
            ("GATEHOUSE_BCRYPT_COST", cost.to_string()),
            ("GATEHOUSE_JWT_SECRET", self.jwt_secret.clone()),
            ("RUST_LOG", "warn".to_owned()),
        ];
        env.extend(extra.iter().cloned());
        Server::start(
            &name,
            &self.settings.gatehouse_bin,
            &["serve"],
            &env,
            &self.logs.join(format!("{name}.log")),
        )
    }

    /// A ceiling to measure /me on beside a Gatehouse backend, and its token.
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

    /// Stops `server`, keeping its peak RSS and any WARN/ERROR lines of its log.
    fn stop(server: Server, phase: &str, results: &mut ServerResults) -> Result<()> {
        let log = server.log_text();
        let log_path = server.log_path().display().to_string();
        let kib = server.stop()?;
        results.rss_kib.push((phase.to_owned(), kib));
        for line in log
            .lines()
            .filter(|l| l.contains("WARN") || l.contains("ERROR"))
        {
            results.log_problems.push(format!("{log_path}: {line}"));
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

    /// The scenarios every server runs at cost 12: /healthz, /me wide and narrow, logins
    /// alone, the flood.
    fn cost12_scenarios(
        &mut self,
        who: &str,
        server: &Server,
        token: &str,
        users: Option<u64>,
        accounts: (u64, &str),
        results: &mut ServerResults,
    ) -> Result<()> {
        let wide = WIDE_CONNECTIONS;
        let narrow = NARROW_CONNECTIONS;
        let healthz = Wrk::new(
            server.url("/healthz"),
            WIDE_THREADS,
            wide,
            self.settings.duration(),
        );
        results.healthz = Some(self.measure(
            server,
            who,
            &format!("GET /healthz, c={wide}"),
            healthz,
            results,
        )?);
        let me_label = match users {
            Some(n) => format!("GET /me, {} users, c={wide}", group(n)),
            None => format!("GET /me (no database), c={wide}"),
        };
        // Gatehouse's /me is compared with the ceiling's measured right before and right
        // after it: this machine's speed drifts over minutes, so a ceiling figure from
        // earlier in the run would skew the ratio.
        let reference = match users {
            Some(_) if self.settings.ceiling => Some(self.reference_ceiling()?),
            _ => None,
        };
        let ceiling_label = format!("ceiling GET /me, c={wide} (next to it)");
        if let Some((ceiling, ceiling_token)) = &reference {
            let wrk = self.wrk_me(ceiling, ceiling_token, WIDE_THREADS, wide);
            let before = self.measure(ceiling, who, &ceiling_label, wrk, results)?;
            results.ceiling_me.push(before);
        }
        let wrk = self.wrk_me(server, token, WIDE_THREADS, wide);
        let me = self.measure(server, who, &me_label, wrk, results)?;
        results.me.insert(users.unwrap_or(0), me);
        if let Some((ceiling, ceiling_token)) = reference {
            let wrk = self.wrk_me(&ceiling, &ceiling_token, WIDE_THREADS, wide);
            let after = self.measure(&ceiling, who, &ceiling_label, wrk, results)?;
            results.ceiling_me.push(after);
            ceiling.stop()?;
        }
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
        let sizes = self.settings.users.clone();
        let (smallest, largest) = (self.settings.smallest(), self.settings.largest());
        Self::seed(&db, smallest, &mut results, label)?;

        let server = self.start_gatehouse(backend, &db, LOGIN_COST, &format!("{smallest}"), &[])?;
        let token = server.login(ADMIN_EMAIL, ADMIN_PASSWORD)?;
        server.expect_ok("/api/auth/me", &token)?;
        self.cost12_scenarios(
            label,
            &server,
            &token,
            Some(smallest),
            (seed::LOGIN_ACCOUNTS, seed::LOGIN_EMAIL_PATTERN),
            &mut results,
        )?;
        if smallest == largest {
            let wrk = self.wrk_list(&server, &token);
            results.list =
                Some(self.measure(&server, label, &list_label(largest), wrk, &mut results)?);
            results.list_users = Some(largest);
        }
        Self::stop(
            server,
            &format!("cost {LOGIN_COST}, {smallest} users: healthz, /me, logins, flood"),
            &mut results,
        )?;

        for &size in sizes.iter().skip(1) {
            Self::seed(&db, size, &mut results, label)?;
            let server = self.start_gatehouse(backend, &db, LOGIN_COST, &format!("{size}"), &[])?;
            server.expect_ok("/api/auth/me", &token)?;
            let wrk = self.wrk_me(&server, &token, WIDE_THREADS, WIDE_CONNECTIONS);
            let me = self.measure(
                &server,
                label,
                &format!("GET /me, {} users, c={WIDE_CONNECTIONS}", group(size)),
                wrk,
                &mut results,
            )?;
            results.me.insert(size, me);
            let mut phase = format!("cost {LOGIN_COST}, {size} users: /me");
            if size == largest {
                server.expect_ok(&format!("/api/auth/users?limit={PAGE}"), &token)?;
                let wrk = self.wrk_list(&server, &token);
                results.list =
                    Some(self.measure(&server, label, &list_label(size), wrk, &mut results)?);
                results.list_users = Some(size);
                phase.push_str(", GET /users");
            }
            Self::stop(server, &phase, &mut results)?;
        }

        // One address registers thousands of users here: the per-address hourly limit
        // (100 by default) would turn the run into a measurement of 429s.
        let server = self.start_gatehouse(
            backend,
            &db,
            REGISTER_COST,
            "register",
            &[("GATEHOUSE_REGISTER_LIMIT_PER_HOUR", "0".to_owned())],
        )?;
        let wrk = self.wrk_register(&server);
        results.register = Some(self.measure(
            &server,
            label,
            &format!(
                "register at cost {REGISTER_COST}, {} users, c={NARROW_CONNECTIONS}",
                group(largest)
            ),
            wrk,
            &mut results,
        )?);
        results.register_users = Some(largest);
        Self::stop(
            server,
            &format!("cost {REGISTER_COST}, {largest}+ users: registrations"),
            &mut results,
        )?;
        drop(db);
        Ok(results)
    }

    fn run_ceiling(&mut self) -> Result<ServerResults> {
        let label = "ceiling";
        let mut results = ServerResults::default();
        println!("\n== The ceiling (no database)");
        let server = self.start_ceiling(LOGIN_COST, "cost12")?;
        server.register(ADMIN_EMAIL, ADMIN_PASSWORD)?;
        let token = server.login(ADMIN_EMAIL, ADMIN_PASSWORD)?;
        server.expect_ok("/api/auth/me", &token)?;
        // The ceiling has no throttle: one account, the same script.
        self.cost12_scenarios(label, &server, &token, None, (1, ADMIN_EMAIL), &mut results)?;
        Self::stop(
            server,
            &format!("cost {LOGIN_COST}: healthz, /me, logins, flood"),
            &mut results,
        )?;

        // Cost 4: a page's worth of users in memory (its /users ignores limit and returns
        // them all), then registrations.
        let server = self.start_ceiling(REGISTER_COST, "cost4")?;
        server.register(ADMIN_EMAIL, ADMIN_PASSWORD)?;
        for n in 1..PAGE {
            server.register(&seed::seeded_email(n), ADMIN_PASSWORD)?;
        }
        let token = server.login(ADMIN_EMAIL, ADMIN_PASSWORD)?;
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
        let wrk = self.wrk_register(&server);
        results.register = Some(self.measure(
            &server,
            label,
            &format!("register at cost {REGISTER_COST}, c={NARROW_CONNECTIONS}"),
            wrk,
            &mut results,
        )?);
        Self::stop(
            server,
            &format!("cost {REGISTER_COST}: GET /users, registrations"),
            &mut results,
        )?;
        Ok(results)
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
        if i > 0 && (digits.len() - i) % 3 == 0 {
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
    let ceiling_me = results.servers.get("ceiling").and_then(|c| c.me.get(&0));
    let small = results.settings.users.first().copied().unwrap_or(100);
    let large = results.settings.users.last().copied().unwrap_or(100_000);
    let servers: Vec<(&str, &ServerResults)> = SERVERS
        .iter()
        .filter_map(|k| results.servers.get(*k).map(|s| (*k, s)))
        .collect();
    let gatehouse = || servers.iter().filter(|(k, _)| *k != "ceiling");
    let mut checks = Vec::new();

    for (key, server) in gatehouse() {
        let threshold = if *key == "sqlite" { 0.6 } else { 0.4 };
        let me = server.me.get(&small);
        // The ceiling measured next to it when there is one, else the ceiling's own run.
        let (ceiling_rps, mut runs) = match server.ceiling_me_rps() {
            Some(rps) => (Some(rps), server.ceiling_me.iter().map(Some).collect()),
            None => (ceiling_me.map(|c| c.rps), vec![ceiling_me]),
        };
        runs.push(me);
        checks.push(Check::new(
            &format!(
                "/me, {} users ÷ ceiling /me (c={WIDE_CONNECTIONS})",
                group(small)
            ),
            key,
            ">=",
            threshold,
            "×",
            me.zip(ceiling_rps).map(|(m, c)| m.rps / c),
            &runs,
        ));
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
            &format!("flood: /me ÷ /me alone (c={NARROW_CONNECTIONS} each)"),
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
    for (key, server) in &servers {
        checks.push(Check::new(
            "peak RSS",
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

/// The table's rows: a scenario and each server's figures.
fn table_rows(results: &Results) -> (Vec<String>, Vec<(String, Vec<String>)>) {
    let keys: Vec<&String> = ["sqlite", "postgres", "ceiling"]
        .iter()
        .filter_map(|k| results.servers.get_key_value(*k).map(|(k, _)| k))
        .collect();
    let header = keys.iter().map(|k| server_label(k).to_owned()).collect();
    let row = |name: String, f: &dyn Fn(&ServerResults) -> String| {
        (
            name,
            keys.iter()
                .map(|k| f(&results.servers[*k]))
                .collect::<Vec<_>>(),
        )
    };
    let wide = WIDE_CONNECTIONS;
    let narrow = NARROW_CONNECTIONS;
    let mut rows = vec![row(format!("1. GET /healthz (c={wide})"), &|s| {
        cell(s.healthz.as_ref())
    })];
    for &n in &results.settings.users {
        rows.push(row(
            format!("2. GET /me, {} users (c={wide})", group(n)),
            &|s| cell(s.me.get(&n).or_else(|| s.me.get(&0))),
        ));
    }
    rows.push(row(
        format!("   ceiling GET /me beside it (c={wide})"),
        &|s| match s.ceiling_me_rps() {
            Some(rps) => {
                let each: Vec<String> = s.ceiling_me.iter().map(|r| format_rate(r.rps)).collect();
                format!("{}/s (mean of {})", format_rate(rps), each.join(" and "))
            }
            None => "–".into(),
        },
    ));
    rows.push(row(format!("   GET /me alone (c={narrow})"), &|s| {
        cell(s.me_narrow.as_ref())
    }));
    rows.push(row("   GET /me one at a time (c=1)".into(), &|s| {
        cell(s.me_single.as_ref())
    }));
    rows.push(row(
        format!(
            "3. login, cost {LOGIN_COST} (c={narrow}); bound {:.2}/s",
            results.bcrypt_bound.logins_per_s
        ),
        &|s| cell(s.login.as_ref()),
    ));
    rows.push(row(format!("4. flood: GET /me (c={narrow})"), &|s| {
        cell(s.flood_me.as_ref())
    }));
    rows.push(row(
        format!("   flood: login, cost {LOGIN_COST} (c={narrow})"),
        &|s| cell(s.flood_login.as_ref()),
    ));
    rows.push(row(
        format!(
            "5. GET /users?limit={PAGE}, {} users (c={narrow})",
            group(results.settings.users.last().copied().unwrap_or(0))
        ),
        &|s| cell(s.list.as_ref()),
    ));
    rows.push(row(
        format!("   register, cost {REGISTER_COST} (c={narrow})"),
        &|s| cell(s.register.as_ref()),
    ));
    rows.push(row("6. peak RSS".into(), &|s| {
        s.peak_rss_kib()
            .map_or_else(|| "–".into(), |k| format!("{:.1} MiB", k as f64 / MIB))
    }));
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
            "  {:<50} {:<11} {:>9}  (target {:<8}) {}{}",
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

fn write_chart(results: &Results, path: &Path) -> Result<()> {
    let series: Vec<Series> = ["sqlite", "postgres"]
        .iter()
        .filter_map(|k| results.servers.get(*k).map(|s| (k, s)))
        .map(|(k, s)| Series {
            name: format!("Gatehouse on {}", server_label(k)),
            points: s.me.iter().map(|(&users, r)| (users, r.rps)).collect(),
        })
        .filter(|s| !s.points.is_empty())
        .collect();
    let ceiling = results
        .servers
        .get("ceiling")
        .and_then(|c| c.me.get(&0))
        .map(|r| r.rps);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let title = format!(
        "GET /api/auth/me, {WIDE_CONNECTIONS} connections, {} cores ({})",
        results.machine.cores,
        results.started_at.get(..10).unwrap_or_default()
    );
    chart::me_vs_users(path, &title, &series, ceiling)
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
    let with_ceiling = settings.ceiling;
    let mut bench = Bench::new(settings)?;
    let mut servers = BTreeMap::new();
    if with_ceiling {
        servers.insert("ceiling".to_owned(), bench.run_ceiling()?);
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
    write_chart(&results, &chart_path)?;

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
    let clean = results
        .servers
        .values()
        .all(|s| s.reports().all(|r| !r.failed()));
    let (met, all) = results
        .checks
        .iter()
        .filter(|c| !c.reference)
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
    println!(
        "Wrote {}, {} and {}.",
        json.display(),
        markdown.display(),
        chart_path.display()
    );
    if !clean {
        println!("Some scenarios FAILED (non-2xx responses or socket errors): see above.");
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
