# confine's recipes. CI does not need just: .ci/run calls cargo directly.
set shell := ["bash", "-euo", "pipefail", "-c"]

# list the recipes
default:
    @just --list

# build everything, tests included
build:
    cargo build --locked --all-targets

# run the test suite (the same command CI runs)
test:
    cargo test --locked

# clippy with warnings as errors, and the formatting check
lint:
    cargo clippy --locked --all-targets -- -D warnings
    cargo fmt --all -- --check

# build the built-in example fleet into dist/
example:
    cargo run --locked --release -- build --example

# package-writer benchmarks: a generated tree against gzip -6, then the real tree (a locked OpenClaw
# bundle) against bsdtar --format odc | pigz -p 2 -6; wall time and peak memory
bench:
    cargo bench --locked --bench pkg
    cargo build --locked --release
    tests/bench/openclaw-bundle.sh target/release/confine

# write the spec's JSON Schema for editors (yaml-language-server)
schema:
    cargo run --locked --quiet -- schema > fleet.schema.json
