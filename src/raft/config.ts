import { RaftUsageError } from "./errors.js";
import { type RandomSource, SeededRandom } from "./rand.js";
import type { ReadOnlyOption } from "./read-only.js";
import type { Storage } from "./storage.js";
import type { NodeId } from "./types.js";

/** Where the core writes what it decides; the default discards everything. */
export interface RaftLogger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
}

export const silentLogger: RaftLogger = { debug() {}, info() {}, warn() {} };

export interface RaftOptions {
  id: NodeId;
  storage: Storage;
  /** Ticks without hearing from a leader before a follower campaigns (randomized in [E, 2E)). */
  electionTicks?: number;
  /** Ticks between a leader's heartbeats. Must be less than electionTicks. */
  heartbeatTicks?: number;
  /** The last index the state machine has applied (on restart), so it is not re-applied. */
  applied?: number;
  /** Upper bound on the entries carried by one append message. */
  maxMessageBytes?: number;
  /** Upper bound on the committed entries handed out in one Ready. */
  maxApplyingBytes?: number;
  /** Upper bound on the payload bytes a leader holds uncommitted; further proposals are refused. */
  maxUncommittedBytes?: number;
  /** Append messages in flight per follower in the replicate state. */
  maxInflightMessages?: number;
  /** Bytes in flight per follower; 0 means unbounded. */
  maxInflightBytes?: number;
  /** A leader that has not heard from a quorum for an election timeout steps down. */
  checkQuorum?: boolean;
  /** Ask whether an election could be won before disrupting the cluster with a new term. */
  preVote?: boolean;
  readOnly?: ReadOnlyOption;
  /**
   * For lease-based reads: how much faster one node's clock may run than another's (1.1: by 10 %). A
   * follower may vote for someone else (electionTicks - 1) of its tick periods after it last heard
   * from the leader, so the leader's lease lasts floor((electionTicks - 1) / maxClockDrift) of its
   * own ticks from when it sent the heartbeat a quorum acknowledged.
   */
  maxClockDrift?: number;
  /** Followers refuse proposals instead of forwarding them to the leader. */
  disableProposalForwarding?: boolean;
  /**
   * Leader ticks a peer may stay in the snapshot state without an answer before the leader falls back
   * to probing it (and so retries the snapshot). 0 disables the fallback, as in etcd/raft.
   */
  snapshotTimeoutTicks?: number;
  /** Seeds election timeouts; defaults to a generator seeded with the node id. */
  random?: RandomSource;
  logger?: RaftLogger;
  /**
   * Test-only: known consensus bugs switched on, so that the simulator can show it finds each. Never
   * set outside tests.
   */
  unsafeTestingBugs?: RaftTestingBugs;
}

export interface RaftTestingBugs {
  /** Commit an entry of an earlier term once a majority holds it (the raft paper's Figure 8). */
  commitEarlierTermByCounting?: boolean;
  /** Allow lease-based reads without checkQuorum (followers then vote within a leader's lease). */
  leaseWithoutCheckQuorum?: boolean;
}

export type ResolvedRaftOptions = Required<RaftOptions>;

export const RAFT_DEFAULTS = {
  electionTicks: 10,
  heartbeatTicks: 1,
  maxMessageBytes: 1024 * 1024,
  maxApplyingBytes: 64 * 1024 * 1024,
  maxUncommittedBytes: 256 * 1024 * 1024,
  maxInflightMessages: 256,
  maxInflightBytes: 64 * 1024 * 1024,
  checkQuorum: true,
  preVote: true,
  readOnly: "safe" as ReadOnlyOption,
  maxClockDrift: 1.1,
  disableProposalForwarding: false,
  /** A few election timeouts: long enough for a transfer the engine watches, short enough to never latch. */
  snapshotTimeoutTicksPerElection: 5,
};

export function resolveOptions(o: RaftOptions): ResolvedRaftOptions {
  const electionTicks = o.electionTicks ?? RAFT_DEFAULTS.electionTicks;
  const r: ResolvedRaftOptions = {
    id: o.id,
    storage: o.storage,
    electionTicks,
    heartbeatTicks: o.heartbeatTicks ?? RAFT_DEFAULTS.heartbeatTicks,
    applied: o.applied ?? 0,
    maxMessageBytes: o.maxMessageBytes ?? RAFT_DEFAULTS.maxMessageBytes,
    maxApplyingBytes: o.maxApplyingBytes ?? RAFT_DEFAULTS.maxApplyingBytes,
    maxUncommittedBytes: o.maxUncommittedBytes ?? RAFT_DEFAULTS.maxUncommittedBytes,
    maxInflightMessages: o.maxInflightMessages ?? RAFT_DEFAULTS.maxInflightMessages,
    maxInflightBytes: o.maxInflightBytes ?? RAFT_DEFAULTS.maxInflightBytes,
    checkQuorum: o.checkQuorum ?? RAFT_DEFAULTS.checkQuorum,
    preVote: o.preVote ?? RAFT_DEFAULTS.preVote,
    readOnly: o.readOnly ?? RAFT_DEFAULTS.readOnly,
    maxClockDrift: o.maxClockDrift ?? RAFT_DEFAULTS.maxClockDrift,
    disableProposalForwarding: o.disableProposalForwarding ?? RAFT_DEFAULTS.disableProposalForwarding,
    snapshotTimeoutTicks:
      o.snapshotTimeoutTicks ?? electionTicks * RAFT_DEFAULTS.snapshotTimeoutTicksPerElection,
    random: o.random ?? new SeededRandom(o.id),
    logger: o.logger ?? silentLogger,
    unsafeTestingBugs: o.unsafeTestingBugs ?? {},
  };
  validate(r);
  return r;
}

function validate(r: ResolvedRaftOptions): void {
  const positive = (name: keyof ResolvedRaftOptions, v: number) => {
    if (!Number.isSafeInteger(v) || v <= 0)
      throw new RaftUsageError(`${name} must be a positive integer, got ${v}`);
  };
  if (!Number.isSafeInteger(r.id) || r.id <= 0)
    throw new RaftUsageError(`id must be a positive integer, got ${r.id}`);
  positive("electionTicks", r.electionTicks);
  positive("heartbeatTicks", r.heartbeatTicks);
  if (r.heartbeatTicks >= r.electionTicks) {
    throw new RaftUsageError(
      `heartbeatTicks (${r.heartbeatTicks}) must be less than electionTicks (${r.electionTicks})`,
    );
  }
  positive("maxMessageBytes", r.maxMessageBytes);
  positive("maxApplyingBytes", r.maxApplyingBytes);
  positive("maxUncommittedBytes", r.maxUncommittedBytes);
  positive("maxInflightMessages", r.maxInflightMessages);
  if (!Number.isSafeInteger(r.maxInflightBytes) || r.maxInflightBytes < 0) {
    throw new RaftUsageError(`maxInflightBytes must be 0 or a positive integer, got ${r.maxInflightBytes}`);
  }
  if (r.maxInflightBytes > 0 && r.maxInflightBytes < r.maxMessageBytes) {
    throw new RaftUsageError("maxInflightBytes must be at least maxMessageBytes");
  }
  if (!Number.isSafeInteger(r.snapshotTimeoutTicks) || r.snapshotTimeoutTicks < 0) {
    throw new RaftUsageError(
      `snapshotTimeoutTicks must be 0 or a positive integer, got ${r.snapshotTimeoutTicks}`,
    );
  }
  if (!(r.maxClockDrift >= 1) || !Number.isFinite(r.maxClockDrift)) {
    throw new RaftUsageError(`maxClockDrift must be a finite number >= 1, got ${r.maxClockDrift}`);
  }
  if (r.readOnly === "lease-based" && Math.floor((r.electionTicks - 1) / r.maxClockDrift) < 1) {
    throw new RaftUsageError(
      `lease-based reads need a lease of at least one tick: raise electionTicks (${r.electionTicks}) or lower maxClockDrift (${r.maxClockDrift})`,
    );
  }
  if (r.readOnly === "lease-based" && !r.checkQuorum && !r.unsafeTestingBugs.leaseWithoutCheckQuorum) {
    throw new RaftUsageError("lease-based reads are only safe with checkQuorum enabled");
  }
  if (r.applied < 0) throw new RaftUsageError("applied must not be negative");
}
