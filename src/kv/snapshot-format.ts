/**
 * The key-value store's snapshot payload (what the transport frames and checksums):
 *
 *   "RKVS"  u16 version = 2  u64 applied index
 *   0x02 u64 node id  u16 address length  address            one per member of the address book,
 *                                                            before any key (version 2 only)
 *   0x01 u32 key length  u32 record length  key  record      one per key, in key order
 *   0xFF u64 number of keys                                  the end; nothing may follow
 *
 * The expiry index is not carried: a restore rebuilds it from the records. Version 1 (no address book)
 * is still read.
 */
import { MAX_ADDRESS_BOOK_MEMBERS, MAX_ADDRESS_BYTES } from "./address-book.js";
import { KvSnapshotFormatError } from "./errors.js";

const MAGIC = Buffer.from("RKVS", "latin1");
const VERSION = 2;
const HEADER_BYTES = 4 + 2 + 8;
const TAG_KEY = 0x01;
const TAG_MEMBER = 0x02;
const TAG_END = 0xff;
const KEY_PREFIX_BYTES = 1 + 4 + 4;
const MEMBER_PREFIX_BYTES = 1 + 8 + 2;
const END_BYTES = 1 + 8;
const CHUNK_BYTES = 64 * 1024;

export interface KvPair {
  readonly key: Uint8Array;
  readonly value: Uint8Array;
}

/**
 * Encodes the address book and then the pairs (in key order) into chunks of about 64 KiB; large values
 * are passed through whole.
 */
export function* encodeKvSnapshot(
  appliedIndex: number,
  pairs: Iterable<KvPair>,
  addressBook: ReadonlyMap<number, string> = new Map(),
): Generator<Buffer> {
  let chunk = Buffer.allocUnsafe(CHUNK_BYTES);
  chunk.set(MAGIC, 0);
  chunk.writeUInt16BE(VERSION, 4);
  chunk.writeBigUInt64BE(BigInt(appliedIndex), 6);
  let at = HEADER_BYTES;
  // A handful of short addresses: they fit the first chunk.
  for (const [id, address] of addressBook) {
    const bytes = Buffer.from(address, "utf8");
    chunk[at] = TAG_MEMBER;
    chunk.writeBigUInt64BE(BigInt(id), at + 1);
    chunk.writeUInt16BE(bytes.length, at + 9);
    chunk.set(bytes, at + MEMBER_PREFIX_BYTES);
    at += MEMBER_PREFIX_BYTES + bytes.length;
  }
  let count = 0n;
  for (const { key, value } of pairs) {
    const need = KEY_PREFIX_BYTES + key.length + value.length;
    if (at + need > chunk.length) {
      if (at > 0) yield chunk.subarray(0, at);
      chunk = Buffer.allocUnsafe(Math.max(CHUNK_BYTES, need));
      at = 0;
    }
    chunk[at] = TAG_KEY;
    chunk.writeUInt32BE(key.length, at + 1);
    chunk.writeUInt32BE(value.length, at + 5);
    chunk.set(key, at + KEY_PREFIX_BYTES);
    chunk.set(value, at + KEY_PREFIX_BYTES + key.length);
    at += need;
    count++;
  }
  if (at + END_BYTES > chunk.length) {
    yield chunk.subarray(0, at);
    chunk = Buffer.allocUnsafe(END_BYTES);
    at = 0;
  }
  chunk[at] = TAG_END;
  chunk.writeBigUInt64BE(count, at + 1);
  yield chunk.subarray(0, at + END_BYTES);
}

export interface KvSnapshotLimits {
  readonly maxKeyBytes: number;
  readonly maxRecordBytes: number;
}

/**
 * Decodes a payload as its chunks arrive: `onPair` gets each pair (views valid only during the call),
 * `onMember` each member of the address book; `finish()` checks the payload ended properly and returns
 * its applied index.
 */
export class KvSnapshotDecoder {
  /** Bytes not yet parsed, and how many must be here before parsing can move on (no rescans). */
  private parts: Buffer[] = [];
  private partBytes = 0;
  private need = HEADER_BYTES;
  private appliedIndex = -1;
  private count = 0n;
  private members = 0;
  private version = 0;
  private ended = false;

  constructor(
    private readonly limits: KvSnapshotLimits,
    private readonly onPair: (key: Buffer, record: Buffer) => void,
    private readonly onMember: (id: number, address: string) => void = () => {},
  ) {}

  push(chunk: Uint8Array): void {
    if (chunk.byteLength === 0) return;
    if (this.ended) throw new KvSnapshotFormatError("bytes follow the end marker");
    this.parts.push(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength));
    this.partBytes += chunk.byteLength;
    if (this.partBytes < this.need) return;
    const data = this.parts.length === 1 ? this.parts[0]! : Buffer.concat(this.parts, this.partBytes);
    const p = this.parse(data);
    // What is left is less than one record: copied, so the chunk it came in is not kept alive.
    this.parts = p < data.length ? [Buffer.from(data.subarray(p))] : [];
    this.partBytes = data.length - p;
  }

  /** Parses whole records from `data`; returns where the first incomplete one starts. */
  private parse(data: Buffer): number {
    let p = 0;
    if (this.appliedIndex < 0) {
      if (!data.subarray(0, 4).equals(MAGIC)) throw new KvSnapshotFormatError("it does not start with RKVS");
      const version = data.readUInt16BE(4);
      if (version !== 1 && version !== VERSION)
        throw new KvSnapshotFormatError(`format version ${version}, expected 1 or ${VERSION}`);
      this.version = version;
      this.appliedIndex = Number(data.readBigUInt64BE(6));
      p = HEADER_BYTES;
    }
    while (p < data.length) {
      if (this.ended) throw new KvSnapshotFormatError("bytes follow the end marker");
      const tag = data[p];
      if (tag === TAG_END) {
        if (data.length - p < END_BYTES) {
          this.need = END_BYTES;
          return p;
        }
        const count = data.readBigUInt64BE(p + 1);
        if (count !== this.count)
          throw new KvSnapshotFormatError(
            `the end marker counts ${count} keys, the payload held ${this.count}`,
          );
        this.ended = true;
        p += END_BYTES;
        continue;
      }
      if (tag === TAG_MEMBER && this.version >= 2) {
        if (data.length - p < MEMBER_PREFIX_BYTES) {
          this.need = MEMBER_PREFIX_BYTES;
          return p;
        }
        if (this.count > 0n) throw new KvSnapshotFormatError("an address book member after the keys");
        if (this.members >= MAX_ADDRESS_BOOK_MEMBERS)
          throw new KvSnapshotFormatError(`more than ${MAX_ADDRESS_BOOK_MEMBERS} address book members`);
        const id = data.readBigUInt64BE(p + 1);
        const addressLen = data.readUInt16BE(p + 9);
        if (id === 0n || id > BigInt(Number.MAX_SAFE_INTEGER))
          throw new KvSnapshotFormatError(`an address book member with node id ${id}`);
        if (addressLen === 0 || addressLen > MAX_ADDRESS_BYTES)
          throw new KvSnapshotFormatError(`an address of ${addressLen} bytes`);
        const size = MEMBER_PREFIX_BYTES + addressLen;
        if (p + size > data.length) {
          this.need = size;
          return p;
        }
        this.members++;
        this.onMember(Number(id), data.toString("utf8", p + MEMBER_PREFIX_BYTES, p + size));
        p += size;
        continue;
      }
      if (tag !== TAG_KEY) throw new KvSnapshotFormatError(`unknown record tag 0x${tag!.toString(16)}`);
      if (data.length - p < KEY_PREFIX_BYTES) {
        this.need = KEY_PREFIX_BYTES;
        return p;
      }
      const keyLen = data.readUInt32BE(p + 1);
      const recLen = data.readUInt32BE(p + 5);
      if (keyLen === 0 || keyLen > this.limits.maxKeyBytes)
        throw new KvSnapshotFormatError(`a key of ${keyLen} bytes`);
      if (recLen > this.limits.maxRecordBytes) throw new KvSnapshotFormatError(`a record of ${recLen} bytes`);
      const size = KEY_PREFIX_BYTES + keyLen + recLen;
      if (p + size > data.length) {
        this.need = size;
        return p;
      }
      const keyStart = p + KEY_PREFIX_BYTES;
      this.onPair(data.subarray(keyStart, keyStart + keyLen), data.subarray(keyStart + keyLen, p + size));
      this.count++;
      p += size;
    }
    this.need = 1;
    return p;
  }

  /** The payload's applied index, once it has ended properly. */
  finish(): number {
    if (this.appliedIndex < 0) throw new KvSnapshotFormatError("it ended before its header");
    if (!this.ended)
      throw new KvSnapshotFormatError(`it ended after ${this.count} keys, without its end marker`);
    return this.appliedIndex;
  }
}
