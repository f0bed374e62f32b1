import { JointConfig } from "../quorum/joint.js";
import { MajorityConfig, VoteResult } from "../quorum/majority.js";
import type { ConfState, NodeId } from "../types.js";
import type { Progress } from "./progress.js";

/** The membership a leader tracks: voters (possibly joint), learners, and learners-to-be. */
export interface TrackerConfig {
  readonly voters: JointConfig;
  readonly learners: ReadonlySet<NodeId>;
  /** Voters of the outgoing half that become learners when the joint configuration is left. */
  readonly learnersNext: ReadonlySet<NodeId>;
  readonly autoLeave: boolean;
}

export function emptyTrackerConfig(): TrackerConfig {
  return {
    voters: new JointConfig(new MajorityConfig()),
    learners: new Set(),
    learnersNext: new Set(),
    autoLeave: false,
  };
}

export type ProgressMap = Map<NodeId, Progress>;

/** Membership, per-peer progress and the votes of the current election. */
export class ProgressTracker {
  private cfg: TrackerConfig = emptyTrackerConfig();
  private prs: ProgressMap = new Map();
  /** Tracked ids in ascending order, cached: visiting is on the hot path of every append. */
  private ids: NodeId[] = [];
  readonly votes = new Map<NodeId, boolean>();

  constructor(
    readonly maxInflight: number,
    readonly maxInflightBytes: number,
  ) {}

  get config(): TrackerConfig {
    return this.cfg;
  }

  get progress(): ProgressMap {
    return this.prs;
  }

  /** Installs a new membership and its progress map together. */
  setConfig(config: TrackerConfig, progress: ProgressMap): void {
    this.cfg = config;
    this.prs = progress;
    for (const [id, pr] of progress) pr.isLearner = config.learners.has(id);
    this.ids = [...progress.keys()].sort((a, b) => a - b);
  }

  confState(): ConfState {
    return {
      voters: this.config.voters.incoming.sorted(),
      votersOutgoing: this.config.voters.outgoing.sorted(),
      learners: [...this.config.learners].sort((a, b) => a - b),
      learnersNext: [...this.config.learnersNext].sort((a, b) => a - b),
      autoLeave: this.config.autoLeave,
    };
  }

  isSingleton(): boolean {
    return this.config.voters.incoming.size === 1 && this.config.voters.outgoing.size === 0;
  }

  isVoter(id: NodeId): boolean {
    return this.config.voters.has(id);
  }

  /** The highest index a quorum of voters has durably appended. */
  committed(): number {
    const progress = this.progress;
    return this.config.voters.committedIndex((id) => progress.get(id)?.match);
  }

  /** Visits every tracked node in ascending id order, so that message order is deterministic. */
  visit(f: (id: NodeId, pr: Progress) => void): void {
    const ids = this.ids;
    const prs = this.prs;
    for (let i = 0; i < ids.length; i++) {
      const pr = prs.get(ids[i]!);
      if (pr) f(ids[i]!, pr);
    }
  }

  /** Whether the nodes marked recently active form a quorum. */
  quorumActive(): boolean {
    const votes = new Map<NodeId, boolean>();
    for (const [id, pr] of this.progress) if (!pr.isLearner) votes.set(id, pr.recentActive);
    return this.config.voters.voteResult(votes) === VoteResult.Won;
  }

  voterIds(): NodeId[] {
    return [...this.config.voters.ids()].sort((a, b) => a - b);
  }

  resetVotes(): void {
    this.votes.clear();
  }

  /** Records a vote; a node's first vote in an election is the one that counts. */
  recordVote(id: NodeId, granted: boolean): void {
    if (!this.votes.has(id)) this.votes.set(id, granted);
  }

  /** Votes from voters only: learners' and strangers' answers never count. */
  tallyVotes(): { granted: number; rejected: number; result: VoteResult } {
    let granted = 0;
    let rejected = 0;
    for (const [id, pr] of this.progress) {
      if (pr.isLearner) continue;
      const v = this.votes.get(id);
      if (v === undefined) continue;
      if (v) granted++;
      else rejected++;
    }
    return { granted, rejected, result: this.config.voters.voteResult(this.votes) };
  }
}
