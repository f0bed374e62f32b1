/**
 * The linearizability checker on hand-written histories: each test is a small story of clients and
 * times whose verdict can be checked by hand. Generated histories, a brute-force reference and the
 * checker's parts are tested in the other checker-*.test.ts files.
 */

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  type CheckOptions,
  type CheckResult,
  checkLinearizable,
  type History,
  InvalidCheckOptionError,
  InvalidHistoryError,
  type Operation,
  type UnknownResult,
  type ViolationResult,
} from "../../src/sim/checker/index.js";
import { append, cas, del, get, historyOf, put, type Spec } from "./helpers/history-dsl.js";

function verdict(history: History, options?: CheckOptions): CheckResult["verdict"] {
  return checkLinearizable(history, options).verdict;
}

function violation(history: History, options?: CheckOptions): ViolationResult {
  const result = checkLinearizable(history, options);
  assert.equal(result.verdict, "violation", result.verdict === "unknown" ? result.explanation : "");
  return result as ViolationResult;
}

describe("reads and writes", () => {
  it("a read concurrent with a write may see the old value or the new one", () => {
    for (const seen of ["a", "b"]) {
      const h = historyOf(put(1, "x", "a", 0, 5), put(1, "x", "b", 10, 20), get(2, "x", 12, 18, seen));
      assert.equal(verdict(h), "linearizable", `read of ${seen}`);
    }
  });

  it("a read concurrent with a write never sees a value nobody wrote", () => {
    const h = historyOf(put(1, "x", "a", 0, 5), put(1, "x", "b", 10, 20), get(2, "x", 12, 18, "c"));
    assert.equal(verdict(h), "violation");
  });

  it("a read after a completed write that returns the older value is stale", () => {
    const h = historyOf(put(1, "x", "a", 0, 1), put(1, "x", "b", 2, 3), get(2, "x", 4, 5, "a"));
    const v = violation(h);
    assert.deepEqual(
      v.minimal.map((op) => op.id),
      [1, 2, 3],
    );
    assert.equal(v.culprit?.id, 3);
  });

  it("two reads in sequence cannot see a concurrent write's value and then the old one", () => {
    const write = put(1, "x", "b", 2, 20);
    const newThenOld = historyOf(
      put(1, "x", "a", 0, 1),
      write,
      get(2, "x", 3, 5, "b"),
      get(2, "x", 6, 8, "a"),
    );
    const oldThenNew = historyOf(
      put(1, "x", "a", 0, 1),
      write,
      get(2, "x", 3, 5, "a"),
      get(2, "x", 6, 8, "b"),
    );
    assert.equal(verdict(newThenOld), "violation");
    assert.equal(verdict(oldThenNew), "linearizable");
  });

  it("two overlapping reads may see a concurrent write in either order", () => {
    const h = historyOf(
      put(1, "x", "a", 0, 1),
      put(1, "x", "b", 2, 20),
      get(2, "x", 3, 10, "b"),
      get(3, "x", 4, 12, "a"),
    );
    assert.equal(verdict(h), "linearizable");
  });

  it("a read of a key never written returns null, and nothing else", () => {
    assert.equal(verdict(historyOf(get(1, "x", 0, 1, null))), "linearizable");
    assert.equal(verdict(historyOf(get(1, "x", 0, 1, "a"))), "violation");
  });

  it("an operation returning at the very time another is invoked counts as concurrent with it", () => {
    // Timestamps that tie prove no order, so the checker does not assume one.
    const h = historyOf(put(1, "x", "a", 0, 5), get(2, "x", 5, 6, null));
    assert.equal(verdict(h), "linearizable");
    const later = historyOf(put(1, "x", "a", 0, 5), get(2, "x", 5.5, 6, null));
    assert.equal(verdict(later), "violation");
  });

  it("starts each key from its initial value when one is given", () => {
    const h = historyOf(get(1, "x", 0, 1, "seed"), get(1, "y", 0, 1, null));
    assert.equal(verdict(h), "violation");
    assert.equal(verdict(h, { initialValues: { x: "seed" } }), "linearizable");
  });
});

describe("operations without an answer (indeterminate)", () => {
  it("an unanswered write that took effect: a later read sees it", () => {
    const h = historyOf(put(1, "x", "a", 0, 1), put(1, "x", "b", 2, "?"), get(2, "x", 10, 11, "b"));
    assert.equal(verdict(h), "linearizable");
  });

  it("an unanswered write that did not take effect: no read ever sees it", () => {
    const h = historyOf(
      put(1, "x", "a", 0, 1),
      put(1, "x", "b", 2, "?"),
      get(2, "x", 10, 11, "a"),
      get(2, "x", 20, 21, "a"),
    );
    assert.equal(verdict(h), "linearizable");
  });

  it("an unanswered write may take effect long after its client gave up on it", () => {
    const h = historyOf(
      put(1, "x", "a", 0, 1),
      put(1, "x", "b", 2, "?"),
      get(2, "x", 50, 51, "a"),
      get(2, "x", 100, 101, "b"),
    );
    assert.equal(verdict(h), "linearizable");
  });

  it("an unanswered write cannot be seen and then unseen", () => {
    const h = historyOf(
      put(1, "x", "a", 0, 1),
      put(1, "x", "b", 2, "?"),
      get(2, "x", 5, 6, "b"),
      get(2, "x", 7, 8, "a"),
    );
    const v = violation(h);
    assert.deepEqual(v.minimal.map((op) => op.id).sort(), [1, 2, 3, 4]);
    assert.equal(v.culprit?.id, 4);
  });

  it("an unanswered write cannot take effect before it was invoked", () => {
    const h = historyOf(get(1, "x", 0, 1, "b"), put(2, "x", "b", 2, "?"));
    assert.equal(verdict(h), "violation");
  });

  it("a write that definitely failed never took effect", () => {
    const h = historyOf(put(1, "x", "a", 0, 1), put(1, "x", "b", 2, "fail"), get(2, "x", 10, 11, "b"));
    assert.equal(verdict(h), "violation");
    const unseen = historyOf(put(1, "x", "a", 0, 1), put(1, "x", "b", 2, "fail"), get(2, "x", 10, 11, "a"));
    assert.equal(verdict(unseen), "linearizable");
  });

  it("an unanswered read says nothing", () => {
    assert.equal(verdict(historyOf(put(1, "x", "a", 0, 1), get(2, "x", 2, "?", "zzz"))), "linearizable");
  });
});

describe("compare-and-set", () => {
  it("succeeds exactly when the key holds the expected value", () => {
    assert.equal(
      verdict(historyOf(put(1, "x", "a", 0, 1), cas(1, "x", "a", "b", 2, 3, true), get(1, "x", 4, 5, "b"))),
      "linearizable",
    );
    assert.equal(verdict(historyOf(put(1, "x", "a", 0, 1), cas(1, "x", "a", "b", 2, 3, false))), "violation");
    assert.equal(verdict(historyOf(put(1, "x", "a", 0, 1), cas(1, "x", "z", "b", 2, 3, true))), "violation");
  });

  it("a failed swap changes nothing", () => {
    const h = historyOf(put(1, "x", "a", 0, 1), cas(1, "x", "z", "b", 2, 3, false), get(1, "x", 4, 5, "a"));
    assert.equal(verdict(h), "linearizable");
    const changed = historyOf(
      put(1, "x", "a", 0, 1),
      cas(1, "x", "z", "b", 2, 3, false),
      get(1, "x", 4, 5, "b"),
    );
    assert.equal(verdict(changed), "violation");
  });

  it("expecting null means expecting the key absent", () => {
    assert.equal(
      verdict(historyOf(cas(1, "x", null, "a", 0, 1, true), get(1, "x", 2, 3, "a"))),
      "linearizable",
    );
    assert.equal(verdict(historyOf(put(1, "x", "", 0, 1), cas(1, "x", null, "a", 2, 3, true))), "violation");
  });

  it("two concurrent swaps from the same value cannot both succeed", () => {
    const both = historyOf(
      put(1, "x", "a", 0, 1),
      cas(2, "x", "a", "b", 2, 10, true),
      cas(3, "x", "a", "c", 3, 9, true),
    );
    assert.equal(verdict(both), "violation");
    const one = historyOf(
      put(1, "x", "a", 0, 1),
      cas(2, "x", "a", "b", 2, 10, true),
      cas(3, "x", "a", "c", 3, 9, false),
    );
    assert.equal(verdict(one), "linearizable");
  });

  it("an unanswered swap may or may not have swapped", () => {
    const swapped = historyOf(put(1, "x", "a", 0, 1), cas(2, "x", "a", "b", 2, "?"), get(1, "x", 5, 6, "b"));
    const notSwapped = historyOf(
      put(1, "x", "a", 0, 1),
      cas(2, "x", "a", "b", 2, "?"),
      get(1, "x", 5, 6, "a"),
    );
    assert.equal(verdict(swapped), "linearizable");
    assert.equal(verdict(notSwapped), "linearizable");
  });
});

describe("append", () => {
  it("answers the value after appending, an absent key counting as empty", () => {
    const h = historyOf(
      append(1, "x", "a", 0, 1, "a"),
      append(1, "x", "b", 2, 3, "ab"),
      get(1, "x", 4, 5, "ab"),
    );
    assert.equal(verdict(h), "linearizable");
  });

  it("concurrent appends may land in either order, and the answers say which", () => {
    const h = historyOf(append(1, "x", "a", 0, 10, "ba"), append(2, "x", "b", 1, 9, "b"));
    assert.equal(verdict(h), "linearizable");
  });

  it("appends in sequence cannot land in the other order", () => {
    const h = historyOf(append(1, "x", "a", 0, 1, "ba"), append(2, "x", "b", 2, 3, "b"));
    assert.equal(verdict(h), "violation");
  });

  it("an answer that does not end with the suffix is impossible", () => {
    assert.equal(verdict(historyOf(append(1, "x", "a", 0, 1, "b"))), "violation");
  });

  it("an unanswered append may have landed, and then later answers include it", () => {
    const h = historyOf(append(1, "x", "a", 0, "?"), append(2, "x", "b", 5, 6, "ab"));
    assert.equal(verdict(h), "linearizable");
    const twice = historyOf(append(1, "x", "a", 0, "?"), append(2, "x", "b", 5, 6, "aab"));
    assert.equal(verdict(twice), "violation");
  });
});

describe("delete", () => {
  it("answers whether the key existed", () => {
    assert.equal(verdict(historyOf(del(1, "x", 0, 1, false))), "linearizable");
    assert.equal(
      verdict(historyOf(put(1, "x", "a", 0, 1), del(1, "x", 2, 3, true), get(1, "x", 4, 5, null))),
      "linearizable",
    );
    assert.equal(verdict(historyOf(del(1, "x", 0, 1, true))), "violation");
    assert.equal(verdict(historyOf(put(1, "x", "a", 0, 1), del(1, "x", 2, 3, false))), "violation");
  });

  it("two concurrent deletes of a present key cannot both find it", () => {
    const h = historyOf(put(1, "x", "a", 0, 1), del(2, "x", 2, 10, true), del(3, "x", 3, 9, true));
    assert.equal(verdict(h), "violation");
  });

  it("a key deleted and written again reads the new value", () => {
    const h = historyOf(
      put(1, "x", "a", 0, 1),
      del(1, "x", 2, 3, true),
      put(1, "x", "b", 4, 5),
      get(2, "x", 6, 7, "b"),
    );
    assert.equal(verdict(h), "linearizable");
  });
});

describe("the result", () => {
  it("checks each key on its own and names every failing key", () => {
    const h = historyOf(
      put(1, "fine", "a", 0, 1),
      get(2, "fine", 2, 3, "a"),
      put(1, "stale", "a", 0, 1),
      put(1, "stale", "b", 2, 3),
      get(2, "stale", 4, 5, "a"),
      get(3, "phantom", 0, 1, "ghost"),
    );
    const v = violation(h);
    assert.deepEqual(v.failingKeys, ["phantom", "stale"]);
    assert.equal(v.key, "phantom", "the failing key with the fewest operations is the one shrunk");
    assert.deepEqual(
      v.stats.keys.map((k) => [k.key, k.ops, k.verdict]),
      [
        ["fine", 2, "linearizable"],
        ["phantom", 1, "violation"],
        ["stale", 3, "violation"],
      ],
    );
    assert.equal(v.stats.ops, 6);
  });

  it("shrinks to the operations that show the failure, and explains them by client, call, time and answer", () => {
    const h = historyOf(
      put(1, "x", "a", 0, 1),
      get(2, "x", 2, 3, "a"),
      put(3, "y", "q", 2, 3),
      put(1, "x", "b", 4, 5),
      get(3, "x", 4, 6, "b"),
      get(2, "x", 7, 8, "a"),
      get(3, "x", 9, 10, "b"),
    );
    const v = violation(h);
    assert.deepEqual(
      v.minimal.map((op) => op.id),
      [1, 4, 6],
    );
    assert.equal(v.culprit?.id, 6);
    assert.equal(v.shrink.complete, true);
    assert.match(v.explanation, /#6 client 2: get\("x"\) → "a", invoked 7, returned 8 {3}<- culprit/);
    assert.match(v.explanation, /#4 client 1: put\("x", "b"\) → ok, invoked 4, returned 5/);
    assert.match(v.explanation, /#6: its answer needs a value that #4 put\("x", "b"\) → ok had overwritten/);
  });

  it("names an unanswered operation as such", () => {
    const h = historyOf(put(1, "x", "b", 0, "?"), get(2, "x", 1, 2, "b"), get(2, "x", 3, 4, null));
    const v = violation(h);
    assert.match(
      v.explanation,
      /#1 client 1: put\("x", "b"\) → \?, invoked 0, never answered \(indeterminate\)/,
    );
  });

  it("can report the whole failing key, or its smallest failing part whatever the cause", () => {
    const h = historyOf(
      put(1, "x", "a", 0, 1),
      put(1, "x", "b", 2, 3),
      get(2, "x", 4, 5, "a"),
      get(2, "x", 6, 7, "b"),
    );
    assert.equal(violation(h, { shrink: "none" }).minimal.length, 4);
    // The stale read alone, with its writer gone, reads a value nobody wrote: smallest, not faithful.
    assert.deepEqual(
      violation(h, { shrink: "smallest" }).minimal.map((op) => op.id),
      [3],
    );
    assert.deepEqual(
      violation(h).minimal.map((op) => op.id),
      [1, 2, 3],
    );
  });

  it("is the same on every run", () => {
    const h = historyOf(
      put(1, "x", "a", 0, 4),
      put(2, "x", "b", 1, 5),
      get(3, "x", 2, 6, "b"),
      get(3, "x", 7, 8, "a"),
      append(1, "x", "c", 9, "?"),
    );
    assert.deepEqual(checkLinearizable(h), checkLinearizable(h));
  });
});

describe("bounded work", () => {
  /**
   * Twelve appends in flight at once, none answered, and a read whose answer no order of them can
   * give (one suffix twice): every order of every subset is a different value, so the search can only
   * give up. 12! orders would take hours.
   */
  function adversarial(key = "x"): Operation[] {
    const specs: Spec[] = [];
    let answer = "";
    for (let i = 0; i < 12; i++) {
      specs.push(append(i, key, `a${i};`, 0, "?"));
      answer += `a${i};`;
    }
    specs.push(get(99, key, 1, 100, `${answer}a0;`));
    return historyOf(...specs);
  }

  function unknownWithin(history: History, options: CheckOptions, ms: number): UnknownResult {
    const started = performance.now();
    const result = checkLinearizable(history, options);
    const elapsed = performance.now() - started;
    assert.equal(result.verdict, "unknown");
    assert.ok(elapsed < ms, `took ${elapsed.toFixed(0)} ms`);
    assert.equal(result.ok, false, "unknown is not ok");
    return result as UnknownResult;
  }

  it("gives up with `unknown` at the step bound instead of searching for hours", () => {
    const r = unknownWithin(adversarial(), { maxStepsPerKey: 200_000 }, 2000);
    assert.deepEqual(
      r.unknownKeys.map((k) => [k.key, k.limit]),
      [["x", "steps"]],
    );
    assert.match(r.explanation, /key "x": 13 operations, gave up at the steps bound/);
  });

  it("gives up at the memo's bound, in entries or in bytes", () => {
    assert.equal(
      unknownWithin(adversarial(), { maxStatesPerKey: 1000 }, 2000).unknownKeys[0]?.limit,
      "states",
    );
    assert.equal(
      unknownWithin(adversarial(), { maxMemoBytesPerKey: 64 * 1024 }, 2000).unknownKeys[0]?.limit,
      "memory",
    );
  });

  it("bounds the steps over all keys, leaving the keys after the budget unchecked", () => {
    const h = [...adversarial("a"), ...adversarial("b").map((op) => ({ ...op, id: op.id + 100 }))];
    const r = unknownWithin(h, { maxStepsPerKey: 150_000, maxSteps: 200_000 }, 2000);
    assert.deepEqual(
      r.stats.keys.map((k) => [k.key, k.verdict]),
      [
        ["a", "unknown"],
        ["b", "unknown"],
      ],
    );
    assert.ok(r.stats.steps <= 200_002);
  });

  it("still reports a violation found on another key", () => {
    const h = [
      ...adversarial("a"),
      ...historyOf(get(1, "b", 0, 1, "ghost")).map((op) => ({ ...op, id: 1000 })),
    ];
    assert.equal(verdict(h, { maxStepsPerKey: 100_000 }), "violation");
  });
});

describe("bad input", () => {
  it("refuses a malformed history with the operation and the reason", () => {
    const badTimes = historyOf(put(1, "x", "a", 5, 5));
    assert.throws(
      () => checkLinearizable(badTimes),
      (e: unknown) => e instanceof InvalidHistoryError && e.operationId === 1,
    );
    const duplicate = [...historyOf(put(1, "x", "a", 0, 1)), ...historyOf(put(1, "x", "b", 2, 3))];
    assert.throws(() => checkLinearizable(duplicate), /duplicate operation id/);
    const parsed: History = JSON.parse(
      '[{"id":1,"client":1,"f":"cas","input":{"key":"x","expected":null,"value":"a"},"invokedAt":0,"completion":{"ok":true,"output":"yes","at":1}}]',
    );
    assert.throws(() => checkLinearizable(parsed), /cas must return a boolean/);
  });

  it("refuses options out of range", () => {
    assert.throws(() => checkLinearizable([], { maxStepsPerKey: 0 }), InvalidCheckOptionError);
    assert.throws(() => checkLinearizable([], { maxStatesPerKey: 1.5 }), InvalidCheckOptionError);
    const shrink = "best" as CheckOptions["shrink"];
    assert.throws(() => checkLinearizable([], { shrink }), /faithful \| smallest \| none/);
  });

  it("accepts an empty history", () => {
    assert.equal(verdict([]), "linearizable");
  });
});
