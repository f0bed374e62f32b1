/**
 * A reference linearizability checker for tiny histories: it tries every order of every key's
 * operations. It shares nothing with the real search (no event list, no memo, no interning; its own
 * copy of the store's specification), so agreement between the two means something.
 */

import { INDETERMINATE, type Operation } from "../../../src/sim/checker/index.js";

/** Above this many operations on one key the enumeration is too slow to be a test oracle. */
export const BRUTE_FORCE_MAX_OPS_PER_KEY = 9;

export function bruteForceLinearizable(history: readonly Operation[]): boolean {
  const byKey = new Map<string, Operation[]>();
  for (const op of history) {
    if (op.completion !== INDETERMINATE && !op.completion.ok) continue; // never took effect
    const list = byKey.get(op.input.key) ?? [];
    list.push(op);
    byKey.set(op.input.key, list);
  }
  for (const ops of byKey.values()) {
    if (ops.length > BRUTE_FORCE_MAX_OPS_PER_KEY)
      throw new Error(`too many operations for brute force: ${ops.length}`);
    if (!someOrderWorks(ops)) return false;
  }
  return true;
}

function returnTime(op: Operation): number {
  return op.completion === INDETERMINATE ? Number.POSITIVE_INFINITY : op.completion.ok ? op.completion.at : 0;
}

function someOrderWorks(ops: readonly Operation[]): boolean {
  const placed = ops.map(() => false);
  const mustPlace = ops.filter((op) => op.completion !== INDETERMINATE).length;
  const go = (value: string | null, count: number): boolean => {
    if (count === mustPlace) return true; // unanswered operations left over: they never happened
    for (let i = 0; i < ops.length; i++) {
      if (placed[i]) continue;
      const op = ops[i]!;
      // It may come next only if nothing unplaced had already returned before it was invoked.
      const blocked = ops.some((other, j) => !placed[j] && j !== i && returnTime(other) < op.invokedAt);
      if (blocked) continue;
      const result = reference(op, value);
      if (result === undefined) continue;
      placed[i] = true;
      if (go(result, op.completion === INDETERMINATE ? count : count + 1)) return true;
      placed[i] = false;
    }
    return false;
  };
  return go(null, 0);
}

/** The next value, or undefined when the operation's answer is impossible from `value`. */
function reference(op: Operation, value: string | null): string | null | undefined {
  const c = op.completion;
  const answered = c !== INDETERMINATE && c.ok;
  const output = answered ? c.output : undefined;
  switch (op.f) {
    case "put":
      return op.input.value;
    case "get":
      return !answered || output === value ? value : undefined;
    case "delete":
      return !answered || output === (value !== null) ? null : undefined;
    case "cas": {
      const swaps = value === op.input.expected;
      if (answered && output !== swaps) return undefined;
      return swaps ? op.input.value : value;
    }
    case "append": {
      const after = (value ?? "") + op.input.suffix;
      return !answered || output === after ? after : undefined;
    }
  }
}
