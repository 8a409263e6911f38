#!/usr/bin/env python3
"""bench-report: the side-by-side table (raftkv against etcd) from kvbench JSON lines.

  scripts/bench-report.py RESULTS.jsonl [FLOOR.jsonl]

Reads the lines written by scripts/side-by-side.sh: kvbench results labelled "etcd" and "raftkv"
(runs marked "excluded" by the shared driver are dropped and counted), "fsync-lat" and
"loopback-rtt" lines for the physical floor. Prints:
  - the floor (fdatasync after a small append, loopback TCP round trip);
  - per workload and client count: ops/s min/median/max for each system and the ratio of the
    medians (with the worst and best pairing of single runs), p50/p99/p99.9 medians, and the servers'
    CPU per operation (servers_cpu_pct / 100 / ops_per_sec, in µs of one core);
  - the issue's targets, each with its measured value.
"""
import json
import statistics
import sys


def load(paths):
    rows = [json.loads(line) for path in paths for line in open(path) if line.startswith("{")]
    kept = [r for r in rows if not r.get("excluded")]
    return kept, len(rows) - len(kept)


def med(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def fmt(v, digits=0):
    if v is None:
        return "-"
    return f"{v:,.{digits}f}"


def cpu_us_per_op(r):
    if not r.get("ops_per_sec") or r.get("servers_cpu_pct") is None:
        return None
    return r["servers_cpu_pct"] / 100 / r["ops_per_sec"] * 1e6


def main():
    if len(sys.argv) not in (2, 3):
        sys.exit(__doc__)
    rows, dropped = load(sys.argv[1:])
    fsync = next((r for r in rows if r.get("label") == "fsync-lat" and r.get("pattern") == "append"), None)
    rtt = next((r for r in rows if r.get("label") == "loopback-rtt"), None)
    print("## Physical floor\n")
    if fsync:
        print(f"- write {fsync['bs']} B + fdatasync (append): p50 {fsync['p50_us']} µs, p90 {fsync['p90_us']} µs, "
              f"p99 {fsync['p99_us']} µs (n={fsync['n']})")
    concurrent = {}
    for r in rows:
        if r.get("label") in ("fsync-lat", "fsync-lat-3"):
            concurrent.setdefault((r["label"], r["pattern"]), []).append(r["p50_us"])
    for (label, pattern), p50s in sorted(concurrent.items()):
        writers = "three writers at once" if label == "fsync-lat-3" else "one writer"
        print(f"- fdatasync p50, {pattern}, {writers}: {' / '.join(str(p) for p in sorted(p50s))} µs")
    if rtt:
        print(f"- loopback TCP round trip (64 B, Python both ends): p50 {rtt['p50_us']} µs, p99 {rtt['p99_us']} µs")
    points = {}
    for r in rows:
        if "workload" in r and r.get("label") in ("etcd", "raftkv"):
            points.setdefault((r["workload"], r["clients"]), {"etcd": [], "raftkv": []})[r["label"]].append(r)
    print(f"\n## raftkv / etcd, 3-node clusters on loopback ({dropped} runs dropped as contaminated by foreign load)\n")
    print("| workload | clients | runs e/r | etcd ops/s min / med / max | raftkv ops/s min / med / max "
          "| ops ratio (worst–best) | p50 µs e / r | p99 µs e / r | p99.9 µs e / r | CPU µs/op e / r | CPU/op ratio |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    summary = {}
    for (workload, clients), by in sorted(points.items(), key=lambda kv: (kv[0][0] != "put", kv[0][0], kv[0][1])):
        e, r = by["etcd"], by["raftkv"]
        if not e or not r:
            continue
        eo = sorted(x["ops_per_sec"] for x in e)
        ro = sorted(x["ops_per_sec"] for x in r)
        ratio = med(ro) / med(eo)
        s = {
            "ratio": ratio,
            "p50": (med(x["p50_us"] for x in e), med(x["p50_us"] for x in r)),
            "p99": (med(x["p99_us"] for x in e), med(x["p99_us"] for x in r)),
            "p999": (med(x["p999_us"] for x in e), med(x["p999_us"] for x in r)),
            "cpu": (med(cpu_us_per_op(x) for x in e), med(cpu_us_per_op(x) for x in r)),
        }
        summary[(workload, clients)] = s
        cpu_ratio = s["cpu"][1] / s["cpu"][0] if s["cpu"][0] and s["cpu"][1] is not None else None
        print(f"| {workload} | {clients} | {len(e)}/{len(r)} "
              f"| {fmt(eo[0])} / **{fmt(med(eo))}** / {fmt(eo[-1])} | {fmt(ro[0])} / **{fmt(med(ro))}** / {fmt(ro[-1])} "
              f"| **{ratio:.2f}** ({ro[0] / eo[-1]:.2f}–{ro[-1] / eo[0]:.2f}) "
              f"| {fmt(s['p50'][0])} / {fmt(s['p50'][1])} | {fmt(s['p99'][0])} / {fmt(s['p99'][1])} "
              f"| {fmt(s['p999'][0])} / {fmt(s['p999'][1])} | {fmt(s['cpu'][0], 1)} / {fmt(s['cpu'][1], 1)} "
              f"| {fmt(cpu_ratio, 2)} |")

    print("\n## Targets\n")

    def target(name, point, value, goal, ok):
        if point not in summary:
            print(f"- {name}: not measured")
            return
        print(f"- {name}: {value} (target {goal}) — {'met' if ok else 'NOT met'}")

    for clients in (64, 256):
        s = summary.get(("put", clients))
        if s:
            target(f"writes/s at {clients} clients", ("put", clients), f"{s['ratio']:.2f}× etcd", "≥ 2.0×", s["ratio"] >= 2.0)
    s = summary.get(("get", 64))
    if s:
        target("linearizable reads/s at 64 clients", ("get", 64), f"{s['ratio']:.2f}× etcd", "≥ 3.0×", s["ratio"] >= 3.0)
    s = summary.get(("put", 64))
    if s:
        e99, r99 = s["p99"]
        target("p99 write latency at 64 clients", ("put", 64), f"{fmt(r99)} µs vs etcd {fmt(e99)} µs", "≤ etcd", r99 <= e99)
        ec, rc = s["cpu"]
        if ec and rc is not None:
            target("server CPU per write at 64 clients", ("put", 64), f"{rc:.1f} vs {ec:.1f} µs = {rc / ec:.2f}×", "≤ 0.5×", rc / ec <= 0.5)
    s = summary.get(("put", 1))
    if s and fsync and rtt:
        floor = fsync["p50_us"] + rtt["p50_us"]
        p50 = s["p50"][1]
        three = sorted(concurrent.get(("fsync-lat-3", "overwrite"), []))
        shared = ""
        if three:
            # What a cluster on one disk pays: the three nodes flush at once (median of the writers).
            shared_floor = three[len(three) // 2] + rtt["p50_us"]
            shared = f"; {p50 / shared_floor:.2f}× the one-disk floor (3-writer overwrite fsync p50 + RTT = {fmt(shared_floor)} µs)"
        target("1-client write p50", ("put", 1), f"{fmt(p50)} µs = {p50 / floor:.2f}× (fsync p50 + RTT p50 = {fmt(floor)} µs){shared}",
               "≤ 1.5×", p50 <= 1.5 * floor)
    print("- pure core ≥ 1,000,000 committed entries/s: measured separately, `cargo bench -p bench`")


if __name__ == "__main__":
    main()
