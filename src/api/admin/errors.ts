/**
 * Every error an admin call can end in, on the node that refuses it and on the client that rebuilds it
 * from the call's status (see status-codec.ts), so that the command line can say what to do.
 */
import type { NodeId } from "../../raft/types.js";

export class AdminError extends Error {
  override name = "AdminError";
}

/** The node called does not lead; `leader` (0: none known yet) does, at `leaderAddress`. */
export class AdminNotLeaderError extends AdminError {
  override name = "AdminNotLeaderError";
  constructor(
    readonly leader: NodeId,
    readonly leaderAddress: string,
  ) {
    super(
      leader === 0
        ? "no leader is known yet; retry shortly"
        : `node ${leader} leads${leaderAddress ? ` (at ${leaderAddress})` : ", at an address this node does not know"}`,
    );
  }
}

/** The node named is not a member, or not the kind the call needs (a learner to promote, a voter to lead). */
export class UnknownNodeError extends AdminError {
  override name = "UnknownNodeError";
  constructor(
    readonly nodeId: NodeId,
    readonly reason: string,
  ) {
    super(`node ${nodeId}: ${reason}`);
  }
}

/** The change was refused and not made; `reason` is a short code, e.g. "conf-change-pending". */
export class ChangeRefusedError extends AdminError {
  override name = "ChangeRefusedError";
  constructor(
    readonly reason: string,
    readonly detail: string,
  ) {
    super(`change refused (${reason}): ${detail}`);
  }
}

/** The change was proposed but not seen applied within `waitedMs`: it may still take effect. */
export class AdminTimeoutError extends AdminError {
  override name = "AdminTimeoutError";
  constructor(readonly waitedMs: number) {
    super(
      `not done within ${waitedMs} ms; the change may still take effect: check with \`raftkv admin status\``,
    );
  }
}

/** Leadership moved while the call was in flight: the change may or may not have taken effect. */
export class OutcomeUnknownError extends AdminError {
  override name = "OutcomeUnknownError";
  constructor(readonly detail: string) {
    super(`outcome unknown (${detail}); check with \`raftkv admin status\` before retrying`);
  }
}

/** The node is starting, closing, or stopped after a fatal error. */
export class NodeUnavailableError extends AdminError {
  override name = "NodeUnavailableError";
  constructor(readonly detail: string) {
    super(`the node is unavailable: ${detail}`);
  }
}

/** The request itself is wrong (a missing address, a node id of 0). */
export class InvalidAdminRequestError extends AdminError {
  override name = "InvalidAdminRequestError";
  constructor(
    readonly field: string,
    readonly detail: string,
  ) {
    super(`invalid ${field}: ${detail}`);
  }
}

/** No answer from `endpoint` (refused, reset, no route, or past the client's deadline). */
export class NodeUnreachableError extends AdminError {
  override name = "NodeUnreachableError";
  constructor(
    readonly endpoint: string,
    readonly detail: string,
  ) {
    super(`cannot reach ${endpoint}: ${detail}`);
  }
}
