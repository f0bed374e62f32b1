/**
 * Debian's `redis-benchmark` against a 3-node cluster of `raftkv serve` processes, through the leader and
 * through a follower, with and without pipelining: it must finish cleanly with a figure for every test
 * (it exits non-zero on the first error reply), and afterwards the keys it wrote must read the same on
 * every node, its counter counting every INCR it sent exactly once. No figure is judged: this is a
 * compatibility test, not a measurement.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { after, before, describe, it } from "node:test";
import { promisify } from "node:util";
import { Redis } from "ioredis";
import { ServerCluster } from "./cluster.js";

const execFileAsync = promisify(execFile);
const STRING_TESTS = ["SET", "GET", "INCR", "MSET (10 keys)"];
/** Issue 7's data types; LRANGE is preceded by its own LPUSH, and runs four lengths. */
const TYPE_TESTS = [
  "LPUSH",
  "RPUSH",
  "LPOP",
  "RPOP",
  "SADD",
  "HSET",
  "SPOP",
  "ZADD",
  "ZPOPMIN",
  "LPUSH (needed to benchmark LRANGE)",
  "LRANGE_100 (first 100 elements)",
  "LRANGE_300 (first 300 elements)",
  "LRANGE_500 (first 500 elements)",
  "LRANGE_600 (first 600 elements)",
];

let cluster: ServerCluster;
/** INCRs sent so far, by every run: the counter must equal it. */
let increments = 0;

before(async () => {
  cluster = await ServerCluster.start();
});

after(async () => {
  await cluster?.close();
});

/** Runs redis-benchmark's `tests`; returns each test's requests per second. */
async function benchmark(
  port: number,
  requests: number,
  pipeline: number,
  tests = "set,get,incr,mset",
  expected = STRING_TESTS,
): Promise<Map<string, number>> {
  const args = ["-h", "127.0.0.1", "-p", String(port), "-q", "-t", tests];
  args.push("-n", String(requests), "-c", "10", "-P", String(pipeline));
  const { stdout, stderr } = await execFileAsync("redis-benchmark", args, {
    encoding: "utf8",
    timeout: 60_000,
  });
  if (tests.includes("incr")) increments += requests;
  assert.equal(stderr.trim(), "", "redis-benchmark complained");
  // With -q it redraws a progress line with CRs and ends each test with one line of its result.
  const lines = stdout.split(/[\r\n]+/).filter((l) => l.trim() !== "");
  assert.deepEqual(
    lines.filter((l) => /error/i.test(l)),
    [],
    "error lines in redis-benchmark's output",
  );
  const figures = new Map<string, number>();
  for (const line of lines) {
    const m = /^(.+): ([\d.]+) requests per second/.exec(line);
    if (m) figures.set(m[1]!, Number(m[2]));
  }
  assert.deepEqual([...figures.keys()], expected, `redis-benchmark's results:\n${stdout}`);
  for (const [test, rps] of figures) assert.ok(rps > 0, `${test}: ${rps} requests per second`);
  return figures;
}

describe("redis-benchmark against the cluster", () => {
  for (const via of ["leader", "follower"] as const) {
    for (const [pipeline, requests] of [
      // Fewer requests unpipelined: each is a round trip through raft, and this is not a measurement.
      [1, 200],
      [16, 2000],
    ] as const) {
      it(`-t set,get,incr,mset -n ${requests} -c 10 -P ${pipeline}, through the ${via}`, async () => {
        const node = via === "leader" ? await cluster.leader() : await cluster.follower();
        await benchmark(node.port, requests, pipeline);
      });
    }
  }

  it("afterwards every node holds the same keys: the value written, and every INCR counted once", async () => {
    assert.ok(increments > 0);
    const values = new Set<string | null>();
    for (const node of cluster.nodes) {
      const client = new Redis({ port: node.port, host: "127.0.0.1", maxRetriesPerRequest: 0 });
      try {
        assert.deepEqual(
          (await client.keys("*")).sort(),
          ["counter:__rand_int__", "key:__rand_int__"],
          `node ${node.id}`,
        );
        // redis-benchmark's values: 3 bytes (its default -d) of its own making, the same in every test.
        const value = await client.get("key:__rand_int__");
        assert.equal(value?.length, 3, `node ${node.id}: ${value}`);
        values.add(value);
        assert.equal(await client.get("counter:__rand_int__"), String(increments), `node ${node.id}`);
      } finally {
        client.disconnect();
      }
    }
    assert.equal(values.size, 1, `the nodes disagree: ${[...values].join(", ")}`);
  });
});

describe("redis-benchmark's list, set, hash and sorted-set tests against the cluster", () => {
  for (const via of ["leader", "follower"] as const) {
    for (const [pipeline, requests] of [
      [1, 100],
      [16, 1000],
    ] as const) {
      it(`-t lpush,rpush,lpop,rpop,sadd,hset,spop,zadd,zpopmin,lrange -n ${requests} -P ${pipeline}, through the ${via}`, async () => {
        const node = via === "leader" ? await cluster.leader() : await cluster.follower();
        const tests = "lpush,rpush,lpop,rpop,sadd,hset,spop,zadd,zpopmin,lrange";
        await benchmark(node.port, requests, pipeline, tests, TYPE_TESTS);
      });
    }
  }

  it("afterwards every node holds the same collections", async () => {
    // Pipelined, redis-benchmark may send a few requests past -n, so the lengths are compared, not
    // predicted: what the leader holds, every node holds.
    const leader = await cluster.leader();
    const reference = new Redis({ port: leader.port, host: "127.0.0.1", maxRetriesPerRequest: 0 });
    const length = await reference.llen("mylist");
    const head = await reference.lrange("mylist", 0, 9);
    reference.disconnect();
    assert.ok(length > 0, "LRANGE's own pushes are in mylist");
    for (const node of cluster.nodes) {
      const client = new Redis({ port: node.port, host: "127.0.0.1", maxRetriesPerRequest: 0 });
      try {
        assert.equal(await client.llen("mylist"), length, `node ${node.id}`);
        assert.deepEqual(await client.lrange("mylist", 0, 9), head, `node ${node.id}`);
        assert.equal(await client.type("myhash"), "hash", `node ${node.id}`);
        // SPOP and ZPOPMIN took what SADD and ZADD added (one member each: the key has no random part).
        assert.equal(await client.scard("myset"), 0, `node ${node.id}`);
        assert.equal(await client.zcard("myzset"), 0, `node ${node.id}`);
      } finally {
        client.disconnect();
      }
    }
  });
});
