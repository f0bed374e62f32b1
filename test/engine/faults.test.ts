/**
 * Acceptance tests of the engine under network faults, with real engines over the in-memory transport,
 * simulated disks and virtual time (manual timers and scheduler, seeded randomness; no clock is read).
 *
 * (A) A blackholed follower does not slow the others, and what is queued for it stays bounded.
 * (B) Snapshot streams cut or corrupted on the way fail on the receiver with typed errors that say how
 *     many bytes arrived; the leader is told, sends the snapshot again, and the follower ends in its state.
 *
 * White-box probes: where no public view exists yet, a few private fields are read (never written): the
 * leader's per-peer dispatchers and their lanes, and the engine's own queues. One array method is wrapped
 * to watch a lane's high-water mark; it only observes.
 */
import assert from "node:assert/strict";
import { before, describe, it } from "node:test";
import type { PeerDispatcher } from "../../src/engine/dispatch.js";
import type { Engine } from "../../src/engine/engine.js";
import type { DispatchReport } from "../../src/engine/reports.js";
import type { RaftLogger } from "../../src/raft/config.js";
import { SeededRandom } from "../../src/raft/rand.js";
import { type Message, MessageType, type NodeId } from "../../src/raft/types.js";
import { SnapshotCorruptError, SnapshotTruncatedError } from "../../src/transport/errors.js";
import {
  DATA_OVERHEAD_BYTES,
  encodeHeaderFrame,
  FRAME_PREFIX_BYTES,
  TRAILER_BODY_BYTES,
} from "../../src/transport/snapshot-stream.js";
import {
  type ClusterOptions,
  type EngineCluster,
  engineCluster,
  ids,
  settlesWithin,
  TICK_MS,
} from "./cluster.js";

// ---------------------------------------------------------------------------------------------- probes

interface LogLine {
  level: "info" | "warn";
  msg: string;
  fields: Record<string, unknown>;
}

/** Records info and warn lines (debug is too chatty to keep). */
function capturingLogger(): RaftLogger & { lines: LogLine[]; named(msg: string): LogLine[] } {
  const lines: LogLine[] = [];
  return {
    lines,
    debug() {},
    info: (msg, fields = {}) => lines.push({ level: "info", msg, fields }),
    warn: (msg, fields = {}) => lines.push({ level: "warn", msg, fields }),
    named: (msg) => lines.filter((l) => l.msg === msg),
  };
}

interface Lane {
  readonly capacity: number;
  queue: Message[];
}

/** The engine's private state these tests observe. */
interface EngineInternals {
  dispatchers: Map<NodeId, PeerDispatcher>;
  /** Proposals waiting to enter raft. */
  proposals: unknown[];
  /** Proposals in raft, not yet applied. */
  pending: Map<number, unknown>;
  inbox: unknown[];
}

const internals = (e: Engine<number>) => e as unknown as EngineInternals;
const lanesOf = (d: PeerDispatcher) => d as unknown as { priority: Lane; normal: Lane };

/** Payload bytes a queued message holds (entry data and context). */
function messageBytes(m: Message): number {
  let n = m.context?.byteLength ?? 0;
  for (const e of m.entries) n += e.data.byteLength;
  return n;
}

/** Watches a lane's queue: its largest length and byte size ever, checked on every push. */
function watchLane(lane: Lane): { maxMessages: number; maxBytes: number; pushed: number } {
  const seen = { maxMessages: 0, maxBytes: 0, pushed: 0 };
  const q = lane.queue;
  const push = q.push;
  Object.defineProperty(q, "push", {
    value(...items: Message[]): number {
      const n = push.apply(q, items);
      seen.pushed += items.length;
      seen.maxMessages = Math.max(seen.maxMessages, q.length);
      seen.maxBytes = Math.max(
        seen.maxBytes,
        q.reduce((s, m) => s + messageBytes(m), 0),
      );
      return n;
    },
  });
  return seen;
}

/** A sample from an engine's Prometheus registry; 0 when the labelled series has no value yet. */
async function metric(e: Engine<number>, name: string, labels = ""): Promise<number> {
  const text = await e.metrics().metrics();
  assert.ok(text.includes(`# TYPE ${name} `), `${name} is exported`);
  const line = text.split("\n").find((l) => l.startsWith(`${name}${labels} `));
  return line === undefined ? 0 : Number(line.split(" ").at(-1));
}

/** Runs the cluster until `p` settles (at most `ms` of virtual time) and returns it; fails, never hangs. */
async function within<T>(c: EngineCluster, p: Promise<T>, ms: number, what: string): Promise<T> {
  assert.ok(await settlesWithin(c, p, ms), `${what} did not settle within ${ms} virtual ms`);
  return p;
}

const followerOf = (leader: Engine<number>, nth = 0) => ids.filter((i) => i !== leader.id)[nth]!;

// ------------------------------------------------------------------------- (A) a blackholed follower

const LANE_PRIORITY = 4;
const LANE_NORMAL = 8;
const SEND_TIMEOUT_MS = 1_000;
const ELECTION_TICKS = 10;
const WAVES = 25;
const PER_WAVE = 16;

const blackholeOptions: ClusterOptions = {
  // No local snapshots: the healed follower catches up from the log; snapshots are (B)'s subject.
  snapshotEveryEntries: 0,
  maxPendingProposals: 10_000,
  reportQueueCapacity: 1024,
  dispatch: {
    priorityLaneMessages: LANE_PRIORITY,
    normalLaneMessages: LANE_NORMAL,
    maxBatchMessages: 4,
    sendTimeoutMs: SEND_TIMEOUT_MS,
    snapshotTimeoutMs: 60_000,
  },
  raft: {
    electionTicks: ELECTION_TICKS,
    heartbeatTicks: 1,
    preVote: true,
    checkQuorum: true,
    maxInflightMessages: 256,
  },
};

interface WorkloadRun {
  leader: NodeId;
  blackholed: NodeId;
  healthy: NodeId;
  termBefore: number;
  /** Virtual ms from each proposal's issue to its answer. */
  latenciesMs: number[];
  /** Proposals that failed, with their errors. */
  refused: string[];
  /** Virtual ms from the first proposal to the last answer. */
  spanMs: number;
  /** Largest (proposals waiting + proposals in raft + inbox) seen at a tick boundary on the leader. */
  maxEngineQueued: number;
  /** Largest queue of any lane of any dispatcher of any node, at tick boundaries. */
  maxAnyLaneQueued: number;
  lanes?: { priority: ReturnType<typeof watchLane>; normal: ReturnType<typeof watchLane> };
  /** The leader's dispatch counters for the blackholed follower halfway through the workload. */
  midway?: { dropped: number; failed: number };
  atEnd?: {
    stats: { dropped: number; failed: number; sent: number };
    healthyStats: { dropped: number; failed: number };
    metricDropped: number;
    metricFailed: number;
    metricHealthyDropped: number;
    metricHealthyFailed: number;
    reportsPosted: number;
    progressState: string;
    engineQueues: { proposals: number; pending: number; inbox: number; reports: number };
  };
  catchUpMs?: number;
  afterHeal?: {
    commit: number;
    leaderCommit: number;
    applied: string[];
    leaderApplied: string[];
    terms: number[];
    leaderId: NodeId | undefined;
  };
}

/** Proposes WAVES × PER_WAVE commands, one wave per tick, optionally with one follower blackholed. */
async function blackholeWorkload(blackhole: boolean): Promise<WorkloadRun> {
  const c = await engineCluster(31, blackholeOptions);
  await c.run(3000);
  const leader = c.leader()!;
  assert.ok(leader, "a leader was elected");
  const blackholed = followerOf(leader, 0);
  const healthy = followerOf(leader, 1);
  const run: WorkloadRun = {
    leader: leader.id,
    blackholed,
    healthy,
    termBefore: leader.status().hardState.term,
    latenciesMs: [],
    refused: [],
    spanMs: 0,
    maxEngineQueued: 0,
    maxAnyLaneQueued: 0,
  };
  // Warm up in both runs: every dispatcher exists and the followers are replicating.
  await within(c, leader.propose(Buffer.from("warm-up")), 2000, "the warm-up proposal");
  await c.run(500);

  const dispatcher = internals(leader).dispatchers.get(blackholed)!;
  assert.ok(dispatcher, "the leader has a dispatcher for the follower");
  if (blackhole) {
    const lanes = lanesOf(dispatcher);
    assert.equal(lanes.priority.capacity, LANE_PRIORITY);
    assert.equal(lanes.normal.capacity, LANE_NORMAL);
    run.lanes = { priority: watchLane(lanes.priority), normal: watchLane(lanes.normal) };
    // Every message to and from the follower vanishes: sends hang until their timeout.
    c.network.partition(
      [blackholed],
      ids.filter((i) => i !== blackholed),
      "blackhole",
    );
  }

  const sampleQueues = () => {
    const x = internals(leader);
    run.maxEngineQueued = Math.max(run.maxEngineQueued, x.proposals.length + x.pending.size + x.inbox.length);
    for (const e of c.engines.values()) {
      for (const d of internals(e).dispatchers.values()) {
        const q = d.queued;
        run.maxAnyLaneQueued = Math.max(run.maxAnyLaneQueued, q.priority, q.normal);
      }
    }
  };

  const start = c.timers.now;
  let lastAnswer = start;
  const all: Promise<unknown>[] = [];
  for (let w = 0; w < WAVES; w++) {
    const issued = c.timers.now;
    for (let i = 0; i < PER_WAVE; i++) {
      all.push(
        leader.propose(Buffer.from(`w${w}.${i}`)).then(
          () => {
            run.latenciesMs.push(c.timers.now - issued);
            lastAnswer = Math.max(lastAnswer, c.timers.now);
          },
          (err: unknown) => {
            run.refused.push(String(err));
          },
        ),
      );
    }
    sampleQueues();
    await c.run(TICK_MS);
    sampleQueues();
    if (blackhole && w === Math.floor(WAVES / 2)) {
      run.midway = { dropped: dispatcher.stats.dropped, failed: dispatcher.stats.failed };
    }
  }
  // Generous: a loop that waited on the blackholed peer would still finish, late, and test 1 says so.
  await settlesWithin(c, Promise.all(all), 60_000);
  run.spanMs = lastAnswer - start;
  sampleQueues();

  if (blackhole) {
    const x = internals(leader);
    const healthyStats = internals(leader).dispatchers.get(healthy)!.stats;
    run.atEnd = {
      stats: { ...dispatcher.stats },
      healthyStats: { dropped: healthyStats.dropped, failed: healthyStats.failed },
      metricDropped: await metric(leader, "raftkv_dispatch_dropped_total", `{peer="${blackholed}"}`),
      metricFailed: await metric(leader, "raftkv_dispatch_failed_total", `{peer="${blackholed}"}`),
      metricHealthyDropped: await metric(leader, "raftkv_dispatch_dropped_total", `{peer="${healthy}"}`),
      metricHealthyFailed: await metric(leader, "raftkv_dispatch_failed_total", `{peer="${healthy}"}`),
      reportsPosted: await metric(leader, "raftkv_dispatch_reports_posted_total"),
      progressState: leader.status().progress?.get(blackholed)?.state ?? "(no longer leader)",
      engineQueues: {
        proposals: x.proposals.length,
        pending: x.pending.size,
        inbox: x.inbox.length,
        reports: leader.reports.size,
      },
    };

    // Heal, and let the follower catch up from the leader's log.
    c.network.heal();
    const healedAt = c.timers.now;
    const target = leader.status().hardState.commit;
    const follower = c.engines.get(blackholed)!;
    for (let t = 0; t < 20_000 && follower.status().hardState.commit < target; t += TICK_MS) {
      await c.run(TICK_MS);
    }
    run.catchUpMs = c.timers.now - healedAt;
    await c.run(500); // applies what it learned is committed
    run.afterHeal = {
      commit: follower.status().hardState.commit,
      leaderCommit: leader.status().hardState.commit,
      applied: [...c.machines.get(blackholed)!.applied],
      leaderApplied: [...c.machines.get(leader.id)!.applied],
      terms: [...c.engines.values()].map((e) => e.status().hardState.term),
      leaderId: c.leader()?.id,
    };
  }
  await c.closeAll();
  return run;
}

describe("a follower whose every message is blackholed", () => {
  let baseline: WorkloadRun;
  let faulty: WorkloadRun;
  before(async () => {
    baseline = await blackholeWorkload(false);
    faulty = await blackholeWorkload(true);
  });

  it("does not slow commits: every proposal completes at quorum, in no more virtual time than without the fault (+1 tick)", (t) => {
    const total = WAVES * PER_WAVE;
    assert.equal(baseline.latenciesMs.length, total);
    assert.deepEqual(faulty.refused, [], "no proposal was refused");
    assert.equal(faulty.latenciesMs.length, total, "every proposal completed with the follower blackholed");
    assert.equal(faulty.leader, baseline.leader, "same seed, same leader: the runs compare like with like");
    const maxBase = Math.max(...baseline.latenciesMs);
    const maxFault = Math.max(...faulty.latenciesMs);
    t.diagnostic(
      `span: ${baseline.spanMs / TICK_MS} ticks without the fault, ${faulty.spanMs / TICK_MS} with it; ` +
        `worst latency ${maxBase / TICK_MS} vs ${maxFault / TICK_MS} ticks`,
    );
    // One tick is the resolution of the measure (an answer is stamped with the tick whose work produced
    // it). Anything that waited on the blackholed follower would wait for a send timeout (10 ticks) or an
    // election (at least 10 ticks), so this bound tells "not slowed" from "slowed" by a wide margin.
    assert.ok(
      faulty.spanMs <= baseline.spanMs + TICK_MS,
      `${faulty.spanMs} ms with the blackhole vs ${baseline.spanMs} ms without`,
    );
    assert.ok(maxFault <= maxBase + TICK_MS, `worst latency ${maxFault} ms vs ${maxBase} ms`);
    assert.ok(maxFault < SEND_TIMEOUT_MS, "no proposal waited for a send to the blackholed peer to time out");
  });

  it("counts what it could not deliver to that peer, per peer, in the dispatch stats and in Prometheus", (t) => {
    const end = faulty.atEnd!;
    t.diagnostic(
      `to the blackholed peer: dropped ${faulty.midway!.dropped} midway, ${end.stats.dropped} at the end; ` +
        `failed ${faulty.midway!.failed} then ${end.stats.failed}; sent ${end.stats.sent}; ` +
        `reports posted ${end.reportsPosted}`,
    );
    assert.ok(faulty.midway!.dropped > 0, "messages to the blackholed peer were dropped (lane full)");
    assert.ok(end.stats.dropped > faulty.midway!.dropped, "and the drop counter keeps growing");
    assert.ok(end.stats.failed > faulty.midway!.failed, "every drop or timeout is a failure reported");
    assert.equal(end.metricDropped, end.stats.dropped, "raftkv_dispatch_dropped_total{peer} matches");
    assert.equal(end.metricFailed, end.stats.failed, "raftkv_dispatch_failed_total{peer} matches");
    assert.ok(end.reportsPosted >= end.stats.failed, "each failure was posted as a report for raft");
    assert.equal(end.healthyStats.dropped, 0, "nothing was dropped for the healthy follower");
    assert.equal(end.healthyStats.failed, 0, "nothing failed for the healthy follower");
    assert.equal(end.metricHealthyDropped, 0);
    assert.equal(end.metricHealthyFailed, 0);
    assert.equal(end.progressState, "probe", "raft stopped streaming appends to the unreachable peer");
  });

  it("keeps memory bounded: the peer's lanes never exceed their capacity, and the engine's queues drain", (t) => {
    const lanes = faulty.lanes!;
    const end = faulty.atEnd!;
    t.diagnostic(
      `lanes to the blackholed peer: priority max ${lanes.priority.maxMessages}/${LANE_PRIORITY} ` +
        `(${lanes.priority.pushed} queued in all), normal max ${lanes.normal.maxMessages}/${LANE_NORMAL} ` +
        `(${lanes.normal.pushed} queued, max ${lanes.normal.maxBytes} payload bytes); ` +
        `${WAVES * PER_WAVE} proposals; engine queue max ${faulty.maxEngineQueued}`,
    );
    assert.ok(WAVES * PER_WAVE > 10 * (LANE_PRIORITY + LANE_NORMAL), "far more proposals than lane slots");
    assert.ok(lanes.priority.pushed > LANE_PRIORITY, "the priority lane was filled");
    assert.ok(lanes.priority.maxMessages <= LANE_PRIORITY);
    assert.ok(lanes.normal.maxMessages <= LANE_NORMAL);
    // Each queued message is bounded by raft's maxMessageBytes; these are small commands.
    assert.ok(lanes.normal.maxBytes <= LANE_NORMAL * 1024 * 1024);
    assert.ok(faulty.maxAnyLaneQueued <= Math.max(LANE_PRIORITY, LANE_NORMAL), "no lane on any node grew");
    assert.ok(faulty.maxEngineQueued <= PER_WAVE, "the leader never held more than one wave of proposals");
    assert.deepEqual(end.engineQueues, { proposals: 0, pending: 0, inbox: 0, reports: 0 });
  });

  it("once healed, the peer catches up to the leader's commit index and state, with no new term", (t) => {
    const after = faulty.afterHeal!;
    t.diagnostic(`caught up ${faulty.catchUpMs! / TICK_MS} ticks after healing, at commit ${after.commit}`);
    assert.equal(after.commit, after.leaderCommit);
    assert.equal(after.applied.length, WAVES * PER_WAVE + 1);
    assert.deepEqual(after.applied, after.leaderApplied);
    assert.equal(after.leaderId, faulty.leader, "the leader kept its place");
    assert.deepEqual(after.terms, [faulty.termBefore, faulty.termBefore, faulty.termBefore]);
  });
});

// ---------------------------------------------------------------------- (B) snapshot stream faults

const SNAPSHOT_EVERY = 20;
const TRAILING_ENTRIES = 10;
const LAG_ENTRIES = 150;
const VALUE_BYTES = 1000;
/** The in-memory transport's DATA frame payload (its default chunkBytes). */
const CHUNK_BYTES = 64 * 1024;
const CUTS_RANDOM = 4;

type Fault = { kind: "cut"; at: number } | { kind: "corrupt"; at: number } | { kind: "none" };

interface Layout {
  payloadBytes: number;
  headerBytes: number;
  /** [start, end) stream offsets of each DATA frame, and its payload bytes. */
  data: { start: number; end: number; payload: number }[];
  streamBytes: number;
}

/** Where each frame of a snapshot stream lies, from the format (not from the code under test). */
function streamLayout(headerBytes: number, payloadBytes: number): Layout {
  const data: Layout["data"] = [];
  let at = headerBytes;
  for (let left = payloadBytes; left > 0; left -= CHUNK_BYTES) {
    const payload = Math.min(CHUNK_BYTES, left);
    const end = at + FRAME_PREFIX_BYTES + DATA_OVERHEAD_BYTES + payload;
    data.push({ start: at, end, payload });
    at = end;
  }
  return { payloadBytes, headerBytes, data, streamBytes: at + FRAME_PREFIX_BYTES + TRAILER_BODY_BYTES };
}

/** Payload bytes a receiver has verified when the stream ends after `at` bytes: whole DATA frames only. */
const receivedBefore = (l: Layout, at: number) =>
  l.data.filter((f) => f.end <= at).reduce((s, f) => s + f.payload, 0);

/** What a stream ending after `at` bytes lacks. */
function missingAt(l: Layout, at: number): "header" | "chunk" | "trailer" {
  if (at < l.headerBytes) return "header";
  if (at < (l.data.at(-1)?.end ?? l.headerBytes)) return "chunk";
  return "trailer";
}

interface Transfer {
  fault: Fault;
  /** The failure report the leader's dispatcher posted, if the transfer failed. */
  report?: Extract<DispatchReport, { kind: "failed" }>;
  /** The leader's progress state towards the follower when that report was posted. */
  stateAtReport?: string;
  /** And at the next tick boundary, once the leader's loop had handled it. */
  stateAfter?: string;
  /** The receiver's "snapshot receive failed" log line. */
  receiveFailed?: LogLine;
}

interface SnapshotRun {
  leader: NodeId;
  follower: NodeId;
  termBefore: number;
  snapIndex: number;
  /** The first entry the leader still holds when the follower comes back. */
  leaderFirstIndex: number;
  followerLastIndexAtHeal: number;
  layout: Layout;
  transfers: Transfer[];
  /** Failure reports for the follower not about snapshots (after the heal). */
  otherFailures: number;
  logger: ReturnType<typeof capturingLogger>;
  /** Log lines recorded before the follower was reconnected. */
  linesAtHeal: number;
  failedMetricAtHeal: number;
  failedMetricAtEnd: number;
  reportsPostedDelta: number;
  linkFailed: number;
  linkConfirmed: number;
  snapIndexAtEnd: number;
  ticksToCatchUp: number;
  end: {
    applied: string[];
    leaderApplied: string[];
    commit: number;
    leaderCommit: number;
    followerFirstIndex: number;
    terms: number[];
    leaderId: NodeId | undefined;
    spoolLeftovers: string[];
  };
}

async function snapshotFaultScenario(seed: number): Promise<SnapshotRun> {
  const logger = capturingLogger();
  const c = await engineCluster(seed, {
    logger,
    snapshotEveryEntries: SNAPSHOT_EVERY,
    // Explicit, so the test does not depend on defaults: compaction keeps a short window and two snapshots.
    trailingEntries: TRAILING_ENTRIES,
    keepSnapshots: 2,
    dispatch: { sendTimeoutMs: SEND_TIMEOUT_MS, snapshotTimeoutMs: 60_000 },
    raft: {
      electionTicks: ELECTION_TICKS,
      heartbeatTicks: 1,
      preVote: true,
      checkQuorum: true,
      snapshotTimeoutTicks: 5 * ELECTION_TICKS,
    },
  });
  await c.run(3000);
  const leader = c.leader()!;
  assert.ok(leader, "a leader was elected");
  const follower = followerOf(leader, 0);
  const termBefore = leader.status().hardState.term;

  // Cut the follower off while the leader writes far past a snapshot and compacts its log.
  c.network.partition(
    [follower],
    ids.filter((i) => i !== follower),
  );
  for (let w = 0; w < LAG_ENTRIES / 10; w++) {
    const wave = Array.from({ length: 10 }, (_, i) =>
      leader.propose(Buffer.from(`v${w * 10 + i}:${"x".repeat(VALUE_BYTES)}`)),
    );
    await within(c, Promise.all(wave), 2000, `wave ${w} of proposals`);
  }
  await c.run(500);
  const snapIndex = leader.status().snapshotIndex;
  const leaderFirstIndex = leader.status().firstIndex;
  const followerLastIndexAtHeal = c.engines.get(follower)!.status().lastIndex;

  // The payload the leader will stream, read through the engine's own snapshot source.
  const pieces: Uint8Array[] = [];
  const meta = { index: snapIndex, term: termBefore, confState: leader.status().config };
  for await (const p of leader.snapshotSource().open(meta, new AbortController().signal)) pieces.push(p);
  const payloadBytes = pieces.reduce((s, p) => s + p.byteLength, 0);
  assert.ok(
    // Index 1 is the bootstrap membership and 2 the leader's empty entry; every later one holds a value.
    payloadBytes >= (snapIndex - 2) * VALUE_BYTES,
    `the leader's snapshot source streams its state (${payloadBytes} bytes at index ${snapIndex})`,
  );
  const layout = streamLayout(encodeHeaderFrame(meta, "test", -1).byteLength, payloadBytes);

  // The plan: one fault per transfer, then a clean one.
  const rng = new SeededRandom(seed);
  const plan: Fault[] = [];
  for (let i = 0; i < CUTS_RANDOM; i++) plan.push({ kind: "cut", at: 1 + rng.intn(layout.streamBytes - 1) });
  plan.push({ kind: "cut", at: 1 + rng.intn(layout.headerBytes - 1) }); // inside the header
  plan.push({ kind: "cut", at: layout.headerBytes }); // exactly after the header
  plan.push({ kind: "cut", at: layout.streamBytes - 1 }); // all but the trailer's last byte
  const chunk = layout.data[rng.intn(layout.data.length)]!;
  const dataStart = chunk.start + FRAME_PREFIX_BYTES + DATA_OVERHEAD_BYTES;
  plan.push({ kind: "corrupt", at: dataStart + rng.intn(chunk.payload) });

  const transfers: Transfer[] = [];
  let otherFailures = 0;
  const post = leader.reports.post.bind(leader.reports);
  leader.reports.post = (r) => {
    if (r.peer === follower && r.kind === "failed") {
      if (r.messageType === MessageType.Snap) {
        const current = transfers.at(-1);
        if (current && !current.report) {
          current.report = r;
          current.stateAtReport = leader.status().progress?.get(follower)?.state;
        }
      } else {
        otherFailures++;
      }
    }
    return post(r);
  };

  const failedMetricAtHeal = await metric(leader, "raftkv_dispatch_failed_total", `{peer="${follower}"}`);
  const postedAtHeal = await metric(leader, "raftkv_dispatch_reports_posted_total");
  const receiveFailedBefore = logger.named("snapshot receive failed").length;
  const linesAtHeal = logger.lines.length;
  otherFailures = 0;
  c.network.heal();
  // Arms the next planned fault as each snapshot transfer to the follower starts (faults are one-shot).
  c.network.drop(leader.id, follower, (_batch, kind) => {
    if (kind !== "snapshot") return false;
    const fault = plan[transfers.length] ?? { kind: "none" };
    transfers.push({ fault });
    if (fault.kind === "cut") c.network.cutSnapshotAt(leader.id, follower, fault.at);
    if (fault.kind === "corrupt") c.network.corruptSnapshotByte(leader.id, follower, fault.at);
    return false;
  });

  const followerEngine = c.engines.get(follower)!;
  const leaderMachine = c.machines.get(leader.id)!;
  const followerMachine = c.machines.get(follower)!;
  let ticks = 0;
  const caughtUp = () =>
    followerMachine.applied.length === leaderMachine.applied.length &&
    followerEngine.status().hardState.commit === leader.status().hardState.commit;
  for (; ticks < 300 && !caughtUp(); ticks++) {
    await c.run(TICK_MS);
    for (const tr of transfers) {
      if (tr.report && tr.stateAfter === undefined)
        tr.stateAfter = leader.status().progress?.get(follower)?.state;
    }
  }
  await c.run(500);

  const failedLines = logger.named("snapshot receive failed").slice(receiveFailedBefore);
  transfers
    .filter((tr) => tr.fault.kind !== "none")
    .forEach((tr, i) => {
      tr.receiveFailed = failedLines[i];
    });

  const disk = c.disks.get(follower)!;
  const run: SnapshotRun = {
    leader: leader.id,
    follower,
    termBefore,
    snapIndex,
    leaderFirstIndex,
    followerLastIndexAtHeal,
    layout,
    transfers,
    otherFailures,
    logger,
    linesAtHeal,
    failedMetricAtHeal,
    failedMetricAtEnd: await metric(leader, "raftkv_dispatch_failed_total", `{peer="${follower}"}`),
    reportsPostedDelta: (await metric(leader, "raftkv_dispatch_reports_posted_total")) - postedAtHeal,
    linkFailed: c.network.linkStats(leader.id, follower).snapshotsFailed,
    linkConfirmed: c.network.linkStats(leader.id, follower).snapshotsConfirmed,
    snapIndexAtEnd: leader.status().snapshotIndex,
    ticksToCatchUp: ticks,
    end: {
      applied: [...followerMachine.applied],
      leaderApplied: [...leaderMachine.applied],
      commit: followerEngine.status().hardState.commit,
      leaderCommit: leader.status().hardState.commit,
      followerFirstIndex: followerEngine.status().firstIndex,
      terms: [...c.engines.values()].map((e) => e.status().hardState.term),
      leaderId: c.leader()?.id,
      spoolLeftovers: disk.exists("/data/incoming") ? disk.readdir("/data/incoming") : [],
    },
  };
  await c.closeAll();
  return run;
}

describe("snapshot streams cut or corrupted on the way to a lagging follower", () => {
  let r: SnapshotRun;
  const faulty = () => r.transfers.filter((tr) => tr.fault.kind !== "none");
  const cuts = () => r.transfers.filter((tr) => tr.fault.kind === "cut");

  before(async () => {
    r = await snapshotFaultScenario(41);
  });

  it("the follower lags far behind a compacted log, so it must be sent a snapshot of several chunks", (t) => {
    t.diagnostic(
      `snapshot at ${r.snapIndex}, leader's log from ${r.leaderFirstIndex}, follower's last index ${r.followerLastIndexAtHeal}; payload ` +
        `${r.layout.payloadBytes} bytes in ${r.layout.data.length} chunks, ${r.layout.streamBytes} stream bytes`,
    );
    assert.ok(
      r.snapIndex - r.followerLastIndexAtHeal > 5 * SNAPSHOT_EVERY,
      "it lags by far more than a snapshot",
    );
    assert.ok(r.followerLastIndexAtHeal + 1 < r.leaderFirstIndex, "the entries it needs are gone");
    assert.ok(r.layout.data.length >= 2, "several DATA frames, so cuts land between and inside them");
    assert.equal(r.snapIndexAtEnd, r.snapIndex, "every transfer streamed the same snapshot");
  });

  it("a cut stream fails on the receiver with SnapshotTruncatedError counting the bytes that arrived", (t) => {
    assert.equal(cuts().length, CUTS_RANDOM + 3, "one transfer per planned cut");
    for (const tr of cuts()) {
      const at = (tr.fault as { at: number }).at;
      const err = tr.report?.error;
      t.diagnostic(
        `cut at ${at}: ${err?.name} received ${(err as SnapshotTruncatedError | undefined)?.receivedBytes} ` +
          `expected ${(err as SnapshotTruncatedError | undefined)?.expectedBytes} missing ` +
          `${(err as SnapshotTruncatedError | undefined)?.missing}`,
      );
      assert.ok(err instanceof SnapshotTruncatedError, `cut at ${at}: ${err?.name}: ${err?.message}`);
      assert.equal(err.streamBytes, at, "the receiver consumed exactly the bytes sent before the cut");
      assert.equal(err.receivedBytes, receivedBefore(r.layout, at), `payload bytes verified before ${at}`);
      const line = tr.receiveFailed;
      assert.ok(line, "the receiver logged the failure");
      assert.equal(line.fields.kind, "truncated");
      assert.equal(line.fields.payload_bytes, err.receivedBytes);
      assert.equal(line.fields.peer, r.leader);
      if (at >= r.layout.headerBytes) assert.equal(line.fields.index, r.snapIndex);
    }
  });

  it("a truncated stream says how many payload bytes were expected and which part was missing", () => {
    // Once the header is through, the receiver knows the payload size the leader announced, so its error
    // (and log line) can say "N of M bytes", and a stream cut between DATA frames lacks a chunk, not
    // just the trailer. Collected for every cut, so that a failure shows them all.
    const seen = cuts().map((tr) => {
      const at = (tr.fault as { at: number }).at;
      const err = tr.report?.error as SnapshotTruncatedError | undefined;
      return {
        at,
        expectedBytes: err?.expectedBytes,
        logged: tr.receiveFailed?.fields.expected_bytes,
        missing: err?.missing,
      };
    });
    const want = cuts().map((tr) => {
      const at = (tr.fault as { at: number }).at;
      const headerIn = at >= r.layout.headerBytes;
      return {
        at,
        expectedBytes: headerIn ? r.layout.payloadBytes : -1,
        logged: headerIn ? r.layout.payloadBytes : undefined,
        missing: missingAt(r.layout, at),
      };
    });
    assert.deepEqual(seen, want);
  });

  it("both ends log index, peer and payload bytes for every failed transfer and for the one that succeeded", () => {
    const lines = r.logger.lines.slice(r.linesAtHeal);
    const failures = faulty().length;
    const senderFailed = lines.filter(
      (l) =>
        (l.msg === "snapshot stream abandoned by the transport" || l.msg === "snapshot stream send failed") &&
        l.fields.peer === r.follower,
    );
    assert.equal(senderFailed.length, failures, "the sender logged each transfer that did not complete");
    for (const l of senderFailed) {
      assert.equal(l.fields.index, r.snapIndex);
      assert.ok(
        typeof l.fields.payload_bytes === "number" && l.fields.payload_bytes <= r.layout.payloadBytes,
      );
    }
    const receiverFailed = lines.filter((l) => l.msg === "snapshot receive failed");
    assert.equal(receiverFailed.length, failures, "the receiver logged each failure");
    for (const l of receiverFailed) {
      assert.equal(l.fields.peer, r.leader);
      assert.equal(typeof l.fields.payload_bytes, "number");
    }
    const sent = lines.filter((l) => l.msg === "snapshot stream sent");
    const received = lines.filter((l) => l.msg === "snapshot received");
    assert.deepEqual(
      sent.map((l) => [l.fields.index, l.fields.peer, l.fields.payload_bytes]),
      [[r.snapIndex, r.follower, r.layout.payloadBytes]],
    );
    assert.deepEqual(
      received.map((l) => [l.fields.index, l.fields.peer, l.fields.payload_bytes]),
      [[r.snapIndex, r.leader, r.layout.payloadBytes]],
    );
  });

  it("a flipped byte fails on the receiver with SnapshotCorruptError at its DATA frame (kind corrupt)", (t) => {
    const tr = r.transfers.find((x) => x.fault.kind === "corrupt");
    assert.ok(tr, "the corrupted transfer happened");
    const at = (tr.fault as { at: number }).at;
    const frameAt = r.layout.data.find((f) => f.start <= at && at < f.end)!;
    const err = tr.report?.error;
    t.diagnostic(`flipped byte ${at}: ${err?.message}`);
    assert.ok(err instanceof SnapshotCorruptError, `${err?.name}: ${err?.message}`);
    assert.equal(err.offset, frameAt.start, "the error names the frame that failed");
    assert.match(err.reason, /chunk \d+ checksum mismatch/);
    assert.equal(tr.receiveFailed?.fields.kind, "corrupt");
    assert.equal(tr.receiveFailed?.fields.payload_bytes, receivedBefore(r.layout, frameAt.start));
  });

  it("the leader is told of each failed transfer, leaves the snapshot state, and sends the snapshot again", (t) => {
    const failures = faulty().length;
    t.diagnostic(
      `${r.transfers.length} transfers (${failures} faulty), caught up in ${r.ticksToCatchUp} ticks; ` +
        `failed counter ${r.failedMetricAtHeal} -> ${r.failedMetricAtEnd}, reports posted +${r.reportsPostedDelta}`,
    );
    assert.equal(r.transfers.length, failures + 1, "each failure was followed by exactly one retry");
    assert.equal(r.transfers.at(-1)!.fault.kind, "none", "the last transfer was the clean one");
    for (const tr of faulty()) {
      assert.ok(tr.report, "a failure report was posted for the transfer");
      assert.equal(tr.report.messageType, MessageType.Snap);
      assert.equal(tr.stateAtReport, "snapshot", "the leader was waiting on the snapshot");
      assert.equal(tr.stateAfter, "probe", "and after the report it left the snapshot state to probe");
    }
    assert.equal(r.otherFailures, 0, "no other send to the follower failed after the heal");
    assert.equal(r.failedMetricAtEnd - r.failedMetricAtHeal, failures, "raftkv_dispatch_failed_total{peer}");
    assert.ok(r.reportsPostedDelta >= failures, "raftkv_dispatch_reports_posted_total");
    const sent = r.logger.named("sending snapshot").filter((l) => l.fields.to === r.follower);
    assert.ok(sent.length >= r.transfers.length, "raft asked for a snapshot once per transfer");
    const told = r.logger.named("snapshot to follower failed; probing again");
    assert.equal(told.filter((l) => l.fields.to === r.follower).length, failures, "raft heard every failure");
    assert.equal(r.linkFailed, failures);
    assert.equal(r.linkConfirmed, 1);
  });

  it("the follower ends holding exactly the leader's state, with no leader change", () => {
    assert.equal(r.end.applied.length, LAG_ENTRIES);
    assert.deepEqual(r.end.applied, r.end.leaderApplied);
    assert.equal(r.end.commit, r.end.leaderCommit);
    assert.ok(r.end.followerFirstIndex > r.followerLastIndexAtHeal + 1, "its log starts after the snapshot");
    assert.equal(r.end.leaderId, r.leader);
    assert.deepEqual(r.end.terms, [r.termBefore, r.termBefore, r.termBefore], "no new term");
    assert.deepEqual(
      r.end.spoolLeftovers.filter((n) => n.endsWith(".tmp")),
      [],
      "failed spools left no temporary files",
    );
  });
});
