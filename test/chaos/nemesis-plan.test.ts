import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { FAULT_KINDS, planFaults } from "../../src/chaos/nemesis.js";

describe("chaos fault schedule", () => {
  it("is the same for the same seed, and differs for another", () => {
    assert.deepEqual(planFaults(7, 60_000, [1, 2, 3]), planFaults(7, 60_000, [1, 2, 3]));
    assert.notDeepEqual(planFaults(7, 60_000, [1, 2, 3]), planFaults(8, 60_000, [1, 2, 3]));
  });

  it("has every kind in each round, at most two faults at once, all starting within the run", () => {
    for (let seed = 1; seed <= 50; seed++) {
      const plan = planFaults(seed, 120_000, [1, 2, 3]);
      assert.ok(plan.length >= 2 * FAULT_KINDS.length, `seed ${seed}: ${plan.length} faults`);
      for (let r = 0; r + FAULT_KINDS.length <= plan.length; r += FAULT_KINDS.length) {
        const kinds = plan.slice(r, r + FAULT_KINDS.length).map((f) => f.kind);
        assert.deepEqual([...kinds].sort(), [...FAULT_KINDS].sort(), `seed ${seed}, round at ${r}`);
      }
      for (const f of plan) {
        assert.ok(f.at >= 1_000 && f.at <= 120_000 - 500, `seed ${seed}: fault at ${f.at}`);
        assert.notEqual(f.node, f.peer);
        const holding = plan.filter((g) => g.at <= f.at && g.at + g.holdMs > f.at);
        assert.ok(holding.length <= 2, `seed ${seed}: ${holding.length} faults hold at ${f.at}`);
      }
      for (let i = 1; i < plan.length; i++) assert.ok(plan[i]!.at > plan[i - 1]!.at);
    }
  });

  it("fits a round of every kind into a 20-second run", () => {
    for (let seed = 1; seed <= 50; seed++)
      assert.ok(planFaults(seed, 20_000, [1, 2, 3]).length >= FAULT_KINDS.length, `seed ${seed}`);
  });
});
