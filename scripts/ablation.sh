#!/usr/bin/env bash
# ablation.sh: what each performance technique is worth, measured by switching it off (or, for
# lease reads, on) with the server's tuning flags, on fresh 3-node clusters, raftkv only.
#
#   scripts/ablation.sh [--repeat 3] [--duration 6] [--out FILE]
#
# Each repetition runs every configuration once, in an interleaved order, so that machine noise hits
# all of them alike; the table shows medians (ops/s also min–max) and the ratio of the production
# setting to the variant. Uses ../shared/tools (or $BENCH_TOOLS): raftkv-cluster.sh and kvbench.
# Raw results: JSON lines in FILE (default target/ablation-<time>.jsonl), labelled by configuration.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/bench-common.sh
. "$root/scripts/bench-common.sh"
repeat=3 duration=6 out=""
while [ $# -gt 0 ]; do
    case $1 in
    --repeat) repeat=$2 ;;
    --duration) duration=$2 ;;
    --out) out=$2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
    esac
    shift 2
done
cd "$root"
mkdir -p target
out=${out:-target/ablation-$(date +%Y%m%d-%H%M%S).jsonl}
touch "$out"
build_all
work=$(mktemp -d "${TMPDIR:-/tmp}/ablation.XXXXXX")
dir=""
cleanup() {
    [ -z "$dir" ] || "$tools/raftkv-cluster.sh" stop 3 "$dir" >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT

# label | workload | clients | server flags
points=(
    "default|put|1|"
    "default|put|64|"
    "default|get|1|"
    "default|get|64|"
    "no batching (--max-batch 1)|put|64|--max-batch 1"
    "no pipelining (--max-inflight 1)|put|64|--max-inflight 1"
    "leader fsync before sending (--serial-fsync)|put|1|--serial-fsync"
    "leader fsync before sending (--serial-fsync)|put|64|--serial-fsync"
    "fsync of commit-only changes (--fsync-commit-index)|put|1|--fsync-commit-index"
    "fsync of commit-only changes (--fsync-commit-index)|put|64|--fsync-commit-index"
    "one ReadIndex round per read (--read-round-per-read)|get|64|--read-round-per-read"
    "lease reads (--lease-reads)|get|1|--lease-reads"
    "lease reads (--lease-reads)|get|64|--lease-reads"
    "WAL appended, not preallocated (--wal-preallocate 0)|put|1|--wal-preallocate 0"
    "WAL appended, not preallocated (--wal-preallocate 0)|put|64|--wal-preallocate 0"
)

for ((r = 1; r <= repeat; r++)); do
    # A different rotation each repetition.
    n=${#points[@]}
    for ((k = 0; k < n; k++)); do
        IFS='|' read -r label wl c flags <<<"${points[$(((k + r * 5) % n))]}"
        [ "${QUIET_TIMEOUT:-60}" = 0 ] || "$tools/wait-quiet.sh" 15 "${QUIET_TIMEOUT:-60}" >/dev/null 2>&1 || true
        dir="$work/c$RANDOM"
        eps=$(RAFTKV_EXTRA_FLAGS="$flags" "$tools/raftkv-cluster.sh" start 3 "$dir" "$bin")
        line=$("$KVBENCH" --protocol resp --endpoints "$eps" --clients "$c" --workload "$wl" --duration "$duration" \
            --warmup 2 --watch-pids "$(cat "$dir"/n*.pid | paste -sd,)" --label "$label")
        "$tools/raftkv-cluster.sh" stop 3 "$dir" >/dev/null
        rm -rf "$dir"; dir=""
        echo "$line" >>"$out"
        echo "repetition $r: $label $wl $c: $(sed -n 's/.*"ops_per_sec":\([0-9.]*\).*/\1/p' <<<"$line") ops/s" >&2
    done
done

python3 - "$out" <<'EOF'
import json, statistics, sys
rows = [json.loads(line) for line in open(sys.argv[1]) if line.startswith("{")]
by = {}
for r in rows:
    by.setdefault((r["label"], r["workload"], r["clients"]), []).append(r)
def med(rs, f):
    return statistics.median(r[f] for r in rs)
def cpu(rs):
    return statistics.median(r["servers_cpu_pct"] / 100 / r["ops_per_sec"] * 1e6 for r in rs if r["ops_per_sec"])
print("| variant | workload | clients | runs | ops/s min / median / max | p50 µs | p99 µs | CPU µs/op | default ops/s ÷ variant | variant p50 ÷ default |")
print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
for (label, wl, c), rs in sorted(by.items(), key=lambda kv: (kv[0][0] != "default", kv[0])):
    ops = sorted(r["ops_per_sec"] for r in rs)
    base = by.get(("default", wl, c))
    ratio = f"{med(base, 'ops_per_sec') / med(rs, 'ops_per_sec'):.2f}" if base and label != "default" else "-"
    lat = f"{med(rs, 'p50_us') / med(base, 'p50_us'):.2f}" if base and label != "default" else "-"
    print(f"| {label} | {wl} | {c} | {len(rs)} | {ops[0]:,.0f} / **{statistics.median(ops):,.0f}** / {ops[-1]:,.0f} "
          f"| {med(rs, 'p50_us'):,.0f} | {med(rs, 'p99_us'):,.0f} | {cpu(rs):,.1f} | {ratio} | {lat} |")
EOF
