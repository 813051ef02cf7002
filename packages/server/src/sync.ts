// Catch-up with one peer: bring it up to date with this node's refs and deletes (those placed on it,
// and any it holds), and learn back what this node lost. Both sides are walked in refId order, a page
// at a time, so memory stays flat whatever the peer lists; what a peer offers that this owner cannot
// vouch for is bounded. Every version of a key is written by this node, its only writer: where the
// peer knows a version or a delete this node does not (its index was lost or restored), whichever was
// written last wins, judged by the owner's own signed or encrypted word.
import type { Connection } from '@dcas/p2p'
import type { RefRecord } from '@dcas/store'
import { mayPass, type Background, type Task } from './background.js'
import type { Catalogue, RemoteManifest } from './catalogue.js'
import { deleteRef, listRefs, type RemoteRef } from './client.js'
import type { Deadlines } from './deadlines.js'
import type { Deleter } from './delete.js'
import { codeOf, messageOf, throwIfAborted } from './errors.js'
import { metaOf, type LocalStore } from './local.js'
import type { KeyLocks } from './locks.js'
import type { Logger } from './logger.js'
import type { Placement } from './placement.js'
import type { Replicator } from './replication.js'
import { signTombstone, type OwnerKeys } from './secrets.js'

/**
 * Entries a peer may list in one catch-up that lead nowhere (refs this owner cannot vouch for, deletes it
 * never signed, manifests that fail their checks) before the rest of its listing is ignored.
 */
export const MAX_FRUITLESS_ENTRIES = 10_000
/** Of those, manifests fetched and checked in vain (each one costs a transfer and a decryption). */
export const MAX_FRUITLESS_MANIFESTS = 64
/** Local refIds read at once. */
const LOCAL_PAGE = 256

export interface CatchUpOptions {
  keys: OwnerKeys
  local: LocalStore
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

/** One catch-up with one peer: its connection, what failed in a way that may pass, what it offered in vain. */
interface Round {
  conn: Connection
  peer: string
  retry: unknown
  fruitless: number
  fruitlessManifests: number
  listed: number
  /** Copies the peer holds that this node has no record of placing there (its index was lost, or placement moved), not yet noted. */
  holds: Array<[refId: string, version: number]>
}

/** Copies noted for repair at a time, so that a long listing is noted as it goes. */
const HOLDS_PAGE = 1_000

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
    const { local, deadlines, log } = this.#o
    const round: Round = { conn, peer: conn.remoteNodeId, retry: undefined, fruitless: 0, fruitlessManifests: 0, listed: 0, holds: [] }
    const remote = listRefs(conn, () => deadlines.background())[Symbol.asyncIterator]()
    const nextRemote = async (): Promise<RemoteRef | undefined> => {
      if (round.fruitless >= MAX_FRUITLESS_ENTRIES) {
        // The rest of its listing is not read: this node's own refs are treated as unknown to the peer.
        log.warn({ peer: round.peer, listed: round.listed }, 'catch-up: the peer lists too many refs this owner cannot vouch for; ignoring the rest')
        await remote.return?.(undefined)
        return undefined
      }
      const r = await remote.next()
      if (r.done === true) return undefined
      round.listed++
      return r.value
    }
    let localPage: Array<[string, string]> = []
    let localAt = 0
    let cursor: string | undefined
    const nextLocal = (): [refId: string, key: string] | undefined => {
      if (localAt >= localPage.length) {
        localPage = [...local.tables.refIds.entries({ limit: LOCAL_PAGE, ...(cursor === undefined ? {} : { after: cursor }) })]
        localAt = 0
        if (localPage.length === 0) return undefined
        cursor = localPage.at(-1)![0]
      }
      return localPage[localAt++]
    }
    // A merge of both sides in refId order.
    let mine = nextLocal()
    let theirs = await nextRemote()
    while (mine !== undefined || theirs !== undefined) {
      throwIfAborted(deadlines.shutdown)
      if (theirs === undefined || (mine !== undefined && mine[0] < theirs.refId)) {
        await this.#reconcile(round, mine![1], mine![0], undefined)
        mine = nextLocal()
      } else if (mine === undefined || theirs.refId < mine[0]) {
        await this.#learn(round, theirs)
        theirs = await nextRemote()
      } else {
        await this.#reconcile(round, mine[1], mine[0], theirs)
        mine = nextLocal()
        theirs = await nextRemote()
      }
    }
    await this.#noteHolds(round, 0)
    if (round.retry !== undefined) return round.retry
    this.#o.background.succeeded(round.peer)
    log.info({ peer: round.peer, refs: round.listed }, 'caught up')
    this.#o.onSynced(round.peer)
    return undefined
  }

  /** Runs one step; one key that cannot be brought over must not hold back the others, and a failure that may pass brings a retry. */
  async #step(round: Round, key: string, what: string, fn: () => Promise<unknown>): Promise<boolean> {
    try {
      await fn()
      return true
    } catch (err) {
      if (this.#o.deadlines.shutdown.aborted) throw err
      this.#o.log.warn({ peer: round.peer, key, err: messageOf(err) }, `catch-up: ${what} failed`)
      if (mayPass(err)) round.retry ??= err
      return false
    }
  }

  /** One of this node's keys, as the peer knows it (`r`) or not at all. */
  async #reconcile(round: Round, key: string, refId: string, r: RemoteRef | undefined): Promise<void> {
    const { local, keys, placement, deadlines, replicator } = this.#o
    const { conn, peer } = round
    const record = local.index.refs.get(key)
    if (record === undefined) {
      const tomb = local.index.tombstones.get(key)
      if (tomb === undefined) return
      // Deletes: they free space, and a stale copy must never outlive them.
      if (r?.deleted === true && r.version >= tomb.version) return
      // A placed peer that never held the key gets the delete too: it keeps the version, for recovery from identity/.
      if (r === undefined && !placement.places(refId, peer)) return
      if (r === undefined || r.version <= tomb.version) await this.#step(round, key, 'delete', () => deleteRef(conn, signTombstone(keys, refId, tomb.version, tomb.deletedAt), deadlines.background()))
      else if (!r.deleted) await this.#step(round, key, 'recovering a newer version', () => this.#o.catalogue.install(refId, r, deadlines.shutdown))
      return
    }
    const meta = metaOf(record)
    if (r === undefined || r.damaged === true || r.version < record.version) {
      if (placement.places(refId, peer)) await this.#step(round, key, 'replication', () => replicator.replicateTo(conn, key, { resend: true, verify: r?.damaged === true }))
      else if (r !== undefined && !r.deleted) round.holds.push([refId, r.version])
    } else if (r.deleted || r.version > record.version || r.manifestCipherId !== meta.manifestCipherId) {
      await this.#step(round, key, 'reconciling versions', () => this.#settle(round, key, record, r))
    } else {
      round.holds.push([refId, r.version])
    }
    await this.#noteHolds(round, HOLDS_PAGE)
  }

  /** Notes the copies the peer holds, for repair to count or release, once more than `over` wait. */
  async #noteHolds(round: Round, over: number): Promise<void> {
    if (round.holds.length === 0 || round.holds.length < over) return
    const holds = round.holds
    round.holds = []
    await this.#o.replicator.noteHolder(round.peer, holds)
  }

  /** The peer knows another state of a key this node holds: a delete, a higher version or another manifest. */
  async #settle(round: Round, key: string, record: RefRecord, r: RemoteRef): Promise<void> {
    const { catalogue, deleter, log, deadlines, replicator } = this.#o
    const meta = metaOf(record)
    // A delete counts only with this owner's proof: a peer cannot delete what it holds for us.
    const tomb = catalogue.ownTombstone(r)
    if (r.deleted && tomb === undefined) {
      log.warn({ peer: round.peer, key }, 'catch-up: the peer reports a delete this node never made; ignored')
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
      if (r.version === record.version) await replicator.replicateTo(round.conn, key, { resend: true })
      else log.warn({ peer: round.peer, key }, 'catch-up: the peer reports a version of this key that no manifest of this owner backs; ignored')
      return
    }
    if (fetched.manifest.createdAt >= record.updatedAt) await catalogue.install(meta.refId, r, deadlines.shutdown, undefined, fetched)
    else await this.#bumpVersion(key, fetched.manifest.version)
  }

  /** A ref the peer holds that this node does not know: recovered, or (a delete) remembered. */
  async #learn(round: Round, r: RemoteRef): Promise<void> {
    const { local, catalogue, deleter, deadlines } = this.#o
    if (r.deleted) {
      const tomb = catalogue.ownTombstone(r)
      if (tomb === undefined) {
        round.fruitless++
        return
      }
      await this.#step(round, r.refId, 'noting a delete', async () => {
        await catalogue.noteRemoteTombstone(tomb)
        // Deletes this node did not know (they went with a lost index): new versions of those keys go above them.
        await catalogue.raiseFloors([[tomb.refId, tomb.version]])
      })
      // A ref recovered from another peer meanwhile may be this very delete: whichever was written last wins.
      const key = local.tables.refIds.get(r.refId)
      const found = key === undefined ? undefined : local.index.refs.get(key)
      if (key !== undefined && found !== undefined && found.version <= tomb.version && tomb.deletedAt >= found.updatedAt) {
        await this.#step(round, key, 'applying a newer delete', () => deleter.applyRemote(key, tomb))
      }
      return
    }
    if (round.fruitlessManifests >= MAX_FRUITLESS_MANIFESTS) {
      round.fruitless++
      return
    }
    const installed = await this.#step(round, r.refId, 'recovering a ref', async () => {
      try {
        await catalogue.install(r.refId, r, deadlines.shutdown)
      } catch (err) {
        // Whatever will not pass by itself (a forgery, garbage that does not decrypt, a blob nowhere to be had) led nowhere.
        if (!mayPass(err)) {
          round.fruitless++
          round.fruitlessManifests++
        }
        throw err
      }
    })
    // Another peer reported a later delete: this peer holds a stale copy, and is told.
    const deleted = local.tables.remoteTombstones.get(r.refId)
    if (installed && deleted !== undefined && deleted.version >= r.version) {
      await this.#step(round, r.refId, 'delete', () => deleteRef(round.conn, { refId: r.refId, ...deleted }, deadlines.background()))
    }
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

