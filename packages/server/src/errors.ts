/**
 * Typed errors of `@dcas/server`. Callers test `code`, not `instanceof`:
 * every error has a stable `code` and keeps its `cause`.
 */

/** Every error code `@dcas/server` raises itself (errors of the layers below pass through with their own codes). */
export const SERVER_ERROR_CODES = [
  'ERR_INVALID_KEY',
  'ERR_NOT_FOUND',
  'ERR_QUORUM',
  'ERR_UNAVAILABLE',
  'ERR_CLOSED',
  'ERR_ABORTED',
] as const

/** One of {@link SERVER_ERROR_CODES}. */
export type ServerErrorCode = (typeof SERVER_ERROR_CODES)[number]

/** Base class of every `@dcas/server` error. */
export class ServerError extends Error {
  /** Stable machine-readable code. */
  readonly code: ServerErrorCode

  constructor(code: ServerErrorCode, message: string, options?: ErrorOptions) {
    super(message, options)
    this.name = new.target.name
    this.code = code
  }
}

/** A key that is not 1 to 1024 bytes of UTF-8 without NUL. */
export class InvalidKeyError extends ServerError {
  constructor(message: string, options?: ErrorOptions) {
    super('ERR_INVALID_KEY', message, options)
  }
}
