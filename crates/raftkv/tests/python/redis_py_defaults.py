"""redis-py with its defaults (RESP3 through HELLO 3) and with protocol=2, against every node.

Usage: redis_py_defaults.py PORT [PORT...]. Exits non-zero, naming the check, on any failure."""
import sys

import redis

ports = [int(port) for port in sys.argv[1:]]
for protocol in (None, 2):
    for port in ports:
        options = {} if protocol is None else {"protocol": protocol}
        r = redis.Redis(host="127.0.0.1", port=port, socket_timeout=10, **options)
        where = f"port {port}, protocol {protocol or 'default'}"
        key = f"py-{port}-{protocol}"
        assert r.ping() is True, where
        assert r.set(key, "v1") is True, where
        assert r.get(key) == b"v1", where
        assert r.get(f"{key}-missing") is None, where
        assert r.append(key, "23") == 4, where
        assert r.exists(key, f"{key}-missing") == 1, where
        pipe = r.pipeline(transaction=False)
        for i in range(50):
            pipe.set(f"{key}-{i}", i)
            pipe.get(f"{key}-{i}")
        replies = pipe.execute()
        assert replies == [item for i in range(50) for item in (True, str(i).encode())], where
        assert r.delete(key) == 1, where
        assert r.get(key) is None, where
        assert r.info().get("role") in ("leader", "follower"), where
        assert r.echo("hi") == b"hi", where
        assert r.client_setname("worker") is True, where
        assert r.client_getname() in (b"worker", "worker"), where
        assert [c.get("name") for c in r.client_list()] == ["worker"], where
        # In RESP3 these come as verbatim strings (as from Redis 7), in RESP2 as bulk strings.
        assert r.client_info().get("name") == "worker", where
        assert r.info("server").get("redis_version"), where
        assert int(r.client_id()) > 0, where
        assert r.config_get("proto-max-bulk-len") == {"proto-max-bulk-len": "16777216"} or r.config_get("proto-max-bulk-len") == {b"proto-max-bulk-len": b"16777216"}, where
        try:
            r.execute_command("SELECT", 1)
            raise AssertionError(f"{where}: SELECT 1 accepted")
        except redis.ResponseError as error:
            assert "not allowed" in str(error), where
        r.close()
print("redis-py", redis.__version__, "ok against ports", ports)
