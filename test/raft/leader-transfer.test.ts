import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ProposalDroppedError } from "../../src/raft/errors.js";
import { MessageType } from "../../src/raft/types.js";
import { appliedData, Cluster } from "./helpers/cluster.js";

function expectDropped(f: () => void, reason: ProposalDroppedError["reason"]): void {
  assert.throws(f, (e: unknown) => e instanceof ProposalDroppedError && e.reason === reason);
}

function timeoutNows(c: Cluster, from = 0): { from: number; to: number }[] {
  return c.sent
    .slice(from)
    .filter((m) => m.type === MessageType.TimeoutNow)
    .map((m) => ({ from: m.from, to: m.to }));
}

describe("leader transfer", () => {
  it("hands leadership to an up-to-date follower with TimeoutNow; it wins the next term", () => {
    const c = new Cluster();
    c.elect(1);
    c.propose(1, "a");
    c.stabilize();
    const term = c.raft(1).term;
    const before = c.sent.length;

    c.node(1).raw.transferLeader(2);
    c.processReady(1);
    assert.deepEqual(timeoutNows(c, before), [{ from: 1, to: 2 }], "sent at once: 2 is caught up");
    c.stabilize();

    assert.equal(c.raft(2).role, "leader");
    assert.equal(c.raft(2).term, term + 1);
    assert.equal(c.raft(1).role, "follower");
    assert.equal(c.raft(1).lead, 2);
    // The transfer election overrides the followers' leader lease: 3 voted although it had a leader.
    assert.ok(
      c.sent
        .slice(before)
        .some((m) => m.type === MessageType.VoteResp && m.from === 3 && m.to === 2 && !m.reject),
    );
    c.propose(2, "b");
    c.stabilize();
    for (const id of [1, 2, 3]) assert.deepEqual(appliedData(c.node(id)), ["a", "b"]);
  });

  it("a transfer requested at a follower is forwarded to the leader", () => {
    const c = new Cluster();
    c.elect(1);
    c.node(3).raw.transferLeader(2);
    c.stabilize();
    assert.equal(c.raft(2).role, "leader");
    assert.deepEqual(timeoutNows(c), [{ from: 1, to: 2 }]);
  });

  it("lets a lagging follower catch up before sending it TimeoutNow", () => {
    const c = new Cluster();
    c.elect(1);
    c.filter = (m) => !(m.type === MessageType.App && m.to === 3);
    for (const x of ["a", "b", "c"]) c.propose(1, x);
    c.stabilize();
    c.filter = null;
    assert.ok(c.raft(3).log.lastIndex() < c.raft(1).log.lastIndex(), "3 lags");
    const term = c.raft(1).term;
    const before = c.sent.length;

    c.node(1).raw.transferLeader(3);
    c.processReady(1);
    assert.deepEqual(timeoutNows(c, before), [], "no TimeoutNow while 3 lags");
    assert.ok(
      c.queue.some((m) => m.type === MessageType.App && m.to === 3),
      "an append goes out instead",
    );
    c.stabilize();

    assert.deepEqual(timeoutNows(c, before), [{ from: 1, to: 3 }]);
    assert.equal(c.raft(3).role, "leader");
    assert.equal(c.raft(3).term, term + 1);
    assert.deepEqual(appliedData(c.node(3)), ["a", "b", "c"]);
    // TimeoutNow went out only after 3 acknowledged the whole log.
    const sent = c.sent.slice(before);
    const timeoutAt = sent.findIndex((m) => m.type === MessageType.TimeoutNow);
    const lastAck = sent.findIndex(
      (m) =>
        m.type === MessageType.AppResp &&
        m.from === 3 &&
        !m.reject &&
        m.index === c.raft(1).log.lastIndex() - 1,
    );
    assert.ok(lastAck >= 0 && lastAck < timeoutAt);
  });

  it("refuses proposals while the transfer runs and abandons it after an election timeout", () => {
    const c = new Cluster({ node: { electionTicks: 10 } });
    c.elect(1);
    const term = c.raft(1).term;
    c.isolate(3);
    c.node(1).raw.transferLeader(3);
    assert.equal(c.node(1).raw.status().leadTransferee, 3);
    expectDropped(() => c.propose(1, "during"), "leader-transfer-in-progress");
    // A follower's forwarded proposal is dropped as well (silently: the follower cannot be told).
    c.propose(2, "forwarded");
    c.stabilize();

    c.tickAll(9);
    assert.equal(c.node(1).raw.status().leadTransferee, 3, "still trying within the election timeout");
    expectDropped(() => c.propose(1, "still-during"), "leader-transfer-in-progress");
    c.tickAll(1);
    assert.equal(c.node(1).raw.status().leadTransferee, 0, "abandoned");
    assert.equal(c.raft(1).role, "leader");

    c.propose(1, "after");
    c.stabilize();
    assert.deepEqual(appliedData(c.node(2)), ["after"]);
    assert.equal(c.raft(1).term, term, "the TimeoutNow to 3 was lost: no transfer election happened");
  });

  it("a transfer to another node replaces the running one", () => {
    const c = new Cluster();
    c.elect(1);
    c.isolate(3);
    c.node(1).raw.transferLeader(3);
    c.stabilize();
    c.node(1).raw.transferLeader(2);
    c.stabilize();
    assert.equal(c.raft(2).role, "leader");
    assert.equal(c.node(2).raw.status().leadTransferee, 0);
  });

  it("ignores a transfer to the leader itself, to a learner and to a stranger", () => {
    const c = new Cluster({ learners: [4] });
    c.elect(1);
    const term = c.raft(1).term;
    for (const target of [1, 4, 9]) {
      c.node(1).raw.transferLeader(target);
      assert.equal(c.node(1).raw.status().leadTransferee, 0, `transfer to ${target}`);
      c.stabilize();
    }
    c.tickAll(30);
    assert.deepEqual(timeoutNows(c), []);
    assert.equal(c.raft(1).role, "leader");
    assert.equal(c.raft(1).term, term);
    c.propose(1, "unaffected");
    c.stabilize();
    assert.deepEqual(appliedData(c.node(4)), ["unaffected"]);
  });
});

describe("forgetLeader", () => {
  it("lets a follower grant a vote that it would otherwise ignore within the leader's lease", () => {
    const c = new Cluster();
    c.elect(1);
    c.isolate(1);
    // 3 heard from 1 just now: within the lease it ignores 2's campaign.
    c.node(2).raw.campaign();
    c.stabilize();
    assert.notEqual(c.raft(2).role, "leader");
    assert.equal(c.raft(3).lead, 1);

    c.node(3).raw.forgetLeader();
    assert.equal(c.raft(3).lead, 0);
    c.node(2).raw.campaign();
    c.stabilize();
    assert.equal(c.raft(2).role, "leader");
  });

  it("is ignored with lease-based reads, whose safety depends on the lease", () => {
    const c = new Cluster({ node: { readOnly: "lease-based" } });
    c.elect(1);
    c.isolate(1);
    c.node(3).raw.forgetLeader();
    assert.equal(c.raft(3).lead, 1);
    c.node(2).raw.campaign();
    c.stabilize();
    assert.notEqual(c.raft(2).role, "leader");
    assert.equal(c.raft(3).lead, 1);
  });

  it("is a no-op on the leader", () => {
    const c = new Cluster();
    c.elect(1);
    c.node(1).raw.forgetLeader();
    assert.equal(c.raft(1).role, "leader");
    assert.equal(c.raft(1).lead, 1);
  });
});
