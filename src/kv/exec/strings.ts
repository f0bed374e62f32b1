/** String commands, with Redis's replies and errors. */
import { array, bulk, Errors, int, NIL, OK, type Reply } from "../reply.js";
import { inInt64, MAX_STRING_BYTES, parseInt64, upper } from "./args.js";
import { type ReadAccess, STRING, type WriteAccess } from "./context.js";
import { type ExpireUnit, expireAt } from "./expire.js";
import { addLongDouble, formatLongDouble, isFiniteLongDouble, parseLongDouble, ZERO } from "./long-double.js";

/** A key's string value; WRONGTYPE for another type; null when absent. */
function stringOf(ctx: ReadAccess, key: Buffer): Buffer | null | Reply {
  const r = ctx.lookup(key);
  if (r === undefined) return null;
  if (r.type !== STRING) return Errors.wrongType;
  return r.payload;
}

const isReply = (v: unknown): v is Reply => typeof v === "object" && v !== null && "k" in v;

/**
 * Stores a string; an expiry already past deletes the key instead. Redis sets the key and then expires
 * it, so a WATCH of the key is broken even when it was absent: the value is stored and deleted in the
 * same entry, which leaves the tombstone WATCH looks for.
 */
function store(ctx: WriteAccess, key: Buffer, value: Uint8Array, expireAtMs: number): void {
  if (expireAtMs !== 0 && expireAtMs <= ctx.nowMs) {
    ctx.put(key, STRING, 0, value);
    ctx.delete(key);
  } else ctx.put(key, STRING, expireAtMs, value);
}

export function get(ctx: ReadAccess, args: readonly Buffer[]): Reply {
  const v = stringOf(ctx, args[1]!);
  return v === null ? NIL : isReply(v) ? v : bulk(v);
}

export function mget(ctx: ReadAccess, args: readonly Buffer[]): Reply {
  const out: Reply[] = [];
  for (let i = 1; i < args.length; i++) {
    const r = ctx.lookup(args[i]!);
    out.push(r === undefined || r.type !== STRING ? NIL : bulk(r.payload));
  }
  return array(out);
}

export function strlen(ctx: ReadAccess, args: readonly Buffer[]): Reply {
  const v = stringOf(ctx, args[1]!);
  return v === null ? int(0) : isReply(v) ? v : int(v.length);
}

export function getrange(ctx: ReadAccess, args: readonly Buffer[]): Reply {
  const s = parseInt64(args[2]!);
  const e = parseInt64(args[3]!);
  if (s === null || e === null) return Errors.notInteger;
  const v = stringOf(ctx, args[1]!);
  if (v === null) return bulk(Buffer.alloc(0));
  if (isReply(v)) return v;
  const len = BigInt(v.length);
  let start = s < 0n ? len + s : s;
  let end = e < 0n ? len + e : e;
  if (s < 0n && e < 0n && s > e) return bulk(Buffer.alloc(0));
  if (start < 0n) start = 0n;
  if (end < 0n) end = 0n;
  if (end >= len) end = len - 1n;
  if (len === 0n || start > end) return bulk(Buffer.alloc(0));
  return bulk(Buffer.from(v.subarray(Number(start), Number(end) + 1)));
}

interface SetOptions {
  nx: boolean;
  xx: boolean;
  get: boolean;
  keepTtl: boolean;
  unit: ExpireUnit | null;
  expire: Buffer | null;
}

/** Parses SET's options (from index `from`), or answers Redis's syntax error. */
function parseSetOptions(args: readonly Buffer[], from: number, forGetex: boolean): SetOptions | Reply {
  const o: SetOptions = { nx: false, xx: false, get: false, keepTtl: false, unit: null, expire: null };
  for (let i = from; i < args.length; i++) {
    const opt = upper(args[i]!);
    const next = i + 1 < args.length;
    if (!forGetex && opt === "NX" && !o.xx) o.nx = true;
    else if (!forGetex && opt === "XX" && !o.nx) o.xx = true;
    else if (!forGetex && opt === "GET") o.get = true;
    else if (!forGetex && opt === "KEEPTTL" && o.unit === null) o.keepTtl = true;
    else if (forGetex && opt === "PERSIST" && o.unit === null && !o.keepTtl) o.keepTtl = true;
    // The same expiry option twice is allowed (the last wins), as in Redis; two different ones are not.
    else if (
      (opt === "EX" || opt === "PX" || opt === "EXAT" || opt === "PXAT") &&
      (o.unit === null || o.unit === opt) &&
      !o.keepTtl &&
      next
    ) {
      o.unit = opt;
      o.expire = args[++i]!;
    } else return Errors.syntax;
  }
  return o;
}

export function set(ctx: WriteAccess, args: readonly Buffer[]): Reply {
  const o = parseSetOptions(args, 3, false);
  if (isReply(o)) return o;
  const key = args[1]!;
  let when = 0;
  if (o.unit !== null) {
    const w = expireAt(o.expire!, o.unit, ctx.nowMs, "set");
    if (isReply(w)) return w;
    when = w;
  }
  const old = ctx.lookup(key);
  if (o.get && old !== undefined && old.type !== STRING) return Errors.wrongType;
  const previous = o.get ? (old === undefined ? NIL : bulk(old.payload)) : null;
  if ((o.nx && old !== undefined) || (o.xx && old === undefined)) return previous ?? NIL;
  if (o.keepTtl && old !== undefined) when = old.expireAtMs;
  store(ctx, key, args[2]!, when);
  return previous ?? OK;
}

export function setnx(ctx: WriteAccess, args: readonly Buffer[]): Reply {
  if (ctx.lookup(args[1]!) !== undefined) return int(0);
  ctx.put(args[1]!, STRING, 0, args[2]!);
  return int(1);
}

function setWithExpire(ctx: WriteAccess, args: readonly Buffer[], unit: ExpireUnit, command: string): Reply {
  const w = expireAt(args[2]!, unit, ctx.nowMs, command);
  if (isReply(w)) return w;
  store(ctx, args[1]!, args[3]!, w);
  return OK;
}

export const setex = (ctx: WriteAccess, args: readonly Buffer[]) => setWithExpire(ctx, args, "EX", "setex");
export const psetex = (ctx: WriteAccess, args: readonly Buffer[]) => setWithExpire(ctx, args, "PX", "psetex");

export function getset(ctx: WriteAccess, args: readonly Buffer[]): Reply {
  const v = stringOf(ctx, args[1]!);
  if (isReply(v)) return v;
  ctx.put(args[1]!, STRING, 0, args[2]!);
  return v === null ? NIL : bulk(v);
}

export function getdel(ctx: WriteAccess, args: readonly Buffer[]): Reply {
  const v = stringOf(ctx, args[1]!);
  if (v === null || isReply(v)) return v ?? NIL;
  ctx.delete(args[1]!);
  return bulk(v);
}

export function getex(ctx: WriteAccess, args: readonly Buffer[]): Reply {
  const o = parseSetOptions(args, 2, true);
  if (isReply(o)) return o;
  const key = args[1]!;
  const r = ctx.lookup(key);
  if (r === undefined) return NIL;
  if (r.type !== STRING) return Errors.wrongType;
  if (o.unit !== null) {
    const w = expireAt(o.expire!, o.unit, ctx.nowMs, "getex");
    if (isReply(w)) return w;
    store(ctx, key, r.payload, w);
  } else if (o.keepTtl && r.expireAtMs !== 0) {
    ctx.put(key, STRING, 0, r.payload);
  }
  return bulk(r.payload);
}

export function mset(ctx: WriteAccess, args: readonly Buffer[]): Reply {
  if (args.length % 2 === 0) return Errors.wrongArity(args[0]!.toString("latin1").toLowerCase());
  for (let i = 1; i < args.length; i += 2) ctx.put(args[i]!, STRING, 0, args[i + 1]!);
  return OK;
}

export function msetnx(ctx: WriteAccess, args: readonly Buffer[]): Reply {
  if (args.length % 2 === 0) return Errors.wrongArity(args[0]!.toString("latin1").toLowerCase());
  for (let i = 1; i < args.length; i += 2) if (ctx.lookup(args[i]!) !== undefined) return int(0);
  for (let i = 1; i < args.length; i += 2) ctx.put(args[i]!, STRING, 0, args[i + 1]!);
  return int(1);
}

export function append(ctx: WriteAccess, args: readonly Buffer[]): Reply {
  const key = args[1]!;
  const r = ctx.lookup(key);
  if (r !== undefined && r.type !== STRING) return Errors.wrongType;
  const old = r?.payload ?? Buffer.alloc(0);
  if (old.length + args[2]!.length > MAX_STRING_BYTES) return Errors.tooLarge;
  const value = Buffer.concat([old, args[2]!]);
  ctx.put(key, STRING, r?.expireAtMs ?? 0, value);
  return int(value.length);
}

export function setrange(ctx: WriteAccess, args: readonly Buffer[]): Reply {
  const offset = parseInt64(args[2]!);
  if (offset === null) return Errors.notInteger;
  if (offset < 0n) return Errors.offsetRange;
  const key = args[1]!;
  const value = args[3]!;
  const r = ctx.lookup(key);
  if (r !== undefined && r.type !== STRING) return Errors.wrongType;
  const old = r?.payload ?? Buffer.alloc(0);
  if (value.length === 0) return int(old.length);
  if (offset + BigInt(value.length) > BigInt(MAX_STRING_BYTES)) return Errors.tooLarge;
  const at = Number(offset);
  const out = Buffer.alloc(Math.max(old.length, at + value.length));
  old.copy(out, 0);
  value.copy(out, at);
  ctx.put(key, STRING, r?.expireAtMs ?? 0, out);
  return int(out.length);
}

function incrementBy(ctx: WriteAccess, key: Buffer, by: bigint): Reply {
  const r = ctx.lookup(key);
  if (r !== undefined && r.type !== STRING) return Errors.wrongType;
  const current = r === undefined ? 0n : parseInt64(r.payload);
  if (current === null) return Errors.notInteger;
  const next = current + by;
  if (!inInt64(next)) return Errors.overflow;
  ctx.put(key, STRING, r?.expireAtMs ?? 0, Buffer.from(next.toString(), "latin1"));
  return int(next);
}

export const incr = (ctx: WriteAccess, args: readonly Buffer[]) => incrementBy(ctx, args[1]!, 1n);
export const decr = (ctx: WriteAccess, args: readonly Buffer[]) => incrementBy(ctx, args[1]!, -1n);

export function incrby(ctx: WriteAccess, args: readonly Buffer[]): Reply {
  const by = parseInt64(args[2]!);
  return by === null ? Errors.notInteger : incrementBy(ctx, args[1]!, by);
}

export function decrby(ctx: WriteAccess, args: readonly Buffer[]): Reply {
  const by = parseInt64(args[2]!);
  if (by === null) return Errors.notInteger;
  if (by === -9223372036854775808n) return { k: "error", v: "ERR decrement would overflow" };
  return incrementBy(ctx, args[1]!, -by);
}

/**
 * INCRBYFLOAT: C long double arithmetic emulated bit for bit (long-double.ts), so every replica stores
 * the same text as redis-server would. The key keeps its time to live, as Redis's SET … KEEPTTL does.
 */
export function incrbyfloat(ctx: WriteAccess, args: readonly Buffer[]): Reply {
  const key = args[1]!;
  const r = ctx.lookup(key);
  if (r !== undefined && r.type !== STRING) return Errors.wrongType;
  const current = r === undefined ? ZERO : parseLongDouble(r.payload);
  const by = parseLongDouble(args[2]!);
  if (current === null || by === null) return Errors.notFloat;
  const next = addLongDouble(current, by);
  if (!isFiniteLongDouble(next)) return Errors.incrNanOrInf;
  const text = Buffer.from(formatLongDouble(next), "latin1");
  ctx.put(key, STRING, r?.expireAtMs ?? 0, text);
  return bulk(text);
}
