/**
 * Ticks follow the engine's clock: after a pause in which no timer could fire (a stalled event loop, a
 * frozen VM), the ticks missed are delivered at once, so raft's timeouts and a leader's lease count
 * the time that really passed.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { Timers } from "../../src/engine/dispatch.js";
import { Engine } from "../../src/engine/engine.js";
import { SeededRandom } from "../../src/raft/rand.js";
import { SimFileSystem } from "../../src/storage/sim-fs.js";
import { MemoryNetwork, MemoryTransport } from "../../src/transport/memory-transport.js";
import { ManualScheduler, ManualTimers } from "../helpers/virtual-time.js";
import { ListMachine } from "./cluster.js";

/** Timers whose callbacks are held while paused, as a frozen process's would be. */
class PausableTimers implements Timers {
  paused = false;
  private held: (() => void)[] = [];
  constructor(private readonly inner: ManualTimers) {}
  setTimeout(fn: () => void, ms: number): unknown {
    return this.inner.setTimeout(() => (this.paused ? this.held.push(fn) : fn()), ms);
  }
  clearTimeout(handle: unknown): void {
    this.inner.clearTimeout(handle);
  }
  resume(): void {
    this.paused = false;
    const held = this.held;
    this.held = [];
    for (const fn of held) fn();
  }
}

describe("ticks follow the clock", () => {
  it("after a pause, the ticks missed are delivered at once; without a clock they would be lost", async () => {
    for (const withClock of [true, false]) {
      const virtual = new ManualTimers();
      const timers = new PausableTimers(virtual);
      const sched = new ManualScheduler();
      const network = new MemoryNetwork({ schedule: sched.schedule, timers: virtual });
      const fs = new SimFileSystem(5);
      const engine = await Engine.open<number>({
        id: 1,
        initialVoters: [1],
        fs,
        dir: "/data/raft",
        stateMachine: new ListMachine(),
        transport: new MemoryTransport({
          id: 1,
          network,
          clusterId: "t",
          fs,
          snapshotDir: "/data/in",
          snapshotSource: { open: () => ({ async *[Symbol.asyncIterator]() {} }) },
        }),
        timers,
        ...(withClock ? { clock: () => virtual.now } : {}),
        schedule: sched.schedule,
        random: new SeededRandom(1),
        tickMs: 100,
      });
      for (let i = 0; i < 10; i++) {
        virtual.advance(100);
        await sched.drain();
      }
      assert.equal(engine.tickCount, 10);
      timers.paused = true;
      virtual.advance(10_000);
      await sched.drain();
      assert.equal(engine.tickCount, 10, "nothing fires while paused");
      timers.resume();
      await sched.drain();
      assert.equal(
        engine.tickCount,
        withClock ? 110 : 11,
        withClock ? "the 100 ticks missed were delivered" : "one tick per callback: the pause is lost",
      );
      virtual.advance(100);
      await sched.drain();
      assert.equal(engine.tickCount, withClock ? 111 : 12, "then one tick per 100 ms again");
      await engine.close();
    }
  });
});
