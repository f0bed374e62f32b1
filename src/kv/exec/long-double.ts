/**
 * C's `long double` as Redis uses it for INCRBYFLOAT and HINCRBYFLOAT on x86-64: the x87 80-bit
 * extended format (64-bit significand with an explicit leading bit, 15-bit exponent, subnormals),
 * emulated exactly with integers, so that every replica computes the same bits as redis-server does.
 *
 * - `parseLongDouble`: Redis's string2ld (glibc strtold, correctly rounded to nearest-even, plus
 *   Redis's checks: the whole string, no leading blank, no NaN, no overflow, no underflow to zero).
 * - `addLongDouble`: the x87 addition, one rounding to nearest-even of the exact sum.
 * - `formatLongDouble`: Redis's human-friendly ld2string (`%.17Lf`, glibc rounding the exact value
 *   half to even, then trailing zeros and dot trimmed, and "-0" written "0").
 */

/** A finite value: (-1)^negative × significand × 2^exponent. */
export interface FiniteLongDouble {
  readonly kind: "finite";
  readonly negative: boolean;
  /**
   * Below 2^64. Canonical: at least 2^63 (a normal number) unless the exponent is MIN_EXPONENT
   * (subnormals and zero), so that equal values have equal fields (the zeros apart, by sign).
   */
  readonly significand: bigint;
  readonly exponent: number;
}

export type LongDouble =
  | FiniteLongDouble
  | { readonly kind: "infinity"; readonly negative: boolean }
  | { readonly kind: "nan" };

const SIGNIFICAND_BITS = 64;
/** The weight of the significand's lowest bit in the smallest normals and in every subnormal. */
export const MIN_EXPONENT = -16445;
/** The weight of the significand's lowest bit in the largest binade (2^16383 up to LDBL_MAX). */
export const MAX_EXPONENT = 16320;
/**
 * Redis's buffer for a long double's text (MAX_LONG_DOUBLE_CHARS): longer input is not a valid float.
 * Every finite value's `%.17Lf` text (at most 4,951 characters) fits.
 */
export const MAX_LONG_DOUBLE_CHARS = 5 * 1024;

const TOP_BIT = 1n << 63n;
const CARRY = 1n << 64n;

export const ZERO: FiniteLongDouble = zero(false);

function zero(negative: boolean): FiniteLongDouble {
  return { kind: "finite", negative, significand: 0n, exponent: MIN_EXPONENT };
}

const infinity = (negative: boolean): LongDouble => ({ kind: "infinity", negative });
const NAN: LongDouble = { kind: "nan" };

export const isFiniteLongDouble = (v: LongDouble): v is FiniteLongDouble => v.kind === "finite";

/** The number of bits of a positive integer. */
function bitLength(n: bigint): number {
  const hex = n.toString(16);
  return (hex.length - 1) * 4 + (32 - Math.clz32(Number.parseInt(hex[0]!, 16)));
}

/**
 * The long double nearest (ties to even) to (-1)^negative × (n + f) × 2^e, where f is 0 when
 * `inexact` is false and strictly between 0 and 1 otherwise. An inexact n must have more bits than
 * the result keeps (the caller gives it enough), so that f only decides exact halves. Past the
 * largest finite value (or a tie with the next power of two): infinity. Up to half the smallest
 * subnormal: a zero.
 */
function roundToLongDouble(negative: boolean, n: bigint, e: number, inexact = false): LongDouble {
  if (n === 0n) return zero(negative);
  let exponent = Math.max(e + bitLength(n) - SIGNIFICAND_BITS, MIN_EXPONENT);
  let significand: bigint;
  if (exponent <= e) {
    significand = n << BigInt(e - exponent);
  } else {
    const shift = BigInt(exponent - e);
    significand = n >> shift;
    const rest = n - (significand << shift);
    const half = 1n << (shift - 1n);
    if (rest > half || (rest === half && (inexact || (significand & 1n) === 1n))) significand += 1n;
    if (significand === CARRY) {
      significand = TOP_BIT;
      exponent += 1;
    }
  }
  if (exponent > MAX_EXPONENT) return infinity(negative);
  return { kind: "finite", negative, significand, exponent };
}

/** a + b, rounded once as the x87 unit rounds (to nearest, ties to even). */
export function addLongDouble(a: LongDouble, b: LongDouble): LongDouble {
  if (a.kind === "nan" || b.kind === "nan") return NAN;
  if (a.kind === "infinity") return b.kind === "infinity" && b.negative !== a.negative ? NAN : a;
  if (b.kind === "infinity") return b;
  const e = Math.min(a.exponent, b.exponent);
  const signed = (v: FiniteLongDouble) =>
    (v.negative ? -v.significand : v.significand) << BigInt(v.exponent - e);
  const sum = signed(a) + signed(b);
  // An exact zero sum is +0, except -0 + -0 (IEEE 754, rounding to nearest): non-zero terms that
  // cancel have opposite signs.
  if (sum === 0n) return zero(a.negative && b.negative);
  return sum < 0n ? roundToLongDouble(true, -sum, e) : roundToLongDouble(false, sum, e);
}

const DECIMAL = /^([0-9]*)(?:\.([0-9]*))?(?:[eE]([+-]?[0-9]+))?$/;
const HEXADECIMAL = /^0[xX]([0-9a-fA-F]*)(?:\.([0-9a-fA-F]*))?(?:[pP]([+-]?[0-9]+))?$/;
const INFINITY = /^(?:inf|infinity)$/i;

/** An exponent's digits as a number, held to ±10^9: far past every exponent that still matters. */
function exponentOf(text: string | undefined): number {
  if (text === undefined) return 0;
  const digits = text.replace(/^[+-]?0*/, "");
  const magnitude = digits.length > 9 ? 1e9 : Number(digits || "0");
  return text.startsWith("-") ? -magnitude : magnitude;
}

/**
 * The text as Redis's string2ld reads it, or null where Redis answers "not a valid float": empty or
 * MAX_LONG_DOUBLE_CHARS bytes or more, anything strtold does not consume whole (blanks, NUL bytes),
 * NaN, a value too large (overflow), or a non-zero value that rounds to zero. Accepted: an optional
 * sign, then decimal (`1`, `-.5`, `1e-3`), hexadecimal (`0x1.8p3`) or `inf`/`infinity` (any case).
 */
export function parseLongDouble(bytes: Uint8Array): LongDouble | null {
  if (bytes.length === 0 || bytes.length >= MAX_LONG_DOUBLE_CHARS) return null;
  const text = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).toString("latin1");
  const negative = text.startsWith("-");
  const body = negative || text.startsWith("+") ? text.slice(1) : text;
  if (INFINITY.test(body)) return infinity(negative);
  const hex = HEXADECIMAL.exec(body);
  if (hex !== null) {
    const [, whole = "", fraction = "", exponent] = hex;
    if (whole.length + fraction.length === 0) return null;
    return fromBinary(negative, BigInt(`0x0${whole}${fraction}`), exponentOf(exponent) - 4 * fraction.length);
  }
  const dec = DECIMAL.exec(body);
  if (dec === null) return null;
  const [, whole = "", fraction = "", exponent] = dec;
  if (whole.length + fraction.length === 0) return null;
  return fromDecimal(negative, `${whole}${fraction}`, exponentOf(exponent) - fraction.length);
}

/** n × 2^e as strtold gives it, or null where string2ld refuses it (overflow, underflow to zero). */
function fromBinary(negative: boolean, n: bigint, e: number): LongDouble | null {
  if (n === 0n) return zero(negative);
  const bits = bitLength(n);
  // The value lies in [2^(bits+e-1), 2^(bits+e)): at or past 2^16384 it overflows; at or below half
  // the smallest subnormal (2^(MIN_EXPONENT-1)) it is nearer zero, or tied with zero, which is even.
  if (bits + e - 1 >= 16384 || bits + e <= MIN_EXPONENT - 1) return null;
  return accepted(roundToLongDouble(negative, n, e));
}

/** digits × 10^e as strtold gives it, or null where string2ld refuses it. */
function fromDecimal(negative: boolean, digits: string, e: number): LongDouble | null {
  const significant = digits.replace(/^0+/, "");
  if (significant.length === 0) return zero(negative);
  // The value lies in [10^(length+e-1), 10^(length+e)); LDBL_MAX ≈ 1.19e4932, and half the smallest
  // subnormal ≈ 1.82e-4951: held to that range, the powers of ten below stay small.
  if (significant.length + e - 1 >= 4933 || significant.length + e <= -4951) return null;
  const m = BigInt(significant);
  if (e >= 0) return accepted(roundToLongDouble(negative, m * 10n ** BigInt(e), 0));
  const divisor = 10n ** BigInt(-e);
  // Enough quotient bits (66 or more) that the remainder only breaks ties.
  const k = Math.max(0, 66 + bitLength(divisor) - bitLength(m));
  const scaled = m << BigInt(k);
  const q = scaled / divisor;
  return accepted(roundToLongDouble(negative, q, -k, q * divisor !== scaled));
}

/** strtold's result of a non-zero number, unless it overflowed or underflowed to zero (ERANGE). */
function accepted(v: LongDouble): LongDouble | null {
  return v.kind === "finite" && v.significand !== 0n ? v : null;
}

/**
 * Redis's human-friendly text of a finite value: `%.17Lf` (the exact value rounded to 17 decimals,
 * ties to even), trailing zeros and then a trailing dot removed, and "-0" written "0".
 */
export function formatLongDouble(v: FiniteLongDouble): string {
  const scaled = v.significand * 10n ** 17n;
  let units: bigint;
  if (v.exponent >= 0) {
    units = scaled << BigInt(v.exponent);
  } else {
    const shift = BigInt(-v.exponent);
    units = scaled >> shift;
    const rest = scaled - (units << shift);
    const half = 1n << (shift - 1n);
    if (rest > half || (rest === half && (units & 1n) === 1n)) units += 1n;
  }
  const digits = units.toString().padStart(18, "0");
  let text = `${digits.slice(0, -17)}.${digits.slice(-17)}`.replace(/0+$/, "").replace(/\.$/, "");
  if (v.negative) text = `-${text}`;
  return text === "-0" ? "0" : text;
}
