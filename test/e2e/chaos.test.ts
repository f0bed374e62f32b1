/**
 * A short chaos run (`npm run chaos` in small): three `raftkv serve` processes under kills, pauses and
 * link cuts for 20 seconds with a fixed seed, clients on every node, then a final heal and a read of
 * every key through every node. The history must be linearizable, every kind of fault must have
 * happened, and the cluster must recover.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { describe, it } from "node:test";
import { FAULT_KINDS } from "../../src/chaos/nemesis.js";
import { problemsOf, runChaos } from "../../src/chaos/run.js";
import { formatReport } from "../../src/chaos/summary.js";

describe("chaos run", () => {
  it("20 s of kills, pauses and cut links (seed 20240611) leave a linearizable history", async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), "raftkv-chaos-test-"));
    const report = await runChaos(
      {
        durationMs: 20_000,
        seed: 20240611,
        nodes: 3,
        clients: 6,
        keys: 8,
        // Two generations of keys in 20 s: the final reads cover both.
        keyLifetimeMs: 10_000,
        dir,
        tickMs: 50,
        electionTicks: 10,
        snapshotEveryEntries: 200,
        trailingEntries: 20,
        opTimeoutMs: 2_000,
        recoveryTimeoutMs: 15_000,
        keepData: false,
      },
      () => undefined,
    );
    const summary = formatReport(report).join("\n");
    assert.deepEqual(problemsOf(report), [], summary);
    assert.equal(report.check.verdict, "linearizable", summary);
    for (const kind of FAULT_KINDS) assert.ok(report.faults[kind] > 0, `no ${kind} fault\n${summary}`);
    assert.ok(report.ops.ok > 100, summary);
    assert.equal(report.finalReads, 3 * report.keysUsed, summary);
    assert.ok(report.keysUsed > 8, summary);
    rmSync(dir, { recursive: true, force: true });
  });
});
