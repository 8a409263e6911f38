#!/usr/bin/env python3
"""loopback-rtt: round trip of a 64-byte message over a TCP connection on 127.0.0.1 (TCP_NODELAY).

  scripts/loopback-rtt.py [--count 20000]

One JSON line: label "loopback-rtt", n, p50_us, p90_us, p99_us. The echo side is a thread of this
process; both ends are Python, so the figure includes a few microseconds of interpreter time per hop
(an upper bound of what the kernel's loopback costs).
"""
import argparse
import json
import socket
import threading
import time


def echo(server):
    conn, _ = server.accept()
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    with conn:
        while True:
            data = conn.recv(64)
            if not data:
                return
            conn.sendall(data)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--count", type=int, default=20000)
    a = ap.parse_args()
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    threading.Thread(target=echo, args=(server,), daemon=True).start()
    client = socket.create_connection(server.getsockname())
    client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    message = b"x" * 64
    lat = []
    for _ in range(a.count):
        t0 = time.perf_counter_ns()
        client.sendall(message)
        got = 0
        while got < len(message):
            got += len(client.recv(64 - got))
        lat.append((time.perf_counter_ns() - t0) / 1000)
    client.close()
    lat.sort()
    pct = lambda p: round(lat[min(len(lat) - 1, int(p * len(lat)))], 1)
    print(json.dumps({"label": "loopback-rtt", "n": len(lat), "p50_us": pct(0.5), "p90_us": pct(0.9), "p99_us": pct(0.99)}))


if __name__ == "__main__":
    main()
