/**
 * The data a linearizability check takes: key-value operations as their clients saw them.
 *
 * A history is plain data (numbers, strings, booleans, null) so that the deterministic simulator, a
 * chaos run against real server processes, or a JSON file saved from either can all produce one; the
 * checker never needs the engine.
 */

import { InvalidHistoryError } from "./errors.js";

/** Who issued an operation. Informational: the checker orders operations by time, not by client. */
export type ClientId = number | string;

/** The input of each operation of the store's sequential specification. */
export interface KvInputs {
  put: { readonly key: string; readonly value: string };
  get: { readonly key: string };
  /** Removes the key; answers whether it existed. */
  delete: { readonly key: string };
  /** Sets `value` if the key currently holds `expected`; `expected: null` means "the key is absent". */
  cas: { readonly key: string; readonly expected: string | null; readonly value: string };
  /** Appends `suffix` to the value (an absent key counts as ""); answers the value after appending. */
  append: { readonly key: string; readonly suffix: string };
}

/** The output of each operation: what a client that got an answer was told. */
export interface KvOutputs {
  /** A put answers nothing; its output is ignored. */
  put: null;
  /** The value, or null when the key is absent. */
  get: string | null;
  /** Whether the key existed. */
  delete: boolean;
  /** Whether the swap happened. */
  cas: boolean;
  /** The value after appending. */
  append: string;
}

export type KvFunction = keyof KvInputs;

const KV_FUNCTIONS: readonly KvFunction[] = ["put", "get", "delete", "cas", "append"];

/** The client got an answer at `at`. */
export interface Returned<O> {
  readonly ok: true;
  readonly output: O;
  readonly at: number;
}

/**
 * A definite failure: the operation did not take effect (refused before it reached raft, say). It is
 * dropped from the history before checking.
 */
export interface Failed {
  readonly ok: false;
}

/**
 * No answer (timed out, connection lost): the operation may have taken effect at any time after its
 * invocation, or never. It is checked as if it completed at +infinity with an unknown output.
 */
export const INDETERMINATE = "indeterminate";
export type Indeterminate = typeof INDETERMINATE;

export type Completion<O> = Returned<O> | Failed | Indeterminate;

export interface OperationOf<F extends KvFunction> {
  /** Unique within the history; the explanation of a violation names operations by it. */
  readonly id: number;
  readonly client: ClientId;
  readonly f: F;
  readonly input: KvInputs[F];
  /** When the client sent it (any consistent unit: virtual ms, real ms). */
  readonly invokedAt: number;
  readonly completion: Completion<KvOutputs[F]>;
}

/** One operation; `op.f` narrows both its input and its output. */
export type Operation = { [F in KvFunction]: OperationOf<F> }[KvFunction];

export type History = readonly Operation[];

/** When the operation returned, or +Infinity when it never did (indeterminate). */
export function completedAt(op: Operation): number {
  const c = op.completion;
  return c !== INDETERMINATE && c.ok ? c.at : Number.POSITIVE_INFINITY;
}

/**
 * Checks the shape of a history. Static types do not hold for histories read back from JSON or sent
 * over IPC, so every field is checked at run time.
 */
export function validateHistory(history: History): void {
  if (!Array.isArray(history))
    throw new InvalidHistoryError(null, "a history must be an array of operations");
  const ids = new Set<number>();
  for (const op of history) {
    if (op === null || typeof op !== "object")
      throw new InvalidHistoryError(null, "an operation must be an object");
    const id = op.id;
    if (!Number.isSafeInteger(id))
      throw new InvalidHistoryError(null, `operation id ${String(id)} is not an integer`);
    if (ids.has(id)) throw new InvalidHistoryError(id, "duplicate operation id");
    ids.add(id);
    if (typeof op.client !== "number" && typeof op.client !== "string") {
      throw new InvalidHistoryError(id, "client must be a number or a string");
    }
    if (!Number.isFinite(op.invokedAt))
      throw new InvalidHistoryError(id, "invokedAt must be a finite number");
    validateInput(op);
    const c = op.completion;
    if (c === INDETERMINATE) continue;
    if (c === null || typeof c !== "object" || typeof c.ok !== "boolean") {
      throw new InvalidHistoryError(
        id,
        'completion must be { ok: true, output, at }, { ok: false } or "indeterminate"',
      );
    }
    if (!c.ok) continue;
    if (!Number.isFinite(c.at)) throw new InvalidHistoryError(id, "completion time must be a finite number");
    if (!(c.at > op.invokedAt)) {
      throw new InvalidHistoryError(id, `completed at ${c.at}, not after its invocation at ${op.invokedAt}`);
    }
    validateOutput(op.f, c.output, id);
  }
}

function validateInput(op: Operation): void {
  const id = op.id;
  const input: unknown = op.input;
  if (input === null || typeof input !== "object")
    throw new InvalidHistoryError(id, "input must be an object");
  if (typeof op.input.key !== "string") throw new InvalidHistoryError(id, "input.key must be a string");
  switch (op.f) {
    case "put":
      if (typeof op.input.value !== "string")
        throw new InvalidHistoryError(op.id, "put needs a string value");
      return;
    case "get":
    case "delete":
      return;
    case "cas":
      if (op.input.expected !== null && typeof op.input.expected !== "string") {
        throw new InvalidHistoryError(op.id, "cas needs expected: string | null");
      }
      if (typeof op.input.value !== "string")
        throw new InvalidHistoryError(op.id, "cas needs a string value");
      return;
    case "append":
      if (typeof op.input.suffix !== "string")
        throw new InvalidHistoryError(op.id, "append needs a string suffix");
      return;
    default: {
      const f: unknown = (op as { f: unknown }).f;
      throw new InvalidHistoryError(
        id,
        `unknown operation ${JSON.stringify(f)} (expected ${KV_FUNCTIONS.join(", ")})`,
      );
    }
  }
}

/** Throws unless `output` has the type `f` answers with. */
function validateOutput(f: KvFunction, output: unknown, id: number): void {
  switch (f) {
    case "put":
      return; // nothing to check: a put's answer carries no information
    case "get":
      if (output !== null && typeof output !== "string") {
        throw new InvalidHistoryError(id, "get must return a string or null");
      }
      return;
    case "delete":
    case "cas":
      if (typeof output !== "boolean") throw new InvalidHistoryError(id, `${f} must return a boolean`);
      return;
    case "append":
      if (typeof output !== "string") throw new InvalidHistoryError(id, "append must return a string");
      return;
  }
}

/**
 * Splits a history by key, keeping only what can matter to a check: definite failures never took
 * effect, and an indeterminate get has neither an effect nor an output, so both are dropped.
 * Keys come out in sorted order so that every run visits them alike.
 */
export function partitionByKey(history: History): Map<string, Operation[]> {
  const byKey = new Map<string, Operation[]>();
  for (const op of history) {
    const c = op.completion;
    if (c !== INDETERMINATE && !c.ok) continue;
    if (c === INDETERMINATE && op.f === "get") continue;
    const list = byKey.get(op.input.key);
    if (list === undefined) byKey.set(op.input.key, [op]);
    else list.push(op);
  }
  return new Map([...byKey.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}
