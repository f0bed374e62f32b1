/** Every error the raft core raises, in one place so that callers can match on the class. */

export class RaftError extends Error {
  override name = "RaftError";
}

/** A proposal was not accepted; the caller may retry, possibly on another node. */
export class ProposalDroppedError extends RaftError {
  override name = "ProposalDroppedError";
  constructor(
    readonly reason:
      | "no-leader"
      | "not-leader"
      | "leader-transfer-in-progress"
      | "leader-being-removed"
      | "forwarding-disabled"
      | "uncommitted-size-limit"
      | "removed-from-cluster"
      | "conf-change-pending"
      | "conf-change-invalid",
    detail = "",
  ) {
    super(`proposal dropped: ${reason}${detail ? ` (${detail})` : ""}`);
  }
}

/** The requested index is at or below the first index the storage still holds. */
export class CompactedError extends RaftError {
  override name = "CompactedError";
  constructor(
    readonly index: number,
    readonly firstIndex: number,
  ) {
    super(`index ${index} is compacted (first available index is ${firstIndex})`);
  }
}

/** The requested index is beyond what the storage holds. */
export class UnavailableError extends RaftError {
  override name = "UnavailableError";
  constructor(readonly index: number) {
    super(`index ${index} is unavailable in storage`);
  }
}

/** A snapshot older than the one the storage already has. */
export class SnapshotOutOfDateError extends RaftError {
  override name = "SnapshotOutOfDateError";
  constructor(
    readonly index: number,
    readonly currentIndex: number,
  ) {
    super(`snapshot at index ${index} is older than the current snapshot at ${currentIndex}`);
  }
}

/** The storage is producing a snapshot and cannot hand one out yet; the leader retries later. */
export class SnapshotTemporarilyUnavailableError extends RaftError {
  override name = "SnapshotTemporarilyUnavailableError";
  constructor() {
    super("snapshot is temporarily unavailable");
  }
}

/** A configuration change that cannot be applied to the current configuration. */
export class InvalidConfChangeError extends RaftError {
  override name = "InvalidConfChangeError";
}

/** The caller used the API out of order (e.g. advanced without a ready) or passed a bad config. */
export class RaftUsageError extends RaftError {
  override name = "RaftUsageError";
}

/** A step of a message that the core refuses (e.g. a local message from the network). */
export class StepRejectedError extends RaftError {
  override name = "StepRejectedError";
}

/**
 * A broken invariant: the node's state is known to be wrong and it must stop (fail-stop). The message
 * names the invariant.
 */
export class RaftInvariantError extends RaftError {
  override name = "RaftInvariantError";
}

export function invariant(condition: boolean, description: string | (() => string)): asserts condition {
  if (!condition) {
    throw new RaftInvariantError(
      `raft invariant violated: ${typeof description === "string" ? description : description()}`,
    );
  }
}
