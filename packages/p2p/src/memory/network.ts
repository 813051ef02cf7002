// The shared in-memory network: who listens where, which links are up, and
// the faults tests inject (a node cut off, one connection broken).
import { ConnectionClosedError } from '../errors.js'
import type { Connection } from '../types.js'
import type { MemoryDuplex } from './duplex.js'

/** How a fault shows: the link breaks (`ERR_CONNECTION_CLOSED` at once), or falls silent (`ERR_PEER_TIMEOUT` after the dead-peer timeout). */
export interface FaultOptions {
  /** `true`: bytes stop flowing without any error, as when a cable is pulled or a host freezes. Default `false`. */
  silent?: boolean
}

/**
 * A shared in-memory network for {@link memoryTransport}s, with the fault hooks
 * that tests of the layers above need.
 */
export interface MemoryNetwork {
  /**
   * Cuts a node off: every connection to or from it dies (`ERR_CONNECTION_CLOSED`
   * on both sides, or with `silent`, `ERR_PEER_TIMEOUT` once the dead-peer timeout
   * passes), and dials to or from it fail with `ERR_DIAL_FAILED` until {@link MemoryNetwork.heal}.
   */
  isolate(nodeId: string, options?: FaultOptions): void
  /** Lets an isolated node dial and be dialled again (broken connections stay broken). */
  heal(nodeId: string): void
  /** Whether `nodeId` is currently isolated. */
  isIsolated(nodeId: string): boolean
  /** Breaks the link under one connection (either end of it); both ends fail as with {@link MemoryNetwork.isolate}. */
  disconnect(connection: Connection, options?: FaultOptions): void
}

/** The listener a memory transport registered at an address. */
export interface MemoryListener extends MemoryPeer {
  accept(dialler: MemoryPeer, socket: MemoryDuplex): Connection
}

/** What the network knows of a dialling transport. */
export interface MemoryPeer {
  readonly nodeId: string
  readonly host: string
  admits(peer: MemoryPeer): boolean
}

interface Link {
  readonly nodes: readonly [string, string]
  readonly socket: MemoryDuplex
}

export class Network implements MemoryNetwork {
  private readonly listeners = new Map<string, MemoryListener>()
  private readonly links = new Set<Link>()
  private readonly linkOf = new WeakMap<Connection, Link>()
  private readonly isolated = new Set<string>()
  private readonly nextPort = new Map<string, number>()

  isolate(nodeId: string, options: FaultOptions = {}): void {
    this.isolated.add(nodeId)
    for (const link of this.links) {
      if (link.nodes.includes(nodeId)) this.breakLink(link, options, `node ${nodeId.slice(0, 8)}… was cut off the network`)
    }
  }

  heal(nodeId: string): void {
    this.isolated.delete(nodeId)
  }

  isIsolated(nodeId: string): boolean {
    return this.isolated.has(nodeId)
  }

  disconnect(connection: Connection, options: FaultOptions = {}): void {
    const link = this.linkOf.get(connection)
    if (link !== undefined) this.breakLink(link, options, 'the connection was cut')
  }

  /** Binds `host:port`; port 0 picks a free one. Returns the bound port, or `undefined` when taken. */
  bind(host: string, port: number, listener: MemoryListener): number | undefined {
    const bound = port === 0 ? this.freePort(host) : port
    const address = `${host}:${bound}`
    if (this.listeners.has(address)) return undefined
    this.listeners.set(address, listener)
    return bound
  }

  unbind(address: string, listener: MemoryListener): void {
    if (this.listeners.get(address) === listener) this.listeners.delete(address)
  }

  listenerAt(address: string): MemoryListener | undefined {
    return this.listeners.get(address)
  }

  /** A port for the dialling side of a connection. */
  freePort(host: string): number {
    let port = this.nextPort.get(host) ?? 10_000
    while (this.listeners.has(`${host}:${port}`)) port++
    this.nextPort.set(host, port + 1)
    return port
  }

  /** Records the link under a connection pair, so faults can reach it. */
  addLink(nodes: readonly [string, string], socket: MemoryDuplex, connections: readonly Connection[]): void {
    const link: Link = { nodes, socket }
    this.links.add(link)
    for (const connection of connections) {
      this.linkOf.set(connection, link)
      void connection.closed.then(() => this.links.delete(link))
    }
  }

  private breakLink(link: Link, options: FaultOptions, message: string): void {
    this.links.delete(link)
    if (options.silent === true) link.socket.blackhole()
    else link.socket.sever(new ConnectionClosedError(message))
  }
}

/** Creates an empty in-memory network; give it to each {@link memoryTransport}. */
export function createMemoryNetwork(): MemoryNetwork {
  return new Network()
}
