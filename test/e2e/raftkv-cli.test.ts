/**
 * The `raftkv` command line, as operators run it: `demo` starts three server processes a Redis client
 * can talk to through any node and stops them on Ctrl-C; three `serve` processes all killed with
 * SIGKILL under a write load keep every acknowledged write when they come back.
 */
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import * as net from "node:net";
import * as os from "node:os";
import * as path from "node:path";
import { after, describe, it } from "node:test";
import { Redis } from "ioredis";

const CLI = path.resolve("dist/src/cli/raftkv.js");
const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function tempDir(): string {
  const d = mkdtempSync(path.join(os.tmpdir(), "raftkv-cli-"));
  dirs.push(d);
  return d;
}

async function canBind(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.once("error", () => resolve(false));
    s.listen(port, "127.0.0.1", () => s.close(() => resolve(true)));
  });
}

/**
 * A base port such that base..base+2 and base+10000..base+10002 are free, all below the ephemeral range
 * (see src/net/loopback-ports.ts).
 */
async function freeBase(): Promise<number> {
  for (let attempt = 0; attempt < 200; attempt++) {
    const base = 20_000 + Math.floor(Math.random() * 2_700);
    const ports = [0, 1, 2, 10_000, 10_001, 10_002].map((d) => base + d);
    if ((await Promise.all(ports.map(canBind))).every(Boolean)) return base;
  }
  throw new Error("no free ports");
}

function waitForOutput(child: ChildProcess, pattern: RegExp, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    let out = "";
    const timer = setTimeout(
      () => reject(new Error(`timed out waiting for ${pattern}; output:\n${out}`)),
      timeoutMs,
    );
    const onData = (d: Buffer) => {
      out += d.toString();
      if (pattern.test(out)) {
        clearTimeout(timer);
        resolve(out);
      }
    };
    child.stdout?.on("data", onData);
    child.stderr?.on("data", onData);
  });
}

function client(port: number): Redis {
  const r = new Redis({ port, host: "127.0.0.1", maxRetriesPerRequest: 0, retryStrategy: () => null });
  r.on("error", () => undefined);
  return r;
}

describe("raftkv demo", () => {
  it("starts a 3-node cluster any node of which serves a Redis client, and stops it on Ctrl-C", async () => {
    const base = await freeBase();
    const demo = spawn(process.execPath, [CLI, "demo", "--base-port", String(base), "--data", tempDir()], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    try {
      const out = await waitForOutput(demo, /Ctrl-C stops the cluster/, 30_000);
      assert.match(out, /cluster ready: node \d leads/);
      const [a, b, c] = [client(base), client(base + 1), client(base + 2)];
      assert.equal(await b.set("greeting", "hello"), "OK");
      assert.equal(await c.get("greeting"), "hello");
      assert.equal(await a.incr("visits"), 1);
      assert.equal(await c.incr("visits"), 2);
      for (const r of [a, b, c]) r.disconnect();
      const exited = new Promise<number | null>((resolve) => demo.once("exit", (code) => resolve(code)));
      const stopped = waitForOutput(demo, /stopped/, 15_000);
      demo.kill("SIGINT");
      await stopped;
      assert.equal(await exited, 0);
    } finally {
      if (demo.exitCode === null) demo.kill("SIGKILL");
    }
  });
});

describe("raftkv serve", () => {
  it("all three nodes killed with SIGKILL under a write load keep every acknowledged write", async () => {
    const base = await freeBase();
    const data = tempDir();
    const peers = [1, 2, 3].map((id) => `${id}=127.0.0.1:${base + 10_000 + id - 1}`).join(",");
    const start = (id: number) =>
      spawn(
        process.execPath,
        [
          CLI,
          "serve",
          "--id",
          String(id),
          "--data-dir",
          path.join(data, `n${id}`),
          "--peers",
          peers,
          "--redis",
          `127.0.0.1:${base + id - 1}`,
          "--tick-ms",
          "20",
        ],
        { stdio: ["ignore", "pipe", "pipe"] },
      );
    let nodes = [1, 2, 3].map(start);
    try {
      await Promise.all(nodes.map((n) => waitForOutput(n, /raftkv node serving/, 20_000)));
      // Writers through every node; each write acknowledged is remembered.
      const acked = new Set<string>();
      let running = true;
      const writer = async (port: number, prefix: string) => {
        const r = client(port);
        for (let i = 0; running; i++) {
          try {
            if ((await r.set(`${prefix}${i}`, `v${i}`)) === "OK") acked.add(`${prefix}${i}`);
          } catch {
            await new Promise((res) => setTimeout(res, 20));
          }
        }
        r.disconnect();
      };
      const writers = [0, 1, 2].flatMap((i) => [writer(base + i, `w${i}a-`), writer(base + i, `w${i}b-`)]);
      while (acked.size < 300) await new Promise((res) => setTimeout(res, 20));
      for (const n of nodes) n.kill("SIGKILL");
      running = false;
      await Promise.all(writers);
      await Promise.all(
        nodes.map((n) =>
          n.exitCode !== null || n.signalCode !== null
            ? Promise.resolve()
            : new Promise((res) => n.once("exit", res)),
        ),
      );
      const before = acked.size;
      nodes = [1, 2, 3].map(start);
      await Promise.all(nodes.map((n) => waitForOutput(n, /raftkv node serving/, 20_000)));
      const readers = [client(base), client(base + 1), client(base + 2)];
      // Every acknowledged write, read through every node (each read linearizable).
      for (const r of readers) {
        let missing = 0;
        for (const key of acked) {
          for (let attempt = 0; ; attempt++) {
            try {
              const v = await r.get(key);
              if (v === null) missing++;
              break;
            } catch (err) {
              if (attempt > 100) throw err;
              await new Promise((res) => setTimeout(res, 50));
            }
          }
        }
        assert.equal(missing, 0, `${missing} of ${before} acknowledged writes missing`);
        r.disconnect();
      }
    } finally {
      for (const n of nodes) if (n.exitCode === null) n.kill("SIGKILL");
    }
  });
});
