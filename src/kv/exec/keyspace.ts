/**
 * Commands over the whole keyspace: KEYS, SCAN, RANDOMKEY.
 *
 * SCAN's cursor is the first 8 bytes of the next key to visit (big-endian, zero-padded), plus one, so
 * that 0 stays "start" and "done". Keys are visited in key order, a whole group of keys sharing those 8
 * bytes in one call (COUNT is a hint, as in Redis), so a key present for the whole scan is returned
 * at least once, whatever is written meanwhile.
 */
import { array, bulk, Errors, int, NIL, type Reply } from "../reply.js";
import { parseInt64, upper } from "./args.js";
import type { ReadAccess } from "./context.js";
import { isExpired } from "./context.js";
import { globMatch } from "./glob.js";

const TYPE_NAMES: readonly string[] = ["string"];
const MAX_U64 = (1n << 64n) - 1n;

function prefixOf(key: Buffer): bigint {
  const b = Buffer.alloc(8);
  key.copy(b, 0, 0, Math.min(8, key.length));
  return b.readBigUInt64BE(0);
}

function startOf(prefix: bigint): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(prefix);
  // The smallest key with this prefix: the 8 bytes without their trailing zeros (a shorter key sorts
  // before a longer one that starts with it).
  let end = 8;
  while (end > 0 && b[end - 1] === 0) end--;
  return b.subarray(0, end);
}

export function keys(ctx: ReadAccess, args: readonly Buffer[]): Reply {
  const pattern = args[1]!;
  const all = pattern.length === 1 && pattern[0] === 0x2a;
  const out: Reply[] = [];
  let start: Buffer = Buffer.alloc(0);
  for (;;) {
    const batch = ctx.range(start, 1000);
    for (const [k, r] of batch) {
      if (isExpired(r, ctx.nowMs)) continue;
      if (all || globMatch(pattern, k)) out.push(bulk(k));
    }
    if (batch.length < 1000) return array(out);
    start = Buffer.concat([batch[batch.length - 1]![0], Buffer.from([0])]);
  }
}

export function scan(ctx: ReadAccess, args: readonly Buffer[]): Reply {
  const cursorText = args[1]!.toString("latin1");
  if (!/^\d+$/.test(cursorText) || BigInt(cursorText) > MAX_U64)
    return { k: "error", v: "ERR invalid cursor" };
  let count = 10;
  let pattern: Buffer | null = null;
  let type: string | null = null;
  for (let i = 2; i < args.length; i++) {
    const opt = upper(args[i]!);
    if (i + 1 >= args.length) return Errors.syntax;
    if (opt === "COUNT") {
      const n = parseInt64(args[++i]!);
      if (n === null) return Errors.notInteger;
      if (n < 1n) return Errors.syntax;
      count = Number(n > 100_000n ? 100_000n : n);
    } else if (opt === "MATCH") {
      pattern = args[++i]!;
    } else if (opt === "TYPE") {
      type = args[++i]!.toString("latin1").toLowerCase();
    } else {
      return Errors.syntax;
    }
  }
  const cursor = BigInt(cursorText);
  let start = cursor === 0n ? Buffer.alloc(0) : startOf(cursor - 1n);
  const found: Reply[] = [];
  let visited = 0;
  let groupPrefix: bigint | null = null;
  for (;;) {
    const batch = ctx.range(start, 256);
    for (const [k, r] of batch) {
      const prefix = prefixOf(k);
      // Stop between groups once COUNT keys were visited; the next call starts at this group.
      if (visited >= count && prefix !== groupPrefix)
        return array([bulk(Buffer.from(String(prefix + 1n))), array(found)]);
      groupPrefix = prefix;
      visited++;
      if (isExpired(r, ctx.nowMs)) continue;
      if (pattern !== null && !globMatch(pattern, k)) continue;
      if (type !== null && TYPE_NAMES[r.type] !== type) continue;
      found.push(bulk(k));
    }
    if (batch.length < 256) return array([bulk(Buffer.from("0")), array(found)]);
    start = Buffer.concat([batch[batch.length - 1]![0], Buffer.from([0])]);
  }
}

/** Keys stored, expired ones not yet removed included (as Redis counts them). */
export function dbsize(ctx: ReadAccess): Reply {
  return int(ctx.count());
}

export function randomkey(ctx: ReadAccess): Reply {
  const total = ctx.count();
  // A few tries at a random position; expired keys not yet removed are skipped.
  for (let attempt = 0; attempt < 16 && total > 0; attempt++) {
    const at = Math.floor(Math.random() * total);
    const batch = ctx.range(Buffer.alloc(0), at + 1);
    const pick = batch[batch.length - 1];
    if (pick && !isExpired(pick[1], ctx.nowMs)) return bulk(pick[0]);
  }
  for (const [k, r] of ctx.range(Buffer.alloc(0), Number.MAX_SAFE_INTEGER))
    if (!isExpired(r, ctx.nowMs)) return bulk(k);
  return NIL;
}
