/**
 * WATCH in the state machine: an entry carrying watched keys runs only if none of them changed since
 * it was watched, decided from the replicated state alone (so every replica, a restored one included,
 * decides the same), with Redis 7.0's rules for deletion, re-creation, FLUSHALL and expiry.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { after, describe, it } from "node:test";
import { readAll } from "../../src/engine/state-machine.js";
import { decodeKvEntry, encodeKvEntry } from "../../src/kv/entry-codec.js";
import { FORGET_COMMAND, MAX_KEY_BYTES, REAP_COMMAND } from "../../src/kv/exec/table.js";
import { type KvApplyResult, KvStateMachine, writeEntry } from "../../src/kv/machine.js";
import { KvStore } from "../../src/kv/store.js";
import type { WatchedKey } from "../../src/kv/watch.js";
import { type Entry, EntryType } from "../../src/raft/types.js";

const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

const b = (s: string) => Buffer.from(s);
const cmd = (...args: string[]) => args.map(b);
const OK = { k: "status", v: "OK" };

/** A state machine on a fresh store, fed entries at consecutive indexes. */
async function machine() {
  const dir = mkdtempSync(path.join(os.tmpdir(), "raftkv-watch-"));
  dirs.push(dir);
  const store = await KvStore.open(dir);
  const m = new KvStateMachine(store);
  let index = 0;
  const entry = (now: number, commands: Buffer[][], watches: readonly WatchedKey[] = []): Entry => ({
    index: ++index,
    term: 1,
    type: EntryType.Normal,
    data: writeEntry(now, commands, null, watches),
  });
  return {
    m,
    store,
    entry,
    /** Applies one entry; its result (null: the watched keys had changed). */
    run: async (now: number, commands: Buffer[][], watches: readonly WatchedKey[] = []) =>
      (await m.apply([entry(now, commands, watches)]))[0]!,
    write: async (now: number, ...args: string[]) => (await m.apply([entry(now, [cmd(...args)])]))[0]![0],
    watch: (now: number, ...keys: string[]) => m.watch(keys.map(b), now),
  };
}

/** A transaction that sets `out` to `v`, guarded by `watches`. */
const setOut = (v: string): Buffer[][] => [cmd("SET", "out", v)];

describe("WATCH in the state machine", () => {
  it("an untouched key lets the transaction run; a write to it, even of the same value, aborts it and nothing runs", async () => {
    const s = await machine();
    await s.write(1000, "SET", "k", "v");
    let w = s.watch(1000, "k");
    assert.ok(w[0]!.version > 0);
    assert.deepEqual(await s.run(1000, setOut("1"), w), [OK]);
    w = s.watch(1000, "k");
    await s.write(1000, "SET", "k", "v");
    assert.equal(await s.run(1000, setOut("2"), w), null);
    assert.equal(s.store.get(b("out"))?.payload.toString(), "1");
    await s.store.close();
  });

  it("writes to other keys, and writes that change nothing, do not abort", async () => {
    const s = await machine();
    await s.write(1000, "SET", "k", "v");
    const w = s.watch(1000, "k", "absent");
    await s.write(1000, "SET", "other", "x");
    await s.write(1000, "SET", "k", "y", "NX"); // refused: no change
    await s.write(1000, "PERSIST", "k"); // no TTL: no change
    await s.write(1000, "DEL", "absent"); // nothing to delete
    await s.write(1000, "SET", "absent", "x", "XX"); // refused
    await s.write(1000, "SETRANGE", "k", "0", ""); // nothing to write
    await s.write(1000, "RENAME", "k", "k");
    assert.deepEqual(await s.run(1000, setOut("1"), w), [OK]);
    await s.store.close();
  });

  it("an absent key that is created aborts; created and deleted again aborts too (its tombstone says so)", async () => {
    const s = await machine();
    let w = s.watch(1000, "k");
    assert.equal(w[0]!.version, 0);
    await s.write(1000, "SET", "k", "v");
    assert.equal(await s.run(1000, setOut("1"), w), null);
    w = s.watch(1000, "j");
    await s.write(1000, "SET", "j", "v");
    await s.write(1000, "DEL", "j");
    assert.equal(s.store.get(b("j")), undefined);
    assert.equal(await s.run(1000, setOut("2"), w), null);
    assert.equal(s.store.get(b("out")), undefined);
    await s.store.close();
  });

  it("a SET of an absent key with an expiry already past aborts its watcher, as Redis's set-then-expire does", async () => {
    const s = await machine();
    const w = s.watch(5000, "k");
    assert.equal(w[0]!.version, 0);
    await s.write(5000, "SET", "k", "v", "PXAT", "1000");
    assert.equal(s.store.get(b("k")), undefined, "nothing is stored");
    assert.equal(await s.run(5000, setOut("1"), w), null);
    await s.store.close();
  });

  it("SMOVE breaks a WATCH of its destination even when the destination already held the member", async () => {
    const s = await machine();
    await s.write(1000, "SADD", "src", "m");
    await s.write(1000, "SADD", "dst", "m");
    const w = s.watch(1000, "dst");
    await s.write(1000, "SMOVE", "src", "dst", "m");
    assert.equal(await s.run(1000, setOut("1"), w), null);
    await s.store.close();
  });

  it("a key deleted and written again aborts (its version is new)", async () => {
    const s = await machine();
    await s.write(1000, "SET", "k", "v");
    const w = s.watch(1000, "k");
    await s.write(1000, "DEL", "k");
    await s.write(1000, "SET", "k", "v");
    assert.equal(await s.run(1000, setOut("1"), w), null);
    await s.store.close();
  });

  it("FLUSHALL aborts watchers of keys it removed, not of keys that were absent (as Redis 7.0)", async () => {
    const s = await machine();
    await s.write(1000, "SET", "present", "v");
    await s.write(1000, "SET", "other", "v");
    const present = s.watch(1000, "present");
    const absent = s.watch(1000, "absent");
    const createdLater = s.watch(1000, "later");
    await s.write(1000, "SET", "later", "v");
    await s.write(1000, "FLUSHALL");
    assert.equal(await s.run(1000, setOut("1"), present), null);
    assert.deepEqual(await s.run(1000, setOut("2"), absent), [OK]);
    assert.equal(await s.run(1000, setOut("3"), createdLater), null);
    await s.store.close();
  });

  it("a key live when watched that has expired by the EXEC aborts it, reaped or not", async () => {
    const s = await machine();
    await s.write(1000, "SET", "k", "v", "PXAT", "2000");
    const w = s.watch(1500, "k");
    assert.ok(w[0]!.version > 0);
    assert.deepEqual(await s.run(1999, setOut("1"), w), [OK]);
    const again = s.watch(1500, "k");
    assert.equal(await s.run(2000, setOut("2"), again), null);
    await s.write(2500, REAP_COMMAND, "k");
    assert.equal(s.store.get(b("k")), undefined);
    assert.equal(await s.run(2500, setOut("3"), again), null);
    await s.store.close();
  });

  it("a key already expired when watched counts as absent: its removal is no change, a new write is", async () => {
    const s = await machine();
    await s.write(1000, "SET", "k", "v", "PXAT", "2000");
    const w = s.watch(3000, "k");
    assert.equal(w[0]!.version, 0);
    assert.deepEqual(await s.run(3000, setOut("1"), w), [OK]);
    await s.write(3000, REAP_COMMAND, "k");
    assert.deepEqual(await s.run(3000, setOut("2"), w), [OK]);
    const w2 = s.watch(3000, "j");
    await s.write(1000, "SET", "j", "v", "PXAT", "2000");
    const w3 = s.watch(3000, "j"); // stored, expired: absent
    await s.write(3000, "DEL", "j"); // a write's lookup removes the expired key
    assert.equal(await s.run(3000, setOut("3"), w2), null, "j was written after w2");
    assert.deepEqual(await s.run(3000, setOut("4"), w3), [OK]);
    await s.write(3000, "SET", "j", "new");
    assert.equal(await s.run(3000, setOut("5"), w3), null);
    await s.store.close();
  });

  it("the check sees earlier entries of the same apply batch, and runs before the transaction's own commands", async () => {
    const s = await machine();
    const w = s.watch(1000, "k");
    const results = await s.m.apply([
      s.entry(1000, [cmd("SET", "k", "v")]),
      s.entry(1000, setOut("1"), w),
      s.entry(1000, [cmd("SET", "k2", "v")]),
    ]);
    assert.deepEqual(results, [[OK], null, [OK]]);
    // The transaction's own write to a watched key is no reason to abort it.
    const w2 = s.watch(1000, "k");
    assert.deepEqual(await s.run(1000, [cmd("SET", "k", "again"), cmd("GET", "k")], w2), [
      OK,
      { k: "bulk", v: b("again") },
    ]);
    await s.store.close();
  });

  it("a watched key longer than the store takes cannot change (and does not make LMDB throw)", async () => {
    const s = await machine();
    const long: WatchedKey = { key: Buffer.alloc(MAX_KEY_BYTES + 2000, 0x61), version: 0, seenAt: 0 };
    assert.deepEqual(await s.run(1000, setOut("1"), [long]), [OK]);
    assert.equal(s.m.watch([long.key], 1000)[0]!.version, 0);
    await s.store.close();
  });

  it("a WATCH older than the tombstone horizon of an absent key aborts (its tombstones may be forgotten)", async () => {
    const s = await machine();
    const old = s.watch(1000, "k");
    await s.write(1000, "SET", "other", "v");
    await s.write(1000, "DEL", "other");
    assert.equal(s.store.tombstoneEntries().length, 1);
    assert.deepEqual(await s.write(70_000, FORGET_COMMAND, "10000"), { k: "int", v: 1 });
    assert.equal(s.store.tombstoneEntries().length, 0);
    assert.ok(s.store.tombstoneHorizon() > old[0]!.seenAt);
    assert.equal(await s.run(70_000, setOut("1"), old), null);
    // A present key's version is exact whatever the horizon; a fresh WATCH of an absent key is too.
    assert.deepEqual(await s.run(70_000, setOut("2"), s.watch(70_000, "k", "out")), [OK]);
    await s.store.close();
  });

  it("a read-only transaction checks the same way", async () => {
    const s = await machine();
    await s.write(1000, "SET", "k", "v");
    const w = s.watch(1000, "k");
    assert.deepEqual(s.m.readWatched(w, [cmd("GET", "k")], 1000), [{ k: "bulk", v: b("v") }]);
    await s.write(1000, "APPEND", "k", "");
    assert.equal(s.m.readWatched(w, [cmd("GET", "k")], 1000), null);
    assert.equal(s.m.readWatched(w, [], 1000), null);
    await s.store.close();
  });

  it("every replica decides the same, one restored from a snapshot midway included", async () => {
    const a = await machine();
    const replica = await machine();
    const log: Entry[] = [];
    const feed = async (e: Entry) => {
      log.push(e);
      return a.m.apply([e]);
    };
    await feed(a.entry(1000, [cmd("SET", "k", "v")]));
    await feed(a.entry(1000, [cmd("SET", "gone", "v")]));
    const wk = a.watch(1000, "k", "gone", "never");
    const wGone = a.watch(1000, "gone");
    await feed(a.entry(1000, [cmd("DEL", "gone")]));
    // The replica starts from a snapshot taken here: versions and tombstones travel with it.
    const h = a.store.snapshot();
    const bytes = await readAll(h.read());
    h.release();
    await replica.store.restore(
      (async function* () {
        yield bytes;
      })(),
      log.length,
    );
    const rest = [
      a.entry(1000, setOut("a"), wk),
      a.entry(1000, [cmd("SET", "gone", "back")]),
      a.entry(1000, setOut("b"), wGone),
      a.entry(1000, setOut("c"), a.watch(1000, "k")),
    ];
    const ours: KvApplyResult[] = [];
    const theirs: KvApplyResult[] = [];
    for (const e of rest) {
      ours.push(...(await a.m.apply([e])));
      theirs.push(...(await replica.m.apply([e])));
    }
    assert.deepEqual(ours, [null, [OK], null, [OK]]);
    assert.deepEqual(theirs, ours);
    assert.deepEqual(replica.store.entries(), a.store.entries());
    assert.deepEqual(replica.store.tombstoneEntries(), a.store.tombstoneEntries());
    await Promise.all([a.store.close(), replica.store.close()]);
  });
});

describe("the key-value entry with watched keys", () => {
  it("round-trips, and an entry of version 1 (no watched keys) still decodes", () => {
    const watches: WatchedKey[] = [
      { key: b("k"), version: 7, seenAt: 9 },
      { key: b(""), version: 0, seenAt: 2 ** 40 },
    ];
    const e = decodeKvEntry(encodeKvEntry(1234, [cmd("SET", "a", "b")], { node: 2, seq: 5 }, watches));
    assert.deepEqual(e, {
      nowMs: 1234,
      origin: { node: 2, seq: 5 },
      watches,
      commands: [cmd("SET", "a", "b")],
    });
    // Version 1: the same header, then the commands.
    const v1 = Buffer.concat([
      Buffer.from([1]),
      Buffer.from("00000000000004d2", "hex"),
      Buffer.alloc(12),
      Buffer.from("00000001000000010000000450494e47", "hex"),
    ]);
    assert.deepEqual(decodeKvEntry(v1), { nowMs: 1234, origin: null, watches: [], commands: [cmd("PING")] });
  });
});
