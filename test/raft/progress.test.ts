import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { entriesBytes } from "../../src/raft/entries.js";
import { RaftInvariantError } from "../../src/raft/errors.js";
import { Progress } from "../../src/raft/tracker/progress.js";
import { type Message, MessageType, ProgressState } from "../../src/raft/types.js";
import { appliedData, Cluster, logTerms, sentOf } from "./helpers/cluster.js";

function probe(match: number, next: number, maxInflight = 4, maxInflightBytes = 0): Progress {
  const pr = new Progress(next, maxInflight, maxInflightBytes, false);
  pr.match = match;
  return pr;
}

function replicate(match: number, maxInflight = 4, maxInflightBytes = 0): Progress {
  const pr = probe(match, match + 1, maxInflight, maxInflightBytes);
  pr.becomeReplicate();
  return pr;
}

/** The leader's progress for `peer`. */
function progressOf(c: Cluster, leader: number, peer: number): Progress {
  const pr = c.raft(leader).trk.progress.get(peer);
  assert.ok(pr, `leader ${leader} tracks ${peer}`);
  return pr;
}

/** Append messages that carry entries. */
function appsWithEntries(c: Cluster, from: number, to: number): Message[] {
  return sentOf(c, MessageType.App, from, to).filter((m) => m.entries.length > 0);
}

describe("Progress", () => {
  describe("maybeUpdate", () => {
    it("raises match and next when the follower acknowledges more", () => {
      const pr = probe(3, 4);
      assert.equal(pr.maybeUpdate(7), true);
      assert.equal(pr.match, 7);
      assert.equal(pr.next, 8);
    });

    it("ignores an acknowledgement at or below match", () => {
      const pr = probe(5, 6);
      assert.equal(pr.maybeUpdate(5), false);
      assert.equal(pr.maybeUpdate(2), false);
      assert.equal(pr.match, 5);
      assert.equal(pr.next, 6);
    });

    it("never lowers next, which may run ahead of match in replicate", () => {
      const pr = replicate(3);
      pr.sentEntries(5, 50); // next = 9
      assert.equal(pr.maybeUpdate(5), true);
      assert.equal(pr.match, 5);
      assert.equal(pr.next, 9);
    });

    it("unpauses a paused probe", () => {
      const pr = probe(3, 4);
      pr.sentEntries(1, 10);
      assert.equal(pr.isPaused(), true);
      pr.maybeUpdate(4);
      assert.equal(pr.isPaused(), false);
    });
  });

  describe("maybeDecrTo", () => {
    it("in probe, backs next up to the hint but never below match+1, and unpauses", () => {
      const pr = probe(2, 10);
      pr.sentEntries(1, 10);
      assert.equal(pr.maybeDecrTo(9, 5), true);
      assert.equal(pr.next, 6, "next = hint + 1");
      assert.equal(pr.isPaused(), false);

      const low = probe(4, 10);
      assert.equal(low.maybeDecrTo(9, 1), true);
      assert.equal(low.next, 5, "never below match + 1");

      const high = probe(0, 10);
      assert.equal(high.maybeDecrTo(9, 50), true);
      assert.equal(high.next, 9, "never above the rejected index");
    });

    it("in probe, ignores a stale rejection of an index other than next-1", () => {
      const pr = probe(2, 10);
      pr.sentEntries(1, 10);
      assert.equal(pr.maybeDecrTo(7, 3), false);
      assert.equal(pr.maybeDecrTo(12, 3), false);
      assert.equal(pr.next, 10);
      assert.equal(pr.isPaused(), true, "a stale rejection does not unpause");
    });

    it("in replicate, ignores a stale rejection at or below match", () => {
      const pr = replicate(5);
      pr.sentEntries(3, 30);
      assert.equal(pr.maybeDecrTo(5, 0), false);
      assert.equal(pr.maybeDecrTo(4, 0), false);
      assert.equal(pr.next, 9);
      assert.equal(pr.state, ProgressState.Replicate);
    });

    it("in replicate, a real rejection resets next to match+1", () => {
      const pr = replicate(5);
      pr.sentEntries(3, 30);
      assert.equal(pr.maybeDecrTo(8, 2), true);
      assert.equal(pr.next, 6);
    });
  });

  describe("isPaused", () => {
    it("in probe, pauses only after an append is sent, until it is answered", () => {
      const pr = probe(0, 1);
      assert.equal(pr.isPaused(), false);
      pr.sentEntries(2, 20);
      assert.equal(pr.isPaused(), true);
    });

    it("in replicate, pauses only when the inflight window is full", () => {
      const pr = replicate(0, 2);
      pr.sentEntries(1, 10);
      assert.equal(pr.isPaused(), false);
      pr.sentEntries(1, 10);
      assert.equal(pr.isPaused(), true);
      pr.maybeUpdate(1);
      pr.inflights.freeLE(1);
      assert.equal(pr.isPaused(), false);
    });

    it("in snapshot, is always paused", () => {
      const pr = probe(0, 1);
      pr.becomeSnapshot(10);
      assert.equal(pr.isPaused(), true);
    });
  });

  describe("sentEntries", () => {
    it("in probe, pauses without advancing next", () => {
      const pr = probe(3, 4);
      pr.sentEntries(5, 100);
      assert.equal(pr.next, 4);
      assert.equal(pr.inflights.length, 0);
      assert.equal(pr.isPaused(), true);
    });

    it("in probe, an empty append does not pause", () => {
      const pr = probe(3, 4);
      pr.sentEntries(0, 0);
      assert.equal(pr.isPaused(), false);
    });

    it("in replicate, advances next and records the message in the inflight window", () => {
      const pr = replicate(3);
      pr.sentEntries(2, 40);
      assert.equal(pr.next, 6);
      pr.sentEntries(3, 60);
      assert.equal(pr.next, 9);
      assert.equal(pr.inflights.length, 2);
      assert.equal(pr.inflights.totalBytes, 100);
      pr.inflights.freeLE(5);
      assert.equal(pr.inflights.length, 1, "the first message ended at index 5");
    });

    it("in replicate, an empty append takes no room in the window", () => {
      const pr = replicate(3);
      pr.sentEntries(0, 0);
      assert.equal(pr.next, 4);
      assert.equal(pr.inflights.length, 0);
    });

    it("bounds the replicate window by bytes as well as by count", () => {
      const pr = replicate(0, 100, 250);
      pr.sentEntries(1, 100);
      pr.sentEntries(1, 100);
      assert.equal(pr.isPaused(), false);
      pr.sentEntries(1, 100);
      assert.equal(pr.isPaused(), true, "300 bytes in flight exceed the 250-byte window");
      assert.equal(pr.inflights.length, 3);
    });

    it("in snapshot, refuses to record entries", () => {
      const pr = probe(0, 1);
      pr.becomeSnapshot(10);
      assert.throws(() => pr.sentEntries(1, 10), RaftInvariantError);
    });
  });

  describe("state changes", () => {
    it("becomeReplicate and becomeProbe restart from match+1 with an empty window", () => {
      const pr = replicate(4, 2);
      pr.sentEntries(2, 20);
      pr.sentEntries(2, 20);
      pr.becomeProbe();
      assert.equal(pr.state, ProgressState.Probe);
      assert.equal(pr.next, 5);
      assert.equal(pr.inflights.length, 0);
      assert.equal(pr.isPaused(), false);
    });

    it("becomeSnapshot records the pending snapshot and sets next past it", () => {
      const pr = probe(2, 3);
      pr.becomeSnapshot(20);
      assert.equal(pr.state, ProgressState.Snapshot);
      assert.equal(pr.pendingSnapshot, 20);
      assert.equal(pr.next, 21);
    });

    it("leaving snapshot for probe resumes after the snapshot if it was not cleared, else after match", () => {
      const finished = probe(2, 3);
      finished.becomeSnapshot(20);
      finished.becomeProbe();
      assert.equal(finished.next, 21);
      assert.equal(finished.pendingSnapshot, 0);

      const failed = probe(2, 3);
      failed.becomeSnapshot(20);
      failed.pendingSnapshot = 0;
      failed.becomeProbe();
      assert.equal(failed.next, 3);
    });
  });
});

describe("the leader's flow control towards a follower", () => {
  it("starts a follower in probe and moves it to replicate on a successful append response", () => {
    const c = new Cluster();
    c.dropTypes.add(MessageType.AppResp);
    c.elect(1);
    assert.equal(c.raft(1).role, "leader");
    for (const id of [2, 3]) {
      const pr = progressOf(c, 1, id);
      assert.equal(pr.state, ProgressState.Probe);
      assert.equal(pr.isPaused(), true, "the probe is outstanding");
    }
    c.dropTypes.clear();
    c.tick(1); // heartbeat; its response lets the probe go out again, and this time it is answered
    c.stabilize();
    const last = c.raft(1).log.lastIndex();
    for (const id of [2, 3]) {
      const pr = progressOf(c, 1, id);
      assert.equal(pr.state, ProgressState.Replicate);
      assert.equal(pr.match, last);
      assert.equal(pr.next, last + 1);
    }
  });

  it("sends a follower rejecting an append in replicate back to probe, from its match", () => {
    const c = new Cluster();
    c.elect(1);
    c.propose(1, "a");
    c.stabilize();
    const aIndex = c.raft(1).log.lastIndex();
    // "b" reaches follower 2, which crashes before persisting it: the transport succeeded, so there is
    // no report, and the leader believes the append is on its way.
    c.propose(1, "b");
    c.processReady(1);
    c.deliverAll();
    c.crash(2);
    c.stabilize();
    c.restart(2);
    assert.equal(c.raft(2).log.lastIndex(), aIndex, "follower 2 lost b");
    const pr = progressOf(c, 1, 2);
    assert.equal(pr.state, ProgressState.Replicate);
    assert.equal(pr.next, aIndex + 2);

    c.propose(1, "c");
    c.processReady(1); // App(index of b, [c]) to 2
    c.deliverAll();
    c.processReady(2); // 2 rejects it
    const rejection = c.queue.find((m) => m.type === MessageType.AppResp && m.from === 2);
    assert.ok(rejection?.reject, "follower 2 rejects an append that does not follow its log");
    c.deliverAll();
    assert.equal(pr.state, ProgressState.Probe);
    assert.equal(pr.next, aIndex + 1, "the leader resumes from what follower 2 acknowledged");
    c.processReady(1);
    const resend = c.queue.find((m) => m.type === MessageType.App && m.to === 2);
    assert.ok(resend, "the leader probes at once");
    assert.equal(resend.index, aIndex);
    assert.deepEqual(
      resend.entries.map((e) => new TextDecoder().decode(e.data)),
      ["b", "c"],
    );
    c.stabilize();
    assert.equal(pr.state, ProgressState.Replicate);
    assert.deepEqual(appliedData(c.node(2)), ["a", "b", "c"]);
  });

  it("finds where a long divergent log matches in one rejection, using the follower's hint", () => {
    // Without pre-vote and check-quorum so that elections can be forced in a fixed order.
    const c = new Cluster({ node: { preVote: false, checkQuorum: false } });
    c.elect(1);
    c.stabilize();
    const common = c.raft(1).log.lastIndex();
    // The old leader, cut off, appends 50 entries that will never commit.
    c.isolate(1);
    for (let i = 0; i < 50; i++) {
      c.propose(1, `stale-${i}`);
      c.stabilize();
    }
    // The others elect 2 and commit 50 entries of a newer term, then elect 3, whose probe to 1 starts
    // at the end of that long log.
    c.elect(2);
    assert.equal(c.raft(2).role, "leader");
    for (let i = 0; i < 50; i++) c.propose(2, `new-${i}`);
    c.stabilize();
    c.elect(3);
    assert.equal(c.raft(3).role, "leader");
    assert.equal(c.raft(1).log.lastIndex(), common + 50);
    assert.ok(c.raft(3).log.lastIndex() > common + 50);

    c.heal();
    const before = c.sent.length;
    c.tick(3);
    c.stabilize();
    const after = c.sent.slice(before);
    const rejections = after.filter((m) => m.type === MessageType.AppResp && m.from === 1 && m.reject);
    const probes = after.filter((m) => m.type === MessageType.App && m.from === 3 && m.to === 1);
    assert.equal(rejections.length, 1, "one round trip finds the match point");
    // The rejected probe, the accepted one, and at most one empty append carrying the commit index:
    // not one per divergent entry.
    assert.ok(probes.length <= 3, `${probes.length} appends to node 1`);
    assert.deepEqual(logTerms(c.node(1)), logTerms(c.node(3)));
    assert.deepEqual(appliedData(c.node(1)), appliedData(c.node(3)));
    assert.ok(!appliedData(c.node(1)).some((d) => d.startsWith("stale-")));
  });

  it("moves a replicating follower reported unreachable to probe, and back once it answers", () => {
    const c = new Cluster();
    c.elect(1);
    c.propose(1, "a");
    c.stabilize();
    const pr = progressOf(c, 1, 2);
    assert.equal(pr.state, ProgressState.Replicate);
    const match = pr.match;
    c.node(1).raw.reportUnreachable(2);
    assert.equal(pr.state, ProgressState.Probe);
    assert.equal(pr.next, match + 1);
    assert.equal(pr.isPaused(), false, "the next append may go out as a probe");
    assert.equal(progressOf(c, 1, 3).state, ProgressState.Replicate, "other followers are unaffected");

    c.node(1).raw.reportUnreachable(2); // again, while probing: nothing changes
    assert.equal(pr.state, ProgressState.Probe);
    assert.equal(pr.next, match + 1);

    c.propose(1, "b");
    c.stabilize();
    assert.equal(pr.state, ProgressState.Replicate);
    assert.deepEqual(appliedData(c.node(2)), ["a", "b"]);
  });

  it("sends at most one append per heartbeat interval to a probed follower until it answers", () => {
    const heartbeatTicks = 3;
    const c = new Cluster({ node: { heartbeatTicks } });
    c.elect(1);
    c.stabilize();
    // Follower 3's append responses are lost; its heartbeat responses are not.
    c.filter = (m) => !(m.type === MessageType.AppResp && m.from === 3);
    c.node(1).raw.reportUnreachable(3);
    const pr = progressOf(c, 1, 3);
    const before = appsWithEntries(c, 1, 3).length;
    for (let i = 0; i < 5; i++) {
      c.propose(1, `p${i}`);
      c.stabilize();
    }
    assert.equal(appsWithEntries(c, 1, 3).length - before, 1, "one probe, then paused");
    assert.equal(pr.isPaused(), true);

    const perTick: number[] = [];
    for (let t = 1; t <= 3 * heartbeatTicks; t++) {
      c.tick(1);
      c.stabilize();
      perTick.push(appsWithEntries(c, 1, 3).length - before);
    }
    assert.deepEqual(perTick, [1, 1, 2, 2, 2, 3, 3, 3, 4], "one more probe per heartbeat response");

    c.filter = null;
    for (let t = 0; t < heartbeatTicks; t++) c.tick(1);
    c.stabilize();
    assert.equal(pr.state, ProgressState.Replicate);
    assert.deepEqual(appliedData(c.node(3)), ["p0", "p1", "p2", "p3", "p4"]);
  });

  it("bounds the entries carried by one append by maxMessageBytes", () => {
    const maxMessageBytes = 100;
    const c = new Cluster({ node: { maxMessageBytes } });
    c.elect(1);
    c.stabilize();
    const before = c.sent.length;
    const values = Array.from({ length: 9 }, (_, i) => `value-${i}...`); // 10 bytes each: 34 per entry
    c.node(1).raw.proposeBatch(values.map((v) => new TextEncoder().encode(v)));
    c.stabilize();
    const apps = c.sent.slice(before).filter((m) => m.type === MessageType.App && m.to === 2);
    const carrying = apps.filter((m) => m.entries.length > 0);
    for (const m of carrying) {
      assert.ok(entriesBytes(m.entries) <= maxMessageBytes, `${entriesBytes(m.entries)} bytes in one append`);
      assert.ok(m.entries.length <= 2);
    }
    assert.equal(
      carrying.reduce((n, m) => n + m.entries.length, 0),
      9,
    );
    assert.equal(carrying.length, 5, "2+2+2+2+1 entries");
    for (const id of [1, 2, 3]) assert.deepEqual(appliedData(c.node(id)), values);

    // An entry bigger than the bound still goes out, alone.
    const big = "x".repeat(300);
    const mark = c.sent.length;
    c.propose(1, big);
    c.stabilize();
    const bigApps = c.sent
      .slice(mark)
      .filter((m) => m.type === MessageType.App && m.to === 2 && m.entries.length);
    assert.equal(bigApps.length, 1);
    assert.equal(bigApps[0]!.entries.length, 1);
    assert.deepEqual(appliedData(c.node(2)).at(-1), big);
  });

  it("stops sending when the inflight window is full by count and resumes as acknowledgements arrive", () => {
    const c = new Cluster({ node: { maxInflightMessages: 2 } });
    c.elect(1);
    c.stabilize();
    const pr = progressOf(c, 1, 2);
    assert.equal(pr.state, ProgressState.Replicate);
    const before = appsWithEntries(c, 1, 2).length;
    for (const v of ["a", "b", "c", "d"]) {
      c.propose(1, v);
      c.processReady(1); // sent, not yet delivered
    }
    assert.equal(appsWithEntries(c, 1, 2).length - before, 2, "the window holds two appends");
    assert.equal(pr.inflights.length, 2);
    assert.equal(pr.isPaused(), true);

    // Deliver the two appends and return the acknowledgements: the window drains and c, d go out.
    c.deliverAll();
    c.processReady(2);
    c.processReady(3);
    c.deliverAll();
    c.processReady(1);
    const resumed = appsWithEntries(c, 1, 2).slice(2 + before);
    assert.ok(resumed.length > 0, "appends resume once acknowledgements free the window");
    assert.deepEqual(
      resumed.flatMap((m) => m.entries.map((e) => new TextDecoder().decode(e.data))),
      ["c", "d"],
    );
    c.stabilize();
    for (const id of [1, 2, 3]) assert.deepEqual(appliedData(c.node(id)), ["a", "b", "c", "d"]);
    assert.equal(pr.inflights.length, 0);
  });

  it("stops sending when the inflight window is full by bytes", () => {
    // 76-byte payloads make 100-byte entries; the window holds 200 bytes.
    const c = new Cluster({ node: { maxMessageBytes: 100, maxInflightBytes: 200 } });
    c.elect(1);
    c.stabilize();
    const pr = progressOf(c, 1, 2);
    const before = appsWithEntries(c, 1, 2).length;
    const values = ["a", "b", "c", "d"].map((v) => v.repeat(76));
    for (const v of values) {
      c.propose(1, v);
      c.processReady(1);
    }
    assert.equal(appsWithEntries(c, 1, 2).length - before, 2);
    assert.equal(pr.inflights.length, 2, "far below the 256-message bound");
    assert.equal(pr.inflights.totalBytes, 200);
    assert.equal(pr.isPaused(), true);
    c.stabilize();
    for (const id of [1, 2, 3]) assert.deepEqual(appliedData(c.node(id)), values);
  });

  it("recovers a follower whose full inflight window of appends was lost without a report", () => {
    const c = new Cluster({ node: { maxInflightMessages: 2 } });
    c.elect(1);
    c.stabilize();
    // a and b reach follower 2, which crashes before persisting them: no failure is ever reported.
    for (const v of ["a", "b"]) {
      c.propose(1, v);
      c.processReady(1);
      c.deliverAll();
    }
    c.crash(2);
    c.stabilize();
    c.restart(2);
    const pr = progressOf(c, 1, 2);
    assert.equal(pr.state, ProgressState.Replicate);
    assert.equal(pr.isPaused(), true, "the window is full of appends that will never be answered");

    c.tickAll(5);
    assert.equal(c.leader()?.id, 1);
    assert.deepEqual(appliedData(c.node(2)), ["a", "b"], "follower 2 caught up");
    c.propose(1, "c");
    c.stabilize();
    assert.deepEqual(appliedData(c.node(2)), ["a", "b", "c"]);
    assert.equal(pr.state, ProgressState.Replicate);
  });
});

describe("answers to stale-term messages", () => {
  it("are rejections the leader's flow control discards, never a probe acknowledgement at index 0", async () => {
    const { compactLog } = await import("./helpers/cluster.js");
    const { message } = await import("../../src/raft/types.js");
    const c = new Cluster();
    c.elect(1);
    for (const v of ["a", "b"]) c.propose(1, v);
    c.stabilize();
    compactLog(c.node(1), c.raft(1).log.applied);
    const pr = c.raft(1).trk.progress.get(2)!;
    const before = { state: pr.state, match: pr.match, next: pr.next };
    const snapsBefore = sentOf(c, MessageType.Snap).length;
    // What a node answers to an append from an older term, arriving once we lead that term.
    c.node(1).raw.step(
      message({ type: MessageType.AppResp, from: 2, to: 1, term: c.raft(1).term, reject: true }),
    );
    c.stabilize();
    assert.deepEqual({ state: pr.state, match: pr.match, next: pr.next }, before);
    assert.equal(sentOf(c, MessageType.Snap).length, snapsBefore, "no needless snapshot");
  });
});
