/**
 * Reuses the large buffers the WAL writes from, so that a steady stream of batches does not allocate
 * (and later collect) a fresh 64 KiB+ buffer per write. Buffers come in power-of-two size classes; each
 * class keeps at most `perClass` idle buffers. Small sizes go to Node's own allocator, which pools them.
 */
export class BufferPool {
  private readonly idle = new Map<number, Buffer[]>();

  constructor(
    private readonly minPooledBytes = 16 * 1024,
    private readonly maxPooledBytes = 16 * 1024 * 1024,
    private readonly perClass = 4,
  ) {}

  /** A buffer of exactly `size` bytes (a view of a pooled one when large enough to pool). */
  take(size: number): Buffer {
    if (size < this.minPooledBytes || size > this.maxPooledBytes) return Buffer.allocUnsafe(size);
    const cls = sizeClass(size);
    const free = this.idle.get(cls);
    const whole = free && free.length > 0 ? free.pop()! : Buffer.allocUnsafeSlow(cls);
    return whole.subarray(0, size);
  }

  /** Returns a buffer from take(); its contents must no longer be needed by anyone. */
  give(buf: Buffer): void {
    const size = buf.byteLength;
    if (size < this.minPooledBytes || size > this.maxPooledBytes) return;
    const cls = sizeClass(size);
    if (buf.byteOffset !== 0 || buf.buffer.byteLength !== cls) return; // not one of ours
    let free = this.idle.get(cls);
    if (!free) {
      free = [];
      this.idle.set(cls, free);
    }
    if (free.length < this.perClass) free.push(Buffer.from(buf.buffer, 0, cls));
  }
}

function sizeClass(size: number): number {
  return 2 ** Math.ceil(Math.log2(size));
}
