// The read path: resolve the key once, then stream the chunks of the range asked for, a few
// fetched ahead, each one verified (and healed from a peer when lost or damaged here).
import type { Catalogue } from './catalogue.js'
import { AbortedError, ClosedError } from './errors.js'
import { metaOf } from './local.js'
import { chunksInRange, type Manifest } from './manifest.js'
import type { HealObserver, Retriever } from './retriever.js'
import { anySignal } from './signals.js'

/** Reads objects. */
export class ReadPath {
  readonly #catalogue: Catalogue
  readonly #retriever: Retriever
  /** Chunks read ahead of the one being served. */
  readonly #readAhead: number
  readonly #shutdown: AbortSignal

  constructor(options: { catalogue: Catalogue; retriever: Retriever; concurrency: number; shutdown: AbortSignal }) {
    this.#catalogue = options.catalogue
    this.#retriever = options.retriever
    this.#readAhead = 2 * options.concurrency
    this.#shutdown = options.shutdown
  }

  /** Bytes `[offset, offset + length)` of `key`'s current version (to its end without `length`), chunk by chunk. */
  async *read(key: string, offset: number, length: number | undefined, userSignal: AbortSignal | undefined, observer?: HealObserver): AsyncGenerator<Uint8Array> {
    const { record, manifest } = await this.#catalogue.resolve(key, this.#signal(userSignal))
    yield* this.stream(key, metaOf(record).refId, manifest, offset, length, userSignal, observer)
  }

  /** Bytes `[offset, offset + length)` of the version `manifest` describes, chunk by chunk. */
  async *stream(key: string, refId: string, manifest: Manifest, offset: number, length: number | undefined, userSignal: AbortSignal | undefined, observer?: HealObserver): AsyncGenerator<Uint8Array> {
    const signal = this.#signal(userSignal)
    const end = length === undefined ? manifest.size : Math.min(manifest.size, offset + length)
    const parts = offset >= end ? [] : chunksInRange(manifest.chunks, offset, end - offset)
    // Chunks are read ahead, those lost here from several peers at once; each is served once verified, while
    // its write-back goes on behind it: the read ends once those are durable.
    const queue: Array<Promise<{ plain: readonly Uint8Array[]; healing: Promise<void> | undefined }>> = []
    const healing: Array<Promise<void>> = []
    let next = 0
    const fill = (): void => {
      while (queue.length < this.#readAhead && next < parts.length) {
        const at = next++
        const p = this.#retriever.chunkAhead(key, refId, parts[at]!.chunk, signal, observer, at)
        p.catch(() => {})
        queue.push(p)
      }
    }
    try {
      fill()
      for (const part of parts) {
        const { plain, healing: heal } = await queue.shift()!
        if (heal !== undefined) {
          // Each write-back holds its chunk until it is durable: no more of them wait than chunks are read ahead.
          const settled = heal.then(() => void healing.splice(healing.indexOf(settled), 1))
          healing.push(settled)
          if (healing.length > this.#readAhead) await healing[0]
        }
        fill()
        if (signal.aborted) throw this.#shutdown.aborted ? new ClosedError() : new AbortedError(undefined, { cause: userSignal?.reason })
        yield* piecesIn(plain, part.start, part.end)
      }
    } finally {
      await Promise.all(healing)
    }
  }

  #signal(userSignal: AbortSignal | undefined): AbortSignal {
    return anySignal(userSignal, this.#shutdown)
  }
}

/** Bytes `[start, end)` of a chunk held in pieces, as views of them. */
function* piecesIn(pieces: readonly Uint8Array[], start: number, end: number): Generator<Uint8Array> {
  let at = 0
  for (const piece of pieces) {
    const from = Math.max(start, at)
    const to = Math.min(end, at + piece.length)
    if (from < to) yield from === at && to === at + piece.length ? piece : piece.subarray(from - at, to - at)
    at += piece.length
    if (at >= end) return
  }
}
