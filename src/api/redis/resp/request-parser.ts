/**
 * Parses a client's request stream: RESP multibulk (`*<n>\r\n` then n × `$<len>\r\n<bytes>\r\n`), and
 * the inline form (`SET k v\r\n`, with Redis's quoting rules) that people type into telnet. Commands come
 * out as arrays of Buffers, as soon as each is complete, however the stream was cut into chunks.
 *
 * Arguments are views into the chunk they arrived in when they arrived whole (no copy); a large bulk
 * split over chunks is copied once into a buffer of its announced length. Every length is bounded
 * before anything is buffered for it.
 */
import { RespProtocolError } from "./errors.js";

export interface RequestLimits {
  /** The longest bulk string (one argument), in bytes. Redis's `proto-max-bulk-len`. */
  readonly maxBulkBytes: number;
  /** The most arguments in one command. */
  readonly maxArgs: number;
  /** The longest inline command line, in bytes (Redis: 64 KiB). */
  readonly maxInlineBytes: number;
  /** The most bytes of arguments in one command, all together. */
  readonly maxCommandBytes: number;
}

export const DEFAULT_REQUEST_LIMITS: RequestLimits = {
  maxBulkBytes: 64 * 1024 * 1024,
  maxArgs: 1024 * 1024,
  maxInlineBytes: 64 * 1024,
  maxCommandBytes: 128 * 1024 * 1024,
};

const CR = 0x0d;
const LF = 0x0a;
const STAR = 0x2a;
const DOLLAR = 0x24;
/** Longest `*<n>` or `$<len>` header line we accept (Redis: too big count string past this). */
const MAX_HEADER_LINE = 32;
/** A bulk at least this long that is not all here yet gets its own buffer, filled as chunks arrive. */
const DIRECT_FILL_BYTES = 16 * 1024;
const EMPTY = Buffer.alloc(0);

export type CommandSink = (args: Buffer[]) => void;

export class RequestParser {
  private readonly limits: RequestLimits;
  /** Unparsed bytes left over from earlier chunks (a partial line or a partial small bulk). */
  private rest: Buffer = EMPTY;
  /** Arguments still to come in the multibulk in progress (0: between commands). */
  private argsLeft = 0;
  private args: Buffer[] = [];
  private commandBytes = 0;
  /** Length of the bulk whose header was read and whose bytes are awaited (-1: none). */
  private bulkLen = -1;
  /** A large bulk being filled across chunks, and how much of it (with its CRLF) is here. */
  private fill: Buffer | null = null;
  private filled = 0;
  private failed: RespProtocolError | null = null;

  constructor(limits: Partial<RequestLimits> = {}) {
    this.limits = { ...DEFAULT_REQUEST_LIMITS, ...limits };
  }

  /** Bytes held for a command not yet complete (for the client's query-buffer accounting). */
  get bufferedBytes(): number {
    return this.rest.length + this.filled + this.commandBytes;
  }

  /**
   * Feeds a chunk; `sink` gets each command completed by it, in order. Throws RespProtocolError on bad
   * input (after handing `sink` the commands that came before it), and for ever after.
   */
  feed(chunk: Buffer, sink: CommandSink): void {
    if (this.failed) throw this.failed;
    try {
      this.parse(chunk, sink);
    } catch (err) {
      if (err instanceof RespProtocolError) {
        this.failed = err;
        // Nothing of a broken stream is kept.
        this.rest = EMPTY;
        this.args = [];
        this.argsLeft = 0;
        this.commandBytes = 0;
        this.bulkLen = -1;
        this.fill = null;
        this.filled = 0;
      }
      throw err;
    }
  }

  private parse(chunk: Buffer, sink: CommandSink): void {
    let data = chunk;
    let p = 0;
    if (this.fill !== null) {
      p = this.continueFill(chunk, sink);
      if (this.fill !== null) return;
    } else if (this.rest.length > 0) {
      data = Buffer.concat([this.rest, chunk]);
      this.rest = EMPTY;
    }
    const n = data.length;
    while (p < n) {
      if (this.argsLeft === 0) {
        if (data[p] === STAR) {
          const eol = data.indexOf(LF, p);
          if (eol < 0) {
            if (n - p > MAX_HEADER_LINE) throw new RespProtocolError("too big mbulk count string");
            break;
          }
          const count = parseCount(data, p + 1, eol, "invalid multibulk length");
          if (count > this.limits.maxArgs) throw new RespProtocolError("invalid multibulk length");
          p = eol + 1;
          // `*0` and `*-1` are empty requests: Redis skips them.
          if (count > 0) {
            this.argsLeft = count;
            this.args = [];
            this.commandBytes = 0;
          }
          continue;
        }
        const eol = data.indexOf(LF, p);
        if (eol < 0) {
          if (n - p > this.limits.maxInlineBytes) throw new RespProtocolError("too big inline request");
          break;
        }
        if (eol - p > this.limits.maxInlineBytes) throw new RespProtocolError("too big inline request");
        const args = splitInline(data, p, eol > p && data[eol - 1] === CR ? eol - 1 : eol);
        p = eol + 1;
        if (args.length > this.limits.maxArgs) throw new RespProtocolError("invalid multibulk length");
        if (args.length > 0) sink(args);
        continue;
      }
      if (this.bulkLen < 0) {
        if (data[p] !== DOLLAR) {
          throw new RespProtocolError(`expected '$', got '${String.fromCharCode(data[p]!)}'`);
        }
        const eol = data.indexOf(LF, p);
        if (eol < 0) {
          if (n - p > MAX_HEADER_LINE) throw new RespProtocolError("too big bulk count string");
          break;
        }
        const len = parseCount(data, p + 1, eol, "invalid bulk length");
        if (len < 0 || len > this.limits.maxBulkBytes) throw new RespProtocolError("invalid bulk length");
        if (this.commandBytes + len > this.limits.maxCommandBytes)
          throw new RespProtocolError("command too large");
        this.bulkLen = len;
        p = eol + 1;
      }
      const len = this.bulkLen;
      if (n - p >= len + 2) {
        if (data[p + len] !== CR || data[p + len + 1] !== LF)
          throw new RespProtocolError("bulk string not terminated by CRLF");
        this.pushArg(data.subarray(p, p + len), sink);
        p += len + 2;
        continue;
      }
      if (len >= DIRECT_FILL_BYTES) {
        this.fill = Buffer.allocUnsafe(len + 2);
        this.filled = 0;
        this.continueFill(data.subarray(p), sink);
        return;
      }
      break;
    }
    if (p < n) this.rest = data.subarray(p);
  }

  /** Copies what `chunk` holds of the large bulk being filled; returns where in `chunk` it ended. */
  private continueFill(chunk: Buffer, sink: CommandSink): number {
    const fill = this.fill!;
    const take = Math.min(fill.length - this.filled, chunk.length);
    chunk.copy(fill, this.filled, 0, take);
    this.filled += take;
    if (this.filled < fill.length) return take;
    const len = fill.length - 2;
    if (fill[len] !== CR || fill[len + 1] !== LF)
      throw new RespProtocolError("bulk string not terminated by CRLF");
    this.fill = null;
    this.filled = 0;
    this.pushArg(fill.subarray(0, len), sink);
    return take;
  }

  private pushArg(arg: Buffer, sink: CommandSink): void {
    this.bulkLen = -1;
    this.args.push(arg);
    this.commandBytes += arg.length;
    if (--this.argsLeft > 0) return;
    const args = this.args;
    this.args = [];
    this.commandBytes = 0;
    sink(args);
  }
}

/** A decimal count between `from` and the LF at `eol` (a CR before it required), as Redis reads it. */
function parseCount(data: Buffer, from: number, eol: number, what: string): number {
  const end = eol - 1;
  if (end < from || data[end] !== CR) throw new RespProtocolError(what);
  let i = from;
  let negative = false;
  if (data[i] === 0x2d) {
    negative = true;
    i++;
  }
  if (i === end || end - i > 18) throw new RespProtocolError(what);
  let v = 0;
  for (; i < end; i++) {
    const d = data[i]! - 0x30;
    if (d < 0 || d > 9) throw new RespProtocolError(what);
    v = v * 10 + d;
  }
  return negative ? -v : v;
}

const SPACE = (c: number) => c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d || c === 0x0b || c === 0x0c;

function hexValue(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c >= 0x61 && c <= 0x66) return c - 0x61 + 10;
  if (c >= 0x41 && c <= 0x46) return c - 0x41 + 10;
  return -1;
}

const ESCAPES: Record<number, number> = { 110: 0x0a, 114: 0x0d, 116: 0x09, 98: 0x08, 97: 0x07 };

/**
 * Splits an inline command line into arguments the way Redis does (sdssplitargs): blanks separate;
 * "double quotes" take \n \r \t \b \a \xHH and \<any> escapes; 'single quotes' take \'; a closing
 * quote must be followed by a blank or the end.
 */
export function splitInline(data: Buffer, from: number, to: number): Buffer[] {
  const out: Buffer[] = [];
  let p = from;
  for (;;) {
    while (p < to && SPACE(data[p]!)) p++;
    if (p >= to) return out;
    const bytes: number[] = [];
    let inDouble = false;
    let inSingle = false;
    let done = false;
    while (!done) {
      const c = p < to ? data[p]! : -1;
      if (inDouble) {
        if (c < 0) throw new RespProtocolError("unbalanced quotes in request");
        if (c === 0x5c && p + 3 < to && data[p + 1] === 0x78) {
          const hi = hexValue(data[p + 2]!);
          const lo = hexValue(data[p + 3]!);
          if (hi >= 0 && lo >= 0) {
            bytes.push(hi * 16 + lo);
            p += 4;
            continue;
          }
        }
        if (c === 0x5c && p + 1 < to) {
          const e = data[p + 1]!;
          bytes.push(ESCAPES[e] ?? e);
          p += 2;
          continue;
        }
        if (c === 0x22) {
          if (p + 1 < to && !SPACE(data[p + 1]!)) throw new RespProtocolError("unbalanced quotes in request");
          done = true;
        } else {
          bytes.push(c);
        }
      } else if (inSingle) {
        if (c < 0) throw new RespProtocolError("unbalanced quotes in request");
        if (c === 0x5c && p + 1 < to && data[p + 1] === 0x27) {
          bytes.push(0x27);
          p += 2;
          continue;
        }
        if (c === 0x27) {
          if (p + 1 < to && !SPACE(data[p + 1]!)) throw new RespProtocolError("unbalanced quotes in request");
          done = true;
        } else {
          bytes.push(c);
        }
      } else if (c < 0 || SPACE(c)) {
        done = true;
      } else if (c === 0x22) {
        inDouble = true;
      } else if (c === 0x27) {
        inSingle = true;
      } else {
        bytes.push(c);
      }
      if (p < to) p++;
    }
    out.push(Buffer.from(bytes));
  }
}
