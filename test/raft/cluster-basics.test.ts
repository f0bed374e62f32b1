import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { appliedData, Cluster } from "./helpers/cluster.js";

describe("a cluster driven through RawNode", () => {
  it("elects the node that campaigns and replicates its proposals to everyone", () => {
    const c = new Cluster();
    c.elect(1);
    assert.equal(c.raft(1).role, "leader");
    c.propose(1, "a");
    c.propose(1, "b");
    c.stabilize();
    for (const id of [1, 2, 3]) assert.deepEqual(appliedData(c.node(id)), ["a", "b"]);
  });

  it("elects a leader by ticking alone", () => {
    const c = new Cluster({ ids: [1, 2, 3, 4, 5] });
    c.tickAll(40);
    const leader = c.leader();
    assert.ok(leader, "a leader was elected");
    c.propose(leader.id, "x");
    c.stabilize();
    for (const n of c.nodes.values()) assert.deepEqual(appliedData(n), ["x"]);
  });

  it("a single-node cluster elects itself and commits", () => {
    const c = new Cluster({ ids: [1] });
    c.elect(1);
    assert.equal(c.raft(1).role, "leader");
    c.propose(1, "solo");
    c.stabilize();
    assert.deepEqual(appliedData(c.node(1)), ["solo"]);
  });
});

describe("payloads", () => {
  it("reach the state machine of every node as the very buffer the leader was given", () => {
    const c = new Cluster();
    c.elect(1);
    const payload = new TextEncoder().encode("zero-copy");
    c.node(1).raw.propose(payload);
    c.stabilize();
    // The in-memory network passes messages by reference, so identity shows the core never copied it.
    for (const id of [1, 2, 3]) {
      const applied = c.node(id).applied.find((e) => e.data.byteLength > 0);
      assert.equal(applied?.data, payload);
    }
  });
});
