#!/usr/bin/env node
/**
 * The `raftkv` command line:
 *
 *   raftkv serve --id N --data-dir DIR --peers 1=host:port,2=host:port,3=host:port --redis host:port
 *                [--requirepass PASS] [--tick-ms MS] [--election-ticks N] [--cluster-id NAME]
 *                [--max-bulk-bytes N] [--max-args N] [--max-inline-bytes N] [--max-command-bytes N]
 *                [--max-pipelined-commands N] [--max-output-bytes N] [--max-clients N]
 *   raftkv demo  [--base-port 6379] [--data ./data] [--nodes 3]
 *
 * `serve` runs one node (logs: one JSON object a line on stdout) until SIGINT or SIGTERM. `demo` starts a
 * local cluster of `serve` processes (Redis on base-port, base-port+1, …; raft on base-port+10000, …),
 * says when a leader is elected and how to connect, and stops them all on Ctrl-C.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdirSync, openSync } from "node:fs";
import * as net from "node:net";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { pino } from "pino";
import { fromPino } from "../engine/logging.js";
import { type NodeConfig, RaftkvNode } from "../server/node.js";

const USAGE = `usage:
  raftkv serve --id N --data-dir DIR --peers 1=host:port,2=host:port,3=host:port --redis host:port
               [--requirepass PASS] [--tick-ms MS] [--election-ticks N] [--cluster-id NAME]
               [--max-bulk-bytes N] [--max-args N] [--max-inline-bytes N] [--max-command-bytes N]
               [--max-pipelined-commands N] [--max-output-bytes N] [--max-clients N]
  raftkv demo  [--base-port 6379] [--data ./data] [--nodes 3]`;

class UsageError extends Error {}

function parsePeers(text: string): Map<number, string> {
  const peers = new Map<number, string>();
  for (const part of text.split(",")) {
    const m = /^(\d+)=(.+:\d+)$/.exec(part.trim());
    if (!m) throw new UsageError(`--peers: expected id=host:port, got ${JSON.stringify(part)}`);
    peers.set(Number(m[1]), m[2]!);
  }
  return peers;
}

function positiveInt(name: string, text: string | undefined, fallback?: number): number {
  if (text === undefined) {
    if (fallback === undefined) throw new UsageError(`--${name} is required`);
    return fallback;
  }
  const n = Number(text);
  if (!Number.isSafeInteger(n) || n <= 0)
    throw new UsageError(`--${name} must be a positive integer, got ${text}`);
  return n;
}

/** The Redis front door's limits given on the command line (the others keep the server's defaults). */
function redisLimits(
  values: Record<string, string | boolean | undefined>,
): NonNullable<NodeConfig["redisLimits"]> {
  const given = (name: string): number | undefined => {
    const text = values[name];
    return typeof text === "string" ? positiveInt(name, text) : undefined;
  };
  // An absent limit must not be passed as undefined: it would replace the default.
  const definedOnly = <T extends object>(o: T): T =>
    Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
  return definedOnly({
    requestLimits: definedOnly({
      maxBulkBytes: given("max-bulk-bytes"),
      maxArgs: given("max-args"),
      maxInlineBytes: given("max-inline-bytes"),
      maxCommandBytes: given("max-command-bytes"),
    }),
    maxPipelinedCommands: given("max-pipelined-commands"),
    maxOutputBytes: given("max-output-bytes"),
    maxClients: given("max-clients"),
  });
}

async function serve(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      id: { type: "string" },
      "data-dir": { type: "string" },
      peers: { type: "string" },
      redis: { type: "string" },
      requirepass: { type: "string" },
      "tick-ms": { type: "string" },
      "election-ticks": { type: "string" },
      "cluster-id": { type: "string", default: "raftkv" },
      "max-bulk-bytes": { type: "string" },
      "max-args": { type: "string" },
      "max-inline-bytes": { type: "string" },
      "max-command-bytes": { type: "string" },
      "max-pipelined-commands": { type: "string" },
      "max-output-bytes": { type: "string" },
      "max-clients": { type: "string" },
    },
  });
  const id = positiveInt("id", values.id);
  if (!values["data-dir"]) throw new UsageError("--data-dir is required");
  if (!values.peers) throw new UsageError("--peers is required");
  if (!values.redis) throw new UsageError("--redis is required");
  const peers = parsePeers(values.peers);
  if (!peers.has(id)) throw new UsageError(`--peers has no address for this node (--id ${id})`);
  const log = pino({ base: { node: id } });
  const node = await RaftkvNode.start({
    id,
    clusterId: values["cluster-id"],
    dataDir: values["data-dir"],
    peers,
    redisListen: values.redis,
    tickMs: positiveInt("tick-ms", values["tick-ms"], 100),
    electionTicks: positiveInt("election-ticks", values["election-ticks"], 10),
    logger: fromPino(log),
    redisLimits: redisLimits(values),
    ...(values.requirepass !== undefined ? { requirepass: values.requirepass } : {}),
  });
  log.info({ redis: `${values.redis.replace(/:\d+$/, "")}:${node.redis.port}` }, "raftkv node serving");
  await new Promise<void>((resolve) => {
    const stop = () => resolve();
    process.once("SIGINT", stop);
    process.once("SIGTERM", stop);
  });
  log.info("stopping");
  await node.close();
}

/** The node's raft role, from INFO over the Redis protocol (null while it does not answer). */
async function roleOf(port: number): Promise<string | null> {
  return new Promise((resolve) => {
    const s = net.connect(port, "127.0.0.1");
    let buf = "";
    const done = (v: string | null) => {
      s.destroy();
      resolve(v);
    };
    s.setTimeout(1000, () => done(null));
    s.on("error", () => done(null));
    s.on("connect", () => s.write("*2\r\n$4\r\nINFO\r\n$4\r\nraft\r\n"));
    s.on("data", (d) => {
      buf += d.toString("latin1");
      const m = /raft_role:([a-z-]+)/.exec(buf);
      if (m) done(m[1]!);
    });
  });
}

async function demo(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      "base-port": { type: "string", default: "6379" },
      data: { type: "string", default: "./data" },
      nodes: { type: "string", default: "3" },
    },
  });
  const base = positiveInt("base-port", values["base-port"]);
  const size = positiveInt("nodes", values.nodes);
  if (size !== 3 && size !== 5) throw new UsageError("--nodes must be 3 or 5");
  const ids = Array.from({ length: size }, (_, i) => i + 1);
  const peers = ids.map((id) => `${id}=127.0.0.1:${base + 10_000 + id - 1}`).join(",");
  const self = fileURLToPath(import.meta.url);
  const children: ChildProcess[] = [];
  for (const id of ids) {
    const dir = path.resolve(values.data, `node${id}`);
    mkdirSync(dir, { recursive: true });
    const logFile = openSync(path.join(dir, "node.log"), "a");
    const args = [
      self,
      "serve",
      "--id",
      String(id),
      "--data-dir",
      dir,
      "--peers",
      peers,
      "--redis",
      `127.0.0.1:${base + id - 1}`,
    ];
    children.push(spawn(process.execPath, args, { stdio: ["ignore", logFile, logFile] }));
  }
  let stopping = false;
  const stopAll = async () => {
    if (stopping) return;
    stopping = true;
    console.log("stopping the cluster…");
    await Promise.all(
      children.map(
        (c) =>
          new Promise<void>((resolve) => {
            if (c.exitCode !== null) return resolve();
            c.once("exit", () => resolve());
            c.kill("SIGTERM");
          }),
      ),
    );
    console.log("stopped");
    process.exit(0);
  };
  process.on("SIGINT", () => void stopAll());
  process.on("SIGTERM", () => void stopAll());
  for (const [i, c] of children.entries())
    c.once("exit", (code) => {
      if (!stopping)
        console.error(`node ${i + 1} exited (code ${code}); see ${values.data}/node${i + 1}/node.log`);
    });
  console.log(`starting ${size} nodes (data under ${path.resolve(values.data)})…`);
  const deadline = Date.now() + 30_000;
  for (;;) {
    const roles = await Promise.all(ids.map((id) => roleOf(base + id - 1)));
    const leader = roles.indexOf("leader");
    if (leader >= 0 && roles.every((r) => r !== null)) {
      console.log(`cluster ready: node ${leader + 1} leads (Redis port ${base + leader}).`);
      console.log(`connect to any node: redis-cli -p ${base}   (ports ${base}–${base + size - 1})`);
      console.log("Ctrl-C stops the cluster.");
      return;
    }
    if (Date.now() > deadline) {
      console.error("no leader after 30 s; see the node logs");
      await stopAll();
      return;
    }
    await new Promise((r) => setTimeout(r, 200));
  }
}

async function main(): Promise<void> {
  const [command, ...rest] = process.argv.slice(2);
  if (command === "serve") await serve(rest);
  else if (command === "demo") await demo(rest);
  else throw new UsageError(command === undefined ? "no command given" : `unknown command ${command}`);
}

main().catch((err: unknown) => {
  if (
    err instanceof UsageError ||
    (err instanceof TypeError && "code" in err && String(err.code).startsWith("ERR_PARSE_ARGS"))
  ) {
    console.error(`raftkv: ${err.message}\n${USAGE}`);
    process.exit(2);
  }
  console.error(`raftkv: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
  process.exit(1);
});
