/**
 * Request frames for fuzzing a live server: well-formed commands (read-only, on keys of their own),
 * those commands mutated or cut short, random bytes, and frames at and just past each limit of the front
 * door; and what a correct server does with a byte stream of them (how many commands it answers, and
 * whether it ends with a protocol error).
 */
import fc from "fast-check";
import { RespProtocolError } from "../../src/api/redis/resp/errors.js";
import { type RequestLimits, RequestParser } from "../../src/api/redis/resp/request-parser.js";
import { lookupCommand, MAX_KEY_BYTES } from "../../src/kv/exec/table.js";

/** The limits the fuzzed cluster runs with: small, so that frames just past them are cheap. */
export const LIMITS = {
  maxBulkBytes: 4096,
  maxArgs: 32,
  maxInlineBytes: 512,
  maxCommandBytes: 8192,
  maxPipelinedCommands: 16,
  maxOutputBytes: 64 * 1024,
  maxClients: 64,
} as const;

export const REQUEST_LIMITS: RequestLimits = LIMITS;

/** `raftkv serve` flags for LIMITS. */
export const LIMIT_FLAGS: readonly string[] = [
  ["--max-bulk-bytes", LIMITS.maxBulkBytes],
  ["--max-args", LIMITS.maxArgs],
  ["--max-inline-bytes", LIMITS.maxInlineBytes],
  ["--max-command-bytes", LIMITS.maxCommandBytes],
  ["--max-pipelined-commands", LIMITS.maxPipelinedCommands],
  ["--max-output-bytes", LIMITS.maxOutputBytes],
  ["--max-clients", LIMITS.maxClients],
].flatMap(([flag, value]) => [String(flag), String(value)]);

/** The longest `*<n>` / `$<len>` line the parser waits for (request-parser.ts: MAX_HEADER_LINE). */
const MAX_HEADER_LINE = 32;

export function multibulk(args: readonly (string | Buffer)[]): Buffer {
  const parts: Buffer[] = [Buffer.from(`*${args.length}\r\n`)];
  for (const a of args) {
    const b = typeof a === "string" ? Buffer.from(a, "latin1") : a;
    parts.push(Buffer.from(`$${b.length}\r\n`), b, Buffer.from("\r\n"));
  }
  return Buffer.concat(parts);
}

export function inline(args: readonly string[]): Buffer {
  return Buffer.from(`${args.join(" ")}\r\n`, "latin1");
}

/** The ways a frame can sit on a limit (`over` bytes or items past it; 0 is exactly at it). */
export type LimitKind =
  | "bulk"
  | "args"
  | "inline"
  | "inline-unterminated"
  | "command-bytes"
  | "mbulk-header"
  | "bulk-header"
  | "key"
  | "pipeline";

export const LIMIT_KINDS: readonly LimitKind[] = [
  "bulk",
  "args",
  "inline",
  "inline-unterminated",
  "command-bytes",
  "mbulk-header",
  "bulk-header",
  "key",
  "pipeline",
];

/** A frame `over` past one limit (negative: under it, 0: exactly at it). */
export function limitFrame(kind: LimitKind, over: number): Buffer {
  switch (kind) {
    case "bulk": {
      const n = LIMITS.maxBulkBytes + over;
      return multibulk(["ECHO", "b".repeat(n)]);
    }
    case "args":
      return multibulk(["EXISTS", ...Array.from({ length: LIMITS.maxArgs + over - 1 }, () => "fuzz:a")]);
    case "inline":
      // The line's bytes before its LF (its CR included) are what the limit counts.
      return inline(["ECHO", "i".repeat(LIMITS.maxInlineBytes - "ECHO \r".length + over)]);
    case "inline-unterminated":
      return Buffer.from("i".repeat(LIMITS.maxInlineBytes + over));
    case "command-bytes": {
      const first = LIMITS.maxBulkBytes;
      const second = LIMITS.maxCommandBytes - "NOPE".length - first + over;
      return multibulk(["NOPE", "c".repeat(first), "c".repeat(second)]);
    }
    case "mbulk-header":
      return Buffer.from(`*${"1".repeat(MAX_HEADER_LINE - 1 + over)}`);
    case "bulk-header":
      return Buffer.from(`*1\r\n$${"1".repeat(MAX_HEADER_LINE - 1 + over)}`);
    case "key":
      return multibulk(["GET", "k".repeat(MAX_KEY_BYTES + over)]);
    case "pipeline":
      return Buffer.concat(
        Array.from({ length: LIMITS.maxPipelinedCommands + over }, (_, i) =>
          multibulk(["GET", `fuzz:p${i}`]),
        ),
      );
  }
}

const latin1 = (bytes: Uint8Array) => Buffer.from(bytes).toString("latin1");
const arg = fc.uint8Array({ maxLength: 24 }).map(latin1);
const fuzzKey = fc.uint8Array({ maxLength: 12 }).map((b) => `fuzz:${latin1(b)}`);

/** Read-only commands (and refused ones) on keys no other client uses. */
const command: fc.Arbitrary<readonly string[]> = fc.oneof(
  fc.constant(["PING"]),
  arg.map((a) => ["PING", a]),
  arg.map((a) => ["ECHO", a]),
  fuzzKey.map((k) => ["GET", k]),
  fc.tuple(fuzzKey, fuzzKey).map(([a, b]) => ["MGET", a, b]),
  fuzzKey.map((k) => ["EXISTS", k]),
  fuzzKey.map((k) => ["STRLEN", k]),
  fuzzKey.map((k) => ["PTTL", k]),
  fuzzKey.map((k) => ["TYPE", k]),
  fuzzKey.map((k) => ["GETRANGE", k, "0", "-1"]),
  fc.constant(["DBSIZE"]),
  fc.constantFrom(["HELLO", "2"], ["HELLO", "3"]),
  fc.constant(["CLIENT", "ID"]),
  fc.constant(["NOPE"]),
  fuzzKey.map((k) => ["GET", k, "extra"]),
);

const wellFormed = fc.oneof(command.map(multibulk), command.map(inline));

type Mutation = readonly [position: number, byte: number, how: "flip" | "insert" | "delete"];

function mutate(frame: Buffer, mutations: readonly Mutation[]): Buffer {
  let out = frame;
  for (const [position, byte, how] of mutations) {
    const at = position % (out.length + 1);
    if (how === "insert") out = Buffer.concat([out.subarray(0, at), Buffer.of(byte), out.subarray(at)]);
    else if (at < out.length && how === "delete")
      out = Buffer.concat([out.subarray(0, at), out.subarray(at + 1)]);
    else if (at < out.length) {
      out = Buffer.from(out);
      out[at] = byte;
    }
  }
  return out;
}

const mutation: fc.Arbitrary<Mutation> = fc.tuple(
  fc.nat(),
  fc.integer({ min: 0, max: 255 }),
  fc.constantFrom("flip" as const, "insert" as const, "delete" as const),
);

/** One piece of a stream: a command, a broken command, noise, or a frame on a limit. */
export const piece: fc.Arbitrary<Buffer> = fc.oneof(
  { weight: 2, arbitrary: wellFormed },
  {
    weight: 3,
    arbitrary: fc
      .tuple(wellFormed, fc.array(mutation, { minLength: 1, maxLength: 3 }))
      .map(([f, m]) => mutate(f, m)),
  },
  { weight: 2, arbitrary: fc.tuple(wellFormed, fc.nat()).map(([f, n]) => f.subarray(0, n % f.length)) },
  {
    weight: 2,
    arbitrary: fc.uint8Array({ minLength: 1, maxLength: 200, size: "max" }).map((b) => Buffer.from(b)),
  },
  {
    weight: 3,
    arbitrary: fc
      .tuple(fc.constantFrom(...LIMIT_KINDS), fc.integer({ min: -1, max: 2 }))
      .map(([kind, over]) => limitFrame(kind, over)),
  },
  { weight: 1, arbitrary: fc.constantFrom(inline(["QUIT"]), multibulk(["QUIT"])) },
);

/** What a correct server does with a stream (sent whole or in any chunks). */
export interface Prediction {
  /** Commands it runs and answers, one reply each (up to and including a QUIT). */
  readonly commands: number;
  /** The protocol error it answers last, then closes (null: none). */
  readonly error: string | null;
  /** A QUIT ends the stream: the server closes after answering it. */
  readonly quit: boolean;
  /** A command that could change stored data or the server's settings runs. */
  readonly changesState: boolean;
}

export function predict(stream: Buffer): Prediction {
  const parser = new RequestParser(REQUEST_LIMITS);
  let commands = 0;
  let quit = false;
  let changesState = false;
  let error: string | null = null;
  try {
    parser.feed(stream, (args) => {
      if (quit) return;
      commands++;
      const name = args[0]!.toString("latin1").toLowerCase();
      if (name === "quit") quit = true;
      if (lookupCommand(args[0]!)?.kind === "write" || name === "config") changesState = true;
    });
  } catch (err) {
    if (!(err instanceof RespProtocolError)) throw err;
    if (!quit) error = err.message;
  }
  return { commands, error, quit, changesState };
}

/**
 * The protocol errors a server may answer for a stream whose whole-stream error is `message`: an
 * over-long `*`/`$` line is refused as soon as it is too long when it arrives in pieces, before its end
 * (and its count) is seen.
 */
export function acceptableErrors(message: string): readonly string[] {
  const twins: Record<string, string> = {
    "Protocol error: invalid multibulk length": "Protocol error: too big mbulk count string",
    "Protocol error: invalid bulk length": "Protocol error: too big bulk count string",
  };
  const twin = twins[message];
  return twin === undefined ? [message] : [message, twin];
}
