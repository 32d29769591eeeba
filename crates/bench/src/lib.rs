//! The harness behind `just bench` (see `docs/performance.md`).
//!
//! The binary (`src/main.rs`) orchestrates a run; this library holds the pieces it and the
//! criterion micro-benchmarks (`benches/micro.rs`) share:
//! - [`db`]: a throw-away database on either backend, removed afterwards;
//! - [`seed`]: filling it with users straight through the storage crate (no HTTP, no
//!   bcrypt per user);
//! - [`wrk`]: running the `wrk` load generator and reading its report;
//! - [`server`]: starting a server process on a free port and reading its peak RSS;
//! - [`chart`]: the SVG chart of `/me` throughput against the number of users;
//! - [`cpu`]: how much CPU other processes took during a measurement;
//! - [`probe`]: the machine's bound for a durable write (single-row SQLite commits with
//!   fsync, one after another);
//! - [`receiver`]: a webhook receiver in this process for the outbox scenarios, noting when
//!   each delivery arrives, and a load of its own to measure its rate.

pub mod chart;
pub mod cpu;
pub mod db;
pub mod probe;
pub mod receiver;
pub mod seed;
pub mod server;
pub mod wrk;
