/** Reading command arguments the way Redis reads them. */

const INT64_MAX = 9223372036854775807n;
const INT64_MIN = -9223372036854775808n;

/**
 * A 64-bit signed integer, in Redis's strict form (string2ll): optional '-', digits, no '+', no blanks,
 * no leading zeros (but "0"); null when it is not one.
 */
export function parseInt64(b: Buffer): bigint | null {
  const n = b.length;
  if (n === 0 || n > 20) return null;
  if (n === 1 && b[0] === 0x30) return 0n;
  let i = 0;
  if (b[0] === 0x2d) {
    i = 1;
    if (n === 1) return null;
  }
  if (b[i]! < 0x31 || b[i]! > 0x39) return null;
  for (let j = i + 1; j < n; j++) if (b[j]! < 0x30 || b[j]! > 0x39) return null;
  const v = BigInt(b.toString("latin1"));
  return v > INT64_MAX || v < INT64_MIN ? null : v;
}

export function inInt64(v: bigint): boolean {
  return v <= INT64_MAX && v >= INT64_MIN;
}

/** ASCII upper case of an option word, for case-insensitive matching. */
export function upper(b: Buffer): string {
  return b.toString("latin1").toUpperCase();
}

export const MAX_STRING_BYTES = 512 * 1024 * 1024;
export const INT64_MAX_MS = INT64_MAX;
