/**
 * The keys the chaos clients use: a few at a time (so that operations on each overlap), renamed every
 * `lifetimeMs` (key `k3` of generation 7 is `g7:k3`).
 *
 * Why rename: the checker's work on a key grows exponentially with the indeterminate operations in its
 * history that leave no trace, above all deletes (an unanswered DEL may have taken effect at any moment
 * since, and every subset of them is a different past). A key's history is kept to one lifetime, so a
 * run of any length stays checkable; a write that surfaces after its key was retired is still caught,
 * by the final reads of every key ever used.
 */
import type { SeededRandom } from "../raft/rand.js";

export class KeySpace {
  private readonly used = new Set<string>();

  constructor(
    readonly slots: number,
    readonly lifetimeMs: number,
  ) {
    if (!Number.isSafeInteger(slots) || slots < 1) throw new RangeError(`slots must be ≥ 1, got ${slots}`);
    if (!(lifetimeMs > 0)) throw new RangeError(`lifetimeMs must be > 0, got ${lifetimeMs}`);
  }

  /** A key of the generation live at `at` (ms since the run started), drawn at random. */
  pick(random: SeededRandom, at: number): string {
    const generation = Math.floor(Math.max(0, at) / this.lifetimeMs);
    const key = `g${generation}:k${random.intn(this.slots)}`;
    this.used.add(key);
    return key;
  }

  /** Every key picked so far, sorted. */
  usedKeys(): string[] {
    return [...this.used].sort();
  }
}
