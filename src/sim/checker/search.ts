/**
 * The linearizability search for one key: Wing & Gong's depth-first search with Lowe's memo, the
 * algorithm Porcupine uses, with refinements for reads and for operations that never returned.
 *
 * Every answered operation becomes two events, its call and its return, in one list sorted by time.
 * The search walks the list from the front: at a call, it tries to linearize that operation next (the
 * model must accept it from the current value, and the resulting pair of linearized set and value
 * must not be known dead), and if so lifts both of its events out of the list and starts again from
 * the front. Reaching a return means that operation should already have been linearized, because
 * everything still in the list before it was tried. The search then tries the unanswered operations
 * called before that return, and when none helps, it backtracks: it undoes the last linearization and
 * tries the next candidate after it. The history is linearizable when every answered operation has
 * been linearized; it is not when the search backtracks past its first choice.
 *
 * An unanswered operation (indeterminate) has no return and no known output: the model accepts it
 * from any value, at any point after its call, or never. Those operations live in a second list, by
 * call time, tried only after the answered candidates: first those that would write a value some
 * pending answer needs, then the rest. When every answered operation is placed, the unanswered ones
 * left take effect at the end or never, which nobody can observe.
 *
 * What keeps the search small, each sound on its own (the reasons are by each):
 * - a pending read whose answer fits the value now is placed at once, without branching (below);
 * - a pair where some pending answer can no longer be explained is dead at once (obligations.ts);
 * - an unanswered write that could only get in the way is not tried (dominance.ts);
 * - the memo also kills a pair when the same pair with fewer unanswered operations placed died
 *   (explored.ts). It records a pair when the search leaves it, every continuation explored: recording
 *   on entry, as Porcupine does, would let a pair on the current path prune its own descendants under
 *   that subset rule.
 *
 * Events with equal times sort calls first, so an operation that returns at t and one invoked at t
 * count as concurrent: the checker reports only violations the timestamps prove.
 */

import { SeededRandom } from "../../raft/rand.js";
import { Dominance } from "./dominance.js";
import { ExploredStates } from "./explored.js";
import type { KeyModel } from "./model.js";
import { Obligations } from "./obligations.js";

export interface SearchLimits {
  /** Dead pairs the memo may hold before the search gives up. */
  readonly maxStates: number;
  /** Loop iterations before the search gives up: a deterministic stand-in for a time budget. */
  readonly maxSteps: number;
  /** Bytes the memo may take before the search gives up (a pair holds a bit per operation of the key). */
  readonly maxMemoBytes: number;
}

export type SearchVerdict = "linearizable" | "violation" | "unknown";

/** Which bound an `unknown` verdict ran into. */
export type LimitReached = "steps" | "states" | "memory";

export interface SearchOutcome {
  readonly verdict: SearchVerdict;
  readonly steps: number;
  /** Pairs of (linearized set, state) the search left dead: the memo's size. */
  readonly states: number;
  /**
   * Linearizable: a witness, the order of operations (indexes into the model's `ops`) that explains
   * the history; unanswered operations not in it may be taken never to have happened.
   * Violation, when asked for with `trackLongest`: the longest consistent order the search found.
   * Otherwise empty.
   */
  readonly order: readonly number[];
  readonly limit?: LimitReached;
}

/** Seed of the per-operation hash values: fixed, so that every run explores alike. */
const ZOBRIST_SEED = 0x11ea_71ab;

/** Node 0 heads both lists; operation i has its call at node 2i+1 and (if answered) its return at 2i+2. */
const HEAD = 0;
const NONE = -1;

/** Where the search is among a pair's candidates: answered calls, then two passes over unanswered ones. */
const ANSWERED = 0;
const OPEN_USEFUL = 1;
const OPEN_OTHERS = 2;
/** A frame entered by a forced move. */
const FORCED = 3;

export function searchKey(model: KeyModel, limits: SearchLimits, trackLongest = false): SearchOutcome {
  const n = model.size;
  const returned = model.returned;
  // Each class of operation gets dense bit positions of its own.
  const slot = new Int32Array(n);
  let answeredCount = 0;
  let openCount = 0;
  for (let i = 0; i < n; i++) slot[i] = returned[i] === 1 ? answeredCount++ : openCount++;
  if (answeredCount === 0) return { verdict: "linearizable", steps: 0, states: 0, order: [] };

  const answeredWords = Math.ceil(answeredCount / 32);
  const openWords = Math.ceil(openCount / 32);
  const memoBytesLimit = Math.floor(
    limits.maxMemoBytes / ExploredStates.bytesPerEntry(answeredWords, openWords),
  );
  const maxStates = Math.min(limits.maxStates, memoBytesLimit);
  const stateLimit: LimitReached = limits.maxStates <= memoBytesLimit ? "states" : "memory";

  const { next, prev, nextOpen, prevOpen } = eventLists(model);
  const zobristA = new Uint32Array(n);
  const zobristB = new Uint32Array(n);
  const rand = new SeededRandom(ZOBRIST_SEED);
  for (let i = 0; i < n; i++) {
    zobristA[i] = rand.next32();
    zobristB[i] = rand.next32();
  }

  const answered = new Uint32Array(answeredWords);
  const open = new Uint32Array(openWords);
  const obligations = new Obligations(model);
  const dominance = new Dominance(model);
  const explored = new ExploredStates(answeredWords, openWords, Math.min(maxStates, 1 << 12));
  const stackOp = new Int32Array(n);
  const stackState = new Int32Array(n);
  /** The blocking return time of the frame below, for a frame entered from the unanswered list. */
  const stackBlockAt = new Float64Array(n);
  /** The phase in which the frame's operation was taken, to resume there; FORCED: no other branch. */
  const stackPhase = new Uint8Array(n);
  let depth = 0;
  let state = model.initialState;
  // Hashes of the two linearized sets, kept up to date as bits are toggled (Zobrist hashing).
  const answeredHash = { a: 0, b: 0 };
  const openHash = { a: 0, b: 0 };
  let steps = 0;
  let longest: number[] = [];

  /** Adds `op` to the linearized sets, or takes it out again (the sets are toggled bit by bit). */
  const toggle = (op: number): void => {
    const s = slot[op]!;
    if (returned[op] === 1) {
      answered[s >>> 5]! ^= 1 << (s & 31);
      answeredHash.a ^= zobristA[op]!;
      answeredHash.b ^= zobristB[op]!;
    } else {
      open[s >>> 5]! ^= 1 << (s & 31);
      openHash.a ^= zobristA[op]!;
      openHash.b ^= zobristB[op]!;
    }
  };
  const place = (op: number): void => {
    toggle(op);
    obligations.place(op);
    dominance.place(op);
  };
  const unplace = (op: number): void => {
    toggle(op);
    obligations.unplace(op);
    dominance.unplace(op);
  };
  const lift = (op: number): void => {
    if (returned[op] === 0) {
      const node = 2 * op + 1;
      const p = prevOpen[node]!;
      const q = nextOpen[node]!;
      nextOpen[p] = q;
      if (q !== NONE) prevOpen[q] = p;
      return;
    }
    for (let node = 2 * op + 1; node <= 2 * op + 2; node++) {
      const p = prev[node]!;
      const q = next[node]!;
      next[p] = q;
      if (q !== NONE) prev[q] = p;
    }
  };
  // Dancing links: a lifted node keeps its own links, so putting nodes back in the reverse order of
  // their removal restores the list exactly.
  const unlift = (op: number): void => {
    if (returned[op] === 0) {
      const node = 2 * op + 1;
      const q = nextOpen[node]!;
      nextOpen[prevOpen[node]!] = node;
      if (q !== NONE) prevOpen[q] = node;
      return;
    }
    for (let node = 2 * op + 2; node >= 2 * op + 1; node--) {
      const q = next[node]!;
      next[prev[node]!] = node;
      if (q !== NONE) prev[q] = node;
    }
  };
  const done = (verdict: SearchVerdict, limit?: LimitReached): SearchOutcome => {
    const order = verdict === "linearizable" ? Array.from(stackOp.subarray(0, depth)) : longest;
    const outcome = { verdict, steps, states: explored.size, order };
    return limit === undefined ? outcome : { ...outcome, limit };
  };

  const push = (op: number, forced: boolean): void => {
    stackOp[depth] = op;
    stackState[depth] = state;
    stackBlockAt[depth] = blockAt;
    stackPhase[depth] = forced ? FORCED : phase;
    depth++;
    if (trackLongest && depth > longest.length) longest = Array.from(stackOp.subarray(0, depth));
    lift(op);
  };

  if (obligations.dead(state)) return done("violation");
  let node = NONE;
  /** Just arrived at a new pair: look for a forced move before branching. */
  let entering = true;
  let phase = ANSWERED;
  /** In the unanswered passes: the time of the first answered operation not yet linearized. */
  let blockAt = 0;
  for (;;) {
    if (++steps > limits.maxSteps) return done("unknown", "steps");
    if (entering) {
      entering = false;
      // A forced move: an answered candidate that changes nothing wherever it goes (a read, a failed
      // swap; see KeyModel.readOnly) and whose answer fits the value now. Any linearization from here
      // can be reordered to place it first: nothing still pending must precede it in real time, and
      // since it changes nothing, every other answer stays the same. So it is the only branch worth
      // taking, and if it fails, this pair is dead.
      let forced = NONE;
      for (let v = next[HEAD]!; v !== NONE && (v & 1) === 1; v = next[v]!) {
        steps++;
        const op = (v - 1) >>> 1;
        if (model.readOnly[op] === 1 && model.step(op, state) === state) {
          forced = op;
          break;
        }
      }
      if (forced !== NONE) {
        place(forced);
        if (!obligations.dead(state) && !explored.covers(answered, open, answeredHash, openHash, state)) {
          push(forced, true);
          entering = true;
          continue;
        }
        unplace(forced);
        phase = OPEN_OTHERS; // with node NONE: nothing left to try here
        node = NONE;
        continue;
      }
      phase = ANSWERED;
      node = next[HEAD]!;
      continue;
    }

    if (phase === ANSWERED) {
      if (node === NONE) return done("linearizable");
      if ((node & 1) === 0) {
        // A return: every answered candidate has been tried. Now the unanswered operations called
        // before it: first those that would write a value some pending answer needs, then the rest.
        blockAt = model.completedAt[(node - 2) >>> 1]!;
        phase = OPEN_USEFUL;
        node = nextOpen[HEAD]!;
        continue;
      }
    } else {
      if (node === NONE || model.invokedAt[(node - 1) >>> 1]! > blockAt) {
        if (phase === OPEN_USEFUL) {
          phase = OPEN_OTHERS;
          node = nextOpen[HEAD]!;
          continue;
        }
        // Every candidate from this pair failed: record it dead and undo the step that led here.
        if (depth === 0) return done("violation");
        explored.add(answered, open, answeredHash, openHash, state);
        if (explored.size > maxStates) return done("unknown", stateLimit);
        depth--;
        const op = stackOp[depth]!;
        state = stackState[depth]!;
        unplace(op);
        unlift(op);
        const taken = stackPhase[depth]!;
        if (taken === FORCED) {
          // The forced move was the only branch: the pair below is dead too.
          phase = OPEN_OTHERS;
          node = NONE;
        } else {
          phase = taken;
          blockAt = stackBlockAt[depth]!;
          node = taken === ANSWERED ? next[2 * op + 1]! : nextOpen[2 * op + 1]!;
        }
        continue;
      }
      if (obligations.isUseful((node - 1) >>> 1) !== (phase === OPEN_USEFUL)) {
        node = nextOpen[node]!;
        continue;
      }
    }

    const op = (node - 1) >>> 1;
    const after = model.step(op, state);
    if (after >= 0 && (phase === ANSWERED || !dominance.dominated(op, state, after))) {
      place(op);
      if (!obligations.dead(after) && !explored.covers(answered, open, answeredHash, openHash, after)) {
        push(op, false);
        state = after;
        entering = true;
        continue;
      }
      unplace(op);
    }
    node = phase === ANSWERED ? next[node]! : nextOpen[node]!;
  }
}

interface EventLists {
  /** Calls and returns of answered operations, by time, calls first among equal times. */
  readonly next: Int32Array;
  readonly prev: Int32Array;
  /** Calls of unanswered operations, by time. */
  readonly nextOpen: Int32Array;
  readonly prevOpen: Int32Array;
}

function eventLists(model: KeyModel): EventLists {
  const n = model.size;
  const time = (node: number): number =>
    (node & 1) === 1 ? model.invokedAt[(node - 1) >>> 1]! : model.completedAt[(node - 2) >>> 1]!;
  const byTime = (x: number, y: number): number => {
    const tx = time(x);
    const ty = time(y);
    if (tx !== ty) return tx < ty ? -1 : 1;
    const callX = x & 1;
    const callY = y & 1;
    if (callX !== callY) return callY - callX;
    return x - y;
  };
  const answered: number[] = [];
  const unanswered: number[] = [];
  for (let i = 0; i < n; i++) {
    if (model.returned[i] === 1) answered.push(2 * i + 1, 2 * i + 2);
    else unanswered.push(2 * i + 1);
  }
  const link = (nodes: number[]): { next: Int32Array; prev: Int32Array } => {
    nodes.sort(byTime);
    const next = new Int32Array(2 * n + 1).fill(NONE);
    const prev = new Int32Array(2 * n + 1).fill(NONE);
    let last = HEAD;
    for (const node of nodes) {
      next[last] = node;
      prev[node] = last;
      last = node;
    }
    return { next, prev };
  };
  const a = link(answered);
  const u = link(unanswered);
  return { next: a.next, prev: a.prev, nextOpen: u.next, prevOpen: u.prev };
}
