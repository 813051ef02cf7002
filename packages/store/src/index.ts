/**
 * @packageDocumentation
 *
 * The dcas node's disk: a content-addressed {@link BlobStore} in which every
 * file is named by the SHA-256 of its bytes, and a durable ordered
 * {@link Index} for everything that is not a blob.
 */

export type {
  AbortOptions,
  BlobInfo,
  BlobStore,
  ByteSource,
  GetOptions,
  Index,
  IndexTable,
  IndexTransaction,
  PeerStateRecord,
  RangeOptions,
  RefRecord,
  ScrubResult,
  TombstoneRecord,
} from './types.js'
export { IntegrityError, NotFoundError, STORE_ERROR_CODES, StoreError } from './errors.js'
export type { StoreErrorCode } from './errors.js'
