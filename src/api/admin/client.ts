/**
 * The client side of the admin service (what `raftkv admin` uses). A change sent to a node that does not
 * lead comes back as AdminNotLeaderError naming the leader's address; the client follows it there, and
 * while no leader is known it asks again shortly, until its deadline.
 */

import { create } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import type { NodeId } from "../../raft/types.js";
import * as pb from "../../transport/gen/raftkv/admin/v1/admin_pb.js";
import { adminServiceDefinition } from "./definition.js";
import { AdminNotLeaderError } from "./errors.js";
import { type MembershipView, membershipView, type NodeStatusView, nodeStatusView } from "./node-status.js";
import { adminErrorFromStatus } from "./status-codec.js";

export type MembershipChange =
  | { readonly type: "add-voter" | "add-learner"; readonly id: NodeId; readonly address: string }
  | { readonly type: "promote" | "remove"; readonly id: NodeId };

export interface AdminClientOptions {
  /** How long a command may take in all, redirects and the wait for a change to apply included. */
  timeoutMs?: number;
  /** Redirects to the leader followed before giving up (leadership can move while we follow). */
  maxRedirects?: number;
}

export const ADMIN_CLIENT_DEFAULTS = { timeoutMs: 10_000, maxRedirects: 5 };

/** Kept back from the time a change may wait on the leader, for the answer's way back. */
const ANSWER_MARGIN_MS = 500;
/** How soon to ask again while no leader is known (an election is under way). */
const NO_LEADER_RETRY_MS = 100;

const CHANGE_TYPES: Record<MembershipChange["type"], pb.ChangeType> = {
  "add-voter": pb.ChangeType.ADD_VOTER,
  "add-learner": pb.ChangeType.ADD_LEARNER,
  promote: pb.ChangeType.PROMOTE,
  remove: pb.ChangeType.REMOVE,
};

interface Method<Req, Res> {
  readonly path: string;
  readonly requestSerialize: (value: Req) => Buffer;
  readonly responseDeserialize: (bytes: Buffer) => Res;
}

export class AdminClient {
  private readonly channels = new Map<string, grpc.Client>();
  private readonly timeoutMs: number;
  private readonly maxRedirects: number;

  constructor(
    readonly endpoint: string,
    options: AdminClientOptions = {},
  ) {
    this.timeoutMs = options.timeoutMs ?? ADMIN_CLIENT_DEFAULTS.timeoutMs;
    this.maxRedirects = options.maxRedirects ?? ADMIN_CLIENT_DEFAULTS.maxRedirects;
  }

  /** One node's own status (no redirect: any node answers for itself). */
  async status(
    endpoint: string = this.endpoint,
    timeoutMs: number = this.timeoutMs,
  ): Promise<NodeStatusView> {
    const res = await this.call(
      endpoint,
      adminServiceDefinition.status,
      create(pb.StatusRequestSchema, {}),
      timeoutMs,
    );
    return nodeStatusView(res);
  }

  /** Makes the change on the leader; resolves with the membership once it is applied there. */
  async changeMembership(change: MembershipChange): Promise<MembershipView> {
    const res = await this.onLeader((endpoint, remainingMs) =>
      this.call(
        endpoint,
        adminServiceDefinition.changeMembership,
        create(pb.ChangeMembershipRequestSchema, {
          type: CHANGE_TYPES[change.type],
          nodeId: BigInt(change.id),
          address: "address" in change ? change.address : "",
          timeoutMs: BigInt(Math.max(1, remainingMs - ANSWER_MARGIN_MS)),
        }),
        remainingMs,
      ),
    );
    return membershipView(res.membership);
  }

  /** Hands leadership to `id`; resolves once the old leader sees it lead. */
  async transferLeader(id: NodeId): Promise<NodeId> {
    const res = await this.onLeader((endpoint, remainingMs) =>
      this.call(
        endpoint,
        adminServiceDefinition.transferLeader,
        create(pb.TransferLeaderRequestSchema, {
          nodeId: BigInt(id),
          timeoutMs: BigInt(Math.max(1, remainingMs - ANSWER_MARGIN_MS)),
        }),
        remainingMs,
      ),
    );
    return Number(res.leader);
  }

  close(): void {
    for (const c of this.channels.values()) c.close();
    this.channels.clear();
  }

  /** Runs `op` on the leader: from the endpoint, following redirects, until the deadline. */
  private async onLeader<T>(op: (endpoint: string, remainingMs: number) => Promise<T>): Promise<T> {
    const deadline = Date.now() + this.timeoutMs;
    let endpoint = this.endpoint;
    let redirects = 0;
    for (;;) {
      try {
        return await op(endpoint, Math.max(1, deadline - Date.now()));
      } catch (err) {
        if (!(err instanceof AdminNotLeaderError) || Date.now() + NO_LEADER_RETRY_MS >= deadline) throw err;
        if (err.leader === 0 || err.leaderAddress === "") {
          await new Promise((resolve) => setTimeout(resolve, NO_LEADER_RETRY_MS));
          continue;
        }
        if (++redirects > this.maxRedirects) throw err;
        endpoint = err.leaderAddress;
      }
    }
  }

  private call<Req, Res>(
    endpoint: string,
    method: Method<Req, Res>,
    request: Req,
    timeoutMs: number,
  ): Promise<Res> {
    const client = this.channel(endpoint);
    return new Promise<Res>((resolve, reject) => {
      client.makeUnaryRequest(
        method.path,
        method.requestSerialize,
        method.responseDeserialize,
        request,
        new grpc.Metadata(),
        { deadline: Date.now() + timeoutMs },
        (err: grpc.ServiceError | null, res?: Res) => {
          if (err !== null) reject(adminErrorFromStatus(endpoint, err));
          else resolve(res!);
        },
      );
    });
  }

  private channel(endpoint: string): grpc.Client {
    let c = this.channels.get(endpoint);
    if (c === undefined) {
      c = new grpc.Client(endpoint, grpc.credentials.createInsecure(), {
        "grpc.enable_retries": 0,
        "grpc.use_local_subchannel_pool": 1,
        // A node that is down is reported at once, not after reconnect backoff.
        "grpc.initial_reconnect_backoff_ms": 100,
      });
      this.channels.set(endpoint, c);
    }
    return c;
  }
}
