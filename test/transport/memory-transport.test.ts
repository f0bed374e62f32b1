import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { PeerDispatcher, SendTimeoutError } from "../../src/engine/dispatch.js";
import { ReportQueue } from "../../src/engine/reports.js";
import { SeededRandom } from "../../src/raft/rand.js";
import {
  EntryType,
  type Message,
  MessageType,
  message,
  type NodeId,
  type SnapshotMetadata,
} from "../../src/raft/types.js";
import { SimFileSystem } from "../../src/storage/sim-fs.js";
import {
  MessageDroppedError,
  PeerUnreachableError,
  SnapshotCorruptError,
  SnapshotTruncatedError,
} from "../../src/transport/errors.js";
import { MemoryNetwork, MemoryTransport, type Scheduler } from "../../src/transport/memory-transport.js";
import {
  DATA_OVERHEAD_BYTES,
  encodeHeaderFrame,
  FRAME_PREFIX_BYTES,
  parseSpoolName,
  TRAILER_BODY_BYTES,
} from "../../src/transport/snapshot-stream.js";
import type { InboundHandler, ReceivedSnapshot, SnapshotSource } from "../../src/transport/transport.js";
import { ManualTimers, settle } from "../helpers/virtual-time.js";

const CLUSTER = "cluster-mem";
const META: SnapshotMetadata = {
  index: 120,
  term: 3,
  confState: { voters: [1, 2, 3], learners: [], votersOutgoing: [], learnersNext: [], autoLeave: false },
};
const CHUNK = 4096;
const SNAP_DIR = "/data/snap-in";

/** A scheduler the test drains by hand. */
class ManualScheduler {
  readonly queue: (() => void)[] = [];
  readonly schedule: Scheduler = (fn) => {
    this.queue.push(fn);
  };
  /** Runs one scheduled task, letting microtasks settle around it; false when none was queued. */
  async step(): Promise<boolean> {
    await settle();
    const fn = this.queue.shift();
    if (fn === undefined) return false;
    fn();
    await settle();
    return true;
  }
  /** Runs tasks until none is left. */
  async drain(): Promise<void> {
    for (let i = 0; i < 1_000_000; i++) if (!(await this.step())) return;
    throw new Error("scheduler did not quiesce");
  }
}

class RecordingHandler implements InboundHandler {
  readonly batches: { from: NodeId; batch: readonly Message[] }[] = [];
  readonly snapshots: { from: NodeId; message: Message; received: ReceivedSnapshot }[] = [];
  onMessages(from: NodeId, batch: readonly Message[]): void {
    this.batches.push({ from, batch });
  }
  async onSnapshot(from: NodeId, m: Message, received: ReceivedSnapshot): Promise<void> {
    this.snapshots.push({ from, message: m, received });
  }
}

function payloadOf(seed: number, n: number): Uint8Array {
  const rng = new SeededRandom(seed);
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = rng.next32() & 0xff;
  return out;
}

/** Yields the payload in pieces of 1000 bytes. */
function sourceOf(payload: Uint8Array): SnapshotSource {
  return {
    async *open(meta: SnapshotMetadata) {
      assert.equal(meta.index, META.index);
      for (let o = 0; o < payload.length; o += 1000) yield payload.slice(o, o + 1000);
    },
  };
}

function cluster(payload = payloadOf(1, 10_000), sliceBytes = 1500) {
  const sched = new ManualScheduler();
  const network = new MemoryNetwork({ schedule: sched.schedule });
  const fs2 = new SimFileSystem(7);
  const mk = (id: NodeId, fs: SimFileSystem) =>
    new MemoryTransport({
      id,
      network,
      clusterId: CLUSTER,
      snapshotSource: sourceOf(payload),
      fs,
      snapshotDir: SNAP_DIR,
      chunkBytes: CHUNK,
      sliceBytes,
    });
  const t1 = mk(1, new SimFileSystem(3));
  const t2 = mk(2, fs2);
  const h1 = new RecordingHandler();
  const h2 = new RecordingHandler();
  return { sched, network, fs2, t1, t2, h1, h2, payload };
}

const snapMsg = () =>
  message({
    type: MessageType.Snap,
    from: 1,
    to: 2,
    term: 3,
    snapshot: { metadata: META, data: new Uint8Array(0) },
  });

/** Settles a promise into a value or error without leaving it floating. */
function capture<T>(p: Promise<T>): {
  result: () => { ok: true; value: T } | { ok: false; error: unknown } | null;
} {
  let r: { ok: true; value: T } | { ok: false; error: unknown } | null = null;
  p.then(
    (value) => {
      r = { ok: true, value };
    },
    (error: unknown) => {
      r = { ok: false, error };
    },
  );
  return { result: () => r };
}

describe("MemoryTransport messages", () => {
  it("delivers batches in order, on a later macrotask, as copies", async () => {
    const { sched, network, t1, t2, h2 } = cluster();
    await t2.start(h2);
    const entries = [{ term: 1, index: 5, type: EntryType.Normal, data: new Uint8Array([1, 2, 3]) }];
    const a = message({ type: MessageType.App, from: 1, to: 2, term: 1, index: 4, entries });
    const b = message({ type: MessageType.Heartbeat, from: 1, to: 2, term: 1 });
    const c = message({ type: MessageType.App, from: 1, to: 2, term: 1, index: 5 });
    const s = t1.sender(2);
    const signal = new AbortController().signal;
    const p1 = capture(s.send([a, b], signal));
    const p2 = capture(s.send([c], signal));
    await settle();
    assert.equal(h2.batches.length, 0, "never delivered before the scheduler runs");
    assert.equal(p1.result(), null);
    await sched.drain();
    assert.deepEqual(p1.result(), { ok: true, value: undefined });
    assert.deepEqual(p2.result(), { ok: true, value: undefined });
    assert.deepEqual(
      h2.batches.map((x) => [x.from, x.batch.map((m) => m.type)]),
      [
        [1, [MessageType.App, MessageType.Heartbeat]],
        [1, [MessageType.App]],
      ],
    );
    const got = h2.batches[0]!.batch[0]!;
    assert.deepEqual(got, a);
    assert.notEqual(got, a, "message object copied");
    assert.notEqual(got.entries, a.entries, "entries array copied");
    assert.equal(got.entries[0]!.data, entries[0]!.data, "entry data may be shared");
    assert.equal(network.stats.deliveredBatches, 2);
    assert.equal(network.stats.deliveredMessages, 3);
    assert.equal(network.linkStats(1, 2).deliveredBatches, 2);
  });

  it("rejects sends to unknown, unstarted or closed peers", async () => {
    const { sched, t1, t2, h2 } = cluster();
    const signal = new AbortController().signal;
    const hb = [message({ type: MessageType.Heartbeat, from: 1, to: 9 })];
    await assert.rejects(t1.sender(9).send(hb, signal), PeerUnreachableError);
    await assert.rejects(t1.sender(2).send(hb, signal), PeerUnreachableError);
    await t2.start(h2);
    await t2.close();
    await assert.rejects(t1.sender(2).send(hb, signal), PeerUnreachableError);
    await sched.drain();
  });

  it("partition and heal", async () => {
    const { sched, network, t1, t2, h2 } = cluster();
    await t2.start(h2);
    const hb = [message({ type: MessageType.Heartbeat, from: 1, to: 2 })];
    const signal = new AbortController().signal;
    network.partition([1], [2, 3]);
    await assert.rejects(t1.sender(2).send(hb, signal), PeerUnreachableError);
    network.heal();
    const p = capture(t1.sender(2).send(hb, signal));
    await sched.drain();
    assert.deepEqual(p.result(), { ok: true, value: undefined });
    assert.equal(h2.batches.length, 1);
  });
});

describe("MemoryNetwork delays", () => {
  it("a delayed link delivers after its delay on the network's timers, in order; other links are not held up", async () => {
    const sched = new ManualScheduler();
    const timers = new ManualTimers();
    const network = new MemoryNetwork({ schedule: sched.schedule, timers });
    const mk = (id: NodeId) =>
      new MemoryTransport({
        id,
        network,
        clusterId: CLUSTER,
        snapshotSource: sourceOf(new Uint8Array(0)),
        fs: new SimFileSystem(id),
        snapshotDir: SNAP_DIR,
      });
    const [t1, t2, t3] = [mk(1), mk(2), mk(3)];
    const [h2, h3] = [new RecordingHandler(), new RecordingHandler()];
    await t2.start(h2);
    await t3.start(h3);
    network.delay(1, 2, 50);
    const signal = new AbortController().signal;
    const hb = (to: NodeId, commit: number) => [
      message({ type: MessageType.Heartbeat, from: 1, to, commit }),
    ];
    const first = capture(t1.sender(2).send(hb(2, 1), signal));
    const second = capture(t1.sender(2).send(hb(2, 2), signal));
    const other = capture(t1.sender(3).send(hb(3, 1), signal));
    await sched.drain();
    assert.deepEqual(other.result(), { ok: true, value: undefined }, "the undelayed link delivered");
    assert.equal(h2.batches.length, 0, "nothing before the delay");
    timers.advance(49);
    await sched.drain();
    assert.equal(h2.batches.length, 0);
    timers.advance(1);
    await sched.drain();
    assert.deepEqual(
      h2.batches.map((b) => b.batch[0]!.commit),
      [1, 2],
      "delivered after 50 ms, in order",
    );
    assert.deepEqual(first.result(), { ok: true, value: undefined });
    assert.deepEqual(second.result(), { ok: true, value: undefined });
    network.delay(1, 2, 0);
    const undelayed = capture(t1.sender(2).send(hb(2, 3), signal));
    await sched.drain();
    assert.deepEqual(undelayed.result(), { ok: true, value: undefined }, "a delay set back to 0 is gone");
    assert.throws(() => network.delay(1, 2, -1), RangeError);
  });
});

describe("MemoryNetwork lossy links", () => {
  async function lossy(chaos: { lossRate: number; duplicateRate: number; maxJitterMs: number }) {
    const sched = new ManualScheduler();
    const timers = new ManualTimers();
    const network = new MemoryNetwork({ schedule: sched.schedule, timers, random: new SeededRandom(3) });
    const mk = (id: NodeId) =>
      new MemoryTransport({
        id,
        network,
        clusterId: CLUSTER,
        snapshotSource: sourceOf(new Uint8Array(0)),
        fs: new SimFileSystem(id),
        snapshotDir: SNAP_DIR,
      });
    const [t1, t2] = [mk(1), mk(2)];
    const h2 = new RecordingHandler();
    await t2.start(h2);
    network.setChaos(1, 2, chaos);
    const signal = new AbortController().signal;
    const sends = Array.from({ length: 50 }, (_, i) =>
      capture(
        t1.sender(2).send([message({ type: MessageType.Heartbeat, from: 1, to: 2, commit: i })], signal),
      ),
    );
    for (let t = 0; t < 20; t++) {
      await sched.drain();
      timers.advance(10);
    }
    await sched.drain();
    assert.ok(
      sends.every((p) => p.result()?.ok),
      "a lossy link takes every batch",
    );
    return { network, got: h2.batches.map((b) => b.batch[0]!.commit) };
  }

  it("loses every batch at loss rate 1, silently, and counts them", async () => {
    const { network, got } = await lossy({ lossRate: 1, duplicateRate: 0, maxJitterMs: 0 });
    assert.deepEqual(got, []);
    assert.equal(network.linkStats(1, 2).droppedBatches, 50);
  });

  it("delivers every batch twice at duplicate rate 1", async () => {
    const { got } = await lossy({ lossRate: 0, duplicateRate: 1, maxJitterMs: 0 });
    assert.equal(got.length, 100);
    assert.deepEqual(
      [...new Set(got)].sort((a, b) => a - b),
      Array.from({ length: 50 }, (_, i) => i),
    );
  });

  it("reorders batches with jitter, and losing some at a middling rate", async () => {
    const { got } = await lossy({ lossRate: 0.2, duplicateRate: 0, maxJitterMs: 100 });
    assert.ok(got.length > 25 && got.length < 50, `some lost (${got.length} of 50 arrived)`);
    assert.ok(
      got.some((c, i) => i > 0 && c < got[i - 1]!),
      "some batch overtook an earlier one",
    );
  });

  it("refuses nonsense rates, and a lossy link without a random source", () => {
    const network = new MemoryNetwork({ random: new SeededRandom(1) });
    assert.throws(
      () => network.setChaos(1, 2, { lossRate: 2, duplicateRate: 0, maxJitterMs: 0 }),
      RangeError,
    );
    assert.throws(
      () => network.setChaos(1, 2, { lossRate: 0, duplicateRate: 0, maxJitterMs: -1 }),
      RangeError,
    );
    assert.throws(
      () => new MemoryNetwork().setChaos(1, 2, { lossRate: 0, duplicateRate: 0, maxJitterMs: 0 }),
      RangeError,
    );
  });
});

describe("PeerDispatcher over a MemoryTransport", () => {
  it("a blackholed peer: the send times out and a report is posted", async () => {
    const { sched, network, t1, t2, h2 } = cluster();
    await t2.start(h2);
    network.drop(1, 2, undefined, "blackhole");
    const timers = new ManualTimers();
    const reports = new ReportQueue(16);
    const d = new PeerDispatcher(2, t1.sender(2), reports, timers, { sendTimeoutMs: 100 });
    d.enqueue(message({ type: MessageType.App, from: 1, to: 2, term: 1 }));
    await sched.drain();
    assert.equal(reports.size, 0, "a blackhole never settles by itself");
    timers.advance(99);
    await settle();
    assert.equal(reports.size, 0);
    timers.advance(1);
    await sched.drain();
    const [r] = reports.drain();
    assert.equal(r?.kind, "failed");
    assert.ok(r?.kind === "failed" && r.error instanceof SendTimeoutError);
    assert.equal(r?.kind === "failed" && r.messageType, MessageType.App);
    assert.equal(h2.batches.length, 0);
    assert.equal(network.stats.droppedBatches, 1);
    d.close();
  });

  it("an error-mode drop rejects the send and is reported", async () => {
    const { sched, network, t1, t2, h2 } = cluster();
    await t2.start(h2);
    network.drop(1, 2, (batch) => batch.some((m) => m.type === MessageType.App));
    const reports = new ReportQueue(16);
    const d = new PeerDispatcher(2, t1.sender(2), reports, new ManualTimers());
    d.enqueue(message({ type: MessageType.App, from: 1, to: 2, term: 1 }));
    d.enqueue(message({ type: MessageType.Heartbeat, from: 1, to: 2, term: 1 }));
    await sched.drain();
    const got = reports.drain();
    assert.equal(got.length, 1);
    assert.ok(got[0]!.kind === "failed" && got[0]!.error instanceof MessageDroppedError);
    assert.deepEqual(
      h2.batches.map((x) => x.batch.map((m) => m.type)),
      [[MessageType.Heartbeat]],
    );
    assert.equal(network.stats.droppedBatches, 1);
    assert.equal(network.stats.deliveredBatches, 1);
    d.close();
  });

  it("a confirmed snapshot is reported as confirmed", async () => {
    const { sched, t1, t2, h2 } = cluster();
    await t2.start(h2);
    const reports = new ReportQueue(16);
    const d = new PeerDispatcher(2, t1.sender(2), reports, new ManualTimers());
    d.enqueue(snapMsg());
    await sched.drain();
    assert.deepEqual(reports.drain(), [{ kind: "snapshot-confirmed", peer: 2, index: META.index }]);
    assert.equal(h2.snapshots.length, 1);
    d.close();
  });
});

/** Byte layout of the test stream: 10 000 payload bytes in chunks of 4096, 4096 and 1808. */
function layout(payloadBytes: number) {
  const header = encodeHeaderFrame(META, CLUSTER, -1).length;
  let total = header;
  for (let left = payloadBytes; left > 0; left -= CHUNK)
    total += FRAME_PREFIX_BYTES + DATA_OVERHEAD_BYTES + Math.min(CHUNK, left);
  const trailerStart = total;
  total += FRAME_PREFIX_BYTES + TRAILER_BODY_BYTES;
  return { header, trailerStart, total };
}

function leftovers(fs: SimFileSystem): string[] {
  return fs.exists(SNAP_DIR) ? fs.readdir(SNAP_DIR).sort() : [];
}

describe("MemoryTransport snapshots", () => {
  it("round trip: spooled on the receiver, handler confirms, then the sender resolves", async () => {
    const { sched, network, fs2, t1, t2, payload } = cluster();
    let release: (() => void) | null = null;
    const taken: ReceivedSnapshot[] = [];
    await t2.start({
      onMessages: () => undefined,
      onSnapshot: (_from, m, received) => {
        assert.equal(m.type, MessageType.Snap);
        taken.push(received);
        return new Promise<void>((r) => {
          release = r;
        });
      },
    });
    const p = capture(t1.sender(2).sendSnapshot(snapMsg(), new AbortController().signal));
    await sched.drain();
    assert.equal(taken.length, 1);
    assert.equal(p.result(), null, "not confirmed before the loop took it");
    release!();
    await sched.drain();
    assert.deepEqual(p.result(), { ok: true, value: undefined });
    const got = taken[0]!;
    const name = got.path.slice(SNAP_DIR.length + 1);
    assert.deepEqual(parseSpoolName(name), { index: META.index, term: META.term, received: true });
    assert.deepEqual(got.metadata, META);
    assert.equal(got.payloadBytes, payload.length);
    assert.ok(fs2.exists(got.path));
    assert.deepEqual(fs2.readFile(got.path), payload);
    assert.deepEqual(leftovers(fs2), [name]);
    assert.equal(network.stats.snapshotBytes, layout(payload.length).total);
    assert.equal(network.stats.snapshotsConfirmed, 1);
  });

  it("a handler rejection fails the sender", async () => {
    const { sched, t1, t2 } = cluster();
    await t2.start({
      onMessages: () => undefined,
      onSnapshot: async () => {
        throw new Error("loop refused");
      },
    });
    const p = capture(t1.sender(2).sendSnapshot(snapMsg(), new AbortController().signal));
    await sched.drain();
    const r = p.result();
    assert.ok(r !== null && !r.ok && r.error instanceof Error && r.error.message === "loop refused");
  });

  const { header, trailerStart, total } = layout(10_000);
  const cuts: [string, number][] = [
    ["at 0", 0],
    ["inside the header prefix", 3],
    ["inside the header body", header - 1],
    ["at the first chunk", header],
    ["inside a chunk", header + FRAME_PREFIX_BYTES + DATA_OVERHEAD_BYTES + 100],
    ["inside the last chunk", trailerStart - 1],
    ["at the trailer", trailerStart],
    ["inside the trailer", total - 1],
  ];
  for (const [name, offset] of cuts) {
    it(`a stream cut ${name} (${offset}) rejects with SnapshotTruncatedError and leaves no file`, async () => {
      const { sched, network, fs2, t1, t2, h2 } = cluster();
      await t2.start(h2);
      network.cutSnapshotAt(1, 2, offset);
      const p = capture(t1.sender(2).sendSnapshot(snapMsg(), new AbortController().signal));
      await sched.drain();
      const r = p.result();
      assert.ok(r !== null && !r.ok, "the sender rejects");
      assert.ok(r.error instanceof SnapshotTruncatedError, String(r.error));
      assert.equal(r.error.streamBytes, offset);
      assert.equal(h2.snapshots.length, 0);
      assert.deepEqual(leftovers(fs2), []);
      assert.equal(network.stats.snapshotBytes, offset);
      assert.equal(network.stats.snapshotsFailed, 1);
      // The cut is one-shot: the retry arrives whole.
      const again = capture(t1.sender(2).sendSnapshot(snapMsg(), new AbortController().signal));
      await sched.drain();
      assert.deepEqual(again.result(), { ok: true, value: undefined });
      assert.equal(h2.snapshots.length, 1);
    });
  }

  for (const offset of [10, header + 20, trailerStart + 7]) {
    it(`a flipped byte at ${offset} rejects with SnapshotCorruptError`, async () => {
      const { sched, network, fs2, t1, t2, h2 } = cluster();
      await t2.start(h2);
      network.corruptSnapshotByte(1, 2, offset);
      const p = capture(t1.sender(2).sendSnapshot(snapMsg(), new AbortController().signal));
      await sched.drain();
      const r = p.result();
      assert.ok(r !== null && !r.ok && r.error instanceof SnapshotCorruptError, String(r?.ok || r?.error));
      assert.equal(h2.snapshots.length, 0);
      assert.deepEqual(leftovers(fs2), []);
    });
  }

  it("abort mid-stream rejects with the abort reason and stops streaming", async () => {
    const { sched, network, fs2, t1, t2, h2 } = cluster();
    await t2.start(h2);
    const ac = new AbortController();
    const p = capture(t1.sender(2).sendSnapshot(snapMsg(), ac.signal));
    for (let i = 0; i < 4; i++) assert.ok(await sched.step());
    const sent = network.stats.snapshotBytes;
    assert.ok(sent > 0 && sent < total, `mid-stream (${sent} of ${total})`);
    const reason = new Error("gave up");
    ac.abort(reason);
    await settle();
    assert.deepEqual(p.result(), { ok: false, error: reason });
    await sched.drain();
    assert.ok(network.stats.snapshotBytes <= sent + 1500, "streaming stopped");
    assert.equal(h2.snapshots.length, 0);
    assert.deepEqual(leftovers(fs2), []);
  });

  it("a blackholed snapshot waits until aborted; an unknown peer rejects", async () => {
    const { sched, network, t1, t2, h2 } = cluster();
    await t2.start(h2);
    network.drop(1, 2, (_b, kind) => kind === "snapshot", "blackhole");
    const ac = new AbortController();
    const p = capture(t1.sender(2).sendSnapshot(snapMsg(), ac.signal));
    await sched.drain();
    assert.equal(p.result(), null);
    const reason = new Error("timeout");
    ac.abort(reason);
    await settle();
    assert.deepEqual(p.result(), { ok: false, error: reason });
    await assert.rejects(
      t1.sender(5).sendSnapshot(snapMsg(), new AbortController().signal),
      PeerUnreachableError,
    );
  });
});

describe("MemoryTransport start", () => {
  it("sweeps spool files an earlier run left (cut receptions, snapshots never installed), and nothing else", async () => {
    const { fs2, t2, h2 } = cluster();
    fs2.mkdirp(SNAP_DIR);
    for (const name of ["incoming-5-1-3.tmp", "received-7-2-4.snap", "notes.txt"]) {
      const h = fs2.create(`${SNAP_DIR}/${name}`);
      await h.write(new Uint8Array([1, 2, 3]), 0);
      await h.datasync();
      await h.close();
    }
    await t2.start(h2);
    assert.deepEqual(leftovers(fs2), ["notes.txt"]);
    await t2.close();
  });
});
