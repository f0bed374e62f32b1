/**
 * The nemesis: a schedule of faults drawn from a seed, played against the real cluster.
 *
 * The schedule (`planFaults`) is a pure function of the seed, the run's length and the node ids, so
 * `--seed` repeats it exactly: when each fault starts, how long it holds, its kind, the nodes drawn and
 * the way a link is cut. Kinds come in shuffled rounds (every kind once per round), so even a short run
 * has them all. At most two faults hold at once. Whom a fault "at the leader" hits is decided when it
 * starts, by who leads then.
 *
 * Kinds:
 * - `kill`: SIGKILL a node; it is restarted (same data directory) when the fault heals.
 * - `pause`: SIGSTOP a node; SIGCONT when the fault heals (its timers fire late, all at once).
 * - `isolate`: cut every raft link to and from a node (clients still reach it).
 * - `cut-link`: cut the raft link between two nodes both ways; the third still reaches both.
 * - `one-way`: cut one direction of one link: A's messages do not reach B, B's still reach A.
 */
import { setTimeout as delay } from "node:timers/promises";
import { SeededRandom } from "../raft/rand.js";
import type { NodeId } from "../raft/types.js";
import type { ChaosCluster } from "./cluster.js";
import type { CutMode } from "./link-proxy.js";

export const FAULT_KINDS = ["kill", "pause", "isolate", "cut-link", "one-way"] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];

export interface PlannedFault {
  /** ms after the run starts. */
  readonly at: number;
  readonly holdMs: number;
  readonly kind: FaultKind;
  /** Aim at the leader when one is known, rather than at `node`. */
  readonly atLeader: boolean;
  /** The node hit, or the link's first end (for `one-way`, the sender). */
  readonly node: NodeId;
  /** The link's other end (`cut-link`, `one-way`); never `node`. */
  readonly peer: NodeId;
  readonly mode: CutMode;
}

/** The first fault waits this long, so the cluster has elected a leader. */
const FIRST_FAULT_MS = 1_000;
/** No fault starts this close to the end of the run. */
const LAST_FAULT_MARGIN_MS = 500;
const MAX_ACTIVE = 2;
const GAP_MS = [300, 2_000] as const;
const HOLD_MS = [800, 4_000] as const;

function between(random: SeededRandom, [lo, hi]: readonly [number, number]): number {
  return lo + random.intn(hi - lo + 1);
}

/** The fault schedule for `seed`: deterministic. */
export function planFaults(seed: number, durationMs: number, ids: readonly NodeId[]): PlannedFault[] {
  if (ids.length < 2) throw new RangeError("the nemesis needs at least two nodes");
  const random = new SeededRandom(seed);
  const plan: PlannedFault[] = [];
  let round: FaultKind[] = [];
  let ends: number[] = [];
  let t = FIRST_FAULT_MS - GAP_MS[0];
  for (;;) {
    t += between(random, GAP_MS);
    ends = ends.filter((e) => e > t);
    if (ends.length >= MAX_ACTIVE) {
      t = Math.min(...ends);
      ends = ends.filter((e) => e > t);
    }
    if (t > durationMs - LAST_FAULT_MARGIN_MS) return plan;
    if (round.length === 0) round = shuffled(random, FAULT_KINDS);
    const kind = round.pop()!;
    const holdMs = between(random, HOLD_MS);
    const node = ids[random.intn(ids.length)]!;
    const others = ids.filter((id) => id !== node);
    const peer = others[random.intn(others.length)]!;
    const atLeader = random.intn(2) === 0;
    const mode: CutMode = random.intn(2) === 0 ? "refuse" : "stall";
    plan.push({ at: t, holdMs, kind, atLeader, node, peer, mode });
    ends.push(t + holdMs);
  }
}

function shuffled<T>(random: SeededRandom, items: readonly T[]): T[] {
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = random.intn(i + 1);
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

/** Who leads now, as far as the monitor knows. */
export interface LeaderSource {
  currentLeader(): NodeId | null;
}

interface Pending {
  readonly at: number;
  /** At the same time, a heal goes before a start: the plan counted on it to keep two faults at most. */
  readonly heal: boolean;
  readonly run: () => Promise<void> | void;
}

/** Plays a plan against the cluster. `stop()` leaves faults in place: the caller heals everything. */
export class Nemesis {
  readonly counts: Record<FaultKind, number> = { kill: 0, pause: 0, isolate: 0, "cut-link": 0, "one-way": 0 };
  /** Faults not started because every node was already killed or paused. */
  skipped = 0;
  /** Nodes killed or paused by a fault that has not healed. */
  private readonly busy = new Set<NodeId>();
  private readonly queue: Pending[] = [];
  private readonly abort = new AbortController();
  private loop: Promise<void> = Promise.resolve();

  constructor(
    plan: readonly PlannedFault[],
    private readonly cluster: ChaosCluster,
    private readonly leaders: LeaderSource,
    private readonly clock: () => number,
    private readonly log: (line: string) => void,
  ) {
    for (const fault of plan) this.queue.push({ at: fault.at, heal: false, run: () => this.begin(fault) });
  }

  start(): void {
    this.loop = this.run();
  }

  /** Stops playing the plan, after the action in progress. */
  async stop(): Promise<void> {
    this.abort.abort();
    await this.loop;
  }

  private async run(): Promise<void> {
    for (;;) {
      this.queue.sort((a, b) => a.at - b.at || Number(b.heal) - Number(a.heal));
      const next = this.queue.shift();
      if (next === undefined) return;
      const wait = next.at - this.clock();
      try {
        if (wait > 0) await delay(wait, undefined, { signal: this.abort.signal });
      } catch {
        return; // aborted
      }
      if (this.abort.signal.aborted) return;
      await next.run();
    }
  }

  private async begin(f: PlannedFault): Promise<void> {
    const leader = f.atLeader ? this.leaders.currentLeader() : null;
    const first = leader ?? f.node;
    const tag = `${f.kind}${f.atLeader ? " (at the leader)" : ""}`;
    // The planned end, even if this start ran late, so that the plan's bound on overlap holds.
    const healAt = f.at + f.holdMs;
    const net = this.cluster.network;
    switch (f.kind) {
      case "kill":
      case "pause": {
        const id = this.freeNode(first);
        if (id === null) {
          this.log(`${tag}: skipped, every node is already killed or paused`);
          this.skipped++;
          return;
        }
        this.counts[f.kind]++;
        this.busy.add(id);
        const node = this.cluster.node(id);
        if (f.kind === "kill") {
          this.log(`${tag}: SIGKILL node ${id} for ${f.holdMs} ms`);
          await node.kill(tag);
          this.heal(healAt, `restart node ${id}`, () => {
            this.busy.delete(id);
            if (node.state === "down") node.start("restart after kill");
          });
        } else {
          this.log(`${tag}: SIGSTOP node ${id} for ${f.holdMs} ms`);
          node.pause(tag);
          this.heal(healAt, `SIGCONT node ${id}`, () => {
            this.busy.delete(id);
            node.resume("end of pause");
          });
        }
        return;
      }
      case "isolate": {
        const links: (readonly [NodeId, NodeId])[] = [];
        for (const p of this.cluster.ids) if (p !== first) links.push([first, p], [p, first]);
        this.counts[f.kind]++;
        this.log(`${tag}: isolate node ${first} (${f.mode}) for ${f.holdMs} ms`);
        for (const [a, b] of links) net.cut(a, b, f.mode);
        this.heal(healAt, `reconnect node ${first}`, () => {
          for (const [a, b] of links) net.heal(a, b);
        });
        return;
      }
      case "cut-link":
      case "one-way": {
        // The drawn link, or one from the leader to the drawn peer (to another node if the leader is it).
        const other = f.peer !== first ? f.peer : f.node;
        // Which way a one-way cut goes at the leader (what it sends, or what it hears) is also drawn.
        const [from, to] = leader !== null && f.node > f.peer ? [other, first] : [first, other];
        const links: (readonly [NodeId, NodeId])[] =
          f.kind === "cut-link"
            ? [
                [from, to],
                [to, from],
              ]
            : [[from, to]];
        const what = f.kind === "cut-link" ? `link ${from}<->${to}` : `link ${from}->${to}`;
        this.counts[f.kind]++;
        this.log(`${tag}: cut ${what} (${f.mode}) for ${f.holdMs} ms`);
        for (const [a, b] of links) net.cut(a, b, f.mode);
        this.heal(healAt, `restore ${what}`, () => {
          for (const [a, b] of links) net.heal(a, b);
        });
        return;
      }
    }
  }

  /** `preferred`, or the next node (by id) that no kill or pause holds; null if every node is held. */
  private freeNode(preferred: NodeId): NodeId | null {
    const ids = this.cluster.ids;
    const start = Math.max(0, ids.indexOf(preferred));
    for (let i = 0; i < ids.length; i++) {
      const id = ids[(start + i) % ids.length]!;
      if (!this.busy.has(id)) return id;
    }
    return null;
  }

  private heal(at: number, what: string, run: () => void): void {
    this.queue.push({
      at,
      heal: true,
      run: () => {
        this.log(what);
        run();
      },
    });
  }
}
