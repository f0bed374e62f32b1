/**
 * Differential: random sequences of string and key commands (INCRBYFLOAT included) run against the key-value state machine
 * and against a real redis-server give byte-identical RESP2 replies. (Debian's redis-server; CI installs
 * it.) Times that depend on each server's own clock reading are compared within a second.
 *
 * A second test drives two connections to each side, through raftkv's real front door (over the state
 * machine, without raft): one WATCHes, writes, runs MULTI/EXEC/DISCARD/UNWATCH, the other writes in
 * between; every reply, EXEC's included, must be byte-identical.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { after, before, describe, it } from "node:test";
import fc from "fast-check";
import { tookNothing } from "../../src/api/redis/blocked-clients.js";
import { ReplyWriter } from "../../src/api/redis/resp/reply-writer.js";
import { RedisServer } from "../../src/api/redis/server.js";
import { writeReply } from "../../src/api/redis/write-reply.js";
import { BLOCKING_SHAPES } from "../../src/kv/exec/pops.js";
import { lookupCommand } from "../../src/kv/exec/table.js";
import { KvStateMachine, writeEntry } from "../../src/kv/machine.js";
import { NIL_ARRAY } from "../../src/kv/reply.js";
import { KvStore } from "../../src/kv/store.js";
import { EntryType } from "../../src/raft/types.js";
import { MachineBackend } from "../helpers/machine-backend.js";
import { connectRaw, type RawRedis, replyEnd, startRedisServer } from "../helpers/redis-server.js";

const SEED = Number(process.env.RAFTKV_PROPERTY_SEED ?? 424242);
const RUNS = Number(process.env.RAFTKV_DIFF_RUNS ?? 80);

type Arg = string | Buffer;

const FAR = 4_102_444_800; // 2100-01-01, in seconds
const key = fc.constantFrom<Arg>("k0", "k1", "k2", Buffer.from([0xff, 0x00, 0x0d, 0x0a]));
const intText = fc.oneof(
  fc.integer({ min: -1000, max: 1000 }).map(String),
  fc.constantFrom(
    "9223372036854775807",
    "-9223372036854775808",
    "9223372036854775808",
    "-9223372036854775809",
    "abc",
    "1.5",
    "",
    "-0",
    "+5",
    "007",
    " 1",
  ),
);
/**
 * INCRBYFLOAT increments and stored numbers: small decimals, exponents, integers, values near 1e17
 * (where %.17Lf shows the binary rounding), hexadecimal, infinities, the extremes, and refusals.
 */
const floatText = fc.oneof(
  fc
    .tuple(fc.integer({ min: -999, max: 999 }), fc.stringMatching(/^[0-9]{1,6}$/))
    .map(([i, f]) => `${i}.${f}`),
  fc
    .tuple(
      fc.integer({ min: -99, max: 99 }),
      fc.constantFrom("e", "E", ".0e", "e+", "e-0"),
      fc.integer({ min: -25, max: 25 }),
    )
    .map(([m, e, x]) => `${m}${e}${x}`),
  fc.double({ noNaN: true, noDefaultInfinity: true }).map(String),
  fc.integer({ min: -100_000, max: 100_000 }).map(String),
  fc
    .tuple(fc.bigInt(-1000n, 1000n), fc.stringMatching(/^[0-9]{0,4}$/))
    .map(([d, f]) => `${10n ** 17n + d}${f === "" ? "" : `.${f}`}`),
  fc.constantFrom("0.1", "-0", "-0.0", "+1.5", ".5", "5.", "1e17", "-1e-18", "0x1p3", "0x1p-18"),
  // Overflow, underflow and infinities (a sum past the largest value is refused).
  fc.constantFrom(
    "inf",
    "-Infinity",
    "1.18973149535723176502e4932",
    "-1.18973149535723176502e4932",
    "1e4932",
    "nan",
    "1e5000",
    "1e-5000",
    "3.6e-4951",
  ),
  fc.constantFrom("", " 1", "1 ", "1e", "1.2.3", "abc", "0x", "--1", "1,5"),
);
const value = fc.oneof(
  intText,
  floatText,
  fc.string({ maxLength: 12 }),
  fc.uint8Array({ maxLength: 12 }).map((a) => Buffer.from(a)),
);
const ttlSeconds = fc.oneof(
  fc.integer({ min: 1000, max: 100_000 }).map(String),
  fc.constantFrom("0", "-5", "abc", "9223372036854775807", "92233720368547758"),
);
const absSeconds = fc.constantFrom(String(FAR), String(FAR + 77), "1000", "0", "-1");
const expiry = fc.oneof(
  fc.tuple(fc.constant("EX"), ttlSeconds),
  fc.tuple(
    fc.constant("PX"),
    ttlSeconds.map((s) => (/^\d+$/.test(s) ? `${s}000` : s)),
  ),
  fc.tuple(fc.constant("EXAT"), absSeconds),
  fc.tuple(
    fc.constant("PXAT"),
    absSeconds.map((s) => (/^\d+$/.test(s) && s !== "0" ? `${s}123` : s)),
  ),
);
/** SET's options: mostly well-formed, sometimes clashing or junk, in any order. */
const setOptions = fc
  .record({
    cond: fc.constantFrom([], ["NX"], ["XX"], ["NX", "XX"]),
    get: fc.boolean(),
    exp: fc.oneof(
      fc.constant<string[]>([]),
      expiry.map((e) => [...e]),
      fc.constant(["KEEPTTL"]),
    ),
    extra: fc.oneof(
      { weight: 6, arbitrary: fc.constant<string[]>([]) },
      { weight: 1, arbitrary: fc.constantFrom(["KEEPTTL"], ["EX", "100"], ["BOGUS"], ["EX"]) },
    ),
    flip: fc.boolean(),
  })
  .map((o) => {
    const head = [...o.cond, ...(o.get ? ["GET"] : [])];
    return o.flip ? [...o.exp, ...head, ...o.extra] : [...head, ...o.exp, ...o.extra];
  });
const expireOptions = fc.constantFrom(
  [],
  ["NX"],
  ["XX"],
  ["GT"],
  ["LT"],
  ["NX", "XX"],
  ["GT", "LT"],
  ["XX", "GT"],
  ["BAD"],
);

/** Hash fields: few, so that commands meet each other's fields; one binary. */
const field = fc.constantFrom<Arg>("f0", "f1", "f2", Buffer.from([0x00, 0xff]));
const hashCommand: fc.Arbitrary<Arg[]> = fc.oneof(
  fc
    .array(fc.tuple(field, value), { minLength: 1, maxLength: 3 })
    .chain((fvs) => fc.tuple(fc.constantFrom("HSET", "HMSET"), key).map(([c, k]) => [c, k, ...fvs.flat()])),
  fc.tuple(fc.constantFrom("HSET", "HMSET"), key, field).map(([c, k, f]) => [c, k, f]),
  fc.tuple(key, field, value).map(([k, f, v]) => ["HSETNX", k, f, v]),
  fc.tuple(fc.constantFrom("HGET", "HEXISTS", "HSTRLEN"), key, field).map(([c, k, f]) => [c, k, f]),
  fc.tuple(key, fc.array(field, { minLength: 1, maxLength: 3 })).map(([k, fs]) => ["HMGET", k, ...fs]),
  fc.tuple(fc.constantFrom("HGETALL", "HKEYS", "HVALS", "HLEN"), key).map(([c, k]) => [c, k]),
  fc.tuple(key, fc.array(field, { minLength: 1, maxLength: 3 })).map(([k, fs]) => ["HDEL", k, ...fs]),
  fc.tuple(key, field, intText).map(([k, f, n]) => ["HINCRBY", k, f, n]),
  fc.tuple(key, field, floatText).map(([k, f, n]) => ["HINCRBYFLOAT", k, f, n]),
  // HRANDFIELD's deterministic forms: every field (hashes here hold at most 4), none, and errors.
  fc
    .tuple(
      key,
      fc.constantFrom<string[]>(["10"], ["10", "WITHVALUES"], ["0"], ["x"], ["5", "BOGUS"], ["1", "2", "3"]),
    )
    .map(([k, a]) => ["HRANDFIELD", k, ...a]),
);

/** Set members: few, so that sets overlap; one binary. */
const member = fc.constantFrom<Arg>("m0", "m1", "m2", Buffer.from([0x00, 0x0d, 0x0a]));
const members = fc.array(member, { minLength: 1, maxLength: 3 });
const keys = fc.array(key, { minLength: 1, maxLength: 3 });
const setCommand: fc.Arbitrary<Arg[]> = fc.oneof(
  { weight: 4, arbitrary: fc.tuple(key, members).map(([k, ms]) => ["SADD", k, ...ms]) },
  fc.tuple(key, members).map(([k, ms]) => ["SREM", k, ...ms]),
  fc.tuple(fc.constantFrom("SMEMBERS", "SCARD"), key).map(([c, k]) => [c, k]),
  fc.tuple(key, member).map(([k, m]) => ["SISMEMBER", k, m]),
  fc.tuple(key, members).map(([k, ms]) => ["SMISMEMBER", k, ...ms]),
  fc.tuple(key, key, member).map(([a, b, m]) => ["SMOVE", a, b, m]),
  fc.tuple(fc.constantFrom("SINTER", "SUNION", "SDIFF"), keys).map(([c, ks]) => [c, ...ks]),
  fc
    .tuple(fc.constantFrom("SINTERSTORE", "SUNIONSTORE", "SDIFFSTORE"), key, keys)
    .map(([c, d, ks]) => [c, d, ...ks]),
  fc
    .tuple(keys, fc.constantFrom<string[]>([], ["LIMIT", "1"], ["LIMIT", "0"], ["LIMIT", "-1"], ["LIMIT"]))
    .map(([ks, l]) => ["SINTERCARD", String(ks.length), ...ks, ...l]),
  fc.constantFrom<Arg[]>(["SINTERCARD", "0", "k0"], ["SINTERCARD", "3", "k0"], ["SINTERCARD", "x", "k0"]),
  // The deterministic forms of the random ones: all members (sets here hold at most 4), none, errors.
  fc
    .tuple(fc.constantFrom("SPOP", "SRANDMEMBER"), key, fc.constantFrom("10", "0", "-1", "x", "1 2"))
    .map(([c, k, n]) => (n === "1 2" ? [c, k, "1", "2"] : [c, k, n])),
  fc.tuple(fc.constantFrom("SSCAN", "HSCAN"), key).map(([c, k]) => [c, k, "0"]),
  fc.tuple(fc.constantFrom("SSCAN", "HSCAN"), key).map(([c, k]) => [c, k, "0", "MATCH", "*1"]),
  fc.tuple(fc.constantFrom("SSCAN", "HSCAN"), key).map(([c, k]) => [c, k, "x"]),
);

/** Scores: ordinary, equal, infinite, signed zeros, exponents, hexadecimal, and refusals. */
const scoreText = fc.oneof(
  fc.integer({ min: -5, max: 5 }).map(String),
  fc.double({ noNaN: true, noDefaultInfinity: true, min: -1e6, max: 1e6 }).map(String),
  fc.constantFrom(
    "0.1",
    "-2.5",
    "inf",
    "-inf",
    "+inf",
    "1e3",
    "-0",
    "0x10",
    "1e400",
    "1e-400",
    "nan",
    "abc",
    "",
  ),
);
const scoreBound = fc.oneof(
  scoreText,
  scoreText.map((t) => `(${t}`),
  fc.constantFrom("-inf", "+inf", "(-inf", "[1", "(", "((1"),
);
const rankIndex = fc.oneof(
  fc.integer({ min: -6, max: 6 }).map(String),
  fc.constantFrom("x", "9223372036854775807"),
);
const zaddFlags = fc.subarray(["NX", "XX", "GT", "LT", "CH", "INCR"], { maxLength: 3 });
const rangeTail = fc.tuple(
  fc.boolean(),
  fc.option(fc.tuple(fc.integer({ min: -1, max: 3 }), fc.integer({ min: -1, max: 3 }))),
);
const zsetCommand: fc.Arbitrary<Arg[]> = fc.oneof(
  {
    weight: 4,
    arbitrary: fc
      .tuple(key, zaddFlags, fc.array(fc.tuple(scoreText, member), { minLength: 1, maxLength: 3 }))
      .map(([k, f, sms]) => ["ZADD", k, ...f, ...sms.flat()]),
  },
  fc.tuple(key, scoreText, member).map(([k, sc, m]) => ["ZINCRBY", k, sc, m]),
  fc.tuple(key, members).map(([k, ms]) => ["ZREM", k, ...ms]),
  fc.tuple(key, member).map(([k, m]) => ["ZSCORE", k, m]),
  fc.tuple(key, members).map(([k, ms]) => ["ZMSCORE", k, ...ms]),
  fc.tuple(key).map(([k]) => ["ZCARD", k]),
  fc.tuple(key, scoreBound, scoreBound).map(([k, a, b]) => ["ZCOUNT", k, a, b]),
  fc.tuple(fc.constantFrom("ZRANK", "ZREVRANK"), key, member).map(([c, k, m]) => [c, k, m]),
  fc
    .tuple(fc.constantFrom("ZRANGE", "ZREVRANGE"), key, rankIndex, rankIndex, fc.boolean())
    .map(([c, k, a, b, w]) => [c, k, a, b, ...(w ? ["WITHSCORES"] : [])]),
  fc
    .tuple(fc.constantFrom("ZRANGEBYSCORE", "ZREVRANGEBYSCORE"), key, scoreBound, scoreBound, rangeTail)
    .map(([c, k, a, b, [w, l]]) => [
      c,
      k,
      a,
      b,
      ...(w ? ["WITHSCORES"] : []),
      ...(l ? ["LIMIT", String(l[0]), String(l[1])] : []),
    ]),
  fc
    .tuple(key, scoreBound, scoreBound, fc.boolean(), rangeTail)
    .map(([k, a, b, rev, [w, l]]) => [
      "ZRANGE",
      k,
      a,
      b,
      "BYSCORE",
      ...(rev ? ["REV"] : []),
      ...(w ? ["WITHSCORES"] : []),
      ...(l ? ["LIMIT", String(l[0]), String(l[1])] : []),
    ]),
  fc.constantFrom<Arg[]>(
    ["ZRANGE", "k0", "0", "-1", "LIMIT", "0", "1"],
    ["ZRANGE", "k0", "0", "-1", "BOGUS"],
  ),
  fc
    .tuple(
      fc.constantFrom("ZPOPMIN", "ZPOPMAX"),
      key,
      fc.constantFrom<string[]>([], ["2"], ["0"], ["-1"], ["10"]),
    )
    .map(([c, k, n]) => [c, k, ...n]),
  fc.tuple(key, rankIndex, rankIndex).map(([k, a, b]) => ["ZREMRANGEBYRANK", k, a, b]),
  fc.tuple(key, scoreBound, scoreBound).map(([k, a, b]) => ["ZREMRANGEBYSCORE", k, a, b]),
);

/**
 * Lex ranges, ZRANGESTORE, ZRANDMEMBER and ZSCAN. Redis defines lex ranges only for sets whose members
 * share one score, so they run on keys of their own (L0, L1) that only ever get score 0 (Ls is a string
 * at times, L2 absent); ZRANGESTORE's other forms, ZRANDMEMBER and ZSCAN also run on the other keys.
 */
const lexKey = fc.constantFrom<Arg>("L0", "L1", "L0", "L1", "Ls", "L2");
const lexMember = fc.constantFrom<Arg>(
  "a",
  "b",
  "ba",
  "c",
  "",
  "m0",
  Buffer.from([0xff]),
  Buffer.from([0x00]),
);
const lexBound = fc.oneof(
  { weight: 3, arbitrary: lexMember.map((m) => Buffer.concat([Buffer.from("["), Buffer.from(m)])) },
  { weight: 3, arbitrary: lexMember.map((m) => Buffer.concat([Buffer.from("("), Buffer.from(m)])) },
  { weight: 2, arbitrary: fc.constantFrom<Arg>("-", "+", Buffer.from("+\0x"), "[", "(") },
  { weight: 1, arbitrary: fc.constantFrom<Arg>("a", "", "+a", "--", "-1", "5") },
);
const lexLimit = fc.oneof(
  { weight: 2, arbitrary: fc.constant<string[]>([]) },
  fc
    .tuple(fc.integer({ min: -2, max: 3 }), fc.integer({ min: -3, max: 4 }))
    .map(([o, c]) => ["LIMIT", String(o), String(c)]),
);
const randomCount = fc.constantFrom<string[]>(
  [],
  ["10"],
  ["10", "WITHSCORES"],
  ["0"],
  ["0", "withscores"],
  ["-3"],
  ["-3", "WITHSCORES"],
  ["2", "WITHSCORES"],
  ["4611686018427387903"],
  ["x"],
  ["1", "BOGUS"],
  ["1", "WITHSCORES", "x"],
  ["-9223372036854775808"],
  ["4611686018427387904", "WITHSCORES"],
);
const zsetMoreCommand: fc.Arbitrary<Arg[]> = fc.oneof(
  {
    weight: 8,
    arbitrary: fc
      .tuple(
        fc.constantFrom("L0", "L1"),
        fc.subarray(["NX", "XX", "CH"]),
        fc.array(lexMember, { minLength: 1, maxLength: 4 }),
      )
      .map(([k, f, ms]) => ["ZADD", k, ...f, ...ms.flatMap((m) => ["0", m])]),
  },
  fc.constantFrom<Arg[]>(["SET", "Ls", "v"]),
  fc.tuple(lexKey, fc.array(lexMember, { minLength: 1, maxLength: 2 })).map(([k, ms]) => ["ZREM", k, ...ms]),
  fc
    .tuple(fc.constantFrom("ZLEXCOUNT", "ZREMRANGEBYLEX"), lexKey, lexBound, lexBound)
    .map(([c, k, a, b]) => [c, k, a, b]),
  fc
    .tuple(fc.constantFrom("ZRANGEBYLEX", "ZREVRANGEBYLEX"), lexKey, lexBound, lexBound, lexLimit, fc.nat(9))
    .map(([c, k, a, b, l, w]) => [c, k, a, b, ...l, ...(w === 0 ? ["WITHSCORES"] : [])]),
  fc
    .tuple(lexKey, lexBound, lexBound, fc.boolean(), lexLimit, fc.nat(9))
    .map(([k, a, b, rev, l, w]) => [
      "ZRANGE",
      k,
      a,
      b,
      "BYLEX",
      ...(rev ? ["REV"] : []),
      ...l,
      ...(w === 0 ? ["WITHSCORES"] : []),
    ]),
  fc
    .tuple(fc.oneof(lexKey, key), lexKey, lexBound, lexBound, fc.boolean(), lexLimit)
    .map(([d, k, a, b, rev, l]) => ["ZRANGESTORE", d, k, a, b, "BYLEX", ...(rev ? ["REV"] : []), ...l]),
  fc
    .tuple(
      key,
      key,
      rankIndex,
      rankIndex,
      fc.boolean(),
      fc.constantFrom<string[]>(
        [],
        [],
        ["LIMIT", "0", "-1"],
        ["LIMIT", "0", "1"],
        ["WITHSCORES"],
        ["REV", "REV"],
      ),
    )
    .map(([d, k, a, b, rev, o]) => ["ZRANGESTORE", d, k, a, b, ...(rev ? ["REV"] : []), ...o]),
  fc
    .tuple(key, key, scoreBound, scoreBound, fc.boolean(), rangeTail)
    .map(([d, k, a, b, rev, [, l]]) => [
      "ZRANGESTORE",
      d,
      k,
      a,
      b,
      "BYSCORE",
      ...(rev ? ["REV"] : []),
      ...(l ? ["LIMIT", String(l[0]), String(l[1])] : []),
    ]),
  fc.constantFrom<Arg[]>(
    ["ZRANGESTORE", "k0", "k0", "0", "-1"],
    ["ZRANGESTORE", "k1", "k0", "1", "-1", "BYLEX"],
    ["ZRANGE", "k0", "0", "1", "BYSCORE", "BYLEX"],
  ),
  {
    weight: 2,
    arbitrary: fc.tuple(fc.oneof(key, lexKey), randomCount).map(([k, c]) => ["ZRANDMEMBER", k, ...c]),
  },
  fc
    .tuple(
      fc.oneof(key, lexKey),
      fc.constantFrom<string[]>(
        ["0"],
        ["0", "MATCH", "*1"],
        ["0", "COUNT", "100", "MATCH", "m*"],
        ["x"],
        ["0", "COUNT", "0"],
        ["0", "BOGUS"],
      ),
    )
    .map(([k, a]) => ["ZSCAN", k, ...a]),
);

/**
 * The sorted-set algebra over the keys above (sorted sets, sets, strings, absent): weights odd and
 * refused, AGGREGATE before or after WEIGHTS, and refusals of numkeys, weight counts and options.
 */
const weightText = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom("1", "2", "-1", "0", "-0", "0.5", "-2.5", "inf", "-inf", "+inf") },
  fc.constantFrom("1e300", "-1e-300", "0x10", "3e-5", "nan", "x", "1e400", "", " 1"),
);
const algebraOptions = (combines: boolean, n: number) =>
  fc
    .record({
      weights: fc.option(fc.array(weightText, { minLength: n, maxLength: n })),
      aggregate: fc.constantFrom<string[]>(
        [],
        ["AGGREGATE", "SUM"],
        ["aggregate", "min"],
        ["AGGREGATE", "MAX"],
      ),
      flip: fc.boolean(),
      junk: fc.oneof(
        { weight: 8, arbitrary: fc.constant<string[]>([]) },
        fc.constantFrom(["AGGREGATE", "AVG"], ["AGGREGATE"], ["WEIGHTS", "1"], ["LIMIT", "1"], ["BOGUS"]),
      ),
    })
    .map(({ weights, aggregate, flip, junk }) => {
      if (!combines) return junk;
      const w = weights === null ? [] : ["WEIGHTS", ...weights];
      return [...(flip ? [...aggregate, ...w] : [...w, ...aggregate]), ...junk];
    });
/** Up to four inputs, repeats allowed: with three or more, the order Redis adds them in shows. */
const algebraKeys = fc.array(key, { minLength: 1, maxLength: 4 });
const algebraCommand: fc.Arbitrary<Arg[]> = fc.oneof(
  {
    weight: 3,
    arbitrary: fc
      .tuple(fc.constantFrom("ZUNION", "ZINTER", "ZDIFF"), algebraKeys, fc.boolean())
      .chain(([c, ks, w]) =>
        algebraOptions(c !== "ZDIFF", ks.length).map((o) => [
          c,
          String(ks.length),
          ...ks,
          ...o,
          ...(w ? ["WITHSCORES"] : []),
        ]),
      ),
  },
  {
    weight: 3,
    arbitrary: fc
      .tuple(fc.constantFrom("ZUNIONSTORE", "ZINTERSTORE", "ZDIFFSTORE"), key, algebraKeys)
      .chain(([c, d, ks]) =>
        algebraOptions(c !== "ZDIFFSTORE", ks.length).map((o) => [c, d, String(ks.length), ...ks, ...o]),
      ),
  },
  fc
    .tuple(
      keys,
      fc.constantFrom<string[]>(
        [],
        ["LIMIT", "1"],
        ["LIMIT", "0"],
        ["LIMIT", "-1"],
        ["LIMIT", "x"],
        ["LIMIT"],
      ),
    )
    .map(([ks, l]) => ["ZINTERCARD", String(ks.length), ...ks, ...l]),
  fc.constantFrom<Arg[]>(
    ["ZUNION", "0", "k0"],
    ["ZINTER", "-1", "k0"],
    ["ZDIFF", "x", "k0"],
    ["ZUNION", "3", "k0", "k1"],
    ["ZUNIONSTORE", "k2", "0", "k0"],
    ["ZINTERSTORE", "k2", "2", "k0", "k1", "WITHSCORES"],
    ["ZDIFFSTORE", "k2", "3", "k0"],
    ["ZUNION", "2", "k0", "k1", "WEIGHTS", "1"],
    ["ZINTER", "1", "k0", "WEIGHTS", "1", "2"],
    ["ZINTERCARD", "0", "k0"],
    ["ZINTERCARD", "2", "k0"],
    ["ZINTERCARD", "1", "k0", "WITHSCORES"],
  ),
);

/**
 * Inputs for the algebra's own sequences: sets and sorted sets of a few members (one longer than Redis's
 * compact encoding takes), scores whose sums and products overflow or meet NaN, sets just below and
 * above 128 members (the compact encoding's limit), strings, and reads of what the STORE forms stored.
 * No -0 score is added: ZADD's -0 on a small set is a known difference (Redis's compact encoding drops
 * it), which the algebra would only repeat.
 */
const algebraScore = fc.constantFrom(
  "0",
  "1",
  "2",
  "-1",
  "0.5",
  "-2.5",
  "0.1",
  "inf",
  "-inf",
  "1e300",
  "-1e300",
);
const algebraMember = fc.constantFrom<Arg>(
  "m0",
  "m1",
  "m2",
  "m3",
  Buffer.from([0x00, 0x0d, 0x0a]),
  "x".repeat(65),
);
const algebraInput: fc.Arbitrary<Arg[]> = fc.oneof(
  {
    weight: 4,
    arbitrary: fc
      .tuple(key, fc.array(fc.tuple(algebraScore, algebraMember), { minLength: 1, maxLength: 6 }))
      .map(([k, sms]) => ["ZADD", k, ...sms.flat()]),
  },
  {
    weight: 2,
    arbitrary: fc
      .tuple(key, fc.array(algebraMember, { minLength: 1, maxLength: 4 }))
      .map(([k, ms]) => ["SADD", k, ...ms]),
  },
  fc
    .tuple(key, fc.integer({ min: 126, max: 130 }), algebraScore)
    .map(([k, n, sc]) => ["ZADD", k, ...Array.from({ length: n }, (_, i) => [sc, `b${i}`]).flat()]),
  fc.tuple(key).map(([k]) => ["SET", k, "v"]),
  fc.tuple(key, algebraMember).map(([k, m]) => ["ZREM", k, m, "b0"]),
  fc.tuple(key, algebraMember).map(([k, m]) => ["ZSCORE", k, m]),
  fc.tuple(key).map(([k]) => ["ZRANGE", k, "0", "-1", "WITHSCORES"]),
);

/**
 * LMPOP, ZMPOP and the blocking pops, with short timeouts (a lone client that blocks times out: both
 * answer a null array) and refused arguments.
 */
const popKeys = fc.array(key, { minLength: 1, maxLength: 3 });
const popTimeout = fc.constantFrom("0.01", "0.01", "-1", "x", "0x0.1p-3");
const popCount = fc.constantFrom<string[]>([], [], ["COUNT", "2"], ["COUNT", "0"], ["count", "9"], ["COUNT"]);
const popCommand: fc.Arbitrary<Arg[]> = fc.oneof(
  fc
    .tuple(
      fc.constantFrom("LMPOP", "ZMPOP"),
      popKeys,
      fc.constantFrom("LEFT", "right", "MIN", "max"),
      popCount,
    )
    .map(([c, ks, w, n]) => [c, String(ks.length), ...ks, w, ...n]),
  fc.constantFrom<Arg[]>(["LMPOP", "0", "k0", "LEFT"], ["ZMPOP", "3", "k0", "MIN"], ["LMPOP", "1", "k0"]),
  fc
    .tuple(fc.constantFrom("BLPOP", "BRPOP", "BZPOPMIN", "BZPOPMAX"), popKeys, popTimeout)
    .map(([c, ks, t]) => [c, ...ks, t]),
  fc
    .tuple(fc.constantFrom("BLMPOP", "BZMPOP"), popTimeout, popKeys, fc.constantFrom("LEFT", "MAX"), popCount)
    .map(([c, t, ks, w, n]) => [c, t, String(ks.length), ...ks, w, ...n]),
  fc.tuple(key, key, popTimeout).map(([a, b, t]) => ["BRPOPLPUSH", a, b, t]),
  fc
    .tuple(key, key, fc.constantFrom("LEFT", "RIGHT"), fc.constantFrom("LEFT", "RIGHT", "UP"), popTimeout)
    .map(([a, b, f, to, t]) => ["BLMOVE", a, b, f, to, t]),
);

const element = fc.oneof(member, fc.constantFrom<Arg>("e0", "e1", ""));
const elements3 = fc.array(element, { minLength: 1, maxLength: 3 });
const listIndex = fc.oneof(
  fc.integer({ min: -5, max: 5 }).map(String),
  fc.constantFrom("x", "-9223372036854775808"),
);
const listCommand: fc.Arbitrary<Arg[]> = fc.oneof(
  {
    weight: 4,
    arbitrary: fc
      .tuple(fc.constantFrom("LPUSH", "RPUSH", "LPUSHX", "RPUSHX"), key, elements3)
      .map(([c, k, es]) => [c, k, ...es]),
  },
  fc
    .tuple(
      fc.constantFrom("LPOP", "RPOP"),
      key,
      fc.constantFrom<string[]>([], ["2"], ["0"], ["-1"], ["10"], ["1", "2"]),
    )
    .map(([c, k, n]) => [c, k, ...n]),
  fc.tuple(key).map(([k]) => ["LLEN", k]),
  fc.tuple(key, listIndex, listIndex).map(([k, a, b]) => ["LRANGE", k, a, b]),
  fc.tuple(key, listIndex).map(([k, i]) => ["LINDEX", k, i]),
  fc.tuple(key, listIndex, element).map(([k, i, e]) => ["LSET", k, i, e]),
  fc.tuple(key, listIndex, listIndex).map(([k, a, b]) => ["LTRIM", k, a, b]),
  fc.tuple(key, key).map(([a, b]) => ["RPOPLPUSH", a, b]),
  fc.tuple(key, listIndex, element).map(([k, n, e]) => ["LREM", k, n, e]),
  fc
    .tuple(key, fc.constantFrom("BEFORE", "after", "NEAR"), element, element)
    .map(([k, w, p, e]) => ["LINSERT", k, w, p, e]),
  fc
    .tuple(
      key,
      element,
      fc.subarray(["RANK", "COUNT", "MAXLEN"]),
      fc.array(fc.constantFrom("1", "-1", "2", "-2", "0", "3", "x"), { minLength: 3, maxLength: 3 }),
    )
    .map(([k, e, opts, vals]) => ["LPOS", k, e, ...opts.flatMap((o, i) => [o, vals[i]!])]),
  fc
    .tuple(key, key, fc.constantFrom("LEFT", "RIGHT", "left", "UP"), fc.constantFrom("LEFT", "RIGHT"))
    .map(([a, b, f, t]) => ["LMOVE", a, b, f, t]),
  popCommand,
);

const command: fc.Arbitrary<Arg[]> = fc.oneof(
  { weight: 8, arbitrary: hashCommand },
  { weight: 8, arbitrary: listCommand },
  { weight: 10, arbitrary: zsetCommand },
  { weight: 8, arbitrary: zsetMoreCommand },
  { weight: 6, arbitrary: algebraCommand },
  { weight: 8, arbitrary: setCommand },
  fc.tuple(key, value, setOptions).map(([k, v, o]) => ["SET", k, v, ...o]),
  fc.tuple(key).map(([k]) => ["GET", k]),
  fc.array(key, { minLength: 1, maxLength: 4 }).map((ks) => ["MGET", ...ks]),
  fc.tuple(key, value).map(([k, v]) => ["SETNX", k, v]),
  fc.tuple(fc.constantFrom("SETEX", "PSETEX"), key, ttlSeconds, value).map(([c, k, t, v]) => [c, k, t, v]),
  fc.tuple(key, value).map(([k, v]) => ["GETSET", k, v]),
  fc.tuple(key).map(([k]) => ["GETDEL", k]),
  fc
    .tuple(
      key,
      fc.oneof(
        fc.constant<string[]>([]),
        fc.constant(["PERSIST"]),
        expiry.map((e) => [...e]),
        fc.constant(["PERSIST", "EX", "100"]),
      ),
    )
    .map(([k, o]) => ["GETEX", k, ...o]),
  fc.array(fc.tuple(key, value), { minLength: 1, maxLength: 3 }).map((kvs) => ["MSET", ...kvs.flat()]),
  fc.array(fc.tuple(key, value), { minLength: 1, maxLength: 3 }).map((kvs) => ["MSETNX", ...kvs.flat()]),
  fc.tuple(key, value).map(([k]) => ["MSET", k]),
  fc.tuple(key, value).map(([k, v]) => ["APPEND", k, v]),
  fc.tuple(key).map(([k]) => ["STRLEN", k]),
  fc.tuple(key, intText, intText).map(([k, a, b]) => ["GETRANGE", k, a, b]),
  fc
    .tuple(key, fc.oneof(fc.integer({ min: -2, max: 20 }).map(String), fc.constant("x")), value)
    .map(([k, o, v]) => ["SETRANGE", k, o, v]),
  fc.tuple(fc.constantFrom("INCR", "DECR"), key).map(([c, k]) => [c, k]),
  fc.tuple(fc.constantFrom("INCRBY", "DECRBY"), key, intText).map(([c, k, n]) => [c, k, n]),
  { weight: 6, arbitrary: fc.tuple(key, floatText).map(([k, n]) => ["INCRBYFLOAT", k, n]) },
  fc.constantFrom<Arg[]>(["INCRBYFLOAT", "k0"], ["INCRBYFLOAT", "k0", "1", "2"]),
  fc.array(key, { minLength: 1, maxLength: 3 }).map((ks) => ["DEL", ...ks]),
  fc.array(key, { minLength: 1, maxLength: 3 }).map((ks) => ["UNLINK", ...ks]),
  fc.array(key, { minLength: 1, maxLength: 3 }).map((ks) => ["EXISTS", ...ks]),
  fc.tuple(key).map(([k]) => ["TYPE", k]),
  fc
    .tuple(fc.constantFrom("EXPIRE", "PEXPIRE"), key, ttlSeconds, expireOptions)
    .map(([c, k, t, o]) => [c, k, t, ...o]),
  fc
    .tuple(fc.constantFrom("EXPIREAT", "PEXPIREAT"), key, absSeconds, expireOptions)
    .map(([c, k, t, o]) => [c, k, t, ...o]),
  fc.tuple(fc.constantFrom("TTL", "EXPIRETIME", "PEXPIRETIME"), key).map(([c, k]) => [c, k]),
  fc.tuple(key).map(([k]) => ["PERSIST", k]),
  fc.tuple(fc.constantFrom("RENAME", "RENAMENX"), key, key).map(([c, a, b]) => [c, a, b]),
  fc.constantFrom<Arg[]>(["FLUSHDB"], ["FLUSHALL", "SYNC"], ["FLUSHDB", "BAD"]),
  fc.constantFrom<Arg[]>(
    ["KEYS", "*"],
    ["KEYS", "k?"],
    ["KEYS", "k[!0-1]"],
    ["KEYS", "\\k*"],
    ["KEYS", "*[^2]"],
  ),
);

/** Replies that carry each server's own reading of the clock may differ by up to a second. */
const CLOCK_DEPENDENT = new Set(["TTL", "EXPIRETIME", "PEXPIRETIME"]);
/**
 * Replies listing keys or a hash's fields: Redis gives no order (small hashes come in insertion order,
 * ours in field order), so they are compared as sets (HGETALL as a set of field-value pairs).
 */
const UNORDERED = new Set([
  "KEYS",
  "HRANDFIELD",
  "HKEYS",
  "HVALS",
  "HGETALL",
  "SMEMBERS",
  "SINTER",
  "SUNION",
  "SDIFF",
  "SPOP",
  "SRANDMEMBER",
  "HSCAN",
  "SSCAN",
  "ZSCAN",
]);

/**
 * ZRANDMEMBER's random forms: the same shape as Redis's reply (a member, or as many elements), each a
 * member of the set (`all`: ZRANGE 0 -1 WITHSCORES) with its score, distinct for a positive count.
 */
function randomMembersOk(args: Arg[], ours: Buffer, theirs: Buffer, all: Buffer): boolean {
  if (all[0] !== 0x2a || ours[0] !== theirs[0]) return false;
  const e = elements(all);
  const pairs = new Set<string>();
  for (let i = 0; i < e.length; i += 2) pairs.add(`${e[i]}${e[i + 1]}`);
  const members = new Set(e.filter((_, i) => i % 2 === 0));
  if (args.length === 2) return members.has(ours.toString("latin1"));
  if (ours[0] !== 0x2a) return false;
  const got = elements(ours);
  if (got.length !== elements(theirs).length) return false;
  const items: string[] = [];
  const scored = args.length === 4;
  for (let i = 0; i < got.length; i += scored ? 2 : 1)
    items.push(scored ? `${got[i]}${got[i + 1]}` : got[i]!);
  if (!items.every((x) => (scored ? pairs : members).has(x))) return false;
  return String(args[2]).startsWith("-") || new Set(items).size === items.length;
}

/** The elements of an array reply, each as its bytes. */
function elements(reply: Buffer): string[] {
  const out: string[] = [];
  let p = reply.indexOf("\r\n") + 2;
  while (p < reply.length) {
    const end = replyEnd(reply, p);
    out.push(reply.toString("latin1", p, end));
    p = end;
  }
  return out;
}

function same(name: string, ours: Buffer, theirs: Buffer): boolean {
  if (ours.equals(theirs)) return true;
  if (UNORDERED.has(name.toUpperCase())) {
    const items = (reply: Buffer) => {
      if (reply[0] !== 0x2a) return [reply.toString("latin1")];
      const upper = name.toUpperCase();
      // A SCAN reply: the cursor, then the items.
      if (upper === "HSCAN" || upper === "SSCAN" || upper === "ZSCAN") {
        const [cursor, items] = elements(reply) as [string, string];
        const e = elements(Buffer.from(items, "latin1"));
        const pairs: string[] = [];
        const step = upper === "SSCAN" ? 1 : 2;
        for (let i = 0; i < e.length; i += step) pairs.push(step === 2 ? `${e[i]}${e[i + 1]}` : e[i]!);
        return [cursor, ...pairs.sort()];
      }
      const e = elements(reply);
      if (upper !== "HGETALL") return e.sort();
      const pairs: string[] = [];
      for (let i = 0; i < e.length; i += 2) pairs.push(`${e[i]}${e[i + 1]}`);
      return pairs.sort();
    };
    return JSON.stringify(items(ours)) === JSON.stringify(items(theirs));
  }
  if (!CLOCK_DEPENDENT.has(name)) return false;
  const a = /^:(-?\d+)\r\n$/.exec(ours.toString("latin1"));
  const b = /^:(-?\d+)\r\n$/.exec(theirs.toString("latin1"));
  if (!a || !b || Number(a[1]) < 0 || Number(b[1]) < 0) return false;
  return Math.abs(Number(a[1]) - Number(b[1])) <= (name === "PEXPIRETIME" ? 1000 : 1);
}

describe("key-value machine vs redis-server (strings, hashes, lists, sets, sorted sets and keys)", () => {
  let server: { port: number; stop: () => Promise<void> };
  let redis: RawRedis;
  let store: KvStore;
  let machine: KvStateMachine;
  let index = 0;
  const dir = mkdtempSync(path.join(os.tmpdir(), "raftkv-diff-"));

  before(async () => {
    server = await startRedisServer();
    redis = await connectRaw(server.port);
    store = await KvStore.open(dir);
    machine = new KvStateMachine(store);
  });
  after(async () => {
    await redis?.close();
    await server?.stop();
    await store?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  async function ours(args: Arg[]): Promise<Buffer> {
    const bufs = args.map((a) => (typeof a === "string" ? Buffer.from(a) : a));
    const now = Date.now();
    const c = lookupCommand(bufs[0]!);
    const w = new ReplyWriter();
    if (c?.kind === "write") {
      index++;
      const [replies] = await machine.apply([
        { index, term: 1, type: EntryType.Normal, data: writeEntry(now, [bufs]) },
      ]);
      // A blocking pop that took nothing blocks at the front door; a lone client then times out.
      const blocks = BLOCKING_SHAPES.has(c.name) && tookNothing(replies![0]!);
      writeReply(w, blocks ? NIL_ARRAY : replies![0]!);
    } else {
      writeReply(w, machine.read(bufs, now));
    }
    return Buffer.concat(w.take());
  }

  /** Runs `cmds` on both from empty: every reply must be the same (ZRANDMEMBER's: a valid draw). */
  async function replay(cmds: Arg[][]): Promise<void> {
    await ours(["FLUSHALL"]);
    await redis.call(["FLUSHALL"]);
    const log: string[] = [];
    for (const args of cmds) {
      const theirs = await redis.call(args);
      const mine = await ours(args);
      log.push(
        `${args.map((a) => JSON.stringify(a.toString("latin1"))).join(" ")} → ${JSON.stringify(theirs.toString("latin1"))}`,
      );
      const random = args[0] === "ZRANDMEMBER" && !mine.equals(theirs);
      assert.ok(
        same(String(args[0]), mine, theirs) ||
          (random &&
            randomMembersOk(
              args,
              mine,
              theirs,
              await redis.call(["ZRANGE", args[1]!, "0", "-1", "WITHSCORES"]),
            )),
        `after:\n${log.join("\n")}\nours: ${JSON.stringify(mine.toString("latin1"))}`,
      );
    }
  }

  /** The sorted-set commands alone, in longer runs, so that ranges meet sets of a few members. */
  const zsetSequence = fc.array(
    fc.oneof({ weight: 1, arbitrary: zsetCommand }, { weight: 2, arbitrary: zsetMoreCommand }),
    { minLength: 20, maxLength: 60, size: "large" },
  );

  for (const [name, sequence] of [
    // "max": fast-check keeps arrays to about 10 unless told; sequences must build state to act on.
    [
      "random command sequences get identical replies",
      fc.array(command, { minLength: 1, maxLength: 40, size: "max" }),
    ],
    ["random sorted-set command sequences get identical replies", zsetSequence],
  ] as const)
    it(name, async () => {
      await fc.assert(fc.asyncProperty(sequence, replay), { seed: SEED, numRuns: RUNS });
    });

  it("the sorted-set algebra over populated sets and sorted sets gets identical replies", async () => {
    // A STORE form is followed by a read of what it stored (its scores as they were kept).
    const step = fc.oneof(
      { weight: 2, arbitrary: algebraInput.map((c) => [c]) },
      {
        weight: 3,
        arbitrary: algebraCommand.map((c) =>
          /STORE$/.test(String(c[0])) ? [c, ["ZRANGE", c[1]!, "0", "-1", "WITHSCORES"]] : [c],
        ),
      },
    );
    const steps = fc.array(step, { minLength: 6, maxLength: 30 }).map((s) => s.flat());
    await fc.assert(fc.asyncProperty(steps, replay), {
      seed: SEED,
      numRuns: RUNS,
    });
  });
});

/** Commands whose replies do not depend on a clock reading or on key order (they may sit inside EXEC). */
const exactCommand = command.filter(
  (args) =>
    !CLOCK_DEPENDENT.has(String(args[0])) && !UNORDERED.has(String(args[0])) && args[0] !== "ZRANDMEMBER",
);

type Step = readonly ["A" | "B", Arg[]];
const watchKeys = fc.array(key, { minLength: 1, maxLength: 3 });
/** A's MULTI … EXEC (or DISCARD), sometimes with WATCH, UNWATCH or a refused command queued inside. */
const transaction: fc.Arbitrary<Step[]> = fc
  .tuple(
    fc.array(
      fc.oneof(
        { weight: 8, arbitrary: exactCommand },
        { weight: 1, arbitrary: watchKeys.map((ks) => ["WATCH", ...ks]) },
        { weight: 1, arbitrary: fc.constantFrom<Arg[]>(["UNWATCH"], ["PING"], ["WATCH"], ["NOPE"]) },
      ),
      { maxLength: 3 },
    ),
    fc.constantFrom("EXEC", "EXEC", "EXEC", "DISCARD"),
  )
  .map(([queued, end]): Step[] => [["A", ["MULTI"]], ...queued.map((c): Step => ["A", c]), ["A", [end]]]);
/** Pieces of a session: A watches, writes and runs transactions; B writes in between. */
const segment: fc.Arbitrary<Step[]> = fc.oneof(
  // The common pattern: WATCH, others (or A itself) write or not, then the transaction.
  {
    weight: 6,
    arbitrary: fc
      .tuple(
        watchKeys,
        fc.array(fc.tuple(fc.constantFrom<"A" | "B">("B", "B", "B", "A"), exactCommand), { maxLength: 3 }),
        transaction,
      )
      .map(([ks, between, tx]): Step[] => [["A", ["WATCH", ...ks]], ...between, ...tx]),
  },
  { weight: 2, arbitrary: watchKeys.map((ks): Step[] => [["A", ["WATCH", ...ks]]]) },
  { weight: 2, arbitrary: exactCommand.map((c): Step[] => [["B", c]]) },
  { weight: 1, arbitrary: exactCommand.map((c): Step[] => [["A", c]]) },
  { weight: 1, arbitrary: fc.constant<Step[]>([["A", ["UNWATCH"]]]) },
  { weight: 2, arbitrary: transaction },
);

describe("two connections, WATCH and MULTI/EXEC: raftkv's front door vs redis-server", () => {
  let server: { port: number; stop: () => Promise<void> };
  let theirs: Record<"A" | "B", RawRedis>;
  let ours: Record<"A" | "B", RawRedis>;
  let front: RedisServer;
  let store: KvStore;
  const dir = mkdtempSync(path.join(os.tmpdir(), "raftkv-diff-watch-"));

  before(async () => {
    server = await startRedisServer();
    store = await KvStore.open(dir);
    front = await RedisServer.start({
      backend: new MachineBackend(new KvStateMachine(store)),
      listen: "127.0.0.1:0",
    });
    theirs = { A: await connectRaw(server.port), B: await connectRaw(server.port) };
    ours = { A: await connectRaw(front.port), B: await connectRaw(front.port) };
  });
  after(async () => {
    for (const c of [theirs?.A, theirs?.B, ours?.A, ours?.B]) await c?.close();
    await front?.close();
    await server?.stop();
    await store?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("random sessions get identical replies", async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(segment, { minLength: 1, maxLength: 8 }), async (segments) => {
        for (const side of [theirs, ours]) {
          await side.A.call(["UNWATCH"]);
          await side.B.call(["FLUSHALL"]);
        }
        const log: string[] = [];
        for (const [who, args] of segments.flat()) {
          const expected = await theirs[who].call(args);
          const got = await ours[who].call(args);
          log.push(
            `${who}: ${args.map((a) => JSON.stringify(a.toString("latin1"))).join(" ")} → ${JSON.stringify(expected.toString("latin1"))}`,
          );
          assert.ok(
            got.equals(expected),
            `after:\n${log.join("\n")}\nours: ${JSON.stringify(got.toString("latin1"))}`,
          );
        }
      }),
      { seed: SEED, numRuns: RUNS },
    );
  });
});
