// Pulls bytes from a ByteSource on demand, with a bounded look-ahead and abort support.
import { AbortedError, InvalidArgumentError } from './errors.js'
import type { ByteSource } from './types.js'

const EMPTY = new Uint8Array(0)

/** Throws the typed abort error when `signal` is aborted. */
export function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted === true) throw new AbortedError('the operation was aborted', { cause: signal.reason })
}

/** The source as an async iterator of byte pieces (a string becomes its UTF-8 bytes). */
function iteratorOf(source: ByteSource): AsyncIterator<Uint8Array> | Iterator<Uint8Array> {
  if (source instanceof Uint8Array) return [source][Symbol.iterator]()
  if (typeof source === 'string') return [Buffer.from(source, 'utf8')][Symbol.iterator]()
  if (source !== null && typeof source === 'object') {
    if (Symbol.asyncIterator in source) return source[Symbol.asyncIterator]()
    if (Symbol.iterator in source) return source[Symbol.iterator]()
  }
  throw new InvalidArgumentError('source must be a Uint8Array, a string, or an (async) iterable of Uint8Array')
}

/**
 * A queue of byte pieces over a source. Pieces are kept as views (no copy) until
 * taken; the caller bounds how much it asks for, so memory stays bounded too.
 */
export class ByteReader {
  private readonly iterator: AsyncIterator<Uint8Array> | Iterator<Uint8Array>
  private readonly signal: AbortSignal | undefined
  private pieces: Uint8Array[] = []
  private head = 0
  /** Bytes buffered and not yet taken. */
  length = 0
  /** The source has ended. */
  done = false
  private abortPromise: Promise<never> | undefined
  private removeAbortListener: (() => void) | undefined

  constructor(source: ByteSource, signal?: AbortSignal) {
    this.iterator = iteratorOf(source)
    this.signal = signal
    if (signal !== undefined) {
      this.abortPromise = new Promise<never>((_, reject) => {
        const onAbort = (): void => reject(new AbortedError('the operation was aborted', { cause: signal.reason }))
        signal.addEventListener('abort', onAbort, { once: true })
        this.removeAbortListener = () => signal.removeEventListener('abort', onAbort)
      })
      // Observed by the race in pull(); this keeps an abort between pulls from being reported as unhandled.
      this.abortPromise.catch(() => {})
    }
  }

  /**
   * The source's next result: as it is from a synchronous iterator (no turn of the
   * event loop per piece), raced with the abort signal from an asynchronous one.
   */
  private next(): IteratorResult<Uint8Array> | PromiseLike<IteratorResult<Uint8Array>> {
    throwIfAborted(this.signal)
    const next = this.iterator.next()
    if (!isPromiseLike(next)) return next
    return this.abortPromise === undefined ? next : Promise.race([next, this.abortPromise])
  }

  /** Buffers the piece of one result; returns `false` at the end of the source. */
  private accept(result: IteratorResult<Uint8Array>): boolean {
    if (result.done === true) {
      this.done = true
      return false
    }
    const piece: unknown = result.value
    if (!(piece instanceof Uint8Array)) {
      throw new InvalidArgumentError(`source yielded ${describe(piece)}, not a Uint8Array`)
    }
    if (piece.length > 0) {
      this.pieces.push(piece)
      this.length += piece.length
    }
    return true
  }

  /** Reads one more piece from the source; returns `false` at its end. */
  async pull(): Promise<boolean> {
    if (this.done) return false
    const next = this.next()
    return this.accept(isPromiseLike(next) ? await next : next)
  }

  /** Pulls until at least `n` bytes are buffered or the source ends; returns whether `n` are there. */
  async fill(n: number): Promise<boolean> {
    while (this.length < n && !this.done) {
      const next = this.next()
      this.accept(isPromiseLike(next) ? await next : next)
    }
    return this.length >= n
  }

  /** Removes the first `n` buffered bytes (`n <= length`) and returns them as views, in order. */
  take(n: number): Uint8Array[] {
    const out: Uint8Array[] = []
    while (n > 0) {
      const piece = this.pieces[this.head]!
      if (piece.length <= n) {
        out.push(piece)
        // Drop the reference now: a consumed piece must not stay alive until the next compaction.
        this.pieces[this.head++] = EMPTY
        n -= piece.length
        this.length -= piece.length
      } else {
        out.push(piece.subarray(0, n))
        this.pieces[this.head] = piece.subarray(n)
        this.length -= n
        n = 0
      }
    }
    if (this.head > 64 && this.head * 2 > this.pieces.length) {
      this.pieces = this.pieces.slice(this.head)
      this.head = 0
    }
    return out
  }

  /** Like {@link take}, as one contiguous array (copied only when the bytes span pieces). */
  takeBytes(n: number): Uint8Array {
    const views = this.take(n)
    if (views.length === 1) return views[0]!
    return joinViews(views, n)
  }

  /** The byte at `index` of the buffered bytes (`index < length`). */
  byteAt(index: number): number {
    for (let i = this.head; ; i++) {
      const piece = this.pieces[i]!
      if (index < piece.length) return piece[index]!
      index -= piece.length
    }
  }

  /**
   * Visits buffered bytes from `start` on; returns the index of the first byte for
   * which `visit` returns `true`, or -1 when none does.
   */
  findFrom(start: number, visit: (byte: number) => boolean): number {
    // Locate `start` from the end: callers scan what the last pull added, so this is O(1) for them.
    let i = this.pieces.length
    let base = this.length
    while (i > this.head && base > start) base -= this.pieces[--i]!.length
    for (; i < this.pieces.length; i++) {
      const piece = this.pieces[i]!
      for (let j = Math.max(0, start - base); j < piece.length; j++) if (visit(piece[j]!)) return base + j
      base += piece.length
    }
    return -1
  }

  /** Stops the source (when the consumer stops early or fails) and removes the abort listener. */
  async close(): Promise<void> {
    this.removeAbortListener?.()
    this.removeAbortListener = undefined
    this.pieces = []
    this.head = 0
    this.length = 0
    if (this.done) return
    this.done = true
    // An aborted pull may still be pending in the source: do not wait on it.
    const aborted = this.signal?.aborted === true
    const closing = this.iterator.return?.()
    if (closing !== undefined && !aborted) await closing
    else if (closing instanceof Promise) closing.catch(() => {})
  }
}

/** Copies views into one array of `total` bytes (which they fill exactly). */
export function joinViews(views: readonly Uint8Array[], total: number): Uint8Array {
  // Not zero-filled first, since every byte is written; not from the shared pool, since it may be returned to callers.
  const out = Buffer.allocUnsafeSlow(total)
  let offset = 0
  for (const v of views) {
    out.set(v, offset)
    offset += v.length
  }
  return out
}

function isPromiseLike<T>(value: T | PromiseLike<T>): value is PromiseLike<T> {
  return typeof (value as { then?: unknown }).then === 'function'
}

function describe(value: unknown): string {
  if (value === null) return 'null'
  if (typeof value === 'object') return `an object (${Object.prototype.toString.call(value)})`
  return `a ${typeof value}`
}
