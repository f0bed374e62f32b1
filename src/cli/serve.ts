/** `raftkv serve`: one node, from flags and an optional config file, until SIGINT or SIGTERM. */
import { pino } from "pino";
import { fromPino } from "../engine/logging.js";
import { RaftkvNode } from "../server/node.js";
import { nodeConfigFrom, serveSettings } from "./serve-config.js";

export async function serve(argv: readonly string[]): Promise<void> {
  const config = nodeConfigFrom(serveSettings(argv));
  const log = pino({ base: { node: config.id } });
  const node = await RaftkvNode.start({ ...config, logger: fromPino(log) });
  log.info(
    {
      redis: `${config.redisListen.replace(/:\d+$/, "")}:${node.redis.port}`,
      raft: config.raftListen ?? config.peers.get(config.id),
      ...(node.metrics
        ? { metrics: `${config.metricsListen?.replace(/:\d+$/, "")}:${node.metrics.port}` }
        : {}),
      join: config.join === true,
    },
    "raftkv node serving",
  );
  await new Promise<void>((resolve) => {
    const stop = () => resolve();
    process.once("SIGINT", stop);
    process.once("SIGTERM", stop);
  });
  log.info("stopping");
  await node.close();
}
