/**
 * A compact way to write histories by hand. Each helper takes the client, the call, when it was
 * invoked, and how it ended: a completion time (then the answer follows), "?" for no answer
 * (indeterminate) or "fail" for a definite failure.
 */

import { INDETERMINATE, type Operation } from "../../../src/sim/checker/index.js";

export type End = number | "?" | "fail";

type WithoutId<T> = T extends unknown ? Omit<T, "id"> : never;
export type Spec = WithoutId<Operation>;

function ending<O>(end: End, output: O) {
  if (end === "?") return INDETERMINATE;
  if (end === "fail") return { ok: false as const };
  return { ok: true as const, output, at: end };
}

export function put(client: number, key: string, value: string, invokedAt: number, end: End): Spec {
  return { f: "put", client, input: { key, value }, invokedAt, completion: ending(end, null) };
}

export function get(
  client: number,
  key: string,
  invokedAt: number,
  end: End,
  output: string | null = null,
): Spec {
  return { f: "get", client, input: { key }, invokedAt, completion: ending(end, output) };
}

export function del(client: number, key: string, invokedAt: number, end: End, existed = false): Spec {
  return { f: "delete", client, input: { key }, invokedAt, completion: ending(end, existed) };
}

export function cas(
  client: number,
  key: string,
  expected: string | null,
  value: string,
  invokedAt: number,
  end: End,
  swapped = false,
): Spec {
  return { f: "cas", client, input: { key, expected, value }, invokedAt, completion: ending(end, swapped) };
}

export function append(
  client: number,
  key: string,
  suffix: string,
  invokedAt: number,
  end: End,
  output = "",
): Spec {
  return { f: "append", client, input: { key, suffix }, invokedAt, completion: ending(end, output) };
}

/** Numbers the operations 1, 2, 3, ... in the order given. */
export function historyOf(...specs: Spec[]): Operation[] {
  return specs.map((s, i) => ({ ...s, id: i + 1 }));
}
