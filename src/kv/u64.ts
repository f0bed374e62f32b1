/**
 * Unsigned 64-bit big-endian fields holding JavaScript numbers (indexes, times in ms), written as two
 * 32-bit halves: the BigInt round trip Buffer's own 64-bit methods need costs a few allocations per
 * field, on every record a write stores and every entry it decodes.
 */

const TWO_TO_32 = 2 ** 32;
const TWO_TO_64 = 2 ** 64;

/**
 * Writes `value`, an integer from 0 below 2^64, at `offset`. Past 2^53 a double is still an exact
 * integer (an expiry may be as far as 2^63 ms): both halves are computed exactly.
 */
export function writeU64(buf: Buffer, value: number, offset: number): void {
  if (!Number.isInteger(value) || value < 0 || value >= TWO_TO_64)
    throw new RangeError(`a u64 field takes an integer from 0 below 2^64, not ${value}`);
  buf.writeUInt32BE(Math.floor(value / TWO_TO_32), offset);
  buf.writeUInt32BE(value % TWO_TO_32, offset + 4);
}

/** Reads the field at `offset`: past 2^53 rounded to the nearest double, as Number(bigint) rounds. */
export function readU64(buf: Buffer, offset: number): number {
  return buf.readUInt32BE(offset) * TWO_TO_32 + buf.readUInt32BE(offset + 4);
}
