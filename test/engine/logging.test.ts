import assert from "node:assert/strict";
import { Writable } from "node:stream";
import { describe, it } from "node:test";
import { nodeLogger } from "../../src/engine/logging.js";

describe("JSON logs", () => {
  it("write one JSON object per line with the node id, level, message and fields", async () => {
    const lines: string[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _enc, done) {
        lines.push(...chunk.toString().split("\n").filter(Boolean));
        done();
      },
    });
    const log = nodeLogger(7, { level: "debug", destination: sink });
    log.warn("snapshot unanswered; retrying", { peer: 3, index: 120, payload_bytes: 4096 });
    log.debug("detail");
    await new Promise((r) => setImmediate(r));
    const first = JSON.parse(lines[0]!) as Record<string, unknown>;
    assert.equal(first.node, 7);
    assert.equal(first.msg, "snapshot unanswered; retrying");
    assert.equal(first.peer, 3);
    assert.equal(first.payload_bytes, 4096);
    assert.equal(first.level, 40);
    assert.equal(lines.length, 2);
  });
});
