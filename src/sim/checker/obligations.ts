/**
 * A prune for the search: an answered operation still to be placed that needs one exact value (a get
 * that returned x, a swap that expected x and succeeded, an append whose answer shows it followed x,
 * a delete that found the key absent) can only be placed while the key holds x. It needs a *support*:
 * an operation still to be placed that might write x and was invoked before the needer returned (one
 * invoked later would have to come after it). If the key holds something else now and the needer has
 * no support left, nothing can save it: the pair is dead.
 *
 * This is what keeps wrong guesses and impossible reads cheap. Linearizing a write too early
 * overwrites a value that a pending read still has to see; with unique values nobody writes it again,
 * so the search backs off at once instead of trying every order of the writes that follow. And a read
 * of a value whose only writer began after the read ended is found dead before any search at all.
 *
 * Counts are kept per needer and updated as operations are placed and unplaced. With unique values a
 * write supports few needers, so that costs little. A value written over and over (a register test
 * over a few values) would make every placement update many counts, and its needers almost never run
 * out of support anyway; so needers of a value with more than MAX_WRITERS_WATCHED writers are not
 * watched (the prune is only ever a shortcut: the search stays exact without it).
 */

import { INDETERMINATE, type Operation } from "./history.js";
import type { KeyModel } from "./model.js";
import { ABSENT } from "./values.js";

const NONE = -1;

/** Needers of a value with more possible writers than this are not watched; see above. */
const MAX_WRITERS_WATCHED = 256;

export class Obligations {
  /** 1 for a needer whose support is counted. */
  private readonly watched: Uint8Array;
  /** The value each operation needs the key to hold when it is placed, or NONE. */
  private readonly need: Int32Array;
  /** The needed values each operation might write, as a CSR list (for `isUseful`). */
  private readonly writesStart: Int32Array;
  private readonly writes: Int32Array;
  /** The needers each operation supports, as a CSR list. */
  private readonly supportsStart: Int32Array;
  private readonly supports: Int32Array;
  /** Per needer: supports not yet placed. */
  private readonly support: Int32Array;
  private readonly placed: Uint8Array;
  /** Per value: needers not yet placed. */
  private readonly needers: Int32Array;
  /** Needers not yet placed and without support, in all and per value they need. */
  private starved = 0;
  private readonly starvedOn: Int32Array;

  constructor(model: KeyModel) {
    const n = model.size;
    const values = model.values;
    this.need = new Int32Array(n).fill(NONE);
    const needed = new Set<number>();
    const needersOf = new Map<number, number[]>();
    for (let i = 0; i < n; i++) {
      const value = neededValue(model.ops[i]!);
      if (value === undefined) continue;
      const id = value === null ? ABSENT : values.lookup(value);
      if (id < 0) continue;
      this.need[i] = id;
      needed.add(id);
      const list = needersOf.get(id);
      if (list === undefined) needersOf.set(id, [i]);
      else list.push(i);
    }

    const writeLists: number[][] = [];
    const writerCount = new Int32Array(values.size);
    for (let w = 0; w < n; w++) {
      const writes = possibleWrites(model, w, needed);
      writeLists.push(writes);
      for (const v of writes) writerCount[v]!++;
    }
    this.watched = new Uint8Array(n);
    for (let g = 0; g < n; g++) {
      const need = this.need[g]!;
      if (need !== NONE && writerCount[need]! <= MAX_WRITERS_WATCHED) this.watched[g] = 1;
    }
    const supportLists: number[][] = writeLists.map((writes, w) => {
      const supported: number[] = [];
      for (const v of writes) {
        if (writerCount[v]! > MAX_WRITERS_WATCHED) continue;
        for (const g of needersOf.get(v)!) {
          if (g !== w && model.invokedAt[w]! <= model.completedAt[g]!) supported.push(g);
        }
      }
      return supported;
    });
    [this.writesStart, this.writes] = csr(writeLists);
    [this.supportsStart, this.supports] = csr(supportLists);

    this.support = new Int32Array(n);
    for (const g of this.supports) this.support[g]!++;
    this.placed = new Uint8Array(n);
    this.needers = new Int32Array(values.size);
    this.starvedOn = new Int32Array(values.size);
    for (let g = 0; g < n; g++) {
      const need = this.need[g]!;
      if (need === NONE) continue;
      this.needers[need]!++;
      if (this.watched[g] === 1 && this.support[g] === 0) {
        this.starved++;
        this.starvedOn[need]!++;
      }
    }
  }

  /** Operation `i` has been placed. */
  place(i: number): void {
    this.placed[i] = 1;
    const need = this.need[i]!;
    if (need !== NONE) {
      this.needers[need]!--;
      if (this.watched[i] === 1 && this.support[i] === 0) {
        this.starved--;
        this.starvedOn[need]!--;
      }
    }
    for (let k = this.supportsStart[i]!; k < this.supportsStart[i + 1]!; k++) {
      const g = this.supports[k]!;
      if (--this.support[g]! === 0 && this.placed[g] === 0) {
        this.starved++;
        this.starvedOn[this.need[g]!]!++;
      }
    }
  }

  /** Operation `i` has been taken back (the exact reverse of `place`). */
  unplace(i: number): void {
    for (let k = this.supportsStart[i]!; k < this.supportsStart[i + 1]!; k++) {
      const g = this.supports[k]!;
      if (this.support[g]!++ === 0 && this.placed[g] === 0) {
        this.starved--;
        this.starvedOn[this.need[g]!]!--;
      }
    }
    const need = this.need[i]!;
    if (need !== NONE) {
      this.needers[need]!++;
      if (this.watched[i] === 1 && this.support[i] === 0) {
        this.starved++;
        this.starvedOn[need]!++;
      }
    }
    this.placed[i] = 0;
  }

  /** True when operation `i` might write a value that some operation still to be placed needs. */
  isUseful(i: number): boolean {
    for (let k = this.writesStart[i]!; k < this.writesStart[i + 1]!; k++) {
      if (this.needers[this.writes[k]!]! > 0) return true;
    }
    return false;
  }

  /** True when, with the key holding `state`, some operation still to be placed can never be. */
  dead(state: number): boolean {
    if (this.starved === 0) return false;
    // Needers of the value the key holds now need no support while it lasts. (Values interned during
    // the search, by unanswered appends, come after every needed one.)
    const exempt = state < this.starvedOn.length ? this.starvedOn[state]! : 0;
    return this.starved > exempt;
  }
}

/** The needed values operation `i` might write (whether it answered or not). */
function possibleWrites(model: KeyModel, i: number, needed: ReadonlySet<number>): number[] {
  const op = model.ops[i]!;
  const values = model.values;
  const known = (value: string | null): number[] => {
    const id = value === null ? ABSENT : values.lookup(value);
    return id >= 0 && needed.has(id) ? [id] : [];
  };
  switch (op.f) {
    case "put":
      return known(op.input.value);
    case "delete":
      return known(null);
    case "cas":
      return outputOf(op) === false ? [] : known(op.input.value);
    case "append": {
      const answer = outputOf(op);
      if (typeof answer === "string") return known(answer);
      // Unanswered: it writes whatever was there plus its suffix, so anything ending with the suffix.
      const suffix = op.input.suffix;
      const ids: number[] = [];
      for (const id of needed) {
        const value = values.value(id);
        if (value?.endsWith(suffix)) ids.push(id);
      }
      return ids;
    }
    default:
      return [];
  }
}

function csr(lists: readonly number[][]): [Int32Array, Int32Array] {
  const start = new Int32Array(lists.length + 1);
  for (let i = 0; i < lists.length; i++) start[i + 1] = start[i]! + lists[i]!.length;
  return [start, Int32Array.from(lists.flat())];
}

/** The one value an answered `op` needs the key to hold when it takes effect, if there is one. */
export function neededValue(op: Operation): string | null | undefined {
  if (op.completion === INDETERMINATE || !op.completion.ok) return undefined;
  switch (op.f) {
    case "get":
      return op.completion.output;
    case "delete":
      return op.completion.output ? undefined : null;
    case "cas":
      return op.completion.output ? op.input.expected : undefined;
    case "append": {
      const answer = op.completion.output;
      const suffix = op.input.suffix;
      // A prior of "" is also what an absent key gives: two values, so no single exact need.
      if (!answer.endsWith(suffix) || answer.length === suffix.length) return undefined;
      return answer.slice(0, answer.length - suffix.length);
    }
    default:
      return undefined;
  }
}

function outputOf(op: Operation): unknown {
  const c = op.completion;
  return c !== INDETERMINATE && c.ok ? c.output : undefined;
}
