/**
 * The blocked-clients registry alone, with attempts the test answers by hand: no wake-up is lost in the
 * races between a client's attempt and a write, and one write wakes no more clients than it can serve.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { BlockedClients } from "../../../src/api/redis/blocked-clients.js";
import { RecordType } from "../../../src/kv/record.js";
import { array, bulk, NIL_ARRAY, type Reply } from "../../../src/kv/reply.js";
import { ManualTimers } from "../../../src/sim/virtual-time.js";

const LIST = RecordType.List;
const k = (s: string) => Buffer.from(s);
const settle = () => new Promise<void>((r) => setImmediate(r));

function setup() {
  const elements = new Map<string, number>();
  const timers = new ManualTimers();
  const blocked = new BlockedClients((key) => elements.get(key.toString()) ?? 0, timers);
  /** Each attempt made, answered by the test. */
  const attempts: Array<{ who: string; answer: (r: Reply) => void }> = [];
  const client = (who: string, keys: string[], timeoutMs = 0) => {
    let reply: Reply | undefined;
    const b = blocked.block(keys.map(k), LIST, timeoutMs, () => {
      return new Promise<Reply>((answer) => attempts.push({ who, answer }));
    });
    void b.reply.then((r) => {
      reply = r;
    });
    return { cancel: b.cancel, reply: () => reply };
  };
  return { elements, timers, blocked, attempts, client };
}

const popped = (v: string) => array([bulk(k("q")), bulk(k(v))]);

describe("blocked clients", () => {
  it("a write wakes as many idle clients as the key holds elements, oldest first", async () => {
    const { elements, blocked, attempts, client } = setup();
    const a = client("a", ["q"]);
    const b = client("b", ["q"]);
    const c = client("c", ["q"]);
    assert.equal(blocked.size, 3);
    assert.equal(attempts.length, 0, "nothing to take yet");
    elements.set("q", 2);
    blocked.filled([k("q")]);
    await settle();
    assert.deepEqual(
      attempts.map((x) => x.who),
      ["a", "b"],
    );
    attempts[0]!.answer(popped("1"));
    attempts[1]!.answer(popped("2"));
    elements.set("q", 0);
    await settle();
    assert.deepEqual(a.reply(), popped("1"));
    assert.deepEqual(b.reply(), popped("2"));
    assert.equal(c.reply(), undefined);
    assert.equal(blocked.size, 1);
    assert.equal(attempts.length, 2, "c was not woken: nothing was left for it");
  });

  it("a write applied while a client's attempt is in flight makes it try again if that attempt took nothing", async () => {
    const { elements, blocked, attempts, client } = setup();
    const a = client("a", ["q"]);
    elements.set("q", 1);
    blocked.filled([k("q")]);
    await settle();
    assert.equal(attempts.length, 1);
    // Another client takes that element first; then a second push lands before a's attempt comes back.
    blocked.filled([k("q")]);
    await settle();
    assert.equal(attempts.length, 1, "a is already trying");
    attempts[0]!.answer(NIL_ARRAY);
    await settle();
    assert.equal(attempts.length, 2, "a tries again");
    attempts[1]!.answer(popped("x"));
    await settle();
    assert.deepEqual(a.reply(), popped("x"));
    assert.equal(blocked.size, 0);
    assert.equal(blocked.waiting, false);
  });

  it("a client that ends while trying gives back its share of a push: the next one is woken", async () => {
    const { elements, blocked, attempts, client } = setup();
    const a = client("a", ["k1", "q"]);
    client("b", ["q"]);
    elements.set("k1", 1);
    blocked.filled([k("k1")]);
    await settle();
    assert.deepEqual(
      attempts.map((x) => x.who),
      ["a"],
    );
    // A push to q while a tries: a counts against it, so b is not woken.
    elements.set("q", 1);
    blocked.filled([k("q")]);
    await settle();
    assert.equal(attempts.length, 1);
    // a's client goes away (its attempt took from k1): q's element must not wait for the next push.
    a.cancel();
    await settle();
    assert.deepEqual(
      attempts.map((x) => x.who),
      ["a", "b"],
    );
  });

  it("a client registering looks at the state at once: a write applied just before told nobody", async () => {
    const { elements, attempts, client } = setup();
    elements.set("q", 1);
    client("a", ["other", "q"]);
    await settle();
    assert.equal(attempts.length, 1);
  });

  it("times out with a null array, but an attempt in flight at the timeout is waited for and kept", async () => {
    const { elements, timers, blocked, attempts, client } = setup();
    const a = client("a", ["q"], 5_000);
    const b = client("b", ["q"], 5_000);
    timers.advance(4_999);
    await settle();
    assert.equal(a.reply(), undefined);
    elements.set("q", 1);
    blocked.filled([k("q")]);
    await settle();
    assert.equal(attempts.length, 1);
    timers.advance(1);
    await settle();
    assert.deepEqual(b.reply(), NIL_ARRAY, "b was idle: it times out");
    assert.equal(a.reply(), undefined, "a's attempt may have taken an element: it is not dropped");
    attempts[0]!.answer(popped("kept"));
    await settle();
    assert.deepEqual(a.reply(), popped("kept"));
    assert.equal(blocked.size, 0);
  });

  it("a cancelled client is forgotten, and a timeout longer than a timer can run is rearmed", async () => {
    const { elements, timers, blocked, attempts, client } = setup();
    const a = client("a", ["q"]);
    a.cancel();
    assert.equal(blocked.size, 0);
    elements.set("q", 1);
    blocked.filled([k("q")]);
    await settle();
    assert.equal(attempts.length, 0);
    const days = 30 * 24 * 3600 * 1000;
    const b = client("b", ["none"], days);
    timers.advance(days - 1);
    await settle();
    assert.equal(b.reply(), undefined);
    timers.advance(1);
    await settle();
    assert.deepEqual(b.reply(), NIL_ARRAY);
  });
});
