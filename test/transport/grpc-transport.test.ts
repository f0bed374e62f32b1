/**
 * The gRPC transport on real loopback connections (127.0.0.1, port 0). Every wait is on a promise the
 * transport or a logger settles; nothing sleeps and nothing asserts a duration.
 */

import assert from "node:assert/strict";
import * as nodeFs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { after, before, describe, it } from "node:test";
import { toBinary } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import { SeededRandom } from "../../src/raft/rand.js";
import {
  EntryType,
  type Message,
  MessageType,
  message,
  type NodeId,
  type SnapshotMetadata,
} from "../../src/raft/types.js";
import { NodeFileSystem } from "../../src/storage/fs.js";
import {
  ClusterIdMismatchError,
  MalformedMessageError,
  MessageTooLargeError,
  PeerUnreachableError,
  SnapshotCorruptError,
  SnapshotIoError,
  SnapshotRejectedError,
  SnapshotTooLargeError,
  SnapshotTruncatedError,
  TransportClosedError,
  WrongNodeError,
} from "../../src/transport/errors.js";
import * as pb from "../../src/transport/gen/raftkv/transport/v1/transport_pb.js";
import { encodeBatch } from "../../src/transport/grpc-codec.js";
import { raftServiceDefinition, serializeEncoded } from "../../src/transport/grpc-service.js";
import { errorFromStatus } from "../../src/transport/grpc-status.js";
import {
  GrpcTransport,
  type GrpcTransportOptions,
  type SnapshotFaults,
} from "../../src/transport/grpc-transport.js";
import {
  DATA_OVERHEAD_BYTES,
  encodeHeaderFrame,
  FRAME_PREFIX_BYTES,
  parseSpoolName,
  TRAILER_BODY_BYTES,
} from "../../src/transport/snapshot-stream.js";
import type { InboundHandler, ReceivedSnapshot, SnapshotSource } from "../../src/transport/transport.js";
import { CapturingLogger } from "../helpers/capturing-logger.js";

const CLUSTER = "cluster-grpc";
const CHUNK = 4096;
const CONF = { voters: [1, 2, 3], learners: [], votersOutgoing: [], learnersNext: [], autoLeave: false };

// ---------------------------------------------------------------- helpers

class RecordingHandler implements InboundHandler {
  readonly batches: { from: NodeId; batch: readonly Message[] }[] = [];
  readonly snapshots: { from: NodeId; message: Message; received: ReceivedSnapshot; bytes: Uint8Array }[] =
    [];
  /** When set, onSnapshot waits for it: the test decides when raft "takes" the snapshot. */
  gate: Promise<void> | null = null;
  private arrived: ((s: ReceivedSnapshot) => void) | null = null;
  onMessages(from: NodeId, batch: readonly Message[]): void {
    this.batches.push({ from, batch });
  }
  async onSnapshot(from: NodeId, m: Message, received: ReceivedSnapshot): Promise<void> {
    // Read the file now: it is what raft would restore from.
    const bytes = nodeFs.readFileSync(received.path);
    this.snapshots.push({ from, message: m, received, bytes });
    this.arrived?.(received);
    if (this.gate !== null) await this.gate;
  }
  /** Resolves when the next snapshot reaches onSnapshot. */
  nextSnapshot(): Promise<ReceivedSnapshot> {
    return new Promise((resolve) => {
      this.arrived = resolve;
    });
  }
}

function payloadOf(seed: number, n: number): Uint8Array {
  const rng = new SeededRandom(seed);
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = rng.next32() & 0xff;
  return out;
}

/** Payloads by snapshot index, yielded in odd-sized slices so that the encoder must re-chunk them. */
class MapSource implements SnapshotSource {
  readonly payloads = new Map<number, Uint8Array>();
  /** Indexes whose stream stalls after its first slice until aborted. */
  readonly stall = new Set<number>();
  async *open(meta: SnapshotMetadata, signal: AbortSignal): AsyncIterable<Uint8Array> {
    const p = this.payloads.get(meta.index);
    if (p === undefined) throw new Error(`no payload for index ${meta.index}`);
    for (let i = 0; i < p.length; i += 3001) {
      yield p.subarray(i, i + 3001);
      if (this.stall.has(meta.index)) {
        await new Promise<void>((_, reject) => {
          if (signal.aborted) reject(signal.reason);
          signal.addEventListener("abort", () => reject(signal.reason), { once: true });
        });
      }
    }
  }
  async payloadBytes(meta: SnapshotMetadata): Promise<number> {
    return this.payloads.get(meta.index)?.length ?? -1;
  }
}

interface Node {
  id: NodeId;
  t: GrpcTransport;
  handler: RecordingHandler;
  logger: CapturingLogger;
  source: MapSource;
  dir: string;
}

const tmpRoot = nodeFs.mkdtempSync(path.join(os.tmpdir(), "raftkv-grpc-test-"));
const opened: Node[] = [];

async function startNode(
  id: NodeId,
  extra: Partial<GrpcTransportOptions> = {},
  peers: ReadonlyMap<NodeId, string> = new Map(),
): Promise<Node> {
  const logger = new CapturingLogger();
  const source = new MapSource();
  const dir = nodeFs.mkdtempSync(path.join(tmpRoot, `n${id}-`));
  const t = new GrpcTransport({
    id,
    clusterId: CLUSTER,
    listen: "127.0.0.1:0",
    peers,
    snapshotSource: source,
    fs: new NodeFileSystem(),
    snapshotDir: path.join(dir, "snap"),
    logger,
    chunkBytes: CHUNK,
    ...extra,
  });
  const handler = new RecordingHandler();
  await t.start(handler);
  const node = { id, t, handler, logger, source, dir };
  opened.push(node);
  return node;
}

/** Tells each node where the others are. */
function link(...nodes: Node[]): void {
  for (const a of nodes) for (const b of nodes) if (a !== b) a.t.setPeer(b.id, b.t.address);
}

function never(): AbortSignal {
  return new AbortController().signal;
}

function app(from: NodeId, to: NodeId, index: number, data: Uint8Array[]): Message {
  return message({
    type: MessageType.App,
    from,
    to,
    term: 3,
    logTerm: 3,
    index,
    commit: index,
    entries: data.map((d, k) => ({ term: 3, index: index + 1 + k, type: EntryType.Normal, data: d })),
  });
}

function snapMessage(from: NodeId, to: NodeId, index: number): Message {
  const metadata: SnapshotMetadata = { index, term: 2, confState: CONF };
  return message({
    type: MessageType.Snap,
    from,
    to,
    term: 2,
    snapshot: { metadata, data: new Uint8Array(0) },
  });
}

function snapFiles(node: Node): string[] {
  const dir = path.join(node.dir, "snap");
  return nodeFs.existsSync(dir) ? nodeFs.readdirSync(dir) : [];
}

/** Frame layout of a stream, to know what a receiver cut at a given offset must report. */
function streamLayout(meta: SnapshotMetadata, payloadBytes: number): { headerBytes: number; total: number } {
  const headerBytes = encodeHeaderFrame(meta, CLUSTER, payloadBytes).length;
  const chunks = Math.ceil(payloadBytes / CHUNK);
  const total =
    headerBytes +
    chunks * (FRAME_PREFIX_BYTES + DATA_OVERHEAD_BYTES) +
    payloadBytes +
    FRAME_PREFIX_BYTES +
    TRAILER_BODY_BYTES;
  return { headerBytes, total };
}

/** Payload bytes in the DATA frames wholly before `cut`. */
function payloadBefore(cut: number, headerBytes: number, payloadBytes: number): number {
  let off = headerBytes;
  let got = 0;
  while (got < payloadBytes) {
    const n = Math.min(CHUNK, payloadBytes - got);
    const end = off + FRAME_PREFIX_BYTES + DATA_OVERHEAD_BYTES + n;
    if (end > cut) break;
    got += n;
    off = end;
  }
  return got;
}

after(async () => {
  await Promise.all(opened.map((n) => n.t.close()));
  nodeFs.rmSync(tmpRoot, { recursive: true, force: true });
});

// ---------------------------------------------------------------- messages

describe("GrpcTransport messages", () => {
  let a: Node;
  let b: Node;
  let c: Node;
  before(async () => {
    a = await startNode(1);
    b = await startNode(2);
    c = await startNode(3);
    link(a, b, c);
  });

  it("delivers batches in order, each send resolving on its own ack, several outstanding", async () => {
    const sent: Message[][] = [];
    for (let i = 0; i < 30; i++) {
      const batch = [
        app(1, 2, 10 * i, [payloadOf(i, 100 + i), new Uint8Array(0)]),
        message({
          type: MessageType.Heartbeat,
          from: 1,
          to: 2,
          term: 3,
          commit: i,
          context: i % 2 ? new Uint8Array([i]) : null,
        }),
      ];
      sent.push(batch);
    }
    const before = b.handler.batches.length;
    await Promise.all(sent.map((batch) => a.t.sender(2).send(batch, never())));
    const got = b.handler.batches.slice(before);
    assert.equal(got.length, sent.length);
    for (let i = 0; i < sent.length; i++) {
      assert.equal(got[i]!.from, 1);
      assert.deepEqual(
        got[i]!.batch.map((m) => ({
          ...m,
          entries: m.entries.map((e) => ({ ...e, data: Array.from(e.data) })),
        })),
        sent[i]!.map((m) => ({ ...m, entries: m.entries.map((e) => ({ ...e, data: Array.from(e.data) })) })),
      );
    }
  });

  it("refuses a local message or a Snap before it goes out, leaving the stream alone", async () => {
    const ok = a.t
      .sender(2)
      .send([message({ type: MessageType.Heartbeat, from: 1, to: 2, term: 3 })], never());
    await assert.rejects(
      a.t.sender(2).send([message({ type: MessageType.Hup, from: 1, to: 2 })], never()),
      (err: unknown) => err instanceof MalformedMessageError && err.path === "messages[0].type",
    );
    await assert.rejects(a.t.sender(2).send([snapMessage(1, 2, 5)], never()), MalformedMessageError);
    await assert.rejects(
      a.t.sender(2).send([message({ type: MessageType.Heartbeat, from: 1, to: 3, term: 3 })], never()),
      (err: unknown) => err instanceof MalformedMessageError && err.path === "messages[0].to",
    );
    await ok;
  });

  it("rejects with the signal's reason when the send is aborted", async () => {
    const ac = new AbortController();
    const reason = new Error("send timed out (test)");
    const p = a.t
      .sender(2)
      .send([message({ type: MessageType.Heartbeat, from: 1, to: 2, term: 3 })], ac.signal);
    ac.abort(reason);
    await assert.rejects(p, (err: unknown) => err === reason);
    // The stream is still good.
    await a.t.sender(2).send([message({ type: MessageType.Heartbeat, from: 1, to: 2, term: 3 })], never());
  });

  it("rejects with PeerUnreachableError for a peer that is down or has no address", async () => {
    const gone = await startNode(9);
    const address = gone.t.address;
    await gone.t.close();
    a.t.setPeer(9, address);
    await assert.rejects(
      a.t.sender(9).send([message({ type: MessageType.Heartbeat, from: 1, to: 9, term: 3 })], never()),
      PeerUnreachableError,
    );
    await assert.rejects(a.t.sender(9).sendSnapshot(snapMessage(1, 9, 7), never()), PeerUnreachableError);
    await assert.rejects(
      a.t.sender(42).send([message({ type: MessageType.Heartbeat, from: 1, to: 42, term: 3 })], never()),
      PeerUnreachableError,
    );
  });

  it("reconnects after the peer restarts on the same address", async () => {
    const d = await startNode(4);
    const address = d.t.address;
    a.t.setPeer(4, address);
    const hb = () => [message({ type: MessageType.Heartbeat, from: 1, to: 4, term: 3 })];
    await a.t.sender(4).send(hb(), never());
    assert.equal(d.handler.batches.length, 1);
    await d.t.close();
    await assert.rejects(a.t.sender(4).send(hb(), never()), PeerUnreachableError);
    const d2 = await startNode(4, { listen: address });
    assert.equal(d2.t.address, address);
    await a.t.waitForPeer(4, 10_000);
    await a.t.sender(4).send(hb(), never());
    assert.equal(d2.handler.batches.length, 1);
  });

  it("refuses a batch from another cluster, naming both cluster ids", async () => {
    const other = await startNode(1, { clusterId: "another-cluster" });
    other.t.setPeer(2, b.t.address);
    const before = b.handler.batches.length;
    await assert.rejects(
      other.t.sender(2).send([message({ type: MessageType.Heartbeat, from: 1, to: 2, term: 3 })], never()),
      (err: unknown) =>
        err instanceof ClusterIdMismatchError &&
        err.expected === CLUSTER &&
        err.received === "another-cluster" &&
        err.message.includes(CLUSTER) &&
        err.message.includes("another-cluster"),
    );
    assert.equal(b.handler.batches.length, before);
    await other.t.close();
  });

  it("refuses a batch for another node with WrongNodeError", async () => {
    a.t.setPeer(5, b.t.address); // wrong: that is node 2's address
    await assert.rejects(
      a.t.sender(5).send([message({ type: MessageType.Heartbeat, from: 1, to: 5, term: 3 })], never()),
      (err: unknown) => err instanceof WrongNodeError && err.addressed === 5 && err.actual === 2,
    );
    await assert.rejects(
      a.t.sender(5).sendSnapshot(snapMessage(1, 5, 8), never()),
      (err: unknown) => err instanceof WrongNodeError && err.addressed === 5 && err.actual === 2,
    );
  });

  it("answers malformed input with INVALID_ARGUMENT and keeps serving everyone else", async () => {
    const client = new grpc.Client(b.t.address, grpc.credentials.createInsecure());
    try {
      /** Opens a raw Messages stream, writes `bytes`, and resolves with the status it ends with. */
      const raw = (bytes: Uint8Array) =>
        new Promise<grpc.ServiceError>((resolve, reject) => {
          const call = client.makeBidiStreamRequest(
            raftServiceDefinition.messages.path,
            serializeEncoded,
            raftServiceDefinition.messages.responseDeserialize,
          );
          call.on("data", () => reject(new Error("a malformed batch was acknowledged")));
          call.on("error", resolve);
          call.write(bytes);
        });
      const good = encodeBatch({ clusterId: CLUSTER, from: 3, to: 2, seq: 1 }, [
        message({ type: MessageType.Heartbeat, from: 3, to: 2, term: 3 }),
      ]);
      // An unknown message type.
      good.messages[0]!.type = 99 as pb.MessageType;
      const unknownType = await raw(toBinary(pb.MessageBatchSchema, good));
      assert.equal(unknownType.code, grpc.status.INVALID_ARGUMENT);
      const e1 = errorFromStatus(2, unknownType);
      assert.ok(e1 instanceof MalformedMessageError && e1.path === "messages[0].type", String(e1));
      // An index past 2^53 - 1.
      good.messages[0]!.type = pb.MessageType.HEARTBEAT;
      good.messages[0]!.commit = 1n << 60n;
      const tooBig = errorFromStatus(2, await raw(toBinary(pb.MessageBatchSchema, good)));
      assert.ok(
        tooBig instanceof MalformedMessageError && tooBig.path === "messages[0].commit",
        String(tooBig),
      );
      // Bytes that are not a MessageBatch at all.
      const garbage = await raw(new Uint8Array([0xff, 0xff, 0xff, 0xff, 0x0f, 0x01]));
      assert.equal(garbage.code, grpc.status.INVALID_ARGUMENT);
      assert.ok(errorFromStatus(2, garbage) instanceof MalformedMessageError);
    } finally {
      client.close();
    }
    // Node 2 still serves other peers, and this one.
    await c.t.sender(2).send([message({ type: MessageType.Heartbeat, from: 3, to: 2, term: 3 })], never());
    await a.t.sender(2).send([message({ type: MessageType.Heartbeat, from: 1, to: 2, term: 3 })], never());
    assert.ok(b.logger.find("refused a message batch; stream closed"));
  });

  it("refuses an oversized batch with MessageTooLargeError on either side, harming nothing else", async () => {
    const small = await startNode(6, { maxMessageBytes: 64 * 1024 });
    link(a, small);
    link(c, small);
    const big = (to: NodeId) => [app(1, to, 1, [new Uint8Array(100 * 1024)])];
    // The receiver's limit: grpc-js refuses the message, the stream ends, the error says which side.
    await assert.rejects(
      a.t.sender(6).send(big(6), never()),
      (err: unknown) => err instanceof MessageTooLargeError && err.side === "receiver",
    );
    await c.t.sender(6).send([message({ type: MessageType.Heartbeat, from: 3, to: 6, term: 3 })], never());
    await a.t.sender(6).send([message({ type: MessageType.Heartbeat, from: 1, to: 6, term: 3 })], never());
    // The sender's limit: refused before it is written; a batch already outstanding is unaffected.
    const ok = small.t
      .sender(1)
      .send([message({ type: MessageType.Heartbeat, from: 6, to: 1, term: 3 })], never());
    await assert.rejects(
      small.t.sender(1).send([app(6, 1, 1, [new Uint8Array(100 * 1024)])], never()),
      (err: unknown) =>
        err instanceof MessageTooLargeError &&
        err.side === "sender" &&
        err.limit === 64 * 1024 &&
        err.bytes > err.limit,
    );
    await ok;
  });
});

// ---------------------------------------------------------------- snapshots

describe("GrpcTransport snapshots", () => {
  let a: Node;
  let b: Node;
  let cuts: Map<NodeId, SnapshotFaults>;
  before(async () => {
    cuts = new Map();
    a = await startNode(1, {
      snapshotFaults: (peer) => {
        const f = cuts.get(peer) ?? null;
        cuts.delete(peer);
        return f;
      },
    });
    b = await startNode(2);
    link(a, b);
  });

  for (const [name, size] of [
    ["empty", 0],
    ["exactly one chunk", CHUNK],
    ["an exact multiple of the chunk size", 3 * CHUNK],
    ["one byte over a multiple of the chunk size", 3 * CHUNK + 1],
  ] as const) {
    it(`delivers a ${name} payload intact, confirmed only after raft took it`, async () => {
      const index = 100 + size;
      const payload = payloadOf(size, size);
      a.source.payloads.set(index, payload);
      let release!: () => void;
      b.handler.gate = new Promise<void>((r) => {
        release = r;
      });
      const arrived = b.handler.nextSnapshot();
      let confirmed = false;
      const sending = a.t
        .sender(2)
        .sendSnapshot(snapMessage(1, 2, index), never())
        .then(() => {
          confirmed = true;
        });
      const received = await arrived;
      // Raft has not taken it yet, so the sender cannot have been told.
      assert.equal(confirmed, false);
      release();
      await sending;
      b.handler.gate = null;
      const got = b.handler.snapshots.at(-1)!;
      assert.equal(got.from, 1);
      assert.deepEqual(got.message.snapshot?.metadata, { index, term: 2, confState: CONF });
      assert.equal(received.payloadBytes, size);
      assert.deepEqual(parseSpoolName(path.basename(received.path)), { index, term: 2, received: true });
      assert.deepEqual(got.bytes, Buffer.from(payload));
      assert.deepEqual(
        snapFiles(b).filter((f) => f.endsWith(".tmp")),
        [],
      );
      // Both ends logged index, peer and payload bytes.
      const sent = a.logger.find("snapshot sent and confirmed by the peer", (f) => f.index === index);
      assert.ok(sent);
      assert.equal(sent.fields.peer, 2);
      assert.equal(sent.fields.payload_bytes, size);
      const recv = b.logger.find("snapshot received", (f) => f.index === index);
      assert.ok(recv);
      assert.equal(recv.fields.peer, 1);
      assert.equal(recv.fields.payload_bytes, size);
    });
  }

  it("a stream cut at seeded random offsets fails on both ends with SnapshotTruncatedError and exact counts", async () => {
    const rng = new SeededRandom(20240611);
    const size = 5 * CHUNK + 123;
    const index = 500;
    const meta: SnapshotMetadata = { index, term: 2, confState: CONF };
    const { headerBytes, total } = streamLayout(meta, size);
    a.source.payloads.set(index, payloadOf(7, size));
    const offsets = [
      0,
      headerBytes - 1,
      headerBytes + 3,
      ...Array.from({ length: 5 }, () => rng.intn(total)),
    ];
    for (const cutAt of offsets) {
      const before = b.logger.lines.length;
      cuts.set(2, { cutAt, corruptAt: -1 });
      const want = payloadBefore(cutAt, headerBytes, size);
      const wantExpected = cutAt < headerBytes ? -1 : size;
      await assert.rejects(
        a.t.sender(2).sendSnapshot(snapMessage(1, 2, index), never()),
        (err: unknown) =>
          err instanceof SnapshotTruncatedError &&
          err.receivedBytes === want &&
          err.expectedBytes === wantExpected &&
          err.streamBytes === cutAt,
        `cut at ${cutAt}`,
      );
      const line = b.logger.lines.slice(before).find((l) => l.msg === "snapshot receive failed");
      assert.ok(line, `the receiver logged the failure of the stream cut at ${cutAt}`);
      assert.equal(line.fields.kind, "truncated");
      assert.equal(line.fields.payload_bytes, want);
      assert.equal(line.fields.peer, 1);
      assert.equal(line.fields.index, index);
      const sendLine = a.logger.find(
        "snapshot send failed",
        (f) => f.index === index && f.stream_bytes === cutAt,
      );
      assert.ok(sendLine, `the sender logged the failure of the stream cut at ${cutAt}`);
      assert.equal(sendLine.fields.peer, 2);
      assert.equal(sendLine.fields.kind, "truncated");
      assert.equal(typeof sendLine.fields.payload_bytes, "number");
      assert.deepEqual(
        snapFiles(b).filter((f) => f.includes(`-${index}-`)),
        [],
        "neither a temp file nor a final file is left",
      );
    }
  });

  it("a flipped byte fails with SnapshotCorruptError on both ends", async () => {
    const index = 600;
    const size = 2 * CHUNK;
    const meta: SnapshotMetadata = { index, term: 2, confState: CONF };
    const { headerBytes } = streamLayout(meta, size);
    a.source.payloads.set(index, payloadOf(8, size));
    // A byte inside the first chunk's payload.
    cuts.set(2, { cutAt: -1, corruptAt: headerBytes + FRAME_PREFIX_BYTES + DATA_OVERHEAD_BYTES + 17 });
    await assert.rejects(a.t.sender(2).sendSnapshot(snapMessage(1, 2, index), never()), SnapshotCorruptError);
    const line = await b.logger.waitFor("snapshot receive failed", (f) => f.index === index);
    assert.equal(line.fields.kind, "corrupt");
    assert.equal(line.fields.peer, 1);
    assert.ok(a.logger.find("snapshot send failed", (f) => f.index === index && f.kind === "corrupt"));
    assert.deepEqual(
      snapFiles(b).filter((f) => f.includes(`-${index}-`)),
      [],
    );
  });

  it("refuses a snapshot from another cluster with ClusterIdMismatchError", async () => {
    const other = await startNode(1, { clusterId: "another-cluster" });
    other.t.setPeer(2, b.t.address);
    other.source.payloads.set(700, payloadOf(9, 100));
    await assert.rejects(
      other.t.sender(2).sendSnapshot(snapMessage(1, 2, 700), never()),
      (err: unknown) =>
        err instanceof ClusterIdMismatchError &&
        err.expected === CLUSTER &&
        err.received === "another-cluster",
    );
    const line = await b.logger.waitFor("snapshot receive failed", (f) => f.kind === "cluster-mismatch");
    assert.equal(line.fields.peer, 1);
    assert.equal(line.fields.index, 700);
    assert.deepEqual(
      snapFiles(b).filter((f) => f.includes("-700-")),
      [],
    );
    await other.t.close();
  });

  it("reports the receiver's limit, its disk and its raft refusing as their own typed errors", async () => {
    // Over the receiver's maxSnapshotBytes: refused from the header's announced size.
    const tight = await startNode(31, { maxSnapshotBytes: 1000 });
    link(a, tight);
    a.source.payloads.set(1000, payloadOf(12, 5000));
    await assert.rejects(
      a.t.sender(31).sendSnapshot(snapMessage(1, 31, 1000), never()),
      (err: unknown) => err instanceof SnapshotTooLargeError && err.limit === 1000 && err.bytes === 5000,
    );
    // The receiver's snapshot directory cannot be created: an I/O error, with the file system's code.
    const blocker = path.join(tmpRoot, "not-a-directory");
    nodeFs.writeFileSync(blocker, "x");
    const broken = await startNode(32, { snapshotDir: path.join(blocker, "snap") });
    link(a, broken);
    a.source.payloads.set(1001, payloadOf(13, 100));
    await assert.rejects(
      a.t.sender(32).sendSnapshot(snapMessage(1, 32, 1001), never()),
      (err: unknown) => err instanceof SnapshotIoError && err.code === "ENOTDIR",
    );
    // Spooled, but raft does not take it.
    b.handler.gate = Promise.reject(new Error("engine is stopping"));
    b.handler.gate.catch(() => undefined);
    a.source.payloads.set(1002, payloadOf(14, 100));
    await assert.rejects(
      a.t.sender(2).sendSnapshot(snapMessage(1, 2, 1002), never()),
      (err: unknown) => err instanceof SnapshotRejectedError && err.reason === "engine is stopping",
    );
    b.handler.gate = null;
    const line = b.logger.find("snapshot receive failed", (f) => f.index === 1002);
    assert.ok(line);
    assert.equal(line.fields.peer, 1);
    assert.equal(line.fields.payload_bytes, 100);
  });

  it("a newer transfer supersedes one still being received", async () => {
    a.source.payloads.set(1100, payloadOf(15, 3 * CHUNK));
    a.source.stall.add(1100);
    a.source.payloads.set(1101, payloadOf(16, 3 * CHUNK));
    const older = assert.rejects(
      a.t.sender(2).sendSnapshot(snapMessage(1, 2, 1100), never()),
      SnapshotTruncatedError,
    );
    await b.logger.waitFor("snapshot transfer started", (f) => f.index === 1100);
    await a.t.sender(2).sendSnapshot(snapMessage(1, 2, 1101), never());
    await older;
    assert.deepEqual(
      Buffer.from(b.handler.snapshots.at(-1)!.bytes),
      Buffer.from(a.source.payloads.get(1101)!),
    );
    assert.deepEqual(
      snapFiles(b).filter((f) => f.includes("-1100-")),
      [],
    );
  });

  it("a cancelled call fails on both ends, each logging index, peer and bytes", async () => {
    const index = 800;
    a.source.payloads.set(index, payloadOf(10, 4 * CHUNK));
    a.source.stall.add(index);
    const ac = new AbortController();
    const reason = new Error("snapshot timed out (test)");
    const sending = a.t.sender(2).sendSnapshot(snapMessage(1, 2, index), ac.signal);
    await b.logger.waitFor("snapshot transfer started", (f) => f.index === index);
    ac.abort(reason);
    await assert.rejects(sending, (err: unknown) => err === reason);
    const sendLine = await a.logger.waitFor("snapshot send failed", (f) => f.index === index);
    assert.equal(sendLine.fields.peer, 2);
    assert.equal(typeof sendLine.fields.payload_bytes, "number");
    assert.equal(typeof sendLine.fields.stream_bytes, "number");
    const recvLine = await b.logger.waitFor("snapshot receive failed", (f) => f.index === index);
    assert.equal(recvLine.fields.peer, 1);
    assert.equal(recvLine.fields.kind, "truncated");
    assert.equal(typeof recvLine.fields.payload_bytes, "number");
    assert.deepEqual(
      snapFiles(b).filter((f) => f.includes(`-${index}-`)),
      [],
    );
  });
});

// ---------------------------------------------------------------- close

describe("GrpcTransport close", () => {
  it("rejects outstanding sends with TransportClosedError, is idempotent, and leaves no open handles", async () => {
    const tcp = () =>
      process.getActiveResourcesInfo().filter((r) => r === "TCPSocketWrap" || r === "TCPServerWrap").length;
    const baseline = tcp();
    const x = await startNode(11);
    const y = await startNode(12);
    link(x, y);
    await x.t.sender(12).send([message({ type: MessageType.Heartbeat, from: 11, to: 12, term: 1 })], never());
    // Written but not yet acknowledged when close() runs (the ack needs another event-loop turn).
    const outstanding = x.t
      .sender(12)
      .send([message({ type: MessageType.Heartbeat, from: 11, to: 12, term: 1 })], never());
    const closing = x.t.close();
    await assert.rejects(outstanding, TransportClosedError);
    await closing;
    await x.t.close();
    await assert.rejects(
      x.t.sender(12).send([message({ type: MessageType.Heartbeat, from: 11, to: 12, term: 1 })], never()),
      TransportClosedError,
    );
    await assert.rejects(x.t.sender(12).sendSnapshot(snapMessage(11, 12, 5), never()), TransportClosedError);
    // The peer that was closed under a stream stays up, and closes in turn.
    await y.t.close();
    // Sockets finish closing a few I/O turns after close() resolves: wait for them, boundedly.
    for (let i = 0; i < 10_000 && tcp() > baseline; i++) await new Promise((r) => setImmediate(r));
    assert.ok(tcp() <= baseline, `open TCP handles: ${process.getActiveResourcesInfo().join(", ")}`);
  });

  it("start removes the spool files an earlier run left behind", async () => {
    const dir = nodeFs.mkdtempSync(path.join(tmpRoot, "leftovers-"));
    nodeFs.writeFileSync(path.join(dir, "incoming-5-1-2.tmp"), "cut short by a crash");
    nodeFs.writeFileSync(path.join(dir, "received-4-1-3.snap"), "never installed");
    nodeFs.writeFileSync(path.join(dir, "unrelated.txt"), "kept");
    const n = await startNode(41, { snapshotDir: dir });
    assert.deepEqual(nodeFs.readdirSync(dir), ["unrelated.txt"]);
    await n.t.close();
  });

  it("closing the receiver mid-transfer fails the sender with PeerUnreachableError and cleans up", async () => {
    const s = await startNode(21);
    const r = await startNode(22);
    link(s, r);
    const index = 900;
    s.source.payloads.set(index, payloadOf(11, 4 * CHUNK));
    s.source.stall.add(index);
    const sending = assert.rejects(
      s.t.sender(22).sendSnapshot(snapMessage(21, 22, index), never()),
      PeerUnreachableError,
    );
    await r.logger.waitFor("snapshot transfer started", (f) => f.index === index);
    await r.t.close();
    await sending;
    const recvLine = r.logger.find("snapshot receive failed", (f) => f.index === index);
    assert.ok(recvLine, "the receiver logged the failure before close() resolved");
    assert.equal(recvLine.fields.peer, 21);
    assert.ok(s.logger.find("snapshot send failed", (f) => f.index === index && f.peer === 22));
    assert.deepEqual(snapFiles(r), []);
    await s.t.close();
  });
});
