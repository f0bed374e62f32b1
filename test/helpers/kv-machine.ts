/**
 * A key-value state machine on a real store, for command tests: `run` applies a write as the next
 * entry (at the machine's clock reading) or answers a read on the applied state.
 */
import assert from "node:assert/strict";
import { lookupCommand } from "../../src/kv/exec/table.js";
import { KvStateMachine, writeEntry } from "../../src/kv/machine.js";
import { decodeCollection, RecordType } from "../../src/kv/record.js";
import type { Reply } from "../../src/kv/reply.js";
import { KvStore } from "../../src/kv/store.js";
import { EntryType } from "../../src/raft/types.js";

export async function kvMachine(dir: string, startMs = 1_000_000) {
  const store = await KvStore.open(dir);
  const machine = new KvStateMachine(store);
  let index = store.appliedIndex;
  let now = startMs;
  const runAt = async (nowMs: number, ...args: string[]): Promise<Reply> => {
    const bufs = args.map((a) => Buffer.from(a));
    if (lookupCommand(bufs[0]!)?.kind === "write") {
      const [replies] = await machine.apply([
        { index: ++index, term: 1, type: EntryType.Normal, data: writeEntry(nowMs, [bufs]) },
      ]);
      return replies![0]!;
    }
    return machine.read(bufs, nowMs);
  };
  /** The collection id of the key's record (which must be a collection). */
  const idOf = (key: string): number => {
    const r = store.get(Buffer.from(key));
    assert.ok(r !== undefined && r.type !== RecordType.String, `${key} is a collection`);
    return decodeCollection(r.payload).id;
  };
  return {
    store,
    machine,
    run: (...args: string[]) => runAt(now, ...args),
    runAt,
    idOf,
    /** Items stored for collection `id` (not the count its record says). */
    storedItems: (id: number) => store.items(id, null, 1_000_000).length,
    /** Items stored for the collection at `key`; 0 when the key is absent. */
    itemsOf: (key: string) =>
      store.get(Buffer.from(key)) === undefined ? 0 : store.items(idOf(key), null, 1_000_000).length,
    advance: (ms: number) => {
      now += ms;
    },
  };
}
