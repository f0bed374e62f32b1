/**
 * The snapshot stream: how a snapshot travels from a leader to a follower, independent of the transport
 * that carries the bytes (a gRPC stream, the in-memory transport, a file). The sender frames the
 * payload; the receiver parses the frames from an arbitrary byte stream, verifies every piece, and tells
 * truncation ({@link SnapshotTruncatedError}), corruption ({@link SnapshotCorruptError}) and limits
 * ({@link SnapshotTooLargeError}, {@link ClusterIdMismatchError}) apart; {@link spoolSnapshot} adds the
 * file-system side (temp file, verify, fdatasync, rename, directory sync).
 *
 * Format, version 1 (all integers little-endian; u64 values must be at most 2^53 - 1). The stream is a
 * sequence of frames, each
 *
 *   type u8 | body length u32 | body
 *
 * in this order: one HEADER, zero or more DATA, one TRAILER, and nothing after it.
 *
 *   HEADER  (type 0x01) magic "RKSS", format version u16 = 1, cluster id length u16 + UTF-8 bytes,
 *           index u64, term u64, expected payload bytes i64 (-1: unknown),
 *           flags u8 (bit 0: confState.autoLeave; other bits zero),
 *           voters, learners, votersOutgoing, learnersNext: each count u32 + count × u64,
 *           CRC-32C u32 of the body bytes before it.
 *   DATA    (type 0x02) sequence number u32 (0, 1, 2, …), CRC-32C u32 of the payload, payload
 *           (1 to chunkBytes bytes; every chunk but the last is exactly chunkBytes long).
 *   TRAILER (type 0x03) total payload bytes u64, chunk count u32, CRC-32C u32 of the whole payload,
 *           CRC-32C u32 of the 16 body bytes before it.
 *
 * Every frame is checked as soon as its length is known, before its body is buffered: a length outside
 * the bounds of its type, a chunk that would pass `maxSnapshotBytes` or the announced size, is refused
 * at once, so the receiver holds at most one frame in memory.
 */
import type { RaftLogger } from "../raft/config.js";
import { silentLogger } from "../raft/config.js";
import type { ConfState, NodeId, SnapshotMetadata } from "../raft/types.js";
import { crc32c } from "../storage/crc32c.js";
import {
  SnapshotMissingError,
  SnapshotCorruptError as StoredSnapshotCorruptError,
} from "../storage/errors.js";
import type { FileHandle, FileSystem } from "../storage/fs.js";
import { ensureDurableDir, join } from "../storage/fs.js";
import {
  ClusterIdMismatchError,
  SnapshotCorruptError,
  type SnapshotStreamPart,
  SnapshotTooLargeError,
  SnapshotTruncatedError,
  TransportError,
} from "./errors.js";

export const SNAPSHOT_STREAM_VERSION = 1;
export const FRAME_HEADER = 0x01;
export const FRAME_DATA = 0x02;
export const FRAME_TRAILER = 0x03;
/** type u8 + body length u32. */
export const FRAME_PREFIX_BYTES = 5;
/** Sequence number + chunk CRC before a DATA frame's payload. */
export const DATA_OVERHEAD_BYTES = 8;
export const TRAILER_BODY_BYTES = 20;
/** Bounds a HEADER body: room for about 8000 node ids across the four lists. */
export const MAX_HEADER_BODY_BYTES = 64 * 1024;
export const MAX_CLUSTER_ID_BYTES = 1024;
const MAGIC = new Uint8Array([0x52, 0x4b, 0x53, 0x53]); // "RKSS"
/** magic, version, cluster id length, index, term, expected, flags, four empty lists, CRC. */
const MIN_HEADER_BODY_BYTES = 4 + 2 + 2 + 8 + 8 + 8 + 1 + 4 * 4 + 4;

export const SNAPSHOT_STREAM_DEFAULTS = {
  chunkBytes: 1024 * 1024,
  maxChunkBytes: 4 * 1024 * 1024,
  maxSnapshotBytes: 8 * 1024 * 1024 * 1024,
} as const;

/**
 * Running totals of snapshot transfers, kept by a transport for its engine's metrics: payload bytes as
 * they pass, transfers confirmed, and failures by kind ({@link snapshotFailureKind}).
 */
export class SnapshotStats {
  sent = 0;
  bytesSent = 0;
  readonly sendFailures = new Map<string, number>();
  received = 0;
  bytesReceived = 0;
  readonly receiveFailures = new Map<string, number>();

  sendFailed(err: unknown): void {
    const kind = snapshotFailureKind(err);
    this.sendFailures.set(kind, (this.sendFailures.get(kind) ?? 0) + 1);
  }

  receiveFailed(err: unknown): void {
    const kind = snapshotFailureKind(err);
    this.receiveFailures.set(kind, (this.receiveFailures.get(kind) ?? 0) + 1);
  }

  /** Counts one send's outcome. */
  async countSend(transfer: Promise<void>): Promise<void> {
    try {
      await transfer;
      this.sent++;
    } catch (err) {
      this.sendFailed(err);
      throw err;
    }
  }
}

const TWO_32 = 0x1_0000_0000;

function putU64(view: DataView, off: number, n: number): void {
  view.setUint32(off, n % TWO_32, true);
  view.setUint32(off + 4, Math.floor(n / TWO_32), true);
}

function checkCount(name: string, n: number, max = Number.MAX_SAFE_INTEGER): void {
  if (!Number.isSafeInteger(n) || n < 0 || n > max)
    throw new RangeError(`${name} must be an integer in [0, ${max}], got ${n}`);
}

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });

// ---- sender ----

export interface EncodeSnapshotOptions {
  /** Payload bytes per DATA frame (all but the last are exactly this long). Default 1 MiB. */
  chunkBytes?: number;
  /** The sender's cluster id; the receiver refuses a stream from another cluster. */
  clusterId: string;
  /** Total payload bytes when `data` is an iterable and the size is known in advance; -1 or absent: unknown. */
  expectedBytes?: number;
  logger?: RaftLogger;
  /** The receiving peer, for log lines. */
  peer?: NodeId;
  /** Payload bytes are added to `bytesSent` as they are framed. */
  stats?: SnapshotStats;
}

/** What a stream carried; the encoder's return value and {@link SnapshotStreamReceiver.end}'s result. */
export interface SnapshotStreamSummary {
  metadata: SnapshotMetadata;
  clusterId: string;
  payloadBytes: number;
  chunks: number;
  /** CRC-32C of the whole payload. */
  payloadCrc: number;
}

function frame(type: number, bodyBytes: number): { buf: Uint8Array; view: DataView } {
  const buf = new Uint8Array(FRAME_PREFIX_BYTES + bodyBytes);
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  view.setUint8(0, type);
  view.setUint32(1, bodyBytes, true);
  return { buf, view };
}

/** The HEADER frame (exported for tests and tools). */
export function encodeHeaderFrame(
  meta: SnapshotMetadata,
  clusterId: string,
  expectedBytes: number,
): Uint8Array {
  checkCount("index", meta.index);
  checkCount("term", meta.term);
  if (!(expectedBytes === -1 || (Number.isSafeInteger(expectedBytes) && expectedBytes >= 0)))
    throw new RangeError(`expectedBytes must be -1 or a non-negative integer, got ${expectedBytes}`);
  const id = encoder.encode(clusterId);
  if (id.length > MAX_CLUSTER_ID_BYTES)
    throw new RangeError(
      `clusterId is ${id.length} bytes in UTF-8, over the limit of ${MAX_CLUSTER_ID_BYTES}`,
    );
  const cs = meta.confState;
  const lists = [cs.voters, cs.learners, cs.votersOutgoing, cs.learnersNext];
  const ids = lists.reduce((n, l) => n + l.length, 0);
  const bodyBytes = MIN_HEADER_BODY_BYTES + id.length + 8 * ids;
  if (bodyBytes > MAX_HEADER_BODY_BYTES)
    throw new RangeError(`snapshot header would be ${bodyBytes} bytes, over ${MAX_HEADER_BODY_BYTES}`);
  const { buf, view } = frame(FRAME_HEADER, bodyBytes);
  let o = FRAME_PREFIX_BYTES;
  buf.set(MAGIC, o);
  o += 4;
  view.setUint16(o, SNAPSHOT_STREAM_VERSION, true);
  view.setUint16(o + 2, id.length, true);
  o += 4;
  buf.set(id, o);
  o += id.length;
  putU64(view, o, meta.index);
  putU64(view, o + 8, meta.term);
  view.setBigInt64(o + 16, BigInt(expectedBytes), true);
  view.setUint8(o + 24, cs.autoLeave ? 1 : 0);
  o += 25;
  for (const list of lists) {
    view.setUint32(o, list.length, true);
    o += 4;
    for (const n of list) {
      checkCount("node id", n);
      putU64(view, o, n);
      o += 8;
    }
  }
  view.setUint32(o, crc32c(buf, 0, FRAME_PREFIX_BYTES, o), true);
  return buf;
}

function encodeDataFrame(seq: number, chunk: Uint8Array): Uint8Array {
  const { buf, view } = frame(FRAME_DATA, DATA_OVERHEAD_BYTES + chunk.length);
  view.setUint32(FRAME_PREFIX_BYTES, seq, true);
  view.setUint32(FRAME_PREFIX_BYTES + 4, crc32c(chunk), true);
  buf.set(chunk, FRAME_PREFIX_BYTES + DATA_OVERHEAD_BYTES);
  return buf;
}

function encodeTrailerFrame(payloadBytes: number, chunks: number, payloadCrc: number): Uint8Array {
  const { buf, view } = frame(FRAME_TRAILER, TRAILER_BODY_BYTES);
  const o = FRAME_PREFIX_BYTES;
  putU64(view, o, payloadBytes);
  view.setUint32(o + 8, chunks, true);
  view.setUint32(o + 12, payloadCrc >>> 0, true);
  view.setUint32(o + 16, crc32c(buf, 0, o, o + 16), true);
  return buf;
}

async function* pieces(data: AsyncIterable<Uint8Array> | Uint8Array): AsyncGenerator<Uint8Array> {
  if (data instanceof Uint8Array) yield data;
  else yield* data;
}

/**
 * Frames a snapshot: yields the HEADER frame, DATA frames of exactly `chunkBytes` payload bytes (the
 * last may be shorter; an empty payload has none), then the TRAILER frame; each yielded array is one
 * whole frame, safe to keep (input buffers are copied, so the caller may reuse them). Returns what it
 * sent. Throws a {@link TransportError} if the source yields more or fewer bytes than `expectedBytes`.
 */
export async function* encodeSnapshotStream(
  meta: SnapshotMetadata,
  data: AsyncIterable<Uint8Array> | Uint8Array,
  opts: EncodeSnapshotOptions,
): AsyncGenerator<Uint8Array, SnapshotStreamSummary, undefined> {
  const chunkBytes = opts.chunkBytes ?? SNAPSHOT_STREAM_DEFAULTS.chunkBytes;
  checkCount("chunkBytes", chunkBytes, 0xffff_ffff - DATA_OVERHEAD_BYTES);
  if (chunkBytes === 0) throw new RangeError("chunkBytes must be at least 1");
  const expected = data instanceof Uint8Array ? data.length : (opts.expectedBytes ?? -1);
  if (data instanceof Uint8Array && opts.expectedBytes !== undefined && opts.expectedBytes !== expected)
    throw new RangeError(`expectedBytes ${opts.expectedBytes} differs from the payload's ${expected} bytes`);
  const logger = opts.logger ?? silentLogger;
  const fields = { index: meta.index, term: meta.term, peer: opts.peer };
  let seq = 0;
  let total = 0;
  let crc = 0;
  let outcome: "ok" | "error" | "abandoned" = "abandoned";
  const dataFrame = (chunk: Uint8Array): Uint8Array => {
    const f = encodeDataFrame(seq, chunk);
    seq++;
    total += chunk.length;
    if (opts.stats) opts.stats.bytesSent += chunk.length;
    crc = crc32c(chunk, crc);
    if (expected >= 0 && total > expected)
      throw new TransportError(
        `snapshot source yielded more than the ${expected} bytes it announced (expectedBytes); fix the state machine's size report`,
      );
    return f;
  };
  try {
    yield encodeHeaderFrame(meta, opts.clusterId, expected);
    let pending: Uint8Array | null = null;
    let fill = 0;
    for await (const piece of pieces(data)) {
      let off = 0;
      while (off < piece.length) {
        if (fill === 0 && piece.length - off >= chunkBytes) {
          yield dataFrame(piece.subarray(off, off + chunkBytes));
          off += chunkBytes;
          continue;
        }
        pending ??= new Uint8Array(chunkBytes);
        const n = Math.min(chunkBytes - fill, piece.length - off);
        pending.set(piece.subarray(off, off + n), fill);
        fill += n;
        off += n;
        if (fill === chunkBytes) {
          fill = 0;
          yield dataFrame(pending); // copied into the frame, so `pending` can be refilled
        }
      }
    }
    if (fill > 0) yield dataFrame(pending!.subarray(0, fill));
    if (expected >= 0 && total !== expected)
      throw new TransportError(
        `snapshot source yielded ${total} bytes but announced ${expected} (expectedBytes); fix the state machine's size report`,
      );
    yield encodeTrailerFrame(total, seq, crc);
    outcome = "ok";
    logger.info("snapshot stream sent", { ...fields, payload_bytes: total, chunks: seq });
    return {
      metadata: meta,
      clusterId: opts.clusterId,
      payloadBytes: total,
      chunks: seq,
      payloadCrc: crc >>> 0,
    };
  } catch (err) {
    outcome = "error";
    logger.warn("snapshot stream send failed", {
      ...fields,
      payload_bytes: total,
      chunks: seq,
      error: String(err),
    });
    throw err;
  } finally {
    if (outcome === "abandoned")
      logger.warn("snapshot stream abandoned by the transport", {
        ...fields,
        payload_bytes: total,
        chunks: seq,
      });
  }
}

// ---- receiver ----

export interface SnapshotStreamHeader {
  metadata: SnapshotMetadata;
  clusterId: string;
  /** Announced payload bytes, -1 when unknown. */
  expectedBytes: number;
  version: number;
}

export interface SnapshotReceiverOptions {
  /** This node's cluster id; a stream from another cluster is refused with {@link ClusterIdMismatchError}. */
  clusterId: string;
  /** Largest payload accepted. Default 8 GiB. */
  maxSnapshotBytes?: number;
  /** Largest DATA frame payload accepted (bounds the memory held for one frame). Default 4 MiB. */
  maxChunkBytes?: number;
  /** Called once the header has verified, before any payload (e.g. to open a spool file). */
  onHeader?: (header: SnapshotStreamHeader) => void | Promise<void>;
  /** Receives each verified payload chunk, in order, awaited before the next; it may keep the array. */
  sink?: (chunk: Uint8Array) => void | Promise<void>;
}

/**
 * Parses and verifies a snapshot stream fed in arbitrary slices: `await push(bytes)` for each slice,
 * one at a time, then `end()`. Any error is final: later calls rethrow it.
 */
export class SnapshotStreamReceiver {
  private readonly maxSnapshotBytes: number;
  private readonly maxChunkBytes: number;
  private readonly prefix = new Uint8Array(FRAME_PREFIX_BYTES);
  private prefixFill = 0;
  private body: Uint8Array | null = null;
  private bodyFill = 0;
  private frameType = 0;
  private frameStart = 0;
  private streamBytes = 0;
  private chunks = 0;
  private crc = 0;
  private received = 0;
  private parsed: SnapshotStreamHeader | null = null;
  private summary: SnapshotStreamSummary | null = null;
  private failure: unknown = null;
  private busy = false;

  constructor(private readonly opts: SnapshotReceiverOptions) {
    this.maxSnapshotBytes = opts.maxSnapshotBytes ?? SNAPSHOT_STREAM_DEFAULTS.maxSnapshotBytes;
    this.maxChunkBytes = opts.maxChunkBytes ?? SNAPSHOT_STREAM_DEFAULTS.maxChunkBytes;
    checkCount("maxSnapshotBytes", this.maxSnapshotBytes);
    checkCount("maxChunkBytes", this.maxChunkBytes, 0xffff_ffff - DATA_OVERHEAD_BYTES);
  }

  /** The verified header, once parsed. */
  get header(): SnapshotStreamHeader | null {
    return this.parsed;
  }

  /** Payload bytes verified and handed to the sink so far. */
  get receivedPayloadBytes(): number {
    return this.received;
  }

  /** Stream bytes (framing included) consumed so far. */
  get receivedStreamBytes(): number {
    return this.streamBytes;
  }

  /** True once the trailer has verified. */
  get complete(): boolean {
    return this.summary !== null;
  }

  async push(bytes: Uint8Array): Promise<void> {
    if (this.failure !== null) throw this.failure;
    if (this.busy) throw new Error("SnapshotStreamReceiver.push called before the previous push settled");
    this.busy = true;
    try {
      await this.consume(bytes);
    } catch (err) {
      this.failure = err;
      throw err;
    } finally {
      this.busy = false;
    }
  }

  /** Declares the stream over; returns what it carried, or throws {@link SnapshotTruncatedError}. */
  end(): SnapshotStreamSummary {
    if (this.failure !== null) throw this.failure;
    if (this.busy) throw new Error("SnapshotStreamReceiver.end called before the last push settled");
    if (this.summary !== null) return this.summary;
    const expected = this.parsed?.expectedBytes ?? -1;
    let missing: SnapshotStreamPart;
    if (this.parsed === null) missing = "header";
    else if (this.body !== null) missing = this.frameType === FRAME_TRAILER ? "trailer" : "chunk";
    else missing = expected >= 0 && this.received < expected ? "chunk" : "trailer";
    this.failure = new SnapshotTruncatedError(this.received, expected, missing, this.streamBytes);
    throw this.failure;
  }

  private async consume(bytes: Uint8Array): Promise<void> {
    let i = 0;
    while (i < bytes.length) {
      if (this.summary !== null)
        throw new SnapshotCorruptError(
          `${bytes.length - i} unexpected bytes after the trailer`,
          this.streamBytes,
        );
      if (this.body === null) {
        const n = Math.min(FRAME_PREFIX_BYTES - this.prefixFill, bytes.length - i);
        this.prefix.set(bytes.subarray(i, i + n), this.prefixFill);
        this.prefixFill += n;
        this.streamBytes += n;
        i += n;
        if (this.prefixFill < FRAME_PREFIX_BYTES) return;
        this.prefixFill = 0;
        this.frameStart = this.streamBytes - FRAME_PREFIX_BYTES;
        this.frameType = this.prefix[0]!;
        const length = new DataView(this.prefix.buffer).getUint32(1, true);
        this.checkFrame(this.frameType, length);
        this.body = new Uint8Array(length);
        this.bodyFill = 0;
      } else {
        const n = Math.min(this.body.length - this.bodyFill, bytes.length - i);
        this.body.set(bytes.subarray(i, i + n), this.bodyFill);
        this.bodyFill += n;
        this.streamBytes += n;
        i += n;
      }
      if (this.body.length === this.bodyFill) {
        const body = this.body;
        this.body = null;
        await this.handleFrame(this.frameType, body);
      }
    }
  }

  private corrupt(reason: string, offset = this.frameStart): SnapshotCorruptError {
    return new SnapshotCorruptError(reason, offset);
  }

  /** Bounds a frame by its prefix alone, before anything is buffered. */
  private checkFrame(type: number, length: number): void {
    if (this.parsed === null) {
      if (type !== FRAME_HEADER)
        throw this.corrupt(
          `the stream starts with frame type 0x${type.toString(16)}, not a header (not a raftkv snapshot stream?)`,
        );
      if (length < MIN_HEADER_BODY_BYTES || length > MAX_HEADER_BODY_BYTES)
        throw this.corrupt(
          `header frame length ${length} outside [${MIN_HEADER_BODY_BYTES}, ${MAX_HEADER_BODY_BYTES}]`,
        );
      return;
    }
    if (type === FRAME_DATA) {
      const payload = length - DATA_OVERHEAD_BYTES;
      if (payload < 1 || payload > this.maxChunkBytes)
        throw this.corrupt(
          `data frame length ${length}: payload of ${payload} bytes outside [1, ${this.maxChunkBytes}]: a damaged ` +
            "length, or a sender whose chunkBytes exceeds this node's maxChunkBytes",
        );
      const after = this.received + payload;
      if (after > this.maxSnapshotBytes) throw new SnapshotTooLargeError(this.maxSnapshotBytes, after);
      const expected = this.parsed.expectedBytes;
      if (expected >= 0 && after > expected)
        throw this.corrupt(
          `chunk ${this.chunks} would bring the payload to ${after} bytes, over the ${expected} announced`,
        );
      return;
    }
    if (type === FRAME_TRAILER) {
      if (length !== TRAILER_BODY_BYTES)
        throw this.corrupt(`trailer frame length ${length}, expected ${TRAILER_BODY_BYTES}`);
      return;
    }
    if (type === FRAME_HEADER) throw this.corrupt("a second header frame");
    throw this.corrupt(`unknown frame type 0x${type.toString(16)}`);
  }

  private async handleFrame(type: number, body: Uint8Array): Promise<void> {
    const view = new DataView(body.buffer, body.byteOffset, body.byteLength);
    if (type === FRAME_HEADER) {
      this.parsed = this.parseHeader(body, view);
      if (this.parsed.clusterId !== this.opts.clusterId)
        throw new ClusterIdMismatchError(this.opts.clusterId, this.parsed.clusterId);
      const expected = this.parsed.expectedBytes;
      if (expected > this.maxSnapshotBytes) throw new SnapshotTooLargeError(this.maxSnapshotBytes, expected);
      await this.opts.onHeader?.(this.parsed);
      return;
    }
    if (type === FRAME_DATA) {
      const seq = view.getUint32(0, true);
      if (seq !== this.chunks) throw this.corrupt(`chunk sequence number ${seq}, expected ${this.chunks}`);
      const payload = body.subarray(DATA_OVERHEAD_BYTES);
      const want = view.getUint32(4, true);
      const got = crc32c(payload);
      if (got !== want)
        throw this.corrupt(`chunk ${seq} checksum mismatch (stored 0x${hex(want)}, computed 0x${hex(got)})`);
      this.crc = crc32c(payload, this.crc);
      this.chunks++;
      this.received += payload.length;
      await this.opts.sink?.(payload);
      return;
    }
    // Trailer (checkFrame admits nothing else).
    const bodyCrc = view.getUint32(16, true);
    if (crc32c(body, 0, 0, 16) !== bodyCrc) throw this.corrupt("trailer checksum mismatch");
    const total = readU64(view, 0);
    const chunks = view.getUint32(8, true);
    const payloadCrc = view.getUint32(12, true);
    if (total !== this.received)
      throw this.corrupt(`trailer says ${total} payload bytes, ${this.received} were received`);
    if (chunks !== this.chunks)
      throw this.corrupt(`trailer says ${chunks} chunks, ${this.chunks} were received`);
    const expected = this.parsed!.expectedBytes;
    if (expected >= 0 && total !== expected)
      throw this.corrupt(`the header announced ${expected} payload bytes, the trailer ${total}`);
    if (payloadCrc !== this.crc >>> 0)
      throw this.corrupt(
        `whole-payload checksum mismatch (stored 0x${hex(payloadCrc)}, computed 0x${hex(this.crc)})`,
      );
    this.summary = {
      metadata: this.parsed!.metadata,
      clusterId: this.parsed!.clusterId,
      payloadBytes: total,
      chunks,
      payloadCrc,
    };
  }

  private parseHeader(body: Uint8Array, view: DataView): SnapshotStreamHeader {
    const end = body.length - 4;
    if (crc32c(body, 0, 0, end) !== view.getUint32(end, true)) {
      const magicOk = MAGIC.every((b, k) => body[k] === b);
      throw this.corrupt(magicOk ? "header checksum mismatch" : "bad magic (not a raftkv snapshot stream)");
    }
    if (!MAGIC.every((b, k) => body[k] === b)) throw this.corrupt("bad magic (not a raftkv snapshot stream)");
    const version = view.getUint16(4, true);
    if (version !== SNAPSHOT_STREAM_VERSION)
      throw this.corrupt(
        `format version ${version} is not supported (this node reads version ${SNAPSHOT_STREAM_VERSION}); upgrade the older node`,
      );
    const idLen = view.getUint16(6, true);
    let o = 8;
    const need = (n: number): void => {
      if (o + n > end) throw this.corrupt("header shorter than its fields");
    };
    need(idLen + 25);
    let clusterId: string;
    try {
      clusterId = decoder.decode(body.subarray(o, o + idLen));
    } catch {
      throw this.corrupt("cluster id is not valid UTF-8");
    }
    o += idLen;
    const index = readU64(view, o);
    const term = readU64(view, o + 8);
    const expectedBig = view.getBigInt64(o + 16, true);
    const flags = view.getUint8(o + 24);
    o += 25;
    if (index < 0 || term < 0) throw this.corrupt("index or term beyond 2^53 - 1");
    if (expectedBig < -1n || expectedBig > BigInt(Number.MAX_SAFE_INTEGER))
      throw this.corrupt(`expected payload bytes ${expectedBig} out of range`);
    if (flags & ~1) throw this.corrupt(`unknown header flags 0x${flags.toString(16)}`);
    const lists: NodeId[][] = [];
    for (let k = 0; k < 4; k++) {
      need(4);
      const count = view.getUint32(o, true);
      o += 4;
      need(count * 8);
      const list: NodeId[] = [];
      for (let j = 0; j < count; j++, o += 8) {
        const id = readU64(view, o);
        if (id < 0) throw this.corrupt("node id beyond 2^53 - 1");
        list.push(id);
      }
      lists.push(list);
    }
    if (o !== end) throw this.corrupt(`header has ${end - o} bytes after its fields`);
    const confState: ConfState = {
      voters: lists[0]!,
      learners: lists[1]!,
      votersOutgoing: lists[2]!,
      learnersNext: lists[3]!,
      autoLeave: (flags & 1) === 1,
    };
    return { metadata: { index, term, confState }, clusterId, expectedBytes: Number(expectedBig), version };
  }
}

/** A u64 as a number, or -1 when it is above 2^53 - 1. */
function readU64(view: DataView, off: number): number {
  const lo = view.getUint32(off, true);
  const hi = view.getUint32(off + 4, true);
  if (hi > 0x1f_ffff) return -1;
  return hi * TWO_32 + lo;
}

function hex(n: number): string {
  return (n >>> 0).toString(16).padStart(8, "0");
}

// ---- spooling to disk ----

export interface SpoolSnapshotOptions extends Omit<SnapshotReceiverOptions, "onHeader" | "sink"> {
  logger?: RaftLogger;
  /** Counts the outcome and the payload bytes received. */
  stats?: SnapshotStats;
  /** The snapshot the Snap message announced: logged when a stream fails before its header arrives. */
  announced?: { index: number; term: number };
  /** The sending peer, for log lines. */
  peer?: NodeId;
}

export interface SpooledSnapshot {
  metadata: SnapshotMetadata;
  /** The verified, fsynced payload file (payload bytes only; the metadata is returned here). */
  path: string;
  payloadBytes: number;
}

/**
 * Spool file names carry a number of their own per reception (in this process), so that two
 * receptions of one snapshot never share a file, and the failure of one never removes the other's.
 */
let receptions = 0;

/** Name of a spool file while it is being received. */
export function incomingSnapshotName(index: number, term: number, reception: number): string {
  return `incoming-${index}-${term}-${reception}.tmp`;
}

/** Name of a received snapshot's payload once it has verified and is durable. */
export function receivedSnapshotName(index: number, term: number, reception: number): string {
  return `received-${index}-${term}-${reception}.snap`;
}

const SPOOL_NAME = /^(incoming|received)-(\d+)-(\d+)-\d+\.(tmp|snap)$/;

/** The index and term a spool file name stands for, and whether it is complete; null for other names. */
export function parseSpoolName(name: string): { index: number; term: number; received: boolean } | null {
  const m = SPOOL_NAME.exec(name);
  if (m === null || (m[1] === "incoming") !== (m[4] === "tmp")) return null;
  return { index: Number(m[2]), term: Number(m[3]), received: m[1] === "received" };
}

/**
 * Removes what an earlier run left in a spool directory: receptions cut short by a crash
 * (`incoming-*.tmp`) and snapshots received but never installed (`received-*.snap`; the leader sends
 * again if it must). A transport calls this as it starts, before any snapshot can arrive.
 */
export async function sweepSpoolDir(
  fs: FileSystem,
  dir: string,
  logger: RaftLogger = silentLogger,
): Promise<void> {
  if (!fs.exists(dir)) return;
  for (const name of fs.readdir(dir)) {
    if (parseSpoolName(name) === null) continue;
    await fs.unlink(join(dir, name));
    logger.info("removed a snapshot spool file left by an earlier run", { file: join(dir, name) });
  }
}

/**
 * Classifies a failure for logs and metrics: truncated, corrupt, too-large, cluster-mismatch, io,
 * local-corrupt or missing (the sender's stored snapshot), or other.
 */
export function snapshotFailureKind(err: unknown): string {
  if (err instanceof SnapshotTruncatedError) return "truncated";
  if (err instanceof SnapshotCorruptError) return "corrupt";
  if (err instanceof SnapshotTooLargeError) return "too-large";
  if (err instanceof ClusterIdMismatchError) return "cluster-mismatch";
  // The sender's own snapshot file: damaged at rest, or replaced by a newer one meanwhile.
  if (err instanceof StoredSnapshotCorruptError) return "local-corrupt";
  if (err instanceof SnapshotMissingError) return "missing";
  if (typeof (err as { code?: unknown } | null)?.code === "string") return "io";
  return "other";
}

/**
 * Receives a snapshot stream into `dir/incoming-<index>-<term>.tmp`, verifies it whole, fdatasyncs it,
 * renames it to `dir/received-<index>-<term>.snap` and syncs the directory. On any failure the temp
 * file is removed (best effort) and the error rethrown as it came: a typed stream error, or the file
 * system's own error (with its `code`) for I/O. A final-named file therefore always verified.
 */
export async function spoolSnapshot(
  fs: FileSystem,
  dir: string,
  stream: AsyncIterable<Uint8Array>,
  opts: SpoolSnapshotOptions,
): Promise<SpooledSnapshot> {
  const logger = opts.logger ?? silentLogger;
  let handle: FileHandle | null = null;
  let tmpPath: string | null = null;
  let position = 0;
  const reception = ++receptions;
  const receiver = new SnapshotStreamReceiver({
    ...opts,
    onHeader: (h) => {
      tmpPath = join(dir, incomingSnapshotName(h.metadata.index, h.metadata.term, reception));
      handle = fs.create(tmpPath);
    },
    sink: async (chunk) => {
      await handle!.write(chunk, position);
      position += chunk.length;
    },
  });
  try {
    await ensureDurableDir(fs, dir);
    for await (const piece of stream) await receiver.push(piece);
    const summary = receiver.end();
    const { index, term } = summary.metadata;
    // An empty payload has no chunks, but onHeader still created the (empty) file.
    const h = handle as FileHandle | null;
    if (h === null || tmpPath === null)
      throw new Error("snapshot spool invariant: no temp file after the header");
    await h.datasync();
    await h.close();
    handle = null;
    const finalPath = join(dir, receivedSnapshotName(index, term, reception));
    await fs.rename(tmpPath, finalPath);
    tmpPath = null;
    try {
      await fs.syncDir(dir);
    } catch (err) {
      // Not durable: the final name must not stay behind for a restart to trust.
      await fs.unlink(finalPath).catch(() => undefined);
      throw err;
    }
    if (opts.stats) {
      opts.stats.received++;
      opts.stats.bytesReceived += summary.payloadBytes;
    }
    logger.info("snapshot received", {
      index,
      term,
      peer: opts.peer,
      payload_bytes: summary.payloadBytes,
      chunks: summary.chunks,
      path: finalPath,
    });
    return { metadata: summary.metadata, path: finalPath, payloadBytes: summary.payloadBytes };
  } catch (err) {
    const open = handle as FileHandle | null;
    if (open !== null) await open.close().catch(() => undefined);
    const tmp = tmpPath as string | null;
    if (tmp !== null && fs.exists(tmp)) await fs.unlink(tmp).catch(() => undefined);
    if (opts.stats) {
      opts.stats.receiveFailed(err);
      opts.stats.bytesReceived += receiver.receivedPayloadBytes;
    }
    logger.warn("snapshot receive failed", {
      index: receiver.header?.metadata.index ?? opts.announced?.index,
      term: receiver.header?.metadata.term ?? opts.announced?.term,
      peer: opts.peer,
      payload_bytes: receiver.receivedPayloadBytes,
      expected_bytes: receiver.header?.expectedBytes,
      kind: snapshotFailureKind(err),
      error: String(err),
    });
    throw err;
  }
}
