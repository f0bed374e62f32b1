/**
 * Which unanswered writes the search may leave out at a given point.
 *
 * An operation that never returned may take effect at any point or never, so each one pending doubles
 * the orders a search could try. Most of them do not matter: a write that was lost, whose value nobody
 * ever read, can only get in the way. This module recognises, at a pair (placed set, value v), an
 * unanswered write X that writes x and is *dominated*: whatever can follow X from x could equally
 * follow from v without X, so the search need not try X there (it remains available later).
 *
 * X (an unanswered put, a swap that would succeed, or an append of a non-empty suffix) writing a
 * non-empty x ≠ v is dominated when:
 *
 * 1. no answered operation still to be placed needs a value that starts with x (a read of x, a swap
 *    that expected x, an append that followed x, or any of those of a value later appends built on x),
 *    and no unanswered swap still to be placed expects such a value (for an append, whose x depends
 *    on v, this is checked as: no such value contains its suffix);
 * 2. no answered failed swap still to be placed that expected v could come before every answered put
 *    still to be placed (it fits x but would not fit v); and
 * 3. v is not "absent" while an answered delete that found the key present, and could come before
 *    every answered put still to be placed, is still to be placed.
 *
 * Why that suffices: take any continuation from x. Until something overwrites the key regardless of
 * its value (a put or a delete), the states it passes through all start with x, so by (1) the answered
 * operations in that stretch can only be failed swaps and deletes that found the key present; the
 * stretch ends at the latest at the first answered put, and an operation invoked after that put
 * returned cannot be in it, so by (2) and (3) those operations fit v as well. The unanswered
 * operations in the stretch (appends, swaps that cannot succeed) can be left out. From the overwrite
 * on, both continuations are the same. So dropping X and those unanswered operations gives a
 * continuation from v.
 *
 * An unanswered operation that would not change the value at all is always dominated (leaving it out
 * loses nothing). Unanswered deletes are otherwise always tried.
 */

import { INDETERMINATE } from "./history.js";
import type { KeyModel } from "./model.js";
import { neededValue } from "./obligations.js";
import { ABSENT } from "./values.js";

/** `blockers` value of an operation the rule does not apply to. */
const NOT_APPLICABLE = -1;
const NONE = -1;

export class Dominance {
  /** Per unanswered write the rule applies to: operations still to be placed that block it (by 1). */
  private readonly blockers: Int32Array;
  /** Per operation: the writes whose blockers it counts among, as a CSR list. */
  private readonly blocksStart: Int32Array;
  private readonly blocks: Int32Array;
  /**
   * Answered operations still to be placed that the rule looks at, in sorted lists: puts by return
   * time (list 0), deletes that found the key present by call time (list 1), failed swaps by call
   * time (one list per expected value, 2 + its id). Dancing links over operation ids, with one head
   * node per list after them; placing and unplacing are last-in first-out, so unlinking and relinking
   * restore every list exactly.
   */
  private readonly next: Int32Array;
  private readonly prev: Int32Array;
  private readonly listed: Uint8Array;
  private readonly swapList: Int32Array;
  private readonly n: number;
  private readonly model: KeyModel;

  constructor(model: KeyModel) {
    const n = model.size;
    this.n = n;
    this.model = model;
    const ops = model.ops;
    const values = model.values;
    this.blockers = new Int32Array(n).fill(NOT_APPLICABLE);

    // What each operation still to be placed could need, as strings that a write's value may prefix.
    const needs: (string | null)[] = ops.map((op) => {
      if (op.completion === INDETERMINATE) return op.f === "cas" ? op.input.expected : null;
      const need = neededValue(op);
      return typeof need === "string" ? need : null;
    });
    const blocked: number[][] = ops.map(() => []);
    for (let x = 0; x < n; x++) {
      const op = ops[x]!;
      if (op.completion !== INDETERMINATE) continue;
      // A put or swap writes exactly its value; an append writes whatever was there followed by its
      // suffix, so any value starting with what it writes contains the suffix.
      let blocks: (need: string) => boolean;
      if (op.f === "put" || op.f === "cas") {
        const written = op.input.value;
        if (written === "") continue;
        blocks = (need) => need.startsWith(written);
      } else if (op.f === "append") {
        const suffix = op.input.suffix;
        if (suffix === "") continue;
        blocks = (need) => need.includes(suffix);
      } else {
        continue;
      }
      let count = 0;
      for (let z = 0; z < n; z++) {
        const need = needs[z];
        if (z !== x && need !== null && need !== undefined && blocks(need)) {
          count++;
          blocked[z]!.push(x);
        }
      }
      this.blockers[x] = count;
    }
    this.blocksStart = new Int32Array(n + 1);
    for (let z = 0; z < n; z++) this.blocksStart[z + 1] = this.blocksStart[z]! + blocked[z]!.length;
    this.blocks = Int32Array.from(blocked.flat());

    const lists: number[][] = [[], []];
    this.swapList = new Int32Array(values.size).fill(NONE);
    for (let i = 0; i < n; i++) {
      const op = ops[i]!;
      if (op.completion === INDETERMINATE || !op.completion.ok) continue;
      if (op.f === "put") lists[0]!.push(i);
      else if (op.f === "delete" && op.completion.output) lists[1]!.push(i);
      else if (op.f === "cas" && !op.completion.output) {
        const id = op.input.expected === null ? ABSENT : values.lookup(op.input.expected);
        if (this.swapList[id] === NONE) {
          this.swapList[id] = lists.length;
          lists.push([]);
        }
        lists[this.swapList[id]!]!.push(i);
      }
    }
    lists[0]!.sort((a, b) => model.completedAt[a]! - model.completedAt[b]! || a - b);
    for (let l = 1; l < lists.length; l++)
      lists[l]!.sort((a, b) => model.invokedAt[a]! - model.invokedAt[b]! || a - b);
    this.next = new Int32Array(n + lists.length).fill(NONE);
    this.prev = new Int32Array(n + lists.length).fill(NONE);
    this.listed = new Uint8Array(n);
    for (let l = 0; l < lists.length; l++) {
      let last = n + l;
      for (const i of lists[l]!) {
        this.listed[i] = 1;
        this.next[last] = i;
        this.prev[i] = last;
        last = i;
      }
    }
  }

  place(i: number): void {
    for (let k = this.blocksStart[i]!; k < this.blocksStart[i + 1]!; k++) this.blockers[this.blocks[k]!]!--;
    if (this.listed[i] === 1) {
      const p = this.prev[i]!;
      const q = this.next[i]!;
      this.next[p] = q;
      if (q !== NONE) this.prev[q] = p;
    }
  }

  unplace(i: number): void {
    if (this.listed[i] === 1) {
      const q = this.next[i]!;
      this.next[this.prev[i]!] = i;
      if (q !== NONE) this.prev[q] = i;
    }
    for (let k = this.blocksStart[i]!; k < this.blocksStart[i + 1]!; k++) this.blockers[this.blocks[k]!]!++;
  }

  /** Whether unanswered operation `x`, which would take the key from `state` to `after`, may be left out. */
  dominated(x: number, state: number, after: number): boolean {
    if (after === state) return true;
    if (this.blockers[x] !== 0) return false;
    const firstPut = this.next[this.n]!;
    const overwrittenBy = firstPut === NONE ? Number.POSITIVE_INFINITY : this.model.completedAt[firstPut]!;
    const list = state < this.swapList.length ? this.swapList[state]! : NONE;
    if (list !== NONE) {
      const swap = this.next[this.n + list]!;
      if (swap !== NONE && this.model.invokedAt[swap]! <= overwrittenBy) return false;
    }
    if (state === ABSENT) {
      const del = this.next[this.n + 1]!;
      if (del !== NONE && this.model.invokedAt[del]! <= overwrittenBy) return false;
    }
    return true;
  }
}
