/**
 * The simulator's state machine: a small in-memory key-value store with put, delete, compare-and-set
 * and append, whose commands travel through raft as JSON. (The LMDB store cannot run on a simulated
 * disk; it has crash tests of its own with the server.) Reads are served from `get` after the engine's
 * linearizableRead.
 */
import { bytesSnapshot, readAll, type SnapshotHandle, type StateMachine } from "../engine/state-machine.js";
import type { Entry } from "../raft/types.js";

export type KvCommand =
  | { readonly f: "put"; readonly key: string; readonly value: string }
  | { readonly f: "delete"; readonly key: string }
  | { readonly f: "cas"; readonly key: string; readonly expected: string | null; readonly value: string }
  | { readonly f: "append"; readonly key: string; readonly suffix: string };

/** put → null; delete → whether the key existed; cas → whether it swapped; append → the new value. */
export type KvResult = string | boolean | null;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export function encodeKvCommand(c: KvCommand): Uint8Array {
  return encoder.encode(JSON.stringify(c));
}

export function decodeKvCommand(data: Uint8Array): KvCommand {
  return JSON.parse(decoder.decode(data)) as KvCommand;
}

/** Told every entry a machine applies, for the simulator's "an applied entry never changes" check. */
export type ApplyObserver = (entry: Entry) => void;

export class KvMachine implements StateMachine<KvResult> {
  private data = new Map<string, string>();
  private lastApplied = 0;

  constructor(private readonly observe: ApplyObserver = () => {}) {}

  apply(entries: readonly Entry[]): KvResult[] {
    const out: KvResult[] = [];
    for (const e of entries) {
      this.observe(e);
      out.push(this.execute(decodeKvCommand(e.data)));
      this.lastApplied = e.index;
    }
    return out;
  }

  private execute(c: KvCommand): KvResult {
    const d = this.data;
    switch (c.f) {
      case "put":
        d.set(c.key, c.value);
        return null;
      case "delete":
        return d.delete(c.key);
      case "cas": {
        const current = d.get(c.key) ?? null;
        if (current !== c.expected) return false;
        d.set(c.key, c.value);
        return true;
      }
      case "append": {
        const next = (d.get(c.key) ?? "") + c.suffix;
        d.set(c.key, next);
        return next;
      }
    }
  }

  get(key: string): string | null {
    return this.data.get(key) ?? null;
  }

  /** Every key and value, sorted: for comparing replicas. */
  dump(): string {
    return JSON.stringify([...this.data].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
  }

  /** Held in memory only: a restarted node rebuilds from its snapshot and log. */
  appliedIndex(): number {
    return 0;
  }

  get applied(): number {
    return this.lastApplied;
  }

  snapshot(): SnapshotHandle {
    return bytesSnapshot(encoder.encode(JSON.stringify({ at: this.lastApplied, data: [...this.data] })));
  }

  async restore(payload: AsyncIterable<Uint8Array>, index: number): Promise<void> {
    const image = JSON.parse(decoder.decode(await readAll(payload))) as { data: [string, string][] };
    this.data = new Map(image.data);
    this.lastApplied = index;
  }
}
