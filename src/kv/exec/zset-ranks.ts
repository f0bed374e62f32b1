/**
 * A sorted set's rank index, so that ranks in the middle of a large set (ZRANK, ZRANGE 500000 500009,
 * ZCOUNT, ZREMRANGEBYRANK) cost about √N item reads instead of N: the members, in score order, are cut
 * into blocks of consecutive members, and each block is one item (tag 2) keyed by its lower bound (a
 * score-order key, or nothing for the first block) holding its member count. A rank is the counts of
 * the blocks before a member's block plus a walk inside that block; a block past BLOCK_SPLIT members is
 * split in two, and a block whose members and its predecessor's fit in BLOCK_MERGE is merged into it,
 * so a set of N members has at most about N / 256 blocks and walks at most BLOCK_SPLIT members of one.
 *
 * Keys here are score-order item keys: [1] ‖ score key (8 bytes) ‖ member. A block's lower bound is such
 * a key without its tag; it need not be a member (it stays when its member goes).
 */
import { KvStoreCorruptError } from "../errors.js";
import type { ReadAccess, WriteAccess } from "./context.js";

const BY_SCORE = 0x01;
const BY_BLOCK = 0x02;
/** A block is split in two once it holds more members than this. */
export const BLOCK_SPLIT = 1024;
/** A block is merged into its predecessor when the two hold this many members or fewer. */
export const BLOCK_MERGE = 512;
const PAGE = 256;
const FIRST_BLOCK = Buffer.from([BY_BLOCK]);

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
  const [hit] = ctx.itemsBelow(id, probe, 1);
  if (hit === undefined || hit[0][0] !== BY_BLOCK) return null;
  return [Buffer.from(hit[0]), hit[1].readUInt32BE(0)];
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
  if (count + 1 <= BLOCK_SPLIT) {
    ctx.putItem(id, block, countValue(count + 1));
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
  ctx.putItem(id, block, countValue(half));
  ctx.putItem(id, upper, countValue(count + 1 - half));
}

/** Counts a member removed from score-order key `key` (the member must have been counted). */
function rankRemoved(ctx: WriteAccess, id: number, key: Buffer): void {
  const found = blockOf(ctx, id, key);
  if (found === null) throw new KvStoreCorruptError(`sorted set ${id}: a member outside every block`);
  const [block, count] = found;
  const left = count - 1;
  if (block.length > 1) {
    const [prev] = ctx.itemsBelow(id, block, 1);
    if (prev !== undefined && prev[0][0] === BY_BLOCK) {
      const before = prev[1].readUInt32BE(0);
      if (left + before <= BLOCK_MERGE || left === 0) {
        ctx.removeItem(id, block);
        ctx.putItem(id, Buffer.from(prev[0]), countValue(before + left));
        return;
      }
    }
  }
  ctx.putItem(id, block, countValue(left));
}

/** The blocks in order, with their counts, a page at a time. */
function* blocks(ctx: ReadAccess, id: number): Generator<[Buffer, number]> {
  let at = FIRST_BLOCK;
  for (;;) {
    const page = ctx.items(id, at, PAGE);
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

/** Up to this many changes are counted one at a time (a read each); more in one pass over the blocks. */
const ONE_BY_ONE = 16;

/**
 * Counts one command's changes to a sorted set (applied to its items already; it is not empty). A few
 * are counted one by one; many (ZADD of thousands, ZREMRANGEBYRANK, a STORE form) in one pass: every
 * block read once, the changes counted against them in memory, full blocks cut and small neighbours
 * merged, and only then written, so that no read of the items falls between writes (the write-behind
 * layers keep a sorted view of a collection while it is being read: reads between thousands of writes
 * would make each write cost the whole view).
 */
export function applyRankChanges(ctx: WriteAccess, id: number, changes: readonly RankChange[]): void {
  if (changes.length <= ONE_BY_ONE) {
    for (const c of changes) {
      if (c.delta > 0) rankAdded(ctx, id, c.key);
      else rankRemoved(ctx, id, c.key);
    }
    return;
  }
  const bounds: Buffer[] = [];
  const counts: number[] = [];
  for (const [k, n] of blocks(ctx, id)) {
    bounds.push(Buffer.from(k));
    counts.push(n);
  }
  const before = new Set(bounds.map((b) => b.toString("latin1")));
  if (bounds.length === 0) {
    bounds.push(FIRST_BLOCK);
    counts.push(0);
  }
  for (const c of changes) counts[blockIndex(bounds, c.key)]! += c.delta;
  // Cut each block past BLOCK_SPLIT into blocks of BLOCK_MERGE (the last takes the rest).
  const cutBounds: Buffer[] = [];
  const cutCounts: number[] = [];
  for (let i = 0; i < bounds.length; i++) {
    const n = counts[i]!;
    if (n < 0) throw new KvStoreCorruptError(`sorted set ${id}: a block would count ${n} members`);
    if (n <= BLOCK_SPLIT) {
      cutBounds.push(bounds[i]!);
      cutCounts.push(n);
      continue;
    }
    const pieces = Math.floor(n / BLOCK_MERGE);
    let seen = 0;
    let pieceStart = bounds[i]!;
    for (const k of scoreKeys(ctx, id, blockStart(bounds[i]!))) {
      if (seen > 0 && seen % BLOCK_MERGE === 0 && seen / BLOCK_MERGE < pieces) {
        cutBounds.push(pieceStart);
        cutCounts.push(BLOCK_MERGE);
        pieceStart = Buffer.from(k);
        pieceStart[0] = BY_BLOCK;
      }
      if (++seen === n) break;
    }
    if (seen !== n)
      throw new KvStoreCorruptError(`sorted set ${id}: a block counted ${n} members, held ${seen}`);
    cutBounds.push(pieceStart);
    cutCounts.push(n - (pieces - 1) * BLOCK_MERGE);
  }
  // Merge each block into its predecessor while the two fit in BLOCK_MERGE (an empty one always).
  const keptBounds: Buffer[] = [cutBounds[0]!];
  const keptCounts: number[] = [cutCounts[0]!];
  for (let i = 1; i < cutBounds.length; i++) {
    const last = keptCounts.length - 1;
    if (cutCounts[i] === 0 || keptCounts[last]! + cutCounts[i]! <= BLOCK_MERGE)
      keptCounts[last]! += cutCounts[i]!;
    else {
      keptBounds.push(cutBounds[i]!);
      keptCounts.push(cutCounts[i]!);
    }
  }
  const kept = new Set(keptBounds.map((b) => b.toString("latin1")));
  for (const b of before) if (!kept.has(b)) ctx.removeItem(id, Buffer.from(b, "latin1"));
  for (let i = 0; i < keptBounds.length; i++) ctx.putItem(id, keptBounds[i]!, countValue(keptCounts[i]!));
}

/** The index of the block a score-order key falls in: the last bound at or below it (the first has none). */
function blockIndex(bounds: readonly Buffer[], key: Buffer): number {
  let lo = 0;
  let hi = bounds.length - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (Buffer.compare(bounds[mid]!.subarray(1), key.subarray(1)) <= 0) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}
