/**
 * The bytes of the write-ahead log.
 *
 * A segment file is a sequence of frames, one per write (a group commit of one or more batches):
 *
 *   frame  = u32 payloadLength | u32 crc32c(payload) | u32 headerCheck | payload
 *   headerCheck = crc32c(first 8 bytes, seeded with crc32c(f64 segment sequence | f64 frame offset)) ^ salt
 *   payload = record*
 *   record  = u8 kind | body
 *     ENTRIES    f64 firstIndex | f64 term | u32 count | count × (u8 entryType | u32 dataLength | data)
 *     HARD_STATE f64 term | f64 vote | f64 commit
 *     SNAPSHOT   f64 index | f64 term | confState
 *     SEGMENT    u32 magic | u16 version | f64 sequence        (first record of every segment)
 *   confState = 4 × (u16 count | count × f64 id) | u8 autoLeave   (voters, learners, outgoing, next)
 *
 * Little-endian. Indexes, terms and ids are safe integers stored as float64 (exact below 2^53). The
 * header carries its own checksum so that a torn or garbage header is recognised as such, and a write
 * is exactly one frame, so a frame that fails its checksums can only be the tail of the log when no
 * valid frame follows it. The header check is bound to the frame's place (segment and offset): bytes
 * that form a valid frame elsewhere — say, a client's value holding a copy of one — do not verify here,
 * so they are never mistaken for a later write when the tail is torn.
 */
import type { ConfState, Entry, EntryType, HardState } from "../raft/types.js";
import { crc32c } from "./crc32c.js";

export const FRAME_HEADER_BYTES = 12;
const HEADER_SALT = 0x52_4b_56_57; // "RKVW"
export const SEGMENT_MAGIC = 0x52_4b_56_4c; // "RKVL"
export const FORMAT_VERSION = 2;

/** Record kinds. `Entry` is what the reader reports for each entry of an ENTRIES record. */
export const RecordKind = { Entry: 1, HardState: 2, Snapshot: 3, Segment: 4 } as const;

/** Fixed bytes of an ENTRIES record (consecutive entries of one term) before its entries. */
export const ENTRIES_RECORD_HEADER_BYTES = 1 + 8 + 8 + 4;
/** Fixed bytes of each entry inside an ENTRIES record, before its data. */
export const ENTRY_HEADER_BYTES = 1 + 4;

const HARD_STATE_RECORD_BYTES = 1 + 24;
const SEGMENT_RECORD_BYTES = 1 + 4 + 2 + 8;

export function confStateBytes(cs: ConfState): number {
  return (
    4 * 2 +
    8 * (cs.voters.length + cs.learners.length + cs.votersOutgoing.length + cs.learnersNext.length) +
    1
  );
}

export function hardStateRecordBytes(): number {
  return HARD_STATE_RECORD_BYTES;
}

export function snapshotRecordBytes(cs: ConfState): number {
  return 1 + 16 + confStateBytes(cs);
}

export function segmentRecordBytes(): number {
  return SEGMENT_RECORD_BYTES;
}

/** Writes records into a payload buffer sized in advance. */
export class RecordWriter {
  private readonly view: DataView;
  pos = 0;

  constructor(readonly buf: Buffer) {
    this.view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  }

  /** Writes consecutive entries as ENTRIES records, one per run of equal terms. */
  entries(entries: readonly Entry[]): void {
    const v = this.view;
    const buf = this.buf;
    let p = this.pos;
    let countAt = -1;
    let count = 0;
    let term = -1;
    for (let i = 0; i < entries.length; i++) {
      const e = entries[i]!;
      if (e.term !== term) {
        if (countAt >= 0) v.setUint32(countAt, count, true);
        term = e.term;
        buf[p] = RecordKind.Entry;
        v.setFloat64(p + 1, e.index, true);
        v.setFloat64(p + 9, term, true);
        countAt = p + 17;
        count = 0;
        p += ENTRIES_RECORD_HEADER_BYTES;
      }
      const len = e.data.byteLength;
      buf[p] = e.type;
      v.setUint32(p + 1, len, true);
      p += ENTRY_HEADER_BYTES;
      buf.set(e.data, p);
      p += len;
      count++;
    }
    if (countAt >= 0) v.setUint32(countAt, count, true);
    this.pos = p;
  }

  hardState(hs: HardState): void {
    const v = this.view;
    const p = this.pos;
    v.setUint8(p, RecordKind.HardState);
    v.setFloat64(p + 1, hs.term, true);
    v.setFloat64(p + 9, hs.vote, true);
    v.setFloat64(p + 17, hs.commit, true);
    this.pos = p + HARD_STATE_RECORD_BYTES;
  }

  snapshot(index: number, term: number, cs: ConfState): void {
    const v = this.view;
    let p = this.pos;
    v.setUint8(p, RecordKind.Snapshot);
    v.setFloat64(p + 1, index, true);
    v.setFloat64(p + 9, term, true);
    p += 17;
    for (const ids of [cs.voters, cs.learners, cs.votersOutgoing, cs.learnersNext]) {
      v.setUint16(p, ids.length, true);
      p += 2;
      for (const id of ids) {
        v.setFloat64(p, id, true);
        p += 8;
      }
    }
    v.setUint8(p, cs.autoLeave ? 1 : 0);
    this.pos = p + 1;
  }

  segment(sequence: number): void {
    const v = this.view;
    const p = this.pos;
    v.setUint8(p, RecordKind.Segment);
    v.setUint32(p + 1, SEGMENT_MAGIC, true);
    v.setUint16(p + 5, FORMAT_VERSION, true);
    v.setFloat64(p + 7, sequence, true);
    this.pos = p + SEGMENT_RECORD_BYTES;
  }
}

/** Fills in the header of a frame whose payload occupies buf[12, 12 + length). */
export function sealFrame(buf: Buffer, payloadLength: number, sequence: number, fileOffset: number): void {
  buf.writeUInt32LE(payloadLength, 0);
  buf.writeUInt32LE(crc32c(buf, 0, FRAME_HEADER_BYTES, FRAME_HEADER_BYTES + payloadLength), 4);
  buf.writeUInt32LE(headerCheck(buf, 0, sequence, fileOffset), 8);
}

const placeBytes = new Uint8Array(16);
const placeView = new DataView(placeBytes.buffer);

function headerCheck(buf: Uint8Array, pos: number, sequence: number, fileOffset: number): number {
  placeView.setFloat64(0, sequence, true);
  placeView.setFloat64(8, fileOffset, true);
  return (crc32c(buf, crc32c(placeBytes), pos, pos + 8) ^ HEADER_SALT) >>> 0;
}

export type FrameCheck = { ok: true; payloadStart: number; end: number } | { ok: false; reason: string };

/**
 * Checks the frame at `pos` of `buf`, which sits at `fileOffset` of segment `sequence` (the same as
 * `pos` when `buf` is the whole segment).
 */
export function checkFrame(
  buf: Uint8Array,
  pos: number,
  maxPayloadBytes: number,
  sequence: number,
  fileOffset = pos,
): FrameCheck {
  if (buf.byteLength - pos < FRAME_HEADER_BYTES) return { ok: false, reason: "truncated frame header" };
  const view = new DataView(buf.buffer, buf.byteOffset + pos, FRAME_HEADER_BYTES);
  const length = view.getUint32(0, true);
  const crc = view.getUint32(4, true);
  const headerCrc = view.getUint32(8, true);
  if (headerCheck(buf, pos, sequence, fileOffset) !== headerCrc) {
    return { ok: false, reason: "frame header checksum mismatch" };
  }
  if (length > maxPayloadBytes) return { ok: false, reason: `frame length ${length} over the limit` };
  const payloadStart = pos + FRAME_HEADER_BYTES;
  const end = payloadStart + length;
  if (end > buf.byteLength) return { ok: false, reason: "truncated frame payload" };
  if (crc32c(buf, 0, payloadStart, end) !== crc)
    return { ok: false, reason: "frame payload checksum mismatch" };
  return { ok: true, payloadStart, end };
}

/** Whether any valid frame starts after `pos`: tells a torn tail from damage before the tail. */
export function validFrameAfter(
  buf: Uint8Array,
  pos: number,
  maxPayloadBytes: number,
  sequence: number,
): number {
  for (let q = pos + 1; q + FRAME_HEADER_BYTES <= buf.byteLength; q++) {
    if (checkFrame(buf, q, maxPayloadBytes, sequence).ok) return q;
  }
  return -1;
}

export type WalRecord =
  | {
      kind: typeof RecordKind.Entry;
      /** Where the ENTRIES record holding this entry starts. */
      recordStart: number;
      index: number;
      term: number;
      type: EntryType;
      dataStart: number;
      dataLength: number;
    }
  | { kind: typeof RecordKind.HardState; hardState: HardState }
  | { kind: typeof RecordKind.Snapshot; index: number; term: number; confState: ConfState }
  | { kind: typeof RecordKind.Segment; sequence: number };

export class MalformedRecordError extends Error {}

/** Decodes the records of a verified frame payload buf[start, end). Offsets are relative to `buf`. */
export function readRecords(
  buf: Uint8Array,
  start: number,
  end: number,
  visit: (r: WalRecord) => void,
): void {
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  let p = start;
  const need = (n: number) => {
    if (p + n > end) throw new MalformedRecordError(`record overruns its frame at ${p}`);
  };
  const safeInt = (x: number, what: string) => {
    if (!Number.isSafeInteger(x) || x < 0) throw new MalformedRecordError(`bad ${what} ${x} at ${p}`);
    return x;
  };
  while (p < end) {
    const kind = view.getUint8(p);
    if (kind === RecordKind.Entry) {
      const recordStart = p;
      need(ENTRIES_RECORD_HEADER_BYTES);
      const first = safeInt(view.getFloat64(p + 1, true), "index");
      const term = safeInt(view.getFloat64(p + 9, true), "term");
      const count = view.getUint32(p + 17, true);
      if (count === 0) throw new MalformedRecordError(`empty entries record at ${p}`);
      p += ENTRIES_RECORD_HEADER_BYTES;
      for (let k = 0; k < count; k++) {
        need(ENTRY_HEADER_BYTES);
        const type = view.getUint8(p);
        if (type > 1) throw new MalformedRecordError(`bad entry type ${type} at ${p}`);
        const dataLength = view.getUint32(p + 1, true);
        p += ENTRY_HEADER_BYTES;
        need(dataLength);
        visit({
          kind,
          recordStart,
          index: safeInt(first + k, "index"),
          term,
          type: type as EntryType,
          dataStart: p,
          dataLength,
        });
        p += dataLength;
      }
    } else if (kind === RecordKind.HardState) {
      need(HARD_STATE_RECORD_BYTES);
      const hardState = {
        term: safeInt(view.getFloat64(p + 1, true), "term"),
        vote: safeInt(view.getFloat64(p + 9, true), "vote"),
        commit: safeInt(view.getFloat64(p + 17, true), "commit"),
      };
      p += HARD_STATE_RECORD_BYTES;
      visit({ kind, hardState });
    } else if (kind === RecordKind.Snapshot) {
      need(17);
      const index = safeInt(view.getFloat64(p + 1, true), "snapshot index");
      const term = safeInt(view.getFloat64(p + 9, true), "snapshot term");
      p += 17;
      const lists: number[][] = [];
      for (let k = 0; k < 4; k++) {
        need(2);
        const n = view.getUint16(p, true);
        p += 2;
        need(8 * n);
        const ids: number[] = [];
        for (let i = 0; i < n; i++, p += 8) ids.push(safeInt(view.getFloat64(p, true), "node id"));
        lists.push(ids);
      }
      need(1);
      const autoLeave = view.getUint8(p) === 1;
      p += 1;
      const [voters, learners, votersOutgoing, learnersNext] = lists as [
        number[],
        number[],
        number[],
        number[],
      ];
      visit({ kind, index, term, confState: { voters, learners, votersOutgoing, learnersNext, autoLeave } });
    } else if (kind === RecordKind.Segment) {
      need(SEGMENT_RECORD_BYTES);
      if (view.getUint32(p + 1, true) !== SEGMENT_MAGIC) throw new MalformedRecordError("bad segment magic");
      const version = view.getUint16(p + 5, true);
      if (version !== FORMAT_VERSION)
        throw new MalformedRecordError(`unsupported WAL format version ${version}`);
      const sequence = safeInt(view.getFloat64(p + 7, true), "segment sequence");
      p += SEGMENT_RECORD_BYTES;
      visit({ kind, sequence });
    } else {
      throw new MalformedRecordError(`unknown record kind ${kind} at ${p}`);
    }
  }
}

export function segmentName(sequence: number, firstIndex: number): string {
  return `${sequence.toString(16).padStart(16, "0")}-${firstIndex.toString(16).padStart(16, "0")}.wal`;
}

export function parseSegmentName(name: string): { sequence: number; firstIndex: number } | null {
  const m = /^([0-9a-f]{16})-([0-9a-f]{16})\.wal$/.exec(name);
  if (!m) return null;
  return { sequence: Number.parseInt(m[1]!, 16), firstIndex: Number.parseInt(m[2]!, 16) };
}
