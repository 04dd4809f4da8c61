#!/usr/bin/env bash
# Benchmark on the real tree: `confine build` of a fleet with `openclaw.install: bundle` (the locked
# OpenClaw, ~40,000 files, ~650 MB) against `bsdtar --format odc | pigz -p 2 -6` over the same tree.
# Each is timed RUNS times (default 3), alternating; prints every wall time, the medians, their ratio,
# the CPU time (user + system) of each, which other load on the machine disturbs less, and confine's
# peak RSS. The tarball cache is warmed first, so the timed builds make no network call.
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
    /usr/bin/time -f '%e %U %S %M' -o confine.time "$confine" build -q --out "run$run" 2>/dev/null
    rm -rf "run$run"
    read -r seconds user system kib <confine.time
    echo "$seconds" >>confine.s
    echo "$user $system" | awk '{ print $1 + $2 }' >>confine.cpu
    echo "$kib" >>confine.kib
    /usr/bin/time -f '%e %U %S' -o pipeline.time sh -c 'bsdtar --format odc -cf - -C tree . | pigz -p 2 -6 >/dev/null'
    read -r p_seconds p_user p_system <pipeline.time
    echo "$p_seconds" >>pipeline.s
    echo "$p_user $p_system" | awk '{ print $1 + $2 }' >>pipeline.cpu
    echo "run $run: confine build ${seconds}s (CPU $(tail -1 confine.cpu)s, peak RSS $((kib / 1024)) MiB)," \
        "pipeline ${p_seconds}s (CPU $(tail -1 pipeline.cpu)s); load $(cut -d' ' -f1 /proc/loadavg)"
done
confine_s=$(median <confine.s)
pipeline_s=$(median <pipeline.s)
peak_kib=$(sort -n confine.kib | tail -1)
confine_cpu=$(median <confine.cpu)
pipeline_cpu=$(median <pipeline.cpu)
echo "confine build: median ${confine_s}s, CPU ${confine_cpu}s, peak RSS $((peak_kib / 1024)) MiB"
echo "bsdtar --format odc | pigz -p 2 -6: median ${pipeline_s}s, CPU ${pipeline_cpu}s"
awk -v a="$confine_s" -v b="$pipeline_s" -v c="$confine_cpu" -v d="$pipeline_cpu" \
    'BEGIN { printf "ratio confine / pipeline: wall %.2f (goal <= 0.7), CPU %.2f\n", a / b, c / d }'
