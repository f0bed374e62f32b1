/** Every error the linearizability checker raises, in one place so that callers can match on the class. */

export class CheckerError extends Error {
  override name = "CheckerError";
}

/**
 * The history handed to the checker is malformed (not merely non-linearizable): a duplicate id, a
 * completion that is not after its invocation, an output of the wrong type for its operation. Such a
 * history says more about the recorder that produced it than about the system under test, so the
 * checker refuses it rather than guess.
 */
export class InvalidHistoryError extends CheckerError {
  override name = "InvalidHistoryError";
  constructor(
    /** The id of the offending operation, or null when the problem is not one operation's. */
    readonly operationId: number | null,
    readonly reason: string,
  ) {
    super(
      `invalid history${operationId === null ? "" : ` at operation #${operationId}`}: ${reason} ` +
        "(fix the code that recorded the history; the checker does not repair it)",
    );
  }
}

/** An option of `checkLinearizable` is out of range. */
export class InvalidCheckOptionError extends CheckerError {
  override name = "InvalidCheckOptionError";
  constructor(
    readonly option: string,
    readonly value: unknown,
    expected: string,
  ) {
    super(`checker option ${option} = ${String(value)} is invalid: expected ${expected}`);
  }
}
