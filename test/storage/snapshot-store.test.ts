import assert from "node:assert/strict";
import * as nodeFs from "node:fs";
import * as os from "node:os";
import * as nodePath from "node:path";
import { after, describe, it } from "node:test";
import type { RaftLogger } from "../../src/raft/config.js";
import { SeededRandom } from "../../src/raft/rand.js";
import type { ConfState, SnapshotMetadata } from "../../src/raft/types.js";
import { crc32c } from "../../src/storage/crc32c.js";
import {
  SnapshotCorruptError,
  SnapshotMissingError,
  SnapshotOutOfOrderError,
  SnapshotTooLargeError,
  StorageError,
} from "../../src/storage/errors.js";
import type { FileHandle, FileSystem } from "../../src/storage/fs.js";
import { NodeFileSystem } from "../../src/storage/fs.js";
import { type CrashMode, SimFileSystem } from "../../src/storage/sim-fs.js";
import {
  crc32cCombine,
  MAX_HEADER_BYTES,
  maskCrc,
  SnapshotStore,
  type SnapshotStoreOptions,
  snapshotFileName,
} from "../../src/storage/snapshot-store.js";

const roots: string[] = [];
after(() => {
  for (const r of roots) nodeFs.rmSync(r, { recursive: true, force: true });
});

function tempDir(): string {
  const d = nodeFs.mkdtempSync(nodePath.join(os.tmpdir(), "raftkv-snap-"));
  roots.push(d);
  return nodePath.join(d, "snap");
}

interface LogLine {
  level: "debug" | "info" | "warn";
  msg: string;
  fields: Record<string, unknown>;
}

function recordingLogger(): RaftLogger & { lines: LogLine[] } {
  const lines: LogLine[] = [];
  return {
    lines,
    debug: (msg, fields = {}) => lines.push({ level: "debug", msg, fields }),
    info: (msg, fields = {}) => lines.push({ level: "info", msg, fields }),
    warn: (msg, fields = {}) => lines.push({ level: "warn", msg, fields }),
  };
}

const SIMPLE: ConfState = {
  voters: [1, 2, 3],
  learners: [],
  votersOutgoing: [],
  learnersNext: [],
  autoLeave: false,
};
const JOINT: ConfState = {
  voters: [1, 2, 4],
  learners: [5],
  votersOutgoing: [1, 2, 3],
  learnersNext: [3],
  autoLeave: true,
};

function meta(index: number, term = 1, confState: ConfState = SIMPLE): SnapshotMetadata {
  return { index, term, confState };
}

/** Deterministic bytes. */
function bytes(n: number, seed: number): Uint8Array {
  const r = new SeededRandom(seed);
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = r.intn(256);
  return b;
}

async function* chunks(parts: readonly Uint8Array[]): AsyncIterable<Uint8Array> {
  for (const p of parts) yield p;
}

function concat(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

const nodeFsImpl = new NodeFileSystem();

async function open(dir: string, options: SnapshotStoreOptions = {}, fs: FileSystem = nodeFsImpl) {
  return SnapshotStore.open(fs, dir, options);
}

function snapFiles(dir: string): string[] {
  return nodeFs.readdirSync(dir).sort();
}

describe("snapshot store: round trip", () => {
  it("a saved snapshot loads back with the same metadata (a joint configuration) and data", async () => {
    const dir = tempDir();
    const store = await open(dir);
    const data = bytes(1000, 1);
    const info = await store.save(meta(42, 7, JOINT), data);
    assert.equal(info.index, 42);
    assert.equal(info.term, 7);
    assert.equal(info.bytes, 1000);
    assert.equal(info.path, nodePath.join(dir, "snap-000000000000002a-0000000000000007.snap"));
    assert.equal(nodeFs.statSync(info.path).size, info.fileBytes);

    const reopened = await open(dir);
    const loaded = await reopened.loadNewest();
    assert.ok(loaded);
    assert.deepEqual(loaded.metadata, meta(42, 7, JOINT));
    assert.deepEqual(loaded.data, data);
    assert.equal(loaded.path, info.path);
  });

  it("empty data, a small buffer and the largest safe ids and index round-trip", async () => {
    const dir = tempDir();
    const store = await open(dir);
    await store.save(meta(1, 1, { ...SIMPLE, voters: [] }), new Uint8Array(0));
    let loaded = await (await open(dir)).loadNewest();
    assert.deepEqual(loaded?.data, new Uint8Array(0));
    assert.deepEqual(loaded?.metadata.confState.voters, []);

    const big = Number.MAX_SAFE_INTEGER;
    const cs: ConfState = {
      voters: [big, 2 ** 32, 1],
      learners: [2 ** 32 - 1],
      votersOutgoing: [],
      learnersNext: [],
      autoLeave: false,
    };
    await store.save(meta(big, big, cs), new Uint8Array([1, 2, 3]));
    loaded = await (await open(dir)).loadNewest();
    assert.deepEqual(loaded?.metadata, meta(big, big, cs));
    assert.deepEqual(loaded?.data, new Uint8Array([1, 2, 3]));
  });

  it("data from an async iterable of many chunks, small and large, is written in bounded writes", async () => {
    const dir = tempDir();
    for (const writeChunkBytes of [1, 7, 64, 1 << 20]) {
      const d = `${dir}-${writeChunkBytes}`;
      const store = await open(d, { writeChunkBytes });
      const parts = [
        bytes(3, 1),
        new Uint8Array(0),
        bytes(100, 2),
        bytes(64, 3),
        bytes(1, 4),
        bytes(200, 5),
        bytes(6, 6),
      ];
      const info = await store.save(meta(5, 2, JOINT), chunks(parts));
      assert.equal(info.bytes, 374);
      const loaded = await (await open(d)).loadNewest();
      assert.deepEqual(loaded?.metadata, meta(5, 2, JOINT));
      assert.deepEqual(loaded?.data, concat(parts));
    }
  });

  it("a multi-megabyte buffer is written in chunks and loads back intact", async () => {
    const dir = tempDir();
    const writes: number[] = [];
    const fs = new FaultyFs(nodeFsImpl, (n) => writes.push(n));
    const store = await open(dir, { writeChunkBytes: 1 << 20 }, fs);
    const data = bytes(3 * (1 << 20) + 5, 9);
    await store.save(meta(3), data);
    assert.ok(Math.max(...writes) <= 1 << 20, "no write is larger than writeChunkBytes");
    assert.deepEqual((await (await open(dir)).loadNewest())?.data, data);
  });

  it("list() gives the metadata of every snapshot, newest first, and an empty store loads null", async () => {
    const dir = tempDir();
    const store = await open(dir, { keep: 5 });
    assert.equal(await store.loadNewest(), null);
    assert.deepEqual(await store.list(), []);
    assert.equal(store.oldestRetainedIndex(), 0);
    await store.save(meta(10, 1), bytes(10, 1));
    await store.save(meta(20, 2, JOINT), bytes(20, 2));
    await store.save(meta(30, 2), chunks([bytes(30, 3)]));
    const listed = await (await open(dir)).list();
    assert.deepEqual(
      listed.map((l) => [l.metadata, l.bytes]),
      [
        [meta(30, 2), 30],
        [meta(20, 2, JOINT), 20],
        [meta(10, 1), 10],
      ],
    );
    assert.equal(store.oldestRetainedIndex(), 10);
    assert.equal(store.newestIndex(), 30);
  });

  it("the file name encodes index and term as 16 hex digits each", () => {
    assert.equal(snapshotFileName(255, 16), "snap-00000000000000ff-0000000000000010.snap");
  });

  it("CRC-32C of a concatenation is computed from the CRCs of its parts", () => {
    const a = bytes(37, 1);
    for (const n of [0, 1, 2, 3, 7, 8, 100, 4097]) {
      const b = bytes(n, n + 2);
      assert.equal(crc32cCombine(crc32c(a), crc32c(b), n), crc32c(concat([a, b])), `length ${n}`);
    }
  });
});

describe("snapshot store: retention and ordering", () => {
  it("keeps the newest `keep` snapshots and removes older ones, oldest first", async () => {
    const dir = tempDir();
    const log = recordingLogger();
    const store = await open(dir, { keep: 2, logger: log });
    for (let i = 1; i <= 5; i++) await store.save(meta(i * 10, i), bytes(i, i));
    assert.deepEqual(snapFiles(dir), [snapshotFileName(40, 4), snapshotFileName(50, 5)]);
    assert.equal(store.oldestRetainedIndex(), 40);
    const pruned = log.lines.filter((l) => l.msg === "snapshot pruned").map((l) => l.fields.index);
    assert.deepEqual(pruned, [10, 20, 30]);
  });

  it("keep defaults to 3, and keep 1 retains only the newest", async () => {
    const dir = tempDir();
    const store = await open(dir);
    for (let i = 1; i <= 5; i++) await store.save(meta(i), bytes(1, i));
    assert.equal(snapFiles(dir).length, 3);
    const one = await open(`${dir}-1`, { keep: 1 });
    for (let i = 1; i <= 3; i++) await one.save(meta(i), bytes(1, i));
    assert.deepEqual(snapFiles(`${dir}-1`), [snapshotFileName(3, 1)]);
  });

  it("refuses a snapshot at or below the newest index, with a typed error", async () => {
    const dir = tempDir();
    const store = await open(dir);
    await store.save(meta(10, 2), bytes(5, 1));
    for (const index of [10, 9, 1]) {
      await assert.rejects(store.save(meta(index, 3), bytes(5, 2)), (err: unknown) => {
        assert.ok(err instanceof SnapshotOutOfOrderError);
        assert.ok(err instanceof StorageError);
        assert.equal(err.index, index);
        assert.equal(err.newestIndex, 10);
        return true;
      });
    }
    // The refusal also holds after a restart, and nothing was written.
    await assert.rejects((await open(dir)).save(meta(10, 2), bytes(1, 1)), SnapshotOutOfOrderError);
    assert.deepEqual(snapFiles(dir), [snapshotFileName(10, 2)]);
  });

  it("a newest snapshot found corrupt does not block saving at a lower index", async () => {
    const dir = tempDir();
    const store = await open(dir);
    await store.save(meta(10), bytes(50, 1));
    const bad = await store.save(meta(20), bytes(50, 2));
    flipByte(bad.path, 60);
    const reopened = await open(dir);
    assert.equal((await reopened.loadNewest())?.metadata.index, 10);
    await reopened.save(meta(15), bytes(50, 3));
    assert.deepEqual(
      snapFiles(dir),
      [snapshotFileName(10, 1), snapshotFileName(15, 1)],
      "the corrupt one is gone",
    );
    assert.equal((await (await open(dir)).loadNewest())?.metadata.index, 15);
  });

  it("loadNewest passes over snapshots the caller does not accept, which then do not block a save", async () => {
    const dir = tempDir();
    const store = await open(dir, { keep: 5 });
    for (const i of [10, 20, 30]) await store.save(meta(i, 2), bytes(8, i));
    const log = recordingLogger();
    const reopened = await open(dir, { keep: 5, logger: log });
    const asked: number[][] = [];
    const loaded = await reopened.loadNewest((index, term) => {
      asked.push([index, term]);
      return index <= 20;
    });
    assert.equal(loaded?.metadata.index, 20);
    assert.deepEqual(asked, [
      [30, 2],
      [20, 2],
    ]);
    assert.ok(log.lines.some((l) => l.level === "info" && l.fields.index === 30));
    // A snapshot at 25 (or again at 30, under another term) is taken in place of the one passed over.
    await reopened.save(meta(25, 3), bytes(8, 25));
    assert.deepEqual(
      snapFiles(dir),
      [10, 20, 25].map((i) => snapshotFileName(i, i === 25 ? 3 : 2)),
    );
    await assert.rejects(reopened.save(meta(25, 3), bytes(1, 1)), SnapshotOutOfOrderError);
    assert.equal(await reopened.loadNewest(() => false), null);
  });

  it("rejects invalid options and metadata", async () => {
    const dir = tempDir();
    await assert.rejects(open(dir, { keep: 0 }), RangeError);
    await assert.rejects(open(dir, { maxSnapshotBytes: -1 }), RangeError);
    await assert.rejects(open(dir, { writeChunkBytes: 0 }), RangeError);
    const store = await open(dir);
    await assert.rejects(store.save(meta(0), bytes(1, 1)), RangeError);
    await assert.rejects(store.save(meta(1.5), bytes(1, 1)), RangeError);
    await assert.rejects(store.save(meta(2, 1, { ...SIMPLE, voters: [-1] }), bytes(1, 1)), RangeError);
    const many = Array.from({ length: MAX_HEADER_BYTES / 8 }, (_, i) => i + 1);
    await assert.rejects(store.save(meta(3, 1, { ...SIMPLE, voters: many }), bytes(1, 1)), RangeError);
    assert.deepEqual(snapFiles(dir), []);
  });
});

describe("snapshot store: size limit", () => {
  it("refuses a buffer over maxSnapshotBytes before writing anything, and accepts one at the limit", async () => {
    const dir = tempDir();
    const store = await open(dir, { maxSnapshotBytes: 100 });
    await assert.rejects(store.save(meta(1), bytes(101, 1)), (err: unknown) => {
      assert.ok(err instanceof SnapshotTooLargeError);
      assert.equal(err.bytes, 101);
      assert.equal(err.limitBytes, 100);
      return true;
    });
    assert.deepEqual(snapFiles(dir), []);
    await store.save(meta(1), bytes(100, 1));
    assert.equal((await store.loadNewest())?.data.length, 100);
  });

  it("stops a stream that grows over maxSnapshotBytes and leaves no file behind", async () => {
    const dir = tempDir();
    const store = await open(dir, { maxSnapshotBytes: 100, writeChunkBytes: 16 });
    await store.save(meta(1), bytes(10, 1));
    let pulled = 0;
    async function* endless(): AsyncIterable<Uint8Array> {
      for (;;) {
        pulled++;
        yield bytes(30, pulled);
      }
    }
    await assert.rejects(store.save(meta(2), endless()), SnapshotTooLargeError);
    assert.equal(pulled, 4, "the stream is not read past the limit");
    assert.deepEqual(snapFiles(dir), [snapshotFileName(1, 1)]);
    assert.equal((await store.loadNewest())?.metadata.index, 1);
  });

  it("a file over the loading limit is refused as too large, not read into memory", async () => {
    const dir = tempDir();
    await (await open(dir)).save(meta(1), bytes(1000, 1));
    await assert.rejects((await open(dir, { maxSnapshotBytes: 999 })).loadNewest(), SnapshotTooLargeError);
  });
});

function flipByte(path: string, offset: number): void {
  const b = nodeFs.readFileSync(path);
  b[offset]! ^= 0xff;
  nodeFs.writeFileSync(path, b);
}

/** Rewrites the header CRC after an edit, so that a garbage field gets past the checksum. */
function resealHeader(b: Uint8Array): void {
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const headerLen = v.getUint32(10, true);
  v.setUint32(14 + headerLen, maskCrc(crc32c(b, 0, 0, 14 + headerLen)), true);
}

describe("snapshot store: corruption is detected and the previous snapshot is loaded", () => {
  /** Two snapshots (10 and 20); returns the directory, the newest file's bytes and a checker. */
  async function setup() {
    const dir = tempDir();
    const store = await open(dir, { keep: 5 });
    const older = bytes(30, 1);
    await store.save(meta(10, 1), older);
    const newest = await store.save(meta(20, 2, JOINT), bytes(40, 2));
    const original = nodeFs.readFileSync(newest.path);
    const expectFallback = async (what: string, reasonPattern?: RegExp): Promise<void> => {
      const log = recordingLogger();
      const loaded = await (await open(dir, { logger: log })).loadNewest();
      assert.equal(loaded?.metadata.index, 10, what);
      assert.deepEqual(loaded?.data, older, what);
      const warn = log.lines.find((l) => l.level === "warn");
      assert.ok(warn, `${what}: the corruption is logged`);
      assert.equal(warn.fields.file, newest.path, what);
      assert.equal(typeof warn.fields.reason, "string", what);
      if (reasonPattern) assert.match(String(warn.fields.reason), reasonPattern, what);
    };
    const restore = () => nodeFs.writeFileSync(newest.path, original);
    return { dir, path: newest.path, original, expectFallback, restore };
  }

  it("a flipped byte at any offset of the newest file", async () => {
    const { path, original, expectFallback, restore } = await setup();
    for (let off = 0; off < original.length; off++) {
      flipByte(path, off);
      await expectFallback(`byte ${off} flipped`);
      restore();
    }
  });

  it("a single flipped bit at offsets across the file", async () => {
    const { path, original, expectFallback, restore } = await setup();
    const r = new SeededRandom(7);
    for (let i = 0; i < 200; i++) {
      const b = Buffer.from(original);
      const off = r.intn(b.length);
      b[off]! ^= 1 << r.intn(8);
      nodeFs.writeFileSync(path, b);
      await expectFallback(`bit flipped at ${off}`);
      restore();
    }
  });

  it("the newest file truncated at every offset", async () => {
    const { path, original, expectFallback, restore } = await setup();
    for (let len = 0; len < original.length; len++) {
      nodeFs.truncateSync(path, len);
      await expectFallback(`truncated to ${len} bytes`);
      restore();
    }
  });

  it("bytes appended after the trailer", async () => {
    const { path, original, expectFallback } = await setup();
    nodeFs.writeFileSync(path, Buffer.concat([original, Buffer.from([0])]));
    await expectFallback("one extra byte", /past the end/);
  });

  it("wrong magic, unsupported version, garbage header length", async () => {
    const { path, original, expectFallback, restore } = await setup();
    const edit = (f: (b: Buffer, v: DataView) => void) => {
      const b = Buffer.from(original);
      f(b, new DataView(b.buffer, b.byteOffset, b.byteLength));
      nodeFs.writeFileSync(path, b);
    };
    edit((b) => b.write("NOTASNAP", 0, "latin1"));
    await expectFallback("magic", /magic/);
    restore();
    edit((_, v) => v.setUint16(8, 2, true));
    await expectFallback("version", /version 2/);
    restore();
    for (const h of [0, 40, MAX_HEADER_BYTES + 1, 0xffff_ffff]) {
      edit((_, v) => v.setUint32(10, h, true));
      await expectFallback(`header length ${h}`, /header length/);
      restore();
    }
    // A header length in bounds but not the real one fails the header checksum.
    edit((_, v) => v.setUint32(10, v.getUint32(10, true) + 8, true));
    await expectFallback("header length off by 8");
  });

  it("garbage lengths that pass the header checksum are bounded, never allocated", async () => {
    const { path, original, expectFallback, restore } = await setup();
    const headerLen = new DataView(original.buffer, original.byteOffset).getUint32(10, true);
    const dataLenAt = 14 + headerLen - 8;
    const edit = (f: (v: DataView) => void) => {
      const b = Buffer.from(original);
      f(new DataView(b.buffer, b.byteOffset, b.byteLength));
      resealHeader(b);
      nodeFs.writeFileSync(path, b);
    };
    // Data length: 2^53 - 1, 4 GiB, one more and one less than the truth.
    for (const [lo, hi] of [
      [0xffff_ffff, 0x1f_ffff],
      [0, 1],
      [41, 0],
      [39, 0],
    ] as const) {
      edit((v) => {
        v.setUint32(dataLenAt, lo, true);
        v.setUint32(dataLenAt + 4, hi, true);
      });
      await expectFallback(`data length ${hi}:${lo}`, /truncated|past the end/);
      restore();
    }
    edit((v) => v.setUint32(dataLenAt + 4, 0xffff_ffff, true));
    await expectFallback("data length over 2^53", /over 2\^53/);
    restore();
    // The voters count (after index, term and flags): huge, and one more than present.
    for (const count of [0xffff_ffff, 4]) {
      edit((v) => v.setUint32(14 + 17, count, true));
      // A count one too many still parses (the lists shift) but the whole-file checksum catches it.
      await expectFallback(`voters count ${count}`, /count|past its last field|too short|checksum/);
      restore();
    }
    edit((v) => v.setUint8(14 + 16, 0x80));
    await expectFallback("unknown flag", /flags/);
  });

  it("a file whose name does not match its header", async () => {
    const { dir, path } = await setup();
    nodeFs.renameSync(path, nodePath.join(dir, snapshotFileName(20, 3)));
    const log = recordingLogger();
    const loaded = await (await open(dir, { logger: log })).loadNewest();
    assert.equal(loaded?.metadata.index, 10);
    assert.match(String(log.lines.find((l) => l.level === "warn")?.fields.reason), /file name/);
  });

  it("list() leaves out a file whose header is corrupt", async () => {
    const { dir, path } = await setup();
    flipByte(path, 20);
    assert.deepEqual(
      (await (await open(dir)).list()).map((l) => l.index),
      [10],
    );
  });

  it("when every snapshot is corrupt, loadNewest returns null", async () => {
    const { dir, path } = await setup();
    flipByte(path, 100);
    flipByte(nodePath.join(dir, snapshotFileName(10, 1)), 100);
    const log = recordingLogger();
    assert.equal(await (await open(dir, { logger: log })).loadNewest(), null);
    assert.equal(log.lines.filter((l) => l.level === "warn").length, 2);
  });

  it("the error for a corrupt file is typed and names file and reason", async () => {
    const err = new SnapshotCorruptError("/x/snap", "checksum mismatch");
    assert.ok(err instanceof StorageError);
    assert.equal(err.file, "/x/snap");
    assert.equal(err.reason, "checksum mismatch");
    assert.match(err.message, /\/x\/snap.*checksum mismatch/);
  });
});

describe("snapshot store: opening", () => {
  it("creates a missing directory, nested", async () => {
    const dir = nodePath.join(tempDir(), "a", "b");
    const store = await open(dir);
    assert.ok(nodeFs.statSync(dir).isDirectory());
    await store.save(meta(1), bytes(3, 1));
    assert.equal((await (await open(dir)).loadNewest())?.metadata.index, 1);
  });

  it("removes temporary files left by an interrupted save, logs them, and leaves other files alone", async () => {
    const dir = tempDir();
    const store = await open(dir);
    await store.save(meta(5), bytes(10, 1));
    const tmp = nodePath.join(dir, `${snapshotFileName(9, 1)}.tmp`);
    nodeFs.writeFileSync(tmp, bytes(17, 2));
    nodeFs.writeFileSync(nodePath.join(dir, "README"), "x");
    const log = recordingLogger();
    const reopened = await open(dir, { logger: log });
    assert.deepEqual(snapFiles(dir), ["README", snapshotFileName(5, 1)]);
    assert.ok(log.lines.some((l) => l.level === "info" && l.fields.file === tmp));
    assert.equal((await reopened.loadNewest())?.metadata.index, 5);
    // The interrupted save's index is free again.
    await reopened.save(meta(9), bytes(4, 3));
  });
});

// ---------------------------------------------------------------------------------------------
// Fault injection on the real file system (EIO/ENOSPC at each step of a save).

type Op = "create" | "write" | "datasync" | "rename" | "syncDir" | "unlink";

function errno(code: string, op: string): NodeJS.ErrnoException {
  const e: NodeJS.ErrnoException = new Error(`${code}: injected on ${op}`);
  e.code = code;
  return e;
}

/** Wraps a FileSystem; fails the next `count` calls of `op` with `code`, and reports each write's size. */
class FaultyFs implements FileSystem {
  private faults: { op: Op; code: string; count: number }[] = [];
  constructor(
    private readonly inner: FileSystem,
    private readonly onWrite: (bytes: number) => void = () => {},
  ) {}
  failNext(op: Op, code: string, count = 1): void {
    this.faults = [{ op, code, count }];
  }
  /** Arms a fault besides those armed already. */
  failNextAlso(op: Op, code: string, count = 1): void {
    this.faults.push({ op, code, count });
  }
  check(op: Op): void {
    const f = this.faults.find((x) => x.op === op && x.count > 0);
    if (f !== undefined) {
      f.count--;
      throw errno(f.code, op);
    }
  }
  mkdirp(dir: string): void {
    this.inner.mkdirp(dir);
  }
  readdir(dir: string): string[] {
    return this.inner.readdir(dir);
  }
  exists(file: string): boolean {
    return this.inner.exists(file);
  }
  open(file: string): FileHandle {
    return this.wrap(this.inner.open(file));
  }
  create(file: string): FileHandle {
    this.check("create");
    return this.wrap(this.inner.create(file));
  }
  readFile(file: string): Uint8Array {
    return this.inner.readFile(file);
  }
  async rename(from: string, to: string): Promise<void> {
    this.check("rename");
    await this.inner.rename(from, to);
  }
  async unlink(file: string): Promise<void> {
    this.check("unlink");
    await this.inner.unlink(file);
  }
  async syncDir(dir: string): Promise<void> {
    this.check("syncDir");
    await this.inner.syncDir(dir);
  }
  private wrap(h: FileHandle): FileHandle {
    const fs = this;
    return {
      path: h.path,
      size: () => h.size(),
      readSync: (buf, offset, length, position) => h.readSync(buf, offset, length, position),
      async write(data, position) {
        fs.check("write");
        fs.onWrite(data.byteLength);
        await h.write(data, position);
      },
      async datasync() {
        fs.check("datasync");
        await h.datasync();
      },
      truncate: (length) => h.truncate(length),
      close: () => h.close(),
    };
  }
}

describe("snapshot store: I/O errors during a save (real file system with injected faults)", () => {
  for (const op of ["create", "write", "datasync", "rename", "syncDir"] as const) {
    for (const code of ["EIO", "ENOSPC"]) {
      it(`${code} on ${op} rejects with that error and leaves the previous snapshot loadable`, async () => {
        const dir = tempDir();
        const fs = new FaultyFs(nodeFsImpl);
        const store = await open(dir, { writeChunkBytes: 8 }, fs);
        const previous = bytes(20, 1);
        await store.save(meta(10), previous);
        fs.failNext(op, code);
        await assert.rejects(store.save(meta(20), chunks([bytes(30, 2), bytes(5, 3)])), (err: unknown) => {
          assert.equal((err as NodeJS.ErrnoException).code, code);
          return true;
        });
        assert.ok(!snapFiles(dir).some((f) => f.endsWith(".tmp")), "the temporary file is removed");
        assert.deepEqual(snapFiles(dir), [snapshotFileName(10, 1)], "the failed save left nothing behind");
        const loaded = await (await open(dir)).loadNewest();
        assert.deepEqual([loaded?.metadata.index, loaded?.data], [10, previous]);
        // The store carries on once the disk is healthy.
        await store.save(meta(30), bytes(3, 4));
        assert.equal((await (await open(dir)).loadNewest())?.metadata.index, 30);
      });
    }
  }

  it("a save whose directory sync fails and whose snapshot cannot be removed may be retried", async () => {
    const dir = tempDir();
    const fs = new FaultyFs(nodeFsImpl);
    const store = await open(dir, {}, fs);
    await store.save(meta(10), bytes(3, 1));
    fs.failNext("syncDir", "EIO");
    fs.failNextAlso("unlink", "EIO");
    await assert.rejects(store.save(meta(20), bytes(3, 2)), { code: "EIO" });
    await store.save(meta(20), bytes(3, 3));
    assert.deepEqual((await (await open(dir)).loadNewest())?.data, bytes(3, 3));
  });

  it("a failure while pruning does not fail the save, and the next save prunes", async () => {
    const dir = tempDir();
    const fs = new FaultyFs(nodeFsImpl);
    const log = recordingLogger();
    const store = await open(dir, { keep: 1, logger: log }, fs);
    await store.save(meta(1), bytes(1, 1));
    fs.failNext("unlink", "EIO");
    const info = await store.save(meta(2), bytes(1, 2));
    assert.equal(info.index, 2);
    assert.ok(log.lines.some((l) => l.level === "warn" && /pruning/.test(l.msg)));
    assert.equal(snapFiles(dir).length, 2);
    assert.equal(store.oldestRetainedIndex(), 1);
    await store.save(meta(3), bytes(1, 3));
    assert.deepEqual(snapFiles(dir), [snapshotFileName(3, 1)]);
  });

  it("an error thrown by the data stream rejects the save and removes the temporary file", async () => {
    const dir = tempDir();
    const store = await open(dir);
    async function* failing(): AsyncIterable<Uint8Array> {
      yield bytes(10, 1);
      throw new Error("state machine went away");
    }
    await assert.rejects(store.save(meta(1), failing()), /went away/);
    assert.deepEqual(snapFiles(dir), []);
    assert.equal(await store.loadNewest(), null);
  });

  it("concurrent saves run one at a time, in call order", async () => {
    const dir = tempDir();
    const store = await open(dir, { keep: 10 });
    const results = await Promise.allSettled([
      store.save(meta(1), bytes(100, 1)),
      store.save(meta(3), chunks([bytes(10, 2), bytes(10, 3)])),
      store.save(meta(2), bytes(1, 4)),
    ]);
    assert.deepEqual(
      results.map((r) => r.status),
      ["fulfilled", "fulfilled", "rejected"],
    );
    assert.deepEqual(
      (await store.list()).map((l) => l.index),
      [3, 1],
    );
  });
});

// ---------------------------------------------------------------------------------------------
// Power loss and disk faults on the simulated file system.

const SIM_DIR = "/data/snap";

/** The process "dies" with the machine: every call after the crash fails, as nothing runs any more. */
class PowerCut extends Error {
  constructor(readonly before: string) {
    super(`power cut before ${before}`);
  }
}

/**
 * Wraps a SimFileSystem and cuts the power just before the `crashAt`-th mutating operation (create,
 * write, datasync, close, rename, unlink, syncDir), recording the operations that completed.
 */
class CrashAt implements FileSystem {
  readonly ops: string[] = [];
  private dead = false;
  /** Operations count (and the power can go) only once armed: opening the store is not under test. */
  armed = false;
  constructor(
    private readonly sim: SimFileSystem,
    private readonly crashAt: number,
    private readonly mode: CrashMode,
  ) {}
  private step(op: string): void {
    if (this.dead) throw new PowerCut(op);
    if (!this.armed) return;
    if (this.ops.length === this.crashAt) {
      this.sim.crash(this.mode);
      this.dead = true;
      throw new PowerCut(op);
    }
    this.ops.push(op);
  }
  private alive(op: string): void {
    if (this.dead) throw new PowerCut(op);
  }
  mkdirp(dir: string): void {
    this.step("mkdirp");
    this.sim.mkdirp(dir);
  }
  readdir(dir: string): string[] {
    this.alive("readdir");
    return this.sim.readdir(dir);
  }
  exists(file: string): boolean {
    this.alive("exists");
    return this.sim.exists(file);
  }
  open(file: string): FileHandle {
    this.alive("open");
    return this.wrap(this.sim.open(file));
  }
  create(file: string): FileHandle {
    this.step("create");
    return this.wrap(this.sim.create(file));
  }
  readFile(file: string): Uint8Array {
    this.alive("readFile");
    return this.sim.readFile(file);
  }
  async rename(from: string, to: string): Promise<void> {
    this.step("rename");
    await this.sim.rename(from, to);
  }
  async unlink(file: string): Promise<void> {
    this.step("unlink");
    await this.sim.unlink(file);
  }
  async syncDir(dir: string): Promise<void> {
    this.step("syncDir");
    await this.sim.syncDir(dir);
  }
  private wrap(h: FileHandle): FileHandle {
    const self = this;
    return {
      path: h.path,
      size() {
        self.alive("size");
        return h.size();
      },
      readSync(buf, offset, length, position) {
        self.alive("read");
        return h.readSync(buf, offset, length, position);
      },
      async write(data, position) {
        self.step("write");
        await h.write(data, position);
      },
      async datasync() {
        self.step("datasync");
        await h.datasync();
      },
      async truncate(length) {
        self.step("truncate");
        await h.truncate(length);
      },
      async close() {
        self.step("close");
        await h.close();
      },
    };
  }
}

describe("snapshot store: power loss (SimFileSystem)", () => {
  const OLD = bytes(50, 1);
  const NEW_PARTS = [bytes(20, 2), bytes(33, 3), bytes(1, 4), bytes(70, 5)];
  const NEW = concat(NEW_PARTS);

  /** A disk holding one durable snapshot at index 10, and optionally older ones. */
  async function diskWithOldSnapshot(seed: number, keep = 3): Promise<SimFileSystem> {
    const sim = new SimFileSystem(seed);
    const store = await SnapshotStore.open(sim, SIM_DIR, { keep });
    await store.save(meta(5), bytes(10, 9));
    await store.save(meta(10, 2, JOINT), OLD);
    return sim;
  }

  /** Runs a save that crashes before its `crashAt`-th operation; returns the operations completed. */
  async function saveAndCrash(
    sim: SimFileSystem,
    crashAt: number,
    mode: CrashMode,
    keep = 3,
  ): Promise<string[]> {
    const fs = new CrashAt(sim, crashAt, mode);
    const store = await SnapshotStore.open(fs, SIM_DIR, { keep, writeChunkBytes: 16 });
    fs.armed = true;
    try {
      await store.save(meta(20, 3), chunks(NEW_PARTS));
    } catch (err) {
      if (!(err instanceof PowerCut)) throw err;
    }
    return fs.ops;
  }

  /** The operations of a save that is not interrupted. */
  async function opsOfASave(keep = 3): Promise<string[]> {
    return saveAndCrash(
      await diskWithOldSnapshot(1, keep),
      Number.POSITIVE_INFINITY,
      "lose-all-unsynced",
      keep,
    );
  }

  async function restart(sim: SimFileSystem) {
    const store = await SnapshotStore.open(sim, SIM_DIR);
    return { store, loaded: await store.loadNewest() };
  }

  it("a crash between writing the temporary file and the rename leaves the old snapshot in force", async () => {
    const ops = await opsOfASave();
    const renameAt = ops.indexOf("rename");
    assert.deepEqual(ops.slice(renameAt - 2, renameAt + 2), ["datasync", "close", "rename", "syncDir"]);
    for (const mode of ["lose-all-unsynced", "random"] as const) {
      for (let seed = 1; seed <= 50; seed++) {
        const sim = await diskWithOldSnapshot(seed);
        await saveAndCrash(sim, renameAt, mode);
        const { loaded } = await restart(sim);
        assert.deepEqual([loaded?.metadata, loaded?.data], [meta(10, 2, JOINT), OLD], `${mode} seed ${seed}`);
        assert.ok(!sim.list().some((f) => f.endsWith(".tmp")), "the temporary file is gone after restart");
      }
    }
  });

  it("a crash between the rename and the directory sync leaves the old snapshot in force", async () => {
    const ops = await opsOfASave();
    const syncAt = ops.indexOf("rename") + 1;
    for (const mode of ["lose-all-unsynced", "random"] as const) {
      for (let seed = 1; seed <= 50; seed++) {
        const sim = await diskWithOldSnapshot(seed);
        await saveAndCrash(sim, syncAt, mode);
        const { loaded } = await restart(sim);
        assert.deepEqual([loaded?.metadata, loaded?.data], [meta(10, 2, JOINT), OLD], `${mode} seed ${seed}`);
      }
    }
  });

  it("a crash at any point of a save leaves the old snapshot or the new one, never neither, over many seeds", async () => {
    for (const keep of [1, 2, 3]) {
      const ops = await opsOfASave(keep);
      const durableAt = ops.indexOf("rename") + 1; // the directory sync that makes the new name durable
      for (const mode of ["lose-all-unsynced", "random"] as const) {
        for (let seed = 1; seed <= 30; seed++) {
          for (let crashAt = 0; crashAt <= ops.length; crashAt++) {
            const sim = await diskWithOldSnapshot(seed, keep);
            await saveAndCrash(sim, crashAt, mode, keep);
            const what = `keep ${keep}, ${mode}, seed ${seed}, crash before op ${crashAt} (${ops[crashAt] ?? "end"})`;
            const { store, loaded } = await restart(sim);
            if (crashAt > durableAt)
              assert.deepEqual([loaded?.metadata, loaded?.data], [meta(20, 3), NEW], what);
            else assert.deepEqual([loaded?.metadata, loaded?.data], [meta(10, 2, JOINT), OLD], what);
            assert.ok(!sim.list().some((f) => f.endsWith(".tmp")), what);
            // The node carries on: the next save after the restart succeeds and survives a crash.
            await store.save(meta(30, 3), bytes(5, seed));
            sim.crash(mode);
            assert.equal((await restart(sim)).loaded?.metadata.index, 30, what);
          }
        }
      }
    }
  });

  it("a crash while pruning never removes the new snapshot", async () => {
    const ops = await opsOfASave(1);
    assert.ok(ops.includes("unlink"), "keep 1 prunes");
    for (let crashAt = ops.indexOf("rename") + 2; crashAt <= ops.length; crashAt++) {
      for (const mode of ["lose-all-unsynced", "random"] as const) {
        const sim = await diskWithOldSnapshot(crashAt, 1);
        await saveAndCrash(sim, crashAt, mode, 1);
        assert.deepEqual((await restart(sim)).loaded?.data, NEW);
      }
    }
  });

  describe("EIO and ENOSPC surface as the file-system error and leave the previous snapshot loadable", () => {
    for (const op of ["create", "write", "datasync", "rename", "syncDir"] as const) {
      for (const code of ["EIO", "ENOSPC"] as const) {
        it(`${code} on ${op}`, async () => {
          const sim = await diskWithOldSnapshot(3);
          const store = await SnapshotStore.open(sim, SIM_DIR, { writeChunkBytes: 16 });
          sim.failNext(op, code);
          await assert.rejects(store.save(meta(20, 3), chunks(NEW_PARTS)), (err: unknown) => {
            assert.ok(err instanceof Error);
            assert.equal((err as NodeJS.ErrnoException).code, code);
            return true;
          });
          assert.equal(sim.pendingFaults(), 0, "the fault fired");
          assert.ok(!sim.list().some((f) => f.endsWith(".tmp")), "the temporary file is removed");
          // Without a restart, and after a power loss, the previous snapshot loads.
          const live = await store.loadNewest();
          assert.deepEqual([live?.metadata, live?.data], [meta(10, 2, JOINT), OLD]);
          // A retry at the same index is allowed (the failed save does not count).
          assert.equal(store.newestIndex(), 10);
          sim.crash("lose-all-unsynced");
          const { store: after, loaded } = await restart(sim);
          assert.deepEqual([loaded?.metadata, loaded?.data], [meta(10, 2, JOINT), OLD]);
          // Once the disk is healthy again, saving works.
          await after.save(meta(20, 3), NEW);
          sim.crash("lose-all-unsynced");
          assert.deepEqual((await restart(sim)).loaded?.data, NEW);
        });
      }
    }

    it("a full disk (capacity) fails the write with ENOSPC, and the space of the temporary file is freed", async () => {
      const sim = await diskWithOldSnapshot(4);
      const used = sim.usedBytes();
      sim.setCapacity(used + 100);
      const store = await SnapshotStore.open(sim, SIM_DIR, { writeChunkBytes: 16 });
      await assert.rejects(store.save(meta(20, 3), chunks(NEW_PARTS)), { code: "ENOSPC" });
      assert.equal(sim.usedBytes(), used);
      assert.deepEqual((await store.loadNewest())?.data, OLD);
    });
  });

  it("a temporary file that reached the disk is removed on restart, durably", async () => {
    const sim = await diskWithOldSnapshot(6);
    const tmp = `${SIM_DIR}/${snapshotFileName(20, 3)}.tmp`;
    const h = sim.create(tmp);
    await h.write(bytes(40, 1), 0);
    await h.datasync();
    await h.close();
    await sim.syncDir(SIM_DIR);
    sim.crash("random");
    assert.equal((await restart(sim)).loaded?.metadata.index, 10);
    sim.crash("lose-all-unsynced");
    assert.ok(!sim.list().some((f) => f.endsWith(".tmp")));
  });

  it("corruption of the newest file on the simulated disk falls back to the previous snapshot", async () => {
    const sim = await diskWithOldSnapshot(5);
    const store = await SnapshotStore.open(sim, SIM_DIR);
    const info = await store.save(meta(20, 3), NEW);
    const size = sim.snapshotOf(info.path).length;
    for (let off = 0; off < size; off++) {
      sim.corrupt(info.path, off);
      sim.crash("lose-all-unsynced");
      assert.deepEqual((await restart(sim)).loaded?.data, OLD, `offset ${off}`);
      sim.corrupt(info.path, off); // restores the byte
    }
    assert.deepEqual((await restart(sim)).loaded?.data, NEW);
  });
});

describe("snapshot store: streaming a payload", () => {
  const collect = async (it: AsyncIterable<Uint8Array>) => {
    const parts: Uint8Array[] = [];
    for await (const c of it) parts.push(c);
    return { parts, all: concat(parts) };
  };

  it("streams the data back in pieces of at most 1 MiB, byte for byte, for every size", async () => {
    const dir = tempDir();
    const store = await open(dir);
    const MiB = 1024 * 1024;
    for (const [i, size] of [0, 1, MiB, 2 * MiB, 2 * MiB + 1].entries()) {
      const data = bytes(size, 40 + i);
      await store.save(meta(10 + i), chunks([data.subarray(0, 7), data.subarray(7)]));
      const payload = await store.payload(10 + i, 1);
      assert.equal(payload.bytes, size);
      const { parts, all } = await collect(payload.chunks());
      assert.deepEqual(all, data);
      assert.ok(parts.every((p) => p.length <= MiB && p.length > 0));
      assert.equal(parts.length, Math.ceil(size / MiB));
    }
  });

  it("a flipped data byte fails the stream with SnapshotCorruptError; loading without data passes it over", async () => {
    const dir = tempDir();
    const store = await open(dir, { keep: 2 });
    await store.save(meta(5), bytes(3000, 1));
    await store.save(meta(9), bytes(3000, 2));
    const file = nodePath.join(dir, snapshotFileName(9, 1));
    const raw = nodeFs.readFileSync(file);
    raw[raw.length - 100]! ^= 0x01;
    nodeFs.writeFileSync(file, raw);
    const payload = await store.payload(9, 1);
    await assert.rejects(collect(payload.chunks()), SnapshotCorruptError);
    const loaded = await (await open(dir, { keep: 2 })).loadNewest(undefined, { withData: false });
    assert.equal(loaded?.metadata.index, 5, "the corrupt newest was passed over");
    assert.equal(loaded?.data.length, 0, "and the data was not kept");
    assert.equal(loaded?.dataBytes, 3000);
  });

  it("a snapshot that is not there is a SnapshotMissingError", async () => {
    const store = await open(tempDir());
    await store.save(meta(5), bytes(10, 1));
    await assert.rejects(store.payload(5, 2), SnapshotMissingError);
    await assert.rejects(store.payload(6, 1), SnapshotMissingError);
  });
});
