/**
 * A node killed with SIGKILL under write load, then restarted: it rejoins, and no write the engine
 * acknowledged is lost, on any node. Three processes on gRPC and the real disk; the writers run in
 * this process and go to whichever node leads, so the leader itself can be the one killed.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { NodeRequestError, ProcessCluster } from "./harness.js";

const WRITERS = 16;

interface Load {
  acked: Map<string, string>;
  stop(): Promise<void>;
}

/** Writers that each propose, wait for the answer, and go again; a failed write is retried elsewhere. */
function writeLoad(c: ProcessCluster): Load {
  const acked = new Map<string, string>();
  let running = true;
  let leader = 0;
  let seq = 0;
  const writer = async (w: number) => {
    while (running) {
      const key = `w${w}-${seq++}`;
      const value = `v${seq}`;
      const target = c.nodes.get(leader);
      if (!target?.alive) {
        leader = await c.leader().catch(() => 0);
        continue;
      }
      try {
        await target.request({ op: "propose", data: `${key}=${value}` });
        acked.set(key, value);
      } catch (err) {
        // Not acknowledged: it may or may not have been applied, and is not counted either way.
        if (!(err instanceof NodeRequestError) && target.alive) throw err;
        leader = 0;
      }
    }
  };
  const done = Promise.all(Array.from({ length: WRITERS }, (_, w) => writer(w)));
  return {
    acked,
    stop: async () => {
      running = false;
      await done;
    },
  };
}

async function untilAcked(c: ProcessCluster, load: Load, n: number): Promise<void> {
  await c.waitFor(`${n} acknowledged writes`, async () => (load.acked.size >= n ? true : undefined));
}

async function killUnderLoad(victimIsLeader: boolean): Promise<string> {
  const c = await ProcessCluster.start(3, { snapshotEveryEntries: 500, trailingEntries: 100 });
  try {
    const leaderId = await c.leader();
    const load = writeLoad(c);
    await untilAcked(c, load, 300);
    const victim = victimIsLeader ? leaderId : c.ids.find((i) => i !== leaderId)!;
    const killedAt = load.acked.size;
    const exit = await c.node(victim).kill();
    assert.equal(exit.signal, "SIGKILL");
    // Writes go on (at the new leader, if the leader died) while the victim is down, then after it
    // is back.
    await untilAcked(c, load, killedAt + 300);
    await c.startNode(victim);
    await untilAcked(c, load, load.acked.size + 300);
    await load.stop();

    const entries = [...load.acked];
    const lead = await c.leader();
    const target = (await c.node(lead).status()).commit;
    for (const id of c.ids) {
      const node = c.node(id);
      await c.waitFor(`node ${id} to apply up to ${target}`, async () =>
        (await node.status()).applied >= target ? true : undefined,
      );
      const { missing } = await node.request({ op: "check", entries });
      assert.deepEqual(missing, [], `node ${id} holds every acknowledged write`);
    }
    const digests = await Promise.all(c.ids.map((id) => c.node(id).request({ op: "digest" })));
    const applied = Math.min(...digests.map((d) => d.applied));
    assert.ok(applied >= target);
    // The writers stopped before `target` was read, so every node applied the same log.
    assert.ok(
      digests.every((d) => d.digest === digests[0]!.digest),
      "the replicas converge on one state",
    );
    return `killed node ${victim} (${victimIsLeader ? "the leader" : "a follower"}) after ${killedAt} acknowledged writes; ${entries.length} acknowledged in all, none lost`;
  } finally {
    await c.shutdown();
  }
}

describe("SIGKILL under write load, three processes on gRPC and disk", () => {
  it("the leader killed and restarted: it rejoins and no acknowledged write is lost", async (t) => {
    t.diagnostic(await killUnderLoad(true));
  });

  it("a follower killed and restarted: it rejoins and no acknowledged write is lost", async (t) => {
    t.diagnostic(await killUnderLoad(false));
  });
});
