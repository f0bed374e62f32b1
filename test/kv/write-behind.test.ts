import assert from "node:assert/strict";
import * as path from "node:path";
import { describe, it } from "node:test";
import fc from "fast-check";
import { open as openLmdb } from "lmdb";
import { RecordType } from "../../src/kv/record.js";
import { KvStore } from "../../src/kv/store.js";
import { BatchBudget, LayeredDb } from "../../src/kv/write-behind.js";
import { tempDirs } from "../helpers/temp-dirs.js";

const SEED = Number(process.env.RAFTKV_PROPERTY_SEED ?? 424242);
const tempDir = tempDirs("raftkv-wb-");

type Op =
  | { kind: "put"; key: number; value: number }
  | { kind: "remove"; key: number }
  | { kind: "batchFails"; key: number; value: number }
  | { kind: "startFlush" }
  | { kind: "commitFlush" }
  | { kind: "pause" }
  | { kind: "range"; start: number; end: number; limit: number; reverse: boolean }
  | { kind: "groupRange"; group: number; limit: number; reverse: boolean };

const keyOf = (k: number) => Buffer.from([k >> 4, k & 15]);
const hex = (b: Buffer) => b.toString("hex");

const op: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 5,
    arbitrary: fc.record({ kind: fc.constant("put" as const), key: fc.nat(40), value: fc.nat(255) }),
  },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant("remove" as const), key: fc.nat(40) }) },
  {
    weight: 1,
    arbitrary: fc.record({ kind: fc.constant("batchFails" as const), key: fc.nat(40), value: fc.nat(255) }),
  },
  { weight: 2, arbitrary: fc.constant({ kind: "startFlush" as const }) },
  { weight: 2, arbitrary: fc.constant({ kind: "commitFlush" as const }) },
  // Lets LMDB's writer thread commit a flush before the flush is seen to end.
  { weight: 1, arbitrary: fc.constant({ kind: "pause" as const }) },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant("groupRange" as const),
      group: fc.nat(2),
      limit: fc.integer({ min: 1, max: 20 }),
      reverse: fc.boolean(),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant("range" as const),
      start: fc.nat(41),
      end: fc.nat(41),
      limit: fc.integer({ min: 1, max: 50 }),
      reverse: fc.boolean(),
    }),
  },
);

describe("the write-behind layers", () => {
  it("read like a plain map through writes, failed batches and LMDB commits at any point (ranges within a group too)", async () => {
    const dir = tempDir();
    let run = 0;
    await fc.assert(
      // "max": fast-check keeps arrays to about 10 unless told.
      fc.asyncProperty(fc.array(op, { maxLength: 120, size: "max" }), async (ops) => {
        const root = openLmdb<Buffer, Buffer>({
          path: path.join(dir, `db-${run++}.mdb`),
          maxDbs: 2,
          keyEncoding: "binary",
          encoding: "binary",
        });
        const db = root.openDB<Buffer, Buffer>({ name: "t", keyEncoding: "binary", encoding: "binary" });
        // Grouped by the keys' first byte, as the items table is by collection id.
        const layered = new LayeredDb(db, new BatchBudget(1 << 30), true, 1);
        const model = new Map<string, Buffer>();
        let flush: Promise<void> | null = null;
        const check = () => {
          const want = [...model].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
          assert.deepEqual(
            Array.from(layered.range(), (e) => [hex(e.key), hex(e.value)]),
            want.map(([k, v]) => [k, hex(v)]),
          );
          assert.equal(layered.count(), model.size);
          for (let k = 0; k <= 40; k++) assert.deepEqual(layered.get(keyOf(k)), model.get(hex(keyOf(k))));
        };
        for (const o of ops) {
          switch (o.kind) {
            case "put":
              layered.put(keyOf(o.key), Buffer.from([o.value]));
              layered.commitBatch();
              model.set(hex(keyOf(o.key)), Buffer.from([o.value]));
              break;
            case "remove":
              layered.remove(keyOf(o.key));
              layered.commitBatch();
              model.delete(hex(keyOf(o.key)));
              break;
            case "batchFails":
              layered.put(keyOf(o.key), Buffer.from([o.value]));
              layered.remove(keyOf((o.key + 1) % 41));
              layered.rollBackBatch();
              break;
            case "startFlush": {
              if (flush !== null) break;
              const layer = layered.startFlush();
              if (layer === null) break;
              flush = root.childTransaction(() => {
                for (const e of layer.values()) {
                  if (e.value === null) db.removeSync(e.key);
                  else db.putSync(e.key, e.value);
                }
              }) as Promise<void>;
              break;
            }
            case "commitFlush":
              if (flush === null) break;
              await flush;
              layered.endFlush();
              flush = null;
              break;
            case "pause":
              await new Promise((resolve) => setTimeout(resolve, 2));
              break;
            case "groupRange": {
              const g = Buffer.from([o.group]);
              const want = [...model]
                .filter(([k]) => k.startsWith(hex(g)))
                .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0) * (o.reverse ? -1 : 1))
                .slice(0, o.limit)
                .map(([k, v]) => [k, hex(v)]);
              const got = layered.range({
                start: g,
                end: Buffer.from([o.group + 1]),
                group: g,
                limit: o.limit,
                reverse: o.reverse,
              });
              assert.deepEqual(
                Array.from(got, (e) => [hex(e.key), hex(e.value)]),
                want,
              );
              break;
            }
            case "range": {
              const start = keyOf(Math.min(o.start, o.end));
              const end = keyOf(Math.max(o.start, o.end));
              const want = [...model]
                .filter(([k]) => k >= hex(start) && k < hex(end))
                .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0) * (o.reverse ? -1 : 1))
                .slice(0, o.limit)
                .map(([k]) => k);
              assert.deepEqual(
                Array.from(layered.range({ start, end, limit: o.limit, reverse: o.reverse }), (e) =>
                  hex(e.key),
                ),
                want,
              );
              break;
            }
          }
          check();
        }
        if (flush !== null) {
          await flush;
          layered.endFlush();
        }
        check();
        await root.close();
      }),
      { seed: SEED, numRuns: 60 },
    );
  });

  it("a batch too large for the layers runs in LMDB directly, with the same outcome, and the store goes on", async () => {
    const dir = tempDir();
    const s = await KvStore.open(dir);
    await s.writeBatchAsync(1, (w) => w.put(Buffer.from("small"), RecordType.String, 0, Buffer.from("x"), 1));
    const mib = Buffer.alloc(1024 * 1024, 7);
    let runs = 0;
    // 40 MiB in one batch: past what one batch may hold in memory.
    const out = await s.writeBatchAsync(2, (w) => {
      runs++;
      for (let i = 0; i < 40; i++) w.put(Buffer.from(`big${i}`), RecordType.String, 0, mib, 2);
      w.delete(Buffer.from("small"), 5);
      return w.count();
    });
    assert.equal(runs, 2, "tried in the layers, then run again in LMDB");
    assert.equal(out, 40);
    assert.equal(s.keyCount(), 40);
    assert.equal(s.get(Buffer.from("small")), undefined);
    assert.equal(s.get(Buffer.from("big39"))?.payload.length, mib.length);
    assert.equal(s.appliedIndex, 2);
    // Small batches go through the layers again, counted from what LMDB now holds.
    await s.writeBatchAsync(3, (w) => w.put(Buffer.from("after"), RecordType.String, 0, Buffer.from("y"), 3));
    assert.equal(s.keyCount(), 41);
    await s.close();
    const again = await KvStore.open(dir);
    assert.equal(again.appliedIndex, 3);
    assert.equal(again.keyCount(), 41);
    await again.close();
  });

  it("reads a key from LMDB once while a command reads and writes it, and sees LMDB change by a flush", async () => {
    const dir = tempDir();
    const root = openLmdb<Buffer, Buffer>({
      path: path.join(dir, "r.mdb"),
      keyEncoding: "binary",
      encoding: "binary",
    });
    const layered = new LayeredDb(root, new BatchBudget(1 << 30), true);
    let reads = 0;
    const get = root.get.bind(root);
    root.get = (key: Buffer) => {
      reads++;
      return get(key);
    };
    const k = Buffer.from("k");
    // A SET of a key not in the layers: looked up, its old record read, then written (counted).
    assert.equal(layered.get(k), undefined);
    assert.equal(layered.get(k), undefined);
    layered.put(k, Buffer.from("1"));
    layered.commitBatch();
    assert.equal(reads, 1);
    // The flush puts the key in LMDB and empties the layers: a read must see LMDB's new value.
    const layer = layered.startFlush();
    assert.ok(layer !== null);
    await root.childTransaction(() => {
      for (const e of layer.values()) root.putSync(e.key, e.value!);
    });
    layered.endFlush();
    assert.equal(layered.get(k)?.toString(), "1");
    assert.equal(layered.count(), 1);
    // And a key read while absent, then written by a direct LMDB commit and a new set of layers, too.
    const other = Buffer.from("o");
    assert.equal(layered.get(other), undefined);
    await root.put(other, Buffer.from("2"));
    layered.discard();
    assert.equal(layered.get(other)?.toString(), "2");
    await root.close();
  });

  it("a group read, then written many times over (its sorted writes dropped), reads right again", async () => {
    const dir = tempDir();
    const root = openLmdb<Buffer, Buffer>({
      path: path.join(dir, "g.mdb"),
      keyEncoding: "binary",
      encoding: "binary",
    });
    const layered = new LayeredDb(root, new BatchBudget(1 << 30), false, 1);
    const g = Buffer.from([7]);
    const key = (i: number) => Buffer.from([7, i >> 8, i & 255]);
    const read = () =>
      Array.from(layered.range({ start: g, end: Buffer.from([8]), group: g }), (e) => e.value.toString());
    layered.put(key(5), Buffer.from("5"));
    assert.deepEqual(read(), ["5"]);
    // Past the splices kept between reads: the sorted writes are dropped, then sorted again.
    for (let i = 300; i > 0; i--) layered.put(key(i), Buffer.from(String(i)));
    layered.remove(key(5));
    layered.commitBatch();
    const want = Array.from({ length: 300 }, (_, i) => String(i + 1)).filter((v) => v !== "5");
    assert.deepEqual(read(), want);
    layered.put(key(0), Buffer.from("0"));
    assert.deepEqual(read(), ["0", ...want]);
    await root.close();
  });

  it("refuses a key LMDB cannot hold inside the batch, which then leaves nothing", () => {
    const dir = tempDir();
    const root = openLmdb<Buffer, Buffer>({
      path: path.join(dir, "k.mdb"),
      keyEncoding: "binary",
      encoding: "binary",
    });
    const layered = new LayeredDb(root, new BatchBudget(1 << 30), true);
    layered.put(Buffer.from("a"), Buffer.from("1"));
    assert.throws(() => layered.put(Buffer.alloc(1979, 1), Buffer.from("2")), RangeError);
    layered.rollBackBatch();
    assert.equal(layered.get(Buffer.from("a")), undefined);
    assert.equal(layered.count(), 0);
    assert.equal(layered.pendingWrites, 0);
    void root.close();
  });

  it("a store answers from the layers at once, commits behind, and a reopen finds every batch", async () => {
    const dir = tempDir();
    const s = await KvStore.open(dir);
    for (let i = 1; i <= 300; i++)
      s.writeBatch(i, (w) => w.put(Buffer.from(`k${i % 50}`), RecordType.String, 0, Buffer.from(`v${i}`), i));
    // Read back before anything was awaited: the batches are in memory, LMDB commits behind.
    assert.equal(s.get(Buffer.from("k0"))?.payload.toString(), "v300");
    assert.equal(s.keyCount(), 50);
    assert.equal(s.committedIndex(), 300);
    await s.close();
    const again = await KvStore.open(dir);
    assert.equal(again.appliedIndex, 300);
    assert.equal(again.keyCount(), 50);
    assert.equal(again.get(Buffer.from("k49"))?.payload.toString(), "v299");
    await again.close();
  });
});
