/**
 * The gRPC transport: the {@link Transport} seam over HTTP/2 between processes (service
 * `raftkv.transport.v1.Raft`, proto/raftkv/transport/v1/transport.proto), with the same contract as the
 * in-memory transport.
 *
 * - Messages: one long-lived bidi stream per peer, opened on the first send and reopened by the next
 *   send after it breaks. Each batch carries the cluster id, both node ids and a sequence number; the
 *   receiver validates it whole, hands it to raft, then acknowledges the number. A send resolves on
 *   its ack; several may be outstanding. A receiver that refuses a batch ends that stream with a
 *   status whose detail the sender turns back into the typed error; no other stream is touched.
 * - Snapshots: one client-streaming call per transfer, on its own HTTP/2 stream so that it never holds
 *   up heartbeats. The first piece names the Snap message; the rest are the framed stream of
 *   snapshot-stream.ts, which the receiver spools, verifies and makes durable before raft takes it.
 *   Only then does the sender's call succeed.
 * - Every failure is a typed error from errors.ts; both ends log index, peer and payload bytes on
 *   success and on every failure path.
 */
import * as grpc from "@grpc/grpc-js";
import type { RaftLogger } from "../raft/config.js";
import { silentLogger } from "../raft/config.js";
import type { Message, NodeId, SnapshotMetadata } from "../raft/types.js";
import type { FileSystem } from "../storage/fs.js";
import {
  ClusterIdMismatchError,
  MalformedMessageError,
  MessageTooLargeError,
  PeerUnreachableError,
  SnapshotCorruptError,
  SnapshotRejectedError,
  TransportClosedError,
  TransportError,
  WrongNodeError,
} from "./errors.js";
import * as pb from "./gen/raftkv/transport/v1/transport_pb.js";
import { decodeBatch, decodeSnapshotStart, encodeBatchBytes, encodeSnapshotStart } from "./grpc-codec.js";
import {
  type Decoded,
  deserializer,
  raftServiceDefinition,
  serializeEncoded,
  serializer,
} from "./grpc-service.js";
import { errorFromStatus, statusFromError } from "./grpc-status.js";
import {
  DATA_OVERHEAD_BYTES,
  encodeSnapshotStream,
  FRAME_DATA,
  FRAME_PREFIX_BYTES,
  SNAPSHOT_STREAM_DEFAULTS,
  SnapshotStats,
  snapshotFailureKind,
  spoolSnapshot,
  sweepSpoolDir,
} from "./snapshot-stream.js";
import type { InboundHandler, PeerSender, ReceivedSnapshot, SnapshotSource, Transport } from "./transport.js";

/** Test-only faults for one outbound snapshot (stream byte offsets; -1: none). */
export interface SnapshotFaults {
  /** End the stream after this many stream bytes, before its trailer. */
  cutAt: number;
  /** Flip the stream byte at this offset. */
  corruptAt: number;
}

export interface GrpcTransportOptions {
  id: NodeId;
  clusterId: string;
  /** host:port to listen on; port 0 picks a free one (see {@link GrpcTransport.address}). */
  listen: string;
  /** host:port of each peer; {@link GrpcTransport.setPeer} changes them later. */
  peers: ReadonlyMap<NodeId, string>;
  /** Where outbound snapshot payloads come from. */
  snapshotSource: SnapshotSource;
  /** The file system inbound snapshots are spooled to, and the directory within it. */
  fs: FileSystem;
  snapshotDir: string;
  logger?: RaftLogger;
  /** Payload bytes per snapshot DATA frame (one frame per gRPC message). Default 1 MiB. */
  chunkBytes?: number;
  /** Largest gRPC message sent or received (a batch, a snapshot piece). Default 64 MiB. */
  maxMessageBytes?: number;
  /** Largest snapshot payload accepted from a peer. Default 8 GiB. */
  maxSnapshotBytes?: number;
  /** Largest snapshot DATA frame payload accepted from a peer. Default 4 MiB. */
  maxChunkBytes?: number;
  /** Batches awaiting their ack per peer before further sends are refused. Default 256. */
  maxInflightBatches?: number;
  /** How long close() lets inbound calls finish before it cuts them. Default 2000 ms. */
  closeGraceMs?: number;
  /** Test-only: faults for the next snapshot sent to `peer`, asked once per transfer (mirrors MemoryNetwork). */
  snapshotFaults?: (peer: NodeId) => SnapshotFaults | null;
  /**
   * Further gRPC services to serve on the same port (a server node's admin service), added when the
   * server starts: an operator needs one address per node, and it is the one its peers know it by.
   */
  services?: readonly GrpcServiceBinding[];
}

/** A gRPC service and its handlers, for {@link GrpcTransportOptions.services}. */
export interface GrpcServiceBinding {
  readonly definition: grpc.ServiceDefinition;
  readonly implementation: grpc.UntypedServiceImplementation;
}

export const GRPC_TRANSPORT_DEFAULTS = {
  chunkBytes: SNAPSHOT_STREAM_DEFAULTS.chunkBytes,
  maxMessageBytes: 64 * 1024 * 1024,
  maxInflightBatches: 256,
  closeGraceMs: 2_000,
  /**
   * Keepalive pings on idle connections: a leader's heartbeats keep its streams busy, but a follower
   * that only answers, or a peer that vanished without a FIN, is found out within about 15 s.
   */
  keepaliveTimeMs: 10_000,
  keepaliveTimeoutMs: 5_000,
  /** Reconnect quickly after a peer restarts (about an election timeout at most), with backoff. */
  initialReconnectBackoffMs: 100,
  maxReconnectBackoffMs: 1_000,
} as const;

/** Room for a SnapshotPiece's own encoding around one frame (tag and length varints). */
const PIECE_OVERHEAD_BYTES = 16;

const ackDeserialize = deserializer(pb.BatchAckSchema);
const pieceSerialize = serializer(pb.SnapshotPieceSchema);
const snapshotAckDeserialize = deserializer(pb.SnapshotAckSchema);

function asError(err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err));
}

function checkPositive(name: string, n: number): void {
  if (!Number.isSafeInteger(n) || n < 1) throw new RangeError(`${name} must be a positive integer, got ${n}`);
}

/** What a peer link needs from its transport. */
interface LinkContext {
  readonly id: NodeId;
  readonly clusterId: string;
  readonly logger: RaftLogger;
  readonly maxMessageBytes: number;
  readonly maxInflightBatches: number;
  readonly chunkBytes: number;
  readonly snapshotSource: SnapshotSource;
  readonly snapshotFaults: ((peer: NodeId) => SnapshotFaults | null) | undefined;
  readonly channelOptions: grpc.ChannelOptions;
  readonly stats: SnapshotStats;
}

interface PendingSend {
  resolve(): void;
  reject(err: unknown): void;
  signal: AbortSignal;
  onAbort(): void;
}

/** Progress of one outbound snapshot call, shared by its pump and its completion. */
interface OutboundSnapshot {
  done: boolean;
  streamBytes: number;
  payloadBytes: number;
  /** Wakes a pump waiting for 'drain' once the call is over. */
  wake: (() => void) | null;
  /** Told the payload bytes written after each frame is handed to the call. */
  onProgress: ((payloadBytes: number) => void) | null;
  /** Settles the send once: null for success, else what it rejects with (an abort's reason as it is). */
  finish(failure: { error: unknown } | null): void;
}

/** Everything this node sends to one peer: its channel, its message stream, its snapshot calls. */
class PeerLink {
  readonly client: grpc.Client;
  private call: grpc.ClientDuplexStream<Uint8Array, pb.BatchAck> | null = null;
  /** Sends awaiting their ack on the current stream, oldest first (Map keeps insertion order). */
  private readonly pending = new Map<number, PendingSend>();
  private readonly snapshots = new Set<OutboundSnapshot>();
  private nextSeq = 1;
  private closedWith: Error | null = null;
  /** An ack arrived since the stream last broke: the next break is news, worth a warning. */
  private healthy = false;

  constructor(
    readonly peer: NodeId,
    readonly address: string,
    private readonly ctx: LinkContext,
  ) {
    this.client = new grpc.Client(address, grpc.credentials.createInsecure(), ctx.channelOptions);
  }

  send(batch: readonly Message[], signal: AbortSignal): Promise<void> {
    if (this.closedWith !== null) return Promise.reject(this.closedWith);
    if (signal.aborted) return Promise.reject(signal.reason);
    if (this.pending.size >= this.ctx.maxInflightBatches)
      return Promise.reject(
        new TransportError(
          `${this.pending.size} batches to peer ${this.peer} await their ack (maxInflightBatches); batch refused`,
        ),
      );
    const seq = this.nextSeq++;
    let bytes: Uint8Array;
    try {
      bytes = encodeBatchBytes(
        { clusterId: this.ctx.clusterId, from: this.ctx.id, to: this.peer, seq },
        batch,
      );
    } catch (err) {
      return Promise.reject(err);
    }
    // Refused here, alone: grpc-js would cancel the whole stream, and every batch on it, over it.
    if (bytes.length > this.ctx.maxMessageBytes)
      return Promise.reject(new MessageTooLargeError(bytes.length, this.ctx.maxMessageBytes, "sender"));
    const call = this.stream();
    return new Promise<void>((resolve, reject) => {
      const entry: PendingSend = {
        resolve,
        reject,
        signal,
        onAbort: () => {
          // The batch may still arrive; its ack will find no entry and be ignored.
          this.pending.delete(seq);
          reject(signal.reason);
        },
      };
      signal.addEventListener("abort", entry.onAbort, { once: true });
      this.pending.set(seq, entry);
      // Bounded by maxInflightBatches; HTTP/2 flow control paces the bytes.
      call.write(bytes);
    });
  }

  /** The message stream, opened if there is none. */
  private stream(): grpc.ClientDuplexStream<Uint8Array, pb.BatchAck> {
    if (this.call !== null) return this.call;
    const call = this.client.makeBidiStreamRequest(
      raftServiceDefinition.messages.path,
      serializeEncoded,
      ackDeserialize,
    );
    this.call = call;
    call.on("data", (ack: pb.BatchAck) => this.onAck(call, ack));
    call.on("error", (err: grpc.ServiceError) => this.onBroken(call, errorFromStatus(this.peer, err)));
    call.on("end", () =>
      this.onBroken(call, new PeerUnreachableError(this.peer, "the peer ended the message stream")),
    );
    return call;
  }

  private onAck(call: grpc.ClientDuplexStream<Uint8Array, pb.BatchAck>, ack: pb.BatchAck): void {
    if (call !== this.call) return;
    this.healthy = true;
    const seq = ack.seq <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(ack.seq) : -1;
    const entry = this.pending.get(seq);
    if (entry === undefined) return; // aborted by its sender meanwhile
    this.pending.delete(seq);
    entry.signal.removeEventListener("abort", entry.onAbort);
    entry.resolve();
  }

  private onBroken(call: grpc.ClientDuplexStream<Uint8Array, pb.BatchAck>, err: Error): void {
    if (call !== this.call) return;
    this.call = null;
    const fields = { peer: this.peer, address: this.address, pending: this.pending.size, error: err.message };
    if (this.healthy || !(err instanceof PeerUnreachableError))
      this.ctx.logger.warn("message stream to peer failed", fields);
    else this.ctx.logger.debug("message stream to peer failed", fields);
    this.healthy = false;
    // Acks come in order, so a refusal that concerns one batch (too large, malformed) is about the
    // oldest one still waiting; the others were not delivered because the stream ended under them.
    const batchSpecific = err instanceof MalformedMessageError || err instanceof MessageTooLargeError;
    let first = true;
    for (const entry of this.pending.values()) {
      entry.signal.removeEventListener("abort", entry.onAbort);
      entry.reject(
        first || !batchSpecific
          ? err
          : new PeerUnreachableError(
              this.peer,
              `the message stream ended after a refused batch: ${err.message}`,
            ),
      );
      first = false;
    }
    this.pending.clear();
  }

  sendSnapshot(
    message: Message,
    signal: AbortSignal,
    onProgress?: (payloadBytes: number) => void,
  ): Promise<void> {
    if (this.closedWith !== null) return Promise.reject(this.closedWith);
    if (signal.aborted) return Promise.reject(signal.reason);
    let start: pb.SnapshotPiece;
    try {
      start = encodeSnapshotStart(
        { clusterId: this.ctx.clusterId, from: this.ctx.id, to: this.peer },
        message,
      );
    } catch (err) {
      return Promise.reject(err);
    }
    const meta = message.snapshot!.metadata;
    const faults = this.ctx.snapshotFaults?.(this.peer) ?? null;
    const logger = this.ctx.logger;
    // Stops the source when the call ends for any reason, not only when the caller aborts.
    const source = new AbortController();
    return new Promise<void>((resolve, reject) => {
      const state: OutboundSnapshot = {
        done: false,
        streamBytes: 0,
        payloadBytes: 0,
        wake: null,
        onProgress: onProgress ?? null,
        finish: (failure) => {
          if (state.done) return;
          state.done = true;
          this.snapshots.delete(state);
          signal.removeEventListener("abort", onAbort);
          state.wake?.();
          const fields = {
            index: meta.index,
            term: meta.term,
            peer: this.peer,
            payload_bytes: state.payloadBytes,
            stream_bytes: state.streamBytes,
          };
          if (failure === null) {
            logger.info("snapshot sent and confirmed by the peer", fields);
            resolve();
            return;
          }
          const err = failure.error;
          source.abort(err);
          call.cancel();
          logger.warn("snapshot send failed", {
            ...fields,
            kind: snapshotFailureKind(err),
            error: String(err),
          });
          reject(err);
        },
      };
      const onAbort = () => state.finish({ error: signal.reason });
      signal.addEventListener("abort", onAbort, { once: true });
      const call = this.client.makeClientStreamRequest(
        raftServiceDefinition.snapshot.path,
        pieceSerialize,
        snapshotAckDeserialize,
        (err: grpc.ServiceError | null, ack?: pb.SnapshotAck) => {
          if (err !== null) state.finish({ error: errorFromStatus(this.peer, err) });
          else if (ack === undefined || ack.index !== BigInt(meta.index))
            state.finish({
              error: new TransportError(
                `peer ${this.peer} confirmed snapshot ${ack?.index ?? "none"} instead of ${meta.index}`,
              ),
            });
          else state.finish(null);
        },
      );
      this.snapshots.add(state);
      call.write(start);
      // The receiver sends its headers once it has accepted the start (cluster, node, message): only
      // then is the snapshot source opened, so a refused or unreachable peer costs no snapshot read.
      call.once("metadata", () => {
        if (state.done) return;
        this.streamSnapshot(call, meta, state, faults, source.signal).then(
          () => {
            // Half-close: the receiver answers once it has verified, stored and handed over the snapshot.
            if (!state.done) call.end();
          },
          (err: unknown) => state.finish({ error: err }),
        );
      });
    });
  }

  private async streamSnapshot(
    call: grpc.ClientWritableStream<pb.SnapshotPiece>,
    meta: SnapshotMetadata,
    state: OutboundSnapshot,
    faults: SnapshotFaults | null,
    signal: AbortSignal,
  ): Promise<void> {
    const source = this.ctx.snapshotSource;
    // Announced in the header, so that a receiver cut short can say how much was missing.
    const expectedBytes = (await source.payloadBytes?.(meta)) ?? -1;
    if (state.done) return;
    const frames = encodeSnapshotStream(meta, source.open(meta, signal), {
      clusterId: this.ctx.clusterId,
      chunkBytes: this.ctx.chunkBytes,
      expectedBytes,
      peer: this.peer,
      logger: this.ctx.logger,
      stats: this.ctx.stats,
    });
    await pumpSnapshot(call, frames, state, faults, this.peer, this.ctx.logger);
  }

  /** Ends everything in flight with `err` and releases the channel. */
  close(err: Error): void {
    if (this.closedWith !== null) return;
    this.closedWith = err;
    const call = this.call;
    this.call = null;
    for (const entry of this.pending.values()) {
      entry.signal.removeEventListener("abort", entry.onAbort);
      entry.reject(err);
    }
    this.pending.clear();
    for (const s of [...this.snapshots]) s.finish({ error: err });
    call?.cancel();
    this.client.close();
  }
}

/**
 * Writes the framed snapshot to the call, one frame per piece, waiting out back-pressure; applies
 * the test-only faults. Returns when the stream was written (or cut), or when the call ended.
 */
async function pumpSnapshot(
  call: grpc.ClientWritableStream<pb.SnapshotPiece>,
  frames: AsyncGenerator<Uint8Array, unknown, undefined>,
  state: OutboundSnapshot,
  faults: SnapshotFaults | null,
  peer: NodeId,
  logger: RaftLogger,
): Promise<void> {
  const cutAt = faults?.cutAt ?? -1;
  const corruptAt = faults?.corruptAt ?? -1;
  // Leaving this loop early (return, throw) returns the generator, which logs what it had framed.
  for await (const frame of frames) {
    if (state.done) return;
    const offset = state.streamBytes;
    // The frame is ours (encodeSnapshotStream yields fresh arrays): flip in place.
    if (corruptAt >= offset && corruptAt < offset + frame.length) frame[corruptAt - offset]! ^= 0xff;
    const cut = cutAt >= 0 && offset + frame.length > cutAt;
    const bytes = cut ? frame.subarray(0, cutAt - offset) : frame;
    if (bytes.length > 0) {
      const more = call.write({
        $typeName: "raftkv.transport.v1.SnapshotPiece",
        piece: { case: "frames", value: bytes },
      });
      state.streamBytes += bytes.length;
      if (frame[0] === FRAME_DATA)
        state.payloadBytes += Math.max(0, bytes.length - FRAME_PREFIX_BYTES - DATA_OVERHEAD_BYTES);
      if (!more) await drained(call, state);
      if (!state.done) state.onProgress?.(state.payloadBytes);
    }
    if (cut) {
      logger.warn("snapshot stream cut (fault injection)", { peer, stream_bytes: state.streamBytes });
      return;
    }
  }
}

function drained(call: grpc.ClientWritableStream<pb.SnapshotPiece>, state: OutboundSnapshot): Promise<void> {
  return new Promise<void>((resolve) => {
    const done = () => {
      call.off("drain", done);
      state.wake = null;
      resolve();
    };
    state.wake = done;
    call.on("drain", done);
  });
}

type MessagesCall = grpc.ServerDuplexStream<Decoded<pb.MessageBatch>, pb.BatchAck>;
type SnapshotCall = grpc.ServerReadableStream<Decoded<pb.SnapshotPiece>, pb.SnapshotAck>;

/** Ends a server stream with a failure status (grpc-js sends it after the acks already written). */
function failStream(call: MessagesCall, err: unknown): void {
  call.emit("error", statusFromError(err));
}

function isPrematureClose(err: unknown): boolean {
  return (err as { code?: unknown } | null)?.code === "ERR_STREAM_PREMATURE_CLOSE";
}

function sameMetadata(a: SnapshotMetadata, b: SnapshotMetadata): boolean {
  return a.index === b.index && a.term === b.term;
}

export class GrpcTransport implements Transport {
  readonly id: NodeId;
  /** Snapshot transfer totals, both directions, for the engine's metrics. */
  readonly snapshotStats = new SnapshotStats();
  private readonly ctx: LinkContext;
  private readonly peers: Map<NodeId, string>;
  private readonly links = new Map<NodeId, PeerLink>();
  private readonly logger: RaftLogger;
  private readonly closeGraceMs: number;
  private server: grpc.Server | null = null;
  private handler: InboundHandler | null = null;
  private bound: string | null = null;
  private closed = false;
  private closing: Promise<void> | null = null;
  private readonly inboundStreams = new Set<MessagesCall>();
  private readonly inboundSnapshots = new Map<SnapshotCall, Promise<void>>();
  /**
   * The inbound transfer now spooling. One at a time: two transfers of the same snapshot would share
   * its temp file name (incoming-<index>-<term>.tmp), and a follower needs only the newest anyway.
   */
  private spool: { call: SnapshotCall; done: Promise<void>; release: () => void } | null = null;

  constructor(private readonly opts: GrpcTransportOptions) {
    this.id = opts.id;
    this.logger = opts.logger ?? silentLogger;
    this.peers = new Map(opts.peers);
    const maxMessageBytes = opts.maxMessageBytes ?? GRPC_TRANSPORT_DEFAULTS.maxMessageBytes;
    const chunkBytes = opts.chunkBytes ?? GRPC_TRANSPORT_DEFAULTS.chunkBytes;
    const maxInflightBatches = opts.maxInflightBatches ?? GRPC_TRANSPORT_DEFAULTS.maxInflightBatches;
    this.closeGraceMs = opts.closeGraceMs ?? GRPC_TRANSPORT_DEFAULTS.closeGraceMs;
    checkPositive("maxMessageBytes", maxMessageBytes);
    checkPositive("chunkBytes", chunkBytes);
    checkPositive("maxInflightBatches", maxInflightBatches);
    if (!Number.isSafeInteger(this.closeGraceMs) || this.closeGraceMs < 0)
      throw new RangeError(`closeGraceMs must be a non-negative integer, got ${this.closeGraceMs}`);
    const pieceBytes = FRAME_PREFIX_BYTES + DATA_OVERHEAD_BYTES + chunkBytes + PIECE_OVERHEAD_BYTES;
    if (pieceBytes > maxMessageBytes)
      throw new RangeError(
        `chunkBytes ${chunkBytes} does not fit a gRPC message of maxMessageBytes ${maxMessageBytes} ` +
          `(a piece needs ${pieceBytes}); lower chunkBytes or raise maxMessageBytes`,
      );
    this.ctx = {
      id: opts.id,
      clusterId: opts.clusterId,
      logger: this.logger,
      maxMessageBytes,
      maxInflightBatches,
      chunkBytes,
      snapshotSource: opts.snapshotSource,
      snapshotFaults: opts.snapshotFaults,
      stats: this.snapshotStats,
      channelOptions: {
        "grpc.max_send_message_length": maxMessageBytes,
        "grpc.max_receive_message_length": maxMessageBytes,
        "grpc.keepalive_time_ms": GRPC_TRANSPORT_DEFAULTS.keepaliveTimeMs,
        "grpc.keepalive_timeout_ms": GRPC_TRANSPORT_DEFAULTS.keepaliveTimeoutMs,
        "grpc.keepalive_permit_without_calls": 1,
        "grpc.initial_reconnect_backoff_ms": GRPC_TRANSPORT_DEFAULTS.initialReconnectBackoffMs,
        "grpc.max_reconnect_backoff_ms": GRPC_TRANSPORT_DEFAULTS.maxReconnectBackoffMs,
        // Raft retries by itself (reports, probes); a transparent gRPC retry would only hide a failure.
        "grpc.enable_retries": 0,
        // One connection per link, not shared process-wide: closing or breaking one link (or one of
        // several transports in a test process) never touches another.
        "grpc.use_local_subchannel_pool": 1,
      },
    };
  }

  /** The bound host:port (the real port when `listen` asked for port 0). */
  get address(): string {
    if (this.bound === null) throw new TransportError(`the transport of node ${this.id} is not started`);
    return this.bound;
  }

  async start(handler: InboundHandler): Promise<void> {
    if (this.closed) throw new TransportClosedError(this.id);
    if (this.handler !== null)
      throw new TransportError(`the transport of node ${this.id} is already started`);
    this.handler = handler;
    try {
      // What a crash left in the spool directory goes before any snapshot can arrive.
      await sweepSpoolDir(this.opts.fs, this.opts.snapshotDir, this.logger);
    } catch (err) {
      this.handler = null;
      throw err;
    }
    const maxMessageBytes = this.ctx.maxMessageBytes;
    const server = new grpc.Server({
      "grpc.max_receive_message_length": maxMessageBytes,
      "grpc.max_send_message_length": maxMessageBytes,
      "grpc.keepalive_time_ms": GRPC_TRANSPORT_DEFAULTS.keepaliveTimeMs,
      "grpc.keepalive_timeout_ms": GRPC_TRANSPORT_DEFAULTS.keepaliveTimeoutMs,
    });
    server.addService(raftServiceDefinition, {
      messages: (call: MessagesCall) => this.onMessagesCall(call),
      snapshot: (call: SnapshotCall, callback: grpc.sendUnaryData<pb.SnapshotAck>) =>
        this.onSnapshotCall(call, callback),
    });
    for (const service of this.opts.services ?? [])
      server.addService(service.definition, service.implementation);
    let port: number;
    try {
      port = await new Promise<number>((resolve, reject) => {
        server.bindAsync(this.opts.listen, grpc.ServerCredentials.createInsecure(), (err, p) =>
          err
            ? reject(
                new TransportError(`node ${this.id} cannot listen on ${this.opts.listen}: ${err.message}`),
              )
            : resolve(p),
        );
      });
    } catch (err) {
      server.forceShutdown();
      this.handler = null; // so that start() may be tried again
      throw err;
    }
    this.server = server;
    const host = this.opts.listen.slice(0, this.opts.listen.lastIndexOf(":"));
    this.bound = `${host}:${port}`;
    this.logger.info("grpc transport listening", { id: this.id, address: this.bound });
    if (this.closed) await this.stopServer(); // close() ran while we were binding
  }

  sender(peer: NodeId): PeerSender {
    // Looks the link up on every call, so that setPeer also redirects senders handed out before.
    return {
      send: (batch, signal) => {
        const link = this.link(peer);
        return link instanceof PeerLink ? link.send(batch, signal) : Promise.reject(link);
      },
      sendSnapshot: (message, signal, onProgress) => {
        const link = this.link(peer);
        return this.snapshotStats.countSend(
          link instanceof PeerLink ? link.sendSnapshot(message, signal, onProgress) : Promise.reject(link),
        );
      },
    };
  }

  /**
   * Sets (or changes) a peer's address, for membership changes. Calls in flight on the old address
   * fail with {@link PeerUnreachableError}; the next send connects to the new one.
   */
  setPeer(id: NodeId, address: string): void {
    this.peers.set(id, address);
    const link = this.links.get(id);
    if (link !== undefined && link.address !== address) {
      this.links.delete(id);
      link.close(new PeerUnreachableError(id, `its address changed from ${link.address} to ${address}`));
    }
  }

  /**
   * Resolves once the connection to `peer` is up (connecting if needed, through reconnect backoff);
   * rejects with {@link PeerUnreachableError} after `timeoutMs`. For start-up and tests: sends do not
   * need it, they fail fast while a peer is down.
   */
  waitForPeer(peer: NodeId, timeoutMs: number): Promise<void> {
    const link = this.link(peer);
    if (!(link instanceof PeerLink)) return Promise.reject(link);
    return new Promise<void>((resolve, reject) => {
      link.client.waitForReady(Date.now() + timeoutMs, (err) =>
        err === undefined
          ? resolve()
          : reject(new PeerUnreachableError(peer, `not connected within ${timeoutMs} ms: ${err.message}`)),
      );
    });
  }

  close(): Promise<void> {
    this.closing ??= this.shutdown();
    return this.closing;
  }

  private link(peer: NodeId): PeerLink | Error {
    if (this.closed) return new TransportClosedError(this.id);
    let link = this.links.get(peer);
    if (link !== undefined) return link;
    const address = this.peers.get(peer);
    if (address === undefined)
      return new PeerUnreachableError(peer, `node ${this.id} knows no address for it (setPeer)`);
    link = new PeerLink(peer, address, this.ctx);
    this.links.set(peer, link);
    return link;
  }

  private async shutdown(): Promise<void> {
    this.closed = true;
    const err = new TransportClosedError(this.id);
    for (const link of this.links.values()) link.close(err);
    this.links.clear();
    await this.stopServer();
    this.logger.info("grpc transport closed", { id: this.id });
  }

  /** Fails inbound calls, lets the server drain for closeGraceMs, then cuts what is left. */
  private async stopServer(): Promise<void> {
    const server = this.server;
    if (server === null) return;
    this.server = null;
    for (const call of this.inboundStreams) failStream(call, new TransportClosedError(this.id));
    this.inboundStreams.clear();
    // Ends the piece iterator of each inbound transfer: the spool fails and removes its temp file.
    for (const call of this.inboundSnapshots.keys()) call.destroy();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const grace = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, this.closeGraceMs);
    });
    const drained = new Promise<void>((resolve) => server.tryShutdown(() => resolve()));
    await Promise.race([Promise.all([drained, ...this.inboundSnapshots.values()]), grace]);
    clearTimeout(timer);
    server.forceShutdown();
  }

  // ---------------------------------------------------------------- inbound messages

  private onMessagesCall(call: MessagesCall): void {
    if (this.closed) {
      failStream(call, new TransportClosedError(this.id));
      return;
    }
    this.inboundStreams.add(call);
    let from: NodeId = 0;
    let failed = false;
    call.on("data", (decoded: Decoded<pb.MessageBatch>) => {
      if (failed) return;
      let claimed: number | undefined;
      try {
        if (!decoded.ok) throw decoded.error;
        const raw = decoded.value;
        claimed = raw.from <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(raw.from) : undefined;
        // Who before what: a batch for another cluster or node is refused whatever it holds.
        if (raw.clusterId !== this.opts.clusterId)
          throw new ClusterIdMismatchError(this.opts.clusterId, raw.clusterId);
        if (raw.to !== BigInt(this.id))
          throw new WrongNodeError(raw.to <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(raw.to) : -1, this.id);
        const batch = decodeBatch(raw);
        if (from === 0) from = batch.from;
        else if (batch.from !== from)
          throw new MalformedMessageError(
            `sender changed from node ${from} to ${batch.from} on one stream`,
            "from",
          );
        this.handler!.onMessages(batch.from, batch.messages);
        // A sender that does not read its acks is not read either: the buffered acks stay bounded.
        if (!call.write({ $typeName: "raftkv.transport.v1.BatchAck", seq: raw.seq })) {
          call.pause();
          call.once("drain", () => call.resume());
        }
      } catch (err) {
        failed = true;
        this.inboundStreams.delete(call);
        this.logger.warn("refused a message batch; stream closed", {
          peer: claimed,
          remote: call.getPeer(),
          error: String(err),
        });
        failStream(call, err);
      }
    });
    // The sender closed its side (it is shutting down or replacing the stream): close ours.
    call.on("end", () => {
      this.inboundStreams.delete(call);
      if (!failed) call.end();
    });
    call.on("cancelled", () => this.inboundStreams.delete(call));
  }

  // ---------------------------------------------------------------- inbound snapshots

  private onSnapshotCall(call: SnapshotCall, callback: grpc.sendUnaryData<pb.SnapshotAck>): void {
    const task = this.receiveSnapshot(call).then(
      (ack) => callback(null, ack),
      (err: unknown) =>
        callback(this.closed ? statusFromError(new TransportClosedError(this.id)) : statusFromError(err)),
    );
    this.inboundSnapshots.set(call, task);
    void task.finally(() => this.inboundSnapshots.delete(call));
  }

  /** Makes `call` the transfer that spools, ending (and awaiting) any older one: the newest wins. */
  private async takeSpool(call: SnapshotCall, index: number, peer: NodeId): Promise<void> {
    while (this.spool !== null) {
      const prev = this.spool;
      this.logger.warn("a newer snapshot transfer supersedes the one being received", { index, peer });
      prev.call.destroy(); // its spool sees the stream end early, fails and removes its temp file
      await prev.done;
    }
    let release!: () => void;
    const done = new Promise<void>((resolve) => {
      release = resolve;
    });
    this.spool = { call, done, release };
  }

  private releaseSpool(call: SnapshotCall): void {
    const s = this.spool;
    if (s === null || s.call !== call) return;
    this.spool = null;
    s.release();
  }

  private async receiveSnapshot(call: SnapshotCall): Promise<pb.SnapshotAck> {
    const pieces = call[Symbol.asyncIterator]() as AsyncIterator<Decoded<pb.SnapshotPiece>>;
    /** The next piece, or null at the end; a broken or cancelled call ends the pieces early. */
    const next = async (): Promise<pb.SnapshotPiece | null> => {
      let r: IteratorResult<Decoded<pb.SnapshotPiece>>;
      try {
        r = await pieces.next();
      } catch (err) {
        if (isPrematureClose(err)) return null;
        throw err;
      }
      if (r.done === true) return null;
      if (!r.value.ok) throw r.value.error;
      return r.value.value;
    };
    let peer: NodeId | undefined;
    let meta: SnapshotMetadata | undefined;
    let payloadBytes = 0;
    let spooling = false;
    try {
      if (this.closed) throw new TransportClosedError(this.id);
      const first = await next();
      if (first === null)
        throw new MalformedMessageError("the snapshot call ended before its first piece", "piece");
      const start = decodeSnapshotStart(first);
      // Who the sender claims to be, for the log lines, before we refuse it or not.
      peer = start.from;
      meta = start.metadata;
      if (start.clusterId !== this.opts.clusterId)
        throw new ClusterIdMismatchError(this.opts.clusterId, start.clusterId);
      if (start.to !== this.id) throw new WrongNodeError(start.to, this.id);
      this.logger.debug("snapshot transfer started", { index: meta.index, term: meta.term, peer });
      await this.takeSpool(call, meta.index, peer);
      if (this.closed) {
        this.releaseSpool(call);
        throw new TransportClosedError(this.id);
      }
      async function* frames(): AsyncGenerator<Uint8Array> {
        for (;;) {
          const p = await next();
          if (p === null) return;
          if (p.piece.case !== "frames")
            throw new MalformedMessageError("after the first piece, every piece must carry frames", "piece");
          yield p.piece.value;
        }
      }
      spooling = true;
      let spooled: ReceivedSnapshot;
      try {
        // Accepted: the sender opens its snapshot source only now.
        call.sendMetadata(new grpc.Metadata());
        spooled = await spoolSnapshot(this.opts.fs, this.opts.snapshotDir, frames(), {
          clusterId: this.opts.clusterId,
          peer,
          logger: this.logger,
          announced: meta,
          stats: this.snapshotStats,
          ...(this.opts.maxSnapshotBytes !== undefined
            ? { maxSnapshotBytes: this.opts.maxSnapshotBytes }
            : {}),
          ...(this.opts.maxChunkBytes !== undefined ? { maxChunkBytes: this.opts.maxChunkBytes } : {}),
        });
      } finally {
        this.releaseSpool(call);
      }
      spooling = false;
      payloadBytes = spooled.payloadBytes;
      if (!sameMetadata(spooled.metadata, meta)) {
        await this.opts.fs.unlink(spooled.path).catch(() => undefined);
        throw new SnapshotCorruptError(
          `the stream holds snapshot ${spooled.metadata.index}/${spooled.metadata.term} but the Snap message ` +
            `names ${meta.index}/${meta.term}`,
          0,
        );
      }
      if (this.closed) throw new SnapshotRejectedError(`node ${this.id} is closing`);
      try {
        await this.handler!.onSnapshot(peer, start.message, spooled);
      } catch (err) {
        throw new SnapshotRejectedError(asError(err).message);
      }
      this.logger.info("snapshot handed to raft; confirming to the sender", {
        index: meta.index,
        term: meta.term,
        peer,
        payload_bytes: payloadBytes,
      });
      return {
        $typeName: "raftkv.transport.v1.SnapshotAck",
        index: BigInt(meta.index),
        payloadBytes: BigInt(payloadBytes),
      };
    } catch (err) {
      // spoolSnapshot logs and counts its own failures (with the bytes it had received); the rest here.
      if (!spooling) this.snapshotStats.receiveFailed(err);
      if (!spooling)
        this.logger.warn("snapshot receive failed", {
          index: meta?.index,
          term: meta?.term,
          peer,
          payload_bytes: payloadBytes,
          kind: snapshotFailureKind(err),
          error: String(err),
        });
      throw err;
    } finally {
      // Stop reading a call we are done with (a no-op once it ended).
      if (!call.destroyed) call.destroy();
    }
  }
}
