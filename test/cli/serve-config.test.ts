/**
 * `raftkv serve --config FILE`: the file's keys are the flags' names; flags override it; unknown keys,
 * wrong types and values out of range are errors that name the key.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { after, describe, it } from "node:test";
import {
  nodeConfigFrom,
  parseServeConfig,
  SERVE_OPTIONS,
  type ServeSettings,
  serveArgs,
  serveSettings,
} from "../../src/cli/serve-config.js";
import { UsageError } from "../../src/cli/usage-error.js";

const dir = mkdtempSync(path.join(os.tmpdir(), "raftkv-config-"));
after(() => rmSync(dir, { recursive: true, force: true }));

function configFile(doc: unknown, name = "node.json"): string {
  const file = path.join(dir, name);
  writeFileSync(file, typeof doc === "string" ? doc : JSON.stringify(doc));
  return file;
}

const FULL = {
  id: 2,
  "data-dir": "/var/lib/raftkv",
  peers: { "1": "10.0.0.1:16379", "2": "10.0.0.2:16379", "3": "10.0.0.3:16379" },
  redis: "0.0.0.0:6379",
  listen: "0.0.0.0:16379",
  metrics: "127.0.0.1:9464",
  "lease-reads": true,
  "cluster-id": "prod",
  requirepass: "s3cret",
  "tick-ms": 50,
  "election-ticks": 20,
  "heartbeat-ticks": 2,
  "snapshot-every-entries": 0,
  "trailing-entries": 100,
  "keep-snapshots": 3,
  "max-pending-proposals": 5000,
  "max-proposal-bytes": 1048576,
  "max-pending-reads": 4000,
  "max-message-bytes": 65536,
  "max-uncommitted-bytes": 33554432,
  "max-inflight-messages": 64,
  "max-clients": 100,
  "max-pipelined-commands": 1000,
  "max-output-bytes": 8388608,
  "max-bulk-bytes": 1048576,
  "max-args": 5000,
  "max-inline-bytes": 4096,
  "max-command-bytes": 2097152,
  "forward-timeout-ms": 2000,
};

describe("serve config file", () => {
  it("every option the flags take can be set in the file, and reaches the node's configuration", () => {
    assert.deepEqual(
      Object.keys(FULL).sort(),
      Object.keys(SERVE_OPTIONS)
        .filter((k) => k !== "join")
        .sort(),
      "the test covers every option",
    );
    const config = nodeConfigFrom(serveSettings(["--config", configFile(FULL)]));
    assert.deepEqual(config, {
      id: 2,
      clusterId: "prod",
      dataDir: "/var/lib/raftkv",
      peers: new Map([
        [1, "10.0.0.1:16379"],
        [2, "10.0.0.2:16379"],
        [3, "10.0.0.3:16379"],
      ]),
      redisListen: "0.0.0.0:6379",
      join: false,
      raftListen: "0.0.0.0:16379",
      metricsListen: "127.0.0.1:9464",
      leaseReads: true,
      requirepass: "s3cret",
      tickMs: 50,
      electionTicks: 20,
      heartbeatTicks: 2,
      snapshotEveryEntries: 0,
      trailingEntries: 100,
      keepSnapshots: 3,
      maxPendingProposals: 5000,
      maxProposalBytes: 1048576,
      maxPendingReads: 4000,
      maxMessageBytes: 65536,
      maxUncommittedBytes: 33554432,
      maxInflightMessages: 64,
      maxClients: 100,
      maxPipelinedCommands: 1000,
      maxOutputBytes: 8388608,
      maxBulkBytes: 1048576,
      maxArgs: 5000,
      maxInlineBytes: 4096,
      maxCommandBytes: 2097152,
      forwardTimeoutMs: 2000,
    });
  });

  it("flags override the file; peers may also be the flag's text form; join is a boolean", () => {
    const file = configFile({ ...FULL, peers: "1=a:1,2=b:2", join: false });
    const config = nodeConfigFrom(
      serveSettings([
        "--config",
        file,
        "--tick-ms",
        "20",
        "--peers",
        "1=a:1,2=b:2,5=e:5",
        "--join",
        "--id",
        "5",
      ]),
    );
    assert.equal(config.tickMs, 20);
    assert.equal(config.id, 5);
    assert.equal(config.join, true);
    assert.deepEqual([...config.peers.keys()], [1, 2, 5]);
    assert.equal(config.electionTicks, 20, "what no flag overrides comes from the file");
  });

  it("an unknown key is an error naming it", () => {
    assert.throws(
      () => parseServeConfig(JSON.stringify({ ...FULL, tickms: 20 }), "node.json"),
      (e: unknown) =>
        e instanceof UsageError && /unknown key "tickms"/.test(e.message) && /node\.json/.test(e.message),
    );
    assert.throws(
      () => parseServeConfig(JSON.stringify({ config: "other.json" }), "f"),
      /unknown key "config"/,
    );
  });

  it("a value of the wrong type or out of range is an error naming the key", () => {
    const cases: Array<[string, unknown, RegExp]> = [
      ["tick-ms", "20", /key "tick-ms": expected a number, got the string "20"/],
      ["tick-ms", 0, /key "tick-ms": expected a positive integer, got 0/],
      ["tick-ms", 2.5, /key "tick-ms": expected a positive integer/],
      ["snapshot-every-entries", -1, /key "snapshot-every-entries": expected a non-negative integer/],
      ["id", null, /key "id": expected a number, got null/],
      ["data-dir", 7, /key "data-dir": expected a string, got number 7/],
      ["join", "yes", /key "join": expected true or false/],
      ["redis", "localhost", /key "redis": expected host:port/],
      ["redis", ["a:1"], /key "redis": expected a string host:port, got an array/],
      ["listen", "h:99999", /key "listen": the port of "h:99999" is not 0 to 65535/],
      ["peers", ["1=a:1"], /key "peers": expected an object/],
      ["peers", { one: "a:1" }, /key "peers": "one" is not a node id/],
      ["peers", { "1": 17 }, /key "peers": the address of node "1" must be a string/],
      ["peers", { "1": "a" }, /key "peers": node 1: expected host:port/],
      ["peers", {}, /key "peers": expected at least one node/],
      ["peers", "1=a:1,1=b:2", /key "peers": node 1 is listed twice/],
    ];
    for (const [key, value, pattern] of cases)
      assert.throws(
        () => parseServeConfig(JSON.stringify({ [key]: value }), "f.json"),
        (e: unknown) => e instanceof UsageError && pattern.test(e.message),
        `${key} = ${JSON.stringify(value)}`,
      );
  });

  it("a file that is not a JSON object, or cannot be read, is an error naming the file", () => {
    assert.throws(() => parseServeConfig("{ id: 1 }", "bad.json"), /config file bad\.json: not valid JSON/);
    assert.throws(
      () => parseServeConfig("[1]", "arr.json"),
      /config file arr\.json: expected a JSON object.*an array/,
    );
    assert.throws(() => serveSettings(["--config", path.join(dir, "missing.json")]), /missing\.json.*ENOENT/);
  });

  it("flags are checked the same way, naming the flag", () => {
    assert.throws(() => serveSettings(["--tick-ms", "fast"]), /--tick-ms: expected an integer, got "fast"/);
    assert.throws(() => serveSettings(["--peers", "1=a"]), /--peers: node 1: expected host:port/);
    assert.throws(
      () => serveSettings(["--tickms", "5"]),
      (e: unknown) => e instanceof UsageError,
    );
  });

  it("what is missing or inconsistent once file and flags are merged is an error", () => {
    const base = { id: 1, "data-dir": "d", peers: { "1": "a:1", "2": "b:2" }, redis: "127.0.0.1:0" };
    const fails = (doc: Record<string, unknown>, pattern: RegExp) =>
      assert.throws(() => nodeConfigFrom(parseServeConfig(JSON.stringify(doc), "f")), pattern);
    fails({ ...base, redis: undefined }, /--redis is required/);
    fails({ ...base, id: 3 }, /peers has no address for this node \(id 3\)/);
    fails({ ...base, id: 3, join: true }, /a joining node needs its own address/);
    fails({ ...base, peers: { "1": "a:1" }, join: true }, /at least one current member/);
    fails(
      { ...base, "heartbeat-ticks": 10 },
      /heartbeat-ticks \(10\) must be less than election-ticks \(10\)/,
    );
    // A joining node may give its own address as listen instead.
    assert.equal(
      nodeConfigFrom(parseServeConfig(JSON.stringify({ ...base, id: 3, join: true, listen: "c:3" }), "f"))
        .raftListen,
      "c:3",
    );
  });
});

describe("serveArgs", () => {
  it("renders settings as the flags that parse back to them", () => {
    const settings: ServeSettings = {
      id: 4,
      "data-dir": "/d",
      peers: new Map([
        [1, "a:1"],
        [4, "d:4"],
      ]),
      redis: "127.0.0.1:7000",
      join: true,
      "tick-ms": 20,
      "snapshot-every-entries": 0,
      requirepass: "pw",
    };
    assert.deepEqual(serveSettings(serveArgs(settings).slice(1)), settings);
    assert.deepEqual(serveArgs({ join: false, "tick-ms": 5 }), ["serve", "--tick-ms", "5"]);
  });
});
