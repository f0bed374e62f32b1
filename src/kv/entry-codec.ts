/**
 * How a write travels through raft: the proposing node's clock reading (every replica judges expiry and turns
 * relative TTLs into absolute times with it, so they all agree), the keys a MULTI/EXEC watched, then
 * one or more commands (more than one for MULTI/EXEC, applied atomically), each as its Redis arguments.
 *
 *   u8 version = 2   u64 now (ms since the epoch)   u32 origin node   u64 origin sequence
 *   u32 watched keys; per key: u32 length, bytes, u64 version seen (0: absent), u64 index seen at
 *   u32 commands; per command: u32 arguments, then per argument: u32 length, bytes
 *
 * The origin names the node that proposed it and its own sequence number (node 0: none), so that a
 * follower that forwarded a write recognises the entry when it applies it. Version 1 (no watched
 * keys) is still read: a log written before WATCH existed replays.
 *
 * Decoding gives views into the entry's bytes: no argument is copied on its way to the store.
 */
import { KvError } from "./errors.js";
import { readU64, writeU64 } from "./u64.js";
import type { WatchedKey } from "./watch.js";

const VERSION = 2;
const VERSION_WITHOUT_WATCHES = 1;

export interface KvOrigin {
  readonly node: number;
  readonly seq: number;
}

const HEADER_BYTES = 1 + 8 + 4 + 8;

export interface KvEntry {
  readonly nowMs: number;
  readonly origin: KvOrigin | null;
  /** The keys the transaction watched: if one changed since, nothing runs. */
  readonly watches: readonly WatchedKey[];
  readonly commands: readonly (readonly Buffer[])[];
}

export function encodeKvEntry(
  nowMs: number,
  commands: readonly (readonly Uint8Array[])[],
  origin: KvOrigin | null = null,
  watches: readonly WatchedKey[] = [],
): Buffer {
  let size = HEADER_BYTES + 4 + 4;
  for (const w of watches) size += 4 + w.key.length + 16;
  for (const args of commands) {
    size += 4;
    for (const a of args) size += 4 + a.length;
  }
  const out = Buffer.allocUnsafe(size);
  out[0] = VERSION;
  writeU64(out, nowMs, 1);
  out.writeUInt32BE(origin?.node ?? 0, 9);
  writeU64(out, origin?.seq ?? 0, 13);
  let at = HEADER_BYTES;
  out.writeUInt32BE(watches.length, at);
  at += 4;
  for (const w of watches) {
    out.writeUInt32BE(w.key.length, at);
    out.set(w.key, at + 4);
    at += 4 + w.key.length;
    writeU64(out, w.version, at);
    writeU64(out, w.seenAt, at + 8);
    at += 16;
  }
  out.writeUInt32BE(commands.length, at);
  at += 4;
  for (const args of commands) {
    out.writeUInt32BE(args.length, at);
    at += 4;
    for (const a of args) {
      out.writeUInt32BE(a.length, at);
      out.set(a, at + 4);
      at += 4 + a.length;
    }
  }
  return out;
}

export function decodeKvEntry(data: Uint8Array): KvEntry {
  const b = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  const need = (at: number, n: number) => {
    if (at + n > b.length) throw new KvError(`a key-value entry of ${b.length} bytes ends early, at ${at}`);
  };
  need(0, HEADER_BYTES);
  const version = b[0];
  if (version !== VERSION && version !== VERSION_WITHOUT_WATCHES)
    throw new KvError(`a key-value entry of version ${version}, expected ${VERSION}`);
  const nowMs = readU64(b, 1);
  const originNode = b.readUInt32BE(9);
  const origin = originNode === 0 ? null : { node: originNode, seq: readU64(b, 13) };
  let at = HEADER_BYTES;
  const watches: WatchedKey[] = [];
  if (version === VERSION) {
    need(at, 4);
    const count = b.readUInt32BE(at);
    at += 4;
    for (let i = 0; i < count; i++) {
      need(at, 4);
      const len = b.readUInt32BE(at);
      need(at + 4, len + 16);
      const key = b.subarray(at + 4, at + 4 + len);
      at += 4 + len;
      watches.push({
        key,
        version: readU64(b, at),
        seenAt: readU64(b, at + 8),
      });
      at += 16;
    }
  }
  need(at, 4);
  const count = b.readUInt32BE(at);
  at += 4;
  const commands: Buffer[][] = [];
  for (let c = 0; c < count; c++) {
    need(at, 4);
    const argc = b.readUInt32BE(at);
    at += 4;
    const args: Buffer[] = [];
    for (let i = 0; i < argc; i++) {
      need(at, 4);
      const len = b.readUInt32BE(at);
      need(at + 4, len);
      args.push(b.subarray(at + 4, at + 4 + len));
      at += 4 + len;
    }
    commands.push(args);
  }
  if (at !== b.length) throw new KvError(`a key-value entry has ${b.length - at} bytes after its commands`);
  return { nowMs, origin, watches, commands };
}
