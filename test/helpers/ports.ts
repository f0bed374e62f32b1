import * as net from "node:net";

/** Ports handed out by this process: never twice. */
const given = new Set<number>();

async function canBind(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.once("error", () => resolve(false));
    srv.listen(port, "127.0.0.1", () => srv.close(() => resolve(true)));
  });
}

/**
 * A loopback port free right now, chosen below the kernel's ephemeral range (32768 and up on Linux):
 * a port the OS picked for `listen(0)` can be taken by any outgoing connection's local end before the
 * real server binds it (that made a node fail to start in CI). Random, so that test processes side by
 * side rarely pick the same one; a taken one is skipped.
 */
export async function freePort(): Promise<number> {
  for (let attempt = 0; attempt < 500; attempt++) {
    const port = 20_000 + Math.floor(Math.random() * 12_000);
    if (given.has(port)) continue;
    if (await canBind(port)) {
      given.add(port);
      return port;
    }
  }
  throw new Error("no free loopback port between 20000 and 32000");
}
