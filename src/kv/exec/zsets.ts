/**
 * Sorted-set commands, with Redis's replies and errors. A sorted set is a collection record (its id and
 * member count) and two items per member: by member (tag 0, member → its score's 8 bytes) and by score
 * (tag 1, score key ‖ member → nothing), so a score is looked up by member and members are walked in
 * score order (equal scores by member bytes, as Redis orders them), up or down from any score, without
 * reading the rest of the set. A rank is counted by walking from the nearer end: ZRANGE 0 9, ZPOPMAX and
 * ZREVRANGE 0 9 read ten members of a set of any size; ZRANK of a member in the middle reads half of it.
 * Lex ranges walk the by-member items, which are in member byte order: Redis defines them only for a set
 * whose members share one score (where score order is member order); for other sets we answer in member
 * order, where Redis's answer depends on its encoding.
 */
import { RecordType } from "../record.js";
import { array, bulk, Errors, error, int, NIL, type Reply } from "../reply.js";
import { parseInt64, upper } from "./args.js";
import {
  anyTooLong,
  type Collection,
  cardinality,
  collectionForWrite,
  collectionOf,
  indexRange,
  isReply,
  itemTooLong,
  MAX_ITEM_BYTES,
  save as saveCollection,
  scanItems,
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
import { applyRankChanges, BLOCK_SPLIT, countBelow, type RankChange, seekRank } from "./zset-ranks.js";

const ZSET = RecordType.ZSet;
const BY_MEMBER = 0x00;
const BY_SCORE = 0x01;
const EMPTY = Buffer.alloc(0);
const ZERO_BYTE = Buffer.from([0]);
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
const lexNotValid = error("ERR min or max not valid string range item");

const zsetOf = (ctx: ReadAccess, key: Buffer) => collectionOf(ctx, key, ZSET);
/** Stores a sorted set's record, having counted its members' changes in its rank index. */
export function saveZset(ctx: WriteAccess, key: Buffer, z: Collection): void {
  const changes = pendingRanks.get(z);
  if (changes !== undefined) {
    pendingRanks.delete(z);
    // An emptied set goes with its items, index included.
    if (z.count > 0) applyRankChanges(ctx, z.id, changes);
  }
  saveCollection(ctx, key, ZSET, z);
}
const save = saveZset;
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

/**
 * Redis 7.0 keeps a sorted set of at most 128 members of at most 64 bytes in a compact encoding
 * (listpack) that stores a -0 score as 0, and converts it to its large one (skiplist, which keeps -0)
 * for good once a member does not fit. A set's record says which it is in (`Collection.large`), so
 * that ZSCORE answers "0" or "-0" as redis-server would.
 */
export const COMPACT_ENTRIES = 128;
export const COMPACT_MEMBER_BYTES = 64;

/** Whether `n` members (`memberAt(0…count-1)`) are past the compact encoding. */
function pastCompact(n: number, count: number, memberAt: (i: number) => Buffer): boolean {
  if (n > COMPACT_ENTRIES) return true;
  for (let i = 0; i < count; i++) if (memberAt(i).length > COMPACT_MEMBER_BYTES) return true;
  return false;
}

/** A new sorted set for a STORE form's `n` members, in the encoding Redis gives such a result. */
export function storedZset(ctx: WriteAccess, n: number, memberAt: (i: number) => Buffer): Collection {
  return {
    id: ctx.newCollectionId(),
    count: n,
    expireAtMs: 0,
    large: pastCompact(n, n, memberAt),
    ranked: true,
  };
}

export function setScore(
  ctx: WriteAccess,
  z: Collection,
  member: Buffer,
  old: number | undefined,
  d: number,
): void {
  if (old !== undefined) {
    const was = scoreSub(old, member);
    ctx.removeItem(z.id, was);
    if (z.ranked === true) rankChanged(z, was, -1);
  }
  const v = Buffer.allocUnsafe(8);
  // Stored as 0 in a compact set, as Redis 7.0 stores -0 in its listpack; a large set keeps -0.
  v.writeDoubleBE(d === 0 && z.large !== true ? 0 : d, 0);
  ctx.putItem(z.id, memberSub(member), v);
  const at = scoreSub(d, member);
  ctx.putItem(z.id, at, EMPTY);
  if (z.ranked === true) rankChanged(z, at, 1);
}

/** Remembers a change for the rank index, counted when the set is saved (see zset-ranks.ts). */
function rankChanged(z: Collection, key: Buffer, delta: 1 | -1): void {
  (pendingRanks.get(z) ?? pendingRanks.set(z, []).get(z)!).push({ key, delta });
}

/** Changes to each sorted set's rank index not yet counted, until the set is saved. */
const pendingRanks = new WeakMap<Collection, RankChange[]>();

function removeMember(ctx: WriteAccess, z: Collection, member: Buffer, old: number): void {
  ctx.removeItem(z.id, memberSub(member));
  const was = scoreSub(old, member);
  ctx.removeItem(z.id, was);
  if (z.ranked === true) rankChanged(z, was, -1);
}

interface Entry {
  readonly member: Buffer;
  readonly score: number;
}

/**
 * The items of one tag (BY_MEMBER or BY_SCORE), a page at a time: up from `bound` (inclusive), or down
 * from below it (exclusive); the walk ends at the first item of another tag.
 */
function* paged(
  ctx: ReadAccess,
  z: Collection,
  tag: number,
  bound: Buffer,
  down: boolean,
): Generator<[Buffer, Buffer]> {
  let at = bound;
  for (let size = FIRST_PAGE; ; size = Math.min(PAGE, size * 4)) {
    const page = down ? ctx.itemsBelow(z.id, at, size) : ctx.items(z.id, at, size);
    for (const item of page) {
      if (item[0][0] !== tag) return;
      yield item;
    }
    if (page.length < size) return;
    const last = page[page.length - 1]![0];
    at = down ? Buffer.from(last) : Buffer.concat([last, ZERO_BYTE]);
  }
}

/**
 * Members in score order, a page at a time: up from `bound` (a score sub-key, inclusive; null: the
 * lowest), or down from below it (exclusive; null: the highest).
 */
function* walk(ctx: ReadAccess, z: Collection, bound: Buffer | null, down: boolean): Generator<Entry> {
  // Every score sub-key is above [BY_SCORE] and below [BY_SCORE + 1].
  const from = bound ?? Buffer.from([down ? BY_SCORE + 1 : BY_SCORE]);
  for (const [sub] of paged(ctx, z, BY_SCORE, from, down)) {
    const member = Buffer.from(sub.subarray(9));
    let s = scoreOfKey(sub, 1);
    // The key holds -0 as 0: the member's own item keeps the sign Redis prints.
    if (s === 0) s = scoreOf(ctx, z, member) ?? 0;
    yield { member, score: s };
  }
}

export const ascending = (ctx: ReadAccess, z: Collection, from: Buffer | null = null) =>
  walk(ctx, z, from, false);
const descending = (ctx: ReadAccess, z: Collection, below: Buffer | null = null) => walk(ctx, z, below, true);

/**
 * Members this close to an end are walked to from that end; further in, a set with a rank index seeks
 * the block that holds the rank (about as many reads as a block holds, plus one per block).
 */
const NEAR_END = BLOCK_SPLIT;

/** Members from the rank `first` through `last` (0-based, ascending). */
function byRank(ctx: ReadAccess, z: Collection, first: number, last: number): Entry[] {
  const fromTop = z.count - 1 - last;
  if (fromTop < first && (fromTop <= NEAR_END || z.ranked !== true))
    return ranks(descending(ctx, z), fromTop, z.count - 1 - first).reverse();
  if (first <= NEAR_END || z.ranked !== true) return ranks(ascending(ctx, z), first, last);
  const at = seekRank(ctx, z.id, first);
  return at === null ? [] : ranks(ascending(ctx, z, at.from), at.skip, at.skip + last - first);
}

/** Members from the rank `first` through `last` counted from the highest score (descending). */
function byRankFromTop(ctx: ReadAccess, z: Collection, first: number, last: number): Entry[] {
  return byRank(ctx, z, z.count - 1 - last, z.count - 1 - first).reverse();
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

/**
 * One end of a lex range: `at` -1 for "-" (below every member), 1 for "+" (above every member), 0 for
 * a member, "[" inclusive or "(" exclusive.
 */
interface LexBound {
  readonly at: -1 | 0 | 1;
  readonly member: Buffer;
  readonly exclusive: boolean;
}

/** A lex range bound as Redis reads it, or null where it answers "min or max not valid string range item". */
function parseLexBound(b: Buffer): LexBound | null {
  if (b.length === 0) return null;
  // Redis looks at the second byte as a C string's: "+" or "-" followed by a NUL is still "+" or "-".
  const alone = b.length === 1 || b[1] === 0;
  if (b[0] === 0x2d) return alone ? { at: -1, member: EMPTY, exclusive: true } : null;
  if (b[0] === 0x2b) return alone ? { at: 1, member: EMPTY, exclusive: true } : null;
  if (b[0] !== 0x28 && b[0] !== 0x5b) return null;
  // No member is longer than MAX_ITEM_BYTES, so a longer bound orders against every member as its
  // first MAX_ITEM_BYTES + 1 bytes do; cut there, it stays within LMDB's key limit.
  return { at: 0, member: b.subarray(1, 2 + MAX_ITEM_BYTES), exclusive: b[0] === 0x28 };
}

function lexRange(minArg: Buffer, maxArg: Buffer): [LexBound, LexBound] | Reply {
  const min = parseLexBound(minArg);
  const max = parseLexBound(maxArg);
  return min === null || max === null ? lexNotValid : [min, max];
}

function lexAboveMin(member: Buffer, min: LexBound): boolean {
  if (min.at !== 0) return min.at < 0;
  const c = Buffer.compare(member, min.member);
  return min.exclusive ? c > 0 : c >= 0;
}

function lexBelowMax(member: Buffer, max: LexBound): boolean {
  if (max.at !== 0) return max.at > 0;
  const c = Buffer.compare(member, max.member);
  return max.exclusive ? c < 0 : c <= 0;
}

/** A member's by-member item with its score. */
function memberEntry([sub, v]: [Buffer, Buffer]): Entry {
  return { member: Buffer.from(sub.subarray(1)), score: v.readDoubleBE(0) };
}

/** Members within [min, max] in byte order, from the by-member items: reads only those and a page. */
function* byLex(ctx: ReadAccess, z: Collection, min: LexBound, max: LexBound): Generator<Entry> {
  if (min.at > 0 || max.at < 0) return;
  let from: Buffer = Buffer.from([BY_MEMBER]);
  if (min.at === 0)
    from = min.exclusive ? Buffer.concat([memberSub(min.member), ZERO_BYTE]) : memberSub(min.member);
  for (const item of paged(ctx, z, BY_MEMBER, from, false)) {
    const e = memberEntry(item);
    if (!lexBelowMax(e.member, max)) return;
    yield e;
  }
}

/** Members within [min, max] in descending byte order. */
function* byLexDescending(ctx: ReadAccess, z: Collection, min: LexBound, max: LexBound): Generator<Entry> {
  if (min.at > 0 || max.at < 0) return;
  // Every by-member sub-key is below [BY_SCORE].
  let below: Buffer = Buffer.from([BY_SCORE]);
  if (max.at === 0)
    below = max.exclusive ? memberSub(max.member) : Buffer.concat([memberSub(max.member), ZERO_BYTE]);
  for (const item of paged(ctx, z, BY_MEMBER, below, true)) {
    const e = memberEntry(item);
    if (!lexAboveMin(e.member, min)) return;
    yield e;
  }
}

const EVERY: readonly [LexBound, LexBound] = [
  { at: -1, member: EMPTY, exclusive: true },
  { at: 1, member: EMPTY, exclusive: true },
];

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
  // Redis creates the set in the encoding the command's members call for.
  if (existing === null) {
    z.large = pastCompact(scores.length, scores.length, memberAt);
    z.ranked = true;
  }
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
      // A member that does not fit the compact encoding converts the set, for good.
      if (z.large !== true && (z.count + added + 1 > COMPACT_ENTRIES || member.length > COMPACT_MEMBER_BYTES))
        z.large = true;
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
  let count: bigint | null = null;
  if (args.length > 3) return Errors.syntax;
  if (args.length === 3) {
    count = parseInt64(args[2]!);
    if (count === null || count < 0n) return error("ERR value is out of range, must be positive");
  }
  if (count === 0n) {
    const z = zsetOf(ctx, args[1]!);
    return isReply(z) ? z : array([]);
  }
  const picked = popZset(ctx, args[1]!, count ?? 1n, max);
  if (picked === null) return array([]);
  if (isReply(picked)) return picked;
  const flat = picked.flatMap((e) => [bulk(e.member), score(e.score)]);
  return count === null ? array(flat) : withScores(picked, true);
}

/** A popped member and its score. */
export interface Popped {
  readonly member: Buffer;
  readonly score: number;
}

/**
 * Pops up to `count` (at least 1) of the lowest (or, `max`, highest) members of the sorted set at
 * `key`: null when there is none, WRONGTYPE for another type, an error when more than MAX_POP would be
 * taken (the reply is built in memory, on every replica; a count past the set's size is fine).
 */
export function popZset(ctx: WriteAccess, key: Buffer, count: bigint, max: boolean): Popped[] | null | Reply {
  const z = zsetOf(ctx, key);
  if (z === null || isReply(z)) return z;
  const n = count < BigInt(z.count) ? Number(count) : z.count;
  if (n > MAX_POP) return tooMany;
  const picked = max ? byRankFromTop(ctx, z, 0, n - 1) : byRank(ctx, z, 0, n - 1);
  for (const e of picked) removeMember(ctx, z, e.member, e.score);
  z.count -= picked.length;
  save(ctx, key, z);
  return picked;
}

/** A score as Redis replies it (a double in RESP3, a bulk string in RESP2). */
export const scoreReply = score;

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

export function zremrangebylex(ctx: WriteAccess, args: readonly Buffer[]): Reply {
  const range = lexRange(args[2]!, args[3]!);
  if (isReply(range)) return range;
  const z = zsetOf(ctx, args[1]!);
  if (z === null) return int(0);
  if (isReply(z)) return z;
  return removeEntries(ctx, args[1]!, z, [...byLex(ctx, z, ...range)]);
}

/**
 * ZRANGESTORE dst src …: any form of ZRANGE (without WITHSCORES); the result replaces whatever dst held,
 * its TTL too, and an empty one deletes it. The source is read whole before dst is touched, so dst may
 * be src.
 */
export function zrangestore(ctx: WriteAccess, args: readonly Buffer[]): Reply {
  const q = rangeOptions(args, 5, query("rank", false), true, true);
  if (isReply(q)) return q;
  const entries = rangeEntries(ctx, args[2]!, args[3]!, args[4]!, q);
  if (isReply(entries)) return entries;
  const destination = args[1]!;
  ctx.delete(destination);
  if (entries.length === 0) return int(0);
  const z = storedZset(ctx, entries.length, (i) => entries[i]!.member);
  for (const e of entries) setScore(ctx, z, e.member, undefined, e.score);
  save(ctx, destination, z);
  return int(entries.length);
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

export const zcard = cardinality(ZSET);

export function zcount(ctx: ReadAccess, args: readonly Buffer[]): Reply {
  const min = parseScoreBound(args[2]!);
  const max = parseScoreBound(args[3]!);
  if (min === null || max === null) return rangeNotFloat;
  const z = zsetOf(ctx, args[1]!);
  if (z === null) return int(0);
  if (isReply(z)) return z;
  if (z.ranked === true) {
    if (Number.isNaN(min.value) || Number.isNaN(max.value)) return int(0);
    const from = min.exclusive ? aboveScore(min.value) : atScore(min.value);
    const to = max.exclusive ? atScore(max.value) : aboveScore(max.value);
    if (Buffer.compare(from, to) >= 0) return int(0);
    return int(countBelow(ctx, z.id, to) - countBelow(ctx, z.id, from));
  }
  let n = 0;
  for (const _ of byScore(ctx, z, min, max)) n++;
  return int(n);
}

/** The score sub-key below every member of score `d` (inclusive lower bound for a walk up). */
function atScore(d: number): Buffer {
  const out = Buffer.allocUnsafe(9);
  out[0] = BY_SCORE;
  scoreKey(d, out, 1);
  return out;
}

export function zlexcount(ctx: ReadAccess, args: readonly Buffer[]): Reply {
  const range = lexRange(args[2]!, args[3]!);
  if (isReply(range)) return range;
  const z = zsetOf(ctx, args[1]!);
  if (z === null) return int(0);
  if (isReply(z)) return z;
  let n = 0;
  for (const _ of byLex(ctx, z, ...range)) n++;
  return int(n);
}

function rankGeneric(ctx: ReadAccess, args: readonly Buffer[], reverse: boolean): Reply {
  const z = zsetOf(ctx, args[1]!);
  if (z === null) return NIL;
  if (isReply(z)) return z;
  const s = scoreOf(ctx, z, args[2]!);
  if (s === undefined) return NIL;
  const member = args[2]!;
  if (z.ranked === true) {
    const below = countBelow(ctx, z.id, scoreSub(s, member));
    return int(reverse ? z.count - 1 - below : below);
  }
  // Members before it in score order (a set stored before rank indexes): ZRANK walks up from the lowest
  // score, ZREVRANK down from the highest.
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
  by: "rank" | "score" | "lex";
  rev: boolean;
  withScores: boolean;
  offset: number;
  limit: number;
}

/**
 * The members ZRANGE and its older forms name, in reply order: `from` and `to` as given (for REV and the
 * REV forms, high then low). Errors in Redis's order: the range, then the key's type.
 */
function rangeEntries(
  ctx: ReadAccess,
  key: Buffer,
  from: Buffer,
  to: Buffer,
  q: RangeQuery,
): Entry[] | Reply {
  if (q.by === "rank") {
    const start = parseInt64(from);
    const stop = parseInt64(to);
    if (start === null || stop === null) return Errors.notInteger;
    const z = zsetOf(ctx, key);
    if (z === null) return [];
    if (isReply(z)) return z;
    const range = indexRange(z.count, start, stop);
    if (range === null) return [];
    return q.rev ? byRankFromTop(ctx, z, range[0], range[1]) : byRank(ctx, z, range[0], range[1]);
  }
  const lowArg = q.rev ? to : from;
  const highArg = q.rev ? from : to;
  let walk: (z: Collection) => Iterable<Entry>;
  if (q.by === "score") {
    const min = parseScoreBound(lowArg);
    const max = parseScoreBound(highArg);
    if (min === null || max === null) return rangeNotFloat;
    walk = (z) => (q.rev ? byScoreDescending(ctx, z, min, max) : byScore(ctx, z, min, max));
  } else {
    const range = lexRange(lowArg, highArg);
    if (isReply(range)) return range;
    walk = (z) => (q.rev ? byLexDescending(ctx, z, ...range) : byLex(ctx, z, ...range));
  }
  const z = zsetOf(ctx, key);
  if (z === null) return [];
  if (isReply(z)) return z;
  const entries: Entry[] = [];
  if (q.limit === 0) return entries;
  let skipped = 0;
  for (const e of walk(z)) {
    if (skipped++ < q.offset) continue;
    entries.push(e);
    if (q.limit > 0 && entries.length >= q.limit) break;
  }
  return entries;
}

function rangeGeneric(ctx: ReadAccess, key: Buffer, from: Buffer, to: Buffer, q: RangeQuery): Reply {
  const entries = rangeEntries(ctx, key, from, to, q);
  return isReply(entries) ? entries : withScores(entries, q.withScores);
}

/**
 * Parses WITHSCORES and LIMIT offset count (from index `from`), and for ZRANGE itself (`modern`) BYSCORE,
 * BYLEX and REV, each at most once; ZRANGESTORE (`store`) takes no WITHSCORES. Errors as Redis gives
 * them: a bad LIMIT number at once, then a conflict between options.
 */
function rangeOptions(
  args: readonly Buffer[],
  from: number,
  q: RangeQuery,
  modern: boolean,
  store = false,
): RangeQuery | Reply {
  // Redis refuses LIMIT with a rank range unless its count is -1 (its "no limit").
  let limitedCount: bigint | null = null;
  for (let i = from; i < args.length; i++) {
    const o = upper(args[i]!);
    if (!store && o === "WITHSCORES") q.withScores = true;
    else if (o === "LIMIT" && i + 2 < args.length) {
      const offset = parseInt64(args[i + 1]!);
      const count = parseInt64(args[i + 2]!);
      if (offset === null || count === null) return Errors.notInteger;
      q.offset = offset < 0n ? -1 : Number(offset > 1_000_000_000n ? 1_000_000_000n : offset);
      q.limit = count < 0n ? -1 : Number(count > 1_000_000_000n ? 1_000_000_000n : count);
      limitedCount = count;
      i += 2;
    } else if (modern && q.by === "rank" && o === "BYSCORE") q.by = "score";
    else if (modern && q.by === "rank" && o === "BYLEX") q.by = "lex";
    else if (modern && !q.rev && o === "REV") q.rev = true;
    else return Errors.syntax;
  }
  if (limitedCount !== null && limitedCount !== -1n && q.by === "rank")
    return error("ERR syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX");
  if (q.withScores && q.by === "lex")
    return error("ERR syntax error, WITHSCORES not supported in combination with BYLEX");
  // A negative offset: Redis answers an empty array.
  if (q.offset < 0) q.limit = 0;
  return q;
}

const query = (by: RangeQuery["by"], rev: boolean): RangeQuery => ({
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

/** ZRANGEBYSCORE, ZREVRANGEBYSCORE, ZRANGEBYLEX, ZREVRANGEBYLEX: ZRANGE's forms under names of their own. */
const rangeBy =
  (by: RangeQuery["by"], rev: boolean) =>
  (ctx: ReadAccess, args: readonly Buffer[]): Reply => {
    const q = rangeOptions(args, 4, query(by, rev), false);
    return isReply(q) ? q : rangeGeneric(ctx, args[1]!, args[2]!, args[3]!, q);
  };

export const zrangebyscore = rangeBy("score", false);
export const zrevrangebyscore = rangeBy("score", true);
export const zrangebylex = rangeBy("lex", false);
export const zrevrangebylex = rangeBy("lex", true);

/** The most members one ZRANDMEMBER returns: its reply is built in memory. */
const MAX_RANDOM = 1_000_000;
const LONG_MAX = 9_223_372_036_854_775_807n;

/**
 * The members at `ranks` (in member order, which is as random as any for a uniform draw), in the order of
 * `ranks`: one walk up the by-member items to the highest rank wanted, holding only the wanted ones.
 */
function atRanks(ctx: ReadAccess, z: Collection, ranks: readonly number[]): Entry[] {
  const wanted = [...new Set(ranks)].sort((a, b) => a - b);
  const found = new Map<number, Entry>();
  let rank = 0;
  let next = 0;
  if (wanted.length > 0)
    for (const e of byLex(ctx, z, ...EVERY)) {
      if (rank === wanted[next]) {
        found.set(rank, e);
        if (++next === wanted.length) break;
      }
      rank++;
    }
  return ranks.flatMap((r) => {
    const e = found.get(r);
    return e === undefined ? [] : [e];
  });
}

/** `k` distinct ranks below `n`, uniformly (Floyd's sampling), in random order. */
function distinctRanks(n: number, k: number, pick: (below: number) => number): number[] {
  const chosen = new Set<number>();
  for (let j = n - k; j < n; j++) {
    const t = pick(j + 1);
    chosen.add(chosen.has(t) ? j : t);
  }
  const out = [...chosen];
  for (let i = out.length - 1; i > 0; i--) {
    const j = pick(i + 1);
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

/**
 * ZRANDMEMBER key [count [WITHSCORES]]: a read, so it draws from this node's own randomness. A positive
 * count gives distinct members (at most the set), a negative one exactly |count| with repeats. Redis's
 * checks in its order (the count, the syntax, WITHSCORES's halved range, the key); past them we refuse a
 * reply of more than MAX_RANDOM members, where Redis would build it.
 */
export function zrandmember(ctx: ReadAccess, args: readonly Buffer[]): Reply {
  let count: bigint | null = null;
  let scores = false;
  if (args.length >= 3) {
    count = parseInt64(args[2]!);
    if (count === null) return Errors.notInteger;
    if (count < -LONG_MAX)
      return error(`ERR value is out of range, value must between ${-LONG_MAX} and ${LONG_MAX}`);
    if (args.length > 4 || (args.length === 4 && upper(args[3]!) !== "WITHSCORES")) return Errors.syntax;
    scores = args.length === 4;
    if (scores && (count < -LONG_MAX / 2n || count > LONG_MAX / 2n))
      return error("ERR value is out of range");
  }
  const z = zsetOf(ctx, args[1]!);
  if (z === null) return count === null ? NIL : array([]);
  if (isReply(z)) return z;
  const pick = (below: number) => Math.floor(Math.random() * below);
  if (count === null) {
    const [e] = atRanks(ctx, z, [pick(z.count)]);
    return e === undefined ? NIL : bulk(e.member);
  }
  if (count === 0n) return array([]);
  const n = count < 0n ? -count : count < BigInt(z.count) ? count : BigInt(z.count);
  if (n > BigInt(MAX_RANDOM))
    return error(`ERR value is out of range (at most ${MAX_RANDOM} members at once)`);
  const ranks =
    count < 0n
      ? Array.from({ length: Number(n) }, () => pick(z.count))
      : distinctRanks(z.count, Number(n), pick);
  return withScores(atRanks(ctx, z, ranks), scores);
}

/** ZSCAN: HSCAN's machinery over the by-member items, each member with its score as ZSCORE prints it. */
export function zscan(ctx: ReadAccess, args: readonly Buffer[]): Reply {
  return scanItems(ctx, args, ZSET, true, {
    tag: BY_MEMBER,
    value: (v) => Buffer.from(formatScore(v.readDoubleBE(0)), "latin1"),
  });
}
