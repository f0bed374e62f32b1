import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { CompactedError, UnavailableError } from "../../src/raft/errors.js";
import { RawNode } from "../../src/raft/raw-node.js";
import { type ConfState, EMPTY_CONF_STATE, type Entry, EntryType } from "../../src/raft/types.js";
import { DiskStorage } from "../../src/storage/disk-storage.js";
import { StorageError } from "../../src/storage/errors.js";
import { SimFileSystem } from "../../src/storage/sim-fs.js";

const cs = (voters: number[]): ConfState => ({ ...EMPTY_CONF_STATE, voters });
const entry = (index: number, term: number, text = `e${index}`): Entry => ({
  index,
  term,
  type: EntryType.Normal,
  data: Buffer.from(text),
});
const dir = "/data/node1";

/** The newest snapshot's payload, streamed from its file, as text. */
async function payloadText(st: DiskStorage): Promise<string> {
  const parts: Uint8Array[] = [];
  for await (const c of (await st.snapshotPayload()).chunks()) parts.push(c);
  return Buffer.concat(parts).toString();
}

async function bootstrapped(fs: SimFileSystem): Promise<DiskStorage> {
  const s = await DiskStorage.open({ fs, dir });
  await s.bootstrap(cs([1]));
  return s;
}

describe("raft's Storage on disk", () => {
  it("bootstraps a cluster's membership as a snapshot at index 1 that survives a crash", async () => {
    const fs = new SimFileSystem(1);
    const s = await bootstrapped(fs);
    assert.equal(s.firstIndex(), 2);
    assert.equal(s.lastIndex(), 1);
    assert.equal(s.term(1), 1);
    await assert.rejects(s.bootstrap(cs([1])), StorageError);
    fs.crash("lose-all-unsynced");
    const again = await DiskStorage.open({ fs, dir });
    assert.deepEqual(again.initialState().confState.voters, [1]);
    assert.deepEqual(again.initialState().hardState, { term: 1, vote: 0, commit: 1 });
    assert.equal(again.snapshot().metadata.index, 1);
  });

  it("serves entries, terms and bounds as raft expects, with typed errors outside them", async () => {
    const fs = new SimFileSystem(2);
    const s = await bootstrapped(fs);
    await s.append([entry(2, 1), entry(3, 1), entry(4, 2)], { term: 2, vote: 1, commit: 3 });
    assert.deepEqual(
      s.entries(2, 5, 1 << 20).map((e) => e.index),
      [2, 3, 4],
    );
    assert.equal(s.entries(2, 5, 1).length, 1, "at least one entry even over the byte limit");
    assert.equal(s.term(4), 2);
    assert.throws(() => s.entries(1, 3, 100), CompactedError);
    assert.throws(() => s.entries(3, 6, 100), UnavailableError);
    assert.throws(() => s.term(0), CompactedError);
    assert.throws(() => s.term(5), UnavailableError);
  });

  it("a single-node raft on it commits, crashes, and comes back with everything it acknowledged", async () => {
    const fs = new SimFileSystem(3);
    const storage = await bootstrapped(fs);
    const node = new RawNode({ id: 1, storage, applied: 1 });
    node.campaign();
    const applied: string[] = [];
    const drive = async () => {
      while (node.hasReady()) {
        const rd = node.ready();
        if (rd.snapshot) await storage.installSnapshot(rd.snapshot, rd.hardState);
        await storage.append(rd.entries, rd.hardState, rd.mustSync);
        for (const e of rd.committedEntries)
          if (e.data.byteLength) applied.push(Buffer.from(e.data).toString());
        node.advance(rd);
      }
    };
    await drive();
    assert.equal(node.raft.role, "leader");
    for (const v of ["a", "b", "c"]) node.propose(Buffer.from(v));
    await drive();
    assert.deepEqual(applied, ["a", "b", "c"]);
    fs.crash("random");
    const reopened = await DiskStorage.open({ fs, dir });
    const restarted = new RawNode({ id: 1, storage: reopened, applied: 1 });
    // The commit index alone is not synced (it is learned again), so the entries come back committed
    // once the node leads again; every one of them was made durable before it was applied.
    assert.equal(reopened.lastIndex(), 5, "the entries are there");
    restarted.campaign();
    const replayed: string[] = [];
    while (restarted.hasReady()) {
      const rd = restarted.ready();
      await reopened.append(rd.entries, rd.hardState, rd.mustSync);
      for (const e of rd.committedEntries)
        if (e.data.byteLength) replayed.push(Buffer.from(e.data).toString());
      restarted.advance(rd);
    }
    assert.deepEqual(replayed, ["a", "b", "c"], "every applied entry was durable and comes back");
  });

  it("a change of the commit index alone costs no fdatasync; it is written with the next write, or at close", async () => {
    const fs = new SimFileSystem(31);
    const s = await bootstrapped(fs);
    await s.append([entry(2, 1), entry(3, 1)], { term: 1, vote: 1, commit: 1 });
    const syncs = s.wal.stats.syncs;
    await s.append([], { term: 1, vote: 1, commit: 3 }, false);
    assert.equal(s.wal.stats.syncs, syncs, "no fdatasync for the commit index alone");
    await s.append([], { term: 2, vote: 0, commit: 3 }, true);
    assert.equal(s.wal.stats.syncs, syncs + 1, "a new term is synced");
    await s.append([], { term: 2, vote: 0, commit: 4 }, false);
    await s.append([entry(4, 2)], null, true);
    fs.crash("lose-all-unsynced");
    let again = await DiskStorage.open({ fs, dir });
    assert.deepEqual(
      again.initialState().hardState,
      { term: 2, vote: 0, commit: 4 },
      "the held commit went out with the entry",
    );
    await again.append([], { term: 2, vote: 0, commit: 5 }, false);
    await again.close();
    fs.crash("lose-all-unsynced");
    again = await DiskStorage.open({ fs, dir });
    assert.equal(again.initialState().hardState.commit, 5, "written at close");
  });

  it("the commit index at restart is never below the snapshot, whatever was written last", async () => {
    const fs = new SimFileSystem(32);
    const s = await bootstrapped(fs);
    await s.append(
      Array.from({ length: 9 }, (_, i) => entry(i + 2, 1)),
      { term: 1, vote: 1, commit: 2 },
    );
    await s.append([], { term: 1, vote: 1, commit: 10 }, false); // held, not written
    await s.createSnapshot(8, cs([1]), Buffer.from("state@8"));
    fs.crash("lose-all-unsynced");
    const again = await DiskStorage.open({ fs, dir });
    assert.equal(again.initialState().hardState.commit, 8);
    const node = new RawNode({ id: 1, storage: again, applied: 8 });
    assert.equal(node.raft.log.committed, 8, "raft starts with the snapshot committed");
  });

  it("a local snapshot releases the log before it; reopening starts after the snapshot", async () => {
    const fs = new SimFileSystem(4);
    const s = await DiskStorage.open({ fs, dir, snapshots: { keep: 1 } });
    await s.bootstrap(cs([1]));
    const ents = Array.from({ length: 20 }, (_, i) => entry(i + 2, 1));
    await s.append(ents, { term: 1, vote: 1, commit: 21 });
    await s.createSnapshot(10, cs([1]), Buffer.from("state@10"));
    assert.equal(s.firstIndex(), 11);
    assert.throws(() => s.entries(10, 12, 1000), CompactedError);
    fs.crash("lose-all-unsynced");
    const again = await DiskStorage.open({ fs, dir, snapshots: { keep: 1 } });
    assert.equal(again.firstIndex(), 11);
    assert.equal(again.lastIndex(), 21);
    assert.equal(await payloadText(again), "state@10");
    assert.equal(again.snapshot().data.byteLength, 0, "the payload is not held in memory");
    assert.equal(again.entries(11, 22, 1 << 20).length, 11);
  });

  it("keeps a trailing window of entries before the snapshot, and the log an older kept snapshot needs", async () => {
    for (const [keep, trailingEntries, first] of [
      [1, 5, 6], // the window: entries 5..10 held, 5 anchors the term of 6
      [1, 0, 11],
      [2, 0, 3], // the previous snapshot (bootstrap, at 1) is kept: the log from 2 stays, and is served
    ] as const) {
      const fs = new SimFileSystem(40 + first);
      const s = await DiskStorage.open({ fs, dir, snapshots: { keep }, trailingEntries });
      await s.bootstrap(cs([1]));
      await s.append(
        Array.from({ length: 20 }, (_, i) => entry(i + 2, 1)),
        { term: 1, vote: 1, commit: 21 },
      );
      await s.createSnapshot(10, cs([1]), Buffer.from("state@10"));
      const check = (st: DiskStorage) => {
        assert.equal(st.firstIndex(), first, `keep ${keep}, window ${trailingEntries}`);
        assert.equal(st.term(first - 1), 1);
        assert.throws(() => st.term(first - 2), CompactedError);
        assert.throws(() => st.entries(first - 1, 12, 1 << 20), CompactedError);
        const got = st.entries(first, 22, 1 << 20);
        assert.deepEqual(
          got.map((e) => e.index),
          Array.from({ length: 22 - first }, (_, i) => first + i),
        );
        assert.equal(st.term(10), 1, "the snapshot's own term");
      };
      check(s);
      fs.crash("lose-all-unsynced");
      check(await DiskStorage.open({ fs, dir, snapshots: { keep }, trailingEntries }));
    }
  });

  it("a crash after the snapshot file is saved but before the log records it leaves the old state", async () => {
    const fs = new SimFileSystem(5);
    const s = await bootstrapped(fs);
    await s.append([entry(2, 1), entry(3, 1)], { term: 1, vote: 1, commit: 3 });
    // The snapshot from the leader reaches its file, then the power goes.
    await s.snapshots.save({ index: 50, term: 4, confState: cs([1]) }, Buffer.from("leader@50"));
    fs.crash("random");
    const again = await DiskStorage.open({ fs, dir });
    assert.equal(again.snapshot().metadata.index, 1, "the unrecorded snapshot is not in force");
    assert.equal(again.lastIndex(), 3);
    assert.deepEqual(again.initialState().hardState, { term: 1, vote: 1, commit: 3 });
  });

  it("an installed snapshot replaces the log, durably", async () => {
    const fs = new SimFileSystem(6);
    const s = await bootstrapped(fs);
    await s.append([entry(2, 1), entry(3, 1)], { term: 1, vote: 1, commit: 2 });
    await s.installSnapshot(
      { metadata: { index: 50, term: 4, confState: cs([1, 2]) }, data: Buffer.from("leader@50") },
      { term: 4, vote: 0, commit: 50 },
    );
    fs.crash("lose-all-unsynced");
    const again = await DiskStorage.open({ fs, dir });
    assert.equal(again.firstIndex(), 51);
    assert.equal(again.lastIndex(), 50);
    assert.deepEqual(again.initialState().confState.voters, [1, 2]);
    assert.equal(await payloadText(again), "leader@50");
  });

  it("a corrupt newest snapshot falls back to the previous one that the log still reaches", async () => {
    const fs = new SimFileSystem(7);
    const s = await bootstrapped(fs);
    await s.append(
      Array.from({ length: 30 }, (_, i) => entry(i + 2, 1)),
      { term: 1, vote: 1, commit: 31 },
    );
    await s.createSnapshot(10, cs([1]), Buffer.from("state@10"));
    const newest = await s.createSnapshot(20, cs([1]), Buffer.from("state@20"));
    const file = (await s.snapshots.list()).find((l) => l.index === newest.metadata.index)!.path;
    fs.corrupt(file, 40);
    const again = await DiskStorage.open({ fs, dir });
    assert.equal(again.snapshot().metadata.index, 10);
    // Three snapshots are kept (1, 10, 20): the log after the oldest, the bootstrap one, is served.
    assert.equal(again.firstIndex(), 3);
    assert.equal(
      again.entries(11, 32, 1 << 20).length,
      21,
      "the entries after the older snapshot are still there",
    );
  });
});
