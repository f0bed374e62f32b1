import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ProposalDroppedError, RaftUsageError } from "../../src/raft/errors.js";
import { RawNode } from "../../src/raft/raw-node.js";
import { MemoryStorage } from "../../src/raft/storage.js";
import { type Message, MessageType, type ReadState } from "../../src/raft/types.js";
import { Cluster, utf8 } from "./helpers/cluster.js";

const text = (b: Uint8Array) => new TextDecoder().decode(b);

function reads(states: readonly ReadState[]): { index: number; ctx: string }[] {
  return states.map((s) => ({ index: s.index, ctx: text(s.requestContext) }));
}

function heartbeatsWith(msgs: readonly Message[], ctx: string): Message[] {
  return msgs.filter(
    (m) => m.type === MessageType.Heartbeat && m.context !== null && text(m.context) === ctx,
  );
}

describe("read index: safe reads", () => {
  it("a read on the leader is answered only once a quorum acknowledged a heartbeat round carrying it", () => {
    const c = new Cluster();
    c.elect(1);
    const commit = c.raft(1).log.committed;
    c.node(1).raw.readIndex(utf8("r1"));
    c.processReady(1);
    assert.deepEqual(c.node(1).readStates, []);
    assert.equal(heartbeatsWith(c.queue, "r1").length, 2, "one heartbeat to each follower carries the read");

    // The followers hear the heartbeats but their answers are lost: no read state.
    c.dropTypes.add(MessageType.HeartbeatResp);
    c.stabilize();
    assert.deepEqual(c.node(1).readStates, []);

    // Next heartbeat round: only 2 answers. The leader and 2 are a quorum of three.
    c.heal();
    c.filter = (m) => !(m.type === MessageType.HeartbeatResp && m.from === 3);
    c.tick(1);
    c.stabilize();
    assert.deepEqual(reads(c.node(1).readStates), [{ index: commit, ctx: "r1" }]);
  });

  it("holds reads until the new leader has committed an entry of its own term", () => {
    const c = new Cluster();
    c.dropTypes.add(MessageType.AppResp);
    c.elect(1);
    const r1 = c.raft(1);
    assert.equal(r1.role, "leader");
    assert.ok(!r1.committedEntryInCurrentTerm());
    const before = c.sent.length;
    c.node(1).raw.readIndex(utf8("early"));
    c.stabilize();
    c.tick(1);
    c.stabilize();
    assert.deepEqual(c.node(1).readStates, []);
    assert.deepEqual(heartbeatsWith(c.sent.slice(before), "early"), [], "no confirmation round started yet");

    c.heal();
    c.tick(1);
    c.stabilize();
    assert.ok(r1.committedEntryInCurrentTerm());
    // The read index is the commit index that includes the leader's own entry.
    assert.deepEqual(reads(c.node(1).readStates), [{ index: r1.log.lastIndex(), ctx: "early" }]);
  });

  it("a read forwarded from a lagging follower returns the leader's commit index", () => {
    const c = new Cluster();
    c.elect(1);
    c.filter = (m) => !(m.type === MessageType.App && m.to === 3);
    c.propose(1, "a");
    c.propose(1, "b");
    c.stabilize();
    const leaderCommit = c.raft(1).log.committed;
    assert.ok(c.raft(3).log.committed < leaderCommit, "3 lags");

    c.node(3).raw.readIndex(utf8("from-3"));
    c.stabilize();
    assert.deepEqual(reads(c.node(3).readStates), [{ index: leaderCommit, ctx: "from-3" }]);
    assert.deepEqual(c.node(1).readStates, [], "the leader keeps no read state for a forwarded read");
    assert.ok(c.sent.some((m) => m.type === MessageType.ReadIndex && m.from === 3 && m.to === 1));
    assert.ok(c.sent.some((m) => m.type === MessageType.ReadIndexResp && m.from === 1 && m.to === 3));
    // 3 may serve the read only once it applied up to that index, which it has not.
    assert.ok(c.raft(3).log.applied < leaderCommit);
  });

  it("a leader cut off from the quorum never answers a safe read, even once it is reconnected", () => {
    // Without check-quorum the isolated leader keeps believing it leads.
    const c = new Cluster({ node: { checkQuorum: false } });
    c.elect(1);
    c.isolate(1);
    c.node(1).raw.readIndex(utf8("stale"));
    c.tickAll(60);
    assert.equal(c.raft(1).role, "leader", "1 still believes it leads");
    assert.deepEqual(c.node(1).readStates, []);

    const other = [2, 3].map((id) => c.node(id)).find((n) => n.raft.role === "leader");
    assert.ok(other, "the majority elected a new leader");
    c.propose(other.id, "w");
    c.stabilize();
    const newCommit = other.raft.log.committed;

    c.heal();
    c.tickAll(5);
    assert.notEqual(c.raft(1).role, "leader");
    assert.deepEqual(c.node(1).readStates, [], "the old read is dropped, not answered with a stale index");

    // The new leader serves reads at its commit index, which covers the write.
    other.raw.readIndex(utf8("fresh"));
    c.stabilize();
    assert.deepEqual(reads(other.readStates), [{ index: newCommit, ctx: "fresh" }]);
  });

  it("many reads are confirmed by one heartbeat round", () => {
    const c = new Cluster();
    c.elect(1);
    const commit = c.raft(1).log.committed;
    c.dropTypes.add(MessageType.Heartbeat);
    for (let i = 0; i < 10; i++) c.node(1).raw.readIndex(utf8(`r${i}`));
    c.stabilize();
    assert.deepEqual(c.node(1).readStates, []);

    c.heal();
    const before = c.sent.length;
    c.tick(1);
    c.stabilize();
    const heartbeats = c.sent.slice(before).filter((m) => m.type === MessageType.Heartbeat);
    assert.equal(heartbeats.length, 2, "one round: one heartbeat per follower");
    assert.deepEqual(
      reads(c.node(1).readStates),
      Array.from({ length: 10 }, (_, i) => ({ index: commit, ctx: `r${i}` })),
      "all ten answered, in order",
    );
  });

  it("a read's index is the commit index when it arrived: later writes do not hold it back", () => {
    const c = new Cluster();
    c.elect(1);
    c.propose(1, "a");
    c.stabilize();
    const commit = c.raft(1).log.committed;
    c.node(1).raw.readIndex(utf8("r"));
    c.propose(1, "b"); // in flight while the read is confirmed
    c.stabilize();
    assert.deepEqual(reads(c.node(1).readStates), [{ index: commit, ctx: "r" }]);
    assert.ok(c.raft(1).log.committed > commit, "b committed too");
  });

  it("a single-node cluster answers a read at once", () => {
    const c = new Cluster({ ids: [1] });
    c.elect(1);
    c.node(1).raw.readIndex(utf8("solo"));
    c.processReady(1);
    assert.deepEqual(reads(c.node(1).readStates), [{ index: c.raft(1).log.committed, ctx: "solo" }]);
  });

  it("a follower that knows no leader refuses a read", () => {
    const c = new Cluster();
    assert.throws(
      () => c.node(2).raw.readIndex(utf8("nobody")),
      (e: unknown) => e instanceof ProposalDroppedError && e.reason === "no-leader",
    );
  });

  it("in a joint configuration a read needs acknowledgements from a majority of both halves", () => {
    const c = new Cluster();
    c.elect(1);
    c.addNode(4, [1, 2, 3]);
    c.addNode(5, [1, 2, 3]);
    c.node(1).raw.proposeConfChange({
      transition: "explicit",
      changes: [
        { type: "addVoter", nodeId: 4 },
        { type: "addVoter", nodeId: 5 },
        { type: "removeNode", nodeId: 2 },
        { type: "removeNode", nodeId: 3 },
      ],
    });
    c.stabilize();
    assert.equal(c.node(1).confState.votersOutgoing.length, 3);
    const commit = c.raft(1).log.committed;

    // 4 and 5 (with 1, all of the incoming half) acknowledge; the outgoing half does not.
    c.filter = (m) => !(m.type === MessageType.HeartbeatResp && (m.from === 2 || m.from === 3));
    c.node(1).raw.readIndex(utf8("joint"));
    c.stabilize();
    assert.deepEqual(c.node(1).readStates, []);
    // One outgoing voter more makes a majority there too.
    c.filter = (m) => !(m.type === MessageType.HeartbeatResp && m.from === 3);
    c.tick(1);
    c.stabilize();
    assert.deepEqual(reads(c.node(1).readStates), [{ index: commit, ctx: "joint" }]);
  });
});

describe("read index: lease-based reads", () => {
  it("answers a read at once, without a heartbeat round, while a quorum acknowledged a recent one", () => {
    const c = new Cluster({ node: { readOnly: "lease-based" } });
    c.elect(1);
    c.tickAll(1); // one heartbeat round, acknowledged by everyone: the lease
    const before = c.sent.length;
    c.node(1).raw.readIndex(utf8("lease"));
    c.processReady(1);
    assert.deepEqual(reads(c.node(1).readStates), [{ index: c.raft(1).log.committed, ctx: "lease" }]);
    assert.deepEqual(
      c.sent.slice(before).filter((m) => m.type === MessageType.Heartbeat),
      [],
    );
  });

  it("answers a follower's read with one round trip to the leader", () => {
    const c = new Cluster({ node: { readOnly: "lease-based" } });
    c.elect(1);
    c.propose(1, "x");
    c.stabilize();
    c.tickAll(1);
    const before = c.sent.length;
    c.node(2).raw.readIndex(utf8("f"));
    c.stabilize();
    assert.deepEqual(reads(c.node(2).readStates), [{ index: c.raft(1).log.committed, ctx: "f" }]);
    assert.deepEqual(
      c.sent.slice(before).map((m) => m.type),
      [MessageType.ReadIndex, MessageType.ReadIndexResp],
    );
  });

  it("confirms with a quorum instead while no heartbeat round has been acknowledged", () => {
    const c = new Cluster({ node: { readOnly: "lease-based" } });
    c.elect(1);
    c.node(1).raw.readIndex(utf8("early"));
    c.processReady(1);
    assert.deepEqual(reads(c.node(1).readStates), [], "a new leader has no lease yet");
    c.stabilize();
    assert.deepEqual(reads(c.node(1).readStates), [{ index: c.raft(1).log.committed, ctx: "early" }]);
  });

  it("is refused at construction without check-quorum, which the lease depends on", () => {
    assert.throws(
      () =>
        new RawNode({
          id: 1,
          storage: MemoryStorage.withVoters([1, 2, 3]),
          readOnly: "lease-based",
          checkQuorum: false,
        }),
      RaftUsageError,
    );
    // With check-quorum (the default) the same options are fine.
    new RawNode({ id: 1, storage: MemoryStorage.withVoters([1, 2, 3]), readOnly: "lease-based" });
  });
});
