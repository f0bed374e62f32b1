/**
 * Clients blocked in BLPOP, BZPOPMIN and the other blocking pops, on one node. The command itself runs
 * in the log and never blocks (kv/exec/pops.ts): when it takes nothing, its client waits here, and the
 * command is proposed again once a write, through any node, stores a list or sorted set at one of its
 * keys (every node applies every write, so each learns it from its own state machine). It ends when an
 * attempt takes something, or at its timeout with a null array.
 *
 * No wake-up is lost: a client registers after the attempt that took nothing was applied, and looks at
 * the node's state at once (a write applied in between is seen there); a write applied while a client's
 * attempt is in flight marks it, and an attempt that then took nothing is made again. A write wakes at
 * most as many idle clients, oldest first, as the key then holds elements (less those already trying),
 * so one push to a queue with a thousand waiters does not propose a thousand commands.
 */
import type { Timers } from "../../engine/dispatch.js";
import type { Waitable } from "../../kv/exec/pops.js";
import type { FillWatcher } from "../../kv/machine.js";
import { NIL_ARRAY, type Reply } from "../../kv/reply.js";

/** Timers run for at most this long (Node's limit); a longer timeout is rearmed. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/** Whether a blocking command's reply says it took nothing (a null, as Redis answers inside MULTI). */
export const tookNothing = (r: Reply): boolean => r.k === "nil" || r.k === "nilArray";

interface Waiter {
  readonly keys: readonly string[];
  readonly type: Waitable;
  readonly attempt: () => Promise<Reply>;
  readonly resolve: (r: Reply) => void;
  /** Milliseconds left to wait (Infinity: for ever), counted down as its timers fire. */
  remainingMs: number;
  timer: unknown;
  attempting: boolean;
  /** A write filled one of its keys while it was attempting. */
  signaled: boolean;
  timedOut: boolean;
  done: boolean;
}

/** A client's wait: its reply, and how to give it up (the client went away). */
export interface Blocked {
  readonly reply: Promise<Reply>;
  cancel(): void;
}

export class BlockedClients implements FillWatcher {
  /** Waiters per key (latin1), oldest first. */
  private readonly byKey = new Map<string, Waiter[]>();
  private count = 0;

  constructor(
    /** Elements of the live collection of this type at the key, in this node's applied state. */
    private readonly elementsAt: (key: Buffer, type: Waitable) => number,
    private readonly timers: Timers,
    private readonly onError: (err: unknown) => Reply = () => NIL_ARRAY,
  ) {}

  /** Clients blocked now. */
  get size(): number {
    return this.count;
  }

  get waiting(): boolean {
    return this.byKey.size > 0;
  }

  watches(key: Buffer): boolean {
    return this.byKey.has(key.toString("latin1"));
  }

  filled(keys: readonly Buffer[] | "all"): void {
    // Told inside the state machine's batch: served once that is done.
    const names = keys === "all" ? [...this.byKey.keys()] : keys.map((k) => k.toString("latin1"));
    queueMicrotask(() => {
      for (const k of new Set(names)) this.serve(k);
    });
  }

  /**
   * Blocks a client whose command took nothing: `attempt` proposes the command again; `timeoutMs` 0
   * waits for ever.
   */
  block(keys: readonly Buffer[], type: Waitable, timeoutMs: number, attempt: () => Promise<Reply>): Blocked {
    let resolve!: (r: Reply) => void;
    const reply = new Promise<Reply>((r) => {
      resolve = r;
    });
    const w: Waiter = {
      keys: [...new Set(keys.map((k) => k.toString("latin1")))],
      type,
      attempt,
      resolve,
      remainingMs: timeoutMs === 0 ? Number.POSITIVE_INFINITY : timeoutMs,
      timer: null,
      attempting: false,
      signaled: false,
      timedOut: false,
      done: false,
    };
    for (const k of w.keys) {
      const list = this.byKey.get(k);
      if (list === undefined) this.byKey.set(k, [w]);
      else list.push(w);
    }
    this.count++;
    this.arm(w);
    // A write applied between the attempt that took nothing and now told nobody: look now.
    for (const k of w.keys) this.serve(k);
    return { reply, cancel: () => this.finish(w, null) };
  }

  private arm(w: Waiter): void {
    if (w.remainingMs === Number.POSITIVE_INFINITY) return;
    const ms = Math.min(w.remainingMs, MAX_TIMER_MS);
    w.timer = this.timers.setTimeout(() => {
      w.timer = null;
      w.remainingMs -= ms;
      if (w.done) return;
      if (w.remainingMs > 0) this.arm(w);
      else if (w.attempting) w.timedOut = true;
      else this.finish(w, NIL_ARRAY);
    }, ms);
  }

  /** Wakes the idle waiters on `key` that its elements can serve, oldest first. */
  private serve(key: string): void {
    const waiters = this.byKey.get(key);
    if (waiters === undefined) return;
    const budget = new Map<Waitable, number>();
    const raw = Buffer.from(key, "latin1");
    for (const w of waiters) {
      if (w.attempting) {
        w.signaled = true;
        continue;
      }
      let left = budget.get(w.type);
      if (left === undefined) {
        const trying = waiters.filter((o) => o.attempting && o.type === w.type).length;
        left = this.elementsAt(raw, w.type) - trying;
      }
      if (left <= 0) {
        budget.set(w.type, 0);
        continue;
      }
      budget.set(w.type, left - 1);
      this.wake(w);
    }
  }

  private wake(w: Waiter): void {
    w.attempting = true;
    w.signaled = false;
    w.attempt().then(
      (r) => this.attempted(w, r),
      (err: unknown) => {
        w.attempting = false;
        this.finish(w, this.onError(err));
      },
    );
  }

  private attempted(w: Waiter, r: Reply): void {
    w.attempting = false;
    if (w.done) return;
    if (!tookNothing(r)) this.finish(w, r);
    else if (w.timedOut) this.finish(w, NIL_ARRAY);
    else if (w.signaled) this.wake(w);
  }

  /** Ends a wait with its reply, or silently (null: the client went away). */
  private finish(w: Waiter, r: Reply | null): void {
    if (w.done) return;
    w.done = true;
    if (w.timer !== null) this.timers.clearTimeout(w.timer);
    for (const k of w.keys) {
      const list = this.byKey.get(k)!;
      list.splice(list.indexOf(w), 1);
      if (list.length === 0) this.byKey.delete(k);
    }
    this.count--;
    if (r !== null) w.resolve(r);
    // Others may be served by what is left: while this one was trying, it held their share (a push
    // counted it), and however it ended (served, timed out, gone) that share is free now.
    for (const k of w.keys) this.serve(k);
  }
}
