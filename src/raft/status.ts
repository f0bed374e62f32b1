import type { Raft } from "./raft.js";
import type { ConfState, HardState, NodeId, ProgressState, SoftState } from "./types.js";

export interface PeerProgress {
  readonly match: number;
  readonly next: number;
  readonly state: ProgressState;
  readonly pendingSnapshot: number;
  readonly recentActive: boolean;
  readonly paused: boolean;
  readonly inflightMessages: number;
  readonly inflightBytes: number;
  readonly isLearner: boolean;
}

/** A snapshot of a node's state for observation (metrics, admin, tests). Cheap enough to poll. */
export interface Status {
  readonly id: NodeId;
  readonly hardState: HardState;
  readonly softState: SoftState;
  readonly applied: number;
  readonly lastIndex: number;
  readonly firstIndex: number;
  /** The index of the newest snapshot (stable or about to be persisted). */
  readonly snapshotIndex: number;
  readonly config: ConfState;
  /** Per-peer progress; present only on the leader. */
  readonly progress: ReadonlyMap<NodeId, PeerProgress> | null;
  readonly leadTransferee: NodeId;
}

export function getStatus(r: Raft): Status {
  let progress: Map<NodeId, PeerProgress> | null = null;
  if (r.role === "leader") {
    progress = new Map();
    r.trk.visit((id, pr) => {
      progress!.set(id, {
        match: pr.match,
        next: pr.next,
        state: pr.state,
        pendingSnapshot: pr.pendingSnapshot,
        recentActive: pr.recentActive,
        paused: pr.isPaused(),
        inflightMessages: pr.inflights.length,
        inflightBytes: pr.inflights.totalBytes,
        isLearner: pr.isLearner,
      });
    });
  }
  return {
    id: r.id,
    hardState: r.hardState(),
    softState: r.softState(),
    applied: r.log.applied,
    lastIndex: r.log.lastIndex(),
    firstIndex: r.log.firstIndex(),
    snapshotIndex: r.log.snapshot().metadata.index,
    config: r.trk.confState(),
    progress,
    leadTransferee: r.leadTransferee,
  };
}
