// The write path: a store cuts the data into chunks, encrypts each new one for peers, writes the
// plaintext locally and streams the ciphertext to the ref's placed peers as it goes; a compose takes
// the chunks of other objects instead. Either way the new version is then committed locally and the
// peers' acknowledgements decide the quorum.
import { createHash, type Hash } from 'node:crypto'
import type { Chunker } from './chunker.js'
import type { BlobCipher } from './cipher.js'
import type { Catalogue } from './catalogue.js'
import { blobIdsOf, type RefPut } from './client.js'
import { InFlight } from './concurrency.js'
import { ClosedError, messageOf, PreconditionError, QuorumError, throwIfAborted, TooLargeError, UnavailableError } from './errors.js'
import type { ChunkRecord, LocalStore, RefMeta } from './local.js'
import type { HeldKey } from './locks.js'
import type { Logger } from './logger.js'
import { hashBlob, type BlobBatch } from '@dcas/store'
import { assertValidMetadata, encodeManifest, type Manifest, type ManifestChunk } from './manifest.js'
import type { Placement } from './placement.js'
import type { Replicator, StoreReplication } from './replication.js'
import type { Retriever } from './retriever.js'
import type { OwnerKeys } from './secrets.js'
import { toByteStream, type StoreData } from './source.js'
import type { ComposeSource, StoreOptions, StoreResult } from './types.js'
import { MAX_REF_CHUNKS } from './wire.js'
import { anySignal } from './signals.js'

/** SHA-256 of no bytes: the digest of an empty object. */
const EMPTY_SHA256 = createHash('sha256').digest('hex')

export interface WritePathOptions {
  keys: OwnerKeys
  local: LocalStore
  cipher: BlobCipher
  catalogue: Catalogue
  placement: Placement
  replicator: Replicator
  retriever: Retriever
  chunker: Chunker
  /** Acknowledgements a store needs: every placed holder, or a number of them (0: none, local only). */
  writeQuorum: 'all' | number
  concurrency: number
  shutdown: AbortSignal
  log: Logger
}

/** What one write has put down so far, for the commit or for cleaning up after a failure. */
interface Draft {
  key: string
  chunks: ManifestChunk[]
  /** Chunks this write encrypted first (their records are written with the commit). */
  newChunks: Map<string, ChunkRecord>
  /** Blob ids pinned against a concurrent free until the write ends. */
  pins: string[]
  size: number
  /** The whole object's SHA-256, from its second chunk on (see {@link WritePath.#digestAdd}). */
  whole: Hash | undefined
  /** The first chunk, until a second one comes: an object of one chunk has that chunk's id as its SHA-256. */
  first: Uint8Array | undefined
  /** The local blobs it writes, made durable together before the commit. */
  batch: BlobBatch
  /** Chunks put into the batch (or found intact here) by this write. */
  staged: Set<string>
  /** The manifest's cipherId, once its ciphertext went to the peers. */
  manifestCipherId?: string
}

/** Stores objects, and makes objects of other objects' chunks. */
export class WritePath {
  readonly #o: WritePathOptions

  constructor(options: WritePathOptions) {
    this.#o = options
  }

  /** Stores `data` as a new version of `held.key`. */
  store(held: HeldKey, data: StoreData, options: StoreOptions): Promise<StoreResult> {
    return this.#write(held, options, (draft, session) => this.#chunksOf(data, draft, session, options.signal))
  }

  /** Makes a new version of `held.key` from the chunks of the current versions of `sources`. */
  compose(held: HeldKey, sources: ComposeSource[], options: StoreOptions): Promise<StoreResult> {
    return this.#write(held, options, (draft, session) => this.#chunksFrom(held, sources, draft, session, options.signal))
  }

  /** One write: `fill` puts down the chunks, then the manifest, the local commit, the peers' acknowledgements. */
  async #write(held: HeldKey, options: StoreOptions, fill: (draft: Draft, session: StoreReplication) => Promise<void>): Promise<StoreResult> {
    const { keys, local, cipher, catalogue, placement, replicator, log } = this.#o
    const key = held.key
    this.#check(key, options.precondition)
    const refId = catalogue.refIdOf(key)
    const version = catalogue.nextVersion(key, refId)
    // The ref's placed holders, dialled as needed: too few within reach and nothing is stored.
    const reached = await placement.reach(refId, options.signal)
    const quorum = this.#o.writeQuorum === 'all' ? reached.placed.length : this.#o.writeQuorum
    if (reached.conns.length < quorum) {
      throw new QuorumError({ key, needed: quorum, replicas: [], reachable: reached.conns.length, placed: reached.placed.length, committed: false, failed: reached.unreachable })
    }
    const session = replicator.session(key, reached.conns, quorum, options.signal)
    const draft: Draft = { key, chunks: [], newChunks: new Map(), pins: [], size: 0, whole: undefined, first: undefined, batch: local.batch(), staged: new Set() }
    let committed = false
    try {
      await fill(draft, session)
      const sha256 = draft.whole?.digest('hex') ?? draft.chunks[0]?.plainId ?? EMPTY_SHA256
      const metadata = typeof options.metadata === 'function' ? options.metadata() : (options.metadata ?? {})
      assertValidMetadata(metadata)

      // The manifest: plaintext locally, encrypted for peers; then the local commit.
      const { recipients, recipientsId } = cipher.current
      const manifest: Manifest = { key, size: draft.size, sha256, version, createdAt: Date.now(), recipients, chunks: draft.chunks, metadata }
      const manifestBlob = hashBlob(encodeManifest(manifest, keys.manifestKey))
      const manifestBytes = manifestBlob.pieces[0]!
      const manifestId = manifestBlob.id
      this.#pin(draft, manifestId)
      await draft.batch.put(manifestBlob)
      const { cipher: manifestCipher, cipherId: manifestCipherId } = await cipher.encrypt(manifestBytes, manifestId)
      // The peers start making the manifest durable while this node commits: only the ref waits for the commit.
      draft.manifestCipherId = manifestCipherId
      await session.send(manifestCipherId, () => Promise.resolve(manifestCipher), true)
      const meta: RefMeta = { refId, manifestCipherId, chunkCount: draft.chunks.length, recipientsId, ...(Object.keys(metadata).length === 0 ? {} : { metadata }) }
      this.#check(key, options.precondition)
      // The chunks and the manifest made durable together, then counted.
      await draft.batch.commit()
      await local.commit(key, {
        record: { manifestId, size: draft.size, sha256, version, updatedAt: manifest.createdAt, meta: { ...meta } },
        blobIds: [...new Set([...draft.chunks.map((c) => c.plainId), manifestId])],
        recipients: { id: recipientsId, list: recipients },
        chunks: { records: draft.newChunks, replace: true },
      })
      committed = true

      // Every chunk and the manifest went on each peer's stream already; now the ref, acknowledged only when all are durable there.
      const cipherIds = [...new Set(draft.chunks.map((c) => c.cipherId))]
      const plainOf = new Map(draft.chunks.map((c) => [c.cipherId, c.plainId]))
      const ref: RefPut = { refId, version, manifestCipherId, cipherIds }
      const replicas = await session.finish(ref, (cipherId) => {
        const plainId = plainOf.get(cipherId)
        if (plainId !== undefined) return cipher.cipherOf(plainId, cipherId, recipientsId)
        if (cipherId === manifestCipherId) return Promise.resolve(manifestCipher)
        return Promise.reject(new UnavailableError(`blob ${cipherId} is not one of this store's`))
      })
      await replicator.recordHeld(refId, replicas, version)
      // Placed peers that connected during the store, or failed it but are still connected, get it in the
      // background. One that failed it may keep blobs of this version that no ref of its uses (the key may have
      // changed by then, or the late replication failed too): it is told to drop them afterwards.
      for (const conn of placement.targets(refId)) {
        const nodeId = conn.remoteNodeId
        if (replicas.includes(nodeId)) continue
        replicator.later(conn, key)
        if (session.failed.has(nodeId)) replicator.release(conn, blobIdsOf(ref), 'releasing the blobs of a failed replication')
      }
      if (replicas.length < quorum) {
        const failed = [...reached.unreachable, ...[...session.failed].map(([nodeId, error]) => ({ nodeId, error }))]
        throw new QuorumError({ key, needed: quorum, replicas, reachable: reached.conns.length, placed: reached.placed.length, committed: true, failed })
      }
      log.info({ key, size: draft.size, version, replicas: replicas.length }, 'stored')
      return { key, size: draft.size, sha256, version, replicas, placed: reached.placed }
    } finally {
      await session.drain()
      if (!committed) await draft.batch.abort().catch(() => {})
      for (const id of draft.pins) local.unpin(id)
      if (!committed) await this.#abandon(draft, session)
    }
  }

  /** Fails with ERR_PRECONDITION when `precondition` refuses the key's current state. */
  #check(key: string, precondition: StoreOptions['precondition']): void {
    if (precondition !== undefined && !precondition(this.#o.catalogue.stat(key))) throw new PreconditionError(`the precondition refused the current state of "${key}"`)
  }

  #pin(draft: Draft, id: string): void {
    this.#o.local.pin(id)
    draft.pins.push(id)
  }

  /**
   * Adds a chunk to the whole object's digest. The first one waits for a second (the caller owns the chunks the
   * chunker hands out): an object of one chunk, every small one, is then hashed once, not twice.
   */
  #digestAdd(draft: Draft, chunk: Uint8Array): void {
    if (draft.chunks.length === 0) {
      draft.first = chunk
      return
    }
    if (draft.whole === undefined) {
      draft.whole = createHash('sha256').update(draft.first!)
      draft.first = undefined
    }
    draft.whole.update(chunk)
  }

  /** Adds one chunk to the draft, encrypting it unless it was encrypted before for today's recipients, and sends it to the session's peers. */
  async #add(draft: Draft, session: StoreReplication, chunk: Uint8Array, plainId: string): Promise<void> {
    const { local, cipher } = this.#o
    if (draft.chunks.length >= MAX_REF_CHUNKS) throw new TooLargeError(`"${draft.key}" needs more than ${MAX_REF_CHUNKS} chunks: store it with a larger chunkSize`)
    this.#digestAdd(draft, chunk)
    draft.size += chunk.length
    const { recipientsId } = cipher.current
    const known = draft.newChunks.get(plainId) ?? local.tables.chunks.get(plainId)
    let cipherId: string
    let produce: () => Promise<Uint8Array[]>
    let fresh = false
    if (known !== undefined && known.recipientsId === recipientsId) {
      // Encrypted before: only a peer that lacks it makes this write encrypt it again.
      cipherId = known.cipherId
      let made: Promise<Uint8Array[]> | undefined
      produce = () => (made ??= cipher.encrypt(chunk, plainId).then((r) => r.cipher))
    } else {
      const sealed = await cipher.encrypt(chunk, plainId)
      cipherId = sealed.cipherId
      produce = () => Promise.resolve(sealed.cipher)
      draft.newChunks.set(plainId, { cipherId, recipientsId })
      fresh = true
    }
    draft.chunks.push({ plainId, cipherId, size: chunk.length })
    await session.send(cipherId, produce, fresh)
  }

  /** Cuts the data into chunks: each one hashed, written locally and added. */
  async #chunksOf(data: StoreData, draft: Draft, session: StoreReplication, signal: AbortSignal | undefined): Promise<void> {
    const { local, chunker, concurrency, shutdown } = this.#o
    const writes = new InFlight(concurrency)
    try {
      for await (const chunk of chunker.chunks(toByteStream(data))) {
        throwIfAborted(signal)
        if (shutdown.aborted) throw new ClosedError()
        // One hash names the chunk and serves as the store's check.
        const blob = hashBlob(chunk)
        const plainId = blob.id
        if (!draft.staged.has(plainId)) {
          draft.staged.add(plainId)
          this.#pin(draft, plainId)
          await writes.add(() => local.stage(draft.batch, blob))
        }
        if (writes.error !== undefined) throw writes.error
        await this.#add(draft, session, chunk, plainId)
      }
      await writes.drain()
      if (writes.error !== undefined) throw writes.error
    } finally {
      await writes.drain()
    }
  }

  /** The chunks of each source's current version in turn, each read back verified (and healed if need be); stored ones are not copied. */
  async #chunksFrom(held: HeldKey, sources: ComposeSource[], draft: Draft, session: StoreReplication, signal: AbortSignal | undefined): Promise<void> {
    const { catalogue, retriever, shutdown } = this.#o
    const combined = anySignal(signal, shutdown)
    for (const { key: source, version } of sources) {
      const { manifest } = await catalogue.resolve(source, combined, source === held.key ? held : undefined)
      if (version !== undefined && manifest.version !== version) throw new PreconditionError(`"${source}" is at version ${manifest.version}, not ${version}`)
      const refId = catalogue.refIdOf(source)
      for (const chunk of manifest.chunks) {
        throwIfAborted(signal)
        if (shutdown.aborted) throw new ClosedError()
        // Pinned first: a concurrent write of the source cannot free it before this version holds it.
        this.#pin(draft, chunk.plainId)
        const bytes = await retriever.chunk(source, refId, chunk, combined)
        await this.#add(draft, session, bytes, chunk.plainId)
      }
    }
  }

  /** A write that failed before its local commit leaves nothing behind: its blobs no ref uses, here and on peers. */
  async #abandon(draft: Draft, session: StoreReplication): Promise<void> {
    const { local, replicator, log } = this.#o
    await local.free(draft.pins).catch((err: unknown) => log.warn({ err: messageOf(err) }, 'freeing the blobs of a failed store failed'))
    const cipherIds = [...new Set(draft.chunks.map((c) => c.cipherId))]
    if (draft.manifestCipherId !== undefined) cipherIds.push(draft.manifestCipherId)
    // A peer whose connection dropped frees them itself (blobs received on a closed connection are swept).
    for (const conn of session.peers) if (conn.open) replicator.release(conn, cipherIds, 'releasing the blobs of a failed store')
  }
}
