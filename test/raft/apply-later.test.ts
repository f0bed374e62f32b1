import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { RaftUsageError } from "../../src/raft/errors.js";
import { RawNode } from "../../src/raft/raw-node.js";
import { MemoryStorage } from "../../src/raft/storage.js";

/** A single-voter node that has elected itself and committed its empty entry, with nothing applied. */
function soloLeader(storage = MemoryStorage.withVoters([1])): RawNode {
  const node = new RawNode({ id: 1, storage });
  node.campaign();
  for (let i = 0; i < 5 && node.hasReady(); i++) {
    const rd = node.ready();
    storage.append(rd.entries);
    if (rd.hardState) storage.setHardState(rd.hardState);
    node.advanceWithoutApplying(rd);
  }
  return node;
}

function persist(storage: MemoryStorage, rd: ReturnType<RawNode["ready"]>): void {
  storage.append(rd.entries);
  if (rd.hardState) storage.setHardState(rd.hardState);
}

describe("applying committed entries later than advance()", () => {
  it("hands each committed entry out once, and counts it applied only when told", () => {
    const storage = MemoryStorage.withVoters([1]);
    const node = soloLeader(storage);
    const committed = node.raft.log.committed;
    assert.equal(node.raft.log.applying, committed, "the leader's empty entry was handed out");
    const appliedBefore = node.raft.log.applied;
    assert.ok(appliedBefore < committed, "and is not applied yet");

    node.propose(Buffer.from("x"));
    const rd = node.ready();
    persist(storage, rd);
    node.advanceWithoutApplying(rd);
    const next = node.ready();
    const handed = next.committedEntries.map((e) => e.index);
    assert.deepEqual(handed, [committed + 1], "only the new entry, not the one handed out before");
    persist(storage, next);
    node.advanceWithoutApplying(next);
    assert.equal(node.hasReady(), false);
    assert.equal(node.raft.log.applied, appliedBefore, "nothing counts as applied until the caller says");

    node.appliedTo(committed + 1);
    assert.equal(node.raft.log.applied, committed + 1);
  });

  it("refuses appliedTo() past what was handed out, or while a Ready is out", () => {
    const node = soloLeader();
    const applying = node.raft.log.applying;
    assert.throws(() => node.appliedTo(applying + 1), RaftUsageError);
    node.propose(Buffer.from("y"));
    node.ready();
    assert.throws(() => node.appliedTo(applying), RaftUsageError);
  });
});
