import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  type DispatchReport,
  ReportQueue,
  type ReportTarget,
  routeReport,
} from "../../src/engine/reports.js";
import { MessageType, ProgressState } from "../../src/raft/types.js";
import { Cluster, compactLog, sentOf } from "../raft/helpers/cluster.js";

const failed = (peer: number, messageType: MessageType = MessageType.App): DispatchReport => ({
  kind: "failed",
  peer,
  messageType,
  error: new Error("connection reset"),
});

describe("the report queue", () => {
  const cases: {
    name: string;
    capacity: number;
    posts: number;
    closeAfter?: number;
    expect: { outcomes: string[]; posted: number; dropped: number; abandoned: number; size: number };
  }[] = [
    {
      name: "delivers every report while there is room",
      capacity: 3,
      posts: 3,
      expect: { outcomes: ["queued", "queued", "queued"], posted: 3, dropped: 0, abandoned: 0, size: 3 },
    },
    {
      name: "drops (and counts) what does not fit, without blocking",
      capacity: 2,
      posts: 4,
      expect: {
        outcomes: ["queued", "queued", "dropped", "dropped"],
        posted: 2,
        dropped: 2,
        abandoned: 0,
        size: 2,
      },
    },
    {
      name: "abandons what is queued, and what comes later, once closed",
      capacity: 4,
      posts: 3,
      closeAfter: 2,
      expect: { outcomes: ["queued", "queued", "abandoned"], posted: 2, dropped: 0, abandoned: 3, size: 0 },
    },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const q = new ReportQueue(c.capacity);
      const outcomes: string[] = [];
      for (let i = 0; i < c.posts; i++) {
        if (i === c.closeAfter) q.close();
        outcomes.push(q.post(failed(i + 1)));
      }
      assert.deepEqual(outcomes, c.expect.outcomes);
      assert.deepEqual(q.stats, {
        posted: c.expect.posted,
        dropped: c.expect.dropped,
        abandoned: c.expect.abandoned,
      });
      assert.equal(q.size, c.expect.size);
    });
  }

  it("drains oldest first, in bounded batches, and wraps around its ring", () => {
    const q = new ReportQueue(3);
    let woken = 0;
    q.onPosted = () => woken++;
    for (const p of [1, 2, 3]) q.post(failed(p));
    assert.deepEqual(
      q.drain(2).map((r) => r.peer),
      [1, 2],
    );
    for (const p of [4, 5]) q.post(failed(p));
    assert.equal(q.post(failed(6)), "dropped");
    assert.deepEqual(
      q.drain().map((r) => r.peer),
      [3, 4, 5],
    );
    assert.equal(q.size, 0);
    assert.equal(woken, 5, "the loop is woken once per queued report");
  });

  it("refuses a capacity that is not a positive integer", () => {
    assert.throws(() => new ReportQueue(0), RangeError);
    assert.throws(() => new ReportQueue(1.5), RangeError);
  });
});

describe("routing reports to raft", () => {
  class Recorder implements ReportTarget {
    calls: string[] = [];
    reportUnreachable(peer: number): void {
      this.calls.push(`unreachable ${peer}`);
    }
    reportSnapshot(peer: number, status: "finish" | "failure"): void {
      this.calls.push(`snapshot ${peer} ${status}`);
    }
  }
  const table: [string, DispatchReport, string][] = [
    ["a failed snapshot is a snapshot failure", failed(2, MessageType.Snap), "snapshot 2 failure"],
    ["a failed append makes the peer unreachable", failed(3, MessageType.App), "unreachable 3"],
    ["a failed heartbeat makes the peer unreachable", failed(3, MessageType.Heartbeat), "unreachable 3"],
    ["a failed vote makes the peer unreachable", failed(2, MessageType.Vote), "unreachable 2"],
    [
      "a confirmed snapshot is a finished snapshot",
      { kind: "snapshot-confirmed", peer: 2, index: 9 },
      "snapshot 2 finish",
    ],
  ];
  for (const [name, report, call] of table) {
    it(name, () => {
      const r = new Recorder();
      routeReport(report, r);
      assert.deepEqual(r.calls, [call]);
    });
  }

  it("through a real raft node: a failed append moves a replicating follower to probe", () => {
    const c = new Cluster();
    c.elect(1);
    c.propose(1, "x");
    c.stabilize();
    const pr = c.raft(1).trk.progress.get(2)!;
    assert.equal(pr.state, ProgressState.Replicate);
    routeReport(failed(2, MessageType.App), c.node(1).raw);
    assert.equal(pr.state, ProgressState.Probe);
  });

  it("through a real raft node: a failed snapshot clears it, and a fresh one goes on the next heartbeat", () => {
    const c = new Cluster();
    c.elect(1);
    c.isolate(3);
    for (const v of ["a", "b"]) c.propose(1, v);
    c.stabilize();
    compactLog(c.node(1), c.raft(1).log.applied);
    c.heal();
    c.dropTypes.add(MessageType.Snap);
    c.tickAll(1);
    const pr = c.raft(1).trk.progress.get(3)!;
    assert.equal(pr.state, ProgressState.Snapshot);
    const sent = sentOf(c, MessageType.Snap).length;
    c.dropTypes.clear();
    routeReport(failed(3, MessageType.Snap), c.node(1).raw);
    assert.equal(pr.state, ProgressState.Probe);
    assert.equal(pr.pendingSnapshot, 0);
    c.tickAll(1);
    assert.equal(sentOf(c, MessageType.Snap).length, sent + 1, "a new snapshot after the heartbeat response");
    assert.equal(c.raft(3).log.committed, c.raft(1).log.committed);
  });
});
