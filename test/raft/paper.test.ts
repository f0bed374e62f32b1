/**
 * The behaviours of section 5 of the Raft paper ("In Search of an Understandable Consensus Algorithm"),
 * one test each, checked against the core driven through RawNode.
 *
 * Where a behaviour belongs to plain Raft, the nodes run without the pre-vote and check-quorum
 * extensions (PLAIN); the extensions' own variations are noted where they differ.
 */

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { Ready } from "../../src/raft/raw-node.js";
import { MemoryStorage } from "../../src/raft/storage.js";
import {
  type Entry,
  EntryType,
  type HardState,
  type Message,
  MessageType,
  message,
  messageTypeName,
  NONE,
  type NodeId,
  StateRole,
} from "../../src/raft/types.js";
import { appliedData, Cluster, type NodeOptions, TestNode, text } from "./helpers/cluster.js";

/** Plain Raft as the paper describes it: no pre-vote, no check-quorum. */
const PLAIN: NodeOptions = { preVote: false, checkQuorum: false };
const ALL_BYTES = Number.MAX_SAFE_INTEGER;
const encoder = new TextEncoder();

/** An entry whose payload names its position, so that entries of different terms are told apart. */
function entry(index: number, term: number): Entry {
  return { index, term, type: EntryType.Normal, data: encoder.encode(`${index}@${term}`) };
}

function entriesOfTerms(terms: readonly number[], firstIndex = 1): Entry[] {
  return terms.map((term, i) => entry(firstIndex + i, term));
}

/**
 * Replaces node `id` by one restarting from a log and hard state already on its disk (same options and
 * membership): a node that ran before, with the entries at indexes 1, 2, … of the given terms.
 */
function startWithLog(
  c: Cluster,
  id: NodeId,
  terms: readonly number[],
  hs: Partial<HardState> = {},
): TestNode {
  const old = c.node(id);
  const cs = old.storage.initialState().confState;
  const storage = MemoryStorage.withVoters(cs.voters, cs.learners);
  storage.append(entriesOfTerms(terms));
  storage.setHardState({
    term: hs.term ?? terms[terms.length - 1] ?? 0,
    vote: hs.vote ?? NONE,
    commit: hs.commit ?? 0,
  });
  const n = new TestNode(id, storage, old.options);
  c.nodes.set(id, n);
  return n;
}

/** The terms of a node's log as it sees it (durable and not yet durable), from index 1 on. */
function logTerms(n: TestNode): number[] {
  const log = n.raft.log;
  const terms: number[] = [];
  for (let i = log.firstIndex(); i <= log.lastIndex(); i++) terms.push(log.term(i));
  return terms;
}

/** The entries a node has on its disk, as `index@term` payloads. */
function storedLog(n: TestNode): string[] {
  const s = n.storage;
  if (s.lastIndex() < s.firstIndex()) return [];
  return s.entries(s.firstIndex(), s.lastIndex() + 1, ALL_BYTES).map(text);
}

/**
 * Handles every Ready of node `id` as the engine would and returns the messages it sent, taking them
 * off the network (the caller delivers them, or not).
 */
function sentBy(c: Cluster, id: NodeId): Message[] {
  const before = c.queue.length;
  while (c.processReady(id)) {}
  return c.queue.splice(before);
}

function deliver(c: Cluster, msgs: readonly Message[]): void {
  for (const m of msgs) c.node(m.to).raw.step(m);
}

function ofType(msgs: readonly Message[], type: MessageType): Message[] {
  return msgs.filter((m) => m.type === type);
}

function app(
  from: NodeId,
  to: NodeId,
  term: number,
  index: number,
  logTerm: number,
  entries: Entry[] = [],
  commit = 0,
): Message {
  return message({ type: MessageType.App, from, to, term, index, logTerm, entries, commit });
}

function range(from: number, to: number): number[] {
  const out: number[] = [];
  for (let i = from; i <= to; i++) out.push(i);
  return out;
}

/** State machine safety: no two nodes applied different entries at the same index, and each applied in order. */
function assertAppliedAgree(c: Cluster): void {
  const seen = new Map<number, string>();
  for (const n of c.nodes.values()) {
    n.applied.forEach((e, i) => {
      assert.equal(e.index, i + 1, `node ${n.id} applied index ${e.index} in position ${i + 1}`);
      const key = `${e.term}:${text(e)}`;
      const other = seen.get(e.index);
      if (other === undefined) seen.set(e.index, key);
      else assert.equal(key, other, `node ${n.id} applied a different entry at index ${e.index}`);
    });
  }
}

describe("Raft §5.1 basics: roles and terms", () => {
  it("a node starts as a follower, also when it restarts with a term on disk", () => {
    const c = new Cluster({ ids: [1, 2, 3] });
    for (const n of c.nodes.values()) {
      assert.equal(n.raft.role, StateRole.Follower);
      assert.equal(n.raft.term, 0);
      assert.equal(n.raft.lead, NONE);
    }
    c.elect(1);
    assert.equal(c.raft(1).role, StateRole.Leader);
    c.crash(1);
    c.restart(1);
    const r = c.raft(1);
    assert.equal(r.role, StateRole.Follower, "a restarted leader comes back as a follower");
    assert.equal(r.term, 1, "its term survives the restart");
    assert.equal(r.vote, 1, "so does its vote");
    assert.equal(r.lead, NONE);
  });

  const roles = [StateRole.Follower, StateRole.PreCandidate, StateRole.Candidate, StateRole.Leader] as const;
  const kinds = [
    { type: MessageType.App, fromLeader: true },
    { type: MessageType.Heartbeat, fromLeader: true },
    { type: MessageType.Vote, fromLeader: false },
    { type: MessageType.VoteResp, fromLeader: false },
  ] as const;
  for (const role of roles) {
    for (const kind of kinds) {
      const name = messageTypeName(kind.type);
      it(`a message with a higher term makes a ${role} a follower of that term (${name})`, () => {
        const c = new Cluster({ node: { preVote: role === StateRole.PreCandidate, checkQuorum: false } });
        if (role === StateRole.Leader) c.elect(1);
        else if (role !== StateRole.Follower) c.node(1).raw.campaign();
        const r = c.raft(1);
        assert.equal(r.role, role);
        const term = r.term + 1;
        const m =
          kind.type === MessageType.VoteResp
            ? message({ type: kind.type, from: 2, to: 1, term, reject: true })
            : message({ type: kind.type, from: 2, to: 1, term });
        c.node(1).raw.step(m);
        assert.equal(r.role, StateRole.Follower);
        assert.equal(r.term, term);
        assert.equal(r.lead, kind.fromLeader ? 2 : NONE, "a leader's message names the new leader");
      });
    }
  }

  it("a pre-vote request with a higher term changes neither term nor role (pre-vote extension)", () => {
    const c = new Cluster({ node: { checkQuorum: false } });
    c.elect(1);
    const r = c.raft(1);
    c.node(1).raw.step(message({ type: MessageType.PreVote, from: 2, to: 1, term: 5, index: 9, logTerm: 4 }));
    assert.equal(r.role, StateRole.Leader);
    assert.equal(r.term, 1);
  });

  it("a request with a stale term is rejected with the current term and changes nothing", () => {
    const c = new Cluster({ node: PLAIN });
    c.elect(2);
    c.elect(3); // term 2: node 2 is a deposed leader of term 1
    const n1 = c.node(1);
    const r = n1.raft;
    assert.equal(r.term, 2);
    assert.equal(r.lead, 3);
    c.tick(1, 3);
    const logBefore = storedLog(n1);
    const committedBefore = r.log.committed;

    n1.raw.step(app(2, 1, 1, 2, 1, [entry(3, 1)], 3));
    n1.raw.step(message({ type: MessageType.Heartbeat, from: 2, to: 1, term: 1, commit: 3 }));
    n1.raw.step(message({ type: MessageType.Vote, from: 2, to: 1, term: 1, index: 9, logTerm: 1 }));
    // Figure 2: a stale request is refused, and the reply carries our term so the sender steps down.
    // Staying silent would let a deposed leader, or a candidate behind in terms, stall for ever.
    const replies = sentBy(c, 1);
    assert.deepEqual(
      replies.map((m) => [m.type, m.to, m.term, m.reject]),
      [
        [MessageType.AppResp, 2, 2, true],
        [MessageType.AppResp, 2, 2, true],
        [MessageType.VoteResp, 2, 2, true],
      ],
    );
    assert.equal(r.term, 2);
    assert.equal(r.lead, 3, "the stale leader is not taken for the leader");
    assert.equal(r.vote, 3);
    assert.equal(r.electionElapsed, 3, "a stale heartbeat does not reset the election timer");
    assert.deepEqual(storedLog(n1), logBefore);
    assert.equal(r.log.committed, committedBefore);

    // A candidate does not count votes from an earlier term: two of them would make it leader.
    const cand = new Cluster({ node: PLAIN });
    for (let i = 0; i < 3; i++) cand.node(1).raw.campaign();
    sentBy(cand, 1);
    const cr = cand.raft(1);
    assert.equal(cr.term, 3);
    for (const from of [2, 3])
      cand.node(1).raw.step(message({ type: MessageType.VoteResp, from, to: 1, term: 2 }));
    assert.equal(cr.role, StateRole.Candidate);
    cand.node(1).raw.step(message({ type: MessageType.VoteResp, from: 2, to: 1, term: 3 }));
    assert.equal(cr.role, StateRole.Leader, "the same vote in the current term wins");
  });

  it("with pre-vote or check-quorum, a stale leader's append is answered only with the newer term", () => {
    const c = new Cluster();
    c.elect(1);
    startWithLog(c, 3, [1, 2], { term: 2 });
    const n3 = c.node(3);
    n3.raw.step(app(1, 3, 1, 1, 1, [entry(2, 1)], 1));
    const out = sentBy(c, 3);
    assert.equal(out.length, 1);
    assert.equal(out[0]!.type, MessageType.AppResp);
    assert.equal(out[0]!.term, 2, "the answer tells the stale leader about term 2");
    assert.equal(out[0]!.index, 0, "and acknowledges nothing");
    assert.deepEqual(storedLog(n3), ["1@1", "2@2"]);
    // The stale leader steps down on hearing it.
    deliver(c, out);
    assert.equal(c.raft(1).role, StateRole.Follower);
    assert.equal(c.raft(1).term, 2);
  });
});

describe("Raft §5.2 leader election", () => {
  it("a leader sends a heartbeat to every peer each heartbeatTicks ticks", () => {
    const c = new Cluster({ ids: [1, 2, 3, 4, 5], node: { heartbeatTicks: 3, electionTicks: 10 } });
    c.elect(1);
    const r = c.raft(1);
    for (let round = 0; round < 3; round++) {
      for (let t = 1; t < 3; t++) {
        c.tick(1);
        assert.deepEqual(ofType(sentBy(c, 1), MessageType.Heartbeat), [], `no heartbeat after ${t} ticks`);
      }
      c.tick(1);
      const beats = ofType(sentBy(c, 1), MessageType.Heartbeat);
      assert.deepEqual(
        beats.map((m) => m.to),
        [2, 3, 4, 5],
      );
      for (const m of beats) {
        assert.equal(m.from, 1);
        assert.equal(m.term, r.term);
        assert.equal(m.commit, 1, "a heartbeat carries the commit index the follower can have");
      }
    }
  });

  it("followers that keep hearing the leader's heartbeats never start an election", () => {
    const c = new Cluster({ ids: [1, 2, 3, 4, 5], node: { ...PLAIN, heartbeatTicks: 2, electionTicks: 10 } });
    c.elect(1);
    c.tickAll(200);
    assert.equal(c.leader()?.id, 1);
    for (const n of c.nodes.values()) assert.equal(n.raft.term, 1, `node ${n.id} stayed in term 1`);
    assert.equal(c.sent.filter((m) => m.type === MessageType.Vote).length, 4, "only the first election");
  });

  it("on election timeout a follower starts an election: new term, votes for itself, asks all others", () => {
    const c = new Cluster({ ids: [1, 2, 3, 4, 5], node: { ...PLAIN, electionTicks: 10 } });
    const n1 = c.node(1);
    const r = n1.raft;
    let ticks = 0;
    while (r.role === StateRole.Follower) {
      c.tick(1);
      ticks++;
      assert.ok(ticks < 20, "the timeout fires within 2 × electionTicks");
    }
    assert.ok(ticks >= 10, `timed out after ${ticks} ticks, not before electionTicks`);
    assert.equal(r.role, StateRole.Candidate);
    assert.equal(r.term, 1);
    assert.equal(r.vote, 1);
    assert.equal(r.trk.votes.size, 0, "its own vote counts only once it is durable");

    const out = sentBy(c, 1);
    assert.deepEqual(n1.storage.initialState().hardState, { term: 1, vote: 1, commit: 0 });
    assert.equal(r.trk.votes.get(1), true);
    const votes = ofType(out, MessageType.Vote);
    assert.equal(votes.length, out.length, "it sends vote requests and nothing else");
    assert.deepEqual(
      votes.map((m) => m.to),
      [2, 3, 4, 5],
    );
    for (const m of votes) assert.equal(m.term, 1);
  });

  it("with pre-vote, the election timeout first asks for pre-votes at term+1 without changing its term", () => {
    const c = new Cluster({ ids: [1, 2, 3], node: { electionTicks: 10 } });
    const r = c.raft(1);
    c.tick(1, 19);
    assert.equal(r.role, StateRole.PreCandidate);
    assert.equal(r.term, 0);
    assert.equal(r.vote, NONE);
    const out = sentBy(c, 1);
    assert.deepEqual(
      out.map((m) => [m.type, m.to, m.term]),
      [
        [MessageType.PreVote, 2, 1],
        [MessageType.PreVote, 3, 1],
      ],
    );
  });

  describe("an election is won with a majority, lost with a majority against, pending otherwise", () => {
    const { Leader, Candidate, Follower } = StateRole;
    const cases: { size: number; votes: Record<number, boolean>; want: StateRole }[] = [
      { size: 1, votes: {}, want: Leader },
      { size: 2, votes: { 2: true }, want: Leader },
      { size: 2, votes: { 2: false }, want: Follower },
      { size: 2, votes: {}, want: Candidate },
      { size: 3, votes: { 2: true, 3: true }, want: Leader },
      { size: 3, votes: { 2: true }, want: Leader },
      { size: 3, votes: { 2: false, 3: true }, want: Leader },
      { size: 3, votes: { 2: false, 3: false }, want: Follower },
      { size: 3, votes: { 2: false }, want: Candidate },
      { size: 3, votes: {}, want: Candidate },
      { size: 4, votes: { 2: true, 3: true }, want: Leader },
      { size: 4, votes: { 2: true, 3: false }, want: Candidate },
      { size: 4, votes: { 2: true }, want: Candidate },
      { size: 4, votes: { 2: false, 3: false }, want: Follower },
      { size: 5, votes: { 2: true, 3: true, 4: true, 5: true }, want: Leader },
      { size: 5, votes: { 2: true, 3: true }, want: Leader },
      { size: 5, votes: { 2: true, 3: false, 4: false, 5: true }, want: Leader },
      { size: 5, votes: { 2: true }, want: Candidate },
      { size: 5, votes: { 2: false, 3: false }, want: Candidate },
      { size: 5, votes: { 2: true, 3: false, 4: false }, want: Candidate },
      { size: 5, votes: { 2: false, 3: false, 4: false }, want: Follower },
      { size: 5, votes: { 2: true, 3: false, 4: false, 5: false }, want: Follower },
      { size: 5, votes: {}, want: Candidate },
    ];
    for (const { size, votes, want } of cases) {
      const desc = Object.entries(votes)
        .map(([id, granted]) => `${id}:${granted ? "yes" : "no"}`)
        .join(" ");
      it(`${size} node(s), votes {${desc}} plus its own → ${want}`, () => {
        const c = new Cluster({ ids: range(1, size), node: PLAIN });
        c.node(1).raw.campaign();
        assert.equal(c.raft(1).role, Candidate, "not decided before its own vote is durable");
        sentBy(c, 1);
        for (const [id, granted] of Object.entries(votes)) {
          c.node(1).raw.step(
            message({ type: MessageType.VoteResp, from: Number(id), to: 1, term: 1, reject: !granted }),
          );
        }
        assert.equal(c.raft(1).role, want);
        assert.equal(c.raft(1).term, 1);
      });
    }
  });

  for (const first of [2, 3]) {
    const second = first === 2 ? 3 : 2;
    it(`a node votes once per term, first come first served (${first} asks first)`, () => {
      const c = new Cluster({ node: PLAIN });
      const n1 = c.node(1);
      const ask = (from: NodeId) =>
        n1.raw.step(message({ type: MessageType.Vote, from, to: 1, term: 1, index: 0, logTerm: 0 }));
      ask(first);
      ask(second);
      // The vote is durable before it is announced.
      const rd: Ready = n1.raw.ready();
      assert.deepEqual(rd.messages, []);
      assert.equal(rd.hardState?.vote, first);
      assert.equal(rd.mustSync, true);
      assert.deepEqual(
        rd.messagesAfterPersist.map((m) => [m.type, m.to, m.reject]),
        [
          [MessageType.VoteResp, first, false],
          [MessageType.VoteResp, second, true],
        ],
      );
      n1.storage.setHardState(rd.hardState!);
      n1.raw.advance(rd);

      ask(first); // a retransmitted request gets the same answer
      assert.deepEqual(
        sentBy(c, 1).map((m) => [m.to, m.reject]),
        [[first, false]],
      );

      // The vote survives a restart: the second candidate still cannot get it in term 1.
      c.crash(1);
      c.restart(1);
      c.node(1).raw.step(message({ type: MessageType.Vote, from: second, to: 1, term: 1 }));
      assert.deepEqual(
        sentBy(c, 1).map((m) => [m.to, m.reject]),
        [[second, true]],
      );
      assert.equal(c.raft(1).vote, first);
    });
  }

  it("a candidate steps down when it receives an append from a leader of its term or a newer one", () => {
    for (const [msgTerm, wantRole] of [
      [1, StateRole.Candidate], // stale: ignored
      [2, StateRole.Follower],
      [3, StateRole.Follower],
    ] as const) {
      const c = new Cluster({ node: PLAIN });
      c.node(1).raw.campaign();
      c.node(1).raw.campaign();
      const r = c.raft(1);
      assert.equal(r.role, StateRole.Candidate);
      assert.equal(r.term, 2);
      c.node(1).raw.step(app(2, 1, msgTerm, 0, 0));
      assert.equal(r.role, wantRole, `append at term ${msgTerm}`);
      assert.equal(r.term, Math.max(2, msgTerm));
      assert.equal(r.lead, wantRole === StateRole.Follower ? 2 : NONE);
    }
    // A pre-candidate too, at its current term.
    const c = new Cluster({ node: { checkQuorum: false } });
    c.node(1).raw.step(message({ type: MessageType.Heartbeat, from: 2, to: 1, term: 1 }));
    c.node(1).raw.campaign();
    assert.equal(c.raft(1).role, StateRole.PreCandidate);
    c.node(1).raw.step(app(3, 1, 1, 0, 0));
    assert.equal(c.raft(1).role, StateRole.Follower);
    assert.equal(c.raft(1).lead, 3);
  });

  it("election timeouts are randomized over [E, 2E) and two nodes' timeouts rarely collide", () => {
    /** Ticks until node `id` starts an election (its term moves). */
    const ticksToTimeout = (c: Cluster, id: NodeId): number => {
      const r = c.raft(id);
      const term = r.term;
      let ticks = 0;
      while (r.term === term) {
        c.tick(id);
        ticks++;
        assert.ok(ticks < 1000);
      }
      return ticks;
    };
    for (const E of [10, 40]) {
      const seeds = 100 * E;
      const first = new Map<number, number>();
      const later = new Map<number, number>();
      let collisions = 0;
      let repeats = 0;
      for (let seed = 1; seed <= seeds; seed++) {
        const c = new Cluster({ ids: [1, 2, 3], seed, node: { ...PLAIN, electionTicks: E } });
        const a = ticksToTimeout(c, 1);
        const b = ticksToTimeout(c, 2);
        if (a === b) collisions++;
        first.set(a, (first.get(a) ?? 0) + 1);
        // A candidate that gets no votes draws a fresh timeout for its next election.
        const again = ticksToTimeout(c, 1);
        if (again === a) repeats++;
        later.set(again, (later.get(again) ?? 0) + 1);
      }
      for (const hist of [first, later]) {
        const values = [...hist.keys()].sort((x, y) => x - y);
        assert.deepEqual(
          values,
          range(E, 2 * E - 1),
          `E=${E}: every value of [E, 2E) occurs, and only those`,
        );
        const expected = seeds / E;
        for (const [v, n] of hist) {
          assert.ok(n > expected * 0.5 && n < expected * 1.5, `E=${E}: ${v} ticks drawn ${n} times`);
        }
      }
      // Independent uniform draws collide with probability 1/E.
      assert.ok(collisions < (seeds / E) * 1.5, `E=${E}: ${collisions} of ${seeds} pairs collided`);
      assert.ok(collisions > (seeds / E) * 0.5, `E=${E}: ${collisions} collisions: draws look correlated`);
      // Likewise a node's successive timeouts: a node stuck with one timeout would keep colliding.
      assert.ok(
        repeats < (seeds / E) * 1.5,
        `E=${E}: ${repeats} of ${seeds} nodes drew the same timeout twice`,
      );
    }
  });
});

describe("Raft §5.3 log replication", () => {
  /** Three nodes that all hold entries 1@1 and 2@2, with node 1 elected leader of term 3. */
  function leaderOfTerm3(): Cluster {
    const c = new Cluster();
    for (const id of [1, 2, 3]) startWithLog(c, id, [1, 2], { term: 2 });
    c.elect(1);
    assert.equal(c.raft(1).role, StateRole.Leader);
    assert.equal(c.raft(1).term, 3);
    return c;
  }

  it("a leader appends a proposal to its log and replicates it with the previous index and term", () => {
    const c = leaderOfTerm3();
    // Its first append carries its own empty entry after the previous leaders' entries.
    const first = c.sent.find((m) => m.type === MessageType.App && m.from === 1 && m.to === 2)!;
    assert.deepEqual(
      [first.term, first.index, first.logTerm, first.entries.map((e) => [e.index, e.term])],
      [3, 2, 2, [[3, 3]]],
    );

    c.propose(1, "x");
    assert.deepEqual(logTerms(c.node(1)), [1, 2, 3, 3]);
    const apps = ofType(sentBy(c, 1), MessageType.App);
    assert.deepEqual(
      apps.map((m) => m.to),
      [2, 3],
    );
    for (const m of apps) {
      assert.equal(m.term, 3);
      assert.equal(m.index, 3, "previous index");
      assert.equal(m.logTerm, 3, "previous term");
      assert.deepEqual(
        m.entries.map((e) => [e.index, e.term, text(e)]),
        [[4, 3, "x"]],
      );
    }
    assert.equal(c.node(1).storage.lastIndex(), 4, "the leader persisted it too");
  });

  it("a leader commits an entry once a majority stored it, and carries the commit index in later appends", () => {
    const c = leaderOfTerm3();
    c.isolate(3);
    c.propose(1, "x");
    c.stabilize();
    const r = c.raft(1);
    assert.equal(r.log.committed, 4, "stored on 2 of 3 nodes: committed");
    assert.deepEqual(appliedData(c.node(1)).slice(-1), ["x"]);
    assert.equal(c.raft(2).log.committed, 4, "the follower learned the commit index");
    assert.equal(c.raft(3).log.committed, 3, "the isolated node knows nothing of it");

    c.heal();
    c.propose(1, "y");
    const apps = ofType(sentBy(c, 1), MessageType.App);
    assert.ok(apps.length >= 2);
    for (const m of apps) assert.equal(m.commit, 4, `append to ${m.to} carries the commit index`);
    c.stabilize();
    c.tickAll(2);
    for (const id of [1, 2, 3]) assert.deepEqual(appliedData(c.node(id)).slice(-2), ["x", "y"]);
  });

  describe("committing needs a majority: of 5 nodes, 2 holding an entry are not enough, 3 are", () => {
    for (const acks of [0, 1, 2, 3, 4]) {
      const holders = acks + 1;
      it(`stored on ${holders} of 5 nodes → ${holders >= 3 ? "committed" : "not committed"}`, () => {
        const c = new Cluster({ ids: [1, 2, 3, 4, 5] });
        c.elect(1);
        c.propose(1, "x");
        const apps = ofType(sentBy(c, 1), MessageType.App);
        for (const id of range(2, 1 + acks)) {
          deliver(
            c,
            apps.filter((m) => m.to === id),
          );
          deliver(c, sentBy(c, id));
        }
        while (c.processReady(1)) {}
        assert.equal(c.raft(1).log.committed, holders >= 3 ? 2 : 1);
      });
    }

    it("the leader's own copy counts only once it is durable", () => {
      const c = new Cluster({ ids: [1, 2, 3, 4, 5] });
      c.elect(1);
      const n1 = c.node(1);
      c.propose(1, "x");
      const rd = n1.raw.ready();
      const apps = ofType(rd.messages, MessageType.App);
      for (const id of [2, 3]) {
        deliver(
          c,
          apps.filter((m) => m.to === id),
        );
        deliver(c, sentBy(c, id));
      }
      assert.equal(n1.raft.log.committed, 1, "two followers, and the leader's write not yet done");
      n1.storage.append(rd.entries);
      n1.raw.advance(rd);
      assert.equal(n1.raft.log.committed, 2, "the leader's durable copy makes three");
    });
  });

  it("committing an entry commits every entry before it, including those of earlier leaders", () => {
    // Node 1 holds entries of terms 1 and 2 that no one committed; the others hold nothing.
    const c = new Cluster();
    startWithLog(c, 1, [1, 2], { term: 2 });
    c.elect(1);
    c.stabilize();
    for (const id of [1, 2, 3]) {
      assert.deepEqual(
        c.node(id).applied.map((e) => [e.index, e.term]),
        [
          [1, 1],
          [2, 2],
          [3, 3],
        ],
        `node ${id} applied the earlier leaders' entries with the new leader's`,
      );
    }

    // Acks for earlier entries lost: the ack of the last one commits them all at once.
    c.propose(1, "a");
    c.propose(1, "b");
    c.propose(1, "c");
    c.filter = (m) => m.type !== MessageType.AppResp || m.index === 6;
    const before = c.node(1).applied.length;
    c.stabilize();
    assert.equal(c.raft(1).log.committed, 6);
    assert.deepEqual(appliedData(c.node(1)).slice(-3), ["a", "b", "c"]);
    assert.equal(c.node(1).applied.length, before + 3);
  });

  it("followers apply what is committed, and only that", () => {
    const c = new Cluster({ node: PLAIN });
    startWithLog(c, 2, [1, 1, 1], { term: 1 }); // an old leader's uncommitted entries 2 and 3
    const n2 = c.node(2);
    const step = (m: Message) => {
      n2.raw.step(m);
      sentBy(c, 2);
    };
    const applied = () => n2.applied.map((e) => `${e.index}@${e.term}`);

    // The leader of term 2 commits up to 3 in its log, where 2 and 3 differ from ours: only what
    // the append proves to match (index 1) may be committed here.
    step(app(1, 2, 2, 1, 1, [], 3));
    assert.equal(n2.raft.log.committed, 1);
    assert.deepEqual(applied(), ["1@1"]);

    step(app(1, 2, 2, 1, 1, [entry(2, 2), entry(3, 2), entry(4, 2)], 2));
    assert.deepEqual(logTerms(n2), [1, 2, 2, 2]);
    assert.deepEqual(applied(), ["1@1", "2@2"], "entries 3 and 4 are stored but not yet committed");

    step(message({ type: MessageType.Heartbeat, from: 1, to: 2, term: 2, commit: 4 }));
    assert.deepEqual(applied(), ["1@1", "2@2", "3@2", "4@2"]);
  });

  describe("a follower rejects an append whose previous entry does not match, hinting where to retry", () => {
    const cases = [
      // follower log, append (index, logTerm), want [reject, index, rejectHint, hintTerm]
      { log: [1, 2], index: 0, logTerm: 0, want: [false, 1, 0, 0] }, // below commit: answers commit
      { log: [1, 2], index: 1, logTerm: 1, want: [false, 1, 0, 0] },
      { log: [1, 2], index: 2, logTerm: 2, want: [false, 2, 0, 0] },
      { log: [1, 2], index: 2, logTerm: 1, want: [true, 2, 1, 1] }, // term differs at index 2
      { log: [1, 2], index: 3, logTerm: 3, want: [true, 3, 2, 2] }, // index 3 missing
      // Figure 7 (f) asked by the term 8 leader: the hint skips every term-3 entry at once.
      { log: [1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 3], index: 10, logTerm: 6, want: [true, 10, 10, 3] },
      { log: [1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 3], index: 3, logTerm: 1, want: [false, 3, 0, 0] },
    ];
    for (const { log, index, logTerm, want } of cases) {
      it(`log [${log}], append after (${index}, term ${logTerm}) → ${want[0] ? "rejected" : "accepted"}`, () => {
        const c = new Cluster();
        const n = startWithLog(c, 2, log, { term: 7, commit: 1 });
        const before = storedLog(n);
        n.raw.step(app(1, 2, 8, index, logTerm, [], 1));
        const out = sentBy(c, 2);
        assert.equal(out.length, 1);
        const m = out[0]!;
        assert.equal(m.type, MessageType.AppResp);
        assert.equal(m.term, 8);
        assert.deepEqual([m.reject, m.index, m.rejectHint, m.logTerm], want);
        assert.deepEqual(storedLog(n), before, "the log is not touched");
      });
    }
  });

  describe("a follower deletes a conflicting suffix and appends the leader's entries", () => {
    const cases = [
      { index: 2, logTerm: 2, ents: [[3, 3]], want: ["1@1", "2@2", "3@3"], ack: 3 },
      {
        index: 1,
        logTerm: 1,
        ents: [
          [2, 3],
          [3, 4],
        ],
        want: ["1@1", "2@3", "3@4"],
        ack: 3,
      },
      // An old (duplicate) append that agrees with the log does not cut what follows it.
      { index: 0, logTerm: 0, ents: [[1, 1]], want: ["1@1", "2@2"], ack: 1 },
      { index: 0, logTerm: 0, ents: [[1, 3]], want: ["1@3"], ack: 1 },
    ];
    for (const { index, logTerm, ents, want, ack } of cases) {
      it(`log [1@1 2@2] + append after (${index}, ${logTerm}) of ${JSON.stringify(ents)} → [${want}]`, () => {
        const c = new Cluster();
        const n = startWithLog(c, 2, [1, 2], { term: 2 });
        const entries = ents.map(([i, t]) => entry(i as number, t as number));
        n.raw.step(app(1, 2, 4, index, logTerm, entries));
        const out = sentBy(c, 2);
        assert.deepEqual(storedLog(n), want);
        assert.deepEqual(
          logTerms(n),
          want.map((s) => Number(s.split("@")[1])),
        );
        assert.deepEqual(
          out.map((m) => [m.type, m.reject, m.index]),
          [[MessageType.AppResp, false, ack]],
        );
      });
    }
  });

  it("a leader brings the divergent follower logs of Figure 7 to its own", () => {
    // Nodes 2–7 are the followers (a)–(f) of Figure 7; node 1 is the leader, elected in term 8.
    const leaderLog = [1, 1, 1, 4, 4, 5, 5, 6, 6, 6];
    const followers: Record<number, number[]> = {
      2: [1, 1, 1, 4, 4, 5, 5, 6, 6], // (a) missing one entry
      3: [1, 1, 1, 4], // (b) missing many
      4: [1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 6], // (c) an extra entry of term 6
      5: [1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 7, 7], // (d) extra entries of term 7
      6: [1, 1, 1, 4, 4, 4, 4], // (e) extra entries of term 4, missing others
      7: [1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 3], // (f) entries of terms 2 and 3 no one else has
    };
    const c = new Cluster({ ids: range(1, 7) });
    startWithLog(c, 1, leaderLog, { term: 7, commit: 3 });
    for (const [id, log] of Object.entries(followers))
      startWithLog(c, Number(id), log, { term: 7, commit: 3 });

    c.elect(1);
    const leader = c.node(1);
    assert.equal(leader.raft.role, StateRole.Leader);
    assert.equal(leader.raft.term, 8);
    // (c) and (d) have logs more up to date than the leader's and refuse it; the others elect it.
    const refused = c.sent.filter((m) => m.type === MessageType.PreVoteResp && m.reject).map((m) => m.from);
    assert.deepEqual(refused.sort(), [4, 5]);

    assert.deepEqual(
      storedLog(leader).slice(0, 10),
      entriesOfTerms(leaderLog).map(text),
      "the leader never changes its log",
    );
    for (const id of range(2, 7)) {
      const n = c.node(id);
      assert.deepEqual(
        logTerms(n),
        [...leaderLog, 8],
        `follower ${String.fromCharCode(95 + id)} has the leader's log`,
      );
      assert.deepEqual(storedLog(n), storedLog(leader));
      assert.equal(n.raft.log.committed, 11);
      assert.deepEqual(
        n.applied.map((e) => e.index),
        range(1, 11),
      );
    }
    assert.equal(c.sent.filter((m) => m.type === MessageType.Snap).length, 0, "repaired by appends alone");
    assertAppliedAgree(c);
  });
});

describe("Raft §5.4 safety", () => {
  it("a vote request carries the candidate's last log index and term", () => {
    for (const preVote of [false, true]) {
      const c = new Cluster({ node: { preVote } });
      startWithLog(c, 1, [1, 1, 2], { term: 2 });
      c.node(1).raw.campaign();
      const type = preVote ? MessageType.PreVote : MessageType.Vote;
      const reqs = ofType(sentBy(c, 1), type);
      assert.deepEqual(
        reqs.map((m) => [m.to, m.term, m.index, m.logTerm]),
        [
          [2, 3, 3, 2],
          [3, 3, 3, 2],
        ],
        preVote ? "pre-vote" : "vote",
      );
      assert.equal(c.raft(1).term, preVote ? 2 : 3);
    }
  });

  describe("a voter refuses a candidate whose log is less up to date (by last term, then by length)", () => {
    const cases = [
      // voter log, candidate's (last index, last term), granted?
      { log: [1], index: 1, logTerm: 1, grant: true },
      { log: [1], index: 2, logTerm: 1, grant: true },
      { log: [1, 1], index: 1, logTerm: 1, grant: false }, // same last term, shorter
      { log: [1], index: 1, logTerm: 2, grant: true },
      { log: [1], index: 2, logTerm: 2, grant: true },
      { log: [1, 1], index: 1, logTerm: 2, grant: true }, // higher last term beats length
      { log: [2], index: 1, logTerm: 1, grant: false }, // lower last term
      { log: [2], index: 2, logTerm: 1, grant: false },
      { log: [2, 1], index: 1, logTerm: 1, grant: false },
      { log: [1, 2], index: 5, logTerm: 1, grant: false }, // longer does not beat a lower last term
    ];
    for (const { log, index, logTerm, grant } of cases) {
      for (const type of [MessageType.Vote, MessageType.PreVote] as const) {
        const kind = type === MessageType.Vote ? "vote" : "pre-vote";
        it(`voter [${log}], candidate at (${index}, term ${logTerm}): ${kind} ${grant ? "granted" : "refused"}`, () => {
          const c = new Cluster();
          const voter = startWithLog(c, 1, log, { term: 2 });
          voter.raw.step(message({ type, from: 2, to: 1, term: 3, index, logTerm }));
          const out = sentBy(c, 1);
          const respType = type === MessageType.Vote ? MessageType.VoteResp : MessageType.PreVoteResp;
          assert.deepEqual(
            out.map((m) => [m.type, m.to, m.reject]),
            [[respType, 2, !grant]],
          );
          if (type === MessageType.Vote) {
            assert.equal(voter.raft.term, 3, "the voter adopts the candidate's term either way");
            assert.equal(voter.raft.vote, grant ? 2 : NONE);
          } else {
            assert.equal(voter.raft.term, 2, "a pre-vote changes nothing");
            assert.equal(voter.raft.vote, NONE);
          }
        });
      }
    }
  });

  /**
   * Figure 8, at the moment of (c): S1 (node 1) was leader in term 2 and stored entry 2 (term 2) on S2;
   * S5 was leader in term 3 and stored its own entry 2 (term 3) alone; now S5 is down and S1, restarted,
   * wins term 4 with the votes of S2, S3 and S4. It appends its term-4 entry (index 3) and gets entry 2
   * onto S3, so that entry 2 is on a majority (S1, S2, S3), while its term-4 entry is on S1 and S2 only.
   * S4 gets nothing. Appends carry one entry each, so that this exact state can be reached.
   */
  function figure8c(): Cluster {
    const c = new Cluster({ ids: [1, 2, 3, 4, 5], node: { ...PLAIN, maxMessageBytes: 1 } });
    startWithLog(c, 1, [1, 2], { term: 3, commit: 1 });
    startWithLog(c, 2, [1, 2], { term: 2, commit: 1 });
    startWithLog(c, 3, [1], { term: 3, vote: 5, commit: 1 });
    startWithLog(c, 4, [1], { term: 3, vote: 5, commit: 1 });
    startWithLog(c, 5, [1, 3], { term: 3, vote: 5, commit: 1 });
    c.crash(5);
    c.filter = (m) => {
      if (m.type !== MessageType.App) return true;
      if (m.to === 4) return false;
      // S3 gets entry 2 but not the term-4 entry that would follow it.
      if (m.to === 3 && m.entries.some((e) => e.term === 4))
        return !c.raft(3).log.matchTerm(m.index, m.logTerm);
      return true;
    };
    c.elect(1);
    const r1 = c.raft(1);
    assert.equal(r1.role, StateRole.Leader);
    assert.equal(r1.term, 4);
    assert.deepEqual(logTerms(c.node(1)), [1, 2, 4]);
    assert.deepEqual(logTerms(c.node(2)), [1, 2, 4]);
    assert.deepEqual(logTerms(c.node(3)), [1, 2]);
    assert.deepEqual(logTerms(c.node(4)), [1]);
    // The leader knows that entry 2 is on a majority…
    assert.equal(r1.trk.progress.get(2)!.match, 3);
    assert.equal(r1.trk.progress.get(3)!.match, 2);
    assert.equal(r1.trk.progress.get(1)!.match, 3);
    // …but it is of an earlier term, and no entry of term 4 is on a majority: nothing new commits.
    assert.equal(r1.log.committed, 1, "an earlier-term entry is not committed by counting replicas");
    for (const id of [1, 2, 3, 4]) {
      assert.deepEqual(
        c.node(id).applied.map((e) => e.index),
        [1],
      );
    }
    for (const m of c.sent) if (m.type === MessageType.App) assert.ok(m.commit <= 1);
    return c;
  }

  it("Figure 8 (c)→(d): an earlier-term entry on a majority is not committed, and may rightly be overwritten", () => {
    const c = figure8c();
    // (d) S1 crashes; S5 comes back and is elected in term 5 (S3 and S4 vote for it; its last term 3
    // beats their logs). It overwrites entry 2 everywhere with its own.
    c.crash(1);
    c.filter = null;
    c.restart(5);
    for (let attempt = 0; attempt < 3 && c.raft(5).role !== StateRole.Leader; attempt++) c.elect(5);
    const r5 = c.raft(5);
    assert.equal(r5.role, StateRole.Leader);
    assert.equal(r5.term, 5);
    for (const id of [2, 3, 4, 5]) {
      assert.deepEqual(logTerms(c.node(id)), [1, 3, 5], `S${id}`);
      assert.deepEqual(
        c.node(id).applied.map((e) => [e.index, e.term]),
        [
          [1, 1],
          [2, 3],
          [3, 5],
        ],
      );
    }
    // S1 never applied its entry 2 (term 2): had it, the state machines would now disagree.
    c.restart(1);
    c.tickAll(3);
    assert.deepEqual(logTerms(c.node(1)), [1, 3, 5]);
    assert.equal(c.node(1).applied.length, 3);
    assertAppliedAgree(c);
  });

  it("Figure 8 (c)→(e): once an entry of its own term is on a majority, the leader commits it and all before", () => {
    const c = figure8c();
    // (e) S1 gets its term-4 entry onto S3 as well (a heartbeat makes it retry the lost append).
    c.filter = (m) => m.type !== MessageType.App || m.to !== 4;
    c.tickAll(1);
    const r1 = c.raft(1);
    assert.equal(r1.log.committed, 3);
    for (const id of [1, 2, 3]) {
      assert.deepEqual(
        c.node(id).applied.map((e) => [e.index, e.term]),
        [
          [1, 1],
          [2, 2],
          [3, 4],
        ],
        `S${id} applied entry 2 of term 2 with the term-4 entry`,
      );
    }
    // S5 can no longer win an election: S2 and S3 hold a log more up to date than its own.
    c.crash(1);
    c.heal();
    c.restart(5);
    for (let attempt = 0; attempt < 3; attempt++) {
      c.elect(5);
      assert.notEqual(c.raft(5).role, StateRole.Leader);
    }
    // The others elect a leader among those holding the committed entries, and S5's entry 2 goes.
    c.tickAll(100);
    const leader = c.leader();
    assert.ok(leader && (leader.id === 2 || leader.id === 3), `leader is ${leader?.id}`);
    for (const id of [2, 3, 4, 5]) assert.deepEqual(logTerms(c.node(id)).slice(0, 3), [1, 2, 4], `S${id}`);
    assertAppliedAgree(c);
    assert.equal(c.node(5).applied[1]!.term, 2);
  });
});
