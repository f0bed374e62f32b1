/**
 * Raft messages ↔ their protobuf form (proto/raftkv/transport/v1/transport.proto), with strict
 * validation both ways: what leaves this node was checked, and nothing a peer sends reaches raft
 * unchecked. Every failure is a {@link MalformedMessageError} naming the field.
 *
 * - Integers travel as uint64 (bigint in protobuf-es) and must be at most 2^53 - 1.
 * - Only wire message types (Prop and App…ReadIndexResp) are accepted; enum numbers equal the raft
 *   core's, so a type converts by a range check.
 * - Payloads are never copied here: an encoded entry refers to the caller's `data`, and a decoded entry
 *   is a view into the received buffer (protobuf-es reads bytes fields as subarrays).
 *
 * Checks run as plain comparisons in the loops; a path string is only built once something failed.
 */
import { type DescMessage, fromBinary, type MessageShape, toBinary } from "@bufbuild/protobuf";
import {
  type ConfState,
  EMPTY_BYTES,
  type Entry,
  type Message,
  MessageType,
  messageTypeName,
  type NodeId,
  type SnapshotMetadata,
} from "../raft/types.js";
import { MalformedMessageError } from "./errors.js";
import * as pb from "./gen/raftkv/transport/v1/transport_pb.js";

const MAX_U53 = BigInt(Number.MAX_SAFE_INTEGER);

/** Indexed by message type: true for the types that may travel between nodes. */
const WIRE_TYPE: readonly boolean[] = (() => {
  const t: boolean[] = [];
  t[MessageType.Prop] = true;
  for (let k = MessageType.App; k <= MessageType.ReadIndexResp; k++) t[k] = true;
  return t;
})();

/** True when `type` may travel between nodes (Prop, and App through ReadIndexResp). */
export function isWireMessageType(type: number): boolean {
  return WIRE_TYPE[type] === true;
}

function isU53(n: number): boolean {
  return Number.isSafeInteger(n) && n >= 0;
}

function intReason(value: number | bigint): string {
  return `must be an integer in [0, 2^53 - 1], got ${value}`;
}

/** `path` and `field` are joined only on failure: no string is built per field on the hot path. */
function checkInt(n: number, path: string, field: string): void {
  if (!isU53(n)) throw new MalformedMessageError(intReason(n), `${path}.${field}`);
}

// ---------------------------------------------------------------- encode (raft → proto)

function encodeIds(ids: readonly NodeId[], path: string): bigint[] {
  const out = new Array<bigint>(ids.length);
  for (let i = 0; i < ids.length; i++) {
    const id = ids[i]!;
    if (!isU53(id) || id === 0)
      throw new MalformedMessageError(`node id ${intReason(id)} and not 0`, `${path}[${i}]`);
    out[i] = BigInt(id);
  }
  return out;
}

function encodeMetadata(meta: SnapshotMetadata, path: string): pb.SnapshotMetadata {
  if (!isU53(meta.index)) throw new MalformedMessageError(intReason(meta.index), `${path}.index`);
  if (!isU53(meta.term)) throw new MalformedMessageError(intReason(meta.term), `${path}.term`);
  const cs = meta.confState;
  return {
    $typeName: "raftkv.transport.v1.SnapshotMetadata",
    index: BigInt(meta.index),
    term: BigInt(meta.term),
    confState: {
      $typeName: "raftkv.transport.v1.ConfState",
      voters: encodeIds(cs.voters, `${path}.confState.voters`),
      learners: encodeIds(cs.learners, `${path}.confState.learners`),
      votersOutgoing: encodeIds(cs.votersOutgoing, `${path}.confState.votersOutgoing`),
      learnersNext: encodeIds(cs.learnersNext, `${path}.confState.learnersNext`),
      autoLeave: cs.autoLeave,
    },
  };
}

function entryEncodeError(e: Entry, path: string): MalformedMessageError {
  if (!isU53(e.term)) return new MalformedMessageError(intReason(e.term), `${path}.term`);
  if (!isU53(e.index)) return new MalformedMessageError(intReason(e.index), `${path}.index`);
  return new MalformedMessageError(`unknown entry type ${e.type}`, `${path}.type`);
}

/** A raft message in its protobuf form; throws {@link MalformedMessageError} if it may not go out. */
export function encodeMessage(m: Message, path = "message"): pb.RaftMessage {
  if (!isWireMessageType(m.type))
    throw new MalformedMessageError(
      `message type ${messageTypeName(m.type)} is local to a node and never sent`,
      `${path}.type`,
    );
  checkInt(m.to, path, "to");
  checkInt(m.from, path, "from");
  checkInt(m.term, path, "term");
  checkInt(m.logTerm, path, "logTerm");
  checkInt(m.index, path, "index");
  checkInt(m.commit, path, "commit");
  checkInt(m.rejectHint, path, "rejectHint");
  const src = m.entries;
  const entries = new Array<pb.Entry>(src.length);
  for (let i = 0; i < src.length; i++) {
    const e = src[i]!;
    if (!isU53(e.term) || !isU53(e.index) || (e.type !== 0 && e.type !== 1))
      throw entryEncodeError(e, `${path}.entries[${i}]`);
    entries[i] = {
      $typeName: "raftkv.transport.v1.Entry",
      term: BigInt(e.term),
      index: BigInt(e.index),
      type: e.type as number as pb.EntryType,
      data: e.data,
    };
  }
  const out: pb.RaftMessage = {
    $typeName: "raftkv.transport.v1.RaftMessage",
    type: m.type as number as pb.MessageType,
    to: BigInt(m.to),
    from: BigInt(m.from),
    term: BigInt(m.term),
    logTerm: BigInt(m.logTerm),
    index: BigInt(m.index),
    entries,
    commit: BigInt(m.commit),
    reject: m.reject,
    rejectHint: BigInt(m.rejectHint),
  };
  if (m.snapshot !== null)
    out.snapshot = {
      $typeName: "raftkv.transport.v1.Snapshot",
      metadata: encodeMetadata(m.snapshot.metadata, `${path}.snapshot.metadata`),
      data: m.snapshot.data,
    };
  if (m.context !== null) out.context = m.context;
  return out;
}

/** Who a batch is from and for; `seq` is the sender's, echoed in the ack. */
export interface BatchHeader {
  clusterId: string;
  from: NodeId;
  to: NodeId;
  seq: number;
}

/**
 * A batch in its protobuf form. Every message must be a wire message addressed to `header.to`, and
 * none may be a Snap (snapshots have their own call).
 */
export function encodeBatch(header: BatchHeader, batch: readonly Message[]): pb.MessageBatch {
  if (!isU53(header.from) || header.from === 0)
    throw new MalformedMessageError(`sender id ${intReason(header.from)} and not 0`, "from");
  if (!isU53(header.to) || header.to === 0)
    throw new MalformedMessageError(`receiver id ${intReason(header.to)} and not 0`, "to");
  if (!isU53(header.seq)) throw new MalformedMessageError(intReason(header.seq), "seq");
  const messages = new Array<pb.RaftMessage>(batch.length);
  for (let i = 0; i < batch.length; i++) {
    const m = batch[i]!;
    const path = `messages[${i}]`; // one short string per message, not per field
    checkBatchMember(m.type, m.to, header.to, path);
    messages[i] = encodeMessage(m, path);
  }
  return {
    $typeName: "raftkv.transport.v1.MessageBatch",
    clusterId: header.clusterId,
    from: BigInt(header.from),
    to: BigInt(header.to),
    seq: BigInt(header.seq),
    messages,
  };
}

function checkBatchMember(type: number, to: number, batchTo: number, path: string): void {
  if (type === MessageType.Snap)
    throw new MalformedMessageError(
      "a Snap goes through sendSnapshot, not in a message batch",
      `${path}.type`,
    );
  if (to !== batchTo)
    throw new MalformedMessageError(`addressed to node ${to} in a batch for node ${batchTo}`, `${path}.to`);
}

/** The batch's wire bytes (one copy of the payloads, into the encoding). */
export function encodeBatchBytes(header: BatchHeader, batch: readonly Message[]): Uint8Array {
  return toBinary(pb.MessageBatchSchema, encodeBatch(header, batch));
}

// ---------------------------------------------------------------- decode (proto → raft)

/** A received uint64 as a number; throws past 2^53 - 1 (`path` and `field` are joined only then). */
export function toNumber(v: bigint, path: string, field?: string): number {
  if (v > MAX_U53 || v < 0n)
    throw new MalformedMessageError(intReason(v), field === undefined ? path : `${path}.${field}`);
  return Number(v);
}

function decodeIds(ids: readonly bigint[], path: string): NodeId[] {
  const out = new Array<NodeId>(ids.length);
  for (let i = 0; i < ids.length; i++) {
    const id = ids[i]!;
    if (id === 0n) throw new MalformedMessageError("node id 0", `${path}[${i}]`);
    out[i] = toNumber(id, `${path}[${i}]`);
  }
  return out;
}

/** Snapshot metadata from its protobuf form (an absent ConfState is an empty one, as proto3 allows). */
export function decodeMetadata(p: pb.SnapshotMetadata | undefined, path: string): SnapshotMetadata {
  if (p === undefined) throw new MalformedMessageError("snapshot without metadata", path);
  const cs = p.confState;
  const confState: ConfState = {
    voters: decodeIds(cs?.voters ?? [], `${path}.confState.voters`),
    learners: decodeIds(cs?.learners ?? [], `${path}.confState.learners`),
    votersOutgoing: decodeIds(cs?.votersOutgoing ?? [], `${path}.confState.votersOutgoing`),
    learnersNext: decodeIds(cs?.learnersNext ?? [], `${path}.confState.learnersNext`),
    autoLeave: cs?.autoLeave ?? false,
  };
  return { index: toNumber(p.index, `${path}.index`), term: toNumber(p.term, `${path}.term`), confState };
}

function entryDecodeError(e: pb.Entry, path: string): MalformedMessageError {
  if (e.term > MAX_U53) return new MalformedMessageError(intReason(e.term), `${path}.term`);
  if (e.index > MAX_U53) return new MalformedMessageError(intReason(e.index), `${path}.index`);
  return new MalformedMessageError(`unknown entry type ${e.type}`, `${path}.type`);
}

/** A raft message from its protobuf form; throws {@link MalformedMessageError} on anything invalid. */
export function decodeMessage(p: pb.RaftMessage, path = "message"): Message {
  const type = p.type as number;
  if (!isWireMessageType(type))
    throw new MalformedMessageError(
      WIRE_TYPE.length > type && type >= 0
        ? `message type ${messageTypeName(type as MessageType)} is local to a node and never sent`
        : `unknown message type ${type}`,
      `${path}.type`,
    );
  const src = p.entries;
  const entries = new Array<Entry>(src.length);
  for (let i = 0; i < src.length; i++) {
    const e = src[i]!;
    if (e.term > MAX_U53 || e.index > MAX_U53 || (e.type !== 0 && e.type !== 1))
      throw entryDecodeError(e, `${path}.entries[${i}]`);
    entries[i] = {
      term: Number(e.term),
      index: Number(e.index),
      type: e.type as number as Entry["type"],
      data: e.data,
    };
  }
  return {
    type: type as MessageType,
    to: toNumber(p.to, path, "to"),
    from: toNumber(p.from, path, "from"),
    term: toNumber(p.term, path, "term"),
    logTerm: toNumber(p.logTerm, path, "logTerm"),
    index: toNumber(p.index, path, "index"),
    entries,
    commit: toNumber(p.commit, path, "commit"),
    reject: p.reject,
    rejectHint: toNumber(p.rejectHint, path, "rejectHint"),
    snapshot:
      p.snapshot === undefined
        ? null
        : {
            metadata: decodeMetadata(p.snapshot.metadata, `${path}.snapshot.metadata`),
            data: p.snapshot.data,
          },
    context: p.context ?? null,
  };
}

export interface DecodedBatch {
  clusterId: string;
  from: NodeId;
  to: NodeId;
  /** Echoed as it came. */
  seq: bigint;
  messages: Message[];
}

/**
 * A received batch, validated whole: sender and receiver ids, every message a wire message other than
 * Snap and addressed to `to`. The cluster id is returned, not checked (the transport knows its own).
 */
export function decodeBatch(p: pb.MessageBatch): DecodedBatch {
  const from = toNumber(p.from, "from");
  const to = toNumber(p.to, "to");
  if (from === 0) throw new MalformedMessageError("sender id 0", "from");
  if (to === 0) throw new MalformedMessageError("receiver id 0", "to");
  const messages = new Array<Message>(p.messages.length);
  for (let i = 0; i < p.messages.length; i++) {
    const path = `messages[${i}]`; // one short string per message, not per field
    const m = decodeMessage(p.messages[i]!, path);
    checkBatchMember(m.type, m.to, to, path);
    messages[i] = m;
  }
  return { clusterId: p.clusterId, from, to, seq: p.seq, messages };
}

/**
 * Parses protobuf bytes without trusting them: unknown fields are dropped rather than kept alive, and a
 * parse failure becomes a {@link MalformedMessageError}.
 */
export function parseProto<Desc extends DescMessage>(schema: Desc, bytes: Uint8Array): MessageShape<Desc> {
  try {
    return fromBinary(schema, bytes, { readUnknownFields: false });
  } catch (err) {
    throw new MalformedMessageError(`not a valid ${schema.typeName} encoding: ${String(err)}`, "");
  }
}

// ---------------------------------------------------------------- snapshot calls

export interface SnapshotStartHeader {
  clusterId: string;
  from: NodeId;
  to: NodeId;
}

/** The first piece of a Snapshot call: who, and the Snap message with its snapshot's data left out. */
export function encodeSnapshotStart(header: SnapshotStartHeader, m: Message): pb.SnapshotPiece {
  if (m.type !== MessageType.Snap || m.snapshot === null)
    throw new MalformedMessageError("sendSnapshot needs a Snap message carrying a snapshot", "message.type");
  if (m.to !== header.to)
    throw new MalformedMessageError(`addressed to node ${m.to}, sent to node ${header.to}`, "message.to");
  // The payload follows as the framed stream; the message carries only the metadata.
  const message = encodeMessage({ ...m, snapshot: { metadata: m.snapshot.metadata, data: EMPTY_BYTES } });
  return {
    $typeName: "raftkv.transport.v1.SnapshotPiece",
    piece: {
      case: "start",
      value: {
        $typeName: "raftkv.transport.v1.SnapshotStart",
        clusterId: header.clusterId,
        from: BigInt(header.from),
        to: BigInt(header.to),
        message,
      },
    },
  };
}

export interface DecodedSnapshotStart extends SnapshotStartHeader {
  message: Message;
  metadata: SnapshotMetadata;
}

/** The first piece of a received Snapshot call, validated. The cluster id is returned, not checked. */
export function decodeSnapshotStart(p: pb.SnapshotPiece): DecodedSnapshotStart {
  if (p.piece.case !== "start")
    throw new MalformedMessageError("the first piece of a snapshot call must be its start", "piece");
  const s = p.piece.value;
  const from = toNumber(s.from, "start.from");
  const to = toNumber(s.to, "start.to");
  if (from === 0) throw new MalformedMessageError("sender id 0", "start.from");
  if (to === 0) throw new MalformedMessageError("receiver id 0", "start.to");
  if (s.message === undefined) throw new MalformedMessageError("no Snap message", "start.message");
  const message = decodeMessage(s.message, "start.message");
  if (message.type !== MessageType.Snap || message.snapshot === null)
    throw new MalformedMessageError(
      `a snapshot call must carry a Snap message with a snapshot, not ${messageTypeName(message.type)}`,
      "start.message.type",
    );
  if (message.snapshot.data.length !== 0)
    throw new MalformedMessageError(
      "the Snap message must not carry the payload (it follows as the framed stream)",
      "start.message.snapshot.data",
    );
  if (message.to !== to)
    throw new MalformedMessageError(
      `addressed to node ${message.to} on a call for node ${to}`,
      "start.message.to",
    );
  return { clusterId: s.clusterId, from, to, message, metadata: message.snapshot.metadata };
}
