/**
 * The grpc-js service definition of `raftkv.transport.v1.Raft`, written by hand because protoc-gen-es
 * emits message types only. Paths are `/raftkv.transport.v1.Raft/<Method>`; messages are encoded with
 * protobuf-es.
 *
 * Requests are deserialized tolerantly into a {@link Decoded}: grpc-js answers a deserializer that
 * throws with INTERNAL, but bytes a peer sends that are not a valid request are bad input, which the
 * handler must answer with INVALID_ARGUMENT (and stay up).
 */
import { type DescMessage, type MessageShape, toBinary } from "@bufbuild/protobuf";
import type { deserialize, serialize } from "@grpc/grpc-js";
import {
  type BatchAck,
  BatchAckSchema,
  type MessageBatch,
  MessageBatchSchema,
  type SnapshotAck,
  SnapshotAckSchema,
  type SnapshotPiece,
  SnapshotPieceSchema,
} from "./gen/raftkv/transport/v1/transport_pb.js";
import { parseProto } from "./grpc-codec.js";

export const RAFT_SERVICE_NAME = "raftkv.transport.v1.Raft";
export const MESSAGES_PATH = `/${RAFT_SERVICE_NAME}/Messages`;
export const SNAPSHOT_PATH = `/${RAFT_SERVICE_NAME}/Snapshot`;
/** Trailing metadata key of a failed call's {@link ErrorDetail} (binary: the key must end in -bin). */
export const ERROR_DETAIL_KEY = "raftkv-error-bin";

/** A request as the server receives it: parsed, or why it could not be. */
export type Decoded<T> =
  | { readonly ok: true; readonly value: T }
  | { readonly ok: false; readonly error: Error };

/** A Node Buffer over the same memory (grpc-js wants Buffers; protobuf-es returns Uint8Arrays). */
export function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

export function serializer<Desc extends DescMessage>(schema: Desc): (value: MessageShape<Desc>) => Buffer {
  return (value) => asBuffer(toBinary(schema, value));
}

/**
 * A plain Uint8Array over the same memory. Decoded bytes fields are views into what the parser is
 * given, and raft's payloads are Uint8Arrays: a Buffer's `slice` shares memory where a Uint8Array's
 * copies, so Buffers must not leak into raft messages.
 */
function view(bytes: Buffer): Uint8Array {
  return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

export function deserializer<Desc extends DescMessage>(schema: Desc): (bytes: Buffer) => MessageShape<Desc> {
  return (bytes) => parseProto(schema, view(bytes));
}

/** A deserializer that never throws: what the handler gets says whether the bytes parsed. */
export function tolerantDeserializer<Desc extends DescMessage>(
  schema: Desc,
): (bytes: Buffer) => Decoded<MessageShape<Desc>> {
  return (bytes) => {
    try {
      return { ok: true, value: parseProto(schema, view(bytes)) };
    } catch (err) {
      return { ok: false, error: err instanceof Error ? err : new Error(String(err)) };
    }
  };
}

/**
 * A grpc-js method definition whose request type differs between the client (`Req`, what it writes)
 * and the server (`ServerReq`, what its deserializer yields).
 */
export interface RaftMethod<Req, Res, ServerReq> {
  readonly path: string;
  readonly requestStream: boolean;
  readonly responseStream: boolean;
  readonly originalName: string;
  readonly requestSerialize: serialize<Req>;
  readonly requestDeserialize: deserialize<ServerReq>;
  readonly responseSerialize: serialize<Res>;
  readonly responseDeserialize: deserialize<Res>;
}

const messages: RaftMethod<MessageBatch, BatchAck, Decoded<MessageBatch>> = {
  path: MESSAGES_PATH,
  requestStream: true,
  responseStream: true,
  originalName: "messages",
  requestSerialize: serializer(MessageBatchSchema),
  requestDeserialize: tolerantDeserializer(MessageBatchSchema),
  responseSerialize: serializer(BatchAckSchema),
  responseDeserialize: deserializer(BatchAckSchema),
};

const snapshot: RaftMethod<SnapshotPiece, SnapshotAck, Decoded<SnapshotPiece>> = {
  path: SNAPSHOT_PATH,
  requestStream: true,
  responseStream: false,
  originalName: "snapshot",
  requestSerialize: serializer(SnapshotPieceSchema),
  requestDeserialize: tolerantDeserializer(SnapshotPieceSchema),
  responseSerialize: serializer(SnapshotAckSchema),
  responseDeserialize: deserializer(SnapshotAckSchema),
};

/** For `server.addService` and for clients (`client.makeBidiStreamRequest(def.messages.path, …)`). */
export const raftServiceDefinition = { messages, snapshot } as const;

/**
 * Serializes a MessageBatch the sender already encoded: the transport encodes a batch itself so that
 * it can refuse an oversized one alone, before grpc-js would cancel the whole stream over it.
 */
export function serializeEncoded(bytes: Uint8Array): Buffer {
  return asBuffer(bytes);
}
