import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { parseTimeoutMs } from "../../src/kv/exec/pops.js";
import type { Reply } from "../../src/kv/reply.js";
import { kvMachine } from "../helpers/kv-machine.js";
import { tempDirs } from "../helpers/temp-dirs.js";

const tempDir = tempDirs("raftkv-pops-");

/** A reply as nested plain values: bulk → string, null → null, error → "!message". */
const plain = (r: Reply): unknown => {
  switch (r.k) {
    case "bulk":
      return r.v.toString();
    case "double":
    case "status":
      return r.v;
    case "int":
      return Number(r.v);
    case "nil":
    case "nilArray":
      return null;
    case "error":
      return `!${r.v}`;
    case "array":
      return r.v.map(plain);
    default:
      return r.k;
  }
};

async function machine() {
  const k = await kvMachine(tempDir(), 1000);
  return { store: k.store, items: k.itemsOf, run: async (...args: string[]) => plain(await k.run(...args)) };
}

describe("multi-key and blocking pops in the log", () => {
  it("LMPOP and ZMPOP take from the first non-empty key, up to COUNT, and delete what they empty", async () => {
    const { store, run, items } = await machine();
    await run("RPUSH", "l2", "a", "b", "c");
    await run("ZADD", "z2", "1", "x", "2", "y", "3", "w");
    assert.deepEqual(await run("LMPOP", "2", "l1", "l2", "LEFT"), ["l2", ["a"]]);
    assert.deepEqual(await run("LMPOP", "2", "l1", "l2", "right", "COUNT", "5"), ["l2", ["c", "b"]]);
    assert.equal(await run("EXISTS", "l2"), 0);
    assert.equal(items("l2"), 0);
    assert.deepEqual(await run("LMPOP", "1", "l2", "LEFT"), null);
    assert.deepEqual(await run("ZMPOP", "2", "z1", "z2", "MAX", "COUNT", "2"), [
      "z2",
      [
        ["w", "3"],
        ["y", "2"],
      ],
    ]);
    assert.deepEqual(await run("ZMPOP", "1", "z2", "min", "count", "99999999999"), ["z2", [["x", "1"]]]);
    assert.equal(await run("EXISTS", "z2"), 0);
    await store.close();
  });

  it("LMPOP and ZMPOP refuse what Redis refuses, with its words", async () => {
    const { store, run } = await machine();
    await run("SET", "s", "x");
    await run("RPUSH", "l", "a");
    const numkeys = "!ERR numkeys should be greater than 0";
    const count = "!ERR count should be greater than 0";
    const syntax = "!ERR syntax error";
    const cases: Array<[string[], unknown]> = [
      [["LMPOP", "0", "l", "LEFT"], numkeys],
      [["LMPOP", "-1", "l", "LEFT"], numkeys],
      [["LMPOP", "99999999999999999999", "l", "LEFT"], numkeys],
      [["LMPOP", "2", "l", "LEFT"], syntax],
      [["LMPOP", "99999999999", "l", "LEFT"], syntax],
      [["LMPOP", "1", "l", "MIDDLE"], syntax],
      [["LMPOP", "1", "l", "LEFT", "COUNT", "0"], count],
      [["LMPOP", "1", "l", "LEFT", "COUNT", "x"], count],
      [["LMPOP", "1", "l", "LEFT", "COUNT", "2", "COUNT", "3"], syntax],
      [["LMPOP", "1", "l", "LEFT", "COUNT"], syntax],
      [["LMPOP", "1", "l", "LEFT", "EXTRA"], syntax],
      [
        ["LMPOP", "2", "nokey", "s", "LEFT"],
        "!WRONGTYPE Operation against a key holding the wrong kind of value",
      ],
      [["ZMPOP", "1", "l", "MIN"], "!WRONGTYPE Operation against a key holding the wrong kind of value"],
      [["ZMPOP", "1", "z", "LEFT"], syntax],
      [["ZMPOP", "1", "z", "MAX", "COUNT", "-1"], count],
    ];
    for (const [cmd, want] of cases) assert.deepEqual(await run(...cmd), want, cmd.join(" "));
    assert.deepEqual(await run("LRANGE", "l", "0", "-1"), ["a"]);
    await store.close();
  });

  it("the blocking pops take what is there, or answer null as Redis does inside MULTI", async () => {
    const { store, run } = await machine();
    await run("RPUSH", "l", "a", "b");
    await run("ZADD", "z", "1", "x", "2", "y");
    assert.deepEqual(await run("BLPOP", "none", "l", "0"), ["l", "a"]);
    assert.deepEqual(await run("BRPOP", "l", "0.5"), ["l", "b"]);
    assert.equal(await run("BLPOP", "l", "0"), null);
    assert.deepEqual(await run("BZPOPMAX", "none", "z", "1"), ["z", "y", "2"]);
    assert.deepEqual(await run("BZPOPMIN", "z", "1"), ["z", "x", "1"]);
    assert.equal(await run("BZPOPMIN", "z", "1"), null);
    await run("RPUSH", "src", "1", "2", "3");
    assert.equal(await run("BRPOPLPUSH", "src", "dst", "0"), "3");
    assert.equal(await run("BLMOVE", "src", "dst", "LEFT", "RIGHT", "0"), "1");
    assert.deepEqual(await run("LRANGE", "dst", "0", "-1"), ["3", "1"]);
    assert.deepEqual(await run("BLMPOP", "0", "2", "none", "src", "RIGHT", "COUNT", "3"), ["src", ["2"]]);
    // A null bulk for the moves (as Redis answers them in MULTI), a null array for the others.
    const k = await kvMachine(tempDir(), 1000);
    assert.deepEqual(await k.run("BRPOPLPUSH", "src", "dst", "0"), { k: "nil" });
    assert.deepEqual(await k.run("BLMOVE", "src", "dst", "LEFT", "LEFT", "0"), { k: "nil" });
    assert.deepEqual(await k.run("BLPOP", "src", "0"), { k: "nilArray" });
    assert.deepEqual(await k.run("BZMPOP", "1", "1", "z", "MIN"), { k: "nilArray" });
    await k.store.close();
    await run("SET", "s", "x");
    const wrongType = "!WRONGTYPE Operation against a key holding the wrong kind of value";
    assert.equal(await run("BLPOP", "none", "s", "0"), wrongType);
    assert.equal(await run("BZPOPMIN", "s", "0"), wrongType);
    assert.equal(await run("BLPOP", "s", "-1"), "!ERR timeout is negative");
    assert.equal(await run("BLMOVE", "src", "dst", "UP", "LEFT", "x"), "!ERR syntax error");
    assert.equal(await run("BLMPOP", "-1", "1", "l", "LEFT"), "!ERR timeout is negative");
    assert.equal(await run("BLMPOP", "0", "0", "l", "LEFT"), "!ERR numkeys should be greater than 0");
    // As Redis: BLMPOP and BZMPOP read what follows the timeout before the timeout.
    assert.equal(await run("BLMPOP", "-1", "0", "l", "LEFT"), "!ERR numkeys should be greater than 0");
    assert.equal(await run("BZMPOP", "x", "1", "z", "LEFT"), "!ERR syntax error");
    assert.equal(await run("BZMPOP", "x", "1", "s", "MIN"), "!ERR timeout is not a float or out of range");
    await store.close();
  });

  it("timeouts are read as Redis reads them: seconds as a long double, times 1,000, rounded up", () => {
    const ms = (t: string) => {
      const r = parseTimeoutMs(Buffer.from(t));
      return typeof r === "number" ? r : r.k === "error" ? r.v : r.k;
    };
    assert.equal(ms("0"), 0);
    assert.equal(ms("1"), 1000);
    assert.equal(ms("0.05"), 50);
    assert.equal(ms("1.5e1"), 15000);
    assert.equal(ms("0x10"), 16000);
    // Checked against redis-server 7.0: 0.001 and 0.0001 time out at once, -0.001 blocks for ever.
    assert.equal(ms("0.001"), 1);
    assert.equal(ms("0.0001"), 1);
    assert.equal(ms("0.0011"), 2);
    assert.equal(ms("-0.0001"), 0);
    assert.equal(ms("-0.001"), 0);
    assert.equal(ms("-0"), 0);
    assert.equal(ms("9223372036854775"), 9223372036854775000);
    for (const t of ["-1", "-0.0011", "inf", "-inf", "1e20", "9223372036854776"])
      assert.equal(ms(t), "ERR timeout is negative", t);
    for (const t of ["nan", "abc", "", " 1", "1 "])
      assert.equal(ms(t), "ERR timeout is not a float or out of range", t);
  });
});
