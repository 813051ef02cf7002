// What a server has under way for its callers: operations, reads handed out, versions held open.
// Closing settles all of it: reads end with ERR_CLOSED, operations are waited for, versions close.
import { Readable } from 'node:stream'
import { ClosedError } from './errors.js'

/** An open version's hold: released once, by its caller or when the server closes. */
export interface Hold {
  /** Releases it (again: nothing). */
  close: () => void
  /** Whether it is still held. */
  readonly held: () => boolean
}

/** The work a server's callers have under way. */
export class CallerWork {
  readonly #ops = new Set<Promise<unknown>>()
  readonly #reads = new Set<Readable>()
  /** The close() of each open version. */
  readonly #opened = new Set<() => void>()

  /** Runs `fn` so that {@link CallerWork.settle} waits for it. */
  async track<T>(fn: () => Promise<T>): Promise<T> {
    const p = fn()
    this.#ops.add(p)
    try {
      return await p
    } finally {
      this.#ops.delete(p)
    }
  }

  /** The bytes of `source` as a Readable that {@link CallerWork.settle} waits for, and ends with ERR_CLOSED. */
  readable(source: () => AsyncGenerator<Uint8Array>): Readable {
    const ops = this.#ops
    const tracked = async function* (): AsyncGenerator<Uint8Array> {
      let finish!: () => void
      const op = new Promise<void>((resolve) => (finish = resolve))
      ops.add(op)
      try {
        yield* source()
      } finally {
        ops.delete(op)
        finish()
      }
    }
    const readable = Readable.from(tracked(), { objectMode: false, highWaterMark: 1 })
    this.#reads.add(readable)
    readable.once('close', () => this.#reads.delete(readable))
    return readable
  }

  /** Holds an open version until it is closed, or the server is: `release` runs once, then. */
  hold(release: () => void): Hold {
    const close = (): void => {
      if (!this.#opened.delete(close)) return
      release()
    }
    this.#opened.add(close)
    return { close, held: () => this.#opened.has(close) }
  }

  /** Ends every read with ERR_CLOSED (one nobody consumes would wait for ever), waits for the operations, closes the versions. */
  async settle(): Promise<void> {
    for (const readable of this.#reads) readable.destroy(new ClosedError())
    await Promise.allSettled([...this.#ops])
    for (const close of [...this.#opened]) close()
  }
}
