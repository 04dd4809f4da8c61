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

# package-writer benchmark: wall time and peak memory against gzip -6 on a large tree
bench:
    cargo bench --locked --bench pkg

# write the spec's JSON Schema for editors (yaml-language-server)
schema:
    cargo run --locked --quiet -- schema > fleet.schema.json

# fuzz every target in fuzz/ for SECONDS each (needs nightly Rust and `cargo install cargo-fuzz`); crashes
# land in fuzz/artifacts/<target>/
fuzz seconds="60":
    cd fuzz && for target in $(cargo +nightly fuzz list); do \
        mkdir -p "corpus/$target"; \
        seeds=""; if [ -d "seeds/$target" ]; then seeds="seeds/$target"; fi; \
        cargo +nightly fuzz run "$target" "corpus/$target" $seeds -- \
            -max_total_time={{seconds}} -timeout=10 -rss_limit_mb=2048 -max_len=65536; \
    done
