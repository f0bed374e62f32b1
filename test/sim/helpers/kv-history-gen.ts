/**
 * Histories of a store that is linearizable by construction, and mutations that provably break them.
 *
 * Clients issue operations one after another with random think times and latencies. Every operation
 * that takes effect gets a linearization point drawn uniformly inside its interval; the outputs are
 * then computed by applying the operations to a plain Map in the order of those points. An operation
 * may fail definitely (no effect), or get no answer (indeterminate) whether or not it took effect; one
 * that took effect without an answer may do so well after its client gave up on it, as a write stuck
 * in a deposed leader's log can.
 *
 * Every value written is unique to its writer (puts write `p<id>`, swaps `c<id>`, appends add
 * `a<id>;`), so the mutations below can name the one operation that could have produced a value.
 */

import { SeededRandom } from "../../../src/raft/rand.js";
import {
  applyKv,
  type Completion,
  INDETERMINATE,
  type KvCall,
  type KvFunction,
  type Operation,
} from "../../../src/sim/checker/index.js";

export interface GenParams {
  readonly seed: number;
  readonly clients: number;
  readonly keys: number;
  readonly ops: number;
  /** An answered operation takes 1..maxLatency time units. */
  readonly maxLatency: number;
  /** A client waits 0..maxThink between an answer and its next call. */
  readonly maxThink: number;
  readonly indeterminatePct: number;
  readonly failPct: number;
  /** Of the unanswered operations, the percentage that took effect anyway. Default 50. */
  readonly lostAppliedPct?: number;
  /**
   * Draw put and swap values from this many ("v0", "v1", ...) instead of making each unique, as a
   * register test over a few values does. The mutations below need unique values; leave it unset.
   */
  readonly valueDomain?: number;
  /** Relative weights of the operations; default put 3, get 4, delete 1, cas 2, append 2. */
  readonly mix?: Readonly<Record<KvFunction, number>>;
}

interface Skeleton {
  readonly id: number;
  readonly client: number;
  readonly key: string;
  readonly f: KvFunction;
  readonly invokedAt: number;
  readonly returnedAt: number;
  readonly fate: "ok" | "fail" | "lost-applied" | "lost-dropped";
  /** The linearization point of an operation that took effect. */
  readonly point: number;
}

const DEFAULT_MIX: Readonly<Record<KvFunction, number>> = { put: 3, get: 4, delete: 1, cas: 2, append: 2 };
const KV_FUNCTIONS: readonly KvFunction[] = ["put", "get", "delete", "cas", "append"];

export function generateHistory(p: GenParams): Operation[] {
  const rand = new SeededRandom(p.seed);
  const fraction = (): number => (rand.intn(1_000_000) + 1) / 1_000_002; // strictly inside (0, 1)
  const mix = p.mix ?? DEFAULT_MIX;
  const functions = KV_FUNCTIONS.filter((f) => mix[f] > 0);
  const totalWeight = functions.reduce((s, f) => s + mix[f], 0);
  const pick = (): KvFunction => {
    let r = rand.intn(totalWeight);
    for (const f of functions) {
      r -= mix[f];
      if (r < 0) return f;
    }
    return functions[functions.length - 1]!;
  };

  const freeAt = Array.from({ length: p.clients }, () => rand.intn(p.maxLatency + 1));
  const skeletons: Skeleton[] = [];
  for (let id = 0; id < p.ops; id++) {
    let client = 0;
    for (let c = 1; c < p.clients; c++) if (freeAt[c]! < freeAt[client]!) client = c;
    const invokedAt = freeAt[client]! + rand.intn(p.maxThink + 1);
    const returnedAt = invokedAt + 1 + rand.intn(p.maxLatency);
    const roll = rand.intn(100);
    const fate: Skeleton["fate"] =
      roll < p.failPct
        ? "fail"
        : roll < p.failPct + p.indeterminatePct
          ? rand.intn(100) < (p.lostAppliedPct ?? 50)
            ? "lost-applied"
            : "lost-dropped"
          : "ok";
    // A lost operation may take effect long after its client stopped waiting.
    const point =
      fate === "lost-applied"
        ? invokedAt + fraction() * 3 * p.maxLatency
        : invokedAt + fraction() * (returnedAt - invokedAt);
    skeletons.push({
      id,
      client,
      key: `k${rand.intn(p.keys)}`,
      f: pick(),
      invokedAt,
      returnedAt,
      fate,
      point,
    });
    freeAt[client] = returnedAt;
  }

  const calls = new Map<number, KvCall>();
  const outputs = new Map<number, unknown>();
  const state = new Map<string, string>();
  const applied = skeletons.filter((s) => s.fate === "ok" || s.fate === "lost-applied");
  applied.sort((a, b) => a.point - b.point || a.id - b.id);
  for (const s of applied) {
    const current = state.get(s.key) ?? null;
    const call = callFor(s, current, rand, p.valueDomain);
    calls.set(s.id, call);
    const { next, output } = applyKv(call, current);
    if (next === null) state.delete(s.key);
    else state.set(s.key, next);
    outputs.set(s.id, output);
  }
  return skeletons.map((s) => {
    const call = calls.get(s.id) ?? callFor(s, null, rand, p.valueDomain);
    const completion: Completion<unknown> =
      s.fate === "ok"
        ? { ok: true, output: outputs.get(s.id), at: s.returnedAt }
        : s.fate === "fail"
          ? { ok: false }
          : INDETERMINATE;
    // The output came from applyKv on this very call, so it has the call's output type; the checker
    // validates it anyway.
    return { ...call, id: s.id, client: s.client, invokedAt: s.invokedAt, completion } as Operation;
  });
}

/** The call made by skeleton `s`, chosen knowing the value its key holds at its linearization point. */
function callFor(
  s: Skeleton,
  current: string | null,
  rand: SeededRandom,
  domain: number | undefined,
): KvCall {
  const key = s.key;
  const fresh = (prefix: string) => (domain === undefined ? `${prefix}${s.id}` : `v${rand.intn(domain)}`);
  switch (s.f) {
    case "put":
      return { f: "put", input: { key, value: fresh("p") } };
    case "get":
      return { f: "get", input: { key } };
    case "delete":
      return { f: "delete", input: { key } };
    case "cas": {
      // Half the swaps expect the current value, so that both outcomes are common.
      const r = rand.intn(4);
      const expected =
        r < 2 ? current : r === 2 ? null : domain === undefined ? `p${rand.intn(s.id + 1)}` : fresh("");
      return { f: "cas", input: { key, expected, value: fresh("c") } };
    }
    case "append":
      return { f: "append", input: { key, suffix: `a${s.id};` } };
  }
}

// ---- mutations -------------------------------------------------------------------------------

function answered(op: Operation): number | undefined {
  return op.completion !== INDETERMINATE && op.completion.ok ? op.completion.at : undefined;
}

/** The value an answered operation left behind, if it certainly changed the key. */
function certainEffect(op: Operation): { value: string | null } | undefined {
  if (op.completion === INDETERMINATE || !op.completion.ok) return undefined;
  switch (op.f) {
    case "put":
      return { value: op.input.value };
    case "delete":
      return { value: null };
    case "cas":
      return op.completion.output ? { value: op.input.value } : undefined;
    case "append":
      return { value: op.completion.output };
    default:
      return undefined;
  }
}

function withGetOutput(history: readonly Operation[], id: number, output: string | null): Operation[] {
  return history.map((op) =>
    op.id === id && op.f === "get" && op.completion !== INDETERMINATE && op.completion.ok
      ? { ...op, completion: { ...op.completion, output } }
      : op,
  );
}

function answeredGets(history: readonly Operation[]): Operation[] {
  return history.filter((op) => op.f === "get" && answered(op) !== undefined);
}

export interface Mutation {
  readonly history: Operation[];
  /** The operations whose answers were changed. */
  readonly changed: readonly number[];
  readonly description: string;
}

/** One answered get now returns a value no operation ever wrote. */
export function readNeverWritten(history: readonly Operation[], rand: SeededRandom): Mutation | undefined {
  const gets = answeredGets(history);
  if (gets.length === 0) return undefined;
  const g = gets[rand.intn(gets.length)]!;
  return {
    history: withGetOutput(history, g.id, "never-written"),
    changed: [g.id],
    description: `get #${g.id} returns a value never written`,
  };
}

/**
 * One answered get now returns a value v whose only writer P returned before some write W began,
 * and W returned before the get began: P, W and the get are in that order in real time, W replaced
 * v, and no one else writes v, so no order lets the get see it.
 */
export function staleRead(history: readonly Operation[], rand: SeededRandom): Mutation | undefined {
  const byKey = new Map<string, Operation[]>();
  for (const op of history) byKey.set(op.input.key, [...(byKey.get(op.input.key) ?? []), op]);
  const gets = answeredGets(history);
  const start = rand.intn(Math.max(1, gets.length));
  for (let k = 0; k < gets.length; k++) {
    const g = gets[(start + k) % gets.length]!;
    const ops = byKey.get(g.input.key)!;
    // The latest-starting write that certainly returned before the get began leaves the most room for P.
    let w: Operation | undefined;
    for (const op of ops) {
      const at = answered(op);
      if (at !== undefined && at < g.invokedAt && certainEffect(op) && (!w || op.invokedAt > w.invokedAt))
        w = op;
    }
    if (!w) continue;
    for (const pOp of ops) {
      const at = answered(pOp);
      const effect = certainEffect(pOp);
      if (at === undefined || at >= w.invokedAt || effect === undefined || effect.value === null) continue;
      return {
        history: withGetOutput(history, g.id, effect.value),
        changed: [g.id],
        description: `get #${g.id} returns ${JSON.stringify(effect.value)} from #${pOp.id}, overwritten by #${w.id}`,
      };
    }
  }
  return undefined;
}

/**
 * The answers of two answered gets of one key are swapped, where the first returned before the
 * second began and the second's value was first written only after the first returned: the first
 * get now sees a value before its only writer was invoked.
 */
export function swappedReads(history: readonly Operation[], rand: SeededRandom): Mutation | undefined {
  const writer = new Map<string, Operation>();
  for (const op of history) {
    const effect = certainEffect(op) ?? possibleEffect(op);
    if (effect?.value) writer.set(effect.value, op);
  }
  const gets = answeredGets(history);
  const start = rand.intn(Math.max(1, gets.length));
  for (let k = 0; k < gets.length; k++) {
    const g1 = gets[(start + k) % gets.length]!;
    const at1 = answered(g1)!;
    for (const g2 of gets) {
      if (g2.input.key !== g1.input.key || g2.invokedAt <= at1) continue;
      const v1 = outputOf(g1);
      const v2 = outputOf(g2);
      if (v2 === null || v2 === v1) continue;
      const w = writer.get(v2);
      if (w === undefined || w.invokedAt <= at1) continue;
      const swapped = withGetOutput(withGetOutput(history, g1.id, v2), g2.id, v1);
      return {
        history: swapped,
        changed: [g1.id, g2.id],
        description: `gets #${g1.id} and #${g2.id} swap answers`,
      };
    }
  }
  return undefined;
}

/** The value an append without an answer would name is unknown; puts and swaps name theirs. */
function possibleEffect(op: Operation): { value: string | null } | undefined {
  if (op.f === "put" || op.f === "cas") return { value: op.input.value };
  return undefined;
}

function outputOf(op: Operation): string | null {
  return op.f === "get" && op.completion !== INDETERMINATE && op.completion.ok ? op.completion.output : null;
}
