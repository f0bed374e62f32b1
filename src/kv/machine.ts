/**
 * The replicated key-value state machine: applies each batch of committed entries to the store as one
 * batch (with the applied index), answers reads from the applied state, and snapshots and restores
 * through the store.
 */
import type { SnapshotHandle, StateMachine } from "../engine/state-machine.js";
import type { ConfChange, ConfState, Entry, NodeId } from "../raft/types.js";
import { bookAfterChange, decodeAddressContext } from "./address-book.js";
import { decodeKvEntry, encodeKvEntry, type KvOrigin } from "./entry-codec.js";
import { isExpired, readAccess, writeAccess } from "./exec/context.js";
import { ScanCursors } from "./exec/scan-cursors.js";
import { arityOk, hasOverlongKey, lookupCommand, MAX_KEY_BYTES } from "./exec/table.js";
import { decodeCollection, type RecordType } from "./record.js";
import { Errors, error, type Reply } from "./reply.js";
import type { KvStore } from "./store.js";
import { type WatchedKey, watchedVersion, watchesHold } from "./watch.js";

/**
 * One reply per command of the entry (several for a MULTI/EXEC); null when the transaction's watched
 * keys had changed, and nothing ran.
 */
export type KvApplyResult = readonly Reply[] | null;

/** Told the result of each applied entry that names an origin (see KvOrigin). */
export type OriginListener = (origin: KvOrigin, result: KvApplyResult) => void;

/** Told the whole address book each time it may have changed (a membership change, a restore). */
export type AddressBookListener = (book: ReadonlyMap<NodeId, string>) => void;

/**
 * Whoever has clients blocked until a list or sorted set appears at some keys (BLPOP …): told, after
 * each applied batch, which of those keys the batch stored one at. Asked once per batch whether anyone
 * waits at all, so that a batch records nothing otherwise.
 */
export interface FillWatcher {
  readonly waiting: boolean;
  watches(key: Buffer): boolean;
  /** The keys filled (copies), or "all" after a restore from a snapshot. */
  filled(keys: readonly Buffer[] | "all"): void;
}

export class KvStateMachine implements StateMachine<KvApplyResult> {
  /** SCAN positions inside runs of keys that share their first 8 bytes (per node, not replicated). */
  readonly scanCursors = new ScanCursors();
  private listener: OriginListener | null = null;
  private bookListener: AddressBookListener | null = null;
  private fillWatcher: FillWatcher | null = null;

  constructor(readonly store: KvStore) {}

  /**
   * Whoever forwards writes learns here when they are applied (their replies decided, as the batch is
   * applied).
   */
  onOriginApplied(listener: OriginListener): void {
    this.listener = listener;
  }

  /** Whoever routes raft traffic learns here of new members' addresses (see address-book.ts). */
  onAddressBookChanged(listener: AddressBookListener): void {
    this.bookListener = listener;
  }

  /** The front door's blocked clients learn here of lists and sorted sets that writes filled. */
  onFilled(watcher: FillWatcher): void {
    this.fillWatcher = watcher;
  }

  /**
   * The number of elements of the live list or sorted set at `key` (0: none, or another type), in this
   * node's applied state: a hint for blocked clients, which then try their command through the log.
   */
  elementsAt(key: Buffer, type: RecordType, nowMs: number): number {
    const r = this.store.get(key);
    if (r === undefined || r.type !== type || isExpired(r, nowMs)) return 0;
    return decodeCollection(r.payload).count;
  }

  /**
   * Keeps the addresses a membership change introduces, and forgets those of nodes it removed, in the
   * same transaction as the applied index: so the book is in every snapshot from here on.
   */
  async applyConfChange(index: number, change: ConfChange, confState: ConfState): Promise<void> {
    // A context this code did not write introduces nothing; the membership still prunes the book.
    const introduced = (change.context && decodeAddressContext(change.context)) ?? new Map<NodeId, string>();
    const book = bookAfterChange(this.store.addressBook(), introduced, confState);
    const members = [
      ...confState.voters,
      ...confState.learners,
      ...confState.votersOutgoing,
      ...confState.learnersNext,
    ];
    await this.store.writeAddressBook(index, book, members);
    this.bookListener?.(book);
  }

  async apply(
    entries: readonly Entry[],
    decided?: (results: readonly KvApplyResult[]) => void,
  ): Promise<KvApplyResult[]> {
    if (entries.length === 0) return [];
    const last = entries[entries.length - 1]!.index;
    const watcher = this.fillWatcher;
    const results = await this.store.writeBatchAsync(last, (w) => {
      // Asked when the batch runs (which may be after a flush it awaited), not before.
      const filled: Buffer[] | null = watcher?.waiting ? [] : null;
      const onFilled =
        filled === null
          ? undefined
          : (key: Buffer) => {
              if (watcher!.watches(key)) filled.push(Buffer.from(key));
            };
      const origins: Array<KvOrigin | null> = [];
      const out = entries.map((e) => {
        const { nowMs, origin, watches, commands } = decodeKvEntry(e.data);
        origins.push(origin);
        // Checked before anything runs, against the state left by every earlier entry (this batch's too).
        if (watches.length > 0 && !watchesHold(w, watches, nowMs)) return null;
        const ctx = writeAccess(w, nowMs, e.index, this.scanCursors, onFilled);
        return commands.map((args): Reply => {
          const c = lookupCommand(args[0]!, true);
          // The proposer checked these; a replica answers the same way whatever it is given. Reads come
          // in entries too, inside a MULTI/EXEC: they see the transaction's earlier writes.
          if (c === undefined) return error(`ERR unknown command '${args[0]!.toString("latin1")}'`);
          if (!arityOk(c, args.length)) return Errors.wrongArity(c.name);
          if (hasOverlongKey(c, args)) return Errors.keyTooLong(MAX_KEY_BYTES);
          return c.run(ctx, args);
        });
      });
      // The replies are decided; the entries are committed in raft, so they may go out before LMDB's
      // commit (a crash before it re-applies them).
      decided?.(out);
      if (this.listener !== null)
        for (let i = 0; i < origins.length; i++) {
          const o = origins[i];
          if (o) this.listener(o, out[i]!);
        }
      if (filled !== null && filled.length > 0) watcher!.filled(filled);
      return out;
    });
    return results;
  }

  /**
   * WATCH: the keys' versions in the applied state (0: absent, or expired at `nowMs`), with the index
   * of that state. Keys are copied: they outlive the request.
   */
  watch(keys: readonly Buffer[], nowMs: number): WatchedKey[] {
    // One synchronous run reads one committed state: the index and the versions agree.
    const seenAt = this.store.committedIndex();
    return keys.map((key) => ({
      key: Buffer.from(key),
      version: watchedVersion(this.store, key, nowMs),
      seenAt,
    }));
  }

  /** A read-only MULTI/EXEC with watched keys: null (nothing ran) if one of them changed. */
  readWatched(
    watches: readonly WatchedKey[],
    commands: readonly (readonly Buffer[])[],
    nowMs: number,
  ): Reply[] | null {
    if (!watchesHold(this.store, watches, nowMs)) return null;
    return commands.map((args) => this.read(args, nowMs));
  }

  /** Runs a read command against the applied state, judging expiry at `nowMs`. */
  read(args: readonly Buffer[], nowMs: number): Reply {
    const c = lookupCommand(args[0]!);
    if (c === undefined || c.kind !== "read")
      return error(`ERR unknown read command '${args[0]!.toString("latin1")}'`);
    if (!arityOk(c, args.length)) return Errors.wrongArity(c.name);
    if (hasOverlongKey(c, args)) return Errors.keyTooLong(MAX_KEY_BYTES);
    return c.run(readAccess(this.store, nowMs, this.scanCursors), args);
  }

  appliedIndex(): number {
    return this.store.appliedIndex;
  }

  snapshot(): SnapshotHandle {
    return this.store.snapshot();
  }

  async restore(payload: AsyncIterable<Uint8Array>, index: number): Promise<void> {
    await this.store.restore(payload, index);
    this.bookListener?.(this.store.addressBook());
    this.fillWatcher?.filled("all");
  }
}

/** The entry a write (or a MULTI/EXEC of writes, with the keys it watched) is proposed as. */
export function writeEntry(
  nowMs: number,
  commands: readonly (readonly Uint8Array[])[],
  origin: KvOrigin | null = null,
  watches: readonly WatchedKey[] = [],
): Buffer {
  return encodeKvEntry(nowMs, commands, origin, watches);
}
