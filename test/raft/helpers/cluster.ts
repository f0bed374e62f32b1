/**
 * An in-memory cluster of RawNodes for tests: each node persists its Ready into a MemoryStorage,
 * applies committed entries (including membership changes) and exchanges messages through a network
 * the test controls (drops, partitions, manual delivery).
 */

import { decodeConfChange } from "../../../src/raft/confchange/codec.js";
import type { RaftOptions } from "../../../src/raft/config.js";
import { SeededRandom } from "../../../src/raft/rand.js";
import { RawNode, type Ready } from "../../../src/raft/raw-node.js";
import { MemoryStorage } from "../../../src/raft/storage.js";
import {
  type ConfState,
  type Entry,
  EntryType,
  isEmptySnapshot,
  type Message,
  type MessageType,
  type NodeId,
  type ReadState,
  type Snapshot,
} from "../../../src/raft/types.js";

export type NodeOptions = Omit<RaftOptions, "id" | "storage">;

export class TestNode {
  raw: RawNode;
  /** Entries applied to this node's state machine, in order. */
  applied: Entry[] = [];
  readStates: ReadState[] = [];
  confState: ConfState;
  /** The last snapshot this node installed from the leader (or created). */
  installedSnapshot: Snapshot | null = null;

  constructor(
    readonly id: NodeId,
    public storage: MemoryStorage,
    readonly options: NodeOptions,
  ) {
    this.raw = new RawNode({ ...options, id, storage, applied: storage.snapshot().metadata.index });
    this.confState = storage.initialState().confState;
  }

  /** Simulates a crash and restart: everything not persisted to storage is lost. */
  restart(): void {
    this.raw = new RawNode({
      ...this.options,
      id: this.id,
      storage: this.storage,
      applied: this.storage.snapshot().metadata.index,
    });
    this.confState = this.storage.initialState().confState;
    // The state machine is rebuilt from the snapshot; entries after it are applied again.
    const snapIndex = this.storage.snapshot().metadata.index;
    this.applied = this.applied.filter((e) => e.index <= snapIndex);
  }

  get raft() {
    return this.raw.raft;
  }
}

export interface ClusterOptions {
  ids?: NodeId[];
  learners?: NodeId[];
  node?: NodeOptions;
  /** Per-node overrides. */
  perNode?: Record<number, NodeOptions>;
  seed?: number;
}

export class Cluster {
  readonly nodes = new Map<NodeId, TestNode>();
  /** Messages sent and not yet delivered, in order. */
  queue: Message[] = [];
  /** Every message that was sent, for assertions. */
  sent: Message[] = [];
  /** Pairs `from→to` whose messages are dropped. */
  private cut = new Set<string>();
  /** Message types dropped everywhere. */
  dropTypes = new Set<MessageType>();
  /** Return false to drop a message. */
  filter: ((m: Message) => boolean) | null = null;
  /** Nodes that are down: they neither send nor receive. */
  down = new Set<NodeId>();

  constructor(opts: ClusterOptions = {}) {
    const ids = opts.ids ?? [1, 2, 3];
    const learners = opts.learners ?? [];
    for (const id of [...ids, ...learners]) {
      const storage = MemoryStorage.withVoters(ids, learners);
      const nodeOpts: NodeOptions = {
        random: new SeededRandom((opts.seed ?? 1) * 7919 + id),
        ...opts.node,
        ...opts.perNode?.[id],
      };
      this.nodes.set(id, new TestNode(id, storage, nodeOpts));
    }
  }

  node(id: NodeId): TestNode {
    const n = this.nodes.get(id);
    if (!n) throw new Error(`no node ${id}`);
    return n;
  }

  raft(id: NodeId) {
    return this.node(id).raft;
  }

  /** Adds a node that starts empty (to be added by a conf change), with the given initial membership. */
  addNode(id: NodeId, voters: NodeId[] = [], options: NodeOptions = {}): TestNode {
    const n = new TestNode(id, MemoryStorage.withVoters(voters), {
      random: new SeededRandom(id * 31),
      ...options,
    });
    this.nodes.set(id, n);
    return n;
  }

  leader(): TestNode | undefined {
    let best: TestNode | undefined;
    for (const n of this.nodes.values()) {
      if (this.down.has(n.id)) continue;
      if (n.raft.role === "leader" && (!best || n.raft.term > best.raft.term)) best = n;
    }
    return best;
  }

  isolate(id: NodeId): void {
    for (const other of this.nodes.keys()) {
      if (other === id) continue;
      this.cut.add(`${id}→${other}`);
      this.cut.add(`${other}→${id}`);
    }
  }

  /** Cuts every link between the two groups (both directions). */
  partition(a: NodeId[], b: NodeId[]): void {
    for (const x of a)
      for (const y of b) {
        this.cut.add(`${x}→${y}`);
        this.cut.add(`${y}→${x}`);
      }
  }

  cutLink(from: NodeId, to: NodeId): void {
    this.cut.add(`${from}→${to}`);
  }

  heal(): void {
    this.cut.clear();
    this.dropTypes.clear();
    this.filter = null;
  }

  /** Handles one Ready of one node the way the engine would. Returns false if it had none. */
  processReady(id: NodeId): boolean {
    const n = this.node(id);
    if (this.down.has(id) || !n.raw.hasReady()) return false;
    const rd = n.raw.ready();
    this.persist(n, rd);
    for (const m of rd.messages) this.send(m);
    for (const m of rd.messagesAfterPersist) this.send(m);
    this.apply(n, rd);
    n.readStates.push(...rd.readStates);
    n.raw.advance(rd);
    return true;
  }

  private persist(n: TestNode, rd: Ready): void {
    if (rd.snapshot && !isEmptySnapshot(rd.snapshot)) {
      n.storage.applySnapshot(rd.snapshot);
      n.installedSnapshot = rd.snapshot;
      n.confState = rd.snapshot.metadata.confState;
      n.applied = n.applied.filter((e) => e.index <= rd.snapshot!.metadata.index);
    }
    if (rd.entries.length > 0) n.storage.append(rd.entries);
    if (rd.hardState) n.storage.setHardState(rd.hardState);
  }

  private apply(n: TestNode, rd: Ready): void {
    for (const e of rd.committedEntries) {
      n.applied.push(e);
      if (e.type === EntryType.ConfChange) {
        n.confState = n.raw.applyConfChange(decodeConfChange(e.data));
      }
    }
  }

  send(m: Message): void {
    this.sent.push(m);
    this.queue.push(m);
  }

  private dropped(m: Message): boolean {
    if (this.down.has(m.from) || this.down.has(m.to)) return true;
    if (this.cut.has(`${m.from}→${m.to}`)) return true;
    if (this.dropTypes.has(m.type)) return true;
    if (this.filter && !this.filter(m)) return true;
    return false;
  }

  /** Delivers every queued message once (not those they produce). Returns how many were delivered. */
  deliverAll(): number {
    const q = this.queue;
    this.queue = [];
    let delivered = 0;
    for (const m of q) {
      if (this.dropped(m)) continue;
      const to = this.nodes.get(m.to);
      if (!to) continue;
      to.raw.step(m);
      delivered++;
    }
    return delivered;
  }

  /** Handles Readys and delivers messages until the cluster is quiet. */
  stabilize(maxRounds = 10_000): void {
    for (let round = 0; round < maxRounds; round++) {
      let busy = false;
      for (const id of this.nodes.keys()) while (this.processReady(id)) busy = true;
      if (this.queue.length > 0) {
        this.deliverAll();
        busy = true;
      }
      if (!busy) return;
    }
    throw new Error("cluster did not stabilize");
  }

  tick(id: NodeId, times = 1): void {
    for (let i = 0; i < times; i++) this.node(id).raw.tick();
  }

  /** Ticks every live node once and stabilizes, `times` times. */
  tickAll(times = 1): void {
    for (let i = 0; i < times; i++) {
      for (const [id, n] of this.nodes) if (!this.down.has(id)) n.raw.tick();
      this.stabilize();
    }
  }

  /** Makes `id` campaign and runs the election to its end. */
  elect(id: NodeId): void {
    this.node(id).raw.campaign();
    this.stabilize();
  }

  propose(id: NodeId, data: string | Uint8Array): void {
    this.node(id).raw.propose(typeof data === "string" ? new TextEncoder().encode(data) : data);
  }

  /** Takes every message currently queued, without delivering them. */
  takeQueue(): Message[] {
    const q = this.queue;
    this.queue = [];
    return q;
  }

  /** Crashes a node: it loses unpersisted state and is down until restarted. */
  crash(id: NodeId): void {
    this.down.add(id);
  }

  restart(id: NodeId): void {
    this.down.delete(id);
    this.node(id).restart();
  }
}

export function text(e: Entry): string {
  return new TextDecoder().decode(e.data);
}

export function appliedData(n: TestNode): string[] {
  return n.applied.filter((e) => e.type === EntryType.Normal && e.data.byteLength > 0).map(text);
}

/** Messages of `type` sent so far (delivered or not), optionally only those from `from` and/or to `to`. */
export function sentOf(c: Cluster, type: MessageType, from?: NodeId, to?: NodeId): Message[] {
  return c.sent.filter(
    (m) => m.type === type && (from === undefined || m.from === from) && (to === undefined || m.to === to),
  );
}

/**
 * The state a node's state machine holds: the commands in its latest snapshot (as written by
 * {@link compactLog}) followed by the commands it applied after that snapshot.
 */
export function stateMachine(n: TestNode): string[] {
  const snap = n.storage.snapshot();
  const base: string[] =
    snap.data.byteLength > 0 ? (JSON.parse(new TextDecoder().decode(snap.data)) as string[]) : [];
  const after = n.applied.filter(
    (e) => e.index > snap.metadata.index && e.type === EntryType.Normal && e.data.byteLength > 0,
  );
  return [...base, ...after.map(text)];
}

/** Snapshots a node's applied state at `index` (≤ applied) and discards its log up to there. */
export function compactLog(n: TestNode, index: number): Snapshot {
  if (index > n.raft.log.applied)
    throw new Error(`cannot compact at ${index}: applied ${n.raft.log.applied}`);
  // Commands applied after `index` form the tail of the state; the snapshot holds what precedes them.
  const state = stateMachine(n);
  const later = n.applied.filter(
    (e) => e.index > index && e.type === EntryType.Normal && e.data.byteLength > 0,
  );
  const upTo = state.slice(0, state.length - later.length);
  const created = n.storage.createSnapshot(index, undefined, new TextEncoder().encode(JSON.stringify(upTo)));
  n.storage.compact(index);
  return created;
}

/** Every entry in a node's log (stable and unstable) from firstIndex on, as (index, term) pairs. */
export function logTerms(n: TestNode): [number, number][] {
  const log = n.raft.log;
  const out: [number, number][] = [];
  for (let i = log.firstIndex(); i <= log.lastIndex(); i++) out.push([i, log.term(i)]);
  return out;
}

/** The UTF-8 bytes of a string: read-request contexts and payloads. */
export function utf8(s: string): Uint8Array {
  return new TextEncoder().encode(s);
}

/** The membership changes a node applied, in log order. */
export function appliedConfChanges(n: TestNode): ReturnType<typeof decodeConfChange>[] {
  return n.applied.filter((e) => e.type === EntryType.ConfChange).map((e) => decodeConfChange(e.data));
}

const watchedNodes = new WeakSet<RawNode>();

/**
 * Records, for every term, each node that was leader in it. A node is looked at after each of its
 * steps, ticks, campaigns and advances, so that even a leadership lost within one delivery round is
 * seen. Call it again after adding or restarting nodes: it watches each RawNode once.
 */
export function watchLeaders(
  c: Cluster,
  seen: Map<number, Set<NodeId>> = new Map(),
): Map<number, Set<NodeId>> {
  for (const n of c.nodes.values()) {
    const raw = n.raw;
    if (watchedNodes.has(raw)) continue;
    watchedNodes.add(raw);
    const note = () => {
      if (raw.raft.role !== "leader") return;
      const term = raw.raft.term;
      const leaders = seen.get(term) ?? new Set<NodeId>();
      leaders.add(raw.id);
      seen.set(term, leaders);
    };
    const step = raw.step.bind(raw);
    const tick = raw.tick.bind(raw);
    const campaign = raw.campaign.bind(raw);
    const advance = raw.advance.bind(raw);
    raw.step = (m) => {
      step(m);
      note();
    };
    raw.tick = () => {
      tick();
      note();
    };
    raw.campaign = () => {
      campaign();
      note();
    };
    raw.advance = (rd) => {
      advance(rd);
      note();
    };
  }
  return seen;
}
