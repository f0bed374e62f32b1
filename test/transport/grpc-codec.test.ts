import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { toBinary } from "@bufbuild/protobuf";
import fc from "fast-check";
import { type Entry, EntryType, type Message, MessageType, message } from "../../src/raft/types.js";
import { MalformedMessageError } from "../../src/transport/errors.js";
import * as pb from "../../src/transport/gen/raftkv/transport/v1/transport_pb.js";
import {
  decodeBatch,
  decodeMessage,
  decodeSnapshotStart,
  encodeBatchBytes,
  encodeMessage,
  encodeSnapshotStart,
  parseProto,
} from "../../src/transport/grpc-codec.js";

const u53 = fc.maxSafeNat();
/** Plain objects, as raft builds them (fast-check may otherwise make null-prototype ones). */
const plain = { noNullPrototype: true } as const;
const nodeId = fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER });
const bytes = (maxLength: number) => fc.uint8Array({ maxLength });

const WIRE_TYPES = [
  MessageType.Prop,
  MessageType.App,
  MessageType.AppResp,
  MessageType.Vote,
  MessageType.VoteResp,
  MessageType.PreVote,
  MessageType.PreVoteResp,
  MessageType.Snap,
  MessageType.Heartbeat,
  MessageType.HeartbeatResp,
  MessageType.TransferLeader,
  MessageType.TimeoutNow,
  MessageType.ReadIndex,
  MessageType.ReadIndexResp,
];

const entryArb: fc.Arbitrary<Entry> = fc.record(
  {
    term: u53,
    index: u53,
    type: fc.constantFrom(EntryType.Normal, EntryType.ConfChange),
    data: bytes(64),
  },
  plain,
);

const confStateArb = fc.record(
  {
    voters: fc.array(nodeId, { maxLength: 5 }),
    learners: fc.array(nodeId, { maxLength: 3 }),
    votersOutgoing: fc.array(nodeId, { maxLength: 3 }),
    learnersNext: fc.array(nodeId, { maxLength: 3 }),
    autoLeave: fc.boolean(),
  },
  plain,
);

function messageArb(types: readonly MessageType[], to: fc.Arbitrary<number> = nodeId): fc.Arbitrary<Message> {
  return fc.record(
    {
      type: fc.constantFrom(...types),
      to,
      from: u53,
      term: u53,
      logTerm: u53,
      index: u53,
      entries: fc.array(entryArb, { maxLength: 5 }),
      commit: u53,
      reject: fc.boolean(),
      rejectHint: u53,
      snapshot: fc.option(
        fc.record(
          { metadata: fc.record({ index: u53, term: u53, confState: confStateArb }, plain), data: bytes(32) },
          plain,
        ),
        { nil: null },
      ),
      // null and an empty context are different things to raft: both must survive.
      context: fc.option(bytes(16), { nil: null }),
    },
    plain,
  );
}

describe("gRPC codec", () => {
  it("round-trips any wire message through protobuf bytes unchanged", () => {
    fc.assert(
      fc.property(messageArb(WIRE_TYPES), (m) => {
        const wire = toBinary(pb.RaftMessageSchema, encodeMessage(m));
        assert.deepStrictEqual(decodeMessage(parseProto(pb.RaftMessageSchema, wire)), m);
      }),
      { numRuns: 300 },
    );
  });

  it("round-trips any batch, in order, with its header", () => {
    const batchTypes = WIRE_TYPES.filter((t) => t !== MessageType.Snap);
    fc.assert(
      fc.property(
        nodeId,
        nodeId,
        u53,
        fc.string({ maxLength: 20 }),
        fc.array(messageArb(batchTypes, fc.constant(0)), { maxLength: 6 }),
        (from, to, seq, clusterId, msgs) => {
          const batch = msgs.map((m) => ({ ...m, to }));
          const wire = encodeBatchBytes({ clusterId, from, to, seq }, batch);
          const got = decodeBatch(parseProto(pb.MessageBatchSchema, wire));
          assert.deepStrictEqual(got, { clusterId, from, to, seq: BigInt(seq), messages: batch });
        },
      ),
      { numRuns: 200 },
    );
  });

  it("decodes arbitrary or damaged bytes into a valid batch or a MalformedMessageError, nothing else", () => {
    const valid = encodeBatchBytes({ clusterId: "c", from: 1, to: 2, seq: 9 }, [
      message({
        type: MessageType.App,
        from: 1,
        to: 2,
        term: 4,
        index: 7,
        entries: [{ term: 4, index: 8, type: EntryType.Normal, data: new Uint8Array([1, 2, 3]) }],
      }),
      message({ type: MessageType.Heartbeat, from: 1, to: 2, term: 4, context: new Uint8Array([5]) }),
    ]);
    const damaged = fc.oneof(
      bytes(200),
      fc
        .array(fc.tuple(fc.nat(valid.length - 1), fc.integer({ min: 1, max: 255 })), {
          minLength: 1,
          maxLength: 4,
        })
        .map((flips) => {
          const b = valid.slice();
          for (const [at, x] of flips) b[at]! ^= x;
          return b;
        }),
      fc.nat(valid.length - 1).map((n) => valid.slice(0, n)),
    );
    fc.assert(
      fc.property(damaged, (b) => {
        try {
          const batch = decodeBatch(parseProto(pb.MessageBatchSchema, b));
          for (const m of batch.messages) assert.equal(m.to, batch.to);
        } catch (err) {
          assert.ok(err instanceof MalformedMessageError, `unexpected ${String(err)}`);
        }
      }),
      { numRuns: 500 },
    );
  });

  it("refuses what may not go out, naming the field", () => {
    const hb = message({ type: MessageType.Heartbeat, from: 1, to: 2, term: 1 });
    const cases: [Message, string][] = [
      [{ ...hb, term: -1 }, "message.term"],
      [{ ...hb, commit: 2 ** 53 }, "message.commit"],
      [{ ...hb, index: 1.5 }, "message.index"],
      [{ ...hb, type: MessageType.Hup }, "message.type"],
      [{ ...hb, type: 77 as MessageType }, "message.type"],
      [
        { ...hb, entries: [{ term: 1, index: -3, type: EntryType.Normal, data: new Uint8Array(0) }] },
        "message.entries[0].index",
      ],
      [
        { ...hb, entries: [{ term: 1, index: 3, type: 5 as EntryType, data: new Uint8Array(0) }] },
        "message.entries[0].type",
      ],
    ];
    for (const [m, where] of cases)
      assert.throws(
        () => encodeMessage(m),
        (err: unknown) => err instanceof MalformedMessageError && err.path === where,
        where,
      );
  });

  it("neither copies entry payloads into the proto form nor out of the received bytes", () => {
    const data = new Uint8Array([9, 8, 7, 6]);
    const m = message({
      type: MessageType.App,
      from: 1,
      to: 2,
      entries: [{ term: 1, index: 1, type: EntryType.Normal, data }],
    });
    assert.equal(encodeMessage(m).entries[0]!.data, data);
    const wire = encodeBatchBytes({ clusterId: "c", from: 1, to: 2, seq: 1 }, [m]);
    const got = decodeBatch(parseProto(pb.MessageBatchSchema, wire)).messages[0]!.entries[0]!.data;
    assert.equal(got.buffer, wire.buffer, "a view into the received bytes");
    assert.deepEqual(Array.from(got), [9, 8, 7, 6]);
  });

  it("carries a Snap's metadata on the snapshot call and refuses a start that carries its payload", () => {
    const meta = {
      index: 40,
      term: 3,
      confState: { voters: [1, 2], learners: [3], votersOutgoing: [], learnersNext: [], autoLeave: false },
    };
    const snap = message({
      type: MessageType.Snap,
      from: 1,
      to: 2,
      term: 3,
      snapshot: { metadata: meta, data: new Uint8Array([1]) },
    });
    const start = decodeSnapshotStart(
      parseProto(
        pb.SnapshotPieceSchema,
        toBinary(pb.SnapshotPieceSchema, encodeSnapshotStart({ clusterId: "c", from: 1, to: 2 }, snap)),
      ),
    );
    assert.deepEqual(start.metadata, meta);
    assert.equal(start.message.snapshot?.data.length, 0, "the payload is not in the message");
    const withPayload = encodeSnapshotStart({ clusterId: "c", from: 1, to: 2 }, snap);
    if (withPayload.piece.case === "start")
      withPayload.piece.value.message!.snapshot!.data = new Uint8Array([1]);
    assert.throws(() => decodeSnapshotStart(withPayload), MalformedMessageError);
    assert.throws(
      () =>
        encodeSnapshotStart(
          { clusterId: "c", from: 1, to: 2 },
          message({ type: MessageType.App, from: 1, to: 2 }),
        ),
      MalformedMessageError,
    );
  });
});
