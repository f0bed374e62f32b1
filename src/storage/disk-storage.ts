import { type RaftLogger, silentLogger } from "../raft/config.js";
import { CompactedError, UnavailableError } from "../raft/errors.js";
import type { Storage } from "../raft/storage.js";
import {
  type ConfState,
  EMPTY_BYTES,
  EMPTY_CONF_STATE,
  type Entry,
  type HardState,
  isEmptyHardState,
  type Snapshot,
} from "../raft/types.js";
import { StorageError } from "./errors.js";
import { ensureDurableDir, type FileSystem, join } from "./fs.js";
import { type SnapshotPayload, SnapshotStore, type SnapshotStoreOptions } from "./snapshot-store.js";
import { Wal, type WalOptions } from "./wal.js";

export interface DiskStorageOptions {
  fs: FileSystem;
  /** Holds `wal/` and `snap/`. */
  dir: string;
  wal?: Omit<WalOptions, "fs" | "dir" | "logger">;
  snapshots?: Omit<SnapshotStoreOptions, "logger">;
  /**
   * Entries kept before the newest snapshot when it compacts the log, so that a follower a little behind
   * is sent entries rather than a whole snapshot. Default 0.
   */
  trailingEntries?: number;
  logger?: RaftLogger;
}

const NO_SNAPSHOT: Snapshot = {
  metadata: { index: 0, term: 0, confState: EMPTY_CONF_STATE },
  data: EMPTY_BYTES,
};

/**
 * Raft's Storage on disk: the WAL for entries and hard state, the snapshot store for snapshots. Reads
 * are synchronous (served from the WAL's index and tail cache); writes return once durable.
 *
 * Crash safety of a snapshot: its file is made durable first and the WAL's marker second, so after a
 * crash the node holds the old state (marker missing: the file is ignored) or the new one, never a mix.
 */
export class DiskStorage implements Storage {
  private constructor(
    readonly wal: Wal,
    readonly snapshots: SnapshotStore,
    private snap: Snapshot,
    private readonly logger: RaftLogger,
    private readonly trailingEntries: number,
  ) {}

  /** A commit-only hard state not yet written (see append). */
  private heldHardState: HardState | null = null;

  static async open(o: DiskStorageOptions): Promise<DiskStorage> {
    const logger = o.logger ?? silentLogger;
    await ensureDurableDir(o.fs, o.dir);
    // Pruned here, after each snapshot is recorded in the WAL, never by the store on its own.
    const snapshots = await SnapshotStore.open(o.fs, join(o.dir, "snap"), {
      ...o.snapshots,
      pruneOnSave: false,
      logger,
    });
    const wal = await Wal.open({ ...o.wal, fs: o.fs, dir: join(o.dir, "wal"), logger });
    let snap = NO_SNAPSHOT;
    const marker = wal.snapshotMarker;
    if (marker) {
      // The snapshot the log was told about, or failing that (corrupt) an older one the log still
      // reaches back to.
      const usable = (index: number, term: number) =>
        (index === marker.index && term === marker.term) ||
        (index < marker.index && wal.termOf(index) === term && wal.firstIndex() <= index + 1);
      // Verified whole, but not held: the payload is streamed from the file when needed.
      const loaded = await snapshots.loadNewest(usable, { withData: false });
      if (!loaded) {
        throw new StorageError(
          `no usable snapshot in ${o.dir}: the log's snapshot ${marker.index}@${marker.term} is missing or corrupt` +
            " and the log does not reach back to an older one; restore this node from a peer",
        );
      }
      if (loaded.metadata.index !== marker.index) {
        logger.warn("using an older snapshot: the newest is unusable", {
          marker: marker.index,
          using: loaded.metadata.index,
        });
      }
      snap = { metadata: loaded.metadata, data: EMPTY_BYTES };
    } else {
      // No snapshot was ever recorded: any file present is an orphan of a crash between saving it and
      // recording it. Passing over it lets a later save at a lower index go ahead.
      await snapshots.loadNewest(() => false);
    }
    const s = snap.metadata.index;
    if (wal.lastIndex() > s && wal.firstIndex() > s + 1) {
      throw new StorageError(
        `log in ${o.dir} starts at ${wal.firstIndex()} but the snapshot ends at ${s}: entries are missing`,
      );
    }
    const trailing = o.trailingEntries ?? 0;
    if (!Number.isSafeInteger(trailing) || trailing < 0)
      throw new RangeError(`trailingEntries must be a non-negative integer, not ${trailing}`);
    const storage = new DiskStorage(wal, snapshots, snap, logger, trailing);
    // Segments hold more than was kept before the restart; release the same.
    if (marker) await storage.releaseLog();
    return storage;
  }

  /** Whether nothing was ever written: a new node, to be bootstrapped or to join. */
  isEmpty(): boolean {
    return (
      this.snap.metadata.index === 0 && this.wal.lastIndex() === 0 && isEmptyHardState(this.wal.hardState)
    );
  }

  /**
   * Starts a new cluster's log: its membership as a snapshot at index 1, term 1. A snapshot, unlike a
   * placeholder at index 0, can be sent, so a node that joins later with an empty log learns the
   * membership from the leader before it applies any change.
   */
  async bootstrap(confState: ConfState, data: Uint8Array = EMPTY_BYTES): Promise<void> {
    if (!this.isEmpty()) throw new StorageError("cannot bootstrap: this storage already holds raft state");
    await this.installSnapshot(
      { metadata: { index: 1, term: 1, confState }, data },
      { term: 1, vote: 0, commit: 1 },
    );
  }

  // ------------------------------------------------------------------ raft's Storage

  initialState(): { hardState: HardState; confState: ConfState } {
    const hs = this.wal.hardState;
    // A snapshot holds only committed entries; the commit index written last may be older (see append).
    const commit = Math.max(hs.commit, this.snap.metadata.index);
    return { hardState: { ...hs, commit }, confState: this.snap.metadata.confState };
  }

  entries(lo: number, hi: number, maxBytes: number): Entry[] {
    if (lo < this.firstIndex()) throw new CompactedError(lo, this.firstIndex());
    if (hi > this.lastIndex() + 1) throw new UnavailableError(hi - 1);
    if (lo >= hi) return [];
    return this.wal.entries(lo, hi, maxBytes);
  }

  term(i: number): number {
    const s = this.snap.metadata;
    if (i === s.index) return s.term;
    const first = this.firstIndex();
    if (i < first - 1) throw new CompactedError(i, first);
    const t = this.wal.termOf(i);
    if (t === undefined) throw new UnavailableError(i);
    return t;
  }

  /**
   * The first index served: after the snapshot, or earlier when the log still holds a trailing window of
   * entries before it. The log's oldest entry is not served itself: it anchors the term of the one after.
   */
  firstIndex(): number {
    const s = this.snap.metadata.index;
    const held = this.wal.firstIndex();
    return held < s && this.wal.lastIndex() >= s ? held + 1 : s + 1;
  }

  lastIndex(): number {
    return Math.max(this.wal.lastIndex(), this.snap.metadata.index);
  }

  /**
   * The newest snapshot's metadata. Its `data` is empty: the payload lives in its file, read with
   * {@link snapshotPayload}, so that a large state is never held in memory.
   */
  snapshot(): Snapshot {
    return this.snap;
  }

  /** The newest snapshot's payload, to stream (to a peer, or into the state machine). */
  snapshotPayload(): Promise<SnapshotPayload> {
    const { index, term } = this.snap.metadata;
    return this.snapshots.payload(index, term);
  }

  // ------------------------------------------------------------------ writes

  /**
   * Persists a Ready's entries and hard state with one write and one fdatasync. Unless `mustSync` (raft's
   * Ready.mustSync: entries, or a new term or vote), the hard state changed only its commit index, which
   * is not worth an fdatasync of its own (a node that loses it learns it again from the leader, and it
   * is never taken below the snapshot at restart): it is held and written with the next durable write,
   * or at close.
   */
  append(entries: readonly Entry[], hardState: HardState | null, mustSync = true): Promise<void> {
    if (!mustSync && entries.length === 0 && hardState !== null) {
      this.heldHardState = hardState;
      return Promise.resolve();
    }
    const hs = hardState ?? this.heldHardState;
    this.heldHardState = null;
    return this.wal.append(entries, hs);
  }

  /**
   * Installs a snapshot received from the leader: file first, then the WAL's marker. The payload is
   * `payload` when given (streamed from the received file), else the snapshot's own data.
   */
  async installSnapshot(
    s: Snapshot,
    hardState: HardState | null = null,
    payload: Uint8Array | AsyncIterable<Uint8Array> = s.data,
  ): Promise<void> {
    await this.snapshots.save(s.metadata, payload);
    // A held commit index belongs to the log the snapshot replaces (and may predate its term).
    this.heldHardState = null;
    // The WAL's index switches to the snapshot when the record is made: switch our view with it.
    const recorded = this.wal.recordSnapshot(s.metadata, hardState);
    this.snap = { metadata: s.metadata, data: EMPTY_BYTES };
    await recorded;
    await this.afterSnapshotRecorded();
  }

  /**
   * Records a snapshot of the applied state at `index` (≤ lastIndex): file first, then the marker;
   * entries before the oldest kept snapshot are released and whole segments deleted.
   */
  async createSnapshot(
    index: number,
    confState: ConfState,
    data: Uint8Array | AsyncIterable<Uint8Array>,
  ): Promise<Snapshot> {
    if (index <= this.snap.metadata.index) {
      throw new StorageError(
        `snapshot at ${index} is not newer than the current one at ${this.snap.metadata.index}`,
      );
    }
    const s: Snapshot = { metadata: { index, term: this.term(index), confState }, data: EMPTY_BYTES };
    const saved = await this.snapshots.save(s.metadata, data);
    const recorded = this.wal.recordSnapshot(s.metadata);
    this.snap = s;
    await recorded;
    await this.afterSnapshotRecorded();
    this.logger.info("snapshot created", { index, term: s.metadata.term, bytes: saved.bytes });
    return s;
  }

  /** With the snapshot durably recorded: prune older snapshot files, then the log they no longer need. */
  private async afterSnapshotRecorded(): Promise<void> {
    await this.snapshots.pruneThrough(this.snap.metadata.index);
    await this.releaseLog();
  }

  /**
   * Releases the log no snapshot needs. Kept: the entries after the oldest retained snapshot, so that a
   * corrupt newest one can fall back, and a trailing window before the newest, so that a follower a
   * little behind is sent entries (the window's first entry only anchors the term of the next).
   */
  private releaseLog(): Promise<void> {
    const s = this.snap.metadata.index;
    const window = this.trailingEntries > 0 ? s - this.trailingEntries : s + 1;
    const keepFrom = Math.min(this.snapshots.oldestRetainedIndex() + 1, window);
    return this.wal.releaseBefore(Math.max(1, keepFrom));
  }

  async close(): Promise<void> {
    const held = this.heldHardState;
    this.heldHardState = null;
    if (held !== null) await this.wal.append([], held).catch(() => undefined);
    await this.wal.close();
  }
}
