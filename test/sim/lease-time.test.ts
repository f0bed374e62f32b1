/**
 * Leases against the clock: engines on SimProcesses (pause, clock rate), as the simulator runs them,
 * with lease-based reads. Both tests failed before the fixes (tick catch-up, maxClockDrift).
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Engine } from "../../src/engine/engine.js";
import type { RandomSource } from "../../src/raft/rand.js";
import { type NodeId, StateRole } from "../../src/raft/types.js";
import { encodeKvCommand, KvMachine, type KvResult } from "../../src/sim/kv-machine.js";
import { SimProcess } from "../../src/sim/process.js";
import { ManualScheduler, ManualTimers } from "../../src/sim/virtual-time.js";
import { SimFileSystem } from "../../src/storage/sim-fs.js";
import { MemoryNetwork, MemoryTransport } from "../../src/transport/memory-transport.js";

const TICK_MS = 100;
const ELECTION_TICKS = 10;

/** A random source whose draws the test sets: 0 gives the shortest election timeout. */
class SetRandom implements RandomSource {
  constructor(public value: number) {}
  intn(n: number): number {
    return Math.min(this.value, n - 1);
  }
}

async function cluster(rates: Record<NodeId, number>, randoms: Record<NodeId, SetRandom>) {
  const timers = new ManualTimers();
  const sched = new ManualScheduler();
  const network = new MemoryNetwork({ schedule: sched.schedule, timers });
  const ids = [1, 2, 3];
  const procs = new Map<NodeId, SimProcess>();
  const engines = new Map<NodeId, Engine<KvResult>>();
  for (const id of ids) {
    const disk = new SimFileSystem(id);
    const proc = new SimProcess(timers, sched, disk, rates[id]!);
    procs.set(id, proc);
    const transport = new MemoryTransport({
      id,
      network,
      clusterId: "review",
      fs: proc.fs,
      snapshotDir: "/node/incoming",
      snapshotSource: {
        open: (meta, signal) => engines.get(id)!.snapshotSource().open(meta, signal),
        payloadBytes: (meta) => engines.get(id)!.snapshotSource().payloadBytes!(meta),
      },
    });
    const opening = Engine.open<KvResult>({
      id,
      initialVoters: ids,
      fs: proc.fs,
      dir: "/node/raft",
      stateMachine: new KvMachine(),
      transport,
      timers: proc,
      clock: proc.clock,
      schedule: proc.schedule,
      random: randoms[id]!,
      tickMs: TICK_MS,
      raft: {
        electionTicks: ELECTION_TICKS,
        heartbeatTicks: 1,
        preVote: true,
        checkQuorum: true,
        readOnly: "lease-based",
      },
    });
    await sched.drain();
    engines.set(id, await opening);
  }
  const advance = async (ms: number, stepMs = 1) => {
    for (let t = 0; t < ms; t += stepMs) {
      timers.advance(stepMs);
      await sched.drain();
    }
  };
  const leader = () =>
    [...engines.values()].find((e) => e.status().softState.role === StateRole.Leader) ?? null;
  /** Runs the cluster until `p` settles (or `ms` pass); returns whether it did. */
  const settle = async (p: Promise<unknown>, ms = 5_000): Promise<boolean> => {
    let done = false;
    p.then(
      () => {
        done = true;
      },
      () => {
        done = true;
      },
    );
    for (let t = 0; t < ms && !done; t += 10) await advance(10, 10);
    return done;
  };
  return { timers, sched, network, procs, engines, advance, leader, settle };
}

const put = (key: string, value: string) => encodeKvCommand({ f: "put", key, value });

describe("leases and the clock", () => {
  it("a leader resumed after a pause catches up its ticks before it serves a lease read", async () => {
    // Node 1 times out first and leads; the others draw the longest timeouts.
    const randoms = { 1: new SetRandom(0), 2: new SetRandom(99), 3: new SetRandom(99) };
    const c = await cluster({ 1: 1, 2: 1, 3: 1 }, randoms);
    await c.advance(3_000, 10);
    const l = c.engines.get(1)!;
    assert.equal(c.leader(), l, "node 1 leads");
    const first = l.propose(put("k", "old"));
    assert.ok(await c.settle(first));
    await first;

    // Right after one of node 1's ticks (they fall on multiples of 100 ms): cut it off, and freeze it.
    while (c.timers.now % TICK_MS !== 0) await c.advance(1);
    c.network.partition([1], [2, 3]);
    c.procs.get(1)!.pause();
    // A read that reached it just as it froze: its loop wake-up is held, before the next tick's timer.
    const early = l.linearizableRead().catch((e: unknown) => e);
    await c.sched.drain();

    // The others elect a leader among themselves and commit a newer value.
    randoms[2].value = 0;
    let newLeader: Engine<KvResult> | null = null;
    for (let t = 0; t < 5_000 && newLeader === null; t += 10) {
      await c.advance(10, 10);
      newLeader =
        [c.engines.get(2)!, c.engines.get(3)!].find((e) => e.status().softState.role === StateRole.Leader) ??
        null;
    }
    assert.ok(newLeader, "nodes 2 and 3 elected a leader");
    const write = newLeader.propose(put("k", "new"));
    assert.ok(await c.settle(write));
    const written = (await write).index;

    // A read invoked now, after the write was acknowledged, at the old leader (still cut off).
    const late = l.linearizableRead().then(
      (index) => ({ index }),
      (err: unknown) => ({ err }),
    );
    c.procs.get(1)!.resume();
    await c.sched.drain();
    await c.advance(100, 10);
    await early;
    const outcome = await late;
    // The old leader has been frozen for seconds: its lease is long gone and it cannot reach a quorum.
    // It must refuse the read, not answer with state that misses an acknowledged write.
    assert.ok(
      !("index" in outcome) || outcome.index >= written,
      `a lease read at the deposed leader answered index ${"index" in outcome ? outcome.index : "-"} ` +
        `after the write at ${written} was acknowledged (ticks: ${l.tickCount})`,
    );
    for (const p of c.procs.values()) p.kill();
  });

  it("clock rates within the simulator's skew (0.97 to 1.03) keep a lease read from missing a write", async () => {
    // The simulator draws each node's clock rate in [0.97, 1.03] and says that is within what a lease
    // tolerates (10/9). Here the leader's clock runs slow (0.97) and the followers' fast (1.03).
    const randoms = { 1: new SetRandom(0), 2: new SetRandom(99), 3: new SetRandom(99) };
    const c = await cluster({ 1: 0.97, 2: 1.03, 3: 1.03 }, randoms);
    // Node 2 will draw the shortest timeout at the next term; node 1 times out first and leads.
    await c.advance(1_000, 10);
    randoms[2].value = 0;
    await c.advance(1_000, 10);
    const l = c.engines.get(1)!;
    assert.equal(c.leader(), l, "node 1 leads");
    const first = l.propose(put("k", "old"));
    assert.ok(await c.settle(first));
    await first;

    // Cut node 1 off just after one of its heartbeats reached the others, at a moment when their next
    // tick is close (a tick phase that any run can have).
    const followerPeriod = TICK_MS / 1.03;
    for (let t = 0; ; t++) {
      assert.ok(t < 10_000, "found a moment to cut");
      const before = l.tickCount;
      await c.advance(1);
      const now = c.timers.now;
      const nextFollowerTick = Math.ceil(now / followerPeriod) * followerPeriod;
      if (l.tickCount > before && nextFollowerTick - now > 2 && nextFollowerTick - now < 30) break;
    }
    c.network.partition([1], [2, 3]);
    const cutAt = c.timers.now;
    const cutTicks = l.tickCount;

    // Node 2 campaigns once its election timeout has passed on its own clock, wins, and commits a write.
    const n2 = c.engines.get(2)!;
    let write: Promise<{ index: number }> | null = null;
    let written = 0;
    for (let t = 0; t < 3_000 && written === 0; t++) {
      await c.advance(1);
      if (write === null && n2.status().softState.role === StateRole.Leader) {
        write = n2.propose(put("k", "new"));
        write.then(
          (w) => {
            written = w.index;
          },
          () => undefined,
        );
      }
    }
    assert.ok(written > 0, "node 2 was elected and committed a write");
    // Node 1 still believes in its lease (a quorum acknowledged a heartbeat less than 9 of its ticks ago).
    const read = l.linearizableRead().then(
      (index) => ({ index }),
      (err: unknown) => ({ err }),
    );
    // Served at once from a (wrong) lease, or refused once node 1 finds it cannot confirm leadership.
    assert.ok(await c.settle(read, 5_000), "the read settled");
    const outcome = await read;
    assert.ok(
      !("index" in outcome) || outcome.index >= written,
      `a lease read at the old leader answered index ${"index" in outcome ? outcome.index : "-"} ` +
        `after the new leader's write at ${written} was acknowledged (cut at ${cutAt} ms after node 1's ` +
        `tick ${cutTicks}; the read answered at ${c.timers.now} ms, node 1 at tick ${l.tickCount})`,
    );
    for (const p of c.procs.values()) p.kill();
  });
});
