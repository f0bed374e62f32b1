/**
 * Parent side of the multi-process tests and the engine benchmark: a cluster of node processes
 * (node-main.ts), each with its own data directory and gRPC port on loopback, driven over IPC.
 */
import { type ChildProcess, fork } from "node:child_process";
import * as nodeFs from "node:fs";
import * as os from "node:os";
import * as nodePath from "node:path";
import { setTimeout as delay } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { freePort } from "../../src/net/loopback-ports.js";
import type { NodeConfig, Reply, Request, StatusSummary } from "./protocol.js";

const NODE_MAIN = fileURLToPath(new URL("./node-main.js", import.meta.url));

/** A request the node answered with an error: its class name and message. */
export class NodeRequestError extends Error {
  constructor(
    readonly errorName: string,
    message: string,
  ) {
    super(`${errorName}: ${message}`);
    this.name = "NodeRequestError";
  }
}

type Exit = { code: number | null; signal: NodeJS.Signals | null };

export class NodeProcess {
  private nextReq = 1;
  private readonly waiting = new Map<number, { resolve: (r: Reply) => void; reject: (e: Error) => void }>();
  readonly exited: Promise<Exit>;
  private exit: Exit | null = null;

  private constructor(
    readonly config: NodeConfig,
    private readonly child: ChildProcess,
  ) {
    this.exited = new Promise<Exit>((resolve) => {
      child.once("exit", (code, signal) => {
        this.exit = { code, signal };
        for (const w of this.waiting.values())
          w.reject(new Error(`node ${config.id} exited (${signal ?? code}) before answering`));
        this.waiting.clear();
        resolve(this.exit);
      });
    });
    child.on("message", (raw) => {
      const msg = raw as {
        req?: number;
        ok?: boolean;
        reply?: Reply;
        error?: { name: string; message: string };
      };
      if (msg.req === undefined) return;
      const w = this.waiting.get(msg.req);
      if (!w) return;
      this.waiting.delete(msg.req);
      if (msg.ok) w.resolve(msg.reply!);
      else w.reject(new NodeRequestError(msg.error!.name, msg.error!.message));
    });
  }

  /** Starts a node; resolves once its engine is open, or with the exit if it died first. */
  static start(config: NodeConfig): Promise<NodeProcess> {
    nodeFs.mkdirSync(config.dataDir, { recursive: true });
    const child = fork(NODE_MAIN, [JSON.stringify(config)], {
      stdio: ["ignore", "inherit", "inherit", "ipc"],
    });
    const node = new NodeProcess(config, child);
    return new Promise<NodeProcess>((resolve, reject) => {
      const onReady = (raw: unknown) => {
        if ((raw as { ready?: boolean }).ready) {
          child.off("message", onReady);
          resolve(node);
        }
      };
      child.on("message", onReady);
      node.exited.then(
        (e) => reject(new Error(`node ${config.id} exited (${e.signal ?? e.code}) while starting`)),
        reject,
      );
    });
  }

  get alive(): boolean {
    return this.exit === null;
  }

  request<Op extends Reply["op"]>(req: Request & { op: Op }): Promise<Extract<Reply, { op: Op }>> {
    if (!this.alive) return Promise.reject(new Error(`node ${this.config.id} is not running`));
    const id = this.nextReq++;
    return new Promise((resolve, reject) => {
      this.waiting.set(id, { resolve: resolve as (r: Reply) => void, reject });
      this.child.send({ ...req, req: id });
    });
  }

  async status(): Promise<StatusSummary> {
    return (await this.request({ op: "status" })).status;
  }

  /** Closes the engine and lets the process exit. */
  async close(): Promise<void> {
    if (!this.alive) return;
    await this.request({ op: "close" }).catch(() => undefined);
    await this.exited;
  }

  async kill(): Promise<Exit> {
    if (this.alive) this.child.kill("SIGKILL");
    return this.exited;
  }
}

export type ClusterSettings = Omit<NodeConfig, "id" | "dataDir" | "listen" | "peers" | "initialVoters">;

export const E2E_DEFAULTS: ClusterSettings = {
  clusterId: "e2e",
  tickMs: 50,
  electionTicks: 10,
  heartbeatTicks: 1,
  snapshotEveryEntries: 10_000,
  trailingEntries: 5_000,
  stateMachine: "kv",
};

/** A JSON log line a node wrote. */
export type LogLine = Record<string, unknown> & { msg: string; node: number };

export class ProcessCluster {
  readonly nodes = new Map<number, NodeProcess>();

  private constructor(
    readonly root: string,
    readonly ids: readonly number[],
    readonly addresses: Record<string, string>,
    readonly settings: ClusterSettings,
  ) {}

  static async start(size: number, settings: Partial<ClusterSettings> = {}): Promise<ProcessCluster> {
    const root = nodeFs.mkdtempSync(nodePath.join(os.tmpdir(), "raftkv-e2e-"));
    const ids = Array.from({ length: size }, (_, i) => i + 1);
    const addresses: Record<string, string> = {};
    for (const id of ids) addresses[id] = `127.0.0.1:${await freePort()}`;
    const c = new ProcessCluster(root, ids, addresses, { ...E2E_DEFAULTS, ...settings });
    const started = await Promise.allSettled(ids.map((id) => c.startNode(id)));
    const failed = started.find((r) => r.status === "rejected");
    if (failed) {
      // The nodes that did start must not outlive the failure: they would keep the test process (and
      // CI) waiting for ever.
      await c.shutdown();
      throw failed.reason;
    }
    return c;
  }

  config(id: number, extra: Partial<NodeConfig> = {}): NodeConfig {
    return {
      ...this.settings,
      id,
      dataDir: nodePath.join(this.root, `n${id}`),
      listen: this.addresses[id]!,
      peers: this.addresses,
      initialVoters: [...this.ids],
      ...extra,
    };
  }

  async startNode(id: number, extra: Partial<NodeConfig> = {}): Promise<NodeProcess> {
    const node = await NodeProcess.start(this.config(id, extra));
    this.nodes.set(id, node);
    return node;
  }

  /** Starts a node expected to die while starting or soon after; resolves with how it exited. */
  startDoomed(id: number, extra: Partial<NodeConfig>): Promise<Exit> {
    const started = NodeProcess.start(this.config(id, extra));
    return started.then(
      (node) => {
        this.nodes.set(id, node);
        return node.exited;
      },
      () => ({ code: null, signal: "SIGKILL" as NodeJS.Signals }),
    );
  }

  node(id: number): NodeProcess {
    const n = this.nodes.get(id);
    if (!n) throw new Error(`no node ${id}`);
    return n;
  }

  async statuses(): Promise<Map<number, StatusSummary>> {
    const out = new Map<number, StatusSummary>();
    for (const [id, n] of this.nodes) {
      if (!n.alive) continue;
      try {
        out.set(id, await n.status());
      } catch {
        // Died between the check and the answer: not part of this view.
      }
    }
    return out;
  }

  /** Polls until `check` returns a value (not undefined), or fails after `timeoutMs` naming `what`. */
  async waitFor<T>(what: string, check: () => Promise<T | undefined>, timeoutMs = 30_000): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const v = await check();
      if (v !== undefined) return v;
      if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
      await delay(25);
    }
  }

  /** The node every live node agrees leads, once they agree. */
  async leader(timeoutMs?: number): Promise<number> {
    return this.waitFor(
      "a leader all live nodes agree on",
      async () => {
        const s = [...(await this.statuses()).values()];
        const lead = s.find((x) => x.role === "leader");
        if (!lead || s.some((x) => x.lead !== lead.id)) return undefined;
        return lead.id;
      },
      timeoutMs,
    );
  }

  logs(id: number): LogLine[] {
    const file = nodePath.join(this.root, `n${id}`, "node.log");
    if (!nodeFs.existsSync(file)) return [];
    return nodeFs
      .readFileSync(file, "utf8")
      .split("\n")
      .filter((l) => l.trim().length > 0)
      .map((l) => JSON.parse(l) as LogLine);
  }

  async shutdown(): Promise<void> {
    await Promise.all([...this.nodes.values()].map((n) => n.close().catch(() => n.kill())));
    nodeFs.rmSync(this.root, { recursive: true, force: true });
  }
}
