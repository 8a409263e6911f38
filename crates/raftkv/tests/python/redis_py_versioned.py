"""Compare-and-set as a redis-py user writes it: VGET, VSET and VDEL through execute_command,
against every node (followers forward), with RESP3 (redis-py's default) and RESP2; and a lock
taken with SET NX PX and given back with DELEX IFEQ (Redis 8.4) or DELIFEQ (Valkey 9). Usage:
redis_py_versioned.py PORT [PORT...]. Exits non-zero, naming the check, on any failure."""
import sys

import redis

from redis_py_common import connections, refused

ports = [int(port) for port in sys.argv[1:]]


for r, where, k, _ in connections(ports, "cas"):
    # A missing key reads as no value at version 0, and version 0 creates it.
    assert r.execute_command("VGET", k) == [None, 0], where
    refused(lambda: r.execute_command("VSET", k, "x", 1), "NOKEY", where)
    assert r.execute_command("VSET", k, "a", 0) == 1, where
    assert r.execute_command("VGET", k) == [b"a", 1], where
    refused(lambda: r.execute_command("VSET", k, "b", 0), "VERSION the key is at version 1", where)
    assert r.execute_command("VSET", k, "b", 1) == 2, where
    # Every write counts as a change, by any command.
    r.append(k, "c")
    assert r.execute_command("VGET", k) == [b"bc", 3], where
    refused(lambda: r.execute_command("VSET", k, "d", 2), "VERSION the key is at version 3", where)
    refused(lambda: r.execute_command("VSET", k, "d", -1), "not an integer", where)
    refused(lambda: r.execute_command("VSET", k, "d"), "wrong number of arguments", where)
    # VDEL: only at the version read.
    refused(lambda: r.execute_command("VDEL", k, 2), "VERSION", where)
    assert r.execute_command("VDEL", k, 3) == 1, where
    assert r.execute_command("VGET", k) == [None, 0], where
    assert r.execute_command("VDEL", k, 0) == 0, where
    # In a transaction, VSET is queued like any write.
    pipe = r.pipeline()
    pipe.execute_command("VSET", k, "t", 0).execute_command("VSET", k, "u", 5).get(k)
    replies = pipe.execute(raise_on_error=False)
    assert replies[0] == 1 and isinstance(replies[1], redis.ResponseError) and replies[2] == b"t", f"{where}: {replies}"
    # A lock: SET NX PX takes it with the holder's token, a second taker is refused, DELEX
    # IFEQ the token gives it back; a holder whose lease ran out and whose lock was taken
    # since cannot delete the new holder's lock (its token does not match). VDEL at the
    # version read would: a version starts again at 1 when the key is created again.
    lock = f"{k}:lock"
    assert r.set(lock, "token-1", nx=True, px=30000) is True, where
    assert r.set(lock, "token-2", nx=True, px=30000) is None, where
    assert r.execute_command("DELEX", lock, "IFEQ", "token-1") == 1, where
    assert r.set(lock, "token-2", nx=True, px=30000) is True, where
    _, version = r.execute_command("VGET", lock)
    r.delete(lock)  # as if its lease ran out
    assert r.set(lock, "token-3", nx=True, px=30000) is True, where
    assert r.execute_command("DELEX", lock, "IFEQ", "token-2") == 0, where
    assert r.execute_command("DELIFEQ", lock, "token-2") == 0, where
    assert r.get(lock) == b"token-3", where
    assert r.execute_command("VGET", lock) == [b"token-3", version], f"{where}: the same version again"
    assert r.execute_command("DELEX", lock, "IFNE", "token-3") == 0, where
    assert r.execute_command("DELIFEQ", lock, "token-3") == 1, where
    assert r.execute_command("DELEX", lock) == 0, where
    refused(lambda: r.execute_command("DELEX", lock, "IFDEQ", "00"), "not supported", where)
print("versioned commands: ok")
