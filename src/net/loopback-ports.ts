/**
 * Loopback ports for local listeners started by this process (the chaos run's nodes, the benchmark's
 * servers, the tests'): free right now, and never handed out twice by this process.
 *
 * Chosen below Linux's ephemeral range (32768 and up): a port the OS picked for `listen(0)`, or one in
 * that range, can be taken by an outgoing connection's local end before the real server binds it, or
 * while a killed node is down and must listen on it again. Random, so that processes side by side
 * rarely pick the same one; a taken one is skipped.
 */
import * as net from "node:net";

const given = new Set<number>();

function canBind(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.once("error", () => resolve(false));
    server.listen(port, "127.0.0.1", () => server.close(() => resolve(true)));
  });
}

export async function freePort(): Promise<number> {
  for (let attempt = 0; attempt < 1000; attempt++) {
    const port = 20_000 + Math.floor(Math.random() * 12_000);
    if (given.has(port)) continue;
    if (await canBind(port)) {
      given.add(port);
      return port;
    }
  }
  throw new Error("no free loopback port between 20000 and 32000");
}

/** `count` distinct free ports. */
export async function freePorts(count: number): Promise<number[]> {
  const ports: number[] = [];
  while (ports.length < count) ports.push(await freePort());
  return ports;
}
