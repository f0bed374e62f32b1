/** Every error the storage layer raises, in one place so that callers can match on the class. */

export class StorageError extends Error {
  override name = "StorageError";
}

/**
 * The log is damaged before its tail: a record that is not the last one written fails its checksum.
 * The node must not start (it would silently lose acknowledged data); see the WAL's `repair` option.
 */
export class WalCorruptError extends StorageError {
  override name = "WalCorruptError";
  constructor(
    readonly segment: string,
    readonly offset: number,
    readonly reason: string,
  ) {
    super(
      `WAL corrupt in ${segment} at offset ${offset}: ${reason}; refusing to start (see the repair option)`,
    );
  }
}

/**
 * An I/O error (EIO, ENOSPC, …) made the WAL stop: nothing after it is acknowledged, and every later
 * append fails with this error. Restart the node once the disk is healthy.
 */
export class WalFailedError extends StorageError {
  override name = "WalFailedError";
  constructor(override readonly cause: unknown) {
    const code = (cause as { code?: unknown } | null)?.code;
    super(
      `WAL stopped after an I/O error${typeof code === "string" ? ` (${code})` : ""}: ${(cause as Error)?.message ?? String(cause)}`,
    );
  }
}

export class WalClosedError extends StorageError {
  override name = "WalClosedError";
  constructor() {
    super("WAL is closed");
  }
}

/** A batch or entry beyond the configured limits. */
export class WalLimitError extends StorageError {
  override name = "WalLimitError";
}

/**
 * A snapshot file failed verification (magic, version, a length, a checksum, or it is truncated).
 * `loadNewest` logs it and falls back to the previous snapshot; the file is left in place for inspection.
 */
export class SnapshotCorruptError extends StorageError {
  override name = "SnapshotCorruptError";
  constructor(
    readonly file: string,
    readonly reason: string,
  ) {
    super(`snapshot ${file} is corrupt: ${reason}`);
  }
}

/** A snapshot is larger than `maxSnapshotBytes` (or than one buffer can hold); raise the limit or shrink it. */
export class SnapshotTooLargeError extends StorageError {
  override name = "SnapshotTooLargeError";
  constructor(
    readonly bytes: number,
    readonly limitBytes: number,
    readonly file = "",
  ) {
    super(
      `snapshot${file ? ` ${file}` : ""} has ${bytes} bytes of data, over the limit of ${limitBytes} (maxSnapshotBytes)`,
    );
  }
}

/** A snapshot was saved at an index not above the newest one already stored; snapshots only move forward. */
export class SnapshotOutOfOrderError extends StorageError {
  override name = "SnapshotOutOfOrderError";
  constructor(
    readonly index: number,
    readonly newestIndex: number,
  ) {
    super(`snapshot at index ${index} refused: the store already holds one at index ${newestIndex}`);
  }
}

/** No snapshot file at (index, term): it was pruned (a newer one replaced it) or never saved. */
export class SnapshotMissingError extends StorageError {
  override name = "SnapshotMissingError";
  constructor(
    readonly index: number,
    readonly term: number,
    dir: string,
  ) {
    super(`no snapshot ${index}@${term} in ${dir}: a newer one replaced it, or it was never saved`);
  }
}
