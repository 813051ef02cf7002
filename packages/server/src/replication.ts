// Replication to peers: the session that streams one store's blobs to its placed peers (a bounded
// number in flight per peer, failures kept per peer), and bringing one key's current version to
// one peer later (late replication, catch-up), with the release of blobs a failed one left there.
import type { Connection } from '@dcas/p2p'
import type { Background } from './background.js'
import type { BlobCipher } from './cipher.js'
import type { Catalogue } from './catalogue.js'
import { missingBlobs, putBlob, putRef, releaseBlobs, type RefPut } from './client.js'
import { InFlight } from './concurrency.js'
import type { Deadlines } from './deadlines.js'
import { messageOf, UnavailableError } from './errors.js'
import { metaOf, type LocalStore } from './local.js'
import type { HeldKey, KeyLocks } from './locks.js'
import type { Logger } from './logger.js'
import type { Retriever } from './retriever.js'

export interface ReplicatorOptions {
  local: LocalStore
  cipher: BlobCipher
  catalogue: Catalogue
  retriever: Retriever
  background: Background
  keyLocks: KeyLocks
  deadlines: Deadlines
  concurrency: number
  log: Logger
}

/** Where the bytes of a blob a peer lacks come from. */
export type CipherSource = (cipherId: string) => Promise<Uint8Array>

/** Sends the owner's refs to peers. */
export class Replicator {
  readonly #o: ReplicatorOptions

  constructor(options: ReplicatorOptions) {
    this.#o = options
  }

  /** A session that streams one store's blobs to `peers`. */
  session(key: string, peers: Connection[], signal: AbortSignal | undefined): StoreReplication {
    return new StoreReplication({ replicator: this, key, peers, concurrency: this.#o.concurrency, deadlines: this.#o.deadlines, log: this.#o.log, signal })
  }

  /** `ref.put`, sending whatever blobs the holder reports missing (a few rounds at most). */
  async putRef(conn: Connection, ref: RefPut, cipherFor: CipherSource, signal?: AbortSignal, background = false): Promise<void> {
    const { deadlines, catalogue } = this.#o
    for (let round = 0; round < 4; round++) {
      const res = await putRef(conn, ref, deadlines.request(signal, background))
      if (res.ok) return
      if (res.stale) {
        const version = await catalogue.verifiedVersion(conn, ref.refId, signal ?? deadlines.shutdown)
        if (version !== undefined) await catalogue.raiseFloors([[ref.refId, version]])
        throw new UnavailableError(`the peer holds a newer version (${res.version}) or a later delete`)
      }
      for (const cipherId of res.missing) await putBlob(conn, cipherId, () => cipherFor(cipherId), deadlines.request(signal, background))
    }
    throw new UnavailableError('the peer kept reporting blobs missing')
  }

  /** Records that peers acknowledged `version` of `refId`. */
  async recordHeld(refId: string, nodeIds: string[], version: number): Promise<void> {
    if (nodeIds.length === 0) return
    const { index } = this.#o.local
    await index.transaction((tx) => {
      for (const nodeId of nodeIds) tx.put(index.peerState, `${refId}/${nodeId}`, { state: 'held', updatedAt: Date.now(), meta: { version } })
    })
  }

  /** Tells a peer, in the background, to drop those of `cipherIds` that no ref of ours uses there. */
  release(conn: Connection, cipherIds: string[], what: string): void {
    if (cipherIds.length === 0) return
    this.#o.background.enqueue(conn, { what, run: () => releaseBlobs(conn, cipherIds, this.#o.deadlines.background()) })
  }

  /** Brings `key`'s current version to `conn` in the background, under the key's lock. */
  later(conn: Connection, key: string, what = 'late replication'): void {
    this.#o.background.enqueue(conn, { what, run: () => this.#o.keyLocks.run(key, (held) => this.replicateTo(conn, held)) })
  }

  /** Sends one key's current version to a peer: the blobs it lacks, then the ref. */
  async replicateTo(conn: Connection, held: HeldKey): Promise<void> {
    const { local, catalogue, retriever, cipher, deadlines } = this.#o
    const key = held.key
    const record = local.index.refs.get(key)
    if (record === undefined) return
    const signal = deadlines.shutdown
    const meta = metaOf(record)
    const { manifest } = await catalogue.resolve(key, signal, held)
    const plainOf = new Map(manifest.chunks.map((c) => [c.cipherId, c]))
    const cipherIds = [...plainOf.keys()]
    const cipherFor = async (cipherId: string): Promise<Uint8Array> => {
      const chunk = plainOf.get(cipherId)
      if (chunk === undefined && cipherId !== meta.manifestCipherId) throw new UnavailableError(`unknown blob ${cipherId}`)
      // A chunk lost here too is fetched from another peer first (and healed).
      if (chunk !== undefined) await retriever.chunk(key, meta.refId, chunk, signal)
      return cipher.cipherOf(chunk?.plainId ?? record.manifestId, cipherId, meta.recipientsId)
    }
    const blobIds = [...cipherIds, meta.manifestCipherId]
    try {
      const missing = await missingBlobs(conn, blobIds, deadlines.background())
      for (const cipherId of missing) await putBlob(conn, cipherId, () => cipherFor(cipherId), deadlines.background())
      const ref: RefPut = { refId: meta.refId, version: record.version, manifestCipherId: meta.manifestCipherId, size: record.size, writtenAt: record.updatedAt, cipherIds }
      await this.putRef(conn, ref, cipherFor, undefined, true)
    } catch (err) {
      // The blobs it got and no ref of its uses, it drops (after this, outside the key's lock): a connection
      // that stays open is never swept.
      this.release(conn, blobIds, 'releasing the blobs of a failed replication')
      throw err
    }
    await this.recordHeld(meta.refId, [conn.remoteNodeId], record.version)
  }
}

/**
 * One store's replication: each chunk's ciphertext goes to each peer once, a bounded number in flight
 * per peer; a peer that fails is left out of the rest and reported.
 */
export class StoreReplication {
  readonly #replicator: Replicator
  readonly #key: string
  readonly #peers: Connection[]
  readonly #deadlines: Deadlines
  readonly #log: Logger
  readonly #signal: AbortSignal | undefined
  readonly #sends: Map<string, InFlight>
  readonly #queued: Map<string, Set<string>>
  /** Peers that failed, with why. */
  readonly failed = new Map<string, string>()

  constructor(o: { replicator: Replicator; key: string; peers: Connection[]; concurrency: number; deadlines: Deadlines; log: Logger; signal: AbortSignal | undefined }) {
    this.#replicator = o.replicator
    this.#key = o.key
    this.#peers = o.peers
    this.#deadlines = o.deadlines
    this.#log = o.log
    this.#signal = o.signal
    this.#sends = new Map(o.peers.map((c) => [c.remoteNodeId, new InFlight(o.concurrency)]))
    this.#queued = new Map(o.peers.map((c) => [c.remoteNodeId, new Set<string>()]))
  }

  /** The peers this store goes to. */
  get peers(): Connection[] {
    return this.#peers
  }

  #live(nodeId: string): boolean {
    return !this.failed.has(nodeId) && this.#sends.get(nodeId)?.error === undefined
  }

  /** Sends a blob to every peer still in the session that was not sent it yet; waits while a peer has too many in flight. */
  async send(cipherId: string, produce: () => Promise<Uint8Array>): Promise<void> {
    for (const conn of this.#peers) {
      const nodeId = conn.remoteNodeId
      const sent = this.#queued.get(nodeId)!
      if (!this.#live(nodeId) || sent.has(cipherId)) continue
      sent.add(cipherId)
      await this.#sends.get(nodeId)!.add(async () => void (await putBlob(conn, cipherId, produce, this.#deadlines.request(this.#signal))))
    }
  }

  /**
   * Each peer: its blobs acknowledged, then the manifest, then the ref; resolves to the peers that
   * acknowledged all of it, the others in {@link StoreReplication.failed}.
   */
  async finish(ref: RefPut, manifestCipher: Uint8Array, cipherFor: CipherSource): Promise<string[]> {
    const replicas: string[] = []
    await Promise.all(
      this.#peers.map(async (conn) => {
        const nodeId = conn.remoteNodeId
        const sending = this.#sends.get(nodeId)!
        try {
          await sending.drain()
          if (sending.error !== undefined) throw sending.error
          await putBlob(conn, ref.manifestCipherId, () => manifestCipher, this.#deadlines.request(this.#signal))
          await this.#replicator.putRef(conn, ref, cipherFor, this.#signal)
          replicas.push(nodeId)
        } catch (err) {
          this.failed.set(nodeId, messageOf(err))
          this.#log.warn({ key: this.#key, peer: nodeId, err: messageOf(err) }, 'replication to peer failed')
        }
      }),
    )
    return replicas
  }

  /** Waits for every send still in flight. */
  async drain(): Promise<void> {
    for (const s of this.#sends.values()) await s.drain()
  }
}
