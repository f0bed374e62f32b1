/**
 * raftkv against etcd and Redis, in one run (issue 6, acceptance 6): a 3-node raftkv cluster and a
 * redis-server with `appendfsync always` under redis-benchmark (SET and GET, 50 clients, pipeline 1 and
 * 16, 256-byte values, random keys over 100k), and a 3-member etcd 3.4 cluster under the Go load
 * generator from the shared anchors (puts and linearizable gets, 50 clients on 50 connections over all
 * members). Prints ops/s and p50/p99 per system and workload, the ratios and the goals, and writes
 * the same as JSON. Installs missing Debian packages (as root) and builds the Go load generator.
 *
 *   npm run bench:redis [-- --quick] [--requests N] [--pipelined-requests N] [--etcd-requests N]
 *                       [--warmup N] [--clients N] [--timeout SECONDS] [--systems raftkv,redis,etcd]
 *                       [--json PATH]
 *
 * ANCHORS_DIR locates the anchors folder (default: ../shared/anchors from the project root).
 */
import { mkdirSync, writeFileSync } from "node:fs";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { etcdLoad, redisBenchmark, type Workload } from "./compare/load.js";
import {
  buildEtcdLoad,
  ETCD_PACKAGES,
  ensurePackages,
  etcdLoadSource,
  machine,
  REDIS_PACKAGES,
  versions,
} from "./compare/prerequisites.js";
import { CommandError, Processes } from "./compare/processes.js";
import { compare, printComparison, printRows, type Row, type System } from "./compare/report.js";
import { startEtcd, startRaftkv, startRedisAofAlways } from "./compare/systems.js";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const CLI = path.join(ROOT, "dist", "src", "cli", "raftkv.js");
const VALUE_BYTES = 256;
const KEY_SPACE = 100_000;

/** Defaults sized for stable figures in a few minutes on a 2-core machine; --quick is a smoke test. */
const DEFAULTS = {
  full: { requests: 200_000, pipelined: 500_000, etcd: 50_000, warmup: 20_000, timeout: 900 },
  quick: { requests: 5_000, pipelined: 20_000, etcd: 2_000, warmup: 1_000, timeout: 120 },
};

function options() {
  const { values } = parseArgs({
    options: {
      quick: { type: "boolean", default: false },
      requests: { type: "string" },
      "pipelined-requests": { type: "string" },
      "etcd-requests": { type: "string" },
      warmup: { type: "string" },
      clients: { type: "string", default: "50" },
      timeout: { type: "string" },
      systems: { type: "string", default: "raftkv,redis,etcd" },
      json: { type: "string" },
    },
  });
  const d = values.quick ? DEFAULTS.quick : DEFAULTS.full;
  const int = (name: string, text: string | undefined, fallback: number, max: number) => {
    const n = text === undefined ? fallback : Number(text);
    if (!Number.isSafeInteger(n) || n <= 0 || n > max)
      throw new CommandError(`--${name} must be an integer from 1 to ${max}, got ${text}`);
    return n;
  };
  const systems = values.systems.split(",").map((s) => s.trim());
  for (const s of systems)
    if (s !== "raftkv" && s !== "redis" && s !== "etcd")
      throw new CommandError(`--systems: unknown system ${s} (raftkv, redis, etcd)`);
  const stamp = new Date().toISOString().replace(/[:.]/g, "-");
  return {
    quick: values.quick,
    requests: int("requests", values.requests, d.requests, 100_000_000),
    pipelined: int("pipelined-requests", values["pipelined-requests"], d.pipelined, 100_000_000),
    etcdRequests: int("etcd-requests", values["etcd-requests"], d.etcd, 10_000_000),
    warmup: int("warmup", values.warmup, d.warmup, 10_000_000),
    clients: int("clients", values.clients, 50, 10_000),
    timeoutMs: int("timeout", values.timeout, d.timeout, 86_400) * 1000,
    systems: new Set(systems as System[]),
    json: path.resolve(values.json ?? path.join(ROOT, "bench-results", `bench-redis-${stamp}.json`)),
  };
}

type Options = ReturnType<typeof options>;

async function main(procs: Processes, o: Options): Promise<void> {
  const anchorsDir = path.resolve(process.env.ANCHORS_DIR ?? path.join(ROOT, "..", "shared", "anchors"));
  const withEtcd = o.systems.has("etcd");
  const source = withEtcd ? etcdLoadSource(anchorsDir) : "";
  await ensurePackages(procs, withEtcd ? [...REDIS_PACKAGES, ...ETCD_PACKAGES] : REDIS_PACKAGES);
  const etcdload = withEtcd ? await buildEtcdLoad(procs, source) : "";

  const host = machine();
  const vers = await versions(procs, ROOT, withEtcd);
  console.log(o.quick ? "\n*** QUICK SMOKE RUN: the figures below mean nothing ***" : "");
  console.log(`machine: ${host.nproc} CPUs, ${host.cpu}, ${host.memoryGiB} GiB; ${host.os}; ${host.kernel}`);
  console.log(`load average at start: ${host.loadAverage.join(" ")}`);
  for (const [k, v] of Object.entries(vers)) console.log(`${k}: ${v}`);
  const work = (pipeline: number, requests: number): Workload => ({
    clients: o.clients,
    pipeline,
    requests,
    valueBytes: VALUE_BYTES,
    keySpace: KEY_SPACE,
    timeoutMs: o.timeoutMs,
  });
  console.log(
    `workload: ${o.clients} clients, ${VALUE_BYTES}-byte values, keys over ${KEY_SPACE}; ` +
      `${o.requests} requests a test at pipeline 1, ${o.pipelined} at pipeline 16, ${o.etcdRequests} ` +
      `for etcd; a ${o.warmup}-request SET warm-up first (etcd: ${Math.ceil(o.warmup / 10)} puts)\n`,
  );

  const rows: Row[] = [];
  /** redis-benchmark SET then GET at one pipeline depth, as two rows. */
  const setGet = async (system: System, port: number, via: string, pipeline: number) => {
    console.log(`${system}: SET, GET at pipeline ${pipeline} via ${via}…`);
    const requests = pipeline > 1 ? o.pipelined : o.requests;
    const r = await redisBenchmark(procs, port, ["set", "get"], work(pipeline, requests));
    const suffix = system === "raftkv" ? ` ${via}` : "";
    for (const [test, kind] of [
      ["SET", "write"],
      ["GET", "read"],
    ] as const)
      rows.push({
        id: `${system} ${test} P${pipeline}${suffix}`,
        system,
        kind,
        pipeline,
        via,
        ...r.get(test)!,
      });
  };

  if (o.systems.has("raftkv")) {
    console.log("starting a 3-node raftkv cluster…");
    const c = await startRaftkv(procs, CLI);
    await redisBenchmark(procs, c.leaderPort, ["set"], work(1, o.warmup));
    await setGet("raftkv", c.leaderPort, "leader", 1);
    await setGet("raftkv", c.leaderPort, "leader", 16);
    await setGet("raftkv", c.followerPort, "follower", 1);
    for (const s of c.servers) procs.assertRunning(s);
    await procs.stop(c.servers);
    console.log("starting a 3-node raftkv cluster with lease reads (serve --lease-reads)…");
    const lease = await startRaftkv(procs, CLI, { leaseReads: true });
    await redisBenchmark(procs, lease.leaderPort, ["set"], work(1, o.warmup));
    await setGet("raftkv", lease.leaderPort, "leader lease", 1);
    for (const s of lease.servers) procs.assertRunning(s);
    await procs.stop(lease.servers);
  }
  if (o.systems.has("redis")) {
    console.log("starting redis-server (appendonly yes, appendfsync always)…");
    const r = await startRedisAofAlways(procs);
    await redisBenchmark(procs, r.port, ["set"], work(1, o.warmup));
    await setGet("redis", r.port, "redis-server (AOF always)", 1);
    await setGet("redis", r.port, "redis-server (AOF always)", 16);
    await procs.stop(r.servers);
  }
  if (withEtcd) {
    console.log("starting a 3-member etcd cluster…");
    const e = await startEtcd(procs);
    await etcdLoad(procs, etcdload, e.endpoints, "put", work(1, Math.ceil(o.warmup / 10)));
    const via = "all 3 members";
    console.log(`etcd: puts, then linearizable gets, via ${via}…`);
    const put = await etcdLoad(procs, etcdload, e.endpoints, "put", work(1, o.etcdRequests));
    rows.push({ id: "etcd put", system: "etcd", kind: "write", pipeline: 1, via, ...put });
    const get = await etcdLoad(procs, etcdload, e.endpoints, "get", work(1, o.etcdRequests));
    rows.push({ id: "etcd linearizable get", system: "etcd", kind: "read", pipeline: 1, via, ...get });
    await procs.stop(e.servers);
  }

  const end = machine().loadAverage;
  console.log(`\nload average at end: ${end.join(" ")}\n`);
  printRows(rows);
  const comparison = compare(rows);
  printComparison(comparison);
  mkdirSync(path.dirname(o.json), { recursive: true });
  const settings = { ...o, systems: [...o.systems], valueBytes: VALUE_BYTES, keySpace: KEY_SPACE };
  const report = { date: new Date().toISOString(), settings, machine: { ...host, loadAverageAtEnd: end } };
  writeFileSync(o.json, `${JSON.stringify({ ...report, versions: vers, rows, ...comparison }, null, 2)}\n`);
  console.log(`\nJSON: ${o.json}`);
}

let procs: Processes | undefined;
try {
  const o = options();
  procs = new Processes();
  await main(procs, o);
} catch (err) {
  // After Ctrl-C the interrupted command's failure is no news.
  if (procs?.stopping) process.exit(130);
  const usage = err instanceof CommandError || (err instanceof TypeError && "code" in err);
  console.error(`bench:redis: ${usage ? err.message : err instanceof Error ? err.stack : String(err)}`);
  process.exitCode = 1;
} finally {
  await procs?.cleanup();
}
