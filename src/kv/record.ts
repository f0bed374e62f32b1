/**
 * How a key's record is stored: a 9-byte header — its type, and its absolute expiry time in ms since
 * the epoch (0: none), decided by the leader and carried in the command, so every replica agrees on
 * it — then the type's payload (a string's bytes; the other types keep their members elsewhere).
 */

export const RecordType = {
  String: 0,
} as const;
export type RecordType = (typeof RecordType)[keyof typeof RecordType];

export const RECORD_HEADER_BYTES = 9;

export interface KeyRecord {
  readonly type: RecordType;
  /** Absolute expiry in ms since the epoch; 0 when the key does not expire. */
  readonly expireAtMs: number;
  readonly payload: Buffer;
}

export function encodeRecord(type: RecordType, expireAtMs: number, payload: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(RECORD_HEADER_BYTES + payload.length);
  out[0] = type;
  out.writeBigUInt64BE(BigInt(expireAtMs), 1);
  out.set(payload, RECORD_HEADER_BYTES);
  return out;
}

/** Reads a record; `bytes` may be a view that is reused later, so the payload is a copy. */
export function decodeRecord(bytes: Uint8Array): KeyRecord {
  if (bytes.length < RECORD_HEADER_BYTES) throw new RangeError(`a key record of ${bytes.length} bytes`);
  const b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
  return {
    type: b[0] as RecordType,
    expireAtMs: Number(b.readBigUInt64BE(1)),
    payload: Buffer.from(b.subarray(RECORD_HEADER_BYTES)),
  };
}

/** The expiry of an encoded record, without decoding the rest. */
export function recordExpiry(bytes: Uint8Array): number {
  return Number(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).readBigUInt64BE(1));
}

/** The expiry index key: the expiry time (8 bytes, big-endian, so the index sorts by time), then the key. */
export function expiryIndexKey(expireAtMs: number, key: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(8 + key.length);
  out.writeBigUInt64BE(BigInt(expireAtMs), 0);
  out.set(key, 8);
  return out;
}
