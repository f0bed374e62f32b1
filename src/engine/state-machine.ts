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
  /** The highest index whose effects the state machine has made durable; a restart resumes after it. */
  appliedIndex(): number;
}
