/**
 * List commands, with Redis's replies and errors. A list is a collection record (its id, its length and
 * the position of its first element) and one item per element, keyed by its position: the elements sit
 * at consecutive positions from the first, so pushing and popping at either end, LINDEX and LSET touch
 * one item, and LRANGE reads only the elements it returns, whatever the list's length. LREM and LINSERT
 * rewrite the positions after the change, LPOS reads the list: O(N), as in Redis.
 */
import { COLLECTION_HEADER_BYTES, RecordType } from "../record.js";
import { array, bulk, Errors, error, int, NIL, NIL_ARRAY, OK, type Reply } from "../reply.js";
import { readU64, writeU64 } from "../u64.js";
import { parseInt64, upper } from "./args.js";
import { indexRange, isReply } from "./collections.js";
import type { ReadAccess, WriteAccess } from "./context.js";

const LIST = RecordType.List;
/** A new list's first position: 2^52 pushes fit on either side before positions leave [0, 2^53). */
const ORIGIN = 2 ** 52;
const mustBePositive = error("ERR value is out of range, must be positive");
/** The most one LPOP or RPOP takes: its reply is built in memory, on every replica. */
export const MAX_POP = 1_000_000;
export const tooManyToPop = error(`ERR value is out of range (at most ${MAX_POP} elements at once)`);

interface List {
  readonly id: number;
  count: number;
  /** The position of the first element. */
  head: number;
  readonly expireAtMs: number;
}

/** The list at `key`; null when absent; WRONGTYPE for another type. */
function listOf(ctx: ReadAccess, key: Buffer): List | null | Reply {
  const r = ctx.lookup(key);
  if (r === undefined) return null;
  if (r.type !== LIST) return Errors.wrongType;
  const p = r.payload;
  return { id: readU64(p, 0), count: readU64(p, 8), head: readU64(p, 16), expireAtMs: r.expireAtMs };
}

function newList(ctx: WriteAccess): List {
  return { id: ctx.newCollectionId(), count: 0, head: ORIGIN, expireAtMs: 0 };
}

/** Stores the list's record; an empty list is deleted, as Redis deletes empty collections. */
function save(ctx: WriteAccess, key: Buffer, l: List): void {
  if (l.count === 0) {
    ctx.delete(key);
    return;
  }
  const p = Buffer.allocUnsafe(COLLECTION_HEADER_BYTES + 8);
  writeU64(p, l.id, 0);
  writeU64(p, l.count, 8);
  writeU64(p, l.head, 16);
  ctx.put(key, LIST, l.expireAtMs, p);
}

function position(pos: number): Buffer {
  const b = Buffer.allocUnsafe(8);
  writeU64(b, pos, 0);
  return b;
}

const elementAt = (ctx: ReadAccess, l: List, i: number) => ctx.item(l.id, position(l.head + i));

/** Elements `first` through `last` (0-based, within the list), in order. */
function slice(ctx: ReadAccess, l: List, first: number, last: number): Buffer[] {
  return ctx.items(l.id, position(l.head + first), last - first + 1).map(([, v]) => v);
}

function push(ctx: WriteAccess, args: readonly Buffer[], left: boolean, onlyIfExists: boolean): Reply {
  const found = listOf(ctx, args[1]!);
  if (isReply(found)) return found;
  if (found === null && onlyIfExists) return int(0);
  const l = found ?? newList(ctx);
  for (let i = 2; i < args.length; i++) {
    if (left) {
      l.head--;
      ctx.putItem(l.id, position(l.head), args[i]!);
    } else ctx.putItem(l.id, position(l.head + l.count), args[i]!);
    l.count++;
  }
  save(ctx, args[1]!, l);
  return int(l.count);
}

export const lpush = (ctx: WriteAccess, args: readonly Buffer[]) => push(ctx, args, true, false);
export const rpush = (ctx: WriteAccess, args: readonly Buffer[]) => push(ctx, args, false, false);
export const lpushx = (ctx: WriteAccess, args: readonly Buffer[]) => push(ctx, args, true, true);
export const rpushx = (ctx: WriteAccess, args: readonly Buffer[]) => push(ctx, args, false, true);

/** Removes up to `n` elements from one end of the list (which must exist); they are returned in pop order. */
function popFrom(ctx: WriteAccess, key: Buffer, l: List, n: number, left: boolean): Buffer[] {
  const k = Math.min(n, l.count);
  const taken = left ? slice(ctx, l, 0, k - 1) : slice(ctx, l, l.count - k, l.count - 1).reverse();
  for (let i = 0; i < k; i++) ctx.removeItem(l.id, position(left ? l.head + i : l.head + l.count - 1 - i));
  if (left) l.head += k;
  l.count -= k;
  save(ctx, key, l);
  return taken;
}

function pop(ctx: WriteAccess, args: readonly Buffer[], left: boolean): Reply {
  if (args.length > 3) return Errors.wrongArity(left ? "lpop" : "rpop");
  let count: bigint | null = null;
  if (args.length === 3) {
    count = parseInt64(args[2]!);
    if (count === null || count < 0n) return mustBePositive;
  }
  const l = listOf(ctx, args[1]!);
  if (isReply(l)) return l;
  if (l === null) return count === null ? NIL : NIL_ARRAY;
  if (count === 0n) return array([]);
  const taken = popElements(ctx, args[1]!, l, count ?? 1n, left);
  if (isReply(taken)) return taken;
  return count === null ? bulk(taken[0]!) : array(taken.map((e) => bulk(e)));
}

/**
 * Pops up to `count` elements from one end of the list at `key` (LPOP, RPOP, LMPOP and the blocking
 * pops): null when there is no list, WRONGTYPE for another type, an error when more than MAX_POP would
 * be taken (the reply is built in memory, on every replica; a count past the list's length is fine).
 */
export function popList(
  ctx: WriteAccess,
  key: Buffer,
  count: bigint,
  left: boolean,
): Buffer[] | null | Reply {
  const l = listOf(ctx, key);
  if (l === null || isReply(l)) return l;
  return popElements(ctx, key, l, count, left);
}

function popElements(ctx: WriteAccess, key: Buffer, l: List, count: bigint, left: boolean): Buffer[] | Reply {
  const n = count < BigInt(l.count) ? Number(count) : l.count;
  if (n > MAX_POP) return tooManyToPop;
  return popFrom(ctx, key, l, n, left);
}

export const lpop = (ctx: WriteAccess, args: readonly Buffer[]) => pop(ctx, args, true);
export const rpop = (ctx: WriteAccess, args: readonly Buffer[]) => pop(ctx, args, false);

export function llen(ctx: ReadAccess, args: readonly Buffer[]): Reply {
  const l = listOf(ctx, args[1]!);
  if (l === null) return int(0);
  if (isReply(l)) return l;
  return int(l.count);
}

export function lrange(ctx: ReadAccess, args: readonly Buffer[]): Reply {
  const start = parseInt64(args[2]!);
  const stop = parseInt64(args[3]!);
  if (start === null || stop === null) return Errors.notInteger;
  const l = listOf(ctx, args[1]!);
  if (l === null) return array([]);
  if (isReply(l)) return l;
  const range = indexRange(l.count, start, stop);
  if (range === null) return array([]);
  return array(slice(ctx, l, range[0], range[1]).map((e) => bulk(e)));
}

/** An index into the list (negative from the end), or null when outside it. */
function indexIn(l: List, index: bigint): number | null {
  const i = index < 0n ? BigInt(l.count) + index : index;
  return i < 0n || i >= BigInt(l.count) ? null : Number(i);
}

export function lindex(ctx: ReadAccess, args: readonly Buffer[]): Reply {
  // As Redis: the key and its type first, then the index.
  const l = listOf(ctx, args[1]!);
  if (l === null) return NIL;
  if (isReply(l)) return l;
  const index = parseInt64(args[2]!);
  if (index === null) return Errors.notInteger;
  const i = indexIn(l, index);
  const e = i === null ? undefined : elementAt(ctx, l, i);
  return e === undefined ? NIL : bulk(e);
}

export function lset(ctx: WriteAccess, args: readonly Buffer[]): Reply {
  const l = listOf(ctx, args[1]!);
  if (l === null) return Errors.noSuchKey;
  if (isReply(l)) return l;
  const index = parseInt64(args[2]!);
  if (index === null) return Errors.notInteger;
  const i = indexIn(l, index);
  if (i === null) return error("ERR index out of range");
  ctx.putItem(l.id, position(l.head + i), args[3]!);
  save(ctx, args[1]!, l);
  return OK;
}

export function ltrim(ctx: WriteAccess, args: readonly Buffer[]): Reply {
  const start = parseInt64(args[2]!);
  const stop = parseInt64(args[3]!);
  if (start === null || stop === null) return Errors.notInteger;
  const l = listOf(ctx, args[1]!);
  if (l === null) return OK;
  if (isReply(l)) return l;
  const range = indexRange(l.count, start, stop);
  const [keepFirst, keepLast] = range ?? [l.count, l.count - 1];
  for (let i = 0; i < keepFirst; i++) ctx.removeItem(l.id, position(l.head + i));
  for (let i = keepLast + 1; i < l.count; i++) ctx.removeItem(l.id, position(l.head + i));
  l.head += keepFirst;
  l.count = keepLast - keepFirst + 1;
  save(ctx, args[1]!, l);
  return OK;
}

/** LMOVE and RPOPLPUSH: one element from one end of `source` to one end of `destination`. */
function move(
  ctx: WriteAccess,
  source: Buffer,
  destination: Buffer,
  fromLeft: boolean,
  toLeft: boolean,
): Reply {
  const src = listOf(ctx, source);
  if (src === null) return NIL;
  if (isReply(src)) return src;
  const found = listOf(ctx, destination);
  if (isReply(found)) return found;
  const [element] = popFrom(ctx, source, src, 1, fromLeft) as [Buffer];
  // The same list: re-read it, as the pop changed it.
  const again = source.equals(destination) ? listOf(ctx, destination) : found;
  if (isReply(again)) return again;
  const dst = again ?? newList(ctx);
  if (toLeft) {
    dst.head--;
    ctx.putItem(dst.id, position(dst.head), element);
  } else ctx.putItem(dst.id, position(dst.head + dst.count), element);
  dst.count++;
  save(ctx, destination, dst);
  return bulk(element);
}

export function rpoplpush(ctx: WriteAccess, args: readonly Buffer[]): Reply {
  return move(ctx, args[1]!, args[2]!, false, true);
}

export function lmove(ctx: WriteAccess, args: readonly Buffer[]): Reply {
  const from = upper(args[3]!);
  const to = upper(args[4]!);
  if ((from !== "LEFT" && from !== "RIGHT") || (to !== "LEFT" && to !== "RIGHT")) return Errors.syntax;
  return move(ctx, args[1]!, args[2]!, from === "LEFT", to === "LEFT");
}

/** Every element, in order (LREM, LINSERT and LPOS look at them all: O(N), as in Redis). */
const allElements = (ctx: ReadAccess, l: List): Buffer[] =>
  l.count === 0 ? [] : slice(ctx, l, 0, l.count - 1);

/** Stores `elements` as the whole list from its first position on, removing positions left over. */
function rewrite(ctx: WriteAccess, key: Buffer, l: List, elements: readonly Buffer[]): void {
  for (let i = 0; i < elements.length; i++) ctx.putItem(l.id, position(l.head + i), elements[i]!);
  for (let i = elements.length; i < l.count; i++) ctx.removeItem(l.id, position(l.head + i));
  l.count = elements.length;
  save(ctx, key, l);
}

export function lrem(ctx: WriteAccess, args: readonly Buffer[]): Reply {
  const count = parseInt64(args[2]!);
  if (count === null) return Errors.notInteger;
  const l = listOf(ctx, args[1]!);
  if (l === null) return int(0);
  if (isReply(l)) return l;
  const target = args[3]!;
  const all = allElements(ctx, l);
  const limit = count === 0n ? Number.POSITIVE_INFINITY : Number(count < 0n ? -count : count);
  const drop = new Set<number>();
  for (let k = 0; k < all.length && drop.size < limit; k++) {
    const i = count < 0n ? all.length - 1 - k : k;
    if (all[i]!.equals(target)) drop.add(i);
  }
  if (drop.size === 0) return int(0);
  rewrite(
    ctx,
    args[1]!,
    l,
    all.filter((_, i) => !drop.has(i)),
  );
  return int(drop.size);
}

export function linsert(ctx: WriteAccess, args: readonly Buffer[]): Reply {
  const where = upper(args[2]!);
  if (where !== "BEFORE" && where !== "AFTER") return Errors.syntax;
  const l = listOf(ctx, args[1]!);
  if (l === null) return int(0);
  if (isReply(l)) return l;
  const all = allElements(ctx, l);
  const at = all.findIndex((e) => e.equals(args[3]!));
  if (at < 0) return int(-1);
  all.splice(where === "BEFORE" ? at : at + 1, 0, args[4]!);
  rewrite(ctx, args[1]!, l, all);
  return int(l.count);
}

export function lpos(ctx: ReadAccess, args: readonly Buffer[]): Reply {
  let rank = 1n;
  let count: bigint | null = null;
  let maxlen = 0n;
  for (let i = 3; i < args.length; i++) {
    const opt = upper(args[i]!);
    if (i + 1 >= args.length) return Errors.syntax;
    const v = parseInt64(args[++i]!);
    if (opt === "RANK") {
      if (v === null) return Errors.notInteger;
      if (v === 0n)
        return error(
          "ERR RANK can't be zero: use 1 to start from the first match, 2 from the second ... or use negative to start from the end of the list",
        );
      rank = v;
    } else if (opt === "COUNT") {
      // As Redis: a COUNT or MAXLEN that is not a number gets the same answer as a negative one.
      if (v === null || v < 0n) return error("ERR COUNT can't be negative");
      count = v;
    } else if (opt === "MAXLEN") {
      if (v === null || v < 0n) return error("ERR MAXLEN can't be negative");
      maxlen = v;
    } else return Errors.syntax;
  }
  const l = listOf(ctx, args[1]!);
  if (isReply(l)) return l;
  if (l === null) return count === null ? NIL : array([]);
  const all = allElements(ctx, l);
  const found: number[] = [];
  let skip = (rank < 0n ? -rank : rank) - 1n;
  const want = count === null ? 1 : count === 0n ? Number.POSITIVE_INFINITY : Number(count);
  const scan = maxlen === 0n ? all.length : Math.min(all.length, Number(maxlen));
  for (let k = 0; k < scan && found.length < want; k++) {
    const i = rank < 0n ? all.length - 1 - k : k;
    if (!all[i]!.equals(args[2]!)) continue;
    if (skip > 0n) skip--;
    else found.push(i);
  }
  if (count === null) return found.length === 0 ? NIL : int(found[0]!);
  return array(found.map((i) => int(i)));
}
