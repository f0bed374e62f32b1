/**
 * One chaos run: start the cluster, run the clients and the nemesis for the given time, heal
 * everything, wait for the cluster to settle, read every key through every node, stop the cluster and
 * check the history for linearizability.
 */
import { appendFileSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import * as path from "node:path";
import { setTimeout as delay } from "node:timers/promises";
import type { NodeId } from "../raft/types.js";
import {
  type CheckOptions,
  type CheckResult,
  checkLinearizable,
  HistoryRecorder,
} from "../sim/checker/index.js";
import { ChaosCluster } from "./cluster.js";
import { KeySpace } from "./key-space.js";
import { RaftMonitor } from "./monitor.js";
import { type FaultKind, Nemesis, planFaults } from "./nemesis.js";
import type { UnexpectedExit } from "./node-process.js";
import { commandsFor, interpretReplies, type Outcome } from "./operations.js";
import type { RaftInfo } from "./raft-info.js";
import { RespClient } from "./resp-client.js";
import { noAnswerFrom, type OutcomeKind, Workload } from "./workload.js";

export interface ChaosOptions {
  readonly durationMs: number;
  readonly seed: number;
  readonly nodes: number;
  readonly clients: number;
  /** Keys in use at a time. */
  readonly keys: number;
  /** How long a key is used before the clients move to a fresh one (see key-space.ts). */
  readonly keyLifetimeMs: number;
  /** The run's directory: node data and logs, the nemesis log, the history. */
  readonly dir: string;
  readonly tickMs: number;
  readonly electionTicks: number;
  readonly snapshotEveryEntries: number;
  readonly trailingEntries: number;
  readonly opTimeoutMs: number;
  /** How long the healed cluster has to elect a leader, converge and answer the final reads. */
  readonly recoveryTimeoutMs: number;
  /** Keep the nodes' data directories after a run that passed (they are always kept otherwise). */
  readonly keepData: boolean;
  readonly check?: CheckOptions;
}

export interface ChaosReport {
  readonly seed: number;
  readonly dir: string;
  /** Length of the fault phase, ms. */
  readonly chaosMs: number;
  readonly totalMs: number;
  readonly ops: Record<OutcomeKind, number> & { readonly total: number };
  readonly unexpectedReplies: readonly string[];
  /** Failed and indeterminate operations by cause. */
  readonly causes: ReadonlyMap<string, number>;
  readonly faults: Record<FaultKind, number>;
  readonly plannedFaults: number;
  readonly skippedFaults: number;
  readonly leaderChanges: number;
  /** Snapshots installed from a leader (a node back from a kill or a cut, far behind). */
  readonly snapshotsInstalled: number;
  /** Election safety as seen through INFO: terms in which two nodes said they lead. */
  readonly leaderConflicts: readonly string[];
  readonly unexpectedExits: readonly UnexpectedExit[];
  /** Null when the cluster recovered; otherwise what it failed to do. */
  readonly recoveryFailure: string | null;
  readonly recoveryMs: number;
  readonly finalReads: number;
  /** Keys the clients used, over every generation. */
  readonly keysUsed: number;
  readonly check: CheckResult;
  readonly checkMs: number;
}

const MONITOR_INTERVAL_MS = 200;
const PROGRESS_EVERY_MS = 10_000;

export async function runChaos(o: ChaosOptions, print: (line: string) => void): Promise<ChaosReport> {
  const started = performance.now();
  mkdirSync(o.dir, { recursive: true });
  const nemesisLog = path.join(o.dir, "nemesis.log");
  let t0 = performance.now();
  // Microseconds are enough, and keep the checker's explanations readable.
  const clock = () => Math.round((performance.now() - t0) * 1000) / 1000;
  const logLine = (line: string) =>
    appendFileSync(nemesisLog, `${new Date().toISOString()} t=${(clock() / 1000).toFixed(3)}s ${line}\n`);

  const cluster = await ChaosCluster.start({
    dir: o.dir,
    nodes: o.nodes,
    tickMs: o.tickMs,
    electionTicks: o.electionTicks,
    snapshotEveryEntries: o.snapshotEveryEntries,
    trailingEntries: o.trailingEntries,
  });
  const ports = new Map<NodeId, number>(cluster.ids.map((id) => [id, cluster.node(id).redisPort]));
  print(
    `cluster: ${cluster.ids.map((id) => `node ${id} redis 127.0.0.1:${ports.get(id)}`).join(", ")}; ` +
      `raft links through ${o.nodes * (o.nodes - 1)} proxies`,
  );
  const monitor = new RaftMonitor(ports, MONITOR_INTERVAL_MS, clock);
  const recorder = new HistoryRecorder();
  const keys = new KeySpace(o.keys, o.keyLifetimeMs);
  const workload = new Workload({
    ports,
    keys,
    clients: o.clients,
    opTimeoutMs: o.opTimeoutMs,
    seed: o.seed,
    recorder,
    clock,
  });
  const plan = planFaults(o.seed, o.durationMs, cluster.ids);
  const nemesis = new Nemesis(plan, cluster, monitor, clock, logLine);

  let recoveryFailure: string | null = null;
  let chaosMs = 0;
  let recoveryMs = 0;
  let finalReads = 0;
  try {
    monitor.start();
    const ready = await settled(cluster.ids, monitor, o.recoveryTimeoutMs);
    if (typeof ready === "string") throw new Error(`the cluster did not start: ${ready}`);
    print(`cluster ready: node ${ready.leader} leads (term ${ready.term}); ${plan.length} faults planned`);

    t0 = performance.now();
    logLine(`chaos starts: seed ${o.seed}, ${o.durationMs} ms`);
    workload.start();
    nemesis.start();
    for (let next = PROGRESS_EVERY_MS; next < o.durationMs; next += PROGRESS_EVERY_MS) {
      await delay(next - clock());
      print(progressLine(clock(), workload, nemesis, monitor));
    }
    await delay(Math.max(0, o.durationMs - clock()));
    await nemesis.stop();
    chaosMs = clock();

    // Heal, let the clients' last operations finish, and wait for the cluster to settle.
    logLine("healing everything");
    cluster.healAll("final heal");
    await workload.stop();
    const recoveryStarted = performance.now();
    const deadline = recoveryStarted + o.recoveryTimeoutMs;
    const state = await settled(cluster.ids, monitor, o.recoveryTimeoutMs);
    if (typeof state === "string") recoveryFailure = `the cluster did not settle: ${state}`;
    else {
      print(`healed: node ${state.leader} leads (term ${state.term}), every node applied ${state.applied}`);
      const reads = await readEveryKey(
        cluster.ids,
        ports,
        keys.usedKeys(),
        workload,
        recorder,
        clock,
        deadline,
      );
      finalReads = reads.done;
      if (reads.failure !== null) recoveryFailure = reads.failure;
    }
    recoveryMs = performance.now() - recoveryStarted;
    logLine(recoveryFailure === null ? "recovered" : `did not recover: ${recoveryFailure}`);
  } finally {
    await nemesis.stop();
    await workload.stop();
    await monitor.stop();
    await cluster.close();
  }

  const history = recorder.history();
  writeFileSync(path.join(o.dir, "history.json"), JSON.stringify(history));
  print(`checking ${history.length} operations…`);
  const checkStarted = performance.now();
  const check = checkLinearizable(history, o.check ?? {});
  const checkMs = performance.now() - checkStarted;

  const report: ChaosReport = {
    seed: o.seed,
    dir: o.dir,
    chaosMs,
    totalMs: performance.now() - started,
    ops: { ...workload.counts, total: workload.operations },
    unexpectedReplies: workload.unexpected,
    causes: workload.causes,
    faults: { ...nemesis.counts },
    plannedFaults: plan.length,
    skippedFaults: nemesis.skipped,
    leaderChanges: monitor.leaderChanges,
    snapshotsInstalled: cluster.snapshotsInstalled(),
    leaderConflicts: monitor.conflicts,
    unexpectedExits: cluster.unexpectedExits,
    recoveryFailure,
    recoveryMs,
    finalReads,
    keysUsed: keys.usedKeys().length,
    check,
    checkMs,
  };
  if (problemsOf(report).length === 0 && !o.keepData)
    for (const id of cluster.ids) rmSync(path.join(o.dir, `node${id}`), { recursive: true, force: true });
  return report;
}

/** What went wrong in a run, most serious first, with the exit code it calls for. */
export function problemsOf(report: ChaosReport): { readonly code: number; readonly text: string }[] {
  const problems: { code: number; text: string }[] = [];
  if (report.check.verdict === "violation")
    problems.push({ code: 1, text: `the history is not linearizable (key ${report.check.key})` });
  for (const c of report.leaderConflicts) problems.push({ code: 1, text: `election safety: ${c}` });
  if (report.ops.unexpected > 0)
    problems.push({ code: 1, text: `${report.ops.unexpected} replies no correct server gives` });
  for (const e of report.unexpectedExits)
    problems.push({
      code: 1,
      text: `node ${e.id} exited by itself (code ${e.code}, signal ${e.signal}) at ${new Date(e.at).toISOString()}`,
    });
  if (report.recoveryFailure !== null)
    problems.push({ code: 3, text: `the cluster did not recover: ${report.recoveryFailure}` });
  if (report.check.verdict === "unknown")
    problems.push({ code: 4, text: "the checker could not decide (a search bound was reached)" });
  return problems;
}

/** Every node up, agreeing on one leader and term, and each having applied everything committed. */
interface Settled {
  readonly leader: NodeId;
  readonly term: number;
  readonly applied: number;
}

async function settled(
  ids: readonly NodeId[],
  monitor: RaftMonitor,
  timeoutMs: number,
): Promise<Settled | string> {
  const deadline = performance.now() + timeoutMs;
  let last = "no node answered";
  for (;;) {
    const infos = await Promise.all(ids.map((id) => monitor.poll(id)));
    const verdict = judge(ids, infos);
    if (typeof verdict !== "string") return verdict;
    last = verdict;
    if (performance.now() > deadline) return `${last} after ${timeoutMs} ms`;
    await delay(MONITOR_INTERVAL_MS);
  }
}

function judge(ids: readonly NodeId[], infos: readonly (RaftInfo | null)[]): Settled | string {
  const silent = ids.filter((_, i) => infos[i] === null);
  if (silent.length > 0) return `node ${silent.join(", ")} not answering INFO`;
  const all = infos as RaftInfo[];
  const first = all[0]!;
  if (first.leader === 0 || all.some((i) => i.leader !== first.leader || i.term !== first.term))
    return `no agreed leader (${all.map((i) => `node ${i.id}: leader ${i.leader} term ${i.term}`).join("; ")})`;
  if (all.some((i) => i.applied !== i.commit || i.commit !== first.commit))
    return `not converged (${all.map((i) => `node ${i.id}: commit ${i.commit} applied ${i.applied}`).join("; ")})`;
  return { leader: first.leader, term: first.term, applied: first.applied };
}

/**
 * Reads every key through every node, into the history (client `final-n<id>`), so that a write lost
 * or resurrected anywhere shows. Failed reads are retried until the deadline.
 */
async function readEveryKey(
  ids: readonly NodeId[],
  ports: ReadonlyMap<NodeId, number>,
  keys: readonly string[],
  workload: Workload,
  recorder: HistoryRecorder,
  clock: () => number,
  deadline: number,
): Promise<{ done: number; failure: string | null }> {
  let done = 0;
  for (const id of ids) {
    let conn: RespClient | null = null;
    for (const key of keys) {
      const call = { f: "get", input: { key } } as const;
      for (;;) {
        if (performance.now() > deadline) {
          conn?.close();
          return { done, failure: `could not read key ${key} through node ${id} in time` };
        }
        let outcome: Outcome;
        const invokedAt = clock();
        const opId = recorder.invoke(`final-n${id}`, call, invokedAt);
        try {
          conn ??= await RespClient.connect("127.0.0.1", ports.get(id)!, 1_000);
          outcome = interpretReplies(call, await conn.call(commandsFor(call), 2_000));
        } catch (err) {
          conn?.close();
          conn = null;
          outcome = noAnswerFrom(err);
        }
        workload.record(opId, invokedAt, outcome, `final read through node ${id}`);
        if (outcome.kind === "ok") break;
        await delay(100);
      }
      done++;
    }
    conn?.close();
  }
  return { done, failure: null };
}

function progressLine(at: number, workload: Workload, nemesis: Nemesis, monitor: RaftMonitor): string {
  const c = workload.counts;
  const faults = Object.values(nemesis.counts).reduce((a, b) => a + b, 0);
  const leader = monitor.currentLeader();
  return (
    `[${String(Math.round(at / 1000)).padStart(4)}s] ops ${workload.operations} ` +
    `(ok ${c.ok}, failed ${c.failed}, indeterminate ${c.indeterminate}, unexpected ${c.unexpected}); ` +
    `faults ${faults}; leader changes ${monitor.leaderChanges}; leader ${leader === null ? "none" : `node ${leader}`}`
  );
}
