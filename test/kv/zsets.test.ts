import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { type ReadAccess, readAccess } from "../../src/kv/exec/context.js";
import { ScanCursors } from "../../src/kv/exec/scan-cursors.js";
import { formatScore, parseScore, parseScoreBound, scoreKey, scoreOfKey } from "../../src/kv/exec/scores.js";
import { BLOCK_SPLIT } from "../../src/kv/exec/zset-ranks.js";
import * as zsets from "../../src/kv/exec/zsets.js";
import { rankIndexId } from "../../src/kv/record.js";
import type { Reply } from "../../src/kv/reply.js";
import type { KvStore } from "../../src/kv/store.js";
import { kvMachine } from "../helpers/kv-machine.js";
import { tempDirs } from "../helpers/temp-dirs.js";

const SEED = Number(process.env.RAFTKV_PROPERTY_SEED ?? 424242);
const tempDir = tempDirs("raftkv-zset-");

async function machine() {
  const k = await kvMachine(tempDir(), 1000);
  return { store: k.store, run: k.run, items: k.itemsOf };
}

const flat = (r: Reply): string[] => {
  if (r.k === "bulk") return [r.v.toString()];
  if (r.k === "double") return [r.v];
  if (r.k === "array" || r.k === "set") return r.v.flatMap(flat);
  if (r.k === "scored") return r.v.flatMap(([m, s]) => [...flat(m), ...flat(s)]);
  return [];
};

describe("scores", () => {
  it("print as printf's %.17g", () => {
    const cases: Array<[number, string]> = [
      [1, "1"],
      [1.5, "1.5"],
      [0.1, "0.10000000000000001"],
      [-2.5, "-2.5"],
      [100, "100"],
      [1e16, "10000000000000000"],
      [1e17, "1e+17"],
      [1.5e-5, "1.5e-05"],
      [0.3, "0.29999999999999999"],
      [1 / 3, "0.33333333333333331"],
      [2.5e-7, "2.4999999999999999e-07"],
      [1.2345678901234567e19, "1.2345678901234567e+19"],
      [9.999999999999998e16, "99999999999999984"],
      [-1e-5, "-1.0000000000000001e-05"],
      [0.0001, "0.0001"],
      [123456789.123, "123456789.123"],
      [-0, "-0"],
      [Number.POSITIVE_INFINITY, "inf"],
      [Number.NEGATIVE_INFINITY, "-inf"],
      [Number.MAX_VALUE, "1.7976931348623157e+308"],
      [5e-324, "4.9406564584124654e-324"],
      // Exact ties at the 18th digit round to even, as glibc's printf does.
      [123456789012345 + 0.625, "123456789012345.62"],
      [123456789012345 + 0.875, "123456789012345.88"],
      [0.5, "0.5"],
    ];
    for (const [d, want] of cases) assert.equal(formatScore(d), want, String(d));
  });

  it("are read as Redis reads them: strict for ZADD, strtod's leniency for range bounds", () => {
    const b = (s: string) => Buffer.from(s);
    assert.equal(parseScore(b("1e3")), 1000);
    assert.equal(parseScore(b("0x10")), 16);
    assert.equal(parseScore(b("-inf")), Number.NEGATIVE_INFINITY);
    for (const bad of ["", " 1", "1 ", "nan", "1e400", "1e-400", "abc", "0x"])
      assert.equal(parseScore(b(bad)), null, bad);
    assert.deepEqual(parseScoreBound(b("(1.5")), { value: 1.5, exclusive: true });
    assert.deepEqual(parseScoreBound(b("")), { value: 0, exclusive: false });
    assert.deepEqual(parseScoreBound(b("(")), { value: 0, exclusive: true });
    assert.deepEqual(parseScoreBound(b("1e400")), { value: Number.POSITIVE_INFINITY, exclusive: false });
    for (const bad of ["[1", "nan", "((1", "1 ", "  "]) assert.equal(parseScoreBound(b(bad)), null, bad);
  });

  it("keys sort as the numbers do", () => {
    fc.assert(
      fc.property(fc.double({ noNaN: true }), fc.double({ noNaN: true }), (x, y) => {
        const a = Buffer.alloc(8);
        const c = Buffer.alloc(8);
        scoreKey(x, a, 0);
        scoreKey(y, c, 0);
        const want = x < y ? -1 : x > y ? 1 : 0;
        assert.equal(Math.sign(Buffer.compare(a, c)), want);
        assert.ok(Object.is(scoreOfKey(a, 0), x === 0 ? 0 : x));
      }),
      { seed: SEED, numRuns: 3000 },
    );
  });
});

describe("sorted sets in the key-value machine", () => {
  it("keep two items per member, move a member's score item when it changes, and leave none behind", async () => {
    const { store, run, items } = await machine();
    assert.deepEqual(await run("ZADD", "z", "1", "a", "2", "b", "3", "c"), { k: "int", v: 3 });
    assert.equal(items("z"), 6);
    assert.deepEqual(await run("ZADD", "z", "CH", "5", "a", "2", "b"), { k: "int", v: 1 });
    assert.equal(items("z"), 6);
    assert.deepEqual(flat(await run("ZRANGE", "z", "0", "-1", "WITHSCORES")), ["b", "2", "c", "3", "a", "5"]);
    assert.deepEqual(await run("ZINCRBY", "z", "-10", "a"), { k: "double", v: "-5" });
    assert.deepEqual(await run("ZRANK", "z", "a"), { k: "int", v: 0 });
    assert.deepEqual(await run("ZREVRANK", "z", "a"), { k: "int", v: 2 });
    assert.deepEqual(flat(await run("ZPOPMAX", "z")), ["c", "3"]);
    assert.deepEqual(flat(await run("ZPOPMIN", "z", "5")), ["a", "-5", "b", "2"]);
    assert.deepEqual(await run("EXISTS", "z"), { k: "int", v: 0 });
    assert.equal(store.items(1, null, 100).length, 0, "the first collection's items are all gone");
    await store.close();
  });

  it("equal scores order by member bytes; ranges by score honour exclusive bounds, LIMIT and REV", async () => {
    const { store, run } = await machine();
    await run("ZADD", "z", "1", "b", "1", "a", "1", "c", "-inf", "low", "+inf", "high", "2", "d");
    assert.deepEqual(flat(await run("ZRANGE", "z", "0", "-1")), ["low", "a", "b", "c", "d", "high"]);
    assert.deepEqual(flat(await run("ZRANGEBYSCORE", "z", "(1", "+inf")), ["d", "high"]);
    assert.deepEqual(flat(await run("ZRANGEBYSCORE", "z", "-inf", "+inf", "LIMIT", "1", "2")), ["a", "b"]);
    assert.deepEqual(flat(await run("ZRANGE", "z", "(2", "1", "BYSCORE", "REV")), ["c", "b", "a"]);
    assert.deepEqual(flat(await run("ZREVRANGE", "z", "0", "1")), ["high", "d"]);
    assert.deepEqual(await run("ZCOUNT", "z", "1", "(2"), { k: "int", v: 3 });
    assert.deepEqual(await run("ZREMRANGEBYSCORE", "z", "1", "1"), { k: "int", v: 3 });
    assert.deepEqual(await run("ZREMRANGEBYRANK", "z", "0", "0"), { k: "int", v: 1 });
    assert.deepEqual(flat(await run("ZRANGE", "z", "0", "-1")), ["d", "high"]);
    await store.close();
  });

  it("ranges, ranks and pops of a set larger than a page agree with a sorted model, from either end, flushed or not", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.tuple(fc.integer({ min: 0, max: 1999 }), fc.integer({ min: -50, max: 50 })), {
          minLength: 300,
          maxLength: 900,
        }),
        fc.boolean(),
        fc.array(fc.tuple(fc.integer({ min: -900, max: 900 }), fc.integer({ min: -900, max: 900 })), {
          minLength: 5,
          maxLength: 10,
        }),
        async (adds, flushed, ranges) => {
          const { store, run } = await machine();
          const model = new Map<string, number>();
          for (let i = 0; i < adds.length; i += 100) {
            const chunk = adds.slice(i, i + 100);
            await run("ZADD", "z", ...chunk.flatMap(([m, sc]) => [String(sc), `m${m}`]));
            for (const [m, sc] of chunk) model.set(`m${m}`, sc);
          }
          if (flushed) await store.flush();
          const sorted = [...model].sort(
            ([a, x], [b, y]) => x - y || Buffer.compare(Buffer.from(a), Buffer.from(b)),
          );
          const names = sorted.map(([m]) => m);
          const n = names.length;
          const norm = (i: number) => (i < 0 ? n + i : i);
          for (const [a, b] of ranges) {
            const lo = Math.max(0, norm(a));
            const hi = Math.min(n - 1, norm(b));
            const want = lo > hi || lo >= n ? [] : names.slice(lo, hi + 1);
            assert.deepEqual(flat(await run("ZRANGE", "z", String(a), String(b))), want);
            assert.deepEqual(
              flat(await run("ZREVRANGE", "z", String(a), String(b))),
              [...names].reverse().slice(lo, Math.max(hi + 1, lo)),
            );
            const min = Math.min(a, b) / 20;
            const max = Math.max(a, b) / 20;
            const inScore = sorted.filter(([, sc]) => sc > min && sc <= max).map(([m]) => m);
            assert.deepEqual(
              flat(await run("ZRANGEBYSCORE", "z", `(${min}`, String(max), "LIMIT", "3", "300")),
              inScore.slice(3, 303),
            );
            assert.deepEqual(
              flat(await run("ZREVRANGEBYSCORE", "z", String(max), `(${min}`, "LIMIT", "2", "300")),
              [...inScore].reverse().slice(2, 302),
            );
          }
          const probe = names[Math.floor(n / 3)]!;
          assert.deepEqual(await run("ZRANK", "z", probe), { k: "int", v: Math.floor(n / 3) });
          assert.deepEqual(await run("ZREVRANK", "z", probe), { k: "int", v: n - 1 - Math.floor(n / 3) });
          const top = flat(await run("ZPOPMAX", "z", "300")).filter((_, i) => i % 2 === 0);
          assert.deepEqual(top, [...names].reverse().slice(0, 300));
          await store.close();
        },
      ),
      { seed: SEED, numRuns: 6 },
    );
  });

  it("a count past the collection's size pops all of it, as Redis does; LIMIT -1 with a rank range is accepted as Redis does", async () => {
    const { store, run } = await machine();
    await run("ZADD", "z", "1", "a", "2", "b");
    await run("RPUSH", "l", "a", "b", "c");
    assert.deepEqual(flat(await run("ZRANGE", "z", "0", "-1", "LIMIT", "0", "-1")), ["a", "b"]);
    assert.equal((await run("ZRANGE", "z", "0", "-1", "LIMIT", "0", "-2")).k, "error");
    assert.deepEqual(flat(await run("ZPOPMAX", "z", "99999999999")), ["b", "2", "a", "1"]);
    assert.deepEqual(flat(await run("RPOP", "l", "9223372036854775807")), ["c", "b", "a"]);
    assert.deepEqual(await run("ZCARD", "z"), { k: "int", v: 0 });
    assert.deepEqual(await run("LLEN", "l"), { k: "int", v: 0 });
    await store.close();
  });

  it("a -0 score is stored as 0, as Redis 7.0 stores it in a small set, though ZINCRBY answers the -0 it computed", async () => {
    const { store, run } = await machine();
    await run("ZADD", "z", "-0", "m");
    assert.deepEqual(await run("ZSCORE", "z", "m"), { k: "double", v: "0" });
    assert.deepEqual(await run("ZADD", "z", "CH", "0", "m"), { k: "int", v: 0 });
    assert.deepEqual(await run("ZINCRBY", "z", "-0", "n"), { k: "double", v: "-0" });
    assert.deepEqual(flat(await run("ZRANGE", "z", "0", "-1", "WITHSCORES")), ["m", "0", "n", "0"]);
    assert.deepEqual(flat(await run("ZSCAN", "z", "0")).slice(1), ["m", "0", "n", "0"]);
    await store.close();
  });

  it("a set past Redis's compact encoding keeps a -0 score, from the member that converted it on, for good", async () => {
    const { store, run } = await machine();
    const pairs = (n: number) => Array.from({ length: n }, (_, i) => ["0", `b${i}`]).flat();
    const scoreOf = async (key: string, m: string) => ((await run("ZSCORE", key, m)) as { v: string }).v;
    // Each case checked against redis-server 7.0.15.
    await run("ZADD", "created-big", ...pairs(129), "-0", "neg");
    assert.equal(await scoreOf("created-big", "neg"), "-0");
    await run("ZADD", "grown", ...pairs(128));
    await run("ZADD", "grown", "-0", "neg");
    assert.equal(await scoreOf("grown", "neg"), "-0", "the 129th member converts it");
    await run("ZREM", "grown", "b1", "b2", "b3");
    await run("ZADD", "grown", "-0", "again");
    assert.equal(await scoreOf("grown", "again"), "-0", "smaller again, it stays converted");
    const long = "x".repeat(65);
    await run("ZADD", "long", "-0", "a");
    await run("ZADD", "long", "1", long);
    await run("ZADD", "long", "-0", "c");
    assert.equal(await scoreOf("long", "a"), "0", "stored before the conversion");
    assert.equal(await scoreOf("long", "c"), "-0");
    await run("ZADD", "long-created", "-0", long);
    assert.equal(await scoreOf("long-created", long), "-0");
    await run("RENAME", "grown", "renamed");
    await run("ZADD", "renamed", "-0", "after-rename");
    assert.equal(await scoreOf("renamed", "after-rename"), "-0", "RENAME keeps the encoding");
    await store.close();
  });
});

/** A read view of the store that counts the items its ranges return. */
function countingReads(store: KvStore) {
  const reads = {
    count: 0,
    reset() {
      reads.count = 0;
    },
  };
  const base = readAccess(store, 1000, new ScanCursors());
  const counting: ReadAccess = {
    ...base,
    items: (id, start, limit) => {
      const page = base.items(id, start, limit);
      reads.count += page.length;
      return page;
    },
    itemsBelow: (id, below, limit) => {
      const page = base.itemsBelow(id, below, limit);
      reads.count += page.length;
      return page;
    },
  };
  return { counting, reads };
}

/** Byte order, as Redis compares members in lex ranges. */
const byBytes = (a: string, b: string) => Buffer.compare(Buffer.from(a, "latin1"), Buffer.from(b, "latin1"));

/** A lex bound of the model: "-", "+", or "[x" / "(x". */
function inLex(m: string, min: string, max: string): boolean {
  const above =
    min === "-"
      ? true
      : min === "+"
        ? false
        : min[0] === "("
          ? byBytes(m, min.slice(1)) > 0
          : byBytes(m, min.slice(1)) >= 0;
  const below =
    max === "+"
      ? true
      : max === "-"
        ? false
        : max[0] === "("
          ? byBytes(m, max.slice(1)) < 0
          : byBytes(m, max.slice(1)) <= 0;
  return above && below;
}

describe("sorted sets: lex ranges, ZRANGESTORE, ZRANDMEMBER, ZSCAN", () => {
  it("lex ranges of a one-score set larger than a page agree with a byte-ordered model, both ways, with LIMIT, flushed or not", async () => {
    const word = fc.stringMatching(/^[a-d]{0,4}$/);
    const bound = fc.oneof(
      fc.constantFrom("-", "+"),
      word.map((w) => `[${w}`),
      word.map((w) => `(${w}`),
    );
    await fc.assert(
      fc.asyncProperty(
        fc.uniqueArray(word, { minLength: 150, maxLength: 340 }),
        fc.boolean(),
        fc.array(
          fc.tuple(bound, bound, fc.integer({ min: -1, max: 40 }), fc.integer({ min: -2, max: 300 })),
          {
            minLength: 6,
            maxLength: 12,
          },
        ),
        async (words, flushed, ranges) => {
          const { store, run, items } = await machine();
          for (let i = 0; i < words.length; i += 100)
            await run("ZADD", "z", ...words.slice(i, i + 100).flatMap((w) => ["0", w]));
          if (flushed) await store.flush();
          const sorted = [...words].sort(byBytes);
          for (const [min, max, offset, count] of ranges) {
            const want = sorted.filter((m) => inLex(m, min, max));
            const limited = (xs: string[]) =>
              offset < 0 ? [] : xs.slice(offset, count < 0 ? undefined : offset + count);
            assert.deepEqual(flat(await run("ZRANGEBYLEX", "z", min, max)), want, `${min} ${max}`);
            assert.deepEqual(flat(await run("ZREVRANGEBYLEX", "z", max, min)), [...want].reverse());
            assert.deepEqual(await run("ZLEXCOUNT", "z", min, max), { k: "int", v: want.length });
            const lim = ["LIMIT", String(offset), String(count)];
            assert.deepEqual(flat(await run("ZRANGE", "z", min, max, "BYLEX", ...lim)), limited(want));
            assert.deepEqual(
              flat(await run("ZRANGE", "z", max, min, "BYLEX", "REV", ...lim)),
              limited([...want].reverse()),
            );
          }
          const [min, max] = ranges[0]!;
          const gone = sorted.filter((m) => inLex(m, min, max));
          assert.deepEqual(await run("ZREMRANGEBYLEX", "z", min, max), { k: "int", v: gone.length });
          const left = sorted.filter((m) => !inLex(m, min, max));
          assert.deepEqual(flat(await run("ZRANGE", "z", "0", "-1")), left);
          assert.deepEqual(await run("ZCARD", "z"), { k: "int", v: left.length });
          assert.equal(items("z"), 2 * left.length, "both items of each removed member are gone");
          await store.close();
        },
      ),
      { seed: SEED, numRuns: 6 },
    );
  });

  it("lex bounds are [x, (x, - or +, checked before the key; WITHSCORES is refused with BYLEX", async () => {
    const { store, run } = await machine();
    await run("ZADD", "z", "0", "a", "0", "b", "0", "c");
    await run("SET", "s", "v");
    const invalid = { k: "error", v: "ERR min or max not valid string range item" };
    for (const cmd of [
      ["ZRANGEBYLEX", "z", "a", "+"],
      ["ZRANGEBYLEX", "s", "-", "+x"],
      ["ZLEXCOUNT", "nokey", "", "+"],
      ["ZREMRANGEBYLEX", "s", "[a", "b"],
      ["ZRANGE", "z", "0", "-1", "BYLEX"],
      ["ZREVRANGEBYLEX", "z", "-", "++"],
    ])
      assert.deepEqual(await run(...cmd), invalid, cmd.join(" "));
    assert.deepEqual(await run("ZLEXCOUNT", "s", "-", "+"), {
      k: "error",
      v: "WRONGTYPE Operation against a key holding the wrong kind of value",
    });
    assert.deepEqual(await run("ZRANGE", "z", "-", "+", "BYLEX", "WITHSCORES"), {
      k: "error",
      v: "ERR syntax error, WITHSCORES not supported in combination with BYLEX",
    });
    assert.deepEqual(await run("ZRANGEBYLEX", "z", "-", "+", "REV"), { k: "error", v: "ERR syntax error" });
    for (const twice of ["REV", "BYSCORE", "BYLEX"])
      assert.deepEqual(await run("ZRANGE", "z", "0", "1", twice, twice), {
        k: "error",
        v: "ERR syntax error",
      });
    assert.deepEqual(flat(await run("ZRANGEBYLEX", "z", "(a", "[", "LIMIT", "0", "5")), []);
    assert.deepEqual(flat(await run("ZRANGEBYLEX", "z", "(", "+")), ["a", "b", "c"]);
    assert.deepEqual(flat(await run("ZRANGEBYLEX", "z", "+", "-")), []);
    // A bound longer than any member may be still orders against members.
    const long = "b".repeat(5000);
    assert.deepEqual(flat(await run("ZRANGEBYLEX", "z", `[${long}`, "+")), ["c"]);
    assert.deepEqual(flat(await run("ZREVRANGEBYLEX", "z", `(${long}`, "-")), ["b", "a"]);
    assert.deepEqual(await run("ZREMRANGEBYLEX", "z", "-", `[${long}`), { k: "int", v: 2 });
    assert.deepEqual(flat(await run("ZRANGE", "z", "0", "-1")), ["c"]);
    await store.close();
  });

  it("the rank index keeps ranks, middle ranges and counts right while a set of thousands changes", async () => {
    const op = fc.oneof(
      fc.tuple(
        fc.constant("ZADD"),
        // "max": fast-check keeps arrays short by default; these must reach thousands of members.
        fc.array(fc.tuple(fc.integer({ min: 0, max: 9999 }), fc.integer({ min: -30, max: 30 })), {
          minLength: 1,
          maxLength: 2500,
          size: "max",
        }),
      ),
      // A few at a time too: a command of a few changes is counted apart from a bulk one.
      fc.tuple(
        fc.constant("ZADD"),
        fc.array(fc.tuple(fc.integer({ min: 0, max: 9999 }), fc.integer({ min: -30, max: 30 })), {
          minLength: 1,
          maxLength: 4,
        }),
      ),
      fc.tuple(
        fc.constant("ZREM"),
        fc.array(fc.integer({ min: 0, max: 9999 }), { minLength: 1, maxLength: 1200, size: "max" }),
      ),
      fc.tuple(fc.constant("ZREMRANGEBYRANK"), fc.tuple(fc.nat(6000), fc.nat(1500))),
      fc.tuple(fc.constantFrom("ZPOPMIN", "ZPOPMAX"), fc.nat(1500)),
    );
    await fc.assert(
      fc.asyncProperty(
        fc.array(op, { minLength: 4, maxLength: 14, size: "max" }),
        fc.array(fc.tuple(fc.nat(10000), fc.nat(40), fc.integer({ min: -32, max: 32 }), fc.nat(20)), {
          minLength: 3,
          maxLength: 3,
        }),
        async (ops, probes) => {
          const { store, run, items } = await machine();
          const model = new Map<string, number>();
          const sorted = () =>
            [...model].sort(([a, x], [b, y]) => x - y || Buffer.compare(Buffer.from(a), Buffer.from(b)));
          for (const [name, arg] of ops) {
            if (name === "ZADD") {
              const pairs = arg as Array<[number, number]>;
              await run("ZADD", "z", ...pairs.flatMap(([m, sc]) => [String(sc), `m${m}`]));
              for (const [m, sc] of pairs) model.set(`m${m}`, sc);
            } else if (name === "ZREM") {
              const ms = arg as number[];
              await run("ZREM", "z", ...ms.map((m) => `m${m}`));
              for (const m of ms) model.delete(`m${m}`);
            } else if (name === "ZREMRANGEBYRANK") {
              const [start, len] = arg as [number, number];
              await run("ZREMRANGEBYRANK", "z", String(start), String(start + len));
              for (const [m] of sorted().slice(start, start + len + 1)) model.delete(m);
            } else {
              const n = arg as number;
              if (n === 0) continue;
              await run(name, "z", String(n));
              const all = sorted();
              for (const [m] of name === "ZPOPMIN" ? all.slice(0, n) : all.slice(-n)) model.delete(m);
            }
            const all = sorted();
            assert.equal(items("z"), 2 * all.length, "two items per member; the index matches them");
            for (const [at, len, lo, width] of probes) {
              if (all.length === 0) break;
              const i = at % all.length;
              assert.deepEqual(await run("ZRANK", "z", all[i]![0]), { k: "int", v: i });
              assert.deepEqual(await run("ZREVRANK", "z", all[i]![0]), { k: "int", v: all.length - 1 - i });
              assert.deepEqual(
                flat(await run("ZRANGE", "z", String(i), String(i + len))),
                all.slice(i, i + len + 1).map(([m]) => m),
              );
              assert.deepEqual(
                flat(await run("ZRANGE", "z", String(i), String(i + len), "REV")),
                [...all]
                  .reverse()
                  .slice(i, i + len + 1)
                  .map(([m]) => m),
              );
              const hi = lo + width;
              assert.deepEqual(await run("ZCOUNT", "z", String(lo), `(${hi}`), {
                k: "int",
                v: all.filter(([, sc]) => sc >= lo && sc < hi).length,
              });
            }
          }
          await store.close();
        },
      ),
      { seed: SEED, numRuns: 8 },
    );
  });

  it("the rank index splits and merges blocks one change at a time as well as in bulk", async () => {
    const { store, run, items } = await machine();
    const n = 5000;
    const order = Array.from({ length: n }, (_, i) => (i * 7919) % n);
    // One member per command: counted one by one, a block split each time it passes BLOCK_SPLIT.
    for (const i of order.slice(0, 3000)) await run("ZADD", "z", String(i % 37), `m${i}`);
    assert.equal(items("z"), 6000);
    await run("ZADD", "z", ...order.slice(3000).flatMap((i) => [String(i % 37), `m${i}`]));
    assert.equal(items("z"), 2 * n);
    // Removed one by one from the lowest: blocks empty and merge into their predecessors.
    for (let i = 0; i < 2600; i++) {
      await run("ZPOPMIN", "z");
      if (i % 331 === 0) items("z");
    }
    assert.equal(items("z"), 2 * (n - 2600));
    assert.deepEqual(await run("ZREMRANGEBYRANK", "z", "100", "1999"), { k: "int", v: 1900 });
    assert.equal(items("z"), 2 * (n - 4500));
    assert.deepEqual(await run("ZRANK", "z", flat(await run("ZRANGE", "z", "250", "250"))[0]!), {
      k: "int",
      v: 250,
    });
    await store.close();
  });

  it("a command of a few changes whose first one splits a block counts the others once (review)", async () => {
    const { store, run, items } = await machine();
    const full = () =>
      run("ZADD", "z", ...Array.from({ length: 2048 }, (_, i) => [String(i + 1), `m${i + 1}`]).flat());
    await full();
    await run("ZADD", "z", "0", "a", "0", "b");
    assert.equal(items("z"), 2 * 2050);
    assert.deepEqual(await run("ZRANK", "z", "m1023"), { k: "int", v: 1024 });
    await run("DEL", "z");
    await full();
    // A split while m1 is already gone from its place, then a removal of most of the first block.
    await run("ZADD", "z", "5000", "x", "3000", "m1");
    assert.equal(items("z"), 2 * 2049);
    assert.deepEqual(await run("ZREMRANGEBYSCORE", "z", "2", "1025"), { k: "int", v: 1024 });
    assert.equal(items("z"), 2 * 1025);
    assert.deepEqual(await run("ZRANK", "z", "m1026"), { k: "int", v: 0 });
    await store.close();
  });

  it("one command moving members across blocks cuts the block they join and merges the one they leave", async () => {
    const { store, run, items } = await machine();
    const model = new Map<string, number>();
    const add = async (pairs: Array<[string, number]>, ...flags: string[]) => {
      await run("ZADD", "z", ...flags, ...pairs.flatMap(([m, sc]) => [String(sc), m]));
      for (const [m, sc] of pairs) model.set(m, sc);
    };
    await add(Array.from({ length: 1000 }, (_, i): [string, number] => [`low${i}`, i]));
    await add(Array.from({ length: 1000 }, (_, i): [string, number] => [`high${i}`, 2000 + i]));
    await add(Array.from({ length: 1000 }, (_, i): [string, number] => [`mid${i}`, 1000 + i]));
    assert.equal(items("z"), 6000);
    // 900 of the highest move below the lowest: the first block takes them all, the last ones empty.
    await add(
      Array.from({ length: 900 }, (_, i): [string, number] => [`high${999 - i}`, -1 - i]),
      "XX",
    );
    assert.equal(items("z"), 6000);
    const names = [...model].sort(([a, x], [b, y]) => x - y || a.localeCompare(b)).map(([m]) => m);
    assert.deepEqual(flat(await run("ZRANGE", "z", "0", "-1")), names);
    for (const i of [0, 899, 900, 1500, 2999])
      assert.deepEqual(await run("ZRANK", "z", names[i]!), { k: "int", v: i });
    await store.close();
  });

  it("the rank index goes with its set: DEL, SET over it, expiry, a STORE over it; RENAME takes it along", async () => {
    const k = await kvMachine(tempDir(), 1000);
    const fill = (key: string) =>
      k.run("ZADD", key, ...Array.from({ length: 5000 }, (_, i) => [String(i), `m${i}`]).flat());
    const blocks = (id: number) => k.store.items(rankIndexId(id), null, 100_000).length;
    const cases: Array<[string, () => Promise<unknown>]> = [
      ["DEL", () => k.run("DEL", "z")],
      ["SET", () => k.run("SET", "z", "v")],
      ["ZUNIONSTORE", () => k.run("ZUNIONSTORE", "z", "1", "other")],
      [
        "expiry",
        async () => {
          await k.run("PEXPIRE", "z", "10");
          k.advance(20);
          await k.run("ZADD", "z", "1", "fresh");
        },
      ],
    ];
    await k.run("ZADD", "other", "1", "x");
    for (const [name, drop] of cases) {
      await fill("z");
      const id = k.idOf("z");
      assert.ok(blocks(id) > 1, `${name}: a set of 5,000 has blocks`);
      await drop();
      assert.equal(blocks(id), 0, `${name}: the old set's blocks are gone`);
      await k.run("DEL", "z");
    }
    await fill("z");
    const id = k.idOf("z");
    const before = blocks(id);
    await k.run("RENAME", "z", "renamed");
    assert.equal(k.idOf("renamed"), id);
    assert.equal(blocks(id), before);
    assert.deepEqual(await k.run("ZRANK", "renamed", "m700"), { k: "int", v: 700 });
    await k.store.close();
  });

  it("ZRANK, ZCOUNT and a range in the middle of a large set read about √N items, not N", async () => {
    const k = await kvMachine(tempDir(), 1000);
    const n = 40_000;
    for (let i = 0; i < n; i += 2000)
      await k.run(
        "ZADD",
        "z",
        ...Array.from({ length: 2000 }, (_, j) => [String(i + j), `m${i + j}`]).flat(),
      );
    await k.store.flush();
    assert.equal(k.itemsOf("z"), 2 * n);
    const { counting, reads } = countingReads(k.store);
    const args = (...a: string[]) => a.map((x) => Buffer.from(x));
    // At most every block (fewer than n / 256) and two blocks' members, with a page to spare each way;
    // without the index, a middle rank reads n / 2.
    const bound = n / 256 + 2 * BLOCK_SPLIT + 2 * 256;
    const cases: Array<[readonly Buffer[], Reply]> = [
      [args("ZRANK", "z", "m20000"), { k: "int", v: 20000 }],
      [args("ZREVRANK", "z", "m20000"), { k: "int", v: n - 1 - 20000 }],
      [args("ZCOUNT", "z", "(10000", "30000"), { k: "int", v: 20000 }],
    ];
    for (const [a, want] of cases) {
      reads.reset();
      const run =
        a[0]!.toString() === "ZCOUNT"
          ? zsets.zcount
          : a[0]!.toString() === "ZRANK"
            ? zsets.zrank
            : zsets.zrevrank;
      assert.deepEqual(run(counting, a), want);
      assert.ok(reads.count <= bound, `${a.join(" ")}: read ${reads.count} items`);
    }
    reads.reset();
    assert.deepEqual(flat(zsets.zrange(counting, args("ZRANGE", "z", "25000", "25004"))), [
      "m25000",
      "m25001",
      "m25002",
      "m25003",
      "m25004",
    ]);
    assert.ok(reads.count <= bound, `ZRANGE: read ${reads.count} items`);
    await k.store.close();
  });

  it("ZRANGEBYLEX with LIMIT reads about a page, not the whole set", async () => {
    const k = await kvMachine(tempDir(), 1000);
    const members = Array.from({ length: 6000 }, (_, i) => `m${String(i).padStart(5, "0")}`);
    for (let i = 0; i < members.length; i += 1000)
      await k.run("ZADD", "z", ...members.slice(i, i + 1000).flatMap((m) => ["0", m]));
    await k.store.flush();
    const { counting, reads } = countingReads(k.store);
    const args = (...a: string[]) => a.map((x) => Buffer.from(x));
    assert.deepEqual(
      flat(zsets.zrangebylex(counting, args("ZRANGEBYLEX", "z", "[m03000", "+", "LIMIT", "0", "10"))),
      members.slice(3000, 3010),
    );
    assert.ok(reads.count <= 10 + 256, `read ${reads.count} items`);
    reads.reset();
    assert.deepEqual(
      flat(zsets.zrevrangebylex(counting, args("ZREVRANGEBYLEX", "z", "(m03000", "-", "LIMIT", "2", "10"))),
      members.slice(2988, 2998).reverse(),
    );
    assert.ok(reads.count <= 12 + 256, `read ${reads.count} items`);
    reads.reset();
    zsets.zrange(counting, args("ZRANGE", "z", "[m05990", "+", "BYLEX"));
    assert.ok(reads.count <= 10 + 256, `read ${reads.count} items`);
    await k.store.close();
  });

  it("ZRANGESTORE: every form of ZRANGE, destination overwritten whatever it held, dst == src, empty deletes", async () => {
    const { store, run, items } = await machine();
    await run("ZADD", "z", "1", "a", "2", "b", "3", "c", "4", "d");
    assert.deepEqual(await run("ZRANGESTORE", "d", "z", "1", "2"), { k: "int", v: 2 });
    assert.deepEqual(flat(await run("ZRANGE", "d", "0", "-1", "WITHSCORES")), ["b", "2", "c", "3"]);
    assert.deepEqual(await run("ZRANGESTORE", "d", "z", "0", "1", "REV"), { k: "int", v: 2 });
    assert.deepEqual(flat(await run("ZRANGE", "d", "0", "-1")), ["c", "d"]);
    assert.deepEqual(await run("ZRANGESTORE", "d", "z", "(1", "+inf", "BYSCORE", "LIMIT", "1", "5"), {
      k: "int",
      v: 2,
    });
    assert.deepEqual(flat(await run("ZRANGE", "d", "0", "-1")), ["c", "d"]);
    assert.deepEqual(await run("ZRANGESTORE", "d", "z", "3", "-inf", "BYSCORE", "REV", "LIMIT", "0", "2"), {
      k: "int",
      v: 2,
    });
    assert.deepEqual(flat(await run("ZRANGE", "d", "0", "-1")), ["b", "c"]);
    assert.deepEqual(await run("ZRANGESTORE", "d", "z", "[b", "+", "BYLEX", "LIMIT", "0", "2"), {
      k: "int",
      v: 2,
    });
    assert.deepEqual(await run("ZRANGESTORE", "d", "z", "+", "(b", "BYLEX", "REV"), { k: "int", v: 2 });
    assert.deepEqual(flat(await run("ZRANGE", "d", "0", "-1", "WITHSCORES")), ["c", "3", "d", "4"]);
    // Any type is overwritten, its TTL with it.
    await run("SET", "str", "v", "EX", "100");
    assert.deepEqual(await run("ZRANGESTORE", "str", "z", "0", "0"), { k: "int", v: 1 });
    assert.deepEqual(await run("TYPE", "str"), { k: "status", v: "zset" });
    assert.deepEqual(await run("TTL", "str"), { k: "int", v: -1 });
    // The source is read before the destination is replaced.
    assert.deepEqual(await run("ZRANGESTORE", "z", "z", "1", "2"), { k: "int", v: 2 });
    assert.deepEqual(flat(await run("ZRANGE", "z", "0", "-1", "WITHSCORES")), ["b", "2", "c", "3"]);
    assert.equal(items("z"), 4);
    // An empty result (or an absent source) deletes the destination and answers 0.
    assert.deepEqual(await run("ZRANGESTORE", "d", "z", "5", "9"), { k: "int", v: 0 });
    assert.deepEqual(await run("EXISTS", "d"), { k: "int", v: 0 });
    await run("SET", "d", "v");
    assert.deepEqual(await run("ZRANGESTORE", "d", "nokey", "0", "-1"), { k: "int", v: 0 });
    assert.deepEqual(await run("EXISTS", "d"), { k: "int", v: 0 });
    // Errors leave the destination alone.
    await run("ZADD", "d", "1", "x");
    for (const [cmd, v] of [
      [
        ["ZRANGESTORE", "d", "str2", "0", "-1"],
        "WRONGTYPE Operation against a key holding the wrong kind of value",
      ],
      [["ZRANGESTORE", "d", "z", "0", "-1", "WITHSCORES"], "ERR syntax error"],
      [
        ["ZRANGESTORE", "d", "z", "0", "-1", "LIMIT", "0", "1"],
        "ERR syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX",
      ],
      [["ZRANGESTORE", "d", "z", "a", "b", "BYLEX"], "ERR min or max not valid string range item"],
      [["ZRANGESTORE", "d", "z", "x", "1", "BYSCORE"], "ERR min or max is not a float"],
      [["ZRANGESTORE", "d", "z", "x", "1"], "ERR value is not an integer or out of range"],
    ] as Array<[string[], string]>) {
      if (cmd[2] === "str2") await run("SET", "str2", "v");
      assert.deepEqual(await run(...cmd), { k: "error", v }, cmd.join(" "));
    }
    assert.deepEqual(flat(await run("ZRANGE", "d", "0", "-1")), ["x"]);
    // Both keys are keys: one past the store's limit is refused, not thrown in apply.
    assert.deepEqual(await run("ZRANGESTORE", "k".repeat(2000), "z", "0", "-1"), {
      k: "error",
      v: "ERR key is too long (at most 1024 bytes)",
    });
    await store.close();
  });

  it("ZRANDMEMBER: one member, distinct members for a positive count, exactly |count| for a negative one, scores", async () => {
    const { store, run } = await machine();
    const scores = new Map(Array.from({ length: 300 }, (_, i) => [`m${i}`, String(i / 4)]));
    await run("ZADD", "z", ...[...scores].flatMap(([m, s]) => [s, m]));
    const one = flat(await run("ZRANDMEMBER", "z"));
    assert.equal(one.length, 1);
    assert.ok(scores.has(one[0]!));
    const distinct = flat(await run("ZRANDMEMBER", "z", "40"));
    assert.equal(new Set(distinct).size, 40);
    assert.ok(distinct.every((m) => scores.has(m)));
    assert.equal(new Set(flat(await run("ZRANDMEMBER", "z", "1000"))).size, 300);
    const repeated = flat(await run("ZRANDMEMBER", "z", "-500"));
    assert.equal(repeated.length, 500);
    assert.ok(new Set(repeated).size < 300, "a negative count repeats members");
    const withScores = await run("ZRANDMEMBER", "z", "-7", "WITHSCORES");
    assert.equal(withScores.k, "scored");
    const pairs = flat(withScores);
    assert.equal(pairs.length, 14);
    for (let i = 0; i < pairs.length; i += 2)
      assert.equal(pairs[i + 1], formatScore(Number(scores.get(pairs[i]!))), pairs[i]);
    assert.deepEqual(await run("ZRANDMEMBER", "z", "0"), { k: "array", v: [] });
    assert.deepEqual(await run("ZRANDMEMBER", "nokey"), { k: "nil" });
    assert.deepEqual(await run("ZRANDMEMBER", "nokey", "-3"), { k: "array", v: [] });
    for (const [args, v] of [
      [["x"], "ERR value is not an integer or out of range"],
      [["1", "BOGUS"], "ERR syntax error"],
      [
        ["-9223372036854775808"],
        "ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807",
      ],
      [["4611686018427387904", "WITHSCORES"], "ERR value is out of range"],
      [["-1000001"], "ERR value is out of range (at most 1000000 members at once)"],
    ] as Array<[string[], string]>)
      assert.deepEqual(await run("ZRANDMEMBER", "z", ...args), { k: "error", v }, args.join(" "));
    // A positive count past the limit is fine when the set is smaller: it gives the whole set.
    assert.equal(flat(await run("ZRANDMEMBER", "z", "4611686018427387903")).length, 300);
    await store.close();
  });

  it("ZSCAN returns every member present throughout, with its score, while the set changes between calls", async () => {
    const { store, run } = await machine();
    const all = Array.from({ length: 700 }, (_, i) => `m${String(i).padStart(4, "0")}`);
    for (let i = 0; i < all.length; i += 100)
      await run("ZADD", "z", ...all.slice(i, i + 100).flatMap((m, j) => [String((i + j) % 7), m]));
    await store.flush();
    const seen = new Map<string, string>();
    let cursor = "0";
    let calls = 0;
    do {
      const reply = await run("ZSCAN", "z", cursor, "COUNT", "25");
      assert.ok(reply.k === "array");
      const [c, got] = reply.v;
      assert.ok(c?.k === "bulk" && got?.k === "array");
      const pairs = flat(got);
      assert.ok(pairs.length <= 50);
      for (let i = 0; i < pairs.length; i += 2) seen.set(pairs[i]!, pairs[i + 1]!);
      cursor = c.v.toString();
      // Writes between calls: members added and removed elsewhere in the set.
      await run("ZADD", "z", "100", `new${calls}`, "100", `m${String(calls * 3).padStart(4, "0")}x`);
      await run("ZREM", "z", `m${String(699 - calls).padStart(4, "0")}`);
      calls++;
    } while (cursor !== "0" && calls < 100);
    assert.ok(calls >= 28, `${calls} calls`);
    const removed = new Set(Array.from({ length: calls }, (_, i) => `m${String(699 - i).padStart(4, "0")}`));
    for (const [i, m] of all.entries()) {
      if (removed.has(m)) continue;
      assert.equal(seen.get(m), String(i % 7), m);
    }
    // MATCH filters the COUNT members looked at; the scores come as bulk strings, as ZSCORE prints them.
    const matched = await run("ZSCAN", "z", "0", "COUNT", "5", "MATCH", "m000[0-2]");
    assert.ok(matched.k === "array" && matched.v[1]?.k === "array");
    assert.deepEqual(
      matched.v[1].v,
      ["m0000", "0", "m0001", "1", "m0002", "2"].map((x) => ({ k: "bulk", v: Buffer.from(x) })),
    );
    assert.deepEqual(await run("ZSCAN", "z", "x"), { k: "error", v: "ERR invalid cursor" });
    assert.deepEqual(await run("ZSCAN", "nokey", "0", "BOGUS"), {
      k: "array",
      v: [
        { k: "bulk", v: Buffer.from("0") },
        { k: "array", v: [] },
      ],
    });
    assert.deepEqual(await run("ZSCAN", "z", "0", "BOGUS"), { k: "error", v: "ERR syntax error" });
    await store.close();
  });
});
