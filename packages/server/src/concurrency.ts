// Small tools for bounded concurrency and cancellation, shared by the server's modules.
import { AbortedError } from './errors.js'

/** Up to `limit` promises in flight; the first failure is kept. */
export class InFlight {
  readonly #running = new Set<Promise<void>>()
  error: Error | undefined

  constructor(readonly limit: number) {}

  /** Starts `fn` once fewer than `limit` run. */
  async add(fn: () => Promise<void>): Promise<void> {
    while (this.#running.size >= this.limit) await Promise.race(this.#running)
    const p: Promise<void> = fn()
      .catch((err: unknown) => {
        this.error ??= err instanceof Error ? err : new Error(String(err))
      })
      .finally(() => this.#running.delete(p))
    this.#running.add(p)
  }

  /** Resolves once nothing runs. */
  async drain(): Promise<void> {
    while (this.#running.size > 0) await Promise.all(this.#running)
  }
}

/** `promise`, or an {@link AbortedError} as soon as `signal` aborts; the listener is removed either way. */
export async function raceAbort<T>(promise: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (signal === undefined) return promise
  let onAbort!: () => void
  const aborted = new Promise<never>((_, reject) => {
    onAbort = () => reject(new AbortedError(undefined, { cause: signal.reason }))
    if (signal.aborted) onAbort()
    else signal.addEventListener('abort', onAbort, { once: true })
  })
  try {
    return await Promise.race([promise, aborted])
  } finally {
    signal.removeEventListener('abort', onAbort)
  }
}

/**
 * A token bucket: {@link RateLimiter.take} waits until `bytes` fit within `bytesPerSecond` (bursts of up to one
 * second's worth, or of one blob when it is larger). `Infinity` never waits.
 */
export class RateLimiter {
  readonly #rate: number
  #tokens: number
  #at = performance.now()
  #tail: Promise<void> = Promise.resolve()

  constructor(readonly bytesPerSecond: number) {
    this.#rate = bytesPerSecond
    this.#tokens = bytesPerSecond
  }

  /** Waits for `bytes` worth of tokens; callers are served in turn. */
  take(bytes: number, signal?: AbortSignal): Promise<void> {
    if (!Number.isFinite(this.#rate)) return Promise.resolve()
    const turn = this.#tail.then(async () => {
      const now = performance.now()
      this.#tokens = Math.min(this.#rate, this.#tokens + ((now - this.#at) / 1000) * this.#rate)
      this.#at = now
      this.#tokens -= bytes
      // A deficit is paid by waiting; a blob larger than a second's worth waits for its own size.
      if (this.#tokens < 0) await raceAbort(new Promise<void>((resolve) => setTimeout(resolve, (-this.#tokens / this.#rate) * 1000).unref()), signal)
    })
    this.#tail = turn.catch(() => {})
    return turn
  }
}
