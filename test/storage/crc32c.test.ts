import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { crc32c } from "../../src/storage/crc32c.js";

/** Bit-at-a-time reference, straight from the definition. */
function reference(buf: Uint8Array): number {
  let c = 0xffffffff;
  for (const b of buf) {
    c ^= b;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
  }
  return ~c >>> 0;
}

describe("crc32c", () => {
  it("matches the published check value and test vectors", () => {
    assert.equal(crc32c(new TextEncoder().encode("123456789")), 0xe3069283);
    assert.equal(crc32c(new Uint8Array(32)), 0x8a9136aa); // RFC 3720 B.4: 32 bytes of zeroes
    assert.equal(crc32c(new Uint8Array(32).fill(0xff)), 0x62a8ab43); // RFC 3720 B.4: 32 bytes of 0xff
    assert.equal(crc32c(new Uint8Array(0)), 0);
  });

  it("agrees with the bit-at-a-time definition for every length and alignment up to 64", () => {
    const buf = new Uint8Array(80);
    let x = 12345;
    for (let i = 0; i < buf.length; i++) buf[i] = x = (x * 1103515245 + 12345) & 0xff;
    for (let start = 0; start < 8; start++) {
      for (let len = 0; start + len <= 72; len++) {
        assert.equal(crc32c(buf, 0, start, start + len), reference(buf.subarray(start, start + len)));
      }
    }
  });

  it("can be computed over pieces", () => {
    const buf = new TextEncoder().encode("the quick brown fox jumps over the lazy dog");
    const whole = crc32c(buf);
    for (let cut = 0; cut <= buf.length; cut++) assert.equal(crc32c(buf, crc32c(buf, 0, 0, cut), cut), whole);
  });
});

describe("crc32c implementations", () => {
  it("the native and the portable implementation agree on every length, offset and running value", async () => {
    const { crc32cPortable, crc32cImplementation } = await import("../../src/storage/crc32c.js");
    assert.equal(crc32cImplementation, "native", "the prebuilt native CRC is installed on this platform");
    const buf = new Uint8Array(4096);
    let x = 7;
    for (let i = 0; i < buf.length; i++) buf[i] = x = (x * 1103515245 + 12345) & 0xff;
    for (const [start, end] of [
      [0, 4096],
      [3, 4000],
      [64, 128],
      [1, 65],
      [100, 3333],
    ] as const) {
      for (const seed of [0, 0xdeadbeef]) {
        assert.equal(
          crc32c(buf, seed, start, end),
          crc32cPortable(buf, seed, start, end),
          `[${start}, ${end}) seed ${seed}`,
        );
      }
    }
  });
});
