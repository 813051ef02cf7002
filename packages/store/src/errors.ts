/**
 * Typed errors of `@dcas/store`. Callers test `code`, not `instanceof`:
 * every error has a stable `code` and keeps its `cause`.
 */

/** Every error code `@dcas/store` can raise. */
export const STORE_ERROR_CODES = [
  'ERR_NOT_FOUND',
  'ERR_INTEGRITY',
  'ERR_INVALID_ID',
  'ERR_INVALID_PATH',
  'ERR_INVALID_RANGE',
  'ERR_DISK_FULL',
  'ERR_IO',
  'ERR_CLOSED',
  'ERR_INDEX',
  'ERR_ABORTED',
] as const

/** One of {@link STORE_ERROR_CODES}. */
export type StoreErrorCode = (typeof STORE_ERROR_CODES)[number]

/** Base class of every `@dcas/store` error. */
export class StoreError extends Error {
  /** Stable machine-readable code. */
  readonly code: StoreErrorCode

  constructor(code: StoreErrorCode, message: string, options?: ErrorOptions) {
    super(message, options)
    this.name = new.target.name
    this.code = code
  }
}

/** No blob with this id is stored. */
export class NotFoundError extends StoreError {
  constructor(message: string, options?: ErrorOptions) {
    super('ERR_NOT_FOUND', message, options)
  }
}

/** Bytes do not hash to the id they are stored or expected under. Nothing unverified is returned. */
export class IntegrityError extends StoreError {
  constructor(message: string, options?: ErrorOptions) {
    super('ERR_INTEGRITY', message, options)
  }
}
