/**
 * The keys one connection WATCHes. Which keys are watched follows request order at once (a pipelined
 * WATCH, UNWATCH or EXEC acts on the set as it stands after the requests before it); each key's version
 * arrives later, when its WATCH's linearizable read does.
 */
import { error, OK, type Reply } from "../../kv/reply.js";
import type { WatchedKey } from "../../kv/watch.js";

/** Keys one connection may watch at once: they all travel in the EXEC's entry. */
export const MAX_WATCHED_KEYS = 10_000;

export class WatchedKeys {
  /** Key (its bytes as latin1) → its version, or null if its WATCH failed. Never rejects. */
  private readonly keys = new Map<string, Promise<WatchedKey | null>>();

  get size(): number {
    return this.keys.size;
  }

  /**
   * Watches the keys not already watched (the first WATCH of a key is the one that counts, as in
   * Redis), with the versions `read` resolves with; resolves with WATCH's reply.
   */
  add(keys: readonly Buffer[], read: Promise<readonly WatchedKey[] | Reply>): Reply | Promise<Reply> {
    const fresh = new Map<string, number>();
    keys.forEach((k, i) => {
      const id = k.toString("latin1");
      if (!this.keys.has(id) && !fresh.has(id)) fresh.set(id, i);
    });
    if (this.keys.size + fresh.size > MAX_WATCHED_KEYS)
      return error(`ERR too many watched keys (at most ${MAX_WATCHED_KEYS})`);
    const versions = read.then(
      (r) => (isVersions(r) ? r : null),
      () => null,
    );
    for (const [id, i] of fresh)
      this.keys.set(
        id,
        versions.then((v) => v?.[i] ?? null),
      );
    return read.then((r) => (isVersions(r) ? OK : r));
  }

  clear(): void {
    this.keys.clear();
  }

  /**
   * Takes every watched key, leaving none: null when none was watched; else resolves with their
   * versions, or with null if a WATCH of one of them failed (the EXEC then fails, as if it changed).
   */
  take(): Promise<WatchedKey[] | null> | null {
    if (this.keys.size === 0) return null;
    const pending = [...this.keys.values()];
    this.keys.clear();
    return Promise.all(pending).then((versions) => {
      const out: WatchedKey[] = [];
      for (const v of versions) {
        if (v === null) return null;
        out.push(v);
      }
      return out;
    });
  }
}

function isVersions(r: readonly WatchedKey[] | Reply): r is readonly WatchedKey[] {
  return Array.isArray(r);
}
