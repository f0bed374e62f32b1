/**
 * The sorted-set algebra, with Redis's replies and errors: ZUNION, ZINTER, ZDIFF (WITHSCORES), their STORE
 * forms, and ZINTERCARD (LIMIT). Inputs may be sorted sets or plain sets (each member scored 1); WEIGHTS
 * multiply an input's scores and AGGREGATE SUM|MIN|MAX combines a member's scores across inputs.
 *
 * The inputs are read whole (O(N), as in Redis). The result is computed exactly as Redis computes it, so
 * every replica stores the doubles redis-server would: inputs taken smallest first (a stable sort by
 * cardinality, as glibc's qsort sorts Redis's inputs), each member's weighted score NaN → 0 where Redis
 * does so, and the sum built in that input order (floating-point addition is not associative, and
 * inf + -inf's reset to 0 depends on when it happens). Each input is read in its own item order (score
 * then member bytes, or member bytes for a set), never a hash map's, and results are ordered by score
 * then member bytes, as a sorted set is.
 */
import { RecordType } from "../record.js";
import { array, bulk, Errors, error, int, type Reply } from "../reply.js";
import { parseInt64, upper } from "./args.js";
import { type Collection, collectionOf, isReply } from "./collections.js";
import type { ReadAccess, WriteAccess } from "./context.js";
import { formatScore, parseScore } from "./scores.js";
import { ascending, saveZset, scoreOf, setScore, storedZset } from "./zsets.js";

/**
 * The most members one command may combine: the members of every input for a union, of the smallest
 * for an intersection, of the first for a difference (what bounds the result built in memory). A STORE
 * form runs in apply on every replica, and the read forms build their whole reply on the serving node,
 * so an unbounded input would hold every node's memory and event loop at once; refused, not cut short.
 */
export const MAX_ALGEBRA_MEMBERS = 1_000_000;
const tooMany = error(
  `ERR value is out of range (at most ${MAX_ALGEBRA_MEMBERS} input members at once for this operation)`,
);
const weightNotFloat = error("ERR weight value is not a float");
const limitNegative = error("ERR LIMIT can't be negative");
/** Items of a plain set read at a time (ZINTERCARD walks the smallest input without holding it). */
const PAGE = 256;
type Op = "union" | "inter" | "diff";
type Aggregate = "sum" | "min" | "max";

interface Entry {
  readonly member: Buffer;
  readonly score: number;
}

/** One input: a sorted set, a plain set (scores 1), or an absent key (empty). */
interface Input {
  readonly type: typeof RecordType.ZSet | typeof RecordType.Set | null;
  readonly c: Collection | null;
  weight: number;
}

interface Query {
  readonly op: Op;
  readonly inputs: Input[];
  aggregate: Aggregate;
  withScores: boolean;
  /** ZINTERCARD's LIMIT; 0: none. */
  limit: number;
}

const countOf = (i: Input) => i.c?.count ?? 0;

/** The input at `key`: WRONGTYPE for anything but a sorted set or a set. */
function inputOf(ctx: ReadAccess, key: Buffer): Input | Reply {
  const z = collectionOf(ctx, key, RecordType.ZSet);
  if (!isReply(z)) return { type: z === null ? null : RecordType.ZSet, c: z, weight: 1 };
  const s = collectionOf(ctx, key, RecordType.Set);
  if (isReply(s)) return s;
  return { type: RecordType.Set, c: s, weight: 1 };
}

/**
 * Reads `args` from the numkeys argument at `at` on, in Redis's order of checks: numkeys, the keys'
 * types, then the options (WEIGHTS and AGGREGATE but for ZDIFF, WITHSCORES but for the STORE forms and
 * ZINTERCARD, LIMIT for ZINTERCARD only; a later option overrides an earlier one).
 */
function parse(
  ctx: ReadAccess,
  args: readonly Buffer[],
  at: number,
  op: Op,
  form: "read" | "store" | "card",
): Query | Reply {
  const n = parseInt64(args[at]!);
  if (n === null) return Errors.notInteger;
  if (n < 1n)
    return error(
      `ERR at least 1 input key is needed for '${args[0]!.toString("latin1").toLowerCase()}' command`,
    );
  if (n > BigInt(args.length - at - 1)) return Errors.syntax;
  const setnum = Number(n);
  const q: Query = { op, inputs: [], aggregate: "sum", withScores: false, limit: 0 };
  for (let i = 0; i < setnum; i++) {
    const input = inputOf(ctx, args[at + 1 + i]!);
    if (isReply(input)) return input;
    q.inputs.push(input);
  }
  const combines = op !== "diff" && form !== "card";
  let j = at + 1 + setnum;
  while (j < args.length) {
    const remaining = args.length - j;
    const o = upper(args[j]!);
    if (combines && remaining >= setnum + 1 && o === "WEIGHTS") {
      for (let i = 0; i < setnum; i++) {
        const w = parseScore(args[j + 1 + i]!);
        if (w === null) return weightNotFloat;
        q.inputs[i]!.weight = w;
      }
      j += 1 + setnum;
    } else if (combines && remaining >= 2 && o === "AGGREGATE") {
      const a = upper(args[j + 1]!);
      if (a === "SUM") q.aggregate = "sum";
      else if (a === "MIN") q.aggregate = "min";
      else if (a === "MAX") q.aggregate = "max";
      else return Errors.syntax;
      j += 2;
    } else if (form === "read" && o === "WITHSCORES") {
      q.withScores = true;
      j += 1;
    } else if (form === "card" && remaining >= 2 && o === "LIMIT") {
      const l = parseInt64(args[j + 1]!);
      if (l === null || l < 0n) return limitNegative;
      q.limit = Number(l);
      j += 2;
    } else return Errors.syntax;
  }
  return q;
}

/** A plain set's members (score 1), a page at a time, in member byte order. */
function* setMembers(ctx: ReadAccess, c: Collection): Generator<Entry> {
  let from: Buffer | null = null;
  for (;;) {
    const page = ctx.items(c.id, from, PAGE);
    for (const [m] of page) yield { member: Buffer.from(m), score: 1 };
    if (page.length < PAGE) return;
    from = Buffer.concat([page[page.length - 1]![0], Buffer.from([0])]);
  }
}

/** An input's members with their (unweighted) scores, in its own order. */
function entriesOf(ctx: ReadAccess, input: Input): Iterable<Entry> {
  if (input.c === null) return [];
  return input.type === RecordType.Set ? setMembers(ctx, input.c) : ascending(ctx, input.c);
}

/** The member's (unweighted) score in the input, or undefined when it is not there. */
function find(ctx: ReadAccess, input: Input, member: Buffer): number | undefined {
  if (input.c === null) return undefined;
  if (input.type === RecordType.Set) return ctx.item(input.c.id, member) === undefined ? undefined : 1;
  return scoreOf(ctx, input.c, member);
}

/** `target` combined with `value` as Redis combines them: a sum that is NaN (inf + -inf) is 0. */
function combine(target: number, value: number, aggregate: Aggregate): number {
  if (aggregate === "sum") {
    const s = target + value;
    return Number.isNaN(s) ? 0 : s;
  }
  // As Redis compares: a NaN value (inf × 0) never wins; on a tie (0 and -0) the earlier one stays.
  // biome-ignore lint/complexity/useMathMinMax: Math.min takes NaN and prefers -0, which Redis does not
  if (aggregate === "min") return value < target ? value : target;
  // biome-ignore lint/complexity/useMathMinMax: Math.max takes NaN and prefers 0, which Redis does not
  return value > target ? value : target;
}

/** A weighted score as Redis takes it from the input it iterates: inf × 0 is NaN, counted as 0. */
function weighted(weight: number, score: number): number {
  const s = weight * score;
  return Number.isNaN(s) ? 0 : s;
}

/** The inputs smallest first, equal sizes in the order given (Redis's qsort, glibc's stable merge sort). */
const bySize = (inputs: readonly Input[]) => [...inputs].sort((a, b) => countOf(a) - countOf(b));

function bySortedSetOrder(a: Entry, b: Entry): number {
  if (a.score < b.score) return -1;
  if (a.score > b.score) return 1;
  return Buffer.compare(a.member, b.member);
}

/** How many members the operation would combine, to refuse more than MAX_ALGEBRA_MEMBERS. */
function workOf(q: Query): number {
  if (q.op === "union") return q.inputs.reduce((n, i) => n + countOf(i), 0);
  if (q.op === "inter") return q.inputs.reduce((n, i) => Math.min(n, countOf(i)), Number.POSITIVE_INFINITY);
  return countOf(q.inputs[0]!);
}

function union(ctx: ReadAccess, q: Query): Entry[] {
  // Keyed by the member's bytes; each member's scores are combined in the order the inputs are taken.
  const acc = new Map<string, { member: Buffer; score: number }>();
  for (const input of bySize(q.inputs))
    for (const e of entriesOf(ctx, input)) {
      const s = weighted(input.weight, e.score);
      const k = e.member.toString("latin1");
      const have = acc.get(k);
      if (have === undefined) acc.set(k, { member: e.member, score: s });
      else have.score = combine(have.score, s, q.aggregate);
    }
  return [...acc.values()].sort(bySortedSetOrder);
}

/** Members of every input, walked from the smallest, each with its scores combined in that order. */
function intersection(ctx: ReadAccess, q: Query): Entry[] {
  const [first, ...rest] = bySize(q.inputs);
  const out: Entry[] = [];
  if (first === undefined || countOf(first) === 0) return out;
  next: for (const e of entriesOf(ctx, first)) {
    let s = weighted(first.weight, e.score);
    for (const other of rest) {
      const found = find(ctx, other, e.member);
      if (found === undefined) continue next;
      // Not made 0 when NaN here, as in Redis: a NaN sum becomes 0, a NaN min or max is ignored.
      s = combine(s, found * other.weight, q.aggregate);
    }
    out.push({ member: e.member, score: s });
  }
  return out;
}

/** Members of the first input in none of the others, with the first's scores (unweighted), in its order. */
function difference(ctx: ReadAccess, q: Query): Entry[] {
  const [first, ...rest] = q.inputs;
  const out: Entry[] = [];
  for (const e of entriesOf(ctx, first!))
    if (rest.every((other) => find(ctx, other, e.member) === undefined)) out.push(e);
  return out;
}

function compute(ctx: ReadAccess, q: Query): Entry[] {
  if (q.op === "union") return union(ctx, q);
  if (q.op === "inter") return intersection(ctx, q).sort(bySortedSetOrder);
  // The first input is walked in sorted-set order already (a plain set's members all score 1).
  return difference(ctx, q);
}

function reply(entries: readonly Entry[], withScores: boolean): Reply {
  if (!withScores) return array(entries.map((e) => bulk(e.member)));
  return {
    k: "scored",
    v: entries.map((e) => [bulk(e.member), { k: "double", v: formatScore(e.score) }] as const),
  };
}

/** ZUNION, ZINTER, ZDIFF: numkeys at 1. */
function algebra(op: Op): (ctx: ReadAccess, args: readonly Buffer[]) => Reply {
  return (ctx, args) => {
    const q = parse(ctx, args, 1, op, "read");
    if (isReply(q)) return q;
    if (workOf(q) > MAX_ALGEBRA_MEMBERS) return tooMany;
    return reply(compute(ctx, q), q.withScores);
  };
}

/**
 * ZUNIONSTORE, ZINTERSTORE, ZDIFFSTORE: the result replaces whatever the destination held (of any type;
 * its old items go with it); an empty result deletes it and answers 0. Every input is read before the
 * destination is touched, so the destination may be one of them.
 */
function algebraStore(op: Op): (ctx: WriteAccess, args: readonly Buffer[]) => Reply {
  return (ctx, args) => {
    const q = parse(ctx, args, 2, op, "store");
    if (isReply(q)) return q;
    if (workOf(q) > MAX_ALGEBRA_MEMBERS) return tooMany;
    const result = compute(ctx, q);
    const destination = args[1]!;
    ctx.delete(destination);
    if (result.length === 0) return int(0);
    // In the encoding Redis gives the result: a compact one stores a -0 as 0 (see zsets.ts).
    const z = storedZset(ctx, result.length, (i) => result[i]!.member);
    for (const e of result) setScore(ctx, z, e.member, undefined, e.score);
    z.count = result.length;
    saveZset(ctx, destination, z);
    return int(result.length);
  };
}

export const zunion = algebra("union");
export const zinter = algebra("inter");
export const zdiff = algebra("diff");
export const zunionstore = algebraStore("union");
export const zinterstore = algebraStore("inter");
export const zdiffstore = algebraStore("diff");

/**
 * ZINTERCARD numkeys key… [LIMIT n]: the intersection's size, at most n (0: no limit). It builds nothing
 * but a count, so it is not bounded: it walks the smallest input a page at a time, as Redis walks it.
 */
export function zintercard(ctx: ReadAccess, args: readonly Buffer[]): Reply {
  const q = parse(ctx, args, 1, "inter", "card");
  if (isReply(q)) return q;
  const [first, ...rest] = bySize(q.inputs);
  if (first === undefined || countOf(first) === 0) return int(0);
  let n = 0;
  next: for (const e of entriesOf(ctx, first)) {
    for (const other of rest) if (find(ctx, other, e.member) === undefined) continue next;
    n++;
    if (q.limit > 0 && n >= q.limit) break;
  }
  return int(n);
}
