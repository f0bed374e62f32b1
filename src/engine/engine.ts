/**
 * The engine: one event loop that owns one raft node. Everything that wants something of raft — ticks,
 * client proposals and reads, inbound messages, dispatch reports, applies finished — posts an event and
 * wakes the loop; only the loop calls into the node, so nothing changes raft state between ready() and
 * advance().
 *
 * One Ready cycle: send what may go early → persist entries and hard state (one fdatasync) → send the
 * messages that vouch for the write → hand committed entries to the apply pipeline → advance. The
 * pipeline applies them off the loop while the next cycles persist and replicate; as batches finish, the
 * loop tells raft (appliedTo), answers proposals and reads, applies conf changes in their place, and takes
 * local snapshots between batches.
 */

import { randomInt } from "node:crypto";
import type { Registry } from "prom-client";
import { decodeConfChange } from "../raft/confchange/codec.js";
import type { RaftLogger, RaftOptions } from "../raft/config.js";
import { silentLogger } from "../raft/config.js";
import { ProposalDroppedError, StepRejectedError } from "../raft/errors.js";
import type { RandomSource } from "../raft/rand.js";
import { RawNode, type Ready } from "../raft/raw-node.js";
import type { Status } from "../raft/status.js";
import {
  type ConfChange,
  type ConfChangeType,
  type ConfState,
  EMPTY_BYTES,
  EMPTY_CONF_STATE,
  type Entry,
  type Message,
  MessageType,
  NONE,
  type NodeId,
  type ReadState,
  type Snapshot,
  type SnapshotMetadata,
  type SoftState,
  StateRole,
} from "../raft/types.js";
import { DiskStorage } from "../storage/disk-storage.js";
import { type FileSystem, readFileChunks } from "../storage/fs.js";
import type { InboundHandler, ReceivedSnapshot, SnapshotSource, Transport } from "../transport/transport.js";
import { ApplyPipeline } from "./apply-pipeline.js";
import { type DispatchOptions, PeerDispatcher, realTimers, type Timers } from "./dispatch.js";
import {
  EngineClosedError,
  EngineFailedError,
  EngineOverloadedError,
  LeadershipLostError,
  NotLeaderError,
  ProposalRefusedError,
  ReadIndexTimeoutError,
} from "./errors.js";
import { createEngineMetrics, type LatencyRecorders } from "./metrics.js";
import { REPORT_QUEUE_DEFAULT_CAPACITY, ReportQueue, routeReport } from "./reports.js";
import type { SnapshotHandle, StateMachine } from "./state-machine.js";

export interface EngineOptions<R> {
  id: NodeId;
  /** The voters a new cluster starts with (this node included); ignored once the node has state. */
  initialVoters: readonly NodeId[];
  /**
   * This node joins an existing cluster: it starts empty and learns the membership from the leader's
   * snapshot (the leader adds it with addLearner or addVoter). initialVoters is then ignored.
   */
  join?: boolean;
  /**
   * Peer addresses, for NotLeaderError. Read when an error is made, so a map the caller keeps current
   * (membership changes add addresses) is seen as it is then.
   */
  addresses?: ReadonlyMap<NodeId, string>;
  fs: FileSystem;
  dir: string;
  stateMachine: StateMachine<R>;
  transport: Transport;
  timers?: Timers;
  /**
   * A monotonic clock in ms that ticks follow: after a pause (a stalled event loop, a frozen VM) the
   * ticks missed are delivered at once, so that a leader's lease and every raft timeout count real
   * time. Default performance.now when `timers` is not given; with injected timers and no clock, one
   * tick per timer callback.
   */
  clock?: () => number;
  /** Runs the loop on a later task; default setImmediate. */
  schedule?: (fn: () => void) => void;
  random?: RandomSource;
  logger?: RaftLogger;
  /**
   * The Prometheus registry the engine's raftkv_* metrics go into (e.g. a server's, to scrape with its
   * own); default a registry of its own. One engine per registry: the names carry no node label.
   */
  metricsRegistry?: Registry;
  tickMs?: number;
  /** Proposals waiting to enter raft, plus those proposed and not yet applied. */
  maxPendingProposals?: number;
  /** Largest command accepted by propose(). */
  maxProposalBytes?: number;
  /** A local snapshot is taken once this many entries were applied since the last one; 0: never. */
  snapshotEveryEntries?: number;
  /**
   * Entries kept before a local snapshot when it compacts the log, so that a follower a little behind
   * is sent entries rather than the whole state.
   */
  trailingEntries?: number;
  /** Snapshot files kept; the log after the oldest stays too, so a corrupt newest can fall back. */
  keepSnapshots?: number;
  maxPendingReads?: number;
  /** Committed entries handed to the state machine in one apply() call, at most (count and bytes). */
  maxApplyBatchEntries?: number;
  maxApplyBatchBytes?: number;
  /** Committed entries waiting to be applied, in bytes, past which the loop waits for the state machine. */
  maxApplyBacklogBytes?: number;
  reportQueueCapacity?: number;
  dispatch?: DispatchOptions;
  /**
   * Test-only switches that break the engine on purpose, to show what its other defences still do, or
   * that the simulator finds the bug. Never set outside tests.
   * - `dropDispatchReports`: dispatch failures and snapshot confirmations are never told to raft, as in
   *   the elastickv bug this project re-creates; raft's own snapshot timeout must then recover.
   * - `dropSnapshotFailureReports`: only failed snapshot transfers go untold.
   * - `sendVotesBeforeFsync`: vote responses leave before the vote is durable.
   */
  testing?: {
    dropDispatchReports?: boolean;
    dropSnapshotFailureReports?: boolean;
    sendVotesBeforeFsync?: boolean;
  };
  /** Raft options beyond id, storage, applied, random and logger. */
  raft?: Omit<RaftOptions, "id" | "storage" | "applied" | "random" | "logger">;
}

/** Ticks delivered at most at once after a pause. */
const MAX_CATCH_UP_TICKS = 10_000;

/** DiskStorage.bootstrap writes a new cluster's membership as a snapshot at this index. */
const BOOTSTRAP_INDEX = 1;

export const ENGINE_DEFAULTS = {
  tickMs: 100,
  maxPendingProposals: 10_000,
  maxProposalBytes: 16 * 1024 * 1024,
  // As etcd 3.4's --snapshot-count: a snapshot of a large store costs a whole copy of it on disk.
  snapshotEveryEntries: 100_000,
  trailingEntries: 5_000,
  keepSnapshots: 2,
  /** Snapshot payload bytes per piece handed to the transport. */
  snapshotChunkBytes: 1024 * 1024,
  maxPendingReads: 10_000,
  maxApplyBatchEntries: 10_000,
  maxApplyBatchBytes: 16 * 1024 * 1024,
  maxApplyBacklogBytes: 64 * 1024 * 1024,
};

export interface RequestOptions {
  /**
   * Gives up waiting when aborted; the promise rejects with the signal's reason. A proposal already in
   * raft may still be applied: aborting only stops waiting for it.
   */
  signal?: AbortSignal;
}

export interface Proposed<R> {
  readonly index: number;
  readonly result: R;
}

interface Waiter<T> {
  resolve(v: T): void;
  reject(e: Error): void;
}

export class Engine<R = unknown> {
  readonly id: NodeId;
  readonly reports: ReportQueue;
  private readonly node: RawNode;
  private readonly storage: DiskStorage;
  private readonly sm: StateMachine<R>;
  private readonly transport: Transport;
  private readonly timers: Timers;
  private readonly schedule: (fn: () => void) => void;
  private readonly logger: RaftLogger;
  private readonly opts: EngineOptions<R> & typeof ENGINE_DEFAULTS;
  private readonly dispatchers = new Map<NodeId, PeerDispatcher>();
  private readonly registry: Registry;
  private readonly latency: LatencyRecorders;
  private readonly metricNames: readonly string[];

  // Events posted to the loop.
  private inbox: {
    from: NodeId;
    batch: readonly Message[];
    taken?: () => void;
    refused?: (e: Error) => void;
  }[] = [];
  /** A local snapshot being written; one at a time. */
  private snapshotting = false;
  /** Settles when the local snapshot being written is done (never rejects); close() awaits it. */
  private snapshotWrite: Promise<void> = Promise.resolve();
  private proposals: { data: Uint8Array; waiter: Waiter<Proposed<R>> }[] = [];
  private forwards: { data: Uint8Array; waiter: Waiter<void> }[] = [];
  private confChanges: { cc: ConfChange; waiter: Waiter<ConfState> }[] = [];
  private transfers: { to: NodeId; waiter: Waiter<void>; issuedAt: number }[] = [];
  private readonly pendingConf = new Map<number, { term: number; waiter: Waiter<ConfState> }>();
  private reads: Waiter<number>[] = [];
  private ticksDue = 0;
  /** Indexes at or below this were applied to the state machine before a restart: raft replays them. */
  private readonly smAppliedAtOpen: number;
  private readonly pipeline: ApplyPipeline<R>;

  // Requests inside raft.
  private readonly pending = new Map<number, { term: number; waiter: Waiter<Proposed<R>> }>();
  /** Read-index rounds raft has not answered yet, with the tick they were issued at. */
  private readonly readsByContext = new Map<string, { waiters: Waiter<number>[]; issuedAt: number }>();
  /** Every read not yet answered (queued, in raft, or waiting to be applied): what maxPendingReads bounds. */
  private readsOutstanding = 0;
  private ticks = 0;
  /** Distinguishes this run's read contexts from an earlier run's, whose answers may still arrive. */
  private readonly readPrefix: string;
  private readsAwaitingApply: { index: number; waiters: Waiter<number>[] }[] = [];
  /** Snapshots received and handed to raft, by index@term: their spooled payload files. */
  private readonly spooled = new Map<string, string>();
  private nextReadContext = 1;

  private running = false;
  private rerun = false;
  private wakeScheduled = false;
  private tickTimer: unknown = null;
  private readonly clock: (() => number) | null;
  /** When the next tick is due, on `clock`. */
  private nextTickAt: number | null = null;
  /** The loop is stopped (closed, or failed); `closing` is set once close() was called. */
  private closed = false;
  private closing: Promise<void> | null = null;
  private transportClosing: Promise<void> | null = null;
  private failure: EngineFailedError | null = null;
  private idle: Promise<void> = Promise.resolve();
  private markIdle: () => void = () => {};

  private constructor(o: EngineOptions<R>, storage: DiskStorage, node: RawNode, smAppliedAtOpen: number) {
    this.opts = { ...ENGINE_DEFAULTS, ...o } as EngineOptions<R> & typeof ENGINE_DEFAULTS;
    this.id = o.id;
    this.storage = storage;
    this.node = node;
    this.sm = o.stateMachine;
    this.transport = o.transport;
    this.timers = o.timers ?? realTimers;
    this.clock = o.clock ?? (o.timers ? null : () => performance.now());
    this.schedule = o.schedule ?? ((fn) => setImmediate(fn));
    this.logger = o.logger ?? silentLogger;
    this.reports = new ReportQueue(o.reportQueueCapacity ?? REPORT_QUEUE_DEFAULT_CAPACITY);
    this.reports.onPosted = () => this.wake();
    this.smAppliedAtOpen = smAppliedAtOpen;
    this.pipeline = new ApplyPipeline<R>({
      stateMachine: o.stateMachine,
      skipThrough: smAppliedAtOpen,
      appliedThrough: node.raft.log.applied,
      onApplied: (e, result) => this.settleProposal(e, result as R),
      onProgress: () => this.wake(),
      onError: (err) => {
        if (!this.closed) this.failStop(err);
      },
      maxBatchEntries: this.opts.maxApplyBatchEntries,
      maxBatchBytes: this.opts.maxApplyBatchBytes,
    });
    this.readPrefix = (o.random ? o.random.intn(0x7fff_ffff) : randomInt(0x7fff_ffff)).toString(36);
    const { registry, latency, names } = createEngineMetrics(
      {
        status: () => this.node.status(),
        dispatchStats: () => new Map([...this.dispatchers].map(([peer, d]) => [peer, d.stats])),
        dispatchQueued: () => new Map([...this.dispatchers].map(([peer, d]) => [peer, d.queued])),
        reportStats: () => this.reports.stats,
        walStats: () => this.storage.wal.stats,
        snapshotStats: () => this.transport.snapshotStats,
      },
      o.metricsRegistry,
    );
    this.registry = registry;
    this.metricNames = names;
    this.latency = latency;
    storage.wal.onSync = latency.fsync;
  }

  static async open<R>(o: EngineOptions<R>): Promise<Engine<R>> {
    const logger = o.logger ?? silentLogger;
    const storage = await DiskStorage.open({
      fs: o.fs,
      dir: o.dir,
      logger,
      trailingEntries: o.trailingEntries ?? ENGINE_DEFAULTS.trailingEntries,
      snapshots: { keep: o.keepSnapshots ?? ENGINE_DEFAULTS.keepSnapshots },
    });
    try {
      return await Engine.start(o, storage, logger);
    } catch (err) {
      // Nothing of a failed open may stay behind (start() unregisters its metrics): a caller may
      // retry in this process.
      await storage.close().catch(() => undefined);
      throw err;
    }
  }

  private static async start<R>(
    o: EngineOptions<R>,
    storage: DiskStorage,
    logger: RaftLogger,
  ): Promise<Engine<R>> {
    if (storage.isEmpty() && !o.join) {
      await storage.bootstrap({ ...EMPTY_CONF_STATE, voters: [...o.initialVoters] });
    }
    // Raft resumes from the snapshot, not from the state machine's durable index: membership changes
    // after the snapshot must be applied to raft again. The loop skips re-applying to the state machine
    // what it already holds.
    const snapshot = storage.snapshot();
    const applied = snapshot.metadata.index;
    // A state machine behind the latest snapshot cannot catch up from the log (it was released): it
    // starts from the snapshot. One ahead of it skips re-applying what it holds.
    // (The bootstrap snapshot at index 1 stands for the empty initial state: nothing to restore.)
    let smApplied = o.stateMachine.appliedIndex();
    if (smApplied < applied && applied > BOOTSTRAP_INDEX) {
      await o.stateMachine.restore((await storage.snapshotPayload()).chunks(), applied);
      smApplied = applied;
      logger.info("state machine restored from the local snapshot", { id: o.id, index: applied });
    }
    const node = new RawNode({
      ...o.raft,
      id: o.id,
      storage,
      applied,
      // propose() is refused on a follower by the engine itself (it answers only for entries it
      // appended); forward() hands the command to raft, which forwards it to the leader.
      disableProposalForwarding: false,
      ...(o.random ? { random: o.random } : {}),
      logger,
    });
    const engine = new Engine(o, storage, node, smApplied);
    try {
      await o.transport.start(engine.inboundHandler());
    } catch (err) {
      engine.unregisterMetrics();
      throw err;
    }
    engine.scheduleTick();
    engine.wake();
    return engine;
  }

  // ------------------------------------------------------------------ public API

  /** Proposes a command; resolves once it is applied, with its index and the state machine's result. */
  propose(data: Uint8Array, options: RequestOptions = {}): Promise<Proposed<R>> {
    const { signal } = options;
    if (signal?.aborted) return Promise.reject(signal.reason);
    const refusal = this.refusal();
    if (refusal) return Promise.reject(refusal);
    if (data.byteLength === 0 || data.byteLength > this.opts.maxProposalBytes) {
      // Empty entries are raft's own (a new leader's); over the limit would fail the WAL.
      return Promise.reject(
        new RangeError(
          `a proposal must hold 1 to ${this.opts.maxProposalBytes} bytes, not ${data.byteLength}`,
        ),
      );
    }
    if (this.proposals.length + this.pending.size >= this.opts.maxPendingProposals) {
      return Promise.reject(
        new EngineOverloadedError(
          `${this.opts.maxPendingProposals} proposals pending; retry after some complete`,
        ),
      );
    }
    const started = performance.now();
    return new Promise<Proposed<R>>((resolve, reject) => {
      const done = (p: Proposed<R>) => {
        this.latency.proposal((performance.now() - started) / 1000);
        resolve(p);
      };
      this.proposals.push({ data, waiter: settleOnce(done, reject, signal) });
      this.wake();
    });
  }

  /**
   * Hands a command to raft without waiting for its outcome: on a follower, raft forwards it to the
   * leader. Resolves once raft took it (rejects with NotLeaderError when no leader is known). A
   * forwarded proposal can be lost on the way, as any message can, and nothing here tracks it: the
   * caller must recognise its entry when it is applied (by an id inside the data) and give up after a
   * while if it never is.
   */
  forward(data: Uint8Array): Promise<void> {
    const refusal = this.refusal();
    if (refusal) return Promise.reject(refusal);
    if (data.byteLength === 0 || data.byteLength > this.opts.maxProposalBytes)
      return Promise.reject(
        new RangeError(
          `a proposal must hold 1 to ${this.opts.maxProposalBytes} bytes, not ${data.byteLength}`,
        ),
      );
    if (this.forwards.length >= this.opts.maxPendingProposals)
      return Promise.reject(new EngineOverloadedError(`${this.opts.maxPendingProposals} forwards queued`));
    return new Promise<void>((resolve, reject) => {
      this.forwards.push({ data, waiter: settleOnce(resolve, reject, undefined) });
      this.wake();
    });
  }

  /** Resolves with an index at which a read of the applied state is linearizable (it is applied). */
  linearizableRead(options: RequestOptions = {}): Promise<number> {
    const { signal } = options;
    if (signal?.aborted) return Promise.reject(signal.reason);
    const refusal = this.refusal();
    if (refusal) return Promise.reject(refusal);
    if (this.readsOutstanding >= this.opts.maxPendingReads) {
      return Promise.reject(new EngineOverloadedError(`${this.opts.maxPendingReads} reads pending`));
    }
    this.readsOutstanding++;
    const started = performance.now();
    return new Promise<number>((resolve, reject) => {
      const done = (index: number) => {
        this.latency.read((performance.now() - started) / 1000);
        resolve(index);
      };
      this.reads.push(settleOnce(done, reject, signal, () => this.readsOutstanding--));
      this.wake();
    });
  }

  /**
   * Adds a voter (one at a time); resolves with the membership once the change is applied here.
   * `context` travels in the change's entry to every member's state machine (`applyConfChange`): a
   * server puts the new node's address there.
   */
  addVoter(id: NodeId, context?: Uint8Array): Promise<ConfState> {
    return this.changeMembership(singleChange("addVoter", id, context));
  }

  /** Adds a learner: it receives the log but does not vote; promote it once it has caught up. */
  addLearner(id: NodeId, context?: Uint8Array): Promise<ConfState> {
    return this.changeMembership(singleChange("addLearner", id, context));
  }

  promoteLearner(id: NodeId): Promise<ConfState> {
    return this.addVoter(id);
  }

  removeServer(id: NodeId): Promise<ConfState> {
    return this.changeMembership(singleChange("removeNode", id));
  }

  private changeMembership(cc: ConfChange): Promise<ConfState> {
    const refusal = this.refusal();
    if (refusal) return Promise.reject(refusal);
    return new Promise<ConfState>((resolve, reject) => {
      this.confChanges.push({ cc, waiter: settleOnce(resolve, reject, undefined) });
      this.wake();
    });
  }

  /**
   * Hands leadership to `to`; resolves once this node sees `to` lead, rejects if that does not happen
   * within an election timeout (raft abandons the transfer then).
   */
  transferLeadership(to: NodeId): Promise<void> {
    const refusal = this.refusal();
    if (refusal) return Promise.reject(refusal);
    return new Promise<void>((resolve, reject) => {
      this.transfers.push({ to, waiter: settleOnce(resolve, reject, undefined), issuedAt: -1 });
      this.wake();
    });
  }

  status(): Status {
    return this.node.status();
  }

  /**
   * The term of log entry `index` while this node holds it (0 once compacted or not yet appended): for
   * invariant checkers, which compare committed entries across nodes.
   */
  termOf(index: number): number {
    return this.node.raft.log.termOrZero(index);
  }

  /** The fatal error that stopped this engine, or null while it runs (or was closed normally). */
  get failedWith(): EngineFailedError | null {
    return this.failure;
  }

  /** Whether this node leads now (cheap: for per-request routing, where status() would allocate). */
  get isLeader(): boolean {
    return this.node.raft.role === StateRole.Leader;
  }

  /** Ticks this engine has given raft since it opened: its clock, in the unit raft's timeouts use. */
  get tickCount(): number {
    return this.ticks;
  }

  /** This engine's Prometheus registry (raftkv_* metrics). */
  metrics(): Registry {
    return this.registry;
  }

  /**
   * Stops the engine: pending requests fail with EngineClosedError, the cycle under way finishes, and the
   * transport and storage are closed. Also releases an engine that stopped on a fatal error.
   */
  close(): Promise<void> {
    if (!this.closing) this.closing = this.shutDown();
    return this.closing;
  }

  private async shutDown(): Promise<void> {
    // A batch the state machine is applying holds committed entries: it finishes, and answers its
    // proposals with their results rather than a failure (no batch starts after it).
    await this.pipeline.stop();
    this.halt(new EngineClosedError());
    await this.idle;
    // The state machine is the caller's to close once this resolves: no batch may be under way.
    await this.pipeline.stop();
    await (this.transportClosing ?? this.transport.close());
    // A local snapshot still being written finishes (or fails) before the storage closes under it.
    await this.snapshotWrite;
    for (const path of this.spooled.values()) this.removeSpool(path);
    this.spooled.clear();
    await this.storage.close();
    this.unregisterMetrics();
  }

  /** Takes this engine's metrics out of the registry (one shared with others, or a later engine). */
  private unregisterMetrics(): void {
    for (const name of this.metricNames) this.registry.removeSingleMetric(name);
  }

  /** Stops the loop, the ticks and the dispatchers, and fails every request with `err`. */
  private halt(err: Error): void {
    this.closed = true;
    void this.pipeline.stop();
    if (this.tickTimer !== null) this.timers.clearTimeout(this.tickTimer);
    this.tickTimer = null;
    this.failAll(err);
    this.reports.close();
    for (const d of this.dispatchers.values()) d.close();
  }

  // ------------------------------------------------------------------ events

  private refusal(): Error | null {
    if (this.failure) return this.failure;
    if (this.closed) return new EngineClosedError();
    return null;
  }

  private inboundHandler(): InboundHandler {
    return {
      onMessages: (from, batch) => {
        if (this.closed) return;
        this.inbox.push({ from, batch });
        this.wake();
      },
      onSnapshot: (from, message, received) => this.onSnapshotReceived(from, message, received),
    };
  }

  private scheduleTick(): void {
    const tickMs = this.opts.tickMs;
    const clock = this.clock;
    if (clock === null) {
      this.tickTimer = this.timers.setTimeout(() => {
        if (this.closed) return;
        this.ticksDue++;
        this.wake();
        this.scheduleTick();
      }, tickMs);
      return;
    }
    this.nextTickAt ??= clock() + tickMs;
    this.tickTimer = this.timers.setTimeout(
      () => {
        if (this.closed) return;
        if (this.catchUpTicks()) this.wake();
        this.scheduleTick();
      },
      Math.max(0, this.nextTickAt - clock()),
    );
  }

  /**
   * Counts the ticks the clock says are due. The loop calls it before handing anything to raft, not
   * only the tick timer: after a pause, whatever wakes the loop first (a read, a peer's message) must
   * not be served on raft's pre-pause idea of time, or a deposed leader's lease would look valid.
   */
  private catchUpTicks(): boolean {
    const clock = this.clock;
    if (clock === null || this.nextTickAt === null) return false;
    const now = clock();
    if (now < this.nextTickAt) return false;
    const tickMs = this.opts.tickMs;
    const due = Math.floor((now - this.nextTickAt) / tickMs) + 1;
    // Every missed tick counts (bounded: past a few hundred election timeouts nothing differs).
    this.ticksDue += Math.min(due, MAX_CATCH_UP_TICKS);
    this.nextTickAt += due * tickMs;
    return true;
  }

  private wake(): void {
    if (this.running) {
      this.rerun = true;
      return;
    }
    if (this.wakeScheduled || this.closed) return;
    this.wakeScheduled = true;
    this.schedule(() => {
      this.wakeScheduled = false;
      void this.run();
    });
  }

  // ------------------------------------------------------------------ the loop

  private async run(): Promise<void> {
    if (this.running || this.closed) return;
    this.running = true;
    this.idle = new Promise<void>((resolve) => {
      this.markIdle = resolve;
    });
    try {
      do {
        this.rerun = false;
        this.feedEvents();
        while (!this.closed && this.node.hasReady()) await this.handleReady(this.node.ready());
      } while (this.rerun && !this.closed);
    } catch (err) {
      this.failStop(err);
    } finally {
      this.running = false;
      this.markIdle();
    }
  }

  /** Hands everything posted since the last turn to raft. */
  private feedEvents(): void {
    const node = this.node;
    this.collectApplied();
    this.catchUpTicks();
    // Before the ticks: a snapshot still streaming must not be timed out by them.
    for (const [peer, d] of this.dispatchers) {
      if (d.takeSnapshotProgress() && !this.opts.testing?.dropDispatchReports)
        node.reportSnapshotProgress(peer);
    }
    for (; this.ticksDue > 0; this.ticksDue--) {
      node.tick();
      this.ticks++;
    }
    this.expireReads();
    this.settleTransfers();

    const inbox = this.inbox;
    this.inbox = [];
    for (const { batch, taken } of inbox) {
      taken?.();
      for (const m of batch) {
        try {
          node.step(m);
        } catch (err) {
          // A malformed or refused message from a peer must not stop this node.
          if (!(err instanceof StepRejectedError || err instanceof ProposalDroppedError)) throw err;
          this.logger.warn("refused a message from a peer", {
            from: m.from,
            type: m.type,
            error: err.message,
          });
        }
      }
    }

    this.releaseSpools();
    const reports = this.reports.drain();
    const testing = this.opts.testing;
    for (const report of reports) {
      if (testing?.dropDispatchReports) break;
      if (
        testing?.dropSnapshotFailureReports &&
        report.kind === "failed" &&
        report.messageType === MessageType.Snap
      )
        continue;
      routeReport(report, node);
    }

    if (this.proposals.length > 0) this.feedProposals();
    if (this.forwards.length > 0) this.feedForwards();
    if (this.reads.length > 0) this.feedReads();
    if (this.confChanges.length > 0) this.feedConfChanges();
    if (this.transfers.length > 0) this.feedTransfers();
  }

  private feedProposals(): void {
    const batch = this.proposals;
    this.proposals = [];
    const r = this.node.raft;
    if (r.role !== StateRole.Leader) {
      const err = this.notLeader();
      for (const p of batch) p.waiter.reject(err);
      return;
    }
    const before = r.log.lastIndex();
    try {
      this.node.proposeBatch(batch.map((p) => p.data));
    } catch (err) {
      if (!(err instanceof ProposalDroppedError)) throw err;
      const refused = new ProposalRefusedError(err.reason, err.message);
      for (const p of batch) p.waiter.reject(refused);
      return;
    }
    // The leader appended the batch right after its last entry, in its current term.
    for (let i = 0; i < batch.length; i++)
      this.pending.set(before + 1 + i, { term: r.term, waiter: batch[i]!.waiter });
  }

  private feedConfChanges(): void {
    const batch = this.confChanges;
    this.confChanges = [];
    const r = this.node.raft;
    for (const { cc, waiter } of batch) {
      if (r.role !== StateRole.Leader) {
        waiter.reject(this.notLeader());
        continue;
      }
      const index = r.log.lastIndex() + 1;
      try {
        this.node.proposeConfChange(cc);
      } catch (err) {
        if (!(err instanceof ProposalDroppedError)) throw err;
        waiter.reject(new ProposalRefusedError(err.reason, err.message));
        continue;
      }
      this.pendingConf.set(index, { term: r.term, waiter });
    }
  }

  private feedForwards(): void {
    const batch = this.forwards;
    this.forwards = [];
    try {
      this.node.proposeBatch(batch.map((f) => f.data));
    } catch (err) {
      if (!(err instanceof ProposalDroppedError)) throw err;
      const refused =
        err.reason === "no-leader" ? this.notLeader() : new ProposalRefusedError(err.reason, err.message);
      for (const f of batch) f.waiter.reject(refused);
      return;
    }
    for (const f of batch) f.waiter.resolve();
  }

  private feedTransfers(): void {
    for (const t of this.transfers) {
      if (t.issuedAt >= 0) continue;
      t.issuedAt = this.ticks;
      if (this.node.raft.lead === t.to) continue; // already there; answered below
      if (this.node.raft.role !== StateRole.Leader) {
        t.issuedAt = -2; // refused
        t.waiter.reject(this.notLeader());
        continue;
      }
      this.node.transferLeader(t.to);
    }
    this.settleTransfers();
  }

  /** Answers transfers whose target now leads, and fails those past an election timeout. */
  private settleTransfers(): void {
    if (this.transfers.length === 0) return;
    const limit = this.node.raft.opts.electionTicks;
    const lead = this.node.raft.lead;
    this.transfers = this.transfers.filter((t) => {
      if (t.issuedAt === -2) return false;
      if (t.issuedAt >= 0 && lead === t.to) {
        t.waiter.resolve();
        return false;
      }
      if (t.issuedAt >= 0 && this.ticks - t.issuedAt > limit) {
        t.waiter.reject(
          new LeadershipLostError(`the transfer to ${t.to} did not finish within ${limit} ticks`),
        );
        return false;
      }
      return true;
    });
  }

  private feedReads(): void {
    const waiters = this.reads;
    this.reads = [];
    // One read-index round serves every read that arrived since the last one.
    const ctx = new TextEncoder().encode(`r${this.id}.${this.readPrefix}.${this.nextReadContext++}`);
    try {
      this.node.readIndex(ctx);
    } catch (err) {
      if (!(err instanceof ProposalDroppedError)) throw err;
      const e = this.notLeader();
      for (const w of waiters) w.reject(e);
      return;
    }
    this.readsByContext.set(Buffer.from(ctx).toString("latin1"), { waiters, issuedAt: this.ticks });
  }

  private async handleReady(rd: Ready): Promise<void> {
    // A leader's appends may leave before its own write completes (raft thesis §10.2.1).
    for (const m of rd.messages) this.dispatch(m);
    const votesEarly = this.opts.testing?.sendVotesBeforeFsync === true;
    if (votesEarly)
      for (const m of rd.messagesAfterPersist) if (m.type === MessageType.VoteResp) this.dispatch(m);
    let appliedEarly = 0;
    if (rd.snapshot) {
      // Raft takes a snapshot only with nothing handed out unapplied: the state machine is idle.
      this.pipeline.resetTo(rd.snapshot.metadata.index);
      await this.installSnapshot(rd as Ready & { snapshot: Snapshot });
      if (rd.entries.length > 0) await this.storage.append(rd.entries, null);
    } else if (rd.entries.length > 0 || rd.hardState) {
      // Committed entries this node already holds durably need not wait for this Ready's write: the
      // state machine starts on them while the WAL syncs the newer ones (a leader's commits arrive with
      // the next batch of proposals, so otherwise every write would wait for two fdatasyncs).
      const early = this.durablyHeld(rd);
      if (early > 0)
        this.pipeline.push(
          early === rd.committedEntries.length ? rd.committedEntries : rd.committedEntries.slice(0, early),
        );
      appliedEarly = early;
      // Nothing new to make durable (a Ready of messages or commits to apply only): no fdatasync.
      await this.storage.append(rd.entries, rd.hardState, rd.mustSync);
    }
    // Votes and acknowledgements vouch for what was just made durable.
    for (const m of rd.messagesAfterPersist)
      if (!(votesEarly && m.type === MessageType.VoteResp)) this.dispatch(m);
    const committed = rd.committedEntries;
    if (committed.length > appliedEarly)
      this.pipeline.push(appliedEarly === 0 ? committed : committed.slice(appliedEarly));
    for (const rs of rd.readStates) this.onReadState(rs);
    // A read whose index is already applied is answered now: nothing else may wake the loop before a tick.
    if (rd.readStates.length > 0) this.releaseReads();
    if (rd.softState) this.onSoftState(rd.softState);
    // Committed entries are applied off the loop; collectApplied() tells raft as they are done. Past a
    // backlog, the loop waits for the state machine rather than queue without bound.
    this.node.advanceWithoutApplying(rd);
    if (rd.snapshot) this.releaseReads();
    const maxBacklog = this.opts.maxApplyBacklogBytes;
    for (let running = this.pipeline.running; running !== null; running = this.pipeline.running) {
      if (this.pipeline.backlogBytes <= maxBacklog) break;
      await running;
    }
  }

  /**
   * How many of the Ready's committed entries are already durable in this node's log: written by an
   * earlier Ready (whose write completed before this Ready was taken), and not among the entries this
   * one writes. They may be applied before its fdatasync, and a crash cannot leave the state machine
   * ahead of the log.
   */
  private durablyHeld(rd: Ready): number {
    const committed = rd.committedEntries;
    if (committed.length === 0) return 0;
    let through = this.storage.lastIndex();
    if (rd.entries.length > 0) through = Math.min(through, rd.entries[0]!.index - 1);
    let n = 0;
    while (n < committed.length && committed[n]!.index <= through) n++;
    return n;
  }

  /**
   * Tells raft what the pipeline has applied, and applies to raft the conf change it stopped at, once
   * everything before it is applied. Then answers the reads that waited for those entries, and takes a
   * local snapshot if one is due.
   */
  private collectApplied(): void {
    const pipeline = this.pipeline;
    for (;;) {
      if (pipeline.appliedThrough > this.node.raft.log.applied) this.node.appliedTo(pipeline.appliedThrough);
      const cc = pipeline.takeConfChange();
      if (cc === null) break;
      this.applyConfChangeEntry(cc);
    }
    pipeline.kick();
    this.releaseReads();
    this.maybeSnapshot();
  }

  /**
   * Takes a local snapshot once enough entries were applied since the last: the state machine's bytes
   * are taken on the loop (quickly), written off it. The WAL then releases the entries before the oldest
   * snapshot kept, and deletes whole segments.
   */
  private maybeSnapshot(): void {
    const applied = this.node.raft.log.applied;
    if (!this.snapshotDue(applied)) {
      this.pipeline.release();
      return;
    }
    // The state machine must hold exactly the entries through `applied`: with a batch under way, hold
    // the pipeline after it; its stopping wakes the loop, which comes back here.
    if (this.pipeline.applyingBatch || this.pipeline.appliedThrough !== applied) {
      this.pipeline.hold();
      return;
    }
    this.snapshotting = true;
    const confState = this.node.raft.trk.confState();
    // Captured now, on the loop, consistent with `applied`; streamed to disk off it, and released as
    // soon as it is read.
    const image = releasedAfterReading(this.sm.snapshot());
    this.pipeline.release();
    this.snapshotWrite = this.storage
      .createSnapshot(applied, confState, image.stream)
      .finally(image.release)
      .then(
        () => {
          this.snapshotting = false;
        },
        (err: unknown) => {
          if (!this.closed) this.failStop(err);
        },
      );
  }

  private snapshotDue(applied: number): boolean {
    const every = this.opts.snapshotEveryEntries;
    if (every <= 0 || this.snapshotting) return false;
    // While the log replays what the state machine already holds, its state is ahead of `applied`:
    // a snapshot now would be labelled with the wrong index.
    if (applied < this.smAppliedAtOpen) return false;
    const snap = this.storage.snapshot().metadata;
    return (
      applied - snap.index >= every || (applied > snap.index && this.snapshotLacksAMember(snap.confState))
    );
  }

  /**
   * Whether a peer the leader replicates to is missing from the snapshot's membership: a node that joined
   * after it. It may need a snapshot, and would refuse this one, so a fresh one is taken now.
   */
  private snapshotLacksAMember(cs: ConfState): boolean {
    const r = this.node.raft;
    if (r.role !== StateRole.Leader) return false;
    for (const id of r.trk.progress.keys()) {
      if (!cs.voters.includes(id) && !cs.learners.includes(id) && !cs.votersOutgoing.includes(id))
        return true;
    }
    return false;
  }

  /**
   * Where the transport reads the payload of the snapshot raft asked it to send: streamed from the
   * snapshot's file. If a newer snapshot replaced it meanwhile, the transfer fails, raft is told, and it
   * sends the new one.
   */
  snapshotSource(): SnapshotSource {
    const payloadOf = (meta: SnapshotMetadata) => this.storage.snapshots.payload(meta.index, meta.term);
    return {
      async *open(meta) {
        yield* (await payloadOf(meta)).chunks();
      },
      payloadBytes: async (meta) => (await payloadOf(meta)).bytes,
    };
  }

  /**
   * A peer's snapshot arrived whole, verified and durable (spooled by the transport). It goes to the
   * loop like any message, carrying the payload; the transfer is confirmed once the loop has handed it
   * to raft (not yet installed: if this node crashes before installing it, the leader probes and sends
   * again).
   */
  private onSnapshotReceived(from: NodeId, message: Message, received: ReceivedSnapshot): Promise<void> {
    if (this.closed) {
      this.removeSpool(received.path);
      return Promise.reject(this.refusal() ?? new EngineClosedError());
    }
    // Raft sees the metadata only; the payload stays in the spooled file until it is installed.
    const snap: Message = { ...message, snapshot: { metadata: received.metadata, data: EMPTY_BYTES } };
    return new Promise<void>((resolve, reject) => {
      this.inbox.push({
        from,
        batch: [snap],
        taken: () => {
          this.spooled.set(snapshotKey(received.metadata), received.path);
          resolve();
        },
        refused: (e) => {
          reject(e);
          this.removeSpool(received.path);
        },
      });
      this.wake();
    });
  }

  /** Removes spooled snapshots raft did not take (stale, or superseded), keeping the one it holds. */
  private releaseSpools(): void {
    if (this.spooled.size === 0) return;
    const pending = this.node.raft.log.unstable.snapshot;
    const keep = pending ? snapshotKey(pending.metadata) : "";
    for (const [key, path] of this.spooled) {
      if (key === keep) continue;
      this.spooled.delete(key);
      this.removeSpool(path);
    }
  }

  private removeSpool(path: string): void {
    this.opts.fs.unlink(path).catch((err: unknown) => {
      this.logger.warn("could not remove a spooled snapshot", { path, error: String(err) });
    });
  }

  /**
   * Installs a snapshot from the leader: its payload is copied from the spooled file into the snapshot
   * store and recorded in the WAL (durable), then streamed from the store into the state machine.
   */
  private async installSnapshot(rd: Ready & { snapshot: Snapshot }): Promise<void> {
    const meta = rd.snapshot.metadata;
    const key = snapshotKey(meta);
    const spool = this.spooled.get(key);
    if (spool === undefined) {
      // Raft only takes snapshots that came through the transport, spooled: an invariant, not input.
      throw new Error(`engine invariant: no spooled payload for the snapshot ${key} raft is installing`);
    }
    await this.storage.installSnapshot(rd.snapshot, rd.hardState, readFileChunks(this.opts.fs, spool));
    this.spooled.delete(key);
    this.removeSpool(spool);
    if (meta.index > BOOTSTRAP_INDEX) {
      await this.sm.restore((await this.storage.snapshotPayload()).chunks(), meta.index);
    }
    this.retireDispatchers(meta.confState);
    this.logger.info("installed snapshot", { id: this.id, index: meta.index, term: meta.term });
  }

  private applyConfChangeEntry(e: Entry): void {
    const cc = decodeConfChange(e.data);
    const cs = this.node.applyConfChange(cc);
    this.retireDispatchers(cs);
    const answer = () => {
      const p = this.pendingConf.get(e.index);
      if (!p) return;
      this.pendingConf.delete(e.index);
      if (p.term === e.term) p.waiter.resolve(cs);
      else p.waiter.reject(new LeadershipLostError(`index ${e.index} was taken by term ${e.term}`));
    };
    // The state machine hears of it before any later entry (and the caller is answered once it has);
    // replayed after a restart, a change it already holds is not told again.
    const tell = this.sm.applyConfChange;
    if (tell === undefined || e.index <= this.smAppliedAtOpen) {
      this.pipeline.confChangeApplied(e.index, null);
      answer();
      return;
    }
    this.pipeline.confChangeApplied(e.index, async () => {
      await tell.call(this.sm, e.index, cc, cs);
      answer();
    });
  }

  private settleProposal(e: Entry, result: R): void {
    const p = this.pending.get(e.index);
    if (!p) return;
    this.pending.delete(e.index);
    if (p.term === e.term) p.waiter.resolve({ index: e.index, result });
    else p.waiter.reject(new LeadershipLostError(`index ${e.index} was taken by term ${e.term}`));
  }

  /**
   * Fails read-index rounds raft has not answered within an election timeout: the request or its answer
   * was lost (raft does not retry a forwarded read), and the caller should retry rather than wait.
   */
  private expireReads(): void {
    const limit = this.node.raft.opts.electionTicks;
    for (const [key, round] of this.readsByContext) {
      if (this.ticks - round.issuedAt < limit) continue;
      this.readsByContext.delete(key);
      const err = new ReadIndexTimeoutError(limit);
      for (const w of round.waiters) w.reject(err);
    }
  }

  private onReadState(rs: ReadState): void {
    const key = Buffer.from(rs.requestContext).toString("latin1");
    const round = this.readsByContext.get(key);
    if (!round) return;
    this.readsByContext.delete(key);
    this.readsAwaitingApply.push({ index: rs.index, waiters: round.waiters });
  }

  /** Answers reads whose index is now applied. */
  private releaseReads(): void {
    if (this.readsAwaitingApply.length === 0) return;
    const applied = this.node.raft.log.applied;
    const still: typeof this.readsAwaitingApply = [];
    for (const r of this.readsAwaitingApply) {
      if (r.index <= applied) for (const w of r.waiters) w.resolve(r.index);
      else still.push(r);
    }
    this.readsAwaitingApply = still;
  }

  private onSoftState(ss: SoftState): void {
    this.settleTransfers();
    if (ss.role === StateRole.Leader) return;
    // No longer leader: what this node proposed may or may not be applied, and reads it asked to have
    // confirmed will not be. Fail them now rather than let them wait for ever.
    const lost = new LeadershipLostError(`node ${this.id} is now ${ss.role}`);
    for (const p of this.pending.values()) p.waiter.reject(lost);
    this.pending.clear();
    for (const p of this.pendingConf.values()) p.waiter.reject(lost);
    this.pendingConf.clear();
    for (const round of this.readsByContext.values()) for (const w of round.waiters) w.reject(lost);
    this.readsByContext.clear();
  }

  /** Closes the workers of peers no longer in the configuration. */
  private retireDispatchers(cs: ConfState): void {
    for (const [peer, d] of this.dispatchers) {
      if (cs.voters.includes(peer) || cs.learners.includes(peer) || cs.votersOutgoing.includes(peer))
        continue;
      d.close();
      this.dispatchers.delete(peer);
    }
  }

  private dispatch(m: Message): void {
    let d = this.dispatchers.get(m.to);
    if (!d) {
      d = new PeerDispatcher(
        m.to,
        this.transport.sender(m.to),
        this.reports,
        this.timers,
        this.opts.dispatch,
      );
      this.dispatchers.set(m.to, d);
    }
    d.enqueue(m);
  }

  private notLeader(): NotLeaderError {
    const lead = this.node.raft.lead;
    return new NotLeaderError(lead, lead === NONE ? null : (this.opts.addresses?.get(lead) ?? null));
  }

  private failAll(err: Error): void {
    for (const item of this.inbox) item.refused?.(err);
    this.inbox = [];
    for (const c of this.confChanges) c.waiter.reject(err);
    this.confChanges = [];
    for (const p of this.pendingConf.values()) p.waiter.reject(err);
    this.pendingConf.clear();
    for (const t of this.transfers) t.waiter.reject(err);
    this.transfers = [];
    for (const p of this.proposals) p.waiter.reject(err);
    this.proposals = [];
    for (const f of this.forwards) f.waiter.reject(err);
    this.forwards = [];
    for (const p of this.pending.values()) p.waiter.reject(err);
    this.pending.clear();
    for (const w of this.reads) w.reject(err);
    this.reads = [];
    for (const round of this.readsByContext.values()) for (const w of round.waiters) w.reject(err);
    this.readsByContext.clear();
    for (const r of this.readsAwaitingApply) for (const w of r.waiters) w.reject(err);
    this.readsAwaitingApply = [];
  }

  /** A fatal error (storage failure, broken invariant): stop, and say why to every caller. */
  private failStop(err: unknown): void {
    this.failure = new EngineFailedError(err);
    this.logger.warn("engine stopped after a fatal error; close() releases it", {
      id: this.id,
      error: this.failure.message,
    });
    this.halt(this.failure);
    // Stop accepting peer traffic now, so that peers see this node as unreachable rather than as a
    // silent sink; close() awaits the rest.
    this.transportClosing = this.transport.close().catch(() => {});
  }
}

/**
 * A snapshot handle's stream that releases the handle as soon as it has been read (or abandoned), and a
 * release to call in any case afterwards; the handle is released exactly once.
 */
function releasedAfterReading(handle: SnapshotHandle): {
  stream: AsyncIterable<Uint8Array>;
  release: () => void;
} {
  let released = false;
  const release = () => {
    if (released) return;
    released = true;
    handle.release();
  };
  async function* stream(): AsyncGenerator<Uint8Array> {
    try {
      yield* handle.read();
    } finally {
      release();
    }
  }
  return { stream: stream(), release };
}

function singleChange(type: ConfChangeType, nodeId: NodeId, context?: Uint8Array): ConfChange {
  const changes = [{ type, nodeId }];
  return context === undefined ? { transition: "auto", changes } : { transition: "auto", changes, context };
}

function snapshotKey(meta: SnapshotMetadata): string {
  return `${meta.index}@${meta.term}`;
}

/**
 * A waiter that settles once: by its request's outcome, or earlier by the signal. `onSettle` runs once
 * either way (for counters of outstanding requests).
 */
function settleOnce<T>(
  resolve: (v: T) => void,
  reject: (e: unknown) => void,
  signal: AbortSignal | undefined,
  onSettle?: () => void,
): Waiter<T> {
  let settled = false;
  const finish = (): boolean => {
    if (settled) return false;
    settled = true;
    signal?.removeEventListener("abort", onAbort);
    onSettle?.();
    return true;
  };
  const onAbort = () => {
    if (finish()) reject(signal!.reason);
  };
  signal?.addEventListener("abort", onAbort, { once: true });
  return {
    resolve: (v) => {
      if (finish()) resolve(v);
    },
    reject: (e) => {
      if (finish()) reject(e);
    },
  };
}
