#!/usr/bin/env node
/**
 * The `raftkv` command line:
 *
 *   raftkv serve [--config FILE] --id N --data-dir DIR --peers 1=host:port,… --redis host:port [--join] …
 *   raftkv admin --endpoint host:port [--json] status | add-learner ID ADDRESS | promote ID | …
 *   raftkv demo  [--base-port 6379] [--data ./data] [--nodes 3]
 *
 * `serve` runs one node (logs: one JSON object a line on stdout) until SIGINT or SIGTERM (serve.ts,
 * serve-config.ts). `admin` asks a node's admin service (admin.ts). `demo` starts a local cluster of
 * `serve` processes (Redis on base-port, base-port+1, …; raft on base-port+10000, …), says when a
 * leader is elected and how to connect, and stops them all on Ctrl-C.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdirSync, openSync } from "node:fs";
import * as net from "node:net";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { serveArgs } from "./serve-config.js";
import { USAGE } from "./usage.js";
import { parseArgsOrUsage, positiveIntFlag, UsageError } from "./usage-error.js";

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
  const { values } = parseArgsOrUsage({
    args: argv,
    options: {
      "base-port": { type: "string", default: "6379" },
      data: { type: "string", default: "./data" },
      nodes: { type: "string", default: "3" },
    },
  });
  const base = positiveIntFlag("base-port", values["base-port"]);
  const size = positiveIntFlag("nodes", values.nodes);
  if (size !== 3 && size !== 5) throw new UsageError("--nodes must be 3 or 5");
  const ids = Array.from({ length: size }, (_, i) => i + 1);
  const peers = new Map(ids.map((id) => [id, `127.0.0.1:${base + 10_000 + id - 1}`]));
  const self = fileURLToPath(import.meta.url);
  const children: ChildProcess[] = [];
  for (const id of ids) {
    const dir = path.resolve(values.data, `node${id}`);
    mkdirSync(dir, { recursive: true });
    const logFile = openSync(path.join(dir, "node.log"), "a");
    const args = [self, ...serveArgs({ id, "data-dir": dir, peers, redis: `127.0.0.1:${base + id - 1}` })];
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
  // Each command loads its own modules: `raftkv admin` runs often, from scripts, and need not load the
  // server's (LMDB, the engine) to ask a node a question.
  if (command === "serve") await (await import("./serve.js")).serve(rest);
  else if (command === "admin") await adminCommand(rest);
  else if (command === "demo") await demo(rest);
  else throw new UsageError(command === undefined ? "no command given" : `unknown command ${command}`);
}

async function adminCommand(argv: string[]): Promise<void> {
  const { admin, adminErrorJson, adminExitStatus } = await import("./admin.js");
  try {
    await admin(argv, (text) => console.log(text));
  } catch (err) {
    if (argv.includes("--json")) console.log(adminErrorJson(err));
    if (err instanceof UsageError) throw err;
    console.error(`raftkv admin: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(adminExitStatus(err));
  }
}

main().catch((err: unknown) => {
  if (err instanceof UsageError) {
    console.error(`raftkv: ${err.message}\n${USAGE}`);
    process.exit(2);
  }
  console.error(`raftkv: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
  process.exit(1);
});
