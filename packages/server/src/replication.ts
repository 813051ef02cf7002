// Replication to peers: the session that streams one store's blobs to its placed peers (a bounded
// number in flight per peer, failures kept per peer), and bringing one key's current version to
// one peer later (late replication, catch-up), with the release of blobs a failed one left there.
import { setTimeout as delay } from 'node:timers/promises'
import type { Connection } from '@dcas/p2p'
import type { Background } from './background.js'
import type { BlobCipher } from './cipher.js'
import type { Catalogue } from './catalogue.js'
import { blobIdsOf, missingBlobs, putBlob, putRef, RefStream, releaseBlobs, type RefPut, type RefPutResult } from './client.js'
import { SerialQueue } from './concurrency.js'
import type { Deadlines } from './deadlines.js'
import { messageOf, UnavailableError } from './errors.js'
import { metaOf, type LocalStore } from './local.js'
import type { KeyLocks } from './locks.js'
import type { Logger } from './logger.js'
import type { Retriever } from './retriever.js'
import { sizeOf, type Bytes } from './wire.js'
import { anySignal, timeoutSignal } from './signals.js'

export interface ReplicatorOptions {
  local: LocalStore
  cipher: BlobCipher
  catalogue: Catalogue
  retriever: Retriever
  background: Background
  keyLocks: KeyLocks
  deadlines: Deadlines
  concurrency: number
  /** Waits before each blob of background replication (catch-up, late replication, repair) is sent: the throttle. */
  pace?: (bytes: number) => Promise<void>
  log: Logger
}

/**
 * Bytes catch-up may resend to one peer at full speed (it lost its disk, or says so), and the rate after
 * that: a peer that keeps claiming to hold nothing cannot make this node read, encrypt and send everything
 * again and again faster than this.
 */
export const RESEND_BURST_BYTES = 4 * 1024 ** 3
export const RESEND_BYTES_PER_SECOND = 8 * 1024 ** 2

/** A token bucket of resent bytes per peer. */
export class ResendBudget {
  readonly #buckets = new Map<string, { tokens: number; at: number }>()

  constructor(
    readonly burst = RESEND_BURST_BYTES,
    readonly rate = RESEND_BYTES_PER_SECOND,
  ) {}

  /** Waits until `bytes` may be resent to `nodeId` (taking them), or `signal` aborts. */
  async take(nodeId: string, bytes: number, signal: AbortSignal): Promise<void> {
    const now = Date.now()
    const bucket = this.#buckets.get(nodeId) ?? { tokens: this.burst, at: now }
    bucket.tokens = Math.min(this.burst, bucket.tokens + ((now - bucket.at) / 1000) * this.rate)
    bucket.at = now
    bucket.tokens -= bytes
    this.#buckets.set(nodeId, bucket)
    if (bucket.tokens < 0) await delay((-bucket.tokens / this.rate) * 1000, undefined, { signal })
  }
}

/** How {@link Replicator.replicateTo} brings a key to a peer. */
export interface ReplicateOptions {
  /** Catch-up: within the peer's resend budget. */
  resend?: boolean
  /** The peer's copy failed a check (an audit, or the peer found a blob damaged): it reads every blob it has. */
  verify?: boolean
}

/** About how many bytes one request to verify blobs makes the holder read (see {@link ReplicateOptions.verify}). */
const VERIFY_PAGE_BYTES = 16 * 1024 * 1024

/** Where the bytes of a blob a peer lacks come from. */
export type CipherSource = (cipherId: string) => Promise<Bytes>

/** Sends the owner's refs to peers. */
export class Replicator {
  readonly #o: ReplicatorOptions
  readonly #resends = new ResendBudget()

  constructor(options: ReplicatorOptions) {
    this.#o = options
  }

  /** A session that streams one store's blobs to `peers`, of which `quorum` must acknowledge it. */
  session(key: string, peers: Connection[], quorum: number, signal: AbortSignal | undefined): StoreReplication {
    return new StoreReplication({ replicator: this, key, peers, quorum, concurrency: this.#o.concurrency, deadlines: this.#o.deadlines, log: this.#o.log, signal })
  }

  /**
   * `ref.put`, sending whatever blobs the holder reports missing (a few rounds at most); `first`: the answer to
   * a ref already sent another way (a `ref.store`), taken as the first round's.
   */
  async putRef(conn: Connection, ref: RefPut, cipherFor: CipherSource, signal?: AbortSignal, background = false, first?: RefPutResult): Promise<void> {
    const { deadlines, catalogue } = this.#o
    // Only the ref's own blobs: a holder that names others gets nothing for them.
    const wanted = new Set(blobIdsOf(ref))
    let res: RefPutResult | undefined
    for (let round = 0; round < 4; round++) {
      res = round === 0 && first !== undefined ? first : await putRef(conn, ref, deadlines.request(signal, background))
      if (res.ok) return
      if (res.stale) {
        const version = await catalogue.verifiedVersion(conn, ref.refId, signal ?? deadlines.shutdown)
        if (version !== undefined) await catalogue.raiseFloors([[ref.refId, version]])
        throw new UnavailableError(`the peer holds a newer version (${res.version}) or a later delete`)
      }
      for (const cipherId of res.missing.filter((id) => wanted.has(id))) await putBlob(conn, cipherId, () => cipherFor(cipherId), deadlines.request(signal, background))
    }
    throw new UnavailableError('the peer kept reporting blobs missing')
  }

  /**
   * Brings a ref to a peer that may hold none of its blobs: asks which it lacks, sends them, then the ref (see
   * {@link Replicator.putRef}). Resolves to how many blobs it sent. `verifyPage` (when above 0): the peer's copy
   * failed a check, so it reads those it has, that many a request, and counts the damaged ones as lacking.
   */
  async sendRef(conn: Connection, ref: RefPut, cipherFor: CipherSource, signal: AbortSignal | undefined, background: boolean, verifyPage = 0): Promise<number> {
    const { deadlines } = this.#o
    const missing = await missingBlobs(conn, blobIdsOf(ref), () => deadlines.request(signal, background), verifyPage)
    for (const cipherId of missing) await putBlob(conn, cipherId, () => cipherFor(cipherId), deadlines.request(signal, background))
    await this.putRef(conn, ref, cipherFor, signal, background)
    return missing.length
  }

  /** Records that peers acknowledged `version` of `refId`. */
  async recordHeld(refId: string, nodeIds: string[], version: number): Promise<void> {
    if (nodeIds.length === 0) return
    const { index } = this.#o.local
    await index.transaction((tx) => {
      for (const nodeId of nodeIds) tx.put(index.peerState, `${refId}/${nodeId}`, { state: 'held', updatedAt: Date.now(), meta: { version } })
    })
  }

  /** Records the versions of refs a peer reported holding, where this node's record says otherwise. */
  async noteHolder(nodeId: string, holds: Array<[refId: string, version: number]>): Promise<void> {
    const { index } = this.#o.local
    const changed = holds.filter(([refId, version]) => index.peerState.get(`${refId}/${nodeId}`)?.meta?.version !== version)
    if (changed.length === 0) return
    await index.transaction((tx) => {
      for (const [refId, version] of changed) tx.put(index.peerState, `${refId}/${nodeId}`, { state: 'held', updatedAt: Date.now(), meta: { version } })
    })
  }

  /** Tells a peer, in the background, to drop those of `cipherIds` that no ref of ours uses there. */
  release(conn: Connection, cipherIds: string[], what: string): void {
    if (cipherIds.length === 0) return
    this.#o.background.enqueue(conn, { what, run: () => releaseBlobs(conn, cipherIds, this.#o.deadlines.background()) })
  }

  /** Brings `key`'s current version to `conn` in the background (`verify`: see {@link Replicator.replicateTo}). */
  later(conn: Connection, key: string, what = 'late replication', options: ReplicateOptions = {}): void {
    this.#o.background.enqueue(conn, { what, run: () => this.replicateTo(conn, key, options) })
  }

  /**
   * Sends one key's current version to a peer: the blobs it lacks, then the ref (`resend`: for catch-up, within
   * the peer's {@link RESEND_BURST_BYTES resend budget}). No key lock is held over the
   * transfer (the owner's own writes of the key go on): the version's chunks are pinned instead, and the peer's
   * copy is recorded only if the key is still at that version. A newer version or a delete reaching the peer
   * first makes it refuse this one as stale. `verify`: the peer's copy failed a check, so every blob of it is read
   * there, and those damaged are sent again too, not only the one found.
   */
  async replicateTo(conn: Connection, key: string, options: ReplicateOptions = {}): Promise<void> {
    const { resend = false, verify = false } = options
    const { local, catalogue, retriever, cipher, deadlines, keyLocks } = this.#o
    const signal = deadlines.shutdown
    const { record, manifest } = await catalogue.resolve(key, signal)
    const meta = metaOf(record)
    const pinned = [...new Set(manifest.chunks.map((c) => c.plainId)), record.manifestId]
    for (const id of pinned) local.pin(id)
    try {
      // A page of blobs to verify reads at most about VERIFY_PAGE_BYTES on the holder, within one request's timeout.
      const biggest = manifest.chunks.reduce((most, c) => Math.max(most, c.size), 1)
      const verifyPage = verify ? Math.max(1, Math.floor(VERIFY_PAGE_BYTES / biggest)) : 0
      const plainOf = new Map(manifest.chunks.map((c) => [c.cipherId, c]))
      const cipherIds = [...plainOf.keys()]
      const cipherFor = async (cipherId: string): Promise<Bytes> => {
        const chunk = plainOf.get(cipherId)
        if (chunk === undefined && cipherId !== meta.manifestCipherId) throw new UnavailableError(`unknown blob ${cipherId}`)
        // A chunk lost here too is fetched from another peer first (and healed).
        if (chunk !== undefined) await retriever.chunk(key, meta.refId, chunk, signal)
        const bytes = await cipher.cipherOf(chunk?.plainId ?? record.manifestId, cipherId, meta.recipientsId)
        if (resend) await this.#resends.take(conn.remoteNodeId, sizeOf(bytes), signal)
        await this.#o.pace?.(sizeOf(bytes))
        return bytes
      }
      const ref: RefPut = { refId: meta.refId, version: record.version, manifestCipherId: meta.manifestCipherId, cipherIds }
      try {
        await this.sendRef(conn, ref, cipherFor, undefined, true, verifyPage)
      } catch (err) {
        // The blobs it got and no ref of its uses, it drops: a connection that stays open is never swept.
        this.release(conn, blobIdsOf(ref), 'releasing the blobs of a failed replication')
        throw err
      }
      await keyLocks.run(key, async () => {
        if (local.index.refs.get(key)?.version === record.version) await this.recordHeld(meta.refId, [conn.remoteNodeId], record.version)
      })
    } finally {
      for (const id of pinned) local.unpin(id)
    }
  }
}

/** A peer's acknowledgements may take this many times the others' (their median), and at least LAG_MIN_MS, before it is left behind. */
const LAG_FACTOR = 4
const LAG_MIN_MS = 1000

/** One peer in a store's replication. */
interface PeerSend {
  conn: Connection
  /** Its blobs, written in order on one `ref.store` stream. */
  queue: SerialQueue
  stream: Promise<RefStream> | undefined
  /** Cipher blobs already handed to it. */
  queued: Set<string>
  /** Ends its requests when it is left behind. */
  abort: AbortController
  /** Its writes' typical latency in ms (a moving average), once one went out. */
  latency: number | undefined
  /** Why it failed (or was left behind), if it did. */
  failed?: string
  /** It acknowledged the ref, or its stream was ended otherwise. */
  done: boolean
  /** It was left behind while the others looked able to meet the quorum without it. */
  leftBehind: boolean
}

/**
 * One store's replication: each chunk's ciphertext goes to each peer once, on one stream per peer with
 * the ref at its end and one acknowledgement for all of it, a bounded number of blobs queued per peer. A
 * peer that fails is left out of the rest and reported. A peer the quorum can do without is not waited
 * for beyond a deadline made from the others' latency: it is left behind (its stream reset), reported as
 * failed, and gets the object from background replication, unless the peers that kept up fail at the end
 * and the quorum needs it after all: then it is taken back (see `#takeBack`).
 */
export class StoreReplication {
  readonly #replicator: Replicator
  readonly #key: string
  readonly #peers: PeerSend[]
  readonly #quorum: number
  readonly #deadlines: Deadlines
  readonly #log: Logger
  readonly #signal: AbortSignal | undefined
  /** When the session began: a take-back gets a time made from how long the store has taken. */
  readonly #started = Date.now()

  constructor(o: { replicator: Replicator; key: string; peers: Connection[]; quorum: number; concurrency: number; deadlines: Deadlines; log: Logger; signal: AbortSignal | undefined }) {
    this.#replicator = o.replicator
    this.#key = o.key
    this.#quorum = o.quorum
    this.#deadlines = o.deadlines
    this.#log = o.log
    this.#signal = o.signal
    this.#peers = o.peers.map((conn) => ({ conn, queue: new SerialQueue(o.concurrency), stream: undefined, queued: new Set<string>(), abort: new AbortController(), latency: undefined, done: false, leftBehind: false }))
  }

  /** The peers this store goes to. */
  get peers(): Connection[] {
    return this.#peers.map((p) => p.conn)
  }

  /** Peers that failed or were left behind, with why. */
  get failed(): Map<string, string> {
    return new Map(this.#peers.flatMap((p) => (p.failed === undefined ? [] : [[p.conn.remoteNodeId, p.failed] as [string, string]])))
  }

  #live(p: PeerSend): boolean {
    return p.failed === undefined && p.queue.error === undefined
  }

  /** Whether the quorum can be met without `p`. */
  #spare(p: PeerSend): boolean {
    return this.#peers.filter((o) => o !== p && this.#live(o)).length >= this.#quorum
  }

  /** How long `p` may keep the store waiting: LAG_FACTOR times the other live peers' median latency, at least LAG_MIN_MS. */
  #lagDeadline(p: PeerSend): number {
    const others = this.#peers.filter((o) => o !== p && this.#live(o) && o.latency !== undefined).map((o) => o.latency!).sort((x, y) => x - y)
    const median = others.length === 0 ? 0 : others[Math.floor(others.length / 2)]!
    return Math.max(LAG_MIN_MS, LAG_FACTOR * median)
  }

  /** Leaves `p` behind: its stream ends, and it gets the object later in the background. */
  #leaveBehind(p: PeerSend, waited: number): void {
    if (p.failed !== undefined || p.done) return
    const why = `left behind after ${waited} ms without progress, while the others kept up; it gets the object in the background`
    p.failed = why
    p.leftBehind = true
    p.abort.abort(new UnavailableError(why))
    void p.stream?.then((s) => s.abort(new UnavailableError(why)), () => {})
    this.#log.warn({ key: this.#key, peer: p.conn.remoteNodeId, waited }, 'a slow peer was left behind by a store')
  }

  #signalOf(p: PeerSend): AbortSignal {
    return anySignal(this.#signal, p.abort.signal)
  }

  /** The peer's `ref.store` stream, opened on first use. */
  #streamOf(p: PeerSend): Promise<RefStream> {
    p.stream ??= RefStream.open(p.conn, this.#deadlines.request(this.#signalOf(p)))
    return p.stream
  }

  /**
   * Sends a blob to every peer still in the session that was not sent it yet: its bytes when `fresh` (made by
   * this store, so no peer has it), else only its id (the holder says at the end if it lacks it). Waits while
   * a needed peer has too many queued.
   */
  async send(cipherId: string, produce: () => Promise<Bytes>, fresh: boolean): Promise<void> {
    for (const p of this.#peers) {
      if (!this.#live(p) || p.queued.has(cipherId)) continue
      p.queued.add(cipherId)
      if (p.queue.full && this.#spare(p)) {
        const deadline = this.#lagDeadline(p)
        if (!(await p.queue.slot(deadline))) {
          this.#leaveBehind(p, deadline)
          continue
        }
      }
      await p.queue.add(async () => {
        const started = Date.now()
        const stream = await this.#streamOf(p)
        await stream.blob(cipherId, fresh ? await produce() : undefined, this.#deadlines.request(this.#signalOf(p)))
        const took = Date.now() - started
        p.latency = p.latency === undefined ? took : 0.7 * p.latency + 0.3 * took
      })
    }
  }

  /**
   * Each peer: its queued blobs sent (the manifest among them: the store sends it with its chunks), then the ref
   * on the same stream, and the one answer; blobs it turned out to lack are sent then. Resolves to the peers that acknowledged all of it, the others
   * in {@link StoreReplication.failed}. Once the quorum has, the rest get a deadline made from the time it took; if
   * the quorum is not met, the peers left behind are taken back first.
   */
  async finish(ref: RefPut, cipherFor: CipherSource): Promise<string[]> {
    const replicas: string[] = []
    let timer: NodeJS.Timeout | undefined
    const started = Date.now()
    const quorumMet = (): void => {
      if (timer !== undefined || replicas.length < this.#quorum) return
      const waiting = this.#peers.filter((p) => !p.done && p.failed === undefined)
      if (waiting.length === 0) return
      const deadline = Math.max(LAG_MIN_MS, LAG_FACTOR * (Date.now() - started))
      timer = setTimeout(() => {
        for (const p of waiting) this.#leaveBehind(p, deadline)
      }, deadline)
    }
    quorumMet()
    try {
      await Promise.all(
        this.#peers.map(async (p) => {
          const nodeId = p.conn.remoteNodeId
          try {
            if (p.failed !== undefined) return
            await p.queue.drain()
            if (p.queue.error !== undefined) throw p.queue.error
            const signal = this.#signalOf(p)
            const stream = await this.#streamOf(p)
            const answer = await stream.end(ref, this.#deadlines.request(signal))
            p.done = true
            await this.#replicator.putRef(p.conn, ref, cipherFor, signal, false, answer)
            replicas.push(nodeId)
            quorumMet()
          } catch (err) {
            p.failed ??= messageOf(err)
            this.#log.warn({ key: this.#key, peer: nodeId, err: p.failed }, 'replication to peer failed')
          }
        }),
      )
    } finally {
      clearTimeout(timer)
    }
    if (replicas.length < this.#quorum) await this.#takeBack(ref, cipherFor, replicas)
    return replicas
  }

  /**
   * The peers that kept up failed at the end after all, so the quorum now needs those left behind (only peers left
   * behind in `send()` can be: `finish()` leaves peers behind only once the quorum is met). Each is asked which of
   * the store's blobs it lacks (a reset stream keeps none uncommitted), sent them, then the ref; within LAG_FACTOR
   * times what the store has taken so far, so that a slow peer cannot hold the key (and close()) for long. Skipped
   * when the store was aborted or when even all of them could not meet the quorum: background replication then
   * brings them the object, holding no lock.
   */
  async #takeBack(ref: RefPut, cipherFor: CipherSource, replicas: string[]): Promise<void> {
    const behind = this.#peers.filter((p) => p.leftBehind && !p.done)
    if (this.#signal?.aborted === true || replicas.length + behind.length < this.#quorum) return
    const budget = timeoutSignal(Math.max(LAG_MIN_MS, LAG_FACTOR * (Date.now() - this.#started)), this.#signal, this.#deadlines.shutdown)
    await Promise.all(
      behind.map(async (p) => {
        const nodeId = p.conn.remoteNodeId
        try {
          // Its old stream's sends are over first (they were aborted with it).
          await p.queue.drain()
          const sent = await this.#replicator.sendRef(p.conn, ref, cipherFor, budget, false)
          p.failed = undefined
          replicas.push(nodeId)
          this.#log.info({ key: this.#key, peer: nodeId, sent }, 'a peer left behind by a store was taken back when the others failed')
        } catch (err) {
          p.failed = `${p.failed}; taken back when the others failed, it failed too: ${messageOf(err)}`
          this.#log.warn({ key: this.#key, peer: nodeId, err: p.failed }, 'replication to peer failed')
        }
      }),
    )
  }

  /** Waits for every queued send; then ends the streams not ended (a store that failed sends no ref). */
  async drain(): Promise<void> {
    for (const p of this.#peers) await p.queue.drain()
    for (const p of this.#peers) {
      if (p.done || p.stream === undefined) continue
      p.done = true
      void p.stream.then((s) => s.abort(), () => {})
    }
  }
}
