/**
 * How a write travels through raft: the proposing node's clock reading (every replica judges expiry and turns
 * relative TTLs into absolute times with it, so they all agree), then one or more commands (more than
 * one for MULTI/EXEC, applied atomically), each as its Redis arguments.
 *
 *   u8 version = 1   u64 now (ms since the epoch)   u32 origin node   u64 origin sequence   u32 commands
 *   per command: u32 arguments, then per argument: u32 length, bytes
 *
 * The origin names the node that proposed it and its own sequence number (node 0: none), so that a
 * follower that forwarded a write recognises the entry when it applies it.
 *
 * Decoding gives views into the entry's bytes: no argument is copied on its way to the store.
 */
import { KvError } from "./errors.js";

const VERSION = 1;

export interface KvOrigin {
  readonly node: number;
  readonly seq: number;
}

const HEADER_BYTES = 1 + 8 + 4 + 8 + 4;

export interface KvEntry {
  readonly nowMs: number;
  readonly origin: KvOrigin | null;
  readonly commands: readonly (readonly Buffer[])[];
}

export function encodeKvEntry(
  nowMs: number,
  commands: readonly (readonly Uint8Array[])[],
  origin: KvOrigin | null = null,
): Buffer {
  let size = HEADER_BYTES;
  for (const args of commands) {
    size += 4;
    for (const a of args) size += 4 + a.length;
  }
  const out = Buffer.allocUnsafe(size);
  out[0] = VERSION;
  out.writeBigUInt64BE(BigInt(nowMs), 1);
  out.writeUInt32BE(origin?.node ?? 0, 9);
  out.writeBigUInt64BE(BigInt(origin?.seq ?? 0), 13);
  out.writeUInt32BE(commands.length, 21);
  let at = HEADER_BYTES;
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
  if (b[0] !== VERSION) throw new KvError(`a key-value entry of version ${b[0]}, expected ${VERSION}`);
  const nowMs = Number(b.readBigUInt64BE(1));
  const originNode = b.readUInt32BE(9);
  const origin = originNode === 0 ? null : { node: originNode, seq: Number(b.readBigUInt64BE(13)) };
  const count = b.readUInt32BE(21);
  let at = HEADER_BYTES;
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
  return { nowMs, origin, commands };
}
