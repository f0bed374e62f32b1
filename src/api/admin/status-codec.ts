/**
 * Admin errors ↔ gRPC statuses: the node answers a refusal with a code that fits and an AdminError in
 * the trailing metadata; the client rebuilds the same error class from it. A status without one
 * (connection refused, reset, deadline) means the node could not be reached.
 */
import { create, toBinary } from "@bufbuild/protobuf";
import { Metadata, status } from "@grpc/grpc-js";
import * as pb from "../../transport/gen/raftkv/admin/v1/admin_pb.js";
import { parseProto } from "../../transport/grpc-codec.js";
import type { CallFailure, FailureStatus } from "../../transport/grpc-status.js";
import { ADMIN_ERROR_KEY } from "./definition.js";
import {
  AdminError,
  AdminNotLeaderError,
  AdminTimeoutError,
  ChangeRefusedError,
  InvalidAdminRequestError,
  NodeUnavailableError,
  NodeUnreachableError,
  OutcomeUnknownError,
  UnknownNodeError,
} from "./errors.js";

function withDetail(code: status, message: string, kind: pb.AdminError["kind"]): FailureStatus {
  const metadata = new Metadata();
  metadata.set(
    ADMIN_ERROR_KEY,
    Buffer.from(toBinary(pb.AdminErrorSchema, create(pb.AdminErrorSchema, { kind }))),
  );
  return { code, details: message, metadata };
}

/** The status a node answers a refused admin call with; anything not an admin error is INTERNAL. */
export function adminStatusFromError(err: unknown): FailureStatus {
  if (err instanceof AdminNotLeaderError)
    return withDetail(status.FAILED_PRECONDITION, err.message, {
      case: "notLeader",
      value: create(pb.NotLeaderSchema, { leader: BigInt(err.leader), leaderAddress: err.leaderAddress }),
    });
  if (err instanceof UnknownNodeError)
    return withDetail(status.NOT_FOUND, err.message, {
      case: "unknownNode",
      value: create(pb.UnknownNodeSchema, { nodeId: BigInt(err.nodeId), reason: err.reason }),
    });
  if (err instanceof ChangeRefusedError)
    return withDetail(status.FAILED_PRECONDITION, err.message, {
      case: "changeRefused",
      value: create(pb.ChangeRefusedSchema, { reason: err.reason, detail: err.detail }),
    });
  if (err instanceof AdminTimeoutError)
    return withDetail(status.DEADLINE_EXCEEDED, err.message, {
      case: "timeout",
      value: create(pb.TimeoutSchema, { waitedMs: BigInt(err.waitedMs) }),
    });
  if (err instanceof OutcomeUnknownError)
    return withDetail(status.ABORTED, err.message, {
      case: "outcomeUnknown",
      value: create(pb.OutcomeUnknownSchema, { detail: err.detail }),
    });
  if (err instanceof NodeUnavailableError)
    return withDetail(status.UNAVAILABLE, err.message, {
      case: "unavailable",
      value: create(pb.UnavailableSchema, { detail: err.detail }),
    });
  if (err instanceof InvalidAdminRequestError)
    return withDetail(status.INVALID_ARGUMENT, err.message, {
      case: "invalidRequest",
      value: create(pb.InvalidRequestSchema, { field: err.field, detail: err.detail }),
    });
  const message = err instanceof Error ? err.message : String(err);
  return { code: status.INTERNAL, details: message, metadata: new Metadata() };
}

function readDetail(metadata: Metadata | undefined): pb.AdminError | null {
  const raw = metadata?.get(ADMIN_ERROR_KEY)[0];
  if (!(raw instanceof Uint8Array)) return null;
  try {
    return parseProto(pb.AdminErrorSchema, raw);
  } catch {
    return null; // a detail we cannot read: fall back to the status code
  }
}

/** A node id from the wire, or -1 for nonsense. */
function id(v: bigint): number {
  return v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : -1;
}

/** The typed error a failed admin call to `endpoint` stands for, on the client. */
export function adminErrorFromStatus(endpoint: string, failure: CallFailure): Error {
  const k = readDetail(failure.metadata)?.kind;
  switch (k?.case) {
    case "notLeader":
      return new AdminNotLeaderError(id(k.value.leader), k.value.leaderAddress);
    case "unknownNode":
      return new UnknownNodeError(id(k.value.nodeId), k.value.reason);
    case "changeRefused":
      return new ChangeRefusedError(k.value.reason, k.value.detail);
    case "timeout":
      return new AdminTimeoutError(id(k.value.waitedMs));
    case "outcomeUnknown":
      return new OutcomeUnknownError(k.value.detail);
    case "unavailable":
      return new NodeUnavailableError(k.value.detail);
    case "invalidRequest":
      return new InvalidAdminRequestError(k.value.field, k.value.detail);
    default:
      break;
  }
  if (failure.code === status.INTERNAL || failure.code === status.UNIMPLEMENTED)
    return new AdminError(`${endpoint} answered ${status[failure.code]}: ${failure.details}`);
  // grpc-js ends a connection failure's details with an empty "Resolution note: ".
  const details = failure.details.replace(/\.?\s*Resolution note:\s*$/, "");
  return new NodeUnreachableError(endpoint, `${status[failure.code] ?? failure.code}: ${details}`);
}
