/**
 * WAL throughput against the disk's physical limit. For batches of 1, 16 and 256 entries of 256 bytes,
 * appends one batch at a time (each awaited: one write + one fdatasync) and reports appends/s, MB/s and
 * append latency; and, in the same run and directory, a bare loop of write + fdatasync of the same
 * payload bytes, which is the most any WAL could do. The two alternate in short slices so that the
 * disk's drift (this machine's fdatasync rate wanders by tens of percent) falls on both alike.
 *
 *   npm run bench:wal [-- --seconds 5 --dir /tmp/x]
 */
import * as nodeFs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { parseArgs } from "node:util";
import { type Entry, EntryType } from "../src/raft/types.js";
import { NodeFileSystem } from "../src/storage/fs.js";
import { Wal } from "../src/storage/wal.js";

const { values } = parseArgs({
  options: {
    seconds: { type: "string", default: "5" },
    dir: { type: "string" },
    entry: { type: "string", default: "256" },
    batches: { type: "string", default: "1,16,256" },
  },
});
const seconds = Number(values.seconds);
const entryBytes = Number(values.entry);
const batchSizes = values.batches!.split(",").map(Number);
const root = values.dir ?? nodeFs.mkdtempSync(path.join(os.tmpdir(), "raftkv-bench-wal-"));

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? 0;
}

interface Totals {
  ops: number;
  ms: number;
  latencies: number[];
}

async function makeWalRunner(
  batch: number,
): Promise<{ run(ms: number, t: Totals): Promise<void>; close(): Promise<void> }> {
  const dir = path.join(root, `wal-${batch}`);
  const wal = await Wal.open({ fs: new NodeFileSystem(), dir });
  const payload = Buffer.alloc(entryBytes, 7);
  let index = 1;
  return {
    async run(ms, t) {
      const start = performance.now();
      const end = start + ms;
      while (performance.now() < end) {
        const entries: Entry[] = new Array(batch);
        for (let i = 0; i < batch; i++)
          entries[i] = { index: index++, term: 1, type: EntryType.Normal, data: payload };
        const t0 = performance.now();
        await wal.append(entries, { term: 1, vote: 1, commit: index - 1 });
        t.latencies.push(performance.now() - t0);
        t.ops++;
      }
      t.ms += performance.now() - start;
    },
    async close() {
      await wal.close();
      nodeFs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

function makeBareRunner(batch: number): { run(ms: number, t: Totals): Promise<void>; close(): void } {
  const file = path.join(root, `bare-${batch}`);
  const fd = nodeFs.openSync(file, "w");
  const buf = Buffer.alloc(batch * entryBytes, 7);
  let pos = 0;
  return {
    run(ms, t) {
      const start = performance.now();
      const end = start + ms;
      return new Promise((resolve, reject) => {
        const step = () => {
          if (performance.now() >= end) {
            t.ms += performance.now() - start;
            resolve();
            return;
          }
          nodeFs.write(fd, buf, 0, buf.byteLength, pos, (err) => {
            if (err) return reject(err);
            pos += buf.byteLength;
            nodeFs.fdatasync(fd, (err2) => {
              if (err2) return reject(err2);
              t.ops++;
              step();
            });
          });
        };
        step();
      });
    },
    close() {
      nodeFs.closeSync(fd);
      nodeFs.rmSync(file, { force: true });
    },
  };
}

const sliceMs = 500;
console.log(
  `WAL vs bare write+fdatasync, ${entryBytes}-byte entries, ${seconds} s each in ${sliceMs} ms slices, in ${root}`,
);
for (const batch of batchSizes) {
  const walRunner = await makeWalRunner(batch);
  const bareRunner = makeBareRunner(batch);
  const w: Totals = { ops: 0, ms: 0, latencies: [] };
  const b: Totals = { ops: 0, ms: 0, latencies: [] };
  for (let slice = 0; slice < Math.max(1, Math.round((seconds * 1000) / sliceMs)); slice++) {
    await walRunner.run(sliceMs, w);
    await bareRunner.run(sliceMs, b);
  }
  await walRunner.close();
  bareRunner.close();
  w.latencies.sort((x, y) => x - y);
  const walMb = (w.ops * batch * entryBytes) / (w.ms / 1000) / 1e6;
  const bareMb = (b.ops * batch * entryBytes) / (b.ms / 1000) / 1e6;
  console.log(
    `batch ${String(batch).padStart(3)}: WAL ${Math.round(w.ops / (w.ms / 1000))} appends/s, ${walMb.toFixed(2)} MB/s payload, ` +
      `p50 ${percentile(w.latencies, 50).toFixed(3)} ms, p99 ${percentile(w.latencies, 99).toFixed(3)} ms | ` +
      `bare ${Math.round(b.ops / (b.ms / 1000))} syncs/s, ${bareMb.toFixed(2)} MB/s | WAL/bare ${((walMb / bareMb) * 100).toFixed(0)}%`,
  );
}
if (!values.dir) nodeFs.rmSync(root, { recursive: true, force: true });
