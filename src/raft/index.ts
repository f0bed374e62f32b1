/**
 * raftkv/raft: a deterministic Raft state machine with no I/O, timers or randomness of its own.
 * Drive it with RawNode: tick, step, propose; then handle each Ready and advance.
 */

export { ConfChangeDecodeError, decodeConfChange, encodeConfChange } from "./confchange/codec.js";
export type { RaftLogger, RaftOptions } from "./config.js";
export { RAFT_DEFAULTS, silentLogger } from "./config.js";
export { ENTRY_OVERHEAD_BYTES, entriesBytes } from "./entries.js";
export * from "./errors.js";
export { type RandomSource, SeededRandom } from "./rand.js";
export { RawNode, type Ready } from "./raw-node.js";
export type { ReadOnlyOption } from "./read-only.js";
export type { PeerProgress, Status } from "./status.js";
export { MemoryStorage, type Storage } from "./storage.js";
export * from "./types.js";
