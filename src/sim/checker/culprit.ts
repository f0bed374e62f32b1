/**
 * The culprit of a failing history: the first answer that no order can explain.
 *
 * Replay a key's history by its return events. Just after event e, what the clients know is the
 * *prefix at e*: every operation invoked by then, those that had returned (events up to e) with their
 * answers, the rest still open (unanswered: they may take effect later, or not). Prefixes only gain
 * constraints as e advances: operations invoked later must follow every answer already given, so any
 * linearization of a later prefix, cut after its last earlier answer, is one of the earlier prefix.
 * Hence once a prefix fails, every later one fails, and there is a first failing prefix; the operation
 * whose return it adds is the culprit. Everything answered before it is jointly explainable; its answer
 * is the one that contradicts them. A binary search finds it in O(log n) searches.
 *
 * The shrinker keeps the culprit, and accepts a smaller history only if that history first fails at
 * the culprit's answer too. Removing a write can make some other answer impossible, an artifact of the
 * cut rather than of the system; such an artifact shows up as an earlier first failure, or none at the
 * culprit, and is refused.
 */

import { INDETERMINATE, type Operation } from "./history.js";
import { applyKv } from "./model.js";

/**
 * The answered ops of one key (their indexes) in return order: by time, then by id, so that every
 * sub-history orders its returns alike, whatever order its operations come in.
 */
function returnOrder(ops: readonly Operation[]): number[] {
  const answered: number[] = [];
  for (let i = 0; i < ops.length; i++) {
    const c = ops[i]!.completion;
    if (c !== INDETERMINATE && c.ok) answered.push(i);
  }
  return answered.sort((a, b) => returnTime(ops[a]!) - returnTime(ops[b]!) || ops[a]!.id - ops[b]!.id);
}

function returnTime(op: Operation): number {
  const c = op.completion;
  return c !== INDETERMINATE && c.ok ? c.at : Number.POSITIVE_INFINITY;
}

/**
 * The prefix of `ops` just after the return of `ops[last]` (or, with `excludingLast`, just before it):
 * operations invoked by then, answered if their return comes no later in return order, else open.
 * `rank` gives each answered operation's position in return order.
 */
export function prefixAt(
  ops: readonly Operation[],
  rank: ReadonlyMap<Operation, number>,
  last: Operation,
  excludingLast: boolean,
): Operation[] {
  const t = returnTime(last);
  const lastRank = rank.get(last)!;
  const prefix: Operation[] = [];
  for (const op of ops) {
    if (op.invokedAt > t) continue;
    const r = rank.get(op);
    if (r !== undefined && (r < lastRank || (r === lastRank && !excludingLast))) {
      prefix.push(op);
      continue;
    }
    // Still open: it may take effect later or not, and its answer is not known yet. An open read
    // has no effect at all.
    if (op.f !== "get") prefix.push({ ...op, completion: INDETERMINATE });
  }
  return prefix;
}

export function rankOf(ops: readonly Operation[]): Map<Operation, number> {
  const rank = new Map<Operation, number>();
  const order = returnOrder(ops);
  for (let r = 0; r < order.length; r++) rank.set(ops[order[r]!]!, r);
  return rank;
}

/**
 * The culprit of a failing history, given `fails(prefix)` (which may answer undefined: could not
 * tell). Undefined when some probe could not tell, or no prefix fails.
 */
export function findCulprit(
  ops: readonly Operation[],
  fails: (prefix: readonly Operation[]) => boolean | undefined,
): Operation | undefined {
  const order = returnOrder(ops);
  const rank = rankOf(ops);
  let lo = 0;
  let hi = order.length - 1;
  if (hi < 0) return undefined;
  const lastFails = fails(prefixAt(ops, rank, ops[order[hi]!]!, false));
  if (lastFails !== true) return undefined;
  // Invariant: the prefix at order[hi] fails; every prefix before order[lo] passes.
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    const verdict = fails(prefixAt(ops, rank, ops[order[mid]!]!, false));
    if (verdict === undefined) return undefined;
    if (verdict) hi = mid;
    else lo = mid + 1;
  }
  return ops[order[hi]!];
}

/**
 * What each operation of a linearization read from: for every operation in `order` whose answer or
 * effect depends on the value it found (a get, a delete's answer, a swap, an append), the id of the
 * operation that wrote that value (the last write before it in `order`), by reader id. Operations that
 * found the initial value are not in the map.
 *
 * Given the witness order of the prefix just before the culprit, a sub-history that keeps, with every
 * operation, the one it read from, is still explained by the same order restricted to it: each
 * operation finds the same value. So removing an operation together with everything that read from
 * it (transitively) can never make an answer before the culprit impossible.
 */
export function readFrom(order: readonly Operation[], initialValue: string | null): Map<number, number> {
  const source = new Map<number, number>();
  let value = initialValue;
  let writer: Operation | undefined;
  for (const op of order) {
    const dependsOnValue =
      op.f === "get" ||
      op.f === "cas" ||
      op.f === "append" ||
      (op.f === "delete" && op.completion !== INDETERMINATE);
    if (dependsOnValue && writer !== undefined) source.set(op.id, writer.id);
    const next = applyKv(op, value).next;
    if (op.f !== "get" && (op.f !== "cas" || next !== value)) writer = op;
    value = next;
  }
  return source;
}
