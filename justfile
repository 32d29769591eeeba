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
