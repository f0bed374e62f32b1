/**
 * Hash commands, with Redis's replies and errors. A hash is a collection record (its id and field count)
 * and one item per field in the store's items table, so a command touches the fields it names and the
 * small record, never the whole hash.
 */
import { RecordType } from "../record.js";
import { array, bulk, Errors, error, int, NIL, OK, type Reply } from "../reply.js";
import { inInt64, parseInt64, upper } from "./args.js";
import {
  allItems,
  anyTooLong,
  type Collection,
  cardinality,
  collectionForWrite,
  collectionOf,
  holdsItem,
  isReply,
  itemTooLong,
  MAX_ITEM_BYTES,
  removeItems,
  save as saveCollection,
  scanItems,
} from "./collections.js";
import type { ReadAccess, WriteAccess } from "./context.js";
import { addLongDouble, formatLongDouble, isFiniteLongDouble, parseLongDouble, ZERO } from "./long-double.js";

const HASH = RecordType.Hash;
const fieldTooLong = itemTooLong("hash field");
const notIntegerValue = error("ERR hash value is not an integer");
const notFloatValue = error("ERR hash value is not a float");

const hashOf = (ctx: ReadAccess, key: Buffer) => collectionOf(ctx, key, HASH);
const hashForWrite = (ctx: WriteAccess, key: Buffer) => collectionForWrite(ctx, key, HASH);
const save = (ctx: WriteAccess, key: Buffer, h: Collection) => saveCollection(ctx, key, HASH, h);

/** Sets each field; how many were new. */
function setFields(ctx: WriteAccess, key: Buffer, args: readonly Buffer[]): number | Reply {
  if (anyTooLong(args, 2, 2)) return fieldTooLong;
  const h = hashForWrite(ctx, key);
  if (isReply(h)) return h;
  let added = 0;
  for (let i = 2; i < args.length; i += 2) {
    if (ctx.item(h.id, args[i]!) === undefined) added++;
    ctx.putItem(h.id, args[i]!, args[i + 1]!);
  }
  h.count += added;
  save(ctx, key, h);
  return added;
}

export function hset(ctx: WriteAccess, args: readonly Buffer[]): Reply {
  if (args.length % 2 !== 0) return Errors.wrongArity("hset");
  const added = setFields(ctx, args[1]!, args);
  return isReply(added) ? added : int(added);
}

export function hmset(ctx: WriteAccess, args: readonly Buffer[]): Reply {
  if (args.length % 2 !== 0) return Errors.wrongArity("hmset");
  const added = setFields(ctx, args[1]!, args);
  return isReply(added) ? added : OK;
}

export function hsetnx(ctx: WriteAccess, args: readonly Buffer[]): Reply {
  if (args[2]!.length > MAX_ITEM_BYTES) return fieldTooLong;
  const h = hashForWrite(ctx, args[1]!);
  if (isReply(h)) return h;
  if (ctx.item(h.id, args[2]!) !== undefined) return int(0);
  ctx.putItem(h.id, args[2]!, args[3]!);
  h.count++;
  save(ctx, args[1]!, h);
  return int(1);
}

export function hget(ctx: ReadAccess, args: readonly Buffer[]): Reply {
  const h = hashOf(ctx, args[1]!);
  if (h === null) return NIL;
  if (isReply(h)) return h;
  const v = ctx.item(h.id, args[2]!);
  return v === undefined ? NIL : bulk(v);
}

export function hmget(ctx: ReadAccess, args: readonly Buffer[]): Reply {
  const h = hashOf(ctx, args[1]!);
  if (isReply(h)) return h;
  const out: Reply[] = [];
  for (let i = 2; i < args.length; i++) {
    const v = h === null ? undefined : ctx.item(h.id, args[i]!);
    out.push(v === undefined ? NIL : bulk(v));
  }
  return array(out);
}

export function hgetall(ctx: ReadAccess, args: readonly Buffer[]): Reply {
  const h = hashOf(ctx, args[1]!);
  if (h === null) return { k: "map", v: [] };
  if (isReply(h)) return h;
  return { k: "map", v: allItems(ctx, h).map(([f, v]) => [bulk(f), bulk(v)] as const) };
}

export function hkeys(ctx: ReadAccess, args: readonly Buffer[]): Reply {
  const h = hashOf(ctx, args[1]!);
  if (h === null) return array([]);
  if (isReply(h)) return h;
  return array(allItems(ctx, h).map(([f]) => bulk(f)));
}

export function hvals(ctx: ReadAccess, args: readonly Buffer[]): Reply {
  const h = hashOf(ctx, args[1]!);
  if (h === null) return array([]);
  if (isReply(h)) return h;
  return array(allItems(ctx, h).map(([, v]) => bulk(v)));
}

export function hdel(ctx: WriteAccess, args: readonly Buffer[]): Reply {
  return removeItems(ctx, args, HASH);
}

export const hexists = holdsItem(HASH);

export const hlen = cardinality(HASH);

export function hstrlen(ctx: ReadAccess, args: readonly Buffer[]): Reply {
  const h = hashOf(ctx, args[1]!);
  if (h === null) return int(0);
  if (isReply(h)) return h;
  return int(ctx.item(h.id, args[2]!)?.length ?? 0);
}

export function hincrby(ctx: WriteAccess, args: readonly Buffer[]): Reply {
  const by = parseInt64(args[3]!);
  if (by === null) return Errors.notInteger;
  if (args[2]!.length > MAX_ITEM_BYTES) return fieldTooLong;
  const h = hashForWrite(ctx, args[1]!);
  if (isReply(h)) return h;
  const old = ctx.item(h.id, args[2]!);
  const current = old === undefined ? 0n : parseInt64(old);
  if (current === null) return notIntegerValue;
  const next = current + by;
  if (!inInt64(next)) return Errors.overflow;
  ctx.putItem(h.id, args[2]!, Buffer.from(next.toString(), "latin1"));
  if (old === undefined) h.count++;
  save(ctx, args[1]!, h);
  return int(next);
}

export function hincrbyfloat(ctx: WriteAccess, args: readonly Buffer[]): Reply {
  const by = parseLongDouble(args[3]!);
  if (by === null) return Errors.notFloat;
  if (!isFiniteLongDouble(by)) return error("ERR value is NaN or Infinity");
  if (args[2]!.length > MAX_ITEM_BYTES) return fieldTooLong;
  const h = hashForWrite(ctx, args[1]!);
  if (isReply(h)) return h;
  const old = ctx.item(h.id, args[2]!);
  const current = old === undefined ? ZERO : parseLongDouble(old);
  if (current === null) return notFloatValue;
  const next = addLongDouble(current, by);
  if (!isFiniteLongDouble(next)) return Errors.incrNanOrInf;
  const text = Buffer.from(formatLongDouble(next), "latin1");
  ctx.putItem(h.id, args[2]!, text);
  if (old === undefined) h.count++;
  save(ctx, args[1]!, h);
  return bulk(text);
}

export function hscan(ctx: ReadAccess, args: readonly Buffer[]): Reply {
  return scanItems(ctx, args, HASH, true);
}

/** The most fields one HRANDFIELD returns: its reply is built in memory. */
const MAX_RANDOM_FIELDS = 1_000_000;

/** HRANDFIELD key [count [WITHVALUES]]: a read, so it draws from this node's own randomness. */
export function hrandfield(ctx: ReadAccess, args: readonly Buffer[]): Reply {
  let count: number | null = null;
  let withValues = false;
  if (args.length >= 3) {
    const n = parseInt64(args[2]!);
    if (n === null) return Errors.notInteger;
    if (args.length > 4 || (args.length === 4 && upper(args[3]!) !== "WITHVALUES")) return Errors.syntax;
    if (n > BigInt(MAX_RANDOM_FIELDS) || n < -BigInt(MAX_RANDOM_FIELDS))
      return error(`ERR value is out of range (at most ${MAX_RANDOM_FIELDS} fields at once)`);
    count = Number(n);
    withValues = args.length === 4;
  }
  const h = hashOf(ctx, args[1]!);
  if (h === null) return count === null ? NIL : array([]);
  if (isReply(h)) return h;
  const all = allItems(ctx, h);
  const pick = (n: number) => Math.floor(Math.random() * n);
  if (count === null) return bulk(all[pick(all.length)]![0]);
  let chosen: Array<[Buffer, Buffer]>;
  // A negative count may repeat fields and gives exactly that many; a positive one gives distinct ones.
  if (count < 0) chosen = Array.from({ length: -count }, () => all[pick(all.length)]!);
  else {
    const k = Math.min(count, all.length);
    for (let i = 0; i < k; i++) {
      const j = i + pick(all.length - i);
      [all[i], all[j]] = [all[j]!, all[i]!];
    }
    chosen = all.slice(0, k);
  }
  if (!withValues) return array(chosen.map(([f]) => bulk(f)));
  return { k: "scored", v: chosen.map(([f, v]) => [bulk(f), bulk(v)] as const) };
}
