import { invariant } from "../errors.js";

/**
 * The append messages sent to one follower and not yet acknowledged, as a ring buffer of (last index,
 * bytes). Bounds the replication pipeline by message count and by bytes.
 */
export class Inflights {
  private start = 0;
  private count = 0;
  private bytes = 0;
  private readonly indexes: Float64Array;
  private readonly sizes: Float64Array;

  constructor(
    readonly maxCount: number,
    /** 0 means no byte bound. */
    readonly maxBytes: number,
  ) {
    invariant(maxCount > 0, "inflight window must hold at least one message");
    this.indexes = new Float64Array(maxCount);
    this.sizes = new Float64Array(maxCount);
  }

  get length(): number {
    return this.count;
  }

  get totalBytes(): number {
    return this.bytes;
  }

  /** Records an append whose last entry is `index`. Indexes must increase. */
  add(index: number, bytes: number): void {
    invariant(!this.full(), "cannot add to a full inflight window");
    const next = (this.start + this.count) % this.maxCount;
    if (this.count > 0) {
      const prev = this.indexes[(next + this.maxCount - 1) % this.maxCount]!;
      invariant(index > prev, () => `inflight index ${index} not above previous ${prev}`);
    }
    this.indexes[next] = index;
    this.sizes[next] = bytes;
    this.count++;
    this.bytes += bytes;
  }

  /** Frees every message whose last index is ≤ index (the follower acknowledged up to it). */
  freeLE(index: number): void {
    while (this.count > 0 && this.indexes[this.start]! <= index) {
      this.bytes -= this.sizes[this.start]!;
      this.start = (this.start + 1) % this.maxCount;
      this.count--;
    }
    if (this.count === 0) {
      this.start = 0;
      this.bytes = 0;
    }
  }

  /** Frees the oldest message, if any: lets a window full of lost appends make room for one probe. */
  freeFirstOne(): void {
    if (this.count > 0) this.freeLE(this.indexes[this.start]!);
  }

  full(): boolean {
    return this.count === this.maxCount || (this.maxBytes > 0 && this.bytes >= this.maxBytes);
  }

  reset(): void {
    this.start = 0;
    this.count = 0;
    this.bytes = 0;
  }
}
