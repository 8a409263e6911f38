"""What the redis-py scripts share: a refusal check, and a client on every node in turn."""
import redis


def refused(call, text, where):
    """`call` must fail with a Redis error containing `text`."""
    try:
        call()
    except redis.ResponseError as error:
        assert text in str(error), f"{where}: {error!r} lacks {text!r}"
        return
    raise AssertionError(f"{where}: accepted, expected an error with {text!r}")


def connections(ports, name):
    """Each node in turn, with RESP3 (redis-py's default) and then RESP2: a client, where it is
    (for messages), a key prefix of its own, and a maker of more clients like it."""
    for protocol in (None, 2):
        for port in ports:
            options = {} if protocol is None else {"protocol": protocol}
            def another(port=port, options=options):
                return redis.Redis(host="127.0.0.1", port=port, socket_timeout=10, **options)

            r = another()
            try:
                yield r, f"port {port}, protocol {protocol or 'default'}", f"{name}-{port}-{protocol}", another
            finally:
                r.close()
