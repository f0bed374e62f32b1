import { ENTRY_OVERHEAD_BYTES } from "../raft/entries.js";
import { invariant } from "../raft/errors.js";
import type { Entry } from "../raft/types.js";
import { RecordKind, readRecords } from "./wal-format.js";

/**
 * A run of consecutive entries stored in one region of one segment: what one append wrote, or, on
 * recovery, what consecutive records held. The index keeps one run per append rather than a record per
 * entry, so appending a batch costs O(1) here, and entries read back from disk are parsed a region at a
 * time.
 */
export interface Run<S> {
  readonly first: number;
  /** Entries first .. first+count-1 (a cut can shorten a run; it never grows after it is closed). */
  count: number;
  readonly source: S;
  /** File offset of the run's first record and the end of its last one; other kinds may lie between. */
  readonly offset: number;
  end: number;
  /** The entries in memory (at least `count` of them), or null when only on disk. */
  cached: Entry[] | null;
  /** Payload bytes of the cached entries counted against the tail budget. */
  cachedBytes: number;
  /** On disk: only then may it leave memory, or a read would find bytes not yet written. */
  written: boolean;
  /** Shortened by a replacement: its region holds stale records after `count`, so it never grows. */
  cut: boolean;
  /** Start of the record holding the run's last entry (a record holds several entries). */
  lastRecord: number;
  /** The frame holding the run (known once written): read back whole, so its checksum is verified. */
  frameStart: number;
  frameEnd: number;
}

/** Reads the frame [frameStart, frameEnd) of a run's source and verifies it, synchronously. */
export type FrameReader<S> = (source: S, frameStart: number, frameEnd: number) => Uint8Array;

/**
 * The in-memory index of the log's entries: where each one is on disk, its term, and a bounded tail of
 * recent entries kept in memory. Entries from `base` to `lastIndex()` are held.
 */
export class EntryIndex<S> {
  private runs: Run<S>[] = [];
  /** Term runs: terms[k] is the term of every entry from termStarts[k] up to the next start. */
  private termStarts: number[] = [];
  private termValues: number[] = [];
  private base = 1;
  private cacheBytes = 0;
  /** Runs before this position have no cached entries. */
  private firstCached = 0;

  constructor(
    private readonly tailCacheBytes: number,
    private readonly read: FrameReader<S>,
  ) {}

  firstIndex(): number {
    return this.base;
  }

  lastIndex(): number {
    const r = this.runs[this.runs.length - 1];
    return r ? Math.max(r.first + r.count - 1, this.base - 1) : this.base - 1;
  }

  isEmpty(): boolean {
    return this.lastIndex() < this.base;
  }

  /** The source holding the first entry held, if any: everything before it may be purged. */
  firstSource(): S | undefined {
    for (const r of this.runs) if (r.first + r.count - 1 >= this.base && r.count > 0) return r.source;
    return undefined;
  }

  termOf(i: number): number | undefined {
    if (i < this.base || i > this.lastIndex()) return undefined;
    const starts = this.termStarts;
    let lo = 0;
    let hi = starts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >>> 1;
      if (starts[mid]! <= i) lo = mid;
      else hi = mid - 1;
    }
    return this.termValues[lo];
  }

  // ------------------------------------------------------------------ changing

  /**
   * Prepares for entries starting at `index`: drops everything held from `index` on, and everything
   * when `index` is below what is held (a replacement reaching into released entries).
   */
  truncateFrom(index: number): void {
    if (index <= this.base) {
      this.reset(index);
      return;
    }
    const runs = this.runs;
    while (runs.length > 0 && runs[runs.length - 1]!.first >= index) this.dropRun(runs.pop()!);
    const last = runs[runs.length - 1];
    if (last && last.first + last.count > index) {
      const keep = index - last.first;
      if (last.cached) {
        let cut = 0;
        for (let k = keep; k < last.count; k++) cut += last.cached[k]!.data.byteLength;
        last.cachedBytes -= cut;
        this.cacheBytes -= cut;
      }
      last.count = keep;
      last.cut = true;
    }
    if (this.firstCached > runs.length) this.firstCached = runs.length;
    while (this.termStarts.length > 0 && this.termStarts[this.termStarts.length - 1]! >= index) {
      this.termStarts.pop();
      this.termValues.pop();
    }
  }

  /** Forgets every entry; the next one is expected at `nextIndex`. */
  reset(nextIndex: number): void {
    this.runs = [];
    this.termStarts = [];
    this.termValues = [];
    this.cacheBytes = 0;
    this.firstCached = 0;
    this.base = nextIndex;
  }

  private dropRun(r: Run<S>): void {
    if (r.cached) this.cacheBytes -= r.cachedBytes;
  }

  /**
   * Records entries just appended (contiguous from lastIndex()+1) as one run, keeping `entries` in
   * memory by reference: the caller must not change the array afterwards. `payloadBytes` is the sum of
   * their data lengths.
   */
  appendRun(
    entries: readonly Entry[],
    payloadBytes: number,
    source: S,
    offset: number,
    end: number,
    frameStart: number,
  ): Run<S> {
    const first = entries[0]!.index;
    invariant(first === this.lastIndex() + 1, () => `run at ${first} does not follow ${this.lastIndex()}`);
    if (this.isEmpty()) this.base = first;
    const run: Run<S> = {
      first,
      count: entries.length,
      source,
      offset,
      end,
      cached: entries as Entry[],
      cachedBytes: payloadBytes,
      written: false,
      cut: false,
      lastRecord: offset,
      frameStart,
      frameEnd: -1,
    };
    this.runs.push(run);
    this.cacheBytes += payloadBytes;
    for (let k = 0; k < entries.length; k++) this.noteTerm(first + k, entries[k]!.term);
    return run;
  }

  /** The runs' frame, ending at `frameEnd`, is on disk: they may now leave the memory tail. */
  markWritten(runs: readonly Run<S>[], frameEnd: number): void {
    for (const r of runs) {
      r.written = true;
      r.frameEnd = frameEnd;
    }
    this.evict();
  }

  /**
   * Records one entry found on recovery. Consecutive entries share a run while they sit in the same
   * ENTRIES record or in records adjacent in one source; `recordStart` is where the entry's record starts.
   */
  addRecovered(
    index: number,
    term: number,
    source: S,
    recordStart: number,
    recordEnd: number,
    frameStart: number,
    frameEnd: number,
  ): void {
    invariant(index === this.lastIndex() + 1, () => `entry ${index} does not follow ${this.lastIndex()}`);
    if (this.isEmpty()) this.base = index;
    const last = this.runs[this.runs.length - 1];
    if (
      last &&
      !last.cut &&
      last.source === source &&
      last.frameStart === frameStart &&
      (last.lastRecord === recordStart || last.end === recordStart) &&
      last.first + last.count === index &&
      last.cached === null
    ) {
      last.count++;
      last.end = recordEnd;
      last.lastRecord = recordStart;
    } else {
      this.runs.push({
        first: index,
        count: 1,
        source,
        offset: recordStart,
        end: recordEnd,
        cached: null,
        cachedBytes: 0,
        written: true,
        cut: false,
        lastRecord: recordStart,
        frameStart,
        frameEnd,
      });
      this.firstCached = this.runs.length;
    }
    this.noteTerm(index, term);
  }

  private noteTerm(index: number, term: number): void {
    const n = this.termValues.length;
    if (n === 0 || this.termValues[n - 1] !== term) {
      this.termStarts.push(index);
      this.termValues.push(term);
    }
  }

  /** Releases entries below `index` (no-op if already released). */
  releaseBefore(index: number): void {
    if (index <= this.base) return;
    const last = this.lastIndex();
    this.base = index;
    if (index > last) {
      const next = index;
      this.reset(next);
      return;
    }
    let drop = 0;
    while (drop < this.runs.length && this.runs[drop]!.first + this.runs[drop]!.count <= index) {
      this.dropRun(this.runs[drop]!);
      drop++;
    }
    if (drop > 0) {
      this.runs.splice(0, drop);
      this.firstCached = Math.max(0, this.firstCached - drop);
    }
    let t = 0;
    while (t + 1 < this.termStarts.length && this.termStarts[t + 1]! <= index) t++;
    if (t > 0) {
      this.termStarts.splice(0, t);
      this.termValues.splice(0, t);
    }
  }

  /** Drops cached runs, oldest first, until the tail fits its budget. */
  private evict(): void {
    while (this.cacheBytes > this.tailCacheBytes && this.firstCached < this.runs.length - 1) {
      const r = this.runs[this.firstCached]!;
      if (!r.written) break;
      if (r.cached) {
        this.cacheBytes -= r.cachedBytes;
        r.cached = null;
        r.cachedBytes = 0;
      }
      this.firstCached++;
    }
  }

  /** After recovery: reads the newest runs back into memory, within the tail budget. */
  loadTail(): void {
    let budget = this.tailCacheBytes;
    let k = this.runs.length - 1;
    for (; k >= 0; k--) {
      const r = this.runs[k]!;
      const entries = this.parseRun(r);
      let bytes = 0;
      for (const e of entries) bytes += e.data.byteLength;
      if (bytes > budget && k < this.runs.length - 1) break;
      budget -= bytes;
      r.cached = entries;
      r.cachedBytes = bytes;
      this.cacheBytes += bytes;
    }
    this.firstCached = k + 1;
  }

  // ------------------------------------------------------------------ reading

  /** Entries in [lo, hi) (within what is held), at most maxBytes as raft counts them, at least one. */
  entries(lo: number, hi: number, maxBytes: number): Entry[] {
    const out: Entry[] = [];
    let size = 0;
    let k = this.runIndexOf(lo);
    let i = lo;
    while (i < hi && k < this.runs.length) {
      const r = this.runs[k]!;
      const entries = r.cached ?? this.parseRun(r);
      const end = Math.min(hi, r.first + r.count);
      for (; i < end; i++) {
        const e = entries[i - r.first]!;
        const bytes = e.data.byteLength + ENTRY_OVERHEAD_BYTES;
        if (out.length > 0 && size + bytes > maxBytes) return out;
        size += bytes;
        out.push(e);
      }
      k++;
    }
    return out;
  }

  private runIndexOf(i: number): number {
    const runs = this.runs;
    let lo = 0;
    let hi = runs.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >>> 1;
      if (runs[mid]!.first <= i) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }

  /** Reads a run's region back from its source and decodes its entries (data are views, not copies). */
  private parseRun(r: Run<S>): Entry[] {
    const buf = this.read(r.source, r.frameStart, r.frameEnd);
    const out: Entry[] = [];
    readRecords(buf, r.offset - r.frameStart, r.end - r.frameStart, (rec) => {
      if (rec.kind !== RecordKind.Entry || out.length >= r.count) return;
      const expected = r.first + out.length;
      if (rec.index !== expected) return; // a later run replaced this one's tail; stop at count
      out.push({
        index: rec.index,
        term: rec.term,
        type: rec.type,
        data: buf.subarray(rec.dataStart, rec.dataStart + rec.dataLength),
      });
    });
    invariant(out.length >= r.count, () => `run at ${r.first} decoded ${out.length} of ${r.count} entries`);
    return out;
  }
}
