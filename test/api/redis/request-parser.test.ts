import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { RespProtocolError } from "../../../src/api/redis/resp/errors.js";
import { type RequestLimits, RequestParser } from "../../../src/api/redis/resp/request-parser.js";

const SEED = Number(process.env.RAFTKV_PROPERTY_SEED ?? 424242);

/** Feeds `chunks` to a fresh parser; returns the commands (as latin1 strings) and the error, if any. */
function parseAll(chunks: readonly Buffer[], limits: Partial<RequestLimits> = {}) {
  const parser = new RequestParser(limits);
  const commands: Buffer[][] = [];
  let error: Error | null = null;
  for (const c of chunks) {
    try {
      parser.feed(c, (args) => commands.push(args));
    } catch (err) {
      error = err as Error;
      break;
    }
  }
  return { commands, error, parser };
}

const str = (cmds: Buffer[][]) => cmds.map((args) => args.map((a) => a.toString("latin1")));

function encode(args: readonly Buffer[]): Buffer {
  const parts: Buffer[] = [Buffer.from(`*${args.length}\r\n`)];
  for (const a of args) parts.push(Buffer.from(`$${a.length}\r\n`), a, Buffer.from("\r\n"));
  return Buffer.concat(parts);
}

/** Cuts `data` at the given fractions into chunks. */
function cut(data: Buffer, points: readonly number[]): Buffer[] {
  const at = [...new Set(points.map((f) => Math.floor(f * data.length)))].sort((a, b) => a - b);
  const out: Buffer[] = [];
  let prev = 0;
  for (const p of at) {
    if (p <= prev || p >= data.length) continue;
    out.push(data.subarray(prev, p));
    prev = p;
  }
  out.push(data.subarray(prev));
  return out;
}

describe("RESP request parser: well-formed requests", () => {
  it("a multibulk command comes out as its arguments, binary-safe", () => {
    const value = Buffer.from([0, 13, 10, 255, 36, 42]);
    const { commands, error } = parseAll([encode([Buffer.from("SET"), Buffer.from("k"), value])]);
    assert.equal(error, null);
    assert.equal(commands.length, 1);
    assert.deepEqual(commands[0]![2], value);
  });

  it("pipelined commands in one chunk come out in order", () => {
    const data = Buffer.concat([
      encode([Buffer.from("PING")]),
      encode([Buffer.from("GET"), Buffer.from("a")]),
    ]);
    assert.deepEqual(str(parseAll([data]).commands), [["PING"], ["GET", "a"]]);
  });

  it("a command split at every byte comes out once, when its last byte arrives", () => {
    const data = encode([Buffer.from("SET"), Buffer.from("key"), Buffer.from("value")]);
    const parser = new RequestParser();
    const seen: string[][] = [];
    for (let i = 0; i < data.length; i++) {
      parser.feed(data.subarray(i, i + 1), (args) => seen.push(args.map((a) => a.toString())));
      assert.equal(seen.length, i === data.length - 1 ? 1 : 0, `after byte ${i}`);
    }
    assert.deepEqual(seen, [["SET", "key", "value"]]);
  });

  it("a large bulk over many chunks is assembled exactly", () => {
    const big = Buffer.alloc(200_000);
    for (let i = 0; i < big.length; i++) big[i] = (i * 7) & 0xff;
    const data = encode([Buffer.from("SET"), Buffer.from("k"), big]);
    const chunks: Buffer[] = [];
    for (let i = 0; i < data.length; i += 1000) chunks.push(data.subarray(i, i + 1000));
    const { commands, error } = parseAll(chunks);
    assert.equal(error, null);
    assert.ok(commands[0]![2]!.equals(big));
  });

  it("empty multibulks (*0, *-1) and blank inline lines are skipped", () => {
    const data = Buffer.from("*0\r\n*-1\r\n\r\n   \r\nPING\r\n");
    assert.deepEqual(str(parseAll([data]).commands), [["PING"]]);
  });

  it("inline commands split on blanks and follow Redis's quoting rules", () => {
    const cases: Array<[string, string[]]> = [
      ["SET k v\r\n", ["SET", "k", "v"]],
      ["set  k\tv\n", ["set", "k", "v"]],
      ['SET k "a b"\r\n', ["SET", "k", "a b"]],
      ['SET k "a\\nb\\x41\\"c"\r\n', ["SET", "k", 'a\nbA"c']],
      ["SET k 'it\\'s'\r\n", ["SET", "k", "it's"]],
      ['SET k ""\r\n', ["SET", "k", ""]],
      ['ECHO "\\q"\r\n', ["ECHO", "q"]],
    ];
    for (const [line, expected] of cases) {
      const { commands, error } = parseAll([Buffer.from(line)]);
      assert.equal(error, null, line);
      assert.deepEqual(str(commands), [expected], line);
    }
  });
});

describe("RESP request parser: bad input gets Redis's protocol errors", () => {
  const cases: Array<[string, string]> = [
    ["*abc\r\n", "Protocol error: invalid multibulk length"],
    ["*1\r\n:5\r\n", "Protocol error: expected '$', got ':'"],
    ["*1\r\n$-5\r\n", "Protocol error: invalid bulk length"],
    ["*1\r\n$x\r\n", "Protocol error: invalid bulk length"],
    ["*1\r\n$3\r\nabcXY", "Protocol error: bulk string not terminated by CRLF"],
    ['SET k "unterminated\r\n', "Protocol error: unbalanced quotes in request"],
    ['SET k "a"b\r\n', "Protocol error: unbalanced quotes in request"],
    ["*1\n", "Protocol error: invalid multibulk length"],
    [`*${"9".repeat(40)}`, "Protocol error: too big mbulk count string"],
    [`*1\r\n$${"9".repeat(40)}`, "Protocol error: too big bulk count string"],
  ];
  for (const [input, message] of cases) {
    it(`${JSON.stringify(input)} → ${message}`, () => {
      const { error } = parseAll([Buffer.from(input)]);
      assert.ok(error instanceof RespProtocolError, `got ${String(error)}`);
      assert.equal(error.message, message);
    });
  }

  it("commands before the bad bytes come out; after an error the parser refuses everything", () => {
    const parser = new RequestParser();
    const seen: string[] = [];
    const sink = (args: Buffer[]) => seen.push(args[0]!.toString());
    assert.throws(() => parser.feed(Buffer.from("PING\r\n*1\r\n!"), sink), RespProtocolError);
    assert.deepEqual(seen, ["PING"]);
    assert.throws(() => parser.feed(Buffer.from("PING\r\n"), sink), RespProtocolError);
    assert.deepEqual(seen, ["PING"]);
  });
});

describe("RESP request parser: limits hold before anything is buffered", () => {
  it("a bulk over maxBulkBytes is refused at its header", () => {
    const { error, parser } = parseAll([Buffer.from("*2\r\n$3\r\nGET\r\n$1001\r\n")], { maxBulkBytes: 1000 });
    assert.equal(error?.message, "Protocol error: invalid bulk length");
    assert.equal(parser.bufferedBytes, 0);
  });

  it("more arguments than maxArgs is refused at the count", () => {
    const { error } = parseAll([Buffer.from("*11\r\n")], { maxArgs: 10 });
    assert.equal(error?.message, "Protocol error: invalid multibulk length");
  });

  it("an inline line longer than maxInlineBytes is refused, newline or not", () => {
    const long = `SET k ${"x".repeat(200)}`;
    assert.equal(
      parseAll([Buffer.from(long)], { maxInlineBytes: 100 }).error?.message,
      "Protocol error: too big inline request",
    );
    assert.equal(
      parseAll([Buffer.from(`${long}\r\n`)], { maxInlineBytes: 100 }).error?.message,
      "Protocol error: too big inline request",
    );
  });

  it("a command whose arguments add up past maxCommandBytes is refused", () => {
    const data = encode([Buffer.from("MSET"), Buffer.alloc(600), Buffer.alloc(600)]);
    assert.equal(
      parseAll([data], { maxCommandBytes: 1000 }).error?.message,
      "Protocol error: command too large",
    );
  });
});

describe("RESP request parser: properties", () => {
  const arg = fc.oneof(
    { weight: 8, arbitrary: fc.uint8Array({ maxLength: 40 }) },
    { weight: 1, arbitrary: fc.uint8Array({ minLength: 16_000, maxLength: 40_000 }) },
  );
  const command = fc.array(arg, { minLength: 1, maxLength: 6 }).map((as) => as.map((a) => Buffer.from(a)));
  const points = fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { maxLength: 12 });

  it("any commands, cut into any chunks, come out exactly, in order", () => {
    fc.assert(
      fc.property(fc.array(command, { minLength: 1, maxLength: 8 }), points, (cmds, at) => {
        const data = Buffer.concat(cmds.map(encode));
        const { commands, error } = parseAll(cut(data, at));
        assert.equal(error, null);
        assert.equal(commands.length, cmds.length);
        for (let i = 0; i < cmds.length; i++) {
          assert.equal(commands[i]!.length, cmds[i]!.length);
          for (let j = 0; j < cmds[i]!.length; j++) assert.ok(commands[i]![j]!.equals(cmds[i]![j]!));
        }
      }),
      { seed: SEED, numRuns: 300 },
    );
  });

  it("any bytes: commands or a RespProtocolError, never anything else, however the stream is cut", () => {
    // Valid commands with bytes flipped, cut, inserted or deleted; and plain noise.
    const mutated = fc
      .tuple(
        fc.array(command, { minLength: 1, maxLength: 4 }),
        fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 }), fc.integer({ min: 0, max: 2 })), {
          maxLength: 4,
        }),
      )
      .map(([cmds, edits]) => {
        const bytes = [...Buffer.concat(cmds.map(encode))];
        for (const [pos, value, kind] of edits) {
          const i = bytes.length === 0 ? 0 : pos % bytes.length;
          if (kind === 0) bytes[i] = value;
          else if (kind === 1) bytes.splice(i, 0, value);
          else bytes.splice(i, 1);
        }
        return Buffer.from(bytes);
      });
    const noise = fc.uint8Array({ maxLength: 300, size: "max" }).map((a) => Buffer.from(a));
    fc.assert(
      fc.property(fc.oneof(mutated, noise), points, (data, at) => {
        const whole = parseAll([data], { maxInlineBytes: 64, maxArgs: 100 });
        const chunked = parseAll(cut(data, at), { maxInlineBytes: 64, maxArgs: 100 });
        for (const r of [whole, chunked])
          if (r.error !== null) assert.ok(r.error instanceof RespProtocolError, String(r.error));
        assert.deepEqual(str(chunked.commands), str(whole.commands));
        assert.equal(chunked.error === null, whole.error === null);
      }),
      { seed: SEED, numRuns: 1000 },
    );
  });
});
