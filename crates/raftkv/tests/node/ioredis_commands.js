// The commands of raftkv's command table as ioredis, the most used Node.js Redis client, sends
// them, with its defaults, against every node given (followers forward). Usage:
//   node ioredis_commands.js PORT [PORT...]
// Exits non-zero, naming the check, on any failure.
"use strict";
const assert = require("assert/strict");
const Redis = require("ioredis");

async function refused(promise, text, where) {
  try {
    await promise;
  } catch (error) {
    assert.ok(String(error.message).includes(text), `${where}: ${error.message} lacks ${text}`);
    return;
  }
  assert.fail(`${where}: accepted, expected an error with ${text}`);
}

async function against(port) {
  const where = `port ${port}`;
  const r = new Redis({ host: "127.0.0.1", port, maxRetriesPerRequest: 1, enableOfflineQueue: true });
  const other = new Redis({ host: "127.0.0.1", port, maxRetriesPerRequest: 1 });
  const k = `ioredis-${port}`;
  try {
    // The connection's own commands.
    assert.equal(await r.ping(), "PONG", where);
    assert.equal(await r.echo("hi"), "hi", where);
    assert.equal(await r.select(0), "OK", where);
    await refused(r.select(1), "SELECT is not allowed", where);
    assert.equal(await r.client("SETNAME", "tester"), "OK", where);
    assert.equal(await r.client("GETNAME"), "tester", where);
    assert.ok((await r.info("server")).includes("redis_version:"), where);
    assert.ok((await r.info("replication")).includes("role:"), where);
    assert.deepEqual(await r.config("GET", "databases"), ["databases", "1"], where);
    assert.ok((await r.command("COUNT")) > 60, where);
    // Strings.
    assert.equal(await r.set(`${k}:s`, "v"), "OK", where);
    assert.equal(await r.get(`${k}:s`), "v", where);
    assert.equal(await r.get(`${k}:missing`), null, where);
    assert.equal(await r.set(`${k}:s`, "w", "NX"), null, where);
    assert.equal(await r.set(`${k}:s`, "w", "XX", "GET"), "v", where);
    assert.equal(await r.setnx(`${k}:s`, "x"), 0, where);
    assert.equal(await r.getset(`${k}:s`, "y"), "w", where);
    assert.equal(await r.append(`${k}:s`, "z"), 2, where);
    assert.equal(await r.strlen(`${k}:s`), 2, where);
    assert.equal(await r.getrange(`${k}:s`, 0, -2), "y", where);
    assert.equal(await r.setrange(`${k}:s`, 3, "!"), 4, where);
    assert.equal(await r.get(`${k}:s`), "yz\x00!", where);
    assert.equal(await r.getdel(`${k}:s`), "yz\x00!", where);
    assert.equal(await r.exists(`${k}:s`), 0, where);
    assert.equal(await r.mset(`${k}:a`, "1", `${k}:b`, "2"), "OK", where);
    assert.deepEqual(await r.mget(`${k}:a`, `${k}:b`, `${k}:c`), ["1", "2", null], where);
    assert.equal(await r.msetnx(`${k}:b`, "3", `${k}:c`, "4"), 0, where);
    // Counters, with Redis's refusals.
    assert.equal(await r.incr(`${k}:n`), 1, where);
    assert.equal(await r.incrby(`${k}:n`, 41), 42, where);
    assert.equal(await r.decr(`${k}:n`), 41, where);
    assert.equal(await r.decrby(`${k}:n`, 40), 1, where);
    assert.equal(await r.incrbyfloat(`${k}:n`, "1.5"), "2.5", where);
    await refused(r.incr(`${k}:n`), "not an integer", where);
    await r.set(`${k}:max`, "9223372036854775807");
    await refused(r.incr(`${k}:max`), "overflow", where);
    // Keys.
    assert.equal(await r.type(`${k}:a`), "string", where);
    assert.equal(await r.type(`${k}:none`), "none", where);
    assert.equal(await r.rename(`${k}:a`, `${k}:a2`), "OK", where);
    assert.equal(await r.renamenx(`${k}:a2`, `${k}:b`), 0, where);
    assert.equal(await r.copy(`${k}:a2`, `${k}:a3`), 1, where);
    assert.equal(await r.touch(`${k}:a2`, `${k}:a3`, `${k}:none`), 2, where);
    assert.deepEqual((await r.keys(`${k}:a?`)).sort(), [`${k}:a2`, `${k}:a3`], where);
    const scanned = new Set();
    await new Promise((resolve, reject) => {
      const stream = r.scanStream({ match: `${k}:*`, count: 2 });
      stream.on("data", (keys) => keys.forEach((key) => scanned.add(key)));
      stream.on("end", resolve);
      stream.on("error", reject);
    });
    for (const key of [`${k}:a2`, `${k}:a3`, `${k}:b`, `${k}:n`, `${k}:max`]) {
      assert.ok(scanned.has(key), `${where}: SCAN missed ${key}`);
    }
    assert.ok((await r.dbsize()) >= 5, where);
    assert.ok(typeof (await r.randomkey()) === "string", where);
    assert.equal(await r.unlink(`${k}:a3`), 1, where);
    assert.equal(await r.del(`${k}:a2`, `${k}:none`), 1, where);
    // Expiry.
    assert.equal(await r.set(`${k}:e`, "v", "EX", 100), "OK", where);
    const ttl = await r.ttl(`${k}:e`);
    assert.ok(ttl > 90 && ttl <= 100, `${where}: ttl ${ttl}`);
    assert.equal(await r.expire(`${k}:e`, 50, "GT"), 0, where);
    assert.equal(await r.pexpire(`${k}:e`, 200000), 1, where);
    assert.ok((await r.pttl(`${k}:e`)) > 100000, where);
    assert.ok((await r.expiretime(`${k}:e`)) > 1600000000, where);
    assert.equal(await r.persist(`${k}:e`), 1, where);
    assert.equal(await r.ttl(`${k}:e`), -1, where);
    assert.equal(await r.setex(`${k}:e`, 100, "v"), "OK", where);
    assert.equal(await r.psetex(`${k}:p`, 150, "v"), "OK", where);
    assert.equal(await r.getex(`${k}:e`, "PERSIST"), "v", where);
    await new Promise((resolve) => setTimeout(resolve, 400));
    assert.equal(await r.get(`${k}:p`), null, `${where}: a key set with PX 150 is gone`);
    assert.equal(await r.expireat(`${k}:e`, 1), 1, where);
    assert.equal(await r.exists(`${k}:e`), 0, `${where}: an EXPIREAT in the past removes the key`);
    // Transactions: ioredis's multi() wraps its commands in MULTI/EXEC.
    const replies = await r.multi().set(`${k}:t`, "1").incr(`${k}:t`).get(`${k}:t`).exec();
    assert.deepEqual(replies, [[null, "OK"], [null, 2], [null, "2"]], where);
    await r.watch(`${k}:t`);
    await other.set(`${k}:t`, "100");
    assert.equal(await r.multi().set(`${k}:t`, "5").exec(), null, `${where}: EXEC ran although a watched key changed`);
    assert.equal(await r.get(`${k}:t`), "100", where);
    await r.watch(`${k}:t`);
    await other.set(`${k}:elsewhere`, "1");
    assert.deepEqual(await r.multi().set(`${k}:t`, "6").exec(), [[null, "OK"]], where);
    assert.equal(await r.unwatch(), "OK", where);
    // Compare-and-set on per-key versions.
    assert.deepEqual(await r.call("VGET", `${k}:v`), [null, 0], where);
    assert.equal(await r.call("VSET", `${k}:v`, "a", 0), 1, where);
    await refused(r.call("VSET", `${k}:v`, "b", 0), "VERSION", where);
    assert.equal(await r.call("VSET", `${k}:v`, "b", 1), 2, where);
    assert.deepEqual(await r.call("VGET", `${k}:v`), ["b", 2], where);
    await refused(r.call("VDEL", `${k}:v`, 1), "VERSION", where);
    assert.equal(await r.call("VDEL", `${k}:v`, 2), 1, where);
    assert.equal(await r.set(`${k}:lock`, "token", "PX", 30000, "NX"), "OK", where);
    assert.equal(await r.call("DELEX", `${k}:lock`, "IFEQ", "other"), 0, where);
    assert.equal(await r.call("DELEX", `${k}:lock`, "IFEQ", "token"), 1, where);
    // Commands raftkv does not have are Redis's unknown command.
    await refused(r.lpush(`${k}:l`, "x"), "unknown command", where);
  } finally {
    r.disconnect();
    other.disconnect();
  }
}

(async () => {
  const ports = process.argv.slice(2).map(Number);
  assert.ok(ports.length > 0, "usage: node ioredis_commands.js PORT [PORT...]");
  for (const port of ports) {
    await against(port);
  }
  console.log(`ioredis: every check passed against ${ports.length} node(s)`);
})().catch((error) => {
  console.error(error.stack || String(error));
  process.exit(1);
});
