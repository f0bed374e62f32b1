/**
 * A connection, over a backend the test controls: replies keep request order whatever order the work
 * finishes in, reads wait for the connection's earlier writes, a client that half-closes still gets its
 * replies, and a failed command answers an error without ending the connection.
 */
import assert from "node:assert/strict";
import * as net from "node:net";
import { after, describe, it } from "node:test";
import type { KvBackend } from "../../../src/api/redis/backend.js";
import { RedisServer } from "../../../src/api/redis/server.js";
import { MAX_WATCHED_KEYS } from "../../../src/api/redis/watched-keys.js";
import { bulk, OK, type Reply } from "../../../src/kv/reply.js";
import type { WatchedKey } from "../../../src/kv/watch.js";
import { connectRaw } from "../../helpers/redis-server.js";

/** Writes finish after a delay given in their value; reads report what has been written so far. */
class SlowBackend implements KvBackend {
  readonly written: string[] = [];
  async write(commands: readonly (readonly Buffer[])[]): Promise<readonly Reply[]> {
    const value = commands[0]![2]!.toString();
    await new Promise((r) => setTimeout(r, Number(value)));
    this.written.push(value);
    return commands.map(() => OK);
  }
  async read(commands: readonly (readonly Buffer[])[]): Promise<readonly Reply[]> {
    if (commands[0]![1]!.toString() === "boom") throw new Error("the disk is on fire");
    return commands.map(() => bulk(Buffer.from(this.written.join(","))));
  }
  async watch(keys: readonly Buffer[]): Promise<readonly WatchedKey[] | Reply> {
    if (keys[0]!.toString() === "no-quorum") return { k: "error", v: "TRYAGAIN no quorum" };
    // Slower than the writes pipelined after it: they must wait for it.
    await new Promise((r) => setTimeout(r, 30));
    return keys.map((key) => ({ key: Buffer.from(key), version: 0, seenAt: this.written.length }));
  }
  async execWatched(
    commands: readonly (readonly Buffer[])[],
    watches: readonly WatchedKey[],
  ): Promise<readonly Reply[] | null | Reply> {
    // A watched key "changed" when something was written after it was watched.
    if (watches.some((w) => w.seenAt !== this.written.length)) return null;
    return commands.map(() => OK);
  }
  onFilled(): void {}
  elementsAt(): number {
    return 0;
  }
  keyCount(): number {
    return 0;
  }
  raftInfo(): readonly string[] {
    return ["raft_role:leader"];
  }
}

const servers: RedisServer[] = [];
after(async () => {
  for (const s of servers) await s.close();
});

describe("a client connection", () => {
  it("answers in request order, and a read sees the connection's earlier writes", async () => {
    const backend = new SlowBackend();
    const server = await RedisServer.start({ backend, listen: "127.0.0.1:0" });
    servers.push(server);
    const raw = await connectRaw(server.port);
    // Pipelined: a slow write, a fast write, a read, a ping; all sent before any reply.
    const replies = await Promise.all([
      raw.call(["SET", "a", "60"]),
      raw.call(["SET", "b", "1"]),
      raw.call(["GET", "a"]),
      raw.call(["PING"]),
    ]);
    assert.deepEqual(
      replies.map((r) => r.toString()),
      ["+OK\r\n", "+OK\r\n", "$4\r\n1,60\r\n", "+PONG\r\n"],
    );
    await raw.close();
  });

  it("a client that half-closes after its requests still gets every reply, then the connection closes", async () => {
    // As `printf 'SET a 30\r\nGET a\r\n' | nc -N host port` does: the requests, then a FIN, then reading.
    const server = await RedisServer.start({ backend: new SlowBackend(), listen: "127.0.0.1:0" });
    servers.push(server);
    const got = await new Promise<string>((resolve) => {
      const s = net.connect(server.port, "127.0.0.1", () => {
        // The last request is incomplete: it is dropped, as Redis drops it.
        s.end("SET a 30\r\nGET a\r\nPING\r\n*2\r\n$3\r\nGET\r\n$2\r\nh");
      });
      let out = "";
      s.on("data", (d: Buffer) => {
        out += d.toString("latin1");
      });
      s.on("error", (err) => {
        out += `<${err.message}>`;
      });
      s.on("close", () => resolve(out));
    });
    assert.equal(got, "+OK\r\n$2\r\n30\r\n+PONG\r\n");
  });

  it("an error quoting the client's bytes sends them back as they came, as Redis does", async () => {
    const server = await RedisServer.start({ backend: new SlowBackend(), listen: "127.0.0.1:0" });
    servers.push(server);
    const raw = await connectRaw(server.port);
    const name = Buffer.from("héllo", "utf8");
    assert.deepEqual(
      await raw.call([name, Buffer.of(0xff)]),
      Buffer.concat([
        Buffer.from("-ERR unknown command '"),
        name,
        Buffer.from("', with args beginning with: '\xff' \r\n", "latin1"),
      ]),
    );
    await raw.close();
  });

  it("HELLO pipelined behind a pending reply leaves that reply in the protocol of its command", async () => {
    const server = await RedisServer.start({ backend: new SlowBackend(), listen: "127.0.0.1:0" });
    servers.push(server);
    const raw = await connectRaw(server.port);
    const replies = (
      await Promise.all(
        [["WATCH", "k"], ["SET", "k", "30"], ["MULTI"], ["SET", "x", "0"], ["EXEC"], ["HELLO", "3"]].map(
          (c) => raw.call(c),
        ),
      )
    ).map(String);
    // EXEC was read under RESP2: its aborted transaction is RESP2's null array, though HELLO 3 came
    // before its reply was ready; HELLO's own reply is RESP3's map.
    assert.equal(replies[4], "*-1\r\n");
    assert.match(replies[5]!, /^%7\r\n/);
    assert.equal(String(await raw.call(["EXEC"])), "-ERR EXEC without MULTI\r\n");
    await raw.close();
  });

  it("CONFIG GET reports the limits in force; CONFIG SET changes only its own server", async () => {
    const limited = await RedisServer.start({
      backend: new SlowBackend(),
      listen: "127.0.0.1:0",
      maxClients: 7,
      requestLimits: { maxBulkBytes: 4096 },
    });
    const plain = await RedisServer.start({ backend: new SlowBackend(), listen: "127.0.0.1:0" });
    servers.push(limited, plain);
    const a = await connectRaw(limited.port);
    const b = await connectRaw(plain.port);
    assert.equal(
      (await a.call(["CONFIG", "GET", "proto-max-bulk-len"])).toString(),
      "*2\r\n$18\r\nproto-max-bulk-len\r\n$4\r\n4096\r\n",
    );
    assert.equal(
      (await a.call(["CONFIG", "GET", "maxclients"])).toString(),
      "*2\r\n$10\r\nmaxclients\r\n$1\r\n7\r\n",
    );
    assert.equal(
      (await a.call(["CONFIG", "SET", "proto-max-bulk-len", "1"])).toString(),
      "-ERR CONFIG SET failed (possibly related to argument 'proto-max-bulk-len') - can't set immutable config\r\n",
    );
    assert.equal((await a.call(["CONFIG", "SET", "maxmemory", "100"])).toString(), "+OK\r\n");
    assert.equal(
      (await a.call(["CONFIG", "GET", "maxmemory"])).toString(),
      "*2\r\n$9\r\nmaxmemory\r\n$3\r\n100\r\n",
    );
    assert.equal(
      (await b.call(["CONFIG", "GET", "maxmemory"])).toString(),
      "*2\r\n$9\r\nmaxmemory\r\n$1\r\n0\r\n",
    );
    await a.close();
    await b.close();
  });

  it("a command whose work fails answers an error, and the connection goes on", async () => {
    const server = await RedisServer.start({ backend: new SlowBackend(), listen: "127.0.0.1:0" });
    servers.push(server);
    const raw = await connectRaw(server.port);
    assert.equal(
      (await raw.call(["GET", "boom"])).toString(),
      "-ERR internal error: the disk is on fire\r\n",
    );
    assert.equal((await raw.call(["PING"])).toString(), "+PONG\r\n");
    await raw.close();
  });

  it("pipelined: a write after WATCH waits for the WATCH's read, so it aborts the EXEC; one before it does not", async () => {
    const server = await RedisServer.start({ backend: new SlowBackend(), listen: "127.0.0.1:0" });
    servers.push(server);
    const raw = await connectRaw(server.port);
    const send = (cmds: string[][]) => Promise.all(cmds.map((c) => raw.call(c))).then((r) => r.map(String));
    assert.deepEqual(
      await send([["WATCH", "k"], ["SET", "k", "1"], ["MULTI"], ["SET", "x", "0"], ["EXEC"]]),
      ["+OK\r\n", "+OK\r\n", "+OK\r\n", "+QUEUED\r\n", "*-1\r\n"],
    );
    assert.deepEqual(
      await send([["SET", "k", "20"], ["WATCH", "k"], ["MULTI"], ["SET", "x", "0"], ["EXEC"]]),
      ["+OK\r\n", "+OK\r\n", "+OK\r\n", "+QUEUED\r\n", "*1\r\n+OK\r\n"],
    );
    // UNWATCH pipelined right after WATCH forgets it, though its read is still in flight.
    assert.deepEqual(await send([["WATCH", "k"], ["UNWATCH"], ["SET", "k", "1"], ["MULTI"], ["EXEC"]]), [
      "+OK\r\n",
      "+OK\r\n",
      "+OK\r\n",
      "+OK\r\n",
      "*0\r\n",
    ]);
    await raw.close();
  });

  it("a WATCH that failed answers its error, and the EXEC after it fails as if its key had changed", async () => {
    const server = await RedisServer.start({ backend: new SlowBackend(), listen: "127.0.0.1:0" });
    servers.push(server);
    const raw = await connectRaw(server.port);
    assert.equal(String(await raw.call(["WATCH", "no-quorum"])), "-TRYAGAIN no quorum\r\n");
    await raw.call(["MULTI"]);
    assert.equal(String(await raw.call(["EXEC"])), "*-1\r\n");
    await raw.close();
  });

  it("a connection watches at most MAX_WATCHED_KEYS keys; a WATCH past that is refused whole", async () => {
    const server = await RedisServer.start({ backend: new SlowBackend(), listen: "127.0.0.1:0" });
    servers.push(server);
    const raw = await connectRaw(server.port);
    const keys = (from: number, n: number) => Array.from({ length: n }, (_, i) => `key${from + i}`);
    assert.equal(String(await raw.call(["WATCH", ...keys(0, MAX_WATCHED_KEYS - 1)])), "+OK\r\n");
    // Watching a key again does not count twice.
    assert.equal(String(await raw.call(["WATCH", "key0", "last"])), "+OK\r\n");
    assert.equal(
      String(await raw.call(["WATCH", "one-more"])),
      `-ERR too many watched keys (at most ${MAX_WATCHED_KEYS})\r\n`,
    );
    assert.equal(String(await raw.call(["UNWATCH"])), "+OK\r\n");
    assert.equal(String(await raw.call(["WATCH", "one-more"])), "+OK\r\n");
    await raw.close();
  });
});
