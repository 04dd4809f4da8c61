#!/usr/bin/env bash
# Benchmark on the real tree: `confine build` of a fleet with `openclaw.install: bundle` (the locked
# OpenClaw, ~40,000 files, ~650 MB) against `bsdtar --format odc | pigz -p 2 -6` over the same tree.
# Each is timed RUNS times (default 3), alternating; prints every time, the medians, their ratio and
# confine's peak RSS. The tarball cache is warmed first, so the timed builds make no network call.
# Needs npm (for `confine lock`, once), bsdtar, pigz and GNU time.
set -euo pipefail
confine=${1:?usage: openclaw-bundle.sh path/to/release/confine}
confine=$(realpath "$confine")
runs=${RUNS:-3}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
"$confine" init -q fleet.yaml
sed -i 's/^      install: npm /      install: bundle /' fleet.yaml
"$confine" lock -q
"$confine" build -q --out dist 2>/dev/null

mkdir unpacked tree
bsdtar -xf dist/halfday-agents-1.0.0.pkg -C unpacked
bsdtar -xf unpacked/*.pkg/Payload -C tree
echo "tree: $(find tree -type f | wc -l) files, $(du -sm tree | cut -f1) MB"

median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
for run in $(seq "$runs"); do
    /usr/bin/time -f '%e %M' -o confine.time "$confine" build -q --out "run$run" 2>/dev/null
    rm -rf "run$run"
    read -r seconds kib <confine.time
    echo "$seconds" >>confine.s
    echo "$kib" >>confine.kib
    /usr/bin/time -f '%e' -o pipeline.time sh -c 'bsdtar --format odc -cf - -C tree . | pigz -p 2 -6 >/dev/null'
    cat pipeline.time >>pipeline.s
    echo "run $run: confine build ${seconds}s (peak RSS $((kib / 1024)) MiB), pipeline $(cat pipeline.time)s"
done
confine_s=$(median <confine.s)
pipeline_s=$(median <pipeline.s)
peak_kib=$(sort -n confine.kib | tail -1)
echo "confine build: median ${confine_s}s, peak RSS $((peak_kib / 1024)) MiB"
echo "bsdtar --format odc | pigz -p 2 -6: median ${pipeline_s}s"
awk -v a="$confine_s" -v b="$pipeline_s" 'BEGIN { printf "ratio confine / pipeline: %.2f (goal <= 0.7)\n", a / b }'
