/**
 * Review tests for the engine loop (issue 4). Each test states a behaviour the design requires; a
 * failing test here was a confirmed bug.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { EngineFailedError, EngineOverloadedError } from "../../src/engine/errors.js";
import { MessageType } from "../../src/raft/types.js";
import { engineCluster, ids, settlesWithin } from "./cluster.js";

describe("engine review", () => {
  it("a follower's linearizable read is answered (or refused) even when its forwarded read-index request is lost", async () => {
    const c = await engineCluster(11);
    await c.run(3000);
    const leader = c.leader()!;
    const follower = [...c.engines.values()].find((e) => e !== leader)!;
    // Warm up: a write so the leader has committed in its term.
    assert.ok(await settlesWithin(c, leader.propose(Buffer.from("w")), 2000));
    // Lose exactly one batch carrying the follower's read-index request (a failed send, reported).
    let lost = 0;
    c.network.drop(follower.id, leader.id, (batch, kind) => {
      if (kind !== "messages" || lost > 0) return false;
      if (!batch.some((m) => m.type === MessageType.ReadIndex)) return false;
      lost++;
      return true;
    });
    const read = follower.linearizableRead();
    read.catch(() => {});
    // 10 s = 10 election timeouts with a stable leader: the caller must hear something.
    const settled = await settlesWithin(c, read, 10_000);
    assert.equal(lost, 1, "the read-index request was dropped");
    assert.ok(settled, "the read never settled: its waiters sit in readsByContext for ever");
    await c.closeAll();
  });

  it("maxPendingReads bounds reads waiting inside raft, not just those not yet handed to it", async () => {
    const c = await engineCluster(12, { maxPendingReads: 2 });
    await c.run(3000);
    const leader = c.leader()!;
    const others = ids.filter((i) => i !== leader.id);
    // The leader cannot confirm reads: its heartbeats vanish (until check-quorum makes it step down).
    c.network.partition([leader.id], others, "blackhole");
    let accepted = 0;
    let overloaded = 0;
    for (let round = 0; round < 3; round++) {
      for (let i = 0; i < 2; i++) {
        leader.linearizableRead().then(
          () => {},
          (err: unknown) => {
            if (err instanceof EngineOverloadedError) overloaded++;
          },
        );
      }
      await c.sched.drain(); // the loop hands them to raft; no time passes
    }
    accepted = 6 - overloaded;
    assert.ok(
      accepted <= 2,
      `${accepted} reads were accepted and are pending with maxPendingReads=2 (${overloaded} refused)`,
    );
    c.network.heal();
    await c.closeAll();
  });

  it("a fail-stopped engine stops accepting peer traffic, so its peers see it as unreachable", async () => {
    const c = await engineCluster(13);
    await c.run(3000);
    const leader = c.leader()!;
    const victim = [...c.engines.values()].find((e) => e !== leader)!;
    c.machines.get(victim.id)!.explode = true;
    const boom = leader.propose(Buffer.from("boom"));
    boom.catch(() => {});
    await settlesWithin(c, boom, 2000);
    await c.run(1000);
    await assert.rejects(victim.propose(Buffer.from("x")), EngineFailedError, "the victim fail-stopped");
    const seen = c.network.lookup(victim.id);
    assert.equal(
      typeof seen,
      "string",
      "the fail-stopped node's transport still accepts and acknowledges every batch sent to it",
    );
    await c.closeAll();
  });

  it("close() after a fail-stop still closes the transport and the storage", async () => {
    const c = await engineCluster(14);
    await c.run(3000);
    const leader = c.leader()!;
    const victim = [...c.engines.values()].find((e) => e !== leader)!;
    c.machines.get(victim.id)!.explode = true;
    const boom = leader.propose(Buffer.from("boom"));
    boom.catch(() => {});
    await settlesWithin(c, boom, 2000);
    await c.run(1000);
    await assert.rejects(victim.propose(Buffer.from("x")), EngineFailedError, "the victim fail-stopped");
    await victim.close();
    assert.equal(typeof c.network.lookup(victim.id), "string", "transport still open after close()");
    assert.equal(c.disks.get(victim.id)!.openHandleCount(), 0, "WAL still open after close()");
    await c.closeAll();
  });

  it("a second close() resolves only once the engine is actually closed", async () => {
    const c = await engineCluster(15);
    await c.run(3000);
    const e = c.engines.get(1)!;
    const first = e.close();
    await e.close();
    assert.equal(
      c.disks.get(e.id)!.openHandleCount(),
      0,
      "the second close() resolved with the WAL still open",
    );
    await first;
    await c.closeAll();
  });

  it("closing every engine leaves no timer behind", async () => {
    const c = await engineCluster(16);
    await c.run(3000);
    const leader = c.leader()!;
    const others = ids.filter((i) => i !== leader.id);
    c.network.partition([leader.id], others, "blackhole"); // sends in flight with their timeouts
    await c.run(300);
    await c.closeAll();
    await c.sched.drain();
    assert.equal(c.timers.active, 0);
  });

  it("removing a peer closes its dispatch worker and stops traffic to it", async () => {
    const c = await engineCluster(17);
    await c.run(3000);
    const leader = c.leader()!;
    const removed = ids.find((i) => i !== leader.id)!;
    const removal = leader.removeServer(removed);
    removal.catch(() => {});
    await c.run(2000);
    assert.ok(!leader.status().progress?.has(removed), "the removal was applied on the leader");
    const before = c.network.linkStats(leader.id, removed).deliveredMessages;
    await c.run(2000);
    const after = c.network.linkStats(leader.id, removed).deliveredMessages;
    assert.equal(after, before, "the leader still sends to the removed peer");
    await removal;
    // White-box: the engine's worker map (private).
    const workers = (leader as unknown as { dispatchers: Map<number, unknown> }).dispatchers;
    assert.equal(workers.get(removed), undefined, "the removed peer's dispatcher is still kept in the map");
    await c.closeAll();
  });
});
