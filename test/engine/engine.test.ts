import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { Engine } from "../../src/engine/engine.js";
import { EngineClosedError, LeadershipLostError, NotLeaderError } from "../../src/engine/errors.js";
import { engineCluster, ids, ListMachine, leaveAFollowerBehind, settleWith } from "./cluster.js";

describe("the engine", () => {
  it("elects a leader on its own ticks and applies a proposal on every node, answering with its index", async () => {
    const c = await engineCluster();
    await c.run(3000);
    const leader = c.leader();
    assert.ok(leader, "a leader was elected");
    const { index, result } = await settleWith(c, leader.propose(Buffer.from("hello")));
    assert.equal(result, index);
    await c.run(500);
    for (const sm of c.machines.values()) assert.deepEqual(sm.applied, ["hello"]);
    for (const e of c.engines.values()) await e.close();
  });

  it("batches many concurrent proposals and answers each with its own index", async () => {
    const c = await engineCluster(2);
    await c.run(3000);
    const leader = c.leader()!;
    const all = Promise.all(Array.from({ length: 50 }, (_, i) => leader.propose(Buffer.from(`w${i}`))));
    const results = await settleWith(c, all);
    const indexes = results.map((r) => r.index);
    assert.equal(new Set(indexes).size, 50);
    assert.deepEqual(
      indexes,
      [...indexes].sort((a, b) => a - b),
    );
    await c.run(500);
    for (const sm of c.machines.values()) assert.equal(sm.applied.length, 50);
    for (const e of c.engines.values()) await e.close();
  });

  it("refuses a proposal on a follower with the leader's id and address", async () => {
    const c = await engineCluster(3);
    await c.run(3000);
    const leader = c.leader()!;
    const follower = [...c.engines.values()].find((e) => e !== leader)!;
    await assert.rejects(settleWith(c, follower.propose(Buffer.from("x"))), (err: unknown) => {
      assert.ok(err instanceof NotLeaderError);
      assert.equal(err.leader, leader.id);
      assert.equal(err.leaderAddress, `node${leader.id}:7000`);
      return true;
    });
    for (const e of c.engines.values()) await e.close();
  });

  it("serves linearizable reads on the leader and on a follower at an index that covers every acknowledged write", async () => {
    const c = await engineCluster(4);
    await c.run(3000);
    const leader = c.leader()!;
    const { index } = await settleWith(c, leader.propose(Buffer.from("w")));
    assert.ok((await settleWith(c, leader.linearizableRead())) >= index);
    const follower = [...c.engines.values()].find((e) => e !== leader)!;
    assert.ok((await settleWith(c, follower.linearizableRead())) >= index);
    for (const e of c.engines.values()) await e.close();
  });

  it("answers a linearizable read as soon as its quorum round returns, without waiting for a tick", async () => {
    const c = await engineCluster(41);
    await c.run(3000);
    const leader = c.leader()!;
    await settleWith(c, leader.propose(Buffer.from("w")));
    await c.run(500);
    for (const e of [leader, ...[...c.engines.values()].filter((x) => x !== leader)]) {
      let answered = false;
      const read = e.linearizableRead().then((i) => {
        answered = true;
        return i;
      });
      // Messages and the loop run; virtual time stands still, so no tick can wake the loop.
      await c.sched.drain();
      assert.ok(answered, `node ${e.id}'s read was answered without a tick`);
      assert.ok((await read) > 0);
    }
    for (const e of c.engines.values()) await e.close();
  });

  it("applies a commit it holds durably while its WAL syncs newer entries, not after", async () => {
    const c = await engineCluster(42);
    await c.run(3000);
    const leader = c.leader()!;
    const disk = c.disks.get(leader.id)!;
    // Gates the leader's WAL syncs one at a time.
    let open: (() => void) | null = null;
    disk.delaySync = (_op, path) =>
      path.includes("/raft")
        ? new Promise<void>((resolve) => {
            open = resolve;
          })
        : Promise.resolve();
    let aDone = false;
    const a = leader.propose(Buffer.from("a")).then((r) => {
      aDone = true;
      return r;
    });
    // A is with the followers, which persist and acknowledge it; the leader waits on its own sync.
    await c.sched.drain();
    assert.ok(open !== null, "the leader is syncing A");
    const b = leader.propose(Buffer.from("b"));
    const syncA = open as () => void;
    open = null;
    syncA();
    // The acknowledgements commit A in the same turn that appends B, whose sync is now held.
    await c.sched.drain();
    assert.ok(open !== null, "the leader is syncing B");
    assert.ok(aDone, "A was applied and answered while B's sync was in flight");
    disk.delaySync = undefined;
    (open as () => void)();
    await settleWith(c, b);
    assert.equal((await a).result + 1, (await b).index);
    for (const e of c.engines.values()) await e.close();
  });

  it("fails a pending proposal with LeadershipLostError when its leader is cut off and steps down", async () => {
    const c = await engineCluster(5);
    await c.run(3000);
    const leader = c.leader()!;
    const others = ids.filter((i) => i !== leader.id);
    c.network.partition([leader.id], others, "blackhole");
    const pending = leader.propose(Buffer.from("lost"));
    await assert.rejects(settleWith(c, pending, 5000), LeadershipLostError);
    c.network.heal();
    await c.run(3000);
    const next = c.leader()!;
    await settleWith(c, next.propose(Buffer.from("after")));
    await c.run(1000);
    for (const sm of c.machines.values())
      assert.ok(!sm.applied.includes("lost") || sm.applied.indexOf("lost") < sm.applied.indexOf("after"));
    for (const e of c.engines.values()) await e.close();
  });

  it("after close, refuses requests with EngineClosedError", async () => {
    const c = await engineCluster(6);
    await c.run(3000);
    const e = c.engines.get(1)!;
    await e.close();
    await assert.rejects(e.propose(Buffer.from("x")), EngineClosedError);
    await assert.rejects(e.linearizableRead(), EngineClosedError);
    for (const x of c.engines.values()) await x.close();
  });

  it("refuses empty and oversized proposals before they reach raft", async () => {
    const c = await engineCluster(7);
    const e = c.engines.get(1)!;
    await assert.rejects(e.propose(new Uint8Array(0)), RangeError);
    for (const x of c.engines.values()) await x.close();
  });
});

describe("an engine whose storage fails", () => {
  it("stops, fails what is pending with EngineFailedError, and can still be closed", async () => {
    const { EngineFailedError } = await import("../../src/engine/errors.js");
    const c = await engineCluster(8);
    await c.run(3000);
    const leader = c.leader()!;
    c.disks.get(leader.id)!.failNext("datasync", "EIO");
    await assert.rejects(settleWith(c, leader.propose(Buffer.from("doomed"))), EngineFailedError);
    await assert.rejects(leader.propose(Buffer.from("after")), EngineFailedError);
    await leader.close();
    assert.equal(c.disks.get(leader.id)!.openHandleCount(), 0, "close() released the failed engine's files");
    for (const e of c.engines.values()) await e.close();
  });
});

describe("restarting an engine", () => {
  it("does not apply again what its state machine already holds, and carries on with the cluster", async () => {
    const c = await engineCluster(9);
    await c.run(3000);
    const leader = c.leader()!;
    for (const w of ["a", "b", "c"]) await settleWith(c, leader.propose(Buffer.from(w)));
    await c.run(500);
    const follower = [...c.engines.values()].find((e) => e !== leader)!;
    const before = c.machines.get(follower.id)!;
    assert.deepEqual(before.applied, ["a", "b", "c"]);
    await follower.close();
    c.engines.delete(follower.id);

    // The state machine kept what it applied (as a durable store would) and says so.
    const kept = new ListMachine();
    kept.applied = [...before.applied];
    kept.durableIndex = before.lastApplied;
    const restarted = await c.open(follower.id, kept);
    await settleWith(c, leader.propose(Buffer.from("d")));
    await c.run(1000);
    assert.deepEqual(kept.applied, ["a", "b", "c", "d"], "nothing applied twice, nothing missed");
    assert.equal(restarted.status().hardState.commit, leader.status().hardState.commit);
    for (const e of c.engines.values()) await e.close();
  });
});

describe("giving up on a request", () => {
  it("an aborted proposal or read rejects with the signal's reason, and the engine carries on", async () => {
    const c = await engineCluster(10);
    await c.run(3000);
    const leader = c.leader()!;
    const before = new AbortController();
    before.abort(new Error("gave up early"));
    await assert.rejects(leader.propose(Buffer.from("x"), { signal: before.signal }), /gave up early/);

    // Aborted while in flight: the caller stops waiting at once, whatever happens to the entry.
    const others = ids.filter((i) => i !== leader.id);
    c.network.partition([leader.id], others, "blackhole");
    const ac = new AbortController();
    const waiting = leader.linearizableRead({ signal: ac.signal });
    await c.sched.drain();
    ac.abort(new Error("client went away"));
    await assert.rejects(waiting, /client went away/);
    c.network.heal();
    await c.run(2000);
    const l = c.leader()!;
    assert.ok((await settleWith(c, l.propose(Buffer.from("still works")))).index > 0);
    for (const e of c.engines.values()) await e.close();
  });
});

describe("metrics", () => {
  it("a scrape shows the engine's raft state, dispatch counters and WAL counters, and counters only grow", async () => {
    const c = await engineCluster(11);
    await c.run(3000);
    const leader = c.leader()!;
    await settleWith(c, leader.propose(Buffer.from("m")));
    const value = async (name: string, labels = "") => {
      const text = await leader.metrics().metrics();
      const line = text
        .split("\n")
        .find((l) => l.startsWith(`${name}${labels} `) || l === `${name}${labels}`);
      assert.ok(line, `${name}${labels} is exported`);
      return Number(line.split(" ").at(-1));
    };
    const s = leader.status();
    assert.equal(await value("raftkv_raft_commit_index"), s.hardState.commit);
    assert.equal(await value("raftkv_raft_term"), s.hardState.term);
    assert.equal(await value("raftkv_raft_role", '{role="leader"}'), 1);
    assert.equal(await value("raftkv_raft_role", '{role="follower"}'), 0);
    const peer = ids.find((i) => i !== leader.id)!;
    assert.equal(await value("raftkv_raft_peer_progress_state", `{peer="${peer}",state="replicate"}`), 1);
    const sent = await value("raftkv_dispatch_sent_total", `{peer="${peer}"}`);
    assert.ok(sent > 0);
    const syncs = await value("raftkv_wal_fsyncs_total");
    assert.ok(syncs > 0);
    await c.run(1000); // heartbeats go out
    assert.ok((await value("raftkv_dispatch_sent_total", `{peer="${peer}"}`)) > sent, "the counter advanced");
    assert.equal(await value("raftkv_dispatch_reports_dropped_total"), 0);
    assert.equal(await value("raftkv_raft_snapshot_index"), leader.status().snapshotIndex);
    assert.equal(await value("raftkv_dispatch_queued_messages", `{peer="${peer}",lane="normal"}`), 0);
    await settleWith(c, leader.linearizableRead());
    assert.equal(await value("raftkv_proposal_duration_seconds_count"), 1, "one proposal timed");
    assert.equal(await value("raftkv_read_index_duration_seconds_count"), 1, "one read timed");
    // Syncs made while opening (before the engine existed) are not timed; every one after is.
    const timed = await value("raftkv_wal_fsync_duration_seconds_count");
    const total = await value("raftkv_wal_fsyncs_total");
    await settleWith(c, leader.propose(Buffer.from("n")));
    assert.ok((await value("raftkv_wal_fsyncs_total")) > total);
    assert.equal(
      (await value("raftkv_wal_fsync_duration_seconds_count")) - timed,
      (await value("raftkv_wal_fsyncs_total")) - total,
      "every fdatasync timed",
    );
    for (const e of c.engines.values()) await e.close();
  });
});

describe("snapshots between engines", () => {
  it("a follower cut off while the leader compacted its log catches up from a snapshot and ends in the same state", async () => {
    const c = await engineCluster(12, { snapshotEveryEntries: 5, trailingEntries: 2 });
    const { leader, lagging } = await leaveAFollowerBehind(c, 20);
    const snapIndex = leader.status().snapshotIndex;
    assert.ok(snapIndex >= 15, `the leader took snapshots (at ${snapIndex})`);
    assert.ok(leader.status().firstIndex > 2, "and compacted its log");
    assert.ok(
      c.engines.get(lagging)!.status().lastIndex < leader.status().firstIndex - 1,
      "the lagging follower needs entries that are gone",
    );

    c.network.heal();
    await c.run(5000);
    const expected = c.machines.get(leader.id)!.applied;
    assert.equal(expected.length, 20);
    assert.deepEqual(
      c.machines.get(lagging)!.applied,
      expected,
      "restored from the snapshot, then caught up",
    );
    assert.equal(c.engines.get(lagging)!.status().hardState.commit, leader.status().hardState.commit);
    assert.ok(c.engines.get(lagging)!.status().firstIndex > 1, "its log now starts after the snapshot");
    assert.equal(c.leader(), leader, "no leader change was needed");
    assert.ok(c.network.stats.snapshotsConfirmed >= 1, "a snapshot was streamed, spooled and confirmed");
    const scrape = async (e: Engine<number>, name: string) =>
      Number(
        (await e.metrics().metrics())
          .split("\n")
          .find((l) => l.startsWith(`${name} `))
          ?.split(" ")[1] ?? Number.NaN,
      );
    const follower = c.engines.get(lagging)!;
    assert.ok((await scrape(leader, "raftkv_snapshot_sent_total")) >= 1);
    const bytes = await scrape(leader, "raftkv_snapshot_sent_bytes_total");
    assert.ok(bytes > 0);
    assert.equal(await scrape(follower, "raftkv_snapshot_received_total"), 1);
    assert.equal(
      await scrape(follower, "raftkv_snapshot_received_bytes_total"),
      bytes,
      "both ends count the same bytes",
    );
    for (const e of c.engines.values()) await e.close();
  });
});

describe("the trailing window", () => {
  it("a follower briefly behind is sent entries, not a snapshot, though the leader compacted", async () => {
    const c = await engineCluster(14, { snapshotEveryEntries: 5, trailingEntries: 50 });
    const { leader, lagging } = await leaveAFollowerBehind(c, 20);
    const laggingLast = c.engines.get(lagging)!.status().lastIndex;
    assert.ok(leader.status().snapshotIndex > laggingLast, "the leader snapshotted past the follower");
    assert.ok(leader.status().firstIndex <= laggingLast + 1, "but kept the entries it lacks");
    c.network.heal();
    await c.run(5000);
    assert.deepEqual(c.machines.get(lagging)!.applied, c.machines.get(leader.id)!.applied);
    assert.equal(c.machines.get(lagging)!.applied.length, 20);
    assert.equal(c.network.stats.snapshotsConfirmed, 0, "no snapshot was needed");
    for (const m of c.machines.values()) assert.equal(m.openHandles, 0, "every snapshot handle released");
    for (const e of c.engines.values()) await e.close();
  });
});

describe("forwarding a command from a follower", () => {
  it("forward() on a follower hands the command to the leader through raft: it is applied on every node", async () => {
    const c = await engineCluster(15);
    await c.run(3000);
    const leader = c.leader()!;
    const follower = [...c.engines.values()].find((e) => e !== leader)!;
    await settleWith(c, follower.forward(Buffer.from("forwarded")));
    // propose() on a follower is still refused: the engine answers only for entries it appended.
    await assert.rejects(settleWith(c, follower.propose(Buffer.from("refused"))), NotLeaderError);
    await c.run(1000);
    for (const m of c.machines.values()) {
      assert.deepEqual(
        m.applied.filter((x) => x === "forwarded" || x === "refused"),
        ["forwarded"],
      );
    }
    for (const e of c.engines.values()) await e.close();
  });

  it("forward() with no leader known is refused with NotLeaderError", async () => {
    const c = await engineCluster(16);
    const e = c.engines.get(1)!;
    await assert.rejects(settleWith(c, e.forward(Buffer.from("x"))), NotLeaderError);
    for (const x of c.engines.values()) await x.close();
  });
});

describe("membership through the engine", () => {
  it("a node that joins empty is added as a learner, catches up, is promoted, and can take over leadership", async () => {
    const c = await engineCluster(13, { snapshotEveryEntries: 1000 });
    await c.run(3000);
    const leader = c.leader()!;
    for (let i = 0; i < 5; i++) await settleWith(c, leader.propose(Buffer.from(`v${i}`)));

    await c.open(4, new ListMachine(), true);
    const asLearner = await settleWith(c, leader.addLearner(4));
    assert.deepEqual(asLearner.learners, [4]);
    await c.run(2000);
    assert.deepEqual(c.machines.get(4)!.applied, c.machines.get(leader.id)!.applied, "the learner caught up");

    const promoted = await settleWith(c, leader.promoteLearner(4));
    assert.deepEqual(promoted.voters, [1, 2, 3, 4]);
    assert.deepEqual(promoted.learners, []);

    await settleWith(c, leader.transferLeadership(4), 3000);
    await c.run(1000);
    assert.equal(c.leader()?.id, 4, "node 4 leads");
    const { index } = await settleWith(c, c.engines.get(4)!.propose(Buffer.from("from-4")));
    assert.ok(index > 0);

    const removed = await settleWith(c, c.engines.get(4)!.removeServer(leader.id === 1 ? 2 : 1));
    assert.equal(removed.voters.length, 3);
    await settleWith(c, c.engines.get(4)!.propose(Buffer.from("after-removal")));
    for (const e of c.engines.values()) await e.close();
  });

  it("refuses a membership change on a follower with NotLeaderError", async () => {
    const c = await engineCluster(14);
    await c.run(3000);
    const follower = [...c.engines.values()].find((e) => e.status().softState.role !== "leader")!;
    await assert.rejects(settleWith(c, follower.addVoter(9)), NotLeaderError);
    for (const e of c.engines.values()) await e.close();
  });
});
