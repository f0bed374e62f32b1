/**
 * Deleted keys are remembered for WATCH for a retention, then forgotten by the leader's `__forget`
 * entries on every replica alike. The tombstones are internal state, so this looks at the nodes in
 * process.
 */
import assert from "node:assert/strict";
import { after, before, it } from "node:test";
import { Redis } from "ioredis";
import { InProcessCluster } from "./in-process-cluster.js";

let cluster: InProcessCluster;
let leader: Redis;

before(async () => {
  // Remembered for 1.5 s here (60 s by default), so the test sees them forgotten.
  cluster = await InProcessCluster.start(3, { tombstoneRetentionMs: 1_500 });
  leader = new Redis({
    port: (await cluster.leader()).redis.port,
    host: "127.0.0.1",
    maxRetriesPerRequest: 0,
  });
});

after(async () => {
  leader?.disconnect();
  await cluster?.close();
});

it("the leader has deleted keys forgotten on every replica after the retention", async () => {
  await leader.set("w:tomb", "v");
  await leader.del("w:tomb");
  const remembered = () => cluster.nodes.map((n) => n.store.tombstoneEntries().length);
  assert.ok(remembered().some((n) => n > 0));
  const deadline = Date.now() + 10_000;
  while (remembered().some((n) => n > 0) && Date.now() < deadline)
    await new Promise((r) => setTimeout(r, 100));
  assert.deepEqual(remembered(), [0, 0, 0]);
  const horizons = cluster.nodes.map((n) => n.store.tombstoneHorizon());
  assert.ok(horizons[0]! > 0 && horizons.every((h) => h === horizons[0]), String(horizons));
});
