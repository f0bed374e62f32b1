/**
 * `HistoryRecorder`: builds a history as a test, the simulator or a chaos client runs, one call at a
 * time. Each answer is checked against its operation when recorded, so a recording bug shows up where
 * it happens rather than as a puzzling verdict later.
 */

import { InvalidHistoryError } from "./errors.js";
import { type ClientId, type History, INDETERMINATE, type KvOutputs, type Operation } from "./history.js";
import type { KvCall } from "./model.js";

export class HistoryRecorder {
  private readonly ops: Operation[] = [];
  /** Ids (which are indexes in `ops`) of the operations that have no completion yet. */
  private readonly open = new Set<number>();

  /** Records a call; returns its id, which `returned`, `failed` and `indeterminate` take. */
  invoke(client: ClientId, call: KvCall, at: number): number {
    const id = this.ops.length;
    this.ops.push({ ...call, id, client, invokedAt: at, completion: INDETERMINATE });
    this.open.add(id);
    return id;
  }

  /** The client got `output` at `at`. */
  returned(id: number, output: KvOutputs[keyof KvOutputs], at: number): void {
    const op = this.waiting(id);
    if (!(at > op.invokedAt)) {
      throw new InvalidHistoryError(id, `answered at ${at}, not after its call at ${op.invokedAt}`);
    }
    this.ops[id] = withAnswer(op, output, at);
    this.open.delete(id);
  }

  /** The operation definitely did not take effect (refused before it reached raft). */
  failed(id: number): void {
    this.ops[id] = { ...this.waiting(id), completion: { ok: false } };
    this.open.delete(id);
  }

  /** No answer, and none will be awaited: it may or may not have taken effect. */
  indeterminate(id: number): void {
    this.waiting(id);
    this.open.delete(id);
  }

  /** The history so far; operations still waiting for an answer count as indeterminate. */
  history(): History {
    return this.ops.slice();
  }

  private waiting(id: number): Operation {
    if (!this.open.has(id)) {
      throw new InvalidHistoryError(id, this.ops[id] === undefined ? "no such operation" : "completed twice");
    }
    return this.ops[id]!;
  }
}

function withAnswer(op: Operation, output: KvOutputs[keyof KvOutputs], at: number): Operation {
  const wrong = (expected: string) => new InvalidHistoryError(op.id, `${op.f} must return ${expected}`);
  switch (op.f) {
    case "put":
      return { ...op, completion: { ok: true, output: null, at } };
    case "get":
      if (output !== null && typeof output !== "string") throw wrong("a string or null");
      return { ...op, completion: { ok: true, output, at } };
    case "delete":
    case "cas":
      if (typeof output !== "boolean") throw wrong("a boolean");
      return { ...op, completion: { ok: true, output, at } };
    case "append":
      if (typeof output !== "string") throw wrong("a string");
      return { ...op, completion: { ok: true, output, at } };
  }
}
