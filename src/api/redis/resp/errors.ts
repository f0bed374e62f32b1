/** Errors of the RESP layer, in one place so that callers can match on the class. */

/**
 * A client sent bytes that are not a valid request, or a request over a limit. The message is Redis's
 * own wording (clients and test suites match on it). The connection cannot go on: the stream position
 * is lost, so the server answers with this error and closes it.
 */
export class RespProtocolError extends Error {
  override name = "RespProtocolError";
  constructor(detail: string) {
    super(`Protocol error: ${detail}`);
  }
}

/**
 * A server sent bytes that are not a valid RESP2 reply, or a reply over a client's limit. The client
 * cannot find the next reply's start, so its connection is finished.
 */
export class RespReplyFormatError extends Error {
  override name = "RespReplyFormatError";
}
