/**
 * A deterministic simulation of a raft cluster driven through RawNode, for property tests.
 *
 * Everything is driven by one seed: the fault schedule (drops, duplicates, delays, partitions, crashes,
 * restarts), the workload (proposals, membership changes, leader transfers, log compaction) and each
 * node's election randomness. Time is a virtual tick clock; there are no timers, no Date and no
 * Math.random, so any run can be replayed from its parameters.
 *
 * A run has two phases:
 *  1. faults: `faultTicks` ticks of random faults and workload, with safety checked after every step;
 *  2. healing: the network is healed, crashed nodes restart, churn stops, and within a bounded number
 *     of ticks a leader must exist, a fresh proposal must commit and every member must apply up to the
 *     leader's commit index.
 *
 * Safety properties checked throughout (a violation throws SimulationFailure, naming the seed):
 *  - election safety: at most one leader per term, over every (term, leader) ever observed;
 *  - log matching: two logs holding an entry with the same index and term hold the same entry there
 *    and the same term just before it (which, by induction, makes them identical up to that index);
 *  - leader completeness: an entry applied anywhere is in the log of every leader of a later term;
 *  - state-machine safety: no two nodes apply different entries at one index, a node applies indexes
 *    in order without gaps, and what it applies after a restart or a snapshot repeats what it applied
 *    before.
 */

import { decodeConfChange } from "../../../src/raft/confchange/codec.js";
import { ProposalDroppedError, SnapshotTemporarilyUnavailableError } from "../../../src/raft/errors.js";
import { SeededRandom } from "../../../src/raft/rand.js";
import { RawNode, type Ready } from "../../../src/raft/raw-node.js";
import { MemoryStorage } from "../../../src/raft/storage.js";
import {
  type ConfChange,
  type ConfChangeSingle,
  type ConfChangeType,
  type ConfState,
  EMPTY_BYTES,
  EMPTY_CONF_STATE,
  type Entry,
  EntryType,
  type Message,
  MessageType,
  messageTypeName,
  type NodeId,
  type Snapshot,
  StateRole,
} from "../../../src/raft/types.js";

// ------------------------------------------------------------------------------------------ parameters

export interface SimParams {
  /** Drives everything random in the run. */
  seed: number;
  /** Initial voters: ids 1..voters. */
  voters: number;
  /** Extra node ids (voters+1 ...) that start outside the cluster and may be added to it. */
  spares: number;
  /** Ticks of the fault phase. */
  faultTicks: number;
  electionTicks: number;
  heartbeatTicks: number;
  preVote: boolean;
  checkQuorum: boolean;
  /** Chance (percent) that a sent message is dropped. */
  dropPct: number;
  /** Chance (percent) that a sent message is delivered twice. */
  dupPct: number;
  /** Each message copy is delayed by 0..maxDelayTicks ticks, which reorders them. */
  maxDelayTicks: number;
  /** Per-tick chance (per mille) that the partition changes. */
  partitionPerMille: number;
  /** Per-tick chance (per mille) that a node crashes. */
  crashPerMille: number;
  /** Per-tick chance (per mille) that a crashed node restarts. */
  restartPerMille: number;
  /** Per-tick chance (percent) of a proposal at a random node. */
  proposePct: number;
  /** Per-tick chance (percent) of a membership change proposed at the leader. */
  confChangePct: number;
  /** Per-tick chance (percent) of a leader transfer request at a random node. */
  transferPct: number;
  /** Per-tick chance (percent) that a random node compacts its log. */
  compactPct: number;
  /** Receives a line per notable event, for debugging a failing run. */
  trace?: (line: string) => void;
}

export class SimulationFailure extends Error {
  override name = "SimulationFailure";
}

export interface SimOutcome {
  ticks: number;
  healTicks: number;
  leaders: number;
  maxTerm: number;
  applied: number;
  confChangesApplied: number;
  snapshotsInstalled: number;
  crashes: number;
  delivered: number;
  dropped: number;
}

// ------------------------------------------------------------------------------------------ helpers

function mix(...xs: number[]): number {
  let h = 0x811c9dc5;
  for (const x of xs) {
    h = Math.imul(h ^ (x >>> 0), 0x01000193) >>> 0;
    h = Math.imul(h ^ (h >>> 15), 0x2c1b3c6d) >>> 0;
  }
  return h >>> 0 || 1;
}

const encoder = new TextEncoder();

/** What identifies an entry's content: its type and payload (text for commands, hex for changes). */
function contentKey(e: Entry): string {
  const bytes = Buffer.from(e.data.buffer, e.data.byteOffset, e.data.byteLength);
  return e.type === EntryType.Normal
    ? `${e.type}/${bytes.toString("latin1")}`
    : `${e.type}/${bytes.toString("hex")}`;
}

/** What identifies an applied entry: its term and content. */
function appliedKey(e: Entry): string {
  return `${e.term}/${contentKey(e)}`;
}

function termOfKey(key: string): number {
  return Number(key.slice(0, key.indexOf("/")));
}

/** The state machine's snapshot: the applied keys in index order, as JSON. */
function encodeState(keys: readonly string[]): Uint8Array {
  return encoder.encode(JSON.stringify(keys));
}

function decodeState(s: Snapshot): string[] {
  if (s.data.byteLength === 0) return [];
  const parsed: unknown = JSON.parse(new TextDecoder().decode(s.data));
  if (!Array.isArray(parsed) || !parsed.every((k) => typeof k === "string"))
    throw new SimulationFailure("snapshot data is not a state-machine state");
  return parsed as string[];
}

type CrashPoint = "before-persist" | "after-persist" | "mid-apply";

interface Flight {
  m: Message;
  at: number;
  /** The sender's incarnation when it sent m, so that reports reach the node that sent it. */
  senderIncarnation: number;
}

// ------------------------------------------------------------------------------------------ network

/** Messages in flight on a virtual clock, with drops, duplicates, delays and directed link cuts. */
export class SimNetwork {
  private flights: Flight[] = [];
  private readonly cut = new Set<string>();
  dropPct = 0;
  dupPct = 0;
  maxDelayTicks = 0;
  sent = 0;
  droppedCount = 0;

  constructor(private readonly rng: SeededRandom) {}

  /** Queues one message; it may be dropped, duplicated and delayed. Returns the copies queued. */
  send(m: Message, now: number, senderIncarnation: number): number {
    this.sent++;
    if (this.dropPct > 0 && this.rng.intn(100) < this.dropPct) {
      this.droppedCount++;
      return 0;
    }
    const copies = this.dupPct > 0 && this.rng.intn(100) < this.dupPct ? 2 : 1;
    for (let i = 0; i < copies; i++) {
      const delay = this.maxDelayTicks > 0 ? this.rng.intn(this.maxDelayTicks + 1) : 0;
      // Each copy is its own envelope, as after a real wire; payload arrays stay shared.
      this.flights.push({ m: { ...m }, at: now + delay, senderIncarnation });
    }
    return copies;
  }

  /** Removes and returns the messages due at `now`, in random order. */
  takeDue(now: number): Flight[] {
    const due: Flight[] = [];
    const later: Flight[] = [];
    for (const f of this.flights) (f.at <= now ? due : later).push(f);
    this.flights = later;
    shuffle(due, this.rng);
    return due;
  }

  get inFlight(): number {
    return this.flights.length;
  }

  isCut(from: NodeId, to: NodeId): boolean {
    return this.cut.has(`${from}>${to}`);
  }

  cutLink(from: NodeId, to: NodeId): void {
    this.cut.add(`${from}>${to}`);
  }

  isolate(id: NodeId, all: readonly NodeId[]): void {
    for (const o of all) {
      if (o === id) continue;
      this.cutLink(id, o);
      this.cutLink(o, id);
    }
  }

  split(a: readonly NodeId[], b: readonly NodeId[]): void {
    for (const x of a)
      for (const y of b) {
        this.cutLink(x, y);
        this.cutLink(y, x);
      }
  }

  healPartitions(): void {
    this.cut.clear();
  }

  describeCuts(): string {
    return [...this.cut].sort().join(" ");
  }
}

export function shuffle<T>(xs: T[], rng: SeededRandom): T[] {
  for (let i = xs.length - 1; i > 0; i--) {
    const j = rng.intn(i + 1);
    const t = xs[i]!;
    xs[i] = xs[j]!;
    xs[j] = t;
  }
  return xs;
}

// ------------------------------------------------------------------------------------------ nodes

/**
 * A MemoryStorage whose snapshot() asks its node for a fresh snapshot, as an engine does: it captures
 * the state machine's applied state when raft needs a snapshot to send (possibly answering "temporarily
 * unavailable" while it does), rather than handing out whatever snapshot compaction left behind. A
 * stale snapshot can be useless to the follower: one taken before a node was added does not include
 * it, and a node refuses a snapshot of a configuration it is not part of.
 */
export class SimStorage extends MemoryStorage {
  onSnapshotRequest: (() => void) | null = null;

  static bootstrap(voters: readonly NodeId[]): SimStorage {
    const s = new SimStorage();
    s.applySnapshot({
      metadata: { index: 0, term: 0, confState: { ...EMPTY_CONF_STATE, voters: [...voters] } },
      data: EMPTY_BYTES,
    });
    return s;
  }

  override snapshot(): Snapshot {
    this.onSnapshotRequest?.();
    return super.snapshot();
  }

  /** The snapshot last written, without asking for a fresh one. */
  stored(): Snapshot {
    return super.snapshot();
  }
}

/** One node: its durable storage, its RawNode (null while crashed) and its state machine. */
export class SimNode {
  raw: RawNode | null = null;
  incarnation = 0;
  /** The state machine: the applied entries' keys, entry i at position i-1. */
  state: string[] = [];
  /** The membership as of the last applied entry (or installed snapshot). */
  confState: ConfState;
  /** Every key this node ever applied, by index, across restarts: what it applies must repeat it. */
  readonly history: string[] = [];
  crashAt: CrashPoint | null = null;
  /** The engine is producing a snapshot for raft to send; it is written at the end of the tick. */
  snapshotRequested = false;

  constructor(
    readonly id: NodeId,
    readonly storage: SimStorage,
  ) {
    this.confState = storage.stored().metadata.confState;
  }

  get up(): boolean {
    return this.raw !== null;
  }

  get appliedIndex(): number {
    return this.state.length;
  }

  rawNode(): RawNode {
    if (!this.raw) throw new Error(`node ${this.id} is down`);
    return this.raw;
  }
}

// ------------------------------------------------------------------------------------------ simulation

export class Simulation {
  readonly rng: SeededRandom;
  readonly net: SimNetwork;
  readonly nodes = new Map<NodeId, SimNode>();
  readonly ids: NodeId[];
  readonly initialVoters: NodeId[];
  now = 0;
  private phase: "faults" | "healing" = "faults";
  private proposals = 0;
  private readonly maxMessageBytes: number;
  private readonly maxInflightMessages: number;

  // Safety bookkeeping.
  /** term → the leader seen in it. */
  private readonly leaders = new Map<number, NodeId>();
  /** The highest term any node has been seen in. */
  private maxTerm = 0;
  /** index → the key of the entry applied there (by anyone). */
  private readonly appliedAt: string[] = [];
  /** index → maxTerm when the entry was first applied: every leader of a later term must hold it. */
  private readonly appliedTermBound: number[] = [];
  /** `index/term` → `content|prevTerm` as seen in any log (prevTerm -1 when unknown). */
  private readonly logEntries = new Map<string, { content: string; prevTerm: number }>();

  // Counters for the outcome.
  private confChangesApplied = 0;
  private snapshotsInstalled = 0;
  private crashes = 0;
  private delivered = 0;

  constructor(readonly params: SimParams) {
    this.rng = new SeededRandom(mix(params.seed, 0xfa017));
    this.net = new SimNetwork(new SeededRandom(mix(params.seed, 0x7e7)));
    this.initialVoters = [];
    for (let i = 1; i <= params.voters; i++) this.initialVoters.push(i);
    this.ids = [];
    for (let i = 1; i <= params.voters + params.spares; i++) this.ids.push(i);
    // One entry per append (the size limit never cuts below one), a few, or everything.
    this.maxMessageBytes = [1, 128, 1024 * 1024][this.rng.intn(3)]!;
    this.maxInflightMessages = this.rng.intn(2) === 0 ? 2 : 64;
    for (const id of this.ids) {
      // Every node, spares included, starts from the same bootstrap membership, so that replaying the
      // log from the start yields the same configurations everywhere.
      const n = new SimNode(id, SimStorage.bootstrap(this.initialVoters));
      n.storage.onSnapshotRequest = () => this.snapshotRequested(n);
      this.nodes.set(id, n);
      this.start(n);
    }
  }

  // ---------------------------------------------------------------------------- failure reporting

  fail(what: string): never {
    const p = this.params;
    const lines = [
      `${what}`,
      `  seed=${p.seed} tick=${this.now} phase=${this.phase} params=${JSON.stringify({ ...p, trace: undefined })}`,
      ...[...this.nodes.values()].map((n) => `  ${this.describe(n)}`),
      `  cuts: ${this.net.describeCuts() || "none"}`,
    ];
    throw new SimulationFailure(lines.join("\n"));
  }

  describe(n: SimNode): string {
    if (!n.raw) return `node ${n.id}: down (applied ${n.appliedIndex})`;
    const r = n.raw.raft;
    const cs = r.trk.confState();
    return (
      `node ${n.id}: ${r.role} term=${r.term} vote=${r.vote} lead=${r.lead} ` +
      `first=${r.log.firstIndex()} last=${r.log.lastIndex()} commit=${r.log.committed} ` +
      `applied=${r.log.applied}/${n.appliedIndex} voters=[${cs.voters}] out=[${cs.votersOutgoing}] ` +
      `learners=[${cs.learners}] next=[${cs.learnersNext}]`
    );
  }

  private trace(line: string): void {
    this.params.trace?.(`[t=${this.now}] ${line}`);
  }

  // ---------------------------------------------------------------------------- lifecycle

  private start(n: SimNode): void {
    const p = this.params;
    n.incarnation++;
    const snap = n.storage.stored();
    n.raw = new RawNode({
      id: n.id,
      storage: n.storage,
      applied: snap.metadata.index,
      electionTicks: p.electionTicks,
      heartbeatTicks: p.heartbeatTicks,
      preVote: p.preVote,
      checkQuorum: p.checkQuorum,
      maxMessageBytes: this.maxMessageBytes,
      maxInflightMessages: this.maxInflightMessages,
      maxInflightBytes: 0,
      random: new SeededRandom(mix(p.seed, n.id, n.incarnation)),
    });
    // The state machine restarts from the snapshot; later entries are applied again.
    const state = decodeState(snap);
    if (state.length !== snap.metadata.index)
      this.fail(`node ${n.id}: snapshot at ${snap.metadata.index} holds ${state.length} applied entries`);
    this.checkStatePrefix(n, state, "restart");
    n.state = state;
    n.confState = snap.metadata.confState;
    n.crashAt = null;
    n.snapshotRequested = false;
    this.observe(n);
  }

  crash(n: SimNode, why: string): void {
    if (!n.raw) return;
    this.trace(`crash ${n.id} (${why})`);
    this.crashes++;
    n.raw = null;
    n.crashAt = null;
    n.snapshotRequested = false;
  }

  restart(n: SimNode): void {
    if (n.raw) return;
    this.trace(`restart ${n.id}`);
    this.start(n);
  }

  upNodes(): SimNode[] {
    const out: SimNode[] = [];
    for (const n of this.nodes.values()) if (n.raw) out.push(n);
    return out;
  }

  /** The live leader of the highest term, if any. */
  leader(): SimNode | undefined {
    let best: SimNode | undefined;
    for (const n of this.nodes.values()) {
      const r = n.raw?.raft;
      if (r?.role === StateRole.Leader && (!best || r.term > best.raw!.raft.term)) best = n;
    }
    return best;
  }

  // ---------------------------------------------------------------------------- safety checks

  /** Records the node's role and term; checks election safety and, for a new leader, completeness. */
  private observe(n: SimNode): void {
    const r = n.raw!.raft;
    if (r.term > this.maxTerm) this.maxTerm = r.term;
    if (r.role !== StateRole.Leader) return;
    const seen = this.leaders.get(r.term);
    if (seen === undefined) {
      this.leaders.set(r.term, n.id);
      this.trace(`leader ${n.id} term ${r.term}`);
      this.checkLeaderCompleteness(n);
    } else if (seen !== n.id) {
      this.fail(`election safety violated: term ${r.term} has two leaders, ${seen} and ${n.id}`);
    }
  }

  /** Every entry applied while terms were all below this leader's term must be in its log. */
  private checkLeaderCompleteness(n: SimNode): void {
    const log = n.raw!.raft.log;
    const term = n.raw!.raft.term;
    const first = log.firstIndex();
    const last = log.lastIndex();
    for (let i = 1; i < this.appliedAt.length; i++) {
      if (this.appliedTermBound[i]! >= term) continue;
      const key = this.appliedAt[i]!;
      if (i > last) {
        this.fail(
          `leader completeness violated: leader ${n.id} of term ${term} lacks entry ${i} (${key}), applied before its term; its last index is ${last}`,
        );
      }
      if (i < first - 1) continue; // compacted: covered by its snapshot
      const t = log.term(i);
      if (t !== termOfKey(key))
        this.fail(
          `leader completeness violated: leader ${n.id} of term ${term} holds term ${t} at ${i}, but ${key} was applied there`,
        );
      if (i >= first) {
        const e = log.slice(i, i + 1, Number.MAX_SAFE_INTEGER)[0]!;
        if (appliedKey(e) !== key)
          this.fail(
            `leader completeness violated: leader ${n.id} of term ${term} holds ${appliedKey(e)} at ${i}, but ${key} was applied there`,
          );
      }
    }
  }

  /** Log matching, checked entry by entry: (index, term) determines the content and the previous term. */
  private recordLogEntry(n: SimNode, e: Entry, prevTerm: number): void {
    const k = `${e.index}/${e.term}`;
    const content = contentKey(e);
    const seen = this.logEntries.get(k);
    if (!seen) {
      this.logEntries.set(k, { content, prevTerm });
      return;
    }
    if (seen.content !== content)
      this.fail(
        `log matching violated: node ${n.id} holds entry ${e.index} of term ${e.term} with other content than another log`,
      );
    if (prevTerm >= 0 && seen.prevTerm >= 0 && prevTerm !== seen.prevTerm)
      this.fail(
        `log matching violated: node ${n.id} holds entry ${e.index} of term ${e.term} after an entry of term ${prevTerm}; another log has term ${seen.prevTerm} there`,
      );
    if (seen.prevTerm < 0 && prevTerm >= 0) seen.prevTerm = prevTerm;
  }

  /** Log matching over each live node's whole log (storage + unstable). */
  checkAllLogs(): void {
    for (const n of this.upNodes()) {
      const log = n.raw!.raft.log;
      const first = log.firstIndex();
      const last = log.lastIndex();
      if (last < first) continue;
      const ents = log.slice(first, last + 1, Number.MAX_SAFE_INTEGER);
      if (ents.length !== last - first + 1)
        this.fail(`node ${n.id}: log slice [${first}, ${last}] returned ${ents.length} entries`);
      let prevTerm = log.termOrZero(first - 1);
      for (let i = 0; i < ents.length; i++) {
        const e = ents[i]!;
        if (e.index !== first + i) this.fail(`node ${n.id}: log entry at ${first + i} has index ${e.index}`);
        if (e.term < prevTerm)
          this.fail(`node ${n.id}: log terms go back at ${e.index} (${prevTerm} then ${e.term})`);
        this.recordLogEntry(n, e, prevTerm);
        prevTerm = e.term;
      }
    }
  }

  /** A state the node holds (after restart or snapshot) must repeat what was applied before. */
  private checkStatePrefix(n: SimNode, state: readonly string[], how: string): void {
    for (let i = 0; i < state.length; i++) {
      const index = i + 1;
      const key = state[i]!;
      const global = this.appliedAt[index];
      if (global !== key)
        this.fail(
          `state-machine safety violated: node ${n.id} (${how}) holds ${key} at ${index}, but ${global ?? "nothing"} was applied there`,
        );
      const mine = n.history[index];
      if (mine !== undefined && mine !== key)
        this.fail(
          `state-machine safety violated: node ${n.id} (${how}) holds ${key} at ${index}, but it applied ${mine} there before`,
        );
    }
  }

  private applyEntry(n: SimNode, e: Entry): void {
    if (e.index !== n.appliedIndex + 1)
      this.fail(
        `node ${n.id} applies entry ${e.index} after ${n.appliedIndex}: applied entries skip or repeat`,
      );
    const raft = n.raw!.raft;
    if (e.index > raft.log.committed)
      this.fail(`node ${n.id} applies entry ${e.index} beyond its commit index ${raft.log.committed}`);
    const key = appliedKey(e);
    const global = this.appliedAt[e.index];
    if (global === undefined) {
      this.appliedAt[e.index] = key;
      this.appliedTermBound[e.index] = this.maxTerm;
    } else if (global !== key) {
      this.fail(
        `state-machine safety violated: node ${n.id} applies ${key} at ${e.index}, but ${global} was applied there`,
      );
    }
    const mine = n.history[e.index];
    if (mine === undefined) n.history[e.index] = key;
    else if (mine !== key)
      this.fail(
        `state-machine safety violated: node ${n.id} re-applies ${key} at ${e.index}, but it applied ${mine} there before`,
      );
    n.state.push(key);
    if (e.type === EntryType.ConfChange) {
      const cc = decodeConfChange(e.data);
      try {
        n.confState = n.raw!.applyConfChange(cc);
      } catch (err) {
        this.fail(
          `node ${n.id} could not apply the committed conf change at ${e.index} ${JSON.stringify(cc)}: ${(err as Error).message}`,
        );
      }
      this.confChangesApplied++;
      this.trace(`node ${n.id} applied conf change ${e.index} → voters=[${n.confState.voters}]`);
    }
  }

  // ---------------------------------------------------------------------------- the Ready cycle

  private sendAll(n: SimNode, msgs: readonly Message[]): void {
    for (const m of msgs) this.net.send(m, this.now, n.incarnation);
  }

  /** Handles one Ready of a node the way the engine would, unless a crash was scheduled into it. */
  processReady(n: SimNode): void {
    const raw = n.rawNode();
    const rd = raw.ready();
    const crashAt = n.crashAt;
    if (crashAt === "before-persist") {
      // Messages may leave before the write; then the node dies and the write is lost.
      this.sendAll(n, rd.messages.slice(0, this.rng.intn(rd.messages.length + 1)));
      this.crash(n, "before persisting a Ready");
      return;
    }
    this.persist(n, rd);
    this.sendAll(n, rd.messages);
    this.sendAll(n, rd.messagesAfterPersist);
    if (crashAt === "after-persist") {
      this.crash(n, "after persisting a Ready");
      return;
    }
    const applyCount = crashAt === "mid-apply" ? this.rng.intn(rd.committedEntries.length + 1) : Infinity;
    for (let i = 0; i < rd.committedEntries.length; i++) {
      if (i >= applyCount) {
        this.crash(n, `after applying ${i} of ${rd.committedEntries.length} committed entries`);
        return;
      }
      this.applyEntry(n, rd.committedEntries[i]!);
    }
    if (crashAt === "mid-apply") {
      this.crash(n, "after applying a Ready");
      return;
    }
    raw.advance(rd);
    if (raw.raft.log.applied !== n.appliedIndex)
      this.fail(`node ${n.id}: raft says applied ${raw.raft.log.applied}, state machine ${n.appliedIndex}`);
    this.observe(n);
  }

  private persist(n: SimNode, rd: Ready): void {
    if (rd.snapshot) {
      const s = rd.snapshot;
      n.storage.applySnapshot(s);
      const state = decodeState(s);
      if (state.length !== s.metadata.index)
        this.fail(`node ${n.id}: installed snapshot at ${s.metadata.index} holds ${state.length} entries`);
      if (s.metadata.index <= n.appliedIndex)
        this.fail(
          `node ${n.id}: installs snapshot ${s.metadata.index} at or below applied ${n.appliedIndex}`,
        );
      this.checkStatePrefix(n, state, `snapshot ${s.metadata.index}`);
      for (let i = n.appliedIndex; i < state.length; i++) n.history[i + 1] = state[i]!;
      n.state = state;
      n.confState = s.metadata.confState;
      this.snapshotsInstalled++;
      this.trace(`node ${n.id} installs snapshot ${s.metadata.index}`);
    }
    if (rd.entries.length > 0) {
      n.storage.append(rd.entries);
      let prevTerm = -1;
      try {
        prevTerm = n.storage.term(rd.entries[0]!.index - 1);
      } catch {
        // compacted: unknown
      }
      for (const e of rd.entries) {
        this.recordLogEntry(n, e, prevTerm);
        prevTerm = e.term;
      }
    }
    if (rd.hardState) n.storage.setHardState(rd.hardState);
  }

  // ---------------------------------------------------------------------------- delivery

  private deliver(f: Flight): void {
    const m = f.m;
    const to = this.nodes.get(m.to);
    const sender = this.nodes.get(m.from);
    const senderNow = sender && sender.incarnation === f.senderIncarnation ? sender.raw : null;
    if (!to?.raw || this.net.isCut(m.from, m.to)) {
      this.net.droppedCount++;
      // The transport tells raft, sometimes (reports can be lost too).
      if (senderNow && this.rng.intn(2) === 0) {
        if (m.type === MessageType.Snap) senderNow.reportSnapshot(m.to, "failure");
        else senderNow.reportUnreachable(m.to);
      }
      return;
    }
    this.delivered++;
    try {
      to.raw.step(m);
    } catch (e) {
      // A forwarded proposal can be refused where it lands; that is a lost message, nothing more.
      if (!(e instanceof ProposalDroppedError)) {
        this.fail(
          `node ${to.id} failed to step ${messageTypeName(m.type)} from ${m.from} (term ${m.term}): ${(e as Error).stack}`,
        );
      }
    }
    this.observe(to);
    if (m.type === MessageType.Snap && senderNow && this.rng.intn(2) === 0)
      senderNow.reportSnapshot(m.to, "finish");
  }

  /** Handles Readys and delivers due messages until the cluster is quiet for this tick. */
  settle(maxRounds = 64): void {
    for (let round = 0; round < maxRounds; round++) {
      let busy = false;
      for (const n of shuffle(this.upNodes(), this.rng)) {
        while (n.raw?.hasReady()) {
          this.processReady(n);
          busy = true;
        }
      }
      const due = this.net.takeDue(this.now);
      for (const f of due) this.deliver(f);
      if (!busy && due.length === 0) return;
    }
  }

  tick(): void {
    this.now++;
    for (const n of shuffle(this.upNodes(), this.rng)) {
      n.raw!.tick();
      this.observe(n);
    }
    this.settle();
    for (const n of this.nodes.values()) {
      if (n.raw && n.snapshotRequested) {
        n.snapshotRequested = false;
        this.takeSnapshot(n);
      }
    }
    // A crash scheduled into a Ready that never came happens now, between Readys.
    for (const n of this.nodes.values()) if (n.crashAt) this.crash(n, "between Readys");
  }

  // ---------------------------------------------------------------------------- workload

  propose(n: SimNode, data: string[]): void {
    const raw = n.rawNode();
    try {
      if (data.length === 1) raw.propose(encoder.encode(data[0]));
      else raw.proposeBatch(data.map((d) => encoder.encode(d)));
      this.trace(`propose ${data.join(",")} at ${n.id}`);
    } catch (e) {
      if (!(e instanceof ProposalDroppedError)) throw e;
    }
    this.observe(n);
  }

  proposeConfChange(n: SimNode, cc: ConfChange): void {
    try {
      n.rawNode().proposeConfChange(cc);
      this.trace(`propose conf change ${JSON.stringify(cc)} at ${n.id}`);
    } catch (e) {
      if (!(e instanceof ProposalDroppedError)) throw e;
    }
    this.observe(n);
  }

  /** A random membership change that is valid against the node's current view of the configuration. */
  randomConfChange(at: SimNode): ConfChange | null {
    const cs = at.rawNode().raft.trk.confState();
    const rng = this.rng;
    if (cs.votersOutgoing.length > 0) {
      // Joint: raft leaves by itself unless the change was explicit; ask for it now and then anyway.
      return rng.intn(cs.autoLeave ? 4 : 2) === 0 ? { transition: "auto", changes: [] } : null;
    }
    const voters = new Set(cs.voters);
    const learners = new Set(cs.learners);
    const pick = <T>(xs: readonly T[]): T => xs[rng.intn(xs.length)]!;
    if (rng.intn(10) < 7) {
      const id = pick(this.ids);
      const options: ConfChangeType[] = [];
      if (!voters.has(id)) options.push("addVoter");
      if (!learners.has(id) && !(voters.has(id) && voters.size === 1)) options.push("addLearner");
      if ((voters.has(id) && voters.size > 1) || learners.has(id)) options.push("removeNode");
      if (options.length === 0) return null;
      return { transition: "auto", changes: [{ type: pick(options), nodeId: id }] };
    }
    const count = 1 + rng.intn(3);
    const chosen = shuffle([...this.ids], rng).slice(0, count);
    const types: ConfChangeType[] = ["addVoter", "addLearner", "removeNode"];
    const changes: ConfChangeSingle[] = chosen.map((nodeId) => ({ type: pick(types), nodeId }));
    const incoming = new Set(voters);
    for (const c of changes) {
      if (c.type === "addVoter") incoming.add(c.nodeId);
      else incoming.delete(c.nodeId);
    }
    if (incoming.size === 0) return null;
    // Several changes with "auto" go through a joint configuration; "implicit" makes even one do so;
    // "explicit" stays joint until someone proposes leaving (see above).
    const transitions: ConfChange["transition"][] =
      count === 1 ? ["implicit", "explicit"] : ["auto", "implicit", "explicit"];
    return { transition: transitions[rng.intn(transitions.length)]!, changes };
  }

  /** Writes a snapshot of the node's applied state, if newer than the stored one. */
  private takeSnapshot(n: SimNode): boolean {
    const applied = n.appliedIndex;
    if (applied <= n.storage.stored().metadata.index) return false;
    n.storage.createSnapshot(applied, n.confState, encodeState(n.state));
    return true;
  }

  /** Raft wants a snapshot to send: make a fresh one now, or say it is on its way. */
  private snapshotRequested(n: SimNode): void {
    if (!n.raw || n.appliedIndex <= n.storage.stored().metadata.index) return;
    if (n.snapshotRequested || this.rng.intn(3) === 0) {
      n.snapshotRequested = true;
      throw new SnapshotTemporarilyUnavailableError();
    }
    this.takeSnapshot(n);
  }

  /** Snapshots a node's applied state and discards log entries up to (about) there. */
  compact(n: SimNode): void {
    const raw = n.rawNode();
    const applied = n.appliedIndex;
    if (raw.raft.log.applied !== applied)
      this.fail(`node ${n.id}: raft applied ${raw.raft.log.applied} differs from state ${applied}`);
    this.takeSnapshot(n);
    // Keep a few entries after the snapshot now and then, as engines do for slow followers.
    const compactIndex = n.storage.stored().metadata.index - this.rng.intn(4);
    if (compactIndex <= n.storage.firstIndex() - 1) return;
    n.storage.compact(compactIndex);
    this.trace(`node ${n.id} snapshots at ${applied}, compacts to ${compactIndex}`);
  }

  private changePartition(): void {
    const rng = this.rng;
    const kind = rng.intn(5);
    if (kind === 0 || kind === 1) {
      this.net.healPartitions();
      this.trace("heal partitions");
    } else if (kind === 2) {
      const id = this.ids[rng.intn(this.ids.length)]!;
      this.net.isolate(id, this.ids);
      this.trace(`isolate ${id}`);
    } else if (kind === 3) {
      const shuffled = shuffle([...this.ids], rng);
      const k = 1 + rng.intn(shuffled.length - 1);
      this.net.healPartitions();
      this.net.split(shuffled.slice(0, k), shuffled.slice(k));
      this.trace(`split [${shuffled.slice(0, k)}] | [${shuffled.slice(k)}]`);
    } else {
      const from = this.ids[rng.intn(this.ids.length)]!;
      const to = this.ids[rng.intn(this.ids.length)]!;
      if (from !== to) {
        this.net.cutLink(from, to);
        this.trace(`cut ${from}>${to}`);
      }
    }
  }

  /** One tick of the fault phase: random faults and workload, then the tick itself. */
  private faultStep(): void {
    const p = this.params;
    const rng = this.rng;
    const up = this.upNodes();
    if (rng.intn(1000) < p.partitionPerMille) this.changePartition();
    if (up.length > 0 && rng.intn(1000) < p.crashPerMille) {
      const n = up[rng.intn(up.length)]!;
      const points: (CrashPoint | null)[] = [null, "before-persist", "after-persist", "mid-apply"];
      const point = points[rng.intn(points.length)]!;
      if (point === null) this.crash(n, "between Readys");
      else n.crashAt = point;
    }
    const down = [...this.nodes.values()].filter((n) => !n.raw);
    if (down.length > 0 && rng.intn(1000) < p.restartPerMille) this.restart(down[rng.intn(down.length)]!);
    const live = this.upNodes();
    if (live.length > 0 && rng.intn(100) < p.proposePct) {
      const n = live[rng.intn(live.length)]!;
      const count = rng.intn(4) === 0 ? 2 + rng.intn(3) : 1;
      const data: string[] = [];
      for (let i = 0; i < count; i++) data.push(`p${++this.proposals}`);
      this.propose(n, data);
    }
    const leader = this.leader();
    if (leader && rng.intn(100) < p.confChangePct) {
      // Mostly at the leader; sometimes at another node, which forwards it (built against its own view
      // of the membership, which the leader may refuse: the entry then becomes an empty one).
      const at = rng.intn(4) === 0 ? live[rng.intn(live.length)]! : leader;
      const cc = at.raw ? this.randomConfChange(at) : null;
      if (cc) this.proposeConfChange(at, cc);
    }
    if (live.length > 0 && rng.intn(100) < p.transferPct) {
      const n = live[rng.intn(live.length)]!;
      const to = this.ids[rng.intn(this.ids.length)]!;
      if (n.raw) {
        n.raw.transferLeader(to);
        this.observe(n);
        this.trace(`transfer leader to ${to} via ${n.id}`);
      }
    }
    if (live.length > 0 && rng.intn(100) < p.compactPct) {
      const n = live[rng.intn(live.length)]!;
      if (n.raw) this.compact(n);
    }
    this.tick();
  }

  // ---------------------------------------------------------------------------- the run

  run(): SimOutcome {
    const p = this.params;
    this.net.dropPct = p.dropPct;
    this.net.dupPct = p.dupPct;
    this.net.maxDelayTicks = p.maxDelayTicks;
    for (let t = 0; t < p.faultTicks; t++) this.faultStep();
    this.checkAllLogs();

    // Healing: a reliable network, everyone up, no churn.
    this.phase = "healing";
    this.trace("healing");
    this.net.healPartitions();
    this.net.dropPct = 0;
    this.net.dupPct = 0;
    this.net.maxDelayTicks = 0;
    for (const n of this.nodes.values()) this.restart(n);
    const limit = 60 * p.electionTicks;
    const healStart = this.now;
    let fresh = 0;
    let lastProposalAt = -Infinity;
    let done = false;
    for (let t = 0; t < limit && !done; t++) {
      this.tick();
      const leader = this.leader();
      if (!leader) continue;
      const r = leader.raw!.raft;
      const freshIndex = this.freshAppliedIndex(leader);
      if (freshIndex === 0) {
        if (this.now - lastProposalAt >= p.electionTicks) {
          lastProposalAt = this.now;
          this.propose(leader, [`fresh${++fresh}`]);
        }
        continue;
      }
      done = this.membersCaughtUp(leader, r.log.committed);
    }
    if (!done) {
      const leader = this.leader();
      this.fail(
        `liveness violated: ${limit} ticks after healing, ${
          leader
            ? `leader ${leader.id} has not committed a fresh proposal to every member`
            : "there is no leader"
        }`,
      );
    }
    this.checkAllLogs();
    return {
      ticks: this.now,
      healTicks: this.now - healStart,
      leaders: this.leaders.size,
      maxTerm: this.maxTerm,
      applied: this.appliedAt.length - 1,
      confChangesApplied: this.confChangesApplied,
      snapshotsInstalled: this.snapshotsInstalled,
      crashes: this.crashes,
      delivered: this.delivered,
      dropped: this.net.droppedCount,
    };
  }

  /** The index of a fresh (healing-phase) proposal the leader has applied, or 0. */
  private freshAppliedIndex(leader: SimNode): number {
    for (let i = leader.appliedIndex; i >= 1; i--) {
      const key = leader.state[i - 1]!;
      if (key.includes("/0/fresh")) return i;
    }
    return 0;
  }

  /** Whether every member of the leader's configuration is up and has applied up to `commit`. */
  private membersCaughtUp(leader: SimNode, commit: number): boolean {
    const cs = leader.raw!.raft.trk.confState();
    const members = new Set([...cs.voters, ...cs.votersOutgoing, ...cs.learners, ...cs.learnersNext]);
    if (!members.has(leader.id)) return false;
    for (const id of members) {
      const n = this.nodes.get(id);
      if (!n?.raw || n.appliedIndex < commit) return false;
    }
    return true;
  }
}

/** Runs one simulation and returns what happened; throws SimulationFailure on a violated property. */
export function simulate(params: SimParams): SimOutcome {
  return new Simulation(params).run();
}
