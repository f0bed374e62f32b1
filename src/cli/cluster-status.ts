/**
 * `raftkv admin status`: every member's own status, gathered from the endpoint's list of members and
 * their addresses, with the leader's view of replication; as JSON or as tables for people.
 */
import type { AdminClient } from "../api/admin/client.js";
import type { MembershipView, NodeStatusView, PeerProgressView } from "../api/admin/node-status.js";
import type { NodeId } from "../raft/types.js";

export type NodeReport =
  | { id: NodeId; address: string; reachable: true; status: NodeStatusView }
  | { id: NodeId; address: string; reachable: false; error: string };

export interface ClusterStatus {
  clusterId: string;
  /** 0: no leader known to any node that answered. */
  leader: NodeId;
  term: number;
  /** The leader's membership if it answered, else the endpoint's. */
  membership: MembershipView;
  nodes: NodeReport[];
  /** The leader's view of each member's replication (empty if it did not answer). */
  progress: PeerProgressView[];
}

/** Asks the endpoint, then every member it (or the leader) names; a node that does not answer is listed so. */
export async function gatherClusterStatus(client: AdminClient, timeoutMs: number): Promise<ClusterStatus> {
  const first = await client.status(client.endpoint, timeoutMs);
  const reports = new Map<NodeId, NodeReport>([
    [first.id, { id: first.id, address: client.endpoint, reachable: true, status: first }],
  ]);
  const ask = async (members: NodeStatusView["members"]) => {
    const missing = members.filter((m) => !reports.has(m.id));
    const answers = await Promise.all(
      missing.map(async (m): Promise<NodeReport> => {
        if (m.address === "") return { ...m, reachable: false, error: "no address known" };
        try {
          return { ...m, reachable: true, status: await client.status(m.address, timeoutMs) };
        } catch (err) {
          return { ...m, reachable: false, error: err instanceof Error ? err.message : String(err) };
        }
      }),
    );
    for (const r of answers) reports.set(r.id, r);
  };
  await ask(first.members);
  const leaderOf = () =>
    [...reports.values()].find((r) => r.reachable && r.status.role === "leader") as
      | Extract<NodeReport, { reachable: true }>
      | undefined;
  // A lagging endpoint may not know every member yet: the leader does.
  const leader = leaderOf();
  if (leader) await ask(leader.status.members);
  const source = leader?.status ?? first;
  return {
    clusterId: first.clusterId,
    leader: leader?.id ?? first.leader,
    term: source.term,
    membership: source.membership,
    nodes: [...reports.values()].sort((a, b) => a.id - b.id),
    progress: leader?.status.progress ?? [],
  };
}

function table(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: readonly string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!)))
      .join("  ")
      .trimEnd();
  return [line(header), ...rows.map(line)].join("\n");
}

function list(ids: readonly NodeId[]): string {
  return ids.length === 0 ? "none" : ids.join(", ");
}

/** The human-readable report. */
export function renderClusterStatus(s: ClusterStatus): string {
  const m = s.membership;
  const lines = [
    `cluster ${s.clusterId}: ${s.leader === 0 ? "no leader known" : `leader ${s.leader}`}, term ${s.term}`,
    `membership: voters ${list(m.voters)}; learners ${list(m.learners)}` +
      (m.votersOutgoing.length > 0 ? `; joint with outgoing voters ${list(m.votersOutgoing)}` : ""),
    "",
  ];
  const rows = s.nodes.map((n) =>
    n.reachable
      ? [
          String(n.id),
          n.address,
          n.status.role,
          String(n.status.term),
          n.status.leader === 0 ? "-" : String(n.status.leader),
          String(n.status.commit),
          String(n.status.applied),
          String(n.status.lastIndex),
          String(n.status.snapshotIndex),
        ]
      : [String(n.id), n.address || "?", `unreachable: ${n.error}`],
  );
  lines.push(
    table(["ID", "ADDRESS", "ROLE", "TERM", "LEADER", "COMMIT", "APPLIED", "LAST", "SNAPSHOT"], rows),
  );
  if (s.progress.length > 0) {
    lines.push("", `replication, as leader ${s.leader} sees it:`);
    lines.push(
      table(
        ["PEER", "MATCH", "NEXT", "STATE", "ACTIVE", "KIND"],
        s.progress.map((p) => [
          String(p.id),
          String(p.match),
          String(p.next),
          p.state + (p.paused ? " (paused)" : ""),
          p.recentActive ? "yes" : "no",
          p.learner ? "learner" : "voter",
        ]),
      ),
    );
  }
  return lines.join("\n");
}
