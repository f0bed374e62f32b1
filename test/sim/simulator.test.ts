/**
 * The deterministic simulator: a fixed budget of seeds with every fault must pass every property; a
 * seed replays exactly; and the pieces it is built from behave (the key-value machine, a killed
 * process's file system).
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { readAll } from "../../src/engine/state-machine.js";
import { EntryType } from "../../src/raft/types.js";
import { encodeKvCommand, KvMachine } from "../../src/sim/kv-machine.js";
import { SimProcess } from "../../src/sim/process.js";
import { FAULT_KINDS, type SimResult, simulate } from "../../src/sim/simulation.js";
import { ManualScheduler, ManualTimers } from "../../src/sim/virtual-time.js";
import { SimFileSystem } from "../../src/storage/sim-fs.js";

function summarize(results: readonly SimResult[]): string {
  const sum = (f: (r: SimResult) => number) => results.reduce((n, r) => n + f(r), 0);
  const faults = new Map<string, number>();
  for (const r of results)
    for (const [k, n] of Object.entries(r.stats.faults)) faults.set(k, (faults.get(k) ?? 0) + n);
  return [
    `${results.length} seeds, ${sum((r) => r.stats.ops)} ops (${sum((r) => r.stats.indeterminateOps)} indeterminate)`,
    `faults ${[...faults].map(([k, n]) => `${k} ${n}`).join(", ")}`,
    `leader changes ${sum((r) => r.stats.leaderChanges)}, snapshots installed ${sum((r) => r.stats.snapshotsInstalled)}`,
  ].join("; ");
}

describe("the simulator", () => {
  it("a fixed budget of seeds (3 and 5 nodes, every fault) breaks no property", async (t) => {
    const results: SimResult[] = [];
    for (let seed = 1; seed <= 160; seed++)
      results.push(await simulate({ seed, nodes: 3, durationMs: 10_000 }));
    for (let seed = 1; seed <= 40; seed++)
      results.push(await simulate({ seed, nodes: 5, durationMs: 10_000 }));
    const failed = results.filter((r) => !r.ok);
    assert.deepEqual(
      failed.map((r) => `seed ${r.seed}: ${r.failures.join(" | ")}`),
      [],
      "replay a failure with: npm run sim -- --seed S --trace",
    );
    // The faults really happened: every kind, and the cluster really worked through them.
    const kinds = new Set(results.flatMap((r) => Object.keys(r.stats.faults)));
    // Skew is a property of the clocks from the start, not an injected event.
    const injectable = FAULT_KINDS.filter((k) => k !== "skew");
    assert.deepEqual(
      injectable.filter((k) => !kinds.has(k)),
      [],
      `fault kinds injected: ${[...kinds].join(", ")}`,
    );
    assert.ok(results.reduce((n, r) => n + r.stats.snapshotsInstalled, 0) > 50, "snapshots were installed");
    // Availability under faults is not a property checked here, but a seed in which no client ever got an
    // answer would prove nothing about safety.
    assert.ok(
      results.every((r) => r.stats.okOps >= 10),
      "every seed got work done",
    );
    assert.ok(results.reduce((n, r) => n + r.stats.okOps, 0) > 100 * results.length, "answered operations");
    t.diagnostic(summarize(results));
  });

  it("a seed replays exactly: the same events, operations and outcome", async () => {
    const trace = async () => {
      const lines: string[] = [];
      const r = await simulate({ seed: 7, durationMs: 10_000, trace: (l) => lines.push(l) });
      return { lines, stats: r.stats };
    };
    const a = await trace();
    const b = await trace();
    assert.ok(a.lines.length > 10);
    assert.deepEqual(b.lines, a.lines);
    assert.deepEqual(b.stats, a.stats);
  });
});

describe("the simulator's parts", () => {
  it("the key-value machine applies put, delete, cas and append, and its snapshot restores it", async () => {
    const m = new KvMachine();
    let index = 1;
    const entry = (c: Parameters<typeof encodeKvCommand>[0]) => ({
      index: ++index,
      term: 1,
      type: EntryType.Normal,
      data: encodeKvCommand(c),
    });
    const results = m.apply([
      entry({ f: "put", key: "a", value: "1" }),
      entry({ f: "append", key: "a", suffix: "2" }),
      entry({ f: "cas", key: "a", expected: "1", value: "x" }),
      entry({ f: "cas", key: "a", expected: "12", value: "3" }),
      entry({ f: "append", key: "b", suffix: "z" }),
      entry({ f: "delete", key: "b" }),
      entry({ f: "delete", key: "b" }),
      entry({ f: "cas", key: "c", expected: null, value: "new" }),
    ]);
    assert.deepEqual(results, [null, "12", false, true, "z", true, false, true]);
    const h = m.snapshot();
    const image = await readAll(h.read());
    h.release();
    const copy = new KvMachine();
    await copy.restore(
      (async function* () {
        yield image.subarray(0, 5);
        yield image.subarray(5);
      })(),
      index,
    );
    assert.equal(copy.dump(), m.dump());
    assert.equal(copy.get("a"), "3");
    assert.equal(copy.get("b"), null);
    assert.equal(copy.applied, index);
  });

  it("a killed process runs no more callbacks, and its file system refuses every call", async () => {
    const timers = new ManualTimers();
    const sched = new ManualScheduler();
    const disk = new SimFileSystem(1);
    const proc = new SimProcess(timers, sched, disk, 1);
    let fired = 0;
    proc.setTimeout(() => fired++, 10);
    proc.schedule(() => fired++);
    proc.fs.mkdirp("/d");
    proc.kill();
    timers.advance(20);
    await sched.drain();
    assert.equal(fired, 0);
    assert.throws(
      () => proc.fs.create("/d/x"),
      (e: NodeJS.ErrnoException) => e.code === "EIO",
    );
    await assert.rejects(proc.fs.syncDir("/d"), (e: NodeJS.ErrnoException) => e.code === "EIO");
  });

  it("a paused process holds its callbacks until it resumes, while its clock runs on at its rate", async () => {
    const timers = new ManualTimers();
    const sched = new ManualScheduler();
    const proc = new SimProcess(timers, sched, new SimFileSystem(2), 1.02);
    const seen: number[] = [];
    proc.setTimeout(() => seen.push(proc.clock()), 102);
    proc.pause();
    timers.advance(500);
    await sched.drain();
    assert.deepEqual(seen, []);
    proc.resume();
    await sched.drain();
    assert.deepEqual(seen, [510], "fired late, at the process's clock (500 ms x 1.02)");
  });
});
