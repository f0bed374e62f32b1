import { type ParseArgsConfig, parseArgs } from "node:util";

/** A command line (or config file) the operator must correct: printed with the usage, exit status 2. */
export class UsageError extends Error {
  override name = "UsageError";
}

/** A positive integer from a flag's text, or a UsageError naming the flag. */
export function positiveIntFlag(name: string, text: string): number {
  const n = /^\d{1,16}$/.test(text) ? Number(text) : Number.NaN;
  if (!Number.isSafeInteger(n) || n <= 0)
    throw new UsageError(`--${name} must be a positive integer, got ${JSON.stringify(text)}`);
  return n;
}

/** node:util's parseArgs, its refusals (unknown or malformed flags) as UsageErrors. */
export function parseArgsOrUsage<T extends ParseArgsConfig>(config: T): ReturnType<typeof parseArgs<T>> {
  try {
    return parseArgs(config);
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
}
