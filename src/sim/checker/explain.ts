/**
 * Turning a failing history into text a person can check by hand: each operation with its client,
 * call, times and answer; the culprit; the longest order the search could justify; and why nothing
 * can follow it.
 */

import { completedAt, INDETERMINATE, type Operation } from "./history.js";
import { applyKv } from "./model.js";
import { answerSupport, type SupportEntry, UNWRITTEN, WRITTEN_LATER } from "./sources.js";

/** Longer values are cut in explanations, so that one huge value does not drown the rest. */
const MAX_VALUE_CHARS = 60;

export function formatValue(value: string | null): string {
  if (value === null) return "null";
  if (value.length <= MAX_VALUE_CHARS) return JSON.stringify(value);
  return `${JSON.stringify(value.slice(0, MAX_VALUE_CHARS))}…(${value.length} chars)`;
}

function formatOutput(output: unknown): string {
  if (output === null || typeof output === "string") return formatValue(output);
  return String(output);
}

/** `put("k", "v")`, `cas("k", null → "v")`, ... */
export function describeCall(op: Operation): string {
  const key = formatValue(op.input.key);
  switch (op.f) {
    case "put":
      return `put(${key}, ${formatValue(op.input.value)})`;
    case "get":
      return `get(${key})`;
    case "delete":
      return `delete(${key})`;
    case "cas":
      return `cas(${key}, ${formatValue(op.input.expected)} → ${formatValue(op.input.value)})`;
    case "append":
      return `append(${key}, ${formatValue(op.input.suffix)})`;
  }
}

/** The call with what it answered: `get("k") → "v"`, `put("k", "v") → ok`, `delete("k") → ?`. */
export function describeCallAndAnswer(op: Operation): string {
  const c = op.completion;
  if (c === INDETERMINATE) return `${describeCall(op)} → ?`;
  if (!c.ok) return `${describeCall(op)} → failed`;
  return `${describeCall(op)} → ${op.f === "put" ? "ok" : formatOutput(c.output)}`;
}

/** One line per operation: `#12 client 3: get("k") → "v", invoked 10, returned 20`. */
export function describeOperation(op: Operation): string {
  const c = op.completion;
  const when =
    c === INDETERMINATE
      ? `invoked ${op.invokedAt}, never answered (indeterminate)`
      : c.ok
        ? `invoked ${op.invokedAt}, returned ${c.at}`
        : `invoked ${op.invokedAt}, failed (did not take effect)`;
  return `#${op.id} client ${String(op.client)}: ${describeCallAndAnswer(op)}, ${when}`;
}

export interface ViolationFacts {
  /** The longest consistent order the search found (indexes into the operations). */
  readonly longest: readonly number[];
  /** The first answer no order explains, if known. */
  readonly culprit: Operation | undefined;
  /** Whether the shrinker knows the history to be minimal. */
  readonly complete: boolean;
}

/** Explains why `ops` (one key's failing history) has no linearization. */
export function explainViolation(
  key: string,
  ops: readonly Operation[],
  initialValue: string | null,
  facts: ViolationFacts,
): string {
  const byInvocation = ops.slice().sort((a, b) => a.invokedAt - b.invokedAt || a.id - b.id);
  const start = initialValue === null ? "the key absent" : formatValue(initialValue);
  const lines = [
    `key ${formatValue(key)}: no order of these ${ops.length} operations respects both their real-time ` +
      `order and the answers they got (starting from ${start}):`,
    ...byInvocation.map((op) => `  ${describeOperation(op)}${op === facts.culprit ? "   <- culprit" : ""}`),
  ];
  if (facts.culprit !== undefined) {
    lines.push(
      `The culprit is #${facts.culprit.id}: every answer given before it returned can be explained ` +
        "together, and its answer cannot be added to them.",
    );
  }

  let value = initialValue;
  for (const i of facts.longest) value = applyKv(ops[i]!, value).next;
  const placed = new Set(facts.longest);
  if (facts.longest.length === 0) {
    lines.push("No operation can come first:");
  } else {
    const order = facts.longest
      .map((i) => `#${ops[i]!.id} ${describeCallAndAnswer(ops[i]!)}`)
      .join(", then ");
    lines.push(`The longest order that holds together: ${order}.`);
    lines.push(`After it the key holds ${formatValue(value)}, and nothing can come next:`);
  }
  const support = answerSupport(ops, initialValue);
  for (let i = 0; i < ops.length; i++) {
    if (!placed.has(i))
      lines.push(`  #${ops[i]!.id}: ${whyNotNext(ops, i, placed, value, support.get(ops[i]!.id))}`);
  }
  if (facts.complete)
    lines.push("It is minimal: removing any one of these operations takes that failure away.");
  return lines.join("\n");
}

function whyNotNext(
  ops: readonly Operation[],
  i: number,
  placed: ReadonlySet<number>,
  value: string | null,
  support: SupportEntry | undefined,
): string {
  const op = ops[i]!;
  if (support?.level === UNWRITTEN)
    return "its answer needs a value that no operation here could have written";
  if (support?.level === WRITTEN_LATER) {
    return "its answer needs a value that only operations invoked after it returned could have written";
  }
  if (support?.overwrittenBy !== undefined) {
    const by = support.overwrittenBy;
    return `its answer needs a value that #${by.id} ${describeCallAndAnswer(by)} had overwritten for good before it was invoked`;
  }
  let blocker: Operation | undefined;
  for (let j = 0; j < ops.length; j++) {
    const other = ops[j]!;
    if (placed.has(j) || j === i) continue;
    if (
      completedAt(other) < op.invokedAt &&
      (blocker === undefined || completedAt(other) < completedAt(blocker))
    ) {
      blocker = other;
    }
  }
  if (blocker !== undefined) {
    return `must come after #${blocker.id}, which returned (at ${completedAt(blocker)}) before it was invoked (at ${op.invokedAt})`;
  }
  const c = op.completion;
  if (c !== INDETERMINATE && c.ok && op.f !== "put") {
    const expected = applyKv(op, value).output;
    if (expected !== c.output)
      return `it would answer ${formatOutput(expected)} here, but answered ${formatOutput(c.output)}`;
  }
  return "it could come next, but then the rest cannot be ordered";
}
