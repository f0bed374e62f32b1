import { invariant } from "../errors.js";
import { ProgressState } from "../types.js";
import { Inflights } from "./inflights.js";

/**
 * The leader's view of one follower's log, and the flow control that goes with it.
 *
 * - probe: the leader does not know where the logs match; it sends one append per heartbeat interval
 *   and waits for the answer.
 * - replicate: the logs match up to `match`; the leader streams appends optimistically, bounded by the
 *   inflight window.
 * - snapshot: the follower needs a snapshot; nothing else is sent until the transfer is reported or,
 *   failing that, `ticksInSnapshot` reaches the configured limit.
 */
export class Progress {
  match = 0;
  next: number;
  state: ProgressState = ProgressState.Probe;
  /** The index of the snapshot being sent (0 when none), while in the snapshot state. */
  pendingSnapshot = 0;
  /** Heard from within the current check-quorum window. */
  recentActive = false;
  /** In probe: an append has been sent and no answer received yet. */
  msgAppFlowPaused = false;
  /** Leader ticks spent in the snapshot state without an answer: the latch breaker. */
  ticksInSnapshot = 0;
  readonly inflights: Inflights;

  constructor(
    next: number,
    maxInflight: number,
    maxInflightBytes: number,
    public isLearner: boolean,
  ) {
    this.next = next;
    this.inflights = new Inflights(maxInflight, maxInflightBytes);
  }

  private resetState(state: ProgressState): void {
    this.msgAppFlowPaused = false;
    this.pendingSnapshot = 0;
    this.ticksInSnapshot = 0;
    this.state = state;
    this.inflights.reset();
  }

  becomeProbe(): void {
    if (this.state === ProgressState.Snapshot) {
      // After a snapshot the follower is at least at the snapshot's index if it was installed; if it was
      // not (pendingSnapshot cleared on failure) we probe from what it last acknowledged.
      const pending = this.pendingSnapshot;
      this.resetState(ProgressState.Probe);
      this.next = Math.max(this.match + 1, pending + 1);
    } else {
      this.resetState(ProgressState.Probe);
      this.next = this.match + 1;
    }
  }

  becomeReplicate(): void {
    this.resetState(ProgressState.Replicate);
    this.next = this.match + 1;
  }

  becomeSnapshot(snapshotIndex: number): void {
    this.resetState(ProgressState.Snapshot);
    this.pendingSnapshot = snapshotIndex;
    this.next = snapshotIndex + 1;
  }

  /** Records an append carrying `entries` entries (`bytes` in total) that was just sent. */
  sentEntries(entries: number, bytes: number): void {
    if (this.state === ProgressState.Replicate) {
      if (entries > 0) {
        this.next += entries;
        this.inflights.add(this.next - 1, bytes);
      }
    } else if (this.state === ProgressState.Probe) {
      if (entries > 0) this.msgAppFlowPaused = true;
    } else {
      invariant(false, () => `sending entries to a follower in state ${this.state}`);
    }
  }

  /** The follower acknowledged everything up to n. Returns whether that was news. */
  maybeUpdate(n: number): boolean {
    if (n <= this.match) return false;
    this.match = n;
    if (this.next < n + 1) this.next = n + 1;
    this.msgAppFlowPaused = false;
    return true;
  }

  /**
   * The follower rejected an append at index `rejected`, hinting that the logs may match at
   * `matchHint`. Returns false when the rejection is stale (it answers an earlier append).
   */
  maybeDecrTo(rejected: number, matchHint: number): boolean {
    if (this.state === ProgressState.Replicate) {
      if (rejected <= this.match) return false;
      this.next = this.match + 1;
      return true;
    }
    if (this.next - 1 !== rejected) return false;
    this.next = Math.max(Math.min(rejected, matchHint + 1), this.match + 1);
    this.msgAppFlowPaused = false;
    return true;
  }

  /** Whether the leader must hold back appends to this follower. */
  isPaused(): boolean {
    switch (this.state) {
      case ProgressState.Probe:
        return this.msgAppFlowPaused;
      case ProgressState.Replicate:
        return this.inflights.full();
      default:
        return true;
    }
  }
}
