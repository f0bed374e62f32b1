import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { JointConfig } from "../../src/raft/quorum/joint.js";
import { MajorityConfig, VoteResult } from "../../src/raft/quorum/majority.js";
import type { NodeId } from "../../src/raft/types.js";

function acked(m: Record<number, number>): (id: NodeId) => number | undefined {
  return (id) => m[id];
}

function votes(m: Record<number, boolean>): Map<NodeId, boolean> {
  return new Map(Object.entries(m).map(([k, v]) => [Number(k), v]));
}

describe("a majority configuration's commit index", () => {
  const cases: { voters: NodeId[]; acks: Record<number, number>; want: number; why: string }[] = [
    { voters: [1], acks: { 1: 7 }, want: 7, why: "a single voter commits what it has" },
    { voters: [1], acks: {}, want: 0, why: "a single voter with no ack commits nothing" },
    { voters: [1, 2], acks: { 1: 8, 2: 5 }, want: 5, why: "two voters need both" },
    { voters: [1, 2], acks: { 1: 8 }, want: 0, why: "two voters, one missing" },
    { voters: [1, 2, 3], acks: { 1: 9, 2: 4, 3: 6 }, want: 6, why: "three voters: the median" },
    { voters: [1, 2, 3], acks: { 1: 9, 3: 6 }, want: 6, why: "three voters, one missing" },
    { voters: [1, 2, 3], acks: { 1: 9 }, want: 0, why: "three voters, two missing" },
    { voters: [1, 2, 3, 4], acks: { 1: 9, 2: 8, 3: 3, 4: 1 }, want: 3, why: "four voters need three" },
    { voters: [1, 2, 3, 4], acks: { 1: 9, 2: 8, 3: 3 }, want: 3, why: "four voters, one missing" },
    { voters: [1, 2, 3, 4], acks: { 1: 9, 2: 8 }, want: 0, why: "four voters, two missing" },
    {
      voters: [1, 2, 3, 4, 5],
      acks: { 1: 10, 2: 2, 3: 7, 4: 5, 5: 9 },
      want: 7,
      why: "five voters: the third highest",
    },
    { voters: [1, 2, 3, 4, 5], acks: { 1: 10, 3: 7, 5: 9 }, want: 7, why: "five voters, two missing" },
    { voters: [1, 2, 3, 4, 5], acks: { 1: 10, 5: 9 }, want: 0, why: "five voters, three missing" },
    {
      voters: [1, 2, 3, 4, 5],
      acks: { 1: 4, 2: 4, 3: 4, 4: 4, 5: 4 },
      want: 4,
      why: "five voters, all equal",
    },
  ];
  for (const c of cases) {
    it(`${c.why} (voters ${c.voters.join(",")})`, () => {
      assert.equal(new MajorityConfig(c.voters).committedIndex(acked(c.acks)), c.want);
    });
  }

  it("ignores acks from nodes that are not voters", () => {
    const m = new MajorityConfig([1, 2, 3]);
    assert.equal(m.committedIndex(acked({ 1: 5, 4: 100, 5: 100 })), 0);
  });

  it("is unbounded for an empty configuration, so it never limits a joint one", () => {
    assert.equal(new MajorityConfig().committedIndex(acked({})), Number.MAX_SAFE_INTEGER);
  });

  it("gives the same answer when computed repeatedly (the scratch space is reused)", () => {
    const m = new MajorityConfig([1, 2, 3]);
    assert.equal(m.committedIndex(acked({ 1: 3, 2: 2, 3: 1 })), 2);
    assert.equal(m.committedIndex(acked({ 1: 1, 2: 9, 3: 8 })), 8);
    assert.equal(m.committedIndex(acked({ 1: 1 })), 0);
  });
});

describe("a majority configuration's vote result", () => {
  it("is won with a majority of grants", () => {
    const m = new MajorityConfig([1, 2, 3]);
    assert.equal(m.voteResult(votes({ 1: true, 2: true })), VoteResult.Won);
    assert.equal(m.voteResult(votes({ 1: true, 2: false, 3: true })), VoteResult.Won);
  });

  it("is pending while the missing votes could still decide it", () => {
    const m = new MajorityConfig([1, 2, 3]);
    assert.equal(m.voteResult(votes({})), VoteResult.Pending);
    assert.equal(m.voteResult(votes({ 1: true })), VoteResult.Pending);
    assert.equal(m.voteResult(votes({ 1: true, 2: false })), VoteResult.Pending);
  });

  it("is lost once a majority can no longer be reached", () => {
    const m = new MajorityConfig([1, 2, 3]);
    assert.equal(m.voteResult(votes({ 1: false, 2: false })), VoteResult.Lost);
    assert.equal(m.voteResult(votes({ 1: true, 2: false, 3: false })), VoteResult.Lost);
  });

  it("needs three of four: two grants and two rejections lose", () => {
    const m = new MajorityConfig([1, 2, 3, 4]);
    assert.equal(m.voteResult(votes({ 1: true, 2: true })), VoteResult.Pending);
    assert.equal(m.voteResult(votes({ 1: true, 2: true, 3: false, 4: false })), VoteResult.Lost);
    assert.equal(m.voteResult(votes({ 1: true, 2: true, 3: true })), VoteResult.Won);
  });

  it("a single voter decides alone", () => {
    const m = new MajorityConfig([1]);
    assert.equal(m.voteResult(votes({})), VoteResult.Pending);
    assert.equal(m.voteResult(votes({ 1: true })), VoteResult.Won);
    assert.equal(m.voteResult(votes({ 1: false })), VoteResult.Lost);
  });

  it("ignores votes from non-voters", () => {
    const m = new MajorityConfig([1, 2, 3]);
    assert.equal(m.voteResult(votes({ 1: true, 7: true, 8: true })), VoteResult.Pending);
  });

  it("an empty configuration wins every vote", () => {
    assert.equal(new MajorityConfig().voteResult(votes({})), VoteResult.Won);
  });
});

describe("a joint configuration", () => {
  const joint = new JointConfig(new MajorityConfig([1, 2, 3]), new MajorityConfig([3, 4, 5]));

  it("commits the lower of its two halves' commit indexes", () => {
    // incoming {1,2,3}: 9,8,2 → 8; outgoing {3,4,5}: 2,4,1 → 2
    assert.equal(joint.committedIndex(acked({ 1: 9, 2: 8, 3: 2, 4: 4, 5: 1 })), 2);
    // incoming {1,2,3}: 1,1,6 → 1; outgoing {3,4,5}: 6,7,7 → 7
    assert.equal(joint.committedIndex(acked({ 1: 1, 2: 1, 3: 6, 4: 7, 5: 7 })), 1);
  });

  it("with an empty outgoing half behaves like its incoming half", () => {
    const simple = new JointConfig(new MajorityConfig([1, 2, 3]));
    assert.equal(simple.isJoint(), false);
    assert.equal(simple.committedIndex(acked({ 1: 5, 2: 4, 3: 1 })), 4);
    assert.equal(simple.voteResult(votes({ 1: true, 2: true })), VoteResult.Won);
  });

  it("is won only when both halves win", () => {
    assert.equal(joint.voteResult(votes({ 1: true, 2: true, 3: true, 4: true })), VoteResult.Won);
    assert.equal(joint.voteResult(votes({ 1: true, 2: true, 4: true, 5: true })), VoteResult.Won);
  });

  it("is pending when one half has won and the other is undecided", () => {
    assert.equal(joint.voteResult(votes({ 1: true, 2: true })), VoteResult.Pending);
    assert.equal(joint.voteResult(votes({ 1: true, 2: true, 4: true })), VoteResult.Pending);
  });

  it("is lost when either half loses, even if the other has won", () => {
    assert.equal(joint.voteResult(votes({ 1: true, 2: true, 3: true, 4: false, 5: false })), VoteResult.Lost);
    assert.equal(joint.voteResult(votes({ 1: false, 2: false, 4: true, 5: true })), VoteResult.Lost);
  });

  it("counts a voter in both halves for both", () => {
    // Node 3 alone cannot win either half, but with 2 and 4 it carries both.
    assert.equal(joint.voteResult(votes({ 3: true })), VoteResult.Pending);
    assert.equal(joint.voteResult(votes({ 2: true, 3: true, 4: true })), VoteResult.Won);
  });

  it("lists every voter of either half once", () => {
    assert.deepEqual([...joint.ids()].sort(), [1, 2, 3, 4, 5]);
    assert.equal(joint.has(5), true);
    assert.equal(joint.has(6), false);
  });
});
