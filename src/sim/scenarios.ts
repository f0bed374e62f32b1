/**
 * Scenario nemeses: short choreographies of partitions and crashes, with random timing, that set up
 * the hazards raft's rules exist for. Random faults alone reach these states too rarely to test them:
 * each needs several faults in a given order, some of them timed to a message. A correct raft comes
 * through every one of them; a raft missing the rule breaks a checked property.
 */
import type { SeededRandom } from "../raft/rand.js";
import { type Message, MessageType, type NodeId } from "../raft/types.js";
import type { MemoryNetwork } from "../transport/memory-transport.js";

export const SCENARIO_KINDS = ["figure-8", "crash-after-vote", "lease-bridge", "snapshot-cut"] as const;
export type ScenarioKind = (typeof SCENARIO_KINDS)[number];

/** What a scenario may see and do in a running simulation. */
export interface ScenarioWorld {
  readonly ids: readonly NodeId[];
  readonly network: MemoryNetwork;
  readonly rng: SeededRandom;
  /** A live node that believes it leads, among `among` (default: all). */
  leader(among?: readonly NodeId[]): NodeId | undefined;
  /** Every node is up and serving. */
  allUp(): boolean;
  /** The current term of a live node (0 when it is down). */
  term(id: NodeId): number;
  /** The first and last index of a live node's log (null when it is down). */
  logBounds(id: NodeId): { first: number; last: number } | null;
  /** A power loss that loses every unsynced write; the node boots again after `downForMs`. */
  crash(id: NodeId, downForMs: number): void;
  /** Runs `fn` on the next scheduler turn (before virtual time moves). */
  schedule(fn: () => void): void;
  /** Clients often ask any node (true), or mostly the node they believe leads (false). */
  spread(on: boolean): void;
  /** Holds the clients' workload (true) or lets it go on (false). */
  quiet(on: boolean): void;
  /** Waits in virtual time until `pred` holds: false on timeout, or when the run is ending. */
  waitFor(pred: () => boolean, timeoutMs: number): Promise<boolean>;
  /** Lets `ms` of virtual time pass: false when the run is ending meanwhile. */
  pause(ms: number): Promise<boolean>;
  log(line: string): void;
}

export function runScenario(kind: ScenarioKind, w: ScenarioWorld): Promise<void> {
  switch (kind) {
    case "figure-8":
      return figure8(w);
    case "crash-after-vote":
      return crashAfterVote(w);
    case "lease-bridge":
      return leaseBridge(w);
    case "snapshot-cut":
      return snapshotCut(w);
  }
}

const hasAppend = (batch: readonly Message[]) =>
  batch.some((m) => m.type === MessageType.App || m.type === MessageType.Heartbeat);

function othersThan(w: ScenarioWorld, ...ids: NodeId[]): NodeId[] {
  return w.ids.filter((i) => !ids.includes(i));
}

/**
 * Shows `decide` every batch a node of `senders` sends (to anyone but `spared`), before it leaves:
 * true drops it. Message-level timing for the scenarios; the rules go with the next heal.
 */
function watchSends(
  w: ScenarioWorld,
  senders: readonly NodeId[],
  spared: readonly NodeId[],
  decide: (from: NodeId, batch: readonly Message[]) => boolean,
): void {
  for (const from of senders)
    for (const to of othersThan(w, from, ...spared))
      w.network.drop(from, to, (batch) => decide(from, batch), "error");
}

/** Cuts `id` off from every other node, both ways. */
function isolate(w: ScenarioWorld, id: NodeId): void {
  w.network.partition([id], othersThan(w, id), "error");
}

/**
 * The raft paper's Figure 8. A leader (with one follower, of five nodes) is cut off and takes writes it
 * cannot commit. The others elect a leader, which is cut off as it sends its first append: its first
 * entry is on its own disk only. The old leader's side is elected again and starts to bring the others
 * up to date, and is cut off after a few appends; then the second leader comes back. A raft that
 * commits an entry of an earlier term by counting replicas has by then committed an entry that the
 * second leader, whose log ends in a later term, overwrites.
 */
async function figure8(w: ScenarioWorld): Promise<void> {
  const first = w.leader();
  if (first === undefined || !w.allUp()) return;
  const others = shuffle(w, othersThan(w, first));
  const side = w.ids.length === 5 ? [first, others.shift()!] : [first];
  w.network.heal();
  w.quiet(false);
  w.network.partition(side, others, "error");
  w.log(`figure 8: ${side} cut off from ${others}; the leader takes writes it cannot commit`);

  // Set from inside drop rules, which TypeScript's narrowing cannot see: hence boxes.
  const second: { id: NodeId | null } = { id: null };
  watchSends(w, others, [], (from, batch) => {
    if (second.id === null && hasAppend(batch)) {
      second.id = from;
      isolate(w, from);
    }
    return second.id === from;
  });
  if (!(await w.waitFor(() => second.id !== null, 5_000))) return;
  const m = second.id!;
  w.log(`figure 8: node ${m} leads and is cut off before its first append leaves`);

  w.network.heal();
  isolate(w, m);
  const k = 1 + w.rng.intn(5);
  // Appends a node sent while it led an older term may still be queued: count those of a new term.
  const newTerm = w.term(m) + 1;
  const appends = new Map<NodeId, number>();
  const third: { id: NodeId | null } = { id: null };
  watchSends(w, side, [m], (from, batch) => {
    if (third.id !== null) return false;
    const n =
      (appends.get(from) ?? 0) + batch.filter((x) => x.type === MessageType.App && x.term >= newTerm).length;
    appends.set(from, n);
    if (n < k) return false;
    third.id = from;
    w.network.heal();
    isolate(w, from);
    return true;
  });
  if (!(await w.waitFor(() => third.id !== null, 5_000))) return;
  w.log(`figure 8: node ${third.id} cut off at its append ${k}; node ${m} is back`);
  await w.pause(1_500);
}

/**
 * A voter crashes right after it grants a vote, and leadership moves at once: the leader it voted for
 * is cut off as soon as it is seen, and the old leader comes back to meet the voter restarting. A vote
 * sent before it was durable is lost in the crash, and the voter grants another in the same term.
 */
async function crashAfterVote(w: ScenarioWorld): Promise<void> {
  const first = w.leader();
  if (first === undefined || !w.allUp()) return;
  const rest = othersThan(w, first);
  w.network.heal();
  isolate(w, first);
  const voter: { id: NodeId | null } = { id: null };
  watchSends(w, rest, [], (from, batch) => {
    if (voter.id === null && batch.some((m) => m.type === MessageType.VoteResp && !m.reject)) {
      voter.id = from;
      const down = w.rng.intn(200);
      // On the next turn: the vote has left, and the write behind it may not be synced yet.
      w.schedule(() => w.crash(from, down));
    }
    return false;
  });
  w.log(`crash after vote: leader ${first} cut off; the first node to grant a vote will crash`);
  if (!(await w.waitFor(() => voter.id !== null, 5_000))) return;
  if (!(await w.waitFor(() => w.leader(rest) !== undefined, 2_000))) return;
  const x = w.leader(rest)!;
  w.network.heal();
  isolate(w, x);
  w.log(`crash after vote: node ${x} leads with node ${voter.id}'s vote, and is cut off; ${first} is back`);
  await w.pause(1_500);
}

/**
 * A partial partition against leases. With the workload held (so that no log moves ahead), the link
 * between the leader and one follower is cut. That follower times out and asks the others for their
 * votes, which they must refuse while they hear from the leader. A node that votes nevertheless stops
 * answering the old leader at once (its link to it fails one way), and the workload resumes, spread
 * over every node.
 */
async function leaseBridge(w: ScenarioWorld): Promise<void> {
  const first = w.leader();
  if (first === undefined || !w.allUp()) return;
  const term = w.term(first);
  const rest = othersThan(w, first);
  const cut = rest[w.rng.intn(rest.length)]!;
  w.network.heal();
  w.quiet(true);
  // Writes in flight finish and reach every node.
  if (!(await w.pause(300))) return;
  w.network.partition([first], [cut], "error");
  for (const from of othersThan(w, first, cut))
    w.network.drop(from, first, (batch) => batch.some((m) => m.term > term), "error");
  w.log(`lease bridge: link ${first} <-> ${cut} cut, the workload held`);
  const moved = await w.waitFor(() => w.leader([cut]) !== undefined, 4_000);
  w.quiet(false);
  w.spread(true);
  if (!moved) return;
  w.log(`lease bridge: node ${cut} leads while ${first} may still hold its lease`);
  await w.pause(1_500);
}

/**
 * A follower falls so far behind that only a snapshot can bring it up to date, and the stream of that
 * snapshot breaks: cut at a random byte, or a byte flipped. The leader must send it again (the
 * elastickv incident: a failed snapshot that nobody reported left its follower behind for ever).
 */
async function snapshotCut(w: ScenarioWorld): Promise<void> {
  const leader = w.leader();
  if (leader === undefined || !w.allUp()) return;
  const followers = othersThan(w, leader);
  const behind = followers[w.rng.intn(followers.length)]!;
  const rest = othersThan(w, behind);
  w.network.heal();
  w.quiet(false);
  isolate(w, behind);
  w.log(`snapshot cut: node ${behind} cut off until the leader's log has moved past it`);
  const passed = () => {
    const l = w.leader(rest);
    const lb = l === undefined ? null : w.logBounds(l);
    const fb = w.logBounds(behind);
    return lb !== null && fb !== null && lb.first > fb.last + 1;
  };
  if (!(await w.waitFor(passed, 8_000))) return;
  const from = w.leader(rest)!;
  // The stream of a small snapshot is a few hundred bytes: most offsets land inside it.
  const offset = w.rng.intn(400);
  if (w.rng.intn(2) === 0) w.network.cutSnapshotAt(from, behind, offset);
  else w.network.corruptSnapshotByte(from, behind, offset);
  w.network.heal();
  w.log(`snapshot cut: node ${behind} is back; the snapshot ${from} sends it breaks at byte ${offset}`);
  await w.pause(1_500);
}

function shuffle<T>(w: ScenarioWorld, items: readonly T[]): T[] {
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = w.rng.intn(i + 1);
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}
