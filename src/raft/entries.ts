import type { Entry } from "./types.js";

/** Bytes an entry takes in a message or on disk: payload plus a fixed header allowance. */
export const ENTRY_OVERHEAD_BYTES = 24;

export function entryBytes(e: Entry): number {
  return e.data.byteLength + ENTRY_OVERHEAD_BYTES;
}

export function entriesBytes(entries: readonly Entry[]): number {
  let total = 0;
  for (let i = 0; i < entries.length; i++) total += entries[i]!.data.byteLength + ENTRY_OVERHEAD_BYTES;
  return total;
}

/** Payload bytes only: what counts against the uncommitted-size limit. */
export function payloadBytes(entries: readonly Entry[]): number {
  let total = 0;
  for (let i = 0; i < entries.length; i++) total += entries[i]!.data.byteLength;
  return total;
}

/**
 * The longest prefix of `entries` whose size is within `maxBytes`, but never empty when `entries` is
 * not: one oversized entry must still make progress. Returns the same array when nothing is cut.
 */
export function limitSize(entries: Entry[], maxBytes: number): Entry[] {
  if (entries.length <= 1) return entries;
  let size = entries[0]!.data.byteLength + ENTRY_OVERHEAD_BYTES;
  for (let i = 1; i < entries.length; i++) {
    size += entries[i]!.data.byteLength + ENTRY_OVERHEAD_BYTES;
    if (size > maxBytes) return entries.slice(0, i);
  }
  return entries;
}
