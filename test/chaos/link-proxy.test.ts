import assert from "node:assert/strict";
import { once } from "node:events";
import * as net from "node:net";
import { after, describe, it } from "node:test";
import { setTimeout as delay } from "node:timers/promises";
import { LinkProxy } from "../../src/chaos/link-proxy.js";
import { ChaosNetwork } from "../../src/chaos/network.js";

/** A server that echoes what it gets. */
async function echoServer(): Promise<net.Server> {
  const server = net.createServer((s) => {
    s.on("error", () => undefined);
    s.pipe(s);
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  return server;
}

const portOf = (s: net.Server) => (s.address() as net.AddressInfo).port;

/** A client socket that collects what it receives and notes when it closes. */
async function connect(port: number) {
  const socket = net.connect(port, "127.0.0.1");
  const got: Buffer[] = [];
  let closed = false;
  socket.on("data", (d: Buffer) => got.push(d));
  socket.on("error", () => undefined);
  socket.on("close", () => {
    closed = true;
  });
  await once(socket, "connect");
  return {
    socket,
    text: () => Buffer.concat(got).toString(),
    get closed() {
      return closed;
    },
  };
}

async function until(condition: () => boolean): Promise<void> {
  for (let i = 0; i < 500 && !condition(); i++) await delay(10);
  assert.ok(condition(), "condition not reached in 5 s");
}

describe("chaos link proxy", () => {
  const servers: net.Server[] = [];
  after(() => {
    for (const s of servers) s.close();
  });

  it("passes bytes both ways, holds them while stalled and delivers them when restored", async () => {
    const server = await echoServer();
    servers.push(server);
    const proxy = await LinkProxy.open(portOf(server));
    const c = await connect(proxy.port);
    c.socket.write("one ");
    await until(() => c.text() === "one ");
    proxy.cut("stall");
    c.socket.write("two ");
    const late = await connect(proxy.port);
    late.socket.write("three");
    await delay(200);
    assert.equal(c.text(), "one ");
    assert.equal(late.text(), "");
    assert.ok(!c.closed && !late.closed);
    proxy.restore();
    await until(() => c.text() === "one two " && late.text() === "three");
    c.socket.destroy();
    late.socket.destroy();
    await proxy.close();
  });

  it("closes connections when cut with refuse, and refuses new ones until restored", async () => {
    const server = await echoServer();
    servers.push(server);
    const proxy = await LinkProxy.open(portOf(server));
    const c = await connect(proxy.port);
    proxy.cut("refuse");
    await until(() => c.closed);
    const refused = await connect(proxy.port);
    await until(() => refused.closed);
    proxy.restore();
    const again = await connect(proxy.port);
    again.socket.write("back");
    await until(() => again.text() === "back");
    again.socket.destroy();
    await proxy.close();
  });

  it("closes a connection whose target is down", async () => {
    const server = await echoServer();
    const port = portOf(server);
    server.close();
    const proxy = await LinkProxy.open(port);
    const c = await connect(proxy.port);
    await until(() => c.closed);
    await proxy.close();
  });

  it("opens a link again only when every cut of it has healed", async () => {
    const server = await echoServer();
    servers.push(server);
    const network = await ChaosNetwork.open([1, 2, 3], () => portOf(server));
    network.cut(1, 2, "refuse");
    network.cut(1, 2, "stall");
    network.cut(2, 1, "stall");
    assert.deepEqual(network.cutLinks(), ["1->2", "2->1"]);
    network.heal(1, 2);
    assert.deepEqual(network.cutLinks(), ["1->2", "2->1"]);
    const c = await connect(network.portFor(1, 2));
    await until(() => c.closed); // still refusing
    network.heal(1, 2);
    assert.deepEqual(network.cutLinks(), ["2->1"]);
    assert.throws(() => network.heal(1, 2), /not cut/);
    network.healAll();
    assert.deepEqual(network.cutLinks(), []);
    const d = await connect(network.portFor(2, 1));
    d.socket.write("ok");
    await until(() => d.text() === "ok");
    d.socket.destroy();
    await network.close();
  });
});
