"""The same seeded random commands to a raftkv node and to redis-server, replies compared.

Usage: redis_differential.py RAFTKV_PORT REDIS_PORT SEEDS. Each seed empties both databases,
then sends up to 60 commands drawn from a few keys, values and numbers (edges of 64 bits,
non-integers) and stops at its first difference: the same reply (RESP2, as redis-py reads it;
KEYS sorted), or errors of the same first word. INCRBYFLOAT is left out: Redis computes in 80-bit
long doubles, raftkv in 64-bit doubles, so their last digits can differ. Exits non-zero, printing
the first differences, if any seed had one."""
import random
import sys

import redis

raftkv_port, redis_port, seeds = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
keys = ["a", "b", "c", "n"]
values = ["", "1", "-5", "10", "abc", "3.5", "9223372036854775807", "x" * 30]
numbers = ["0", "1", "-1", "2", "5", "-3", "100", "9223372036854775807", "-9223372036854775808", "x", "1.5"]


def command(rng):
    k = lambda: rng.choice(keys)
    v = lambda: rng.choice(values)
    n = lambda: rng.choice(numbers)
    choices = [
        lambda: ["GET", k()], lambda: ["SET", k(), v()], lambda: ["SET", k(), v(), rng.choice(["NX", "XX", "GET"])],
        lambda: ["SET", k(), v(), "NX", "GET"], lambda: ["APPEND", k(), v()], lambda: ["DEL", k(), k()], lambda: ["EXISTS", k(), k()],
        lambda: ["INCR", k()], lambda: ["DECR", k()], lambda: ["INCRBY", k(), n()], lambda: ["DECRBY", k(), n()],
        lambda: ["SETNX", k(), v()], lambda: ["GETSET", k(), v()], lambda: ["GETDEL", k()], lambda: ["MGET", k(), k(), k()],
        lambda: ["MSET", k(), v(), k(), v()], lambda: ["MSETNX", k(), v(), k(), v()], lambda: ["STRLEN", k()], lambda: ["DBSIZE"],
        lambda: ["TYPE", k()], lambda: ["RENAME", k(), k()], lambda: ["RENAMENX", k(), k()], lambda: ["GETRANGE", k(), n(), n()],
        lambda: ["SETRANGE", k(), rng.choice(["0", "1", "3", "-1"]), v()], lambda: ["COPY", k(), k()], lambda: ["COPY", k(), k(), "REPLACE"],
        lambda: ["UNLINK", k()], lambda: ["TOUCH", k(), k()],
        lambda: ["KEYS", rng.choice(["*", "a*", "[ab]", "?"])],
    ]
    return rng.choice(choices)()


def reply(client, words):
    try:
        result = client.execute_command(*words)
        if isinstance(result, list) and words[0] == "KEYS":
            result = sorted(result)
        return ("ok", result)
    except redis.ResponseError as error:
        return ("error", str(error).split(" ")[0])


differences = 0
for seed in range(1, seeds + 1):
    rng = random.Random(seed)
    ours = redis.Redis(port=raftkv_port, protocol=2)
    theirs = redis.Redis(port=redis_port, protocol=2)
    ours.flushdb()
    theirs.flushdb()
    for step in range(60):
        words = command(rng)
        a, b = reply(ours, words), reply(theirs, words)
        if a != b:
            differences += 1
            if differences <= 15:
                print(f"seed {seed} step {step}: {words}: raftkv {a} redis {b}")
            break
print(f"{seeds} seeds, {differences} with a difference")
sys.exit(1 if differences else 0)
