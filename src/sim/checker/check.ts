/**
 * `checkLinearizable`: is a key-value history linearizable, and if not, what is the smallest part of
 * it that shows why?
 *
 * Every operation touches one key, and linearizability is compositional (Herlihy & Wing's locality):
 * the history is linearizable exactly when each key's sub-history is. So each key is searched on its
 * own (search.ts), which keeps the sets the search memoises as small as one key's operations.
 *
 * Every search is bounded (steps, memo entries, memo bytes). A key that hits a bound makes the
 * result `unknown`, never a hang and never a guess. The bounds count work, not wall-clock time, so a
 * check gives the same answer on a fast machine and a slow one, and when replayed from a seed.
 */

import { findCulprit, prefixAt, rankOf, readFrom } from "./culprit.js";
import { InvalidCheckOptionError } from "./errors.js";
import { explainViolation, formatValue } from "./explain.js";
import { type History, type Operation, partitionByKey, validateHistory } from "./history.js";
import { KeyModel } from "./model.js";
import {
  type LimitReached,
  type SearchLimits,
  type SearchOutcome,
  type SearchVerdict,
  searchKey,
} from "./search.js";
import { type CandidateVerdict, shrinkFailing } from "./shrink.js";
import { answerSupport, bearingOn, explainsLess } from "./sources.js";

/**
 * How a violation is shrunk.
 *
 * - `faithful` (default): to a small sub-history that still fails *for the same reason*. It keeps the
 *   culprit (the first answer no order explains, culprit.ts); removes an operation only together with
 *   every operation that read from it in an order explaining all answers before the culprit's, so no
 *   earlier answer becomes impossible; and accepts the result only if it still fails at the culprit's
 *   answer, with that answer explained no worse than in the full history (sources.ts). Without this,
 *   removing a write or a delete can make some innocent answer impossible, and the shrinker would
 *   report that artifact instead of the real failure, or cut "this read is stale" down to "this read
 *   returned a value nobody wrote".
 * - `smallest`: to a 1-minimal failing sub-history, whatever makes it fail.
 * - `none`: report the failing key's whole history.
 */
export type ShrinkMode = "faithful" | "smallest" | "none";

export interface CheckOptions {
  /** Memoised (linearized set, value) pairs one key's search may hold. Default 1,000,000. */
  readonly maxStatesPerKey?: number;
  /** Search steps for one key (roughly 3–20 M per second). Default 10,000,000. */
  readonly maxStepsPerKey?: number;
  /**
   * Search steps over all keys; once spent, the keys left are `unknown` without a search. Default
   * 50,000,000. (Shrinking has its own budget, below.)
   */
  readonly maxSteps?: number;
  /** Bytes one key's memo may take; each pair holds a bit per operation of the key. Default 256 MiB. */
  readonly maxMemoBytesPerKey?: number;
  /**
   * Default "faithful" (which falls back to "smallest" when the culprit cannot be found within the
   * shrink budget; the result then has no `culprit`).
   */
  readonly shrink?: ShrinkMode;
  /** Candidate histories the shrinker may check. Default 10,000. */
  readonly maxShrinkChecks?: number;
  /** Search steps the shrinker may spend over all its checks. Default 50,000,000. */
  readonly maxShrinkSteps?: number;
  /** Values keys hold before the history begins; a key not listed starts absent. */
  readonly initialValues?: Readonly<Record<string, string>>;
}

export const DEFAULT_CHECK_OPTIONS = {
  maxStatesPerKey: 1_000_000,
  maxStepsPerKey: 10_000_000,
  maxSteps: 50_000_000,
  maxMemoBytesPerKey: 256 * 1024 * 1024,
  shrink: "faithful",
  maxShrinkChecks: 10_000,
  maxShrinkSteps: 50_000_000,
} as const;

const SHRINK_MODES: readonly ShrinkMode[] = ["faithful", "smallest", "none"];

export interface KeyStats {
  readonly key: string;
  /** Operations searched: definite failures and unanswered reads are dropped first. */
  readonly ops: number;
  /** (linearized set, value) pairs the search recorded as dead. */
  readonly states: number;
  readonly steps: number;
  readonly verdict: SearchVerdict;
  /** For `unknown`: the bound that was reached. */
  readonly limit?: LimitReached;
}

export interface CheckStats {
  /** Operations in the history as given. */
  readonly ops: number;
  /** Operations searched, over all keys. */
  readonly checkedOps: number;
  readonly states: number;
  readonly steps: number;
  /** One entry per key, in key order. */
  readonly keys: readonly KeyStats[];
}

export interface LinearizableResult {
  readonly ok: true;
  readonly verdict: "linearizable";
  readonly stats: CheckStats;
}

export interface ViolationResult {
  readonly ok: false;
  readonly verdict: "violation";
  /** The key whose history was shrunk: of the failing keys, the one with fewest operations. */
  readonly key: string;
  /**
   * A sub-history of that key that is not linearizable, in history order. When `shrink.complete`, it
   * is minimal for the shrink mode: removing any one operation makes it pass, or (`faithful`) removing
   * any one operation with the operations that read from it removes the culprit, explains the
   * culprit worse, or lets the culprit's answer be explained.
   */
  readonly minimal: Operation[];
  /**
   * The first answer no order can explain (`faithful` mode; culprit.ts): every answer that returned
   * before it can be explained together, and its answer cannot be added to them.
   */
  readonly culprit?: Operation;
  readonly explanation: string;
  /** Every key whose history is not linearizable, in key order. */
  readonly failingKeys: readonly string[];
  readonly shrink: {
    readonly mode: ShrinkMode;
    readonly checks: number;
    readonly steps: number;
    /** True when `minimal` is known to be minimal in the sense described there. */
    readonly complete: boolean;
  };
  readonly stats: CheckStats;
}

export interface UnknownResult {
  readonly ok: false;
  readonly verdict: "unknown";
  /** Keys whose search reached a bound (no key was found to fail). */
  readonly unknownKeys: readonly KeyStats[];
  readonly explanation: string;
  readonly stats: CheckStats;
}

/** `ok` is true only for a proven-linearizable history, so `if (!result.ok)` catches `unknown` too. */
export type CheckResult = LinearizableResult | ViolationResult | UnknownResult;

interface ResolvedOptions {
  readonly limits: SearchLimits;
  readonly maxSteps: number;
  readonly shrink: ShrinkMode;
  readonly maxShrinkChecks: number;
  readonly maxShrinkSteps: number;
  readonly initialValues: Readonly<Record<string, string>>;
}

export function checkLinearizable(history: History, options: CheckOptions = {}): CheckResult {
  const opts = resolveOptions(options);
  validateHistory(history);
  const initial = (key: string): string | null =>
    Object.hasOwn(opts.initialValues, key) ? opts.initialValues[key]! : null;

  const keys: KeyStats[] = [];
  const failing: { key: string; ops: Operation[] }[] = [];
  let stepsLeft = opts.maxSteps;
  for (const [key, ops] of partitionByKey(history)) {
    const maxSteps = Math.min(opts.limits.maxSteps, stepsLeft);
    const outcome = searchKey(new KeyModel(ops, initial(key)), { ...opts.limits, maxSteps });
    stepsLeft = Math.max(0, stepsLeft - outcome.steps);
    const entry = {
      key,
      ops: ops.length,
      states: outcome.states,
      steps: outcome.steps,
      verdict: outcome.verdict,
    };
    keys.push(outcome.limit === undefined ? entry : { ...entry, limit: outcome.limit });
    if (outcome.verdict === "violation") failing.push({ key, ops });
  }
  const stats: CheckStats = {
    ops: history.length,
    checkedOps: keys.reduce((sum, k) => sum + k.ops, 0),
    states: keys.reduce((sum, k) => sum + k.states, 0),
    steps: keys.reduce((sum, k) => sum + k.steps, 0),
    keys,
  };

  if (failing.length > 0) {
    let target = failing[0]!;
    for (const f of failing) if (f.ops.length < target.ops.length) target = f;
    const shrunk = shrinkViolation(target.ops, initial(target.key), opts);
    // Searching the small history once more, for the longest order it allows, is cheap next to shrinking.
    const longest = searchKey(new KeyModel(shrunk.minimal, initial(target.key)), opts.limits, true);
    const explanation = explainViolation(target.key, shrunk.minimal, initial(target.key), {
      longest: longest.order,
      culprit: shrunk.culprit,
      complete: shrunk.complete,
    });
    const result: ViolationResult = {
      ok: false,
      verdict: "violation",
      key: target.key,
      minimal: shrunk.minimal,
      explanation,
      failingKeys: failing.map((f) => f.key),
      shrink: { mode: opts.shrink, checks: shrunk.checks, steps: shrunk.steps, complete: shrunk.complete },
      stats,
    };
    return shrunk.culprit === undefined ? result : { ...result, culprit: shrunk.culprit };
  }
  const unknownKeys = keys.filter((k) => k.verdict === "unknown");
  if (unknownKeys.length > 0) {
    const lines = unknownKeys.map(
      (k) =>
        `  key ${formatValue(k.key)}: ${k.ops} operations, gave up at the ${k.limit} bound ` +
        `(${k.steps} steps, ${k.states} states)`,
    );
    const explanation = [
      "no violation found, but the search could not finish for these keys:",
      ...lines,
      "Raise maxStepsPerKey / maxStatesPerKey / maxMemoBytesPerKey, or record fewer concurrent or " +
        "unanswered operations per key.",
    ].join("\n");
    return { ok: false, verdict: "unknown", unknownKeys, explanation, stats };
  }
  return { ok: true, verdict: "linearizable", stats };
}

interface Shrunk {
  readonly minimal: Operation[];
  readonly culprit: Operation | undefined;
  readonly checks: number;
  readonly steps: number;
  readonly complete: boolean;
}

function shrinkViolation(ops: Operation[], initialValue: string | null, opts: ResolvedOptions): Shrunk {
  if (opts.shrink === "none")
    return { minimal: ops, culprit: undefined, checks: 0, steps: 0, complete: false };
  let stepsLeft = opts.maxShrinkSteps;
  const searchWithin = (candidate: readonly Operation[]): SearchOutcome => {
    if (stepsLeft <= 0) return { verdict: "unknown", steps: 0, states: 0, order: [] };
    const maxSteps = Math.min(opts.limits.maxSteps, stepsLeft);
    const outcome = searchKey(new KeyModel(candidate, initialValue), { ...opts.limits, maxSteps });
    stepsLeft -= outcome.steps;
    return outcome;
  };
  const search = (candidate: readonly Operation[]): SearchVerdict => searchWithin(candidate).verdict;
  const asCandidate = (verdict: SearchVerdict): CandidateVerdict =>
    verdict === "violation" ? "fails" : verdict === "linearizable" ? "passes" : "unknown";

  let check = (candidate: readonly Operation[]): CandidateVerdict => asCandidate(search(candidate));
  let close: ((candidate: readonly Operation[]) => Operation[]) | undefined;
  let withSources = (set: readonly Operation[]): Operation[] => set.slice();
  let closing = false;
  const culprit =
    opts.shrink === "faithful"
      ? findCulprit(ops, (prefix) => {
          const verdict = search(prefix);
          return verdict === "unknown" ? undefined : verdict === "violation";
        })
      : undefined;
  // The witness that explains every answer before the culprit's.
  const rank = culprit === undefined ? undefined : rankOf(ops);
  const before = culprit === undefined ? [] : prefixAt(ops, rank!, culprit, true);
  const witness = culprit === undefined ? undefined : searchWithin(before);
  if (culprit !== undefined && witness?.verdict === "linearizable") {
    // Faithful (falls back to `smallest` when the culprit or its witness is out of budget): remove an
    // operation only together with every operation that read from it in the witness, so every answer
    // before the culprit stays explained; keep the culprit, and its support.
    const source = readFrom(
      witness.order.map((i) => before[i]!),
      initialValue,
    );
    const readers = new Map<number, number[]>();
    for (const [reader, writer] of source) readers.set(writer, [...(readers.get(writer) ?? []), reader]);
    // What a set of operations needs besides, so that each still finds the value it found.
    withSources = (set) => {
      const ids = new Set(set.map((op) => op.id));
      const todo = [...ids];
      while (todo.length > 0) {
        const writer = source.get(todo.pop()!);
        if (writer !== undefined && !ids.has(writer)) {
          ids.add(writer);
          todo.push(writer);
        }
      }
      return ops.filter((op) => ids.has(op.id));
    };
    const supportBefore = answerSupport(ops, initialValue);
    close = (candidate) => {
      const kept = new Set(candidate.map((op) => op.id));
      const gone = ops.filter((op) => !kept.has(op.id)).map((op) => op.id);
      while (gone.length > 0) {
        for (const reader of readers.get(gone.pop()!) ?? []) {
          if (kept.delete(reader)) gone.push(reader);
        }
      }
      return candidate.filter((op) => kept.has(op.id));
    };
    check = (candidate) => {
      if (!candidate.includes(culprit)) return "refused";
      // Only the culprit's support matters: another answer made worse would fail before it (refused
      // below), or return after it (then it is still open in the prefix that fails).
      if (explainsLess(supportBefore, candidate, initialValue, culprit.id)) return "refused";
      const rank = rankOf(candidate);
      const at = search(prefixAt(candidate, rank, culprit, false));
      if (at !== "violation") return asCandidate(at);
      // With `close`, every answer before the culprit's stays explained by construction; the single
      // removals of the last pass (below) are checked.
      if (closing) return "fails";
      const before = search(prefixAt(candidate, rank, culprit, true));
      return before === "linearizable" ? "fails" : before === "unknown" ? "unknown" : "refused";
    };
  }
  // In time order, so that the shrinker meets the readers of a value before its writer.
  let byTime = ops.slice().sort((a, b) => a.invokedAt - b.invokedAt);
  let guesses = 0;
  if (culprit !== undefined && close !== undefined) {
    // First, a guess: the culprit alone, then with what bears on its answer (and what those read
    // from). Either is often the whole story, and checking it costs a few small searches rather than
    // many large ones.
    const bearing = bearingOn(ops, culprit, initialValue);
    for (const guess of [[culprit], withSources([culprit, ...bearing])]) {
      guesses++;
      if (check(guess) === "fails") {
        const kept = new Set(guess);
        byTime = byTime.filter((op) => kept.has(op));
        break;
      }
    }
  }
  let shrunk: { items: Operation[]; checks: number; complete: boolean };
  if (close === undefined) {
    shrunk = shrinkFailing(byTime, check, opts.maxShrinkChecks);
  } else {
    // Closed removals first: they take a writer out with its readers, so they get far fast. Then
    // single removals to a fixpoint, each checked in full, so that the result is 1-minimal.
    closing = true;
    const closed = shrinkFailing(byTime, check, opts.maxShrinkChecks, close);
    closing = false;
    const single = shrinkFailing(closed.items, check, Math.max(0, opts.maxShrinkChecks - closed.checks));
    shrunk = {
      items: single.items,
      checks: guesses + closed.checks + single.checks,
      complete: single.complete,
    };
  }
  const kept = new Set(shrunk.items);
  return {
    minimal: ops.filter((op) => kept.has(op)),
    culprit,
    checks: shrunk.checks,
    steps: opts.maxShrinkSteps - Math.max(0, stepsLeft),
    complete: shrunk.complete,
  };
}

function resolveOptions(options: CheckOptions): ResolvedOptions {
  const integer = (name: Exclude<keyof typeof DEFAULT_CHECK_OPTIONS, "shrink">, min: number): number => {
    const value = options[name] ?? DEFAULT_CHECK_OPTIONS[name];
    if (typeof value !== "number" || !Number.isSafeInteger(value) || value < min) {
      throw new InvalidCheckOptionError(name, value, `an integer >= ${min}`);
    }
    return value;
  };
  const shrink = options.shrink ?? DEFAULT_CHECK_OPTIONS.shrink;
  if (!SHRINK_MODES.includes(shrink))
    throw new InvalidCheckOptionError("shrink", shrink, SHRINK_MODES.join(" | "));
  const initialValues = options.initialValues ?? {};
  for (const [key, value] of Object.entries(initialValues)) {
    if (typeof value !== "string") {
      throw new InvalidCheckOptionError(`initialValues[${JSON.stringify(key)}]`, value, "a string");
    }
  }
  return {
    limits: {
      maxStates: integer("maxStatesPerKey", 1),
      maxSteps: integer("maxStepsPerKey", 1),
      maxMemoBytes: integer("maxMemoBytesPerKey", 1),
    },
    maxSteps: integer("maxSteps", 0),
    shrink,
    maxShrinkChecks: integer("maxShrinkChecks", 0),
    maxShrinkSteps: integer("maxShrinkSteps", 0),
    initialValues,
  };
}
