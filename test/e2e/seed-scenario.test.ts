/**
 * The seed scenario, end to end: three engines in separate processes, on the real disk and real gRPC
 * over loopback. Follower C is stopped; the leader writes until its log is compacted past C; C is
 * restarted with a fault that kills it in the middle of restoring the leader's snapshot, then
 * restarted again, and must reach the leader's commit index within 10 election timeouts, with no
 * leader change. Run twice: as built, and with dispatch reports never reaching raft (the elastickv bug),
 * where raft's own snapshot timeout must recover C within the same bound.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { type LogLine, ProcessCluster } from "./harness.js";

const ELECTION_TICKS = 10;
const SNAPSHOT_EVERY = 400;
const TRAILING = 50;
const WRITES = 2_000;
const VALUE_BYTES = 1_000;

function snapshotLines(lines: readonly LogLine[], msg: string): LogLine[] {
  return lines.filter((l) => l.msg === msg);
}

async function seedScenario(dropDispatchReports: boolean): Promise<string> {
  const c = await ProcessCluster.start(3, {
    electionTicks: ELECTION_TICKS,
    snapshotEveryEntries: SNAPSHOT_EVERY,
    trailingEntries: TRAILING,
    dropDispatchReports,
  });
  try {
    const leaderId = await c.leader();
    const leader = c.node(leaderId);
    const { term } = await leader.status();
    const cId = c.ids.find((i) => i !== leaderId)!;

    await leader.request({ op: "propose", data: "before=1" });
    await c.node(cId).close();
    const cLast = (await leader.status()).progress.find((p) => p.id === cId)!.match;

    // The leader writes until its log is compacted past C.
    await leader.request({
      op: "load",
      concurrency: 32,
      count: WRITES,
      durationMs: 0,
      valueBytes: VALUE_BYTES,
      keyPrefix: "k",
    });
    const compacted = await c.waitFor("the leader to compact past C", async () => {
      const s = await leader.status();
      return s.firstIndex > cLast + 1 && s.snapshotIndex > cLast ? s : undefined;
    });
    assert.ok(compacted.snapshotIndex >= SNAPSHOT_EVERY, "the leader took a snapshot");

    // C comes back and dies in the middle of restoring the snapshot it is sent.
    const died = await c.startDoomed(cId, { killInRestoreAfterBytes: 1 });
    assert.equal(died.signal, "SIGKILL", "C was killed by the injected fault");
    const cLogs = c.logs(cId);
    assert.ok(
      cLogs.some((l) => l.msg === "test fault: killing this process in the middle of a restore"),
      "the fault fired in the middle of a restore",
    );

    // C comes back again and must catch up within 10 election timeouts, under the same leader.
    const target = (await leader.status()).commit;
    const ticksAtRestart = (await leader.status()).ticks;
    await c.startNode(cId);
    const caughtUp = await c.waitFor(
      "C to reach the leader's commit index",
      async () => {
        const s = await c.node(cId).status();
        return s.commit >= target && s.applied >= target ? s : undefined;
      },
      60_000,
    );
    const ticksTaken = (await leader.status()).ticks - ticksAtRestart;
    assert.ok(
      ticksTaken <= 10 * ELECTION_TICKS,
      `C caught up in ${ticksTaken} leader ticks, within 10 election timeouts (${10 * ELECTION_TICKS})`,
    );
    assert.equal(caughtUp.lead, leaderId);
    for (const s of (await c.statuses()).values()) {
      assert.equal(s.term, term, `node ${s.id} saw no new term`);
      assert.equal(s.lead, leaderId, `node ${s.id} follows the same leader`);
    }
    const want = await leader.request({ op: "digest" });
    const got = await c.waitFor("C's state to equal the leader's", async () => {
      const d = await c.node(cId).request({ op: "digest" });
      return d.applied >= want.applied ? d : undefined;
    });
    assert.equal(got.size, WRITES + 1);
    assert.equal(got.digest, want.digest, "C holds exactly the leader's state");

    // Both ends counted and logged the payload bytes of every snapshot sent to C.
    const sent = snapshotLines(c.logs(leaderId), "snapshot stream sent").filter((l) => l.peer === cId);
    const received = snapshotLines(c.logs(cId), "snapshot received");
    assert.ok(sent.length >= 1, "the leader logged the snapshot it sent");
    assert.ok(received.length >= 1, "C logged the snapshot it received");
    for (const r of received) {
      assert.equal(typeof r.payload_bytes, "number");
      // Every write up to the snapshot's index is in it (indexes 1-3: bootstrap, election, "before").
      assert.ok(
        (r.payload_bytes as number) > ((r.index as number) - 3) * VALUE_BYTES,
        `the payload (${r.payload_bytes} bytes) is the whole state at ${r.index}`,
      );
      const match = sent.find((s) => s.index === r.index);
      assert.ok(match, `the leader logged sending snapshot ${r.index}`);
      assert.equal(match.payload_bytes, r.payload_bytes, "sender and receiver counted the same bytes");
    }
    if (dropDispatchReports) {
      assert.ok(
        c.logs(leaderId).some((l) => l.msg === "snapshot unanswered; falling back to probe and retrying"),
        "with reports dropped, raft's snapshot timeout is what recovered C",
      );
    }
    return `C caught up in ${ticksTaken} leader ticks (bound ${10 * ELECTION_TICKS}); snapshots sent to C: ${sent.length}, received: ${received.length}, payload bytes ${received.map((r) => r.payload_bytes).join(", ")}`;
  } finally {
    await c.shutdown();
  }
}

describe("the seed scenario, three processes on gRPC and disk", () => {
  it("a follower killed while restoring a snapshot catches up, with no leader change (dispatch reports on)", async (t) => {
    t.diagnostic(await seedScenario(false));
  });

  it("the same with dispatch reports dropped: raft's snapshot timeout recovers it within the bound", async (t) => {
    t.diagnostic(await seedScenario(true));
  });
});
