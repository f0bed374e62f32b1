/**
 * How a key's record is stored: a 17-byte header — its type; its absolute expiry time in ms since the
 * epoch (0: none), decided by the proposer and carried in the command, so every replica agrees on it;
 * and its version, the raft index of the entry that last wrote it (WATCH compares versions) — then the
 * type's payload (a string's bytes; the other types keep their members elsewhere).
 */
import { readU64, writeU64 } from "./u64.js";

export const RecordType = {
  String: 0,
  Hash: 1,
  Set: 2,
  ZSet: 3,
  List: 4,
} as const;
export type RecordType = (typeof RecordType)[keyof typeof RecordType];

/** What TYPE answers for each record type. */
export const TYPE_NAMES: Readonly<Record<RecordType, string>> = ["string", "hash", "set", "zset", "list"];

/**
 * A collection's record payload: its id, which prefixes its items in the store's items table (so that
 * RENAME moves a collection without touching its items, and a new collection under an old name never
 * sees a stale item), then how many items it has.
 */
export const COLLECTION_HEADER_BYTES = 16;

/**
 * Where a sorted set's rank index keeps its items: a collection id of its own, so that reading the index
 * on the write path never reads (and never makes the write-behind layers sort) the set's own items.
 * Collection ids come from a counter that stays far below this offset.
 */
export const RANK_INDEX_ID_OFFSET = 2 ** 52;
export const rankIndexId = (id: number): number => id + RANK_INDEX_ID_OFFSET;

/** Flags a sorted set's record may carry after its id and count (see zsets.ts). */
export const ZSET_LARGE = 1;
export const ZSET_RANKED = 2;

/**
 * A collection's record: its id and count, then for a sorted set a byte of flags (ZSET_LARGE: past
 * Redis's compact encoding; ZSET_RANKED: it has a rank index), absent when none is set.
 */
export function encodeCollection(id: number, count: number, flags = 0): Buffer {
  const out = Buffer.allocUnsafe(COLLECTION_HEADER_BYTES + (flags !== 0 ? 1 : 0));
  writeU64(out, id, 0);
  writeU64(out, count, 8);
  if (flags !== 0) out[COLLECTION_HEADER_BYTES] = flags;
  return out;
}

export interface CollectionHeader {
  readonly id: number;
  readonly count: number;
}

export function decodeCollection(payload: Buffer): CollectionHeader {
  if (payload.length < COLLECTION_HEADER_BYTES)
    throw new RangeError(`a collection header of ${payload.length} bytes`);
  return { id: readU64(payload, 0), count: readU64(payload, 8) };
}

/** The collection id of an encoded record; 0 for a string. */
export function recordCollectionId(bytes: Uint8Array): number {
  if (bytes[0] === RecordType.String) return 0;
  return readU64(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length), RECORD_HEADER_BYTES);
}

/** An item's key in the items table: the collection's id (8 bytes, big-endian), then the item's own key. */
export function itemKey(id: number, sub: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(8 + sub.length);
  writeU64(out, id, 0);
  out.set(sub, 8);
  return out;
}

export const RECORD_HEADER_BYTES = 17;

export interface KeyRecord {
  readonly type: RecordType;
  /** Absolute expiry in ms since the epoch; 0 when the key does not expire. */
  readonly expireAtMs: number;
  /** The raft index of the entry that last wrote the key (never 0: indexes start at 1). */
  readonly version: number;
  readonly payload: Buffer;
}

export function encodeRecord(
  type: RecordType,
  expireAtMs: number,
  version: number,
  payload: Uint8Array,
): Buffer {
  const out = Buffer.allocUnsafe(RECORD_HEADER_BYTES + payload.length);
  out[0] = type;
  writeU64(out, expireAtMs, 1);
  writeU64(out, version, 9);
  out.set(payload, RECORD_HEADER_BYTES);
  return out;
}

/** Reads a record; `bytes` may be a view that is reused later, so the payload is a copy. */
export function decodeRecord(bytes: Uint8Array): KeyRecord {
  if (bytes.length < RECORD_HEADER_BYTES) throw new RangeError(`a key record of ${bytes.length} bytes`);
  const b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
  return {
    type: b[0] as RecordType,
    expireAtMs: readU64(b, 1),
    version: readU64(b, 9),
    payload: Buffer.from(b.subarray(RECORD_HEADER_BYTES)),
  };
}

/** The expiry of an encoded record, without decoding the rest. */
export function recordExpiry(bytes: Uint8Array): number {
  return readU64(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length), 1);
}

/** The version of an encoded record, without decoding the rest. */
export function recordVersion(bytes: Uint8Array): number {
  return readU64(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length), 9);
}

/** The expiry index key: the expiry time (8 bytes, big-endian, so the index sorts by time), then the key. */
export function expiryIndexKey(expireAtMs: number, key: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(8 + key.length);
  writeU64(out, expireAtMs, 0);
  out.set(key, 8);
  return out;
}

/**
 * A deleted key's tombstone: the version of the record that was deleted, and when (the deleting
 * entry's time). WATCH needs it for a key that was absent when watched: a record written after the
 * WATCH and deleted before the EXEC leaves no record, only this.
 */
export interface Tombstone {
  readonly version: number;
  readonly deletedAtMs: number;
}

export const TOMBSTONE_BYTES = 16;

export function encodeTombstone(version: number, deletedAtMs: number): Buffer {
  const out = Buffer.allocUnsafe(TOMBSTONE_BYTES);
  writeU64(out, version, 0);
  writeU64(out, deletedAtMs, 8);
  return out;
}

export function decodeTombstone(bytes: Uint8Array): Tombstone {
  if (bytes.length !== TOMBSTONE_BYTES) throw new RangeError(`a tombstone of ${bytes.length} bytes`);
  const b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
  return { version: readU64(b, 0), deletedAtMs: readU64(b, 8) };
}
