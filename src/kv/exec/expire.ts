/** Turning Redis's expiry arguments (EX, PX, EXAT, PXAT, EXPIRE …) into absolute times. */
import { Errors, type Reply } from "../reply.js";
import { parseInt64 } from "./args.js";

export type ExpireUnit = "EX" | "PX" | "EXAT" | "PXAT";

const INT64_MAX = 9223372036854775807n;

/**
 * The absolute expiry in ms for `value` in `unit` at `nowMs`, or Redis's error reply: not an integer,
 * or (when `positive`) not above zero, or past what a 64-bit ms timestamp holds.
 */
export function expireAt(
  value: Buffer,
  unit: ExpireUnit,
  nowMs: number,
  command: string,
  positive = true,
): number | Reply {
  const v = parseInt64(value);
  if (v === null) return Errors.notInteger;
  if (positive && v <= 0n) return Errors.invalidExpire(command);
  const seconds = unit === "EX" || unit === "EXAT";
  if (seconds && (v > INT64_MAX / 1000n || v < -INT64_MAX / 1000n)) return Errors.invalidExpire(command);
  let ms = seconds ? v * 1000n : v;
  if (unit === "EX" || unit === "PX") ms += BigInt(nowMs);
  if (ms > INT64_MAX) return Errors.invalidExpire(command);
  // Past times (and non-positive ones where allowed) mean "already expired": any past instant will do.
  return ms <= 0n ? -1 : Number(ms);
}
