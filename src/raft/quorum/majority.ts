import type { NodeId } from "../types.js";

export const VoteResult = {
  /** Not decided yet: the missing votes could still go either way. */
  Pending: 1,
  Lost: 2,
  Won: 3,
} as const;
export type VoteResult = (typeof VoteResult)[keyof typeof VoteResult];

/**
 * A set of voters that decides by simple majority. An empty set decides nothing on its own: it commits
 * everything and wins every vote, so that a joint configuration with an empty outgoing half behaves
 * like its incoming half alone.
 */
export class MajorityConfig {
  readonly ids: ReadonlySet<NodeId>;
  /** Scratch space for committedIndex, so that computing the commit index does not allocate. */
  private readonly scratch: number[];

  constructor(ids: Iterable<NodeId> = []) {
    this.ids = new Set(ids);
    this.scratch = new Array<number>(this.ids.size).fill(0);
  }

  get size(): number {
    return this.ids.size;
  }

  has(id: NodeId): boolean {
    return this.ids.has(id);
  }

  sorted(): NodeId[] {
    return [...this.ids].sort((a, b) => a - b);
  }

  /**
   * The highest index acknowledged by a majority, given each voter's acknowledged index (missing
   * voters count as 0).
   */
  committedIndex(acked: (id: NodeId) => number | undefined): number {
    const n = this.ids.size;
    if (n === 0) return Number.MAX_SAFE_INTEGER;
    const s = this.scratch;
    let i = 0;
    for (const id of this.ids) s[i++] = acked(id) ?? 0;
    // Insertion sort, descending: n is at most a handful of voters.
    for (let a = 1; a < n; a++) {
      const v = s[a]!;
      let b = a - 1;
      while (b >= 0 && s[b]! < v) {
        s[b + 1] = s[b]!;
        b--;
      }
      s[b + 1] = v;
    }
    return s[Math.floor(n / 2)]!;
  }

  /** The outcome of a vote given the votes cast so far (true = granted). */
  voteResult(votes: ReadonlyMap<NodeId, boolean>): VoteResult {
    const n = this.ids.size;
    if (n === 0) return VoteResult.Won;
    let granted = 0;
    let missing = 0;
    for (const id of this.ids) {
      const v = votes.get(id);
      if (v === undefined) missing++;
      else if (v) granted++;
    }
    const quorum = Math.floor(n / 2) + 1;
    if (granted >= quorum) return VoteResult.Won;
    if (granted + missing >= quorum) return VoteResult.Pending;
    return VoteResult.Lost;
  }
}
