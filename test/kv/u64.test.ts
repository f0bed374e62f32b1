import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { readU64, writeU64 } from "../../src/kv/u64.js";

const SEED = Number(process.env.RAFTKV_PROPERTY_SEED ?? 424242);

describe("u64 fields", () => {
  it("write the bytes Buffer's 64-bit methods write, for every integer a double holds below 2^64", () => {
    const values = fc.oneof(
      fc.maxSafeNat(),
      fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }).map((b) => Math.min(Number(b), 2 ** 64 - 2048)),
    );
    fc.assert(
      fc.property(values, (v) => {
        const ours = Buffer.alloc(10);
        writeU64(ours, v, 1);
        const theirs = Buffer.alloc(10);
        theirs.writeBigUInt64BE(BigInt(v), 1);
        assert.deepEqual(ours, theirs);
        assert.equal(readU64(ours, 1), v);
      }),
      { seed: SEED, numRuns: 2000 },
    );
    for (const v of [0, 1, 2 ** 32 - 1, 2 ** 32, Number.MAX_SAFE_INTEGER, 2 ** 63]) {
      const b = Buffer.alloc(8);
      writeU64(b, v, 0);
      assert.equal(readU64(b, 0), v);
    }
  });

  it("reads any 8 bytes as Number(readBigUInt64BE) does", () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 8, maxLength: 8 }), (bytes) => {
        const b = Buffer.from(bytes);
        assert.equal(readU64(b, 0), Number(b.readBigUInt64BE(0)));
      }),
      { seed: SEED, numRuns: 2000 },
    );
  });

  it("refuses what is not an integer from 0 below 2^64", () => {
    for (const bad of [-1, 0.5, 2 ** 64, Number.NaN, Number.POSITIVE_INFINITY])
      assert.throws(() => writeU64(Buffer.alloc(8), bad, 0), RangeError);
  });
});
