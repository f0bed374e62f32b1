import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { RaftInvariantError } from "../../src/raft/errors.js";
import { Inflights } from "../../src/raft/tracker/inflights.js";

describe("the inflight window", () => {
  it("is full once it holds maxCount messages, whatever their size", () => {
    const w = new Inflights(3, 0);
    w.add(1, 10);
    w.add(2, 10);
    assert.equal(w.full(), false);
    w.add(3, 10);
    assert.equal(w.full(), true);
    assert.equal(w.length, 3);
    assert.equal(w.totalBytes, 30);
  });

  it("is full once the bytes in flight reach maxBytes, even with message slots free", () => {
    const w = new Inflights(10, 100);
    w.add(1, 60);
    assert.equal(w.full(), false);
    w.add(2, 40);
    assert.equal(w.full(), true, "60 + 40 bytes reach the 100-byte bound");
    assert.equal(w.length, 2);
  });

  it("lets one oversized message in when empty, then counts as full", () => {
    const w = new Inflights(10, 100);
    w.add(1, 500);
    assert.equal(w.full(), true);
  });

  it("treats maxBytes 0 as no byte bound", () => {
    const w = new Inflights(2, 0);
    w.add(1, Number.MAX_SAFE_INTEGER / 4);
    assert.equal(w.full(), false);
  });

  it("freeLE frees every message whose last index is at or below the acknowledged index", () => {
    const w = new Inflights(5, 0);
    w.add(3, 1);
    w.add(5, 2);
    w.add(9, 4);
    w.freeLE(4);
    assert.equal(w.length, 2, "only the message ending at 3 is freed by an ack of 4");
    assert.equal(w.totalBytes, 6);
    w.freeLE(8);
    assert.equal(w.length, 1);
    assert.equal(w.totalBytes, 4);
    w.freeLE(9);
    assert.equal(w.length, 0);
    assert.equal(w.totalBytes, 0);
  });

  it("freeLE below the oldest message frees nothing", () => {
    const w = new Inflights(5, 0);
    w.add(10, 7);
    w.freeLE(9);
    assert.equal(w.length, 1);
    assert.equal(w.totalBytes, 7);
  });

  it("freeing makes room again in a full window, including across the ring's wrap-around", () => {
    const w = new Inflights(3, 0);
    let index = 0;
    for (let i = 0; i < 3; i++) w.add(++index, 1);
    for (let round = 0; round < 10; round++) {
      assert.equal(w.full(), true);
      w.freeLE(index - 2); // the oldest of the three
      assert.equal(w.full(), false);
      assert.equal(w.length, 2);
      w.add(++index, 1);
    }
    w.freeLE(index);
    assert.equal(w.length, 0);
    assert.equal(w.totalBytes, 0);
  });

  it("freeing bytes lifts a byte-bound fullness", () => {
    const w = new Inflights(10, 100);
    w.add(1, 50);
    w.add(2, 50);
    assert.equal(w.full(), true);
    w.freeLE(1);
    assert.equal(w.full(), false);
    assert.equal(w.totalBytes, 50);
  });

  it("freeFirstOne frees only the oldest message", () => {
    const w = new Inflights(3, 100);
    w.add(4, 40);
    w.add(6, 30);
    w.add(9, 30);
    assert.equal(w.full(), true);
    w.freeFirstOne();
    assert.equal(w.length, 2);
    assert.equal(w.totalBytes, 60);
    assert.equal(w.full(), false);
    w.freeLE(5);
    assert.equal(w.length, 2, "the message ending at 4 is already gone");
    w.freeFirstOne();
    w.freeFirstOne();
    w.freeFirstOne(); // on an empty window: nothing to do
    assert.equal(w.length, 0);
    assert.equal(w.totalBytes, 0);
  });

  it("refuses an add when full and an index that does not increase", () => {
    const w = new Inflights(2, 0);
    w.add(5, 1);
    assert.throws(() => w.add(5, 1), RaftInvariantError);
    w.add(6, 1);
    assert.throws(() => w.add(7, 1), RaftInvariantError);
  });

  it("reset empties the window", () => {
    const w = new Inflights(2, 10);
    w.add(1, 5);
    w.add(2, 5);
    w.reset();
    assert.equal(w.length, 0);
    assert.equal(w.totalBytes, 0);
    assert.equal(w.full(), false);
    w.add(1, 5); // indexes may start over after a reset
    assert.equal(w.length, 1);
  });
});
