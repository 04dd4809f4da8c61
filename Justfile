# confine's recipes. CI does not need just: .ci/run calls tests/run directly.
set shell := ["bash", "-euo", "pipefail", "-c"]

# list the recipes
default:
    @just --list

# build everything, tests included
build:
    cargo build --locked --all-targets

# install or check what the tests need, then run them (the same command CI runs; `just test --check` only checks)
test *args:
    tests/run {{args}}

# install the pinned real node, npm and OpenClaw the end-to-end tests run (~/.cache/confine-e2e)
e2e-tools:
    .ci/install-e2e-tools

# clippy with warnings as errors, and the formatting check
lint:
    cargo clippy --locked --all-targets -- -D warnings
    cargo fmt --all -- --check

# build the built-in example fleet into dist/
example:
    cargo run --locked --release -- build --example

# package-writer benchmarks: a generated tree against gzip -6; peak memory at 1x, 2x and 4x the bundle's
# file count; then the real tree (a locked OpenClaw bundle) against bsdtar --format odc | pigz -p 2 -6,
# wall time and peak memory
bench:
    cargo bench --locked --bench pkg
    cargo bench --locked --bench pkg -- memory
    cargo build --locked --release
    tests/bench/openclaw-bundle.sh target/release/confine

# push benchmark: peak memory of 10 MB and 100 MB package uploads to the Jamf and Kandji doubles
bench-push:
    tests/bench/push-memory.sh

# write the spec's JSON Schema for editors (yaml-language-server)
schema:
    cargo run --locked --quiet -- schema > fleet.schema.json

# interoperability with rcodesign (not in CI: installing it compiles apple-codesign for several minutes)
interop:
    #!/usr/bin/env bash
    set -euo pipefail
    command -v rcodesign >/dev/null || cargo install apple-codesign --locked
    cargo build --locked --quiet
    confine="$PWD/target/debug/confine"
    work=$(mktemp -d)
    python3 tests/tsa/tsa.py "$work/tsa" >"$work/port" &
    tsa=$!
    trap 'kill "$tsa"; rm -rf "$work"' EXIT
    until [ -s "$work/port" ]; do sleep 0.2; done
    url="http://127.0.0.1:$(cat "$work/port")/"
    export CONFINE_IDENTITY_PASSWORD=interop-password
    printf %s "$CONFINE_IDENTITY_PASSWORD" >"$work/password"
    "$confine" identity new --out "$work/ids" >/dev/null
    echo "== confine build, signed with identity new's .p12, timestamped by a local openssl ts authority"
    "$confine" build --example --out "$work/signed" --pkg-identity "$work/ids/installer-signing.p12" --timestamp-url "$url"
    echo "== rcodesign print-signature-info on confine's signed package"
    rcodesign print-signature-info "$work/signed/halfday-agents-1.0.0.pkg"
    echo "== rcodesign sign: an unsigned confine package, with identity new's .p12"
    "$confine" build --example --out "$work/unsigned"
    rcodesign sign --p12-file "$work/ids/installer-signing.p12" --p12-password-file "$work/password" \
        --timestamp-url "$url" "$work/unsigned/halfday-agents-1.0.0.pkg" "$work/resigned.pkg"
    echo "== confine verify on rcodesign's package"
    "$confine" verify --ca "$work/ids/dev-ca.pem" "$work/resigned.pkg"
    echo "== confine inspect on rcodesign's package (signatures)"
    "$confine" inspect "$work/resigned.pkg" | sed -n '1,8p'
# fuzz every target in fuzz/ for SECONDS each (needs nightly Rust and `cargo install cargo-fuzz`); crashes
# land in fuzz/artifacts/<target>/
fuzz seconds="60":
    cd fuzz && for target in $(cargo +nightly fuzz list); do \
        mkdir -p "corpus/$target"; \
        seeds=""; if [ -d "seeds/$target" ]; then seeds="seeds/$target"; fi; \
        cargo +nightly fuzz run "$target" "corpus/$target" $seeds -- \
            -max_total_time={{seconds}} -timeout=10 -rss_limit_mb=2048 -max_len=65536; \
    done
