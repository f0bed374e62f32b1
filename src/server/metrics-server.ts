/**
 * The node's Prometheus endpoint: `GET /metrics` answers the registry's text exposition (the engine's
 * raftkv_* metrics and the process's own); anything else is a 404. Plain HTTP, as Prometheus scrapes.
 */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import type { Registry } from "prom-client";

export class MetricsServer {
  private constructor(private readonly server: Server) {}

  /** Listens on `listen` (host:port; port 0 picks a free one). */
  static async start(listen: string, registry: Registry): Promise<MetricsServer> {
    const m = /^(.*):(\d+)$/.exec(listen);
    if (!m) throw new RangeError(`a metrics address is host:port, not ${JSON.stringify(listen)}`);
    const server = createServer((req, res) => {
      if (req.method !== "GET" || (req.url ?? "").split("?")[0] !== "/metrics") {
        res.writeHead(404, { "content-type": "text/plain" }).end("not found: metrics are at GET /metrics\n");
        return;
      }
      registry.metrics().then(
        (text) => res.writeHead(200, { "content-type": registry.contentType }).end(text),
        (err: unknown) => res.writeHead(500, { "content-type": "text/plain" }).end(`${String(err)}\n`),
      );
    });
    // A scrape that stalls must not hold a socket for ever.
    server.requestTimeout = 10_000;
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(Number(m[2]), m[1]!.replace(/^\[(.*)\]$/, "$1"), () => {
        server.off("error", reject);
        resolve();
      });
    });
    return new MetricsServer(server);
  }

  get port(): number {
    return (this.server.address() as AddressInfo).port;
  }

  close(): Promise<void> {
    return new Promise<void>((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
  }
}
