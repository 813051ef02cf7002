// The peers of this node: one connection per pair, the dial loops that keep bootstrap addresses
// connected, dialling members when they are needed, and the peers table in the index (who was
// dialled where). While the cluster is small (at most `maxConnections` members) every pair stays
// connected, the lower node id dialling; above that, members are dialled when a ref placed on them
// needs it and a connection unused for a while is closed once there are too many.
import { setTimeout as delay } from 'node:timers/promises'
import { parseAddress, sourceOf, type AbortOptions, type Connection, type Stream, type Transport } from '@dcas/p2p'
import type { Index, IndexTable } from '@dcas/store'
import { raceAbort } from './concurrency.js'
import { AbortedError, ClosedError, codeOf, InvalidOptionsError, messageOf, throwIfAborted, UnavailableError } from './errors.js'
import type { Logger } from './logger.js'
import type { Member, Peering } from './placement.js'
import type { DialErrorEvent } from './types.js'
import { anySignal, timeoutSignal } from './signals.js'

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
  /** Every known member (from the membership). */
  members: () => Member[]
  /** Where a member may be dialled. */
  addresses: (nodeId: string) => string[]
  /** Above this many members, connections are made when needed and idle ones closed. */
  maxConnections: number
  /** How long one dial may take, in ms. */
  dialTimeout: number
  /** Whether a connected peer has introduced itself (only those count for {@link Peers.waitFor}). */
  introduced: (nodeId: string) => boolean
}

/** A connection unused this long may be closed when there are too many. */
const IDLE_MS = 30_000
/** After a failed dial, a member is not dialled again on demand for this long (doubling up to the max). */
const REDIAL_FIRST_MS = 1_000
const REDIAL_MAX_MS = 30_000

/** The node's connections and known peers. */
export class Peers implements Peering {
  readonly #o: PeersOptions
  readonly #conns = new Map<string, Connection>()
  readonly #dialed = new Map<string, string>()
  readonly #waiters = new Set<() => void>()
  /** Dials on demand in flight, by node id. */
  readonly #dialling = new Map<string, Promise<Connection>>()
  /** Members that failed a dial: not before when they are dialled again on demand, and the next wait. */
  readonly #unreachable = new Map<string, { until: number; wait: number; error: string }>()
  /** Members kept connected by a loop of their own (small clusters), with what cuts its wait between dials short. */
  readonly #kept = new Map<string, AbortController>()
  /** Node ids connected through a bootstrap loop: never closed as idle. */
  readonly #bootstrapped = new Set<string>()
  /** The addresses of the bootstrap loops: a member reachable only there needs no loop of its own. */
  readonly #bootstrapAddresses = new Set<string>()
  readonly #lastUsed = new Map<string, number>()
  #reaper: NodeJS.Timeout | undefined
  #lastRefusalLog = 0

  constructor(options: PeersOptions) {
    this.#o = options
    this.#reaper = setInterval(() => this.#reap(), IDLE_MS / 2)
    this.#reaper.unref()
    options.signal.addEventListener('abort', () => clearInterval(this.#reaper), { once: true })
  }

  get #self(): string {
    return this.#o.transport.nodeId
  }

  /** Every known peer (from the membership), with whether it is connected now. */
  members(): Member[] {
    return this.#o.members()
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

  /** Whether every pair of members stays connected (a small cluster). */
  get meshed(): boolean {
    return this.#o.members().length <= this.#o.maxConnections
  }

  /** Where this node dials a peer, if it does. */
  dialledAt(nodeId: string): string | undefined {
    return this.#dialed.get(nodeId) ?? this.#o.table.get(nodeId)?.address
  }

  /** Resolves once at least `count` peers are connected and introduced. */
  async waitFor(count: number, signal?: AbortSignal): Promise<void> {
    await this.#until(() => [...this.#conns.keys()].filter((id) => this.#o.introduced(id)).length >= count, signal)
  }

  /** Takes a connection (inbound or dialled): one per pair of peers, the one dialled by the lower node id. */
  adopt(raw: Connection): void {
    const nodeId = raw.remoteNodeId
    if (!this.#o.accepting()) {
      raw.abort(new ClosedError())
      return
    }
    if (nodeId === this.#self) {
      raw.abort(new InvalidOptionsError('connected to itself'))
      return
    }
    const existing = this.#conns.get(nodeId)
    if (raw.direction === 'inbound' && existing === undefined && this.#overInboundLimit(raw)) {
      raw.abort(new UnavailableError('too many peer connections from this source'))
      return
    }
    if (existing !== undefined && existing.open) {
      // One connection per pair: both sides keep the one dialled by the lower node id.
      const dialer = (c: Connection): string => (c.direction === 'outbound' ? this.#self : nodeId)
      const keepNew = dialer(raw) === dialer(existing) || dialer(raw) < dialer(existing)
      if (!keepNew) {
        raw.close().catch(() => raw.abort())
        return
      }
      this.#conns.delete(nodeId)
      existing.close().catch(() => existing.abort())
    }
    const conn = tracked(raw, () => this.#lastUsed.set(nodeId, Date.now()))
    this.#conns.set(nodeId, conn)
    this.#lastUsed.set(nodeId, Date.now())
    this.#unreachable.delete(nodeId)
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
    this.#bootstrapAddresses.add(address)
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
        this.#bootstrapped.add(conn.remoteNodeId)
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

  /**
   * A connection to `nodeId`: the open one, else one dialled at its known addresses. A member that failed a
   * dial lately is not dialled again before its backoff ends (unless `force`): the call rejects at once.
   */
  async connect(nodeId: string, signal?: AbortSignal, force = false): Promise<Connection> {
    const open = this.connection(nodeId)
    if (open !== undefined) {
      this.#lastUsed.set(nodeId, Date.now())
      return open
    }
    throwIfAborted(signal)
    if (this.#o.signal.aborted) throw new ClosedError()
    const failed = this.#unreachable.get(nodeId)
    if (!force && failed !== undefined && failed.until > Date.now()) throw new UnavailableError(`${nodeId.slice(0, 12)} is unreachable (${failed.error})`)
    let pending = this.#dialling.get(nodeId)
    if (pending === undefined) {
      pending = this.#dialMember(nodeId).finally(() => this.#dialling.delete(nodeId))
      this.#dialling.set(nodeId, pending)
    }
    return raceAbort(pending, signal)
  }

  async #dialMember(nodeId: string): Promise<Connection> {
    const addresses = this.#o.addresses(nodeId)
    const errors: string[] = []
    for (const address of addresses) {
      try {
        const conn = await this.#o.transport.dial(address, { signal: timeoutSignal(this.#o.dialTimeout, this.#o.signal) })
        if (conn.remoteNodeId !== nodeId) {
          conn.abort(new InvalidOptionsError('another node answers there'))
          throw new UnavailableError(`${address} is another node now (${conn.remoteNodeId.slice(0, 12)})`)
        }
        this.adopt(conn)
        const adopted = this.connection(nodeId)
        if (adopted === undefined) throw new UnavailableError('the connection closed at once')
        this.#unreachable.delete(nodeId)
        return adopted
      } catch (err) {
        if (this.#o.signal.aborted) throw new ClosedError()
        errors.push(`${address}: ${messageOf(err)}`)
        // Told as a bootstrap dial's failure is: why a member that went away is not connected.
        const code = codeOf(err)
        this.#o.events.dialError({ address, ...(code === undefined ? {} : { code }), message: messageOf(err) })
      }
    }
    const error = addresses.length === 0 ? 'no address known' : errors.join('; ')
    const wait = Math.min((this.#unreachable.get(nodeId)?.wait ?? REDIAL_FIRST_MS / 2) * 2, REDIAL_MAX_MS)
    this.#unreachable.set(nodeId, { until: Date.now() + wait, wait, error })
    throw new UnavailableError(`cannot reach ${nodeId.slice(0, 12)} (${error})`)
  }

  /**
   * Brings the dial loops in line with the membership: in a small cluster, each member with a higher node id
   * and an address is dialled and kept connected; above `maxConnections`, members are dialled only when needed.
   */
  maintain(): void {
    if (this.#o.signal.aborted || !this.meshed) return
    for (const m of this.#o.members()) {
      // Two loops dialling one peer would each replace the other's connection: a bootstrap loop is enough.
      const own = this.#o.addresses(m.nodeId).filter((a) => !this.#bootstrapAddresses.has(a))
      if (this.#kept.has(m.nodeId) || m.nodeId < this.#self || own.length === 0) continue
      this.#kept.set(m.nodeId, new AbortController())
      void this.#keep(m.nodeId).finally(() => this.#kept.delete(m.nodeId))
    }
  }

  /** A member was heard of again (it returned): it is dialled at once, whatever its backoff. */
  retryNow(nodeId: string): void {
    this.#unreachable.delete(nodeId)
    const kept = this.#kept.get(nodeId)
    if (kept === undefined) return
    kept.abort()
    this.#kept.set(nodeId, new AbortController())
  }

  /** Keeps one member connected while the cluster is small and the member known. */
  async #keep(nodeId: string): Promise<void> {
    const { signal } = this.#o
    let backoff = 100
    const wanted = (): boolean => !signal.aborted && this.meshed && this.#o.members().some((m) => m.nodeId === nodeId)
    while (wanted()) {
      if (this.connection(nodeId) !== undefined) {
        backoff = 100
        await this.#until(() => this.connection(nodeId) === undefined || !wanted(), signal).catch(() => {})
        continue
      }
      try {
        await this.connect(nodeId, signal, true)
      } catch {
        if (signal.aborted) return
        const lost = this.#o.members().find((m) => m.nodeId === nodeId)?.state === 'lost'
        const cut = this.#kept.get(nodeId)?.signal
        try {
          await delay(backoff * (0.5 + Math.random()), undefined, { signal: anySignal(signal, cut) })
        } catch {
          if (signal.aborted) return
          backoff = 100
          continue
        }
        backoff = Math.min(backoff * 2, lost ? 60_000 : 10_000)
      }
    }
  }

  /** Above `maxConnections`, closes the connections unused longest (bootstrap ones excepted), down to the limit. */
  #reap(): void {
    const excess = this.#conns.size - this.#o.maxConnections
    if (excess <= 0 || this.meshed) return
    const now = Date.now()
    const idle = [...this.#conns.entries()]
      .filter(([id]) => !this.#bootstrapped.has(id) && now - (this.#lastUsed.get(id) ?? 0) > IDLE_MS)
      .sort(([a], [b]) => (this.#lastUsed.get(a) ?? 0) - (this.#lastUsed.get(b) ?? 0))
      .slice(0, excess)
    for (const [id, conn] of idle) {
      this.#o.log.debug({ peer: id }, 'closing an idle connection')
      conn.close().catch(() => conn.abort())
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

  /** Re-checks whoever waits on the connections. */
  #changed(): void {
    for (const check of [...this.#waiters]) check()
  }

  /** Wakes the waiters (the membership changed). */
  notify(): void {
    this.#changed()
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

/** A connection that reports each stream opened on it, either way (for closing idle ones). */
function tracked(conn: Connection, onUse: () => void): Connection {
  const incoming = (async function* (): AsyncGenerator<Stream> {
    for await (const stream of conn.incoming) {
      onUse()
      yield stream
    }
  })()
  return {
    get remoteNodeId() {
      return conn.remoteNodeId
    },
    get remoteAddress() {
      return conn.remoteAddress
    },
    get direction() {
      return conn.direction
    },
    get open() {
      return conn.open
    },
    get closed() {
      return conn.closed
    },
    incoming,
    openStream: (options?: AbortOptions) => {
      onUse()
      return conn.openStream(options)
    },
    close: (options?: AbortOptions) => conn.close(options),
    abort: (reason?: Error) => conn.abort(reason),
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
