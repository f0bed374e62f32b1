import { Changer, type ConfigAndProgress, restoreConfig } from "./confchange/changer.js";
import { decodeConfChange, encodeConfChange } from "./confchange/codec.js";
import { type RaftLogger, type RaftOptions, type ResolvedRaftOptions, resolveOptions } from "./config.js";
import { entriesBytes, payloadBytes } from "./entries.js";
import {
  CompactedError,
  InvalidConfChangeError,
  invariant,
  ProposalDroppedError,
  RaftInvariantError,
  SnapshotTemporarilyUnavailableError,
  StepRejectedError,
} from "./errors.js";
import { RaftLog } from "./log.js";
import { VoteResult } from "./quorum/majority.js";
import { ReadOnly } from "./read-only.js";
import { ProgressTracker } from "./tracker/tracker.js";
import {
  type ConfChange,
  type ConfState,
  EMPTY_BYTES,
  type Entry,
  EntryType,
  type HardState,
  isEmptySnapshot,
  isLeaveJoint,
  leavesJointAutomatically,
  type Message,
  MessageType,
  message,
  messageTypeName,
  NONE,
  type NodeId,
  needsJoint,
  ProgressState,
  type ReadState,
  type Snapshot,
  type SoftState,
  StateRole,
} from "./types.js";

/** Marks a vote request that comes from a leader transfer, which may disrupt a live leader. */
export const CAMPAIGN_TRANSFER: Uint8Array = new TextEncoder().encode("CampaignTransfer");

type CampaignType = "pre-election" | "election" | "transfer";

function isCampaignTransfer(ctx: Uint8Array | null): boolean {
  if (!ctx || ctx.byteLength !== CAMPAIGN_TRANSFER.byteLength) return false;
  for (let i = 0; i < ctx.byteLength; i++) if (ctx[i] !== CAMPAIGN_TRANSFER[i]) return false;
  return true;
}

function voteResponseType(t: MessageType): MessageType {
  return t === MessageType.Vote ? MessageType.VoteResp : MessageType.PreVoteResp;
}

/**
 * The Raft state machine of one node. It performs no I/O and keeps no clock: the caller ticks it,
 * steps it with messages, and collects what it produced (through RawNode's Ready).
 *
 * Messages are split in two: `msgs` may be sent at once; `msgsAfterAppend` answer for state that
 * must be durable first (votes, append acknowledgements) and go out only after the caller persisted
 * the Ready that produced them. Those addressed to this node itself (its own vote) are stepped back
 * in once persisted.
 */
export class Raft {
  readonly id: NodeId;
  term = 0;
  vote: NodeId = NONE;
  lead: NodeId = NONE;
  role: StateRole = StateRole.Follower;
  readonly log: RaftLog;
  readonly trk: ProgressTracker;
  isLearner = false;

  msgs: Message[] = [];
  msgsAfterAppend: Message[] = [];
  readStates: ReadState[] = [];

  /** The log index of the latest conf change this leader proposed; only one may be unapplied. */
  pendingConfIndex = 0;
  /**
   * Whether the conf change at pendingConfIndex may remove or demote this leader. Until it is applied
   * nothing may follow it in the log: a leader that steps down holding entries no voter of the new
   * configuration has could leave no node able to win an election (the voters still need its vote
   * while they lack those entries, and it no longer campaigns).
   */
  pendingConfRemovesSelf = false;
  /** Payload bytes of entries this leader appended and that are not yet committed. */
  uncommittedBytes = 0;
  leadTransferee: NodeId = NONE;
  readOnly: ReadOnly;
  /**
   * The leader's lease. Each heartbeat broadcast is a numbered round; followers echo the round, and a
   * lease read is served only while the newest round a quorum acknowledged was sent less than an
   * election timeout ago (those followers refuse to vote until then). Ticks count this leader's time.
   */
  private ticksAsLeader = 0;
  private heartbeatRound = 0;
  private readonly roundSentAt = new Map<number, number>();
  private readonly ackedRound = new Map<NodeId, number>();
  /** A leader that sent TimeoutNow may be superseded at once (the vote bypasses leases): no lease. */
  private leaseRevoked = false;
  /** Read-index requests that arrived before this leader committed an entry of its term. */
  private pendingReadIndexMessages: Message[] = [];

  electionElapsed = 0;
  heartbeatElapsed = 0;
  randomizedElectionTimeout = 0;

  readonly opts: ResolvedRaftOptions;
  private readonly logger: RaftLogger;
  private stepRole: (m: Message) => void;
  private tickRole: () => void;

  constructor(options: RaftOptions) {
    this.opts = resolveOptions(options);
    this.id = this.opts.id;
    this.logger = this.opts.logger;
    this.log = new RaftLog(this.opts.storage, this.opts.maxApplyingBytes);
    this.trk = new ProgressTracker(this.opts.maxInflightMessages, this.opts.maxInflightBytes);
    this.readOnly = new ReadOnly(this.opts.readOnly);
    this.stepRole = this.stepFollower;
    this.tickRole = this.tickElection;

    const { hardState, confState } = this.opts.storage.initialState();
    const restored = restoreConfig(
      confState,
      this.log.lastIndex(),
      this.trk.maxInflight,
      this.trk.maxInflightBytes,
    );
    this.switchToConfig(restored);
    if (hardState.term !== 0 || hardState.vote !== NONE || hardState.commit !== 0)
      this.loadHardState(hardState);
    if (this.opts.applied > 0) this.log.appliedTo(this.opts.applied);
    this.becomeFollower(this.term, NONE);
    this.logger.info("raft node started", {
      id: this.id,
      term: this.term,
      commit: this.log.committed,
      applied: this.log.applied,
      lastIndex: this.log.lastIndex(),
      lastTerm: this.log.lastTerm(),
      voters: this.trk.voterIds(),
    });
  }

  // ---------------------------------------------------------------- state accessors

  softState(): SoftState {
    return { lead: this.lead, role: this.role };
  }

  hardState(): HardState {
    return { term: this.term, vote: this.vote, commit: this.log.committed };
  }

  /** Whether this node may become leader: a voter of the current configuration. */
  promotable(): boolean {
    const pr = this.trk.progress.get(this.id);
    return pr !== undefined && !pr.isLearner && !this.log.unstable.snapshot;
  }

  private loadHardState(hs: HardState): void {
    const first = this.log.firstIndex();
    const last = this.log.lastIndex();
    invariant(
      hs.commit >= first - 1 && hs.commit <= last,
      () => `hard state commit ${hs.commit} is out of range [${first - 1}, ${last}]`,
    );
    this.log.committed = hs.commit;
    this.term = hs.term;
    this.vote = hs.vote;
  }

  // ---------------------------------------------------------------- sending

  private send(m: Message): void {
    if (m.from === NONE) m.from = this.id;
    const t = m.type;
    if (
      t === MessageType.Vote ||
      t === MessageType.VoteResp ||
      t === MessageType.PreVote ||
      t === MessageType.PreVoteResp
    ) {
      invariant(m.term !== 0, () => `${messageTypeName(t)} must carry a term`);
    } else {
      invariant(m.term === 0, () => `${messageTypeName(t)} must not have its term set by the sender`);
      // Proposals forwarded to the leader carry no term: the leader's term is what they will get.
      if (t !== MessageType.Prop && t !== MessageType.ReadIndex && t !== MessageType.TransferLeader)
        m.term = this.term;
    }
    if (t === MessageType.AppResp || t === MessageType.VoteResp || t === MessageType.PreVoteResp) {
      // These promise something about our durable state (a vote cast, entries appended): they may
      // leave only once the Ready that produced them is persisted.
      this.msgsAfterAppend.push(m);
    } else {
      invariant(m.to !== this.id, () => `message ${messageTypeName(t)} addressed to self`);
      this.msgs.push(m);
    }
  }

  /** Sends an append (or, if the entries are compacted, a snapshot) to a follower if flow control allows. */
  maybeSendAppend(to: NodeId, sendIfEmpty: boolean): boolean {
    const pr = this.trk.progress.get(to);
    if (!pr || pr.isPaused()) return false;
    const prevIndex = pr.next - 1;
    let prevTerm: number;
    let entries: Entry[];
    try {
      prevTerm = this.log.term(prevIndex);
      entries = this.log.entries(pr.next, this.opts.maxMessageBytes);
    } catch (e) {
      if (e instanceof CompactedError) return this.maybeSendSnapshot(to);
      throw e;
    }
    if (entries.length === 0 && !sendIfEmpty) return false;
    this.send(
      message({
        type: MessageType.App,
        to,
        index: prevIndex,
        logTerm: prevTerm,
        entries,
        commit: this.log.committed,
      }),
    );
    pr.sentEntries(entries.length, entries.length > 0 ? entriesBytes(entries) : 0);
    return true;
  }

  private maybeSendSnapshot(to: NodeId): boolean {
    const pr = this.trk.progress.get(to)!;
    if (!pr.recentActive) {
      this.logger.debug("not sending snapshot to an inactive follower", { to });
      return false;
    }
    let snapshot: Snapshot;
    try {
      snapshot = this.log.snapshot();
    } catch (e) {
      if (e instanceof SnapshotTemporarilyUnavailableError) {
        this.logger.debug("snapshot temporarily unavailable; will retry", { to });
        return false;
      }
      throw e;
    }
    invariant(!isEmptySnapshot(snapshot), () => `follower ${to} needs a snapshot but there is none`);
    const { index, term, confState } = snapshot.metadata;
    if (
      !confState.voters.includes(to) &&
      !confState.learners.includes(to) &&
      !confState.votersOutgoing.includes(to)
    ) {
      // The follower would refuse a snapshot of a configuration without it; sending it again and again
      // only wastes bandwidth. The storage must offer a newer snapshot (taken after the node joined).
      this.logger.warn("snapshot predates the follower's membership; waiting for a newer one", { to, index });
      return false;
    }
    this.logger.info("sending snapshot", {
      to,
      index,
      term,
      match: pr.match,
      firstIndex: this.log.firstIndex(),
    });
    pr.becomeSnapshot(index);
    this.send(message({ type: MessageType.Snap, to, snapshot }));
    return true;
  }

  private sendHeartbeat(to: NodeId, context: Uint8Array | null, round: number): void {
    // Never tell a follower about a commit index beyond what it has: it could not apply it.
    const pr = this.trk.progress.get(to)!;
    const commit = Math.min(pr.match, this.log.committed);
    this.send(message({ type: MessageType.Heartbeat, to, commit, context, index: round }));
  }

  bcastAppend(): void {
    this.trk.visit((id) => {
      if (id !== this.id) this.maybeSendAppend(id, true);
    });
  }

  private bcastHeartbeat(context: Uint8Array | null): void {
    const round = ++this.heartbeatRound;
    this.roundSentAt.set(round, this.ticksAsLeader);
    // Rounds older than two election timeouts can no longer make a lease valid.
    for (const [r, at] of this.roundSentAt) {
      if (at >= this.ticksAsLeader - 2 * this.opts.electionTicks) break;
      this.roundSentAt.delete(r);
    }
    this.trk.visit((id) => {
      if (id !== this.id) this.sendHeartbeat(id, context, round);
    });
  }

  /** Whether a quorum acknowledged a heartbeat round sent less than an election timeout ago. */
  private leaseValid(): boolean {
    if (this.leaseRevoked) return false;
    const round = this.trk.config.voters.committedIndex((id) =>
      id === this.id ? this.heartbeatRound : this.ackedRound.get(id),
    );
    const sentAt = this.roundSentAt.get(round);
    // A follower may vote elsewhere (electionTicks - 1) of its periods after it heard this round (its
    // first tick can come at once), and its clock may run faster than ours by maxClockDrift.
    const leaseTicks = Math.floor((this.opts.electionTicks - 1) / this.opts.maxClockDrift);
    return sentAt !== undefined && this.ticksAsLeader - sentAt < leaseTicks;
  }

  private sendTimeoutNow(to: NodeId): void {
    this.leaseRevoked = true;
    this.send(message({ type: MessageType.TimeoutNow, to }));
  }

  // ---------------------------------------------------------------- role changes

  private reset(term: number): void {
    if (this.term !== term) {
      invariant(term > this.term, () => `term going back from ${this.term} to ${term}`);
      this.term = term;
      this.vote = NONE;
    }
    this.lead = NONE;
    this.electionElapsed = 0;
    this.heartbeatElapsed = 0;
    this.resetRandomizedElectionTimeout();
    this.abortLeaderTransfer();
    this.trk.resetVotes();
    const last = this.log.lastIndex();
    const persistedLast = this.log.unstable.entries.length > 0 || this.log.unstable.snapshot ? 0 : last;
    this.trk.visit((id, pr) => {
      pr.becomeProbe();
      pr.match = id === this.id ? persistedLast : 0;
      pr.next = last + 1;
      pr.recentActive = false;
    });
    this.pendingConfIndex = 0;
    this.pendingConfRemovesSelf = false;
    this.uncommittedBytes = 0;
    this.readOnly = new ReadOnly(this.opts.readOnly);
    this.pendingReadIndexMessages = [];
    this.ticksAsLeader = 0;
    this.heartbeatRound = 0;
    this.roundSentAt.clear();
    this.ackedRound.clear();
    this.leaseRevoked = false;
  }

  becomeFollower(term: number, lead: NodeId): void {
    this.stepRole = this.stepFollower;
    this.reset(term);
    this.tickRole = this.tickElection;
    this.lead = lead;
    this.role = StateRole.Follower;
  }

  becomeCandidate(): void {
    invariant(this.role !== StateRole.Leader, "a leader cannot become a candidate directly");
    this.stepRole = this.stepCandidate;
    this.reset(this.term + 1);
    this.tickRole = this.tickElection;
    this.vote = this.id;
    this.role = StateRole.Candidate;
    this.logger.info("became candidate", { id: this.id, term: this.term });
  }

  becomePreCandidate(): void {
    invariant(this.role !== StateRole.Leader, "a leader cannot become a pre-candidate directly");
    // A pre-candidate changes neither its term nor its vote: it only asks whether it could win.
    this.stepRole = this.stepCandidate;
    this.trk.resetVotes();
    this.tickRole = this.tickElection;
    this.lead = NONE;
    this.role = StateRole.PreCandidate;
    this.logger.info("became pre-candidate", { id: this.id, term: this.term });
  }

  becomeLeader(): void {
    invariant(this.role !== StateRole.Follower, "a follower cannot become leader without an election");
    this.stepRole = this.stepLeader;
    this.reset(this.term);
    this.tickRole = this.tickHeartbeat;
    this.lead = this.id;
    this.role = StateRole.Leader;
    const self = this.trk.progress.get(this.id)!;
    // The leader's own log is complete by definition; it replicates to itself at once.
    self.becomeReplicate();
    self.recentActive = true;
    // Conservatively treat every uncommitted entry as a possible pending conf change.
    this.pendingConfIndex = this.log.lastIndex();
    this.pendingConfRemovesSelf = this.unappliedConfChangeMayRemoveSelf();
    const empty: Entry = { term: 0, index: 0, type: EntryType.Normal, data: EMPTY_BYTES };
    invariant(this.appendEntries([empty]), "the empty leader entry must always be accepted");
    this.logger.info("became leader", { id: this.id, term: this.term, lastIndex: this.log.lastIndex() });
  }

  // ---------------------------------------------------------------- ticking

  tick(): void {
    this.tickRole();
  }

  private pastElectionTimeout(): boolean {
    return this.electionElapsed >= this.randomizedElectionTimeout;
  }

  private resetRandomizedElectionTimeout(): void {
    const e = this.opts.electionTicks;
    this.randomizedElectionTimeout = e + this.opts.random.intn(e);
  }

  private tickElection = (): void => {
    this.electionElapsed++;
    if (this.promotable() && this.pastElectionTimeout()) {
      this.electionElapsed = 0;
      this.step(message({ type: MessageType.Hup, from: this.id }));
    }
  };

  private tickHeartbeat = (): void => {
    this.heartbeatElapsed++;
    this.electionElapsed++;
    this.ticksAsLeader++;
    if (this.electionElapsed >= this.opts.electionTicks) {
      this.electionElapsed = 0;
      if (this.opts.checkQuorum) this.step(message({ type: MessageType.CheckQuorum, from: this.id }));
      // A transfer that did not finish within an election timeout is abandoned.
      if (this.role === StateRole.Leader && this.leadTransferee !== NONE) {
        this.logger.info("leader transfer timed out", { transferee: this.leadTransferee });
        this.abortLeaderTransfer();
      }
    }
    if (this.role !== StateRole.Leader) return;
    this.tickSnapshotTimeouts();
    this.maybeProposeAutoLeave();
    if (this.heartbeatElapsed >= this.opts.heartbeatTicks) {
      this.heartbeatElapsed = 0;
      this.step(message({ type: MessageType.Beat, from: this.id }));
    }
  };

  /**
   * The latch breaker: a peer left in the snapshot state with no answer (the report was lost, or the
   * follower crashed while restoring) falls back to probing, so the leader sends a fresh snapshot.
   */
  private tickSnapshotTimeouts(): void {
    const limit = this.opts.snapshotTimeoutTicks;
    if (limit === 0) return;
    this.trk.visit((id, pr) => {
      if (pr.state !== ProgressState.Snapshot) return;
      pr.ticksInSnapshot++;
      if (pr.ticksInSnapshot < limit) return;
      this.logger.warn("snapshot unanswered; falling back to probe and retrying", {
        to: id,
        pendingSnapshot: pr.pendingSnapshot,
        ticks: pr.ticksInSnapshot,
      });
      pr.pendingSnapshot = 0;
      pr.becomeProbe();
      this.maybeSendAppend(id, true);
    });
  }

  // ---------------------------------------------------------------- elections

  private hup(t: CampaignType): void {
    if (this.role === StateRole.Leader) {
      this.logger.debug("ignoring hup: already leader", { id: this.id });
      return;
    }
    if (!this.promotable()) {
      this.logger.debug("ignoring hup: not promotable", { id: this.id });
      return;
    }
    if (this.hasUnappliedConfChanges()) {
      this.logger.warn("cannot campaign: committed conf changes are not yet applied", {
        id: this.id,
        applied: this.log.applied,
        committed: this.log.committed,
      });
      return;
    }
    this.campaign(t);
  }

  /**
   * Whether a conf change this new leader inherited, not yet applied, might remove or demote it: one
   * that names it for removal or as a learner, or that leaves a joint configuration. Undecodable
   * entries count as yes.
   */
  private unappliedConfChangeMayRemoveSelf(): boolean {
    return this.log.someEntry(
      this.log.applied + 1,
      this.log.lastIndex() + 1,
      this.opts.maxApplyingBytes,
      (e) => {
        if (e.type !== EntryType.ConfChange) return false;
        let cc: ConfChange;
        try {
          cc = decodeConfChange(e.data);
        } catch {
          return true;
        }
        return isLeaveJoint(cc) || cc.changes.some((c) => c.nodeId === this.id && c.type !== "addVoter");
      },
    );
  }

  private hasUnappliedConfChanges(): boolean {
    return this.log.someEntry(
      this.log.applied + 1,
      this.log.committed + 1,
      this.opts.maxApplyingBytes,
      (e) => e.type === EntryType.ConfChange,
    );
  }

  private campaign(t: CampaignType): void {
    let term: number;
    let voteType: MessageType;
    if (t === "pre-election") {
      this.becomePreCandidate();
      voteType = MessageType.PreVote;
      term = this.term + 1; // the term we would campaign with; ours is unchanged
    } else {
      this.becomeCandidate();
      voteType = MessageType.Vote;
      term = this.term;
    }
    const lastIndex = this.log.lastIndex();
    const lastTerm = this.log.lastTerm();
    for (const id of this.trk.voterIds()) {
      if (id === this.id) {
        // Our own vote counts once it is durable: it goes through msgsAfterAppend like any vote.
        this.send(message({ type: voteResponseType(voteType), to: id, term }));
        continue;
      }
      this.logger.info("requesting vote", {
        from: this.id,
        to: id,
        term,
        type: messageTypeName(voteType),
        lastIndex,
        lastTerm,
      });
      this.send(
        message({
          type: voteType,
          to: id,
          term,
          index: lastIndex,
          logTerm: lastTerm,
          context: t === "transfer" ? CAMPAIGN_TRANSFER : null,
        }),
      );
    }
  }

  private poll(id: NodeId, granted: boolean): VoteResult {
    this.trk.recordVote(id, granted);
    return this.trk.tallyVotes().result;
  }

  // ---------------------------------------------------------------- step

  /** Feeds one message to the state machine. Throws ProposalDroppedError for a refused proposal. */
  step(m: Message): void {
    if (m.term === 0) {
      // A local message, or one that carries no term (forwarded proposals and reads).
    } else if (m.term > this.term) {
      if (m.type === MessageType.Vote || m.type === MessageType.PreVote) {
        const force = isCampaignTransfer(m.context);
        const inLease =
          this.opts.checkQuorum && this.lead !== NONE && this.electionElapsed < this.opts.electionTicks;
        if (!force && inLease) {
          // We heard from a live leader within the minimum election timeout: a node that cannot
          // hear it (a partitioned or removed one) must not depose it.
          this.logger.info("ignoring vote request within the leader's lease", {
            id: this.id,
            from: m.from,
            type: messageTypeName(m.type),
            term: m.term,
          });
          return;
        }
      }
      if (m.type === MessageType.PreVote) {
        // Never change our term in response to a pre-vote.
      } else if (m.type === MessageType.PreVoteResp && !m.reject) {
        // A granted pre-vote carries the future term; we move to it only when we win the pre-vote.
      } else {
        this.logger.info("received a message with a higher term", {
          id: this.id,
          term: this.term,
          type: messageTypeName(m.type),
          from: m.from,
          msgTerm: m.term,
        });
        const fromLeader =
          m.type === MessageType.App || m.type === MessageType.Heartbeat || m.type === MessageType.Snap;
        this.becomeFollower(m.term, fromLeader ? m.from : NONE);
      }
    } else if (m.term < this.term) {
      if (m.type === MessageType.Heartbeat || m.type === MessageType.App) {
        // A stale leader (partitioned while we moved on) must learn of the new term, or it might never
        // hear of it and the cluster would stall: with check-quorum/pre-vote our votes may be ignored,
        // and a node that is not a voter in its applied configuration never campaigns at all.
        // A rejection at index 0: it carries our term, and flow control discards it as stale, so it can
        // never pass for a probe acknowledgement should the sender be leader of our term by then.
        this.send(message({ type: MessageType.AppResp, to: m.from, reject: true }));
      } else if (m.type === MessageType.PreVote || m.type === MessageType.Vote) {
        // Tell a candidate behind us our term, or it may campaign one term at a time, never catching up
        // with a voter whose stale configuration keeps it campaigning without ever asking this candidate.
        this.send(message({ type: voteResponseType(m.type), to: m.from, term: this.term, reject: true }));
      }
      // Other stale messages are ignored.
      return;
    }

    switch (m.type) {
      case MessageType.Hup:
        this.hup(this.opts.preVote ? "pre-election" : "election");
        return;
      case MessageType.Vote:
      case MessageType.PreVote:
        this.handleVoteRequest(m);
        return;
      default:
        this.stepRole(m);
    }
  }

  private handleVoteRequest(m: Message): void {
    // We can vote for the node we already voted for (a retransmission), for anyone if we have not
    // voted and know no leader this term, and in a pre-vote for any future term.
    const canVote =
      this.vote === m.from ||
      (this.vote === NONE && this.lead === NONE) ||
      (m.type === MessageType.PreVote && m.term > this.term);
    if (canVote && this.log.isUpToDate(m.index, m.logTerm)) {
      this.logger.info("granting vote", {
        id: this.id,
        to: m.from,
        term: m.term,
        type: messageTypeName(m.type),
      });
      // The response carries the request's term: for a pre-vote that is a future term, which the
      // pre-candidate recognises; our own term does not change.
      this.send(message({ type: voteResponseType(m.type), to: m.from, term: m.term }));
      if (m.type === MessageType.Vote) {
        this.electionElapsed = 0;
        this.vote = m.from;
      }
    } else {
      this.logger.info("rejecting vote", {
        id: this.id,
        to: m.from,
        term: m.term,
        type: messageTypeName(m.type),
      });
      this.send(message({ type: voteResponseType(m.type), to: m.from, term: this.term, reject: true }));
    }
  }

  // ---------------------------------------------------------------- leader

  private stepLeader = (m: Message): void => {
    switch (m.type) {
      case MessageType.Beat:
        this.bcastHeartbeat(this.readOnly.lastPendingContext());
        return;
      case MessageType.CheckQuorum:
        if (!this.trk.quorumActive()) {
          this.logger.warn("stepping down: a quorum is not active", { id: this.id, term: this.term });
          this.becomeFollower(this.term, NONE);
        }
        // Start a new window: everyone must prove itself active again.
        this.trk.visit((id, pr) => {
          if (id !== this.id) pr.recentActive = false;
        });
        return;
      case MessageType.Prop:
        this.leaderPropose(m);
        return;
      case MessageType.ReadIndex:
        this.leaderReadIndex(m);
        return;
      case MessageType.ForgetLeader:
        return; // a leader knows who leads
    }

    const pr = this.trk.progress.get(m.from);
    if (!pr) {
      this.logger.debug("no progress for sender", { from: m.from, type: messageTypeName(m.type) });
      return;
    }
    switch (m.type) {
      case MessageType.AppResp:
        this.handleAppendResponse(m);
        return;
      case MessageType.HeartbeatResp: {
        pr.recentActive = true;
        if (m.index > (this.ackedRound.get(m.from) ?? 0)) this.ackedRound.set(m.from, m.index);
        pr.msgAppFlowPaused = false;
        // No latch: the appends filling a replicate window may all have been lost with no report (the
        // follower crashed before persisting them). The follower is alive, so free one slot: the append
        // that goes out is either acknowledged or rejected, and either way flow resumes.
        if (pr.state === ProgressState.Replicate && pr.inflights.full()) pr.inflights.freeFirstOne();
        if (pr.match < this.log.lastIndex()) this.maybeSendAppend(m.from, true);
        // Safe reads, and lease reads that fell back to the quorum check for want of a lease.
        if (!m.context) return;
        const acks = this.readOnly.recvAck(m.from, m.context);
        if (!acks || this.trk.config.voters.voteResult(acks) !== VoteResult.Won) return;
        for (const rs of this.readOnly.advance(m.context)) this.respondToReadIndex(rs.request, rs.index);
        return;
      }
      case MessageType.SnapStatus:
        if (pr.state !== ProgressState.Snapshot) return;
        if (m.reject) {
          this.logger.warn("snapshot to follower failed; probing again", {
            to: m.from,
            pending: pr.pendingSnapshot,
          });
          pr.pendingSnapshot = 0;
        } else {
          this.logger.info("snapshot to follower finished", { to: m.from, pending: pr.pendingSnapshot });
        }
        pr.becomeProbe();
        // Finished: wait for the follower's append response. Failed: wait a heartbeat before retrying.
        pr.msgAppFlowPaused = true;
        return;
      case MessageType.SnapProgress:
        // The transfer is moving: restart the clock of the latch breaker.
        if (pr.state === ProgressState.Snapshot) pr.ticksInSnapshot = 0;
        return;
      case MessageType.Unreachable:
        // Appends to an unreachable follower were probably lost: stop streaming and probe instead.
        if (pr.state === ProgressState.Replicate) pr.becomeProbe();
        this.logger.debug("follower unreachable", { to: m.from, state: pr.state });
        return;
      case MessageType.TransferLeader:
        this.leaderTransfer(m.from, pr.isLearner);
        return;
    }
  };

  /**
   * Refuses a proposal: a local caller gets the error; a proposal forwarded by a follower is dropped
   * with a log line (the follower's caller learns of it by its own timeout, as with any lost message).
   */
  private dropProposal(m: Message, err: ProposalDroppedError): void {
    if (m.from === this.id || m.from === NONE) throw err;
    this.logger.debug("dropping forwarded request", {
      from: m.from,
      type: messageTypeName(m.type),
      reason: err.reason,
    });
  }

  private leaderPropose(m: Message): void {
    if (m.entries.length === 0) throw new StepRejectedError("a proposal must carry entries");
    if (!this.trk.progress.has(this.id)) {
      this.dropProposal(
        m,
        new ProposalDroppedError("removed-from-cluster", "this leader is no longer a member"),
      );
      return;
    }
    if (this.pendingConfRemovesSelf && this.pendingConfIndex > this.log.applied) {
      this.dropProposal(
        m,
        new ProposalDroppedError(
          "leader-being-removed",
          `the conf change at index ${this.pendingConfIndex} may remove this leader; retry once it is applied`,
        ),
      );
      return;
    }
    if (this.leadTransferee !== NONE) {
      this.dropProposal(
        m,
        new ProposalDroppedError("leader-transfer-in-progress", `transferring to ${this.leadTransferee}`),
      );
      return;
    }
    let entries = m.entries;
    let confChangeAt = -1;
    for (let i = 0; i < entries.length; i++) {
      const e = entries[i]!;
      if (e.type !== EntryType.ConfChange) continue;
      const refusal =
        confChangeAt >= 0
          ? new ProposalDroppedError("conf-change-pending", "one conf change per proposal")
          : this.confChangeRefusal(e);
      if (refusal === null) {
        confChangeAt = i;
        continue;
      }
      if (m.from === this.id || m.from === NONE) throw refusal;
      // A forwarded batch cannot be refused in part: the change becomes a no-op entry.
      this.logger.info("replacing refused conf change with an empty entry", {
        from: m.from,
        reason: refusal.message,
      });
      if (entries === m.entries) entries = entries.slice();
      entries[i] = { term: 0, index: 0, type: EntryType.Normal, data: EMPTY_BYTES };
    }
    const firstNew = this.log.lastIndex() + 1;
    if (!this.appendEntries(entries)) {
      this.dropProposal(
        m,
        new ProposalDroppedError(
          "uncommitted-size-limit",
          `${this.uncommittedBytes} bytes uncommitted, limit ${this.opts.maxUncommittedBytes}`,
        ),
      );
      return;
    }
    if (confChangeAt >= 0) {
      this.pendingConfIndex = firstNew + confChangeAt;
      this.pendingConfRemovesSelf = this.confChangeRemovesSelf(entries[confChangeAt]!);
    }
    this.bcastAppend();
  }

  /** Whether an accepted conf change leaves this node without a vote (removed, or demoted to learner). */
  private confChangeRemovesSelf(e: Entry): boolean {
    try {
      return !this.computeConfChange(decodeConfChange(e.data)).config.voters.has(this.id);
    } catch {
      return true; // cannot tell: assume it does
    }
  }

  /** Why a conf change cannot be proposed now, or null if it can. */
  private confChangeRefusal(e: Entry): ProposalDroppedError | null {
    let cc: ConfChange;
    try {
      cc = decodeConfChange(e.data);
    } catch (err) {
      return new ProposalDroppedError("conf-change-invalid", `undecodable: ${(err as Error).message}`);
    }
    if (this.pendingConfIndex > this.log.applied) {
      return new ProposalDroppedError(
        "conf-change-pending",
        `the change at index ${this.pendingConfIndex} is not yet applied (applied ${this.log.applied})`,
      );
    }
    const alreadyJoint = this.trk.config.voters.isJoint();
    const wantsLeave = isLeaveJoint(cc);
    if (alreadyJoint && !wantsLeave) {
      return new ProposalDroppedError("conf-change-pending", "the configuration is joint; leave it first");
    }
    if (!alreadyJoint && wantsLeave)
      return new ProposalDroppedError("conf-change-invalid", "not in a joint configuration");
    // No change is pending, so this one will apply to the configuration we have now: try it.
    try {
      this.computeConfChange(cc);
    } catch (err) {
      if (err instanceof InvalidConfChangeError)
        return new ProposalDroppedError("conf-change-invalid", err.message);
      throw err;
    }
    return null;
  }

  /**
   * Assigns term and index to new entries and appends them to the leader's log. Returns false (and
   * appends nothing) when they would exceed the uncommitted-bytes bound.
   */
  appendEntries(entries: Entry[], ignoreSizeLimit = false): boolean {
    const bytes = payloadBytes(entries);
    // An empty payload is always accepted (the leader's own entry), and so is anything when nothing is
    // uncommitted, so that a single oversized proposal can still make progress.
    if (
      !ignoreSizeLimit &&
      this.uncommittedBytes > 0 &&
      bytes > 0 &&
      this.uncommittedBytes + bytes > this.opts.maxUncommittedBytes
    ) {
      return false;
    }
    this.uncommittedBytes += bytes;
    let index = this.log.lastIndex();
    const term = this.term;
    const stamped = new Array<Entry>(entries.length);
    for (let i = 0; i < entries.length; i++) {
      const e = entries[i]!;
      stamped[i] = { term, index: ++index, type: e.type, data: e.data };
    }
    this.log.append(stamped);
    // The leader's own acknowledgement comes when the caller has persisted these (see onPersisted).
    return true;
  }

  /** Entries up to `index` of `term` are durable on this node. */
  onPersisted(index: number, term: number): void {
    this.log.stableTo(index, term);
    if (this.role !== StateRole.Leader || !this.log.matchTerm(index, term)) return;
    const self = this.trk.progress.get(this.id);
    if (self?.maybeUpdate(index) && this.maybeCommit()) this.bcastAppend();
  }

  reduceUncommittedBytes(committed: readonly Entry[]): void {
    if (this.uncommittedBytes === 0) return;
    const s = payloadBytes(committed);
    this.uncommittedBytes = s > this.uncommittedBytes ? 0 : this.uncommittedBytes - s;
  }

  /** Advances the commit index to what a quorum acknowledged, if that is an entry of this term. */
  maybeCommit(): boolean {
    const before = this.log.committed;
    const index = this.trk.committed();
    // The bug switch commits whatever a majority holds, whatever its term (Figure 8 of the paper).
    const term = this.opts.unsafeTestingBugs.commitEarlierTermByCounting
      ? this.log.termOrZero(index)
      : this.term;
    const committed = this.log.maybeCommit(index, term);
    if (committed && before < this.log.committed) this.releasePendingReadIndexMessages();
    return committed;
  }

  private handleAppendResponse(m: Message): void {
    const pr = this.trk.progress.get(m.from)!;
    pr.recentActive = true;
    if (m.reject) {
      this.logger.debug("append rejected", {
        from: m.from,
        index: m.index,
        hint: m.rejectHint,
        hintTerm: m.logTerm,
      });
      // Fast backtracking: skip every index whose term cannot match. With the follower's hint
      // (index, term), the leader finds its largest index whose term is ≤ term and probes there.
      let nextProbeIndex = m.rejectHint;
      if (m.logTerm > 0) nextProbeIndex = this.log.findConflictByTerm(m.rejectHint, m.logTerm).index;
      if (pr.maybeDecrTo(m.index, nextProbeIndex)) {
        if (pr.state === ProgressState.Replicate) pr.becomeProbe();
        this.maybeSendAppend(m.from, true);
      }
      return;
    }
    const oldPaused = pr.isPaused();
    const updated = pr.maybeUpdate(m.index);
    // A probe answered at the exact index we already knew also proves the logs match there.
    if (updated || (pr.match === m.index && pr.state === ProgressState.Probe)) {
      if (pr.state === ProgressState.Probe) {
        pr.becomeReplicate();
      } else if (pr.state === ProgressState.Snapshot && pr.match + 1 >= this.log.firstIndex()) {
        // The follower has caught up far enough for entries (the snapshot arrived, or it got there
        // by other means): stop waiting for the snapshot report.
        this.logger.info("follower caught up after snapshot", { from: m.from, match: pr.match });
        pr.becomeProbe();
        pr.becomeReplicate();
      } else if (pr.state === ProgressState.Replicate) {
        pr.inflights.freeLE(m.index);
      }
      if (this.maybeCommit()) {
        this.bcastAppend();
      } else if (oldPaused || updated) {
        // A follower that was paused may have missed an advance of the commit index: tell it, with an
        // empty append if need be. Then send as much as the window now allows.
        if (oldPaused) this.maybeSendAppend(m.from, true);
        while (this.maybeSendAppend(m.from, false)) {}
      }
      if (m.from === this.leadTransferee && pr.match === this.log.lastIndex()) {
        this.logger.info("transferee caught up; sending timeout-now", { to: m.from });
        this.sendTimeoutNow(m.from);
      }
    }
  }

  private leaderReadIndex(m: Message): void {
    if (this.trk.isSingleton()) {
      this.respondToReadIndex(m, this.log.committed);
      return;
    }
    // Until an entry of this term is committed, the leader does not know the true commit index
    // (§6.4 of the Raft thesis): hold the read back until then.
    if (!this.committedEntryInCurrentTerm()) {
      this.pendingReadIndexMessages.push(m);
      return;
    }
    this.sendReadIndexResponse(m);
  }

  private sendReadIndexResponse(m: Message): void {
    // Without a valid lease a lease-based read falls back to confirming leadership with a quorum.
    if (this.readOnly.option === "lease-based" && this.leaseValid()) {
      this.respondToReadIndex(m, this.log.committed);
      return;
    }
    this.readOnly.addRequest(this.log.committed, m);
    this.readOnly.recvAck(this.id, m.context!);
    this.bcastHeartbeat(m.context);
  }

  private respondToReadIndex(req: Message, index: number): void {
    const ctx = req.context ?? EMPTY_BYTES;
    if (req.from === NONE || req.from === this.id) {
      this.readStates.push({ index, requestContext: ctx });
      return;
    }
    this.send(message({ type: MessageType.ReadIndexResp, to: req.from, index, context: ctx }));
  }

  committedEntryInCurrentTerm(): boolean {
    return this.log.termOrZero(this.log.committed) === this.term;
  }

  private releasePendingReadIndexMessages(): void {
    if (this.pendingReadIndexMessages.length === 0 || !this.committedEntryInCurrentTerm()) return;
    const pending = this.pendingReadIndexMessages;
    this.pendingReadIndexMessages = [];
    for (const m of pending) this.sendReadIndexResponse(m);
  }

  private leaderTransfer(transferee: NodeId, isLearner: boolean): void {
    if (isLearner) {
      this.logger.info("ignoring leader transfer to a learner", { transferee });
      return;
    }
    if (this.leadTransferee !== NONE) {
      if (this.leadTransferee === transferee) return; // already under way
      this.abortLeaderTransfer();
    }
    if (transferee === this.id) return;
    this.logger.info("starting leader transfer", { from: this.id, to: transferee });
    // The transfer must finish within an election timeout.
    this.electionElapsed = 0;
    this.leadTransferee = transferee;
    const pr = this.trk.progress.get(transferee)!;
    if (pr.match === this.log.lastIndex()) {
      this.sendTimeoutNow(transferee);
    } else {
      this.maybeSendAppend(transferee, true);
    }
  }

  abortLeaderTransfer(): void {
    this.leadTransferee = NONE;
  }

  // ---------------------------------------------------------------- candidate

  private stepCandidate = (m: Message): void => {
    const myResponse = this.role === StateRole.PreCandidate ? MessageType.PreVoteResp : MessageType.VoteResp;
    switch (m.type) {
      case MessageType.Prop:
      case MessageType.ReadIndex:
        this.dropProposal(m, new ProposalDroppedError("no-leader", "an election is in progress"));
        return;
      case MessageType.App:
        this.becomeFollower(m.term, m.from);
        this.handleAppendEntries(m);
        return;
      case MessageType.Heartbeat:
        this.becomeFollower(m.term, m.from);
        this.handleHeartbeat(m);
        return;
      case MessageType.Snap:
        this.becomeFollower(m.term, m.from);
        this.handleSnapshot(m);
        return;
      case MessageType.TimeoutNow:
        return;
    }
    if (m.type !== myResponse) return;
    const result = this.poll(m.from, !m.reject);
    if (result === VoteResult.Won) {
      if (this.role === StateRole.PreCandidate) {
        this.campaign("election");
      } else {
        this.becomeLeader();
        this.bcastAppend();
      }
    } else if (result === VoteResult.Lost) {
      // A rejection with a higher term already made us a follower; this handles the same-term loss.
      this.becomeFollower(this.term, NONE);
    }
  };

  // ---------------------------------------------------------------- follower

  private stepFollower = (m: Message): void => {
    switch (m.type) {
      case MessageType.Prop:
        if (this.lead === NONE) {
          this.dropProposal(m, new ProposalDroppedError("no-leader"));
          return;
        }
        if (this.opts.disableProposalForwarding) {
          this.dropProposal(m, new ProposalDroppedError("forwarding-disabled", `the leader is ${this.lead}`));
          return;
        }
        m.to = this.lead;
        this.send(m);
        return;
      case MessageType.App:
        this.electionElapsed = 0;
        this.lead = m.from;
        this.handleAppendEntries(m);
        return;
      case MessageType.Heartbeat:
        this.electionElapsed = 0;
        this.lead = m.from;
        this.handleHeartbeat(m);
        return;
      case MessageType.Snap:
        this.electionElapsed = 0;
        this.lead = m.from;
        this.handleSnapshot(m);
        return;
      case MessageType.TransferLeader:
        if (this.lead === NONE) {
          this.logger.info("no leader to forward the transfer request to", { id: this.id });
          return;
        }
        m.to = this.lead;
        this.send(m);
        return;
      case MessageType.ForgetLeader:
        if (this.readOnly.option === "lease-based") {
          // Forgetting the leader would let us vote within its lease, breaking lease reads.
          this.logger.warn("ignoring forget-leader with lease-based reads", { id: this.id });
          return;
        }
        this.lead = NONE;
        return;
      case MessageType.TimeoutNow:
        this.logger.info("timeout-now received; campaigning for leader transfer", {
          id: this.id,
          term: this.term,
        });
        // Leader transfer never uses pre-vote: the current leader asked for this election.
        this.hup("transfer");
        return;
      case MessageType.ReadIndex:
        if (this.lead === NONE) {
          this.dropProposal(m, new ProposalDroppedError("no-leader", "cannot serve a read index"));
          return;
        }
        m.to = this.lead;
        this.send(m);
        return;
      case MessageType.ReadIndexResp:
        this.readStates.push({ index: m.index, requestContext: m.context ?? EMPTY_BYTES });
        return;
    }
  };

  private handleAppendEntries(m: Message): void {
    if (m.index < this.log.committed) {
      // Everything up to our commit index is already settled; tell the leader where we are.
      this.send(message({ type: MessageType.AppResp, to: m.from, index: this.log.committed }));
      return;
    }
    const lastNew = this.log.maybeAppend(m.index, m.logTerm, m.commit, m.entries);
    if (lastNew >= 0) {
      this.send(message({ type: MessageType.AppResp, to: m.from, index: lastNew }));
      return;
    }
    // Mismatch: hint at the largest index whose term is ≤ the leader's term at m.index, so the leader
    // can skip a whole run of divergent entries in one round trip.
    const hintIndex = Math.min(m.index, this.log.lastIndex());
    const hint = this.log.findConflictByTerm(hintIndex, m.logTerm);
    this.logger.debug("rejecting append", {
      id: this.id,
      index: m.index,
      logTerm: m.logTerm,
      hint: hint.index,
    });
    this.send(
      message({
        type: MessageType.AppResp,
        to: m.from,
        index: m.index,
        reject: true,
        rejectHint: hint.index,
        logTerm: hint.term,
      }),
    );
  }

  private handleHeartbeat(m: Message): void {
    this.log.commitTo(m.commit);
    // Echo the heartbeat round (index) so the leader can time its lease from when this round was sent.
    this.send(message({ type: MessageType.HeartbeatResp, to: m.from, index: m.index, context: m.context }));
  }

  private handleSnapshot(m: Message): void {
    const s = m.snapshot;
    if (!s) throw new StepRejectedError("snapshot message without a snapshot");
    const { index, term } = s.metadata;
    if (this.restore(s)) {
      this.logger.info("restored snapshot", { id: this.id, index, term });
      this.send(message({ type: MessageType.AppResp, to: m.from, index: this.log.lastIndex() }));
    } else {
      this.logger.info("ignored snapshot", { id: this.id, index, term, committed: this.log.committed });
      this.send(message({ type: MessageType.AppResp, to: m.from, index: this.log.committed }));
    }
  }

  /** Installs a snapshot from the leader. Returns false when it was not needed (old, or fast-forwarded). */
  restore(s: Snapshot): boolean {
    const { index, term, confState } = s.metadata;
    if (index <= this.log.committed) return false;
    if (this.log.applying > this.log.applied) {
      // Committed entries are out with the caller for applying; a conf change among them would then be
      // applied on top of the snapshot's membership. Refuse: the leader sends the snapshot again.
      this.logger.info("deferring snapshot until the entries being applied are done", {
        id: this.id,
        index,
        applying: this.log.applying,
        applied: this.log.applied,
      });
      return false;
    }
    if (this.role !== StateRole.Follower) {
      // Only a follower installs snapshots; anyone else doing so would break leader completeness.
      this.logger.warn("non-follower asked to restore a snapshot; stepping down", {
        id: this.id,
        role: this.role,
      });
      this.becomeFollower(this.term + 1, NONE);
      return false;
    }
    const member =
      confState.voters.includes(this.id) ||
      confState.learners.includes(this.id) ||
      confState.votersOutgoing.includes(this.id);
    if (!member) {
      // A snapshot from a configuration we are not part of: it must not be ours to apply.
      this.logger.warn("ignoring snapshot that does not include this node", { id: this.id, index });
      return false;
    }
    if (this.log.matchTerm(index, term)) {
      // We already have the entries up to the snapshot: just fast-forward the commit index.
      this.logger.info("fast-forwarding commit to snapshot index", { id: this.id, index, term });
      this.log.commitTo(index);
      return false;
    }
    this.log.restore(s);
    const restored = restoreConfig(
      confState,
      this.log.lastIndex(),
      this.trk.maxInflight,
      this.trk.maxInflightBytes,
    );
    const cs = this.switchToConfig(restored);
    assertConfStatesEquivalent(cs, confState);
    return true;
  }

  // ---------------------------------------------------------------- membership

  /** Applies a committed conf change to the tracker and returns the resulting membership. */
  applyConfChange(cc: ConfChange): ConfState {
    return this.switchToConfig(this.computeConfChange(cc));
  }

  /** The membership a change would produce, without installing it; throws InvalidConfChangeError. */
  private computeConfChange(cc: ConfChange): ConfigAndProgress {
    const changer = new Changer(
      { config: this.trk.config, progress: this.trk.progress },
      this.log.lastIndex(),
      this.trk.maxInflight,
      this.trk.maxInflightBytes,
    );
    if (isLeaveJoint(cc)) return changer.leaveJoint();
    if (needsJoint(cc)) return changer.enterJoint(leavesJointAutomatically(cc), cc.changes);
    return changer.simple(cc.changes);
  }

  /** Installs a new membership and reacts to it. */
  switchToConfig(next: ConfigAndProgress): ConfState {
    this.trk.setConfig(next.config, next.progress);
    this.logger.info("switched to configuration", { id: this.id, config: this.trk.confState() });
    const cs = this.trk.confState();
    const self = this.trk.progress.get(this.id);
    this.isLearner = self?.isLearner ?? false;

    if ((!self || this.isLearner) && this.role === StateRole.Leader) {
      // Removed (or demoted): step down. Hand leadership to the most caught-up voter first so that
      // the cluster need not wait for an election timeout.
      let best = NONE;
      let bestMatch = -1;
      this.trk.visit((id, pr) => {
        if (id !== this.id && !pr.isLearner && this.trk.isVoter(id) && pr.match > bestMatch) {
          best = id;
          bestMatch = pr.match;
        }
      });
      if (best !== NONE && bestMatch === this.log.lastIndex()) this.sendTimeoutNow(best);
      this.logger.info("removed from the configuration; stepping down", { id: this.id, handoff: best });
      this.becomeFollower(this.term, NONE);
      return cs;
    }
    if (this.role !== StateRole.Leader || cs.voters.length === 0) return cs;
    // The quorum may have changed: something may now be committed, and new peers need appends.
    if (this.maybeCommit()) {
      this.bcastAppend();
    } else {
      this.trk.visit((id) => {
        if (id !== this.id) this.maybeSendAppend(id, false);
      });
    }
    if (this.leadTransferee !== NONE && !this.trk.isVoter(this.leadTransferee)) this.abortLeaderTransfer();
    return cs;
  }

  /**
   * Proposes leaving an automatic joint configuration once the change that entered it is applied.
   * Called after every apply and on every leader tick, so a leave that could not go in at first (say,
   * during a leader transfer) is retried rather than leaving the cluster joint indefinitely. The leave is
   * tiny and never refused for size.
   */
  maybeProposeAutoLeave(): void {
    const cfg = this.trk.config;
    if (this.role !== StateRole.Leader || !cfg.autoLeave || !cfg.voters.isJoint()) return;
    if (this.log.applied < this.pendingConfIndex || !this.trk.progress.has(this.id)) return;
    const leave: Entry = {
      term: 0,
      index: 0,
      type: EntryType.ConfChange,
      data: encodeConfChange({ transition: "auto", changes: [] }),
    };
    const index = this.log.lastIndex() + 1;
    this.appendEntries([leave], true);
    this.pendingConfIndex = index;
    this.pendingConfRemovesSelf = this.confChangeRemovesSelf(leave);
    this.logger.info("proposing to leave the joint configuration", { id: this.id, index });
    this.bcastAppend();
  }
}

function assertConfStatesEquivalent(a: ConfState, b: ConfState): void {
  const norm = (xs: readonly number[]) => [...xs].sort((x, y) => x - y).join(",");
  const same =
    norm(a.voters) === norm(b.voters) &&
    norm(a.learners) === norm(b.learners) &&
    norm(a.votersOutgoing) === norm(b.votersOutgoing) &&
    norm(a.learnersNext) === norm(b.learnersNext) &&
    a.autoLeave === b.autoLeave;
  if (!same) {
    throw new RaftInvariantError(
      `raft invariant violated: restored configuration ${JSON.stringify(a)} differs from the snapshot's ${JSON.stringify(b)}`,
    );
  }
}

export { InvalidConfChangeError };
