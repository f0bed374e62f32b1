import { type RaftLogger, silentLogger } from "../raft/config.js";
import { CompactedError, UnavailableError } from "../raft/errors.js";
import {
  type ConfState,
  EMPTY_HARD_STATE,
  type Entry,
  type HardState,
  type SnapshotMetadata,
} from "../raft/types.js";
import { BufferPool } from "./buffer-pool.js";
import { WalClosedError, WalCorruptError, WalFailedError, WalLimitError } from "./errors.js";
import { ensureDurableDir, type FileHandle, type FileSystem, join } from "./fs.js";
import {
  checkFrame,
  ENTRIES_RECORD_HEADER_BYTES,
  ENTRY_HEADER_BYTES,
  FRAME_HEADER_BYTES,
  hardStateRecordBytes,
  MalformedRecordError,
  parseSegmentName,
  RecordKind,
  RecordWriter,
  readRecords,
  sealFrame,
  segmentName,
  segmentRecordBytes,
  snapshotRecordBytes,
  validFrameAfter,
  type WalRecord,
} from "./wal-format.js";
import { EntryIndex, type Run } from "./wal-index.js";

export interface WalOptions {
  fs: FileSystem;
  dir: string;
  /** A new segment is started once the current one reaches this size. */
  segmentBytes?: number;
  /** Largest payload of one entry. */
  maxEntryBytes?: number;
  /** Largest frame (one write): bounds a batch, and what recovery will believe a length field. */
  maxFrameBytes?: number;
  /** Recently appended entries kept in memory; older ones are read back from their segment. */
  tailCacheBytes?: number;
  /**
   * Cut the log at the first damaged frame even when it is not the tail, discarding everything after
   * it. Off by default: damage before the tail means acknowledged data is gone, which an operator must
   * decide about (the node may then need a snapshot from the leader).
   */
  repair?: boolean;
  logger?: RaftLogger;
}

/**
 * What recovery accepts as a frame length: anything the header checksum vouches for and the file holds.
 * The configured maxFrameBytes bounds what is written, and may have been lowered since.
 */
const RECOVERY_FRAME_LIMIT = 0xffff_ffff;

export const WAL_DEFAULTS = {
  segmentBytes: 64 * 1024 * 1024,
  maxEntryBytes: 64 * 1024 * 1024,
  maxFrameBytes: 512 * 1024 * 1024,
  // Enough for applying and for briefly lagging followers; a larger tail keeps more entry objects alive
  // into the old generation and costs more in garbage collection than it saves in reads (bench:wal).
  tailCacheBytes: 16 * 1024 * 1024,
};

/** A snapshot the log was told about: entries up to it may be released. */
export interface SnapshotMarker {
  readonly index: number;
  readonly term: number;
  readonly confState: ConfState;
}

interface Segment {
  readonly sequence: number;
  readonly name: string;
  readonly path: string;
  handle: FileHandle | null;
  /** Whether the file exists on disk (a planned segment is created by the flusher). */
  created: boolean;
  /** Bytes planned for this segment: written, in flight, or queued. */
  plannedEnd: number;
  /** Highest entry index stored in this segment (0 if none). */
  maxIndex: number;
  /** Its first frame (restating hard state and marker) and its name are durable. */
  headerDurable: boolean;
}

interface Waiter {
  resolve(): void;
  reject(err: unknown): void;
}

/** Write buffers are recycled once written: a steady stream of batches then allocates nothing large. */
const pool = new BufferPool();

/** A buffer for `size` bytes of records, behind room for the frame header. */
function newPart(size: number): Buffer {
  return pool.take(FRAME_HEADER_BYTES + size);
}

/** The bytes of one upcoming write: payload parts of one or more batches, committed by one fdatasync. */
interface Group {
  readonly segment: Segment;
  readonly start: number;
  readonly parts: Buffer[];
  bytes: number;
  readonly waiters: Waiter[];
  /** The segment's first write: the file must be created and its directory synced. */
  readonly createsSegment: boolean;
  /** The entry runs this write carries, released to the index once written. */
  readonly runs: Run<Segment>[];
}

/**
 * The write-ahead log: entries, hard state and snapshot markers in CRC-framed segment files.
 *
 * Appends are group-committed: every append made while a write is in flight joins the next write,
 * and all of them are acknowledged by that write's single fdatasync. The in-memory index is updated
 * when an append is made, so the log reads back what was appended at once; the promise says when it is
 * durable. After any I/O error the log is failed: that append and every later one reject with
 * WalFailedError, and nothing unsynced is ever reported durable.
 */
export class Wal {
  private readonly fs: FileSystem;
  private readonly dir: string;
  private readonly segmentBytes: number;
  private readonly maxEntryBytes: number;
  private readonly maxFrameBytes: number;
  private readonly tailCacheBytes: number;
  private readonly logger: RaftLogger;

  private segments: Segment[] = [];
  private hs: HardState = EMPTY_HARD_STATE;
  private marker: SnapshotMarker | null = null;

  /** Where each entry is, its term, and the recent tail in memory. */
  private readonly index: EntryIndex<Segment>;

  private open: Group | null = null;
  private readonly sealed: Group[] = [];
  private flushing: Promise<void> | null = null;
  private failure: WalFailedError | null = null;
  private closing: Promise<void> | null = null;
  private closed = false;
  /** A purge under way: close() waits for it. */
  private purging: Promise<void> = Promise.resolve();
  /** Counters, for metrics and tests. */
  readonly stats = { writes: 0, syncs: 0, bytesWritten: 0, appends: 0 };
  /** Told how long each fdatasync took, in seconds (for a latency histogram). */
  onSync: ((seconds: number) => void) | null = null;

  private constructor(o: WalOptions) {
    this.fs = o.fs;
    this.dir = o.dir;
    this.segmentBytes = o.segmentBytes ?? WAL_DEFAULTS.segmentBytes;
    this.maxEntryBytes = o.maxEntryBytes ?? WAL_DEFAULTS.maxEntryBytes;
    this.maxFrameBytes = o.maxFrameBytes ?? WAL_DEFAULTS.maxFrameBytes;
    this.tailCacheBytes = o.tailCacheBytes ?? WAL_DEFAULTS.tailCacheBytes;
    this.logger = o.logger ?? silentLogger;
    this.index = new EntryIndex<Segment>(this.tailCacheBytes, (seg, start, end) =>
      this.readFrame(seg, start, end),
    );
  }

  /** Opens (creating if needed) the log in `dir`, recovering from a torn tail. */
  static async open(o: WalOptions): Promise<Wal> {
    const wal = new Wal(o);
    await wal.recover(o.repair ?? false);
    return wal;
  }

  // ------------------------------------------------------------------ reading

  get hardState(): HardState {
    return this.hs;
  }

  get snapshotMarker(): SnapshotMarker | null {
    return this.marker;
  }

  /** The lowest index whose entry the log holds (entries below were released or never written). */
  firstIndex(): number {
    return this.index.firstIndex();
  }

  /** The highest index held, or firstIndex()-1 when empty. */
  lastIndex(): number {
    return this.index.lastIndex();
  }

  /** The term of entry i, or the marker's term at its index; undefined if the log does not hold i. */
  termOf(i: number): number | undefined {
    const t = this.index.termOf(i);
    if (t !== undefined) return t;
    if (this.marker && i === this.marker.index) return this.marker.term;
    return undefined;
  }

  /** Entries in [lo, hi), at most maxBytes (counted as raft counts them) but at least one. */
  entries(lo: number, hi: number, maxBytes: number): Entry[] {
    if (lo < this.index.firstIndex()) throw new CompactedError(lo, this.index.firstIndex());
    if (hi > this.lastIndex() + 1) throw new UnavailableError(hi - 1);
    if (lo >= hi) return [];
    return this.index.entries(lo, hi, maxBytes);
  }

  /** Reads a whole frame back and verifies it: bytes damaged since they were written are never served. */
  private readFrame(seg: Segment, frameStart: number, frameEnd: number): Uint8Array {
    if (this.closed) throw new WalClosedError();
    if (this.failure) throw this.failure;
    const length = frameEnd - frameStart;
    const buf = Buffer.allocUnsafe(length);
    let n: number;
    try {
      const handle = seg.handle ?? this.reopen(seg);
      n = handle.readSync(buf, 0, length, frameStart);
    } catch (err) {
      throw this.fail(err);
    }
    const check =
      n === length
        ? checkFrame(buf, 0, RECOVERY_FRAME_LIMIT, seg.sequence, frameStart)
        : ({ ok: false, reason: `short read: ${n} of ${length} bytes` } as const);
    if (!check.ok) {
      const corrupt = new WalCorruptError(seg.name, frameStart, `read back: ${check.reason}`);
      this.fail(corrupt);
      throw corrupt;
    }
    return buf;
  }

  private reopen(seg: Segment): FileHandle {
    if (this.closed) throw new WalClosedError();
    seg.handle = this.fs.open(seg.path);
    return seg.handle;
  }

  // ------------------------------------------------------------------ writing

  /**
   * Appends entries (replacing any suffix they overlap, as raft requires) and/or a hard state. Resolves
   * once they are durable. Callers append in order; each append sees the effects of the previous ones.
   * The log keeps `entries` in its memory tail by reference: the array must not change afterwards.
   */
  append(entries: readonly Entry[], hardState: HardState | null = null): Promise<void> {
    if (this.closing) return Promise.reject(new WalClosedError());
    if (this.failure) return Promise.reject(this.failure);
    if (entries.length === 0 && !hardState) return this.sync();
    // One pass for the limit check, the payload and the record count (a record per run of one term).
    let payload = 0;
    let records = 0;
    let term = -1;
    for (let i = 0; i < entries.length; i++) {
      const e = entries[i]!;
      if (e.data.byteLength > this.maxEntryBytes) {
        return Promise.reject(
          new WalLimitError(
            `entry ${e.index} has ${e.data.byteLength} bytes, over maxEntryBytes ${this.maxEntryBytes}`,
          ),
        );
      }
      payload += e.data.byteLength;
      if (e.term !== term) {
        records++;
        term = e.term;
      }
    }
    const size =
      (hardState ? hardStateRecordBytes() : 0) +
      records * ENTRIES_RECORD_HEADER_BYTES +
      entries.length * ENTRY_HEADER_BYTES +
      payload;
    if (entries.length > 0) {
      const first = entries[0]!.index;
      if (first > this.lastIndex() + 1) {
        return Promise.reject(
          new WalLimitError(`append at ${first} would leave a gap after last index ${this.lastIndex()}`),
        );
      }
      if (first < this.firstIndex()) {
        return Promise.reject(
          new WalLimitError(`append at ${first} is below the first index ${this.firstIndex()}`),
        );
      }
    }
    if (size + FRAME_HEADER_BYTES > this.maxFrameBytes) {
      return Promise.reject(
        new WalLimitError(`batch of ${size} bytes is over maxFrameBytes ${this.maxFrameBytes}`),
      );
    }

    const part = newPart(size);
    const w = new RecordWriter(part);
    w.pos = FRAME_HEADER_BYTES;
    const group = this.groupFor(size, entries.length > 0 ? entries[0]!.index : this.lastIndex() + 1);
    // Where this part's bytes will sit in the segment file (its own header room is not written).
    const partOffset = group.start + group.bytes;
    if (entries.length > 0) {
      this.index.truncateFrom(entries[0]!.index);
      w.entries(entries);
      group.runs.push(
        this.index.appendRun(
          entries,
          payload,
          group.segment,
          partOffset + FRAME_HEADER_BYTES,
          partOffset + w.pos,
          group.start,
        ),
      );
      group.segment.maxIndex = Math.max(group.segment.maxIndex, this.lastIndex());
    }
    if (hardState) {
      w.hardState(hardState);
      this.hs = hardState;
    }
    this.stats.appends++;
    return this.enqueue(group, part);
  }

  /**
   * Records that a snapshot at (index, term) is durable. If the log holds that entry, the entries after
   * it stay (a local snapshot); otherwise the whole log is replaced by the snapshot (one installed from
   * the leader), exactly as raft's restore does. Entries are not released here: see releaseBefore.
   */
  recordSnapshot(meta: SnapshotMetadata, hardState: HardState | null = null): Promise<void> {
    if (this.closing) return Promise.reject(new WalClosedError());
    if (this.failure) return Promise.reject(this.failure);
    const size = snapshotRecordBytes(meta.confState) + (hardState ? hardStateRecordBytes() : 0);
    const part = newPart(size);
    const w = new RecordWriter(part);
    w.pos = FRAME_HEADER_BYTES;
    const group = this.groupFor(size, meta.index + 1);
    w.snapshot(meta.index, meta.term, meta.confState);
    this.applyMarker({ index: meta.index, term: meta.term, confState: meta.confState });
    if (hardState) {
      w.hardState(hardState);
      this.hs = hardState;
    }
    return this.enqueue(group, part);
  }

  /** Resolves once everything appended so far is durable. */
  sync(): Promise<void> {
    if (this.failure) return Promise.reject(this.failure);
    const pending = this.open ?? this.sealed[this.sealed.length - 1];
    if (!pending) {
      if (!this.flushing) return Promise.resolve();
      return this.flushing.then(() => {
        if (this.failure) throw this.failure;
      });
    }
    return new Promise<void>((resolve, reject) => pending.waiters.push({ resolve, reject }));
  }

  /**
   * Releases entries below `index` from memory and deletes segments that hold nothing at or after it.
   * Callers pass the index after the oldest snapshot they keep, so that recovery can fall back to it.
   */
  async releaseBefore(index: number): Promise<void> {
    // Never past the snapshot: the entries after it are the only copy.
    index = Math.min(index, (this.marker?.index ?? 0) + 1);
    this.index.releaseBefore(index);
    // Purge even when nothing was released: after a snapshot installed from the leader the index
    // was reset, but the segments of the replaced log are still on disk.
    await this.purgeSegments(index);
  }

  private purgeSegments(index: number): Promise<void> {
    // One purge at a time; close() waits for the last.
    const run = this.purging.then(() => this.purgeSegmentsNow(index));
    this.purging = run.catch(() => {});
    return run;
  }

  private async purgeSegmentsNow(index: number): Promise<void> {
    // Only whole segments before the last one, with nothing in flight, and never the one holding the
    // snapshot's own entry (index - 1): recovery replays a snapshot record whose entry is below the log
    // it holds as one the log held. The marker must be durable before anything it covers is deleted.
    await this.sync();
    const removable: Segment[] = [];
    for (let k = 0; k < this.segments.length - 1; k++) {
      const seg = this.segments[k]!;
      const firstLive = this.index.firstSource();
      if (!seg.created || seg.maxIndex >= index - 1 || (firstLive && firstLive.sequence <= seg.sequence))
        break;
      if (this.sealed.some((g) => g.segment === seg) || this.open?.segment === seg) break;
      // The next segment restates the hard state and marker: only once that is durable may this go.
      if (!this.segments[k + 1]!.headerDurable) break;
      removable.push(seg);
    }
    if (removable.length === 0) return;
    // Claim them before the first await, so that a purge running concurrently does not pick them too.
    this.segments = this.segments.filter((s) => !removable.includes(s));
    try {
      for (const seg of removable) {
        await seg.handle?.close();
        seg.handle = null;
        await this.fs.unlink(seg.path);
      }
      await this.fs.syncDir(this.dir);
    } catch (err) {
      throw this.fail(err);
    }
    this.logger.info("WAL segments purged", {
      count: removable.length,
      before: index,
      kept: this.segments.length,
    });
  }

  async close(): Promise<void> {
    if (this.closing) return this.closing;
    // Refuse new appends first, then let the writes already accepted finish.
    this.closing = (async () => {
      while (this.flushing) {
        await this.flushing;
      }
      await this.purging;
      this.closed = true;
      for (const seg of this.segments) {
        await seg.handle?.close().catch(() => {});
        seg.handle = null;
      }
    })();
    return this.closing;
  }

  get segmentCount(): number {
    return this.segments.length;
  }

  // ------------------------------------------------------------------ group commit internals

  /** The group a payload of `size` bytes joins, starting a new segment first if this one is full. */
  private groupFor(size: number, nextIndex: number): Group {
    let g = this.open;
    if (g && g.bytes > 0) {
      const overSegment = g.start + FRAME_HEADER_BYTES + g.bytes + size > this.segmentBytes;
      // A group is one frame: it must stay within what recovery will read as one.
      const overFrame = FRAME_HEADER_BYTES + g.bytes + size > this.maxFrameBytes;
      if (overSegment || overFrame) {
        this.seal(g);
        g = null;
      }
    }
    if (!g) {
      const tail = this.segments[this.segments.length - 1];
      if (!tail || (tail.plannedEnd > 0 && tail.plannedEnd + FRAME_HEADER_BYTES + size > this.segmentBytes)) {
        g = this.startSegment(nextIndex);
        if (FRAME_HEADER_BYTES + g.bytes + size > this.maxFrameBytes) {
          // The segment's header goes out as a frame of its own.
          this.seal(g);
          g = this.groupAt(g.segment);
        }
      } else {
        g = this.groupAt(tail);
      }
      this.open = g;
    }
    return g;
  }

  private groupAt(segment: Segment): Group {
    return {
      segment,
      start: segment.plannedEnd,
      parts: [],
      bytes: 0,
      waiters: [],
      createsSegment: false,
      runs: [],
    };
  }

  /** Closes a group to further appends; it is written in turn. */
  private seal(g: Group): void {
    this.sealed.push(g);
    g.segment.plannedEnd = g.start + FRAME_HEADER_BYTES + g.bytes;
    if (this.open === g) this.open = null;
  }

  /** Plans a new segment whose first frame restates the hard state and snapshot marker. */
  private startSegment(firstIndex: number): Group {
    const tail = this.segments[this.segments.length - 1];
    const sequence = tail ? tail.sequence + 1 : 1;
    const name = segmentName(sequence, firstIndex);
    const seg: Segment = {
      sequence,
      name,
      path: join(this.dir, name),
      handle: null,
      created: false,
      plannedEnd: 0,
      maxIndex: 0,
      headerDurable: false,
    };
    this.segments.push(seg);
    const m = this.marker;
    const size = segmentRecordBytes() + hardStateRecordBytes() + (m ? snapshotRecordBytes(m.confState) : 0);
    const head = newPart(size);
    const w = new RecordWriter(head);
    w.pos = FRAME_HEADER_BYTES;
    w.segment(sequence);
    if (m) w.snapshot(m.index, m.term, m.confState);
    w.hardState(this.hs);
    return {
      segment: seg,
      start: 0,
      parts: [head],
      bytes: size,
      waiters: [],
      createsSegment: true,
      runs: [],
    };
  }

  private enqueue(group: Group, part: Buffer): Promise<void> {
    group.parts.push(part);
    group.bytes += part.byteLength - FRAME_HEADER_BYTES;
    const done = new Promise<void>((resolve, reject) => group.waiters.push({ resolve, reject }));
    if (!this.flushing) this.flushing = this.flushLoop();
    return done;
  }

  private async flushLoop(): Promise<void> {
    // Let appends made in this same tick join the first write.
    await Promise.resolve();
    while (!this.failure) {
      let g = this.sealed.shift();
      if (!g) {
        g = this.open ?? undefined;
        if (!g) break;
        this.open = null;
        g.segment.plannedEnd = g.start + FRAME_HEADER_BYTES + g.bytes;
      }
      try {
        await this.write(g);
      } catch (err) {
        const failure = this.fail(err);
        for (const w of g.waiters) w.reject(failure);
        break;
      }
      this.index.markWritten(g.runs, g.start + FRAME_HEADER_BYTES + g.bytes);
      for (const w of g.waiters) w.resolve();
    }
    this.flushing = null;
    if (this.failure) this.rejectAllPending(this.failure);
  }

  private async write(g: Group): Promise<void> {
    let frame: Buffer;
    if (g.parts.length === 1) {
      frame = g.parts[0]!; // the usual case: one batch, encoded in place behind the header room
    } else {
      frame = pool.take(FRAME_HEADER_BYTES + g.bytes);
      let p = FRAME_HEADER_BYTES;
      for (const part of g.parts) p += part.copy(frame, p, FRAME_HEADER_BYTES);
    }
    sealFrame(frame, g.bytes, g.segment.sequence, g.start);
    const seg = g.segment;
    if (g.createsSegment) {
      seg.handle = this.fs.create(seg.path);
      seg.created = true;
    }
    const handle = seg.handle ?? this.reopen(seg);
    await handle.write(frame, g.start);
    const syncStart = performance.now();
    await handle.datasync();
    this.onSync?.((performance.now() - syncStart) / 1000);
    if (g.createsSegment) {
      await this.fs.syncDir(this.dir);
      seg.headerDurable = true;
    }
    this.stats.writes++;
    this.stats.syncs++;
    this.stats.bytesWritten += frame.byteLength;
    // Nothing refers to the written bytes any more: the index reads entries back from the file.
    for (const part of g.parts) pool.give(part);
    if (g.parts.length > 1) pool.give(frame);
  }

  private fail(err: unknown): WalFailedError {
    if (!this.failure) {
      this.failure = err instanceof WalFailedError ? err : new WalFailedError(err);
      this.logger.warn("WAL failed; refusing further appends", { error: this.failure.message });
    }
    return this.failure;
  }

  private rejectAllPending(err: WalFailedError): void {
    const groups = [...this.sealed, ...(this.open ? [this.open] : [])];
    this.sealed.length = 0;
    this.open = null;
    for (const g of groups) for (const w of g.waiters) w.reject(err);
  }

  // ------------------------------------------------------------------ entry index

  private applyMarker(m: SnapshotMarker): void {
    // A log that does not hold the snapshot's entry is replaced by the snapshot whole.
    if (this.termOf(m.index) !== m.term) this.index.reset(m.index + 1);
    this.marker = m;
  }

  // ------------------------------------------------------------------ recovery

  private async recover(repair: boolean): Promise<void> {
    await ensureDurableDir(this.fs, this.dir);
    const found = this.fs
      .readdir(this.dir)
      .map((name) => ({ name, parsed: parseSegmentName(name) }))
      .filter(
        (x): x is { name: string; parsed: { sequence: number; firstIndex: number } } => x.parsed !== null,
      )
      .sort((a, b) => a.parsed.sequence - b.parsed.sequence);
    for (let k = 0; k < found.length; k++) {
      const { name, parsed } = found[k]!;
      if (k > 0 && parsed.sequence !== found[k - 1]!.parsed.sequence + 1) {
        throw new WalCorruptError(name, 0, `segment sequence gap after ${found[k - 1]!.name}`);
      }
      const isLast = k === found.length - 1;
      const seg: Segment = {
        sequence: parsed.sequence,
        name,
        path: join(this.dir, name),
        handle: null,
        created: true,
        plannedEnd: 0,
        maxIndex: 0,
        headerDurable: true,
      };
      const buf = this.fs.readFile(seg.path);
      const cutAt = this.replaySegment(seg, buf, isLast, repair);
      this.segments.push(seg);
      if (cutAt >= 0) {
        seg.handle = this.fs.open(seg.path);
        await seg.handle.truncate(cutAt);
        await seg.handle.datasync();
        seg.plannedEnd = cutAt;
        if (!isLast) {
          // Repairing damage before the tail: everything after the cut goes.
          // Newest first, so that an interrupted repair leaves a gapless prefix and can be run again.
          for (const later of found.slice(k + 1).reverse()) await this.fs.unlink(join(this.dir, later.name));
          await this.fs.syncDir(this.dir);
          break;
        }
      } else {
        seg.plannedEnd = buf.byteLength;
      }
    }
    // A segment left empty by a cut (or a crash right after creating it) is rewritten from its start.
    const tail = this.segments[this.segments.length - 1];
    if (tail && tail.plannedEnd === 0) {
      await tail.handle?.close();
      this.segments.pop();
      await this.fs.unlink(tail.path);
      await this.fs.syncDir(this.dir);
    }
    this.index.loadTail();
    this.logger.info("WAL opened", {
      dir: this.dir,
      segments: this.segments.length,
      firstIndex: this.firstIndex(),
      lastIndex: this.lastIndex(),
      hardState: this.hs,
      snapshot: this.marker ? { index: this.marker.index, term: this.marker.term } : null,
    });
  }

  /** Replays one segment; returns the offset to cut it at (a torn tail, or repair), or -1. */
  private replaySegment(seg: Segment, buf: Uint8Array, isLast: boolean, repair: boolean): number {
    let pos = 0;
    let first = true;
    while (pos < buf.byteLength) {
      const check = checkFrame(buf, pos, RECOVERY_FRAME_LIMIT, seg.sequence);
      let reason = check.ok ? "" : check.reason;
      if (check.ok) {
        // Decode the whole frame before applying any of it: a frame is applied entirely or not at all.
        const records: WalRecord[] = [];
        try {
          readRecords(buf, check.payloadStart, check.end, (r) => {
            if (first && records.length === 0 && r.kind !== RecordKind.Segment) {
              throw new MalformedRecordError("segment does not start with its header");
            }
            records.push(r);
          });
        } catch (err) {
          if (!(err instanceof MalformedRecordError)) throw err;
          reason = err.message;
        }
        if (!reason) {
          first = false;
          try {
            for (const r of records) this.replayRecord(seg, r, pos, check.end);
          } catch (err) {
            // A frame that checks out but contradicts the log is damage, wherever it is.
            if (err instanceof MalformedRecordError) throw new WalCorruptError(seg.name, pos, err.message);
            throw err;
          }
          pos = check.end;
          continue;
        }
      }
      const later = validFrameAfter(buf, pos, RECOVERY_FRAME_LIMIT, seg.sequence);
      if (isLast && later < 0) {
        this.logger.warn("WAL: cutting a torn tail", {
          segment: seg.name,
          offset: pos,
          bytes: buf.byteLength - pos,
          reason,
        });
        return pos;
      }
      if (!repair) throw new WalCorruptError(seg.name, pos, reason);
      this.logger.warn("WAL repair: cutting the log at damage before its tail; later records are discarded", {
        segment: seg.name,
        offset: pos,
        reason,
      });
      return pos;
    }
    return -1;
  }

  private replayRecord(seg: Segment, r: WalRecord, frameStart: number, frameEnd: number): void {
    switch (r.kind) {
      case RecordKind.Segment:
        if (r.sequence !== seg.sequence) {
          throw new MalformedRecordError(`segment header names sequence ${r.sequence}`);
        }
        return;
      case RecordKind.HardState:
        this.hs = r.hardState;
        return;
      case RecordKind.Snapshot:
        if (!this.index.isEmpty() && r.index < this.index.firstIndex()) {
          // Its entry was in a purged segment, so the log held it (purging never deletes the segment
          // holding the snapshot's own entry): the entries after it stay, as they did when it was recorded.
          this.marker = { index: r.index, term: r.term, confState: r.confState };
          return;
        }
        this.applyMarker({ index: r.index, term: r.term, confState: r.confState });
        return;
      case RecordKind.Entry: {
        const empty = this.index.isEmpty();
        if (this.marker && r.index <= this.marker.index && empty) return;
        const last = this.lastIndex();
        if (!empty && r.index > last + 1)
          throw new MalformedRecordError(`entry ${r.index} leaves a gap after ${last}`);
        if (empty) {
          if (r.index !== this.index.firstIndex()) this.index.reset(r.index);
        } else if (r.index <= last) {
          // Replaces a suffix; below what is held, it reaches back into a segment since purged (the
          // snapshot that allowed the purge comes later in this segment) and replaces everything held.
          this.index.truncateFrom(r.index);
        }
        this.index.addRecovered(
          r.index,
          r.term,
          seg,
          r.recordStart,
          r.dataStart + r.dataLength,
          frameStart,
          frameEnd,
        );
        seg.maxIndex = Math.max(seg.maxIndex, r.index);
        return;
      }
    }
  }
}
