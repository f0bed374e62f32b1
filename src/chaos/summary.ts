/** The chaos run's report as text. */
import { describeOperation } from "../sim/checker/index.js";
import { FAULT_KINDS } from "./nemesis.js";
import { type ChaosReport, problemsOf } from "./run.js";

const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

export function formatReport(r: ChaosReport): string[] {
  const lines: string[] = [];
  const ops = r.ops;
  const faultTotal = FAULT_KINDS.reduce((sum, k) => sum + r.faults[k], 0);
  lines.push("chaos summary");
  lines.push(`  seed               ${r.seed}   (repeat the fault schedule: --seed ${r.seed})`);
  lines.push(`  duration           ${seconds(r.chaosMs)} of faults, ${seconds(r.totalMs)} in all`);
  lines.push(
    `  operations         ${ops.total}: ok ${ops.ok}, failed ${ops.failed}, indeterminate ${ops.indeterminate}, ` +
      `unexpected ${ops.unexpected} (final reads: ${r.finalReads} of ${r.keysUsed} keys)`,
  );
  if (r.causes.size > 0)
    lines.push(
      `  not ok, by cause   ${[...r.causes]
        .sort(([a], [b]) => (a < b ? -1 : 1))
        .map(([c, n]) => `${c} ${n}`)
        .join(", ")}`,
    );
  lines.push(
    `  faults             ${faultTotal}: ${FAULT_KINDS.map((k) => `${k} ${r.faults[k]}`).join(", ")}` +
      (r.skippedFaults > 0 ? ` (${r.skippedFaults} skipped)` : ""),
  );
  lines.push(`  leader changes     ${r.leaderChanges}`);
  lines.push(`  snapshots installed ${r.snapshotsInstalled}`);
  lines.push(
    `  recovery           ${r.recoveryFailure === null ? `settled and read back in ${seconds(r.recoveryMs)}` : `FAILED: ${r.recoveryFailure}`}`,
  );
  const s = r.check.stats;
  lines.push(
    `  linearizability    ${r.check.verdict} (${s.checkedOps} of ${s.ops} operations searched over ${s.keys.length} keys, ` +
      `${s.steps} steps, ${s.states} states, ${seconds(r.checkMs)})`,
  );
  lines.push(`  logs               ${r.dir}  (node<N>.log, nemesis.log, history.json)`);
  for (const text of r.unexpectedReplies) lines.push(`  unexpected reply   ${text}`);
  if (r.check.verdict === "violation") {
    lines.push("", `linearizability violation on key ${JSON.stringify(r.check.key)}:`, r.check.explanation);
    if (r.check.culprit !== undefined) lines.push(`culprit: ${describeOperation(r.check.culprit)}`);
    lines.push(`failing keys: ${r.check.failingKeys.join(", ")}`);
  } else if (r.check.verdict === "unknown") lines.push("", r.check.explanation);
  const problems = problemsOf(r);
  lines.push("");
  if (problems.length === 0) lines.push("PASS");
  else for (const p of problems) lines.push(`FAIL: ${p.text}`);
  return lines;
}
