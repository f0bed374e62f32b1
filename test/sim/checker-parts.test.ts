/**
 * The checker's parts on their own: the recorder, history validation, the shrinker, the culprit, the
 * support of answers, and the memo of dead states.
 */

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { findCulprit } from "../../src/sim/checker/culprit.js";
import { ExploredStates } from "../../src/sim/checker/explored.js";
import {
  checkLinearizable,
  HistoryRecorder,
  INDETERMINATE,
  InvalidHistoryError,
  type Operation,
  type ViolationResult,
  validateHistory,
} from "../../src/sim/checker/index.js";
import { type CandidateVerdict, shrinkFailing } from "../../src/sim/checker/shrink.js";
import {
  answerSupport,
  OVERWRITTEN,
  SUPPORTED,
  UNWRITTEN,
  WRITTEN_LATER,
} from "../../src/sim/checker/sources.js";
import { append, del, get, historyOf, put } from "./helpers/history-dsl.js";

describe("HistoryRecorder", () => {
  it("records calls and their answers, and leaves calls still waiting indeterminate", () => {
    const r = new HistoryRecorder();
    const w = r.invoke(1, { f: "put", input: { key: "x", value: "a" } }, 0);
    const g = r.invoke(2, { f: "get", input: { key: "x" } }, 1);
    const lost = r.invoke(3, { f: "append", input: { key: "x", suffix: "b" } }, 2);
    const refused = r.invoke(4, { f: "delete", input: { key: "x" } }, 3);
    r.returned(w, null, 5);
    r.returned(g, "a", 6);
    r.failed(refused);
    const pending = r.invoke(5, { f: "cas", input: { key: "x", expected: "a", value: "c" } }, 7);
    const history = r.history();
    assert.deepEqual(
      history.map((op) => [op.id, op.f, op.completion === INDETERMINATE ? "?" : op.completion.ok]),
      [
        [w, "put", true],
        [g, "get", true],
        [lost, "append", "?"],
        [refused, "delete", false],
        [pending, "cas", "?"],
      ],
    );
    assert.equal(checkLinearizable(history).verdict, "linearizable");
  });

  it("refuses an answer of the wrong type, a second answer, and an answer before the call", () => {
    const r = new HistoryRecorder();
    const g = r.invoke(1, { f: "get", input: { key: "x" } }, 0);
    assert.throws(() => r.returned(g, true, 1), /get must return a string or null/);
    assert.throws(() => r.returned(g, "a", 0), /not after its call/);
    r.returned(g, "a", 1);
    assert.throws(() => r.returned(g, "a", 2), /completed twice/);
    assert.throws(() => r.indeterminate(42), /no such operation/);
  });
});

describe("validateHistory", () => {
  const valid = historyOf(put(1, "x", "a", 0, 1));

  it("accepts a well-formed history", () => {
    assert.doesNotThrow(() => validateHistory(valid));
  });

  const broken: [string, unknown, RegExp][] = [
    ["a non-integer id", [{ ...valid[0], id: 1.5 }], /not an integer/],
    ["a missing client", [{ ...valid[0], client: undefined }], /client must be/],
    ["an infinite call time", [{ ...valid[0], invokedAt: Number.POSITIVE_INFINITY }], /invokedAt/],
    ["an unknown function", [{ ...valid[0], f: "incr" }], /unknown operation "incr"/],
    ["a key that is not a string", [{ ...valid[0], input: { key: 7, value: "a" } }], /input.key/],
    ["a completion of another shape", [{ ...valid[0], completion: "lost" }], /completion must be/],
    [
      "an answer before the call",
      [{ ...valid[0], completion: { ok: true, output: null, at: -1 } }],
      /not after its invocation/,
    ],
    [
      "a delete answering a string",
      [{ ...valid[0], f: "delete", completion: { ok: true, output: "yes", at: 1 } }],
      /boolean/,
    ],
  ];
  for (const [what, history, message] of broken) {
    it(`refuses ${what}`, () => {
      assert.throws(
        () => validateHistory(history as Operation[]),
        (e: unknown) => e instanceof InvalidHistoryError && message.test(e.message),
      );
    });
  }
});

describe("shrinkFailing", () => {
  const failsWith =
    (...needed: number[]) =>
    (candidate: readonly number[]): CandidateVerdict =>
      needed.every((n) => candidate.includes(n)) ? "fails" : "passes";
  const items = Array.from({ length: 40 }, (_, i) => i);

  it("finds the items a failure needs, and knows the result is 1-minimal", () => {
    const r = shrinkFailing(items, failsWith(3, 17, 38), 1000);
    assert.deepEqual(r.items, [3, 17, 38]);
    assert.equal(r.complete, true);
    assert.ok(r.checks < 100, `${r.checks} checks`);
  });

  it("says so when it ran out of checks, or a check could not tell", () => {
    assert.equal(shrinkFailing(items, failsWith(3, 17), 5).complete, false);
    const undecided = (c: readonly number[]): CandidateVerdict =>
      c.length === 39 ? "unknown" : failsWith(3)(c);
    const r = shrinkFailing(items.slice(0, 2), undecided, 100);
    assert.equal(r.complete, true, "the last pass was decided");
    const stuck = shrinkFailing([1, 3], (c) => (c.includes(3) && c.length === 1 ? "unknown" : "passes"), 100);
    assert.equal(stuck.complete, false);
  });

  it("removes with an item whatever `close` says goes with it", () => {
    // 10 depends on 5: taking 5 out takes 10 out too.
    const close = (c: readonly number[]) => (c.includes(5) ? c.slice() : c.filter((n) => n !== 10));
    const r = shrinkFailing(items, failsWith(20), 1000, close);
    assert.deepEqual(r.items, [20]);
  });
});

describe("the culprit", () => {
  it("is the first answer that no order can explain", () => {
    const h = historyOf(
      put(1, "x", "a", 0, 1),
      put(1, "x", "b", 2, 3),
      get(2, "x", 4, 6, "a"), // stale: the culprit
      get(3, "x", 5, 7, "zzz"), // impossible too, but it returns later
    );
    const fails = (ops: readonly Operation[]) =>
      checkLinearizable(ops, { shrink: "none" }).verdict === "violation";
    assert.equal(findCulprit(h, fails)?.id, 3);
    assert.equal((checkLinearizable(h) as ViolationResult).culprit?.id, 3);
  });

  it("ties in return time are broken by id, whatever order the operations come in", () => {
    const h = historyOf(get(1, "x", 0, 5, "a"), get(2, "x", 0, 5, "b"));
    const fails = (ops: readonly Operation[]) =>
      checkLinearizable(ops, { shrink: "none" }).verdict === "violation";
    assert.equal(findCulprit(h, fails)?.id, 1);
    assert.equal(findCulprit(h.slice().reverse(), fails)?.id, 1);
  });
});

describe("answerSupport", () => {
  it("grades how well the rest of a history explains each answer", () => {
    const h = historyOf(
      put(1, "x", "a", 0, 1), // 1
      get(2, "x", 2, 3, "a"), // 2: supported
      put(1, "x", "b", 4, 5), // 3
      get(2, "x", 6, 7, "a"), // 4: "a" was overwritten by #3 before it began
      get(2, "x", 8, 9, "c"), // 5: "c" is written only later
      put(3, "x", "c", 10, 11), // 6
      get(2, "x", 12, 13, "d"), // 7: nobody writes "d"
      del(1, "x", 14, 15, true), // 8: supported (the key is present)
      append(1, "x", "s", 16, 17, "s"), // 9: supported (the delete made it absent)
    );
    const support = answerSupport(h, null);
    assert.deepEqual(
      [2, 4, 5, 7, 8, 9].map((id) => support.get(id)?.level),
      [SUPPORTED, OVERWRITTEN, WRITTEN_LATER, UNWRITTEN, SUPPORTED, SUPPORTED],
    );
    assert.equal(support.get(4)?.overwrittenBy?.id, 3);
  });
});

describe("ExploredStates", () => {
  const h = (a: number, b: number) => ({ a, b });

  it("treats a state as dead when a dead one had the same answered set, the same value and fewer unanswered", () => {
    const memo = new ExploredStates(1, 1);
    const answered = Uint32Array.of(0b101);
    memo.add(answered, Uint32Array.of(0b01), h(7, 9), h(1, 2), 3);
    assert.ok(memo.covers(answered, Uint32Array.of(0b01), h(7, 9), h(1, 2), 3), "the same state");
    assert.ok(memo.covers(answered, Uint32Array.of(0b11), h(7, 9), h(5, 6), 3), "more unanswered placed");
    assert.ok(!memo.covers(answered, Uint32Array.of(0b10), h(7, 9), h(4, 4), 3), "other unanswered placed");
    assert.ok(!memo.covers(answered, Uint32Array.of(0b01), h(7, 9), h(1, 2), 4), "another value");
    assert.ok(
      !memo.covers(Uint32Array.of(0b111), Uint32Array.of(0b01), h(8, 9), h(1, 2), 3),
      "other answered",
    );
  });

  it("grows without losing entries", () => {
    const memo = new ExploredStates(2, 0, 16);
    const none = new Uint32Array(0);
    for (let i = 0; i < 5000; i++)
      memo.add(Uint32Array.of(i, i * 7), none, h(i * 31, i * 17), h(0, 0), i % 5);
    assert.equal(memo.size, 5000);
    for (let i = 0; i < 5000; i += 97) {
      assert.ok(memo.covers(Uint32Array.of(i, i * 7), none, h(i * 31, i * 17), h(0, 0), i % 5));
    }
  });
});
