/**
 * A key-value state machine on a real store, for command tests: `run` applies a write as the next
 * entry (at the machine's clock reading) or answers a read on the applied state.
 */
import assert from "node:assert/strict";
import { lookupCommand } from "../../src/kv/exec/table.js";
import { BLOCK_SPLIT } from "../../src/kv/exec/zset-ranks.js";
import { KvStateMachine, writeEntry } from "../../src/kv/machine.js";
import { decodeCollection, RecordType, rankIndexId } from "../../src/kv/record.js";
import type { Reply } from "../../src/kv/reply.js";
import { KvStore } from "../../src/kv/store.js";
import { EntryType } from "../../src/raft/types.js";

const BY_SCORE = 1;
const BY_BLOCK = 2;

/**
 * A sorted set's rank index must describe its members exactly: a first block, every block's count the
 * members from its bound up to the next block's, none over BLOCK_SPLIT, the counts summing to the size.
 */
function checkRankIndex(
  key: string,
  items: ReadonlyArray<[Buffer, Buffer]>,
  blocks: ReadonlyArray<[Buffer, Buffer]>,
  count: number,
): void {
  assert.ok(
    blocks.every(([k]) => k[0] === BY_BLOCK),
    `${key}: the rank index holds blocks only`,
  );
  if (blocks.length === 0) return; // a set stored before rank indexes
  const scores = items.filter(([k]) => k[0] === BY_SCORE).map(([k]) => k.subarray(1));
  assert.equal(blocks[0]![0].length, 1, `${key}: the first block has no bound`);
  let at = 0;
  let total = 0;
  for (let i = 0; i < blocks.length; i++) {
    const next = blocks[i + 1]?.[0].subarray(1);
    let n = 0;
    while (at < scores.length && (next === undefined || Buffer.compare(scores[at]!, next) < 0)) {
      at++;
      n++;
    }
    const counted = blocks[i]![1].readUInt32BE(0);
    assert.equal(counted, n, `${key}: block ${i} counts ${counted} members and holds ${n}`);
    assert.ok(counted <= BLOCK_SPLIT, `${key}: block ${i} holds ${counted}, over ${BLOCK_SPLIT}`);
    total += counted;
  }
  assert.equal(total, count, `${key}: the blocks count ${total} members, the set ${count}`);
}

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
    /**
     * Items stored for the collection at `key`; 0 when the key is absent. A sorted set's rank index (a
     * collection of its own) is checked against the set's members (zset-ranks.ts).
     */
    itemsOf: (key: string) => {
      const r = store.get(Buffer.from(key));
      if (r === undefined) return 0;
      const id = idOf(key);
      const items = store.items(id, null, 10_000_000);
      if (r.type === RecordType.ZSet)
        checkRankIndex(
          key,
          items,
          store.items(rankIndexId(id), null, 10_000_000),
          decodeCollection(r.payload).count,
        );
      return items.length;
    },
    advance: (ms: number) => {
      now += ms;
    },
  };
}
