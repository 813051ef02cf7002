// Catch-up with one peer: bring it up to date with this node's refs and deletes (those placed on it,
// and any it holds), and learn back what this node lost. Every version of a key is written by this
// node, its only writer: where the peer knows a version or a delete this node does not (its index was
// lost or restored), whichever was written last wins, judged by the owner's own signed or encrypted word.
import type { Connection } from '@dcas/p2p'
import type { RefRecord } from '@dcas/store'
import { mayPass, type Background, type Task } from './background.js'
import type { Catalogue, RemoteManifest } from './catalogue.js'
import type { BlobCipher } from './cipher.js'
import { deleteRef, listRefs, type RemoteRef } from './client.js'
import type { Deadlines } from './deadlines.js'
import type { Deleter } from './delete.js'
import { codeOf, messageOf, throwIfAborted } from './errors.js'
import { metaOf, type LocalStore } from './local.js'
import type { KeyLocks } from './locks.js'
import type { Logger } from './logger.js'
import type { Placement } from './placement.js'
import type { Replicator } from './replication.js'
import { signTombstone, type OwnerKeys, type Tombstone } from './secrets.js'

export interface CatchUpOptions {
  keys: OwnerKeys
  local: LocalStore
  cipher: BlobCipher
  catalogue: Catalogue
  deleter: Deleter
  replicator: Replicator
  placement: Placement
  background: Background
  keyLocks: KeyLocks
  deadlines: Deadlines
  log: Logger
  /** Told when catch-up with a peer finished with nothing left to retry. */
  onSynced: (nodeId: string) => void
}

/** Brings peers up to date and learns back from them. */
export class CatchUp {
  readonly #o: CatchUpOptions

  constructor(options: CatchUpOptions) {
    this.#o = options
  }

  /** Queues catch-up with a peer (on connect, and again when it failed in a way that may pass). */
  schedule(conn: Connection): void {
    this.#o.background.enqueue(conn, this.#task(conn))
  }

  #task(conn: Connection): Task {
    const task: Task = {
      what: 'catch-up',
      run: async () => {
        const retry = await this.#sync(conn)
        if (retry !== undefined) this.#o.background.retryLater(conn, retry, task)
      },
    }
    return task
  }

  /** Runs catch-up with one peer; resolves to a failure that may pass, when a step failed so. */
  async #sync(conn: Connection): Promise<unknown> {
    if (!conn.open) return undefined
    const { local, catalogue, placement, deadlines, keys, log } = this.#o
    const { index } = local
    const signal = deadlines.shutdown
    const peer = conn.remoteNodeId
    const remote = new Map<string, RemoteRef>()
    for await (const ref of listRefs(conn, () => deadlines.background())) remote.set(ref.refId, ref)
    const known = new Set<string>()
    // One key that cannot be brought over must not hold back the others; a failure that may pass brings a retry.
    let retry: unknown
    const step = async (key: string, what: string, fn: () => Promise<unknown>): Promise<void> => {
      try {
        await fn()
      } catch (err) {
        if (signal.aborted) throw err
        log.warn({ peer, key, err: messageOf(err) }, `catch-up: ${what} failed`)
        if (mayPass(err)) retry ??= err
      }
    }
    // Deletes first: they free space, and a stale copy must never outlive them.
    for (const [key, tomb] of index.tombstones.entries()) {
      throwIfAborted(signal)
      const refId = catalogue.refIdOf(key)
      known.add(refId)
      const r = remote.get(refId)
      if (r?.deleted === true && r.version >= tomb.version) continue
      // A placed peer that never held the key gets the delete too: it keeps the version, for recovery from identity/.
      if (r === undefined && !placement.places(refId, peer)) continue
      if (r === undefined || r.version <= tomb.version) await step(key, 'delete', () => deleteRef(conn, signTombstone(keys, refId, tomb.version, tomb.deletedAt), deadlines.background()))
      else if (!r.deleted) await step(key, 'recovering a newer version', () => catalogue.install(refId, r, signal))
    }
    for (const [key, record] of index.refs.entries()) {
      throwIfAborted(signal)
      const meta = metaOf(record)
      known.add(meta.refId)
      const r = remote.get(meta.refId)
      if (r === undefined || r.damaged === true || r.version < record.version) {
        if (placement.places(meta.refId, peer)) await step(key, 'replication', () => this.#o.keyLocks.run(key, (held) => this.#o.replicator.replicateTo(conn, held)))
      } else if (r.deleted || r.version > record.version || r.manifestCipherId !== meta.manifestCipherId) {
        await step(key, 'reconciling versions', () => this.#reconcile(conn, key, record, r))
      }
    }
    const deletes = await this.#learn(conn, remote, known, step)
    // Deletes this node did not know (they went with a lost index): new versions of those keys must go above them.
    await catalogue.raiseFloors(deletes.map((t) => [t.refId, t.version]))
    if (retry !== undefined) return retry
    this.#o.background.succeeded(peer)
    log.info({ peer, refs: remote.size }, 'caught up')
    this.#o.onSynced(peer)
    return undefined
  }

  /** The peer knows another state of a key this node holds: a delete, a higher version or another manifest. */
  async #reconcile(conn: Connection, key: string, record: RefRecord, r: RemoteRef): Promise<void> {
    const { catalogue, deleter, log, deadlines } = this.#o
    const meta = metaOf(record)
    // A delete counts only with this owner's proof: a peer cannot delete what it holds for us.
    const tomb = catalogue.ownTombstone(r)
    if (r.deleted && tomb === undefined) {
      log.warn({ key }, 'catch-up: the peer reports a delete this node never made; ignored')
      return
    }
    if (tomb !== undefined) {
      if (tomb.deletedAt >= record.updatedAt) await deleter.applyRemote(key, tomb)
      else await this.#bumpVersion(key, tomb.version)
      return
    }
    // The peer's version counts only as far as its manifest (which only this owner can make) backs it.
    let fetched: RemoteManifest
    try {
      fetched = await catalogue.remoteManifest(meta.refId, r, deadlines.shutdown)
    } catch (err) {
      if (codeOf(err) !== 'ERR_UNAUTHENTICATED') throw err
      // Not a manifest this owner vouches for (a forgery, or one written before manifests carried a MAC): this
      // node's version replaces it where the peer reports the same number; a higher one backed by nothing is ignored.
      if (r.version === record.version) await this.#o.keyLocks.run(key, (held) => this.#o.replicator.replicateTo(conn, held))
      else log.warn({ peer: conn.remoteNodeId, key }, 'catch-up: the peer reports a version of this key that no manifest of this owner backs; ignored')
      return
    }
    if (fetched.manifest.createdAt >= record.updatedAt) await catalogue.install(meta.refId, r, deadlines.shutdown, undefined, fetched)
    else await this.#bumpVersion(key, fetched.manifest.version)
  }

  /** Refs the peer holds that this node does not know: recovered, or (deletes) remembered. Resolves to those deletes. */
  async #learn(conn: Connection, remote: Map<string, RemoteRef>, known: Set<string>, step: (key: string, what: string, fn: () => Promise<unknown>) => Promise<void>): Promise<Tombstone[]> {
    const { local, catalogue, deleter, deadlines } = this.#o
    const deletes: Tombstone[] = []
    for (const r of remote.values()) {
      if (known.has(r.refId)) continue
      if (r.deleted) {
        const tomb = catalogue.ownTombstone(r)
        if (tomb === undefined) continue
        await step(r.refId, 'noting a delete', () => catalogue.noteRemoteTombstone(tomb))
        deletes.push(tomb)
      } else {
        await step(r.refId, 'recovering a ref', () => catalogue.install(r.refId, r, deadlines.shutdown))
        // Another peer reported a later delete: this peer holds a stale copy, and is told.
        const deleted = local.tables.remoteTombstones.get(r.refId)
        if (deleted !== undefined && deleted.version >= r.version) {
          await step(r.refId, 'delete', () => deleteRef(conn, { refId: r.refId, ...deleted }, deadlines.background()))
        }
      }
    }
    // A ref recovered from another peer while this ran may be one of these deletes: whichever was written last wins.
    if (deletes.length > 0) {
      const keyOf = new Map<string, [string, RefRecord]>()
      for (const [key, record] of local.index.refs.entries()) keyOf.set(metaOf(record).refId, [key, record])
      for (const r of deletes) {
        const found = keyOf.get(r.refId)
        if (found !== undefined && found[1].version <= r.version && r.deletedAt >= found[1].updatedAt) {
          await step(found[0], 'applying a newer delete', () => deleter.applyRemote(found[0], r))
        }
      }
    }
    return deletes
  }

  /** This node's version of `key` is the newest write but carries a lower number than a peer's: renumber it above `above`, everywhere. */
  async #bumpVersion(key: string, above: number): Promise<void> {
    const { local, catalogue, keyLocks, placement, replicator, deadlines, log } = this.#o
    const bumped = await keyLocks.run(key, async (held) => {
      const record = local.index.refs.get(key)
      if (record === undefined || record.version > above) return false
      const { manifest } = await catalogue.resolve(key, deadlines.shutdown, held)
      await catalogue.reseal(held, record, { ...manifest, version: above + 1 })
      return true
    })
    if (!bumped) return
    log.info({ key, version: above + 1 }, "renumbered the newest version above a peer's")
    for (const conn of placement.targets(catalogue.refIdOf(key))) replicator.later(conn, key, 'replication')
  }
}
