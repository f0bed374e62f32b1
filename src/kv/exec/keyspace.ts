/**
 * Commands over the whole keyspace: KEYS, SCAN, RANDOMKEY.
 *
 * SCAN visits keys in key order and stops once COUNT keys were visited. Its cursor names the next key
 * to visit: when that key is the first of the keys sharing its first 8 bytes, the cursor is those bytes
 * (big-endian, zero-padded) plus one, so 0 stays "start" and "done" and any node can resume it; in the
 * middle of such a run (keys like "session:…" share 8 bytes), or for a key whose first byte has its top
 * bit set, it is a number from this node's table of positions (scan-cursors.ts). Either way a key
 * present for the whole scan is returned at least once, whatever is written meanwhile.
 */
import { type KeyRecord, TYPE_NAMES } from "../record.js";
import { array, bulk, int, NIL, type Reply } from "../reply.js";
import { isReply } from "./collections.js";
import type { ReadAccess } from "./context.js";
import { isExpired } from "./context.js";
import { globMatch } from "./glob.js";
import { TABLE_CURSOR_BIT } from "./scan-cursors.js";
import { parseCursor, parseScanOptions } from "./scan-options.js";

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
  for (let start: Buffer = Buffer.alloc(0); ; ) {
    const page = ctx.range(start, PAGE);
    for (const [k, r] of page) {
      if (isExpired(r, ctx.nowMs)) continue;
      if (all || globMatch(pattern, k)) out.push(bulk(k));
    }
    if (page.length < PAGE) return array(out);
    start = after(page[page.length - 1]![0]);
  }
}

export function scan(ctx: ReadAccess, args: readonly Buffer[]): Reply {
  const cursor = parseCursor(args[1]!);
  if (isReply(cursor)) return cursor;
  const options = parseScanOptions(args, 2, true);
  if (isReply(options)) return options;
  const { count, pattern, type } = options;
  let start: Buffer;
  if (cursor === 0n) start = Buffer.alloc(0);
  else if (cursor < TABLE_CURSOR_BIT) start = startOf(cursor - 1n);
  // A position this node no longer holds: from the beginning again (SCAN may return a key twice).
  else start = ctx.cursors.resolve(cursor) ?? Buffer.alloc(0);
  const found: Reply[] = [];
  let visited = 0;
  let previous: Buffer | null = null;
  for (;;) {
    const batch = ctx.range(start, 256);
    for (const [k, r] of batch) {
      if (visited >= count)
        return array([bulk(Buffer.from(String(cursorAt(ctx, k, previous)))), array(found)]);
      previous = k;
      visited++;
      if (isExpired(r, ctx.nowMs)) continue;
      if (pattern !== null && !globMatch(pattern, k)) continue;
      if (type !== null && TYPE_NAMES[r.type] !== type) continue;
      found.push(bulk(k));
    }
    if (batch.length < 256) return array([bulk(Buffer.from("0")), array(found)]);
    start = after(batch[batch.length - 1]![0]);
  }
}

/** The cursor that resumes a scan at `next`, the key after `previous` (see the module's comment). */
function cursorAt(ctx: ReadAccess, next: Buffer, previous: Buffer | null): bigint {
  const prefix = prefixOf(next);
  const firstOfItsRun = previous === null || prefixOf(previous) !== prefix;
  if (firstOfItsRun && prefix + 1n < TABLE_CURSOR_BIT) return prefix + 1n;
  return ctx.cursors.issue(next);
}

/** Keys stored, expired ones not yet removed included (as Redis counts them). */
export function dbsize(ctx: ReadAccess): Reply {
  return int(ctx.count());
}

export function randomkey(ctx: ReadAccess): Reply {
  const total = ctx.count();
  // A few tries at a random position; expired keys not yet removed are skipped. Reaching a position
  // walks the keys in pages (O(N) time, constant memory): LMDB has no rank index.
  for (let attempt = 0; attempt < 16 && total > 0; attempt++) {
    const pick = keyAt(ctx, Math.floor(Math.random() * total));
    if (pick && !isExpired(pick[1], ctx.nowMs)) return bulk(pick[0]);
  }
  for (let start: Buffer = Buffer.alloc(0); ; ) {
    const page = ctx.range(start, PAGE);
    for (const [k, r] of page) if (!isExpired(r, ctx.nowMs)) return bulk(k);
    if (page.length < PAGE) return NIL;
    start = after(page[page.length - 1]![0]);
  }
}

const PAGE = 1000;

/** The stored key at position `at` in key order, if there is one. */
function keyAt(ctx: ReadAccess, at: number): [Buffer, KeyRecord] | undefined {
  let start: Buffer = Buffer.alloc(0);
  for (let skipped = 0; ; ) {
    const page = ctx.range(start, PAGE);
    if (at - skipped < page.length) return page[at - skipped];
    if (page.length < PAGE) return undefined;
    skipped += page.length;
    start = after(page[page.length - 1]![0]);
  }
}

/** The smallest key after `key`. */
function after(key: Buffer): Buffer {
  return Buffer.concat([key, Buffer.from([0])]);
}
