/**
 * What the collection commands share: finding a collection of the right type, creating one, storing its
 * record (an empty one is deleted, as Redis deletes empty collections), and the limit on an item's key.
 */
import {
  COLLECTION_HEADER_BYTES,
  decodeCollection,
  encodeCollection,
  type RecordType,
  ZSET_LARGE,
  ZSET_RANKED,
} from "../record.js";
import { array, bulk, Errors, error, int, type Reply } from "../reply.js";
import { readU64, writeU64 } from "../u64.js";
import type { ReadAccess, WriteAccess } from "./context.js";
import { globMatch } from "./glob.js";
import { parseCursor, parseScanOptions } from "./scan-options.js";

/**
 * The longest hash field or set member: an item's key is the collection id (8 bytes) and the item,
 * within LMDB's 1,978-byte keys. Hash values may be as long as strings.
 */
export const MAX_ITEM_BYTES = 1024;

export const itemTooLong = (what: string): Reply =>
  error(`ERR ${what} is too long (at most ${MAX_ITEM_BYTES} bytes)`);

export interface Collection {
  readonly id: number;
  count: number;
  readonly expireAtMs: number;
  /** A sorted set past Redis's compact encoding (zsets.ts); false for every other collection. */
  large?: boolean;
  /** A sorted set with a rank index (zset-ranks.ts); false for every other collection. */
  ranked?: boolean;
}

export const isReply = (v: unknown): v is Reply => typeof v === "object" && v !== null && "k" in v;

/** The collection of `type` at `key`; null when absent; WRONGTYPE for another type. */
export function collectionOf(ctx: ReadAccess, key: Buffer, type: RecordType): Collection | null | Reply {
  const r = ctx.lookup(key);
  if (r === undefined) return null;
  if (r.type !== type) return Errors.wrongType;
  const { id, count } = decodeCollection(r.payload);
  const flags = r.payload.length > COLLECTION_HEADER_BYTES ? r.payload[COLLECTION_HEADER_BYTES]! : 0;
  return {
    id,
    count,
    expireAtMs: r.expireAtMs,
    large: (flags & ZSET_LARGE) !== 0,
    ranked: (flags & ZSET_RANKED) !== 0,
  };
}

/** HLEN, SCARD, ZCARD: the size of the collection of `type` at args[1], 0 when absent. */
export const cardinality =
  (type: RecordType) =>
  (ctx: ReadAccess, args: readonly Buffer[]): Reply => {
    const c = collectionOf(ctx, args[1]!, type);
    return c === null ? int(0) : isReply(c) ? c : int(c.count);
  };

/** HEXISTS, SISMEMBER: 1 when the collection of `type` at args[1] holds the item args[2]. */
export const holdsItem =
  (type: RecordType) =>
  (ctx: ReadAccess, args: readonly Buffer[]): Reply => {
    const c = collectionOf(ctx, args[1]!, type);
    if (isReply(c)) return c;
    return int(c !== null && ctx.item(c.id, args[2]!) !== undefined ? 1 : 0);
  };

/** The collection at `key`, or a new empty one (stored by `save`) when absent. */
export function collectionForWrite(ctx: WriteAccess, key: Buffer, type: RecordType): Collection | Reply {
  return collectionOf(ctx, key, type) ?? { id: ctx.newCollectionId(), count: 0, expireAtMs: 0 };
}

/** Stores the collection's record, keeping its expiry; an empty one is deleted with its key. */
export function save(ctx: WriteAccess, key: Buffer, type: RecordType, c: Collection): void {
  if (c.count === 0) ctx.delete(key);
  else {
    const flags = (c.large === true ? ZSET_LARGE : 0) | (c.ranked === true ? ZSET_RANKED : 0);
    ctx.put(key, type, c.expireAtMs, encodeCollection(c.id, c.count, flags));
  }
}

/** Whether any of `args[from]`, `args[from + step]` … is longer than an item may be. */
export function anyTooLong(args: readonly Buffer[], from: number, step = 1): boolean {
  for (let i = from; i < args.length; i += step) if (args[i]!.length > MAX_ITEM_BYTES) return true;
  return false;
}

/** Every item of the collection, in item order (Redis leaves the order of hashes and sets unspecified). */
export function allItems(ctx: ReadAccess, c: Collection): Array<[Buffer, Buffer]> {
  return ctx.items(c.id, null, c.count);
}

/**
 * Which items a scan walks, for a collection that keeps more than one kind of item (a sorted set): those
 * whose first byte is `tag`, shown without it, and their values as `value` shows them.
 */
export interface ScannedItems {
  readonly tag: number;
  readonly value: (stored: Buffer) => Buffer;
}

/**
 * HSCAN, SSCAN and ZSCAN: `args` is [command, key, cursor, options…] (MATCH, COUNT). Up to COUNT items from
 * where the cursor says, in item order; the cursor that continues is a number from the node's table of
 * positions (see scan-cursors.ts), naming the collection and the next item: one the table no longer
 * holds, or of a collection since replaced, starts over (an item may then come twice, which Redis
 * allows; none present throughout is missed). With `withValues` each item comes with its value.
 */
export function scanItems(
  ctx: ReadAccess,
  args: readonly Buffer[],
  type: RecordType,
  withValues: boolean,
  only?: ScannedItems,
): Reply {
  // In Redis's order: the cursor, then the key (absent: an empty scan) and its type, then the options.
  const cursor = parseCursor(args[2]!);
  if (isReply(cursor)) return cursor;
  const c = collectionOf(ctx, args[1]!, type);
  if (isReply(c)) return c;
  if (c === null) return array([bulk(Buffer.from("0")), array([])]);
  const options = parseScanOptions(args, 3, false);
  if (isReply(options)) return options;
  const { count, pattern } = options;
  let start: Buffer | null = only === undefined ? null : Buffer.from([only.tag]);
  if (cursor !== 0n) {
    const at = ctx.cursors.resolve(cursor);
    if (at !== undefined && at.length >= 8 && readU64(at, 0) === c.id) start = at.subarray(8);
  }
  let page = ctx.items(c.id, start, count + 1);
  if (only !== undefined) {
    const end = page.findIndex(([sub]) => sub[0] !== only.tag);
    if (end >= 0) page = page.slice(0, end);
  }
  const out: Reply[] = [];
  for (const [sub, value] of page.slice(0, count)) {
    const item = only === undefined ? sub : sub.subarray(1);
    if (pattern !== null && !globMatch(pattern, item)) continue;
    out.push(bulk(Buffer.from(item)));
    if (withValues) out.push(bulk(only === undefined ? Buffer.from(value) : only.value(value)));
  }
  const next =
    page.length > count ? ctx.cursors.issue(Buffer.concat([u64Of(c.id), page[count]![0]])).toString() : "0";
  return array([bulk(Buffer.from(next)), array(out)]);
}

function u64Of(n: number): Buffer {
  const b = Buffer.allocUnsafe(8);
  writeU64(b, n, 0);
  return b;
}

/**
 * Redis's start/stop indexes (negative from the end, both inclusive) clamped to a collection of `count`
 * (LRANGE, LTRIM, ZRANGE by rank …), or null when nothing is within them.
 */
export function indexRange(count: number, start: bigint, stop: bigint): [number, number] | null {
  const n = BigInt(count);
  let s = start < 0n ? n + start : start;
  let e = stop < 0n ? n + stop : stop;
  if (s < 0n) s = 0n;
  if (e >= n) e = n - 1n;
  if (s > e || s >= n) return null;
  return [Number(s), Number(e)];
}

/**
 * HDEL and SREM: removes the items named by `args[2…]` from the collection of `type` at `args[1]`, and
 * stores its record (an emptied collection is deleted with its key). How many were removed.
 */
export function removeItems(ctx: WriteAccess, args: readonly Buffer[], type: RecordType): Reply {
  const key = args[1]!;
  const c = collectionOf(ctx, key, type);
  if (c === null) return int(0);
  if (isReply(c)) return c;
  let removed = 0;
  for (let i = 2; i < args.length; i++) {
    if (ctx.item(c.id, args[i]!) === undefined) continue;
    ctx.removeItem(c.id, args[i]!);
    removed++;
  }
  if (removed === 0) return int(0);
  c.count -= removed;
  save(ctx, key, type, c);
  return int(removed);
}
