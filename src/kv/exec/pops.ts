/**
 * The pops that name several keys (LMPOP, ZMPOP) and the blocking pops (BLPOP, BRPOP, BRPOPLPUSH,
 * BLMOVE, BLMPOP, BZPOPMIN, BZPOPMAX, BZMPOP) as they run in the log: never blocking. Each takes from the
 * first of its keys that holds something, or answers "nothing" (a null), which is exactly what Redis
 * answers for them inside MULTI. Blocking is the front door's work (api/redis/blocked-clients.ts): it
 * proposes the command again when a write fills one of the keys, until it takes something or times out.
 */
import { RecordType } from "../record.js";
import { array, bulk, Errors, error, NIL_ARRAY, type Reply } from "../reply.js";
import { parseInt64, upper } from "./args.js";
import { isReply } from "./collections.js";
import type { WriteAccess } from "./context.js";
import { lmove, popList, rpoplpush } from "./lists.js";
import { parseLongDouble } from "./long-double.js";
import { popZset, scoreReply } from "./zsets.js";

const timeoutNotFloat = error("ERR timeout is not a float or out of range");
const timeoutNegative = error("ERR timeout is negative");
const numkeysError = error("ERR numkeys should be greater than 0");
const countError = error("ERR count should be greater than 0");
const TWO_63 = 1n << 63n;

/**
 * A blocking command's timeout in milliseconds (0: for ever), read as Redis 7.0 reads it: a long double
 * (hex and `inf` included), times 1,000, rounded up to a whole millisecond (so 0.0001 is 1 ms and -0.5 ms
 * is 0, for ever), converted to a 64-bit integer; a value past that range is "negative", as the x87
 * conversion makes it in redis-server.
 */
export function parseTimeoutMs(arg: Buffer): number | Reply {
  const v = parseLongDouble(arg);
  if (v === null) return timeoutNotFloat;
  if (v.kind === "nan") return timeoutNotFloat;
  if (v.kind === "infinity") return timeoutNegative;
  // The product is rounded to the x87's 64-bit significand (nearest, ties to even), then truncated.
  let significand = v.significand * 1000n;
  let exponent = v.exponent;
  const extra = significand.toString(2).length - 64;
  if (extra > 0) {
    const shift = BigInt(extra);
    const rest = significand & ((1n << shift) - 1n);
    const half = 1n << (shift - 1n);
    significand >>= shift;
    if (rest > half || (rest === half && (significand & 1n) === 1n)) significand++;
    exponent += extra;
  }
  // Then ceilingl: up for a positive value, towards zero for a negative one (whose magnitude is floored).
  let ms: bigint;
  if (exponent >= 0) ms = exponent > 64 ? TWO_63 : significand << BigInt(exponent);
  else {
    const shift = BigInt(-exponent);
    ms = significand >> shift;
    if (!v.negative && (significand & ((1n << shift) - 1n)) !== 0n) ms++;
  }
  if (ms >= TWO_63) return timeoutNegative;
  if (v.negative && ms > 0n) return timeoutNegative;
  return Number(ms);
}

/** The types a blocking command can wait for. */
export type Waitable = typeof RecordType.List | typeof RecordType.ZSet;

/** Where the blocking commands keep their keys and timeout, and what they wait for. */
export interface BlockingShape {
  /** The collection type whose arrival at one of the keys can serve the command. */
  readonly waitsFor: Waitable;
  /** The keys it waits on (the command's arguments are valid: it ran once and took nothing). */
  keys(args: readonly Buffer[]): readonly Buffer[];
  /** The timeout's argument. */
  timeout(args: readonly Buffer[]): Buffer;
}

const lastIsTimeout = (waitsFor: Waitable): BlockingShape => ({
  waitsFor,
  keys: (args) => args.slice(1, -1),
  timeout: (args) => args[args.length - 1]!,
});

const numkeysAfterTimeout = (waitsFor: Waitable): BlockingShape => ({
  waitsFor,
  keys: (args) => args.slice(3, 3 + Number(parseInt64(args[2]!))),
  timeout: (args) => args[1]!,
});

export const BLOCKING_SHAPES: ReadonlyMap<string, BlockingShape> = new Map([
  ["blpop", lastIsTimeout(RecordType.List)],
  ["brpop", lastIsTimeout(RecordType.List)],
  ["bzpopmin", lastIsTimeout(RecordType.ZSet)],
  ["bzpopmax", lastIsTimeout(RecordType.ZSet)],
  ["brpoplpush", { waitsFor: RecordType.List, keys: (args) => [args[1]!], timeout: (args) => args[3]! }],
  ["blmove", { waitsFor: RecordType.List, keys: (args) => [args[1]!], timeout: (args) => args[5]! }],
  ["blmpop", numkeysAfterTimeout(RecordType.List)],
  ["bzmpop", numkeysAfterTimeout(RecordType.ZSet)],
]);

/**
 * Takes from the first of `keys` that holds something (`take` answers null for an absent key): the reply
 * `answer` makes of that key and what was taken, an error `take` gave, or a null array when none held any.
 */
function fromFirst<T>(
  keys: readonly Buffer[],
  take: (key: Buffer) => T | null | Reply,
  answer: (key: Buffer, taken: T) => Reply,
): Reply {
  for (const key of keys) {
    const taken = take(key);
    if (taken === null) continue;
    return isReply(taken) ? taken : answer(key, taken);
  }
  return NIL_ARRAY;
}

/** BLPOP/BRPOP key... timeout: [key, element] from the first non-empty list. */
function blockingListPop(ctx: WriteAccess, args: readonly Buffer[], left: boolean): Reply {
  const timeout = parseTimeoutMs(args[args.length - 1]!);
  if (isReply(timeout)) return timeout;
  return fromFirst(
    args.slice(1, -1),
    (key) => popList(ctx, key, 1n, left),
    (key, [element]) => array([bulk(key), bulk(element!)]),
  );
}

export const blpop = (ctx: WriteAccess, args: readonly Buffer[]) => blockingListPop(ctx, args, true);
export const brpop = (ctx: WriteAccess, args: readonly Buffer[]) => blockingListPop(ctx, args, false);

/** BZPOPMIN/BZPOPMAX key... timeout: [key, member, score] from the first non-empty sorted set. */
function blockingZsetPop(ctx: WriteAccess, args: readonly Buffer[], max: boolean): Reply {
  const timeout = parseTimeoutMs(args[args.length - 1]!);
  if (isReply(timeout)) return timeout;
  return fromFirst(
    args.slice(1, -1),
    (key) => popZset(ctx, key, 1n, max),
    (key, [e]) => array([bulk(key), bulk(e!.member), scoreReply(e!.score)]),
  );
}

export const bzpopmin = (ctx: WriteAccess, args: readonly Buffer[]) => blockingZsetPop(ctx, args, false);
export const bzpopmax = (ctx: WriteAccess, args: readonly Buffer[]) => blockingZsetPop(ctx, args, true);

export function brpoplpush(ctx: WriteAccess, args: readonly Buffer[]): Reply {
  const timeout = parseTimeoutMs(args[3]!);
  if (isReply(timeout)) return timeout;
  return rpoplpush(ctx, args.slice(0, 3));
}

export function blmove(ctx: WriteAccess, args: readonly Buffer[]): Reply {
  // As Redis: the ends are read before the timeout.
  const from = upper(args[3]!);
  const to = upper(args[4]!);
  if ((from !== "LEFT" && from !== "RIGHT") || (to !== "LEFT" && to !== "RIGHT")) return Errors.syntax;
  const timeout = parseTimeoutMs(args[5]!);
  if (isReply(timeout)) return timeout;
  return lmove(ctx, args.slice(0, 5));
}

interface MultiPop {
  readonly keys: readonly Buffer[];
  /** LEFT or MIN: true. */
  readonly first: boolean;
  readonly count: bigint;
}

/** `numkeys key... LEFT|RIGHT [COUNT n]` (or MIN|MAX) from `at` (the numkeys argument) on. */
function parseMultiPop(
  args: readonly Buffer[],
  at: number,
  ends: readonly [string, string],
): MultiPop | Reply {
  const numkeys = parseInt64(args[at]!);
  if (numkeys === null || numkeys <= 0n) return numkeysError;
  if (numkeys > BigInt(args.length - at - 2)) return Errors.syntax;
  const n = Number(numkeys);
  const where = upper(args[at + 1 + n]!);
  if (where !== ends[0] && where !== ends[1]) return Errors.syntax;
  let count: bigint | null = null;
  for (let i = at + 2 + n; i < args.length; i++) {
    if (count !== null || upper(args[i]!) !== "COUNT" || i + 1 >= args.length) return Errors.syntax;
    count = parseInt64(args[++i]!);
    if (count === null || count <= 0n) return countError;
  }
  return { keys: args.slice(at + 1, at + 1 + n), first: where === ends[0], count: count ?? 1n };
}

/**
 * LMPOP's arguments from `at` on; BLMPOP's (`at` 2) also the timeout before them, read after them, as
 * Redis reads them.
 */
function multiPopArgs(
  args: readonly Buffer[],
  at: number,
  ends: readonly [string, string],
): MultiPop | Reply {
  const p = parseMultiPop(args, at, ends);
  if (isReply(p) || at === 1) return p;
  const timeout = parseTimeoutMs(args[1]!);
  return isReply(timeout) ? timeout : p;
}

function listMultiPop(ctx: WriteAccess, args: readonly Buffer[], at: number): Reply {
  const p = multiPopArgs(args, at, ["LEFT", "RIGHT"]);
  if (isReply(p)) return p;
  return fromFirst(
    p.keys,
    (key) => popList(ctx, key, p.count, p.first),
    (key, taken) => array([bulk(key), array(taken.map((e) => bulk(e)))]),
  );
}

function zsetMultiPop(ctx: WriteAccess, args: readonly Buffer[], at: number): Reply {
  const p = multiPopArgs(args, at, ["MIN", "MAX"]);
  if (isReply(p)) return p;
  return fromFirst(
    p.keys,
    (key) => popZset(ctx, key, p.count, !p.first),
    (key, taken) => array([bulk(key), array(taken.map((e) => array([bulk(e.member), scoreReply(e.score)])))]),
  );
}

export const lmpop = (ctx: WriteAccess, args: readonly Buffer[]) => listMultiPop(ctx, args, 1);
export const zmpop = (ctx: WriteAccess, args: readonly Buffer[]) => zsetMultiPop(ctx, args, 1);

export const blmpop = (ctx: WriteAccess, args: readonly Buffer[]) => listMultiPop(ctx, args, 2);
export const bzmpop = (ctx: WriteAccess, args: readonly Buffer[]) => zsetMultiPop(ctx, args, 2);
