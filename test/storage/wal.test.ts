import assert from "node:assert/strict";
import * as nodeFs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { after, describe, it } from "node:test";
import { type Entry, EntryType, type HardState } from "../../src/raft/types.js";
import { WalCorruptError, WalLimitError } from "../../src/storage/errors.js";
import { NodeFileSystem } from "../../src/storage/fs.js";
import { Wal } from "../../src/storage/wal.js";

const fs = new NodeFileSystem();
const root = nodeFs.mkdtempSync(path.join(os.tmpdir(), "raftkv-wal-"));
after(() => nodeFs.rmSync(root, { recursive: true, force: true }));
let dirs = 0;
const freshDir = () => path.join(root, `wal-${++dirs}`);

function entry(index: number, term: number, text = `e${index}@${term}`): Entry {
  return { index, term, type: EntryType.Normal, data: Buffer.from(text) };
}

function batch(from: number, count: number, term: number): Entry[] {
  return Array.from({ length: count }, (_, i) => entry(from + i, term));
}

function readAll(wal: Wal): string[] {
  if (wal.lastIndex() < wal.firstIndex()) return [];
  return wal
    .entries(wal.firstIndex(), wal.lastIndex() + 1, Number.MAX_SAFE_INTEGER)
    .map((e) => `${e.index}:${e.term}:${Buffer.from(e.data).toString()}`);
}

function segmentFiles(dir: string): string[] {
  return nodeFs
    .readdirSync(dir)
    .filter((n) => n.endsWith(".wal"))
    .sort();
}

describe("the write-ahead log", () => {
  it("reads back after reopening what was appended, with the last hard state", async () => {
    const dir = freshDir();
    const wal = await Wal.open({ fs, dir });
    await wal.append(batch(1, 3, 1), { term: 1, vote: 2, commit: 0 });
    await wal.append(batch(4, 2, 1), { term: 1, vote: 2, commit: 3 });
    await wal.close();
    const again = await Wal.open({ fs, dir });
    assert.deepEqual(readAll(again).length, 5);
    assert.deepEqual(again.hardState, { term: 1, vote: 2, commit: 3 });
    assert.equal(again.firstIndex(), 1);
    assert.equal(again.lastIndex(), 5);
    assert.equal(again.termOf(5), 1);
    await again.close();
  });

  it("replaces the conflicting suffix when an append overlaps the log, also across a reopen", async () => {
    const dir = freshDir();
    const wal = await Wal.open({ fs, dir });
    await wal.append(batch(1, 5, 1));
    await wal.append([entry(3, 2, "new3"), entry(4, 2, "new4")]);
    assert.deepEqual(readAll(wal), ["1:1:e1@1", "2:1:e2@1", "3:2:new3", "4:2:new4"]);
    await wal.close();
    const again = await Wal.open({ fs, dir });
    assert.deepEqual(readAll(again), ["1:1:e1@1", "2:1:e2@1", "3:2:new3", "4:2:new4"]);
    await again.close();
  });

  it("groups appends made while a write is in flight into one fdatasync", async () => {
    const dir = freshDir();
    const wal = await Wal.open({ fs, dir });
    const pending = [];
    for (let i = 0; i < 10; i++) pending.push(wal.append([entry(i + 1, 1)]));
    await Promise.all(pending);
    assert.ok(wal.stats.syncs <= 2, `10 appends took ${wal.stats.syncs} syncs`);
    await wal.close();
    const again = await Wal.open({ fs, dir });
    assert.equal(again.lastIndex(), 10);
    await again.close();
  });

  it("rolls over to new segments and reads old entries back from disk beyond the memory tail", async () => {
    const dir = freshDir();
    const wal = await Wal.open({ fs, dir, segmentBytes: 4096, tailCacheBytes: 256 });
    for (let i = 0; i < 50; i++)
      await wal.append(batch(i * 10 + 1, 10, 1), { term: 1, vote: 1, commit: i * 10 });
    assert.ok(segmentFiles(dir).length >= 3, `${segmentFiles(dir).length} segments`);
    assert.equal(readAll(wal).length, 500);
    assert.equal(wal.entries(7, 8, 1)[0]!.data.toString(), "e7@1");
    await wal.close();
    const again = await Wal.open({ fs, dir, segmentBytes: 4096, tailCacheBytes: 256 });
    assert.equal(readAll(again).length, 500);
    assert.deepEqual(again.hardState, { term: 1, vote: 1, commit: 490 });
    await again.close();
  });

  it("refuses entries over the size limit and appends that would leave a gap, with typed errors", async () => {
    const wal = await Wal.open({ fs, dir: freshDir(), maxEntryBytes: 10 });
    await assert.rejects(wal.append([entry(1, 1, "x".repeat(11))]), WalLimitError);
    await wal.append([entry(1, 1, "ok")]);
    await assert.rejects(wal.append([entry(3, 1)]), WalLimitError);
    assert.equal(wal.lastIndex(), 1);
    await wal.close();
  });
});

describe("recovery from a torn or damaged log", () => {
  /** Writes `n` batches of 3 entries, each with a hard state; returns each batch's end offset. */
  async function writeBatches(dir: string, n: number): Promise<{ ends: number[]; file: string }> {
    const wal = await Wal.open({ fs, dir });
    const ends: number[] = [];
    for (let b = 0; b < n; b++) {
      await wal.append(batch(b * 3 + 1, 3, 1), { term: 1, vote: 1, commit: b * 3 });
      const [file] = segmentFiles(dir);
      ends.push(nodeFs.statSync(path.join(dir, file!)).size);
    }
    await wal.close();
    return { ends, file: path.join(dir, segmentFiles(dir)[0]!) };
  }

  function copyDir(from: string): string {
    const to = freshDir();
    nodeFs.cpSync(from, to, { recursive: true });
    return to;
  }

  it("truncated at any byte of the last batch, it reopens with exactly the batches before it", async () => {
    const base = freshDir();
    const { ends } = await writeBatches(base, 4);
    const lastStart = ends[2]!;
    for (let cut = lastStart; cut < ends[3]!; cut++) {
      const dir = copyDir(base);
      nodeFs.truncateSync(path.join(dir, segmentFiles(dir)[0]!), cut);
      const wal = await Wal.open({ fs, dir });
      assert.equal(wal.lastIndex(), 9, `cut at ${cut}`);
      assert.deepEqual(wal.hardState, { term: 1, vote: 1, commit: 6 }, `cut at ${cut}`);
      // The cut tail is gone for good: appending continues from the last good record.
      await wal.append([entry(10, 2, "after")]);
      await wal.close();
      const again = await Wal.open({ fs, dir });
      assert.equal(readAll(again).at(-1), "10:2:after", `cut at ${cut}`);
      await again.close();
      nodeFs.rmSync(dir, { recursive: true });
    }
  });

  it("with any byte of the last batch flipped, it reopens with exactly the batches before it", async () => {
    const base = freshDir();
    const { ends } = await writeBatches(base, 4);
    for (let at = ends[2]!; at < ends[3]!; at++) {
      const dir = copyDir(base);
      const file = path.join(dir, segmentFiles(dir)[0]!);
      const bytes = nodeFs.readFileSync(file);
      bytes[at] = bytes[at]! ^ 0x5a;
      nodeFs.writeFileSync(file, bytes);
      const wal = await Wal.open({ fs, dir });
      assert.equal(wal.lastIndex(), 9, `flip at ${at}`);
      assert.deepEqual(wal.hardState, { term: 1, vote: 1, commit: 6 }, `flip at ${at}`);
      await wal.close();
      nodeFs.rmSync(dir, { recursive: true });
    }
  });

  it("refuses to start when a record before the tail is damaged, naming the segment and offset", async () => {
    const base = freshDir();
    const { ends } = await writeBatches(base, 4);
    for (const at of [ends[0]! + 5, ends[1]! + 20, ends[2]! - 1]) {
      const dir = copyDir(base);
      const name = segmentFiles(dir)[0]!;
      const file = path.join(dir, name);
      const bytes = nodeFs.readFileSync(file);
      bytes[at] = bytes[at]! ^ 0xff;
      nodeFs.writeFileSync(file, bytes);
      await assert.rejects(Wal.open({ fs, dir }), (err: unknown) => {
        assert.ok(err instanceof WalCorruptError);
        assert.equal(err.segment, name);
        const frameStart = [0, ...ends].filter((e) => e <= at).at(-1)!;
        assert.equal(err.offset, frameStart);
        return true;
      });
      nodeFs.rmSync(dir, { recursive: true });
    }
  });

  it("with the repair option, cuts the log at the damage and keeps what precedes it", async () => {
    const base = freshDir();
    const { ends } = await writeBatches(base, 4);
    const dir = copyDir(base);
    const file = path.join(dir, segmentFiles(dir)[0]!);
    const bytes = nodeFs.readFileSync(file);
    bytes[ends[1]! + 20] = bytes[ends[1]! + 20]! ^ 0xff;
    nodeFs.writeFileSync(file, bytes);
    const wal = await Wal.open({ fs, dir, repair: true });
    assert.equal(wal.lastIndex(), 6);
    assert.deepEqual(wal.hardState, { term: 1, vote: 1, commit: 3 });
    await wal.close();
    assert.equal(nodeFs.statSync(file).size, ends[1]);
    const again = await Wal.open({ fs, dir });
    assert.equal(again.lastIndex(), 6);
    await again.close();
  });
});

describe("snapshots and compaction", () => {
  it("keeps the entries after a local snapshot and drops the whole log for an installed one", async () => {
    const dir = freshDir();
    const wal = await Wal.open({ fs, dir });
    await wal.append(batch(1, 10, 1));
    const cs = { voters: [1, 2, 3], learners: [], votersOutgoing: [], learnersNext: [], autoLeave: false };
    await wal.recordSnapshot({ index: 5, term: 1, confState: cs });
    assert.equal(wal.lastIndex(), 10);
    await wal.recordSnapshot({ index: 20, term: 3, confState: cs }, { term: 3, vote: 0, commit: 20 });
    assert.equal(wal.firstIndex(), 21);
    assert.equal(wal.lastIndex(), 20);
    assert.equal(wal.termOf(20), 3);
    await wal.append([entry(21, 3)]);
    await wal.close();
    const again = await Wal.open({ fs, dir });
    assert.equal(again.snapshotMarker?.index, 20);
    assert.deepEqual(readAll(again), ["21:3:e21@3"]);
    assert.deepEqual(again.hardState, { term: 3, vote: 0, commit: 20 });
    await again.close();
  });

  it("deletes whole segments before a snapshot, so disk use stays bounded under a long workload", async () => {
    const dir = freshDir();
    const opts = { fs, dir, segmentBytes: 8192 };
    const wal = await Wal.open(opts);
    const cs = { voters: [1], learners: [], votersOutgoing: [], learnersNext: [], autoLeave: false };
    let maxFiles = 0;
    let maxBytes = 0;
    for (let round = 0; round < 200; round++) {
      const from = round * 20 + 1;
      const hs: HardState = { term: 1, vote: 1, commit: from + 19 };
      await wal.append(batch(from, 20, 1), hs);
      if (round % 10 === 9) {
        await wal.recordSnapshot({ index: from + 19, term: 1, confState: cs });
        await wal.releaseBefore(from + 20);
      }
      const files = segmentFiles(dir);
      maxFiles = Math.max(maxFiles, files.length);
      maxBytes = Math.max(
        maxBytes,
        files.reduce((n, f) => n + nodeFs.statSync(path.join(dir, f)).size, 0),
      );
    }
    assert.ok(maxFiles <= 4, `at most ${maxFiles} segments at once`);
    assert.ok(maxBytes <= 4 * 8192 + 4096, `at most ${maxBytes} bytes on disk`);
    await wal.close();
    const again = await Wal.open(opts);
    assert.equal(again.lastIndex(), 4000);
    assert.equal(again.snapshotMarker?.index, 4000);
    await again.close();
  });
});

describe("purging segments", () => {
  it("two purges running at once delete each segment once and leave the log healthy", async () => {
    const { SimFileSystem } = await import("../../src/storage/sim-fs.js");
    const sim = new SimFileSystem(9);
    const wal = await Wal.open({ fs: sim, dir: "/wal", segmentBytes: 1024 });
    for (let i = 0; i < 20; i++)
      await wal.append(batch(i * 5 + 1, 5, 1), { term: 1, vote: 1, commit: i * 5 + 5 });
    const before = wal.segmentCount;
    const cs = { voters: [1], learners: [], votersOutgoing: [], learnersNext: [], autoLeave: false };
    await wal.recordSnapshot({ index: 90, term: 1, confState: cs });
    await Promise.all([wal.releaseBefore(61), wal.releaseBefore(91)]);
    assert.ok(wal.segmentCount < before, "segments were purged");
    await wal.append([entry(101, 1)]);
    await wal.close();
    const again = await Wal.open({ fs: sim, dir: "/wal", segmentBytes: 1024 });
    assert.equal(again.lastIndex(), 101);
    assert.equal(again.snapshotMarker?.index, 90);
    await again.close();
  });
});

describe("replacements within one write", () => {
  it("an append replacing the tail of one made in the same tick reads back replaced, also after reopening", async () => {
    const dir = freshDir();
    const wal = await Wal.open({ fs, dir, tailCacheBytes: 0 });
    const first = wal.append([entry(1, 1), entry(2, 1, "old")]);
    const second = wal.append([entry(2, 2, "new"), entry(3, 2)]);
    await Promise.all([first, second]);
    assert.equal(wal.stats.writes, 1, "both appends went out in one write");
    assert.deepEqual(readAll(wal), ["1:1:e1@1", "2:2:new", "3:2:e3@2"]);
    await wal.close();
    const again = await Wal.open({ fs, dir, tailCacheBytes: 0 });
    assert.deepEqual(readAll(again), ["1:1:e1@1", "2:2:new", "3:2:e3@2"]);
    await again.close();
  });
});
