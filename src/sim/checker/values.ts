/**
 * Interning of the values one key takes. The search compares and memoises model states millions of
 * times; as small integers that costs nothing, as strings it would hash them again every time.
 */

/** The id of "the key is absent". */
export const ABSENT = 0;

export class ValueTable {
  private readonly ids = new Map<string, number>();
  private readonly values: (string | null)[] = [null];

  /** The id of `value`, assigning the next one if it is new. */
  id(value: string | null): number {
    if (value === null) return ABSENT;
    const known = this.ids.get(value);
    if (known !== undefined) return known;
    const id = this.values.length;
    this.values.push(value);
    this.ids.set(value, id);
    return id;
  }

  /** The id of `value` if it was ever interned, else -1 (a value no operation produces or reads). */
  lookup(value: string): number {
    return this.ids.get(value) ?? -1;
  }

  value(id: number): string | null {
    const v = this.values[id];
    if (v === undefined) throw new RangeError(`no value with id ${id}`);
    return v;
  }

  get size(): number {
    return this.values.length;
  }
}
