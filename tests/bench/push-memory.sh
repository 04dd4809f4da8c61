#!/usr/bin/env bash
# Peak memory of `confine push` for a 10 MB and a 100 MB package, to the Jamf Pro and Kandji doubles:
# uploads stream from disk, so the figure must not grow with the package. Needs python3 with
# openapi-core (see .ci/run) and GNU time.
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --locked --release --quiet
confine="$PWD/target/release/confine"
work=$(mktemp -d)
pids=()
stdins=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT

secret=bench-secret-value
printf '%s' "$secret" > "$work/secret"
# Starts a double and sets the variable named like it to its port. Its stdin stays open (a FIFO held by
# this shell) until the script exits.
start_double() {
    mkfifo "$work/$1.in"
    python3 tests/mdm-double/double.py "$1" --secret-file "$work/secret" < "$work/$1.in" > "$work/$1.out" &
    pids+=($!)
    exec {fd}> "$work/$1.in"
    stdins+=("$fd")
    until grep -q PORT "$work/$1.out" 2>/dev/null; do sleep 0.2; done
    printf -v "$1" '%s' "$(awk '/PORT/{print $2}' "$work/$1.out")"
}
jamf="" kandji=""
start_double jamf
start_double kandji

for mb in 10 100; do
    head -c $((mb * 1000 * 1000)) /dev/urandom > "$work/blob-$mb"
    { cat src/spec/example-fleet.yaml
      printf '\npackage:\n  extra_payload:\n    - source: blob-%s\n      destination: /Library/Application Support/confine-bench/blob\n' "$mb"
      printf '\nmdm:\n  jamf:\n    url: http://127.0.0.1:%s\n    computer_groups: [AI Agent Macs]\n' "$jamf"
      printf '  kandji:\n    url: http://127.0.0.1:%s\n    blueprints: [AI Agent Macs]\n' "$kandji"
    } > "$work/fleet-$mb.yaml"
    "$confine" build "$work/fleet-$mb.yaml" --out "$work/dist-$mb" 2>/dev/null
    size=$(stat -c %s "$work"/dist-"$mb"/halfday-agents-1.0.0.pkg)
    for to in jamf kandji; do
        JAMF_CLIENT_ID=jamf-client JAMF_CLIENT_SECRET=$secret KANDJI_API_TOKEN=$secret \
            /usr/bin/time -f "$to: package $size bytes: %e s, peak memory %M KB" \
            "$confine" push "$work/fleet-$mb.yaml" --dist "$work/dist-$mb" --to "$to" 2>&1 >/dev/null \
            | grep 'peak memory'
    done
done
