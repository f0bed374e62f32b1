/**
 * Review tests for src/storage: each one pins a suspected bug. Deterministic: SimFileSystem with fixed
 * seeds, gates instead of timers, no clock and no Math.random.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { CompactedError, UnavailableError } from "../../src/raft/errors.js";
import { type ConfState, EMPTY_CONF_STATE, type Entry, EntryType } from "../../src/raft/types.js";
import { DiskStorage } from "../../src/storage/disk-storage.js";
import { StorageError, WalClosedError, WalCorruptError } from "../../src/storage/errors.js";
import { SimFileSystem } from "../../src/storage/sim-fs.js";
import { Wal } from "../../src/storage/wal.js";
import { FRAME_HEADER_BYTES, RecordWriter, sealFrame } from "../../src/storage/wal-format.js";
import { settle } from "../helpers/virtual-time.js";

const DIR = "/data/wal";
const cs = (voters: number[]): ConfState => ({ ...EMPTY_CONF_STATE, voters });

function entry(index: number, term: number, data: Uint8Array | string = `e${index}@${term}`): Entry {
  return {
    index,
    term,
    type: EntryType.Normal,
    data: typeof data === "string" ? Buffer.from(data) : data,
  };
}

function filled(size: number, byte: number): Buffer {
  return Buffer.alloc(size, byte);
}

function gate(): { wait: () => Promise<void>; open: () => void } {
  let open!: () => void;
  const p = new Promise<void>((resolve) => {
    open = resolve;
  });
  return { wait: () => p, open };
}

function segments(sim: SimFileSystem, dir = DIR): string[] {
  return sim
    .readdir(dir)
    .filter((n) => n.endsWith(".wal"))
    .sort()
    .map((n) => `${dir}/${n}`);
}

/** A complete, valid WAL frame (a hard-state record) as raw bytes: what a client value may well hold. */
function validFrameBytes(): Buffer {
  const buf = Buffer.alloc(FRAME_HEADER_BYTES + 25);
  const w = new RecordWriter(buf);
  w.pos = FRAME_HEADER_BYTES;
  w.hardState({ term: 7, vote: 7, commit: 7 });
  sealFrame(buf, 25, 1, 0); // a copy of a real frame: the first of segment 1
  return buf;
}

// ---------------------------------------------------------------------------------------------------

describe("review: frame size limit (maxFrameBytes) is not enforced on the frame actually written", () => {
  it("two appends grouped into one write exceed maxFrameBytes; both are acknowledged, then lost on reopen", async () => {
    const sim = new SimFileSystem(1);
    const opts = { fs: sim, dir: DIR, maxFrameBytes: 4096, segmentBytes: 1 << 20 };
    const wal = await Wal.open(opts);
    await wal.append([entry(1, 1)], { term: 1, vote: 1, commit: 0 });
    // Each batch is well under maxFrameBytes on its own; made in one tick they share one frame.
    const a = wal.append([entry(2, 1, filled(3000, 0xa1))], { term: 1, vote: 1, commit: 1 });
    const b = wal.append([entry(3, 1, filled(3000, 0xb2))], { term: 1, vote: 1, commit: 2 });
    await Promise.all([a, b]);
    assert.equal(wal.lastIndex(), 3);
    await wal.close();
    sim.crash("lose-all-unsynced");
    const again = await Wal.open(opts);
    assert.equal(again.lastIndex(), 3, "entries 2 and 3 were acknowledged as durable");
    assert.deepEqual(again.hardState, { term: 1, vote: 1, commit: 2 });
    await again.close();
  });

  it("one append just under maxFrameBytes that opens a segment (header restated in front) is lost on reopen", async () => {
    const sim = new SimFileSystem(2);
    const opts = { fs: sim, dir: DIR, maxFrameBytes: 1024 };
    const wal = await Wal.open(opts);
    // 21 (ENTRIES header) + 5 (entry header) + 950 + 25 (hard state) + 12 (frame header) = 1013 <= 1024:
    // accepted; the segment header (40 bytes) is put in front of it in the same frame.
    await wal.append([entry(1, 1, filled(950, 0x11))], { term: 1, vote: 1, commit: 0 });
    await wal.close();
    sim.crash("lose-all-unsynced");
    const again = await Wal.open(opts);
    assert.equal(again.lastIndex(), 1, "the acknowledged entry survives");
    assert.deepEqual(again.hardState, { term: 1, vote: 1, commit: 0 });
    await again.close();
  });
});

describe("review: torn tail vs damage before the tail", () => {
  it("a torn last batch whose entry data holds a valid frame is cut, not reported as mid-log corruption", async () => {
    const sim = new SimFileSystem(3);
    const wal = await Wal.open({ fs: sim, dir: DIR });
    await wal.append([entry(1, 1), entry(2, 1)], { term: 1, vote: 1, commit: 1 });
    const [file] = segments(sim);
    const before = sim.snapshotOf(file!).byteLength;
    // A client value that happens to contain WAL bytes (e.g. a backup of a log file).
    const value = Buffer.concat([filled(40, 0x20), validFrameBytes(), filled(200, 0x30)]);
    await wal.append([entry(3, 1, value)], { term: 1, vote: 1, commit: 2 });
    const after = sim.snapshotOf(file!).byteLength;
    await wal.close();
    // Tear the last write anywhere after the embedded frame: a power loss mid-write.
    for (const cut of [after - 1, after - 100, after - 199]) {
      assert.ok(cut > before);
      const copy = new SimFileSystem(4);
      const again0 = await Wal.open({ fs: copy, dir: DIR });
      await again0.append([entry(1, 1), entry(2, 1)], { term: 1, vote: 1, commit: 1 });
      await again0.append([entry(3, 1, value)], { term: 1, vote: 1, commit: 2 });
      await again0.close();
      copy.truncateDurable(segments(copy)[0]!, cut);
      copy.crash("lose-all-unsynced");
      let reopened: Wal;
      try {
        reopened = await Wal.open({ fs: copy, dir: DIR });
      } catch (err) {
        assert.fail(
          `cut at ${cut} (last write ${before}..${after}): reopening threw ${err instanceof WalCorruptError ? "WalCorruptError" : ""} ${(err as Error).message}`,
        );
      }
      assert.equal(reopened.lastIndex(), 2, `cut at ${cut}`);
      await reopened.close();
    }
  });
});

describe("review: snapshot pruning against the log's durable marker", () => {
  it("keep: 1 — a crash after the new snapshot file is saved but before the WAL marker leaves no usable snapshot", async () => {
    const fs = new SimFileSystem(5);
    const dir = "/data/node1";
    const s = await DiskStorage.open({ fs, dir, snapshots: { keep: 1 } });
    await s.bootstrap(cs([1]));
    await s.append(
      Array.from({ length: 10 }, (_, i) => entry(i + 2, 1)),
      { term: 1, vote: 1, commit: 11 },
    );
    // Hold the WAL's fdatasync of the snapshot marker, then lose power.
    const held = gate();
    let walSyncs = 0;
    fs.delaySync = (op, path) => {
      if (op === "datasync" && path.includes("/wal/")) {
        walSyncs++;
        return held.wait();
      }
      return Promise.resolve();
    };
    const making = s.createSnapshot(8, cs([1]), Buffer.from("state@8")).catch(() => {});
    while (walSyncs === 0) await settle();
    fs.crash("lose-all-unsynced");
    held.open();
    await making;
    fs.delaySync = undefined;
    let again: DiskStorage;
    try {
      again = await DiskStorage.open({ fs, dir, snapshots: { keep: 1 } });
    } catch (err) {
      assert.fail(`the node cannot start after one crash: ${(err as Error).message}`);
    }
    assert.equal(again.snapshot().metadata.index, 1, "the old snapshot stays in force");
  });

  it("keep: 2 — snapshot files never recorded by the log (crashes) push out the one the log's marker names", async () => {
    const fs = new SimFileSystem(6);
    const dir = "/data/node2";
    const open = () => DiskStorage.open({ fs, dir, snapshots: { keep: 2 } });
    let s = await open();
    await s.bootstrap(cs([1]));
    await s.append(
      Array.from({ length: 40 }, (_, i) => entry(i + 2, 1)),
      { term: 1, vote: 1, commit: 41 },
    );
    await s.createSnapshot(10, cs([1]), Buffer.from("state@10"));
    // Twice: the snapshot file is saved, the power goes before the log records it.
    for (const at of [20, 30]) {
      await s.snapshots.save({ index: at, term: 1, confState: cs([1]) }, Buffer.from(`state@${at}`));
      fs.crash("lose-all-unsynced");
      try {
        s = await open();
      } catch (err) {
        assert.fail(`after the crash that followed saving ${at}: ${(err as Error).message}`);
      }
      assert.equal(s.snapshot().metadata.index, 10);
    }
  });
});

describe("review: entries read back from segments", () => {
  it("a damaged byte in an evicted entry is returned as data, not detected", async () => {
    const sim = new SimFileSystem(7);
    const wal = await Wal.open({ fs: sim, dir: DIR, tailCacheBytes: 0 });
    const original = filled(64, 0x5a);
    await wal.append([entry(1, 1, original)], { term: 1, vote: 1, commit: 0 });
    await wal.append([entry(2, 1, filled(64, 0x6b))], { term: 1, vote: 1, commit: 1 });
    // Entry 1 left the memory tail; damage one byte of its data on disk (a bad sector).
    const [file] = segments(sim);
    const bytes = sim.snapshotOf(file!);
    const at = Buffer.from(bytes).indexOf(original);
    assert.ok(at > 0);
    sim.corrupt(file!, at + 10);
    let got: Entry[] | null = null;
    try {
      got = wal.entries(1, 2, 1 << 20);
    } catch (err) {
      assert.ok(err instanceof StorageError, `a typed error is fine, got ${String(err)}`);
    }
    if (got) assert.deepEqual(Buffer.from(got[0]!.data), original, "corrupt data handed to raft");
    await wal.close();
  });

  it("a read EIO surfaces as an untyped error, not a StorageError", async () => {
    const sim = new SimFileSystem(8);
    const wal = await Wal.open({ fs: sim, dir: DIR, tailCacheBytes: 0 });
    await wal.append([entry(1, 1)], { term: 1, vote: 1, commit: 0 });
    await wal.append([entry(2, 1)], { term: 1, vote: 1, commit: 1 });
    sim.failNext("read", "EIO");
    assert.throws(
      () => wal.entries(1, 2, 1 << 20),
      (err: unknown) => err instanceof StorageError,
      "an I/O error on read should surface as a storage error",
    );
    await wal.close();
  });
});

describe("review: close() and appends it has not refused", () => {
  it("an append accepted while close() waits is failed with EBADF instead of completed or refused", async () => {
    const sim = new SimFileSystem(9);
    const wal = await Wal.open({ fs: sim, dir: DIR });
    await wal.append([entry(1, 1)], { term: 1, vote: 1, commit: 0 });
    const held = gate();
    let syncs = 0;
    sim.delaySync = (op) => (op === "datasync" && syncs++ === 0 ? held.wait() : Promise.resolve());
    const a = wal.append([entry(2, 1)], { term: 1, vote: 1, commit: 1 });
    const closing = wal.close();
    while (syncs === 0) await settle();
    // close() has been called but has not refused anything yet: this append is accepted.
    const b = wal.append([entry(3, 1)], { term: 1, vote: 1, commit: 2 });
    held.open();
    await a;
    await closing;
    await b.then(
      () => {},
      (err: unknown) => {
        assert.ok(
          err instanceof WalClosedError,
          `an accepted append ended as ${(err as Error).name}: ${(err as Error).message}`,
        );
      },
    );
    assert.equal(sim.openHandleCount(), 0, "close() leaves no handle open");
  });
});

describe("review: DiskStorage's Storage contract while a snapshot is being installed", () => {
  it("between the WAL reset and the marker's sync, entries(firstIndex, lastIndex+1) throws CompactedError", async () => {
    const fs = new SimFileSystem(10);
    const s = await DiskStorage.open({ fs, dir: "/data/node3" });
    await s.bootstrap(cs([1]));
    await s.append([entry(2, 1), entry(3, 1)], { term: 1, vote: 1, commit: 3 });
    const held = gate();
    let walSyncs = 0;
    fs.delaySync = (op, path) => {
      if (op === "datasync" && path.includes("/wal/")) {
        walSyncs++;
        return held.wait();
      }
      return Promise.resolve();
    };
    const installing = s.installSnapshot(
      { metadata: { index: 50, term: 4, confState: cs([1]) }, data: Buffer.from("leader@50") },
      { term: 4, vote: 0, commit: 50 },
    );
    while (walSyncs === 0) await settle();
    const problems: string[] = [];
    const lo = s.firstIndex();
    const hi = s.lastIndex();
    try {
      s.term(lo - 1);
    } catch (err) {
      problems.push(`term(firstIndex-1=${lo - 1}) threw ${(err as Error).name}`);
    }
    try {
      s.term(hi);
    } catch (err) {
      problems.push(`term(lastIndex=${hi}) threw ${(err as Error).name}`);
    }
    if (hi >= lo) {
      try {
        s.entries(lo, hi + 1, 1 << 20);
      } catch (err) {
        if (err instanceof CompactedError || err instanceof UnavailableError)
          problems.push(`entries(${lo}, ${hi + 1}) threw ${err.name}`);
        else throw err;
      }
    }
    held.open();
    fs.delaySync = undefined;
    await installing;
    assert.deepEqual(problems, [], `firstIndex ${lo}, lastIndex ${hi}`);
  });
});

describe("review: directories made durable only when found missing", () => {
  it("a WAL opened again after its directory's sync failed acknowledges appends a crash then loses", async () => {
    const sim = new SimFileSystem(11);
    sim.mkdirp("/data");
    await sim.syncDir("/");
    // The first open creates /data/wal and fails syncing /data (EIO): the caller retries.
    sim.failNext("syncDir", "EIO", "/data");
    await assert.rejects(Wal.open({ fs: sim, dir: DIR }));
    const wal = await Wal.open({ fs: sim, dir: DIR });
    await wal.append([entry(1, 1)], { term: 1, vote: 1, commit: 0 });
    await wal.close();
    sim.crash("lose-all-unsynced");
    const again = await Wal.open({ fs: sim, dir: DIR });
    assert.equal(again.lastIndex(), 1, "the acknowledged append survives the crash");
    await again.close();
  });
});

describe("review: purging after snapshots installed from the leader", () => {
  it("segments before an installed snapshot are never deleted: disk use grows without bound", async () => {
    const sim = new SimFileSystem(12);
    const wal = await Wal.open({ fs: sim, dir: DIR, segmentBytes: 2048 });
    let last = 0;
    let term = 1;
    let most = 0;
    for (let round = 0; round < 60; round++) {
      // A lagging follower: it takes some entries from the leader ...
      const ents = Array.from({ length: 10 }, (_, i) => entry(last + 1 + i, term, filled(60, round & 0xff)));
      last += 10;
      await wal.append(ents, { term, vote: 1, commit: last - 5 });
      // ... then falls behind again and is sent a snapshot beyond its log; the log is released up to it.
      term++;
      const index = last + 20;
      await wal.recordSnapshot({ index, term, confState: cs([1, 2, 3]) }, { term, vote: 0, commit: index });
      await wal.releaseBefore(index + 1);
      last = index;
      most = Math.max(most, wal.segmentCount);
    }
    assert.ok(most <= 4, `${most} segments held at once (${wal.segmentCount} at the end)`);
    await wal.close();
  });
});

describe("review: an interrupted repair", () => {
  it("a repair whose unlinks stop half-way (EIO) leaves a sequence gap that even repair refuses", async () => {
    const sim = new SimFileSystem(13);
    const opts = { fs: sim, dir: DIR, segmentBytes: 1024 };
    const wal = await Wal.open(opts);
    for (let i = 0; i < 12; i++)
      await wal.append([entry(i + 1, 1, filled(200, i))], { term: 1, vote: 1, commit: i });
    await wal.close();
    const segs = segments(sim);
    assert.ok(segs.length >= 4, `${segs.length} segments`);
    // Damage before the tail, in the first segment: repair cuts there and deletes every later segment.
    sim.corrupt(segs[0]!, 300);
    sim.failNext("unlink", "EIO", segs[2]!);
    await assert.rejects(Wal.open({ ...opts, repair: true }));
    // The operator runs the repair again.
    let again: Wal;
    try {
      again = await Wal.open({ ...opts, repair: true });
    } catch (err) {
      assert.fail(`repair cannot finish: ${(err as Error).message}`);
    }
    await again.close();
  });
});
