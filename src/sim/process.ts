/**
 * One simulated process: what a node's engine sees of time, tasks and its disk during one boot. A crash
 * kills the process: its timers and tasks never run again and its file system refuses every call, so an
 * engine abandoned mid-flight cannot touch the disk its successor boots from. A pause freezes it (a
 * stalled event loop, a frozen VM): callbacks wait until it resumes, while its clock runs on.
 */
import type { Timers } from "../engine/dispatch.js";
import type { FileHandle, FileSystem } from "../storage/fs.js";
import type { ManualScheduler, ManualTimers } from "./virtual-time.js";

function deadProcessError(syscall: string, file: string): NodeJS.ErrnoException {
  const err: NodeJS.ErrnoException = new Error(
    `EIO: the process that owned this file system was killed, ${syscall} '${file}'`,
  );
  err.code = "EIO";
  err.syscall = syscall;
  err.path = file;
  return err;
}

/** A file system that works until its process is killed, then refuses everything with EIO. */
class FencedFileSystem implements FileSystem {
  constructor(
    private readonly inner: FileSystem,
    private readonly alive: () => boolean,
  ) {}
  private check(syscall: string, file: string): void {
    if (!this.alive()) throw deadProcessError(syscall, file);
  }
  mkdirp(dir: string): void {
    this.check("mkdir", dir);
    this.inner.mkdirp(dir);
  }
  readdir(dir: string): string[] {
    this.check("readdir", dir);
    return this.inner.readdir(dir);
  }
  exists(file: string): boolean {
    this.check("stat", file);
    return this.inner.exists(file);
  }
  open(file: string): FileHandle {
    this.check("open", file);
    return this.inner.open(file);
  }
  create(file: string): FileHandle {
    this.check("open", file);
    return this.inner.create(file);
  }
  readFile(file: string): Uint8Array {
    this.check("read", file);
    return this.inner.readFile(file);
  }
  async rename(from: string, to: string): Promise<void> {
    this.check("rename", from);
    await this.inner.rename(from, to);
  }
  async unlink(file: string): Promise<void> {
    this.check("unlink", file);
    await this.inner.unlink(file);
  }
  async syncDir(dir: string): Promise<void> {
    this.check("fsync", dir);
    await this.inner.syncDir(dir);
  }
}

export class SimProcess implements Timers {
  private alive = true;
  private paused = false;
  private held: (() => void)[] = [];
  readonly fs: FileSystem;

  /**
   * @param rate how fast this process's clock runs against virtual time (1: exactly; skew is a rate a
   *   little off 1).
   */
  constructor(
    private readonly timers: ManualTimers,
    private readonly scheduler: ManualScheduler,
    disk: FileSystem,
    readonly rate: number,
  ) {
    this.fs = new FencedFileSystem(disk, () => this.alive);
  }

  get isAlive(): boolean {
    return this.alive;
  }

  get isPaused(): boolean {
    return this.paused;
  }

  /** The process's own monotonic clock, in its ms. */
  readonly clock = (): number => this.timers.now * this.rate;

  setTimeout(fn: () => void, ms: number): unknown {
    return this.timers.setTimeout(() => this.run(fn), ms / this.rate);
  }

  clearTimeout(handle: unknown): void {
    this.timers.clearTimeout(handle);
  }

  /** The engine's task scheduler within this process. */
  readonly schedule = (fn: () => void): void => {
    this.scheduler.schedule(() => this.run(fn));
  };

  private run(fn: () => void): void {
    if (!this.alive) return;
    if (this.paused) this.held.push(fn);
    else fn();
  }

  pause(): void {
    if (this.alive) this.paused = true;
  }

  resume(): void {
    if (!this.paused) return;
    this.paused = false;
    const held = this.held;
    this.held = [];
    for (const fn of held) this.scheduler.schedule(() => this.run(fn));
  }

  /** Nothing of this process runs again, and its file system refuses every call. */
  kill(): void {
    this.alive = false;
    this.paused = false;
    this.held = [];
  }
}
