//! Logs: tracing to stderr, filtered by `RUST_LOG`, one span per request with its id.
//! Nothing here ever records a password, hash or token: request spans carry the method,
//! route, peer and status only, never headers or bodies.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber (and routes `log` records, such as actix's, into it).
pub fn init(filter: &str) {
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("info"));
    // A second call (in tests) keeps the first subscriber, which is what we want.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}
