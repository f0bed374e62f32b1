/**
 * The key-value commands: each with its Redis arity (n: exactly n arguments counting the name; -n: at
 * least n) and whether it writes (goes through raft, runs on every replica at the leader's time) or
 * reads (runs on one node after a linearizable read).
 */
import type { Reply } from "../reply.js";
import type { ReadAccess, WriteAccess } from "./context.js";
import * as hashes from "./hashes.js";
import * as keys from "./keys.js";
import * as keyspace from "./keyspace.js";
import * as lists from "./lists.js";
import * as pops from "./pops.js";
import * as sets from "./sets.js";
import * as strings from "./strings.js";
import * as zalgebra from "./zset-algebra.js";
import * as zsets from "./zsets.js";

/** Where a command's keys are, as Redis says it: first, last (-1: the last argument), step; 0 0 0: none. */
export type KeySpec = readonly [first: number, last: number, step: number];

/**
 * The longest key the store takes. LMDB's keys end at 1,978 bytes and the expiry index puts 8 before
 * a key; the rest is room for the members of collections, which are keyed by their key too.
 */
export const MAX_KEY_BYTES = 1024;

export interface WriteCommand {
  readonly kind: "write";
  readonly name: string;
  readonly arity: number;
  readonly keys: KeySpec;
  /** Proposed by the node itself, never by a client. */
  readonly internal?: boolean;
  readonly run: (ctx: WriteAccess, args: readonly Buffer[]) => Reply;
}

export interface ReadCommand {
  readonly kind: "read";
  readonly name: string;
  readonly arity: number;
  readonly keys: KeySpec;
  readonly run: (ctx: ReadAccess, args: readonly Buffer[]) => Reply;
}

export type KvCommand = WriteCommand | ReadCommand;

const ONE_KEY: KeySpec = [1, 1, 1];
const ALL_KEYS: KeySpec = [1, -1, 1];
const NO_KEYS: KeySpec = [0, 0, 0];

const write = (
  name: string,
  arity: number,
  run: WriteCommand["run"],
  keys: KeySpec = ONE_KEY,
): WriteCommand => ({
  kind: "write",
  name,
  arity,
  keys,
  run,
});
const read = (
  name: string,
  arity: number,
  run: ReadCommand["run"],
  keys: KeySpec = ONE_KEY,
): ReadCommand => ({
  kind: "read",
  name,
  arity,
  keys,
  run,
});

/** The leader's removal of expired keys (each deleted only if it is still expired when applied). */
export const REAP_COMMAND = "__reap";
/** The leader's forgetting of old tombstones (`__forget <cutoff ms>`). */
export const FORGET_COMMAND = "__forget";

const COMMANDS: readonly KvCommand[] = [
  read("get", 2, strings.get),
  read("mget", -2, strings.mget, ALL_KEYS),
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
  write("mset", -3, strings.mset, [1, -1, 2]),
  write("msetnx", -3, strings.msetnx, [1, -1, 2]),
  write("append", 3, strings.append),
  write("setrange", 4, strings.setrange),
  write("incr", 2, strings.incr),
  write("decr", 2, strings.decr),
  write("incrby", 3, strings.incrby),
  write("decrby", 3, strings.decrby),
  write("incrbyfloat", 3, strings.incrbyfloat),
  write("hset", -4, hashes.hset),
  write("hmset", -4, hashes.hmset),
  write("hsetnx", 4, hashes.hsetnx),
  read("hget", 3, hashes.hget),
  read("hmget", -3, hashes.hmget),
  read("hgetall", 2, hashes.hgetall),
  read("hkeys", 2, hashes.hkeys),
  read("hvals", 2, hashes.hvals),
  write("hdel", -3, hashes.hdel),
  read("hexists", 3, hashes.hexists),
  read("hlen", 2, hashes.hlen),
  read("hstrlen", 3, hashes.hstrlen),
  write("hincrby", 4, hashes.hincrby),
  write("hincrbyfloat", 4, hashes.hincrbyfloat),
  write("sadd", -3, sets.sadd),
  write("srem", -3, sets.srem),
  read("smembers", 2, sets.smembers),
  read("sismember", 3, sets.sismember),
  read("smismember", -3, sets.smismember),
  read("scard", 2, sets.scard),
  write("spop", -2, sets.spop),
  read("srandmember", -2, sets.srandmember),
  write("smove", 4, sets.smove, [1, 2, 1]),
  read("sinter", -2, sets.sinter, ALL_KEYS),
  read("sunion", -2, sets.sunion, ALL_KEYS),
  read("sdiff", -2, sets.sdiff, ALL_KEYS),
  read("sintercard", -3, sets.sintercard, [2, -1, 1]),
  write("sinterstore", -3, sets.sinterstore, ALL_KEYS),
  write("sunionstore", -3, sets.sunionstore, ALL_KEYS),
  write("sdiffstore", -3, sets.sdiffstore, ALL_KEYS),
  read("sscan", -3, sets.sscan),
  read("hscan", -3, hashes.hscan),
  read("hrandfield", -2, hashes.hrandfield),
  write("zadd", -4, zsets.zadd),
  write("zincrby", 4, zsets.zincrby),
  write("zrem", -3, zsets.zrem),
  read("zscore", 3, zsets.zscore),
  read("zmscore", -3, zsets.zmscore),
  read("zcard", 2, zsets.zcard),
  read("zcount", 4, zsets.zcount),
  read("zrank", 3, zsets.zrank),
  read("zrevrank", 3, zsets.zrevrank),
  read("zrange", -4, zsets.zrange),
  read("zrevrange", -4, zsets.zrevrange),
  read("zrangebyscore", -4, zsets.zrangebyscore),
  read("zrevrangebyscore", -4, zsets.zrevrangebyscore),
  write("zpopmin", -2, zsets.zpopmin),
  write("zpopmax", -2, zsets.zpopmax),
  write("zremrangebyrank", 4, zsets.zremrangebyrank),
  write("zremrangebyscore", 4, zsets.zremrangebyscore),
  read("zlexcount", 4, zsets.zlexcount),
  read("zrangebylex", -4, zsets.zrangebylex),
  read("zrevrangebylex", -4, zsets.zrevrangebylex),
  write("zremrangebylex", 4, zsets.zremrangebylex),
  write("zrangestore", -5, zsets.zrangestore, [1, 2, 1]),
  read("zrandmember", -2, zsets.zrandmember),
  read("zscan", -3, zsets.zscan),
  // The sorted-set algebra: every argument after the name (or the destination) may be a key.
  read("zunion", -3, zalgebra.zunion, [2, -1, 1]),
  read("zinter", -3, zalgebra.zinter, [2, -1, 1]),
  read("zdiff", -3, zalgebra.zdiff, [2, -1, 1]),
  read("zintercard", -3, zalgebra.zintercard, [2, -1, 1]),
  write("zunionstore", -4, zalgebra.zunionstore, ALL_KEYS),
  write("zinterstore", -4, zalgebra.zinterstore, ALL_KEYS),
  write("zdiffstore", -4, zalgebra.zdiffstore, ALL_KEYS),
  write("lpush", -3, lists.lpush),
  write("rpush", -3, lists.rpush),
  write("lpushx", -3, lists.lpushx),
  write("rpushx", -3, lists.rpushx),
  write("lpop", -2, lists.lpop),
  write("rpop", -2, lists.rpop),
  read("llen", 2, lists.llen),
  read("lrange", 4, lists.lrange),
  read("lindex", 3, lists.lindex),
  write("lset", 4, lists.lset),
  write("ltrim", 4, lists.ltrim),
  write("lrem", 4, lists.lrem),
  write("linsert", 5, lists.linsert),
  read("lpos", -3, lists.lpos),
  write("rpoplpush", 3, lists.rpoplpush, [1, 2, 1]),
  write("lmove", 5, lists.lmove, [1, 2, 1]),
  write("lmpop", -4, pops.lmpop, [2, -1, 1]),
  write("zmpop", -4, pops.zmpop, [2, -1, 1]),
  // The blocking pops, as they run in the log (see pops.ts: the front door does the blocking).
  write("blpop", -3, pops.blpop, [1, -2, 1]),
  write("brpop", -3, pops.brpop, [1, -2, 1]),
  write("brpoplpush", 4, pops.brpoplpush, [1, 2, 1]),
  write("blmove", 6, pops.blmove, [1, 2, 1]),
  write("blmpop", -5, pops.blmpop, [3, -1, 1]),
  write("bzpopmin", -3, pops.bzpopmin, [1, -2, 1]),
  write("bzpopmax", -3, pops.bzpopmax, [1, -2, 1]),
  write("bzmpop", -5, pops.bzmpop, [3, -1, 1]),
  write("del", -2, keys.del, ALL_KEYS),
  write("unlink", -2, keys.del, ALL_KEYS),
  read("exists", -2, keys.exists, ALL_KEYS),
  read("touch", -2, keys.touch, ALL_KEYS),
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
  write("rename", 3, keys.rename, [1, 2, 1]),
  write("renamenx", 3, keys.renamenx, [1, 2, 1]),
  read("keys", 2, keyspace.keys, NO_KEYS),
  read("scan", -2, keyspace.scan, NO_KEYS),
  read("randomkey", 1, keyspace.randomkey, NO_KEYS),
  // A read like any other: linearizable, and after the connection's earlier writes.
  read("dbsize", 1, keyspace.dbsize, NO_KEYS),
  write("flushdb", -1, keys.flush, NO_KEYS),
  { ...write(REAP_COMMAND, -2, keys.reap, ALL_KEYS), internal: true },
  { ...write(FORGET_COMMAND, 2, keys.forget, NO_KEYS), internal: true },
  write("flushall", -1, keys.flush, NO_KEYS),
];

const BY_NAME = new Map(COMMANDS.map((c) => [c.name, c]));

/** The command named by `name` (any case), or undefined; `internal` ones only when asked for. */
export function lookupCommand(name: Buffer, internal = false): KvCommand | undefined {
  const c = name.length > 32 ? undefined : BY_NAME.get(name.toString("latin1").toLowerCase());
  return c?.kind === "write" && c.internal && !internal ? undefined : c;
}

/** Whether any key argument of the command is longer than MAX_KEY_BYTES. */
export function hasOverlongKey(c: KvCommand, args: readonly Buffer[]): boolean {
  const [first, last, step] = c.keys;
  if (first === 0) return false;
  const end = last < 0 ? args.length + last : last;
  for (let i = first; i <= end && i < args.length; i += step)
    if (args[i]!.length > MAX_KEY_BYTES) return true;
  return false;
}

/** Whether `argc` (the name included) fits the command's arity. */
export function arityOk(c: KvCommand, argc: number): boolean {
  return c.arity >= 0 ? argc === c.arity : argc >= -c.arity;
}

/** The commands clients may call. */
export function allCommands(): readonly KvCommand[] {
  return COMMANDS.filter((c) => !(c.kind === "write" && c.internal));
}
