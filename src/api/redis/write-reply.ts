/** Writes a command's protocol-independent Reply in the connection's protocol. */
import type { Reply } from "../../kv/reply.js";
import type { ReplyWriter } from "./resp/reply-writer.js";

export function writeReply(w: ReplyWriter, r: Reply): void {
  switch (r.k) {
    case "status":
      w.simple(r.v);
      return;
    case "error":
      w.error(r.v);
      return;
    case "int":
      w.integer(r.v);
      return;
    case "bulk":
      w.bulk(r.v);
      return;
    case "nil":
      w.nullBulk();
      return;
    case "nilArray":
      w.nullArray();
      return;
    case "double":
      w.double(r.v);
      return;
    case "map":
      w.map(r.v.length);
      for (const [k, v] of r.v) {
        writeReply(w, k);
        writeReply(w, v);
      }
      return;
    case "array":
      w.array(r.v.length);
      for (const x of r.v) writeReply(w, x);
      return;
    case "scored": {
      // RESP3: an array of [member, score] pairs; RESP2: one flat array.
      const pairs = w.protocol === 3;
      w.array(pairs ? r.v.length : 2 * r.v.length);
      for (const [m, s] of r.v) {
        if (pairs) w.array(2);
        writeReply(w, m);
        writeReply(w, s);
      }
      return;
    }
    case "set":
      w.set(r.v.length);
      for (const x of r.v) writeReply(w, x);
      return;
  }
}
