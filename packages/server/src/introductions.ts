// A connected peer's way into this node's work: served at once, introduced (its peer records known),
// then caught up with. Tracks which peers are not introduced yet (waitForSync waits for them), when
// each was last caught up with, and sweeps every member once when the node was restored from its
// identity alone.
import type { EventEmitter } from 'node:events'
import type { Connection } from '@dcas/p2p'
import type { Background } from './background.js'
import { raceAbort } from './concurrency.js'
import type { Gossip } from './gossip.js'
import type { Holder } from './holder.js'
import type { Logger } from './logger.js'
import type { Membership } from './membership.js'
import type { Peers } from './peers.js'
import type { Repairer } from './repair.js'
import type { CatchUp } from './sync.js'
import type { ServerEvents } from './types.js'

/** What {@link Introductions} works with: the server's parts it tells of a peer, and its settings. */
export interface IntroductionsOptions {
  /** Serves a connected peer's requests. */
  holder: Holder
  /** Records the connection; its peer records introduce the peer. */
  membership: Membership
  /** Tells a connected peer the records this node knows. */
  gossip: Gossip
  peers: Peers
  /** Told that a peer is back, so its retries go on. */
  background: Background
  /** Schedules catch-up with an introduced peer. */
  catchUp: CatchUp
  /** Told that a peer is reachable: repairs that waited for it go on. */
  repair: Repairer
  /** The server's events: `peer:connect` is emitted on them, and the sweep listens to them. */
  events: EventEmitter<ServerEvents>
  /** `peer:connect`'s payload for a node. */
  infoOf: (nodeId: string) => ServerEvents['peer:connect'][0]
  /** A peer caught up with less than this long ago, and not restarted since, is not caught up with again (ms). */
  lostAfter: number
  maxConnections: number
  /** The index held no key at start, with an identity from before: the node was restored from identity/ alone. */
  emptyAtStart: boolean
  running: () => boolean
  shutdown: AbortSignal
  log: Logger
}

/** Peers on their way to being caught up with. */
export class Introductions {
  readonly #o: IntroductionsOptions
  /** Catch-ups finished, per peer: when, and which run of the peer (its record's start time). */
  readonly #synced = new Map<string, { at: number; startedAt: number | undefined }>()
  /** Connected peers not yet introduced (their catch-up starts once they are), for waitForSync. */
  readonly #introducing = new Map<string, { conn: Connection; done: Promise<void>; resolve: () => void }>()
  /** Members the sweep went to, and whether it runs. */
  readonly #swept = new Set<string>()
  #sweeping = false

  constructor(options: IntroductionsOptions) {
    this.#o = options
  }

  /** A connection became the one in use for its peer: serve its requests, tell it what this node knows. */
  connected(conn: Connection): void {
    const { holder, gossip, membership, peers, log } = this.#o
    const nodeId = conn.remoteNodeId
    // Until it is introduced (or gone), waitForSync waits for it: its catch-up starts then.
    const waiting = this.#introducing.get(nodeId)
    if (waiting !== undefined) waiting.conn = conn
    else {
      let done!: () => void
      this.#introducing.set(nodeId, { conn, done: new Promise<void>((resolve) => (done = resolve)), resolve: () => done() })
    }
    void conn.closed.then(() => this.#ended(nodeId, conn))
    // Served at once: its first request introduces it (its peer records).
    void holder.serve(conn)
    gossip.connected(conn)
    void membership.connected(nodeId).then(
      (member) => {
        if (member && peers.connection(nodeId) === conn) this.introduced(conn)
      },
      (err: unknown) => log.warn({ peer: nodeId, err: String(err) }, 'recording a connection failed'),
    )
  }

  /** A connected peer is a member: the public event, catch-up with it, and repairs that may have waited for it. */
  introduced(conn: Connection): void {
    const { peers, membership, background, catchUp, repair, events, infoOf, lostAfter } = this.#o
    const nodeId = conn.remoteNodeId
    peers.notify()
    void repair.reachable().catch(() => {})
    events.emit('peer:connect', infoOf(nodeId))
    background.succeeded(nodeId)
    // Connections come and go in a large cluster: a peer caught up with lately, and not restarted since, is not again.
    const synced = this.#synced.get(nodeId)
    const fresh = synced !== undefined && Date.now() - synced.at < lostAfter && synced.startedAt === membership.record(nodeId)?.startedAt
    if (peers.meshed || !fresh) catchUp.schedule(conn)
    this.#ended(nodeId)
  }

  /** Catch-up with `nodeId` finished. */
  synced(nodeId: string): void {
    this.#synced.set(nodeId, { at: Date.now(), startedAt: this.#o.membership.record(nodeId)?.startedAt })
  }

  /** Resolves once no connected peer waits to be introduced (their catch-ups are scheduled then). */
  async waitForIntroductions(signal: AbortSignal | undefined): Promise<void> {
    while (this.#introducing.size > 0) await raceAbort(Promise.all([...this.#introducing.values()].map((w) => w.done)), signal)
  }

  /** A connected peer was introduced, or its connection closed: whoever waits for its introduction goes on. */
  #ended(nodeId: string, conn?: Connection): void {
    const waiting = this.#introducing.get(nodeId)
    if (waiting === undefined || (conn !== undefined && waiting.conn !== conn)) return
    this.#introducing.delete(nodeId)
    waiting.resolve()
  }

  /**
   * Above `maxConnections` members, connections come only when needed. A node started on an empty index with an
   * identity from before (restored from `identity/` alone) catches up with every member all the same, one at a
   * time: what it lost comes back from wherever it is.
   */
  async sweep(): Promise<void> {
    const { peers, membership, events, shutdown, running, maxConnections } = this.#o
    if (this.#sweeping || !this.#o.emptyAtStart || peers.meshed) return
    this.#sweeping = true
    try {
      for (;;) {
        const next = membership.members().find((m) => m.state !== 'lost' && !this.#synced.has(m.nodeId) && !this.#swept.has(m.nodeId))
        if (next === undefined || !running()) return
        this.#swept.add(next.nodeId)
        let finish!: (e: { nodeId: string }) => void
        const done = new Promise<void>((resolve) => {
          finish = (e) => {
            if (e.nodeId === next.nodeId) resolve()
          }
        })
        events.on('synced', finish).on('peer:behind', finish).on('peer:disconnect', finish)
        try {
          const opened = peers.connection(next.nodeId) === undefined
          // Its introduction schedules catch-up with it.
          const conn = await peers.connect(next.nodeId, shutdown).catch(() => undefined)
          if (conn !== undefined && !this.#synced.has(next.nodeId)) await raceAbort(done, shutdown).catch(() => {})
          // A connection opened for this alone goes again when there are too many.
          if (conn !== undefined && opened && peers.size > maxConnections) conn.close().catch(() => conn.abort())
        } finally {
          events.off('synced', finish).off('peer:behind', finish).off('peer:disconnect', finish)
        }
      }
    } finally {
      this.#sweeping = false
    }
  }
}
