import assert from "node:assert/strict";
import { cpSync, existsSync, readdirSync, rmSync } from "node:fs";
import * as path from "node:path";
import { describe, it } from "node:test";
import fc from "fast-check";
import { readAll } from "../../src/engine/state-machine.js";
import { KvSnapshotFormatError } from "../../src/kv/errors.js";
import { MAX_KEY_BYTES, REAP_COMMAND } from "../../src/kv/exec/table.js";
import { KvStateMachine, writeEntry } from "../../src/kv/machine.js";
import { decodeCollection, encodeCollection, RecordType } from "../../src/kv/record.js";
import { KvStore } from "../../src/kv/store.js";
import { EntryType } from "../../src/raft/types.js";
import { tempDirs } from "../helpers/temp-dirs.js";

const SEED = Number(process.env.RAFTKV_PROPERTY_SEED ?? 424242);
const tempDir = tempDirs("raftkv-kv-");

const b = (s: string) => Buffer.from(s);

async function* chunksOf(parts: readonly Uint8Array[]): AsyncGenerator<Uint8Array> {
  for (const p of parts) yield p;
}

async function snapshotBytes(store: KvStore): Promise<Uint8Array> {
  const h = store.snapshot();
  try {
    return await readAll(h.read());
  } finally {
    h.release();
  }
}

/** What a store holds, comparable with deepEqual. */
function image(store: KvStore) {
  return {
    applied: store.appliedIndex,
    keys: store
      .entries()
      .map(([k, r]) => [k.toString("hex"), r.type, r.expireAtMs, r.version, r.payload.toString("hex")]),
    expired: store.expiredKeys(Number.MAX_SAFE_INTEGER - 1, 1_000_000).map((k) => k.toString("hex")),
    tombstones: store.tombstoneEntries().map(([k, t]) => [k.toString("hex"), t.version, t.deletedAtMs]),
    // Each collection's items.
    items: store
      .entries()
      .filter(([, r]) => r.type !== RecordType.String)
      .map(([k, r]) => [
        k.toString("hex"),
        store
          .items(decodeCollection(r.payload).id, null, 1_000_000)
          .map(([f, v]) => [f.toString("hex"), v.toString("hex")]),
      ]),
    horizon: store.tombstoneHorizon(),
    // The tombstones' index by time: what is due to be forgotten.
    due: [0, 2 ** 20, 2 ** 40, Number.MAX_SAFE_INTEGER - 1].map((t) => store.hasTombstonesBefore(t)),
  };
}

describe("KvStore", () => {
  it("a batch's writes and its applied index survive a reopen together", async () => {
    const dir = tempDir();
    const s = await KvStore.open(dir);
    const replies = s.writeBatch(7, (w) => {
      w.put(b("a"), RecordType.String, 0, b("1"), 1);
      w.put(b("b"), RecordType.String, 0, b("2"), 1);
      return [w.delete(b("b"), 1000), w.delete(b("missing"), 1000), w.get(b("a"))?.payload.toString()];
    });
    assert.deepEqual(replies, [true, false, "1"]);
    await s.close();
    const again = await KvStore.open(dir);
    assert.equal(again.appliedIndex, 7);
    assert.equal(again.get(b("a"))?.payload.toString(), "1");
    assert.equal(again.get(b("b")), undefined);
    await again.close();
  });

  it("a batch that throws half-way leaves nothing of itself, on the async path too, and the store goes on", async () => {
    const dir = tempDir();
    const s = await KvStore.open(dir);
    await s.writeBatchAsync(3, (w) => w.put(b("kept"), RecordType.String, 0, b("1"), 3));
    for (const write of [
      (fn: Parameters<typeof s.writeBatch>[1]) => Promise.resolve().then(() => s.writeBatch(4, fn)),
      (fn: Parameters<typeof s.writeBatch>[1]) => s.writeBatchAsync(4, fn),
    ])
      await assert.rejects(
        write((w) => {
          w.put(b("half"), RecordType.String, 0, b("2"), 4);
          w.delete(b("kept"), 1000);
          throw new Error("a command failed (injected)");
        }),
        /injected/,
      );
    assert.equal(s.get(b("half")), undefined);
    assert.equal(s.get(b("kept"))?.payload.toString(), "1");
    assert.equal(s.appliedIndex, 3);
    await s.writeBatchAsync(5, (w) => w.put(b("after"), RecordType.String, 0, b("3"), 5));
    await s.close();
    const again = await KvStore.open(dir);
    assert.equal(again.appliedIndex, 5);
    assert.equal(again.get(b("half")), undefined);
    assert.equal(again.get(b("kept"))?.payload.toString(), "1");
    assert.equal(again.get(b("after"))?.payload.toString(), "3");
    await again.close();
  });

  it("the expiry index follows puts, overwrites and deletes, soonest first", async () => {
    const s = await KvStore.open(tempDir());
    s.writeBatch(1, (w) => {
      w.put(b("x"), RecordType.String, 3000, b("x"), 1);
      w.put(b("y"), RecordType.String, 1000, b("y"), 1);
      w.put(b("z"), RecordType.String, 2000, b("z"), 1);
      w.put(b("p"), RecordType.String, 0, b("p"), 1);
    });
    assert.deepEqual(s.expiredKeys(2500, 10).map(String), ["y", "z"]);
    s.writeBatch(2, (w) => {
      w.put(b("y"), RecordType.String, 0, b("y2"), 1); // persisted: out of the index
      w.put(b("x"), RecordType.String, 500, b("x2"), 1); // expires sooner now
      w.delete(b("z"), 1000);
    });
    assert.deepEqual(s.expiredKeys(2500, 10).map(String), ["x"]);
    assert.deepEqual(s.expiredKeys(400, 10).map(String), []);
    await s.close();
  });

  it("a snapshot is the state when it was taken, while writes go on", async () => {
    const s = await KvStore.open(tempDir());
    s.writeBatch(1, (w) => w.put(b("k"), RecordType.String, 0, b("before"), 1));
    const h = s.snapshot();
    s.writeBatch(2, (w) => {
      w.put(b("k"), RecordType.String, 0, b("after"), 2);
      w.put(b("new"), RecordType.String, 0, b("v"), 2);
    });
    const bytes = await readAll(h.read());
    h.release();
    const other = await KvStore.open(tempDir());
    await other.restore(chunksOf([bytes]), 1);
    assert.deepEqual(
      other.entries().map(([k, r]) => [String(k), String(r.payload)]),
      [["k", "before"]],
    );
    await Promise.all([s.close(), other.close()]);
  });

  it("restore(snapshot(S)) equals S for random binary keys, values, hashes, expiries, versions and tombstones, and survives a reopen", async () => {
    const key = fc.uint8Array({ minLength: 1, maxLength: 48 });
    const value = fc.oneof(
      { weight: 10, arbitrary: fc.uint8Array({ maxLength: 64 }) },
      { weight: 1, arbitrary: fc.uint8Array({ minLength: 70_000, maxLength: 140_000 }) },
    );
    const expiry = fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 2 ** 47 }));
    const version = fc.integer({ min: 1, max: 2 ** 40 });
    // Some keys are hashes: their fields (binary, some shared between hashes) and values.
    const fields = fc.option(
      fc.array(fc.tuple(fc.uint8Array({ maxLength: 24 }), fc.uint8Array({ maxLength: 40 })), {
        minLength: 1,
        maxLength: 20,
      }),
      { freq: 3 },
    );
    // "max": fast-check keeps arrays to about 10 unless told.
    const state = fc.array(fc.tuple(key, value, expiry, version, fields), { maxLength: 300, size: "max" });
    await fc.assert(
      fc.asyncProperty(
        state,
        fc.integer({ min: 1, max: 2 ** 40 }),
        fc.array(fc.nat(), { maxLength: 6 }),
        fc.option(fc.integer({ min: 0, max: 2 ** 41 })),
        async (pairs, index, cuts, forgetBefore) => {
          const source = await KvStore.open(tempDir());
          // Several batches, with overwrites and deletes (leaving tombstones) along the way.
          const third = Math.ceil(pairs.length / 3);
          for (let i = 0; i < pairs.length; i += third) {
            source.writeBatch(index, (w) => {
              for (const [k, v, e, ver, hash] of pairs.slice(i, i + third)) {
                if (hash === null) {
                  w.put(k, RecordType.String, e, v, ver);
                  continue;
                }
                const id = w.newCollectionId();
                const distinct = new Set<string>();
                for (const [f, fv] of hash) {
                  w.putItem(id, f, fv);
                  distinct.add(Buffer.from(f).toString("hex"));
                }
                w.put(k, RecordType.Hash, e, encodeCollection(id, distinct.size), ver);
              }
              if (i > 0 && pairs[i - 1]) w.delete(pairs[i - 1]![0], pairs[i - 1]![3] * 2);
            });
          }
          // Some tombstones forgotten: the horizon rises.
          if (forgetBefore !== null) source.writeBatch(index, (w) => w.forgetTombstones(forgetBefore, 100));
          source.writeBatch(index, () => undefined);
          const bytes = await snapshotBytes(source);
          // Delivered in arbitrary pieces, into a store that held something else.
          const at = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((x, y) => x - y);
          const pieces: Uint8Array[] = [];
          let prev = 0;
          for (const c of [...at, bytes.length]) {
            pieces.push(bytes.subarray(prev, c));
            prev = c;
          }
          const dir = tempDir();
          const target = await KvStore.open(dir);
          target.writeBatch(3, (w) => w.put(b("stale"), RecordType.String, 99, b("old"), 1));
          await target.restore(chunksOf(pieces), index);
          assert.deepEqual(image(target), image(source));
          await target.close();
          const reopened = await KvStore.open(dir);
          assert.deepEqual(image(reopened), image(source));
          // The restored store goes on giving out the source's collection ids.
          assert.equal(
            reopened.writeBatch(index + 1, (w) => w.newCollectionId()),
            source.writeBatch(index + 1, (w) => w.newCollectionId()),
          );
          assert.deepEqual(readdirSync(dir).sort(), ["CURRENT", "gen-2.mdb", "gen-2.mdb-lock"]);
          await Promise.all([source.close(), reopened.close()]);
        },
      ),
      { seed: SEED, numRuns: 25 },
    );
  });

  it("a cut or damaged payload fails the restore and leaves the live store as it was", async () => {
    const source = await KvStore.open(tempDir());
    source.writeBatch(5, (w) => {
      for (let i = 0; i < 50; i++)
        w.put(b(`key${i}`), RecordType.String, i % 3 === 0 ? 1000 + i : 0, b(`value${i}`), 1);
    });
    const bytes = Buffer.from(await snapshotBytes(source));
    const dir = tempDir();
    const target = await KvStore.open(dir);
    target.writeBatch(2, (w) => w.put(b("mine"), RecordType.String, 0, b("kept"), 1));
    const before = image(target);
    const damaged: Buffer[] = [
      bytes.subarray(0, 3),
      bytes.subarray(0, bytes.length - 1),
      bytes.subarray(0, Math.floor(bytes.length / 2)),
      Buffer.concat([bytes, Buffer.from([0])]),
      // The first record's tag (after the 38-byte header).
      Buffer.from(bytes).fill(0x07, 38, 39),
      // A last collection id past what a double counts exactly.
      Buffer.from(bytes).fill(0xff, 30, 38),
      Buffer.concat([Buffer.from("XXXX"), bytes.subarray(4)]),
    ];
    for (const d of damaged) {
      await assert.rejects(target.restore(chunksOf([d]), 5), KvSnapshotFormatError);
      assert.deepEqual(image(target), before);
      assert.deepEqual(readdirSync(dir).sort(), ["CURRENT", "gen-1.mdb", "gen-1.mdb-lock"]);
    }
    // A stream that fails mid-way (a broken transfer) is the same.
    async function* failing(): AsyncGenerator<Uint8Array> {
      yield bytes.subarray(0, 40);
      throw new Error("connection reset");
    }
    await assert.rejects(target.restore(failing(), 5), /connection reset/);
    assert.deepEqual(image(target), before);
    await Promise.all([source.close(), target.close()]);
  });

  it("after a crash in a restore, a reopen finds the old store or the new one, and removes the other", async () => {
    const dir = tempDir();
    const s = await KvStore.open(dir);
    s.writeBatch(4, (w) => w.put(b("a"), RecordType.String, 0, b("old"), 1));
    await s.close();
    // Crashed before the pointer moved: a half-written next generation lies beside the live one.
    const other = await KvStore.open(tempDir());
    other.writeBatch(9, (w) => w.put(b("a"), RecordType.String, 0, b("new"), 1));
    const bytes = await snapshotBytes(other);
    await other.close();
    const s2 = await KvStore.open(dir);
    await s2.restore(chunksOf([bytes]), 9);
    await s2.close();
    // gen-2 is live now; fake the crash window of the next restore: gen-3 exists, CURRENT still says 2.
    const s3 = await KvStore.open(dir);
    await s3.close();
    rmSync(path.join(dir, "gen-3.mdb"), { force: true });
    cpSync(path.join(dir, "gen-2.mdb"), path.join(dir, "gen-3.mdb"));
    const s4 = await KvStore.open(dir);
    assert.equal(s4.get(b("a"))?.payload.toString(), "new");
    assert.equal(existsSync(path.join(dir, "gen-3.mdb")), false);
    await s4.close();
  });
});

describe("KvStateMachine: the leader's removal of expired keys", () => {
  it("deletes each named key that is expired at the entry's time, and no other", async () => {
    const store = await KvStore.open(tempDir());
    const m = new KvStateMachine(store);
    let index = 0;
    const apply = async (now: number, ...args: string[]) =>
      (
        await m.apply([
          {
            index: ++index,
            term: 1,
            type: EntryType.Normal,
            data: writeEntry(now, [args.map((a) => Buffer.from(a))]),
          },
        ])
      )[0]![0];
    await apply(1000, "SET", "old", "v", "PXAT", "1500");
    await apply(1000, "SET", "later", "v", "PXAT", "9000");
    await apply(1000, "SET", "plain", "v");
    await apply(1000, "SET", "renewed", "v", "PXAT", "1500");
    await apply(1200, "SET", "renewed", "v2");
    assert.deepEqual(await apply(2000, REAP_COMMAND, "old", "later", "plain", "renewed", "missing"), {
      k: "int",
      v: 1,
    });
    assert.deepEqual(
      store.entries().map(([k]) => String(k)),
      ["later", "plain", "renewed"],
    );
    await store.close();
  });
});

describe("KvStateMachine: expiry times", () => {
  it("stores the farthest expiry Redis accepts (2^63-1 ms, past a double's exact integers) and reads it back", async () => {
    const dir = tempDir();
    const store = await KvStore.open(dir);
    const m = new KvStateMachine(store);
    const set = (index: number, ...args: string[]) =>
      m.apply([
        {
          index,
          term: 1,
          type: EntryType.Normal,
          data: writeEntry(1000, [args.map((a) => Buffer.from(a))]),
        },
      ]);
    const [replies] = await set(1, "SET", "far", "v", "PXAT", "9223372036854775807");
    assert.deepEqual(replies?.[0], { k: "status", v: "OK" });
    await set(2, "SET", "farther", "v", "EXAT", String(2n ** 63n / 1000n - 1n));
    assert.equal(store.get(Buffer.from("far"))?.expireAtMs, 2 ** 63);
    await store.close();
    const again = await KvStore.open(dir);
    assert.equal(again.get(Buffer.from("far"))?.expireAtMs, 2 ** 63);
    assert.equal(again.get(Buffer.from("farther"))?.expireAtMs, Number((2n ** 63n / 1000n - 1n) * 1000n));
    await again.close();
  });
});

describe("KvStateMachine: limits", () => {
  it("an entry with a key longer than MAX_KEY_BYTES answers an error and changes nothing (LMDB would throw)", async () => {
    const store = await KvStore.open(tempDir());
    const m = new KvStateMachine(store);
    const long = Buffer.alloc(MAX_KEY_BYTES + 1000, 0x61);
    const [replies] = await m.apply([
      {
        index: 1,
        term: 1,
        type: EntryType.Normal,
        data: writeEntry(1000, [
          [Buffer.from("SET"), long, Buffer.from("v"), Buffer.from("EX"), Buffer.from("9")],
          [Buffer.from("SET"), Buffer.from("fine"), Buffer.from("v")],
        ]),
      },
    ]);
    assert.deepEqual(replies![0], { k: "error", v: `ERR key is too long (at most ${MAX_KEY_BYTES} bytes)` });
    assert.deepEqual(replies![1], { k: "status", v: "OK" });
    assert.deepEqual(
      store.entries().map(([k]) => String(k)),
      ["fine"],
    );
    assert.equal(store.appliedIndex, 1);
    await store.close();
  });
});

describe("KvStore: found by review", () => {
  it("the empty key is a key like any other (LMDB refuses zero-length keys: the store prefixes them)", async () => {
    const store = await KvStore.open(tempDir());
    const m = new KvStateMachine(store);
    const [[set]] = (await m.apply([
      {
        index: 1,
        term: 1,
        type: EntryType.Normal,
        data: writeEntry(1000, [[b("SET"), b(""), b("empty"), b("PX"), b("5000")]]),
      },
    ])) as [[unknown]];
    assert.deepEqual(set, { k: "status", v: "OK" });
    assert.deepEqual(m.read([b("GET"), b("")], 1000), { k: "bulk", v: b("empty") });
    assert.deepEqual(store.expiredKeys(7000, 10), [b("")]);
    assert.deepEqual(m.read([b("KEYS"), b("*")], 1000), { k: "array", v: [{ k: "bulk", v: b("") }] });
    await store.close();
  });

  it("a snapshot labelled past the store's own applied index (entries it never saw) restores at the label", async () => {
    const source = await KvStore.open(tempDir());
    source.writeBatch(5, (w) => w.put(b("a"), RecordType.String, 0, b("1"), 1));
    const bytes = await snapshotBytes(source);
    const target = await KvStore.open(tempDir());
    // Raft's snapshot is at 7: entries 6 and 7 were a new leader's empty entry and a membership change.
    await target.restore(chunksOf([bytes]), 7);
    assert.equal(target.appliedIndex, 7);
    assert.equal(target.get(b("a"))?.payload.toString(), "1");
    // Never the other way: a store applied past the snapshot's index is not that snapshot.
    await assert.rejects(target.restore(chunksOf([bytes]), 4), /holds a store applied to 5/);
    await Promise.all([source.close(), target.close()]);
  });
});

describe("KvStore: tombstones and versions", () => {
  it("a deletion leaves a tombstone with the deleted version, unless that version is at or below the horizon", async () => {
    const s = await KvStore.open(tempDir());
    s.writeBatch(3, (w) => {
      w.put(b("a"), RecordType.String, 0, b("1"), 2);
      w.put(b("b"), RecordType.String, 0, b("1"), 3);
    });
    s.writeBatch(4, (w) => w.delete(b("a"), 5000));
    assert.deepEqual(s.tombstoneEntries(), [[b("a"), { version: 2, deletedAtMs: 5000 }]]);
    // Forgetting raises the horizon to the highest version forgotten.
    s.writeBatch(5, (w) => assert.equal(w.forgetTombstones(5000, 10), 1));
    assert.equal(s.tombstoneHorizon(), 2);
    s.writeBatch(6, (w) => {
      w.put(b("c"), RecordType.String, 0, b("1"), 1);
      w.delete(b("c"), 6000); // version 1 ≤ horizon: nothing to remember
      w.clear(7000); // b, version 3: remembered
    });
    assert.deepEqual(s.tombstoneEntries(), [[b("b"), { version: 3, deletedAtMs: 7000 }]]);
    await s.close();
  });

  it("forgetting goes oldest first, up to the cutoff and the limit; a replaced tombstone stays until its own time", async () => {
    const s = await KvStore.open(tempDir());
    s.writeBatch(10, (w) => {
      for (const [k, v] of [
        ["x", 5],
        ["y", 6],
        ["z", 7],
      ] as const)
        w.put(b(k), RecordType.String, 0, b("v"), v);
      w.delete(b("x"), 300);
      w.delete(b("y"), 100);
      w.delete(b("z"), 200);
      // x deleted again later, with a later version: its tombstone is replaced.
      w.put(b("x"), RecordType.String, 0, b("v"), 9);
      w.delete(b("x"), 400);
    });
    assert.equal(s.hasTombstonesBefore(99), false);
    assert.equal(s.hasTombstonesBefore(100), true);
    s.writeBatch(11, (w) => assert.equal(w.forgetTombstones(1000, 1), 1));
    assert.deepEqual(
      s.tombstoneEntries().map(([k]) => String(k)),
      ["x", "z"],
    );
    assert.equal(s.tombstoneHorizon(), 6);
    // x's old burial (300) finds a newer tombstone and leaves it.
    s.writeBatch(12, (w) => assert.equal(w.forgetTombstones(300, 10), 2));
    assert.deepEqual(s.tombstoneEntries(), [[b("x"), { version: 9, deletedAtMs: 400 }]]);
    assert.equal(s.tombstoneHorizon(), 7);
    s.writeBatch(13, (w) => assert.equal(w.forgetTombstones(400, 10), 1));
    assert.deepEqual(s.tombstoneEntries(), []);
    assert.equal(s.tombstoneHorizon(), 9);
    assert.equal(s.hasTombstonesBefore(Number.MAX_SAFE_INTEGER - 1), false);
    await s.close();
  });

  it("a store written before records had versions is refused, not misread", async () => {
    const dir = tempDir();
    const s = await KvStore.open(dir);
    s.writeBatch(1, (w) => w.put(b("a"), RecordType.String, 0, b("1"), 1));
    await s.close();
    // Remove the format mark, as a store of the previous format would be.
    const { open } = await import("lmdb");
    const root = open<Buffer, Buffer>({
      path: path.join(dir, "gen-1.mdb"),
      maxDbs: 8,
      keyEncoding: "binary",
      encoding: "binary",
    });
    const meta = root.openDB<Buffer, Buffer>({ name: "meta", keyEncoding: "binary", encoding: "binary" });
    await meta.remove(b("format"));
    await root.close();
    await assert.rejects(KvStore.open(dir), /no format mark: written by an older raftkv/);
  });

  it("a payload with a record shorter than its header, a tombstone of the wrong size, or a key after a tombstone is refused", async () => {
    const frame = (tag: number, key: Buffer, value: Buffer) => {
      const head = Buffer.alloc(9);
      head[0] = tag;
      head.writeUInt32BE(key.length, 1);
      head.writeUInt32BE(value.length, 5);
      return Buffer.concat([head, key, value]);
    };
    const payload = (frames: Buffer[], keys: number, tombstones: number) => {
      const header = Buffer.alloc(30);
      header.write("RKVS", 0, "latin1");
      header.writeUInt16BE(3, 4);
      header.writeBigUInt64BE(1n, 6);
      const end = Buffer.alloc(17);
      end[0] = 0xff;
      end.writeBigUInt64BE(BigInt(keys), 1);
      end.writeBigUInt64BE(BigInt(tombstones), 9);
      return Buffer.concat([header, ...frames, end]);
    };
    const record = Buffer.alloc(17);
    const tombstone = Buffer.alloc(16);
    const target = await KvStore.open(tempDir());
    await target.restore(
      chunksOf([payload([frame(1, b("ka"), record), frame(2, b("kb"), tombstone)], 1, 1)]),
      1,
    );
    assert.deepEqual(
      target.tombstoneEntries().map(([k]) => String(k)),
      ["b"],
    );
    for (const bad of [
      payload([frame(1, b("ka"), Buffer.alloc(16))], 1, 0),
      payload([frame(2, b("kb"), Buffer.alloc(17))], 0, 1),
      payload([frame(2, b("kb"), tombstone), frame(1, b("ka"), record)], 1, 1),
    ])
      await assert.rejects(target.restore(chunksOf([bad]), 1), KvSnapshotFormatError);
    await target.close();
  });
});
