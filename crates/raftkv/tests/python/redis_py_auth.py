"""redis-py against nodes that require authentication.

Usage: redis_py_auth.py PASSWORD READER_PASSWORD PORT [PORT...]. Exits non-zero, naming the check."""
import sys
import time

import redis
import redis.backoff
import redis.retry

password, reader_password = sys.argv[1], sys.argv[2]
ports = [int(port) for port in sys.argv[3:]]


def refused(call, *words):
    try:
        call()
    except (redis.exceptions.ResponseError, redis.exceptions.AuthenticationError, redis.exceptions.ConnectionError) as error:
        text = str(error)
        assert any(word in text for word in words), f"expected {words}, got {text!r}"
        return
    raise AssertionError(f"expected a refusal with {words}")


# Wait for a leader, as the default user.
deadline = time.time() + 20
while True:
    try:
        redis.Redis(host="127.0.0.1", port=ports[0], password=password, socket_timeout=5).set("ready", "1")
        break
    except redis.exceptions.RedisError:
        if time.time() > deadline:
            raise
        time.sleep(0.2)

for port in ports:
    for protocol in (3, 2):
        def client(**options):
            # No retries: a refusal is the answer, not a fault to retry.
            no_retry = redis.retry.Retry(redis.backoff.NoBackoff(), 0)
            return redis.Redis(host="127.0.0.1", port=port, protocol=protocol, socket_timeout=10, retry=no_retry, **options)

        refused(lambda: client().get("k"), "NOAUTH", "Authentication required", "already authenticated")
        refused(lambda: client(password="wrong").get("k"), "WRONGPASS", "invalid username-password")
        default = client(password=password)
        assert default.set(f"k{port}", "v") is True
        assert default.get(f"k{port}") == b"v"
        reader = client(username="reader", password=reader_password)
        assert reader.get(f"k{port}") == b"v"
        refused(lambda: reader.set(f"k{port}", "w"), "NOPERM", "no permissions")
        assert default.get(f"k{port}") == b"v"
print("auth ok against ports", ports)
