/**
 * `npm run demo`: a three-node raft cluster in one process, on a virtual clock, showing what the core
 * does: an election, replication, the leader crashing, a new election, and the old leader catching up
 * when it returns. Everything is deterministic for a given --seed.
 *
 * (The server itself, three processes a Redis client can talk to, is `npm start`: see raftkv.ts.)
 */
import { parseArgs } from "node:util";
import { SeededRandom } from "../raft/rand.js";
import { RawNode } from "../raft/raw-node.js";
import { MemoryStorage } from "../raft/storage.js";
import type { Message, NodeId } from "../raft/types.js";

const { values } = parseArgs({ options: { seed: { type: "string", default: "42" } } });
const seed = Number(values.seed);
const ids: NodeId[] = [1, 2, 3];
const storages = new Map(ids.map((id) => [id, MemoryStorage.withVoters(ids)] as const));
const makeNode = (id: NodeId) =>
  new RawNode({
    id,
    storage: storages.get(id)!,
    random: new SeededRandom(seed * 1000 + id),
    applied: storages.get(id)!.snapshot().metadata.index,
  });
const nodes = new Map(ids.map((id) => [id, makeNode(id)] as const));
const down = new Set<NodeId>();
const applied = new Map<NodeId, string[]>(ids.map((id) => [id, []]));
let tick = 0;
let inbox: Message[] = [];
const log = (s: string) => console.log(`[tick ${String(tick).padStart(3)}] ${s}`);

function run(): void {
  for (let busy = true; busy; ) {
    busy = false;
    for (const id of ids) {
      const n = nodes.get(id)!;
      if (down.has(id) || !n.hasReady()) continue;
      busy = true;
      const rd = n.ready();
      const st = storages.get(id)!;
      if (rd.entries.length) st.append(rd.entries);
      if (rd.hardState) st.setHardState(rd.hardState);
      if (rd.softState?.role === "leader") log(`node ${id} became leader of term ${n.raft.term}`);
      inbox.push(...rd.messages, ...rd.messagesAfterPersist);
      for (const e of rd.committedEntries) {
        if (e.data.byteLength === 0) continue;
        applied.get(id)!.push(new TextDecoder().decode(e.data));
      }
      n.advance(rd);
    }
    const q = inbox;
    inbox = [];
    for (const m of q) if (!down.has(m.to) && !down.has(m.from)) nodes.get(m.to)!.step(m);
    if (q.length) busy = true;
  }
}

function tickAll(n: number): void {
  for (let i = 0; i < n; i++, tick++) {
    for (const id of ids) if (!down.has(id)) nodes.get(id)!.tick();
    run();
  }
}

const leader = () => ids.find((id) => !down.has(id) && nodes.get(id)!.raft.role === "leader");

log("three nodes start as followers; ticking until one times out and wins an election");
tickAll(30);
const first = leader()!;
for (const cmd of ["set a 1", "set b 2", "set c 3"]) nodes.get(first)!.propose(new TextEncoder().encode(cmd));
run();
log(
  `leader ${first} replicated 3 commands; applied everywhere: ${ids.map((id) => `${id}=[${applied.get(id)}]`).join(" ")}`,
);

log(`crashing leader ${first}; its unsynced state is lost`);
down.add(first);
tickAll(40);
const second = leader()!;
nodes.get(second)!.propose(new TextEncoder().encode("set d 4"));
run();
log(`new leader ${second} committed "set d 4" with a quorum of two`);

log(`restarting node ${first} from its storage`);
down.delete(first);
nodes.set(first, makeNode(first));
applied.set(first, []);
tickAll(10);
log(`node ${first} caught up: applied [${applied.get(first)}]`);
const same = ids.every((id) => applied.get(id)!.join() === applied.get(ids[0]!)!.join());
log(same ? "all replicas agree" : "REPLICAS DIVERGED");
process.exitCode = same ? 0 : 1;
