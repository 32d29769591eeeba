//! How much CPU other processes took during a measurement.
//!
//! On 2 cores a build or a test run elsewhere on the machine halves every figure, so each
//! scenario records the CPU time the whole machine spent busy (`/proc/stat`) minus what the
//! benchmark's own processes spent: this process and the children it has waited for (wrk),
//! the server under test, and PostgreSQL's processes (which serve it).

use std::time::Instant;

use anyhow::{Context as _, Result};

/// Clock ticks per second of `/proc`'s CPU times (`USER_HZ`, 100 on Linux).
const TICKS_PER_SECOND: f64 = 100.0;

/// CPU counters at one moment.
#[derive(Debug, Clone, Copy)]
pub struct CpuSample {
    at: Instant,
    machine_busy: u64,
    ours: u64,
    server: u64,
}

impl CpuSample {
    /// Reads the counters, counting `server` (a process id) as ours.
    ///
    /// # Errors
    /// When `/proc/stat` or `/proc/self/stat` cannot be read.
    pub fn take(server: Option<u32>) -> Result<Self> {
        let stat = std::fs::read_to_string("/proc/stat").context("reading /proc/stat")?;
        let machine_busy = machine_busy_ticks(&stat).context("parsing /proc/stat")?;
        let own = std::fs::read_to_string("/proc/self/stat").context("reading /proc/self/stat")?;
        // This process and its waited-for children (utime, stime, cutime, cstime).
        let mut ours = stat_fields(&own, &[11, 12, 13, 14]).context("parsing /proc/self/stat")?;
        let server = server.and_then(process_ticks).unwrap_or(0);
        ours += server + postgres_ticks();
        Ok(Self {
            at: Instant::now(),
            machine_busy,
            ours,
            server,
        })
    }

    /// Cores' worth of CPU that the server used between `self` and `later`.
    #[must_use]
    pub fn server_since(&self, later: &Self) -> f64 {
        let seconds = later.at.duration_since(self.at).as_secs_f64();
        if seconds <= 0.0 {
            return 0.0;
        }
        later.server.saturating_sub(self.server) as f64 / TICKS_PER_SECOND / seconds
    }

    /// Cores' worth of CPU that other processes used between `self` and `later`.
    #[must_use]
    pub fn others_since(&self, later: &Self) -> f64 {
        let seconds = later.at.duration_since(self.at).as_secs_f64();
        if seconds <= 0.0 {
            return 0.0;
        }
        let busy = later.machine_busy.saturating_sub(self.machine_busy);
        let ours = later.ours.saturating_sub(self.ours);
        busy.saturating_sub(ours) as f64 / TICKS_PER_SECOND / seconds
    }
}

/// user + nice + system + irq + softirq + steal of the `cpu` line.
fn machine_busy_ticks(stat: &str) -> Option<u64> {
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let fields: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(str::parse)
        .collect::<Result<_, _>>()
        .ok()?;
    // user nice system idle iowait irq softirq steal ...
    Some(
        [0, 1, 2, 5, 6, 7]
            .iter()
            .filter_map(|&i| fields.get(i))
            .sum(),
    )
}

/// The sum of the given fields after the command name of a `/proc/<pid>/stat` (index 0 is
/// the state, field 3).
fn stat_fields(stat: &str, indices: &[usize]) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    indices
        .iter()
        .map(|&i| fields.get(i)?.parse::<u64>().ok())
        .sum()
}

/// utime + stime of process `pid`, in clock ticks.
#[must_use]
pub fn process_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat_fields(&stat, &[11, 12])
}

/// utime + stime of every process named `postgres`.
fn postgres_ticks() -> u64 {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0;
    };
    entries
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .bytes()
                .all(|b| b.is_ascii_digit())
        })
        .filter_map(|e| {
            let stat = std::fs::read_to_string(e.path().join("stat")).ok()?;
            stat.contains("(postgres)")
                .then(|| stat_fields(&stat, &[11, 12]))
                .flatten()
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_machine_line() {
        let stat = "cpu  100 5 50 1000 7 3 2 1 0 0\ncpu0 1 2 3 4 5 6 7 8 9 10\n";
        assert_eq!(machine_busy_ticks(stat), Some(100 + 5 + 50 + 3 + 2 + 1));
        assert_eq!(machine_busy_ticks("intr 1 2 3"), None);
    }

    #[test]
    fn reads_process_fields() {
        let stat = "7 (a) b) R 1 7 7 0 -1 0 0 0 0 0 40 2 3 4 20 0 1 0";
        assert_eq!(stat_fields(stat, &[11, 12]), Some(42));
        assert_eq!(stat_fields(stat, &[11, 12, 13, 14]), Some(49));
        assert_eq!(stat_fields(stat, &[99]), None);
    }

    #[test]
    fn samples_this_machine() {
        let first = CpuSample::take(None).unwrap();
        let second = CpuSample::take(Some(std::process::id())).unwrap();
        assert!(first.others_since(&second) >= 0.0);
    }
}
