/**
 * Typed errors of `@dcas/crypto`. Callers test `code`, not `instanceof`:
 * every error has a stable `code` and keeps its `cause`.
 */

/** Every error code `@dcas/crypto` can raise. */
export const CRYPTO_ERROR_CODES = [
  'ERR_FORMAT',
  'ERR_HEADER_MAC',
  'ERR_CHUNK_AUTH',
  'ERR_TRUNCATED',
  'ERR_TRAILING_DATA',
  'ERR_NO_MATCHING_IDENTITY',
  'ERR_INVALID_RECIPIENT',
  'ERR_INVALID_IDENTITY',
  'ERR_WORK_FACTOR',
  'ERR_ABORTED',
] as const

/** One of {@link CRYPTO_ERROR_CODES}. */
export type CryptoErrorCode = (typeof CRYPTO_ERROR_CODES)[number]

/** Base class of every `@dcas/crypto` error. */
export class CryptoError extends Error {
  /** Stable machine-readable code. */
  readonly code: CryptoErrorCode

  constructor(code: CryptoErrorCode, message: string, options?: ErrorOptions) {
    super(message, options)
    this.name = new.target.name
    this.code = code
  }
}

/** The input is not a well-formed age v1 file (header or payload framing). */
export class FormatError extends CryptoError {
  constructor(message: string, options?: ErrorOptions) {
    super('ERR_FORMAT', message, options)
  }
}
