/**
 * The checker on generated histories: a store that is linearizable by construction, with random
 * concurrent clients, lost answers and failed calls (helpers/kv-history-gen.ts), must pass; the same
 * history with one answer provably broken must fail, and shrink to a small history that fails for
 * the same reason.
 *
 * The fast-check seed is fixed so that runs are deterministic; set RAFTKV_CHECKER_SEED to explore
 * other histories. A failure prints the generator parameters, whose `seed` replays the history.
 */

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { SeededRandom } from "../../src/raft/rand.js";
import { prefixAt, rankOf } from "../../src/sim/checker/culprit.js";
import {
  checkLinearizable,
  INDETERMINATE,
  type Operation,
  partitionByKey,
  type ViolationResult,
} from "../../src/sim/checker/index.js";
import { answerSupport, explainsLess } from "../../src/sim/checker/sources.js";
import {
  type GenParams,
  generateHistory,
  type Mutation,
  readNeverWritten,
  staleRead,
  swappedReads,
} from "./helpers/kv-history-gen.js";

const FC_SEED = Number(process.env.RAFTKV_CHECKER_SEED ?? 0x11ea_2025);

/**
 * Up to 12 clients per key at once, and up to 10% of calls unanswered: a single key with many more
 * concurrent clients, or many more lost answers, can need more search than the default budget (the
 * checker then says `unknown`; the "bounded work" tests in checker.test.ts show that).
 */
function params(maxOps: number): fc.Arbitrary<GenParams> {
  return fc
    .record({
      seed: fc.integer({ min: 1, max: 0x7fff_ffff }),
      clients: fc.integer({ min: 1, max: 30 }),
      keys: fc.integer({ min: 1, max: 8 }),
      ops: fc.integer({ min: 10, max: maxOps }),
      maxLatency: fc.integer({ min: 1, max: 30 }),
      maxThink: fc.integer({ min: 0, max: 10 }),
      indeterminatePct: fc.integer({ min: 0, max: 10 }),
      failPct: fc.integer({ min: 0, max: 10 }),
    })
    .map((p) => ({ ...p, clients: Math.min(p.clients, 12 * p.keys) }));
}

function violation(history: readonly Operation[], options = {}): ViolationResult {
  const result = checkLinearizable(history, options);
  assert.equal(
    result.verdict,
    "violation",
    result.verdict === "unknown" ? result.explanation : "expected a violation",
  );
  return result as ViolationResult;
}

function keyHistory(history: readonly Operation[], key: string): Operation[] {
  return partitionByKey(history).get(key) ?? [];
}

/** The value a unique-valued write put in place (puts and swaps name theirs; appends answer it). */
function written(op: Operation): string | undefined {
  if (op.f === "put" || op.f === "cas") return op.input.value;
  if (op.f === "append" && op.completion !== INDETERMINATE && op.completion.ok) return op.completion.output;
  return undefined;
}

function outputOf(op: Operation): unknown {
  return op.completion !== INDETERMINATE && op.completion.ok ? op.completion.output : undefined;
}

const MUTATIONS: readonly [string, (h: readonly Operation[], r: SeededRandom) => Mutation | undefined][] = [
  ["a read of a value never written", readNeverWritten],
  ["a stale read after a newer write completed", staleRead],
  ["two reads whose answers are swapped, the first seeing a value not yet written", swappedReads],
];

describe("generated histories of a linearizable store", () => {
  it("are linearizable, with answers lost and calls failed", () => {
    fc.assert(
      fc.property(params(600), (p) => {
        const result = checkLinearizable(generateHistory(p));
        assert.equal(
          result.verdict,
          "linearizable",
          result.verdict === "linearizable" ? "" : result.explanation,
        );
      }),
      { seed: FC_SEED, numRuns: 60 },
    );
  });

  it("are linearizable when values repeat, as in a register test over a few values", () => {
    fc.assert(
      fc.property(params(400), fc.integer({ min: 2, max: 6 }), (p, valueDomain) => {
        const result = checkLinearizable(
          generateHistory({ ...p, clients: Math.min(p.clients, 10), valueDomain }),
        );
        assert.equal(
          result.verdict,
          "linearizable",
          result.verdict === "linearizable" ? "" : result.explanation,
        );
      }),
      { seed: FC_SEED, numRuns: 40 },
    );
  });

  it("are linearizable with many clients on one hot key", () => {
    for (const seed of [1, 2, 3]) {
      const h = generateHistory({
        seed,
        clients: 20,
        keys: 1,
        ops: 800,
        maxLatency: 20,
        maxThink: 5,
        indeterminatePct: 5,
        failPct: 3,
      });
      const result = checkLinearizable(h);
      assert.equal(
        result.verdict,
        "linearizable",
        result.verdict === "linearizable" ? "" : result.explanation,
      );
    }
  });
});

describe("generated histories with one answer broken", () => {
  for (const [name, mutate] of MUTATIONS) {
    it(`${name}: fail, and shrink faithfully to a small history failing at that answer`, () => {
      fc.assert(
        fc.property(params(400), (p) => {
          const mutation = mutate(generateHistory(p), new SeededRandom(p.seed));
          fc.pre(mutation !== undefined);
          const v = violation(mutation!.history);
          const { minimal, culprit } = v;
          assert.ok(
            culprit !== undefined && mutation!.changed.includes(culprit.id),
            "the culprit is a broken answer",
          );
          assert.ok(minimal.includes(culprit));
          assert.ok(v.shrink.complete);
          assert.ok(minimal.length <= 8, `minimal has ${minimal.length} operations:\n${v.explanation}`);
          assert.equal(
            checkLinearizable(minimal).verdict,
            "violation",
            "the minimal history fails on its own",
          );
          if (mutate !== readNeverWritten) {
            // The write of the value the broken read returned stays, so the report shows it.
            const seen = outputOf(culprit);
            assert.ok(
              minimal.some((op) => op !== culprit && written(op) === seen),
              v.explanation,
            );
          }
          assertFaithfullyMinimal(keyHistory(mutation!.history, v.key), v);
        }),
        { seed: FC_SEED, numRuns: 25 },
      );
    });
  }

  it("shrink, in `smallest` mode, to a history from which removing any one operation makes it pass", () => {
    fc.assert(
      fc.property(params(250), fc.integer({ min: 0, max: MUTATIONS.length - 1 }), (p, which) => {
        const mutation = MUTATIONS[which]![1](generateHistory(p), new SeededRandom(p.seed));
        fc.pre(mutation !== undefined);
        const v = violation(mutation!.history, { shrink: "smallest" });
        assert.ok(v.shrink.complete);
        assert.equal(checkLinearizable(v.minimal).verdict, "violation");
        for (const op of v.minimal) {
          const rest = v.minimal.filter((o) => o !== op);
          assert.equal(checkLinearizable(rest).verdict, "linearizable", `still fails without #${op.id}`);
        }
      }),
      { seed: FC_SEED, numRuns: 20 },
    );
  });
});

/**
 * What `faithful` promises: the minimal history first fails at the culprit's answer, and removing any
 * one operation either removes the culprit, explains the culprit worse than the whole key's history
 * did, lets the culprit's answer be explained, or makes an earlier answer impossible.
 */
function assertFaithfullyMinimal(keyOps: readonly Operation[], v: ViolationResult): void {
  const culprit = v.culprit!;
  const support = answerSupport(keyOps, null);
  const fails = (ops: readonly Operation[], excludingCulprit: boolean): boolean =>
    checkLinearizable(prefixAt(ops, rankOf(ops), culprit, excludingCulprit), { shrink: "none" }).verdict ===
    "violation";
  assert.ok(fails(v.minimal, false), "the prefix at the culprit fails");
  assert.ok(!fails(v.minimal, true), "the prefix before the culprit passes");
  for (const op of v.minimal) {
    if (op === culprit) continue;
    const rest = v.minimal.filter((o) => o !== op);
    const kept = !explainsLess(support, rest, null, culprit.id) && fails(rest, false) && !fails(rest, true);
    assert.ok(!kept, `#${op.id} could have been removed:\n${v.explanation}`);
  }
}

describe("speed", () => {
  const cases: readonly GenParams[] = [
    {
      seed: 11,
      clients: 30,
      keys: 20,
      ops: 5_000,
      maxLatency: 20,
      maxThink: 5,
      indeterminatePct: 5,
      failPct: 3,
    },
    {
      seed: 12,
      clients: 50,
      keys: 10,
      ops: 10_000,
      maxLatency: 20,
      maxThink: 5,
      indeterminatePct: 10,
      failPct: 3,
    },
    {
      seed: 13,
      clients: 30,
      keys: 3,
      ops: 3_000,
      maxLatency: 20,
      maxThink: 5,
      indeterminatePct: 5,
      failPct: 3,
    },
  ];
  for (const p of cases) {
    it(`checks ${p.ops} operations over ${p.keys} keys from ${p.clients} clients well within a second`, (t) => {
      const h = generateHistory(p);
      checkLinearizable(h); // warm up the JIT
      const started = performance.now();
      const result = checkLinearizable(h);
      const ms = performance.now() - started;
      assert.equal(result.verdict, "linearizable");
      t.diagnostic(
        `${p.ops} ops / ${p.keys} keys / ${p.clients} clients, ${p.indeterminatePct}% unanswered: ` +
          `${ms.toFixed(1)} ms, ${Math.round((p.ops / ms) * 1000)} ops/s, ${result.stats.steps} steps`,
      );
      assert.ok(ms < 1000, `took ${ms.toFixed(0)} ms`);
    });
  }
});
