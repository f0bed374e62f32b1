import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { formatScore } from "../../src/kv/exec/scores.js";
import { MAX_ALGEBRA_MEMBERS } from "../../src/kv/exec/zset-algebra.js";
import { encodeCollection, RecordType } from "../../src/kv/record.js";
import type { Reply } from "../../src/kv/reply.js";
import { kvMachine } from "../helpers/kv-machine.js";
import { tempDirs } from "../helpers/temp-dirs.js";

const SEED = Number(process.env.RAFTKV_PROPERTY_SEED ?? 424242);
const tempDir = tempDirs("raftkv-zalg-");

const flat = (r: Reply): string[] => {
  if (r.k === "bulk") return [r.v.toString("latin1")];
  if (r.k === "double") return [r.v];
  if (r.k === "array" || r.k === "set") return r.v.flatMap(flat);
  if (r.k === "scored") return r.v.flatMap(([m, s]) => [...flat(m), ...flat(s)]);
  return [];
};

const err = (v: string): Reply => ({ k: "error", v });
const int = (v: number): Reply => ({ k: "int", v });

// ------------------------------------------------------------------------------------------ model

/** A key's value in the model: a sorted set (member → score) or a plain set (every score 1). */
interface Value {
  readonly type: "zset" | "set";
  readonly members: Map<string, number>;
}
type Model = Map<string, Value>;
type Op = "union" | "inter" | "diff";
type Aggregate = "SUM" | "MIN" | "MAX";

/**
 * Redis's algebra, written out plainly: inputs smallest first (ties in the order given), each weighted
 * score NaN → 0 where Redis does so, sums in that order with a NaN sum → 0, MIN and MAX by comparison
 * (NaN never wins, the earlier of 0 and -0 stays). Sorted by score, then member bytes.
 */
function algebra(model: Model, op: Op, keys: string[], weights: number[], agg: Aggregate) {
  const inputs = keys.map((k, i) => ({ members: model.get(k)?.members ?? new Map(), weight: weights[i]! }));
  const combine = (t: number, v: number) => {
    if (agg === "SUM") return Number.isNaN(t + v) ? 0 : t + v;
    // biome-ignore lint/complexity/useMathMinMax: Redis's comparison (NaN never wins, the earlier zero stays)
    if (agg === "MIN") return v < t ? v : t;
    // biome-ignore lint/complexity/useMathMinMax: as above
    return v > t ? v : t;
  };
  const noNaN = (d: number) => (Number.isNaN(d) ? 0 : d);
  const out = new Map<string, number>();
  if (op === "diff") {
    for (const [m, s] of inputs[0]!.members)
      if (inputs.slice(1).every((x) => !x.members.has(m))) out.set(m, s);
  } else {
    const sorted = inputs
      .map((x, i) => ({ ...x, i }))
      .sort((a, b) => a.members.size - b.members.size || a.i - b.i);
    if (op === "union") {
      for (const x of sorted)
        for (const [m, s] of x.members) {
          const w = noNaN(x.weight * s);
          out.set(m, out.has(m) ? combine(out.get(m)!, w) : w);
        }
    } else {
      const [first, ...rest] = sorted;
      for (const [m, s] of first!.members) {
        if (!rest.every((x) => x.members.has(m))) continue;
        let t = noNaN(first!.weight * s);
        for (const x of rest) t = combine(t, x.members.get(m)! * x.weight);
        out.set(m, t);
      }
    }
  }
  return [...out].sort(([a, x], [b, y]) =>
    x < y ? -1 : x > y ? 1 : Buffer.compare(Buffer.from(a), Buffer.from(b)),
  );
}

const withScores = (entries: Array<[string, number]>) => entries.flatMap(([m, s]) => [m, formatScore(s)]);

async function machine() {
  const k = await kvMachine(tempDir(), 1000);
  return { ...k, items: k.itemsOf };
}

describe("the sorted-set algebra in the key-value machine", () => {
  it("agrees with a model over sorted sets and plain sets larger than a page, odd weights and every AGGREGATE; a STORE form stores it whole, even over one of its inputs", async () => {
    const SCORES = [0, -0, 1, 2.5, -3, 1e300, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY];
    const WEIGHTS = [1, 2, -1, 0, -0, 0.1, 1e300, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY];
    const keyValue = fc.oneof(
      fc.constant(null),
      fc.tuple(
        fc.constantFrom<"zset" | "set">("zset", "set"),
        fc.array(fc.tuple(fc.integer({ min: 0, max: 700 }), fc.integer({ min: 0, max: SCORES.length - 1 })), {
          maxLength: 400,
          // fast-check keeps arrays to about 10 unless told: these must pass a page (256 items).
          size: "max",
        }),
      ),
    );
    const step = fc.record({
      op: fc.constantFrom<Op>("union", "inter", "diff"),
      keys: fc.array(fc.constantFrom("a", "b", "c", "none"), { minLength: 1, maxLength: 4 }),
      weights: fc.array(fc.integer({ min: 0, max: WEIGHTS.length - 1 }), { minLength: 4, maxLength: 4 }),
      agg: fc.constantFrom<Aggregate>("SUM", "MIN", "MAX"),
      dest: fc.constantFrom("a", "b", "d"),
      limit: fc.integer({ min: 0, max: 5 }),
    });
    await fc.assert(
      fc.asyncProperty(
        fc.tuple(keyValue, keyValue, keyValue),
        fc.array(step, { maxLength: 6 }),
        async (vs, steps) => {
          const m = await machine();
          const model: Model = new Map();
          for (const [i, v] of vs.entries()) {
            if (v === null) continue;
            const [type, adds] = v;
            const key = "abc"[i]!;
            const members = new Map<string, number>();
            // Past 128 members Redis's encoding keeps a -0 score; before, it stores 0 (zsets.ts).
            let large = false;
            // Written in chunks, as a client would.
            for (let j = 0; j < adds.length; j += 100) {
              const chunk = adds.slice(j, j + 100);
              if (chunk.length === 0) continue;
              if (type === "zset") {
                await m.run("ZADD", key, ...chunk.flatMap(([n, s]) => [formatScore(SCORES[s]!), `m${n}`]));
                for (const [n, s] of chunk) {
                  const old = members.get(`m${n}`);
                  if (old === undefined && members.size + 1 > 128) large = true;
                  if (old === SCORES[s]!) continue;
                  members.set(`m${n}`, SCORES[s] === 0 && !large ? 0 : SCORES[s]!);
                }
              } else {
                await m.run("SADD", key, ...chunk.map(([n]) => `m${n}`));
                for (const [n] of chunk) members.set(`m${n}`, 1);
              }
            }
            if (members.size > 0) model.set(key, { type, members });
          }
          await m.run("HSET", "d", "f", "v");
          for (const s of steps) {
            const name = { union: "ZUNION", inter: "ZINTER", diff: "ZDIFF" }[s.op];
            const weights = s.keys.map((_, i) => WEIGHTS[s.weights[i]!]!);
            const opts =
              s.op === "diff"
                ? []
                : ["WEIGHTS", ...weights.map(formatScore), "AGGREGATE", s.agg.toLowerCase()];
            const want = algebra(model, s.op, s.keys, s.op === "diff" ? s.keys.map(() => 1) : weights, s.agg);
            const n = String(s.keys.length);
            assert.deepEqual(flat(await m.run(name, n, ...s.keys, ...opts, "WITHSCORES")), withScores(want));
            assert.deepEqual(
              flat(await m.run(name, n, ...s.keys, ...opts)),
              want.map(([member]) => member),
            );
            if (s.op === "inter") {
              const all = await m.run("ZINTERCARD", n, ...s.keys, "LIMIT", String(s.limit));
              assert.deepEqual(all, int(s.limit === 0 ? want.length : Math.min(s.limit, want.length)));
            }
            // The STORE form over the destination (sometimes an input, sometimes a hash or a zset).
            const oldId = m.store.get(Buffer.from(s.dest)) === undefined ? null : m.idOf(s.dest);
            assert.deepEqual(await m.run(`${name}STORE`, s.dest, n, ...s.keys, ...opts), int(want.length));
            if (oldId !== null) assert.equal(m.storedItems(oldId), 0, "the old collection's items are gone");
            if (want.length === 0) {
              model.delete(s.dest);
              assert.deepEqual(await m.run("EXISTS", s.dest), int(0));
              continue;
            }
            // Redis stores a result this small compactly, which keeps no -0.
            const stored = want.map(([member, sc]): [string, number] => [
              member,
              want.length <= 128 && sc === 0 ? 0 : sc,
            ]);
            model.set(s.dest, { type: "zset", members: new Map(stored) });
            assert.deepEqual(await m.run("TYPE", s.dest), { k: "status", v: "zset" });
            assert.deepEqual(await m.run("ZCARD", s.dest), int(want.length));
            assert.equal(m.items(s.dest), 2 * want.length, "two items per member, no others");
            assert.deepEqual(
              flat(await m.run("ZRANGE", s.dest, "0", "-1", "WITHSCORES")),
              withScores(stored),
            );
          }
          await m.store.close();
        },
      ),
      { seed: SEED, numRuns: 12 },
    );
  });

  it("answers Redis's errors, in Redis's order: numkeys, the keys' types, then the options", async () => {
    const { store, run } = await machine();
    await run("ZADD", "z", "1", "a", "2", "b");
    await run("SET", "str", "v");
    const cases: Array<[string[], Reply]> = [
      [["ZUNION", "0", "z"], err("ERR at least 1 input key is needed for 'zunion' command")],
      [["ZINTER", "-1", "z"], err("ERR at least 1 input key is needed for 'zinter' command")],
      [["ZDIFFSTORE", "d", "0", "z"], err("ERR at least 1 input key is needed for 'zdiffstore' command")],
      [["ZINTERCARD", "0", "z"], err("ERR at least 1 input key is needed for 'zintercard' command")],
      [["ZUNION", "x", "z"], err("ERR value is not an integer or out of range")],
      [["ZUNION", "+1", "z"], err("ERR value is not an integer or out of range")],
      [["ZUNION", "3", "z", "z"], err("ERR syntax error")],
      [["ZUNIONSTORE", "d", "3", "z", "z"], err("ERR syntax error")],
      [["ZUNION", "2", "z", "str"], err("WRONGTYPE Operation against a key holding the wrong kind of value")],
      [
        ["ZUNION", "2", "str", "z", "WEIGHTS", "x"],
        err("WRONGTYPE Operation against a key holding the wrong kind of value"),
      ],
      [["ZUNION", "2", "z", "z", "WEIGHTS", "1"], err("ERR syntax error")],
      [["ZUNION", "2", "z", "z", "WEIGHTS", "1", "x"], err("ERR weight value is not a float")],
      [["ZINTER", "1", "z", "WEIGHTS", "nan"], err("ERR weight value is not a float")],
      [["ZINTER", "1", "z", "WEIGHTS", "1e400"], err("ERR weight value is not a float")],
      [["ZINTER", "1", "z", "WEIGHTS", " 1"], err("ERR weight value is not a float")],
      [["ZUNION", "1", "z", "AGGREGATE", "AVG"], err("ERR syntax error")],
      [["ZUNION", "1", "z", "AGGREGATE"], err("ERR syntax error")],
      [["ZUNIONSTORE", "d", "1", "z", "WITHSCORES"], err("ERR syntax error")],
      [["ZDIFF", "1", "z", "WEIGHTS", "1"], err("ERR syntax error")],
      [["ZDIFF", "1", "z", "AGGREGATE", "MIN"], err("ERR syntax error")],
      [["ZINTERCARD", "1", "z", "WITHSCORES"], err("ERR syntax error")],
      [["ZINTERCARD", "1", "z", "LIMIT"], err("ERR syntax error")],
      [["ZINTERCARD", "1", "z", "LIMIT", "-1"], err("ERR LIMIT can't be negative")],
      [["ZINTERCARD", "1", "z", "LIMIT", "x"], err("ERR LIMIT can't be negative")],
      [["ZINTERCARD", "1", "z", "WEIGHTS", "1"], err("ERR syntax error")],
      [["ZINTER", "1", "z", "LIMIT", "1"], err("ERR syntax error")],
    ];
    for (const [args, want] of cases) assert.deepEqual(await run(...args), want, args.join(" "));
    assert.deepEqual(await run("EXISTS", "d"), int(0), "a refused STORE form writes nothing");
    // A later option overrides an earlier one, as in Redis; WITHSCORES may repeat.
    assert.deepEqual(
      flat(
        await run(
          "ZUNION",
          "1",
          "z",
          "WEIGHTS",
          "2",
          "AGGREGATE",
          "MIN",
          "WEIGHTS",
          "3",
          "WITHSCORES",
          "withscores",
        ),
      ),
      ["a", "3", "b", "6"],
    );
    await store.close();
  });

  it("handles infinities, NaN and signed zeros as Redis 7.0 does", async () => {
    const { store, run } = await machine();
    await run("ZADD", "i", "inf", "m");
    await run("ZADD", "ni", "-inf", "m");
    await run("ZADD", "ni2", "-inf", "m", "1", "o");
    await run("ZADD", "f", "5", "m");
    await run("ZADD", "p", "1", "m");
    await run("ZADD", "q", "0", "m");
    await run("SADD", "s", "m");
    await run("ZADD", "fa", "1e16", "m", "0", "o");
    await run("ZADD", "fb", "1", "m");
    await run("ZADD", "fc", "1", "m");
    const cases: Array<[string[], string[]]> = [
      // inf + -inf is NaN: Redis counts it 0, and it matters when: inputs go smallest first, ties in order.
      [
        ["ZUNION", "3", "i", "ni", "f"],
        ["m", "5"],
      ],
      [
        ["ZUNION", "3", "i", "f", "ni"],
        ["m", "0"],
      ],
      [
        ["ZUNION", "3", "i", "ni2", "f"],
        ["m", "0", "o", "1"],
      ],
      [
        ["ZINTER", "3", "i", "ni", "f"],
        ["m", "5"],
      ],
      [
        ["ZINTER", "3", "i", "f", "ni"],
        ["m", "0"],
      ],
      // inf × 0: the first input's NaN is 0; a later one's NaN makes a sum 0 and is ignored by MIN and MAX.
      [
        ["ZINTER", "2", "i", "p", "WEIGHTS", "0", "1"],
        ["m", "1"],
      ],
      [
        ["ZINTER", "2", "p", "i", "WEIGHTS", "1", "0"],
        ["m", "0"],
      ],
      [
        ["ZINTER", "2", "p", "i", "WEIGHTS", "1", "0", "AGGREGATE", "MIN"],
        ["m", "1"],
      ],
      [
        ["ZINTER", "2", "p", "i", "WEIGHTS", "1", "0", "AGGREGATE", "MAX"],
        ["m", "1"],
      ],
      [
        ["ZUNION", "2", "i", "p", "WEIGHTS", "0", "1", "AGGREGATE", "MAX"],
        ["m", "1"],
      ],
      // -0 and 0 tie: MIN and MAX keep the earlier.
      [
        ["ZUNION", "2", "q", "q", "WEIGHTS", "-1", "1", "AGGREGATE", "MIN"],
        ["m", "-0"],
      ],
      [
        ["ZUNION", "2", "q", "q", "WEIGHTS", "1", "-1", "AGGREGATE", "MIN"],
        ["m", "0"],
      ],
      [
        ["ZUNION", "2", "q", "q", "WEIGHTS", "-1", "-1"],
        ["m", "-0"],
      ],
      [
        ["ZUNION", "1", "i", "WEIGHTS", "-inf"],
        ["m", "-inf"],
      ],
      // Sums are not associative: 1 + 1 first, then 1e16 (the larger input last), as Redis adds them.
      [
        ["ZUNION", "3", "fa", "fb", "fc"],
        ["o", "0", "m", "10000000000000002"],
      ],
      [
        ["ZINTER", "3", "fa", "fb", "fc"],
        ["m", "10000000000000002"],
      ],
      // A plain set's members score 1.
      [
        ["ZUNION", "2", "s", "f", "WEIGHTS", "5", "1"],
        ["m", "10"],
      ],
      [["ZDIFF", "2", "s", "p"], []],
      [
        ["ZDIFF", "2", "s", "none"],
        ["m", "1"],
      ],
    ];
    for (const [args, want] of cases)
      assert.deepEqual(flat(await run(...args, "WITHSCORES")), want, args.join(" "));
    // Stored, a small result keeps no -0 (Redis's compact encoding); a large one keeps it.
    assert.deepEqual(await run("ZUNIONSTORE", "d", "1", "q", "WEIGHTS", "-1"), int(1));
    assert.deepEqual(await run("ZSCORE", "d", "m"), { k: "double", v: "0" });
    const long = "x".repeat(65);
    await run("ZADD", "l", "0", long, "0", "y");
    assert.deepEqual(await run("ZUNIONSTORE", "d", "1", "l", "WEIGHTS", "-1"), int(2));
    assert.deepEqual(await run("ZSCORE", "d", "y"), { k: "double", v: "-0" });
    await run("ZADD", "big", ...Array.from({ length: 129 }, (_, i) => ["0", `b${i}`]).flat());
    assert.deepEqual(await run("ZINTERSTORE", "d", "1", "big", "WEIGHTS", "-1"), int(129));
    assert.deepEqual(await run("ZSCORE", "d", "b7"), { k: "double", v: "-0" });
    await run("ZREM", "big", "b0");
    assert.deepEqual(await run("ZINTERSTORE", "d", "1", "big", "WEIGHTS", "-1"), int(128));
    assert.deepEqual(await run("ZSCORE", "d", "b7"), { k: "double", v: "0" });
    await store.close();
  });

  it("a STORE form replaces a destination of any type, keeps no expiry, and deletes it for an empty result", async () => {
    const m = await machine();
    await m.run("ZADD", "z", "1", "a", "2", "b");
    await m.run("RPUSH", "list", "x", "y", "z");
    await m.run("SET", "str", "v", "EX", "100");
    const listId = m.idOf("list");
    assert.deepEqual(await m.run("ZUNIONSTORE", "list", "1", "z"), int(2));
    assert.equal(m.storedItems(listId), 0);
    assert.equal(m.items("list"), 4);
    assert.deepEqual(await m.run("ZDIFFSTORE", "str", "1", "z"), int(2));
    assert.deepEqual(await m.run("TTL", "str"), int(-1));
    assert.deepEqual(await m.run("EXPIRE", "z", "100"), int(1));
    assert.deepEqual(await m.run("ZINTERSTORE", "z", "2", "z", "z"), int(2));
    assert.deepEqual(await m.run("TTL", "z"), int(-1), "the destination is new, even when it was an input");
    assert.deepEqual(flat(await m.run("ZRANGE", "z", "0", "-1", "WITHSCORES")), ["a", "2", "b", "4"]);
    const zId = m.idOf("z");
    assert.deepEqual(await m.run("ZDIFFSTORE", "z", "2", "z", "list"), int(0));
    assert.deepEqual(await m.run("EXISTS", "z"), int(0));
    assert.equal(m.storedItems(zId), 0, "an emptied destination leaves no items");
    assert.deepEqual(await m.run("ZINTERSTORE", "nothing", "2", "list", "absent"), int(0));
    assert.deepEqual(await m.run("EXISTS", "nothing"), int(0));
    await m.store.close();
  });

  it("refuses inputs past what one command may combine before reading them, and writes nothing", async () => {
    const m = await machine();
    await m.run("ZADD", "z", "1", "a");
    await m.run("SADD", "s", "a");
    await m.run("SET", "d", "kept");
    // The record claims more members than the limit (only the counts are read before refusing).
    const id = m.idOf("z");
    m.store.writeBatch(m.store.appliedIndex, (w) =>
      w.put(Buffer.from("z"), RecordType.ZSet, 0, encodeCollection(id, MAX_ALGEBRA_MEMBERS + 1), 1),
    );
    const tooMany = err(
      `ERR value is out of range (at most ${MAX_ALGEBRA_MEMBERS} input members at once for this operation)`,
    );
    assert.deepEqual(await m.run("ZUNION", "2", "z", "s"), tooMany);
    assert.deepEqual(await m.run("ZUNIONSTORE", "d", "2", "z", "s"), tooMany);
    assert.deepEqual(await m.run("ZDIFFSTORE", "d", "1", "z"), tooMany);
    assert.deepEqual(await m.run("GET", "d"), { k: "bulk", v: Buffer.from("kept") });
    // An intersection builds at most its smallest input; a difference at most its first.
    assert.deepEqual(flat(await m.run("ZINTER", "2", "z", "s")), ["a"]);
    assert.deepEqual(flat(await m.run("ZDIFF", "2", "s", "z")), []);
    assert.deepEqual(await m.run("ZINTERCARD", "2", "z", "s"), int(1));
    await m.store.close();
  });
});
