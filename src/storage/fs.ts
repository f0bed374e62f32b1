/**
 * The file-system seam. Every file the storage layer touches goes through this interface, so that tests
 * and the simulator can substitute a file system that loses unsynced writes on a crash, tears writes,
 * or fails with EIO/ENOSPC, while production uses {@link NodeFileSystem}.
 *
 * Reads and directory listings are synchronous (raft reads its log inside one event-loop turn);
 * writes and syncs are asynchronous so that an fdatasync never blocks the loop.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { StorageError } from "./errors.js";

export interface FileHandle {
  readonly path: string;
  /** Current size in bytes, including unsynced writes. */
  size(): number;
  /** Reads into buf[offset, offset+length) from `position`; returns the bytes read (short at EOF). */
  readSync(buf: Uint8Array, offset: number, length: number, position: number): number;
  /** Writes all of `data` at `position`. */
  write(data: Uint8Array, position: number): Promise<void>;
  /** Makes written data durable (fdatasync). */
  datasync(): Promise<void>;
  truncate(length: number): Promise<void>;
  close(): Promise<void>;
}

export interface FileSystem {
  /** Creates the directory and its parents if missing; durable once the parent is synced. */
  mkdirp(dir: string): void;
  /** Names (not paths) of the entries in `dir`, unsorted. */
  readdir(dir: string): string[];
  exists(file: string): boolean;
  /** Opens an existing file for reading and writing. */
  open(file: string): FileHandle;
  /** Creates (or truncates) a file; its name is durable only after syncDir. */
  create(file: string): FileHandle;
  /** The whole content of a file. */
  readFile(file: string): Uint8Array;
  /** Atomically replaces `to` with `from`; durable only after syncDir. */
  rename(from: string, to: string): Promise<void>;
  unlink(file: string): Promise<void>;
  /** Makes the directory's entries (creates, renames, unlinks) durable. */
  syncDir(dir: string): Promise<void>;
}

function promisify<T>(f: (cb: (err: NodeJS.ErrnoException | null, value?: T) => void) => void): Promise<T> {
  return new Promise<T>((resolve, reject) => f((err, v) => (err ? reject(err) : resolve(v as T))));
}

class NodeFileHandle implements FileHandle {
  private closed = false;

  constructor(
    readonly path: string,
    private readonly fd: number,
  ) {}

  /** A closed descriptor number may already belong to another file: never touch it. */
  private live(): number {
    if (this.closed)
      throw Object.assign(new Error(`file handle for ${this.path} is closed`), { code: "EBADF" });
    return this.fd;
  }

  size(): number {
    return fs.fstatSync(this.live()).size;
  }

  readSync(buf: Uint8Array, offset: number, length: number, position: number): number {
    let total = 0;
    while (total < length) {
      const n = fs.readSync(this.live(), buf, offset + total, length - total, position + total);
      if (n === 0) break;
      total += n;
    }
    return total;
  }

  write(data: Uint8Array, position: number): Promise<void> {
    // Plain callbacks and one promise: this sits on the path of every WAL append.
    return new Promise<void>((resolve, reject) => {
      const fd = this.live();
      if (data.byteLength === 0) return resolve();
      let done = 0;
      const next = () =>
        fs.write(fd, data, done, data.byteLength - done, position + done, (err, n) => {
          if (err) return reject(err);
          if (n === 0) {
            return reject(
              Object.assign(new Error(`write to ${this.path} made no progress`), { code: "EIO" }),
            );
          }
          done += n;
          if (done < data.byteLength) next();
          else resolve();
        });
      next();
    });
  }

  datasync(): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      fs.fdatasync(this.live(), (err) => (err ? reject(err) : resolve()));
    });
  }

  truncate(length: number): Promise<void> {
    return promisify<void>((cb) => fs.ftruncate(this.live(), length, (err) => cb(err)));
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await promisify<void>((cb) => fs.close(this.fd, (err) => cb(err)));
  }
}

/** The real file system. */
export class NodeFileSystem implements FileSystem {
  mkdirp(dir: string): void {
    fs.mkdirSync(dir, { recursive: true });
  }

  readdir(dir: string): string[] {
    return fs.readdirSync(dir);
  }

  exists(file: string): boolean {
    return fs.existsSync(file);
  }

  open(file: string): FileHandle {
    return new NodeFileHandle(file, fs.openSync(file, "r+"));
  }

  create(file: string): FileHandle {
    return new NodeFileHandle(file, fs.openSync(file, "w+"));
  }

  readFile(file: string): Uint8Array {
    return fs.readFileSync(file);
  }

  rename(from: string, to: string): Promise<void> {
    return fs.promises.rename(from, to);
  }

  unlink(file: string): Promise<void> {
    return fs.promises.unlink(file);
  }

  async syncDir(dir: string): Promise<void> {
    const fd = await fs.promises.open(dir, "r");
    try {
      await fd.sync();
    } finally {
      await fd.close();
    }
  }
}

export function join(dir: string, name: string): string {
  return path.join(dir, name);
}

/**
 * Creates `dir` (and missing parents) so that it survives a crash, and makes sure it already does:
 * every missing level is synced into its parent, and `dir` is synced into its parent even when it
 * existed, since an earlier attempt may have created it and failed (or crashed) before the sync.
 */
export async function ensureDurableDir(fsys: FileSystem, dir: string): Promise<void> {
  const target = path.resolve(dir);
  const missing: string[] = [];
  for (let d = target; !fsys.exists(d); d = path.dirname(d)) {
    missing.push(d);
    if (path.dirname(d) === d) break;
  }
  if (missing.length > 0) fsys.mkdirp(target);
  const toSync = new Set(missing.map((d) => path.dirname(d)));
  toSync.add(path.dirname(target));
  // Top down: a parent's entry must be durable before its child's matters.
  for (const d of [...toSync].sort((a, b) => a.length - b.length)) await fsys.syncDir(d);
}

/** Streams a file in fresh pieces of at most `chunkBytes`, without holding it whole. */
export async function* readFileChunks(
  fsys: FileSystem,
  file: string,
  chunkBytes = 1024 * 1024,
): AsyncGenerator<Uint8Array, void, undefined> {
  const h = fsys.open(file);
  try {
    const size = h.size();
    for (let at = 0; at < size; ) {
      const piece = new Uint8Array(Math.min(chunkBytes, size - at));
      const n = h.readSync(piece, 0, piece.length, at);
      if (n !== piece.length)
        throw new StorageError(`${file} shrank while being read: ${n} of ${piece.length} bytes at ${at}`);
      at += n;
      yield piece;
    }
  } finally {
    await h.close().catch(() => undefined);
  }
}
