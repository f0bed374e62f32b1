/**
 * A cluster of real engines for tests: three nodes over the in-memory transport, each on its own
 * simulated disk, on virtual time (manual timers) with a manual task scheduler.
 */
import { Engine, type EngineOptions } from "../../src/engine/engine.js";
import {
  bytesSnapshot,
  readAll,
  type SnapshotHandle,
  type StateMachine,
} from "../../src/engine/state-machine.js";
import { SeededRandom } from "../../src/raft/rand.js";
import type { Entry } from "../../src/raft/types.js";
import { SimFileSystem } from "../../src/storage/sim-fs.js";
import { MemoryNetwork, MemoryTransport } from "../../src/transport/memory-transport.js";
import { ManualScheduler, ManualTimers } from "../helpers/virtual-time.js";

export const TICK_MS = 100;
export const ids = [1, 2, 3];

/**
 * A state machine that records what it applied; results are the entry's index. Its snapshot says
 * which index it was taken at. With `explode`, a command named "boom" throws.
 */
export class ListMachine implements StateMachine<number> {
  applied: string[] = [];
  /** What this machine has made durable; 0 means nothing, so a restarted node applies its log again. */
  durableIndex = 0;
  lastApplied = 0;
  explode = false;
  apply(entries: readonly Entry[]): number[] | Promise<number[]> {
    return this.applyNow(entries);
  }
  protected applyNow(entries: readonly Entry[]): number[] {
    return entries.map((e) => {
      const s = Buffer.from(e.data).toString();
      if (this.explode && s === "boom") throw new Error("state machine failure (injected)");
      this.applied.push(s);
      this.lastApplied = e.index;
      return e.index;
    });
  }
  appliedIndex(): number {
    return this.durableIndex;
  }
  /** Handles taken and not yet released. */
  openHandles = 0;
  snapshot(): SnapshotHandle {
    this.openHandles++;
    const image = bytesSnapshot(Buffer.from(JSON.stringify({ at: this.lastApplied, applied: this.applied })));
    return { read: image.read, release: () => this.openHandles-- };
  }
  async restore(payload: AsyncIterable<Uint8Array>, index: number): Promise<void> {
    // Parsed whole before anything changes: a stream that fails leaves the old state.
    const image = JSON.parse(Buffer.from(await readAll(payload)).toString()) as { applied: string[] };
    this.applied = image.applied;
    this.lastApplied = index;
  }
}

export type ClusterOptions = Partial<
  Omit<EngineOptions<number>, "id" | "fs" | "dir" | "stateMachine" | "transport">
>;

export async function engineCluster(seed = 1, extra: ClusterOptions = {}) {
  const sched = new ManualScheduler();
  const timers = new ManualTimers();
  const network = new MemoryNetwork({ schedule: sched.schedule, timers });
  const machines = new Map<number, ListMachine>();
  const disks = new Map<number, SimFileSystem>();
  const engines = new Map<number, Engine<number>>();
  /** Opens node `id` on its disk (kept across reopenings); `join` starts it empty to be added. */
  const open = async (id: number, sm: ListMachine = new ListMachine(), join = false) => {
    const fs = disks.get(id) ?? new SimFileSystem(seed * 100 + id);
    disks.set(id, fs);
    machines.set(id, sm);
    const transport = new MemoryTransport({
      id,
      network,
      clusterId: "test",
      fs,
      snapshotDir: "/data/incoming",
      // The engine is the source; it exists only once opened, hence the late binding.
      snapshotSource: {
        open: (meta, signal) => engines.get(id)!.snapshotSource().open(meta, signal),
        payloadBytes: (meta) => engines.get(id)!.snapshotSource().payloadBytes!(meta),
      },
      // A logger given to the cluster hears the transports too (snapshot streams sent and received).
      ...(extra.logger ? { logger: extra.logger } : {}),
    });
    const engine = await Engine.open<number>({
      id,
      initialVoters: ids,
      join,
      addresses: new Map(ids.map((i) => [i, `node${i}:7000`])),
      fs,
      dir: "/data/raft",
      stateMachine: sm,
      transport,
      timers,
      clock: () => timers.now,
      schedule: sched.schedule,
      random: new SeededRandom(seed * 10 + id),
      tickMs: TICK_MS,
      ...extra,
    });
    engines.set(id, engine);
    return engine;
  };
  for (const id of ids) await open(id);
  /** Advances virtual time tick by tick, letting the cluster work after each. */
  const run = async (ms: number) => {
    for (let t = 0; t < ms; t += TICK_MS) {
      timers.advance(TICK_MS);
      await sched.drain();
    }
  };
  const leader = () => [...engines.values()].find((e) => e.status().softState.role === "leader");
  const closeAll = async () => {
    for (const e of engines.values()) await e.close();
  };
  return { sched, timers, network, machines, engines, disks, open, run, leader, closeAll };
}

export type EngineCluster = Awaited<ReturnType<typeof engineCluster>>;

/** Runs the cluster until `p` settles or `ms` pass; returns whether it settled. */
export async function settlesWithin(c: EngineCluster, p: Promise<unknown>, ms: number): Promise<boolean> {
  let done = false;
  const mark = () => {
    done = true;
  };
  p.then(mark, mark);
  for (let t = 0; t < ms && !done; t += TICK_MS) await c.run(TICK_MS);
  return done;
}

/** Waits for a promise while the cluster keeps running (up to `ms` of virtual time), then returns it. */
export async function settleWith<T>(c: EngineCluster, p: Promise<T>, ms = 2000): Promise<T> {
  await settlesWithin(c, p, ms);
  return p;
}

/**
 * Cuts one follower off from the others, has the leader apply `writes` commands (`value(i)`) meanwhile,
 * and lets the cluster run on: the follower is left behind, still partitioned.
 */
export async function leaveAFollowerBehind(c: EngineCluster, writes: number, value = (i: number) => `w${i}`) {
  await c.run(3000);
  const leader = c.leader()!;
  const lagging = ids.find((i) => i !== leader.id)!;
  const third = ids.find((i) => i !== leader.id && i !== lagging)!;
  c.network.partition([lagging], [leader.id, third]);
  for (let i = 0; i < writes; i++) await settleWith(c, leader.propose(Buffer.from(value(i))));
  await c.run(500);
  return { leader, lagging };
}
