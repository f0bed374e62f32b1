/**
 * Review of the engine/storage work after 7e0644a (streamed snapshots, trailing window, metrics, the
 * commit-only hard state). Each test shows one defect; all run on virtual time and simulated disks.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Registry } from "prom-client";
import { Engine } from "../../src/engine/engine.js";
import { EngineClosedError } from "../../src/engine/errors.js";
import type { SnapshotHandle } from "../../src/engine/state-machine.js";
import { SeededRandom } from "../../src/raft/rand.js";
import {
  type ConfState,
  EMPTY_CONF_STATE,
  type Entry,
  EntryType,
  MessageType,
  message,
} from "../../src/raft/types.js";
import { DiskStorage } from "../../src/storage/disk-storage.js";
import { SimFileSystem } from "../../src/storage/sim-fs.js";
import type { InboundHandler, Transport } from "../../src/transport/transport.js";
import { CapturingLogger } from "../helpers/capturing-logger.js";
import { ManualScheduler, ManualTimers, settle } from "../helpers/virtual-time.js";
import { type ClusterOptions, engineCluster, ListMachine, settleWith } from "./cluster.js";

const cs = (voters: number[]): ConfState => ({ ...EMPTY_CONF_STATE, voters });
const entry = (index: number, term: number): Entry => ({
  index,
  term,
  type: EntryType.Normal,
  data: Buffer.from(`e${index}`),
});

/** A machine whose snapshot handle is read only once the test opens the gate (a slow, large image). */
class GatedMachine extends ListMachine {
  readStarted = false;
  readFinished = false;
  openGate!: () => void;
  private readonly gate = new Promise<void>((resolve) => {
    this.openGate = resolve;
  });
  override snapshot(): SnapshotHandle {
    const inner = super.snapshot();
    const self = this;
    return {
      async *read() {
        self.readStarted = true;
        await self.gate;
        yield* inner.read();
        self.readFinished = true;
      },
      release: () => inner.release(),
    };
  }
}

describe("review 3: engine and storage", () => {
  it("close() resolves only once a local snapshot being written has finished and released its handle", async () => {
    const extra: ClusterOptions = { snapshotEveryEntries: 0 };
    const c = await engineCluster(31, extra);
    await c.run(3000);
    const leader = c.leader()!;
    const follower = [...c.engines.values()].find((e) => e !== leader)!;
    await follower.close();
    c.engines.delete(follower.id);
    // Reopen the follower with a machine whose image takes a while to read, taking snapshots often.
    extra.snapshotEveryEntries = 3;
    const logger = new CapturingLogger();
    extra.logger = logger;
    const gated = new GatedMachine();
    const f = await c.open(follower.id, gated);
    for (let i = 0; i < 4; i++) await settleWith(c, leader.propose(Buffer.from(`w${i}`)));
    await c.run(500);
    assert.ok(gated.readStarted, "a local snapshot is being written (its handle is being read)");

    const fs = c.disks.get(f.id)!;
    let atClose: { handles: number; readFinished: boolean; fileHandles: number } | null = null;
    const closing = f.close().then(() => {
      atClose = {
        handles: gated.openHandles,
        readFinished: gated.readFinished,
        fileHandles: fs.openHandleCount(),
      };
    });
    for (let i = 0; i < 10; i++) {
      await c.sched.drain();
      await settle();
    }
    // The state machine's image becomes readable (in production: the read finishes after a while).
    gated.openGate();
    for (let i = 0; i < 10; i++) {
      await c.sched.drain();
      await settle();
    }
    await closing;
    const refusal = await f.propose(Buffer.from("late")).then(
      () => null,
      (e: unknown) => e,
    );
    const fatal = logger.lines.filter((l) => l.msg.startsWith("engine stopped after a fatal error"));
    assert.deepEqual(
      {
        atClose,
        refusal: (refusal as Error | null)?.name,
        fatalLinesAfterClose: fatal.map((l) => String(l.fields.error)),
      },
      {
        atClose: { handles: 0, readFinished: true, fileHandles: 0 },
        refusal: EngineClosedError.name,
        fatalLinesAfterClose: [],
      },
      "close() resolved while the snapshot was still streaming from the state machine's handle into an " +
        "open file; the snapshot's WAL record then hit the closed WAL and fail-stopped the closed engine",
    );
    for (const e of c.engines.values()) if (e !== f) await e.close();
  });

  it("an engine opened with a shared metrics registry can be closed and opened again on it", async () => {
    const extra: ClusterOptions = {};
    const c = await engineCluster(32, extra);
    await c.run(3000);
    const leader = c.leader()!;
    const follower = [...c.engines.values()].find((e) => e !== leader)!;
    await follower.close();
    c.engines.delete(follower.id);
    // A server that scrapes its own registry (the use metricsRegistry was added for).
    const registry = new Registry();
    extra.metricsRegistry = registry;
    const first = await c.open(follower.id);
    await c.run(500);
    // The server restarts its engine, e.g. after a fail-stop ("close() releases it").
    await first.close();
    c.engines.delete(follower.id);
    const roleAfterClose = await registry.getSingleMetricAsString("raftkv_raft_role").catch(() => "");
    const reopened = await c.open(follower.id).then(
      () => "opened",
      (e: unknown) => String(e),
    );
    assert.deepEqual(
      { reopened, closedEngineStillExported: roleAfterClose !== "" },
      { reopened: "opened", closedEngineStillExported: false },
      "the closed engine's collectors stay in the registry: they keep reporting it, and block the new engine",
    );
    for (const e of c.engines.values()) await e.close();
  });

  it("a snapshot that arrives once the engine is closed is refused and its spooled file removed", async () => {
    const c = await engineCluster(35);
    await c.run(3000);
    const e = c.engines.get(1)!;
    const fs = c.disks.get(1)!;
    await e.close();
    // What a transport still open while the engine closes (or after a fail-stop) hands over.
    fs.mkdirp("/data/incoming");
    const path = "/data/incoming/received-50-9-1.snap";
    const h = fs.create(path);
    await h.write(new Uint8Array(1024), 0);
    await h.datasync();
    await h.close();
    const metadata = { index: 50, term: 9, confState: cs([1, 2, 3]) };
    const msg = message({ type: MessageType.Snap, from: 2, to: 1, term: 9 });
    const handler = (e as unknown as { inboundHandler(): InboundHandler }).inboundHandler();
    await assert.rejects(
      handler.onSnapshot(2, msg, { path, metadata, payloadBytes: 1024 }),
      EngineClosedError,
    );
    await settle();
    assert.equal(fs.exists(path), false, "the refused snapshot's spooled file stays on disk until a restart");
    for (const x of c.engines.values()) if (x !== e) await x.close();
  });

  it("an open that fails after the storage opened (the transport cannot start) leaves no file open", async () => {
    const fs = new SimFileSystem(33);
    const sched = new ManualScheduler();
    const failing: Transport = {
      start: async () => {
        throw Object.assign(new Error("listen EADDRINUSE 127.0.0.1:7000"), { code: "EADDRINUSE" });
      },
      sender: () => {
        throw new Error("not started");
      },
      close: async () => {},
    };
    await assert.rejects(
      Engine.open<number>({
        id: 1,
        initialVoters: [1],
        fs,
        dir: "/data/raft",
        stateMachine: new ListMachine(),
        transport: failing,
        timers: new ManualTimers(),
        schedule: sched.schedule,
        random: new SeededRandom(33),
      }),
      /EADDRINUSE/,
    );
    assert.equal(fs.openHandleCount(), 0, "the WAL's segment handle is left open by the failed open");
  });

  it("a commit-only hard state held before a snapshot of a newer term is not written over the term and vote recorded with it", async () => {
    const fs = new SimFileSystem(34);
    const dir = "/data/node1";
    const s = await DiskStorage.open({ fs, dir });
    await s.bootstrap(cs([1, 2, 3]));
    await s.append([entry(2, 1), entry(3, 1)], { term: 1, vote: 1, commit: 1 });
    // A heartbeat moved the commit index only: held, not written.
    await s.append([], { term: 1, vote: 1, commit: 3 }, false);
    // The snapshot Ready of a leader of term 2, with its hard state (term 2, voted for 3, commit 10).
    await s.installSnapshot(
      { metadata: { index: 10, term: 2, confState: cs([1, 2, 3]) }, data: Buffer.from("state@10") },
      { term: 2, vote: 3, commit: 10 },
    );
    assert.deepEqual(s.wal.hardState, { term: 2, vote: 3, commit: 10 });
    await s.close(); // writes the held hard state
    const again = await DiskStorage.open({ fs, dir });
    assert.deepEqual(
      again.initialState().hardState,
      { term: 2, vote: 3, commit: 10 },
      "the stale held hard state (term 1, vote 1) was written after the snapshot's: term and vote went back",
    );
    await again.close();
  });
});
