/**
 * The sequential specification of one key of the store, in two forms:
 *
 * - `applyKv`: the specification as plainly as it can be written, on strings. Explanations and
 *   tests use it.
 * - `KeyModel`: the same specification compiled for the search. Every value is interned, so a model
 *   state is a small integer, and every comparison an output calls for is resolved to integers up
 *   front: a step allocates nothing (except the first time an unanswered append meets a state).
 */

import {
  completedAt,
  INDETERMINATE,
  type KvFunction,
  type KvInputs,
  type KvOutputs,
  type Operation,
} from "./history.js";
import { ABSENT, ValueTable } from "./values.js";

/** An operation's function and input, without its timing: what `applyKv` needs. */
export type KvCall = { [F in KvFunction]: { readonly f: F; readonly input: KvInputs[F] } }[KvFunction];

/** What one operation does to a value, and what it answers. */
export interface Applied {
  readonly next: string | null;
  readonly output: KvOutputs[KvFunction];
}

/** The sequential specification: `call` applied to `value` (null = absent). */
export function applyKv(call: KvCall, value: string | null): Applied {
  switch (call.f) {
    case "put":
      return { next: call.input.value, output: null };
    case "get":
      return { next: value, output: value };
    case "delete":
      return { next: null, output: value !== null };
    case "cas": {
      const swapped = value === call.input.expected;
      return { next: swapped ? call.input.value : value, output: swapped };
    }
    case "append": {
      const next = (value ?? "") + call.input.suffix;
      return { next, output: next };
    }
  }
}

const PUT = 0;
const GET = 1;
const DELETE = 2;
const CAS = 3;
const APPEND = 4;

/** The output was never seen (the operation is indeterminate): any output is consistent. */
const UNKNOWN = -1;
/** An append answered a value that does not end with its suffix: no state makes that possible. */
const NEVER = -2;

/** Returned by `KeyModel.step` when the operation cannot come next from that state. */
export const INCONSISTENT = -1;

export class KeyModel {
  readonly size: number;
  readonly values = new ValueTable();
  readonly initialState: number;
  /** 1 when the operation returned: its output is known and its completion time is finite. */
  readonly returned: Uint8Array;
  readonly invokedAt: Float64Array;
  /** +Infinity for an operation that never returned. */
  readonly completedAt: Float64Array;
  /**
   * 1 for an answered operation whose answer shows it changed nothing wherever it took effect: a get,
   * a failed swap, a delete that found nothing, a swap of a value for itself. (A put of the value the
   * key holds now is not one: placed elsewhere it would change the value.)
   */
  readonly readOnly: Uint8Array;
  private readonly kind: Uint8Array;
  /** put: the value; cas: the expected value; append with an answer: the value it must have followed. */
  private readonly argA: Int32Array;
  /** cas: the new value; append with an answer: 1 when that prefix is "" (which an absent key also is). */
  private readonly argB: Int32Array;
  /** The interned output (get, append) or 0/1 (delete, cas); UNKNOWN when the operation never returned. */
  private readonly output: Int32Array;
  /** The suffix of an append that never returned (its next value depends on the state). */
  private readonly suffix: (string | null)[];
  /** (state, append) → next state, for appends that never returned; keyed `state * size + op`. */
  private readonly appendNext = new Map<number, number>();

  /**
   * `ops` are one key's operations, none of them a definite failure (see `partitionByKey`); their
   * indexes in this array are the operation numbers the search uses.
   */
  constructor(
    readonly ops: readonly Operation[],
    initialValue: string | null,
  ) {
    const n = ops.length;
    this.size = n;
    this.initialState = this.values.id(initialValue);
    this.returned = new Uint8Array(n);
    this.invokedAt = new Float64Array(n);
    this.completedAt = new Float64Array(n);
    this.readOnly = new Uint8Array(n);
    this.kind = new Uint8Array(n);
    this.argA = new Int32Array(n);
    this.argB = new Int32Array(n);
    this.output = new Int32Array(n).fill(UNKNOWN);
    this.suffix = new Array<string | null>(n).fill(null);
    for (let i = 0; i < n; i++) this.compile(i, ops[i]!);
  }

  private compile(i: number, op: Operation): void {
    const c = op.completion;
    const returned = c !== INDETERMINATE && c.ok;
    this.returned[i] = returned ? 1 : 0;
    this.invokedAt[i] = op.invokedAt;
    this.completedAt[i] = completedAt(op);
    const values = this.values;
    switch (op.f) {
      case "put":
        this.kind[i] = PUT;
        this.argA[i] = values.id(op.input.value);
        return;
      case "get":
        this.kind[i] = GET;
        if (op.completion !== INDETERMINATE && op.completion.ok) {
          this.output[i] = values.id(op.completion.output);
          this.readOnly[i] = 1;
        }
        return;
      case "delete":
        this.kind[i] = DELETE;
        if (op.completion !== INDETERMINATE && op.completion.ok) {
          this.output[i] = op.completion.output ? 1 : 0;
          this.readOnly[i] = op.completion.output ? 0 : 1;
        }
        return;
      case "cas":
        this.kind[i] = CAS;
        this.argA[i] = values.id(op.input.expected);
        this.argB[i] = values.id(op.input.value);
        if (op.completion !== INDETERMINATE && op.completion.ok) {
          this.output[i] = op.completion.output ? 1 : 0;
          this.readOnly[i] = !op.completion.output || op.input.expected === op.input.value ? 1 : 0;
        }
        return;
      case "append": {
        this.kind[i] = APPEND;
        const suffix = op.input.suffix;
        if (op.completion === INDETERMINATE || !op.completion.ok) {
          this.suffix[i] = suffix;
          return;
        }
        const answer = op.completion.output;
        this.output[i] = values.id(answer);
        if (!answer.endsWith(suffix)) {
          this.argA[i] = NEVER;
          return;
        }
        const prefix = answer.slice(0, answer.length - suffix.length);
        this.argA[i] = values.id(prefix);
        this.argB[i] = prefix === "" ? 1 : 0;
        return;
      }
    }
  }

  /**
   * The state after operation `op` is applied in `state`, or INCONSISTENT when its answer rules that
   * out. An operation that never returned is consistent with every state.
   */
  step(op: number, state: number): number {
    const out = this.output[op]!;
    switch (this.kind[op]) {
      case PUT:
        return this.argA[op]!;
      case GET:
        return out === UNKNOWN || out === state ? state : INCONSISTENT;
      case DELETE:
        return out === UNKNOWN || out === (state === ABSENT ? 0 : 1) ? ABSENT : INCONSISTENT;
      case CAS: {
        const swapped = state === this.argA[op];
        if (out !== UNKNOWN && out !== (swapped ? 1 : 0)) return INCONSISTENT;
        return swapped ? this.argB[op]! : state;
      }
      default: {
        if (out === UNKNOWN) return this.appendUnanswered(op, state);
        // NEVER is negative, so it matches no state.
        const prefix = this.argA[op]!;
        return state === prefix || (this.argB[op] === 1 && state === ABSENT) ? out : INCONSISTENT;
      }
    }
  }

  private appendUnanswered(op: number, state: number): number {
    const memoKey = state * this.size + op;
    const known = this.appendNext.get(memoKey);
    if (known !== undefined) return known;
    const next = this.values.id((this.values.value(state) ?? "") + this.suffix[op]!);
    this.appendNext.set(memoKey, next);
    return next;
  }
}
