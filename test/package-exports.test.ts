import assert from "node:assert/strict";
import { describe, it } from "node:test";

describe("the package's public entry points", () => {
  it("raftkv/raft can be imported on its own and drives a node", async () => {
    const raft = await import("raftkv/raft");
    const storage = raft.MemoryStorage.withVoters([1]);
    const node = new raft.RawNode({ id: 1, storage });
    node.campaign();
    // A single voter elects itself once its own vote is persisted.
    for (let i = 0; i < 5 && node.raft.role !== "leader"; i++) {
      const rd = node.ready();
      if (rd.hardState) storage.setHardState(rd.hardState);
      storage.append(rd.entries);
      node.advance(rd);
    }
    assert.equal(node.raft.role, "leader");
    assert.equal(typeof raft.encodeConfChange, "function");
    assert.ok(new raft.ProposalDroppedError("no-leader") instanceof raft.RaftError);
  });

  it("the root entry point exposes the raft layer", async () => {
    const root = await import("raftkv");
    assert.equal(typeof root.raft.RawNode, "function");
  });
});
