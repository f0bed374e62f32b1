/**
 * The two load drivers, each reporting requests completed, ops/s and p50/p99 latency: Debian's
 * redis-benchmark (for raftkv and redis-server; its --csv output carries the percentiles) and the Go
 * etcd load generator (one JSON line per pass).
 */
import { CommandError, type Processes } from "./processes.js";

export interface Measurement {
  requests: number;
  opsPerSec: number;
  p50Ms: number;
  p99Ms: number;
}

export interface Workload {
  clients: number;
  pipeline: number;
  requests: number;
  valueBytes: number;
  keySpace: number;
  timeoutMs: number;
}

const CSV_HEADER =
  '"test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms","p99_latency_ms","max_latency_ms"';

/**
 * Runs `redis-benchmark -t <tests>` once; returns each test's figures by name ("SET", "GET"). Since
 * 7.0 redis-benchmark exits non-zero on the first error reply, so a figure is never one of errors.
 */
export async function redisBenchmark(
  procs: Processes,
  port: number,
  tests: readonly string[],
  w: Workload,
): Promise<Map<string, Measurement>> {
  const args = ["-h", "127.0.0.1", "-p", String(port), "-t", tests.join(",")];
  args.push("-c", String(w.clients), "-P", String(w.pipeline), "-n", String(w.requests));
  args.push("-d", String(w.valueBytes), "-r", String(w.keySpace), "--csv");
  const out = await procs.run("redis-benchmark", args, { timeoutMs: w.timeoutMs });
  return parseRedisBenchmarkCsv(out, tests, w.requests);
}

/** redis-benchmark's --csv output as figures by test name; throws unless every test has its row. */
export function parseRedisBenchmarkCsv(
  out: string,
  tests: readonly string[],
  requests: number,
): Map<string, Measurement> {
  const lines = out.split(/\r?\n/).filter((l) => l.startsWith('"'));
  if (lines[0] !== CSV_HEADER) throw new CommandError(`unexpected redis-benchmark output:\n${out}`);
  const results = new Map<string, Measurement>();
  for (const line of lines.slice(1)) {
    const [test, rps, , , p50, , p99] = line.split(",").map((c) => c.replace(/^"|"$/g, ""));
    const m = { requests, opsPerSec: Number(rps), p50Ms: Number(p50), p99Ms: Number(p99) };
    if (![m.opsPerSec, m.p50Ms, m.p99Ms].every(Number.isFinite))
      throw new CommandError(`unreadable redis-benchmark row: ${line}`);
    results.set(test!, m);
  }
  for (const t of tests)
    if (!results.has(t.toUpperCase())) throw new CommandError(`redis-benchmark printed no ${t} row:\n${out}`);
  return results;
}

interface EtcdLoadReport {
  ok: number;
  errors: number;
  first_error: string;
  ops_s: number;
  p50_ms: number;
  p99_ms: number;
}

/** One pass of the Go load generator: puts, or linearizable gets, of keys 0…keySpace-1. */
export async function etcdLoad(
  procs: Processes,
  binary: string,
  endpoints: string,
  op: "put" | "get",
  w: Workload,
): Promise<Measurement> {
  const args = ["--op", op, "--endpoints", endpoints, "--conns", String(w.clients)];
  args.push(
    "--clients",
    String(w.clients),
    "--total",
    String(w.requests),
    "--val-size",
    String(w.valueBytes),
  );
  args.push("--key-space", String(w.keySpace), "--max-seconds", String(Math.floor(w.timeoutMs / 1000)));
  // The generator stops issuing at --max-seconds; a minute more lets it drain and report.
  const out = await procs.run(binary, args, { timeoutMs: w.timeoutMs + 60_000 });
  const r = JSON.parse(out.trim().split("\n").at(-1) ?? "") as EtcdLoadReport;
  if (r.errors > 0) throw new CommandError(`etcd ${op}: ${r.errors} errors, the first: ${r.first_error}`);
  return { requests: r.ok, opsPerSec: r.ops_s, p50Ms: r.p50_ms, p99Ms: r.p99_ms };
}
