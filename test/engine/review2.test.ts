import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { Engine } from "../../src/engine/engine.js";
import { readAll } from "../../src/engine/state-machine.js";
import { type Message, MessageType } from "../../src/raft/types.js";
import { settle } from "../helpers/virtual-time.js";
import { type ClusterOptions, engineCluster, ids, ListMachine, settleWith } from "./cluster.js";

/** Reaches into the engine's storage to observe its snapshot (white-box). */
const storageOf = (e: Engine<number>) =>
  (e as unknown as { storage: import("../../src/storage/disk-storage.js").DiskStorage }).storage;

describe("engine review 2", () => {
  it("a node restarted with a state machine that holds nothing (appliedIndex 0) after its log was compacted ends in the leader's state", async () => {
    const c = await engineCluster(21, { snapshotEveryEntries: 5, trailingEntries: 0, keepSnapshots: 1 });
    await c.run(3000);
    const leader = c.leader()!;
    for (let i = 0; i < 20; i++) await settleWith(c, leader.propose(Buffer.from(`w${i}`)));
    await c.run(500);
    const follower = [...c.engines.values()].find((e) => e !== leader)!;
    assert.ok(follower.status().firstIndex > 5, "the follower compacted its log");
    await follower.close();
    c.engines.delete(follower.id);
    // The state machine made nothing durable, as appliedIndex() = 0 says: the engine must rebuild it.
    const fresh = new ListMachine();
    await c.open(follower.id, fresh);
    await settleWith(c, leader.propose(Buffer.from("after")));
    await c.run(1000);
    assert.deepEqual(fresh.applied, c.machines.get(leader.id)!.applied);
    for (const e of c.engines.values()) await e.close();
  });

  it("a local snapshot taken while a restarted node replays its log holds the state at the snapshot's index", async () => {
    const extra: ClusterOptions = { snapshotEveryEntries: 0, raft: { maxApplyingBytes: 1 } };
    const c = await engineCluster(22, extra);
    await c.run(3000);
    const leader = c.leader()!;
    for (let i = 0; i < 12; i++) await settleWith(c, leader.propose(Buffer.from(`w${i}`)));
    await c.run(500);
    const follower = [...c.engines.values()].find((e) => e !== leader)!;
    const before = c.machines.get(follower.id)!;
    await follower.close();
    c.engines.delete(follower.id);
    const kept = new ListMachine();
    kept.applied = [...before.applied];
    kept.lastApplied = before.lastApplied;
    kept.durableIndex = before.lastApplied;
    extra.snapshotEveryEntries = 3;
    const restarted = await c.open(follower.id, kept);
    await c.run(1000);
    const snap = storageOf(restarted).snapshot();
    assert.ok(snap.metadata.index > 1, "a local snapshot was taken");
    const payload = await readAll((await storageOf(restarted).snapshotPayload()).chunks());
    const at = (JSON.parse(Buffer.from(payload).toString()) as { at: number }).at;
    assert.equal(at, snap.metadata.index, "the snapshot's bytes are the state at its index");
    for (const e of c.engines.values()) await e.close();
  });

  it("a received snapshot still waiting in the inbox when the engine closes is settled and its spooled file removed", async () => {
    const c = await engineCluster(23);
    await c.run(3000);
    const e = c.engines.get(1)!;
    const fs = c.disks.get(1)!;
    fs.mkdirp("/data/incoming");
    const path = "/data/incoming/spooled.snap";
    const h = fs.create(path);
    await h.write(new Uint8Array([1, 2, 3]), 0);
    await h.datasync();
    await h.close();
    const metadata = {
      index: 50,
      term: 9,
      confState: { voters: ids, learners: [], votersOutgoing: [], learnersNext: [], autoLeave: false },
    };
    const msg = { type: MessageType.Snap, from: 2, to: 1, term: 9 } as unknown as Message;
    // The transport's entry point (white-box).
    const entry = e as unknown as {
      onSnapshotReceived(
        from: number,
        m: Message,
        r: { path: string; metadata: typeof metadata },
      ): Promise<void>;
    };
    const p: Promise<void> = entry.onSnapshotReceived(2, msg, { path, metadata });
    let state = "pending";
    p.then(
      () => (state = "resolved"),
      () => (state = "rejected"),
    );
    const closed = e.close();
    let closeDone = false;
    void closed.then(() => (closeDone = true));
    for (let i = 0; i < 20; i++) {
      await c.sched.drain();
      await settle();
    }
    assert.ok(closeDone, "close() finished");
    assert.notEqual(state, "pending", "the transport's onSnapshot promise was settled");
    assert.equal(fs.exists(path), false, "the spooled file was removed");
    for (const x of c.engines.values()) if (x !== e) await x.close();
  });
});
