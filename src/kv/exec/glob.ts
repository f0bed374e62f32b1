/**
 * Redis's glob matching (stringmatchlen), byte for byte: `*`, `?`, `[abc]`, `[^a-z]`, and `\` to escape.
 * Used by KEYS, SCAN MATCH and CONFIG GET.
 */
export function globMatch(pattern: Uint8Array, subject: Uint8Array, nocase = false): boolean {
  return match(pattern, 0, subject, 0, nocase, 0, { giveUp: false });
}

const lower = (c: number) => (c >= 0x41 && c <= 0x5a ? c + 32 : c);

/**
 * `state.giveUp` is set once the rest of the pattern after a `*` matched nowhere in the rest of the
 * subject: an earlier `*` taking a longer piece cannot help then, so every pending `*` stops trying
 * (without it, `*a*a*a*b` against a long subject takes exponential time).
 */
function match(
  p: Uint8Array,
  pi: number,
  s: Uint8Array,
  si: number,
  nocase: boolean,
  depth: number,
  state: { giveUp: boolean },
): boolean {
  // Redis bounds the recursion the same way: a pathological pattern fails instead of blowing the stack.
  if (depth > 1000) return false;
  const eq = (a: number, b: number) => (nocase ? lower(a) === lower(b) : a === b);
  while (pi < p.length && si < s.length) {
    const c = p[pi]!;
    if (c === 0x2a) {
      while (pi + 1 < p.length && p[pi + 1] === 0x2a) pi++;
      if (pi + 1 === p.length) return true;
      for (let k = si; k < s.length; k++) {
        if (match(p, pi + 1, s, k, nocase, depth + 1, state)) return true;
        if (state.giveUp) return false;
      }
      state.giveUp = true;
      return false;
    }
    if (c === 0x3f) {
      pi++;
      si++;
      continue;
    }
    if (c === 0x5b) {
      pi++;
      const not = p[pi] === 0x5e;
      if (not) pi++;
      let matched = false;
      for (;;) {
        if (pi >= p.length) {
          pi--; // a malformed class: Redis treats the end as closing it
          break;
        }
        if (p[pi] === 0x5c && pi + 1 < p.length) {
          pi++;
          if (eq(p[pi]!, s[si]!)) matched = true;
        } else if (p[pi] === 0x5d) {
          break;
        } else if (pi + 2 < p.length && p[pi + 1] === 0x2d) {
          let start = p[pi]!;
          let end = p[pi + 2]!;
          let ch = s[si]!;
          if (start > end) [start, end] = [end, start];
          if (nocase) {
            start = lower(start);
            end = lower(end);
            ch = lower(ch);
          }
          pi += 2;
          if (ch >= start && ch <= end) matched = true;
        } else if (eq(p[pi]!, s[si]!)) {
          matched = true;
        }
        pi++;
      }
      if (not) matched = !matched;
      if (!matched) return false;
      pi++;
      si++;
      continue;
    }
    if (c === 0x5c && pi + 1 < p.length) pi++;
    if (!eq(p[pi]!, s[si]!)) return false;
    pi++;
    si++;
  }
  if (si === s.length) {
    while (pi < p.length && p[pi] === 0x2a) pi++;
  }
  return pi === p.length && si === s.length;
}
