/**
 * A snapshot that takes longer to stream than raft's snapshot timeout is not given up while it still
 * moves: the transport reports progress, the dispatcher restarts its silence timeout, and the loop
 * tells raft (reportSnapshotProgress) before each tick.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { CapturingLogger } from "../helpers/capturing-logger.js";
import { engineCluster, leaveAFollowerBehind } from "./cluster.js";

const SNAPSHOT_TIMEOUT_TICKS = 5;

describe("snapshot progress", () => {
  it("a snapshot streaming for longer than raft's snapshot timeout is kept alive by its progress, sent once", async () => {
    const logger = new CapturingLogger();
    const c = await engineCluster(41, {
      logger,
      snapshotEveryEntries: 50,
      trailingEntries: 0,
      keepSnapshots: 1,
      raft: { snapshotTimeoutTicks: SNAPSHOT_TIMEOUT_TICKS },
    });
    const value = "v".repeat(4000);
    const { leader, lagging } = await leaveAFollowerBehind(c, 300, (i) => `${i}:${value}`);
    assert.ok(
      leader.status().firstIndex > c.engines.get(lagging)!.status().lastIndex + 1,
      "C needs a snapshot",
    );

    // A slow link: one 64 KiB slice of the stream per tick, so the 1.2 MB snapshot takes about 19 ticks,
    // well past the snapshot timeout of 5.
    c.network.delay(leader.id, lagging, 50);
    c.network.heal();
    const term = leader.status().hardState.term;
    await c.run(6000);

    assert.deepEqual(c.machines.get(lagging)!.applied, c.machines.get(leader.id)!.applied);
    assert.equal(c.network.linkStats(leader.id, lagging).snapshotsConfirmed, 1, "sent once, confirmed");
    assert.equal(c.network.linkStats(leader.id, lagging).snapshotsFailed, 0);
    const sentChunks = logger.lines.find((l) => l.msg === "snapshot stream sent")?.fields.chunks as number;
    assert.ok(sentChunks > 2 * SNAPSHOT_TIMEOUT_TICKS, `the stream took ${sentChunks} chunks, one per tick`);
    assert.ok(
      !logger.lines.some((l) => l.msg === "snapshot unanswered; falling back to probe and retrying"),
      "raft never gave up on the transfer",
    );
    const dropped = (
      await leader.metrics().getSingleMetric("raftkv_dispatch_dropped_total")?.get()
    )?.values.find((v) => v.labels.peer === String(lagging));
    assert.equal(dropped?.value ?? 0, 0, "no second snapshot was refused by the dispatcher");
    assert.equal(leader.status().hardState.term, term);
    await c.closeAll();
  });
});
