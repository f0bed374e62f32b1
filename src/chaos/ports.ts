/** Loopback ports for the nodes' own listeners, which must stay the same across restarts. */
import { randomInt } from "node:crypto";
import * as net from "node:net";

function canBind(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.once("error", () => resolve(false));
    server.listen(port, "127.0.0.1", () => server.close(() => resolve(true)));
  });
}

/**
 * `count` distinct loopback ports free right now, below Linux's ephemeral range (32768 and up): a port
 * there could be taken by some outgoing connection's local end while a killed node is down, and the
 * node could not listen on it again when restarted.
 */
export async function freePorts(count: number): Promise<number[]> {
  const ports: number[] = [];
  for (let attempt = 0; ports.length < count; attempt++) {
    if (attempt >= 1000) throw new Error("no free loopback ports between 20000 and 32000");
    const port = randomInt(20_000, 32_000);
    if (!ports.includes(port) && (await canBind(port))) ports.push(port);
  }
  return ports;
}
