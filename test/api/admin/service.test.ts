/**
 * The admin service and its client over real loopback gRPC, with the node behind the service faked:
 * status, the redirect from a follower to the leader, and every typed refusal (not leader, unknown node,
 * refused change, timeout, outcome unknown, unavailable, invalid request, unreachable).
 */
import assert from "node:assert/strict";
import { after, describe, it } from "node:test";
import * as grpc from "@grpc/grpc-js";
import { AdminClient } from "../../../src/api/admin/client.js";
import {
  AdminNotLeaderError,
  AdminTimeoutError,
  ChangeRefusedError,
  InvalidAdminRequestError,
  NodeUnavailableError,
  NodeUnreachableError,
  OutcomeUnknownError,
  UnknownNodeError,
} from "../../../src/api/admin/errors.js";
import { type AdminBackend, AdminService } from "../../../src/api/admin/service.js";
import { LeadershipLostError, ProposalRefusedError } from "../../../src/engine/errors.js";
import { decodeAddressContext } from "../../../src/kv/address-book.js";
import type { PeerProgress, Status } from "../../../src/raft/status.js";
import { type ConfState, EMPTY_CONF_STATE, type NodeId, type StateRole } from "../../../src/raft/types.js";

const servers: grpc.Server[] = [];
const clients: AdminClient[] = [];
after(() => {
  for (const c of clients) c.close();
  for (const s of servers) s.forceShutdown();
});

function progress(match: number, isLearner = false): PeerProgress {
  return {
    match,
    next: match + 1,
    state: "replicate",
    pendingSnapshot: 0,
    recentActive: true,
    paused: false,
    inflightMessages: 0,
    inflightBytes: 0,
    isLearner,
  };
}

/** A node as the admin service sees it; its calls are recorded and answered as the test says. */
class FakeNode implements AdminBackend {
  readonly clusterId = "test";
  role: StateRole = "leader";
  lead: NodeId = 1;
  config: ConfState = { ...EMPTY_CONF_STATE, voters: [1, 2, 3], learners: [4] };
  commit = 100;
  peerProgress = new Map<NodeId, PeerProgress>([
    [1, progress(100)],
    [2, progress(100)],
    [3, progress(99)],
    [4, progress(100, true)],
  ]);
  readonly book = new Map<NodeId, string>([
    [1, "h1:1"],
    [2, "h2:2"],
    [3, "h3:3"],
    [4, "h4:4"],
  ]);
  calls: string[] = [];
  /** How the next change ends: applied (default), refused with an error, or never. */
  outcome: Error | "never" | null = null;

  constructor(readonly id: NodeId) {}

  status(): Status {
    return {
      id: this.id,
      hardState: { term: 7, vote: this.lead, commit: this.commit },
      softState: { lead: this.lead, role: this.role },
      applied: this.commit,
      lastIndex: this.commit + 1,
      firstIndex: 1,
      snapshotIndex: 50,
      config: this.config,
      progress: this.role === "leader" ? this.peerProgress : null,
      leadTransferee: 0,
    };
  }
  addresses(): ReadonlyMap<NodeId, string> {
    return this.book;
  }
  /** Node 4 is the highest member so far; a test raises it to stand for a node added and removed. */
  highest = 4;
  highestNodeId(): number {
    return this.highest;
  }
  private settle<T>(call: string, value: T): Promise<T> {
    this.calls.push(call);
    if (this.outcome === "never") return new Promise<T>(() => {});
    if (this.outcome !== null) return Promise.reject(this.outcome);
    return Promise.resolve(value);
  }
  addVoter(id: NodeId, context?: Uint8Array): Promise<ConfState> {
    const address = context ? decodeAddressContext(context)?.get(id) : undefined;
    return this.settle(`addVoter ${id}${address ? ` ${address}` : ""}`, {
      ...this.config,
      voters: [...this.config.voters, id],
      learners: this.config.learners.filter((l) => l !== id),
    });
  }
  addLearner(id: NodeId, context?: Uint8Array): Promise<ConfState> {
    const address = context ? decodeAddressContext(context)?.get(id) : undefined;
    return this.settle(`addLearner ${id} ${address}`, {
      ...this.config,
      learners: [...this.config.learners, id],
    });
  }
  removeServer(id: NodeId): Promise<ConfState> {
    return this.settle(`remove ${id}`, {
      ...this.config,
      voters: this.config.voters.filter((v) => v !== id),
    });
  }
  transferLeadership(to: NodeId): Promise<void> {
    return this.settle(`transfer ${to}`, undefined);
  }
}

/** Serves an admin service on a loopback port; `node` null leaves it unattached (a node starting). */
async function serve(node: FakeNode | null): Promise<string> {
  const service = new AdminService({ defaultTimeoutMs: 5_000 });
  if (node !== null) service.attach(node);
  const server = new grpc.Server();
  const { definition, implementation } = service.binding();
  server.addService(definition, implementation);
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (err, p) =>
      err ? reject(err) : resolve(p),
    ),
  );
  servers.push(server);
  return `127.0.0.1:${port}`;
}

function client(endpoint: string, timeoutMs = 5_000): AdminClient {
  const c = new AdminClient(endpoint, { timeoutMs });
  clients.push(c);
  return c;
}

describe("admin service: status", () => {
  it("reports the node's role, term, indexes, membership, addresses and the leader's view of peers", async () => {
    const node = new FakeNode(1);
    const s = await client(await serve(node)).status();
    assert.equal(s.id, 1);
    assert.equal(s.clusterId, "test");
    assert.equal(s.role, "leader");
    assert.equal(s.term, 7);
    assert.equal(s.leader, 1);
    assert.equal(s.commit, 100);
    assert.equal(s.lastIndex, 101);
    assert.equal(s.snapshotIndex, 50);
    assert.deepEqual(s.membership, {
      voters: [1, 2, 3],
      learners: [4],
      votersOutgoing: [],
      learnersNext: [],
    });
    assert.deepEqual(s.members, [
      { id: 1, address: "h1:1" },
      { id: 2, address: "h2:2" },
      { id: 3, address: "h3:3" },
      { id: 4, address: "h4:4" },
    ]);
    assert.deepEqual(
      s.progress.map((p) => [p.id, p.match, p.next, p.state, p.learner]),
      [
        [1, 100, 101, "replicate", false],
        [2, 100, 101, "replicate", false],
        [3, 99, 100, "replicate", false],
        [4, 100, 101, "replicate", true],
      ],
    );
  });

  it("a follower reports no progress, and its leader", async () => {
    const node = new FakeNode(2);
    node.role = "follower";
    const s = await client(await serve(node)).status();
    assert.equal(s.role, "follower");
    assert.equal(s.leader, 1);
    assert.deepEqual(s.progress, []);
  });
});

describe("admin service: changes go to the leader", () => {
  it("a change sent to a follower is redirected to the leader and made there, with the new node's address", async () => {
    const leader = new FakeNode(1);
    leader.book.set(1, await serve(leader));
    const follower = new FakeNode(2);
    follower.role = "follower";
    follower.book.set(1, leader.book.get(1)!);
    const c = client(await serve(follower));
    const m = await c.changeMembership({ type: "add-learner", id: 5, address: "h5:5" });
    assert.deepEqual(m.learners, [4, 5]);
    assert.deepEqual(leader.calls, ["addLearner 5 h5:5"]);
    assert.deepEqual(follower.calls, []);
    assert.equal(await c.transferLeader(2), 2);
    assert.deepEqual(leader.calls.at(-1), "transfer 2");
  });

  it("while no leader is known the client asks again, and gives up with AdminNotLeaderError at its deadline", async () => {
    const node = new FakeNode(2);
    node.role = "follower";
    node.lead = 0;
    const err = await client(await serve(node), 400)
      .changeMembership({ type: "promote", id: 4 })
      .catch((e: unknown) => e);
    assert.ok(err instanceof AdminNotLeaderError, String(err));
    assert.equal(err.leader, 0);
  });

  it("promote, add-voter (with the address) and remove are made; a transfer to the leader is a no-op", async () => {
    const node = new FakeNode(1);
    const c = client(await serve(node));
    assert.deepEqual((await c.changeMembership({ type: "promote", id: 4 })).voters, [1, 2, 3, 4]);
    await c.changeMembership({ type: "add-voter", id: 6, address: "h6:6" });
    await c.changeMembership({ type: "remove", id: 3 });
    assert.equal(await c.transferLeader(1), 1);
    assert.deepEqual(node.calls, ["addVoter 4", "addVoter 6 h6:6", "remove 3"]);
  });
});

describe("admin service: typed refusals", () => {
  async function refusal(
    node: FakeNode | null,
    call: (c: AdminClient) => Promise<unknown>,
    timeoutMs = 5_000,
  ) {
    return call(client(await serve(node), timeoutMs)).then(
      () => assert.fail("the call succeeded"),
      (e: unknown) => e,
    );
  }

  it("unknown nodes: remove or promote a non-member, promote a voter, transfer to a non-voter", async () => {
    const node = new FakeNode(1);
    const removeErr = await refusal(node, (c) => c.changeMembership({ type: "remove", id: 9 }));
    assert.ok(removeErr instanceof UnknownNodeError && removeErr.nodeId === 9, String(removeErr));
    assert.ok(
      (await refusal(node, (c) => c.changeMembership({ type: "promote", id: 9 }))) instanceof
        UnknownNodeError,
    );
    const promoteVoter = await refusal(node, (c) => c.changeMembership({ type: "promote", id: 2 }));
    assert.ok(promoteVoter instanceof ChangeRefusedError && promoteVoter.reason === "already-a-voter");
    assert.ok((await refusal(node, (c) => c.transferLeader(9))) instanceof UnknownNodeError);
    const toLearner = await refusal(node, (c) => c.transferLeader(4));
    assert.ok(toLearner instanceof ChangeRefusedError && toLearner.reason === "learner-cannot-lead");
    assert.deepEqual(node.calls, [], "nothing was proposed");
  });

  it("refused changes: a member added again, an address in use, a learner far behind, raft's own refusal", async () => {
    const node = new FakeNode(1);
    const reasons: string[] = [];
    const expectRefused = async (call: (c: AdminClient) => Promise<unknown>) => {
      const e = await refusal(node, call);
      assert.ok(e instanceof ChangeRefusedError, String(e));
      reasons.push(e.reason);
    };
    await expectRefused((c) => c.changeMembership({ type: "add-voter", id: 2, address: "new:1" }));
    await expectRefused((c) => c.changeMembership({ type: "add-learner", id: 4, address: "new:1" }));
    await expectRefused((c) => c.changeMembership({ type: "add-learner", id: 6, address: "h3:3" }));
    node.peerProgress.set(4, progress(10, true));
    node.commit = 5_000;
    await expectRefused((c) => c.changeMembership({ type: "promote", id: 4 }));
    node.outcome = new ProposalRefusedError(
      "conf-change-pending",
      "the change at index 7 is not yet applied",
    );
    await expectRefused((c) => c.changeMembership({ type: "remove", id: 3 }));
    // Node 7 was a member once and was removed (its process may still run): its id is not given again,
    // nor one below it.
    node.highest = 7;
    await expectRefused((c) => c.changeMembership({ type: "add-learner", id: 7, address: "new:7" }));
    await expectRefused((c) => c.changeMembership({ type: "add-voter", id: 5, address: "new:5" }));
    assert.deepEqual(reasons, [
      "already-a-voter",
      "already-a-learner",
      "address-in-use",
      "learner-behind",
      "conf-change-pending",
      "id-already-used",
      "id-already-used",
    ]);
  });

  it("a change not applied in time is a timeout; leadership lost meanwhile is an unknown outcome", async () => {
    const node = new FakeNode(1);
    node.outcome = "never";
    const late = await refusal(node, (c) => c.changeMembership({ type: "remove", id: 3 }), 1_000);
    assert.ok(late instanceof AdminTimeoutError, String(late));
    node.outcome = new LeadershipLostError("node 1 is now follower");
    assert.ok(
      (await refusal(node, (c) => c.changeMembership({ type: "remove", id: 3 }))) instanceof
        OutcomeUnknownError,
    );
  });

  it("invalid requests: an add without an address, a bad address, node id 0", async () => {
    const node = new FakeNode(1);
    const noAddress = await refusal(node, (c) =>
      c.changeMembership({ type: "add-learner", id: 6, address: "" }),
    );
    assert.ok(
      noAddress instanceof InvalidAdminRequestError && noAddress.field === "address",
      String(noAddress),
    );
    const badAddress = await refusal(node, (c) =>
      c.changeMembership({ type: "add-learner", id: 6, address: "nohost" }),
    );
    assert.ok(badAddress instanceof InvalidAdminRequestError);
    const zero = await refusal(node, (c) => c.changeMembership({ type: "remove", id: 0 }));
    assert.ok(zero instanceof InvalidAdminRequestError && zero.field === "node_id");
  });

  it("a node still starting is unavailable; a port nobody serves is unreachable", async () => {
    assert.ok((await refusal(null, (c) => c.status())) instanceof NodeUnavailableError);
    const probe = new grpc.Server();
    const port = await new Promise<number>((resolve, reject) =>
      probe.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (err, p) =>
        err ? reject(err) : resolve(p),
      ),
    );
    probe.forceShutdown();
    const c = client(`127.0.0.1:${port}`, 2_000);
    const err = await c.status().catch((e: unknown) => e);
    assert.ok(err instanceof NodeUnreachableError, String(err));
  });
});
