import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ProposalDroppedError } from "../../src/raft/errors.js";
import { SeededRandom } from "../../src/raft/rand.js";
import {
  type ConfChange,
  type ConfChangeTransition,
  type ConfState,
  EMPTY_CONF_STATE,
  EntryType,
  MessageType,
  message,
  type NodeId,
} from "../../src/raft/types.js";
import {
  appliedConfChanges,
  appliedData,
  Cluster,
  type TestNode,
  utf8,
  watchLeaders,
} from "./helpers/cluster.js";

const BOOTSTRAP = [1, 2, 3];

const cs = (fields: Partial<ConfState>): ConfState => ({ ...EMPTY_CONF_STATE, ...fields });

function addVoter(nodeId: NodeId, transition: ConfChangeTransition = "auto"): ConfChange {
  return { transition, changes: [{ type: "addVoter", nodeId }] };
}

/** A three-node cluster with node 1 elected and its first entry committed everywhere. */
function electedCluster(options: ConstructorParameters<typeof Cluster>[0] = {}): Cluster {
  const c = new Cluster(options);
  c.elect(1);
  assert.equal(c.raft(1).role, "leader");
  return c;
}

/**
 * Adds an empty node that will join through a conf change. It starts from the bootstrap membership,
 * as every member of the cluster did: replaying the log from index 1 then yields the same membership
 * the others have.
 */
function addJoiner(c: Cluster, id: NodeId): TestNode {
  return c.addNode(id, BOOTSTRAP);
}

function committed(c: Cluster, id: NodeId): number {
  return c.raft(id).log.committed;
}

function expectDropped(f: () => void, reason: ProposalDroppedError["reason"]): void {
  assert.throws(f, (e: unknown) => e instanceof ProposalDroppedError && e.reason === reason);
}

describe("membership changes one node at a time", () => {
  it("adds a voter that catches up on the whole log and then counts towards the commit quorum", () => {
    const c = electedCluster();
    c.propose(1, "before");
    c.stabilize();
    addJoiner(c, 4);
    c.node(1).raw.proposeConfChange(addVoter(4));
    c.stabilize();

    for (const id of [1, 2, 3, 4]) {
      assert.deepEqual(c.node(id).confState, cs({ voters: [1, 2, 3, 4] }), `membership on ${id}`);
      assert.deepEqual(appliedData(c.node(id)), ["before"]);
    }
    assert.equal(c.raft(4).log.lastIndex(), c.raft(1).log.lastIndex());

    // Quorum is now 3 of 4: with 2 and 3 unreachable, the leader and 4 are not enough…
    c.isolate(2);
    c.isolate(3);
    c.propose(1, "needs-three");
    c.stabilize();
    assert.deepEqual(appliedData(c.node(1)), ["before"]);
    // …but 4's acknowledgement together with 2's is: 4 counts as a voter.
    c.heal();
    c.isolate(3);
    c.tickAll(1);
    assert.deepEqual(appliedData(c.node(1)), ["before", "needs-three"]);
    assert.deepEqual(appliedData(c.node(4)), ["before", "needs-three"]);
    assert.deepEqual(appliedData(c.node(3)), ["before"]);
  });

  it("adds a learner that receives every entry but whose acknowledgement never commits anything", () => {
    const c = electedCluster();
    addJoiner(c, 4);
    c.node(1).raw.proposeConfChange({ transition: "auto", changes: [{ type: "addLearner", nodeId: 4 }] });
    c.stabilize();
    for (const id of [1, 2, 3, 4])
      assert.deepEqual(c.node(id).confState, cs({ voters: [1, 2, 3], learners: [4] }));
    assert.equal(c.raft(4).isLearner, true);

    // Voters 2 and 3 cut off: the learner acknowledges, the entry stays uncommitted.
    c.isolate(2);
    c.isolate(3);
    const before = committed(c, 1);
    c.propose(1, "x");
    c.stabilize();
    const learnerProgress = c.node(1).raw.status().progress!.get(4)!;
    assert.equal(learnerProgress.match, c.raft(1).log.lastIndex(), "the learner has the entry");
    assert.equal(committed(c, 1), before, "…and it is not committed");
    assert.deepEqual(appliedData(c.node(4)), []);

    c.heal();
    c.tickAll(1);
    for (const id of [1, 2, 3, 4]) assert.deepEqual(appliedData(c.node(id)), ["x"]);
  });

  it("adds a voter and then a learner, each change waiting for the previous one to apply", () => {
    const c = electedCluster();
    addJoiner(c, 4);
    addJoiner(c, 5);
    c.node(1).raw.proposeConfChange(addVoter(4));
    expectDropped(
      () =>
        c.node(1).raw.proposeConfChange({ transition: "auto", changes: [{ type: "addLearner", nodeId: 5 }] }),
      "conf-change-pending",
    );
    c.stabilize();
    c.node(1).raw.proposeConfChange({ transition: "auto", changes: [{ type: "addLearner", nodeId: 5 }] });
    c.stabilize();
    for (const id of [1, 2, 3, 4, 5])
      assert.deepEqual(c.node(id).confState, cs({ voters: [1, 2, 3, 4], learners: [5] }), `node ${id}`);
    c.propose(1, "y");
    c.stabilize();
    for (const id of [1, 2, 3, 4, 5]) assert.deepEqual(appliedData(c.node(id)), ["y"]);
  });

  it("removes a follower: the leader stops replicating to it and commits with the remaining voters", () => {
    const c = electedCluster();
    c.node(1).raw.proposeConfChange({ transition: "auto", changes: [{ type: "removeNode", nodeId: 3 }] });
    c.stabilize();
    for (const id of [1, 2, 3]) assert.deepEqual(c.node(id).confState, cs({ voters: [1, 2] }));
    assert.ok(!c.raft(1).trk.progress.has(3));

    const sentBefore = c.sent.length;
    c.isolate(3);
    c.propose(1, "after-removal");
    c.tickAll(3);
    assert.deepEqual(appliedData(c.node(1)), ["after-removal"]);
    assert.deepEqual(appliedData(c.node(2)), ["after-removal"]);
    assert.ok(!c.sent.slice(sentBefore).some((m) => m.to === 3 && m.from === 1), "nothing sent to 3");

    // The removed node is not promotable: it never campaigns however long it waits.
    c.heal();
    c.tickAll(100);
    assert.ok(!c.sent.slice(sentBefore).some((m) => m.from === 3 && m.type === MessageType.PreVote));
    assert.equal(c.raft(1).role, "leader");
  });

  it("promotes a learner, which then counts towards the quorum", () => {
    // Two voters: without 2, only a promoted 3 can give the leader a majority.
    const c = new Cluster({ ids: [1, 2], learners: [3] });
    c.elect(1);
    c.isolate(2);
    c.propose(1, "while-learner");
    c.stabilize();
    assert.deepEqual(appliedData(c.node(1)), [], "a learner's acknowledgement does not commit");
    c.heal();
    c.stabilize();
    c.tickAll(1);
    assert.deepEqual(appliedData(c.node(1)), ["while-learner"]);

    c.node(1).raw.proposeConfChange(addVoter(3));
    c.stabilize();
    for (const id of [1, 2, 3]) assert.deepEqual(c.node(id).confState, cs({ voters: [1, 2, 3] }));
    assert.equal(c.raft(3).isLearner, false);
    assert.equal(c.raft(3).promotable(), true);

    c.isolate(2);
    c.propose(1, "after-promotion");
    c.stabilize();
    assert.deepEqual(appliedData(c.node(1)), ["while-learner", "after-promotion"]);
    assert.deepEqual(appliedData(c.node(3)), ["while-learner", "after-promotion"]);
  });
});

describe("joint consensus", () => {
  it("enters and leaves a joint configuration by itself for an auto change of several nodes", () => {
    const c = electedCluster();
    addJoiner(c, 4);
    c.node(1).raw.proposeConfChange({
      transition: "auto",
      changes: [
        { type: "addVoter", nodeId: 4 },
        { type: "removeNode", nodeId: 3 },
      ],
    });
    c.stabilize();
    for (const id of [1, 2, 4]) {
      assert.deepEqual(c.node(id).confState, cs({ voters: [1, 2, 4] }), `node ${id}`);
      const changes = appliedConfChanges(c.node(id));
      assert.equal(changes.length, 2, "an entering and a leaving change were applied");
      assert.equal(changes[1]!.changes.length, 0);
    }
    assert.ok(!c.raft(1).trk.progress.has(3));
    c.propose(1, "z");
    c.stabilize();
    for (const id of [1, 2, 4]) assert.deepEqual(appliedData(c.node(id)), ["z"]);
  });

  it("goes through a joint configuration for a single change with the implicit transition", () => {
    const c = electedCluster();
    addJoiner(c, 4);
    c.node(1).raw.proposeConfChange(addVoter(4, "implicit"));
    // Apply the entering change everywhere, but look before the leaving one is applied.
    let sawJoint = false;
    for (let i = 0; i < 100 && !sawJoint; i++) {
      for (const id of c.nodes.keys()) c.processReady(id);
      c.deliverAll();
      sawJoint = c.node(1).confState.votersOutgoing.length > 0;
    }
    assert.deepEqual(
      c.node(1).confState,
      cs({ voters: [1, 2, 3, 4], votersOutgoing: [1, 2, 3], autoLeave: true }),
    );
    c.stabilize();
    for (const id of [1, 2, 3, 4]) assert.deepEqual(c.node(id).confState, cs({ voters: [1, 2, 3, 4] }));
  });

  it("stays joint with the explicit transition until the application proposes leaving", () => {
    const c = electedCluster();
    addJoiner(c, 4);
    c.node(1).raw.proposeConfChange({
      transition: "explicit",
      changes: [
        { type: "addVoter", nodeId: 4 },
        { type: "removeNode", nodeId: 3 },
      ],
    });
    c.tickAll(30);
    const joint = cs({ voters: [1, 2, 4], votersOutgoing: [1, 2, 3] });
    for (const id of [1, 2, 3, 4]) assert.deepEqual(c.node(id).confState, joint, `node ${id}`);
    assert.equal(c.leader()?.id, 1);

    // A new change cannot start while joint; leaving is the only change allowed.
    expectDropped(() => c.node(1).raw.proposeConfChange(addVoter(5)), "conf-change-pending");
    c.node(1).raw.proposeConfChange({ transition: "auto", changes: [] });
    c.stabilize();
    for (const id of [1, 2, 4]) assert.deepEqual(c.node(id).confState, cs({ voters: [1, 2, 4] }));
    assert.ok(!c.raft(1).trk.progress.has(3));
  });

  it("commits in a joint configuration only with a majority of both the incoming and the outgoing voters", () => {
    const c = electedCluster();
    addJoiner(c, 4);
    addJoiner(c, 5);
    // Outgoing {1,2,3}, incoming {1,4,5}.
    c.node(1).raw.proposeConfChange({
      transition: "explicit",
      changes: [
        { type: "addVoter", nodeId: 4 },
        { type: "addVoter", nodeId: 5 },
        { type: "removeNode", nodeId: 2 },
        { type: "removeNode", nodeId: 3 },
      ],
    });
    c.stabilize();
    assert.deepEqual(c.node(1).confState, cs({ voters: [1, 4, 5], votersOutgoing: [1, 2, 3] }));

    // Only the incoming majority (1, 4, 5) reachable: nothing commits.
    c.isolate(2);
    c.isolate(3);
    const before = committed(c, 1);
    c.propose(1, "both-halves");
    c.stabilize();
    assert.equal(c.raft(4).log.lastIndex(), c.raft(1).log.lastIndex(), "4 has the entry");
    assert.equal(c.raft(5).log.lastIndex(), c.raft(1).log.lastIndex(), "5 has the entry");
    assert.equal(committed(c, 1), before);

    // Now only the outgoing majority (1, 2, 3) is reachable. The first entry commits, as the incoming
    // half acknowledged it before; the next one, which only the outgoing half has, does not.
    c.heal();
    c.isolate(4);
    c.isolate(5);
    c.propose(1, "second");
    c.tickAll(2);
    assert.equal(c.raft(2).log.lastIndex(), c.raft(1).log.lastIndex(), "2 has both entries");
    assert.equal(committed(c, 1), before + 1);
    assert.deepEqual(appliedData(c.node(1)), ["both-halves"]);

    // One more voter of the incoming half (1, 2, 3 + 4) makes both majorities.
    c.heal();
    c.isolate(5);
    c.tickAll(2);
    assert.deepEqual(appliedData(c.node(1)), ["both-halves", "second"]);
  });

  it("wins an election in a joint configuration only with a majority of both the incoming and the outgoing voters", () => {
    const c = electedCluster();
    c.addNode(4, BOOTSTRAP, { preVote: false });
    addJoiner(c, 5);
    c.node(1).raw.proposeConfChange({
      transition: "explicit",
      changes: [
        { type: "addVoter", nodeId: 4 },
        { type: "addVoter", nodeId: 5 },
        { type: "removeNode", nodeId: 2 },
        { type: "removeNode", nodeId: 3 },
      ],
    });
    c.stabilize();
    assert.deepEqual(c.node(4).confState, cs({ voters: [1, 4, 5], votersOutgoing: [1, 2, 3] }));

    c.node(4).raw.campaign();
    c.processReady(4); // its own vote counts once persisted; the requests are not delivered
    assert.deepEqual(
      c
        .takeQueue()
        .map((m) => m.to)
        .sort(),
      [1, 2, 3, 5],
      "asks the voters of both halves",
    );
    const term = c.raft(4).term;
    const grant = (from: NodeId) =>
      c.node(4).raw.step(message({ type: MessageType.VoteResp, from, to: 4, term }));
    grant(5); // {4, 5}: a majority of the incoming half only
    assert.equal(c.raft(4).role, "candidate");
    grant(1); // {1, 4, 5} incoming, {1} outgoing
    assert.equal(c.raft(4).role, "candidate");
    grant(2); // {1, 2} is a majority of the outgoing half too
    assert.equal(c.raft(4).role, "leader");
  });

  for (const transition of ["implicit", "explicit"] as const) {
    it(`never has two leaders in one term while moving between {1,2,3} and {3,4,5} (${transition}, random partitions)`, () => {
      let jointSeen = 0;
      let configChanges = 0;
      let elections = 0;
      for (let seed = 1; seed <= 25; seed++) {
        const r = runJointSchedule(seed, transition);
        for (const [term, leaders] of r.leaders)
          assert.ok(leaders.size <= 1, `seed ${seed}: term ${term} had leaders ${[...leaders].join(",")}`);
        jointSeen += r.jointSteps;
        configChanges += r.configChanges;
        elections += r.leaders.size;
      }
      // The schedules did exercise what the test is about.
      assert.ok(jointSeen > 1000, `joint steps ${jointSeen}`);
      assert.ok(configChanges > 500, `membership changes applied ${configChanges}`);
      assert.ok(elections > 100, `terms with a leader ${elections}`);
    });
  }
});

interface ScheduleResult {
  leaders: Map<number, Set<NodeId>>;
  jointSteps: number;
  configChanges: number;
}

/**
 * A seeded schedule: the membership moves back and forth between {1,2,3} and {3,4,5} through joint
 * configurations while the network is cut between random groups (often exactly between the outgoing
 * and the incoming voters) or loses messages, nodes crash and restart, and proposals come and go.
 * Checks log agreement at the end.
 */
function runJointSchedule(seed: number, transition: "implicit" | "explicit"): ScheduleResult {
  const rng = new SeededRandom(seed);
  const A = [1, 2, 3];
  const B = [3, 4, 5];
  // Half the schedules campaign without pre-vote, so that terms move and elections collide more.
  const node = seed % 2 === 0 ? {} : { preVote: false };
  const c = new Cluster({ ids: A, seed, node });
  c.addNode(4, BOOTSTRAP, { ...node, random: new SeededRandom(seed * 131 + 4) });
  c.addNode(5, BOOTSTRAP, { ...node, random: new SeededRandom(seed * 131 + 5) });
  const leaders = watchLeaders(c);
  c.elect(1);
  const all = [1, 2, 3, 4, 5];
  let jointSteps = 0;
  let payload = 0;

  for (let step = 0; step < 400; step++) {
    const r = rng.intn(100);
    if (r < 8) {
      c.heal();
    } else if (r < 16) {
      // Cut the old-only voters from the new-only ones; the shared voter lands on either side.
      c.heal();
      const shared = rng.intn(2) === 0;
      c.partition(shared ? [1, 2, 3] : [1, 2], shared ? [4, 5] : [3, 4, 5]);
    } else if (r < 22) {
      c.heal();
      const side = all.filter(() => rng.intn(2) === 0);
      c.partition(
        side,
        all.filter((id) => !side.includes(id)),
      );
    } else if (r < 25) {
      c.isolate(all[rng.intn(all.length)]!);
    } else if (r < 29) {
      // Lossy network: candidates lose votes and time out again, so elections overlap.
      c.heal();
      const dropPercent = 5 + rng.intn(25);
      c.filter = () => rng.intn(100) >= dropPercent;
    } else if (r < 32 && c.down.size < 2) {
      c.crash(all[rng.intn(all.length)]!);
    } else if (r < 38 && c.down.size > 0) {
      c.restart([...c.down][rng.intn(c.down.size)]!);
      watchLeaders(c, leaders);
    }

    const leader = c.leader();
    if (leader && rng.intn(3) === 0) {
      const raw = leader.raw;
      const config = raw.status().config;
      try {
        if (config.votersOutgoing.length > 0) {
          if (!config.autoLeave) raw.proposeConfChange({ transition: "auto", changes: [] });
        } else {
          const target = config.voters.includes(1) ? B : A;
          const changes = [
            ...target
              .filter((id) => !config.voters.includes(id))
              .map((nodeId) => ({ type: "addVoter" as const, nodeId })),
            ...config.voters
              .filter((id) => !target.includes(id))
              .map((nodeId) => ({ type: "removeNode" as const, nodeId })),
          ];
          raw.proposeConfChange({ transition, changes });
        }
      } catch (e) {
        if (!(e instanceof ProposalDroppedError)) throw e;
      }
      try {
        leader.raw.propose(utf8(`p${payload++}`));
      } catch (e) {
        if (!(e instanceof ProposalDroppedError)) throw e;
      }
    }
    c.tickAll(1);
    if ([...c.nodes.values()].some((n) => n.confState.votersOutgoing.length > 0)) jointSteps++;
  }

  // Heal and let the cluster settle: one leader, and every applied log agrees with every other.
  for (const id of [...c.down]) c.restart(id);
  watchLeaders(c, leaders);
  c.heal();
  c.tickAll(100);
  const finalLeader = c.leader();
  assert.ok(finalLeader, `seed ${seed}: a leader after healing`);
  const applied = [...c.nodes.values()].map((n) => n.applied);
  for (const a of applied)
    for (const b of applied)
      for (let i = 0; i < Math.min(a.length, b.length); i++) {
        assert.equal(a[i]!.index, b[i]!.index);
        assert.equal(a[i]!.term, b[i]!.term, `seed ${seed}: nodes disagree at index ${a[i]!.index}`);
      }
  const configChanges = finalLeader.applied.filter((e) => e.type === EntryType.ConfChange).length;
  return { leaders, jointSteps, configChanges };
}

describe("learners and elections", () => {
  it("a learner never campaigns, however long it hears from no leader", () => {
    const c = new Cluster({ ids: [1, 2, 3], learners: [4] });
    c.elect(1);
    c.isolate(4);
    const before = c.sent.length;
    c.tickAll(200);
    assert.equal(c.raft(4).role, "follower");
    c.node(4).raw.campaign();
    c.stabilize();
    assert.equal(c.raft(4).role, "follower");
    const fromLearner = c.sent
      .slice(before)
      .filter((m) => m.from === 4 && (m.type === MessageType.Vote || m.type === MessageType.PreVote));
    assert.deepEqual(fromLearner, []);
    // Nor does a timeout-now make it campaign.
    c.heal();
    c.node(4).raw.step(message({ type: MessageType.TimeoutNow, from: 1, to: 4, term: c.raft(1).term }));
    c.stabilize();
    assert.equal(c.raft(4).role, "follower");
    assert.equal(c.leader()?.id, 1);
  });

  it("a learner's granted vote does not win an election, a voter's does", () => {
    const c = new Cluster({ ids: [1, 2, 3], learners: [4], node: { preVote: false } });
    c.node(1).raw.campaign();
    c.processReady(1); // persists its own vote; the vote requests go to voters 2 and 3 only
    assert.deepEqual(
      c.takeQueue().map((m) => m.to),
      [2, 3],
    );
    assert.equal(c.raft(1).role, "candidate");
    const term = c.raft(1).term;

    // The learner answers a vote request (as etcd's learners do) and grants it…
    c.node(4).raw.step(message({ type: MessageType.Vote, from: 1, to: 4, term, index: 1, logTerm: 1 }));
    c.processReady(4);
    const [answer] = c.takeQueue();
    assert.equal(answer?.type, MessageType.VoteResp);
    assert.equal(answer?.reject, false);
    // …but the candidate does not count it: its own vote and the learner's are not a majority of 3.
    c.node(1).raw.step(answer!);
    assert.equal(c.raft(1).role, "candidate");

    c.node(1).raw.step(message({ type: MessageType.VoteResp, from: 2, to: 1, term }));
    assert.equal(c.raft(1).role, "leader");
  });

  it("a promoted learner that has not applied its promotion still answers votes, so elections do not stall", () => {
    const c = new Cluster({ ids: [1, 2, 3], learners: [4] });
    c.elect(1);
    // 4 hears nothing more from the leader, so it never learns of its promotion.
    c.cutLink(1, 4);
    c.node(1).raw.proposeConfChange(addVoter(4));
    c.stabilize();
    for (const id of [1, 2, 3]) assert.deepEqual(c.node(id).confState, cs({ voters: [1, 2, 3, 4] }));
    assert.equal(c.raft(4).isLearner, true);

    // Without 1, a leader needs 3 of {1,2,3,4}: 2, 3 and the learner-in-its-own-eyes 4.
    const before = c.sent.length;
    c.crash(1);
    c.tickAll(60);
    const leader = c.leader();
    assert.ok(leader && (leader.id === 2 || leader.id === 3), "2 or 3 was elected");
    const grantsFrom4 = c.sent
      .slice(before)
      .filter((m) => m.from === 4 && m.type === MessageType.VoteResp && !m.reject);
    assert.ok(grantsFrom4.length > 0, "4 granted its vote while still a learner");
    c.stabilize();
    assert.equal(c.raft(4).isLearner, false, "and learns of its promotion from the new leader");
  });

  it("a node with committed but unapplied membership changes does not campaign", () => {
    const c = electedCluster();
    addJoiner(c, 4);
    c.node(1).raw.proposeConfChange(addVoter(4));
    c.processReady(1); // appends to 2 and 3
    c.deliverAll();
    c.processReady(2);
    c.processReady(3);
    c.deliverAll(); // the leader commits the change
    c.processReady(1); // …tells 2 and 3, and applies it
    c.deliverAll(); // 2 learns the commit index; it does not get to apply it
    const r2 = c.raft(2);
    assert.equal(r2.log.committed, c.raft(1).log.lastIndex());
    assert.ok(r2.log.applied < r2.log.committed, "committed but not applied");

    const term = r2.term;
    c.node(2).raw.campaign();
    c.tick(2, 50);
    assert.equal(r2.role, "follower");
    assert.equal(r2.term, term);
    assert.ok(!r2.msgs.some((m) => m.type === MessageType.PreVote || m.type === MessageType.Vote));

    // Once applied, the same request starts a campaign.
    c.processReady(2);
    assert.equal(r2.log.applied, r2.log.committed);
    c.node(2).raw.campaign();
    assert.equal(r2.role, "pre-candidate");
  });
});

describe("removing the leader", () => {
  it("the removed leader steps down, hands off to a caught-up voter, and the rest keep committing", () => {
    const c = electedCluster();
    const oldTerm = c.raft(1).term;
    c.propose(1, "before");
    c.stabilize();
    c.node(1).raw.proposeConfChange({ transition: "auto", changes: [{ type: "removeNode", nodeId: 1 }] });
    c.stabilize();
    assert.notEqual(c.raft(1).role, "leader");
    assert.ok(
      c.sent.some((m) => m.from === 1 && m.type === MessageType.TimeoutNow),
      "the removed leader asked a voter to take over",
    );
    if (!c.leader()) c.tickAll(30);
    const leader = c.leader();
    assert.ok(leader && leader.id !== 1, "2 or 3 leads");
    assert.ok(leader.raft.term > oldTerm);
    assert.deepEqual(leader.confState, cs({ voters: [2, 3] }));

    c.propose(leader.id, "after");
    c.stabilize();
    for (const id of [2, 3]) assert.deepEqual(appliedData(c.node(id)), ["before", "after"]);
    assert.deepEqual(appliedData(c.node(1)), ["before"]);
    // The removed node stays quiet.
    c.tickAll(100);
    assert.equal(c.leader()?.id, leader.id);
  });

  it("a leader removed through a joint configuration leads until the joint state is left", () => {
    const c = electedCluster();
    addJoiner(c, 4);
    c.node(1).raw.proposeConfChange({
      transition: "explicit",
      changes: [
        { type: "removeNode", nodeId: 1 },
        { type: "addVoter", nodeId: 4 },
      ],
    });
    c.stabilize();
    assert.equal(c.raft(1).role, "leader", "still a voter of the outgoing half");
    c.propose(1, "joint");
    c.stabilize();
    c.node(1).raw.proposeConfChange({ transition: "auto", changes: [] });
    c.stabilize();
    assert.notEqual(c.raft(1).role, "leader");
    if (!c.leader()) c.tickAll(30);
    const leader = c.leader();
    assert.ok(leader && [2, 3, 4].includes(leader.id));
    c.propose(leader.id, "after");
    c.stabilize();
    for (const id of [2, 3, 4]) assert.deepEqual(appliedData(c.node(id)), ["joint", "after"]);
  });
});

describe("leaders demoted or removed through their own changes", () => {
  it("a leader that demotes itself to learner steps down and keeps replicating as a learner", () => {
    const c = electedCluster();
    const term = c.raft(1).term;
    c.node(1).raw.proposeConfChange({ transition: "auto", changes: [{ type: "addLearner", nodeId: 1 }] });
    c.stabilize();
    assert.notEqual(c.raft(1).role, "leader");
    assert.equal(c.raft(1).isLearner, true);
    if (!c.leader()) c.tickAll(30);
    const leader = c.leader();
    assert.ok(leader && leader.id !== 1 && leader.raft.term > term);
    assert.deepEqual(leader.confState, cs({ voters: [2, 3], learners: [1] }));
    c.propose(leader.id, "to-learner");
    c.stabilize();
    assert.deepEqual(appliedData(c.node(1)), ["to-learner"]);
    c.tickAll(100);
    assert.equal(c.leader()?.id, leader.id, "the new learner never disrupts");
  });

  it("a leader removed by an implicit joint change leads through it, leaves it, then hands off", () => {
    const c = electedCluster();
    addJoiner(c, 4);
    c.node(1).raw.proposeConfChange({
      transition: "implicit",
      changes: [
        { type: "removeNode", nodeId: 1 },
        { type: "addVoter", nodeId: 4 },
      ],
    });
    c.stabilize();
    assert.notEqual(c.raft(1).role, "leader");
    assert.deepEqual(
      appliedConfChanges(c.node(1)).length,
      2,
      "it applied the entering and the leaving change",
    );
    if (!c.leader()) c.tickAll(30);
    const leader = c.leader();
    assert.ok(leader && [2, 3, 4].includes(leader.id));
    assert.deepEqual(leader.confState, cs({ voters: [2, 3, 4] }));
    c.propose(leader.id, "after");
    c.stabilize();
    for (const id of [2, 3, 4]) assert.deepEqual(appliedData(c.node(id)), ["after"]);
  });

  it("a new leader leaves an automatic joint configuration that its predecessor entered", () => {
    const c = electedCluster();
    addJoiner(c, 4);
    c.node(1).raw.proposeConfChange(addVoter(4, "implicit"));
    // Until the leader applied the entering change; its proposal to leave never gets out.
    while (c.node(1).confState.votersOutgoing.length === 0) {
      for (const id of c.nodes.keys()) c.processReady(id);
      c.deliverAll();
    }
    c.isolate(1);
    c.tickAll(60);
    const leader = c.leader();
    assert.ok(leader && leader.id !== 1, "a new leader among 2, 3, 4");
    for (const id of [2, 3, 4])
      assert.deepEqual(c.node(id).confState, cs({ voters: [1, 2, 3, 4] }), `node ${id}`);
    c.heal();
    c.tickAll(5);
    assert.deepEqual(c.node(1).confState, cs({ voters: [1, 2, 3, 4] }));
  });
});

describe("refused membership changes", () => {
  it("refuses a second local change while one is unapplied, and replaces a forwarded one with an empty entry", () => {
    const c = electedCluster();
    addJoiner(c, 4);
    addJoiner(c, 5);
    c.node(1).raw.proposeConfChange(addVoter(4));
    expectDropped(() => c.node(1).raw.proposeConfChange(addVoter(5)), "conf-change-pending");
    // A follower's change is forwarded; the leader cannot throw at it, so it logs an empty entry.
    c.node(2).raw.proposeConfChange(addVoter(5));
    c.stabilize();
    for (const id of [1, 2, 3, 4]) assert.deepEqual(c.node(id).confState, cs({ voters: [1, 2, 3, 4] }));
    const applied = c.node(1).applied;
    assert.equal(applied.filter((e) => e.type === EntryType.ConfChange).length, 1);
    const last = applied[applied.length - 1]!;
    assert.equal(last.type, EntryType.Normal);
    assert.equal(last.data.byteLength, 0, "the forwarded change became an empty entry");

    // Once applied, the next change is accepted.
    c.node(1).raw.proposeConfChange(addVoter(5));
    c.stabilize();
    assert.deepEqual(c.node(1).confState, cs({ voters: [1, 2, 3, 4, 5] }));
  });

  it("a new leader refuses changes until it has applied the change it inherited uncommitted", () => {
    const c = electedCluster();
    addJoiner(c, 4);
    addJoiner(c, 5);
    c.node(1).raw.proposeConfChange(addVoter(4));
    c.processReady(1);
    c.deliverAll(); // 2 and 3 append the change…
    c.isolate(1); // …but the leader never hears back and is gone
    const term = c.raft(2).term;
    c.node(2).raw.step(message({ type: MessageType.TimeoutNow, from: 1, to: 2, term }));
    for (let i = 0; i < 10 && c.raft(2).role !== "leader"; i++) {
      for (const id of [2, 3]) c.processReady(id);
      c.deliverAll();
    }
    const r2 = c.raft(2);
    assert.equal(r2.role, "leader");
    assert.ok(r2.log.applied < r2.pendingConfIndex, "the inherited change is not applied yet");
    assert.throws(
      () => c.node(2).raw.proposeConfChange(addVoter(5)),
      (e: unknown) => e instanceof ProposalDroppedError && e.reason === "conf-change-pending",
    );
    // An inherited change that cannot remove this leader does not hold back ordinary proposals.
    c.propose(2, "during-inherited-change");

    c.stabilize(); // 2 commits an entry of its term, and with it the inherited change
    assert.deepEqual(c.node(2).confState, cs({ voters: [1, 2, 3, 4] }));
    c.node(2).raw.proposeConfChange(addVoter(5));
    c.stabilize();
    for (const id of [2, 3, 4, 5]) assert.deepEqual(c.node(id).confState, cs({ voters: [1, 2, 3, 4, 5] }));
  });

  it("refuses to leave a configuration that is not joint", () => {
    const c = electedCluster();
    expectDropped(
      () => c.node(1).raw.proposeConfChange({ transition: "auto", changes: [] }),
      "conf-change-invalid",
    );
    c.propose(1, "still-works");
    c.stabilize();
    assert.deepEqual(appliedData(c.node(3)), ["still-works"]);
  });

  it("refuses to remove every voter instead of committing a change no node could apply", () => {
    const solo = new Cluster({ ids: [1] });
    solo.elect(1);
    expectDropped(
      () =>
        solo
          .node(1)
          .raw.proposeConfChange({ transition: "auto", changes: [{ type: "removeNode", nodeId: 1 }] }),
      "conf-change-invalid",
    );
    solo.propose(1, "alive");
    solo.stabilize();
    assert.deepEqual(appliedData(solo.node(1)), ["alive"]);

    const c = electedCluster();
    expectDropped(
      () =>
        c.node(1).raw.proposeConfChange({
          transition: "explicit",
          changes: [1, 2, 3].map((nodeId) => ({ type: "removeNode" as const, nodeId })),
        }),
      "conf-change-invalid",
    );
    // A forwarded invalid change does not get into the log either.
    c.node(2).raw.proposeConfChange({
      transition: "auto",
      changes: [1, 2, 3].map((nodeId) => ({ type: "removeNode" as const, nodeId })),
    });
    c.stabilize();
    assert.deepEqual(appliedConfChanges(c.node(1)), []);
    assert.deepEqual(c.node(2).confState, cs({ voters: [1, 2, 3] }));
  });

  it("the application that applies an invalid change directly gets InvalidConfChangeError and keeps its membership", () => {
    const c = electedCluster();
    const raw = c.node(2).raw;
    const removeAll: ConfChange = {
      transition: "auto",
      changes: [1, 2, 3].map((nodeId) => ({ type: "removeNode" as const, nodeId })),
    };
    assert.throws(() => raw.applyConfChange(removeAll), { name: "InvalidConfChangeError" });
    assert.throws(() => raw.applyConfChange({ transition: "auto", changes: [] }), {
      name: "InvalidConfChangeError",
    });
    assert.deepEqual(raw.status().config, cs({ voters: [1, 2, 3] }));
    assert.ok([1, 2, 3].every((id) => c.raft(2).trk.progress.has(id)));
    c.propose(2, "unharmed");
    c.stabilize();
    assert.deepEqual(appliedData(c.node(3)), ["unharmed"]);
  });
});
