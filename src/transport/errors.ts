/**
 * Every error the transport raises, in one place so that callers (the dispatch workers, the snapshot
 * receiver, logs and metrics) can match on the class and tell truncation, corruption, limits and
 * I/O failures apart. An I/O error from the file system is rethrown as it came (with its `code`).
 */
import type { NodeId } from "../raft/types.js";

export class TransportError extends Error {
  override name = "TransportError";
}

/** Which part of a snapshot stream was missing when it ended. */
export type SnapshotStreamPart = "header" | "chunk" | "trailer";

/**
 * The snapshot stream ended before its trailer: the connection dropped or the sender gave up. Nothing
 * was installed; the leader must send the snapshot again (report the failure to raft).
 */
export class SnapshotTruncatedError extends TransportError {
  override name = "SnapshotTruncatedError";
  constructor(
    /** Verified payload bytes received before the stream ended. */
    readonly receivedBytes: number,
    /** Payload bytes the header announced, or -1 when unknown (no header yet, or the sender did not know). */
    readonly expectedBytes: number,
    /** The part that was missing: the header, a data chunk, or the trailer. */
    readonly missing: SnapshotStreamPart,
    /** Stream bytes received in all (framing included). */
    readonly streamBytes: number,
  ) {
    super(
      `snapshot stream truncated: ended before the ${missing === "chunk" ? "remaining data chunks" : missing} ` +
        `after ${receivedBytes} of ${expectedBytes < 0 ? "an unknown number of" : expectedBytes} payload bytes ` +
        `(${streamBytes} stream bytes); nothing was installed, the leader must resend the snapshot`,
    );
  }
}

/**
 * The snapshot stream failed verification: a checksum, a sequence number, a length, the format, or
 * bytes after the trailer. Nothing was installed; the leader must resend the snapshot, and if this
 * repeats, suspect the network path or a sender running a different format version.
 */
export class SnapshotCorruptError extends TransportError {
  override name = "SnapshotCorruptError";
  constructor(
    readonly reason: string,
    /** Stream byte offset of the frame (or byte) that failed. */
    readonly offset: number,
  ) {
    super(
      `snapshot stream corrupt at stream offset ${offset}: ${reason}; nothing was installed, the leader must resend the snapshot`,
    );
  }
}

/** A snapshot is larger than the receiver's limit; raise `maxSnapshotBytes` on the receiver or shrink the state. */
export class SnapshotTooLargeError extends TransportError {
  override name = "SnapshotTooLargeError";
  constructor(
    /** The configured limit in payload bytes. */
    readonly limit: number,
    /** Payload bytes the stream announced or would have reached. */
    readonly bytes: number,
  ) {
    super(
      `snapshot refused: ${bytes} payload bytes exceed the receiver's limit of ${limit} (maxSnapshotBytes); ` +
        "raise maxSnapshotBytes on the receiver or reduce the state machine's size",
    );
  }
}

/** The peer belongs to another cluster: check the node's `clusterId` and its peer addresses. */
export class ClusterIdMismatchError extends TransportError {
  override name = "ClusterIdMismatchError";
  constructor(
    readonly expected: string,
    readonly received: string,
  ) {
    super(
      `a node of cluster ${JSON.stringify(expected)} refused a peer of cluster ${JSON.stringify(received)}; ` +
        "check the clusterId setting and the peer addresses",
    );
  }
}

/** The peer is not known, not started, closed, or cut off by a partition; raft should treat it as unreachable. */
export class PeerUnreachableError extends TransportError {
  override name = "PeerUnreachableError";
  constructor(
    readonly peer: NodeId,
    readonly reason: string,
  ) {
    super(`peer ${peer} is unreachable: ${reason}`);
  }
}

/** This node's transport is closed (the engine is stopping); nothing more is sent. */
export class TransportClosedError extends TransportError {
  override name = "TransportClosedError";
  constructor(readonly node: NodeId) {
    super(`the transport of node ${node} is closed`);
  }
}

/** A batch or snapshot lost by a drop rule in "error" mode. */
export class MessageDroppedError extends TransportError {
  override name = "MessageDroppedError";
  constructor(
    readonly from: NodeId,
    readonly to: NodeId,
    what: string,
  ) {
    super(`${what} from ${from} to ${to} was dropped by the network (fault injection)`);
  }
}

/**
 * A raft message or batch that fails validation: a local message type, an integer above 2^53 - 1, an
 * unknown enum value, a message addressed to another node, bytes that are not a valid encoding. The
 * sender refuses it before it goes out; a receiver ends the stream (gRPC INVALID_ARGUMENT) and stays up.
 * It means a bug or a foreign client, never a network fault: do not retry the same batch.
 */
export class MalformedMessageError extends TransportError {
  override name = "MalformedMessageError";
  constructor(
    readonly reason: string,
    /** Where in the request, e.g. `messages[2].entries[0].index`; empty for the whole request. */
    readonly path: string,
  ) {
    super(`malformed raft message${path === "" ? "" : ` at ${path}`}: ${reason}`);
  }
}

/**
 * An encoded batch (or snapshot piece) over a gRPC message-size limit, this node's or the peer's.
 * The batch was not delivered; raise `maxMessageBytes` on both ends or lower raft's `maxMessageBytes`
 * so that appends stay well below it.
 */
export class MessageTooLargeError extends TransportError {
  override name = "MessageTooLargeError";
  constructor(
    /** Encoded bytes, or -1 when the peer refused it without saying. */
    readonly bytes: number,
    /** The limit that refused it, or -1 when unknown. */
    readonly limit: number,
    /** "sender" when this node refused to send it, "receiver" when the peer refused it. */
    readonly side: "sender" | "receiver",
  ) {
    super(
      `raft batch of ${bytes < 0 ? "unknown size" : `${bytes} bytes`} refused by the ${side}: over its ` +
        `maxMessageBytes limit${limit < 0 ? "" : ` of ${limit}`}; raise maxMessageBytes on both nodes or lower raft's maxMessageBytes`,
    );
  }
}

/** The peer at an address is not the node the sender meant: the peer address map is wrong. */
export class WrongNodeError extends TransportError {
  override name = "WrongNodeError";
  constructor(
    /** The node the sender addressed. */
    readonly addressed: NodeId,
    /** The node that answered. */
    readonly actual: NodeId,
  ) {
    super(
      `traffic for node ${addressed} reached node ${actual}: check the peer addresses (the address configured for node ${addressed} belongs to node ${actual})`,
    );
  }
}

/** The receiver could not store a snapshot (its file system failed); `code` is the file system's, e.g. ENOSPC. */
export class SnapshotIoError extends TransportError {
  override name = "SnapshotIoError";
  constructor(
    readonly code: string,
    detail: string,
  ) {
    super(
      `the receiver failed to store the snapshot (${code}): ${detail}; check its disk, the leader will resend`,
    );
  }
}

/** The receiver stored the snapshot but its raft did not take it (for instance it is closing). */
export class SnapshotRejectedError extends TransportError {
  override name = "SnapshotRejectedError";
  constructor(readonly reason: string) {
    super(`the receiver did not take the snapshot: ${reason}; the leader will resend it if it must`);
  }
}
