import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { globMatch } from "../../src/kv/exec/glob.js";

const m = (p: string, s: string, nocase = false) => globMatch(Buffer.from(p), Buffer.from(s), nocase);

describe("glob matching (Redis's stringmatchlen)", () => {
  it("matches as Redis does", () => {
    assert.ok(m("*", ""));
    assert.ok(m("h?llo", "hello"));
    assert.ok(!m("h?llo", "hllo"));
    assert.ok(m("h*llo", "heeeello"));
    assert.ok(m("h[ae]llo", "hallo"));
    assert.ok(!m("h[^e]llo", "hello"));
    assert.ok(m("h[a-b]llo", "hbllo"));
    assert.ok(m("h[b-a]llo", "hbllo"), "a reversed range still matches");
    assert.ok(m("h\\*llo", "h*llo"));
    assert.ok(!m("h\\*llo", "hello"));
    assert.ok(m("HELLO", "hello", true));
    assert.ok(!m("HELLO", "hello"));
    assert.ok(m("a[b", "ab"), "an unterminated class closes at the end of the pattern");
    assert.ok(!m("a[", "a") && !m("a[", "ab"), "an empty unterminated class matches nothing");
  });

  it("a pattern of many stars against a long subject that does not match ends at once (no exponential backtracking)", () => {
    const subject = "a".repeat(300);
    assert.equal(m("*a*a*a*a*a*b", subject), false);
    assert.equal(m("*a*a*a*a*a*a", subject), true);
    assert.equal(m(`${"*a".repeat(40)}*b`, "a".repeat(2000)), false);
  });
});
