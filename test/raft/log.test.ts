import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ENTRY_OVERHEAD_BYTES, endWithinBytes } from "../../src/raft/entries.js";
import { RaftLog } from "../../src/raft/log.js";
import { MemoryStorage } from "../../src/raft/storage.js";
import { type Entry, EntryType } from "../../src/raft/types.js";

const entry = (index: number, bytes = 10): Entry => ({
  index,
  term: 1,
  type: EntryType.Normal,
  data: new Uint8Array(bytes),
});
const size = (bytes: number) => bytes + ENTRY_OVERHEAD_BYTES;

describe("size-limited ranges of the log", () => {
  it("cut at the last entry that fits, and never below one entry unless asked", () => {
    const es = [entry(1), entry(2), entry(3), entry(4, 1000)];
    assert.equal(endWithinBytes(es, 0, 4, size(10) * 2), 2);
    assert.equal(endWithinBytes(es, 0, 4, size(10) * 3), 3);
    assert.equal(endWithinBytes(es, 3, 4, 1), 4, "one oversized entry still goes alone");
    assert.equal(endWithinBytes(es, 3, 4, 1, false), 3, "unless the caller already has entries");
    assert.equal(endWithinBytes(es, 1, 1, 0), 1, "an empty range stays empty");
  });

  it("a slice spanning storage and the unstable tail keeps to the byte limit across the boundary", () => {
    const storage = MemoryStorage.withVoters([1]);
    storage.append([entry(1), entry(2), entry(3)]);
    const log = new RaftLog(storage, 1 << 20);
    log.append([
      { ...entry(4), term: 1 },
      { ...entry(5), term: 1 },
    ]);
    const idx = (es: Entry[]) => es.map((e) => e.index);
    assert.deepEqual(idx(log.slice(1, 6, Number.MAX_SAFE_INTEGER)), [1, 2, 3, 4, 5]);
    assert.deepEqual(idx(log.slice(1, 6, size(10) * 4)), [1, 2, 3, 4]);
    assert.deepEqual(idx(log.slice(2, 6, size(10) * 2)), [2, 3], "the storage part alone fills the budget");
    assert.deepEqual(idx(log.slice(4, 6, 1)), [4], "at least one entry from the unstable part");
    assert.deepEqual(idx(log.slice(3, 6, size(10) + 5)), [3], "no unstable entry beyond the budget");
  });
});
