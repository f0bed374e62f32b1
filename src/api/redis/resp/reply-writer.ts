/**
 * Encodes replies for one connection, in RESP2 or RESP3 (chosen by HELLO), into a few large buffers:
 * every reply of a pipeline goes out in one socket write. Types RESP2 lacks are written the way Redis
 * writes them to a RESP2 client (a map as a flat array, a double as a bulk string, a boolean as 0 or 1,
 * null as a null bulk or null array).
 */

const CRLF = "\r\n";
const BLOCK_BYTES = 16 * 1024;
const BEYOND_LATIN1 = /[\u0100-\uffff]/;

export type Protocol = 2 | 3;

export class ReplyWriter {
  protocol: Protocol = 2;
  private blocks: Buffer[] = [];
  private block: Buffer = Buffer.allocUnsafe(BLOCK_BYTES);
  private offset = 0;
  private flushedBytes = 0;

  /** Bytes written and not yet taken (for the client's output-buffer limit). */
  get pendingBytes(): number {
    return this.flushedBytes + this.offset;
  }

  /** Takes everything written so far, to hand to the socket in one write. */
  take(): Buffer[] {
    if (this.offset > 0) {
      this.blocks.push(this.block.subarray(0, this.offset));
      // The taken view keeps this block's bytes: the next reply starts a new one.
      this.block = Buffer.allocUnsafe(BLOCK_BYTES);
      this.offset = 0;
    }
    const out = this.blocks;
    this.blocks = [];
    this.flushedBytes = 0;
    return out;
  }

  /** `+OK`-style status line (a CR or LF in it becomes a space: it would end the line). */
  simple(s: string): void {
    this.line("+", s);
  }

  /** An error reply; `message` starts with its code (`ERR …`, `WRONGTYPE …`). */
  error(message: string): void {
    this.line("-", message);
  }

  integer(n: number | bigint): void {
    this.ascii(`:${n}${CRLF}`);
  }

  bulk(value: Buffer | string): void {
    if (typeof value === "string") {
      const len = Buffer.byteLength(value);
      this.ascii(`$${len}${CRLF}`);
      this.reserve(len + 2);
      this.offset += this.block.write(value, this.offset, "utf8");
      this.ascii(CRLF);
      return;
    }
    this.ascii(`$${value.length}${CRLF}`);
    this.raw(value);
    this.ascii(CRLF);
  }

  /** A nil reply where a bulk string was expected (RESP2 `$-1`, RESP3 `_`). */
  nullBulk(): void {
    this.ascii(this.protocol === 3 ? `_${CRLF}` : `$-1${CRLF}`);
  }

  /** A nil reply where an array was expected (RESP2 `*-1`, RESP3 `_`). */
  nullArray(): void {
    this.ascii(this.protocol === 3 ? `_${CRLF}` : `*-1${CRLF}`);
  }

  bulkOrNull(value: Buffer | string | null | undefined): void {
    if (value === null || value === undefined) this.nullBulk();
    else this.bulk(value);
  }

  /** Starts an array of `n` replies; the caller writes them next. */
  array(n: number): void {
    this.ascii(`*${n}${CRLF}`);
  }

  /** Starts a map of `n` pairs (RESP2: an array of 2n); the caller writes key, value, key, value … */
  map(n: number): void {
    this.ascii(this.protocol === 3 ? `%${n}${CRLF}` : `*${2 * n}${CRLF}`);
  }

  /** Starts a set of `n` replies (RESP2: an array). */
  set(n: number): void {
    this.ascii(this.protocol === 3 ? `~${n}${CRLF}` : `*${n}${CRLF}`);
  }

  /** Starts an out-of-band push of `n` replies (RESP3 only; RESP2 has no pushes: an array). */
  push(n: number): void {
    this.ascii(this.protocol === 3 ? `>${n}${CRLF}` : `*${n}${CRLF}`);
  }

  /** A double already formatted the way Redis prints it (RESP2: a bulk string). */
  double(formatted: string): void {
    if (this.protocol === 3) this.ascii(`,${formatted}${CRLF}`);
    else this.bulk(formatted);
  }

  boolean(b: boolean): void {
    if (this.protocol === 3) this.ascii(b ? `#t${CRLF}` : `#f${CRLF}`);
    else this.ascii(b ? `:1${CRLF}` : `:0${CRLF}`);
  }

  /** Text meant for people (RESP3 verbatim `txt`; RESP2: a bulk string). */
  verbatim(text: string): void {
    if (this.protocol !== 3) {
      this.bulk(text);
      return;
    }
    const len = Buffer.byteLength(text) + 4;
    this.ascii(`=${len}${CRLF}txt:`);
    this.reserve(len + 2);
    this.offset += this.block.write(text, this.offset, "utf8");
    this.ascii(CRLF);
  }

  /** Bytes already encoded as RESP (a reply relayed from another node). */
  encoded(bytes: Buffer): void {
    this.raw(bytes);
  }

  private line(prefix: string, text: string): void {
    const s = `${prefix}${text.replace(/[\r\n]/g, " ")}${CRLF}`;
    // Text quoted from a client's request (an unknown command's name, a bad option) is held one char
    // per byte (latin1) and must go back as those very bytes, as Redis echoes them: encoded as UTF-8 a
    // client's 'é' would come back as four bytes. Only text of our own past U+00FF needs UTF-8.
    const encoding = BEYOND_LATIN1.test(s) ? "utf8" : "latin1";
    const len = Buffer.byteLength(s, encoding);
    this.reserve(len);
    this.offset += this.block.write(s, this.offset, encoding);
  }

  /** `s` is ASCII (protocol punctuation and numbers). */
  private ascii(s: string): void {
    this.reserve(s.length);
    this.offset += this.block.write(s, this.offset, "latin1");
  }

  private raw(b: Buffer): void {
    if (b.length >= BLOCK_BYTES) {
      // Large values go out as they are, without a copy.
      this.seal();
      this.blocks.push(b);
      this.flushedBytes += b.length;
      return;
    }
    this.reserve(b.length);
    b.copy(this.block, this.offset);
    this.offset += b.length;
  }

  /** Makes room for `bytes` contiguous bytes in the current block. */
  private reserve(bytes: number): void {
    if (this.offset + bytes <= this.block.length) return;
    this.seal();
    if (bytes > BLOCK_BYTES) this.block = Buffer.allocUnsafe(bytes);
  }

  private seal(): void {
    if (this.offset === 0) return;
    this.blocks.push(this.block.subarray(0, this.offset));
    this.flushedBytes += this.offset;
    this.block = Buffer.allocUnsafe(BLOCK_BYTES);
    this.offset = 0;
  }
}
