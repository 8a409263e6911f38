#!/usr/bin/env python3
"""perf-categories: where a process's CPU goes, by kind of work, from `perf script` output.

  perf script -i perf.data | scripts/perf-categories.py

Each sample (a call stack, leaf first) is put in the first category below that one of its frames
matches; the kernel categories come first because a syscall's stack also holds the user code that
made it. Prints one line per category: share of samples and the top leaf symbols in it.
"""
import re
import sys
from collections import Counter, defaultdict

# (category, pattern on a frame's symbol), in priority order.
RULES = [
    ("disk: WAL write + fsync (kernel)", r"fsync|fdatasync|ext4_|jbd2|blk_|submit_bio|io_schedule|__x64_sys_write$|ksys_write|vfs_write|filemap_"),
    ("network: TCP send/receive (kernel)", r"tcp_|sock_|__sys_sendto|__sys_recvfrom|sendmsg|recvmsg|__send\b|__recv|inet_|ip_|__dev_queue|net_rx|loopback"),
    ("epoll / timers (kernel)", r"epoll|hrtimer|schedule_hrtimeout"),
    ("thread park / wake-up (futex, eventfd, scheduler)", r"futex|eventfd|try_to_wake_up|finish_task_switch|schedule\b|__schedule|park_condvar|Unparker"),
    ("RESP parsing and replies", r"^resp::|client_port|request::"),
    ("checksums (CRC-32C)", r"crc32c"),
    ("peer frame encode/decode", r"raft::codec|transport::frame"),
    ("storage (user side: record building)", r"^storage::"),
    ("Raft core", r"^raft::"),
    ("state machine apply + waiting callers", r"^kv::|apply::Applier"),
    ("transport tasks (queues, batching)", r"^transport::"),
    ("memory allocation / copies", r"malloc|free|realloc|memcpy|memmove|_int_|cfree|alloc::"),
    ("tokio runtime (scheduling tasks)", r"^tokio::"),
    ("other kernel", r"^\S+$"),
]
COMPILED = [(name, re.compile(pattern)) for name, pattern in RULES]
FRAME = re.compile(r"^\s+[0-9a-f]+\s+(.+?)\s+\((.*)\)$")


def samples(lines):
    stack = []
    for line in lines:
        if not line.strip():
            if stack:
                yield stack
            stack = []
            continue
        match = FRAME.match(line)
        if match:
            symbol = re.sub(r"\+0x[0-9a-f]+$", "", match.group(1))
            symbol = re.sub(r"::h[0-9a-f]{16}$", "", symbol)
            stack.append(symbol.removeprefix("<").split(" as ")[0])
    if stack:
        yield stack


def main():
    counts, leaves, total = Counter(), defaultdict(Counter), 0
    for stack in samples(sys.stdin):
        total += 1
        category = "other"
        for name, pattern in COMPILED:
            if any(pattern.search(frame) for frame in stack):
                category = name
                break
        counts[category] += 1
        leaves[category][stack[0]] += 1
    if not total:
        sys.exit("no samples")
    print(f"{total} samples")
    print("| share | category | top leaf symbols |")
    print("|---:|---|---|")
    for category, n in counts.most_common():
        top = ", ".join(f"`{sym[:60]}` {c * 100 / total:.1f}%" for sym, c in leaves[category].most_common(3))
        print(f"| {n * 100 / total:.1f}% | {category} | {top} |")


if __name__ == "__main__":
    main()
