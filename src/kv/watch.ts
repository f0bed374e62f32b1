/**
 * WATCH's optimistic lock, decided the same way on every replica.
 *
 * Redis 7.0 fails an EXEC when a watched key was modified after the WATCH (any write that changed it,
 * a deletion, FLUSHALL/FLUSHDB removing it, its expiry removing it), or when a key that was live at the
 * WATCH has expired by the EXEC. A key already expired (logically absent) at the WATCH that is then
 * merely removed has not changed. Writes that change nothing (SET NX on a present key, DEL of a missing
 * one, PERSIST without a TTL) do not count.
 *
 * Here every record carries its version, the raft index of the entry that last wrote it, and WATCH
 * reads, at a linearizable point `seenAt` (the applied index of the state read), each key's version,
 * 0 for a key absent or expired. The EXEC entry carries them; when it is applied, a key holds if:
 * - it was present (version v): it is stored with version v and not expired at the entry's time;
 * - it was absent: no record written after `seenAt` exists, stored (expired or not) or deleted since
 *   (its tombstone's version). A stored record at or before `seenAt` is the one that was already
 *   expired then. Tombstones older than the horizon are forgotten: if `seenAt` is below the horizon,
 *   the answer is not known and the key counts as changed (only a WATCH held for a long time).
 * Versions are unique, so a key deleted and written again never passes for unchanged.
 */
import { isExpired } from "./exec/context.js";
import { MAX_KEY_BYTES } from "./exec/table.js";
import type { KeyRecord, Tombstone } from "./record.js";

export interface WatchedKey {
  readonly key: Buffer;
  /** The record's version when watched; 0: absent (or expired). */
  readonly version: number;
  /** The applied index of the state the version was read from. */
  readonly seenAt: number;
}

/** What the check reads: the state as the entry (or the read) sees it (a batch's writer, or the store). */
export interface WatchView {
  /** The key's record, expired or not. */
  get(key: Buffer): KeyRecord | undefined;
  tombstone(key: Buffer): Tombstone | undefined;
  tombstoneHorizon(): number;
}

/** A key's version for WATCH: its record's, or 0 when absent or expired at `nowMs`. */
export function watchedVersion(view: WatchView, key: Buffer, nowMs: number): number {
  if (key.length > MAX_KEY_BYTES) return 0;
  const r = view.get(key);
  return r === undefined || isExpired(r, nowMs) ? 0 : r.version;
}

/** Whether no watched key changed since it was watched (judging expiry at `nowMs`). */
export function watchesHold(view: WatchView, watches: readonly WatchedKey[], nowMs: number): boolean {
  for (const w of watches) if (!holds(view, w, nowMs)) return false;
  return true;
}

function holds(view: WatchView, w: WatchedKey, nowMs: number): boolean {
  // The store holds no such key and never will (the front door refuses it): it cannot change.
  if (w.key.length > MAX_KEY_BYTES) return true;
  const r = view.get(w.key);
  if (w.version !== 0) return r !== undefined && r.version === w.version && !isExpired(r, nowMs);
  if (r !== undefined) return r.version <= w.seenAt;
  if (w.seenAt < view.tombstoneHorizon()) return false;
  const t = view.tombstone(w.key);
  return t === undefined || t.version <= w.seenAt;
}
