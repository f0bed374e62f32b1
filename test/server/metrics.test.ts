import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { after, describe, it } from "node:test";
import { nodeConfigFrom, serveSettings } from "../../src/cli/serve-config.js";
import { writeEntry } from "../../src/kv/machine.js";
import { freePort } from "../../src/net/loopback-ports.js";
import { StateRole } from "../../src/raft/types.js";
import { RaftkvNode } from "../../src/server/node.js";

const dir = mkdtempSync(path.join(os.tmpdir(), "raftkv-metrics-"));
after(() => rmSync(dir, { recursive: true, force: true }));

describe("the metrics endpoint", () => {
  it("`--metrics host:port` is the node's metricsListen", () => {
    const config = nodeConfigFrom(
      serveSettings([
        "--id",
        "1",
        "--data-dir",
        dir,
        "--peers",
        "1=127.0.0.1:7001",
        "--redis",
        "127.0.0.1:0",
        "--metrics",
        "127.0.0.1:9464",
      ]),
    );
    assert.equal(config.metricsListen, "127.0.0.1:9464");
  });

  it("serves the engine's and the process's metrics at GET /metrics, and 404 elsewhere", async () => {
    const node = await RaftkvNode.start({
      id: 1,
      clusterId: "test",
      dataDir: path.join(dir, "n1"),
      peers: new Map([[1, `127.0.0.1:${await freePort()}`]]),
      redisListen: "127.0.0.1:0",
      metricsListen: "127.0.0.1:0",
      tickMs: 20,
    });
    try {
      while (node.engine.status().softState.role !== StateRole.Leader)
        await new Promise((r) => setTimeout(r, 20));
      await node.engine.propose(
        writeEntry(Date.now(), [[Buffer.from("SET"), Buffer.from("k"), Buffer.from("v")]]),
      );
      const base = `http://127.0.0.1:${node.metrics!.port}`;
      const res = await fetch(`${base}/metrics`);
      assert.equal(res.status, 200);
      assert.match(res.headers.get("content-type") ?? "", /^text\/plain/);
      const text = await res.text();
      assert.match(text, /^raftkv_raft_role\{role="leader"\} 1$/m);
      assert.match(text, /^raftkv_wal_fsync_duration_seconds_count [1-9]\d*$/m);
      assert.match(text, /^process_cpu_user_seconds_total /m);
      assert.equal((await fetch(`${base}/`)).status, 404);
      assert.equal((await fetch(`${base}/metrics`, { method: "POST" })).status, 404);
    } finally {
      await node.close();
    }
  });
});
