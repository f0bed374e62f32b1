import type { ConfChange, ConfState, Entry } from "../raft/types.js";

/**
 * A consistent image of the state machine, captured quickly and read later, off the loop (a read
 * transaction, in a store that has them). The engine reads it once and then releases it.
 */
export interface SnapshotHandle {
  /** The image's bytes, in order, in pieces of any size. */
  read(): AsyncIterable<Uint8Array>;
  /** Frees what the handle holds; called exactly once, after reading or after a failure. */
  release(): void;
}

/**
 * The replicated state machine an engine drives. Apply must be deterministic: every replica applies the
 * same entries in the same order and must end in the same state.
 */
export interface StateMachine<R = unknown> {
  /**
   * Applies committed normal entries, in order, and returns one result per entry. The engine hands
   * them over in batches; empty entries (a new leader's) are not passed on.
   *
   * A state machine that decides its results before its write is committed (inside a transaction that
   * still has to commit) may pass them to `decided` then, once: the engine answers the proposals at once,
   * because the entries are already committed in raft, and a crash before the state machine's commit
   * only makes the node apply them again. Raft counts the entries applied, and reads waiting for them
   * go on, only when the returned promise resolves.
   */
  apply(
    entries: readonly Entry[],
    decided?: (results: readonly R[]) => void,
  ): Promise<readonly R[]> | readonly R[];
  /**
   * The highest index whose effects the state machine holds. The engine asks when it opens, when that
   * is what the state machine kept durably: a restart resumes after it. If it is behind the node's
   * latest snapshot, the engine restores the snapshot into it first.
   */
  appliedIndex(): number;
  /**
   * Captures the state as of the last entry applied. Called on the loop between two applies, so it
   * must be quick: take a handle, and let the engine stream it to disk afterwards.
   */
  snapshot(): SnapshotHandle;
  /**
   * Replaces the whole state with a snapshot's bytes, taken at `index`, durably before resolving, and
   * atomically: if it fails (the stream may end in an error), or the process dies, the old state must
   * remain. Never called for a new cluster's bootstrap snapshot (index 1), the empty initial state.
   */
  restore(payload: AsyncIterable<Uint8Array>, index: number): Promise<void>;
  /**
   * Optional: told each membership change once raft applied it (`confState` is the membership after
   * it), in log order with `apply`, so that the state machine can keep what the change's context carries
   * (a server's address book) in its replicated state, and so in its snapshots: a node that catches up
   * from a snapshot never sees the entry. If it records `index`, `appliedIndex` may report it. Not
   * called again, after a restart, for an index at or below `appliedIndex()`.
   */
  applyConfChange?(index: number, change: ConfChange, confState: ConfState): Promise<void> | void;
}

/** A handle over bytes already in memory: for small state machines and tests. */
export function bytesSnapshot(data: Uint8Array): SnapshotHandle {
  return {
    async *read() {
      yield data;
    },
    release() {},
  };
}

/** Reads a whole payload into one array: for small state machines and tests. */
export async function readAll(payload: AsyncIterable<Uint8Array>): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  let n = 0;
  for await (const p of payload) {
    parts.push(p);
    n += p.byteLength;
  }
  if (parts.length === 1) return parts[0]!;
  const out = new Uint8Array(n);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.byteLength;
  }
  return out;
}
