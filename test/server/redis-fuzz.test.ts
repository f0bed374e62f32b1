/**
 * Bad input at the front door of a live 3-node cluster of `raftkv serve` processes (run with small
 * limits): frames at and just past each limit, a client that does not read its replies, one client too
 * many, and seeded random streams of malformed, partial, oversized and binary frames on raw sockets to
 * every node. Meanwhile well-behaved clients (ioredis, one per node) run a workload whose every reply is
 * known. Each bad connection must get the replies a correct server gives (a protocol error last when the
 * stream has one) and be closed, within a bound; afterwards every node answers, the workload's replies
 * and keys are exactly as expected, and a data set written before compares equal through every node.
 */
import assert from "node:assert/strict";
import * as net from "node:net";
import { after, before, describe, it } from "node:test";
import fc from "fast-check";
import { Redis } from "ioredis";
import { nodeInfo, ServerCluster } from "./cluster.js";
import {
  acceptableErrors,
  LIMIT_FLAGS,
  LIMITS,
  limitFrame,
  multibulk,
  type Prediction,
  piece,
  predict,
} from "./fuzz-frames.js";
import { cut, exchange, splitReplies } from "./raw-exchange.js";
import { Workload } from "./workload.js";

const SEED = 0x0f_22_20_26;
/** Long enough for any answer on a loaded machine; a connection still open after it has hung. */
const BOUND_MS = 5_000;

let cluster: ServerCluster;
let ports: number[];
let workloads: Workload[] = [];

/** The data set written before any bad input: binary keys and values, some with an expiry. */
const known = new Map<string, { value: Buffer; pexpiretime: number }>();
/** 15 values of the bulk limit and one more, so that an MGET's reply is exactly the output limit. */
const BIG = Array.from({ length: 15 }, (_, i) => `known:big:${i}`);
const EDGE = "known:edge";
const EDGE_OVER = "known:edge+1";

function latin1Key(k: string | Buffer): string {
  return typeof k === "string" ? k : k.toString("latin1");
}

async function writeKnownData(client: Redis): Promise<void> {
  const samples = fc.sample(
    fc.tuple(fc.uint8Array({ maxLength: 16 }), fc.uint8Array({ maxLength: 300, size: "max" }), fc.boolean()),
    { seed: SEED, numRuns: 40 },
  );
  const entries: Array<[Buffer, Buffer, boolean]> = samples.map(([k, v, expires], i) => [
    Buffer.concat([Buffer.from(`known:${i}:`), k]),
    Buffer.from(v),
    expires,
  ]);
  for (const [i, name] of BIG.entries())
    entries.push([Buffer.from(name), Buffer.alloc(LIMITS.maxBulkBytes, 0x61 + i), false]);
  // Sized so that MGET of BIG and EDGE is exactly maxOutputBytes (checked where it is used).
  entries.push([Buffer.from(EDGE), Buffer.alloc(3947, 0x65), false]);
  entries.push([Buffer.from(EDGE_OVER), Buffer.alloc(3948, 0x66), false]);
  const writes = client.pipeline();
  for (const [key, value, expires] of entries) {
    if (expires) writes.set(key, value, "PX", 3_600_000);
    else writes.set(key, value);
  }
  assert.deepEqual(
    await writes.exec(),
    entries.map(() => [null, "OK"]),
  );
  // The expiry times the leader chose, which every node must keep.
  const expiries = client.pipeline();
  for (const [key] of entries) expiries.call("PEXPIRETIME", key);
  const times = (await expiries.exec())!;
  for (const [i, [key, value]] of entries.entries())
    known.set(latin1Key(key), { value, pexpiretime: times[i]![1] as number });
}

function client(port: number): Redis {
  const r = new Redis({ port, host: "127.0.0.1", maxRetriesPerRequest: 0, retryStrategy: () => null });
  r.on("error", () => undefined);
  return r;
}

/** PING on a new connection: the node accepts and answers. */
async function pingRaw(port: number): Promise<string> {
  const r = await exchange(port, [Buffer.from("PING\r\n")], { halfClose: true, timeoutMs: BOUND_MS });
  return r.received.toString("latin1");
}

before(async () => {
  cluster = await ServerCluster.start({ extraArgs: LIMIT_FLAGS });
  ports = cluster.nodes.map((n) => n.port);
  const leader = client((await cluster.leader()).port);
  try {
    await writeKnownData(leader);
  } finally {
    leader.disconnect();
  }
  workloads = ports.map((port, i) => new Workload(port, `n${i + 1}`));
});

after(async () => {
  await Promise.all(workloads.map((w) => w.stop()));
  await cluster?.close();
});

/** Sends `frame` on a new connection (no half-close) and returns what came back before the close. */
async function sendUntilClosed(port: number, frame: Buffer): Promise<string> {
  const r = await exchange(port, [frame], { halfClose: false, timeoutMs: BOUND_MS });
  assert.ok(r.closed, `the server did not close the connection within ${BOUND_MS} ms`);
  return r.received.toString("latin1");
}

/** Sends `frame`, half-closes, and returns every reply (the server answers all, then closes). */
async function sendAndHalfClose(port: number, frame: Buffer): Promise<string> {
  const r = await exchange(port, [frame], { halfClose: true, timeoutMs: BOUND_MS });
  assert.ok(r.closed, `the server did not close the connection within ${BOUND_MS} ms`);
  return r.received.toString("latin1");
}

describe("the front door's limits, on a live cluster", () => {
  it("a frame at each request limit is served; one past it is a protocol error and the connection closed", async () => {
    const port = ports[0]!;
    const protocolError = (what: string) => `-ERR Protocol error: ${what}\r\n`;
    // Bulk length.
    assert.equal(
      await sendAndHalfClose(port, limitFrame("bulk", 0)),
      `$${LIMITS.maxBulkBytes}\r\n${"b".repeat(LIMITS.maxBulkBytes)}\r\n`,
    );
    assert.equal(await sendUntilClosed(port, limitFrame("bulk", 1)), protocolError("invalid bulk length"));
    // Arguments in one command.
    assert.equal(await sendAndHalfClose(port, limitFrame("args", 0)), ":0\r\n");
    assert.equal(
      await sendUntilClosed(port, limitFrame("args", 1)),
      protocolError("invalid multibulk length"),
    );
    // Inline line, with and without its end.
    const inlineText = "i".repeat(LIMITS.maxInlineBytes - "ECHO \r".length);
    assert.equal(
      await sendAndHalfClose(port, limitFrame("inline", 0)),
      `$${inlineText.length}\r\n${inlineText}\r\n`,
    );
    assert.equal(
      await sendUntilClosed(port, limitFrame("inline", 1)),
      protocolError("too big inline request"),
    );
    assert.equal(await sendAndHalfClose(port, limitFrame("inline-unterminated", 0)), "");
    assert.equal(
      await sendUntilClosed(port, limitFrame("inline-unterminated", 1)),
      protocolError("too big inline request"),
    );
    // Bytes of one command, all arguments together.
    assert.match(
      await sendAndHalfClose(port, limitFrame("command-bytes", 0)),
      /^-ERR unknown command 'NOPE', with args beginning with: 'c{128}' 'c{128}' \r\n$/,
    );
    assert.equal(
      await sendUntilClosed(port, limitFrame("command-bytes", 1)),
      protocolError("command too large"),
    );
    // The length lines themselves.
    assert.equal(await sendAndHalfClose(port, limitFrame("mbulk-header", 0)), "");
    assert.equal(
      await sendUntilClosed(port, limitFrame("mbulk-header", 1)),
      protocolError("too big mbulk count string"),
    );
    assert.equal(await sendAndHalfClose(port, limitFrame("bulk-header", 0)), "");
    assert.equal(
      await sendUntilClosed(port, limitFrame("bulk-header", 1)),
      protocolError("too big bulk count string"),
    );
    // Key length: refused with an error reply; the connection goes on.
    assert.equal(await sendAndHalfClose(port, limitFrame("key", 0)), "$-1\r\n");
    assert.equal(
      await sendAndHalfClose(port, Buffer.concat([limitFrame("key", 1), multibulk(["PING"])])),
      "-ERR key is too long (at most 1024 bytes)\r\n+PONG\r\n",
    );
  });

  it("a pipeline one deeper than the limit is paused, not refused: every reply comes, in order", async () => {
    for (const port of ports) {
      const frame = Buffer.concat([
        limitFrame("pipeline", 1),
        multibulk(["MGET", BIG[0]!, "fuzz:none"]),
        multibulk(["PING"]),
      ]);
      const big = "a".repeat(LIMITS.maxBulkBytes);
      assert.equal(
        await sendAndHalfClose(port, frame),
        `${"$-1\r\n".repeat(LIMITS.maxPipelinedCommands + 1)}*2\r\n$${big.length}\r\n${big}\r\n$-1\r\n+PONG\r\n`,
      );
    }
  });

  it("a reply exactly at the output limit is sent; one byte past it closes the connection without it", async () => {
    const values = (keys: readonly string[]) => keys.map((k) => known.get(k)!.value);
    const encode = (vs: readonly Buffer[]) =>
      Buffer.concat([
        Buffer.from(`*${vs.length}\r\n`),
        ...vs.flatMap((v) => [Buffer.from(`$${v.length}\r\n`), v, Buffer.from("\r\n")]),
      ]);
    const atLimit = encode(values([...BIG, EDGE]));
    assert.equal(atLimit.length, LIMITS.maxOutputBytes);
    assert.equal(encode(values([...BIG, EDGE_OVER])).length, LIMITS.maxOutputBytes + 1);
    for (const port of ports) {
      const r = await exchange(port, [multibulk(["MGET", ...BIG, EDGE])], {
        halfClose: true,
        timeoutMs: BOUND_MS,
      });
      assert.ok(r.closed && r.received.equals(atLimit), `node on ${port}: ${r.received.length} bytes`);
      assert.equal(await sendUntilClosed(port, multibulk(["MGET", ...BIG, EDGE_OVER])), "");
    }
  });

  it("a client that sends requests but never reads their replies is closed once they pass the output limit", async () => {
    const port = ports[1]!;
    const connected = async () => Number((await nodeInfo(port))?.get("connected_clients"));
    const before = await connected();
    const requests = 2_000;
    const replyBytes = requests * (LIMITS.maxBulkBytes + `$${LIMITS.maxBulkBytes}\r\n\r\n`.length);
    const socket = net.connect(port, "127.0.0.1");
    socket.pause();
    socket.on("error", () => undefined);
    await new Promise<void>((resolve) => socket.once("connect", () => resolve()));
    socket.write(Buffer.concat(Array.from({ length: requests }, () => multibulk(["GET", BIG[0]!]))));
    // Seen from the server: the connection goes away while this end still has not read a byte.
    const deadline = Date.now() + 10_000;
    while ((await connected()) > before && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    assert.equal(await connected(), before, "the server still holds the connection");
    let received = 0;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, BOUND_MS);
      socket.on("data", (d: Buffer) => {
        received += d.length;
      });
      socket.on("close", () => {
        clearTimeout(timer);
        resolve();
      });
      socket.resume();
    });
    assert.ok(socket.destroyed, "this end did not see the close");
    assert.ok(received < replyBytes, `${received} of ${replyBytes} bytes of replies arrived`);
  });

  it("one client more than the limit is refused with Redis's error; the others go on", async () => {
    const port = ports[2]!;
    const open: net.Socket[] = [];
    let refusal: string | null = null;
    try {
      for (let i = 0; i <= LIMITS.maxClients && refusal === null; i++) {
        const socket = net.connect(port, "127.0.0.1");
        socket.on("error", () => undefined);
        const first = await new Promise<string>((resolve) => {
          let got = "";
          socket.on("data", (d: Buffer) => {
            got += d.toString("latin1");
            if (got.endsWith("\r\n")) resolve(got);
          });
          socket.on("close", () => resolve(got));
          socket.once("connect", () => socket.write("PING\r\n"));
        });
        if (first === "+PONG\r\n") open.push(socket);
        else refusal = first;
      }
      assert.equal(refusal, "-ERR max number of clients reached\r\n");
      assert.ok(open.length > 0 && open.length < LIMITS.maxClients, `${open.length} accepted`);
      // The connections already open work on.
      const r = await new Promise<string>((resolve) => {
        open[0]!.once("data", (d: Buffer) => resolve(d.toString("latin1")));
        open[0]!.write("ECHO still-here\r\n");
      });
      assert.equal(r, "$10\r\nstill-here\r\n");
    } finally {
      for (const s of open) s.destroy();
    }
    // Once they are gone, new clients are accepted again.
    const deadline = Date.now() + BOUND_MS;
    let answer = await pingRaw(port);
    while (answer !== "+PONG\r\n" && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 50));
      answer = await pingRaw(port);
    }
    assert.equal(answer, "+PONG\r\n");
  });
});

/** What one fuzzed connection must have received: the replies a correct server gives, then the close. */
function checkExchange(
  what: string,
  expected: Prediction,
  r: { received: Buffer; closed: boolean; error: string | null },
): void {
  assert.ok(r.closed, `not closed within ${BOUND_MS} ms: ${what}`);
  assert.equal(r.error, null, `socket error: ${what}`);
  const { replies, rest } = splitReplies(r.received);
  assert.equal(rest.length, 0, `a partial reply ${JSON.stringify(rest.toString("latin1"))}: ${what}`);
  const text = replies.map((b) => b.toString("latin1"));
  assert.equal(
    replies.length,
    expected.commands + (expected.error === null ? 0 : 1),
    `replies ${JSON.stringify(text)} for ${expected.commands} commands and error ${expected.error}: ${what}`,
  );
  for (const t of text.slice(0, expected.commands))
    assert.doesNotMatch(t, /^-ERR (internal error|Protocol error)/, what);
  if (expected.error !== null) {
    const last = text[text.length - 1]!;
    assert.ok(
      acceptableErrors(expected.error).some((m) => last === `-ERR ${m}\r\n`),
      `ended with ${JSON.stringify(last)}, expected ${expected.error}: ${what}`,
    );
  }
}

describe("fuzzing the front door of a live cluster", () => {
  it("random malformed, partial, oversized and binary streams to every node", async () => {
    const connection = fc.record({
      node: fc.integer({ min: 0, max: 2 }),
      pieces: fc.array(piece, { minLength: 1, maxLength: 4 }),
      cuts: fc.array(fc.nat(), { maxLength: 4 }),
    });
    let streams = 0;
    await fc.assert(
      fc.asyncProperty(fc.array(connection, { minLength: 1, maxLength: 3 }), async (conns) => {
        const plans = conns.map((c) => {
          const stream = Buffer.concat(c.pieces);
          return { ...c, stream, expected: predict(stream) };
        });
        // A stream that happens to hold a valid write would change data legitimately: not this test's.
        fc.pre(plans.every((p) => !p.expected.changesState));
        const results = await Promise.all(
          plans.map((p) =>
            exchange(ports[p.node]!, cut(p.stream, p.cuts), {
              // A stream the server must close by itself is not half-closed: that would close it anyway.
              halfClose: p.expected.error === null && !p.expected.quit,
              timeoutMs: BOUND_MS,
            }),
          ),
        );
        for (const [i, p] of plans.entries()) {
          const what = `node ${p.node + 1}, ${p.stream.length} bytes ${JSON.stringify(p.stream.toString("latin1").slice(0, 300))}`;
          checkExchange(what, p.expected, results[i]!);
        }
        streams += plans.length;
        for (const port of new Set(plans.map((p) => ports[p.node]!)))
          assert.equal(await pingRaw(port), "+PONG\r\n", `port ${port} stopped answering`);
      }),
      { seed: SEED, numRuns: 120 },
    );
    assert.ok(streams >= 120, `${streams} streams`);
  });

  it("afterwards: every node answers, the workload saw exactly its replies, and no stored data changed", async () => {
    await Promise.all(workloads.map((w) => w.stop()));
    for (const n of cluster.nodes) assert.ok(n.alive, `node ${n.id} exited (${n.exit})`);
    for (const port of ports) assert.equal(await pingRaw(port), "+PONG\r\n");
    const expected = new Map<string, Buffer>();
    for (const [k, v] of known) expected.set(k, v.value);
    for (const w of workloads) {
      assert.deepEqual(w.problems, [], `workload ${w.tag}`);
      assert.ok(w.rounds > 0, `workload ${w.tag} made no progress`);
      for (const [k, v] of w.expectedState()) expected.set(k, Buffer.from(v));
    }
    for (const [i, port] of ports.entries()) {
      const c = client(port);
      try {
        const keys = (await c.keysBuffer("*")).map(latin1Key).sort();
        assert.deepEqual(keys, [...expected.keys()].sort(), `node ${i + 1}: the key set`);
        // In pipelines small enough that their replies stay under the output limit.
        const entries = [...expected];
        for (let from = 0; from < entries.length; from += 8) {
          const batch = entries.slice(from, from + 8);
          const reads = c.pipeline();
          for (const [k] of batch) {
            reads.getBuffer(Buffer.from(k, "latin1"));
            reads.call("PEXPIRETIME", Buffer.from(k, "latin1"));
          }
          const replies = (await reads.exec())!;
          for (const [j, [k, want]] of batch.entries()) {
            const [[valueErr, value], [expiryErr, expiry]] = [replies[2 * j]!, replies[2 * j + 1]!];
            assert.equal(valueErr, null);
            assert.ok(Buffer.isBuffer(value) && value.equals(want), `node ${i + 1}: ${JSON.stringify(k)}`);
            assert.equal(expiryErr, null);
            assert.equal(expiry, known.get(k)?.pexpiretime ?? -1, `node ${i + 1}: expiry of ${k}`);
          }
        }
      } finally {
        c.disconnect();
      }
    }
  });
});
