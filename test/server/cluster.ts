/**
 * A raftkv cluster as operators run it: one `raftkv serve` process per node (the built command line), on
 * loopback, each with its own data directory, Redis port and raft port. The tests see the nodes only
 * through the Redis protocol: who leads, what each node has applied and how many keys it holds all come
 * from INFO.
 *
 * The processes never outlive the test file: `close()` stops them (SIGTERM, then SIGKILL) and removes
 * their data; should a test file end without it (a test that failed before closing, an uncaught error,
 * the runner's timeout signal) they are killed and their data removed as it exits.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from "node:fs";
import * as net from "node:net";
import * as os from "node:os";
import * as path from "node:path";
import { setTimeout as delay } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { serveArgs } from "../../src/cli/serve-config.js";
import { freePort } from "../../src/net/loopback-ports.js";
import { replyEnd } from "../helpers/redis-server.js";

const CLI = fileURLToPath(new URL("../../src/cli/raftkv.js", import.meta.url));

/** Every serve process started by this test process and not yet seen to exit. */
const running = new Set<ChildProcess>();
/** Data directories of clusters not yet closed. */
const dataDirs = new Set<string>();
let exitHookInstalled = false;

function killRunning(): void {
  for (const c of running) c.kill("SIGKILL");
  for (const d of dataDirs) rmSync(d, { recursive: true, force: true });
}

/** Kills the children if this process ends before closing its clusters (exit, or the runner's signal). */
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on("exit", killRunning);
  for (const signal of ["SIGINT", "SIGTERM"] as const)
    process.once(signal, () => {
      killRunning();
      // Handled once: raising it again ends this process as the signal would have.
      process.kill(process.pid, signal);
    });
}

export interface ServerClusterOptions {
  size?: number;
  requirepass?: string;
  /** Milliseconds per raft tick (default 20). */
  tickMs?: number;
  /**
   * Ticks in an election timeout (default 50: a second). Also how long a read may wait for its quorum
   * round: much shorter, and a node descheduled for that long on a busy machine answers TRYAGAIN.
   */
  electionTicks?: number;
  /** More `raftkv serve` flags for every node (limits, for instance). */
  extraArgs?: readonly string[];
}

/** One `raftkv serve` process. */
export class ServeProcess {
  readonly exited: Promise<void>;
  private exitStatus: string | null = null;

  constructor(
    readonly id: number,
    readonly port: number,
    readonly logFile: string,
    private readonly child: ChildProcess,
  ) {
    running.add(child);
    // The test process must be able to end (a failed test that never closed its cluster) and take
    // its children with it (the exit hook): a referenced child would keep it waiting for ever.
    child.unref();
    this.exited = new Promise<void>((resolve) => {
      child.once("exit", (code, signal) => {
        running.delete(child);
        this.exitStatus = signal ?? String(code);
        resolve();
      });
    });
  }

  get alive(): boolean {
    return this.exitStatus === null;
  }

  /** How it ended, or null while it runs. */
  get exit(): string | null {
    return this.exitStatus;
  }

  /** Stops it: SIGTERM (a clean close), SIGKILL if that takes more than `graceMs`. */
  async stop(graceMs = 5_000): Promise<void> {
    if (!this.alive) return;
    this.child.kill("SIGTERM");
    const timer = setTimeout(() => this.child.kill("SIGKILL"), graceMs);
    await this.exited;
    clearTimeout(timer);
  }

  /** The end of its log, for failure messages. */
  logTail(lines = 20): string {
    try {
      return readFileSync(this.logFile, "utf8").trimEnd().split("\n").slice(-lines).join("\n");
    } catch {
      return "(no log)";
    }
  }
}

/**
 * The fields of one node's INFO reply (`raft_role`, `raft_leader_id`, `db0`, …), or null when it does not
 * answer within `timeoutMs` (not listening yet, or stopped).
 */
export async function nodeInfo(
  port: number,
  timeoutMs = 2_000,
  password?: string,
): Promise<Map<string, string> | null> {
  return new Promise((resolve) => {
    const socket = net.connect(port, "127.0.0.1");
    let buf = Buffer.alloc(0);
    let replies = 0;
    const done = (v: Map<string, string> | null) => {
      socket.destroy();
      resolve(v);
    };
    socket.setTimeout(timeoutMs, () => done(null));
    socket.on("error", () => done(null));
    socket.on("close", () => done(null));
    socket.on("connect", () => {
      if (password !== undefined)
        socket.write(`*2\r\n$4\r\nAUTH\r\n$${Buffer.byteLength(password)}\r\n${password}\r\n`);
      socket.write("*1\r\n$4\r\nINFO\r\n");
    });
    socket.on("data", (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      for (;;) {
        const end = replyEnd(buf, 0);
        if (end < 0) return;
        const reply = buf.subarray(0, end).toString("latin1");
        buf = buf.subarray(end);
        if (++replies < (password !== undefined ? 2 : 1)) continue;
        if (!reply.startsWith("$")) return done(null);
        const fields = new Map<string, string>();
        for (const line of reply.split("\r\n")) {
          const colon = line.indexOf(":");
          if (colon > 0 && !line.startsWith("#")) fields.set(line.slice(0, colon), line.slice(colon + 1));
        }
        return done(fields);
      }
    });
  });
}

export class ServerCluster {
  readonly nodes: ServeProcess[] = [];

  private constructor(
    private readonly dir: string,
    private readonly password: string | undefined,
  ) {}

  /** Starts the processes; resolves once a leader every node follows has applied all it committed. */
  static async start(options: ServerClusterOptions = {}): Promise<ServerCluster> {
    installExitHook();
    const size = options.size ?? 3;
    const c = new ServerCluster(mkdtempSync(path.join(os.tmpdir(), "raftkv-serve-")), options.requirepass);
    dataDirs.add(c.dir);
    try {
      const ids = Array.from({ length: size }, (_, i) => i + 1);
      const raftPorts: number[] = [];
      for (const _ of ids) raftPorts.push(await freePort());
      const peers = new Map(ids.map((id) => [id, `127.0.0.1:${raftPorts[id - 1]}`]));
      for (const id of ids) {
        const port = await freePort();
        const logFile = path.join(c.dir, `n${id}.log`);
        const log = openSync(logFile, "a");
        const args = [
          CLI,
          ...serveArgs({
            id,
            "cluster-id": "test",
            "data-dir": path.join(c.dir, `n${id}`),
            peers,
            redis: `127.0.0.1:${port}`,
            "tick-ms": options.tickMs ?? 20,
            "election-ticks": options.electionTicks ?? 50,
            ...(options.requirepass !== undefined ? { requirepass: options.requirepass } : {}),
          }),
          ...(options.extraArgs ?? []),
        ];
        const child = spawn(process.execPath, args, { stdio: ["ignore", log, log] });
        closeSync(log);
        c.nodes.push(new ServeProcess(id, port, logFile, child));
      }
      await c.leader(30_000);
      return c;
    } catch (err) {
      const logs = c.nodes.map((n) => `node ${n.id} (${n.exit ?? "running"}):\n${n.logTail()}`).join("\n");
      await c.close();
      throw new Error(`the cluster did not start: ${(err as Error).message}\n${logs}`);
    }
  }

  /** Every node's INFO fields, in node order (null for a node that does not answer). */
  infos(): Promise<Array<Map<string, string> | null>> {
    return Promise.all(this.nodes.map((n) => nodeInfo(n.port, 2_000, this.password)));
  }

  /**
   * The leader, once there is one that every node follows and that has applied everything it committed
   * (so that what it acknowledged is visible through it).
   */
  async leader(timeoutMs = 10_000): Promise<ServeProcess> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const dead = this.nodes.find((n) => !n.alive);
      if (dead) throw new Error(`node ${dead.id} exited (${dead.exit})`);
      const infos = await this.infos();
      const at = infos.findIndex((i) => i?.get("raft_role") === "leader");
      const leader = infos[at];
      if (
        leader &&
        infos.every((i) => i?.get("raft_leader_id") === leader.get("raft_node_id")) &&
        Number(leader.get("raft_applied_index")) >= Number(leader.get("raft_commit_index"))
      )
        return this.nodes[at]!;
      if (Date.now() > deadline) {
        const roles = infos.map((i, n) => `node ${n + 1}: ${i?.get("raft_role") ?? "no answer"}`);
        throw new Error(`no leader that every node follows after ${timeoutMs} ms (${roles.join(", ")})`);
      }
      await delay(25);
    }
  }

  async follower(): Promise<ServeProcess> {
    const leader = await this.leader();
    return this.nodes.find((n) => n !== leader)!;
  }

  /** How many keys each node's store holds (INFO keyspace: expired keys not yet removed included). */
  async keyCounts(): Promise<number[]> {
    return (await this.infos()).map((i) => {
      const m = /^keys=(\d+),/.exec(i?.get("db0") ?? "");
      if (!m) throw new Error("a node did not report its keyspace");
      return Number(m[1]);
    });
  }

  /** Stops every node and removes their data. */
  async close(): Promise<void> {
    await Promise.all(this.nodes.map((n) => n.stop()));
    rmSync(this.dir, { recursive: true, force: true });
    dataDirs.delete(this.dir);
  }
}
