/**
 * The checker against a brute-force reference (helpers/brute-force.ts) that tries every order of
 * every key's operations and shares none of the search's machinery: no event lists, no memo, none of
 * its prunes (forced reads, starved needs, dominated unanswered writes). Any prune that cut away the
 * only linearization, or let a bad one through, shows up here as a disagreement.
 *
 * The fast-check seed is fixed; set RAFTKV_CHECKER_SEED to explore other histories.
 */

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { SeededRandom } from "../../src/raft/rand.js";
import {
  applyKv,
  type CheckOptions,
  checkLinearizable,
  INDETERMINATE,
  type KvCall,
  type Operation,
} from "../../src/sim/checker/index.js";
import { INCONSISTENT, KeyModel } from "../../src/sim/checker/model.js";
import { bruteForceLinearizable } from "./helpers/brute-force.js";
import { append, cas, del, type End, get, historyOf, put, type Spec } from "./helpers/history-dsl.js";
import { generateHistory } from "./helpers/kv-history-gen.js";

const FC_SEED = Number(process.env.RAFTKV_CHECKER_SEED ?? 0x11ea_2026);

/** Few values, so that reads often match some write and both verdicts are common. */
const value = fc.constantFrom("a", "b", "ab", "");
const maybeValue = fc.option(value, { nil: null, freq: 4 });

const spec: fc.Arbitrary<Spec> = fc
  .record({
    f: fc.constantFrom("put", "get", "delete", "cas", "append"),
    key: fc.constantFrom("x", "y"),
    client: fc.integer({ min: 1, max: 4 }),
    invokedAt: fc.integer({ min: 0, max: 20 }),
    duration: fc.integer({ min: 1, max: 10 }),
    ending: fc.constantFrom("ok", "ok", "ok", "ok", "?", "fail"),
    value,
    other: maybeValue,
    flag: fc.boolean(),
    suffix: fc.constantFrom("a", "b"),
  })
  .map((r) => {
    const end: End = r.ending === "ok" ? r.invokedAt + r.duration : r.ending === "?" ? "?" : "fail";
    switch (r.f) {
      case "put":
        return put(r.client, r.key, r.value, r.invokedAt, end);
      case "get":
        return get(r.client, r.key, r.invokedAt, end, r.other);
      case "delete":
        return del(r.client, r.key, r.invokedAt, end, r.flag);
      case "cas":
        return cas(r.client, r.key, r.other, r.value, r.invokedAt, end, r.flag);
      default:
        return append(r.client, r.key, r.suffix, r.invokedAt, end, r.value);
    }
  });

const smallHistory = fc.array(spec, { minLength: 1, maxLength: 9 }).map((specs) => historyOf(...specs));

/** Verdicts seen, to make sure the generators exercise both. */
const seen = { linearizable: 0, violation: 0 };

function agree(history: readonly Operation[], options?: CheckOptions): void {
  const expected = bruteForceLinearizable(history);
  const result = checkLinearizable(history, options);
  seen[expected ? "linearizable" : "violation"]++;
  assert.equal(result.verdict, expected ? "linearizable" : "violation", JSON.stringify(history));
  if (result.verdict !== "violation") return;
  assert.equal(bruteForceLinearizable(result.minimal), false, "the minimal history fails too");
  if (options?.shrink === "smallest") {
    for (const op of result.minimal) {
      assert.ok(
        bruteForceLinearizable(result.minimal.filter((o) => o !== op)),
        `removing #${op.id} keeps it failing`,
      );
    }
  } else {
    assert.ok(result.culprit !== undefined && result.minimal.includes(result.culprit));
  }
}

describe("the checker agrees with trying every order", () => {
  it("on random small histories of puts, gets, deletes, swaps and appends, some unanswered or failed", () => {
    seen.linearizable = seen.violation = 0;
    fc.assert(
      fc.property(smallHistory, (h) => agree(h)),
      { seed: FC_SEED, numRuns: 3000 },
    );
    assert.ok(seen.linearizable > 600 && seen.violation > 600, JSON.stringify(seen));
  });

  it("on the same, shrunk to the smallest failing part", () => {
    fc.assert(
      fc.property(smallHistory, (h) => agree(h, { shrink: "smallest" })),
      { seed: FC_SEED + 1, numRuns: 1000 },
    );
  });

  it("on small linearizable histories with one answer changed", () => {
    seen.linearizable = seen.violation = 0;
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 0x7fff_ffff }),
        fc.integer({ min: 2, max: 9 }),
        fc.integer({ min: 1, max: 5 }),
        fc.integer({ min: 0, max: 30 }),
        (seed, ops, clients, indeterminatePct) => {
          const h = generateHistory({
            seed,
            clients,
            keys: 1,
            ops,
            maxLatency: 6,
            maxThink: 2,
            indeterminatePct,
            failPct: 5,
          });
          agree(h);
          agree(changeOneAnswer(h, new SeededRandom(seed)));
        },
      ),
      { seed: FC_SEED, numRuns: 1500 },
    );
    assert.ok(seen.linearizable > 1500 && seen.violation > 300, JSON.stringify(seen));
  });
});

/** Replaces one answer with another of the right type: often, but not always, an impossible one. */
function changeOneAnswer(history: readonly Operation[], rand: SeededRandom): Operation[] {
  const answered = history.filter(
    (op) => op.f !== "put" && op.completion !== INDETERMINATE && op.completion.ok,
  );
  if (answered.length === 0) return history.slice();
  const target = answered[rand.intn(answered.length)]!;
  const values = history.flatMap((op) => (op.f === "put" || op.f === "cas" ? [op.input.value] : []));
  const anyValue = values.length > 0 && rand.intn(3) > 0 ? values[rand.intn(values.length)]! : "other";
  return history.map((op) => {
    if (op !== target || op.completion === INDETERMINATE || !op.completion.ok) return op;
    const at = op.completion.at;
    switch (op.f) {
      case "get":
        return { ...op, completion: { ok: true, output: rand.intn(4) === 0 ? null : anyValue, at } };
      case "delete":
      case "cas":
        return { ...op, completion: { ok: true, output: !op.completion.output, at } };
      case "append":
        return { ...op, completion: { ok: true, output: `${anyValue}${op.input.suffix}`, at } };
      default:
        return op;
    }
  });
}

describe("the compiled model", () => {
  it("steps exactly as the plain specification does, for answered and unanswered calls", () => {
    const call: fc.Arbitrary<KvCall> = fc.oneof(
      value.map((v) => ({ f: "put" as const, input: { key: "k", value: v } })),
      fc.constant({ f: "get" as const, input: { key: "k" } }),
      fc.constant({ f: "delete" as const, input: { key: "k" } }),
      fc
        .tuple(maybeValue, value)
        .map(([e, v]) => ({ f: "cas" as const, input: { key: "k", expected: e, value: v } })),
      fc.constantFrom("a", "b", "").map((s) => ({ f: "append" as const, input: { key: "k", suffix: s } })),
    );
    fc.assert(
      fc.property(
        call,
        maybeValue,
        maybeValue,
        fc.boolean(),
        fc.boolean(),
        (c, state, claimedValue, flag, answered) => {
          const truth = applyKv(c, state);
          // An answer: sometimes the true one, sometimes another.
          const claimed =
            c.f === "get"
              ? claimedValue
              : c.f === "delete" || c.f === "cas"
                ? flag
                : c.f === "append"
                  ? `${claimedValue ?? ""}${c.input.suffix}`
                  : null;
          const output = flag ? truth.output : claimed;
          // (`output` was drawn to match the call, answered or not.)
          const op = {
            ...c,
            id: 1,
            client: 1,
            invokedAt: 0,
            completion: answered ? { ok: true as const, output, at: 1 } : INDETERMINATE,
          } as Operation;
          const model = new KeyModel([op], state);
          const next = model.step(0, model.initialState);
          const consistent = !answered || c.f === "put" || output === truth.output;
          if (!consistent) {
            assert.equal(next, INCONSISTENT);
            return;
          }
          assert.notEqual(next, INCONSISTENT);
          assert.equal(model.values.value(next), truth.next);
        },
      ),
      { seed: FC_SEED, numRuns: 3000 },
    );
  });
});
