import type { Entry } from "../raft/types.js";

/**
 * The replicated state machine an engine drives. Apply must be deterministic: every replica applies the
 * same entries in the same order and must end in the same state.
 */
export interface StateMachine<R = unknown> {
  /**
   * Applies committed normal entries, in order, and returns one result per entry. The engine hands
   * them over in batches; empty entries (a new leader's) are not passed on.
   */
  apply(entries: readonly Entry[]): Promise<readonly R[]> | readonly R[];
  /**
   * The highest index whose effects the state machine has made durable; a restart resumes after it. If
   * it is behind the node's latest snapshot, the engine restores the snapshot into it first.
   */
  appliedIndex(): number;
  /**
   * The whole state as of the last entry applied, as bytes. Called on the loop right after an apply, so
   * it must be quick (a consistent read handle, not a walk of the store, in a real implementation).
   */
  snapshot(): Uint8Array;
  /**
   * Replaces the whole state with a snapshot's bytes, taken at `index`; durably before resolving. Never
   * called for a new cluster's bootstrap snapshot (index 1), which stands for the empty initial state.
   */
  restore(data: Uint8Array, index: number): Promise<void> | void;
}
