/**
 * What a command sees when it runs: the time it runs at, and the keyspace. A write runs inside one
 * apply batch, on every replica, at the proposing node's clock reading carried in its entry, and what
 * it stores carries the entry's index as its version; a read runs on one node, at that node's clock. A
 * key whose expiry has passed is absent to both; a write also deletes it (every replica does the same,
 * at the same logical time).
 */
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
  };
}

/** What the commands of the entry at `index` see. */
export function writeAccess(w: KvWriter, nowMs: number, index: number, cursors: ScanCursors): WriteAccess {
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
    put: (key, type, expireAtMs, payload) => w.put(key, type, expireAtMs, payload, index),
    delete: (key) => lookup(key) !== undefined && w.delete(key, nowMs),
    clear: () => w.clear(nowMs),
    forgetTombstones: (cutoffMs, limit) => w.forgetTombstones(cutoffMs, limit),
  };
}

export function isExpired(r: KeyRecord, nowMs: number): boolean {
  return r.expireAtMs !== 0 && r.expireAtMs <= nowMs;
}

export const STRING = RecordType.String;
