// The holder: keeps other owners' ciphertext in `replicas/<owner>/`, one blob store per owner,
// with its own tables in the node's index and its own locks. It serves the requests a peer sends
// on its connection (a bounded number at once) and cleans up after the connection closes.
import type { Connection } from '@dcas/p2p'
import type { Index } from '@dcas/store'
import { InFlight } from './concurrency.js'
import { messageOf } from './errors.js'
import { serveRequest, sweepReceived } from './holder-requests.js'
import { holderTables, type HolderContext, type HolderTables } from './holder-state.js'
import { KeyedLocks } from './locks.js'
import type { Logger } from './logger.js'
import { ReplicaSpace, type HolderLimits } from './replica-space.js'
import { Exchange } from './wire.js'

export type { HolderTables, ReplicaRef } from './holder-state.js'

/** Requests from one peer served at once; the rest wait in the muxer, under its flow control. */
const MAX_REQUESTS_PER_PEER = 16

/** What a {@link Holder} is made of. */
export interface HolderOptions {
  /** The node's data directory; replicas live in its `replicas/`. */
  root: string
  index: Index
  log: Logger
  /** What other owners may hold here. */
  limits?: HolderLimits
}

/** Other owners' replicas on this node, and the holder's side of the replication protocol. */
export class Holder {
  readonly tables: HolderTables
  readonly #space: ReplicaSpace
  readonly #index: Index
  readonly #log: Logger
  readonly #locks = new KeyedLocks()
  readonly #ctx: HolderContext
  readonly #serving = new Set<Promise<void>>()

  constructor(options: HolderOptions) {
    this.#space = new ReplicaSpace(options.root, options.limits)
    this.#index = options.index
    this.#log = options.log
    this.tables = holderTables(options.index)
    this.#ctx = { index: options.index, tables: this.tables, locks: this.#locks, log: options.log, space: this.#space }
  }

  /**
   * Removes replica blobs no ref counts (an interrupted write), marks counted ones gone from disk as damaged,
   * and counts what each owner holds here.
   */
  async open(): Promise<void> {
    const { counts, damaged, refs } = this.tables
    const space = this.#space
    let swept = 0
    for (const owner of await space.owners()) {
      const store = await space.store(owner)
      for await (const id of store.list()) {
        if (!counts.has(`${owner}/${id}`)) {
          await store.delete(id)
          swept++
        } else {
          space.bytes(owner, (await store.stat(id))?.size ?? 0)
        }
      }
    }
    for (const [key] of refs.entries()) space.refs(key.slice(0, 64), 1)
    if (swept > 0) this.#log.info({ swept }, 'removed unreferenced replica blobs left by an interrupted write')
    // Replicas counted but gone from disk (lost or wiped) are marked damaged: the owner's catch-up resends them.
    const lost: string[] = []
    for (const [key] of counts.entries()) {
      const owner = key.slice(0, 64)
      if (!damaged.has(key) && (await (await space.existing(owner))?.has(key.slice(65))) !== true) lost.push(key)
    }
    if (lost.length > 0) {
      await this.#index.transaction((tx) => {
        for (const key of lost) tx.put(damaged, key, true)
      })
      this.#log.warn({ lost: lost.length }, 'replica blobs are missing from disk; their owners will send them again')
    }
  }

  /**
   * Serves the requests a peer sends on `conn` until it closes; then, once every request has ended (a blob
   * whose write finishes after the close is swept too), frees the blobs it put and no ref took up.
   */
  serve(conn: Connection): Promise<void> {
    const p = this.#serve(conn)
    this.#serving.add(p)
    void p.finally(() => this.#serving.delete(p))
    return p
  }

  async #serve(conn: Connection): Promise<void> {
    const owner = conn.remoteNodeId
    const received = new Set<string>()
    const serving = new InFlight(MAX_REQUESTS_PER_PEER)
    // A peer that breaks the protocol loses its connection, as for a malformed frame.
    const onMalformed = (err: Error): void => conn.abort(err)
    try {
      for await (const stream of conn.incoming) await serving.add(() => serveRequest(this.#ctx, owner, new Exchange(stream), received, onMalformed))
    } catch (err) {
      this.#log.debug({ peer: owner, err: messageOf(err) }, 'incoming streams ended')
    } finally {
      await serving.drain()
    }
    try {
      await sweepReceived(this.#ctx, owner, received)
    } catch (err) {
      this.#log.warn({ peer: owner, err: messageOf(err) }, 'cleaning up after a closed connection failed')
    }
  }

  /** Waits for the connections being served to end (close the transport first), then closes every owner's replica store. */
  async close(): Promise<void> {
    await Promise.allSettled([...this.#serving])
    await this.#space.close()
  }

  /** What one owner holds here: bytes of replicas and refs. */
  usage(owner: string): { bytes: number; refs: number } {
    return this.#space.usage(owner)
  }
}
