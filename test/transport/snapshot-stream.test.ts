import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { SeededRandom } from "../../src/raft/rand.js";
import type { SnapshotMetadata } from "../../src/raft/types.js";
import { SimFileSystem } from "../../src/storage/sim-fs.js";
import {
  ClusterIdMismatchError,
  SnapshotCorruptError,
  SnapshotTooLargeError,
  SnapshotTruncatedError,
  TransportError,
} from "../../src/transport/errors.js";
import {
  DATA_OVERHEAD_BYTES,
  encodeSnapshotStream,
  FRAME_DATA,
  FRAME_PREFIX_BYTES,
  FRAME_TRAILER,
  parseSpoolName,
  SnapshotStreamReceiver,
  type SnapshotStreamSummary,
  spoolSnapshot,
} from "../../src/transport/snapshot-stream.js";

const CLUSTER = "cluster-a";
const META: SnapshotMetadata = {
  index: 4242,
  term: 7,
  confState: { voters: [1, 2, 3], learners: [4], votersOutgoing: [], learnersNext: [5], autoLeave: true },
};

function randomBytes(rng: SeededRandom, n: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = rng.next32() & 0xff;
  return out;
}

function concat(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** Yields `data` in random-sized pieces (1..maxPiece), each a fresh copy. */
async function* randomPieces(
  rng: SeededRandom,
  data: Uint8Array,
  maxPiece: number,
): AsyncGenerator<Uint8Array> {
  let o = 0;
  while (o < data.length) {
    const n = Math.min(1 + rng.intn(maxPiece), data.length - o);
    yield data.slice(o, o + n);
    o += n;
  }
}

async function encodeAll(
  data: Uint8Array | AsyncIterable<Uint8Array>,
  chunkBytes: number,
  opts: { expectedBytes?: number; meta?: SnapshotMetadata } = {},
): Promise<{ frames: Uint8Array[]; summary: SnapshotStreamSummary }> {
  const gen = encodeSnapshotStream(opts.meta ?? META, data, {
    chunkBytes,
    clusterId: CLUSTER,
    ...(opts.expectedBytes === undefined ? {} : { expectedBytes: opts.expectedBytes }),
  });
  const frames: Uint8Array[] = [];
  for (;;) {
    const r = await gen.next();
    if (r.done) return { frames, summary: r.value };
    frames.push(r.value);
  }
}

interface Received {
  summary: SnapshotStreamSummary;
  payload: Uint8Array;
  receiver: SnapshotStreamReceiver;
}

/** Feeds `stream` to a receiver in random slices (1..maxSlice) and ends it. */
async function receiveAll(
  stream: Uint8Array,
  rng: SeededRandom,
  maxSlice: number,
  opts: { clusterId?: string; maxSnapshotBytes?: number; maxChunkBytes?: number } = {},
): Promise<Received> {
  const chunks: Uint8Array[] = [];
  const receiver = new SnapshotStreamReceiver({
    clusterId: opts.clusterId ?? CLUSTER,
    ...(opts.maxSnapshotBytes === undefined ? {} : { maxSnapshotBytes: opts.maxSnapshotBytes }),
    ...(opts.maxChunkBytes === undefined ? {} : { maxChunkBytes: opts.maxChunkBytes }),
    sink: async (c) => {
      await Promise.resolve();
      chunks.push(c);
    },
  });
  for await (const piece of randomPieces(rng, stream, maxSlice)) await receiver.push(piece);
  const summary = receiver.end();
  return { summary, payload: concat(chunks), receiver };
}

/** Stream offsets at which each frame ends, with the payload bytes it carries. */
function frameLayout(
  frames: readonly Uint8Array[],
): Array<{ start: number; end: number; type: number; payload: number }> {
  const out: Array<{ start: number; end: number; type: number; payload: number }> = [];
  let o = 0;
  for (const f of frames) {
    const type = f[0]!;
    out.push({
      start: o,
      end: o + f.length,
      type,
      payload: type === FRAME_DATA ? f.length - FRAME_PREFIX_BYTES - DATA_OVERHEAD_BYTES : 0,
    });
    o += f.length;
  }
  return out;
}

/** Feeds a cut stream; returns the error `end()` (or a push) threw. */
async function feedCut(stream: Uint8Array, cut: number, rng: SeededRandom): Promise<unknown> {
  const receiver = new SnapshotStreamReceiver({ clusterId: CLUSTER });
  try {
    for await (const piece of randomPieces(rng, stream.subarray(0, cut), 97)) await receiver.push(piece);
    receiver.end();
  } catch (err) {
    return err;
  }
  return null;
}

describe("snapshot stream: round trips", () => {
  const CHUNK = 1024;
  const sizes: Array<[string, number]> = [
    ["empty", 0],
    ["one byte", 1],
    ["exactly one chunk", CHUNK],
    ["an exact multiple of the chunk size", 4 * CHUNK],
    ["one byte over a multiple (the trailing partial chunk)", 4 * CHUNK + 1],
    ["one byte short of a multiple", 3 * CHUNK - 1],
  ];
  for (const [name, size] of sizes) {
    it(`${name} (${size} bytes) arrives intact, from a buffer and from an iterable`, async () => {
      const rng = new SeededRandom(size + 1);
      const payload = randomBytes(rng, size);
      for (const source of ["buffer", "iterable"] as const) {
        const data = source === "buffer" ? payload : randomPieces(rng, payload, 700);
        const { frames, summary } = await encodeAll(
          data,
          CHUNK,
          source === "buffer" ? {} : { expectedBytes: size },
        );
        const chunks = Math.ceil(size / CHUNK);
        assert.equal(frames.length, chunks + 2, "header + chunks + trailer");
        assert.equal(summary.payloadBytes, size);
        assert.equal(summary.chunks, chunks);
        const layout = frameLayout(frames);
        layout.slice(1, -1).forEach((f, k) => {
          assert.equal(f.type, FRAME_DATA);
          assert.equal(f.payload, k < chunks - 1 ? CHUNK : size - (chunks - 1) * CHUNK, `chunk ${k} size`);
        });
        assert.equal(layout.at(-1)!.type, FRAME_TRAILER);
        const got = await receiveAll(concat(frames), rng, 300);
        assert.deepEqual(got.payload, payload);
        assert.equal(got.summary.payloadBytes, size);
        assert.equal(got.summary.chunks, chunks);
        assert.equal(got.summary.payloadCrc, summary.payloadCrc);
        assert.deepEqual(got.summary.metadata, META);
        assert.equal(got.receiver.receivedPayloadBytes, size);
        assert.deepEqual(got.receiver.header?.metadata, META);
        assert.equal(got.receiver.header?.expectedBytes, size);
      }
    });
  }

  it("a multi-MiB payload from random pieces, fed in random slices, with unknown size", async () => {
    const rng = new SeededRandom(99);
    const payload = randomBytes(rng, 3 * 1024 * 1024 + 123);
    const { frames, summary } = await encodeAll(randomPieces(rng, payload, 300_000), 1024 * 1024);
    assert.equal(frames.length, 4 + 2);
    assert.equal(summary.payloadBytes, payload.length);
    const got = await receiveAll(concat(frames), rng, 200_000);
    assert.equal(got.receiver.header?.expectedBytes, -1);
    assert.equal(got.summary.payloadBytes, payload.length);
    assert.deepEqual(got.payload, payload);
  });

  it("the sender refuses a source that yields a different size than it announced", async () => {
    const rng = new SeededRandom(3);
    const payload = randomBytes(rng, 100);
    await assert.rejects(
      encodeAll(randomPieces(rng, payload, 30), 16, { expectedBytes: 99 }),
      TransportError,
    );
    await assert.rejects(
      encodeAll(randomPieces(rng, payload, 30), 16, { expectedBytes: 101 }),
      TransportError,
    );
  });
});

describe("snapshot stream: truncation", () => {
  it("a cut at every byte offset of a small stream is SnapshotTruncatedError with the right counts", async () => {
    const rng = new SeededRandom(5);
    const payload = randomBytes(rng, 300);
    const { frames } = await encodeAll(payload, 64);
    const stream = concat(frames);
    const layout = frameLayout(frames);
    const headerEnd = layout[0]!.end;
    for (let cut = 0; cut < stream.length; cut++) {
      const err = await feedCut(stream, cut, rng);
      assert.ok(err instanceof SnapshotTruncatedError, `cut at ${cut}: ${String(err)}`);
      const received = layout.filter((f) => f.end <= cut).reduce((n, f) => n + f.payload, 0);
      assert.equal(err.receivedBytes, received, `received at cut ${cut}`);
      assert.equal(err.streamBytes, cut);
      if (cut < headerEnd) {
        assert.equal(err.missing, "header", `cut ${cut}`);
        assert.equal(err.expectedBytes, -1);
      } else {
        assert.equal(err.expectedBytes, payload.length, `expected at cut ${cut}`);
        const inFrame = layout.find((f) => f.start < cut && cut < f.end);
        const want =
          inFrame?.type === FRAME_TRAILER || (inFrame === undefined && received === payload.length)
            ? "trailer"
            : "chunk";
        assert.equal(err.missing, want, `missing at cut ${cut}`);
      }
      assert.match(err.message, /resend/);
    }
    assert.equal(await feedCut(stream, stream.length, rng), null, "the whole stream verifies");
  });

  it("random cuts of a large stream report the verified bytes received", async () => {
    const rng = new SeededRandom(6);
    const payload = randomBytes(rng, 2 * 1024 * 1024 + 17);
    const { frames } = await encodeAll(payload, 64 * 1024);
    const stream = concat(frames);
    const layout = frameLayout(frames);
    for (let k = 0; k < 40; k++) {
      const cut = rng.intn(stream.length);
      const receiver = new SnapshotStreamReceiver({ clusterId: CLUSTER });
      let sunk = 0;
      const r2 = new SnapshotStreamReceiver({
        clusterId: CLUSTER,
        sink: (c) => {
          sunk += c.length;
        },
      });
      for (const piece of [
        stream.subarray(0, Math.floor(cut / 2)),
        stream.subarray(Math.floor(cut / 2), cut),
      ]) {
        await receiver.push(piece);
        await r2.push(piece);
      }
      assert.throws(() => receiver.end(), SnapshotTruncatedError);
      const received = layout.filter((f) => f.end <= cut).reduce((n, f) => n + f.payload, 0);
      const err = (() => {
        try {
          r2.end();
        } catch (e) {
          return e;
        }
        return null;
      })();
      assert.ok(err instanceof SnapshotTruncatedError);
      assert.equal(err.receivedBytes, received);
      assert.equal(sunk, received, "the sink got exactly the verified bytes");
      assert.equal(err.expectedBytes, cut >= layout[0]!.end ? payload.length : -1);
    }
  });
});

describe("snapshot stream: corruption and refusals", () => {
  it("a flipped byte anywhere is never accepted (corrupt, or truncated only via a length field)", async () => {
    const rng = new SeededRandom(8);
    const payload = randomBytes(rng, 500);
    const { frames } = await encodeAll(payload, 128);
    const stream = concat(frames);
    const lengthBytes = new Set<number>();
    for (const f of frameLayout(frames))
      for (let b = 1; b < FRAME_PREFIX_BYTES; b++) lengthBytes.add(f.start + b);
    let corrupt = 0;
    let truncated = 0;
    for (let off = 0; off < stream.length; off++) {
      const bad = stream.slice();
      bad[off]! ^= 1 + rng.intn(255);
      const sunk: Uint8Array[] = [];
      const receiver = new SnapshotStreamReceiver({ clusterId: CLUSTER, sink: (c) => void sunk.push(c) });
      let err: unknown = null;
      try {
        for await (const piece of randomPieces(rng, bad, 61)) await receiver.push(piece);
        receiver.end();
      } catch (e) {
        err = e;
      }
      assert.ok(err !== null, `flip at ${off} was accepted`);
      if (err instanceof SnapshotTruncatedError) {
        assert.ok(lengthBytes.has(off), `flip at ${off} (not a length field) reported as truncation`);
        truncated++;
      } else {
        assert.ok(err instanceof SnapshotCorruptError, `flip at ${off}: ${String(err)}`);
        corrupt++;
      }
      const got = concat(sunk);
      assert.deepEqual(got, payload.subarray(0, got.length), "only verified bytes reach the sink");
    }
    assert.ok(corrupt > truncated);
  });

  it("flipped bytes at random offsets of a large stream are SnapshotCorruptError or Truncated", async () => {
    const rng = new SeededRandom(9);
    const payload = randomBytes(rng, 1024 * 1024 + 3);
    const { frames } = await encodeAll(payload, 32 * 1024);
    const stream = concat(frames);
    for (let k = 0; k < 30; k++) {
      const off = rng.intn(stream.length);
      const bad = stream.slice();
      bad[off]! ^= 0x40;
      await assert.rejects(
        receiveAll(bad, rng, 50_000),
        (e: unknown) => e instanceof SnapshotCorruptError || e instanceof SnapshotTruncatedError,
      );
    }
  });

  it("bytes after the trailer are SnapshotCorruptError", async () => {
    const { frames } = await encodeAll(new Uint8Array(10), 4);
    const rng = new SeededRandom(1);
    await assert.rejects(receiveAll(concat([...frames, new Uint8Array([0])]), rng, 7), SnapshotCorruptError);
  });

  it("a stream that is not a snapshot stream is refused at its first frame", async () => {
    const receiver = new SnapshotStreamReceiver({ clusterId: CLUSTER });
    await assert.rejects(receiver.push(new TextEncoder().encode("GET / HTTP/1.1\r\n")), SnapshotCorruptError);
    assert.throws(() => receiver.end(), SnapshotCorruptError, "the failure is final");
  });

  it("a stream from another cluster is refused before any payload", async () => {
    const { frames } = await encodeAll(new Uint8Array(100), 16);
    let sunk = 0;
    const receiver = new SnapshotStreamReceiver({
      clusterId: "cluster-b",
      sink: (c) => {
        sunk += c.length;
      },
    });
    await assert.rejects(
      (async () => {
        for (const f of frames) await receiver.push(f);
      })(),
      (e: unknown) =>
        e instanceof ClusterIdMismatchError && e.expected === "cluster-b" && e.received === CLUSTER,
    );
    assert.equal(sunk, 0);
  });

  it("an announced size over the limit is refused at the header", async () => {
    const { frames } = await encodeAll(new Uint8Array(5000), 256);
    let sunk = 0;
    const receiver = new SnapshotStreamReceiver({
      clusterId: CLUSTER,
      maxSnapshotBytes: 1000,
      sink: (c) => {
        sunk += c.length;
      },
    });
    await assert.rejects(
      receiver.push(frames[0]!),
      (e: unknown) => e instanceof SnapshotTooLargeError && e.limit === 1000,
    );
    assert.equal(sunk, 0);
  });

  it("an unannounced size over the limit is refused before the chunk that would pass it is buffered", async () => {
    const rng = new SeededRandom(11);
    const { frames } = await encodeAll(randomPieces(rng, new Uint8Array(10_000), 999), 256);
    let sunk = 0;
    const receiver = new SnapshotStreamReceiver({
      clusterId: CLUSTER,
      maxSnapshotBytes: 1000,
      sink: (c) => {
        sunk += c.length;
      },
    });
    let pushed = 0;
    const err = await (async () => {
      for (const f of frames) {
        // Only the prefix of each frame first: the refusal must come before its body is taken in.
        await receiver.push(f.subarray(0, FRAME_PREFIX_BYTES));
        pushed += FRAME_PREFIX_BYTES;
        await receiver.push(f.subarray(FRAME_PREFIX_BYTES));
        pushed += f.length - FRAME_PREFIX_BYTES;
      }
      return null;
    })().catch((e: unknown) => e);
    assert.ok(err instanceof SnapshotTooLargeError, String(err));
    assert.equal(err.limit, 1000);
    assert.equal(sunk, 768, "three whole chunks fit under the limit, the fourth does not");
    assert.equal(
      receiver.receivedStreamBytes,
      pushed + FRAME_PREFIX_BYTES,
      "refused on the fourth chunk's prefix",
    );
  });

  it("a data frame longer than maxChunkBytes is refused from its prefix alone", async () => {
    const { frames } = await encodeAll(new Uint8Array(10), 4);
    const receiver = new SnapshotStreamReceiver({ clusterId: CLUSTER, maxChunkBytes: 1024 });
    await receiver.push(frames[0]!);
    const prefix = new Uint8Array([FRAME_DATA, 0xf0, 0xff, 0xff, 0xff]);
    await assert.rejects(
      receiver.push(prefix),
      (e: unknown) => e instanceof SnapshotCorruptError && e.offset === frames[0]!.length,
    );
  });
});

describe("spoolSnapshot on SimFileSystem", () => {
  const DIR = "/data/snap-in";

  async function* framesOf(payload: Uint8Array, chunkBytes = 256): AsyncGenerator<Uint8Array> {
    yield* encodeSnapshotStream(META, payload, { chunkBytes, clusterId: CLUSTER });
  }

  function filesIn(sim: SimFileSystem, view: "live" | "durable" = "live"): string[] {
    return sim.list(view).filter((p) => p.startsWith(`${DIR}/`));
  }

  it("success leaves exactly the verified, durable final file", async () => {
    for (const size of [0, 256, 1024, 1025]) {
      const sim = new SimFileSystem(1);
      const payload = randomBytes(new SeededRandom(size), size);
      const got = await spoolSnapshot(sim, DIR, framesOf(payload), { clusterId: CLUSTER });
      const finalPath = got.path;
      assert.deepEqual(parseSpoolName(finalPath.slice(DIR.length + 1)), {
        index: META.index,
        term: META.term,
        received: true,
      });
      assert.equal(got.payloadBytes, size);
      assert.deepEqual(got.metadata, META);
      assert.deepEqual(filesIn(sim), [finalPath]);
      assert.deepEqual(filesIn(sim, "durable"), [finalPath]);
      assert.deepEqual(sim.durableSnapshotOf(finalPath), payload);
      assert.equal(sim.openHandleCount(), 0);
      sim.crash();
      assert.deepEqual(sim.readFile(finalPath), payload, "survives a power loss");
    }
  });

  async function* cut(stream: AsyncIterable<Uint8Array>, at: number): AsyncGenerator<Uint8Array> {
    let o = 0;
    for await (const f of stream) {
      if (o + f.length >= at) {
        yield f.subarray(0, at - o);
        return;
      }
      yield f;
      o += f.length;
    }
  }

  it("a cut stream leaves no temp or final file", async () => {
    const sim = new SimFileSystem(2);
    const payload = randomBytes(new SeededRandom(2), 2000);
    await assert.rejects(
      spoolSnapshot(sim, DIR, cut(framesOf(payload), 900), { clusterId: CLUSTER }),
      SnapshotTruncatedError,
    );
    assert.deepEqual(filesIn(sim), []);
    assert.equal(sim.openHandleCount(), 0);
  });

  it("a corrupt stream or another cluster's leaves no file", async () => {
    const sim = new SimFileSystem(3);
    const payload = randomBytes(new SeededRandom(3), 2000);
    async function* flipped(): AsyncGenerator<Uint8Array> {
      let k = 0;
      for await (const f of framesOf(payload)) {
        const g = f.slice();
        if (k++ === 4) g[20]! ^= 1;
        yield g;
      }
    }
    await assert.rejects(spoolSnapshot(sim, DIR, flipped(), { clusterId: CLUSTER }), SnapshotCorruptError);
    assert.deepEqual(filesIn(sim), []);
    await assert.rejects(
      spoolSnapshot(sim, DIR, framesOf(payload), { clusterId: "other" }),
      ClusterIdMismatchError,
    );
    assert.deepEqual(filesIn(sim), []);
  });

  for (const op of ["write", "datasync", "rename", "syncDir"] as const) {
    it(`EIO on ${op} leaves no temp or final file and rethrows the I/O error`, async () => {
      const sim = new SimFileSystem(4);
      sim.mkdirp(DIR);
      const payload = randomBytes(new SeededRandom(4), 3000);
      // ensureDurableDir syncs only DIR's parents, so the one syncDir of DIR is the one after the rename.
      sim.failNext(op, "EIO", op === "syncDir" ? DIR : undefined);
      const logs: string[] = [];
      const logger = {
        debug() {},
        info() {},
        warn: (msg: string, f?: Record<string, unknown>) => void logs.push(`${msg} ${String(f?.kind)}`),
      };
      await assert.rejects(
        spoolSnapshot(sim, DIR, framesOf(payload), { clusterId: CLUSTER, logger }),
        (e: unknown) => {
          return (e as { code?: unknown }).code === "EIO";
        },
      );
      assert.deepEqual(filesIn(sim), [], op);
      assert.deepEqual(logs, ["snapshot receive failed io"]);
      assert.equal(sim.openHandleCount(), 0);
    });
  }

  it("a crash at any point mid-spool leaves no final file", async () => {
    const payload = randomBytes(new SeededRandom(5), 2000);
    const frameCount = Math.ceil(2000 / 256) + 2;
    for (let at = 0; at <= frameCount; at++) {
      const sim = new SimFileSystem(at + 10);
      async function* crashing(): AsyncGenerator<Uint8Array> {
        let k = 0;
        for await (const f of framesOf(payload)) {
          if (k++ === at) sim.crash("random");
          yield f;
        }
        if (k === at) sim.crash("random");
      }
      const result = await spoolSnapshot(sim, DIR, crashing(), { clusterId: CLUSTER }).catch(
        (e: unknown) => e,
      );
      if (at === 0) {
        // Crashed (and rebooted) before the header arrived: the spool then runs on the rebooted disk.
        assert.ok(!(result instanceof Error), String(result));
        continue;
      }
      assert.ok(result instanceof Error, `crash before frame ${at} was not reported`);
      assert.ok(
        !sim.list().some((p) => p.endsWith(".snap")),
        `crash before frame ${at} left ${sim.list().join(", ")}`,
      );
      sim.crash();
      assert.ok(!sim.list().some((p) => p.startsWith(`${DIR}/`)), `after reboot: ${sim.list().join(", ")}`);
    }
  });

  it("a crash during the final directory sync leaves no final file", async () => {
    const sim = new SimFileSystem(21);
    sim.mkdirp(DIR);
    let syncs = 0;
    sim.delaySync = async (kind, path) => {
      if (kind === "syncDir" && path === DIR && ++syncs === 1) sim.crash("random");
    };
    const payload = randomBytes(new SeededRandom(6), 1000);
    // Whether the interrupted sync reports an error or not, the rename never became durable.
    await spoolSnapshot(sim, DIR, framesOf(payload), { clusterId: CLUSTER }).catch(() => undefined);
    sim.delaySync = undefined;
    assert.ok(!sim.list().some((p) => p.endsWith(".snap")), sim.list().join(", "));
  });
});
