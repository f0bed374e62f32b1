/**
 * The chaos workload's operations: what a client calls (the checker's key-value functions), the Redis
 * commands that do exactly that, and what their replies mean for the history.
 *
 * - put(k, v): `SET k v` → OK.
 * - get(k): `GET k` → the value or nil.
 * - delete(k): `DEL k` → 1 or 0 (whether it existed).
 * - cas(k, absent → v): `SET k v NX` → OK if it was absent and is now v, nil if it existed (the only
 *   compare-and-set Redis's strings offer without scripts; the checker's cas with `expected: null`).
 * - append(k, s): `MULTI; APPEND k s; GET k; EXEC` → the value after appending. APPEND alone answers
 *   only the new length; the transaction is one raft entry, so its GET sees exactly the APPEND's result.
 *
 * Every value and suffix written is unique (client and sequence number), so a lost or resurrected
 * write shows up as a read no order can explain.
 *
 * A write's error reply is a definite failure only when the node refused it before it reached raft
 * (`engine-backend.ts`): NOTLEADER (the node was not the leader when it proposed, or knew no leader to
 * forward to) and `ERR proposal refused` (raft dropped the proposal). TRYAGAIN (leadership lost, a
 * forwarded write not seen applied in time, an overload), `ERR internal error` and a closing or failed
 * engine leave the outcome unknown. A read that fails has no effect either way.
 */
import type { RespReply } from "../api/redis/resp/reply-parser.js";
import type { SeededRandom } from "../raft/rand.js";
import type { KvCall, KvFunction, KvOutputs } from "../sim/checker/index.js";

export type Outcome =
  | { readonly kind: "ok"; readonly output: KvOutputs[KvFunction] }
  /** Certainly not applied. `cause` is short, for counting (`NOTLEADER`, `timeout`, …). */
  | { readonly kind: "failed"; readonly cause: string; readonly reason: string }
  /** May or may not have been applied. */
  | { readonly kind: "indeterminate"; readonly cause: string; readonly reason: string }
  /** A reply these commands cannot give: a bug somewhere. Recorded as indeterminate, and reported. */
  | { readonly kind: "unexpected"; readonly reason: string };

/** Error replies that say the write never reached raft. */
const NOT_APPLIED = ["NOTLEADER ", "ERR proposal refused"];
/** Error replies the server gives when it cannot say what became of a write (or a read failed). */
const UNKNOWN_OUTCOME = ["TRYAGAIN ", "ERR internal error", "ERR the engine"];

/** Draws the next call of client `client` on `key`; `seq` makes its values unique. */
export function nextCall(random: SeededRandom, key: string, client: number, seq: number): KvCall {
  const tag = `${client}.${seq}`;
  const r = random.intn(100);
  if (r < 40) return { f: "get", input: { key } };
  if (r < 65) return { f: "put", input: { key, value: `v${tag}` } };
  if (r < 80) return { f: "append", input: { key, suffix: `+${tag}` } };
  if (r < 88) return { f: "delete", input: { key } };
  return { f: "cas", input: { key, expected: null, value: `n${tag}` } };
}

/** The Redis commands that perform `call`, sent as one pipeline. */
export function commandsFor(call: KvCall): string[][] {
  switch (call.f) {
    case "get":
      return [["GET", call.input.key]];
    case "put":
      return [["SET", call.input.key, call.input.value]];
    case "delete":
      return [["DEL", call.input.key]];
    case "cas":
      if (call.input.expected !== null) throw new RangeError("only cas from absent maps to SET NX");
      return [["SET", call.input.key, call.input.value, "NX"]];
    case "append":
      return [["MULTI"], ["APPEND", call.input.key, call.input.suffix], ["GET", call.input.key], ["EXEC"]];
  }
}

/** What the replies to `commandsFor(call)` mean. */
export function interpretReplies(call: KvCall, replies: readonly RespReply[]): Outcome {
  const expected = commandsFor(call).length;
  if (replies.length !== expected)
    return unexpected(`${replies.length} replies to ${expected} commands`, replies);
  if (call.f === "append") return interpretAppend(replies);
  const reply = replies[0]!;
  if (reply.type === "error") return interpretError(call.f, reply.text);
  switch (call.f) {
    case "get":
      if (reply.type === "bulk") return ok(reply.value === null ? null : reply.value.toString("utf8"));
      break;
    case "put":
      if (reply.type === "status" && reply.text === "OK") return ok(null);
      break;
    case "delete":
      if (reply.type === "integer" && (reply.value === 0n || reply.value === 1n))
        return ok(reply.value === 1n);
      break;
    case "cas":
      if (reply.type === "status" && reply.text === "OK") return ok(true);
      if (reply.type === "bulk" && reply.value === null) return ok(false);
      break;
  }
  return unexpected(`${call.f} answered`, [reply]);
}

/** A call that got no answer: `cause` says why (a timeout, a lost connection). */
export function noAnswer(cause: string, reason: string): Outcome {
  return { kind: "indeterminate", cause, reason };
}

function interpretAppend(replies: readonly RespReply[]): Outcome {
  const [multi, queuedAppend, queuedGet, exec] = replies as [RespReply, RespReply, RespReply, RespReply];
  if (!isStatus(multi, "OK") || !isStatus(queuedAppend, "QUEUED") || !isStatus(queuedGet, "QUEUED"))
    return unexpected("MULTI/APPEND/GET answered", replies.slice(0, 3));
  if (exec.type !== "array" || exec.items === null || exec.items.length !== 2)
    return unexpected("EXEC answered", [exec]);
  const [length, value] = exec.items as [RespReply, RespReply];
  // A write refused or lost fails the whole entry: both commands get the same error.
  if (length.type === "error" && value.type === "error" && length.text === value.text)
    return interpretError("append", length.text);
  if (length.type !== "integer" || value.type !== "bulk" || value.value === null)
    return unexpected("EXEC answered", [exec]);
  if (length.value !== BigInt(value.value.length))
    return unexpected("APPEND's length and GET's value disagree", [exec]);
  return ok(value.value.toString("utf8"));
}

function interpretError(f: KvFunction, text: string): Outcome {
  const notApplied = NOT_APPLIED.find((p) => text.startsWith(p));
  if (notApplied !== undefined) return { kind: "failed", cause: notApplied.trim(), reason: text };
  const unknown = UNKNOWN_OUTCOME.find((p) => text.startsWith(p));
  if (unknown !== undefined)
    return { kind: f === "get" ? "failed" : "indeterminate", cause: unknown.trim(), reason: text };
  return { kind: "unexpected", reason: `${f} answered the error ${JSON.stringify(text)}` };
}

function isStatus(reply: RespReply, text: string): boolean {
  return reply.type === "status" && reply.text === text;
}

function ok(output: KvOutputs[KvFunction]): Outcome {
  return { kind: "ok", output };
}

function unexpected(what: string, replies: readonly RespReply[]): Outcome {
  return { kind: "unexpected", reason: `${what} ${describeReplies(replies)}` };
}

/** Replies as short text, for reports. */
export function describeReplies(replies: readonly RespReply[]): string {
  return replies.map(describeReply).join(", ");
}

function describeReply(r: RespReply): string {
  switch (r.type) {
    case "status":
      return `+${r.text}`;
    case "error":
      return `-${r.text}`;
    case "integer":
      return `:${r.value}`;
    case "bulk":
      return r.value === null ? "nil" : JSON.stringify(r.value.toString("utf8").slice(0, 80));
    case "array":
      return r.items === null ? "nil array" : `[${r.items.map(describeReply).join(", ")}]`;
  }
}
