/** A logger for tests that records every line; `waitFor` resolves on the first match, past or future. */
import type { RaftLogger } from "../../src/raft/config.js";

export interface LogLine {
  level: "debug" | "info" | "warn";
  msg: string;
  fields: Record<string, unknown>;
}

export class CapturingLogger implements RaftLogger {
  readonly lines: LogLine[] = [];
  private waiters: { match: (l: LogLine) => boolean; resolve: (l: LogLine) => void }[] = [];
  debug(msg: string, fields: Record<string, unknown> = {}): void {
    this.add({ level: "debug", msg, fields });
  }
  info(msg: string, fields: Record<string, unknown> = {}): void {
    this.add({ level: "info", msg, fields });
  }
  warn(msg: string, fields: Record<string, unknown> = {}): void {
    this.add({ level: "warn", msg, fields });
  }
  private add(line: LogLine): void {
    this.lines.push(line);
    const still: typeof this.waiters = [];
    for (const w of this.waiters) {
      if (w.match(line)) w.resolve(line);
      else still.push(w);
    }
    this.waiters = still;
  }
  waitFor(msg: string, where: (f: Record<string, unknown>) => boolean = () => true): Promise<LogLine> {
    const match = (l: LogLine) => l.msg === msg && where(l.fields);
    const seen = this.lines.find(match);
    if (seen !== undefined) return Promise.resolve(seen);
    return new Promise((resolve) => this.waiters.push({ match, resolve }));
  }
  find(msg: string, where: (f: Record<string, unknown>) => boolean = () => true): LogLine | undefined {
    return this.lines.find((l) => l.msg === msg && where(l.fields));
  }
}
