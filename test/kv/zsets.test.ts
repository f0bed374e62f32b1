import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { formatScore, parseScore, parseScoreBound, scoreKey, scoreOfKey } from "../../src/kv/exec/scores.js";
import type { Reply } from "../../src/kv/reply.js";
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

  it("a member reaching no score change keeps its -0, as Redis compares -0 with 0", async () => {
    const { store, run } = await machine();
    await run("ZADD", "z", "-0", "m");
    assert.deepEqual(await run("ZSCORE", "z", "m"), { k: "double", v: "-0" });
    assert.deepEqual(await run("ZADD", "z", "CH", "0", "m"), { k: "int", v: 0 });
    assert.deepEqual(flat(await run("ZRANGE", "z", "0", "-1", "WITHSCORES")), ["m", "-0"]);
    await store.close();
  });
});
