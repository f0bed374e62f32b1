import { entriesBytes } from "./entries.js";
import { CompactedError, invariant, UnavailableError } from "./errors.js";
import { UnstableLog } from "./log-unstable.js";
import type { Storage } from "./storage.js";
import type { Entry, Snapshot } from "./types.js";

/**
 * The node's view of its log: the caller's durable storage followed by the unstable tail, plus the
 * commit and apply cursors. Invariant: applied ≤ applying ≤ committed ≤ lastIndex.
 */
export class RaftLog {
  readonly unstable: UnstableLog;
  /** Highest index known to be committed by a quorum. */
  committed: number;
  /** Highest index handed to the caller for applying (possibly not yet applied). */
  applying: number;
  /** Highest index the caller has applied. */
  applied: number;

  constructor(
    readonly storage: Storage,
    private readonly maxApplyingBytes: number,
  ) {
    const first = storage.firstIndex();
    const last = storage.lastIndex();
    this.unstable = new UnstableLog(last + 1);
    this.committed = first - 1;
    this.applying = first - 1;
    this.applied = first - 1;
  }

  firstIndex(): number {
    return this.unstable.maybeFirstIndex() ?? this.storage.firstIndex();
  }

  lastIndex(): number {
    return this.unstable.maybeLastIndex() ?? this.storage.lastIndex();
  }

  lastTerm(): number {
    return this.term(this.lastIndex());
  }

  /**
   * The term of entry i. Throws CompactedError below firstIndex-1 and UnavailableError past the end,
   * so that callers decide explicitly what an out-of-range index means for them.
   */
  term(i: number): number {
    const t = this.unstable.maybeTerm(i);
    if (t !== undefined) return t;
    const first = this.firstIndex();
    if (i < first - 1) throw new CompactedError(i, first);
    if (i > this.lastIndex()) throw new UnavailableError(i);
    return this.storage.term(i);
  }

  /** The term of entry i, or 0 when i is out of range (compacted or not yet appended). */
  termOrZero(i: number): number {
    const t = this.unstable.maybeTerm(i);
    if (t !== undefined) return t;
    if (i < this.firstIndex() - 1 || i > this.lastIndex()) return 0;
    return this.storage.term(i);
  }

  matchTerm(i: number, term: number): boolean {
    const t = this.unstable.maybeTerm(i);
    if (t !== undefined) return t === term;
    if (i < this.firstIndex() - 1 || i > this.lastIndex()) return false;
    return this.storage.term(i) === term;
  }

  /** Raft's up-to-date check (§5.4.1): compares last term, then last index. */
  isUpToDate(lastIndex: number, term: number): boolean {
    const ourTerm = this.lastTerm();
    return term > ourTerm || (term === ourTerm && lastIndex >= this.lastIndex());
  }

  /**
   * Appends the leader's entries that follow (index, logTerm) if our log matches there. Returns the
   * index of the last entry the leader sent, or -1 when the logs do not match at `index`.
   */
  maybeAppend(index: number, logTerm: number, committed: number, ents: Entry[]): number {
    if (!this.matchTerm(index, logTerm)) return -1;
    const lastNew = index + ents.length;
    const conflict = this.findConflict(ents);
    if (conflict !== 0) {
      invariant(
        conflict > this.committed,
        () => `entry ${conflict} conflicts with committed entry ${this.committed}`,
      );
      const start = conflict - (index + 1);
      this.append(start === 0 ? ents : ents.slice(start));
    }
    this.commitTo(Math.min(committed, lastNew));
    return lastNew;
  }

  append(ents: Entry[]): number {
    if (ents.length === 0) return this.lastIndex();
    const after = ents[0]!.index - 1;
    invariant(
      after >= this.committed,
      () => `appending after ${after} would overwrite committed ${this.committed}`,
    );
    this.unstable.truncateAndAppend(ents);
    return this.lastIndex();
  }

  /**
   * The index of the first entry in ents that is new or conflicts with ours, or 0 when all of them are
   * already in the log with the same terms.
   */
  findConflict(ents: readonly Entry[]): number {
    for (let i = 0; i < ents.length; i++) {
      const e = ents[i]!;
      if (!this.matchTerm(e.index, e.term)) return e.index;
    }
    return 0;
  }

  /**
   * The largest index ≤ index whose term is ≤ term, with that term: where our log and a log whose entry
   * at `index` has `term` may still match. Used for fast backtracking of rejected appends.
   */
  findConflictByTerm(index: number, term: number): { index: number; term: number } {
    for (; index > 0; index--) {
      let t: number;
      try {
        t = this.term(index);
      } catch (e) {
        if (e instanceof CompactedError || e instanceof UnavailableError) return { index, term: 0 };
        throw e;
      }
      if (t <= term) return { index, term: t };
    }
    return { index: 0, term: 0 };
  }

  /** Entries from i to the end, at most maxBytes (but at least one). */
  entries(i: number, maxBytes: number): Entry[] {
    if (i > this.lastIndex()) return [];
    return this.slice(i, this.lastIndex() + 1, maxBytes);
  }

  /** Entries in [lo, hi), at most maxBytes but at least one; throws CompactedError below firstIndex. */
  slice(lo: number, hi: number, maxBytes: number): Entry[] {
    invariant(lo <= hi, () => `invalid slice ${lo} > ${hi}`);
    if (lo === hi) return [];
    const first = this.firstIndex();
    if (lo < first) throw new CompactedError(lo, first);
    invariant(
      hi <= this.lastIndex() + 1,
      () => `slice [${lo}, ${hi}) out of bound [${first}, ${this.lastIndex()}]`,
    );
    const uOffset = this.unstable.offset;
    if (lo >= uOffset) return this.unstable.slice(lo, hi, maxBytes);
    const stableHi = Math.min(hi, uOffset);
    const stored = this.storage.entries(lo, stableHi, maxBytes);
    if (stableHi === hi || stored.length < stableHi - lo) return stored;
    // The stored part fit whole: continue into the unstable part within the remaining budget.
    const remaining = maxBytes - entriesBytes(stored);
    if (remaining <= 0) return stored;
    const tail = this.unstable.slice(uOffset, hi, remaining, false);
    if (tail.length === 0) return stored;
    // Storage may hand back its own array: never append to it.
    return stored.concat(tail);
  }

  /**
   * Whether any entry in [lo, hi) satisfies `test`, reading in pages of at most `pageBytes` so that a
   * long range never materialises at once.
   */
  someEntry(lo: number, hi: number, pageBytes: number, test: (e: Entry) => boolean): boolean {
    for (let i = lo; i < hi; ) {
      const page = this.slice(i, hi, pageBytes);
      for (const e of page) if (test(e)) return true;
      i += page.length;
    }
    return false;
  }

  commitTo(toCommit: number): void {
    if (toCommit <= this.committed) return;
    invariant(
      toCommit <= this.lastIndex(),
      () =>
        `commit ${toCommit} is out of range [last index ${this.lastIndex()}]; was the log corrupted, truncated or lost?`,
    );
    this.committed = toCommit;
  }

  /** Commits maxIndex if it is an entry of `term` (§5.4.2: only current-term entries commit by counting). */
  maybeCommit(maxIndex: number, term: number): boolean {
    if (maxIndex > this.committed && this.termOrZero(maxIndex) === term) {
      this.commitTo(maxIndex);
      return true;
    }
    return false;
  }

  /** Committed entries not yet handed out for applying, bounded by maxApplyingBytes. */
  nextCommittedEntries(): Entry[] {
    if (this.unstable.snapshot) return []; // apply the snapshot first
    const lo = this.applying + 1;
    const hi = this.committed + 1;
    if (lo >= hi) return [];
    return this.slice(lo, hi, this.maxApplyingBytes);
  }

  hasNextCommittedEntries(): boolean {
    return !this.unstable.snapshot && this.applying < this.committed;
  }

  acceptApplying(index: number): void {
    invariant(index <= this.committed, () => `applying ${index} beyond committed ${this.committed}`);
    this.applying = index;
  }

  appliedTo(index: number): void {
    if (index === 0) return;
    invariant(
      this.applied <= index && index <= this.committed,
      () => `applied(${index}) is out of range [prev applied ${this.applied}, committed ${this.committed}]`,
    );
    this.applied = index;
    if (this.applying < index) this.applying = index;
  }

  stableTo(index: number, term: number): void {
    this.unstable.stableTo(index, term);
  }

  stableSnapTo(index: number): void {
    this.unstable.stableSnapTo(index);
  }

  snapshot(): Snapshot {
    return this.unstable.snapshot ?? this.storage.snapshot();
  }

  /** Replaces the log with a snapshot; everything up to it is committed. */
  restore(snap: Snapshot): void {
    this.committed = snap.metadata.index;
    this.unstable.restore(snap);
  }
}
