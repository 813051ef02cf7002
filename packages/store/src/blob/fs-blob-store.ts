// The disk BlobStore: reads (verified), deletes, listing and scrubbing; writes go through DiskWriter.
import { createHash } from 'node:crypto'
import * as nodeFs from 'node:fs'
import * as fsPromises from 'node:fs/promises'
import type { FileHandle } from 'node:fs/promises'
import { basename, dirname, isAbsolute, join, relative, resolve, sep } from 'node:path'
import { ClosedError, IntegrityError, InvalidArgumentError, InvalidPathError, NotFoundError, StoreError } from '../errors.js'
import { throwIfAborted } from '../internal/abort.js'
import { assertBlobId, assertRangeOptions, isBlobId, resolveRange } from '../internal/validate.js'
import type {
  AbortOptions,
  BlobBatch,
  BlobInfo,
  BlobSource,
  BlobStoreFs,
  BlobStoreOptions,
  FsBlobStore,
  GetOptions,
  ScrubResult,
} from '../types.js'
import { StagedBatch, type Stager } from './batch.js'
import { errnoOf, io, syncDirectory, toStoreError } from './disk-io.js'
import { DiskWriter, type StagedFile } from './disk-writer.js'

/** The file system functions a store calls unless told otherwise. */
const DEFAULT_FS: BlobStoreFs = {
  open: fsPromises.open,
  mkdir: fsPromises.mkdir,
  readdir: fsPromises.readdir,
  rm: fsPromises.rm,
  unlink: fsPromises.unlink,
  openSync: nodeFs.openSync,
  writevSync: nodeFs.writevSync,
  closeSync: nodeFs.closeSync,
  renameSync: nodeFs.renameSync,
  unlinkSync: nodeFs.unlinkSync,
  fsync: nodeFs.fsync,
  mkdirSync: nodeFs.mkdirSync,
  statSync: nodeFs.statSync,
}

/** Size of the pieces `get` yields and `scrub` hashes. */
const PIECE = 1024 * 1024
const DEFAULT_MAX_BUFFERED_READ = 4 * 1024 * 1024

/** Fills `target` from `position`; throws `ERR_INTEGRITY` when the file ends first (it was truncated). */
async function readExactly(file: FileHandle, target: Uint8Array, position: number, id: string): Promise<void> {
  let done = 0
  while (done < target.byteLength) {
    const { bytesRead } = await io(file.read(target, done, target.byteLength - done, position + done), `read blob ${id}`)
    if (bytesRead === 0) throw new IntegrityError(`blob ${id} is shorter than its recorded size`)
    done += bytesRead
  }
}

/** Hashes `size` bytes of an open blob in bounded pieces; throws `ERR_INTEGRITY` unless they hash to `id`. */
async function verifyFile(file: FileHandle, size: number, id: string, signal: AbortSignal | undefined): Promise<void> {
  const hash = createHash('sha256')
  const piece = Buffer.allocUnsafe(Math.min(PIECE, size))
  for (let position = 0; position < size; position += piece.byteLength) {
    throwIfAborted(signal)
    const part = piece.subarray(0, Math.min(piece.byteLength, size - position))
    await readExactly(file, part, position, id)
    hash.update(part)
  }
  if (hash.digest('hex') !== id) throw new IntegrityError(`blob ${id} no longer matches its id`)
}

/**
 * Creates `blobs/` and its 256 first-level fan-out directories once, when `blobs/` is new, so
 * that a put into a new `ab/cd/` directory has one parent to fsync instead of two.
 */
async function makeFanOut(fs: BlobStoreFs, root: string): Promise<void> {
  const blobs = join(root, 'blobs')
  if ((await io(fs.mkdir(blobs, { recursive: true, mode: 0o700 }), 'create blobs/')) === undefined) return
  for (let byte = 0; byte < 256; byte++) {
    await io(fs.mkdir(join(blobs, byte.toString(16).padStart(2, '0')), { recursive: true, mode: 0o700 }), 'create blobs/')
  }
  await syncDirectory(fs, blobs)
  await syncDirectory(fs, root)
}

function defaultLayout(id: string): string {
  return join('blobs', id.slice(0, 2), id.slice(2, 4), id)
}

/**
 * Opens (creating when missing) a content-addressed blob store on disk and removes any
 * leftovers in its `tmp/`. One store per root at a time: a second one would remove the
 * first one's temp files.
 *
 * @example
 * ```ts
 * const store = await openBlobStore({ root: '/var/lib/dcas' })
 * const { id } = await store.put('hello')
 * for await (const bytes of store.get(id)) process.stdout.write(bytes)
 * ```
 */
export async function openBlobStore(options: BlobStoreOptions): Promise<FsBlobStore> {
  throwIfAborted(options.signal)
  if (typeof options.root !== 'string' || options.root === '') throw new InvalidArgumentError('root must be a non-empty path')
  const maxBufferedRead = options.maxBufferedRead ?? DEFAULT_MAX_BUFFERED_READ
  if (!Number.isSafeInteger(maxBufferedRead) || maxBufferedRead < 0) {
    throw new InvalidArgumentError('maxBufferedRead must be a non-negative integer')
  }
  const fs: BlobStoreFs = options.fs ?? DEFAULT_FS
  const root = resolve(options.root)
  const tmp = join(root, 'tmp')
  await io(fs.mkdir(tmp, { recursive: true, mode: 0o700 }), 'create the store directories')
  // A temp file is never a blob: whatever a crash left there goes.
  for (const name of await io(fs.readdir(tmp), 'list tmp/')) {
    await io(fs.rm(join(tmp, name), { recursive: true, force: true }), 'remove a leftover temp file')
  }
  if (options.layout === undefined) await makeFanOut(fs, root)
  return new DiskBlobStore(root, fs, options.layout, maxBufferedRead)
}

class DiskBlobStore implements FsBlobStore, Stager<StagedFile> {
  readonly root: string
  readonly #fs: BlobStoreFs
  readonly #tmp: string
  readonly #layout: ((id: string) => string) | undefined
  readonly #maxBufferedRead: number
  readonly #writer: DiskWriter
  readonly #operations = new Set<Promise<unknown>>()
  /** Batches holding blobs not yet committed, dropped at close. */
  readonly #batches = new Set<StagedBatch<StagedFile>>()
  #closed = false

  constructor(root: string, fs: BlobStoreFs, layout: ((id: string) => string) | undefined, maxBufferedRead: number) {
    this.root = root
    this.#fs = fs
    this.#tmp = join(root, 'tmp')
    this.#layout = layout
    this.#maxBufferedRead = maxBufferedRead
    this.#writer = new DiskWriter(fs, root, (id) => this.path(id))
  }

  path(id: string): string {
    assertBlobId(id)
    if (this.#layout === undefined) return join(this.root, defaultLayout(id))
    let mapped: unknown
    try {
      mapped = this.#layout(id)
    } catch (err) {
      throw new InvalidPathError(`layout failed for ${id}`, { cause: err })
    }
    if (typeof mapped !== 'string' || mapped === '') throw new InvalidPathError(`layout returned no path for ${id}`)
    const path = resolve(this.root, mapped)
    const rel = relative(this.root, path)
    if (rel === '' || isAbsolute(rel) || rel === '..' || rel.startsWith(`..${sep}`)) {
      throw new InvalidPathError(`layout path ${JSON.stringify(mapped)} is outside the store root`)
    }
    if (rel === 'tmp' || rel.startsWith(`tmp${sep}`)) throw new InvalidPathError(`layout path ${JSON.stringify(mapped)} is inside tmp/`)
    if (basename(path) !== id) throw new InvalidPathError(`layout path ${JSON.stringify(mapped)} is not named by the id ${id}`)
    return path
  }

  put(source: BlobSource, options: AbortOptions = {}): Promise<BlobInfo> {
    return this.track(this.#putNow(source, undefined, options))
  }

  putExpected(id: string, source: BlobSource, options: AbortOptions = {}): Promise<BlobInfo> {
    return this.track(this.#putNow(source, id, options))
  }

  /** A put on its own: staged, then placed as a commit of one. */
  async #putNow(source: BlobSource, expected: string | undefined, options: AbortOptions): Promise<BlobInfo> {
    const staged = await this.stage(source, expected, options)
    await this.place([staged], options)
    return { id: staged.id, size: staged.size }
  }

  batch(): BlobBatch {
    this.assertOpen()
    return new StagedBatch<StagedFile>(this, this.#batches)
  }

  // --- Stager: how this store writes (see DiskWriter) --------------------------------

  stage(source: BlobSource, expected: string | undefined, options: AbortOptions): Promise<StagedFile> {
    this.assertOpen()
    return this.#writer.stage(source, expected, options)
  }

  place(staged: readonly StagedFile[], options: AbortOptions): Promise<void> {
    return this.#writer.place(staged, options)
  }

  discard(staged: readonly StagedFile[]): Promise<void> {
    return this.#writer.discard(staged)
  }

  assertOpen(): void {
    if (this.#closed) throw new ClosedError('the blob store is closed')
  }

  async track<T>(operation: Promise<T>): Promise<T> {
    this.#operations.add(operation)
    try {
      return await operation
    } finally {
      this.#operations.delete(operation)
    }
  }

  #syncDir(dir: string): Promise<void> {
    return syncDirectory(this.#fs, dir)
  }

  async *get(id: string, options: GetOptions = {}): AsyncGenerator<Uint8Array> {
    const { signal, offset, length } = options
    throwIfAborted(signal)
    this.assertOpen()
    assertRangeOptions(offset, length)
    const path = this.path(id)
    const file = await this.#openBlob(path, id)
    try {
      const { size } = await io(file.stat(), `stat blob ${id}`)
      const { start, end } = resolveRange(size, offset, length)
      if (size <= this.#maxBufferedRead) {
        // One read, one hash, then serve from the very bytes that were hashed.
        const whole = Buffer.allocUnsafe(size)
        await readExactly(file, whole, 0, id)
        if (createHash('sha256').update(whole).digest('hex') !== id) {
          throw new IntegrityError(`blob ${id} no longer matches its id`)
        }
        for (let position = start; position < end; position += PIECE) {
          throwIfAborted(signal)
          yield whole.subarray(position, Math.min(position + PIECE, end))
        }
        return
      }
      // Too big to hold: verify the whole file first, then serve the range from the same open
      // file (blob files are never written in place: a new copy replaces the inode by rename).
      await verifyFile(file, size, id, signal)
      for (let position = start; position < end; position += PIECE) {
        throwIfAborted(signal)
        const piece = Buffer.allocUnsafe(Math.min(PIECE, end - position))
        await readExactly(file, piece, position, id)
        yield piece
      }
    } finally {
      await file.close().catch(() => undefined)
    }
  }

  async #openBlob(path: string, id: string): Promise<FileHandle> {
    try {
      return await this.#fs.open(path, nodeFs.constants.O_RDONLY | nodeFs.constants.O_NOFOLLOW)
    } catch (err) {
      const code = errnoOf(err)
      if (code === 'ENOENT' || code === 'ENOTDIR') throw new NotFoundError(`no blob ${id}`, { cause: err })
      throw toStoreError(err, `open blob ${id}`)
    }
  }

  async has(id: string, options: AbortOptions = {}): Promise<boolean> {
    return (await this.stat(id, options)) !== undefined
  }

  stat(id: string, options: AbortOptions = {}): Promise<BlobInfo | undefined> {
    // The executor turns a throw into the promise's rejection.
    return new Promise((resolve) => resolve(this.#statNow(id, options)))
  }

  #statNow(id: string, options: AbortOptions): BlobInfo | undefined {
    throwIfAborted(options.signal)
    this.assertOpen()
    const path = this.path(id)
    // Synchronous: a lookup in the kernel's caches costs less than a thread-pool round trip.
    let stats: nodeFs.Stats | undefined
    try {
      stats = this.#fs.statSync(path, { throwIfNoEntry: false })
    } catch (err) {
      if (errnoOf(err) === 'ENOTDIR') return undefined
      throw toStoreError(err, `stat blob ${id}`)
    }
    return stats?.isFile() === true ? { id, size: stats.size } : undefined
  }

  async delete(id: string, options: AbortOptions = {}): Promise<boolean> {
    throwIfAborted(options.signal)
    this.assertOpen()
    const path = this.path(id)
    try {
      await this.#fs.unlink(path)
    } catch (err) {
      const code = errnoOf(err)
      if (code === 'ENOENT' || code === 'ENOTDIR') return false
      throw toStoreError(err, `delete blob ${id}`)
    }
    // Only the file goes; its directories stay (they may hold, or be about to hold, other blobs).
    await this.#syncDir(dirname(path))
    return true
  }

  async *list(options: AbortOptions = {}): AsyncGenerator<string> {
    throwIfAborted(options.signal)
    this.assertOpen()
    const start = this.#layout === undefined ? join(this.root, 'blobs') : this.root
    yield* this.#walk(start, options.signal)
  }

  async *#walk(dir: string, signal: AbortSignal | undefined): AsyncGenerator<string> {
    throwIfAborted(signal)
    let entries
    try {
      entries = await this.#fs.readdir(dir, { withFileTypes: true })
    } catch (err) {
      if (errnoOf(err) === 'ENOENT') return
      throw toStoreError(err, `list ${dir}`)
    }
    for (const entry of entries) {
      const path = join(dir, entry.name)
      if (entry.isDirectory()) {
        if (path !== this.#tmp) yield* this.#walk(path, signal)
      } else if (entry.isFile() && isBlobId(entry.name) && this.#mapsTo(entry.name, path)) {
        yield entry.name
      }
    }
  }

  #mapsTo(id: string, path: string): boolean {
    try {
      return this.path(id) === path
    } catch {
      return false
    }
  }

  async *scrub(options: AbortOptions = {}): AsyncGenerator<ScrubResult> {
    const { signal } = options
    for await (const id of this.list(options)) {
      let file: FileHandle
      try {
        file = await this.#openBlob(this.path(id), id)
      } catch (err) {
        if (err instanceof NotFoundError) continue // deleted while we walked
        yield { id, ok: false, error: err as Error }
        continue
      }
      try {
        const { size } = await io(file.stat(), `stat blob ${id}`)
        await verifyFile(file, size, id, signal)
        yield { id, ok: true }
      } catch (err) {
        if (err instanceof StoreError && err.code === 'ERR_ABORTED') throw err
        yield { id, ok: false, error: err as Error }
      } finally {
        await file.close().catch(() => undefined)
      }
    }
  }

  async close(): Promise<void> {
    this.#closed = true
    await Promise.allSettled([...this.#operations])
    // Batches not committed by now never will be: their temp files go.
    await Promise.allSettled([...this.#batches].map((batch) => batch.abort()))
  }
}
