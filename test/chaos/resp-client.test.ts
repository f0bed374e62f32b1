import assert from "node:assert/strict";
import { once } from "node:events";
import * as net from "node:net";
import { describe, it } from "node:test";
import { CallTimeoutError, ConnectionLostError } from "../../src/chaos/errors.js";
import { encodeCommands, RespClient } from "../../src/chaos/resp-client.js";

/** A server that runs `onData` for each chunk it receives. */
async function server(onData: (socket: net.Socket, data: Buffer) => void): Promise<net.Server> {
  const s = net.createServer((socket) => {
    socket.on("error", () => undefined);
    socket.on("data", (d: Buffer) => onData(socket, d));
  });
  s.listen(0, "127.0.0.1");
  await once(s, "listening");
  return s;
}

const portOf = (s: net.Server) => (s.address() as net.AddressInfo).port;

describe("chaos RESP client", () => {
  it("encodes commands as multibulk requests", () => {
    assert.equal(
      encodeCommands([
        ["SET", "k", "é"],
        ["GET", "k"],
      ]).toString(),
      "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$2\r\né\r\n*2\r\n$3\r\nGET\r\n$1\r\nk\r\n",
    );
  });

  it("answers a pipeline with its replies in order, however they arrive", async () => {
    const s = await server((socket) => {
      const bytes = Buffer.from("+OK\r\n$5\r\nhello\r\n");
      for (let i = 0; i < bytes.length; i++) socket.write(bytes.subarray(i, i + 1));
    });
    const client = await RespClient.connect("127.0.0.1", portOf(s), 1_000);
    const replies = await client.call(
      [
        ["SET", "a", "b"],
        ["GET", "a"],
      ],
      5_000,
    );
    assert.deepEqual(replies, [
      { type: "status", text: "OK" },
      { type: "bulk", value: Buffer.from("hello") },
    ]);
    client.close();
    s.close();
  });

  it("closes the connection when a call times out or the server goes away", async () => {
    const silent = await server(() => undefined);
    const a = await RespClient.connect("127.0.0.1", portOf(silent), 1_000);
    await assert.rejects(a.call([["PING"]], 50), CallTimeoutError);
    assert.ok(a.closed);
    await assert.rejects(a.call([["PING"]], 50), CallTimeoutError);
    silent.close();

    const hangsUp = await server((socket) => socket.destroy());
    const b = await RespClient.connect("127.0.0.1", portOf(hangsUp), 1_000);
    await assert.rejects(b.call([["PING"]], 5_000), ConnectionLostError);
    assert.ok(b.closed);
    hangsUp.close();

    const extra = await server((socket) => socket.write("+OK\r\n+OK\r\n"));
    const c = await RespClient.connect("127.0.0.1", portOf(extra), 1_000);
    await c.call([["PING"]], 5_000).catch(() => undefined);
    // A reply no command asked for: the stream cannot be trusted any more.
    for (let i = 0; i < 100 && !c.closed; i++) await new Promise((r) => setTimeout(r, 10));
    assert.ok(c.closed);
    extra.close();
  });

  it("rejects a connection refused", async () => {
    const s = await server(() => undefined);
    const port = portOf(s);
    s.close();
    await once(s, "close");
    await assert.rejects(RespClient.connect("127.0.0.1", port, 1_000), ConnectionLostError);
  });
});
