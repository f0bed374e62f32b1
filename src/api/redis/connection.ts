/**
 * One client connection: requests parsed as they arrive, commands started at once (a pipeline of
 * writes goes to raft together), replies written strictly in request order and coalesced into one
 * socket write per turn. A read waits for this connection's earlier writes, so that it sees them.
 * WATCH is a read of the keys' versions; an EXEC after it carries them in its entry (see kv/watch.ts).
 */
import type * as net from "node:net";
import { isReply } from "../../kv/exec/collections.js";
import { BLOCKING_SHAPES, type BlockingShape, parseTimeoutMs } from "../../kv/exec/pops.js";
import { arityOk, hasOverlongKey, lookupCommand, MAX_KEY_BYTES } from "../../kv/exec/table.js";
import { Errors, error, NIL_ARRAY, OK, type Reply, status } from "../../kv/reply.js";
import type { WatchedKey } from "../../kv/watch.js";
import { type Blocked, tookNothing } from "./blocked-clients.js";
import { RespProtocolError } from "./resp/errors.js";
import { ReplyWriter } from "./resp/reply-writer.js";
import { RequestParser } from "./resp/request-parser.js";
import { runServerCommand, SERVER_COMMANDS } from "./server-commands.js";
import type { ServerContext } from "./server-context.js";
import { WatchedKeys } from "./watched-keys.js";
import { writeReply } from "./write-reply.js";

/** What a command produced: a reply now, a reply later, or a reply and then closing. */
type Outcome = Reply | Promise<Reply> | { readonly reply: Reply; readonly close: true };

const NO_AUTH = error("NOAUTH Authentication required.");

export class ClientConnection {
  readonly id: number;
  readonly createdAt = Date.now();
  lastCommandAt = Date.now();
  lastCommand = "NULL";
  name = "";
  authenticated: boolean;
  private readonly parser: RequestParser;
  private readonly writer = new ReplyWriter();
  /** Commands queued by MULTI (null: not in a transaction), and whether one was refused meanwhile. */
  private multi: Buffer[][] | null = null;
  private multiDirty = false;
  private readonly watched = new WatchedKeys();
  /** Replies not yet written, in order (only while one of them is still being computed). */
  private readonly queue: { readonly outcome: Outcome; readonly protocol: 2 | 3 }[] = [];
  private current: 2 | 3 = 2;
  private draining = false;
  private flushScheduled = false;
  private closing = false;
  /** QUIT or a protocol error was seen: later input is ignored. */
  private closeRequested = false;
  /** The client half-closed: it sends nothing more but still reads its replies. */
  private inputEnded = false;
  private lastWrite: Promise<unknown> = Promise.resolve();
  /** WATCH reads still in flight (null: none): a later write of this connection waits for them. */
  private pendingWatch: Promise<unknown> | null = null;
  /**
   * Commands received while a blocking command runs (null: none runs): they wait for it, as in Redis,
   * where a blocked client's later commands are not read until it is served.
   */
  private held: Buffer[][] | null = null;
  /** The wait of the blocking command that runs, once it found nothing to take. */
  private blockedOn: Blocked | null = null;

  constructor(
    readonly socket: net.Socket,
    private readonly ctx: ServerContext,
  ) {
    this.id = ctx.nextClientId();
    this.authenticated = ctx.options.requirepass === "";
    this.parser = new RequestParser(ctx.options.requestLimits);
    socket.on("data", (chunk: Buffer) => this.onData(chunk));
    socket.on("end", () => this.onInputEnd());
    socket.on("close", () => this.blockedOn?.cancel());
  }

  /** The protocol (HELLO) of commands read from now on; a reply goes out in that of its command. */
  get protocol(): 2 | 3 {
    return this.current;
  }

  set protocol(p: 2 | 3) {
    this.current = p;
  }

  get inMulti(): boolean {
    return this.multi !== null;
  }

  /** Bytes of replies not yet handed to the socket, and those the socket holds. */
  get outputBytes(): number {
    return this.writer.pendingBytes + this.socket.writableLength;
  }

  private onData(chunk: Buffer): void {
    if (this.closing) return;
    try {
      // Nothing after QUIT (or a closing error) runs, even if it came in the same chunk.
      this.parser.feed(chunk, (args) => {
        if (this.closeRequested) return;
        if (this.held !== null) this.held.push(args);
        else this.submit(this.execute(args));
      });
    } catch (err) {
      if (!(err instanceof RespProtocolError)) throw err;
      if (this.closeRequested) return;
      // The stream position is lost: answer with the error, as Redis does, and close.
      this.closeRequested = true;
      this.submit({ reply: error(`ERR ${err.message}`), close: true });
      return;
    }
    if (this.queue.length + (this.held?.length ?? 0) > this.ctx.options.maxPipelinedCommands)
      this.socket.pause();
  }

  /**
   * The client sent its last byte (`printf '…' | nc -N` does this): like Redis, answer every complete
   * command it sent (an incomplete last one is dropped), then close. Needs the server's sockets to allow
   * half-open connections: otherwise Node ends ours at once and the replies still being computed are lost.
   */
  private onInputEnd(): void {
    this.inputEnded = true;
    if (this.blockedOn !== null) {
      // As Redis frees a blocked client at EOF: nothing more can come that would end its wait.
      this.closing = true;
      this.socket.destroy();
      return;
    }
    if (!this.draining && this.queue.length === 0 && this.held === null) this.finish();
  }

  /** Writes what is pending and closes our side. */
  private finish(): void {
    if (this.closing) return;
    this.closing = true;
    this.flush();
    this.socket.end();
  }

  private submit(outcome: Outcome): void {
    // A failure of the work behind a reply is an error reply, handled at once (not only when the reply
    // reaches the head of the queue: an unhandled rejection would end the process).
    if (outcome instanceof Promise) outcome = outcome.catch((err: unknown) => internalError(err));
    // HELLO switches the protocol for what follows; earlier replies still pending keep theirs.
    const protocol = this.current;
    if (this.queue.length === 0 && !(outcome instanceof Promise)) {
      this.emit(outcome, protocol);
      return;
    }
    this.queue.push({ outcome, protocol });
    if (!this.draining) void this.drain();
  }

  /** Writes queued replies in order as each becomes ready. */
  private async drain(): Promise<void> {
    this.draining = true;
    while (this.queue.length > 0) {
      const head = this.queue[0]!;
      // A command whose work failed unexpectedly (a store error) answers an error; the connection and
      // the order of its replies go on.
      const done = head.outcome instanceof Promise ? await head.outcome : head.outcome;
      this.queue.shift();
      this.emit(done, head.protocol);
      if (this.queue.length <= this.ctx.options.maxPipelinedCommands && this.socket.isPaused())
        this.socket.resume();
    }
    this.draining = false;
    if (this.inputEnded && this.held === null) this.finish();
  }

  private emit(outcome: Exclude<Outcome, Promise<Reply>>, protocol: 2 | 3): void {
    this.writer.protocol = protocol;
    if ("close" in outcome) {
      writeReply(this.writer, outcome.reply);
      this.finish();
      return;
    }
    writeReply(this.writer, outcome);
    if (this.writer.pendingBytes + this.socket.writableLength > this.ctx.options.maxOutputBytes) {
      // A client that does not read its replies must not hold the server's memory.
      this.ctx.log("closing a client over its output buffer limit", { id: this.id });
      this.closing = true;
      this.socket.destroy();
      return;
    }
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(() => this.flush());
    }
  }

  private flush(): void {
    this.flushScheduled = false;
    const blocks = this.writer.take();
    if (blocks.length === 0 || this.socket.destroyed) return;
    this.socket.cork();
    for (const b of blocks) this.socket.write(b);
    this.socket.uncork();
  }

  private execute(args: Buffer[]): Outcome {
    const name = args[0]!.length > 32 ? "" : args[0]!.toString("latin1").toLowerCase();
    this.lastCommandAt = Date.now();
    this.lastCommand = name;
    if (!this.authenticated && name !== "auth" && name !== "hello" && name !== "quit") return NO_AUTH;
    if (this.multi !== null && !TRANSACTION_CONTROL.has(name)) return this.queueInMulti(name, args);
    switch (name) {
      case "multi":
        if (this.multi !== null) return error("ERR MULTI calls can not be nested");
        this.multi = [];
        this.multiDirty = false;
        return OK;
      case "exec":
        return this.exec();
      case "discard":
        if (this.multi === null) return error("ERR DISCARD without MULTI");
        this.multi = null;
        this.watched.clear();
        return OK;
      case "watch":
        return this.watch(args);
      case "quit":
        this.closeRequested = true;
        return { reply: OK, close: true };
    }
    const kv = lookupCommand(args[0]!);
    if (kv !== undefined) {
      if (!arityOk(kv, args.length)) return Errors.wrongArity(kv.name);
      // Refused here, before raft: an entry LMDB cannot store must never be committed.
      if (hasOverlongKey(kv, args)) return Errors.keyTooLong(MAX_KEY_BYTES);
      const blocking = BLOCKING_SHAPES.get(kv.name);
      if (blocking !== undefined) return this.blocking(args, blocking);
      if (kv.kind === "write") return this.write([args]).then((r) => r[0]!);
      return this.read([args]).then((r) => r[0]!);
    }
    const server = SERVER_COMMANDS.get(name);
    if (server !== undefined) {
      if (!(server.arity >= 0 ? args.length === server.arity : args.length >= -server.arity))
        return Errors.wrongArity(name);
      return runServerCommand(server, this, this.ctx, args);
    }
    return unknownCommand(args);
  }

  private queueInMulti(name: string, args: Buffer[]): Reply {
    const kv = lookupCommand(args[0]!);
    const server = SERVER_COMMANDS.get(name);
    let refusal: Reply | null = null;
    if (kv === undefined && (server === undefined || !server.inMulti)) refusal = unknownCommand(args);
    else if (kv !== undefined && !arityOk(kv, args.length)) refusal = Errors.wrongArity(kv.name);
    else if (kv !== undefined && hasOverlongKey(kv, args)) refusal = Errors.keyTooLong(MAX_KEY_BYTES);
    else if (
      server !== undefined &&
      !(server.arity >= 0 ? args.length === server.arity : args.length >= -server.arity)
    )
      refusal = Errors.wrongArity(name);
    if (refusal !== null) {
      this.multiDirty = true;
      return refusal;
    }
    this.multi!.push(args);
    return status("QUEUED");
  }

  /** UNWATCH (also run inside EXEC, by then after the watched keys were checked). */
  unwatch(): void {
    this.watched.clear();
  }

  /**
   * WATCH: reads the keys' versions, after this connection's earlier writes (its own writes before the
   * WATCH do not abort the EXEC; those after it do, as in Redis).
   */
  private watch(args: Buffer[]): Outcome {
    if (args.length < 2) {
      // Refused before it runs, as Redis's arity check is: inside MULTI that discards the transaction.
      if (this.multi !== null) this.multiDirty = true;
      return Errors.wrongArity("watch");
    }
    if (this.multi !== null) return error("ERR WATCH inside MULTI is not allowed");
    const keys = args.slice(1);
    if (keys.some((k) => k.length > MAX_KEY_BYTES)) return Errors.keyTooLong(MAX_KEY_BYTES);
    const read = this.lastWrite.then(() => this.ctx.backend.watch(keys));
    // A write sent after the WATCH must not reach the store before the WATCH has read it.
    const pending: Promise<unknown> = Promise.allSettled([this.pendingWatch, read]).then(() => {
      if (this.pendingWatch === pending) this.pendingWatch = null;
    });
    this.pendingWatch = pending;
    return this.watched.add(keys, read);
  }

  /** EXEC: the queued data commands as one raft entry (a read-only transaction as one read). */
  private exec(): Outcome {
    if (this.multi === null) return error("ERR EXEC without MULTI");
    const queued = this.multi;
    const dirty = this.multiDirty;
    this.multi = null;
    this.multiDirty = false;
    const watched = this.watched.take();
    if (dirty) return error("EXECABORT Transaction discarded because of previous errors.");
    const data = queued.filter((args) => lookupCommand(args[0]!) !== undefined);
    const writes = data.some((args) => lookupCommand(args[0]!)!.kind === "write");
    const results: Promise<readonly Reply[] | null | Reply> =
      watched !== null
        ? this.execWatched(watched, data, writes)
        : data.length === 0
          ? Promise.resolve([])
          : writes
            ? this.write(data)
            : this.read(data);
    return results.then((replies) => {
      // The watched keys changed: nothing ran, and EXEC answers a null array.
      if (replies === null) return NIL_ARRAY;
      if (!isReplyList(replies)) return replies;
      let next = 0;
      const out = queued.map((args) => {
        if (lookupCommand(args[0]!) !== undefined) return replies[next++]!;
        const server = SERVER_COMMANDS.get(args[0]!.toString("latin1").toLowerCase())!;
        const r = runServerCommand(server, this, this.ctx, args);
        return r instanceof Promise || "close" in r ? error("ERR command not allowed in a transaction") : r;
      });
      return { k: "array", v: out } as Reply;
    });
  }

  /**
   * A transaction with watched keys, once their versions are read and this connection's earlier writes
   * are applied (a write of its own after the WATCH must reach the log before this entry, to abort it).
   */
  private execWatched(
    watched: Promise<WatchedKey[] | null>,
    commands: Buffer[][],
    writes: boolean,
  ): Promise<readonly Reply[] | null | Reply> {
    const p = Promise.all([watched, this.lastWrite]).then(([watches]) =>
      watches === null ? null : this.ctx.backend.execWatched(commands, watches, writes),
    );
    if (writes) this.lastWrite = Promise.allSettled([this.lastWrite, p]).then(() => undefined);
    return p;
  }

  private write(commands: Buffer[][]): Promise<readonly Reply[]> {
    const p =
      this.pendingWatch === null
        ? this.ctx.backend.write(commands)
        : this.pendingWatch.then(() => this.ctx.backend.write(commands));
    // Every earlier write, not only the last: they need not finish in the order they were sent.
    // (Settled to undefined: the chain must not hold on to every earlier reply.)
    this.lastWrite = Promise.allSettled([this.lastWrite, p]).then(() => undefined);
    return p;
  }

  /**
   * A blocking pop: tried once through the log; if it took nothing, the client waits (blocked-clients.ts)
   * and the connection runs nothing else until it is served or times out.
   */
  private blocking(args: Buffer[], shape: BlockingShape): Promise<Reply> {
    this.held = [];
    const attempt = () => this.write([args]).then((r) => r[0]!);
    return attempt()
      .then((first) => {
        // A client gone (closed, reset) during the attempt must not leave a wait behind: it would pop for nobody.
        if (!tookNothing(first) || this.closing || this.inputEnded || this.socket.destroyed) return first;
        // It ran, so its arguments are valid.
        const timeout = parseTimeoutMs(shape.timeout(args));
        if (isReply(timeout)) return timeout;
        this.blockedOn = this.ctx.blocked.block(shape.keys(args), shape.waitsFor, timeout, attempt);
        return this.blockedOn.reply;
      })
      .finally(() => {
        this.blockedOn = null;
        this.release();
      });
  }

  /** Runs the commands held while a blocking command ran, up to the next blocking one. */
  private release(): void {
    const held = this.held;
    this.held = null;
    if (held === null) return;
    for (let i = 0; i < held.length && !this.closeRequested; i++) {
      this.submit(this.execute(held[i]!));
      if (this.held !== null) {
        (this.held as Buffer[][]).push(...held.slice(i + 1));
        return;
      }
    }
    if (this.socket.isPaused() && this.queue.length <= this.ctx.options.maxPipelinedCommands)
      this.socket.resume();
    if (this.inputEnded && !this.draining && this.queue.length === 0) this.finish();
  }

  private read(commands: Buffer[][]): Promise<readonly Reply[]> {
    // After this connection's earlier writes, so that it sees them.
    return this.lastWrite.then(() => this.ctx.backend.read(commands));
  }
}

function internalError(err: unknown): Reply {
  return error(`ERR internal error: ${err instanceof Error ? err.message : String(err)}`);
}

/** Commands that act on the transaction itself, never queued. */
const TRANSACTION_CONTROL = new Set(["exec", "discard", "multi", "watch", "quit"]);

function isReplyList(r: readonly Reply[] | Reply): r is readonly Reply[] {
  return Array.isArray(r);
}

function unknownCommand(args: readonly Buffer[]): Reply {
  const name = args[0]!.toString("latin1").slice(0, 128);
  const rest = args
    .slice(1)
    .map((a) => `'${a.toString("latin1").slice(0, 128)}' `)
    .join("");
  return error(`ERR unknown command '${name}', with args beginning with: ${rest}`);
}
