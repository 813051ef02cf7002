// The in-memory BlobStore: the disk store's semantics (ids, ranges, integrity checks, batches) without a disk.
import { ClosedError, IntegrityError, InvalidRangeError, NotFoundError } from '../errors.js'
import { throwIfAborted } from '../internal/abort.js'
import { assertExpected, sha256Hex } from '../internal/hash.js'
import { assertSource, hashPieces, isHashedBlob } from '../internal/hashed.js'
import { assertBlobId, assertRangeOptions, resolveRange } from '../internal/validate.js'
import type { AbortOptions, BlobBatch, BlobInfo, BlobSource, GetOptions, MemoryBlobStore, ScrubResult } from '../types.js'
import { StagedBatch, type Stager } from './batch.js'

/** A blob staged in memory: its own copy of the bytes. */
interface StagedBytes extends BlobInfo {
  readonly bytes: Uint8Array
}

/** Answers on a later tick, as the disk store does, so callers cannot come to rely on synchronous answers. */
function settled(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve))
}

/** Size of the pieces `get` yields. */
const PIECE = 1024 * 1024

/**
 * Creates an in-memory {@link MemoryBlobStore} with the same semantics as the disk store
 * (ids, ranges, integrity checks on every read, typed errors), for tests and ephemeral nodes.
 *
 * @example
 * ```ts
 * const store = createMemoryBlobStore()
 * const { id } = await store.put('hello')
 * store.damage(id) // the next get(id) fails with ERR_INTEGRITY
 * ```
 */
export function createMemoryBlobStore(): MemoryBlobStore {
  return new InMemoryBlobStore()
}

class InMemoryBlobStore implements MemoryBlobStore, Stager<StagedBytes> {
  readonly #blobs = new Map<string, Uint8Array>()
  /** Batches holding blobs not yet committed, dropped at close. */
  readonly #batches = new Set<StagedBatch<StagedBytes>>()
  readonly #operations = new Set<Promise<unknown>>()
  #closed = false

  put(source: BlobSource, options: AbortOptions = {}): Promise<BlobInfo> {
    return this.track(this.#putNow(source, undefined, options))
  }

  putExpected(id: string, source: BlobSource, options: AbortOptions = {}): Promise<BlobInfo> {
    return this.track(this.#putNow(source, id, options))
  }

  async #putNow(source: BlobSource, expected: string | undefined, options: AbortOptions): Promise<BlobInfo> {
    const staged = await this.stage(source, expected, options)
    await this.place([staged], options)
    return { id: staged.id, size: staged.size }
  }

  batch(): BlobBatch {
    this.assertOpen()
    return new StagedBatch<StagedBytes>(this, this.#batches)
  }

  async stage(source: BlobSource, expected: string | undefined, options: AbortOptions): Promise<StagedBytes> {
    throwIfAborted(options.signal)
    this.assertOpen()
    if (expected !== undefined) assertBlobId(expected)
    assertSource(source)
    if (isHashedBlob(source)) assertExpected(expected, source.id)
    // A memory store holds the whole blob by nature; pieces are copied since callers may reuse them.
    const pieces: Uint8Array[] = []
    const info = await hashPieces(source, options.signal, (piece) => {
      pieces.push(Uint8Array.prototype.slice.call(piece))
    })
    assertExpected(expected, info.id)
    throwIfAborted(options.signal)
    this.assertOpen()
    return { ...info, bytes: Buffer.concat(pieces, info.size) }
  }

  async place(staged: readonly StagedBytes[], options: AbortOptions): Promise<void> {
    await settled()
    throwIfAborted(options.signal)
    this.assertOpen()
    for (const s of staged) this.#blobs.set(s.id, s.bytes)
  }

  discard(): Promise<void> {
    return Promise.resolve()
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

  async *get(id: string, options: GetOptions = {}): AsyncGenerator<Uint8Array> {
    const { signal, offset, length } = options
    await settled()
    throwIfAborted(signal)
    this.assertOpen()
    assertRangeOptions(offset, length)
    assertBlobId(id)
    const blob = this.#blobs.get(id)
    if (blob === undefined) throw new NotFoundError(`no blob ${id}`)
    const { start, end } = resolveRange(blob.byteLength, offset, length)
    if (sha256Hex(blob) !== id) throw new IntegrityError(`blob ${id} no longer matches its id`)
    for (let position = start; position < end; position += PIECE) {
      throwIfAborted(signal)
      // Copies: a caller that writes into what it got must not damage the stored blob.
      yield blob.slice(position, Math.min(position + PIECE, end))
    }
  }

  has(id: string, options: AbortOptions = {}): Promise<boolean> {
    return this.stat(id, options).then((info) => info !== undefined)
  }

  async stat(id: string, options: AbortOptions = {}): Promise<BlobInfo | undefined> {
    await settled()
    throwIfAborted(options.signal)
    this.assertOpen()
    assertBlobId(id)
    const blob = this.#blobs.get(id)
    return blob === undefined ? undefined : { id, size: blob.byteLength }
  }

  async delete(id: string, options: AbortOptions = {}): Promise<boolean> {
    await settled()
    throwIfAborted(options.signal)
    this.assertOpen()
    assertBlobId(id)
    return this.#blobs.delete(id)
  }

  async *list(options: AbortOptions = {}): AsyncGenerator<string> {
    await settled()
    throwIfAborted(options.signal)
    this.assertOpen()
    for (const id of [...this.#blobs.keys()]) {
      throwIfAborted(options.signal)
      if (this.#blobs.has(id)) yield id
    }
  }

  async *scrub(options: AbortOptions = {}): AsyncGenerator<ScrubResult> {
    for await (const id of this.list(options)) {
      const blob = this.#blobs.get(id)
      if (blob === undefined) continue
      yield sha256Hex(blob) === id
        ? { id, ok: true }
        : { id, ok: false, error: new IntegrityError(`blob ${id} no longer matches its id`) }
    }
  }

  damage(id: string, offset = 0): void {
    assertBlobId(id)
    const blob = this.#blobs.get(id)
    if (blob === undefined) throw new NotFoundError(`no blob ${id}`)
    if (!Number.isSafeInteger(offset) || offset < 0 || offset >= blob.byteLength) {
      throw new InvalidRangeError(`cannot damage byte ${offset} of a ${blob.byteLength}-byte blob`)
    }
    blob[offset] = (blob[offset] ?? 0) ^ 0x01
  }

  async close(): Promise<void> {
    this.#closed = true
    await Promise.allSettled([...this.#operations])
    await Promise.allSettled([...this.#batches].map((batch) => batch.abort()))
    await settled()
  }
}
