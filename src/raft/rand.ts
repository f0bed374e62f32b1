/**
 * Seeded randomness. The core never calls Math.random: a node's election timeouts are drawn from a
 * source the caller seeds, so that any run can be replayed.
 */
export interface RandomSource {
  /** A uniformly distributed integer in [0, n). */
  intn(n: number): number;
}

/** SplitMix32-style generator: tiny, fast, and good enough to spread election timeouts. */
export class SeededRandom implements RandomSource {
  private state: number;

  constructor(seed: number) {
    this.state = seed >>> 0 || 0x9e3779b9;
  }

  next32(): number {
    this.state = (this.state + 0x9e3779b9) >>> 0;
    let z = this.state;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
    return (z ^ (z >>> 16)) >>> 0;
  }

  intn(n: number): number {
    if (n <= 0) return 0;
    return Math.floor((this.next32() / 0x1_0000_0000) * n);
  }
}
