/**
 * The in-memory transport: every node of a test or simulated cluster registers on one
 * {@link MemoryNetwork} and talks to the others through it, with the same contract as the gRPC transport.
 *
 * - Batches are copied (message objects and their entries arrays; entry data and contexts are shared,
 *   being immutable by convention) and delivered on a later macrotask through the injected scheduler,
 *   so delivery is never re-entrant. With a FIFO scheduler a link delivers in order. A send resolves
 *   once its batch was handed to the receiver's handler.
 * - A snapshot is framed with {@link encodeSnapshotStream} from the sender's {@link SnapshotSource},
 *   carried in slices (one scheduler turn per slice) and spooled by the receiver with
 *   {@link spoolSnapshot} into its own file system; the receiver then calls `onSnapshot`, and the
 *   sender resolves only after that resolves. Any failure rejects the sender with the typed error.
 * - Faults are deterministic: drop rules (rejecting, or a blackhole that holds the send until it is
 *   aborted), partitions, a snapshot stream cut at a byte offset, a flipped snapshot byte.
 */
import type { RaftLogger } from "../raft/config.js";
import type { RandomSource } from "../raft/rand.js";
import type { Message, NodeId } from "../raft/types.js";
import type { FileSystem } from "../storage/fs.js";
import { MessageDroppedError, PeerUnreachableError, TransportClosedError, TransportError } from "./errors.js";
import {
  DATA_OVERHEAD_BYTES,
  encodeSnapshotStream,
  FRAME_DATA,
  FRAME_PREFIX_BYTES,
  SnapshotStats,
  spoolSnapshot,
  sweepSpoolDir,
} from "./snapshot-stream.js";
import type { InboundHandler, PeerSender, SnapshotSource, Transport } from "./transport.js";

/** Runs `fn` on a later macrotask. */
export type Scheduler = (fn: () => void) => void;

export const defaultScheduler: Scheduler = (fn) => {
  setImmediate(fn);
};

/** "error": the send rejects with {@link MessageDroppedError}; "blackhole": it never settles until aborted. */
export type DropMode = "error" | "blackhole";

/** What a drop rule sees: a message batch, or a one-message batch for a snapshot. */
export type DropPredicate = (batch: readonly Message[], kind: "messages" | "snapshot") => boolean;

export interface LinkStats {
  deliveredBatches: number;
  deliveredMessages: number;
  droppedBatches: number;
  /** Snapshot stream bytes (framing included) handed to the receiver. */
  snapshotBytes: number;
  snapshotsConfirmed: number;
  snapshotsFailed: number;
}

function emptyStats(): LinkStats {
  return {
    deliveredBatches: 0,
    deliveredMessages: 0,
    droppedBatches: 0,
    snapshotBytes: 0,
    snapshotsConfirmed: 0,
    snapshotsFailed: 0,
  };
}

interface DropRule {
  readonly from: NodeId;
  readonly to: NodeId;
  readonly predicate: DropPredicate | undefined;
  readonly mode: DropMode;
}

interface Partition {
  readonly a: ReadonlySet<NodeId>;
  readonly b: ReadonlySet<NodeId>;
  readonly mode: DropMode;
}

/** A registered node, as the network and the other transports see it. */
interface Endpoint {
  readonly id: NodeId;
  /** Started and not closed. */
  open(): boolean;
  deliver(from: NodeId, batch: readonly Message[]): void;
  acceptSnapshot(from: NodeId, message: Message, stream: AsyncIterable<Uint8Array>): Promise<void>;
}

type Verdict = { kind: "pass" } | { kind: "drop"; mode: DropMode } | { kind: "unreachable"; reason: string };

const linkKey = (from: NodeId, to: NodeId): string => `${from}->${to}`;

/** A timer source for link delays (the engine's injected timers fit; default: the real clock). */
export interface DelayTimers {
  setTimeout(fn: () => void, ms: number): unknown;
}

/** A lossy link, for the simulator: each batch is lost, delayed by a random jitter, or duplicated. */
export interface LinkChaos {
  /** Probability in [0, 1] that a batch is silently lost. */
  readonly lossRate: number;
  /** Probability in [0, 1] that a delivered batch is delivered a second time. */
  readonly duplicateRate: number;
  /** Each delivery is delayed by a uniform random 0..maxJitterMs, so batches may arrive out of order. */
  readonly maxJitterMs: number;
}

export interface MemoryNetworkOptions {
  /** Default {@link defaultScheduler} (setImmediate); tests pass one they drain by hand. */
  schedule?: Scheduler;
  /** Decides what a lossy link ({@link MemoryNetwork.setChaos}) does; needed only with chaos. */
  random?: RandomSource;
  /** Times link delays; tests pass virtual timers. Default: the real clock. */
  timers?: DelayTimers;
}

/** The shared medium of a set of {@link MemoryTransport}s, with deterministic fault injection. */
export class MemoryNetwork {
  readonly schedule: Scheduler;
  private readonly timers: DelayTimers;
  private readonly delays = new Map<string, number>();
  private readonly chaos = new Map<string, LinkChaos>();
  private readonly random: RandomSource | null;
  /** Totals over every link. */
  readonly stats: LinkStats = emptyStats();
  private readonly endpoints = new Map<NodeId, Endpoint>();
  private readonly links = new Map<string, LinkStats>();
  private rules: DropRule[] = [];
  private partitions: Partition[] = [];
  private readonly cuts = new Map<string, number>();
  private readonly corruptions = new Map<string, number>();
  private readonly observers: Array<(from: NodeId, to: NodeId, batch: readonly Message[]) => void> = [];

  constructor(options: MemoryNetworkOptions = {}) {
    this.schedule = options.schedule ?? defaultScheduler;
    this.timers = options.timers ?? { setTimeout: (fn, ms) => setTimeout(fn, ms) };
    this.random = options.random ?? null;
  }

  /** Makes the link from `from` to `to` lossy (or reliable again with null). Needs `random`. */
  setChaos(from: NodeId, to: NodeId, chaos: LinkChaos | null): void {
    if (chaos === null) {
      this.chaos.delete(linkKey(from, to));
      return;
    }
    if (this.random === null) throw new RangeError("a MemoryNetwork needs a random source for lossy links");
    for (const [name, rate] of [
      ["lossRate", chaos.lossRate],
      ["duplicateRate", chaos.duplicateRate],
    ] as const) {
      if (!(rate >= 0 && rate <= 1)) throw new RangeError(`${name} must be in [0, 1], got ${rate}`);
    }
    if (!Number.isSafeInteger(chaos.maxJitterMs) || chaos.maxJitterMs < 0)
      throw new RangeError(`maxJitterMs must be a whole number >= 0, got ${chaos.maxJitterMs}`);
    this.chaos.set(linkKey(from, to), chaos);
  }

  /** What a lossy link does with the next batch: how many copies arrive, after which delays. */
  chaosFor(from: NodeId, to: NodeId): { copies: number; delaysMs: number[] } | null {
    const c = this.chaos.get(linkKey(from, to));
    if (c === undefined || this.random === null) return null;
    const r = this.random;
    const chance = (p: number) => p > 0 && r.intn(1_000_000) < p * 1_000_000;
    const jitter = () => (c.maxJitterMs > 0 ? r.intn(c.maxJitterMs + 1) : 0);
    if (chance(c.lossRate)) return { copies: 0, delaysMs: [] };
    const delaysMs = [jitter()];
    if (chance(c.duplicateRate)) delaysMs.push(jitter());
    return { copies: delaysMs.length, delaysMs };
  }

  /** Runs `fn` on a later task, `ms` from now on the network's timers (0: the next task). */
  afterDelay(ms: number, fn: () => void): void {
    if (ms === 0) this.schedule(fn);
    else this.timers.setTimeout(() => this.schedule(fn), ms);
  }

  /**
   * Delays every batch from `from` to `to`, and the start of every snapshot stream, by `ms` (on the
   * network's timers), until set back to 0. Batches on one link keep their order.
   */
  delay(from: NodeId, to: NodeId, ms: number): void {
    if (!Number.isSafeInteger(ms) || ms < 0)
      throw new RangeError(`delay must be a whole number of ms >= 0, got ${ms}`);
    if (ms === 0) this.delays.delete(linkKey(from, to));
    else this.delays.set(linkKey(from, to), ms);
  }

  /** Runs `fn` on a later task, after the link's delay if it has one. */
  scheduleOn(from: NodeId, to: NodeId, fn: () => void): void {
    const ms = this.delays.get(linkKey(from, to));
    if (ms === undefined) this.schedule(fn);
    else this.timers.setTimeout(() => this.schedule(fn), ms);
  }

  /** Counters of one directed link. */
  linkStats(from: NodeId, to: NodeId): LinkStats {
    return { ...(this.links.get(linkKey(from, to)) ?? emptyStats()) };
  }

  /**
   * Drops traffic from `from` to `to` (batches and snapshots) for which `predicate` holds (all when
   * absent), until {@link heal}. Rules are checked in the order they were added.
   */
  drop(from: NodeId, to: NodeId, predicate?: DropPredicate, mode: DropMode = "error"): void {
    this.rules.push({ from, to, predicate, mode });
  }

  /**
   * Calls `fn` with everything a node sends (before any fault decides its fate): for invariant checkers
   * that watch the protocol itself. Observers stay across {@link heal}.
   */
  observe(fn: (from: NodeId, to: NodeId, batch: readonly Message[]) => void): void {
    this.observers.push(fn);
  }

  /** Cuts every link between a node of `a` and a node of `b`, both ways, until {@link heal}. */
  partition(a: readonly NodeId[], b: readonly NodeId[], mode: DropMode = "error"): void {
    this.partitions.push({ a: new Set(a), b: new Set(b), mode });
  }

  /** Removes every drop rule, partition and lossy link (pending snapshot faults and delays stay). */
  heal(): void {
    this.rules = [];
    this.partitions = [];
    this.chaos.clear();
  }

  /**
   * The next snapshot stream from `from` to `to` ends after `byteOffset` stream bytes, as if the
   * connection broke: the receiver fails with SnapshotTruncatedError. One-shot.
   */
  cutSnapshotAt(from: NodeId, to: NodeId, byteOffset: number): void {
    checkOffset(byteOffset);
    this.cuts.set(linkKey(from, to), byteOffset);
  }

  /** The next snapshot stream from `from` to `to` has the stream byte at `offset` flipped. One-shot. */
  corruptSnapshotByte(from: NodeId, to: NodeId, offset: number): void {
    checkOffset(offset);
    this.corruptions.set(linkKey(from, to), offset);
  }

  /** @internal Registers a node; its id must be free. */
  attach(endpoint: Endpoint): void {
    if (this.endpoints.has(endpoint.id))
      throw new RangeError(`node ${endpoint.id} is already registered on this memory network`);
    this.endpoints.set(endpoint.id, endpoint);
  }

  /** @internal */
  detach(endpoint: Endpoint): void {
    if (this.endpoints.get(endpoint.id) === endpoint) this.endpoints.delete(endpoint.id);
  }

  /** @internal The open endpoint of `to`, or why there is none. */
  lookup(to: NodeId): Endpoint | string {
    const e = this.endpoints.get(to);
    if (e === undefined) return "no such node on the network";
    if (!e.open()) return "not started or closed";
    return e;
  }

  /** @internal Applies partitions and drop rules; counts a drop. */
  judge(from: NodeId, to: NodeId, batch: readonly Message[], kind: "messages" | "snapshot"): Verdict {
    for (const fn of this.observers) fn(from, to, batch);
    for (const p of this.partitions) {
      if ((p.a.has(from) && p.b.has(to)) || (p.b.has(from) && p.a.has(to))) {
        if (p.mode === "error") return { kind: "unreachable", reason: "partitioned (fault injection)" };
        this.count(from, to, (s) => s.droppedBatches++);
        return { kind: "drop", mode: "blackhole" };
      }
    }
    for (const r of this.rules) {
      if (r.from === from && r.to === to && (r.predicate === undefined || r.predicate(batch, kind))) {
        this.count(from, to, (s) => s.droppedBatches++);
        return { kind: "drop", mode: r.mode };
      }
    }
    return { kind: "pass" };
  }

  /** @internal Takes the one-shot snapshot faults armed for a link. */
  takeSnapshotFaults(from: NodeId, to: NodeId): { cutAt: number; corruptAt: number } {
    const key = linkKey(from, to);
    const cutAt = this.cuts.get(key) ?? -1;
    const corruptAt = this.corruptions.get(key) ?? -1;
    this.cuts.delete(key);
    this.corruptions.delete(key);
    return { cutAt, corruptAt };
  }

  /** @internal */
  count(from: NodeId, to: NodeId, f: (s: LinkStats) => void): void {
    const key = linkKey(from, to);
    let link = this.links.get(key);
    if (link === undefined) {
      link = emptyStats();
      this.links.set(key, link);
    }
    f(link);
    f(this.stats);
  }
}

function checkOffset(n: number): void {
  if (!Number.isSafeInteger(n) || n < 0)
    throw new RangeError(`byte offset must be a non-negative integer, got ${n}`);
}

export interface MemoryTransportOptions {
  id: NodeId;
  network: MemoryNetwork;
  clusterId: string;
  /** Where outbound snapshot payloads come from. */
  snapshotSource: SnapshotSource;
  /** The file system inbound snapshots are spooled to, and the directory within it. */
  fs: FileSystem;
  snapshotDir: string;
  /** Payload bytes per DATA frame. Default 64 KiB. */
  chunkBytes?: number;
  /** Stream bytes carried per scheduler turn. Default 64 KiB. */
  sliceBytes?: number;
  maxSnapshotBytes?: number;
  maxChunkBytes?: number;
  logger?: RaftLogger;
}

/** Copies a message object and its entries array; payload bytes are shared. */
export function copyMessage(m: Message): Message {
  return {
    ...m,
    entries: m.entries.slice(),
    snapshot: m.snapshot === null ? null : { metadata: m.snapshot.metadata, data: m.snapshot.data },
  };
}

/** Rejects with the signal's reason when it aborts; never outlives `p`. */
function abortable<T>(p: Promise<T>, signal: AbortSignal): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    if (signal.aborted) {
      reject(signal.reason);
      p.catch(() => undefined);
      return;
    }
    const onAbort = () => reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    p.then(
      (v) => {
        signal.removeEventListener("abort", onAbort);
        resolve(v);
      },
      (err: unknown) => {
        signal.removeEventListener("abort", onAbort);
        reject(err);
      },
    );
  });
}

/** A promise that settles only when `signal` aborts (a blackhole). */
function untilAborted(signal: AbortSignal): Promise<never> {
  return new Promise<never>((_, reject) => {
    if (signal.aborted) reject(signal.reason);
    else signal.addEventListener("abort", () => reject(signal.reason), { once: true });
  });
}

export class MemoryTransport implements Transport {
  readonly id: NodeId;
  private readonly network: MemoryNetwork;
  private handler: InboundHandler | null = null;
  private closed = false;
  private readonly endpoint: Endpoint;
  private readonly chunkBytes: number;
  private readonly sliceBytes: number;
  readonly snapshotStats = new SnapshotStats();

  constructor(private readonly opts: MemoryTransportOptions) {
    this.id = opts.id;
    this.network = opts.network;
    this.chunkBytes = opts.chunkBytes ?? 64 * 1024;
    this.sliceBytes = opts.sliceBytes ?? 64 * 1024;
    if (!Number.isSafeInteger(this.sliceBytes) || this.sliceBytes < 1)
      throw new RangeError(`sliceBytes must be a positive integer, got ${this.sliceBytes}`);
    this.endpoint = {
      id: this.id,
      open: () => this.handler !== null && !this.closed,
      deliver: (from, batch) => this.handler!.onMessages(from, batch),
      acceptSnapshot: (from, message, stream) => this.acceptSnapshot(from, message, stream),
    };
    this.network.attach(this.endpoint);
  }

  async start(handler: InboundHandler): Promise<void> {
    if (this.closed) throw new TransportClosedError(this.id);
    if (this.handler !== null)
      throw new TransportError(`the transport of node ${this.id} is already started`);
    await sweepSpoolDir(this.opts.fs, this.opts.snapshotDir, this.opts.logger);
    this.handler = handler;
  }

  sender(peer: NodeId): PeerSender {
    return {
      send: (batch, signal) => this.send(peer, batch, signal),
      sendSnapshot: (message, signal, onProgress) =>
        this.snapshotStats.countSend(abortable(this.sendSnapshot(peer, message, signal, onProgress), signal)),
    };
  }

  async close(): Promise<void> {
    this.closed = true;
    this.network.detach(this.endpoint);
  }

  private route(to: NodeId, batch: readonly Message[], kind: "messages" | "snapshot"): Endpoint | Verdict {
    if (this.closed) throw new TransportClosedError(this.id);
    const verdict = this.network.judge(this.id, to, batch, kind);
    if (verdict.kind !== "pass") return verdict;
    const target = this.network.lookup(to);
    if (typeof target === "string") return { kind: "unreachable", reason: target };
    return target;
  }

  private refuse(to: NodeId, verdict: Verdict, what: string, signal: AbortSignal): Promise<never> {
    if (verdict.kind === "unreachable") return Promise.reject(new PeerUnreachableError(to, verdict.reason));
    if (verdict.kind === "drop" && verdict.mode === "blackhole") return untilAborted(signal);
    return Promise.reject(new MessageDroppedError(this.id, to, what));
  }

  private send(to: NodeId, batch: readonly Message[], signal: AbortSignal): Promise<void> {
    if (signal.aborted) return Promise.reject(signal.reason);
    let target: Endpoint | Verdict;
    try {
      target = this.route(to, batch, "messages");
    } catch (err) {
      return Promise.reject(err);
    }
    if (!("deliver" in target)) return this.refuse(to, target, "a batch", signal);
    const endpoint = target;
    const copy = batch.map(copyMessage);
    const chaos = this.network.chaosFor(this.id, to);
    if (chaos !== null) return this.sendThroughChaos(to, endpoint, copy, chaos);
    return new Promise<void>((resolve, reject) => {
      let done = false;
      const onAbort = () => {
        done = true;
        reject(signal.reason);
      };
      signal.addEventListener("abort", onAbort, { once: true });
      this.network.scheduleOn(this.id, to, () => {
        if (done) return;
        done = true;
        signal.removeEventListener("abort", onAbort);
        if (!endpoint.open()) {
          reject(new PeerUnreachableError(to, "closed before delivery"));
          return;
        }
        try {
          endpoint.deliver(this.id, copy);
        } catch (err) {
          reject(new TransportError(`peer ${to}'s handler threw on delivery: ${String(err)}`));
          return;
        }
        this.network.count(this.id, to, (s) => {
          s.deliveredBatches++;
          s.deliveredMessages += copy.length;
        });
        resolve();
      });
    });
  }

  /**
   * A lossy link: the batch is taken (the send resolves) and then lost, delivered once after a random
   * delay (so batches overtake each other), or delivered twice. Raft must cope with all three.
   */
  private sendThroughChaos(
    to: NodeId,
    endpoint: Endpoint,
    batch: readonly Message[],
    plan: { copies: number; delaysMs: readonly number[] },
  ): Promise<void> {
    if (plan.copies === 0) this.network.count(this.id, to, (s) => s.droppedBatches++);
    for (let i = 0; i < plan.copies; i++) {
      const copy = i === 0 ? batch : batch.map(copyMessage);
      this.network.afterDelay(plan.delaysMs[i]!, () => {
        if (!endpoint.open()) return;
        endpoint.deliver(this.id, copy);
        this.network.count(this.id, to, (s) => {
          s.deliveredBatches++;
          s.deliveredMessages += copy.length;
        });
      });
    }
    return new Promise<void>((resolve) => this.network.schedule(resolve));
  }

  private async sendSnapshot(
    to: NodeId,
    message: Message,
    signal: AbortSignal,
    onProgress: ((payloadBytes: number) => void) | undefined,
  ): Promise<void> {
    signal.throwIfAborted();
    const meta = message.snapshot?.metadata;
    if (meta === undefined) throw new TransportError("sendSnapshot needs a message carrying a snapshot");
    const target = this.route(to, [message], "snapshot");
    if (!("deliver" in target)) return this.refuse(to, target, "a snapshot", signal);
    const faults = this.network.takeSnapshotFaults(this.id, to);
    const expectedBytes = (await this.opts.snapshotSource.payloadBytes?.(meta)) ?? -1;
    // Start on a later macrotask (after the link's delay), as a connection would: never re-entrant
    // into the receiver.
    await new Promise<void>((resolve) => this.network.scheduleOn(this.id, to, resolve));
    signal.throwIfAborted();
    const stream = this.pipe(to, target, meta, expectedBytes, signal, faults, onProgress);
    try {
      await target.acceptSnapshot(this.id, copyMessage(message), stream);
    } catch (err) {
      this.network.count(this.id, to, (s) => s.snapshotsFailed++);
      throw err;
    }
    this.network.count(this.id, to, (s) => s.snapshotsConfirmed++);
  }

  /** The wire: frames the source, slices it, applies the link's faults, one scheduler turn per slice. */
  private async *pipe(
    to: NodeId,
    target: Endpoint,
    meta: NonNullable<Message["snapshot"]>["metadata"],
    expectedBytes: number,
    signal: AbortSignal,
    faults: { cutAt: number; corruptAt: number },
    onProgress: ((payloadBytes: number) => void) | undefined,
  ): AsyncGenerator<Uint8Array> {
    const frames = encodeSnapshotStream(meta, this.opts.snapshotSource.open(meta, signal), {
      clusterId: this.opts.clusterId,
      expectedBytes,
      stats: this.snapshotStats,
      chunkBytes: this.chunkBytes,
      peer: to,
      ...(this.opts.logger ? { logger: this.opts.logger } : {}),
    });
    let offset = 0;
    let payloadBytes = 0;
    for await (const frame of frames) {
      let bytes = frame;
      if (faults.corruptAt >= offset && faults.corruptAt < offset + frame.length) {
        bytes = frame.slice();
        bytes[faults.corruptAt - offset]! ^= 0xff;
      }
      for (let i = 0; i < bytes.length; ) {
        signal.throwIfAborted();
        if (!target.open()) throw new PeerUnreachableError(to, "closed during a snapshot transfer");
        if (faults.cutAt >= 0 && offset >= faults.cutAt) return;
        let n = Math.min(this.sliceBytes, bytes.length - i);
        if (faults.cutAt >= 0) n = Math.min(n, faults.cutAt - offset);
        const slice = bytes.slice(i, i + n);
        i += n;
        offset += n;
        this.network.count(this.id, to, (s) => {
          s.snapshotBytes += n;
        });
        yield slice;
        // One turn per slice, after the link's delay if it has one: a delayed link is a slow one.
        await new Promise<void>((resolve) => this.network.scheduleOn(this.id, to, resolve));
      }
      if (frame[0] === FRAME_DATA) {
        payloadBytes += frame.length - FRAME_PREFIX_BYTES - DATA_OVERHEAD_BYTES;
        onProgress?.(payloadBytes);
      }
    }
  }

  private async acceptSnapshot(
    from: NodeId,
    message: Message,
    stream: AsyncIterable<Uint8Array>,
  ): Promise<void> {
    const spooled = await spoolSnapshot(this.opts.fs, this.opts.snapshotDir, stream, {
      clusterId: this.opts.clusterId,
      stats: this.snapshotStats,
      peer: from,
      ...(message.snapshot ? { announced: message.snapshot.metadata } : {}),
      ...(this.opts.maxSnapshotBytes !== undefined ? { maxSnapshotBytes: this.opts.maxSnapshotBytes } : {}),
      ...(this.opts.maxChunkBytes !== undefined ? { maxChunkBytes: this.opts.maxChunkBytes } : {}),
      ...(this.opts.logger ? { logger: this.opts.logger } : {}),
    });
    const handler = this.handler;
    if (handler === null || this.closed)
      throw new PeerUnreachableError(this.id, "closed during a snapshot transfer");
    await handler.onSnapshot(from, message, spooled);
  }
}
