/**
 * Prometheus metrics of one engine, in a registry of its own. Values are read from the engine's state
 * and counters when scraped, so the hot paths pay nothing for them. Counters sourced from running totals
 * advance by the difference since the last scrape, so they stay monotonic.
 */
import { Counter, Gauge, Registry } from "prom-client";
import type { Status } from "../raft/status.js";
import type { NodeId } from "../raft/types.js";

export interface EngineMetricsSource {
  status(): Status;
  dispatchStats(): ReadonlyMap<
    NodeId,
    { readonly sent: number; readonly failed: number; readonly dropped: number }
  >;
  reportStats(): { readonly posted: number; readonly dropped: number; readonly abandoned: number };
  walStats(): { readonly syncs: number; readonly bytesWritten: number; readonly appends: number };
}

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

export function createEngineMetrics(source: EngineMetricsSource, registry = new Registry()): Registry {
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
  gauge("raftkv_raft_snapshot_index", "Index of the snapshot the log starts after.", (s) => s.firstIndex - 1);
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
  return registry;
}
