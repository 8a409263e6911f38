#!/usr/bin/env bash
# scale.sh: how raftkv's cost grows with the work, on fresh 3-node clusters on loopback.
#
#   scripts/scale.sh [clients|values|data|all] [--duration 6] [--out FILE]
#
#   clients  writes and linearizable reads, 256 B values, at 1, 4, 16, 64, 256 and 1024 clients
#   values   writes and reads at 64 clients with 16 B, 256 B, 4 KiB, 16 KiB and 64 KiB values
#   data     data sets of 16 KiB values: 10 MB, 100 MB and 1 GB (640, 6,400 and 65,536 keys),
#            loaded through kvbench's prefill; reports each node's resident memory, memory per key,
#            the snapshot's encode and write times (from the nodes' logs), and the restart time of the
#            whole cluster after kill -9 (until every node serves and the last key reads back)
#
# Uses the shared tools (../shared/tools, or $BENCH_TOOLS): raftkv-cluster.sh and kvbench. Prints one
# table per part; raw kvbench results go to FILE (default target/scale-<time>.jsonl).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/bench-common.sh
. "$root/scripts/bench-common.sh"
part=${1:-all}
[ $# -gt 0 ] && shift
duration=6 out=""
while [ $# -gt 0 ]; do
    case $1 in
    --duration) duration=$2 ;;
    --out) out=$2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
    esac
    shift 2
done
cd "$root"
mkdir -p target
out=${out:-target/scale-$(date +%Y%m%d-%H%M%S).jsonl}
build_all
export RAFTKV_START_TIMEOUT=${RAFTKV_START_TIMEOUT:-180}
work=$(mktemp -d "${TMPDIR:-/tmp}/scale.XXXXXX")
dir=""
cleanup() {
    [ -z "$dir" ] || "$tools/raftkv-cluster.sh" stop 3 "$dir" >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT

rss_mib() { awk '/^VmRSS/ { printf "%.0f", $2 / 1024 }' "/proc/$1/status"; }
pids() { cat "$dir"/n*.pid | paste -sd,; }

# point WORKLOAD CLIENTS VALUE_SIZE: one kvbench run on a fresh cluster; prints the JSON line.
point() {
    dir="$work/c$RANDOM"
    local eps line
    eps=$("$tools/raftkv-cluster.sh" start 3 "$dir" "$bin")
    line=$("$KVBENCH" --protocol resp --endpoints "$eps" --clients "$2" --workload "$1" --value-size "$3" \
        --duration "$duration" --warmup 2 --timeout 10 --watch-pids "$(pids)" --label raftkv)
    local rss; rss=$(for p in $(cat "$dir"/n*.pid); do rss_mib "$p"; echo; done | sort -n | tail -1)
    "$tools/raftkv-cluster.sh" stop 3 "$dir" >/dev/null
    rm -rf "$dir"; dir=""
    line="${line%\}},\"max_rss_mib\":$rss}"
    echo "$line" >>"$out"
    echo "$line"
}

row() {
    python3 - "$1" "$2" <<'EOF'
import json, sys
r = json.loads(sys.argv[1])
size = int(sys.argv[2])
cpu = r["servers_cpu_pct"] / 100 / r["ops_per_sec"] * 1e6 if r["ops_per_sec"] else 0
mb = r["ops_per_sec"] * size / 1e6
cells = [r["workload"], r["clients"], size, f"{r['ops_per_sec']:,.0f}", f"{mb:,.1f}", f"{r['p50_us']:,}",
         f"{r['p99_us']:,}", r["errors"], f"{cpu:,.1f}", r["max_rss_mib"]]
print("| " + " | ".join(str(c) for c in cells) + " |")
EOF
}

header() {
    echo "| workload | clients | value B | ops/s | MB/s of values | p50 µs | p99 µs | errors | server CPU µs/op | max node RSS MiB |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
}

if [ "$part" = clients ] || [ "$part" = all ]; then
    echo "## Throughput against clients (256 B values, ${duration} s per point)"; echo; header
    for wl in put get; do
        for c in 1 4 16 64 256 1024; do row "$(point "$wl" "$c" 256)" 256; done
    done
    echo
fi

if [ "$part" = values ] || [ "$part" = all ]; then
    echo "## Throughput against value size (64 clients, ${duration} s per point)"; echo; header
    for wl in put get; do
        for size in 16 256 4096 16384 65536; do row "$(point "$wl" 64 "$size")" "$size"; done
    done
    echo
fi

if [ "$part" = data ] || [ "$part" = all ]; then
    echo "## Data set size (16 KiB values)"; echo
    echo "| data set | keys | RSS per node MiB (n1/n2/n3) | bytes of RSS per byte of data | snapshot ms: encode / encode + write (background) / save on the Raft loop | restart until served s |"
    echo "|---:|---:|---:|---:|---:|---:|"
    for keys in 640 6400 65536; do
        dir="$work/d$keys"
        eps=$("$tools/raftkv-cluster.sh" start 3 "$dir" "$bin")
        idle=$(rss_mib "$(cat "$dir/n1.pid")")
        # The prefill of a read workload writes every key once; the reads after it are short.
        "$KVBENCH" --protocol resp --endpoints "$eps" --clients 64 --workload get --keys "$keys" --value-size 16384 \
            --duration 1 --warmup 0 --timeout 30 --label raftkv >>"$out"
        sleep 2
        rss=$(for p in $(cat "$dir"/n*.pid); do rss_mib "$p"; echo; done | paste -sd/)
        max=$(echo "$rss" | tr / '\n' | sort -n | tail -1)
        per_byte=$(python3 -c "print(round(($max - $idle) * 1048576 / ($keys * 16384), 2))")
        snap=$(python3 - "$dir"/n*.log <<'EOF'
import re, sys
logs = [re.sub(r"\x1b\[[0-9;]*m", "", open(f).read()) for f in sys.argv[1:]]
enc = [int(m) for log in logs for m in re.findall(r"encode_ms=(\d+)", log)]
total = [int(m) for log in logs for m in re.findall(r"encode_and_stage_ms=(\d+)", log)]
rename = [int(m) for log in logs for m in re.findall(r"write_ms=(\d+)", log)]
print(f"{max(enc)} / {max(total)} / {max(rename)}" if enc and total and rename else "none taken")
EOF
)
        # Whole-cluster crash, then restart on the same directories.
        kill -9 $(cat "$dir"/n*.pid) 2>/dev/null || true
        sleep 1
        started=$(date +%s.%N)
        eps=$("$tools/raftkv-cluster.sh" start 3 "$dir" "$bin")
        last=$(printf 'kvbench-%08d' $((keys - 1)))
        until [ -n "$("$bin" get "$last" --endpoints "$eps" 2>/dev/null | grep -v '(nil)')" ]; do sleep 0.1; done
        restart=$(python3 -c "import time; print(round(time.time() - $started, 1))")
        mb=$((keys * 16384 / 1000000))
        echo "| $mb MB | $keys | $rss | $per_byte | $snap | $restart |"
        "$tools/raftkv-cluster.sh" stop 3 "$dir" >/dev/null
        rm -rf "$dir"; dir=""
    done
    echo
fi
