/**
 * Virtual time and a manual task queue: the simulator and the engine tests run engines on them, with no
 * real clock. Timers fire only when time is advanced; loop wake-ups and deliveries only when drained.
 */
import type { Timers } from "../engine/dispatch.js";

/** Timers fire only when the test advances the clock. */
export class ManualTimers implements Timers {
  now = 0;
  private next = 1;
  private readonly pending = new Map<number, { at: number; fn: () => void }>();
  setTimeout(fn: () => void, ms: number): unknown {
    const id = this.next++;
    this.pending.set(id, { at: this.now + ms, fn });
    return id;
  }
  clearTimeout(handle: unknown): void {
    this.pending.delete(handle as number);
  }
  /** Moves time forward, firing due timers in order of their deadline. */
  advance(ms: number): void {
    const until = this.now + ms;
    for (;;) {
      let due: [number, { at: number; fn: () => void }] | undefined;
      for (const e of this.pending) if (e[1].at <= until && (!due || e[1].at < due[1].at)) due = e;
      if (!due) break;
      this.pending.delete(due[0]);
      this.now = due[1].at;
      due[1].fn();
    }
    this.now = until;
  }
  get active(): number {
    return this.pending.size;
  }
}

/** Lets every promise chain that is ready run to completion (one real macrotask turn). */
export const settle = (): Promise<void> => new Promise((r) => setImmediate(r));

/** A task queue the test drains: loop wake-ups and network deliveries run only when it says so. */
export class ManualScheduler {
  private tasks: (() => void)[] = [];
  readonly schedule = (fn: () => void): void => {
    this.tasks.push(fn);
  };
  /** Runs tasks (and what they schedule) until nothing is left, letting promises settle in between. */
  async drain(maxTurns = 10_000): Promise<void> {
    for (let turn = 0; turn < maxTurns; turn++) {
      await settle();
      if (this.tasks.length === 0) {
        await settle();
        if (this.tasks.length === 0) return;
      }
      const tasks = this.tasks;
      this.tasks = [];
      for (const t of tasks) t();
    }
    throw new Error("the scheduler did not go quiet");
  }
}
