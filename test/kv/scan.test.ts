/**
 * SCAN over the state machine: a call visits about COUNT keys even inside a long run of keys that share
 * their first 8 bytes, a full scan returns every key present throughout it, and a cursor the node no
 * longer holds starts over rather than skip keys.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { after, describe, it } from "node:test";
import fc from "fast-check";
import { TABLE_CURSOR_BIT } from "../../src/kv/exec/scan-cursors.js";
import { KvStateMachine, writeEntry } from "../../src/kv/machine.js";
import { KvStore } from "../../src/kv/store.js";
import { EntryType } from "../../src/raft/types.js";

const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

async function machine() {
  const dir = mkdtempSync(path.join(os.tmpdir(), "raftkv-scan-"));
  dirs.push(dir);
  const store = await KvStore.open(dir);
  const m = new KvStateMachine(store);
  let index = 0;
  const write = async (...commands: string[][]) => {
    await m.apply([
      {
        index: ++index,
        term: 1,
        type: EntryType.Normal,
        data: writeEntry(
          1000,
          commands.map((c) => c.map((a) => Buffer.from(a))),
        ),
      },
    ]);
  };
  const scan = (cursor: string, count: number): { next: string; keys: string[] } => {
    const reply = m.read(
      [Buffer.from("SCAN"), Buffer.from(cursor), Buffer.from("COUNT"), Buffer.from(String(count))],
      1000,
    );
    if (reply.k !== "array") throw new Error(`SCAN answered ${reply.k}`);
    const [c, ks] = reply.v;
    if (c?.k !== "bulk" || ks?.k !== "array") throw new Error("SCAN's reply is not [cursor, keys]");
    return {
      next: String(c.v),
      keys: ks.v.map((k) => (k.k === "bulk" ? String(k.v) : "?")),
    };
  };
  const read = (...args: string[]) =>
    m.read(
      args.map((a) => Buffer.from(a)),
      1000,
    );
  return { m, store, write, scan, read };
}

describe("SCAN", () => {
  it("visits about COUNT keys a call inside a run of keys sharing 8 bytes, and returns each once", async () => {
    const { store, write, scan } = await machine();
    const all = Array.from({ length: 500 }, (_, i) => `session:${String(i).padStart(5, "0")}`);
    for (let i = 0; i < all.length; i += 100)
      await write(["MSET", ...all.slice(i, i + 100).flatMap((k) => [k, "v"])]);
    const seen: string[] = [];
    let cursor = "0";
    let calls = 0;
    do {
      const { next, keys } = scan(cursor, 10);
      assert.ok(keys.length <= 10, `a call returned ${keys.length} keys`);
      seen.push(...keys);
      cursor = next;
      calls++;
    } while (cursor !== "0" && calls < 1000);
    assert.deepEqual(seen, all);
    assert.ok(calls >= 50 && calls <= 51, `${calls} calls`);
    await store.close();
  });

  it("returns every key present for the whole scan, whatever is written meanwhile", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.uniqueArray(fc.stringMatching(/^(user:0|user:1|u|\x80bin)[a-c0-9]{0,6}$/), {
          minLength: 1,
          maxLength: 60,
        }),
        fc.array(fc.tuple(fc.boolean(), fc.stringMatching(/^(user:0|user:1|u)[a-c0-9]{0,6}$/)), {
          maxLength: 40,
        }),
        fc.integer({ min: 1, max: 7 }),
        async (initial, changes, count) => {
          const { store, write, scan } = await machine();
          await write(["MSET", ...initial.flatMap((k) => [k, "v"])]);
          const deleted = new Set<string>();
          const seen = new Set<string>();
          let cursor = "0";
          let step = 0;
          do {
            const { next, keys } = scan(cursor, count);
            for (const k of keys) seen.add(k);
            cursor = next;
            const change = changes[step++];
            if (change !== undefined) {
              const [isDelete, key] = change;
              if (isDelete) {
                await write(["DEL", key]);
                deleted.add(key);
              } else await write(["SET", key, "w"]);
            }
          } while (cursor !== "0" && step < 10_000);
          for (const k of initial)
            if (!deleted.has(k)) assert.ok(seen.has(k), `${JSON.stringify(k)} was missed`);
          await store.close();
        },
      ),
      { numRuns: 40, seed: 7 },
    );
  });

  it("starts over from a table cursor the node no longer holds, so nothing is skipped", async () => {
    const { store, write, scan } = await machine();
    await write(["MSET", "session:a", "1", "session:b", "2", "session:c", "3"]);
    const first = scan("0", 1);
    assert.ok(BigInt(first.next) >= TABLE_CURSOR_BIT, "mid-run: a table cursor");
    const unknown = (BigInt(first.next) ^ 1n).toString();
    const again = scan(unknown, 10);
    assert.deepEqual(again.keys, ["session:a", "session:b", "session:c"]);
    assert.equal(again.next, "0");
    await store.close();
  });

  it("KEYS and RANDOMKEY page through a keyspace larger than a page", async () => {
    const { store, write, read } = await machine();
    const all = Array.from({ length: 2500 }, (_, i) => `k${String(i).padStart(5, "0")}`);
    for (let i = 0; i < all.length; i += 500)
      await write(["MSET", ...all.slice(i, i + 500).flatMap((k) => [k, "v"])]);
    const keys = read("KEYS", "*");
    assert.equal(keys.k === "array" && keys.v.length, 2500);
    const picked = new Set<string>();
    for (let i = 0; i < 30; i++) {
      const r = read("RANDOMKEY");
      assert.equal(r.k, "bulk");
      if (r.k === "bulk") picked.add(String(r.v));
    }
    assert.ok([...picked].every((k) => all.includes(k)));
    assert.ok(picked.size > 1, "random picks differ");
    // Every key but the last expired (not yet reaped): the random tries miss, the walk finds it.
    await write(...all.slice(0, -1).map((k) => ["SET", k, "v", "PXAT", "1000"]));
    const last = read("RANDOMKEY");
    assert.deepEqual(last.k === "bulk" && String(last.v), all[all.length - 1]);
    await store.close();
  });
});
