/**
 * A well-behaved client (ioredis) running a workload whose every reply is known in advance, on keys of
 * its own, until stopped; and the state its keys must be in afterwards, through any node.
 */
import { isDeepStrictEqual } from "node:util";
import { Redis } from "ioredis";

const SLOTS = 10;

export class Workload {
  /** Rounds completed, every reply as expected. */
  rounds = 0;
  /** Replies that were not what they should be, and errors. */
  readonly problems: string[] = [];
  private running = true;
  private readonly done: Promise<void>;
  private readonly client: Redis;

  constructor(
    port: number,
    readonly tag: string,
  ) {
    // No silent reconnects or retries: a dropped connection is a problem to report.
    this.client = new Redis({ port, host: "127.0.0.1", maxRetriesPerRequest: 0, retryStrategy: () => null });
    this.client.on("error", (err: Error) => this.problems.push(`connection: ${err.message}`));
    this.done = this.run();
  }

  key(name: string | number): string {
    return `wl:${this.tag}:${name}`;
  }

  private async run(): Promise<void> {
    for (let i = 0; this.running && this.problems.length === 0; i++) {
      try {
        await this.round(i);
        if (this.problems.length === 0) this.rounds = i + 1;
      } catch (err) {
        this.problems.push(`round ${i}: ${(err as Error).message}`);
      }
    }
  }

  private expect(what: string, got: unknown, want: unknown): void {
    if (!isDeepStrictEqual(got, want))
      this.problems.push(`${what}: got ${JSON.stringify(got)}, want ${JSON.stringify(want)}`);
  }

  private async round(i: number): Promise<void> {
    const c = this.client;
    const slot = this.key(i % SLOTS);
    this.expect("SET", await c.set(slot, `v${i}`), "OK");
    this.expect("GET", await c.get(slot), `v${i}`);
    this.expect("INCR", await c.incr(this.key("count")), i + 1);
    this.expect("MSET", await c.mset(this.key("a"), `a${i}`, this.key("b"), `b${i}`), "OK");
    this.expect("MGET", await c.mget(this.key("a"), this.key("b")), [`a${i}`, `b${i}`]);
    this.expect("APPEND", await c.append(this.key("log"), "x"), i + 1);
    const piped = await c.pipeline().incr(this.key("piped")).get(this.key("piped")).exec();
    this.expect("pipeline", piped, [
      [null, i + 1],
      [null, String(i + 1)],
    ]);
  }

  /** Stops after the round in progress. */
  async stop(): Promise<void> {
    this.running = false;
    await this.done;
    this.client.disconnect();
  }

  /** Every key this workload wrote, with the value it must hold after `rounds` rounds. */
  expectedState(): Map<string, string> {
    const out = new Map<string, string>();
    const last = this.rounds - 1;
    if (this.rounds === 0) return out;
    for (let i = Math.max(0, this.rounds - SLOTS); i <= last; i++) out.set(this.key(i % SLOTS), `v${i}`);
    out.set(this.key("count"), String(this.rounds));
    out.set(this.key("a"), `a${last}`);
    out.set(this.key("b"), `b${last}`);
    out.set(this.key("log"), "x".repeat(this.rounds));
    out.set(this.key("piped"), String(this.rounds));
    return out;
  }
}
