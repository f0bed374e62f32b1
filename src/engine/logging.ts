/**
 * Structured JSON logs: raftkv's layers log through the small RaftLogger interface, and this adapts a
 * pino logger to it (pino takes the fields first, the message second).
 */
import { type Logger, pino } from "pino";
import type { RaftLogger } from "../raft/config.js";

export function fromPino(logger: Logger): RaftLogger {
  return {
    debug: (msg, fields) => logger.debug(fields ?? {}, msg),
    info: (msg, fields) => logger.info(fields ?? {}, msg),
    warn: (msg, fields) => logger.warn(fields ?? {}, msg),
  };
}

/** A JSON logger for one node: every line carries the node id. */
export function nodeLogger(
  nodeId: number,
  options: { level?: string; destination?: NodeJS.WritableStream } = {},
): RaftLogger {
  const base = pino(
    { level: options.level ?? "info", base: { node: nodeId } },
    options.destination ?? process.stdout,
  );
  return fromPino(base);
}
