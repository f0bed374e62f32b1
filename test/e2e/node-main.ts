/**
 * One raftkv engine node in its own process, on the real disk and real gRPC over loopback, driven by
 * its parent over the IPC channel (see harness.ts). Used by the multi-process tests and by
 * `npm run bench:engine`. The configuration comes as JSON in argv[2]; logs go, one JSON object a line,
 * to `<dataDir>/node.log` (written synchronously, so that a SIGKILL loses none).
 */
import { createHash } from "node:crypto";
import * as nodePath from "node:path";
import { pino } from "pino";
import { Engine } from "../../src/engine/engine.js";
import { fromPino } from "../../src/engine/logging.js";
import { bytesSnapshot, type SnapshotHandle, type StateMachine } from "../../src/engine/state-machine.js";
import type { Entry } from "../../src/raft/types.js";
import { NodeFileSystem } from "../../src/storage/fs.js";
import { GrpcTransport } from "../../src/transport/grpc-transport.js";
import type { NodeConfig, Reply, Request, StatusSummary } from "./protocol.js";

const config = JSON.parse(process.argv[2] ?? "{}") as NodeConfig;

/**
 * A small key-value machine: a command is `key=value`. Its state lives in memory (appliedIndex 0), so a
 * restarted node rebuilds it from the local snapshot and the log.
 */
class KvMachine implements StateMachine<undefined> {
  readonly data = new Map<string, string>();
  constructor(private readonly killInRestoreAfterBytes: number) {}

  apply(entries: readonly Entry[]): undefined[] {
    for (const e of entries) {
      const text = Buffer.from(e.data.buffer, e.data.byteOffset, e.data.byteLength).toString();
      const eq = text.indexOf("=");
      if (eq > 0) this.data.set(text.slice(0, eq), text.slice(eq + 1));
    }
    return new Array<undefined>(entries.length);
  }

  appliedIndex(): number {
    return 0;
  }

  snapshot(): SnapshotHandle {
    const lines: string[] = [];
    for (const [k, v] of this.data) lines.push(`${k}=${v}`);
    return bytesSnapshot(Buffer.from(lines.join("\n")));
  }

  async restore(payload: AsyncIterable<Uint8Array>): Promise<void> {
    const parts: Buffer[] = [];
    let bytes = 0;
    for await (const p of payload) {
      parts.push(Buffer.from(p));
      bytes += p.byteLength;
      if (this.killInRestoreAfterBytes > 0 && bytes >= this.killInRestoreAfterBytes) {
        // The injected fault: the process dies in the middle of restoring the snapshot.
        log.warn({ restored_bytes: bytes }, "test fault: killing this process in the middle of a restore");
        process.kill(process.pid, "SIGKILL");
      }
    }
    const next = new Map<string, string>();
    const text = Buffer.concat(parts).toString();
    if (text.length > 0) {
      for (const line of text.split("\n")) {
        const eq = line.indexOf("=");
        next.set(line.slice(0, eq), line.slice(eq + 1));
      }
    }
    this.data.clear();
    for (const [k, v] of next) this.data.set(k, v);
  }
}

/** Does nothing: for measuring the engine alone. */
class NullMachine implements StateMachine<undefined> {
  apply(entries: readonly Entry[]): undefined[] {
    return new Array<undefined>(entries.length);
  }
  appliedIndex(): number {
    return 0;
  }
  snapshot(): SnapshotHandle {
    return bytesSnapshot(new Uint8Array(0));
  }
  async restore(): Promise<void> {}
}

const log = pino(
  { level: "info", base: { node: config.id } },
  pino.destination({ dest: nodePath.join(config.dataDir, "node.log"), sync: true, mkdir: true }),
);
const logger = fromPino(log);
const kv = config.stateMachine === "kv" ? new KvMachine(config.killInRestoreAfterBytes ?? 0) : null;
const fs = new NodeFileSystem();
const peers = new Map(Object.entries(config.peers).map(([id, addr]) => [Number(id), addr] as const));
let engine: Engine<undefined> | null = null;

const transport = new GrpcTransport({
  id: config.id,
  clusterId: config.clusterId,
  listen: config.listen,
  peers: new Map([...peers].filter(([id]) => id !== config.id)),
  fs,
  snapshotDir: nodePath.join(config.dataDir, "incoming"),
  logger,
  snapshotSource: {
    open: (meta, signal) => engine!.snapshotSource().open(meta, signal),
    payloadBytes: (meta) => engine!.snapshotSource().payloadBytes!(meta),
  },
});

function summary(e: Engine<undefined>): StatusSummary {
  const s = e.status();
  return {
    id: s.id,
    role: s.softState.role,
    term: s.hardState.term,
    lead: s.softState.lead,
    commit: s.hardState.commit,
    applied: s.applied,
    lastIndex: s.lastIndex,
    firstIndex: s.firstIndex,
    snapshotIndex: s.snapshotIndex,
    ticks: e.tickCount,
    progress: s.progress
      ? [...s.progress].map(([id, p]) => ({ id, match: p.match, next: p.next, state: p.state }))
      : [],
  };
}

function errorOf(err: unknown): { name: string; message: string } {
  return err instanceof Error
    ? { name: err.name, message: err.message }
    : { name: "Error", message: String(err) };
}

/** Closed-loop proposers inside this process: each proposes, waits, proposes again. */
async function load(
  e: Engine<undefined>,
  req: Extract<Request, { op: "load" }>,
): Promise<Extract<Reply, { op: "load" }>> {
  const latencies: number[] = [];
  let errors = 0;
  const value = "x".repeat(req.valueBytes);
  const started = performance.now();
  const deadline = started + req.durationMs;
  let next = 0;
  const worker = async () => {
    while (req.count > 0 ? next < req.count : performance.now() < deadline) {
      const i = next++;
      const t0 = performance.now();
      try {
        await e.propose(Buffer.from(`${req.keyPrefix}${i}=${value}`));
        latencies.push(performance.now() - t0);
      } catch {
        errors++;
        if (req.count > 0) throw new Error(`proposal ${i} failed`);
      }
    }
  };
  await Promise.all(Array.from({ length: req.concurrency }, worker));
  const seconds = (performance.now() - started) / 1000;
  latencies.sort((a, b) => a - b);
  const pct = (p: number) => latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))] ?? 0;
  return { op: "load", ops: latencies.length, errors, seconds, p50Ms: pct(0.5), p99Ms: pct(0.99) };
}

async function handle(e: Engine<undefined>, req: Request): Promise<Reply> {
  switch (req.op) {
    case "status":
      return { op: "status", status: summary(e) };
    case "propose": {
      const { index } = await e.propose(Buffer.from(req.data));
      return { op: "propose", index };
    }
    case "check": {
      const missing = req.entries.filter(([k, v]) => kv?.data.get(k) !== v).map(([k]) => k);
      return { op: "check", missing, size: kv?.data.size ?? 0 };
    }
    case "digest": {
      const h = createHash("sha256");
      for (const k of [...(kv?.data.keys() ?? [])].sort()) h.update(`${k}=${kv!.data.get(k)}\n`);
      return { op: "digest", size: kv?.data.size ?? 0, digest: h.digest("hex"), applied: e.status().applied };
    }
    case "metrics":
      return { op: "metrics", text: await e.metrics().metrics() };
    case "load":
      return load(e, req);
    case "close":
      await e.close();
      setImmediate(() => process.exit(0));
      return { op: "close" };
  }
}

async function main(): Promise<void> {
  const e = await Engine.open<undefined>({
    id: config.id,
    initialVoters: config.initialVoters,
    addresses: peers,
    fs,
    dir: nodePath.join(config.dataDir, "raft"),
    stateMachine: kv ?? new NullMachine(),
    transport,
    logger,
    tickMs: config.tickMs,
    snapshotEveryEntries: config.snapshotEveryEntries,
    trailingEntries: config.trailingEntries,
    testing: { dropDispatchReports: config.dropDispatchReports ?? false },
    raft: {
      electionTicks: config.electionTicks,
      heartbeatTicks: config.heartbeatTicks,
      preVote: true,
      checkQuorum: true,
      ...(config.snapshotTimeoutTicks !== undefined
        ? { snapshotTimeoutTicks: config.snapshotTimeoutTicks }
        : {}),
    },
  });
  engine = e;
  process.on("message", (msg: { req: number } & Request) => {
    handle(e, msg).then(
      (reply) => process.send?.({ req: msg.req, ok: true, reply }),
      (err: unknown) => process.send?.({ req: msg.req, ok: false, error: errorOf(err) }),
    );
  });
  // The parent went away: stop rather than linger.
  process.on("disconnect", () => {
    e.close().finally(() => process.exit(0));
  });
  process.send?.({ ready: true, address: transport.address });
}

main().catch((err: unknown) => {
  log.error({ error: String(err) }, "node failed to start");
  process.exit(1);
});
