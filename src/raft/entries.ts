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
 * The end (exclusive) of the longest run entries[start, end') with end' ≤ end whose size is within
 * `maxBytes`. With `atLeastOne`, a non-empty range always yields at least one entry, so that one
 * oversized entry still makes progress. Finding the cut before slicing keeps catching up a follower
 * linear in what is sent, not in how far behind it is.
 */
export function endWithinBytes(
  entries: readonly Entry[],
  start: number,
  end: number,
  maxBytes: number,
  atLeastOne = true,
): number {
  let size = 0;
  for (let i = start; i < end; i++) {
    size += entries[i]!.data.byteLength + ENTRY_OVERHEAD_BYTES;
    if (size > maxBytes && (i > start || !atLeastOne)) return i;
  }
  return end;
}
