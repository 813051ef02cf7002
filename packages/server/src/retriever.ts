// Read and heal, a layer over the local store: a verified blob from local disk, else fetched from
// a peer, decrypted and checked against its plainId (which this node's own manifest gives) and written back locally.
import type { RefRecord } from '@dcas/store'
import { maxCipherBytes, type BlobCipher } from './cipher.js'
import { codeOf, messageOf } from './errors.js'
import type { Fetcher } from './fetcher.js'
import { isLocalMiss, joinPieces, metaOf, type LocalStore } from './local.js'
import type { Logger } from './logger.js'
import { decodeManifest, MAX_MANIFEST_BYTES, type Manifest, type ManifestChunk } from './manifest.js'
import type { HealedEvent } from './types.js'

/** Told of each chunk healed from a peer. */
export type HealObserver = (event: HealedEvent) => void

/** Gets the owner's blobs, healing lost or damaged ones from peers. */
export class Retriever {
  readonly #local: LocalStore
  readonly #cipher: BlobCipher
  readonly #fetcher: Fetcher
  readonly #log: Logger
  readonly #onHealed: HealObserver
  readonly #macKey: Uint8Array

  /** `onHealed` is told of every chunk healed, whoever read it; `macKey` checks manifests. */
  constructor(options: { local: LocalStore; cipher: BlobCipher; fetcher: Fetcher; log: Logger; onHealed: HealObserver; macKey: Uint8Array }) {
    this.#macKey = options.macKey
    this.#local = options.local
    this.#cipher = options.cipher
    this.#fetcher = options.fetcher
    this.#log = options.log
    this.#onHealed = options.onHealed
  }

  /** A chunk's verified plaintext, as one buffer: local, else from a peer, healed locally. `observer` is told too if it is healed. */
  async chunk(key: string, refId: string, chunk: ManifestChunk, signal: AbortSignal, observer?: HealObserver): Promise<Buffer> {
    const { plain, healing } = await this.chunkAhead(key, refId, chunk, signal, observer)
    await healing
    return joinPieces(plain)
  }

  /**
   * A chunk's verified plaintext, as soon as it is verified, in pieces (one when read here; those the age records
   * opened to when fetched): local, else from a peer (the `spread`-th of the peers that hold it first, so that
   * reads ahead ask several at once). `healing` settles once a chunk from a peer is written back locally, durably
   * (it never rejects: a chunk that cannot be written back is still served, and logged).
   */
  async chunkAhead(key: string, refId: string, chunk: ManifestChunk, signal: AbortSignal, observer?: HealObserver, spread = 0): Promise<{ plain: readonly Uint8Array[]; healing: Promise<void> | undefined }> {
    let damaged = false
    try {
      return { plain: [await this.#local.read(chunk.plainId, signal)], healing: undefined }
    } catch (err) {
      if (!isLocalMiss(err)) throw err
      damaged = codeOf(err) === 'ERR_INTEGRITY'
    }
    const { value: hashed, from } = await this.#fetcher.fetch(chunk.cipherId, maxCipherBytes(chunk.size), refId, (cipher) => this.#cipher.decrypt(cipher, chunk.plainId), signal, { spread, openVerifies: true })
    const plain = hashed.pieces
    const healing = this.#local.ensure(chunk.plainId, hashed, damaged).then(
      () => {
        const event = { key, plainId: chunk.plainId, from }
        this.#log.info(event, 'healed chunk from peer')
        try {
          this.#onHealed(event)
          observer?.(event)
        } catch (err) {
          // A listener's failure is not the read's: healing never rejects.
          this.#log.warn({ key, plainId: chunk.plainId, err: messageOf(err) }, 'a listener of healed chunks failed')
        }
      },
      (err: unknown) => this.#log.warn({ key, plainId: chunk.plainId, err: messageOf(err) }, 'a chunk fetched from a peer could not be written back here'),
    )
    return { plain, healing }
  }

  /**
   * The manifest of a ref record: local, else from a peer, healed locally. Its bytes hash to the id in this
   * node's own index, which vouches for them (a manifest written before manifests carried a MAC included).
   */
  async manifest(record: RefRecord, signal: AbortSignal): Promise<Manifest> {
    try {
      return decodeManifest(await this.#local.read(record.manifestId, signal), this.#macKey).manifest
    } catch (err) {
      if (!isLocalMiss(err)) throw err
      const meta = metaOf(record)
      const { value: hashed } = await this.#fetcher.fetch(meta.manifestCipherId, maxCipherBytes(MAX_MANIFEST_BYTES), meta.refId, (cipher) => this.#cipher.decrypt(cipher, record.manifestId), signal, { openVerifies: true })
      const { manifest } = decodeManifest(joinPieces(hashed.pieces), this.#macKey)
      await this.#local.ensure(record.manifestId, hashed, codeOf(err) === 'ERR_INTEGRITY')
      return manifest
    }
  }
}
