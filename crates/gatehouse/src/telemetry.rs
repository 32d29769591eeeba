//! Logs: tracing to stderr, filtered by `RUST_LOG`, one span per request with its id; as
//! text lines, or one JSON object per line (`GATEHOUSE_LOG_FORMAT=json`) for log shippers.
//! Nothing here ever records a password, hash or token: request spans carry the method,
//! route, peer and status only, never headers or bodies.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Installs the global subscriber (and routes `log` records, such as actix's, into it).
pub fn init(filter: &str, format: LogFormat) {
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // A second call (in tests) keeps the first subscriber, which is what we want.
    let _ = match format {
        LogFormat::Text => builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
        // The event's fields at the top level beside `timestamp`, `level` and `target`;
        // the request's span (method, route, request id, …) under `span`.
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
    };
}
