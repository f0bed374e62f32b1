import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import type { Reply } from "../../src/kv/reply.js";
import { kvMachine } from "../helpers/kv-machine.js";
import { tempDirs } from "../helpers/temp-dirs.js";

const SEED = Number(process.env.RAFTKV_PROPERTY_SEED ?? 424242);
const tempDir = tempDirs("raftkv-list-");

async function machine() {
  const k = await kvMachine(tempDir(), 1000);
  return { store: k.store, run: k.run, items: k.itemsOf };
}

const text = (r: Reply): string[] => {
  if (r.k === "bulk") return [r.v.toString()];
  if (r.k === "array") return r.v.flatMap(text);
  return [];
};

describe("lists in the key-value machine", () => {
  it("agree with an array through pushes and pops at both ends, trims, sets and moves, one item per element", async () => {
    const op = fc.oneof(
      fc.tuple(fc.constantFrom("LPUSH", "RPUSH"), fc.array(fc.nat(99), { minLength: 1, maxLength: 40 })),
      fc.tuple(fc.constantFrom("LPOP", "RPOP"), fc.integer({ min: 1, max: 60 })),
      fc.tuple(
        fc.constant("LTRIM"),
        fc.tuple(fc.integer({ min: -80, max: 80 }), fc.integer({ min: -80, max: 80 })),
      ),
      fc.tuple(fc.constant("LSET"), fc.tuple(fc.integer({ min: -80, max: 80 }), fc.nat(99))),
      fc.tuple(fc.constant("RPOPLPUSH"), fc.constant(0)),
      fc.tuple(fc.constant("LREM"), fc.tuple(fc.integer({ min: -3, max: 3 }), fc.nat(99))),
      fc.tuple(fc.constant("LINSERT"), fc.tuple(fc.boolean(), fc.nat(99), fc.nat(99))),
    );
    await fc.assert(
      // "max": fast-check keeps arrays to about 10 unless told.
      fc.asyncProperty(fc.array(op, { maxLength: 40, size: "max" }), async (ops) => {
        const { store, run, items } = await machine();
        let model: string[] = [];
        for (const [name, a] of ops) {
          if (name === "LPUSH" || name === "RPUSH") {
            const es = (a as number[]).map((e) => `e${e}`);
            await run(name, "l", ...es);
            model = name === "LPUSH" ? [...[...es].reverse(), ...model] : [...model, ...es];
          } else if (name === "LPOP" || name === "RPOP") {
            const n = a as number;
            const got = text(await run(name, "l", String(n)));
            const want = name === "LPOP" ? model.slice(0, n) : [...model].reverse().slice(0, n);
            assert.deepEqual(got, want);
            model = name === "LPOP" ? model.slice(n) : model.slice(0, Math.max(0, model.length - n));
          } else if (name === "LTRIM") {
            const [s, e] = a as [number, number];
            await run("LTRIM", "l", String(s), String(e));
            const len = model.length;
            let lo = s < 0 ? len + s : s;
            let hi = e < 0 ? len + e : e;
            if (lo < 0) lo = 0;
            if (hi >= len) hi = len - 1;
            model = lo > hi || lo >= len ? [] : model.slice(lo, hi + 1);
          } else if (name === "LSET") {
            const [i, v] = a as [number, number];
            const r = await run("LSET", "l", String(i), `s${v}`);
            const at = i < 0 ? model.length + i : i;
            if (model.length === 0) assert.deepEqual(r, { k: "error", v: "ERR no such key" });
            else if (at < 0 || at >= model.length)
              assert.deepEqual(r, { k: "error", v: "ERR index out of range" });
            else model[at] = `s${v}`;
          } else if (name === "LREM") {
            const [n, v] = a as [number, number];
            const target = `e${v}`;
            const hits = model.map((e, i) => (e === target ? i : -1)).filter((i) => i >= 0);
            const drop = new Set(n > 0 ? hits.slice(0, n) : n < 0 ? hits.slice(n) : hits);
            assert.deepEqual(await run("LREM", "l", String(n), target), { k: "int", v: drop.size });
            model = model.filter((_, i) => !drop.has(i));
          } else if (name === "LINSERT") {
            const [before, p, v] = a as [boolean, number, number];
            const r = await run("LINSERT", "l", before ? "BEFORE" : "AFTER", `e${p}`, `i${v}`);
            const at = model.indexOf(`e${p}`);
            if (model.length === 0) assert.deepEqual(r, { k: "int", v: 0 });
            else if (at < 0) assert.deepEqual(r, { k: "int", v: -1 });
            else {
              model.splice(before ? at : at + 1, 0, `i${v}`);
              assert.deepEqual(r, { k: "int", v: model.length });
            }
          } else {
            const got = text(await run("RPOPLPUSH", "l", "l"));
            if (model.length > 0) {
              assert.deepEqual(got, [model[model.length - 1]]);
              model = [model[model.length - 1]!, ...model.slice(0, -1)];
            }
          }
          assert.deepEqual(text(await run("LRANGE", "l", "0", "-1")), model);
          assert.equal(items("l"), model.length);
          if (model.length > 0)
            assert.deepEqual(text(await run("LINDEX", "l", String(-1))), [model[model.length - 1]]);
        }
        await store.close();
      }),
      { seed: SEED, numRuns: 40 },
    );
  });

  it("LRANGE of a list longer than a page, and pops on an empty key answer as Redis does", async () => {
    const { store, run } = await machine();
    const all = Array.from({ length: 1000 }, (_, i) => `v${i}`);
    for (let i = 0; i < all.length; i += 100) await run("RPUSH", "l", ...all.slice(i, i + 100));
    assert.deepEqual(text(await run("LRANGE", "l", "250", "-251")), all.slice(250, 750));
    assert.deepEqual(await run("LPOP", "nope"), { k: "nil" });
    assert.deepEqual(await run("LPOP", "nope", "2"), { k: "nilArray" });
    assert.deepEqual(await run("LPOP", "l", "0"), { k: "array", v: [] });
    assert.deepEqual(await run("LPOP", "l", "-1"), {
      k: "error",
      v: "ERR value is out of range, must be positive",
    });
    await store.close();
  });
});
