/**
 * One raftkv server node: the LMDB store and its state machine, the raft engine on gRPC, and the Redis
 * front door, assembled and closed in order.
 */
import * as path from "node:path";
import { EngineBackend } from "../api/redis/engine-backend.js";
import { RedisServer } from "../api/redis/server.js";
import { Engine } from "../engine/engine.js";
import { type KvApplyResult, KvStateMachine } from "../kv/machine.js";
import { KvStore } from "../kv/store.js";
import { type RaftLogger, silentLogger } from "../raft/config.js";
import type { NodeId } from "../raft/types.js";
import { NodeFileSystem } from "../storage/fs.js";
import { GrpcTransport } from "../transport/grpc-transport.js";

export interface NodeConfig {
  id: NodeId;
  clusterId: string;
  dataDir: string;
  /** Every voter's raft (gRPC) address, this node's included. */
  peers: ReadonlyMap<NodeId, string>;
  /** host:port for the Redis protocol (port 0: any free one). */
  redisListen: string;
  /** host:port for raft's gRPC (default: this node's entry in `peers`). */
  raftListen?: string;
  requirepass?: string;
  tickMs?: number;
  electionTicks?: number;
  snapshotEveryEntries?: number;
  logger?: RaftLogger;
}

export class RaftkvNode {
  private constructor(
    readonly engine: Engine<KvApplyResult>,
    readonly store: KvStore,
    readonly redis: RedisServer,
    private readonly transport: GrpcTransport,
  ) {}

  static async start(config: NodeConfig): Promise<RaftkvNode> {
    const logger = config.logger ?? silentLogger;
    const fs = new NodeFileSystem();
    const store = await KvStore.open(path.join(config.dataDir, "kv"));
    const machine = new KvStateMachine(store);
    const listen = config.raftListen ?? config.peers.get(config.id);
    if (listen === undefined) throw new RangeError(`peers has no address for node ${config.id}`);
    let engine: Engine<KvApplyResult> | null = null;
    const transport = new GrpcTransport({
      id: config.id,
      clusterId: config.clusterId,
      listen,
      peers: new Map([...config.peers].filter(([id]) => id !== config.id)),
      fs,
      snapshotDir: path.join(config.dataDir, "incoming"),
      logger,
      snapshotSource: {
        open: (meta, signal) => engine!.snapshotSource().open(meta, signal),
        payloadBytes: (meta) => engine!.snapshotSource().payloadBytes!(meta),
      },
    });
    try {
      engine = await Engine.open<KvApplyResult>({
        id: config.id,
        initialVoters: [...config.peers.keys()],
        addresses: config.peers,
        fs,
        dir: path.join(config.dataDir, "raft"),
        stateMachine: machine,
        transport,
        logger,
        ...(config.tickMs !== undefined ? { tickMs: config.tickMs } : {}),
        ...(config.snapshotEveryEntries !== undefined
          ? { snapshotEveryEntries: config.snapshotEveryEntries }
          : {}),
        raft: {
          ...(config.electionTicks !== undefined ? { electionTicks: config.electionTicks } : {}),
          preVote: true,
          checkQuorum: true,
        },
      });
    } catch (err) {
      await transport.close().catch(() => undefined);
      await store.close();
      throw err;
    }
    const redis = await RedisServer.start({
      backend: new EngineBackend(engine, machine),
      listen: config.redisListen,
      logger,
      ...(config.requirepass !== undefined ? { requirepass: config.requirepass } : {}),
    });
    return new RaftkvNode(engine, store, redis, transport);
  }

  /** Stops serving clients, then raft, then closes the store. */
  async close(): Promise<void> {
    await this.redis.close();
    await this.engine.close();
    await this.transport.close().catch(() => undefined);
    await this.store.close();
  }
}
