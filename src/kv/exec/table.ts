/**
 * The key-value commands: each with its Redis arity (n: exactly n arguments counting the name; -n: at
 * least n) and whether it writes (goes through raft, runs on every replica at the leader's time) or
 * reads (runs on one node after a linearizable read).
 */
import type { Reply } from "../reply.js";
import type { ReadAccess, WriteAccess } from "./context.js";
import * as keys from "./keys.js";
import * as keyspace from "./keyspace.js";
import * as strings from "./strings.js";

export interface WriteCommand {
  readonly kind: "write";
  readonly name: string;
  readonly arity: number;
  /** Proposed by the node itself, never by a client. */
  readonly internal?: boolean;
  readonly run: (ctx: WriteAccess, args: readonly Buffer[]) => Reply;
}

export interface ReadCommand {
  readonly kind: "read";
  readonly name: string;
  readonly arity: number;
  readonly run: (ctx: ReadAccess, args: readonly Buffer[]) => Reply;
}

export type KvCommand = WriteCommand | ReadCommand;

const write = (name: string, arity: number, run: WriteCommand["run"]): WriteCommand => ({
  kind: "write",
  name,
  arity,
  run,
});
const read = (name: string, arity: number, run: ReadCommand["run"]): ReadCommand => ({
  kind: "read",
  name,
  arity,
  run,
});

/** The leader's removal of expired keys (each deleted only if it is still expired when applied). */
export const REAP_COMMAND = "__reap";

const COMMANDS: readonly KvCommand[] = [
  read("get", 2, strings.get),
  read("mget", -2, strings.mget),
  read("strlen", 2, strings.strlen),
  read("getrange", 4, strings.getrange),
  read("substr", 4, strings.getrange),
  write("set", -3, strings.set),
  write("setnx", 3, strings.setnx),
  write("setex", 4, strings.setex),
  write("psetex", 4, strings.psetex),
  write("getset", 3, strings.getset),
  write("getdel", 2, strings.getdel),
  write("getex", -2, strings.getex),
  write("mset", -3, strings.mset),
  write("msetnx", -3, strings.msetnx),
  write("append", 3, strings.append),
  write("setrange", 4, strings.setrange),
  write("incr", 2, strings.incr),
  write("decr", 2, strings.decr),
  write("incrby", 3, strings.incrby),
  write("decrby", 3, strings.decrby),
  write("del", -2, keys.del),
  write("unlink", -2, keys.del),
  read("exists", -2, keys.exists),
  read("touch", -2, keys.touch),
  read("type", 2, keys.type),
  write("expire", -3, keys.expire),
  write("pexpire", -3, keys.pexpire),
  write("expireat", -3, keys.expireat),
  write("pexpireat", -3, keys.pexpireat),
  read("ttl", 2, keys.ttl),
  read("pttl", 2, keys.pttl),
  read("expiretime", 2, keys.expiretime),
  read("pexpiretime", 2, keys.pexpiretime),
  write("persist", 2, keys.persist),
  write("rename", 3, keys.rename),
  write("renamenx", 3, keys.renamenx),
  read("keys", 2, keyspace.keys),
  read("scan", -2, keyspace.scan),
  read("randomkey", 1, keyspace.randomkey),
  write("flushdb", -1, keys.flush),
  { ...write(REAP_COMMAND, -2, keys.reap), internal: true },
  write("flushall", -1, keys.flush),
];

const BY_NAME = new Map(COMMANDS.map((c) => [c.name, c]));

/** The command named by `name` (any case), or undefined; `internal` ones only when asked for. */
export function lookupCommand(name: Buffer, internal = false): KvCommand | undefined {
  const c = name.length > 32 ? undefined : BY_NAME.get(name.toString("latin1").toLowerCase());
  return c?.kind === "write" && c.internal && !internal ? undefined : c;
}

/** Whether `argc` (the name included) fits the command's arity. */
export function arityOk(c: KvCommand, argc: number): boolean {
  return c.arity >= 0 ? argc === c.arity : argc >= -c.arity;
}

/** The commands clients may call. */
export function allCommands(): readonly KvCommand[] {
  return COMMANDS.filter((c) => !(c.kind === "write" && c.internal));
}
