/**
 * Writes held in memory in front of LMDB, so that a batch of committed entries is applied, and its
 * replies decided, on the event loop at once, while LMDB commits on its writer thread behind it.
 *
 * Each database has two layers over it: `active` takes the writes of new batches; `flushing` is a frozen
 * earlier `active` being committed. A read looks in `active`, then `flushing`, then LMDB; a layer holds
 * a key's newest value or `null` for a deletion. One flush is in flight at a time and takes everything
 * written since the last, so commits grow with the load instead of queueing behind one another.
 *
 * Nothing here needs LMDB to be durable before a reply: the entries are committed in raft, and after a
 * crash the store's recorded applied index says where raft resumes applying (the KV store's comment).
 * While a flush is in flight LMDB may already show its writes before the flush resolves; `flushing`
 * holds the same values, so reads agree either way.
 */
import type { Database, Transaction } from "lmdb";

/** A layer: latin1 of the key → the key and its newest value (null: deleted). */
type Layer = Map<string, { readonly key: Buffer; readonly value: Buffer | null }>;

export interface RangeOptions {
  /** Inclusive. */
  readonly start?: Buffer;
  /** Exclusive. */
  readonly end?: Buffer;
  readonly limit?: number;
}

/** One LMDB database seen through the write-behind layers. */
export class LayeredDb {
  private active: Layer = new Map();
  private flushing: Layer | null = null;
  /** Keys added minus keys removed by each layer, against what lay under it when written. */
  private activeDelta = 0;
  private flushingDelta = 0;
  /**
   * Keys in LMDB as of the last flush that ended, counted once when the layers are made (LMDB counts by
   * walking the database) and kept since: LMDB changes only by flushes, whose deltas are known.
   */
  private baseCount: number;
  /** Undo records of the batch being written, newest last. */
  private undo: Array<{ id: string; was: { key: Buffer; value: Buffer | null } | undefined }> = [];
  private undoDelta = 0;

  /** @param counted whether {@link count} is wanted (it costs a walk of the database here). */
  constructor(
    readonly db: Database<Buffer, Buffer>,
    counted = false,
  ) {
    this.baseCount = counted ? db.getCount() : Number.NaN;
  }

  get pendingWrites(): number {
    return this.active.size + (this.flushing?.size ?? 0);
  }

  get(key: Buffer): Buffer | undefined {
    const id = key.toString("latin1");
    const a = this.active.get(id) ?? this.flushing?.get(id);
    if (a !== undefined) return a.value ?? undefined;
    return this.db.get(key);
  }

  put(key: Buffer, value: Buffer): void {
    this.write(key, value);
  }

  remove(key: Buffer): void {
    this.write(key, null);
  }

  /** Keys present (for a database made `counted`). */
  count(): number {
    if (Number.isNaN(this.baseCount)) throw new Error("write-behind: count() of a database not counted");
    return this.baseCount + this.flushingDelta + this.activeDelta;
  }

  /** Entries in key order within the options' bounds, the layers over LMDB. */
  range(o: RangeOptions = {}): IterableIterator<{ key: Buffer; value: Buffer }> {
    return mergedRange(this.db, this.layersNewestFirst(), o, undefined);
  }

  /** A copy of what the layers hold now, for a snapshot to read beside an LMDB read transaction. */
  freezeView(): Layer[] {
    return this.layersNewestFirst().map((l) => new Map(l));
  }

  /** The batch being written is done: its writes stay. */
  commitBatch(): void {
    this.undo.length = 0;
    this.undoDelta = this.activeDelta;
  }

  /** The batch being written failed: its writes are undone, newest first. */
  rollBackBatch(): void {
    for (let i = this.undo.length - 1; i >= 0; i--) {
      const { id, was } = this.undo[i]!;
      if (was === undefined) this.active.delete(id);
      else this.active.set(id, was);
    }
    this.undo.length = 0;
    this.activeDelta = this.undoDelta;
  }

  /** Freezes `active` as the layer to flush; returns it (null when nothing is pending). */
  startFlush(): Layer | null {
    if (this.flushing !== null) throw new Error("write-behind: a flush is already in flight");
    if (this.active.size === 0) return null;
    this.flushing = this.active;
    this.flushingDelta = this.activeDelta;
    this.active = new Map();
    this.activeDelta = 0;
    this.undoDelta = 0;
    return this.flushing;
  }

  /** The flush committed: LMDB holds what `flushing` held. */
  endFlush(): void {
    this.baseCount += this.flushingDelta;
    this.flushing = null;
    this.flushingDelta = 0;
  }

  /** Drops every pending write (the store was replaced by a restore). */
  discard(): void {
    this.active = new Map();
    this.flushing = null;
    this.activeDelta = this.flushingDelta = this.undoDelta = 0;
    this.undo.length = 0;
  }

  private write(key: Buffer, value: Buffer | null): void {
    const id = key.toString("latin1");
    const existed = this.get(key) !== undefined;
    this.undo.push({ id, was: this.active.get(id) });
    // The caller may reuse its buffers: the layer keeps its own.
    this.active.set(id, { key: Buffer.from(key), value: value === null ? null : Buffer.from(value) });
    this.activeDelta += (value !== null ? 1 : 0) - (existed ? 1 : 0);
  }

  private layersNewestFirst(): Layer[] {
    return this.flushing === null ? [this.active] : [this.active, this.flushing];
  }
}

/**
 * Entries of `db` (read in `txn` when given) with `layers` (newest first) over them, in key order within
 * `o`'s bounds, deletions left out.
 */
export function* mergedRange(
  db: Database<Buffer, Buffer>,
  layers: readonly Layer[],
  o: RangeOptions,
  txn: Transaction | undefined,
): IterableIterator<{ key: Buffer; value: Buffer }> {
  const limit = o.limit ?? Number.POSITIVE_INFINITY;
  if (limit <= 0) return;
  const over = overlayInRange(layers, o);
  const base = db.getRange({
    ...(o.start !== undefined ? { start: o.start } : {}),
    ...(o.end !== undefined ? { end: o.end } : {}),
    ...(txn !== undefined ? { transaction: txn } : {}),
  });
  let given = 0;
  let i = 0;
  for (const { key, value } of base) {
    // Overlay keys before this one come first; one equal to it replaces it.
    while (i < over.length && Buffer.compare(over[i]!.key, key) < 0) {
      const e = over[i++]!;
      if (e.value !== null) {
        yield { key: e.key, value: e.value };
        if (++given >= limit) return;
      }
    }
    if (i < over.length && Buffer.compare(over[i]!.key, key) === 0) {
      const e = over[i++]!;
      if (e.value === null) continue;
      yield { key: e.key, value: e.value };
    } else {
      // LMDB's cursor may reuse its key buffer; callers keep keys (FLUSHDB collects them all).
      yield { key: Buffer.from(key), value };
    }
    if (++given >= limit) return;
  }
  for (; i < over.length; i++) {
    const e = over[i]!;
    if (e.value === null) continue;
    yield { key: e.key, value: e.value };
    if (++given >= limit) return;
  }
}

/** The layers' entries within the bounds, the newest layer winning, in key order. */
function overlayInRange(
  layers: readonly Layer[],
  o: RangeOptions,
): Array<{ readonly key: Buffer; readonly value: Buffer | null }> {
  const seen = new Map<string, { readonly key: Buffer; readonly value: Buffer | null }>();
  for (const layer of layers)
    for (const [id, e] of layer) {
      if (seen.has(id)) continue;
      if (o.start !== undefined && Buffer.compare(e.key, o.start) < 0) continue;
      if (o.end !== undefined && Buffer.compare(e.key, o.end) >= 0) continue;
      seen.set(id, e);
    }
  return [...seen.values()].sort((a, b) => Buffer.compare(a.key, b.key));
}
