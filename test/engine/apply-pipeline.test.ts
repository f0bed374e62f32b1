import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { Entry } from "../../src/raft/types.js";
import { engineCluster, ListMachine, settleWith } from "./cluster.js";

/** A ListMachine whose applies wait while the gate is closed, and which records each batch it was given. */
class GatedMachine extends ListMachine {
  batches: number[][] = [];
  private shut = false;
  private waiting: (() => void)[] = [];

  close(): void {
    this.shut = true;
  }

  open(): void {
    this.shut = false;
    for (const go of this.waiting.splice(0)) go();
  }

  /** Decides each batch's results at once, before waiting for the gate (like a transaction not yet committed). */
  decidesEarly = false;

  override async apply(
    entries: readonly Entry[],
    decided?: (results: readonly number[]) => void,
  ): Promise<number[]> {
    this.batches.push(entries.map((e) => e.index));
    if (this.decidesEarly) decided?.(entries.map((e) => e.index));
    while (this.shut) await new Promise<void>((go) => this.waiting.push(go));
    return this.applyNow(entries);
  }
}

async function gatedCluster(seed: number, extra: Parameters<typeof engineCluster>[1] = {}) {
  const c = await engineCluster(seed, extra);
  const machines = new Map<number, GatedMachine>();
  // Reopen every node on a gated machine (same disks: they have applied nothing yet).
  for (const [id, e] of c.engines) {
    await e.close();
    const m = new GatedMachine();
    machines.set(id, m);
    await c.open(id, m);
  }
  await c.run(3000);
  const leader = c.leader();
  assert.ok(leader, "a leader was elected");
  return { c, leader, machines };
}

describe("applying off the loop", () => {
  it("goes on persisting and committing while the state machine is busy, and then applies what queued up in one batch", async () => {
    const { c, leader, machines } = await gatedCluster(11);
    const lm = machines.get(leader.id)!;
    for (const m of machines.values()) m.close();

    const first = leader.propose(Buffer.from("a"));
    await c.run(300);
    const rest = ["b", "c", "d"].map((v) => leader.propose(Buffer.from(v)));
    await c.run(500);
    const s = leader.status();
    // Raft committed everything although the state machine has applied none of it.
    assert.ok(s.hardState.commit >= s.lastIndex, `commit ${s.hardState.commit}, last ${s.lastIndex}`);
    assert.ok(s.applied < s.hardState.commit - 3, `applied ${s.applied} lags commit ${s.hardState.commit}`);
    assert.deepEqual(lm.applied, []);

    for (const m of machines.values()) m.open();
    const results = await settleWith(c, Promise.all([first, ...rest]));
    const indexes = results.map((r) => r.index);
    assert.deepEqual(
      results.map((r) => r.result),
      indexes,
      "each proposal is answered with its own entry's result",
    );
    assert.deepEqual(lm.applied, ["a", "b", "c", "d"]);
    // "a" was under way alone; b, c and d queued behind it and went in as one batch.
    assert.deepEqual(lm.batches.slice(-2), [[indexes[0]], indexes.slice(1)]);
    assert.equal(leader.status().applied, indexes[3]);
    await c.closeAll();
  });

  it("answers a proposal as soon as the state machine decides its result, and reads only once it is applied", async () => {
    const { c, leader, machines } = await gatedCluster(14);
    for (const m of machines.values()) {
      m.decidesEarly = true;
      m.close();
    }
    let answered: { index: number; result: number } | null = null;
    void leader.propose(Buffer.from("early")).then((r) => {
      answered = r;
    });
    await c.run(500);
    assert.ok(answered, "the proposal was answered while its batch was still being applied");
    const { index, result } = answered as { index: number; result: number };
    assert.equal(result, index);
    assert.ok(leader.status().applied < index, "raft does not count it applied yet");

    let readAt = 0;
    void leader.linearizableRead().then((i) => {
      readAt = i;
    });
    await c.run(500);
    assert.equal(readAt, 0, "a read waits for the batch to be applied");
    for (const m of machines.values()) m.open();
    await c.run(300);
    assert.ok(readAt >= index, `the read went on at ${readAt}`);
    assert.equal(leader.status().applied >= index, true);
    await c.closeAll();
  });

  it("on close, a batch the state machine is applying finishes and answers its proposals", async () => {
    const { c, leader, machines } = await gatedCluster(15);
    const lm = machines.get(leader.id)!;
    lm.close();
    let outcome: string | null = null;
    void leader.propose(Buffer.from("in-flight")).then(
      (r) => {
        outcome = `applied at ${r.index}`;
      },
      (e: Error) => {
        outcome = e.name;
      },
    );
    await c.run(500);
    assert.ok(lm.batches.length > 0 && outcome === null, "its batch is with the state machine");
    const closing = leader.close();
    lm.open();
    await closing;
    assert.match(String(outcome), /^applied at \d+$/, "the committed write is answered, not failed");
    assert.deepEqual(lm.applied.at(-1), "in-flight");
    for (const e of c.engines.values()) if (e !== leader) await e.close();
  });

  it("applies a membership change only after every entry before it", async () => {
    const { c, leader, machines } = await gatedCluster(12);
    for (const m of machines.values()) m.close();
    const write = leader.propose(Buffer.from("before"));
    const change = leader.addLearner(4);
    await c.run(800);
    assert.ok(leader.status().hardState.commit >= leader.status().lastIndex, "both are committed");
    assert.deepEqual(leader.status().config.learners, [], "the change waits for the write before it");
    let changed = false;
    void change.then(() => {
      changed = true;
    });
    await c.run(300);
    assert.equal(changed, false);

    for (const m of machines.values()) m.open();
    const cs = await settleWith(c, change);
    assert.deepEqual(cs.learners, [4]);
    assert.deepEqual(machines.get(leader.id)!.applied, ["before"]);
    await settleWith(c, write);
    await c.closeAll();
  });

  it("takes each local snapshot of the state exactly at its index, however applies are batched", async () => {
    const { c, leader, machines } = await gatedCluster(13, { snapshotEveryEntries: 7, trailingEntries: 3 });
    const lm = machines.get(leader.id)!;
    const proposed = new Map<number, string>();
    const snapshots: { index: number; image: string[] }[] = [];
    for (let wave = 0; wave < 8; wave++) {
      lm.close();
      const ps = Array.from({ length: 3 + wave }, (_, i) => {
        const v = `w${wave}.${i}`;
        return leader.propose(Buffer.from(v)).then((r) => proposed.set(r.index, v));
      });
      await c.run(200);
      lm.open();
      await settleWith(c, Promise.all(ps));
      await c.run(200);
      const s = leader.status();
      const meta = { index: s.snapshotIndex, term: leader.termOf(s.snapshotIndex), confState: s.config };
      if (snapshots.some((x) => x.index === meta.index) || meta.index <= 2) continue;
      const pieces: Uint8Array[] = [];
      for await (const p of leader.snapshotSource().open(meta, new AbortController().signal)) pieces.push(p);
      const image = JSON.parse(Buffer.concat(pieces).toString()) as { applied: string[] };
      snapshots.push({ index: meta.index, image: image.applied });
    }
    assert.ok(snapshots.length >= 3, `snapshots taken: ${snapshots.map((s) => s.index).join(", ")}`);
    for (const snap of snapshots) {
      const expected = [...proposed]
        .filter(([index]) => index <= snap.index)
        .sort(([a], [b]) => a - b)
        .map(([, v]) => v);
      assert.deepEqual(snap.image, expected, `the snapshot at ${snap.index} holds the writes up to it`);
    }
    await c.closeAll();
  });
});
