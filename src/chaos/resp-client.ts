/**
 * A minimal Redis client for the chaos run: one connection, one call at a time, each call a pipeline
 * of commands answered in order. Any failure (timeout, lost connection, a malformed reply) ends the
 * connection, because the replies still due on it can no longer be matched to their commands; the
 * caller opens a new one. That is exactly what a history needs: a call either has all its answers or
 * is known to have none.
 */
import * as net from "node:net";
import { RespReplyFormatError } from "../api/redis/resp/errors.js";
import { ReplyParser, type RespReply } from "../api/redis/resp/reply-parser.js";
import { CallTimeoutError, ConnectionLostError } from "./errors.js";

/** Largest reply the chaos run accepts: its values are short; anything near this is a bug. */
const MAX_BULK_BYTES = 1024 * 1024;

interface WaitingCall {
  readonly count: number;
  readonly replies: RespReply[];
  readonly resolve: (replies: RespReply[]) => void;
  readonly reject: (err: Error) => void;
  readonly timer: NodeJS.Timeout;
}

export class RespClient {
  private readonly parser = new ReplyParser({ maxBulkBytes: MAX_BULK_BYTES });
  private waiting: WaitingCall | null = null;
  private failure: Error | null = null;

  private constructor(private readonly socket: net.Socket) {
    socket.setNoDelay(true);
    socket.on("data", (chunk: Buffer) => this.onData(chunk));
    socket.on("error", (err) => this.fail(new ConnectionLostError(err.message)));
    socket.on("close", () => this.fail(new ConnectionLostError("connection closed")));
  }

  /** Connects to host:port, or rejects with `ConnectionLostError` (refused, or not within `timeoutMs`). */
  static connect(host: string, port: number, timeoutMs: number): Promise<RespClient> {
    return new Promise((resolve, reject) => {
      const socket = net.connect(port, host);
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new ConnectionLostError(`connect to ${host}:${port}: no answer within ${timeoutMs} ms`));
      }, timeoutMs);
      socket.once("connect", () => {
        clearTimeout(timer);
        socket.removeAllListeners("error");
        resolve(new RespClient(socket));
      });
      socket.once("error", (err) => {
        clearTimeout(timer);
        socket.destroy();
        reject(new ConnectionLostError(`connect to ${host}:${port}: ${err.message}`));
      });
    });
  }

  get closed(): boolean {
    return this.failure !== null;
  }

  /**
   * Sends the commands as one pipeline; resolves with one reply per command. Rejects with
   * `CallTimeoutError` or `ConnectionLostError`, after which this client is closed.
   */
  call(commands: readonly (readonly string[])[], timeoutMs: number): Promise<RespReply[]> {
    if (this.failure !== null) return Promise.reject(this.failure);
    if (this.waiting !== null) return Promise.reject(new Error("RespClient: one call at a time"));
    if (commands.length === 0) return Promise.resolve([]);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => this.fail(new CallTimeoutError(timeoutMs)), timeoutMs);
      this.waiting = { count: commands.length, replies: [], resolve, reject, timer };
      this.socket.write(encodeCommands(commands));
    });
  }

  close(): void {
    this.fail(new ConnectionLostError("closed by the client"));
  }

  private onData(chunk: Buffer): void {
    let replies: RespReply[];
    try {
      replies = this.parser.feed(chunk);
    } catch (err) {
      this.fail(new ConnectionLostError(err instanceof RespReplyFormatError ? err.message : String(err)));
      return;
    }
    for (const reply of replies) {
      const waiting = this.waiting;
      if (waiting === null) {
        this.fail(new ConnectionLostError("a reply arrived that no command asked for"));
        return;
      }
      waiting.replies.push(reply);
      if (waiting.replies.length === waiting.count) {
        clearTimeout(waiting.timer);
        this.waiting = null;
        waiting.resolve(waiting.replies);
      }
    }
  }

  private fail(err: Error): void {
    if (this.failure === null) this.failure = err;
    this.socket.destroy();
    const waiting = this.waiting;
    if (waiting !== null) {
      this.waiting = null;
      clearTimeout(waiting.timer);
      waiting.reject(err);
    }
  }
}

/** Commands as RESP multibulk requests. */
export function encodeCommands(commands: readonly (readonly string[])[]): Buffer {
  const parts: string[] = [];
  for (const args of commands) {
    parts.push(`*${args.length}\r\n`);
    for (const a of args) parts.push(`$${Buffer.byteLength(a)}\r\n${a}\r\n`);
  }
  return Buffer.from(parts.join(""));
}
