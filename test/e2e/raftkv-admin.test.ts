/**
 * `raftkv admin` against real `raftkv serve` processes, as an operator grows and reshapes a cluster:
 * status of three nodes; a fourth started with --join (from a config file) is added as a learner,
 * promoted, and serves a read of a write made through another node; a node is removed; leadership moves
 * to the new node; the new node restarted knowing only its own address still finds the cluster (its
 * address book is in its state). Errors come back typed, with their exit status.
 */
import assert from "node:assert/strict";
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { after, describe, it } from "node:test";
import { Redis } from "ioredis";
import { AdminClient } from "../../src/api/admin/client.js";
import { NodeUnreachableError, UnknownNodeError } from "../../src/api/admin/errors.js";
import { admin as adminCommand, adminExitStatus } from "../../src/cli/admin.js";
import { type ClusterStatus, gatherClusterStatus } from "../../src/cli/cluster-status.js";
import { freePort } from "../../src/net/loopback-ports.js";

const CLI = path.resolve("dist/src/cli/raftkv.js");
const data = mkdtempSync(path.join(os.tmpdir(), "raftkv-admin-"));
const children = new Set<ChildProcess>();
after(() => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
  rmSync(data, { recursive: true, force: true });
});

interface Node {
  id: number;
  raft: string;
  redisPort: number;
  process: ChildProcess | null;
}

function startServe(node: Node, args: readonly string[]): Promise<void> {
  const child = spawn(process.execPath, [CLI, "serve", ...args], { stdio: ["ignore", "pipe", "pipe"] });
  children.add(child);
  node.process = child;
  return new Promise((resolve, reject) => {
    let out = "";
    const onData = (d: Buffer) => {
      out += d.toString();
      if (out.includes("raftkv node serving")) resolve();
    };
    child.stdout.on("data", onData);
    child.stderr.on("data", onData);
    child.once("exit", (code) =>
      reject(new Error(`node ${node.id} exited (${code}) while starting:\n${out}`)),
    );
  });
}

async function stop(node: Node): Promise<void> {
  const child = node.process;
  if (child === null || child.exitCode !== null) return;
  const exited = new Promise((resolve) => child.once("exit", resolve));
  child.kill("SIGTERM");
  await exited;
  node.process = null;
}

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function admin(endpoint: string, ...args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [CLI, "admin", "--endpoint", endpoint, "--timeout-ms", "5000", ...args],
      (err, stdout, stderr) => {
        const code = err === null ? 0 : typeof err.code === "number" ? err.code : -1;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

async function adminOk(endpoint: string, ...args: string[]): Promise<unknown> {
  const r = await admin(endpoint, "--json", ...args);
  assert.equal(r.code, 0, `admin ${args.join(" ")} failed: ${r.stderr}`);
  return JSON.parse(r.stdout);
}

/**
 * Asks for status until `ready` accepts it (a leader elected, a learner caught up, …): in this process,
 * with the library the command line uses, so that waiting costs no process per poll.
 */
async function statusWhen(
  endpoint: string,
  ready: (s: ClusterStatus) => boolean,
  what: string,
): Promise<ClusterStatus> {
  const client = new AdminClient(endpoint, { timeoutMs: 2_000 });
  let last: unknown = null;
  try {
    for (let attempt = 0; attempt < 200; attempt++) {
      try {
        const s = await gatherClusterStatus(client, 2_000);
        if (ready(s)) return s;
        last = s;
      } catch (err) {
        last = String(err);
      }
      await new Promise((res) => setTimeout(res, 50));
    }
  } finally {
    client.close();
  }
  throw new Error(`status never showed ${what}; last: ${JSON.stringify(last)}`);
}

function redis(port: number): Redis {
  const r = new Redis({ port, host: "127.0.0.1", maxRetriesPerRequest: 0, retryStrategy: () => null });
  r.on("error", () => undefined);
  return r;
}

/** A command retried while leadership settles (a write during an election answers an error). */
async function eventually<T>(fn: () => Promise<T>): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await fn();
    } catch (err) {
      if (attempt >= 50) throw err;
      await new Promise((res) => setTimeout(res, 100));
    }
  }
}

describe("raftkv admin", () => {
  it("grows a cluster with a learner, promotes it, removes a node, moves leadership, and survives a restart", async () => {
    const nodes: Node[] = [];
    for (let id = 1; id <= 4; id++)
      nodes.push({ id, raft: `127.0.0.1:${await freePort()}`, redisPort: await freePort(), process: null });
    const [n1, n2, n3, n4] = nodes as [Node, Node, Node, Node];
    const founding = [n1, n2, n3].map((n) => `${n.id}=${n.raft}`).join(",");
    const serveArgs = (n: Node, peers: string) => [
      "--id",
      String(n.id),
      "--data-dir",
      path.join(data, `n${n.id}`),
      "--peers",
      peers,
      "--redis",
      `127.0.0.1:${n.redisPort}`,
      "--tick-ms",
      "20",
      // Elections after 400-800 ms: a loaded machine should not depose leaders while commands run.
      "--election-ticks",
      "20",
    ];
    await Promise.all([n1, n2, n3].map((n) => startServe(n, serveArgs(n, founding))));

    // Status: three voters, one leader, and the leader's view of each.
    await statusWhen(n2.raft, (s) => s.leader !== 0, "a leader");
    // (Independent commands run side by side: each is a process start.)
    const [firstJson, human] = await Promise.all([adminOk(n2.raft, "status"), admin(n1.raft, "status")]);
    const first = firstJson as ClusterStatus;
    assert.deepEqual(first.membership.voters, [1, 2, 3]);
    assert.deepEqual(
      first.nodes.map((n) => [n.id, n.address, n.reachable]),
      [
        [1, n1.raft, true],
        [2, n2.raft, true],
        [3, n3.raft, true],
      ],
    );
    assert.deepEqual(
      first.progress.map((p) => p.id),
      [1, 2, 3],
    );
    assert.equal(human.code, 0);
    assert.match(human.stdout, /membership: voters 1, 2, 3; learners none/);
    assert.match(human.stdout, /replication, as leader \d sees it:/);

    // A fourth node from a config file, joining: it waits to be added and elects no one alone.
    const config = path.join(data, "n4.json");
    writeFileSync(
      config,
      JSON.stringify({
        id: 4,
        "data-dir": path.join(data, "n4"),
        peers: { ...Object.fromEntries([n1, n2, n3, n4].map((n) => [String(n.id), n.raft])) },
        redis: `127.0.0.1:${n4.redisPort}`,
        join: true,
        "tick-ms": 500, // overridden by the flag below
      }),
    );
    const joinArgs = ["--config", config, "--tick-ms", "20", "--election-ticks", "20"];
    await startServe(n4, joinArgs);
    const alone = (await adminOk(n4.raft, "status")) as ClusterStatus;
    assert.equal(alone.nodes[0]?.reachable && alone.nodes[0].status.role, "follower");
    assert.deepEqual(alone.membership.voters, [], "a joining node knows no membership yet");

    const writer = redis(n1.redisPort);
    assert.equal(await eventually(() => writer.set("before-join", "old")), "OK");

    // Added as a learner through a follower (redirected to the leader), then promoted once caught up.
    const follower = first.nodes.find((n) => n.id !== first.leader)!;
    const added = (await adminOk(follower.address, "add-learner", "4", n4.raft)) as {
      membership: { voters: number[]; learners: number[] };
    };
    assert.deepEqual(added.membership, {
      voters: [1, 2, 3],
      learners: [4],
      votersOutgoing: [],
      learnersNext: [],
    });
    await statusWhen(
      n1.raft,
      (s) => {
        const p = s.progress.find((x) => x.id === 4);
        const leader = s.nodes.find((n) => n.id === s.leader);
        return p !== undefined && leader?.reachable === true && p.match >= leader.status.commit;
      },
      "learner 4 caught up",
    );
    const promoted = (await adminOk(n3.raft, "promote", "4")) as { membership: { voters: number[] } };
    assert.deepEqual(promoted.membership.voters, [1, 2, 3, 4]);

    // A write through node 1, read back on the new node (a linearizable read there).
    assert.equal(await eventually(() => writer.set("greeting", "hello")), "OK");
    const reader = redis(n4.redisPort);
    assert.equal(await eventually(() => reader.get("greeting")), "hello");
    assert.equal(
      await reader.get("before-join"),
      "old",
      "what was written before it joined came in the snapshot",
    );

    // Typed errors and their exit statuses: one through the command line, the others through the same
    // command in this process (a process start is costly on a loaded machine).
    const again = await admin(n1.raft, "--json", "promote", "4");
    assert.equal(again.code, 5, again.stderr);
    assert.equal((JSON.parse(again.stdout) as { error: { reason: string } }).error.reason, "already-a-voter");
    assert.match(again.stderr, /change refused \(already-a-voter\)/);
    const failure = (args: string[]) =>
      adminCommand(args, () => assert.fail("no output expected")).then(
        () => assert.fail(`admin ${args.join(" ")} succeeded`),
        (e: unknown) => e,
      );
    const unknown = await failure(["--endpoint", n1.raft, "remove", "9"]);
    assert.ok(unknown instanceof UnknownNodeError && unknown.nodeId === 9, String(unknown));
    assert.equal(adminExitStatus(unknown), 4);
    const dead = await failure(["--endpoint", `127.0.0.1:${await freePort()}`, "status"]);
    assert.ok(dead instanceof NodeUnreachableError, String(dead));
    assert.equal(adminExitStatus(dead), 7);

    // Remove a founding node that does not lead, and stop it.
    const now = await statusWhen(n1.raft, (s) => s.leader !== 0, "a leader");
    const removed = [n1, n2, n3].find((n) => n.id !== now.leader)!;
    const afterRemoval = (await adminOk(n4.raft, "remove", String(removed.id))) as {
      membership: { voters: number[] };
    };
    assert.deepEqual(
      afterRemoval.membership.voters,
      [1, 2, 3, 4].filter((id) => id !== removed.id),
    );
    await stop(removed);
    const stayed = [n1, n2, n3].filter((n) => n !== removed);

    // Leadership to the new node.
    assert.deepEqual(await adminOk(stayed[0]!.raft, "transfer-leader", "4"), { leader: 4 });
    const moved = await statusWhen(stayed[0]!.raft, (s) => s.leader === 4, "node 4 leading");
    assert.deepEqual(
      moved.membership.voters,
      [1, 2, 3, 4].filter((id) => id !== removed.id),
    );

    // Restarted knowing only its own address: the others' come from its address book.
    reader.disconnect();
    await stop(n4);
    await startServe(n4, serveArgs(n4, `4=${n4.raft}`));
    const back = await statusWhen(
      n4.raft,
      (s) =>
        s.leader !== 0 &&
        s.nodes.every((n) => n.reachable) &&
        s.nodes.some((n) => n.id === 4 && n.reachable && n.status.leader === s.leader),
      "node 4 back in the cluster",
    );
    assert.deepEqual(
      back.nodes.map((n) => [n.id, n.address]).sort(),
      [...stayed, n4].map((n) => [n.id, n.raft]).sort(),
      "node 4 knows every member's address",
    );
    const reader4 = redis(n4.redisPort);
    assert.equal(await eventually(() => reader4.set("after-restart", "yes")), "OK");
    const other = redis(stayed[0]!.redisPort);
    assert.equal(await eventually(() => other.get("after-restart")), "yes");
    assert.equal(await reader4.get("greeting"), "hello");
    reader4.disconnect();
    other.disconnect();
    writer.disconnect();
    for (const n of nodes) await stop(n);
  });
});
