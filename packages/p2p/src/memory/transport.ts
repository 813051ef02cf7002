// The in-memory transport: same interface and semantics as TCP (addresses,
// admission, muxed and flow-controlled connections), no sockets.
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto'
import {
  AddressInUseError,
  ConnectionClosedError,
  DialFailedError,
  PeerUnauthorizedError,
} from '../errors.js'
import { formatAddress, parseAddress } from '../address.js'
import { createMuxedConnection } from '../muxer/connection.js'
import { abortable, throwIfAborted } from '../muxer/signal.js'
import type { MuxerOptions } from '../muxer/types.js'
import type { AbortOptions, Connection, ConnectionHandler, Transport } from '../types.js'
import { MemoryDuplex } from './duplex.js'
import { Network, type MemoryListener, type MemoryNetwork, type MemoryPeer } from './network.js'

/** Options of {@link memoryTransport}. */
export interface MemoryTransportOptions
  extends Pick<MuxerOptions, 'maxStreams' | 'keepAliveInterval' | 'deadPeerTimeout' | 'maxStreamWindow' | 'maxConnectionWindow' | 'streamIdleTimeout'> {
  /** The network shared by the transports that should reach each other ({@link createMemoryNetwork}). */
  network: MemoryNetwork
  /** This node's id: 64 lowercase hex characters (default: random). */
  nodeId?: string
  /** Peers that hold the same secret are admitted. */
  clusterSecret?: Uint8Array | string
  /** Node ids admitted without the cluster secret. */
  allowList?: Iterable<string>
}

const NODE_ID = /^[0-9a-f]{64}$/

function checkNodeId(name: string, value: string): string {
  if (typeof value !== 'string' || !NODE_ID.test(value)) {
    throw new TypeError(`${name} must be 64 lowercase hex characters, got ${JSON.stringify(value)}`)
  }
  return value
}

/** Resolves on the next turn of the event loop, as a real dial would at the earliest. */
async function nextTurn(signal: AbortSignal | undefined): Promise<void> {
  let timer: NodeJS.Immediate | undefined
  await abortable<void>(
    signal,
    (resolve) => (timer = setImmediate(resolve)),
    () => clearImmediate(timer),
  )
}

class MemoryTransport implements Transport, MemoryListener, MemoryPeer {
  readonly nodeId: string
  private readonly network: Network
  private readonly secretDigest: Buffer | undefined
  private readonly allowList: ReadonlySet<string>
  private readonly muxerOptions: Omit<MuxerOptions, 'direction' | 'remoteNodeId' | 'remoteAddress'>
  private listening: { address: string; handler: ConnectionHandler } | undefined
  private readonly connections = new Set<Connection>()
  private closing = false

  constructor(options: MemoryTransportOptions) {
    if (!(options.network instanceof Network)) throw new TypeError('network must come from createMemoryNetwork()')
    this.network = options.network
    this.nodeId = options.nodeId === undefined ? randomBytes(32).toString('hex') : checkNodeId('nodeId', options.nodeId)
    const secret = typeof options.clusterSecret === 'string' ? Buffer.from(options.clusterSecret) : options.clusterSecret
    if (secret !== undefined && secret.length === 0) throw new TypeError('clusterSecret must not be empty')
    this.secretDigest = secret === undefined ? undefined : createHash('sha256').update(secret).digest()
    this.allowList = new Set([...(options.allowList ?? [])].map((id) => checkNodeId('allowList entry', id)))
    const { maxStreams, keepAliveInterval, deadPeerTimeout, maxStreamWindow, maxConnectionWindow, streamIdleTimeout } = options
    this.muxerOptions = { maxStreams, keepAliveInterval, deadPeerTimeout, maxStreamWindow, maxConnectionWindow, streamIdleTimeout }
  }

  get address(): string | undefined {
    return this.listening?.address
  }

  get host(): string {
    return this.listening === undefined ? 'memory' : parseAddress(this.listening.address).host
  }

  listen(address: string, handler: ConnectionHandler, options: AbortOptions = {}): Promise<string> {
    return new Promise((resolve) => resolve(this.bind(address, handler, options)))
  }

  private bind(address: string, handler: ConnectionHandler, options: AbortOptions): string {
    throwIfAborted(options.signal)
    if (this.closing) throw new ConnectionClosedError('the transport is closed')
    const { host, port } = parseAddress(address, { allowPortZero: true })
    if (this.listening !== undefined) throw new AddressInUseError(`this transport already listens on ${this.listening.address}`)
    const bound = this.network.bind(host, port, this)
    if (bound === undefined) throw new AddressInUseError(`something already listens on ${address}`)
    this.listening = { address: formatAddress(host, bound), handler }
    return this.listening.address
  }

  async dial(address: string, options: AbortOptions = {}): Promise<Connection> {
    const { signal } = options
    throwIfAborted(signal)
    if (this.closing) throw new DialFailedError('the transport is closed')
    const { host, port } = parseAddress(address)
    await nextTurn(signal)
    const listener = this.network.listenerAt(formatAddress(host, port))
    if (listener === undefined) throw new DialFailedError(`nothing listens on ${address}`)
    if (this.network.isIsolated(this.nodeId) || this.network.isIsolated(listener.nodeId)) {
      throw new DialFailedError(`${address} is unreachable`)
    }
    // Both sides admit each other, or nothing is delivered to either.
    if (!listener.admits(this)) throw new PeerUnauthorizedError(`${address} refused us: no shared cluster secret, not on its allow-list`)
    if (!this.admits(listener)) throw new PeerUnauthorizedError(`${address} did not prove the cluster secret and is not on the allow-list`)
    if (this.closing) throw new DialFailedError('the transport is closed')
    const [socket, remoteSocket] = MemoryDuplex.pair()
    const connection = createMuxedConnection(socket, {
      ...this.muxerOptions,
      direction: 'outbound',
      remoteNodeId: listener.nodeId,
      remoteAddress: address,
    })
    this.track(connection)
    const accepted = listener.accept(this, remoteSocket)
    this.network.addLink([this.nodeId, listener.nodeId], socket, [connection, accepted])
    return connection
  }

  async close(options: AbortOptions = {}): Promise<void> {
    throwIfAborted(options.signal)
    this.closing = true
    if (this.listening !== undefined) this.network.unbind(this.listening.address, this)
    await Promise.all([...this.connections].map((connection) => connection.close(options)))
  }

  // --- MemoryListener / MemoryPeer ------------------------------------------------

  admits(peer: MemoryPeer): boolean {
    const theirs = peer instanceof MemoryTransport ? peer.secretDigest : undefined
    if (this.secretDigest !== undefined && theirs !== undefined && timingSafeEqual(this.secretDigest, theirs)) return true
    return this.allowList.has(peer.nodeId)
  }

  accept(dialler: MemoryPeer, socket: MemoryDuplex): Connection {
    const connection = createMuxedConnection(socket, {
      ...this.muxerOptions,
      direction: 'inbound',
      remoteNodeId: dialler.nodeId,
      remoteAddress: formatAddress(dialler.host, this.network.freePort(dialler.host)),
    })
    this.track(connection)
    const handler = this.listening?.handler
    if (handler === undefined || this.closing) {
      connection.abort(new ConnectionClosedError('the listener closed'))
      return connection
    }
    try {
      handler(connection)
    } catch (err) {
      connection.abort(err instanceof Error ? err : new Error(String(err)))
    }
    return connection
  }

  private track(connection: Connection): void {
    this.connections.add(connection)
    void connection.closed.then(() => this.connections.delete(connection))
  }
}

/**
 * The in-memory {@link Transport}: listen and dial by `host:port` on a shared
 * {@link MemoryNetwork}, with TCP's admission rules (a peer is admitted when
 * both hold the same cluster secret or its node id is on the allow-list, in
 * both directions; otherwise the dialler gets `ERR_PEER_UNAUTHORIZED` and the
 * listener sees nothing) and real muxed connections over an in-memory pipe,
 * so flow control and backpressure behave as over TCP.
 *
 * @example
 * ```ts
 * const network = createMemoryNetwork()
 * const a = memoryTransport({ network, clusterSecret: 'secret' })
 * const b = memoryTransport({ network, clusterSecret: 'secret' })
 * const address = await b.listen('b:0', (connection) => { … })
 * const connection = await a.dial(address)
 * ```
 */
export function memoryTransport(options: MemoryTransportOptions): Transport {
  return new MemoryTransport(options)
}
