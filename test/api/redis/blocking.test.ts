/**
 * Blocking pops through the real front door (connections, the blocked-clients registry) on a key-value
 * machine, with the timeouts on a manual clock: a blocked client is served by another client's write,
 * its later commands wait for it, clients are served oldest first, a timeout answers a null array.
 */
import assert from "node:assert/strict";
import { after, describe, it } from "node:test";
import { RedisServer } from "../../../src/api/redis/server.js";
import { KvStateMachine } from "../../../src/kv/machine.js";
import { KvStore } from "../../../src/kv/store.js";
import { ManualTimers } from "../../../src/sim/virtual-time.js";
import { MachineBackend } from "../../helpers/machine-backend.js";
import { connectRaw, type RawRedis } from "../../helpers/redis-server.js";
import { tempDirs } from "../../helpers/temp-dirs.js";

const tempDir = tempDirs("raftkv-blocking-");
const cleanup: Array<() => Promise<void>> = [];
after(async () => {
  for (const c of cleanup.reverse()) await c();
});

async function front() {
  const store = await KvStore.open(tempDir());
  const timers = new ManualTimers();
  const server = await RedisServer.start({
    backend: new MachineBackend(new KvStateMachine(store)),
    listen: "127.0.0.1:0",
    timers,
  });
  cleanup.push(async () => {
    await server.close();
    await store.close();
  });
  const clients: RawRedis[] = [];
  const connect = async () => {
    const c = await connectRaw(server.port);
    clients.push(c);
    cleanup.push(() => c.close());
    return c;
  };
  const admin = await connect();
  const call = async (c: RawRedis, ...args: string[]) => (await c.call(args)).toString("latin1");
  /** Waits (on events, not time) until the server reports `n` blocked clients. */
  const blockedReaches = async (n: number) => {
    for (;;) {
      const info = await call(admin, "INFO", "clients");
      if (info.includes(`blocked_clients:${n}\r\n`)) return;
      await new Promise((r) => setImmediate(r));
    }
  };
  return { timers, connect, call, admin, blockedReaches };
}

const arr = (...items: string[]) =>
  `*${items.length}\r\n${items.map((i) => `$${i.length}\r\n${i}\r\n`).join("")}`;

describe("blocking pops at the front door", () => {
  it("a blocked BLPOP is served by another client's push, and its own later commands wait for it", async () => {
    const { connect, call, admin, blockedReaches } = await front();
    const a = await connect();
    const served = call(a, "BLPOP", "q1", "q2", "0");
    // In Redis this push waits until the BLPOP is served: it must not serve the BLPOP itself.
    const ownPush = call(a, "LPUSH", "q2", "own");
    await blockedReaches(1);
    assert.equal(await call(admin, "RPUSH", "q2", "x"), ":1\r\n");
    assert.equal(await served, arr("q2", "x"));
    assert.equal(await ownPush, ":1\r\n");
    assert.equal(await call(admin, "LRANGE", "q2", "0", "-1"), arr("own"));
    await blockedReaches(0);
  });

  it("serves clients oldest first, one element each; the rest stay blocked", async () => {
    const { connect, call, admin, blockedReaches } = await front();
    const [a, b, c] = [await connect(), await connect(), await connect()];
    const ra = call(a, "BRPOP", "q", "0");
    await blockedReaches(1);
    const rb = call(b, "BRPOP", "q", "0");
    await blockedReaches(2);
    const rc = call(c, "BLPOP", "q", "0");
    await blockedReaches(3);
    await call(admin, "RPUSH", "q", "1", "2");
    // BRPOP takes from the right: the oldest client gets the last element.
    assert.equal(await ra, arr("q", "2"));
    assert.equal(await rb, arr("q", "1"));
    await blockedReaches(1);
    await call(admin, "RPUSH", "q", "3");
    assert.equal(await rc, arr("q", "3"));
    assert.equal(await call(admin, "EXISTS", "q"), ":0\r\n");
  });

  it("times out with a null array (RESP3: null), at the timeout and not before", async () => {
    const { timers, connect, call, blockedReaches } = await front();
    const a = await connect();
    const r = call(a, "BLPOP", "q", "5");
    await blockedReaches(1);
    timers.advance(4_999);
    await blockedReaches(1);
    timers.advance(1);
    assert.equal(await r, "*-1\r\n");
    await call(a, "HELLO", "3");
    const r3 = call(a, "BLMOVE", "q", "d", "LEFT", "RIGHT", "0.5");
    await blockedReaches(1);
    timers.advance(500);
    assert.equal(await r3, "_\r\n");
  });

  it("BLMOVE, BZPOPMIN and BLMPOP are served by writes that fill their keys", async () => {
    const { connect, call, admin, blockedReaches } = await front();
    const [a, b, c] = [await connect(), await connect(), await connect()];
    const moved = call(a, "BLMOVE", "src", "dst", "RIGHT", "LEFT", "0");
    const zpopped = call(b, "BZPOPMIN", "z", "0");
    const mpopped = call(c, "BLMPOP", "0", "2", "l1", "l2", "LEFT", "COUNT", "5");
    await blockedReaches(3);
    await call(admin, "RPUSH", "src", "a", "b");
    assert.equal(await moved, "$1\r\nb\r\n");
    await call(admin, "ZADD", "z", "2", "m", "1", "n");
    assert.equal(await zpopped, arr("z", "n", "1"));
    // A RENAME stores a list too.
    await call(admin, "RPUSH", "tmp", "x", "y");
    await call(admin, "RENAME", "tmp", "l2");
    assert.equal(await mpopped, "*2\r\n$2\r\nl2\r\n*2\r\n$1\r\nx\r\n$1\r\ny\r\n");
    assert.equal(await call(admin, "LRANGE", "dst", "0", "-1"), arr("b"));
  });

  it("does not block inside MULTI, and answers errors at once", async () => {
    const { call, admin } = await front();
    await call(admin, "MULTI");
    await call(admin, "BLPOP", "q", "0");
    await call(admin, "BRPOPLPUSH", "q", "d", "0");
    assert.equal(await call(admin, "EXEC"), "*2\r\n*-1\r\n$-1\r\n");
    assert.equal(await call(admin, "BLPOP", "q", "-1"), "-ERR timeout is negative\r\n");
    await call(admin, "SET", "s", "v");
    assert.equal(
      await call(admin, "BLPOP", "q", "s", "0"),
      "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n",
    );
  });

  it("a client that goes away while blocked is forgotten: a later push stays in the list", async () => {
    const { connect, call, admin, blockedReaches } = await front();
    const a = await connect();
    void call(a, "BLPOP", "q", "0").catch(() => undefined);
    await blockedReaches(1);
    await a.close();
    await blockedReaches(0);
    await call(admin, "RPUSH", "q", "kept");
    assert.equal(await call(admin, "LRANGE", "q", "0", "-1"), arr("kept"));
  });
});
