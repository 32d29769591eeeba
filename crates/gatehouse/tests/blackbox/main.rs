//! Black-box tests: the real `gatehouse` binary on a free port with a temporary database,
//! driven over HTTP like any client would.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests panic to fail

mod approval;
mod cli;
mod config_file;
mod failover;
mod hardening;
mod mail;
mod mfa;
mod multi_instance;
mod operability;
mod outage;
mod passkeys;
mod receiver;
mod recovery;
mod retention;
mod security;
mod server;
mod sessions;
mod smtp_sink;
mod tls;
mod walkthrough;
mod webhooks;
