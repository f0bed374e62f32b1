/**
 * Sorted-set commands, with Redis's replies and errors. A sorted set is a collection record (its id and
 * member count) and two items per member: by member (tag 0, member → its score's 8 bytes) and by score
 * (tag 1, score key ‖ member → nothing), so a score is looked up by member and members are walked in
 * score order (equal scores by member bytes, as Redis orders them), up or down from any score, without
 * reading the rest of the set. A rank is counted by walking from the nearer end: ZRANGE 0 9, ZPOPMAX and
 * ZREVRANGE 0 9 read ten members of a set of any size; ZRANK of a member in the middle reads half of it.
 */
import { RecordType } from "../record.js";
import { array, bulk, Errors, error, int, NIL, type Reply } from "../reply.js";
import { parseInt64, upper } from "./args.js";
import {
  anyTooLong,
  type Collection,
  collectionForWrite,
  collectionOf,
  indexRange,
  isReply,
  itemTooLong,
  save as saveCollection,
} from "./collections.js";
import type { ReadAccess, WriteAccess } from "./context.js";
import {
  aboveMin,
  belowMax,
  formatScore,
  parseScore,
  parseScoreBound,
  type ScoreBound,
  scoreKey,
  scoreOfKey,
} from "./scores.js";

const ZSET = RecordType.ZSet;
const BY_MEMBER = 0x00;
const BY_SCORE = 0x01;
const EMPTY = Buffer.alloc(0);
/** Items read at a time: a few first (most walks stop soon), more as a walk goes on. */
const FIRST_PAGE = 16;
const PAGE = 256;
const memberTooLong = itemTooLong("sorted set member");
const notFloat = Errors.notFloat;
const rangeNotFloat = error("ERR min or max is not a float");
const nanScore = error("ERR resulting score is not a number (NaN)");
/** The most one ZPOPMIN or ZPOPMAX takes: its reply is built in memory, on every replica. */
export const MAX_POP = 1_000_000;
const tooMany = error(`ERR value is out of range (at most ${MAX_POP} members at once)`);

const zsetOf = (ctx: ReadAccess, key: Buffer) => collectionOf(ctx, key, ZSET);
const save = (ctx: WriteAccess, key: Buffer, z: Collection) => saveCollection(ctx, key, ZSET, z);
const score = (d: number): Reply => ({ k: "double", v: formatScore(d) });

function memberSub(member: Buffer): Buffer {
  const out = Buffer.allocUnsafe(1 + member.length);
  out[0] = BY_MEMBER;
  member.copy(out, 1);
  return out;
}

function scoreSub(d: number, member: Buffer): Buffer {
  const out = Buffer.allocUnsafe(9 + member.length);
  out[0] = BY_SCORE;
  scoreKey(d, out, 1);
  member.copy(out, 9);
  return out;
}

export function scoreOf(ctx: ReadAccess, z: Collection, member: Buffer): number | undefined {
  const v = ctx.item(z.id, memberSub(member));
  return v === undefined ? undefined : v.readDoubleBE(0);
}

export function setScore(
  ctx: WriteAccess,
  z: Collection,
  member: Buffer,
  old: number | undefined,
  d: number,
): void {
  if (old !== undefined) ctx.removeItem(z.id, scoreSub(old, member));
  const v = Buffer.allocUnsafe(8);
  v.writeDoubleBE(d, 0);
  ctx.putItem(z.id, memberSub(member), v);
  ctx.putItem(z.id, scoreSub(d, member), EMPTY);
}

function removeMember(ctx: WriteAccess, z: Collection, member: Buffer, old: number): void {
  ctx.removeItem(z.id, memberSub(member));
  ctx.removeItem(z.id, scoreSub(old, member));
}

interface Entry {
  readonly member: Buffer;
  readonly score: number;
}

/**
 * Members in score order, a page at a time: up from `bound` (a score sub-key, inclusive; null: the
 * lowest), or down from below it (exclusive; null: the highest).
 */
function* walk(ctx: ReadAccess, z: Collection, bound: Buffer | null, down: boolean): Generator<Entry> {
  let at = bound;
  for (let size = FIRST_PAGE; ; size = Math.min(PAGE, size * 4)) {
    const page = down ? ctx.itemsBelow(z.id, at, size) : ctx.items(z.id, at ?? Buffer.from([BY_SCORE]), size);
    for (const [sub] of page) {
      if (sub[0] !== BY_SCORE) return;
      const member = Buffer.from(sub.subarray(9));
      let s = scoreOfKey(sub, 1);
      // The key holds -0 as 0: the member's own item keeps the sign Redis prints.
      if (s === 0) s = scoreOf(ctx, z, member) ?? 0;
      yield { member, score: s };
    }
    if (page.length < size) return;
    const last = page[page.length - 1]![0];
    at = down ? Buffer.from(last) : Buffer.concat([last, Buffer.from([0])]);
  }
}

export const ascending = (ctx: ReadAccess, z: Collection, from: Buffer | null = null) =>
  walk(ctx, z, from, false);
const descending = (ctx: ReadAccess, z: Collection, below: Buffer | null = null) => walk(ctx, z, below, true);

/** Members from the rank `first` through `last` (0-based, ascending), walked from the nearer end. */
function byRank(ctx: ReadAccess, z: Collection, first: number, last: number): Entry[] {
  if (z.count - 1 - last < first)
    return byRankFromTop(ctx, z, z.count - 1 - last, z.count - 1 - first).reverse();
  return ranks(ascending(ctx, z), first, last);
}

/** Members from the rank `first` through `last` counted from the highest score (descending). */
function byRankFromTop(ctx: ReadAccess, z: Collection, first: number, last: number): Entry[] {
  return ranks(descending(ctx, z), first, last);
}

/** The entries of a walk from its `first` through its `last` (0-based, inclusive). */
function ranks(walked: Iterable<Entry>, first: number, last: number): Entry[] {
  const out: Entry[] = [];
  let rank = 0;
  for (const e of walked) {
    if (rank > last) break;
    if (rank >= first) out.push(e);
    rank++;
  }
  return out;
}

/** The score sub-key just above every member of score `d` (exclusive upper bound for a walk down). */
function aboveScore(d: number): Buffer {
  const out = Buffer.allocUnsafe(9);
  out[0] = BY_SCORE;
  scoreKey(d, out, 1);
  // The 8-byte key plus one, as a big-endian number (no score's key is all ones).
  for (let i = 8; i >= 1; i--) {
    if (out[i] === 0xff) out[i] = 0;
    else {
      out[i]!++;
      break;
    }
  }
  return out;
}

/** Members with scores within [min, max], descending. */
function* byScoreDescending(
  ctx: ReadAccess,
  z: Collection,
  min: ScoreBound,
  max: ScoreBound,
): Generator<Entry> {
  if (Number.isNaN(min.value) || Number.isNaN(max.value)) return;
  for (const e of descending(ctx, z, aboveScore(max.value))) {
    if (!aboveMin(e.score, min)) return;
    if (belowMax(e.score, max)) yield e;
  }
}

/** Members with scores within [min, max], ascending. */
function* byScore(ctx: ReadAccess, z: Collection, min: ScoreBound, max: ScoreBound): Generator<Entry> {
  if (Number.isNaN(min.value) || Number.isNaN(max.value)) return;
  const from = Buffer.allocUnsafe(9);
  from[0] = BY_SCORE;
  scoreKey(min.value, from, 1);
  for (const e of ascending(ctx, z, from)) {
    if (!belowMax(e.score, max)) return;
    if (aboveMin(e.score, min)) yield e;
  }
}

function withScores(entries: readonly Entry[], scores: boolean): Reply {
  if (!scores) return array(entries.map((e) => bulk(e.member)));
  return { k: "scored", v: entries.map((e) => [bulk(e.member), score(e.score)] as const) };
}

// ---------------------------------------------------------------------------------------- writes

interface ZaddFlags {
  nx: boolean;
  xx: boolean;
  gt: boolean;
  lt: boolean;
  ch: boolean;
  incr: boolean;
}

export function zadd(ctx: WriteAccess, args: readonly Buffer[]): Reply {
  const f: ZaddFlags = { nx: false, xx: false, gt: false, lt: false, ch: false, incr: false };
  let i = 2;
  for (; i < args.length; i++) {
    const o = upper(args[i]!);
    if (o === "NX") f.nx = true;
    else if (o === "XX") f.xx = true;
    else if (o === "GT") f.gt = true;
    else if (o === "LT") f.lt = true;
    else if (o === "CH") f.ch = true;
    else if (o === "INCR") f.incr = true;
    else break;
  }
  const pairs = args.length - i;
  if (pairs === 0 || pairs % 2 !== 0) return Errors.syntax;
  if (f.nx && f.xx) return error("ERR XX and NX options at the same time are not compatible");
  if ((f.gt && f.nx) || (f.lt && f.nx) || (f.gt && f.lt))
    return error("ERR GT, LT, and/or NX options at the same time are not compatible");
  if (f.incr && pairs > 2) return error("ERR INCR option supports a single increment-element pair");
  const scores: number[] = [];
  for (let j = i; j < args.length; j += 2) {
    const d = parseScore(args[j]!);
    if (d === null) return notFloat;
    scores.push(d);
  }
  if (anyTooLong(args, i + 1, 2)) return memberTooLong;
  return zaddPairs(ctx, args[1]!, f, scores, (k) => args[i + 1 + 2 * k]!);
}

function zaddPairs(
  ctx: WriteAccess,
  key: Buffer,
  f: ZaddFlags,
  scores: readonly number[],
  memberAt: (k: number) => Buffer,
): Reply {
  const existing = zsetOf(ctx, key);
  if (isReply(existing)) return existing;
  if (existing === null && f.xx) return f.incr ? NIL : int(0);
  const z = existing ?? collectionForWrite(ctx, key, ZSET);
  if (isReply(z)) return z;
  let added = 0;
  let changed = 0;
  let result: number | null = null;
  for (let k = 0; k < scores.length; k++) {
    const member = memberAt(k);
    const old = scoreOf(ctx, z, member);
    if (old === undefined) {
      if (f.xx) continue;
      const d = scores[k]!;
      if (Number.isNaN(d)) return nanScore;
      setScore(ctx, z, member, undefined, d);
      added++;
      result = d;
      continue;
    }
    if (f.nx) continue;
    const next = f.incr ? old + scores[k]! : scores[k]!;
    if (Number.isNaN(next)) return nanScore;
    if ((f.gt && !(next > old)) || (f.lt && !(next < old))) continue;
    result = next;
    // As Redis compares them: -0 and 0 are the same score, and no change.
    if (next !== old) {
      setScore(ctx, z, member, old, next);
      changed++;
    }
  }
  z.count += added;
  if (added > 0 || changed > 0) save(ctx, key, z);
  if (f.incr) return result === null ? NIL : score(result);
  return int(f.ch ? added + changed : added);
}

export function zincrby(ctx: WriteAccess, args: readonly Buffer[]): Reply {
  const d = parseScore(args[2]!);
  if (d === null) return notFloat;
  if (anyTooLong(args, 3)) return memberTooLong;
  const f = { nx: false, xx: false, gt: false, lt: false, ch: false, incr: true };
  return zaddPairs(ctx, args[1]!, f, [d], () => args[3]!);
}

export function zrem(ctx: WriteAccess, args: readonly Buffer[]): Reply {
  const z = zsetOf(ctx, args[1]!);
  if (z === null) return int(0);
  if (isReply(z)) return z;
  let removed = 0;
  for (let i = 2; i < args.length; i++) {
    const old = scoreOf(ctx, z, args[i]!);
    if (old === undefined) continue;
    removeMember(ctx, z, args[i]!, old);
    removed++;
  }
  if (removed === 0) return int(0);
  z.count -= removed;
  save(ctx, args[1]!, z);
  return int(removed);
}

function popGeneric(ctx: WriteAccess, args: readonly Buffer[], max: boolean): Reply {
  let count: number | null = null;
  if (args.length > 3) return Errors.syntax;
  if (args.length === 3) {
    const n = parseInt64(args[2]!);
    if (n === null || n < 0n) return error("ERR value is out of range, must be positive");
    if (n > BigInt(MAX_POP)) return tooMany;
    count = Number(n);
  }
  const z = zsetOf(ctx, args[1]!);
  if (isReply(z)) return z;
  if (z === null || count === 0) return array([]);
  const n = Math.min(count ?? 1, z.count);
  const picked = max ? byRankFromTop(ctx, z, 0, n - 1) : byRank(ctx, z, 0, n - 1);
  for (const e of picked) removeMember(ctx, z, e.member, e.score);
  z.count -= picked.length;
  save(ctx, args[1]!, z);
  const flat = picked.flatMap((e) => [bulk(e.member), score(e.score)]);
  return count === null ? array(flat) : withScores(picked, true);
}

export const zpopmin = (ctx: WriteAccess, args: readonly Buffer[]) => popGeneric(ctx, args, false);
export const zpopmax = (ctx: WriteAccess, args: readonly Buffer[]) => popGeneric(ctx, args, true);

export function zremrangebyrank(ctx: WriteAccess, args: readonly Buffer[]): Reply {
  const start = parseInt64(args[2]!);
  const stop = parseInt64(args[3]!);
  if (start === null || stop === null) return Errors.notInteger;
  const z = zsetOf(ctx, args[1]!);
  if (z === null) return int(0);
  if (isReply(z)) return z;
  const range = indexRange(z.count, start, stop);
  if (range === null) return int(0);
  return removeEntries(ctx, args[1]!, z, byRank(ctx, z, range[0], range[1]));
}

export function zremrangebyscore(ctx: WriteAccess, args: readonly Buffer[]): Reply {
  const min = parseScoreBound(args[2]!);
  const max = parseScoreBound(args[3]!);
  if (min === null || max === null) return rangeNotFloat;
  const z = zsetOf(ctx, args[1]!);
  if (z === null) return int(0);
  if (isReply(z)) return z;
  return removeEntries(ctx, args[1]!, z, [...byScore(ctx, z, min, max)]);
}

function removeEntries(ctx: WriteAccess, key: Buffer, z: Collection, entries: readonly Entry[]): Reply {
  for (const e of entries) removeMember(ctx, z, e.member, e.score);
  if (entries.length === 0) return int(0);
  z.count -= entries.length;
  save(ctx, key, z);
  return int(entries.length);
}

// ----------------------------------------------------------------------------------------- reads

export function zscore(ctx: ReadAccess, args: readonly Buffer[]): Reply {
  const z = zsetOf(ctx, args[1]!);
  if (z === null) return NIL;
  if (isReply(z)) return z;
  const s = scoreOf(ctx, z, args[2]!);
  return s === undefined ? NIL : score(s);
}

export function zmscore(ctx: ReadAccess, args: readonly Buffer[]): Reply {
  const z = zsetOf(ctx, args[1]!);
  if (isReply(z)) return z;
  const out: Reply[] = [];
  for (let i = 2; i < args.length; i++) {
    const s = z === null ? undefined : scoreOf(ctx, z, args[i]!);
    out.push(s === undefined ? NIL : score(s));
  }
  return array(out);
}

export function zcard(ctx: ReadAccess, args: readonly Buffer[]): Reply {
  const z = zsetOf(ctx, args[1]!);
  if (z === null) return int(0);
  if (isReply(z)) return z;
  return int(z.count);
}

export function zcount(ctx: ReadAccess, args: readonly Buffer[]): Reply {
  const min = parseScoreBound(args[2]!);
  const max = parseScoreBound(args[3]!);
  if (min === null || max === null) return rangeNotFloat;
  const z = zsetOf(ctx, args[1]!);
  if (z === null) return int(0);
  if (isReply(z)) return z;
  let n = 0;
  for (const _ of byScore(ctx, z, min, max)) n++;
  return int(n);
}

function rankGeneric(ctx: ReadAccess, args: readonly Buffer[], reverse: boolean): Reply {
  const z = zsetOf(ctx, args[1]!);
  if (z === null) return NIL;
  if (isReply(z)) return z;
  const s = scoreOf(ctx, z, args[2]!);
  if (s === undefined) return NIL;
  // Members before it in score order (no rank index): ZRANK walks up from the lowest score, ZREVRANK
  // down from the highest.
  const member = args[2]!;
  let rank = 0;
  if (!reverse)
    for (const e of ascending(ctx, z)) {
      if (e.member.equals(member)) break;
      rank++;
    }
  else
    for (const e of descending(ctx, z)) {
      if (e.member.equals(member)) break;
      rank++;
    }
  return int(rank);
}

export const zrank = (ctx: ReadAccess, args: readonly Buffer[]) => rankGeneric(ctx, args, false);
export const zrevrank = (ctx: ReadAccess, args: readonly Buffer[]) => rankGeneric(ctx, args, true);

interface RangeQuery {
  by: "rank" | "score";
  rev: boolean;
  withScores: boolean;
  offset: number;
  limit: number;
}

/** ZRANGE and its older forms: `from` and `to` as given (for REV and the REV forms, high then low). */
function rangeGeneric(ctx: ReadAccess, key: Buffer, from: Buffer, to: Buffer, q: RangeQuery): Reply {
  if (q.by === "rank") {
    const start = parseInt64(from);
    const stop = parseInt64(to);
    if (start === null || stop === null) return Errors.notInteger;
    const z = zsetOf(ctx, key);
    if (z === null) return array([]);
    if (isReply(z)) return z;
    const range = indexRange(z.count, start, stop);
    if (range === null) return array([]);
    const entries = q.rev ? byRankFromTop(ctx, z, range[0], range[1]) : byRank(ctx, z, range[0], range[1]);
    return withScores(entries, q.withScores);
  }
  const lowArg = q.rev ? to : from;
  const highArg = q.rev ? from : to;
  const min = parseScoreBound(lowArg);
  const max = parseScoreBound(highArg);
  if (min === null || max === null) return rangeNotFloat;
  const z = zsetOf(ctx, key);
  if (z === null) return array([]);
  if (isReply(z)) return z;
  if (q.limit === 0) return array([]);
  let entries: Entry[];
  if (!q.rev) {
    entries = [];
    let skipped = 0;
    for (const e of byScore(ctx, z, min, max)) {
      if (skipped++ < q.offset) continue;
      entries.push(e);
      if (q.limit > 0 && entries.length >= q.limit) break;
    }
  } else {
    entries = [];
    let skipped = 0;
    for (const e of byScoreDescending(ctx, z, min, max)) {
      if (skipped++ < q.offset) continue;
      entries.push(e);
      if (q.limit > 0 && entries.length >= q.limit) break;
    }
  }
  return withScores(entries, q.withScores);
}

/** Parses WITHSCORES and LIMIT offset count (from index `from`); `allowLimit` for the score forms. */
function rangeOptions(
  args: readonly Buffer[],
  from: number,
  q: RangeQuery,
  modern: boolean,
): RangeQuery | Reply {
  // Redis refuses LIMIT with a rank range unless its count is -1 (its "no limit").
  let limitedCount: bigint | null = null;
  for (let i = from; i < args.length; i++) {
    const o = upper(args[i]!);
    if (o === "WITHSCORES") q.withScores = true;
    else if (o === "LIMIT" && i + 2 < args.length) {
      const offset = parseInt64(args[i + 1]!);
      const count = parseInt64(args[i + 2]!);
      if (offset === null || count === null) return Errors.notInteger;
      q.offset = offset < 0n ? -1 : Number(offset > 1_000_000_000n ? 1_000_000_000n : offset);
      q.limit = count < 0n ? -1 : Number(count > 1_000_000_000n ? 1_000_000_000n : count);
      limitedCount = count;
      i += 2;
    } else if (modern && o === "BYSCORE") q.by = "score";
    else if (modern && o === "REV") q.rev = true;
    else return Errors.syntax;
  }
  if (limitedCount !== null && limitedCount !== -1n && q.by === "rank")
    return error("ERR syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX");
  // A negative offset: Redis answers an empty array.
  if (q.offset < 0) q.limit = 0;
  return q;
}

const query = (by: "rank" | "score", rev: boolean): RangeQuery => ({
  by,
  rev,
  withScores: false,
  offset: 0,
  limit: -1,
});

export function zrange(ctx: ReadAccess, args: readonly Buffer[]): Reply {
  const q = rangeOptions(args, 4, query("rank", false), true);
  if (isReply(q)) return q;
  return rangeGeneric(ctx, args[1]!, args[2]!, args[3]!, q);
}

export function zrevrange(ctx: ReadAccess, args: readonly Buffer[]): Reply {
  if (args.length > 5 || (args.length === 5 && upper(args[4]!) !== "WITHSCORES")) return Errors.syntax;
  return rangeGeneric(ctx, args[1]!, args[2]!, args[3]!, {
    ...query("rank", true),
    withScores: args.length === 5,
  });
}

export function zrangebyscore(ctx: ReadAccess, args: readonly Buffer[]): Reply {
  const q = rangeOptions(args, 4, query("score", false), false);
  if (isReply(q)) return q;
  return rangeGeneric(ctx, args[1]!, args[2]!, args[3]!, q);
}

export function zrevrangebyscore(ctx: ReadAccess, args: readonly Buffer[]): Reply {
  const q = rangeOptions(args, 4, query("score", true), false);
  if (isReply(q)) return q;
  return rangeGeneric(ctx, args[1]!, args[2]!, args[3]!, q);
}
