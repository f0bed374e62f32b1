/**
 * What the Redis front door needs from the node behind it: writes through raft, reads after a
 * linearizable read, and what INFO reports. The engine-backed implementation is `engine-backend.ts`;
 * tests may use another.
 */
import type { Reply } from "../../kv/reply.js";

export interface KvBackend {
  /** Proposes the commands as one entry (several for MULTI/EXEC) and resolves with one reply each. */
  write(commands: readonly (readonly Buffer[])[]): Promise<readonly Reply[]>;
  /** Confirms a linearizable read point, then runs the read commands at it, in order. */
  read(commands: readonly (readonly Buffer[])[]): Promise<readonly Reply[]>;
  /** Number of keys (expired ones not yet removed included, as Redis counts them). */
  keyCount(): number;
  /** `name:value` lines for INFO's replication/raft section. */
  raftInfo(): readonly string[];
}
