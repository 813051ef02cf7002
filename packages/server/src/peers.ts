// The peers of this node: one connection per pair, the dial loops that keep bootstrap addresses
// connected, and the peers table in the index (who was seen, where to dial them).
import { setTimeout as delay } from 'node:timers/promises'
import { parseAddress, sourceOf, type Connection, type Transport } from '@dcas/p2p'
import type { Index, IndexTable } from '@dcas/store'
import { AbortedError, ClosedError, codeOf, InvalidOptionsError, messageOf, throwIfAborted, UnavailableError } from './errors.js'
import type { Logger } from './logger.js'
import type { Member, Membership } from './placement.js'
import type { DialErrorEvent, PeerInfo } from './types.js'

/**
 * Admitted inbound connections kept at once from one source address (an IPv4 address or an IPv6 /64;
 * loopback is not limited, so that one host can run a cluster), and from all sources: node identities
 * are free to make, and each connection may hold memory on this node.
 */
export const MAX_INBOUND_PER_SOURCE = 16
export const MAX_INBOUND = 512
/** Peers that dialled in and are remembered in the peers table; the ones this node dials always are. */
export const MAX_REMEMBERED = 4096

/** What {@link Peers} tells the server. */
export interface PeerEvents {
  /** A connection to a peer is now the one in use. */
  connected(conn: Connection): void
  /** A connection closed; `current`: it was the one in use (the peer is now disconnected). */
  closed(conn: Connection, current: boolean, reason: Error | undefined): void
  /** Dialling an address failed (each attempt). */
  dialError(event: DialErrorEvent): void
}

export interface PeersOptions {
  transport: Transport
  index: Index
  table: IndexTable<{ address?: string; lastSeen: number }>
  log: Logger
  /** Whether new connections are taken now. */
  accepting: () => boolean
  /** Ends the dial loops. */
  signal: AbortSignal
  events: PeerEvents
}

/** The node's connections and known peers. */
export class Peers implements Membership {
  readonly #o: PeersOptions
  readonly #conns = new Map<string, Connection>()
  readonly #dialed = new Map<string, string>()
  readonly #waiters = new Set<() => void>()
  #lastRefusalLog = 0

  constructor(options: PeersOptions) {
    this.#o = options
  }

  get #self(): string {
    return this.#o.transport.nodeId
  }

  /** Every known peer, connected or not. */
  members(): Member[] {
    const out = new Map<string, Member>()
    for (const [nodeId] of this.#o.table.entries()) if (nodeId !== this.#self) out.set(nodeId, { nodeId, connected: false })
    for (const nodeId of this.#conns.keys()) out.set(nodeId, { nodeId, connected: true })
    return [...out.values()]
  }

  /** The open connection to `nodeId`, if any. */
  connection(nodeId: string): Connection | undefined {
    const conn = this.#conns.get(nodeId)
    return conn?.open === true ? conn : undefined
  }

  /** Every open connection. */
  connections(): Connection[] {
    return [...this.#conns.values()].filter((c) => c.open)
  }

  /** How many peers are connected. */
  get size(): number {
    return this.#conns.size
  }

  /** Known peers and whether they are connected. */
  info(): PeerInfo[] {
    return this.members().map((m) => this.infoOf(m.nodeId, m.connected))
  }

  /** One peer as {@link PeerInfo}. */
  infoOf(nodeId: string, connected: boolean): PeerInfo {
    const address = this.#dialed.get(nodeId) ?? this.#o.table.get(nodeId)?.address
    return { nodeId, ...(address === undefined ? {} : { address }), connected }
  }

  /** Resolves once at least `count` peers are connected. */
  async waitFor(count: number, signal?: AbortSignal): Promise<void> {
    await this.#until(() => this.#conns.size >= count, signal)
  }

  /** Takes a connection (inbound or dialled): one per pair of peers, the one dialled by the lower node id. */
  adopt(conn: Connection): void {
    const nodeId = conn.remoteNodeId
    if (!this.#o.accepting()) {
      conn.abort(new ClosedError())
      return
    }
    if (nodeId === this.#self) {
      conn.abort(new InvalidOptionsError('connected to itself'))
      return
    }
    const existing = this.#conns.get(nodeId)
    if (conn.direction === 'inbound' && existing === undefined && this.#overInboundLimit(conn)) {
      conn.abort(new UnavailableError('too many peer connections from this source'))
      return
    }
    if (existing !== undefined && existing.open) {
      // One connection per pair: both sides keep the one dialled by the lower node id.
      const dialer = (c: Connection): string => (c.direction === 'outbound' ? this.#self : nodeId)
      const keepNew = dialer(conn) === dialer(existing) || dialer(conn) < dialer(existing)
      if (!keepNew) {
        conn.close().catch(() => conn.abort())
        return
      }
      this.#conns.delete(nodeId)
      existing.close().catch(() => existing.abort())
    }
    this.#conns.set(nodeId, conn)
    // Identities are free to make: a peer that dialled in is remembered only while the table is not full.
    if (conn.direction === 'inbound' && (this.#o.table.has(nodeId) || this.#known() < MAX_REMEMBERED)) void this.#remember(nodeId).catch(() => {})
    void conn.closed.then((reason) => {
      const current = this.#conns.get(nodeId) === conn
      if (current) {
        this.#conns.delete(nodeId)
        this.#o.log.info({ peer: nodeId, reason: reason?.message }, 'peer disconnected')
      }
      this.#o.events.closed(conn, current, reason)
      this.#changed()
    })
    this.#o.log.info({ peer: nodeId, address: conn.remoteAddress, direction: conn.direction }, 'peer connected')
    this.#o.events.connected(conn)
    this.#changed()
  }

  /** Dials `address` and keeps it connected, with backoff, until the server shuts down. */
  async dial(address: string): Promise<void> {
    const { signal, transport, log, events } = this.#o
    let backoff = 100
    while (!signal.aborted) {
      try {
        const conn = await transport.dial(address, { signal })
        backoff = 100
        if (conn.remoteNodeId === this.#self) {
          const err = new InvalidOptionsError(`bootstrap address ${address} is this node itself; not dialling it again`)
          conn.abort(err)
          log.warn({ address }, err.message)
          events.dialError({ address, code: err.code, message: err.message })
          return
        }
        this.#dialed.set(conn.remoteNodeId, address)
        await this.#remember(conn.remoteNodeId, address)
        this.adopt(conn)
        // Whichever connection to that peer survives, dial again only once it is gone.
        await this.#until(() => this.#conns.get(conn.remoteNodeId) === undefined, signal)
      } catch (err) {
        if (signal.aborted) return
        log.debug({ address, err: messageOf(err) }, 'dial failed; retrying')
        const code = codeOf(err)
        events.dialError({ address, ...(code === undefined ? {} : { code }), message: messageOf(err) })
        try {
          await delay(backoff * (0.5 + Math.random()), undefined, { signal })
        } catch {
          return
        }
        backoff = Math.min(backoff * 2, 10_000)
      }
    }
  }

  /** Whether one more inbound connection from `conn`'s source would exceed the limits (it is then refused, logged once a minute). */
  #overInboundLimit(conn: Connection): boolean {
    const source = sourceOf(hostOf(conn.remoteAddress))
    let fromSource = 0
    let inbound = 0
    for (const c of this.#conns.values()) {
      if (c.direction !== 'inbound') continue
      inbound++
      if (sourceOf(hostOf(c.remoteAddress)) === source) fromSource++
    }
    const over = inbound >= MAX_INBOUND || (!isLoopback(source) && fromSource >= MAX_INBOUND_PER_SOURCE)
    if (over && Date.now() - this.#lastRefusalLog > 60_000) {
      this.#lastRefusalLog = Date.now()
      this.#o.log.warn({ source, inbound, fromSource }, 'refusing admitted peers over the connection limits (logged once a minute)')
    }
    return over
  }

  #known(): number {
    let n = 0
    for (const _ of this.#o.table.entries({ limit: MAX_REMEMBERED })) n++
    return n
  }

  async #remember(nodeId: string, address?: string): Promise<void> {
    const { table, index } = this.#o
    const known = table.get(nodeId)
    const next = { ...(known ?? {}), ...(address === undefined ? {} : { address }), lastSeen: Date.now() }
    if (known === undefined || known.address !== next.address) await index.transaction((tx) => tx.put(table, nodeId, next))
  }

  #changed(): void {
    for (const check of [...this.#waiters]) check()
  }

  /** Resolves when `done()` holds, checking again whenever a connection comes or goes. */
  async #until(done: () => boolean, signal: AbortSignal | undefined): Promise<void> {
    throwIfAborted(signal)
    if (done()) return
    await new Promise<void>((resolve, reject) => {
      const check = (): void => {
        if (!done()) return
        cleanup()
        resolve()
      }
      const onAbort = (): void => {
        cleanup()
        reject(new AbortedError(undefined, { cause: signal?.reason }))
      }
      const cleanup = (): void => {
        this.#waiters.delete(check)
        signal?.removeEventListener('abort', onAbort)
      }
      this.#waiters.add(check)
      signal?.addEventListener('abort', onAbort, { once: true })
    })
  }
}

/** The host of a `host:port` address (the address itself when it is not one). */
function hostOf(address: string): string {
  try {
    return parseAddress(address).host
  } catch {
    return address
  }
}

const isLoopback = (source: string): boolean => source === '::1' || source.startsWith('127.') || source === 'localhost'
