#!/usr/bin/env bash
# Benchmark on the real tree: `confine build` of a fleet with `openclaw.install: bundle` (the locked
# OpenClaw, ~40,000 files, ~650 MB) against `bsdtar --format odc | pigz -p 2 -6` over the same tree.
# Prints wall times, the ratio and confine's peak RSS. The tarball cache is warmed first, so the timed
# build makes no network call. Needs npm (for `confine lock`, once), bsdtar, pigz and GNU time.
set -euo pipefail
confine=${1:?usage: openclaw-bundle.sh path/to/release/confine}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
"$confine" init -q fleet.yaml
sed -i 's/^      install: npm /      install: bundle /' fleet.yaml
"$confine" lock -q
"$confine" build -q --out warm
rm -rf warm

/usr/bin/time -f '%e %M' -o confine.time "$confine" build -q --out dist
read -r confine_s confine_kib <confine.time

mkdir unpacked tree
bsdtar -xf dist/halfday-agents-1.0.0.pkg -C unpacked
bsdtar -xf unpacked/*.pkg/Payload -C tree
files=$(find tree -type f | wc -l)
/usr/bin/time -f '%e' -o pipeline.time sh -c 'bsdtar --format odc -cf - -C tree . | pigz -p 2 -6 >/dev/null'
read -r pipeline_s <pipeline.time

echo "tree: $files files, $(du -sm tree | cut -f1) MB"
echo "confine build: ${confine_s}s, peak RSS $((confine_kib / 1024)) MiB"
echo "bsdtar --format odc | pigz -p 2 -6: ${pipeline_s}s"
awk -v a="$confine_s" -v b="$pipeline_s" 'BEGIN { printf "ratio confine / pipeline: %.2f (goal <= 0.7)\n", a / b }'
