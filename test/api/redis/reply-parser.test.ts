import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { RespReplyFormatError } from "../../../src/api/redis/resp/errors.js";
import { type ReplyLimits, ReplyParser, type RespReply } from "../../../src/api/redis/resp/reply-parser.js";
import { ReplyWriter } from "../../../src/api/redis/resp/reply-writer.js";

const SEED = Number(process.env.RAFTKV_PROPERTY_SEED ?? 424242);

function write(w: ReplyWriter, r: RespReply): void {
  switch (r.type) {
    case "status":
      w.simple(r.text);
      break;
    case "error":
      w.error(r.text);
      break;
    case "integer":
      w.integer(r.value);
      break;
    case "bulk":
      w.bulkOrNull(r.value);
      break;
    case "array":
      if (r.items === null) w.nullArray();
      else {
        w.array(r.items.length);
        for (const item of r.items) write(w, item);
      }
  }
}

function encode(replies: readonly RespReply[]): Buffer {
  const w = new ReplyWriter();
  for (const r of replies) write(w, r);
  return Buffer.concat(w.take());
}

function parseInChunks(bytes: Buffer, cuts: readonly number[], limits: Partial<ReplyLimits> = {}) {
  const parser = new ReplyParser(limits);
  const out: RespReply[] = [];
  let from = 0;
  for (const cut of [...cuts].sort((a, b) => a - b)) {
    out.push(...parser.feed(bytes.subarray(from, cut)));
    from = cut;
  }
  out.push(...parser.feed(bytes.subarray(from)));
  return out;
}

const line = fc.string({ maxLength: 20 }).filter((s) => !/[\r\n]/.test(s));
const reply: fc.Arbitrary<RespReply> = fc.letrec<{ reply: RespReply }>((tie) => ({
  reply: fc.oneof(
    { depthSize: "small" },
    line.map((text) => ({ type: "status", text }) as const),
    line.map((text) => ({ type: "error", text: `ERR ${text}` }) as const),
    fc.bigInt(-(2n ** 63n), 2n ** 63n - 1n).map((value) => ({ type: "integer", value }) as const),
    fc
      .option(fc.uint8Array({ maxLength: 40 }))
      .map((v) => ({ type: "bulk", value: v === null ? null : Buffer.from(v) }) as const),
    fc.option(fc.array(tie("reply"), { maxLength: 4 })).map((items) => ({ type: "array", items }) as const),
  ),
})).reply;

describe("RESP2 reply parser", () => {
  it("gives back what the reply writer wrote, however the bytes are cut", () => {
    fc.assert(
      fc.property(fc.array(reply, { minLength: 1, maxLength: 6 }), fc.array(fc.nat()), (replies, cuts) => {
        const bytes = encode(replies);
        const parsed = parseInChunks(
          bytes,
          cuts.map((c) => c % (bytes.length + 1)),
        );
        assert.deepEqual(parsed, replies);
      }),
      { seed: SEED, numRuns: 300 },
    );
  });

  it("parses byte by byte, and holds back a reply until its last byte", () => {
    const bytes = Buffer.from("+OK\r\n*2\r\n$3\r\nabc\r\n:-7\r\n$-1\r\n*-1\r\n-ERR no\r\n");
    const parser = new ReplyParser();
    const seen: { at: number; reply: RespReply }[] = [];
    for (let i = 0; i < bytes.length; i++)
      for (const reply of parser.feed(bytes.subarray(i, i + 1))) seen.push({ at: i, reply });
    assert.deepEqual(
      seen.map((s) => s.at),
      [4, 22, 27, 32, 41],
    );
    assert.deepEqual(seen[1]!.reply, {
      type: "array",
      items: [
        { type: "bulk", value: Buffer.from("abc") },
        { type: "integer", value: -7n },
      ],
    });
  });

  it("refuses malformed replies and lengths over its limits", () => {
    const refuse = (text: string, limits: Partial<ReplyLimits> = {}) =>
      assert.throws(() => new ReplyParser(limits).feed(Buffer.from(text)), RespReplyFormatError, text);
    refuse("?what\r\n");
    refuse(":12a\r\n");
    refuse("$-2\r\n");
    refuse("$3\r\nabcd\r\n");
    refuse("$11\r\n", { maxBulkBytes: 10 });
    refuse("*3\r\n", { maxArrayItems: 2 });
    refuse("*1\r\n*1\r\n*1\r\n:1\r\n", { maxDepth: 2 });
    refuse(`+${"x".repeat(20)}`, { maxLineBytes: 10 });
    refuse(`+${"x".repeat(20)}\r\n`, { maxLineBytes: 10 });
  });
});
