/** Connection and server commands: answered by the node itself, never through raft. */

import { globMatch } from "../../kv/exec/glob.js";
import { allCommands } from "../../kv/exec/table.js";
import { array, bulk, Errors, error, int, NIL, OK, type Reply, status } from "../../kv/reply.js";
import type { ClientConnection } from "./connection.js";
import { DEFAULT_REQUEST_LIMITS } from "./resp/request-parser.js";
import type { ServerContext } from "./server-context.js";

/** The Redis version clients are told (the command set and replies are those of Redis 7.0). */
export const REDIS_COMPAT_VERSION = "7.0.15";

type Outcome = Reply | Promise<Reply> | { readonly reply: Reply; readonly close: true };

export interface ServerCommand {
  readonly arity: number;
  /** Allowed inside MULTI (answered at EXEC). */
  readonly inMulti: boolean;
  readonly run: (conn: ClientConnection, ctx: ServerContext, args: readonly Buffer[]) => Outcome;
}

export function runServerCommand(
  c: ServerCommand,
  conn: ClientConnection,
  ctx: ServerContext,
  args: readonly Buffer[],
): Outcome {
  return c.run(conn, ctx, args);
}

const text = (b: Buffer) => b.toString("latin1");
const lowerText = (b: Buffer) => text(b).toLowerCase();
/** A map reply (RESP2 clients get it as a flat array of keys and values). */
const map = (pairs: ReadonlyArray<readonly [string, Reply]>): Reply => ({
  k: "map",
  v: pairs.map(([k, v]) => [bulk(Buffer.from(k)), v] as const),
});

function ping(_c: ClientConnection, _x: ServerContext, args: readonly Buffer[]): Outcome {
  if (args.length > 2) return Errors.wrongArity("ping");
  return args.length === 2 ? bulk(args[1]!) : status("PONG");
}

function hello(conn: ClientConnection, ctx: ServerContext, args: readonly Buffer[]): Outcome {
  let protocol = conn.protocol;
  let i = 1;
  if (args.length >= 2) {
    const v = Number(text(args[1]!));
    if (!/^\d+$/.test(text(args[1]!))) return error("ERR Protocol version is not an integer or out of range");
    if (v !== 2 && v !== 3) return error("NOPROTO unsupported protocol version");
    protocol = v;
    i = 2;
  }
  let name: string | null = null;
  for (; i < args.length; i++) {
    const opt = lowerText(args[i]!);
    if (opt === "auth" && i + 2 < args.length) {
      const refused = authenticate(conn, ctx, args[i + 2]!);
      if (refused !== null) return refused;
      i += 2;
    } else if (opt === "setname" && i + 1 < args.length) {
      name = text(args[++i]!);
      if (!validClientName(name))
        return error("ERR Client names cannot contain spaces, newlines or special characters.");
    } else {
      return error(`ERR Syntax error in HELLO option '${text(args[i]!)}'`);
    }
  }
  if (!conn.authenticated)
    return error(
      "NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time",
    );
  if (name !== null) conn.name = name;
  conn.protocol = protocol;
  return map([
    ["server", bulk(Buffer.from("redis"))],
    ["version", bulk(Buffer.from(REDIS_COMPAT_VERSION))],
    ["proto", int(protocol)],
    ["id", int(conn.id)],
    ["mode", bulk(Buffer.from("standalone"))],
    ["role", bulk(Buffer.from("master"))],
    ["modules", array([])],
  ]);
}

/** null when the password is right; Redis's refusal otherwise. */
function authenticate(conn: ClientConnection, ctx: ServerContext, password: Buffer): Reply | null {
  if (ctx.options.requirepass === "")
    return error(
      "ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?",
    );
  if (text(password) !== ctx.options.requirepass)
    return error("WRONGPASS invalid username-password pair or user is disabled.");
  conn.authenticated = true;
  return null;
}

function auth(conn: ClientConnection, ctx: ServerContext, args: readonly Buffer[]): Outcome {
  if (args.length > 3) return Errors.syntax;
  if (args.length === 3 && lowerText(args[1]!) !== "default" && ctx.options.requirepass !== "")
    return error("WRONGPASS invalid username-password pair or user is disabled.");
  return authenticate(conn, ctx, args[args.length - 1]!) ?? OK;
}

function select(_c: ClientConnection, _x: ServerContext, args: readonly Buffer[]): Outcome {
  const t = text(args[1]!);
  if (!/^-?\d+$/.test(t)) return Errors.notInteger;
  return Number(t) === 0 ? OK : error("ERR DB index is out of range");
}

function validClientName(name: string): boolean {
  for (let i = 0; i < name.length; i++) {
    const c = name.charCodeAt(i);
    if (c < 0x21 || c > 0x7e) return false;
  }
  return true;
}

function clientLine(c: ClientConnection, ctx: ServerContext): string {
  const now = Date.now();
  const addr = `${c.socket.remoteAddress ?? "?"}:${c.socket.remotePort ?? 0}`;
  const laddr = `${c.socket.localAddress ?? "?"}:${c.socket.localPort ?? ctx.port()}`;
  return (
    `id=${c.id} addr=${addr} laddr=${laddr} fd=-1 name=${c.name} age=${Math.floor((now - c.createdAt) / 1000)} ` +
    `idle=${Math.floor((now - c.lastCommandAt) / 1000)} flags=N db=0 sub=0 psub=0 ssub=0 multi=${c.inMulti ? 0 : -1} ` +
    `qbuf=0 qbuf-free=0 argv-mem=0 multi-mem=0 rbs=0 rbp=0 obl=0 oll=0 omem=${c.outputBytes} tot-mem=0 events=r ` +
    `cmd=${c.lastCommand} user=default redir=-1 resp=${c.protocol}`
  );
}

function client(conn: ClientConnection, ctx: ServerContext, args: readonly Buffer[]): Outcome {
  const sub = lowerText(args[1]!);
  const arity = (n: number) => args.length === n;
  switch (sub) {
    case "id":
      return arity(2) ? int(conn.id) : Errors.wrongArity("client|id");
    case "getname":
      return arity(2)
        ? conn.name === ""
          ? NIL
          : bulk(Buffer.from(conn.name))
        : Errors.wrongArity("client|getname");
    case "setname": {
      if (!arity(3)) return Errors.wrongArity("client|setname");
      const name = text(args[2]!);
      if (!validClientName(name))
        return error("ERR Client names cannot contain spaces, newlines or special characters.");
      conn.name = name;
      return OK;
    }
    case "info":
      return arity(2)
        ? { k: "bulk", v: Buffer.from(`${clientLine(conn, ctx)}\n`) }
        : Errors.wrongArity("client|info");
    case "list": {
      const lines = [...ctx.clients()].map((c) => `${clientLine(c, ctx)}\n`).join("");
      return bulk(Buffer.from(lines));
    }
    case "setinfo":
      if (!arity(4)) return Errors.wrongArity("client|setinfo");
      if (!["lib-name", "lib-ver"].includes(lowerText(args[2]!)))
        return error(`ERR Unrecognized option '${text(args[2]!)}'`);
      return OK;
    case "no-evict":
    case "no-touch":
      return OK;
    default:
      return error(`ERR unknown subcommand '${text(args[1]!).slice(0, 128)}'. Try CLIENT HELP.`);
  }
}

function commandInfo(
  name: string,
  arity: number,
  write: boolean | null,
  keys: readonly number[] = [0, 0, 0],
): Reply {
  const flags = write === null ? ["fast"] : write ? ["write"] : ["readonly", "fast"];
  return array([
    bulk(Buffer.from(name)),
    int(arity),
    array(flags.map((f) => status(f))),
    int(keys[0]!),
    int(keys[1]!),
    int(keys[2]!),
    array([]),
    array([]),
    array([]),
    array([]),
  ]);
}

function allCommandInfos(): Map<string, Reply> {
  const out = new Map<string, Reply>();
  for (const c of allCommands()) out.set(c.name, commandInfo(c.name, c.arity, c.kind === "write", c.keys));
  for (const [name, c] of SERVER_COMMANDS) out.set(name, commandInfo(name, c.arity, null));
  for (const name of ["multi", "exec", "discard", "quit"])
    out.set(name, commandInfo(name, name === "quit" ? -1 : 1, null));
  out.set("watch", commandInfo("watch", -2, null, [1, -1, 1]));
  return out;
}

function command(_c: ClientConnection, _x: ServerContext, args: readonly Buffer[]): Outcome {
  const infos = allCommandInfos();
  if (args.length === 1) return array([...infos.values()]);
  switch (lowerText(args[1]!)) {
    case "count":
      return int(infos.size);
    case "info":
      return array(args.slice(2).map((a) => infos.get(lowerText(a)) ?? NIL));
    case "docs":
      // Documentation is optional for clients (redis-cli uses it for hints): none is given.
      return array([]);
    case "list":
      return array([...infos.keys()].map((n) => bulk(Buffer.from(n))));
    default:
      return error(`ERR unknown subcommand '${text(args[1]!).slice(0, 128)}'. Try COMMAND HELP.`);
  }
}

/** CONFIG parameters clients may set, with their initial values; they are accepted and remembered. */
export const SETTABLE_CONFIG_DEFAULTS: ReadonlyMap<string, string> = new Map([
  ["save", ""],
  ["maxmemory", "0"],
  ["maxmemory-policy", "noeviction"],
  ["timeout", "0"],
  ["tcp-keepalive", "300"],
  ["slowlog-log-slower-than", "10000"],
  ["slowlog-max-len", "128"],
  ["notify-keyspace-events", ""],
  ["lua-time-limit", "5000"],
  ["latency-tracking", "yes"],
]);

/** CONFIG parameters that say what this server is or enforces; CONFIG SET refuses them. */
function fixedConfig(ctx: ServerContext): Map<string, string> {
  const limits = { ...DEFAULT_REQUEST_LIMITS, ...ctx.options.requestLimits };
  return new Map([
    ["appendonly", "yes"],
    ["appendfsync", "always"],
    ["databases", "1"],
    ["maxclients", String(ctx.options.maxClients)],
    ["proto-max-bulk-len", String(limits.maxBulkBytes)],
    ["client-query-buffer-limit", String(limits.maxCommandBytes)],
  ]);
}

function config(_c: ClientConnection, ctx: ServerContext, args: readonly Buffer[]): Outcome {
  const sub = lowerText(args[1]!);
  if (sub === "get") {
    if (args.length < 3) return Errors.wrongArity("config|get");
    const all = new Map([...fixedConfig(ctx), ...ctx.settings, ["requirepass", ctx.options.requirepass]]);
    const pairs: Array<[string, Reply]> = [];
    const seen = new Set<string>();
    for (const pattern of args.slice(2)) {
      const glob = Buffer.from(lowerText(pattern));
      for (const [name, value] of all) {
        if (seen.has(name) || !globMatch(glob, Buffer.from(name))) continue;
        seen.add(name);
        pairs.push([name, bulk(Buffer.from(value))]);
      }
    }
    return map(pairs);
  }
  if (sub === "set") {
    if (args.length < 4 || args.length % 2 !== 0) return Errors.wrongArity("config|set");
    const fixed = fixedConfig(ctx);
    for (let i = 2; i < args.length; i += 2) {
      const name = lowerText(args[i]!);
      if (name === "requirepass" || ctx.settings.has(name)) continue;
      if (!fixed.has(name))
        return error(`ERR Unknown option or number of arguments for CONFIG SET - '${text(args[i]!)}'`);
      return error(
        `ERR CONFIG SET failed (possibly related to argument '${text(args[i]!)}') - can't set immutable config`,
      );
    }
    for (let i = 2; i < args.length; i += 2) {
      const name = lowerText(args[i]!);
      if (name === "requirepass") ctx.options.requirepass = text(args[i + 1]!);
      else ctx.settings.set(name, text(args[i + 1]!));
    }
    return OK;
  }
  if (sub === "resetstat" || sub === "rewrite") return OK;
  return error(`ERR unknown subcommand '${text(args[1]!).slice(0, 128)}'. Try CONFIG HELP.`);
}

function info(conn: ClientConnection, ctx: ServerContext, args: readonly Buffer[]): Outcome {
  const wanted = new Set(args.slice(1).map(lowerText));
  const all = wanted.size === 0 || wanted.has("all") || wanted.has("everything") || wanted.has("default");
  const clients = [...ctx.clients()].length;
  const mem = process.memoryUsage();
  const sections: Array<[string, string[]]> = [
    [
      "Server",
      [
        `redis_version:${REDIS_COMPAT_VERSION}`,
        "redis_mode:standalone",
        `os:${process.platform}`,
        "arch_bits:64",
        `process_id:${process.pid}`,
        `tcp_port:${ctx.port()}`,
        `uptime_in_seconds:${Math.floor((Date.now() - ctx.startedAt) / 1000)}`,
        "server_name:raftkv",
      ],
    ],
    [
      "Clients",
      [
        `connected_clients:${clients}`,
        `maxclients:${ctx.options.maxClients}`,
        `blocked_clients:${ctx.blocked.size}`,
      ],
    ],
    ["Memory", [`used_memory:${mem.heapUsed}`, `used_memory_rss:${mem.rss}`, "maxmemory:0"]],
    ["Persistence", ["loading:0", "aof_enabled:1"]],
    [
      "Replication",
      [`role:${ctx.backend.raftInfo().some((l) => l === "raft_role:leader") ? "master" : "slave"}`],
    ],
    ["Raft", [...ctx.backend.raftInfo()]],
    ["Keyspace", [`db0:keys=${ctx.backend.keyCount()},expires=0,avg_ttl=0`]],
  ];
  const out = sections
    .filter(([name]) => all || wanted.has(name.toLowerCase()))
    .map(([name, lines]) => `# ${name}\r\n${lines.map((l) => `${l}\r\n`).join("")}`)
    .join("\r\n");
  return conn.protocol === 3 ? { k: "bulk", v: Buffer.from(out) } : bulk(Buffer.from(out));
}

function time(): Outcome {
  const us = BigInt(Date.now()) * 1000n;
  return array([bulk(Buffer.from(String(us / 1_000_000n))), bulk(Buffer.from(String(us % 1_000_000n)))]);
}

export const SERVER_COMMANDS: ReadonlyMap<string, ServerCommand> = new Map<string, ServerCommand>([
  ["ping", { arity: -1, inMulti: true, run: ping }],
  ["echo", { arity: 2, inMulti: true, run: (_c, _x, a) => bulk(a[1]!) }],
  ["hello", { arity: -1, inMulti: false, run: hello }],
  ["auth", { arity: -2, inMulti: false, run: auth }],
  ["select", { arity: 2, inMulti: true, run: select }],
  ["client", { arity: -2, inMulti: false, run: client }],
  ["command", { arity: -1, inMulti: false, run: command }],
  ["config", { arity: -2, inMulti: false, run: config }],
  ["info", { arity: -1, inMulti: true, run: info }],
  ["time", { arity: 1, inMulti: true, run: time }],
  [
    "unwatch",
    {
      arity: 1,
      inMulti: true,
      run: (conn) => {
        conn.unwatch();
        return OK;
      },
    },
  ],
]);
