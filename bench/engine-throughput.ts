/**
 * The engine end to end: three engines in separate processes, gRPC over loopback, the real WAL (one
 * fdatasync per Ready), a state machine that does nothing. Closed-loop proposers inside the leader's
 * process (1, 16, 256 at a time) measure proposals/s and the latency from propose() to applied.
 *
 *   npm run bench:engine [-- --seconds 5 --value-bytes 256 --concurrency 1,16,256]
 */
import { ProcessCluster } from "../test/e2e/harness.js";

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1]! : fallback;
}

const seconds = Number(arg("seconds", "5"));
const valueBytes = Number(arg("value-bytes", "256"));
const levels = arg("concurrency", "1,16,256").split(",").map(Number);

async function main(): Promise<void> {
  const c = await ProcessCluster.start(3, {
    stateMachine: "null",
    tickMs: 100,
    electionTicks: 10,
    snapshotEveryEntries: 100_000,
    trailingEntries: 10_000,
  });
  try {
    const leaderId = await c.leader();
    const leader = c.node(leaderId);
    console.log(`3 nodes, leader ${leaderId}; ${valueBytes}-byte values; ${seconds} s per level`);
    console.log("proposers  proposals/s  p50 ms  p99 ms  errors");
    for (const concurrency of levels) {
      // A short warm-up at this level, then the measured run.
      await leader.request({
        op: "load",
        concurrency,
        count: 0,
        durationMs: 500,
        valueBytes,
        keyPrefix: `warm${concurrency}-`,
      });
      const r = await leader.request({
        op: "load",
        concurrency,
        count: 0,
        durationMs: seconds * 1000,
        valueBytes,
        keyPrefix: `c${concurrency}-`,
      });
      console.log(
        `${String(concurrency).padStart(9)}  ${Math.round(r.ops / r.seconds)
          .toString()
          .padStart(11)}  ${r.p50Ms.toFixed(2).padStart(6)}  ${r.p99Ms.toFixed(2).padStart(6)}  ${r.errors}`,
      );
    }
  } finally {
    await c.shutdown();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
