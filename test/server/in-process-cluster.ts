/**
 * A raftkv cluster of real server nodes in this process, on loopback gRPC, the real disk and LMDB: for the
 * few tests that must look at a node's internals (the Redis API tests use separate processes, cluster.ts).
 */
import { mkdtempSync, rmSync } from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { freePort } from "../../src/net/loopback-ports.js";
import { StateRole } from "../../src/raft/types.js";
import { RaftkvNode } from "../../src/server/node.js";

export class InProcessCluster {
  readonly nodes: RaftkvNode[] = [];
  private readonly dir = mkdtempSync(path.join(os.tmpdir(), "raftkv-server-"));

  static async start(
    size: number,
    options: {
      requirepass?: string;
      tombstoneRetentionMs?: number;
      leaseReads?: boolean;
      electionTicks?: number;
    } = {},
  ): Promise<InProcessCluster> {
    const c = new InProcessCluster();
    const peers = new Map<number, string>();
    for (let id = 1; id <= size; id++) peers.set(id, `127.0.0.1:${await freePort()}`);
    for (let id = 1; id <= size; id++) {
      c.nodes.push(
        await RaftkvNode.start({
          id,
          clusterId: "test",
          dataDir: path.join(c.dir, `n${id}`),
          peers,
          redisListen: "127.0.0.1:0",
          tickMs: 20,
          ...(options.requirepass !== undefined ? { requirepass: options.requirepass } : {}),
          ...(options.leaseReads !== undefined ? { leaseReads: options.leaseReads } : {}),
          ...(options.electionTicks !== undefined ? { electionTicks: options.electionTicks } : {}),
          ...(options.tombstoneRetentionMs !== undefined
            ? { tombstoneRetentionMs: options.tombstoneRetentionMs }
            : {}),
        }),
      );
    }
    await c.leader();
    return c;
  }

  /** The leader, once there is one that every node follows. */
  async leader(timeoutMs = 10_000): Promise<RaftkvNode> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const leader = this.nodes.find((n) => n.engine.status().softState.role === StateRole.Leader);
      if (
        leader &&
        this.nodes.every((n) => n.engine.status().softState.lead === leader.engine.status().id) &&
        leader.engine.status().applied >= leader.engine.status().hardState.commit
      )
        return leader;
      if (Date.now() > deadline) throw new Error("no leader emerged");
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  async follower(): Promise<RaftkvNode> {
    const leader = await this.leader();
    return this.nodes.find((n) => n !== leader)!;
  }

  async close(): Promise<void> {
    for (const n of this.nodes) await n.close();
    rmSync(this.dir, { recursive: true, force: true });
  }
}
