# Gatehouse everyday recipes. `just` lists them.

default:
    @just --list

# Serve on the embedded SQLite default (./gatehouse.db), listening on 127.0.0.1:8080.
run:
    cargo run --release -- serve

# Every test of every crate (the README's test command).
test:
    cargo test --workspace

# Lints as CI runs them.
lint:
    cargo fmt --all -- --check
    cargo clippy --workspace --all-targets -- -D warnings

# Format the code.
fmt:
    cargo fmt --all

# Everything CI runs.
ci:
    bash .ci/run

# Load benchmark (docs/performance.md): Gatehouse at its defaults (no RUST_LOG override:
# info, an access line per request, into target/bench/logs/) on SQLite and on PostgreSQL
# (when GATEHOUSE_BENCH_POSTGRES_URL or GATEHOUSE_TEST_POSTGRES_URL is set) beside the
# no-database ceiling, driven by wrk: /healthz and /me also with RUST_LOG=warn and with
# GATEHOUSE_ACCESS_LOG=off for reference (`--variants default,warn` for binaries from before
# that setting), the unpaged listing at 2 000 and 100 000 users, peak RSS per scenario;
# ~14 minutes. `just bench --quick` checks the harness in ~6 (`--list-users 2000`: ~3);
# `just bench --help` lists the other options.
bench *ARGS:
    #!/usr/bin/env bash
    set -euo pipefail
    if ! command -v wrk >/dev/null; then
        if command -v apt-get >/dev/null; then
            apt-get install -y wrk || { apt-get update && apt-get install -y wrk; }
        else
            echo "bench: wrk is not installed (Debian and Ubuntu: apt-get install wrk)" >&2
            exit 1
        fi
    fi
    cargo build --release -p gatehouse
    cargo build --release --locked --manifest-path ../shared/bench/ceiling/Cargo.toml --target-dir target/ceiling
    cargo run --release -p gatehouse-bench --bin gatehouse-bench -- {{ARGS}}
