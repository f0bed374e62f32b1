/** Every error the engine raises to its callers, in one place so that callers can match on the class. */
import type { NodeId } from "../raft/types.js";

export class EngineError extends Error {
  override name = "EngineError";
}

/** This node is not the leader; retry on `leader` (NONE = 0 when no leader is known yet). */
export class NotLeaderError extends EngineError {
  override name = "NotLeaderError";
  constructor(
    readonly leader: NodeId,
    readonly leaderAddress: string | null,
  ) {
    super(
      leader === 0
        ? "no leader is known yet; retry shortly"
        : `not the leader; the leader is node ${leader}${leaderAddress ? ` at ${leaderAddress}` : ""}`,
    );
  }
}

/** Leadership changed before the request completed: its outcome is unknown unless it was applied. */
export class LeadershipLostError extends EngineError {
  override name = "LeadershipLostError";
  constructor(detail: string) {
    super(`leadership was lost before the request completed (${detail}); retry on the new leader`);
  }
}

/** A read's confirmation round went unanswered (the request or its answer was lost); retry it. */
export class ReadIndexTimeoutError extends EngineError {
  override name = "ReadIndexTimeoutError";
  constructor(ticks: number) {
    super(`the read was not confirmed within ${ticks} ticks; retry it`);
  }
}

/** Too many requests are pending; retry after some complete. */
export class EngineOverloadedError extends EngineError {
  override name = "EngineOverloadedError";
}

/**
 * Raft refused the proposal on this leader: `reason` says why (a leader transfer under way, the bound
 * on uncommitted bytes, this leader being removed, a membership change pending). Usually retryable.
 */
export class ProposalRefusedError extends EngineError {
  override name = "ProposalRefusedError";
  constructor(
    readonly reason: string,
    detail: string,
  ) {
    super(`proposal refused: ${detail}`);
  }
}

export class EngineClosedError extends EngineError {
  override name = "EngineClosedError";
  constructor() {
    super("the engine is closed");
  }
}

/** The engine hit an error it cannot continue from (a storage failure, a broken invariant). */
export class EngineFailedError extends EngineError {
  override name = "EngineFailedError";
  constructor(override readonly cause: unknown) {
    super(`the engine stopped after a fatal error: ${(cause as Error)?.message ?? String(cause)}`);
  }
}
