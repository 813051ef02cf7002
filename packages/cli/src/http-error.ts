// An error the HTTP layer raises itself, and the status each error code answers with.

/** The HTTP status of each error code; anything else is a 500 (or fastify's own 4xx). */
export const STATUS_OF: Readonly<Record<string, number>> = {
  ERR_UNAUTHORIZED: 401,
  ERR_INVALID_KEY: 400,
  ERR_INVALID_OPTIONS: 400,
  ERR_BAD_REQUEST: 400,
  ERR_NOT_FOUND: 404,
  ERR_RANGE: 416,
  ERR_PRECONDITION: 412,
  ERR_QUORUM: 503,
  ERR_UNAVAILABLE: 503,
  ERR_CLOSED: 503,
  ERR_BUSY: 503,
  ERR_ABORTED: 499,
}

/** A refusal by the HTTP layer, answered as `{ error: { code, message } }` with the code's status. */
export class HttpError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message)
  }
}
