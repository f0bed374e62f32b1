import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ApplyPipeline } from "../../src/engine/apply-pipeline.js";
import type { StateMachine } from "../../src/engine/state-machine.js";
import { type Entry, EntryType } from "../../src/raft/types.js";
import { settle } from "../helpers/virtual-time.js";

const normal = (index: number, data = `e${index}`): Entry => ({
  index,
  term: 1,
  type: EntryType.Normal,
  data: Buffer.from(data),
});
const confChange = (index: number): Entry => ({
  index,
  term: 1,
  type: EntryType.ConfChange,
  data: Buffer.from("cc"),
});

/** A pipeline over a machine that records its batches and answers each entry with its index. */
function harness(
  opts: {
    skipThrough?: number;
    failAt?: number;
    maxBatchEntries?: number;
    /** The machine decides each batch's results at once, then holds the batch until `finish()`. */
    decideThenHold?: boolean;
  } = {},
) {
  const batches: number[][] = [];
  const answered: [number, number | undefined][] = [];
  const errors: unknown[] = [];
  let finish: () => void = () => {};
  const sm: StateMachine<number> = {
    apply: async (entries, decided) => {
      batches.push(entries.map((e) => e.index));
      if (entries.some((e) => e.index === opts.failAt)) throw new Error("apply failed (injected)");
      const results = entries.map((e) => e.index);
      if (opts.decideThenHold) {
        decided?.(results);
        await new Promise<void>((resolve) => {
          finish = resolve;
        });
      }
      return results;
    },
    appliedIndex: () => 0,
    snapshot: () => {
      throw new Error("not used");
    },
    restore: async () => {},
  };
  const pipeline = new ApplyPipeline<number>({
    stateMachine: sm,
    skipThrough: opts.skipThrough ?? 0,
    appliedThrough: 0,
    onApplied: (e, r) => answered.push([e.index, r]),
    onProgress: () => {},
    onError: (err) => errors.push(err),
    maxBatchEntries: opts.maxBatchEntries ?? 100,
    maxBatchBytes: 1024,
  });
  return { pipeline, batches, answered, errors, finish: () => finish() };
}

describe("the apply pipeline", () => {
  it("applies in order, batching what queued up while a batch was under way", async () => {
    const h = harness();
    h.pipeline.push([normal(1)]);
    h.pipeline.push([normal(2), normal(3)]);
    h.pipeline.push([normal(4)]);
    await settle();
    assert.deepEqual(h.batches, [[1], [2, 3, 4]]);
    assert.deepEqual(
      h.answered.map(([i]) => i),
      [1, 2, 3, 4],
    );
    assert.equal(h.pipeline.appliedThrough, 4);
    assert.equal(h.pipeline.running, null);
  });

  it("keeps batches within the limits", async () => {
    const h = harness({ maxBatchEntries: 2 });
    h.pipeline.push([
      normal(1),
      normal(2),
      normal(3),
      normal(4, "x".repeat(1023)),
      normal(5, "y".repeat(100)),
    ]);
    await settle();
    assert.deepEqual(h.batches, [[1, 2], [3], [4], [5]]);
  });

  it("stops at a conf change until the caller takes it, and not before the entries ahead of it are applied", async () => {
    const h = harness();
    h.pipeline.push([normal(1), confChange(2), normal(3)]);
    assert.equal(h.pipeline.takeConfChange(), null, "entry 1 is still being applied");
    await settle();
    assert.deepEqual(h.batches, [[1]]);
    assert.equal(h.pipeline.appliedThrough, 1);
    assert.equal(h.pipeline.takeConfChange()?.index, 2);
    h.pipeline.confChangeApplied(2, null);
    assert.equal(h.pipeline.appliedThrough, 2);
    h.pipeline.kick();
    await settle();
    assert.deepEqual(h.batches, [[1], [3]]);
    assert.equal(h.pipeline.appliedThrough, 3);
  });

  it("runs the state machine's part of a conf change before any entry after it", async () => {
    const h = harness();
    const order: string[] = [];
    let finishHook: () => void = () => {};
    h.pipeline.push([confChange(1), normal(2)]);
    assert.equal(h.pipeline.takeConfChange()?.index, 1);
    h.pipeline.confChangeApplied(1, async () => {
      order.push("hook");
      await new Promise<void>((resolve) => {
        finishHook = resolve;
      });
    });
    await settle();
    assert.deepEqual(order, ["hook"]);
    assert.deepEqual(h.batches, [], "entry 2 waits for the hook");
    assert.equal(h.pipeline.appliedThrough, 0);
    assert.equal(h.pipeline.takeConfChange(), null);
    finishHook();
    await settle();
    assert.equal(h.pipeline.appliedThrough, 2);
    assert.deepEqual(h.batches, [[2]]);
  });

  it("gives the state machine neither empty entries nor those it already holds, but answers them", async () => {
    const h = harness({ skipThrough: 2 });
    h.pipeline.push([normal(1), normal(2), normal(3, ""), normal(4)]);
    await settle();
    assert.deepEqual(h.batches, [[4]]);
    assert.deepEqual(h.answered, [
      [1, undefined],
      [2, undefined],
      [3, undefined],
      [4, 4],
    ]);
  });

  it("holds between batches, and resumes on release", async () => {
    const h = harness();
    h.pipeline.push([normal(1)]);
    h.pipeline.hold();
    h.pipeline.push([normal(2)]);
    await settle();
    assert.deepEqual(h.batches, [[1]], "the batch under way finished; the next waits");
    h.pipeline.release();
    await settle();
    assert.deepEqual(h.batches, [[1], [2]]);
  });

  it("reports a failed apply once and applies nothing after it", async () => {
    const h = harness({ failAt: 2 });
    h.pipeline.push([normal(1)]);
    h.pipeline.push([normal(2)]);
    h.pipeline.push([normal(3)]);
    await settle();
    assert.equal(h.errors.length, 1);
    assert.equal(h.pipeline.appliedThrough, 1);
    h.pipeline.kick();
    await settle();
    assert.deepEqual(h.batches, [[1], [2, 3]]);
  });

  it("answers entries once, as soon as the state machine decides them, before the batch counts as applied", async () => {
    const h = harness({ decideThenHold: true });
    h.pipeline.push([normal(1), normal(2)]);
    await settle();
    assert.deepEqual(h.answered, [
      [1, 1],
      [2, 2],
    ]);
    assert.equal(h.pipeline.appliedThrough, 0, "not applied until the state machine's promise resolves");
    assert.equal(h.pipeline.applyingBatch, true);
    h.finish();
    await settle();
    assert.equal(h.answered.length, 2, "answered once");
    assert.equal(h.pipeline.appliedThrough, 2);
  });

  it("while held, gives out no conf change, but a conf change already given out still runs its hook", async () => {
    const h = harness();
    h.pipeline.push([confChange(1), confChange(2), normal(3)]);
    assert.equal(h.pipeline.takeConfChange()?.index, 1);
    h.pipeline.hold();
    let hooked = false;
    h.pipeline.confChangeApplied(1, async () => {
      hooked = true;
    });
    assert.equal(h.pipeline.applyingBatch, true, "the state machine is behind raft until the hook is done");
    await settle();
    assert.equal(hooked, true);
    assert.equal(h.pipeline.appliedThrough, 1);
    assert.equal(h.pipeline.applyingBatch, false);
    assert.equal(h.pipeline.takeConfChange(), null, "held: membership stays that of the applied index");
    h.pipeline.release();
    assert.equal(h.pipeline.takeConfChange()?.index, 2);
    h.pipeline.confChangeApplied(2, null);
    h.pipeline.kick();
    await settle();
    assert.deepEqual(h.batches, [[3]]);
  });

  it("refuses to jump to a snapshot with entries still queued", () => {
    const h = harness();
    h.pipeline.hold();
    h.pipeline.push([normal(1)]);
    assert.throws(() => h.pipeline.resetTo(5), /still being applied/);
  });
});
