/**
 * The transport seam: what the engine needs to send messages and snapshots to its peers and to receive
 * theirs. The gRPC transport and the in-memory transport (tests, the simulator) both implement it. The
 * transport layer never imports the engine: the engine's dispatch workers use {@link PeerSender}, and the
 * engine hands the transport an {@link InboundHandler} and a {@link SnapshotSource}.
 */
import type { Message, NodeId, SnapshotMetadata } from "../raft/types.js";
import type { SnapshotStats } from "./snapshot-stream.js";

/** What a dispatch worker needs from the transport for one peer. */
export interface PeerSender {
  /** Sends a batch of messages on the peer's message stream; rejects if they were not delivered. */
  send(batch: readonly Message[], signal: AbortSignal): Promise<void>;
  /**
   * Streams a snapshot; resolves once the receiver confirmed it whole, verified and durable.
   * `onProgress` is told the payload bytes written so far as the stream advances (at least once per
   * chunk), so that the caller can tell raft a long transfer is alive.
   */
  sendSnapshot(
    message: Message,
    signal: AbortSignal,
    onProgress?: (payloadBytes: number) => void,
  ): Promise<void>;
}

/**
 * Where the payload of a snapshot raft asked to send comes from (the state machine's snapshot handle).
 * The Snap message's `snapshot.data` is not the payload; the transport streams what this yields.
 */
export interface SnapshotSource {
  open(meta: SnapshotMetadata, signal: AbortSignal): AsyncIterable<Uint8Array>;
  /** The payload's size, when known, announced in the stream's header so a cut can be measured. */
  payloadBytes?(meta: SnapshotMetadata): Promise<number>;
}

/** A snapshot the receiving transport spooled, verified and made durable. */
export interface ReceivedSnapshot {
  metadata: SnapshotMetadata;
  /** The durable payload file. */
  path: string;
  payloadBytes: number;
}

/** The engine's side of inbound traffic; both calls only post to the engine's loop. */
export interface InboundHandler {
  /** A batch from `from`, in the order it was sent. Must not throw. */
  onMessages(from: NodeId, batch: readonly Message[]): void;
  /**
   * A snapshot from `from`, durable at `received.path`. Resolves when the loop has taken it; only then
   * is the sender told the snapshot was confirmed. A rejection fails the sender's transfer.
   */
  onSnapshot(from: NodeId, message: Message, received: ReceivedSnapshot): Promise<void>;
}

export interface Transport {
  /** Starts accepting inbound traffic for `handler`. */
  start(handler: InboundHandler): Promise<void>;
  /** The sender for one peer (cheap; may be called again for the same peer). */
  sender(peer: NodeId): PeerSender;
  /** Stops: inbound streams are failed, later sends rejected with {@link TransportClosedError}. */
  close(): Promise<void>;
  /** Snapshot transfer totals, for the engine's metrics. */
  readonly snapshotStats?: SnapshotStats;
}
