/** Commands on keys of any type, with Redis's replies and errors. */
import { TYPE_NAMES } from "../record.js";
import { Errors, error, int, OK, type Reply, status } from "../reply.js";
import { parseInt64, upper } from "./args.js";
import type { ReadAccess, WriteAccess } from "./context.js";
import { expireAt } from "./expire.js";

export function del(ctx: WriteAccess, args: readonly Buffer[]): Reply {
  let n = 0;
  for (let i = 1; i < args.length; i++) if (ctx.delete(args[i]!)) n++;
  return int(n);
}

export function exists(ctx: ReadAccess, args: readonly Buffer[]): Reply {
  let n = 0;
  for (let i = 1; i < args.length; i++) if (ctx.lookup(args[i]!) !== undefined) n++;
  return int(n);
}

export const touch = exists;

export function type(ctx: ReadAccess, args: readonly Buffer[]): Reply {
  const r = ctx.lookup(args[1]!);
  return status(r === undefined ? "none" : TYPE_NAMES[r.type]);
}

/** EXPIRE, PEXPIRE, EXPIREAT, PEXPIREAT, with NX, XX, GT and LT. */
function expireGeneric(
  ctx: WriteAccess,
  args: readonly Buffer[],
  unit: "EX" | "PX" | "EXAT" | "PXAT",
): Reply {
  const command = args[0]!.toString("latin1").toLowerCase();
  let nx = false;
  let xx = false;
  let gt = false;
  let lt = false;
  for (let i = 3; i < args.length; i++) {
    const opt = upper(args[i]!);
    if (opt === "NX") nx = true;
    else if (opt === "XX") xx = true;
    else if (opt === "GT") gt = true;
    else if (opt === "LT") lt = true;
    else return error(`ERR Unsupported option ${args[i]!.toString("latin1")}`);
  }
  if (nx && (xx || gt || lt))
    return error("ERR NX and XX, GT or LT options at the same time are not compatible");
  if (gt && lt) return error("ERR GT and LT options at the same time are not compatible");
  const when = expireAt(args[2]!, unit, ctx.nowMs, command, false);
  if (typeof when !== "number") return when;
  const key = args[1]!;
  const r = ctx.lookup(key);
  if (r === undefined) return int(0);
  const current = r.expireAtMs;
  // No expiry counts as infinitely far: GT never beats it, LT always does.
  if (nx && current !== 0) return int(0);
  if (xx && current === 0) return int(0);
  if (gt && (current === 0 || when <= current)) return int(0);
  if (lt && current !== 0 && when >= current) return int(0);
  if (when <= ctx.nowMs) ctx.delete(key);
  else ctx.put(key, r.type, when, r.payload);
  return int(1);
}

export const expire = (ctx: WriteAccess, args: readonly Buffer[]) => expireGeneric(ctx, args, "EX");
export const pexpire = (ctx: WriteAccess, args: readonly Buffer[]) => expireGeneric(ctx, args, "PX");
export const expireat = (ctx: WriteAccess, args: readonly Buffer[]) => expireGeneric(ctx, args, "EXAT");
export const pexpireat = (ctx: WriteAccess, args: readonly Buffer[]) => expireGeneric(ctx, args, "PXAT");

function ttlGeneric(ctx: ReadAccess, args: readonly Buffer[], ms: boolean, absolute: boolean): Reply {
  const r = ctx.lookup(args[1]!);
  if (r === undefined) return int(-2);
  if (r.expireAtMs === 0) return int(-1);
  if (absolute) return int(ms ? r.expireAtMs : Math.floor(r.expireAtMs / 1000));
  const left = Math.max(0, r.expireAtMs - ctx.nowMs);
  return int(ms ? left : Math.floor((left + 500) / 1000));
}

export const ttl = (ctx: ReadAccess, args: readonly Buffer[]) => ttlGeneric(ctx, args, false, false);
export const pttl = (ctx: ReadAccess, args: readonly Buffer[]) => ttlGeneric(ctx, args, true, false);
export const expiretime = (ctx: ReadAccess, args: readonly Buffer[]) => ttlGeneric(ctx, args, false, true);
export const pexpiretime = (ctx: ReadAccess, args: readonly Buffer[]) => ttlGeneric(ctx, args, true, true);

export function persist(ctx: WriteAccess, args: readonly Buffer[]): Reply {
  const r = ctx.lookup(args[1]!);
  if (r === undefined || r.expireAtMs === 0) return int(0);
  ctx.put(args[1]!, r.type, 0, r.payload);
  return int(1);
}

function renameGeneric(ctx: WriteAccess, args: readonly Buffer[], nx: boolean): Reply {
  const from = args[1]!;
  const to = args[2]!;
  const r = ctx.lookup(from);
  if (r === undefined) return Errors.noSuchKey;
  if (from.equals(to)) return nx ? int(0) : OK;
  if (nx && ctx.lookup(to) !== undefined) return int(0);
  ctx.delete(to);
  // A collection keeps its id, and so its items: only its record moves.
  ctx.put(to, r.type, r.expireAtMs, r.payload);
  ctx.detach(from);
  return nx ? int(1) : OK;
}

export const rename = (ctx: WriteAccess, args: readonly Buffer[]) => renameGeneric(ctx, args, false);
export const renamenx = (ctx: WriteAccess, args: readonly Buffer[]) => renameGeneric(ctx, args, true);

export function flush(ctx: WriteAccess, args: readonly Buffer[]): Reply {
  if (args.length > 2) return Errors.syntax;
  if (args.length === 2) {
    const mode = upper(args[1]!);
    if (mode !== "ASYNC" && mode !== "SYNC") return Errors.syntax;
  }
  ctx.clear();
  return OK;
}

/** Deletes each key that is expired at the entry's time (a lookup of an expired key deletes it). */
export function reap(ctx: WriteAccess, args: readonly Buffer[]): Reply {
  let n = 0;
  for (let i = 1; i < args.length; i++) {
    const before = ctx.lookupStored(args[i]!);
    if (before && ctx.lookup(args[i]!) === undefined) n++;
  }
  return int(n);
}

/** How many tombstones one `__forget` entry looks at, at most. */
export const FORGET_BATCH_TOMBSTONES = 1024;

/**
 * Forgets the oldest tombstones left at or before the time given (ms), raising the tombstone horizon:
 * the leader's bound on how long deleted keys are remembered for WATCH.
 */
export function forget(ctx: WriteAccess, args: readonly Buffer[]): Reply {
  const cutoff = parseInt64(args[1]!);
  if (cutoff === null || cutoff < 0n || cutoff > BigInt(Number.MAX_SAFE_INTEGER)) return Errors.notInteger;
  return int(ctx.forgetTombstones(Number(cutoff), FORGET_BATCH_TOMBSTONES));
}
