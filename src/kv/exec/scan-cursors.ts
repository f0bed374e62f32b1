/**
 * SCAN positions that a cursor's 64 bits cannot name: a key in the middle of a run of keys that share
 * their first 8 bytes (say "session:…"). Kept per node, not replicated: a cursor is a reply, not state.
 * Cursor numbers with the top bit set are this table's; a number it no longer holds (evicted, or issued
 * by another node, or before a restart) restarts the scan from the beginning, which SCAN allows (keys
 * may come twice), rather than skip any.
 */
import { randomBytes } from "node:crypto";

export const TABLE_CURSOR_BIT = 1n << 63n;

export class ScanCursors {
  /** Insertion order is recency: the oldest is evicted first. */
  private readonly positions = new Map<bigint, Buffer>();

  constructor(private readonly capacity = 10_000) {}

  /** A cursor that resumes a scan at `key` (inclusive). */
  issue(key: Buffer): bigint {
    let cursor: bigint;
    do cursor = randomBytes(8).readBigUInt64BE(0) | TABLE_CURSOR_BIT;
    while (this.positions.has(cursor));
    this.positions.set(cursor, Buffer.from(key));
    if (this.positions.size > this.capacity) {
      const oldest = this.positions.keys().next().value as bigint;
      this.positions.delete(oldest);
    }
    return cursor;
  }

  /** Where a table cursor resumes, if it is still held (it stays: a client may send it again). */
  resolve(cursor: bigint): Buffer | undefined {
    const key = this.positions.get(cursor);
    if (key === undefined) return undefined;
    this.positions.delete(cursor);
    this.positions.set(cursor, key);
    return key;
  }

  get size(): number {
    return this.positions.size;
  }
}
