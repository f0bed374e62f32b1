/**
 * CRC-32C (Castagnoli), the checksum of WAL frames and snapshot files.
 *
 * The WAL checksums every byte it writes on the path to an fdatasync, so speed matters: the native
 * SSE4.2/ARMv8 implementation in @node-rs/crc32 runs at ~5.7 GB/s on the reference machine against
 * ~0.9 GB/s for the portable slice-by-8 version below (bench:wal, BENCHMARKS.md). The portable one is
 * kept as the fallback where no prebuilt binary exists, and as the reference the tests hold both to.
 */
import { createRequire } from "node:module";

type NativeCrc = (input: Uint8Array, initialState?: number) => number;

function loadNative(): NativeCrc | null {
  if (process.env.RAFTKV_PORTABLE_CRC === "1") return null;
  try {
    const mod = createRequire(import.meta.url)("@node-rs/crc32") as { crc32c?: NativeCrc };
    return typeof mod.crc32c === "function" ? mod.crc32c : null;
  } catch {
    return null;
  }
}

const native = loadNative();

/** Which implementation is in use, for logs and benchmarks. */
export const crc32cImplementation: "native" | "portable" = native ? "native" : "portable";
const POLY = 0x82f63b78;
const TABLES: Uint32Array[] = (() => {
  const t: Uint32Array[] = [];
  const t0 = new Uint32Array(256);
  for (let i = 0; i < 256; i++) {
    let c = i;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ POLY : c >>> 1;
    t0[i] = c >>> 0;
  }
  t.push(t0);
  for (let k = 1; k < 8; k++) {
    const prev = t[k - 1]!;
    const tk = new Uint32Array(256);
    for (let i = 0; i < 256; i++) tk[i] = (prev[i]! >>> 8) ^ t0[prev[i]! & 0xff]!;
    t.push(tk);
  }
  return t;
})();
const [T0, T1, T2, T3, T4, T5, T6, T7] = TABLES as [
  Uint32Array,
  Uint32Array,
  Uint32Array,
  Uint32Array,
  Uint32Array,
  Uint32Array,
  Uint32Array,
  Uint32Array,
];

/**
 * Extends a running CRC-32C with bytes [start, end) of `buf`. Start from 0; the result of one call is
 * the `crc` of the next, so a checksum can be computed over pieces.
 */
export function crc32c(buf: Uint8Array, crc = 0, start = 0, end = buf.length): number {
  // Below a few dozen bytes the call into native code costs more than the table loop.
  if (native && end - start >= 64) {
    return native(start === 0 && end === buf.length ? buf : buf.subarray(start, end), crc) >>> 0;
  }
  return crc32cPortable(buf, crc, start, end);
}

/** The portable slice-by-8 implementation. */
export function crc32cPortable(buf: Uint8Array, crc = 0, start = 0, end = buf.length): number {
  let c = ~crc >>> 0;
  let i = start;
  // Align the bulk loop to 8-byte strides.
  const bulkEnd = end - ((end - i) & 7);
  while (i < bulkEnd) {
    const a = (buf[i]! | (buf[i + 1]! << 8) | (buf[i + 2]! << 16) | (buf[i + 3]! << 24)) ^ c;
    c =
      T7[a & 0xff]! ^
      T6[(a >>> 8) & 0xff]! ^
      T5[(a >>> 16) & 0xff]! ^
      T4[a >>> 24]! ^
      T3[buf[i + 4]!]! ^
      T2[buf[i + 5]!]! ^
      T1[buf[i + 6]!]! ^
      T0[buf[i + 7]!]!;
    i += 8;
  }
  while (i < end) c = T0[(c ^ buf[i++]!) & 0xff]! ^ (c >>> 8);
  return ~c >>> 0;
}
