/** The cursor and options SCAN, HSCAN and SSCAN share, read as Redis reads them. */
import { Errors, error, type Reply } from "../reply.js";
import { parseInt64, upper } from "./args.js";

const MAX_U64 = (1n << 64n) - 1n;
/** The most items one call looks at, whatever COUNT asks: a reply is built in memory. */
const MAX_COUNT = 100_000n;

export interface ScanOptions {
  readonly count: number;
  readonly pattern: Buffer | null;
  /** SCAN's TYPE, lower-cased; null when not given. */
  readonly type: string | null;
}

/** The cursor argument: an unsigned 64-bit number, or Redis's error. */
export function parseCursor(arg: Buffer): bigint | Reply {
  const text = arg.toString("latin1");
  if (!/^\d+$/.test(text) || BigInt(text) > MAX_U64) return error("ERR invalid cursor");
  return BigInt(text);
}

/** COUNT, MATCH (and TYPE where `withType`) from `args[from…]`, or Redis's error. */
export function parseScanOptions(
  args: readonly Buffer[],
  from: number,
  withType: boolean,
): ScanOptions | Reply {
  let count = 10;
  let pattern: Buffer | null = null;
  let type: string | null = null;
  for (let i = from; i < args.length; i++) {
    const opt = upper(args[i]!);
    if (i + 1 >= args.length) return Errors.syntax;
    if (opt === "COUNT") {
      const n = parseInt64(args[++i]!);
      if (n === null) return Errors.notInteger;
      if (n < 1n) return Errors.syntax;
      count = Number(n > MAX_COUNT ? MAX_COUNT : n);
    } else if (opt === "MATCH") {
      pattern = args[++i]!;
    } else if (withType && opt === "TYPE") {
      type = args[++i]!.toString("latin1").toLowerCase();
    } else {
      return Errors.syntax;
    }
  }
  return { count, pattern, type };
}
