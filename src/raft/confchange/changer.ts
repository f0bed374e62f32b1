import { InvalidConfChangeError } from "../errors.js";
import { JointConfig } from "../quorum/joint.js";
import { MajorityConfig } from "../quorum/majority.js";
import { Progress } from "../tracker/progress.js";
import type { ProgressMap, TrackerConfig } from "../tracker/tracker.js";
import type { ConfChangeSingle, ConfState, NodeId } from "../types.js";

/** A membership and the progress map that goes with it, as produced by a change. */
export interface ConfigAndProgress {
  config: TrackerConfig;
  progress: ProgressMap;
}

interface MutableConfig {
  incoming: Set<NodeId>;
  outgoing: Set<NodeId>;
  learners: Set<NodeId>;
  learnersNext: Set<NodeId>;
  autoLeave: boolean;
}

/**
 * Computes new memberships from the current one. Never mutates its input: a change either yields a
 * whole new (config, progress) pair or throws InvalidConfChangeError, leaving the node as it was.
 */
export class Changer {
  constructor(
    private readonly current: ConfigAndProgress,
    /** New peers start probing from here. */
    private readonly lastIndex: number,
    private readonly maxInflight: number,
    private readonly maxInflightBytes: number,
  ) {}

  /**
   * Enters a joint configuration: the current voters become the outgoing half, and the changes apply
   * to the incoming half. Both halves must agree on every decision until the joint state is left.
   */
  enterJoint(autoLeave: boolean, changes: readonly ConfChangeSingle[]): ConfigAndProgress {
    const { cfg, progress } = this.copy();
    if (cfg.outgoing.size > 0) throw new InvalidConfChangeError("configuration is already joint");
    if (cfg.incoming.size === 0)
      throw new InvalidConfChangeError("cannot make a zero-voter configuration joint");
    for (const id of cfg.incoming) cfg.outgoing.add(id);
    this.apply(cfg, progress, changes);
    cfg.autoLeave = autoLeave;
    return this.finish(cfg, progress);
  }

  /** Leaves a joint configuration: the outgoing half is dropped, learners-to-be become learners. */
  leaveJoint(): ConfigAndProgress {
    const { cfg, progress } = this.copy();
    if (cfg.outgoing.size === 0) throw new InvalidConfChangeError("configuration is not joint");
    for (const id of cfg.learnersNext) cfg.learners.add(id);
    cfg.learnersNext.clear();
    for (const id of cfg.outgoing) {
      if (!cfg.incoming.has(id) && !cfg.learners.has(id)) progress.delete(id);
    }
    cfg.outgoing.clear();
    cfg.autoLeave = false;
    return this.finish(cfg, progress);
  }

  /** Applies changes that alter the voters by at most one node, without a joint configuration. */
  simple(changes: readonly ConfChangeSingle[]): ConfigAndProgress {
    const { cfg, progress } = this.copy();
    if (cfg.outgoing.size > 0)
      throw new InvalidConfChangeError("cannot apply a simple change to a joint configuration");
    const before = new Set(cfg.incoming);
    this.apply(cfg, progress, changes);
    let differ = 0;
    for (const id of cfg.incoming) if (!before.has(id)) differ++;
    for (const id of before) if (!cfg.incoming.has(id)) differ++;
    if (differ > 1)
      throw new InvalidConfChangeError("more than one voter changed without entering a joint configuration");
    return this.finish(cfg, progress);
  }

  private apply(cfg: MutableConfig, progress: ProgressMap, changes: readonly ConfChangeSingle[]): void {
    for (const cc of changes) {
      if (cc.nodeId === 0) continue; // etcd ignores a change for "nobody"; so do we
      switch (cc.type) {
        case "addVoter":
          this.makeVoter(cfg, progress, cc.nodeId);
          break;
        case "addLearner":
          this.makeLearner(cfg, progress, cc.nodeId);
          break;
        case "removeNode":
          cfg.incoming.delete(cc.nodeId);
          cfg.learners.delete(cc.nodeId);
          cfg.learnersNext.delete(cc.nodeId);
          // A voter of the outgoing half keeps its progress until the joint state is left.
          if (!cfg.outgoing.has(cc.nodeId)) progress.delete(cc.nodeId);
          break;
        default:
          throw new InvalidConfChangeError(`unknown change type ${String((cc as { type: unknown }).type)}`);
      }
    }
    if (cfg.incoming.size === 0) throw new InvalidConfChangeError("removed all voters");
  }

  private makeVoter(cfg: MutableConfig, progress: ProgressMap, id: NodeId): void {
    if (!progress.has(id)) {
      this.initProgress(cfg, progress, id, false);
      return;
    }
    cfg.learners.delete(id);
    cfg.learnersNext.delete(id);
    cfg.incoming.add(id);
  }

  private makeLearner(cfg: MutableConfig, progress: ProgressMap, id: NodeId): void {
    if (!progress.has(id)) {
      this.initProgress(cfg, progress, id, true);
      return;
    }
    if (cfg.learners.has(id)) return;
    cfg.incoming.delete(id);
    // A voter of the outgoing half must keep voting there until the joint state is left, so it is
    // demoted later; anyone else becomes a learner at once.
    if (cfg.outgoing.has(id)) cfg.learnersNext.add(id);
    else cfg.learners.add(id);
  }

  private initProgress(cfg: MutableConfig, progress: ProgressMap, id: NodeId, isLearner: boolean): void {
    if (isLearner) cfg.learners.add(id);
    else cfg.incoming.add(id);
    const pr = new Progress(Math.max(this.lastIndex, 1), this.maxInflight, this.maxInflightBytes, isLearner);
    // A new node counts as active so that check-quorum does not depose the leader before the newcomer
    // had a chance to answer.
    pr.recentActive = true;
    progress.set(id, pr);
  }

  private copy(): { cfg: MutableConfig; progress: ProgressMap } {
    const c = this.current.config;
    return {
      cfg: {
        incoming: new Set(c.voters.incoming.ids),
        outgoing: new Set(c.voters.outgoing.ids),
        learners: new Set(c.learners),
        learnersNext: new Set(c.learnersNext),
        autoLeave: c.autoLeave,
      },
      // Progress objects are shared with the current configuration and never modified here (the
      // tracker sets learner flags when it installs a result), so a refused change or a dry run
      // leaves the node exactly as it was.
      progress: new Map(this.current.progress),
    };
  }

  private finish(cfg: MutableConfig, progress: ProgressMap): ConfigAndProgress {
    checkInvariants(cfg, progress);
    return {
      config: {
        voters: new JointConfig(new MajorityConfig(cfg.incoming), new MajorityConfig(cfg.outgoing)),
        learners: cfg.learners,
        learnersNext: cfg.learnersNext,
        autoLeave: cfg.autoLeave,
      },
      progress,
    };
  }
}

function checkInvariants(cfg: MutableConfig, progress: ProgressMap): void {
  for (const ids of [cfg.incoming, cfg.outgoing, cfg.learners, cfg.learnersNext]) {
    for (const id of ids) {
      if (!progress.has(id)) throw new InvalidConfChangeError(`no progress for node ${id}`);
    }
  }
  for (const id of cfg.learnersNext) {
    if (!cfg.outgoing.has(id))
      throw new InvalidConfChangeError(`node ${id} is in learnersNext but not an outgoing voter`);
    if (cfg.learners.has(id))
      throw new InvalidConfChangeError(`node ${id} is in learnersNext but already a learner`);
  }
  for (const id of cfg.learners) {
    if (cfg.incoming.has(id) || cfg.outgoing.has(id)) {
      throw new InvalidConfChangeError(`node ${id} is both a learner and a voter`);
    }
  }
  for (const id of progress.keys()) {
    if (!cfg.incoming.has(id) && !cfg.outgoing.has(id) && !cfg.learners.has(id)) {
      throw new InvalidConfChangeError(`progress kept for node ${id}, which is not a member`);
    }
  }
  if (cfg.outgoing.size === 0 && cfg.autoLeave)
    throw new InvalidConfChangeError("autoLeave set outside a joint configuration");
}

/**
 * Rebuilds a tracker membership from a ConfState (at startup or from a snapshot) by replaying it as
 * changes from an empty configuration.
 */
export function restoreConfig(
  cs: ConfState,
  lastIndex: number,
  maxInflight: number,
  maxInflightBytes: number,
): ConfigAndProgress {
  const empty: ConfigAndProgress = {
    config: {
      voters: new JointConfig(new MajorityConfig()),
      learners: new Set(),
      learnersNext: new Set(),
      autoLeave: false,
    },
    progress: new Map(),
  };
  const step = (cur: ConfigAndProgress) => new Changer(cur, lastIndex, maxInflight, maxInflightBytes);
  const incoming: ConfChangeSingle[] = [
    ...cs.votersOutgoing.map((nodeId) => ({ type: "removeNode" as const, nodeId })),
    ...cs.voters.map((nodeId) => ({ type: "addVoter" as const, nodeId })),
    ...cs.learners.map((nodeId) => ({ type: "addLearner" as const, nodeId })),
    ...cs.learnersNext.map((nodeId) => ({ type: "addLearner" as const, nodeId })),
  ];
  if (cs.votersOutgoing.length === 0) {
    if (cs.voters.length === 0 && cs.learners.length === 0) return empty;
    let cur = empty;
    // One change at a time, so that each is a valid simple change.
    for (const cc of incoming) cur = step(cur).simple([cc]);
    return cur;
  }
  // Build the outgoing configuration first, then enter the joint state towards the incoming one.
  let cur = empty;
  for (const nodeId of cs.votersOutgoing) cur = step(cur).simple([{ type: "addVoter", nodeId }]);
  return step(cur).enterJoint(cs.autoLeave, incoming);
}
