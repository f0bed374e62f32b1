/**
 * The comparison's results: one row per system and workload, the ratios raftkv/etcd and raftkv/redis,
 * and whether the goals hold. The etcd goals compare pipeline-1 rows, the like-for-like case
 * (the etcd load generator keeps one request in flight per client); the redis goal is checked at
 * pipeline 1 and 16.
 */
import type { Measurement } from "./load.js";

export type System = "raftkv" | "redis" | "etcd";

export interface Row extends Measurement {
  /** Stable key for lookups and the JSON, e.g. "raftkv SET P1 leader". */
  id: string;
  system: System;
  kind: "write" | "read";
  pipeline: number;
  /** What the clients connect to. */
  via: string;
}

export interface Ratio {
  name: string;
  value: number;
}

export interface Goal {
  name: string;
  holds: boolean;
  detail: string;
}

export interface Comparison {
  ratios: Ratio[];
  goals: Goal[];
}

const x = (n: number) => `${n.toFixed(2)}×`;

export function compare(rows: readonly Row[]): Comparison {
  const get = (id: string) => rows.find((r) => r.id === id);
  const ratios: Ratio[] = [];
  const goals: Goal[] = [];
  const ratio = (name: string, a: Row | undefined, b: Row | undefined) => {
    if (!a || !b) return undefined;
    const value = a.opsPerSec / b.opsPerSec;
    ratios.push({ name, value });
    return value;
  };
  const atLeast = (name: string, value: number | undefined, min: number) => {
    if (value !== undefined)
      goals.push({ name, holds: value >= min, detail: `${x(value)} (goal ≥ ${min}×)` });
  };

  const set1 = get("raftkv SET P1 leader");
  const get1 = get("raftkv GET P1 leader");
  const put = get("etcd put");
  const lin = get("etcd linearizable get");
  atLeast("writes ≥ 5× etcd", ratio("raftkv SET P1 / etcd put", set1, put), 5);
  if (set1 && put)
    goals.push({
      name: "write p99 below etcd's",
      holds: set1.p99Ms < put.p99Ms,
      detail: `${set1.p99Ms} ms vs ${put.p99Ms} ms`,
    });
  atLeast("reads ≥ 5× etcd", ratio("raftkv GET P1 / etcd linearizable get", get1, lin), 5);
  for (const p of [1, 16]) {
    const w = ratio(
      `raftkv SET P${p} / redis SET P${p}`,
      get(`raftkv SET P${p} leader`),
      get(`redis SET P${p}`),
    );
    atLeast(`writes ≥ 0.5× redis AOF-always (P${p})`, w, 0.5);
    ratio(`raftkv GET P${p} / redis GET P${p}`, get(`raftkv GET P${p} leader`), get(`redis GET P${p}`));
  }
  ratio("raftkv SET P1 via follower / etcd put", get("raftkv SET P1 follower"), put);
  ratio("raftkv GET P1 via follower / etcd linearizable get", get("raftkv GET P1 follower"), lin);
  // Lease reads are linearizable only while clocks drift less than raft's bound; etcd's gets use a read
  // index, as raftkv's default does: shown beside the goal, not judged by it.
  ratio("raftkv GET P1 lease reads / etcd linearizable get", get("raftkv GET P1 leader lease"), lin);
  return { ratios, goals };
}

export function printRows(rows: readonly Row[]): void {
  const header = ["system / workload", "via", "requests", "ops/s", "p50 ms", "p99 ms"];
  const cells = rows.map((r) => [
    r.id,
    r.via,
    String(r.requests),
    String(Math.round(r.opsPerSec)),
    r.p50Ms.toFixed(3),
    r.p99Ms.toFixed(3),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i]!.length)));
  const line = (c: string[]) =>
    c.map((s, i) => (i < 2 ? s.padEnd(widths[i]!) : s.padStart(widths[i]!))).join("  ");
  console.log(line(header));
  for (const c of cells) console.log(line(c));
}

export function printComparison({ ratios, goals }: Comparison): void {
  console.log("\nratios (ops/s):");
  for (const r of ratios) console.log(`  ${r.name.padEnd(50)} ${x(r.value)}`);
  console.log("\ngoals:");
  for (const g of goals) console.log(`  [${g.holds ? "holds" : "FAILS"}] ${g.name.padEnd(38)} ${g.detail}`);
}
