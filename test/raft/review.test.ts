/**
 * Review findings: each test shows a defect in src/raft that a reviewer found. They fail until the
 * defect is fixed at its root. Deterministic: no timers, no Date, no Math.random.
 */

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { decodeConfChange } from "../../src/raft/confchange/codec.js";
import { RaftError } from "../../src/raft/errors.js";
import type { Ready } from "../../src/raft/raw-node.js";
import { EntryType, type Message, MessageType, message } from "../../src/raft/types.js";
import { appliedData, Cluster, utf8 } from "./helpers/cluster.js";

/** The App messages queued for `to`, removed from the queue (the rest stay queued). */
function takeAppsTo(c: Cluster, to: number): Message[] {
  const mine = c.queue.filter((m) => m.type === MessageType.App && m.to === to);
  c.queue = c.queue.filter((m) => !(m.type === MessageType.App && m.to === to));
  return mine;
}

describe("review: RawNode Ready contract", () => {
  it("a Ready's entries do not change when the node appends between ready() and advance()", () => {
    const c = new Cluster();
    c.elect(1);
    const leader = c.node(1).raw;
    leader.propose(utf8("a"));
    const rd = leader.ready();
    assert.equal(rd.entries.length, 1);
    // The engine is waiting for its fsync; meanwhile a client proposes again (allowed by the API:
    // "Between ready() and advance() the caller may keep stepping messages").
    leader.propose(utf8("b"));
    assert.equal(rd.entries.length, 1, "the Ready handed out one entry; it must stay one entry");
  });

  it("a follower never acknowledges an entry it was not handed to persist (appends between ready and advance)", () => {
    const c = new Cluster();
    c.elect(1);
    c.takeQueue();
    // The leader replicates x, then y; follower 2 gets x, starts persisting it, and y arrives meanwhile.
    c.propose(1, "x");
    c.processReady(1);
    const appX = takeAppsTo(c, 2);
    c.propose(1, "y");
    c.processReady(1);
    const appY = takeAppsTo(c, 2);
    assert.equal(appX.length, 1);
    assert.equal(appY.length, 1);
    const yIndex = appY[0]!.entries[0]!.index;

    const f = c.node(2);
    const raw = f.raw;
    raw.step(appX[0]!);
    const rd1 = raw.ready();
    // The engine writes exactly what this Ready holds, now.
    const written = rd1.entries.slice();
    f.storage.append(written);
    if (rd1.hardState) f.storage.setHardState(rd1.hardState);
    // y arrives while the write is in flight.
    raw.step(appY[0]!);
    raw.advance(rd1);

    // Run the follower's next Ready as the engine would, checking every acknowledgement it sends.
    const rd2 = raw.ready();
    if (rd2.entries.length > 0) f.storage.append(rd2.entries);
    if (rd2.hardState) f.storage.setHardState(rd2.hardState);
    for (const m of [...rd1.messagesAfterPersist, ...rd2.messagesAfterPersist]) {
      if (m.type !== MessageType.AppResp || m.reject) continue;
      assert.ok(
        m.index <= f.storage.lastIndex(),
        `follower acknowledged index ${m.index} but its storage ends at ${f.storage.lastIndex()}`,
      );
    }
    raw.advance(rd2);
    assert.equal(f.storage.lastIndex(), yIndex, "y was written to storage");
  });
});

describe("review: RawNode Ready contract (leader)", () => {
  it("a proposal made while the leader's Ready is being persisted is persisted and applied by the leader", () => {
    const c = new Cluster();
    c.elect(1);
    const n = c.node(1);
    n.raw.propose(utf8("a"));
    const rd = n.raw.ready();
    // The engine starts the write with what this Ready holds and sends the appends at once.
    n.storage.append(rd.entries.slice());
    if (rd.hardState) n.storage.setHardState(rd.hardState);
    for (const m of rd.messages) c.send(m);
    // A client proposes while the fsync is in flight.
    n.raw.propose(utf8("b"));
    for (const m of rd.messagesAfterPersist) c.send(m);
    n.raw.advance(rd);
    c.stabilize();
    assert.equal(
      n.storage.lastIndex(),
      c.raft(1).log.lastIndex(),
      "every entry of the leader's log is in its storage",
    );
    assert.deepEqual(appliedData(n), ["a", "b"]);
  });
});

describe("review: joint consensus", () => {
  it("leaves an automatic joint configuration even when a leader transfer was running when it was entered", () => {
    const c = new Cluster({ node: { electionTicks: 10 } });
    c.elect(1);
    c.addNode(4, [1, 2, 3]);
    // TimeoutNow is lost, so the transfer below never completes and is abandoned after a timeout.
    c.filter = (m) => m.type !== MessageType.TimeoutNow;
    c.node(1).raw.proposeConfChange({ transition: "implicit", changes: [{ type: "addVoter", nodeId: 4 }] });
    c.node(1).raw.transferLeader(2);
    c.stabilize();
    // The leave is proposed by raft itself, not as a client proposal, so the running transfer does
    // not hold it back: the joint configuration is entered and left while the transfer is pending.
    assert.equal(c.raft(1).leadTransferee, 2, "the transfer is still running");
    const changes = c.node(1).applied.filter((e) => e.type === EntryType.ConfChange).length;
    assert.equal(changes, 2, "entered and left the joint configuration");
    // Well past the transfer's election timeout; the cluster is healthy and idle.
    for (let i = 0; i < 100; i++) {
      c.tick(1);
      c.stabilize();
    }
    assert.equal(c.raft(1).role, "leader");
    assert.equal(c.raft(1).leadTransferee, 0, "the transfer was abandoned");
    assert.ok(!c.raft(1).trk.config.voters.isJoint(), "the leader left the joint configuration by itself");
  });
});

describe("review: lease-based reads", () => {
  const text = (b: Uint8Array) => new TextDecoder().decode(b);

  it("a leader that sent TimeoutNow does not serve lease reads that miss the new leader's writes", () => {
    const c = new Cluster({ node: { readOnly: "lease-based", checkQuorum: true, electionTicks: 10 } });
    c.elect(1);
    c.propose(1, "a");
    c.stabilize();
    c.node(1).raw.transferLeader(2);
    c.processReady(1);
    // The TimeoutNow reaches 2; then 1 is cut off (a slow link is enough: it just must not hear of
    // term+1 before the read below).
    const timeoutNow = c.takeQueue().filter((m) => m.type === MessageType.TimeoutNow && m.to === 2);
    assert.equal(timeoutNow.length, 1);
    c.isolate(1);
    c.node(2).raw.step(timeoutNow[0]!);
    c.stabilize();
    assert.equal(c.raft(2).role, "leader", "2 won the transfer election (3's vote is forced)");
    c.propose(2, "w");
    c.stabilize();
    const wIndex = c.raft(2).log.committed;
    assert.equal(c.raft(3).log.committed, wIndex, "w is committed by 2 and 3");

    assert.equal(c.raft(1).role, "leader", "1 has not heard of the new term yet");
    c.node(1).raw.readIndex(utf8("after-w"));
    c.processReady(1);
    for (const rs of c.node(1).readStates) {
      assert.ok(
        rs.index >= wIndex,
        `read ${text(rs.requestContext)} served at index ${rs.index}, before the committed write at ${wIndex}`,
      );
    }
  });

  it("a partitioned leader stops serving lease reads before followers may elect a new leader", () => {
    // Every node draws the shortest election timeout, so timing is exact.
    const fixed = { intn: () => 0 };
    const c = new Cluster({
      node: {
        readOnly: "lease-based",
        checkQuorum: true,
        preVote: true,
        electionTicks: 10,
        heartbeatTicks: 1,
      },
      perNode: { 1: { random: fixed }, 2: { random: fixed }, 3: { random: { intn: () => 5 } } },
    });
    c.elect(1);
    c.propose(1, "a");
    c.stabilize();
    // Run the leader to its check-quorum tick: it checks, then heartbeats; the answers arrive.
    while (c.raft(1).electionElapsed !== 9) c.tickAll(1);
    c.tickAll(1);
    assert.equal(c.raft(1).electionElapsed, 0, "the leader just ran its check-quorum");
    // The last heartbeat round was answered; now the leader is cut off.
    c.isolate(1);
    let newLeaderAt = -1;
    for (let t = 1; t <= 10 && newLeaderAt < 0; t++) {
      c.tickAll(1);
      if (c.raft(2).role === "leader" || c.raft(3).role === "leader") newLeaderAt = t;
    }
    assert.ok(newLeaderAt > 0, "2 and 3 elected a new leader within an election timeout");
    const nl = c.raft(2).role === "leader" ? 2 : 3;
    c.propose(nl, "w");
    c.stabilize();
    const wIndex = c.raft(nl).log.committed;

    assert.equal(
      c.raft(1).role,
      "leader",
      "1 still believes it leads (its check-quorum window is still open)",
    );
    c.node(1).raw.readIndex(utf8("after-w"));
    c.processReady(1);
    for (const rs of c.node(1).readStates) {
      assert.ok(
        rs.index >= wIndex,
        `read ${text(rs.requestContext)} served at index ${rs.index}, before the committed write at ${wIndex}`,
      );
    }
  });
});

describe("review: snapshot restored while committed entries are being applied", () => {
  it("a membership change handed out for applying before a newer snapshot arrived does not alter the snapshot's membership", () => {
    const c = new Cluster();
    c.elect(1);
    c.addNode(4, [1, 2, 3]);
    c.node(1).raw.proposeConfChange({ transition: "auto", changes: [{ type: "addVoter", nodeId: 4 }] });

    // Run the cluster; node 3 handles its Readys like an engine until one hands it the change to apply:
    // that Ready is being applied (the engine is slow) while messages keep arriving.
    const n3 = c.node(3);
    let held: Ready | null = null;
    for (let round = 0; round < 100 && !held; round++) {
      for (const id of [1, 2, 4]) while (c.processReady(id));
      while (!held && n3.raw.hasReady()) {
        const rd = n3.raw.ready();
        if (rd.entries.length > 0) n3.storage.append(rd.entries);
        if (rd.hardState) n3.storage.setHardState(rd.hardState);
        for (const m of [...rd.messages, ...rd.messagesAfterPersist]) c.send(m);
        if (rd.committedEntries.some((e) => e.type === EntryType.ConfChange)) {
          held = rd;
          break;
        }
        n3.applied.push(...rd.committedEntries);
        n3.raw.advance(rd);
      }
      c.deliverAll();
    }
    assert.ok(held, "node 3 was handed the change for applying");

    // Meanwhile the cluster removes 4 again and moves on without 3, and the leader compacts its log.
    const others = () => {
      for (let round = 0; round < 100; round++) {
        let busy = false;
        for (const id of [1, 2, 4]) while (c.processReady(id)) busy = true;
        if (c.queue.length > 0) {
          c.queue = c.queue.filter((m) => m.to !== 3);
          c.deliverAll();
          busy = true;
        }
        if (!busy) return;
      }
    };
    others();
    assert.deepEqual(c.raft(1).trk.confState().voters, [1, 2, 3, 4]);
    c.node(1).raw.proposeConfChange({ transition: "auto", changes: [{ type: "removeNode", nodeId: 4 }] });
    others();
    c.propose(1, "z");
    others();
    const leader = c.node(1);
    assert.deepEqual(leader.confState.voters, [1, 2, 3]);
    const snapIndex = leader.raft.log.applied;
    const snap = leader.storage.createSnapshot(snapIndex, leader.confState, new Uint8Array(0));
    leader.storage.compact(snapIndex);

    // The leader's snapshot reaches node 3 (as after a probe found its next entries compacted).
    n3.raw.step(message({ type: MessageType.Snap, from: 1, to: 3, term: leader.raft.term, snapshot: snap }));
    // The engine finishes applying the Ready it holds, then carries on.
    for (const e of held!.committedEntries) {
      n3.applied.push(e);
      if (e.type === EntryType.ConfChange) n3.confState = n3.raw.applyConfChange(decodeConfChange(e.data));
    }
    n3.raw.advance(held!);
    // Everything heals and settles: node 3 must end up with the cluster's membership.
    c.heal();
    c.tickAll(50);
    assert.ok(n3.raft.log.committed >= snapIndex, "node 3 caught up");
    assert.deepEqual(c.raft(1).trk.confState().voters, [1, 2, 3]);
    assert.deepEqual(
      n3.raft.trk.confState().voters,
      [1, 2, 3],
      "node 3's membership is the cluster's: a change older than the snapshot must not be applied on top of it",
    );
  });
});

describe("review: bad input from a peer", () => {
  it("a ReadIndex from a peer without a context is refused with a raft error, not a TypeError", () => {
    const c = new Cluster();
    c.elect(1);
    const bad = message({ type: MessageType.ReadIndex, from: 2, to: 1 });
    try {
      c.node(1).raw.step(bad);
    } catch (e) {
      assert.ok(
        e instanceof RaftError,
        `expected a RaftError (e.g. StepRejectedError), got ${(e as Error).name}`,
      );
    }
    assert.equal(c.raft(1).role, "leader");
    c.node(1).raw.readIndex(utf8("ok"));
    c.stabilize();
    assert.equal(c.node(1).readStates.length, 1, "reads still work");
  });
});
