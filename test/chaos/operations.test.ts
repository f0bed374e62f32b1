import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { RespReply } from "../../src/api/redis/resp/reply-parser.js";
import { KeySpace } from "../../src/chaos/key-space.js";
import { commandsFor, interpretReplies, nextCall } from "../../src/chaos/operations.js";
import { SeededRandom } from "../../src/raft/rand.js";
import type { KvCall } from "../../src/sim/checker/index.js";

const status = (text: string): RespReply => ({ type: "status", text });
const err = (text: string): RespReply => ({ type: "error", text });
const int = (value: bigint): RespReply => ({ type: "integer", value });
const bulk = (text: string | null): RespReply => ({
  type: "bulk",
  value: text === null ? null : Buffer.from(text),
});
const array = (items: RespReply[] | null): RespReply => ({ type: "array", items });

const put: KvCall = { f: "put", input: { key: "k", value: "v1.1" } };
const get: KvCall = { f: "get", input: { key: "k" } };
const del: KvCall = { f: "delete", input: { key: "k" } };
const cas: KvCall = { f: "cas", input: { key: "k", expected: null, value: "n1.2" } };
const append: KvCall = { f: "append", input: { key: "k", suffix: "+1.3" } };

describe("chaos operations", () => {
  it("map each call to the Redis commands that do exactly it", () => {
    assert.deepEqual(commandsFor(put), [["SET", "k", "v1.1"]]);
    assert.deepEqual(commandsFor(get), [["GET", "k"]]);
    assert.deepEqual(commandsFor(del), [["DEL", "k"]]);
    assert.deepEqual(commandsFor(cas), [["SET", "k", "n1.2", "NX"]]);
    assert.deepEqual(commandsFor(append), [["MULTI"], ["APPEND", "k", "+1.3"], ["GET", "k"], ["EXEC"]]);
    assert.throws(
      () => commandsFor({ f: "cas", input: { key: "k", expected: "x", value: "y" } }),
      RangeError,
    );
  });

  it("read each reply as the checker's output", () => {
    const output = (call: KvCall, replies: RespReply[]) => {
      const o = interpretReplies(call, replies);
      assert.equal(o.kind, "ok", JSON.stringify(o));
      return o.kind === "ok" ? o.output : undefined;
    };
    assert.equal(output(put, [status("OK")]), null);
    assert.equal(output(get, [bulk("v")]), "v");
    assert.equal(output(get, [bulk(null)]), null);
    assert.equal(output(del, [int(1n)]), true);
    assert.equal(output(del, [int(0n)]), false);
    assert.equal(output(cas, [status("OK")]), true);
    assert.equal(output(cas, [bulk(null)]), false);
    const queued = [status("OK"), status("QUEUED"), status("QUEUED")];
    assert.equal(output(append, [...queued, array([int(8n), bulk("v1.1+1.3")])]), "v1.1+1.3");
  });

  it("count a write as not applied only when the node refused it before raft", () => {
    const kind = (call: KvCall, replies: RespReply[]) => interpretReplies(call, replies).kind;
    assert.equal(kind(put, [err("NOTLEADER no leader is known yet; retry shortly")]), "failed");
    assert.equal(kind(put, [err("ERR proposal refused: leader transfer in progress")]), "failed");
    for (const text of [
      "TRYAGAIN the write was forwarded to the leader and not seen applied within 5000 ms",
      "TRYAGAIN leadership was lost before the request completed",
      "ERR internal error: boom",
      "ERR the engine is closed",
    ]) {
      assert.equal(kind(put, [err(text)]), "indeterminate", text);
      assert.equal(kind(del, [err(text)]), "indeterminate", text);
      assert.equal(kind(get, [err(text)]), "failed", text);
    }
    const queued = [status("OK"), status("QUEUED"), status("QUEUED")];
    assert.equal(kind(append, [...queued, array([err("TRYAGAIN x"), err("TRYAGAIN x")])]), "indeterminate");
    assert.equal(kind(append, [...queued, array([err("NOTLEADER x"), err("NOTLEADER x")])]), "failed");
  });

  it("flag replies no correct server gives", () => {
    const kind = (call: KvCall, replies: RespReply[]) => interpretReplies(call, replies).kind;
    assert.equal(
      kind(put, [err("WRONGTYPE Operation against a key holding the wrong kind of value")]),
      "unexpected",
    );
    assert.equal(kind(put, [bulk("OK")]), "unexpected");
    assert.equal(kind(del, [int(2n)]), "unexpected");
    assert.equal(kind(cas, [status("QUEUED")]), "unexpected");
    assert.equal(kind(get, [status("OK"), status("OK")]), "unexpected");
    const queued = [status("OK"), status("QUEUED"), status("QUEUED")];
    // APPEND's length must be the length of the value GET read in the same transaction.
    assert.equal(kind(append, [...queued, array([int(3n), bulk("v1.1+1.3")])]), "unexpected");
    assert.equal(kind(append, [...queued, err("EXECABORT Transaction discarded")]), "unexpected");
    assert.equal(kind(append, [...queued, array(null)]), "unexpected");
  });

  it("draw every function, with values unique to the client and sequence number", () => {
    const random = new SeededRandom(5);
    const seen = new Set<string>();
    const written = new Set<string>();
    for (let seq = 1; seq <= 500; seq++) {
      const call = nextCall(random, "a", 3, seq);
      assert.equal(call.input.key, "a");
      seen.add(call.f);
      const value =
        call.f === "put" || call.f === "cas"
          ? call.input.value
          : call.f === "append"
            ? call.input.suffix
            : null;
      if (value !== null) {
        assert.ok(value.endsWith(`3.${seq}`));
        assert.ok(!written.has(value));
        written.add(value);
      }
    }
    assert.deepEqual([...seen].sort(), ["append", "cas", "delete", "get", "put"]);
  });
});

describe("chaos key space", () => {
  it("draws from the live generation's keys and remembers every key drawn", () => {
    const keys = new KeySpace(3, 1_000);
    const random = new SeededRandom(9);
    const early = new Set(Array.from({ length: 60 }, () => keys.pick(random, 999)));
    assert.deepEqual([...early].sort(), ["g0:k0", "g0:k1", "g0:k2"]);
    assert.match(keys.pick(random, 2_500), /^g2:k[012]$/);
    assert.equal(keys.usedKeys().length, 4);
    assert.deepEqual(keys.usedKeys().slice(0, 3), ["g0:k0", "g0:k1", "g0:k2"]);
    assert.throws(() => new KeySpace(0, 1_000), RangeError);
    assert.throws(() => new KeySpace(1, 0), RangeError);
  });
});
