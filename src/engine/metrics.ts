/**
 * Prometheus metrics of one engine, in a registry of its own. Values are read from the engine's state
 * and counters when scraped, so the hot paths pay nothing for them. Counters sourced from running totals
 * advance by the difference since the last scrape, so they stay monotonic. Latencies are the exception:
 * histograms observed as requests complete.
 */
import { Counter, Gauge, Histogram, Registry } from "prom-client";
import type { Status } from "../raft/status.js";
import type { NodeId } from "../raft/types.js";
import type { SnapshotStats } from "../transport/snapshot-stream.js";

export interface EngineMetricsSource {
  status(): Status;
  dispatchStats(): ReadonlyMap<
    NodeId,
    { readonly sent: number; readonly failed: number; readonly dropped: number }
  >;
  /** Messages waiting in each peer's lanes. */
  dispatchQueued(): ReadonlyMap<NodeId, { readonly priority: number; readonly normal: number }>;
  reportStats(): { readonly posted: number; readonly dropped: number; readonly abandoned: number };
  walStats(): { readonly syncs: number; readonly bytesWritten: number; readonly appends: number };
  snapshotStats(): SnapshotStats | undefined;
}

/** Where the engine records latencies, in seconds. */
export interface LatencyRecorders {
  proposal(seconds: number): void;
  read(seconds: number): void;
  fsync(seconds: number): void;
}

/** From 100 µs to 10 s: a WAL sync on a fast disk to a write stuck behind an election. */
const LATENCY_BUCKETS = [
  0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
];

const ROLES = ["follower", "pre-candidate", "candidate", "leader"] as const;
const PROGRESS_STATES = ["probe", "replicate", "snapshot"] as const;

/** A counter that follows a running total kept elsewhere. */
function totalCounter(
  registry: Registry,
  name: string,
  help: string,
  labelNames: string[],
  read: () => Iterable<[Record<string, string>, number]>,
): void {
  const seen = new Map<string, number>();
  new Counter({
    name,
    help,
    labelNames,
    registers: [registry],
    collect() {
      for (const [labels, total] of read()) {
        const key = JSON.stringify(labels);
        const delta = total - (seen.get(key) ?? 0);
        if (delta > 0) this.inc(labels, delta);
        seen.set(key, total);
      }
    },
  });
}

export function createEngineMetrics(
  source: EngineMetricsSource,
  registry = new Registry(),
): { registry: Registry; latency: LatencyRecorders; names: readonly string[] } {
  const before = new Set(registry.getMetricsAsArray().map((m) => m.name));
  const gauge = (name: string, help: string, value: (s: Status) => number) =>
    new Gauge({
      name,
      help,
      registers: [registry],
      collect() {
        this.set(value(source.status()));
      },
    });
  gauge("raftkv_raft_term", "Current raft term.", (s) => s.hardState.term);
  gauge("raftkv_raft_leader", "Id of the leader this node knows of (0: none).", (s) => s.softState.lead);
  gauge("raftkv_raft_commit_index", "Highest log index known committed.", (s) => s.hardState.commit);
  gauge("raftkv_raft_applied_index", "Highest log index applied.", (s) => s.applied);
  gauge("raftkv_raft_last_index", "Highest log index held.", (s) => s.lastIndex);
  gauge("raftkv_raft_snapshot_index", "Index of the newest snapshot.", (s) => s.snapshotIndex);
  gauge(
    "raftkv_raft_first_index",
    "Lowest log index held (entries before it need a snapshot).",
    (s) => s.firstIndex,
  );
  new Gauge({
    name: "raftkv_raft_role",
    help: "1 for this node's current role.",
    labelNames: ["role"],
    registers: [registry],
    collect() {
      const role = source.status().softState.role;
      for (const r of ROLES) this.set({ role: r }, r === role ? 1 : 0);
    },
  });
  const peerGauge = (name: string, help: string, value: (p: { match: number; next: number }) => number) =>
    new Gauge({
      name,
      help,
      labelNames: ["peer"],
      registers: [registry],
      collect() {
        this.reset();
        for (const [peer, p] of source.status().progress ?? []) this.set({ peer: String(peer) }, value(p));
      },
    });
  peerGauge(
    "raftkv_raft_peer_match_index",
    "Highest index the leader knows the peer holds (leader only).",
    (p) => p.match,
  );
  peerGauge(
    "raftkv_raft_peer_next_index",
    "Next index the leader sends the peer (leader only).",
    (p) => p.next,
  );
  new Gauge({
    name: "raftkv_raft_peer_progress_state",
    help: "1 for the state the leader's progress towards the peer is in (leader only).",
    labelNames: ["peer", "state"],
    registers: [registry],
    collect() {
      this.reset();
      for (const [peer, p] of source.status().progress ?? []) {
        for (const st of PROGRESS_STATES) this.set({ peer: String(peer), state: st }, p.state === st ? 1 : 0);
      }
    },
  });
  new Gauge({
    name: "raftkv_dispatch_queued_messages",
    help: "Messages waiting in the peer's dispatch lane (bounded by the lane's capacity).",
    labelNames: ["peer", "lane"],
    registers: [registry],
    collect() {
      this.reset();
      for (const [peer, q] of source.dispatchQueued()) {
        this.set({ peer: String(peer), lane: "priority" }, q.priority);
        this.set({ peer: String(peer), lane: "normal" }, q.normal);
      }
    },
  });
  const perPeer = (field: "sent" | "failed" | "dropped") => () =>
    [...source.dispatchStats()].map(
      ([peer, s]) => [{ peer: String(peer) }, s[field]] as [Record<string, string>, number],
    );
  totalCounter(
    registry,
    "raftkv_dispatch_sent_total",
    "Messages sent to the peer.",
    ["peer"],
    perPeer("sent"),
  );
  totalCounter(
    registry,
    "raftkv_dispatch_failed_total",
    "Sends to the peer that failed (each reported to raft).",
    ["peer"],
    perPeer("failed"),
  );
  totalCounter(
    registry,
    "raftkv_dispatch_dropped_total",
    "Messages to the peer dropped because their lane was full.",
    ["peer"],
    perPeer("dropped"),
  );
  totalCounter(
    registry,
    "raftkv_dispatch_reports_posted_total",
    "Failure reports queued for raft.",
    [],
    () => [[{}, source.reportStats().posted]],
  );
  totalCounter(
    registry,
    "raftkv_dispatch_reports_dropped_total",
    "Failure reports dropped: the report queue was full.",
    [],
    () => [[{}, source.reportStats().dropped]],
  );
  totalCounter(registry, "raftkv_wal_fsyncs_total", "fdatasync calls made by the WAL.", [], () => [
    [{}, source.walStats().syncs],
  ]);
  totalCounter(registry, "raftkv_wal_bytes_written_total", "Bytes written to WAL segments.", [], () => [
    [{}, source.walStats().bytesWritten],
  ]);
  totalCounter(registry, "raftkv_wal_appends_total", "Batches appended to the WAL.", [], () => [
    [{}, source.walStats().appends],
  ]);
  const snapshotTotal = (name: string, help: string, read: (s: SnapshotStats) => number) =>
    totalCounter(registry, name, help, [], () => {
      const s = source.snapshotStats();
      return s ? [[{}, read(s)]] : [];
    });
  snapshotTotal("raftkv_snapshot_sent_total", "Snapshots sent and confirmed by the peer.", (s) => s.sent);
  snapshotTotal("raftkv_snapshot_sent_bytes_total", "Snapshot payload bytes sent.", (s) => s.bytesSent);
  snapshotTotal(
    "raftkv_snapshot_received_total",
    "Snapshots received whole, verified and durable.",
    (s) => s.received,
  );
  snapshotTotal(
    "raftkv_snapshot_received_bytes_total",
    "Snapshot payload bytes received.",
    (s) => s.bytesReceived,
  );
  const byKind = (map: (s: SnapshotStats) => ReadonlyMap<string, number>) => () => {
    const s = source.snapshotStats();
    return s ? [...map(s)].map(([kind, n]) => [{ kind }, n] as [Record<string, string>, number]) : [];
  };
  totalCounter(
    registry,
    "raftkv_snapshot_send_failures_total",
    "Snapshot sends that failed, by kind (truncated, corrupt, too-large, cluster-mismatch, io, local-corrupt, missing, other).",
    ["kind"],
    byKind((s) => s.sendFailures),
  );
  totalCounter(
    registry,
    "raftkv_snapshot_receive_failures_total",
    "Snapshot receptions that failed, by kind (truncated, corrupt, too-large, cluster-mismatch, io, other).",
    ["kind"],
    byKind((s) => s.receiveFailures),
  );

  const histogram = (name: string, help: string) => {
    const h = new Histogram({ name, help, buckets: LATENCY_BUCKETS, registers: [registry] });
    return (seconds: number) => h.observe(seconds);
  };
  const latency: LatencyRecorders = {
    proposal: histogram(
      "raftkv_proposal_duration_seconds",
      "From propose() to the entry applied, for proposals that succeeded.",
    ),
    read: histogram(
      "raftkv_read_index_duration_seconds",
      "From linearizableRead() to the read index applied, for reads that succeeded.",
    ),
    fsync: histogram("raftkv_wal_fsync_duration_seconds", "One WAL fdatasync."),
  };
  const names = registry
    .getMetricsAsArray()
    .map((m) => m.name)
    .filter((n) => !before.has(n));
  return { registry, latency, names };
}
