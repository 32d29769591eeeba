//! The machine's bound for a durable write: how many single-row transactions one thread can
//! commit per second, one after another, to an SQLite file set up as Gatehouse sets up its
//! own (WAL, `synchronous = FULL`: every commit waits for an fsync of the WAL), on the disk
//! that holds the benchmark's SQLite database.
//!
//! SQLite commits one writer at a time and each commit of Gatehouse's waits for its own
//! fsync, so no write scenario on SQLite (a refresh is one write transaction) can go faster
//! than this; the refresh scenario is compared with it.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use diesel::connection::SimpleConnection as _;
use diesel::sql_types::{BigInt, Text};
use diesel::{Connection as _, RunQueryDsl as _, SqliteConnection};
use gatehouse_storage::PoolOptions;
use serde::Serialize;

/// Commits made before the timed ones (the file and the WAL grow to their first pages).
const WARM_UP_COMMITS: u64 = 20;

/// What the probe measured.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DurableProbe {
    /// The directory the probe's file was in (the benchmark's SQLite database's).
    pub directory: PathBuf,
    /// The file system that directory is on, and its device (from `/proc/mounts`).
    pub filesystem: String,
    /// Transactions committed while timed.
    pub commits: u64,
    /// How long they took, in seconds.
    pub seconds: f64,
    /// Commits per second.
    pub commits_per_s: f64,
    /// Median time of one commit (the transaction, its insert and its fsync), milliseconds.
    pub p50_ms: f64,
    /// 99th percentile of it, milliseconds.
    pub p99_ms: f64,
    /// Cores' worth of CPU that other processes took meanwhile, when measured.
    pub other_cpu_cores: Option<f64>,
}

/// The per-connection settings of Gatehouse's SQLite connections (`crates/storage/src/
/// sqlite.rs`: `pragmas`, then `journal_mode = WAL` when the file is prepared).
fn gatehouse_pragmas() -> String {
    format!(
        "PRAGMA busy_timeout = {}; PRAGMA foreign_keys = ON; PRAGMA synchronous = FULL; \
         PRAGMA cache_size = -512; PRAGMA journal_mode = WAL;",
        PoolOptions::default().timeout.as_millis()
    )
}

/// Commits one small row per transaction (`BEGIN IMMEDIATE`, an `INSERT`, `COMMIT`, as
/// Gatehouse's writes do) for about `duration`, from this thread, to a new SQLite file in
/// `dir`, which is removed afterwards.
///
/// # Errors
/// When the file cannot be created or a commit fails.
pub fn durable_commits(dir: &Path, duration: Duration) -> Result<DurableProbe> {
    let path = dir.join("durable-write-probe.db");
    let files = ["", "-wal", "-shm", "-journal"].map(|suffix| {
        let mut name = path.clone().into_os_string();
        name.push(suffix);
        PathBuf::from(name)
    });
    let remove = || {
        for file in &files {
            let _ = std::fs::remove_file(file);
        }
    };
    remove();
    let result = commit_for(&path, duration);
    remove();
    let (latencies, seconds) = result?;
    let mut sorted = latencies;
    sorted.sort_by(f64::total_cmp);
    let percentile = |p: f64| {
        let rank = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len());
        sorted[rank - 1]
    };
    let commits = sorted.len() as u64;
    Ok(DurableProbe {
        directory: dir.to_owned(),
        filesystem: filesystem_of(dir),
        commits,
        seconds,
        commits_per_s: commits as f64 / seconds,
        p50_ms: percentile(0.50),
        p99_ms: percentile(0.99),
        other_cpu_cores: None,
    })
}

/// The timed commits: each one's time in milliseconds, and the seconds they took in all.
fn commit_for(path: &Path, duration: Duration) -> Result<(Vec<f64>, f64)> {
    let shown = path.display();
    let url = path.to_str().context("the probe's path is not UTF-8")?;
    let mut conn = SqliteConnection::establish(url).with_context(|| format!("opening {shown}"))?;
    conn.batch_execute(&gatehouse_pragmas())
        .with_context(|| format!("setting up {shown}"))?;
    conn.batch_execute(
        "CREATE TABLE probe (id INTEGER PRIMARY KEY, at INTEGER NOT NULL, note TEXT NOT NULL)",
    )
    .with_context(|| format!("creating the probe's table in {shown}"))?;
    let mut commit = |n: u64| -> Result<()> {
        conn.immediate_transaction(|conn| {
            diesel::sql_query("INSERT INTO probe (at, note) VALUES (?, ?)")
                .bind::<BigInt, _>(i64::try_from(n).unwrap_or(i64::MAX))
                .bind::<Text, _>("a small row, committed on its own")
                .execute(conn)
        })
        .with_context(|| format!("committing row {n} to {shown}"))?;
        Ok(())
    };
    for n in 0..WARM_UP_COMMITS {
        commit(n)?;
    }
    let mut latencies = Vec::new();
    let started = Instant::now();
    let mut n = WARM_UP_COMMITS;
    while started.elapsed() < duration {
        let one = Instant::now();
        commit(n)?;
        latencies.push(one.elapsed().as_secs_f64() * 1000.0);
        n += 1;
    }
    Ok((latencies, started.elapsed().as_secs_f64()))
}

/// "ext4 on /dev/vda": the file system of the mount that holds `dir`, from `/proc/mounts`.
fn filesystem_of(dir: &Path) -> String {
    let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_owned());
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
    mount_of(&mounts, &dir).unwrap_or_else(|| "unknown".into())
}

/// The longest mount point of `mounts` (`/proc/mounts`' text) that holds `dir`.
fn mount_of(mounts: &str, dir: &Path) -> Option<String> {
    mounts
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let device = fields.next()?;
            // Spaces and the like are octal escapes there (\040); rare for a mount point.
            let point = fields.next()?.replace("\\040", " ");
            let kind = fields.next()?;
            dir.starts_with(&point)
                .then(|| (point.len(), format!("{kind} on {device}")))
        })
        .max_by_key(|(len, _)| *len)
        .map(|(_, what)| what)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_mount_holding_a_directory() {
        let mounts = "/dev/vda / ext4 rw,relatime 0 0\n\
                      tmpfs /tmp tmpfs rw 0 0\n\
                      /dev/vdb /tmpfoo xfs rw 0 0\n";
        assert_eq!(
            mount_of(mounts, Path::new("/tmp/x/y")).as_deref(),
            Some("tmpfs on tmpfs")
        );
        assert_eq!(
            mount_of(mounts, Path::new("/tmpfoo")).as_deref(),
            Some("xfs on /dev/vdb")
        );
        assert_eq!(
            mount_of(mounts, Path::new("/work")).as_deref(),
            Some("ext4 on /dev/vda")
        );
        assert_eq!(mount_of("", Path::new("/work")), None);
    }

    #[test]
    fn commits_durably_and_cleans_up() {
        let dir = tempfile::tempdir().unwrap();
        let probe = durable_commits(dir.path(), Duration::from_millis(200)).unwrap();
        assert!(probe.commits > 0);
        assert!(probe.commits_per_s > 0.0);
        assert!(probe.p50_ms <= probe.p99_ms);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
