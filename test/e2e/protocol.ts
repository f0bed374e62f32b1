/** What the parent and a node process (node-main.ts) say to each other over IPC. */

export interface NodeConfig {
  id: number;
  clusterId: string;
  dataDir: string;
  /** host:port this node's gRPC server listens on. */
  listen: string;
  /** Every member's address, this node's included, by id. */
  peers: Record<string, string>;
  initialVoters: number[];
  tickMs: number;
  electionTicks: number;
  heartbeatTicks: number;
  snapshotEveryEntries: number;
  trailingEntries: number;
  stateMachine: "kv" | "null";
  /** Raft's snapshot timeout in ticks; absent: its default (5 election timeouts); 0 disables it. */
  snapshotTimeoutTicks?: number;
  /** Test-only: dispatch reports never reach raft. */
  dropDispatchReports?: boolean;
  /** Test-only: SIGKILL this process once a snapshot restore has read this many bytes (0: never). */
  killInRestoreAfterBytes?: number;
}

export interface StatusSummary {
  id: number;
  role: string;
  term: number;
  lead: number;
  commit: number;
  applied: number;
  lastIndex: number;
  firstIndex: number;
  snapshotIndex: number;
  /** Ticks since the engine opened. */
  ticks: number;
  progress: { id: number; match: number; next: number; state: string }[];
}

export type Request =
  | { op: "status" }
  | { op: "propose"; data: string }
  /** Which of these key=value pairs the node's state does not hold. */
  | { op: "check"; entries: [string, string][] }
  | { op: "digest" }
  /** The engine's Prometheus exposition. */
  | { op: "metrics" }
  /**
   * Closed-loop proposers in the node: `count` proposals (keys prefix0…), or for `durationMs` if count
   * is 0, `concurrency` at a time.
   */
  | {
      op: "load";
      concurrency: number;
      count: number;
      durationMs: number;
      valueBytes: number;
      keyPrefix: string;
    }
  | { op: "close" };

export type Reply =
  | { op: "status"; status: StatusSummary }
  | { op: "propose"; index: number }
  | { op: "check"; missing: string[]; size: number }
  | { op: "digest"; size: number; digest: string; applied: number }
  | { op: "metrics"; text: string }
  | { op: "load"; ops: number; errors: number; seconds: number; p50Ms: number; p99Ms: number }
  | { op: "close" };
