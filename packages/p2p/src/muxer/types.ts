import type { Duplex } from 'node:stream'
import type { Connection } from '../types.js'

/**
 * Options of {@link CreateMuxedConnection}. Both transports (TCP after TLS and
 * admission, in-memory over a duplex pair) build their connections with it.
 */
export interface MuxerOptions {
  /** `outbound` for the dialler (odd stream ids, as yamux's client), `inbound` for the listener (even ids). */
  direction: 'inbound' | 'outbound'
  /** The remote's node id, already authenticated by the transport. */
  remoteNodeId: string
  /** The remote's address, for `Connection.remoteAddress`. */
  remoteAddress: string
  /** Most concurrent streams the remote may open (default chosen by the muxer). */
  maxStreams?: number
  /** Keep-alive ping interval in ms. */
  keepAliveInterval?: number
  /** A remote silent for this long (ms) is dead: every stream fails with `ERR_PEER_TIMEOUT`. */
  deadPeerTimeout?: number
  /**
   * Largest receive window (bytes) one stream may grow to while its reader keeps
   * up (default 16 MiB). Windows start at yamux's 256 KiB, raised at once to
   * 1 MiB while the connection's budget allows; a reader that stops reading holds
   * the remote within the window granted so far.
   */
  maxStreamWindow?: number
  /**
   * Windows stop growing once the receive windows of all streams of the
   * connection add up to this many bytes (default 64 MiB); every stream keeps
   * at least its initial 256 KiB.
   */
  maxConnectionWindow?: number
}

/**
 * Runs the yamux-style multiplexer over an authenticated byte duplex
 * (a TLS socket after admission, or one end of an in-memory pair) and
 * returns the {@link Connection}. The duplex belongs to the connection from
 * then on: closing the connection ends it, and its end or error closes the
 * connection.
 */
export type CreateMuxedConnection = (socket: Duplex, options: MuxerOptions) => Connection
