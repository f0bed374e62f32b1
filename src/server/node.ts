/**
 * One raftkv server node: the LMDB store and its state machine, the raft engine on gRPC, and the Redis
 * front door, assembled and closed in order.
 */
import * as path from "node:path";
import { EngineBackend } from "../api/redis/engine-backend.js";
import { RedisServer } from "../api/redis/server.js";
import type { RedisServerOptions } from "../api/redis/server-context.js";
import { Engine } from "../engine/engine.js";
import { REAP_COMMAND } from "../kv/exec/table.js";
import { type KvApplyResult, KvStateMachine, writeEntry } from "../kv/machine.js";
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
  /** Limits of the Redis front door (each absent one: the server's default). */
  redisLimits?: Partial<
    Pick<RedisServerOptions, "requestLimits" | "maxPipelinedCommands" | "maxOutputBytes" | "maxClients">
  >;
  tickMs?: number;
  electionTicks?: number;
  snapshotEveryEntries?: number;
  logger?: RaftLogger;
}

/** How often the leader looks for expired keys, and how many it removes in one entry. */
const REAP_EVERY_MS = 100;
const REAP_BATCH_KEYS = 256;

export class RaftkvNode {
  private readonly reaper: NodeJS.Timeout;
  private reaping = false;

  private constructor(
    readonly engine: Engine<KvApplyResult>,
    readonly store: KvStore,
    readonly redis: RedisServer,
    private readonly transport: GrpcTransport,
  ) {
    this.reaper = setInterval(() => this.reapExpired(), REAP_EVERY_MS);
    this.reaper.unref();
  }

  /**
   * On the leader: proposes the removal of keys whose expiry has passed, a batch at a time. Reads already
   * hide them on every node; this frees their space. Each replica deletes a key only if it is still
   * expired at the entry's time, so a key written again meanwhile stays.
   */
  private reapExpired(): void {
    if (this.reaping || !this.engine.isLeader) return;
    const now = Date.now();
    const keys = this.store.expiredKeys(now, REAP_BATCH_KEYS);
    if (keys.length === 0) return;
    this.reaping = true;
    this.engine
      .propose(writeEntry(now, [[Buffer.from(REAP_COMMAND), ...keys]]))
      .catch(() => undefined) // leadership moved or the engine stopped: the next leader reaps
      .finally(() => {
        this.reaping = false;
        // A full batch may mean more are waiting: keep up with keys that expire faster than one batch
        // per interval.
        if (keys.length === REAP_BATCH_KEYS) this.reapExpired();
      });
  }

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
      ...config.redisLimits,
      ...(config.requirepass !== undefined ? { requirepass: config.requirepass } : {}),
    });
    return new RaftkvNode(engine, store, redis, transport);
  }

  /** Stops serving clients, then raft, then closes the store. */
  async close(): Promise<void> {
    clearInterval(this.reaper);
    await this.redis.close();
    await this.engine.close();
    await this.transport.close().catch(() => undefined);
    await this.store.close();
  }
}
