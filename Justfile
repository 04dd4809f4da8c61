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

# fuzz one reader (plist: profiles; pkg: inspect and verify) for SECONDS, seeded with the example build
# and Apple's 2011 package; needs nightly Rust and cargo-fuzz. Crashes land in fuzz/artifacts/TARGET.
fuzz target="pkg" seconds="300":
    cargo run --locked --quiet -- build --example --out target/fuzz-seeds
    mkdir -p fuzz/corpus/{{target}}
    if [ {{target}} = pkg ]; then cp target/fuzz-seeds/*.pkg ../shared/fixtures/*.pkg fuzz/corpus/pkg/; fi
    if [ {{target}} = plist ]; then cp target/fuzz-seeds/profiles/*.mobileconfig fuzz/corpus/plist/; fi
    cargo +nightly fuzz run {{target}} -- -max_total_time={{seconds}} -rss_limit_mb=1024 -timeout=10
