/**
 * The grpc-js service definition of `raftkv.admin.v1.Admin` (proto/raftkv/admin/v1/admin.proto), by hand
 * as for the raft service: protoc-gen-es emits message types only. The server's deserializers never
 * throw, so that bytes that are not a request are answered INVALID_ARGUMENT, not INTERNAL.
 */
import type { DescMessage, MessageShape } from "@bufbuild/protobuf";
import * as pb from "../../transport/gen/raftkv/admin/v1/admin_pb.js";
import {
  type Decoded,
  deserializer,
  serializer,
  tolerantDeserializer,
} from "../../transport/grpc-service.js";

export const ADMIN_SERVICE_NAME = "raftkv.admin.v1.Admin";
/** Trailing metadata key of a refused call's AdminError (binary: the key must end in -bin). */
export const ADMIN_ERROR_KEY = "raftkv-admin-error-bin";

interface UnaryMethod<Req extends DescMessage, Res extends DescMessage> {
  readonly path: string;
  readonly requestStream: false;
  readonly responseStream: false;
  readonly originalName: string;
  readonly requestSerialize: (value: MessageShape<Req>) => Buffer;
  readonly requestDeserialize: (bytes: Buffer) => Decoded<MessageShape<Req>>;
  readonly responseSerialize: (value: MessageShape<Res>) => Buffer;
  readonly responseDeserialize: (bytes: Buffer) => MessageShape<Res>;
}

function unary<Req extends DescMessage, Res extends DescMessage>(
  name: string,
  request: Req,
  response: Res,
): UnaryMethod<Req, Res> {
  return {
    path: `/${ADMIN_SERVICE_NAME}/${name}`,
    requestStream: false,
    responseStream: false,
    originalName: name.charAt(0).toLowerCase() + name.slice(1),
    requestSerialize: serializer(request),
    requestDeserialize: tolerantDeserializer(request),
    responseSerialize: serializer(response),
    responseDeserialize: deserializer(response),
  };
}

export const adminServiceDefinition = {
  status: unary("Status", pb.StatusRequestSchema, pb.StatusResponseSchema),
  changeMembership: unary(
    "ChangeMembership",
    pb.ChangeMembershipRequestSchema,
    pb.ChangeMembershipResponseSchema,
  ),
  transferLeader: unary("TransferLeader", pb.TransferLeaderRequestSchema, pb.TransferLeaderResponseSchema),
} as const;
