/**
 * The search's memo: the (linearized set, model state) pairs whose every continuation has been
 * explored and failed. Reaching such a pair again, by another order of the same operations, can
 * only fail again, so the search backs off (Lowe's refinement of Wing & Gong, as Porcupine uses it).
 *
 * One refinement for operations that never returned. Such an operation may take effect at any point
 * or never, so a pair that has it linearized can do nothing that the same pair without it cannot: the
 * latter may still leave it out. So a pair is also dead when a pair with the same state, the same
 * answered operations and a subset of the unanswered ones has failed. Without this, every subset of
 * the unanswered writes pending at a time could be explored again.
 *
 * An open hash table kept in flat typed arrays, each entry holding both sets in one pool of words,
 * chained by index, so recording a pair allocates nothing until the table has to grow. Entries are
 * chained twice: by the whole pair (an exact match is found at once) and by the answered set and
 * state alone (for the subset rule, which looks at the most recent MAX_SUBSET_SCAN such entries only:
 * with many unanswered operations there can be thousands, and the memo is only ever a shortcut).
 * Matching compares the stored sets word by word, never trusting a hash alone: a false match would
 * prune a path that might have been the only linearization.
 */

/** Bytes one entry costs besides its sets' words: three hashes, a state, two links, four buckets. */
const ENTRY_OVERHEAD_BYTES = 40;

/** How many entries of the same answered set and state the subset rule compares against. */
const MAX_SUBSET_SCAN = 256;

/** Two 32-bit hashes of a set: the caller keeps them up to date as bits are toggled. */
export interface SetHash {
  readonly a: number;
  readonly b: number;
}

export class ExploredStates {
  private readonly stride: number;
  private capacity: number;
  private mask: number;
  /** Index + 1 of the first entry of each bucket; 0 = empty. Twice the capacity: load at most 1/2. */
  private exactBuckets: Int32Array;
  private groupBuckets: Int32Array;
  /** Index + 1 of the next entry in the same bucket; 0 = end. */
  private exactChain: Int32Array;
  private groupChain: Int32Array;
  /** Per entry: the group hash (answered set and state), and the exact hash's two halves. */
  private groupHash: Uint32Array;
  private exactHashA: Uint32Array;
  private exactHashB: Uint32Array;
  private states: Int32Array;
  /** Per entry: `answeredWords` words of the answered set, then `openWords` of the unanswered one. */
  private sets: Uint32Array;
  private count = 0;

  constructor(
    private readonly answeredWords: number,
    private readonly openWords: number,
    initialCapacity = 1024,
  ) {
    this.stride = answeredWords + openWords;
    this.capacity = Math.max(16, 1 << Math.ceil(Math.log2(initialCapacity)));
    this.mask = this.capacity * 2 - 1;
    this.exactBuckets = new Int32Array(this.capacity * 2);
    this.groupBuckets = new Int32Array(this.capacity * 2);
    this.exactChain = new Int32Array(this.capacity);
    this.groupChain = new Int32Array(this.capacity);
    this.groupHash = new Uint32Array(this.capacity);
    this.exactHashA = new Uint32Array(this.capacity);
    this.exactHashB = new Uint32Array(this.capacity);
    this.states = new Int32Array(this.capacity);
    this.sets = new Uint32Array(this.capacity * this.stride);
  }

  get size(): number {
    return this.count;
  }

  /** What one entry costs, so that callers can bound memory as well as entries. */
  static bytesPerEntry(answeredWords: number, openWords: number): number {
    return ENTRY_OVERHEAD_BYTES + 4 * (answeredWords + openWords);
  }

  /**
   * True when a recorded pair makes (`answered`, `open`, `state`) dead: the same pair, or (among the
   * latest few) one with the same state and answered set and an unanswered set contained in `open`.
   */
  covers(
    answered: Uint32Array,
    open: Uint32Array,
    answeredHash: SetHash,
    openHash: SetHash,
    state: number,
  ): boolean {
    const ea = exactA(answeredHash, openHash, state);
    const eb = exactB(answeredHash, openHash, state);
    for (let e = this.exactBuckets[ea & this.mask]!; e !== 0; e = this.exactChain[e - 1]!) {
      const i = e - 1;
      if (this.exactHashB[i] !== eb || this.exactHashA[i] !== ea || this.states[i] !== state) continue;
      if (this.holds(i, answered, open, false)) return true;
    }
    if (this.openWords === 0) return false;
    const g = group(answeredHash, state);
    let scanned = 0;
    for (
      let e = this.groupBuckets[g & this.mask]!;
      e !== 0 && scanned < MAX_SUBSET_SCAN;
      e = this.groupChain[e - 1]!
    ) {
      const i = e - 1;
      if (this.groupHash[i] !== g || this.states[i] !== state) continue;
      scanned++;
      if (this.holds(i, answered, open, true)) return true;
    }
    return false;
  }

  /** Records a pair whose every continuation failed. */
  add(
    answered: Uint32Array,
    open: Uint32Array,
    answeredHash: SetHash,
    openHash: SetHash,
    state: number,
  ): void {
    if (this.count === this.capacity) this.grow();
    const i = this.count++;
    this.groupHash[i] = group(answeredHash, state);
    this.exactHashA[i] = exactA(answeredHash, openHash, state);
    this.exactHashB[i] = exactB(answeredHash, openHash, state);
    this.states[i] = state;
    const base = i * this.stride;
    this.sets.set(answered, base);
    this.sets.set(open, base + this.answeredWords);
    if (this.openWords > 0) this.unlinkCovered(i, answered, open);
    this.link(i);
  }

  /**
   * Takes the entries the new entry `i` makes redundant for the subset rule (same group, a superset
   * of its unanswered set) out of the group chain, among the latest few, so that the chain keeps the
   * entries that kill most. They stay in the exact chain.
   */
  private unlinkCovered(i: number, answered: Uint32Array, open: Uint32Array): void {
    const g = this.groupHash[i]!;
    const state = this.states[i]!;
    let previous = -1;
    let scanned = 0;
    for (let e = this.groupBuckets[g & this.mask]!; e !== 0 && scanned < MAX_SUBSET_SCAN; ) {
      const j = e - 1;
      const after = this.groupChain[j]!;
      if (this.groupHash[j] === g && this.states[j] === state) {
        scanned++;
        if (this.containsAll(j, answered, open)) {
          if (previous < 0) this.groupBuckets[g & this.mask] = after;
          else this.groupChain[previous] = after;
          e = after;
          continue;
        }
      }
      previous = j;
      e = after;
    }
  }

  /** Whether entry `j` has this answered set and an unanswered set containing `open`. */
  private containsAll(j: number, answered: Uint32Array, open: Uint32Array): boolean {
    const base = j * this.stride;
    for (let w = 0; w < this.answeredWords; w++) if (this.sets[base + w] !== answered[w]) return false;
    const openBase = base + this.answeredWords;
    for (let w = 0; w < this.openWords; w++) if ((open[w]! & ~this.sets[openBase + w]!) !== 0) return false;
    return true;
  }

  /** Whether entry `i` has this answered set, and this unanswered set (or, `subset`, one inside it). */
  private holds(i: number, answered: Uint32Array, open: Uint32Array, subset: boolean): boolean {
    const base = i * this.stride;
    for (let w = 0; w < this.answeredWords; w++) if (this.sets[base + w] !== answered[w]) return false;
    const openBase = base + this.answeredWords;
    for (let w = 0; w < this.openWords; w++) {
      const stored = this.sets[openBase + w]!;
      if (subset ? (stored & ~open[w]!) !== 0 : stored !== open[w]) return false;
    }
    return true;
  }

  private link(i: number): void {
    const e = this.exactHashA[i]! & this.mask;
    this.exactChain[i] = this.exactBuckets[e]!;
    this.exactBuckets[e] = i + 1;
    const g = this.groupHash[i]! & this.mask;
    this.groupChain[i] = this.groupBuckets[g]!;
    this.groupBuckets[g] = i + 1;
  }

  private grow(): void {
    const capacity = this.capacity * 2;
    const grownU = (a: Uint32Array): Uint32Array => {
      const b = new Uint32Array(a.length * 2);
      b.set(a);
      return b;
    };
    this.groupHash = grownU(this.groupHash);
    this.exactHashA = grownU(this.exactHashA);
    this.exactHashB = grownU(this.exactHashB);
    this.sets = grownU(this.sets);
    const states = new Int32Array(capacity);
    states.set(this.states);
    this.states = states;
    this.capacity = capacity;
    this.mask = capacity * 2 - 1;
    this.exactBuckets = new Int32Array(capacity * 2);
    this.groupBuckets = new Int32Array(capacity * 2);
    this.exactChain = new Int32Array(capacity);
    this.groupChain = new Int32Array(capacity);
    // Relinking in insertion order keeps every chain newest first.
    for (let i = 0; i < this.count; i++) this.link(i);
  }
}

function group(answered: SetHash, state: number): number {
  return (answered.a ^ Math.imul(state + 1, 0x9e3779b1)) >>> 0;
}

function exactA(answered: SetHash, open: SetHash, state: number): number {
  return (answered.a ^ open.b ^ Math.imul(state + 1, 0x9e3779b1)) >>> 0;
}

function exactB(answered: SetHash, open: SetHash, state: number): number {
  return (answered.b ^ open.a ^ Math.imul(state + 1, 0x85ebca6b)) >>> 0;
}
