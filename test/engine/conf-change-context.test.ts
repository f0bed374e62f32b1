/**
 * A membership change's context reaches every member's state machine (`applyConfChange`), in log order
 * with the entries around it, and a restarted node is not told again of a change its state machine
 * already holds.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { ConfChange, ConfState } from "../../src/raft/types.js";
import { engineCluster, ListMachine, settleWith } from "./cluster.js";

/** Records each membership change it is told of, among the commands it applies. */
class ConfRecordingMachine extends ListMachine {
  changes: { index: number; context: string; voters: number[]; learners: number[] }[] = [];
  applyConfChange(index: number, change: ConfChange, confState: ConfState): void {
    this.applied.push(`conf@${index}`);
    this.changes.push({
      index,
      context: Buffer.from(change.context ?? new Uint8Array()).toString(),
      voters: [...confState.voters].sort(),
      learners: [...confState.learners],
    });
  }
}

describe("membership changes reach the state machine", () => {
  it("every member is told of a change with its context, in order with the commands around it", async () => {
    const c = await engineCluster(41);
    for (const id of [1, 2, 3]) {
      await c.engines.get(id)!.close();
      c.engines.delete(id);
    }
    // Reopened with machines that record changes (the disks keep the bootstrap).
    const machines = new Map([1, 2, 3].map((id) => [id, new ConfRecordingMachine()]));
    for (const [id, m] of machines) await c.open(id, m);
    await c.run(3000);
    const leader = c.leader()!;
    await settleWith(c, leader.propose(Buffer.from("before")));
    const cs = await settleWith(c, leader.addLearner(4, Buffer.from("4=host4:7000")));
    assert.deepEqual(cs.learners, [4]);
    await settleWith(c, leader.propose(Buffer.from("after")));
    await c.run(500);
    for (const m of machines.values()) {
      assert.equal(m.changes.length, 1);
      const [change] = m.changes;
      assert.equal(change!.context, "4=host4:7000");
      assert.deepEqual(change!.voters, [1, 2, 3]);
      assert.deepEqual(change!.learners, [4]);
      assert.deepEqual(m.applied, ["before", `conf@${change!.index}`, "after"]);
    }
    // A change without a context arrives without one.
    await settleWith(c, leader.removeServer(4));
    await c.run(500);
    for (const m of machines.values()) assert.equal(m.changes[1]?.context, "");
    await c.closeAll();
  });

  it("a restarted node is told again only of the changes its state machine does not hold", async () => {
    const c = await engineCluster(42);
    for (const id of [1, 2, 3]) {
      await c.engines.get(id)!.close();
      c.engines.delete(id);
      await c.open(id, new ConfRecordingMachine());
    }
    await c.run(3000);
    const leader = c.leader()!;
    await settleWith(c, leader.addLearner(7, Buffer.from("seven")));
    await c.run(500);
    const followerId = [1, 2, 3].find((id) => id !== leader.id)!;
    const told = (c.machines.get(followerId) as ConfRecordingMachine).changes;
    assert.equal(told.length, 1);

    for (const [durableIndex, expectedCalls] of [
      [told[0]!.index, 0],
      [0, 1],
    ] as const) {
      await c.engines.get(followerId)!.close();
      c.engines.delete(followerId);
      const kept = new ConfRecordingMachine();
      kept.durableIndex = durableIndex;
      await c.open(followerId, kept);
      await c.run(1000);
      assert.equal(
        kept.changes.length,
        expectedCalls,
        `a machine durable up to ${durableIndex} is told ${expectedCalls} time(s)`,
      );
      assert.deepEqual(
        c.engines.get(followerId)!.status().config.learners,
        [7],
        "raft has the change either way",
      );
    }
    await c.closeAll();
  });
});
