/**
 * What the Redis front door needs from the node behind it: writes through raft, reads after a
 * linearizable read, and what INFO reports. The engine-backed implementation is `engine-backend.ts`;
 * tests may use another.
 */
import type { FillWatcher } from "../../kv/machine.js";
import type { RecordType } from "../../kv/record.js";
import type { Reply } from "../../kv/reply.js";
import type { WatchedKey } from "../../kv/watch.js";

export interface KvBackend {
  /** Proposes the commands as one entry (several for MULTI/EXEC) and resolves with one reply each. */
  write(commands: readonly (readonly Buffer[])[]): Promise<readonly Reply[]>;
  /** Confirms a linearizable read point, then runs the read commands at it, in order. */
  read(commands: readonly (readonly Buffer[])[]): Promise<readonly Reply[]>;
  /** WATCH: the keys' versions at a linearizable read point, or the error that kept it from one. */
  watch(keys: readonly Buffer[]): Promise<readonly WatchedKey[] | Reply>;
  /**
   * A MULTI/EXEC with watched keys: the commands proposed as one entry carrying them (`writes`), or
   * run as one read. One reply per command; null when a watched key had changed (nothing ran); a
   * single error reply when the transaction could not be run (or its outcome is unknown).
   */
  execWatched(
    commands: readonly (readonly Buffer[])[],
    watches: readonly WatchedKey[],
    writes: boolean,
  ): Promise<readonly Reply[] | null | Reply>;
  /** Blocked clients (BLPOP …) learn here of the keys that applied writes filled. */
  onFilled(watcher: FillWatcher): void;
  /** Elements of the live list or sorted set at `key` in this node's applied state (a hint, not a read). */
  elementsAt(key: Buffer, type: RecordType): number;
  /** Number of keys (expired ones not yet removed included, as Redis counts them). */
  keyCount(): number;
  /** `name:value` lines for INFO's replication/raft section. */
  raftInfo(): readonly string[];
}
