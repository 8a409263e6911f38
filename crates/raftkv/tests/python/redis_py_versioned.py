"""Compare-and-set as a redis-py user writes it: VGET, VSET and VDEL through execute_command,
against every node (followers forward), with RESP3 (redis-py's default) and RESP2; and a lock
taken with SET NX PX and given back with VDEL at the version its holder read. Usage:
redis_py_versioned.py PORT [PORT...]. Exits non-zero, naming the check, on any failure."""
import sys

import redis

ports = [int(port) for port in sys.argv[1:]]


def refused(call, text, where):
    try:
        call()
    except redis.ResponseError as error:
        assert text in str(error), f"{where}: {error!r} lacks {text!r}"
        return
    raise AssertionError(f"{where}: accepted, expected an error with {text!r}")


for protocol in (None, 2):
    for port in ports:
        options = {} if protocol is None else {"protocol": protocol}
        r = redis.Redis(host="127.0.0.1", port=port, socket_timeout=10, **options)
        where = f"port {port}, protocol {protocol or 'default'}"
        k = f"cas-{port}-{protocol}"
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
        # A lock: SET NX PX takes it, a second taker is refused, VDEL at the holder's version gives
        # it back, and a holder whose version is stale (the lock expired and was retaken) cannot
        # release the new holder's lock.
        lock = f"{k}:lock"
        assert r.set(lock, "holder-1", nx=True, px=30000) is True, where
        assert r.set(lock, "holder-2", nx=True, px=30000) is None, where
        value, version = r.execute_command("VGET", lock)
        assert value == b"holder-1", where
        assert r.execute_command("VDEL", lock, version) == 1, where
        assert r.set(lock, "holder-2", nx=True, px=30000) is True, where
        r.delete(lock)
        assert r.set(lock, "holder-3", nx=True, px=30000) is True, where
        refused(lambda: r.execute_command("VDEL", lock, version + 10), "VERSION", where)
        assert r.get(lock) == b"holder-3", where
        r.close()
print("versioned commands: ok")
