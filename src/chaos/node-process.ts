/**
 * One `raftkv serve` process of the chaos cluster, which the nemesis kills, restarts, pauses and
 * resumes. Its output (pino JSON lines) goes to a log file that every boot appends to, after a marker
 * line saying what the chaos run did; an exit nobody asked for is recorded.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { appendFileSync, closeSync, openSync } from "node:fs";
import type { NodeId } from "../raft/types.js";

export type ProcessState = "down" | "running" | "paused";

export interface UnexpectedExit {
  readonly id: NodeId;
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  /** Wall-clock time (ms since the epoch), to find the place in the logs. */
  readonly at: number;
}

/** How long a node may take to stop on SIGTERM before it is killed. */
const STOP_GRACE_MS = 10_000;

export class ServeProcess {
  private child: ChildProcess | null = null;
  private exited: Promise<void> = Promise.resolve();
  private expectingExit = false;
  private paused = false;
  boots = 0;

  constructor(
    readonly id: NodeId,
    readonly redisPort: number,
    private readonly command: readonly string[],
    readonly logPath: string,
    private readonly onUnexpectedExit: (exit: UnexpectedExit) => void,
  ) {}

  get state(): ProcessState {
    if (this.child === null) return "down";
    return this.paused ? "paused" : "running";
  }

  /** Starts the process (it must be down). */
  start(why: string): void {
    if (this.child !== null) throw new Error(`node ${this.id} is already running`);
    this.mark(`start (${why})`);
    const log = openSync(this.logPath, "a");
    let child: ChildProcess;
    try {
      child = spawn(process.execPath, [...this.command], { stdio: ["ignore", log, log] });
    } finally {
      closeSync(log);
    }
    this.child = child;
    this.paused = false;
    this.expectingExit = false;
    this.boots++;
    this.exited = new Promise((resolve) => {
      child.once("exit", (code, signal) => {
        if (this.child === child) {
          this.child = null;
          this.paused = false;
          if (!this.expectingExit) {
            this.mark(`exited by itself (code ${code}, signal ${signal})`);
            this.onUnexpectedExit({ id: this.id, code, signal, at: Date.now() });
          }
        }
        resolve();
      });
    });
  }

  /** SIGKILL; resolves once the process is gone. */
  async kill(why: string): Promise<void> {
    if (this.child === null) return;
    this.mark(`SIGKILL (${why})`);
    this.expectingExit = true;
    this.child.kill("SIGKILL");
    await this.exited;
  }

  pause(why: string): void {
    if (this.child === null || this.paused) return;
    this.mark(`SIGSTOP (${why})`);
    this.child.kill("SIGSTOP");
    this.paused = true;
  }

  resume(why: string): void {
    if (this.child === null || !this.paused) return;
    this.mark(`SIGCONT (${why})`);
    this.child.kill("SIGCONT");
    this.paused = false;
  }

  /** SIGTERM (resuming it first if paused), then SIGKILL if it has not stopped in time. */
  async stop(): Promise<void> {
    const child = this.child;
    if (child === null) return;
    this.resume("stopping");
    this.mark("SIGTERM (end of the run)");
    this.expectingExit = true;
    child.kill("SIGTERM");
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<void>((resolve) => {
      timer = setTimeout(() => {
        child.kill("SIGKILL");
        resolve();
      }, STOP_GRACE_MS);
    });
    await Promise.race([this.exited, late]);
    clearTimeout(timer);
    await this.exited;
  }

  /** SIGKILL now, without waiting: for a chaos run that is itself exiting. */
  killNow(): void {
    this.expectingExit = true;
    this.child?.kill("SIGKILL");
  }

  /** A line in the node's log saying what the chaos run did to it, and when. */
  private mark(what: string): void {
    appendFileSync(this.logPath, `${JSON.stringify({ chaos: what, node: this.id, time: Date.now() })}\n`);
  }
}
