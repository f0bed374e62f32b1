/**
 * Sorted-set scores as Redis reads, writes and orders them: parsed as C's strtod reads them (decimal,
 * hexadecimal, inf; NaN and out-of-range values refused), printed as printf's %.17g (Redis 7.0's reply
 * text), and stored in an 8-byte key that sorts as the numbers do.
 */

const DECIMAL = /^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$/;
const INFINITE = /^[+-]?inf(?:inity)?$/i;
const NOT_A_NUMBER = /^[+-]?nan$/i;
const HEX = /^([+-]?)0[xX]([0-9a-fA-F]*)(?:\.([0-9a-fA-F]*))?(?:[pP]([+-]?\d+))?$/;
const LEADING_SPACE = /^[ \t\n\v\f\r]+/;

interface Parsed {
  readonly value: number;
  /** strtod's ERANGE: an overflow, or an underflow to zero from digits that were not all zero. */
  readonly outOfRange: boolean;
}

/**
 * C's strtod over the whole text (as Redis calls it, then checks that nothing is left): null when the
 * text is not one number. Leading blanks are skipped; NaN is read (callers refuse it).
 */
function strtod(text: string): Parsed | null {
  const t = text.replace(LEADING_SPACE, "");
  if (t.length === 0 || t.length > 400) return null;
  if (INFINITE.test(t))
    return { value: t[0] === "-" ? Number.NEGATIVE_INFINITY : Number.POSITIVE_INFINITY, outOfRange: false };
  if (NOT_A_NUMBER.test(t)) return { value: Number.NaN, outOfRange: false };
  if (DECIMAL.test(t)) {
    const v = Number(t);
    const underflow = v === 0 && /[1-9]/.test(t.split(/[eE]/)[0]!);
    return { value: v, outOfRange: !Number.isFinite(v) || underflow };
  }
  const hex = HEX.exec(t);
  if (hex === null) return null;
  const [, sign, whole = "", fraction = "", exponent = "0"] = hex;
  if (whole.length + fraction.length === 0) return null;
  const mantissa = BigInt(`0x0${whole}${fraction}`);
  const power = Number(exponent) - 4 * fraction.length;
  let v = mantissa === 0n ? 0 : Number(mantissa) * 2 ** Math.max(-1100, Math.min(1100, power));
  if (sign === "-") v = -v;
  return { value: v, outOfRange: !Number.isFinite(v) || (v === 0 && mantissa !== 0n) };
}

/**
 * A score argument (ZADD, ZINCRBY), or null where Redis answers "value is not a valid float": empty,
 * a leading blank, out of range, or NaN are refused (Redis's getDoubleFromObject).
 */
export function parseScore(b: Buffer): number | null {
  const text = b.toString("latin1");
  if (text.length === 0 || LEADING_SPACE.test(text)) return null;
  const p = strtod(text);
  return p === null || p.outOfRange || Number.isNaN(p.value) ? null : p.value;
}

/** printf("%.17g", d), with Redis's "inf" and "-inf". */
export function formatScore(d: number): string {
  if (d === Number.POSITIVE_INFINITY) return "inf";
  if (d === Number.NEGATIVE_INFINITY) return "-inf";
  if (d === 0) return Object.is(d, -0) ? "-0" : "0";
  const [mantissa, exp] = seventeenDigits(d).split("e") as [string, string];
  const x = Number(exp);
  const negative = mantissa.startsWith("-");
  const digits = mantissa.replace("-", "").replace(".", "");
  let out: string;
  if (x < -4 || x >= 17) {
    const m = `${digits[0]}.${digits.slice(1)}`.replace(/\.?0+$/, "");
    out = `${m}e${x < 0 ? "-" : "+"}${String(Math.abs(x)).padStart(2, "0")}`;
  } else if (x >= 0) {
    const int = digits.slice(0, x + 1);
    const frac = digits.slice(x + 1).replace(/0+$/, "");
    out = frac.length > 0 ? `${int}.${frac}` : int;
  } else {
    out = `0.${"0".repeat(-x - 1)}${digits}`.replace(/0+$/, "");
  }
  return negative ? `-${out}` : out;
}

/**
 * `d` to 17 significant digits as toExponential(16) writes it, but with exact ties rounded to even, as
 * glibc's printf rounds them (toExponential rounds them up): a tie shows as a 5 then zeros in the
 * exact expansion, which for such a double is short enough for toExponential(99) to show whole.
 */
function seventeenDigits(d: number): string {
  const rounded = d.toExponential(16);
  const exact = d.toExponential(99);
  const digits = exact
    .slice(exact.startsWith("-") ? 1 : 0)
    .replace(".", "")
    .split("e")[0]!;
  if (digits[17] !== "5" || !/^0*$/.test(digits.slice(18))) return rounded;
  // A tie: keep the 17 digits as they are when the last is even (toExponential rounded up).
  if (Number(digits[16]) % 2 !== 0) return rounded;
  const sign = d < 0 ? "-" : "";
  return `${sign}${digits[0]}.${digits.slice(1, 17)}e${exact.split("e")[1]}`;
}

/** The 8 bytes that sort as `d` does among scores (-0 sorts as 0, as Redis compares them). */
export function scoreKey(d: number, out: Buffer, offset: number): void {
  out.writeDoubleBE(d === 0 ? 0 : d, offset);
  if ((out[offset]! & 0x80) !== 0) for (let i = offset; i < offset + 8; i++) out[i] = ~out[i]! & 0xff;
  else out[offset] = out[offset]! | 0x80;
}

/** The score a scoreKey holds. */
export function scoreOfKey(b: Buffer, offset: number): number {
  const raw = Buffer.from(b.subarray(offset, offset + 8));
  if ((raw[0]! & 0x80) !== 0) raw[0] = raw[0]! & 0x7f;
  else for (let i = 0; i < 8; i++) raw[i] = ~raw[i]! & 0xff;
  return raw.readDoubleBE(0);
}

/** One end of a score range: ZRANGEBYSCORE's min and max, "(" for an exclusive bound. */
export interface ScoreBound {
  readonly value: number;
  readonly exclusive: boolean;
}

/**
 * A score range bound, or null where Redis answers "min or max is not a float". Redis reads it with a
 * bare strtod: an empty text is 0, leading blanks are skipped, out-of-range values are infinities or 0;
 * only NaN and leftover text are refused.
 */
export function parseScoreBound(b: Buffer): ScoreBound | null {
  const exclusive = b[0] === 0x28;
  const text = (exclusive ? b.subarray(1) : b).toString("latin1");
  if (text.length === 0) return { value: 0, exclusive };
  const p = strtod(text);
  return p === null || Number.isNaN(p.value) ? null : { value: p.value, exclusive };
}

export function aboveMin(score: number, min: ScoreBound): boolean {
  return min.exclusive ? score > min.value : score >= min.value;
}

export function belowMax(score: number, max: ScoreBound): boolean {
  return max.exclusive ? score < max.value : score <= max.value;
}
