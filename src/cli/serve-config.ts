/**
 * The options of `raftkv serve`, from its flags and from a JSON config file (`--config FILE`), whose keys
 * are the flags' names (`"data-dir"`, `"tick-ms"`, …). A flag given on the command line overrides the
 * file. Unknown keys, values of the wrong type and values out of range are errors that name the key.
 */
import { readFileSync } from "node:fs";
import { addressProblem } from "../kv/address-book.js";
import type { NodeConfig } from "../server/node.js";
import { parseArgsOrUsage, UsageError } from "./usage-error.js";

type Kind = "positiveInt" | "nonNegativeInt" | "text" | "boolean" | "listen" | "peers";

interface OptionSpec {
  readonly kind: Kind;
  readonly help: string;
}

/** Every option, with its flag's (and config key's) name. Units are in the names. */
export const SERVE_OPTIONS = {
  id: { kind: "positiveInt", help: "this node's id (required)" },
  "data-dir": { kind: "text", help: "where the node keeps its data (required)" },
  peers: {
    kind: "peers",
    help: "raft addresses: every founding node's, or (joining) the members' and its own (required)",
  },
  join: {
    kind: "boolean",
    help: "join an existing cluster: start empty and wait to be added (`raftkv admin add-learner`)",
  },
  redis: { kind: "listen", help: "host:port for Redis clients (required)" },
  listen: {
    kind: "listen",
    help: "host:port for raft and `raftkv admin` (default: this node's entry in peers)",
  },
  metrics: { kind: "listen", help: "host:port serving Prometheus metrics at GET /metrics (default: none)" },
  "cluster-id": { kind: "text", help: "refuse traffic from another cluster (default raftkv)" },
  requirepass: { kind: "text", help: "the password clients must AUTH with" },
  "tick-ms": { kind: "positiveInt", help: "raft's tick (default 100)" },
  "lease-reads": {
    kind: "boolean",
    help: "serve reads on the leader's lease, without a quorum round (linearizable while clocks drift less than 10 %)",
  },
  "election-ticks": { kind: "positiveInt", help: "ticks without a leader before an election (default 10)" },
  "heartbeat-ticks": { kind: "positiveInt", help: "ticks between the leader's heartbeats (default 1)" },
  "snapshot-every-entries": {
    kind: "nonNegativeInt",
    help: "entries applied between local snapshots; 0 never (default 100000)",
  },
  "trailing-entries": { kind: "nonNegativeInt", help: "entries kept before a snapshot (default 5000)" },
  "keep-snapshots": { kind: "positiveInt", help: "snapshot files kept (default 2)" },
  "max-pending-proposals": { kind: "positiveInt", help: "writes waiting to be applied (default 10000)" },
  "max-proposal-bytes": { kind: "positiveInt", help: "the largest write entry (default 16 MiB)" },
  "max-pending-reads": { kind: "positiveInt", help: "reads waiting for confirmation (default 10000)" },
  "max-message-bytes": { kind: "positiveInt", help: "entry bytes in one append message (default 1 MiB)" },
  "max-uncommitted-bytes": {
    kind: "positiveInt",
    help: "bytes the leader holds uncommitted (default 256 MiB)",
  },
  "max-inflight-messages": { kind: "positiveInt", help: "appends in flight per follower (default 256)" },
  "max-clients": { kind: "positiveInt", help: "Redis clients at once (default 10000)" },
  "max-pipelined-commands": {
    kind: "positiveInt",
    help: "unanswered commands per client before its reads pause (default 10000)",
  },
  "max-output-bytes": {
    kind: "positiveInt",
    help: "unsent reply bytes before a client is closed (default 256 MiB)",
  },
  "max-bulk-bytes": { kind: "positiveInt", help: "the longest argument a client may send (default 64 MiB)" },
  "max-args": { kind: "positiveInt", help: "arguments in one Redis command (default 1048576)" },
  "max-inline-bytes": { kind: "positiveInt", help: "the longest inline command line (default 64 KiB)" },
  "max-command-bytes": { kind: "positiveInt", help: "bytes of one whole Redis command (default 128 MiB)" },
  "forward-timeout-ms": {
    kind: "positiveInt",
    help: "how long a follower waits for a forwarded write (default 5000)",
  },
} as const satisfies Record<string, OptionSpec>;

export type ServeOptionName = keyof typeof SERVE_OPTIONS;

interface ValueOfKind {
  positiveInt: number;
  nonNegativeInt: number;
  text: string;
  boolean: boolean;
  listen: string;
  peers: ReadonlyMap<number, string>;
}

/** The options given, each as its type. */
export type ServeSettings = {
  -readonly [K in ServeOptionName]?: ValueOfKind[(typeof SERVE_OPTIONS)[K]["kind"]];
};

/** A config file has at most this many bytes: it is a few dozen keys. */
const MAX_CONFIG_BYTES = 1024 * 1024;

type Parsed<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly problem: string };

function ok<T>(value: T): Parsed<T> {
  return { ok: true, value };
}

function bad(problem: string): Parsed<never> {
  return { ok: false, problem };
}

/** An integer of at least `min`, or why not. */
function int(value: number, min: number): Parsed<number> {
  if (!Number.isSafeInteger(value) || value < min)
    return bad(
      `expected ${min === 0 ? "a non-negative" : "a positive"} integer, got ${JSON.stringify(value)}`,
    );
  return ok(value);
}

function address(text: string, listen: boolean): Parsed<string> {
  const problem = addressProblem(text, listen);
  return problem === null ? ok(text) : bad(problem);
}

function peersFromText(text: string): Parsed<Map<number, string>> {
  const peers = new Map<number, string>();
  for (const part of text.split(",")) {
    const m = /^\s*(\d{1,16})=(.*?)\s*$/.exec(part);
    if (!m) return bad(`expected id=host:port,…, got ${JSON.stringify(part)}`);
    const added = addPeer(peers, m[1]!, m[2]!);
    if (added !== null) return bad(added);
  }
  return ok(peers);
}

function peersFromObject(o: Record<string, unknown>): Parsed<Map<number, string>> {
  const peers = new Map<number, string>();
  for (const [key, value] of Object.entries(o)) {
    if (typeof value !== "string") return bad(`the address of node ${JSON.stringify(key)} must be a string`);
    const added = addPeer(peers, key, value);
    if (added !== null) return bad(added);
  }
  if (peers.size === 0) return bad("expected at least one node");
  return ok(peers);
}

/** Adds `key`'s address to `peers`, or says why it cannot. */
function addPeer(peers: Map<number, string>, key: string, text: string): string | null {
  const id = /^\d{1,16}$/.test(key) ? Number(key) : Number.NaN;
  if (!Number.isSafeInteger(id) || id <= 0) return `${JSON.stringify(key)} is not a node id`;
  if (peers.has(id)) return `node ${id} is listed twice`;
  const problem = addressProblem(text);
  if (problem !== null) return `node ${id}: ${problem}`;
  peers.set(id, text);
  return null;
}

function describe(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  return typeof value === "string"
    ? `the string ${JSON.stringify(value)}`
    : `${typeof value} ${JSON.stringify(value)}`;
}

/** A value from JSON of the option's kind, or why not. */
function fromJson(kind: Kind, value: unknown): Parsed<ValueOfKind[Kind]> {
  switch (kind) {
    case "positiveInt":
    case "nonNegativeInt":
      if (typeof value !== "number") return bad(`expected a number, got ${describe(value)}`);
      return int(value, kind === "positiveInt" ? 1 : 0);
    case "boolean":
      return typeof value === "boolean" ? ok(value) : bad(`expected true or false, got ${describe(value)}`);
    case "text":
      return typeof value === "string" ? ok(value) : bad(`expected a string, got ${describe(value)}`);
    case "listen":
      if (typeof value !== "string") return bad(`expected a string host:port, got ${describe(value)}`);
      return address(value, true);
    case "peers":
      if (typeof value === "string") return peersFromText(value);
      if (typeof value === "object" && value !== null && !Array.isArray(value))
        return peersFromObject(value as Record<string, unknown>);
      return bad(
        `expected an object {"id": "host:port", …} or a string id=host:port,…, got ${describe(value)}`,
      );
  }
}

/** A value from a flag's text (true for a boolean flag given), or why not. */
function fromFlag(kind: Kind, given: string | boolean): Parsed<ValueOfKind[Kind]> {
  const text = String(given);
  switch (kind) {
    case "boolean":
      return ok(given === true);
    case "positiveInt":
    case "nonNegativeInt":
      if (!/^\d{1,16}$/.test(text)) return bad(`expected an integer, got ${JSON.stringify(text)}`);
      return int(Number(text), kind === "positiveInt" ? 1 : 0);
    case "peers":
      return peersFromText(text);
    case "listen":
      return address(text, true);
    case "text":
      return ok(text);
  }
}

function isOption(name: string): name is ServeOptionName {
  return Object.hasOwn(SERVE_OPTIONS, name);
}

/** The settings a config file's text holds; `source` names the file in errors. */
export function parseServeConfig(text: string, source: string): ServeSettings {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    throw new UsageError(`config file ${source}: not valid JSON: ${(err as Error).message}`);
  }
  if (typeof doc !== "object" || doc === null || Array.isArray(doc))
    throw new UsageError(`config file ${source}: expected a JSON object of options, got ${describe(doc)}`);
  const settings: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(doc)) {
    if (!isOption(key)) throw new UsageError(`config file ${source}: unknown key ${JSON.stringify(key)}`);
    const v = fromJson(SERVE_OPTIONS[key].kind, value);
    if (!v.ok) throw new UsageError(`config file ${source}: key ${JSON.stringify(key)}: ${v.problem}`);
    settings[key] = v.value;
  }
  return settings as ServeSettings;
}

/** Reads and parses a config file (at most 1 MiB). */
export function readServeConfig(file: string): ServeSettings {
  let bytes: Buffer;
  try {
    bytes = readFileSync(file);
  } catch (err) {
    throw new UsageError(`config file ${file}: ${(err as Error).message}`);
  }
  if (bytes.length > MAX_CONFIG_BYTES)
    throw new UsageError(`config file ${file}: ${bytes.length} bytes, more than ${MAX_CONFIG_BYTES}`);
  return parseServeConfig(bytes.toString("utf8"), file);
}

/**
 * The settings `serve`'s arguments give: the config file's (when `--config` names one), overridden by
 * every flag given.
 */
export function serveSettings(argv: readonly string[]): ServeSettings {
  const options: Record<string, { type: "string" | "boolean" }> = { config: { type: "string" } };
  for (const [name, spec] of Object.entries(SERVE_OPTIONS))
    options[name] = { type: spec.kind === "boolean" ? "boolean" : "string" };
  const { values } = parseArgsOrUsage({ args: [...argv], options, strict: true, allowPositionals: false });
  const settings: Record<string, unknown> =
    typeof values.config === "string" ? { ...readServeConfig(values.config) } : {};
  for (const [name, given] of Object.entries(values)) {
    if (given === undefined || !isOption(name)) continue;
    const v = fromFlag(SERVE_OPTIONS[name].kind, given);
    if (!v.ok) throw new UsageError(`--${name}: ${v.problem}`);
    settings[name] = v.value;
  }
  return settings as ServeSettings;
}

/** The node's configuration from complete settings; what is missing or inconsistent is a UsageError. */
export function nodeConfigFrom(s: ServeSettings): Omit<NodeConfig, "logger"> {
  const required = <K extends ServeOptionName>(name: K): NonNullable<ServeSettings[K]> => {
    const v = s[name];
    if (v === undefined) throw new UsageError(`--${name} is required (as a flag or in the config file)`);
    return v as NonNullable<ServeSettings[K]>;
  };
  const id = required("id");
  const peers = required("peers");
  const join = s.join === true;
  if (!join && !peers.has(id))
    throw new UsageError(
      `peers has no address for this node (id ${id}); a founding node lists every founding node, itself included`,
    );
  if (join && s.listen === undefined && !peers.has(id))
    throw new UsageError(`a joining node needs its own address: in peers (as ${id}=host:port) or as listen`);
  if (join && ![...peers.keys()].some((p) => p !== id))
    throw new UsageError("a joining node needs the address of at least one current member in peers");
  const config: Omit<NodeConfig, "logger"> = {
    id,
    clusterId: s["cluster-id"] ?? "raftkv",
    dataDir: required("data-dir"),
    peers,
    redisListen: required("redis"),
    join,
  };
  const optional: Array<[keyof NodeConfig, string | number | boolean | undefined]> = [
    ["raftListen", s.listen],
    ["metricsListen", s.metrics],
    ["leaseReads", s["lease-reads"]],
    ["requirepass", s.requirepass],
    ["tickMs", s["tick-ms"]],
    ["electionTicks", s["election-ticks"]],
    ["heartbeatTicks", s["heartbeat-ticks"]],
    ["snapshotEveryEntries", s["snapshot-every-entries"]],
    ["trailingEntries", s["trailing-entries"]],
    ["keepSnapshots", s["keep-snapshots"]],
    ["maxPendingProposals", s["max-pending-proposals"]],
    ["maxProposalBytes", s["max-proposal-bytes"]],
    ["maxPendingReads", s["max-pending-reads"]],
    ["maxMessageBytes", s["max-message-bytes"]],
    ["maxUncommittedBytes", s["max-uncommitted-bytes"]],
    ["maxInflightMessages", s["max-inflight-messages"]],
    ["maxClients", s["max-clients"]],
    ["maxPipelinedCommands", s["max-pipelined-commands"]],
    ["maxOutputBytes", s["max-output-bytes"]],
    ["maxBulkBytes", s["max-bulk-bytes"]],
    ["maxArgs", s["max-args"]],
    ["maxInlineBytes", s["max-inline-bytes"]],
    ["maxCommandBytes", s["max-command-bytes"]],
    ["forwardTimeoutMs", s["forward-timeout-ms"]],
  ];
  for (const [key, value] of optional) if (value !== undefined) Object.assign(config, { [key]: value });
  const election = config.electionTicks ?? 10;
  if ((config.heartbeatTicks ?? 1) >= election)
    throw new UsageError(
      `heartbeat-ticks (${config.heartbeatTicks ?? 1}) must be less than election-ticks (${election})`,
    );
  return config;
}

const PLACEHOLDERS: Record<Kind, string> = {
  positiveInt: "N",
  nonNegativeInt: "N",
  text: "TEXT",
  boolean: "",
  listen: "HOST:PORT",
  peers: "ID=HOST:PORT,…",
};

/** One line per option, for the usage text. */
export function serveOptionsHelp(): string {
  return Object.entries(SERVE_OPTIONS)
    .map(([name, spec]) => `    ${`--${name} ${PLACEHOLDERS[spec.kind]}`.padEnd(36)} ${spec.help}`)
    .join("\n");
}

/**
 * The `raftkv serve` arguments that give these settings (serveSettings' inverse): what a program that
 * starts nodes (the demo, the chaos run, the benchmarks, the tests) builds its command line with, so a
 * misspelt or mistyped option is a compile error rather than a node that will not start.
 */
export function serveArgs(settings: ServeSettings): string[] {
  const args = ["serve"];
  for (const [name, value] of Object.entries(settings) as [
    ServeOptionName,
    ServeSettings[ServeOptionName],
  ][]) {
    if (value === undefined || value === false) continue;
    if (value === true) args.push(`--${name}`);
    else if (value instanceof Map)
      args.push(`--${name}`, [...value].map(([id, address]) => `${id}=${address}`).join(","));
    else args.push(`--${name}`, String(value));
  }
  return args;
}
