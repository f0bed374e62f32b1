/**
 * The cluster's address book: each member's raft (gRPC) address, kept in the replicated state so that
 * every member learns a new node's address, keeps it across restarts, and finds it in a snapshot when it
 * catches up from one (the membership change that carried it may be compacted away).
 *
 * A membership change carries the addresses it introduces in its context, encoded here:
 *
 *   u8 version = 1   u16 count   count × (u64 node id   u16 address length   address, UTF-8)
 *
 * Applying a change sets those addresses for nodes that are members afterwards and drops the addresses
 * of nodes that no longer are.
 */
import type { ConfState, NodeId } from "../raft/types.js";

/** The longest address accepted ("host:port"; a DNS name is at most 253 bytes). */
export const MAX_ADDRESS_BYTES = 255;
/** No cluster has more members than this; a larger book is not one this code wrote. */
export const MAX_ADDRESS_BOOK_MEMBERS = 1024;

const CONTEXT_VERSION = 1;

/**
 * Why `address` is not a usable host:port (null if it is): a non-empty host without spaces or commas,
 * and a port from 1 to 65535 (or 0, "any free port", for an address to listen on when `listen`).
 */
export function addressProblem(address: string, listen = false): string | null {
  if (Buffer.byteLength(address, "utf8") > MAX_ADDRESS_BYTES)
    return `an address is at most ${MAX_ADDRESS_BYTES} bytes`;
  const colon = address.lastIndexOf(":");
  if (colon <= 0) return `expected host:port, got ${JSON.stringify(address)}`;
  const host = address.slice(0, colon);
  const port = address.slice(colon + 1);
  if (/[\s,]/.test(host)) return `the host of ${JSON.stringify(address)} has a space or comma`;
  const lowest = listen ? 0 : 1;
  if (!/^\d{1,5}$/.test(port) || Number(port) < lowest || Number(port) > 65535)
    return `the port of ${JSON.stringify(address)} is not ${lowest} to 65535`;
  return null;
}

/** The context of a membership change that introduces these addresses. */
export function encodeAddressContext(addresses: ReadonlyMap<NodeId, string>): Uint8Array {
  if (addresses.size > MAX_ADDRESS_BOOK_MEMBERS)
    throw new RangeError(`at most ${MAX_ADDRESS_BOOK_MEMBERS} addresses in one change`);
  const parts: Buffer[] = [Buffer.from([CONTEXT_VERSION, addresses.size >> 8, addresses.size & 0xff])];
  for (const [id, address] of addresses) {
    const problem = addressProblem(address);
    if (problem !== null) throw new RangeError(problem);
    if (!Number.isSafeInteger(id) || id <= 0) throw new RangeError(`bad node id ${id}`);
    const bytes = Buffer.from(address, "utf8");
    const head = Buffer.allocUnsafe(10);
    head.writeBigUInt64BE(BigInt(id), 0);
    head.writeUInt16BE(bytes.length, 8);
    parts.push(head, bytes);
  }
  return Buffer.concat(parts);
}

/**
 * The addresses a change's context introduces; null if the context is not one `encodeAddressContext`
 * wrote. Never throws: it runs while a change is applied, where a throw would stop every replica.
 */
export function decodeAddressContext(context: Uint8Array): Map<NodeId, string> | null {
  const data = Buffer.from(context.buffer, context.byteOffset, context.byteLength);
  if (data.length < 3 || data[0] !== CONTEXT_VERSION) return null;
  const count = data.readUInt16BE(1);
  if (count > MAX_ADDRESS_BOOK_MEMBERS) return null;
  const out = new Map<NodeId, string>();
  let p = 3;
  for (let i = 0; i < count; i++) {
    if (p + 10 > data.length) return null;
    const id = data.readBigUInt64BE(p);
    const len = data.readUInt16BE(p + 8);
    if (id === 0n || id > BigInt(Number.MAX_SAFE_INTEGER) || len === 0 || p + 10 + len > data.length)
      return null;
    const address = data.toString("utf8", p + 10, p + 10 + len);
    if (addressProblem(address) !== null) return null;
    out.set(Number(id), address);
    p += 10 + len;
  }
  return p === data.length ? out : null;
}

/** Every node a configuration names (voters, learners, and both sides of a joint one). */
export function membersOf(cs: ConfState): Set<NodeId> {
  return new Set([...cs.voters, ...cs.learners, ...cs.votersOutgoing, ...cs.learnersNext]);
}

/**
 * The book after a membership change: `introduced` addresses set for members, and every node that is
 * not a member any more dropped.
 */
export function bookAfterChange(
  book: ReadonlyMap<NodeId, string>,
  introduced: ReadonlyMap<NodeId, string>,
  confState: ConfState,
): Map<NodeId, string> {
  const members = membersOf(confState);
  const next = new Map<NodeId, string>();
  for (const [id, address] of book) if (members.has(id)) next.set(id, address);
  for (const [id, address] of introduced) if (members.has(id)) next.set(id, address);
  return new Map([...next].sort((a, b) => a[0] - b[0]));
}
