/**
 * The admin service of one node, served on its raft gRPC port: its status, and membership changes and
 * leadership transfers, which only the leader makes. Any other node answers those with
 * AdminNotLeaderError naming the leader's address, and the client goes there (a redirect, not a
 * forward: the change then waits on the node that proposes it, and a follower never holds a call open
 * for a leader it may lose sight of).
 *
 * Every refusal is typed (errors.ts) and carried to the client in the call's status (status-codec.ts).
 */
import { create } from "@bufbuild/protobuf";
import type * as grpc from "@grpc/grpc-js";
import {
  EngineClosedError,
  EngineFailedError,
  LeadershipLostError,
  NotLeaderError,
  ProposalRefusedError,
} from "../../engine/errors.js";
import { addressProblem, encodeAddressContext } from "../../kv/address-book.js";
import { type RaftLogger, silentLogger } from "../../raft/config.js";
import type { Status } from "../../raft/status.js";
import type { ConfState, NodeId } from "../../raft/types.js";
import * as pb from "../../transport/gen/raftkv/admin/v1/admin_pb.js";
import type { Decoded } from "../../transport/grpc-service.js";
import type { GrpcServiceBinding } from "../../transport/grpc-transport.js";
import { adminServiceDefinition } from "./definition.js";
import {
  AdminError,
  AdminNotLeaderError,
  AdminTimeoutError,
  ChangeRefusedError,
  InvalidAdminRequestError,
  NodeUnavailableError,
  OutcomeUnknownError,
  UnknownNodeError,
} from "./errors.js";
import { membershipMessage, statusResponse } from "./node-status.js";
import { adminStatusFromError } from "./status-codec.js";

/** What the admin service needs of its node: the engine's membership calls and the addresses it knows. */
export interface AdminBackend {
  readonly clusterId: string;
  status(): Status;
  /** The raft address this node knows for each member. */
  addresses(): ReadonlyMap<NodeId, string>;
  /** The highest node id ever a member of the cluster, as far as this node has applied. */
  highestNodeId(): number;
  addVoter(id: NodeId, context?: Uint8Array): Promise<ConfState>;
  addLearner(id: NodeId, context?: Uint8Array): Promise<ConfState>;
  removeServer(id: NodeId): Promise<ConfState>;
  transferLeadership(to: NodeId): Promise<void>;
}

export interface AdminServiceOptions {
  logger?: RaftLogger;
  /** How long a change is waited for when the request names no timeout. */
  defaultTimeoutMs?: number;
  /** The longest wait a request may ask for. */
  maxTimeoutMs?: number;
  /**
   * A learner is promoted only once its log is at most this many entries behind the leader's commit
   * index: a voter far behind would weaken the quorum until it caught up.
   */
  promoteMaxLagEntries?: number;
}

export const ADMIN_SERVICE_DEFAULTS = {
  defaultTimeoutMs: 10_000,
  maxTimeoutMs: 300_000,
  promoteMaxLagEntries: 1_000,
};

/** Room left before the caller's own deadline, so that our Timeout answer reaches it first. */
const DEADLINE_MARGIN_MS = 200;

type Unary<Req, Res> = (
  call: grpc.ServerUnaryCall<Decoded<Req>, Res>,
  callback: grpc.sendUnaryData<Res>,
) => void;

export class AdminService {
  private backend: AdminBackend | null = null;
  private readonly logger: RaftLogger;
  private readonly opts: typeof ADMIN_SERVICE_DEFAULTS;

  constructor(options: AdminServiceOptions = {}) {
    this.logger = options.logger ?? silentLogger;
    this.opts = {
      defaultTimeoutMs: options.defaultTimeoutMs ?? ADMIN_SERVICE_DEFAULTS.defaultTimeoutMs,
      maxTimeoutMs: options.maxTimeoutMs ?? ADMIN_SERVICE_DEFAULTS.maxTimeoutMs,
      promoteMaxLagEntries: options.promoteMaxLagEntries ?? ADMIN_SERVICE_DEFAULTS.promoteMaxLagEntries,
    };
  }

  /**
   * Serves calls with `backend` from now on. The gRPC server starts before the node is assembled;
   * until then every call is answered NodeUnavailableError.
   */
  attach(backend: AdminBackend): void {
    this.backend = backend;
  }

  /** The service and its handlers, for the node's gRPC server. */
  binding(): GrpcServiceBinding {
    const status: Unary<pb.StatusRequest, pb.StatusResponse> = (call, callback) =>
      this.answer(call, callback, async () => this.status(call.request));
    const changeMembership: Unary<pb.ChangeMembershipRequest, pb.ChangeMembershipResponse> = (
      call,
      callback,
    ) => this.answer(call, callback, () => this.changeMembership(call.request, deadlineOf(call)));
    const transferLeader: Unary<pb.TransferLeaderRequest, pb.TransferLeaderResponse> = (call, callback) =>
      this.answer(call, callback, () => this.transferLeader(call.request, deadlineOf(call)));
    return {
      definition: adminServiceDefinition,
      implementation: { status, changeMembership, transferLeader },
    };
  }

  private answer<Req, Res>(
    call: grpc.ServerUnaryCall<Decoded<Req>, Res>,
    callback: grpc.sendUnaryData<Res>,
    run: () => Promise<Res>,
  ): void {
    // Refusals thrown before the first await count as rejections too.
    void Promise.resolve()
      .then(run)
      .then(
        (res) => callback(null, res),
        (err: unknown) => {
          const e = this.typed(err);
          if (!(e instanceof AdminError))
            this.logger.warn("admin call failed", { remote: call.getPeer(), error: String(e) });
          callback(adminStatusFromError(e));
        },
      );
  }

  private status(request: Decoded<pb.StatusRequest>): pb.StatusResponse {
    parsed(request);
    const backend = this.ready();
    return statusResponse(backend.status(), backend.clusterId, backend.addresses());
  }

  private async changeMembership(
    request: Decoded<pb.ChangeMembershipRequest>,
    deadline: number,
  ): Promise<pb.ChangeMembershipResponse> {
    const r = parsed(request);
    const { backend, id, status, timeoutMs } = this.leaderCall(r, deadline);
    const cs = status.config;
    const isVoter = cs.voters.includes(id) || cs.votersOutgoing.includes(id);
    const isLearner = cs.learners.includes(id);
    let change: Promise<ConfState>;
    let what: string;
    switch (r.type) {
      case pb.ChangeType.ADD_VOTER:
      case pb.ChangeType.ADD_LEARNER: {
        const asVoter = r.type === pb.ChangeType.ADD_VOTER;
        const address = validAddress(r.address);
        if (isVoter) throw new ChangeRefusedError("already-a-voter", `node ${id} is already a voter`);
        if (isLearner)
          throw new ChangeRefusedError(
            "already-a-learner",
            `node ${id} is already a learner${asVoter ? "; promote it instead" : ""}`,
          );
        // A removed node's process may still run, at its old address, on its old disk: the same id
        // again would make two processes answer as one node. Ids go up, so none is used twice.
        const highest = backend.highestNodeId();
        if (id <= highest)
          throw new ChangeRefusedError(
            "id-already-used",
            `node ids are never reused, and new ones go above the highest so far: choose one above ${highest}`,
          );
        for (const [other, a] of backend.addresses())
          if (a === address && other !== id && (cs.voters.includes(other) || cs.learners.includes(other)))
            throw new ChangeRefusedError("address-in-use", `${address} is the address of member ${other}`);
        const context = encodeAddressContext(new Map([[id, address]]));
        change = asVoter ? backend.addVoter(id, context) : backend.addLearner(id, context);
        what = `add ${asVoter ? "voter" : "learner"} ${id} at ${address}`;
        break;
      }
      case pb.ChangeType.PROMOTE: {
        if (isVoter) throw new ChangeRefusedError("already-a-voter", `node ${id} is already a voter`);
        if (!isLearner) throw new UnknownNodeError(id, "is not a learner of this cluster");
        const match = status.progress?.get(id)?.match ?? 0;
        const lag = status.hardState.commit - match;
        if (lag > this.opts.promoteMaxLagEntries)
          throw new ChangeRefusedError(
            "learner-behind",
            `learner ${id} holds the log up to ${match}, ${lag} entries behind the commit index ` +
              `${status.hardState.commit} (at most ${this.opts.promoteMaxLagEntries}); retry once it caught up`,
          );
        change = backend.addVoter(id);
        what = `promote learner ${id}`;
        break;
      }
      case pb.ChangeType.REMOVE:
        if (!isVoter && !isLearner) throw new UnknownNodeError(id, "is not a member of this cluster");
        change = backend.removeServer(id);
        what = `remove node ${id}`;
        break;
      default:
        throw new InvalidAdminRequestError("type", `unknown change type ${r.type}`);
    }
    this.logger.info("admin: membership change proposed", { change: what });
    const after = await within(change, timeoutMs);
    this.logger.info("admin: membership change applied", {
      change: what,
      voters: after.voters,
      learners: after.learners,
    });
    return create(pb.ChangeMembershipResponseSchema, { membership: membershipMessage(after) });
  }

  private async transferLeader(
    request: Decoded<pb.TransferLeaderRequest>,
    deadline: number,
  ): Promise<pb.TransferLeaderResponse> {
    const { backend, id, status, timeoutMs } = this.leaderCall(parsed(request), deadline);
    const cs = status.config;
    if (cs.learners.includes(id))
      throw new ChangeRefusedError("learner-cannot-lead", `node ${id} is a learner; promote it first`);
    if (!cs.voters.includes(id)) throw new UnknownNodeError(id, "is not a voter of this cluster");
    if (id !== status.id) {
      this.logger.info("admin: leadership transfer", { to: id });
      await within(backend.transferLeadership(id), timeoutMs);
    }
    return create(pb.TransferLeaderResponseSchema, { leader: BigInt(id) });
  }

  /**
   * What a call that changes the cluster starts with, in this order: a started node, a valid node id,
   * this node leading (else the redirect), and the time the call may take.
   */
  private leaderCall(
    r: { readonly nodeId: bigint; readonly timeoutMs: bigint },
    deadline: number,
  ): { backend: AdminBackend; id: NodeId; status: Status; timeoutMs: number } {
    const backend = this.ready();
    const id = nodeIdOf(r.nodeId, "node_id");
    const status = this.mustLead(backend);
    return { backend, id, status, timeoutMs: this.budget(r.timeoutMs, deadline) };
  }

  private ready(): AdminBackend {
    if (this.backend === null) throw new NodeUnavailableError("the node is starting");
    return this.backend;
  }

  /** This node's status, if it leads; otherwise the redirect to the leader. */
  private mustLead(backend: AdminBackend): Status {
    const status = backend.status();
    if (status.softState.role !== "leader") {
      const lead = status.softState.lead;
      throw new AdminNotLeaderError(lead, backend.addresses().get(lead) ?? "");
    }
    return status;
  }

  /** How long to wait: what the request asks (or the default), within the maximum and the call's deadline. */
  private budget(requestedMs: bigint, deadline: number): number {
    const asked = requestedMs === 0n ? this.opts.defaultTimeoutMs : Number(requestedMs);
    let ms = Math.min(asked, this.opts.maxTimeoutMs);
    if (Number.isFinite(deadline)) ms = Math.min(ms, deadline - Date.now() - DEADLINE_MARGIN_MS);
    if (ms <= 0) throw new AdminTimeoutError(0);
    return ms;
  }

  /** The admin error an engine error stands for. */
  private typed(err: unknown): unknown {
    if (err instanceof AdminError) return err;
    if (err instanceof NotLeaderError)
      return new AdminNotLeaderError(
        err.leader,
        this.backend?.addresses().get(err.leader) ?? err.leaderAddress ?? "",
      );
    if (err instanceof ProposalRefusedError) return new ChangeRefusedError(err.reason, err.message);
    if (err instanceof LeadershipLostError) return new OutcomeUnknownError(err.message);
    if (err instanceof EngineClosedError) return new NodeUnavailableError("the node is closing");
    if (err instanceof EngineFailedError) return new NodeUnavailableError(err.message);
    return err;
  }
}

function deadlineOf(call: grpc.ServerUnaryCall<unknown, unknown>): number {
  const d = call.getDeadline();
  return d instanceof Date ? d.getTime() : d;
}

function parsed<T>(request: Decoded<T>): T {
  if (!request.ok) throw new InvalidAdminRequestError("request", request.error.message);
  return request.value;
}

function nodeIdOf(v: bigint, field: string): NodeId {
  if (v === 0n || v > BigInt(Number.MAX_SAFE_INTEGER))
    throw new InvalidAdminRequestError(field, `a node id is 1 to ${Number.MAX_SAFE_INTEGER}, got ${v}`);
  return Number(v);
}

function validAddress(address: string): string {
  if (address === "")
    throw new InvalidAdminRequestError("address", "adding a node needs its address (host:port)");
  const problem = addressProblem(address);
  if (problem !== null) throw new InvalidAdminRequestError("address", problem);
  return address;
}

/** Waits for `p` at most `ms`; past that, AdminTimeoutError (the operation itself goes on). */
function within<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new AdminTimeoutError(ms)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}
