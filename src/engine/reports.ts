/**
 * Dispatch reports: how a send that failed (or a snapshot the receiver confirmed) gets back to raft.
 *
 * The lesson of elastickv's production bug is that a transport which only logs its failures leaves
 * raft believing a follower is being replicated to while nothing arrives. Here every dispatch worker
 * posts a small report to a bounded queue; the engine's loop drains it and tells raft. Posting never
 * blocks and never throws: a full queue drops the report (counted), a closing engine abandons it.
 * A lost report costs at most raft's own snapshot timeout, never a stuck follower.
 */
import type { MessageType, NodeId } from "../raft/types.js";
import { MessageType as MT } from "../raft/types.js";

export type DispatchReport =
  /** A message to `peer` was not delivered: send error, timeout, or a full lane that dropped it. */
  | {
      readonly kind: "failed";
      readonly peer: NodeId;
      readonly messageType: MessageType;
      readonly error: Error;
    }
  /** `peer` received a snapshot whole, verified it and made it durable. */
  | { readonly kind: "snapshot-confirmed"; readonly peer: NodeId; readonly index: number };

export type PostOutcome = "queued" | "dropped" | "abandoned";

export const REPORT_QUEUE_DEFAULT_CAPACITY = 1024;

/** A bounded, non-blocking queue of dispatch reports, drained by the engine's loop. */
export class ReportQueue {
  private readonly items: (DispatchReport | undefined)[];
  private head = 0;
  private count = 0;
  private closed = false;
  /** Counters for the metrics layer (raftkv_dispatch_reports_*). */
  readonly stats = { posted: 0, dropped: 0, abandoned: 0 };
  /** Called after a report is queued, so the loop can wake; must not throw. */
  onPosted: (() => void) | null = null;

  constructor(readonly capacity = REPORT_QUEUE_DEFAULT_CAPACITY) {
    if (!Number.isSafeInteger(capacity) || capacity < 1) {
      throw new RangeError(`report queue capacity must be a positive integer, got ${capacity}`);
    }
    this.items = new Array<DispatchReport | undefined>(capacity);
  }

  get size(): number {
    return this.count;
  }

  /** Queues a report if there is room. Never blocks, never throws. */
  post(report: DispatchReport): PostOutcome {
    if (this.closed) {
      this.stats.abandoned++;
      return "abandoned";
    }
    if (this.count === this.capacity) {
      this.stats.dropped++;
      return "dropped";
    }
    this.items[(this.head + this.count) % this.capacity] = report;
    this.count++;
    this.stats.posted++;
    this.onPosted?.();
    return "queued";
  }

  /** Takes up to `max` reports, oldest first. */
  drain(max = this.capacity): DispatchReport[] {
    const n = Math.min(max, this.count);
    const out = new Array<DispatchReport>(n);
    for (let i = 0; i < n; i++) {
      const at = (this.head + i) % this.capacity;
      out[i] = this.items[at]!;
      this.items[at] = undefined;
    }
    this.head = (this.head + n) % this.capacity;
    this.count -= n;
    return out;
  }

  /** The engine is closing: reports still queued and any posted later are abandoned. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.stats.abandoned += this.count;
    this.drain();
  }
}

/** The part of a raft node that dispatch reports reach; RawNode provides it. */
export interface ReportTarget {
  reportUnreachable(peer: NodeId): void;
  reportSnapshot(peer: NodeId, status: "finish" | "failure"): void;
}

/**
 * Tells raft what a report means: a failed snapshot → reportSnapshot(failure) (the leader probes again
 * and sends a fresh one); any other failed send → reportUnreachable (a replicating peer falls back to
 * probing); a confirmed snapshot → reportSnapshot(finish).
 */
export function routeReport(report: DispatchReport, target: ReportTarget): void {
  if (report.kind === "snapshot-confirmed") {
    target.reportSnapshot(report.peer, "finish");
  } else if (report.messageType === MT.Snap) {
    target.reportSnapshot(report.peer, "failure");
  } else {
    target.reportUnreachable(report.peer);
  }
}
