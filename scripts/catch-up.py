#!/usr/bin/env python3
"""A follower catches up on a large data set through chunked snapshots, while writes go on.

    scripts/catch-up.py [--mib 1024] [--binary target/release/raftkv] [--dir /tmp/raftkv-catch-up]

Starts a 3-node cluster on loopback, stops one follower, writes MIB values of 1 MiB each through
the leader, restarts the follower while a client keeps writing small keys, and waits until the
follower has applied what the leader had when it restarted. Prints the data size, how long the
catch-up took, and each node's peak resident memory (VmHWM: over the load for the others, over
its new life for the follower). Exits 1 if the follower does not catch up within --timeout.
"""

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

BASE = int(os.environ.get("CATCH_UP_PORT_BASE", "28000"))


def client_port(node):
    return BASE + 10 * node + 9


def peer_port(node):
    return BASE + 10 * node


def command(*args):
    out = [b"*%d\r\n" % len(args)]
    for arg in args:
        arg = arg if isinstance(arg, bytes) else str(arg).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(arg), arg))
    return b"".join(out)


class Connection:
    def __init__(self, node, timeout=60):
        self.sock = socket.create_connection(("127.0.0.1", client_port(node)), timeout=timeout)
        self.buffer = b""

    def line(self):
        while b"\r\n" not in self.buffer:
            chunk = self.sock.recv(1 << 16)
            if not chunk:
                raise ConnectionError("closed")
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\r\n", 1)
        return line

    def reply(self):
        line = self.line()
        if line[:1] == b"$":
            length = int(line[1:])
            if length < 0:
                return None
            while len(self.buffer) < length + 2:
                self.buffer += self.sock.recv(1 << 20)
            body, self.buffer = self.buffer[:length], self.buffer[length + 2:]
            return body
        return line

    def call(self, *args):
        self.sock.sendall(command(*args))
        return self.reply()


def info_field(node, field):
    try:
        text = Connection(node, timeout=5).call("INFO").decode()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith(field + ":"):
            return line.split(":", 1)[1].strip()
    return None


def peak_rss_mib(pid):
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--mib", type=int, default=1024)
    parser.add_argument("--binary", default="target/release/raftkv")
    parser.add_argument("--dir", default="/tmp/raftkv-catch-up")
    parser.add_argument("--timeout", type=float, default=600)
    options = parser.parse_args()

    shutil.rmtree(options.dir, ignore_errors=True)
    os.makedirs(options.dir)
    peers = ",".join(f"{node}=127.0.0.1:{peer_port(node)}" for node in (1, 2, 3))
    processes = {}

    def start(node):
        log = open(os.path.join(options.dir, f"n{node}.log"), "a")
        processes[node] = subprocess.Popen(
            [options.binary, "server", "--id", str(node), "--peers", peers,
             "--listen-client", f"127.0.0.1:{client_port(node)}", "--data-dir", os.path.join(options.dir, f"n{node}")],
            stdout=log, stderr=log)

    try:
        for node in (1, 2, 3):
            start(node)
        deadline = time.time() + 30
        leader = None
        while time.time() < deadline and not leader:
            leader = int(info_field(1, "leader_id") or 0) or None
            time.sleep(0.2)
        if not leader:
            sys.exit("no leader within 30 s")
        behind = next(node for node in (1, 2, 3) if node != leader)
        processes[behind].send_signal(signal.SIGKILL)
        processes[behind].wait()

        loader = Connection(leader)
        started = time.time()
        value = os.urandom(1 << 20)
        window = 8
        for key in range(options.mib):
            loader.sock.sendall(command("SET", f"big{key}", value))
            if key >= window:
                assert loader.reply() == b"+OK"
        for _ in range(min(window, options.mib)):
            assert loader.reply() == b"+OK"
        load_seconds = time.time() - started

        stop = threading.Event()
        written = [0]

        def writer():
            connection = Connection(leader)
            while not stop.is_set():
                if connection.call("SET", f"small{written[0] % 100}", "x") == b"+OK":
                    written[0] += 1

        thread = threading.Thread(target=writer, daemon=True)
        thread.start()
        time.sleep(0.5)
        target = int(info_field(leader, "applied_index"))
        start(behind)
        started = time.time()
        caught_up = False
        while time.time() - started < options.timeout:
            applied = int(info_field(behind, "applied_index") or 0)
            if applied >= target:
                caught_up = True
                break
            time.sleep(0.5)
        catch_up_seconds = time.time() - started
        stop.set()
        thread.join()

        print(f"data set: {options.mib} MiB in 1 MiB values; loaded in {load_seconds:.1f} s")
        print(f"follower {behind}: {'caught up to' if caught_up else 'did NOT reach'} index {target} "
              f"in {catch_up_seconds:.1f} s while {written[0]} small writes went on")
        for node in (1, 2, 3):
            role = "leader" if node == leader else ("restarted follower" if node == behind else "follower")
            peak = peak_rss_mib(processes[node].pid)
            ratio = f" ({peak / options.mib:.2f}x the data)" if peak else ""
            print(f"node {node} ({role}): peak resident memory {peak:.0f} MiB{ratio}")
        sys.exit(0 if caught_up else 1)
    finally:
        for process in processes.values():
            process.kill()
            process.wait()


if __name__ == "__main__":
    main()
