#!/usr/bin/env bash
# side-by-side.sh: raftkv against etcd on this machine, in one run, and one table.
#
#   scripts/side-by-side.sh [--repeat 3] [--duration 8] [--warmup 2] [--out FILE] [--extra-flags "..."]
#
# What it does:
#   1. installs etcd, Redis tools and protoc if missing (the shared tools' install-deps.sh; root or sudo);
#   2. builds raftkv (release) and the neutral load generator kvbench;
#   3. measures the physical floor: write+fdatasync latency on the disk the clusters use, and the
#      loopback TCP round trip;
#   4. runs the shared side-by-side driver (fresh 3-node clusters per point, fsync on for both, etcd
#      and raftkv alternating point by point) for: writes at 1, 16, 64 and 256 clients,
#      linearizable reads at 64 clients, and a 90/10 read/write mix at 64 clients, --repeat times;
#   5. prints one table: ops/s min/median/max, p50/p99/p99.9, server CPU per operation, and the
#      raftkv/etcd ratios, then the issue's targets with the measured ratio of each.
#
# The neutral tools live outside this repository, in ../shared/tools (override: $BENCH_TOOLS).
# --extra-flags passes server flags to every raftkv node (e.g. "--lease-reads" or "--max-batch 1").
# Raw results: JSON lines in FILE (default target/side-by-side-<time>.jsonl), the floor in FILE's
# name with -floor before .jsonl.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
tools="${BENCH_TOOLS:-$root/../shared/tools}"
repeat=3 duration=8 warmup=2 extra="" out=""
while [ $# -gt 0 ]; do
    case $1 in
    --repeat) repeat=$2 ;;
    --duration) duration=$2 ;;
    --warmup) warmup=$2 ;;
    --out) out=$2 ;;
    --extra-flags) extra=$2 ;;
    -h | --help) sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
    shift 2 || { echo "option $1 needs a value" >&2; exit 2; }
done
[ -x "$tools/side-by-side.sh" ] || { echo "side-by-side.sh: the shared benchmark tools are not at $tools (set BENCH_TOOLS)" >&2; exit 1; }

if ! command -v etcd >/dev/null || ! command -v protoc >/dev/null || ! command -v redis-benchmark >/dev/null; then
    if [ "$(id -u)" -eq 0 ]; then "$tools/install-deps.sh"; else sudo "$tools/install-deps.sh"; fi
fi

cd "$root"
mkdir -p target
out=${out:-target/side-by-side-$(date +%Y%m%d-%H%M%S).jsonl}
cargo build --quiet --release --bin raftkv
export CARGO_TARGET_DIR=${KVBENCH_TARGET:-/tmp/kvbench-target}
cargo build --quiet --release --manifest-path "$tools/kvbench/Cargo.toml"
export KVBENCH=$CARGO_TARGET_DIR/release/kvbench
unset CARGO_TARGET_DIR
export RAFTKV_EXTRA_FLAGS="$extra"

# The floor, measured where the clusters keep their data (the shared driver uses $TMPDIR).
floor_dir=$(mktemp -d "${TMPDIR:-/tmp}/floor.XXXXXX")
trap 'rm -rf "$floor_dir"' EXIT
# (in a file of their own: the shared driver's tables read every line of $out as a kvbench result)
floor=${out%.jsonl}-floor.jsonl
python3 "$tools/fsync-lat.py" --dir "$floor_dir" --count 2000 --max-seconds 20 | sed 's/^{/{"label":"fsync-lat",/' >>"$floor"
# The same with three writers at once: what a 3-node cluster on one disk pays, every node
# flushing the same write at about the same time.
for _ in 1 2 3; do
    python3 "$tools/fsync-lat.py" --dir "$floor_dir" --count 1000 --max-seconds 20 | sed 's/^{/{"label":"fsync-lat-3",/' >>"$floor" &
done
wait
python3 "$root/scripts/loopback-rtt.py" >>"$floor"

log=${out%.jsonl}.log
echo "side-by-side: $repeat repetitions; raw results in $out, driver log in $log" >&2
for ((r = 1; r <= repeat; r++)); do
    echo "repetition $r of $repeat" >&2
    "$tools/side-by-side.sh" --raftkv target/release/raftkv --workloads put --clients "1 16 64 256" \
        --duration "$duration" --warmup "$warmup" --out "$out" >>"$log" 2>&1
    "$tools/side-by-side.sh" --raftkv target/release/raftkv --workloads "get mixed:0.9" --clients 64 \
        --duration "$duration" --warmup "$warmup" --out "$out" >>"$log" 2>&1
done
python3 "$root/scripts/bench-report.py" "$out" "$floor"
