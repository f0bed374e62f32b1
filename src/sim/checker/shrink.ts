/**
 * Shrinking a failing history to one a person can read.
 *
 * Linearizability is not monotone in the operations a history holds: removing a write can turn a
 * consistent read into an impossible one, and removing a read can remove the only witness of a
 * violation. So no removal is assumed safe; each candidate is checked again, and kept only if it
 * still fails.
 *
 * The order of attempts is delta debugging's: first remove large chunks (halves, then quarters, ...),
 * which usually cuts a history of hundreds of operations to a handful in few checks, then single
 * operations, in passes repeated until a whole pass removes nothing. The result is then 1-minimal
 * with respect to `check`: it fails, and removing any one of its items does not.
 *
 * Chunks are tried from the end backwards. Given items in time order, that removes the readers of a
 * value before its writer, so a writer that only later readers needed goes in the same pass.
 */

/**
 * What checking a candidate found. Only `fails` lets the removal stand. `refused`: the caller rules
 * the candidate out; `unknown`: the check ran out of budget, which proves nothing.
 */
export type CandidateVerdict = "fails" | "passes" | "refused" | "unknown";

export interface ShrinkResult<T> {
  readonly items: T[];
  /** Candidates checked. */
  readonly checks: number;
  /**
   * True when the result is known to be 1-minimal: a final pass removed each item alone and every
   * such candidate passed or was refused. False when the check budget ran out or some candidate of
   * that pass was `unknown`.
   */
  readonly complete: boolean;
}

/**
 * `close`, when given, turns each candidate into the one actually tried (removing more items along
 * with those taken out, say); a candidate it leaves as large as the current items is skipped.
 */
export function shrinkFailing<T>(
  items: readonly T[],
  check: (candidate: readonly T[]) => CandidateVerdict,
  maxChecks: number,
  close: (candidate: readonly T[]) => T[] = (candidate) => candidate.slice(),
): ShrinkResult<T> {
  let current = items.slice();
  let checks = 0;
  let chunk = Math.max(1, current.length >>> 1);
  for (;;) {
    let removed = false;
    let inconclusive = false;
    for (let end = current.length; end > 0; ) {
      if (checks >= maxChecks) return { items: current, checks, complete: false };
      end = Math.min(end, current.length); // `close` may have removed more than the chunk
      const start = Math.max(0, end - chunk);
      const candidate = close(current.slice(0, start).concat(current.slice(end)));
      end = start;
      if (candidate.length >= current.length) continue;
      checks++;
      const verdict = check(candidate);
      if (verdict === "fails") {
        current = candidate;
        removed = true;
      } else if (verdict === "unknown") {
        inconclusive = true;
      }
    }
    if (chunk > 1) {
      chunk = Math.max(1, chunk >>> 1);
      continue;
    }
    // Removing one item can make another removable, so single removals repeat to a fixpoint.
    if (!removed) return { items: current, checks, complete: !inconclusive };
  }
}
