import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { decodeCollection } from "../../src/kv/record.js";
import type { Reply } from "../../src/kv/reply.js";
import { kvMachine } from "../helpers/kv-machine.js";
import { tempDirs } from "../helpers/temp-dirs.js";

const SEED = Number(process.env.RAFTKV_PROPERTY_SEED ?? 424242);
const tempDir = tempDirs("raftkv-set-");

/** A replica: a store and its machine; `run` applies writes as the next entry at the time given. */
async function replica() {
  const k = await kvMachine(tempDir());
  return { store: k.store, run: k.runAt };
}

const text = (r: Reply): string[] => {
  if (r.k === "bulk") return [r.v.toString()];
  if (r.k === "array" || r.k === "set") return r.v.flatMap(text);
  return [];
};

describe("sets in the key-value machine", () => {
  it("SPOP pops the same members on every replica (its choice comes from the entry), and a different one later", async () => {
    const a = await replica();
    const b = await replica();
    const members = Array.from({ length: 50 }, (_, i) => `m${i}`);
    for (const r of [a, b]) await r.run(1000, "SADD", "s", ...members);
    const popped: string[][] = [];
    for (const r of [a, b])
      popped.push([...text(await r.run(2000, "SPOP", "s", "5")), ...text(await r.run(2001, "SPOP", "s"))]);
    assert.deepEqual(popped[0], popped[1]);
    assert.equal(new Set(popped[0]).size, 6);
    assert.deepEqual(text(await a.run(3000, "SMEMBERS", "s")), text(await b.run(3000, "SMEMBERS", "s")));
    assert.deepEqual(await a.run(3000, "SCARD", "s"), { k: "int", v: 44 });
    // Not always the first members: the draw depends on the entry.
    assert.notDeepEqual(popped[0]!.slice(0, 5).sort(), members.slice(0, 5).sort());
    await Promise.all([a.store.close(), b.store.close()]);
  });

  it("SMOVE, the STORE forms over any type, SINTERCARD's LIMIT, and empty sets deleted", async () => {
    const { store, run } = await replica();
    await run(1, "SADD", "a", "x", "y", "z");
    await run(1, "SADD", "b", "y", "z", "w");
    assert.deepEqual(await run(1, "SMOVE", "a", "b", "x"), { k: "int", v: 1 });
    assert.deepEqual(await run(1, "SMOVE", "a", "b", "x"), { k: "int", v: 0 });
    assert.deepEqual(text(await run(1, "SMEMBERS", "b")), ["w", "x", "y", "z"]);
    await run(1, "SET", "dest", "a string");
    assert.deepEqual(await run(1, "SINTERSTORE", "dest", "a", "b"), { k: "int", v: 2 });
    assert.deepEqual(await run(1, "TYPE", "dest"), { k: "status", v: "set" });
    assert.deepEqual(await run(1, "SINTERCARD", "2", "a", "b", "LIMIT", "1"), { k: "int", v: 1 });
    assert.deepEqual(await run(1, "SDIFFSTORE", "dest", "a", "b"), { k: "int", v: 0 });
    assert.deepEqual(await run(1, "EXISTS", "dest"), { k: "int", v: 0 }, "an empty result deletes it");
    assert.deepEqual(await run(1, "SREM", "a", "y", "z"), { k: "int", v: 2 });
    assert.deepEqual(await run(1, "EXISTS", "a"), { k: "int", v: 0 });
    await store.close();
  });

  it("SSCAN and HSCAN return every member present throughout, whatever changes between calls", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 0, max: 60 }),
        fc.integer({ min: 1, max: 7 }),
        fc.array(fc.tuple(fc.boolean(), fc.integer({ min: 0, max: 80 })), { maxLength: 30 }),
        async (size, count, changes) => {
          const { store, run } = await replica();
          const name = (i: number) => `e${String(i).padStart(3, "0")}`;
          const initial = Array.from({ length: size }, (_, i) => name(i));
          if (size > 0) {
            await run(1, "SADD", "s", ...initial);
            await run(1, "HSET", "h", ...initial.flatMap((f) => [f, `v${f}`]));
          }
          const removed = new Set<string>();
          for (const [command, key] of [
            ["SSCAN", "s"],
            ["HSCAN", "h"],
          ] as const) {
            const seen = new Set<string>();
            let cursor = "0";
            let step = 0;
            do {
              const reply = await run(1, command, key, cursor, "COUNT", String(count));
              assert.ok(reply.k === "array");
              cursor = text(reply.v[0]!)[0]!;
              const items = text(reply.v[1]!);
              for (let i = 0; i < items.length; i += command === "HSCAN" ? 2 : 1) seen.add(items[i]!);
              // Between calls, members come and go.
              const change = changes[step++];
              if (change !== undefined && size > 0) {
                const [add, i] = change;
                if (add) {
                  await run(1, "SADD", "s", name(i));
                  await run(1, "HSET", "h", name(i), "v");
                } else if (i < size) {
                  removed.add(name(i));
                  await run(1, "SREM", "s", name(i));
                  await run(1, "HDEL", "h", name(i));
                }
              }
            } while (cursor !== "0");
            for (const m of initial) if (!removed.has(m)) assert.ok(seen.has(m), `${command} missed ${m}`);
          }
          await store.close();
        },
      ),
      { seed: SEED, numRuns: 40 },
    );
  });

  it("HSCAN and SSCAN of an absent key answer an empty scan before reading the options, as Redis does", async () => {
    const { store, run } = await replica();
    for (const c of ["HSCAN", "SSCAN"]) {
      const r = await run(1, c, "nope", "0", "COUNT", "x");
      assert.equal(r.k, "array");
      assert.deepEqual(text(r), ["0"]);
      assert.deepEqual(await run(1, c, "nope", "x"), { k: "error", v: "ERR invalid cursor" });
    }
    await store.close();
  });

  it("a member too long for the store is refused, and nothing changes", async () => {
    const { store, run } = await replica();
    const long = "m".repeat(1025);
    assert.deepEqual(await run(1, "SADD", "s", "ok", long), {
      k: "error",
      v: "ERR set member is too long (at most 1024 bytes)",
    });
    assert.deepEqual(await run(1, "EXISTS", "s"), { k: "int", v: 0 });
    const r = store.get(Buffer.from("s"));
    assert.equal(r, undefined);
    await run(1, "SADD", "s", "m".repeat(1024));
    assert.equal(decodeCollection(store.get(Buffer.from("s"))!.payload).count, 1);
    await store.close();
  });
});
