/**
 * How well a history explains each answer on its own: which operations could have written the value
 * an answer shows, and whether such a write could still have been in place.
 *
 * The shrinker needs this. Linearizability is not monotone: removing a write can make a read of its
 * value impossible, and removing a delete can make a later read of "absent" impossible. A shrinker that
 * accepts any still-failing candidate therefore happily cuts "this read is stale" down to "this read
 * returned a value nobody wrote", or invents a failure the original never had: smaller, but blaming
 * the wrong thing. So the shrinker refuses a removal that leaves an answer less explained than it was
 * in the original history (`explainsLess`). (It also keeps the failure at the same answer: see
 * culprit.ts.)
 */

import { completedAt, INDETERMINATE, type Operation } from "./history.js";

/** How well the rest of a history explains an answer, from best to worst. */
export const SUPPORTED = 0;
/** Every operation that could have written the value was overwritten before the answer began. */
export const OVERWRITTEN = 1;
/** Operations could have written the value, but all of them were invoked after the answer returned. */
export const WRITTEN_LATER = 2;
/** No operation could have written the value at all. */
export const UNWRITTEN = 3;
export type Support = typeof SUPPORTED | typeof OVERWRITTEN | typeof WRITTEN_LATER | typeof UNWRITTEN;

export interface SupportEntry {
  readonly level: Support;
  /** For OVERWRITTEN: an operation that overwrote the value before the answer began. */
  readonly overwrittenBy?: Operation;
}

/** The values an answer needs the key to hold: one exact value, "absent or empty", or "present". */
type Need =
  | { readonly kind: "exact"; readonly value: string | null }
  | { readonly kind: "absent-or-empty" }
  | { readonly kind: "present" };

function needOf(op: Operation): Need | undefined {
  if (op.completion === INDETERMINATE || !op.completion.ok) return undefined;
  switch (op.f) {
    case "get":
      return { kind: "exact", value: op.completion.output };
    case "delete":
      return op.completion.output ? { kind: "present" } : { kind: "exact", value: null };
    case "cas":
      return op.completion.output ? { kind: "exact", value: op.input.expected } : undefined;
    case "append": {
      const answer = op.completion.output;
      const suffix = op.input.suffix;
      if (!answer.endsWith(suffix)) return undefined; // impossible anyway; nothing to explain
      const prior = answer.slice(0, answer.length - suffix.length);
      return prior === "" ? { kind: "absent-or-empty" } : { kind: "exact", value: prior };
    }
    default:
      return undefined;
  }
}

function satisfies(need: Need, value: string | null): boolean {
  switch (need.kind) {
    case "exact":
      return value === need.value;
    case "absent-or-empty":
      return value === null || value === "";
    case "present":
      return value !== null;
  }
}

function needKey(need: Need): string {
  return need.kind === "exact" ? `=${JSON.stringify(need.value)}` : need.kind;
}

/** The value an answered operation certainly left behind, whatever it found. */
function certainResult(op: Operation): string | null | undefined {
  if (op.completion === INDETERMINATE || !op.completion.ok) return undefined;
  switch (op.f) {
    case "put":
      return op.input.value;
    case "delete":
      return null;
    case "cas":
      return op.completion.output ? op.input.value : undefined;
    case "append":
      return op.completion.output;
    default:
      return undefined;
  }
}

/** What `op` might write: one exact value, or (an unanswered append) what was there plus `suffix`. */
function mightWrite(
  op: Operation,
): { readonly value: string | null } | { readonly suffix: string } | undefined {
  if (op.completion !== INDETERMINATE && !op.completion.ok) return undefined;
  switch (op.f) {
    case "put":
      return { value: op.input.value };
    case "delete":
      return { value: null };
    case "cas":
      return op.completion === INDETERMINATE || op.completion.output ? { value: op.input.value } : undefined;
    case "append":
      return op.completion === INDETERMINATE ? { suffix: op.input.suffix } : { value: op.completion.output };
    default:
      return undefined;
  }
}

interface Writer {
  readonly invokedAt: number;
  readonly returnedAt: number;
}

/** Per kind of need, the operations that might satisfy it, sorted by call time. */
class Writers {
  private readonly byKey = new Map<string, Writer[]>();
  /** Per key, per prefix of the sorted list: the index of the writer that returned last. */
  private readonly best = new Map<string, Int32Array>();

  add(key: string, writer: Writer): void {
    const list = this.byKey.get(key);
    if (list === undefined) this.byKey.set(key, [writer]);
    else list.push(writer);
  }

  addValue(value: string | null, writer: Writer): void {
    this.add(`=${JSON.stringify(value)}`, writer);
    if (value !== null) this.add("present", writer);
    if (value === null || value === "") this.add("absent-or-empty", writer);
  }

  /** Call once all writers are added. */
  seal(): void {
    for (const [key, list] of this.byKey) {
      list.sort((a, b) => a.invokedAt - b.invokedAt);
      const best = new Int32Array(list.length);
      list.forEach((w, i) => {
        best[i] = i > 0 && list[best[i - 1]!]!.returnedAt > w.returnedAt ? best[i - 1]! : i;
      });
      this.best.set(key, best);
    }
  }

  /** How many writers `key` has, and of those invoked by `until`, the one that returned last. */
  query(key: string, until: number): { total: number; best: Writer | undefined } {
    const list = this.byKey.get(key);
    if (list === undefined) return { total: 0, best: undefined };
    let lo = 0;
    let hi = list.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (list[mid]!.invokedAt <= until) lo = mid + 1;
      else hi = mid;
    }
    return { total: list.length, best: lo === 0 ? undefined : list[this.best.get(key)![lo - 1]!] };
  }
}

/**
 * For each answered operation of one key that needs a value, how well the others explain it. Only
 * operations invoked before the answer returned count as its writers (the initial value counts as one
 * written at -infinity). An answer is OVERWRITTEN when even the writer that returned last returned
 * before some answered operation that certainly wrote something else began, and that one returned
 * before the answer began. An unanswered append counts as a writer of a value only if the value ends
 * with its suffix and what comes before could itself have been written.
 */
export function answerSupport(
  ops: readonly Operation[],
  initialValue: string | null,
): Map<number, SupportEntry> {
  const needers = ops
    .map((op) => ({ op, need: needOf(op) }))
    .filter((n): n is { op: Operation; need: Need } => n.need !== undefined)
    .sort((a, b) => a.op.invokedAt - b.op.invokedAt);
  const writers = collectWriters(ops, initialValue, needers);

  // Sweep the answers by call time, keeping, among the setters that returned before it, the latest
  // called one per resulting value, for the three latest values (a need excludes at most two).
  const setters = ops
    .map((op) => ({ op, value: certainResult(op) }))
    .filter((s): s is { op: Operation; value: string | null } => s.value !== undefined)
    .sort((a, b) => completedAt(a.op) - completedAt(b.op));
  const latest: { value: string | null; op: Operation }[] = [];
  let s = 0;
  const result = new Map<number, SupportEntry>();
  for (const { op, need } of needers) {
    while (s < setters.length && completedAt(setters[s]!.op) < op.invokedAt) {
      const setter = setters[s++]!;
      const known = latest.findIndex((e) => e.value === setter.value);
      if (known >= 0 && latest[known]!.op.invokedAt >= setter.op.invokedAt) continue;
      if (known >= 0) latest.splice(known, 1);
      latest.push(setter);
      latest.sort((a, b) => b.op.invokedAt - a.op.invokedAt);
      if (latest.length > 3) latest.pop();
    }
    const overwriter = latest.find((e) => !satisfies(need, e.value));
    // Only a write invoked before the answer returned can explain it.
    const { total, best } = writers.query(needKey(need), completedAt(op));
    if (total === 0) result.set(op.id, { level: UNWRITTEN });
    else if (best === undefined) result.set(op.id, { level: WRITTEN_LATER });
    else if (overwriter !== undefined && best.returnedAt < overwriter.op.invokedAt) {
      result.set(op.id, { level: OVERWRITTEN, overwrittenBy: overwriter.op });
    } else {
      result.set(op.id, { level: SUPPORTED });
    }
  }
  return result;
}

function collectWriters(
  ops: readonly Operation[],
  initialValue: string | null,
  needers: readonly { need: Need }[],
): Writers {
  const writers = new Writers();
  const initial = { invokedAt: Number.NEGATIVE_INFINITY, returnedAt: Number.NEGATIVE_INFINITY };
  writers.addValue(initialValue, initial);
  const exact = new Set<string | null>([initialValue]);
  const appends: { op: Operation; suffix: string }[] = [];
  for (const w of ops) {
    const written = mightWrite(w);
    if (written === undefined) continue;
    if ("value" in written) {
      writers.addValue(written.value, { invokedAt: w.invokedAt, returnedAt: completedAt(w) });
      exact.add(written.value);
    } else {
      appends.push({ op: w, suffix: written.suffix });
    }
  }

  // An unanswered append writes what was there plus its suffix: it can write a needed value when what
  // precedes the suffix could itself have been written (by anyone, possibly another such append).
  const memo = new Map<string, boolean>();
  const writable = (value: string): boolean => {
    if (value === "" && (exact.has(null) || exact.has(""))) return true;
    if (exact.has(value)) return true;
    const known = memo.get(value);
    if (known !== undefined) return known;
    memo.set(value, false);
    const ok = appends.some(
      ({ suffix }) =>
        suffix !== "" && value.endsWith(suffix) && writable(value.slice(0, value.length - suffix.length)),
    );
    memo.set(value, ok);
    return ok;
  };
  const exactNeeds = new Set<string>();
  for (const { need } of needers)
    if (need.kind === "exact" && need.value !== null) exactNeeds.add(need.value);
  for (const { op, suffix } of appends) {
    const writer = { invokedAt: op.invokedAt, returnedAt: Number.POSITIVE_INFINITY };
    writers.add("present", writer);
    if (suffix === "") continue;
    for (const v of exactNeeds) {
      if (v.endsWith(suffix) && writable(v.slice(0, v.length - suffix.length)))
        writers.add(`=${JSON.stringify(v)}`, writer);
    }
  }
  writers.seal();
  return writers;
}

/**
 * Whether `candidate` (a sub-history of the one `before` describes) supports answer `id` worse, or
 * (without `id`) any answer.
 */
export function explainsLess(
  before: ReadonlyMap<number, SupportEntry>,
  candidate: readonly Operation[],
  initialValue: string | null,
  id?: number,
): boolean {
  for (const [answer, entry] of answerSupport(candidate, initialValue)) {
    if (id !== undefined && answer !== id) continue;
    if (entry.level > (before.get(answer)?.level ?? SUPPORTED)) return true;
  }
  return false;
}

/** How many writers `bearingOn` names at most: with unique values there is one. */
const MAX_BEARING_WRITERS = 8;

/**
 * The operations that bear on one answer: those that might have written the value it needs (the
 * latest few invoked before it returned, or if none was, the first few after), and the operation that
 * overwrote that value before it began, if one did. The shrinker tries the answer with just these
 * first: for a stale read or a read from the future, that is usually the whole story, found without
 * searching ever smaller halves of a large history.
 */
export function bearingOn(
  ops: readonly Operation[],
  target: Operation,
  initialValue: string | null,
): Operation[] {
  const need = needOf(target);
  if (need === undefined) return [];
  const writers = ops.filter((w) => {
    if (w === target) return false;
    const written = mightWrite(w);
    if (written === undefined) return false;
    if ("value" in written) return satisfies(need, written.value);
    return (
      need.kind === "present" ||
      (need.kind === "exact" && need.value !== null && need.value.endsWith(written.suffix))
    );
  });
  const until = completedAt(target);
  const before = writers.filter((w) => w.invokedAt <= until).sort((a, b) => completedAt(b) - completedAt(a));
  const after = writers.filter((w) => w.invokedAt > until).sort((a, b) => a.invokedAt - b.invokedAt);
  const bearing = (before.length > 0 ? before : after).slice(0, MAX_BEARING_WRITERS);
  const overwriter = answerSupport(ops, initialValue).get(target.id)?.overwrittenBy;
  if (overwriter !== undefined && !bearing.includes(overwriter)) bearing.push(overwriter);
  return bearing;
}
