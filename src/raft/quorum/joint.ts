import type { NodeId } from "../types.js";
import { MajorityConfig, VoteResult } from "./majority.js";

/**
 * Two majority configurations that must both agree: the incoming one and, during a membership change,
 * the outgoing one (empty otherwise).
 */
export class JointConfig {
  constructor(
    readonly incoming: MajorityConfig,
    readonly outgoing: MajorityConfig = new MajorityConfig(),
  ) {}

  isJoint(): boolean {
    return this.outgoing.size > 0;
  }

  /** Every voter of either half. */
  ids(): Set<NodeId> {
    const all = new Set(this.incoming.ids);
    for (const id of this.outgoing.ids) all.add(id);
    return all;
  }

  has(id: NodeId): boolean {
    return this.incoming.has(id) || this.outgoing.has(id);
  }

  committedIndex(acked: (id: NodeId) => number | undefined): number {
    return Math.min(this.incoming.committedIndex(acked), this.outgoing.committedIndex(acked));
  }

  voteResult(votes: ReadonlyMap<NodeId, boolean>): VoteResult {
    const a = this.incoming.voteResult(votes);
    const b = this.outgoing.voteResult(votes);
    if (a === b) return a;
    if (a === VoteResult.Lost || b === VoteResult.Lost) return VoteResult.Lost;
    return VoteResult.Pending;
  }
}
