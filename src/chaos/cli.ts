#!/usr/bin/env node
/**
 * `npm run chaos -- [--duration S] [--seed N] [--nodes 3|5] [--clients N] [--keys N] [--key-lifetime S]
 *                   [--dir DIR] [--tick-ms MS] [--election-ticks N] [--snapshot-every N] [--trailing N] [--op-timeout MS] [--recovery-timeout S] [--keep-data]`
 *
 * A chaos run against real `raftkv serve` processes (see run.ts). Exit codes: 0 passed; 1 a violation
 * (history not linearizable, two leaders in a term, a reply no correct server gives, a node that exited
 * by itself); 2 bad arguments; 3 the cluster did not recover after the final heal; 4 the checker could
 * not decide.
 */
import { randomInt } from "node:crypto";
import { mkdtempSync } from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { parseArgs } from "node:util";
import { ChaosUsageError } from "./errors.js";
import { type ChaosOptions, problemsOf, runChaos } from "./run.js";
import { formatReport } from "./summary.js";

const USAGE = `usage: npm run chaos -- [--duration S] [--seed N] [--nodes 3|5] [--clients N] [--keys N] [--key-lifetime S]
                       [--dir DIR] [--tick-ms MS] [--election-ticks N] [--snapshot-every N] [--trailing N] [--op-timeout MS] [--recovery-timeout S] [--keep-data]`;

function int(name: string, text: string | undefined, fallback: number, min: number, max: number): number {
  if (text === undefined) return fallback;
  const n = Number(text);
  if (!Number.isSafeInteger(n) || n < min || n > max)
    throw new ChaosUsageError(`--${name} must be an integer from ${min} to ${max}, got ${text}`);
  return n;
}

export function parseChaosArgs(argv: string[]): ChaosOptions {
  const { values } = parseArgs({
    args: argv,
    options: {
      duration: { type: "string" },
      seed: { type: "string" },
      nodes: { type: "string" },
      clients: { type: "string" },
      keys: { type: "string" },
      "key-lifetime": { type: "string" },
      dir: { type: "string" },
      "tick-ms": { type: "string" },
      "election-ticks": { type: "string" },
      "snapshot-every": { type: "string" },
      trailing: { type: "string" },
      "op-timeout": { type: "string" },
      "recovery-timeout": { type: "string" },
      "keep-data": { type: "boolean", default: false },
    },
  });
  const nodes = int("nodes", values.nodes, 3, 3, 5);
  if (nodes !== 3 && nodes !== 5) throw new ChaosUsageError("--nodes must be 3 or 5");
  const seed = int("seed", values.seed, randomInt(1, 2 ** 31), 0, 2 ** 32 - 1);
  const dir = values.dir ?? mkdtempSync(path.join(os.tmpdir(), `raftkv-chaos-seed${seed}-`));
  return {
    durationMs: int("duration", values.duration, 60, 1, 24 * 3600) * 1000,
    seed,
    nodes,
    clients: int("clients", values.clients, 8, 1, 64),
    keys: int("keys", values.keys, 8, 1, 1000),
    keyLifetimeMs: int("key-lifetime", values["key-lifetime"], 30, 1, 24 * 3600) * 1000,
    dir: path.resolve(dir),
    tickMs: int("tick-ms", values["tick-ms"], 50, 1, 10_000),
    electionTicks: int("election-ticks", values["election-ticks"], 10, 2, 1000),
    // Small, so that a node back from a kill or a cut often needs a snapshot rather than entries.
    snapshotEveryEntries: int("snapshot-every", values["snapshot-every"], 500, 0, 1_000_000),
    trailingEntries: int("trailing", values.trailing, 100, 0, 1_000_000),
    opTimeoutMs: int("op-timeout", values["op-timeout"], 2_000, 10, 600_000),
    recoveryTimeoutMs: int("recovery-timeout", values["recovery-timeout"], 60, 1, 3600) * 1000,
    keepData: values["keep-data"],
  };
}

async function main(): Promise<number> {
  let options: ChaosOptions;
  try {
    options = parseChaosArgs(process.argv.slice(2));
  } catch (err) {
    if (
      err instanceof ChaosUsageError ||
      (err instanceof TypeError && "code" in err && String(err.code).startsWith("ERR_PARSE_ARGS"))
    ) {
      console.error(`chaos: ${err.message}\n${USAGE}`);
      return 2;
    }
    throw err;
  }
  console.log(
    `chaos: seed ${options.seed}, ${options.durationMs / 1000} s, ${options.nodes} nodes, ` +
      `${options.clients} clients on ${options.keys} keys (fresh ones every ${options.keyLifetimeMs / 1000} s); ` +
      `logs in ${options.dir}`,
  );
  // Interrupted: exit at once; the cluster SIGKILLs its nodes as the process exits. Logs stay.
  for (const signal of ["SIGINT", "SIGTERM"] as const)
    process.once(signal, () => {
      console.error(`chaos: ${signal}, stopping; logs in ${options.dir}`);
      process.exit(130);
    });
  const report = await runChaos(options, (line) => console.log(line));
  for (const line of formatReport(report)) console.log(line);
  const problems = problemsOf(report);
  return problems.length === 0 ? 0 : Math.min(...problems.map((p) => p.code));
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    console.error(`chaos: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    process.exitCode = 1;
  },
);
