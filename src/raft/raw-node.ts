import { encodeConfChange } from "./confchange/codec.js";
import type { RaftOptions } from "./config.js";
import { RaftUsageError, StepRejectedError } from "./errors.js";
import { Raft } from "./raft.js";
import { getStatus, type Status } from "./status.js";
import {
  type ConfChange,
  type ConfState,
  type Entry,
  EntryType,
  type HardState,
  hardStateEqual,
  isEmptyHardState,
  isLocalMessage,
  isResponseMessage,
  type Message,
  MessageType,
  message,
  NONE,
  type NodeId,
  type ReadState,
  type Snapshot,
  type SnapshotStatus,
  type SoftState,
} from "./types.js";

/**
 * Everything the caller must do after the node changed: one batch of work.
 *
 * Handle it in this order: persist `snapshot` (first: entries may follow it), then `entries` and
 * `hardState` (one sync when `mustSync`);
 * send `messages` (these may go out before or during the write); once the write is durable, send
 * `messagesAfterPersist`; apply `committedEntries`; serve `readStates`; then call `advance(ready)`.
 */
export interface Ready {
  /** Changed role or leader, or null. Need not be persisted. */
  readonly softState: SoftState | null;
  /** Changed term, vote or commit, or null. Must be persisted before messagesAfterPersist are sent. */
  readonly hardState: HardState | null;
  /** New log entries to append (replacing any conflicting suffix) before messagesAfterPersist go out. */
  readonly entries: Entry[];
  /** A snapshot to persist and install, or null. */
  readonly snapshot: Snapshot | null;
  /** Entries committed by a quorum, to apply to the state machine in order. */
  readonly committedEntries: Entry[];
  /** Messages that may be sent at once. A Snap message must be reported through reportSnapshot. */
  readonly messages: Message[];
  /** Messages that vouch for this Ready's durable state (votes, append acknowledgements). */
  readonly messagesAfterPersist: Message[];
  readonly readStates: ReadState[];
  /** Whether the write must be synced to disk (new entries, or a changed term or vote). */
  readonly mustSync: boolean;
}

/**
 * The node as its caller drives it: tick, step, propose, then collect a Ready and advance. All calls
 * are synchronous and must come from one place (the engine's loop). Between ready() and advance() the
 * caller may keep stepping messages; what they produce waits for the next Ready.
 */
export class RawNode {
  readonly raft: Raft;
  private prevSoft: SoftState;
  private prevHard: HardState;
  private inFlight: Ready | null = null;
  /** Our own vote responses from the Ready in flight: they count once that Ready is persisted. */
  private selfMessages: Message[] = [];

  constructor(options: RaftOptions) {
    this.raft = new Raft(options);
    this.prevSoft = this.raft.softState();
    this.prevHard = this.raft.hardState();
  }

  get id(): NodeId {
    return this.raft.id;
  }

  tick(): void {
    this.raft.tick();
  }

  /** Starts an election now (with pre-vote if configured). */
  campaign(): void {
    this.raft.step(message({ type: MessageType.Hup, from: this.raft.id }));
  }

  /** Proposes one command. Throws ProposalDroppedError when it cannot be accepted here. */
  propose(data: Uint8Array): void {
    this.raft.step(
      message({
        type: MessageType.Prop,
        from: this.raft.id,
        entries: [{ term: 0, index: 0, type: EntryType.Normal, data }],
      }),
    );
  }

  /** Proposes many commands as one batch: one append, one message per peer. */
  proposeBatch(data: readonly Uint8Array[]): void {
    if (data.length === 0) return;
    const entries = new Array<Entry>(data.length);
    for (let i = 0; i < data.length; i++)
      entries[i] = { term: 0, index: 0, type: EntryType.Normal, data: data[i]! };
    this.raft.step(message({ type: MessageType.Prop, from: this.raft.id, entries }));
  }

  /** Proposes a membership change; apply it with applyConfChange once its entry is committed. */
  proposeConfChange(cc: ConfChange): void {
    this.raft.step(
      message({
        type: MessageType.Prop,
        from: this.raft.id,
        entries: [{ term: 0, index: 0, type: EntryType.ConfChange, data: encodeConfChange(cc) }],
      }),
    );
  }

  /** Applies a committed membership change (from a ConfChange entry) and returns the new membership. */
  applyConfChange(cc: ConfChange): ConfState {
    return this.raft.applyConfChange(cc);
  }

  /** Feeds a message received from a peer. Local message types are refused. */
  step(m: Message): void {
    if (isLocalMessage(m.type))
      throw new StepRejectedError(`cannot step local message type ${m.type} from the network`);
    if (m.from === NONE) throw new StepRejectedError("message has no sender");
    if (m.type === MessageType.ReadIndex && !m.context)
      throw new StepRejectedError("read-index request without a context");
    if (m.type === MessageType.Snap && !m.snapshot)
      throw new StepRejectedError("snapshot message without a snapshot");
    if (!this.raft.trk.progress.has(m.from) && isResponseMessage(m.type)) {
      // Answers from nodes we do not track (removed peers) carry nothing we can use.
      return;
    }
    this.raft.step(m);
  }

  /** The transport could not deliver to `peer`: the leader stops streaming to it and probes instead. */
  reportUnreachable(peer: NodeId): void {
    this.raft.step(message({ type: MessageType.Unreachable, from: peer }));
  }

  /** The outcome of a snapshot sent to `peer`. */
  reportSnapshot(peer: NodeId, status: SnapshotStatus): void {
    this.raft.step(message({ type: MessageType.SnapStatus, from: peer, reject: status === "failure" }));
  }

  /**
   * A snapshot transfer to `peer` is still making progress (say, a chunk was acknowledged): the leader
   * postpones the fallback that would otherwise retry a snapshot unanswered for snapshotTimeoutTicks.
   * A transport that reports progress lets large snapshots take as long as they need.
   */
  reportSnapshotProgress(peer: NodeId): void {
    this.raft.step(message({ type: MessageType.SnapProgress, from: peer }));
  }

  /** Asks the leader (this node or, forwarded, the current one) to hand leadership to `transferee`. */
  transferLeader(transferee: NodeId): void {
    this.raft.step(message({ type: MessageType.TransferLeader, from: transferee }));
  }

  /**
   * Requests a linearizable read point. The answer arrives as a ReadState carrying `context`; reads at
   * its index are linearizable once that index is applied.
   */
  readIndex(context: Uint8Array): void {
    this.raft.step(message({ type: MessageType.ReadIndex, from: this.raft.id, context }));
  }

  /** Forgets the current leader (e.g. it is known to be gone), so that this node may vote at once. */
  forgetLeader(): void {
    this.raft.step(message({ type: MessageType.ForgetLeader }));
  }

  status(): Status {
    return getStatus(this.raft);
  }

  hasReady(): boolean {
    const r = this.raft;
    if (this.inFlight) return false;
    if (r.msgs.length > 0 || r.msgsAfterAppend.length > 0 || r.readStates.length > 0) return true;
    const soft = r.softState();
    if (soft.lead !== this.prevSoft.lead || soft.role !== this.prevSoft.role) return true;
    const hard = r.hardState();
    if (!isEmptyHardState(hard) && !hardStateEqual(hard, this.prevHard)) return true;
    const u = r.log.unstable;
    if (u.nextSnapshot() || u.nextEntries().length > 0) return true;
    return r.log.hasNextCommittedEntries();
  }

  /**
   * Collects the work to do. Call advance() with the returned Ready when done; ready() may not be called
   * again before that.
   */
  ready(): Ready {
    if (this.inFlight) throw new RaftUsageError("ready() called again before advance()");
    const r = this.raft;
    const soft = r.softState();
    const hard = r.hardState();
    const softChanged = soft.lead !== this.prevSoft.lead || soft.role !== this.prevSoft.role;
    const hardChanged = !hardStateEqual(hard, this.prevHard);
    const entries = r.log.unstable.nextEntries();
    const snapshot = r.log.unstable.nextSnapshot();
    const committedEntries = r.log.nextCommittedEntries();

    const messagesAfterPersist: Message[] = [];
    for (const m of r.msgsAfterAppend) {
      if (m.to === r.id) this.selfMessages.push(m);
      else messagesAfterPersist.push(m);
    }
    const rd: Ready = {
      softState: softChanged ? soft : null,
      hardState: hardChanged ? hard : null,
      entries,
      snapshot,
      committedEntries,
      messages: r.msgs,
      messagesAfterPersist,
      readStates: r.readStates,
      mustSync:
        entries.length > 0 ||
        snapshot !== null ||
        (hardChanged && (hard.term !== this.prevHard.term || hard.vote !== this.prevHard.vote)),
    };

    // Accept: everything in this Ready is now the caller's to do.
    r.msgs = [];
    r.msgsAfterAppend = [];
    r.readStates = [];
    r.log.unstable.acceptInProgress();
    if (committedEntries.length > 0) {
      r.log.acceptApplying(committedEntries[committedEntries.length - 1]!.index);
      r.reduceUncommittedBytes(committedEntries);
    }
    if (softChanged) this.prevSoft = soft;
    if (hardChanged) this.prevHard = hard;
    this.inFlight = rd;
    return rd;
  }

  /** The caller finished the Ready: its writes are durable, its committed entries applied. */
  advance(rd: Ready): void {
    this.finish(rd, "advance");
    const committed = rd.committedEntries;
    if (committed.length > 0) this.markApplied(committed[committed.length - 1]!.index);
    this.stepSelfMessages();
  }

  /**
   * For a caller that applies committed entries off its loop: the Ready's writes are durable and its
   * messages sent, but its committed entries are only handed out. Raft counts them as applied when the
   * caller says so through appliedTo(); until then it defers snapshots from the leader and keeps a
   * conf change among them pending.
   */
  advanceWithoutApplying(rd: Ready): void {
    this.finish(rd, "advanceWithoutApplying");
    this.stepSelfMessages();
  }

  /** Entries up to `index` (handed out by earlier Readys) are applied. Not while a Ready is out. */
  appliedTo(index: number): void {
    if (this.inFlight) throw new RaftUsageError("appliedTo() called between ready() and advance()");
    if (index > this.raft.log.applying)
      throw new RaftUsageError(
        `appliedTo(${index}) is past the entries handed out (${this.raft.log.applying})`,
      );
    if (index > this.raft.log.applied) this.markApplied(index);
  }

  private finish(rd: Ready, caller: string): void {
    if (rd !== this.inFlight)
      throw new RaftUsageError(`${caller}() must be given the Ready from the last ready()`);
    this.inFlight = null;
    const r = this.raft;
    if (rd.snapshot) {
      r.log.stableSnapTo(rd.snapshot.metadata.index);
      r.log.appliedTo(rd.snapshot.metadata.index);
    }
    if (rd.entries.length > 0) {
      const last = rd.entries[rd.entries.length - 1]!;
      r.onPersisted(last.index, last.term);
    }
  }

  private markApplied(index: number): void {
    this.raft.log.appliedTo(index);
    this.raft.maybeProposeAutoLeave();
  }

  private stepSelfMessages(): void {
    const self = this.selfMessages;
    this.selfMessages = [];
    for (const m of self) this.raft.step(m);
  }
}
