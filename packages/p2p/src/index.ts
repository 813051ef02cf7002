/**
 * @packageDocumentation
 *
 * How dcas nodes reach each other: the {@link Transport} interface, a TCP
 * transport with TLS 1.3 and mutual authentication, and an in-memory
 * transport for tests. Both carry many flow-controlled streams over one
 * connection with the yamux-style multiplexer {@link createMuxedConnection}.
 *
 * @example
 * ```ts
 * import { createMemoryNetwork, memoryTransport } from '@dcas/p2p'
 *
 * const network = createMemoryNetwork()
 * const alice = memoryTransport({ network, clusterSecret: 'our cluster secret' })
 * const bob = memoryTransport({ network, clusterSecret: 'our cluster secret' })
 * const address = await bob.listen('bob:0', (connection) => {
 *   void (async () => {
 *     for await (const stream of connection.incoming) {
 *       for await (const chunk of stream) await stream.write(chunk) // echo
 *       await stream.closeWrite()
 *     }
 *   })()
 * })
 * const connection = await alice.dial(address)
 * const stream = await connection.openStream()
 * await stream.write(new TextEncoder().encode('hello, bob'))
 * await stream.closeWrite()
 * for await (const chunk of stream) console.log(new TextDecoder().decode(chunk))
 * ```
 */

export type { AbortOptions, Connection, ConnectionHandler, Stream, Transport } from './types.js'
export { AbortedError, P2PError, P2P_ERROR_CODES, PeerUnauthorizedError, ProtocolError } from './errors.js'
export type { P2PErrorCode } from './errors.js'
export {
  AddressInUseError,
  ConnectionClosedError,
  DialFailedError,
  FrameTooLargeError,
  HandshakeLimitError,
  InvalidAddressError,
  PeerTimeoutError,
  StreamClosedError,
  StreamRefusedError,
  StreamResetError,
  SuppressedErrorsError,
  TooManyStreamsError,
} from './errors.js'
export { createMuxedConnection, MUXER_DEFAULTS } from './muxer/connection.js'
export type { CreateMuxedConnection, MuxerOptions } from './muxer/types.js'
export { createMemoryDuplexPair } from './memory/duplex.js'
export { createMemoryNetwork } from './memory/network.js'
export type { FaultOptions, MemoryNetwork } from './memory/network.js'
export { memoryTransport } from './memory/transport.js'
export type { MemoryTransportOptions } from './memory/transport.js'
export { createIdentity, loadOrCreateIdentity, nodeIdFromCertificate } from './identity/identity.js'
export type { NodeIdentity } from './identity/identity.js'
export { IdentityError, InvalidOptionsError, ListenFailedError, ProtocolVersionError } from './errors.js'
export { TCP_DEFAULTS, tcpTransport } from './tcp/transport.js'
export { PROTOCOL_VERSIONS } from './tcp/admission.js'
export { clusterSecretWarning, MIN_CLUSTER_SECRET_BYTES } from './tcp/cluster-secret.js'
export { formatAddress, parseAddress } from './address.js'
export type { HostPort } from './address.js'
export { sourceOf } from './tcp/source.js'
export type { TcpDialOptions, TcpTransport, TcpTransportInit } from './tcp/transport.js'
