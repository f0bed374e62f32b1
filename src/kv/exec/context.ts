/**
 * What a command sees when it runs: the time it runs at, and the keyspace. A write runs inside one
 * apply batch, on every replica, at the proposing node's clock reading carried in its entry, and what
 * it stores carries the entry's index as its version; a read runs on one node, at that node's clock. A
 * key whose expiry has passed is absent to both; a write also deletes it (every replica does the same,
 * at the same logical time).
 */

import { SeededRandom } from "../../raft/rand.js";
import { type KeyRecord, RecordType } from "../record.js";
import type { KvStore, KvWriter } from "../store.js";
import type { ScanCursors } from "./scan-cursors.js";

export interface ReadAccess {
  readonly nowMs: number;
  /** The key's record, unless it is absent or expired at `nowMs`. */
  lookup(key: Buffer): KeyRecord | undefined;
  /** Up to `limit` stored keys from `start` on, in key order (expired ones included: check each). */
  range(start: Buffer, limit: number): Array<[Buffer, KeyRecord]>;
  /** Keys stored, expired ones not yet removed included. */
  count(): number;
  /** This node's SCAN positions (see scan-cursors.ts). */
  readonly cursors: ScanCursors;
  /** An item of collection `id` (a hash field's value …). */
  item(id: number, sub: Buffer): Buffer | undefined;
  /** Up to `limit` items of collection `id` from `start` on (null: the first), in item order. */
  items(id: number, start: Buffer | null, limit: number): Array<[Buffer, Buffer]>;
  /** Up to `limit` items of collection `id` below `below` (exclusive; null: from the last), descending. */
  itemsBelow(id: number, below: Buffer | null, limit: number): Array<[Buffer, Buffer]>;
}

export interface WriteAccess extends ReadAccess {
  /** Whether the key is stored at all, expired or not. */
  lookupStored(key: Buffer): boolean;
  put(key: Buffer, type: RecordType, expireAtMs: number, payload: Uint8Array): void;
  /** Whether a live key was deleted. */
  delete(key: Buffer): boolean;
  /** Removes every key. */
  clear(): void;
  /** Forgets up to `limit` tombstones left at or before `cutoffMs` (see store.ts). */
  forgetTombstones(cutoffMs: number, limit: number): number;
  /** A new collection's id (deterministic: the same on every replica). */
  newCollectionId(): number;
  putItem(id: number, sub: Buffer, value: Buffer): void;
  removeItem(id: number, sub: Buffer): void;
  /** Removes a live key's record but keeps its collection's items (RENAME, having stored it anew). */
  detach(key: Buffer): boolean;
  /**
   * A random integer in [0, n) that every replica draws alike (SPOP): seeded by the entry's index and
   * the proposer's clock reading, both carried in the log, and drawn in the entry's command order.
   */
  randomInt(n: number): number;
}

export function readAccess(store: KvStore, nowMs: number, cursors: ScanCursors): ReadAccess {
  return {
    nowMs,
    cursors,
    lookup(key) {
      const r = store.get(key);
      return r === undefined || isExpired(r, nowMs) ? undefined : r;
    },
    range: (start, limit) => store.range(start, limit),
    count: () => store.keyCount(),
    item: (id, sub) => store.item(id, sub),
    items: (id, start, limit) => store.items(id, start, limit),
    itemsBelow: (id, below, limit) => store.itemsBelow(id, below, limit),
  };
}

/**
 * What the commands of the entry at `index` see. `onFilled`, when given, is told each key a list or a
 * sorted set is stored at (blocked clients wait for those: see machine.ts).
 */
export function writeAccess(
  w: KvWriter,
  nowMs: number,
  index: number,
  cursors: ScanCursors,
  onFilled?: (key: Buffer) => void,
): WriteAccess {
  let random: SeededRandom | null = null;
  const lookup = (key: Buffer) => {
    const r = w.get(key);
    if (r === undefined) return undefined;
    if (!isExpired(r, nowMs)) return r;
    w.delete(key, nowMs);
    return undefined;
  };
  return {
    nowMs,
    cursors,
    lookup,
    lookupStored: (key) => w.get(key) !== undefined,
    range: (start, limit) => w.range(start, limit),
    count: () => w.count(),
    put: (key, type, expireAtMs, payload) => {
      w.put(key, type, expireAtMs, payload, index);
      if (onFilled !== undefined && (type === RecordType.List || type === RecordType.ZSet)) onFilled(key);
    },
    delete: (key) => lookup(key) !== undefined && w.delete(key, nowMs),
    clear: () => w.clear(nowMs),
    forgetTombstones: (cutoffMs, limit) => w.forgetTombstones(cutoffMs, limit),
    item: (id, sub) => w.item(id, sub),
    items: (id, start, limit) => w.items(id, start, limit),
    itemsBelow: (id, below, limit) => w.itemsBelow(id, below, limit),
    newCollectionId: () => w.newCollectionId(),
    putItem: (id, sub, value) => w.putItem(id, sub, value),
    removeItem: (id, sub) => w.removeItem(id, sub),
    detach: (key) => lookup(key) !== undefined && w.detach(key, nowMs),
    randomInt: (n) => {
      random ??= new SeededRandom(Math.imul(index, 0x9e3779b1) ^ nowMs);
      return random.intn(n);
    },
  };
}

export function isExpired(r: KeyRecord, nowMs: number): boolean {
  return r.expireAtMs !== 0 && r.expireAtMs <= nowMs;
}

export const STRING = RecordType.String;
