/**
 * The chaos clients: each runs one operation at a time against some node over the Redis protocol and
 * records it (invocation, completion, outcome) in the shared history. A client moves to another node,
 * chosen at random, after any operation that did not succeed (as a client library fails over), and now
 * and then for no reason, so that every node serves clients throughout.
 */
import { setTimeout as delay } from "node:timers/promises";
import { SeededRandom } from "../raft/rand.js";
import type { NodeId } from "../raft/types.js";
import type { HistoryRecorder } from "../sim/checker/index.js";
import { CallTimeoutError } from "./errors.js";
import type { KeySpace } from "./key-space.js";
import { commandsFor, interpretReplies, nextCall, noAnswer, type Outcome } from "./operations.js";
import { RespClient } from "./resp-client.js";

export interface WorkloadOptions {
  /** Redis port of each node. */
  readonly ports: ReadonlyMap<NodeId, number>;
  readonly keys: KeySpace;
  readonly clients: number;
  /** How long a client waits for an answer before it counts the operation as indeterminate. */
  readonly opTimeoutMs: number;
  readonly seed: number;
  readonly recorder: HistoryRecorder;
  /** ms since the run started (monotonic). */
  readonly clock: () => number;
}

export type OutcomeKind = Outcome["kind"];

/** Unexpected replies kept for the report (all are counted). */
const MAX_UNEXPECTED_KEPT = 20;
const CONNECT_TIMEOUT_MS = 1_000;
/** Pause after a failed connect or a refused operation, so that a client does not spin while no leader is known. */
const BACKOFF_MS = 50;

export class Workload {
  readonly counts: Record<OutcomeKind, number> = { ok: 0, failed: 0, indeterminate: 0, unexpected: 0 };
  readonly unexpected: string[] = [];
  /** Operations that failed or are indeterminate, by kind and cause: `indeterminate: timeout`. */
  readonly causes = new Map<string, number>();
  private running = false;
  private loops: Promise<void>[] = [];

  constructor(private readonly options: WorkloadOptions) {}

  start(): void {
    this.running = true;
    this.loops = Array.from({ length: this.options.clients }, (_, i) => this.client(i + 1));
  }

  /** Stops every client after its operation in progress completes (or times out). */
  async stop(): Promise<void> {
    this.running = false;
    await Promise.all(this.loops);
  }

  get operations(): number {
    return this.counts.ok + this.counts.failed + this.counts.indeterminate + this.counts.unexpected;
  }

  private async client(client: number): Promise<void> {
    const o = this.options;
    // Each client draws from its own stream: what one does never shifts another's choices.
    const random = new SeededRandom((o.seed + Math.imul(client, 0x9e3779b1)) >>> 0);
    const ids = [...o.ports.keys()];
    let conn: RespClient | null = null;
    for (let seq = 1; this.running; ) {
      if (conn === null || conn.closed) {
        const port = o.ports.get(ids[random.intn(ids.length)]!)!;
        try {
          conn = await RespClient.connect("127.0.0.1", port, CONNECT_TIMEOUT_MS);
        } catch {
          conn = null;
          await delay(BACKOFF_MS);
          continue;
        }
      }
      const invokedAt = o.clock();
      const call = nextCall(random, o.keys.pick(random, invokedAt), client, seq++);
      const id = o.recorder.invoke(client, call, invokedAt);
      let outcome: Outcome;
      try {
        outcome = interpretReplies(call, await conn.call(commandsFor(call), o.opTimeoutMs));
      } catch (err) {
        outcome = noAnswerFrom(err);
      }
      this.record(id, invokedAt, outcome, `client ${client}`);
      if (outcome.kind !== "ok" || random.intn(100) === 0) {
        conn.close();
        conn = null;
        if (outcome.kind !== "ok") await delay(BACKOFF_MS);
      }
    }
    conn?.close();
  }

  /** Records an outcome in the history and the counts. */
  record(id: number, invokedAt: number, outcome: Outcome, who: string): void {
    const o = this.options;
    this.counts[outcome.kind]++;
    if (outcome.kind === "failed" || outcome.kind === "indeterminate") {
      const cause = `${outcome.kind}: ${outcome.cause}`;
      this.causes.set(cause, (this.causes.get(cause) ?? 0) + 1);
    }
    switch (outcome.kind) {
      case "ok":
        // The clock counts whole microseconds: an answer is never recorded as simultaneous with its call.
        o.recorder.returned(id, outcome.output, Math.max(o.clock(), invokedAt + 0.001));
        return;
      case "failed":
        o.recorder.failed(id);
        return;
      case "unexpected":
        if (this.unexpected.length < MAX_UNEXPECTED_KEPT) this.unexpected.push(`${who}: ${outcome.reason}`);
        o.recorder.indeterminate(id);
        return;
      case "indeterminate":
        o.recorder.indeterminate(id);
        return;
    }
  }
}

/** The outcome of a call that threw: a timeout or a lost connection, either way unknown. */
export function noAnswerFrom(err: unknown): Outcome {
  const message = err instanceof Error ? err.message : String(err);
  return noAnswer(err instanceof CallTimeoutError ? "timeout" : "connection lost", message);
}
