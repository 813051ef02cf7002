/**
 * Typed errors of `@dcas/p2p`. Callers test `code`, not `instanceof`:
 * every error has a stable `code` and keeps its `cause`.
 */

/** Every error code `@dcas/p2p` can raise. */
export const P2P_ERROR_CODES = [
  'ERR_PEER_UNAUTHORIZED',
  'ERR_PROTOCOL',
  'ERR_PROTOCOL_VERSION',
  'ERR_FRAME_TOO_LARGE',
  'ERR_TOO_MANY_STREAMS',
  'ERR_STREAM_RESET',
  'ERR_STREAM_CLOSED',
  'ERR_CONNECTION_CLOSED',
  'ERR_PEER_TIMEOUT',
  'ERR_DIAL_FAILED',
  'ERR_IDENTITY',
  'ERR_INVALID_ADDRESS',
  'ERR_ABORTED',
  'ERR_LISTEN_FAILED',
  'ERR_INVALID_OPTIONS',
] as const

/** One of {@link P2P_ERROR_CODES}. */
export type P2PErrorCode = (typeof P2P_ERROR_CODES)[number]

/** Base class of every `@dcas/p2p` error. */
export class P2PError extends Error {
  /** Stable machine-readable code. */
  readonly code: P2PErrorCode

  constructor(code: P2PErrorCode, message: string, options?: ErrorOptions) {
    super(message, options)
    this.name = new.target.name
    this.code = code
  }
}

/** The remote side did not prove the cluster secret and is not on the allow-list (or refused us). */
export class PeerUnauthorizedError extends P2PError {
  constructor(message = 'peer is not authorized', options?: ErrorOptions) {
    super('ERR_PEER_UNAUTHORIZED', message, options)
  }
}

/** The remote sent a malformed frame or message; the connection is closed. */
export class ProtocolError extends P2PError {
  constructor(message: string, options?: ErrorOptions) {
    super('ERR_PROTOCOL', message, options)
  }
}

/** The operation was aborted through its `signal`. */
export class AbortedError extends P2PError {
  constructor(message = 'the operation was aborted', options?: ErrorOptions) {
    super('ERR_ABORTED', message, options)
  }
}

/** The node identity on disk is missing, unreadable or malformed. */
export class IdentityError extends P2PError {
  constructor(message: string, options?: ErrorOptions) {
    super('ERR_IDENTITY', message, options)
  }
}

/** The remote speaks no protocol version we do. */
export class ProtocolVersionError extends P2PError {
  constructor(message = 'no protocol version in common with the peer', options?: ErrorOptions) {
    super('ERR_PROTOCOL_VERSION', message, options)
  }
}

/** The address could not be reached (nothing listens, a TLS failure, or the handshake timed out). */
export class DialFailedError extends P2PError {
  constructor(message: string, options?: ErrorOptions) {
    super('ERR_DIAL_FAILED', message, options)
  }
}

/** An address is not `host:port`. */
export class InvalidAddressError extends P2PError {
  constructor(message: string, options?: ErrorOptions) {
    super('ERR_INVALID_ADDRESS', message, options)
  }
}

/** The listen address could not be bound (in use, not local), or the transport already listens. */
export class ListenFailedError extends P2PError {
  constructor(message: string, options?: ErrorOptions) {
    super('ERR_LISTEN_FAILED', message, options)
  }
}

/** An option passed to a factory or call is invalid (e.g. an empty cluster secret, a malformed node id). */
export class InvalidOptionsError extends P2PError {
  constructor(message: string, options?: ErrorOptions) {
    super('ERR_INVALID_OPTIONS', message, options)
  }
}
