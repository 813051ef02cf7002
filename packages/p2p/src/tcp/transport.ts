import { once } from 'node:events'
import type { Socket } from 'node:net'
import { Duplex } from 'node:stream'
import { connect, createServer, type Server, type TLSSocket } from 'node:tls'
import {
  AbortedError,
  AddressInUseError,
  ConnectionClosedError,
  DialFailedError,
  HandshakeLimitError,
  InvalidOptionsError,
  ListenFailedError,
  P2PError,
  PeerTimeoutError,
  ProtocolError,
} from '../errors.js'
import { nodeIdFromCertificate, type NodeIdentity } from '../identity/identity.js'
import { createMuxedConnection } from '../muxer/connection.js'
import type { CreateMuxedConnection, MuxerOptions } from '../muxer/types.js'
import type { AbortOptions, Connection, ConnectionHandler, Transport } from '../types.js'
import { formatAddress, parseAddress } from '../address.js'
import { admit, type AdmissionPolicy, PROTOCOL_VERSIONS, type Role } from './admission.js'
import { clusterSecretBytes, stretchClusterSecret } from './cluster-secret.js'
import { InboundReporter } from './inbound-reporter.js'
import { sourceOf } from './source.js'
import { tlsCredentials } from './tls.js'

/** Defaults of the admission limits of {@link TcpTransportInit}. */
export const TCP_DEFAULTS = {
  handshakeTimeout: 10_000,
  firstByteTimeout: 3_000,
  maxPendingHandshakes: 256,
  maxPendingHandshakesPerSource: 16,
  closeTimeout: 2_000,
  inboundErrorInterval: 10_000,
  inboundErrorBurst: 10,
} as const

/** Options of {@link tcpTransport}. The muxer options apply to every connection. */
export interface TcpTransportInit extends Omit<MuxerOptions, 'direction' | 'remoteNodeId' | 'remoteAddress'> {
  /** This node's identity, from `loadOrCreateIdentity` or `createIdentity`. */
  identity: NodeIdentity
  /**
   * The cluster secret (a string is taken as UTF-8). A peer that proves it over
   * the session (CPace, see the README) is admitted. Without it only the allow-list
   * admits. It is stretched with scrypt once, when the transport is created; a
   * secret under 16 bytes works but is weak (`clusterSecretWarning` says why).
   */
  clusterSecret?: string | Uint8Array
  /** Node ids (lowercase hex) admitted without proving the cluster secret. */
  allowList?: Iterable<string>
  /**
   * Bound (ms) on connect + TLS handshake + admission, for dials and for
   * accepted connections alike; a peer that sends too little is dropped after
   * it. Default 10 000.
   */
  handshakeTimeout?: number
  /** An inbound connection that sends no byte at all within this (ms) is dropped. Default 3 000 (at most `handshakeTimeout`). */
  firstByteTimeout?: number
  /**
   * Most inbound connections in handshake or admission at once. When one more
   * arrives, the oldest pending connection that has sent nothing (else the oldest)
   * is dropped to make room (`ERR_HANDSHAKE_LIMIT`), so idle sockets cannot lock
   * peers out. Default 256.
   */
  maxPendingHandshakes?: number
  /**
   * Most inbound connections in handshake at once from one source (an IPv4
   * address, an IPv6 /64); more are dropped at accept (`ERR_HANDSHAKE_LIMIT`).
   * Default 16.
   */
  maxPendingHandshakesPerSource?: number
  /** How long (ms) `close()` lets connections finish gracefully before aborting them. Default 2 000. */
  closeTimeout?: number
  /** Protocol versions offered at admission (the highest common one is used). Default: all this version speaks. */
  protocolVersions?: readonly number[]
  /**
   * Called for inbound connections that fail before reaching the handler:
   * a failed TLS handshake (a plain TCP client, garbage), a refused admission
   * (`ERR_PEER_UNAUTHORIZED`, `ERR_PROTOCOL_VERSION`), a malformed hello
   * (`ERR_PROTOCOL`), a handshake timeout (`ERR_PEER_TIMEOUT`), or a limit
   * (`ERR_HANDSHAKE_LIMIT`). For logs, so rate-limited: at most
   * `inboundErrorBurst` calls per `inboundErrorInterval`; the failures past that
   * are counted and reported once when the interval ends, as one
   * `ERR_SUPPRESSED` summary (remote address `*`). The listener carries on regardless.
   */
  onInboundError?: (error: P2PError, remoteAddress: string) => void
  /** The interval (ms) of the `onInboundError` rate limit. Default 10 000. */
  inboundErrorInterval?: number
  /** Inbound failures reported one by one per interval. Default 10. */
  inboundErrorBurst?: number
}

/** Options of {@link TcpTransport.dial}. */
export interface TcpDialOptions extends AbortOptions {
  /** The node id expected at that address; any other node is refused with `ERR_PEER_UNAUTHORIZED`. */
  remoteNodeId?: string
}

/** The TCP + TLS 1.3 {@link Transport}. */
export interface TcpTransport extends Transport {
  /**
   * Dials `host:port`: TCP, TLS 1.3, admission, then the multiplexer.
   * Rejects with `ERR_DIAL_FAILED` (nothing listens, TLS failed, timed out),
   * `ERR_PEER_UNAUTHORIZED`, `ERR_PROTOCOL_VERSION`, `ERR_PROTOCOL`,
   * `ERR_INVALID_ADDRESS` or `ERR_ABORTED`.
   */
  dial(address: string, options?: TcpDialOptions): Promise<Connection>
}

const NODE_ID = /^[0-9a-f]{64}$/

function positive(name: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback
  if (!Number.isFinite(value) || value <= 0) throw new InvalidOptionsError(`${name} must be a positive number, not ${value}`)
  return value
}

function positiveInteger(name: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback
  if (!Number.isSafeInteger(value) || value <= 0) throw new InvalidOptionsError(`${name} must be a positive integer, not ${value}`)
  return value
}

function noop(): void {}

/** Resolves once `socket` completed its TLS handshake as a client; rejects with `ERR_DIAL_FAILED` or the abort reason. */
async function secureConnect(socket: TLSSocket, address: string, signal: AbortSignal): Promise<void> {
  try {
    await Promise.race([
      once(socket, 'secureConnect', { signal }),
      once(socket, 'close', { signal }).then(() => {
        throw new Error('the connection closed during the TLS handshake')
      }),
    ])
  } catch (cause) {
    if (signal.aborted) throw signal.reason
    throw new DialFailedError(`cannot reach ${address}: ${(cause as Error).message}`, { cause })
  }
}

function reasonOf(signal: AbortSignal | undefined): AbortedError {
  return new AbortedError(undefined, { cause: signal?.reason })
}

/** `signal.throwIfAborted()`, as `ERR_ABORTED`. */
function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted === true) throw reasonOf(signal)
}

/** Ends a refused socket gracefully so the peer reads our verdict, discarding whatever it still sends. */
function endRefused(socket: TLSSocket, lingerMs: number): void {
  socket.resume()
  socket.end()
  const timer = setTimeout(() => socket.destroy(), lingerMs)
  timer.unref()
  socket.once('close', () => clearTimeout(timer))
}

function isRefusal(err: unknown): boolean {
  const code = (err as { code?: unknown }).code
  return code === 'ERR_PEER_UNAUTHORIZED' || code === 'ERR_PROTOCOL_VERSION'
}

interface PendingInbound {
  raw: Socket
  /** `sourceOf(remoteAddress)`: what the per-source cap counts. */
  source: string
  /** Aborted when a deadline passes or a limit drops the connection. */
  admission: AbortController
  deadline: NodeJS.Timeout
  /** Dropped by a deadline or a limit, and not closed yet. */
  dropped: boolean
}

class TcpTransportImpl implements TcpTransport {
  readonly nodeId: string
  #address: string | undefined
  readonly #credentials: ReturnType<typeof tlsCredentials>
  /** The admission policy, once the cluster secret is stretched. */
  readonly #policy: Promise<AdmissionPolicy>
  readonly #handshakeTimeout: number
  readonly #firstByteTimeout: number
  readonly #maxPendingHandshakes: number
  readonly #maxPendingPerSource: number
  readonly #closeTimeout: number
  readonly #reporter: InboundReporter
  readonly #muxerOptions: Omit<MuxerOptions, 'direction' | 'remoteNodeId' | 'remoteAddress'>
  readonly #createMuxedConnection: CreateMuxedConnection
  #server: Server | undefined
  #closed = false
  /** Inbound sockets between accept and admission, by `remoteAddress|remotePort`, oldest first. */
  readonly #pending = new Map<string, PendingInbound>()
  /** How many of them each source has. */
  readonly #pendingBySource = new Map<string, number>()
  /** How many of them were dropped and are not closed yet: they no longer count against the global cap. */
  #dropping = 0
  /** Outbound sockets between connect and admission. */
  readonly #dialling = new Set<TLSSocket>()
  /** Every inbound socket until it closes (pending, refused and lingering, or muxed), so close() leaves none behind. */
  readonly #inbound = new Set<Socket>()
  readonly #connections = new Set<Connection>()

  constructor(init: TcpTransportInit, createMuxedConnection: CreateMuxedConnection) {
    const {
      identity,
      clusterSecret,
      allowList,
      handshakeTimeout,
      firstByteTimeout,
      maxPendingHandshakes,
      maxPendingHandshakesPerSource,
      closeTimeout,
      protocolVersions,
      onInboundError,
      inboundErrorInterval,
      inboundErrorBurst,
      ...muxerOptions
    } = init
    if (typeof identity?.nodeId !== 'string' || typeof identity.certificate !== 'string' || identity.privateKey === undefined) {
      throw new InvalidOptionsError('identity must be a NodeIdentity (from loadOrCreateIdentity or createIdentity)')
    }
    let secret: Uint8Array | undefined
    if (clusterSecret !== undefined) {
      if (typeof clusterSecret !== 'string' && !(clusterSecret instanceof Uint8Array)) {
        throw new InvalidOptionsError('clusterSecret must be a string or a Uint8Array')
      }
      secret = clusterSecretBytes(clusterSecret)
      if (secret.length === 0) throw new InvalidOptionsError('clusterSecret must not be empty')
    }
    const allowed = new Set<string>()
    for (const id of allowList ?? []) {
      const nodeId = String(id).toLowerCase()
      if (!NODE_ID.test(nodeId)) throw new InvalidOptionsError(`allowList holds ${JSON.stringify(id)}, not a node id (64 hex digits)`)
      allowed.add(nodeId)
    }
    const versions = [...(protocolVersions ?? PROTOCOL_VERSIONS)]
    if (versions.length === 0 || !versions.every((v) => PROTOCOL_VERSIONS.includes(v))) {
      throw new InvalidOptionsError(`protocolVersions must list versions this transport speaks (${PROTOCOL_VERSIONS.join(', ')})`)
    }
    try {
      this.#credentials = tlsCredentials(identity)
      this.nodeId = nodeIdFromCertificate(identity.certificate)
    } catch (cause) {
      throw new InvalidOptionsError('identity does not hold a usable key and certificate', { cause })
    }
    if (this.nodeId !== identity.nodeId) throw new InvalidOptionsError('identity.nodeId is not the node id of identity.certificate')
    this.#handshakeTimeout = positive('handshakeTimeout', handshakeTimeout, TCP_DEFAULTS.handshakeTimeout)
    this.#firstByteTimeout = Math.min(this.#handshakeTimeout, positive('firstByteTimeout', firstByteTimeout, TCP_DEFAULTS.firstByteTimeout))
    this.#maxPendingHandshakes = positiveInteger('maxPendingHandshakes', maxPendingHandshakes, TCP_DEFAULTS.maxPendingHandshakes)
    this.#maxPendingPerSource = positiveInteger('maxPendingHandshakesPerSource', maxPendingHandshakesPerSource, TCP_DEFAULTS.maxPendingHandshakesPerSource)
    this.#closeTimeout = positive('closeTimeout', closeTimeout, TCP_DEFAULTS.closeTimeout)
    this.#reporter = new InboundReporter(
      onInboundError,
      positive('inboundErrorInterval', inboundErrorInterval, TCP_DEFAULTS.inboundErrorInterval),
      positiveInteger('inboundErrorBurst', inboundErrorBurst, TCP_DEFAULTS.inboundErrorBurst),
    )
    const policy = { allowList: allowed, versions }
    this.#policy = secret === undefined ? Promise.resolve(policy) : stretchClusterSecret(secret).then((prs) => ({ ...policy, prs }))
    // A failure surfaces at the first admission that awaits it.
    this.#policy.catch(noop)
    this.#muxerOptions = muxerOptions
    this.#createMuxedConnection = createMuxedConnection
    // Let the muxer check its options now, not on the first connection.
    try {
      const idle = new Duplex({ read() {}, write: (_chunk, _encoding, done: () => void) => done() })
      createMuxedConnection(idle, { ...muxerOptions, direction: 'outbound', remoteNodeId: this.nodeId, remoteAddress: 'check' }).abort()
    } catch (cause) {
      throw new InvalidOptionsError(`invalid multiplexer option: ${(cause as Error).message}`, { cause })
    }
  }

  get address(): string | undefined {
    return this.#address
  }

  async listen(address: string, handler: ConnectionHandler, options: AbortOptions = {}): Promise<string> {
    throwIfAborted(options.signal)
    if (this.#closed) throw new ListenFailedError('the transport is closed')
    if (this.#server !== undefined) throw new ListenFailedError(`the transport already listens on ${this.#address ?? '(starting)'}`)
    if (typeof handler !== 'function') throw new InvalidOptionsError('listen needs a connection handler')
    const { host, port } = parseAddress(address, { allowPortZero: true })
    const server = createServer({
      ...this.#credentials,
      requestCert: true,
      rejectUnauthorized: false,
      handshakeTimeout: this.#handshakeTimeout,
    })
    this.#server = server
    server.on('connection', (raw: Socket) => this.#onRawConnection(raw))
    server.on('secureConnection', (socket: TLSSocket) => void this.#accept(socket, handler))
    server.on('tlsClientError', (cause: Error, socket: TLSSocket) => this.#onTlsClientError(cause, socket))

    try {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject)
        server.listen({ host, port }, () => {
          server.off('error', reject)
          resolve()
        })
      })
      throwIfAborted(options.signal)
    } catch (cause) {
      this.#server = undefined
      server.close()
      if (cause instanceof P2PError) throw cause
      if ((cause as NodeJS.ErrnoException).code === 'EADDRINUSE') throw new AddressInUseError(`${address} is in use`, { cause })
      throw new ListenFailedError(`cannot listen on ${address}: ${(cause as Error).message}`, { cause })
    }
    // After a successful listen, accept errors (e.g. EMFILE) must not crash the process.
    server.on('error', (cause: Error) => this.#report(new ListenFailedError('accepting a connection failed', { cause }), address))
    const bound = server.address()
    if (bound === null || typeof bound === 'string') throw new ListenFailedError(`cannot read the bound address of ${address}`)
    this.#address = formatAddress(bound.address, bound.port)
    return this.#address
  }

  async dial(address: string, options: TcpDialOptions = {}): Promise<Connection> {
    throwIfAborted(options.signal)
    if (this.#closed) throw new DialFailedError('the transport is closed')
    const { host, port } = parseAddress(address)
    const expectedNodeId = options.remoteNodeId?.toLowerCase()
    if (expectedNodeId !== undefined && !NODE_ID.test(expectedNodeId)) {
      throw new InvalidOptionsError(`remoteNodeId ${JSON.stringify(options.remoteNodeId)} is not a node id`)
    }
    const remoteAddress = formatAddress(host, port)
    const deadline = new AbortController()
    const timer = setTimeout(
      () => deadline.abort(new DialFailedError(`dialling ${remoteAddress} timed out after ${this.#handshakeTimeout} ms`)),
      this.#handshakeTimeout,
    )
    const onAbort = (): void => deadline.abort(reasonOf(options.signal))
    options.signal?.addEventListener('abort', onAbort)
    const socket = connect({ host, port, ...this.#credentials, rejectUnauthorized: false })
    socket.on('error', noop) // every failure surfaces through the awaited events below
    this.#dialling.add(socket)
    try {
      await secureConnect(socket, remoteAddress, deadline.signal)
      const base = await this.#policy
      const policy = expectedNodeId === undefined ? base : { ...base, expectedNodeId }
      const { remoteNodeId } = await admit(socket, 'outbound', policy, deadline.signal)
      if (this.#closed) throw new DialFailedError('the transport closed during the dial')
      return this.#connect(socket, 'outbound', remoteNodeId, remoteAddress)
    } catch (err) {
      if (isRefusal(err)) endRefused(socket, this.#handshakeTimeout)
      else socket.destroy()
      throw err
    } finally {
      clearTimeout(timer)
      options.signal?.removeEventListener('abort', onAbort)
      this.#dialling.delete(socket)
    }
  }

  async close(options: AbortOptions = {}): Promise<void> {
    throwIfAborted(options.signal)
    this.#closed = true
    // Stop listening first: the port is free as soon as this returns.
    const server = this.#server
    this.#server = undefined
    this.#address = undefined
    const serverClosed = server === undefined ? Promise.resolve() : new Promise<void>((resolve) => server.close(() => resolve()))
    for (const { raw, admission } of this.#pending.values()) {
      admission.abort(new ConnectionClosedError('the transport is closing'))
      raw.destroy()
    }
    for (const socket of this.#dialling) socket.destroy()

    // Graceful first (go-away, open streams may finish), bounded by closeTimeout or the signal.
    const connections = [...this.#connections]
    let timer: NodeJS.Timeout | undefined
    let onAbort: (() => void) | undefined
    try {
      await Promise.race([
        Promise.all(connections.map((c) => c.close().catch(noop))),
        new Promise<void>((resolve) => {
          timer = setTimeout(resolve, this.#closeTimeout)
          onAbort = resolve
          options.signal?.addEventListener('abort', onAbort)
        }),
      ])
      const reason = new ConnectionClosedError('the transport closed')
      for (const c of connections) c.abort(reason)
      await Promise.all(connections.map((c) => c.closed))
      // Refused sockets still lingering for their verdict to be read, and anything the muxer left open.
      for (const raw of this.#inbound) raw.destroy()
      await serverClosed
    } finally {
      this.#reporter.close()
      clearTimeout(timer)
      if (onAbort !== undefined) options.signal?.removeEventListener('abort', onAbort)
    }
    throwIfAborted(options.signal)
  }

  #connect(socket: TLSSocket, direction: Role, remoteNodeId: string, remoteAddress: string): Connection {
    const connection = this.#createMuxedConnection(socket, { ...this.#muxerOptions, direction, remoteNodeId, remoteAddress })
    this.#connections.add(connection)
    void connection.closed.then(() => this.#connections.delete(connection))
    return connection
  }

  #onRawConnection(raw: Socket): void {
    const key = `${raw.remoteAddress}|${raw.remotePort}`
    const source = sourceOf(raw.remoteAddress)
    const fromSource = this.#pendingBySource.get(source) ?? 0
    if (fromSource >= this.#maxPendingPerSource) {
      raw.destroy()
      this.#report(new HandshakeLimitError(`${source} already has ${fromSource} connections in handshake; dropped at accept`), this.#remoteOf(raw))
      return
    }
    if (this.#pending.size - this.#dropping >= this.#maxPendingHandshakes) this.#evictOne()
    this.#inbound.add(raw)
    // First the first-byte deadline; a connection that sent something gets the rest of the handshake deadline.
    const deadline = setTimeout(() => {
      if (raw.bytesRead === 0) {
        this.#drop(entry, new PeerTimeoutError(`no byte within ${this.#firstByteTimeout} ms`))
        return
      }
      entry.deadline = setTimeout(
        () => this.#drop(entry, new PeerTimeoutError(`no admission within ${this.#handshakeTimeout} ms`)),
        this.#handshakeTimeout - this.#firstByteTimeout,
      )
    }, this.#firstByteTimeout)
    const entry: PendingInbound = { raw, source, admission: new AbortController(), deadline, dropped: false }
    this.#pending.set(key, entry)
    this.#pendingBySource.set(source, fromSource + 1)
    raw.once('close', () => {
      this.#inbound.delete(raw)
      this.#release(key, entry)
    })
  }

  /**
   * Drops a pending connection and reports why (the TLS error or the failed admission
   * that follows is not reported again). It stays pending until it closes.
   */
  #drop(entry: PendingInbound, reason: P2PError): void {
    if (entry.dropped) return
    entry.dropped = true
    this.#dropping++
    clearTimeout(entry.deadline)
    this.#report(reason, this.#remoteOf(entry.raw))
    entry.admission.abort(reason)
    entry.raw.destroy()
  }

  /** Forgets a pending connection (admitted, refused or closed); idempotent. */
  #release(key: string, entry: PendingInbound): void {
    clearTimeout(entry.deadline)
    if (this.#pending.get(key) !== entry) return
    this.#pending.delete(key)
    if (entry.dropped) this.#dropping--
    const left = (this.#pendingBySource.get(entry.source) ?? 1) - 1
    if (left === 0) this.#pendingBySource.delete(entry.source)
    else this.#pendingBySource.set(entry.source, left)
  }

  /** Makes room for one more pending connection: drops the oldest that sent nothing, else the oldest. */
  #evictOne(): void {
    let victim: PendingInbound | undefined
    for (const pending of this.#pending.values()) {
      if (pending.dropped) continue
      victim ??= pending
      if (pending.raw.bytesRead === 0) {
        victim = pending
        break
      }
    }
    if (victim === undefined) return
    this.#drop(victim, new HandshakeLimitError(`${this.#maxPendingHandshakes} connections in handshake; the oldest was dropped to make room`))
  }

  #onTlsClientError(cause: Error, socket: TLSSocket): void {
    // No address left: the socket was destroyed before its error surfaced, by one of our
    // drops (reported there) or by a client that hung up during the TLS handshake.
    if (socket.remoteAddress === undefined) return
    if (this.#pending.get(`${socket.remoteAddress}|${socket.remotePort}`)?.dropped === true) return
    const error =
      (cause as NodeJS.ErrnoException).code === 'ERR_TLS_HANDSHAKE_TIMEOUT'
        ? new PeerTimeoutError(`no TLS handshake within ${this.#handshakeTimeout} ms`, { cause })
        : new ProtocolError(`TLS handshake failed: ${cause.message}`, { cause })
    this.#report(error, this.#remoteOf(socket))
  }

  async #accept(socket: TLSSocket, handler: ConnectionHandler): Promise<void> {
    const key = `${socket.remoteAddress}|${socket.remotePort}`
    const remoteAddress = this.#remoteOf(socket)
    const pending = this.#pending.get(key)
    socket.on('error', noop) // failures surface through admission's reads, then through the muxer
    if (pending === undefined || this.#closed) {
      socket.destroy()
      return
    }
    let connection: Connection
    try {
      const { remoteNodeId } = await admit(socket, 'inbound', await this.#policy, pending.admission.signal)
      if (this.#closed) throw new ConnectionClosedError('the transport is closing')
      connection = this.#connect(socket, 'inbound', remoteNodeId, remoteAddress)
    } catch (err) {
      if (isRefusal(err)) endRefused(socket, this.#handshakeTimeout)
      else socket.destroy()
      const error = err instanceof P2PError ? err : new ProtocolError('admission failed', { cause: err })
      if (!pending.dropped) this.#report(error, remoteAddress)
      return
    } finally {
      // Admitted or refused, the accept-time deadline no longer applies (endRefused bounds a refused socket).
      this.#release(key, pending)
    }
    try {
      handler(connection)
    } catch (err) {
      connection.abort(err instanceof Error ? err : new Error(String(err)))
    }
  }

  #remoteOf(socket: Socket): string {
    return socket.remoteAddress === undefined ? 'unknown' : formatAddress(socket.remoteAddress, socket.remotePort ?? 0)
  }

  #report(error: P2PError, remoteAddress: string): void {
    this.#reporter.report(error, remoteAddress)
  }
}

/**
 * Creates the TCP transport: TLS 1.3 with both sides presenting their
 * certificate, admission (cluster secret proved over the session, or the
 * allow-list) before any application byte, then the yamux multiplexer.
 *
 * @example
 * ```ts
 * const transport = tcpTransport({ identity: await loadOrCreateIdentity(dir), clusterSecret })
 * await transport.listen('0.0.0.0:7400', (connection) => serve(connection))
 * const connection = await transport.dial('10.0.0.2:7400')
 * ```
 */
export function tcpTransport(init: TcpTransportInit): TcpTransport {
  return new TcpTransportImpl(init, createMuxedConnection)
}
