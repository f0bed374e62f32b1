/**
 * The Redis front door of a 3-node cluster of `raftkv serve` processes, through a real client (ioredis)
 * and Debian's redis-cli: connection commands, string and key commands, transactions, pipelining,
 * RESP3, AUTH, and bad input that closes only the offending connection. Every test runs twice: with the
 * leader as the node the client talks to (a follower as "the other node"), and with a follower (which
 * forwards writes and reads to the leader) and the leader as the other.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import * as net from "node:net";
import { after, before, describe, it } from "node:test";
import { promisify } from "node:util";
import { Redis } from "ioredis";
import { connectRaw } from "../helpers/redis-server.js";
import { ServerCluster } from "./cluster.js";

const execFileAsync = promisify(execFile);
let cluster: ServerCluster;
const clients = new Map<"leader" | "follower", Redis>();

function client(port: number, extra: Record<string, unknown> = {}): Redis {
  return new Redis({ port, host: "127.0.0.1", lazyConnect: false, maxRetriesPerRequest: 0, ...extra });
}

before(async () => {
  cluster = await ServerCluster.start();
  clients.set("leader", client((await cluster.leader()).port));
  clients.set("follower", client((await cluster.follower()).port));
});

after(async () => {
  for (const c of clients.values()) c.disconnect();
  await cluster?.close();
});

/** Waits (on events, not time) until the node behind `c` reports `n` blocked clients. */
async function untilBlocked(c: Redis, n: number): Promise<void> {
  while (!(await c.info("clients")).includes(`blocked_clients:${n}\r\n`))
    await new Promise((r) => setImmediate(r));
}

/** Writes raw bytes on a new connection and returns everything read until the server closes it. */
function sendAndReadUntilClosed(port: number, bytes: string): Promise<string> {
  return new Promise<string>((resolve) => {
    const s = net.connect(port, "127.0.0.1", () => s.write(bytes));
    let got = "";
    s.on("data", (d) => {
      got += d.toString();
    });
    s.on("close", () => resolve(got));
  });
}

for (const via of ["leader", "follower"] as const) {
  describe(`Redis front door, through the ${via}`, () => {
    /** The node the test talks to, and another one. */
    let entry: Redis;
    let other: Redis;
    before(async () => {
      entry = clients.get(via)!;
      other = clients.get(via === "leader" ? "follower" : "leader")!;
      // Each pass starts from an empty store: the tests expect their keys absent.
      await entry.flushdb();
    });

    describe("connection and server commands", () => {
      it("PING, ECHO, SELECT, TIME, DBSIZE answer as Redis does", async () => {
        assert.equal(await entry.ping(), "PONG");
        assert.equal(await entry.ping("hi"), "hi");
        assert.equal(await entry.echo("x y"), "x y");
        assert.equal(await entry.select(0), "OK");
        await assert.rejects(entry.select(1), /ERR DB index is out of range/);
        const [s, us] = (await entry.time()) as unknown as [string, string];
        assert.ok(Math.abs(Number(s) * 1000 - Date.now()) < 5_000 && Number(us) < 1_000_000);
        assert.equal(typeof (await entry.dbsize()), "number");
      });

      it("CLIENT SETNAME/GETNAME/ID/INFO/LIST", async () => {
        assert.equal(await entry.client("SETNAME", "app-1"), "OK");
        assert.equal(await entry.client("GETNAME"), "app-1");
        const id = (await entry.client("ID")) as number;
        assert.ok(id > 0);
        assert.match((await entry.client("INFO")) as string, new RegExp(`^id=${id} .*name=app-1 `));
        assert.match((await entry.client("LIST")) as string, /name=app-1/);
        await assert.rejects(entry.client("SETNAME", "has space"), /ERR Client names cannot contain spaces/);
      });

      it("INFO has a raft section, CONFIG GET/SET the common parameters, COMMAND COUNT/INFO", async () => {
        const info = await entry.info();
        assert.match(info, new RegExp(`# Raft\r\nraft_node_id:\\d+\r\nraft_role:${via}\r\n`));
        assert.match(info, /redis_version:7\.0\.15/);
        assert.deepEqual(await entry.config("GET", "appendonly"), ["appendonly", "yes"]);
        assert.deepEqual(await entry.config("GET", "proto-max-bulk-len"), [
          "proto-max-bulk-len",
          String(64 * 1024 * 1024),
        ]);
        assert.equal(await entry.config("SET", "maxmemory", "100"), "OK");
        assert.deepEqual(await entry.config("GET", "maxmemory"), ["maxmemory", "100"]);
        await assert.rejects(
          entry.config("SET", "no-such", "1"),
          /ERR Unknown option or number of arguments for CONFIG SET - 'no-such'/,
        );
        assert.ok(((await entry.command("COUNT")) as unknown as number) > 40);
        const [get] = (await entry.command("INFO", "get")) as unknown as [[string, number]];
        assert.deepEqual(get.slice(0, 2), ["get", 2]);
      });

      it("unknown commands and wrong arity get Redis's errors", async () => {
        await assert.rejects(
          entry.call("NOPE", "a", "b"),
          /ERR unknown command 'NOPE', with args beginning with: 'a' 'b' /,
        );
        await assert.rejects(entry.call("GET"), /ERR wrong number of arguments for 'get' command/);
      });

      it("HELLO 3 switches the connection to RESP3: a map, typed nulls, doubles of RESP2 as bulk", async () => {
        // ioredis speaks RESP2 only: the exact bytes, on a raw connection.
        const raw = await connectRaw(entry.options.port!);
        const hello = (await raw.call(["HELLO", "3"])).toString("latin1");
        assert.match(
          hello,
          /^%7\r\n\$6\r\nserver\r\n\$5\r\nredis\r\n\$7\r\nversion\r\n\$6\r\n7\.0\.15\r\n\$5\r\nproto\r\n:3\r\n/,
        );
        assert.equal((await raw.call(["GET", "resp3-missing"])).toString(), "_\r\n");
        assert.equal((await raw.call(["HELLO", "2"])).toString("latin1").slice(0, 4), "*14\r");
        assert.equal((await raw.call(["GET", "resp3-missing"])).toString(), "$-1\r\n");
        assert.equal(
          (await raw.call(["HELLO", "4"])).toString(),
          "-NOPROTO unsupported protocol version\r\n",
        );
        await raw.close();
      });
    });

    describe("data, written and read through this node and the other", () => {
      it("strings: SET with options, GET, INCR family, APPEND, GETRANGE, MSET/MGET", async () => {
        assert.equal(await entry.set("s1", "v1"), "OK");
        assert.equal(await entry.set("s1", "v2", "NX"), null);
        assert.equal(await entry.set("s1", "v3", "XX", "GET"), "v1");
        assert.equal(await entry.get("s1"), "v3");
        assert.equal(await entry.incr("n"), 1);
        assert.equal(await entry.incrby("n", 41), 42);
        await assert.rejects(entry.incr("s1"), /ERR value is not an integer or out of range/);
        assert.equal(await entry.append("s1", "!"), 3);
        assert.equal(await entry.getrange("s1", 0, -2), "v3");
        assert.equal(await entry.mset("a", "1", "b", "2"), "OK");
        assert.deepEqual(await entry.mget("a", "b", "nope"), ["1", "2", null]);
      });

      it("INCRBYFLOAT: Redis's long double text, its errors, the TTL kept, the same on every replica", async () => {
        assert.equal(await entry.set("f", "10.5", "EX", 100), "OK");
        assert.equal(await entry.incrbyfloat("f", "0.1"), "10.6");
        // Long double arithmetic shows through the 17 decimals, the same on every replica.
        assert.equal(await other.incrbyfloat("f", "-5.0e3"), "-4989.39999999999999991");
        assert.equal(await entry.get("f"), "-4989.39999999999999991");
        assert.equal(await other.get("f"), "-4989.39999999999999991");
        const ttl = await entry.ttl("f");
        assert.ok(ttl === 100 || ttl === 99, String(ttl));
        assert.equal(await entry.incrbyfloat("f-new", "1e17"), "100000000000000000");
        assert.equal(await other.incrbyfloat("f-new", "0.1"), "100000000000000000.1015625");
        assert.equal(await entry.incrbyfloat("f-new", "0x1p-3"), "100000000000000000.2265625");
        assert.equal(await entry.incrbyfloat("f-zero", "-0"), "0");
        await assert.rejects(entry.incrbyfloat("f", "1.5x"), /ERR value is not a valid float/);
        await entry.set("f-text", "hello");
        await assert.rejects(entry.incrbyfloat("f-text", "1"), /ERR value is not a valid float/);
        await assert.rejects(entry.incrbyfloat("f", "inf"), /ERR increment would produce NaN or Infinity/);
        await assert.rejects(
          entry.call("INCRBYFLOAT", "f"),
          /ERR wrong number of arguments for 'incrbyfloat' command/,
        );
        assert.equal(await other.get("f"), "-4989.39999999999999991");
      });

      it("the other node serves linearizable reads of what this one acknowledged", async () => {
        assert.equal(await entry.set("seen", "by-all"), "OK");
        assert.equal(await other.get("seen"), "by-all");
        assert.equal(await other.exists("seen", "nope"), 1);
      });

      it("writes through either node (a follower forwards them) answer once applied there; each applies once", async () => {
        assert.equal(await other.set("fw", "1"), "OK");
        assert.equal(await other.get("fw"), "1");
        assert.equal(await entry.get("fw"), "1");
        // Interleaved increments through both nodes: every one applied exactly once, in one order.
        const replies = await Promise.all(
          Array.from({ length: 40 }, (_, i) => (i % 2 === 0 ? entry : other).incr("fw-count")),
        );
        assert.deepEqual(
          [...replies].sort((a, b) => a - b),
          Array.from({ length: 40 }, (_, i) => i + 1),
        );
        assert.equal(await other.get("fw-count"), "40");
        const tx = await other.multi().set("fw-tx", "a").append("fw-tx", "b").get("fw-tx").exec();
        assert.deepEqual(tx, [
          [null, "OK"],
          [null, 2],
          [null, "ab"],
        ]);
      });

      it("expiry: SET EX, TTL, PERSIST, EXPIRE with options, and a key past its time is gone everywhere", async () => {
        assert.equal(await entry.set("t", "v", "EX", 100), "OK");
        const ttl = await entry.ttl("t");
        assert.ok(ttl === 100 || ttl === 99, String(ttl));
        assert.equal(await entry.expire("t", 50, "GT"), 0);
        assert.equal(await entry.expire("t", 50, "LT"), 1);
        assert.equal(await entry.persist("t"), 1);
        assert.equal(await entry.ttl("t"), -1);
        assert.equal(await entry.set("gone", "v", "PX", 30), "OK");
        await new Promise((r) => setTimeout(r, 60));
        assert.equal(await entry.get("gone"), null);
        assert.equal(await other.get("gone"), null);
        assert.equal(await entry.exists("gone"), 0);
      });

      it("the leader removes expired keys from every replica (the key count includes them until then)", async () => {
        await entry.flushdb();
        await entry.mset("keep1", "v", "keep2", "v");
        for (let i = 0; i < 20; i++) await entry.set(`short:${i}`, "v", "PX", 30);
        const sizes = () => cluster.keyCounts();
        const deadline = Date.now() + 10_000;
        while ((await sizes()).some((n) => n !== 2) && Date.now() < deadline)
          await new Promise((r) => setTimeout(r, 50));
        assert.deepEqual(await sizes(), [2, 2, 2]);
        assert.equal(await other.dbsize(), 2);
        // Not a command clients can call.
        await assert.rejects(entry.call("__reap", "keep1"), /ERR unknown command '__reap'/);
      });

      it("keys: DEL, TYPE, RENAME, RENAMENX", async () => {
        await entry.set("r1", "v");
        assert.equal(await entry.type("r1"), "string");
        assert.equal(await entry.rename("r1", "r2"), "OK");
        await assert.rejects(entry.rename("r1", "r3"), /ERR no such key/);
        await entry.set("r3", "w");
        assert.equal(await entry.renamenx("r2", "r3"), 0);
        assert.equal(await entry.del("r2", "r3", "nope"), 2);
        assert.equal(await entry.type("r2"), "none");
      });

      it("hashes: fields set and read through either node, counts, increments, errors, the key's life", async () => {
        assert.equal(await entry.hset("hash:1", "a", "1", "b", "2"), 2);
        assert.equal(await entry.hset("hash:1", { b: "20", c: "3" }), 1);
        assert.equal(await other.hget("hash:1", "b"), "20");
        assert.deepEqual(await other.hgetall("hash:1"), { a: "1", b: "20", c: "3" });
        assert.deepEqual(await entry.hmget("hash:1", "a", "nope", "c"), ["1", null, "3"]);
        assert.equal(await entry.hlen("hash:1"), 3);
        assert.deepEqual((await other.hkeys("hash:1")).sort(), ["a", "b", "c"]);
        assert.deepEqual((await other.hvals("hash:1")).sort(), ["1", "20", "3"]);
        assert.equal(await entry.hexists("hash:1", "a"), 1);
        assert.equal(await entry.hstrlen("hash:1", "b"), 2);
        assert.equal(await entry.hsetnx("hash:1", "a", "x"), 0);
        assert.equal(await entry.hmset("hash:1", "d", "4"), "OK");
        assert.equal(await entry.hincrby("hash:1", "a", 41), 42);
        assert.equal(await entry.hincrbyfloat("hash:1", "f", "0.5"), "0.5");
        await assert.rejects(entry.hincrby("hash:1", "f", 1), /ERR hash value is not an integer/);
        await assert.rejects(entry.hset("hash:1", "odd"), /ERR wrong number of arguments for 'hset' command/);
        assert.equal(await other.type("hash:1"), "hash");
        await entry.set("hash:str", "v");
        await assert.rejects(entry.hget("hash:str", "a"), /^ReplyError: WRONGTYPE/);
        await assert.rejects(other.get("hash:1"), /^ReplyError: WRONGTYPE/);
        // SCAN … TYPE, EXPIRE, RENAME and MULTI/EXEC with a hash.
        const [, found] = await other.scan("0", "MATCH", "hash:*", "COUNT", "1000", "TYPE", "hash");
        assert.deepEqual(found, ["hash:1"]);
        assert.equal(await entry.expire("hash:1", 100), 1);
        assert.equal(await entry.rename("hash:1", "hash:2"), "OK");
        assert.ok((await other.ttl("hash:2")) > 90);
        const tx = await entry
          .multi()
          .hset("hash:2", "g", "7")
          .hdel("hash:2", "a", "b")
          .hlen("hash:2")
          .exec();
        assert.deepEqual(tx, [
          [null, 1],
          [null, 2],
          [null, 4],
        ]);
        assert.equal(await other.hdel("hash:2", "c", "d", "f", "g"), 4);
        assert.equal(await entry.exists("hash:2"), 0, "the last field gone, the key is gone");
        await entry.del("hash:str");
      });

      it("sets: members added and read through either node, algebra, SPOP the same on every node, errors", async () => {
        assert.equal(await entry.sadd("set:a", "x", "y", "z", "x"), 3);
        assert.equal(await entry.sadd("set:b", "y", "z", "w"), 3);
        assert.deepEqual((await other.smembers("set:a")).sort(), ["x", "y", "z"]);
        assert.equal(await other.sismember("set:a", "x"), 1);
        assert.deepEqual(await entry.smismember("set:a", "x", "nope"), [1, 0]);
        assert.equal(await entry.scard("set:a"), 3);
        assert.deepEqual((await other.sinter("set:a", "set:b")).sort(), ["y", "z"]);
        assert.deepEqual((await other.sunion("set:a", "set:b")).sort(), ["w", "x", "y", "z"]);
        assert.deepEqual(await other.sdiff("set:a", "set:b"), ["x"]);
        assert.equal(await entry.sunionstore("set:u", "set:a", "set:b"), 4);
        assert.equal(await entry.call("SINTERCARD", "2", "set:a", "set:b", "LIMIT", "1"), 1);
        assert.equal(await entry.smove("set:a", "set:b", "x"), 1);
        assert.equal(await entry.srem("set:a", "y", "nope"), 1);
        const popped = await entry.spop("set:u", 2);
        assert.equal(popped.length, 2);
        // Every replica popped the same two: what is left is the same through either node.
        const left = (await entry.smembers("set:u")).sort();
        assert.deepEqual((await other.smembers("set:u")).sort(), left);
        assert.deepEqual([...left, ...popped].sort(), ["w", "x", "y", "z"]);
        const some = await other.srandmember("set:b", 2);
        assert.equal(new Set(some).size, 2);
        const [cursor, scanned] = await other.sscan("set:b", "0", "COUNT", "100");
        assert.equal(cursor, "0");
        assert.deepEqual(scanned.sort(), ["w", "x", "y", "z"]);
        await assert.rejects(entry.spop("set:u", -1), /ERR value is out of range, must be positive/);
        await entry.set("set:str", "v");
        await assert.rejects(entry.sadd("set:str", "m"), /^ReplyError: WRONGTYPE/);
        await assert.rejects(other.sinter("set:a", "set:str"), /^ReplyError: WRONGTYPE/);
        assert.equal(await other.type("set:b"), "set");
        await entry.del("set:a", "set:b", "set:u", "set:str");
      });

      it("sorted sets: scores and ranges through either node, flags, pops, errors", async () => {
        assert.equal(await entry.zadd("z:1", 1, "a", 2, "b", 3, "c"), 3);
        assert.equal(await entry.zadd("z:1", "XX", "CH", 10, "a", 5, "new"), 1);
        assert.equal(await entry.zadd("z:1", "GT", 1, "b"), 0);
        assert.equal(await entry.zadd("z:1", "INCR", "0.5", "b"), "2.5");
        assert.equal(await other.zscore("z:1", "a"), "10");
        assert.deepEqual(await other.zmscore("z:1", "a", "nope"), ["10", null]);
        assert.equal(await other.zcard("z:1"), 3);
        assert.deepEqual(await other.zrange("z:1", 0, -1, "WITHSCORES"), ["b", "2.5", "c", "3", "a", "10"]);
        assert.deepEqual(await other.zrangebyscore("z:1", "(2.5", "+inf"), ["c", "a"]);
        assert.deepEqual(await other.zrevrange("z:1", 0, 0), ["a"]);
        assert.equal(await other.zrank("z:1", "c"), 1);
        assert.equal(await other.zcount("z:1", "-inf", "3"), 2);
        assert.equal(await entry.zincrby("z:1", "0.1", "c"), "3.1000000000000001");
        assert.deepEqual(await entry.zpopmin("z:1"), ["b", "2.5"]);
        assert.deepEqual(await entry.zpopmax("z:1", 5), ["a", "10", "c", "3.1000000000000001"]);
        assert.equal(await other.exists("z:1"), 0, "popped empty, the key is gone");
        await assert.rejects(
          entry.zadd("z:1", "NX", "XX", 1, "a"),
          /ERR XX and NX options at the same time are not compatible/,
        );
        await assert.rejects(entry.zadd("z:1", "nan", "a"), /ERR value is not a valid float/);
        await assert.rejects(other.zrangebyscore("z:1", "[1", "2"), /ERR min or max is not a float/);
        await entry.set("z:str", "v");
        await assert.rejects(entry.zadd("z:str", 1, "a"), /^ReplyError: WRONGTYPE/);
        await entry.zadd("z:2", 1, "x");
        assert.equal(await other.type("z:2"), "zset");
        await entry.del("z:2", "z:str");
      });

      it("sorted sets: lex ranges, ZRANGESTORE, ZRANDMEMBER and ZSCAN through either node", async () => {
        assert.equal(await entry.zadd("zl", 0, "a", 0, "b", 0, "c", 0, "d", 0, "e"), 5);
        assert.equal(await other.zlexcount("zl", "[b", "(e"), 3);
        assert.deepEqual(await other.zrangebylex("zl", "(a", "+", "LIMIT", 1, 2), ["c", "d"]);
        assert.deepEqual(await other.zrevrangebylex("zl", "[c", "-"), ["c", "b", "a"]);
        assert.deepEqual(await other.zrange("zl", "[d", "-", "BYLEX", "REV", "LIMIT", 0, 1), ["d"]);
        await assert.rejects(other.zrangebylex("zl", "a", "+"), /ERR min or max not valid string range item/);
        await assert.rejects(
          other.call("ZRANGE", "zl", "-", "+", "BYLEX", "WITHSCORES"),
          /ERR syntax error, WITHSCORES not supported in combination with BYLEX/,
        );
        assert.equal(await entry.zrangestore("zl:copy", "zl", "[b", "[d", "BYLEX"), 3);
        assert.deepEqual(await other.zrange("zl:copy", 0, -1, "WITHSCORES"), ["b", "0", "c", "0", "d", "0"]);
        assert.equal(await entry.zrangestore("zl:copy", "zl:copy", 0, 0, "REV"), 1);
        assert.deepEqual(await other.zrange("zl:copy", 0, -1), ["d"]);
        assert.equal(await entry.zrangestore("zl:copy", "zl", "(0", "+inf", "BYSCORE"), 0);
        assert.equal(await other.exists("zl:copy"), 0, "an empty result deletes the destination");
        assert.equal(await entry.zremrangebylex("zl", "-", "(b"), 1);
        assert.deepEqual(await other.zrange("zl", 0, -1), ["b", "c", "d", "e"]);
        const one = await other.zrandmember("zl");
        assert.ok(one !== null && ["b", "c", "d", "e"].includes(one));
        assert.deepEqual((await other.zrandmember("zl", 10)).sort(), ["b", "c", "d", "e"]);
        assert.equal((await other.zrandmember("zl", -6)).length, 6);
        const scored = (await other.call("ZRANDMEMBER", "zl", "2", "WITHSCORES")) as string[];
        assert.equal(scored.length, 4);
        assert.deepEqual([scored[1], scored[3]], ["0", "0"]);
        await entry.zadd("zl", "1.5", "b");
        const [cursor, scanned] = await other.zscan("zl", "0", "COUNT", "100");
        assert.equal(cursor, "0");
        assert.deepEqual(scanned, ["b", "1.5", "c", "0", "d", "0", "e", "0"]);
        const [, matched] = await other.zscan("zl", "0", "MATCH", "[bc]");
        assert.deepEqual(matched, ["b", "1.5", "c", "0"]);
        await entry.set("zl:str", "v");
        await assert.rejects(other.zscan("zl:str", "0"), /^ReplyError: WRONGTYPE/);
        await assert.rejects(other.zrandmember("zl:str"), /^ReplyError: WRONGTYPE/);
        await entry.del("zl", "zl:str");
      });

      it("sorted-set algebra: ZUNION, ZINTER, ZDIFF, their STORE forms and ZINTERCARD through either node", async () => {
        await entry.zadd("za:a", 1, "x", 2, "y", 3, "z");
        await entry.zadd("za:b", 10, "y", 20, "z", 30, "w");
        await entry.sadd("za:s", "x", "w", "q");
        assert.deepEqual(await other.zunion(2, "za:a", "za:b", "WEIGHTS", 1, 2, "WITHSCORES"), [
          ...["x", "1", "y", "22", "z", "43", "w", "60"],
        ]);
        assert.deepEqual(await other.zinter(2, "za:a", "za:s", "WITHSCORES"), ["x", "2"]);
        assert.deepEqual(await other.zdiff(2, "za:a", "za:b", "WITHSCORES"), ["x", "1"]);
        assert.deepEqual(await other.zunion(2, "za:a", "za:b", "AGGREGATE", "MIN"), ["x", "y", "z", "w"]);
        assert.equal(await other.zintercard(2, "za:a", "za:b", "LIMIT", 1), 1);
        // The destination may be an input; it is overwritten, whatever it held.
        assert.equal(await entry.zinterstore("za:a", 2, "za:a", "za:b", "AGGREGATE", "MAX"), 2);
        assert.deepEqual(await other.zrange("za:a", 0, -1, "WITHSCORES"), ["y", "10", "z", "20"]);
        assert.equal(await entry.zunionstore("za:s", 2, "za:s", "za:a", "WEIGHTS", "inf", "-1"), 5);
        assert.equal(await other.type("za:s"), "zset");
        assert.deepEqual(await other.zrange("za:s", 0, -1, "WITHSCORES"), [
          ...["z", "-20", "y", "-10", "q", "inf", "w", "inf", "x", "inf"],
        ]);
        assert.equal(await entry.zdiffstore("za:s", 2, "za:a", "za:b"), 0);
        assert.equal(await other.exists("za:s"), 0, "an empty result deletes the destination");
        await entry.set("za:str", "v");
        await assert.rejects(other.zunion(2, "za:a", "za:str"), /^ReplyError: WRONGTYPE/);
        await assert.rejects(
          entry.zunionstore("za:d", 0, "za:a"),
          /at least 1 input key is needed for 'zunionstore'/,
        );
        await assert.rejects(
          entry.zinterstore("za:d", 1, "za:a", "WEIGHTS", "x"),
          /weight value is not a float/,
        );
        await assert.rejects(other.zintercard(1, "za:a", "LIMIT", -1), /LIMIT can't be negative/);
        await assert.rejects(
          entry.call("ZUNIONSTORE", "za:d", "1", "za:a", "WITHSCORES"),
          /ERR syntax error/,
        );
        await entry.del("za:a", "za:b", "za:str");
      });

      it("lists: pushes, pops, ranges and moves through either node, errors", async () => {
        assert.equal(await entry.rpush("list:1", "a", "b", "c"), 3);
        assert.equal(await entry.lpush("list:1", "z"), 4);
        assert.deepEqual(await other.lrange("list:1", 0, -1), ["z", "a", "b", "c"]);
        assert.equal(await other.lindex("list:1", -1), "c");
        assert.equal(await other.llen("list:1"), 4);
        assert.equal(await entry.lset("list:1", 1, "A"), "OK");
        assert.equal(await entry.lpop("list:1"), "z");
        assert.deepEqual(await entry.rpop("list:1", 2), ["c", "b"]);
        assert.equal(await entry.rpushx("list:none", "x"), 0);
        assert.equal(await entry.rpoplpush("list:1", "list:2"), "A");
        assert.equal(await other.exists("list:1"), 0, "the last element gone, the key is gone");
        await entry.rpush("list:2", "b", "c");
        assert.equal(await entry.lmove("list:2", "list:2", "LEFT", "RIGHT"), "A");
        assert.deepEqual(await other.lrange("list:2", 0, -1), ["b", "c", "A"]);
        assert.equal(await entry.ltrim("list:2", 1, -1), "OK");
        assert.deepEqual(await other.lrange("list:2", 0, -1), ["c", "A"]);
        assert.equal(await entry.linsert("list:2", "BEFORE", "A", "c"), 3);
        assert.equal(await other.lpos("list:2", "c", "RANK", -1), 1);
        assert.equal(await entry.lrem("list:2", 0, "c"), 2);
        assert.deepEqual(await other.lrange("list:2", 0, -1), ["A"]);
        await assert.rejects(entry.lset("list:none", 0, "x"), /ERR no such key/);
        await assert.rejects(entry.lset("list:2", 9, "x"), /ERR index out of range/);
        await entry.set("list:str", "v");
        await assert.rejects(entry.lpush("list:str", "x"), /^ReplyError: WRONGTYPE/);
        assert.equal(await other.type("list:2"), "list");
        await entry.del("list:2", "list:str");
      });

      it("blocking pops: a client blocked on this node is served by a write through the other", async () => {
        // A connection of its own: a blocked connection runs nothing else until it is served.
        const blocked = client(entry.options.port!);
        try {
          const popped = blocked.blpop("bq1", "bq2", 0);
          await untilBlocked(entry, 1);
          assert.equal(await other.rpush("bq2", "job-1", "job-2"), 2);
          assert.deepEqual(await popped, ["bq2", "job-1"]);
          const zpopped = blocked.bzpopmax("bz", 0);
          await untilBlocked(entry, 1);
          await other.zadd("bz", 1, "low", 5, "high");
          assert.deepEqual(await zpopped, ["bz", "high", "5"]);
          const moved = blocked.blmove("bsrc", "bdst", "LEFT", "RIGHT", 0);
          await untilBlocked(entry, 1);
          await other.lpush("bsrc", "m");
          assert.equal(await moved, "m");
          assert.deepEqual(await entry.lrange("bdst", 0, -1), ["m"]);
          const lowest = blocked.bzpopmin("bz2", 0);
          await untilBlocked(entry, 1);
          await other.zadd("bz2", 3, "c", 2, "b");
          assert.deepEqual(await lowest, ["bz2", "b", "2"]);
          const mpopped = blocked.call("BLMPOP", "0", "2", "bq3", "bq4", "RIGHT", "COUNT", "2");
          await untilBlocked(entry, 1);
          await other.rpush("bq4", "p", "q", "r");
          assert.deepEqual(await mpopped, ["bq4", ["r", "q"]]);
          const rpoplpushed = blocked.brpoplpush("bq5", "bq4", 0);
          await untilBlocked(entry, 1);
          await other.rpush("bq5", "s");
          assert.equal(await rpoplpushed, "s");
          assert.deepEqual(await other.lrange("bq4", 0, -1), ["s", "p"]);
          assert.deepEqual(await entry.call("ZMPOP", "2", "bz-none", "bz2", "MAX", "COUNT", "5"), [
            "bz2",
            [["c", "3"]],
          ]);
          assert.deepEqual(await entry.call("LMPOP", "1", "bq4", "LEFT", "COUNT", "1"), ["bq4", ["s"]]);
          await assert.rejects(
            entry.call("LMPOP", "0", "bq4", "LEFT"),
            /ERR numkeys should be greater than 0/,
          );
          // Already there: served at once; nothing there: a timeout answers null.
          assert.deepEqual(await blocked.brpop("bq2", 0), ["bq2", "job-2"]);
          assert.equal(await blocked.blpop("bq-empty", 0.05), null);
          assert.deepEqual(await blocked.call("LMPOP", "2", "bq-empty", "bq-none", "LEFT"), null);
          await assert.rejects(blocked.call("BZMPOP", "0", "1", "bdst", "MIN"), /WRONGTYPE/);
          await assert.rejects(blocked.blpop("bq1", -1), /ERR timeout is negative/);
        } finally {
          blocked.disconnect();
        }
      });

      it("KEYS, SCAN (MATCH, COUNT, TYPE) and RANDOMKEY see every live key, through any node", async () => {
        await entry.flushdb();
        const names = Array.from({ length: 150 }, (_, i) => `scan:${i}`);
        await entry.mset(...names.flatMap((n) => [n, "v"]));
        await entry.set("other", "x");
        await entry.set("scan:gone", "v", "PX", 1);
        await new Promise((r) => setTimeout(r, 20));
        assert.deepEqual((await other.keys("scan:*")).sort(), [...names].sort());
        assert.deepEqual(await entry.keys("oth?r"), ["other"]);
        // A full SCAN returns every key present throughout, while writes go on meanwhile.
        const seen = new Set<string>();
        let cursor = "0";
        let calls = 0;
        do {
          const [next, batch] = await other.scan(cursor, "MATCH", "scan:*", "COUNT", 7);
          for (const k of batch) seen.add(k);
          await entry.set(`late:${calls++}`, "v");
          cursor = next;
        } while (cursor !== "0");
        assert.deepEqual([...seen].sort(), [...names].sort());
        assert.ok(calls > 10, `${calls} calls`);
        const [, typed] = await entry.scan("0", "COUNT", 1000, "TYPE", "string");
        assert.ok(typed.includes("other"));
        const [, none] = await entry.scan("0", "COUNT", 1000, "TYPE", "list");
        assert.deepEqual(none, []);
        await assert.rejects(entry.scan("abc"), /ERR invalid cursor/);
        const random = await other.randomkey();
        assert.ok(
          random !== null && (names.includes(random) || random === "other" || random.startsWith("late:")),
        );
        await entry.flushdb();
        assert.equal(await entry.randomkey(), null);
      });

      it("MULTI/EXEC is applied as one entry; a queued error aborts with EXECABORT; DISCARD", async () => {
        const res = await entry.multi().set("m1", "a").incr("m2").get("m1").ping().exec();
        assert.deepEqual(res, [
          [null, "OK"],
          [null, 1],
          [null, "a"],
          [null, "PONG"],
        ]);
        const bad = entry.multi();
        bad.set("m3", "x");
        bad.call("NOPE");
        await assert.rejects(bad.exec(), /EXECABORT Transaction discarded because of previous errors/);
        assert.equal(await entry.exists("m3"), 0);
        assert.equal(await entry.call("MULTI"), "OK");
        assert.equal(await entry.call("DISCARD"), "OK");
        await assert.rejects(entry.call("EXEC"), /ERR EXEC without MULTI/);
      });

      it("DBSIZE in a pipeline counts the connection's earlier writes (it is a read like any other)", async () => {
        await entry.flushdb();
        const out = await entry.pipeline().set("d1", "1").set("d2", "2").dbsize().exec();
        assert.deepEqual(out?.[2], [null, 2]);
        assert.deepEqual(await other.pipeline().set("d3", "3").dbsize().exec(), [
          [null, "OK"],
          [null, 3],
        ]);
      });

      it("a pipeline of writes and reads answers in order, reads seeing earlier writes", async () => {
        const p = entry.pipeline();
        for (let i = 0; i < 200; i++) {
          p.set(`p${i}`, String(i));
          p.get(`p${i}`);
          p.incr("pc");
        }
        const out = (await p.exec())!;
        for (let i = 0; i < 200; i++) {
          assert.deepEqual(out[3 * i], [null, "OK"]);
          assert.deepEqual(out[3 * i + 1], [null, String(i)]);
          assert.deepEqual(out[3 * i + 2], [null, i + 1]);
        }
      });
    });

    describe("WATCH and UNWATCH", () => {
      /** Connections of their own (WATCH is per connection), to this node and the other. */
      const opened: Redis[] = [];
      const own = (node: "entry" | "other") => {
        const c = client((node === "entry" ? entry : other).options.port!);
        opened.push(c);
        return c;
      };
      after(() => {
        for (const c of opened) c.disconnect();
      });

      it("another client's write to a watched key makes EXEC answer null and nothing runs; unrelated writes do not", async () => {
        const a = own("entry");
        const b = own("other");
        const key = `w:${via}`;
        await b.set(key, "1");
        assert.equal(await a.watch(key, `${key}:absent`), "OK");
        await b.set(`${key}:other`, "x");
        assert.deepEqual(await a.multi().set(`${key}:out`, "first").get(key).exec(), [
          [null, "OK"],
          [null, "1"],
        ]);
        await a.watch(key);
        await b.set(key, "1"); // the same value: still a write
        assert.equal(await a.multi().set(`${key}:out`, "second").exec(), null);
        assert.equal(await b.get(`${key}:out`), "first");
        // An absent key created meanwhile, and one created and deleted again, abort too.
        await a.watch(`${key}:absent`);
        await b.set(`${key}:absent`, "now");
        await b.del(`${key}:absent`);
        assert.equal(await a.multi().set(`${key}:out`, "third").exec(), null);
        // EXEC cleared the watch: the next transaction runs.
        await b.set(key, "2");
        assert.deepEqual(await a.multi().get(key).exec(), [[null, "2"]]);
      });

      it("FLUSHALL aborts a watcher of a key it removed; a key that expires between WATCH and EXEC aborts too", async () => {
        const a = own("entry");
        await other.set("w:flushed", "v");
        await a.watch("w:flushed");
        await other.flushall();
        assert.equal(await a.multi().set("w:out", "1").exec(), null);
        await other.set("w:short", "v", "PX", 100);
        await a.watch("w:short");
        await new Promise((r) => setTimeout(r, 200));
        assert.equal(await a.multi().set("w:out", "2").exec(), null);
        assert.equal(await other.exists("w:out"), 0);
      });

      it("the watching connection's own writes after WATCH abort its EXEC, those before it do not (pipelined too)", async () => {
        const a = own("entry");
        const out = await a
          .pipeline()
          .set("w:own", "1")
          .watch("w:own")
          .call("MULTI")
          .get("w:own")
          .call("EXEC")
          .exec();
        assert.deepEqual(out?.[4], [null, ["1"]]);
        const again = await a
          .pipeline()
          .watch("w:own")
          .set("w:own", "2")
          .call("MULTI")
          .get("w:own")
          .call("EXEC")
          .exec();
        assert.deepEqual(again?.[4], [null, null]);
      });

      it("WATCH inside MULTI is an error that keeps the transaction; UNWATCH and DISCARD forget the watched keys", async () => {
        const a = own("entry");
        const b = own("other");
        await a.call("MULTI");
        await assert.rejects(a.watch("w:x"), /ERR WATCH inside MULTI is not allowed/);
        assert.deepEqual(await a.call("EXEC"), []);
        await a.watch("w:x");
        await b.set("w:x", "1");
        assert.equal(await a.unwatch(), "OK");
        assert.deepEqual(await a.multi().get("w:x").exec(), [[null, "1"]]);
        await a.watch("w:x");
        await a.call("MULTI");
        await a.call("DISCARD");
        await b.set("w:x", "2");
        assert.deepEqual(await a.multi().get("w:x").exec(), [[null, "2"]]);
        await assert.rejects(a.call("WATCH"), /ERR wrong number of arguments for 'watch' command/);
        await assert.rejects(a.watch("k".repeat(1025)), /ERR key is too long \(at most 1024 bytes\)/);
      });

      it("an aborted EXEC is a null array: *-1 in RESP2, _ in RESP3", async () => {
        for (const protocol of ["2", "3"]) {
          const raw = await connectRaw(entry.options.port!);
          await raw.call(["HELLO", protocol]);
          assert.equal((await raw.call(["WATCH", "w:resp"])).toString(), "+OK\r\n");
          await other.set("w:resp", protocol);
          await raw.call(["MULTI"]);
          await raw.call(["PING"]);
          assert.equal((await raw.call(["EXEC"])).toString(), protocol === "2" ? "*-1\r\n" : "_\r\n");
          await raw.close();
        }
      });
    });

    describe("AUTH, bad input, redis-cli", () => {
      it("requirepass: commands need AUTH; a wrong password is WRONGPASS", async () => {
        const port = entry.options.port!;
        await entry.config("SET", "requirepass", "s3cret");
        const raw = await connectRaw(port);
        const say = async (...args: string[]) => (await raw.call(args)).toString();
        assert.equal(await say("GET", "a"), "-NOAUTH Authentication required.\r\n");
        assert.equal(
          await say("AUTH", "wrong"),
          "-WRONGPASS invalid username-password pair or user is disabled.\r\n",
        );
        assert.equal(await say("AUTH", "s3cret"), "+OK\r\n");
        assert.equal(await say("PING"), "+PONG\r\n");
        await raw.close();
        await entry.config("SET", "requirepass", "");
      });

      it("a key longer than the store takes is refused before raft, through any node and in MULTI", async () => {
        const long = "k".repeat(1025);
        await assert.rejects(entry.set(long, "v"), /ERR key is too long \(at most 1024 bytes\)/);
        await assert.rejects(other.set(long, "v", "EX", 100), /ERR key is too long/);
        await assert.rejects(entry.mset("ok", "1", long, "2"), /ERR key is too long/);
        await assert.rejects(entry.get(long), /ERR key is too long/);
        await assert.rejects(entry.multi().set("ok", "1").set(long, "2").exec(), /EXECABORT/);
        assert.equal(await entry.set("k".repeat(1024), "v", "EX", 100), "OK");
        assert.equal(await other.get("k".repeat(1024)), "v");
        assert.equal(await entry.exists("ok"), 0);
      });

      it("a malformed frame gets a protocol error and its connection closed; other clients are unaffected", async () => {
        await entry.set("safe", "kept");
        const reply = await sendAndReadUntilClosed(entry.options.port!, "*1\r\n$abc\r\n");
        assert.equal(reply, "-ERR Protocol error: invalid bulk length\r\n");
        assert.equal(await entry.get("safe"), "kept");
      });

      it("nothing after QUIT runs, even when it came in the same packet", async () => {
        const reply = await sendAndReadUntilClosed(
          entry.options.port!,
          "QUIT\r\nSET after-quit v\r\nPING\r\n",
        );
        assert.equal(reply, "+OK\r\n");
        assert.equal(await entry.exists("after-quit"), 0);
      });

      it("redis-cli talks to the cluster", async () => {
        const port = String(entry.options.port!);
        const cli = async (...args: string[]) =>
          (await execFileAsync("redis-cli", ["-p", port, ...args], { encoding: "utf8" })).stdout.trim();
        assert.equal(await cli("PING"), "PONG");
        assert.equal(await cli("SET", "cli-key", "hello world"), "OK");
        assert.equal(await cli("GET", "cli-key"), "hello world");
        assert.equal(await cli("STRLEN", "cli-key"), "11");
        assert.match(await cli("INFO", "raft"), new RegExp(`raft_role:${via}`));
      });
    });
  });
}
