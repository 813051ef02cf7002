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
  'ERR_INVALID_ARGUMENT',
  'ERR_INVALID_KEY',
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

/** An id is not 64 lowercase hex characters. Raised before the disk is touched. */
export class InvalidIdError extends StoreError {
  constructor(message: string, options?: ErrorOptions) {
    super('ERR_INVALID_ID', message, options)
  }
}

/** A custom `layout` returned a path outside the store root, inside `tmp/`, or not named by the id. */
export class InvalidPathError extends StoreError {
  constructor(message: string, options?: ErrorOptions) {
    super('ERR_INVALID_PATH', message, options)
  }
}

/** `offset` or `length` is negative, fractional or past the end of the blob. */
export class InvalidRangeError extends StoreError {
  constructor(message: string, options?: ErrorOptions) {
    super('ERR_INVALID_RANGE', message, options)
  }
}

/** The disk is full (`ENOSPC` or `EDQUOT`). Nothing partial was kept; reads go on. */
export class DiskFullError extends StoreError {
  constructor(message: string, options?: ErrorOptions) {
    super('ERR_DISK_FULL', message, options)
  }
}

/** Any other I/O failure; the underlying error is the `cause`. */
export class IoError extends StoreError {
  constructor(message: string, options?: ErrorOptions) {
    super('ERR_IO', message, options)
  }
}

/** The store or index was closed. */
export class ClosedError extends StoreError {
  constructor(message: string, options?: ErrorOptions) {
    super('ERR_CLOSED', message, options)
  }
}

/** The index failed to open, read or commit; the underlying error is the `cause`. */
export class IndexError extends StoreError {
  constructor(message: string, options?: ErrorOptions) {
    super('ERR_INDEX', message, options)
  }
}

/** The operation was aborted through its `signal`; the signal's reason is the `cause`. */
export class AbortedError extends StoreError {
  constructor(message: string, options?: ErrorOptions) {
    super('ERR_ABORTED', message, options)
  }
}

/** An argument has the wrong type or value (a source chunk that is not bytes, a bad table name, an `undefined` value…). */
export class InvalidArgumentError extends StoreError {
  constructor(message: string, options?: ErrorOptions) {
    super('ERR_INVALID_ARGUMENT', message, options)
  }
}

/** An index key is empty, not well-formed UTF-16, or longer than {@link MAX_KEY_BYTES} UTF-8 bytes. */
export class InvalidKeyError extends StoreError {
  constructor(message: string, options?: ErrorOptions) {
    super('ERR_INVALID_KEY', message, options)
  }
}

/** Longest index key, in UTF-8 bytes (LMDB's limit; the in-memory index keeps the same one). */
export const MAX_KEY_BYTES = 1978
