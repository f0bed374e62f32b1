/**
 * Watches the cluster's leadership through each node's `INFO raft`, polled independently per node (a
 * paused node only delays its own polls). It counts the leader changes it sees, tells the nemesis who
 * leads, and checks election safety as far as it can be seen from outside: two nodes that both say they
 * lead in the same term are a violation.
 */
import { setTimeout as delay } from "node:timers/promises";
import type { NodeId } from "../raft/types.js";
import { parseRaftInfo, type RaftInfo } from "./raft-info.js";
import { RespClient } from "./resp-client.js";

const POLL_TIMEOUT_MS = 500;

export interface LeaderSeen {
  readonly id: NodeId;
  readonly term: number;
  /** ms since the run started. */
  readonly at: number;
}

export class RaftMonitor {
  /** Each leader (node, term) the first time it was seen, in order. */
  readonly leaders: LeaderSeen[] = [];
  /** Election-safety violations: "term T: nodes A and B both lead". */
  readonly conflicts: string[] = [];
  private readonly leaderOfTerm = new Map<number, NodeId>();
  private readonly conflictTerms = new Set<number>();
  private readonly latest = new Map<NodeId, RaftInfo>();
  private readonly clients = new Map<NodeId, RespClient>();
  private readonly polling = new Map<NodeId, Promise<RaftInfo | null>>();
  private running = false;
  private loops: Promise<void>[] = [];

  constructor(
    private readonly ports: ReadonlyMap<NodeId, number>,
    private readonly intervalMs: number,
    private readonly clock: () => number,
  ) {}

  start(): void {
    this.running = true;
    this.loops = [...this.ports.keys()].map((id) => this.watch(id));
  }

  async stop(): Promise<void> {
    this.running = false;
    await Promise.all(this.loops);
    for (const c of this.clients.values()) c.close();
    this.clients.clear();
  }

  /** Leader changes seen: every leader after the first. */
  get leaderChanges(): number {
    return Math.max(0, this.leaders.length - 1);
  }

  /** The leader of the highest term any node last reported, if some node says it leads it. */
  currentLeader(): NodeId | null {
    let best: RaftInfo | null = null;
    for (const info of this.latest.values())
      if (info.role === "leader" && (best === null || info.term > best.term)) best = info;
    return best?.id ?? null;
  }

  /**
   * Asks node `id` for its raft state; null if it does not answer in time. Polls of one node take turns
   * (its connection carries one call at a time).
   */
  poll(id: NodeId): Promise<RaftInfo | null> {
    const turn = (this.polling.get(id) ?? Promise.resolve(null)).then(() => this.pollNow(id));
    this.polling.set(id, turn);
    return turn;
  }

  private async pollNow(id: NodeId): Promise<RaftInfo | null> {
    let client = this.clients.get(id);
    try {
      if (client === undefined || client.closed) {
        client = await RespClient.connect("127.0.0.1", this.ports.get(id)!, POLL_TIMEOUT_MS);
        this.clients.set(id, client);
      }
      const [reply] = await client.call([["INFO", "raft"]], POLL_TIMEOUT_MS);
      const info = reply === undefined ? null : parseRaftInfo(reply);
      if (info !== null) this.observe(info);
      return info;
    } catch {
      this.latest.delete(id);
      return null;
    }
  }

  private async watch(id: NodeId): Promise<void> {
    while (this.running) {
      await this.poll(id);
      if (this.running) await delay(this.intervalMs);
    }
  }

  private observe(info: RaftInfo): void {
    this.latest.set(info.id, info);
    if (info.role !== "leader") return;
    const known = this.leaderOfTerm.get(info.term);
    if (known === undefined) {
      this.leaderOfTerm.set(info.term, info.id);
      this.leaders.push({ id: info.id, term: info.term, at: this.clock() });
    } else if (known !== info.id && !this.conflictTerms.has(info.term)) {
      this.conflictTerms.add(info.term);
      this.conflicts.push(`term ${info.term}: nodes ${known} and ${info.id} both say they lead`);
    }
  }
}
