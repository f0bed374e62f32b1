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

type LayerEntry = { readonly key: Buffer; readonly value: Buffer | null };
/** A layer: latin1 of the key → the key and its newest value (null: deleted). */
type Layer = Map<string, LayerEntry>;

/** Writes kept in a group's sorted pending writes between two reads of it (see `groupSorted`). */
const MAX_SPLICES = 64;

/** LMDB's largest key (at its default page size); LMDB would throw on a longer one at commit. */
const LMDB_MAX_KEY_BYTES = 1978;

/** What one database of the store offers a batch: the layers below, or LMDB itself inside a transaction. */
export interface KvTable {
  get(key: Buffer): Buffer | undefined;
  put(key: Buffer, value: Buffer): void;
  remove(key: Buffer): void;
  range(o?: RangeOptions): IterableIterator<{ key: Buffer; value: Buffer }>;
  count(): number;
}

/** A batch wrote more than the layers take at once: it is run again directly in LMDB. */
export class BatchTooLargeError extends Error {
  constructor(limitBytes: number) {
    super(`a batch wrote more than ${limitBytes} bytes to the write-behind layers`);
    this.name = "BatchTooLargeError";
  }
}

/** Bytes the batch being written has put in the layers, across the store's databases. */
export class BatchBudget {
  spent = 0;
  constructor(readonly limitBytes: number) {}
  spend(bytes: number): void {
    this.spent += bytes;
    if (this.spent > this.limitBytes) throw new BatchTooLargeError(this.limitBytes);
  }
}

export interface RangeOptions {
  /** Inclusive. */
  readonly start?: Buffer;
  /** Exclusive. */
  readonly end?: Buffer;
  readonly limit?: number;
  /**
   * Every key in the range starts with these bytes (a collection's id): a table made with `groupBytes`
   * of this length then merges only the group's pending writes, not every pending write.
   */
  readonly group?: Buffer;
  /** From the last key within the bounds down to the first (a sorted set's highest scores first). */
  readonly reverse?: boolean;
}

/** Ids of a layer's entries by their first `groupBytes` bytes (latin1). */
type Groups = Map<string, Set<string>>;

/**
 * One LMDB database seen through the write-behind layers. It keeps the buffers it is given to write:
 * the caller must not change them afterwards.
 */
export class LayeredDb implements KvTable {
  private active: Layer = new Map();
  private flushing: Layer | null = null;
  /** Keys added minus keys removed by each layer, against what lay under it when written. */
  private activeDelta = 0;
  private flushingDelta = 0;
  /** Key and value bytes written to each layer (overwrites counted again: a bound, not a size). */
  private activeBytes = 0;
  private flushingBytes = 0;
  /** The layers' entries in key order, newest winning, until the next write. */
  private sorted: LayerEntry[] | null = null;
  /**
   * Keys in LMDB as of the last flush that ended, counted once when the layers are made (LMDB counts by
   * walking the database) and kept since: LMDB changes only by flushes, whose deltas are known.
   */
  private baseCount: number;
  /** Undo records of the batch being written, newest last. */
  private undo: Array<{ id: string; was: { key: Buffer; value: Buffer | null } | undefined }> = [];
  private undoDelta = 0;
  private undoBytes = 0;
  /**
   * The last key read from LMDB and what it held (undefined: absent). A command reads its key more than
   * once (its lookup, the old record it replaces, whether it existed), and an LMDB read copies the value.
   * Valid until LMDB changes, which it does only by a flush ending or the layers being discarded.
   */
  private lastRead: { id: string; value: Buffer | undefined } | null = null;
  /**
   * With `groupBytes`: each layer's keys by group, so that a range within one group (a collection's
   * items) sorts that group's pending writes only. Ids stay listed after a rollback removed their entry
   * (they are looked up, and skipped when gone).
   */
  private activeGroups: Groups | null;
  private flushingGroups: Groups | null = null;
  /**
   * Each group's pending writes in key order, newest winning, kept up to date by writes (a binary search
   * and a splice, not a sort) and dropped by rollbacks and flushes. Ranges over a group read it lazily:
   * every caller consumes a range before it writes again. Past MAX_SPLICES writes with no range read
   * between them (one command writing a whole collection), a write drops it instead: splices into a
   * large array cost more than one sort at the next range.
   */
  private groupSorted = new Map<string, { entries: LayerEntry[]; splices: number }>();

  /**
   * @param counted whether {@link count} is wanted (it costs a walk of the database here).
   * @param budget shared by the store's databases: what one batch may write.
   */
  constructor(
    readonly db: Database<Buffer, Buffer>,
    private readonly budget: BatchBudget,
    private readonly counted = false,
    private readonly groupBytes = 0,
  ) {
    this.baseCount = counted ? db.getCount() : Number.NaN;
    this.activeGroups = groupBytes > 0 ? new Map() : null;
  }

  get pendingWrites(): number {
    return this.active.size + (this.flushing?.size ?? 0);
  }

  get pendingBytes(): number {
    return this.activeBytes + this.flushingBytes;
  }

  get(key: Buffer): Buffer | undefined {
    return this.read(key, key.toString("latin1"));
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
    if (o.group !== undefined && o.group.length === this.groupBytes && this.activeGroups !== null)
      return mergeWithLmdb(this.db, this.groupEntries(o.group.toString("latin1")), o, undefined);
    this.sorted ??= sortedEntries(this.layersNewestFirst());
    return mergeWithLmdb(this.db, this.sorted, o, undefined);
  }

  /** The pending writes of one group, newest winning, in key order. */
  private groupEntries(group: string): LayerEntry[] {
    const cached = this.groupSorted.get(group);
    if (cached !== undefined) {
      cached.splices = 0;
      return cached.entries;
    }
    const seen = new Map<string, LayerEntry>();
    const pairs: Array<[Layer | null, Groups | null]> = [
      [this.active, this.activeGroups],
      [this.flushing, this.flushingGroups],
    ];
    for (const [layer, groups] of pairs) {
      const ids = groups?.get(group);
      if (layer === null || ids === undefined) continue;
      for (const id of ids) {
        if (seen.has(id)) continue;
        const e = layer.get(id);
        if (e !== undefined) seen.set(id, e);
      }
    }
    const sorted = inKeyOrder(seen);
    this.groupSorted.set(group, { entries: sorted, splices: 0 });
    return sorted;
  }

  /** A copy of what the layers hold now, for a snapshot to read beside an LMDB read transaction. */
  freezeView(): Layer[] {
    return this.layersNewestFirst().map((l) => new Map(l));
  }

  /** The batch being written is done: its writes stay. */
  commitBatch(): void {
    this.undo.length = 0;
    this.undoDelta = this.activeDelta;
    this.undoBytes = this.activeBytes;
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
    this.activeBytes = this.undoBytes;
    this.sorted = null;
    this.groupSorted.clear();
  }

  /** Freezes `active` as the layer to flush; returns it (null when nothing is pending). */
  startFlush(): Layer | null {
    if (this.flushing !== null) throw new Error("write-behind: a flush is already in flight");
    if (this.active.size === 0) return null;
    this.flushing = this.active;
    this.flushingDelta = this.activeDelta;
    this.flushingBytes = this.activeBytes;
    this.flushingGroups = this.activeGroups;
    if (this.activeGroups !== null) this.activeGroups = new Map();
    this.active = new Map();
    this.activeDelta = this.activeBytes = 0;
    this.undoDelta = this.undoBytes = 0;
    return this.flushing;
  }

  /** The flush committed: LMDB holds what `flushing` held. */
  endFlush(): void {
    this.lastRead = null;
    this.baseCount += this.flushingDelta;
    this.flushing = null;
    this.flushingGroups = null;
    this.flushingDelta = this.flushingBytes = 0;
    this.sorted = null;
    this.groupSorted.clear();
  }

  /** Drops every pending write (the store was replaced by a restore). */
  discard(): void {
    this.lastRead = null;
    this.active = new Map();
    this.flushing = null;
    this.flushingGroups = null;
    if (this.activeGroups !== null) this.activeGroups = new Map();
    this.activeDelta = this.flushingDelta = this.undoDelta = 0;
    this.activeBytes = this.flushingBytes = this.undoBytes = 0;
    this.undo.length = 0;
    this.sorted = null;
    this.groupSorted.clear();
  }

  private write(key: Buffer, value: Buffer | null): void {
    // Refused here, inside the batch, which then rolls back: at commit it would fail a whole flush.
    if (!storable(key))
      throw new RangeError(`LMDB keys are 1 to ${LMDB_MAX_KEY_BYTES} bytes, not ${key.length}`);
    const bytes = key.length + (value?.length ?? 0);
    this.budget.spend(bytes);
    const id = key.toString("latin1");
    const existed = this.counted && this.read(key, id) !== undefined;
    this.undo.push({ id, was: this.active.get(id) });
    // Kept as given, not copied: the store's writer builds every key and value afresh for the write.
    const entry = { key, value };
    this.active.set(id, entry);
    if (this.activeGroups !== null && key.length >= this.groupBytes) {
      const group = id.slice(0, this.groupBytes);
      const cached = this.groupSorted.get(group);
      if (cached !== undefined && ++cached.splices > MAX_SPLICES) this.groupSorted.delete(group);
      else if (cached !== undefined) {
        const sorted = cached.entries;
        const at = firstAtOrAfter(sorted, key);
        if (at < sorted.length && sorted[at]!.key.equals(key)) sorted[at] = entry;
        else sorted.splice(at, 0, entry);
      }
      const ids = this.activeGroups.get(group);
      if (ids === undefined) this.activeGroups.set(group, new Set([id]));
      else ids.add(id);
    }
    if (this.counted) this.activeDelta += (value !== null ? 1 : 0) - (existed ? 1 : 0);
    this.activeBytes += bytes;
    this.sorted = null;
  }

  private read(key: Buffer, id: string): Buffer | undefined {
    const a = this.active.get(id) ?? this.flushing?.get(id);
    if (a !== undefined) return a.value ?? undefined;
    // No such key can be stored; LMDB would throw on it (a throw in apply would stop every replica).
    if (!storable(key)) return undefined;
    const last = this.lastRead;
    if (last !== null && last.id === id) return last.value;
    const value = this.db.get(key);
    this.lastRead = { id, value };
    return value;
  }

  private layersNewestFirst(): Layer[] {
    return this.flushing === null ? [this.active] : [this.active, this.flushing];
  }
}

/**
 * Entries of `db` (read in `txn` when given) with `layers` (newest first) over them, in key order within
 * `o`'s bounds, deletions left out.
 */
export function mergedRange(
  db: Database<Buffer, Buffer>,
  layers: readonly Layer[],
  o: RangeOptions,
  txn: Transaction | undefined,
): IterableIterator<{ key: Buffer; value: Buffer }> {
  return mergeWithLmdb(db, sortedEntries(layers), o, txn);
}

function* mergeWithLmdb(
  db: Database<Buffer, Buffer>,
  over: readonly LayerEntry[],
  o: RangeOptions,
  txn: Transaction | undefined,
): IterableIterator<{ key: Buffer; value: Buffer }> {
  if (o.reverse === true) {
    yield* mergeWithLmdbDescending(db, over, o, txn);
    return;
  }
  const limit = o.limit ?? Number.POSITIVE_INFINITY;
  if (limit <= 0) return;
  const stop = o.end === undefined ? over.length : firstAtOrAfter(over, o.end);
  let i = o.start === undefined ? 0 : firstAtOrAfter(over, o.start);
  const base = db.getRange({
    ...(o.start !== undefined ? { start: o.start } : {}),
    ...(o.end !== undefined ? { end: o.end } : {}),
    ...(txn !== undefined ? { transaction: txn } : {}),
  });
  let given = 0;
  for (const { key, value } of base) {
    // Overlay keys before this one come first; one equal to it replaces it.
    while (i < stop && Buffer.compare(over[i]!.key, key) < 0) {
      const e = over[i++]!;
      if (e.value !== null) {
        yield { key: e.key, value: e.value };
        if (++given >= limit) return;
      }
    }
    if (i < stop && Buffer.compare(over[i]!.key, key) === 0) {
      const e = over[i++]!;
      if (e.value === null) continue;
      yield { key: e.key, value: e.value };
    } else {
      // LMDB's cursor may reuse its key buffer; callers keep keys (FLUSHDB collects them all).
      yield { key: Buffer.from(key), value };
    }
    if (++given >= limit) return;
  }
  for (; i < stop; i++) {
    const e = over[i]!;
    if (e.value === null) continue;
    yield { key: e.key, value: e.value };
    if (++given >= limit) return;
  }
}

/** The layers' entries, the newest layer winning, in key order. */
function sortedEntries(layers: readonly Layer[]): LayerEntry[] {
  if (layers.length === 1) return inKeyOrder(layers[0]!);
  const seen = new Map<string, LayerEntry>();
  for (const layer of layers) for (const [id, e] of layer) if (!seen.has(id)) seen.set(id, e);
  return inKeyOrder(seen);
}

/**
 * Entries by id, in key order. Ids are the keys in latin1, whose default (UTF-16 code unit) order is the
 * keys' byte order: a string sort, several times faster than comparing the buffers.
 */
function inKeyOrder(byId: ReadonlyMap<string, LayerEntry>): LayerEntry[] {
  return [...byId.keys()].sort().map((id) => byId.get(id)!);
}

/** mergeWithLmdb from the top of the bounds down. */
function* mergeWithLmdbDescending(
  db: Database<Buffer, Buffer>,
  over: readonly LayerEntry[],
  o: RangeOptions,
  txn: Transaction | undefined,
): IterableIterator<{ key: Buffer; value: Buffer }> {
  const limit = o.limit ?? Number.POSITIVE_INFINITY;
  if (limit <= 0) return;
  const bottom = o.start === undefined ? 0 : firstAtOrAfter(over, o.start);
  let i = (o.end === undefined ? over.length : firstAtOrAfter(over, o.end)) - 1;
  // LMDB's reverse range starts at its `start` (inclusive) and stops at its `end` (inclusive here): our
  // exclusive upper bound is skipped by hand.
  const base = db.getRange({
    reverse: true,
    inclusiveEnd: true,
    ...(o.end !== undefined ? { start: o.end } : {}),
    ...(o.start !== undefined ? { end: o.start } : {}),
    ...(txn !== undefined ? { transaction: txn } : {}),
  });
  let given = 0;
  for (const { key, value } of base) {
    if (o.end !== undefined && Buffer.compare(key, o.end) >= 0) continue;
    while (i >= bottom && Buffer.compare(over[i]!.key, key) > 0) {
      const e = over[i--]!;
      if (e.value !== null) {
        yield { key: e.key, value: e.value };
        if (++given >= limit) return;
      }
    }
    if (i >= bottom && Buffer.compare(over[i]!.key, key) === 0) {
      const e = over[i--]!;
      if (e.value === null) continue;
      yield { key: e.key, value: e.value };
    } else {
      yield { key: Buffer.from(key), value };
    }
    if (++given >= limit) return;
  }
  for (; i >= bottom; i--) {
    const e = over[i]!;
    if (e.value === null) continue;
    yield { key: e.key, value: e.value };
    if (++given >= limit) return;
  }
}

/** The first position whose key is at or after `key` (entries in key order). */
function firstAtOrAfter(entries: readonly LayerEntry[], key: Buffer): number {
  let lo = 0;
  let hi = entries.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (Buffer.compare(entries[mid]!.key, key) < 0) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** Whether LMDB takes `key` (at its default page size). */
function storable(key: Buffer): boolean {
  return key.length > 0 && key.length <= LMDB_MAX_KEY_BYTES;
}

/** LMDB itself as a batch's table, inside a synchronous write transaction (a batch too large to hold). */
export class DirectTable implements KvTable {
  constructor(private readonly db: Database<Buffer, Buffer>) {}
  get(key: Buffer): Buffer | undefined {
    return storable(key) ? this.db.get(key) : undefined;
  }
  put(key: Buffer, value: Buffer): void {
    this.db.putSync(key, value);
  }
  remove(key: Buffer): void {
    this.db.removeSync(key);
  }
  range(o: RangeOptions = {}): IterableIterator<{ key: Buffer; value: Buffer }> {
    return mergeWithLmdb(this.db, [], o, undefined);
  }
  count(): number {
    return this.db.getCount();
  }
}
