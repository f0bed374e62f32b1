/** A raw connection that sends bytes in chunks and reads until the server closes, with a bound. */
import * as net from "node:net";
import { replyEnd } from "../helpers/redis-server.js";

export interface Exchange {
  /** Everything the server sent. */
  readonly received: Buffer;
  /** The connection ended within the bound. */
  readonly closed: boolean;
  /** A socket error seen on the way (a reset, say), or null. */
  readonly error: string | null;
}

/**
 * Connects, writes `chunks` one event-loop turn apart (so that they tend to arrive as separate reads),
 * half-closes afterwards when `halfClose`, and reads until the connection closes or `timeoutMs` passes.
 * Stops writing once the server has ended its side.
 */
export function exchange(
  port: number,
  chunks: readonly Buffer[],
  options: { halfClose: boolean; timeoutMs: number },
): Promise<Exchange> {
  return new Promise((resolve) => {
    const socket = net.connect(port, "127.0.0.1");
    const parts: Buffer[] = [];
    let error: string | null = null;
    let serverEnded = false;
    const timer = setTimeout(() => finish(false), options.timeoutMs);
    let finished = false;
    const finish = (closed: boolean) => {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      socket.destroy();
      resolve({ received: Buffer.concat(parts), closed, error });
    };
    socket.on("data", (d: Buffer) => parts.push(d));
    socket.on("end", () => {
      serverEnded = true;
    });
    socket.on("error", (err: NodeJS.ErrnoException) => {
      error = err.code ?? err.message;
    });
    socket.on("close", () => finish(true));
    const writeAll = async () => {
      for (const chunk of chunks) {
        if (serverEnded || socket.destroyed) return;
        socket.write(chunk);
        await new Promise((r) => setImmediate(r));
      }
      if (options.halfClose && !serverEnded && !socket.destroyed) socket.end();
    };
    socket.on("connect", () => void writeAll());
  });
}

/** Splits a byte stream into whole RESP replies; `rest` is what is left that is not a whole reply. */
export function splitReplies(bytes: Buffer): { replies: Buffer[]; rest: Buffer } {
  const replies: Buffer[] = [];
  let at = 0;
  for (;;) {
    let end: number;
    try {
      end = replyEnd(bytes, at);
    } catch {
      end = -1;
    }
    if (end < 0) return { replies, rest: bytes.subarray(at) };
    replies.push(bytes.subarray(at, end));
    at = end;
  }
}

/** Cuts `stream` at the given points (taken modulo its length). */
export function cut(stream: Buffer, points: readonly number[]): Buffer[] {
  const at = [...new Set(points.map((p) => p % (stream.length + 1)))].sort((a, b) => a - b);
  const out: Buffer[] = [];
  let from = 0;
  for (const p of at) {
    if (p > from) out.push(stream.subarray(from, p));
    from = Math.max(from, p);
  }
  if (from < stream.length) out.push(stream.subarray(from));
  return out;
}
