/**
 * Which unanswered writes the search may leave out at a given point.
 *
 * An operation that never returned may take effect at any point or never, so each one pending doubles
 * the orders a search could try. Most of them do not matter: a write that was lost, whose value nobody
 * ever read, can only get in the way. This module recognises, at a pair (placed set, value v), an
 * unanswered write X that writes x and is *dominated*: whatever can follow X from x could equally
 * follow from v without X, so the search need not try X there (it remains available later).
 *
 Every condition below is about operations still to be placed that could come before every answered
 * put still to be placed (invoked no later than the earliest of those puts returns): no other can be
 * in the stretch the argument below is about. X (an unanswered put, a swap that would succeed, or an
 * append of a non-empty suffix) writing a non-empty x ≠ v is dominated when:
 *
 * 1. no such answered operation needs a value that starts with x (a read of x, a swap that expected
 *    x, an append that followed x, or any of those of a value later appends built on x), and no such
 *    unanswered swap expects one (for an append, whose x depends on v, this is checked as: no such
 *    value contains its suffix);
 * 2. no such answered failed swap expected v (it fits x but would not fit v); and
 * 3. v is not "absent" while such an answered delete that found the key present waits.
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
 * loses nothing). Unanswered deletes are otherwise always tried: a similar rule holds for them, but
 * leaving them out where it allows turned out to slow the search down on linearizable histories (the
 * witness it then has to find without them comes late in depth-first order).
 */

import { INDETERMINATE } from "./history.js";
import type { KeyModel } from "./model.js";
import { neededValue } from "./obligations.js";
import { ABSENT } from "./values.js";

const NONE = -1;

/** Lists of the answered operations the rule watches, each sorted (see `next`). */
const PUTS = 0;
const DELETES_FINDING_KEY = 1;

export class Dominance {
  /**
   * Per unanswered write the rule applies to (else empty): the operations whose needs it could serve
   * (see (1)), by call time, as a CSR list. `harmful` is -1 for writes the rule does not apply to.
   */
  private readonly blockersStart: Int32Array;
  private readonly blockers: Int32Array;
  private readonly applies: Uint8Array;
  /**
   * Answered operations still to be placed that the rule looks at, in sorted lists: puts by return
   * time, deletes that found the key present, answered operations needing the key absent, and failed
   * swaps per expected value, these by call time. Dancing links over operation ids, with one head node
   * per list after them; placing and unplacing are last-in first-out, so unlinking and relinking
   * restore every list exactly.
   */
  private readonly next: Int32Array;
  private readonly prev: Int32Array;
  private readonly listed: Uint8Array;
  private readonly swapList: Int32Array;
  private readonly placed: Uint8Array;
  private readonly n: number;
  private readonly model: KeyModel;

  constructor(model: KeyModel) {
    const n = model.size;
    this.n = n;
    this.model = model;
    const ops = model.ops;
    const values = model.values;
    const byCall = (a: number, b: number) => model.invokedAt[a]! - model.invokedAt[b]! || a - b;

    // What each operation still to be placed could need, as strings that a write's value may prefix.
    const needs: (string | null)[] = ops.map((op) => {
      if (op.completion === INDETERMINATE) return op.f === "cas" ? op.input.expected : null;
      const need = neededValue(op);
      return typeof need === "string" ? need : null;
    });
    this.applies = new Uint8Array(n);
    const blockerLists: number[][] = [];
    for (let x = 0; x < n; x++) {
      const op = ops[x]!;
      blockerLists.push([]);
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
      this.applies[x] = 1;
      for (let z = 0; z < n; z++) {
        const need = needs[z];
        if (z !== x && need !== null && need !== undefined && blocks(need)) blockerLists[x]!.push(z);
      }
      blockerLists[x]!.sort(byCall);
    }
    this.blockersStart = new Int32Array(n + 1);
    for (let x = 0; x < n; x++) this.blockersStart[x + 1] = this.blockersStart[x]! + blockerLists[x]!.length;
    this.blockers = Int32Array.from(blockerLists.flat());

    // Disjoint lists (an operation has one pair of links).
    const lists: number[][] = [[], []];
    this.swapList = new Int32Array(values.size).fill(NONE);
    for (let i = 0; i < n; i++) {
      const op = ops[i]!;
      if (op.completion === INDETERMINATE || !op.completion.ok) continue;
      if (op.f === "put") lists[PUTS]!.push(i);
      else if (op.f === "delete" && op.completion.output) lists[DELETES_FINDING_KEY]!.push(i);
      else if (op.f === "cas" && !op.completion.output) {
        const id = op.input.expected === null ? ABSENT : values.lookup(op.input.expected);
        if (this.swapList[id] === NONE) {
          this.swapList[id] = lists.length;
          lists.push([]);
        }
        lists[this.swapList[id]!]!.push(i);
      }
    }
    lists[PUTS]!.sort((a, b) => model.completedAt[a]! - model.completedAt[b]! || a - b);
    for (let l = PUTS + 1; l < lists.length; l++) lists[l]!.sort(byCall);
    this.next = new Int32Array(n + lists.length).fill(NONE);
    this.prev = new Int32Array(n + lists.length).fill(NONE);
    this.listed = new Uint8Array(n);
    this.placed = new Uint8Array(n);
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
    this.placed[i] = 1;
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
    this.placed[i] = 0;
  }

  /** Whether unanswered operation `x`, which would take the key from `state` to `after`, may be left out. */
  dominated(x: number, state: number, after: number): boolean {
    if (after === state) return true;
    if (this.applies[x] === 0) return false;
    const firstPut = this.next[this.n + PUTS]!;
    const until = firstPut === NONE ? Number.POSITIVE_INFINITY : this.model.completedAt[firstPut]!;
    if (this.blocked(x, until)) return false;
    const swaps = state < this.swapList.length ? this.swapList[state]! : NONE;
    if (swaps !== NONE && this.waiting(swaps, until)) return false;
    return !(state === ABSENT && this.waiting(DELETES_FINDING_KEY, until));
  }

  /** Whether list `l` has an operation still to be placed that was invoked by `until`. */
  private waiting(l: number, until: number): boolean {
    const first = this.next[this.n + l]!;
    return first !== NONE && this.model.invokedAt[first]! <= until;
  }

  /** Whether a need unanswered write `x` could serve waits, invoked by `until`. */
  private blocked(x: number, until: number): boolean {
    for (let k = this.blockersStart[x]!; k < this.blockersStart[x + 1]!; k++) {
      const z = this.blockers[k]!;
      if (this.model.invokedAt[z]! > until) return false;
      if (this.placed[z] === 0) return true;
    }
    return false;
  }
}
