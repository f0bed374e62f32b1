/** The Redis protocol server: a TCP listener whose connections run commands against a KvBackend. */
import * as net from "node:net";
import { realTimers, type Timers } from "../../engine/dispatch.js";
import { type RaftLogger, silentLogger } from "../../raft/config.js";
import type { KvBackend } from "./backend.js";
import { BlockedClients } from "./blocked-clients.js";
import { ClientConnection } from "./connection.js";
import { SETTABLE_CONFIG_DEFAULTS } from "./server-commands.js";
import {
  DEFAULT_REDIS_SERVER_OPTIONS,
  type RedisServerOptions,
  type ServerContext,
} from "./server-context.js";

export interface RedisServerConfig extends Partial<RedisServerOptions> {
  backend: KvBackend;
  /** host:port to listen on (port 0: any free port). */
  listen: string;
  logger?: RaftLogger;
  /** Timers for blocking commands' timeouts (tests inject their own). */
  timers?: Timers;
}

export class RedisServer {
  private readonly server: net.Server;
  private readonly connections = new Set<ClientConnection>();
  private readonly ctx: ServerContext;
  private boundPort = 0;
  private clientIds = 0;

  private constructor(config: RedisServerConfig) {
    const logger = config.logger ?? silentLogger;
    const options: RedisServerOptions = { ...DEFAULT_REDIS_SERVER_OPTIONS, ...stripUndefined(config) };
    const backend = config.backend;
    const blocked = new BlockedClients(
      (key, type) => backend.elementsAt(key, type),
      config.timers ?? realTimers,
    );
    backend.onFilled(blocked);
    this.ctx = {
      backend,
      blocked,
      options,
      startedAt: Date.now(),
      settings: new Map(SETTABLE_CONFIG_DEFAULTS),
      port: () => this.boundPort,
      nextClientId: () => ++this.clientIds,
      clients: () => this.connections,
      log: (message, fields) => logger.info(message, fields),
    };
    // Half-open allowed: a client that half-closes after its requests still gets their replies (each
    // connection closes its side once it has answered; see ClientConnection).
    this.server = net.createServer({ noDelay: true, allowHalfOpen: true }, (socket) => this.accept(socket));
  }

  static async start(config: RedisServerConfig): Promise<RedisServer> {
    const s = new RedisServer(config);
    const { host, port } = parseListen(config.listen);
    await new Promise<void>((resolve, reject) => {
      s.server.once("error", reject);
      s.server.listen(port, host, () => {
        s.server.off("error", reject);
        resolve();
      });
    });
    s.boundPort = (s.server.address() as net.AddressInfo).port;
    return s;
  }

  /** The port actually bound. */
  get port(): number {
    return this.boundPort;
  }

  private accept(socket: net.Socket): void {
    if (this.connections.size >= this.ctx.options.maxClients) {
      socket.end("-ERR max number of clients reached\r\n");
      return;
    }
    socket.setKeepAlive(true, 300_000);
    const conn = new ClientConnection(socket, this.ctx);
    this.connections.add(conn);
    socket.on("close", () => this.connections.delete(conn));
    // A reset by the peer is the end of that client only.
    socket.on("error", () => socket.destroy());
  }

  async close(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const c of this.connections) c.socket.destroy();
    await closed;
  }
}

function parseListen(listen: string): { host: string; port: number } {
  const i = listen.lastIndexOf(":");
  const port = Number(listen.slice(i + 1));
  if (i < 0 || !Number.isInteger(port) || port < 0 || port > 65535)
    throw new RangeError(`listen must be host:port, got ${JSON.stringify(listen)}`);
  return { host: listen.slice(0, i).replace(/^\[|\]$/g, ""), port };
}

function stripUndefined(config: RedisServerConfig): Partial<RedisServerOptions> {
  const out: Partial<RedisServerOptions> = {};
  if (config.requirepass !== undefined) out.requirepass = config.requirepass;
  if (config.requestLimits !== undefined) out.requestLimits = config.requestLimits;
  if (config.maxPipelinedCommands !== undefined) out.maxPipelinedCommands = config.maxPipelinedCommands;
  if (config.maxOutputBytes !== undefined) out.maxOutputBytes = config.maxOutputBytes;
  if (config.maxClients !== undefined) out.maxClients = config.maxClients;
  return out;
}
