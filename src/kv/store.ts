/**
 * The on-disk key-value store, on LMDB. One environment holds the keys (key → record), an expiry
 * index (expiry time ‖ key), the tombstones of deleted keys (key → deleted version and time, and an
 * index of them by time), the items of collections (collection id ‖ item → value: a hash's fields),
 * and in `meta` the applied index, the tombstone horizon and the last collection id, all changed
 * together: LMDB holds, at every commit, exactly the batches up to its recorded applied index, so a
 * restart neither re-applies an entry nor skips one.
 *
 * Tombstones serve WATCH (see `watch.ts`): a deletion leaves one when the deleted record's version is
 * above the horizon; the leader has old ones forgotten (`forget`), which raises the horizon to the
 * highest version forgotten. So every deleted record whose version is above the horizon has a
 * tombstone (or a later one of the same key).
 *
 * A batch is applied in memory, in front of LMDB (`write-behind.ts`): its replies are decided at once,
 * reads see it at once, and LMDB commits it on its writer thread behind, together with the batches
 * applied meanwhile. Commits do not wait for their fsync either (LMDB's overlapping sync keeps the file
 * consistent). So a crash or a power loss can take the store back to an earlier batch, never to a
 * state that is no batch's: its recorded applied index tells raft where to resume, and raft still has
 * the later entries in its WAL or covers them with a snapshot.
 *
 * A restore writes a whole new environment beside the live one, syncs it, and then switches the
 * `CURRENT` pointer file with an atomic rename: a crash at any point leaves the old store or the new
 * one, never neither. Generations the pointer does not name are removed at open.
 */
import { promises as fsp } from "node:fs";
import * as path from "node:path";
import { type Database, open as openLmdb, type RootDatabase, TransactionFlags } from "lmdb";
import type { SnapshotHandle } from "../engine/state-machine.js";
import { ensureDurableDir, type FileSystem, NodeFileSystem } from "../storage/fs.js";
import { KvStoreCorruptError } from "./errors.js";
import {
  decodeRecord,
  decodeTombstone,
  encodeRecord,
  encodeTombstone,
  expiryIndexKey,
  itemKey,
  type KeyRecord,
  RANK_INDEX_ID_OFFSET,
  RECORD_HEADER_BYTES,
  RecordType,
  rankIndexId,
  recordCollectionId,
  recordExpiry,
  recordVersion,
  type Tombstone,
} from "./record.js";
import { encodeKvSnapshot, KvSnapshotDecoder } from "./snapshot-format.js";
import { readU64 as readU64At } from "./u64.js";
import {
  BatchBudget,
  BatchTooLargeError,
  DirectTable,
  type KvTable,
  LayeredDb,
  mergedRange,
} from "./write-behind.js";

const CURRENT = "CURRENT";
const APPLIED_KEY = Buffer.from("applied");
const HORIZON_KEY = Buffer.from("tombstone-horizon");
/** The highest node id that was ever a member: ids above it only are new (a node id is never reused). */
const HIGHEST_ID_KEY = Buffer.from("highest-node-id");
const FORMAT_KEY = Buffer.from("format");
/** The last collection id given out (ids are never reused, so no stale item is ever seen). */
const COLLECTION_ID_KEY = Buffer.from("last-collection-id");
/**
 * The layout of records and meta; a store of another format is refused, never misread. Format 2 (before
 * collections) is format 3 without items: it is marked 3 when opened.
 */
const STORE_FORMAT = 3;
const FORMAT_WITHOUT_ITEMS = 2;
/** The address book's rows in `meta`: this prefix, then the node id as a u64. */
const ADDRESS_PREFIX = Buffer.from("addr:");
/** Just past every row with the prefix (";" follows ":"). */
const ADDRESS_END = Buffer.from("addr;");
/** Keys per write transaction while a snapshot is restored. */
const RESTORE_BATCH_KEYS = 10_000;
/** Commit without waiting for the fsync; the file stays consistent (overlapping sync). */
const COMMIT_NO_FLUSH =
  TransactionFlags.ABORTABLE | TransactionFlags.SYNCHRONOUS_COMMIT | TransactionFlags.NO_SYNC_FLUSH;

export interface KvStoreLimits {
  readonly maxKeyBytes: number;
  /** The largest record (header and value). */
  readonly maxRecordBytes: number;
}

export const DEFAULT_KV_LIMITS: KvStoreLimits = {
  maxKeyBytes: 64 * 1024,
  maxRecordBytes: 512 * 1024 * 1024 + 9,
};

/** Writes inside one batch; reads see the batch's own writes. */
export interface KvWriter {
  get(key: Uint8Array): KeyRecord | undefined;
  /** Stores a record written by the entry at index `version`. */
  put(key: Uint8Array, type: RecordType, expireAtMs: number, payload: Uint8Array, version: number): void;
  /** Whether the key was there; a deletion by an entry of time `atMs` may leave a tombstone. */
  delete(key: Uint8Array, atMs: number): boolean;
  /** Removes every key (each may leave a tombstone, as a deletion does). */
  clear(atMs: number): void;
  /** Up to `limit` keys from `start` on (inclusive), in key order, with their records. */
  range(start: Uint8Array, limit: number): Array<[Buffer, KeyRecord]>;
  /** Keys stored, as this batch sees them. */
  count(): number;
  /** The key's tombstone, if it has one. */
  tombstone(key: Uint8Array): Tombstone | undefined;
  /** Every deleted record with a version above this has a tombstone. */
  tombstoneHorizon(): number;
  /** Forgets up to `limit` tombstones left at or before `cutoffMs`, oldest first; how many were looked at. */
  forgetTombstones(cutoffMs: number, limit: number): number;
  /** A new collection's id (every replica gives out the same ids in the same order). */
  newCollectionId(): number;
  item(id: number, sub: Uint8Array): Buffer | undefined;
  putItem(id: number, sub: Uint8Array, value: Uint8Array): void;
  removeItem(id: number, sub: Uint8Array): void;
  /** Up to `limit` items of collection `id` from `start` on (inclusive; null: the first), in item order. */
  items(id: number, start: Uint8Array | null, limit: number): Array<[Buffer, Buffer]>;
  /** Up to `limit` items of collection `id` below `below` (exclusive; null: from the last), descending. */
  itemsBelow(id: number, below: Uint8Array | null, limit: number): Array<[Buffer, Buffer]>;
  /**
   * Removes a key's record but keeps its collection's items, for RENAME, which has already stored the
   * same collection under the new name. Otherwise as delete().
   */
  detach(key: Uint8Array, atMs: number): boolean;
}

interface Generation {
  readonly number: number;
  readonly file: string;
  readonly root: RootDatabase<Buffer, Buffer>;
  readonly keys: Database<Buffer, Buffer>;
  readonly expiries: Database<Buffer, Buffer>;
  /** stored key → deleted record's version and deletion time. */
  readonly tombstones: Database<Buffer, Buffer>;
  /** deletion time ‖ stored key → nothing: the tombstones by age, for forgetting. */
  readonly burials: Database<Buffer, Buffer>;
  /** collection id ‖ item key → item value. */
  readonly items: Database<Buffer, Buffer>;
  readonly meta: Database<Buffer, Buffer>;
}

/** The databases a batch writes. */
interface Tables<T extends KvTable = KvTable> {
  readonly keys: T;
  readonly expiries: T;
  readonly tombstones: T;
  readonly burials: T;
  readonly items: T;
  readonly meta: T;
}

/** The generation's databases seen through the write-behind layers. */
type View = Tables<LayeredDb>;

function viewOf(gen: Generation, budget: BatchBudget): View {
  return {
    keys: new LayeredDb(gen.keys, budget, true),
    expiries: new LayeredDb(gen.expiries, budget),
    tombstones: new LayeredDb(gen.tombstones, budget),
    burials: new LayeredDb(gen.burials, budget),
    // Grouped by collection id: a range over one collection's items sorts only its pending writes.
    items: new LayeredDb(gen.items, budget, false, 8),
    meta: new LayeredDb(gen.meta, budget),
  };
}

function directTables(gen: Generation): Tables<DirectTable> {
  return {
    keys: new DirectTable(gen.keys),
    expiries: new DirectTable(gen.expiries),
    tombstones: new DirectTable(gen.tombstones),
    burials: new DirectTable(gen.burials),
    items: new DirectTable(gen.items),
    meta: new DirectTable(gen.meta),
  };
}

function layersOf(v: View): LayeredDb[] {
  return [v.keys, v.expiries, v.tombstones, v.burials, v.items, v.meta];
}

/**
 * Bytes one batch may put in the layers. A larger batch (FLUSHALL of a large store, a huge MSET) is run
 * again in one synchronous LMDB transaction once the layers are flushed, as every batch once was.
 */
const MAX_BATCH_BYTES = 32 * 1024 * 1024;
/** Writes, and bytes, held in memory past which a batch waits for LMDB to catch up. */
const MAX_PENDING_WRITES = 200_000;
const MAX_PENDING_BYTES = 64 * 1024 * 1024;
/**
 * LMDB commits what was written at most this often, or sooner once this many writes (or bytes) are
 * held, as etcd's backend batches its bbolt commits: each commit rewrites every page it touches and
 * syncs, and the disk it shares with the WAL is better spent on the WAL's syncs, which writes wait for.
 * Once a second rather than etcd's 100 ms: keys spread over a large store touch a page each, and a
 * longer interval lets more of them share one (redis-benchmark SET, 50 clients, two alternating runs:
 * 5,487 and 5,058 SET/s at 100 ms, 6,216 and 5,757 at 1 s; the WAL's fdatasync 1.0–1.4 ms against
 * 0.85–1.1). A crash costs at most that much more of the WAL to apply again at the next start.
 */
const FLUSH_INTERVAL_MS = 1000;
const FLUSH_AT_WRITES = 10_000;
const FLUSH_AT_BYTES = 8 * 1024 * 1024;

export class KvStore {
  private gen: Generation;
  private view: View;
  private applied: number;
  private closed = false;
  /** The LMDB commit of earlier batches under way, if any. */
  private flushing: Promise<void> | null = null;
  /** An LMDB commit failed: the store takes no more writes. */
  private failure: Error | null = null;
  private flushTimer: NodeJS.Timeout | null = null;
  private readonly budget = new BatchBudget(MAX_BATCH_BYTES);

  private constructor(
    private readonly dir: string,
    private readonly limits: KvStoreLimits,
    gen: Generation,
  ) {
    this.gen = gen;
    this.view = viewOf(gen, this.budget);
    this.applied = readApplied(gen);
  }

  static async open(dir: string, limits: Partial<KvStoreLimits> = {}): Promise<KvStore> {
    const fsys = new NodeFileSystem();
    await ensureDurableDir(fsys, dir);
    let number = 1;
    const pointer = path.join(dir, CURRENT);
    if (fsys.exists(pointer)) {
      const text = Buffer.from(fsys.readFile(pointer)).toString("utf8");
      const m = /^gen-(\d+)\n$/.exec(text);
      if (!m) throw new KvStoreCorruptError(`${pointer} holds ${JSON.stringify(text.slice(0, 40))}`);
      number = Number(m[1]);
      if (!fsys.exists(generationFile(dir, number)))
        throw new KvStoreCorruptError(`${pointer} names ${generationFile(dir, number)}, which is missing`);
    } else {
      await writePointer(fsys, dir, number);
    }
    await removeGenerationsExcept(dir, number);
    const gen = openGeneration(dir, number);
    try {
      checkFormat(gen);
    } catch (err) {
      await gen.root.close();
      throw err;
    }
    return new KvStore(dir, { ...DEFAULT_KV_LIMITS, ...limits }, gen);
  }

  /** The index of the last entry whose effects are in the store. */
  get appliedIndex(): number {
    return this.applied;
  }

  /**
   * Runs `fn` as one batch that also records `appliedIndex`, synchronously, in the write-behind layers:
   * what it returns is decided, and reads see its writes, when it returns. If `fn` throws, nothing it
   * wrote stays. LMDB commits the batch behind (see {@link flush}). A batch that writes more than the
   * layers take at once throws BatchTooLargeError (writeBatchAsync runs it in LMDB instead).
   */
  writeBatch<T>(appliedIndex: number, fn: (w: KvWriter) => T): T {
    const out = this.inLayers((v) => {
      const r = fn(this.writer(v));
      v.meta.put(APPLIED_KEY, u64(appliedIndex));
      return r;
    });
    this.applied = appliedIndex;
    return out;
  }

  /** Runs `fn` as one batch in the layers: all its writes stay, or (if it throws) none. */
  private inLayers<T>(fn: (v: View) => T): T {
    this.checkWritable();
    const v = this.view;
    this.budget.spent = 0;
    let out: T;
    try {
      out = fn(v);
    } catch (err) {
      for (const l of layersOf(v)) l.rollBackBatch();
      throw err;
    }
    for (const l of layersOf(v)) l.commitBatch();
    this.scheduleFlush();
    return out;
  }

  /**
   * Like {@link writeBatch}; waits only when more writes are held in memory than the limit, for LMDB
   * to commit those before.
   */
  async writeBatchAsync<T>(appliedIndex: number, fn: (w: KvWriter) => T): Promise<T> {
    let out: T;
    try {
      out = this.writeBatch(appliedIndex, fn);
    } catch (err) {
      if (!(err instanceof BatchTooLargeError)) throw err;
      out = await this.writeBatchDirect(appliedIndex, fn);
    }
    while (this.flushing !== null && this.overPendingLimit()) await this.flushing;
    this.checkWritable();
    return out;
  }

  /** A batch too large for the layers: in one synchronous LMDB transaction, once the layers are in LMDB. */
  private async writeBatchDirect<T>(appliedIndex: number, fn: (w: KvWriter) => T): Promise<T> {
    // The engine applies one batch at a time: nothing writes to the layers while this waits.
    await this.flush();
    const gen = this.gen;
    const out = gen.root.transactionSync(() => {
      const r = fn(this.writer(directTables(gen)));
      gen.meta.putSync(APPLIED_KEY, u64(appliedIndex));
      return r;
    }, COMMIT_NO_FLUSH);
    // LMDB changed under the layers (empty now): new layers count its keys again.
    this.view = viewOf(gen, this.budget);
    this.applied = appliedIndex;
    return out;
  }

  private pendingWrites(): number {
    let n = 0;
    for (const l of layersOf(this.view)) n += l.pendingWrites;
    return n;
  }

  private pendingBytes(): number {
    let n = 0;
    for (const l of layersOf(this.view)) n += l.pendingBytes;
    return n;
  }

  private overPendingLimit(): boolean {
    return this.pendingWrites() > MAX_PENDING_WRITES || this.pendingBytes() > MAX_PENDING_BYTES;
  }

  /** Has LMDB commit what is held: soon, or now once enough is. */
  private scheduleFlush(): void {
    if (this.flushing !== null) return;
    if (this.pendingWrites() >= FLUSH_AT_WRITES || this.pendingBytes() >= FLUSH_AT_BYTES) {
      this.startFlush();
      return;
    }
    if (this.flushTimer !== null || this.pendingWrites() === 0) return;
    this.flushTimer = setTimeout(() => {
      this.flushTimer = null;
      this.startFlush();
    }, FLUSH_INTERVAL_MS);
    this.flushTimer.unref();
  }

  /** Starts an LMDB commit of everything written since the last one, unless one is under way. */
  private startFlush(): void {
    if (this.flushTimer !== null) {
      clearTimeout(this.flushTimer);
      this.flushTimer = null;
    }
    if (this.flushing !== null || this.failure !== null || this.closed) return;
    const v = this.view;
    const frozen = layersOf(v).flatMap((l) => {
      const layer = l.startFlush();
      return layer === null ? [] : [{ l, layer }];
    });
    if (frozen.length === 0) return;
    // Queued as LMDB's own asynchronous writes: its writer thread does the B-tree work, off the event
    // loop, and every write queued in one event turn is one transaction (lmdb-js's event-turn batching;
    // no synchronous transaction runs on this environment meanwhile to split it).
    const commits = new Set<Promise<boolean>>();
    try {
      for (const { l, layer } of frozen)
        for (const e of layer.values())
          commits.add(e.value === null ? l.db.remove(e.key) : l.db.put(e.key, e.value));
    } catch (err) {
      // Keys are checked as they enter the layers, so this is not expected; but the writes already queued
      // would commit without the applied index (written last): the store must take no more writes.
      this.failure = err instanceof Error ? err : new Error(String(err));
    }
    const failed = this.failure;
    this.flushing = Promise.all(commits).then(
      () => {
        this.flushing = null;
        if (failed !== null) return;
        for (const { l } of frozen) l.endFlush();
        // What was written meanwhile goes next, in one commit.
        this.scheduleFlush();
      },
      (err: unknown) => {
        this.failure = err instanceof Error ? err : new Error(String(err));
        this.flushing = null;
      },
    );
  }

  private writer(tables: Tables): KvWriter {
    const { keys, expiries, tombstones, burials, items, meta } = tables;
    // Read once per batch, and only by a batch that deletes or checks a WATCH.
    let horizon: number | null = null;
    const tombstoneHorizon = () => {
      horizon ??= readU64(meta, HORIZON_KEY);
      return horizon;
    };
    /** Leaves a tombstone for a deleted record, unless its version is at or below the horizon. */
    const bury = (k: Buffer, version: number, atMs: number) => {
      if (version <= tombstoneHorizon()) return;
      tombstones.put(k, encodeTombstone(version, atMs));
      burials.put(expiryIndexKey(atMs, k), EMPTY);
    };
    /** Removes every item of the collection in record `old` (deleted or overwritten), its index too. */
    const dropItems = (id: number, old: Uint8Array) => {
      for (const { key } of [...items.range(itemsOf(id))]) items.remove(key);
      if (old[0] === RecordType.ZSet)
        for (const { key } of [...items.range(itemsOf(rankIndexId(id)))]) items.remove(key);
    };
    const remove = (key: Uint8Array, atMs: number, keepItems: boolean) => {
      const k = storedKey(key);
      const old = keys.get(k);
      if (old === undefined) return false;
      const oldExpiry = recordExpiry(old);
      if (oldExpiry !== 0) expiries.remove(expiryIndexKey(oldExpiry, k));
      bury(k, recordVersion(old), atMs);
      keys.remove(k);
      const id = recordCollectionId(old);
      if (id !== 0 && !keepItems) dropItems(id, old);
      return true;
    };
    return {
      get: (key) => {
        const v = keys.get(storedKey(key));
        return v === undefined ? undefined : decodeRecord(v);
      },
      put: (key, type, expireAtMs, payload, version) => {
        const k = storedKey(key);
        const old = keys.get(k);
        if (old !== undefined) {
          const oldExpiry = recordExpiry(old);
          if (oldExpiry !== 0 && oldExpiry !== expireAtMs) expiries.remove(expiryIndexKey(oldExpiry, k));
          // A collection replaced by another value (SET over a hash) takes its items with it.
          const oldId = recordCollectionId(old);
          if (oldId !== 0 && (type === RecordType.String || collectionIdOf(payload) !== oldId))
            dropItems(oldId, old);
        }
        keys.put(k, encodeRecord(type, expireAtMs, version, payload));
        if (expireAtMs !== 0) expiries.put(expiryIndexKey(expireAtMs, k), EMPTY);
      },
      delete: (key, atMs) => remove(key, atMs, false),
      detach: (key, atMs) => remove(key, atMs, true),
      clear: (atMs) => {
        // Only keys and versions are kept (the lazy map lets each value go), then the keys are removed.
        const all = [...Array.from(keys.range(), ({ key, value }) => [key, recordVersion(value)] as const)];
        for (const [k, version] of all) {
          bury(k, version, atMs);
          keys.remove(k);
        }
        for (const { key } of [...expiries.range()]) expiries.remove(key);
        for (const { key } of [...items.range()]) items.remove(key);
      },
      newCollectionId: () => {
        const id = readU64(meta, COLLECTION_ID_KEY) + 1;
        // Ids from the offset on hold sorted sets' rank indexes (2^52 collections: never reached).
        if (id >= RANK_INDEX_ID_OFFSET)
          throw new KvStoreCorruptError(`collection id ${id} past the id space`);
        meta.put(COLLECTION_ID_KEY, u64(id));
        return id;
      },
      item: (id, sub) => items.get(itemKey(id, sub)),
      putItem: (id, sub, value) => items.put(itemKey(id, sub), Buffer.from(value)),
      removeItem: (id, sub) => items.remove(itemKey(id, sub)),
      items: (id, start, limit) => itemRange(items, id, start, limit, false),
      itemsBelow: (id, below, limit) => itemRange(items, id, below, limit, true),
      range: (start, limit) => rangeOf(keys, start, limit),
      count: () => keys.count(),
      tombstone: (key) => {
        const v = tombstones.get(storedKey(key));
        return v === undefined ? undefined : decodeTombstone(v);
      },
      tombstoneHorizon,
      forgetTombstones: (cutoffMs, limit) => {
        const due = Array.from(
          burials.range({ end: expiryIndexKey(cutoffMs + 1, EMPTY), limit }),
          (e) => e.key,
        );
        const before = tombstoneHorizon();
        let raised = before;
        for (const b of due) {
          const k = b.subarray(8);
          const v = tombstones.get(k);
          const t = v === undefined ? undefined : decodeTombstone(v);
          // Unless a later deletion of the key replaced the tombstone (its own burial entry forgets it).
          if (t !== undefined && t.deletedAtMs === Number(b.readBigUInt64BE(0))) {
            tombstones.remove(k);
            raised = Math.max(raised, t.version);
          }
          burials.remove(b);
        }
        if (raised !== before) {
          horizon = raised;
          meta.put(HORIZON_KEY, u64(raised));
        }
        return due.length;
      },
    };
  }

  /** The cluster's address book as of the last batch written: node id → raft address, by id. */
  addressBook(): Map<number, string> {
    this.checkOpen();
    return readAddressBook(this.view.meta);
  }

  /** The highest node id that was ever a member of the cluster (0 before any membership was written). */
  highestNodeId(): number {
    this.checkOpen();
    return readU64(this.view.meta, HIGHEST_ID_KEY);
  }

  /**
   * Replaces the address book, raises the highest node id to `memberIds`' highest, and records
   * `appliedIndex`, as one batch.
   */
  async writeAddressBook(
    appliedIndex: number,
    book: ReadonlyMap<number, string>,
    memberIds: readonly number[],
  ): Promise<void> {
    const meta = this.view.meta;
    await this.writeBatchAsync(appliedIndex, () => {
      replaceAddressBook(meta, book);
      raiseHighestId(meta, memberIds);
    });
  }

  /**
   * A new cluster's first address book, from the addresses every founding member is started with (as its
   * first membership is): only into a store that has applied nothing and has no book yet. Whether it did.
   */
  async seedAddressBook(book: ReadonlyMap<number, string>): Promise<boolean> {
    this.checkOpen();
    if (this.applied !== 0 || this.addressBook().size > 0) return false;
    this.inLayers(({ meta }) => {
      replaceAddressBook(meta, book);
      raiseHighestId(meta, [...book.keys()]);
    });
    await this.flush();
    return true;
  }

  /** A key's record in the committed state (expired or not: the caller decides with its clock). */
  get(key: Uint8Array): KeyRecord | undefined {
    this.checkOpen();
    const v = this.view.keys.get(storedKey(key));
    return v === undefined ? undefined : decodeRecord(v);
  }

  /** Up to `limit` keys from `start` on (inclusive), in key order, with their records. */
  range(start: Uint8Array, limit: number): Array<[Buffer, KeyRecord]> {
    this.checkOpen();
    return rangeOf(this.view.keys, start, limit);
  }

  /** An item of collection `id` in the committed state. */
  item(id: number, sub: Uint8Array): Buffer | undefined {
    this.checkOpen();
    return this.view.items.get(itemKey(id, sub));
  }

  /** Up to `limit` items of collection `id` from `start` on (null: the first), in item order. */
  items(id: number, start: Uint8Array | null, limit: number): Array<[Buffer, Buffer]> {
    this.checkOpen();
    return itemRange(this.view.items, id, start, limit, false);
  }

  /** Up to `limit` items of collection `id` below `below` (null: from the last), descending. */
  itemsBelow(id: number, below: Uint8Array | null, limit: number): Array<[Buffer, Buffer]> {
    this.checkOpen();
    return itemRange(this.view.items, id, below, limit, true);
  }

  /** A key's tombstone in the committed state, if it has one. */
  tombstone(key: Uint8Array): Tombstone | undefined {
    this.checkOpen();
    const v = this.view.tombstones.get(storedKey(key));
    return v === undefined ? undefined : decodeTombstone(v);
  }

  /** The tombstone horizon in the committed state (see the file's comment). */
  tombstoneHorizon(): number {
    this.checkOpen();
    return readU64(this.view.meta, HORIZON_KEY);
  }

  /**
   * The applied index as the state records it: read in the same synchronous run as other reads, it is
   * the index of exactly the state they see.
   */
  committedIndex(): number {
    this.checkOpen();
    return readU64(this.view.meta, APPLIED_KEY);
  }

  /** Whether some tombstone was left at or before `cutoffMs`. */
  hasTombstonesBefore(cutoffMs: number): boolean {
    this.checkOpen();
    for (const _ of this.view.burials.range({ end: expiryIndexKey(cutoffMs + 1, EMPTY), limit: 1 }))
      return true;
    return false;
  }

  /** Number of keys stored (expired ones not yet deleted included). */
  keyCount(): number {
    this.checkOpen();
    return this.view.keys.count();
  }

  /** Up to `limit` keys whose expiry is at or before `nowMs`, soonest first. */
  expiredKeys(nowMs: number, limit: number): Buffer[] {
    this.checkOpen();
    const out: Buffer[] = [];
    for (const { key } of this.view.expiries.range({ end: expiryIndexKey(nowMs + 1, EMPTY), limit }))
      out.push(Buffer.from(key.subarray(8 + KEY_PREFIX.length)));
    return out;
  }

  /** Every key and its record, in key order (tests and debugging; not for large stores). */
  entries(): Array<[Buffer, KeyRecord]> {
    this.checkOpen();
    return Array.from(this.view.keys.range(), ({ key, value }) => [userKey(key), decodeRecord(value)]);
  }

  /** Every tombstone, in key order (tests and debugging; not for large stores). */
  tombstoneEntries(): Array<[Buffer, Tombstone]> {
    this.checkOpen();
    return Array.from(this.view.tombstones.range(), ({ key, value }) => [
      userKey(key),
      decodeTombstone(value),
    ]);
  }

  /**
   * A consistent image as of the last batch written: a read transaction taken now, read later, off the
   * loop, while writes go on.
   */
  snapshot(): SnapshotHandle {
    this.checkOpen();
    const { keys, tombstones, items, meta } = this.gen;
    // What the layers hold now, with LMDB as of now: LMDB may take in a flush under way meanwhile, whose
    // writes the copied layers hold too.
    const over = {
      keys: this.view.keys.freezeView(),
      tombstones: this.view.tombstones.freezeView(),
      items: this.view.items.freezeView(),
      meta: this.view.meta.freezeView(),
    };
    const txn = keys.useReadTransaction();
    const metaAt = {
      get: (key: Buffer) => firstOf(mergedRange(meta, over.meta, { start: key, end: after(key) }, txn)),
    };
    const applied = this.applied;
    // Raft may now release the entries before this snapshot, some of which LMDB has not taken in yet: a
    // crash before it does would mean a restore from the snapshot at the next start. LMDB catches up now
    // rather than at the next timer.
    this.startFlush();
    let released = false;
    return {
      async *read() {
        const image = {
          appliedIndex: applied,
          tombstoneHorizon: readU64(metaAt, HORIZON_KEY),
          highestNodeId: readU64(metaAt, HIGHEST_ID_KEY),
          lastCollectionId: readU64(metaAt, COLLECTION_ID_KEY),
          addressBook: addressBookFrom(mergedRange(meta, over.meta, ADDRESS_RANGE, txn)),
          records: mergedRange(keys, over.keys, {}, txn),
          tombstones: mergedRange(tombstones, over.tombstones, {}, txn),
          items: mergedRange(items, over.items, {}, txn),
        };
        for (const chunk of encodeKvSnapshot(image)) {
          yield chunk;
          // Let the loop breathe between chunks of a large store.
          await new Promise<void>((resolve) => setImmediate(resolve));
        }
      },
      release() {
        if (released) return;
        released = true;
        txn.done();
      },
    };
  }

  /**
   * Replaces the whole store with a snapshot payload, atomically and durably: the new generation is
   * written and synced beside the live one, then the pointer is switched. If the payload is bad or the
   * stream fails, the live store is untouched.
   */
  async restore(payload: AsyncIterable<Uint8Array>, index: number): Promise<void> {
    this.checkOpen();
    const number = this.gen.number + 1;
    await removeGeneration(this.dir, number);
    const next = openGeneration(this.dir, number);
    try {
      /** Pairs decoded and not yet written, each a record, a tombstone or an item. */
      let batch: Array<[Buffer, Buffer, "record" | "tombstone" | "item"]> = [];
      const flush = () => {
        if (batch.length === 0) return;
        const b = batch;
        batch = [];
        next.root.transactionSync(() => {
          for (const [k, v, kind] of b) {
            if (kind === "item") {
              next.items.putSync(k, v);
              continue;
            }
            if (kind === "tombstone") {
              next.tombstones.putSync(k, v);
              next.burials.putSync(expiryIndexKey(decodeTombstone(v).deletedAtMs, k), EMPTY);
              continue;
            }
            next.keys.putSync(k, v);
            const e = recordExpiry(v);
            if (e !== 0) next.expiries.putSync(expiryIndexKey(e, k), EMPTY);
          }
        }, COMMIT_NO_FLUSH);
      };
      const take = (key: Buffer, value: Buffer, kind: "record" | "tombstone" | "item") => {
        batch.push([Buffer.from(key), Buffer.from(value), kind]);
        if (batch.length >= RESTORE_BATCH_KEYS) flush();
      };
      const book = new Map<number, string>();
      const decoder = new KvSnapshotDecoder(
        { ...this.limits, minRecordBytes: RECORD_HEADER_BYTES },
        (key, record) => take(key, record, "record"),
        (key, tombstone) => take(key, tombstone, "tombstone"),
        (id, address) => book.set(id, address),
        (key, value) => take(key, value, "item"),
      );
      for await (const chunk of payload) decoder.push(chunk);
      const {
        appliedIndex: payloadIndex,
        tombstoneHorizon,
        highestNodeId,
        lastCollectionId,
      } = decoder.finish();
      // The store counts only the entries it was given; raft's snapshot index may be later, past
      // entries the state machine never sees (a new leader's empty entry, membership changes).
      if (payloadIndex > index)
        throw new KvStoreCorruptError(
          `the snapshot at index ${index} holds a store applied to ${payloadIndex}`,
        );
      flush();
      next.root.transactionSync(() => {
        // A new store: the book's rows are all there is to write.
        for (const [id, address] of book) next.meta.putSync(addressKey(id), Buffer.from(address, "utf8"));
        next.meta.putSync(APPLIED_KEY, u64(index));
        next.meta.putSync(HORIZON_KEY, u64(tombstoneHorizon));
        next.meta.putSync(HIGHEST_ID_KEY, u64(highestNodeId));
        next.meta.putSync(COLLECTION_ID_KEY, u64(lastCollectionId));
        next.meta.putSync(FORMAT_KEY, u64(STORE_FORMAT));
      });
      await next.root.flushed;
    } catch (err) {
      await next.root.close();
      await removeGeneration(this.dir, number);
      throw err;
    }
    // The old generation's pending writes are superseded; a commit under way finishes before it closes.
    while (this.flushing !== null) await this.flushing;
    await writePointer(new NodeFileSystem(), this.dir, number);
    const old = this.gen;
    for (const l of layersOf(this.view)) l.discard();
    this.gen = next;
    this.view = viewOf(next, this.budget);
    this.applied = index;
    // A failed commit to the old generation does not concern the new one.
    this.failure = null;
    await old.root.close();
    await removeGeneration(this.dir, old.number);
  }

  /** Waits until every batch written so far is committed to LMDB and on disk. */
  async flush(): Promise<void> {
    for (;;) {
      if (this.flushing === null) this.startFlush();
      if (this.flushing === null) break;
      await this.flushing;
    }
    if (this.failure !== null) throw this.failure;
    await this.gen.root.flushed;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    try {
      await this.flush();
    } finally {
      this.closed = true;
      await this.gen.root.close();
    }
  }

  private checkOpen(): void {
    if (this.closed) throw new Error("the key-value store is closed");
  }

  private checkWritable(): void {
    this.checkOpen();
    if (this.failure !== null) throw this.failure;
  }
}

const EMPTY = Buffer.alloc(0);
/**
 * Every key is stored behind one byte: Redis allows the empty key, and LMDB refuses a zero-length one
 * (a refusal inside apply would stop every replica). The snapshot payload carries stored keys.
 */
const KEY_PREFIX = Buffer.from("k");

function storedKey(key: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(KEY_PREFIX.length + key.length);
  out.set(KEY_PREFIX, 0);
  out.set(key, KEY_PREFIX.length);
  return out;
}

function userKey(stored: Uint8Array): Buffer {
  return Buffer.from(stored.subarray(KEY_PREFIX.length));
}

function u64(n: number): Buffer {
  const b = Buffer.allocUnsafe(8);
  b.writeBigUInt64BE(BigInt(n));
  return b;
}

function addressKey(id: number): Buffer {
  const k = Buffer.allocUnsafe(ADDRESS_PREFIX.length + 8);
  ADDRESS_PREFIX.copy(k, 0);
  k.writeBigUInt64BE(BigInt(id), ADDRESS_PREFIX.length);
  return k;
}

const ADDRESS_RANGE = { start: ADDRESS_PREFIX, end: ADDRESS_END };

/** A collection payload's id (its first 8 bytes). */
function collectionIdOf(payload: Uint8Array): number {
  return readU64At(Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength), 0);
}

/** The bounds of collection `id`'s items in the items table (all of them start with its id). */
function itemsOf(id: number): { start: Buffer; end: Buffer; group: Buffer } {
  const start = itemKey(id, EMPTY);
  return { start, end: itemKey(id + 1, EMPTY), group: start };
}

/**
 * Up to `limit` items of collection `id`, item keys without the id: up from `from` (inclusive; null: the
 * first), or with `reverse` down from below it (exclusive; null: the last).
 */
function itemRange(
  items: KvTable,
  id: number,
  from: Uint8Array | null,
  limit: number,
  reverse: boolean,
): Array<[Buffer, Buffer]> {
  const bounds = itemsOf(id);
  const at = from === null ? null : itemKey(id, from);
  const range = reverse ? { ...bounds, end: at ?? bounds.end } : { ...bounds, start: at ?? bounds.start };
  const out: Array<[Buffer, Buffer]> = [];
  for (const { key, value } of items.range({ ...range, limit, reverse })) out.push([key.subarray(8), value]);
  return out;
}

/** Up to `limit` keys of `keys` from `start` on (inclusive), in key order, with their records. */
function rangeOf(keys: KvTable, start: Uint8Array, limit: number): Array<[Buffer, KeyRecord]> {
  const out: Array<[Buffer, KeyRecord]> = [];
  for (const { key, value } of keys.range({ start: storedKey(start), limit }))
    out.push([userKey(key), decodeRecord(value)]);
  return out;
}

/** The address book from its rows, in id order. */
function addressBookFrom(rows: Iterable<{ key: Buffer; value: Buffer }>): Map<number, string> {
  const book = new Map<number, string>();
  for (const { key, value } of rows)
    book.set(Number(key.readBigUInt64BE(ADDRESS_PREFIX.length)), value.toString("utf8"));
  return book;
}

function readAddressBook(meta: LayeredDb): Map<number, string> {
  return addressBookFrom(meta.range(ADDRESS_RANGE));
}

/** In a batch: the book's rows become exactly `book`. */
function replaceAddressBook(meta: LayeredDb, book: ReadonlyMap<number, string>): void {
  for (const id of readAddressBook(meta).keys()) if (!book.has(id)) meta.remove(addressKey(id));
  for (const [id, address] of book) meta.put(addressKey(id), Buffer.from(address, "utf8"));
}

/** In a batch: the highest node id becomes at least every one of `ids`. */
function raiseHighestId(meta: LayeredDb, ids: readonly number[]): void {
  const highest = Math.max(readU64(meta, HIGHEST_ID_KEY), ...ids);
  if (highest > 0) meta.put(HIGHEST_ID_KEY, u64(highest));
}

function readU64(meta: { get(key: Buffer): Buffer | undefined }, key: Buffer): number {
  const v = meta.get(key);
  return v === undefined ? 0 : Number(v.readBigUInt64BE(0));
}

/** The value of the first entry, if any. */
function firstOf(rows: Iterable<{ value: Buffer }>): Buffer | undefined {
  for (const { value } of rows) return value;
  return undefined;
}

/** The smallest key after `key`: a range from `key` to it holds `key` alone. */
function after(key: Buffer): Buffer {
  return Buffer.concat([key, Buffer.alloc(1)]);
}

function readApplied(gen: Generation): number {
  return readU64(gen.meta, APPLIED_KEY);
}

/** Marks a new store with the format; refuses a store of another (older records have no version). */
function checkFormat(gen: Generation): void {
  const v = gen.meta.get(FORMAT_KEY);
  if (v === undefined) {
    if (gen.meta.get(APPLIED_KEY) !== undefined || gen.keys.getCount() > 0)
      throw new KvStoreCorruptError(`${gen.file} has no format mark: written by an older raftkv`);
    gen.root.transactionSync(() => gen.meta.putSync(FORMAT_KEY, u64(STORE_FORMAT)));
    return;
  }
  const format = Number(v.readBigUInt64BE(0));
  if (format === FORMAT_WITHOUT_ITEMS) {
    gen.root.transactionSync(() => gen.meta.putSync(FORMAT_KEY, u64(STORE_FORMAT)));
    return;
  }
  if (format !== STORE_FORMAT)
    throw new KvStoreCorruptError(
      `${gen.file} is of format ${format}; this raftkv reads format ${STORE_FORMAT}`,
    );
}

function generationFile(dir: string, number: number): string {
  return path.join(dir, `gen-${number}.mdb`);
}

function openGeneration(dir: string, number: number): Generation {
  const file = generationFile(dir, number);
  const root = openLmdb<Buffer, Buffer>({ path: file, maxDbs: 8, keyEncoding: "binary", encoding: "binary" });
  const db = (name: string) =>
    root.openDB<Buffer, Buffer>({ name, keyEncoding: "binary", encoding: "binary" });
  return {
    number,
    file,
    root,
    keys: db("keys"),
    expiries: db("expiries"),
    tombstones: db("tombstones"),
    burials: db("burials"),
    items: db("items"),
    meta: db("meta"),
  };
}

async function writePointer(fsys: FileSystem, dir: string, number: number): Promise<void> {
  const tmp = path.join(dir, `${CURRENT}.tmp`);
  const f = fsys.create(tmp);
  try {
    await f.write(Buffer.from(`gen-${number}\n`), 0);
    await f.datasync();
  } finally {
    await f.close();
  }
  await fsys.rename(tmp, path.join(dir, CURRENT));
  await fsys.syncDir(dir);
}

async function removeGeneration(dir: string, number: number): Promise<void> {
  const file = generationFile(dir, number);
  await fsp.rm(file, { force: true });
  await fsp.rm(`${file}-lock`, { force: true });
}

/** Removes what an interrupted restore (or the one before the last) left behind. */
async function removeGenerationsExcept(dir: string, keep: number): Promise<void> {
  for (const name of await fsp.readdir(dir)) {
    const m = /^gen-(\d+)\.mdb(-lock)?$/.exec(name);
    if (m && Number(m[1]) !== keep) await fsp.rm(path.join(dir, name), { force: true });
  }
  await fsp.rm(path.join(dir, `${CURRENT}.tmp`), { force: true });
}
