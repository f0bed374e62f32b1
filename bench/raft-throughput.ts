/**
 * Raft core throughput: three nodes in one process over an in-memory network, 64-byte proposals,
 * each node's Ready handled in batches (persist to MemoryStorage, send, apply, advance). Prints
 * committed entries per second and heap growth.
 *
 *   npm run bench:raft [-- --seconds 10 --batch 1024 --payload 64]
 */
import { parseArgs } from "node:util";
import { RawNode } from "../src/raft/raw-node.js";
import { MemoryStorage } from "../src/raft/storage.js";
import type { Message } from "../src/raft/types.js";

const { values } = parseArgs({
  options: {
    seconds: { type: "string", default: "10" },
    batch: { type: "string", default: "1024" },
    payload: { type: "string", default: "64" },
    nodes: { type: "string", default: "3" },
  },
});
const seconds = Number(values.seconds);
const batch = Number(values.batch);
const payloadBytes = Number(values.payload);
const nodeCount = Number(values.nodes);
/** Entries kept behind the applied index in each storage; the rest is compacted as a real node would. */
const retainEntries = 50_000;

const ids = Array.from({ length: nodeCount }, (_, i) => i + 1);
const storages = new Map<number, MemoryStorage>();
const nodes = new Map<number, RawNode>();
for (const id of ids) {
  const storage = MemoryStorage.withVoters(ids);
  storages.set(id, storage);
  nodes.set(id, new RawNode({ id, storage, maxMessageBytes: 4 * 1024 * 1024, maxInflightMessages: 64 }));
}
const applied = new Map<number, number>(ids.map((id) => [id, 0]));
let inbox: Message[] = [];

function processReadys(): boolean {
  let busy = false;
  for (const id of ids) {
    const node = nodes.get(id)!;
    if (!node.hasReady()) continue;
    busy = true;
    const rd = node.ready();
    const storage = storages.get(id)!;
    if (rd.entries.length > 0) storage.append(rd.entries);
    if (rd.hardState) storage.setHardState(rd.hardState);
    for (const m of rd.messages) inbox.push(m);
    for (const m of rd.messagesAfterPersist) inbox.push(m);
    if (rd.committedEntries.length > 0) {
      const last = rd.committedEntries[rd.committedEntries.length - 1]!.index;
      applied.set(id, last);
      const compactTo = last - retainEntries;
      if (compactTo > storage.firstIndex() + retainEntries) storage.compact(compactTo);
    }
    node.advance(rd);
  }
  return busy;
}

function deliver(): boolean {
  if (inbox.length === 0) return false;
  const q = inbox;
  inbox = [];
  for (const m of q) nodes.get(m.to)!.step(m);
  return true;
}

function settle(): void {
  while (processReadys() || deliver()) {}
}

nodes.get(1)!.campaign();
settle();
if (nodes.get(1)!.raft.role !== "leader") throw new Error("node 1 did not become leader");
const leader = nodes.get(1)!;

function proposeBatch(): void {
  const slab = Buffer.allocUnsafe(batch * payloadBytes);
  const data = new Array<Uint8Array>(batch);
  for (let i = 0; i < batch; i++) data[i] = slab.subarray(i * payloadBytes, (i + 1) * payloadBytes);
  leader.proposeBatch(data);
}

// Warm up the JIT, then measure.
const warmupUntil = performance.now() + 1000;
while (performance.now() < warmupUntil) {
  proposeBatch();
  processReadys();
  deliver();
}
settle();

const gc = (globalThis as { gc?: () => void }).gc;
gc?.();
const heapBefore = process.memoryUsage().heapUsed;
const startApplied = Math.min(...applied.values());
const start = performance.now();
const end = start + seconds * 1000;
let rounds = 0;
while (performance.now() < end) {
  // Keep the pipeline full: a new batch every round while earlier ones are still replicating.
  proposeBatch();
  processReadys();
  deliver();
  rounds++;
}
settle();
const elapsedS = (performance.now() - start) / 1000;
const committed = Math.min(...applied.values()) - startApplied;
gc?.();
const heapAfter = process.memoryUsage().heapUsed;

const fmt = (n: number) => Math.round(n).toLocaleString("en-US");
console.log(`raft throughput: ${nodeCount} nodes, ${payloadBytes}-byte proposals, batches of ${batch}`);
console.log(`  committed and applied on every node: ${fmt(committed)} entries in ${elapsedS.toFixed(2)} s`);
console.log(`  throughput: ${fmt(committed / elapsedS)} entries/s (${rounds} rounds)`);
console.log(
  `  heap: ${(heapBefore / 1048576).toFixed(1)} MiB before, ${(heapAfter / 1048576).toFixed(1)} MiB after` +
    ` (growth ${((heapAfter - heapBefore) / 1048576).toFixed(1)} MiB${gc ? "" : "; run with --expose-gc for exact figures"})`,
);
