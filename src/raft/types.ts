/**
 * The data the raft core exchanges with its caller: log entries, messages, durable state, snapshots and
 * membership. Plain objects with a fixed shape; payloads are `Uint8Array`s that the core never copies.
 */

/** A node's identity in the cluster. 0 means "nobody" (no vote, no known leader). */
export type NodeId = number;
export const NONE: NodeId = 0;

export const EntryType = {
  /** An application command (or the empty entry a new leader appends). */
  Normal: 0,
  /** A membership change; `data` is an encoded {@link ConfChange}. */
  ConfChange: 1,
} as const;
export type EntryType = (typeof EntryType)[keyof typeof EntryType];

export interface Entry {
  readonly term: number;
  readonly index: number;
  readonly type: EntryType;
  readonly data: Uint8Array;
}

export const MessageType = {
  // Local messages: never sent over the network (except Prop, which followers forward to the leader).
  Hup: 0,
  Beat: 1,
  Prop: 2,
  Unreachable: 3,
  SnapStatus: 4,
  CheckQuorum: 5,
  ForgetLeader: 6,
  SnapProgress: 7,
  // Wire messages.
  App: 10,
  AppResp: 11,
  Vote: 12,
  VoteResp: 13,
  PreVote: 14,
  PreVoteResp: 15,
  Snap: 16,
  Heartbeat: 17,
  HeartbeatResp: 18,
  TransferLeader: 19,
  TimeoutNow: 20,
  ReadIndex: 21,
  ReadIndexResp: 22,
} as const;
export type MessageType = (typeof MessageType)[keyof typeof MessageType];

const messageTypeNames = new Map<number, string>(Object.entries(MessageType).map(([k, v]) => [v, k]));
export function messageTypeName(type: MessageType): string {
  return messageTypeNames.get(type) ?? `Unknown(${type})`;
}

/** Messages whose loss delays only liveness and that the transport should send ahead of bulk data. */
export function isPriorityMessage(type: MessageType): boolean {
  return type !== MessageType.App && type !== MessageType.AppResp && type !== MessageType.Snap;
}

export function isResponseMessage(type: MessageType): boolean {
  return (
    type === MessageType.AppResp ||
    type === MessageType.VoteResp ||
    type === MessageType.PreVoteResp ||
    type === MessageType.HeartbeatResp ||
    type === MessageType.ReadIndexResp
  );
}

/**
 * Messages the core produces only for itself or that a caller injects locally; never on the wire.
 * Prop is the exception: a follower forwards its caller's proposals to the leader as messages.
 */
export function isLocalMessage(type: MessageType): boolean {
  return type < MessageType.App && type !== MessageType.Prop;
}

/**
 * One message between raft nodes. Every field is always present so that all messages share one
 * object shape; unused fields hold 0, `false`, an empty array or `null`.
 */
export interface Message {
  type: MessageType;
  to: NodeId;
  from: NodeId;
  term: number;
  /** For App: the term of the entry at `index`. For votes: the candidate's last log term. */
  logTerm: number;
  /** For App: the index before `entries`. For AppResp: the highest matching index (or the rejected one). */
  index: number;
  entries: Entry[];
  commit: number;
  reject: boolean;
  /** For a rejected AppResp: the follower's best guess of where the logs may match. */
  rejectHint: number;
  snapshot: Snapshot | null;
  /** Opaque data carried by ReadIndex/Heartbeat (the read request's context) and campaign/transfer markers. */
  context: Uint8Array | null;
}

export const EMPTY_BYTES: Uint8Array = new Uint8Array(0);
const NO_ENTRIES: Entry[] = [];

/** Builds a message with every field present; `fields` overrides the zero values. */
export function message(fields: Partial<Message> & Pick<Message, "type">): Message {
  return {
    type: fields.type,
    to: fields.to ?? NONE,
    from: fields.from ?? NONE,
    term: fields.term ?? 0,
    logTerm: fields.logTerm ?? 0,
    index: fields.index ?? 0,
    entries: fields.entries ?? NO_ENTRIES,
    commit: fields.commit ?? 0,
    reject: fields.reject ?? false,
    rejectHint: fields.rejectHint ?? 0,
    snapshot: fields.snapshot ?? null,
    context: fields.context ?? null,
  };
}

/** The state that must be durable before any message that depends on it is sent. */
export interface HardState {
  readonly term: number;
  readonly vote: NodeId;
  readonly commit: number;
}

export const EMPTY_HARD_STATE: HardState = Object.freeze({ term: 0, vote: NONE, commit: 0 });

export function isEmptyHardState(hs: HardState): boolean {
  return hs.term === 0 && hs.vote === NONE && hs.commit === 0;
}

export function hardStateEqual(a: HardState, b: HardState): boolean {
  return a.term === b.term && a.vote === b.vote && a.commit === b.commit;
}

export const StateRole = {
  Follower: "follower",
  PreCandidate: "pre-candidate",
  Candidate: "candidate",
  Leader: "leader",
} as const;
export type StateRole = (typeof StateRole)[keyof typeof StateRole];

/** Volatile state the caller may want to observe (for logging, routing); need not be persisted. */
export interface SoftState {
  readonly lead: NodeId;
  readonly role: StateRole;
}

/**
 * Cluster membership. In a joint configuration `votersOutgoing` is non-empty and decisions need a
 * majority of both `voters` and `votersOutgoing`.
 */
export interface ConfState {
  readonly voters: readonly NodeId[];
  readonly learners: readonly NodeId[];
  readonly votersOutgoing: readonly NodeId[];
  /** Nodes that will become learners when the joint configuration is left (demoted voters). */
  readonly learnersNext: readonly NodeId[];
  /** Leave the joint configuration automatically once it is committed. */
  readonly autoLeave: boolean;
}

export const EMPTY_CONF_STATE: ConfState = Object.freeze({
  voters: [],
  learners: [],
  votersOutgoing: [],
  learnersNext: [],
  autoLeave: false,
});

export interface SnapshotMetadata {
  readonly index: number;
  readonly term: number;
  readonly confState: ConfState;
}

/** A point-in-time image of the state machine. `data` is opaque to the core. */
export interface Snapshot {
  readonly metadata: SnapshotMetadata;
  readonly data: Uint8Array;
}

export const EMPTY_SNAPSHOT: Snapshot = Object.freeze({
  metadata: Object.freeze({ index: 0, term: 0, confState: EMPTY_CONF_STATE }),
  data: EMPTY_BYTES,
});

export function isEmptySnapshot(s: Snapshot | null | undefined): boolean {
  return s == null || s.metadata.index === 0;
}

export type ConfChangeType = "addVoter" | "removeNode" | "addLearner";

export interface ConfChangeSingle {
  readonly type: ConfChangeType;
  readonly nodeId: NodeId;
}

/**
 * How a change moves through joint consensus:
 * - `auto`: a single change is applied directly; several use a joint configuration that raft leaves by
 *   itself once it commits.
 * - `implicit`: always joint, left automatically.
 * - `explicit`: always joint, left only when the application proposes an empty change.
 */
export type ConfChangeTransition = "auto" | "implicit" | "explicit";

export interface ConfChange {
  readonly transition: ConfChangeTransition;
  readonly changes: readonly ConfChangeSingle[];
  /** Opaque to raft; applications use it to carry, say, the new node's address. */
  readonly context?: Uint8Array;
}

/** A change with no changes leaves a joint configuration. */
export function isLeaveJoint(cc: ConfChange): boolean {
  return cc.changes.length === 0;
}

/** A change that must go through a joint configuration. */
export function needsJoint(cc: ConfChange): boolean {
  return cc.changes.length > 1 || (cc.changes.length > 0 && cc.transition !== "auto");
}

/** Joint configurations that raft leaves by itself once the entering change is applied. */
export function leavesJointAutomatically(cc: ConfChange): boolean {
  return needsJoint(cc) && cc.transition !== "explicit";
}

/** The answer to a read-index request: reads at or below `index` are linearizable once it is applied. */
export interface ReadState {
  readonly index: number;
  readonly requestContext: Uint8Array;
}

export const ProgressState = {
  Probe: "probe",
  Replicate: "replicate",
  Snapshot: "snapshot",
} as const;
export type ProgressState = (typeof ProgressState)[keyof typeof ProgressState];

export type SnapshotStatus = "finish" | "failure";
