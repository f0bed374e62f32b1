/**
 * The chaos cluster: `raftkv serve` processes on loopback, whose raft links all pass through the
 * chaos network's proxies, so that node i's `--peers` map names its own real address and a proxy for
 * every other node. Each node keeps its data directory and ports across restarts.
 */
import { mkdirSync, readFileSync } from "node:fs";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { serveArgs } from "../cli/serve-config.js";
import { freePorts } from "../net/loopback-ports.js";
import type { NodeId } from "../raft/types.js";
import { ChaosNetwork } from "./network.js";
import { ServeProcess, type UnexpectedExit } from "./node-process.js";

const RAFTKV_CLI = fileURLToPath(new URL("../cli/raftkv.js", import.meta.url));

export interface ClusterOptions {
  /** Where each node's data directory and log file go. */
  readonly dir: string;
  readonly nodes: number;
  readonly tickMs: number;
  readonly electionTicks: number;
  /** Entries between local snapshots, and entries kept before one: small, so that lagging nodes get snapshots. */
  readonly snapshotEveryEntries: number;
  readonly trailingEntries: number;
}

export class ChaosCluster {
  readonly unexpectedExits: UnexpectedExit[] = [];
  /** If the chaos run exits before `close()` (an interrupt, a crash), its nodes must not outlive it. */
  private readonly killOnExit = () => {
    for (const n of this.nodes.values()) n.killNow();
  };

  private constructor(
    readonly nodes: ReadonlyMap<NodeId, ServeProcess>,
    readonly network: ChaosNetwork,
  ) {
    process.once("exit", this.killOnExit);
  }

  static async start(options: ClusterOptions): Promise<ChaosCluster> {
    const ids = Array.from({ length: options.nodes }, (_, i) => i + 1);
    const ports = await freePorts(2 * ids.length);
    const redisPort = (id: NodeId) => ports[id - 1]!;
    const raftPort = (id: NodeId) => ports[ids.length + id - 1]!;
    const network = await ChaosNetwork.open(ids, raftPort);
    const nodes = new Map<NodeId, ServeProcess>();
    const cluster = new ChaosCluster(nodes, network);
    for (const id of ids) {
      const dataDir = path.join(options.dir, `node${id}`);
      mkdirSync(dataDir, { recursive: true });
      // Its own address for itself; for every peer, the proxy of the link from it to that peer.
      const peers = new Map(
        ids.map((p) => [p, `127.0.0.1:${p === id ? raftPort(id) : network.portFor(id, p)}`] as const),
      );
      const command = [
        RAFTKV_CLI,
        ...serveArgs({
          id,
          "data-dir": dataDir,
          peers,
          redis: `127.0.0.1:${redisPort(id)}`,
          "tick-ms": options.tickMs,
          "election-ticks": options.electionTicks,
          "snapshot-every-entries": options.snapshotEveryEntries,
          "trailing-entries": options.trailingEntries,
          "cluster-id": "raftkv-chaos",
        }),
      ];
      const logPath = path.join(options.dir, `node${id}.log`);
      nodes.set(
        id,
        new ServeProcess(id, redisPort(id), command, logPath, (e) => cluster.unexpectedExits.push(e)),
      );
    }
    for (const node of nodes.values()) node.start("cluster start");
    return cluster;
  }

  /** Snapshots the nodes installed from a leader, as their logs (across restarts) tell. */
  snapshotsInstalled(): number {
    let n = 0;
    for (const node of this.nodes.values()) {
      const log = readFileSync(node.logPath, "utf8");
      for (
        let at = log.indexOf('"installed snapshot"');
        at >= 0;
        at = log.indexOf('"installed snapshot"', at + 1)
      )
        n++;
    }
    return n;
  }

  get ids(): NodeId[] {
    return [...this.nodes.keys()];
  }

  node(id: NodeId): ServeProcess {
    const n = this.nodes.get(id);
    if (n === undefined) throw new RangeError(`no node ${id}`);
    return n;
  }

  /** Every link open, every paused node resumed, every node down started again. */
  healAll(why: string): void {
    this.network.healAll();
    for (const n of this.nodes.values()) {
      if (n.state === "paused") n.resume(why);
      else if (n.state === "down") n.start(why);
    }
  }

  /** Stops every node (SIGTERM) and closes the proxies. */
  async close(): Promise<void> {
    await Promise.all([...this.nodes.values()].map((n) => n.stop()));
    process.removeListener("exit", this.killOnExit);
    await this.network.close();
  }
}
