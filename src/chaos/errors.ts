/** The chaos tool's error classes. */

/** The connection to a node could not be made, broke, or was closed while a call was waiting. */
export class ConnectionLostError extends Error {
  override name = "ConnectionLostError";
}

/** A call got no (complete) answer in time; the connection was closed, as its replies are now unknown. */
export class CallTimeoutError extends Error {
  override name = "CallTimeoutError";
  constructor(timeoutMs: number) {
    super(`no answer within ${timeoutMs} ms`);
  }
}

/** A command-line or option value the chaos run cannot use. */
export class ChaosUsageError extends Error {
  override name = "ChaosUsageError";
}
