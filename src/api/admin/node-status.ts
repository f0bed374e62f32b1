/**
 * One node's status as the admin service reports it: built from the engine's `Status` on the node,
 * carried as a StatusResponse, and read back by the client into plain numbers (for `--json`, and for
 * the human-readable table).
 */
import { create } from "@bufbuild/protobuf";
import type { Status } from "../../raft/status.js";
import type { ConfState, NodeId, ProgressState, StateRole } from "../../raft/types.js";
import * as pb from "../../transport/gen/raftkv/admin/v1/admin_pb.js";

export interface MembershipView {
  voters: NodeId[];
  learners: NodeId[];
  /** Non-empty only in a joint configuration. */
  votersOutgoing: NodeId[];
  learnersNext: NodeId[];
}

export interface PeerProgressView {
  id: NodeId;
  match: number;
  next: number;
  state: ProgressState;
  learner: boolean;
  recentActive: boolean;
  paused: boolean;
  pendingSnapshot: number;
  inflightMessages: number;
}

export interface NodeStatusView {
  id: NodeId;
  clusterId: string;
  role: StateRole;
  term: number;
  /** 0: no leader known. */
  leader: NodeId;
  commit: number;
  applied: number;
  lastIndex: number;
  snapshotIndex: number;
  membership: MembershipView;
  /** The addresses this node knows for the members. */
  members: { id: NodeId; address: string }[];
  /** The leader's view of each member's replication; empty on other nodes. */
  progress: PeerProgressView[];
  leadTransferee: NodeId;
}

const ROLES: ReadonlyMap<StateRole, pb.Role> = new Map([
  ["follower", pb.Role.FOLLOWER],
  ["pre-candidate", pb.Role.PRE_CANDIDATE],
  ["candidate", pb.Role.CANDIDATE],
  ["leader", pb.Role.LEADER],
]);
const PROGRESS_STATES: ReadonlyMap<ProgressState, pb.ProgressState> = new Map([
  ["probe", pb.ProgressState.PROBE],
  ["replicate", pb.ProgressState.REPLICATE],
  ["snapshot", pb.ProgressState.SNAPSHOT],
]);

function ids(list: readonly NodeId[]): bigint[] {
  return [...list].sort((a, b) => a - b).map(BigInt);
}

export function membershipMessage(cs: ConfState): pb.Membership {
  return create(pb.MembershipSchema, {
    voters: ids(cs.voters),
    learners: ids(cs.learners),
    votersOutgoing: ids(cs.votersOutgoing),
    learnersNext: ids(cs.learnersNext),
  });
}

/** The StatusResponse of a node whose engine reports `status`, knowing `addresses` for its members. */
export function statusResponse(
  status: Status,
  clusterId: string,
  addresses: ReadonlyMap<NodeId, string>,
): pb.StatusResponse {
  const cs = status.config;
  const memberIds = [...new Set([...cs.voters, ...cs.learners, ...cs.votersOutgoing])].sort((a, b) => a - b);
  const progress = [...(status.progress ?? new Map())].sort((a, b) => a[0] - b[0]);
  return create(pb.StatusResponseSchema, {
    id: BigInt(status.id),
    clusterId,
    role: ROLES.get(status.softState.role) ?? pb.Role.UNSPECIFIED,
    term: BigInt(status.hardState.term),
    leader: BigInt(status.softState.lead),
    commit: BigInt(status.hardState.commit),
    applied: BigInt(status.applied),
    lastIndex: BigInt(status.lastIndex),
    snapshotIndex: BigInt(status.snapshotIndex),
    membership: membershipMessage(cs),
    members: memberIds.map((id) =>
      create(pb.MemberSchema, { id: BigInt(id), address: addresses.get(id) ?? "" }),
    ),
    progress: progress.map(([id, pr]) =>
      create(pb.PeerProgressSchema, {
        id: BigInt(id),
        match: BigInt(pr.match),
        next: BigInt(pr.next),
        state: PROGRESS_STATES.get(pr.state) ?? pb.ProgressState.UNSPECIFIED,
        learner: pr.isLearner,
        recentActive: pr.recentActive,
        paused: pr.paused,
        pendingSnapshot: BigInt(pr.pendingSnapshot),
        inflightMessages: BigInt(pr.inflightMessages),
      }),
    ),
    leadTransferee: BigInt(status.leadTransferee),
  });
}

/** A uint64 from the wire as a number (they stay below 2^53 by the protocol's rule). */
function num(v: bigint): number {
  return Number(v);
}

export function membershipView(m: pb.Membership | undefined): MembershipView {
  return {
    voters: (m?.voters ?? []).map(num),
    learners: (m?.learners ?? []).map(num),
    votersOutgoing: (m?.votersOutgoing ?? []).map(num),
    learnersNext: (m?.learnersNext ?? []).map(num),
  };
}

function roleName(role: pb.Role): StateRole {
  for (const [name, r] of ROLES) if (r === role) return name;
  return "follower";
}

function progressStateName(state: pb.ProgressState): ProgressState {
  for (const [name, s] of PROGRESS_STATES) if (s === state) return name;
  return "probe";
}

export function nodeStatusView(r: pb.StatusResponse): NodeStatusView {
  return {
    id: num(r.id),
    clusterId: r.clusterId,
    role: roleName(r.role),
    term: num(r.term),
    leader: num(r.leader),
    commit: num(r.commit),
    applied: num(r.applied),
    lastIndex: num(r.lastIndex),
    snapshotIndex: num(r.snapshotIndex),
    membership: membershipView(r.membership),
    members: r.members.map((m) => ({ id: num(m.id), address: m.address })),
    progress: r.progress.map((p) => ({
      id: num(p.id),
      match: num(p.match),
      next: num(p.next),
      state: progressStateName(p.state),
      learner: p.learner,
      recentActive: p.recentActive,
      paused: p.paused,
      pendingSnapshot: num(p.pendingSnapshot),
      inflightMessages: num(p.inflightMessages),
    })),
    leadTransferee: num(r.leadTransferee),
  };
}
