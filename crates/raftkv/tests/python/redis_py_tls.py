"""redis-py over TLS. Usage: redis_py_tls.py PORT CA [CLIENT_CERT CLIENT_KEY]."""
import sys

import redis

port, ca = int(sys.argv[1]), sys.argv[2]
options = {"ssl": True, "ssl_ca_certs": ca, "socket_timeout": 10}
if len(sys.argv) > 3:
    options.update(ssl_certfile=sys.argv[3], ssl_keyfile=sys.argv[4])
r = redis.Redis(host="127.0.0.1", port=port, **options)
assert r.set("tls-py", "v") is True
assert r.get("tls-py") == b"v"
print("redis-py over TLS ok")
