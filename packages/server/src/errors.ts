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
  'ERR_PEER',
  'ERR_INVALID_OPTIONS',
  'ERR_PRECONDITION',
  'ERR_TOO_LARGE',
  'ERR_UNAUTHENTICATED',
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

/** No object is stored under this key (locally or on any reachable peer). */
export class NotFoundError extends ServerError {
  constructor(message: string, options?: ErrorOptions) {
    super('ERR_NOT_FOUND', message, options)
  }
}

/** Who acknowledged what when a store fell short of its write quorum. */
export interface QuorumDetails {
  /** The key that was stored. */
  key: string
  /** Acknowledgements needed. */
  needed: number
  /** Node ids that acknowledged a verified, durable copy of every chunk and the manifest. */
  replicas: string[]
  /** Node ids that were asked and failed, or could not be reached, with why. */
  failed: Array<{ nodeId: string; error: string }>
  /** The ref's placed holders that could be reached when the store began. */
  reachable: number
  /** How many holders the ref is placed on. */
  placed: number
  /**
   * Whether the object was committed locally (and goes on replicating in the background): `false` when too few
   * placed holders could be reached to begin with, and nothing was stored.
   */
  committed: boolean
}

/**
 * Fewer placed holders than the write quorum acknowledged the object. When fewer
 * could even be reached, nothing was stored (`details.committed` is false); else it
 * is committed locally and held by `replicas`, and repair goes on copying it to its
 * placed holders in the background.
 */
export class QuorumError extends ServerError {
  /** Who holds what. */
  readonly details: QuorumDetails

  constructor(details: QuorumDetails, options?: ErrorOptions) {
    super(
      'ERR_QUORUM',
      (details.committed
        ? `"${details.key}" reached ${details.replicas.length} of ${details.needed} required replicas; it is committed locally and repaired in the background`
        : `"${details.key}" needs ${details.needed} of its ${details.placed} placed holders, but ${details.reachable} could be reached; nothing was stored`) +
        (details.failed.length > 0 ? ` (${details.failed.map((f) => `${f.nodeId.slice(0, 12)}: ${f.error}`).join('; ')})` : ''),
      options,
    )
    this.details = details
  }
}

/** A chunk (or manifest) is missing or damaged locally and no peer could supply a verified copy. */
export class UnavailableError extends ServerError {
  constructor(message: string, options?: ErrorOptions) {
    super('ERR_UNAVAILABLE', message, options)
  }
}

/** The server was closed (or not started). */
export class ClosedError extends ServerError {
  constructor(message = 'the server is closed', options?: ErrorOptions) {
    super('ERR_CLOSED', message, options)
  }
}

/** The operation was aborted through its `signal`. */
export class AbortedError extends ServerError {
  constructor(message = 'the operation was aborted', options?: ErrorOptions) {
    super('ERR_ABORTED', message, options)
  }
}

/** A peer broke the replication protocol or answered with an error. */
export class PeerError extends ServerError {
  /** The code the peer answered with, when it answered. */
  readonly remoteCode: string | undefined

  constructor(message: string, remoteCode?: string, options?: ErrorOptions) {
    super('ERR_PEER', message, options)
    this.remoteCode = remoteCode
  }
}

/** Options passed to `createServer` are invalid. */
export class InvalidOptionsError extends ServerError {
  constructor(message: string, options?: ErrorOptions) {
    super('ERR_INVALID_OPTIONS', message, options)
  }
}

/** A store's or compose's `precondition` refused the key's current state: nothing was stored. */
export class PreconditionError extends ServerError {
  constructor(message: string, options?: ErrorOptions) {
    super('ERR_PRECONDITION', message, options)
  }
}

/** An object needs more chunks than one manifest may list (131 072): store it with a larger `chunkSize`. */
export class TooLargeError extends ServerError {
  constructor(message: string, options?: ErrorOptions) {
    super('ERR_TOO_LARGE', message, options)
  }
}

/** Something a peer relayed for this owner does not carry the owner's authentication (a forged manifest): it is not used. */
export class UnauthenticatedError extends ServerError {
  constructor(message: string, options?: ErrorOptions) {
    super('ERR_UNAUTHENTICATED', message, options)
  }
}

/** Throws the signal's abort as an {@link AbortedError} (keeping the reason as `cause`). */
export function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted === true) throw new AbortedError(undefined, { cause: signal.reason })
}

/** The `code` of an error, if it has one. */
export const codeOf = (err: unknown): string | undefined => (err as { code?: string } | undefined)?.code

/** The message of an error, or the thing itself as a string. */
export const messageOf = (err: unknown): string => (err instanceof Error ? err.message : String(err))
