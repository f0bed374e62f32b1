/**
 * Parses a server's RESP2 reply stream, for a client: status, error, integer, bulk string (or nil) and
 * array (or nil), nested. Replies come out whole, in order, however the stream was cut into chunks.
 *
 * Every length is bounded before it is waited for. Bytes of an incomplete reply are kept, and parsing
 * resumes only when enough have arrived to possibly finish it (a large bulk is not rescanned for every
 * chunk).
 */
import { RespReplyFormatError } from "./errors.js";

export type RespReply =
  | { readonly type: "status"; readonly text: string }
  | { readonly type: "error"; readonly text: string }
  | { readonly type: "integer"; readonly value: bigint }
  /** `value` is null for a nil bulk (`$-1`). */
  | { readonly type: "bulk"; readonly value: Buffer | null }
  /** `items` is null for a nil array (`*-1`). */
  | { readonly type: "array"; readonly items: readonly RespReply[] | null };

export interface ReplyLimits {
  /** The longest bulk string, in bytes. */
  readonly maxBulkBytes: number;
  /** The most elements of one array. */
  readonly maxArrayItems: number;
  /** The longest status, error or header line, in bytes. */
  readonly maxLineBytes: number;
  /** How deeply arrays may nest. */
  readonly maxDepth: number;
}

export const DEFAULT_REPLY_LIMITS: ReplyLimits = {
  maxBulkBytes: 64 * 1024 * 1024,
  maxArrayItems: 1024 * 1024,
  maxLineBytes: 64 * 1024,
  maxDepth: 32,
};

const CRLF = Buffer.from("\r\n");
const EMPTY = Buffer.alloc(0);

/** The parse needs more bytes: at least `total` bytes from the start of the pending reply. */
class Incomplete {
  constructor(readonly total: number) {}
}

export class ReplyParser {
  private readonly limits: ReplyLimits;
  private pending: Buffer = EMPTY;
  /** Bytes `pending` must hold before another attempt can finish the reply it starts with. */
  private needed = 1;

  constructor(limits: Partial<ReplyLimits> = {}) {
    this.limits = { ...DEFAULT_REPLY_LIMITS, ...limits };
  }

  /** Takes a chunk of the stream; returns the replies it completed. Throws `RespReplyFormatError`. */
  feed(chunk: Buffer): RespReply[] {
    this.pending = this.pending.length === 0 ? chunk : Buffer.concat([this.pending, chunk]);
    const replies: RespReply[] = [];
    if (this.pending.length < this.needed) return replies;
    let offset = 0;
    for (;;) {
      if (offset === this.pending.length) {
        this.pending = EMPTY;
        this.needed = 1;
        return replies;
      }
      const result = this.parse(this.pending, offset, 0);
      if (result instanceof Incomplete) {
        // Copied: a view would pin the whole chunk it came from.
        this.pending = Buffer.from(this.pending.subarray(offset));
        this.needed = result.total - offset;
        return replies;
      }
      replies.push(result.reply);
      offset = result.end;
    }
  }

  private parse(buf: Buffer, start: number, depth: number): { reply: RespReply; end: number } | Incomplete {
    const lineEnd = buf.indexOf(CRLF, start);
    if (lineEnd < 0) {
      if (buf.length - start > this.limits.maxLineBytes + 1)
        throw new RespReplyFormatError(`a reply line is longer than ${this.limits.maxLineBytes} bytes`);
      return new Incomplete(buf.length + 1);
    }
    if (lineEnd - start - 1 > this.limits.maxLineBytes)
      throw new RespReplyFormatError(`a reply line is longer than ${this.limits.maxLineBytes} bytes`);
    const kind = buf[start];
    const line = buf.toString("utf8", start + 1, lineEnd);
    const next = lineEnd + 2;
    switch (kind) {
      case 0x2b: // +
        return { reply: { type: "status", text: line }, end: next };
      case 0x2d: // -
        return { reply: { type: "error", text: line }, end: next };
      case 0x3a: // :
        return { reply: { type: "integer", value: parseInteger(line, "integer") }, end: next };
      case 0x24: {
        // $
        const len = parseLength(line, "bulk length", this.limits.maxBulkBytes);
        if (len < 0) return { reply: { type: "bulk", value: null }, end: next };
        const end = next + len + 2;
        if (buf.length < end) return new Incomplete(end);
        if (buf[end - 2] !== 0x0d || buf[end - 1] !== 0x0a)
          throw new RespReplyFormatError("a bulk string does not end with CRLF");
        return { reply: { type: "bulk", value: Buffer.from(buf.subarray(next, end - 2)) }, end };
      }
      case 0x2a: {
        // *
        const count = parseLength(line, "array length", this.limits.maxArrayItems);
        if (count < 0) return { reply: { type: "array", items: null }, end: next };
        if (depth >= this.limits.maxDepth)
          throw new RespReplyFormatError(`arrays nest deeper than ${this.limits.maxDepth}`);
        const items: RespReply[] = [];
        let at = next;
        for (let i = 0; i < count; i++) {
          const item = this.parse(buf, at, depth + 1);
          if (item instanceof Incomplete) return item;
          items.push(item.reply);
          at = item.end;
        }
        return { reply: { type: "array", items }, end: at };
      }
      default:
        throw new RespReplyFormatError(
          `unknown reply type byte 0x${(kind ?? 0).toString(16).padStart(2, "0")}`,
        );
    }
  }
}

function parseInteger(text: string, what: string): bigint {
  if (!/^-?\d{1,20}$/.test(text)) throw new RespReplyFormatError(`invalid ${what} ${JSON.stringify(text)}`);
  return BigInt(text);
}

/** A bulk or array length: -1 (nil) or 0..max. */
function parseLength(text: string, what: string, max: number): number {
  const n = parseInteger(text, what);
  if (n < -1n || n > BigInt(max)) throw new RespReplyFormatError(`${what} ${n} is outside -1..${max}`);
  return Number(n);
}
