/**
 * `npm run sim -- --seeds N [--first S] [--nodes 5] [--faults a,b] [--duration ms] [--clients n] [--bugs x]` runs seeds and prints
 * a summary; `npm run sim -- --seed S --trace` replays one seed with a readable trace of its events.
 * Exits 1 if any seed broke a property.
 */
import {
  BUG_NAMES,
  type BugName,
  FAULT_KINDS,
  type FaultKind,
  type SimOptions,
  type SimResult,
  simulate,
} from "./simulation.js";

interface Args {
  seeds: number;
  first: number;
  nodes: 3 | 5;
  faults: Set<FaultKind>;
  durationMs: number;
  clients: number;
  trace: boolean;
  engineLogs: boolean;
  bugs: Set<BugName>;
}

function parseArgs(argv: readonly string[]): Args {
  const args: Args = {
    seeds: 100,
    first: 1,
    nodes: 3,
    faults: new Set(FAULT_KINDS),
    durationMs: 20_000,
    clients: 6,
    trace: false,
    engineLogs: false,
    bugs: new Set(),
  };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i]!;
    const value = () => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${flag} needs a value`);
      return v;
    };
    const int = (v: string, min: number) => {
      const n = Number(v);
      if (!Number.isSafeInteger(n) || n < min)
        throw new Error(`${flag} must be an integer >= ${min}, got ${v}`);
      return n;
    };
    switch (flag) {
      case "--seeds":
        args.seeds = int(value(), 1);
        break;
      case "--first":
        args.first = int(value(), 0);
        break;
      case "--seed":
        args.first = int(value(), 0);
        args.seeds = 1;
        break;
      case "--nodes": {
        const n = int(value(), 3);
        if (n !== 3 && n !== 5) throw new Error("--nodes must be 3 or 5");
        args.nodes = n;
        break;
      }
      case "--faults": {
        const names = value()
          .split(",")
          .filter((s) => s.length > 0);
        const unknown = names.filter((n) => !(FAULT_KINDS as readonly string[]).includes(n));
        if (unknown.length > 0)
          throw new Error(`unknown fault ${unknown.join(", ")}; known: ${FAULT_KINDS.join(", ")}`);
        args.faults = new Set(names as FaultKind[]);
        break;
      }
      case "--duration":
        args.durationMs = int(value(), 1000);
        break;
      case "--clients":
        args.clients = int(value(), 1);
        break;
      case "--trace":
        args.trace = true;
        break;
      case "--engine-logs":
        args.trace = true;
        args.engineLogs = true;
        break;
      case "--bugs": {
        const names = value()
          .split(",")
          .filter((s) => s.length > 0);
        const unknown = names.filter((n) => !(BUG_NAMES as readonly string[]).includes(n));
        if (unknown.length > 0)
          throw new Error(`unknown bug ${unknown.join(", ")}; known: ${BUG_NAMES.join(", ")}`);
        args.bugs = new Set(names as BugName[]);
        break;
      }
      default:
        throw new Error(`unknown argument ${flag}`);
    }
  }
  return args;
}

async function main(): Promise<void> {
  let args: Args;
  try {
    args = parseArgs(process.argv.slice(2));
  } catch (err) {
    console.error(String(err instanceof Error ? err.message : err));
    process.exit(2);
  }
  const started = performance.now();
  const failed: SimResult[] = [];
  const totals = { ops: 0, okOps: 0, indeterminate: 0, leaderChanges: 0, snapshots: 0, virtualMs: 0 };
  const faults: Partial<Record<FaultKind, number>> = {};
  for (let seed = args.first; seed < args.first + args.seeds; seed++) {
    const options: SimOptions = {
      seed,
      nodes: args.nodes,
      faults: args.faults,
      durationMs: args.durationMs,
      clients: args.clients,
      bugs: args.bugs,
      engineLogs: args.engineLogs,
      ...(args.trace ? { trace: (line: string) => console.log(line) } : {}),
    };
    const r = await simulate(options);
    totals.ops += r.stats.ops;
    totals.okOps += r.stats.okOps;
    totals.indeterminate += r.stats.indeterminateOps;
    totals.leaderChanges += r.stats.leaderChanges;
    totals.snapshots += r.stats.snapshotsInstalled;
    totals.virtualMs += r.stats.virtualMs;
    for (const [k, n] of Object.entries(r.stats.faults))
      faults[k as FaultKind] = (faults[k as FaultKind] ?? 0) + n;
    if (!r.ok) {
      failed.push(r);
      console.log(`seed ${seed} FAILED: ${r.failures.join(" | ")}`);
    }
  }
  const seconds = (performance.now() - started) / 1000;
  console.log(
    [
      `seeds ${args.seeds} (${args.first}..${args.first + args.seeds - 1}), ${args.nodes} nodes, ${seconds.toFixed(1)} s`,
      `ops ${totals.ops} (${totals.okOps} answered, ${totals.indeterminate} indeterminate)`,
      `faults ${Object.entries(faults)
        .map(([k, n]) => `${k} ${n}`)
        .join(", ")}`,
      `leader changes ${totals.leaderChanges}, snapshots installed ${totals.snapshots}, virtual time ${(totals.virtualMs / 1000).toFixed(0)} s`,
      failed.length === 0
        ? "no failures"
        : `${failed.length} failed: seeds ${failed.map((r) => r.seed).join(", ")} (replay: npm run sim -- --seed S --trace)`,
    ].join("\n"),
  );
  finished = true;
  process.exit(failed.length === 0 ? 0 : 1);
}

let finished = false;
// A simulation that deadlocks empties the event loop: that must not pass for success.
process.on("beforeExit", () => {
  if (finished) return;
  console.error("the simulation stalled: nothing left to run, and the seed did not finish");
  process.exit(3);
});
main().then(() => {
  finished = true;
});
