import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { type Protocol, ReplyWriter } from "../../../src/api/redis/resp/reply-writer.js";
import { writeReply } from "../../../src/api/redis/write-reply.js";

function written(protocol: Protocol, write: (w: ReplyWriter) => void): string {
  const w = new ReplyWriter();
  w.protocol = protocol;
  write(w);
  return Buffer.concat(w.take()).toString("latin1");
}

describe("RESP reply writer", () => {
  it("writes member-score pairs as Redis 7.0 does: nested pairs of a double in RESP3, one flat array in RESP2", () => {
    const scored = {
      k: "scored",
      v: [
        [
          { k: "bulk", v: Buffer.from("a") },
          { k: "double", v: "1.5" },
        ],
        [
          { k: "bulk", v: Buffer.from("b") },
          { k: "double", v: "inf" },
        ],
      ],
    } as const;
    assert.equal(
      written(3, (w) => writeReply(w, scored)),
      "*2\r\n*2\r\n$1\r\na\r\n,1.5\r\n*2\r\n$1\r\nb\r\n,inf\r\n",
    );
    assert.equal(
      written(2, (w) => writeReply(w, scored)),
      "*4\r\n$1\r\na\r\n$3\r\n1.5\r\n$1\r\nb\r\n$3\r\ninf\r\n",
    );
  });

  it("writes the types both protocols share identically", () => {
    for (const p of [2, 3] as const) {
      assert.equal(
        written(p, (w) => {
          w.simple("OK");
          w.error("ERR syntax error");
          w.integer(-42);
          w.integer(9007199254740993n);
          w.bulk("héllo");
          w.bulk(Buffer.from([0, 13, 10]));
          w.array(2);
          w.bulk("");
          w.integer(0);
        }),
        "+OK\r\n-ERR syntax error\r\n:-42\r\n:9007199254740993\r\n$6\r\nh\xc3\xa9llo\r\n$3\r\n\x00\r\n\r\n*2\r\n$0\r\n\r\n:0\r\n",
      );
    }
  });

  it("writes RESP3 types the way Redis writes them to a RESP2 client", () => {
    const all = (w: ReplyWriter) => {
      w.nullBulk();
      w.nullArray();
      w.map(1);
      w.bulk("k");
      w.integer(1);
      w.set(1);
      w.bulk("m");
      w.double("1.5");
      w.boolean(true);
      w.boolean(false);
      w.verbatim("hi");
      w.push(1);
      w.bulk("p");
    };
    assert.equal(
      written(2, all),
      "$-1\r\n*-1\r\n*2\r\n$1\r\nk\r\n:1\r\n*1\r\n$1\r\nm\r\n$3\r\n1.5\r\n:1\r\n:0\r\n$2\r\nhi\r\n*1\r\n$1\r\np\r\n",
    );
    assert.equal(
      written(3, all),
      "_\r\n_\r\n%1\r\n$1\r\nk\r\n:1\r\n~1\r\n$1\r\nm\r\n,1.5\r\n#t\r\n#f\r\n=6\r\ntxt:hi\r\n>1\r\n$1\r\np\r\n",
    );
  });

  it("a CR or LF in a status or error line becomes a space (it would end the line)", () => {
    assert.equal(
      written(2, (w) => w.error("ERR bad\r\nthing")),
      "-ERR bad  thing\r\n",
    );
  });

  it("a status or error line goes out as the bytes it was made of: client bytes as sent, our Unicode as UTF-8", () => {
    // Client bytes are held one char per byte (latin1): a UTF-8 'é' from a client is "\xc3\xa9".
    const fromClient = Buffer.from("é\x80", "utf8").toString("latin1");
    assert.equal(
      written(2, (w) => w.error(`ERR unknown command '${fromClient}'`)),
      "-ERR unknown command '\xc3\xa9\xc2\x80'\r\n",
    );
    assert.equal(
      written(2, (w) => w.simple("\xff")),
      "+\xff\r\n",
    );
    assert.equal(
      written(2, (w) => w.error("ERR internal error: ✗")),
      "-ERR internal error: \xe2\x9c\x97\r\n",
    );
  });

  it("large values and many replies come out whole and in order; pending bytes are counted", () => {
    const w = new ReplyWriter();
    const big = Buffer.alloc(100_000, 7);
    let expected = "";
    for (let i = 0; i < 3000; i++) {
      w.integer(i);
      expected += `:${i}\r\n`;
    }
    w.bulk(big);
    w.bulk("x".repeat(40_000));
    expected += `$100000\r\n${big.toString("latin1")}\r\n$40000\r\n${"x".repeat(40_000)}\r\n`;
    assert.equal(w.pendingBytes, expected.length);
    const out = w.take();
    assert.ok(out.includes(big), "the large value is handed over without a copy");
    assert.equal(Buffer.concat(out).toString("latin1"), expected);
    assert.equal(w.pendingBytes, 0);
    assert.deepEqual(w.take(), []);
  });
});
