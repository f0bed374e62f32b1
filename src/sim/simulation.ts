/**
 * A deterministic cluster simulation: real engines, a real state machine and the real storage code, on
 * simulated disks and an in-memory network, on virtual time, with faults injected from one seed. Clients
 * run a workload through the engine's public API and their history is checked for linearizability;
 * safety invariants are checked as the run goes. Any failure replays from its seed.
 */
import { Engine, type EngineOptions } from "../engine/engine.js";
import { EngineOverloadedError, NotLeaderError, ProposalRefusedError } from "../engine/errors.js";
import { type RaftLogger, silentLogger } from "../raft/config.js";
import { SeededRandom } from "../raft/rand.js";
import { type Entry, type Message, MessageType, type NodeId, StateRole } from "../raft/types.js";
import { type CrashMode, SimFileSystem } from "../storage/sim-fs.js";
import { MemoryNetwork, MemoryTransport } from "../transport/memory-transport.js";
import { checkLinearizable, HistoryRecorder, type KvCall } from "./checker/index.js";
import { encodeKvCommand, type KvCommand, KvMachine, type KvResult } from "./kv-machine.js";
import { SimProcess } from "./process.js";
import { runScenario, SCENARIO_KINDS, type ScenarioKind, type ScenarioWorld } from "./scenarios.js";
import { ManualScheduler, ManualTimers } from "./virtual-time.js";

export const FAULT_KINDS = [
  "partition",
  "isolate-leader",
  "one-way",
  "lossy",
  "crash",
  "disk",
  "snapshot",
  "pause",
  "skew",
  "transfer",
  "membership",
  ...SCENARIO_KINDS,
] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];

/**
 * Known bugs, switched on in the engine and raft behind test-only options, to show the simulator finds
 * each (and names the property it breaks).
 */
export const BUG_NAMES = [
  "commit-earlier-term",
  "vote-before-fsync",
  "no-snapshot-failure-report",
  "lease-without-check-quorum",
] as const;
export type BugName = (typeof BUG_NAMES)[number];

export interface SimOptions {
  seed: number;
  nodes?: 3 | 5;
  /** Virtual ms of workload under faults, before the heal phase. */
  durationMs?: number;
  clients?: number;
  keys?: number;
  faults?: ReadonlySet<FaultKind>;
  /** Lease-based reads for this run (default: chosen by the seed). */
  leaseReads?: boolean;
  /** A readable line per event, for replaying one seed. */
  trace?: (line: string) => void;
  /** Bugs to switch on (tests of the simulator itself). */
  bugs?: ReadonlySet<BugName>;
  /** The engines' own log lines join the trace (verbose). */
  engineLogs?: boolean;
}

export interface SimStats {
  ops: number;
  okOps: number;
  failedOps: number;
  indeterminateOps: number;
  faults: Partial<Record<FaultKind, number>>;
  leaderChanges: number;
  snapshotsInstalled: number;
  virtualMs: number;
}

export interface SimResult {
  seed: number;
  ok: boolean;
  /** Each broken property, named. */
  failures: string[];
  stats: SimStats;
}

const TICK_MS = 100;
const ELECTION_TICKS = 10;
const STEP_MS = 10;
const OP_TIMEOUT_MS = 3_000;
/** Virtual ms the heal phase may take for the cluster to converge. */
const HEAL_LIMIT_MS = 60_000;

/** One node across its boots: the disk survives a crash, the process and engine do not. */
interface SimNode {
  readonly id: NodeId;
  readonly disk: SimFileSystem;
  rate: number;
  process: SimProcess | null;
  engine: Engine<KvResult> | null;
  machine: KvMachine | null;
  transport: MemoryTransport | null;
  /** Virtual time at which a crashed or failed node is booted again (heal boots it at once). */
  restartAt: number;
  pausedUntil: number;
  boots: number;
  /** How long an fdatasync takes on this node's disk, in virtual ms. */
  syncMs: number;
  /** Added by a membership change: it starts empty and joins an existing cluster. */
  readonly joined: boolean;
  /** Removed from the cluster (or never admitted): shut down for good. */
  retired: boolean;
}

export class Simulation {
  private readonly rng: SeededRandom;
  private readonly timers = new ManualTimers();
  private readonly sched = new ManualScheduler();
  private readonly network: MemoryNetwork;
  private readonly nodes = new Map<NodeId, SimNode>();
  /** The cluster's members as the simulation knows them (membership changes add and remove). */
  private ids: NodeId[];
  /** The voters the cluster started with. */
  private readonly initialIds: readonly NodeId[];
  private nextNodeId: number;
  /** A membership change in progress (one at a time). */
  private membership: Promise<void> | null = null;
  private readonly recorder = new HistoryRecorder();
  private readonly failures: string[] = [];
  private readonly appliedAt = new Map<number, string>();
  private readonly leaderOfTerm = new Map<number, NodeId>();
  /** The node that sent appends in each term (as the wire saw it). */
  private readonly senderOfTerm = new Map<number, NodeId>();
  private lastLeader: NodeId = 0;
  private readonly stats: SimStats = {
    ops: 0,
    okOps: 0,
    failedOps: 0,
    indeterminateOps: 0,
    faults: {},
    leaderChanges: 0,
    snapshotsInstalled: 0,
    virtualMs: 0,
  };
  private readonly o: Required<Omit<SimOptions, "trace" | "leaseReads" | "engineLogs">> & {
    leaseReads: boolean;
  };
  private readonly bug: (name: BugName) => boolean;
  private readonly engineLogs: boolean;
  private readonly trace: (line: string) => void;
  private stopped = false;
  /** The whole workload pauses until then. */
  private quietUntil = 0;
  private spread = false;
  private crashInElectionUntil = 0;
  private churnUntil = 0;
  private readonly termSeen = new Map<NodeId, number>();
  private nextValue = 1;
  /** The term of each committed index, as the first node to commit it held it. */
  private readonly committedTerms = new Map<number, { term: number; node: NodeId }>();
  private readonly checkedCommit = new Map<NodeId, number>();
  /** A scenario nemesis in progress: it owns the network until it ends. */
  private scenario: Promise<void> | null = null;
  /** When the faults injected so far are healed (0: nothing to heal). */
  private healAt = 0;
  /** The final heal has begun: scenarios stop. */
  private ending = false;
  /** Raft's maxMessageBytes for this run: small, so that catching up takes many appends, or tiny. */
  private readonly appendBytes: number;

  constructor(options: SimOptions) {
    this.rng = new SeededRandom(options.seed);
    this.o = {
      seed: options.seed,
      nodes: options.nodes ?? 3,
      durationMs: options.durationMs ?? 20_000,
      clients: options.clients ?? 6,
      keys: options.keys ?? 3,
      faults: options.faults ?? new Set(FAULT_KINDS),
      leaseReads: options.leaseReads ?? this.rng.intn(2) === 0,
      bugs: options.bugs ?? new Set(),
    };
    this.bug = (name) => this.o.bugs.has(name);
    // Tiny appends (about one entry each) let acknowledgements come back for part of a leader's log.
    this.appendBytes = this.rng.intn(2) === 0 ? 64 : 2048;
    if (this.bug("lease-without-check-quorum")) this.o.leaseReads = true;
    this.trace = options.trace ?? (() => {});
    this.engineLogs = options.engineLogs === true && options.trace !== undefined;
    this.network = new MemoryNetwork({
      schedule: this.sched.schedule,
      timers: this.timers,
      random: new SeededRandom(options.seed * 7 + 1),
    });
    this.ids = Array.from({ length: this.o.nodes }, (_, i) => i + 1);
    this.initialIds = [...this.ids];
    this.nextNodeId = this.o.nodes + 1;
    this.network.observe((from, _to, batch) => this.observeSends(from, batch));
    for (const id of this.ids) this.createNode(id, false);
  }

  private createNode(id: NodeId, joined: boolean): SimNode {
    const skewed = this.o.faults.has("skew");
    const n: SimNode = {
      id,
      disk: new SimFileSystem(new SeededRandom(this.o.seed * 31 + id)),
      // Within what a lease is built to tolerate: rates may differ by raft's maxClockDrift (1.1 by
      // default); 1.03 / 0.97 is about 1.06.
      rate: skewed ? 0.97 + this.rng.intn(61) / 1000 : 1,
      process: null,
      engine: null,
      machine: null,
      transport: null,
      restartAt: 0,
      pausedUntil: 0,
      boots: 0,
      syncMs: 1,
      joined,
      retired: false,
    };
    // Syncs take virtual time, so that a crash can land between a write and its sync.
    n.disk.delaySync = () => new Promise<void>((resolve) => this.timers.setTimeout(resolve, n.syncMs));
    this.nodes.set(id, n);
    return n;
  }

  private log(line: string): void {
    this.trace(`${String(this.timers.now).padStart(7)} ms  ${line}`);
  }

  private fail(property: string): void {
    if (this.failures.includes(property)) return;
    this.failures.push(property);
    this.log(`VIOLATION ${property}`);
  }

  // ------------------------------------------------------------------ nodes

  /** Starts booting a node; it serves once its engine has opened (which takes virtual time). */
  private boot(n: SimNode): void {
    n.boots++;
    const proc = new SimProcess(this.timers, this.sched, n.disk, n.rate);
    const machine = new KvMachine((e) => this.observeApply(n.id, e));
    const transport = new MemoryTransport({
      id: n.id,
      network: this.network,
      clusterId: "sim",
      fs: proc.fs,
      snapshotDir: "/node/incoming",
      snapshotSource: {
        open: (meta, signal) => this.requireEngine(n).snapshotSource().open(meta, signal),
        payloadBytes: (meta) => this.requireEngine(n).snapshotSource().payloadBytes!(meta),
      },
      chunkBytes: 4 * 1024,
      sliceBytes: 4 * 1024,
    });
    n.process = proc;
    n.machine = machine;
    n.transport = transport;
    const options: EngineOptions<KvResult> = {
      id: n.id,
      initialVoters: this.initialIds,
      join: n.joined,
      fs: proc.fs,
      dir: "/node/raft",
      stateMachine: machine,
      transport,
      timers: proc,
      clock: proc.clock,
      schedule: proc.schedule,
      random: new SeededRandom(this.o.seed * 1000 + n.id * 10 + n.boots),
      logger: this.engineLogger(n.id),
      tickMs: TICK_MS,
      snapshotEveryEntries: 40,
      trailingEntries: 10,
      keepSnapshots: 2,
      raft: {
        electionTicks: ELECTION_TICKS,
        heartbeatTicks: 1,
        // Small appends and a small window, so that catching up takes many rounds and acks come back
        // for parts of what a new leader sends.
        maxMessageBytes: this.appendBytes,
        maxInflightMessages: 8,
        preVote: true,
        checkQuorum: !this.bug("lease-without-check-quorum"),
        readOnly: this.o.leaseReads ? "lease-based" : "safe",
        ...(this.bug("no-snapshot-failure-report") ? { snapshotTimeoutTicks: 0 } : {}),
        unsafeTestingBugs: {
          commitEarlierTermByCounting: this.bug("commit-earlier-term"),
          leaseWithoutCheckQuorum: this.bug("lease-without-check-quorum"),
        },
      },
      testing: {
        sendVotesBeforeFsync: this.bug("vote-before-fsync"),
        dropSnapshotFailureReports: this.bug("no-snapshot-failure-report"),
      },
    };
    Engine.open(options).then(
      (engine) => {
        if (n.process !== proc) return; // crashed while booting: this engine's process is dead
        n.engine = engine;
        this.log(`node ${n.id} booted (boot ${n.boots}, clock rate ${n.rate})`);
      },
      (err: unknown) => {
        if (n.process !== proc || !proc.isAlive) return; // crashed while booting
        proc.kill();
        n.process = null;
        n.engine = null;
        n.machine = null;
        void n.transport?.close();
        n.transport = null;
        if (isInjectedDiskFault(err)) {
          // A disk fault armed while the node was down fails its boot: it stops, and boots again later.
          this.log(`node ${n.id} failed to boot: ${String(err)}`);
          n.restartAt = this.timers.now + 500 + this.rng.intn(2_000);
          return;
        }
        // A node that cannot come back from what a crash left on its disk has lost data.
        this.fail(`node ${n.id} could not restart from its disk: ${String(err)}`);
        n.restartAt = Number.POSITIVE_INFINITY;
      },
    );
  }

  /** With `engineLogs`, the engines' warnings (and info lines) join the trace. */
  private engineLogger(id: NodeId): RaftLogger {
    if (!this.engineLogs) return silentLogger;
    const line = (level: string) => (msg: string, fields?: Record<string, unknown>) =>
      this.log(`  [node ${id} ${level}] ${msg}${fields ? ` ${JSON.stringify(fields)}` : ""}`);
    return { debug: () => {}, info: line("info"), warn: line("warn") };
  }

  private requireEngine(n: SimNode): Engine<KvResult> {
    if (n.engine === null) throw new Error(`node ${n.id} is down`);
    return n.engine;
  }

  /** A power loss: the process dies, and the disk keeps what was synced (torn writes, per mode). */
  private crash(n: SimNode, mode: CrashMode, downForMs: number): void {
    if (n.process === null) return;
    n.process.kill();
    void n.transport?.close();
    n.disk.crash(mode);
    n.disk.clearFaults();
    n.process = null;
    n.engine = null;
    n.machine = null;
    n.transport = null;
    n.restartAt = this.timers.now + downForMs;
    this.log(`node ${n.id} crashed (${mode}), down for ${downForMs} ms`);
  }

  private observeApply(id: NodeId, e: Entry): void {
    let h = 0x811c9dc5;
    for (const b of e.data) h = Math.imul(h ^ b, 0x01000193) >>> 0;
    const sig = `${e.term}:${h.toString(16)}`;
    const seen = this.appliedAt.get(e.index);
    if (seen === undefined) this.appliedAt.set(e.index, sig);
    else if (seen !== sig)
      this.fail(`applied entries differ at index ${e.index}: ${seen} before, ${sig} on node ${id}`);
  }

  private live(): SimNode[] {
    return [...this.nodes.values()].filter((n) => n.engine !== null && n.engine.failedWith === null);
  }

  /**
   * Election safety, seen on the wire: only a leader sends appends, heartbeats and snapshots, so every
   * such message of a term must come from one node. (Catches leaders that lead between two steps.)
   */
  private observeSends(from: NodeId, batch: readonly Message[]): void {
    for (const m of batch) {
      if (m.type !== MessageType.App && m.type !== MessageType.Heartbeat && m.type !== MessageType.Snap)
        continue;
      const known = this.senderOfTerm.get(m.term) ?? this.leaderOfTerm.get(m.term);
      if (known === undefined) this.senderOfTerm.set(m.term, from);
      else if (known !== from) this.fail(`two leaders in term ${m.term}: nodes ${known} and ${from}`);
    }
  }

  /** Observes every live node: at most one leader per term, ever. */
  private checkLeaders(): void {
    for (const n of this.live()) {
      const s = n.engine!.status();
      if (s.softState.role !== StateRole.Leader) continue;
      const term = s.hardState.term;
      const known = this.leaderOfTerm.get(term) ?? this.senderOfTerm.get(term);
      if (!this.leaderOfTerm.has(term)) {
        this.leaderOfTerm.set(term, n.id);
        if (this.lastLeader !== n.id) this.stats.leaderChanges++;
        this.lastLeader = n.id;
        this.log(`node ${n.id} leads term ${term}`);
        this.checkLeaderCompleteness(n, term);
        if (this.timers.now < this.churnUntil) {
          const leader = n;
          const engine = n.engine;
          this.timers.setTimeout(() => {
            const down = [...this.nodes.values()].filter((x) => x.process === null && !x.retired).length;
            if (leader.engine !== engine || down >= Math.floor((this.ids.length - 1) / 2)) return;
            this.crash(leader, this.rng.intn(2) ? "lose-all-unsynced" : "random", 100 + this.rng.intn(1_000));
          }, this.rng.intn(300));
        }
      }
      if (known !== undefined && known !== n.id)
        this.fail(`two leaders in term ${term}: nodes ${known} and ${n.id}`);
    }
  }

  // ------------------------------------------------------------------ time

  private async step(ms = STEP_MS): Promise<void> {
    this.timers.advance(ms);
    try {
      await this.sched.drain(100_000);
    } catch {
      // Seen only once safety was already broken: a follower and a leader that disagree on committed
      // entries can bounce appends for ever without time passing.
      this.fail("livelock: the nodes exchanged messages for 100,000 turns with no time passing");
      return;
    }
    this.stats.virtualMs = this.timers.now;
    for (const n of this.nodes.values()) {
      if (n.engine?.failedWith) {
        this.log(`node ${n.id} stopped: ${n.engine.failedWith.message}`);
        // Injected disk faults stop an engine by design; anything else is a broken invariant (raft
        // assumes its own safety properties, and trips over a state they forbid).
        if (!isInjectedDiskFault(n.engine.failedWith.cause))
          this.fail(
            `node ${n.id} stopped on an error no injected fault explains (a broken invariant): ${n.engine.failedWith.message}`,
          );
        this.crash(n, "lose-all-unsynced", 500 + this.rng.intn(2000));
      }
      if (n.process?.isPaused && this.timers.now >= n.pausedUntil) {
        n.process.resume();
        this.log(`node ${n.id} resumed`);
      }
      if (n.process === null && !n.retired && this.timers.now >= n.restartAt) this.boot(n);
    }
    this.checkLeaders();
    this.checkCommittedLogs();
    if (this.timers.now < this.crashInElectionUntil) this.maybeCrashInElection();
    this.recordTerms();
  }

  /** A new leader's log holds every entry committed so far, as it was committed. */
  private checkLeaderCompleteness(n: SimNode, term: number): void {
    const engine = n.engine!;
    const last = engine.status().lastIndex;
    for (const [index, c] of this.committedTerms) {
      const held = engine.termOf(index);
      if (held === c.term || (held === 0 && index <= last)) continue; // equal, or compacted into a snapshot
      this.fail(
        `leader completeness: node ${n.id} leads term ${term} without committed entry ${index} (term ${c.term}, committed on node ${c.node}); it holds ${held === 0 ? "nothing" : `term ${held}`} there`,
      );
      return;
    }
  }

  /** Log matching and leader completeness: an index, once committed anywhere, has one term everywhere. */
  private checkCommittedLogs(): void {
    for (const n of this.live()) {
      const engine = n.engine!;
      const commit = engine.status().hardState.commit;
      for (let i = (this.checkedCommit.get(n.id) ?? 0) + 1; i <= commit; i++) {
        const term = engine.termOf(i);
        if (term === 0) continue; // compacted: checked when it was in the log, or covered by a snapshot
        const seen = this.committedTerms.get(i);
        if (seen === undefined) this.committedTerms.set(i, { term, node: n.id });
        else if (seen.term !== term)
          this.fail(
            `committed entries differ at index ${i}: term ${seen.term} on node ${seen.node}, term ${term} on node ${n.id} (a committed entry was overwritten)`,
          );
      }
      if (commit > (this.checkedCommit.get(n.id) ?? 0)) this.checkedCommit.set(n.id, commit);
    }
  }

  /**
   * Armed by a crash fault: in the step where a node moved to a new term (an election under way, votes
   * on the wire and not yet synced), crash a node that did: a voter, or the newly elected leader.
   */
  private maybeCrashInElection(): void {
    const live = this.live();
    const down = this.ids.length - live.length;
    if (down >= Math.floor((this.ids.length - 1) / 2)) return;
    const moved = live.filter((n) => n.engine!.status().hardState.term > (this.termSeen.get(n.id) ?? 0));
    if (moved.length === 0) return;
    // Most often a node that has just voted for another: its vote is what must survive the crash.
    const voters = moved.filter((n) => {
      const hs = n.engine!.status().hardState;
      return hs.vote !== 0 && hs.vote !== n.id;
    });
    const pool = voters.length > 0 && this.rng.intn(4) !== 0 ? voters : moved;
    this.crashInElectionUntil = 0;
    const n = pool[this.rng.intn(pool.length)]!;
    this.log(`node ${n.id} crashes in the middle of an election`);
    this.crash(n, "lose-all-unsynced", this.rng.intn(300));
  }

  /** The term each node had at the end of the last step (see maybeCrashInElection). */
  private recordTerms(): void {
    for (const n of this.live()) this.termSeen.set(n.id, n.engine!.status().hardState.term);
  }

  private shuffled<T>(items: readonly T[]): T[] {
    const out = [...items];
    for (let i = out.length - 1; i > 0; i--) {
      const j = this.rng.intn(i + 1);
      [out[i], out[j]] = [out[j]!, out[i]!];
    }
    return out;
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => this.timers.setTimeout(resolve, ms));
  }

  // ------------------------------------------------------------------ clients

  private randomCall(key: string): KvCall {
    const v = `v${this.nextValue++}`;
    switch (this.rng.intn(6)) {
      case 0:
      case 1:
        return { f: "get", input: { key } };
      case 2:
        return { f: "put", input: { key, value: v } };
      case 3:
        return { f: "append", input: { key, suffix: `${v},` } };
      case 4:
        return {
          f: "cas",
          input: {
            key,
            expected: this.rng.intn(3) === 0 ? null : `v${this.nextValue - 1 - this.rng.intn(4)}`,
            value: v,
          },
        };
      default:
        return { f: "delete", input: { key } };
    }
  }

  private async client(c: number): Promise<void> {
    let guess: NodeId = this.ids[c % this.ids.length]!;
    while (!this.stopped) {
      const key = `k${this.rng.intn(this.o.keys)}`;
      const call = this.randomCall(key);
      // While a scenario spreads the workload, a client often asks any node, as clients behind a load
      // balancer do: a stale leader and a new one then both see traffic.
      const node = this.nodes.get(
        this.spread && this.rng.intn(4) === 0 ? this.ids[this.rng.intn(this.ids.length)]! : guess,
      )!;
      const invokedAt = this.timers.now;
      const id = this.recorder.invoke(c, call, invokedAt);
      this.stats.ops++;
      const outcome = await this.perform(node, call);
      if (outcome.kind === "ok") {
        // Virtual time moves in steps: an answer within the step of its call is placed just after it.
        this.recorder.returned(id, outcome.output, Math.max(this.timers.now, invokedAt + 0.001));
        this.stats.okOps++;
      } else if (outcome.kind === "failed") {
        this.recorder.failed(id);
        this.stats.failedOps++;
      } else {
        this.recorder.indeterminate(id);
        this.stats.indeterminateOps++;
      }
      if (outcome.kind !== "ok") {
        const lead = outcome.leader;
        guess = lead !== undefined && lead !== 0 ? lead : this.ids[this.rng.intn(this.ids.length)]!;
      }
      // Bursty load: now and then a client goes quiet for a while; and every client waits out a quiet
      // phase of the whole workload (logs stop moving, so any follower is up to date).
      await this.sleep(this.rng.intn(20) === 0 ? 500 + this.rng.intn(2_500) : this.rng.intn(40));
      while (this.timers.now < this.quietUntil)
        await this.sleep(Math.min(50, this.quietUntil - this.timers.now));
    }
  }

  private async perform(
    node: SimNode,
    call: KvCall,
  ): Promise<{ kind: "ok"; output: KvResult } | { kind: "failed" | "indeterminate"; leader?: NodeId }> {
    const engine = node.engine;
    const machine = node.machine;
    if (engine === null || machine === null) return { kind: "failed" };
    const abort = new AbortController();
    const timer = this.timers.setTimeout(() => abort.abort(new Error("client timeout")), OP_TIMEOUT_MS);
    try {
      if (call.f === "get") {
        await engine.linearizableRead({ signal: abort.signal });
        return { kind: "ok", output: machine.get(call.input.key) };
      }
      const { result } = await engine.propose(encodeKvCommand(commandOf(call)), {
        signal: abort.signal,
      });
      return { kind: "ok", output: result };
    } catch (err) {
      // Refused before it reached raft: it did not take effect.
      if (err instanceof NotLeaderError) return { kind: "failed", leader: err.leader };
      if (err instanceof EngineOverloadedError || err instanceof ProposalRefusedError)
        return { kind: "failed" };
      return { kind: "indeterminate" };
    } finally {
      this.timers.clearTimeout(timer);
    }
  }

  // ------------------------------------------------------------------ faults

  private count(kind: FaultKind): void {
    this.stats.faults[kind] = (this.stats.faults[kind] ?? 0) + 1;
  }

  private leaderNode(): SimNode | undefined {
    return this.live().find((n) => n.engine!.status().softState.role === StateRole.Leader);
  }

  private injectFault(): void {
    const kinds = FAULT_KINDS.filter((k) => this.o.faults.has(k) && k !== "skew");
    if (kinds.length === 0) return;
    let kind = kinds[this.rng.intn(kinds.length)]!;
    // A scenario takes the network over for seconds: in a mix, it is drawn a fifth as often.
    const plain = kinds.filter((k) => !isScenario(k));
    if (isScenario(kind) && plain.length > 0 && this.rng.intn(5) !== 0)
      kind = plain[this.rng.intn(plain.length)]!;
    const pick = () => this.ids[this.rng.intn(this.ids.length)]!;
    const down = [...this.nodes.values()].filter((n) => n.process === null && !n.retired).length;
    switch (kind) {
      case "partition": {
        const mode = this.rng.intn(2) ? "error" : "blackhole";
        if (this.rng.intn(2) === 0) {
          // A partial partition: one link cut both ways, everyone else still connected (what breaks
          // leases that followers do not honour).
          const a = pick();
          const b = pick();
          if (a === b) return;
          this.network.partition([a], [b], mode);
          this.log(`link ${a} <-> ${b} cut`);
          break;
        }
        const shuffled = this.shuffled(this.ids);
        const cut = 1 + this.rng.intn(this.ids.length - 1);
        this.network.partition(shuffled.slice(0, cut), shuffled.slice(cut), mode);
        this.log(`partition ${shuffled.slice(0, cut)} | ${shuffled.slice(cut)}`);
        break;
      }
      case "isolate-leader": {
        const l = this.leaderNode();
        if (!l) return;
        this.network.partition(
          [l.id],
          this.ids.filter((i) => i !== l.id),
        );
        this.log(`isolate leader ${l.id}`);
        break;
      }
      case "one-way": {
        const a = pick();
        const b = pick();
        if (a === b) return;
        this.network.drop(a, b, undefined, "blackhole");
        this.log(`one-way: ${a} -> ${b} dropped`);
        break;
      }
      case "lossy": {
        for (const a of this.ids)
          for (const b of this.ids)
            if (a !== b)
              this.network.setChaos(a, b, {
                lossRate: this.rng.intn(30) / 100,
                duplicateRate: this.rng.intn(50) / 100,
                maxJitterMs: this.rng.intn(1_000),
              });
        this.log("links lossy: loss, duplication, reordering");
        break;
      }
      case "crash": {
        // At most a minority down at once, so that the cluster can make progress meanwhile.
        if (down >= Math.floor((this.ids.length - 1) / 2)) return;
        const variant = this.rng.intn(4);
        if (variant === 3) {
          // Leader churn: for a while every new leader crashes soon after it is elected, often before
          // it has replicated its own first entry (the ground for the raft paper's Figure 8).
          this.churnUntil = this.timers.now + 3_000 + this.rng.intn(5_000);
          this.log(`leader churn until ${this.churnUntil} ms`);
          break;
        }
        if (variant === 2) {
          // Armed: a node crashes in the step of the next election, when votes are on the wire and
          // not yet synced.
          this.crashInElectionUntil = this.timers.now + 10_000;
          this.log("a node will crash during the next election");
          break;
        }
        const n = variant === 1 ? (this.leaderNode() ?? this.nodes.get(pick())!) : this.nodes.get(pick())!;
        this.crash(n, this.rng.intn(2) ? "lose-all-unsynced" : "random", 200 + this.rng.intn(3000));
        break;
      }
      case "disk": {
        const n = this.nodes.get(pick())!;
        if (this.rng.intn(3) === 0) {
          n.syncMs = 50 + this.rng.intn(500);
          this.log(`node ${n.id}: fsyncs take ${n.syncMs} ms`);
          break;
        }
        const code = this.rng.intn(2) ? "EIO" : "ENOSPC";
        n.disk.failNext(this.rng.intn(2) ? "datasync" : "write", code);
        this.log(`node ${n.id}: the next disk write or sync fails with ${code}`);
        break;
      }
      case "snapshot": {
        const a = pick();
        const b = pick();
        if (a === b) return;
        // The stream of a small snapshot is a few hundred bytes (a large one, some KiB).
        const offset = this.rng.intn(this.rng.intn(4) === 0 ? 20_000 : 400);
        if (this.rng.intn(2)) this.network.cutSnapshotAt(a, b, offset);
        else this.network.corruptSnapshotByte(a, b, offset);
        this.log(`the next snapshot ${a} -> ${b} is cut or corrupted`);
        break;
      }
      case "pause": {
        const n = this.nodes.get(pick())!;
        if (!n.process) return;
        n.process.pause();
        n.pausedUntil = this.timers.now + 200 + this.rng.intn(3 * ELECTION_TICKS * TICK_MS);
        this.log(`node ${n.id} paused until ${n.pausedUntil} ms`);
        break;
      }
      case "membership": {
        if (this.membership !== null) return;
        const l = this.leaderNode();
        if (!l) return;
        this.membership = this.changeMembership(l.engine!)
          .catch((err: unknown) => this.fail(`a membership change threw: ${String(err)}`))
          .finally(() => {
            this.membership = null;
          });
        break;
      }
      case "figure-8":
      case "crash-after-vote":
      case "lease-bridge":
      case "snapshot-cut":
        this.startScenario(kind);
        break;
      case "transfer": {
        const l = this.leaderNode();
        if (!l) return;
        const to = pick();
        if (to === l.id) return;
        l.engine!.transferLeadership(to).catch(() => undefined);
        this.log(`leader ${l.id} asked to transfer to ${to}`);
        break;
      }
      default:
        return;
    }
    this.count(kind);
  }

  /**
   * One membership change, with faults going on: below the starting size plus one, a new empty node
   * joins as a learner and is promoted once it has had time to catch up; at it, a follower is removed
   * and then shut down for good. Node ids are never reused (a removed node's late messages must not
   * speak for a newcomer).
   */
  private async changeMembership(leader: Engine<KvResult>): Promise<void> {
    if (this.ids.length <= this.o.nodes) {
      const id = this.nextNodeId++;
      const n = this.createNode(id, true);
      this.ids = [...this.ids, id];
      this.boot(n);
      this.log(`membership: node ${id} joins as a learner`);
      if (!(await this.settled(leader.addLearner(id))) && !this.inConfig(id)) {
        this.retire(n, "its admission was not applied");
        return;
      }
      await this.sleep(300 + this.rng.intn(2_000));
      const now = this.leaderNode()?.engine;
      if (now && (await this.settled(now.promoteLearner(id)))) this.log(`membership: node ${id} is a voter`);
      return;
    }
    const followers = this.live().filter(
      (n) => n.engine !== leader && this.ids.includes(n.id) && this.voters().includes(n.id),
    );
    if (followers.length === 0 || this.voters().length <= 3) return;
    const victim = followers[this.rng.intn(followers.length)]!;
    this.log(`membership: node ${victim.id} is being removed`);
    if ((await this.settled(leader.removeServer(victim.id))) || !this.inConfig(victim.id))
      this.retire(victim, "removed from the cluster");
  }

  /** Whether a membership change completed (false on refusal, or after 5 s of virtual time). */
  private async settled(p: Promise<unknown>): Promise<boolean> {
    let timer: ReturnType<ManualTimers["setTimeout"]> | undefined;
    const timeout = new Promise<boolean>((resolve) => {
      timer = this.timers.setTimeout(() => resolve(false), 5_000);
    });
    const outcome = await Promise.race([
      p.then(
        () => true,
        () => false,
      ),
      timeout,
    ]);
    if (timer !== undefined) this.timers.clearTimeout(timer);
    return outcome;
  }

  /** The voters in the current leader's configuration (the initial ones while there is no leader). */
  private voters(): readonly NodeId[] {
    const leader = this.leaderNode();
    return leader ? leader.engine!.status().config.voters : this.ids;
  }

  private inConfig(id: NodeId): boolean {
    const leader = this.leaderNode();
    if (leader === undefined) return true;
    const cfg = leader.engine!.status().config;
    return cfg.voters.includes(id) || cfg.learners.includes(id);
  }

  /** Shuts a node down for good and drops it from the members. */
  private retire(n: SimNode, why: string): void {
    this.log(`membership: node ${n.id} retired (${why})`);
    this.ids = this.ids.filter((i) => i !== n.id);
    n.retired = true;
    n.restartAt = Number.POSITIVE_INFINITY;
    if (n.process !== null) this.crash(n, "lose-all-unsynced", 0);
    n.restartAt = Number.POSITIVE_INFINITY;
  }

  private startScenario(kind: ScenarioKind): void {
    this.log(`scenario ${kind}`);
    this.scenario = runScenario(kind, this.world())
      .catch((err: unknown) => this.fail(`scenario ${kind} threw: ${String(err)}`))
      .finally(() => {
        this.scenario = null;
        this.quietUntil = 0;
        this.spread = false;
        if (!this.ending) this.healAt = this.timers.now + 500 + this.rng.intn(2_000);
      });
  }

  private world(): ScenarioWorld {
    const leaderAmong = (among: readonly NodeId[]) =>
      this.live().find((n) => among.includes(n.id) && n.engine!.status().softState.role === StateRole.Leader)
        ?.id;
    return {
      ids: this.ids,
      network: this.network,
      rng: this.rng,
      leader: (among = this.ids) => leaderAmong(among),
      allUp: () => this.live().length === this.ids.length,
      term: (id) => this.nodes.get(id)!.engine?.status().hardState.term ?? 0,
      logBounds: (id) => {
        const st = this.nodes.get(id)!.engine?.status();
        return st === undefined ? null : { first: st.firstIndex, last: st.lastIndex };
      },
      crash: (id, downForMs) => {
        if (!this.ending) this.crash(this.nodes.get(id)!, "lose-all-unsynced", downForMs);
      },
      schedule: (fn) => this.sched.schedule(fn),
      spread: (on) => {
        this.spread = on;
      },
      quiet: (on) => {
        this.quietUntil = on ? Number.POSITIVE_INFINITY : 0;
      },
      waitFor: async (pred, timeoutMs) => {
        const deadline = this.timers.now + timeoutMs;
        for (;;) {
          if (this.ending) return false;
          if (pred()) return true;
          if (this.timers.now >= deadline) return false;
          await this.sleep(STEP_MS);
        }
      },
      pause: async (ms) => {
        await this.sleep(ms);
        return !this.ending;
      },
      log: (line) => this.log(line),
    };
  }

  private heal(): void {
    this.network.heal();
    for (const a of this.ids) for (const b of this.ids) this.network.delay(a, b, 0);
    for (const n of this.nodes.values()) {
      n.syncMs = 1;
      n.disk.clearFaults();
      if (n.process?.isPaused) n.process.resume();
      if (n.process === null && !n.retired) n.restartAt = this.timers.now;
    }
  }

  // ------------------------------------------------------------------ the run

  async run(): Promise<SimResult> {
    for (const n of this.nodes.values()) this.boot(n);
    const clients = Array.from({ length: this.o.clients }, (_, c) => this.client(c));
    let nextFaultAt = 2_000;
    while (this.timers.now < this.o.durationMs && this.failures.length === 0) {
      // A scenario owns the network (and the workload's pace) until it ends.
      if (this.scenario === null) {
        if (this.timers.now >= nextFaultAt && this.rng.intn(4) === 0) {
          this.quietUntil = this.timers.now + 500 + this.rng.intn(2_000);
        }
        if (this.timers.now >= nextFaultAt) {
          if (this.healAt === 0 || this.rng.intn(3) === 0) this.injectFault();
          nextFaultAt = this.timers.now + 100 + this.rng.intn(1_000);
          if (this.healAt === 0 && this.scenario === null)
            this.healAt = this.timers.now + 1_000 + this.rng.intn(4_000);
        }
        if (this.healAt > 0 && this.timers.now >= this.healAt) {
          this.heal();
          this.log("heal");
          this.healAt = 0;
        }
      }
      await this.step();
    }
    this.ending = true;
    while ((this.scenario !== null || this.membership !== null) && this.failures.length === 0)
      await this.step();
    this.stopped = true;
    // A broken property is named already; a broken cluster need not be driven further.
    if (this.failures.length > 0) return this.finish();
    this.heal();
    this.log("final heal: the cluster must converge");
    await this.converge();
    if (this.failures.length > 0) return this.finish();
    // Clients finish their last operation (each has a timeout) or pause; time must go on meanwhile.
    let clientsDone = false;
    const allDone = Promise.all(clients).then(() => {
      clientsDone = true;
    });
    for (let t = 0; !clientsDone && t < 2 * OP_TIMEOUT_MS + 5_000; t += 100) await this.step(100);
    if (!clientsDone) this.fail("a client never finished its last operation");
    else await allDone;
    if (this.failures.length === 0) await this.finalReads();
    this.checkHistory();
    return this.finish();
  }

  private finish(): SimResult {
    for (const n of this.nodes.values()) {
      n.process?.kill();
    }
    this.stats.snapshotsInstalled = this.network.stats.snapshotsConfirmed;
    return { seed: this.o.seed, ok: this.failures.length === 0, failures: this.failures, stats: this.stats };
  }

  /** After the heal every node must be up and hold the leader's state. */
  private async converge(): Promise<void> {
    const deadline = this.timers.now + HEAL_LIMIT_MS;
    while (this.timers.now < deadline && this.failures.length === 0) {
      await this.step(50);
      const leader = this.leaderNode();
      // A removal that timed out may have been applied after all: the leader's configuration decides.
      if (leader && this.membership === null)
        for (const id of this.ids)
          if (!this.inConfig(id)) this.retire(this.nodes.get(id)!, "not in the configuration");
      const live = this.live().filter((n) => this.ids.includes(n.id));
      if (live.length !== this.ids.length || !leader) continue;
      const commit = leader.engine!.status().hardState.commit;
      if (live.every((n) => n.engine!.status().applied >= commit && n.machine!.applied <= commit)) {
        const dumps = new Set(live.map((n) => n.machine!.dump()));
        if (dumps.size === 1) return;
      }
    }
    if (this.failures.length > 0) return;
    const views = [...this.nodes.values()].map((n) => {
      const s = n.engine?.status();
      if (!s) return `node ${n.id}: down`;
      const progress = [...(s.progress ?? [])]
        .map(
          ([id, p]) =>
            `${id}:${p.state} match ${p.match} next ${p.next}${p.paused ? " paused" : ""}${p.recentActive ? " active" : ""} inflight ${p.inflightMessages} pending snap ${p.pendingSnapshot}`,
        )
        .join(", ");
      return `node ${n.id}: ${s.softState.role} term ${s.hardState.term} commit ${s.hardState.commit} applied ${s.applied} first ${s.firstIndex} last ${s.lastIndex}${progress ? ` [${progress}]` : ""}`;
    });
    this.fail(`the cluster did not converge within ${HEAL_LIMIT_MS} ms after healing (${views.join("; ")})`);
  }

  /** One more linearizable read of every key, through the leader, recorded like any other. */
  private async finalReads(): Promise<void> {
    for (let k = 0; k < this.o.keys; k++) {
      const call: KvCall = { f: "get", input: { key: `k${k}` } };
      for (let attempt = 0; attempt < 20; attempt++) {
        const leader = this.leaderNode();
        if (!leader) {
          await this.step(100);
          continue;
        }
        const id = this.recorder.invoke("final", call, this.timers.now);
        const pending = this.perform(leader, call);
        let settled = false;
        void pending.finally(() => {
          settled = true;
        });
        while (!settled) await this.step();
        const outcome = await pending;
        if (outcome.kind === "ok") {
          this.recorder.returned(id, outcome.output, this.timers.now);
          break;
        }
        if (outcome.kind === "failed") this.recorder.failed(id);
        else this.recorder.indeterminate(id);
      }
    }
  }

  private checkHistory(): void {
    const result = checkLinearizable(this.recorder.history());
    if (result.ok) return;
    if (result.verdict === "violation")
      this.fail(`not linearizable (acknowledged writes lost or reads stale): ${result.explanation}`);
    else this.fail(`linearizability unknown: ${result.explanation}`);
  }
}

function isScenario(kind: FaultKind): kind is ScenarioKind {
  return (SCENARIO_KINDS as readonly string[]).includes(kind);
}

/** Whether an engine stopped on a disk error the simulator injected (EIO or ENOSPC), however wrapped. */
function isInjectedDiskFault(err: unknown): boolean {
  for (let e = err, depth = 0; e instanceof Error && depth < 8; e = e.cause, depth++) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === "EIO" || code === "ENOSPC") return true;
  }
  return false;
}

export async function simulate(options: SimOptions): Promise<SimResult> {
  return new Simulation(options).run();
}

/** The raft command a client's write stands for. */
function commandOf(call: Exclude<KvCall, { f: "get" }>): KvCommand {
  switch (call.f) {
    case "put":
      return { f: "put", key: call.input.key, value: call.input.value };
    case "delete":
      return { f: "delete", key: call.input.key };
    case "cas":
      return { f: "cas", key: call.input.key, expected: call.input.expected, value: call.input.value };
    case "append":
      return { f: "append", key: call.input.key, suffix: call.input.suffix };
  }
}
