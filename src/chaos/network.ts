/**
 * The raft links between the nodes, one `LinkProxy` per direction: node A's `--peers` entry for node B
 * is the proxy A→B, in front of B's real gRPC address. Cuts are counted per link, so that faults that
 * overlap (a node isolated while one of its links is cut one way) heal independently: a link is open
 * again only when every fault that cut it has healed.
 */
import type { NodeId } from "../raft/types.js";
import { type CutMode, LinkProxy } from "./link-proxy.js";

const key = (from: NodeId, to: NodeId) => `${from}->${to}`;

export class ChaosNetwork {
  private readonly cuts = new Map<string, number>();

  private constructor(private readonly proxies: ReadonlyMap<string, LinkProxy>) {}

  /** Opens a proxy for every ordered pair of `ids`, each forwarding to its target's raft port. */
  static async open(ids: readonly NodeId[], raftPort: (id: NodeId) => number): Promise<ChaosNetwork> {
    const proxies = new Map<string, LinkProxy>();
    try {
      for (const from of ids)
        for (const to of ids) if (from !== to) proxies.set(key(from, to), await LinkProxy.open(raftPort(to)));
    } catch (err) {
      await Promise.all([...proxies.values()].map((p) => p.close()));
      throw err;
    }
    return new ChaosNetwork(proxies);
  }

  /** The port node `from` must use to reach node `to`. */
  portFor(from: NodeId, to: NodeId): number {
    return this.proxy(from, to).port;
  }

  /** Cuts the link from→to (its first cut sets the mode). */
  cut(from: NodeId, to: NodeId, mode: CutMode): void {
    const k = key(from, to);
    const n = this.cuts.get(k) ?? 0;
    this.cuts.set(k, n + 1);
    if (n === 0) this.proxy(from, to).cut(mode);
  }

  /** Takes back one cut of from→to; the link opens when none is left. */
  heal(from: NodeId, to: NodeId): void {
    const k = key(from, to);
    const n = this.cuts.get(k) ?? 0;
    if (n === 0) throw new Error(`link ${k} is not cut`);
    if (n === 1) {
      this.cuts.delete(k);
      this.proxy(from, to).restore();
    } else this.cuts.set(k, n - 1);
  }

  /** Opens every link, whatever cut it. */
  healAll(): void {
    for (const k of this.cuts.keys()) this.proxies.get(k)!.restore();
    this.cuts.clear();
  }

  /** Links cut now, as `from->to`. */
  cutLinks(): string[] {
    return [...this.cuts.keys()].sort();
  }

  close(): Promise<void> {
    return Promise.all([...this.proxies.values()].map((p) => p.close())).then(() => undefined);
  }

  private proxy(from: NodeId, to: NodeId): LinkProxy {
    const p = this.proxies.get(key(from, to));
    if (p === undefined) throw new RangeError(`no link ${key(from, to)}`);
    return p;
  }
}
