/**
 * The snapshot store: a directory of snapshot files, each holding one state-machine image and the raft
 * metadata it was taken at. A snapshot is written under a temporary name, fdatasynced, renamed to its
 * final name and the directory fsynced, so a crash leaves either the old set of snapshots or the new
 * one, never a half-written file under a final name. The newest file that verifies is loaded; a corrupt
 * one is logged and the previous one tried, and `keep` files are retained so that there is a previous
 * one (the log must therefore keep the entries after {@link SnapshotStore.oldestRetainedIndex}).
 *
 * File names: `snap-<index>-<term>.snap`, both as 16 lower-case hex digits, so that names sort by index;
 * a save in progress writes `snap-<index>-<term>.snap.tmp`, which `open` removes.
 *
 * File format, version 1 (all integers little-endian; u64 values must be at most 2^53 - 1):
 *
 *   offset        size  field
 *   0             8     magic "RKVSNAP\0"
 *   8             2     format version (u16) = 1
 *   10            4     header length H (u32): the bytes of the header that follows
 *   14            H     header:
 *                         index u64, term u64,
 *                         flags u8 (bit 0: confState.autoLeave; other bits must be zero),
 *                         voters, learners, votersOutgoing, learnersNext: each count u32 + count × u64,
 *                         data length D u64
 *   14+H          4     header check: the masked CRC-32C of bytes [0, 14+H), so `list()` can trust the
 *                       header alone (masked as LevelDB does, see maskCrc, so that the whole-file CRC
 *                       below still depends on the header: the CRC of a message followed by its own
 *                       plain CRC is the same constant for every message)
 *   18+H          D     data (opaque state-machine image)
 *   18+H+D        4     CRC-32C of bytes [0, 18+H+D): everything before it
 *   22+H+D        8     trailer magic "RKVSEND\0"
 *
 * The file is exactly 30 + H + D bytes. A reader bounds every length before it allocates: H by
 * {@link MAX_HEADER_BYTES} and the file size, each list count by the header bytes left, D by the file
 * size; anything out of bounds is a {@link SnapshotCorruptError}. A consistent D over `maxSnapshotBytes`
 * (or over the 4 GiB one buffer can hold) is a {@link SnapshotTooLargeError}, raised before allocating.
 *
 * The data may come as an async iterable of unknown total length, so the writer streams it to the
 * file after the header's place, checksumming as it goes, then writes the header (now knowing D) and
 * combines the header's CRC with the data's ({@link crc32cCombine}) for the trailer.
 */
import * as nodePath from "node:path";
import type { RaftLogger } from "../raft/config.js";
import { silentLogger } from "../raft/config.js";
import type { ConfState, NodeId, SnapshotMetadata } from "../raft/types.js";
import { crc32c } from "./crc32c.js";
import {
  SnapshotCorruptError,
  SnapshotMissingError,
  SnapshotOutOfOrderError,
  SnapshotTooLargeError,
} from "./errors.js";
import type { FileHandle, FileSystem } from "./fs.js";
import { ensureDurableDir, join } from "./fs.js";

export const SNAPSHOT_FORMAT_VERSION = 1;
const MAGIC = new Uint8Array([0x52, 0x4b, 0x56, 0x53, 0x4e, 0x41, 0x50, 0x00]); // "RKVSNAP\0"
const TRAILER_MAGIC = new Uint8Array([0x52, 0x4b, 0x56, 0x53, 0x45, 0x4e, 0x44, 0x00]); // "RKVSEND\0"
/** magic + version + header length. */
const PREFIX_BYTES = 14;
const HEADER_CRC_BYTES = 4;
/** CRC + trailer magic. */
const TRAILER_BYTES = 12;
/** index, term, flags, four empty lists, data length. */
const MIN_HEADER_BYTES = 8 + 8 + 1 + 4 * 4 + 8;
/** Bounds the header a reader will allocate: room for about 8000 node ids across the four lists. */
export const MAX_HEADER_BYTES = 64 * 1024;
const FLAG_AUTO_LEAVE = 1;
/** Bytes of a file around its data. */
const OVERHEAD_BYTES = PREFIX_BYTES + HEADER_CRC_BYTES + TRAILER_BYTES;

const TWO_32 = 0x1_0000_0000;
/** The largest single buffer this runtime can allocate: a loaded snapshot's data must fit in one. */
const MAX_BUFFER_BYTES = 2 ** 32;
/** Chunk size for reading a snapshot back. */
const READ_CHUNK_BYTES = 4 * 1024 * 1024;
/** Size of the pieces a payload is streamed in. */
const PAYLOAD_CHUNK_BYTES = 1024 * 1024;

export const SNAPSHOT_STORE_DEFAULTS = {
  keep: 3,
  maxSnapshotBytes: 8 * 1024 * 1024 * 1024,
  writeChunkBytes: 1024 * 1024,
} as const;

export interface SnapshotStoreOptions {
  /** Snapshot files retained (the newest `keep`); at least 1. A corrupt newest falls back to the next. */
  keep?: number;
  /**
   * Prune after every save (the default, for a store used on its own). A caller that records each
   * snapshot elsewhere before it may be relied on (DiskStorage, in the WAL) turns this off and calls
   * pruneThrough once the record is durable, so that a crash in between never leaves it without the
   * snapshot its record names.
   */
  pruneOnSave?: boolean;
  /** Upper bound on a snapshot's data bytes, for saving and loading. */
  maxSnapshotBytes?: number;
  /** Data is written to the file in writes of at most this many bytes (small chunks are coalesced). */
  writeChunkBytes?: number;
  logger?: RaftLogger;
}

/** A snapshot file as saved or listed. `bytes` counts the data (payload); `fileBytes` the whole file. */
export interface SnapshotInfo {
  readonly index: number;
  readonly term: number;
  readonly path: string;
  readonly bytes: number;
  readonly fileBytes: number;
}

/** A listed snapshot: its verified header, without its data. */
export interface SnapshotListing extends SnapshotInfo {
  readonly metadata: SnapshotMetadata;
}

/**
 * A loaded snapshot: the raft {@link Snapshot} shape plus where it came from. `data` is empty when it was
 * loaded without its data (verified whole, but read back with {@link SnapshotStore.payload}).
 */
export interface LoadedSnapshot {
  readonly metadata: SnapshotMetadata;
  readonly data: Uint8Array;
  readonly dataBytes: number;
  readonly path: string;
}

/** A snapshot's data, to be read as a stream (verified against the file's checksum as it ends). */
export interface SnapshotPayload {
  readonly bytes: number;
  /** Yields the data in fresh arrays; throws SnapshotCorruptError at the end if it does not verify. */
  chunks(): AsyncGenerator<Uint8Array, void, undefined>;
}

export interface LoadOptions {
  /** Keep the data in memory (default). Without it the whole file is still read and verified. */
  withData?: boolean;
}

const EMPTY_DATA = new Uint8Array(0);

interface Entry {
  readonly index: number;
  readonly term: number;
  readonly name: string;
}

const NAME_RE = /^snap-([0-9a-f]{16})-([0-9a-f]{16})\.snap$/;
const TMP_RE = /^snap-[0-9a-f]{16}-[0-9a-f]{16}\.snap\.tmp$/;

export function snapshotFileName(index: number, term: number): string {
  return `snap-${hex16(index)}-${hex16(term)}.snap`;
}

function hex16(n: number): string {
  return n.toString(16).padStart(16, "0");
}

function parseHex16(s: string): number | null {
  const v = BigInt(`0x${s}`);
  return v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : null;
}

/** Newest first: by index, then term. */
function newestFirst(a: Entry, b: Entry): number {
  return b.index - a.index || b.term - a.term;
}

export class SnapshotStore {
  private entries: Entry[] = [];
  /**
   * Files passed over in this process (found corrupt, or refused by loadNewest's `accept`): they do not
   * block a save at or below their index, and such a save removes them.
   */
  private readonly passedOver = new Set<string>();
  private queue: Promise<void> = Promise.resolve();
  private readonly keep: number;
  private readonly pruneOnSave: boolean;
  private readonly maxSnapshotBytes: number;
  private readonly writeChunkBytes: number;
  private readonly logger: RaftLogger;

  private constructor(
    private readonly fs: FileSystem,
    readonly dir: string,
    options: SnapshotStoreOptions,
  ) {
    this.keep = options.keep ?? SNAPSHOT_STORE_DEFAULTS.keep;
    this.pruneOnSave = options.pruneOnSave ?? true;
    this.maxSnapshotBytes = options.maxSnapshotBytes ?? SNAPSHOT_STORE_DEFAULTS.maxSnapshotBytes;
    this.writeChunkBytes = options.writeChunkBytes ?? SNAPSHOT_STORE_DEFAULTS.writeChunkBytes;
    this.logger = options.logger ?? silentLogger;
    if (!Number.isSafeInteger(this.keep) || this.keep < 1) {
      throw new RangeError(`keep must be an integer >= 1, got ${this.keep}`);
    }
    if (!Number.isSafeInteger(this.maxSnapshotBytes) || this.maxSnapshotBytes < 0) {
      throw new RangeError(`maxSnapshotBytes must be a non-negative integer, got ${this.maxSnapshotBytes}`);
    }
    if (!Number.isSafeInteger(this.writeChunkBytes) || this.writeChunkBytes < 1) {
      throw new RangeError(`writeChunkBytes must be a positive integer, got ${this.writeChunkBytes}`);
    }
  }

  /**
   * Opens (creating if needed) the snapshot directory, removes temporary files left by an interrupted
   * save, and lists the snapshot files. Does not read them: see {@link loadNewest}.
   */
  static async open(fs: FileSystem, dir: string, options: SnapshotStoreOptions = {}): Promise<SnapshotStore> {
    const store = new SnapshotStore(fs, dir, options);
    await ensureDurableDir(fs, dir);
    let removed = 0;
    for (const name of fs.readdir(dir)) {
      if (!TMP_RE.test(name)) continue;
      store.logger.info("snapshot store: removing a temporary file left by an interrupted save", {
        file: join(dir, name),
      });
      await fs.unlink(join(dir, name));
      removed++;
    }
    if (removed > 0) await fs.syncDir(dir);
    store.rescan();
    store.logger.debug("snapshot store opened", {
      dir,
      snapshots: store.entries.length,
      newestIndex: store.entries[0]?.index ?? 0,
    });
    return store;
  }

  /** The index of the oldest snapshot file kept, or 0 if there is none: the log must keep what follows it. */
  oldestRetainedIndex(): number {
    return this.entries[this.entries.length - 1]?.index ?? 0;
  }

  /** The index of the newest snapshot file present (verified or not), or 0 if there is none. */
  newestIndex(): number {
    return this.entries[0]?.index ?? 0;
  }

  /**
   * Writes a snapshot durably: temporary file, datasync, rename, directory sync; then removes the
   * snapshots beyond `keep`, oldest first. Refuses an index not above the newest snapshot present
   * ({@link SnapshotOutOfOrderError}; files that loadNewest passed over do not count, and a save at or
   * below their index removes them) and data over
   * `maxSnapshotBytes` ({@link SnapshotTooLargeError}). A file-system error rejects with that error
   * (its `code` intact) after removing the temporary file; the snapshots before it stay loadable.
   * Saves, loads and listings run one at a time. The data (a buffer, or each chunk until the next is
   * pulled) must not be modified while it is being written.
   */
  save(metadata: SnapshotMetadata, data: Uint8Array | AsyncIterable<Uint8Array>): Promise<SnapshotInfo> {
    return this.exclusive(() => this.saveExclusive(metadata, data));
  }

  /**
   * The newest snapshot that verifies, or null if there is none. A corrupt file is logged (file and
   * reason) and the previous one tried. File-system errors (EIO, …) are not corruption and reject.
   *
   * `accept`, if given, is asked first about each file by the index and term of its name (before
   * reading it); a file it refuses is passed over like a corrupt one (e.g. a snapshot made durable
   * just before a crash that the log never recorded).
   */
  loadNewest(
    accept?: (index: number, term: number) => boolean,
    options: LoadOptions = {},
  ): Promise<LoadedSnapshot | null> {
    const mode = options.withData === false ? "verify" : "data";
    return this.exclusive(async () => {
      for (const e of this.entries) {
        const path = join(this.dir, e.name);
        if (accept !== undefined && !accept(e.index, e.term)) {
          this.passedOver.add(e.name);
          this.logger.info("snapshot not accepted by the caller; trying the previous one", {
            file: path,
            index: e.index,
            term: e.term,
          });
          continue;
        }
        try {
          const { metadata, data, dataBytes } = await this.read(path, e, mode);
          this.logger.info("snapshot loaded", { file: path, index: e.index, term: e.term, bytes: dataBytes });
          return { metadata, data: data ?? EMPTY_DATA, dataBytes, path };
        } catch (err) {
          if (!(err instanceof SnapshotCorruptError)) throw err;
          this.passedOver.add(e.name);
          this.logger.warn("snapshot is corrupt; trying the previous one", {
            file: err.file,
            reason: err.reason,
            index: e.index,
          });
        }
      }
      return null;
    });
  }

  /**
   * Prunes against the snapshot the caller has durably recorded at `recordedIndex`: files passed over
   * (corrupt, or never recorded) go, that snapshot stays, and of those at or below it the newest `keep`
   * stay. Files above it that were not passed over (a save whose record is still in flight) are left.
   */
  pruneThrough(recordedIndex: number): Promise<void> {
    return this.exclusive(async () => {
      const passed = this.entries.filter((e) => this.passedOver.has(e.name) && e.index !== recordedIndex);
      const held = this.entries.filter((e) => e.index <= recordedIndex && !this.passedOver.has(e.name));
      await this.remove([...passed, ...held.slice(this.keep).reverse()], (e) =>
        passed.includes(e) ? "passed over (corrupt or never recorded)" : "beyond keep",
      );
    });
  }

  /** The snapshots present whose header verifies, newest first, without reading their data. */
  list(): Promise<SnapshotListing[]> {
    return this.exclusive(async () => {
      const out: SnapshotListing[] = [];
      for (const e of this.entries) {
        const path = join(this.dir, e.name);
        try {
          const { metadata, dataBytes, fileBytes } = await this.read(path, e, "header");
          out.push({ index: e.index, term: e.term, path, bytes: dataBytes, fileBytes, metadata });
        } catch (err) {
          if (!(err instanceof SnapshotCorruptError)) throw err;
          this.passedOver.add(e.name);
          this.logger.warn("snapshot header is corrupt; not listed", { file: err.file, reason: err.reason });
        }
      }
      return out;
    });
  }

  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn);
    this.queue = run.then(
      () => undefined,
      () => undefined,
    );
    return run;
  }

  /** Rebuilds the in-memory list of snapshot files from the directory. */
  private rescan(): void {
    const entries: Entry[] = [];
    for (const name of this.fs.readdir(this.dir)) {
      const m = NAME_RE.exec(name);
      if (m === null) continue;
      const index = parseHex16(m[1]!);
      const term = parseHex16(m[2]!);
      if (index === null || term === null) {
        this.logger.warn("snapshot store: ignoring a file whose index or term is out of range", {
          file: join(this.dir, name),
        });
        continue;
      }
      entries.push({ index, term, name });
    }
    entries.sort(newestFirst);
    this.entries = entries;
  }

  private async saveExclusive(
    metadata: SnapshotMetadata,
    data: Uint8Array | AsyncIterable<Uint8Array>,
  ): Promise<SnapshotInfo> {
    checkMetadata(metadata);
    const newest = this.entries.find((e) => !this.passedOver.has(e.name));
    if (newest !== undefined && metadata.index <= newest.index) {
      throw new SnapshotOutOfOrderError(metadata.index, newest.index);
    }
    if (data instanceof Uint8Array && data.length > this.maxSnapshotBytes) {
      throw new SnapshotTooLargeError(data.length, this.maxSnapshotBytes);
    }
    const name = snapshotFileName(metadata.index, metadata.term);
    const path = join(this.dir, name);
    const tmpPath = `${path}.tmp`;
    const headerLen = encodeHeader(metadata, 0).length;
    let handle: FileHandle | null = null;
    let renaming = false;
    let dataBytes = 0;
    try {
      handle = this.fs.create(tmpPath);
      const { bytes, crc: dataCrc } = await this.writeData(handle, headerLen, data);
      dataBytes = bytes;
      const header = encodeHeader(metadata, dataBytes);
      await handle.write(header, 0);
      const trailer = new Uint8Array(TRAILER_BYTES);
      const crc = crc32cCombine(crc32c(header), dataCrc, dataBytes);
      new DataView(trailer.buffer).setUint32(0, crc, true);
      trailer.set(TRAILER_MAGIC, 4);
      await handle.write(trailer, headerLen + dataBytes);
      await handle.datasync();
      const h = handle;
      handle = null;
      await h.close();
      renaming = true;
      await this.fs.rename(tmpPath, path);
      await this.fs.syncDir(this.dir);
    } catch (err) {
      await this.cleanUpFailedSave(handle, tmpPath, renaming ? path : null, err);
      throw err;
    }
    const fileBytes = headerLen + dataBytes + TRAILER_BYTES;
    this.passedOver.delete(name);
    this.rescan();
    this.logger.info("snapshot saved", {
      file: path,
      index: metadata.index,
      term: metadata.term,
      bytes: dataBytes,
    });
    if (this.pruneOnSave) await this.prune(metadata.index);
    return { index: metadata.index, term: metadata.term, path, bytes: dataBytes, fileBytes };
  }

  /** Streams the data to `handle` from `position`, in writes of at most writeChunkBytes. */
  private async writeData(
    handle: FileHandle,
    position: number,
    data: Uint8Array | AsyncIterable<Uint8Array>,
  ): Promise<{ bytes: number; crc: number }> {
    const chunkBytes = this.writeChunkBytes;
    let crc = 0;
    let bytes = 0;
    if (data instanceof Uint8Array) {
      for (let off = 0; off < data.length; off += chunkBytes) {
        const piece = data.subarray(off, Math.min(off + chunkBytes, data.length));
        crc = crc32c(piece, crc);
        await handle.write(piece, position + off);
      }
      return { bytes: data.length, crc };
    }
    // Small chunks are copied into `pending` and written together; large ones are written in place.
    let pending: Uint8Array | null = null;
    let pendingLen = 0;
    const flush = async (): Promise<void> => {
      if (pending === null || pendingLen === 0) return;
      crc = crc32c(pending, crc, 0, pendingLen);
      await handle.write(pending.subarray(0, pendingLen), position);
      position += pendingLen;
      pendingLen = 0;
    };
    for await (const chunk of data) {
      bytes += chunk.length;
      if (bytes > this.maxSnapshotBytes) throw new SnapshotTooLargeError(bytes, this.maxSnapshotBytes);
      if (chunk.length >= chunkBytes) {
        await flush();
        for (let off = 0; off < chunk.length; off += chunkBytes) {
          const piece = chunk.subarray(off, Math.min(off + chunkBytes, chunk.length));
          crc = crc32c(piece, crc);
          await handle.write(piece, position);
          position += piece.length;
        }
        continue;
      }
      pending ??= new Uint8Array(chunkBytes);
      let off = 0;
      while (off < chunk.length) {
        const n = Math.min(chunk.length - off, chunkBytes - pendingLen);
        pending.set(chunk.subarray(off, off + n), pendingLen);
        pendingLen += n;
        off += n;
        if (pendingLen === chunkBytes) await flush();
      }
    }
    await flush();
    return { bytes, crc };
  }

  /**
   * After a failed save, puts the directory back as it was, as far as a failing disk allows: closes and
   * removes the temporary file and, if the rename was attempted, the final name too (a save reported as
   * failed must not leave its snapshot in force; until a directory sync it may or may not survive a
   * crash, and either outcome is a valid state). A final name that cannot be removed is passed over, so
   * that the caller may retry the save.
   */
  private async cleanUpFailedSave(
    handle: FileHandle | null,
    tmpPath: string,
    renamedPath: string | null,
    err: unknown,
  ): Promise<void> {
    const path = renamedPath ?? tmpPath.slice(0, -".tmp".length);
    const code = (err as { code?: unknown } | null)?.code;
    this.logger.warn("snapshot save failed", {
      file: path,
      code: typeof code === "string" ? code : undefined,
      error: err instanceof Error ? err.message : String(err),
    });
    if (handle !== null) {
      try {
        await handle.close();
      } catch {
        // The save already failed; the original error is the one to report.
      }
    }
    try {
      if (this.fs.exists(tmpPath)) await this.fs.unlink(tmpPath);
    } catch (unlinkErr) {
      this.logger.warn("could not remove the temporary snapshot file; open() will", {
        file: tmpPath,
        error: unlinkErr instanceof Error ? unlinkErr.message : String(unlinkErr),
      });
    }
    if (renamedPath !== null) {
      try {
        if (this.fs.exists(renamedPath)) await this.fs.unlink(renamedPath);
      } catch (unlinkErr) {
        this.passedOver.add(nodePath.basename(renamedPath));
        this.logger.warn("could not remove the snapshot of a failed save; a retry will replace it", {
          file: renamedPath,
          error: unlinkErr instanceof Error ? unlinkErr.message : String(unlinkErr),
        });
      }
    }
    try {
      this.rescan();
    } catch {
      // Keep the previous listing; the next open re-reads the directory.
    }
  }

  /**
   * Removes the files passed over at or above the index just saved (superseded by it), then the
   * snapshots beyond `keep`, oldest first, then syncs the directory. A failure is logged, not thrown:
   * the new snapshot is already durable, and the next save prunes again.
   */
  private async prune(savedIndex: number): Promise<void> {
    const superseded = this.entries.filter((e) => e.index >= savedIndex && this.passedOver.has(e.name));
    const rest = this.entries.filter((e) => !superseded.includes(e));
    await this.remove([...superseded, ...rest.slice(this.keep).reverse()], (e) =>
      superseded.includes(e) ? "passed over at load, superseded" : "beyond keep",
    );
  }

  /**
   * Unlinks snapshot files, then syncs the directory. A failure is logged, not thrown: the snapshot
   * just saved or recorded is already durable, and the next prune retries.
   */
  private async remove(victims: readonly Entry[], reason: (e: Entry) => string): Promise<void> {
    if (victims.length === 0) return;
    try {
      for (const e of victims) {
        const path = join(this.dir, e.name);
        await this.fs.unlink(path);
        this.passedOver.delete(e.name);
        this.logger.info("snapshot pruned", { file: path, index: e.index, term: e.term, reason: reason(e) });
      }
      await this.fs.syncDir(this.dir);
    } catch (err) {
      this.logger.warn("pruning old snapshots failed; the next prune retries", {
        dir: this.dir,
        error: err instanceof Error ? err.message : String(err),
      });
    }
    this.rescan();
  }

  /**
   * The data of the snapshot at (index, term), to stream without holding it in memory: to a peer, or
   * into the state machine. The header is verified now; the data as it is read.
   */
  async payload(index: number, term: number): Promise<SnapshotPayload> {
    const entry = this.entries.find((e) => e.index === index && e.term === term);
    if (entry === undefined) throw new SnapshotMissingError(index, term, this.dir);
    const path = join(this.dir, entry.name);
    const { dataBytes } = await this.read(path, entry, "header");
    const fs = this.fs;
    return {
      bytes: dataBytes,
      async *chunks() {
        const h = fs.open(path);
        try {
          yield* streamVerified(h, path, entry);
        } finally {
          await h.close().catch(() => undefined);
        }
      },
    };
  }

  /**
   * Reads and verifies the file of `entry`: the header always; in "verify" mode also the data and the
   * trailer, without keeping the data; in "data" mode keeping it.
   * Throws SnapshotCorruptError for anything that does not verify; file-system errors pass through.
   */
  private async read(path: string, entry: Entry, mode: ReadMode): Promise<VerifiedFile> {
    const h = this.fs.open(path);
    try {
      return readVerified(h, path, entry, mode, Math.min(this.maxSnapshotBytes, MAX_BUFFER_BYTES));
    } finally {
      try {
        await h.close();
      } catch {
        // The handle was only read: closing it cannot lose data, and must not mask the result.
      }
    }
  }
}

interface VerifiedFile {
  readonly metadata: SnapshotMetadata;
  /** Present when read in "data" mode. */
  readonly data?: Uint8Array;
  readonly dataBytes: number;
  readonly fileBytes: number;
  readonly dataStart: number;
  /** The running CRC-32C of the bytes before the data. */
  readonly headerCrc: number;
}

function checkMetadata(m: SnapshotMetadata): void {
  const u64 = (what: string, v: number): void => {
    if (!Number.isSafeInteger(v) || v < 0)
      throw new RangeError(`snapshot ${what} must be a safe integer >= 0, got ${v}`);
  };
  u64("index", m.index);
  u64("term", m.term);
  if (m.index < 1) throw new RangeError("snapshot index must be >= 1 (index 0 is the empty snapshot)");
  const cs = m.confState;
  for (const [what, ids] of [
    ["voters", cs.voters],
    ["learners", cs.learners],
    ["votersOutgoing", cs.votersOutgoing],
    ["learnersNext", cs.learnersNext],
  ] as const) {
    for (const id of ids) u64(`confState.${what} id`, id);
  }
}

/** Prefix (magic, version, header length), header and header CRC: the first 18 + H bytes of a file. */
function encodeHeader(m: SnapshotMetadata, dataBytes: number): Uint8Array {
  const cs = m.confState;
  const lists = [cs.voters, cs.learners, cs.votersOutgoing, cs.learnersNext];
  let headerLen = 8 + 8 + 1 + 8;
  for (const l of lists) headerLen += 4 + 8 * l.length;
  if (headerLen > MAX_HEADER_BYTES) {
    throw new RangeError(
      `snapshot header would be ${headerLen} bytes, over ${MAX_HEADER_BYTES}: too many nodes`,
    );
  }
  const buf = new Uint8Array(PREFIX_BYTES + headerLen + HEADER_CRC_BYTES);
  const v = new DataView(buf.buffer);
  buf.set(MAGIC, 0);
  v.setUint16(8, SNAPSHOT_FORMAT_VERSION, true);
  v.setUint32(10, headerLen, true);
  let p = PREFIX_BYTES;
  const u64 = (n: number): void => {
    v.setUint32(p, n >>> 0, true);
    v.setUint32(p + 4, Math.floor(n / TWO_32), true);
    p += 8;
  };
  u64(m.index);
  u64(m.term);
  v.setUint8(p++, cs.autoLeave ? FLAG_AUTO_LEAVE : 0);
  for (const l of lists) {
    v.setUint32(p, l.length, true);
    p += 4;
    for (const id of l) u64(id);
  }
  u64(dataBytes);
  v.setUint32(p, maskCrc(crc32c(buf, 0, 0, p)), true);
  return buf;
}

/** LevelDB's CRC mask: a stored CRC that is not the plain CRC of the bytes before it. */
export function maskCrc(crc: number): number {
  return ((((crc >>> 15) | (crc << 17)) >>> 0) + 0xa282ead8) >>> 0;
}

function readExactly(h: FileHandle, path: string, buf: Uint8Array, position: number, what: string): void {
  const n = h.readSync(buf, 0, buf.length, position);
  if (n !== buf.length) {
    throw new SnapshotCorruptError(
      path,
      `truncated: ${what} at offset ${position} needs ${buf.length} bytes, got ${n}`,
    );
  }
}

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

type ReadMode = "header" | "verify" | "data";

/** Streams the data of a file whose header verifies, checking the whole-file checksum at the end. */
async function* streamVerified(h: FileHandle, path: string, entry: Entry): AsyncGenerator<Uint8Array> {
  const { dataBytes, dataStart, headerCrc } = readVerified(h, path, entry, "header", Number.MAX_SAFE_INTEGER);
  let crc = headerCrc;
  for (let off = 0; off < dataBytes; off += PAYLOAD_CHUNK_BYTES) {
    const len = Math.min(PAYLOAD_CHUNK_BYTES, dataBytes - off);
    const chunk = new Uint8Array(len);
    readExactly(h, path, chunk, dataStart + off, "data");
    crc = crc32c(chunk, crc);
    yield chunk;
  }
  checkTrailer(h, path, dataStart + dataBytes, crc);
}

function checkTrailer(h: FileHandle, path: string, at: number, crc: number): void {
  const trailer = new Uint8Array(TRAILER_BYTES);
  readExactly(h, path, trailer, at, "trailer");
  if (!equalBytes(trailer.subarray(4), TRAILER_MAGIC))
    throw new SnapshotCorruptError(path, "bad trailer magic");
  if (crc !== new DataView(trailer.buffer).getUint32(0, true))
    throw new SnapshotCorruptError(path, "checksum mismatch");
}

function readVerified(
  h: FileHandle,
  path: string,
  entry: Entry,
  mode: ReadMode,
  maxDataBytes: number,
): VerifiedFile {
  const corrupt = (reason: string): SnapshotCorruptError => new SnapshotCorruptError(path, reason);
  const fileBytes = h.size();
  const minFile = OVERHEAD_BYTES + MIN_HEADER_BYTES;
  if (fileBytes < PREFIX_BYTES)
    throw corrupt(`truncated: ${fileBytes} bytes, less than the ${minFile} of the smallest snapshot`);

  const prefix = new Uint8Array(PREFIX_BYTES);
  readExactly(h, path, prefix, 0, "prefix");
  const pv = new DataView(prefix.buffer);
  if (!equalBytes(prefix.subarray(0, 8), MAGIC)) throw corrupt("bad magic (not a raftkv snapshot file)");
  const version = pv.getUint16(8, true);
  if (version !== SNAPSHOT_FORMAT_VERSION) {
    throw corrupt(`unsupported format version ${version} (this build reads ${SNAPSHOT_FORMAT_VERSION})`);
  }
  const headerLen = pv.getUint32(10, true);
  if (headerLen < MIN_HEADER_BYTES || headerLen > MAX_HEADER_BYTES) {
    throw corrupt(`header length ${headerLen} out of bounds [${MIN_HEADER_BYTES}, ${MAX_HEADER_BYTES}]`);
  }
  if (PREFIX_BYTES + headerLen + HEADER_CRC_BYTES > fileBytes) {
    throw corrupt(`truncated: header length ${headerLen} runs past the end of the ${fileBytes}-byte file`);
  }

  const header = new Uint8Array(headerLen + HEADER_CRC_BYTES);
  readExactly(h, path, header, PREFIX_BYTES, "header");
  const hv = new DataView(header.buffer);
  const headerCheck = maskCrc(crc32c(header, crc32c(prefix), 0, headerLen));
  if (headerCheck !== hv.getUint32(headerLen, true)) throw corrupt("header checksum mismatch");

  let p = 0;
  const u64 = (what: string): number => {
    if (p + 8 > headerLen) throw corrupt(`header too short for ${what}`);
    const lo = hv.getUint32(p, true);
    const hi = hv.getUint32(p + 4, true);
    p += 8;
    if (hi >= 0x20_0000) throw corrupt(`${what} is over 2^53`);
    return hi * TWO_32 + lo;
  };
  const list = (what: string): NodeId[] => {
    if (p + 4 > headerLen) throw corrupt(`header too short for the ${what} count`);
    const count = hv.getUint32(p, true);
    p += 4;
    if (count > (headerLen - p) / 8) throw corrupt(`${what} count ${count} runs past the header`);
    const ids: NodeId[] = [];
    for (let i = 0; i < count; i++) ids.push(u64(`${what} id`));
    return ids;
  };
  const index = u64("index");
  const term = u64("term");
  if (p + 1 > headerLen) throw corrupt("header too short for flags");
  const flags = hv.getUint8(p++);
  if ((flags & ~FLAG_AUTO_LEAVE) !== 0) throw corrupt(`unknown header flags 0x${flags.toString(16)}`);
  const confState: ConfState = {
    voters: list("voters"),
    learners: list("learners"),
    votersOutgoing: list("votersOutgoing"),
    learnersNext: list("learnersNext"),
    autoLeave: (flags & FLAG_AUTO_LEAVE) !== 0,
  };
  const dataBytes = u64("data length");
  if (p !== headerLen) throw corrupt(`header has ${headerLen - p} bytes past its last field`);
  if (index !== entry.index || term !== entry.term) {
    throw corrupt(
      `header says index ${index} term ${term}, the file name index ${entry.index} term ${entry.term}`,
    );
  }
  if (index < 1) throw corrupt("index 0 in a snapshot file");

  const dataStart = PREFIX_BYTES + headerLen + HEADER_CRC_BYTES;
  const expectedBytes = dataStart + dataBytes + TRAILER_BYTES;
  if (expectedBytes > fileBytes) {
    throw corrupt(
      `truncated: ${fileBytes} bytes, the header says ${expectedBytes} (data length ${dataBytes})`,
    );
  }
  if (expectedBytes < fileBytes) {
    throw corrupt(
      `${fileBytes - expectedBytes} bytes past the end the header gives (data length ${dataBytes})`,
    );
  }
  const metadata: SnapshotMetadata = { index, term, confState };
  const headerCrc = crc32c(header, crc32c(prefix));
  const verified = { metadata, dataBytes, fileBytes, dataStart, headerCrc };
  if (mode === "header") return verified;

  const keep = mode === "data";
  if (keep && dataBytes > maxDataBytes) throw new SnapshotTooLargeError(dataBytes, maxDataBytes, path);
  const data = new Uint8Array(keep ? dataBytes : Math.min(dataBytes, READ_CHUNK_BYTES));
  let crc = headerCrc;
  for (let off = 0; off < dataBytes; off += READ_CHUNK_BYTES) {
    const len = Math.min(READ_CHUNK_BYTES, dataBytes - off);
    const at = keep ? off : 0;
    const n = h.readSync(data, at, len, dataStart + off);
    if (n !== len) throw corrupt(`truncated: data at offset ${dataStart + off} needs ${len} bytes, got ${n}`);
    crc = crc32c(data, crc, at, at + len);
  }
  checkTrailer(h, path, dataStart + dataBytes, crc);
  return keep ? { ...verified, data } : verified;
}

// CRC-32C of a concatenation from the CRCs of its parts (zlib's crc32_combine, Castagnoli polynomial):
// appending n zero bits to a CRC register is linear over GF(2), so it is a 32×32 bit matrix, squared
// repeatedly to apply len2 zero bytes in O(log len2).
const POLY = 0x82f63b78;

function gf2Times(mat: Uint32Array, vec: number): number {
  let sum = 0;
  for (let i = 0; vec !== 0; i++, vec >>>= 1) if (vec & 1) sum ^= mat[i]!;
  return sum >>> 0;
}

function gf2Square(square: Uint32Array, mat: Uint32Array): void {
  for (let n = 0; n < 32; n++) square[n] = gf2Times(mat, mat[n]!);
}

/** crc32c(A ‖ B) from crc32c(A), crc32c(B) and B's length in bytes. */
export function crc32cCombine(crc1: number, crc2: number, len2: number): number {
  if (len2 <= 0) return crc1 >>> 0;
  const even = new Uint32Array(32);
  const odd = new Uint32Array(32);
  odd[0] = POLY; // the operator for one zero bit
  for (let n = 1, row = 1; n < 32; n++, row = (row << 1) >>> 0) odd[n] = row;
  gf2Square(even, odd); // two zero bits
  gf2Square(odd, even); // four zero bits
  let c = crc1 >>> 0;
  let len = len2;
  for (;;) {
    gf2Square(even, odd); // first pass: one zero byte
    if (len % 2 === 1) c = gf2Times(even, c);
    len = Math.floor(len / 2);
    if (len === 0) break;
    gf2Square(odd, even);
    if (len % 2 === 1) c = gf2Times(odd, c);
    len = Math.floor(len / 2);
    if (len === 0) break;
  }
  return (c ^ crc2) >>> 0;
}
