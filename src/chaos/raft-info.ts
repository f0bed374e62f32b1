/** A node's raft state as its `INFO raft` section reports it. */
import type { RespReply } from "../api/redis/resp/reply-parser.js";
import type { NodeId } from "../raft/types.js";

export interface RaftInfo {
  readonly id: NodeId;
  readonly role: string;
  readonly term: number;
  /** 0 when the node knows no leader. */
  readonly leader: NodeId;
  readonly commit: number;
  readonly applied: number;
}

/** Parses an INFO reply; null if it is not one (an error, or fields missing). */
export function parseRaftInfo(reply: RespReply): RaftInfo | null {
  if (reply.type !== "bulk" || reply.value === null) return null;
  const fields = new Map<string, string>();
  for (const line of reply.value.toString("utf8").split("\r\n")) {
    const colon = line.indexOf(":");
    if (colon > 0) fields.set(line.slice(0, colon), line.slice(colon + 1));
  }
  const num = (name: string): number | null => {
    const text = fields.get(name);
    if (text === undefined || !/^\d+$/.test(text)) return null;
    return Number(text);
  };
  const id = num("raft_node_id");
  const role = fields.get("raft_role");
  const term = num("raft_term");
  const leader = num("raft_leader_id");
  const commit = num("raft_commit_index");
  const applied = num("raft_applied_index");
  if (
    id === null ||
    role === undefined ||
    term === null ||
    leader === null ||
    commit === null ||
    applied === null
  )
    return null;
  return { id, role, term, leader, commit, applied };
}
