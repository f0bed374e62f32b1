import { endWithinBytes } from "./entries.js";
import { CompactedError, invariant, SnapshotOutOfDateError, UnavailableError } from "./errors.js";
import {
  type ConfState,
  EMPTY_BYTES,
  EMPTY_CONF_STATE,
  EMPTY_HARD_STATE,
  type Entry,
  EntryType,
  type HardState,
  type Snapshot,
} from "./types.js";

/**
 * What the raft core reads from the caller's durable log. Reads are synchronous: the core runs inside
 * one event-loop turn. Entries and state handed to the core through `Ready` are written by the caller,
 * not through this interface.
 */
export interface Storage {
  /** The hard state and membership saved on disk, read once when a node starts. */
  initialState(): { hardState: HardState; confState: ConfState };
  /**
   * Entries in [lo, hi), at most `maxBytes` in total but at least one if any are in range.
   * Throws {@link CompactedError} if lo is at or below the snapshot, {@link UnavailableError} if hi-1 is
   * past the last index.
   */
  entries(lo: number, hi: number, maxBytes: number): Entry[];
  /** The term of entry i; i may be firstIndex()-1 (the snapshot's index). */
  term(i: number): number;
  /** The index of the first entry still available (the snapshot index + 1). */
  firstIndex(): number;
  lastIndex(): number;
  /** The most recent snapshot; may throw SnapshotTemporarilyUnavailableError while one is being made. */
  snapshot(): Snapshot;
}

/**
 * A Storage held in memory: for tests, simulations and the benchmark. `ents[0]` is a placeholder
 * carrying the snapshot's index and term, so that term(snapshotIndex) works after compaction.
 */
export class MemoryStorage implements Storage {
  private hardState: HardState = EMPTY_HARD_STATE;
  private snap: Snapshot;
  private ents: Entry[];

  constructor() {
    this.snap = { metadata: { index: 0, term: 0, confState: EMPTY_CONF_STATE }, data: EMPTY_BYTES };
    this.ents = [{ index: 0, term: 0, type: EntryType.Normal, data: EMPTY_BYTES }];
  }

  /** A storage whose membership starts as the given voters, as a freshly bootstrapped cluster's would. */
  static withVoters(voters: readonly number[], learners: readonly number[] = []): MemoryStorage {
    const s = new MemoryStorage();
    s.snap = {
      metadata: {
        index: 0,
        term: 0,
        confState: { ...EMPTY_CONF_STATE, voters: [...voters], learners: [...learners] },
      },
      data: EMPTY_BYTES,
    };
    return s;
  }

  initialState(): { hardState: HardState; confState: ConfState } {
    return { hardState: this.hardState, confState: this.snap.metadata.confState };
  }

  setHardState(hs: HardState): void {
    this.hardState = hs;
  }

  entries(lo: number, hi: number, maxBytes: number): Entry[] {
    const offset = this.ents[0]!.index;
    if (lo <= offset) throw new CompactedError(lo, offset + 1);
    if (hi > this.lastIndex() + 1) throw new UnavailableError(hi - 1);
    const start = lo - offset;
    return this.ents.slice(start, endWithinBytes(this.ents, start, hi - offset, maxBytes));
  }

  term(i: number): number {
    const offset = this.ents[0]!.index;
    if (i < offset) throw new CompactedError(i, offset + 1);
    if (i - offset >= this.ents.length) throw new UnavailableError(i);
    return this.ents[i - offset]!.term;
  }

  firstIndex(): number {
    return this.ents[0]!.index + 1;
  }

  lastIndex(): number {
    return this.ents[0]!.index + this.ents.length - 1;
  }

  snapshot(): Snapshot {
    return this.snap;
  }

  /** Replaces the whole contents with a snapshot (a follower installing the leader's snapshot). */
  applySnapshot(snap: Snapshot): void {
    const current = this.snap.metadata.index;
    if (snap.metadata.index < current) throw new SnapshotOutOfDateError(snap.metadata.index, current);
    this.snap = snap;
    this.ents = [
      { index: snap.metadata.index, term: snap.metadata.term, type: EntryType.Normal, data: EMPTY_BYTES },
    ];
  }

  /** Records a snapshot of the applied state at index i (≤ lastIndex); the log is not compacted. */
  createSnapshot(i: number, confState: ConfState | undefined, data: Uint8Array): Snapshot {
    const current = this.snap.metadata.index;
    if (i <= current) throw new SnapshotOutOfDateError(i, current);
    invariant(i <= this.lastIndex(), () => `snapshot index ${i} is past the last index ${this.lastIndex()}`);
    const offset = this.ents[0]!.index;
    this.snap = {
      metadata: {
        index: i,
        term: this.ents[i - offset]!.term,
        confState: confState ?? this.snap.metadata.confState,
      },
      data,
    };
    return this.snap;
  }

  /** Discards entries before compactIndex; compactIndex itself becomes the placeholder. */
  compact(compactIndex: number): void {
    const offset = this.ents[0]!.index;
    if (compactIndex <= offset) throw new CompactedError(compactIndex, offset + 1);
    invariant(
      compactIndex <= this.lastIndex(),
      () => `compact ${compactIndex} is past last index ${this.lastIndex()}`,
    );
    const i = compactIndex - offset;
    const head = this.ents[i]!;
    const rest = this.ents.slice(i + 1);
    rest.unshift({ index: head.index, term: head.term, type: EntryType.Normal, data: EMPTY_BYTES });
    this.ents = rest;
  }

  /**
   * Appends entries, replacing any conflicting suffix. Entries at or below the snapshot are ignored;
   * a gap after the last index is a usage error.
   */
  append(entries: readonly Entry[]): void {
    if (entries.length === 0) return;
    const first = this.firstIndex();
    const lastNew = entries[entries.length - 1]!.index;
    if (lastNew < first) return;
    let start = 0;
    if (entries[0]!.index < first) start = first - entries[0]!.index;
    const offset = entries[start]!.index - this.ents[0]!.index;
    invariant(
      offset <= this.ents.length,
      () => `missing log entries: last index ${this.lastIndex()}, appending at ${entries[start]!.index}`,
    );
    if (offset < this.ents.length) this.ents.length = offset;
    const ents = this.ents;
    for (let k = start; k < entries.length; k++) ents.push(entries[k]!);
  }
}
