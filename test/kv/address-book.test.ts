/**
 * The cluster's address book in the key-value state: what a membership change's context introduces is
 * kept with the applied index, survives a reopen, travels in snapshots (so a node that catches up from
 * one learns every address), and a context this code did not write introduces nothing.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { readAll } from "../../src/engine/state-machine.js";
import {
  addressProblem,
  bookAfterChange,
  decodeAddressContext,
  encodeAddressContext,
  MAX_ADDRESS_BOOK_MEMBERS,
  MAX_ADDRESS_BYTES,
} from "../../src/kv/address-book.js";
import { KvSnapshotFormatError } from "../../src/kv/errors.js";
import { KvStateMachine } from "../../src/kv/machine.js";
import { encodeRecord, RECORD_HEADER_BYTES, RecordType } from "../../src/kv/record.js";
import { encodeKvSnapshot, type KvPair, KvSnapshotDecoder } from "../../src/kv/snapshot-format.js";
import { KvStore } from "../../src/kv/store.js";
import { type ConfChange, type ConfState, EMPTY_CONF_STATE } from "../../src/raft/types.js";
import { tempDirs } from "../helpers/temp-dirs.js";

const tempDir = tempDirs("raftkv-book-");

const conf = (voters: number[], learners: number[] = []): ConfState => ({
  ...EMPTY_CONF_STATE,
  voters,
  learners,
});
const add = (id: number, address?: string): ConfChange => ({
  transition: "auto",
  changes: [{ type: "addLearner", nodeId: id }],
  ...(address !== undefined ? { context: encodeAddressContext(new Map([[id, address]])) } : {}),
});

const LIMITS = { maxKeyBytes: 100, maxRecordBytes: 100, minRecordBytes: RECORD_HEADER_BYTES };
const noop = () => {};
/** A record of a string value, as the store writes it. */
const record = encodeRecord(RecordType.String, 0, 1, Buffer.from("rec"));

function image(
  appliedIndex: number,
  records: KvPair[],
  addressBook: ReadonlyMap<number, string> = new Map(),
) {
  return {
    appliedIndex,
    tombstoneHorizon: 0,
    highestNodeId: 0,
    lastCollectionId: 0,
    addressBook,
    records,
    tombstones: [],
    items: [],
  };
}

async function snapshotBytes(store: KvStore): Promise<Uint8Array> {
  const h = store.snapshot();
  try {
    return await readAll(h.read());
  } finally {
    h.release();
  }
}

async function* chunksOf(parts: readonly Uint8Array[]): AsyncGenerator<Uint8Array> {
  for (const p of parts) yield p;
}

describe("address book: the change context", () => {
  it("round-trips the addresses a change introduces", () => {
    const m = new Map([
      [4, "10.0.0.4:7000"],
      [2 ** 40, "node-five.example.com:17000"],
    ]);
    assert.deepEqual(decodeAddressContext(encodeAddressContext(m)), m);
  });

  it("decodes what it did not write as nothing, without throwing", () => {
    const good = encodeAddressContext(new Map([[4, "h:1"]]));
    const cases: Uint8Array[] = [
      new Uint8Array(),
      Buffer.from("4=host4:7000"),
      good.subarray(0, good.length - 1),
      Buffer.concat([good, Buffer.from([0])]),
      Buffer.from([2, ...good.subarray(1)]),
      // id 0
      Buffer.from([1, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3, 0x68, 0x3a, 0x31]),
      // an address without a port
      Buffer.from([1, 0, 1, 0, 0, 0, 0, 0, 0, 0, 4, 0, 1, 0x68]),
    ];
    for (const c of cases) assert.equal(decodeAddressContext(c), null, Buffer.from(c).toString("hex"));
  });

  it("refuses to encode an address that is not host:port", () => {
    for (const bad of ["", "host", ":7000", "host:0", "host:70000", "two words:1", "a,b:1", "h:1x"]) {
      assert.notEqual(addressProblem(bad), null, bad);
      assert.throws(() => encodeAddressContext(new Map([[1, bad]])), RangeError);
    }
    assert.equal(addressProblem("[::1]:7000"), null);
    assert.equal(addressProblem("0.0.0.0:0", true), null, "port 0 is fine to listen on");
  });

  it("after a change: introduced addresses of members are set, non-members dropped", () => {
    const book = new Map([
      [1, "a:1"],
      [2, "b:2"],
      [3, "c:3"],
    ]);
    assert.deepEqual(
      bookAfterChange(
        book,
        new Map([
          [4, "d:4"],
          [9, "z:9"],
        ]),
        conf([1, 3], [4]),
      ),
      new Map([
        [1, "a:1"],
        [3, "c:3"],
        [4, "d:4"],
      ]),
    );
  });
});

describe("address book: in the key-value state", () => {
  it("a change's addresses are kept with its index, survive a reopen, and a removal drops them", async () => {
    const dir = tempDir();
    const store = await KvStore.open(dir);
    const seeded = new Map([
      [1, "a:1"],
      [2, "b:2"],
      [3, "c:3"],
    ]);
    assert.equal(await store.seedAddressBook(seeded), true);
    const m = new KvStateMachine(store);
    const told: Array<Map<number, string>> = [];
    m.onAddressBookChanged((book) => told.push(new Map(book)));
    await m.applyConfChange(7, add(4, "d:4"), conf([1, 2, 3], [4]));
    assert.equal(store.appliedIndex, 7);
    assert.deepEqual(store.addressBook(), new Map([...seeded, [4, "d:4"]]));
    assert.deepEqual(told, [store.addressBook()]);
    await store.close();

    const reopened = await KvStore.open(dir);
    assert.equal(reopened.appliedIndex, 7);
    assert.deepEqual(reopened.addressBook(), new Map([...seeded, [4, "d:4"]]));
    assert.equal(
      await reopened.seedAddressBook(new Map([[9, "z:9"]])),
      false,
      "only a fresh store is seeded",
    );
    const m2 = new KvStateMachine(reopened);
    await m2.applyConfChange(
      9,
      { transition: "auto", changes: [{ type: "removeNode", nodeId: 2 }] },
      conf([1, 3], [4]),
    );
    assert.deepEqual(
      reopened.addressBook(),
      new Map([
        [1, "a:1"],
        [3, "c:3"],
        [4, "d:4"],
      ]),
    );
    // A context that is not an address list introduces nothing; the change still applies.
    await m2.applyConfChange(
      10,
      { transition: "auto", changes: [{ type: "addLearner", nodeId: 5 }], context: Buffer.from("junk") },
      conf([1, 3], [4, 5]),
    );
    assert.equal(reopened.addressBook().has(5), false);
    assert.equal(reopened.appliedIndex, 10);
    await reopened.close();
  });

  it("the highest node id ever a member rises with the membership, never falls, and travels in snapshots", async () => {
    const store = await KvStore.open(tempDir());
    assert.equal(store.highestNodeId(), 0);
    await store.seedAddressBook(
      new Map([
        [1, "a:1"],
        [3, "c:3"],
      ]),
    );
    assert.equal(store.highestNodeId(), 3);
    const m = new KvStateMachine(store);
    await m.applyConfChange(5, add(6, "f:6"), conf([1, 3], [6]));
    assert.equal(store.highestNodeId(), 6);
    await m.applyConfChange(
      6,
      { transition: "auto", changes: [{ type: "removeNode", nodeId: 6 }] },
      conf([1, 3]),
    );
    assert.equal(store.highestNodeId(), 6, "a removed node's id stays used");
    const target = await KvStore.open(tempDir());
    await target.restore(chunksOf([await snapshotBytes(store)]), 6);
    assert.equal(target.highestNodeId(), 6);
    await Promise.all([store.close(), target.close()]);
  });

  it("a snapshot carries the book: a node restored from it learns every address, keys intact", async () => {
    const source = await KvStore.open(tempDir());
    await source.seedAddressBook(
      new Map([
        [1, "a:1"],
        [2, "b:2"],
      ]),
    );
    source.writeBatch(3, (w) => w.put(Buffer.from("k"), RecordType.String, 0, Buffer.from("v"), 3));
    await new KvStateMachine(source).applyConfChange(4, add(5, "e:5"), conf([1, 2], [5]));
    const bytes = await snapshotBytes(source);

    const target = await KvStore.open(tempDir());
    const m = new KvStateMachine(target);
    const told: Array<Map<number, string>> = [];
    m.onAddressBookChanged((book) => told.push(new Map(book)));
    await m.restore(chunksOf([bytes]), 4);
    const expected = new Map([
      [1, "a:1"],
      [2, "b:2"],
      [5, "e:5"],
    ]);
    assert.deepEqual(target.addressBook(), expected);
    assert.deepEqual(told, [expected], "the node is told of the book it restored");
    assert.equal(target.get(Buffer.from("k"))?.payload.toString(), "v");
    assert.equal(target.keyCount(), 1, "the book is not counted among the keys");
    // Restoring a snapshot without a book empties it (the snapshot's state is the whole state).
    const bare = await KvStore.open(tempDir());
    bare.writeBatch(2, (w) => w.put(Buffer.from("x"), RecordType.String, 0, Buffer.from("y"), 2));
    await target.restore(chunksOf([await snapshotBytes(bare)]), 6);
    assert.equal(target.addressBook().size, 0);
    await Promise.all([source.close(), target.close(), bare.close()]);
  });

  it("a payload of an earlier format version (before the book) is refused, not misread", () => {
    const payload = Buffer.concat([
      ...encodeKvSnapshot(image(3, [{ key: Buffer.from("kx"), value: record }])),
    ]);
    payload.writeUInt16BE(2, 4);
    assert.throws(
      () => new KvSnapshotDecoder(LIMITS, noop, noop, noop, noop).push(payload),
      /format version 2/,
    );
  });

  it("a payload of format version 3 (before collections: no last collection id, no items) is read", () => {
    const v4 = Buffer.concat([
      ...encodeKvSnapshot(image(3, [{ key: Buffer.from("kx"), value: record }], new Map([[1, "a:1"]]))),
    ]);
    // Version 3: the header without its last 8 bytes, the end marker without its item count.
    const v3 = Buffer.concat([v4.subarray(0, 30), v4.subarray(38, v4.length - 8)]);
    v3.writeUInt16BE(3, 4);
    const keys: string[] = [];
    const members: string[] = [];
    const d = new KvSnapshotDecoder(
      LIMITS,
      (k) => keys.push(k.toString()),
      noop,
      (id, a) => members.push(`${id}=${a}`),
      noop,
    );
    d.push(v3);
    const end = d.finish();
    assert.equal(end.appliedIndex, 3);
    assert.equal(end.lastCollectionId, 0);
    assert.deepEqual(keys, ["kx"]);
    assert.deepEqual(members, ["1=a:1"]);
  });

  it("the largest book the limits allow round-trips (it fills more than one chunk's worth)", () => {
    const book = new Map<number, string>();
    for (let id = 1; id <= MAX_ADDRESS_BOOK_MEMBERS; id++)
      book.set(id, `${"h".repeat(MAX_ADDRESS_BYTES - 6)}:${String(id).padStart(5, "0")}`);
    const payload = Buffer.concat([
      ...encodeKvSnapshot(image(9, [{ key: Buffer.from("k"), value: record }], book)),
    ]);
    const members = new Map<number, string>();
    const d = new KvSnapshotDecoder(LIMITS, noop, noop, (id, a) => members.set(id, a), noop);
    d.push(payload);
    assert.equal(d.finish().appliedIndex, 9);
    assert.deepEqual(members, book);
  });

  it("a payload with a member after the keys, or an address too long, is refused", () => {
    const withBook = Buffer.concat([
      ...encodeKvSnapshot(image(3, [{ key: Buffer.from("k"), value: record }], new Map([[1, "a:1"]]))),
    ]);
    // Header 38 bytes, then the member (11 + 3), then the key's record, then the end marker (25).
    const header = withBook.subarray(0, 38);
    const member = withBook.subarray(38, 52);
    const rest = withBook.subarray(52);
    const keyRecord = rest.subarray(0, rest.length - 25);
    const end = rest.subarray(rest.length - 25);
    const reordered = Buffer.concat([header, keyRecord, member, end]);
    assert.throws(() => {
      const d = new KvSnapshotDecoder(LIMITS, noop, noop, noop, noop);
      d.push(reordered);
      d.finish();
    }, KvSnapshotFormatError);
    const longAddress = Buffer.from(withBook);
    longAddress.writeUInt16BE(300, 38 + 9);
    assert.throws(
      () => new KvSnapshotDecoder(LIMITS, noop, noop, noop, noop).push(longAddress),
      KvSnapshotFormatError,
    );
    // Split anywhere, the good payload decodes the same.
    for (let cut = 1; cut < withBook.length; cut++) {
      const members: string[] = [];
      const d = new KvSnapshotDecoder(LIMITS, noop, noop, (id, a) => members.push(`${id}=${a}`), noop);
      d.push(withBook.subarray(0, cut));
      d.push(withBook.subarray(cut));
      assert.equal(d.finish().appliedIndex, 3);
      assert.deepEqual(members, ["1=a:1"], `cut at ${cut}`);
    }
  });
});
