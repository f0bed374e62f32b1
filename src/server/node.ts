/**
 * One raftkv server node: the LMDB store and its state machine, the raft engine on gRPC (with the admin
 * service on the same port), and the Redis front door, assembled and closed in order.
 *
 * Peer addresses: `peers` (the command line's) seeds them; the cluster's address book, kept in the
 * replicated state (src/kv/address-book.ts), supplies every member `peers` does not name. A founding
 * member writes `peers` into an empty book, a membership change that adds a node carries its address,
 * and a node that catches up from a snapshot finds the book in it; every change reaches the transport.
 */
import * as path from "node:path";
import { collectDefaultMetrics, Registry } from "prom-client";
import { AdminService } from "../api/admin/service.js";
import { EngineBackend } from "../api/redis/engine-backend.js";
import { RedisServer } from "../api/redis/server.js";
import { Engine } from "../engine/engine.js";
import { FORGET_BATCH_TOMBSTONES } from "../kv/exec/keys.js";
import { FORGET_COMMAND, REAP_COMMAND } from "../kv/exec/table.js";
import { type KvApplyResult, KvStateMachine, writeEntry } from "../kv/machine.js";
import { KvStore } from "../kv/store.js";
import { type RaftLogger, silentLogger } from "../raft/config.js";
import type { NodeId } from "../raft/types.js";
import { NodeFileSystem } from "../storage/fs.js";
import { GrpcTransport } from "../transport/grpc-transport.js";
import { MetricsServer } from "./metrics-server.js";

export interface NodeConfig {
  id: NodeId;
  clusterId: string;
  dataDir: string;
  /**
   * Raft (gRPC) addresses by node id. A founding node: every founding voter's, its own included (they
   * become the first membership). A joining node: at least the current members' (it must answer the
   * leader before it has the cluster's address book) and its own. The replicated address book supplies
   * the nodes not named here (those added later); for a node named here, this address is the route.
   */
  peers: ReadonlyMap<NodeId, string>;
  /**
   * Join an existing cluster: start empty and wait to be added (`raftkv admin add-learner`), never
   * campaigning before. Ignored once the node has state.
   */
  join?: boolean;
  /** host:port for the Redis protocol (port 0: any free one). */
  redisListen: string;
  /** host:port for raft's and the admin service's gRPC (default: this node's entry in `peers`). */
  raftListen?: string;
  /** host:port serving Prometheus metrics at GET /metrics (port 0: any free one); none when unset. */
  metricsListen?: string;
  requirepass?: string;
  tickMs?: number;
  /**
   * Reads on the leader's lease instead of a read-index round (raft's lease-based read-only option,
   * with checkQuorum): linearizable as long as no node's clock runs more than `maxClockDrift` (10 %)
   * faster than another's. Default: read index.
   */
  leaseReads?: boolean;
  electionTicks?: number;
  heartbeatTicks?: number;
  snapshotEveryEntries?: number;
  /**
   * How long deleted keys are remembered for WATCH (default 60 s): the EXEC of a WATCH of an absent
   * key held longer than this fails, changed or not (see kv/watch.ts).
   */
  tombstoneRetentionMs?: number;
  trailingEntries?: number;
  keepSnapshots?: number;
  maxPendingProposals?: number;
  maxProposalBytes?: number;
  maxPendingReads?: number;
  /** Raft: bytes of entries in one append message. */
  maxMessageBytes?: number;
  /** Raft: bytes the leader holds uncommitted before it refuses proposals. */
  maxUncommittedBytes?: number;
  /** Raft: append messages in flight per follower. */
  maxInflightMessages?: number;
  /** Redis: clients connected at once. */
  maxClients?: number;
  /** Redis: commands a connection may have started and not yet answered before its reads pause. */
  maxPipelinedCommands?: number;
  /** Redis: unsent reply bytes past which a client is closed. */
  maxOutputBytes?: number;
  /** Redis: the longest argument (proto-max-bulk-len). */
  maxBulkBytes?: number;
  /** Redis: arguments in one command. */
  maxArgs?: number;
  /** Redis: the longest inline command line. */
  maxInlineBytes?: number;
  /** Redis: bytes of one whole command. */
  maxCommandBytes?: number;
  /** Redis: how long a follower waits to see a forwarded write applied before answering TRYAGAIN. */
  forwardTimeoutMs?: number;
  logger?: RaftLogger;
}

/** How often the leader looks for expired keys, and how many it removes in one entry. */
const REAP_EVERY_MS = 100;
const REAP_BATCH_KEYS = 256;
const DEFAULT_TOMBSTONE_RETENTION_MS = 60_000;

export class RaftkvNode {
  private readonly reaper: NodeJS.Timeout;
  private reaping = false;
  private forgetting = false;

  private constructor(
    readonly engine: Engine<KvApplyResult>,
    readonly store: KvStore,
    readonly redis: RedisServer,
    private readonly transport: GrpcTransport,
    private readonly tombstoneRetentionMs: number,
    /** The raft address of each node this one knows (kept current from the address book). */
    readonly addresses: ReadonlyMap<NodeId, string>,
    /** The Prometheus endpoint, when one was asked for. */
    readonly metrics: MetricsServer | null,
  ) {
    this.reaper = setInterval(() => {
      this.reapExpired();
      this.forgetTombstones();
    }, REAP_EVERY_MS);
    this.reaper.unref();
  }

  /**
   * On the leader: proposes forgetting the tombstones of keys deleted longer ago than the retention,
   * a batch at a time, so that deletions are remembered for WATCH for a bounded time and space.
   */
  private forgetTombstones(): void {
    if (this.forgetting || !this.engine.isLeader) return;
    const now = Date.now();
    const cutoff = now - this.tombstoneRetentionMs;
    if (!this.store.hasTombstonesBefore(cutoff)) return;
    this.forgetting = true;
    this.engine
      .propose(writeEntry(now, [[Buffer.from(FORGET_COMMAND), Buffer.from(String(cutoff))]]))
      .then(({ result }) => {
        this.forgetting = false;
        // A full batch: more may be due at once.
        const looked = result?.[0];
        if (looked?.k === "int" && Number(looked.v) === FORGET_BATCH_TOMBSTONES) this.forgetTombstones();
      })
      .catch(() => {
        this.forgetting = false; // leadership moved or the engine stopped: the next leader forgets
      });
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
    const listen = config.raftListen ?? config.peers.get(config.id);
    if (listen === undefined) throw new RangeError(`peers has no address for node ${config.id}`);
    const store = await KvStore.open(path.join(config.dataDir, "kv"));
    const machine = new KvStateMachine(store);
    if (!config.join && (await store.seedAddressBook(config.peers)))
      logger.info("address book seeded from the founding peers", { peers: Object.fromEntries(config.peers) });
    // An id keeps its address for ever (a node that moves joins under a new id), so an address this node
    // was given for an id is the route to it (a proxy, a NAT's); the book supplies the ids it was not given.
    const addresses = new Map(config.peers);
    for (const [id, address] of store.addressBook()) if (!config.peers.has(id)) addresses.set(id, address);
    if (!addresses.has(config.id)) addresses.set(config.id, listen);
    const admin = new AdminService({ logger });
    const registry = new Registry();
    collectDefaultMetrics({ register: registry });
    let engine: Engine<KvApplyResult> | null = null;
    const transport = new GrpcTransport({
      id: config.id,
      clusterId: config.clusterId,
      listen,
      peers: new Map([...addresses].filter(([id]) => id !== config.id)),
      fs,
      snapshotDir: path.join(config.dataDir, "incoming"),
      logger,
      snapshotSource: {
        open: (meta, signal) => engine!.snapshotSource().open(meta, signal),
        payloadBytes: (meta) => engine!.snapshotSource().payloadBytes!(meta),
      },
      services: [admin.binding()],
    });
    // Set before the engine opens: a restart replays membership changes, and a snapshot may arrive.
    machine.onAddressBookChanged((book) => {
      for (const [id, address] of book) {
        if (config.peers.has(id) || addresses.get(id) === address) continue;
        addresses.set(id, address);
        if (id !== config.id) transport.setPeer(id, address);
        logger.info("peer address learned from the address book", { peer: id, address });
      }
    });
    try {
      engine = await Engine.open<KvApplyResult>({
        id: config.id,
        initialVoters: [...config.peers.keys()],
        ...(config.join ? { join: true } : {}),
        addresses,
        fs,
        dir: path.join(config.dataDir, "raft"),
        stateMachine: machine,
        transport,
        logger,
        metricsRegistry: registry,
        ...defined({
          tickMs: config.tickMs,
          snapshotEveryEntries: config.snapshotEveryEntries,
          trailingEntries: config.trailingEntries,
          keepSnapshots: config.keepSnapshots,
          maxPendingProposals: config.maxPendingProposals,
          maxProposalBytes: config.maxProposalBytes,
          maxPendingReads: config.maxPendingReads,
        }),
        raft: {
          ...defined({
            electionTicks: config.electionTicks,
            heartbeatTicks: config.heartbeatTicks,
            maxMessageBytes: config.maxMessageBytes,
            maxUncommittedBytes: config.maxUncommittedBytes,
            maxInflightMessages: config.maxInflightMessages,
          }),
          preVote: true,
          checkQuorum: true,
          ...(config.leaseReads === true ? { readOnly: "lease-based" as const } : {}),
        },
      });
    } catch (err) {
      await transport.close().catch(() => undefined);
      await store.close();
      throw err;
    }
    const opened = engine;
    admin.attach({
      clusterId: config.clusterId,
      status: () => opened.status(),
      addresses: () => addresses,
      highestNodeId: () => store.highestNodeId(),
      addVoter: (id, context) => opened.addVoter(id, context),
      addLearner: (id, context) => opened.addLearner(id, context),
      removeServer: (id) => opened.removeServer(id),
      transferLeadership: (to) => opened.transferLeadership(to),
    });
    const redis = await RedisServer.start({
      backend: new EngineBackend(engine, machine, defined({ forwardTimeoutMs: config.forwardTimeoutMs })),
      listen: config.redisListen,
      logger,
      ...defined({
        requirepass: config.requirepass,
        maxClients: config.maxClients,
        maxPipelinedCommands: config.maxPipelinedCommands,
        maxOutputBytes: config.maxOutputBytes,
      }),
      requestLimits: defined({
        maxBulkBytes: config.maxBulkBytes,
        maxArgs: config.maxArgs,
        maxInlineBytes: config.maxInlineBytes,
        maxCommandBytes: config.maxCommandBytes,
      }),
    });
    let metrics: MetricsServer | null = null;
    if (config.metricsListen !== undefined) {
      try {
        metrics = await MetricsServer.start(config.metricsListen, registry);
      } catch (err) {
        await redis.close();
        await engine.close();
        await transport.close().catch(() => undefined);
        await store.close();
        throw err;
      }
    }
    return new RaftkvNode(
      engine,
      store,
      redis,
      transport,
      config.tombstoneRetentionMs ?? DEFAULT_TOMBSTONE_RETENTION_MS,
      addresses,
      metrics,
    );
  }

  /** Stops serving clients, then raft, then closes the store. */
  async close(): Promise<void> {
    clearInterval(this.reaper);
    await this.metrics?.close();
    await this.redis.close();
    await this.engine.close();
    await this.transport.close().catch(() => undefined);
    await this.store.close();
  }
}

/** The entries of `o` that are set: optional options left unset keep their defaults. */
function defined<T extends Record<string, unknown>>(o: T): { [K in keyof T]?: Exclude<T[K], undefined> } {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as {
    [K in keyof T]?: Exclude<T[K], undefined>;
  };
}
