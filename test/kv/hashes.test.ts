import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { MAX_ITEM_BYTES } from "../../src/kv/exec/collections.js";
import { kvMachine } from "../helpers/kv-machine.js";
import { tempDirs } from "../helpers/temp-dirs.js";

const tempDir = tempDirs("raftkv-hash-");

const machine = (dir = tempDir()) => kvMachine(dir);

const int = (v: number) => ({ k: "int", v });
const bulk = (s: string) => ({ k: "bulk", v: Buffer.from(s) });
const wrongType = { k: "error", v: "WRONGTYPE Operation against a key holding the wrong kind of value" };

describe("hashes in the key-value machine", () => {
  it("count their fields in the record and keep one item per field", async () => {
    const { store, run, storedItems, idOf } = await machine();
    assert.deepEqual(await run("HSET", "h", "a", "1", "b", "2", "a", "3"), int(2));
    assert.deepEqual(await run("HGET", "h", "a"), bulk("3"));
    assert.deepEqual(await run("HLEN", "h"), int(2));
    assert.equal(storedItems(idOf("h")), 2);
    assert.deepEqual(await run("HSETNX", "h", "a", "x"), int(0));
    assert.deepEqual(await run("HSETNX", "h", "c", "x"), int(1));
    assert.deepEqual(await run("HDEL", "h", "a", "nope", "a"), int(1));
    assert.deepEqual(await run("HLEN", "h"), int(2));
    assert.deepEqual(await run("TYPE", "h"), { k: "status", v: "hash" });
    assert.deepEqual(await run("HGETALL", "h"), {
      k: "map",
      v: [
        [bulk("b"), bulk("2")],
        [bulk("c"), bulk("x")],
      ],
    });
    const id = idOf("h");
    // The last field deleted deletes the key, and leaves no item behind.
    assert.deepEqual(await run("HDEL", "h", "b", "c"), int(2));
    assert.deepEqual(await run("EXISTS", "h"), int(0));
    assert.equal(storedItems(id), 0);
    await store.close();
  });

  it("answer WRONGTYPE on a string, and string commands answer it on a hash", async () => {
    const { store, run } = await machine();
    await run("SET", "s", "v");
    await run("HSET", "h", "f", "v");
    for (const cmd of [
      ["HSET", "s", "f", "v"],
      ["HGET", "s", "f"],
      ["HGETALL", "s"],
      ["HDEL", "s", "f"],
      ["HINCRBY", "s", "f", "1"],
      ["HLEN", "s"],
      ["GET", "h"],
      ["APPEND", "h", "x"],
      ["INCR", "h"],
      ["STRLEN", "h"],
    ])
      assert.deepEqual(await run(...cmd), wrongType, cmd.join(" "));
    await store.close();
  });

  it("leave no items behind when the key is deleted, overwritten, expired or flushed; RENAME and EXPIRE keep them", async () => {
    const { store, run, storedItems, idOf, advance } = await machine();
    await run("HSET", "h", "a", "1", "b", "2");
    let id = idOf("h");
    await run("DEL", "h");
    assert.equal(storedItems(id), 0);

    await run("HSET", "h", "a", "1");
    id = idOf("h");
    await run("SET", "h", "now a string");
    assert.equal(storedItems(id), 0);

    await run("HSET", "h2", "a", "1", "b", "2");
    id = idOf("h2");
    await run("EXPIRE", "h2", "10");
    assert.equal(idOf("h2"), id);
    assert.equal(storedItems(id), 2);
    await run("RENAME", "h2", "h3");
    assert.equal(idOf("h3"), id, "the renamed hash is the same collection");
    assert.deepEqual(await run("HGET", "h3", "b"), bulk("2"));
    assert.equal(storedItems(id), 2);
    // RENAME over another hash drops the one replaced.
    await run("HSET", "h4", "z", "9");
    const replaced = idOf("h4");
    await run("RENAME", "h3", "h4");
    assert.equal(storedItems(replaced), 0);
    assert.deepEqual(await run("HGET", "h4", "a"), bulk("1"));
    // Expired: invisible at once, and its items go when a write meets it.
    advance(11_000);
    assert.deepEqual(await run("HGET", "h4", "a"), { k: "nil" });
    await run("HSET", "h4", "new", "1");
    assert.equal(storedItems(id), 0);
    assert.deepEqual(await run("HLEN", "h4"), int(1));

    await run("HSET", "x", "a", "1");
    id = idOf("x");
    await run("FLUSHDB");
    assert.equal(storedItems(id), 0);
    await store.close();
  });

  it("a new hash under an old name never sees the old one's fields", async () => {
    const { store, run, idOf } = await machine();
    await run("HSET", "h", "a", "1");
    const first = idOf("h");
    await run("DEL", "h");
    await run("HSET", "h", "b", "2");
    assert.notEqual(idOf("h"), first);
    assert.deepEqual(await run("HGETALL", "h"), { k: "map", v: [[bulk("b"), bulk("2")]] });
    await store.close();
  });

  it("HINCRBY and HINCRBYFLOAT with Redis's errors", async () => {
    const { store, run } = await machine();
    assert.deepEqual(await run("HINCRBY", "h", "n", "5"), { k: "int", v: 5n });
    assert.deepEqual(await run("HINCRBY", "h", "n", "-7"), { k: "int", v: -2n });
    assert.deepEqual(await run("HINCRBY", "h", "n", "x"), {
      k: "error",
      v: "ERR value is not an integer or out of range",
    });
    await run("HSET", "h", "s", "abc", "big", "9223372036854775807");
    assert.deepEqual(await run("HINCRBY", "h", "s", "1"), {
      k: "error",
      v: "ERR hash value is not an integer",
    });
    assert.deepEqual(await run("HINCRBY", "h", "big", "1"), {
      k: "error",
      v: "ERR increment or decrement would overflow",
    });
    assert.deepEqual(await run("HINCRBYFLOAT", "h", "f", "1.5"), bulk("1.5"));
    assert.deepEqual(await run("HINCRBYFLOAT", "h", "f", "0.25"), bulk("1.75"));
    assert.deepEqual(await run("HINCRBYFLOAT", "h", "s", "1"), {
      k: "error",
      v: "ERR hash value is not a float",
    });
    assert.deepEqual(await run("HINCRBYFLOAT", "h", "f", "inf"), {
      k: "error",
      v: "ERR value is NaN or Infinity",
    });
    const largest = "1.18973149535723176502e4932";
    await run("HINCRBYFLOAT", "h", "huge", largest);
    assert.deepEqual(await run("HINCRBYFLOAT", "h", "huge", largest), {
      k: "error",
      v: "ERR increment would produce NaN or Infinity",
    });
    assert.deepEqual(await run("HLEN", "h"), int(5));
    await store.close();
  });

  it("refuses a field past MAX_ITEM_BYTES and an odd HSET, changing nothing", async () => {
    const { store, run } = await machine();
    const long = "f".repeat(MAX_ITEM_BYTES + 1);
    assert.deepEqual(await run("HSET", "h", "ok", "1", long, "2"), {
      k: "error",
      v: `ERR hash field is too long (at most ${MAX_ITEM_BYTES} bytes)`,
    });
    assert.deepEqual(await run("HSET", "h", "a", "1", "b"), {
      k: "error",
      v: "ERR wrong number of arguments for 'hset' command",
    });
    assert.deepEqual(await run("EXISTS", "h"), int(0));
    assert.deepEqual(await run("HSET", "h", "f".repeat(MAX_ITEM_BYTES), "v"), int(1));
    await store.close();
  });

  it("a field or member longer than LMDB's keys is simply absent to every lookup (a write does not throw in apply)", async () => {
    const { store, run } = await machine();
    await run("HSET", "h", "a", "1");
    await run("SADD", "s", "a");
    await run("ZADD", "z", "1", "a");
    const long = "x".repeat(5000);
    assert.deepEqual(await run("HDEL", "h", long), int(0));
    assert.deepEqual(await run("HGET", "h", long), { k: "nil" });
    assert.deepEqual(await run("HEXISTS", "h", long), int(0));
    assert.deepEqual(await run("SREM", "s", long), int(0));
    assert.deepEqual(await run("SISMEMBER", "s", long), int(0));
    assert.deepEqual(await run("ZSCORE", "z", long), { k: "nil" });
    assert.deepEqual(await run("ZREM", "z", long), int(0));
    assert.deepEqual(await run("SMOVE", "s", "t", long), int(0));
    assert.deepEqual(await run("HLEN", "h"), int(1));
    await store.close();
  });

  it("an empty field or member is stored, and survives a snapshot and restore", async () => {
    const { store, run } = await machine();
    await run("HSET", "h", "", "empty field");
    await run("SADD", "s", "");
    const h = store.snapshot();
    const chunks: Uint8Array[] = [];
    for await (const c of h.read()) chunks.push(c);
    h.release();
    const other = await machine();
    await other.store.restore(
      (async function* () {
        yield* chunks;
      })(),
      store.appliedIndex,
    );
    assert.deepEqual(await other.run("HGET", "h", ""), bulk("empty field"));
    assert.deepEqual(await other.run("SISMEMBER", "s", ""), int(1));
    await Promise.all([store.close(), other.store.close()]);
  });

  it("HRANDFIELD: one field, distinct fields for a positive count, exactly |count| for a negative one, with values", async () => {
    const { store, run } = await machine();
    const fields = Array.from({ length: 20 }, (_, i) => `f${i}`);
    await run("HSET", "h", ...fields.flatMap((f) => [f, `v-${f}`]));
    const one = await run("HRANDFIELD", "h");
    assert.ok(one.k === "bulk" && fields.includes(one.v.toString()));
    const distinct = await run("HRANDFIELD", "h", "5");
    assert.ok(distinct.k === "array" && distinct.v.length === 5);
    const names = distinct.v.map((r) => (r.k === "bulk" ? r.v.toString() : ""));
    assert.equal(new Set(names).size, 5);
    assert.ok(names.every((n) => fields.includes(n)));
    const repeated = await run("HRANDFIELD", "h", "-50");
    assert.ok(repeated.k === "array" && repeated.v.length === 50);
    const withValues = await run("HRANDFIELD", "h", "3", "WITHVALUES");
    assert.ok(withValues.k === "scored" && withValues.v.length === 3);
    for (const [f, v] of withValues.v)
      assert.ok(f.k === "bulk" && v.k === "bulk" && v.v.toString() === `v-${f.v.toString()}`);
    assert.deepEqual(await run("HRANDFIELD", "nope"), { k: "nil" });
    await store.close();
  });

  it("survive a reopen with their fields and the next collection id", async () => {
    const dir = tempDir();
    const first = await machine(dir);
    await first.run("HSET", "h", "a", "1", "b", "2");
    const id = first.idOf("h");
    await first.store.close();
    const again = await machine(dir);
    assert.deepEqual(await again.run("HGET", "h", "b"), bulk("2"));
    await again.run("HSET", "g", "x", "1");
    assert.ok(again.idOf("g") > id, "ids are never given out twice");
    await again.store.close();
  });
});
