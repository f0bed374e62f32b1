/**
 * The x87 long double emulation behind INCRBYFLOAT: parse (Redis's string2ld on glibc's strtold), add,
 * format (`%.17Lf`, trimmed). Fixed cases, properties checked against independent arithmetic (exact
 * rationals and digit strings), and random texts checked against a live redis-server as the oracle.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import fc from "fast-check";
import {
  addLongDouble,
  type FiniteLongDouble,
  formatLongDouble,
  type LongDouble,
  MAX_EXPONENT,
  MAX_LONG_DOUBLE_CHARS,
  MIN_EXPONENT,
  parseLongDouble,
  ZERO,
} from "../../src/kv/exec/long-double.js";
import { connectRaw, type RawRedis, startRedisServer } from "../helpers/redis-server.js";

const SEED = Number(process.env.RAFTKV_PROPERTY_SEED ?? 424242);
const RUNS_FACTOR = Number(process.env.RAFTKV_PROPERTY_RUNS_FACTOR ?? 1);
const runs = (n: number) => ({ seed: SEED, numRuns: Math.ceil(n * RUNS_FACTOR) });

const TOP = 1n << 63n;
const ALL_ONES = (1n << 64n) - 1n;

const ld = (negative: boolean, significand: bigint, exponent: number): FiniteLongDouble => ({
  kind: "finite",
  negative,
  significand,
  exponent,
});
const parse = (text: string): LongDouble | null => parseLongDouble(Buffer.from(text, "latin1"));
function finite(text: string): FiniteLongDouble {
  const v = parse(text);
  assert.ok(v?.kind === "finite", `${text} is a finite long double`);
  return v;
}
const negate = (v: FiniteLongDouble): FiniteLongDouble => ({ ...v, negative: !v.negative });

/** INCRBYFLOAT's answer for a stored text (null: no key) and an increment, as RESP2 bytes. */
function incrbyfloat(stored: string | null, increment: string): string {
  const a = stored === null ? ZERO : parse(stored);
  const b = parse(increment);
  if (a === null || b === null) return "-ERR value is not a valid float\r\n";
  const sum = addLongDouble(a, b);
  if (sum.kind !== "finite") return "-ERR increment would produce NaN or Infinity\r\n";
  const text = formatLongDouble(sum);
  return `$${text.length}\r\n${text}\r\n`;
}

/** The exact decimal expansion of a finite value (every dyadic rational has one). */
function exactDecimal(v: FiniteLongDouble): string {
  const sign = v.negative ? "-" : "";
  if (v.exponent >= 0) return sign + (v.significand << BigInt(v.exponent)).toString();
  const places = -v.exponent;
  const digits = (v.significand * 5n ** BigInt(places)).toString().padStart(places + 1, "0");
  return `${sign}${digits.slice(0, -places)}.${digits.slice(-places)}`;
}

const hexText = (v: FiniteLongDouble) =>
  `${v.negative ? "-" : ""}0x${v.significand.toString(16)}p${v.exponent}`;

/** `%.17f` of an exact decimal by digit-string rounding (half to even), then Redis's trimming. */
function referenceFormat(exact: string): string {
  const negative = exact.startsWith("-");
  const [whole = "", fraction = ""] = exact.replace(/^-/, "").split(".");
  const padded = fraction.padEnd(18, "0");
  let kept = BigInt(whole + padded.slice(0, 17));
  const next = padded[17]!;
  const rest = padded.slice(18);
  if (next > "5" || (next === "5" && (/[1-9]/.test(rest) || kept % 2n === 1n))) kept += 1n;
  const digits = kept.toString().padStart(18, "0");
  const text = `${digits.slice(0, -17)}.${digits.slice(-17)}`.replace(/0+$/, "").replace(/\.$/, "");
  return negative && text !== "0" ? `-${text}` : text;
}

const normal = fc
  .record({
    negative: fc.boolean(),
    significand: fc.bigInt(TOP, ALL_ONES),
    exponent: fc.integer({ min: MIN_EXPONENT, max: MAX_EXPONENT }),
  })
  .map((r) => ld(r.negative, r.significand, r.exponent));
const subnormal = fc
  .record({ negative: fc.boolean(), significand: fc.bigInt(0n, TOP - 1n) })
  .map((r) => ld(r.negative, r.significand, MIN_EXPONENT));
/** Values a person would type: exponents near the decimal point, where the 17 decimals show. */
const everyday = fc
  .record({
    negative: fc.boolean(),
    significand: fc.oneof(fc.bigInt(TOP, ALL_ONES), fc.constantFrom(TOP, TOP + 1n, ALL_ONES)),
    exponent: fc.integer({ min: -130, max: 10 }),
  })
  .map((r) => ld(r.negative, r.significand, r.exponent));
const anyFinite = fc.oneof(
  { weight: 3, arbitrary: everyday },
  { weight: 2, arbitrary: normal },
  { weight: 1, arbitrary: subnormal },
);

describe("long double: parse (Redis's string2ld)", () => {
  it("reads exact values into canonical fields", () => {
    assert.deepEqual(finite("1"), ld(false, TOP, -63));
    assert.deepEqual(finite("-2.5"), ld(true, 5n << 61n, -62));
    // 0.1 × 2^67 = 14757395258967641292.8, rounded up.
    assert.deepEqual(finite("0.1"), ld(false, 0xcccccccccccccccdn, -67));
    assert.deepEqual(finite("0x1p3"), finite("8"));
    assert.deepEqual(finite("0X1.8P+1"), finite("3"));
    assert.deepEqual(finite("0x.8p1"), finite("1"));
    assert.deepEqual(finite("0x1e3"), finite("483"));
    assert.deepEqual(finite("+.5e1"), finite("5."));
    assert.deepEqual(finite("00012"), finite("12"));
    assert.deepEqual(finite("1E+05"), finite("100000"));
    assert.deepEqual(finite("-0"), ld(true, 0n, MIN_EXPONENT));
    assert.deepEqual(finite("0e99999999999999999999"), ZERO);
    assert.deepEqual(finite("0x0p-99999"), ZERO);
    // The extremes: the largest finite value, the smallest normal, the smallest subnormal.
    assert.deepEqual(finite("0x1.fffffffffffffffep16383"), ld(false, ALL_ONES, MAX_EXPONENT));
    assert.deepEqual(finite("0x1p-16382"), ld(false, TOP, MIN_EXPONENT));
    assert.deepEqual(finite("0x1p-16445"), ld(false, 1n, MIN_EXPONENT));
    assert.deepEqual(finite("3.6e-4951"), ld(false, 1n, MIN_EXPONENT));
    assert.deepEqual(finite("1e-4950"), ld(false, 3n, MIN_EXPONENT)); // 1e-4950 / 2^-16445 ≈ 2.74
  });

  it("rounds to nearest, ties to even, in normals and subnormals", () => {
    // 1 + 2^-64 is half an ulp above 1: the even neighbour is 1; 1 + 3·2^-64 goes up to 1 + 2^-62.
    assert.deepEqual(finite("0x1.0000000000000001"), finite("1"));
    assert.deepEqual(finite("0x1.0000000000000003"), ld(false, TOP + 2n, -63));
    assert.deepEqual(finite("0x1.0000000000000001000001"), ld(false, TOP + 1n, -63));
    const half = exactDecimal(ld(false, 2n * TOP + 1n, -64));
    assert.equal(half, "1.0000000000000000000542101086242752217003726400434970855712890625");
    assert.deepEqual(finite(half), finite("1"));
    assert.deepEqual(finite(`${half}1`), ld(false, TOP + 1n, -63));
    assert.deepEqual(finite("0x3p-16446"), ld(false, 2n, MIN_EXPONENT)); // 1.5 subnormal ulps
    assert.deepEqual(finite("0x5p-16446"), ld(false, 2n, MIN_EXPONENT)); // 2.5
    assert.deepEqual(finite("0x1.fffffffffffffffefp16383"), ld(false, ALL_ONES, MAX_EXPONENT));
  });

  it("refuses what Redis refuses", () => {
    const refused = [
      ...[
        "",
        " 1",
        "1 ",
        "\t1",
        "1\n",
        "- 1",
        "+",
        "-",
        ".",
        "e5",
        "1e",
        "1e+",
        "1.5x",
        "1.5f",
        "1_000",
        "1,5",
      ],
      ...["0x", "0xp1", "0x1p", "0x.p1", "0b101", "infin", "in", "nan", "NaN", "-nan", "nan(1)", "\u0661"],
      ...["1.5\0", "\0", "\0abc", "+\0", "+-1", "1e+-1", ".e5", "0e", "00x1", "0x-1", "0x1e+3", "infinityx"],
      // Overflow, including a tie that rounds up past the largest value, and underflow to zero.
      ...[
        "1e5000",
        "1.2e4932",
        "1.19e4932",
        "0x1p16384",
        "0x1.ffffffffffffffffp16383",
        "1e99999999999999999999",
      ],
      ...["1e-5000", "1e-4951", "1.8e-4951", "0x1p-16446", "0x1p-16447", "-1e-99999999999999999999"],
      "1".padEnd(MAX_LONG_DOUBLE_CHARS, "0"),
      "1.".padEnd(MAX_LONG_DOUBLE_CHARS, "0"),
    ];
    for (const text of refused) assert.equal(parse(text), null, JSON.stringify(text));
    assert.deepEqual(finite("1.".padEnd(MAX_LONG_DOUBLE_CHARS - 1, "0")), finite("1"));
  });

  it("reads infinities (and the sum with them is refused by the caller, as Redis does)", () => {
    for (const text of ["inf", "INF", "Infinity", "+infINITY"])
      assert.deepEqual(parse(text), { kind: "infinity", negative: false });
    assert.deepEqual(parse("-inf"), { kind: "infinity", negative: true });
  });

  it("property: a hexadecimal text of a value reads back as that value", () => {
    fc.assert(
      fc.property(anyFinite, (v) => {
        assert.deepEqual(parse(hexText(v)), v);
      }),
      runs(500),
    );
  });

  it("property: a value's exact decimal expansion reads back as that value", () => {
    fc.assert(
      fc.property(anyFinite, (v) => {
        const text = exactDecimal(v);
        fc.pre(text.length < MAX_LONG_DOUBLE_CHARS);
        assert.deepEqual(parse(text), v);
      }),
      runs(300),
    );
  });

  it("property: a decimal midpoint rounds to the even neighbour, and a hair either side to the nearer", () => {
    fc.assert(
      fc.property(
        fc.record({
          significand: fc.bigInt(TOP, ALL_ONES - 1n),
          exponent: fc.integer({ min: -3000, max: MAX_EXPONENT }),
        }),
        ({ significand, exponent }) => {
          const below = ld(false, significand, exponent);
          const above = ld(false, significand + 1n, exponent);
          const mid = exactDecimal(ld(false, 2n * significand + 1n, exponent - 1));
          fc.pre(mid.length + 1 < MAX_LONG_DOUBLE_CHARS);
          assert.deepEqual(parse(mid), significand % 2n === 0n ? below : above);
          const [lower, upper] = mid.includes(".")
            ? [`${mid.slice(0, -1)}4`, `${mid}1`] // an exact dyadic fraction ends in 5
            : [`${BigInt(mid) - 1n}.9`, `${mid}.1`];
          assert.deepEqual(parse(lower), below);
          assert.deepEqual(parse(upper), above);
        },
      ),
      runs(300),
    );
  });
});

describe("long double: add (x87, one rounding)", () => {
  it("adds as redis-server 7.0.15 does", () => {
    assert.equal(incrbyfloat("10.5", "0.1"), "$4\r\n10.6\r\n");
    assert.equal(incrbyfloat("0.1", "0.2"), "$3\r\n0.3\r\n");
    assert.equal(incrbyfloat("1.1", "2.2"), "$3\r\n3.3\r\n");
    assert.equal(incrbyfloat("3.0e3", "5.0e3"), "$4\r\n8000\r\n");
    assert.equal(incrbyfloat("1e17", "0.1"), "$26\r\n100000000000000000.1015625\r\n");
    assert.equal(incrbyfloat("-1e17", "-0.1"), "$27\r\n-100000000000000000.1015625\r\n");
    assert.equal(incrbyfloat("1e18", "0.1"), "$23\r\n1000000000000000000.125\r\n");
    assert.equal(incrbyfloat("1e19", "1"), "$20\r\n10000000000000000001\r\n");
    assert.equal(incrbyfloat("9223372036854775807", "1"), "$19\r\n9223372036854775808\r\n");
    // Ties in the sum go to the even significand: 2^63 + 0.5 stays, (2^63 + 1) + 0.5 goes up.
    assert.equal(incrbyfloat("9223372036854775808", "0.5"), "$19\r\n9223372036854775808\r\n");
    assert.equal(incrbyfloat("9223372036854775809", "0.5"), "$19\r\n9223372036854775810\r\n");
    assert.equal(
      incrbyfloat("1e308", "1e308"),
      "$309\r\n199999999999999999993371759311691291321120199694831134415594095989843469737676123744200253843777" +
        "078640893494450108026446304269499187921167194841628860392837535918200039206381557326219209014213335878" +
        "306791577877829121087126122536729803237260434173178506889763247582601711514636284849020905456510092687" +
        "857156096\r\n",
    );
  });

  it("zeros, infinities and NaN follow IEEE 754", () => {
    const one = finite("1");
    assert.deepEqual(addLongDouble(one, negate(one)), ZERO);
    assert.deepEqual(addLongDouble(finite("-0"), finite("-0")), finite("-0"));
    assert.deepEqual(addLongDouble(finite("-0"), ZERO), ZERO);
    assert.deepEqual(addLongDouble(finite("-0"), one), one);
    const inf = parse("inf")!;
    const minusInf = parse("-inf")!;
    assert.deepEqual(addLongDouble(inf, one), inf);
    assert.deepEqual(addLongDouble(one, minusInf), minusInf);
    assert.deepEqual(addLongDouble(inf, inf), inf);
    assert.deepEqual(addLongDouble(inf, minusInf), { kind: "nan" });
    assert.deepEqual(addLongDouble({ kind: "nan" }, one), { kind: "nan" });
    const max = finite("0x1.fffffffffffffffep16383");
    assert.deepEqual(addLongDouble(max, max), inf);
    // Half an ulp of the largest binade rounds to even: up, past the largest value.
    assert.deepEqual(addLongDouble(max, finite("0x1p16319")), inf);
    assert.deepEqual(addLongDouble(max, finite("0x1p16318")), max);
    const tiny = finite("0x1p-16445");
    assert.deepEqual(addLongDouble(tiny, tiny), ld(false, 2n, MIN_EXPONENT));
    assert.deepEqual(addLongDouble(finite("0x1p-16382"), negate(tiny)), ld(false, TOP - 1n, MIN_EXPONENT));
  });

  it("property: the sum is the representable value nearest the exact sum, ties to even", () => {
    const close = fc
      .tuple(anyFinite, fc.integer({ min: -70, max: 70 }), fc.bigInt(0n, ALL_ONES), fc.boolean())
      .map(([a, shift, significand, negative]) => {
        const exponent = Math.min(Math.max(a.exponent + shift, MIN_EXPONENT), MAX_EXPONENT);
        const s = exponent === MIN_EXPONENT ? significand : significand | TOP;
        return [a, ld(negative, s, exponent)] as const;
      });
    fc.assert(
      fc.property(fc.oneof(fc.tuple(anyFinite, anyFinite), close), ([a, b]) => {
        const r = addLongDouble(a, b);
        // Everything in units of the finest weight in play.
        const e = Math.min(a.exponent, b.exponent, r.kind === "finite" ? r.exponent : MAX_EXPONENT - 1);
        const exact = (v: FiniteLongDouble) =>
          (v.negative ? -v.significand : v.significand) * 2n ** BigInt(v.exponent - e);
        const sum = exact(a) + exact(b);
        if (r.kind !== "finite") {
          assert.equal(r.kind, "infinity");
          // Only a sum at or past LDBL_MAX + half its ulp overflows.
          const limit = (2n * ALL_ONES + 1n) * 2n ** BigInt(MAX_EXPONENT - 1 - e);
          assert.ok((sum < 0n ? -sum : sum) >= limit);
          return;
        }
        const error = exact(r) - sum;
        const halfUlp = 2n ** BigInt(r.exponent - e) / 2n;
        const distance = error < 0n ? -error : error;
        if (r.exponent > e) {
          assert.ok(distance <= halfUlp, "within half an ulp");
          if (distance === halfUlp) assert.equal(r.significand % 2n, 0n, "a tie goes to even");
        } else assert.equal(distance, 0n, "exact where the ulp is the finest of the terms");
        if (sum !== 0n) assert.equal(r.negative, sum < 0n);
        assert.deepEqual(addLongDouble(b, a), r);
      }),
      runs(500),
    );
  });
});

describe("long double: format (%.17Lf, trimmed)", () => {
  it("writes as redis-server 7.0.15 does", () => {
    const f = (text: string) => formatLongDouble(finite(text));
    assert.equal(f("10.5"), "10.5");
    assert.equal(f("3.0e3"), "3000");
    assert.equal(f("5.0e3"), "5000");
    assert.equal(f("123456789.123456789"), "123456789.12345678899873747");
    assert.equal(f("0.3333333333333333333333"), "0.33333333333333333");
    assert.equal(f("1e-17"), "0.00000000000000001");
    assert.equal(f("-1e-17"), "-0.00000000000000001");
    assert.equal(f("2.5e-17"), "0.00000000000000002");
    assert.equal(f("1.5e-17"), "0.00000000000000002");
    // Exact binary ties at the 17th decimal go to even: 2^-18 keeps its 2, 3·2^-18 rounds 7 up.
    assert.equal(f("0x1p-18"), "0.00000381469726562");
    assert.equal(f("0x3p-18"), "0.00001144409179688");
    assert.equal(f("-0x3p-18"), "-0.00001144409179688");
    // Negative zero and negative values that print as zero are written "0".
    assert.equal(f("-0"), "0");
    assert.equal(f("-1e-18"), "0");
    assert.equal(f("1e-4940"), "0");
    const max = (ALL_ONES << BigInt(MAX_EXPONENT)).toString();
    assert.equal(max.length, 4933);
    assert.ok(max.startsWith("118973149535723176502"), "LDBL_MAX ≈ 1.18973149535723176502e4932");
    assert.equal(f("0x1.fffffffffffffffep16383"), max);
    assert.equal(f("-0x1.fffffffffffffffep16383"), `-${max}`);
    assert.ok(max.length + 1 < MAX_LONG_DOUBLE_CHARS, "every finite value's text fits Redis's buffer");
  });

  it("property: equals rounding the exact decimal expansion's digits half to even", () => {
    fc.assert(
      fc.property(anyFinite, (v) => {
        assert.equal(formatLongDouble(v), referenceFormat(exactDecimal(v)));
      }),
      runs(300),
    );
  });
});

/** Texts that reach parse's corners: exact values, long decimals, ties, extremes, refusals. */
const floatText: fc.Arbitrary<string> = fc.oneof(
  anyFinite.map(hexText),
  everyday.map(exactDecimal),
  fc
    .record({
      negative: fc.boolean(),
      digits: fc.stringMatching(/^[0-9]{1,40}$/),
      point: fc.nat(40),
      exponent: fc.oneof(
        fc.integer({ min: -30, max: 30 }),
        fc.integer({ min: -4990, max: 4960 }),
        // Where subnormals, underflow to zero and overflow begin.
        fc.integer({ min: -4990, max: -4920 }),
        fc.integer({ min: 4890, max: 4935 }),
      ),
    })
    .map(({ negative, digits, point, exponent }) => {
      const at = Math.min(point, digits.length);
      const sign = negative ? "-" : "";
      return `${sign}${digits.slice(0, at)}.${digits.slice(at)}${exponent === 0 ? "" : `e${exponent}`}`;
    }),
  fc
    .record({ significand: fc.bigInt(TOP, ALL_ONES - 1n), exponent: fc.integer({ min: -200, max: 100 }) })
    .map(({ significand, exponent }) => exactDecimal(ld(false, 2n * significand + 1n, exponent - 1))),
  fc.constantFrom(
    "0",
    "-0",
    "1",
    "0.1",
    "-0.1",
    "1e17",
    "99999999999999999.99",
    "inf",
    "-inf",
    "nan",
    "1e4932",
    "1.18973149535723176502e4932",
    "1.18973149535723176503e4932",
    "3.6e-4951",
    "1.8e-4951",
    "0x1p-16446",
    "0x1.fffffffffffffffep16383",
    " 1",
    "1e",
    "",
  ),
);

describe("long double vs redis-server (INCRBYFLOAT as the oracle)", () => {
  let server: { port: number; stop: () => Promise<void> };
  let redis: RawRedis;

  before(async () => {
    server = await startRedisServer();
    redis = await connectRaw(server.port);
  });
  after(async () => {
    await redis?.close();
    await server?.stop();
  });

  it("property: a fresh key incremented by a text reads and writes it as Redis does", async () => {
    await fc.assert(
      fc.asyncProperty(floatText, async (text) => {
        await redis.call(["DEL", "k"]);
        const theirs = (await redis.call(["INCRBYFLOAT", "k", text])).toString("latin1");
        assert.equal(incrbyfloat(null, text), theirs, `INCRBYFLOAT k ${JSON.stringify(text)}`);
      }),
      runs(600),
    );
  });

  it("property: a stored text plus an increment sums as Redis does", async () => {
    const pair = fc.oneof(
      fc.tuple(floatText, floatText),
      // Near cancellation: b is about -a, give or take a few ulps of a.
      fc.tuple(anyFinite, fc.bigInt(-1000n, 1000n)).map(([a, d]) => {
        const s = a.significand + d;
        const b = ld(!a.negative, s < 0n ? -s : s > ALL_ONES ? ALL_ONES : s, a.exponent);
        return [hexText(a), hexText(b)] as const;
      }),
    );
    await fc.assert(
      fc.asyncProperty(pair, async ([a, b]) => {
        await redis.call(["SET", "k", a]);
        const theirs = (await redis.call(["INCRBYFLOAT", "k", b])).toString("latin1");
        assert.equal(
          incrbyfloat(a, b),
          theirs,
          `SET k ${JSON.stringify(a)}; INCRBYFLOAT k ${JSON.stringify(b)}`,
        );
      }),
      runs(600),
    );
  });
});
