/**
 * An in-memory {@link FileSystem} for tests and the deterministic simulator. It models what a disk
 * and its page cache do across a power loss, and can fail on demand.
 *
 * The model:
 *
 * - Every file (an inode: renames move it, open handles keep it alive after unlink) has **durable**
 *   content, which is what is on the platter, and **live** content, which is what reads see: the
 *   durable content with the writes and truncations made since the last `datasync` applied in order.
 *   Those unsynced operations are kept, in order, until a `datasync` makes them durable.
 * - Every directory has a **live** entry table (creates, renames, unlinks and mkdirs change it at
 *   once) and a **durable** one, which becomes a copy of the live one only when that directory is
 *   synced (`syncDir`). Each directory is synced on its own: syncing `/a` says nothing about `/a/b`.
 * - {@link SimFileSystem.crash} is a power loss. Every directory's entries revert to its durable table
 *   (starting from the root, so a directory whose own name was never made durable vanishes with all it
 *   holds), and every file that survives gets its durable content plus, depending on the mode and the
 *   random source, a prefix of its unsynced operations in order, of which the last write may be torn
 *   (cut at any byte or at a {@link PAGE_SIZE_BYTES} page boundary, the rest left as it was or read back
 *   as zeroes). Whatever the crash left becomes the new durable content, as on a real disk after a
 *   reboot. Every handle opened before the crash then fails with `EIO`; the file system itself is
 *   usable again at once, like a rebooted machine.
 * - A `datasync` or `syncDir` guarantees only what was done before it was called. An operation made
 *   while it waits (see {@link SimFileSystem.delaySync}) is not made durable by it, and a failed or
 *   interrupted one makes nothing durable.
 *
 * Everything is deterministic: there are no timers, no clock and no `Math.random`; every choice a crash
 * makes is drawn from the {@link RandomSource} the caller supplies, in a fixed order (files in path
 * order), so the same seed and the same sequence of calls give the same disk.
 *
 * Known simplifications: unsynced operations reach the disk in the order they were made (a real page
 * cache may write pages back out of order); a write is torn at most once, at its end; directory
 * operations not yet synced are always lost (a journaling file system may persist some of them early);
 * and a file moved between two directories of which only one was synced can come back under both
 * names (as on a non-journaling file system) or under neither.
 */
import { posix } from "node:path";
import { type RandomSource, SeededRandom } from "../raft/rand.js";
import type { FileHandle, FileSystem } from "./fs.js";

/** The page size at which a crash may cut a write (see {@link TornWrite.atPageBoundary}). */
export const PAGE_SIZE_BYTES = 4096;

/** Operations that {@link SimFileSystem.failNext} can make fail. `read` covers `readSync` and `readFile`. */
export type FaultOp =
  | "write"
  | "datasync"
  | "create"
  | "rename"
  | "unlink"
  | "syncDir"
  | "truncate"
  | "open"
  | "read";
export type FaultCode = "EIO" | "ENOSPC";

/**
 * What a crash keeps of the writes made since the last `datasync`:
 * - `"lose-all-unsynced"`: nothing; every file is exactly its durable content (the default).
 * - `"random"`: a random prefix of them, the last possibly torn (see the module comment).
 * - `"keep-all-unsynced"`: all of them, as when only the process died and the kernel wrote its page
 *   cache back. Directory operations not yet synced are lost in every mode.
 */
export type CrashMode = "lose-all-unsynced" | "random" | "keep-all-unsynced";

/** Awaited inside every `datasync` and `syncDir`, after the operation has started and before it completes. */
export type DelaySync = (op: "datasync" | "syncDir", path: string) => Promise<void>;

export interface SimFileSystemOptions {
  /** Total bytes all files may hold; a write that would grow past it fails with `ENOSPC`. Default: unlimited. */
  capacityBytes?: number;
  delaySync?: DelaySync;
}

export interface SimFsStats {
  /** Successful `datasync` calls. */
  datasyncs: number;
  /** Successful `syncDir` calls. */
  syncDirs: number;
  /** Successful `write` calls. */
  writes: number;
  /** Bytes accepted by successful `write` calls. */
  bytesWritten: number;
  /** Operations failed by {@link SimFileSystem.failNext} or by the capacity limit. */
  faultsFired: number;
  /** Calls to {@link SimFileSystem.crash}. */
  crashes: number;
}

/** How a crash cut the first unsynced write it did not apply whole. */
export interface TornWrite {
  /** File offset of the write. */
  position: number;
  /** Length of the write. */
  lengthBytes: number;
  /** How many of its leading bytes reached the disk (less than `lengthBytes`). */
  cutBytes: number;
  /** The cut was chosen at a page boundary (or at the write's start when it crosses none). */
  atPageBoundary: boolean;
  /** The bytes after the cut read back as zeroes (the file grows to the write's end if needed). */
  zeroed: boolean;
}

export interface CrashedFile {
  /** A path under which the file survived (the first in path order). */
  path: string;
  /** Unsynced operations (writes and truncations) the file had. */
  unsyncedOps: number;
  /** How many of them, from the first, reached the disk whole. */
  appliedOps: number;
  /** Set when the next one was a write and part of it reached the disk. */
  torn?: TornWrite;
}

/** Narrows what a `"random"` crash may do; both default to `true`. */
export interface CrashOptions {
  /** The first unsynced write not applied whole may be partly applied. */
  tornWrites?: boolean;
  /** The bytes of a torn write past its cut may read back as zeroes. */
  zeroFill?: boolean;
}

export interface CrashReport {
  mode: CrashMode;
  /** Every file that survived, in path order. */
  files: CrashedFile[];
}

const ERRNO = {
  ENOENT: -2,
  EIO: -5,
  EBADF: -9,
  EEXIST: -17,
  ENOTDIR: -20,
  EISDIR: -21,
  EINVAL: -22,
  ENOSPC: -28,
  ENOTEMPTY: -39,
} as const;
type ErrCode = keyof typeof ERRNO;

const DESCRIPTION: Record<ErrCode, string> = {
  ENOENT: "no such file or directory",
  EIO: "i/o error",
  EBADF: "bad file descriptor",
  EEXIST: "file already exists",
  ENOTDIR: "not a directory",
  EISDIR: "illegal operation on a directory",
  EINVAL: "invalid argument",
  ENOSPC: "no space left on device",
  ENOTEMPTY: "directory not empty",
};

/** An error shaped like Node's own (`code`, `errno`, `syscall`, `path`, and `dest` for a rename). */
function fsError(
  code: ErrCode,
  syscall: string,
  file: string,
  detail?: string,
  dest?: string,
): NodeJS.ErrnoException & { dest?: string } {
  const where = dest === undefined ? `'${file}'` : `'${file}' -> '${dest}'`;
  const message = `${code}: ${DESCRIPTION[code]}, ${syscall} ${where}${detail ? ` (${detail})` : ""}`;
  const err: NodeJS.ErrnoException & { dest?: string } = Object.assign(new Error(message), {
    code,
    errno: ERRNO[code],
    syscall,
    path: file,
  });
  if (dest !== undefined) err.dest = dest;
  return err;
}

function rangeError(message: string): RangeError {
  return Object.assign(new RangeError(message), { code: "ERR_OUT_OF_RANGE" });
}

function checkOffset(name: string, value: number): void {
  if (!Number.isSafeInteger(value) || value < 0)
    throw rangeError(`${name} must be a non-negative integer, got ${value}`);
}

/** A broken invariant of this model: a bug here, not a fault being simulated. */
function invariant(cond: boolean, what: string): asserts cond {
  if (!cond) throw new Error(`sim-fs invariant broken: ${what}`);
}

/** A growable byte array; bytes past `length` in `buf` are not meaningful. */
class Bytes {
  private buf: Uint8Array;
  length = 0;

  constructor(capacity = 0) {
    this.buf = new Uint8Array(capacity);
  }

  clone(): Bytes {
    const b = new Bytes(this.length);
    b.buf.set(this.buf.subarray(0, this.length));
    b.length = this.length;
    return b;
  }

  view(): Uint8Array {
    return this.buf.subarray(0, this.length);
  }

  /** Sets the length; bytes added read as zero. */
  resize(length: number): void {
    if (length > this.buf.length) {
      const next = new Uint8Array(Math.max(length, this.buf.length * 2, 256));
      next.set(this.buf.subarray(0, this.length));
      this.buf = next;
    } else if (length > this.length) {
      this.buf.fill(0, this.length, length);
    }
    this.length = length;
  }

  write(position: number, data: Uint8Array): void {
    if (data.byteLength === 0) return;
    const end = position + data.byteLength;
    if (end > this.length) this.resize(end);
    this.buf.set(data, position);
  }

  /** Zeroes [from, to), growing to `to` if needed. */
  zero(from: number, to: number): void {
    if (to > this.length) this.resize(to);
    this.buf.fill(0, from, to);
  }

  set(offset: number, byte: number): void {
    this.buf[offset] = byte;
  }

  get(offset: number): number {
    return this.buf[offset]!;
  }
}

type PendingOp =
  | { kind: "write"; seq: number; position: number; data: Uint8Array }
  | { kind: "truncate"; seq: number; length: number };

function applyOp(content: Bytes, op: PendingOp): void {
  if (op.kind === "write") content.write(op.position, op.data);
  else content.resize(op.length);
}

class FileNode {
  readonly kind = "file";
  live = new Bytes();
  durable = new Bytes();
  /** Operations applied to `live` but not yet to `durable`, in order. */
  pending: PendingOp[] = [];
  nextSeq = 0;
  /** Live directory entries naming this file. */
  links = 0;
  /** Open handles from the current boot. */
  openHandles = 0;

  record(op: PendingOp): void {
    applyOp(this.live, op);
    this.pending.push(op);
  }

  /** Makes durable every pending operation numbered below `seq`. */
  settleThrough(seq: number): void {
    let n = 0;
    while (n < this.pending.length && this.pending[n]!.seq < seq) applyOp(this.durable, this.pending[n++]!);
    if (n === this.pending.length) {
      this.pending = [];
      // Cheaper than replaying and self-checking: with nothing pending, durable and live must agree.
      invariant(
        this.durable.length === this.live.length,
        "durable and live sizes agree with nothing pending",
      );
    } else if (n > 0) {
      this.pending = this.pending.slice(n);
    }
  }

  /** Makes the file exactly its durable content. */
  reset(): void {
    this.pending = [];
    this.live = this.durable.clone();
  }
}

class DirNode {
  readonly kind = "dir";
  live = new Map<string, Node>();
  durable = new Map<string, Node>();
  /** Bumped on every change to `live`. */
  version = 0;
  /** The `version` that `durable` is a copy of. */
  durableVersion = 0;

  setEntry(name: string, node: Node): void {
    this.live.set(name, node);
    this.version++;
  }

  deleteEntry(name: string): void {
    this.live.delete(name);
    this.version++;
  }
}

type Node = FileNode | DirNode;

interface FaultRule {
  op: FaultOp;
  code: FaultCode;
  path: string | undefined;
  remaining: number;
}

function normalize(p: string): string {
  return posix.resolve("/", p);
}

function components(normalized: string): string[] {
  return normalized.split("/").filter((c) => c.length > 0);
}

/** The state shared by the file system and its handles. */
class Disk {
  root = new DirNode();
  /** Bumped by every crash; handles from an older boot are dead. */
  boot = 0;
  faults: FaultRule[] = [];
  capacityBytes = Number.POSITIVE_INFINITY;
  delaySync: DelaySync | undefined;
  /** Files that hold space: named by a live entry or held by an open handle. */
  allocated = new Set<FileNode>();
  openHandles = 0;
  stats: SimFsStats = { datasyncs: 0, syncDirs: 0, writes: 0, bytesWritten: 0, faultsFired: 0, crashes: 0 };

  constructor(readonly random: RandomSource) {}

  /** Consumes and returns the first fault armed for `op` on one of `paths`, if any. */
  takeFault(op: FaultOp, ...paths: string[]): FaultCode | undefined {
    const i = this.faults.findIndex((f) => f.op === op && (f.path === undefined || paths.includes(f.path)));
    if (i < 0) return undefined;
    const rule = this.faults[i]!;
    if (--rule.remaining === 0) this.faults.splice(i, 1);
    this.stats.faultsFired++;
    return rule.code;
  }

  usedBytes(): number {
    let used = 0;
    for (const f of this.allocated) used += f.live.length;
    return used;
  }

  /** Releases the file's space once nothing live refers to it. */
  maybeFree(node: FileNode): void {
    invariant(node.links >= 0 && node.openHandles >= 0, "link and handle counts are not negative");
    if (node.links === 0 && node.openHandles === 0) this.allocated.delete(node);
  }
}

class SimFileHandle implements FileHandle {
  private closed = false;
  private readonly normalized: string;

  constructor(
    private readonly disk: Disk,
    readonly path: string,
    private readonly node: FileNode,
    private readonly boot: number,
  ) {
    this.normalized = normalize(path);
    disk.openHandles++;
    node.openHandles++;
  }

  private checkUsable(syscall: string): void {
    if (this.closed) throw fsError("EBADF", syscall, this.path, "handle is closed");
    if (this.boot !== this.disk.boot)
      throw fsError("EIO", syscall, this.path, "handle was open when the machine crashed");
  }

  private injected(op: FaultOp, syscall: string): void {
    const code = this.disk.takeFault(op, this.normalized);
    if (code !== undefined) throw fsError(code, syscall, this.path, "injected fault");
  }

  size(): number {
    this.checkUsable("fstat");
    return this.node.live.length;
  }

  readSync(buf: Uint8Array, offset: number, length: number, position: number): number {
    this.checkUsable("read");
    checkOffset("offset", offset);
    checkOffset("length", length);
    checkOffset("position", position);
    if (offset + length > buf.byteLength) {
      throw rangeError(`offset + length (${offset + length}) exceeds the buffer's ${buf.byteLength} bytes`);
    }
    this.injected("read", "read");
    const live = this.node.live;
    const n = Math.max(0, Math.min(length, live.length - position));
    if (n > 0) buf.set(live.view().subarray(position, position + n), offset);
    return n;
  }

  async write(data: Uint8Array, position: number): Promise<void> {
    this.checkUsable("write");
    checkOffset("position", position);
    this.injected("write", "write");
    if (data.byteLength === 0) return;
    const grow = Math.max(0, position + data.byteLength - this.node.live.length);
    const capacity = this.disk.capacityBytes;
    if (grow > 0 && capacity !== Number.POSITIVE_INFINITY && this.disk.usedBytes() + grow > capacity) {
      this.disk.stats.faultsFired++;
      throw fsError("ENOSPC", "write", this.path, `capacity of ${capacity} bytes reached`);
    }
    // The caller may reuse `data` as soon as this returns: keep a copy.
    this.node.record({ kind: "write", seq: this.node.nextSeq++, position, data: new Uint8Array(data) });
    this.disk.stats.writes++;
    this.disk.stats.bytesWritten += data.byteLength;
  }

  async datasync(): Promise<void> {
    this.checkUsable("fdatasync");
    const fault = this.disk.takeFault("datasync", this.normalized);
    // Only what was written before the call is guaranteed.
    const through = this.node.nextSeq;
    const bootAtStart = this.disk.boot;
    if (this.disk.delaySync) await this.disk.delaySync("datasync", this.path);
    if (this.disk.boot !== bootAtStart) {
      throw fsError("EIO", "fdatasync", this.path, "the machine crashed while the sync was in flight");
    }
    if (fault !== undefined) throw fsError(fault, "fdatasync", this.path, "injected fault");
    this.node.settleThrough(through);
    this.disk.stats.datasyncs++;
  }

  async truncate(length: number): Promise<void> {
    this.checkUsable("ftruncate");
    checkOffset("length", length);
    this.injected("truncate", "ftruncate");
    // Like ftruncate on a real file system, growing allocates nothing and is not held to the capacity.
    this.node.record({ kind: "truncate", seq: this.node.nextSeq++, length });
  }

  /** Closes the handle. Closing twice, or closing a handle from before a crash, is allowed and does nothing. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.boot !== this.disk.boot) return;
    this.disk.openHandles--;
    this.node.openHandles--;
    this.disk.maybeFree(this.node);
  }
}

interface Lookup {
  parent: DirNode | undefined;
  name: string;
  node: Node | undefined;
}

/** An in-memory file system with power-loss semantics and fault injection; see the module comment. */
export class SimFileSystem implements FileSystem {
  private readonly disk: Disk;

  /** @param random the source of every choice a crash makes; a number seeds a {@link SeededRandom}. */
  constructor(random: RandomSource | number, options: SimFileSystemOptions = {}) {
    this.disk = new Disk(typeof random === "number" ? new SeededRandom(random) : random);
    if (options.capacityBytes !== undefined) this.setCapacity(options.capacityBytes);
    this.disk.delaySync = options.delaySync;
  }

  // ---- FileSystem ----

  mkdirp(dir: string): void {
    let cur = this.disk.root;
    const parts = components(normalize(dir));
    for (let i = 0; i < parts.length; i++) {
      const next = cur.live.get(parts[i]!);
      if (next === undefined) {
        const created = new DirNode();
        cur.setEntry(parts[i]!, created);
        cur = created;
      } else if (next.kind === "file") {
        throw fsError(i === parts.length - 1 ? "EEXIST" : "ENOTDIR", "mkdir", dir);
      } else {
        cur = next;
      }
    }
  }

  readdir(dir: string): string[] {
    return [...this.dirAt(dir, "scandir").live.keys()];
  }

  exists(file: string): boolean {
    try {
      return this.lookup(file, "stat").node !== undefined;
    } catch {
      return false;
    }
  }

  open(file: string): FileHandle {
    const code = this.disk.takeFault("open", normalize(file));
    if (code !== undefined) throw fsError(code, "open", file, "injected fault");
    const { node } = this.lookup(file, "open");
    if (node === undefined) throw fsError("ENOENT", "open", file);
    if (node.kind === "dir") throw fsError("EISDIR", "open", file);
    return new SimFileHandle(this.disk, file, node, this.disk.boot);
  }

  create(file: string): FileHandle {
    const code = this.disk.takeFault("create", normalize(file));
    if (code !== undefined) throw fsError(code, "open", file, "injected fault");
    const { parent, name, node } = this.lookup(file, "open");
    if (node?.kind === "dir" || parent === undefined) throw fsError("EISDIR", "open", file);
    if (node !== undefined) {
      node.record({ kind: "truncate", seq: node.nextSeq++, length: 0 });
      return new SimFileHandle(this.disk, file, node, this.disk.boot);
    }
    const created = new FileNode();
    created.links = 1;
    parent.setEntry(name, created);
    this.disk.allocated.add(created);
    return new SimFileHandle(this.disk, file, created, this.disk.boot);
  }

  readFile(file: string): Uint8Array {
    const code = this.disk.takeFault("read", normalize(file));
    if (code !== undefined) throw fsError(code, "read", file, "injected fault");
    return this.liveFile(file, "open").live.view().slice();
  }

  async rename(from: string, to: string): Promise<void> {
    const code = this.disk.takeFault("rename", normalize(from), normalize(to));
    if (code !== undefined) throw fsError(code, "rename", from, "injected fault", to);
    const src = this.lookup(from, "rename", from, to);
    const dst = this.lookup(to, "rename", from, to);
    if (src.node === undefined) throw fsError("ENOENT", "rename", from, undefined, to);
    if (src.parent === undefined || dst.parent === undefined) {
      throw fsError("EINVAL", "rename", from, "cannot rename the root", to);
    }
    if (src.node === dst.node) return;
    if (src.node.kind === "dir" && `${normalize(to)}/`.startsWith(`${normalize(from)}/`)) {
      throw fsError("EINVAL", "rename", from, "cannot move a directory into itself", to);
    }
    const target = dst.node;
    if (target !== undefined) {
      if (src.node.kind === "file" && target.kind === "dir")
        throw fsError("EISDIR", "rename", from, undefined, to);
      if (src.node.kind === "dir" && target.kind === "file")
        throw fsError("ENOTDIR", "rename", from, undefined, to);
      if (target.kind === "dir" && target.live.size > 0)
        throw fsError("ENOTEMPTY", "rename", from, undefined, to);
    }
    src.parent.deleteEntry(src.name);
    dst.parent.setEntry(dst.name, src.node);
    if (target?.kind === "file") {
      target.links--;
      this.disk.maybeFree(target);
    }
  }

  async unlink(file: string): Promise<void> {
    const code = this.disk.takeFault("unlink", normalize(file));
    if (code !== undefined) throw fsError(code, "unlink", file, "injected fault");
    const { parent, name, node } = this.lookup(file, "unlink");
    if (node === undefined) throw fsError("ENOENT", "unlink", file);
    if (node.kind === "dir" || parent === undefined) throw fsError("EISDIR", "unlink", file);
    parent.deleteEntry(name);
    node.links--;
    this.disk.maybeFree(node);
  }

  /** Makes `dir`'s entries as they are now durable. Stricter than Node: syncing a file here is `ENOTDIR`. */
  async syncDir(dir: string): Promise<void> {
    const fault = this.disk.takeFault("syncDir", normalize(dir));
    const node = this.dirAt(dir, "fsync");
    const snapshot = node.version === node.durableVersion ? undefined : new Map(node.live);
    const version = node.version;
    const bootAtStart = this.disk.boot;
    if (this.disk.delaySync) await this.disk.delaySync("syncDir", dir);
    if (this.disk.boot !== bootAtStart) {
      throw fsError("EIO", "fsync", dir, "the machine crashed while the sync was in flight");
    }
    if (fault !== undefined) throw fsError(fault, "fsync", dir, "injected fault");
    // Syncs may complete out of order; never let an older one undo a newer one.
    if (snapshot !== undefined && version > node.durableVersion) {
      node.durable = snapshot;
      node.durableVersion = version;
    }
    this.disk.stats.syncDirs++;
  }

  // ---- power loss ----

  /**
   * Simulates a power loss and reboot (see the module comment). Returns what happened to each file, for
   * test assertions and simulator logs. The default mode loses every unsynced write.
   */
  crash(mode: CrashMode = "lose-all-unsynced", options: CrashOptions = {}): CrashReport {
    const tornWrites = options.tornWrites ?? true;
    const zeroFill = options.zeroFill ?? true;
    const disk = this.disk;
    disk.boot++;
    disk.stats.crashes++;
    disk.allocated.clear();
    disk.openHandles = 0;
    const report: CrashReport = { mode, files: [] };
    const seenDirs = new Set<DirNode>();
    const seenFiles = new Set<FileNode>();
    const visit = (dir: DirNode, dirPath: string): void => {
      seenDirs.add(dir);
      dir.live = new Map(dir.durable);
      dir.version = dir.durableVersion;
      for (const name of [...dir.live.keys()].sort()) {
        const child = dir.live.get(name)!;
        const childPath = posix.join(dirPath, name);
        if (child.kind === "dir") {
          // A directory moved between two directories of which only one was synced can be named twice.
          if (!seenDirs.has(child)) visit(child, childPath);
          continue;
        }
        if (!seenFiles.has(child)) {
          seenFiles.add(child);
          child.links = 0;
          child.openHandles = 0;
          report.files.push(this.settle(child, childPath, mode, tornWrites, zeroFill));
          disk.allocated.add(child);
        }
        child.links++;
      }
    };
    visit(disk.root, "/");
    return report;
  }

  private settle(
    node: FileNode,
    path: string,
    mode: CrashMode,
    tornWrites: boolean,
    zeroFill: boolean,
  ): CrashedFile {
    const ops = node.pending;
    const result: CrashedFile = { path, unsyncedOps: ops.length, appliedOps: 0 };
    if (ops.length > 0) {
      const random = this.disk.random;
      const applied =
        mode === "keep-all-unsynced" ? ops.length : mode === "random" ? random.intn(ops.length + 1) : 0;
      invariant(applied >= 0 && applied <= ops.length, "a crash applies a prefix of the unsynced operations");
      for (let i = 0; i < applied; i++) applyOp(node.durable, ops[i]!);
      result.appliedOps = applied;
      const next = ops[applied];
      if (mode === "random" && tornWrites && next?.kind === "write") {
        const tear = random.intn(3); // 0: not at all, 1: at any byte, 2: at a page boundary
        if (tear > 0) {
          const len = next.data.byteLength;
          const writeEnd = next.position + len;
          let cut: number;
          if (tear === 1) {
            cut = random.intn(len);
          } else {
            const firstBoundary = (Math.floor(next.position / PAGE_SIZE_BYTES) + 1) * PAGE_SIZE_BYTES;
            const boundaries =
              firstBoundary < writeEnd ? Math.ceil((writeEnd - firstBoundary) / PAGE_SIZE_BYTES) : 0;
            const pick = random.intn(boundaries + 1);
            cut = pick === 0 ? 0 : firstBoundary + (pick - 1) * PAGE_SIZE_BYTES - next.position;
          }
          invariant(cut >= 0 && cut < len, "a torn write keeps fewer bytes than it has");
          const zeroed = zeroFill && random.intn(2) === 1;
          node.durable.write(next.position, next.data.subarray(0, cut));
          if (zeroed) node.durable.zero(next.position + cut, writeEnd);
          result.torn = {
            position: next.position,
            lengthBytes: len,
            cutBytes: cut,
            atPageBoundary: tear === 2,
            zeroed,
          };
        }
      }
    }
    node.reset();
    return result;
  }

  // ---- fault injection and limits ----

  /**
   * Makes the next `count` calls of `op` (on `path`, if given: a handle's path as opened, either side of
   * a rename) fail with `code`. A failed call changes nothing: a write writes nothing, a datasync or
   * syncDir makes nothing durable (it still awaits {@link delaySync}), a create creates nothing. Faults
   * armed here are consumed in the order they were armed and survive crashes.
   */
  failNext(op: FaultOp, code: FaultCode, path?: string, count = 1): void {
    if (!Number.isSafeInteger(count) || count < 1)
      throw rangeError(`count must be a positive integer, got ${count}`);
    this.disk.faults.push({
      op,
      code,
      path: path === undefined ? undefined : normalize(path),
      remaining: count,
    });
  }

  /** Disarms every fault set by {@link failNext}. */
  clearFaults(): void {
    this.disk.faults = [];
  }

  /** How many armed faults have not fired yet. */
  pendingFaults(): number {
    return this.disk.faults.reduce((n, f) => n + f.remaining, 0);
  }

  /** Limits the bytes all files may hold together (`undefined`: unlimited). */
  setCapacity(bytes: number | undefined): void {
    if (bytes !== undefined) checkOffset("capacity", bytes);
    this.disk.capacityBytes = bytes ?? Number.POSITIVE_INFINITY;
  }

  /** Bytes held by files that are named or open. */
  usedBytes(): number {
    return this.disk.usedBytes();
  }

  /** Awaited inside every datasync and syncDir; set it to make syncs slow or to hold them at a gate. */
  get delaySync(): DelaySync | undefined {
    return this.disk.delaySync;
  }

  set delaySync(hook: DelaySync | undefined) {
    this.disk.delaySync = hook;
  }

  // ---- counters and inspection ----

  get stats(): SimFsStats {
    return { ...this.disk.stats };
  }

  resetStats(): void {
    this.disk.stats = { datasyncs: 0, syncDirs: 0, writes: 0, bytesWritten: 0, faultsFired: 0, crashes: 0 };
  }

  /** Handles opened since the last crash and not yet closed. */
  openHandleCount(): number {
    return this.disk.openHandles;
  }

  /** The file's live content (what reads see now), copied. */
  snapshotOf(file: string): Uint8Array {
    return this.liveFile(file, "open").live.view().slice();
  }

  /**
   * What `file` would hold after a crash that loses every unsynced write, copied; `ENOENT` when its name
   * would not survive (the path is looked up through the directories' durable entries).
   */
  durableSnapshotOf(file: string): Uint8Array {
    let cur: Node = this.disk.root;
    for (const name of components(normalize(file))) {
      if (cur.kind !== "dir") throw fsError("ENOTDIR", "open", file, "in the durable state");
      const next: Node | undefined = cur.durable.get(name);
      if (next === undefined) throw fsError("ENOENT", "open", file, "in the durable state");
      cur = next;
    }
    if (cur.kind === "dir") throw fsError("EISDIR", "open", file);
    return cur.durable.view().slice();
  }

  /** Every file's path, sorted: as the file system is now (`"live"`), or as a crash would leave it. */
  list(view: "live" | "durable" = "live"): string[] {
    const out: string[] = [];
    const seen = new Set<DirNode>();
    const walk = (dir: DirNode, dirPath: string): void => {
      seen.add(dir);
      for (const [name, child] of view === "live" ? dir.live : dir.durable) {
        const childPath = posix.join(dirPath, name);
        if (child.kind === "file") out.push(childPath);
        else if (!seen.has(child)) walk(child, childPath);
      }
    };
    walk(this.disk.root, "/");
    return out.sort();
  }

  /**
   * Damages the file as a bad sector would: sets the byte at `offset` to `byte` (or, without `byte`,
   * inverts it) in both its live and its durable content, wherever each is long enough.
   */
  corrupt(file: string, offset: number, byte?: number): void {
    const node = this.liveFile(file, "open");
    checkOffset("offset", offset);
    if (offset >= node.live.length && offset >= node.durable.length) {
      throw rangeError(`offset ${offset} is past the end of ${file}`);
    }
    for (const content of [node.live, node.durable]) {
      if (offset < content.length)
        content.set(offset, byte === undefined ? content.get(offset) ^ 0xff : byte & 0xff);
    }
  }

  /**
   * Cuts the file's durable content to at most `length` bytes, drops its unsynced writes and makes its
   * live content the same, as if the disk had lost the rest: the file reads the same now and after a crash.
   */
  truncateDurable(file: string, length: number): void {
    const node = this.liveFile(file, "open");
    checkOffset("length", length);
    if (length < node.durable.length) node.durable.resize(length);
    node.reset();
  }

  // ---- paths ----

  /** Resolves the parent of `file` through live entries; `ENOENT`/`ENOTDIR` if it is not a directory. */
  private lookup(file: string, syscall: string, shown = file, dest?: string): Lookup {
    const normalized = normalize(file);
    if (normalized === "/") return { parent: undefined, name: "", node: this.disk.root };
    const parent = this.walk(posix.dirname(normalized), syscall, shown, dest);
    const name = posix.basename(normalized);
    return { parent, name, node: parent.live.get(name) };
  }

  private walk(normalized: string, syscall: string, shown: string, dest?: string): DirNode {
    let cur = this.disk.root;
    for (const name of components(normalized)) {
      const next = cur.live.get(name);
      if (next === undefined) throw fsError("ENOENT", syscall, shown, undefined, dest);
      if (next.kind === "file") throw fsError("ENOTDIR", syscall, shown, undefined, dest);
      cur = next;
    }
    return cur;
  }

  private dirAt(dir: string, syscall: string): DirNode {
    return this.walk(normalize(dir), syscall, dir);
  }

  private liveFile(file: string, syscall: string): FileNode {
    const { node } = this.lookup(file, syscall);
    if (node === undefined) throw fsError("ENOENT", syscall, file);
    if (node.kind === "dir") throw fsError("EISDIR", "read", file);
    return node;
  }
}
