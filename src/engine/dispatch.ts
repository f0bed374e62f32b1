/**
 * One dispatch worker per peer. Messages leave the loop without waiting: the loop enqueues, the worker
 * sends. Two bounded lanes keep liveness traffic (heartbeats, votes, read-index, timeout-now and their
 * answers) from queueing behind bulk appends, and a snapshot goes on its own stream so it never holds
 * up either. Every send has a timeout. Every failure, including a message dropped because its lane was
 * full, is posted to the report queue for raft — never only logged.
 */
import { isPriorityMessage, type Message, MessageType, type NodeId } from "../raft/types.js";
import type { PeerSender } from "../transport/transport.js";
import type { ReportQueue } from "./reports.js";

export type { PeerSender };

/** Timers, injected so that tests and the simulator run on virtual time. */
export interface Timers {
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export const realTimers: Timers = {
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (h) => clearTimeout(h as ReturnType<typeof setTimeout>),
};

export interface DispatchOptions {
  /** Messages waiting in the priority lane before new ones are dropped. */
  priorityLaneMessages?: number;
  /** Messages waiting in the normal lane before new ones are dropped. */
  normalLaneMessages?: number;
  /** Messages sent in one batch. */
  maxBatchMessages?: number;
  /** A batch not delivered within this is given up and reported. */
  sendTimeoutMs?: number;
  /** A snapshot stream that makes no progress for this long is given up and reported. */
  snapshotTimeoutMs?: number;
}

export const DISPATCH_DEFAULTS: Required<DispatchOptions> = {
  priorityLaneMessages: 256,
  normalLaneMessages: 1024,
  maxBatchMessages: 64,
  sendTimeoutMs: 5_000,
  snapshotTimeoutMs: 60_000,
};

export class LaneFullError extends Error {
  override name = "LaneFullError";
  constructor(peer: NodeId, lane: string, capacity: number) {
    super(`dispatch ${lane} lane to ${peer} is full (${capacity} messages); message dropped`);
  }
}

export class SendTimeoutError extends Error {
  override name = "SendTimeoutError";
  constructor(peer: NodeId, what: string, ms: number) {
    super(`${what} to ${peer} timed out after ${ms} ms`);
  }
}

export class DispatcherClosedError extends Error {
  override name = "DispatcherClosedError";
  constructor() {
    super("dispatcher is closed");
  }
}

/** A snapshot transfer to this peer; `superseded` once raft sent a newer one. */
interface SnapshotTransfer {
  readonly controller: AbortController;
  superseded: boolean;
}

/** The snapshot in flight was abandoned for a newer one raft sent. */
export class SnapshotSupersededError extends Error {
  override name = "SnapshotSupersededError";
  constructor(readonly peer: NodeId) {
    super(`the snapshot to peer ${peer} was superseded by a newer one`);
  }
}

/** A bounded FIFO lane with at most one send in flight. */
interface Lane {
  readonly name: "priority" | "normal";
  readonly capacity: number;
  queue: Message[];
  busy: boolean;
}

export class PeerDispatcher {
  private readonly opts: Required<DispatchOptions>;
  private readonly priority: Lane;
  private readonly normal: Lane;
  private snapshotInFlight: SnapshotTransfer | null = null;
  /** The snapshot stream advanced since the loop last asked (see takeSnapshotProgress). */
  private snapshotProgress = false;
  private closed = false;
  private readonly inFlight = new Set<AbortController>();
  /** Counters for the metrics layer (raftkv_dispatch_*), per peer. */
  readonly stats = { sent: 0, failed: 0, dropped: 0 };

  constructor(
    readonly peer: NodeId,
    private readonly sender: PeerSender,
    private readonly reports: ReportQueue,
    private readonly timers: Timers = realTimers,
    options: DispatchOptions = {},
  ) {
    this.opts = { ...DISPATCH_DEFAULTS, ...options };
    this.priority = { name: "priority", capacity: this.opts.priorityLaneMessages, queue: [], busy: false };
    this.normal = { name: "normal", capacity: this.opts.normalLaneMessages, queue: [], busy: false };
  }

  /** Queues a message for this peer. Never blocks; returns false if it was dropped (and reported). */
  enqueue(m: Message): boolean {
    if (this.closed) return false;
    if (m.type === MessageType.Snap) return this.startSnapshot(m);
    const lane = isPriorityMessage(m.type) ? this.priority : this.normal;
    if (lane.queue.length >= lane.capacity) {
      this.stats.dropped++;
      this.fail(m.type, new LaneFullError(this.peer, lane.name, lane.capacity));
      return false;
    }
    lane.queue.push(m);
    if (!lane.busy) {
      // Start on the next microtask, so that everything the loop enqueues in this turn (a whole
      // Ready's messages) goes out as one batch.
      lane.busy = true;
      queueMicrotask(() => void this.pump(lane));
    }
    return true;
  }

  /**
   * Whether the snapshot stream to this peer advanced since the last call; the loop tells raft, which
   * then does not give up on a transfer that is slow but alive.
   */
  takeSnapshotProgress(): boolean {
    const p = this.snapshotProgress;
    this.snapshotProgress = false;
    return p;
  }

  /** Messages waiting (not in flight) in each lane. */
  get queued(): { priority: number; normal: number } {
    return { priority: this.priority.queue.length, normal: this.normal.queue.length };
  }

  /** Stops: queued messages are discarded and sends in flight aborted; nothing more is reported. */
  close(): void {
    this.closed = true;
    this.priority.queue = [];
    this.normal.queue = [];
    for (const c of this.inFlight) c.abort(new DispatcherClosedError());
  }

  /**
   * Raft sends one snapshot at a time: a second means it gave up on the first (its snapshot timeout,
   * or a failure report). The one in flight is then stale, and possibly stuck on a dead connection
   * until the dispatcher's own, longer, timeout: it is aborted, unreported (raft has moved on), and
   * the new one goes at once.
   */
  private startSnapshot(m: Message): boolean {
    const stale = this.snapshotInFlight;
    if (stale !== null) {
      stale.superseded = true;
      stale.controller.abort(new SnapshotSupersededError(this.peer));
    }
    const transfer = { controller: new AbortController(), superseded: false };
    this.snapshotInFlight = transfer;
    void this.runSnapshot(m, transfer);
    return true;
  }

  private async runSnapshot(m: Message, transfer: SnapshotTransfer): Promise<void> {
    try {
      // The timeout is one of silence: every bit of progress restarts it, so a large snapshot on a
      // slow link is not given up while it still moves.
      await this.withTimeout(
        "snapshot",
        this.opts.snapshotTimeoutMs,
        (signal, touch) =>
          this.sender.sendSnapshot(m, signal, () => {
            touch();
            if (!transfer.superseded) this.snapshotProgress = true;
          }),
        transfer.controller,
      );
      if (this.closed || transfer.superseded) return;
      this.stats.sent++;
      this.reports.post({
        kind: "snapshot-confirmed",
        peer: this.peer,
        index: m.snapshot?.metadata.index ?? 0,
      });
    } catch (err) {
      if (!this.closed && !transfer.superseded) this.fail(m.type, asError(err));
    } finally {
      if (this.snapshotInFlight === transfer) this.snapshotInFlight = null;
    }
  }

  private async pump(lane: Lane): Promise<void> {
    try {
      while (!this.closed && lane.queue.length > 0) {
        const batch = lane.queue.splice(0, this.opts.maxBatchMessages);
        try {
          await this.withTimeout(`${lane.name} batch`, this.opts.sendTimeoutMs, (signal) =>
            this.sender.send(batch, signal),
          );
          this.stats.sent += batch.length;
        } catch (err) {
          if (this.closed) return;
          // Raft needs one report per peer to stop streaming to it; the batch's first type names it.
          this.fail(batch[0]!.type, asError(err));
        }
      }
    } finally {
      lane.busy = false;
    }
  }

  private fail(type: Message["type"], error: Error): void {
    this.stats.failed++;
    this.reports.post({ kind: "failed", peer: this.peer, messageType: type, error });
  }

  /**
   * Runs a send with an abort signal that fires after `ms` (restarted by each `touch()`); the returned
   * promise never outlives it.
   */
  private withTimeout(
    what: string,
    ms: number,
    run: (signal: AbortSignal, touch: () => void) => Promise<void>,
    controller = new AbortController(),
  ): Promise<void> {
    this.inFlight.add(controller);
    return new Promise<void>((resolve, reject) => {
      const expire = () => {
        const err = new SendTimeoutError(this.peer, what, ms);
        controller.abort(err);
        reject(err);
      };
      let timer = this.timers.setTimeout(expire, ms);
      const touch = () => {
        if (controller.signal.aborted) return;
        this.timers.clearTimeout(timer);
        timer = this.timers.setTimeout(expire, ms);
      };
      const settle = () => {
        this.timers.clearTimeout(timer);
        this.inFlight.delete(controller);
      };
      controller.signal.addEventListener("abort", () => {
        settle();
        reject(controller.signal.reason);
      });
      run(controller.signal, touch).then(
        () => {
          settle();
          resolve();
        },
        (err: unknown) => {
          settle();
          reject(err);
        },
      );
    });
  }
}

function asError(err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err));
}
