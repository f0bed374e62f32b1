/**
 * The pure parts of `npm run bench:redis`: reading redis-benchmark's CSV, and the ratios and goals
 * computed from the rows (the run itself needs the servers, so it is smoke-tested by hand).
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { parseRedisBenchmarkCsv } from "../../bench/compare/load.js";
import { CommandError } from "../../bench/compare/processes.js";
import { compare, type Row } from "../../bench/compare/report.js";

// As redis-benchmark 7.0.15 prints it (the last line has no newline).
const CSV = [
  '"test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms","p99_latency_ms","max_latency_ms"',
  '"SET","20408.16","0.178","0.024","0.071","0.159","2.887","16.143"',
  '"GET","50000.00","0.064","0.016","0.063","0.095","0.127","0.167"',
].join("\n");

describe("parseRedisBenchmarkCsv", () => {
  it("reads ops/s, p50 and p99 of every test", () => {
    const r = parseRedisBenchmarkCsv(`WARNING: Could not fetch server CONFIG\n${CSV}`, ["set", "get"], 1000);
    assert.deepEqual(r.get("SET"), { requests: 1000, opsPerSec: 20408.16, p50Ms: 0.071, p99Ms: 2.887 });
    assert.deepEqual(r.get("GET"), { requests: 1000, opsPerSec: 50000, p50Ms: 0.063, p99Ms: 0.127 });
  });

  it("throws when a test's row is missing or the output is not the CSV", () => {
    const setOnly = CSV.split("\n").slice(0, 2).join("\n");
    assert.throws(() => parseRedisBenchmarkCsv(setOnly, ["set", "get"], 1), /no get row/);
    assert.throws(
      () => parseRedisBenchmarkCsv("SET: 20408.16 requests per second", ["set"], 1),
      CommandError,
    );
    assert.throws(() => parseRedisBenchmarkCsv(CSV.replace("20408.16", "n/a"), ["set"], 1), /unreadable/);
  });
});

function row(id: string, opsPerSec: number, p99Ms: number): Row {
  const [system, , p] = id.split(" ");
  return {
    id,
    system: system as Row["system"],
    kind: id.includes("SET") || id.includes("put") ? "write" : "read",
    pipeline: p === "P16" ? 16 : 1,
    via: "test",
    requests: 1,
    opsPerSec,
    p50Ms: p99Ms / 2,
    p99Ms,
  };
}

describe("compare", () => {
  const rows = [
    row("raftkv SET P1 leader", 15_000, 20),
    row("raftkv GET P1 leader", 18_000, 5),
    row("raftkv SET P16 leader", 40_000, 50),
    row("raftkv GET P16 leader", 90_000, 9),
    row("redis SET P1", 40_000, 2),
    row("redis GET P1", 60_000, 1),
    row("redis SET P16", 100_000, 20),
    row("redis GET P16", 400_000, 3),
    row("etcd put", 2_500, 60),
    row("etcd linearizable get", 4_000, 50),
  ];

  it("computes the ratios and judges each goal", () => {
    const { ratios, goals } = compare(rows);
    const ratio = (name: string) => ratios.find((r) => r.name === name)?.value;
    assert.equal(ratio("raftkv SET P1 / etcd put"), 6);
    assert.equal(ratio("raftkv GET P1 / etcd linearizable get"), 4.5);
    assert.equal(ratio("raftkv SET P16 / redis SET P16"), 0.4);
    const holds = Object.fromEntries(goals.map((g) => [g.name, g.holds]));
    assert.deepEqual(holds, {
      "writes ≥ 5× etcd": true,
      "write p99 below etcd's": true,
      "reads ≥ 5× etcd": false,
      "writes ≥ 0.5× redis AOF-always (P1)": false,
      "writes ≥ 0.5× redis AOF-always (P16)": false,
    });
  });

  it("a slower p99 than etcd's fails that goal whatever the throughput", () => {
    const slow = rows.map((r) => (r.id === "raftkv SET P1 leader" ? { ...r, p99Ms: 61 } : r));
    const goal = compare(slow).goals.find((g) => g.name === "write p99 below etcd's");
    assert.equal(goal?.holds, false);
  });

  it("judges only the goals whose systems were measured", () => {
    const { goals } = compare(rows.filter((r) => r.system !== "etcd"));
    assert.deepEqual(
      goals.map((g) => g.name),
      ["writes ≥ 0.5× redis AOF-always (P1)", "writes ≥ 0.5× redis AOF-always (P16)"],
    );
  });
});
