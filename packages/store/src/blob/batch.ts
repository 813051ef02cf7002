// The life of a BlobBatch (puts in flight, staged blobs, commit, abort), shared by every store:
// each store only says how a blob is staged, placed and discarded.
import { ClosedError } from '../errors.js'
import { throwIfAborted } from '../internal/abort.js'
import type { AbortOptions, BlobBatch, BlobInfo, BlobSource } from '../types.js'

/** What a store does for its batches. `S` is its record of one staged blob. */
export interface Stager<S extends BlobInfo> {
  /** Writes a blob where it is neither durable nor visible; nothing is left behind when it fails. */
  stage(source: BlobSource, expected: string | undefined, options: AbortOptions): Promise<S>
  /** Makes staged blobs durable, then visible under their ids; on failure, drops what it did not place. */
  place(staged: readonly S[], options: AbortOptions): Promise<void>
  /** Drops staged blobs (never throws). */
  discard(staged: readonly S[]): Promise<void>
  /** Throws `ERR_CLOSED` once the store is closed. */
  assertOpen(): void
  /** Lets the store's `close()` wait for this operation. */
  track<T>(operation: Promise<T>): Promise<T>
}

/** A {@link BlobBatch} over a store's {@link Stager}. */
export class StagedBatch<S extends BlobInfo> implements BlobBatch {
  readonly #stager: Stager<S>
  readonly #open: Set<StagedBatch<S>>
  #staged: S[] = []
  readonly #inFlight = new Set<Promise<unknown>>()
  #closed = false
  #committing: Promise<void> = Promise.resolve()

  /**
   * @param open - the store's batches that hold blobs not yet committed (so that its `close()`
   *   can drop them): this batch is in it from its first put until a commit or abort leaves it empty
   */
  constructor(stager: Stager<S>, open: Set<StagedBatch<S>>) {
    this.#stager = stager
    this.#open = open
  }

  put(source: BlobSource, options: AbortOptions = {}): Promise<BlobInfo> {
    return this.#put(source, undefined, options)
  }

  putExpected(id: string, source: BlobSource, options: AbortOptions = {}): Promise<BlobInfo> {
    return this.#put(source, id, options)
  }

  async #put(source: BlobSource, expected: string | undefined, options: AbortOptions): Promise<BlobInfo> {
    this.#assertUsable()
    this.#open.add(this)
    const staging = this.#stager.track(this.#stager.stage(source, expected, options))
    this.#inFlight.add(staging)
    try {
      const staged = await staging
      if (this.#closed) {
        // Aborted while this put was writing: it goes with the rest.
        await this.#stager.discard([staged])
        throw new ClosedError('the batch was aborted')
      }
      this.#staged.push(staged)
      return { id: staged.id, size: staged.size }
    } finally {
      this.#inFlight.delete(staging)
    }
  }

  commit(options: AbortOptions = {}): Promise<void> {
    return this.#stager.track(this.#commit(options))
  }

  async #commit(options: AbortOptions): Promise<void> {
    this.#assertUsable()
    // Commits follow each other: a second one resolves only after the first placed its blobs.
    const previous = this.#committing
    let done!: () => void
    this.#committing = new Promise<void>((resolve) => (done = resolve))
    try {
      await previous
      await this.#commitNow(options)
    } finally {
      done()
    }
  }

  async #commitNow(options: AbortOptions): Promise<void> {
    await Promise.allSettled([...this.#inFlight])
    this.#assertUsable()
    if (options.signal?.aborted === true) {
      await this.abort()
      throwIfAborted(options.signal)
    }
    const staged = this.#staged
    this.#staged = []
    try {
      await this.#stager.place(staged, options)
    } catch (err) {
      // place() dropped what it did not place; the puts made since go with the batch.
      await this.abort()
      throw err
    }
    if (this.#staged.length === 0 && this.#inFlight.size === 0) this.#open.delete(this)
  }

  async abort(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    await Promise.allSettled([...this.#inFlight])
    const staged = this.#staged
    this.#staged = []
    await this.#stager.discard(staged)
    this.#open.delete(this)
  }

  #assertUsable(): void {
    this.#stager.assertOpen()
    if (this.#closed) throw new ClosedError('the batch was aborted')
  }
}
