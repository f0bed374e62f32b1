/**
 * Typed transport errors ↔ gRPC statuses. A receiver that refuses a call answers with a status code
 * that fits (FAILED_PRECONDITION, INVALID_ARGUMENT, RESOURCE_EXHAUSTED, DATA_LOSS, ABORTED) and puts an
 * {@link pb.ErrorDetail} in the trailing metadata; the sender rebuilds the same error class from it, so
 * the engine, its logs and its metrics see a `SnapshotTruncatedError` with its counts rather than a
 * bare status. A status without a detail (connection refused or lost, deadline, a peer that is
 * shutting down) means the peer could not be reached.
 */
import { create, toBinary } from "@bufbuild/protobuf";
import { Metadata, type StatusObject, status } from "@grpc/grpc-js";
import type { NodeId } from "../raft/types.js";
import {
  ClusterIdMismatchError,
  MalformedMessageError,
  MessageTooLargeError,
  PeerUnreachableError,
  SnapshotCorruptError,
  SnapshotIoError,
  SnapshotRejectedError,
  type SnapshotStreamPart,
  SnapshotTooLargeError,
  SnapshotTruncatedError,
  TransportClosedError,
  WrongNodeError,
} from "./errors.js";
import * as pb from "./gen/raftkv/transport/v1/transport_pb.js";
import { parseProto } from "./grpc-codec.js";
import { ERROR_DETAIL_KEY } from "./grpc-service.js";

export type FailureStatus = Pick<StatusObject, "code" | "details" | "metadata">;

function withDetail(code: status, err: Error, kind: pb.ErrorDetail["kind"]): FailureStatus {
  const metadata = new Metadata();
  const detail = create(pb.ErrorDetailSchema, { kind });
  metadata.set(ERROR_DETAIL_KEY, Buffer.from(toBinary(pb.ErrorDetailSchema, detail)));
  return { code, details: err.message, metadata };
}

/** The status a receiver answers a refused call with. */
export function statusFromError(err: unknown): FailureStatus {
  if (err instanceof SnapshotTruncatedError)
    return withDetail(status.DATA_LOSS, err, {
      case: "snapshotTruncated",
      value: create(pb.SnapshotTruncatedSchema, {
        receivedBytes: BigInt(err.receivedBytes),
        expectedBytes: BigInt(err.expectedBytes),
        missing: err.missing,
        streamBytes: BigInt(err.streamBytes),
      }),
    });
  if (err instanceof SnapshotCorruptError)
    return withDetail(status.DATA_LOSS, err, {
      case: "snapshotCorrupt",
      value: create(pb.SnapshotCorruptSchema, { reason: err.reason, offset: BigInt(err.offset) }),
    });
  if (err instanceof SnapshotTooLargeError)
    return withDetail(status.RESOURCE_EXHAUSTED, err, {
      case: "snapshotTooLarge",
      value: create(pb.SnapshotTooLargeSchema, { limit: BigInt(err.limit), bytes: BigInt(err.bytes) }),
    });
  if (err instanceof ClusterIdMismatchError)
    return withDetail(status.FAILED_PRECONDITION, err, {
      case: "clusterIdMismatch",
      value: create(pb.ClusterIdMismatchSchema, { expected: err.expected, received: err.received }),
    });
  if (err instanceof WrongNodeError)
    return withDetail(status.FAILED_PRECONDITION, err, {
      case: "wrongNode",
      value: create(pb.WrongNodeSchema, { addressed: BigInt(err.addressed), actual: BigInt(err.actual) }),
    });
  if (err instanceof MalformedMessageError)
    return withDetail(status.INVALID_ARGUMENT, err, {
      case: "malformed",
      value: create(pb.MalformedSchema, { reason: err.reason, path: err.path }),
    });
  if (err instanceof MessageTooLargeError)
    return withDetail(status.RESOURCE_EXHAUSTED, err, {
      case: "messageTooLarge",
      value: create(pb.MessageTooLargeSchema, { bytes: BigInt(err.bytes), limit: BigInt(err.limit) }),
    });
  if (err instanceof SnapshotRejectedError)
    return withDetail(status.ABORTED, err, {
      case: "snapshotRejected",
      value: create(pb.SnapshotRejectedSchema, { reason: err.reason }),
    });
  if (err instanceof TransportClosedError || err instanceof PeerUnreachableError)
    return { code: status.UNAVAILABLE, details: err.message, metadata: new Metadata() };
  const code = (err as { code?: unknown } | null)?.code;
  const message = err instanceof Error ? err.message : String(err);
  if (typeof code === "string") {
    // The file system's error, as spoolSnapshot rethrows it.
    const e = new SnapshotIoError(code, message);
    return withDetail(status.INTERNAL, e, {
      case: "io",
      value: create(pb.IoFailureSchema, { code, message }),
    });
  }
  return { code: status.INTERNAL, details: message, metadata: new Metadata() };
}

/** What a failed grpc-js call hands the client. */
export interface CallFailure {
  code: number;
  details: string;
  metadata?: Metadata | undefined;
}

function readDetail(metadata: Metadata | undefined): pb.ErrorDetail | null {
  const raw = metadata?.get(ERROR_DETAIL_KEY)[0];
  if (!(raw instanceof Uint8Array)) return null;
  try {
    return parseProto(pb.ErrorDetailSchema, raw);
  } catch {
    return null; // a detail we cannot read: fall back to the status code
  }
}

/** A safe integer from a detail's int64, or -1 when a peer sent nonsense. */
function n(v: bigint): number {
  return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : -1;
}

const PARTS: readonly string[] = ["header", "chunk", "trailer"];
const GRPC_SIZE = /larger than max \((\d+) vs\. (\d+)\)/;

/** The typed error a failed call stands for, on the calling side. */
export function errorFromStatus(peer: NodeId, failure: CallFailure): Error {
  const detail = readDetail(failure.metadata);
  const k = detail?.kind;
  switch (k?.case) {
    case "snapshotTruncated": {
      const v = k.value;
      const missing = (PARTS.includes(v.missing) ? v.missing : "chunk") as SnapshotStreamPart;
      return new SnapshotTruncatedError(n(v.receivedBytes), n(v.expectedBytes), missing, n(v.streamBytes));
    }
    case "snapshotCorrupt":
      return new SnapshotCorruptError(k.value.reason, n(k.value.offset));
    case "snapshotTooLarge":
      return new SnapshotTooLargeError(n(k.value.limit), n(k.value.bytes));
    case "clusterIdMismatch":
      return new ClusterIdMismatchError(k.value.expected, k.value.received);
    case "wrongNode":
      return new WrongNodeError(n(k.value.addressed), n(k.value.actual));
    case "malformed":
      return new MalformedMessageError(k.value.reason, k.value.path);
    case "messageTooLarge":
      return new MessageTooLargeError(n(k.value.bytes), n(k.value.limit), "receiver");
    case "io":
      return new SnapshotIoError(k.value.code, k.value.message);
    case "snapshotRejected":
      return new SnapshotRejectedError(k.value.reason);
    default:
      break;
  }
  if (failure.code === status.RESOURCE_EXHAUSTED) {
    // grpc-js's own size check ("Received message larger than max (N vs. L)") carries no detail.
    const m = GRPC_SIZE.exec(failure.details);
    return new MessageTooLargeError(m ? Number(m[1]) : -1, m ? Number(m[2]) : -1, "receiver");
  }
  return new PeerUnreachableError(peer, `${status[failure.code] ?? failure.code}: ${failure.details}`);
}
