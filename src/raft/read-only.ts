import type { Message, NodeId } from "./types.js";

export type ReadOnlyOption = "safe" | "lease-based";

interface PendingRead {
  /** The commit index when the request arrived: the read may be served once it is applied. */
  readonly index: number;
  readonly request: Message;
  readonly acks: Map<NodeId, boolean>;
}

/** Turns a request context into a map key without copying the bytes twice. */
export function contextKey(ctx: Uint8Array): string {
  return Buffer.from(ctx.buffer, ctx.byteOffset, ctx.byteLength).toString("latin1");
}

/**
 * Read-index requests a leader has not yet confirmed with a quorum of heartbeat answers, in arrival
 * order. Confirming a request confirms every request that came before it.
 */
export class ReadOnly {
  private readonly pending = new Map<string, PendingRead>();
  private queue: string[] = [];

  constructor(readonly option: ReadOnlyOption) {}

  get size(): number {
    return this.queue.length;
  }

  /** Records a request; a context already pending is ignored (the caller's retry of the same read). */
  addRequest(index: number, request: Message): void {
    const key = contextKey(request.context!);
    if (this.pending.has(key)) return;
    this.pending.set(key, { index, request, acks: new Map() });
    this.queue.push(key);
  }

  /** Records a heartbeat answer for a context; returns the acknowledgements so far, if it is pending. */
  recvAck(id: NodeId, context: Uint8Array): ReadonlyMap<NodeId, boolean> | undefined {
    const p = this.pending.get(contextKey(context));
    if (!p) return undefined;
    p.acks.set(id, true);
    return p.acks;
  }

  /** Removes and returns every request up to and including the one with this context. */
  advance(context: Uint8Array): { index: number; request: Message }[] {
    const key = contextKey(context);
    const at = this.queue.indexOf(key);
    if (at < 0) return [];
    const done = this.queue.slice(0, at + 1);
    this.queue = this.queue.slice(at + 1);
    const out: { index: number; request: Message }[] = [];
    for (const k of done) {
      const p = this.pending.get(k)!;
      this.pending.delete(k);
      out.push({ index: p.index, request: p.request });
    }
    return out;
  }

  lastPendingContext(): Uint8Array | null {
    if (this.queue.length === 0) return null;
    return this.pending.get(this.queue[this.queue.length - 1]!)!.request.context;
  }
}
