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
  /**
   * Most concurrent streams the remote may open (default 256); more are refused with
   * a reset the remote sees as `ERR_STREAM_REFUSED`, and the connection stays up. The
   * same bound applies to the streams we open (`openStream` fails with `ERR_TOO_MANY_STREAMS`).
   */
  maxStreams?: number
  /** Keep-alive ping interval in ms. */
  keepAliveInterval?: number
  /** A remote silent for this long (ms) is dead: every stream fails with `ERR_PEER_TIMEOUT`. */
  deadPeerTimeout?: number
  /**
   * Largest receive window (bytes) one stream may grow to while its reader keeps
   * up (default 16 MiB). Windows start at yamux's 256 KiB, raised at once to
   * 1 MiB while the grants of open streams fit in an eighth of `maxConnectionWindow`;
   * a reader that stops reading holds the remote within the window granted so far.
   */
  maxStreamWindow?: number
  /**
   * The connection's receive budget (default 64 MiB, at least 512 KiB): the receive
   * windows of all its streams, each stream's initial 256 KiB included, never add up
   * to more, so neither does what the remote can make us buffer. Windows grow into
   * half of it at most, the 1 MiB initial grants into an eighth of it; the other half
   * keeps room for new streams. A stream the budget cannot cover is refused
   * (`ERR_STREAM_REFUSED` on the remote's side) or, opened by us, fails with
   * `ERR_TOO_MANY_STREAMS`.
   */
  maxConnectionWindow?: number
  /**
   * A stream that waits on the remote (a pending read, or writes held back by the
   * remote's window) with no byte moving for this many ms fails with `ERR_PEER_TIMEOUT`
   * and is reset (default 30 000). Streams the application is not waiting on never time out.
   */
  streamIdleTimeout?: number
}

/**
 * Runs the yamux-style multiplexer over an authenticated byte duplex
 * (a TLS socket after admission, or one end of an in-memory pair) and
 * returns the {@link Connection}. The duplex belongs to the connection from
 * then on: closing the connection ends it, and its end or error closes the
 * connection.
 */
export type CreateMuxedConnection = (socket: Duplex, options: MuxerOptions) => Connection
