"""The string and key commands as redis-py calls them, with Redis's answers and edge cases, against
every node (followers forward). Usage: redis_py_strings.py PORT [PORT...]. Exits non-zero,
naming the check, on any failure."""
import sys
import time

import redis

from redis_py_common import connections, refused

ports = [int(port) for port in sys.argv[1:]]


for r, where, k, another in connections(ports, "str"):
    # Counters.
    assert r.incr(f"{k}:n") == 1, where
    assert r.incr(f"{k}:n", 10) == 11, where
    assert r.decr(f"{k}:n") == 10, where
    assert r.decr(f"{k}:n", 20) == -10, where
    assert r.get(f"{k}:n") == b"-10", where
    r.set(f"{k}:text", "abc")
    refused(lambda: r.incr(f"{k}:text"), "not an integer", where)
    r.set(f"{k}:max", str(2**63 - 1))
    refused(lambda: r.incr(f"{k}:max"), "overflow", where)
    refused(lambda: r.incrby(f"{k}:n", "x"), "not an integer", where)
    # SET's options, SETNX, GETSET, GETDEL.
    assert r.set(f"{k}:a", "1", nx=True) is True, where
    assert r.set(f"{k}:a", "2", nx=True) is None, where
    assert r.set(f"{k}:b", "1", xx=True) is None, where
    assert r.set(f"{k}:a", "3", xx=True) is True, where
    assert r.set(f"{k}:a", "4", get=True) == b"3", where
    assert r.setnx(f"{k}:a", "5") is False, where
    assert r.setnx(f"{k}:c", "5") is True, where
    assert r.getset(f"{k}:c", "6") == b"5", where
    assert r.getdel(f"{k}:c") == b"6", where
    assert r.getdel(f"{k}:c") is None, where
    # Expiry: by the log's time, as Redis answers it.
    assert r.set(f"{k}:e", "1", ex=100) is True and 95 <= r.ttl(f"{k}:e") <= 100, where
    assert 95_000 <= r.pttl(f"{k}:e") <= 100_000, where
    assert r.set(f"{k}:e", "2", keepttl=True) is True and r.ttl(f"{k}:e") > 0, where
    assert r.set(f"{k}:e", "3") is True and r.ttl(f"{k}:e") == -1, "a plain SET clears the time to live: " + where
    assert r.ttl(f"{k}:missing") == -2 and r.pttl(f"{k}:missing") == -2, where
    assert r.expire(f"{k}:e", 50) is True and r.expire(f"{k}:e", 10, gt=True) is False, where
    assert r.expire(f"{k}:e", 10, lt=True) is True and 8 <= r.ttl(f"{k}:e") <= 10, where
    assert r.expire(f"{k}:e", 20, nx=True) is False and r.expire(f"{k}:e", 20, xx=True) is True, where
    assert r.persist(f"{k}:e") is True and r.persist(f"{k}:e") is False and r.ttl(f"{k}:e") == -1, where
    assert r.pexpireat(f"{k}:e", 4102444800000) is True and r.expiretime(f"{k}:e") == 4102444800, where
    assert r.pexpiretime(f"{k}:e") == 4102444800000, where
    assert r.setex(f"{k}:e", 30, "4") is True and r.get(f"{k}:e") == b"4" and 28 <= r.ttl(f"{k}:e") <= 30, where
    assert r.psetex(f"{k}:e", 30_000, "5") is True and 28 <= r.ttl(f"{k}:e") <= 30, where
    assert r.getex(f"{k}:e", persist=True) == b"5" and r.ttl(f"{k}:e") == -1, where
    assert r.getex(f"{k}:e", px=200_000) == b"5" and 195_000 <= r.pttl(f"{k}:e") <= 200_000, where
    assert r.set(f"{k}:short", "x", px=150) is True and r.get(f"{k}:short") == b"x", where
    deadline = time.time() + 5
    while r.get(f"{k}:short") is not None:
        assert time.time() < deadline, f"{where}: a key set with PX 150 still there after 5 s"
        time.sleep(0.05)
    assert r.exists(f"{k}:short") == 0 and r.ttl(f"{k}:short") == -2, where
    assert r.expire(f"{k}:e", -1) is True and r.get(f"{k}:e") is None, "EXPIRE in the past removes: " + where
    refused(lambda: r.set(f"{k}:a", "1", ex=0), "invalid expire time", where)
    refused(lambda: r.execute_command("SET", f"{k}:a", "1", "EX", "10", "PX", "10"), "syntax error", where)
    refused(lambda: r.expire(f"{k}:a", 10, nx=True, gt=True), "not compatible", where)
    refused(lambda: r.execute_command("SET", f"{k}:a", "1", "NX", "XX"), "syntax error", where)
    # Ranges, floats, copies.
    r.set(f"{k}:s", "Hello World")
    assert r.getrange(f"{k}:s", 0, 4) == b"Hello" and r.getrange(f"{k}:s", -5, -1) == b"World", where
    assert r.getrange(f"{k}:s", 5, 2) == b"" and r.getrange(f"{k}:s", 0, 100) == b"Hello World", where
    assert r.getrange(f"{k}:none", 0, 10) == b"", where
    assert r.setrange(f"{k}:s", 6, "Redis") == 11 and r.get(f"{k}:s") == b"Hello Redis", where
    assert r.setrange(f"{k}:pad", 3, "x") == 4 and r.get(f"{k}:pad") == b"\x00\x00\x00x", where
    refused(lambda: r.setrange(f"{k}:s", -1, "x"), "out of range", where)
    assert r.incrbyfloat(f"{k}:f", 10.5) == 10.5 and r.incrbyfloat(f"{k}:f", 0.1) == 10.6, where
    assert r.get(f"{k}:f") == b"10.6", where
    refused(lambda: r.incrbyfloat(f"{k}:s", 1), "not a valid float", where)
    assert r.copy(f"{k}:s", f"{k}:copy") is True and r.get(f"{k}:copy") == b"Hello Redis", where
    assert r.copy(f"{k}:s", f"{k}:copy") is False, where
    assert r.copy(f"{k}:f", f"{k}:copy", replace=True) is True and r.get(f"{k}:copy") == b"10.6", where
    assert r.randomkey() is not None, where
    # Several keys at once.
    assert r.mset({f"{k}:m1": "x", f"{k}:m2": "y"}) is True, where
    assert r.mget(f"{k}:m1", f"{k}:missing", f"{k}:m2") == [b"x", None, b"y"], where
    assert r.msetnx({f"{k}:m1": "z", f"{k}:m3": "z"}) is False, where
    assert r.get(f"{k}:m3") is None, "MSETNX set nothing: " + where
    assert r.msetnx({f"{k}:m4": "z", f"{k}:m5": "z"}) is True, where
    assert r.strlen(f"{k}:m1") == 1 and r.strlen(f"{k}:missing") == 0, where
    assert r.unlink(f"{k}:m4", f"{k}:m5") == 2, where
    assert r.dbsize() > 0, where
    # Keys.
    assert sorted(r.keys(f"{k}:m?")) == [f"{k}:m1".encode(), f"{k}:m2".encode()], where
    assert r.keys(f"{k}:[a]") == [f"{k}:a".encode()], where
    assert r.type(f"{k}:a") in (b"string", "string") and r.type(f"{k}:none") in (b"none", "none"), where
    assert r.touch(f"{k}:a", f"{k}:none") == 1, where
    assert r.rename(f"{k}:a", f"{k}:renamed") is True, where
    assert r.get(f"{k}:renamed") == b"4" and r.get(f"{k}:a") is None, where
    refused(lambda: r.rename(f"{k}:a", f"{k}:x"), "no such key", where)
    assert r.renamenx(f"{k}:renamed", f"{k}:m1") is False, where
    # SCAN: every key, whatever the page size; MATCH filters; TYPE of another kind finds none.
    for count in (1, 3, 1000):
        found = set(r.scan_iter(match=f"{k}:m?", count=count))
        assert found == {f"{k}:m1".encode(), f"{k}:m2".encode()}, f"{where}, count {count}: {found}"
    assert list(r.scan_iter(match=f"{k}:*", _type="hash")) == [], where
    # A transaction: redis-py's pipeline() wraps its commands in MULTI/EXEC by default.
    pipe = r.pipeline()
    pipe.set(f"{k}:t", "1").incr(f"{k}:t").get(f"{k}:t").mget(f"{k}:t", f"{k}:none").delete(f"{k}:t")
    assert pipe.execute() == [True, 2, b"2", [b"2", None], 1], where
    # WATCH: redis-py's transaction() helper runs; a watched key changed by another client
    # makes EXEC run nothing (WatchError).
    r.set(f"{k}:w", "1")

    def double(pipe):
        value = int(pipe.get(f"{k}:w"))
        pipe.multi()
        pipe.set(f"{k}:w", value * 2)

    r.transaction(double, f"{k}:w")
    assert r.get(f"{k}:w") == b"2", where
    other = another()
    pipe = r.pipeline()
    pipe.watch(f"{k}:w")
    other.set(f"{k}:w", "100")
    pipe.multi()
    pipe.set(f"{k}:w", "5")
    try:
        pipe.execute()
        raise AssertionError(f"{where}: EXEC ran although a watched key changed")
    except redis.WatchError:
        pass
    assert r.get(f"{k}:w") == b"100", where
    pipe.reset()
    # Changed and changed back (ABA), or set to the value it had, or a missing key created and
    # deleted again: each is a change, and EXEC runs nothing (as Redis does).
    for change in (
        lambda: (other.set(f"{k}:w", "200"), other.set(f"{k}:w", "100")),
        lambda: other.set(f"{k}:w", "100"),
        lambda: other.expire(f"{k}:w", 1000),
    ):
        pipe = r.pipeline()
        pipe.watch(f"{k}:w", f"{k}:absent")
        change()
        pipe.multi()
        pipe.set(f"{k}:w", "5")
        try:
            pipe.execute()
            raise AssertionError(f"{where}: EXEC ran although a watched key changed and changed back")
        except redis.WatchError:
            pass
        pipe.reset()
    pipe = r.pipeline()
    pipe.watch(f"{k}:absent")
    other.set(f"{k}:absent", "1")
    other.delete(f"{k}:absent")
    pipe.multi()
    pipe.set(f"{k}:w", "5")
    try:
        pipe.execute()
        raise AssertionError(f"{where}: EXEC ran although a watched missing key was created and deleted")
    except redis.WatchError:
        pass
    pipe.reset()
    assert r.get(f"{k}:w") == b"100", where
    # Keys nobody touched: EXEC runs.
    pipe = r.pipeline()
    pipe.watch(f"{k}:w", f"{k}:absent")
    other.set(f"{k}:elsewhere", "1")
    pipe.multi()
    pipe.set(f"{k}:w", "6")
    assert pipe.execute() == [True], where
    other.close()
    # A bad argument is an error in EXEC's reply, in its place; the rest is applied (as Redis does).
    pipe = r.pipeline()
    pipe.set(f"{k}:t", "1").incrby(f"{k}:t", "x").incr(f"{k}:t")
    replies = pipe.execute(raise_on_error=False)
    assert replies[0] is True and isinstance(replies[1], redis.ResponseError) and replies[2] == 2, f"{where}: {replies}"
    # A command Redis would not queue (wrong arity) discards the whole transaction.
    pipe = r.pipeline()
    pipe.set(f"{k}:u", "1").execute_command("INCRBY", f"{k}:u")
    try:
        pipe.execute()
        raise AssertionError(f"{where}: a transaction with a wrong-arity command ran")
    except redis.ResponseError as error:
        assert "EXECABORT" in str(error) or "wrong number" in str(error), f"{where}: {error!r}"
    assert r.get(f"{k}:u") is None, f"{where}: nothing of the discarded transaction was applied"
# Last, as it empties the database for every node.
r = redis.Redis(host="127.0.0.1", port=ports[-1], socket_timeout=10)
assert r.flushdb() is True
for port in ports:
    assert redis.Redis(host="127.0.0.1", port=port, socket_timeout=10).dbsize() == 0, f"port {port}: FLUSHDB emptied every node"
print("redis-py", redis.__version__, "string commands ok against ports", ports)
