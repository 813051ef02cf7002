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
  'ERR_EMPTY_LAST_CHUNK',
  'ERR_NO_MATCHING_IDENTITY',
  'ERR_INVALID_RECIPIENT',
  'ERR_INVALID_IDENTITY',
  'ERR_UNSUPPORTED',
  'ERR_WORK_FACTOR',
  'ERR_ARMOR',
  'ERR_INVALID_ARGUMENT',
  'ERR_IDENTITY_FILE_EXISTS',
  'ERR_ABORTED',
  'ERR_TOO_MANY_STANZAS',
  'ERR_HEADER_TOO_LARGE',
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

/** The header MAC does not verify: the header was altered (or belongs to another file key). */
export class HeaderMacError extends CryptoError {
  constructor(message = 'the header MAC does not verify', options?: ErrorOptions) {
    super('ERR_HEADER_MAC', message, options)
  }
}

/** A payload chunk failed authentication: altered, reordered, dropped, duplicated, or cut inside. */
export class ChunkAuthError extends CryptoError {
  constructor(message: string, options?: ErrorOptions) {
    super('ERR_CHUNK_AUTH', message, options)
  }
}

/**
 * The input ended before a complete age file: inside the header, before the payload nonce, or
 * without a chunk marked last. The chunks before the cut were released, each verified.
 */
export class TruncatedError extends CryptoError {
  constructor(message: string, options?: ErrorOptions) {
    super('ERR_TRUNCATED', message, options)
  }
}

/** Bytes follow a full-size last chunk (after a shorter one they make it fail as {@link ChunkAuthError}). */
export class TrailingDataError extends CryptoError {
  constructor(message = 'data follows the last chunk', options?: ErrorOptions) {
    super('ERR_TRAILING_DATA', message, options)
  }
}

/** The last chunk is empty although the payload is not: age forbids it. */
export class EmptyLastChunkError extends CryptoError {
  constructor(message = 'the last chunk is empty but the payload is not', options?: ErrorOptions) {
    super('ERR_EMPTY_LAST_CHUNK', message, options)
  }
}

/** None of the given identities (or the passphrase) opens any recipient stanza of the file. */
export class NoMatchingIdentityError extends CryptoError {
  constructor(message = 'no identity matches any recipient of the file', options?: ErrorOptions) {
    super('ERR_NO_MATCHING_IDENTITY', message, options)
  }
}

/** A recipient string is malformed (not an `age1…` X25519 recipient). */
export class InvalidRecipientError extends CryptoError {
  constructor(message: string, options?: ErrorOptions) {
    super('ERR_INVALID_RECIPIENT', message, options)
  }
}

/** An identity string or identity file is malformed. The message never contains key material. */
export class InvalidIdentityError extends CryptoError {
  constructor(message: string, options?: ErrorOptions) {
    super('ERR_INVALID_IDENTITY', message, options)
  }
}

/** A well-formed age recipient or identity of a kind this package does not implement (post-quantum, plugin, SSH). */
export class UnsupportedError extends CryptoError {
  constructor(message: string, options?: ErrorOptions) {
    super('ERR_UNSUPPORTED', message, options)
  }
}

/** A passphrase file asks for a scrypt work factor above the allowed maximum. */
export class WorkFactorError extends CryptoError {
  constructor(message: string, options?: ErrorOptions) {
    super('ERR_WORK_FACTOR', message, options)
  }
}

/** The ASCII armor (`-----BEGIN AGE ENCRYPTED FILE-----`) around the file is malformed. */
export class ArmorError extends CryptoError {
  constructor(message: string, options?: ErrorOptions) {
    super('ERR_ARMOR', message, options)
  }
}

/**
 * An argument of a call is invalid: a source item that is not a `Uint8Array`, an empty recipient
 * list, an option out of range, a `seed` that is not 32 bytes or that passphrase encryption was given.
 */
export class InvalidArgumentError extends CryptoError {
  constructor(message: string, options?: ErrorOptions) {
    super('ERR_INVALID_ARGUMENT', message, options)
  }
}

/** An identity file already exists where a new one was to be written; it is left untouched. */
export class IdentityFileExistsError extends CryptoError {
  constructor(message: string, options?: ErrorOptions) {
    super('ERR_IDENTITY_FILE_EXISTS', message, options)
  }
}

/** The operation was aborted through its `signal`; `cause` is the signal's reason. */
export class AbortedError extends CryptoError {
  constructor(message = 'the operation was aborted', options?: ErrorOptions) {
    super('ERR_ABORTED', message, options)
  }
}

/** A header holds more recipient stanzas than `maxStanzas` allows; no stanza was tried. */
export class TooManyStanzasError extends CryptoError {
  constructor(message: string, options?: ErrorOptions) {
    super('ERR_TOO_MANY_STANZAS', message, options)
  }
}

/** A header is longer than `maxHeaderBytes` allows; no more of it was read. */
export class HeaderTooLargeError extends CryptoError {
  constructor(message: string, options?: ErrorOptions) {
    super('ERR_HEADER_TOO_LARGE', message, options)
  }
}
