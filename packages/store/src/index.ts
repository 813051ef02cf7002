/**
 * @packageDocumentation
 *
 * The dcas node's disk: a content-addressed {@link BlobStore} in which every
 * file is named by the SHA-256 of its bytes (`blobs/ab/cd/abcd…`), and a durable
 * ordered {@link Index} (LMDB) for everything that is not a blob. In-memory
 * versions of both, with the same semantics, serve tests and ephemeral nodes.
 *
 * @example
 * ```ts
 * import { openBlobStore, openIndex } from '@dcas/store'
 *
 * const blobs = await openBlobStore({ root: '/var/lib/dcas' })
 * const index = await openIndex({ path: '/var/lib/dcas/index' })
 * const { id, size } = await blobs.put('hello, world')
 * await index.transaction((tx) => {
 *   tx.put(index.refs, 'greeting', { manifestId: id, size, sha256: id, version: 1, updatedAt: Date.now() })
 *   tx.add(index.refcounts, id, 1)
 * })
 * for await (const bytes of blobs.get(id)) process.stdout.write(bytes)
 * ```
 */

export type {
  AbortOptions,
  BlobBatch,
  BlobInfo,
  BlobLayout,
  BlobSource,
  BlobStore,
  BlobStoreFs,
  BlobStoreOptions,
  ByteSource,
  FsBlobStore,
  GetOptions,
  HashedBlob,
  Index,
  IndexOptions,
  IndexTable,
  IndexTransaction,
  MemoryBlobStore,
  PeerStateRecord,
  RangeOptions,
  RefRecord,
  ScrubResult,
  TombstoneRecord,
} from './types.js'
export {
  AbortedError,
  ClosedError,
  DiskFullError,
  IndexError,
  IntegrityError,
  InvalidArgumentError,
  InvalidIdError,
  InvalidKeyError,
  InvalidPathError,
  InvalidRangeError,
  IoError,
  MAX_KEY_BYTES,
  NotFoundError,
  STORE_ERROR_CODES,
  StoreError,
} from './errors.js'
export type { StoreErrorCode } from './errors.js'
export { openBlobStore } from './blob/fs-blob-store.js'
export { createMemoryBlobStore } from './blob/memory-blob-store.js'
export { openIndex } from './db/lmdb-index.js'
export { createMemoryIndex } from './db/memory-index.js'
export { isBlobId } from './internal/validate.js'
export { hashBlob } from './internal/hashed.js'
