/** What a connection shares with its server. */
import type { KvBackend } from "./backend.js";
import type { BlockedClients } from "./blocked-clients.js";
import type { ClientConnection } from "./connection.js";
import type { RequestLimits } from "./resp/request-parser.js";

export interface RedisServerOptions {
  /** AUTH password for the default user; "" for none. */
  requirepass: string;
  requestLimits: Partial<RequestLimits>;
  /** Commands a connection may have started but not yet answered before its reads pause. */
  maxPipelinedCommands: number;
  /** A connection whose unsent replies pass this is closed. */
  maxOutputBytes: number;
  maxClients: number;
}

export const DEFAULT_REDIS_SERVER_OPTIONS: RedisServerOptions = {
  requirepass: "",
  requestLimits: {},
  maxPipelinedCommands: 10_000,
  maxOutputBytes: 256 * 1024 * 1024,
  maxClients: 10_000,
};

export interface ServerContext {
  readonly backend: KvBackend;
  /** Clients waiting in a blocking pop. */
  readonly blocked: BlockedClients;
  readonly options: RedisServerOptions;
  readonly startedAt: number;
  /** This server's CONFIG parameters that clients may set (per server: CONFIG is not replicated). */
  readonly settings: Map<string, string>;
  readonly port: () => number;
  nextClientId(): number;
  clients(): Iterable<ClientConnection>;
  log(message: string, fields?: Record<string, unknown>): void;
}
