/**
 * What a command answers, independent of the wire protocol (the Redis front door writes it as RESP2 or
 * RESP3). Results of applied commands travel back to the proposer in this form.
 */
export type Reply =
  | { readonly k: "status"; readonly v: string }
  | { readonly k: "error"; readonly v: string }
  | { readonly k: "int"; readonly v: number | bigint }
  | { readonly k: "bulk"; readonly v: Buffer }
  | { readonly k: "nil" }
  /** A null where an array was expected: an EXEC whose watched keys changed (RESP2 `*-1`, RESP3 `_`). */
  | { readonly k: "nilArray" }
  | { readonly k: "array"; readonly v: readonly Reply[] }
  /** RESP3 set (unordered, no duplicates); an array to a RESP2 client. */
  | { readonly k: "set"; readonly v: readonly Reply[] }
  /** Members with their scores: RESP3 an array of [member, score] pairs, RESP2 one flat array. */
  | { readonly k: "scored"; readonly v: ReadonlyArray<readonly [Reply, Reply]> }
  /** RESP3 map; a flat array of keys and values to a RESP2 client. */
  | { readonly k: "map"; readonly v: ReadonlyArray<readonly [Reply, Reply]> }
  | { readonly k: "double"; readonly v: string };

export const OK: Reply = { k: "status", v: "OK" };
export const NIL: Reply = { k: "nil" };
export const NIL_ARRAY: Reply = { k: "nilArray" };
export const status = (v: string): Reply => ({ k: "status", v });
export const int = (v: number | bigint): Reply => ({ k: "int", v });
export const bulk = (v: Buffer): Reply => ({ k: "bulk", v });
export const array = (v: readonly Reply[]): Reply => ({ k: "array", v });
export const error = (v: string): Reply => ({ k: "error", v });

/** Redis's error replies, worded exactly as Redis words them (clients and test suites match on them). */
export const Errors = {
  syntax: error("ERR syntax error"),
  notInteger: error("ERR value is not an integer or out of range"),
  notFloat: error("ERR value is not a valid float"),
  wrongType: error("WRONGTYPE Operation against a key holding the wrong kind of value"),
  noSuchKey: error("ERR no such key"),
  overflow: error("ERR increment or decrement would overflow"),
  tooLarge: error("ERR string exceeds maximum allowed size (proto-max-bulk-len)"),
  offsetRange: error("ERR offset is out of range"),
  incrNanOrInf: error("ERR increment would produce NaN or Infinity"),
  invalidExpire: (command: string): Reply => error(`ERR invalid expire time in '${command}' command`),
  wrongArity: (command: string): Reply => error(`ERR wrong number of arguments for '${command}' command`),
  keyTooLong: (max: number): Reply => error(`ERR key is too long (at most ${max} bytes)`),
} as const;
