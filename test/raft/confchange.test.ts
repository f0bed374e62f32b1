import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Changer, type ConfigAndProgress, restoreConfig } from "../../src/raft/confchange/changer.js";
import {
  ConfChangeDecodeError,
  decodeConfChange,
  encodeConfChange,
  MAX_CONF_CHANGES,
} from "../../src/raft/confchange/codec.js";
import { InvalidConfChangeError } from "../../src/raft/errors.js";
import { SeededRandom } from "../../src/raft/rand.js";
import { ProgressTracker } from "../../src/raft/tracker/tracker.js";
import { type ConfChange, type ConfState, EMPTY_CONF_STATE } from "../../src/raft/types.js";

const LAST_INDEX = 10;
const MAX_INFLIGHT = 16;

function configOf(cs: Partial<ConfState>): ConfigAndProgress {
  return restoreConfig({ ...EMPTY_CONF_STATE, ...cs }, LAST_INDEX, MAX_INFLIGHT, 0);
}

function changer(cp: ConfigAndProgress): Changer {
  return new Changer(cp, LAST_INDEX, MAX_INFLIGHT, 0);
}

/** The membership a (config, progress) pair describes, as a tracker that installed it reports it. */
function confStateOf(cp: ConfigAndProgress): ConfState {
  const t = new ProgressTracker(MAX_INFLIGHT, 0);
  t.setConfig(cp.config, cp.progress);
  return t.confState();
}

function learnerFlags(cp: ConfigAndProgress): Record<number, boolean> {
  const out: Record<number, boolean> = {};
  for (const [id, pr] of [...cp.progress].sort((a, b) => a[0] - b[0])) out[id] = pr.isLearner;
  return out;
}

const cs = (fields: Partial<ConfState>): ConfState => ({ ...EMPTY_CONF_STATE, ...fields });

describe("conf change codec", () => {
  const samples: ConfChange[] = [
    { transition: "auto", changes: [] },
    { transition: "auto", changes: [{ type: "addVoter", nodeId: 4 }] },
    {
      transition: "implicit",
      changes: [
        { type: "addVoter", nodeId: 4 },
        { type: "removeNode", nodeId: 1 },
        { type: "addLearner", nodeId: 5 },
      ],
    },
    {
      transition: "explicit",
      changes: [{ type: "removeNode", nodeId: Number.MAX_SAFE_INTEGER }],
      context: new TextEncoder().encode("10.0.0.4:7000"),
    },
    { transition: "auto", changes: [{ type: "addLearner", nodeId: 2 ** 32 + 7 }] },
  ];

  it("decodes every encoded change to an equal change", () => {
    for (const cc of samples) {
      const decoded = decodeConfChange(encodeConfChange(cc));
      assert.deepEqual(decoded, cc);
    }
  });

  it("decodes a change that sits in the middle of a larger buffer", () => {
    const cc = samples[2]!;
    const bytes = encodeConfChange(cc);
    const big = new Uint8Array(bytes.byteLength + 20);
    big.set(bytes, 7);
    assert.deepEqual(decodeConfChange(big.subarray(7, 7 + bytes.byteLength)), cc);
  });

  it("refuses every truncation of a valid encoding with a ConfChangeDecodeError", () => {
    for (const cc of samples) {
      const bytes = encodeConfChange(cc);
      for (let len = 0; len < bytes.byteLength; len++) {
        assert.throws(() => decodeConfChange(bytes.subarray(0, len)), ConfChangeDecodeError, `length ${len}`);
      }
    }
  });

  it("refuses an unknown version, transition or change type, trailing bytes and absurd counts", () => {
    const good = encodeConfChange(samples[1]!);
    const patched = (at: number, value: number) => {
      const b = good.slice();
      b[at] = value;
      return b;
    };
    assert.throws(() => decodeConfChange(patched(0, 2)), /unknown conf change version 2/);
    assert.throws(() => decodeConfChange(patched(1, 3)), /unknown transition 3/);
    assert.throws(() => decodeConfChange(patched(4, 9)), /unknown change type 9/);
    const trailing = new Uint8Array(good.byteLength + 1);
    trailing.set(good);
    assert.throws(() => decodeConfChange(trailing), /trailing bytes/);
    const tooMany = good.slice();
    new DataView(tooMany.buffer).setUint16(2, MAX_CONF_CHANGES + 1);
    assert.throws(() => decodeConfChange(tooMany), /too many changes/);
    const hugeContext = good.slice();
    new DataView(hugeContext.buffer).setUint32(4 + 9, 0xffff_ffff);
    assert.throws(() => decodeConfChange(hugeContext), /context too long/);
    for (const b of [patched(0, 2), patched(1, 3), patched(4, 9), trailing, tooMany, hugeContext]) {
      assert.throws(() => decodeConfChange(b), ConfChangeDecodeError);
    }
  });

  it("refuses a node id that is not a safe integer instead of rounding it to another node", () => {
    const bytes = encodeConfChange({ transition: "auto", changes: [{ type: "removeNode", nodeId: 3 }] });
    // High word 0x0020_0000 puts the id just past Number.MAX_SAFE_INTEGER (2^53 - 1).
    new DataView(bytes.buffer).setUint32(5, 0x0020_0000);
    assert.throws(() => decodeConfChange(bytes), ConfChangeDecodeError);
    new DataView(bytes.buffer).setUint32(5, 0x001f_ffff);
    new DataView(bytes.buffer).setUint32(9, 0xffff_ffff);
    assert.deepEqual(decodeConfChange(bytes).changes, [
      { type: "removeNode", nodeId: Number.MAX_SAFE_INTEGER },
    ]);
  });

  it("answers garbage and corrupted encodings either with a ConfChangeDecodeError or with a change that encodes back to the same bytes", () => {
    const rng = new SeededRandom(20240611);
    let decoded = 0;
    let refused = 0;
    for (let i = 0; i < 5000; i++) {
      let bytes: Uint8Array;
      if (i % 2 === 0) {
        bytes = new Uint8Array(rng.intn(40));
        for (let j = 0; j < bytes.byteLength; j++) bytes[j] = rng.intn(256);
      } else {
        bytes = encodeConfChange(samples[rng.intn(samples.length)]!).slice();
        bytes[rng.intn(bytes.byteLength)] = rng.intn(256);
      }
      try {
        const cc = decodeConfChange(bytes);
        assert.deepEqual(encodeConfChange(cc), bytes);
        decoded++;
      } catch (e) {
        assert.ok(e instanceof ConfChangeDecodeError, `unexpected ${String(e)}`);
        refused++;
      }
    }
    assert.ok(decoded > 0 && refused > 0, `decoded ${decoded}, refused ${refused}`);
  });
});

describe("Changer", () => {
  it("refuses a simple change that alters two voters and leaves its input untouched", () => {
    const cur = configOf({ voters: [1, 2, 3] });
    const before = learnerFlags(cur);
    assert.throws(
      () =>
        changer(cur).simple([
          { type: "addVoter", nodeId: 4 },
          { type: "addVoter", nodeId: 5 },
        ]),
      InvalidConfChangeError,
    );
    assert.throws(
      () =>
        changer(cur).simple([
          { type: "addLearner", nodeId: 2 },
          { type: "addLearner", nodeId: 3 },
        ]),
      InvalidConfChangeError,
    );
    assert.deepEqual(confStateOf(cur), cs({ voters: [1, 2, 3] }));
    assert.deepEqual(learnerFlags(cur), before);
    assert.deepEqual([...cur.progress.keys()].sort(), [1, 2, 3]);
  });

  it("demotes a voter to a learner with a simple change", () => {
    const cur = configOf({ voters: [1, 2, 3] });
    const next = changer(cur).simple([{ type: "addLearner", nodeId: 3 }]);
    assert.deepEqual(confStateOf(next), cs({ voters: [1, 2], learners: [3] }));
    assert.equal(next.progress.get(3)!.isLearner, true);
  });

  it("keeps a demoted outgoing voter voting as learnersNext until the joint configuration is left", () => {
    const cur = configOf({ voters: [1, 2, 3] });
    const joint = changer(cur).enterJoint(false, [
      { type: "addLearner", nodeId: 3 },
      { type: "addVoter", nodeId: 4 },
    ]);
    assert.deepEqual(
      confStateOf(joint),
      cs({ voters: [1, 2, 4], votersOutgoing: [1, 2, 3], learnersNext: [3] }),
    );
    assert.equal(joint.progress.get(3)!.isLearner, false, "still a voter of the outgoing half");
    assert.ok(joint.config.voters.has(3));

    const left = changer(joint).leaveJoint();
    assert.deepEqual(confStateOf(left), cs({ voters: [1, 2, 4], learners: [3] }));
    assert.equal(left.progress.get(3)!.isLearner, true);
    assert.ok(!left.config.voters.has(3));
  });

  it("keeps the progress of a removed outgoing voter until the joint configuration is left", () => {
    const joint = changer(configOf({ voters: [1, 2, 3] })).enterJoint(true, [
      { type: "removeNode", nodeId: 3 },
      { type: "addVoter", nodeId: 4 },
    ]);
    assert.deepEqual(
      confStateOf(joint),
      cs({ voters: [1, 2, 4], votersOutgoing: [1, 2, 3], autoLeave: true }),
    );
    assert.ok(joint.progress.has(3));
    const left = changer(joint).leaveJoint();
    assert.ok(!left.progress.has(3));
    assert.deepEqual(confStateOf(left), cs({ voters: [1, 2, 4] }));
  });

  it("re-promotes a learner-to-be that is added back as a voter in the same joint change", () => {
    const joint = changer(configOf({ voters: [1, 2, 3] })).enterJoint(false, [
      { type: "addLearner", nodeId: 3 },
      { type: "addVoter", nodeId: 3 },
    ]);
    assert.deepEqual(confStateOf(joint), cs({ voters: [1, 2, 3], votersOutgoing: [1, 2, 3] }));
  });

  it("refuses invalid transitions: removing every voter, joint within joint, leaving a non-joint config", () => {
    const plain = configOf({ voters: [1, 2] });
    assert.throws(
      () =>
        changer(plain).enterJoint(false, [
          { type: "removeNode", nodeId: 1 },
          { type: "removeNode", nodeId: 2 },
        ]),
      /removed all voters/,
    );
    assert.throws(() => changer(configOf({ voters: [1] })).simple([{ type: "removeNode", nodeId: 1 }]), {
      name: "InvalidConfChangeError",
    });
    assert.throws(() => changer(plain).leaveJoint(), /not joint/);
    const joint = changer(plain).enterJoint(false, [{ type: "addVoter", nodeId: 3 }]);
    assert.throws(() => changer(joint).enterJoint(false, [{ type: "addVoter", nodeId: 4 }]), /already joint/);
    assert.throws(() => changer(joint).simple([{ type: "addVoter", nodeId: 4 }]), InvalidConfChangeError);
    // None of the refusals changed the configurations they were computed from.
    assert.deepEqual(confStateOf(plain), cs({ voters: [1, 2] }));
    assert.deepEqual(confStateOf(joint), cs({ voters: [1, 2, 3], votersOutgoing: [1, 2] }));
  });

  it("gives new nodes a probing progress at the last index, marked active", () => {
    const next = changer(configOf({ voters: [1] })).simple([{ type: "addVoter", nodeId: 2 }]);
    const pr = next.progress.get(2)!;
    assert.equal(pr.next, LAST_INDEX);
    assert.equal(pr.match, 0);
    assert.equal(pr.state, "probe");
    assert.equal(pr.recentActive, true);
  });
});

describe("restoreConfig", () => {
  it("rebuilds a joint ConfState with learners and learners-to-be exactly", () => {
    const joint = cs({
      voters: [1, 2, 4],
      votersOutgoing: [1, 2, 3],
      learners: [5],
      learnersNext: [3],
      autoLeave: true,
    });
    const restored = configOf(joint);
    assert.deepEqual(confStateOf(restored), joint);
    assert.ok(restored.config.voters.isJoint());
    assert.deepEqual([...restored.progress.keys()].sort(), [1, 2, 3, 4, 5]);
    assert.deepEqual(learnerFlags(restored), { 1: false, 2: false, 3: false, 4: false, 5: true });
    // And it can be left like any joint configuration.
    assert.deepEqual(
      confStateOf(changer(restored).leaveJoint()),
      cs({ voters: [1, 2, 4], learners: [3, 5] }),
    );
  });

  it("rebuilds a plain ConfState and an empty one", () => {
    const plain = cs({ voters: [3, 1, 2], learners: [7] });
    assert.deepEqual(confStateOf(configOf(plain)), cs({ voters: [1, 2, 3], learners: [7] }));
    const empty = configOf({});
    assert.equal(empty.progress.size, 0);
    assert.deepEqual(confStateOf(empty), EMPTY_CONF_STATE);
  });

  it("rebuilds a joint ConfState whose halves share no voter", () => {
    const disjoint = cs({ voters: [4, 5, 6], votersOutgoing: [1, 2, 3] });
    assert.deepEqual(confStateOf(configOf(disjoint)), disjoint);
  });
});
