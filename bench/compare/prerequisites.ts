/**
 * What the comparison needs besides raftkv: Debian's redis-server, redis-benchmark and etcd 3.4, and
 * the Go load generator for etcd from the shared anchors folder, built offline in GOPATH mode against
 * Debian's packaged etcd client sources (as ../shared/anchors/etcd3.sh does). Also the machine and
 * version facts printed with the results.
 */
import { copyFileSync, existsSync, mkdirSync, readFileSync } from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { CommandError, type Processes } from "./processes.js";

const GOCODE = "/usr/share/gocode";
const CLIENTV3 = `${GOCODE}/src/go.etcd.io/etcd/clientv3`;

/** A Debian package, and the file whose presence means it is installed. */
interface Requirement {
  readonly pkg: string;
  readonly file: string;
}

export const REDIS_PACKAGES: readonly Requirement[] = [
  { pkg: "redis-server", file: "/usr/bin/redis-server" },
  { pkg: "redis-tools", file: "/usr/bin/redis-benchmark" },
];
export const ETCD_PACKAGES: readonly Requirement[] = [
  { pkg: "etcd-server", file: "/usr/bin/etcd" },
  { pkg: "etcd-client", file: "/usr/bin/etcdctl" },
  { pkg: "golang-go", file: "/usr/bin/go" },
  { pkg: "golang-etcd-server-dev", file: CLIENTV3 },
];

/** Installs with apt-get whatever is missing (as root; otherwise says what to install). */
export async function ensurePackages(procs: Processes, reqs: readonly Requirement[]): Promise<void> {
  const missing = reqs.filter((r) => !existsSync(r.file)).map((r) => r.pkg);
  if (missing.length === 0) return;
  if (process.getuid?.() !== 0)
    throw new CommandError(`missing Debian packages; run: sudo apt-get install -y ${missing.join(" ")}`);
  console.log(`installing ${missing.join(", ")} with apt-get…`);
  const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
  const timeoutMs = 15 * 60_000;
  await procs.run("apt-get", ["update", "-qq"], { timeoutMs, env, inherit: true });
  await procs.run("apt-get", ["install", "-y", "-qq", "--no-install-recommends", ...missing], {
    timeoutMs,
    env,
    inherit: true,
  });
}

/** The Go load generator's source in the anchors folder; throws, saying what to set, if it is not there. */
export function etcdLoadSource(anchorsDir: string): string {
  const source = path.join(anchorsDir, "loadgen", "go", "etcdload", "main.go");
  if (!existsSync(source))
    throw new CommandError(
      `the etcd load generator is not at ${source}: set ANCHORS_DIR to the shared anchors folder ` +
        "(the one holding etcd3.sh and loadgen/go/etcdload)",
    );
  return source;
}

/**
 * Builds anchors/loadgen/go/etcdload (no network: GOPATH mode, GOPROXY off) into a cache directory
 * kept between runs so that later builds are quick; returns the binary's path.
 */
export async function buildEtcdLoad(procs: Processes, source: string): Promise<string> {
  const cache = path.join(process.env.XDG_CACHE_HOME ?? path.join(os.homedir(), ".cache"), "raftkv-bench");
  const pkgDir = path.join(cache, "gopath", "src", "etcdload");
  mkdirSync(pkgDir, { recursive: true });
  copyFileSync(source, path.join(pkgDir, "main.go"));
  const binary = path.join(cache, "bin", "etcdload");
  console.log(`building the etcd load generator (${source}) into ${binary}…`);
  await procs.run("go", ["build", "-o", binary, "."], {
    timeoutMs: 15 * 60_000,
    cwd: pkgDir,
    inherit: true,
    env: {
      ...process.env,
      GO111MODULE: "off",
      GOPROXY: "off",
      GOPATH: `${path.join(cache, "gopath")}:${GOCODE}`,
      GOCACHE: path.join(cache, "gocache"),
    },
  });
  return binary;
}

export interface Machine {
  nproc: number;
  cpu: string;
  kernel: string;
  os: string;
  memoryGiB: number;
  loadAverage: number[];
}

export function machine(): Machine {
  const release = existsSync("/etc/os-release") ? readFileSync("/etc/os-release", "utf8") : "";
  return {
    nproc: os.availableParallelism(),
    cpu: os.cpus()[0]?.model.trim() ?? "unknown",
    kernel: `${os.type()} ${os.release()}`,
    os: /^PRETTY_NAME="?([^"\n]*)"?$/m.exec(release)?.[1] ?? os.platform(),
    memoryGiB: Math.round(os.totalmem() / 2 ** 30),
    loadAverage: os.loadavg().map((l) => Math.round(l * 100) / 100),
  };
}

/** The first line a version command prints, or why it could not be had. */
async function versionOf(procs: Processes, command: string, args: readonly string[]): Promise<string> {
  try {
    const out = await procs.run(command, args, { timeoutMs: 30_000 });
    return out.trim().split("\n")[0] ?? "";
  } catch (err) {
    return `unavailable (${err instanceof Error ? err.message.split("\n")[0] : String(err)})`;
  }
}

export async function versions(
  procs: Processes,
  root: string,
  withEtcd: boolean,
): Promise<Record<string, string>> {
  const pkg = JSON.parse(readFileSync(path.join(root, "package.json"), "utf8")) as { version: string };
  const commit = await versionOf(procs, "git", ["-C", root, "describe", "--always", "--dirty"]);
  const v: Record<string, string> = {
    raftkv: `${pkg.version} (${commit})`,
    node: process.version,
    "redis-server": await versionOf(procs, "redis-server", ["--version"]),
    "redis-benchmark": await versionOf(procs, "redis-benchmark", ["--version"]),
  };
  if (withEtcd) {
    v.etcd = await versionOf(procs, "etcd", ["--version"]);
    v.go = await versionOf(procs, "go", ["version"]);
    // dpkg-query -W prints "<package>\t<version>".
    const dev = await versionOf(procs, "dpkg-query", ["-W", "golang-etcd-server-dev"]);
    v["golang-etcd-server-dev"] = dev.split("\t").at(-1) ?? dev;
  }
  return v;
}
