/** Errors of the key-value layer, in one place so that callers can match on the class. */

export class KvError extends Error {
  override name = "KvError";
}

/** A snapshot payload that is not one this store wrote (or was cut or damaged on the way). */
export class KvSnapshotFormatError extends KvError {
  override name = "KvSnapshotFormatError";
  constructor(detail: string) {
    super(`the snapshot payload is not a valid key-value snapshot: ${detail}`);
  }
}

/** The store's directory holds something this version cannot open. */
export class KvStoreCorruptError extends KvError {
  override name = "KvStoreCorruptError";
  constructor(detail: string) {
    super(`the key-value store cannot be opened: ${detail}`);
  }
}
