/**
 * @packageDocumentation
 *
 * How dcas nodes reach each other: the {@link Transport} interface, a TCP
 * transport with TLS 1.3 and mutual authentication, and an in-memory
 * transport for tests.
 */

export type { AbortOptions, Connection, ConnectionHandler, Stream, Transport } from './types.js'
export { AbortedError, P2PError, P2P_ERROR_CODES, PeerUnauthorizedError, ProtocolError } from './errors.js'
export type { P2PErrorCode } from './errors.js'
export {
  AddressInUseError,
  ConnectionClosedError,
  DialFailedError,
  FrameTooLargeError,
  InvalidAddressError,
  PeerTimeoutError,
  StreamClosedError,
  StreamResetError,
  TooManyStreamsError,
} from './errors.js'
export { createMuxedConnection, MUXER_DEFAULTS } from './muxer/connection.js'
export type { CreateMuxedConnection, MuxerOptions } from './muxer/types.js'
export { createMemoryDuplexPair } from './memory/duplex.js'
