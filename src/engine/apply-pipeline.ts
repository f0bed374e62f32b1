/**
 * Committed entries between raft handing them out and their being applied. Normal entries are applied
 * off the loop, in batches as large as what has queued up meanwhile, so that raft goes on persisting,
 * replicating and committing while the state machine writes: a cycle costs one WAL fdatasync, not that
 * plus the state machine's commit.
 *
 * A conf change stops the worker at the head of the queue: the loop applies it to raft itself, once every
 * entry before it is applied, so that membership changes keep their place in the order of entries; the
 * state machine's own part of it (confChangeApplied's hook) then runs before any later entry. The
 * loop may also hold the worker between batches, to capture a snapshot of a state that is exactly that of
 * raft's applied index.
 */
import { type Entry, EntryType } from "../raft/types.js";
import type { StateMachine } from "./state-machine.js";

export interface ApplyPipelineOptions<R> {
  readonly stateMachine: StateMachine<R>;
  /** Entries up to here are already in the state machine (it was durable past raft's snapshot). */
  readonly skipThrough: number;
  /** Raft's applied index when the pipeline starts. */
  readonly appliedThrough: number;
  /**
   * Called for every entry of a batch, in order, once its result is decided (possibly before the batch is
   * committed: see StateMachine.apply); `result` is undefined for entries not given to the state machine.
   */
  readonly onApplied: (entry: Entry, result: R | undefined) => void;
  /** The worker moved on or stopped: the loop has something to collect. */
  readonly onProgress: () => void;
  /** The state machine failed: fatal for the node. */
  readonly onError: (err: unknown) => void;
  /** Largest batch handed to the state machine at once (entries, and bytes of data). */
  readonly maxBatchEntries: number;
  readonly maxBatchBytes: number;
}

export class ApplyPipeline<R> {
  private queue: Entry[] = [];
  private head = 0;
  private queued = 0;
  private worker: Promise<void> | null = null;
  private held = false;
  private inBatch = false;
  /** The state machine's part of a conf change the loop applied to raft: runs before the entries after it. */
  private confHook: { readonly index: number; readonly run: () => Promise<void> } | null = null;
  private stopped = false;
  private through: number;

  constructor(private readonly o: ApplyPipelineOptions<R>) {
    this.through = o.appliedThrough;
  }

  /** Every entry up to this index is applied. */
  get appliedThrough(): number {
    return this.through;
  }

  /** Bytes of entry data queued and not yet applied. */
  get backlogBytes(): number {
    return this.queued;
  }

  /** The worker's current run, if it is applying; the loop may wait on it for backpressure. */
  get running(): Promise<void> | null {
    return this.worker;
  }

  get isEmpty(): boolean {
    return this.head === this.queue.length;
  }

  /**
   * A batch is with the state machine (its state may be anywhere between two applied indexes), or a conf
   * change is applied to raft and not yet to the state machine.
   */
  get applyingBatch(): boolean {
    return this.inBatch || this.confHook !== null;
  }

  /** Queues committed entries (in index order, right after those queued before) and starts the worker. */
  push(entries: readonly Entry[]): void {
    for (const e of entries) {
      this.queue.push(e);
      this.queued += e.data.byteLength;
    }
    this.kick();
  }

  /**
   * The conf change at the head, once every entry before it is applied: the caller applies it to raft
   * now, and it counts as applied.
   */
  takeConfChange(): Entry | null {
    // Not while held: the holder (a snapshot) wants raft's membership to stay that of the applied index.
    if (this.worker !== null || this.confHook !== null || this.held || this.isEmpty) return null;
    const e = this.queue[this.head]!;
    if (e.type !== EntryType.ConfChange) return null;
    this.advanceHead(1);
    this.queued -= e.data.byteLength;
    return e;
  }

  /**
   * The caller applied the conf change taken at `index` to raft. With a hook (the state machine's part),
   * it counts as applied once the hook is done, and nothing after it is applied before.
   */
  confChangeApplied(index: number, hook: (() => Promise<void>) | null): void {
    if (hook === null) {
      this.through = index;
      return;
    }
    this.confHook = { index, run: hook };
    this.kick();
  }

  /** Stops the worker after its current batch (and a pending conf change's hook), until release(). */
  hold(): void {
    this.held = true;
  }

  release(): void {
    this.held = false;
    this.kick();
  }

  /** Raft installed a snapshot at `index`: the pipeline must be empty, and resumes after it. */
  resetTo(index: number): void {
    if (!this.isEmpty || this.inBatch || this.confHook !== null)
      throw new Error(`engine invariant: a snapshot installed with entries still being applied`);
    this.through = index;
  }

  /** Starts the worker if a conf change's hook is pending, or a normal entry is at the head and not held. */
  kick(): void {
    if (this.worker !== null || this.stopped) return;
    // A conf change's hook runs even when held: raft already applied the change, and the holder waits
    // for the state machine to catch up with it.
    if (
      this.confHook === null &&
      (this.held || this.isEmpty || this.queue[this.head]!.type === EntryType.ConfChange)
    )
      return;
    // Cleared in a later microtask, never before the assignment (a run may finish without awaiting).
    this.worker = this.work().finally(() => {
      this.worker = null;
      this.o.onProgress();
    });
  }

  /** No batch starts after this; resolves once the one under way (if any) is done. */
  stop(): Promise<void> {
    this.stopped = true;
    return this.worker ?? Promise.resolve();
  }

  private async work(): Promise<void> {
    try {
      while (!this.stopped) {
        const hook = this.confHook;
        if (hook !== null) {
          this.inBatch = true;
          await hook.run();
          this.confHook = null;
          this.through = hook.index;
          this.inBatch = false;
          this.o.onProgress();
          continue;
        }
        if (this.held) break;
        const run = this.takeRun();
        if (run.length === 0) break;
        this.inBatch = true;
        const forMachine = run.filter((e) => e.data.byteLength > 0 && e.index > this.o.skipThrough);
        let answered = false;
        const answer = (results: readonly R[]) => {
          if (answered) return;
          answered = true;
          let k = 0;
          for (const e of run) this.o.onApplied(e, forMachine[k] === e ? results[k++] : undefined);
        };
        answer(forMachine.length > 0 ? await this.o.stateMachine.apply(forMachine, answer) : []);
        this.through = run[run.length - 1]!.index;
        this.inBatch = false;
        this.o.onProgress();
      }
    } catch (err) {
      this.stopped = true;
      this.o.onError(err);
    }
  }

  /** Normal entries from the head, up to the first conf change or the batch limits. */
  private takeRun(): Entry[] {
    const run: Entry[] = [];
    let bytes = 0;
    let i = this.head;
    for (; i < this.queue.length && run.length < this.o.maxBatchEntries; i++) {
      const e = this.queue[i]!;
      if (e.type === EntryType.ConfChange) break;
      if (run.length > 0 && bytes + e.data.byteLength > this.o.maxBatchBytes) break;
      run.push(e);
      bytes += e.data.byteLength;
    }
    this.advanceHead(run.length);
    this.queued -= bytes;
    return run;
  }

  private advanceHead(n: number): void {
    this.head += n;
    if (this.head === this.queue.length) {
      this.queue = [];
      this.head = 0;
    } else if (this.head > 4096 && this.head * 2 > this.queue.length) {
      this.queue = this.queue.slice(this.head);
      this.head = 0;
    }
  }
}
