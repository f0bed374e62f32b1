/**
 * The three systems compared, each started fresh (new data directories under the scratch directory)
 * on loopback: a 3-node raftkv cluster of `raftkv serve` processes, one redis-server with an
 * fsync-always append-only file, and a 3-member etcd cluster with its default (fsync every commit) WAL.
 */
import { mkdirSync } from "node:fs";
import * as path from "node:path";
import { serveArgs } from "../../src/cli/serve-config.js";
import { freePort } from "../../src/net/loopback-ports.js";
import { CommandError, type Processes, type Server } from "./processes.js";

const READY_TIMEOUT_MS = 60_000;
const POLL_MS = 250;

export interface RaftkvCluster {
  leaderPort: number;
  followerPort: number;
  servers: Server[];
}

export interface RedisServer {
  port: number;
  servers: Server[];
}

export interface EtcdCluster {
  /** host:port of every member's client address, comma-separated, as the load generator takes them. */
  endpoints: string;
  servers: Server[];
}

async function pollUntil<T>(
  what: string,
  servers: Server[],
  procs: Processes,
  probe: () => Promise<T | null>,
) {
  const deadline = Date.now() + READY_TIMEOUT_MS;
  for (;;) {
    for (const s of servers) procs.assertRunning(s);
    const result = await probe();
    if (result !== null) return result;
    if (Date.now() > deadline) throw new CommandError(`${what} not ready after ${READY_TIMEOUT_MS / 1000} s`);
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
}

/** redis-cli's reply to one command, or null when the server does not answer (yet). */
async function redisCli(procs: Processes, port: number, ...args: string[]): Promise<string | null> {
  try {
    return (
      await procs.run("redis-cli", ["-h", "127.0.0.1", "-p", String(port), ...args], { timeoutMs: 5000 })
    ).trim();
  } catch {
    return null;
  }
}

/** `leaseReads`: the nodes serve reads on the leader's lease (`serve --lease-reads`). */
export async function startRaftkv(
  procs: Processes,
  cliPath: string,
  options: { leaseReads?: boolean } = {},
): Promise<RaftkvCluster> {
  const ids = [1, 2, 3];
  const redisPorts: number[] = [];
  const raftPorts: number[] = [];
  for (const _ of ids) {
    redisPorts.push(await freePort());
    raftPorts.push(await freePort());
  }
  const peers = new Map(ids.map((id, i) => [id, `127.0.0.1:${raftPorts[i]}`]));
  const servers = ids.map((id, i) => {
    const dataDir = path.join(procs.scratch, `raftkv-${options.leaseReads === true ? "lease-" : ""}${id}`);
    mkdirSync(dataDir);
    return procs.startServer(`raftkv-${id}`, process.execPath, [
      cliPath,
      ...serveArgs({
        id,
        "data-dir": dataDir,
        peers,
        redis: `127.0.0.1:${redisPorts[i]}`,
        ...(options.leaseReads === true ? { "lease-reads": true } : {}),
      }),
    ]);
  });
  const leader = await pollUntil("the raftkv cluster", servers, procs, async () => {
    const roles = await Promise.all(
      redisPorts.map(
        async (p) => /raft_role:(\w+)/.exec((await redisCli(procs, p, "info", "raft")) ?? "")?.[1],
      ),
    );
    const at = roles.indexOf("leader");
    return at >= 0 && roles.every((r) => r !== undefined) ? at : null;
  });
  const leaderPort = redisPorts[leader]!;
  const followerPort = redisPorts[(leader + 1) % ids.length]!;
  // A write through each address that the benchmark uses: the cluster commits, and forwarding works.
  for (const port of [leaderPort, followerPort])
    if ((await redisCli(procs, port, "set", "bench:ready", "1")) !== "OK")
      throw new CommandError(`raftkv did not accept a write on port ${port}`);
  return { leaderPort, followerPort, servers };
}

export async function startRedisAofAlways(procs: Processes): Promise<RedisServer> {
  const port = await freePort();
  const dir = path.join(procs.scratch, "redis");
  mkdirSync(dir);
  const server = procs.startServer("redis-server", "redis-server", [
    "--port",
    String(port),
    "--bind",
    "127.0.0.1",
    "--dir",
    dir,
    "--save",
    "",
    "--appendonly",
    "yes",
    "--appendfsync",
    "always",
    "--daemonize",
    "no",
  ]);
  await pollUntil("redis-server", [server], procs, async () =>
    (await redisCli(procs, port, "ping")) === "PONG" ? true : null,
  );
  return { port, servers: [server] };
}

export async function startEtcd(procs: Processes): Promise<EtcdCluster> {
  const names = ["m1", "m2", "m3"];
  const clientPorts: number[] = [];
  const peerPorts: number[] = [];
  for (const _ of names) {
    clientPorts.push(await freePort());
    peerPorts.push(await freePort());
  }
  const cluster = names.map((n, i) => `${n}=http://127.0.0.1:${peerPorts[i]}`).join(",");
  const servers = names.map((name, i) => {
    const client = `http://127.0.0.1:${clientPorts[i]}`;
    const peer = `http://127.0.0.1:${peerPorts[i]}`;
    return procs.startServer(`etcd-${name}`, "etcd", [
      `--name=${name}`,
      `--data-dir=${path.join(procs.scratch, `etcd-${name}`)}`,
      `--listen-client-urls=${client}`,
      `--advertise-client-urls=${client}`,
      `--listen-peer-urls=${peer}`,
      `--initial-advertise-peer-urls=${peer}`,
      `--initial-cluster=${cluster}`,
      "--initial-cluster-token=raftkv-bench",
      "--initial-cluster-state=new",
      "--logger=zap",
      "--log-outputs=stderr",
    ]);
  });
  const endpoints = clientPorts.map((p) => `127.0.0.1:${p}`).join(",");
  const etcdctl = (...args: string[]) =>
    procs.run("etcdctl", [`--endpoints=${endpoints}`, "--command-timeout=2s", ...args], {
      timeoutMs: 10_000,
      env: { ...process.env, ETCDCTL_API: "3" },
    });
  await pollUntil("the etcd cluster", servers, procs, async () => {
    try {
      await etcdctl("endpoint", "health");
      await etcdctl("put", "bench-ready", "1");
      return true;
    } catch {
      return null;
    }
  });
  return { endpoints, servers };
}
