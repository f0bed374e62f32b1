/**
 * A real redis-server for differential tests (Debian's `redis-server`; CI installs it), on a free
 * loopback port, with persistence off, and a raw connection that returns each reply's exact bytes.
 */
import { type ChildProcess, spawn } from "node:child_process";
import * as net from "node:net";
import { freePort } from "../../src/net/loopback-ports.js";

export interface RawRedis {
  /** Sends one command; resolves with its reply's RESP bytes, exactly as the server wrote them. */
  call(args: readonly (string | Buffer)[]): Promise<Buffer>;
  close(): Promise<void>;
}

export async function startRedisServer(): Promise<{ port: number; stop: () => Promise<void> }> {
  const port = await freePort();
  const child: ChildProcess = spawn(
    "redis-server",
    ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--daemonize", "no"],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  const failed = new Promise<never>((_, reject) => {
    child.once("error", (err) =>
      reject(new Error(`could not start redis-server (apt-get install -y redis-server): ${err.message}`)),
    );
  });
  // Ready once it accepts a connection.
  for (let attempt = 0; ; attempt++) {
    const ok = await Promise.race([
      failed,
      new Promise<boolean>((resolve) => {
        const c = net.connect(port, "127.0.0.1", () => {
          c.destroy();
          resolve(true);
        });
        c.once("error", () => resolve(false));
      }),
    ]);
    if (ok) break;
    if (attempt > 200) throw new Error("redis-server did not start listening");
    await new Promise((r) => setTimeout(r, 25));
  }
  return {
    port,
    stop: () =>
      new Promise<void>((resolve) => {
        child.once("exit", () => resolve());
        child.kill("SIGKILL");
      }),
  };
}

/** The end of the RESP2/RESP3 reply starting at `at`, or -1 when it is not all here. */
export function replyEnd(b: Buffer, at: number): number {
  if (at >= b.length) return -1;
  const eol = b.indexOf("\r\n", at);
  if (eol < 0) return -1;
  const head = b.toString("latin1", at + 1, eol);
  switch (String.fromCharCode(b[at]!)) {
    case "+":
    case "-":
    case ":":
    case "_":
    case ",":
    case "#":
      return eol + 2;
    case "$":
    case "=": {
      const n = Number(head);
      if (n < 0) return eol + 2;
      return b.length >= eol + 2 + n + 2 ? eol + 2 + n + 2 : -1;
    }
    case "*":
    case "~":
    case ">":
    case "%": {
      let n = Number(head);
      if (n < 0) return eol + 2;
      if (b[at] === 0x25) n *= 2;
      let p = eol + 2;
      for (let i = 0; i < n; i++) {
        p = replyEnd(b, p);
        if (p < 0) return -1;
      }
      return p;
    }
    default:
      throw new Error(`unexpected reply byte ${b[at]} at ${at}`);
  }
}

export async function connectRaw(port: number): Promise<RawRedis> {
  const socket = net.connect(port, "127.0.0.1");
  await new Promise<void>((resolve, reject) => {
    socket.once("connect", resolve);
    socket.once("error", reject);
  });
  let buf = Buffer.alloc(0);
  const waiting: Array<(b: Buffer) => void> = [];
  socket.on("data", (chunk: Buffer) => {
    buf = Buffer.concat([buf, chunk]);
    for (;;) {
      if (waiting.length === 0) return;
      const end = replyEnd(buf, 0);
      if (end < 0) return;
      const reply = buf.subarray(0, end);
      buf = buf.subarray(end);
      waiting.shift()!(Buffer.from(reply));
    }
  });
  return {
    call(args) {
      const parts: Buffer[] = [Buffer.from(`*${args.length}\r\n`)];
      for (const a of args) {
        const b = typeof a === "string" ? Buffer.from(a) : a;
        parts.push(Buffer.from(`$${b.length}\r\n`), b, Buffer.from("\r\n"));
      }
      return new Promise<Buffer>((resolve) => {
        waiting.push(resolve);
        socket.write(Buffer.concat(parts));
      });
    },
    close: () =>
      new Promise<void>((resolve) => {
        socket.end(() => resolve());
      }),
  };
}
