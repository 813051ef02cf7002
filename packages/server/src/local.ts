// The owner's local storage: its plaintext blobs (chunks and manifests) and the index tables that
// say which key holds which blobs. Every change of a key's blobs goes through one refcount commit;
// blobs whose count reaches zero are freed unless an in-flight store pinned them.
import type { BlobBatch, BlobStore, HashedBlob, Index, IndexTable, IndexTransaction, RefRecord } from '@dcas/store'
import { InFlight } from './concurrency.js'
import { codeOf, messageOf } from './errors.js'
import { KeyedLocks } from './locks.js'
import type { Logger } from './logger.js'
import type { ObjectMetadata } from './manifest.js'
import type { Tombstone } from './secrets.js'

/** The owner's fields of a ref record (written by this server only). */
export interface RefMeta {
  refId: string
  manifestCipherId: string
  chunkCount: number
  recipientsId: string
  /** The object's metadata, also in its manifest; absent when it has none. */
  metadata?: ObjectMetadata
}

/** The owner's fields of a ref record. */
export const metaOf = (record: RefRecord): RefMeta => record.meta as unknown as RefMeta

/** How a chunk was encrypted for peers. */
export interface ChunkRecord {
  cipherId: string
  recipientsId: string
}

/** The owner's own tables in the node's index (besides the index's refs, tombstones, refcounts and peer state). */
export interface OwnerTables {
  /** key → plain blob ids the ref holds a count on (its chunks and manifest). */
  refBlobs: IndexTable<string[]>
  /** plainId → how it was encrypted. */
  chunks: IndexTable<ChunkRecord>
  /** recipientsId → the recipient list. */
  recipientSets: IndexTable<string[]>
  /** nodeId → where to dial it. */
  peers: IndexTable<{ address?: string; lastSeen: number }>
  /** refId → the highest version a peer reported for a ref this node does not know (a tombstone lost with the index). */
  versionFloors: IndexTable<number>
  /** refId → the newest delete a peer reported: a stale live copy elsewhere is never installed over it. */
  remoteTombstones: IndexTable<Omit<Tombstone, 'refId'>>
  /** refId → the key it names, live or deleted: this node's keys in the order peers list them. */
  refIds: IndexTable<string>
}

/** Opens the owner's tables in an index. */
export function ownerTables(index: Index): OwnerTables {
  return {
    refBlobs: index.table('ref_blobs'),
    chunks: index.table('chunks'),
    recipientSets: index.table('recipient_sets'),
    peers: index.table('peers'),
    versionFloors: index.table('version_floors'),
    remoteTombstones: index.table('remote_tombstones'),
    refIds: index.table('ref_ids'),
  }
}

/** A new state of one key, for {@link LocalStore.commit}. */
export interface RefCommit {
  record: RefRecord
  /** Every plain blob the version uses (its chunks and manifest), once each. */
  blobIds: string[]
  /** The recipient set its blobs were encrypted to, recorded if new. */
  recipients: { id: string; list: string[] }
  /** How its chunks were encrypted: `replace` overwrites records of the same chunks, else only new ones are added. */
  chunks?: { records: Iterable<[plainId: string, record: ChunkRecord]>; replace: boolean }
  /** Checked inside the commit: when it says no, nothing is committed. */
  guard?: (tx: IndexTransaction) => boolean
}

/** Missing or damaged: what a local read that a peer may make good fails with. */
export const isLocalMiss = (err: unknown): boolean => ['ERR_NOT_FOUND', 'ERR_INTEGRITY'].includes(codeOf(err) ?? '')

/** A Buffer over the same memory (no copy): for bytes this code alone holds. */
export const asBuffer = (bytes: Uint8Array): Buffer => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)

/** The pieces as one Buffer: a view when they lie back to back in one memory (a blob the store read whole), else a copy. */
export function joinPieces(pieces: readonly Uint8Array[]): Buffer {
  const first = pieces[0]
  if (first === undefined) return Buffer.alloc(0)
  let end = first.byteOffset + first.byteLength
  for (const piece of pieces.slice(1)) {
    if (piece.buffer !== first.buffer || piece.byteOffset !== end) return Buffer.concat(pieces)
    end += piece.byteLength
  }
  return Buffer.from(first.buffer, first.byteOffset, end - first.byteOffset)
}

/** The owner's blobs and the tables that count them. */
export class LocalStore {
  readonly index: Index
  readonly tables: OwnerTables
  readonly #blobs: BlobStore
  readonly #log: Logger
  readonly #concurrency: number
  /** Per blob id: a write, check or free of one blob at a time; pins keep a blob an in-flight store relies on. */
  readonly #locks = new KeyedLocks()
  readonly #freeing = new Set<Promise<void>>()

  constructor(options: { index: Index; blobs: BlobStore; log: Logger; concurrency: number }) {
    this.index = options.index
    this.tables = ownerTables(options.index)
    this.#blobs = options.blobs
    this.#log = options.log
    this.#concurrency = options.concurrency
  }

  /** Reads a local blob whole (chunks and manifests are bounded), verified by the store. */
  async read(id: string, signal?: AbortSignal): Promise<Buffer> {
    const pieces: Uint8Array[] = []
    for await (const piece of this.#blobs.get(id, signal === undefined ? {} : { signal })) pieces.push(piece)
    return joinPieces(pieces)
  }

  /**
   * Makes blob `id` hold `bytes`: an intact copy already there is kept, a missing or damaged one
   * is (re)written (`damaged`: known to be bad, so not worth checking).
   */
  async ensure(id: string, bytes: Uint8Array | HashedBlob, damaged = false): Promise<void> {
    await this.#locks.run(id, async () => {
      if (!damaged && (await this.#intact(id))) return
      await this.#blobs.putExpected(id, bytes)
    })
  }

  /** Whether blob `id` is here and reads back whole under its id. */
  async #intact(id: string): Promise<boolean> {
    if (!(await this.#blobs.has(id))) return false
    try {
      for await (const _ of this.#blobs.get(id));
      return true
    } catch (err) {
      if (!isLocalMiss(err)) throw err
      return false
    }
  }

  /** A batch of blob writes made durable and visible together by its `commit()` (see {@link LocalStore.stage}). */
  batch(): BlobBatch {
    return this.#blobs.batch()
  }

  /**
   * As {@link LocalStore.ensure}, but into `batch`: a blob missing or damaged here is written there, durable and
   * visible once the batch is committed (before the index commit that counts it).
   */
  async stage(batch: BlobBatch, blob: HashedBlob): Promise<void> {
    if (await this.#locks.run(blob.id, () => this.#intact(blob.id))) return
    await batch.putExpected(blob.id, blob)
  }

  /** Keeps blob `id` from being freed until {@link LocalStore.unpin}: an in-flight store relies on it. */
  pin(id: string): void {
    this.#locks.pin(id)
  }

  /**
   * Releases one {@link LocalStore.pin}. A blob no ref counts any more once its last pin goes is freed then
   * (a free skips pinned blobs, and a blob healed for a version that moved on is counted by nothing).
   */
  unpin(id: string): void {
    this.#locks.unpin(id)
    if (this.#locks.pinned(id) || this.index.refcounts.has(id)) return
    const p = this.free([id])
      .catch((err: unknown) => this.#log.warn({ id, err: messageOf(err) }, 'freeing an unpinned blob failed'))
      .finally(() => this.#freeing.delete(p))
    this.#freeing.add(p)
  }

  /** Waits for the frees that unpinning started. */
  async drain(): Promise<void> {
    while (this.#freeing.size > 0) await Promise.allSettled([...this.#freeing])
  }

  /**
   * The one refcount commit: `key` now holds `next`'s blobs, the blobs of its previous version lose their
   * count, and those left with none are freed. Resolves to whether it committed (a guard may refuse).
   */
  async commit(key: string, next: RefCommit): Promise<boolean> {
    const { index, tables } = this
    const freed = await index.transaction((tx) => {
      if (next.guard !== undefined && !next.guard(tx)) return undefined
      const previous = tx.get(tables.refBlobs, key) ?? []
      tx.put(index.refs, key, next.record)
      tx.put(tables.refIds, metaOf(next.record).refId, key)
      tx.put(tables.refBlobs, key, next.blobIds)
      tx.delete(index.tombstones, key)
      if (tx.get(tables.recipientSets, next.recipients.id) === undefined) tx.put(tables.recipientSets, next.recipients.id, next.recipients.list)
      for (const [plainId, rec] of next.chunks?.records ?? []) {
        if (next.chunks?.replace === true || tx.get(tables.chunks, plainId) === undefined) tx.put(tables.chunks, plainId, rec)
      }
      for (const id of next.blobIds) tx.add(index.refcounts, id, 1)
      return previous.filter((id) => tx.add(index.refcounts, id, -1) === 0)
    })
    if (freed === undefined) return false
    await this.free(freed)
    return true
  }

  /** Deletes `key` locally up to `version`: the ref and what peers acknowledged of it go, a tombstone stays, unused blobs are freed. */
  async commitDelete(key: string, refId: string, version: number, deletedAt: number): Promise<void> {
    const { index, tables } = this
    const freed = await index.transaction((tx) => {
      const blobIds = tx.get(tables.refBlobs, key) ?? []
      tx.delete(index.refs, key)
      tx.delete(tables.refBlobs, key)
      tx.put(index.tombstones, key, { version, deletedAt })
      tx.put(tables.refIds, refId, key)
      for (const [k] of index.peerState.entries({ prefix: `${refId}/` })) tx.delete(index.peerState, k)
      return blobIds.filter((id) => tx.add(index.refcounts, id, -1) === 0)
    })
    await this.free(freed)
  }

  /**
   * Frees local blobs whose count reached zero, unless an in-flight store pinned them: a few at
   * a time (each delete waits on a directory fsync), then their chunk records in one commit.
   */
  async free(ids: Iterable<string>): Promise<void> {
    const { index, tables } = this
    const records: string[] = []
    const deleting = new InFlight(this.#concurrency)
    for (const id of ids) {
      await deleting.add(() =>
        this.#locks.run(id, async () => {
          if (index.refcounts.has(id) || this.#locks.pinned(id)) return
          await this.#blobs.delete(id)
          if (tables.chunks.has(id)) records.push(id)
        }),
      )
    }
    await deleting.drain()
    if (records.length > 0) {
      // A chunk counted or pinned again since its blob went keeps its record.
      await index.transaction((tx) => {
        for (const id of records) if (tx.get(index.refcounts, id) === undefined && !this.#locks.pinned(id)) tx.delete(tables.chunks, id)
      })
    }
    if (deleting.error !== undefined) throw deleting.error
  }

  /** Removes blobs no ref counts (left by a crash between writing blobs and committing their ref). */
  async sweepOrphans(): Promise<void> {
    let swept = 0
    for await (const id of this.#blobs.list()) {
      if (!this.index.refcounts.has(id)) {
        await this.#blobs.delete(id)
        swept++
      }
    }
    if (swept > 0) this.#log.info({ swept }, 'removed unreferenced blobs left by an interrupted write')
  }
}
