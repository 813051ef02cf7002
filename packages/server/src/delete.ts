// Deletes: the key goes locally (a tombstone stays, signed so that no peer can forge one), then
// every peer that holds or should hold the ref is told; one that misses it is told in the
// background, or when it reconnects.
import type { Connection } from '@dcas/p2p'
import type { Background } from './background.js'
import type { Catalogue } from './catalogue.js'
import { deleteRef } from './client.js'
import type { Deadlines } from './deadlines.js'
import { messageOf, NotFoundError } from './errors.js'
import type { LocalStore } from './local.js'
import type { HeldKey, KeyLocks } from './locks.js'
import type { Logger } from './logger.js'
import type { Membership, Placement } from './placement.js'
import { signTombstone, type OwnerKeys, type Tombstone } from './secrets.js'
import type { DeleteResult } from './types.js'

export interface DeleterOptions {
  keys: OwnerKeys
  local: LocalStore
  catalogue: Catalogue
  placement: Placement
  membership: Membership
  background: Background
  keyLocks: KeyLocks
  deadlines: Deadlines
  log: Logger
}

/** Deletes objects, here and on their holders. */
export class Deleter {
  readonly #o: DeleterOptions

  constructor(options: DeleterOptions) {
    this.#o = options
  }

  /** Deletes `held.key` everywhere. */
  async delete(held: HeldKey, signal: AbortSignal | undefined): Promise<DeleteResult> {
    const { local, catalogue, placement, deadlines, log } = this.#o
    const key = held.key
    let record = local.index.refs.get(key)
    if (record === undefined) {
      if (local.index.tombstones.has(key)) throw new NotFoundError(`"${key}" was already deleted`)
      record = await catalogue.recover(key, signal ?? deadlines.shutdown, held)
    }
    const { version } = record
    // Taken before the commit, which forgets which peers acknowledged a copy.
    const targets = placement.deleteTargets(catalogue.refIdOf(key))
    const tomb = await this.#commit(key, version, Date.now())
    const acknowledged: string[] = []
    await Promise.all(
      this.#connected(targets).map(async (conn) => {
        try {
          await deleteRef(conn, tomb, deadlines.request(signal))
          acknowledged.push(conn.remoteNodeId)
        } catch (err) {
          log.warn({ key, peer: conn.remoteNodeId, err: messageOf(err) }, 'delete on peer failed; retrying in the background')
          this.#later(conn, tomb)
        }
      }),
    )
    const pending = targets.filter((id) => !acknowledged.includes(id))
    log.info({ key, version, acknowledged: acknowledged.length, pending: pending.length }, 'deleted')
    return { acknowledged, pending }
  }

  /** A peer holds a delete of `key` newer than this node's version: apply it here and on every holder. */
  async applyRemote(key: string, tomb: Tombstone): Promise<void> {
    const { local, keyLocks, placement, log } = this.#o
    const targets = await keyLocks.run(key, async () => {
      const record = local.index.refs.get(key)
      if (record === undefined || record.version > tomb.version) return undefined
      const holders = placement.deleteTargets(tomb.refId)
      await local.commitDelete(key, tomb.refId, tomb.version, tomb.deletedAt)
      return holders
    })
    if (targets === undefined) return
    log.info({ key, version: tomb.version }, 'applied a newer delete from a peer')
    for (const conn of this.#connected(targets)) this.#later(conn, tomb)
  }

  /** Deletes `key` locally up to `version`; resolves to the signed tombstone. */
  async #commit(key: string, version: number, deletedAt: number): Promise<Tombstone> {
    const refId = this.#o.catalogue.refIdOf(key)
    await this.#o.local.commitDelete(key, refId, version, deletedAt)
    return signTombstone(this.#o.keys, refId, version, deletedAt)
  }

  #connected(nodeIds: string[]): Connection[] {
    return nodeIds.flatMap((id) => this.#o.membership.connection(id) ?? [])
  }

  /** Sends a delete to one peer in the background. */
  #later(conn: Connection, tomb: Tombstone): void {
    this.#o.background.enqueue(conn, { what: 'delete', run: () => deleteRef(conn, tomb, this.#o.deadlines.background()) })
  }
}
