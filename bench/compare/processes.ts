/**
 * Every process the comparison starts, tracked so that all of them are stopped, and the scratch
 * directory removed, however the run ends: normally, on an error, or on Ctrl-C / SIGTERM / SIGHUP.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from "node:fs";
import * as os from "node:os";
import * as path from "node:path";

/** A long-running server whose output goes to a log file in the scratch directory. */
export interface Server {
  readonly name: string;
  readonly logPath: string;
  /** Set once the process has exited (its exit code, or the signal that ended it). */
  exit: string | null;
}

export interface RunOptions {
  timeoutMs: number;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Show the command's output on this terminal instead of capturing it (apt-get, go build). */
  inherit?: boolean;
}

export class CommandError extends Error {}

const SIGNAL_EXIT_CODES = { SIGHUP: 129, SIGINT: 130, SIGTERM: 143 } as const;
/** How long a process gets to stop after SIGTERM before it is killed. */
const STOP_GRACE_MS = 10_000;
/** Captured output kept per stream: enough for any report, bounded however much a tool prints. */
const MAX_CAPTURE_BYTES = 4 << 20;

export class Processes {
  readonly scratch = mkdtempSync(path.join(os.tmpdir(), "raftkv-bench-redis-"));
  private readonly live = new Map<ChildProcess, Server | null>();
  private cleaning: Promise<void> | null = null;

  constructor() {
    for (const [signal, code] of Object.entries(SIGNAL_EXIT_CODES))
      process.once(signal, () => {
        console.error(`\n${signal}: stopping everything this benchmark started…`);
        void this.cleanup().then(() => process.exit(code));
      });
  }

  startServer(name: string, command: string, args: readonly string[]): Server {
    const logPath = path.join(this.scratch, `${name}.log`);
    const fd = openSync(logPath, "a");
    const child = spawn(command, args, { stdio: ["ignore", fd, fd] });
    closeSync(fd);
    const server: Server = { name, logPath, exit: null };
    this.live.set(child, server);
    child.once("error", (err) => {
      server.exit = err.message;
    });
    child.once("exit", (code, signal) => {
      server.exit = signal ?? `code ${code}`;
      this.live.delete(child);
    });
    return server;
  }

  /** Throws, with the end of its log, if the server has exited. */
  assertRunning(server: Server): void {
    if (server.exit === null) return;
    const tail = readFileSync(server.logPath, "utf8").split("\n").slice(-20).join("\n");
    throw new CommandError(`${server.name} exited (${server.exit}); the end of its log:\n${tail}`);
  }

  /** Runs a command to completion; resolves with its stdout, rejects on a non-zero exit or a timeout. */
  run(command: string, args: readonly string[], opts: RunOptions): Promise<string> {
    const child = spawn(command, args, {
      stdio: opts.inherit ? ["ignore", "inherit", "inherit"] : ["ignore", "pipe", "pipe"],
      env: opts.env ?? process.env,
      cwd: opts.cwd,
    });
    this.live.set(child, null);
    const out = capture(child.stdout);
    const err = capture(child.stderr);
    const timer = setTimeout(() => child.kill("SIGKILL"), opts.timeoutMs);
    const shown = [command, ...args].join(" ");
    return new Promise((resolve, reject) => {
      child.once("error", (e) => {
        clearTimeout(timer);
        this.live.delete(child);
        reject(new CommandError(`${shown}: ${e.message}`));
      });
      child.once("close", (code, signal) => {
        clearTimeout(timer);
        this.live.delete(child);
        if (code === 0) return resolve(out());
        const why =
          signal === "SIGKILL" ? `timed out after ${opts.timeoutMs / 1000} s` : `exit ${code ?? signal}`;
        reject(
          new CommandError(`${shown}: ${why}\n${(err() || out()).trim().split("\n").slice(-20).join("\n")}`),
        );
      });
    });
  }

  /** Stops the servers given (SIGTERM, then SIGKILL after a grace period) and waits for them. */
  async stop(servers: readonly Server[]): Promise<void> {
    const names = new Set(servers);
    await Promise.all(
      [...this.live].filter(([, s]) => s !== null && names.has(s)).map(([child]) => stopChild(child)),
    );
  }

  /** True once cleanup has begun (a signal, or the end of the run). */
  get stopping(): boolean {
    return this.cleaning !== null;
  }

  /** Stops every process still running and removes the scratch directory. Safe to call twice. */
  cleanup(): Promise<void> {
    this.cleaning ??= (async () => {
      await Promise.all([...this.live.keys()].map(stopChild));
      rmSync(this.scratch, { recursive: true, force: true });
    })();
    return this.cleaning;
  }
}

function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const kill = setTimeout(() => child.kill("SIGKILL"), STOP_GRACE_MS);
    child.once("exit", () => {
      clearTimeout(kill);
      resolve();
    });
    child.kill("SIGTERM");
  });
}

function capture(stream: NodeJS.ReadableStream | null): () => string {
  const chunks: Buffer[] = [];
  let size = 0;
  stream?.on("data", (chunk: Buffer) => {
    if (size >= MAX_CAPTURE_BYTES) return;
    chunks.push(chunk);
    size += chunk.length;
  });
  return () => Buffer.concat(chunks).toString("utf8");
}
