import type * as nodeFs from 'node:fs'
import type * as fsPromises from 'node:fs/promises'

/** Options accepted by every asynchronous call. */
export interface AbortOptions {
  /** Aborts the call; it then rejects with `ERR_ABORTED`. */
  signal?: AbortSignal
}

/** Bytes to store: one buffer, a string (UTF-8), or an (async) iterable of buffers. */
export type ByteSource = Uint8Array | string | Iterable<Uint8Array> | AsyncIterable<Uint8Array>

/**
 * Bytes held in memory together with their id, made by `hashBlob`: the one SHA-256 pass that
 * names them also serves as the store's integrity check, so `put` and `putExpected` take them
 * without hashing again. Only `hashBlob` makes them (an object of the same shape made otherwise
 * is refused with `ERR_INVALID_ARGUMENT`). The bytes must not change after `hashBlob`.
 */
export interface HashedBlob {
  /** Lowercase hex SHA-256 of the bytes. */
  readonly id: string
  /** Size in bytes. */
  readonly size: number
  /** The bytes: the array, or the pieces, given to `hashBlob` (never joined). */
  readonly pieces: readonly Uint8Array[]
}

/** What a put takes: bytes to hash on the way, or bytes already hashed by `hashBlob`. */
export type BlobSource = ByteSource | HashedBlob

/** A stored blob: its id (lowercase hex SHA-256 of its bytes) and size in bytes. */
export interface BlobInfo {
  /** Lowercase hex SHA-256 of the blob's bytes. */
  id: string
  /** Size in bytes. */
  size: number
}

/** Options of {@link BlobStore.get}: a byte range and an abort signal. */
export interface GetOptions extends AbortOptions {
  /** First byte to return (default 0). */
  offset?: number
  /** How many bytes to return (default: to the end). */
  length?: number
}

/** One result of {@link BlobStore.scrub}. */
export interface ScrubResult {
  /** The blob's id. */
  id: string
  /** `false` when the blob's bytes no longer hash to its id, or it could not be read. */
  ok: boolean
  /** Why it is not ok: an `ERR_INTEGRITY` or `ERR_IO` error. */
  error?: Error
}

/**
 * A content-addressed blob store: every blob is named by the SHA-256 of its bytes.
 * Reads re-hash and never return bytes that were not verified.
 */
export interface BlobStore {
  /**
   * Stores bytes, hashing while streaming (or taking the id of a {@link HashedBlob}); resolves to
   * their id and size once the blob is durable and visible. Idempotent.
   */
  put(source: BlobSource, options?: AbortOptions): Promise<BlobInfo>
  /** As {@link BlobStore.put}, but fails with `ERR_INTEGRITY` and keeps nothing unless the bytes hash to `id`. */
  putExpected(id: string, source: BlobSource, options?: AbortOptions): Promise<BlobInfo>
  /**
   * Starts a group of puts that become durable, then visible, together at `commit()`: their
   * files are written at once and fsynced as a group, each touched directory once, instead of
   * one fsync, rename and directory fsync after the other per blob.
   */
  batch(): BlobBatch
  /** Streams a blob (or a range of it), verified against its id; fails with `ERR_NOT_FOUND` or `ERR_INTEGRITY`. */
  get(id: string, options?: GetOptions): AsyncGenerator<Uint8Array>
  /** Whether a blob with this id is stored (not verified). */
  has(id: string, options?: AbortOptions): Promise<boolean>
  /** Id and size of a stored blob, or `undefined`. */
  stat(id: string, options?: AbortOptions): Promise<BlobInfo | undefined>
  /** Removes one blob; resolves to whether it existed. Never removes anything else. */
  delete(id: string, options?: AbortOptions): Promise<boolean>
  /** Every stored blob id. */
  list(options?: AbortOptions): AsyncIterable<string>
  /** Re-hashes every blob and reports each. */
  scrub(options?: AbortOptions): AsyncIterable<ScrubResult>
  /** Waits for the puts and commits in flight, drops the batches not committed; later calls fail with `ERR_CLOSED`. */
  close(): Promise<void>
}

/**
 * Puts made durable and visible together (from {@link BlobStore.batch}). A blob put into a
 * batch is written but neither durable nor visible (`has` is `false`, `get` fails with
 * `ERR_NOT_FOUND`) until a `commit()` that covers it resolves; a crash before then leaves
 * nothing of it under its id. Puts may run concurrently; a batch may be committed again
 * for the puts made after the previous commit.
 */
export interface BlobBatch {
  /** Writes bytes toward the next commit; resolves to their id and size once written (not yet durable or visible). */
  put(source: BlobSource, options?: AbortOptions): Promise<BlobInfo>
  /** As {@link BlobBatch.put}, but fails with `ERR_INTEGRITY` and keeps nothing unless the bytes hash to `id`. */
  putExpected(id: string, source: BlobSource, options?: AbortOptions): Promise<BlobInfo>
  /**
   * Waits for the puts in flight, then makes every blob put (and not yet committed) durable
   * and visible under its id: resolves once all are. A put that failed is simply not part of
   * it. When a commit fails (or its signal fires before the blobs are placed) it rejects,
   * and the batch is aborted: what it had not placed is dropped.
   */
  commit(options?: AbortOptions): Promise<void>
  /** Drops every blob put and not committed; later calls fail with `ERR_CLOSED`. */
  abort(): Promise<void>
}

/** Options of {@link IndexTable.entries}: ordered listing by prefix with a cursor. */
export interface RangeOptions {
  /** Only keys that start with this prefix. */
  prefix?: string
  /** Only keys strictly after this one (the cursor of the previous page). */
  after?: string
  /** At most this many entries. */
  limit?: number
}

/** One named, ordered table of the {@link Index}: string keys (ordered by UTF-8 bytes) to structured values. */
export interface IndexTable<V> {
  /** The table's name. */
  readonly name: string
  /** The value under `key` (a copy), or `undefined`. */
  get(key: string): V | undefined
  /** Whether `key` is present. */
  has(key: string): boolean
  /** Entries in key order. */
  entries(options?: RangeOptions): Iterable<[key: string, value: V]>
}

/** The writes of one atomic {@link Index.transaction}. Reads see the transaction's own writes. */
export interface IndexTransaction {
  /** The value under `key` as this transaction sees it (its own writes included). */
  get<V>(table: IndexTable<V>, key: string): V | undefined
  /** Writes a copy of `value` (structured-clonable, not `undefined`) under `key`. */
  put<V>(table: IndexTable<V>, key: string, value: V): void
  /** Removes `key` (nothing happens when it is absent). */
  delete<V>(table: IndexTable<V>, key: string): void
  /** Adds `delta` to a counter (absent = 0); deletes the key when it reaches 0; returns the new value. */
  add(table: IndexTable<number>, key: string, delta: number): number
}

/** A reference from a key to the manifest blob that describes its object. */
export interface RefRecord {
  /** Id of the manifest blob. */
  manifestId: string
  /** Object size in bytes. */
  size: number
  /** Lowercase hex SHA-256 of the whole object. */
  sha256: string
  /** Increases with every store of the key. */
  version: number
  /** Milliseconds since the epoch. */
  updatedAt: number
  /** Anything else the owner of the ref needs to keep with it. */
  meta?: Record<string, unknown>
}

/** Marks a deleted key (or refId), so that a stale copy never brings it back. */
export interface TombstoneRecord {
  /** The version that was deleted. */
  version: number
  /** Milliseconds since the epoch. */
  deletedAt: number
}

/** What one peer holds or still needs, keyed by the caller (for example `peerId/blobId`). */
export interface PeerStateRecord {
  /** `held`: acknowledged verified and durable; `pending`: still to send; `tombstone`: a delete still to deliver. */
  state: 'held' | 'pending' | 'tombstone'
  /** Milliseconds since the epoch. */
  updatedAt: number
  /** Anything else the caller needs to keep with it. */
  meta?: Record<string, unknown>
}

/** The durable ordered index: named tables plus atomic multi-record transactions. */
export interface Index {
  /** key → manifest reference. */
  readonly refs: IndexTable<RefRecord>
  /** blob id → reference count. */
  readonly refcounts: IndexTable<number>
  /** per-peer replication state. */
  readonly peerState: IndexTable<PeerStateRecord>
  /** deleted keys. */
  readonly tombstones: IndexTable<TombstoneRecord>
  /** Any other table, by name (`[a-z0-9_-]{1,64}`), with structured-clonable values. */
  table<V>(name: string): IndexTable<V>
  /**
   * Runs `fn` atomically: every write lands, or none does (also across a crash); the promise
   * resolves once the commit is durable. `fn` must be synchronous; when it throws, nothing is
   * written and the promise rejects with that error. Transactions run one at a time, in order.
   */
  transaction<T>(fn: (tx: IndexTransaction) => T, options?: AbortOptions): Promise<T>
  /** Flushes and releases the index. */
  close(): Promise<void>
}

/**
 * Maps a blob id to the path of its file, relative to the store root (an absolute path must
 * also lie under the root). The file must be named by the id (the last path segment is the id),
 * so that `sha256sum` checks it by hand and `list` finds it; it may not lie in `tmp/`.
 * Any other path fails with `ERR_INVALID_PATH`.
 */
export type BlobLayout = (id: string) => string

/**
 * The file system functions the disk store calls; replace some to inject faults in tests. The
 * default is `{ ...fs, ...fs.promises }` (`node:fs` and `node:fs/promises` in one object): the
 * write path calls the synchronous `openSync`, `writevSync`, `closeSync`, `renameSync`,
 * `unlinkSync` and `mkdirSync`, and `has`/`stat` call `statSync` (page-cache work, with no
 * thread-pool round trip), fsyncs go through the callback `fsync`; reads, listings, deletes
 * and the store's own directories at open call the promise functions.
 */
export type BlobStoreFs = Pick<typeof fsPromises, 'open' | 'mkdir' | 'readdir' | 'rm' | 'unlink'> &
  Pick<typeof nodeFs, 'openSync' | 'writevSync' | 'closeSync' | 'renameSync' | 'unlinkSync' | 'fsync' | 'mkdirSync' | 'statSync'>

/** Options of `openBlobStore`. */
export interface BlobStoreOptions extends AbortOptions {
  /** Directory of the store; created when missing. Blobs go to `root/blobs/ab/cd/<id>`, temp files to `root/tmp/`. */
  root: string
  /** Replaces the id → path mapping (default `blobs/ab/cd/<id>`). With a custom layout `list` and `scrub` walk the whole root, so give such a store a root of its own. */
  layout?: BlobLayout
  /**
   * Blobs up to this size (default 4 MiB) are read once into memory, hashed and served from
   * that buffer; larger ones are hashed in a first pass and served in a second pass over the
   * same open file. This bounds the memory of one `get`.
   */
  maxBufferedRead?: number
  /** File system functions (default `node:fs` with `node:fs/promises`), for fault injection in tests. */
  fs?: BlobStoreFs
}

/** The disk {@link BlobStore} returned by `openBlobStore`. */
export interface FsBlobStore extends BlobStore {
  /** Absolute path of the store root. */
  readonly root: string
  /** Absolute path of the file that holds (or would hold) the blob `id`. */
  path(id: string): string
}

/** An in-memory {@link BlobStore} (for tests and ephemeral nodes). */
export interface MemoryBlobStore extends BlobStore {
  /** Flips one bit of a stored blob (default: its first byte) so that tests can exercise integrity failures. */
  damage(id: string, offset?: number): void
}

/** Options of `openIndex`. */
export interface IndexOptions extends AbortOptions {
  /** Directory of the LMDB environment; created when missing. */
  path: string
  /** Most named tables the index can hold (default 64, including the four standard ones). */
  maxTables?: number
}
