import { RaftError } from "../errors.js";
import type { ConfChange, ConfChangeSingle, ConfChangeTransition, ConfChangeType } from "../types.js";

/**
 * The bytes of a ConfChange entry. Versioned and compact:
 *   u8 version(1) | u8 transition | u16 count | count × (u8 type | u32 id-high | u32 id-low) |
 *   u32 context length | context
 */
const VERSION = 1;
const TRANSITIONS: readonly ConfChangeTransition[] = ["auto", "implicit", "explicit"];
const TYPES: readonly ConfChangeType[] = ["addVoter", "removeNode", "addLearner"];
/** No real change lists more nodes than this; a larger count means the bytes are not a ConfChange. */
export const MAX_CONF_CHANGES = 1024;
export const MAX_CONF_CHANGE_CONTEXT_BYTES = 64 * 1024;

export class ConfChangeDecodeError extends RaftError {
  override name = "ConfChangeDecodeError";
}

export function encodeConfChange(cc: ConfChange): Uint8Array {
  if (cc.changes.length > MAX_CONF_CHANGES)
    throw new RangeError(`at most ${MAX_CONF_CHANGES} changes at once`);
  const ctx = cc.context ?? new Uint8Array(0);
  if (ctx.byteLength > MAX_CONF_CHANGE_CONTEXT_BYTES) {
    throw new RangeError(`conf change context is limited to ${MAX_CONF_CHANGE_CONTEXT_BYTES} bytes`);
  }
  const out = new Uint8Array(4 + cc.changes.length * 9 + 4 + ctx.byteLength);
  const view = new DataView(out.buffer);
  view.setUint8(0, VERSION);
  view.setUint8(1, TRANSITIONS.indexOf(cc.transition));
  view.setUint16(2, cc.changes.length);
  let o = 4;
  for (const c of cc.changes) {
    if (!Number.isSafeInteger(c.nodeId) || c.nodeId < 0) throw new RangeError(`bad node id ${c.nodeId}`);
    view.setUint8(o, TYPES.indexOf(c.type));
    view.setUint32(o + 1, Math.floor(c.nodeId / 0x1_0000_0000));
    view.setUint32(o + 5, c.nodeId >>> 0);
    o += 9;
  }
  view.setUint32(o, ctx.byteLength);
  out.set(ctx, o + 4);
  return out;
}

export function decodeConfChange(data: Uint8Array): ConfChange {
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const need = (n: number, at: number) => {
    if (at + n > data.byteLength) throw new ConfChangeDecodeError(`conf change truncated at byte ${at}`);
  };
  need(4, 0);
  if (view.getUint8(0) !== VERSION)
    throw new ConfChangeDecodeError(`unknown conf change version ${view.getUint8(0)}`);
  const transition = TRANSITIONS[view.getUint8(1)];
  if (!transition) throw new ConfChangeDecodeError(`unknown transition ${view.getUint8(1)}`);
  const count = view.getUint16(2);
  if (count > MAX_CONF_CHANGES) throw new ConfChangeDecodeError(`too many changes: ${count}`);
  const changes: ConfChangeSingle[] = [];
  let o = 4;
  for (let i = 0; i < count; i++) {
    need(9, o);
    const type = TYPES[view.getUint8(o)];
    if (!type) throw new ConfChangeDecodeError(`unknown change type ${view.getUint8(o)}`);
    const nodeId = view.getUint32(o + 1) * 0x1_0000_0000 + view.getUint32(o + 5);
    // The encoder only writes safe integers; anything larger would be silently rounded to another id.
    if (!Number.isSafeInteger(nodeId))
      throw new ConfChangeDecodeError(`node id out of range at byte ${o + 1}`);
    changes.push({ type, nodeId });
    o += 9;
  }
  need(4, o);
  const ctxLen = view.getUint32(o);
  if (ctxLen > MAX_CONF_CHANGE_CONTEXT_BYTES) throw new ConfChangeDecodeError(`context too long: ${ctxLen}`);
  need(ctxLen, o + 4);
  if (o + 4 + ctxLen !== data.byteLength) throw new ConfChangeDecodeError("trailing bytes after conf change");
  const context = data.subarray(o + 4, o + 4 + ctxLen);
  return ctxLen > 0 ? { transition, changes, context } : { transition, changes };
}
