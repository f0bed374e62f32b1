/**
 * A sorted set's rank index, so that ranks in the middle of a large set (ZRANK, ZRANGE 500000 500009,
 * ZCOUNT, ZREMRANGEBYRANK) cost about √N item reads instead of N: the members, in score order, are cut
 * into blocks of consecutive members, and each block is one item (tag 2) keyed by its lower bound (a
 * score-order key, or nothing for the first block) holding its member count. The blocks are items of a
 * collection id of their own (`rankIndexId`), so that the write path reads them without reading the
 * set's members. A rank is the counts of the blocks before a member's block plus a walk inside that
 * block; a block past BLOCK_SPLIT members is split, and a block left with few members is merged into
 * its predecessor when the two fit in BLOCK_MERGE, so a large set has about one block per thousand
 * members and a rank walks at most BLOCK_SPLIT members of one.
 *
 * Keys here are score-order item keys: [1] ‖ score key (8 bytes) ‖ member. A block's lower bound is such
 * a key without its tag; it need not be a member (it stays when its member goes).
 */
import { KvStoreCorruptError } from "../errors.js";
import { rankIndexId } from "../record.js";
import type { ReadAccess, WriteAccess } from "./context.js";

const BY_SCORE = 0x01;
const BY_BLOCK = 0x02;
/** A block is split in two once it holds more members than this. */
export const BLOCK_SPLIT = 2048;
/** A block is merged into its predecessor when the two hold this many members or fewer. */
export const BLOCK_MERGE = 1024;
/**
 * A block is looked at for merging only once it holds this many members or fewer (or none): checking
 * on every removal would read its predecessor every time.
 */
const MERGE_CHECK = BLOCK_MERGE / 4;
const PAGE = 256;
const FIRST_BLOCK = Buffer.from([BY_BLOCK]);
const ZERO = Buffer.from([0]);

function countValue(n: number): Buffer {
  const b = Buffer.allocUnsafe(4);
  b.writeUInt32BE(n, 0);
  return b;
}

/** The block item a score-order key falls in: the greatest block key at or below it. */
function blockOf(ctx: ReadAccess, id: number, key: Buffer): [Buffer, number] | null {
  const probe = Buffer.allocUnsafe(key.length + 1);
  probe[0] = BY_BLOCK;
  key.copy(probe, 1, 1);
  probe[key.length] = 0;
  const [hit] = ctx.itemsBelow(rankIndexId(id), probe, 1);
  if (hit === undefined || hit[0][0] !== BY_BLOCK) return null;
  // The key is the range's own (a copy of LMDB's, or a pending write's, which nobody changes).
  return [hit[0], hit[1].readUInt32BE(0)];
}

/** The score-order key a block's members start at. */
function blockStart(block: Buffer): Buffer {
  const out = Buffer.from(block);
  out[0] = BY_SCORE;
  return out;
}

/** Counts a member added at score-order key `key`. */
function rankAdded(ctx: WriteAccess, id: number, key: Buffer): void {
  const found = blockOf(ctx, id, key);
  // A set's first member makes its first block (a block is never made otherwise: the first stays).
  const [block, count] = found ?? [FIRST_BLOCK, 0];
  const rid = rankIndexId(id);
  if (count + 1 <= BLOCK_SPLIT) {
    ctx.putItem(rid, block, countValue(count + 1));
    return;
  }
  // Split: the upper half gets a block keyed by its first member.
  const half = (count + 1) >> 1;
  const members = ctx.items(id, blockStart(block), half + 1);
  const first = members[half];
  if (first === undefined || first[0][0] !== BY_SCORE)
    throw new KvStoreCorruptError(`sorted set ${id}: a block counted ${count + 1} members it does not hold`);
  const upper = Buffer.from(first[0]);
  upper[0] = BY_BLOCK;
  ctx.putItem(rid, block, countValue(half));
  ctx.putItem(rid, upper, countValue(count + 1 - half));
}

/** Counts a member removed from score-order key `key` (the member must have been counted). */
function rankRemoved(ctx: WriteAccess, id: number, key: Buffer): void {
  const found = blockOf(ctx, id, key);
  if (found === null) throw new KvStoreCorruptError(`sorted set ${id}: a member outside every block`);
  const [block, count] = found;
  const left = count - 1;
  const rid = rankIndexId(id);
  if (block.length > 1 && left <= MERGE_CHECK) {
    const [prev] = ctx.itemsBelow(rid, block, 1);
    if (prev !== undefined && prev[0][0] === BY_BLOCK) {
      const before = prev[1].readUInt32BE(0);
      if (left + before <= BLOCK_MERGE || left === 0) {
        ctx.removeItem(rid, block);
        ctx.putItem(rid, prev[0], countValue(before + left));
        return;
      }
    }
  }
  ctx.putItem(rid, block, countValue(left));
}

/** The blocks in order, with their counts, a page at a time. */
function* blocks(ctx: ReadAccess, id: number): Generator<[Buffer, number]> {
  let at = FIRST_BLOCK;
  for (;;) {
    const page = ctx.items(rankIndexId(id), at, PAGE);
    for (const [k, v] of page) {
      if (k[0] !== BY_BLOCK) return;
      yield [k, v.readUInt32BE(0)];
    }
    if (page.length < PAGE) return;
    at = Buffer.concat([page[page.length - 1]![0], Buffer.from([0])]);
  }
}

/** Score-order keys from `start` (inclusive) on, a page at a time. */
function* scoreKeys(ctx: ReadAccess, id: number, start: Buffer): Generator<Buffer> {
  let at = start;
  for (;;) {
    const page = ctx.items(id, at, PAGE);
    for (const [k] of page) {
      if (k[0] !== BY_SCORE) return;
      yield k;
    }
    if (page.length < PAGE) return;
    at = Buffer.concat([page[page.length - 1]![0], Buffer.from([0])]);
  }
}

/** Members whose score-order key is below `key` (which need not be a member's). */
export function countBelow(ctx: ReadAccess, id: number, key: Buffer): number {
  let before = 0;
  let block: Buffer = FIRST_BLOCK;
  let pending = 0;
  for (const [k, n] of blocks(ctx, id)) {
    if (k.length > 1 && Buffer.compare(k.subarray(1), key.subarray(1)) > 0) break;
    before += pending;
    block = k;
    pending = n;
  }
  for (const k of scoreKeys(ctx, id, blockStart(block))) {
    if (Buffer.compare(k, key) >= 0) break;
    before++;
  }
  return before;
}

/**
 * Where an ascending walk must start to reach rank `rank` (0-based): a score-order key and the number of
 * members from there to skip; null when the set has no member at that rank.
 */
export function seekRank(ctx: ReadAccess, id: number, rank: number): { from: Buffer; skip: number } | null {
  let before = 0;
  for (const [k, n] of blocks(ctx, id)) {
    if (rank < before + n) return { from: blockStart(k), skip: rank - before };
    before += n;
  }
  return null;
}

/** A change to a sorted set's members, in score-order keys: +1 a member added there, -1 removed. */
export interface RankChange {
  readonly key: Buffer;
  readonly delta: 1 | -1;
}

/**
 * Counts one command's changes to a sorted set (applied to its items already; it is not empty): each
 * block they fall in read once, the changes counted against it in memory, then blocks past BLOCK_SPLIT
 * cut (reading their members, which hold every change by now) and small ones merged into their
 * predecessor, and only then written.
 */
export function applyRankChanges(ctx: WriteAccess, id: number, changes: readonly RankChange[]): void {
  // One change alone is counted directly. Not several one after another: a split reads the members,
  // which already hold the command's later changes, and those would then be counted twice.
  if (changes.length === 1) {
    const [c] = changes as [RankChange];
    if (c.delta > 0) rankAdded(ctx, id, c.key);
    else rankRemoved(ctx, id, c.key);
    return;
  }
  const sorted = [...changes].sort((a, b) => Buffer.compare(a.key, b.key));
  // The blocks the changes fall in, in order, with their new counts.
  const touched: Array<{ bound: Buffer; count: number }> = [];
  for (let i = 0; i < sorted.length; ) {
    const [bound, count] = blockOf(ctx, id, sorted[i]!.key) ?? [FIRST_BLOCK, 0];
    const [after] = ctx.items(rankIndexId(id), Buffer.concat([bound, ZERO]), 1);
    const next = after !== undefined && after[0][0] === BY_BLOCK ? after[0] : null;
    let n = count;
    for (
      ;
      i < sorted.length &&
      (next === null || Buffer.compare(sorted[i]!.key.subarray(1), next.subarray(1)) < 0);
      i++
    )
      n += sorted[i]!.delta;
    if (n < 0) throw new KvStoreCorruptError(`sorted set ${id}: a block would count ${n} members`);
    touched.push({ bound, count: n });
  }
  const writes = new Map<string, number | null>();
  for (const t of touched) {
    if (t.count <= BLOCK_SPLIT) {
      writes.set(t.bound.toString("latin1"), t.count);
      continue;
    }
    // Cut into blocks of BLOCK_MERGE members, the last holding what is left: when members are added at
    // the end (a set filled in score order) the last block then has room for the next command's.
    let seen = 0;
    let piece = t.bound;
    for (const k of scoreKeys(ctx, id, blockStart(t.bound))) {
      if (seen > 0 && seen % BLOCK_MERGE === 0) {
        writes.set(piece.toString("latin1"), BLOCK_MERGE);
        piece = Buffer.from(k);
        piece[0] = BY_BLOCK;
      }
      if (++seen === t.count) break;
    }
    if (seen !== t.count)
      throw new KvStoreCorruptError(`sorted set ${id}: a block counted ${t.count} members, held ${seen}`);
    writes.set(piece.toString("latin1"), t.count - Math.floor((t.count - 1) / BLOCK_MERGE) * BLOCK_MERGE);
  }
  // A block left small is merged into its predecessor while the two fit. The predecessor is the nearer
  // of the stored block below it and a block just cut below it (latin1 names sort as their bytes).
  const cut = [...writes.keys()].sort();
  for (const t of touched) {
    const name = t.bound.toString("latin1");
    const own = writes.get(name);
    if (t.bound.length === 1 || own === undefined || own === null || (own > MERGE_CHECK && own !== 0))
      continue;
    const [stored] = ctx.itemsBelow(rankIndexId(id), t.bound, 1);
    let prevName = stored !== undefined && stored[0][0] === BY_BLOCK ? stored[0].toString("latin1") : null;
    const justCut = greatestBelow(cut, name);
    if (justCut !== null && (prevName === null || justCut > prevName)) prevName = justCut;
    if (prevName === null) continue;
    const before = writes.has(prevName) ? writes.get(prevName)! : stored![1].readUInt32BE(0);
    if (before === null || (own > 0 && before + own > BLOCK_MERGE)) continue;
    writes.set(prevName, before + own);
    writes.set(name, null);
  }
  const rid = rankIndexId(id);
  for (const [name, n] of writes) {
    const bound = Buffer.from(name, "latin1");
    if (n === null) ctx.removeItem(rid, bound);
    else ctx.putItem(rid, bound, countValue(n));
  }
}

/** The greatest of `sorted` below `name`, or null. */
function greatestBelow(sorted: readonly string[], name: string): string | null {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (sorted[mid]! < name) lo = mid + 1;
    else hi = mid;
  }
  return lo === 0 ? null : sorted[lo - 1]!;
}
