/**
 * A TCP proxy for one directed raft link (node A's connections to node B's gRPC address), so that the
 * nemesis can cut exactly that link. Two ways to cut it:
 *
 * - `refuse`: every connection through it is closed and new ones are closed as they arrive, as when a
 *   host is unreachable and the peer's kernel answers at once. Senders fail fast.
 * - `stall`: nothing moves in either direction; connections stay open and new ones are accepted but not
 *   passed on, as when packets are silently dropped. Bytes wait (TCP backpressure) and flow again when
 *   the link is restored, late, as after a real partition heals; a sender notices only by its own
 *   timeouts and keepalives. Bytes are never dropped from the middle of a stream: TCP would not.
 */
import * as net from "node:net";

export type CutMode = "refuse" | "stall";

export class LinkProxy {
  private mode: "open" | CutMode = "open";
  private readonly connections = new Set<ProxiedConnection>();

  private constructor(
    private readonly server: net.Server,
    readonly port: number,
    readonly targetPort: number,
  ) {
    server.on("connection", (socket) => this.accept(socket));
  }

  /** Listens on a free loopback port and passes connections on to 127.0.0.1:`targetPort`. */
  static open(targetPort: number): Promise<LinkProxy> {
    return new Promise((resolve, reject) => {
      const server = net.createServer({ pauseOnConnect: true });
      server.once("error", reject);
      server.listen(0, "127.0.0.1", () => {
        server.removeListener("error", reject);
        server.on("error", () => undefined); // a failed accept must not stop the run
        resolve(new LinkProxy(server, (server.address() as net.AddressInfo).port, targetPort));
      });
    });
  }

  get state(): "open" | CutMode {
    return this.mode;
  }

  cut(mode: CutMode): void {
    this.mode = mode;
    for (const c of [...this.connections]) {
      if (mode === "refuse") c.destroy();
      else c.stall();
    }
  }

  restore(): void {
    this.mode = "open";
    for (const c of this.connections) c.flow();
  }

  /** Stops listening and closes every connection. */
  close(): Promise<void> {
    for (const c of [...this.connections]) c.destroy();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  private accept(socket: net.Socket): void {
    if (this.mode === "refuse") {
      socket.destroy();
      return;
    }
    const c = new ProxiedConnection(socket, this.targetPort, () => this.connections.delete(c));
    this.connections.add(c);
    if (this.mode === "open") c.flow();
  }
}

/** One client connection and its upstream twin. Paused until `flow()`. */
class ProxiedConnection {
  private upstream: net.Socket | null = null;
  private connected = false;
  private stalled = true;
  private done = false;
  /** Per direction: the reader is paused because the writer's buffer is full. */
  private clientBlocked = false;
  private upstreamBlocked = false;

  constructor(
    private readonly client: net.Socket,
    private readonly targetPort: number,
    private readonly onDone: () => void,
  ) {
    client.on("error", () => this.destroy());
    client.on("close", () => this.destroy());
  }

  flow(): void {
    if (this.done) return;
    this.stalled = false;
    if (this.upstream === null) {
      this.connectUpstream();
      return;
    }
    if (!this.connected) return;
    if (!this.clientBlocked) this.client.resume();
    if (!this.upstreamBlocked) this.upstream.resume();
  }

  stall(): void {
    this.stalled = true;
    this.client.pause();
    this.upstream?.pause();
  }

  destroy(): void {
    if (this.done) return;
    this.done = true;
    this.client.destroy();
    this.upstream?.destroy();
    this.onDone();
  }

  private connectUpstream(): void {
    const up = net.connect(this.targetPort, "127.0.0.1");
    this.upstream = up;
    up.setNoDelay(true);
    this.client.setNoDelay(true);
    up.on("error", () => this.destroy());
    up.on("close", () => this.destroy());
    up.once("connect", () => {
      if (this.done) return;
      this.connected = true;
      this.client.on("data", (chunk: Buffer) => {
        if (!up.write(chunk)) {
          this.clientBlocked = true;
          this.client.pause();
        }
      });
      up.on("drain", () => {
        this.clientBlocked = false;
        if (!this.stalled) this.client.resume();
      });
      up.on("data", (chunk: Buffer) => {
        if (!this.client.write(chunk)) {
          this.upstreamBlocked = true;
          up.pause();
        }
      });
      this.client.on("drain", () => {
        this.upstreamBlocked = false;
        if (!this.stalled) up.resume();
      });
      if (this.stalled) up.pause();
      else this.client.resume();
    });
  }
}
