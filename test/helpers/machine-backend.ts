/**
 * The Redis front door's backend on a key-value state machine alone, without raft: each write is
 * applied as the next entry, in the order written; reads run on the applied state. For tests that
 * drive the real connection code against a real redis-server, quickly and without timing.
 */
import type { KvBackend } from "../../src/api/redis/backend.js";
import {
  type FillWatcher,
  type KvApplyResult,
  type KvStateMachine,
  writeEntry,
} from "../../src/kv/machine.js";
import type { RecordType } from "../../src/kv/record.js";
import { error, type Reply } from "../../src/kv/reply.js";
import type { WatchedKey } from "../../src/kv/watch.js";
import { EntryType } from "../../src/raft/types.js";

export class MachineBackend implements KvBackend {
  private index: number;
  /** Applies one at a time, in index order. */
  private chain: Promise<unknown> = Promise.resolve();

  constructor(private readonly machine: KvStateMachine) {
    this.index = machine.appliedIndex();
  }

  private apply(
    commands: readonly (readonly Buffer[])[],
    watches: readonly WatchedKey[],
  ): Promise<KvApplyResult> {
    const entry = {
      index: ++this.index,
      term: 1,
      type: EntryType.Normal,
      data: writeEntry(Date.now(), commands, null, watches),
    };
    const p = this.chain.then(async () => (await this.machine.apply([entry]))[0]!);
    this.chain = p;
    return p;
  }

  async write(commands: readonly (readonly Buffer[])[]): Promise<readonly Reply[]> {
    return (await this.apply(commands, [])) ?? commands.map(() => error("ERR the write did not run"));
  }

  async read(commands: readonly (readonly Buffer[])[]): Promise<readonly Reply[]> {
    const now = Date.now();
    return commands.map((args) => this.machine.read(args, now));
  }

  async watch(keys: readonly Buffer[]): Promise<readonly WatchedKey[] | Reply> {
    return this.machine.watch(keys, Date.now());
  }

  async execWatched(
    commands: readonly (readonly Buffer[])[],
    watches: readonly WatchedKey[],
    writes: boolean,
  ): Promise<readonly Reply[] | null | Reply> {
    if (writes) return this.apply(commands, watches);
    return this.machine.readWatched(watches, commands, Date.now());
  }

  onFilled(watcher: FillWatcher): void {
    this.machine.onFilled(watcher);
  }

  elementsAt(key: Buffer, type: RecordType): number {
    return this.machine.elementsAt(key, type, Date.now());
  }

  keyCount(): number {
    return this.machine.store.keyCount();
  }

  raftInfo(): readonly string[] {
    return [];
  }
}
