// The write path: a store cuts the data into chunks, encrypts each new one for peers, writes the
// plaintext locally and streams the ciphertext to the ref's placed peers as it goes, then commits
// the new version locally and waits for the peers' acknowledgements to decide the quorum.
import { createHash } from 'node:crypto'
import type { Chunker } from './chunker.js'
import type { BlobCipher } from './cipher.js'
import type { Catalogue } from './catalogue.js'
import type { RefPut } from './client.js'
import { InFlight } from './concurrency.js'
import { ClosedError, InvalidOptionsError, messageOf, QuorumError, throwIfAborted } from './errors.js'
import type { ChunkRecord, LocalStore, RefMeta } from './local.js'
import type { HeldKey } from './locks.js'
import type { Logger } from './logger.js'
import { encodeManifest, sha256Hex, type Manifest, type ManifestChunk } from './manifest.js'
import type { Placement } from './placement.js'
import type { Replicator, StoreReplication } from './replication.js'
import { toByteStream, type StoreData } from './source.js'
import type { StoreResult } from './types.js'
import { MAX_REF_CHUNKS } from './wire.js'

export interface WritePathOptions {
  local: LocalStore
  cipher: BlobCipher
  catalogue: Catalogue
  placement: Placement
  replicator: Replicator
  chunker: Chunker
  /** Acknowledgements a store needs: every placed holder, or a number of them (0: none, local only). */
  writeQuorum: 'all' | number
  concurrency: number
  shutdown: AbortSignal
  log: Logger
}

/** What one store has put down so far, for the commit or for cleaning up after a failure. */
interface Draft {
  chunks: ManifestChunk[]
  /** Chunks this store encrypted first (their records are written with the commit). */
  newChunks: Map<string, ChunkRecord>
  /** Blob ids pinned against a concurrent free until the store ends. */
  pins: string[]
  size: number
  sha256: string
}

/** Stores objects. */
export class WritePath {
  readonly #o: WritePathOptions

  constructor(options: WritePathOptions) {
    this.#o = options
  }

  /** Stores a new version of `held.key`. */
  async store(held: HeldKey, data: StoreData, signal: AbortSignal | undefined): Promise<StoreResult> {
    const { local, cipher, catalogue, placement, replicator, log } = this.#o
    const key = held.key
    const refId = catalogue.refIdOf(key)
    const version = catalogue.nextVersion(key, refId)
    // The ref's placed holders, dialled as needed: too few within reach and nothing is stored.
    const reached = await placement.reach(refId, signal)
    const quorum = this.#o.writeQuorum === 'all' ? reached.placed.length : this.#o.writeQuorum
    if (reached.conns.length < quorum) {
      throw new QuorumError({ key, needed: quorum, replicas: [], reachable: reached.conns.length, placed: reached.placed.length, committed: false, failed: reached.unreachable })
    }
    const session = replicator.session(key, reached.conns, signal)
    const draft: Draft = { chunks: [], newChunks: new Map(), pins: [], size: 0, sha256: '' }
    let committed = false
    try {
      await this.#writeChunks(key, data, draft, session, signal)

      // The manifest: plaintext locally, encrypted for peers; then the local commit.
      const { recipients, recipientsId } = cipher.current
      const manifest: Manifest = { key, size: draft.size, sha256: draft.sha256, version, createdAt: Date.now(), recipients, chunks: draft.chunks }
      const manifestBytes = encodeManifest(manifest)
      const manifestId = sha256Hex(manifestBytes)
      this.#pin(draft, manifestId)
      await local.put(manifestId, manifestBytes)
      const { cipher: manifestCipher, cipherId: manifestCipherId } = await cipher.encrypt(manifestBytes, manifestId)
      const meta: RefMeta = { refId, manifestCipherId, chunkCount: draft.chunks.length, recipientsId }
      await local.commit(key, {
        record: { manifestId, size: draft.size, sha256: draft.sha256, version, updatedAt: manifest.createdAt, meta: { ...meta } },
        blobIds: [...new Set([...draft.chunks.map((c) => c.plainId), manifestId])],
        recipients: { id: recipientsId, list: recipients },
        chunks: { records: draft.newChunks, replace: true },
      })
      committed = true

      // Each peer: every chunk sent, then the manifest, then the ref; acknowledged only when all are durable there.
      const cipherIds = [...new Set(draft.chunks.map((c) => c.cipherId))]
      const plainOf = new Map(draft.chunks.map((c) => [c.cipherId, c.plainId]))
      const ref: RefPut = { refId, version, manifestCipherId, size: draft.size, writtenAt: manifest.createdAt, cipherIds }
      const replicas = await session.finish(ref, manifestCipher, (cipherId) => {
        const plainId = plainOf.get(cipherId)
        return plainId === undefined ? Promise.resolve(manifestCipher) : cipher.cipherOf(plainId, cipherId, recipientsId)
      })
      await replicator.recordHeld(refId, replicas, version)
      // Placed peers that connected during the store, or failed it but are still connected, get it in the
      // background. One that failed it may keep blobs of this version that no ref of its uses (the key may have
      // changed by then, or the late replication failed too): it is told to drop them afterwards.
      for (const conn of placement.targets(refId)) {
        const nodeId = conn.remoteNodeId
        if (replicas.includes(nodeId)) continue
        replicator.later(conn, key)
        if (session.failed.has(nodeId)) replicator.release(conn, [...cipherIds, manifestCipherId], 'releasing the blobs of a failed replication')
      }
      if (replicas.length < quorum) {
        const failed = [...reached.unreachable, ...[...session.failed].map(([nodeId, error]) => ({ nodeId, error }))]
        throw new QuorumError({ key, needed: quorum, replicas, reachable: reached.conns.length, placed: reached.placed.length, committed: true, failed })
      }
      log.info({ key, size: draft.size, version, replicas: replicas.length }, 'stored')
      return { key, size: draft.size, sha256: draft.sha256, version, replicas, placed: reached.placed }
    } finally {
      await session.drain()
      for (const id of draft.pins) local.unpin(id)
      if (!committed) await this.#abandon(draft, session)
    }
  }

  #pin(draft: Draft, id: string): void {
    this.#o.local.pin(id)
    draft.pins.push(id)
  }

  /** Cuts the data into chunks: each one hashed, encrypted if new, written locally and sent to the session's peers. */
  async #writeChunks(key: string, data: StoreData, draft: Draft, session: StoreReplication, signal: AbortSignal | undefined): Promise<void> {
    const { local, cipher, chunker, concurrency, shutdown } = this.#o
    const { recipientsId } = cipher.current
    const writes = new InFlight(concurrency)
    const whole = createHash('sha256')
    try {
      for await (const chunk of chunker.chunks(toByteStream(data))) {
        throwIfAborted(signal)
        if (shutdown.aborted) throw new ClosedError()
        if (draft.chunks.length >= MAX_REF_CHUNKS) throw new InvalidOptionsError(`"${key}" needs more than ${MAX_REF_CHUNKS} chunks: store it with a larger chunkSize`)
        whole.update(chunk)
        draft.size += chunk.length
        const plainId = sha256Hex(chunk)
        this.#pin(draft, plainId)
        const known = draft.newChunks.get(plainId) ?? local.tables.chunks.get(plainId)
        let cipherId: string
        let produce: () => Promise<Uint8Array>
        if (known !== undefined && known.recipientsId === recipientsId) {
          // Encrypted before: only a peer that lacks it makes this store encrypt it again.
          cipherId = known.cipherId
          let made: Promise<Uint8Array> | undefined
          produce = () => (made ??= cipher.encrypt(chunk, plainId).then((r) => r.cipher))
        } else {
          const sealed = await cipher.encrypt(chunk, plainId)
          cipherId = sealed.cipherId
          produce = () => Promise.resolve(sealed.cipher)
          draft.newChunks.set(plainId, { cipherId, recipientsId })
        }
        draft.chunks.push({ plainId, cipherId, size: chunk.length })
        await writes.add(() => local.ensure(plainId, chunk))
        if (writes.error !== undefined) throw writes.error
        await session.send(cipherId, produce)
      }
      await writes.drain()
      if (writes.error !== undefined) throw writes.error
      draft.sha256 = whole.digest('hex')
    } finally {
      await writes.drain()
    }
  }

  /** A store that failed before its local commit leaves nothing behind: its blobs no ref uses, here and on peers. */
  async #abandon(draft: Draft, session: StoreReplication): Promise<void> {
    const { local, replicator, log } = this.#o
    await local.free(draft.pins).catch((err: unknown) => log.warn({ err: messageOf(err) }, 'freeing the blobs of a failed store failed'))
    const cipherIds = [...new Set(draft.chunks.map((c) => c.cipherId))]
    // A peer whose connection dropped frees them itself (blobs received on a closed connection are swept).
    for (const conn of session.peers) if (conn.open) replicator.release(conn, cipherIds, 'releasing the blobs of a failed store')
  }
}
