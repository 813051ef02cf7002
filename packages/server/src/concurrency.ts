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

  /** Whether `limit` promises run now (an {@link InFlight.add} would wait). */
  get full(): boolean {
    return this.#running.size >= this.limit
  }

  /** Resolves to `true` once fewer than `limit` run, or to `false` if that takes more than `ms`. */
  async slot(ms: number): Promise<boolean> {
    const deadline = Date.now() + ms
    while (this.#running.size >= this.limit) {
      const left = deadline - Date.now()
      if (left <= 0) return false
      let timer: NodeJS.Timeout | undefined
      const timeout = new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), left)))
      try {
        if ((await Promise.race([Promise.race(this.#running), timeout])) === 'timeout') return this.#running.size < this.limit
      } finally {
        clearTimeout(timer)
      }
    }
    return true
  }

  /** Resolves once nothing runs. */
  async drain(): Promise<void> {
    while (this.#running.size > 0) await Promise.all(this.#running)
  }
}

/** Tasks run one at a time, in the order added, at most `limit` queued (running included); the first failure is kept and the rest are skipped. */
export class SerialQueue {
  #tail: Promise<void> = Promise.resolve()
  #size = 0
  readonly #freed = new Set<() => void>()
  error: Error | undefined

  constructor(readonly limit: number) {}

  /** Whether `limit` tasks are queued (an {@link SerialQueue.add} would wait). */
  get full(): boolean {
    return this.#size >= this.limit
  }

  /** Queues `fn` once fewer than `limit` are queued. */
  async add(fn: () => Promise<void>): Promise<void> {
    while (this.#size >= this.limit) await new Promise<void>((resolve) => this.#freed.add(resolve))
    this.#size++
    this.#tail = this.#tail
      .then(() => (this.error === undefined ? fn() : undefined))
      .catch((err: unknown) => {
        this.error ??= err instanceof Error ? err : new Error(String(err))
      })
      .finally(() => {
        this.#size--
        for (const wake of [...this.#freed]) wake()
        this.#freed.clear()
      })
  }

  /** Resolves to `true` once fewer than `limit` are queued, or to `false` if that takes more than `ms`. */
  async slot(ms: number): Promise<boolean> {
    if (this.#size < this.limit) return true
    let timer: NodeJS.Timeout | undefined
    const freed = new Promise<boolean>((resolve) => {
      const wake = (): void => resolve(true)
      this.#freed.add(wake)
      timer = setTimeout(() => {
        this.#freed.delete(wake)
        resolve(false)
      }, ms)
    })
    try {
      return (await freed) || this.#size < this.limit
    } finally {
      clearTimeout(timer)
    }
  }

  /** Resolves once every queued task has run. */
  async drain(): Promise<void> {
    while (this.#size > 0) await this.#tail
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
