/** The Redis front door's backend on a raft engine and the key-value state machine. */
import type { Engine } from "../../engine/engine.js";
import {
  EngineOverloadedError,
  LeadershipLostError,
  NotLeaderError,
  ReadIndexTimeoutError,
} from "../../engine/errors.js";
import { type KvApplyResult, type KvStateMachine, writeEntry } from "../../kv/machine.js";
import { error, type Reply } from "../../kv/reply.js";
import type { KvBackend } from "./backend.js";

export class EngineBackend implements KvBackend {
  constructor(
    private readonly engine: Engine<KvApplyResult>,
    private readonly machine: KvStateMachine,
    /** The node's clock, in ms since the epoch (the leader's reading goes into each write). */
    private readonly now: () => number = Date.now,
  ) {}

  async write(commands: readonly (readonly Buffer[])[]): Promise<readonly Reply[]> {
    try {
      const { result } = await this.engine.propose(writeEntry(this.now(), commands));
      return result;
    } catch (err) {
      const reply = errorReply(err);
      return commands.map(() => reply);
    }
  }

  async read(commands: readonly (readonly Buffer[])[]): Promise<readonly Reply[]> {
    try {
      await this.engine.linearizableRead();
    } catch (err) {
      const reply = errorReply(err);
      return commands.map(() => reply);
    }
    const now = this.now();
    return commands.map((args) => this.machine.read(args, now));
  }

  keyCount(): number {
    return this.machine.store.keyCount();
  }

  raftInfo(): readonly string[] {
    const s = this.engine.status();
    const lines = [
      `raft_node_id:${s.id}`,
      `raft_role:${s.softState.role}`,
      `raft_term:${s.hardState.term}`,
      `raft_leader_id:${s.softState.lead}`,
      `raft_commit_index:${s.hardState.commit}`,
      `raft_applied_index:${s.applied}`,
      `raft_first_index:${s.firstIndex}`,
      `raft_last_index:${s.lastIndex}`,
      `raft_snapshot_index:${s.snapshotIndex}`,
    ];
    for (const [id, p] of s.progress ?? [])
      lines.push(
        `raft_peer_${id}:state=${p.state},match=${p.match},next=${p.next},active=${p.recentActive ? 1 : 0}`,
      );
    return lines;
  }
}

/** An engine error as a Redis error reply: a code clients can act on, and what to do. */
function errorReply(err: unknown): Reply {
  if (err instanceof NotLeaderError) return error(`NOTLEADER ${err.message}`);
  if (err instanceof LeadershipLostError) return error(`TRYAGAIN ${err.message}`);
  if (err instanceof EngineOverloadedError || err instanceof ReadIndexTimeoutError)
    return error(`TRYAGAIN ${err.message}`);
  return error(`ERR ${err instanceof Error ? err.message : String(err)}`);
}
