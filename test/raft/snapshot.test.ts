import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { Progress } from "../../src/raft/tracker/progress.js";
import { type Message, MessageType, ProgressState } from "../../src/raft/types.js";
import {
  appliedData,
  Cluster,
  compactLog,
  type NodeOptions,
  sentOf,
  stateMachine,
} from "./helpers/cluster.js";

function progressOf(c: Cluster, leader: number, peer: number): Progress {
  const pr = c.raft(leader).trk.progress.get(peer);
  assert.ok(pr, `leader ${leader} tracks ${peer}`);
  return pr;
}

function snapsTo(c: Cluster, to: number): Message[] {
  return sentOf(c, MessageType.Snap, 1, to);
}

/**
 * Node 1 leads; follower 3 applied "a", was cut off while "b", "c", "d" committed, and the leader then
 * compacted its log past everything 3 has. The cut is still in place.
 */
function laggingFollower(node: NodeOptions = {}): { c: Cluster; aIndex: number; snapIndex: number } {
  const c = new Cluster({ node });
  c.elect(1);
  c.propose(1, "a");
  c.stabilize();
  const aIndex = c.raft(1).log.lastIndex();
  c.isolate(3);
  for (const v of ["b", "c", "d"]) c.propose(1, v);
  c.stabilize();
  const snapIndex = c.raft(1).log.applied;
  compactLog(c.node(1), snapIndex);
  assert.equal(c.raft(1).log.firstIndex(), snapIndex + 1);
  assert.equal(c.raft(3).log.lastIndex(), aIndex);
  return { c, aIndex, snapIndex };
}

/** Ticks the leader (only) and settles the cluster. */
function tickLeader(c: Cluster, times = 1): void {
  for (let i = 0; i < times; i++) {
    c.tick(1);
    c.stabilize();
  }
}

describe("sending snapshots", () => {
  it("sends a snapshot to a follower whose next entries are compacted, and the follower restores it", () => {
    const { c, aIndex, snapIndex } = laggingFollower();
    c.heal();
    tickLeader(c);
    const snaps = snapsTo(c, 3);
    assert.equal(snaps.length, 1);
    assert.equal(snaps[0]!.snapshot?.metadata.index, snapIndex);

    const f = c.node(3);
    assert.equal(f.storage.snapshot().metadata.index, snapIndex, "the follower's storage holds it");
    assert.equal(f.raft.log.firstIndex(), snapIndex + 1);
    assert.equal(f.raft.log.committed, snapIndex);
    assert.equal(f.raft.log.applied, snapIndex);
    assert.ok(
      !f.applied.some((e) => e.index > aIndex && e.index <= snapIndex),
      "the applied state jumped over the compacted entries instead of applying them",
    );
    assert.deepEqual(stateMachine(f), ["a", "b", "c", "d"]);

    const pr = progressOf(c, 1, 3);
    assert.equal(pr.state, ProgressState.Replicate);
    assert.equal(pr.match, snapIndex);

    c.propose(1, "e");
    c.stabilize();
    assert.deepEqual(stateMachine(f), ["a", "b", "c", "d", "e"]);
    assert.equal(f.raft.log.lastIndex(), c.raft(1).log.lastIndex());
  });

  it("does not send a snapshot to a follower that has not been active recently", () => {
    const c = new Cluster();
    c.elect(1);
    c.propose(1, "a");
    c.stabilize();
    c.isolate(3);
    // A check-quorum window passes without a word from 3: the leader no longer counts it active.
    const electionTicks = c.raft(1).opts.electionTicks;
    for (let i = 0; i <= electionTicks; i++) {
      c.tick(1);
      c.tick(2);
      c.stabilize();
    }
    const pr = progressOf(c, 1, 3);
    assert.equal(pr.recentActive, false);
    for (const v of ["b", "c"]) c.propose(1, v);
    c.stabilize();
    compactLog(c.node(1), c.raft(1).log.applied);
    // The transport reports 3 unreachable: the leader will probe it from its match, which is compacted.
    c.node(1).raw.reportUnreachable(3);
    assert.equal(pr.state, ProgressState.Probe);
    assert.equal(pr.isPaused(), false);
    assert.ok(pr.next < c.raft(1).log.firstIndex());
    c.propose(1, "d"); // the leader tries to send to 3 again
    c.stabilize();
    tickLeader(c, 3);
    assert.equal(snapsTo(c, 3).length, 0, "no snapshot for a follower that may be down");
    assert.equal(pr.state, ProgressState.Probe);
    assert.equal(pr.pendingSnapshot, 0);

    c.heal();
    tickLeader(c); // heartbeat → response → 3 is active again → snapshot
    assert.equal(snapsTo(c, 3).length, 1);
    c.stabilize();
    assert.deepEqual(stateMachine(c.node(3)), ["a", "b", "c", "d"]);
  });

  it("fast-forwards a follower's commit index instead of restoring when it already has the entries", () => {
    const c = new Cluster();
    c.elect(1);
    c.propose(1, "a");
    c.stabilize();
    const aIndex = c.raft(1).log.lastIndex();
    // Follower 3 appends "b" but its acknowledgement is lost, and it never hears that b committed.
    c.propose(1, "b");
    c.processReady(1);
    c.deliverAll();
    c.processReady(3);
    c.isolate(3);
    c.stabilize();
    const bIndex = c.raft(1).log.committed;
    assert.equal(bIndex, aIndex + 1);
    assert.equal(c.raft(3).log.lastIndex(), bIndex);
    assert.ok(c.raft(3).log.committed < bIndex);
    // The leader believes 3 is at a; a's successor is compacted.
    compactLog(c.node(1), bIndex);
    c.node(1).raw.reportUnreachable(3);
    const pr = progressOf(c, 1, 3);
    assert.equal(pr.match, aIndex);

    c.heal();
    tickLeader(c);
    const snaps = snapsTo(c, 3);
    assert.equal(snaps.length, 1);
    assert.equal(snaps[0]!.snapshot?.metadata.index, bIndex);
    const f = c.node(3);
    assert.equal(f.storage.snapshot().metadata.index, 0, "nothing was restored");
    assert.equal(f.installedSnapshot, null);
    assert.equal(f.raft.log.firstIndex(), 1, "the follower kept its log");
    assert.equal(f.raft.log.committed, bIndex);
    assert.deepEqual(appliedData(f), ["a", "b"], "and applied b from it");
    assert.equal(pr.state, ProgressState.Replicate);
    assert.equal(pr.match, bIndex);
  });
});

describe("snapshot reports", () => {
  it("a failed snapshot moves the follower to probe with the pending snapshot cleared; a new one follows the next heartbeat response", () => {
    const { c, snapIndex } = laggingFollower();
    c.heal();
    c.dropTypes.add(MessageType.Snap);
    tickLeader(c);
    const pr = progressOf(c, 1, 3);
    assert.equal(pr.state, ProgressState.Snapshot);
    assert.equal(pr.pendingSnapshot, snapIndex);

    c.node(1).raw.reportSnapshot(3, "failure");
    assert.equal(pr.state, ProgressState.Probe);
    assert.equal(pr.pendingSnapshot, 0);
    assert.equal(pr.next, pr.match + 1);
    assert.equal(pr.isPaused(), true, "no retry before the follower is heard from again");
    c.dropTypes.clear();

    // Meanwhile the leader moves on and compacts further.
    c.propose(1, "e");
    c.stabilize();
    const newSnapIndex = c.raft(1).log.applied;
    compactLog(c.node(1), newSnapIndex);
    c.propose(1, "f");
    c.stabilize();
    assert.equal(snapsTo(c, 3).length, 1, "proposals do not trigger a retry while paused");

    tickLeader(c);
    const snaps = snapsTo(c, 3);
    assert.equal(snaps.length, 2);
    assert.equal(snaps[1]!.snapshot?.metadata.index, newSnapIndex, "the new snapshot is the latest one");
    assert.deepEqual(stateMachine(c.node(3)), ["a", "b", "c", "d", "e", "f"]);
    assert.equal(pr.state, ProgressState.Replicate);
  });

  it("a finished snapshot moves the follower to probe, then to replicate when its append response arrives", () => {
    const { c, snapIndex } = laggingFollower();
    c.heal();
    const held: Message[] = [];
    c.filter = (m) => {
      if (m.type === MessageType.AppResp && m.from === 3 && !m.reject) {
        held.push(m);
        return false;
      }
      return true;
    };
    tickLeader(c);
    assert.equal(snapsTo(c, 3).length, 1);
    assert.equal(c.node(3).storage.snapshot().metadata.index, snapIndex, "the follower installed it");
    assert.equal(held.length, 1, "its acknowledgement is held back");
    const pr = progressOf(c, 1, 3);
    assert.equal(pr.state, ProgressState.Snapshot);

    c.node(1).raw.reportSnapshot(3, "finish");
    assert.equal(pr.state, ProgressState.Probe);
    assert.equal(pr.pendingSnapshot, 0);
    assert.equal(pr.next, snapIndex + 1, "probing resumes after the snapshot");
    assert.equal(pr.isPaused(), true, "waiting for the follower's answer");

    c.filter = null;
    c.node(1).raw.step(held[0]!);
    assert.equal(pr.state, ProgressState.Replicate);
    assert.equal(pr.match, snapIndex);
    c.propose(1, "e");
    c.stabilize();
    assert.deepEqual(stateMachine(c.node(3)), ["a", "b", "c", "d", "e"]);
  });

  it("reports about a follower that is not receiving a snapshot change nothing", () => {
    const c = new Cluster();
    c.elect(1);
    c.propose(1, "a");
    c.stabilize();
    const pr = progressOf(c, 1, 2);
    const before = { state: pr.state, match: pr.match, next: pr.next };
    c.node(1).raw.reportSnapshot(2, "failure");
    c.node(1).raw.reportSnapshot(2, "finish");
    assert.deepEqual({ state: pr.state, match: pr.match, next: pr.next }, before);
  });

  it("an unreachable report leaves a follower receiving a snapshot in the snapshot state", () => {
    const { c, snapIndex } = laggingFollower();
    c.heal();
    c.dropTypes.add(MessageType.Snap);
    tickLeader(c);
    const pr = progressOf(c, 1, 3);
    assert.equal(pr.state, ProgressState.Snapshot);
    c.node(1).raw.reportUnreachable(3);
    assert.equal(pr.state, ProgressState.Snapshot);
    assert.equal(pr.pendingSnapshot, snapIndex);
  });
});

describe("no latch: a snapshot lost with no report", () => {
  /** Drops the first snapshot sent to node 3, reports nothing, and returns the leader ticks at which snapshots to 3 were sent. */
  function snapTicks(node: NodeOptions, ticks: number): { c: Cluster; at: number[] } {
    const { c } = laggingFollower(node);
    c.heal();
    let dropped = false;
    c.filter = (m) => {
      if (m.type === MessageType.Snap && m.to === 3 && !dropped) {
        dropped = true;
        return false;
      }
      return true;
    };
    const term = c.raft(1).term;
    const at: number[] = [];
    for (let t = 1; t <= ticks; t++) {
      const before = snapsTo(c, 3).length;
      c.tickAll(); // every node ticks: a follower waiting for a snapshot must not disrupt the leader
      for (let k = before; k < snapsTo(c, 3).length; k++) at.push(t);
    }
    assert.equal(c.leader()?.id, 1, "the leader kept its leadership");
    assert.equal(c.raft(1).term, term, "no election was held");
    return { c, at };
  }

  it("sends a new snapshot exactly snapshotTimeoutTicks leader ticks after the lost one", () => {
    const snapshotTimeoutTicks = 7;
    const { c, at } = snapTicks({ snapshotTimeoutTicks }, 30);
    assert.equal(at.length, 2, "one lost snapshot, one retry");
    assert.equal(at[1]! - at[0]!, snapshotTimeoutTicks, "not before the timeout, and not after it");
    assert.deepEqual(stateMachine(c.node(3)), ["a", "b", "c", "d"]);
    assert.equal(progressOf(c, 1, 3).state, ProgressState.Replicate);
  });

  it("a transfer that reports progress is not retried while it keeps reporting, and is once it stops", () => {
    const { c } = laggingFollower({ snapshotTimeoutTicks: 7 });
    c.heal();
    c.filter = (m) => !(m.type === MessageType.Snap && m.to === 3); // the transfer is slow, not lost
    c.tickAll();
    assert.equal(snapsTo(c, 3).length, 1);
    for (let t = 0; t < 30; t++) {
      if (t % 5 === 0) c.node(1).raw.reportSnapshotProgress(3);
      c.tickAll();
    }
    assert.equal(snapsTo(c, 3).length, 1, "no retry while chunks are acknowledged");
    assert.equal(progressOf(c, 1, 3).state, ProgressState.Snapshot);
    c.tickAll(7);
    assert.equal(snapsTo(c, 3).length, 2, "retried once progress stopped for the timeout");
  });

  it("by default retries after five election timeouts", () => {
    const { c, at } = snapTicks({}, 60);
    assert.equal(at.length, 2);
    assert.equal(at[1]! - at[0]!, 5 * c.raft(1).opts.electionTicks);
    assert.deepEqual(stateMachine(c.node(3)), ["a", "b", "c", "d"]);
  });

  it("with snapshotTimeoutTicks 0 never retries on its own, as in etcd/raft; only a report frees it", () => {
    const { c, at } = snapTicks({ snapshotTimeoutTicks: 0 }, 200);
    assert.equal(at.length, 1, "the latch: no retry in 200 ticks");
    const pr = progressOf(c, 1, 3);
    assert.equal(pr.state, ProgressState.Snapshot);
    assert.deepEqual(stateMachine(c.node(3)), ["a"]);

    c.node(1).raw.reportSnapshot(3, "failure");
    c.tickAll();
    assert.equal(snapsTo(c, 3).length, 2);
    assert.deepEqual(stateMachine(c.node(3)), ["a", "b", "c", "d"]);
  });
});

describe("a follower that crashes while installing a snapshot", () => {
  it("catches up after restarting without the snapshot it was sent", () => {
    const { c, aIndex, snapIndex } = laggingFollower();
    const snapshotTimeoutTicks = c.raft(1).opts.snapshotTimeoutTicks;
    c.heal();
    // Follower 3 steps the snapshot and crashes before its Ready is persisted: the transport
    // delivered it, so nobody reports a failure.
    let crashed = false;
    c.filter = (m) => {
      if (m.type === MessageType.Snap && m.to === 3 && !crashed) {
        crashed = true;
        c.node(3).raw.step(m);
        c.crash(3);
        return false; // already stepped
      }
      return true;
    };
    tickLeader(c);
    assert.ok(crashed);
    c.propose(1, "e");
    c.stabilize();
    tickLeader(c, 3);
    c.restart(3);
    const f = c.node(3);
    assert.equal(f.storage.snapshot().metadata.index, 0, "the snapshot was lost in the crash");
    assert.equal(f.raft.log.lastIndex(), aIndex, "its log still ends at a");
    const term = c.raft(1).term;

    for (let t = 0; t < snapshotTimeoutTicks + 5; t++) c.tickAll();
    assert.equal(c.leader()?.id, 1);
    assert.equal(c.raft(1).term, term);
    assert.ok(snapsTo(c, 3).length >= 2, "the leader sent the snapshot again");
    assert.ok(f.storage.snapshot().metadata.index >= snapIndex);
    assert.deepEqual(stateMachine(f), stateMachine(c.node(1)));
    assert.deepEqual(stateMachine(f), ["a", "b", "c", "d", "e"]);
    assert.equal(f.raft.log.lastIndex(), c.raft(1).log.lastIndex());
    assert.equal(f.raft.log.applied, c.raft(1).log.applied);
    assert.equal(progressOf(c, 1, 3).state, ProgressState.Replicate);
  });
});

describe("campaigning with a snapshot pending", () => {
  it("a node holding a snapshot it has not yet persisted does not campaign", () => {
    const { c, snapIndex } = laggingFollower();
    c.heal();
    const captured: Message[] = [];
    c.filter = (m) => {
      if (m.type === MessageType.Snap && m.to === 3) {
        captured.push(m);
        return false;
      }
      return true;
    };
    tickLeader(c);
    c.filter = null;
    assert.equal(captured.length, 1);
    const f = c.node(3);
    f.raw.step(captured[0]!);
    const term = f.raft.term;
    const voteRequests = () =>
      f.raft.msgs.filter((m) => m.type === MessageType.PreVote || m.type === MessageType.Vote).length;

    assert.equal(f.raft.promotable(), false);
    f.raw.campaign();
    f.raw.tick(); // past any election timeout
    for (let i = 0; i < 3 * f.raft.opts.electionTicks; i++) f.raw.tick();
    assert.equal(f.raft.role, "follower");
    assert.equal(f.raft.term, term);
    assert.equal(voteRequests(), 0);

    // Still not while the Ready carrying the snapshot is being persisted.
    const rd = f.raw.ready();
    assert.equal(rd.snapshot?.metadata.index, snapIndex);
    f.raw.campaign();
    assert.equal(f.raft.role, "follower");
    assert.equal(voteRequests(), 0);

    // Once it is durable, the node may campaign again.
    f.storage.applySnapshot(rd.snapshot!);
    if (rd.hardState) f.storage.setHardState(rd.hardState);
    f.raw.advance(rd);
    assert.equal(f.raft.promotable(), true);
    f.raw.campaign();
    assert.notEqual(f.raft.role, "follower");
    assert.equal(voteRequests(), 2);
  });
});

describe("a snapshot that predates a follower's membership", () => {
  it("is not sent to the new follower; a newer snapshot that includes it is", () => {
    const c = new Cluster();
    c.elect(1);
    for (const v of ["a", "b"]) c.propose(1, v);
    c.stabilize();
    // The only snapshot the leader's storage has is of the configuration {1, 2, 3}.
    compactLog(c.node(1), c.raft(1).log.applied);
    c.addNode(4, [1, 2, 3]);
    c.node(1).raw.proposeConfChange({ transition: "auto", changes: [{ type: "addVoter", nodeId: 4 }] });
    c.stabilize();
    c.tickAll(5);
    assert.deepEqual(c.node(1).confState.voters, [1, 2, 3, 4]);
    assert.equal(snapsTo(c, 4).length, 0, "a snapshot node 4 would refuse is never sent");
    assert.equal(progressOf(c, 1, 4).state, ProgressState.Probe);

    // Once the storage offers a snapshot taken after the change, node 4 gets it and catches up.
    const leader = c.node(1);
    const s = leader.storage.createSnapshot(
      leader.raft.log.applied,
      leader.confState,
      new TextEncoder().encode(JSON.stringify(stateMachine(leader))),
    );
    leader.storage.compact(s.metadata.index);
    c.tickAll(3);
    assert.equal(snapsTo(c, 4).length, 1);
    assert.deepEqual(stateMachine(c.node(4)), ["a", "b"]);
    c.propose(1, "c");
    c.stabilize();
    assert.deepEqual(stateMachine(c.node(4)), ["a", "b", "c"]);
  });
});
