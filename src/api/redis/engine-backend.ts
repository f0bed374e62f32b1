/** The Redis front door's backend on a raft engine and the key-value state machine. */
import { randomInt } from "node:crypto";
import type { Engine } from "../../engine/engine.js";
import {
  EngineOverloadedError,
  LeadershipLostError,
  NotLeaderError,
  ReadIndexTimeoutError,
} from "../../engine/errors.js";
import { type FillWatcher, type KvApplyResult, type KvStateMachine, writeEntry } from "../../kv/machine.js";
import type { RecordType } from "../../kv/record.js";
import { error, type Reply } from "../../kv/reply.js";
import type { WatchedKey } from "../../kv/watch.js";
import type { KvBackend } from "./backend.js";

export interface EngineBackendOptions {
  /** The node's clock, in ms since the epoch (the proposer's reading goes into each write). */
  now?: () => number;
  /** How long a follower waits to see a write it forwarded applied before it gives up on it. */
  forwardTimeoutMs?: number;
}

/**
 * Writes on the leader are proposed and tracked by the engine. A follower forwards them through raft
 * to the leader, with its own id and a sequence number in the entry, and answers when it applies that
 * entry itself (every replica computes the same replies). A forwarded write that is not seen applied in
 * time has an unknown outcome: the client is told to check and retry.
 */
export class EngineBackend implements KvBackend {
  private readonly now: () => number;
  private readonly forwardTimeoutMs: number;
  /**
   * Starts at a random point: a write forwarded before a restart may be applied after it, and must not
   * wake the waiter of a new write with the same number.
   */
  private seq = randomInt(0, 2 ** 47);
  /** Forwarded writes awaiting their entry's apply: told its result, or null when given up on. */
  private readonly forwarded = new Map<number, (outcome: { result: KvApplyResult } | null) => void>();

  constructor(
    private readonly engine: Engine<KvApplyResult>,
    private readonly machine: KvStateMachine,
    options: EngineBackendOptions = {},
  ) {
    this.now = options.now ?? Date.now;
    this.forwardTimeoutMs = options.forwardTimeoutMs ?? 5_000;
    const self = engine.id;
    machine.onOriginApplied((origin, result) => {
      if (origin.node !== self) return;
      const waiter = this.forwarded.get(origin.seq);
      if (waiter) {
        this.forwarded.delete(origin.seq);
        waiter({ result });
      }
    });
  }

  async write(commands: readonly (readonly Buffer[])[]): Promise<readonly Reply[]> {
    try {
      // Without watched keys an entry always runs.
      return (await this.submit(commands, [])) ?? commands.map(() => error("ERR the write did not run"));
    } catch (err) {
      const reply = errorReply(err);
      return commands.map(() => reply);
    }
  }

  onFilled(watcher: FillWatcher): void {
    this.machine.onFilled(watcher);
  }

  elementsAt(key: Buffer, type: RecordType): number {
    return this.machine.elementsAt(key, type, this.now());
  }

  async execWatched(
    commands: readonly (readonly Buffer[])[],
    watches: readonly WatchedKey[],
    writes: boolean,
  ): Promise<readonly Reply[] | null | Reply> {
    try {
      if (writes) return await this.submit(commands, watches);
      await this.engine.linearizableRead();
      return this.machine.readWatched(watches, commands, this.now());
    } catch (err) {
      return errorReply(err);
    }
  }

  /** Proposes the entry on the leader, or forwards it from a follower; the apply result. */
  private async submit(
    commands: readonly (readonly Buffer[])[],
    watches: readonly WatchedKey[],
  ): Promise<KvApplyResult> {
    if (this.engine.isLeader) {
      const { result } = await this.engine.propose(writeEntry(this.now(), commands, null, watches));
      return result;
    }
    return this.forward(commands, watches);
  }

  private async forward(
    commands: readonly (readonly Buffer[])[],
    watches: readonly WatchedKey[],
  ): Promise<KvApplyResult> {
    const seq = ++this.seq;
    const origin = { node: this.engine.id, seq };
    const applied = new Promise<{ result: KvApplyResult } | null>((resolve) => {
      const timer = setTimeout(() => {
        this.forwarded.delete(seq);
        resolve(null);
      }, this.forwardTimeoutMs);
      timer.unref();
      this.forwarded.set(seq, (outcome) => {
        clearTimeout(timer);
        resolve(outcome);
      });
    });
    try {
      await this.engine.forward(writeEntry(this.now(), commands, origin, watches));
    } catch (err) {
      const waiter = this.forwarded.get(seq);
      this.forwarded.delete(seq);
      waiter?.(null);
      throw err;
    }
    const outcome = await applied;
    if (outcome === null || (outcome.result !== null && outcome.result.length !== commands.length))
      throw new ForwardedWriteUnseenError(this.forwardTimeoutMs);
    return outcome.result;
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

  async watch(keys: readonly Buffer[]): Promise<readonly WatchedKey[] | Reply> {
    try {
      await this.engine.linearizableRead();
    } catch (err) {
      return errorReply(err);
    }
    return this.machine.watch(keys, this.now());
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

/** A forwarded write was not seen applied in time: its outcome is unknown. */
class ForwardedWriteUnseenError extends Error {
  constructor(timeoutMs: number) {
    super(
      `the write was forwarded to the leader and not seen applied within ${timeoutMs} ms; it may or may not have taken effect`,
    );
    this.name = "ForwardedWriteUnseenError";
  }
}

/** An engine error as a Redis error reply: a code clients can act on, and what to do. */
function errorReply(err: unknown): Reply {
  if (err instanceof NotLeaderError) return error(`NOTLEADER ${err.message}`);
  if (err instanceof ForwardedWriteUnseenError) return error(`TRYAGAIN ${err.message}`);
  if (err instanceof LeadershipLostError) return error(`TRYAGAIN ${err.message}`);
  if (err instanceof EngineOverloadedError || err instanceof ReadIndexTimeoutError)
    return error(`TRYAGAIN ${err.message}`);
  return error(`ERR ${err instanceof Error ? err.message : String(err)}`);
}
