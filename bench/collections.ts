/**
 * Large collections: the cost of one operation on a sorted set (and a list) of 1,000 members against
 * one of 1,000,000, in the key-value state machine on LMDB (the apply path every replica runs, without
 * raft or the network). Each operation runs as its own entry, `--ops` times, on a collection kept at its
 * size (pops are put back), and prints the mean µs per operation and the ratio large/small.
 *
 *   npm run bench:collections [-- --small 1000 --large 1000000 --ops 2000]
 */
import { mkdtempSync, rmSync } from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { KvStateMachine, writeEntry } from "../src/kv/machine.js";
import { KvStore } from "../src/kv/store.js";
import { EntryType } from "../src/raft/types.js";

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1]! : fallback;
}

const small = Number(arg("small", "1000"));
const large = Number(arg("large", "1000000"));
const ops = Number(arg("ops", "2000"));

interface Machine {
  readonly store: KvStore;
  write(...args: string[]): Promise<void>;
  read(...args: string[]): void;
}

async function machine(dir: string): Promise<Machine> {
  const store = await KvStore.open(dir);
  const m = new KvStateMachine(store);
  let index = 0;
  return {
    store,
    async write(...args) {
      const data = writeEntry(Date.now(), [args.map((a) => Buffer.from(a))]);
      await m.apply([{ index: ++index, term: 1, type: EntryType.Normal, data }]);
    },
    read(...args) {
      m.read(
        args.map((a) => Buffer.from(a)),
        Date.now(),
      );
    },
  };
}

const member = (i: number) => `member:${String(i).padStart(9, "0")}`;

async function fill(m: Machine, key: string, n: number): Promise<void> {
  for (let i = 0; i < n; i += 1000) {
    const zadd: string[] = [];
    const rpush: string[] = [];
    for (let j = i; j < Math.min(n, i + 1000); j++) {
      zadd.push(String(j), member(j));
      rpush.push(member(j));
    }
    await m.write("ZADD", key, ...zadd);
    await m.write("RPUSH", `list:${key}`, ...rpush);
  }
  await m.store.flush();
}

type Op = (m: Machine, key: string, n: number, i: number) => Promise<void> | void;

const OPS: ReadonlyArray<[string, Op]> = [
  // A new member in the middle of the scores, removed again by the next one.
  ["ZADD new member", (m, key, n, i) => m.write("ZADD", key, String(n / 2 + 0.5), `new:${i}`)],
  ["ZSCORE", (m, key, n, i) => m.read("ZSCORE", key, member((i * 7919) % n))],
  ["ZRANGE 0 9", (m, key) => m.read("ZRANGE", key, "0", "9")],
  ["ZREVRANGE 0 9", (m, key) => m.read("ZREVRANGE", key, "0", "9")],
  [
    "ZRANGEBYSCORE mid LIMIT 10",
    (m, key, n) => m.read("ZRANGEBYSCORE", key, String(n / 2), "+inf", "LIMIT", "0", "10"),
  ],
  // Ranks in the middle: the rank index (zset-ranks.ts) reads about √N items.
  ["ZRANK middle", (m, key, n, i) => m.read("ZRANK", key, member(Math.floor(n / 2) + (i % 100)))],
  ["ZRANGE middle, 10", (m, key, n) => m.read("ZRANGE", key, String(n / 2), String(n / 2 + 9))],
  ["ZCOUNT middle half", (m, key, n) => m.read("ZCOUNT", key, String(n / 4), String((3 * n) / 4))],
  [
    "ZPOPMIN + ZADD back",
    async (m, key) => {
      await m.write("ZPOPMIN", key);
      await m.write("ZADD", key, "0", member(0));
    },
  ],
  [
    "ZPOPMAX + ZADD back",
    async (m, key, n) => {
      await m.write("ZPOPMAX", key);
      await m.write("ZADD", key, String(n - 1), member(n - 1));
    },
  ],
  [
    "LPUSH + RPOP",
    async (m, key, _n, i) => {
      await m.write("LPUSH", `list:${key}`, `new:${i}`);
      await m.write("RPOP", `list:${key}`);
    },
  ],
  [
    "RPUSH + LPOP",
    async (m, key, _n, i) => {
      await m.write("RPUSH", `list:${key}`, `new:${i}`);
      await m.write("LPOP", `list:${key}`);
    },
  ],
  ["LINDEX middle", (m, key, n) => m.read("LINDEX", `list:${key}`, String(Math.floor(n / 2)))],
  ["LSET middle", (m, key, n, i) => m.write("LSET", `list:${key}`, String(Math.floor(n / 2)), `set:${i}`)],
  ["LRANGE 0 9", (m, key) => m.read("LRANGE", `list:${key}`, "0", "9")],
  ["LRANGE -10 -1", (m, key) => m.read("LRANGE", `list:${key}`, "-10", "-1")],
];

async function time(m: Machine, key: string, n: number, op: Op): Promise<number> {
  const t0 = performance.now();
  for (let i = 0; i < ops; i++) await op(m, key, n, i);
  return ((performance.now() - t0) * 1000) / ops;
}

async function main(): Promise<void> {
  const dir = mkdtempSync(path.join(os.tmpdir(), "raftkv-bench-collections-"));
  try {
    const m = await machine(dir);
    let t0 = performance.now();
    await fill(m, "small", small);
    console.log(
      `filled a sorted set and a list of ${small} members in ${((performance.now() - t0) / 1000).toFixed(1)} s`,
    );
    t0 = performance.now();
    await fill(m, "large", large);
    console.log(
      `filled a sorted set and a list of ${large} members in ${((performance.now() - t0) / 1000).toFixed(1)} s`,
    );
    console.log(
      `\noperation                     ${String(small).padStart(9)} µs ${String(large).padStart(9)} µs  ratio`,
    );
    for (const [name, op] of OPS) {
      const a = await time(m, "small", small, op);
      const b = await time(m, "large", large, op);
      console.log(
        `${name.padEnd(29)} ${a.toFixed(1).padStart(12)} ${b.toFixed(1).padStart(12)}  ${(b / a).toFixed(2)}×`,
      );
    }
    await m.store.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
