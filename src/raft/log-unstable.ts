import { endWithinBytes } from "./entries.js";
import { invariant } from "./errors.js";
import type { Entry, Snapshot } from "./types.js";

/**
 * Entries and a snapshot that the core has accepted but the caller has not yet persisted. Entries here
 * always follow the stable log (and the unstable snapshot, if any) without a gap.
 *
 * `offsetInProgress` marks how much has already been handed to the caller in a Ready and is being
 * written: those entries are not handed out again, but stay readable until the caller acknowledges them.
 */
export class UnstableLog {
  snapshot: Snapshot | null = null;
  snapshotInProgress = false;
  entries: Entry[] = [];
  /** Index of entries[0]. */
  offset: number;
  /** entries below this index (and the snapshot, if snapshotInProgress) are being persisted. */
  offsetInProgress: number;

  constructor(offset: number) {
    this.offset = offset;
    this.offsetInProgress = offset;
  }

  /** The first index of the log if the unstable snapshot defines it. */
  maybeFirstIndex(): number | undefined {
    return this.snapshot ? this.snapshot.metadata.index + 1 : undefined;
  }

  maybeLastIndex(): number | undefined {
    if (this.entries.length > 0) return this.offset + this.entries.length - 1;
    return this.snapshot ? this.snapshot.metadata.index : undefined;
  }

  maybeTerm(i: number): number | undefined {
    if (i < this.offset) {
      if (this.snapshot && this.snapshot.metadata.index === i) return this.snapshot.metadata.term;
      return undefined;
    }
    const last = this.maybeLastIndex();
    if (last === undefined || i > last) return undefined;
    return this.entries[i - this.offset]!.term;
  }

  /** Entries not yet handed to the caller for persisting. */
  nextEntries(): Entry[] {
    const start = this.offsetInProgress - this.offset;
    if (start >= this.entries.length) return [];
    // Always a copy: later appends push onto this.entries, and a Ready's entries must never change
    // after it is handed out (the caller may step messages before advancing).
    return this.entries.slice(start);
  }

  nextSnapshot(): Snapshot | null {
    return this.snapshot && !this.snapshotInProgress ? this.snapshot : null;
  }

  /** Everything returned by nextEntries/nextSnapshot is now being persisted. */
  acceptInProgress(): void {
    if (this.entries.length > 0) this.offsetInProgress = this.offset + this.entries.length;
    if (this.snapshot) this.snapshotInProgress = true;
  }

  /**
   * Entries up to (index, term) are durable. Ignored when the entry at index has since been replaced
   * by one of another term (the write raced with a truncation) or is no longer unstable.
   */
  stableTo(index: number, term: number): void {
    const t = this.maybeTerm(index);
    if (t === undefined || t !== term || index < this.offset) return;
    const n = index + 1 - this.offset;
    this.entries = this.entries.slice(n);
    this.offset = index + 1;
    if (this.offsetInProgress < this.offset) this.offsetInProgress = this.offset;
  }

  stableSnapTo(index: number): void {
    if (this.snapshot && this.snapshot.metadata.index === index) {
      this.snapshot = null;
      this.snapshotInProgress = false;
    }
  }

  restore(snap: Snapshot): void {
    this.offset = snap.metadata.index + 1;
    this.offsetInProgress = this.offset;
    this.entries = [];
    this.snapshot = snap;
    this.snapshotInProgress = false;
  }

  /** Appends entries, replacing everything from entries[0].index on. */
  truncateAndAppend(ents: Entry[]): void {
    const first = ents[0]!.index;
    const end = this.offset + this.entries.length;
    if (first === end) {
      // The common case: appending straight after what we have.
      // Never alias the caller's array: a message's entries may be delivered twice.
      if (this.entries.length === 0) this.entries = ents.slice();
      else for (let i = 0; i < ents.length; i++) this.entries.push(ents[i]!);
    } else if (first <= this.offset) {
      // Replaces everything unstable; the stable log is truncated by the caller's write at `first`.
      this.offset = first;
      this.offsetInProgress = first;
      this.entries = ents.slice();
    } else {
      // Keeps [offset, first) and replaces the rest.
      const kept = this.slice(this.offset, first);
      for (let i = 0; i < ents.length; i++) kept.push(ents[i]!);
      this.entries = kept;
      if (this.offsetInProgress > first) this.offsetInProgress = first;
    }
  }

  /** Entries in [lo, hi), which must lie within the unstable range. */
  slice(lo: number, hi: number, maxBytes = Number.MAX_SAFE_INTEGER, atLeastOne = true): Entry[] {
    invariant(
      this.offset <= lo && lo <= hi && hi <= this.offset + this.entries.length,
      () =>
        `unstable slice [${lo}, ${hi}) out of bounds [${this.offset}, ${this.offset + this.entries.length})`,
    );
    const start = lo - this.offset;
    return this.entries.slice(
      start,
      endWithinBytes(this.entries, start, hi - this.offset, maxBytes, atLeastOne),
    );
  }
}
