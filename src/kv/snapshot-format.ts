/**
 * The key-value store's snapshot payload (what the transport frames and checksums):
 *
 *   "RKVS"  u16 version = 4  u64 applied index  u64 tombstone horizon  u64 highest node id
 *           u64 last collection id
 *   0x03 u64 node id  u16 address length  address           one per member of the address book,
 *                                                            before any key
 *   0x01 u32 key length  u32 record length  key  record      one per key, in key order
 *   0x02 u32 key length  u32 16  key  tombstone              one per tombstone, in key order
 *   0x04 u32 key length  u32 value length  key  value        one per item of a collection (a hash
 *                                                            field …), in key order: collection id ‖ item
 *   0xFF u64 keys  u64 tombstones  u64 items                 the end; nothing may follow
 *
 * Version 3 (written before collections existed) is still read: no last collection id, no items, and
 * an end marker without their count.
 *
 * The expiry index and the tombstones' index by time are not carried: a restore rebuilds them.
 * Keys are the store's stored keys; a record carries its version, so WATCH gives the same answer on a
 * replica restored from a snapshot as on one that applied every entry. The address book (each member's
 * raft address) travels too, so a node that catches up by snapshot can reach every member.
 */
import { MAX_ADDRESS_BOOK_MEMBERS, MAX_ADDRESS_BYTES } from "./address-book.js";
import { KvSnapshotFormatError } from "./errors.js";
import { TOMBSTONE_BYTES } from "./record.js";

const MAGIC = Buffer.from("RKVS", "latin1");
const VERSION = 4;
const VERSION_WITHOUT_ITEMS = 3;
const HEADER_BYTES_WITHOUT_ITEMS = 4 + 2 + 8 + 8 + 8;
const HEADER_BYTES = HEADER_BYTES_WITHOUT_ITEMS + 8;
const TAG_KEY = 0x01;
const TAG_TOMBSTONE = 0x02;
const TAG_MEMBER = 0x03;
const TAG_ITEM = 0x04;
const TAG_END = 0xff;
const KEY_PREFIX_BYTES = 1 + 4 + 4;
const MEMBER_PREFIX_BYTES = 1 + 8 + 2;
const END_BYTES = 1 + 8 + 8 + 8;
const END_BYTES_WITHOUT_ITEMS = 1 + 8 + 8;
/** An item's key: a collection id (8 bytes), then its own (an empty hash field or set member is one). */
const MIN_ITEM_KEY_BYTES = 8;
const CHUNK_BYTES = 64 * 1024;

export interface KvPair {
  readonly key: Uint8Array;
  readonly value: Uint8Array;
}

/** What a snapshot holds. */
export interface KvImage {
  readonly appliedIndex: number;
  readonly tombstoneHorizon: number;
  /** The highest node id that was ever a member (ids are never reused). */
  readonly highestNodeId: number;
  /** The last collection id given out: a restored replica goes on giving out the same ids. */
  readonly lastCollectionId: number;
  /** Node id → raft address. */
  readonly addressBook: ReadonlyMap<number, string>;
  /** Stored key → record, in key order. */
  readonly records: Iterable<KvPair>;
  /** Stored key → tombstone, in key order. */
  readonly tombstones: Iterable<KvPair>;
  /** Items of collections (collection id ‖ item key → value), in key order. */
  readonly items: Iterable<KvPair>;
}

/** Encodes an image into chunks of about 64 KiB; large values are passed through whole. */
export function* encodeKvSnapshot(image: KvImage): Generator<Buffer> {
  const members = [...image.addressBook].map(([id, address]) => [id, Buffer.from(address, "utf8")] as const);
  const memberBytes = members.reduce((sum, [, bytes]) => sum + MEMBER_PREFIX_BYTES + bytes.length, 0);
  // The header and the whole address book go in the first chunk.
  let chunk = Buffer.allocUnsafe(Math.max(CHUNK_BYTES, HEADER_BYTES + memberBytes));
  chunk.set(MAGIC, 0);
  chunk.writeUInt16BE(VERSION, 4);
  chunk.writeBigUInt64BE(BigInt(image.appliedIndex), 6);
  chunk.writeBigUInt64BE(BigInt(image.tombstoneHorizon), 14);
  chunk.writeBigUInt64BE(BigInt(image.highestNodeId), 22);
  chunk.writeBigUInt64BE(BigInt(image.lastCollectionId), 30);
  let at = HEADER_BYTES;
  for (const [id, bytes] of members) {
    chunk[at] = TAG_MEMBER;
    chunk.writeBigUInt64BE(BigInt(id), at + 1);
    chunk.writeUInt16BE(bytes.length, at + 9);
    chunk.set(bytes, at + MEMBER_PREFIX_BYTES);
    at += MEMBER_PREFIX_BYTES + bytes.length;
  }
  const counts = [0n, 0n, 0n];
  for (const [tag, pairs, counted] of [
    [TAG_KEY, image.records, 0],
    [TAG_TOMBSTONE, image.tombstones, 1],
    [TAG_ITEM, image.items, 2],
  ] as const) {
    for (const { key, value } of pairs) {
      const need = KEY_PREFIX_BYTES + key.length + value.length;
      if (at + need > chunk.length) {
        if (at > 0) yield chunk.subarray(0, at);
        chunk = Buffer.allocUnsafe(Math.max(CHUNK_BYTES, need));
        at = 0;
      }
      chunk[at] = tag;
      chunk.writeUInt32BE(key.length, at + 1);
      chunk.writeUInt32BE(value.length, at + 5);
      chunk.set(key, at + KEY_PREFIX_BYTES);
      chunk.set(value, at + KEY_PREFIX_BYTES + key.length);
      at += need;
      counts[counted]!++;
    }
  }
  if (at + END_BYTES > chunk.length) {
    yield chunk.subarray(0, at);
    chunk = Buffer.allocUnsafe(END_BYTES);
    at = 0;
  }
  chunk[at] = TAG_END;
  chunk.writeBigUInt64BE(counts[0]!, at + 1);
  chunk.writeBigUInt64BE(counts[1]!, at + 9);
  chunk.writeBigUInt64BE(counts[2]!, at + 17);
  yield chunk.subarray(0, at + END_BYTES);
}

export interface KvSnapshotLimits {
  readonly maxKeyBytes: number;
  readonly maxRecordBytes: number;
  /** A record shorter than its header is damage. */
  readonly minRecordBytes: number;
}

/**
 * Decodes a payload as its chunks arrive: `onMember` gets each member of the address book, `onPair`
 * each key and record, `onTombstone` each tombstone, `onItem` each item of a collection (views valid
 * only during the call); `finish()` checks the payload ended properly and returns its applied index,
 * tombstone horizon, highest node id and last collection id.
 */
export class KvSnapshotDecoder {
  /** Bytes not yet parsed, and how many must be here before parsing can move on (no rescans). */
  private parts: Buffer[] = [];
  private partBytes = 0;
  private need = HEADER_BYTES_WITHOUT_ITEMS;
  private appliedIndex = -1;
  private tombstoneHorizon = 0;
  private highestNodeId = 0;
  private lastCollectionId = 0;
  private records = 0n;
  private tombstones = 0n;
  private items = 0n;
  private members = 0;
  private endBytes = END_BYTES;
  private ended = false;

  constructor(
    private readonly limits: KvSnapshotLimits,
    private readonly onPair: (key: Buffer, record: Buffer) => void,
    private readonly onTombstone: (key: Buffer, tombstone: Buffer) => void,
    private readonly onMember: (id: number, address: string) => void,
    private readonly onItem: (key: Buffer, value: Buffer) => void,
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
      if (version !== VERSION && version !== VERSION_WITHOUT_ITEMS)
        throw new KvSnapshotFormatError(`format version ${version}, expected ${VERSION}`);
      if (version === VERSION && data.length < HEADER_BYTES) {
        this.need = HEADER_BYTES;
        return 0;
      }
      if (version === VERSION_WITHOUT_ITEMS) this.endBytes = END_BYTES_WITHOUT_ITEMS;
      this.appliedIndex = Number(data.readBigUInt64BE(6));
      this.tombstoneHorizon = Number(data.readBigUInt64BE(14));
      this.highestNodeId = Number(data.readBigUInt64BE(22));
      if (version === VERSION) {
        const last = data.readBigUInt64BE(30);
        if (last > BigInt(Number.MAX_SAFE_INTEGER))
          throw new KvSnapshotFormatError(`a last collection id of ${last}`);
        this.lastCollectionId = Number(last);
      }
      p = version === VERSION ? HEADER_BYTES : HEADER_BYTES_WITHOUT_ITEMS;
    }
    while (p < data.length) {
      if (this.ended) throw new KvSnapshotFormatError("bytes follow the end marker");
      const tag = data[p];
      if (tag === TAG_END) {
        if (data.length - p < this.endBytes) {
          this.need = this.endBytes;
          return p;
        }
        const records = data.readBigUInt64BE(p + 1);
        const tombstones = data.readBigUInt64BE(p + 9);
        const items = this.endBytes === END_BYTES ? data.readBigUInt64BE(p + 17) : 0n;
        if (records !== this.records || tombstones !== this.tombstones || items !== this.items)
          throw new KvSnapshotFormatError(
            `the end marker counts ${records} keys, ${tombstones} tombstones and ${items} items, the payload held ${this.records}, ${this.tombstones} and ${this.items}`,
          );
        this.ended = true;
        p += this.endBytes;
        continue;
      }
      if (tag === TAG_MEMBER) {
        const size = this.member(data, p);
        if (size === 0) return p;
        p += size;
        continue;
      }
      if (tag !== TAG_KEY && tag !== TAG_TOMBSTONE && (tag !== TAG_ITEM || this.endBytes !== END_BYTES))
        throw new KvSnapshotFormatError(`unknown record tag 0x${tag!.toString(16)}`);
      // Tombstones follow every key, and items every tombstone: anything else is out of order.
      if (tag === TAG_KEY && (this.tombstones > 0n || this.items > 0n))
        throw new KvSnapshotFormatError("a key after the tombstones or items");
      if (tag === TAG_TOMBSTONE && this.items > 0n)
        throw new KvSnapshotFormatError("a tombstone after the items");
      if (data.length - p < KEY_PREFIX_BYTES) {
        this.need = KEY_PREFIX_BYTES;
        return p;
      }
      const keyLen = data.readUInt32BE(p + 1);
      const recLen = data.readUInt32BE(p + 5);
      if (keyLen === 0 || keyLen > this.limits.maxKeyBytes)
        throw new KvSnapshotFormatError(`a key of ${keyLen} bytes`);
      if (tag === TAG_ITEM && (keyLen < MIN_ITEM_KEY_BYTES || recLen > this.limits.maxRecordBytes))
        throw new KvSnapshotFormatError(`an item of ${keyLen} key bytes and ${recLen} value bytes`);
      if (tag === TAG_KEY && (recLen > this.limits.maxRecordBytes || recLen < this.limits.minRecordBytes))
        throw new KvSnapshotFormatError(`a record of ${recLen} bytes`);
      if (tag === TAG_TOMBSTONE && recLen !== TOMBSTONE_BYTES)
        throw new KvSnapshotFormatError(`a tombstone of ${recLen} bytes`);
      const size = KEY_PREFIX_BYTES + keyLen + recLen;
      if (p + size > data.length) {
        this.need = size;
        return p;
      }
      const keyStart = p + KEY_PREFIX_BYTES;
      const key = data.subarray(keyStart, keyStart + keyLen);
      const value = data.subarray(keyStart + keyLen, p + size);
      if (tag === TAG_KEY) {
        this.onPair(key, value);
        this.records++;
      } else if (tag === TAG_TOMBSTONE) {
        this.onTombstone(key, value);
        this.tombstones++;
      } else {
        this.onItem(key, value);
        this.items++;
      }
      p += size;
    }
    this.need = 1;
    return p;
  }

  /** Parses the address book member at `p`: its size, or 0 if it is not all here yet. */
  private member(data: Buffer, p: number): number {
    if (data.length - p < MEMBER_PREFIX_BYTES) {
      this.need = MEMBER_PREFIX_BYTES;
      return 0;
    }
    if (this.records > 0n || this.tombstones > 0n)
      throw new KvSnapshotFormatError("an address book member after the keys");
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
      return 0;
    }
    this.members++;
    this.onMember(Number(id), data.toString("utf8", p + MEMBER_PREFIX_BYTES, p + size));
    return size;
  }

  /** The payload's applied index, tombstone horizon and highest node id, once it has ended properly. */
  finish(): {
    appliedIndex: number;
    tombstoneHorizon: number;
    highestNodeId: number;
    lastCollectionId: number;
  } {
    if (this.appliedIndex < 0) throw new KvSnapshotFormatError("it ended before its header");
    if (!this.ended)
      throw new KvSnapshotFormatError(
        `it ended after ${this.records} keys and ${this.tombstones} tombstones, without its end marker`,
      );
    return {
      appliedIndex: this.appliedIndex,
      tombstoneHorizon: this.tombstoneHorizon,
      highestNodeId: this.highestNodeId,
      lastCollectionId: this.lastCollectionId,
    };
  }
}
