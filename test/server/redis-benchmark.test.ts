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
const TESTS = ["SET", "GET", "INCR", "MSET (10 keys)"];

let cluster: ServerCluster;
/** INCRs sent so far, by every run: the counter must equal it. */
let increments = 0;

before(async () => {
  cluster = await ServerCluster.start();
});

after(async () => {
  await cluster?.close();
});

/** Runs redis-benchmark; returns each test's requests per second. */
async function benchmark(port: number, requests: number, pipeline: number): Promise<Map<string, number>> {
  const args = ["-h", "127.0.0.1", "-p", String(port), "-q", "-t", "set,get,incr,mset"];
  args.push("-n", String(requests), "-c", "10", "-P", String(pipeline));
  const { stdout, stderr } = await execFileAsync("redis-benchmark", args, {
    encoding: "utf8",
    timeout: 60_000,
  });
  increments += requests;
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
  assert.deepEqual([...figures.keys()], TESTS, `redis-benchmark's results:\n${stdout}`);
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
