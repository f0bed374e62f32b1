/**
 * Set commands, with Redis's replies and errors. A set is a collection record (its id and member count)
 * and one item per member (with an empty value). SPOP's choice is drawn from the entry's seeded source,
 * so every replica pops the same members; SRANDMEMBER is a read and draws from the node's own.
 */
import { RecordType } from "../record.js";
import { array, bulk, Errors, error, int, NIL, type Reply } from "../reply.js";
import { parseInt64 } from "./args.js";
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
  removeItems,
  save as saveCollection,
  scanItems,
} from "./collections.js";
import type { ReadAccess, WriteAccess } from "./context.js";

const SET = RecordType.Set;
const EMPTY = Buffer.alloc(0);
const memberTooLong = itemTooLong("set member");
/** The most SRANDMEMBER returns, or SPOP pops, at once: a reply is built in memory. */
const MAX_RANDOM_COUNT = 1_000_000;

const setOf = (ctx: ReadAccess, key: Buffer) => collectionOf(ctx, key, SET);
const save = (ctx: WriteAccess, key: Buffer, s: Collection) => saveCollection(ctx, key, SET, s);
const members = (ctx: ReadAccess, s: Collection) => allItems(ctx, s).map(([m]) => m);
const setReply = (ms: readonly Buffer[]): Reply => ({ k: "set", v: ms.map((m) => bulk(m)) });

export function sadd(ctx: WriteAccess, args: readonly Buffer[]): Reply {
  if (anyTooLong(args, 2)) return memberTooLong;
  const s = collectionForWrite(ctx, args[1]!, SET);
  if (isReply(s)) return s;
  let added = 0;
  for (let i = 2; i < args.length; i++) {
    if (ctx.item(s.id, args[i]!) !== undefined) continue;
    ctx.putItem(s.id, args[i]!, EMPTY);
    added++;
  }
  if (added === 0 && s.count > 0) return int(0);
  s.count += added;
  save(ctx, args[1]!, s);
  return int(added);
}

export function srem(ctx: WriteAccess, args: readonly Buffer[]): Reply {
  return removeItems(ctx, args, SET);
}

export function smembers(ctx: ReadAccess, args: readonly Buffer[]): Reply {
  const s = setOf(ctx, args[1]!);
  if (s === null) return setReply([]);
  if (isReply(s)) return s;
  return setReply(members(ctx, s));
}

export const sismember = holdsItem(SET);

export function smismember(ctx: ReadAccess, args: readonly Buffer[]): Reply {
  const s = setOf(ctx, args[1]!);
  if (isReply(s)) return s;
  const out: Reply[] = [];
  for (let i = 2; i < args.length; i++)
    out.push(int(s !== null && ctx.item(s.id, args[i]!) !== undefined ? 1 : 0));
  return array(out);
}

export const scard = cardinality(SET);

const mustBePositive = error("ERR value is out of range, must be positive");

/** The count argument of SPOP and SRANDMEMBER, if given: an integer, or `notInteger`. */
function countArg(args: readonly Buffer[], notInteger: Reply): number | null | Reply {
  if (args.length < 3) return null;
  if (args.length > 3) return Errors.syntax;
  const n = parseInt64(args[2]!);
  if (n === null) return notInteger;
  if (n > BigInt(MAX_RANDOM_COUNT) || n < -BigInt(MAX_RANDOM_COUNT))
    return error(`ERR value is out of range (at most ${MAX_RANDOM_COUNT} members at once)`);
  return Number(n);
}

/** `k` distinct members chosen by `pick` (a uniform integer below its argument), by a partial shuffle. */
function chooseDistinct(all: Buffer[], k: number, pick: (n: number) => number): Buffer[] {
  for (let i = 0; i < k; i++) {
    const j = i + pick(all.length - i);
    const t = all[i]!;
    all[i] = all[j]!;
    all[j] = t;
  }
  return all.slice(0, k);
}

export function spop(ctx: WriteAccess, args: readonly Buffer[]): Reply {
  const count = countArg(args, mustBePositive);
  if (isReply(count)) return count;
  if (count !== null && count < 0) return mustBePositive;
  const s = setOf(ctx, args[1]!);
  if (isReply(s)) return s;
  if (s === null) return count === null ? NIL : setReply([]);
  if (count === 0) return setReply([]);
  const popped = chooseDistinct(members(ctx, s), Math.min(count ?? 1, s.count), (n) => ctx.randomInt(n));
  for (const m of popped) ctx.removeItem(s.id, m);
  s.count -= popped.length;
  save(ctx, args[1]!, s);
  return count === null ? bulk(popped[0]!) : setReply(popped);
}

export function srandmember(ctx: ReadAccess, args: readonly Buffer[]): Reply {
  const count = countArg(args, Errors.notInteger);
  if (isReply(count)) return count;
  const s = setOf(ctx, args[1]!);
  if (isReply(s)) return s;
  if (s === null) return count === null ? NIL : array([]);
  const all = members(ctx, s);
  const pick = (n: number) => Math.floor(Math.random() * n);
  if (count === null) return bulk(all[pick(all.length)]!);
  // A negative count may repeat members and gives exactly that many; a positive one gives distinct ones.
  if (count < 0) return array(Array.from({ length: -count }, () => bulk(all[pick(all.length)]!)));
  return array(chooseDistinct(all, Math.min(count, all.length), pick).map((m) => bulk(m)));
}

export function smove(ctx: WriteAccess, args: readonly Buffer[]): Reply {
  // A member too long to be stored is in no set: the answer is 0, as for any absent member.
  const [, from, to, member] = args as [Buffer, Buffer, Buffer, Buffer];
  // As Redis: an absent source answers 0 before the types are checked.
  const src = setOf(ctx, from);
  if (src === null) return int(0);
  if (isReply(src)) return src;
  const dst = setOf(ctx, to);
  if (isReply(dst)) return dst;
  if (ctx.item(src.id, member) === undefined) return int(0);
  if (from.equals(to)) return int(1);
  ctx.removeItem(src.id, member);
  src.count--;
  save(ctx, from, src);
  const target = dst ?? collectionForWrite(ctx, to, SET);
  if (isReply(target)) return target;
  if (ctx.item(target.id, member) === undefined) {
    ctx.putItem(target.id, member, EMPTY);
    target.count++;
  }
  // Stored even when it held the member already: Redis signals the destination as modified (WATCH).
  save(ctx, to, target);
  return int(1);
}

/** The sets at `keys` (null for an absent key), or WRONGTYPE if one is of another type. */
function setsOf(ctx: ReadAccess, keys: readonly Buffer[]): Array<Collection | null> | Reply {
  const out: Array<Collection | null> = [];
  for (const k of keys) {
    const s = setOf(ctx, k);
    if (isReply(s)) return s;
    out.push(s);
  }
  return out;
}

/** The intersection, from the smallest set, each member looked up in the others; stops at `limit`. */
function intersect(
  ctx: ReadAccess,
  sets: Array<Collection | null>,
  limit = Number.POSITIVE_INFINITY,
): Buffer[] {
  if (sets.some((s) => s === null)) return [];
  const present = sets as Collection[];
  const smallest = present.reduce((a, b) => (b.count < a.count ? b : a));
  const out: Buffer[] = [];
  for (const m of members(ctx, smallest)) {
    if (present.every((s) => s === smallest || ctx.item(s.id, m) !== undefined)) out.push(m);
    if (out.length >= limit) break;
  }
  return out;
}

function union(ctx: ReadAccess, sets: Array<Collection | null>): Buffer[] {
  const seen = new Map<string, Buffer>();
  for (const s of sets) if (s !== null) for (const m of members(ctx, s)) seen.set(m.toString("latin1"), m);
  return [...seen.values()];
}

function difference(ctx: ReadAccess, sets: Array<Collection | null>): Buffer[] {
  const [first, ...rest] = sets;
  if (first === null || first === undefined) return [];
  return members(ctx, first).filter((m) => rest.every((s) => s === null || ctx.item(s.id, m) === undefined));
}

type SetAlgebra = (ctx: ReadAccess, sets: Array<Collection | null>) => Buffer[];

function algebra(op: SetAlgebra): (ctx: ReadAccess, args: readonly Buffer[]) => Reply {
  return (ctx, args) => {
    const sets = setsOf(ctx, args.slice(1));
    return isReply(sets) ? sets : setReply(op(ctx, sets));
  };
}

/** SINTERSTORE and the others: the result replaces whatever `destination` held; an empty one deletes it. */
function algebraStore(op: SetAlgebra): (ctx: WriteAccess, args: readonly Buffer[]) => Reply {
  return (ctx, args) => {
    const sets = setsOf(ctx, args.slice(2));
    if (isReply(sets)) return sets;
    const result = op(ctx, sets);
    const destination = args[1]!;
    ctx.delete(destination);
    if (result.length === 0) return int(0);
    const s: Collection = { id: ctx.newCollectionId(), count: result.length, expireAtMs: 0 };
    for (const m of result) ctx.putItem(s.id, m, EMPTY);
    save(ctx, destination, s);
    return int(result.length);
  };
}

export const sinter = algebra((ctx, sets) => intersect(ctx, sets));
export const sunion = algebra(union);
export const sdiff = algebra(difference);
export const sinterstore = algebraStore((ctx, sets) => intersect(ctx, sets));
export const sunionstore = algebraStore(union);
export const sdiffstore = algebraStore(difference);

export function sintercard(ctx: ReadAccess, args: readonly Buffer[]): Reply {
  const n = parseInt64(args[1]!);
  if (n === null || n <= 0n) return error("ERR numkeys should be greater than 0");
  if (n > BigInt(args.length - 2)) return error("ERR Number of keys can't be greater than number of args");
  const keys = args.slice(2, 2 + Number(n));
  let limit = Number.POSITIVE_INFINITY;
  for (let i = 2 + Number(n); i < args.length; i++) {
    if (args[i]!.toString("latin1").toUpperCase() !== "LIMIT" || i + 1 >= args.length) return Errors.syntax;
    const l = parseInt64(args[++i]!);
    if (l === null || l < 0n) return error("ERR LIMIT can't be negative");
    if (l > 0n) limit = Number(l);
  }
  const sets = setsOf(ctx, keys);
  if (isReply(sets)) return sets;
  return int(intersect(ctx, sets, limit).length);
}

export function sscan(ctx: ReadAccess, args: readonly Buffer[]): Reply {
  return scanItems(ctx, args, SET, false);
}
