/**
 * WAL throughput against the disk's physical limit. For batches of 1, 16 and 256 entries of 256 bytes,
 * appends one batch at a time (each awaited: one write + one fdatasync) and reports appends/s, MB/s and
 * append latency; then, in the same run and directory, a bare loop of write + fdatasync of the same
 * number of payload bytes, which is the most any WAL could do.
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

async function walRun(
  batch: number,
): Promise<{ appendsPerS: number; mbPerS: number; p50: number; p99: number }> {
  const dir = path.join(root, `wal-${batch}`);
  const wal = await Wal.open({ fs: new NodeFileSystem(), dir });
  const payload = Buffer.alloc(entryBytes, 7);
  let index = 1;
  const latencies: number[] = [];
  const end = performance.now() + seconds * 1000;
  let appends = 0;
  while (performance.now() < end) {
    const entries: Entry[] = new Array(batch);
    for (let i = 0; i < batch; i++)
      entries[i] = { index: index++, term: 1, type: EntryType.Normal, data: payload };
    const t0 = performance.now();
    await wal.append(entries, { term: 1, vote: 1, commit: index - 1 });
    latencies.push(performance.now() - t0);
    appends++;
  }
  const elapsed = seconds;
  await wal.close();
  nodeFs.rmSync(dir, { recursive: true, force: true });
  latencies.sort((a, b) => a - b);
  return {
    appendsPerS: appends / elapsed,
    mbPerS: (appends * batch * entryBytes) / elapsed / 1e6,
    p50: percentile(latencies, 50),
    p99: percentile(latencies, 99),
  };
}

function bareRun(batch: number): Promise<{ opsPerS: number; mbPerS: number }> {
  const file = path.join(root, `bare-${batch}`);
  const fd = nodeFs.openSync(file, "w");
  const buf = Buffer.alloc(batch * entryBytes, 7);
  let pos = 0;
  let ops = 0;
  const end = performance.now() + seconds * 1000;
  return new Promise((resolve, reject) => {
    const step = () => {
      if (performance.now() >= end) {
        nodeFs.closeSync(fd);
        nodeFs.rmSync(file, { force: true });
        resolve({ opsPerS: ops / seconds, mbPerS: (ops * buf.byteLength) / seconds / 1e6 });
        return;
      }
      nodeFs.write(fd, buf, 0, buf.byteLength, pos, (err) => {
        if (err) return reject(err);
        pos += buf.byteLength;
        nodeFs.fdatasync(fd, (err2) => {
          if (err2) return reject(err2);
          ops++;
          step();
        });
      });
    };
    step();
  });
}

console.log(`WAL vs bare write+fdatasync, ${entryBytes}-byte entries, ${seconds} s each, in ${root}`);
for (const batch of batchSizes) {
  const w = await walRun(batch);
  const b = await bareRun(batch);
  console.log(
    `batch ${String(batch).padStart(3)}: WAL ${Math.round(w.appendsPerS)} appends/s, ${w.mbPerS.toFixed(2)} MB/s payload, ` +
      `p50 ${w.p50.toFixed(3)} ms, p99 ${w.p99.toFixed(3)} ms | bare ${Math.round(b.opsPerS)} syncs/s, ` +
      `${b.mbPerS.toFixed(2)} MB/s | WAL/bare ${((w.mbPerS / b.mbPerS) * 100).toFixed(0)}%`,
  );
}
if (!values.dir) nodeFs.rmSync(root, { recursive: true, force: true });
