import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  LaneFullError,
  PeerDispatcher,
  type PeerSender,
  SendTimeoutError,
} from "../../src/engine/dispatch.js";
import { type DispatchReport, ReportQueue } from "../../src/engine/reports.js";
import { EMPTY_SNAPSHOT, type Message, MessageType, message } from "../../src/raft/types.js";
import { ManualTimers, settle } from "../helpers/virtual-time.js";

/** A sender whose sends stay pending until the test settles them. */
class ManualSender implements PeerSender {
  readonly sends: {
    batch: readonly Message[];
    signal: AbortSignal;
    resolve(): void;
    reject(e: Error): void;
  }[] = [];
  readonly snapshots: { m: Message; signal: AbortSignal; resolve(): void; reject(e: Error): void }[] = [];
  send(batch: readonly Message[], signal: AbortSignal): Promise<void> {
    return new Promise((resolve, reject) => this.sends.push({ batch, signal, resolve, reject }));
  }
  sendSnapshot(m: Message, signal: AbortSignal): Promise<void> {
    return new Promise((resolve, reject) => this.snapshots.push({ m, signal, resolve, reject }));
  }
}

const msg = (type: MessageType) => message({ type, to: 2, from: 1, term: 1 });
const kinds = (reports: DispatchReport[]) =>
  reports.map((r) =>
    r.kind === "failed" ? `failed ${r.messageType} ${r.error.name}` : `confirmed ${r.index}`,
  );

function setup(options = {}) {
  const sender = new ManualSender();
  const timers = new ManualTimers();
  const reports = new ReportQueue(16);
  const d = new PeerDispatcher(2, sender, reports, timers, options);
  return { sender, timers, reports, d };
}

describe("a peer's dispatch worker", () => {
  it("sends heartbeats on the priority lane while an append is still in flight", async () => {
    const { sender, d } = setup();
    d.enqueue(msg(MessageType.App));
    d.enqueue(msg(MessageType.Heartbeat));
    await settle();
    assert.deepEqual(
      sender.sends.map((s) => s.batch.map((m) => m.type)),
      [[MessageType.App], [MessageType.Heartbeat]],
    );
  });

  it("sends what is enqueued in one turn as one batch, and batches what queues up behind a send", async () => {
    const { sender, d } = setup({ maxBatchMessages: 3 });
    for (let i = 0; i < 5; i++) d.enqueue(msg(MessageType.App));
    await settle();
    sender.sends[0]!.resolve();
    await settle();
    assert.deepEqual(
      sender.sends.map((s) => s.batch.length),
      [3, 2],
    );
    d.enqueue(msg(MessageType.App));
    d.enqueue(msg(MessageType.App));
    sender.sends[1]!.resolve();
    await settle();
    assert.deepEqual(
      sender.sends.map((s) => s.batch.length),
      [3, 2, 2],
    );
    sender.sends[2]!.resolve();
    await settle();
    assert.equal(d.stats.sent, 7);
  });

  it("drops a message when its lane is full, counts it, and reports it to raft", async () => {
    const { reports, d } = setup({ normalLaneMessages: 2, maxBatchMessages: 1 });
    d.enqueue(msg(MessageType.App)); // taken into flight at once
    await settle();
    assert.equal(d.enqueue(msg(MessageType.App)), true);
    assert.equal(d.enqueue(msg(MessageType.App)), true);
    assert.equal(d.enqueue(msg(MessageType.App)), false, "the third waiting message does not fit");
    assert.equal(d.stats.dropped, 1);
    const r = reports.drain();
    assert.deepEqual(kinds(r), [`failed ${MessageType.App} LaneFullError`]);
    assert.ok(r[0]!.kind === "failed" && r[0]!.error instanceof LaneFullError);
  });

  it("reports a failed send and carries on with what is queued", async () => {
    const { sender, reports, d } = setup({ maxBatchMessages: 1 });
    d.enqueue(msg(MessageType.App));
    d.enqueue(msg(MessageType.App));
    await settle();
    sender.sends[0]!.reject(new Error("connection reset"));
    await settle();
    assert.deepEqual(kinds(reports.drain()), [`failed ${MessageType.App} Error`]);
    assert.equal(sender.sends.length, 2, "the next message is still sent");
    assert.equal(d.stats.failed, 1);
  });

  it("times out a send that hangs, aborts it, and reports it", async () => {
    const { sender, timers, reports, d } = setup({ sendTimeoutMs: 100 });
    d.enqueue(msg(MessageType.Heartbeat));
    await settle();
    timers.advance(99);
    await settle();
    assert.equal(reports.size, 0);
    timers.advance(1);
    await settle();
    assert.ok(sender.sends[0]!.signal.aborted, "the transport is told to give up");
    const r = reports.drain();
    assert.deepEqual(kinds(r), [`failed ${MessageType.Heartbeat} SendTimeoutError`]);
    assert.ok(r[0]!.kind === "failed" && r[0]!.error instanceof SendTimeoutError);
    assert.equal(timers.active, 0);
  });

  it("streams a snapshot on its own, reporting it confirmed when the receiver says so", async () => {
    const { sender, reports, d } = setup();
    const snap = message({
      type: MessageType.Snap,
      to: 2,
      from: 1,
      term: 1,
      snapshot: { ...EMPTY_SNAPSHOT, metadata: { ...EMPTY_SNAPSHOT.metadata, index: 42 } },
    });
    d.enqueue(snap);
    d.enqueue(msg(MessageType.Heartbeat));
    await settle();
    assert.equal(sender.snapshots.length, 1);
    assert.equal(sender.sends.length, 1, "the heartbeat is not held up by the snapshot");
    sender.snapshots[0]!.resolve();
    await settle();
    assert.deepEqual(kinds(reports.drain()), ["confirmed 42"]);
  });

  it("reports a failed snapshot as a snapshot failure", async () => {
    const { sender, reports, d } = setup();
    d.enqueue(msg(MessageType.Snap));
    await settle();
    sender.snapshots[0]!.reject(new Error("stream cut"));
    await settle();
    assert.deepEqual(kinds(reports.drain()), [`failed ${MessageType.Snap} Error`]);
    assert.equal(d.enqueue(msg(MessageType.Snap)), true, "a new snapshot may go once the last one ended");
  });

  it("a second snapshot supersedes the one in flight: that one is aborted, unreported, and the new one goes at once", async () => {
    const { sender, reports, d } = setup();
    const snap = (index: number) =>
      message({
        type: MessageType.Snap,
        to: 2,
        from: 1,
        term: 1,
        snapshot: { ...EMPTY_SNAPSHOT, metadata: { ...EMPTY_SNAPSHOT.metadata, index } },
      });
    d.enqueue(snap(10));
    await settle();
    // The first is stuck (a dead connection); raft gave up on it and sends a fresh one.
    assert.equal(d.enqueue(snap(20)), true);
    await settle();
    assert.ok(sender.snapshots[0]!.signal.aborted, "the stale transfer was aborted");
    assert.equal(sender.snapshots.length, 2, "the new one started without waiting");
    assert.deepEqual(kinds(reports.drain()), [], "raft is not told of the stale one's end");
    sender.snapshots[0]!.resolve(); // even a late success of the stale one is not reported
    sender.snapshots[1]!.resolve();
    await settle();
    assert.deepEqual(kinds(reports.drain()), ["confirmed 20"]);
    assert.equal(d.stats.dropped, 0);
  });

  it("on close discards what is queued, aborts what is in flight, and reports nothing more", async () => {
    const { sender, reports, d, timers } = setup({ maxBatchMessages: 1 });
    d.enqueue(msg(MessageType.App));
    d.enqueue(msg(MessageType.App));
    await settle();
    d.close();
    await settle();
    assert.ok(sender.sends[0]!.signal.aborted);
    assert.deepEqual(d.queued, { priority: 0, normal: 0 });
    assert.equal(d.enqueue(msg(MessageType.Heartbeat)), false);
    assert.equal(reports.size, 0);
    assert.equal(timers.active, 0, "no timer is left behind");
  });
});
