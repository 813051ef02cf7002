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
  'ERR_ADDRESS_IN_USE',
  'ERR_LISTEN_FAILED',
  'ERR_INVALID_OPTIONS',
  'ERR_HANDSHAKE_LIMIT',
  'ERR_STREAM_REFUSED',
  'ERR_SUPPRESSED',
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

/** A frame exceeded its bound (a data frame longer than the window granted); the connection is closed. */
export class FrameTooLargeError extends P2PError {
  constructor(message: string, options?: ErrorOptions) {
    super('ERR_FRAME_TOO_LARGE', message, options)
  }
}

/** More concurrent streams than allowed: the remote opened too many, or `openStream` hit the local limit. */
export class TooManyStreamsError extends P2PError {
  constructor(message: string, options?: ErrorOptions) {
    super('ERR_TOO_MANY_STREAMS', message, options)
  }
}

/** The stream was reset by either side. */
export class StreamResetError extends P2PError {
  constructor(message = 'the stream was reset', options?: ErrorOptions) {
    super('ERR_STREAM_RESET', message, options)
  }
}

/** A write after `closeWrite()`, or a second iteration of a stream. */
export class StreamClosedError extends P2PError {
  constructor(message = 'the stream is closed for writing', options?: ErrorOptions) {
    super('ERR_STREAM_CLOSED', message, options)
  }
}

/** The connection closed (or was aborted) while the operation was in flight. */
export class ConnectionClosedError extends P2PError {
  constructor(message = 'the connection is closed', options?: ErrorOptions) {
    super('ERR_CONNECTION_CLOSED', message, options)
  }
}

/** The remote sent nothing, not even a keep-alive answer, within the dead-peer timeout. */
export class PeerTimeoutError extends P2PError {
  constructor(message = 'the peer stopped answering', options?: ErrorOptions) {
    super('ERR_PEER_TIMEOUT', message, options)
  }
}

/** The address could not be reached. */
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

/** Something already listens on the address. */
export class AddressInUseError extends P2PError {
  constructor(message: string, options?: ErrorOptions) {
    super('ERR_ADDRESS_IN_USE', message, options)
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

/** The listen address could not be bound (other than in use: not local, no permission), or the transport already listens. */
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

/**
 * An inbound connection was dropped before admission to bound what connecting costs us:
 * its source address already had `maxPendingHandshakesPerSource` connections in
 * handshake, or it was the oldest (idle first) of `maxPendingHandshakes` and made room.
 */
export class HandshakeLimitError extends P2PError {
  constructor(message: string, options?: ErrorOptions) {
    super('ERR_HANDSHAKE_LIMIT', message, options)
  }
}

/**
 * The remote refused a stream we opened without taking it: it already had `maxStreams`
 * streams from us, or its receive budget (`maxConnectionWindow`) could not cover one more
 * stream's initial window. Nothing of the stream was processed: it may be retried later.
 */
export class StreamRefusedError extends P2PError {
  constructor(message = 'the remote refused the stream (too many streams, or no receive budget left)', options?: ErrorOptions) {
    super('ERR_STREAM_REFUSED', message, options)
  }
}

/**
 * Not a failure of its own: a summary, reported through `onInboundError` once per
 * interval, of the inbound failures that were not reported one by one (a flood of
 * refused or timed-out connections must not flood the logs).
 */
export class SuppressedErrorsError extends P2PError {
  /** How many failures the summary stands for. */
  readonly count: number
  /** Those failures by code. */
  readonly codes: Readonly<Partial<Record<P2PErrorCode, number>>>

  constructor(count: number, codes: Partial<Record<P2PErrorCode, number>>, intervalMs: number) {
    const detail = Object.entries(codes)
      .map(([code, n]) => `${code} ×${n}`)
      .join(', ')
    super('ERR_SUPPRESSED', `${count} more inbound failures in the last ${intervalMs} ms, not reported one by one: ${detail}`)
    this.count = count
    this.codes = codes
  }
}
